//! The messages between functions: alert events, from ingest through the alert queue to the
//! alert function.
//!
//! Every event carries the server's receive time of the tag message behind it
//! (`received_at_ms`, IoT Core's `timestamp()`): what the victim is told, and how often, is
//! judged by it and by the state when the event is handled, never by the tag's own clock.

use crate::evaluate::{AlertLevel, Assessment};
use crate::fix::{Fix, TagEventKind};
use crate::history::TrackedFix;
use crate::ids::{DeviceId, OrderId, TagId, ZoneId};
use crate::policy::OrderChange;
use crate::reporting::{Ask, Commanded};
use crate::watchdog::Condition;
use crate::zone::ZoneKind;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One thing the alert function must act on. Its `event_id` is deterministic, so the same
/// event delivered twice (or computed twice by concurrent invocations) is handled once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// Deterministic id: see the `*_id` constructors of [`AlertEvent`].
    pub event_id: String,
    /// The order concerned.
    pub order_id: OrderId,
    /// The offender's tag.
    pub tag_id: TagId,
    /// Device time of the cause, Unix ms: where the offender was, and when.
    pub at_ms: i64,
    /// Server receive time of the tag's message behind it, Unix ms.
    pub received_at_ms: i64,
    /// What happened.
    #[serde(flatten)]
    pub body: AlertBody,
}

/// What an alert event is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
// A queue message built once per alert and serialized at once: the size difference is harmless.
#[allow(clippy::large_enum_variant)]
pub enum AlertBody {
    /// A zone's state changed or escalated.
    ZoneChange {
        /// The zone.
        zone_id: ZoneId,
        /// What the zone protects.
        zone_kind: ZoneKind,
        /// How the fix was judged.
        assessment: Assessment,
        /// The change, with the order's level before and after.
        change: OrderChange,
        /// The fix behind it (the offender's position: operators only, victims only if the
        /// order allows).
        fix: Fix,
        /// The zone state's revision after the change.
        state_rev: u64,
    },
    /// The tag reported an event.
    TagEvent {
        /// What it reported.
        kind: TagEventKind,
        /// The tag's message counter.
        seq: u64,
        /// Battery charge, percent, when sent.
        battery_pct: Option<u8>,
        /// Digest of the message's content.
        content_hash: String,
    },
    /// A fix rejected by the speed check that, had it been accepted, would have raised a
    /// zone of the order: possibly a breach that must not vanish. Operators only.
    RejectedNearZone {
        /// The rejection's reason code (`impossible_speed`).
        reason: String,
        /// The rejection's explanation.
        detail: String,
        /// The rejected fix (the offender's position as the tag reported it).
        fix: Fix,
        /// The zone it would have raised.
        zone_id: ZoneId,
        /// What the zone protects.
        zone_kind: ZoneKind,
        /// The level it would have raised the zone to.
        entry: AlertLevel,
        /// Signed distance to the zone's edge, metres.
        distance_m: f64,
    },
    /// A message repeated a counter the tag had used for other content: a restarted counter,
    /// a faulty tag or a forgery. Operators only; the message itself was handled as new.
    MessageConflict {
        /// `fix` or `event`.
        channel: String,
        /// The repeated counter.
        seq: u64,
        /// Digest of the content seen before under it.
        previous_hash: String,
        /// Digest of this content.
        hash: String,
        /// The fix, when the message is one.
        fix: Option<Fix>,
        /// The event's kind, when the message is one.
        kind: Option<TagEventKind>,
    },
    /// The victim's own device stopped reporting (no position within the order's age limit
    /// when his fix was judged), or reported again after that. Operators only; never her
    /// position (docs/PROXIMITY.md).
    VictimDevice {
        /// Her device.
        device_id: DeviceId,
        /// Whether it went silent (true) or reported again (false).
        silent: bool,
        /// The time of her last position before the silence, Unix ms; `None` when the device
        /// never reported.
        last_report_ms: Option<i64>,
    },
    /// Ingest saw a device's reporting disagree with pursuit mode (docs/PROXIMITY.md), or
    /// judged a batching window, or (queued by the watchdog) an operator changed an order of
    /// the tag (`ask` = `order_changed`): the alert function decides again on the current
    /// state and commands it if needed. Never reaches the victim; operators hear of the
    /// commands it leads to.
    Reporting {
        /// The tag or her device.
        device: Commanded,
        /// What was seen.
        ask: Ask,
        /// The command ingest saw ignored: its send time, Unix ms (`ask` = `ignored`).
        sent_at_ms: Option<i64>,
        /// The batching window ingest judged allowed (`ask` = `window`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        window: Option<crate::reporting::Window>,
    },
    /// The watchdog found a tag's silence or lack of GPS starting or ending
    /// (docs/WATCHDOG.md).
    Watch {
        /// What.
        condition: Condition,
        /// Started (true) or ended.
        started: bool,
        /// The time the condition is measured from (the last message, or the last usable fix),
        /// server time, Unix ms: it names the episode.
        episode_ms: Option<i64>,
        /// The tag's last known position: its newest accepted fix, with its receive time.
        last_fix: Option<TrackedFix>,
        /// For a start: the order's zone the last fix was nearest to, within its warning
        /// buffer plus the order's `silent_victim_distance_m` (the victim is told).
        near: Option<NearZone>,
    },
    /// An urgent operator alert still not acknowledged: armed by the alert function when it
    /// told operators, queued by the watchdog when due (docs/WATCHDOG.md, escalation).
    Escalation {
        /// The urgent event not acknowledged.
        original_id: String,
        /// Its main operator kind.
        kind: crate::operator_kind::OperatorKind,
        /// The zone it is about, if any (an acknowledgement of the zone covers it).
        zone_id: Option<ZoneId>,
        /// The how-manyth time operators are told again, from 1.
        count: u32,
    },
}

