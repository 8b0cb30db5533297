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
use crate::state::{Cause, Escalation, Transition};
use crate::watchdog::Condition;
use crate::zone::ZoneKind;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// The version of the operator event JSON this build writes.
pub const OPERATOR_EVENT_VERSION: u32 = 1;

/// What happened, in the one vocabulary that operators, scenarios, metrics and the audit log
/// use. Written as a string: `zone_warning`, `tag_event:strap_tamper`,
/// `fix_rejected:impossible_speed`, ...
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OperatorKind {
    /// A zone rose to WARNING.
    ZoneWarning,
    /// A zone rose to BREACH.
    ZoneBreach,
    /// A zone stepped down from BREACH to WARNING after a sustained exit.
    ZoneStepDown,
    /// A zone cleared after a sustained exit.
    ZoneClear,
    /// A zone (or its order) stopped being in force with an alert open.
    ZoneOutOfForce,
    /// The raise was caused by a late fix (added to the raise's kind).
    LateFix,
    /// A breach has lasted beyond the order's limit.
    BreachPersisting,
    /// A new breach came soon after the previous one.
    BreachRepeated,
    /// The tag reported an event.
    TagEvent(TagEventKind),
    /// A message failed validation (`reason` is [`crate::FixError::reason`] or ingest's own).
    FixRejected(String),
    /// A fix rejected by the speed check would have raised a zone: a possible breach.
    RejectedFixNearZone,
    /// A tag repeated a message counter with other content.
    MessageConflict,
    /// The alert function found an idempotency claim for this event written for other
    /// content: a claim planted to silence the event, or a forged event. Handled anyway.
    ClaimMismatch,
    /// The victim's own device stopped reporting: her moving zone cannot be judged.
    VictimDeviceSilent,
    /// The victim's own device reports again.
    VictimDeviceBack,
    /// A device was told to report at another rate (pursuit mode on or off, or the same
    /// command again because it kept its old rate).
    ReportingCommand,
    /// A device kept its old rate through every attempt at a command: it may be faulty or
    /// tampered with.
    DeviceIgnoresCommands,
    /// The watchdog: no message from the tag for longer than the order's limit.
    TagSilent,
    /// The watchdog: the tag reports again after a silence operators were told of.
    ContactRestored,
    /// The watchdog: messages, but no usable fix for longer than the order's limit.
    GpsLost,
    /// The watchdog: a usable fix again after "GPS lost".
    GpsRestored,
    /// The watchdog: a strap tamper not restored within the order's grace period.
    TamperUnresolved,
    /// The watchdog: the strap restored after `tamper_unresolved`.
    TamperResolved,
    /// The watchdog: a low battery not charged within the order's grace period.
    BatteryLowUnresolved,
    /// The watchdog: charging again after `battery_low_unresolved`.
    BatteryResolved,
}

impl OperatorKind {
    /// Every kind without a parameter, for documentation and tests.
    pub const PLAIN: [OperatorKind; 23] = [
        Self::ZoneWarning,
        Self::ZoneBreach,
        Self::ZoneStepDown,
        Self::ZoneClear,
        Self::ZoneOutOfForce,
        Self::LateFix,
        Self::BreachPersisting,
        Self::BreachRepeated,
        Self::RejectedFixNearZone,
        Self::MessageConflict,
        Self::ClaimMismatch,
        Self::VictimDeviceSilent,
        Self::VictimDeviceBack,
        Self::ReportingCommand,
        Self::DeviceIgnoresCommands,
        Self::TagSilent,
        Self::ContactRestored,
        Self::GpsLost,
        Self::GpsRestored,
        Self::TamperUnresolved,
        Self::TamperResolved,
        Self::BatteryLowUnresolved,
        Self::BatteryResolved,
    ];

    /// The kinds of a zone change: the level change (with `late_fix` for a raise by a late
    /// fix), then the escalation.
    pub fn of_transition(
        transition: Option<&Transition>,
        escalation: Option<Escalation>,
    ) -> Vec<OperatorKind> {
        let mut kinds = Vec::new();
        if let Some(t) = transition {
            kinds.push(match (t.cause, t.to) {
                (Cause::OutOfForce, _) => Self::ZoneOutOfForce,
                (Cause::SustainedExit, AlertLevel::Clear) => Self::ZoneClear,
                (Cause::SustainedExit, _) => Self::ZoneStepDown,
                (_, AlertLevel::Breach) => Self::ZoneBreach,
                (_, AlertLevel::Warning) => Self::ZoneWarning,
                (_, AlertLevel::Clear) => Self::ZoneClear,
            });
            if t.cause == Cause::LateFix {
                kinds.push(Self::LateFix);
            }
        }
        match escalation {
            Some(Escalation::Persisting) => kinds.push(Self::BreachPersisting),
            Some(Escalation::Repeated) => kinds.push(Self::BreachRepeated),
            None => {}
        }
        kinds
    }

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
        }
    }
}

