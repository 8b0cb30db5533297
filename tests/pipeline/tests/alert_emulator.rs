//! The alert handler against a real moto server (the `vigil-local` harness): DynamoDB for the
//! store and audit log, SNS for SMS and the operators' topic, and the alert queue on SQS.
//! Each test starts its own server, so they run in parallel without sharing state.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use serde_json::{Value, json};
use std::collections::HashMap;
use vigil_alert::{Ports, handle_batch};
use vigil_aws::items::Item;
use vigil_aws::memory::MemoryCommander;
use vigil_aws::metrics::MemoryMetrics;
use vigil_aws::ports::{AdminStore, AlertQueue, AuditLog, Commit, IngestStore};
use vigil_aws::{Aws, Config, DynamoStore, KmsDestinationMac, SnsNotifier, SqsQueue};
use vigil_core::audit::{AuditRecord, ChainError, verify_chain};
use vigil_core::events::AlertEvent;
use vigil_core::ingest::StateWrite;
use vigil_core::state::ZoneState;
use vigil_core::{AlertLevel, OrderId, ProtectionOrder, TagId, ZoneId};
use vigil_local::{Emulator, ReceivedBatch, SqsEventSource};

const PHONE: &str = "+447700900123";
const ORDER: &str = "o-123";
const WARNING_TEXT: &str = "Vigil: the person named in your protection order may be near your \
    home. Stay alert and keep your phone with you. If you feel unsafe, go somewhere safe and call 999.";

type EmulatorPorts =
    Ports<DynamoStore, SnsNotifier, KmsDestinationMac, MemoryMetrics, MemoryCommander>;

struct Stack {
    emulator: Emulator,
    ports: EmulatorPorts,
    queue: SqsQueue,
    source: SqsEventSource,
}

/// A moto server with Vigil's resources, the handler's ports on it, and order `o-123`.
async fn stack() -> Stack {
    let emulator = Emulator::start().await.expect("moto starts");
    let vars: HashMap<String, String> = emulator.env_vars().into_iter().collect();
    let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("config from env_vars");
    let sdk = emulator.sdk_config();
    // The ports as the function's main.rs builds them from its environment.
    let aws = Aws {
        config: config.clone(),
        sdk: sdk.clone(),
    };
    let ports = Ports {
        store: aws.store(),
        notifier: aws.notifier().unwrap(),
        destination_mac: aws.destination_mac().unwrap(),
        metrics: MemoryMetrics::default(),
        commander: MemoryCommander::default(),
        sms_countries: config.sms_countries.clone(),
        // From the parameter the harness put, as main.rs reads it (SSM GetParameter).
        forces: aws.function_forces().await,
    };
    let order: ProtectionOrder = serde_json::from_value(json!({
        "order_id": ORDER,
        "tag_id": "t-1",
        "force_id": "met",
        "victim": {"victim_id": "v-1", "phone": PHONE, "language": "en"},
        "zone_ids": ["home"],
    }))
    .unwrap();
    ports
        .store
        .put_order(&order)
        .await
        .expect("order provisioned");
    let queue_url = config.alerts_queue_url().unwrap().to_owned();
    let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&sdk), &queue_url);
    let source = SqsEventSource::new(
        aws_sdk_sqs::Client::new(&sdk),
        &queue_url,
        emulator.region(),
    );
    Stack {
        emulator,
        ports,
        queue,
        source,
    }
}

/// Sets the home zone's state to `level` at revision `rev`, as ingest's commit does.
async fn set_level(stack: &Stack, level: AlertLevel, rev: u64) {
    let commit = Commit {
        order_id: OrderId::new(ORDER).unwrap(),
        tag_id: TagId::new("t-1").unwrap(),
        writes: vec![StateWrite {
            zone_id: ZoneId::new("home").unwrap(),
            expected_rev: rev - 1,
            state: ZoneState {
                level,
                ..ZoneState::default()
            },
            pending: vec![],
        }],
        opened: vec![],
        closed: vec![],
    };
    stack.ports.store.commit(&commit).await.expect("state set");
}

