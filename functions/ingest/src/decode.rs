//! From the IoT rule's event to a validated message.
//!
//! The rule (`infra/rules/ingest.sql`) gives the raw payload in base64, the topic's tag id and
//! channel, the MQTT client id of the publisher and IoT Core's receive time. Everything is
//! checked here, in this order: the event's shape, the payload's size, base64, the tag id, that
//! the publishing client is the topic's tag, the channel, then the payload itself
//! ([`vigil_core::fix::parse_fix`] / [`parse_event`]).

use crate::Rejection;
use base64::Engine;
use serde::Deserialize;
use vigil_core::fix::{BatchItem, parse_event, parse_fixes};
use vigil_core::proximity::{VictimPosition, parse_position};
use vigil_core::{DeviceId, FixError, TagEvent, TagId, ValidationLimits};

/// The event the IoT rule sends (see `infra/rules/ingest.sql`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RuleEvent {
    /// The raw MQTT payload, base64.
    pub payload: String,
    /// `topic(2)`: the tag's thing name.
    pub tag_id: String,
    /// `topic(3)`: `fix` or `event`.
    pub channel: String,
    /// `clientid()`: the MQTT client id of the connection that published (the tag policy
    /// binds it to the certificate's thing).
    pub client_id: String,
    /// `timestamp()`: when IoT Core received the message, Unix ms.
    pub received_at: i64,
}

/// The fixes of one message on a tag's fix channel, as decoded: the topic's tag, and each fix
/// in counter order, accepted by the wire checks or refused with its bytes.
#[derive(Debug, Clone)]
pub struct Fixes {
    /// The tag (the topic's).
    pub tag_id: TagId,
    /// One (v1) or more (v2) fixes.
    pub items: Vec<BatchItem>,
}

/// A validated message with its receive time and raw payload.
#[derive(Debug, Clone)]
pub struct Received<T> {
    /// The message.
    pub message: T,
    /// Server receive time, Unix ms.
    pub received_at_ms: i64,
    /// The payload as published (kept if the message is rejected later).
    pub payload: Vec<u8>,
}

/// A message refused while decoding.
#[derive(Debug, Clone)]
pub struct Refused {
    /// The tag as the event named it (possibly not a valid id).
    pub tag_id: String,
    /// Server receive time, Unix ms (0 when the event had none).
    pub received_at_ms: i64,
    /// Why.
    pub rejection: Rejection,
    /// What of the payload could be decoded (the first bytes of an oversized one).
    pub payload: Vec<u8>,
}

/// What a rule event decodes to.
#[derive(Debug, Clone)]
pub enum Decoded {
    /// A message on the fix channel that passed the message's checks: a v1 fix, or a v2 batch
    /// whose fixes were each checked on their own.
    Fixes(Received<Fixes>),
    /// A valid tag event.
    Event(Received<TagEvent>),
    /// A valid position from a victim's own device (`infra/rules/victim.sql`).
    Position(ReceivedPosition),
    /// Refused.
    Rejected(Refused),
    /// A victim device's message refused: nothing of its payload is kept or repeated.
    RejectedPosition(RefusedPosition),
}

/// The event the victim rule sends (see `infra/rules/victim.sql`): as the tags' rule's, with
/// `device_id` where that has `tag_id`, so neither can pass for the other.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PositionEvent {
    /// The raw MQTT payload, base64.
    pub payload: String,
    /// `topic(2)`: the device's thing name.
    pub device_id: String,
    /// `topic(3)`: `position`.
    pub channel: String,
    /// `clientid()`: the MQTT client id of the connection that published.
    pub client_id: String,
    /// `timestamp()`: when IoT Core received the message, Unix ms.
    pub received_at: i64,
}

/// A valid position from her device.
#[derive(Debug, Clone)]
pub struct ReceivedPosition {
    /// Her device.
    pub device_id: DeviceId,
    /// The position, with the server's receive time.
    pub position: VictimPosition,
}

/// A refused message from a victim's device: its reason, and a detail that repeats nothing of
/// the payload (a refused value can still be her coordinate).
#[derive(Debug, Clone)]
pub struct RefusedPosition {
    /// The device as the event named it (possibly not a valid id), at most 64 characters.
    pub device: String,
    /// Server receive time, Unix ms (0 when the event had none).
    pub received_at_ms: i64,
    /// Why.
    pub rejection: Rejection,
}

/// The longest refusal detail kept: serde's messages quote the offending value, which for a
/// whole event sent as a JSON string is the whole event (found by fuzzing, `rule_event`).
pub const MAX_DETAIL_CHARS: usize = 240;

/// `detail`, cut to [`MAX_DETAIL_CHARS`] characters with a note of how much was cut.
fn short(detail: String) -> String {
    let total = detail.chars().count();
    if total <= MAX_DETAIL_CHARS {
        return detail;
    }
    let kept: String = detail.chars().take(MAX_DETAIL_CHARS).collect();
    format!("{kept}… ({} more characters)", total - MAX_DETAIL_CHARS)
}

