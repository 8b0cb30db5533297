//! The audit records the alert function appends for an event, built in one place.
//!
//! Per event, in order: what happened (as ingest decided it: `zone_change`, `tag_event`,
//! `rejected_fix_near_zone`, `message_conflict`), with `claim_mismatch` first when the event's
//! claim had been written for other content; what the victim got (`sms_sent` with the keyed
//! hash of the destination, or `sms_held` with the reason); and `operator_notified` once the
//! monitoring centre has it; `command_sent` for each reporting command (pursuit mode). The
//! offender's position is recorded (courts see it); the victim's
//! number only redacted, and as its keyed hash.

use serde_json::{Value, json};
use vigil_aws::ports::AuditEntry;
use vigil_core::events::{AlertBody, AlertEvent};
use vigil_core::operator::{CommandReport, OperatorKind};
use vigil_core::policy::{Hold, Urgency, VictimAlert};

fn entry(kind: &str, detail: Value) -> AuditEntry {
    AuditEntry {
        kind: kind.to_owned(),
        detail,
    }
}

fn kinds(event: &AlertEvent) -> Vec<String> {
    OperatorKind::of_event(event)
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// The record of a claim found written for other content.
pub fn claim_mismatch(event: &AlertEvent, digest: &str, stored_digest: &str) -> AuditEntry {
    entry(
        "claim_mismatch",
        json!({
            "event_id": event.event_id,
            "digest": digest,
            "stored_digest": stored_digest,
        }),
    )
}

/// The record of what happened, as ingest decided it.
pub fn event_record(event: &AlertEvent, digest: &str) -> AuditEntry {
    let common = |mut v: Value| {
        v["event_id"] = json!(event.event_id);
        v["digest"] = json!(digest);
        v["kinds"] = json!(kinds(event));
        v["at_ms"] = json!(event.at_ms);
        v["received_at_ms"] = json!(event.received_at_ms);
        v
    };
    match &event.body {
        AlertBody::ZoneChange {
            zone_id,
            zone_kind,
            assessment,
            change,
            fix,
            state_rev,
        } => entry(
            "zone_change",
            common(json!({
                "zone_id": zone_id,
                "zone_kind": zone_kind,
                "state_rev": state_rev,
                "transition": change.transition,
                "escalation": change.escalation,
                "order_level_before": change.order_before,
                "order_level_after": change.order_after,
                "distance_m": assessment.distance_m,
                "fix": { "seq": fix.seq, "at_ms": fix.at_ms, "lat": fix.lat, "lon": fix.lon, "accuracy_m": fix.accuracy_m },
            })),
        ),
        AlertBody::TagEvent {
            kind,
            seq,
            battery_pct,
            content_hash,
        } => entry(
            "tag_event",
            common(
                json!({ "kind": kind, "seq": seq, "battery_pct": battery_pct, "content_hash": content_hash }),
            ),
        ),
        AlertBody::RejectedNearZone {
            reason,
            detail,
            fix,
            zone_id,
            zone_kind,
            entry: level,
            distance_m,
        } => entry(
            "rejected_fix_near_zone",
            common(json!({
                "reason": reason,
                "detail": detail,
                "zone_id": zone_id,
                "zone_kind": zone_kind,
                "would_raise_to": level,
                "distance_m": distance_m,
                "fix": { "seq": fix.seq, "at_ms": fix.at_ms, "lat": fix.lat, "lon": fix.lon, "accuracy_m": fix.accuracy_m },
            })),
        ),
        AlertBody::MessageConflict {
            channel,
            seq,
            previous_hash,
            hash,
            fix,
            kind,
        } => entry(
            "message_conflict",
            common(json!({
                "channel": channel,
                "seq": seq,
                "previous_hash": previous_hash,
                "hash": hash,
                "kind": kind,
                "fix": fix.as_ref().map(|f| json!({ "seq": f.seq, "at_ms": f.at_ms, "lat": f.lat, "lon": f.lon, "accuracy_m": f.accuracy_m })),
            })),
        ),
        // Her device's reporting, never her position.
        AlertBody::VictimDevice {
            device_id,
            silent,
            last_report_ms,
        } => entry(
            "victim_device",
            common(json!({
                "device_id": device_id,
                "silent": silent,
                "last_report_ms": last_report_ms,
            })),
        ),
        // The offender's last known position, as for his fixes; the zone by id and distance.
        AlertBody::Watch {
            condition,
            started,
            episode_ms,
            last_fix,
            near,
        } => entry(
            "watch",
            common(json!({
                "condition": condition,
                "started": started,
                "episode_ms": episode_ms,
                "last_fix": last_fix.as_ref().map(|f| json!({ "seq": f.seq, "at_ms": f.at_ms, "received_at_ms": f.received_at_ms, "lat": f.lat, "lon": f.lon, "accuracy_m": f.accuracy_m })),
                "near": near,
            })),
        ),
        // An urgent alert not acknowledged: which one, and how many times it was sent again.
        AlertBody::Escalation {
            original_id,
            kind,
            zone_id,
            count,
        } => entry(
            "escalation",
            common(json!({
                "original_id": original_id,
                "kind": kind,
                "zone_id": zone_id,
                "count": count,
            })),
        ),
        AlertBody::Reporting {
            device,
            ask,
            sent_at_ms,
            window,
        } => entry(
            "reporting_ask",
            common(json!({
                "device": device,
                "ask": ask,
                "sent_at_ms": sent_at_ms,
                "window": window,
            })),
        ),
    }
}

/// The record of a reporting command (pursuit mode): the device, the interval, why, the
/// attempt, and the error when the publish failed.
pub fn command_sent(event_id: &str, report: &CommandReport) -> AuditEntry {
    entry(
        "command_sent",
        json!({
            "event_id": event_id,
            "device": report.device,
            "report_interval_s": report.report_interval_s,
            "reason": report.reason,
            "attempts": report.attempts,
            "failed": report.failed,
        }),
    )
}

/// What an SMS sent records: never the number itself, only its redacted form and its keyed
/// hash (compare it with the hash the order's creation recorded to detect a redirected SMS).
pub struct SmsSent<'a> {
    /// The event.
    pub event_id: &'a str,
    /// The message.
    pub alert: VictimAlert,
    /// The number, redacted.
    pub to: String,
    /// The keyed hash of the number.
    pub to_mac: &'a str,
    /// The SMS provider's message id.
    pub message_id: &'a str,
    /// The text sent.
    pub text: &'a str,
}

/// The record of an SMS sent.
pub fn sms_sent(s: &SmsSent<'_>) -> AuditEntry {
    entry(
        "sms_sent",
        json!({
            "event_id": s.event_id,
            "alert": s.alert,
            "to": s.to,
            "to_mac": s.to_mac,
            "message_id": s.message_id,
            "segments": vigil_core::messages::sms_segments(s.text),
            "text": s.text,
        }),
    )
}

/// The record of an SMS held back, with the reason.
pub fn sms_held(event_id: &str, alert: VictimAlert, hold: Hold) -> AuditEntry {
    entry(
        "sms_held",
        json!({"event_id": event_id, "alert": alert, "reason": hold.name()}),
    )
}

/// The record of the operators' notification.
pub fn operator_notified(
    event: &AlertEvent,
    urgency: Urgency,
    message_id: &str,
    victim_sms: &str,
    late: bool,
) -> AuditEntry {
    entry(
        "operator_notified",
        json!({
            "event_id": event.event_id,
            "kinds": kinds(event),
            "zone_id": vigil_core::escalation::zone_of(event),
            "urgency": urgency,
            "message_id": message_id,
            "victim_sms": victim_sms,
            "late": late,
        }),
    )
}
