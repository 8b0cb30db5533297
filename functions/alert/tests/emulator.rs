//! The alert handler against a real moto server (the `vigil-local` harness): DynamoDB for the
//! store and audit log, SNS for SMS and the operators' topic, and the alert queue on SQS.
//! Each test starts its own server, so they run in parallel without sharing state.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use serde_json::{Value, json};
use std::collections::HashMap;
use vigil_alert::{Ports, handle_batch};
use vigil_aws::items::Item;
use vigil_aws::metrics::MemoryMetrics;
use vigil_aws::ports::{AdminStore, AlertQueue, AuditLog};
use vigil_aws::{Config, DynamoStore, SnsNotifier, SqsQueue};
use vigil_core::audit::{AuditRecord, ChainError, verify_chain};
use vigil_core::events::AlertEvent;
use vigil_core::{OrderId, ProtectionOrder};
use vigil_local::{Emulator, ReceivedBatch, SqsEventSource};

const PHONE: &str = "+447700900123";
const ORDER: &str = "o-123";
const WARNING_TEXT: &str = "Vigil: the person named in your protection order may be near your \
    home. Stay alert and keep your phone with you. If you feel unsafe, go somewhere safe and call 999.";

type EmulatorPorts = Ports<DynamoStore, SnsNotifier, MemoryMetrics>;

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
    let ports = Ports {
        store: DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &config),
        notifier: SnsNotifier::new(
            aws_sdk_sns::Client::new(&sdk),
            emulator.topic_arn("operators").unwrap(),
            None,
        ),
        metrics: MemoryMetrics::default(),
    };
    let order: ProtectionOrder = serde_json::from_value(json!({
        "order_id": ORDER,
        "tag_id": "t-1",
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

/// A zone change of `o-123`'s home zone, in the queue's wire format: zone and order level
/// `from` -> `to`, `rev` the zone state's revision (it makes the event id).
fn zone_change(rev: u64, from: &str, to: &str, at_ms: i64) -> AlertEvent {
    serde_json::from_value(json!({
        "event_id": format!("zc:{ORDER}:home:{rev}"),
        "order_id": ORDER,
        "tag_id": "t-1",
        "at_ms": at_ms,
        "type": "zone_change",
        "zone_id": "home",
        "zone_kind": "home",
        "assessment": {
            "zone_id": "home", "in_force": true, "entry": to, "exit": to, "distance_m": 140.0
        },
        "change": {
            "transition": {
                "from": from, "to": to, "cause": "entered", "at_ms": at_ms, "late_by_ms": null
            },
            "escalation": null,
            "order_before": from,
            "order_after": to,
            "at_ms": at_ms
        },
        "fix": {
            "tag_id": "t-1", "seq": rev, "at_ms": at_ms, "lat": 51.501234, "lon": -0.141234,
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
    let response = handle(&stack, &batch).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(stack.emulator.sent_sms().await.unwrap().len(), 2);

    let order_id = OrderId::new(ORDER).unwrap();
    let chain = stack.ports.store.read(&order_id).await.unwrap();
    let kinds: Vec<&str> = chain.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "sms_sent",
            "operator_notified",
            "sms_sent",
            "operator_notified"
        ]
    );
    assert_eq!(verify_chain(&chain), Ok(()));

    // Alter the breach SMS record (seq 3) in place, as someone with table access could.
    let dynamodb = aws_sdk_dynamodb::Client::new(&stack.emulator.sdk_config());
    let table = stack.emulator.table_name("audit").unwrap();
    let key = Item::from([
        ("order_id".to_owned(), vigil_aws::items::s(ORDER)),
        ("seq".to_owned(), vigil_aws::items::n(3)),
    ]);
    let item = dynamodb
        .get_item()
        .table_name(table)
        .set_key(Some(key.clone()))
        .send()
        .await
        .unwrap()
        .item
        .expect("audit record 3");
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
    assert_eq!(verify_chain(&tampered), Err(ChainError::Altered { seq: 3 }));
}
