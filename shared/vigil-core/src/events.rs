//! The messages between functions: alert events (ingest -> alert queue -> alert function) and
//! the operator event kinds that name what happened.

use crate::evaluate::AlertLevel;
use crate::evaluate::Assessment;
use crate::fix::{Fix, TagEventKind};
use crate::ids::{OrderId, TagId, ZoneId};
use crate::policy::OrderChange;
use crate::state::{Cause, Escalation};
use crate::zone::ZoneKind;
use serde::{Deserialize, Serialize};

/// One thing the alert function must act on. Its `event_id` is deterministic, so the same
/// event delivered twice (or computed twice by concurrent invocations) is handled once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// Deterministic id: see [`AlertEvent::zone_change_id`] and [`AlertEvent::tag_event_id`].
    pub event_id: String,
    /// The order concerned.
    pub order_id: OrderId,
    /// The offender's tag.
    pub tag_id: TagId,
    /// Device time of the cause, Unix ms.
    pub at_ms: i64,
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
    },
    /// The tag reported an event.
    TagEvent {
        /// What it reported.
        kind: TagEventKind,
        /// The tag's message counter.
        seq: u64,
        /// Battery charge, percent, when sent.
        battery_pct: Option<u8>,
    },
}

impl AlertEvent {
    /// The id of a zone change: the zone state's revision after the change identifies it, so
    /// two invocations racing on the same state produce the same id, and only one commits.
    pub fn zone_change_id(order_id: &OrderId, zone_id: &ZoneId, state_rev: u64) -> String {
        format!("zc:{order_id}:{zone_id}:{state_rev}")
    }

    /// The id of a tag event for an order: the tag's message counter identifies it.
    pub fn tag_event_id(order_id: &OrderId, tag_id: &TagId, seq: u64) -> String {
        format!("te:{order_id}:{tag_id}:{seq}")
    }

    /// The operator event kinds this event stands for (see [`operator_kinds`]).
    pub fn operator_kinds(&self) -> Vec<String> {
        match &self.body {
            AlertBody::ZoneChange { change, .. } => operator_kinds(change),
            AlertBody::TagEvent { kind, .. } => vec![tag_event_kind(*kind)],
        }
    }
}

/// The operator event kind of a tag event: `tag_event:<kind>`.
pub fn tag_event_kind(kind: TagEventKind) -> String {
    let name = serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    format!("tag_event:{name}")
}

/// The operator event kinds of a zone change, the one vocabulary that operators, scenarios and
/// the audit log use: `zone_warning`, `zone_breach`, `zone_step_down`, `zone_clear`,
/// `zone_out_of_force`, `late_fix` (added to a raise caused by a late fix),
/// `breach_persisting`, `breach_repeated`.
pub fn operator_kinds(change: &OrderChange) -> Vec<String> {
    let mut kinds = Vec::new();
    if let Some(t) = &change.transition {
        kinds.push(
            match (t.cause, t.to) {
                (Cause::OutOfForce, _) => "zone_out_of_force",
                (Cause::SustainedExit, AlertLevel::Clear) => "zone_clear",
                (Cause::SustainedExit, _) => "zone_step_down",
                (_, AlertLevel::Breach) => "zone_breach",
                (_, AlertLevel::Warning) => "zone_warning",
                (_, AlertLevel::Clear) => "zone_clear",
            }
            .to_owned(),
        );
        if t.cause == Cause::LateFix {
            kinds.push("late_fix".to_owned());
        }
    }
    match change.escalation {
        Some(Escalation::Persisting) => kinds.push("breach_persisting".to_owned()),
        Some(Escalation::Repeated) => kinds.push("breach_repeated".to_owned()),
        None => {}
    }
    kinds
}

/// The operator event kind of a rejected message: `fix_rejected:<reason>`.
pub fn rejected_kind(reason: &str) -> String {
    format!("fix_rejected:{reason}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Transition;

    fn change(
        from: AlertLevel,
        to: AlertLevel,
        cause: Cause,
        escalation: Option<Escalation>,
    ) -> OrderChange {
        OrderChange {
            transition: Some(Transition {
                from,
                to,
                cause,
                at_ms: 0,
                late_by_ms: None,
            }),
            escalation,
            order_before: from,
            order_after: to,
            at_ms: 0,
        }
    }

    #[test]
    fn kinds() {
        use AlertLevel::*;
        assert_eq!(
            operator_kinds(&change(Clear, Warning, Cause::Entered, None)),
            ["zone_warning"]
        );
        assert_eq!(
            operator_kinds(&change(
                Warning,
                Breach,
                Cause::LateFix,
                Some(Escalation::Repeated)
            )),
            ["zone_breach", "late_fix", "breach_repeated"]
        );
        assert_eq!(
            operator_kinds(&change(Breach, Warning, Cause::SustainedExit, None)),
            ["zone_step_down"]
        );
        assert_eq!(
            operator_kinds(&change(Warning, Clear, Cause::SustainedExit, None)),
            ["zone_clear"]
        );
        assert_eq!(
            operator_kinds(&change(Breach, Clear, Cause::OutOfForce, None)),
            ["zone_out_of_force"]
        );
        assert_eq!(
            tag_event_kind(TagEventKind::StrapTamper),
            "tag_event:strap_tamper"
        );
        assert_eq!(rejected_kind("malformed"), "fix_rejected:malformed");
    }

    #[test]
    fn ids_are_deterministic() {
        let o = OrderId::new("o1").unwrap();
        assert_eq!(
            AlertEvent::zone_change_id(&o, &ZoneId::new("home").unwrap(), 7),
            "zc:o1:home:7"
        );
        assert_eq!(
            AlertEvent::tag_event_id(&o, &TagId::new("t1").unwrap(), 9),
            "te:o1:t1:9"
        );
    }
}
