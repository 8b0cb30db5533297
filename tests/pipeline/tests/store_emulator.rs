//! The admin port's operator paths, run identically on the in-memory adapter and on DynamoDB
//! (moto, started by vigil-local), so both adapters keep the same semantics.

use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use vigil_aws::memory::MemoryStore;
use vigil_aws::ports::{AdminStore, Commit, IngestStore};
use vigil_aws::{Config, DynamoStore};
use vigil_core::ingest::StateWrite;
use vigil_core::proximity::{VictimDevice, VictimPosition, VictimZoneTerms};
use vigil_core::state::ZoneState;
use vigil_core::{AlertLevel, DeviceId, OrderId, ProtectionOrder, TagId, Zone, ZoneId, ZoneKey};
use vigil_local::Emulator;

fn order(id: &str, tag: &str) -> ProtectionOrder {
    serde_json::from_value(serde_json::json!({
        "order_id": id, "tag_id": tag,
        "victim": {"victim_id": "v1", "phone": "+447700900123", "language": "en"}
    }))
    .unwrap()
}

fn zone(id: &str, order: &str, valid_until: Option<&str>) -> Zone {
    let mut v = serde_json::json!({"zone_id": id, "circle": {"lat": 51.5, "lon": -0.12, "radius_m": 100},
        "buffer_m": 500, "order_id": order});
    if let Some(u) = valid_until {
        v["valid_until"] = u.into();
    }
    Zone::new(serde_json::from_value(v).unwrap()).unwrap()
}

fn ids(s: &str) -> (OrderId, ZoneId, TagId) {
    (
        OrderId::new(s).unwrap(),
        ZoneId::new("home").unwrap(),
        TagId::new("t1").unwrap(),
    )
}

async fn admin_paths<S: AdminStore + IngestStore>(store: &S) {
    let (o1, home, t1) = ids("o1");
    let t2 = TagId::new("t2").unwrap();
    store.put_order(&order("o1", "t1")).await.unwrap();
    store.put_order(&order("o2", "t1")).await.unwrap();
    store.put_zone(&zone("home", "o1", None)).await.unwrap();
    let old = zone("old", "o1", Some("2020-01-01T00:00:00Z"));
    store.put_zone(&old).await.unwrap();

    assert_eq!(store.get_order(&o1).await.unwrap(), Some(order("o1", "t1")));
    assert_eq!(
        store.get_order(&OrderId::new("x").unwrap()).await.unwrap(),
        None
    );
    let listed: Vec<String> = store
        .list_orders()
        .await
        .unwrap()
        .iter()
        .map(|o| o.order_id.to_string())
        .collect();
    assert_eq!(listed, ["o1", "o2"]);
    let of_o1: Vec<ZoneId> = store
        .zones_of_order(&o1)
        .await
        .unwrap()
        .iter()
        .map(|z| z.id().clone())
        .collect();
    assert_eq!(of_o1, [home.clone(), old.id().clone()]);
    assert_eq!(store.list_zones().await.unwrap().len(), 2);
    let home_key = ZoneKey::new(o1.clone(), home.clone());
    assert_eq!(
        store.get_zone(&home_key).await.unwrap().unwrap().id(),
        &home
    );
    // Order o2's zone of the same id is another zone: writing it leaves o1's alone.
    let other = zone("home", "o2", None);
    store.put_zone(&other).await.unwrap();
    assert_eq!(store.list_zones().await.unwrap().len(), 3);
    assert!(store.remove_zone(&other.key()).await.unwrap());
    assert!(store.get_zone(&home_key).await.unwrap().is_some());

    // An open alert, as ingest commits one.
    let state = ZoneState {
        level: AlertLevel::Breach,
        since_ms: Some(1_000),
        ..ZoneState::default()
    };
    store
        .commit(&Commit {
            order_id: o1.clone(),
            tag_id: t1.clone(),
            writes: vec![StateWrite {
                zone_id: home.clone(),
                expected_rev: 0,
                state,
                pending: vec![],
            }],
            opened: vec![home.clone()],
            closed: vec![],
        })
        .await
        .unwrap();
    let open = store.open_alerts().await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(
        (open[0].level, open[0].state_rev, &open[0].tag_id),
        (AlertLevel::Breach, 1, &t1)
    );

    // Ending updates the order and the tag's summary.
    let end: DateTime<Utc> = "2030-01-01T00:00:00Z".parse().unwrap();
    let ended = store.end_order(&o1, end).await.unwrap().unwrap();
    assert_eq!(ended.valid_until, Some(end));
    let ctx = store.load_context(&t1, &[]).await.unwrap().unwrap();
    let summary = ctx.orders.iter().find(|s| s.order_id == o1).unwrap();
    assert_eq!(summary.valid_until, Some(end));
    assert_eq!(
        store
            .end_order(&OrderId::new("x").unwrap(), end)
            .await
            .unwrap(),
        None
    );

    // Moving to another tag moves the summary and the open mark; the old tag keeps o2 only.
    assert_eq!(store.assign_tag(&o1, &t2).await.unwrap(), Some(t1.clone()));
    let old_ctx = store.load_context(&t1, &[]).await.unwrap().unwrap();
    assert_eq!(
        old_ctx
            .orders
            .iter()
            .map(|s| s.order_id.as_str())
            .collect::<Vec<_>>(),
        ["o2"]
    );
    assert!(old_ctx.open.is_empty());
    let new_ctx = store.load_context(&t2, &[]).await.unwrap().unwrap();
    assert_eq!(new_ctx.orders[0].order_id, o1);
    assert_eq!(new_ctx.orders[0].valid_until, Some(end));
    assert_eq!(new_ctx.open, std::slice::from_ref(&home_key));
    assert_eq!(store.get_order(&o1).await.unwrap().unwrap().tag_id, t2);
    assert_eq!(store.open_alerts().await.unwrap()[0].tag_id, t2);
    assert_eq!(store.assign_tag(&o1, &t2).await.unwrap(), Some(t2.clone()));
    assert_eq!(
        store
            .assign_tag(&OrderId::new("x").unwrap(), &t2)
            .await
            .unwrap(),
        None
    );

    // Pruning removes the expired zone and every cell entry of it; the other stays.
    let cells: Vec<String> = vigil_core::index::zone_cells(&old)
        .iter()
        .map(|c| c.key())
        .collect();
    let pruned = store.prune_expired_zones(Utc::now()).await.unwrap();
    assert_eq!(pruned, [old.key()]);
    for c in &cells {
        assert_eq!(
            store.zone_cell_entries(c).await.unwrap(),
            std::slice::from_ref(&home_key),
            "{c}"
        );
    }
    assert!(store.get_zone(&old.key()).await.unwrap().is_none());
    assert!(
        store
            .prune_expired_zones(Utc::now())
            .await
            .unwrap()
            .is_empty()
    );
}

