//! The victim's moving zone in the ingest handler, on the in-memory ports (docs/PROXIMITY.md):
//! his fix against her newest position, her position against his newest fix, her device's
//! silence, and what her device's bad messages leave behind.

use vigil_aws::memory::{MemoryQueue, MemoryStore};
use vigil_aws::metrics::MemoryMetrics;
use vigil_aws::ports::AdminStore;
use vigil_core::events::{AlertBody, AlertEvent};
use vigil_core::fix::encode_fix;
use vigil_core::proximity::{VICTIM_ZONE_ID, VictimDevice, VictimZoneTerms};
use vigil_core::{AlertLevel, DeviceId, Fix, ZoneKind};
use vigil_ingest::{Outcome, Ports, handle, position_event, rule_event};
use vigil_testkit::{HOME, fix_north, order};

const T0: i64 = 1_764_432_000_000;
const DEVICE: &str = "phone-v1";
/// Where she is: 5 km north of home, far from the fixed zone.
const HERE_M: f64 = 5_000.0;
const M_PER_DEG_LAT: f64 = 111_250.0;

type TestPorts = Ports<MemoryStore, MemoryQueue, MemoryMetrics>;

async fn setup() -> TestPorts {
    let store = MemoryStore::new();
    let mut o = order();
    o.victim_device = Some(VictimDevice {
        device_id: DeviceId::new(DEVICE).unwrap(),
        zone: VictimZoneTerms::default(),
    });
    store.put_order(&o).await.unwrap();
    Ports::new(store, MemoryQueue::default(), MemoryMetrics::default())
}

/// His fix `north_m` metres north of home, `at_s` seconds after T0, received 300 ms later.
async fn his(p: &TestPorts, seq: u64, at_s: i64, north_m: f64) -> Outcome {
    let f: Fix = fix_north(seq, T0 + at_s * 1000, north_m);
    handle(
        rule_event("tag-1", "fix", &encode_fix(&f), f.at_ms + 300),
        p,
    )
    .await
    .unwrap()
}

fn position_payload(seq: u64, at_ms: i64, north_m: f64) -> Vec<u8> {
    format!(
        r#"{{"v":1,"seq":{seq},"at_ms":{at_ms},"lat":{},"lon":{},"accuracy_m":10}}"#,
        HOME.0 + north_m / M_PER_DEG_LAT,
        HOME.1
    )
    .into_bytes()
}

/// Her position `north_m` metres north of home, `at_s` seconds after T0, received 500 ms later.
async fn hers(p: &TestPorts, seq: u64, at_s: i64, north_m: f64) -> Outcome {
    let at_ms = T0 + at_s * 1000;
    let payload = position_payload(seq, at_ms, north_m);
    handle(position_event(DEVICE, &payload, at_ms + 500), p)
        .await
        .unwrap()
}

/// The moving zone's level changes queued so far.
fn moving(p: &TestPorts) -> Vec<(AlertLevel, AlertLevel)> {
    p.queue
        .sent()
        .iter()
        .filter_map(|e| match &e.body {
            AlertBody::ZoneChange {
                zone_id,
                zone_kind,
                change,
                ..
            } if zone_id.as_str() == VICTIM_ZONE_ID => {
                assert_eq!(*zone_kind, ZoneKind::VictimLocation);
                change.transition.as_ref().map(|t| (t.from, t.to))
            }
            _ => None,
        })
        .collect()
}

/// Her device's silence changes queued so far: (silent, last report).
fn device_changes(p: &TestPorts) -> Vec<(bool, Option<i64>)> {
    p.queue
        .sent()
        .iter()
        .filter_map(|e| match &e.body {
            AlertBody::VictimDevice {
                silent,
                last_report_ms,
                ..
            } => Some((*silent, *last_report_ms)),
            _ => None,
        })
        .collect()
}

/// No event may carry her coordinates: the latitude she was at, as JSON prints it.
fn assert_no_position_of_hers(events: &[AlertEvent], north_m: f64) {
    let lat = format!("{}", HOME.0 + north_m / M_PER_DEG_LAT);
    let text = serde_json::to_string(events).unwrap();
    assert!(!text.contains(&lat[..8]), "her latitude {lat} in {text}");
}

#[tokio::test]
async fn his_fix_near_her_fresh_position_raises_the_moving_zone() {
    let p = setup().await;
    assert_eq!(hers(&p, 1, 0, HERE_M).await, Outcome::Quiet);
    // 300 m from her: inside the 500 m circle.
    assert_eq!(
        his(&p, 1, 30, HERE_M + 300.0).await,
        Outcome::Evaluated { events: 1 }
    );
    assert_eq!(moving(&p), [(AlertLevel::Clear, AlertLevel::Breach)]);
    assert_no_position_of_hers(&p.queue.sent(), HERE_M);
}

