//! Classifying a fix against one zone: CLEAR, WARNING or BREACH, with GPS accuracy.
//!
//! With `d` the signed geodesic distance from the fix to the zone's edge (negative inside) and
//! `a` the fix's accuracy radius:
//! - entry level (used to raise an alert):
//!   BREACH if `d <= 0`, or `d <= a` with `a` no worse than [`BreachRules::breach_accuracy_m`];
//!   WARNING if `d <= buffer` or `d <= a` (a poor fix whose disc reaches the zone);
//!   otherwise CLEAR.
//! - exit level (used to lower one): the same rules applied to `d - a - margin`, i.e. the whole
//!   uncertainty disc must be clear of the threshold by the exit margin. The exit level is
//!   never below the entry level, which is what stops GPS jitter making alerts flap.

use crate::fix::Fix;
use crate::ids::ZoneId;
use crate::zone::Zone;
use serde::{Deserialize, Serialize};

/// How dangerous the offender's position is for one zone, or for an order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum AlertLevel {
    /// Not near.
    #[default]
    Clear,
    /// Inside the warning buffer: may be nearby.
    Warning,
    /// Inside the zone, or so close that accuracy cannot tell.
    Breach,
}

/// The thresholds of breach detection and hysteresis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreachRules {
    /// Worst accuracy at which "within `a` of the zone" still counts as a breach, metres.
    pub breach_accuracy_m: f64,
    /// Extra distance beyond a threshold (plus the accuracy) a fix must be to count as out.
    pub exit_margin_m: f64,
    /// How long fixes must stay out of the buffer before the all-clear, ms.
    pub clear_after_ms: i64,
    /// How long fixes must stay out of the zone before BREACH steps down to WARNING, ms.
    pub step_down_after_ms: i64,
}

impl Default for BreachRules {
    fn default() -> Self {
        Self {
            breach_accuracy_m: 50.0,
            exit_margin_m: 50.0,
            clear_after_ms: 3 * 60_000,
            step_down_after_ms: 60_000,
        }
    }
}

impl BreachRules {
    /// Radius of the disc around a fix whose cells must be read: every zone whose warning
    /// buffer comes within this distance can have an entry or exit level above CLEAR.
    pub fn lookup_radius_m(&self, accuracy_m: f64) -> f64 {
        accuracy_m + self.exit_margin_m
    }
}

/// The entry and exit levels for a signed distance `d` to the zone edge.
pub fn classify(
    distance_m: f64,
    accuracy_m: f64,
    buffer_m: f64,
    rules: &BreachRules,
) -> (AlertLevel, AlertLevel) {
    let level = |d: f64| {
        if d <= 0.0 || (d <= accuracy_m && accuracy_m <= rules.breach_accuracy_m) {
            AlertLevel::Breach
        } else if d <= buffer_m || d <= accuracy_m {
            AlertLevel::Warning
        } else {
            AlertLevel::Clear
        }
    };
    let entry = level(distance_m);
    let exit_d = distance_m - accuracy_m - rules.exit_margin_m;
    let exit = if exit_d <= 0.0 {
        AlertLevel::Breach
    } else if exit_d <= buffer_m {
        AlertLevel::Warning
    } else {
        AlertLevel::Clear
    };
    (entry, exit.max(entry))
}

/// The distances to the zone edge at which [`classify`]'s levels can change.
fn thresholds_m(accuracy_m: f64, buffer_m: f64, rules: &BreachRules) -> [f64; 5] {
    let exit_extra = accuracy_m + rules.exit_margin_m;
    [0.0, accuracy_m, buffer_m, exit_extra, buffer_m + exit_extra]
}

/// One fix judged against one zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    /// The zone.
    pub zone_id: ZoneId,
    /// Whether the zone (and its order) was in force at the fix's time.
    pub in_force: bool,
    /// Level for raising an alert.
    pub entry: AlertLevel,
    /// Level for lowering one.
    pub exit: AlertLevel,
    /// Signed distance to the zone's edge, metres: geodesic near a threshold, otherwise the
    /// haversine estimate (within 0.6 %); geodesic on every change reported by
    /// [`crate::watch::apply_fix`].
    pub distance_m: f64,
}

