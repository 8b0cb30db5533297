//! Alert policy, pure: who hears about a change, how urgently, and when a victim SMS is held
//! back.
//!
//! The victim's view is per order: the order's level is the highest level of its zones, and
//! the victim hears only about changes of that level.
//! - Up to WARNING or BREACH: an SMS of that level, unless the same level was the last thing
//!   sent within the cooldown (a breach that repeats is already in hand).
//! - Down from BREACH to WARNING: nothing (operators are told).
//! - Down to CLEAR after a sustained exit: "all clear", once, and only if a warning or breach
//!   was sent in this episode. Never held by the cooldown: it always follows a danger message.
//! - Closed because a zone left force: nothing to the victim; operators are told with high
//!   urgency, so somebody calls the victim rather than an all-clear going out about a place no
//!   longer watched.
//! - A late fix beyond the order's late window: operators only.
//! - Strap tamper: victim SMS if the order says so; always urgent for operators.
//!
//! Every SMS then passes the gates of currency and rate, judged on the server's clock and the
//! state at the time the alert function handles the event (a [`Moment`]), never the tag's:
//! - **late**: handled more than `max_event_age_s` after the server received its cause;
//! - **superseded**: the order's current level is not the level the message announces (an
//!   all-clear while the offender is near again, a breach after they left), or the victim was
//!   already told of a higher danger;
//! - **cooldown**: the same message within `cooldown_s` (server time);
//! - **cap**: `max_victim_sms_per_hour` / `max_victim_sms_per_day` reached; operators are
//!   paged (urgent) instead.
//!
//! Operators get every change with full detail, held messages with the reason; escalations
//! and tamper are urgent.

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
    /// Contact with the offender's tag is back, after she was told it was lost.
    ContactRestored,
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

/// What the victim has been told for one order: the alert function's memory for cooldowns,
/// the rate cap and the all-clear. Every time in it is the alert function's own clock (server
/// time), never a tag's.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct VictimNotices {
    /// The last SMS sent, and when (server time, ms).
    pub last: Option<(VictimAlert, i64)>,
    /// A warning, breach, tamper or silence notice has been sent since the last all-clear.
    pub in_danger_episode: bool,
    /// The danger level the victim was last told of: WARNING or BREACH after such an SMS,
    /// CLEAR after an all-clear (or before any SMS).
    pub told_level: AlertLevel,
    /// When each SMS of the last 24 hours was sent (server time, ms), oldest first: the rate
    /// cap counts them.
    pub sent_ms: Vec<i64>,
    /// She was told contact with the tag was lost, and not yet that it is back.
    #[serde(default)]
    pub told_silent: bool,
}

/// Why an SMS that the change would call for is not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hold {
    /// The same message was sent within the order's cooldown.
    Cooldown,
    /// The order reached its SMS rate cap; operators are paged instead.
    Cap,
    /// The event is older than the order's `max_event_age_s` (a backlog or a redrive).
    Late,
    /// The current state contradicts it (a newer change has happened since): an all-clear
    /// while the offender is near again, a breach after they left.
    Superseded,
    /// The victim's number is outside the countries this deployment may text.
    Destination,
}

/// The outcome for the victim of one change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "decision")]
pub enum VictimDecision {
    /// Send this SMS.
    Send {
        /// The message.
        alert: VictimAlert,
    },
    /// This SMS would be due, but is held back.
    Held {
        /// The message.
        alert: VictimAlert,
        /// Why.
        hold: Hold,
    },
    /// Nothing for the victim.
    Nothing,
}

impl VictimDecision {
    /// The SMS to send, if any.
    pub fn sent(&self) -> Option<VictimAlert> {
        match self {
            Self::Send { alert } => Some(*alert),
            _ => None,
        }
    }

