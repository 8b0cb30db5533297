//! What the monitoring centre sees: the operator events, as types. The alert function
//! publishes them to the operators' topic, the simulator and the tests read them back, the CLI
//! prints them, and the watchdog and the console will use the same types. The JSON form is
//! versioned (`v`) and documented in docs/OPERATOR_EVENTS.md.
//!
//! An operator event never carries the victim's phone number, the victim's position, or a
//! zone's coordinates; it carries the offender's position (operators and courts see it).

use crate::evaluate::AlertLevel;
use crate::events::NearZone;
use crate::events::{AlertBody, AlertEvent};
use crate::fix::TagEventKind;
use crate::ids::{DeviceId, OrderId, TagId, ZoneId};
use crate::policy::{Decision, Urgency};
use crate::reporting::{Commanded, Reason};
use crate::state::{Escalation, Transition};
use crate::watchdog::Condition;
use crate::zone::ZoneKind;
use serde::{Deserialize, Serialize};

pub use crate::operator_kind::{OperatorKind, UnknownKind};

/// The version of the operator event JSON this build writes.
pub const OPERATOR_EVENT_VERSION: u32 = 1;

impl OperatorKind {
    /// The kinds an alert event stands for.
    pub fn of_event(event: &AlertEvent) -> Vec<OperatorKind> {
        match &event.body {
            AlertBody::ZoneChange { change, .. } => {
                Self::of_transition(change.transition.as_ref(), change.escalation)
            }
            AlertBody::TagEvent { kind, .. } => vec![Self::TagEvent(*kind)],
            AlertBody::RejectedNearZone { reason, .. } => {
                vec![Self::RejectedFixNearZone, Self::FixRejected(reason.clone())]
            }
            AlertBody::MessageConflict { .. } => vec![Self::MessageConflict],
            AlertBody::VictimDevice { silent: true, .. } => vec![Self::VictimDeviceSilent],
            AlertBody::VictimDevice { silent: false, .. } => vec![Self::VictimDeviceBack],
            AlertBody::Reporting { .. } => vec![Self::ReportingCommand],
            AlertBody::Watch {
                condition, started, ..
            } => vec![match (condition, started) {
                (Condition::Silence, true) => Self::TagSilent,
                (Condition::Silence, false) => Self::ContactRestored,
                (Condition::NoGps, true) => Self::GpsLost,
                (Condition::NoGps, false) => Self::GpsRestored,
                (Condition::Tamper, true) => Self::TamperUnresolved,
                (Condition::Tamper, false) => Self::TamperResolved,
                (Condition::BatteryLow, true) => Self::BatteryLowUnresolved,
                (Condition::BatteryLow, false) => Self::BatteryResolved,
            }],
            AlertBody::Escalation { .. } => vec![Self::Unacknowledged],
        }
    }
}

/// The zone an event concerns, without its geometry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZoneReport {
    /// The zone's id within its order.
    pub zone_id: ZoneId,
    /// What it protects.
    pub zone_kind: ZoneKind,
    /// Whether it was in force at the fix's time.
    pub in_force: bool,
    /// Signed geodesic distance from the offender to the zone's edge, metres (negative
    /// inside).
    pub distance_m: f64,
}

/// Where the offender's tag said it was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OffenderPosition {
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
    /// Accuracy radius, metres.
    pub accuracy_m: f64,
    /// The fix's counter.
    pub seq: u64,
}

/// The zone levels of a change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelChange {
    /// The zone's transition, if any.
    pub transition: Option<Transition>,
    /// The escalation, if any.
    pub escalation: Option<Escalation>,
    /// The order's level before the change.
    pub order_level_before: AlertLevel,
    /// The order's level after the change.
    pub order_level_after: AlertLevel,
    /// The order's level when the alert function handled the event.
    pub order_level_now: Option<AlertLevel>,
}

/// A tag's own report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TagEventReport {
    /// What it reported.
    pub kind: TagEventKind,
    /// Its counter.
    pub seq: u64,
}