/// Judges `fix` against `zone`; `order_in_force` says whether the order is in force at the
/// fix's time. A zone out of force yields CLEAR for both levels.
pub fn assess(fix: &Fix, zone: &Zone, order_in_force: bool, rules: &BreachRules) -> Assessment {
    let in_force = order_in_force && zone.in_force(fix.at_ms);
    let reach_m = zone.buffer_m() + rules.lookup_radius_m(fix.accuracy_m);
    // Decide geodesically only near a threshold: when no threshold lies within the haversine
    // estimate's error bound, the estimate gives exactly the levels the geodesic distance
    // would, at a tenth of the cost. Changes that reach people carry the geodesic distance
    // (see `watch::apply_fix`).
    let thresholds = thresholds_m(fix.accuracy_m, zone.buffer_m(), rules);
    let distance_m = match zone.distance_estimate_m(fix.lat, fix.lon) {
        Some((estimate, error))
            if !in_force || thresholds.iter().all(|t| (estimate - t).abs() > error) =>
        {
            estimate
        }
        _ => zone.distance_to_edge_m(fix.lat, fix.lon, reach_m),
    };
    let (entry, exit) = if in_force {
        classify(distance_m, fix.accuracy_m, zone.buffer_m(), rules)
    } else {
        (AlertLevel::Clear, AlertLevel::Clear)
    };
    Assessment {
        zone_id: zone.id().clone(),
        in_force,
        entry,
        exit,
        distance_m,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AlertLevel::*;

    #[test]
    fn inside_is_breach_whatever_the_accuracy() {
        let r = BreachRules::default();
        assert_eq!(classify(-1.0, 200.0, 500.0, &r).0, Breach);
        assert_eq!(classify(0.0, 0.0, 500.0, &r).0, Breach);
    }

    #[test]
    fn within_accuracy_is_breach_only_when_accuracy_is_good() {
        let r = BreachRules::default();
        assert_eq!(classify(30.0, 40.0, 0.0, &r).0, Breach);
        assert_eq!(
            classify(30.0, 60.0, 0.0, &r).0,
            Warning,
            "poor fix whose disc reaches the zone"
        );
        assert_eq!(classify(70.0, 60.0, 0.0, &r).0, Clear);
    }

    #[test]
    fn buffer_is_warning() {
        let r = BreachRules::default();
        assert_eq!(classify(499.0, 10.0, 500.0, &r).0, Warning);
        assert_eq!(classify(500.0, 10.0, 500.0, &r).0, Warning);
        assert_eq!(classify(501.0, 10.0, 500.0, &r).0, Clear);
    }

    #[test]
    fn exit_needs_accuracy_and_margin_beyond_the_threshold() {
        let r = BreachRules::default();
        // 560 m out with 20 m accuracy: entry CLEAR, but not clearly out (500 + 20 + 50 = 570).
        assert_eq!(classify(560.0, 20.0, 500.0, &r), (Clear, Warning));
        assert_eq!(classify(571.0, 20.0, 500.0, &r), (Clear, Clear));
        // 60 m out of the zone itself with 20 m accuracy: WARNING on entry, BREACH to leave.
        assert_eq!(classify(60.0, 20.0, 500.0, &r), (Warning, Breach));
        assert_eq!(classify(71.0, 20.0, 500.0, &r), (Warning, Warning));
    }

    #[test]
    fn exit_level_is_never_below_entry_level() {
        let r = BreachRules {
            exit_margin_m: 0.0,
            ..BreachRules::default()
        };
        for d in [-10.0, 0.0, 5.0, 40.0, 60.0, 499.0, 600.0] {
            for a in [0.0, 10.0, 50.0, 80.0, 250.0] {
                let (entry, exit) = classify(d, a, 500.0, &r);
                assert!(exit >= entry, "d {d} a {a}");
            }
        }
    }
}
