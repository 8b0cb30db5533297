//! Orders: create (checked, with its zones), show, list, end; the one provisioning path that
//! the CLI, the pipeline tests and the scenario runner write orders through.

use crate::access::{self, Caller};
use crate::changes::{self, Change};
use crate::error::{AdminError, Result};
use crate::input::OrderSpec;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::json;
use vigil_aws::ports::{AdminStore, AuditLog, DestinationMac, ForceRecord, WatchStore};
use vigil_core::forces::Forces;
use vigil_core::{ForceId, OrderId, ProtectionOrder, Zone};

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
/// `order_created` (with the keyed hash of the victim's phone, never the number, and the
/// order's force) and a `zone_added` per zone in the order's audit chain, made by `caller`.
///
/// The order belongs to the caller's force (a national administrator names it: `force`); a
/// victim without a language gets the force's default. Its tag must be of the same force: a
/// tag with no force yet becomes the order's force's, a tag of another force is refused. The
/// tag is armed for the watchdog's next minute, so a tag silent from the start is told within
/// the watchdog's rules rather than at its next sweep; a tag already batching for another
/// order ends its window, judged without this order's zones (`end_window`). Refuses an order
/// id that exists. Returns the order and zones written.
///
/// Fails with [`AdminError::Invalid`] for a bad spec, an unknown force or an existing id,
/// [`AdminError::Forbidden`] for another force or another force's tag (nothing is written),
/// or [`AdminError::Store`] if the store or the key service fails.
#[allow(clippy::too_many_arguments)]
pub async fn create_order<S: AdminStore + AuditLog + WatchStore>(
    store: &S,
    mac: &impl DestinationMac,
    caller: &Caller,
    forces: &Forces,
    force: Option<&ForceId>,
    spec: &OrderSpec,
    now_ms: i64,
) -> Result<(ProtectionOrder, Vec<Zone>)> {
    const ACTION: &str = "orders create";
    let force = caller.force_for_new(ACTION, force)?;
    let settings = forces
        .get(&force)
        .ok_or_else(|| unknown_force(&force, forces))?;
    let checked = spec.check_with_default_language(settings.default_language)?;
    let (mut order, zones) = (checked.order, checked.zones);
    order.force_id = Some(force.clone());
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
    access::claim(
        store,
        caller,
        ACTION,
        ForceRecord::Tag(&order.tag_id),
        &force,
    )
    .await?;
    // The phone's keyed hash first: if the key service fails, nothing is written, so no order
    // exists without its `order_created` record.
    let phone_mac = changes::phone_mac(mac, &order.victim.phone).await?;
    provision_order(store, &order, &zones).await?;
    let mut recorded = vec![Change::new(
        "order_created",
        json!({
            "force_id": force.as_str(),
            "tag_id": order.tag_id.as_str(),
            "victim_id": order.victim.victim_id.as_str(),
            "phone_mac": phone_mac,
            "valid_from": order.valid_from,
            "valid_until": order.valid_until,
        }),
    )];
    recorded.extend(zones.iter().map(|z| Change::zone("zone_added", z)));
    changes::record(store, id, &caller.operator, &recorded, now_ms).await?;
    crate::watch_from_next_minute(store, &order.tag_id, now_ms).await?;
    crate::end_window(store, id, &order.tag_id, now_ms).await?;
    Ok((order, zones))
}

/// Writes a checked order, then its zones (each indexed under its cells): the one provisioning
/// path, shared by [`create_order`], the pipeline tests and the scenario runner. Records
/// nothing in the audit, and tells no tag: a live order's tag is told by the operator actions
/// ([`create_order`] ends a window its tag may have for another order).
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

pub(crate) use crate::access::{all_orders, existing_order, unknown_force};

/// The order and its zones, for `caller` (a national administrator's look is recorded in the
/// order's chain).
///
/// Fails with [`AdminError::NotFound`] when there is no such order, or
/// [`AdminError::Forbidden`] when it is another force's.
pub async fn show_order<S: AdminStore + AuditLog>(
    store: &S,
    caller: &Caller,
    id: &OrderId,
    now_ms: i64,
) -> Result<(ProtectionOrder, Vec<Zone>)> {
    let order = access::order_for(store, caller, "orders show", id, now_ms).await?;
    Ok((order, zones_of(store, id).await?))
}

/// The zones of order `id`.
pub(crate) async fn zones_of(store: &impl AdminStore, id: &OrderId) -> Result<Vec<Zone>> {
    store
        .zones_of_order(id)
        .await
        .map_err(AdminError::store(format!("listing zones of {id}")))
}

