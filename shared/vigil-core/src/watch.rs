//! One order's watch: zone state machines, the order's level and the alert policy together.
//!
//! The ingest function runs [`apply_fix`] (through [`crate::ingest::plan_order`]: states and
//! changes, no policy); the alert function runs [`crate::policy::decide`] on each change with
//! the victim's notices. [`OrderWatch`] does both in one place for the core's own property
//! tests; everything else (the simulator, the demo) runs the functions themselves.

use crate::evaluate::{AlertLevel, Assessment, BreachRules, assess};
use crate::fix::{Fix, TagEvent};
use crate::ids::ZoneId;
use crate::messages::render_for_order;
use crate::order::{OrderTerms, ProtectionOrder};
use crate::policy::{Decision, Moment, OrderChange, VictimNotices, decide, decide_tag_event};
use crate::state::{Observation, StepRules, ZoneState, step};
use crate::zone::{Zone, ZoneKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A change of one zone of an order, caused by one fix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZoneChange {
    /// The zone.
    pub zone_id: ZoneId,
    /// What the zone protects.
    pub zone_kind: ZoneKind,
    /// How the fix was judged against it.
    pub assessment: Assessment,
    /// The change, with the order's level before and after.
    pub change: OrderChange,
}

/// The order's level: the highest of its zones' levels.
pub fn order_level(states: &BTreeMap<ZoneId, ZoneState>) -> AlertLevel {
    states.values().map(|s| s.level).max().unwrap_or_default()
}

/// Moves the order's zone states with one fix; returns the changes, in zone id order.
///
/// `zones` must hold every zone of the order found near the fix and every zone whose state is
/// not CLEAR (see [`open_zones`]), so that an open alert can close. Zones that do not protect
/// this order are ignored.
///
/// `newest_seen` is the device time and seq of the tag's newest fix applied before this one
/// (its last-seen record), `None` when there is none. A fix not newer than it is late for every
/// zone, including zones that the newer fixes never came near and so never stepped: judged per
/// zone, a buffered fix for such a zone would count as fresh, text the victim about a stale
/// position however old it is, and let later late fixes lower the level.
pub fn apply_fix(
    states: &mut BTreeMap<ZoneId, ZoneState>,
    newest_seen: Option<(i64, u64)>,
    order: &OrderTerms,
    zones: &[&Zone],
    fix: &Fix,
    breach: &BreachRules,
) -> Vec<ZoneChange> {
    let rules = &StepRules::for_order(breach, &order.policy);
    let order_in_force = order.in_force(fix.at_ms);
    let mut zones: Vec<&Zone> = zones
        .iter()
        .copied()
        .filter(|z| z.order_id() == &order.order_id)
        .collect();
    zones.sort_by(|a, b| a.id().cmp(b.id()));
    zones.dedup_by(|a, b| a.id() == b.id());
    let mut changes = Vec::new();
    for zone in zones {
        let assessment = assess(fix, zone, order_in_force, &rules.breach);
        let before = order_level(states);
        let mut state = states.get(zone.id()).cloned().unwrap_or_default();
        // Every fix of the tag reached this zone's state, if only as CLEAR far away.
        state.newest = state.newest.max(newest_seen);
        let obs = Observation {
            at_ms: fix.at_ms,
            seq: fix.seq,
            assessment: assessment.clone(),
        };
        let (next, step) = step(&state, &obs, rules);
        states.insert(zone.id().clone(), next);
        if step.transition.is_some() || step.escalation.is_some() {
            // What reaches operators and the audit trail carries the geodesic distance.
            let mut assessment = assessment;
            assessment.distance_m = zone.distance_to_edge_m(fix.lat, fix.lon, f64::INFINITY);
            changes.push(ZoneChange {
                zone_id: zone.id().clone(),
                zone_kind: zone.kind(),
                assessment,
                change: OrderChange {
                    transition: step.transition,
                    escalation: step.escalation,
                    order_before: before,
                    order_after: order_level(states),
                    at_ms: fix.at_ms,
                },
            });
        }
    }
    changes
}

/// The ids of zones whose state is not CLEAR: they must be judged on every fix.
pub fn open_zones(states: &BTreeMap<ZoneId, ZoneState>) -> Vec<ZoneId> {
    states
        .iter()
        .filter(|(_, s)| s.level > AlertLevel::Clear)
        .map(|(id, _)| id.clone())
        .collect()
}

/// What one change or event produced for people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    /// The zone change, for fixes.
    pub zone_change: Option<ZoneChange>,
    /// The policy's decision.
    pub decision: Decision,
    /// The victim's SMS text, when one is sent.
    pub sms_text: Option<String>,
}

