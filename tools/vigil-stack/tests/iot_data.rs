//! Commands to devices through the local stack's IoT data plane (`IotDataApi`,
//! `AWS_ENDPOINT_URL_IOT_DATA_PLANE`): the alert function's own commander (`IotCommander`, the
//! real adapter on the stack's SDK configuration) publishes `{"report_interval_s":15}` and a
//! tag connected with its own certificate, through the policy front, receives it; retained, so
//! a device that subscribes later still gets the latest command; what IoT refuses is refused
//! with IoT's status and error type; a broker that cannot be reached is a 503, which the
//! commander reports as retryable. And adaptive reporting's whole path on it: a tag told a
//! batching window, an operator adding a zone through vigil-admin, the watchdog's next minute,
//! the alert queue drained: the retained command on the broker and `tags.cmd` say `batch_s` 0.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, Packet, QoS, SubscribeReasonCode};
use vigil_aws::IotCommander;
use vigil_aws::error::StoreError;
use vigil_aws::ports::Commander;
use vigil_mqtt::pki::{CertPair, OPERATOR_CLIENT_ID, Pki};
use vigil_mqtt::{Endpoint, client::MAX_PAYLOAD_BYTES};
use vigil_stack::iot_data::{ENDPOINT_VAR, IOT_DATA_CLIENT_ID};
use vigil_stack::{IotDataApi, LocalStack, StackClock, StackOptions};

const COMMAND: &[u8] = br#"{"report_interval_s":15}"#;

/// A stack with its own PKI.
async fn stack(name: &str) -> LocalStack {
    stack_with(name, StackClock::Wall).await
}

/// A stack with its own PKI and `clock`.
async fn stack_with(name: &str, clock: StackClock) -> LocalStack {
    let pki_dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("vigil-iot-data-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&pki_dir);
    LocalStack::start(StackOptions {
        pki_dir,
        clock,
        ..StackOptions::default()
    })
    .await
    .expect("the local stack starts")
}

/// `thing` connected with `identity` (client id = thing name, as the policy wants) and
/// subscribed at QoS 1 to `filter`, once the broker's SUBACK granted it.
async fn subscribe(
    stack: &LocalStack,
    thing: &str,
    identity: &CertPair,
    filter: &str,
) -> (AsyncClient, EventLoop) {
    let options = vigil_mqtt::client::mqtt_options(&stack.endpoint(), thing, identity).unwrap();
    let (client, mut events) = AsyncClient::new(options, 10);
    client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    assert!(
                        matches!(ack.return_codes[..], [SubscribeReasonCode::Success(_)]),
                        "{thing} may not subscribe to {filter}: {ack:?}"
                    );
                    return;
                }
                Ok(_) => {}
                Err(e) => panic!("{thing}: {e}"),
            }
        }
    })
    .await
    .expect("SUBACK within 10 s");
    (client, events)
}

/// The next message the subscriber receives within `within`, if any.
async fn next_message(events: &mut EventLoop, within: Duration) -> Option<rumqttc::Publish> {
    tokio::time::timeout(within, async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => return p,
                Ok(_) => {}
                Err(e) => panic!("the subscriber's connection: {e}"),
            }
        }
    })
    .await
    .ok()
}