/// A zone change of `o-123`'s home zone, in the queue's wire format: zone and order level
/// `from` -> `to`, `rev` the zone state's revision (it makes the event id).
fn zone_change(rev: u64, from: &str, to: &str, at_ms: i64) -> AlertEvent {
    zone_change_at(rev, from, to, at_ms, (51.501234, -0.141234))
}

/// As [`zone_change`], with the fix at `(lat, lon)`.
fn zone_change_at(
    rev: u64,
    from: &str,
    to: &str,
    at_ms: i64,
    (lat, lon): (f64, f64),
) -> AlertEvent {
    let cause = if to == "clear" {
        "sustained_exit"
    } else {
        "entered"
    };
    serde_json::from_value(json!({
        "event_id": format!("zc:{ORDER}:home:{rev}"),
        "order_id": ORDER,
        "tag_id": "t-1",
        "at_ms": at_ms,
        "received_at_ms": at_ms,
        "state_rev": rev,
        "type": "zone_change",
        "zone_id": "home",
        "zone_kind": "home",
        "assessment": {
            "zone_id": "home", "in_force": true, "entry": to, "exit": to, "distance_m": 140.0
        },
        "change": {
            "transition": {
                "from": from, "to": to, "cause": cause, "at_ms": at_ms, "late_by_ms": null
            },
            "escalation": null,
            "order_before": from,
            "order_after": to,
            "at_ms": at_ms
        },
        "fix": {
            "tag_id": "t-1", "seq": rev, "at_ms": at_ms, "lat": lat, "lon": lon,
            "accuracy_m": 12.0, "speed_mps": null, "heading_deg": null, "battery_pct": 80
        }
    }))
    .expect("the wire format of an alert event")
}

/// Sends `events` through the alert queue as ingest does, and receives them as the Lambda
/// event source mapping would hand them to the function (system attributes included, so
/// `MessageGroupId` is there).
async fn through_the_queue(stack: &Stack, events: &[AlertEvent]) -> ReceivedBatch {
    stack.queue.send(events).await.expect("queue send");
    let batch = stack.source.receive(10, 1).await.expect("receive");
    assert_eq!(batch.len(), events.len(), "every message received");
    batch
}

/// Runs the handler on a batch, then deletes the messages it did not report as failures, as
/// the event source mapping does.
async fn handle(stack: &Stack, batch: &ReceivedBatch) -> SqsBatchResponse {
    let event: SqsEvent = serde_json::from_value(batch.event.clone()).expect("an SQS Lambda event");
    let response = handle_batch(event, &stack.ports, now_ms()).await;
    let json = serde_json::to_value(&response).expect("response");
    stack.source.complete(batch, &json).await.expect("ack");
    response
}

