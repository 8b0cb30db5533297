//! Alert policy, pure: who hears about a change, how urgently, and when a victim SMS is held
//! back.
//!
//! The victim's view is per order: the order's level is the highest level of its zones, and
//! the victim hears only about changes of that level.
//! - Up to WARNING or BREACH: an SMS of that level, unless the same level was the last thing
//!   sent within the cooldown (a breach that repeats is already in hand).
//! - Down from BREACH to WARNING: nothing (operators are told).
//! - Down to CLEAR after a sustained exit: "all clear", once, and only if a warning or breach
//!   was sent in this episode. Never held back: it always follows a danger message.
//! - Closed because a zone left force: nothing to the victim; operators are told with high
//!   urgency, so somebody calls the victim rather than an all-clear going out about a place no
//!   longer watched.
//! - A late fix beyond the order's late window: operators only.
//! - Strap tamper: victim SMS if the order says so; always urgent for operators.
//!
//! Operators get every change with full detail; escalations and tamper are urgent.

use crate::evaluate::AlertLevel;
use crate::fix::TagEventKind;
use crate::order::OrderPolicy;
use crate::state::{Cause, Escalation, Transition};
use serde::{Deserialize, Serialize};

/// The kinds of SMS a victim can receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VictimAlert {
    /// The offender may be nearby.
    Warning,
    /// The offender is inside a protected area.
    Breach,
    /// The danger has passed.
    AllClear,
    /// The offender's tag went silent near a protected area.
    TagSilent,
    /// The offender's tag strap was tampered with.
    Tamper,
}

/// How fast operators must act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    /// For the record.
    Info,
    /// Look at it soon.
    High,
    /// Act now.
    Urgent,
}

/// What the victim has been told for one order: the alert function's memory for cooldowns.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VictimNotices {
    /// The last SMS sent, and when (device time of its cause, ms).
    pub last: Option<(VictimAlert, i64)>,
    /// A warning or breach has been sent since the last all-clear.
    pub in_danger_episode: bool,
}

/// The outcome for the victim of one change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "decision", content = "alert")]
pub enum VictimDecision {
    /// Send this SMS.
    Send(VictimAlert),
    /// This SMS would be due, but the cooldown holds it back.
    HeldByCooldown(VictimAlert),
    /// Nothing for the victim.
    Nothing,
}

/// The policy's verdict on one change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// What the victim gets.
    pub victim: VictimDecision,
    /// How urgent it is for operators (who always get the event).
    pub urgency: Urgency,
}

/// A change of one zone's state, seen at the order level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderChange {
    /// The zone's level change, if any.
    pub transition: Option<Transition>,
    /// The zone's escalation, if any.
    pub escalation: Option<Escalation>,
    /// The order's level (highest over its zones) before.
    pub order_before: AlertLevel,
    /// The order's level after.
    pub order_after: AlertLevel,
    /// Device time of the fix behind it, ms.
    pub at_ms: i64,
}

fn send_unless_cooled(
    alert: VictimAlert,
    at_ms: i64,
    policy: &OrderPolicy,
    notices: &VictimNotices,
) -> VictimDecision {
    let cooldown_ms = policy.cooldown_s as i64 * 1000;
    match notices.last {
        Some((last, t)) if last == alert && (at_ms - t).abs() < cooldown_ms => {
            VictimDecision::HeldByCooldown(alert)
        }
        _ => VictimDecision::Send(alert),
    }
}

/// Decides who hears about a zone change; returns the decision and the victim's notices after.
pub fn decide(
    change: &OrderChange,
    policy: &OrderPolicy,
    notices: &VictimNotices,
) -> (Decision, VictimNotices) {
    let mut urgency = match change.escalation {
        Some(_) => Urgency::Urgent,
        None => Urgency::Info,
    };
    let mut victim = VictimDecision::Nothing;
    if let Some(t) = &change.transition {
        urgency = urgency.max(match (t.to, t.cause) {
            (AlertLevel::Breach, _) => Urgency::Urgent,
            (_, Cause::OutOfForce) if notices.in_danger_episode => Urgency::High,
            (AlertLevel::Warning, _) if t.from == AlertLevel::Clear => Urgency::High,
            _ => Urgency::Info,
        });
        let late_ok = t
            .late_by_ms
            .is_none_or(|late| late <= policy.late_fix_victim_window_s as i64 * 1000);
        let (before, after) = (change.order_before, change.order_after);
        victim = if after > before && late_ok {
            let alert = if after == AlertLevel::Breach {
                VictimAlert::Breach
            } else {
                VictimAlert::Warning
            };
            send_unless_cooled(alert, change.at_ms, policy, notices)
        } else if after == AlertLevel::Clear
            && before > AlertLevel::Clear
            && t.cause == Cause::SustainedExit
            && notices.in_danger_episode
        {
            VictimDecision::Send(VictimAlert::AllClear)
        } else {
            VictimDecision::Nothing
        };
    }
    let mut next = notices.clone();
    if let VictimDecision::Send(alert) = victim {
        next.last = Some((alert, change.at_ms));
        next.in_danger_episode = matches!(
            alert,
            VictimAlert::Warning | VictimAlert::Breach | VictimAlert::Tamper
        );
    }
    if change.order_after == AlertLevel::Clear
        && change
            .transition
            .as_ref()
            .is_some_and(|t| t.cause == Cause::OutOfForce)
    {
        next.in_danger_episode = false;
    }
    (Decision { victim, urgency }, next)
}