/// A message the pipeline refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectionReport {
    /// The stable reason code.
    pub reason: String,
    /// The explanation.
    pub detail: String,
    /// For a rejected fix near a zone: the level it would have raised the zone to.
    pub would_raise_to: Option<AlertLevel>,
}

/// A counter repeated with other content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConflictReport {
    /// `fix` or `event`.
    pub channel: String,
    /// The counter.
    pub seq: u64,
    /// Digest of the content first seen under it.
    pub previous_hash: String,
    /// Digest of this content.
    pub hash: String,
}

/// The victim's own device's reporting (never her position).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VictimDeviceReport {
    /// Her device.
    pub device_id: DeviceId,
    /// Whether it is silent now.
    pub silent: bool,
    /// The time of her last position before the silence, Unix ms.
    pub last_report_ms: Option<i64>,
}

/// What the watchdog found (docs/WATCHDOG.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchReport {
    /// `silence` or `no_gps`.
    pub condition: Condition,
    /// Started (true) or ended.
    pub started: bool,
    /// The time the condition is measured from, Unix ms (server time).
    pub since_ms: Option<i64>,
    /// How long ago the tag's last known position was received, seconds.
    pub last_fix_age_s: Option<i64>,
    /// The zone the last fix was near when it started, if any (the victim was told).
    pub near: Option<NearZone>,
}

/// An urgent alert sent again because nobody acknowledged it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EscalationReport {
    /// The urgent event not acknowledged (what `vigil alerts ack --event` takes).
    pub event_id: String,
    /// Its main kind.
    pub kind: OperatorKind,
    /// The zone it is about, if any.
    pub zone_id: Option<ZoneId>,
    /// The how-manyth time it is sent again, from 1.
    pub count: u32,
}

/// A reporting command sent while handling the event (pursuit mode).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandReport {
    /// The tag or her device.
    pub device: Commanded,
    /// The interval it was told, seconds.
    pub report_interval_s: u32,
    /// Why.
    pub reason: Reason,
    /// The how-manyth publish of this interval.
    pub attempts: u32,
    /// Why the publish failed, when it did (ingest asks again on the device's next message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
}

/// An urgent event routed to another force, whose area it happened in: what a response needs
/// and nothing of the victim ([`OperatorEvent::for_responders`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponderEvent {
    /// JSON version.
    pub v: u32,
    /// Always `responders`: this is not the case's own operator event.
    pub audience: String,
    /// The event's main kind.
    pub kind: OperatorKind,
    /// Always urgent.
    pub urgency: Urgency,
    /// A random reference, recorded in the case's audit chain beside the event it stands for.
    pub reference: String,
    /// The force whose case it is, to call.
    pub case_force: Option<crate::ForceId>,
    /// The offender's tag.
    pub tag_id: TagId,
    /// Where the tag said the offender was.
    pub offender: OffenderPosition,
    /// Device time, RFC 3339.
    pub at: Option<String>,
    /// Device time, Unix ms.
    pub at_ms: i64,
    /// Server receive time, Unix ms.
    pub received_at_ms: i64,
}

