//! End to end over MQTT: a simulated tag publishes a fix over mutual TLS to the local broker;
//! the bridge applies `infra/rules/*.sql` and runs their actions: ingest in-process on the moto
//! emulator (as in tests/pipeline). The alert event must be in the SQS queue and the fix in the
//! tag's history (written by ingest, accepted fixes only).

mod common;

use std::sync::Arc;
use std::time::Duration;

use rumqttc::QoS;
use vigil_aws::ports::IngestStore;
use vigil_core::{ProtectionOrder, TagHistory, TagId, Zone};
use vigil_mqtt::bridge::{Bridge, Clock, ScenarioClock, WallClock, default_rules_dir, load_rules};
use vigil_mqtt::pki::{BRIDGE_CLIENT_ID, Pki};
use vigil_mqtt::tagsim::{self, Route, SimConfig};
use vigil_mqtt::{InProcessLambda, LocalBroker, RuleAction, RuleTargets};
use vigil_pipeline::Pipeline;

const HOME: (f64, f64) = (51.5, -0.12);
const TAG: &str = "tag-e2e";

struct Stack {
    pipeline: Arc<Pipeline>,
    pki: Pki,
    broker: LocalBroker,
    bridge: Bridge,
}

async fn stack(name: &str, clock: Arc<dyn Clock>) -> Stack {
    let pipeline = Arc::new(Pipeline::start().await);
    let order: ProtectionOrder = serde_json::from_value(serde_json::json!({
        "order_id": "o1", "tag_id": TAG,
        "victim": {"victim_id": "v1", "phone": "+447700900123", "language": "en"}
    }))
    .unwrap();
    let home: Zone = serde_json::from_value(serde_json::json!({
        "zone_id": "home", "kind": "home", "circle": {"lat": HOME.0, "lon": HOME.1, "radius_m": 100},
        "buffer_m": 500, "order_id": "o1"
    }))
    .unwrap();
    pipeline.provision(&order, &[home]).await;

    let (pki, broker) = common::broker(name);
    // The same wiring as the local stack: ingest.sql -> the ingest function, in-process on the
    // pipeline's ports.
    let p = pipeline.clone();
    let ingest: Arc<dyn RuleAction> = Arc::new(InProcessLambda::new("ingest", move |event| {
        let p = p.clone();
        async move {
            vigil_ingest::handle(event, &p.ingest)
                .await
                .map(|o| serde_json::Value::String(format!("{o:?}")))
                .map_err(|e| vigil_mqtt::ActionError {
                    retryable: e.is_retryable(),
                    message: e.to_string(),
                })
        }
    }));
    let dynamo = aws_sdk_dynamodb::Client::new(&pipeline.emulator.sdk_config());
    let actions = RuleTargets::default()
        .build(
            |function| (function == "ingest").then(|| ingest.clone()),
            &dynamo,
            |table| pipeline.emulator.table_name(table).ok().map(str::to_owned),
        )
        .unwrap();
    let bridge = Bridge::start(
        &broker.endpoint(),
        &pki.client(BRIDGE_CLIENT_ID).unwrap(),
        load_rules(&default_rules_dir()).unwrap(),
        actions,
        clock,
    )
    .await
    .expect("bridge starts");
    Stack {
        pipeline,
        pki,
        broker,
        bridge,
    }
}

fn sim(stack: &Stack, north_m: f64) -> SimConfig {
    let pki = stack.pki.clone();
    SimConfig {
        endpoint: stack.broker.endpoint(),
        tags: vec![TAG.to_owned()],
        identity: Arc::new(move |tag| pki.client(tag)),
        route: Route::Track(vec![(HOME.0 + north_m / 111_250.0, HOME.1)]),
        report_interval: Duration::from_millis(100),
        max_fixes_per_tag: Some(1),
        duration: Duration::from_secs(20),
        accuracy_m: 10.0,
        events: false,
        seed: 1,
        progress: false,
    }
}