    /// What operators are told the victim got: `none`, `sent:<alert>` or
    /// `held:<alert>:<reason>`.
    pub fn label(&self) -> String {
        match self {
            Self::Send { alert } => format!("sent:{}", alert.name()),
            Self::Held { alert, hold } => format!("held:{}:{}", alert.name(), hold.name()),
            Self::Nothing => "none".to_owned(),
        }
    }
}

impl VictimAlert {
    /// The snake_case name, as in metrics, labels and scenario files.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Warning => "warning",
            Self::Breach => "breach",
            Self::AllClear => "all_clear",
            Self::TagSilent => "tag_silent",
            Self::Tamper => "tamper",
            Self::ContactRestored => "contact_restored",
        }
    }
}

impl Hold {
    /// The snake_case name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Cooldown => "cooldown",
            Self::Cap => "cap",
            Self::Late => "late",
            Self::Superseded => "superseded",
            Self::Destination => "destination",
        }
    }
}

impl Urgency {
    /// The snake_case name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::High => "high",
            Self::Urgent => "urgent",
        }
    }
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

/// When and against what an event is judged: the alert function's clock, the server's
/// receive time of the event's cause, and, for zone changes, the order's level now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moment {
    /// The alert function's clock, Unix ms.
    pub now_ms: i64,
    /// When the server received the tag message behind the event, Unix ms.
    pub received_at_ms: i64,
    /// The order's level as its zone states stand now (for zone changes), read consistently.
    pub current_level: Option<AlertLevel>,
}

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

fn level_of(alert: VictimAlert) -> Option<AlertLevel> {
    match alert {
        VictimAlert::Warning => Some(AlertLevel::Warning),
        VictimAlert::Breach => Some(AlertLevel::Breach),
        VictimAlert::AllClear => Some(AlertLevel::Clear),
        VictimAlert::TagSilent | VictimAlert::Tamper | VictimAlert::ContactRestored => None,
    }
}

/// Applies the gates every victim SMS passes, in order: not late, not contradicted by the
/// current state, not a repeat within the cooldown (all-clears excepted: one always follows
/// a danger message), under the rate cap.
fn gate(
    alert: VictimAlert,
    policy: &OrderPolicy,
    notices: &VictimNotices,
    at: &Moment,
) -> VictimDecision {
    let held = |hold| VictimDecision::Held { alert, hold };
    if at.now_ms - at.received_at_ms > policy.max_event_age_s as i64 * 1000 {
        return held(Hold::Late);
    }
    if let (Some(level), Some(now)) = (level_of(alert), at.current_level)
        && level != now
    {
        return held(Hold::Superseded);
    }
    if let Some(level) = level_of(alert).filter(|l| *l > AlertLevel::Clear)
        && notices.told_level > level
    {
        // The victim already believes the danger is higher: a lower message would only be
        // the echo of an older change.
        return held(Hold::Superseded);
    }
    let cooldown_ms = policy.cooldown_s as i64 * 1000;
    if alert != VictimAlert::AllClear
        && let Some((last, t)) = notices.last
        && last == alert
        && at.now_ms - t < cooldown_ms
    {
        return held(Hold::Cooldown);
    }
    let in_window = |w: i64| {
        notices
            .sent_ms
            .iter()
            .filter(|&&t| at.now_ms - t < w)
            .count()
    };
    if in_window(HOUR_MS) >= policy.max_victim_sms_per_hour as usize
        || in_window(DAY_MS) >= policy.max_victim_sms_per_day as usize
    {
        return held(Hold::Cap);
    }
    VictimDecision::Send { alert }
}

/// The notices after `decision`.
fn after(decision: &VictimDecision, notices: &VictimNotices, now_ms: i64) -> VictimNotices {
    let mut next = notices.clone();
    if let VictimDecision::Send { alert } = *decision {
        next.last = Some((alert, now_ms));
        next.sent_ms.retain(|&t| now_ms - t < DAY_MS);
        next.sent_ms.push(now_ms);
        match alert {
            VictimAlert::AllClear => {
                next.in_danger_episode = false;
                next.told_level = AlertLevel::Clear;
            }
            VictimAlert::Warning | VictimAlert::Breach => {
                next.in_danger_episode = true;
                next.told_level = level_of(alert).unwrap_or_default();
            }
            VictimAlert::Tamper => next.in_danger_episode = true,
            VictimAlert::TagSilent => {
                next.in_danger_episode = true;
                next.told_silent = true;
            }
            VictimAlert::ContactRestored => next.told_silent = false,
        }
    }
    next
}

