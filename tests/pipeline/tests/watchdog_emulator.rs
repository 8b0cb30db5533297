//! The watchdog against the emulator: the DynamoDB store's semantics (the index, the cursor,
//! the marks) and what a run costs in requests, counted by the instrumented SDK layer, at 10
//! tags and at a larger fleet (`VIGIL_WATCHDOG_TAGS`, default 300; the figures in
//! docs/WATCHDOG.md come from `VIGIL_WATCHDOG_TAGS=10000`):
//!
//! `cargo test -p vigil-pipeline --test watchdog_emulator -- --nocapture`

use std::collections::BTreeMap;
use vigil_aws::counting::RequestCounter;
use vigil_aws::metrics::MemoryMetrics;
use vigil_aws::ports::{AdminStore, EscalationStore, IngestStore, WatchStore};
use vigil_aws::{Config, DynamoStore, SqsQueue};
use vigil_core::events::AlertBody;
use vigil_core::watchdog::Condition;
use vigil_core::{OrderId, TagId};
use vigil_local::Emulator;
use vigil_testkit::{fix_north, order};
use vigil_watchdog::{Ports, run};

/// A whole minute, 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000;
const MIN: i64 = 60_000;

struct Stack {
    _emulator: Emulator,
    store: DynamoStore,
    counter: RequestCounter,
    ports: Ports<DynamoStore, SqsQueue, MemoryMetrics>,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
}

async fn stack() -> Stack {
    let emulator = Emulator::start().await.expect("emulator starts");
    let env: BTreeMap<String, String> = emulator.env_vars().into_iter().collect();
    let config = Config::from_lookup(|k| env.get(k).cloned()).unwrap();
    let sdk = emulator.sdk_config();
    let counter = RequestCounter::new();
    let conf = aws_sdk_dynamodb::config::Builder::from(&sdk)
        .interceptor(counter.clone())
        .build();
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(conf), &config);
    let queue_url = config.alerts_queue_url().unwrap().to_owned();
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let ports = Ports {
        store: store.clone(),
        queue: SqsQueue::new(sqs.clone(), queue_url.clone()),
        metrics: MemoryMetrics::default(),
    };
    Stack {
        _emulator: emulator,
        store,
        counter,
        ports,
        sqs,
        queue_url,
    }
}

fn tag(i: usize) -> TagId {
    TagId::new(format!("tag-{i:05}")).unwrap()
}

/// `n` tags, one order each.
async fn provision(s: &Stack, n: usize) {
    for i in 0..n {
        let mut o = order();
        o.order_id = OrderId::new(format!("o-{i:05}")).unwrap();
        o.tag_id = tag(i);
        s.store.put_order(&o).await.unwrap();
    }
}

/// What the tags due at `now` would have done if each reported once a minute: their history
/// ends 30 s before `now` (written by the harness, not counted).
async fn report_due(s: &Stack, now: i64) {
    for t in s.store.due_tags(now.div_euclid(MIN)).await.unwrap() {
        let h = s.store.history(&t).await.unwrap();
        let at = now - 30_000;
        let f = fix_north((at / 1000) as u64, at, 5_000.0);
        s.store.save_history(&t, &h.with_fix(&f, at)).await.unwrap();
    }
}

/// The watchdog's requests per minute, averaged over `minutes` after a 16-minute warm-up
/// (the first sweep arms every tag), and the tags checked per minute.
async fn measure(n: usize, minutes: i64) -> (BTreeMap<String, f64>, f64) {
    let s = stack().await;
    provision(&s, n).await;
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    let mut checked = 0;
    for m in 0..16 + minutes {
        let now = T0 + m * MIN;
        report_due(&s, now).await;
        s.counter.reset();
        let out = run(&s.ports, now).await.unwrap();
        if m >= 16 {
            for (op, k) in s.counter.snapshot() {
                *totals.entry(op).or_default() += k;
            }
            checked += out.checked;
        }
    }
    let per_minute = totals
        .into_iter()
        .map(|(op, k)| (op, k as f64 / minutes as f64))
        .collect();
    (per_minute, checked as f64 / minutes as f64)
}