fn records(batch: &ReceivedBatch) -> SqsEvent {
    serde_json::from_value(batch.event.clone()).expect("an SQS Lambda event")
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warning_texts_the_victim_once_and_reaches_the_operators_topic() {
    let stack = stack().await;
    set_level(&stack, AlertLevel::Warning, 1).await;
    let batch = through_the_queue(&stack, &[zone_change(1, "clear", "warning", now_ms())]).await;
    let response = handle(&stack, &batch).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");

    let sms = stack.emulator.sent_sms().await.unwrap();
    assert_eq!(sms.len(), 1, "{sms:?}");
    assert_eq!(sms[0].phone_number, PHONE);
    assert_eq!(sms[0].message, WARNING_TEXT);

    let ops = stack.emulator.operator_events().await.unwrap();
    assert_eq!(ops.len(), 1, "{ops:?}");
    assert_eq!(
        ops[0].subject.as_deref(),
        Some("Vigil HIGH zone_warning o-123")
    );
    assert_eq!(
        ops[0].attributes.get("kind").map(String::as_str),
        Some("zone_warning")
    );
    assert_eq!(
        ops[0].attributes.get("urgency").map(String::as_str),
        Some("high")
    );
    let body: Value = serde_json::from_str(&ops[0].message).unwrap();
    assert_eq!(body["kind"], "zone_warning");
    assert_eq!(body["order_id"], ORDER);
    assert_eq!(body["victim_sms"], "sent:warning");
    assert!(!ops[0].message.contains(&PHONE[1..]), "{}", ops[0].message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_sqs_message_twice_texts_once() {
    let stack = stack().await;
    set_level(&stack, AlertLevel::Warning, 1).await;
    let batch = through_the_queue(&stack, &[zone_change(1, "clear", "warning", now_ms())]).await;
    let first = handle(&stack, &batch).await;
    let second = handle(&stack, &batch).await;
    assert!(first.batch_item_failures.is_empty(), "{first:?}");
    assert!(second.batch_item_failures.is_empty(), "{second:?}");
    assert_eq!(stack.emulator.sent_sms().await.unwrap().len(), 1);
    assert_eq!(stack.emulator.operator_events().await.unwrap().len(), 1);
    assert_eq!(stack.ports.metrics.get("AlertDuplicate", "zone_change"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_chain_in_dynamodb_verifies_and_tampering_is_found() {
    let stack = stack().await;
    set_level(&stack, AlertLevel::Warning, 1).await;
    let t = now_ms() - 60_000;
    let batch = through_the_queue(
        &stack,
        &[
            zone_change(1, "clear", "warning", t),
            zone_change(2, "warning", "breach", t + 30_000),
        ],
    )
    .await;
    let event = records(&batch);
    let groups: Vec<_> = event
        .records
        .iter()
        .map(|r| r.attributes.get("MessageGroupId").map(String::as_str))
        .collect();
    assert_eq!(groups, [Some(ORDER), Some(ORDER)], "FIFO, grouped by order");
    // Handle the warning with the state at WARNING, then the breach with it at BREACH.
    let event: SqsEvent = records(&batch);
    let mut first = event.clone();
    first.records.truncate(1);
    let mut second = event;
    second.records.remove(0);
    assert!(
        handle_batch(first, &stack.ports, now_ms())
            .await
            .batch_item_failures
            .is_empty()
    );
    set_level(&stack, AlertLevel::Breach, 2).await;
    assert!(
        handle_batch(second, &stack.ports, now_ms())
            .await
            .batch_item_failures
            .is_empty()
    );
    stack
        .source
        .complete(&batch, &json!({"batchItemFailures": []}))
        .await
        .unwrap();
    assert_eq!(stack.emulator.sent_sms().await.unwrap().len(), 2);

    let order_id = OrderId::new(ORDER).unwrap();
    let chain = stack.ports.store.read(&order_id).await.unwrap();
    let kinds: Vec<&str> = chain.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "zone_change",
            "sms_sent",
            "operator_notified",
            "zone_change",
            "sms_sent",
            "operator_notified"
        ]
    );
    // The SMS record keeps the destination's keyed hash (KMS), never the number.
    let sent = &chain[1].detail;
    assert_eq!(sent["to_mac"].as_str().map(str::len), Some(64));
    assert!(!serde_json::to_string(sent).unwrap().contains(&PHONE[1..]));
    assert_eq!(verify_chain(&chain), Ok(()));

    // Alter the breach SMS record (seq 5) in place, as someone with table access could.
    let dynamodb = aws_sdk_dynamodb::Client::new(&stack.emulator.sdk_config());
    let table = stack.emulator.table_name("audit").unwrap();
    let key = Item::from([
        ("order_id".to_owned(), vigil_aws::items::s(ORDER)),
        ("seq".to_owned(), vigil_aws::items::n(5)),
    ]);
    let item = dynamodb
        .get_item()
        .table_name(table)
        .set_key(Some(key.clone()))
        .send()
        .await
        .unwrap()
        .item
        .expect("audit record 5");
    let mut record: AuditRecord = serde_json::from_str(item["record"].as_s().unwrap()).unwrap();
    assert_eq!(record.detail["alert"], "breach");
    record.detail["text"] = json!("Vigil: nothing to report.");
    dynamodb
        .update_item()
        .table_name(table)
        .set_key(Some(key))
        .update_expression("SET #r = :r")
        .expression_attribute_names("#r", "record")
        .expression_attribute_values(
            ":r",
            vigil_aws::items::s(serde_json::to_string(&record).unwrap()),
        )
        .send()
        .await
        .unwrap();

    let tampered = stack.ports.store.read(&order_id).await.unwrap();
    assert_eq!(verify_chain(&tampered), Err(ChainError::Altered { seq: 5 }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redriven_all_clear_never_texts_while_the_offender_is_near() {
    // Issue 16, item 1: an all-clear that failed into the dead-letter queue and is redriven
    // after a newer warning texted "all clear".
    let stack = stack().await;
    let t = now_ms() - 120_000;
    set_level(&stack, AlertLevel::Warning, 1).await;
    let warned = through_the_queue(&stack, &[zone_change(1, "clear", "warning", t)]).await;
    handle(&stack, &warned).await;
    // The all-clear (rev 2) fails and waits; the offender comes back (rev 3, WARNING).
    set_level(&stack, AlertLevel::Clear, 2).await;
    set_level(&stack, AlertLevel::Warning, 3).await;
    let redriven =
        through_the_queue(&stack, &[zone_change(2, "warning", "clear", t + 60_000)]).await;
    let response = handle(&stack, &redriven).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let sms = stack.emulator.sent_sms().await.unwrap();
    assert_eq!(sms.len(), 1, "only the warning: {sms:?}");
    let ops = stack.emulator.operator_events().await.unwrap();
    let last: Value = serde_json::from_str(&ops.last().unwrap().message).unwrap();
    assert_eq!(last["kind"], "zone_clear");
    assert_eq!(last["victim_sms"], "held:all_clear:superseded");
    assert_eq!(last["levels"]["order_level_now"], "warning");
}

/// Forces on SNS and SSM as deployed (docs/FORCES.md): the function reads the forces parameter,
/// publishes the case to its force's topic, and routes a breach in Thames Valley's area to
/// Thames Valley's topic without the victim's data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breach_in_another_forces_area_reaches_both_forces_topics() {
    let stack = stack().await;
    assert!(
        stack.ports.forces.is_some(),
        "the forces parameter was read"
    );
    set_level(&stack, AlertLevel::Breach, 1).await;
    let reading = (51.4543, -0.9781);
    let event = zone_change_at(1, "clear", "breach", now_ms(), reading);
    let batch = through_the_queue(&stack, &[event]).await;
    let response = handle(&stack, &batch).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(stack.emulator.sent_sms().await.unwrap().len(), 1);
    assert_eq!(
        stack.emulator.operator_events().await.unwrap().len(),
        1,
        "national topic"
    );
    let met = stack.emulator.force_events("met").await.unwrap();
    assert_eq!(met.len(), 1, "{met:?}");
    assert_eq!(
        met[0].attributes.get("audience").map(String::as_str),
        Some("case")
    );
    let case: Value = serde_json::from_str(&met[0].message).unwrap();
    assert_eq!(case["order_id"], ORDER);
    assert_eq!(case["force_id"], "met");
    let tvp = stack.emulator.force_events("tvp").await.unwrap();
    assert_eq!(tvp.len(), 1, "{tvp:?}");
    assert_eq!(
        tvp[0].attributes.get("audience").map(String::as_str),
        Some("responders")
    );
    assert_eq!(
        tvp[0].attributes.get("urgency").map(String::as_str),
        Some("urgent")
    );
    let routed: Value = serde_json::from_str(&tvp[0].message).unwrap();
    assert_eq!(routed["case_force"], "met");
    assert_eq!(routed["offender"]["lat"], reading.0);
    for secret in [ORDER, "home", &PHONE[1..], "v-1"] {
        assert!(
            !tvp[0].message.contains(secret),
            "{secret}: {}",
            tvp[0].message
        );
    }
    let chain = stack
        .ports
        .store
        .read(&OrderId::new(ORDER).unwrap())
        .await
        .unwrap();
    let told = chain
        .iter()
        .find(|r| r.kind == "operator_notified")
        .expect("operators told");
    assert_eq!(told.detail["routed_to_forces"][0]["force_id"], "tvp");
    assert_eq!(
        told.detail["routed_to_forces"][0]["reference"],
        routed["reference"]
    );
}