fn refuse(tag_id: &str, received_at_ms: i64, reason: &str, detail: String) -> Refused {
    let detail = short(detail);
    Refused {
        tag_id: tag_id.to_owned(),
        received_at_ms,
        rejection: Rejection {
            reason: reason.to_owned(),
            detail,
        },
        payload: Vec::new(),
    }
}

/// Decodes and validates a rule event: a tag's (`tag_id`) or a victim device's (`device_id`).
pub fn decode(event: serde_json::Value, limits: &ValidationLimits) -> Decoded {
    if event.get("device_id").is_some() && event.get("tag_id").is_none() {
        return decode_position(event, limits);
    }
    let raw_tag = event
        .get("tag_id")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .chars()
        .take(128)
        .collect::<String>();
    let received_at_ms = event
        .get("received_at")
        .and_then(|v| v.as_i64())
        .unwrap_or(0);
    let rule: RuleEvent = match serde_json::from_value(event) {
        Ok(e) => e,
        Err(e) => {
            let detail = format!("event is not the rule's shape: {e}");
            return Decoded::Rejected(refuse(&raw_tag, received_at_ms, "bad_event", detail));
        }
    };
    let engine = base64::engine::general_purpose::STANDARD;
    // Base64 is 4/3 of the payload: an oversized one is refused before decoding it whole,
    // keeping what the quarantine keeps of any payload (its first bytes).
    // A tag's fixes may come as a v2 batch, up to its own limit.
    let limit = limits.max_payload_bytes.max(limits.max_batch_payload_bytes);
    let max_b64 = limit.div_ceil(3) * 4 + 4;
    if rule.payload.len() > max_b64 {
        let e = FixError::PayloadTooLarge {
            bytes: rule.payload.len() / 4 * 3,
            limit,
        };
        let keep = (crate::QUARANTINE_PAYLOAD_BYTES.div_ceil(3) * 4).min(rule.payload.len());
        let mut head = engine
            .decode(rule.payload.as_bytes()[..keep].trim_ascii_end())
            .unwrap_or_default();
        head.truncate(crate::QUARANTINE_PAYLOAD_BYTES);
        return Decoded::Rejected(Refused {
            payload: head,
            ..refuse(&raw_tag, received_at_ms, e.reason(), e.to_string())
        });
    }
    let payload = match engine.decode(rule.payload.as_bytes()) {
        Ok(p) => p,
        Err(e) => {
            return Decoded::Rejected(Refused {
                payload: rule.payload.into_bytes(),
                ..refuse(
                    &raw_tag,
                    received_at_ms,
                    "malformed",
                    format!("payload is not base64: {e}"),
                )
            });
        }
    };
    let rejected = |reason: &str, detail: String, payload: Vec<u8>| {
        Decoded::Rejected(Refused {
            payload,
            ..refuse(&raw_tag, received_at_ms, reason, detail)
        })
    };
    let tag_id = match TagId::new(rule.tag_id.as_str()) {
        Ok(t) => t,
        Err(e) => return rejected("bad_tag_id", e.to_string(), payload),
    };
    if rule.client_id != rule.tag_id {
        // The topic names one tag and another connection published it: a stolen or shared
        // certificate, or a policy that lets one thing publish for another.
        let detail = format!(
            "published by client {:?}, not by the topic's tag",
            rule.client_id.chars().take(64).collect::<String>()
        );
        return rejected("client_mismatch", detail, payload);
    }
    match rule.channel.as_str() {
        "fix" => match parse_fixes(&payload, &tag_id, received_at_ms, limits) {
            Ok(items) => Decoded::Fixes(Received {
                message: Fixes { tag_id, items },
                received_at_ms,
                payload,
            }),
            Err(e) => rejected(e.reason(), e.to_string(), payload),
        },
        "event" => match parse_event(&payload, &tag_id, received_at_ms, limits) {
            Ok(message) => Decoded::Event(Received {
                message,
                received_at_ms,
                payload,
            }),
            Err(e) => rejected(e.reason(), e.to_string(), payload),
        },
        other => {
            let detail = format!(
                "topic channel {:?} is neither fix nor event",
                other.chars().take(32).collect::<String>()
            );
            rejected("unknown_channel", detail, payload)
        }
    }
}

