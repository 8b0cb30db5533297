//! Property tests of what reaches a victim, and of the wire format.
//!
//! - No message that the current state contradicts reaches a victim: whatever the sequence of
//!   changes, the order in which they are handled, and the level when each is handled, a
//!   warning or breach SMS goes out only while the order is at that level, and an all-clear
//!   only while it is CLEAR.
//! - The tag's clock never decides how often a victim is texted: whatever device times a tag
//!   sends, the SMS of any rolling hour of server time stay within the order's cap, and the
//!   same message is never repeated within the cooldown.
//! - The wire format round-trips: `parse(encode(x)) == x` for every valid fix and event, and
//!   the examples in docs/WIRE_FORMAT.md parse and re-encode to themselves.

use proptest::prelude::*;
use vigil_core::evaluate::AlertLevel;
use vigil_core::fix::{
    encode_batch, encode_event, encode_fix, parse_event, parse_fix, parse_fixes,
};
use vigil_core::policy::{Moment, OrderChange, VictimNotices, decide, decide_tag_event};
use vigil_core::state::{Cause, Transition};
use vigil_core::{Fix, OrderPolicy, TagEvent, TagEventKind, TagId, ValidationLimits, VictimAlert};

fn level(i: u8) -> AlertLevel {
    match i % 3 {
        0 => AlertLevel::Clear,
        1 => AlertLevel::Warning,
        _ => AlertLevel::Breach,
    }
}

fn cause(i: u8) -> Cause {
    match i % 4 {
        0 => Cause::Entered,
        1 => Cause::LateFix,
        2 => Cause::SustainedExit,
        _ => Cause::OutOfForce,
    }
}

/// One handled change: (from, to, cause, order before, order after, level when handled,
/// device time offset, server time step).
type Step = (u8, u8, u8, u8, u8, u8, i64, i64);