/// One order's complete state: zone states and what the victim has been told.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OrderWatch {
    /// State per zone.
    pub states: BTreeMap<ZoneId, ZoneState>,
    /// What the victim has been told.
    pub notices: VictimNotices,
    /// Device time and seq of the newest fix applied (see [`apply_fix`]'s `newest_seen`).
    #[serde(default)]
    pub newest_fix: Option<(i64, u64)>,
}

impl OrderWatch {
    /// The order's current level.
    pub fn level(&self) -> AlertLevel {
        order_level(&self.states)
    }

    /// Applies a fix and the policy, as if received and handled at `now_ms`; returns a notice
    /// per change.
    pub fn on_fix(
        &mut self,
        order: &ProtectionOrder,
        zones: &[&Zone],
        fix: &Fix,
        rules: &BreachRules,
        now_ms: i64,
    ) -> Vec<Notice> {
        let newest_seen = self.newest_fix;
        self.newest_fix = newest_seen.max(Some((fix.at_ms, fix.seq)));
        let changes = apply_fix(
            &mut self.states,
            newest_seen,
            &order.terms(),
            zones,
            fix,
            rules,
        );
        let at = Moment {
            now_ms,
            received_at_ms: now_ms,
            current_level: Some(self.level()),
        };
        changes
            .into_iter()
            .map(|zc| {
                let (decision, next) = decide(&zc.change, &order.policy, &self.notices, &at);
                self.notices = next;
                let sms_text = decision
                    .victim
                    .sent()
                    .map(|alert| render_for_order(alert, order, zc.zone_kind, Some(fix)));
                Notice {
                    zone_change: Some(zc),
                    decision,
                    sms_text,
                }
            })
            .collect()
    }

