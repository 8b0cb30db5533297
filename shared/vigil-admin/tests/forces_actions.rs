//! Moving a case to another force and migrating records written before forces
//! (docs/FORCES.md), over the in-memory store. (The isolation matrix is `forces_matrix.rs`,
//! alone in its binary so that its log capture sees every refusal.)

mod common;

use common::{caller, spec};
use vigil_admin::input::{order_id, tag_id};
use vigil_admin::{AdminError, devices, forces, orders};
use vigil_aws::memory::{MemoryMac, MemoryStore};
use vigil_aws::ports::{AdminStore, AuditLog, ForceRecord};
use vigil_core::DeviceId;
use vigil_core::proximity::{VictimDevice, VictimZoneTerms};
use vigil_testkit::{force, forces};

#[tokio::test]
async fn a_transfer_moves_the_whole_case_and_keeps_its_chain() {
    let store = MemoryStore::new();
    let forces = forces();
    let met = caller("op-met", "met");
    let tvp = caller("op-tvp", "tvp");
    let national = caller("admin-1", "national");
    let mac = MemoryMac::default();
    for (o, v) in [("o-1", "v-1"), ("o-2", "v-2")] {
        orders::create_order(
            &store,
            &mac,
            &met,
            &forces,
            None,
            &spec(o, "t-1", v, "+447700900123", 51.5),
            1,
        )
        .await
        .unwrap();
    }
    let o1 = order_id("o-1").unwrap();
    devices::set_victim_device(
        &store,
        &met,
        &o1,
        VictimDevice {
            device_id: DeviceId::new("d-1").unwrap(),
            zone: VictimZoneTerms::default(),
        },
        2,
    )
    .await
    .unwrap();
    let chain_before = store.read(&o1).await.unwrap();
    let t = forces::transfer_order(&store, &national, &forces, &o1, &force("tvp"), 3)
        .await
        .unwrap();
    // Both orders on the offender's tag move (no tag serves two forces), with the device.
    assert_eq!(t.orders.len(), 2);
    assert_eq!(t.devices, [DeviceId::new("d-1").unwrap()]);
    let t1 = tag_id("t-1").unwrap();
    assert_eq!(
        store.record_force(ForceRecord::Tag(&t1)).await.unwrap(),
        Some(force("tvp"))
    );
    // The new force sees and acts on it; the old one no longer does.
    orders::show_order(&store, &tvp, &o1, 4).await.unwrap();
    assert!(matches!(
        orders::show_order(&store, &met, &o1, 4).await,
        Err(AdminError::Forbidden(_))
    ));
    // The chain is whole: what was there is still there, and the transfer follows it.
    let chain = store.read(&o1).await.unwrap();
    assert_eq!(&chain[..chain_before.len()], &chain_before[..]);
    vigil_core::audit::verify_chain(&chain).unwrap();
    assert!(
        chain
            .iter()
            .any(|r| r.detail["action"] == "order_transferred"
                && r.detail["change"]["from"] == "met"
                && r.detail["change"]["to"] == "tvp")
    );
    // Running it again changes nothing.
    let again = forces::transfer_order(&store, &national, &forces, &o1, &force("tvp"), 5)
        .await
        .unwrap();
    assert!(again.orders.is_empty() && again.devices.is_empty());
}

#[tokio::test]
async fn migration_gives_old_records_the_default_force_once_and_loses_nothing() {
    let store = MemoryStore::new();
    let forces = forces();
    let national = caller("admin-1", "national");
    // Records written before forces existed: no force anywhere.
    let mut old = vigil_testkit::order();
    old.victim_device = Some(VictimDevice {
        device_id: DeviceId::new("d-old").unwrap(),
        zone: VictimZoneTerms::default(),
    });
    orders::provision_order(&store, &old, &[vigil_testkit::home_zone()])
        .await
        .unwrap();
    let met = caller("op-met", "met");
    // Until migrated, only national administrators see it; it protects as before.
    assert!(matches!(
        orders::show_order(&store, &met, &old.order_id, 1).await,
        Err(AdminError::Forbidden(_))
    ));
    let m = forces::migrate_forces(&store, &national, &forces, None, 2)
        .await
        .unwrap();
    assert_eq!(m.force, force("met"));
    assert_eq!(m.changed.orders, [old.order_id.clone()]);
    assert_eq!(m.changed.tags.len(), 1);
    assert_eq!(m.changed.devices, [DeviceId::new("d-old").unwrap()]);
    let (shown, zones) = orders::show_order(&store, &met, &old.order_id, 3)
        .await
        .unwrap();
    assert_eq!(zones.len(), 1);
    let mut expected = old.clone();
    expected.force_id = Some(force("met"));
    assert_eq!(shown, expected, "nothing but the force changed");
    // The tag's copy of the terms carries the force too (ingest's metrics read it there).
    let chain = store.read(&old.order_id).await.unwrap();
    assert_eq!(chain.last().unwrap().detail["action"], "force_assigned");
    // A second run changes nothing.
    let again = forces::migrate_forces(&store, &national, &forces, None, 4)
        .await
        .unwrap();
    assert_eq!(again.changed, Default::default());
    assert_eq!(store.read(&old.order_id).await.unwrap().len(), chain.len());
}