/// A zone the tag's last fix was near when it went silent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NearZone {
    /// The zone, within its order.
    pub zone_id: ZoneId,
    /// What it protects.
    pub zone_kind: ZoneKind,
    /// Signed distance from the last fix to the zone's edge, metres (negative inside).
    pub distance_m: f64,
}

impl AlertEvent {
    /// The id of a zone change: the zone state's revision after the change identifies it, so
    /// two invocations racing on the same state produce the same id, and only one commits.
    pub fn zone_change_id(order_id: &OrderId, zone_id: &ZoneId, state_rev: u64) -> String {
        format!("zc:{order_id}:{zone_id}:{state_rev}")
    }

    /// The id of a tag event for an order: the tag's counter AND the content's digest, so a
    /// restarted counter can never make a new event (a tamper alert) look like a duplicate.
    pub fn tag_event_id(order_id: &OrderId, tag_id: &TagId, seq: u64, hash: &str) -> String {
        format!("te:{order_id}:{tag_id}:{seq}:{hash}")
    }

    /// The id of a change of her device's silence: the order, start or end, and the episode
    /// (her last position's time before the silence, `none` when there was none).
    pub fn victim_device_id(order_id: &OrderId, silent: bool, episode_ms: Option<i64>) -> String {
        let what = if silent { "silent" } else { "back" };
        let episode = episode_ms.map_or_else(|| "none".to_owned(), |t| t.to_string());
        format!("vd:{order_id}:{what}:{episode}")
    }

    /// The id of ingest's ask about a device's reporting: the device and the receive time of
    /// the message that showed it (one ask per message at most; the alert function publishes
    /// once per command however many asks arrive).
    pub fn reporting_id(device: &Commanded, received_at_ms: i64) -> String {
        format!("rc:{}:{}:{received_at_ms}", device.kind(), device.id())
    }

    /// The id of the ask that ends a tag's window after an operator changed one of its orders
    /// (queued by the watchdog in the minute vigil-admin armed it for): the order, the tag and
    /// the minute, so a rerun of the minute repeats the same event, handled once.
    pub fn order_changed_id(order_id: &OrderId, tag_id: &TagId, minute: i64) -> String {
        format!("oc:{order_id}:{tag_id}:{minute}")
    }