fn any_step() -> impl Strategy<Value = Step> {
    (
        0u8..3,
        0u8..3,
        0u8..4,
        0u8..3,
        0u8..3,
        0u8..3,
        -86_400_000i64..86_400_000,
        0i64..600_000,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn no_sms_contradicts_the_state_when_handled(steps in prop::collection::vec(any_step(), 1..40)) {
        let policy = OrderPolicy::default();
        let mut notices = VictimNotices::default();
        let mut now_ms = 1_000_000_000_000i64;
        for (from, to, c, before, after, current, device_offset, server_step) in steps {
            now_ms += server_step;
            let change = OrderChange {
                transition: Some(Transition {
                    from: level(from),
                    to: level(to),
                    cause: cause(c),
                    at_ms: now_ms + device_offset,
                    late_by_ms: None,
                }),
                escalation: None,
                order_before: level(before),
                order_after: level(after),
                at_ms: now_ms + device_offset,
            };
            let at = Moment { now_ms, received_at_ms: now_ms - server_step / 2, current_level: Some(level(current)) };
            let (d, next) = decide(&change, &policy, &notices, &at);
            match d.victim.sent() {
                Some(VictimAlert::Warning) => prop_assert_eq!(level(current), AlertLevel::Warning),
                Some(VictimAlert::Breach) => prop_assert_eq!(level(current), AlertLevel::Breach),
                Some(VictimAlert::AllClear) => prop_assert_eq!(level(current), AlertLevel::Clear),
                _ => {}
            }
            notices = next;
        }
    }

    #[test]
    fn device_time_never_decides_how_often_a_victim_is_texted(
        steps in prop::collection::vec((any_step(), 0u8..2), 1..80),
    ) {
        let policy = OrderPolicy::default();
        let mut notices = VictimNotices::default();
        let mut now_ms = 1_000_000_000_000i64;
        let mut sent: Vec<(i64, VictimAlert)> = Vec::new();
        for ((from, to, c, before, after, _, device_offset, server_step), tamper) in steps {
            // A hostile tag: server time barely moves, device time jumps anywhere.
            now_ms += server_step / 50;
            let at = Moment { now_ms, received_at_ms: now_ms, current_level: Some(level(after)) };
            let (d, next) = if tamper == 1 {
                decide_tag_event(TagEventKind::StrapTamper, &policy, &notices, &at)
            } else {
                let change = OrderChange {
                    transition: Some(Transition {
                        from: level(from),
                        to: level(to),
                        cause: cause(c),
                        at_ms: now_ms + device_offset,
                        late_by_ms: None,
                    }),
                    escalation: None,
                    order_before: level(before),
                    order_after: level(after),
                    at_ms: now_ms + device_offset,
                };
                decide(&change, &policy, &notices, &at)
            };
            if let Some(alert) = d.victim.sent() {
                sent.push((now_ms, alert));
            }
            notices = next;
        }
        for (i, (t, alert)) in sent.iter().enumerate() {
            let in_hour = sent.iter().filter(|(u, _)| u - t >= 0 && u - t < 3_600_000).count();
            prop_assert!(in_hour <= policy.max_victim_sms_per_hour as usize);
            // The next SMS, if it repeats this one, comes only after the cooldown (the cooldown
            // is about repeats in a row; all-clears are never held by it).
            if *alert != VictimAlert::AllClear
                && let Some((u, next)) = sent.get(i + 1)
                && next == alert
            {
                prop_assert!(u - t >= policy.cooldown_s as i64 * 1000);
            }
        }
    }

    #[test]
    fn fixes_round_trip_through_the_wire(
        seq in any::<u64>(),
        at_ms in 0i64..4_000_000_000_000,
        lat in -90.0f64..=90.0,
        lon in -180.0f64..=180.0,
        accuracy_m in 0.0f64..=250.0,
        speed_mps in prop::option::of(0.0f64..=70.0),
        heading_deg in prop::option::of(0.0f64..=360.0),
        battery_pct in prop::option::of(0u8..=100),
    ) {
        let tag = TagId::new("tag-1").unwrap();
        let fix = Fix { tag_id: tag.clone(), seq, at_ms, lat, lon, accuracy_m, speed_mps, heading_deg, battery_pct };
        let back = parse_fix(&encode_fix(&fix), &tag, at_ms, &ValidationLimits::default()).unwrap();
        prop_assert_eq!(&back, &fix);
        prop_assert_eq!(back.content_hash(), fix.content_hash());
    }

    #[test]
    fn events_round_trip_through_the_wire(
        seq in any::<u64>(),
        at_ms in 0i64..4_000_000_000_000,
        kind in 0usize..6,
        battery_pct in prop::option::of(0u8..=100),
    ) {
        let tag = TagId::new("tag-1").unwrap();
        let event = TagEvent { tag_id: tag.clone(), seq, at_ms, kind: TagEventKind::ALL[kind], battery_pct };
        let back = parse_event(&encode_event(&event), &tag, at_ms, &ValidationLimits::default()).unwrap();
        prop_assert_eq!(back, event);
    }
}

/// The ```json blocks of docs/WIRE_FORMAT.md, in order.
fn documented_examples() -> Vec<String> {
    let doc = include_str!("../../../docs/WIRE_FORMAT.md");
    doc.split("```json")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap_or("").trim().to_owned())
        .collect()
}

#[test]
fn the_documented_examples_are_what_the_code_reads_and_writes() {
    let examples = documented_examples();
    assert!(examples.len() >= 3, "docs/WIRE_FORMAT.md lost its examples");
    let tag = TagId::new("tag-0042").unwrap();
    let limits = ValidationLimits::default();
    let as_value = |bytes: &[u8]| serde_json::from_slice::<serde_json::Value>(bytes).unwrap();
    let fix_doc = examples[0].as_bytes();
    let at = as_value(fix_doc)["at_ms"].as_i64().unwrap();
    let fix = parse_fix(fix_doc, &tag, at, &limits).unwrap();
    assert_eq!(as_value(&encode_fix(&fix)), as_value(fix_doc));
    let batch_doc = examples[1].as_bytes();
    let at = as_value(batch_doc)["fixes"][1]["at_ms"].as_i64().unwrap();
    let fixes: Vec<_> = parse_fixes(batch_doc, &tag, at, &limits)
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(fixes.len(), 2);
    assert_eq!(as_value(&encode_batch(&fixes)), as_value(batch_doc));
    let event_doc = examples[2].as_bytes();
    let at = as_value(event_doc)["at_ms"].as_i64().unwrap();
    let event = parse_event(event_doc, &tag, at, &limits).unwrap();
    assert_eq!(as_value(&encode_event(&event)), as_value(event_doc));
}
