//! Pursuit mode's check in ingest, on the in-memory ports: a tag in pursuit that keeps its old
//! rate is asked about once the wait is over; an obedient or quiet tag costs nothing.

mod common;

use common::{T0, TestPorts, ports_with};
use vigil_aws::ports::ReportingStore;
use vigil_core::events::{AlertBody, AlertEvent};
use vigil_core::fix::encode_fix;
use vigil_core::reporting::{Ask, Commanded, ReportingCommand};
use vigil_core::{Fix, OrderId, TagId};
use vigil_ingest::{Outcome, handle, rule_event};
use vigil_testkit::{fix_north, order};

async fn setup() -> TestPorts {
    ports_with(&order()).await
}

fn tag() -> Commanded {
    Commanded::Tag(TagId::new("tag-1").unwrap())
}

/// A fix `north_m` metres north of home's centre, `at_s` seconds after T0, received at once.
async fn send(p: &TestPorts, seq: u64, at_s: i64, north_m: f64) -> Outcome {
    let f: Fix = fix_north(seq, T0 + at_s * 1000, north_m);
    handle(rule_event("tag-1", "fix", &encode_fix(&f), f.at_ms), p)
        .await
        .unwrap()
}

fn asks(p: &TestPorts) -> Vec<(Ask, Option<i64>)> {
    p.queue
        .sent()
        .iter()
        .filter_map(|e: &AlertEvent| match &e.body {
            AlertBody::Reporting {
                ask, sent_at_ms, ..
            } => Some((*ask, *sent_at_ms)),
            _ => None,
        })
        .collect()
}

/// As the alert function would after the zone opened at `at_s`.
async fn told(p: &TestPorts, interval: u32, at_s: i64) {
    let command = ReportingCommand {
        report_interval_s: interval,
        sent_at_ms: T0 + at_s * 1000,
        attempts: 1,
        pursuit: interval == 15,
        order_id: OrderId::new("o1").unwrap(),
        batch_s: 0,
        window_basis_ms: None,
    };
    let before = p.store.tag_reporting(&TagId::new("tag-1").unwrap()).await;
    let before = before.unwrap().unwrap().command;
    p.store
        .save_command(&tag(), Some(&command), before.as_ref())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_quiet_tag_at_its_normal_rate_is_never_asked_about() {
    let p = setup().await;
    for i in 0..5 {
        assert_eq!(
            send(&p, i + 1, i as i64 * 60, 5_000.0).await,
            Outcome::Quiet
        );
    }
    assert!(p.queue.sent().is_empty());
}

#[tokio::test]
async fn a_tag_in_pursuit_keeping_its_old_rate_is_asked_about_after_the_wait() {
    let p = setup().await;
    // Warning at t=0: the zone change goes to the alert function, no ask.
    send(&p, 1, 0, 300.0).await;
    assert!(asks(&p).is_empty());
    told(&p, 15, 0).await;
    // It keeps reporting every minute: within two minutes of the command, nothing.
    send(&p, 2, 60, 300.0).await;
    assert!(asks(&p).is_empty());
    // At 120 s the one-minute gap contradicts 15 s.
    send(&p, 3, 120, 300.0).await;
    assert_eq!(asks(&p), [(Ask::Ignored, Some(T0))]);
}

#[tokio::test]
async fn an_obedient_tag_in_pursuit_is_not_asked_about() {
    let p = setup().await;
    send(&p, 1, 0, 300.0).await;
    told(&p, 15, 0).await;
    for i in 1..=12 {
        send(&p, i + 1, 60 + i as i64 * 15, 300.0).await;
    }
    assert!(asks(&p).is_empty(), "{:?}", asks(&p));
}

#[tokio::test]
async fn a_lost_command_is_asked_for_on_the_next_fix() {
    let p = setup().await;
    // The zone opened, but no command was kept (the publish failed and was undone).
    send(&p, 1, 0, 300.0).await;
    send(&p, 2, 60, 300.0).await;
    assert_eq!(asks(&p), [(Ask::Differs, None)]);
}
