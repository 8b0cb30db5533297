//! Wire format v2: a batch of fixes in one message goes through the same rules, fix by fix,
//! as the same fixes sent one at a time, with one read and one history write.

mod common;

use common::{T0, TestPorts, ports_with};
use vigil_aws::ports::AdminStore;
use vigil_core::events::AlertBody;
use vigil_core::fix::{encode_batch, encode_fix};
use vigil_core::{AlertLevel, Fix, OrderId, TagId, ZoneId};
use vigil_ingest::{Outcome, handle, rule_event};
use vigil_testkit::{fix_north, order};

async fn setup() -> TestPorts {
    ports_with(&order()).await
}

/// A fix `north_m` metres north of home's centre, `at_s` seconds after T0.
fn fix(seq: u64, at_s: i64, north_m: f64) -> Fix {
    fix_north(seq, T0 + at_s * 1000, north_m)
}

/// Publishes `fixes` as one v2 message, received `late_ms` after the newest.
async fn batch(p: &TestPorts, fixes: &[Fix], late_ms: i64) -> Outcome {
    let newest = fixes.iter().map(|f| f.at_ms).max().unwrap();
    handle(
        rule_event("tag-1", "fix", &encode_batch(fixes), newest + late_ms),
        p,
    )
    .await
    .unwrap()
}

async fn one(p: &TestPorts, f: &Fix) -> Outcome {
    handle(rule_event("tag-1", "fix", &encode_fix(f), f.at_ms + 300), p)
        .await
        .unwrap()
}

fn changes(p: &TestPorts) -> Vec<(String, AlertLevel, AlertLevel)> {
    p.queue
        .sent()
        .iter()
        .filter_map(|e| match &e.body {
            AlertBody::ZoneChange {
                zone_id, change, ..
            } => change
                .transition
                .as_ref()
                .map(|t| (zone_id.to_string(), t.from, t.to)),
            _ => None,
        })
        .collect()
}

async fn rev(p: &TestPorts) -> u64 {
    p.store
        .tag_history(&TagId::new("tag-1").unwrap())
        .await
        .unwrap()
        .rev
}

#[tokio::test]
async fn a_quiet_batch_is_one_history_write_and_one_metric_line() {
    let p = setup().await;
    let fixes: Vec<Fix> = (0..10)
        .map(|i| fix(i + 1, 60 * i as i64, 20_000.0 - 100.0 * i as f64))
        .collect();
    let out = batch(&p, &fixes, 500).await;
    assert_eq!(out, Outcome::Batch(vec![Outcome::Quiet; 10]));
    assert_eq!(rev(&p).await, 1, "one history write for ten fixes");
    let h = p
        .store
        .tag_history(&TagId::new("tag-1").unwrap())
        .await
        .unwrap();
    assert_eq!(
        h.newest(),
        Some((fixes[9].at_ms, 10)),
        "the history ends at the batch's newest fix"
    );
    assert_eq!(p.metrics.get("FixesEvaluated", "quiet"), 10);
    // Nothing but, from 19 km away, the window the tag may use from now on.
    let sent = p.queue.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(
        matches!(&sent[0].body, AlertBody::Reporting { window: Some(w), .. } if w.batch_s == 120),
        "{sent:?}"
    );
}

#[tokio::test]
async fn a_batch_moves_the_states_exactly_as_the_same_fixes_one_by_one() {
    // Approaching, warning, breach, leaving: in one batch, and one by one.
    let track = [
        3_000.0, 1_500.0, 400.0, 50.0, 40.0, 1_000.0, 3_000.0, 3_100.0, 3_200.0, 3_300.0, 3_400.0,
        3_500.0, 3_600.0, 3_700.0,
    ];
    let fixes: Vec<Fix> = track
        .iter()
        .enumerate()
        .map(|(i, d)| fix(i as u64 + 1, 60 * i as i64, *d))
        .collect();
    let batched = setup().await;
    let out = batch(&batched, &fixes, 500).await;
    let Outcome::Batch(outcomes) = out else {
        panic!("{out:?}")
    };
    assert_eq!(outcomes.len(), track.len());
    let single = setup().await;
    for f in &fixes {
        one(&single, f).await;
    }
    use AlertLevel::*;
    assert_eq!(
        changes(&batched),
        vec![
            ("home".to_owned(), Clear, Warning),
            ("home".to_owned(), Warning, Breach),
            ("home".to_owned(), Breach, Clear),
        ]
    );
    assert_eq!(changes(&batched), changes(&single));
    let state = |p: &TestPorts| {
        p.store
            .state(&OrderId::new("o1").unwrap(), &ZoneId::new("home").unwrap())
            .map(|r| r.state)
    };
    assert_eq!(state(&batched), state(&single));
    // Each change carries its own fix's device time, not the batch's receive time.
    let at: Vec<i64> = batched.queue.sent().iter().map(|e| e.at_ms).collect();
    let cleared = fixes.iter().find(|f| f.at_ms == at[2]).unwrap();
    assert!(
        cleared.seq > 7,
        "cleared on a fix far beyond the zone's cells"
    );
    assert_eq!(&at[..2], &[fixes[2].at_ms, fixes[3].at_ms]);
}