#[tokio::test]
async fn the_alert_functions_commander_reaches_devices_live_and_retained() {
    let stack = stack("commands").await;
    assert_eq!(stack.env()[ENDPOINT_VAR], stack.iot_data.url());
    let commander = &stack.functions.alert.commander;

    // Live: tag-x, with its own certificate, is subscribed to its command topic.
    let tag_x = stack.pki.client("tag-x").unwrap();
    let (_x, mut x_events) = subscribe(&stack, "tag-x", &tag_x, "tags/tag-x/cmd").await;
    commander
        .publish("tags/tag-x/cmd", COMMAND)
        .await
        .expect("the commander publishes through the stack's IoT data plane");
    let got = next_message(&mut x_events, Duration::from_secs(10))
        .await
        .expect("tag-x received its command");
    assert_eq!(got.topic, "tags/tag-x/cmd");
    assert_eq!(&got.payload[..], COMMAND);
    assert_eq!(got.qos, QoS::AtLeastOnce);

    // Retained: tag-y is offline while two commands are sent; when it subscribes, it gets the
    // latest (only), flagged as retained.
    commander
        .publish("tags/tag-y/cmd", br#"{"report_interval_s":60}"#)
        .await
        .unwrap();
    commander.publish("tags/tag-y/cmd", COMMAND).await.unwrap();
    let tag_y = stack.pki.client("tag-y").unwrap();
    let (_y, mut y_events) = subscribe(&stack, "tag-y", &tag_y, "tags/tag-y/cmd").await;
    let got = next_message(&mut y_events, Duration::from_secs(10))
        .await
        .expect("tag-y received the retained command");
    assert_eq!(
        (got.topic.as_str(), &got.payload[..], got.retain),
        ("tags/tag-y/cmd", COMMAND, true)
    );
    let more = next_message(&mut y_events, Duration::from_secs(1)).await;
    assert!(more.is_none(), "only the latest command is kept: {more:?}");

    // tag-x, connecting again (a fresh session), gets its retained command again.
    drop((_x, x_events));
    let (_x, mut x_events) = subscribe(&stack, "tag-x", &tag_x, "tags/tag-x/cmd").await;
    let got = next_message(&mut x_events, Duration::from_secs(10))
        .await
        .expect("tag-x got its retained command on reconnecting");
    assert_eq!((&got.payload[..], got.retain), (COMMAND, true));

    // A victim's own device, with the victim-device policy, on its own command topic.
    let device = stack.pki.device("dev-x").unwrap();
    commander
        .publish("victims/dev-x/cmd", COMMAND)
        .await
        .unwrap();
    let (_d, mut d_events) = subscribe(&stack, "dev-x", &device, "victims/dev-x/cmd").await;
    let got = next_message(&mut d_events, Duration::from_secs(10))
        .await
        .expect("the victim's device received its command");
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("victims/dev-x/cmd", COMMAND)
    );
    assert!(
        stack.broker.denials().is_empty(),
        "{:?}",
        stack.broker.denials()
    );
    stack.stop().await;
}

/// A POST to the data plane; its status, error type and body.
async fn post(url: &str, path_and_query: &str, body: Vec<u8>) -> (u16, String, String) {
    let response = reqwest::Client::new()
        .post(format!("{url}{path_and_query}"))
        .body(body)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("the data plane answers");
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("x-amzn-errortype")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.text().await.unwrap();
    (status, kind, body)
}

