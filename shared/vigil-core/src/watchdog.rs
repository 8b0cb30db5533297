//! The watchdog's decisions (docs/WATCHDOG.md): a tag that goes quiet, or keeps reporting
//! without a usable position, is itself an alert.
//!
//! - **Silence**: no accepted message from the tag for longer than the order's
//!   `silence_limit_s` (default 5 min), by the server's receive times.
//! - **No GPS**: messages arrive but no accepted fix at most
//!   [`USABLE_ACCURACY_M`](crate::history::USABLE_ACCURACY_M) accurate for
//!   longer than the order's `no_gps_limit_s` (default 10 min). Silence includes it: a silent
//!   tag is not also "without GPS".
//! - Each condition is judged per order in force (each order has its own limits) and told once
//!   per episode: a mark per (order, condition) holds the episode (the time the condition is
//!   measured from), set when operators are told, removed when it ends.
//! - **When to look again** ([`next_check_ms`]): the earliest moment a condition can start,
//!   never before the next minute's run and never later than [`IDLE_RECHECK_MS`]; at every
//!   minute's run while a condition is told, so its end is seen within a minute. The watchdog reads only the tags
//!   that are due (see `functions/watchdog`).
//!
//! A tag that never sent an accepted message is silent from the moment its order came into
//! force (`valid_from`); for an order in force from its creation, with no such time, from its
//! first message.

use crate::history::{TagHistory, TrackedFix};
use crate::ids::{OrderId, ZoneId};
use crate::order::OrderTerms;
use crate::zone::Zone;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A tag whose every condition is told (or that has nothing to measure from) is looked at
/// again after this long anyway: a new order, or limits changed by an operator, take effect
/// within it.
pub const IDLE_RECHECK_MS: i64 = 15 * 60_000;

/// The watchdog runs once a minute, at the start of each minute (a run starts a little after
/// it): no check is planned before the next minute's run.
pub fn next_run_ms(now_ms: i64) -> i64 {
    (now_ms.div_euclid(60_000) + 1) * 60_000
}

/// What the watchdog watches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// No message for longer than the limit.
    Silence,
    /// Messages, but no usable fix for longer than the limit.
    NoGps,
    /// A strap tamper not restored within the grace period.
    Tamper,
    /// A low battery not charged within the grace period.
    BatteryLow,
}

impl Condition {
    /// Every condition.
    pub const ALL: [Condition; 4] = [
        Condition::Silence,
        Condition::NoGps,
        Condition::Tamper,
        Condition::BatteryLow,
    ];

    /// `silence`, `no_gps`, `tamper` or `battery_low`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Silence => "silence",
            Self::NoGps => "no_gps",
            Self::Tamper => "tamper",
            Self::BatteryLow => "battery_low",
        }
    }

    /// Whether the victim may be told of it (`tag_silent` near her zones): contact lost.
    /// Tamper keeps its own rule (the tag's event already told her, `notify_victim_on_tamper`).
    pub fn loses_contact(self) -> bool {
        matches!(self, Self::Silence | Self::NoGps)
    }

    /// The time the condition is measured from for an order: the last accepted message
    /// (silence; for a tag that never sent one, the moment the order came into force, when it
    /// says) or the last usable fix (no GPS; for a tag that never sent one, its first
    /// message), server receive time; `None` when there is nothing to measure from.
    pub fn measured_from(self, terms: &OrderTerms, history: &TagHistory) -> Option<i64> {
        match self {
            Self::Silence => history
                .last_received_ms
                .or(terms.valid_from.map(|t| t.timestamp_millis())),
            Self::NoGps => history.last_usable_ms.or(history.first_received_ms),
            Self::Tamper => history.tamper_since_ms,
            Self::BatteryLow => history.battery_low_since_ms,
        }
    }

    fn limit_ms(self, terms: &OrderTerms) -> i64 {
        i64::from(match self {
            Self::Silence => terms.policy.silence_limit_s,
            Self::NoGps => terms.policy.no_gps_limit_s,
            Self::Tamper => terms.policy.tamper_grace_s,
            Self::BatteryLow => terms.policy.battery_low_grace_s,
        }) * 1000
    }

    /// Whether the condition holds for an order at `now_ms`: strictly longer than the limit.
    pub fn holds(self, terms: &OrderTerms, history: &TagHistory, now_ms: i64) -> bool {
        let over = |from: Option<i64>, limit| from.is_some_and(|t| now_ms - t > limit);
        let silent = over(
            Self::Silence.measured_from(terms, history),
            Self::Silence.limit_ms(terms),
        );
        match self {
            Self::Silence => silent,
            Self::NoGps => {
                !silent
                    && over(
                        Self::NoGps.measured_from(terms, history),
                        self.limit_ms(terms),
                    )
            }
            // A silent tag's strap and battery stay as they were last reported.
            Self::Tamper | Self::BatteryLow => {
                over(self.measured_from(terms, history), self.limit_ms(terms))
            }
        }
    }
}