/// The tag's history of accepted fixes, as ingest stored it in the emulator.
async fn history(stack: &Stack) -> TagHistory {
    stack
        .pipeline
        .store
        .history(&TagId::new(TAG).unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_fix_over_mtls_reaches_the_alert_queue_and_the_tags_history() {
    let stack = stack("e2e", Arc::new(WallClock)).await;
    // 400 m north of home: inside the 500 m warning buffer.
    let summary = tagsim::run(sim(&stack, 400.0)).await;
    assert_eq!(
        (summary.fixes, summary.acked, summary.errors),
        (1, 1, 0),
        "{summary}"
    );
    let stats = stack
        .bridge
        .wait_until(Duration::from_secs(30), |s| s["ingest"].action_ok >= 1)
        .await
        .expect("the rule ran");
    assert_eq!(stats["ingest"].errors(), 0, "{stats:?}");

    // The alert event is in the queue.
    let sqs = aws_sdk_sqs::Client::new(&stack.pipeline.emulator.sdk_config());
    let received = sqs
        .receive_message()
        .queue_url(stack.pipeline.config.alerts_queue_url().unwrap())
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    let bodies: Vec<serde_json::Value> = received
        .messages()
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
        .collect();
    assert_eq!(bodies.len(), 1, "{bodies:#?}");
    assert_eq!(
        (bodies[0]["order_id"].as_str(), bodies[0]["tag_id"].as_str()),
        (Some("o1"), Some(TAG))
    );
    assert!(bodies[0].to_string().contains("home"), "{}", bodies[0]);

    // The accepted fix is the tag's history, with the server's receive time.
    let h = history(&stack).await;
    assert_eq!(h.fixes.len(), 1, "{h:#?}");
    assert!((h.fixes[0].lat - (HOME.0 + 400.0 / 111_250.0)).abs() < 1e-5);
    assert!(h.fixes[0].received_at_ms >= h.fixes[0].at_ms);

    // A payload that is not JSON: ingest gets it and quarantines it; the history is unchanged
    // (a rejected message is never the tag's previous fix).
    let tag = stack.pki.client(TAG).unwrap();
    let (client, mut eventloop) = common::connect(&stack.broker.endpoint(), TAG, &tag)
        .await
        .unwrap();
    client
        .publish(
            format!("tags/{TAG}/fix"),
            QoS::AtLeastOnce,
            false,
            b"not json".to_vec(),
        )
        .await
        .unwrap();
    let pump = tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    let stats = stack
        .bridge
        .wait_until(Duration::from_secs(30), |s| s["ingest"].action_ok >= 2)
        .await
        .expect("the garbage was handled");
    assert_eq!(stats["ingest"].errors(), 0, "{stats:?}");
    assert!(stack.bridge.failures().is_empty());
    assert_eq!(stack.pipeline.ingest.metrics.total("MessageRejected"), 1);
    assert_eq!(history(&stack).await, h);
    pump.abort();
    stack.bridge.stop().await;
}

#[tokio::test]
async fn timestamp_comes_from_the_scenario_clock() {
    let device_now = chrono::Utc::now().timestamp_millis();
    let clock = ScenarioClock::new(device_now + 1_234);
    let stack = stack("e2e-clock", Arc::new(clock.clone())).await;
    let summary = tagsim::run(sim(&stack, 5_000.0)).await;
    assert_eq!(summary.acked, 1, "{summary}");
    stack
        .bridge
        .wait_handled(1, Duration::from_secs(30))
        .await
        .expect("handled");
    // ingest's receive time is the rule's timestamp(), from the scenario's clock.
    let h = history(&stack).await;
    assert_eq!(h.fixes.len(), 1, "{h:#?}");
    assert_eq!(h.fixes[0].received_at_ms, device_now + 1_234);

    // Seven hours later by the scenario's clock, the same kind of fix is too old for ingest.
    clock.advance_ms(7 * 3_600_000);
    tagsim::run(sim(&stack, 5_000.0)).await;
    stack
        .bridge
        .wait_handled(2, Duration::from_secs(30))
        .await
        .expect("handled");
    let rejected = stack
        .pipeline
        .ingest
        .metrics
        .get("MessageRejected", "device_time_too_old");
    assert_eq!(rejected, 1);
    stack.bridge.stop().await;
}

#[tokio::test]
async fn the_bridge_hears_fixes_after_its_connection_is_taken_over() {
    // Issue 11.4: a client connecting with the bridge's client id knocked its session off;
    // the bridge reconnected with a clean session, never subscribed again, and every later
    // fix was PUBACKed and then lost. A clean session discards subscriptions (MQTT 3.1.1
    // 3.1.2.4; IoT Core and mosquitto do): the bridge must renew its own, and says so. The
    // embedded rumqttd happens to keep delivering without it, so the renewal is asserted
    // directly as well as the delivery.
    let stack = stack("e2e-takeover", Arc::new(WallClock)).await;
    let bridge_id = format!("vigil-bridge-ingest-{}", std::process::id());
    let intruder = stack.pki.client(BRIDGE_CLIENT_ID).unwrap();
    let (client, mut eventloop) = common::connect(&stack.broker.endpoint(), &bridge_id, &intruder)
        .await
        .unwrap();
    // The intruder holds the id for a while (as `mosquitto_sub -i <bridge id>` would), then
    // leaves; the bridge's next connection takes the id back.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while eventloop.poll().await.is_ok() {}
    })
    .await;
    drop((client, eventloop));
    stack
        .bridge
        .wait_until(Duration::from_secs(30), |s| s["ingest"].resubscribed >= 1)
        .await
        .expect("the bridge reconnected and renewed its subscription");

    let summary = tagsim::run(sim(&stack, 400.0)).await;
    assert_eq!(summary.acked, 1, "{summary}");
    let stats = stack
        .bridge
        .wait_until(Duration::from_secs(30), |s| s["ingest"].action_ok >= 1)
        .await
        .expect("the fix after the reconnect reached ingest");
    assert_eq!(stats["ingest"].errors(), 0, "{stats:?}");
    assert_eq!(history(&stack).await.fixes.len(), 1);
    stack.bridge.stop().await;
}
