//! The alert handler on the in-memory ports: every rule of the alert path, including
//! failures, staleness, forged claims and privacy. (Against moto: `tests/pipeline/tests/alert_emulator.rs`.)

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use serde_json::json;
use std::sync::Mutex;
use vigil_alert::batch::MESSAGE_GROUP_ID;
use vigil_alert::{
    AlertError, CLAIM_STALE_AFTER_MS, Ports, handle_batch, handle_event, parse_event,
};
use vigil_aws::StoreError;
use vigil_aws::memory::{MemoryCommander, MemoryMac, MemoryNotifier, MemoryStore};
use vigil_aws::metrics::MemoryMetrics;
use vigil_aws::ports::{AdminStore, AlertStore, AuditLog, Commit, IngestStore, Notifier};
use vigil_core::audit::verify_chain;
use vigil_core::events::{AlertBody, AlertEvent};
use vigil_core::fix::{Fix, TagEventKind};
use vigil_core::ingest::StateWrite;
use vigil_core::policy::OrderChange;
use vigil_core::state::{Cause, Transition, ZoneState};
use vigil_core::{
    AlertLevel, Assessment, OperatorEvent, OrderId, PhoneNumber, ProtectionOrder, TagId, Urgency,
    VictimAlert, ZoneId, ZoneKind,
};
use vigil_testkit::CapturedLogs;

const PHONE: &str = "+447700900123";
const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const NOW: i64 = T0 + 2_000;

type TestPorts<N = MemoryNotifier> =
    Ports<MemoryStore, N, MemoryMac, MemoryMetrics, MemoryCommander>;

fn order_json(order_id: &str, phone: &str) -> ProtectionOrder {
    serde_json::from_value(json!({
        "order_id": order_id,
        "tag_id": "t-1",
        "victim": {"victim_id": "v-1", "phone": phone, "language": "en"},
    }))
    .unwrap()
}

fn countries() -> Vec<String> {
    ["GB", "ES", "US"].map(String::from).to_vec()
}

async fn ports_with_notifier<N: Notifier>(orders: &[ProtectionOrder], notifier: N) -> TestPorts<N> {
    let ports = Ports {
        store: MemoryStore::new(),
        notifier,
        destination_mac: MemoryMac::default(),
        metrics: MemoryMetrics::default(),
        commander: MemoryCommander::default(),
        sms_countries: countries(),
        forces: None,
    };
    for o in orders {
        ports.store.put_order(o).await.unwrap();
    }
    ports
}

async fn ports_with(orders: &[ProtectionOrder]) -> TestPorts {
    ports_with_notifier(orders, MemoryNotifier::default()).await
}

async fn ports() -> TestPorts {
    ports_with(&[order_json("o-123", PHONE)]).await
}

/// Sets order `order_id`'s home zone to `level`, as ingest's commit would: the state the
/// alert function checks an event against.
async fn at_level<N>(ports: &TestPorts<N>, order_id: &str, level: AlertLevel) {
    let order_id = OrderId::new(order_id).unwrap();
    let home = ZoneId::new("home").unwrap();
    let rev = IngestStore::states(&ports.store, &order_id)
        .await
        .unwrap()
        .get(&home)
        .map_or(0, |r| r.rev);
    let commit = Commit {
        order_id,
        tag_id: TagId::new("t-1").unwrap(),
        writes: vec![StateWrite {
            zone_id: home,
            expected_rev: rev,
            state: ZoneState {
                level,
                ..ZoneState::default()
            },
            pending: vec![],
        }],
        opened: vec![],
        closed: vec![],
    };
    ports.store.commit(&commit).await.unwrap();
}

