//! The isolation matrix (docs/FORCES.md): every operator action against a record of the
//! operator's own force and one of another force, as a force operator and as a national
//! administrator. Own: allowed. Other: refused with `Forbidden`, nothing changed, and a log
//! line that names the action and the kind of record but no id, phone or position. National:
//! allowed, and recorded in the order's chain. It is the only test in this binary: tracing
//! caches whether a log line is wanted when it is first hit, and a test on another thread
//! without the capture would make the capture miss refusals.

mod common;

use common::{caller, spec};
use vigil_admin::access::{self, NATIONAL_ACCESS_KIND};
use vigil_admin::input::{order_id, tag_id, zone_id};
use vigil_admin::{AdminError, alerts, devices, forces, orders};
use vigil_admin::{tags, zones};
use vigil_aws::memory::{MemoryMac, MemoryStore};
use vigil_aws::ports::{AdminStore, AuditEntry, AuditLog};
use vigil_core::proximity::{VictimDevice, VictimZoneTerms};
use vigil_core::{DeviceId, OrderId, Zone};
use vigil_testkit::{CapturedLogs, force, forces};

/// Operators were told of an urgent event on `order` (what the alert function records).
async fn told(store: &MemoryStore, order: &OrderId) {
    let entry = AuditEntry {
        kind: vigil_core::escalation::NOTIFIED_KIND.into(),
        detail: serde_json::json!({"event_id": "zc:x:home:1", "kind": "zone_breach",
            "urgency": "urgent", "zone_id": "home"}),
    };
    store.append(order, &[entry], 5).await.unwrap();
}

fn is_forbidden<T: std::fmt::Debug>(what: &str, r: vigil_admin::Result<T>) {
    match r {
        Err(AdminError::Forbidden(m)) => {
            assert!(m.contains("refused"), "{what}: {m}");
            for secret in ["o-tvp", "+447700900456", "51.45", "v-tvp", "t-tvp"] {
                assert!(!m.contains(secret), "{what} refusal names {secret}: {m}");
            }
        }
        other => panic!("{what}: expected Forbidden, got {other:?}"),
    }
}

fn not_forbidden<T: std::fmt::Debug>(what: &str, r: vigil_admin::Result<T>) {
    if let Err(AdminError::Forbidden(m)) = &r {
        panic!("{what}: own force refused: {m}");
    }
}