/// Operators are paged when the victim could not be texted for a reason someone must act on.
fn paged(urgency: Urgency, victim: &VictimDecision) -> Urgency {
    match victim {
        VictimDecision::Held {
            hold: Hold::Cap | Hold::Destination,
            ..
        } => Urgency::Urgent,
        _ => urgency,
    }
}

/// Decides who hears about a zone change; returns the decision and the victim's notices after.
pub fn decide(
    change: &OrderChange,
    policy: &OrderPolicy,
    notices: &VictimNotices,
    at: &Moment,
) -> (Decision, VictimNotices) {
    let mut urgency = match change.escalation {
        Some(_) => Urgency::Urgent,
        None => Urgency::Info,
    };
    let mut candidate = None;
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
        candidate = if after > before && late_ok {
            Some(if after == AlertLevel::Breach {
                VictimAlert::Breach
            } else {
                VictimAlert::Warning
            })
        } else if after == AlertLevel::Clear
            && before > AlertLevel::Clear
            && t.cause == Cause::SustainedExit
            && notices.in_danger_episode
        {
            Some(VictimAlert::AllClear)
        } else {
            None
        };
    }
    let victim = candidate.map_or(VictimDecision::Nothing, |a| gate(a, policy, notices, at));
    let mut next = after(&victim, notices, at.now_ms);
    if change.order_after == AlertLevel::Clear
        && change
            .transition
            .as_ref()
            .is_some_and(|t| t.cause == Cause::OutOfForce)
    {
        next.in_danger_episode = false;
        next.told_level = AlertLevel::Clear;
    }
    let urgency = paged(urgency, &victim);
    (Decision { victim, urgency }, next)
}

/// Decides who hears about a tag event.
pub fn decide_tag_event(
    kind: TagEventKind,
    policy: &OrderPolicy,
    notices: &VictimNotices,
    at: &Moment,
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
    let victim = alert.map_or(VictimDecision::Nothing, |a| gate(a, policy, notices, at));
    let next = after(&victim, notices, at.now_ms);
    let urgency = paged(urgency, &victim);
    (Decision { victim, urgency }, next)
}

/// Decides who hears that a tag has gone silent; `near_zone` says whether its last fix was
/// within warning distance of one of the order's zones, where silence is itself a danger.
pub fn decide_tag_silent(
    near_zone: bool,
    policy: &OrderPolicy,
    notices: &VictimNotices,
    at: &Moment,
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
    let victim = gate(VictimAlert::TagSilent, policy, notices, at);
    let next = after(&victim, notices, at.now_ms);
    (
        Decision {
            victim,
            urgency: Urgency::Urgent,
        },
        next,
    )
}