/// A zone change of the home zone of `order_id`: zone level `from` -> `to`, order level
/// `before` -> `after`, caused by a fix `at_s` seconds after T0 received at once; `rev`
/// makes the event id.
fn zone_change(
    order_id: &str,
    rev: u64,
    (from, to, cause): (AlertLevel, AlertLevel, Cause),
    (before, after): (AlertLevel, AlertLevel),
    at_s: i64,
) -> AlertEvent {
    let order_id = OrderId::new(order_id).unwrap();
    let zone_id = ZoneId::new("home").unwrap();
    let tag_id = TagId::new("t-1").unwrap();
    let at_ms = T0 + at_s * 1000;
    AlertEvent {
        event_id: AlertEvent::zone_change_id(&order_id, &zone_id, rev),
        order_id,
        tag_id: tag_id.clone(),
        at_ms,
        received_at_ms: at_ms,
        body: AlertBody::ZoneChange {
            zone_id: zone_id.clone(),
            zone_kind: ZoneKind::Home,
            assessment: Assessment {
                zone_id,
                in_force: true,
                entry: to,
                exit: to,
                distance_m: 140.0,
            },
            change: OrderChange {
                transition: Some(Transition {
                    from,
                    to,
                    cause,
                    at_ms,
                    late_by_ms: None,
                }),
                escalation: None,
                order_before: before,
                order_after: after,
                at_ms,
            },
            fix: Fix {
                tag_id,
                seq: rev,
                at_ms,
                lat: 51.501234,
                lon: -0.141234,
                accuracy_m: 12.0,
                speed_mps: None,
                heading_deg: None,
                battery_pct: Some(80),
            },
            state_rev: rev,
        },
    }
}

fn warning(order_id: &str, rev: u64, at_s: i64) -> AlertEvent {
    use AlertLevel::*;
    zone_change(
        order_id,
        rev,
        (Clear, Warning, Cause::Entered),
        (Clear, Warning),
        at_s,
    )
}

fn tag_event(order_id: &str, kind: TagEventKind, seq: u64, at_s: i64) -> AlertEvent {
    let order_id = OrderId::new(order_id).unwrap();
    let tag_id = TagId::new("t-1").unwrap();
    let hash = format!("{seq:016x}");
    AlertEvent {
        event_id: AlertEvent::tag_event_id(&order_id, &tag_id, seq, &hash),
        order_id,
        tag_id,
        at_ms: T0 + at_s * 1000,
        received_at_ms: T0 + at_s * 1000,
        body: AlertBody::TagEvent {
            kind,
            seq,
            battery_pct: Some(50),
            content_hash: hash,
        },
    }
}

fn tamper(order_id: &str, seq: u64, at_s: i64) -> AlertEvent {
    tag_event(order_id, TagEventKind::StrapTamper, seq, at_s)
}

fn message(id: &str, group: Option<&str>, body: Option<String>) -> SqsMessage {
    let mut m = SqsMessage::default();
    m.message_id = Some(id.to_owned());
    m.body = body;
    if let Some(g) = group {
        m.attributes
            .insert(MESSAGE_GROUP_ID.to_owned(), g.to_owned());
    }
    m
}

fn msg(id: &str, event: &AlertEvent) -> SqsMessage {
    message(
        id,
        Some(event.order_id.as_str()),
        Some(serde_json::to_string(event).unwrap()),
    )
}

fn batch(messages: Vec<SqsMessage>) -> SqsEvent {
    let mut e = SqsEvent::default();
    e.records = messages;
    e
}

