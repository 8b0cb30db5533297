//! A victim's own device (docs/PROXIMITY.md): giving an order her device and the moving zone
//! around it, once the CLI has registered the device in AWS IoT with the victim-device policy.

use crate::access::{self, Caller};
use crate::changes::{self, Change};
use crate::error::{AdminError, Result};
use serde_json::json;
use vigil_aws::ports::{AdminStore, AuditLog, ForceRecord, WatchStore};
use vigil_core::proximity::VictimDevice;
use vigil_core::{OrderId, ProtectionOrder};

/// Gives order `id` her device with its moving zone's settings: the order, the tag's summary
/// (what ingest reads) and the device's item are written, and `victim_device_set` is recorded in
/// the order's audit chain, made by `caller`; then the order's tag ends any batching window (a
/// tag whose victim carries a device never batches: her moving zone is judged fix by fix;
/// `end_window`). The device belongs to the order's force (a device with none becomes so; one
/// of another force is refused). Returns the order as written.
///
/// Only this order changes: her other orders keep theirs, and no other victim's protection
/// moves. A device already named by an order of another victim is refused: one device, one
/// person.
///
/// Fails with [`AdminError::Invalid`] for settings out of range, [`AdminError::NotFound`] for
/// no such order, [`AdminError::Conflict`] for a device that is another victim's, or
/// [`AdminError::Store`] (also when the tag could not be told: the device is given then, and
/// the error says so).
pub async fn set_victim_device<S: AdminStore + AuditLog + WatchStore>(
    store: &S,
    caller: &Caller,
    id: &OrderId,
    device: VictimDevice,
    now_ms: i64,
) -> Result<ProtectionOrder> {
    const ACTION: &str = "devices assign";
    device.zone.check().map_err(AdminError::Invalid)?;
    let mut order = access::order_for(store, caller, ACTION, id, now_ms).await?;
    let force = access::order_force(&order)?.clone();
    let d = ForceRecord::Device(&device.device_id);
    access::claim(store, caller, ACTION, d, &force).await?;
    let others = store
        .list_orders()
        .await
        .map_err(AdminError::store("listing orders"))?;
    if let Some(other) = others.iter().find(|o| {
        o.victim.victim_id != order.victim.victim_id
            && o.victim_device
                .as_ref()
                .is_some_and(|d| d.device_id == device.device_id)
    }) {
        return Err(AdminError::Conflict(format!(
            "device {} is the device of order {}'s victim: one device protects one person; register another device",
            device.device_id, other.order_id
        )));
    }
    let z = &device.zone;
    let change = Change::new(
        "victim_device_set",
        json!({
            "device_id": device.device_id.as_str(),
            "radius_m": z.radius_m,
            "buffer_m": z.buffer_m,
            "max_position_age_s": z.max_position_age_s,
            "pair_window_s": z.pair_window_s,
        }),
    );
    order.victim_device = Some(device);
    store
        .put_order(&order)
        .await
        .map_err(AdminError::store(format!("writing order {id}")))?;
    changes::record(store, id, &caller.operator, &[change], now_ms).await?;
    crate::end_window(store, id, &order.tag_id, now_ms).await?;
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_aws::memory::MemoryStore;
    use vigil_aws::ports::IngestStore as _;
    use vigil_core::DeviceId;
    use vigil_core::proximity::VictimZoneTerms;

    fn order(id: &str, victim: &str) -> ProtectionOrder {
        serde_json::from_value(json!({
            "order_id": id, "tag_id": "t1", "force_id": "met",
            "victim": {"victim_id": victim, "phone": "+447700900123", "language": "en"}
        }))
        .unwrap()
    }

    fn device(id: &str, radius_m: f64) -> VictimDevice {
        VictimDevice {
            device_id: DeviceId::new(id).unwrap(),
            zone: VictimZoneTerms {
                radius_m,
                ..VictimZoneTerms::default()
            },
        }
    }

    #[tokio::test]
    async fn her_device_reaches_ingest_is_audited_and_is_hers_alone() {
        let store = MemoryStore::new();
        let who = Caller::of_force(
            crate::Operator::Local("op-1".into()),
            vigil_testkit::force("met"),
        );
        for (id, victim) in [("o1", "v1"), ("o2", "v1"), ("o3", "v2")] {
            store.put_order(&order(id, victim)).await.unwrap();
        }
        let o1 = OrderId::new("o1").unwrap();
        let written = set_victim_device(&store, &who, &o1, device("phone-v1", 400.0), 7)
            .await
            .unwrap();
        assert_eq!(written.victim_device, Some(device("phone-v1", 400.0)));
        // Her order's tag stops batching at once: her moving zone is judged fix by fix.
        assert_eq!(
            crate::orders::tests::windows_ended(&store, 7).await,
            [(o1.clone(), vigil_core::TagId::new("t1").unwrap())]
        );
        // Ingest finds the order through her device, with the settings.
        let ctx = store
            .device_context(&DeviceId::new("phone-v1").unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ctx.orders.len(), 1);
        assert_eq!(
            ctx.orders[0]
                .terms
                .victim_device
                .as_ref()
                .unwrap()
                .zone
                .radius_m,
            400.0
        );
        let audit = store.read(&o1).await.unwrap();
        let last = audit.last().unwrap();
        assert_eq!(last.kind, "admin_change");
        let text = serde_json::to_string(&last.detail).unwrap();
        assert!(
            text.contains("victim_device_set") && text.contains("op-1"),
            "{text}"
        );
        // Her second order may name the same device; another victim's may not.
        let o2 = OrderId::new("o2").unwrap();
        set_victim_device(&store, &who, &o2, device("phone-v1", 500.0), 8)
            .await
            .unwrap();
        let o3 = OrderId::new("o3").unwrap();
        let e = set_victim_device(&store, &who, &o3, device("phone-v1", 500.0), 9)
            .await
            .unwrap_err();
        assert!(matches!(e, AdminError::Conflict(_)), "{e}");
        assert!(
            store
                .get_order(&o3)
                .await
                .unwrap()
                .unwrap()
                .victim_device
                .is_none()
        );
        // Settings out of range and unknown orders change nothing.
        let e = set_victim_device(&store, &who, &o3, device("phone-v2", 10.0), 9)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("radius_m"), "{e}");
        let nobody = OrderId::new("none").unwrap();
        let e = set_victim_device(&store, &who, &nobody, device("phone-v2", 500.0), 9)
            .await
            .unwrap_err();
        assert!(matches!(e, AdminError::NotFound(_)), "{e}");
        assert!(store.read(&o3).await.unwrap().is_empty());
        // Only the orders given the device had their tag told (o3's change was refused).
        let told: Vec<String> = crate::orders::tests::every_window_ended(&store)
            .await
            .into_iter()
            .map(|(o, _)| o.to_string())
            .collect();
        assert_eq!(told, ["o1", "o2"]);
    }
}
