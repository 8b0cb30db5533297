//! Ingest against a real AWS-compatible endpoint (moto's server, started per test by
//! `vigil-local`): DynamoDB conditional writes and transactions, SQS FIFO, request counts.

use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::Barrier;
use vigil_aws::counting::RequestCounter;
use vigil_aws::items::{self, table};
use vigil_aws::metrics::MemoryMetrics;
use vigil_aws::ports::{
    AdminStore, AlertQueue, AuditEntry, AuditLog, Commit, DeviceContext, IngestStore,
    QuarantineRecord, ReportingStore, TagContext,
};
use vigil_aws::{Config, DynamoStore, SqsQueue, StoreError};
use vigil_core::cells::Cell;
use vigil_core::events::{AlertBody, AlertEvent};
use vigil_core::fix::{encode_batch, encode_fix};
use vigil_core::ingest::ZoneRecord;
use vigil_core::proximity::{VictimDevice, VictimPosition, VictimZoneTerms};
use vigil_core::reporting::{Commanded, ReportingCommand};
use vigil_core::{AlertLevel, DeviceId, Fix, OrderId, TagHistory, TagId, Zone, ZoneId, ZoneKey};
use vigil_ingest::{Outcome, Ports, handle, rule_event};
use vigil_local::Emulator;
use vigil_testkit::{fix_north, home_zone, order};

const T0: i64 = 1_764_432_000_000;

struct Stack {
    emulator: Emulator,
    config: Config,
    store: DynamoStore,
    counter: RequestCounter,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
}

async fn stack() -> Stack {
    let emulator = Emulator::start().await.expect("emulator starts");
    let env: BTreeMap<String, String> = emulator.env_vars().into_iter().collect();
    let config = Config::from_lookup(|k| env.get(k).cloned()).unwrap();
    let sdk = emulator.sdk_config();
    let counter = RequestCounter::new();
    let ddb_conf = aws_sdk_dynamodb::config::Builder::from(&sdk)
        .interceptor(counter.clone())
        .build();
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(ddb_conf), &config);
    store.put_order(&order()).await.unwrap();
    store.put_zone(&home_zone()).await.unwrap();
    let queue_url = config.alerts_queue_url().unwrap().to_owned();
    assert!(queue_url.ends_with(".fifo"), "{queue_url}");
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    counter.reset();
    Stack {
        emulator,
        config,
        store,
        counter,
        sqs,
        queue_url,
    }
}

fn ports<S: IngestStore, Q: AlertQueue>(store: S, queue: Q) -> Ports<S, Q, MemoryMetrics> {
    Ports::new(store, queue, MemoryMetrics::default())
}

fn fix(seq: u64, at_s: i64, north_m: f64) -> Fix {
    fix_north(seq, T0 + at_s * 1000, north_m)
}

/// What the IoT rule does for a fix: its Lambda action invokes ingest with the encoded
/// payload.
async fn publish<S: IngestStore, Q: AlertQueue>(
    p: &Ports<S, Q, MemoryMetrics>,
    f: &Fix,
) -> Outcome {
    handle(rule_event("tag-1", "fix", &encode_fix(f), f.at_ms + 200), p)
        .await
        .unwrap()
}