fn failures(r: &SqsBatchResponse) -> Vec<String> {
    r.batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

async fn run<N: Notifier>(
    ports: &TestPorts<N>,
    messages: Vec<SqsMessage>,
    now_ms: i64,
) -> Vec<String> {
    failures(&handle_batch(batch(messages), ports, now_ms).await)
}

async fn audit_kinds<N>(ports: &TestPorts<N>, order_id: &str) -> Vec<String> {
    let chain = ports
        .store
        .read(&OrderId::new(order_id).unwrap())
        .await
        .unwrap();
    verify_chain(&chain).unwrap();
    chain.into_iter().map(|r| r.kind).collect()
}

fn kinds(op: &OperatorEvent) -> Vec<String> {
    op.kinds.iter().map(ToString::to_string).collect()
}

#[tokio::test]
async fn a_warning_texts_the_victim_once_and_tells_operators() {
    let ports = ports().await;
    at_level(&ports, "o-123", AlertLevel::Warning).await;
    let event = warning("o-123", 1, 0);
    assert!(run(&ports, vec![msg("m1", &event)], NOW).await.is_empty());

    let sms = ports.notifier.sms();
    assert_eq!(sms.len(), 1);
    assert_eq!(sms[0].to.e164(), PHONE);
    assert_eq!(
        sms[0].text,
        "Vigil: the person named in your protection order may be near your home. Stay alert \
         and keep your phone with you. If you feel unsafe, go somewhere safe and call 999."
    );

    let ops = ports.notifier.operator_events();
    assert_eq!(ops.len(), 1);
    let op = serde_json::to_value(&ops[0]).unwrap();
    assert_eq!(op["v"], 1);
    assert_eq!(op["kind"], "zone_warning");
    assert_eq!(op["kinds"], json!(["zone_warning"]));
    assert_eq!(op["urgency"], "high");
    assert_eq!(op["event_id"], "zc:o-123:home:1");
    assert_eq!(op["order_id"], "o-123");
    assert_eq!(op["tag_id"], "t-1");
    assert_eq!(op["zone"]["zone_id"], "home");
    assert_eq!(op["zone"]["zone_kind"], "home");
    assert_eq!(op["zone"]["distance_m"], 140.0);
    assert_eq!(op["at"], "2026-01-01T00:00:00.000Z");
    assert_eq!(op["levels"]["transition"]["to"], "warning");
    assert_eq!(op["levels"]["order_level_before"], "clear");
    assert_eq!(op["levels"]["order_level_after"], "warning");
    assert_eq!(op["levels"]["order_level_now"], "warning");
    assert_eq!(
        op["offender"],
        json!({"lat": 51.501234, "lon": -0.141234, "accuracy_m": 12.0, "seq": 1})
    );
    assert_eq!(op["victim_sms"], "sent:warning");
    assert_eq!(op["late"], false);
    // It parses back as the one typed vocabulary.
    assert_eq!(serde_json::from_value::<OperatorEvent>(op).unwrap(), ops[0]);

    let chain = ports
        .store
        .read(&OrderId::new("o-123").unwrap())
        .await
        .unwrap();
    assert_eq!(verify_chain(&chain), Ok(()));
    let k: Vec<&str> = chain.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(k, ["zone_change", "sms_sent", "operator_notified"]);
    assert_eq!(chain[1].prev_hash, chain[0].hash);
    assert_eq!(chain[0].detail["event_id"], "zc:o-123:home:1");
    assert_eq!(chain[0].detail["fix"]["lat"], 51.501234);
    let sent = &chain[1].detail;
    assert_eq!(sent["alert"], "warning");
    assert_eq!(sent["to"], "+44…23");
    let mac = MemoryMac::default().hmac_hex(PHONE.as_bytes());
    assert_eq!(sent["to_mac"], mac.as_str(), "the destination's keyed hash");
    assert_eq!(sent["message_id"], "sms-1");
    assert_eq!(sent["text"], sms[0].text.as_str());
    assert_eq!(sent["segments"], 2);
    let notified = &chain[2].detail;
    assert_eq!(notified["kinds"], json!(["zone_warning"]));
    assert_eq!(notified["urgency"], "high");
    assert_eq!(notified["message_id"], "op-1");

    assert_eq!(ports.metrics.get("SmsSent", "warning"), 1);
    assert_eq!(ports.metrics.get("OperatorEvents", "high"), 1);
    let (notices, rev) = ports.store.notices(&event.order_id).await.unwrap();
    assert_eq!((notices.last, rev), (Some((VictimAlert::Warning, NOW)), 1));
}

#[tokio::test]
async fn the_same_event_delivered_twice_texts_once() {
    let ports = ports().await;
    at_level(&ports, "o-123", AlertLevel::Warning).await;
    let event = warning("o-123", 1, 0);
    let failed = run(&ports, vec![msg("m1", &event), msg("m2", &event)], NOW).await;
    assert!(failed.is_empty(), "{failed:?}");
    assert!(
        run(&ports, vec![msg("m3", &event)], NOW + 60_000)
            .await
            .is_empty()
    );
    assert_eq!(ports.notifier.sms().len(), 1);
    assert_eq!(ports.notifier.operator_events().len(), 1);
    assert_eq!(ports.metrics.get("AlertDuplicate", "zone_change"), 2);
    assert_eq!(audit_kinds(&ports, "o-123").await.len(), 3);
}

#[tokio::test]
async fn a_breach_repeated_within_the_cooldown_is_held() {
    use AlertLevel::*;
    let ports = ports().await;
    let events = [
        (
            zone_change(
                "o-123",
                1,
                (Clear, Breach, Cause::Entered),
                (Clear, Breach),
                0,
            ),
            Breach,
        ),
        (
            zone_change(
                "o-123",
                2,
                (Breach, Warning, Cause::SustainedExit),
                (Breach, Warning),
                120,
            ),
            Warning,
        ),
        (
            zone_change(
                "o-123",
                3,
                (Warning, Breach, Cause::Entered),
                (Warning, Breach),
                200,
            ),
            Breach,
        ),
    ];
    for (i, (e, level)) in events.iter().enumerate() {
        at_level(&ports, "o-123", *level).await;
        let now = e.received_at_ms + 1_000;
        assert!(
            run(&ports, vec![msg(&format!("m{i}"), e)], now)
                .await
                .is_empty()
        );
    }
    let sms = ports.notifier.sms();
    assert_eq!(sms.len(), 1);
    assert!(sms[0].text.starts_with("Vigil URGENT:"), "{}", sms[0].text);
    assert!(
        sms[0]
            .text
            .contains("inside the protected area around your home")
    );
    let ops = ports.notifier.operator_events();
    assert_eq!(ops.len(), 3);
    assert_eq!(ops[2].victim_sms, "held:breach:cooldown");
    assert_eq!(ops[2].urgency, Urgency::Urgent);
    let k = audit_kinds(&ports, "o-123").await;
    assert_eq!(
        k,
        [
            "zone_change",
            "sms_sent",
            "operator_notified",
            "zone_change",
            "operator_notified",
            "zone_change",
            "sms_held",
            "operator_notified"
        ]
    );
    assert_eq!(ports.metrics.get("SmsHeld", "cooldown"), 1);
    assert_eq!(ports.metrics.get("OperatorEvents", "urgent"), 2);
}

#[tokio::test]
async fn a_step_down_from_breach_to_warning_tells_operators_only() {
    use AlertLevel::*;
    let ports = ports().await;
    let breach = zone_change(
        "o-123",
        1,
        (Clear, Breach, Cause::Entered),
        (Clear, Breach),
        0,
    );
    let down = zone_change(
        "o-123",
        2,
        (Breach, Warning, Cause::SustainedExit),
        (Breach, Warning),
        180,
    );
    at_level(&ports, "o-123", Breach).await;
    assert!(run(&ports, vec![msg("m1", &breach)], NOW).await.is_empty());
    at_level(&ports, "o-123", Warning).await;
    assert!(
        run(&ports, vec![msg("m2", &down)], T0 + 181_000)
            .await
            .is_empty()
    );
    assert_eq!(ports.notifier.sms().len(), 1);
    let ops = ports.notifier.operator_events();
    assert_eq!(ops.len(), 2);
    assert_eq!(ops[1].kind.to_string(), "zone_step_down");
    assert_eq!(ops[1].victim_sms, "none");
}

#[tokio::test]
async fn a_stale_all_clear_is_held_while_the_offender_is_near_again() {
    // Issue 16, item 1, at the function: the all-clear is redriven after a newer warning.
    use AlertLevel::*;
    let ports = ports().await;
    at_level(&ports, "o-123", Warning).await;
    run(&ports, vec![msg("w", &warning("o-123", 1, 0))], NOW).await;
    let clear = zone_change(
        "o-123",
        2,
        (Warning, Clear, Cause::SustainedExit),
        (Warning, Clear),
        300,
    );
    at_level(&ports, "o-123", Warning).await; // the offender came back
    assert!(
        run(&ports, vec![msg("c", &clear)], T0 + 400_000)
            .await
            .is_empty()
    );
    assert_eq!(ports.notifier.sms().len(), 1, "no all-clear");
    let op = ports.notifier.operator_events().pop().unwrap();
    assert_eq!(op.victim_sms, "held:all_clear:superseded");
    assert_eq!(op.levels.unwrap().order_level_now, Some(Warning));
    // With the state clear, a fresh all-clear goes out.
    at_level(&ports, "o-123", Clear).await;
    let clear2 = zone_change(
        "o-123",
        4,
        (Warning, Clear, Cause::SustainedExit),
        (Warning, Clear),
        500,
    );
    assert!(
        run(&ports, vec![msg("c2", &clear2)], T0 + 501_000)
            .await
            .is_empty()
    );
    assert!(
        ports.notifier.sms()[1]
            .text
            .starts_with("Vigil: all clear.")
    );
}

#[tokio::test]
async fn an_event_handled_long_after_it_was_received_goes_to_operators_marked_late() {
    let ports = ports().await;
    at_level(&ports, "o-123", AlertLevel::Warning).await;
    let event = warning("o-123", 1, 0);
    let an_hour_later = event.received_at_ms + 3_600_000;
    assert!(
        run(&ports, vec![msg("m", &event)], an_hour_later)
            .await
            .is_empty()
    );
    assert!(ports.notifier.sms().is_empty());
    let op = &ports.notifier.operator_events()[0];
    assert!(op.late);
    assert_eq!(op.victim_sms, "held:warning:late");
}

#[tokio::test]
async fn tamper_texts_the_victim_when_the_order_says_so() {
    let mut quiet = order_json("o-quiet", "+34600123456");
    quiet.policy.notify_victim_on_tamper = false;
    let ports = ports_with(&[order_json("o-123", PHONE), quiet]).await;
    let failed = run(
        &ports,
        vec![
            msg("m1", &tamper("o-123", 7, 0)),
            msg("m2", &tamper("o-quiet", 7, 0)),
        ],
        NOW,
    )
    .await;
    assert!(failed.is_empty(), "{failed:?}");
    let sms = ports.notifier.sms();
    assert_eq!(sms.len(), 1, "only the order that asks for it");
    assert_eq!(sms[0].to.e164(), PHONE);
    assert!(
        sms[0].text.contains("may have been removed"),
        "{}",
        sms[0].text
    );
    assert!(sms[0].text.contains("call 999"));
    let ops = ports.notifier.operator_events();
    assert_eq!(ops.len(), 2);
    for op in &ops {
        assert_eq!(kinds(op), ["tag_event:strap_tamper"]);
        assert_eq!(op.urgency, Urgency::Urgent);
        assert!(op.zone.is_none() && op.offender.is_none());
        assert_eq!(op.tag_event.as_ref().unwrap().seq, 7);
    }
    assert_eq!(ops[0].victim_sms, "sent:tamper");
    assert_eq!(ops[1].victim_sms, "none");
    assert_eq!(ports.metrics.get("SmsSent", "tamper"), 1);
    assert_eq!(audit_kinds(&ports, "o-123").await[0], "tag_event");
}

#[tokio::test]
async fn a_number_outside_the_deployments_countries_is_never_texted() {
    let ports = ports_with(&[order_json("o-fr", "+33612345678")]).await;
    assert!(
        run(&ports, vec![msg("m", &tamper("o-fr", 1, 0))], NOW)
            .await
            .is_empty()
    );
    assert!(ports.notifier.sms().is_empty());
    let op = &ports.notifier.operator_events()[0];
    assert_eq!(op.victim_sms, "held:tamper:destination");
    assert_eq!(op.urgency, Urgency::Urgent, "somebody must call");
}

#[tokio::test]
async fn the_hourly_cap_holds_a_flood_and_pages_operators() {
    // Issue 16, item 4: a hostile tag alternating tamper and restore, or warnings and
    // all-clears, as fast as it can: at most the order's hourly cap reaches the victim.
    use AlertLevel::*;
    let ports = ports().await;
    let mut now = NOW;
    for i in 0..20u64 {
        let (e, level) = if i % 2 == 0 {
            (warning("o-123", 2 * i + 1, 0), Warning)
        } else {
            (
                zone_change(
                    "o-123",
                    2 * i + 1,
                    (Warning, Clear, Cause::SustainedExit),
                    (Warning, Clear),
                    0,
                ),
                Clear,
            )
        };
        at_level(&ports, "o-123", level).await;
        let e = AlertEvent {
            received_at_ms: now,
            ..e
        };
        now += 10_000;
        assert!(
            run(&ports, vec![msg(&format!("m{i}"), &e)], now)
                .await
                .is_empty()
        );
    }
    assert_eq!(ports.notifier.sms().len(), 6, "the default cap: 6 an hour");
    let capped: Vec<_> = ports
        .notifier
        .operator_events()
        .into_iter()
        .filter(|o| o.victim_sms.ends_with(":cap"))
        .collect();
    assert!(!capped.is_empty());
    assert!(capped.iter().all(|o| o.urgency == Urgency::Urgent));
    assert_eq!(ports.metrics.get("SmsHeld", "cap") as usize, capped.len());
}

#[tokio::test]
async fn a_claim_planted_for_a_future_event_cannot_silence_it() {
    // Issue 16, item 8: event ids are predictable; a "done" claim written in advance for the
    // next revision used to suppress that alert.
    let ports = ports().await;
    at_level(&ports, "o-123", AlertLevel::Warning).await;
    let event = warning("o-123", 1, 0);
    ports
        .store
        .plant_claim(&event.event_id, "0000000000000000", true);
    assert!(run(&ports, vec![msg("m", &event)], NOW).await.is_empty());
    assert_eq!(ports.notifier.sms().len(), 1, "the victim is warned");
    let op = &ports.notifier.operator_events()[0];
    assert!(kinds(op).contains(&"claim_mismatch".to_owned()));
    assert_eq!(op.urgency, Urgency::Urgent);
    assert_eq!(ports.metrics.get("ClaimMismatch", "zone_change"), 1);
    assert_eq!(audit_kinds(&ports, "o-123").await[0], "claim_mismatch");
    // The claim now holds this event's content: a redelivery is a plain duplicate.
    assert!(
        run(&ports, vec![msg("m", &event)], NOW + 1_000)
            .await
            .is_empty()
    );
    assert_eq!(ports.metrics.get("AlertDuplicate", "zone_change"), 1);
}

#[tokio::test]
async fn an_unknown_order_is_an_item_failure() {
    let ports = ports().await;
    let failed = run(&ports, vec![msg("m1", &warning("o-missing", 1, 0))], NOW).await;
    assert_eq!(failed, ["m1"]);
    assert_eq!(ports.metrics.get("AlertRejected", "unknown_order"), 1);
    assert!(ports.notifier.sms().is_empty());
    assert!(ports.notifier.operator_events().is_empty());
}

#[tokio::test]
async fn an_unparseable_body_is_an_item_failure_and_counted() {
    let ports = ports().await;
    at_level(&ports, "o-123", AlertLevel::Warning).await;
    let good = warning("o-123", 1, 0);
    let failed = run(
        &ports,
        vec![
            message("bad-json", None, Some("{not json".into())),
            message("bad-shape", None, Some(r#"{"event_id":"x"}"#.into())),
            message("no-body", None, None),
            msg("good", &good),
        ],
        NOW,
    )
    .await;
    assert_eq!(failed, ["bad-json", "bad-shape", "no-body"]);
    assert_eq!(ports.metrics.get("AlertRejected", "bad_message"), 3);
    assert_eq!(ports.notifier.sms().len(), 1, "other messages proceed");
}

#[tokio::test]
async fn store_errors_fail_the_item_and_say_whether_to_retry() {
    let ports = ports().await;
    at_level(&ports, "o-123", AlertLevel::Warning).await;
    let event = warning("o-123", 1, 0);
    ports
        .store
        .fail_next(StoreError::corrupt("idempotency", "bad item"));
    assert_eq!(run(&ports, vec![msg("m1", &event)], NOW).await, ["m1"]);
    assert_eq!(ports.metrics.get("AlertFailed", "corrupt"), 1);
    ports.store.fail_next(StoreError::Throttled {
        service: "dynamodb",
        code: "ThrottlingException".into(),
    });
    let e = handle_event(&event, &ports, NOW).await.unwrap_err();
    assert!(e.is_retryable() && e.reason() == "throttled", "{e}");
    assert!(!AlertError::Store(StoreError::corrupt("x", "y")).is_retryable());
    // Nothing was claimed by the failed attempts: the redelivery handles it at once.
    assert!(
        run(&ports, vec![msg("m1", &event)], NOW + 1000)
            .await
            .is_empty()
    );
    assert_eq!(ports.notifier.sms().len(), 1);
}

#[tokio::test]
async fn an_sns_failure_is_retried_and_the_redelivery_texts_exactly_once() {
    let ports = ports().await;
    at_level(&ports, "o-123", AlertLevel::Warning).await;
    let event = warning("o-123", 1, 0);
    ports.notifier.fail_next(1);
    assert_eq!(run(&ports, vec![msg("m1", &event)], NOW).await, ["m1"]);
    assert!(ports.notifier.sms().is_empty());
    assert_eq!(ports.metrics.get("AlertFailed", "unavailable"), 1);
    // The failure released the claim: the redelivery after the visibility timeout handles it
    // at once, without burning a receive on "in progress".
    let later = NOW + 60_000;
    assert!(run(&ports, vec![msg("m1", &event)], later).await.is_empty());
    assert_eq!(ports.metrics.get("AlertFailed", "in_progress"), 0);
    assert!(
        run(&ports, vec![msg("m1", &event)], later + 60_000)
            .await
            .is_empty()
    );
    assert_eq!(ports.notifier.sms().len(), 1);
    assert_eq!(ports.notifier.operator_events().len(), 1);
    // The failed attempt's records stay: the chain is append-only and says what happened.
    assert_eq!(
        audit_kinds(&ports, "o-123").await,
        ["zone_change", "sms_sent", "operator_notified"]
    );
}

/// A notifier whose operator publishes fail while `fail_operator` is set, and whose SMS
/// failures quote the number back, as SNS may.
#[derive(Default)]
struct FlakyNotifier {
    inner: MemoryNotifier,
    fail_operator: Mutex<bool>,
    reject_sms: Mutex<bool>,
}

impl Notifier for FlakyNotifier {
    async fn send_sms(
        &self,
        to: &PhoneNumber,
        text: &str,
        sender_id: Option<&str>,
    ) -> Result<String, StoreError> {
        if std::mem::take(&mut *self.reject_sms.lock().unwrap()) {
            return Err(StoreError::Rejected {
                service: "sns",
                code: "InvalidParameter".into(),
                detail: format!(
                    "Invalid parameter: PhoneNumber Reason: {} is opted out",
                    to.e164()
                ),
            });
        }
        self.inner.send_sms(to, text, sender_id).await
    }

    async fn publish_operator(&self, event: &OperatorEvent) -> Result<String, StoreError> {
        if std::mem::take(&mut *self.fail_operator.lock().unwrap()) {
            return Err(StoreError::Throttled {
                service: "sns",
                code: "Throttling".into(),
            });
        }
        self.inner.publish_operator(event).await
    }

    async fn publish_to_force(
        &self,
        message: &vigil_aws::ports::ForceMessage,
    ) -> Result<String, StoreError> {
        self.inner.publish_to_force(message).await
    }
}

#[tokio::test]
async fn a_failure_after_the_sms_does_not_text_the_victim_again() {
    let ports = ports_with_notifier(&[order_json("o-123", PHONE)], FlakyNotifier::default()).await;
    at_level(&ports, "o-123", AlertLevel::Warning).await;
    *ports.notifier.fail_operator.lock().unwrap() = true;
    let event = warning("o-123", 1, 0);
    assert_eq!(run(&ports, vec![msg("m1", &event)], NOW).await, ["m1"]);
    assert_eq!(ports.notifier.inner.sms().len(), 1);
    let later = NOW + CLAIM_STALE_AFTER_MS + 1_000;
    assert!(run(&ports, vec![msg("m1", &event)], later).await.is_empty());
    // The notices were saved with the SMS, so the cooldown holds the repeat back, and the
    // audit keeps the SMS that was sent.
    assert_eq!(ports.notifier.inner.sms().len(), 1);
    let ops = ports.notifier.inner.operator_events();
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].victim_sms, "held:warning:cooldown");
    let kinds = audit_kinds(&ports, "o-123").await;
    assert_eq!(
        kinds,
        [
            "zone_change",
            "sms_sent",
            "zone_change",
            "sms_held",
            "operator_notified"
        ]
    );
}

#[tokio::test]
async fn a_failure_blocks_later_messages_of_its_group_only() {
    use AlertLevel::*;
    let ports = ports_with(&[order_json("o-1", PHONE), order_json("o-2", "+12025550123")]).await;
    at_level(&ports, "o-1", Warning).await;
    at_level(&ports, "o-2", Warning).await;
    let o1_warning = warning("o-1", 1, 0);
    let o1_breach = zone_change(
        "o-1",
        2,
        (Warning, Breach, Cause::Entered),
        (Warning, Breach),
        30,
    );
    let o2_warning = warning("o-2", 1, 0);
    ports.notifier.fail_next(1); // o-1's warning SMS
    let failed = run(
        &ports,
        vec![
            msg("a1", &o1_warning),
            msg("b1", &o2_warning),
            msg("a2", &o1_breach),
            message("bad", Some("o-2"), Some("[]".into())),
            msg(
                "b2",
                &zone_change(
                    "o-2",
                    2,
                    (Warning, Breach, Cause::Entered),
                    (Warning, Breach),
                    30,
                ),
            ),
        ],
        NOW,
    )
    .await;
    assert_eq!(failed, ["a1", "a2", "bad", "b2"]);
    assert_eq!(ports.metrics.get("AlertRejected", "bad_message"), 1);
    assert_eq!(ports.metrics.get("AlertFailed", "group_blocked"), 2);
    // o-1's warning failed before anything was recorded; its breach was never touched.
    assert!(audit_kinds(&ports, "o-1").await.is_empty());
    let sms = ports.notifier.sms();
    assert_eq!(sms.len(), 1);
    assert_eq!(sms[0].to.e164(), "+12025550123");
    assert!(sms[0].text.contains("call 911"));
    // Redelivered in order, o-1 catches up: warning (the state then), then breach.
    let later = NOW + 1_000;
    assert!(
        run(&ports, vec![msg("a1", &o1_warning)], later)
            .await
            .is_empty()
    );
    at_level(&ports, "o-1", Breach).await;
    assert!(
        run(&ports, vec![msg("a2", &o1_breach)], later)
            .await
            .is_empty()
    );
    let texts: Vec<_> = ports
        .notifier
        .sms()
        .into_iter()
        .filter(|s| s.to.e164() == PHONE)
        .map(|s| s.text)
        .collect();
    assert_eq!(texts.len(), 2);
    assert!(texts[0].contains("may be near your home") && texts[1].contains("URGENT"));
}

/// Every log line this test binary writes, from every test: one process-wide subscriber.
fn captured_logs() -> CapturedLogs {
    static LOGS: std::sync::OnceLock<CapturedLogs> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = CapturedLogs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_ansi(false)
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        logs
    })
    .clone()
}

