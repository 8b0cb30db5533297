//! Escalation in the alert function (docs/WATCHDOG.md): an urgent operator event arms its
//! escalation; an escalation that comes back unacknowledged tells operators again and arms the
//! next; an acknowledgement (of the event, its zone or the order) stops it; nothing else is
//! armed. On the in-memory ports; the whole path through the local stack is the scenario
//! `unacknowledged_breach_renotified_until_acked`.

use serde_json::json;
use vigil_alert::{Outcome, Ports, handle_event};
use vigil_aws::memory::{MemoryCommander, MemoryMac, MemoryNotifier, MemoryStore};
use vigil_aws::metrics::MemoryMetrics;
use vigil_aws::ports::{AdminStore, AuditEntry, AuditLog, WatchStore};
use vigil_core::escalation::ACK_KIND;
use vigil_core::events::{AlertBody, AlertEvent};
use vigil_core::fix::TagEventKind;
use vigil_core::{OperatorKind, OrderId, ProtectionOrder, TagId, Urgency};

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z, a whole minute
const MIN: i64 = 60_000;

type TestPorts = Ports<MemoryStore, MemoryNotifier, MemoryMac, MemoryMetrics, MemoryCommander>;

async fn ports() -> TestPorts {
    let order: ProtectionOrder = serde_json::from_value(json!({
        "order_id": "o-1",
        "tag_id": "t-1",
        "victim": {"victim_id": "v-1", "phone": "+447700900123", "language": "en"},
        "policy": {"ack_within_s": 300, "renotify_every_s": 120},
    }))
    .unwrap();
    let ports = Ports {
        store: MemoryStore::new(),
        notifier: MemoryNotifier::default(),
        destination_mac: MemoryMac::default(),
        metrics: MemoryMetrics::default(),
        commander: MemoryCommander::default(),
        sms_countries: vec!["GB".into()],
        forces: None,
    };
    ports.store.put_order(&order).await.unwrap();
    ports
}

fn order() -> OrderId {
    OrderId::new("o-1").unwrap()
}

fn tag_event(kind: TagEventKind, seq: u64) -> AlertEvent {
    let tag_id = TagId::new("t-1").unwrap();
    let hash = format!("{seq:016x}");
    AlertEvent {
        event_id: AlertEvent::tag_event_id(&order(), &tag_id, seq, &hash),
        order_id: order(),
        tag_id,
        at_ms: T0,
        received_at_ms: T0,
        body: AlertBody::TagEvent {
            kind,
            seq,
            battery_pct: Some(50),
            content_hash: hash,
        },
    }
}

/// Every escalation armed in minutes `from..=to` (minutes after T0), as (minute, event).
async fn armed(ports: &TestPorts, from: i64, to: i64) -> Vec<(i64, AlertEvent)> {
    let mut out = Vec::new();
    for m in from..=to {
        for e in ports.store.due(T0 / MIN + m).await.unwrap().events {
            out.push((m, e));
        }
    }
    out
}

