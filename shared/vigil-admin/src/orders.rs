//! Orders: create (checked, with its zones), show, list, end; the one provisioning path that
//! the CLI, the pipeline tests and the scenario runner write orders through.

use crate::changes::{self, Change};
use crate::error::{AdminError, Result};
use crate::input::OrderSpec;
use crate::operator::Operator;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::json;
use vigil_aws::ports::{AdminStore, AuditLog, DestinationMac};
use vigil_core::{OrderId, ProtectionOrder, Zone};

/// An order as operators see it: the victim's phone masked unless revealed.
#[derive(Debug, Clone, Serialize)]
pub struct OrderView {
    /// The order (its `victim.phone` masked unless revealed).
    pub order: serde_json::Value,
    /// The zones that restrain this offender.
    pub zones: Vec<String>,
    /// Whether the order is in force now.
    pub in_force: bool,
}

impl OrderView {
    /// A view of `order` at `now`; `reveal` keeps the full phone number.
    pub fn new(order: &ProtectionOrder, zones: &[Zone], reveal: bool, now: DateTime<Utc>) -> Self {
        let mut value = serde_json::to_value(order).expect("orders serialize");
        if !reveal {
            value["victim"]["phone"] = serde_json::Value::String(order.victim.phone.redacted());
        }
        OrderView {
            order: value,
            zones: zones.iter().map(|z| z.id().to_string()).collect(),
            in_force: order.in_force(now.timestamp_millis()),
        }
    }
}

/// Creates an order (and the zones its spec holds) after checking all of it, and records
/// `order_created` (with the keyed hash of the victim's phone, never the number) and a
/// `zone_added` per zone in the order's audit chain, made by `who`. Refuses an order id that
/// exists. Returns the order and zones written.
///
/// Fails with [`AdminError::Invalid`] for a bad spec or an existing id (nothing is written),
/// or [`AdminError::Store`] if the store or the key service fails.
pub async fn create_order<S: AdminStore + AuditLog>(
    store: &S,
    mac: &impl DestinationMac,
    who: &Operator,
    spec: &OrderSpec,
    now_ms: i64,
) -> Result<(ProtectionOrder, Vec<Zone>)> {
    let checked = spec.check()?;
    let (order, zones) = (checked.order, checked.zones);
    let id = &order.order_id;
    if store
        .get_order(id)
        .await
        .map_err(AdminError::store(format!("reading order {id}")))?
        .is_some()
    {
        return Err(AdminError::Invalid(format!(
            "order {id} exists already: show it with `vigil orders show {id}`, end it with \
             `vigil orders end {id}`, or use another id"
        )));
    }
    // The phone's keyed hash first: if the key service fails, nothing is written, so no order
    // exists without its `order_created` record.
    let phone_mac = changes::phone_mac(mac, &order.victim.phone).await?;
    provision_order(store, &order, &zones).await?;
    let mut recorded = vec![Change::new(
        "order_created",
        json!({
            "tag_id": order.tag_id.as_str(),
            "victim_id": order.victim.victim_id.as_str(),
            "phone_mac": phone_mac,
            "valid_from": order.valid_from,
            "valid_until": order.valid_until,
        }),
    )];
    recorded.extend(zones.iter().map(|z| Change::zone("zone_added", z)));
    changes::record(store, id, who, &recorded, now_ms).await?;
    Ok((order, zones))
}

/// Writes a checked order, then its zones (each indexed under its cells): the one provisioning
/// path, shared by [`create_order`], the pipeline tests and the scenario runner. Records
/// nothing in the audit.
///
/// Fails with [`AdminError::Store`] if a write fails (what was written before stays).
pub async fn provision_order(
    store: &impl AdminStore,
    order: &ProtectionOrder,
    zones: &[Zone],
) -> Result<()> {
    let id = &order.order_id;
    store
        .put_order(order)
        .await
        .map_err(AdminError::store(format!("writing order {id}")))?;
    for zone in zones {
        store
            .put_zone(zone)
            .await
            .map_err(AdminError::store(format!("writing zone {}", zone.id())))?;
    }
    Ok(())
}

/// The order `id`.
///
/// Fails with [`AdminError::NotFound`] when there is no such order, or [`AdminError::Store`].
pub(crate) async fn existing_order(
    store: &impl AdminStore,
    id: &OrderId,
) -> Result<ProtectionOrder> {
    store
        .get_order(id)
        .await
        .map_err(AdminError::store(format!("reading order {id}")))?
        .ok_or_else(|| {
            AdminError::NotFound(format!("no order {id}: list them with `vigil orders list`"))
        })
}

/// The order and its zones.
///
/// Fails with [`AdminError::NotFound`] when there is no such order.
pub async fn show_order(
    store: &impl AdminStore,
    id: &OrderId,
) -> Result<(ProtectionOrder, Vec<Zone>)> {
    let order = existing_order(store, id).await?;
    let zones = store
        .zones_of_order(id)
        .await
        .map_err(AdminError::store(format!("listing zones of {id}")))?;
    Ok((order, zones))
}

