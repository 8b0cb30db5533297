//! A tag's history: the newest fixes it sent that were ACCEPTED, and when it was last heard.
//!
//! This is the one reference for judging the tag's next message: the speed check compares a
//! fix with the newest accepted ones, lateness is measured against the newest accepted one,
//! and a message repeated with the same counter is recognised here. Nothing that was rejected
//! ever enters it: a quarantined fix is never "the previous fix" (a fix dated in the year
//! 2262, or two glitches 80 km away, cannot make the next real fix look impossible or late).
//!
//! The ingest function keeps it in the `last-seen` table, one item per tag, written after the
//! fix's state changes are committed, conditionally on [`TagHistory::rev`].

use crate::fix::{Fix, FixError, TagEventKind, ValidationLimits, check_motion};
use crate::ids::{OrderId, TagId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The worst accuracy radius at which a fix still counts as a usable position for the
/// watchdog's "no GPS" rule, metres: a fix less precise than this cannot say whether the tag
/// is inside a small zone (a 150 m home zone), so a tag sending only such fixes is treated as
/// one without GPS (docs/WATCHDOG.md).
pub const USABLE_ACCURACY_M: f64 = 100.0;

/// A fix reporting at least this charge ends a `battery_low` condition (the tag is charging).
pub const BATTERY_OK_PCT: u8 = 30;

/// How many accepted fixes the history keeps: the speed check needs the two newest, and one
/// more lets a fix that arrives out of order find its neighbours.
pub const KEPT_FIXES: usize = 3;

/// One accepted fix, as the history keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackedFix {
    /// The tag's message counter.
    pub seq: u64,
    /// Device time, Unix ms.
    pub at_ms: i64,
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
    /// Accuracy radius, metres.
    pub accuracy_m: f64,
    /// Battery charge when sent, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub battery_pct: Option<u8>,
    /// Server receive time, Unix ms.
    pub received_at_ms: i64,
    /// Content digest ([`Fix::content_hash`]).
    pub hash: String,
    /// Per order whose victim carries a device, when her position could be compared with this
    /// fix (docs/PROXIMITY.md): the distance from this fix to the edge of her moving zone,
    /// metres (negative inside). A distance only, never her position: the watchdog tells her
    /// of a silence that starts near her (docs/WATCHDOG.md) without reading where she is.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub victim_edge_m: BTreeMap<OrderId, f64>,
}

impl TrackedFix {
    /// The history's record of an accepted fix.
    pub fn of(fix: &Fix, received_at_ms: i64) -> Self {
        Self {
            seq: fix.seq,
            at_ms: fix.at_ms,
            lat: fix.lat,
            lon: fix.lon,
            accuracy_m: fix.accuracy_m,
            battery_pct: fix.battery_pct,
            received_at_ms,
            hash: fix.content_hash(),
            victim_edge_m: BTreeMap::new(),
        }
    }

    /// The fix again, for the speed check.
    pub fn to_fix(&self, tag_id: &TagId) -> Fix {
        Fix {
            tag_id: tag_id.clone(),
            seq: self.seq,
            at_ms: self.at_ms,
            lat: self.lat,
            lon: self.lon,
            accuracy_m: self.accuracy_m,
            speed_mps: None,
            heading_deg: None,
            battery_pct: self.battery_pct,
        }
    }

    fn key(&self) -> (i64, u64) {
        (self.at_ms, self.seq)
    }
}

/// A tag's history of accepted messages.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TagHistory {
    /// The newest accepted fixes by device time then seq, newest first, at most
    /// [`KEPT_FIXES`].
    pub fixes: Vec<TrackedFix>,
    /// Server receive time of the newest accepted message of any kind, Unix ms.
    #[serde(default)]
    pub last_received_ms: Option<i64>,
    /// Server receive time of the newest accepted fix at most [`USABLE_ACCURACY_M`] accurate,
    /// Unix ms: the watchdog's "no GPS" rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_usable_ms: Option<i64>,
    /// Server receive time of the first accepted message this history recorded, Unix ms: the
    /// "no GPS" rule measures a tag that never sent a usable fix from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_received_ms: Option<i64>,
    /// Server receive time of the `strap_tamper` event not yet followed by `strap_restored`,
    /// Unix ms: the watchdog's "tamper unresolved" rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tamper_since_ms: Option<i64>,
    /// Server receive time of the `battery_low` event not yet followed by a fix with at least
    /// [`BATTERY_OK_PCT`] charge (charging), Unix ms: the "battery low unresolved" rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub battery_low_since_ms: Option<i64>,
    /// Server receive time of the message from which ingest last judged the tag's batching
    /// window (adaptive reporting, [`crate::batching`]), Unix ms: a tag told no window is
    /// judged again at most every few minutes (a Query of its orders' zones each time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_checked_ms: Option<i64>,
    /// Revision of the stored item; 0 when never written.
    #[serde(default)]
    pub rev: u64,
}