/// One event as the monitoring centre receives it (JSON version [`OPERATOR_EVENT_VERSION`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatorEvent {
    /// JSON version.
    pub v: u32,
    /// The main kind: the first of `kinds`.
    pub kind: OperatorKind,
    /// Every kind the event stands for.
    pub kinds: Vec<OperatorKind>,
    /// How fast operators must act.
    pub urgency: Urgency,
    /// The alert event's id (its idempotency key).
    pub event_id: String,
    /// The order.
    pub order_id: OrderId,
    /// The offender's tag.
    pub tag_id: TagId,
    /// Device time of the cause, RFC 3339.
    pub at: Option<String>,
    /// Device time of the cause, Unix ms.
    pub at_ms: i64,
    /// Server receive time of the cause, Unix ms.
    pub received_at_ms: i64,
    /// Handled more than the order's `max_event_age_s` after it was received.
    pub late: bool,
    /// The zone, for zone events.
    pub zone: Option<ZoneReport>,
    /// The levels, for zone changes.
    pub levels: Option<LevelChange>,
    /// Where the tag said the offender was, for fix-based events.
    pub offender: Option<OffenderPosition>,
    /// Battery charge the tag last sent, percent.
    pub battery_pct: Option<u8>,
    /// The tag's report, for tag events.
    pub tag_event: Option<TagEventReport>,
    /// The refusal, for rejected messages.
    pub rejection: Option<RejectionReport>,
    /// The counter conflict, when there is one.
    pub conflict: Option<ConflictReport>,
    /// Her own device's reporting, for its silence and its return.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub victim_device: Option<VictimDeviceReport>,
    /// Reporting commands sent (pursuit mode).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<CommandReport>,
    /// What the watchdog found, for its events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch: Option<WatchReport>,
    /// The alert not acknowledged, for `unacknowledged`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<EscalationReport>,
    /// The force the order belongs to (docs/FORCES.md); absent for an order not migrated yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_id: Option<crate::ForceId>,
    /// What the victim got: `none`, `sent:<alert>` or `held:<alert>:<reason>`
    /// ([`crate::VictimDecision::label`]).
    pub victim_sms: String,
}

impl OperatorEvent {
    /// The operator event for an alert event and the policy's decision on it, handled at
    /// `now_ms` with the order's level `level_now` (zone changes).
    pub fn new(
        event: &AlertEvent,
        decision: &Decision,
        late: bool,
        level_now: Option<AlertLevel>,
    ) -> OperatorEvent {
        let kinds = OperatorKind::of_event(event);
        let mut out = OperatorEvent {
            v: OPERATOR_EVENT_VERSION,
            kind: kinds.first().cloned().unwrap_or(OperatorKind::ZoneClear),
            kinds,
            urgency: decision.urgency,
            event_id: event.event_id.clone(),
            order_id: event.order_id.clone(),
            tag_id: event.tag_id.clone(),
            at: chrono::DateTime::from_timestamp_millis(event.at_ms)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            at_ms: event.at_ms,
            received_at_ms: event.received_at_ms,
            late,
            zone: None,
            levels: None,
            offender: None,
            battery_pct: None,
            tag_event: None,
            rejection: None,
            conflict: None,
            victim_device: None,
            commands: Vec::new(),
            watch: None,
            escalation: None,
            force_id: None,
            victim_sms: decision.victim.label(),
        };
        let position = |fix: &crate::Fix| OffenderPosition {
            lat: fix.lat,
            lon: fix.lon,
            accuracy_m: fix.accuracy_m,
            seq: fix.seq,
        };
        match &event.body {
            AlertBody::ZoneChange {
                zone_id,
                zone_kind,
                assessment,
                change,
                fix,
                ..
            } => {
                out.zone = Some(ZoneReport {
                    zone_id: zone_id.clone(),
                    zone_kind: *zone_kind,
                    in_force: assessment.in_force,
                    distance_m: assessment.distance_m,
                });
                out.levels = Some(LevelChange {
                    transition: change.transition.clone(),
                    escalation: change.escalation,
                    order_level_before: change.order_before,
                    order_level_after: change.order_after,
                    order_level_now: level_now,
                });
                out.offender = Some(position(fix));
                out.battery_pct = fix.battery_pct;
            }
            AlertBody::TagEvent {
                kind,
                seq,
                battery_pct,
                ..
            } => {
                out.tag_event = Some(TagEventReport {
                    kind: *kind,
                    seq: *seq,
                });
                out.battery_pct = *battery_pct;
            }
            AlertBody::RejectedNearZone {
                reason,
                detail,
                fix,
                zone_id,
                zone_kind,
                entry,
                distance_m,
            } => {
                out.zone = Some(ZoneReport {
                    zone_id: zone_id.clone(),
                    zone_kind: *zone_kind,
                    in_force: true,
                    distance_m: *distance_m,
                });
                out.offender = Some(position(fix));
                out.battery_pct = fix.battery_pct;
                out.rejection = Some(RejectionReport {
                    reason: reason.clone(),
                    detail: detail.clone(),
                    would_raise_to: Some(*entry),
                });
            }
            AlertBody::MessageConflict {
                channel,
                seq,
                previous_hash,
                hash,
                fix,
                kind,
            } => {
                out.offender = fix.as_ref().map(position);
                out.tag_event = kind.map(|kind| TagEventReport { kind, seq: *seq });
                out.conflict = Some(ConflictReport {
                    channel: channel.clone(),
                    seq: *seq,
                    previous_hash: previous_hash.clone(),
                    hash: hash.clone(),
                });
            }
            AlertBody::VictimDevice {
                device_id,
                silent,
                last_report_ms,
            } => {
                out.victim_device = Some(VictimDeviceReport {
                    device_id: device_id.clone(),
                    silent: *silent,
                    last_report_ms: *last_report_ms,
                });
            }
            // The commands it led to are added by the alert function.
            AlertBody::Reporting { .. } => {}
            AlertBody::Watch {
                condition,
                started,
                episode_ms,
                last_fix,
                near,
            } => {
                if let Some(f) = last_fix {
                    out.offender = Some(OffenderPosition {
                        lat: f.lat,
                        lon: f.lon,
                        accuracy_m: f.accuracy_m,
                        seq: f.seq,
                    });
                    out.battery_pct = f.battery_pct;
                }
                out.watch = Some(WatchReport {
                    condition: *condition,
                    started: *started,
                    since_ms: *episode_ms,
                    last_fix_age_s: last_fix
                        .as_ref()
                        .map(|f| (event.received_at_ms - f.received_at_ms) / 1000),
                    near: near.clone(),
                });
            }
            AlertBody::Escalation {
                original_id,
                kind,
                zone_id,
                count,
            } => {
                out.escalation = Some(EscalationReport {
                    event_id: original_id.clone(),
                    kind: kind.clone(),
                    zone_id: zone_id.clone(),
                    count: *count,
                });
            }
        }
        out
    }