/// The orders' terms as the watchdog judges a tag told a batching window of `window_s`
/// (adaptive reporting, [`crate::batching`]): its messages come up to that much further
/// apart, so its silence and no-GPS limits are that much longer. The window is allowed only
/// where the tag cannot reach any zone's buffer within it (plus an interval and the command's
/// travel), so the later notice of a tag gone silent far away is bounded by the same margin.
pub fn allowing_window(orders: &[OrderTerms], window_s: u32) -> Vec<OrderTerms> {
    orders
        .iter()
        .map(|o| {
            let mut o = o.clone();
            o.policy.silence_limit_s = o.policy.silence_limit_s.saturating_add(window_s);
            o.policy.no_gps_limit_s = o.policy.no_gps_limit_s.saturating_add(window_s);
            o
        })
        .collect()
}

/// The conditions operators were told of and that have not ended: (order, condition) ->
/// the episode (the time the condition was measured from when it started).
pub type Told = BTreeMap<(OrderId, Condition), Option<i64>>;

/// A condition starting or ending for an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The order.
    pub order_id: OrderId,
    /// What.
    pub condition: Condition,
    /// Started (true) or ended.
    pub started: bool,
    /// The episode: the time the condition is measured from (its last message, or last usable
    /// fix), which names the start and its end alike.
    pub episode_ms: Option<i64>,
}

/// The changes for a tag at `now_ms`: a condition that holds for an order in force and was
/// not told starts; one told that no longer holds (or whose order left force) ends.
pub fn judge(orders: &[OrderTerms], history: &TagHistory, told: &Told, now_ms: i64) -> Vec<Change> {
    let mut out = Vec::new();
    for terms in orders {
        let in_force = terms.in_force(now_ms);
        for condition in Condition::ALL {
            let key = (terms.order_id.clone(), condition);
            let holds = in_force && condition.holds(terms, history, now_ms);
            match (told.get(&key), holds) {
                (None, true) => out.push(Change {
                    order_id: terms.order_id.clone(),
                    condition,
                    started: true,
                    episode_ms: condition.measured_from(terms, history),
                }),
                (Some(episode), false) => out.push(Change {
                    order_id: terms.order_id.clone(),
                    condition,
                    started: false,
                    episode_ms: *episode,
                }),
                _ => {}
            }
        }
    }
    // A mark of an order the tag no longer serves ends too.
    for ((order_id, condition), episode) in told {
        if !orders.iter().any(|o| &o.order_id == order_id) {
            out.push(Change {
                order_id: order_id.clone(),
                condition: *condition,
                started: false,
                episode_ms: *episode,
            });
        }
    }
    out
}

