//! Forces in the alert function (docs/FORCES.md): the case's force's operators' topic, its
//! SMS sender id, the force as a metrics dimension, and routing by place: an urgent event
//! inside another force's area also goes to that force, with nothing of the victim.

use serde_json::{Value, json};
use std::sync::Arc;
use vigil_alert::{Ports, handle_event};
use vigil_aws::memory::{MemoryCommander, MemoryMac, MemoryNotifier, MemoryStore};
use vigil_aws::metrics::MemoryMetrics;
use vigil_aws::ports::{AdminStore, AuditLog, Commit, IngestStore};
use vigil_core::events::{AlertBody, AlertEvent};
use vigil_core::fix::Fix;
use vigil_core::forces::Forces;
use vigil_core::ingest::StateWrite;
use vigil_core::policy::OrderChange;
use vigil_core::state::{Cause, Transition, ZoneState};
use vigil_core::{AlertLevel, Assessment, OrderId, ProtectionOrder, TagId, ZoneId, ZoneKind};

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const PHONE: &str = "+447700900123";
/// Westminster (the Met's area) and Reading (Thames Valley's).
const LONDON: (f64, f64) = (51.4995, -0.1248);
const READING: (f64, f64) = (51.4543, -0.9781);

type TestPorts = Ports<MemoryStore, MemoryNotifier, MemoryMac, MemoryMetrics, MemoryCommander>;

/// The shipped forces, each with an operators' topic as the CDK app adds it.
fn forces() -> Forces {
    let mut doc: Value = serde_json::from_str(include_str!("../../../infra/forces.json")).unwrap();
    for f in doc["forces"].as_array_mut().unwrap() {
        let id = f["id"].as_str().unwrap().to_owned();
        f["operators_topic_arn"] = json!(format!("arn:aws:sns:eu-west-2:1:vigil-t-operators-{id}"));
    }
    Forces::parse(&doc.to_string()).unwrap()
}

async fn ports(force: Option<&str>) -> TestPorts {
    let order: ProtectionOrder = serde_json::from_value(json!({
        "order_id": "o-1", "tag_id": "t-1", "force_id": force,
        "victim": {"victim_id": "v-1", "phone": PHONE, "language": "en"},
    }))
    .unwrap();
    let ports = Ports {
        store: MemoryStore::new(),
        notifier: MemoryNotifier::default(),
        destination_mac: MemoryMac::default(),
        metrics: MemoryMetrics::default(),
        commander: MemoryCommander::default(),
        sms_countries: vec!["GB".into()],
        forces: Some(Arc::new(forces())),
    };
    ports.store.put_order(&order).await.unwrap();
    ports
}

/// The home zone of o-1 at `level` now, as ingest's commit leaves it.
async fn at_level(ports: &TestPorts, level: AlertLevel) {
    let commit = Commit {
        order_id: OrderId::new("o-1").unwrap(),
        tag_id: TagId::new("t-1").unwrap(),
        writes: vec![StateWrite {
            zone_id: ZoneId::new("home").unwrap(),
            expected_rev: 0,
            state: ZoneState {
                level,
                ..ZoneState::default()
            },
            pending: vec![],
        }],
        opened: vec![],
        closed: vec![],
    };
    ports.store.commit(&commit).await.unwrap();
}

/// Home zone of o-1: CLEAR -> `to`, the fix at `at`.
fn change(to: AlertLevel, (lat, lon): (f64, f64)) -> AlertEvent {
    let order_id = OrderId::new("o-1").unwrap();
    let zone_id = ZoneId::new("home").unwrap();
    let tag_id = TagId::new("t-1").unwrap();
    AlertEvent {
        event_id: AlertEvent::zone_change_id(&order_id, &zone_id, 1),
        order_id,
        tag_id: tag_id.clone(),
        at_ms: T0,
        received_at_ms: T0,
        body: AlertBody::ZoneChange {
            zone_id: zone_id.clone(),
            zone_kind: ZoneKind::Home,
            assessment: Assessment {
                zone_id,
                in_force: true,
                entry: to,
                exit: to,
                distance_m: 40.0,
            },
            change: OrderChange {
                transition: Some(Transition {
                    from: AlertLevel::Clear,
                    to,
                    cause: Cause::Entered,
                    at_ms: T0,
                    late_by_ms: None,
                }),
                escalation: None,
                order_before: AlertLevel::Clear,
                order_after: to,
                at_ms: T0,
            },
            fix: Fix {
                tag_id,
                seq: 1,
                at_ms: T0,
                lat,
                lon,
                accuracy_m: 10.0,
                speed_mps: None,
                heading_deg: None,
                battery_pct: Some(80),
            },
            state_rev: 1,
        },
    }
}

