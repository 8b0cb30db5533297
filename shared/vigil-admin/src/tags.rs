//! Tags as orders see them: moving an order to another tag, and the audit of tag changes made
//! elsewhere (registering and deactivating a tag is IoT's, done by the CLI), recorded on every
//! order that names the tag.

use crate::access::all_orders;
use crate::access::{self, Caller, authorize};
use crate::changes::{self, Change};
use crate::error::{AdminError, Result};
use serde_json::json;
use vigil_aws::ports::{AdminStore, AuditLog, ForceRecord, WatchStore};
use vigil_core::forces::Forces;
use vigil_core::{ForceId, OrderId, TagId};

/// Registers `tag` to a force before its certificate is made (`vigil tags register`): the
/// caller's force (a national administrator names it). A tag already of that force stays so;
/// a tag of another force is refused. Returns the force.
///
/// Fails with [`AdminError::Invalid`] for an unknown force or a national administrator naming
/// none, [`AdminError::Forbidden`] for another force's tag, or [`AdminError::Store`].
pub async fn register_to_force(
    store: &impl AdminStore,
    caller: &Caller,
    forces: &Forces,
    force: Option<&ForceId>,
    tag: &TagId,
) -> Result<ForceId> {
    const ACTION: &str = "tags register";
    let force = caller.force_for_new(ACTION, force)?;
    if forces.get(&force).is_none() {
        return Err(crate::access::unknown_force(&force, forces));
    }
    access::claim(store, caller, ACTION, ForceRecord::Tag(tag), &force).await?;
    Ok(force)
}

/// The messages kept in quarantine under `key` (a tag id as the topic named it, or
/// `device:<id>` for a victim's device), newest last. A quarantine record belongs to the
/// force of its tag or device, read from the store; a key no tag or device of a force has (an
/// unknown tag, a malformed id) belongs to no force, and only national administrators see it.
///
/// Fails with [`AdminError::Forbidden`] for another force's records or a record of no force,
/// or [`AdminError::Store`].
pub async fn quarantined(
    store: &impl AdminStore,
    caller: &Caller,
    key: &str,
) -> Result<Vec<vigil_aws::ports::QuarantineRecord>> {
    const ACTION: &str = "tags quarantined";
    let (device, tag) = match key.strip_prefix("device:") {
        Some(d) => (vigil_core::DeviceId::new(d).ok(), None),
        None => (None, TagId::new(key).ok()),
    };
    let record = match (&device, &tag) {
        (Some(d), _) => Some(ForceRecord::Device(d)),
        (_, Some(t)) => Some(ForceRecord::Tag(t)),
        _ => None,
    };
    let force = match record {
        Some(r) => access::force_of(store, r).await?,
        None => None,
    };
    authorize(caller, ACTION, "quarantine record", force.as_ref())?;
    let mut records = store
        .quarantined(key)
        .await
        .map_err(AdminError::store("reading the quarantine"))?;
    records.sort_by_key(|r| r.received_at_ms);
    Ok(records)
}

/// Checks that `caller` may act on `tag` (`action`): its stored force is theirs.
///
/// Fails with [`AdminError::Forbidden`], or [`AdminError::Store`].
pub async fn authorize_tag(
    store: &impl AdminStore,
    caller: &Caller,
    action: &str,
    tag: &TagId,
) -> Result<()> {
    let force = access::force_of(store, ForceRecord::Tag(tag)).await?;
    authorize(caller, action, "tag", force.as_ref())?;
    Ok(())
}

/// Assigns a tag to an order (the order's `tag_id`, the tag item's summary and open-alert
/// marks move in one transaction) and records `tag_assigned` in the order's audit chain, made
/// by `caller`; the tag is armed for the watchdog's next minute, and ends any batching window
/// it has, judged without this order's zones (`end_window`; the tag the order leaves needs
/// nothing: its window can only be too short now). The tag must be of the order's force (a tag
/// with none becomes so). Assigning the tag the order has already changes nothing but tells it
/// again. Returns the tag the order had before.
///
/// Fails with [`AdminError::NotFound`] when there is no such order, [`AdminError::Forbidden`]
/// for an order or tag of another force, or [`AdminError::Store`].
pub async fn assign_tag<S: AdminStore + AuditLog + WatchStore>(
    store: &S,
    caller: &Caller,
    tag: &TagId,
    id: &OrderId,
    now_ms: i64,
) -> Result<TagId> {
    const ACTION: &str = "tags assign";
    let order = access::order_for(store, caller, ACTION, id, now_ms).await?;
    let force = access::order_force(&order)?;
    access::claim(store, caller, ACTION, ForceRecord::Tag(tag), force).await?;
    let previous = store
        .assign_tag(id, tag)
        .await
        .map_err(AdminError::store(format!(
            "assigning tag {tag} to order {id}"
        )))?
        .ok_or_else(|| {
            AdminError::NotFound(format!("no order {id}: list them with `vigil orders list`"))
        })?;
    let change = Change::new(
        "tag_assigned",
        json!({ "from": previous.as_str(), "to": tag.as_str() }),
    );
    changes::record(store, id, &caller.operator, &[change], now_ms).await?;
    crate::watch_from_next_minute(store, tag, now_ms).await?;
    crate::end_window(store, id, tag, now_ms).await?;
    Ok(previous)
}

