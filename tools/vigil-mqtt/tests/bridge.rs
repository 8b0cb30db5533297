//! The rule bridge over the real broker: each rule's messages are handled up to the configured
//! concurrency at once (as Lambda runs asynchronous invocations), and a tag's Basic Ingest
//! topic reaches its rule, which sees the topic without the prefix.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, QoS};
use serde_json::Value;
use vigil_mqtt::bridge::{Bridge, BridgeOptions, RuleFile, basic_ingest_prefix};
use vigil_mqtt::pki::BRIDGE_CLIENT_ID;
use vigil_mqtt::{InProcessLambda, RuleAction, Statement, WallClock};

/// The ingest rule as a test needs it: the tag's id from the topic.
fn ingest_rule() -> Vec<RuleFile> {
    vec![RuleFile {
        name: "ingest".into(),
        path: "ingest.sql".into(),
        statement: Statement::parse("SELECT topic(2) AS tag_id FROM 'tags/+/+'").unwrap(),
    }]
}

/// A bridge whose ingest action keeps each event and takes 200 ms.
async fn bridge(
    name: &str,
    options: BridgeOptions,
) -> (
    vigil_mqtt::LocalBroker,
    Bridge,
    AsyncClient,
    Arc<Mutex<Vec<Value>>>,
) {
    let (pki, broker) = common::broker(name);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let action: Arc<dyn RuleAction> = Arc::new(InProcessLambda::new("ingest", move |event| {
        let sink = sink.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            sink.lock().unwrap().push(event);
            Ok(Value::Null)
        }
    }));
    let bridge = Bridge::start(
        &broker.endpoint(),
        &pki.client(BRIDGE_CLIENT_ID).unwrap(),
        ingest_rule(),
        BTreeMap::from([("ingest".to_owned(), action)]),
        Arc::new(WallClock),
        &options,
    )
    .await
    .unwrap();
    let (tag, mut events) = common::connect(&broker.endpoint(), "t1", &pki.client("t1").unwrap())
        .await
        .unwrap();
    tokio::spawn(async move { while events.poll().await.is_ok() {} });
    (broker, bridge, tag, seen)
}

async fn handled(bridge: &Bridge, n: u64) -> vigil_mqtt::RuleStats {
    let stats = bridge
        .wait_until(Duration::from_secs(20), |s| s["ingest"].handled() >= n)
        .await
        .unwrap_or_else(|s| panic!("not all handled: {s:?}"));
    stats["ingest"].clone()
}

#[tokio::test]
async fn a_rule_handles_up_to_its_concurrency_at_once() {
    for concurrency in [1, 3] {
        let options = BridgeOptions {
            concurrency,
            stage: None,
        };
        let (_broker, bridge, tag, seen) =
            bridge(&format!("concurrency-{concurrency}"), options).await;
        for i in 0..9 {
            tag.publish(
                "tags/t1/fix",
                QoS::AtLeastOnce,
                false,
                format!("{{\"i\":{i}}}"),
            )
            .await
            .unwrap();
        }
        let stats = handled(&bridge, 9).await;
        assert_eq!(stats.action_ok, 9, "{stats:?}");
        assert_eq!(stats.busy, 0, "{stats:?}");
        assert_eq!(
            stats.busy_peak, concurrency as u64,
            "nine slow messages at concurrency {concurrency}: {stats:?}"
        );
        assert_eq!(seen.lock().unwrap().len(), 9);
    }
}

#[tokio::test]
async fn a_basic_ingest_topic_reaches_its_rule_without_the_prefix() {
    let options = BridgeOptions {
        concurrency: 1,
        stage: Some("local".into()),
    };
    let (_broker, bridge, tag, seen) = bridge("basic-ingest", options).await;
    let topic = format!("{}tags/t1/fix", basic_ingest_prefix("local", "ingest"));
    assert_eq!(topic, "$aws/rules/vigil_local_ingest/tags/t1/fix");
    tag.publish(&topic, QoS::AtLeastOnce, false, "{}")
        .await
        .unwrap();
    tag.publish("tags/t1/fix", QoS::AtLeastOnce, false, "{}")
        .await
        .unwrap();
    let stats = handled(&bridge, 2).await;
    assert_eq!((stats.received, stats.action_ok), (2, 2), "{stats:?}");
    for event in seen.lock().unwrap().iter() {
        assert_eq!(event["tag_id"], "t1", "{event}");
    }
}

#[test]
fn a_compressed_clock_runs_faster_and_never_jumps() {
    use vigil_mqtt::{Clock, CompressedClock};
    let wall = WallClock.now_ms();
    let clock = CompressedClock::starting_now(10.0);
    let start = clock.now_ms();
    assert!(
        (start - wall).abs() < 1_000,
        "starts at the wall clock's time"
    );
    std::thread::sleep(Duration::from_millis(50));
    let later = clock.now_ms();
    assert!(
        later - start >= 500,
        "50 ms of wall time is at least 500 ms: {}",
        later - start
    );
    clock.set_speedup(1.0);
    assert!(
        clock.now_ms() >= later,
        "a change of pace does not move time back"
    );
    assert_eq!(clock.speedup(), 1.0);
    clock.set_speedup(4.0);
    assert_eq!(clock.real(60_000), Duration::from_secs(15));
    assert_eq!(clock.real(-5), Duration::ZERO);
}
