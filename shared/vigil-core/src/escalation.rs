//! Escalation (docs/WATCHDOG.md): an urgent operator alert that nobody acknowledges within
//! the order's `ack_within_s` is sent again, as `unacknowledged`, every `renotify_every_s`
//! until an operator acknowledges it.
//!
//! The alert function arms each escalation as an alert event due at a minute (the watchdog
//! queues it then); when it comes back, the order's audit chain says whether it was
//! acknowledged. An acknowledgement (`alert_acknowledged`) names one of three scopes:
//!
//! - **an event** (`event_id`): that urgent event, wherever it is in the chain;
//! - **a zone** (`zone_id`, what `vigil alerts ack --zone` has always written): every urgent
//!   event about that zone notified before the acknowledgement;
//! - **the order** (neither): every urgent event of the order notified before it.
//!
//! An acknowledgement never covers what operators were told after it: a new breach after an
//! acknowledged one escalates on its own.

use crate::audit::AuditRecord;
use crate::events::{AlertBody, AlertEvent};
use crate::ids::ZoneId;
use crate::operator::OperatorKind;
use crate::order::OrderPolicy;
use crate::policy::Urgency;

/// The audit record kind of an acknowledgement.
pub const ACK_KIND: &str = "alert_acknowledged";

/// The audit record kind of an operator notification (the alert function's).
pub const NOTIFIED_KIND: &str = "operator_notified";

/// What an acknowledgement covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckScope {
    /// One operator event (its original id; an escalation's id names its original).
    Event(String),
    /// Every urgent event about this zone notified before the acknowledgement.
    Zone(ZoneId),
    /// Every urgent event of the order notified before the acknowledgement.
    Order,
}

impl AckScope {
    /// The scope an `alert_acknowledged` record names; `None` for another kind of record.
    pub fn of(record: &AuditRecord) -> Option<AckScope> {
        if record.kind != ACK_KIND {
            return None;
        }
        let d = &record.detail;
        if let Some(id) = d["event_id"].as_str() {
            return Some(Self::Event(original_of(id).to_owned()));
        }
        if let Some(zone) = d["zone_id"].as_str() {
            return ZoneId::new(zone).ok().map(Self::Zone);
        }
        Some(Self::Order)
    }

    /// The name written in the record's `scope`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Event(_) => "event",
            Self::Zone(_) => "zone",
            Self::Order => "order",
        }
    }
}

/// The original event an escalation id names (`esc:<original>:<n>`); any other id is its
/// own original.
pub fn original_of(event_id: &str) -> &str {
    event_id
        .strip_prefix("esc:")
        .and_then(|rest| rest.rsplit_once(':'))
        .map_or(event_id, |(original, _)| original)
}

/// The zone an event is about, for acknowledgements by zone: zone changes and rejected fixes
/// near a zone (a silence near a zone is about the tag, not the zone's state).
pub fn zone_of(event: &AlertEvent) -> Option<&ZoneId> {
    match &event.body {
        AlertBody::ZoneChange { zone_id, .. } | AlertBody::RejectedNearZone { zone_id, .. } => {
            Some(zone_id)
        }
        AlertBody::Escalation { zone_id, .. } => zone_id.as_ref(),
        _ => None,
    }
}

/// An escalation to arm: the alert event the watchdog queues when processing `minute`.
#[derive(Debug, Clone, PartialEq)]
pub struct Armed {
    /// The Unix minute it is due in: the first minute starting at or after the due time.
    pub minute: i64,
    /// The event (id `esc:<original>:<count>`).
    pub event: AlertEvent,
}

