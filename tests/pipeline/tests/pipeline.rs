//! End to end on the emulator: fix -> ingest -> alert queue -> alert function -> SMS and the
//! operators' topic, read back from the emulator. The cases of the ingest and alert issue.

use vigil_aws::ports::{AdminStore, AuditLog, IngestStore};
use vigil_core::audit::{ChainError, verify_chain};
use vigil_core::{Fix, OrderId, TagId, ZoneId};
use vigil_ingest::Outcome;
use vigil_pipeline::Pipeline;
use vigil_testkit::{VICTIM_PHONE, fix_north, home_zone, order};

fn t0() -> i64 {
    // Device times near the wall clock, as a live tag's; the pipeline's clock follows them.
    chrono::Utc::now().timestamp_millis() - 3_600_000
}

async fn pipeline() -> Pipeline {
    let p = Pipeline::start().await;
    p.provision(&order(), &[home_zone()]).await;
    p
}

fn fix(t0: i64, seq: u64, at_s: i64, north_m: f64) -> Fix {
    fix_north(seq, t0 + at_s * 1000, north_m)
}

fn texts(sms: &[vigil_local::SentSms]) -> Vec<String> {
    sms.iter().map(|s| s.message.clone()).collect()
}

#[tokio::test]
async fn warning_breach_and_all_clear_reach_the_victim_once_each() {
    let p = pipeline().await;
    let t0 = t0();
    // Into the buffer: one warning SMS to the victim, one operator event.
    assert_eq!(
        p.publish_fix(&fix(t0, 1, 0, 400.0)).await,
        Outcome::Evaluated { events: 1 }
    );
    assert_eq!(p.drain().await, 1);
    let sms = p.sms().await;
    assert_eq!(sms.len(), 1);
    assert_eq!(sms[0].phone_number, VICTIM_PHONE);
    assert!(
        sms[0].message.contains("may be near your home") && sms[0].message.contains("999"),
        "{}",
        sms[0].message
    );
    let ops = p.operator_events().await;
    assert_eq!(ops.len(), 1);
    let op: serde_json::Value = serde_json::from_str(&ops[0].message).unwrap();
    assert_eq!(
        (op["kind"].as_str(), op["urgency"].as_str()),
        (Some("zone_warning"), Some("high"))
    );
    // Pursuit mode: the tag was told to report every 15 s, through the IoT data plane.
    assert_eq!(
        (
            op["commands"][0]["device"]["id"].as_str(),
            op["commands"][0]["report_interval_s"].as_u64(),
            op["commands"][0]["failed"].as_str()
        ),
        (Some("tag-1"), Some(15), None)
    );
    assert!(
        !ops[0].message.contains("7700900"),
        "operators' event never carries the victim's number"
    );
    // Inside: the breach SMS.
    p.publish_fix(&fix(t0, 2, 60, 20.0)).await;
    p.drain().await;
    // Away for 3 minutes (driving off at ~30 m/s): BREACH steps down, then all clear.
    for (i, north) in [1_500.0, 3_000.0, 4_500.0, 6_000.0, 7_500.0]
        .iter()
        .enumerate()
    {
        p.publish_fix(&fix(t0, 3 + i as u64, 120 + 60 * i as i64, *north))
            .await;
    }
    p.drain().await;
    let all = texts(&p.sms().await);
    assert_eq!(all.len(), 3, "{all:#?}");
    assert!(
        all[1].starts_with("Vigil URGENT")
            && all[1].contains("inside the protected area around your home")
    );
    assert!(all[2].starts_with("Vigil: all clear."));
    let kinds: Vec<String> = p
        .operator_events()
        .await
        .iter()
        .map(|e| {
            serde_json::from_str::<serde_json::Value>(&e.message).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    // The tag kept reporting once a minute in pursuit: two minutes after the command, ingest
    // asked and the command went out again (`reporting_command` on its own).
    assert_eq!(
        kinds,
        [
            "zone_warning",
            "zone_breach",
            "reporting_command",
            "zone_clear"
        ]
    );
}

#[tokio::test]
async fn the_same_fix_and_the_same_alert_event_twice_send_nothing_more() {
    let p = pipeline().await;
    let f = fix(t0(), 1, 0, 400.0);
    p.publish_fix(&f).await;
    assert_eq!(p.publish_fix(&f).await, Outcome::Duplicate);
    p.drain().await;
    assert_eq!(p.sms().await.len(), 1);
    let events = p.store.states(&OrderId::new("o1").unwrap()).await.unwrap();
    assert!(events[&ZoneId::new("home").unwrap()].pending.is_empty());
    // A tag event delivered twice (a redelivery): handled once.
    let seq5 = vigil_core::events::AlertEvent {
        event_id: "te:o1:tag-1:5:abcd".into(),
        order_id: OrderId::new("o1").unwrap(),
        tag_id: TagId::new("tag-1").unwrap(),
        at_ms: f.at_ms,
        received_at_ms: f.at_ms + 200,
        body: vigil_core::events::AlertBody::TagEvent {
            kind: vigil_core::TagEventKind::BatteryLow,
            seq: 5,
            battery_pct: None,
            content_hash: "abcd".into(),
        },
    };
    let now = p.now_ms();
    let first = vigil_alert::handle_event(&seq5, &p.alert, now)
        .await
        .unwrap();
    assert!(matches!(first, vigil_alert::Outcome::Handled { .. }));
    let second = vigil_alert::handle_event(&seq5, &p.alert, now)
        .await
        .unwrap();
    assert_eq!(second, vigil_alert::Outcome::Duplicate);
    // The zone change's id with other content (a forged event, or a claim planted for it):
    // not a duplicate. It is handled, and operators are told urgently.
    let forged = vigil_core::events::AlertEvent {
        event_id: vigil_core::events::AlertEvent::zone_change_id(
            &OrderId::new("o1").unwrap(),
            &ZoneId::new("home").unwrap(),
            1,
        ),
        ..seq5
    };
    match vigil_alert::handle_event(&forged, &p.alert, now)
        .await
        .unwrap()
    {
        vigil_alert::Outcome::Handled { kinds, urgency, .. } => {
            assert!(kinds.contains(&"claim_mismatch".to_owned()), "{kinds:?}");
            assert_eq!(urgency, vigil_core::Urgency::Urgent);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(p.sms().await.len(), 1, "a battery event texts nobody");
}

/// Two fixes of one tag ingested at once: both read the zone's state, one commit wins, the
/// other's conditional write fails and it judges again on the new state: no second change.
/// The loser may find the winner's outbox not yet cleared and queue it again (the outbox is
/// at least once: commit.rs), so the two invocations may report two events queued; they are
/// one event id, handled once: one operator event, one SMS.
#[tokio::test]
async fn concurrent_ingest_of_one_breach_sends_one_sms() {
    let p = pipeline().await;
    let t0 = t0();
    let (a, b) = (fix(t0, 1, 0, 0.0), fix(t0, 2, 1, 10.0));
    let (ra, rb) = tokio::join!(p.publish_fix(&a), p.publish_fix(&b));
    let queued: usize = [&ra, &rb]
        .iter()
        .map(|o| {
            if let Outcome::Evaluated { events } = o {
                *events
            } else {
                0
            }
        })
        .sum();
    assert!((1..=2).contains(&queued), "{ra:?} {rb:?}");
    p.drain().await;
    let ops: Vec<serde_json::Value> = p
        .operator_events()
        .await
        .iter()
        .map(|o| serde_json::from_str(&o.message).unwrap())
        .collect();
    assert_eq!(ops.len(), 1, "{ops:?}");
    assert_eq!(ops[0]["kind"], "zone_breach");
    assert_eq!(ops[0]["event_id"], "zc:o1:home:1", "one change: revision 1");
    let sms = p.sms().await;
    assert_eq!(sms.len(), 1);
    assert!(sms[0].message.starts_with("Vigil URGENT"));
}

#[tokio::test]
async fn malformed_payloads_are_quarantined_counted_and_send_nothing() {
    let p = pipeline().await;
    let t0 = t0();
    p.publish_fix(&fix(t0, 1, 0, 400.0)).await;
    p.drain().await;
    let before = p.store.states(&OrderId::new("o1").unwrap()).await.unwrap();
    let bad: [&[u8]; 4] = [
        b"not json at all",
        br#"{"v":1,"seq":2,"at_ms":0,"lat":"NaN","lon":0,"accuracy_m":5}"#,
        br#"{"v":1,"seq":3,"at_ms":0,"lat":51.5,"lon":-0.12,"accuracy_m":9000}"#,
        br#"{"v":3}"#,
    ];
    for payload in bad {
        assert!(matches!(
            p.publish_raw("tag-1", "fix", payload, t0 + 61_000).await,
            Outcome::Rejected { .. }
        ));
    }
    assert_eq!(p.ingest.metrics.total("MessageRejected"), 4);
    assert_eq!(p.store.quarantined("tag-1").await.unwrap().len(), 4);
    assert_eq!(
        p.store.states(&OrderId::new("o1").unwrap()).await.unwrap(),
        before
    );
    assert_eq!(p.drain().await, 0);
    assert_eq!(p.sms().await.len(), 1, "only the first warning");
}

#[tokio::test]
async fn the_audit_chain_of_ingest_and_alert_records_verifies_and_tampering_is_found() {
    let p = pipeline().await;
    let t0 = t0();
    p.publish_fix(&fix(t0, 1, 0, 400.0)).await;
    p.drain().await;
    p.publish_fix(&fix(t0, 2, 60, 0.0)).await;
    p.drain().await;
    let order = OrderId::new("o1").unwrap();
    let chain = p.store.read(&order).await.unwrap();
    let kinds: Vec<&str> = chain.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "zone_change",
            "sms_sent",
            "command_sent",
            "operator_notified",
            "zone_change",
            "sms_sent",
            "operator_notified"
        ]
    );
    verify_chain(&chain).unwrap();
    assert!(
        chain
            .iter()
            .all(|r| !r.detail.to_string().contains("7700900")),
        "no full phone number in the audit"
    );
    // Delete record 4 (the breach): the chain breaks there.
    p.store
        .client()
        .delete_item()
        .table_name(p.config.name("audit"))
        .key(
            "order_id",
            aws_sdk_dynamodb::types::AttributeValue::S("o1".into()),
        )
        .key(
            "seq",
            aws_sdk_dynamodb::types::AttributeValue::N("4".into()),
        )
        .send()
        .await
        .unwrap();
    let chain = p.store.read(&order).await.unwrap();
    assert_eq!(
        verify_chain(&chain),
        Err(ChainError::Gap {
            position: 4,
            seq: 5,
            expected: 4
        })
    );
    // The pipeline still works: the next append continues after the highest seq.
    let _ = p
        .store
        .load_context(&TagId::new("tag-1").unwrap(), &[])
        .await
        .unwrap();
}
