//! Issue 11.8: the local broker enforces the tag policy that ships (`infra/iot/tag-policy.json`),
//! so a hostile tag, holding its own valid certificate, can neither impersonate another tag,
//! read its commands or fixes, send it commands, nor knock it offline. Each test is a hostile
//! tag against the broker, with an operator (`vigil-operator`, a service identity) watching
//! every tag topic to prove that nothing refused reached a subscriber.

mod common;

use std::time::Duration;

use rumqttc::{AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, Packet, QoS};
use vigil_mqtt::LocalBroker;
use vigil_mqtt::Pki;
use vigil_mqtt::pki::OPERATOR_CLIENT_ID;
use vigil_mqtt::policy::Action;

/// An operator subscribed to every tag topic; returns once the subscription is acknowledged.
async fn watcher(pki: &Pki, broker: &LocalBroker) -> (AsyncClient, EventLoop) {
    let identity = pki.client(OPERATOR_CLIENT_ID).unwrap();
    let (client, mut events) = common::connect(&broker.endpoint(), OPERATOR_CLIENT_ID, &identity)
        .await
        .expect("the operator connects");
    client.subscribe("tags/#", QoS::AtLeastOnce).await.unwrap();
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = events.poll().await.unwrap() {
            return (client, events);
        }
    }
}

/// Topics of the PUBLISH packets `events` receives within `wait`.
async fn received(events: &mut EventLoop, wait: Duration) -> Vec<String> {
    let mut topics = Vec::new();
    let _ = tokio::time::timeout(wait, async {
        while let Ok(event) = events.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = event {
                topics.push(p.topic);
            }
        }
    })
    .await;
    topics
}

/// Polls `events` until the connection ends or `wait` passes; true if it ended.
async fn closed(events: &mut EventLoop, wait: Duration) -> bool {
    tokio::time::timeout(wait, async { while events.poll().await.is_ok() {} })
        .await
        .is_ok()
}

#[tokio::test]
async fn a_tag_cannot_connect_with_another_tags_client_id_nor_knock_it_offline() {
    let (pki, broker) = common::broker("policy-connect");
    let victim_tag = pki.client("tag-a").unwrap();
    let (a, mut a_events) = common::connect(&broker.endpoint(), "tag-a", &victim_tag)
        .await
        .expect("tag-a connects as itself");
    a.subscribe("tags/tag-a/cmd", QoS::AtLeastOnce)
        .await
        .unwrap();
    // The subscription is in place before anything else happens (rumqttc sends it on poll).
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = a_events.poll().await.unwrap() {
            break;
        }
    }

    let hostile = pki.client("tag-b").unwrap();
    let refused = common::connect(&broker.endpoint(), "tag-a", &hostile).await;
    let error = refused.err().expect("tag-b may not connect as tag-a");
    assert!(
        error.contains(&format!(
            "{:?}",
            ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized)
        )) || error.contains("NotAuthorized"),
        "{error}"
    );

    // tag-a's session is untouched: a command still reaches it.
    let (operator, mut operator_events) = watcher(&pki, &broker).await;
    operator
        .publish("tags/tag-a/cmd", QoS::AtLeastOnce, false, b"{}".to_vec())
        .await
        .unwrap();
    let pump =
        tokio::spawn(async move { received(&mut operator_events, Duration::from_secs(3)).await });
    let got = received(&mut a_events, Duration::from_secs(3)).await;
    assert_eq!(got, ["tags/tag-a/cmd"], "tag-a was knocked offline");
    pump.abort();

    let denials = broker.denials();
    assert_eq!(denials.len(), 1, "{denials:?}");
    assert_eq!(
        (
            denials[0].thing.as_str(),
            denials[0].action,
            denials[0].name.as_str()
        ),
        ("tag-b", Action::Connect, "tag-a")
    );
}