    /// The id of a watchdog change: the order, the condition, start or end, and the episode.
    pub fn watch_id(
        order_id: &OrderId,
        condition: Condition,
        started: bool,
        episode_ms: Option<i64>,
    ) -> String {
        let what = if started { "start" } else { "end" };
        let episode = episode_ms.map_or_else(|| "none".to_owned(), |t| t.to_string());
        format!("wd:{order_id}:{}:{what}:{episode}", condition.name())
    }

    /// The id of the `count`th escalation of the urgent event `original`.
    pub fn escalation_id(original: &str, count: u32) -> String {
        format!("esc:{original}:{count}")
    }

    /// The id of a rejected fix near a zone.
    pub fn rejected_near_zone_id(
        order_id: &OrderId,
        zone_id: &ZoneId,
        seq: u64,
        hash: &str,
    ) -> String {
        format!("rz:{order_id}:{zone_id}:{seq}:{hash}")
    }

    /// The id of a counter conflict.
    pub fn message_conflict_id(
        order_id: &OrderId,
        tag_id: &TagId,
        channel: &str,
        seq: u64,
        hash: &str,
    ) -> String {
        format!("mc:{order_id}:{tag_id}:{channel}:{seq}:{hash}")
    }

    /// A digest of what the event says (16 hex digits of SHA-256 over its JSON, the receive
    /// time left out: a tag's QoS 1 resend of the same message is the same event): the alert
    /// function binds its idempotency claim to it, so a claim written in advance for a
    /// predictable id cannot silence a different event that later carries that id.
    pub fn content_digest(&self) -> String {
        let meaning = AlertEvent {
            received_at_ms: 0,
            ..self.clone()
        };
        let json = serde_json::to_vec(&meaning).expect("alert events serialize");
        hex::encode(&Sha256::digest(&json)[..8])
    }

    /// The event's type name, for metrics and logs.
    pub fn type_name(&self) -> &'static str {
        match self.body {
            AlertBody::ZoneChange { .. } => "zone_change",
            AlertBody::TagEvent { .. } => "tag_event",
            AlertBody::RejectedNearZone { .. } => "rejected_near_zone",
            AlertBody::MessageConflict { .. } => "message_conflict",
            AlertBody::VictimDevice { .. } => "victim_device",
            AlertBody::Reporting { .. } => "reporting",
            AlertBody::Watch { .. } => "watch",
            AlertBody::Escalation { .. } => "escalation",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_bind_content() {
        let o = OrderId::new("o1").unwrap();
        assert_eq!(
            AlertEvent::zone_change_id(&o, &ZoneId::new("home").unwrap(), 7),
            "zc:o1:home:7"
        );
        let t = TagId::new("t1").unwrap();
        assert_eq!(
            AlertEvent::tag_event_id(&o, &t, 9, "abcd"),
            "te:o1:t1:9:abcd"
        );
        assert_ne!(
            AlertEvent::tag_event_id(&o, &t, 9, "abcd"),
            AlertEvent::tag_event_id(&o, &t, 9, "abce")
        );
    }

    #[test]
    fn the_digest_changes_with_any_field() {
        let e = AlertEvent {
            event_id: "te:o1:t1:5:x".into(),
            order_id: OrderId::new("o1").unwrap(),
            tag_id: TagId::new("t1").unwrap(),
            at_ms: 1,
            received_at_ms: 2,
            body: AlertBody::TagEvent {
                kind: TagEventKind::BatteryLow,
                seq: 5,
                battery_pct: None,
                content_hash: "x".into(),
            },
        };
        let mut forged = e.clone();
        forged.body = AlertBody::TagEvent {
            kind: TagEventKind::StrapRestored,
            seq: 5,
            battery_pct: None,
            content_hash: "x".into(),
        };
        assert_eq!(e.content_digest(), e.clone().content_digest());
        assert_ne!(e.content_digest(), forged.content_digest());
        let resent = AlertEvent {
            received_at_ms: 99,
            ..e.clone()
        };
        assert_eq!(e.content_digest(), resent.content_digest());
    }
}