    /// What another force's operators get when this urgent event happened inside their area
    /// (docs/FORCES.md, routing by place): where the offender is, when, what kind, and whose
    /// case it is; nothing of the victim (no order or zone id, which name her places, no
    /// phone, no zone geometry). `reference` is a random token the caller records in the
    /// case's audit chain, so the case's force can match the two and nobody else can derive
    /// the case from it. `None` for an event that is not urgent or has no position.
    pub fn for_responders(&self, reference: String) -> Option<ResponderEvent> {
        if self.urgency != Urgency::Urgent {
            return None;
        }
        let offender = self.offender.clone()?;
        Some(ResponderEvent {
            v: OPERATOR_EVENT_VERSION,
            audience: "responders".into(),
            kind: self.kind.clone(),
            urgency: self.urgency,
            reference,
            case_force: self.force_id.clone(),
            tag_id: self.tag_id.clone(),
            offender,
            at: self.at.clone(),
            at_ms: self.at_ms,
            received_at_ms: self.received_at_ms,
        })
    }

    /// The subject line for the operators' topic: urgency, kind, order. No personal data.
    pub fn subject(&self) -> String {
        format!(
            "Vigil {} {} {}",
            self.urgency.name().to_ascii_uppercase(),
            self.kind,
            self.order_id
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_is_an_operator_event() {
        let doc = include_str!("../../../docs/OPERATOR_EVENTS.md");
        let json = doc
            .split("```json")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("docs/OPERATOR_EVENTS.md has its example");
        let event: OperatorEvent = serde_json::from_str(json).unwrap();
        assert_eq!(event.v, OPERATOR_EVENT_VERSION);
        assert_eq!(event.kind, OperatorKind::ZoneBreach);
        let back: serde_json::Value = serde_json::to_value(&event).unwrap();
        let doc_value: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(
            back, doc_value,
            "the example is exactly what the code writes"
        );
    }
}
