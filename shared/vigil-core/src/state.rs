//! The per (order, zone) state machine with hysteresis.
//!
//! Pure: `(state, observation) -> (state, step)`. Time is the fix's own device time.
//!
//! - A fix whose entry level is above the state raises it at once (a first fix inside is a
//!   BREACH).
//! - Lowering needs a run of fixes whose exit level is below the state, lasting
//!   [`BreachRules::step_down_after_ms`] (BREACH to WARNING) or [`BreachRules::clear_after_ms`]
//!   (to CLEAR). Any fix not clearly below breaks the run.
//! - A fix not newer than the newest applied (by device time, then seq) is late: it may raise
//!   the level (a buffered fix can reveal a breach that must not be missed) if it is newer than
//!   the start of the current level, but never lowers it nor counts towards a run. A fix
//!   delivered again, at any later point, therefore changes nothing: after it was first applied
//!   either the level stayed at or above its entry level, or a newer fix moved the level and
//!   the level's start is no older than it.
//! - A zone out of force (schedule, validity, order ended) closes an open alert at once, with
//!   its own cause, so the victim is not told "all clear" about a place no longer watched.
//! - BREACH lasting [`StepRules::escalate_breach_after_ms`] with the offender still inside on
//!   the current fix, or a new BREACH within [`StepRules::repeat_breach_window_ms`] of the
//!   previous one, escalates once.

use crate::evaluate::{AlertLevel, Assessment, BreachRules};
use crate::order::OrderPolicy;
use serde::{Deserialize, Serialize};

/// The state of one (order, zone) pair; `Default` is CLEAR with no history.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ZoneState {
    /// Current level.
    pub level: AlertLevel,
    /// Device time the current level began, ms.
    pub since_ms: Option<i64>,
    /// Device time and seq of the newest fix applied.
    pub newest: Option<(i64, u64)>,
    /// Start of the current run of fixes clearly below the level, ms.
    pub below_since_ms: Option<i64>,
    /// Highest exit level seen in that run: where the level will step down to.
    pub below_target: AlertLevel,
    /// Device time of the latest entry into BREACH, ms.
    pub last_breach_at_ms: Option<i64>,
    /// The current BREACH has already been escalated as persisting.
    pub escalated: bool,
}

/// Why a level changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// A fix's entry level was higher.
    Entered,
    /// A late fix (not newer than the newest applied) had a higher entry level.
    LateFix,
    /// Fixes stayed clearly below the level for the required time.
    SustainedExit,
    /// The zone or its order stopped being in force.
    OutOfForce,
}

/// A change of level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// Level before.
    pub from: AlertLevel,
    /// Level after.
    pub to: AlertLevel,
    /// Why.
    pub cause: Cause,
    /// Device time of the fix that caused it, ms.
    pub at_ms: i64,
    /// For a late fix: how much older it was than the newest applied, ms.
    pub late_by_ms: Option<i64>,
}

/// Why a BREACH goes to the operators as urgent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Escalation {
    /// The breach has lasted longer than the limit.
    Persisting,
    /// A new breach came soon after the previous one.
    Repeated,
}

/// What one observation did.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Step {
    /// The level change, if any.
    pub transition: Option<Transition>,
    /// The escalation, if any.
    pub escalation: Option<Escalation>,
}

/// One fix's assessment of a zone, with the fix's identity.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// Device time, ms.
    pub at_ms: i64,
    /// The tag's message counter.
    pub seq: u64,
    /// The assessment.
    pub assessment: Assessment,
}

/// Rules of the state machine: detection thresholds plus the order's escalation policy.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRules {
    /// Detection and hysteresis thresholds.
    pub breach: BreachRules,
    /// A breach lasting this long escalates, ms.
    pub escalate_breach_after_ms: i64,
    /// A breach this soon after the previous one escalates, ms.
    pub repeat_breach_window_ms: i64,
}

impl Default for StepRules {
    fn default() -> Self {
        Self::for_order(&BreachRules::default(), &OrderPolicy::default())
    }
}

impl StepRules {
    /// The rules for one order: the system's detection thresholds and the order's escalation.
    pub fn for_order(breach: &BreachRules, policy: &OrderPolicy) -> Self {
        Self {
            breach: breach.clone(),
            escalate_breach_after_ms: policy.escalate_breach_after_s as i64 * 1000,
            repeat_breach_window_ms: policy.repeat_breach_window_s as i64 * 1000,
        }
    }
}

fn raise(state: &mut ZoneState, to: AlertLevel, at_ms: i64, rules: &StepRules, step: &mut Step) {
    if to == AlertLevel::Breach {
        if state
            .last_breach_at_ms
            .is_some_and(|t| (at_ms - t).abs() <= rules.repeat_breach_window_ms)
        {
            step.escalation = Some(Escalation::Repeated);
        }
        state.last_breach_at_ms = Some(state.last_breach_at_ms.map_or(at_ms, |t| t.max(at_ms)));
        state.escalated = false;
    }
    state.level = to;
    state.since_ms = Some(at_ms);
    state.below_since_ms = None;
}

