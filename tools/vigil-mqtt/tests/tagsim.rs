//! The simulator over the real broker: fixes and events on the tag's topics, acknowledged, and
//! a command on `tags/{tag}/cmd` changes the reporting rate.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{Event, Packet, QoS};
use vigil_mqtt::pki::OPERATOR_CLIENT_ID;
use vigil_mqtt::tagsim::{self, Command, Route, SimConfig};

#[test]
fn commands_are_parsed_or_refused_with_a_reason() {
    assert_eq!(
        tagsim::parse_command(br#"{"report_interval_s": 15}"#),
        Ok(Command {
            interval: Duration::from_secs(15),
            batch: Duration::ZERO
        })
    );
    assert_eq!(
        tagsim::parse_command(br#"{"report_interval_s": 60, "batch_s": 300}"#),
        Ok(Command {
            interval: Duration::from_secs(60),
            batch: Duration::from_secs(300)
        })
    );
    assert!(
        tagsim::parse_command(br#"{"report_interval_s": 60, "batch_s": -1}"#)
            .unwrap_err()
            .contains("batch_s")
    );
    assert!(
        tagsim::parse_command(b"15")
            .unwrap_err()
            .contains("report_interval_s")
    );
    assert!(tagsim::parse_command(br#"{"report_interval_s": 0}"#).is_err());
    assert!(
        tagsim::parse_command(b"{")
            .unwrap_err()
            .contains("not JSON")
    );
}

#[tokio::test]
async fn a_command_changes_the_reporting_rate() {
    let (pki, broker) = common::broker("tagsim-cmd");
    let observer_id = pki.client(OPERATOR_CLIENT_ID).unwrap();
    let (observer, mut events) =
        common::connect(&broker.endpoint(), OPERATOR_CLIENT_ID, &observer_id)
            .await
            .unwrap();
    observer
        .subscribe("tags/+/+", QoS::AtLeastOnce)
        .await
        .unwrap();
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = events.poll().await.unwrap() {
            break;
        }
    }
    let identity_pki = pki.clone();
    let config = SimConfig {
        endpoint: broker.endpoint(),
        tags: vec!["tag-cmd".to_owned()],
        identity: Arc::new(move |tag| identity_pki.client(tag)),
        route: Route::Walk {
            lat: 51.5,
            lon: -0.12,
            radius_m: 500.0,
            speed_mps: 1.4,
        },
        // At this rate the run would need 3 minutes for its 4 fixes.
        report_interval: Duration::from_secs(60),
        max_fixes_per_tag: Some(4),
        duration: Duration::from_secs(30),
        accuracy_m: 8.0,
        events: true,
        seed: 7,
        progress: false,
        basic_ingest_rule: None,
    };
    let started = Instant::now();
    let sim = tokio::spawn(tagsim::run(config));
    let mut fixes = Vec::new();
    let mut kinds = Vec::new();
    while fixes.len() < 4 {
        let event = tokio::time::timeout(Duration::from_secs(20), events.poll())
            .await
            .expect("messages keep coming")
            .unwrap();
        let Event::Incoming(Packet::Publish(p)) = event else {
            continue;
        };
        let body: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
        match p.topic.as_str() {
            "tags/tag-cmd/fix" => {
                if fixes.is_empty() {
                    observer
                        .publish(
                            "tags/tag-cmd/cmd",
                            QoS::AtLeastOnce,
                            false,
                            br#"{"report_interval_s": 0.2}"#.to_vec(),
                        )
                        .await
                        .unwrap();
                }
                fixes.push(body);
            }
            "tags/tag-cmd/event" => kinds.push(body["kind"].as_str().unwrap().to_owned()),
            _ => {}
        }
    }
    let summary = sim.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(15), "{summary}");
    assert_eq!(
        (
            summary.fixes,
            summary.events,
            summary.commands,
            summary.errors
        ),
        (4, 1, 1, 0),
        "{summary}"
    );
    assert_eq!(summary.acked, summary.published(), "{summary}");
    assert_eq!(kinds, ["power_on"]);
    // Wire format v1, increasing seq, positions near the walk's centre.
    for pair in fixes.windows(2) {
        assert!(pair[1]["seq"].as_u64() > pair[0]["seq"].as_u64());
    }
    for f in &fixes {
        assert_eq!(f["v"], 1);
        assert!((f["lat"].as_f64().unwrap() - 51.5).abs() < 0.01, "{f}");
        assert!(f["at_ms"].as_i64().unwrap() > 1_700_000_000_000);
        assert_eq!(f["accuracy_m"], 8.0);
    }
}

/// Told a window, the tag holds its fixes and sends them as v2 batches; told none again, each
/// at once (and what it held goes at once).
#[tokio::test]
async fn a_window_makes_the_tag_send_batches() {
    let (pki, broker) = common::broker("tagsim-batch");
    let observer_id = pki.client(OPERATOR_CLIENT_ID).unwrap();
    let (observer, mut events) =
        common::connect(&broker.endpoint(), OPERATOR_CLIENT_ID, &observer_id)
            .await
            .unwrap();
    observer
        .subscribe("tags/+/fix", QoS::AtLeastOnce)
        .await
        .unwrap();
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = events.poll().await.unwrap() {
            break;
        }
    }
    // The command is retained, as the alert function publishes it: the tag reads it when it
    // subscribes, before its first fix.
    observer
        .publish(
            "tags/tag-batch/cmd",
            QoS::AtLeastOnce,
            true,
            br#"{"report_interval_s": 0.1, "batch_s": 0.45}"#.to_vec(),
        )
        .await
        .unwrap();
    let identity_pki = pki.clone();
    let config = SimConfig {
        endpoint: broker.endpoint(),
        tags: vec!["tag-batch".to_owned()],
        identity: Arc::new(move |tag| identity_pki.client(tag)),
        route: Route::Walk {
            lat: 51.5,
            lon: -0.12,
            radius_m: 500.0,
            speed_mps: 1.4,
        },
        report_interval: Duration::from_secs(60),
        max_fixes_per_tag: Some(20),
        duration: Duration::from_secs(30),
        accuracy_m: 8.0,
        events: false,
        seed: 7,
        progress: false,
        basic_ingest_rule: None,
    };
    let sim = tokio::spawn(tagsim::run(config));
    let mut seqs = Vec::new();
    let mut messages = 0;
    while seqs.len() < 20 {
        let event = tokio::time::timeout(Duration::from_secs(20), events.poll())
            .await
            .expect("messages keep coming")
            .unwrap();
        let Event::Incoming(Packet::Publish(p)) = event else {
            continue;
        };
        let body: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
        messages += 1;
        match body["v"].as_u64() {
            Some(2) => {
                let fixes = body["fixes"].as_array().unwrap();
                assert!(fixes.len() <= 5, "a window of 0.45 s holds 5 fixes: {body}");
                seqs.extend(fixes.iter().map(|f| f["seq"].as_u64().unwrap()));
            }
            _ => seqs.push(body["seq"].as_u64().unwrap()),
        }
    }
    let summary = sim.await.unwrap();
    assert_eq!((summary.fixes, summary.errors), (20, 0), "{summary}");
    assert!(summary.batches >= 3, "{summary}");
    assert!(messages <= 8, "20 fixes in {messages} messages");
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "every fix once, in order: {seqs:?}"
    );
}

#[test]
fn a_track_file_is_read_or_refused_with_the_line() {
    let dir = common::test_dir("track");
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.csv");
    std::fs::write(&good, "# lat,lon\n51.5,-0.12\n\n51.501, -0.121\n").unwrap();
    match Route::track_file(&good).unwrap() {
        Route::Track(points) => assert_eq!(points, [(51.5, -0.12), (51.501, -0.121)]),
        other => panic!("{other:?}"),
    }
    let bad = dir.join("bad.csv");
    std::fs::write(&bad, "51.5,-0.12\n91,0\n").unwrap();
    assert!(Route::track_file(&bad).unwrap_err().contains("bad.csv:2"));
}

#[tokio::test]
async fn many_tags_at_once_are_all_acknowledged() {
    let (pki, broker) = common::broker("tagsim-load");
    let config = SimConfig {
        endpoint: broker.endpoint(),
        tags: (1..=25).map(|i| format!("load-{i:03}")).collect(),
        identity: Arc::new(move |tag| pki.client(tag)),
        route: Route::Walk {
            lat: 40.0,
            lon: -3.7,
            radius_m: 1000.0,
            speed_mps: 10.0,
        },
        report_interval: Duration::from_millis(50),
        max_fixes_per_tag: Some(4),
        duration: Duration::from_secs(60),
        accuracy_m: 5.0,
        events: true,
        seed: 3,
        progress: false,
        basic_ingest_rule: None,
    };
    let summary = tagsim::run(config).await;
    assert_eq!(
        (
            summary.tags_connected,
            summary.fixes,
            summary.events,
            summary.errors
        ),
        (25, 100, 25, 0),
        "{summary}"
    );
    assert_eq!(summary.acked, 125, "{summary}");
}