async fn queued(s: &Stack) -> Vec<AlertEvent> {
    let mut out = Vec::new();
    loop {
        let resp = s
            .sqs
            .receive_message()
            .queue_url(&s.queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        let msgs = resp.messages.unwrap_or_default();
        if msgs.is_empty() {
            return out;
        }
        for m in msgs {
            out.push(serde_json::from_str(m.body().unwrap()).unwrap());
            s.sqs
                .delete_message()
                .queue_url(&s.queue_url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

fn transitions(events: &[AlertEvent]) -> Vec<(AlertLevel, AlertLevel)> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            AlertBody::ZoneChange { change, .. } => {
                change.transition.as_ref().map(|t| (t.from, t.to))
            }
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn cost_per_fix_quiet_and_near() {
    let s = stack().await;
    let p = ports(
        s.store.clone(),
        SqsQueue::new(s.sqs.clone(), s.queue_url.clone()),
    );
    let ops = |c: &RequestCounter| c.snapshot();
    // A tag's first message, and one every ten minutes: adaptive reporting judges its window
    // (docs/WIRE_FORMAT.md), a Query of its order's zones on top of the quiet path.
    s.counter.reset();
    assert_eq!(publish(&p, &fix(1, 0, 3_000.0)).await, Outcome::Quiet);
    let window_check = ops(&s.counter);
    assert_eq!(
        window_check,
        BTreeMap::from([
            ("BatchGetItem".to_owned(), 1),
            ("PutItem".to_owned(), 1),
            ("Query".to_owned(), 1)
        ]),
        "{window_check:?}"
    );
    // Quiet path: far from the zone. One BatchGetItem (tag, history, cells) and the history's
    // conditional PutItem: the IoT rule writes nothing any more.
    s.counter.reset();
    assert_eq!(publish(&p, &fix(2, 60, 3_000.0)).await, Outcome::Quiet);
    let quiet = ops(&s.counter);
    assert_eq!(
        quiet,
        BTreeMap::from([("BatchGetItem".to_owned(), 1), ("PutItem".to_owned(), 1)]),
        "{quiet:?}"
    );
    // Near path with a transition: into the buffer.
    s.counter.reset();
    assert_eq!(
        publish(&p, &fix(3, 120, 400.0)).await,
        Outcome::Evaluated { events: 1 }
    );
    let transition = ops(&s.counter);
    // The alert function tells the tag to report faster (pursuit mode) and keeps the command
    // on the tag's item, under a condition on the one it read: a second writer that read
    // none loses.
    let tag = Commanded::Tag(TagId::new("tag-1").unwrap());
    let pursuit = ReportingCommand {
        report_interval_s: 15,
        sent_at_ms: fix(3, 120, 400.0).at_ms,
        attempts: 1,
        pursuit: true,
        order_id: OrderId::new("o1").unwrap(),
        batch_s: 0,
        window_basis_ms: None,
    };
    s.store
        .save_command(&tag, Some(&pursuit), None)
        .await
        .unwrap();
    let lost = s.store.save_command(&tag, Some(&pursuit), None).await;
    assert!(matches!(lost, Err(StoreError::Conflict { .. })), "{lost:?}");
    let read = s.store.tag_reporting(&TagId::new("tag-1").unwrap()).await;
    assert_eq!(read.unwrap().unwrap().command, Some(pursuit));
    // Near path without a transition: still in the buffer, the command kept.
    s.counter.reset();
    assert_eq!(
        publish(&p, &fix(4, 180, 420.0)).await,
        Outcome::Evaluated { events: 0 }
    );
    let hovering = ops(&s.counter);
    eprintln!(
        "COST quiet={quiet:?}\nCOST quiet_with_window_check={window_check:?}\nCOST near_transition={transition:?}\nCOST near_no_transition={hovering:?}"
    );
    assert_eq!(transition.get("TransactWriteItems"), Some(&1));
    assert_eq!(
        hovering.get("TransactWriteItems"),
        None,
        "hovering writes nothing"
    );
    assert_eq!(
        transitions(&queued(&s).await),
        vec![(AlertLevel::Clear, AlertLevel::Warning)]
    );
}

/// A v2 batch of quiet fixes (adaptive reporting, far from every zone): the requests of one
/// quiet fix for the whole batch, with the window's judgement (a tag told a window is judged
/// on every message).
#[tokio::test]
async fn cost_of_a_batch_is_the_cost_of_one_fix() {
    let s = stack().await;
    let p = ports(
        s.store.clone(),
        SqsQueue::new(s.sqs.clone(), s.queue_url.clone()),
    );
    // Ten fixes a minute apart, driving 30 to 25 km from the zone: a few cells each.
    let fixes: Vec<Fix> = (0..10)
        .map(|i| fix(i + 1, 60 * i as i64, 30_000.0 - 500.0 * i as f64))
        .collect();
    s.counter.reset();
    let out = handle(
        rule_event("tag-1", "fix", &encode_batch(&fixes), fixes[9].at_ms + 500),
        &p,
    )
    .await
    .unwrap();
    assert_eq!(out, Outcome::Batch(vec![Outcome::Quiet; 10]));
    let batch = s.counter.snapshot();
    eprintln!("COST quiet_batch_of_10={batch:?}");
    assert_eq!(
        batch,
        BTreeMap::from([
            ("BatchGetItem".to_owned(), 1),
            ("PutItem".to_owned(), 1),
            ("Query".to_owned(), 1)
        ]),
        "{batch:?}"
    );
    let history = s
        .store
        .history(&TagId::new("tag-1").unwrap())
        .await
        .unwrap();
    assert_eq!(history.newest(), Some((fixes[9].at_ms, 10)));
}

/// With her device (docs/PROXIMITY.md): what his fix and her position cost, in requests.
#[tokio::test]
async fn cost_with_the_victims_device() {
    let s = stack().await;
    let mut o = order();
    o.victim_device = Some(VictimDevice {
        device_id: DeviceId::new("phone-v1").unwrap(),
        zone: VictimZoneTerms::default(),
    });
    s.store.put_order(&o).await.unwrap();
    let p = ports(
        s.store.clone(),
        SqsQueue::new(s.sqs.clone(), s.queue_url.clone()),
    );
    let ops = |c: &RequestCounter| c.snapshot();
    let count = |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    };
    let hers = |seq: u64, at_s: i64, north_m: f64| {
        let at_ms = T0 + at_s * 1000;
        let payload = format!(
            r#"{{"v":1,"seq":{seq},"at_ms":{at_ms},"lat":{},"lon":-0.12,"accuracy_m":10}}"#,
            51.5 + north_m / 111_250.0
        );
        vigil_ingest::position_event("phone-v1", payload.as_bytes(), at_ms + 500)
    };
    // Her position, far from him (he has no fix yet): the device and its orders' tags (two
    // reads) and her position (one conditional put).
    s.counter.reset();
    assert_eq!(
        handle(hers(1, 0, 8_000.0), &p).await.unwrap(),
        Outcome::Quiet
    );
    let position_quiet = ops(&s.counter);
    assert_eq!(
        position_quiet,
        count(&[("BatchGetItem", 2), ("PutItem", 1)]),
        "{position_quiet:?}"
    );
    // His fix, far from home and from her: the quiet path plus one read of her position.
    s.counter.reset();
    assert_eq!(publish(&p, &fix(1, 30, 3_000.0)).await, Outcome::Quiet);
    let fix_quiet = ops(&s.counter);
    assert_eq!(
        fix_quiet,
        count(&[("BatchGetItem", 2), ("PutItem", 1)]),
        "{fix_quiet:?}"
    );
    // Her next position, still far from his fix: the same as her first.
    s.counter.reset();
    assert_eq!(
        handle(hers(2, 60, 8_000.0), &p).await.unwrap(),
        Outcome::Quiet
    );
    assert_eq!(ops(&s.counter), position_quiet);
    // She walks to within 1 km of him: her position raises the moving zone's WARNING (the
    // order's states read, one transaction).
    s.counter.reset();
    assert_eq!(
        handle(hers(3, 90, 3_800.0), &p).await.unwrap(),
        Outcome::Evaluated { events: 1 }
    );
    let position_transition = ops(&s.counter);
    eprintln!(
        "COST position_quiet={position_quiet:?}\nCOST fix_quiet_with_device={fix_quiet:?}\nCOST position_transition={position_transition:?}"
    );
    assert_eq!(position_transition.get("TransactWriteItems"), Some(&1));
    let kinds: Vec<String> = queued(&s)
        .await
        .iter()
        .map(|e| match &e.body {
            AlertBody::ZoneChange { zone_id, .. } => zone_id.to_string(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds, ["victim-device"]);
}

/// A store that makes two invocations read the states before either commits.
#[derive(Clone)]
struct RacingStore {
    inner: DynamoStore,
    barrier: Arc<Barrier>,
    conflicts: Arc<std::sync::atomic::AtomicU32>,
}

impl IngestStore for RacingStore {
    async fn load_context(&self, t: &TagId, c: &[Cell]) -> Result<Option<TagContext>, StoreError> {
        self.inner.load_context(t, c).await
    }
    async fn history(&self, t: &TagId) -> Result<TagHistory, StoreError> {
        self.inner.history(t).await
    }
    async fn order_zones(&self, o: &OrderId) -> Result<Vec<Zone>, StoreError> {
        self.inner.order_zones(o).await
    }
    async fn save_history(&self, t: &TagId, h: &TagHistory) -> Result<(), StoreError> {
        self.inner.save_history(t, h).await
    }
    async fn event_digest(&self, t: &TagId, seq: u64) -> Result<Option<String>, StoreError> {
        self.inner.event_digest(t, seq).await
    }
    async fn save_event_digest(
        &self,
        t: &TagId,
        seq: u64,
        d: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.inner.save_event_digest(t, seq, d, now).await
    }
    async fn zones(&self, keys: &[ZoneKey]) -> Result<Vec<Zone>, StoreError> {
        self.inner.zones(keys).await
    }
    async fn states(&self, o: &OrderId) -> Result<BTreeMap<ZoneId, ZoneRecord>, StoreError> {
        let states = self.inner.states(o).await?;
        if states.is_empty() {
            self.barrier.wait().await;
        }
        Ok(states)
    }
    async fn commit(&self, c: &Commit) -> Result<(), StoreError> {
        let r = self.inner.commit(c).await;
        if matches!(r, Err(StoreError::Conflict { .. })) {
            self.conflicts
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        r
    }
    async fn clear_pending(&self, o: &OrderId, z: &ZoneId, rev: u64) -> Result<(), StoreError> {
        self.inner.clear_pending(o, z, rev).await
    }
    async fn quarantine(&self, r: &QuarantineRecord) -> Result<(), StoreError> {
        self.inner.quarantine(r).await
    }
    async fn device_context(&self, d: &DeviceId) -> Result<Option<DeviceContext>, StoreError> {
        self.inner.device_context(d).await
    }
    async fn victim_positions(
        &self,
        d: &[DeviceId],
    ) -> Result<BTreeMap<DeviceId, VictimPosition>, StoreError> {
        self.inner.victim_positions(d).await
    }
    async fn save_position(
        &self,
        d: &DeviceId,
        p: &VictimPosition,
        expires_at_s: i64,
    ) -> Result<bool, StoreError> {
        self.inner.save_position(d, p, expires_at_s).await
    }
    async fn mark_victim_silent(
        &self,
        t: &TagId,
        o: &OrderId,
        episode: Option<i64>,
    ) -> Result<bool, StoreError> {
        self.inner.mark_victim_silent(t, o, episode).await
    }
    async fn clear_victim_silent(&self, t: &TagId, o: &OrderId) -> Result<bool, StoreError> {
        self.inner.clear_victim_silent(t, o).await
    }
}

#[tokio::test]
async fn concurrent_ingest_of_the_same_transition_commits_it_once() {
    let s = stack().await;
    let racing = RacingStore {
        inner: s.store.clone(),
        barrier: Arc::new(Barrier::new(2)),
        conflicts: Default::default(),
    };
    let p = ports(
        racing.clone(),
        SqsQueue::new(s.sqs.clone(), s.queue_url.clone()),
    );
    // Two fixes inside the zone, handled at once; both read "no state" before either commits.
    let (a, b) = (fix(1, 0, 0.0), fix(2, 1, 5.0));
    let (ra, rb) = tokio::join!(publish(&p, &a), publish(&p, &b));
    let total = [ra, rb]
        .iter()
        .map(|o| {
            if let Outcome::Evaluated { events } = o {
                *events
            } else {
                0
            }
        })
        .sum::<usize>();
    // The winner queued its event; the loser, re-reading, may find it still in the outbox and
    // deliver it again (counted in its outcome); the FIFO queue keeps one per event id.
    assert!((1..=2).contains(&total), "{total} events queued");
    assert_eq!(
        racing.conflicts.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the loser's conditional write failed"
    );
    assert_eq!(
        transitions(&queued(&s).await),
        vec![(AlertLevel::Clear, AlertLevel::Breach)]
    );
    let states = s.store.states(&OrderId::new("o1").unwrap()).await.unwrap();
    let home = &states[&ZoneId::new("home").unwrap()];
    // The loser re-read BREACH; its fix changes nothing but the newest key, which is not written.
    assert_eq!(
        (home.state.level, home.rev),
        (AlertLevel::Breach, 1),
        "one transition committed"
    );
}

#[tokio::test]
async fn malformed_payloads_are_quarantined_and_change_no_state() {
    let s = stack().await;
    let p = ports(
        s.store.clone(),
        SqsQueue::new(s.sqs.clone(), s.queue_url.clone()),
    );
    publish(&p, &fix(1, 0, 400.0)).await;
    let before = s.store.states(&OrderId::new("o1").unwrap()).await.unwrap();
    for (payload, reason) in [
        (&b"\x00\xffgarbage"[..], "malformed"),
        (
            br#"{"v":1,"seq":5,"at_ms":1764432000000,"lat":"NaN","lon":-0.12,"accuracy_m":5}"#,
            "not_finite",
        ),
        (
            br#"{"v":1,"seq":6,"at_ms":1764432000000,"lat":51.5,"lon":200,"accuracy_m":5}"#,
            "longitude_out_of_range",
        ),
    ] {
        let out = handle(rule_event("tag-1", "fix", payload, T0 + 500), &p)
            .await
            .unwrap();
        assert_eq!(
            out,
            Outcome::Rejected {
                reason: reason.into(),
                operator_events: 0
            }
        );
        assert_eq!(p.metrics.get("MessageRejected", reason), 1);
    }
    assert_eq!(
        s.store.states(&OrderId::new("o1").unwrap()).await.unwrap(),
        before
    );
    // All three arrived in the same millisecond: the sort key (received ms, then content
    // digest) keeps each one, in digest order within the millisecond.
    let kept = s.store.quarantined("tag-1").await.unwrap();
    let mut reasons = kept.iter().map(|q| q.reason.as_str()).collect::<Vec<_>>();
    reasons.sort_unstable();
    assert_eq!(
        reasons,
        ["longitude_out_of_range", "malformed", "not_finite"]
    );
    let lon = kept
        .iter()
        .find(|q| q.reason == "longitude_out_of_range")
        .unwrap();
    assert!(lon.detail.contains("200"));
}

#[tokio::test]
async fn the_audit_chain_verifies_and_a_tampered_record_is_detected() {
    let s = stack().await;
    let order = OrderId::new("o1").unwrap();
    // Two writers append at once (the alert function and an operator): the chain serialises.
    let entry = |k: &str, i: u64| AuditEntry {
        kind: k.into(),
        detail: serde_json::json!({"i": i, "distance_m": 100.0}),
    };
    let (first, second) = (
        [entry("zone_change", 1), entry("sms_sent", 2)],
        [entry("operator_notified", 3)],
    );
    let (a, b) = tokio::join!(
        s.store.append(&order, &first, T0),
        s.store.append(&order, &second, T0)
    );
    a.unwrap();
    b.unwrap();
    let chain = s.store.read(&order).await.unwrap();
    assert_eq!(chain.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
    vigil_core::audit::verify_chain(&chain).unwrap();
    // Someone with table access rewrites record 2's distance.
    let mut forged = chain[1].clone();
    forged.detail["distance_m"] = serde_json::json!(9999.0);
    s.store
        .client()
        .put_item()
        .table_name(s.config.name(table::AUDIT))
        .set_item(Some(items::audit_item(&forged)))
        .send()
        .await
        .unwrap();
    let chain = s.store.read(&order).await.unwrap();
    assert_eq!(
        vigil_core::audit::verify_chain(&chain),
        Err(vigil_core::audit::ChainError::Altered { seq: 2 })
    );
}

#[tokio::test]
async fn the_history_holds_accepted_fixes_only_and_survives_a_race() {
    let s = stack().await;
    let p = ports(
        s.store.clone(),
        SqsQueue::new(s.sqs.clone(), s.queue_url.clone()),
    );
    publish(&p, &fix(1, 0, 3_000.0)).await;
    // Rejected (speed), never history.
    assert!(matches!(
        publish(&p, &fix(2, 10, 50_000.0)).await,
        Outcome::Rejected { .. }
    ));
    // Two quiet fixes at once: both end in the history (the loser re-reads and merges).
    let (a, b) = (fix(3, 60, 3_100.0), fix(4, 61, 3_200.0));
    let (ra, rb) = tokio::join!(publish(&p, &a), publish(&p, &b));
    assert_eq!((ra, rb), (Outcome::Quiet, Outcome::Quiet));
    let h = s
        .store
        .history(&TagId::new("tag-1").unwrap())
        .await
        .unwrap();
    let seqs: Vec<u64> = h.fixes.iter().map(|t| t.seq).collect();
    assert_eq!(seqs, vec![4, 3, 1]);
}

/// A queue whose first send fails, as SQS might.
struct FlakyQueue {
    inner: SqsQueue,
    fail: std::sync::atomic::AtomicBool,
}

impl AlertQueue for FlakyQueue {
    async fn send(&self, events: &[AlertEvent]) -> Result<(), StoreError> {
        if self.fail.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Unavailable {
                service: "sqs",
                detail: "test outage".into(),
            });
        }
        self.inner.send(events).await
    }
}

#[tokio::test]
async fn a_queue_outage_after_commit_is_recovered_by_the_retry() {
    let s = stack().await;
    let q = FlakyQueue {
        inner: SqsQueue::new(s.sqs.clone(), s.queue_url.clone()),
        fail: true.into(),
    };
    let p = ports(s.store.clone(), q);
    let f = fix(1, 0, 0.0);
    let event = rule_event("tag-1", "fix", &encode_fix(&f), f.at_ms + 200);
    let err = handle(event.clone(), &p).await.unwrap_err();
    assert!(err.is_retryable());
    assert!(queued(&s).await.is_empty());
    let pending = &s.store.states(&OrderId::new("o1").unwrap()).await.unwrap()
        [&ZoneId::new("home").unwrap()]
        .pending;
    assert_eq!(pending.len(), 1, "committed with its outbox");
    // Lambda's retry of the same event delivers the outbox (one event); the transition is not
    // repeated.
    assert_eq!(
        handle(event, &p).await.unwrap(),
        Outcome::Evaluated { events: 1 }
    );
    assert_eq!(
        transitions(&queued(&s).await),
        vec![(AlertLevel::Clear, AlertLevel::Breach)]
    );
    drop(s.emulator);
}
