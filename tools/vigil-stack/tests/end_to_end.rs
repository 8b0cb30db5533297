//! End to end over MQTT, on the local stack as `vigil-stack up` and the simulator start it: a
//! simulated tag publishes a fix over mutual TLS to the broker (the tag policy applies); the
//! bridge applies `infra/rules/*.sql` and invokes ingest; the alert function texts the victim
//! through the emulator's SNS; the fix is in the tag's history (accepted fixes only).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, Packet, QoS};
use vigil_aws::ports::IngestStore;
use vigil_core::{TagHistory, TagId};
use vigil_mqtt::ScenarioClock;
use vigil_mqtt::pki::BRIDGE_CLIENT_ID;
use vigil_mqtt::tagsim::{self, Route, SimConfig};
use vigil_stack::{LocalStack, StackClock, StackOptions};
use vigil_testkit::{HOME, VICTIM_PHONE, home_zone, order};

/// The testkit's order `o1` restrains this tag.
const TAG: &str = "tag-1";

/// A stack with its own PKI, and the testkit's order `o1` with its home zone at [`HOME`].
async fn stack(name: &str, clock: StackClock) -> LocalStack {
    let pki_dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("vigil-stack-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&pki_dir);
    let stack = LocalStack::start(StackOptions {
        pki_dir,
        clock,
        ..StackOptions::default()
    })
    .await
    .expect("the local stack starts");
    stack.functions.provision(&order(), &[home_zone()]).await;
    stack
}

fn sim(stack: &LocalStack, north_m: f64) -> SimConfig {
    let pki = stack.pki.clone();
    SimConfig {
        endpoint: stack.endpoint(),
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
        // As deployed tags publish: the ingest rule's Basic Ingest topics.
        basic_ingest_rule: Some(format!("vigil_{}_ingest", stack.emulator().stage())),
    }
}

/// The tag's history of accepted fixes, as ingest stored it in the emulator.
async fn history(stack: &LocalStack) -> TagHistory {
    stack
        .functions
        .store
        .history(&TagId::new(TAG).unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_fix_over_mtls_becomes_the_victims_sms_and_the_tags_history() {
    let stack = stack("e2e", StackClock::Wall).await;
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

    // The stack's alert function drained the queue and texted the victim.
    let deadline = Instant::now() + Duration::from_secs(30);
    let sms = loop {
        let sms = stack.functions.sms().await;
        if !sms.is_empty() || Instant::now() > deadline {
            break sms;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(sms.len(), 1, "{sms:#?}");
    assert_eq!(sms[0].phone_number, VICTIM_PHONE);
    assert!(sms[0].message.contains("may be"), "{}", sms[0].message);

    // The accepted fix is the tag's history, with the server's receive time.
    let h = history(&stack).await;
    assert_eq!(h.fixes.len(), 1, "{h:#?}");
    assert!((h.fixes[0].lat - (HOME.0 + 400.0 / 111_250.0)).abs() < 1e-5);
    assert!(h.fixes[0].received_at_ms >= h.fixes[0].at_ms);

    // A payload that is not JSON: ingest gets it and quarantines it; the history is unchanged
    // (a rejected message is never the tag's previous fix).
    let tag = stack.pki.client(TAG).unwrap();
    let options = vigil_mqtt::client::mqtt_options(&stack.endpoint(), TAG, &tag).unwrap();
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    client
        .publish(
            format!("tags/{TAG}/fix"),
            QoS::AtLeastOnce,
            false,
            b"not json".to_vec(),
        )
        .await
        .unwrap();
    let pump = tokio::spawn(async move {
        while let Ok(e) = eventloop.poll().await {
            if let Event::Incoming(Packet::PubAck(_)) = e {
                break;
            }
        }
    });
    let stats = stack
        .bridge
        .wait_until(Duration::from_secs(30), |s| s["ingest"].action_ok >= 2)
        .await
        .expect("the garbage was handled");
    assert_eq!(stats["ingest"].errors(), 0, "{stats:?}");
    assert!(stack.bridge.failures().is_empty());
    assert_eq!(stack.ingest.metrics.total("MessageRejected"), 1);
    assert_eq!(history(&stack).await, h);
    pump.abort();
    stack.stop().await;
}

#[tokio::test]
async fn timestamp_comes_from_the_scenario_clock() {
    let device_now = chrono::Utc::now().timestamp_millis();
    let clock = ScenarioClock::new(device_now + 1_234);
    let stack = stack("e2e-clock", StackClock::Scenario(clock.clone())).await;
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
        .ingest
        .metrics
        .get("MessageRejected", "device_time_too_old");
    assert_eq!(rejected, 1);
    stack.stop().await;
}

#[tokio::test]
async fn the_bridge_hears_fixes_after_its_connection_is_taken_over() {
    // Issue 11.4: a client connecting with the bridge's client id knocked its session off;
    // the bridge reconnected with a clean session, never subscribed again, and every later
    // fix was PUBACKed and then lost. A clean session discards subscriptions (MQTT 3.1.1
    // 3.1.2.4; IoT Core and mosquitto do): the bridge must renew its own, and says so. The
    // embedded rumqttd happens to keep delivering without it, so the renewal is asserted
    // directly as well as the delivery.
    let stack = stack("e2e-takeover", StackClock::Wall).await;
    let bridge_id = format!("vigil-bridge-ingest-{}", std::process::id());
    let intruder = stack.pki.client(BRIDGE_CLIENT_ID).unwrap();
    let options =
        vigil_mqtt::client::mqtt_options(&stack.endpoint(), &bridge_id, &intruder).unwrap();
    let (client, mut eventloop) = AsyncClient::new(options, 10);
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
    stack.stop().await;
}