/// Every order, with its zones.
///
/// Fails with [`AdminError::Store`] if the store fails.
pub async fn list_orders(store: &impl AdminStore) -> Result<Vec<(ProtectionOrder, Vec<Zone>)>> {
    let orders = store
        .list_orders()
        .await
        .map_err(AdminError::store("listing orders"))?;
    let zones = store
        .list_zones()
        .await
        .map_err(AdminError::store("listing zones"))?;
    Ok(orders
        .into_iter()
        .map(|o| {
            let z = zones
                .iter()
                .filter(|z| z.order_id() == &o.order_id)
                .cloned()
                .collect();
            (o, z)
        })
        .collect())
}

/// Ends an order at `at` (now, or a given instant) and records `order_ended` in its audit
/// chain, made by `who`. Returns the updated order.
///
/// Fails with [`AdminError::NotFound`] when there is no such order, [`AdminError::Invalid`]
/// when `at` is before the order starts, or [`AdminError::Store`].
pub async fn end_order<S: AdminStore + AuditLog>(
    store: &S,
    who: &Operator,
    id: &OrderId,
    at: DateTime<Utc>,
    now_ms: i64,
) -> Result<ProtectionOrder> {
    let (order, _) = show_order(store, id).await?;
    if let Some(from) = order.valid_from.filter(|f| at <= *f) {
        return Err(AdminError::Invalid(format!(
            "order {id} starts at {}; an end at {at} would be before it",
            from.to_rfc3339_opts(SecondsFormat::Secs, true)
        )));
    }
    let ended = store
        .end_order(id, at)
        .await
        .map_err(AdminError::store(format!("ending order {id}")))?
        .ok_or_else(|| AdminError::NotFound(format!("no order {id}")))?;
    let change = Change::new("order_ended", json!({ "valid_until": at }));
    changes::record(store, id, who, &[change], now_ms).await?;
    Ok(ended)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::input::{order_id, parse_json};
    use vigil_aws::memory::{MemoryMac, MemoryStore};

    pub(crate) fn spec() -> OrderSpec {
        parse_json(
            r#"{"order_id":"o1","tag_id":"t1",
            "victim":{"victim_id":"v1","phone":"+447700900123","language":"en"},
            "zones":[{"zone_id":"home","circle":{"lat":51.5,"lon":-0.12,"radius_m":100},"buffer_m":500}]}"#,
        )
        .unwrap()
    }

    pub(crate) fn op() -> Operator {
        Operator::Local("op-7".into())
    }

    /// A key service that is down.
    struct MacDown;

    impl vigil_aws::ports::DestinationMac for MacDown {
        async fn mac(
            &self,
            _: &vigil_core::PhoneNumber,
        ) -> std::result::Result<String, vigil_aws::StoreError> {
            Err(vigil_aws::StoreError::Unavailable {
                service: "kms",
                detail: "KMSInternalException".into(),
            })
        }
    }

    #[tokio::test]
    async fn an_order_the_key_service_cannot_hash_is_not_written_unaudited() {
        let store = MemoryStore::new();
        let e = create_order(&store, &MacDown, &op(), &spec(), 1_000)
            .await
            .unwrap_err();
        assert!(matches!(e, AdminError::Store { .. }), "{e}");
        assert!(
            list_orders(&store).await.unwrap().is_empty(),
            "no order without its record"
        );
        // Once the key service answers, the same command succeeds.
        create_order(&store, &MemoryMac::default(), &op(), &spec(), 2_000)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn create_show_end_and_refuse_duplicates() {
        let store = MemoryStore::new();
        let mac = MemoryMac::default();
        let (order, zones) = create_order(&store, &mac, &op(), &spec(), 1_000)
            .await
            .unwrap();
        assert_eq!(zones.len(), 1);
        let e = create_order(&store, &mac, &op(), &spec(), 2_000)
            .await
            .unwrap_err();
        assert!(matches!(e, AdminError::Invalid(_)), "{e}");
        let (shown, zones) = show_order(&store, &order.order_id).await.unwrap();
        assert_eq!(shown, order);
        assert_eq!(zones.len(), 1);
        let now = Utc::now();
        let view = OrderView::new(&shown, &zones, false, now);
        assert!(!view.order.to_string().contains("7700900123"), "{view:?}");
        assert!(
            OrderView::new(&shown, &zones, true, now)
                .order
                .to_string()
                .contains("+447700900123")
        );
        let ended = end_order(&store, &op(), &order.order_id, now, 3_000)
            .await
            .unwrap();
        assert_eq!(ended.valid_until, Some(now));
        let missing = order_id("nope").unwrap();
        let e = show_order(&store, &missing).await.unwrap_err();
        assert!(matches!(e, AdminError::NotFound(_)), "{e}");
        assert_eq!(list_orders(&store).await.unwrap().len(), 1);
        // Every change is in the order's chain, by its operator; the phone only as its hash.
        let chain = store.read(&order.order_id).await.unwrap();
        let actions: Vec<&str> = chain
            .iter()
            .map(|r| r.detail["action"].as_str().unwrap())
            .collect();
        assert_eq!(actions, ["order_created", "zone_added", "order_ended"]);
        assert!(chain.iter().all(|r| r.detail["operator"] == "local:op-7"));
        assert!(
            !serde_json::to_string(&chain)
                .unwrap()
                .contains("7700900123")
        );
    }
}