fn tag_event_name(kind: TagEventKind) -> &'static str {
    match kind {
        TagEventKind::StrapTamper => "strap_tamper",
        TagEventKind::StrapRestored => "strap_restored",
        TagEventKind::BatteryLow => "battery_low",
        TagEventKind::NoGps => "no_gps",
        TagEventKind::PowerOff => "power_off",
        TagEventKind::PowerOn => "power_on",
    }
}

impl fmt::Display for OperatorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ZoneWarning => "zone_warning",
            Self::ZoneBreach => "zone_breach",
            Self::ZoneStepDown => "zone_step_down",
            Self::ZoneClear => "zone_clear",
            Self::ZoneOutOfForce => "zone_out_of_force",
            Self::LateFix => "late_fix",
            Self::BreachPersisting => "breach_persisting",
            Self::BreachRepeated => "breach_repeated",
            Self::RejectedFixNearZone => "rejected_fix_near_zone",
            Self::MessageConflict => "message_conflict",
            Self::ClaimMismatch => "claim_mismatch",
            Self::VictimDeviceSilent => "victim_device_silent",
            Self::VictimDeviceBack => "victim_device_back",
            Self::ReportingCommand => "reporting_command",
            Self::DeviceIgnoresCommands => "device_ignores_commands",
            Self::TagSilent => "tag_silent",
            Self::ContactRestored => "contact_restored",
            Self::GpsLost => "gps_lost",
            Self::GpsRestored => "gps_restored",
            Self::TamperUnresolved => "tamper_unresolved",
            Self::TamperResolved => "tamper_resolved",
            Self::BatteryLowUnresolved => "battery_low_unresolved",
            Self::BatteryResolved => "battery_resolved",
            Self::TagEvent(k) => return write!(f, "tag_event:{}", tag_event_name(*k)),
            Self::FixRejected(r) => return write!(f, "fix_rejected:{r}"),
        })
    }
}

/// Why a string is not an operator event kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an operator event kind (see docs/OPERATOR_EVENTS.md)")]
pub struct UnknownKind(pub String);

impl FromStr for OperatorKind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Self, UnknownKind> {
        if let Some(k) = Self::PLAIN.iter().find(|k| k.to_string() == s) {
            return Ok(k.clone());
        }
        if let Some(name) = s.strip_prefix("tag_event:")
            && let Some(k) = TagEventKind::ALL
                .iter()
                .find(|k| tag_event_name(**k) == name)
        {
            return Ok(Self::TagEvent(*k));
        }
        if let Some(reason) = s.strip_prefix("fix_rejected:")
            && !reason.is_empty()
            && reason.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        {
            return Ok(Self::FixRejected(reason.to_owned()));
        }
        Err(UnknownKind(s.chars().take(80).collect()))
    }
}

impl Serialize for OperatorKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for OperatorKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
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
        }
        out
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
    fn kinds_print_and_parse_in_the_one_vocabulary() {
        for k in OperatorKind::PLAIN {
            assert_eq!(k.to_string().parse::<OperatorKind>().unwrap(), k);
        }
        for k in TagEventKind::ALL {
            let kind = OperatorKind::TagEvent(k);
            assert_eq!(kind.to_string().parse::<OperatorKind>().unwrap(), kind);
        }
        assert_eq!(
            OperatorKind::TagEvent(TagEventKind::StrapTamper).to_string(),
            "tag_event:strap_tamper"
        );
        assert_eq!(
            "fix_rejected:impossible_speed"
                .parse::<OperatorKind>()
                .unwrap(),
            OperatorKind::FixRejected("impossible_speed".into())
        );
        for bad in [
            "",
            "zone",
            "tag_event:x",
            "fix_rejected:",
            "fix_rejected:A b",
        ] {
            assert!(bad.parse::<OperatorKind>().is_err(), "{bad}");
        }
    }

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

    #[test]
    fn transition_kinds() {
        use AlertLevel::*;
        let t = |from, to, cause| Transition {
            from,
            to,
            cause,
            at_ms: 0,
            late_by_ms: None,
        };
        let k = |tr: Transition, e| OperatorKind::of_transition(Some(&tr), e);
        assert_eq!(
            k(t(Clear, Warning, Cause::Entered), None),
            [OperatorKind::ZoneWarning]
        );
        assert_eq!(
            k(
                t(Warning, Breach, Cause::LateFix),
                Some(Escalation::Repeated)
            ),
            [
                OperatorKind::ZoneBreach,
                OperatorKind::LateFix,
                OperatorKind::BreachRepeated
            ]
        );
        assert_eq!(
            k(t(Breach, Warning, Cause::SustainedExit), None),
            [OperatorKind::ZoneStepDown]
        );
        assert_eq!(
            k(t(Warning, Clear, Cause::SustainedExit), None),
            [OperatorKind::ZoneClear]
        );
        assert_eq!(
            k(t(Breach, Clear, Cause::OutOfForce), None),
            [OperatorKind::ZoneOutOfForce]
        );
    }
}
