//! The watchdog on the in-memory ports, minute by minute: silence far from and near a zone,
//! its end, no GPS, what a healthy fleet costs in reads, and the sweep's repairs; an
//! operator's change queued as the ask that ends the tag's window.

use vigil_aws::memory::{MemoryQueue, MemoryStore};
use vigil_aws::metrics::MemoryMetrics;
use vigil_aws::ports::{AdminStore, IngestStore, WatchStore};
use vigil_core::events::AlertBody;
use vigil_core::watchdog::Condition;
use vigil_core::{TagHistory, TagId};
use vigil_testkit::{fix_north, home_zone, order};
use vigil_watchdog::{Ports, run};

/// A whole minute, 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000;
const MIN: i64 = 60_000;

type TestPorts = Ports<MemoryStore, MemoryQueue, MemoryMetrics>;

async fn setup() -> TestPorts {
    let store = MemoryStore::new();
    store.put_order(&order()).await.unwrap();
    store.put_zone(&home_zone()).await.unwrap();
    Ports {
        store,
        queue: MemoryQueue::default(),
        metrics: MemoryMetrics::default(),
    }
}

fn tag() -> TagId {
    TagId::new("tag-1").unwrap()
}

/// The tag reports a fix `north_m` metres north of home at `at_ms` (accepted, as ingest
/// records it).
async fn report(p: &TestPorts, seq: u64, at_ms: i64, north_m: f64) {
    let h = p.store.history(&tag()).await.unwrap();
    let next = h.with_fix(&fix_north(seq, at_ms, north_m), at_ms);
    p.store.save_history(&tag(), &next).await.unwrap();
}

/// The watchdog's changes queued so far: (condition, started, near a zone).
fn changes(p: &TestPorts) -> Vec<(Condition, bool, bool)> {
    p.queue
        .sent()
        .iter()
        .filter_map(|e| match &e.body {
            AlertBody::Watch {
                condition,
                started,
                near,
                ..
            } => Some((*condition, *started, near.is_some())),
            _ => None,
        })
        .collect()
}

/// Runs the watchdog once a minute from `from` to `to` (inclusive), as EventBridge would.
async fn every_minute(p: &TestPorts, from: i64, to: i64) {
    let mut t = from;
    while t <= to {
        run(p, t).await.unwrap();
        t += MIN;
    }
}

#[tokio::test]
async fn silence_far_from_every_zone_is_told_once_to_operators_and_ends_with_contact() {
    let p = setup().await;
    report(&p, 1, T0, 5_000.0).await;
    // Healthy for five minutes: nothing.
    every_minute(&p, T0, T0 + 5 * MIN).await;
    assert!(changes(&p).is_empty());
    // Silent from T0: the first run after T0 + 5 min says so, once.
    every_minute(&p, T0 + 6 * MIN, T0 + 20 * MIN).await;
    assert_eq!(changes(&p), [(Condition::Silence, true, false)]);
    let e = &p.queue.sent()[0];
    assert_eq!(
        e.received_at_ms,
        T0 + 6 * MIN,
        "found at the first run past the limit"
    );
    // Back: contact restored at the next run.
    report(&p, 2, T0 + 20 * MIN + 10_000, 5_000.0).await;
    every_minute(&p, T0 + 21 * MIN, T0 + 23 * MIN).await;
    assert_eq!(
        changes(&p),
        [
            (Condition::Silence, true, false),
            (Condition::Silence, false, false)
        ]
    );
}

#[tokio::test]
async fn silence_near_home_names_the_zone() {
    let p = setup().await;
    report(&p, 1, T0, 300.0).await;
    every_minute(&p, T0, T0 + 7 * MIN).await;
    assert_eq!(changes(&p), [(Condition::Silence, true, true)]);
    let AlertBody::Watch { near, last_fix, .. } = &p.queue.sent()[0].body else {
        panic!("a watch event")
    };
    let near = near.as_ref().unwrap();
    assert_eq!(near.zone_id.as_str(), "home");
    assert!(near.distance_m > 0.0 && near.distance_m < 300.0, "{near:?}");
    assert_eq!(last_fix.as_ref().unwrap().seq, 1);
}