/// How a fix relates to what the tag already sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sighting {
    /// Not seen before.
    New,
    /// The same message again (same counter, same content): a redelivery.
    Duplicate,
    /// The same counter with other content: a restarted counter, a faulty tag or a forgery.
    /// It is judged as a new message, and operators are told.
    Conflict {
        /// Digest of the content first seen with this counter.
        previous_hash: String,
    },
}

impl TagHistory {
    /// Device time and seq of the newest accepted fix.
    pub fn newest(&self) -> Option<(i64, u64)> {
        self.fixes.first().map(TrackedFix::key)
    }

    /// Whether this fix was seen before.
    pub fn sighting(&self, fix: &Fix) -> Sighting {
        match self.fixes.iter().find(|t| t.seq == fix.seq) {
            None => Sighting::New,
            Some(t) if t.hash == fix.content_hash() => Sighting::Duplicate,
            Some(t) => Sighting::Conflict {
                previous_hash: t.hash.clone(),
            },
        }
    }

    /// The speed check: the fix must be reachable at a plausible speed from at least one of
    /// the two newest accepted fixes (so that one accepted glitch does not also reject the
    /// next good fix). Fails with [`FixError::ImpossibleSpeed`] against the newest.
    pub fn check_speed(&self, fix: &Fix, limits: &ValidationLimits) -> Result<(), FixError> {
        let checks: Vec<Result<(), FixError>> = self
            .fixes
            .iter()
            .filter(|t| t.key() != (fix.at_ms, fix.seq))
            .take(2)
            .map(|t| check_motion(&t.to_fix(&fix.tag_id), fix, limits))
            .collect();
        if checks.iter().any(Result::is_ok) {
            return Ok(());
        }
        checks.into_iter().next().unwrap_or(Ok(()))
    }

    /// The history after accepting `fix`, received at `received_at_ms`.
    pub fn with_fix(&self, fix: &Fix, received_at_ms: i64) -> TagHistory {
        let mut next = self.clone();
        let tracked = TrackedFix::of(fix, received_at_ms);
        next.fixes
            .retain(|t| t.key() != tracked.key() && t.seq != tracked.seq);
        next.fixes.push(tracked);
        next.fixes.sort_by_key(|t| std::cmp::Reverse(t.key()));
        next.fixes.truncate(KEPT_FIXES);
        next.last_received_ms = next.last_received_ms.max(Some(received_at_ms));
        next.first_received_ms = next.first_received_ms.or(Some(received_at_ms));
        if fix.accuracy_m <= USABLE_ACCURACY_M {
            next.last_usable_ms = next.last_usable_ms.max(Some(received_at_ms));
        }
        if fix.battery_pct.is_some_and(|p| p >= BATTERY_OK_PCT) {
            next.battery_low_since_ms = None;
        }
        next
    }

    /// The history after accepting `fix` (as [`TagHistory::with_fix`]) that was compared with
    /// her position for the orders of `victim_edge_m`: the distances are kept with the fix.
    pub fn with_compared_fix(
        &self,
        fix: &Fix,
        received_at_ms: i64,
        victim_edge_m: &BTreeMap<OrderId, f64>,
    ) -> TagHistory {
        let mut next = self.with_fix(fix, received_at_ms);
        let key = (fix.at_ms, fix.seq);
        if let Some(t) = next.fixes.iter_mut().find(|t| t.key() == key) {
            t.victim_edge_m = victim_edge_m.clone();
        }
        next
    }