/// A victim's device (docs/PROXIMITY.md): registered with its order, it finds the order and
/// the order's tag; it follows the order to another tag; her position is stored only if
/// newer; "silent" marks are set and removed once.
async fn victim_device_paths<S: AdminStore + IngestStore>(store: &S) {
    let device = DeviceId::new("phone-v1").unwrap();
    let (o1, _, t1) = ids("o1");
    let t2 = TagId::new("t2").unwrap();
    assert!(store.device_context(&device).await.unwrap().is_none());
    let mut with_device = order("o1", "t1");
    with_device.victim_device = Some(VictimDevice {
        device_id: device.clone(),
        zone: VictimZoneTerms::default(),
    });
    store.put_order(&with_device).await.unwrap();
    store.put_order(&order("o2", "t1")).await.unwrap();
    let ctx = store.device_context(&device).await.unwrap().unwrap();
    assert!(ctx.latest.is_none());
    let found: Vec<(String, String)> = ctx
        .orders
        .iter()
        .map(|o| (o.terms.order_id.to_string(), o.tag_id.to_string()))
        .collect();
    assert_eq!(found, [("o1".to_owned(), "t1".to_owned())]);
    assert_eq!(ctx.orders[0].silent, None);
    assert!(!ctx.orders[0].moving_zone_open);

    let at = |ms: i64, seq: u64| VictimPosition {
        seq,
        at_ms: ms,
        received_at_ms: ms + 100,
        lat: 51.5,
        lon: -0.12,
        accuracy_m: 10.0,
    };
    assert!(
        store
            .save_position(&device, &at(2_000, 5), 99)
            .await
            .unwrap()
    );
    assert!(
        !store
            .save_position(&device, &at(2_000, 5), 99)
            .await
            .unwrap(),
        "a replay"
    );
    assert!(
        !store
            .save_position(&device, &at(1_000, 9), 99)
            .await
            .unwrap(),
        "older"
    );
    assert!(
        store
            .save_position(&device, &at(2_000, 6), 99)
            .await
            .unwrap(),
        "same time, next counter"
    );
    let stored = store
        .victim_positions(&[device.clone(), DeviceId::new("none").unwrap()])
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[&device].seq, 6);

    assert!(
        store
            .mark_victim_silent(&t1, &o1, Some(2_100))
            .await
            .unwrap()
    );
    assert!(
        !store
            .mark_victim_silent(&t1, &o1, Some(9_999))
            .await
            .unwrap(),
        "marked already"
    );
    let ctx = store.device_context(&device).await.unwrap().unwrap();
    assert_eq!(ctx.orders[0].silent, Some(Some(2_100)));
    assert_eq!(ctx.latest.map(|p| p.seq), Some(6));
    let tag_ctx = store.load_context(&t1, &[]).await.unwrap().unwrap();
    assert_eq!(tag_ctx.silent, BTreeMap::from([(o1.clone(), Some(2_100))]));
    assert!(store.clear_victim_silent(&t1, &o1).await.unwrap());
    assert!(
        !store.clear_victim_silent(&t1, &o1).await.unwrap(),
        "removed already"
    );
    assert!(
        store.mark_victim_silent(&t1, &o1, None).await.unwrap(),
        "never reported"
    );
    assert_eq!(
        store.load_context(&t1, &[]).await.unwrap().unwrap().silent,
        BTreeMap::from([(o1.clone(), None)])
    );

    // The order moves to another tag: her device follows it.
    store.assign_tag(&o1, &t2).await.unwrap();
    let ctx = store.device_context(&device).await.unwrap().unwrap();
    assert_eq!(ctx.orders.len(), 1);
    assert_eq!(ctx.orders[0].tag_id, t2);
}

#[tokio::test]
async fn victim_device_paths_in_memory() {
    victim_device_paths(&MemoryStore::new()).await;
}

#[tokio::test]
async fn victim_device_paths_on_dynamodb() {
    victim_device_paths(&dynamo_store().await.1).await;
}

async fn dynamo_store() -> (Emulator, DynamoStore) {
    let emulator = Emulator::start().await.expect("emulator starts");
    let env: BTreeMap<String, String> = emulator.env_vars().into_iter().collect();
    let config = Config::from_lookup(|k| env.get(k).cloned()).unwrap();
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&emulator.sdk_config()),
        &config,
    );
    (emulator, store)
}

#[tokio::test]
async fn admin_paths_in_memory() {
    admin_paths(&MemoryStore::new()).await;
}

#[tokio::test]
async fn admin_paths_on_dynamodb() {
    admin_paths(&dynamo_store().await.1).await;
}