#[tokio::test]
async fn the_store_keeps_the_index_the_cursor_and_the_marks_as_in_memory() {
    let s = stack().await;
    provision(&s, 2).await;
    let (a, b) = (tag(0), tag(1));
    assert_eq!(s.store.watch_cursor().await.unwrap(), None);
    s.store.advance_watch_cursor(None, 100).await.unwrap();
    assert!(
        s.store.advance_watch_cursor(None, 101).await.is_err(),
        "one run at a time"
    );
    s.store.advance_watch_cursor(Some(100), 101).await.unwrap();
    assert_eq!(s.store.watch_cursor().await.unwrap(), Some(101));
    s.store
        .arm(105, "p101#0", &[a.clone(), b.clone()])
        .await
        .unwrap();
    s.store
        .arm(105, "s101#0", std::slice::from_ref(&a))
        .await
        .unwrap();
    assert_eq!(
        s.store.due_tags(105).await.unwrap(),
        [a.clone(), b.clone()].into()
    );
    // A rerun replaces its part; no tags removes it.
    s.store
        .arm(105, "p101#0", std::slice::from_ref(&b))
        .await
        .unwrap();
    s.store.arm(105, "s101#0", &[]).await.unwrap();
    assert_eq!(s.store.due_tags(105).await.unwrap(), [b.clone()].into());
    assert_eq!(s.store.armed(104, 106).await.unwrap().len(), 1);
    // An escalation armed by the alert function in the same minute: read back as the event
    // it was armed with, never taken for a part of tags (nor by the sweep); arming it again
    // changes nothing.
    let armed = vigil_core::escalation::Armed {
        minute: 105,
        event: vigil_core::events::AlertEvent {
            event_id: vigil_core::events::AlertEvent::escalation_id("zc:o-00000:home:1", 1),
            order_id: OrderId::new("o-00000").unwrap(),
            tag_id: a.clone(),
            at_ms: T0,
            received_at_ms: T0 + 5 * MIN,
            body: AlertBody::Escalation {
                original_id: "zc:o-00000:home:1".into(),
                kind: vigil_core::OperatorKind::ZoneBreach,
                zone_id: Some(vigil_core::ZoneId::new("home").unwrap()),
                count: 1,
            },
        },
    };
    s.store.arm_escalation(&armed).await.unwrap();
    s.store.arm_escalation(&armed).await.unwrap();
    let due = s.store.due(105).await.unwrap();
    assert_eq!(due.tags, [b.clone()].into());
    assert_eq!(due.events, std::slice::from_ref(&armed.event));
    assert_eq!(s.store.armed(104, 106).await.unwrap().len(), 1);
    // Marks: set once, removed once, read back with the tag.
    let o = OrderId::new("o-00000").unwrap();
    assert!(
        s.store
            .mark_watch(&a, &o, Condition::Silence, Some(Some(T0)))
            .await
            .unwrap()
    );
    assert!(
        !s.store
            .mark_watch(&a, &o, Condition::Silence, Some(Some(T0)))
            .await
            .unwrap()
    );
    let w = s.store.watched(&[a.clone(), b.clone()]).await.unwrap();
    assert_eq!(w.len(), 2);
    assert_eq!(
        w[0].told.get(&(o.clone(), Condition::Silence)),
        Some(&Some(T0))
    );
    assert!(
        s.store
            .mark_watch(&a, &o, Condition::Silence, None)
            .await
            .unwrap()
    );
    assert!(
        !s.store
            .mark_watch(&a, &o, Condition::Silence, None)
            .await
            .unwrap()
    );
    // Each with its force: none here (orders provisioned without one).
    assert_eq!(
        s.store.tags_with_orders().await.unwrap(),
        [(a, None), (b, None)]
    );
}

#[tokio::test]
async fn a_silent_tag_reaches_the_alert_queue_once() {
    let s = stack().await;
    provision(&s, 1).await;
    let t = tag(0);
    let at = T0;
    let f = fix_north(1, at, 5_000.0);
    let h = s.store.history(&t).await.unwrap();
    s.store.save_history(&t, &h.with_fix(&f, at)).await.unwrap();
    for m in 0..12 {
        run(&s.ports, T0 + m * MIN).await.unwrap();
    }
    let got = s
        .sqs
        .receive_message()
        .queue_url(&s.queue_url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    let bodies: Vec<vigil_core::events::AlertEvent> = got
        .messages
        .unwrap_or_default()
        .iter()
        .map(|m| serde_json::from_str(m.body.as_deref().unwrap()).unwrap())
        .collect();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert!(matches!(
        bodies[0].body,
        AlertBody::Watch {
            condition: Condition::Silence,
            started: true,
            ..
        }
    ));
}

#[tokio::test]
async fn cost_per_minute_grows_with_the_tags_due_not_the_fleet() {
    let big: usize = std::env::var("VIGIL_WATCHDOG_TAGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let (small_ops, small_checked) = measure(10, 30).await;
    let (big_ops, big_checked) = measure(big, 30).await;
    eprintln!(
        "WATCHDOG requests per minute, 10 tags: {small_ops:?}; tags checked per minute {small_checked:.1}"
    );
    eprintln!(
        "WATCHDOG requests per minute, {big} tags: {big_ops:?}; tags checked per minute {big_checked:.1}"
    );
    // Every tag is looked at about once per silence limit (5 min), not every minute.
    for (n, checked) in [(10.0, small_checked), (big as f64, big_checked)] {
        let per_tag_minute = checked / n;
        eprintln!("WATCHDOG checks per tag-minute at {n} tags: {per_tag_minute:.3}");
        assert!(per_tag_minute < 0.3, "{per_tag_minute}");
        assert!(per_tag_minute > 0.1, "{per_tag_minute}");
    }
    // The fleet-wide reads (the sweep's Scan) are a few per quarter hour, not per tag.
    let scans = big_ops.get("Scan").copied().unwrap_or(0.0);
    assert!(
        scans <= (big as f64 / 1000.0).ceil() / 10.0 + 0.2,
        "{scans} scans a minute"
    );
}