#[tokio::test]
async fn a_tag_reporting_only_poor_fixes_loses_gps_after_its_limit() {
    let p = setup().await;
    report(&p, 1, T0, 5_000.0).await;
    let mut seq = 2;
    let mut t = T0;
    while t <= T0 + 15 * MIN {
        run(&p, t).await.unwrap();
        // Indoors: a fix a minute, 400 m accurate.
        let h = p.store.history(&tag()).await.unwrap();
        let mut f = fix_north(seq, t + 30_000, 5_000.0);
        f.accuracy_m = 400.0;
        p.store
            .save_history(&tag(), &h.with_fix(&f, t + 30_000))
            .await
            .unwrap();
        seq += 1;
        t += MIN;
    }
    assert_eq!(changes(&p), [(Condition::NoGps, true, false)]);
    assert_eq!(p.queue.sent()[0].received_at_ms, T0 + 11 * MIN);
}

#[tokio::test]
async fn a_healthy_fleet_is_read_once_per_silence_limit_not_every_minute() {
    let p = setup().await;
    let tags: Vec<TagId> = (0..100)
        .map(|i| TagId::new(format!("tag-{i:03}")).unwrap())
        .collect();
    for (i, t) in tags.iter().enumerate() {
        let mut o = order();
        o.order_id = vigil_core::OrderId::new(format!("o-{i:03}")).unwrap();
        o.tag_id = t.clone();
        p.store.put_order(&o).await.unwrap();
    }
    let mut checked = 0;
    for m in 0..60 {
        let now = T0 + m * MIN;
        for (i, t) in tags.iter().enumerate() {
            // Every tag reports once a minute, at its own second.
            let at = now + (i as i64 % 60) * 1000;
            let h: TagHistory = p.store.history(t).await.unwrap();
            let f = fix_north(m as u64 + 1, at, 5_000.0);
            p.store.save_history(t, &h.with_fix(&f, at)).await.unwrap();
        }
        checked += run(&p, now + 59_000).await.unwrap().checked;
    }
    assert!(changes(&p).is_empty());
    // 101 tags (the setup's one never reports: it is looked at every 15 minutes) over an
    // hour: about 12 checks each at a 5-minute limit, against 60 for reading them all.
    let per_tag_hour = checked as f64 / 101.0;
    eprintln!(
        "WATCHDOG checks per tag-hour: {per_tag_hour:.1} ({checked} checks, 101 tags, 60 runs)"
    );
    assert!(per_tag_hour < 14.0, "{checked} checks");
    assert!(per_tag_hour > 5.0, "{checked} checks");
}

#[tokio::test]
async fn the_sweep_counts_the_tags_of_each_force() {
    let p = setup().await;
    for (order, tag, force) in [
        ("o-m1", "t-m1", "met"),
        ("o-m2", "t-m2", "met"),
        ("o-t1", "t-t1", "tvp"),
    ] {
        let mut o = order_with(order, tag);
        o.force_id = Some(vigil_testkit::force(force));
        p.store.put_order(&o).await.unwrap();
    }
    run(&p, T0 + 7 * MIN).await.unwrap();
    assert_eq!(p.metrics.get("Tags", "met"), 2);
    assert_eq!(p.metrics.get("Tags", "tvp"), 1);
    assert_eq!(p.metrics.get("Tags", "none"), 1);
}

fn order_with(order_id: &str, tag_id: &str) -> vigil_core::ProtectionOrder {
    let mut o = order();
    o.order_id = vigil_core::OrderId::new(order_id).unwrap();
    o.tag_id = TagId::new(tag_id).unwrap();
    o
}

