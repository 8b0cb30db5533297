//! The one vocabulary of what happened (`OperatorKind`): operators, scenarios, metrics and
//! the audit log all use it. It names events; it does not read them (the kinds of an alert
//! event are `OperatorKind::of_event`, in [`crate::operator`]), so the alert events can name
//! a kind too (an escalation names the kind it escalates).

use crate::evaluate::AlertLevel;
use crate::fix::TagEventKind;
use crate::state::{Cause, Escalation, Transition};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

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
    /// An urgent alert not acknowledged within the order's `ack_within_s`, sent again
    /// (docs/WATCHDOG.md, escalation).
    Unacknowledged,
}

impl OperatorKind {
    /// Every kind without a parameter, for documentation and tests.
    pub const PLAIN: [OperatorKind; 24] = [
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
        Self::Unacknowledged,
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
            Self::Unacknowledged => "unacknowledged",
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
