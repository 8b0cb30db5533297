//! What the console shows, built from vigil-admin's views and the watchdog's reading of a tag:
//! the alert queue in order of urgency, one order's picture, and tags' health. Nothing here
//! carries a victim's phone number (masked) or her own positions (distances only).

use serde::Serialize;
use vigil_admin::alerts::AlertView;
use vigil_admin::orders::OrderView;
use vigil_aws::ports::WatchedTag;
use vigil_core::audit::AuditRecord;
use vigil_core::history::TrackedFix;
use vigil_core::ingest::ZoneRecord;
use vigil_core::watchdog::{self, Condition};
use vigil_core::{AlertLevel, OrderId, TagId, Zone, ZoneId, ZoneKind};

/// How many of an order's audit records its picture carries, newest first.
pub const HISTORY_SHOWN: usize = 200;

/// An open alert in the queue.
#[derive(Debug, Clone, Serialize)]
pub struct QueuedAlert {
    /// The alert and who acknowledged its current state.
    #[serde(flatten)]
    pub view: AlertView,
    /// A breach nobody has acknowledged: top of the queue, shown as urgent.
    pub urgent: bool,
}

/// The open alerts in order of urgency: unacknowledged before acknowledged, breach before
/// warning, the longest-standing first, then by order and zone (a stable order for a stable
/// state).
pub fn queue(alerts: Vec<AlertView>) -> Vec<QueuedAlert> {
    let mut queued: Vec<QueuedAlert> = alerts
        .into_iter()
        .map(|view| QueuedAlert {
            urgent: view.alert.level == AlertLevel::Breach && view.acknowledged_by.is_none(),
            view,
        })
        .collect();
    queued.sort_by(|a, b| {
        let key = |q: &QueuedAlert| {
            (
                q.view.acknowledged_by.is_some(),
                std::cmp::Reverse(q.view.alert.level),
                q.view.alert.since_ms.unwrap_or(i64::MAX),
            )
        };
        key(a).cmp(&key(b)).then_with(|| {
            (&a.view.alert.order_id, &a.view.alert.zone_id)
                .cmp(&(&b.view.alert.order_id, &b.view.alert.zone_id))
        })
    });
    queued
}

/// A zone as the map draws it: its specification (shape, buffer, kind, schedule, validity)
/// and whether it is in force now.
#[derive(Debug, Clone, Serialize)]
pub struct ZoneOnMap {
    /// The zone as written.
    #[serde(flatten)]
    pub spec: serde_json::Value,
    /// In force now (validity and schedule).
    pub in_force: bool,
}

/// A zone's state.
#[derive(Debug, Clone, Serialize)]
pub struct StateView {
    /// The zone.
    pub zone_id: ZoneId,
    /// Its level.
    pub level: AlertLevel,
    /// Device time the level began, Unix ms.
    pub since_ms: Option<i64>,
    /// The state's revision.
    pub rev: u64,
}

/// One accepted fix of the tag's recent track.
#[derive(Debug, Clone, Serialize)]
pub struct TrackPoint {
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
    /// Accuracy radius, metres.
    pub accuracy_m: f64,
    /// Device time, Unix ms.
    pub at_ms: i64,
    /// Server receive time, Unix ms.
    pub received_at_ms: i64,
    /// Battery, percent, when the tag said.
    pub battery_pct: Option<u8>,
}

impl TrackPoint {
    fn of(fix: &TrackedFix) -> TrackPoint {
        TrackPoint {
            lat: fix.lat,
            lon: fix.lon,
            accuracy_m: fix.accuracy_m,
            at_ms: fix.at_ms,
            received_at_ms: fix.received_at_ms,
            battery_pct: fix.battery_pct,
        }
    }
}

/// A tag's health as the watchdog judges it now.
#[derive(Debug, Clone, Serialize)]
pub struct TagHealth {
    /// The tag.
    pub tag_id: TagId,
    /// The orders restraining it that the caller may see.
    pub orders: Vec<OrderId>,
    /// Server receive time of its newest accepted message, Unix ms.
    pub last_seen_ms: Option<i64>,
    /// Device time of its newest accepted fix, Unix ms.
    pub last_fix_at_ms: Option<i64>,
    /// Battery of its newest accepted fix, percent.
    pub battery_pct: Option<u8>,
    /// The conditions holding now for any of those orders (`silence`, `no_gps`, `tamper`,
    /// `battery_low`), by the watchdog's rule (with its batching window).
    pub conditions: Vec<&'static str>,
    /// Silent or without GPS: contact lost.
    pub silent: bool,
    /// The batching window it was last told, seconds (0: sends every fix at once).
    pub batch_window_s: u32,
}

