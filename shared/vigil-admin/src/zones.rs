//! Zones: add (or replace), list, remove, prune expired ones, each change audited. Every write
//! goes through [`AdminStore`], which keeps the geohash index consistent. A zone belongs to
//! one order: no action on one order's zone touches another order's zone of the same id.

use crate::access::{self, Caller, Scope};
use crate::changes::{self, Change};
use crate::error::{AdminError, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use vigil_aws::ports::{AdminStore, AuditLog, WatchStore};
use vigil_core::{OrderId, Zone, ZoneKey, ZoneSpec};

/// A zone as operators see it.
#[derive(Debug, Clone, Serialize)]
pub struct ZoneView {
    /// The zone's specification.
    pub zone: ZoneSpec,
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
}

/// Adds a checked zone to its order; the store indexes it under every cell its buffer reaches
/// and clears cells it left. Replacing the order's existing zone of the same id needs
/// `replace`; nothing of another order is ever touched. Records `zone_added` or
/// `zone_replaced` in the order's audit chain, made by `caller`; then has the order's tag end
/// any batching window, judged without the zone (`end_window`). Returns whether it replaced
/// one.
///
/// Fails with [`AdminError::NotFound`] when the order does not exist, [`AdminError::Conflict`]
/// when the order already has the zone and `replace` is not set, or [`AdminError::Store`]
/// (also when the tag could not be told: the zone is saved then, and the error says so).
pub async fn add_zone<S: AdminStore + AuditLog + WatchStore>(
    store: &S,
    caller: &Caller,
    zone: &Zone,
    replace: bool,
    now_ms: i64,
) -> Result<bool> {
    let o = zone.order_id();
    let key = zone.key();
    let order = match access::order_for(store, caller, "zones add", o, now_ms).await {
        Err(AdminError::NotFound(_)) => {
            return Err(AdminError::NotFound(format!(
                "zone {} belongs to order {o}, which does not exist: create it first with `vigil orders create`",
                zone.id()
            )));
        }
        other => other?,
    };
    let existing = store
        .get_zone(&key)
        .await
        .map_err(AdminError::store(format!("reading zone {key}")))?;
    if existing.is_some() && !replace {
        return Err(AdminError::Conflict(format!(
            "order {o} already has a zone {}: pass --replace to replace it, or choose another id",
            zone.id()
        )));
    }
    store
        .put_zone(zone)
        .await
        .map_err(AdminError::store(format!("writing zone {key}")))?;
    let replaced = existing.is_some();
    let action = if replaced {
        "zone_replaced"
    } else {
        "zone_added"
    };
    changes::record(
        store,
        o,
        &caller.operator,
        &[Change::zone(action, zone)],
        now_ms,
    )
    .await?;
    crate::end_window(store, o, &order.tag_id, now_ms).await?;
    Ok(replaced)
}

/// Every zone `caller` may see, or those of one order.
///
/// Fails with [`AdminError::NotFound`] or [`AdminError::Forbidden`] for one order that does
/// not exist or is another force's, or [`AdminError::Store`] if the store fails.
pub async fn list_zones<S: AdminStore + AuditLog>(
    store: &S,
    caller: &Caller,
    order: Option<&OrderId>,
    now_ms: i64,
) -> Result<Vec<Zone>> {
    match order {
        Some(o) => {
            access::order_for(store, caller, "zones list", o, now_ms).await?;
            crate::orders::zones_of(store, o).await
        }
        None => Ok(crate::orders::list_orders(store, caller)
            .await?
            .into_iter()
            .flat_map(|(_, zones)| zones)
            .collect()),
    }
}

/// Removes one order's zone and every cell entry of it, and records `zone_removed` in the
/// order's audit chain, made by `caller`.
///
/// Fails with [`AdminError::NotFound`] when the order has no such zone, or
/// [`AdminError::Store`].
pub async fn remove_zone<S: AdminStore + AuditLog>(
    store: &S,
    caller: &Caller,
    key: &ZoneKey,
    now_ms: i64,
) -> Result<()> {
    access::order_for(store, caller, "zones remove", &key.order_id, now_ms).await?;
    let existed = store
        .remove_zone(key)
        .await
        .map_err(AdminError::store(format!("removing zone {key}")))?;
    if !existed {
        return Err(AdminError::NotFound(format!(
            "order {} has no zone {}: list them with `vigil zones list --order {}`",
            key.order_id, key.zone_id, key.order_id
        )));
    }
    let change = Change::new("zone_removed", json!({ "zone_id": key.zone_id.as_str() }));
    changes::record(store, &key.order_id, &caller.operator, &[change], now_ms).await?;
    Ok(())
}

/// Removes every zone whose validity ended at or before `at`, with its cell entries, and
/// records `zone_pruned` in each one's order's audit chain, made by `caller`. Returns the keys
/// removed.
///
/// Fails with [`AdminError::Store`] if the store fails.
pub async fn prune_expired<S: AdminStore + AuditLog>(
    store: &S,
    caller: &Caller,
    at: DateTime<Utc>,
    now_ms: i64,
) -> Result<Vec<ZoneKey>> {
    let removed = match &caller.scope {
        Scope::National => store
            .prune_expired_zones(at)
            .await
            .map_err(AdminError::store("pruning expired zones"))?,
        // A force's operator prunes their force's zones only, one by one: no other force's
        // protection changes as a side effect.
        Scope::Force(_) => {
            let mut removed = Vec::new();
            for (_, zones) in crate::orders::list_orders(store, caller).await? {
                for z in zones {
                    let expired = z.spec().valid_until.is_some_and(|u| u <= at);
                    if expired
                        && store
                            .remove_zone(&z.key())
                            .await
                            .map_err(AdminError::store(format!("removing zone {}", z.key())))?
                    {
                        removed.push(z.key());
                    }
                }
            }
            removed.sort();
            removed
        }
    };
    for key in &removed {
        let change = Change::new(
            "zone_pruned",
            json!({ "zone_id": key.zone_id.as_str(), "expired_by": at }),
        );
        changes::record(store, &key.order_id, &caller.operator, &[change], now_ms).await?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_aws::memory::MemoryStore;
    use vigil_core::ZoneId;

    fn zone(id: &str, until: Option<&str>) -> Zone {
        let mut v = serde_json::json!({"zone_id": id, "circle": {"lat": 51.5, "lon": -0.12, "radius_m": 100},
            "buffer_m": 500, "order_id": "o1"});
        if let Some(u) = until {
            v["valid_until"] = u.into();
        }
        Zone::new(serde_json::from_value(v).unwrap()).unwrap()
    }

    fn op() -> Caller {
        crate::orders::tests::op()
    }

    #[tokio::test]
    async fn zones_need_their_orders_and_leave_no_cells_behind() {
        let store = MemoryStore::new();
        let z = zone("home", None);
        let e = add_zone(&store, &op(), &z, false, 1).await.unwrap_err();
        assert!(matches!(e, AdminError::NotFound(_)), "{e}");
        let order: vigil_core::ProtectionOrder = serde_json::from_value(serde_json::json!({
            "order_id": "o1", "tag_id": "t1", "force_id": "met",
            "victim": {"victim_id": "v1", "phone": "+447700900123", "language": "en"}}))
        .unwrap();
        store.put_order(&order).await.unwrap();
        add_zone(&store, &op(), &z, false, 1).await.unwrap();
        add_zone(
            &store,
            &op(),
            &zone("old", Some("2020-01-01T00:00:00Z")),
            false,
            1,
        )
        .await
        .unwrap();
        let cells: Vec<String> = vigil_core::index::zone_cells(&z)
            .iter()
            .map(|c| c.key())
            .collect();
        assert!(!cells.is_empty());
        assert_eq!(
            list_zones(&store, &op(), Some(&order.order_id), 1)
                .await
                .unwrap()
                .len(),
            2
        );
        let pruned = prune_expired(&store, &op(), Utc::now(), 2).await.unwrap();
        assert_eq!(pruned, [zone("old", None).key()]);
        remove_zone(&store, &op(), &z.key(), 3).await.unwrap();
        for c in &cells {
            assert!(store.zone_cell_entries(c).await.unwrap().is_empty());
        }
        let e = remove_zone(&store, &op(), &z.key(), 4).await.unwrap_err();
        assert!(matches!(e, AdminError::NotFound(_)), "{e}");
        // Each change is in the order's chain, by its operator.
        let actions: Vec<String> = store
            .read(&order.order_id)
            .await
            .unwrap()
            .iter()
            .map(|r| format!("{} {}", r.detail["action"], r.detail["operator"]))
            .collect();
        assert_eq!(
            actions,
            [
                r#""zone_added" "local:op-7""#,
                r#""zone_added" "local:op-7""#,
                r#""zone_pruned" "local:op-7""#,
                r#""zone_removed" "local:op-7""#,
            ]
        );
    }

    fn order(id: &str) -> vigil_core::ProtectionOrder {
        serde_json::from_value(serde_json::json!({
            "order_id": id, "tag_id": "t1", "force_id": "met",
            "victim": {"victim_id": "v1", "phone": "+447700900123", "language": "en"}}))
        .unwrap()
    }

    #[tokio::test]
    async fn a_new_or_replaced_zone_ends_the_tags_window_at_once_and_no_other_tags() {
        use crate::orders::tests::{every_window_ended, windows_ended};
        let store = MemoryStore::new();
        store.put_order(&order("o1")).await.unwrap();
        let mut other = order("o2");
        other.tag_id = vigil_core::TagId::new("t2").unwrap();
        other.victim.victim_id = vigil_core::VictimId::new("v2").unwrap();
        store.put_order(&other).await.unwrap();
        let o1 = OrderId::new("o1").unwrap();
        let t1 = vigil_core::TagId::new("t1").unwrap();
        // Added at 00:02:10: armed for the watchdog's minute 00:03.
        add_zone(&store, &op(), &zone("home", None), false, 130_000)
            .await
            .unwrap();
        assert_eq!(
            windows_ended(&store, 130_000).await,
            [(o1.clone(), t1.clone())]
        );
        // Removed: a window can only be too short now; nothing to tell.
        remove_zone(&store, &op(), &zone("home", None).key(), 300_000)
            .await
            .unwrap();
        assert!(windows_ended(&store, 300_000).await.is_empty());
        // Replaced: told again.
        add_zone(&store, &op(), &zone("home", None), false, 400_000)
            .await
            .unwrap();
        add_zone(&store, &op(), &zone("home", None), true, 500_000)
            .await
            .unwrap();
        assert_eq!(
            windows_ended(&store, 500_000).await,
            [(o1.clone(), t1.clone())]
        );
        // Another victim's order, on another tag, is never touched.
        assert!(
            every_window_ended(&store)
                .await
                .iter()
                .all(|(o, t)| (o, t) == (&o1, &t1))
        );
    }

    #[tokio::test]
    async fn a_zone_whose_tag_cannot_be_told_is_saved_and_the_error_says_what_to_do() {
        let store = MemoryStore::new();
        store.put_order(&order("o1")).await.unwrap();
        store.fail_next_arm(vigil_aws::StoreError::Unavailable {
            service: "dynamodb",
            detail: "ServiceUnavailable".into(),
        });
        let z = zone("home", None);
        let e = add_zone(&store, &op(), &z, false, 130_000)
            .await
            .unwrap_err();
        assert!(matches!(e, AdminError::Store { .. }), "{e}");
        assert!(e.is_retryable(), "{e}");
        let text = e.to_string();
        for said in [
            "tag t1",
            "stop batching",
            "order o1 is saved and recorded",
            "at most 15 minutes",
            "vigil tags assign t1 --order o1",
        ] {
            assert!(text.contains(said), "{said:?} not in: {text}");
        }
        // The zone and its record are there; the retry the error names tells the tag.
        assert_eq!(store.get_zone(&z.key()).await.unwrap(), Some(z));
        let o1 = OrderId::new("o1").unwrap();
        let actions: Vec<String> = store
            .read(&o1)
            .await
            .unwrap()
            .iter()
            .map(|r| r.detail["action"].to_string())
            .collect();
        assert_eq!(actions, [r#""zone_added""#]);
        assert!(
            crate::orders::tests::windows_ended(&store, 130_000)
                .await
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_zone_id_used_by_another_order_never_replaces_that_orders_zone() {
        // Issue 11, defect 3: `zones add --zone-id home --order o-2` replaced o-1's home.
        let store = MemoryStore::new();
        store.put_order(&order("o1")).await.unwrap();
        store.put_order(&order("o2")).await.unwrap();
        let home_1 = zone("home", None);
        add_zone(&store, &op(), &home_1, false, 1).await.unwrap();
        let mut v = serde_json::to_value(&home_1).unwrap();
        v["order_id"] = "o2".into();
        v["circle"]["lat"] = 40.0.into();
        let home_2: Zone = serde_json::from_value(v).unwrap();
        add_zone(&store, &op(), &home_2, false, 1).await.unwrap();
        assert_eq!(
            store.get_zone(&home_1.key()).await.unwrap(),
            Some(home_1.clone())
        );
        assert_eq!(store.get_zone(&home_2.key()).await.unwrap(), Some(home_2));
        // The same order's id again: refused unless replacing is asked for.
        let e = add_zone(&store, &op(), &home_1, false, 1)
            .await
            .unwrap_err();
        assert!(matches!(e, AdminError::Conflict(_)), "{e}");
        assert!(e.to_string().contains("--replace"), "{e}");
        assert!(
            add_zone(&store, &op(), &home_1, true, 1).await.unwrap(),
            "a replacement"
        );
        // Removing one order's home leaves the other's.
        remove_zone(&store, &op(), &home_1.key(), 1).await.unwrap();
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