/// Records that `tag` was registered with the certificate `certificate_id`
/// (`tag_registered`) on every order that names it.
///
/// Fails with [`AdminError::Store`] if the store fails.
pub async fn record_registered<S: AdminStore + AuditLog>(
    store: &S,
    caller: &Caller,
    tag: &TagId,
    certificate_id: &str,
    now_ms: i64,
) -> Result<()> {
    let change = Change::new(
        "tag_registered",
        json!({ "tag_id": tag.as_str(), "certificate_id": certificate_id }),
    );
    record_on_orders_of(store, tag, caller, change, now_ms).await
}

/// Records that `tag`'s certificates were deactivated (`tag_deactivated`) on every order
/// that names it.
///
/// Fails with [`AdminError::Store`] if the store fails.
pub async fn record_deactivated<S: AdminStore + AuditLog>(
    store: &S,
    caller: &Caller,
    tag: &TagId,
    now_ms: i64,
) -> Result<()> {
    let change = Change::new("tag_deactivated", json!({ "tag_id": tag.as_str() }));
    record_on_orders_of(store, tag, caller, change, now_ms).await
}

/// Records a change of a tag in the audit chain of every order that names it (a tag no order
/// names has no chain yet: its registration shows in CloudTrail and IoT's own records).
async fn record_on_orders_of<S: AdminStore + AuditLog>(
    store: &S,
    tag: &TagId,
    caller: &Caller,
    change: Change,
    now_ms: i64,
) -> Result<()> {
    for (order, _) in all_orders(store).await? {
        if order.tag_id == *tag {
            changes::record(
                store,
                &order.order_id,
                &caller.operator,
                std::slice::from_ref(&change),
                now_ms,
            )
            .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::tag_id;
    use crate::orders::create_order;
    use crate::orders::tests::{forces, op, spec};
    use vigil_aws::memory::{MemoryMac, MemoryStore};

    #[tokio::test]
    async fn assigning_moves_the_summary() {
        let store = MemoryStore::new();
        create_order(
            &store,
            &MemoryMac::default(),
            &op(),
            &forces(),
            None,
            &spec(),
            1,
        )
        .await
        .unwrap();
        let o1 = crate::input::order_id("o1").unwrap();
        let previous = assign_tag(&store, &op(), &tag_id("t2").unwrap(), &o1, 120_000)
            .await
            .unwrap();
        assert_eq!(previous.as_str(), "t1");
        assert_eq!(
            store.get_order(&o1).await.unwrap().unwrap().tag_id.as_str(),
            "t2"
        );
        // The tag the order moved to ends any window, judged without the order's zones; the
        // one it left needs nothing.
        assert_eq!(
            crate::orders::tests::windows_ended(&store, 120_000).await,
            [(o1.clone(), tag_id("t2").unwrap())]
        );
        // Assigning the same tag again changes nothing but tells it again (the retry an
        // error of any change names).
        assign_tag(&store, &op(), &tag_id("t2").unwrap(), &o1, 300_000)
            .await
            .unwrap();
        assert_eq!(
            crate::orders::tests::windows_ended(&store, 300_000).await,
            [(o1.clone(), tag_id("t2").unwrap())]
        );
    }

    #[tokio::test]
    async fn a_tag_change_is_recorded_on_every_order_that_names_the_tag() {
        let store = MemoryStore::new();
        create_order(
            &store,
            &MemoryMac::default(),
            &op(),
            &forces(),
            None,
            &spec(),
            1,
        )
        .await
        .unwrap();
        let t1 = tag_id("t1").unwrap();
        record_registered(&store, &op(), &t1, "cert-1", 2)
            .await
            .unwrap();
        record_deactivated(&store, &op(), &t1, 3).await.unwrap();
        // A tag no order names has no chain to record on.
        record_deactivated(&store, &op(), &tag_id("t9").unwrap(), 4)
            .await
            .unwrap();
        let chain = store
            .read(&crate::input::order_id("o1").unwrap())
            .await
            .unwrap();
        let last: Vec<&serde_json::Value> = chain.iter().rev().take(2).map(|r| &r.detail).collect();
        assert_eq!(last[0]["action"], "tag_deactivated");
        assert_eq!(last[1]["action"], "tag_registered");
        assert_eq!(last[1]["change"]["certificate_id"], "cert-1");
    }
}