/// When to look at the tag again after judging it at `now_ms` with `told` as it is after the
/// changes: the next minute's run while a condition is told (its end, contact restored, is
/// seen within a minute), otherwise the earliest moment a condition could start (its limit
/// passed by 1 ms), not before the next minute's run ([`next_run_ms`]) and at most
/// [`IDLE_RECHECK_MS`] from now.
pub fn next_check_ms(orders: &[OrderTerms], history: &TagHistory, told: &Told, now_ms: i64) -> i64 {
    if !told.is_empty() {
        return next_run_ms(now_ms);
    }
    let mut next = now_ms + IDLE_RECHECK_MS;
    for terms in orders.iter().filter(|t| t.in_force(now_ms)) {
        for condition in Condition::ALL {
            if told.contains_key(&(terms.order_id.clone(), condition)) {
                continue;
            }
            if let Some(from) = condition.measured_from(terms, history) {
                next = next.min(from + condition.limit_ms(terms) + 1);
            }
        }
    }
    next.max(next_run_ms(now_ms))
}

/// The zone of `zones` the tag's last fix was nearest to, when within its warning buffer plus
/// `extra_m` (the order's `silent_victim_distance_m`): where silence is itself a danger to the
/// victim. Returns the zone and the fix's distance to its edge, metres (negative inside).
pub fn near_zone<'a>(
    fix: &TrackedFix,
    zones: &'a [Zone],
    extra_m: f64,
) -> Option<(&'a ZoneId, f64)> {
    zones
        .iter()
        .map(|z| {
            let reach = z.buffer_m() + extra_m + fix.accuracy_m;
            (z, z.distance_to_edge_m(fix.lat, fix.lon, reach), reach)
        })
        .filter(|(_, d, reach)| *d <= *reach)
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(z, d, _)| (z.id(), d))
}

/// How far the tag's last fix was from the edge of the victim's moving zone (her device),
/// metres (negative inside), when that is within the moving zone's warning buffer plus
/// `extra_m` (and the fix's accuracy): the distance ingest kept with the fix when it compared
/// it with her position (`TrackedFix::victim_edge_m`). `None` when she carries no device under
/// `terms`, or her position could not be compared with that fix (her device silent, too far
/// apart in time), or it was further away.
pub fn near_victim(fix: &TrackedFix, terms: &OrderTerms, extra_m: f64) -> Option<f64> {
    let device = terms.victim_device.as_ref()?;
    let d = *fix.victim_edge_m.get(&terms.order_id)?;
    (d <= device.zone.buffer_m + extra_m + fix.accuracy_m).then_some(d)
}

