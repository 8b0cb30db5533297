//! Zones: add (circle, GeoJSON polygon or a zone file), list, remove, prune expired ones.
//! Every write goes through [`AdminStore`], which keeps the geohash index consistent.

use crate::error::{CliError, Result};
use crate::report::{Report, or_dash};
use chrono::{DateTime, Utc};
use serde::Serialize;
use vigil_aws::ports::AdminStore;
use vigil_core::{OrderId, Zone, ZoneId, ZoneShape};

/// A zone as the CLI shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ZoneView {
    /// The zone's specification.
    pub zone: vigil_core::ZoneSpec,
    /// Geohash cells it is indexed under.
    pub cells: usize,
    /// Whether it is in force now (validity and schedule).
    pub in_force: bool,
}

impl ZoneView {
    /// A view of `zone` at `now`.
    pub fn new(zone: &Zone, now: DateTime<Utc>) -> Self {
        ZoneView {
            zone: zone.spec().clone(),
            cells: vigil_core::index::zone_cells(zone).len(),
            in_force: zone.in_force(now.timestamp_millis()),
        }
    }

    fn shape(&self) -> String {
        match &self.zone.shape {
            ZoneShape::Circle { radius_m, .. } => format!("circle r={radius_m} m"),
            ZoneShape::Polygon(ring) => format!("polygon {} pts", ring.len()),
        }
    }
}

/// Many zones.
#[derive(Debug, Clone, Serialize)]
pub struct ZoneList {
    /// The zones.
    pub zones: Vec<ZoneView>,
}

impl Report for ZoneView {
    fn human(&self) -> String {
        ZoneList {
            zones: vec![self.clone()],
        }
        .human()
    }
}

impl Report for ZoneList {
    fn human(&self) -> String {
        if self.zones.is_empty() {
            return "no zones".into();
        }
        let mut out = format!(
            "{:<16} {:<8} {:<20} {:>8} {:>6} {:<9} {:<22} {}",
            "ZONE", "KIND", "SHAPE", "BUFFER", "CELLS", "IN FORCE", "VALID UNTIL", "ORDERS"
        );
        for z in &self.zones {
            let kind = serde_json::to_value(z.zone.kind).expect("kind serializes");
            out.push_str(&format!(
                "\n{:<16} {:<8} {:<20} {:>6} m {:>6} {:<9} {:<22} {}",
                z.zone.zone_id,
                kind.as_str().unwrap_or_default(),
                z.shape(),
                z.zone.buffer_m,
                z.cells,
                if z.in_force { "yes" } else { "no" },
                or_dash(z.zone.valid_until),
                z.zone
                    .orders
                    .iter()
                    .map(OrderId::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
            ));
        }
        out
    }
}

/// Parses a zone id given on the command line.
pub fn zone_id(text: &str) -> Result<ZoneId> {
    ZoneId::new(text).map_err(|e| CliError::Invalid(format!("zone id: {e}")))
}

/// Adds (or replaces) a checked zone after making sure every order it protects exists; the
/// store indexes it under every cell its buffer reaches and clears cells it left.
///
/// Fails with [`CliError::NotFound`] naming a missing order, or [`CliError::Store`].
pub async fn add_zone(store: &impl AdminStore, zone: &Zone) -> Result<()> {
    for o in zone.orders() {
        if store
            .get_order(o)
            .await
            .map_err(CliError::store(format!("reading order {o}")))?
            .is_none()
        {
            return Err(CliError::NotFound(format!(
                "zone {} protects order {o}, which does not exist: create it first with `vigil orders create`",
                zone.id()
            )));
        }
    }
    store
        .put_zone(zone)
        .await
        .map_err(CliError::store(format!("writing zone {}", zone.id())))
}

/// Every zone, or those of one order.
pub async fn list_zones(store: &impl AdminStore, order: Option<&OrderId>) -> Result<Vec<Zone>> {
    match order {
        Some(o) => store
            .zones_of_order(o)
            .await
            .map_err(CliError::store(format!("listing zones of {o}"))),
        None => store
            .list_zones()
            .await
            .map_err(CliError::store("listing zones")),
    }
}

/// Removes a zone and every cell entry of it.
///
/// Fails with [`CliError::NotFound`] when there was no such zone.
pub async fn remove_zone(store: &impl AdminStore, id: &ZoneId) -> Result<()> {
    let existed = store
        .remove_zone(id)
        .await
        .map_err(CliError::store(format!("removing zone {id}")))?;
    if existed {
        Ok(())
    } else {
        Err(CliError::NotFound(format!(
            "no zone {id}: list them with `vigil zones list`"
        )))
    }
}

/// Removes every zone whose validity ended at or before `now`, with its cell entries.
/// Returns the ids removed.
pub async fn prune_expired(store: &impl AdminStore, now: DateTime<Utc>) -> Result<Vec<ZoneId>> {
    store
        .prune_expired_zones(now)
        .await
        .map_err(CliError::store("pruning expired zones"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_aws::memory::MemoryStore;

    fn zone(id: &str, until: Option<&str>) -> Zone {
        let mut v = serde_json::json!({"zone_id": id, "circle": {"lat": 51.5, "lon": -0.12, "radius_m": 100},
            "buffer_m": 500, "orders": ["o1"]});
        if let Some(u) = until {
            v["valid_until"] = u.into();
        }
        Zone::new(serde_json::from_value(v).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn zones_need_their_orders_and_leave_no_cells_behind() {
        let store = MemoryStore::new();
        let z = zone("home", None);
        assert_eq!(add_zone(&store, &z).await.unwrap_err().exit_code(), 2);
        let order: vigil_core::ProtectionOrder = serde_json::from_value(serde_json::json!({
            "order_id": "o1", "tag_id": "t1",
            "victim": {"victim_id": "v1", "phone": "+447700900123", "language": "en"}}))
        .unwrap();
        store.put_order(&order).await.unwrap();
        add_zone(&store, &z).await.unwrap();
        add_zone(&store, &zone("old", Some("2020-01-01T00:00:00Z")))
            .await
            .unwrap();
        let cells: Vec<String> = vigil_core::index::zone_cells(&z)
            .iter()
            .map(|c| c.key())
            .collect();
        assert!(!cells.is_empty());
        assert_eq!(
            list_zones(&store, Some(&order.order_id))
                .await
                .unwrap()
                .len(),
            2
        );
        let pruned = prune_expired(&store, Utc::now()).await.unwrap();
        assert_eq!(pruned, [zone_id("old").unwrap()]);
        remove_zone(&store, z.id()).await.unwrap();
        for c in &cells {
            assert!(store.zone_cell_entries(c).await.unwrap().is_empty());
        }
        assert_eq!(
            remove_zone(&store, z.id()).await.unwrap_err().exit_code(),
            2
        );
    }
}