#[tokio::test]
async fn the_data_plane_refuses_what_iot_refuses_and_reconnects() {
    let stack = stack("refusals").await;
    let url = stack.iot_data.url().to_owned();
    let invalid = (400, "InvalidRequestException");
    for (path, why) in [
        ("/topics/tags%2F%2B%2Fcmd?qos=1", "a + wildcard"),
        ("/topics/tags/+/cmd?qos=1", "a + wildcard, not encoded"),
        ("/topics/tags%2Ftag-x%2F%23?qos=1", "a # wildcard"),
        (
            "/topics/%24aws%2Fthings%2Ftag-x%2Fshadow%2Fupdate",
            "a reserved topic",
        ),
        ("/topics/?qos=1", "an empty topic"),
        ("/topics/tags%2Ftag-x%2Fcmd?qos=2", "QoS 2"),
        (
            "/topics/tags%2Ftag-x%2Fcmd?retain=maybe",
            "a retain that is not a boolean",
        ),
    ] {
        let (status, kind, body) = post(&url, path, COMMAND.to_vec()).await;
        assert_eq!((status, kind.as_str()), invalid, "{why}: {body}");
        assert!(body.contains("\"message\""), "{why}: {body}");
    }
    let long = format!("/topics/{}", "a".repeat(257));
    assert_eq!(post(&url, &long, COMMAND.to_vec()).await.0, 400);
    let (status, kind, _) = post(
        &url,
        "/topics/tags%2Ftag-x%2Fcmd?qos=1",
        vec![b'x'; MAX_PAYLOAD_BYTES + 1],
    )
    .await;
    assert_eq!(
        (status, kind.as_str()),
        (413, "RequestEntityTooLargeException")
    );
    let (status, _, _) = post(&url, "/things/tag-x/shadow", COMMAND.to_vec()).await;
    assert_eq!(status, 404);
    let get = reqwest::Client::new()
        .get(format!("{url}/topics/tags%2Ftag-x%2Fcmd"))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status().as_u16(), 405);

    // The SDK reads IoT's error type: the commander's error says what was refused.
    let refused = stack
        .functions
        .alert
        .commander
        .publish("tags/+/cmd", COMMAND)
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, StoreError::Rejected { code, .. } if code == "InvalidRequestException"),
        "{refused:?}"
    );
    assert!(!refused.is_retryable());

    // What IoT takes: a payload of exactly 128 KiB, and QoS 0, reach the subscriber.
    let tag = stack.pki.client("tag-x").unwrap();
    let (_client, mut events) = subscribe(&stack, "tag-x", &tag, "tags/tag-x/cmd").await;
    let big = vec![b'x'; MAX_PAYLOAD_BYTES];
    let (status, _, body) = post(&url, "/topics/tags%2Ftag-x%2Fcmd?qos=1", big.clone()).await;
    assert_eq!((status, body.as_str()), (200, "{}"));
    let got = next_message(&mut events, Duration::from_secs(10))
        .await
        .expect("the 128 KiB message arrived");
    assert_eq!(got.payload.len(), MAX_PAYLOAD_BYTES);
    let (status, _, _) = post(&url, "/topics/tags/tag-x/cmd?qos=0", COMMAND.to_vec()).await;
    assert_eq!(status, 200);
    let got = next_message(&mut events, Duration::from_secs(10))
        .await
        .expect("the QoS 0 message arrived");
    // (rumqttd delivers at the subscription's QoS, not the lower of the two as MQTT says.)
    assert_eq!(&got.payload[..], COMMAND);

    // Its broker connection is cut as a network would cut it: the next publish connects
    // again and arrives.
    assert_eq!(stack.broker.cut_connections(IOT_DATA_CLIENT_ID), 1);
    stack
        .functions
        .alert
        .commander
        .publish("tags/tag-x/cmd", COMMAND)
        .await
        .expect("the data plane connected again");
    let got = next_message(&mut events, Duration::from_secs(10))
        .await
        .expect("the command after the cut arrived");
    assert_eq!(&got.payload[..], COMMAND);
    stack.stop().await;
}