#[tokio::test]
async fn a_refused_or_impossible_fix_in_a_batch_never_becomes_the_previous_fix() {
    let p = setup().await;
    one(&p, &fix(1, 0, 3_000.0)).await;
    // Fix 2 is 40 km away a minute later (impossible); fix 3 is NaN; fix 4 is next to fix 1.
    let mut far = fix(2, 60, 3_000.0);
    far.lat += 0.36;
    let good = fix(4, 180, 3_050.0);
    let mut elements: Vec<serde_json::Value> = [&far, &good]
        .iter()
        .map(|f| serde_json::from_slice(&encode_fix(f)).unwrap())
        .collect();
    elements.push(serde_json::json!({"seq": 3, "at_ms": T0 + 120_000, "lat": "NaN", "lon": 0, "accuracy_m": 5}));
    let payload = serde_json::to_vec(&serde_json::json!({"v": 2, "fixes": elements})).unwrap();
    let out = handle(rule_event("tag-1", "fix", &payload, T0 + 181_000), &p)
        .await
        .unwrap();
    assert_eq!(
        out,
        Outcome::Batch(vec![
            Outcome::Rejected {
                reason: "impossible_speed".into(),
                operator_events: 0
            },
            Outcome::Rejected {
                reason: "not_finite".into(),
                operator_events: 0
            },
            Outcome::Quiet,
        ])
    );
    let kept = p.store.quarantined_all();
    assert_eq!(kept.len(), 2);
    assert!(kept.iter().all(|r| r.tag_id == "tag-1"));
    // Each refused fix is kept as itself, not as the whole batch.
    let nan = kept.iter().find(|r| r.reason == "not_finite").unwrap();
    assert!(nan.payload.contains("\"seq\":3") && !nan.payload.contains("\"seq\":4"));
    let h = p
        .store
        .tag_history(&TagId::new("tag-1").unwrap())
        .await
        .unwrap();
    let seqs: Vec<u64> = h.fixes.iter().map(|t| t.seq).collect();
    assert_eq!(seqs, vec![4, 1], "only accepted fixes are history");
}

#[tokio::test]
async fn a_replayed_batch_changes_nothing() {
    let p = setup().await;
    let fixes = [fix(1, 0, 400.0), fix(2, 60, 50.0)];
    batch(&p, &fixes, 500).await;
    let sent = p.queue.sent().len();
    assert_eq!(sent, 2, "warning then breach");
    let again = batch(&p, &fixes, 5_000).await;
    assert_eq!(
        again,
        Outcome::Batch(vec![Outcome::Duplicate, Outcome::Duplicate])
    );
    assert_eq!(p.queue.sent().len(), sent, "nothing queued twice");
}

#[tokio::test]
async fn a_batch_from_an_unknown_tag_is_kept_once() {
    let p = setup().await;
    let mut fixes = [fix(1, 0, 400.0), fix(2, 60, 50.0)];
    for f in &mut fixes {
        f.tag_id = TagId::new("tag-404").unwrap();
    }
    let out = handle(
        rule_event("tag-404", "fix", &encode_batch(&fixes), T0 + 61_000),
        &p,
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        Outcome::Rejected {
            reason: "unknown_tag".into(),
            operator_events: 0
        }
    );
    assert_eq!(p.store.quarantined_all().len(), 1);
}
