//! Pursuit mode in the alert function, on the in-memory ports: the tag and her device are
//! told to report faster when a zone opens and back to normal when all clear, once per
//! change; a failed publish is undone and reported; ingest's ask leads to one resend per
//! command, up to the cap, which tells operators; an operator's change ends a window at once.

use serde_json::json;
use vigil_alert::{Outcome, Ports, handle_event};
use vigil_aws::memory::{MemoryCommander, MemoryMac, MemoryNotifier, MemoryStore};
use vigil_aws::metrics::MemoryMetrics;
use vigil_aws::ports::{AdminStore, AuditLog, Commit, IngestStore, ReportingStore};
use vigil_core::events::{AlertBody, AlertEvent};
use vigil_core::fix::Fix;
use vigil_core::ingest::StateWrite;
use vigil_core::policy::OrderChange;
use vigil_core::reporting::{Ask, Commanded, MAX_ATTEMPTS, Reason, ReportingCommand, Window};
use vigil_core::state::{Cause, Transition, ZoneState};
use vigil_core::{
    AlertLevel, Assessment, DeviceId, OperatorKind, OrderId, ProtectionOrder, TagId, Urgency,
    ZoneId, ZoneKind,
};

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

type TestPorts = Ports<MemoryStore, MemoryNotifier, MemoryMac, MemoryMetrics, MemoryCommander>;

fn tag() -> TagId {
    TagId::new("t-1").unwrap()
}

fn order_id() -> OrderId {
    OrderId::new("o-1").unwrap()
}

fn device() -> DeviceId {
    DeviceId::new("dev-1").unwrap()
}