/// The tag's last known position: its newest accepted fix by receive time.
pub fn last_known(history: &TagHistory) -> Option<&TrackedFix> {
    history.fixes.iter().max_by_key(|f| f.received_at_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fix::Fix;
    use crate::fix::TagEventKind;
    use crate::history::USABLE_ACCURACY_M;
    use crate::ids::TagId;
    use crate::order::OrderPolicy;

    const T0: i64 = 1_767_225_600_000;

    fn terms(id: &str) -> OrderTerms {
        OrderTerms {
            force_id: None,
            order_id: OrderId::new(id).unwrap(),
            valid_from: None,
            valid_until: None,
            policy: OrderPolicy::default(),
            victim_device: None,
        }
    }

    fn fix(at_ms: i64, accuracy_m: f64) -> Fix {
        Fix {
            tag_id: TagId::new("t").unwrap(),
            seq: (at_ms / 1000) as u64,
            at_ms,
            lat: 51.5,
            lon: -0.12,
            accuracy_m,
            speed_mps: None,
            heading_deg: None,
            battery_pct: None,
        }
    }

    /// A history whose last message (a fix of `accuracy_m`) came at `at_ms`.
    fn history(at_ms: i64, accuracy_m: f64) -> TagHistory {
        TagHistory::default().with_fix(&fix(at_ms, accuracy_m), at_ms)
    }

    fn started(changes: &[Change]) -> Vec<(Condition, bool)> {
        changes.iter().map(|c| (c.condition, c.started)).collect()
    }

    #[test]
    fn silence_starts_strictly_after_the_limit() {
        let o = [terms("o1")];
        let h = history(T0, 10.0);
        let told = Told::new();
        assert!(
            judge(&o, &h, &told, T0 + 300_000).is_empty(),
            "exactly at the limit"
        );
        let c = judge(&o, &h, &told, T0 + 300_001);
        assert_eq!(started(&c), [(Condition::Silence, true)]);
        assert_eq!(c[0].episode_ms, Some(T0));
    }

    #[test]
    fn a_batching_tag_is_silent_only_after_its_window_too() {
        let o = allowing_window(&[terms("o1")], 900);
        let h = history(T0, 10.0);
        let told = Told::new();
        // Fifteen minutes between batches is not silence; the limit counts after them.
        assert!(judge(&o, &h, &told, T0 + 1_200_000).is_empty());
        let c = judge(&o, &h, &told, T0 + 1_200_001);
        assert_eq!(started(&c), [(Condition::Silence, true)]);
        // No window: the order's own limits.
        assert_eq!(allowing_window(&[terms("o1")], 0), [terms("o1")]);
    }

    #[test]
    fn silence_is_told_once_and_ends_when_a_message_arrives() {
        let o = [terms("o1")];
        let h = history(T0, 10.0);
        let mut told = Told::new();
        told.insert((o[0].order_id.clone(), Condition::Silence), Some(T0));
        assert!(
            judge(&o, &h, &told, T0 + 900_000).is_empty(),
            "told already"
        );
        let back = h.with_fix(&fix(T0 + 900_000, 10.0), T0 + 900_000);
        let c = judge(&o, &back, &told, T0 + 900_500);
        assert_eq!(started(&c), [(Condition::Silence, false)]);
        assert_eq!(c[0].episode_ms, Some(T0), "the end names the episode");
        // Back with a message but no position after 15 minutes: contact, but no GPS.
        let event_only = h.with_message(T0 + 900_000);
        let c = judge(&o, &event_only, &told, T0 + 900_500);
        assert_eq!(
            started(&c),
            [(Condition::Silence, false), (Condition::NoGps, true)]
        );
    }

    #[test]
    fn no_gps_needs_messages_without_a_usable_fix_beyond_its_limit() {
        let o = [terms("o1")];
        // A usable fix at T0, then only poor fixes every minute.
        let mut h = history(T0, 10.0);
        for m in 1..=11 {
            h = h.with_fix(&fix(T0 + m * 60_000, 500.0), T0 + m * 60_000);
        }
        let told = Told::new();
        assert!(
            judge(&o, &h, &told, T0 + 600_000).is_empty(),
            "exactly at the limit"
        );
        let c = judge(&o, &h, &told, T0 + 660_000);
        assert_eq!(started(&c), [(Condition::NoGps, true)]);
        assert_eq!(c[0].episode_ms, Some(T0));
        // A usable fix ends it.
        let mut told = Told::new();
        told.insert((o[0].order_id.clone(), Condition::NoGps), Some(T0));
        let fixed = h.with_fix(&fix(T0 + 700_000, 20.0), T0 + 700_000);
        assert_eq!(
            started(&judge(&o, &fixed, &told, T0 + 700_100)),
            [(Condition::NoGps, false)]
        );
        // Never a usable fix: measured from the first message.
        let mut poor = history(T0, 500.0);
        for m in 1..=11 {
            poor = poor.with_fix(&fix(T0 + m * 60_000, 500.0), T0 + m * 60_000);
        }
        let c = judge(&o, &poor, &Told::new(), T0 + 660_000);
        assert_eq!(started(&c), [(Condition::NoGps, true)]);
        assert_eq!(c[0].episode_ms, Some(T0));
        // A fix exactly at the usable accuracy counts as usable.
        let edge = history(T0, USABLE_ACCURACY_M);
        assert_eq!(edge.last_usable_ms, Some(T0));
        assert_eq!(history(T0, USABLE_ACCURACY_M + 0.1).last_usable_ms, None);
    }

    #[test]
    fn a_silent_tag_is_not_also_without_gps() {
        let o = [terms("o1")];
        let h = history(T0, 10.0);
        let c = judge(&o, &h, &Told::new(), T0 + 3_600_000);
        assert_eq!(started(&c), [(Condition::Silence, true)]);
    }

    #[test]
    fn a_tag_that_never_reported_is_silent_from_its_order_s_start_and_orders_out_of_force_end_their_marks()
     {
        let o = [terms("o1")];
        assert!(judge(&o, &TagHistory::default(), &Told::new(), T0).is_empty());
        let mut dated = terms("o1");
        dated.valid_from = chrono::DateTime::from_timestamp_millis(T0);
        let never = TagHistory::default();
        assert!(
            judge(
                std::slice::from_ref(&dated),
                &never,
                &Told::new(),
                T0 + 300_000
            )
            .is_empty()
        );
        let c = judge(&[dated], &never, &Told::new(), T0 + 300_001);
        assert_eq!(started(&c), [(Condition::Silence, true)]);
        assert_eq!(c[0].episode_ms, Some(T0));
        let mut ended = terms("o1");
        ended.valid_until = chrono::DateTime::from_timestamp_millis(T0 + 1000);
        let mut told = Told::new();
        told.insert(
            (ended.order_id.clone(), Condition::Silence),
            Some(T0 - 600_000),
        );
        let h = history(T0 - 600_000, 10.0);
        let c = judge(&[ended], &h, &told, T0 + 2000);
        assert_eq!(started(&c), [(Condition::Silence, false)]);
        // An order removed from the tag altogether ends its marks too.
        let c = judge(&[], &h, &told, T0 + 2000);
        assert_eq!(started(&c), [(Condition::Silence, false)]);
    }

    #[test]
    fn each_order_has_its_own_limit() {
        let mut strict = terms("o2");
        strict.policy.silence_limit_s = 120;
        let o = [terms("o1"), strict];
        let c = judge(&o, &history(T0, 10.0), &Told::new(), T0 + 120_001);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].order_id.as_str(), "o2");
    }

    #[test]
    fn the_next_check_is_the_earliest_untold_deadline_within_bounds() {
        let o = [terms("o1")];
        let h = history(T0, 10.0);
        let none = Told::new();
        assert_eq!(next_check_ms(&o, &h, &none, T0 + 10_000), T0 + 300_001);
        // Close to the deadline: the deadline, but never before the next minute's run.
        assert_eq!(next_check_ms(&o, &h, &none, T0 + 290_000), T0 + 300_001);
        assert_eq!(next_check_ms(&o, &h, &none, T0 + 300_500), T0 + 360_000);
        // A condition told: the next minute's run, even when this one ran late in its minute
        // (a wall-clock run starts a little after the minute).
        let mut told = Told::new();
        told.insert((o[0].order_id.clone(), Condition::Silence), Some(T0));
        assert_eq!(next_check_ms(&o, &h, &told, T0 + 420_033), T0 + 480_000);
        assert_eq!(next_check_ms(&o, &h, &told, T0 + 400_000), T0 + 420_000);
        assert_eq!(
            next_check_ms(&o, &TagHistory::default(), &none, T0),
            T0 + IDLE_RECHECK_MS
        );
    }

    #[test]
    fn near_her_device_is_the_distance_kept_with_the_fix_within_her_buffer_plus_the_distance() {
        use crate::order::{VictimDevice, VictimZoneTerms};
        let mut carrying = terms("o1");
        carrying.victim_device = Some(VictimDevice {
            device_id: crate::ids::DeviceId::new("dev-1").unwrap(),
            zone: VictimZoneTerms::default(), // buffer 1,000 m
        });
        let at = |edge_m: Option<f64>| {
            let mut f = history(T0, 10.0).fixes[0].clone();
            if let Some(d) = edge_m {
                f.victim_edge_m.insert(OrderId::new("o1").unwrap(), d);
            }
            f
        };
        // Reach: 1,000 m buffer + 2,000 m + 10 m accuracy beyond her zone's edge.
        assert_eq!(
            near_victim(&at(Some(-50.0)), &carrying, 2_000.0),
            Some(-50.0)
        );
        assert_eq!(
            near_victim(&at(Some(3_010.0)), &carrying, 2_000.0),
            Some(3_010.0),
            "exactly at the reach"
        );
        assert_eq!(near_victim(&at(Some(3_010.5)), &carrying, 2_000.0), None);
        // Not compared with that fix (her device silent, or too far apart in time): nothing.
        assert_eq!(near_victim(&at(None), &carrying, 2_000.0), None);
        // An order whose victim carries no device: nothing, whatever the fix holds.
        assert_eq!(near_victim(&at(Some(0.0)), &terms("o1"), 2_000.0), None);
        // Another order's distance does not count for this one.
        let mut other = carrying.clone();
        other.order_id = OrderId::new("o2").unwrap();
        assert_eq!(near_victim(&at(Some(0.0)), &other, 2_000.0), None);
    }

    #[test]
    fn near_zone_reaches_the_buffer_plus_the_distance_plus_the_accuracy() {
        use crate::zone::{ZoneKind, ZoneShape, ZoneSpec};
        // A 150 m home with a 500 m buffer at (51.5, -0.12).
        let home = Zone::new(ZoneSpec {
            zone_id: ZoneId::new("home").unwrap(),
            kind: ZoneKind::Home,
            shape: ZoneShape::Circle {
                lat: 51.5,
                lon: -0.12,
                radius_m: 150.0,
            },
            buffer_m: 500.0,
            schedule: None,
            valid_from: None,
            valid_until: None,
            order_id: OrderId::new("o1").unwrap(),
        })
        .unwrap();
        let zones = [home];
        // North of the centre by `m` metres, 10 m accurate.
        let at = |m: f64| {
            let h = history(T0, 10.0);
            let mut f = h.fixes[0].clone();
            f.lat = 51.5 + m / 111_250.0;
            f
        };
        // Edge at 150 m; reach 500 + 2000 + 10 beyond it.
        let (id, d) = near_zone(&at(450.0), &zones, 2_000.0).unwrap();
        assert_eq!(id.as_str(), "home");
        assert!((d - 300.0).abs() < 2.0, "{d}");
        assert!(near_zone(&at(150.0 + 2_500.0), &zones, 2_000.0).is_some());
        assert!(near_zone(&at(150.0 + 2_530.0), &zones, 2_000.0).is_none());
        assert!(near_zone(&at(450.0), &[], 2_000.0).is_none());
    }

    #[test]
    fn tamper_and_battery_unresolved_after_their_grace_and_ended_by_restore_and_charge() {
        let o = [terms("o1")];
        let h = history(T0, 10.0).with_event(TagEventKind::StrapTamper, T0 + 1_000);
        assert_eq!(h.tamper_since_ms, Some(T0 + 1_000));
        // Still reporting (no silence), strap still cut: at the grace's edge, then after.
        let live = |h: &TagHistory, t: i64| h.with_fix(&fix(t, 10.0), t);
        let h = live(&h, T0 + 290_000);
        assert!(judge(&o, &h, &Told::new(), T0 + 301_000).is_empty());
        let c = judge(&o, &h, &Told::new(), T0 + 301_001);
        assert_eq!(started(&c), [(Condition::Tamper, true)]);
        let mut told = Told::new();
        told.insert((o[0].order_id.clone(), Condition::Tamper), Some(T0 + 1_000));
        let restored = h.with_event(TagEventKind::StrapRestored, T0 + 400_000);
        assert_eq!(
            started(&judge(&o, &restored, &told, T0 + 400_500)),
            [(Condition::Tamper, false)]
        );
        // Battery low: a fix at 30 % ends it; 29 % does not.
        let b = history(T0, 10.0).with_event(TagEventKind::BatteryLow, T0);
        let mut low = fix(T0 + 60_000, 10.0);
        low.battery_pct = Some(29);
        assert_eq!(b.with_fix(&low, T0 + 60_000).battery_low_since_ms, Some(T0));
        low.battery_pct = Some(30);
        assert_eq!(b.with_fix(&low, T0 + 60_000).battery_low_since_ms, None);
        let still = live(&b, T0 + 1_790_000);
        let c = judge(&o, &still, &Told::new(), T0 + 1_800_001);
        assert_eq!(started(&c), [(Condition::BatteryLow, true)]);
    }
}
