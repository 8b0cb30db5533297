//! Handler tests on the in-memory ports: every rule of the ingest path, including failures.

mod common;

use common::{T0, TestPorts, ports_with};
use vigil_aws::StoreError;
use vigil_aws::memory::{MemoryQueue, MemoryStore};
use vigil_aws::metrics::MemoryMetrics;
use vigil_aws::ports::{AdminStore, IngestStore};
use vigil_core::events::AlertBody;
use vigil_core::fix::encode_fix;
use vigil_core::ingest::ZoneRecord;
use vigil_core::{AlertLevel, Fix, OrderId, ProtectionOrder, TagId, ZoneId};
use vigil_ingest::{Outcome, Ports, handle, rule_event};
use vigil_testkit::{fix_north, home_zone, order};

async fn setup() -> TestPorts {
    ports_with(&order()).await
}

/// A fix `north_m` metres north of home's centre, `at_s` seconds after T0.
fn fix(seq: u64, at_s: i64, north_m: f64) -> Fix {
    fix_north(seq, T0 + at_s * 1000, north_m)
}

async fn send(p: &TestPorts, f: &Fix) -> Result<Outcome, vigil_ingest::IngestError> {
    handle(rule_event("tag-1", "fix", &encode_fix(f), f.at_ms + 300), p).await
}

fn rejected(reason: &str) -> Outcome {
    Outcome::Rejected {
        reason: reason.into(),
        operator_events: 0,
    }
}

fn tag() -> TagId {
    TagId::new("tag-1").unwrap()
}

fn levels(p: &TestPorts) -> Vec<(AlertLevel, AlertLevel)> {
    p.queue
        .sent()
        .iter()
        .filter_map(|e| match &e.body {
            AlertBody::ZoneChange { change, .. } => {
                change.transition.as_ref().map(|t| (t.from, t.to))
            }
            _ => None,
        })
        .collect()
}

fn home_state(p: &TestPorts) -> Option<ZoneRecord> {
    p.store
        .state(&OrderId::new("o1").unwrap(), &ZoneId::new("home").unwrap())
}

#[tokio::test]
async fn a_fix_far_away_is_the_quiet_path() {
    let p = setup().await;
    assert_eq!(send(&p, &fix(1, 0, 5_000.0)).await.unwrap(), Outcome::Quiet);
    assert!(p.queue.sent().is_empty());
    assert!(home_state(&p).is_none(), "nothing written");
    // Counted for the tag's force (this order has none yet).
    assert_eq!(p.metrics.get("FixesEvaluated", "none"), 1);
}

#[tokio::test]
async fn fixes_are_counted_per_force() {
    let store = MemoryStore::new();
    let mut o = order();
    o.force_id = Some(vigil_testkit::force("tvp"));
    store.put_order(&o).await.unwrap();
    store.put_zone(&home_zone()).await.unwrap();
    let p = Ports::new(store, MemoryQueue::default(), MemoryMetrics::default());
    send(&p, &fix(1, 0, 5_000.0)).await.unwrap();
    send(&p, &fix(2, 60, 5_000.0)).await.unwrap();
    assert_eq!(p.metrics.get("FixesEvaluated", "tvp"), 2);
    assert_eq!(p.metrics.get("FixesEvaluated", "quiet"), 2);
}

#[tokio::test]
async fn a_fix_in_a_nearby_cell_but_outside_the_buffer_is_quiet() {
    let p = setup().await;
    // 700 m out: inside cells the zone covers, beyond buffer + accuracy + margin (660 m).
    assert_eq!(send(&p, &fix(1, 0, 700.0)).await.unwrap(), Outcome::Quiet);
}

#[tokio::test]
async fn warning_breach_and_all_clear_are_queued_once_each() {
    let p = setup().await;
    assert_eq!(
        send(&p, &fix(1, 0, 400.0)).await.unwrap(),
        Outcome::Evaluated { events: 1 }
    );
    assert_eq!(
        send(&p, &fix(2, 60, 50.0)).await.unwrap(),
        Outcome::Evaluated { events: 1 }
    );
    for i in 0..5 {
        send(&p, &fix(3 + i, 120 + 60 * i as i64, 3_000.0))
            .await
            .unwrap();
    }
    use AlertLevel::*;
    assert_eq!(
        levels(&p),
        vec![(Clear, Warning), (Warning, Breach), (Breach, Clear)]
    );
    let st = home_state(&p).unwrap();
    assert_eq!(st.state.level, Clear);
    assert!(st.pending.is_empty(), "outbox cleared after queueing");
    // Ingest never appends to the audit chain (the alert function records each event), so a
    // zone change never waits on it.
    let chain = vigil_aws::ports::AuditLog::read(&p.store, &OrderId::new("o1").unwrap())
        .await
        .unwrap();
    assert!(chain.is_empty());
    // The open set follows: closed again at the end.
    let ctx = p
        .store
        .load_context(&TagId::new("tag-1").unwrap(), &[])
        .await
        .unwrap()
        .unwrap();
    assert!(ctx.open.is_empty());
}