#[tokio::test]
async fn a_breach_in_another_forces_area_reaches_its_operators_without_the_victims_data() {
    let p = ports(Some("met")).await;
    at_level(&p, AlertLevel::Breach).await;
    handle_event(&change(AlertLevel::Breach, READING), &p, T0 + 1_000)
        .await
        .unwrap();
    // The victim's SMS carries the Met's sender id.
    let sms = p.notifier.sms();
    assert_eq!(sms.len(), 1);
    assert_eq!(sms[0].sender_id.as_deref(), Some("MetVigil"));
    // The national topic has the event, with its force.
    let national = p.notifier.operator_events();
    assert_eq!(national.len(), 1);
    assert_eq!(national[0].force_id.as_ref().unwrap().as_str(), "met");
    // The Met's topic has its own case; Thames Valley's has what a response needs.
    let to_forces = p.notifier.force_messages();
    let audiences: Vec<(&str, &str)> = to_forces
        .iter()
        .map(|m| (m.force_id.as_str(), m.audience))
        .collect();
    assert_eq!(audiences, [("met", "case"), ("tvp", "responders")]);
    assert!(to_forces[0].topic_arn.ends_with("operators-met"));
    let routed = &to_forces[1];
    assert!(routed.topic_arn.ends_with("operators-tvp"));
    assert_eq!(routed.urgency, "urgent");
    let body: Value = serde_json::from_str(&routed.body).unwrap();
    assert_eq!(body["audience"], "responders");
    assert_eq!(body["case_force"], "met");
    assert_eq!(body["offender"]["lat"], READING.0);
    assert_eq!(body["tag_id"], "t-1");
    // Nothing of the victim: no order or zone id (they name her places), no phone, no zone.
    for secret in ["o-1", "home", "7700900123", "v-1", "zone_id", "radius"] {
        assert!(!routed.body.contains(secret), "{secret} in {}", routed.body);
        assert!(
            !routed.subject.contains(secret),
            "{secret} in {}",
            routed.subject
        );
    }
    // The routing is in the order's audit chain.
    let chain = p.store.read(&OrderId::new("o-1").unwrap()).await.unwrap();
    let told = chain
        .iter()
        .find(|r| r.kind == "operator_notified")
        .unwrap();
    assert_eq!(told.detail["routed_to_forces"][0]["force_id"], "tvp");
    assert_eq!(
        told.detail["routed_to_forces"][0]["reference"],
        body["reference"]
    );
    assert_eq!(body["reference"].as_str().unwrap().len(), 32);
    // Counted per force.
    assert_eq!(p.metrics.get("SmsSent", "met"), 1);
    assert_eq!(p.metrics.get("OperatorEvents", "met"), 1);
    assert_eq!(p.metrics.get("RoutedEvents", "tvp"), 1);
}

#[tokio::test]
async fn inside_its_own_area_or_below_urgent_nothing_is_routed() {
    // A breach in the Met's own area: the Met's topic only.
    let p = ports(Some("met")).await;
    at_level(&p, AlertLevel::Breach).await;
    handle_event(&change(AlertLevel::Breach, LONDON), &p, T0 + 1_000)
        .await
        .unwrap();
    let m = p.notifier.force_messages();
    let to: Vec<&str> = m.iter().map(|m| m.force_id.as_str()).collect();
    assert_eq!(to, ["met"]);
    // A warning in Thames Valley's area is not urgent: not routed.
    let p = ports(Some("met")).await;
    at_level(&p, AlertLevel::Warning).await;
    handle_event(&change(AlertLevel::Warning, READING), &p, T0 + 1_000)
        .await
        .unwrap();
    let m = p.notifier.force_messages();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].audience, "case");
}

#[tokio::test]
async fn an_order_without_a_force_still_protects_and_reaches_the_national_topic() {
    let p = ports(None).await;
    at_level(&p, AlertLevel::Breach).await;
    handle_event(&change(AlertLevel::Breach, READING), &p, T0 + 1_000)
        .await
        .unwrap();
    let sms = p.notifier.sms();
    assert_eq!(sms.len(), 1, "the victim is told");
    assert_eq!(sms[0].sender_id, None, "the deployment's sender");
    assert_eq!(p.notifier.operator_events().len(), 1);
    // Routed to the force whose area it is in: the police there can respond.
    let m = p.notifier.force_messages();
    assert_eq!(m.len(), 1);
    assert_eq!(
        (m[0].force_id.as_str(), m[0].audience),
        ("tvp", "responders")
    );
    assert_eq!(p.metrics.get("SmsSent", "none"), 1);
}
