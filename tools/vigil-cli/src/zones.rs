//! Zones: add (circle, GeoJSON polygon or a zone file), list, remove, prune expired ones.
//! Every write goes through [`AdminStore`], which keeps the geohash index consistent.

use crate::error::{CliError, Result};
use crate::report::{Report, or_dash};
use chrono::{DateTime, Utc};
use serde::Serialize;
use vigil_aws::ports::AdminStore;
use vigil_core::{OrderId, Zone, ZoneId, ZoneKey, ZoneShape};

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
        let rows: Vec<[String; 8]> = self
            .zones
            .iter()
            .map(|z| {
                let kind = serde_json::to_value(z.zone.kind).expect("kind serializes");
                [
                    z.zone.order_id.to_string(),
                    z.zone.zone_id.to_string(),
                    kind.as_str().unwrap_or_default().to_owned(),
                    z.shape(),
                    format!("{} m", z.zone.buffer_m),
                    z.cells.to_string(),
                    if z.in_force { "yes" } else { "no" }.to_owned(),
                    or_dash(z.zone.valid_until),
                ]
            })
            .collect();
        crate::report::table(
            [
                "ORDER",
                "ZONE",
                "KIND",
                "SHAPE",
                "BUFFER",
                "CELLS",
                "IN FORCE",
                "VALID UNTIL",
            ],
            &rows,
            &[4, 5],
        )
    }
}

/// Parses a zone id given on the command line.
pub fn zone_id(text: &str) -> Result<ZoneId> {
    ZoneId::new(text).map_err(|e| CliError::Invalid(format!("zone id: {e}")))
}

/// Adds a checked zone to its order; the store indexes it under every cell its buffer reaches
/// and clears cells it left. Replacing the order's existing zone of the same id needs
/// `replace`; nothing of another order is ever touched (a zone belongs to one order). Returns
/// whether it replaced one.
///
/// Fails with [`CliError::NotFound`] when the order does not exist, [`CliError::Conflict`]
/// when the order already has the zone and `replace` is not set, or [`CliError::Store`].
pub async fn add_zone(store: &impl AdminStore, zone: &Zone, replace: bool) -> Result<bool> {
    let o = zone.order_id();
    let key = zone.key();
    if store
        .get_order(o)
        .await
        .map_err(CliError::store(format!("reading order {o}")))?
        .is_none()
    {
        return Err(CliError::NotFound(format!(
            "zone {} belongs to order {o}, which does not exist: create it first with `vigil orders create`",
            zone.id()
        )));
    }
    let existing = store
        .get_zone(&key)
        .await
        .map_err(CliError::store(format!("reading zone {key}")))?;
    if existing.is_some() && !replace {
        return Err(CliError::Conflict(format!(
            "order {o} already has a zone {}: pass --replace to replace it, or choose another id",
            zone.id()
        )));
    }
    store
        .put_zone(zone)
        .await
        .map_err(CliError::store(format!("writing zone {key}")))?;
    Ok(existing.is_some())
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

/// Removes one order's zone and every cell entry of it.
///
/// Fails with [`CliError::NotFound`] when the order has no such zone.
pub async fn remove_zone(store: &impl AdminStore, key: &ZoneKey) -> Result<()> {
    let existed = store
        .remove_zone(key)
        .await
        .map_err(CliError::store(format!("removing zone {key}")))?;
    if existed {
        Ok(())
    } else {
        Err(CliError::NotFound(format!(
            "order {} has no zone {}: list them with `vigil zones list --order {}`",
            key.order_id, key.zone_id, key.order_id
        )))
    }
}

/// Removes every zone whose validity ended at or before `now`, with its cell entries.
/// Returns the keys removed.
pub async fn prune_expired(store: &impl AdminStore, now: DateTime<Utc>) -> Result<Vec<ZoneKey>> {
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
            "buffer_m": 500, "order_id": "o1"});
        if let Some(u) = until {
            v["valid_until"] = u.into();
        }
        Zone::new(serde_json::from_value(v).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn zones_need_their_orders_and_leave_no_cells_behind() {
        let store = MemoryStore::new();
        let z = zone("home", None);
        assert_eq!(
            add_zone(&store, &z, false).await.unwrap_err().exit_code(),
            2
        );
        let order: vigil_core::ProtectionOrder = serde_json::from_value(serde_json::json!({
            "order_id": "o1", "tag_id": "t1",
            "victim": {"victim_id": "v1", "phone": "+447700900123", "language": "en"}}))
        .unwrap();
        store.put_order(&order).await.unwrap();
        add_zone(&store, &z, false).await.unwrap();
        add_zone(&store, &zone("old", Some("2020-01-01T00:00:00Z")), false)
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
        assert_eq!(pruned, [zone("old", None).key()]);
        remove_zone(&store, &z.key()).await.unwrap();
        for c in &cells {
            assert!(store.zone_cell_entries(c).await.unwrap().is_empty());
        }
        assert_eq!(
            remove_zone(&store, &z.key()).await.unwrap_err().exit_code(),
            2
        );
    }

    fn order(id: &str) -> vigil_core::ProtectionOrder {
        serde_json::from_value(serde_json::json!({
            "order_id": id, "tag_id": "t1",
            "victim": {"victim_id": "v1", "phone": "+447700900123", "language": "en"}}))
        .unwrap()
    }

    #[tokio::test]
    async fn a_zone_id_used_by_another_order_never_replaces_that_orders_zone() {
        // Issue 11, defect 3: `zones add --zone-id home --order o-2` replaced o-1's home.
        let store = MemoryStore::new();
        store.put_order(&order("o1")).await.unwrap();
        store.put_order(&order("o2")).await.unwrap();
        let home_1 = zone("home", None);
        add_zone(&store, &home_1, false).await.unwrap();
        let mut v = serde_json::to_value(&home_1).unwrap();
        v["order_id"] = "o2".into();
        v["circle"]["lat"] = 40.0.into();
        let home_2: Zone = serde_json::from_value(v).unwrap();
        add_zone(&store, &home_2, false).await.unwrap();
        assert_eq!(
            store.get_zone(&home_1.key()).await.unwrap(),
            Some(home_1.clone())
        );
        assert_eq!(store.get_zone(&home_2.key()).await.unwrap(), Some(home_2));
        // The same order's id again: refused unless replacing is asked for.
        let e = add_zone(&store, &home_1, false).await.unwrap_err();
        assert_eq!(e.exit_code(), crate::error::EXIT_CONFLICT);
        assert!(e.to_string().contains("--replace"), "{e}");
        assert!(
            add_zone(&store, &home_1, true).await.unwrap(),
            "a replacement"
        );
        // Removing one order's home leaves the other's.
        remove_zone(&store, &home_1.key()).await.unwrap();
        assert!(
            store
                .get_zone(&ZoneKey::new(
                    OrderId::new("o2").unwrap(),
                    ZoneId::new("home").unwrap()
                ))
                .await
                .unwrap()
                .is_some()
        );
    }
}