/// Applies one observation to a zone state; returns the new state and what happened.
pub fn step(state: &ZoneState, obs: &Observation, rules: &StepRules) -> (ZoneState, Step) {
    let mut next = state.clone();
    let mut step = Step::default();
    let a = &obs.assessment;
    let key = (obs.at_ms, obs.seq);
    if let Some(newest) = state.newest.filter(|&n| key <= n) {
        // A late fix older than the start of the current level was superseded by the fixes
        // that set it; this is also what makes a replayed fix a no-op.
        let superseded = state.since_ms.is_some_and(|since| obs.at_ms <= since);
        if key != newest && a.in_force && a.entry > state.level && !superseded {
            raise(&mut next, a.entry, obs.at_ms, rules, &mut step);
            step.transition = Some(Transition {
                from: state.level,
                to: a.entry,
                cause: Cause::LateFix,
                at_ms: obs.at_ms,
                late_by_ms: Some(newest.0 - obs.at_ms),
            });
        }
        return (next, step);
    }
    next.newest = Some(key);
    let change = |to, cause| Transition {
        from: state.level,
        to,
        cause,
        at_ms: obs.at_ms,
        late_by_ms: None,
    };

    if !a.in_force {
        if state.level != AlertLevel::Clear {
            next.level = AlertLevel::Clear;
            next.since_ms = Some(obs.at_ms);
            next.below_since_ms = None;
            next.escalated = false;
            step.transition = Some(change(AlertLevel::Clear, Cause::OutOfForce));
        }
        return (next, step);
    }

    if a.entry > state.level {
        raise(&mut next, a.entry, obs.at_ms, rules, &mut step);
        step.transition = Some(change(a.entry, Cause::Entered));
    } else if a.exit < state.level {
        let (since, target) = match state.below_since_ms {
            Some(since) => (since, state.below_target.max(a.exit)),
            None => (obs.at_ms, a.exit),
        };
        next.below_since_ms = Some(since);
        next.below_target = target;
        let needed = if target == AlertLevel::Clear {
            rules.breach.clear_after_ms
        } else {
            rules.breach.step_down_after_ms
        };
        if obs.at_ms - since >= needed {
            next.level = target;
            next.since_ms = Some(obs.at_ms);
            next.below_since_ms = None;
            step.transition = Some(change(target, Cause::SustainedExit));
        }
    } else {
        next.below_since_ms = None;
    }

    // Persisting means the offender is still inside now, not a breach held open by hysteresis
    // (or raised by an old, late fix) while current fixes show them leaving.
    if next.level == AlertLevel::Breach
        && a.entry == AlertLevel::Breach
        && !next.escalated
        && next
            .since_ms
            .is_some_and(|s| obs.at_ms - s >= rules.escalate_breach_after_ms)
    {
        next.escalated = true;
        step.escalation.get_or_insert(Escalation::Persisting);
    }
    (next, step)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ZoneId;
    use AlertLevel::*;

    fn obs(at_s: i64, seq: u64, entry: AlertLevel, exit: AlertLevel) -> Observation {
        Observation {
            at_ms: at_s * 1000,
            seq,
            assessment: Assessment {
                zone_id: ZoneId::new("z").unwrap(),
                in_force: true,
                entry,
                exit,
                distance_m: 0.0,
            },
        }
    }

    fn run(observations: &[Observation]) -> (ZoneState, Vec<Step>) {
        let rules = StepRules::default();
        let mut s = ZoneState::default();
        let mut steps = vec![];
        for o in observations {
            let (n, st) = step(&s, o, &rules);
            s = n;
            steps.push(st);
        }
        (s, steps)
    }

    fn levels(steps: &[Step]) -> Vec<(AlertLevel, Cause)> {
        steps
            .iter()
            .filter_map(|s| s.transition.as_ref().map(|t| (t.to, t.cause)))
            .collect()
    }

    #[test]
    fn first_fix_inside_is_a_breach() {
        let (s, steps) = run(&[obs(0, 1, Breach, Breach)]);
        assert_eq!(s.level, Breach);
        assert_eq!(levels(&steps), vec![(Breach, Cause::Entered)]);
    }

    #[test]
    fn approach_then_sustained_exit() {
        let mut o = vec![
            obs(0, 1, Clear, Clear),
            obs(60, 2, Warning, Warning),
            obs(120, 3, Breach, Breach),
        ];
        // Out of the zone but in the buffer: BREACH steps down after 60 s.
        o.push(obs(180, 4, Warning, Warning));
        o.push(obs(240, 5, Warning, Warning));
        // Clear of everything for 3 minutes.
        for i in 0..4 {
            o.push(obs(300 + 60 * i, 6 + i as u64, Clear, Clear));
        }
        let (s, steps) = run(&o);
        assert_eq!(
            levels(&steps),
            vec![
                (Warning, Cause::Entered),
                (Breach, Cause::Entered),
                (Warning, Cause::SustainedExit),
                (Clear, Cause::SustainedExit)
            ]
        );
        assert_eq!(s.level, Clear);
        assert_eq!(s.since_ms, Some(480_000));
    }

    #[test]
    fn a_single_fix_inside_the_exit_margin_breaks_the_run() {
        let (s, steps) = run(&[
            obs(0, 1, Warning, Warning),
            obs(60, 2, Clear, Clear),
            obs(120, 3, Clear, Clear),
            obs(180, 4, Clear, Warning), // jitter: not clearly out
            obs(240, 5, Clear, Clear),
            obs(300, 6, Clear, Clear),
            obs(400, 7, Clear, Clear),
        ]);
        assert_eq!(
            s.level, Warning,
            "run restarted at 240 s, needs until 420 s"
        );
        assert_eq!(levels(&steps), vec![(Warning, Cause::Entered)]);
        let (s, _) = step(&s, &obs(420, 8, Clear, Clear), &StepRules::default());
        assert_eq!(s.level, Clear);
    }

    #[test]
    fn duplicates_change_nothing() {
        let a = obs(0, 1, Breach, Breach);
        let (s1, _) = run(std::slice::from_ref(&a));
        let (s2, steps) = run(&[a.clone(), a.clone(), a]);
        assert_eq!(s1, s2);
        assert_eq!(levels(&steps).len(), 1);
    }

    #[test]
    fn late_fixes_raise_but_never_lower() {
        // A late BREACH fix (buffered by the tag) raises the level.
        let (s, steps) = run(&[obs(100, 5, Clear, Clear), obs(50, 4, Breach, Breach)]);
        assert_eq!(s.level, Breach);
        let t = steps[1].transition.as_ref().unwrap();
        assert_eq!((t.cause, t.late_by_ms), (Cause::LateFix, Some(50_000)));
        // Late CLEAR fixes neither lower the level nor count towards the exit run.
        let (s, steps) = run(&[
            obs(1000, 10, Breach, Breach),
            obs(10, 1, Clear, Clear),
            obs(500, 2, Clear, Clear),
            obs(999, 3, Clear, Clear),
        ]);
        assert_eq!(s.level, Breach);
        assert_eq!(s.below_since_ms, None);
        assert_eq!(levels(&steps).len(), 1);
    }

    #[test]
    fn a_replayed_old_fix_does_not_reopen_a_closed_alert() {
        let first = obs(0, 1, Warning, Warning);
        let mut o = vec![first.clone()];
        for i in 0..4 {
            o.push(obs(60 + 60 * i, 2 + i as u64, Clear, Clear));
        }
        let (closed, _) = run(&o);
        assert_eq!(closed.level, Clear);
        o.push(first);
        let (after, steps) = run(&o);
        assert_eq!(after, closed);
        assert!(steps.last().unwrap().transition.is_none());
    }

    #[test]
    fn out_of_force_closes_at_once() {
        let mut off = obs(60, 2, Clear, Clear);
        off.assessment.in_force = false;
        let (s, steps) = run(&[obs(0, 1, Breach, Breach), off]);
        assert_eq!(s.level, Clear);
        assert_eq!(
            levels(&steps),
            vec![(Breach, Cause::Entered), (Clear, Cause::OutOfForce)]
        );
    }

    #[test]
    fn persisting_breach_escalates_once() {
        let mut o = vec![];
        for i in 0..10 {
            o.push(obs(i * 60, i as u64, Breach, Breach));
        }
        let (_, steps) = run(&o);
        let esc: Vec<_> = steps
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.escalation.map(|e| (i, e)))
            .collect();
        assert_eq!(esc, vec![(5, Escalation::Persisting)]);
    }

    #[test]
    fn a_breach_held_open_by_hysteresis_does_not_escalate_as_persisting() {
        // Inside at 0, then just outside the zone (exit level BREACH: within accuracy + margin)
        // for ten minutes: the state stays BREACH, but the offender is not inside.
        let mut o = vec![obs(0, 1, Breach, Breach)];
        for i in 1..=10 {
            o.push(obs(60 * i, 1 + i as u64, Warning, Breach));
        }
        let (s, steps) = run(&o);
        assert_eq!(s.level, Breach);
        assert!(steps.iter().all(|s| s.escalation.is_none()));
        // Back inside after the limit: escalates then.
        let (_, st) = step(&s, &obs(660, 20, Breach, Breach), &StepRules::default());
        assert_eq!(st.escalation, Some(Escalation::Persisting));
    }

    #[test]
    fn repeated_breach_escalates() {
        let mut o = vec![obs(0, 1, Breach, Breach)];
        for i in 0..6 {
            o.push(obs(60 + 60 * i, 2 + i as u64, Clear, Clear));
        }
        o.push(obs(1200, 20, Breach, Breach));
        let (_, steps) = run(&o);
        assert_eq!(steps.last().unwrap().escalation, Some(Escalation::Repeated));
        assert_eq!(levels(&steps).last(), Some(&(Breach, Cause::Entered)));
    }
}