/// The next escalation of an urgent operator event handled at `now_ms`: the first,
/// `ack_within_s` after an original; the next, `renotify_every_s` after an escalation.
/// `None` when the event was not urgent.
///
/// Its content is fixed by the event (the time it is due is not part of it), so a handler
/// that runs twice arms the same event, which the alert function handles once.
pub fn next(
    event: &AlertEvent,
    kind: &OperatorKind,
    urgency: Urgency,
    policy: &OrderPolicy,
    now_ms: i64,
) -> Option<Armed> {
    if urgency != Urgency::Urgent {
        return None;
    }
    let (original, kind, zone_id, count, after_s) = match &event.body {
        AlertBody::Escalation {
            original_id,
            kind,
            zone_id,
            count,
        } => (
            original_id.clone(),
            kind.clone(),
            zone_id.clone(),
            count + 1,
            policy.renotify_every_s,
        ),
        _ => (
            event.event_id.clone(),
            kind.clone(),
            zone_of(event).cloned(),
            1,
            policy.ack_within_s,
        ),
    };
    let due_ms = now_ms + i64::from(after_s) * 1000;
    let minute = due_ms.div_euclid(60_000) + i64::from(due_ms.rem_euclid(60_000) != 0);
    Some(Armed {
        minute,
        event: AlertEvent {
            event_id: AlertEvent::escalation_id(&original, count),
            order_id: event.order_id.clone(),
            tag_id: event.tag_id.clone(),
            at_ms: event.at_ms,
            received_at_ms: due_ms,
            body: AlertBody::Escalation {
                original_id: original,
                kind,
                zone_id,
                count,
            },
        },
    })
}

/// Whether an acknowledgement record covers the urgent event `original` (about `zone`, if
/// any) that operators were first told of in the record `notified_seq` (0 when the chain does
/// not hold that notification: any acknowledgement of its zone or order then covers it).
fn covers(ack: &AuditRecord, original: &str, zone: Option<&ZoneId>, notified_seq: u64) -> bool {
    match AckScope::of(ack) {
        Some(AckScope::Event(id)) => id == original,
        Some(AckScope::Zone(z)) => ack.seq > notified_seq && zone == Some(&z),
        Some(AckScope::Order) => ack.seq > notified_seq,
        None => false,
    }
}

/// The first notification of `original` in the chain.
fn notified(chain: &[AuditRecord], original: &str) -> Option<u64> {
    chain
        .iter()
        .find(|r| r.kind == NOTIFIED_KIND && r.detail["event_id"] == original)
        .map(|r| r.seq)
}

/// The acknowledgement in the order's chain that covers the urgent event `original` (about
/// `zone`), if any.
pub fn acknowledgement<'a>(
    chain: &'a [AuditRecord],
    original: &str,
    zone: Option<&ZoneId>,
) -> Option<&'a AuditRecord> {
    let seq = notified(chain, original).unwrap_or(0);
    chain.iter().find(|r| covers(r, original, zone, seq))
}

/// An urgent operator event that no acknowledgement covers.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Unacknowledged {
    /// The event's id (what `vigil alerts ack --event` takes).
    pub event_id: String,
    /// Its kinds.
    pub kinds: Vec<String>,
    /// The zone it is about, if any.
    pub zone_id: Option<ZoneId>,
    /// When operators were first told, Unix ms.
    pub notified_at_ms: i64,
    /// How many times operators were told again (`unacknowledged`).
    pub renotified: u32,
}