    /// The history after accepting a tag event of `kind`: a message, and the start or end of
    /// an unresolved strap tamper or low battery.
    pub fn with_event(&self, kind: TagEventKind, received_at_ms: i64) -> TagHistory {
        let mut next = self.with_message(received_at_ms);
        match kind {
            TagEventKind::StrapTamper => {
                next.tamper_since_ms = next.tamper_since_ms.or(Some(received_at_ms));
            }
            TagEventKind::StrapRestored => next.tamper_since_ms = None,
            TagEventKind::BatteryLow => {
                next.battery_low_since_ms = next.battery_low_since_ms.or(Some(received_at_ms));
            }
            TagEventKind::NoGps | TagEventKind::PowerOff | TagEventKind::PowerOn => {}
        }
        next
    }

    /// The history after accepting a message that is not a fix.
    pub fn with_message(&self, received_at_ms: i64) -> TagHistory {
        let mut next = self.clone();
        next.last_received_ms = next.last_received_ms.max(Some(received_at_ms));
        next.first_received_ms = next.first_received_ms.or(Some(received_at_ms));
        next
    }

    /// Both histories together: what two concurrent writers saw, so that neither loses the
    /// other's fix. Keeps `self`'s revision.
    pub fn merged(&self, other: &TagHistory) -> TagHistory {
        let mut next = self.clone();
        for t in &other.fixes {
            if !next.fixes.iter().any(|n| n.key() == t.key()) {
                next.fixes.push(t.clone());
            }
        }
        next.fixes.sort_by_key(|t| std::cmp::Reverse(t.key()));
        next.fixes.truncate(KEPT_FIXES);
        next.last_received_ms = next.last_received_ms.max(other.last_received_ms);
        next.last_usable_ms = next.last_usable_ms.max(other.last_usable_ms);
        // An unresolved condition either writer saw is kept: a missed tamper is worse than
        // one reported once too long.
        next.tamper_since_ms = next.tamper_since_ms.or(other.tamper_since_ms);
        next.battery_low_since_ms = next.battery_low_since_ms.or(other.battery_low_since_ms);
        next.first_received_ms = match (next.first_received_ms, other.first_received_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn keeps_the_newest_accepted_fixes_newest_first() {
        let mut h = TagHistory::default();
        for (seq, at) in [(1, 0), (3, 120), (2, 60), (4, 180)] {
            h = h.with_fix(&fix(seq, at, 51.5), at * 1000 + 500);
        }
        let seqs: Vec<u64> = h.fixes.iter().map(|t| t.seq).collect();
        assert_eq!(seqs, vec![4, 3, 2]);
        assert_eq!(h.newest(), Some((180_000, 4)));
        assert_eq!(h.last_received_ms, Some(180_500));
    }

    #[test]
    fn duplicates_and_conflicts_are_told_apart_by_content() {
        let h = TagHistory::default().with_fix(&fix(5, 0, 51.5), 0);
        assert_eq!(h.sighting(&fix(5, 0, 51.5)), Sighting::Duplicate);
        assert!(matches!(
            h.sighting(&fix(5, 0, 51.6)),
            Sighting::Conflict { .. }
        ));
        assert_eq!(h.sighting(&fix(6, 60, 51.5)), Sighting::New);
    }

    #[test]
    fn speed_is_judged_against_accepted_fixes_only() {
        let limits = ValidationLimits::default();
        // 0.3° of latitude (33 km) in a minute is 556 m/s.
        let h = TagHistory::default().with_fix(&fix(1, 0, 51.5), 0);
        assert!(matches!(
            h.check_speed(&fix(2, 60, 51.8), &limits),
            Err(FixError::ImpossibleSpeed { .. })
        ));
        assert!(h.check_speed(&fix(2, 60, 51.505), &limits).is_ok());
        // Plausible from either of the two newest is enough.
        let h = h.with_fix(&fix(2, 60, 51.8), 60_000);
        assert!(h.check_speed(&fix(3, 120, 51.501), &limits).is_ok());
        // Nothing to compare with: nothing to reject.
        assert!(
            TagHistory::default()
                .check_speed(&fix(1, 0, 51.5), &limits)
                .is_ok()
        );
    }

    #[test]
    fn merging_keeps_both_writers_fixes() {
        let base = TagHistory::default().with_fix(&fix(1, 0, 51.5), 0);
        let a = base.with_fix(&fix(2, 60, 51.5), 60_000);
        let b = base.with_fix(&fix(3, 120, 51.5), 120_000);
        let m = a.merged(&b);
        let seqs: Vec<u64> = m.fixes.iter().map(|t| t.seq).collect();
        assert_eq!(seqs, vec![3, 2, 1]);
        assert_eq!(m.last_received_ms, Some(120_000));
    }
}