#[tokio::test]
async fn an_open_alert_is_judged_even_when_the_fix_is_far() {
    let p = setup().await;
    send(&p, &fix(1, 0, 0.0)).await.unwrap();
    let ctx = p
        .store
        .load_context(&TagId::new("tag-1").unwrap(), &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ctx.open.len(), 1);
    // Driving away at 33 m/s: from 4 km on, no cell in common with home, but the open zone is
    // still judged, and clears after 3 minutes out.
    for i in 0..4 {
        let north_m = 2_000.0 * (i + 1) as f64;
        let out = send(&p, &fix(2 + i, 60 + 60 * i as i64, north_m))
            .await
            .unwrap();
        assert_ne!(out, Outcome::Quiet, "an open alert is never the quiet path");
    }
    assert_eq!(
        levels(&p).last(),
        Some(&(AlertLevel::Breach, AlertLevel::Clear))
    );
}

#[tokio::test]
async fn the_same_fix_twice_queues_nothing_more() {
    let p = setup().await;
    let f = fix(1, 0, 0.0);
    assert_eq!(
        send(&p, &f).await.unwrap(),
        Outcome::Evaluated { events: 1 }
    );
    assert_eq!(send(&p, &f).await.unwrap(), Outcome::Duplicate);
    assert_eq!(p.queue.sent().len(), 1);
    assert_eq!(home_state(&p).unwrap().rev, 1);
    assert_eq!(p.metrics.get("MessageDuplicate", "fix"), 1);
}

#[tokio::test]
async fn a_repeated_counter_with_other_content_is_a_conflict_operators_see() {
    let p = setup().await;
    send(&p, &fix(1, 0, 3_000.0)).await.unwrap();
    // The tag restarted and reuses seq 1, now inside home: judged as new, and operators
    // are told of the conflict.
    let out = send(&p, &fix(1, 60, 0.0)).await.unwrap();
    assert_eq!(out, Outcome::Evaluated { events: 2 });
    let sent = p.queue.sent();
    assert!(matches!(sent[0].body, AlertBody::ZoneChange { .. }));
    assert!(matches!(
        sent[1].body,
        AlertBody::MessageConflict { seq: 1, .. }
    ));
}