#[tokio::test]
async fn the_sweep_arms_new_tags_and_keeps_only_the_earliest_of_two_checks() {
    let p = setup().await;
    // First run (at a minute the regular sweep skips): the sweep arms the tag for the next.
    let t0 = T0 + 7 * MIN;
    let out = run(&p, t0).await.unwrap();
    assert_eq!(out.swept, Some(1));
    // The fleet per force, for each force's figures (this order has none yet).
    assert_eq!(p.metrics.get("Tags", "none"), 1);
    assert_eq!(
        p.store.due_tags(t0 / MIN + 1).await.unwrap(),
        [tag()].into()
    );
    assert_eq!(run(&p, t0 + MIN).await.unwrap().swept, None);
    // A crash left it armed twice more ahead.
    let m1 = t0 / MIN + 1;
    p.store.arm(m1 + 5, "p-lost#0", &[tag()]).await.unwrap();
    p.store.arm(m1 + 9, "p-lost#0", &[tag()]).await.unwrap();
    every_minute(&p, (m1 + 1) * MIN, (m1 + 15) * MIN).await;
    // The sweep at the quarter hour kept one check; each check planned one more.
    let armed = p.store.armed(m1 + 16, m1 + 31).await.unwrap();
    let count = armed.values().filter(|t| t.contains(&tag())).count();
    assert_eq!(count, 1, "{armed:?}");
    // The cursor went minute by minute.
    assert_eq!(p.store.watch_cursor().await.unwrap(), Some(m1 + 15));
}

#[tokio::test]
async fn a_run_after_an_outage_catches_up_and_finds_the_silence() {
    let p = setup().await;
    report(&p, 1, T0, 5_000.0).await;
    run(&p, T0).await.unwrap();
    // No run for 30 minutes.
    let out = run(&p, T0 + 30 * MIN).await.unwrap();
    assert_eq!(out.minutes.len(), 30);
    assert_eq!(changes(&p), [(Condition::Silence, true, false)]);
}

#[tokio::test]
async fn at_the_wall_clock_a_told_silence_ends_at_the_next_minute_s_run() {
    // EventBridge's runs start a little after each minute.
    let late = 33;
    let p = setup().await;
    report(&p, 1, T0 + 49_000, 5_000.0).await;
    let mut t = T0 + late;
    while changes(&p).is_empty() {
        run(&p, t).await.unwrap();
        t += MIN;
    }
    assert_eq!(changes(&p), [(Condition::Silence, true, false)]);
    // Contact again just after that run: the next run (within a minute) sees it.
    report(&p, 2, t - MIN + 1_000, 5_000.0).await;
    run(&p, t).await.unwrap();
    assert_eq!(
        changes(&p),
        [
            (Condition::Silence, true, false),
            (Condition::Silence, false, false)
        ]
    );
}

/// The `n`th escalation of a strap tamper, as the alert function arms it (the minute is set
/// by each test).
fn escalation(n: u32) -> vigil_core::escalation::Armed {
    use vigil_core::events::AlertEvent;
    vigil_core::escalation::Armed {
        minute: 0,
        event: AlertEvent {
            event_id: AlertEvent::escalation_id("te:o1:tag-1:7:ab", n),
            order_id: vigil_core::OrderId::new("o1").unwrap(),
            tag_id: tag(),
            at_ms: T0,
            received_at_ms: T0 + 5 * MIN,
            body: AlertBody::Escalation {
                original_id: "te:o1:tag-1:7:ab".into(),
                kind: vigil_core::OperatorKind::TagEvent(vigil_core::TagEventKind::StrapTamper),
                zone_id: None,
                count: n,
            },
        },
    }
}

fn escalations(p: &TestPorts) -> Vec<String> {
    p.queue
        .sent()
        .iter()
        .filter(|e| matches!(e.body, AlertBody::Escalation { .. }))
        .map(|e| e.event_id.clone())
        .collect()
}

#[tokio::test]
async fn an_escalation_is_queued_by_the_run_of_its_minute_exactly_and_a_rerun_repeats_its_id() {
    use vigil_aws::ports::EscalationStore;
    let p = setup().await;
    let mut armed = escalation(1);
    armed.minute = T0 / MIN + 5;
    p.store.arm_escalation(&armed).await.unwrap();
    every_minute(&p, T0, T0 + 4 * MIN).await;
    assert!(escalations(&p).is_empty(), "not before its minute");
    let out = run(&p, T0 + 5 * MIN).await.unwrap();
    assert_eq!(out.escalations, 1);
    assert_eq!(escalations(&p), ["esc:te:o1:tag-1:7:ab:1"]);
    // Queued as armed: the alert function binds the id to this content.
    assert_eq!(p.queue.sent().last().unwrap(), &armed.event);
    every_minute(&p, T0 + 6 * MIN, T0 + 10 * MIN).await;
    assert_eq!(escalations(&p).len(), 1, "once");
    assert_eq!(p.metrics.get("EscalationsQueued", "watchdog"), 1);
}