/// Every order `caller` may see (their force's; a national administrator's: all, the listing
/// logged), with its zones.
///
/// Fails with [`AdminError::Store`] if the store fails.
pub async fn list_orders(
    store: &impl AdminStore,
    caller: &Caller,
) -> Result<Vec<(ProtectionOrder, Vec<Zone>)>> {
    let all = all_orders(store).await?;
    if caller.scope == crate::access::Scope::National {
        tracing::info!(
            target: "vigil_admin::access",
            operator = %caller.operator.label(),
            orders = all.len(),
            "national administrator listed orders of every force"
        );
    }
    Ok(all
        .into_iter()
        .filter(|(o, _)| caller.sees(o.force_id.as_ref()))
        .collect())
}

/// Ends an order at `at` (now, or a given instant) and records `order_ended` in its audit
/// chain, made by `caller`. Returns the updated order.
///
/// Fails with [`AdminError::NotFound`] when there is no such order, [`AdminError::Invalid`]
/// when `at` is before the order starts, or [`AdminError::Store`].
pub async fn end_order<S: AdminStore + AuditLog>(
    store: &S,
    caller: &Caller,
    id: &OrderId,
    at: DateTime<Utc>,
    now_ms: i64,
) -> Result<ProtectionOrder> {
    let order = access::order_for(store, caller, "orders end", id, now_ms).await?;
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
    changes::record(store, id, &caller.operator, &[change], now_ms).await?;
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

    pub(crate) fn op() -> Caller {
        Caller::of_force(
            crate::Operator::Local("op-7".into()),
            vigil_testkit::force("met"),
        )
    }

    pub(crate) fn forces() -> Forces {
        vigil_testkit::forces()
    }

    /// The (order, tag) pairs whose window an action at `now_ms` armed to end: the watchdog's
    /// next minute.
    pub(crate) async fn windows_ended(
        store: &MemoryStore,
        now_ms: i64,
    ) -> Vec<(OrderId, vigil_core::TagId)> {
        let minute = now_ms.div_euclid(60_000) + 1;
        WatchStore::due(store, minute).await.unwrap().changed
    }

    /// Every (order, tag) pair armed to end a window, at any minute.
    pub(crate) async fn every_window_ended(
        store: &MemoryStore,
    ) -> Vec<(OrderId, vigil_core::TagId)> {
        WatchStore::armed(store, 0, i64::MAX / 60_000)
            .await
            .unwrap()
            .keys()
            .filter_map(|(_, part)| vigil_aws::ports::order_change_of(part))
            .collect()
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
        let e = create_order(&store, &MacDown, &op(), &forces(), None, &spec(), 1_000)
            .await
            .unwrap_err();
        assert!(matches!(e, AdminError::Store { .. }), "{e}");
        assert!(
            list_orders(&store, &op()).await.unwrap().is_empty(),
            "no order without its record"
        );
        // Once the key service answers, the same command succeeds.
        create_order(
            &store,
            &MemoryMac::default(),
            &op(),
            &forces(),
            None,
            &spec(),
            2_000,
        )
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn create_show_end_and_refuse_duplicates() {
        let store = MemoryStore::new();
        let mac = MemoryMac::default();
        let (order, zones) = create_order(&store, &mac, &op(), &forces(), None, &spec(), 1_000)
            .await
            .unwrap();
        assert_eq!(zones.len(), 1);
        // A tag already batching for another order learns of this one's zones at once.
        assert_eq!(
            windows_ended(&store, 1_000).await,
            [(order.order_id.clone(), order.tag_id.clone())]
        );
        // The tag is armed for the watchdog's next minute, not left to its next sweep.
        let armed = vigil_aws::ports::WatchStore::armed(&store, 1, 1)
            .await
            .unwrap();
        assert!(
            armed.values().any(|tags| tags.contains(&order.tag_id)),
            "{armed:?}"
        );
        let e = create_order(&store, &mac, &op(), &forces(), None, &spec(), 2_000)
            .await
            .unwrap_err();
        assert!(matches!(e, AdminError::Invalid(_)), "{e}");
        let (shown, zones) = show_order(&store, &op(), &order.order_id, 2_500)
            .await
            .unwrap();
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
        let e = show_order(&store, &op(), &missing, 2_500)
            .await
            .unwrap_err();
        assert!(matches!(e, AdminError::NotFound(_)), "{e}");
        assert_eq!(list_orders(&store, &op()).await.unwrap().len(), 1);
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