#[tokio::test]
async fn a_broker_that_cannot_be_reached_is_a_503_the_commander_may_retry() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("vigil-iot-data-{}-unreachable", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let pki = Pki::ensure(&dir).unwrap();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nowhere = Endpoint {
        host: "127.0.0.1".to_owned(),
        port,
        ca: pki.ca().cert,
    };
    let api = IotDataApi::start(&nowhere, &pki.client(OPERATOR_CLIENT_ID).unwrap())
        .await
        .unwrap();
    let (status, kind, body) = post(
        api.url(),
        "/topics/tags%2Ftag-x%2Fcmd?qos=1&retain=true",
        COMMAND.to_vec(),
    )
    .await;
    assert_eq!(
        (status, kind.as_str()),
        (503, "ServiceUnavailableException"),
        "{body}"
    );

    // The commander, after the SDK's own retries, reports an outage, not a refusal.
    let config = aws_sdk_iotdataplane::Config::builder()
        .behavior_version_latest()
        .region(aws_sdk_iotdataplane::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_iotdataplane::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .retry_config(aws_sdk_iotdataplane::config::retry::RetryConfig::disabled())
        .endpoint_url(api.url())
        .build();
    let commander = IotCommander::new(aws_sdk_iotdataplane::Client::from_conf(config));
    let e = commander
        .publish("tags/tag-x/cmd", COMMAND)
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
}

/// The command `tags.cmd` holds for `tag-1`.
async fn kept_command(stack: &LocalStack) -> vigil_core::reporting::ReportingCommand {
    use vigil_aws::ports::ReportingStore;
    stack
        .functions
        .store
        .tag_reporting(&vigil_core::TagId::new("tag-1").unwrap())
        .await
        .unwrap()
        .and_then(|t| t.command)
        .expect("tag-1 was told a command")
}

/// The command retained for `tag-1`, as the tag gets it when it connects.
async fn retained_command(stack: &LocalStack) -> Vec<u8> {
    let identity = stack.pki.client("tag-1").unwrap();
    let (_client, mut events) = subscribe(stack, "tag-1", &identity, "tags/tag-1/cmd").await;
    let got = next_message(&mut events, Duration::from_secs(10))
        .await
        .expect("tag-1 has a retained command");
    assert!(got.retain);
    got.payload.to_vec()
}

#[tokio::test]
async fn an_operators_new_zone_ends_a_batching_tags_window_within_the_watchdogs_minute() {
    use vigil_testkit::{fix_north, home_zone, order};
    // 2026-01-01T00:00:00Z, on the scenario's clock (the functions' clock follows it).
    let t0 = 1_767_225_600_000;
    let stack = stack_with(
        "window-ended",
        StackClock::Scenario(vigil_mqtt::ScenarioClock::new(t0)),
    )
    .await;
    let f = &stack.functions;
    let mut o1 = order();
    o1.force_id = Some(vigil_core::ForceId::new("met").unwrap());
    f.provision(&o1, &[home_zone()]).await;

    // 100 km from home: ingest judges the longest window, the alert function tells the tag.
    f.publish_fix(&fix_north(1, t0 + 10_000, 100_000.0)).await;
    f.drain().await;
    assert_eq!(kept_command(&stack).await.batch_s, 900);
    assert_eq!(
        retained_command(&stack).await,
        br#"{"report_interval_s":60,"batch_s":900}"#
    );

    // An operator adds a zone 5 km from where the tag is, through vigil-admin.
    let met = vigil_admin::Caller::of_force(
        vigil_admin::Operator::Local("op-1".into()),
        vigil_testkit::force("met"),
    );
    let near = fix_north(0, t0, 95_000.0);
    let work: vigil_core::Zone = serde_json::from_value(serde_json::json!({
        "zone_id": "work", "circle": {"lat": near.lat, "lon": near.lon, "radius_m": 200},
        "buffer_m": 500, "order_id": "o1"
    }))
    .unwrap();
    let now = t0 + 20_000;
    f.advance_clock(now);
    vigil_admin::zones::add_zone(&f.store, &met, &work, false, now)
        .await
        .expect("the zone is added");
    // Nothing reaches the tag but through the alert function: still batching.
    f.drain().await;
    assert_eq!(kept_command(&stack).await.batch_s, 900);

    // The watchdog's next minute queues the ask; the alert queue drained, the tag is told.
    let minute_ms = (now / 60_000 + 1) * 60_000;
    f.run_schedules(minute_ms).await.expect("the watchdog runs");
    let kept = kept_command(&stack).await;
    assert_eq!(
        (kept.batch_s, kept.report_interval_s, kept.window_basis_ms),
        (0, 60, Some(minute_ms))
    );
    assert_eq!(
        retained_command(&stack).await,
        br#"{"report_interval_s":60,"batch_s":0}"#
    );
    // The order's operators were told why, and its chain holds the command.
    let told = f.operator_events().await;
    assert!(
        told.iter().any(|m| m.message.contains("order_changed")),
        "{told:?}"
    );
    assert!(
        stack.broker.denials().is_empty(),
        "{:?}",
        stack.broker.denials()
    );
    stack.stop().await;
}
