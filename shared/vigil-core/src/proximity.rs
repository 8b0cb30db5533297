//! The victim's moving zone: a circle around her own device's latest position, judged against
//! the offender's latest accepted fix by the same evaluation ([`crate::evaluate`]) and state
//! machine ([`crate::state`]) as a fixed zone, from whichever side reported last: his fix is
//! compared with her latest position, her position with his latest fix.
//!
//! # Freshness: when two positions may be compared (docs/PROXIMITY.md)
//! - `now` is the server's receive time of the message being handled; no device's clock.
//! - A position's time is its device time, but never later than the server received it
//!   (`min(at_ms, received_at_ms)`): a clock running fast cannot make a position look newer.
//! - Each position counts only while `now - time <= max_position_age_s` (default 300 s): a
//!   silent device stops counting, its last position is not "where she is".
//! - The two are compared only when `|his time - her time| <= pair_window_s` (default 120 s):
//!   two reports a minute apart each way, one report missed. A 20-minute-old fix next to a
//!   fresh position is not "near now".
//! - When they cannot be compared, the moving zone's state stays as it is: the victim is never
//!   told "all clear" because a position went stale. Operators hear that her device is silent
//!   ([`VictimSilence`]).
//!
//! # Accuracy
//! Both positions are uncertain: the compared fix is his position with the sum of both
//! accuracy radii (the distance between two points each known within `a` and `b` is known
//! within `a + b`), so a poor fix on either side widens the disc exactly as a poor fix does for
//! a fixed zone: it can raise WARNING, and lowering needs the whole disc clear.
//!
//! # Order of observations
//! The compared fix carries the newer of the two times and his counter: a new report from
//! either side moves it forward, a redelivered one repeats the key (a no-op in the state
//! machine), a late one is older (it may raise, never lower).
//!
//! Her coordinates leave this module only inside the [`Zone`] it builds for the comparison;
//! the events of a change carry distances and his fix, never her position.

use crate::evaluate::BreachRules;
use crate::events::{AlertBody, AlertEvent};
use crate::fix::{Fix, ValidationLimits, parse_fix};
use crate::ids::{DeviceId, OrderId, TagId, ZoneId};
use crate::ingest::{OrderPlan, ZoneRecord, plan_order};
use crate::order::OrderTerms;
use crate::zone::{Zone, ZoneError, ZoneKind, ZoneShape, ZoneSpec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use crate::order::{VictimDevice, VictimZoneTerms};
pub use crate::zone::VICTIM_ZONE_ID;

/// The moving zone's id.
pub fn victim_zone_id() -> ZoneId {
    ZoneId::new(VICTIM_ZONE_ID).expect("the reserved zone id is a valid id")
}

/// A position her device reported, accepted by ingest. Never logged, never in an event, a
/// metric, the quarantine or the audit trail.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct VictimPosition {
    /// The device's message counter.
    pub seq: u64,
    /// Device time, Unix milliseconds.
    pub at_ms: i64,
    /// When the server received it, Unix milliseconds.
    pub received_at_ms: i64,
    /// Latitude, degrees WGS84.
    pub lat: f64,
    /// Longitude, degrees WGS84.
    pub lon: f64,
    /// Accuracy radius, metres.
    pub accuracy_m: f64,
}

impl std::fmt::Debug for VictimPosition {
    /// Without her coordinates: a debug print must not put them in a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VictimPosition")
            .field("seq", &self.seq)
            .field("at_ms", &self.at_ms)
            .field("received_at_ms", &self.received_at_ms)
            .finish_non_exhaustive()
    }
}

/// Why a position from her device was refused: the same checks and reason codes as a tag's
/// fix (docs/WIRE_FORMAT.md), but no value from the payload in the message, since a refused
/// value can still be one of her coordinates (`"lat": "51.50741"` is malformed, and the
/// parser's message would quote it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{reason}: the position from the victim's device was refused (its values are not repeated)"
)]
pub struct PositionError {
    /// The reason code, as for fixes (`malformed`, `latitude_out_of_range`, ...).
    pub reason: &'static str,
}