/// Every urgent event of the order's chain that no acknowledgement covers, oldest first.
pub fn unacknowledged(chain: &[AuditRecord]) -> Vec<Unacknowledged> {
    let mut out: Vec<(u64, Unacknowledged)> = Vec::new();
    for r in chain.iter().filter(|r| r.kind == NOTIFIED_KIND) {
        let Some(id) = r.detail["event_id"].as_str() else {
            continue;
        };
        let original = original_of(id);
        if id != original {
            if let Some((_, u)) = out.iter_mut().find(|(_, u)| u.event_id == original) {
                u.renotified += 1;
            }
            continue;
        }
        if r.detail["urgency"] != "urgent" || out.iter().any(|(_, u)| u.event_id == id) {
            continue;
        }
        out.push((
            r.seq,
            Unacknowledged {
                event_id: id.to_owned(),
                kinds: r.detail["kinds"]
                    .as_array()
                    .map(|k| {
                        k.iter()
                            .filter_map(|k| k.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
                zone_id: r.detail["zone_id"]
                    .as_str()
                    .and_then(|z| ZoneId::new(z).ok()),
                notified_at_ms: r.recorded_at_ms,
                renotified: 0,
            },
        ));
    }
    out.into_iter()
        .filter(|(seq, u)| {
            !chain
                .iter()
                .any(|a| covers(a, &u.event_id, u.zone_id.as_ref(), *seq))
        })
        .map(|(_, u)| u)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{OrderId, TagId};
    use crate::watchdog::Condition;
    use serde_json::json;

    fn record(seq: u64, kind: &str, detail: serde_json::Value) -> AuditRecord {
        AuditRecord {
            order_id: OrderId::new("o1").unwrap(),
            seq,
            recorded_at_ms: seq as i64 * 1000,
            kind: kind.into(),
            detail,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    fn notified(seq: u64, id: &str, urgency: &str, zone: Option<&str>) -> AuditRecord {
        record(
            seq,
            NOTIFIED_KIND,
            json!({"event_id": id, "kinds": ["zone_breach"], "urgency": urgency, "zone_id": zone}),
        )
    }

    fn ack(seq: u64, detail: serde_json::Value) -> AuditRecord {
        record(seq, ACK_KIND, detail)
    }

    fn zone(z: &str) -> ZoneId {
        ZoneId::new(z).unwrap()
    }

    fn watch_event() -> AlertEvent {
        AlertEvent {
            event_id: "wd:o1:silence:start:5".into(),
            order_id: OrderId::new("o1").unwrap(),
            tag_id: TagId::new("t1").unwrap(),
            at_ms: 5,
            received_at_ms: 600_000,
            body: AlertBody::Watch {
                condition: Condition::Silence,
                started: true,
                episode_ms: Some(5),
                last_fix: None,
                near: None,
            },
        }
    }

    #[test]
    fn an_escalation_id_names_its_original() {
        assert_eq!(original_of("esc:zc:o1:home:3:2"), "zc:o1:home:3");
        assert_eq!(original_of("zc:o1:home:3"), "zc:o1:home:3");
        assert_eq!(
            original_of(&AlertEvent::escalation_id("te:o1:t1:9:ab", 4)),
            "te:o1:t1:9:ab"
        );
    }

    #[test]
    fn only_urgent_events_escalate_first_after_ack_within_then_every_renotify() {
        let policy = OrderPolicy {
            ack_within_s: 300,
            renotify_every_s: 120,
            ..OrderPolicy::default()
        };
        let e = watch_event();
        let kind = OperatorKind::TagSilent;
        assert_eq!(next(&e, &kind, Urgency::High, &policy, 60_000), None);
        // Handled at 00:01:00.5: due 00:06:00.5, processed in the minute starting 00:07.
        let first = next(&e, &kind, Urgency::Urgent, &policy, 60_500).unwrap();
        assert_eq!(first.minute, 7);
        assert_eq!(first.event.event_id, "esc:wd:o1:silence:start:5:1");
        // Exactly on a minute: that minute.
        assert_eq!(
            next(&e, &kind, Urgency::Urgent, &policy, 60_000)
                .unwrap()
                .minute,
            6
        );
        let AlertBody::Escalation {
            original_id,
            kind: k,
            zone_id,
            count,
        } = &first.event.body
        else {
            panic!("an escalation")
        };
        assert_eq!(
            (original_id.as_str(), k, zone_id, *count),
            ("wd:o1:silence:start:5", &kind, &None, 1)
        );
        // Its own handling arms the second, renotify_every_s later.
        let second = next(
            &first.event,
            &OperatorKind::Unacknowledged,
            Urgency::Urgent,
            &policy,
            420_000,
        )
        .unwrap();
        assert_eq!(second.minute, 9);
        assert_eq!(second.event.event_id, "esc:wd:o1:silence:start:5:2");
        // Handled again later (a retry): the same event, due later.
        let again = next(&e, &kind, Urgency::Urgent, &policy, 90_000).unwrap();
        assert_eq!(again.event.content_digest(), first.event.content_digest());
    }

    #[test]
    fn an_event_ack_covers_that_event_only() {
        let chain = vec![
            notified(1, "zc:o1:home:2", "urgent", Some("home")),
            notified(2, "zc:o1:work:1", "urgent", Some("work")),
            ack(
                3,
                json!({"event_id": "esc:zc:o1:home:2:1", "operator": "op"}),
            ),
        ];
        assert_eq!(
            acknowledgement(&chain, "zc:o1:home:2", Some(&zone("home"))).map(|r| r.seq),
            Some(3)
        );
        assert_eq!(
            acknowledgement(&chain, "zc:o1:work:1", Some(&zone("work"))),
            None
        );
        let left = unacknowledged(&chain);
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].event_id, "zc:o1:work:1");
    }

    #[test]
    fn a_zone_ack_covers_that_zone_s_events_told_before_it() {
        let chain = vec![
            notified(1, "zc:o1:home:2", "urgent", Some("home")),
            ack(
                2,
                json!({"zone_id": "home", "state_rev": 2, "operator": "op"}),
            ),
            notified(3, "zc:o1:home:4", "urgent", Some("home")),
            notified(4, "te:o1:t1:9:ab", "urgent", None),
        ];
        assert!(acknowledgement(&chain, "zc:o1:home:2", Some(&zone("home"))).is_some());
        // A later breach of the same zone was not seen by the operator who acknowledged.
        assert!(acknowledgement(&chain, "zc:o1:home:4", Some(&zone("home"))).is_none());
        // A tamper is no zone's.
        assert!(acknowledgement(&chain, "te:o1:t1:9:ab", None).is_none());
        let ids: Vec<String> = unacknowledged(&chain)
            .into_iter()
            .map(|u| u.event_id)
            .collect();
        assert_eq!(ids, ["zc:o1:home:4", "te:o1:t1:9:ab"]);
    }

    #[test]
    fn an_order_ack_covers_everything_told_before_it_and_nothing_after() {
        let chain = vec![
            notified(1, "zc:o1:home:2", "urgent", Some("home")),
            notified(2, "te:o1:t1:9:ab", "urgent", None),
            ack(3, json!({"scope": "order", "operator": "op"})),
            notified(4, "wd:o1:silence:start:5", "urgent", None),
        ];
        assert!(acknowledgement(&chain, "te:o1:t1:9:ab", None).is_some());
        assert!(acknowledgement(&chain, "zc:o1:home:2", Some(&zone("home"))).is_some());
        assert!(acknowledgement(&chain, "wd:o1:silence:start:5", None).is_none());
        // Exactly at the boundary: an acknowledgement recorded before the notification does
        // not cover it.
        let chain = vec![
            ack(1, json!({"scope": "order", "operator": "op"})),
            notified(2, "te:o1:t1:9:ab", "urgent", None),
        ];
        assert!(acknowledgement(&chain, "te:o1:t1:9:ab", None).is_none());
    }

    #[test]
    fn the_list_skips_what_is_not_urgent_counts_renotifications_and_keeps_one_per_event() {
        let chain = vec![
            notified(1, "zc:o1:home:1", "high", Some("home")),
            notified(2, "zc:o1:home:2", "urgent", Some("home")),
            // A redelivery told operators twice.
            notified(3, "zc:o1:home:2", "urgent", Some("home")),
            notified(4, "esc:zc:o1:home:2:1", "urgent", Some("home")),
            notified(5, "esc:zc:o1:home:2:2", "urgent", Some("home")),
            record(6, "sms_sent", json!({"event_id": "zc:o1:home:2"})),
        ];
        let left = unacknowledged(&chain);
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].event_id, "zc:o1:home:2");
        assert_eq!(left[0].renotified, 2);
        assert_eq!(left[0].kinds, ["zone_breach"]);
        assert_eq!(left[0].zone_id, Some(zone("home")));
    }

    #[test]
    fn scopes_parse_from_records_old_and_new() {
        let scope = |d| AckScope::of(&ack(1, d));
        // What `vigil alerts ack --zone` has always written.
        assert_eq!(
            scope(json!({"zone_id": "home", "state_rev": 3, "operator": "op"})),
            Some(AckScope::Zone(zone("home")))
        );
        assert_eq!(
            scope(json!({"event_id": "esc:x:1", "operator": "op"})),
            Some(AckScope::Event("x".into()))
        );
        assert_eq!(
            scope(json!({"scope": "order", "operator": "op"})),
            Some(AckScope::Order)
        );
        assert_eq!(
            AckScope::of(&record(1, "sms_sent", json!({"zone_id": "home"}))),
            None
        );
    }
}
