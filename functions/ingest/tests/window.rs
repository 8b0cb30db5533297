//! Adaptive reporting in ingest, on the in-memory ports: the batching window judged from the
//! newest fix, asked for when it changes; shrinking never waits, growing is judged at most
//! every ten minutes; no window in pursuit or where her device is judged; an order still to
//! come into force counts.

mod common;

use common::{T0, TestPorts, ports_with};
use vigil_aws::ports::{AdminStore, ReportingStore};
use vigil_core::events::AlertBody;
use vigil_core::fix::encode_fix;
use vigil_core::proximity::{VictimDevice, VictimZoneTerms};
use vigil_core::reporting::{Ask, Commanded, ReportingCommand, Window};
use vigil_core::{DeviceId, OrderId, TagId};
use vigil_ingest::{Outcome, handle, rule_event};
use vigil_testkit::{fix_north, order};

/// The order: adaptive reporting is allowed by default (`policy.adaptive_reporting`).
fn adaptive() -> vigil_core::ProtectionOrder {
    order()
}

async fn setup() -> TestPorts {
    ports_with(&adaptive()).await
}

fn tag() -> Commanded {
    Commanded::Tag(TagId::new("tag-1").unwrap())
}

/// A fix `north_km` north of home's centre, `at_s` seconds after T0, received 2 s later.
async fn send(p: &TestPorts, seq: u64, at_s: i64, north_km: f64) -> Outcome {
    let f = fix_north(seq, T0 + at_s * 1000, north_km * 1000.0);
    handle(
        rule_event("tag-1", "fix", &encode_fix(&f), f.at_ms + 2_000),
        p,
    )
    .await
    .unwrap()
}

/// The windows asked for so far.
fn windows(p: &TestPorts) -> Vec<Window> {
    p.queue
        .sent()
        .iter()
        .filter_map(|e| match &e.body {
            AlertBody::Reporting {
                ask: Ask::Window,
                window,
                ..
            } => *window,
            _ => None,
        })
        .collect()
}

/// As the alert function keeps it after telling the tag a window.
async fn told_window(p: &TestPorts, batch_s: u32, basis_ms: i64) {
    let before = p
        .store
        .tag_reporting(&TagId::new("tag-1").unwrap())
        .await
        .unwrap()
        .unwrap()
        .command;
    let command = ReportingCommand {
        report_interval_s: 60,
        sent_at_ms: basis_ms + 100,
        attempts: 1,
        pursuit: false,
        order_id: OrderId::new("o1").unwrap(),
        batch_s,
        window_basis_ms: Some(basis_ms),
    };
    p.store
        .save_command(&tag(), Some(&command), before.as_ref())
        .await
        .unwrap();
}

#[tokio::test]
async fn far_from_every_zone_a_window_is_asked_for_and_judged_again_only_after_ten_minutes() {
    let p = setup().await;
    assert_eq!(send(&p, 1, 0, 80.0).await, Outcome::Evaluated { events: 1 });
    let w = windows(&p);
    assert_eq!(w.len(), 1);
    assert_eq!((w[0].batch_s, w[0].basis_ms), (900, T0 + 2_000));
    // Not told yet (the alert function has not run): no new judgement within ten minutes.
    for i in 1..10 {
        assert_eq!(send(&p, i + 1, i as i64 * 60, 80.0).await, Outcome::Quiet);
    }
    assert_eq!(windows(&p).len(), 1);
    // Ten minutes on, judged again (still not told): asked again.
    send(&p, 11, 600, 80.0).await;
    assert_eq!(windows(&p).len(), 2);
}

#[tokio::test]
async fn a_tag_told_a_window_is_judged_on_every_message_and_shrunk_at_once() {
    let p = setup().await;
    told_window(&p, 900, T0 - 60_000).await;
    // Still 80 km out: the window holds, nothing asked, on every message.
    assert_eq!(send(&p, 1, 0, 80.0).await, Outcome::Quiet);
    assert_eq!(send(&p, 2, 60, 79.0).await, Outcome::Quiet);
    assert!(windows(&p).is_empty());
    // 30 km out, the next message (no ten-minute wait): down to 300 s at once.
    send(&p, 3, 1_200, 30.0).await;
    assert_eq!(windows(&p).last().map(|w| w.batch_s), Some(300));
    told_window(&p, 300, T0 + 1_202_000).await;
    // 8 km: send every fix at once.
    send(&p, 4, 1_800, 8.0).await;
    assert_eq!(windows(&p).last().map(|w| w.batch_s), Some(0));
}

#[tokio::test]
async fn no_window_where_her_device_is_judged() {
    let mut o = adaptive();
    o.victim_device = Some(VictimDevice {
        device_id: DeviceId::new("phone-v1").unwrap(),
        zone: VictimZoneTerms::default(),
    });
    let p = ports_with(&o).await;
    send(&p, 1, 0, 300.0).await;
    assert!(windows(&p).is_empty(), "every fix at once");
    // Told a window before her device was added: shrunk to none.
    told_window(&p, 900, T0).await;
    send(&p, 2, 60, 300.0).await;
    assert_eq!(windows(&p).last().map(|w| w.batch_s), Some(0));
}

#[tokio::test]
async fn no_window_unless_the_order_allows_it() {
    let mut off = order();
    off.policy.adaptive_reporting = false;
    let p = ports_with(&off).await;
    assert_eq!(send(&p, 1, 0, 80.0).await, Outcome::Quiet);
    assert!(windows(&p).is_empty(), "turned off: every fix at once");
    // Told a window while it was allowed, then not: none from the next message.
    told_window(&p, 900, T0).await;
    send(&p, 2, 60, 80.0).await;
    assert_eq!(windows(&p).last().map(|w| w.batch_s), Some(0));
}

#[tokio::test]
async fn no_window_in_pursuit() {
    let p = setup().await;
    // Into the buffer: a warning, pursuit asked for by the alert function (not a window).
    send(&p, 1, 0, 0.4).await;
    send(&p, 2, 60, 0.4).await;
    assert!(windows(&p).is_empty());
}

#[tokio::test]
async fn an_order_still_to_come_into_force_counts_for_the_window() {
    // o2 restrains the same tag from tomorrow, with a zone 5 km from where the tag is now, 80
    // km from o1's home: the window is judged with it, so none is asked for.
    let p = setup().await;
    let mut o2 = adaptive();
    o2.order_id = OrderId::new("o2").unwrap();
    o2.valid_from = chrono::DateTime::from_timestamp_millis(T0 + 86_400_000);
    p.store.put_order(&o2).await.unwrap();
    let near = fix_north(0, T0, 85_000.0);
    let work: vigil_core::Zone = serde_json::from_value(serde_json::json!({
        "zone_id": "work", "circle": {"lat": near.lat, "lon": near.lon, "radius_m": 100},
        "buffer_m": 500, "order_id": "o2"
    }))
    .unwrap();
    p.store.put_zone(&work).await.unwrap();
    assert_eq!(send(&p, 1, 0, 80.0).await, Outcome::Quiet);
    assert!(windows(&p).is_empty(), "{:?}", windows(&p));
    // Told a window before o2 was written: ended on the next message.
    told_window(&p, 900, T0).await;
    send(&p, 2, 60, 80.0).await;
    assert_eq!(windows(&p).last().map(|w| w.batch_s), Some(0));
}