#[tokio::test]
async fn no_log_line_operator_event_or_audit_record_holds_the_phone_number() {
    use AlertLevel::*;
    let logs = captured_logs();
    let ports = ports_with_notifier(&[order_json("o-123", PHONE)], FlakyNotifier::default()).await;
    *ports.notifier.reject_sms.lock().unwrap() = true;
    at_level(&ports, "o-123", Warning).await;
    let w = warning("o-123", 1, 0);
    assert_eq!(run(&ports, vec![msg("m", &w)], NOW).await, ["m"]);
    assert!(
        run(&ports, vec![msg("m", &w)], NOW + 1_000)
            .await
            .is_empty()
    );
    at_level(&ports, "o-123", Breach).await;
    let breach = zone_change(
        "o-123",
        2,
        (Warning, Breach, Cause::Entered),
        (Warning, Breach),
        30,
    );
    assert!(
        run(&ports, vec![msg("m", &breach)], T0 + 31_000)
            .await
            .is_empty()
    );
    assert!(
        run(&ports, vec![msg("m", &tamper("o-123", 3, 40))], T0 + 41_000)
            .await
            .is_empty()
    );
    assert_eq!(ports.notifier.inner.sms().len(), 3);

    let logs = logs.text();
    assert!(logs.contains("alert event handled"), "{logs}");
    assert!(
        logs.contains("+44…23"),
        "the SNS error is logged, redacted: {logs}"
    );
    let digits = &PHONE[1..];
    assert!(!logs.contains(digits), "{logs}");
    assert!(!logs.contains("51.50"), "no coordinates in logs: {logs}");
    let ops = serde_json::to_string(&ports.notifier.inner.operator_events()).unwrap();
    assert!(!ops.contains(digits), "{ops}");
    let chain = ports
        .store
        .read(&OrderId::new("o-123").unwrap())
        .await
        .unwrap();
    let audit = serde_json::to_string(&chain).unwrap();
    assert!(!audit.contains(digits), "{audit}");
}

#[test]
fn bad_message_errors_never_quote_the_body() {
    let body = r#"{"event_id":"x","order_id":"o-1","tag_id":"t-1","at_ms":"+447700900123"}"#;
    let serde_text = serde_json::from_str::<AlertEvent>(body)
        .unwrap_err()
        .to_string();
    assert!(
        serde_text.contains("7700900123"),
        "serde quotes: {serde_text}"
    );
    let e = parse_event(Some(body)).unwrap_err();
    let text = e.to_string();
    assert!(!text.contains("7700900123"), "{text}");
    assert!(text.contains("data error at line 1"), "{text}");
    assert!(!e.is_retryable());
}