#[tokio::test]
async fn her_position_near_his_recent_fix_raises_it_and_ends_the_silence() {
    let p = setup().await;
    // His fix before her device ever reported: operators hear it is silent (once).
    his(&p, 1, 0, HERE_M + 1_200.0).await;
    his(&p, 2, 20, HERE_M + 1_200.0).await;
    assert_eq!(device_changes(&p), [(true, None)]);
    // She reports 1.2 km from him: inside the warning buffer; her device is back.
    assert_eq!(
        hers(&p, 1, 30, HERE_M).await,
        Outcome::Evaluated { events: 2 }
    );
    assert_eq!(device_changes(&p), [(true, None), (false, None)]);
    assert_eq!(moving(&p), [(AlertLevel::Clear, AlertLevel::Warning)]);
}

#[tokio::test]
async fn her_device_going_silent_is_told_once_and_no_all_clear_comes_while_silent() {
    let p = setup().await;
    hers(&p, 1, 0, HERE_M).await;
    his(&p, 1, 10, HERE_M + 1_200.0).await;
    assert_eq!(moving(&p), [(AlertLevel::Clear, AlertLevel::Warning)]);
    // She stops reporting; he drives 4 km away (47 m/s, a plausible speed) and stays there
    // for ten minutes. Her position is stale after 300 s: no all-clear, one "silent" event
    // naming her last report.
    for i in 0..10 {
        his(&p, 2 + i, 70 + 60 * i as i64, HERE_M + 4_000.0).await;
    }
    assert_eq!(moving(&p), [(AlertLevel::Clear, AlertLevel::Warning)]);
    // Named by her last position's time (its device time).
    assert_eq!(device_changes(&p), [(true, Some(T0))]);
    // Back, 4 km from him: the silence ends, and the run of paired reports clearly outside
    // that began at 70 s (before the silence, nothing compared since) has lasted the clear
    // time: all clear, as after a fixed zone's tag is silent and then reports far away.
    hers(&p, 2, 700, HERE_M).await;
    assert_eq!(device_changes(&p), [(true, Some(T0)), (false, Some(T0))]);
    assert_eq!(
        moving(&p),
        [
            (AlertLevel::Clear, AlertLevel::Warning),
            (AlertLevel::Warning, AlertLevel::Clear)
        ]
    );
}

#[tokio::test]
async fn a_stale_fix_next_to_a_fresh_position_raises_nothing() {
    let p = setup().await;
    his(&p, 1, 0, HERE_M + 100.0).await;
    // She reports right where he was, twenty minutes later: his fix is not "near now". The
    // one event is her device's return (his fix had found it silent: it never reported).
    assert_eq!(
        hers(&p, 1, 1_200, HERE_M).await,
        Outcome::Evaluated { events: 1 }
    );
    assert!(moving(&p).is_empty());
    // Her device was reported silent by his fix (she had never reported), and is back now.
    assert_eq!(device_changes(&p), [(true, None), (false, None)]);
}

#[tokio::test]
async fn a_replayed_or_older_position_changes_nothing() {
    let p = setup().await;
    hers(&p, 2, 60, HERE_M).await;
    assert_eq!(hers(&p, 2, 60, HERE_M).await, Outcome::Duplicate);
    assert_eq!(hers(&p, 1, 30, HERE_M + 300.0).await, Outcome::Duplicate);
    let kept = p
        .store
        .victim_position(&DeviceId::new(DEVICE).unwrap())
        .unwrap();
    assert_eq!(kept.seq, 2);
    assert_eq!(p.metrics.total("MessageDuplicate"), 2);
}