#[tokio::test]
async fn a_tag_cannot_publish_another_tags_fixes_or_commands() {
    let (pki, broker) = common::broker("policy-publish");
    let (_operator, mut watching) = watcher(&pki, &broker).await;
    let hostile = pki.client("tag-b").unwrap();

    for topic in [
        "tags/tag-a/fix",
        "tags/tag-a/cmd",
        "tags/tag-b/cmd",
        "tags/tag-a/event",
    ] {
        let (b, mut b_events) = common::connect(&broker.endpoint(), "tag-b", &hostile)
            .await
            .expect("tag-b connects as itself");
        b.publish(topic, QoS::AtLeastOnce, false, br#"{"v":1}"#.to_vec())
            .await
            .unwrap();
        assert!(
            closed(&mut b_events, Duration::from_secs(5)).await,
            "publishing on {topic} did not close tag-b's connection"
        );
    }
    // Its own fix still goes through, and is the only thing the operator ever sees.
    let (b, mut b_events) = common::connect(&broker.endpoint(), "tag-b", &hostile)
        .await
        .unwrap();
    b.publish(
        "tags/tag-b/fix",
        QoS::AtLeastOnce,
        false,
        br#"{"v":1}"#.to_vec(),
    )
    .await
    .unwrap();
    let pump = tokio::spawn(async move { closed(&mut b_events, Duration::from_secs(3)).await });
    assert_eq!(
        received(&mut watching, Duration::from_secs(3)).await,
        ["tags/tag-b/fix"]
    );
    assert!(
        !pump.await.unwrap(),
        "an allowed publish closed the connection"
    );

    let refused: Vec<(Action, String)> = broker
        .denials()
        .into_iter()
        .map(|d| (d.action, d.name))
        .collect();
    assert_eq!(
        refused,
        [
            "tags/tag-a/fix",
            "tags/tag-a/cmd",
            "tags/tag-b/cmd",
            "tags/tag-a/event"
        ]
        .map(|t| (Action::Publish, t.to_owned()))
    );
}

#[tokio::test]
async fn a_tag_cannot_read_another_tags_commands_or_anyones_fixes() {
    let (pki, broker) = common::broker("policy-subscribe");
    let hostile = pki.client("tag-b").unwrap();
    for filter in ["tags/tag-a/cmd", "tags/+/cmd", "tags/+/fix", "tags/#", "#"] {
        let (b, mut b_events) = common::connect(&broker.endpoint(), "tag-b", &hostile)
            .await
            .unwrap();
        b.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
        assert!(
            closed(&mut b_events, Duration::from_secs(5)).await,
            "subscribing to {filter} did not close tag-b's connection"
        );
    }
    // What it may read: its own commands, and nothing else on the broker.
    let (b, mut b_events) = common::connect(&broker.endpoint(), "tag-b", &hostile)
        .await
        .unwrap();
    b.subscribe("tags/tag-b/cmd", QoS::AtLeastOnce)
        .await
        .unwrap();
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = b_events.poll().await.unwrap() {
            break;
        }
    }
    let (operator, mut operator_events) = watcher(&pki, &broker).await;
    for topic in ["tags/tag-a/cmd", "tags/tag-b/cmd"] {
        operator
            .publish(topic, QoS::AtLeastOnce, false, b"{}".to_vec())
            .await
            .unwrap();
    }
    let pump =
        tokio::spawn(async move { received(&mut operator_events, Duration::from_secs(3)).await });
    assert_eq!(
        received(&mut b_events, Duration::from_secs(3)).await,
        ["tags/tag-b/cmd"]
    );
    pump.abort();
    assert_eq!(broker.denials().len(), 5, "{:?}", broker.denials());
    assert!(
        broker
            .denials()
            .iter()
            .all(|d| d.action == Action::Subscribe && d.thing == "tag-b")
    );
}

/// Issue 9: a victim's own device has the victim-device policy, a tag the tag policy, and
/// neither can reach the other side: the device publishes only its own positions, the tag can
/// neither read them nor pose as a device.
#[tokio::test]
async fn a_victims_device_and_a_tag_cannot_reach_each_others_topics() {
    let (pki, broker) = common::broker("policy-device");
    let device = pki.device("phone-v1").unwrap();
    assert_eq!(pki.attached_policy("phone-v1"), "victim-device");
    let tag = pki.client("tag-b").unwrap();
    assert_eq!(pki.attached_policy("tag-b"), "tag");

    // The operator stands in for the rule: it sees every victim topic.
    let identity = pki.client(OPERATOR_CLIENT_ID).unwrap();
    let (operator, mut watching) =
        common::connect(&broker.endpoint(), OPERATOR_CLIENT_ID, &identity)
            .await
            .unwrap();
    operator
        .subscribe("victims/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = watching.poll().await.unwrap() {
            break;
        }
    }

    // Refused: the device on a tag topic, on another device's topic, on its own commands;
    // the tag on a device topic.
    for (who, cert, topic) in [
        ("phone-v1", &device, "tags/phone-v1/fix"),
        ("phone-v1", &device, "victims/phone-v2/position"),
        ("phone-v1", &device, "victims/phone-v1/cmd"),
        ("tag-b", &tag, "victims/tag-b/position"),
    ] {
        let (c, mut events) = common::connect(&broker.endpoint(), who, cert)
            .await
            .expect("connects as itself");
        c.publish(topic, QoS::AtLeastOnce, false, br#"{"v":1}"#.to_vec())
            .await
            .unwrap();
        assert!(
            closed(&mut events, Duration::from_secs(5)).await,
            "{who} publishing on {topic} was not refused"
        );
    }
    // The tag cannot subscribe to positions.
    let (c, mut events) = common::connect(&broker.endpoint(), "tag-b", &tag)
        .await
        .unwrap();
    c.subscribe("victims/+/position", QoS::AtLeastOnce)
        .await
        .unwrap();
    assert!(
        closed(&mut events, Duration::from_secs(5)).await,
        "a tag subscribed to victims' positions"
    );
    // The device's own position goes through, and is the only thing seen.
    let (d, mut d_events) = common::connect(&broker.endpoint(), "phone-v1", &device)
        .await
        .unwrap();
    d.publish(
        "victims/phone-v1/position",
        QoS::AtLeastOnce,
        false,
        br#"{"v":1}"#.to_vec(),
    )
    .await
    .unwrap();
    let pump = tokio::spawn(async move { closed(&mut d_events, Duration::from_secs(3)).await });
    assert_eq!(
        received(&mut watching, Duration::from_secs(3)).await,
        ["victims/phone-v1/position"]
    );
    assert!(!pump.await.unwrap(), "the device's own position closed it");
    let refused: Vec<(String, Action, String)> = broker
        .denials()
        .into_iter()
        .map(|d| (d.thing, d.action, d.name))
        .collect();
    assert_eq!(refused.len(), 5, "{refused:?}");
    assert!(refused.contains(&(
        "tag-b".into(),
        Action::Subscribe,
        "victims/+/position".into()
    )));
}