#[tokio::test]
async fn bad_input_is_quarantined_counted_and_changes_no_state() {
    let p = setup().await;
    send(&p, &fix(1, 0, 0.0)).await.unwrap();
    let before = home_state(&p).unwrap();
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (rule_event("tag-1", "fix", b"{not json", T0), "malformed"),
        (rule_event("tag-1", "fix", br#"{"v":1,"seq":9,"at_ms":1764432000000,"lat":"NaN","lon":0,"accuracy_m":5}"#, T0), "not_finite"),
        (rule_event("tag-1", "fix", br#"{"v":1,"seq":9,"at_ms":1764432000000,"lat":91,"lon":0,"accuracy_m":5}"#, T0), "latitude_out_of_range"),
        (rule_event("tag-1", "fix", br#"{"v":1,"seq":9,"at_ms":1764432000000,"lat":51.5,"lon":-0.12,"accuracy_m":5000}"#, T0), "accuracy_out_of_range"),
        (rule_event("tag-1", "fix", br#"{"v":1,"seq":9,"at_ms":1764439200000,"lat":51.5,"lon":-0.12,"accuracy_m":5}"#, T0), "device_time_in_future"),
        (rule_event("tag-1", "fix", br#"{"v":7,"seq":9}"#, T0), "unknown_version"),
        (rule_event("tag-1", "fix", &vec![b' '; 6000], T0), "payload_too_large"),
        (rule_event("tag-1", "gossip", b"{}", T0), "unknown_channel"),
        (rule_event("a/b", "fix", b"{}", T0), "bad_tag_id"),
        (serde_json::json!({"tag_id": "tag-1", "hello": 1}), "bad_event"),
        (serde_json::json!({"payload": "%%%", "tag_id": "tag-1", "channel": "fix", "client_id": "tag-1", "received_at": T0}), "malformed"),
        (rule_event("tag-404", "fix", &encode_fix(&fix(9, 0, 0.0)), T0), "unknown_tag"),
        (
            {
                let mut e = rule_event("tag-1", "fix", &encode_fix(&fix(9, 0, 0.0)), T0);
                e["client_id"] = "tag-2".into();
                e
            },
            "client_mismatch",
        ),
    ];
    for (event, reason) in &cases {
        let out = handle(event.clone(), &p).await.unwrap();
        assert_eq!(out, rejected(reason), "{event}");
        assert!(
            p.metrics.get("MessageRejected", reason) >= 1,
            "{reason} counted"
        );
    }
    assert_eq!(home_state(&p).unwrap(), before, "no state changed");
    assert_eq!(p.queue.sent().len(), 1, "nothing queued");
    let kept = p.store.quarantined("tag-1").await.unwrap();
    assert!(
        kept.iter()
            .any(|q| q.reason == "malformed" && q.payload == "{not json")
    );
    assert!(
        kept.iter()
            .any(|q| q.reason == "latitude_out_of_range" && q.detail.contains("91"))
    );
    assert_eq!(p.store.quarantined("tag-404").await.unwrap().len(), 1);
}

#[tokio::test]
async fn an_impossible_jump_into_a_zone_is_rejected_but_operators_hear_of_the_possible_breach() {
    let p = setup().await;
    send(&p, &fix(1, 0, 20_000.0)).await.unwrap();
    send(&p, &fix(2, 60, 20_000.0)).await.unwrap();
    // 20 km in 60 s: a GPS glitch that would be a false breach, or the previous fixes were
    // wrong. No state moves, and operators get the possible breach.
    let out = send(&p, &fix(3, 120, 0.0)).await.unwrap();
    assert_eq!(
        out,
        Outcome::Rejected {
            reason: "impossible_speed".into(),
            operator_events: 1
        }
    );
    assert!(home_state(&p).is_none());
    // (Before it, from 20 km out, the tag was allowed a batching window.)
    match &p.queue.sent().last().unwrap().body {
        AlertBody::RejectedNearZone { entry, zone_id, .. } => {
            assert_eq!((*entry, zone_id.as_str()), (AlertLevel::Breach, "home"));
        }
        other => panic!("{other:?}"),
    }
    // The rejected fix is not history: the next fix is judged against fix 2, and accepted.
    assert_eq!(
        send(&p, &fix(4, 180, 19_000.0)).await.unwrap(),
        Outcome::Quiet
    );
    let h = p.store.history(&tag()).await.unwrap();
    let seqs: Vec<u64> = h.fixes.iter().map(|t| t.seq).collect();
    assert_eq!(seqs, vec![4, 2, 1]);
}

#[tokio::test]
async fn a_real_breach_is_not_rejected_because_of_fixes_that_were_rejected() {
    // Issue 11, defect 1: seq 1 far away (valid), seq 2 and 3 80 km away with 300 m accuracy
    // (quarantined), then seq 4 inside the zone. Before the fix seq 4 was rejected as
    // impossible_speed against the rejected fixes, and the breach was missed.
    let p = setup().await;
    assert_eq!(send(&p, &fix(1, 0, 3_000.0)).await.unwrap(), Outcome::Quiet);
    for (seq, at) in [(2, 60), (3, 120)] {
        let mut glitch = fix(seq, at, 80_000.0);
        glitch.accuracy_m = 300.0;
        assert_eq!(
            send(&p, &glitch).await.unwrap(),
            rejected("accuracy_out_of_range")
        );
    }
    assert_eq!(
        send(&p, &fix(4, 180, 0.0)).await.unwrap(),
        Outcome::Evaluated { events: 1 }
    );
    assert_eq!(levels(&p), vec![(AlertLevel::Clear, AlertLevel::Breach)]);
}

#[tokio::test]
async fn a_future_dated_fix_never_becomes_the_tags_history() {
    // Issue 11, defect 2: a fix dated 9e18 ms became the newest last-seen item.
    let p = setup().await;
    send(&p, &fix(1, 0, 3_000.0)).await.unwrap();
    let future =
        br#"{"v":1,"seq":2,"at_ms":9000000000000000000,"lat":51.5,"lon":-0.12,"accuracy_m":5}"#;
    let out = handle(rule_event("tag-1", "fix", future, T0 + 500), &p)
        .await
        .unwrap();
    assert_eq!(out, rejected("device_time_in_future"));
    let h = p.store.history(&tag()).await.unwrap();
    assert_eq!(h.newest(), Some((T0, 1)));
    // The next real fix is neither late nor impossible: the breach fires.
    assert_eq!(
        send(&p, &fix(3, 60, 0.0)).await.unwrap(),
        Outcome::Evaluated { events: 1 }
    );
}

#[tokio::test]
async fn a_queue_outage_after_commit_loses_nothing() {
    let p = setup().await;
    let f = fix(1, 0, 0.0);
    p.queue.fail_next(1);
    let err = send(&p, &f).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(
        home_state(&p).unwrap().pending.len(),
        1,
        "the event waits in the outbox"
    );
    // Lambda retries the same event: the outbox is delivered (the one event queued), no
    // second transition.
    assert_eq!(
        send(&p, &f).await.unwrap(),
        Outcome::Evaluated { events: 1 }
    );
    assert_eq!(
        p.store.history(&tag()).await.unwrap().newest(),
        Some((T0, 1))
    );
    assert_eq!(p.queue.sent().len(), 1);
    assert!(home_state(&p).unwrap().pending.is_empty());
}

#[tokio::test]
async fn a_throttled_store_is_a_retryable_error_and_nothing_is_quarantined() {
    let p = setup().await;
    p.store.fail_next(StoreError::Throttled {
        service: "dynamodb",
        code: "ProvisionedThroughputExceededException".into(),
    });
    let err = send(&p, &fix(1, 0, 0.0)).await.unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(err.error_type(), "Retryable");
    assert!(p.store.quarantined("tag-1").await.unwrap().is_empty());
    assert_eq!(
        send(&p, &fix(1, 0, 0.0)).await.unwrap(),
        Outcome::Evaluated { events: 1 }
    );
}

#[tokio::test]
async fn a_corrupt_store_is_a_permanent_error() {
    let p = setup().await;
    p.store
        .fail_next(StoreError::corrupt("tags.o#o1", "bad json"));
    let err = send(&p, &fix(1, 0, 0.0)).await.unwrap_err();
    assert!(!err.is_retryable());
    assert_eq!(err.error_type(), "Permanent");
}

async fn event(p: &TestPorts, seq: u64, kind: &str, at_ms: i64) -> Outcome {
    let payload = format!(r#"{{"v":1,"seq":{seq},"at_ms":{at_ms},"kind":"{kind}"}}"#);
    handle(rule_event("tag-1", "event", payload.as_bytes(), at_ms), p)
        .await
        .unwrap()
}

#[tokio::test]
async fn tag_events_are_queued_per_order_in_force() {
    let p = setup().await;
    assert_eq!(
        event(&p, 5, "strap_tamper", T0).await,
        Outcome::TagEvent { orders: 1 }
    );
    let sent = p.queue.sent();
    assert!(sent[0].event_id.starts_with("te:o1:tag-1:5:"));
    assert!(matches!(
        sent[0].body,
        AlertBody::TagEvent {
            kind: vigil_core::TagEventKind::StrapTamper,
            ..
        }
    ));
    // The same message again: a duplicate, nothing queued.
    assert_eq!(event(&p, 5, "strap_tamper", T0).await, Outcome::Duplicate);
    assert_eq!(p.queue.sent().len(), 1);
}

#[tokio::test]
async fn a_tamper_alert_is_not_lost_when_a_tags_counter_repeats() {
    // Issue 16, item 2: battery_low seq 5, then strap_tamper seq 5, gave no SMS and no
    // operator event (ids were order:tag:seq).
    let p = setup().await;
    event(&p, 5, "battery_low", T0).await;
    assert_eq!(
        event(&p, 5, "strap_tamper", T0 + 1000).await,
        Outcome::TagEvent { orders: 1 }
    );
    let sent = p.queue.sent();
    assert_eq!(
        sent.len(),
        3,
        "battery, tamper, and the conflict: {sent:#?}"
    );
    assert_ne!(sent[0].event_id, sent[1].event_id);
    assert!(matches!(
        sent[1].body,
        AlertBody::TagEvent {
            kind: vigil_core::TagEventKind::StrapTamper,
            ..
        }
    ));
    assert!(matches!(
        &sent[2].body,
        AlertBody::MessageConflict { channel, seq: 5, .. } if channel == "event"
    ));
}

#[tokio::test]
async fn an_expired_order_is_quiet() {
    let p = setup().await;
    let mut order: ProtectionOrder = serde_json::from_value(serde_json::json!({
        "order_id": "o1", "tag_id": "tag-1", "valid_until": "2020-01-01T00:00:00Z",
        "victim": {"victim_id": "v1", "phone": "+447700900123", "language": "en"}
    }))
    .unwrap();
    order.zone_ids = vec![];
    p.store.put_order(&order).await.unwrap();
    assert_eq!(send(&p, &fix(1, 0, 0.0)).await.unwrap(), Outcome::Quiet);
}