/// Decides who hears that contact with a tag is back: operators always (for the record); the
/// victim only if she was told it was lost (`contact_restored`, through the same gates).
pub fn decide_contact_restored(
    policy: &OrderPolicy,
    notices: &VictimNotices,
    at: &Moment,
) -> (Decision, VictimNotices) {
    if !notices.told_silent {
        return (
            Decision {
                victim: VictimDecision::Nothing,
                urgency: Urgency::Info,
            },
            notices.clone(),
        );
    }
    let victim = gate(VictimAlert::ContactRestored, policy, notices, at);
    let next = after(&victim, notices, at.now_ms);
    (
        Decision {
            victim,
            urgency: Urgency::Info,
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

    /// Handled at once, with the current state agreeing with the change.
    fn now(c: &OrderChange) -> Moment {
        Moment {
            now_ms: c.at_ms,
            received_at_ms: c.at_ms,
            current_level: Some(c.order_after),
        }
    }

    fn run(changes: &[OrderChange]) -> Vec<VictimDecision> {
        let policy = OrderPolicy::default();
        let mut n = VictimNotices::default();
        changes
            .iter()
            .map(|c| {
                let (d, next) = decide(c, &policy, &n, &now(c));
                n = next;
                d.victim
            })
            .collect()
    }

    fn send(alert: VictimAlert) -> VictimDecision {
        VictimDecision::Send { alert }
    }

    fn held(alert: VictimAlert, hold: Hold) -> VictimDecision {
        VictimDecision::Held { alert, hold }
    }

    use VictimDecision::Nothing;

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
                send(VictimAlert::Warning),
                send(VictimAlert::Breach),
                Nothing,
                send(VictimAlert::AllClear)
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
        assert_eq!(got[2], held(VictimAlert::Breach, Hold::Cooldown));
        assert_eq!(got[4], send(VictimAlert::Breach), "cooldown over");
    }

    #[test]
    fn warning_after_all_clear_is_never_held() {
        let got = run(&[
            change(Clear, Warning, Cause::Entered, Clear, Warning, 0),
            change(Warning, Clear, Cause::SustainedExit, Warning, Clear, 200),
            change(Clear, Warning, Cause::Entered, Clear, Warning, 260),
        ]);
        assert_eq!(got[2], send(VictimAlert::Warning));
    }

    #[test]
    fn zone_level_changes_under_a_higher_order_level_say_nothing() {
        // Work zone warns while home zone already breached: order level stays BREACH.
        let got = run(&[
            change(Clear, Breach, Cause::Entered, Clear, Breach, 0),
            change(Clear, Warning, Cause::Entered, Breach, Breach, 10),
            change(Warning, Clear, Cause::SustainedExit, Breach, Breach, 400),
        ]);
        assert_eq!(got, vec![send(VictimAlert::Breach), Nothing, Nothing]);
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
        let c = change(Clear, Breach, Cause::Entered, Clear, Breach, 0);
        let (_, n) = decide(&c, &policy, &VictimNotices::default(), &now(&c));
        let c = change(Breach, Clear, Cause::OutOfForce, Breach, Clear, 60);
        let (d, n) = decide(&c, &policy, &n, &now(&c));
        assert_eq!((d.victim, d.urgency), (Nothing, Urgency::High));
        assert!(!n.in_danger_episode);
        assert_eq!(n.told_level, Clear);
    }

    #[test]
    fn late_fix_outside_window_goes_to_operators_only() {
        let policy = OrderPolicy::default();
        let mut c = change(Clear, Breach, Cause::LateFix, Clear, Breach, 0);
        c.transition.as_mut().unwrap().late_by_ms =
            Some(policy.late_fix_victim_window_s as i64 * 1000 + 1);
        let (d, _) = decide(&c, &policy, &VictimNotices::default(), &now(&c));
        assert_eq!((d.victim, d.urgency), (Nothing, Urgency::Urgent));
        c.transition.as_mut().unwrap().late_by_ms = Some(1000);
        assert_eq!(
            decide(&c, &policy, &VictimNotices::default(), &now(&c))
                .0
                .victim,
            send(VictimAlert::Breach)
        );
    }

    #[test]
    fn a_stale_all_clear_never_reaches_the_victim() {
        // Warning sent; the all-clear event fails into the dead-letter queue; the offender
        // comes back (a newer warning is the state now); the all-clear is redriven.
        let policy = OrderPolicy::default();
        let w = change(Clear, Warning, Cause::Entered, Clear, Warning, 0);
        let (_, told) = decide(&w, &policy, &VictimNotices::default(), &now(&w));
        let clear = change(Warning, Clear, Cause::SustainedExit, Warning, Clear, 300);
        let redriven = Moment {
            now_ms: 360_000,
            received_at_ms: 300_000,
            current_level: Some(Warning),
        };
        let (d, after) = decide(&clear, &policy, &told, &redriven);
        assert_eq!(d.victim, held(VictimAlert::AllClear, Hold::Superseded));
        assert_eq!(after, told, "the victim's notices do not move");
        // Redriven an hour later while all is quiet: too old for the victim anyway.
        let much_later = Moment {
            now_ms: 300_000 + 3_600_000,
            received_at_ms: 300_000,
            current_level: Some(Clear),
        };
        assert_eq!(
            decide(&clear, &policy, &told, &much_later).0.victim,
            held(VictimAlert::AllClear, Hold::Late)
        );
    }

    #[test]
    fn a_stale_breach_or_warning_is_superseded() {
        let policy = OrderPolicy::default();
        let b = change(Warning, Breach, Cause::Entered, Warning, Breach, 0);
        let gone = Moment {
            now_ms: 200_000,
            received_at_ms: 0,
            current_level: Some(Warning),
        };
        assert_eq!(
            decide(&b, &policy, &VictimNotices::default(), &gone)
                .0
                .victim,
            held(VictimAlert::Breach, Hold::Superseded)
        );
        // A warning redriven after the victim was told of a breach: an echo.
        let told = VictimNotices {
            told_level: Breach,
            in_danger_episode: true,
            ..VictimNotices::default()
        };
        let w = change(Clear, Warning, Cause::Entered, Clear, Warning, 0);
        assert_eq!(
            decide(&w, &policy, &told, &now(&w)).0.victim,
            held(VictimAlert::Warning, Hold::Superseded)
        );
    }

    #[test]
    fn cooldown_runs_on_the_server_clock_not_the_tags() {
        // A tag backdates a burst: device times an hour apart, all received within a minute.
        let policy = OrderPolicy::default();
        let mut n = VictimNotices::default();
        let mut sent = 0;
        for i in 0..24 {
            let c = OrderChange {
                at_ms: i * 3_600_000,
                ..change(Clear, Breach, Cause::Entered, Clear, Breach, 0)
            };
            let at = Moment {
                now_ms: 1_000 * i,
                received_at_ms: 1_000 * i,
                current_level: Some(Breach),
            };
            let (d, next) = decide(&c, &policy, &n, &at);
            sent += usize::from(d.victim.sent().is_some());
            n = next;
        }
        assert_eq!(sent, 1);
    }

    #[test]
    fn the_rate_cap_holds_and_pages() {
        // Alternating warnings and all-clears, each a real change by the states, as fast as
        // a hostile tag can make them: at most the hourly cap reaches the victim.
        let policy = OrderPolicy::default();
        let mut n = VictimNotices::default();
        let mut sent = 0;
        let mut capped = 0;
        for i in 0..40i64 {
            let c = if i % 2 == 0 {
                change(Clear, Warning, Cause::Entered, Clear, Warning, i * 60)
            } else {
                change(Warning, Clear, Cause::SustainedExit, Warning, Clear, i * 60)
            };
            let (d, next) = decide(&c, &policy, &n, &now(&c));
            match d.victim {
                VictimDecision::Send { .. } => sent += 1,
                VictimDecision::Held {
                    hold: Hold::Cap, ..
                } => {
                    capped += 1;
                    assert_eq!(d.urgency, Urgency::Urgent, "operators are paged");
                }
                _ => {}
            }
            n = next;
        }
        assert_eq!(sent, policy.max_victim_sms_per_hour as usize);
        assert!(capped > 0);
        // An hour after the first SMS the window has room again.
        let c = change(Clear, Warning, Cause::Entered, Clear, Warning, 2 * 3600);
        let fresh = VictimNotices {
            told_level: Clear,
            in_danger_episode: false,
            ..n.clone()
        };
        assert_eq!(
            decide(&c, &policy, &fresh, &now(&c)).0.victim,
            send(VictimAlert::Warning)
        );
    }

    #[test]
    fn the_daily_cap_bounds_a_day() {
        let policy = OrderPolicy::default();
        let mut n = VictimNotices::default();
        let mut sent = 0;
        // One change every 11 minutes for a day: under the hourly cap, over the daily one.
        for i in 0..(24 * 60 / 11) {
            let c = if i % 2 == 0 {
                change(Clear, Warning, Cause::Entered, Clear, Warning, i * 660)
            } else {
                change(
                    Warning,
                    Clear,
                    Cause::SustainedExit,
                    Warning,
                    Clear,
                    i * 660,
                )
            };
            let (d, next) = decide(&c, &policy, &n, &now(&c));
            sent += usize::from(d.victim.sent().is_some());
            n = next;
        }
        assert_eq!(sent, policy.max_victim_sms_per_day as usize);
        assert!(n.sent_ms.len() <= policy.max_victim_sms_per_day as usize);
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
        let (d, _) = decide(
            &c,
            &OrderPolicy::default(),
            &VictimNotices::default(),
            &now(&c),
        );
        assert_eq!((d.victim, d.urgency), (Nothing, Urgency::Urgent));
    }

    #[test]
    fn tag_events() {
        let policy = OrderPolicy::default();
        let n = VictimNotices::default();
        let at = |s: i64| Moment {
            now_ms: s * 1000,
            received_at_ms: s * 1000,
            current_level: None,
        };
        let (d, n2) = decide_tag_event(TagEventKind::StrapTamper, &policy, &n, &at(0));
        assert_eq!(
            (d.victim, d.urgency),
            (send(VictimAlert::Tamper), Urgency::Urgent)
        );
        assert_eq!(
            decide_tag_event(TagEventKind::StrapTamper, &policy, &n2, &at(60))
                .0
                .victim,
            held(VictimAlert::Tamper, Hold::Cooldown)
        );
        let quiet = OrderPolicy {
            notify_victim_on_tamper: false,
            ..policy.clone()
        };
        assert_eq!(
            decide_tag_event(TagEventKind::StrapTamper, &quiet, &n, &at(0))
                .0
                .victim,
            Nothing
        );
        let (d, _) = decide_tag_event(TagEventKind::BatteryLow, &policy, &n, &at(0));
        assert_eq!((d.victim, d.urgency), (Nothing, Urgency::High));
        assert_eq!(
            decide_tag_silent(true, &policy, &n, &at(0)).0.victim,
            send(VictimAlert::TagSilent)
        );
        assert_eq!(
            decide_tag_silent(false, &policy, &n, &at(0)).0.victim,
            Nothing
        );
        // Contact back: the victim hears it only if she was told it was lost, once.
        let (_, told) = decide_tag_silent(true, &policy, &n, &at(0));
        assert!(told.told_silent);
        assert_eq!(
            decide_contact_restored(&policy, &n, &at(60)).0.victim,
            Nothing
        );
        let (d, after_back) = decide_contact_restored(&policy, &told, &at(600));
        assert_eq!(
            (d.victim, d.urgency),
            (send(VictimAlert::ContactRestored), Urgency::Info)
        );
        assert!(!after_back.told_silent);
        assert_eq!(
            decide_contact_restored(&policy, &after_back, &at(660))
                .0
                .victim,
            Nothing
        );
        // A tamper event handled long after it was received: operators only.
        let redriven = Moment {
            now_ms: 3_600_000,
            received_at_ms: 0,
            current_level: None,
        };
        assert_eq!(
            decide_tag_event(TagEventKind::StrapTamper, &policy, &n, &redriven)
                .0
                .victim,
            held(VictimAlert::Tamper, Hold::Late)
        );
    }

    #[test]
    fn labels() {
        assert_eq!(send(VictimAlert::AllClear).label(), "sent:all_clear");
        assert_eq!(
            held(VictimAlert::Breach, Hold::Cooldown).label(),
            "held:breach:cooldown"
        );
        assert_eq!(Nothing.label(), "none");
    }
}