#[tokio::test]
async fn every_action_is_refused_on_another_forces_records_and_allowed_on_its_own() {
    let logs = CapturedLogs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let store = MemoryStore::new();
    let mac = MemoryMac::default();
    let forces = forces();
    let met = caller("op-met", "met");
    let tvp = caller("op-tvp", "tvp");
    let national = caller("admin-1", "national");

    // One order of each force, each made by its own operator.
    let (own, _) = orders::create_order(
        &store,
        &mac,
        &met,
        &forces,
        None,
        &spec("o-met", "t-met", "v-met", "+447700900123", 51.50),
        1,
    )
    .await
    .unwrap();
    assert_eq!(own.force_id, Some(force("met")));
    let (other, _) = orders::create_order(
        &store,
        &mac,
        &tvp,
        &forces,
        None,
        &spec("o-tvp", "t-tvp", "v-tvp", "+447700900456", 51.45),
        1,
    )
    .await
    .unwrap();
    let (o_own, o_other) = (own.order_id.clone(), other.order_id.clone());
    told(&store, &o_own).await;
    told(&store, &o_other).await;
    let other_chain = store.read(&o_other).await.unwrap().len();
    let now = chrono::Utc::now();
    let home = |o: &OrderId| -> Zone {
        Zone::new(
            serde_json::from_value(
                serde_json::json!({"zone_id": "work", "order_id": o.as_str(),
                "circle": {"lat": 51.51, "lon": -0.13, "radius_m": 100}, "buffer_m": 500}),
            )
            .unwrap(),
        )
        .unwrap()
    };
    let device = |id: &str| VictimDevice {
        device_id: DeviceId::new(id).unwrap(),
        zone: VictimZoneTerms::default(),
    };

    // ---- Another force's records: every action refused, nothing changed. ----
    is_forbidden(
        "orders show",
        orders::show_order(&store, &met, &o_other, 9).await,
    );
    is_forbidden(
        "orders end",
        orders::end_order(&store, &met, &o_other, now, 9).await,
    );
    is_forbidden(
        "orders create (for another force)",
        orders::create_order(
            &store,
            &mac,
            &met,
            &forces,
            Some(&force("tvp")),
            &spec("o-new", "t-new", "v-new", "+447700900789", 51.5),
            9,
        )
        .await,
    );
    is_forbidden(
        "orders create (with another force's tag)",
        orders::create_order(
            &store,
            &mac,
            &met,
            &forces,
            None,
            &spec("o-new", "t-tvp", "v-new", "+447700900789", 51.5),
            9,
        )
        .await,
    );
    is_forbidden(
        "zones add",
        zones::add_zone(&store, &met, &home(&o_other), false, 9).await,
    );
    is_forbidden(
        "zones list",
        zones::list_zones(&store, &met, Some(&o_other), 9).await,
    );
    is_forbidden(
        "zones remove",
        zones::remove_zone(
            &store,
            &met,
            &vigil_core::ZoneKey::new(o_other.clone(), zone_id("home").unwrap()),
            9,
        )
        .await,
    );
    is_forbidden(
        "tags assign (another force's order)",
        tags::assign_tag(&store, &met, &tag_id("t-met").unwrap(), &o_other, 9).await,
    );
    is_forbidden(
        "tags assign (another force's tag)",
        tags::assign_tag(&store, &met, &tag_id("t-tvp").unwrap(), &o_own, 9).await,
    );
    is_forbidden(
        "tags register (another force's tag)",
        tags::register_to_force(&store, &met, &forces, None, &tag_id("t-tvp").unwrap()).await,
    );
    is_forbidden(
        "tags deactivate",
        tags::authorize_tag(&store, &met, "tags deactivate", &tag_id("t-tvp").unwrap()).await,
    );
    is_forbidden(
        "devices assign",
        devices::set_victim_device(&store, &met, &o_other, device("d-1"), 9).await,
    );
    is_forbidden(
        "alerts unacked",
        alerts::unacknowledged(&store, &met, &o_other, 9).await,
    );
    is_forbidden(
        "alerts ack (zone)",
        alerts::acknowledge(&store, &met, &o_other, &zone_id("home").unwrap(), None, 9).await,
    );
    is_forbidden(
        "alerts ack (event)",
        alerts::acknowledge_event(&store, &met, &o_other, "zc:x:home:1", None, 9).await,
    );
    is_forbidden(
        "alerts ack (order)",
        alerts::acknowledge_order(&store, &met, &o_other, None, 9).await,
    );
    is_forbidden(
        "evidence export",
        access::order_for(&store, &met, "evidence export", &o_other, 9).await,
    );
    is_forbidden(
        "orders transfer",
        forces::transfer_order(&store, &met, &forces, &o_own, &force("tvp"), 9).await,
    );
    is_forbidden(
        "admin migrate-forces",
        forces::migrate_forces(&store, &met, &forces, None, 9).await,
    );
    is_forbidden("dlq", access::national_only(&met, "dlq list"));
    is_forbidden(
        "tags quarantined (another force's tag)",
        tags::quarantined(&store, &met, "t-tvp").await,
    );
    is_forbidden(
        "tags quarantined (an unknown tag: no force)",
        tags::quarantined(&store, &met, "t-unknown").await,
    );
    // Listings leave the other force's records out.
    let listed = orders::list_orders(&store, &met).await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|(o, _)| o.order_id.as_str())
            .collect::<Vec<_>>(),
        ["o-met"]
    );
    assert!(
        zones::list_zones(&store, &met, None, 9)
            .await
            .unwrap()
            .iter()
            .all(|z| z.order_id() == &o_own)
    );
    assert!(
        alerts::list_alerts(&store, &met)
            .await
            .unwrap()
            .iter()
            .all(|a| a.alert.order_id == o_own)
    );
    // Pruning expired zones prunes the caller's force's only.
    let pruned = zones::prune_expired(&store, &met, now, 9).await.unwrap();
    assert_eq!(pruned.len(), 1);
    assert_eq!(pruned[0].order_id, o_own);
    // The other force's order is untouched: its chain, its zones, its tag.
    assert_eq!(store.read(&o_other).await.unwrap().len(), other_chain);
    assert_eq!(store.zones_of_order(&o_other).await.unwrap().len(), 2);
    let stored = store.get_order(&o_other).await.unwrap().unwrap();
    assert_eq!(stored, other);
    // Every refusal was logged, with no personal data.
    let text = logs.text();
    let refusals = text.lines().filter(|l| l.contains("refused")).count();
    assert!(refusals >= 20, "{refusals} refusals logged:\n{text}");
    for secret in ["+447700900456", "v-tvp", "o-tvp", "51.45"] {
        assert!(!text.contains(secret), "the log names {secret}:\n{text}");
    }

    // ---- Its own records: allowed. ----
    not_forbidden(
        "orders show",
        orders::show_order(&store, &met, &o_own, 10).await,
    );
    not_forbidden(
        "zones add",
        zones::add_zone(&store, &met, &home(&o_own), false, 10).await,
    );
    not_forbidden(
        "zones list",
        zones::list_zones(&store, &met, Some(&o_own), 10).await,
    );
    not_forbidden(
        "devices assign",
        devices::set_victim_device(&store, &met, &o_own, device("d-met"), 10).await,
    );
    not_forbidden(
        "tags register",
        tags::register_to_force(&store, &met, &forces, None, &tag_id("t-met").unwrap()).await,
    );
    not_forbidden(
        "tags deactivate",
        tags::authorize_tag(&store, &met, "tags deactivate", &tag_id("t-met").unwrap()).await,
    );
    not_forbidden(
        "tags quarantined",
        tags::quarantined(&store, &met, "t-met").await,
    );
    not_forbidden(
        "alerts unacked",
        alerts::unacknowledged(&store, &met, &o_own, 10).await,
    );
    not_forbidden(
        "alerts ack (event)",
        alerts::acknowledge_event(&store, &met, &o_own, "zc:x:home:1", None, 10).await,
    );
    not_forbidden(
        "tags assign",
        tags::assign_tag(&store, &met, &tag_id("t-met2").unwrap(), &o_own, 10).await,
    );
    not_forbidden(
        "orders end",
        orders::end_order(&store, &met, &o_own, now, 10).await,
    );
    // A force operator's own actions are not national accesses.
    assert!(
        store
            .read(&o_own)
            .await
            .unwrap()
            .iter()
            .all(|r| r.kind != NATIONAL_ACCESS_KIND)
    );

    // ---- National administration: across forces, every access recorded. ----
    let before = store.read(&o_other).await.unwrap().len();
    orders::show_order(&store, &national, &o_other, 11)
        .await
        .unwrap();
    alerts::acknowledge_order(&store, &national, &o_other, Some("seen"), 11)
        .await
        .unwrap();
    let chain = store.read(&o_other).await.unwrap();
    let national_records: Vec<_> = chain[before..]
        .iter()
        .filter(|r| r.kind == NATIONAL_ACCESS_KIND)
        .map(|r| r.detail["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(national_records, ["orders show", "alerts ack"]);
    assert!(
        chain[before..]
            .iter()
            .all(|r| r.detail["operator"] == "local:admin-1")
    );
    assert_eq!(
        orders::list_orders(&store, &national).await.unwrap().len(),
        2
    );
    // Messages of unknown tags: national administrators only.
    tags::quarantined(&store, &national, "t-unknown")
        .await
        .unwrap();
    // A national administrator must say which force a new record is for.
    let e = orders::create_order(
        &store,
        &mac,
        &national,
        &forces,
        None,
        &spec("o-n", "t-n", "v-n", "+447700900789", 51.5),
        11,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, AdminError::Invalid(_)), "{e}");
    // An unknown force changes nothing.
    let e = orders::create_order(
        &store,
        &mac,
        &national,
        &forces,
        Some(&force("kent")),
        &spec("o-n", "t-n", "v-n", "+447700900789", 51.5),
        11,
    )
    .await
    .unwrap_err();
    assert!(
        e.to_string().contains("not a force of this deployment"),
        "{e}"
    );
    assert!(
        store
            .get_order(&order_id("o-n").unwrap())
            .await
            .unwrap()
            .is_none()
    );
}