/// Parses and validates a position her device published (the fix wire format, v1) and the
/// server received at `received_at_ms`, with the fix's limits.
///
/// Fails with the first problem's reason code, naming no value ([`PositionError`]).
pub fn parse_position(
    payload: &[u8],
    device_id: &DeviceId,
    received_at_ms: i64,
    limits: &ValidationLimits,
) -> Result<VictimPosition, PositionError> {
    // Device ids and tag ids follow the same rules; the id only labels the parse.
    let label = TagId::new(device_id.as_str()).map_err(|_| PositionError {
        reason: "malformed",
    })?;
    let fix = parse_fix(payload, &label, received_at_ms, limits)
        .map_err(|e| PositionError { reason: e.reason() })?;
    Ok(VictimPosition {
        seq: fix.seq,
        at_ms: fix.at_ms,
        received_at_ms,
        lat: fix.lat,
        lon: fix.lon,
        accuracy_m: fix.accuracy_m,
    })
}

impl VictimPosition {
    /// Its time for freshness: the device time, never later than the server received it.
    pub fn time_ms(&self) -> i64 {
        self.at_ms.min(self.received_at_ms)
    }

    /// Whether it is newer than `stored` (by time, then counter): only a newer position
    /// replaces the one kept (the stores' "newer only" write, ingest's replay check).
    pub fn is_newer_than(&self, stored: &VictimPosition) -> bool {
        (stored.time_ms(), stored.seq) < (self.time_ms(), self.seq)
    }
}

/// His side: an accepted fix and when the server received it.
#[derive(Debug, Clone, Copy)]
pub struct Sighting<'a> {
    /// The fix.
    pub fix: &'a Fix,
    /// When the server received it, Unix milliseconds.
    pub received_at_ms: i64,
}

impl Sighting<'_> {
    /// Its time for freshness: the device time, never later than the server received it.
    pub fn time_ms(&self) -> i64 {
        self.fix.at_ms.min(self.received_at_ms)
    }
}

/// Whether her position and his fix can be compared now, and if so, what to judge.
#[derive(Debug, Clone, PartialEq)]
pub enum Pairing {
    /// Both fresh and close enough in time: judge `fix` against `zone` (the circle around her
    /// position) with [`plan_moving_zone`].
    Compare {
        /// His position, the newer of the two times, both accuracies summed.
        fix: Fix,
        /// The moving zone where she is.
        zone: Box<Zone>,
    },
    /// Her device has not reported within the age limit (`last_ms`: her newest position's
    /// time, `None` when it never reported or its position expired).
    VictimSilent {
        /// Her newest position's time.
        last_ms: Option<i64>,
    },
    /// His newest fix is older than the age limit, or he has none (the watchdog's concern,
    /// not this one's). Her position is fresh.
    OffenderStale,
    /// Both fresh, but further apart in time than the pair window.
    TooFarApart {
        /// How far apart, ms.
        gap_ms: i64,
    },
}

/// Decides whether `offender` (his newest accepted fix, `None` when he has none) and `victim`
/// (her newest position) can be compared at `now_ms` (the server's receive time of the
/// message being handled) under `terms`; see the module documentation.
///
/// Fails only if the terms make an invalid circle (they are checked when the order is made).
pub fn pair(
    order_id: &OrderId,
    terms: &VictimZoneTerms,
    offender: Option<Sighting<'_>>,
    victim: Option<&VictimPosition>,
    now_ms: i64,
) -> Result<Pairing, ZoneError> {
    let max_age_ms = terms.max_position_age_s as i64 * 1000;
    let Some(victim) = victim.filter(|v| now_ms - v.time_ms() <= max_age_ms) else {
        return Ok(Pairing::VictimSilent {
            last_ms: victim.map(VictimPosition::time_ms),
        });
    };
    let Some(offender) = offender.filter(|o| now_ms - o.time_ms() <= max_age_ms) else {
        return Ok(Pairing::OffenderStale);
    };
    let gap_ms = (offender.time_ms() - victim.time_ms()).abs();
    if gap_ms > terms.pair_window_s as i64 * 1000 {
        return Ok(Pairing::TooFarApart { gap_ms });
    }
    let zone = Zone::new(ZoneSpec {
        zone_id: victim_zone_id(),
        kind: ZoneKind::VictimLocation,
        shape: ZoneShape::Circle {
            lat: victim.lat,
            lon: victim.lon,
            radius_m: terms.radius_m,
        },
        buffer_m: terms.buffer_m,
        schedule: None,
        valid_from: None,
        valid_until: None,
        order_id: order_id.clone(),
    })?;
    let fix = Fix {
        at_ms: offender.fix.at_ms.max(victim.at_ms),
        accuracy_m: offender.fix.accuracy_m + victim.accuracy_m,
        ..offender.fix.clone()
    };
    Ok(Pairing::Compare {
        fix,
        zone: Box::new(zone),
    })
}