/// Decodes and validates the victim rule's event, in the tags' order of checks: shape, size,
/// base64, device id, that the publisher is the topic's device, channel, payload
/// ([`parse_position`]). No refusal repeats anything of the payload.
fn decode_position(event: serde_json::Value, limits: &ValidationLimits) -> Decoded {
    let device: String = event
        .get("device_id")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .chars()
        .take(64)
        .collect();
    let received_at_ms = event
        .get("received_at")
        .and_then(|v| v.as_i64())
        .unwrap_or(0);
    let refused = |reason: &str, detail: &str| {
        Decoded::RejectedPosition(RefusedPosition {
            device: device.clone(),
            received_at_ms,
            rejection: Rejection {
                reason: reason.to_owned(),
                detail: detail.to_owned(),
            },
        })
    };
    let Ok(rule) = serde_json::from_value::<PositionEvent>(event) else {
        return refused("bad_event", "event is not the victim rule's shape");
    };
    let max_b64 = limits.max_payload_bytes.div_ceil(3) * 4 + 4;
    if rule.payload.len() > max_b64 {
        return refused("payload_too_large", "payload larger than the limit");
    }
    let Ok(payload) = base64::engine::general_purpose::STANDARD.decode(rule.payload.as_bytes())
    else {
        return refused("malformed", "payload is not base64");
    };
    let Ok(device_id) = DeviceId::new(rule.device_id.as_str()) else {
        return refused(
            "bad_device_id",
            "the topic's device id is not a valid thing name",
        );
    };
    if rule.client_id != rule.device_id {
        return refused(
            "client_mismatch",
            "published by another client than the topic's device",
        );
    }
    if rule.channel != "position" {
        return refused("unknown_channel", "topic channel is not position");
    }
    match parse_position(&payload, &device_id, received_at_ms, limits) {
        Ok(position) => Decoded::Position(ReceivedPosition {
            device_id,
            position,
        }),
        Err(e) => refused(e.reason, &e.to_string()),
    }
}

/// The event the victim rule gives ingest for `payload` published on
/// `victims/{device_id}/position` by the client `device_id`, received at `received_at_ms`.
pub fn position_event(device_id: &str, payload: &[u8], received_at_ms: i64) -> serde_json::Value {
    serde_json::json!({
        "payload": base64::engine::general_purpose::STANDARD.encode(payload),
        "device_id": device_id,
        "channel": "position",
        "client_id": device_id,
        "received_at": received_at_ms,
    })
}

/// The event the IoT rule gives ingest for `payload` published on `tags/{tag_id}/{channel}`
/// by the client `tag_id` and received at `received_at_ms`: for tests, the simulator and the
/// local rule bridge's checks.
pub fn rule_event(
    tag_id: &str,
    channel: &str,
    payload: &[u8],
    received_at_ms: i64,
) -> serde_json::Value {
    serde_json::json!({
        "payload": base64::engine::general_purpose::STANDARD.encode(payload),
        "tag_id": tag_id,
        "channel": channel,
        "client_id": tag_id,
        "received_at": received_at_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_event_sent_as_a_string_is_refused_with_a_short_detail() {
        // Found by `tools/fuzz.sh rule_event`: serde quotes the string in its message, so the
        // detail held the whole event (1,683 bytes for a 1,604-byte input).
        let event = serde_json::Value::String("a".repeat(5000));
        let Decoded::Rejected(r) = decoded(event) else {
            panic!("accepted a string as an event");
        };
        assert_eq!(r.rejection.reason, "bad_event");
        assert!(
            r.rejection.detail.chars().count() < MAX_DETAIL_CHARS + 40,
            "{} characters",
            r.rejection.detail.len()
        );
        assert!(
            r.rejection.detail.contains("more characters"),
            "{}",
            r.rejection.detail
        );
    }

    fn decoded(event: serde_json::Value) -> Decoded {
        decode(event, &ValidationLimits::default())
    }

    fn reason(d: Decoded) -> String {
        match d {
            Decoded::Rejected(r) => r.rejection.reason,
            other => panic!("not rejected: {other:?}"),
        }
    }

    #[test]
    fn another_client_cannot_publish_for_a_tag() {
        let mut e = rule_event("tag-1", "fix", b"{}", 0);
        e["client_id"] = "tag-2".into();
        assert_eq!(reason(decoded(e)), "client_mismatch");
        let mut e = rule_event("tag-1", "fix", b"{}", 0);
        e.as_object_mut().unwrap().remove("client_id");
        assert_eq!(reason(decoded(e)), "bad_event");
    }

    #[test]
    fn an_oversized_payload_keeps_its_first_4_kib() {
        let big = vec![b'x'; 10_000];
        match decoded(rule_event("tag-1", "fix", &big, 0)) {
            Decoded::Rejected(r) => {
                assert_eq!(r.rejection.reason, "payload_too_large");
                assert_eq!(r.payload.len(), crate::QUARANTINE_PAYLOAD_BYTES);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_json_array_says_so() {
        match decoded(rule_event("tag-1", "fix", b"[1,2]", 0)) {
            Decoded::Rejected(r) => {
                assert_eq!(r.rejection.reason, "malformed");
                assert!(r.rejection.detail.contains("found an array"), "{r:?}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn absurd_numbers_give_short_reasons() {
        let p = br#"{"v":1,"seq":1,"at_ms":0,"lat":1e308,"lon":0,"accuracy_m":5}"#;
        match decoded(rule_event("tag-1", "fix", p, 0)) {
            Decoded::Rejected(r) => {
                assert_eq!(r.rejection.reason, "latitude_out_of_range");
                assert!(r.rejection.detail.len() < 60, "{}", r.rejection.detail);
            }
            other => panic!("{other:?}"),
        }
    }
}