/// Ports with order o-1 on tag t-1; her device dev-1 when `with_device`.
async fn ports(with_device: bool) -> TestPorts {
    let mut order = json!({
        "order_id": "o-1",
        "tag_id": "t-1",
        "victim": {"victim_id": "v-1", "phone": "+447700900123", "language": "en"},
    });
    if with_device {
        order["victim_device"] = json!({"device_id": "dev-1"});
    }
    let order: ProtectionOrder = serde_json::from_value(order).unwrap();
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

/// Moves the home zone to `level` as ingest's commit does, with the tag's open mark.
async fn set_level(ports: &TestPorts, level: AlertLevel) {
    let home = ZoneId::new("home").unwrap();
    let key = home.clone();
    let rev = IngestStore::states(&ports.store, &order_id())
        .await
        .unwrap()
        .get(&home)
        .map_or(0, |r| r.rev);
    let open = level != AlertLevel::Clear;
    let commit = Commit {
        order_id: order_id(),
        tag_id: tag(),
        writes: vec![StateWrite {
            zone_id: home,
            expected_rev: rev,
            state: ZoneState {
                level,
                ..ZoneState::default()
            },
            pending: vec![],
        }],
        opened: if open { vec![key.clone()] } else { vec![] },
        closed: if open { vec![] } else { vec![key] },
    };
    ports.store.commit(&commit).await.unwrap();
}

fn change(rev: u64, from: AlertLevel, to: AlertLevel, at_s: i64) -> AlertEvent {
    let zone_id = ZoneId::new("home").unwrap();
    let at_ms = T0 + at_s * 1000;
    let cause = if to == AlertLevel::Clear {
        Cause::SustainedExit
    } else {
        Cause::Entered
    };
    AlertEvent {
        event_id: AlertEvent::zone_change_id(&order_id(), &zone_id, rev),
        order_id: order_id(),
        tag_id: tag(),
        at_ms,
        received_at_ms: at_ms,
        body: AlertBody::ZoneChange {
            zone_id: zone_id.clone(),
            zone_kind: ZoneKind::Home,
            assessment: Assessment {
                zone_id,
                in_force: true,
                entry: to,
                exit: to,
                distance_m: 300.0,
            },
            change: OrderChange {
                transition: Some(Transition {
                    from,
                    to,
                    cause,
                    at_ms,
                    late_by_ms: None,
                }),
                escalation: None,
                order_before: from,
                order_after: to,
                at_ms,
            },
            fix: Fix {
                tag_id: tag(),
                seq: rev,
                at_ms,
                lat: 51.5,
                lon: -0.14,
                accuracy_m: 10.0,
                speed_mps: None,
                heading_deg: None,
                battery_pct: None,
            },
            state_rev: rev,
        },
    }
}

fn ask(device: Commanded, ask: Ask, sent_at_ms: Option<i64>, received_at_ms: i64) -> AlertEvent {
    AlertEvent {
        event_id: AlertEvent::reporting_id(&device, received_at_ms),
        order_id: order_id(),
        tag_id: tag(),
        at_ms: received_at_ms,
        received_at_ms,
        body: AlertBody::Reporting {
            device,
            ask,
            sent_at_ms,
            window: None,
        },
    }
}

/// The commands published so far, as (topic, interval).
fn published(ports: &TestPorts) -> Vec<(String, u32)> {
    ports
        .commander
        .published()
        .into_iter()
        .map(|c| {
            let v: serde_json::Value = serde_json::from_slice(&c.payload).unwrap();
            (c.topic, v["report_interval_s"].as_u64().unwrap() as u32)
        })
        .collect()
}

async fn told(ports: &TestPorts, device: &Commanded) -> Option<ReportingCommand> {
    match device {
        Commanded::Tag(t) => ports.store.tag_reporting(t).await.unwrap().unwrap().command,
        Commanded::VictimDevice(d) => {
            ports
                .store
                .device_reporting(d)
                .await
                .unwrap()
                .unwrap()
                .command
        }
    }
}

async fn audit_kinds(ports: &TestPorts) -> Vec<String> {
    ports
        .store
        .read(&order_id())
        .await
        .unwrap()
        .iter()
        .map(|r| r.kind.clone())
        .collect()
}

#[tokio::test]
async fn warning_commands_pursuit_once_and_clear_restores_the_normal_rate() {
    use AlertLevel::*;
    let p = ports(true).await;
    set_level(&p, Warning).await;
    let out = handle_event(&change(1, Clear, Warning, 0), &p, T0 + 500)
        .await
        .unwrap();
    let Outcome::Handled { kinds, .. } = out else {
        panic!("handled")
    };
    assert!(kinds.contains(&"reporting_command".to_owned()), "{kinds:?}");
    assert_eq!(
        published(&p),
        [
            ("tags/t-1/cmd".to_owned(), 15),
            ("victims/dev-1/cmd".to_owned(), 15)
        ]
    );
    let op = p.notifier.operator_events();
    let last = op.last().unwrap();
    assert_eq!(last.commands.len(), 2);
    assert!(last.commands.iter().all(|c| c.reason == Reason::Pursuit));
    assert_eq!(
        audit_kinds(&p)
            .await
            .iter()
            .filter(|k| *k == "command_sent")
            .count(),
        2
    );
    // BREACH in the same episode: already told.
    set_level(&p, Breach).await;
    handle_event(&change(2, Warning, Breach, 60), &p, T0 + 60_500)
        .await
        .unwrap();
    assert_eq!(published(&p).len(), 2);
    // All clear: back to 60 s, both.
    set_level(&p, Clear).await;
    handle_event(&change(3, Breach, Clear, 600), &p, T0 + 600_500)
        .await
        .unwrap();
    assert_eq!(
        published(&p)[2..],
        [
            ("tags/t-1/cmd".to_owned(), 60),
            ("victims/dev-1/cmd".to_owned(), 60)
        ]
    );
    let t = told(&p, &Commanded::Tag(tag())).await.unwrap();
    assert_eq!((t.report_interval_s, t.pursuit, t.attempts), (60, false, 1));
    let d = told(&p, &Commanded::VictimDevice(device())).await.unwrap();
    assert_eq!((d.report_interval_s, d.order_id), (60, order_id()));
}

#[tokio::test]
async fn a_redriven_change_the_state_contradicts_commands_what_the_state_says() {
    use AlertLevel::*;
    let p = ports(false).await;
    // The zone is open again by the time an old all-clear is handled: stay in pursuit.
    set_level(&p, Warning).await;
    handle_event(&change(1, Clear, Warning, 0), &p, T0 + 500)
        .await
        .unwrap();
    handle_event(&change(3, Warning, Clear, 300), &p, T0 + 400_000)
        .await
        .unwrap();
    assert_eq!(published(&p), [("tags/t-1/cmd".to_owned(), 15)]);
}

#[tokio::test]
async fn a_failed_publish_is_undone_and_reported_and_the_event_still_handled() {
    use AlertLevel::*;
    let p = ports(false).await;
    set_level(&p, Warning).await;
    p.commander.fail_next(1);
    let out = handle_event(&change(1, Clear, Warning, 0), &p, T0 + 500).await;
    assert!(matches!(out, Ok(Outcome::Handled { .. })), "{out:?}");
    assert!(published(&p).is_empty());
    // Undone: ingest's check sees the open zone and no command, and asks.
    assert_eq!(told(&p, &Commanded::Tag(tag())).await, None);
    let op = p.notifier.operator_events();
    let failed = &op.last().unwrap().commands[0];
    assert!(failed.failed.as_deref().unwrap().contains("injected"));
    // The ask that follows commands it.
    let device = Commanded::Tag(tag());
    handle_event(
        &ask(device, Ask::Differs, None, T0 + 60_000),
        &p,
        T0 + 60_100,
    )
    .await
    .unwrap();
    assert_eq!(published(&p), [("tags/t-1/cmd".to_owned(), 15)]);
}

#[tokio::test]
async fn an_ignored_command_is_sent_again_once_per_ask_up_to_the_cap() {
    use AlertLevel::*;
    let p = ports(false).await;
    set_level(&p, Warning).await;
    handle_event(&change(1, Clear, Warning, 0), &p, T0)
        .await
        .unwrap();
    let device = Commanded::Tag(tag());
    let mut now = T0;
    for attempt in 2..=MAX_ATTEMPTS {
        let sent = told(&p, &device).await.unwrap().sent_at_ms;
        now += 120_000;
        // Two asks about the same command (two fixes before the alert function ran).
        for received in [now, now + 1] {
            handle_event(
                &ask(device.clone(), Ask::Ignored, Some(sent), received),
                &p,
                received + 100,
            )
            .await
            .unwrap();
        }
        assert_eq!(
            published(&p).len() as u32,
            attempt,
            "one publish per command"
        );
        assert_eq!(told(&p, &device).await.unwrap().attempts, attempt);
    }
    let last = p.notifier.operator_events().last().unwrap().clone();
    assert!(last.kinds.contains(&OperatorKind::DeviceIgnoresCommands));
    assert_eq!(last.urgency, Urgency::High);
    // Past the cap: nothing more.
    let sent = told(&p, &device).await.unwrap().sent_at_ms;
    handle_event(
        &ask(device, Ask::Ignored, Some(sent), now + 500_000),
        &p,
        now + 500_100,
    )
    .await
    .unwrap();
    assert_eq!(published(&p).len() as u32, MAX_ATTEMPTS);
}

#[tokio::test]
async fn an_ask_that_leads_to_nothing_tells_nobody() {
    let p = ports(false).await;
    let before = p.notifier.operator_events().len();
    let out = handle_event(
        &ask(Commanded::Tag(tag()), Ask::Differs, None, T0),
        &p,
        T0 + 100,
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        Outcome::Handled {
            victim: vigil_core::VictimDecision::Nothing,
            urgency: Urgency::Info,
            kinds: vec![]
        }
    );
    assert!(published(&p).is_empty());
    assert_eq!(p.notifier.operator_events().len(), before);
    assert!(audit_kinds(&p).await.is_empty());
}

#[tokio::test]
async fn a_device_another_handler_already_told_is_not_told_again() {
    use AlertLevel::*;
    let p = ports(false).await;
    set_level(&p, Warning).await;
    // Another handler (a concurrent delivery of another zone's change) told it first.
    let other = ReportingCommand {
        report_interval_s: 15,
        sent_at_ms: T0,
        attempts: 1,
        pursuit: true,
        order_id: order_id(),
        batch_s: 0,
        window_basis_ms: None,
    };
    p.store
        .save_command(&Commanded::Tag(tag()), Some(&other), None)
        .await
        .unwrap();
    handle_event(&change(1, Clear, Warning, 0), &p, T0 + 500)
        .await
        .unwrap();
    assert!(published(&p).is_empty());
}

fn window_ask(batch_s: u32, basis_ms: i64) -> AlertEvent {
    let device = Commanded::Tag(tag());
    AlertEvent {
        event_id: format!("{}:w{batch_s}", AlertEvent::reporting_id(&device, basis_ms)),
        body: AlertBody::Reporting {
            device: device.clone(),
            ask: Ask::Window,
            sent_at_ms: None,
            window: Some(Window { batch_s, basis_ms }),
        },
        ..ask(device, Ask::Window, None, basis_ms)
    }
}

/// The raw payloads published so far.
fn payloads(ports: &TestPorts) -> Vec<String> {
    ports
        .commander
        .published()
        .into_iter()
        .map(|c| String::from_utf8(c.payload).unwrap())
        .collect()
}

#[tokio::test]
async fn a_window_is_told_shrunk_at_once_never_grown_by_a_late_ask_and_ended_by_pursuit() {
    use AlertLevel::*;
    let p = ports(false).await;
    // Ingest judged 900 s allowed.
    handle_event(&window_ask(900, T0), &p, T0 + 500)
        .await
        .unwrap();
    assert_eq!(payloads(&p), [r#"{"report_interval_s":60,"batch_s":900}"#]);
    let t = told(&p, &Commanded::Tag(tag())).await.unwrap();
    assert_eq!((t.batch_s, t.window_basis_ms), (900, Some(T0)));
    assert!(audit_kinds(&p).await.contains(&"command_sent".to_owned()));
    // A later judgement: 120 s, told at once.
    handle_event(&window_ask(120, T0 + 600_000), &p, T0 + 600_500)
        .await
        .unwrap();
    // An older ask arriving late (judged before the shrink): never grows it back.
    handle_event(&window_ask(900, T0 + 300_000), &p, T0 + 601_000)
        .await
        .unwrap();
    assert_eq!(
        payloads(&p)[1..],
        [r#"{"report_interval_s":60,"batch_s":120}"#]
    );
    // A zone opens: pursuit, and no window.
    set_level(&p, Warning).await;
    handle_event(&change(1, Clear, Warning, 700), &p, T0 + 700_500)
        .await
        .unwrap();
    assert_eq!(
        payloads(&p)[2..],
        [r#"{"report_interval_s":15,"batch_s":0}"#]
    );
    // A window asked in pursuit: nothing.
    handle_event(&window_ask(900, T0 + 800_000), &p, T0 + 800_500)
        .await
        .unwrap();
    assert_eq!(payloads(&p).len(), 3);
}

/// The watchdog's ask after an operator changed order o-1 (armed for `minute`).
fn order_changed(minute: i64) -> AlertEvent {
    let device = Commanded::Tag(tag());
    AlertEvent {
        event_id: AlertEvent::order_changed_id(&order_id(), &tag(), minute),
        at_ms: minute * 60_000,
        ..ask(device, Ask::OrderChanged, None, minute * 60_000)
    }
}

#[tokio::test]
async fn an_operators_change_ends_the_window_at_once_and_a_late_older_ask_never_restarts_it() {
    let p = ports(false).await;
    handle_event(&window_ask(900, T0), &p, T0 + 500)
        .await
        .unwrap();
    assert_eq!(told(&p, &Commanded::Tag(tag())).await.unwrap().batch_s, 900);
    // Judged at T0 + 60 s from the zones before the change; its ask is still on the way.
    let stale = window_ask(600, T0 + 60_000);
    // An operator adds a zone; the watchdog queues the ask in the next minute.
    let minute = (T0 + 90_000) / 60_000 + 1;
    let changed = order_changed(minute);
    let outcome = handle_event(&changed, &p, minute * 60_000 + 2_000)
        .await
        .unwrap();
    let Outcome::Handled { kinds, .. } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(kinds, ["reporting_command"]);
    assert_eq!(
        payloads(&p)[1..],
        [r#"{"report_interval_s":60,"batch_s":0}"#]
    );
    let t = told(&p, &Commanded::Tag(tag())).await.unwrap();
    assert_eq!(
        (t.batch_s, t.window_basis_ms),
        (0, Some(minute * 60_000 + 2_000))
    );
    // Operators of the order hear of it, with why; its chain records the command.
    let event = p.notifier.operator_events().pop().unwrap();
    assert_eq!(event.commands.len(), 1);
    assert_eq!(event.commands[0].reason, Reason::OrderChanged);
    assert!(audit_kinds(&p).await.contains(&"command_sent".to_owned()));
    // The stale ask arrives: it never grows the window the change ended.
    handle_event(&stale, &p, minute * 60_000 + 3_000)
        .await
        .unwrap();
    assert_eq!(payloads(&p).len(), 2, "{:?}", payloads(&p));
    // The watchdog's rerun of the minute: the same ask, handled once.
    assert_eq!(
        handle_event(&changed, &p, minute * 60_000 + 4_000)
            .await
            .unwrap(),
        Outcome::Duplicate
    );
    assert_eq!(payloads(&p).len(), 2);
    // A window judged afresh after the change starts as usual.
    handle_event(
        &window_ask(900, minute * 60_000 + 60_000),
        &p,
        minute * 60_000 + 61_000,
    )
    .await
    .unwrap();
    assert_eq!(
        payloads(&p)[2..],
        [r#"{"report_interval_s":60,"batch_s":900}"#]
    );
}

#[tokio::test]
async fn an_operators_change_fences_a_tag_never_told_anything_and_keeps_pursuit() {
    use AlertLevel::*;
    let p = ports(false).await;
    // Never told anything: told the normal rate and no window, which fences older asks.
    handle_event(&order_changed(1), &p, T0).await.unwrap();
    assert_eq!(payloads(&p), [r#"{"report_interval_s":60,"batch_s":0}"#]);
    handle_event(&window_ask(900, T0 - 1_000), &p, T0 + 1_000)
        .await
        .unwrap();
    assert_eq!(payloads(&p).len(), 1, "a window judged before the change");
    // In pursuit, the change keeps the pursuit rate.
    set_level(&p, Warning).await;
    handle_event(&change(1, Clear, Warning, 700), &p, T0 + 700_500)
        .await
        .unwrap();
    handle_event(&order_changed(2), &p, T0 + 800_000)
        .await
        .unwrap();
    assert_eq!(
        payloads(&p)[1..],
        [
            r#"{"report_interval_s":15,"batch_s":0}"#,
            r#"{"report_interval_s":15,"batch_s":0}"#
        ]
    );
}