/// The moving zone to close an order's open moving-zone alert with once the order is out of
/// force at his `fix` while the two sides cannot be compared (her device silent): a circle
/// of the order's radius around his fix. Out of force, no geometry is judged (the step is
/// `zone_out_of_force`, as for a fixed zone); her position is not needed, and none is used.
///
/// Fails only if the terms make an invalid circle.
pub fn closing_zone(
    order_id: &OrderId,
    terms: &VictimZoneTerms,
    fix: &Fix,
) -> Result<Zone, ZoneError> {
    Zone::new(ZoneSpec {
        zone_id: victim_zone_id(),
        kind: ZoneKind::VictimLocation,
        shape: ZoneShape::Circle {
            lat: fix.lat,
            lon: fix.lon,
            radius_m: terms.radius_m,
        },
        buffer_m: terms.buffer_m,
        schedule: None,
        valid_from: None,
        valid_until: None,
        order_id: order_id.clone(),
    })
}

/// Moves the order's moving zone with a compared fix ([`Pairing::Compare`]) and plans the
/// commit, as [`plan_order`] does for fixed zones. `records` must hold every zone state of the
/// order, so that the order's level before and after (which decides an all-clear) counts the
/// fixed zones too; only the moving zone steps.
pub fn plan_moving_zone(
    terms: &OrderTerms,
    records: &BTreeMap<ZoneId, ZoneRecord>,
    zone: &Zone,
    fix: &Fix,
    received_at_ms: i64,
    rules: &BreachRules,
) -> OrderPlan {
    plan_order(terms, records, &[zone], fix, None, received_at_ms, rules)
}

/// What operators must hear about her device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VictimSilence {
    /// Her device just went silent (no position within the age limit); tell operators once.
    Started {
        /// Her newest position's time, if any: names the episode.
        last_ms: Option<i64>,
    },
    /// Her device reported again after a silence operators were told of.
    Ended {
        /// Her newest position's time before the silence: names the episode.
        last_ms: Option<i64>,
    },
}

impl VictimSilence {
    /// The operator event for this change of order `order_id`, whose offender's tag is
    /// `tag_id`, found in a message the server received at `received_at_ms`. The episode
    /// (her last position's time before the silence) names it, so the same start or end found
    /// twice (a retry, two invocations) is one event.
    pub fn event(
        &self,
        order_id: &OrderId,
        tag_id: &TagId,
        device_id: &DeviceId,
        received_at_ms: i64,
    ) -> AlertEvent {
        let (silent, episode) = match *self {
            VictimSilence::Started { last_ms } => (true, last_ms),
            VictimSilence::Ended { last_ms } => (false, last_ms),
        };
        AlertEvent {
            event_id: AlertEvent::victim_device_id(order_id, silent, episode),
            order_id: order_id.clone(),
            tag_id: tag_id.clone(),
            at_ms: received_at_ms,
            received_at_ms,
            body: AlertBody::VictimDevice {
                device_id: device_id.clone(),
                silent,
                last_report_ms: episode,
            },
        }
    }
}