#[tokio::test]
async fn after_an_outage_longer_than_the_catch_up_an_escalation_in_a_skipped_minute_is_still_queued()
 {
    use vigil_aws::ports::EscalationStore;
    let p = setup().await;
    run(&p, T0).await.unwrap();
    let mut armed = escalation(2);
    armed.minute = T0 / MIN + 10;
    p.store.arm_escalation(&armed).await.unwrap();
    // The watchdog is down for three hours: the run after it processes only the last 60
    // minutes' tags, but the escalation of minute 10 is not lost.
    let out = run(&p, T0 + 180 * MIN).await.unwrap();
    assert_eq!(
        out.minutes.len() as i64,
        vigil_watchdog::MAX_CATCH_UP_MINUTES
    );
    assert_eq!(escalations(&p), ["esc:te:o1:tag-1:7:ab:2"]);
}

/// The asks queued to end a tag's window after an operator's change: (event id, order, tag).
fn windows_ended(p: &TestPorts) -> Vec<(String, String, String)> {
    p.queue
        .sent()
        .iter()
        .filter_map(|e| match &e.body {
            AlertBody::Reporting {
                device: vigil_core::reporting::Commanded::Tag(t),
                ask: vigil_core::reporting::Ask::OrderChanged,
                ..
            } => Some((e.event_id.clone(), e.order_id.to_string(), t.to_string())),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn an_operators_change_is_queued_as_an_ask_by_the_run_of_its_minute_once() {
    let p = setup().await;
    report(&p, 1, T0, 5_000.0).await;
    run(&p, T0).await.unwrap();
    let minute = T0 / MIN + 3;
    let o1 = order().order_id;
    p.store.arm_order_change(minute, &o1, &tag()).await.unwrap();
    every_minute(&p, T0 + MIN, T0 + 2 * MIN).await;
    assert!(windows_ended(&p).is_empty(), "not before its minute");
    let out = run(&p, minute * MIN).await.unwrap();
    assert_eq!(out.order_changes, 1);
    let id = format!("oc:{o1}:tag-1:{minute}");
    assert_eq!(
        windows_ended(&p),
        [(id.clone(), o1.to_string(), "tag-1".to_owned())]
    );
    let e = p
        .queue
        .sent()
        .into_iter()
        .find(|e| e.event_id == id)
        .unwrap();
    assert_eq!(e.at_ms, minute * MIN);
    // Later minutes: nothing more.
    every_minute(&p, (minute + 1) * MIN, (minute + 3) * MIN).await;
    assert_eq!(windows_ended(&p).len(), 1);
}

#[tokio::test]
async fn an_operators_change_armed_in_a_minute_an_outage_skipped_is_still_queued() {
    let p = setup().await;
    run(&p, T0).await.unwrap();
    let minute = T0 / MIN + 2;
    p.store
        .arm_order_change(minute, &order().order_id, &tag())
        .await
        .unwrap();
    // Down for two hours: the catch-up covers the last hour; the change is older.
    let out = run(&p, T0 + 120 * MIN).await.unwrap();
    assert_eq!(out.order_changes, 1);
    assert_eq!(windows_ended(&p).len(), 1);
}

#[tokio::test]
async fn the_sweep_never_drops_an_operators_change_as_a_second_check() {
    let p = setup().await;
    run(&p, T0).await.unwrap();
    let now_min = T0 / MIN + 14;
    // Planned at minute +1 in a check's part, and changed at minute +2: the sweep keeps the
    // earliest check of a tag, and must not take the change for a later one.
    p.store.arm(now_min + 1, "p0#0", &[tag()]).await.unwrap();
    p.store
        .arm_order_change(now_min + 2, &order().order_id, &tag())
        .await
        .unwrap();
    let out = run(&p, now_min * MIN).await.unwrap();
    assert!(out.swept.is_some(), "{out:?}");
    let armed = p.store.armed(now_min + 2, now_min + 2).await.unwrap();
    assert!(
        armed.keys().any(|(_, part)| part.starts_with("c#")),
        "{armed:?}"
    );
    every_minute(&p, (now_min + 1) * MIN, (now_min + 2) * MIN).await;
    assert_eq!(windows_ended(&p).len(), 1);
}