#[tokio::test]
async fn her_devices_bad_messages_are_quarantined_without_their_payload() {
    let p = setup().await;
    let at_ms = T0;
    let good = String::from_utf8(position_payload(1, at_ms, HERE_M)).unwrap();
    let lat = format!("{}", HOME.0 + HERE_M / M_PER_DEG_LAT);
    let string_lat = good.replace(&lat, &format!("\"{lat}\""));
    let cases = [
        (
            position_event(DEVICE, string_lat.as_bytes(), at_ms + 500),
            "malformed",
        ),
        (
            position_event("phone-unknown", good.as_bytes(), at_ms + 500),
            "unknown_device",
        ),
        (
            {
                let mut e = position_event(DEVICE, good.as_bytes(), at_ms + 500);
                e["client_id"] = "tag-1".into();
                e
            },
            "client_mismatch",
        ),
        (
            position_event(DEVICE, good.as_bytes(), at_ms - 3_600_000),
            "device_time_in_future",
        ),
    ];
    for (event, reason) in cases {
        let outcome = handle(event, &p).await.unwrap();
        assert_eq!(
            outcome,
            Outcome::Rejected {
                reason: reason.into(),
                operator_events: 0
            }
        );
    }
    let kept = p.store.quarantined_all();
    assert_eq!(kept.len(), 4);
    for r in &kept {
        assert!(r.tag_id.starts_with("device:"), "{}", r.tag_id);
        let text = format!("{} {} {}", r.detail, r.payload, r.reason);
        assert!(!text.contains(&lat[..7]), "her latitude in {text}");
    }
    assert!(
        p.queue.sent().is_empty(),
        "a refused position changes no alert"
    );
    assert!(
        p.store
            .victim_position(&DeviceId::new(DEVICE).unwrap())
            .is_none()
    );
}

#[tokio::test]
async fn a_tag_event_channel_cannot_carry_a_position_nor_a_position_a_tag_event() {
    let p = setup().await;
    let payload = position_payload(1, T0, HERE_M);
    // Her device's event names a tag id: refused as a tag's message from the wrong client.
    let mut e = position_event(DEVICE, &payload, T0 + 500);
    e["tag_id"] = "tag-1".into();
    let outcome = handle(e, &p).await.unwrap();
    assert!(matches!(outcome, Outcome::Rejected { .. }), "{outcome:?}");
    assert!(p.queue.sent().is_empty());
}

#[tokio::test]
async fn an_order_ending_with_the_moving_zone_open_and_her_device_silent_closes_it() {
    let p = setup().await;
    hers(&p, 1, 0, HERE_M).await;
    his(&p, 1, 30, HERE_M + 300.0).await;
    assert_eq!(moving(&p), [(AlertLevel::Clear, AlertLevel::Breach)]);
    // Her device falls silent; the order ends at +20 min.
    let mut o = order();
    o.victim_device = Some(VictimDevice {
        device_id: DeviceId::new(DEVICE).unwrap(),
        zone: VictimZoneTerms::default(),
    });
    o.valid_until = chrono::DateTime::from_timestamp_millis(T0 + 1_200_000);
    p.store.put_order(&o).await.unwrap();
    // Still in force, her device silent: the state is kept (no all-clear from silence).
    his(&p, 2, 600, HERE_M + 300.0).await;
    assert_eq!(moving(&p), [(AlertLevel::Clear, AlertLevel::Breach)]);
    // Out of force: his next fix closes it, as a fixed zone closes.
    his(&p, 3, 1_260, HERE_M + 300.0).await;
    assert_eq!(
        moving(&p),
        [
            (AlertLevel::Clear, AlertLevel::Breach),
            (AlertLevel::Breach, AlertLevel::Clear)
        ]
    );
    let last = p.queue.sent().into_iter().rev().find_map(|e| match e.body {
        AlertBody::ZoneChange { change, .. } => change.transition,
        _ => None,
    });
    assert_eq!(last.unwrap().cause, vigil_core::state::Cause::OutOfForce);
}

#[tokio::test]
async fn his_history_keeps_the_distance_to_her_zone_with_each_compared_fix_and_never_her_position()
{
    use vigil_aws::ports::IngestStore;
    let p = setup().await;
    let tag = vigil_core::TagId::new("tag-1").unwrap();
    let order_id = order().order_id;
    // Her device has not reported: his fix cannot be compared; nothing is kept.
    his(&p, 1, 0, HERE_M + 4_000.0).await;
    let h = p.store.history(&tag).await.unwrap();
    assert!(h.fixes[0].victim_edge_m.is_empty(), "{:?}", h.fixes[0]);
    // She reports; his next fix, 3 km from her (2.5 km from the 500 m circle's edge), is
    // compared: the distance is kept with that fix.
    hers(&p, 1, 30, HERE_M).await;
    his(&p, 2, 60, HERE_M + 3_000.0).await;
    let h = p.store.history(&tag).await.unwrap();
    let newest = &h.fixes[0];
    assert_eq!(newest.seq, 2);
    let d = newest.victim_edge_m[&order_id];
    assert!((d - 2_500.0).abs() < 5.0, "{d}");
    assert!(
        h.fixes[1].victim_edge_m.is_empty(),
        "the older fix keeps its own"
    );
    // The stored history holds a distance, never her coordinates.
    let json = serde_json::to_string(&h).unwrap();
    let her_lat = format!("{:.4}", HOME.0 + HERE_M / M_PER_DEG_LAT);
    assert!(!json.contains(&her_lat[..7]), "{json}");
}