/// The health of `tag`, for the orders in `visible`, at `now_ms`.
pub fn health(tag: &WatchedTag, visible: &[OrderId], now_ms: i64) -> TagHealth {
    let orders: Vec<_> = watchdog::allowing_window(&tag.orders, tag.window_s)
        .into_iter()
        .filter(|t| visible.contains(&t.order_id))
        .collect();
    let holding: std::collections::BTreeSet<Condition> = orders
        .iter()
        .flat_map(|terms| {
            Condition::ALL
                .into_iter()
                .filter(|c| c.holds(terms, &tag.history, now_ms))
        })
        .collect();
    let newest = tag.history.fixes.first();
    TagHealth {
        tag_id: tag.tag_id.clone(),
        orders: orders.iter().map(|t| t.order_id.clone()).collect(),
        last_seen_ms: tag.history.last_received_ms,
        last_fix_at_ms: newest.map(|f| f.at_ms),
        battery_pct: newest.and_then(|f| f.battery_pct),
        conditions: holding.iter().map(|c| c.name()).collect(),
        silent: holding.iter().any(|c| c.loses_contact()),
        batch_window_s: tag.window_s,
    }
}

/// One order as its operators see it.
#[derive(Debug, Clone, Serialize)]
pub struct Picture {
    /// The order, its victim's phone masked.
    pub order: OrderView,
    /// Its fixed zones, for the map (never the zone around her own device).
    pub zones: Vec<ZoneOnMap>,
    /// Each zone's state.
    pub states: Vec<StateView>,
    /// The tag's recent accepted fixes, newest first (the history keeps the last few).
    pub track: Vec<TrackPoint>,
    /// When she carries a device: the newest fix's distance to the edge of her moving zone,
    /// metres (negative inside). A distance only: her position is never shown.
    pub victim_distance_m: Option<f64>,
    /// The tag's health, for this order.
    pub health: Option<TagHealth>,
    /// The order's audit records, newest first, at most [`HISTORY_SHOWN`].
    pub history: Vec<AuditRecord>,
}

/// The parts of a picture, read by the API.
pub struct PictureParts<'a> {
    /// The order's view (masked).
    pub order: OrderView,
    /// Its zones.
    pub zones: &'a [Zone],
    /// Its zone states.
    pub states: std::collections::BTreeMap<ZoneId, ZoneRecord>,
    /// Its tag as the watchdog reads it, if the tag has an item.
    pub tag: Option<&'a WatchedTag>,
    /// Its audit chain.
    pub chain: Vec<AuditRecord>,
}

impl Picture {
    /// The picture of order `order_id` from its parts, at `now_ms`.
    pub fn new(order_id: &OrderId, parts: PictureParts<'_>, now_ms: i64) -> Picture {
        let zones = parts
            .zones
            .iter()
            .filter(|z| z.kind() != ZoneKind::VictimLocation)
            .map(|z| ZoneOnMap {
                spec: serde_json::to_value(z.spec()).expect("zones serialize"),
                in_force: z.in_force(now_ms),
            })
            .collect();
        let states = parts
            .states
            .into_iter()
            .map(|(zone_id, r)| StateView {
                zone_id,
                level: r.state.level,
                since_ms: r.state.since_ms,
                rev: r.rev,
            })
            .collect();
        let fixes = parts.tag.map(|t| t.history.fixes.as_slice()).unwrap_or(&[]);
        let mut history = parts.chain;
        history.reverse();
        history.truncate(HISTORY_SHOWN);
        Picture {
            order: parts.order,
            zones,
            states,
            track: fixes.iter().map(TrackPoint::of).collect(),
            victim_distance_m: fixes
                .first()
                .and_then(|f| f.victim_edge_m.get(order_id).copied()),
            health: parts
                .tag
                .map(|t| health(t, std::slice::from_ref(order_id), now_ms)),
            history,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_aws::ports::OpenAlert;

    fn alert(order: &str, zone: &str, level: AlertLevel, since: i64, ack: bool) -> AlertView {
        AlertView {
            alert: OpenAlert {
                tag_id: TagId::new("t1").unwrap(),
                order_id: OrderId::new(order).unwrap(),
                zone_id: ZoneId::new(zone).unwrap(),
                level,
                since_ms: Some(since),
                state_rev: 1,
            },
            acknowledged_by: ack.then(|| "local:alice".to_owned()),
        }
    }

    #[test]
    fn the_queue_puts_unacknowledged_breaches_first_then_the_oldest() {
        let q = queue(vec![
            alert("o1", "work", AlertLevel::Warning, 10, false),
            alert("o2", "home", AlertLevel::Breach, 30, true),
            alert("o3", "home", AlertLevel::Breach, 20, false),
            alert("o4", "school", AlertLevel::Breach, 5, false),
        ]);
        let order: Vec<(&str, bool)> = q
            .iter()
            .map(|a| (a.view.alert.order_id.as_str(), a.urgent))
            .collect();
        assert_eq!(
            order,
            [("o4", true), ("o3", true), ("o1", false), ("o2", false)]
        );
    }
}