/// Whether her device's silence starts or ends with this message: `mark` is the order's
/// "silent" mark (`Some(episode)` once operators were told), `pairing` what this message
/// found. Every pairing but [`Pairing::VictimSilent`] means her position is fresh (it is
/// checked first). `None` when nothing changes for operators.
pub fn silence_change(mark: Option<Option<i64>>, pairing: &Pairing) -> Option<VictimSilence> {
    match (mark, pairing) {
        (None, Pairing::VictimSilent { last_ms }) => {
            Some(VictimSilence::Started { last_ms: *last_ms })
        }
        (Some(_), Pairing::VictimSilent { .. }) | (None, _) => None,
        (Some(episode), _) => Some(VictimSilence::Ended { last_ms: episode }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::AlertLevel;
    use crate::ids::TagId;

    const T0: i64 = 1_780_000_000_000;
    const LAT: f64 = 51.5;
    const LON: f64 = -0.12;
    /// Metres per degree of latitude, near enough for placing test positions.
    const M_PER_DEG: f64 = 111_250.0;

    fn order() -> OrderId {
        OrderId::new("o-1").unwrap()
    }

    fn terms() -> OrderTerms {
        OrderTerms {
            force_id: None,
            order_id: order(),
            valid_from: None,
            valid_until: None,
            policy: Default::default(),
            victim_device: None,
        }
    }

    fn fix(seq: u64, at_ms: i64, north_m: f64, accuracy_m: f64) -> Fix {
        Fix {
            tag_id: TagId::new("tag-1").unwrap(),
            seq,
            at_ms,
            lat: LAT + north_m / M_PER_DEG,
            lon: LON,
            accuracy_m,
            speed_mps: None,
            heading_deg: None,
            battery_pct: None,
        }
    }

    fn her(at_ms: i64, north_m: f64, accuracy_m: f64) -> VictimPosition {
        VictimPosition {
            seq: 1,
            at_ms,
            received_at_ms: at_ms + 500,
            lat: LAT + north_m / M_PER_DEG,
            lon: LON,
            accuracy_m,
        }
    }

    fn seen(f: &Fix) -> Sighting<'_> {
        Sighting {
            fix: f,
            received_at_ms: f.at_ms + 200,
        }
    }

    fn compare(p: Pairing) -> (Fix, Zone) {
        match p {
            Pairing::Compare { fix, zone } => (fix, *zone),
            other => panic!("expected a comparison, got {other:?}"),
        }
    }

    #[test]
    fn default_terms_are_the_issue_s_and_valid() {
        let t = VictimZoneTerms::default();
        assert_eq!((t.radius_m, t.buffer_m), (500.0, 1_000.0));
        assert_eq!((t.max_position_age_s, t.pair_window_s), (300, 120));
        t.check().unwrap();
        let bad = VictimZoneTerms {
            pair_window_s: 301,
            ..t.clone()
        };
        assert!(bad.check().unwrap_err().contains("pair_window_s"));
        let bad = VictimZoneTerms {
            radius_m: f64::NAN,
            ..t
        };
        assert!(bad.check().unwrap_err().contains("radius_m"));
    }

    #[test]
    fn fresh_and_close_in_time_are_compared_with_both_accuracies() {
        let f = fix(7, T0, 0.0, 20.0);
        let v = her(T0 + 30_000, 300.0, 15.0);
        let (compared, zone) = compare(
            pair(
                &order(),
                &VictimZoneTerms::default(),
                Some(seen(&f)),
                Some(&v),
                T0 + 31_000,
            )
            .unwrap(),
        );
        assert_eq!(compared.accuracy_m, 35.0);
        assert_eq!(compared.at_ms, T0 + 30_000, "the newer of the two times");
        assert_eq!(compared.seq, 7, "his counter");
        assert_eq!((compared.lat, compared.lon), (f.lat, f.lon), "his position");
        assert_eq!(zone.kind(), ZoneKind::VictimLocation);
        assert_eq!(zone.id().as_str(), VICTIM_ZONE_ID);
        // He is 300 m from her: inside the 500 m circle.
        assert!(zone.distance_to_edge_m(compared.lat, compared.lon, f64::INFINITY) < -150.0);
    }

    #[test]
    fn the_pair_window_edge() {
        let terms = VictimZoneTerms::default();
        let v = her(T0, 0.0, 10.0);
        // His device time exactly 120 s after hers: compared; 1 ms more: not.
        let at = |ms| {
            let f = fix(1, T0 + ms, 0.0, 10.0);
            pair(&order(), &terms, Some(seen(&f)), Some(&v), T0 + ms + 1_000).unwrap()
        };
        assert!(matches!(at(120_000), Pairing::Compare { .. }));
        assert_eq!(at(120_001), Pairing::TooFarApart { gap_ms: 120_001 });
        // The same either way round: her position newer than his fix.
        let f = fix(1, T0, 0.0, 10.0);
        let later = her(T0 + 120_001, 0.0, 10.0);
        assert_eq!(
            pair(&order(), &terms, Some(seen(&f)), Some(&later), T0 + 121_000).unwrap(),
            Pairing::TooFarApart { gap_ms: 120_001 }
        );
    }

    #[test]
    fn a_twenty_minute_old_fix_next_to_a_fresh_position_is_not_near_now() {
        let old = fix(1, T0, 0.0, 10.0);
        let v = her(T0 + 20 * 60_000, 0.0, 10.0);
        let now = T0 + 20 * 60_000 + 1_000;
        assert_eq!(
            pair(
                &order(),
                &VictimZoneTerms::default(),
                Some(seen(&old)),
                Some(&v),
                now
            )
            .unwrap(),
            Pairing::OffenderStale
        );
        // Delivered late (buffered by the tag, received now): its device time still counts.
        let buffered = Sighting {
            fix: &old,
            received_at_ms: now,
        };
        assert_eq!(
            pair(
                &order(),
                &VictimZoneTerms::default(),
                Some(buffered),
                Some(&v),
                now
            )
            .unwrap(),
            Pairing::OffenderStale
        );
    }

    #[test]
    fn her_position_stops_counting_at_the_age_limit_by_the_server_clock() {
        let terms = VictimZoneTerms::default();
        let v = her(T0, 0.0, 10.0);
        let t = v.time_ms();
        let f = fix(1, t + 299_000, 0.0, 10.0);
        assert!(matches!(
            pair(&order(), &terms, Some(seen(&f)), Some(&v), t + 300_000).unwrap(),
            Pairing::TooFarApart { .. }
        ));
        assert_eq!(
            pair(&order(), &terms, Some(seen(&f)), Some(&v), t + 300_001).unwrap(),
            Pairing::VictimSilent { last_ms: Some(t) }
        );
        assert_eq!(
            pair(&order(), &terms, Some(seen(&f)), None, t).unwrap(),
            Pairing::VictimSilent { last_ms: None }
        );
        // A device clock running an hour fast does not keep her position alive.
        let fast = VictimPosition {
            at_ms: T0 + 3_600_000,
            received_at_ms: T0,
            ..v
        };
        assert_eq!(fast.time_ms(), T0);
        assert!(matches!(
            pair(&order(), &terms, Some(seen(&f)), Some(&fast), T0 + 300_001).unwrap(),
            Pairing::VictimSilent { .. }
        ));
    }

    /// Judges `f` against `v` a second after the newer of the two and applies the plan to
    /// `records`; returns the plan.
    fn level_after(
        records: &mut BTreeMap<ZoneId, ZoneRecord>,
        f: &Fix,
        v: &VictimPosition,
    ) -> OrderPlan {
        let now = f.at_ms.max(v.at_ms) + 1_000;
        let (compared, zone) = compare(
            pair(
                &order(),
                &VictimZoneTerms::default(),
                Some(seen(f)),
                Some(v),
                now,
            )
            .unwrap(),
        );
        let plan = plan_moving_zone(
            &terms(),
            records,
            &zone,
            &compared,
            now,
            &BreachRules::default(),
        );
        for w in &plan.writes {
            records.insert(
                w.zone_id.clone(),
                ZoneRecord {
                    state: w.state.clone(),
                    rev: w.expected_rev + 1,
                    pending: Vec::new(),
                },
            );
        }
        plan
    }

    fn level(records: &BTreeMap<ZoneId, ZoneRecord>) -> AlertLevel {
        records
            .get(&victim_zone_id())
            .map_or(AlertLevel::Clear, |r| r.state.level)
    }

    #[test]
    fn either_side_moving_raises_it() {
        // She walks towards a stationary offender: 3 km, 1.2 km (buffer), 300 m (inside).
        let mut records = BTreeMap::new();
        let him = fix(1, T0, 0.0, 10.0);
        for (i, (north, expected)) in [
            (3_000.0, AlertLevel::Clear),
            (1_200.0, AlertLevel::Warning),
            (300.0, AlertLevel::Breach),
        ]
        .into_iter()
        .enumerate()
        {
            let v = her(T0 + 30_000 * (i as i64 + 1), north, 10.0);
            level_after(&mut records, &him, &v);
            assert_eq!(level(&records), expected, "she is {north} m from him");
        }
        // He walks towards her, standing still.
        let mut records = BTreeMap::new();
        let v = her(T0, 0.0, 10.0);
        for (i, (north, expected)) in [
            (3_000.0, AlertLevel::Clear),
            (1_400.0, AlertLevel::Warning),
            (450.0, AlertLevel::Breach),
        ]
        .into_iter()
        .enumerate()
        {
            let f = fix(i as u64 + 1, T0 + 30_000 * (i as i64 + 1), north, 10.0);
            level_after(&mut records, &f, &v);
            assert_eq!(level(&records), expected, "he is {north} m from her");
        }
    }

    #[test]
    fn both_accuracies_count() {
        // He is 530 m from her: 30 m outside the 500 m circle. With 5 m accuracy on both
        // sides that is WARNING; with her fix at 30 m, the 35 m disc reaches the circle, and
        // at that accuracy it is judged a BREACH, as for a fixed zone.
        let him = fix(1, T0, 530.0, 5.0);
        let mut good = BTreeMap::new();
        level_after(&mut good, &him, &her(T0, 0.0, 5.0));
        assert_eq!(level(&good), AlertLevel::Warning);
        let mut poor = BTreeMap::new();
        level_after(&mut poor, &him, &her(T0, 0.0, 30.0));
        assert_eq!(level(&poor), AlertLevel::Breach);
    }

    #[test]
    fn a_redelivered_report_is_a_no_op_and_a_late_one_cannot_lower() {
        let mut records = BTreeMap::new();
        let near = fix(2, T0 + 60_000, 200.0, 10.0);
        let v = her(T0 + 50_000, 0.0, 10.0);
        level_after(&mut records, &near, &v);
        assert_eq!(level(&records), AlertLevel::Breach);
        let before = records.clone();
        level_after(&mut records, &near, &v);
        assert_eq!(records, before, "the same pair again changes nothing");
        // An older fix of his, far away, delivered late: it cannot lower the level.
        let late_far = fix(1, T0 + 40_000, 5_000.0, 10.0);
        level_after(&mut records, &late_far, &v);
        assert_eq!(level(&records), AlertLevel::Breach);
    }

    #[test]
    fn the_order_s_level_counts_its_fixed_zones() {
        // Home is at WARNING; the moving zone goes up and comes down: the order stays at
        // WARNING, so the change is not an all-clear.
        let home = ZoneId::new("home").unwrap();
        let mut records = BTreeMap::from([(
            home.clone(),
            ZoneRecord {
                state: crate::state::ZoneState {
                    level: AlertLevel::Warning,
                    since_ms: Some(T0),
                    ..Default::default()
                },
                rev: 3,
                pending: Vec::new(),
            },
        )]);
        let v = her(T0, 0.0, 10.0);
        level_after(&mut records, &fix(1, T0 + 10_000, 1_200.0, 10.0), &v);
        assert_eq!(level(&records), AlertLevel::Warning);
        // The moving zone clears after the clear run: reports 3 minutes apart, far apart.
        let now = T0 + 10 * 60_000;
        level_after(
            &mut records,
            &fix(2, now - 1_000, 5_000.0, 10.0),
            &her(now - 2_000, 0.0, 10.0),
        );
        let plan = level_after(
            &mut records,
            &fix(3, now + 200_000, 5_000.0, 10.0),
            &her(now + 199_000, 0.0, 10.0),
        );
        let change = plan
            .events()
            .find_map(|e| match &e.body {
                crate::events::AlertBody::ZoneChange { change, .. } => Some(change.clone()),
                _ => None,
            })
            .expect("the moving zone cleared");
        assert_eq!(
            change.transition.as_ref().map(|t| t.to),
            Some(AlertLevel::Clear)
        );
        assert_eq!(
            change.order_after,
            AlertLevel::Warning,
            "home is still at WARNING"
        );
        assert!(
            plan.writes.iter().all(|w| w.zone_id == victim_zone_id()),
            "only the moving zone steps"
        );
    }

    #[test]
    fn silence_is_told_once_and_its_end_once() {
        let silent = Pairing::VictimSilent { last_ms: Some(T0) };
        let started = silence_change(None, &silent);
        assert_eq!(started, Some(VictimSilence::Started { last_ms: Some(T0) }));
        assert_eq!(
            silence_change(Some(Some(T0)), &silent),
            None,
            "told already"
        );
        let back = Pairing::TooFarApart { gap_ms: 200_000 };
        assert_eq!(
            silence_change(Some(Some(T0)), &back),
            Some(VictimSilence::Ended { last_ms: Some(T0) })
        );
        assert_eq!(silence_change(None, &back), None);
        // His fix being stale says nothing against her: her fresh position ends the silence.
        assert_eq!(
            silence_change(Some(None), &Pairing::OffenderStale),
            Some(VictimSilence::Ended { last_ms: None })
        );
        // The start and the end of one episode are two events, each with one id however
        // often it is found.
        let (o, t, d) = (
            order(),
            TagId::new("tag-1").unwrap(),
            DeviceId::new("phone-1").unwrap(),
        );
        let start = started.unwrap().event(&o, &t, &d, T0 + 400_000);
        let again = started.unwrap().event(&o, &t, &d, T0 + 460_000);
        assert_eq!(start.event_id, again.event_id);
        let end = VictimSilence::Ended { last_ms: Some(T0) }.event(&o, &t, &d, T0 + 900_000);
        assert_ne!(start.event_id, end.event_id);
        assert!(!serde_json::to_string(&end).unwrap().contains("51.5"));
    }

    #[test]
    fn positions_parse_as_fixes_and_refusals_repeat_no_value() {
        let device = DeviceId::new("phone-v1").unwrap();
        let limits = ValidationLimits::default();
        let now = T0 + 1_000;
        let ok = format!(
            r#"{{"v":1,"seq":9,"at_ms":{T0},"lat":51.50741,"lon":-0.12776,"accuracy_m":12.5}}"#
        );
        let p = parse_position(ok.as_bytes(), &device, now, &limits).unwrap();
        assert_eq!((p.seq, p.at_ms, p.received_at_ms), (9, T0, now));
        assert_eq!((p.lat, p.lon, p.accuracy_m), (51.50741, -0.12776, 12.5));
        for (payload, reason) in [
            (ok.replace("51.50741", "\"51.50741\""), "malformed"),
            (ok.replace("-0.12776", "\"NaN\""), "not_finite"),
            (ok.replace("51.50741", "91.5"), "latitude_out_of_range"),
            (
                ok.replace(&T0.to_string(), &(T0 + 3_600_000).to_string()),
                "device_time_in_future",
            ),
        ] {
            let e = parse_position(payload.as_bytes(), &device, now, &limits).unwrap_err();
            let text = e.to_string();
            assert_eq!(e.reason, reason, "{payload}: {text}");
            assert!(
                !text.contains("51.5") && !text.contains("0.127") && !text.contains("91.5"),
                "{text}"
            );
        }
    }

    #[test]
    fn her_position_never_prints() {
        let v = her(T0, 1_234.0, 10.0);
        let text = format!("{v:?}");
        assert!(!text.contains("51.5") && !text.contains("-0.12"), "{text}");
    }
}