async fn ack(ports: &TestPorts, detail: serde_json::Value, at_ms: i64) {
    ports
        .store
        .append(
            &order(),
            &[AuditEntry {
                kind: ACK_KIND.into(),
                detail,
            }],
            at_ms,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn an_urgent_alert_arms_its_escalation_and_a_high_one_does_not() {
    let ports = ports().await;
    // Strap tamper: urgent. Handled 30 s after T0: due at 05:30, processed in minute 6.
    let tamper = tag_event(TagEventKind::StrapTamper, 7);
    handle_event(&tamper, &ports, T0 + 30_000).await.unwrap();
    let got = armed(&ports, 0, 20).await;
    assert_eq!(got.len(), 1, "{got:?}");
    let (minute, e) = &got[0];
    assert_eq!(*minute, 6);
    assert_eq!(e.event_id, format!("esc:{}:1", tamper.event_id));
    let AlertBody::Escalation {
        original_id,
        kind,
        zone_id,
        count,
    } = &e.body
    else {
        panic!("an escalation: {e:?}")
    };
    assert_eq!(original_id, &tamper.event_id);
    assert_eq!(kind, &OperatorKind::TagEvent(TagEventKind::StrapTamper));
    assert_eq!((zone_id, *count), (&None, 1));

    // A low battery: high, never escalated.
    let battery = tag_event(TagEventKind::BatteryLow, 8);
    handle_event(&battery, &ports, T0 + 40_000).await.unwrap();
    assert_eq!(armed(&ports, 0, 20).await.len(), 1);
}

#[tokio::test]
async fn unacknowledged_it_is_sent_again_at_intervals_until_acknowledged() {
    let ports = ports().await;
    let tamper = tag_event(TagEventKind::StrapTamper, 7);
    handle_event(&tamper, &ports, T0).await.unwrap();
    // Minute 5: the first escalation. Operators are told again, urgently, naming the event.
    let (_, first) = armed(&ports, 5, 5).await.pop().expect("armed at minute 5");
    let out = handle_event(&first, &ports, T0 + 5 * MIN + 2_000)
        .await
        .unwrap();
    assert!(
        matches!(&out, Outcome::Handled { urgency: Urgency::Urgent, kinds, .. } if kinds == &["unacknowledged"]),
        "{out:?}"
    );
    let ops = ports.notifier.operator_events();
    assert_eq!(ops.len(), 2);
    let again = &ops[1];
    assert_eq!(again.kind, OperatorKind::Unacknowledged);
    assert_eq!(again.urgency, Urgency::Urgent);
    assert_eq!(again.victim_sms, "none");
    let report = again.escalation.as_ref().expect("names the alert");
    assert_eq!(report.event_id, tamper.event_id);
    assert_eq!(report.count, 1);
    assert_eq!(
        ports.notifier.sms().len(),
        1,
        "the victim is not texted again"
    );

    // The next one renotify_every_s (2 min) later: due 07:02, minute 8.
    let next = armed(&ports, 6, 20).await;
    assert_eq!(next.len(), 1, "{next:?}");
    assert_eq!(next[0].0, 8);
    assert_eq!(next[0].1.event_id, format!("esc:{}:2", tamper.event_id));

    // Delivered twice (a rerun of the watchdog's minute): handled once.
    assert_eq!(
        handle_event(&first, &ports, T0 + 5 * MIN + 9_000)
            .await
            .unwrap(),
        Outcome::Duplicate
    );

    // Acknowledged (by the order) before the second: it stops, and nothing more is armed.
    ack(
        &ports,
        json!({"scope": "order", "operator": "op-1"}),
        T0 + 7 * MIN,
    )
    .await;
    let out = handle_event(&next[0].1, &ports, T0 + 8 * MIN)
        .await
        .unwrap();
    assert!(
        matches!(&out, Outcome::Handled { kinds, .. } if kinds.is_empty()),
        "{out:?}"
    );
    assert_eq!(ports.notifier.operator_events().len(), 2, "no third notice");
    assert!(armed(&ports, 9, 60).await.is_empty());
    assert_eq!(ports.metrics.get("EscalationStopped", "alert"), 1);

    // The audit chain holds the event, the escalation, both notices and the acknowledgement.
    let chain = ports.store.read(&order()).await.unwrap();
    let kinds: Vec<&str> = chain.iter().map(|r| r.kind.as_str()).collect();
    assert!(kinds.contains(&"escalation"), "{kinds:?}");
    assert_eq!(
        kinds.iter().filter(|k| **k == "operator_notified").count(),
        2
    );
    assert_eq!(kinds.last(), Some(&ACK_KIND));
}

#[tokio::test]
async fn an_ack_of_the_event_stops_it_and_an_ack_of_another_does_not() {
    let ports = ports().await;
    let first = tag_event(TagEventKind::StrapTamper, 7);
    let second = tag_event(TagEventKind::StrapTamper, 9);
    handle_event(&first, &ports, T0).await.unwrap();
    handle_event(&second, &ports, T0 + 1_000).await.unwrap();
    // Only the second is acknowledged (by the id its escalation carries).
    ack(
        &ports,
        json!({"event_id": format!("esc:{}:1", second.event_id), "operator": "op-1"}),
        T0 + MIN,
    )
    .await;
    // Handled at 00:00 and 00:01: due at 05:00 (minute 5) and 05:01 (minute 6).
    let due = armed(&ports, 5, 6).await;
    assert_eq!(
        due.iter().map(|(m, _)| *m).collect::<Vec<_>>(),
        [5, 6],
        "{due:?}"
    );
    for (_, e) in &due {
        handle_event(e, &ports, T0 + 5 * MIN).await.unwrap();
    }
    let again: Vec<String> = ports
        .notifier
        .operator_events()
        .into_iter()
        .filter(|o| o.kind == OperatorKind::Unacknowledged)
        .map(|o| o.escalation.unwrap().event_id)
        .collect();
    assert_eq!(again, std::slice::from_ref(&first.event_id));
}

#[tokio::test]
async fn an_escalation_for_an_order_that_does_not_exist_fails_and_sends_nothing() {
    let ports = ports().await;
    let mut tamper = tag_event(TagEventKind::StrapTamper, 7);
    handle_event(&tamper, &ports, T0).await.unwrap();
    let (_, mut e) = armed(&ports, 5, 5).await.pop().unwrap();
    tamper.order_id = OrderId::new("o-gone").unwrap();
    e.order_id = tamper.order_id.clone();
    e.event_id = format!("esc:{}:1", "other");
    let err = handle_event(&e, &ports, T0 + 5 * MIN).await.unwrap_err();
    assert_eq!(err.reason(), "unknown_order", "{err}");
    assert_eq!(ports.notifier.operator_events().len(), 1);
}