    /// Applies a tag event and the policy, as if received and handled at `now_ms`.
    pub fn on_event(&mut self, order: &ProtectionOrder, event: &TagEvent, now_ms: i64) -> Notice {
        let at = Moment {
            now_ms,
            received_at_ms: now_ms,
            current_level: None,
        };
        let (decision, next) = decide_tag_event(event.kind, &order.policy, &self.notices, &at);
        self.notices = next;
        let sms_text = decision
            .victim
            .sent()
            .map(|alert| render_for_order(alert, order, ZoneKind::Other, None));
        Notice {
            zone_change: None,
            decision,
            sms_text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TagId;
    use crate::policy::{VictimAlert, VictimDecision};
    use crate::state::Cause;
    use serde_json::json;

    fn order() -> ProtectionOrder {
        serde_json::from_value(json!({"order_id":"o1","tag_id":"t1","victim":{"victim_id":"v1","phone":"+447700900123","language":"en"}})).unwrap()
    }

    fn zone(id: &str, kind: &str, lat: f64, orders: &[&str]) -> Zone {
        serde_json::from_value(json!({"zone_id":id,"kind":kind,"circle":{"lat":lat,"lon":-0.12,"radius_m":100},"buffer_m":500,"order_id":orders[0]})).unwrap()
    }

    fn fix(seq: u64, at_s: i64, lat: f64) -> Fix {
        Fix {
            tag_id: TagId::new("t1").unwrap(),
            seq,
            at_ms: at_s * 1000,
            lat,
            lon: -0.12,
            accuracy_m: 10.0,
            speed_mps: None,
            heading_deg: None,
            battery_pct: None,
        }
    }

    fn on_fix(
        w: &mut OrderWatch,
        order: &ProtectionOrder,
        zones: &[&Zone],
        fix: &Fix,
        rules: &BreachRules,
    ) -> Vec<Notice> {
        w.on_fix(order, zones, fix, rules, fix.at_ms)
    }

    fn sent(notices: &[Notice]) -> Vec<VictimAlert> {
        notices
            .iter()
            .filter_map(|n| n.decision.victim.sent())
            .collect()
    }

    #[test]
    fn two_zones_entered_by_one_fix_send_one_sms() {
        let (home, work) = (
            zone("home", "home", 51.5, &["o1"]),
            zone("work", "work", 51.5005, &["o1"]),
        );
        let mut w = OrderWatch::default();
        let n = on_fix(
            &mut w,
            &order(),
            &[&home, &work],
            &fix(1, 0, 51.5002),
            &BreachRules::default(),
        );
        assert_eq!(n.len(), 2, "both zones change");
        assert_eq!(sent(&n), vec![VictimAlert::Breach]);
        assert_eq!(w.level(), AlertLevel::Breach);
        assert!(n[0].sms_text.as_deref().unwrap().contains("your home"));
    }

    #[test]
    fn zones_of_other_orders_are_ignored() {
        let other = zone("theirs", "home", 51.5, &["o2"]);
        let mut w = OrderWatch::default();
        assert!(
            on_fix(
                &mut w,
                &order(),
                &[&other],
                &fix(1, 0, 51.5),
                &BreachRules::default()
            )
            .is_empty()
        );
    }

    #[test]
    fn all_clear_waits_for_every_zone() {
        let (home, work) = (
            zone("home", "home", 51.5, &["o1"]),
            zone("work", "work", 51.51, &["o1"]),
        );
        let zones = [&home, &work];
        let rules = BreachRules::default();
        let mut w = OrderWatch::default();
        let mut all = vec![];
        // Into home's buffer, across to work's buffer, then away from both.
        all.extend(on_fix(&mut w, &order(), &zones, &fix(1, 0, 51.504), &rules));
        all.extend(on_fix(
            &mut w,
            &order(),
            &zones,
            &fix(2, 60, 51.5055),
            &rules,
        ));
        for i in 0..5 {
            all.extend(on_fix(
                &mut w,
                &order(),
                &zones,
                &fix(3 + i, 120 + 60 * i as i64, 51.53),
                &rules,
            ));
        }
        assert_eq!(
            sent(&all),
            vec![VictimAlert::Warning, VictimAlert::AllClear]
        );
        assert_eq!(open_zones(&w.states), Vec::<ZoneId>::new());
    }

    #[test]
    fn lateness_is_judged_against_the_tags_newest_fix_not_the_zones() {
        // The newest fix is far from home, so home's state never sees it; buffered fixes from
        // near home then arrive. 15 minutes late is beyond the order's 10-minute late window:
        // operators only. The victim must not be texted about a stale position.
        let home = zone("home", "home", 51.5, &["o1"]);
        let rules = BreachRules::default();
        let mut w = OrderWatch::default();
        assert!(on_fix(&mut w, &order(), &[], &fix(20, 1500, 51.6), &rules).is_empty());
        let stale = on_fix(&mut w, &order(), &[&home], &fix(5, 600, 51.5), &rules);
        assert_eq!(stale.len(), 1);
        let t = stale[0]
            .zone_change
            .as_ref()
            .unwrap()
            .change
            .transition
            .clone()
            .unwrap();
        assert_eq!(
            (t.to, t.cause, t.late_by_ms),
            (AlertLevel::Breach, Cause::LateFix, Some(900_000))
        );
        assert_eq!(stale[0].decision.victim, VictimDecision::Nothing);
        assert_eq!(stale[0].decision.urgency, crate::policy::Urgency::Urgent);
        // A later buffered fix outside the zone is still late: it must not lower the level.
        assert!(on_fix(&mut w, &order(), &[&home], &fix(8, 780, 51.53), &rules).is_empty());
        assert_eq!(w.level(), AlertLevel::Breach);
        assert_eq!(w.newest_fix, Some((1_500_000, 20)));

        // Within the late window the victim is texted, and operators see it was late.
        let mut w = OrderWatch::default();
        on_fix(&mut w, &order(), &[], &fix(20, 1500, 51.6), &rules);
        let recent = on_fix(&mut w, &order(), &[&home], &fix(19, 1200, 51.5), &rules);
        let t = recent[0]
            .zone_change
            .as_ref()
            .unwrap()
            .change
            .transition
            .clone()
            .unwrap();
        assert_eq!((t.cause, t.late_by_ms), (Cause::LateFix, Some(300_000)));
        assert_eq!(sent(&recent), vec![VictimAlert::Breach]);
    }

    #[test]
    fn expired_order_raises_nothing() {
        let mut o = order();
        o.valid_until = Some(chrono::DateTime::from_timestamp_millis(1000).unwrap());
        let home = zone("home", "home", 51.5, &["o1"]);
        let mut w = OrderWatch::default();
        assert!(
            on_fix(
                &mut w,
                &o,
                &[&home],
                &fix(1, 10, 51.5),
                &BreachRules::default()
            )
            .is_empty()
        );
    }
}