/// Decides who hears about a tag event.
pub fn decide_tag_event(
    kind: TagEventKind,
    at_ms: i64,
    policy: &OrderPolicy,
    notices: &VictimNotices,
) -> (Decision, VictimNotices) {
    let (urgency, alert) = match kind {
        TagEventKind::StrapTamper => (
            Urgency::Urgent,
            policy
                .notify_victim_on_tamper
                .then_some(VictimAlert::Tamper),
        ),
        TagEventKind::PowerOff | TagEventKind::NoGps | TagEventKind::BatteryLow => {
            (Urgency::High, None)
        }
        TagEventKind::StrapRestored | TagEventKind::PowerOn => (Urgency::Info, None),
    };
    let victim = alert.map_or(VictimDecision::Nothing, |a| {
        send_unless_cooled(a, at_ms, policy, notices)
    });
    let mut next = notices.clone();
    if let VictimDecision::Send(a) = victim {
        next.last = Some((a, at_ms));
        next.in_danger_episode = true;
    }
    (Decision { victim, urgency }, next)
}

/// Decides who hears that a tag has gone silent; `near_zone` says whether its last fix was
/// within warning distance of one of the order's zones, where silence is itself a danger.
pub fn decide_tag_silent(
    near_zone: bool,
    at_ms: i64,
    policy: &OrderPolicy,
    notices: &VictimNotices,
) -> (Decision, VictimNotices) {
    if !near_zone {
        return (
            Decision {
                victim: VictimDecision::Nothing,
                urgency: Urgency::High,
            },
            notices.clone(),
        );
    }
    let victim = send_unless_cooled(VictimAlert::TagSilent, at_ms, policy, notices);
    let mut next = notices.clone();
    if let VictimDecision::Send(a) = victim {
        next.last = Some((a, at_ms));
        next.in_danger_episode = true;
    }
    (
        Decision {
            victim,
            urgency: Urgency::Urgent,
        },
        next,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use AlertLevel::*;

    fn change(
        from: AlertLevel,
        to: AlertLevel,
        cause: Cause,
        before: AlertLevel,
        after: AlertLevel,
        at_s: i64,
    ) -> OrderChange {
        OrderChange {
            transition: Some(Transition {
                from,
                to,
                cause,
                at_ms: at_s * 1000,
                late_by_ms: None,
            }),
            escalation: None,
            order_before: before,
            order_after: after,
            at_ms: at_s * 1000,
        }
    }

    fn run(changes: &[OrderChange]) -> Vec<VictimDecision> {
        let policy = OrderPolicy::default();
        let mut n = VictimNotices::default();
        changes
            .iter()
            .map(|c| {
                let (d, next) = decide(c, &policy, &n);
                n = next;
                d.victim
            })
            .collect()
    }

    use VictimDecision::*;

    #[test]
    fn one_sms_per_real_change_in_danger() {
        let got = run(&[
            change(Clear, Warning, Cause::Entered, Clear, Warning, 0),
            change(Warning, Breach, Cause::Entered, Warning, Breach, 60),
            change(Breach, Warning, Cause::SustainedExit, Breach, Warning, 180),
            change(Warning, Clear, Cause::SustainedExit, Warning, Clear, 400),
        ]);
        assert_eq!(
            got,
            vec![
                Send(VictimAlert::Warning),
                Send(VictimAlert::Breach),
                Nothing,
                Send(VictimAlert::AllClear)
            ]
        );
    }

    #[test]
    fn repeated_breach_within_cooldown_is_held() {
        let got = run(&[
            change(Clear, Breach, Cause::Entered, Clear, Breach, 0),
            change(Breach, Warning, Cause::SustainedExit, Breach, Warning, 120),
            change(Warning, Breach, Cause::Entered, Warning, Breach, 200),
            change(Breach, Warning, Cause::SustainedExit, Breach, Warning, 400),
            change(Warning, Breach, Cause::Entered, Warning, Breach, 2000),
        ]);
        assert_eq!(got[2], HeldByCooldown(VictimAlert::Breach));
        assert_eq!(got[4], Send(VictimAlert::Breach), "cooldown over");
    }

    #[test]
    fn warning_after_all_clear_is_never_held() {
        let got = run(&[
            change(Clear, Warning, Cause::Entered, Clear, Warning, 0),
            change(Warning, Clear, Cause::SustainedExit, Warning, Clear, 200),
            change(Clear, Warning, Cause::Entered, Clear, Warning, 260),
        ]);
        assert_eq!(got[2], Send(VictimAlert::Warning));
    }

    #[test]
    fn zone_level_changes_under_a_higher_order_level_say_nothing() {
        // Work zone warns while home zone already breached: order level stays BREACH.
        let got = run(&[
            change(Clear, Breach, Cause::Entered, Clear, Breach, 0),
            change(Clear, Warning, Cause::Entered, Breach, Breach, 10),
            change(Warning, Clear, Cause::SustainedExit, Breach, Breach, 400),
        ]);
        assert_eq!(got, vec![Send(VictimAlert::Breach), Nothing, Nothing]);
    }

    #[test]
    fn no_all_clear_without_a_warning_and_none_on_out_of_force() {
        assert_eq!(
            run(&[change(
                Warning,
                Clear,
                Cause::SustainedExit,
                Warning,
                Clear,
                0
            )]),
            vec![Nothing]
        );
        let policy = OrderPolicy::default();
        let (_, n) = decide(
            &change(Clear, Breach, Cause::Entered, Clear, Breach, 0),
            &policy,
            &VictimNotices::default(),
        );
        let (d, n) = decide(
            &change(Breach, Clear, Cause::OutOfForce, Breach, Clear, 60),
            &policy,
            &n,
        );
        assert_eq!((d.victim, d.urgency), (Nothing, Urgency::High));
        assert!(!n.in_danger_episode);
    }

    #[test]
    fn late_fix_outside_window_goes_to_operators_only() {
        let policy = OrderPolicy::default();
        let mut c = change(Clear, Breach, Cause::LateFix, Clear, Breach, 0);
        c.transition.as_mut().unwrap().late_by_ms =
            Some(policy.late_fix_victim_window_s as i64 * 1000 + 1);
        let (d, _) = decide(&c, &policy, &VictimNotices::default());
        assert_eq!((d.victim, d.urgency), (Nothing, Urgency::Urgent));
        c.transition.as_mut().unwrap().late_by_ms = Some(1000);
        assert_eq!(
            decide(&c, &policy, &VictimNotices::default()).0.victim,
            Send(VictimAlert::Breach)
        );
    }

    #[test]
    fn escalation_is_urgent_for_operators_only() {
        let c = OrderChange {
            transition: None,
            escalation: Some(Escalation::Persisting),
            order_before: Breach,
            order_after: Breach,
            at_ms: 0,
        };
        let (d, _) = decide(&c, &OrderPolicy::default(), &VictimNotices::default());
        assert_eq!((d.victim, d.urgency), (Nothing, Urgency::Urgent));
    }

    #[test]
    fn tag_events() {
        let policy = OrderPolicy::default();
        let n = VictimNotices::default();
        let (d, n2) = decide_tag_event(TagEventKind::StrapTamper, 0, &policy, &n);
        assert_eq!(
            (d.victim, d.urgency),
            (Send(VictimAlert::Tamper), Urgency::Urgent)
        );
        assert_eq!(
            decide_tag_event(TagEventKind::StrapTamper, 60_000, &policy, &n2)
                .0
                .victim,
            HeldByCooldown(VictimAlert::Tamper)
        );
        let quiet = OrderPolicy {
            notify_victim_on_tamper: false,
            ..policy.clone()
        };
        assert_eq!(
            decide_tag_event(TagEventKind::StrapTamper, 0, &quiet, &n)
                .0
                .victim,
            Nothing
        );
        let (d, _) = decide_tag_event(TagEventKind::BatteryLow, 0, &policy, &n);
        assert_eq!((d.victim, d.urgency), (Nothing, Urgency::High));
        assert_eq!(
            decide_tag_silent(true, 0, &policy, &n).0.victim,
            Send(VictimAlert::TagSilent)
        );
        assert_eq!(decide_tag_silent(false, 0, &policy, &n).0.victim, Nothing);
    }
}
