//! Vigil's alert function: takes alert events from the SQS alert queue, texts the victim under
//! the order's cooldown policy, tells the monitoring centre everything, and keeps the order's
//! hash-chained audit log. The handler is generic over the ports, so unit tests run it on the
//! in-memory adapters and `main.rs` on DynamoDB and SNS.
//!
//! # Layout
//! - [`handle_batch`]: one SQS batch in, a partial batch failure response out; keeps FIFO
//!   order per message group by failing, unprocessed, every later message of a group that had
//!   a failure.
//! - [`handle_event`]: one [`AlertEvent`]: claim its id, read the order and what the victim
//!   was told, decide with the core policy, send the SMS, save the notices, publish the
//!   operator event, append audit records, mark the id done.
//! - [`operator_event`]: the operators' JSON for an event (no victim data).
//! - [`Ports`], [`Outcome`], [`AlertError`]: what the handler runs on, returns and fails with.
//! - `main.rs`: the `lambda_runtime` wiring only.
//!
//! # Delivery: at least once
//! SQS delivers at least once, and SNS `Publish` has no idempotency key. An event id is
//! claimed before anything is sent and marked done after the last step, so a duplicate
//! delivery of a finished event is skipped and a concurrent one is retried later. If the
//! function dies (or a step fails) after the SMS went out but before the event is finished,
//! the claim goes stale after [`CLAIM_STALE_AFTER_MS`] and a redelivery handles the event
//! again; when the victim's notices were already saved the policy holds the repeat back
//! (cooldown), otherwise the victim may get the same SMS twice. A duplicate warning is
//! judged better than a lost one.
//!
//! # Metrics (CloudWatch EMF, namespace `Vigil`)
//! `SmsSent{Alert}`, `SmsHeld{Alert}`, `OperatorEvents{Urgency}`, `AlertDuplicate{Type}`,
//! `AlertRejected{Reason=bad_message|unknown_order}` (poison: ends in the dead-letter queue),
//! `AlertFailed{Reason}` (in_progress, group_blocked, or the store error's kind).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use serde_json::{Map, Value, json};
use std::collections::HashSet;
use tracing::{error, info, warn};
use vigil_aws::StoreError;
use vigil_aws::ports::{AlertStore, AuditEntry, AuditLog, Claim, Metrics, Notifier};
use vigil_core::events::{AlertBody, AlertEvent};
use vigil_core::messages;
use vigil_core::policy::{self, Decision, Urgency, VictimAlert, VictimDecision};
use vigil_core::{OrderId, PhoneNumber, ZoneKind};

/// A claim older than this that was never finished is taken over by the next delivery of the
/// event. A failure releases its claim at once (see [`handle_event`]); a claim goes stale only
/// when the function died mid-way. It must exceed the function's timeout (30 s, set in infra)
/// and stay below the queue's visibility timeout (60 s, `infra/resources.json`), so a
/// redelivery after a crash is never refused as "in progress" and receives are not wasted
/// on the way to the dead-letter queue.
pub const CLAIM_STALE_AFTER_MS: i64 = 50_000;

/// The SQS attribute that carries a FIFO message's group (the order id).
const MESSAGE_GROUP_ID: &str = "MessageGroupId";

/// What the handler runs on: a store that is also the audit log, a notifier, and metrics.
pub struct Ports<S, N, M> {
    /// Idempotency claims, orders, victim notices and the audit log.
    pub store: S,
    /// SMS and the operators' topic.
    pub notifier: N,
    /// Counters.
    pub metrics: M,
}

/// What handling one event did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The event id was already handled: nothing was done.
    Duplicate,
    /// The event was handled now.
    Handled {
        /// What the victim got.
        victim: VictimDecision,
        /// How urgent it was for operators.
        urgency: Urgency,
        /// The operator event kinds.
        kinds: Vec<String>,
    },
}

/// Why a message was not handled. Every error makes the message a batch item failure: a
/// retryable one is redelivered until it succeeds, a permanent one ends in the dead-letter
/// queue after the queue's `maxReceiveCount`, kept for inspection.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// The body is not an alert event. Position only: serde's message may quote the body.
    #[error(
        "message body is not an alert event ({category} error at line {line}, column {column}); it goes to the dead-letter queue for inspection"
    )]
    BadMessage {
        /// `syntax`, `data`, `eof` or `missing`.
        category: &'static str,
        /// Line of the error in the body.
        line: usize,
        /// Column of the error in the body.
        column: usize,
    },
    /// The event names an order that does not exist.
    #[error(
        "order {0} does not exist; provision it, or inspect the message in the dead-letter queue"
    )]
    UnknownOrder(OrderId),
    /// Another delivery of the same event is being handled right now.
    #[error("event {0} is being handled by another delivery; retry later")]
    InProgress(String),
    /// A port failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AlertError {
    /// Whether a redelivery of the same message can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::InProgress(_) => true,
            Self::Store(e) => e.is_retryable(),
            Self::BadMessage { .. } | Self::UnknownOrder(_) => false,
        }
    }

    /// A short code for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::BadMessage { .. } => "bad_message",
            Self::UnknownOrder(_) => "unknown_order",
            Self::InProgress(_) => "in_progress",
            Self::Store(StoreError::Throttled { .. }) => "throttled",
            Self::Store(StoreError::Unavailable { .. }) => "unavailable",
            Self::Store(StoreError::Conflict { .. }) => "conflict",
            Self::Store(StoreError::Corrupt { .. }) => "corrupt",
            Self::Store(StoreError::Rejected { .. }) => "rejected",
            Self::Store(StoreError::Config(_)) => "config",
        }
    }
}

/// Parses a message body as an [`AlertEvent`].
///
/// Fails with [`AlertError::BadMessage`], which keeps only the error's position: serde's
/// messages can quote the body.
pub fn parse_event(body: Option<&str>) -> Result<AlertEvent, AlertError> {
    let Some(body) = body else {
        return Err(AlertError::BadMessage {
            category: "missing",
            line: 0,
            column: 0,
        });
    };
    serde_json::from_str(body).map_err(|e| AlertError::BadMessage {
        category: match e.classify() {
            serde_json::error::Category::Io => "io",
            serde_json::error::Category::Syntax => "syntax",
            serde_json::error::Category::Data => "data",
            serde_json::error::Category::Eof => "eof",
        },
        line: e.line(),
        column: e.column(),
    })
}

/// Handles one SQS batch; returns the messages to redeliver (partial batch failure).
///
/// Messages are handled in batch order. A failed message is reported as a batch item failure,
/// and so is every later message of the same group (the FIFO `MessageGroupId`, which is the
/// order id; on a standard queue the event's order id), without being handled, so that one
/// order's events are never applied out of order. Never fails as a whole: bad input is a
/// failed item, not a crashed function.
pub async fn handle_batch<S, N, M>(
    event: SqsEvent,
    ports: &Ports<S, N, M>,
    now_ms: i64,
) -> SqsBatchResponse
where
    S: AlertStore + AuditLog,
    N: Notifier,
    M: Metrics,
{
    let mut response = SqsBatchResponse::default();
    let mut failed_groups: HashSet<String> = HashSet::new();
    for message in event.records {
        let message_id = message.message_id.clone().unwrap_or_default();
        if message_id.is_empty() {
            // Lambda then retries the whole batch, which is safe: handled events are skipped.
            warn!("SQS message without a message id; the whole batch will be retried");
        }
        let parsed = parse_event(message.body.as_deref());
        let group = message
            .attributes
            .get(MESSAGE_GROUP_ID)
            .cloned()
            .or_else(|| parsed.as_ref().ok().map(|e| e.order_id.to_string()));
        if let Some(g) = group.as_ref().filter(|g| failed_groups.contains(*g)) {
            warn!(
                message_id,
                group = %g,
                "not handled: an earlier message of its group failed in this batch; retried in order"
            );
            ports
                .metrics
                .count("AlertFailed", ("Reason", "group_blocked"), 1);
            response.add_failure(message_id);
            continue;
        }
        let result = match parsed {
            Ok(alert_event) => handle_event(&alert_event, ports, now_ms).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            report_failure(&e, &message_id, ports);
            if let Some(g) = group {
                failed_groups.insert(g);
            }
            response.add_failure(message_id);
        }
    }
    response
}

fn report_failure<S, N, M: Metrics>(e: &AlertError, message_id: &str, ports: &Ports<S, N, M>) {
    let reason = e.reason();
    match e {
        AlertError::BadMessage { .. } | AlertError::UnknownOrder(_) => {
            ports.metrics.count("AlertRejected", ("Reason", reason), 1);
            error!(message_id, reason, error = %e, "alert event rejected");
        }
        _ if e.is_retryable() => {
            ports.metrics.count("AlertFailed", ("Reason", reason), 1);
            warn!(message_id, reason, error = %e, "alert event failed; it will be redelivered");
        }
        _ => {
            ports.metrics.count("AlertFailed", ("Reason", reason), 1);
            error!(
                message_id,
                reason,
                error = %e,
                "alert event failed and a retry cannot help; it goes to the dead-letter queue after redrive"
            );
        }
    }
}

/// Handles one alert event, idempotently by its id: claim, order, notices, decision, victim
/// SMS (or a held one), notices saved, operator event, audit records, finish.
///
/// Returns [`Outcome::Duplicate`] when the id was already handled. Fails with
/// [`AlertError::InProgress`] while another delivery holds a fresh claim,
/// [`AlertError::UnknownOrder`] when the order does not exist, and [`AlertError::Store`] when
/// a port fails (SNS errors have the victim's number redacted). See the crate docs for what a
/// failure after the SMS means.
pub async fn handle_event<S, N, M>(
    event: &AlertEvent,
    ports: &Ports<S, N, M>,
    now_ms: i64,
) -> Result<Outcome, AlertError>
where
    S: AlertStore + AuditLog,
    N: Notifier,
    M: Metrics,
{
    let Ports { store, metrics, .. } = ports;
    let event_id = event.event_id.as_str();
    let order_id = &event.order_id;

    match store.claim(event_id, now_ms, CLAIM_STALE_AFTER_MS).await {
        Ok(Claim::Claimed) => {}
        Ok(Claim::Done) => {
            metrics.count("AlertDuplicate", ("Type", body_type(&event.body)), 1);
            info!(event_id, order_id = %order_id, "duplicate alert event skipped");
            return Ok(Outcome::Duplicate);
        }
        Err(StoreError::Conflict { .. }) => return Err(AlertError::InProgress(event_id.into())),
        Err(e) => return Err(e.into()),
    }
    let result = handle_claimed(event, ports, now_ms).await;
    if let Err(e) = &result {
        // Let the redelivery take the event at once. If releasing fails too, the claim goes
        // stale within CLAIM_STALE_AFTER_MS instead.
        if let Err(release_err) = store.release(event_id).await {
            warn!(event_id, reason = e.reason(), release_error = %release_err, "claim not released");
        }
    }
    result
}

/// The steps after a successful claim.
async fn handle_claimed<S, N, M>(
    event: &AlertEvent,
    ports: &Ports<S, N, M>,
    now_ms: i64,
) -> Result<Outcome, AlertError>
where
    S: AlertStore + AuditLog,
    N: Notifier,
    M: Metrics,
{
    let Ports {
        store,
        notifier,
        metrics,
    } = ports;
    let event_id = event.event_id.as_str();
    let order_id = &event.order_id;

    let order = store
        .order(order_id)
        .await?
        .ok_or_else(|| AlertError::UnknownOrder(order_id.clone()))?;
    let (notices, rev) = store.notices(order_id).await?;
    let (decision, next_notices) = match &event.body {
        AlertBody::ZoneChange { change, .. } => policy::decide(change, &order.policy, &notices),
        AlertBody::TagEvent { kind, .. } => {
            policy::decide_tag_event(*kind, event.at_ms, &order.policy, &notices)
        }
    };

    let victim_sms = match decision.victim {
        VictimDecision::Send(alert) => {
            let (zone_kind, fix) = match &event.body {
                AlertBody::ZoneChange { zone_kind, fix, .. } => (*zone_kind, Some(fix)),
                AlertBody::TagEvent { .. } => (ZoneKind::Other, None),
            };
            let text = messages::render_for_order(alert, &order, zone_kind, fix);
            let phone = &order.victim.phone;
            let message_id = notifier
                .send_sms(phone, &text)
                .await
                .map_err(|e| redact_phone(e, phone))?;
            metrics.count("SmsSent", ("Alert", alert_name(alert)), 1);
            let detail = json!({
                "event_id": event_id,
                "alert": alert,
                "to": phone.to_string(),
                "message_id": message_id,
                "segments": messages::sms_segments(&text),
                "text": text,
            });
            append(store, order_id, "sms_sent", detail, now_ms).await?;
            format!("sent:{}", alert_name(alert))
        }
        VictimDecision::HeldByCooldown(alert) => {
            metrics.count("SmsHeld", ("Alert", alert_name(alert)), 1);
            let detail = json!({"event_id": event_id, "alert": alert, "reason": "cooldown"});
            append(store, order_id, "sms_held", detail, now_ms).await?;
            format!("held:{}", alert_name(alert))
        }
        VictimDecision::Nothing => "none".to_owned(),
    };
    // Nothing to write when the victim's notices did not change (most operator-only events).
    if next_notices != notices {
        store
            .save_notices(order_id, &next_notices, rev)
            .await
            .map_err(|e| redact_phone(e, &order.victim.phone))?;
    }

    let kinds = event.operator_kinds();
    let body = operator_event(event, &decision, &victim_sms);
    let subject = format!(
        "Vigil {} {} {}",
        urgency_label(decision.urgency),
        body["kind"].as_str().unwrap_or_default(),
        order_id
    );
    let message_id = notifier.publish_operator(&body, &subject).await?;
    metrics.count(
        "OperatorEvents",
        ("Urgency", urgency_name(decision.urgency)),
        1,
    );
    let detail = json!({
        "event_id": event_id,
        "kinds": kinds,
        "urgency": decision.urgency,
        "message_id": message_id,
        "victim_sms": victim_sms,
    });
    append(store, order_id, "operator_notified", detail, now_ms).await?;

    store.finish(event_id, now_ms).await?;
    info!(
        event_id,
        order_id = %order_id,
        kinds = ?kinds,
        urgency = urgency_name(decision.urgency),
        decision = %victim_sms,
        "alert event handled"
    );
    Ok(Outcome::Handled {
        victim: decision.victim,
        urgency: decision.urgency,
        kinds,
    })
}

async fn append<S: AuditLog>(
    store: &S,
    order_id: &OrderId,
    kind: &str,
    detail: Value,
    now_ms: i64,
) -> Result<(), StoreError> {
    let entry = AuditEntry {
        kind: kind.to_owned(),
        detail,
    };
    store.append(order_id, &entry, now_ms).await.map(drop)
}

/// The operators' JSON for an event: what happened, how urgent, where the offender was, and
/// what the victim was told (`victim_sms`: `sent:<alert>`, `held:<alert>` or `none`). Never
/// the victim's phone number or a zone's coordinates; fields that do not apply (a tag event
/// has no zone) are `null`.
pub fn operator_event(event: &AlertEvent, decision: &Decision, victim_sms: &str) -> Value {
    let kinds = event.operator_kinds();
    let kind = kinds
        .first()
        .cloned()
        .unwrap_or_else(|| body_type(&event.body).to_owned());
    let at = chrono::DateTime::from_timestamp_millis(event.at_ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    let mut out = Map::new();
    let mut put = |k: &str, v: Value| {
        out.insert(k.to_owned(), v);
    };
    put("kind", json!(kind));
    put("kinds", json!(kinds));
    put("urgency", json!(decision.urgency));
    put("event_id", json!(event.event_id));
    put("order_id", json!(event.order_id));
    put("tag_id", json!(event.tag_id));
    put("at", json!(at));
    put("at_ms", json!(event.at_ms));
    match &event.body {
        AlertBody::ZoneChange {
            zone_id,
            zone_kind,
            assessment,
            change,
            fix,
        } => {
            put("zone_id", json!(zone_id));
            put("zone_kind", json!(zone_kind));
            put("zone_in_force", json!(assessment.in_force));
            put("transition", json!(change.transition));
            put("escalation", json!(change.escalation));
            put("order_level_before", json!(change.order_before));
            put("order_level_after", json!(change.order_after));
            put("distance_m", json!(assessment.distance_m));
            put("accuracy_m", json!(fix.accuracy_m));
            put("offender_position", json!({"lat": fix.lat, "lon": fix.lon}));
            put("fix_seq", json!(fix.seq));
            put("battery_pct", json!(fix.battery_pct));
            put("tag_event", Value::Null);
        }
        AlertBody::TagEvent {
            kind,
            seq,
            battery_pct,
        } => {
            for k in [
                "zone_id",
                "zone_kind",
                "zone_in_force",
                "transition",
                "escalation",
                "order_level_before",
                "order_level_after",
                "distance_m",
                "accuracy_m",
                "offender_position",
                "fix_seq",
            ] {
                put(k, Value::Null);
            }
            put("battery_pct", json!(battery_pct));
            put("tag_event", json!({"kind": kind, "seq": seq}));
        }
    }
    put("victim_sms", json!(victim_sms));
    Value::Object(out)
}

fn body_type(body: &AlertBody) -> &'static str {
    match body {
        AlertBody::ZoneChange { .. } => "zone_change",
        AlertBody::TagEvent { .. } => "tag_event",
    }
}

fn alert_name(alert: VictimAlert) -> &'static str {
    match alert {
        VictimAlert::Warning => "warning",
        VictimAlert::Breach => "breach",
        VictimAlert::AllClear => "all_clear",
        VictimAlert::TagSilent => "tag_silent",
        VictimAlert::Tamper => "tamper",
    }
}

fn urgency_name(urgency: Urgency) -> &'static str {
    match urgency {
        Urgency::Info => "info",
        Urgency::High => "high",
        Urgency::Urgent => "urgent",
    }
}

fn urgency_label(urgency: Urgency) -> &'static str {
    match urgency {
        Urgency::Info => "INFO",
        Urgency::High => "HIGH",
        Urgency::Urgent => "URGENT",
    }
}

/// Replaces the victim's number in an error's text (SNS may quote it back) by its redacted
/// form, so that logs never carry it.
fn redact_phone(err: StoreError, phone: &PhoneNumber) -> StoreError {
    let full = phone.e164();
    let digits = &full[1..];
    let clean = |s: String| {
        if s.contains(digits) {
            s.replace(full, &phone.redacted())
                .replace(digits, &phone.redacted())
        } else {
            s
        }
    };
    match err {
        StoreError::Throttled { service, code } => StoreError::Throttled {
            service,
            code: clean(code),
        },
        StoreError::Unavailable { service, detail } => StoreError::Unavailable {
            service,
            detail: clean(detail),
        },
        StoreError::Conflict { what } => StoreError::Conflict { what: clean(what) },
        StoreError::Corrupt { what, detail } => StoreError::Corrupt {
            what: clean(what),
            detail: clean(detail),
        },
        StoreError::Rejected {
            service,
            code,
            detail,
        } => StoreError::Rejected {
            service,
            code: clean(code),
            detail: clean(detail),
        },
        StoreError::Config(detail) => StoreError::Config(clean(detail)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::event::sqs::SqsMessage;
    use std::io::Write;
    use std::sync::{Arc, Mutex};
    use vigil_aws::memory::{MemoryNotifier, MemoryStore};
    use vigil_aws::metrics::MemoryMetrics;
    use vigil_aws::ports::AdminStore;
    use vigil_core::audit::verify_chain;
    use vigil_core::fix::{Fix, TagEventKind};
    use vigil_core::policy::OrderChange;
    use vigil_core::state::{Cause, Transition};
    use vigil_core::{AlertLevel, Assessment, ProtectionOrder, TagId, ZoneId};

    const PHONE: &str = "+447700900123";
    const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    const NOW: i64 = T0 + 2_000;

    type TestPorts = Ports<MemoryStore, MemoryNotifier, MemoryMetrics>;

    fn order_json(order_id: &str, phone: &str) -> ProtectionOrder {
        serde_json::from_value(json!({
            "order_id": order_id,
            "tag_id": "t-1",
            "victim": {"victim_id": "v-1", "phone": phone, "language": "en"},
            "zone_ids": ["home"],
        }))
        .unwrap()
    }

    async fn ports_with(orders: &[ProtectionOrder]) -> TestPorts {
        let ports = Ports {
            store: MemoryStore::new(),
            notifier: MemoryNotifier::default(),
            metrics: MemoryMetrics::default(),
        };
        for o in orders {
            ports.store.put_order(o).await.unwrap();
        }
        ports
    }

    async fn ports() -> TestPorts {
        ports_with(&[order_json("o-123", PHONE)]).await
    }

    /// A zone change of the home zone of `order_id`: zone level `from` -> `to`, order level
    /// `before` -> `after`, `at_s` seconds after T0; `rev` makes the event id.
    fn zone_change(
        order_id: &str,
        rev: u64,
        (from, to, cause): (AlertLevel, AlertLevel, Cause),
        (before, after): (AlertLevel, AlertLevel),
        at_s: i64,
    ) -> AlertEvent {
        let order_id = OrderId::new(order_id).unwrap();
        let zone_id = ZoneId::new("home").unwrap();
        let tag_id = TagId::new("t-1").unwrap();
        let at_ms = T0 + at_s * 1000;
        AlertEvent {
            event_id: AlertEvent::zone_change_id(&order_id, &zone_id, rev),
            order_id,
            tag_id: tag_id.clone(),
            at_ms,
            body: AlertBody::ZoneChange {
                zone_id: zone_id.clone(),
                zone_kind: ZoneKind::Home,
                assessment: Assessment {
                    zone_id,
                    in_force: true,
                    entry: to,
                    exit: to,
                    distance_m: 140.0,
                },
                change: OrderChange {
                    transition: Some(Transition {
                        from,
                        to,
                        cause,
                        at_ms,
                        late_by_ms: None,
                    }),
                    escalation: None,
                    order_before: before,
                    order_after: after,
                    at_ms,
                },
                fix: Fix {
                    tag_id,
                    seq: rev,
                    at_ms,
                    lat: 51.501234,
                    lon: -0.141234,
                    accuracy_m: 12.0,
                    speed_mps: None,
                    heading_deg: None,
                    battery_pct: Some(80),
                },
            },
        }
    }

    fn warning(order_id: &str, rev: u64, at_s: i64) -> AlertEvent {
        use AlertLevel::*;
        zone_change(
            order_id,
            rev,
            (Clear, Warning, Cause::Entered),
            (Clear, Warning),
            at_s,
        )
    }

    fn tamper(order_id: &str, seq: u64, at_s: i64) -> AlertEvent {
        let order_id = OrderId::new(order_id).unwrap();
        let tag_id = TagId::new("t-1").unwrap();
        AlertEvent {
            event_id: AlertEvent::tag_event_id(&order_id, &tag_id, seq),
            order_id,
            tag_id,
            at_ms: T0 + at_s * 1000,
            body: AlertBody::TagEvent {
                kind: TagEventKind::StrapTamper,
                seq,
                battery_pct: Some(50),
            },
        }
    }

    fn message(id: &str, group: Option<&str>, body: Option<String>) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.to_owned());
        m.body = body;
        if let Some(g) = group {
            m.attributes
                .insert(MESSAGE_GROUP_ID.to_owned(), g.to_owned());
        }
        m
    }

    fn msg(id: &str, event: &AlertEvent) -> SqsMessage {
        message(
            id,
            Some(event.order_id.as_str()),
            Some(serde_json::to_string(event).unwrap()),
        )
    }

    fn batch(messages: Vec<SqsMessage>) -> SqsEvent {
        let mut e = SqsEvent::default();
        e.records = messages;
        e
    }

    fn failures(r: &SqsBatchResponse) -> Vec<&str> {
        r.batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect()
    }

    async fn run(ports: &TestPorts, messages: Vec<SqsMessage>, now_ms: i64) -> Vec<String> {
        let r = handle_batch(batch(messages), ports, now_ms).await;
        failures(&r).into_iter().map(str::to_owned).collect()
    }

    async fn audit_kinds(ports: &TestPorts, order_id: &str) -> Vec<String> {
        let chain = ports
            .store
            .read(&OrderId::new(order_id).unwrap())
            .await
            .unwrap();
        verify_chain(&chain).unwrap();
        chain.into_iter().map(|r| r.kind).collect()
    }

    #[tokio::test]
    async fn a_warning_texts_the_victim_once_and_tells_operators() {
        let ports = ports().await;
        let event = warning("o-123", 1, 0);
        assert!(run(&ports, vec![msg("m1", &event)], NOW).await.is_empty());

        let sms = ports.notifier.sms();
        assert_eq!(sms.len(), 1);
        assert_eq!(sms[0].to.e164(), PHONE);
        assert_eq!(
            sms[0].text,
            "Vigil: the person named in your protection order may be near your home. Stay alert \
             and keep your phone with you. If you feel unsafe, go somewhere safe and call 999."
        );

        let ops = ports.notifier.operator_events();
        assert_eq!(ops.len(), 1);
        let op = &ops[0];
        assert_eq!(op["kind"], "zone_warning");
        assert_eq!(op["kinds"], json!(["zone_warning"]));
        assert_eq!(op["urgency"], "high");
        assert_eq!(op["event_id"], "zc:o-123:home:1");
        assert_eq!(op["order_id"], "o-123");
        assert_eq!(op["tag_id"], "t-1");
        assert_eq!(op["zone_id"], "home");
        assert_eq!(op["zone_kind"], "home");
        assert_eq!(op["at"], "2026-01-01T00:00:00.000Z");
        assert_eq!(op["transition"]["to"], "warning");
        assert_eq!(op["order_level_before"], "clear");
        assert_eq!(op["order_level_after"], "warning");
        assert_eq!(op["distance_m"], 140.0);
        assert_eq!(op["accuracy_m"], 12.0);
        assert_eq!(
            op["offender_position"],
            json!({"lat": 51.501234, "lon": -0.141234})
        );
        assert_eq!(op["victim_sms"], "sent:warning");

        let chain = ports
            .store
            .read(&OrderId::new("o-123").unwrap())
            .await
            .unwrap();
        assert_eq!(verify_chain(&chain), Ok(()));
        assert_eq!(chain.len(), 2);
        assert_eq!(
            (chain[0].kind.as_str(), chain[1].kind.as_str()),
            ("sms_sent", "operator_notified")
        );
        assert_eq!(chain[1].prev_hash, chain[0].hash);
        let sent = &chain[0].detail;
        assert_eq!(sent["event_id"], "zc:o-123:home:1");
        assert_eq!(sent["alert"], "warning");
        assert_eq!(sent["to"], "+44…23");
        assert_eq!(sent["message_id"], "sms-1");
        assert_eq!(sent["text"], sms[0].text.as_str());
        assert_eq!(sent["segments"], 2);
        let notified = &chain[1].detail;
        assert_eq!(notified["kinds"], json!(["zone_warning"]));
        assert_eq!(notified["urgency"], "high");
        assert_eq!(notified["message_id"], "op-1");

        assert_eq!(ports.metrics.get("SmsSent", "warning"), 1);
        assert_eq!(ports.metrics.get("OperatorEvents", "high"), 1);
        let (notices, rev) = ports.store.notices(&event.order_id).await.unwrap();
        assert_eq!((notices.last, rev), (Some((VictimAlert::Warning, T0)), 1));
    }

    #[tokio::test]
    async fn the_same_event_delivered_twice_texts_once() {
        let ports = ports().await;
        let event = warning("o-123", 1, 0);
        // Twice in one batch, then once more later.
        let failed = run(&ports, vec![msg("m1", &event), msg("m2", &event)], NOW).await;
        assert!(failed.is_empty(), "{failed:?}");
        assert!(
            run(&ports, vec![msg("m3", &event)], NOW + 600_000)
                .await
                .is_empty()
        );
        assert_eq!(ports.notifier.sms().len(), 1);
        assert_eq!(ports.notifier.operator_events().len(), 1);
        assert_eq!(ports.metrics.get("AlertDuplicate", "zone_change"), 2);
        assert_eq!(audit_kinds(&ports, "o-123").await.len(), 2);
    }

    #[tokio::test]
    async fn a_breach_repeated_within_the_cooldown_is_held() {
        use AlertLevel::*;
        let ports = ports().await;
        let events = [
            zone_change(
                "o-123",
                1,
                (Clear, Breach, Cause::Entered),
                (Clear, Breach),
                0,
            ),
            zone_change(
                "o-123",
                2,
                (Breach, Warning, Cause::SustainedExit),
                (Breach, Warning),
                120,
            ),
            zone_change(
                "o-123",
                3,
                (Warning, Breach, Cause::Entered),
                (Warning, Breach),
                200,
            ),
        ];
        for (i, e) in events.iter().enumerate() {
            let now = T0 + (i as i64 + 1) * 300_000;
            assert!(
                run(&ports, vec![msg(&format!("m{i}"), e)], now)
                    .await
                    .is_empty()
            );
        }
        let sms = ports.notifier.sms();
        assert_eq!(sms.len(), 1);
        assert!(sms[0].text.starts_with("Vigil URGENT:"), "{}", sms[0].text);
        assert!(
            sms[0]
                .text
                .contains("inside the protected area around your home")
        );
        let ops = ports.notifier.operator_events();
        assert_eq!(ops.len(), 3);
        assert_eq!(ops[2]["victim_sms"], "held:breach");
        assert_eq!(ops[2]["urgency"], "urgent");
        assert_eq!(
            audit_kinds(&ports, "o-123").await,
            [
                "sms_sent",
                "operator_notified",
                "operator_notified",
                "sms_held",
                "operator_notified"
            ]
        );
        let chain = ports
            .store
            .read(&OrderId::new("o-123").unwrap())
            .await
            .unwrap();
        assert_eq!(
            chain[3].detail,
            json!({"event_id": "zc:o-123:home:3", "alert": "breach", "reason": "cooldown"})
        );
        assert_eq!(ports.metrics.get("SmsHeld", "breach"), 1);
        assert_eq!(ports.metrics.get("OperatorEvents", "urgent"), 2);
    }

    #[tokio::test]
    async fn a_step_down_from_breach_to_warning_tells_operators_only() {
        use AlertLevel::*;
        let ports = ports().await;
        let breach = zone_change(
            "o-123",
            1,
            (Clear, Breach, Cause::Entered),
            (Clear, Breach),
            0,
        );
        let down = zone_change(
            "o-123",
            2,
            (Breach, Warning, Cause::SustainedExit),
            (Breach, Warning),
            180,
        );
        assert!(
            run(&ports, vec![msg("m1", &breach), msg("m2", &down)], NOW)
                .await
                .is_empty()
        );
        assert_eq!(ports.notifier.sms().len(), 1);
        let ops = ports.notifier.operator_events();
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[1]["kind"], "zone_step_down");
        assert_eq!(ops[1]["victim_sms"], "none");
        assert_eq!(ops[1]["order_level_after"], "warning");
        assert_eq!(
            audit_kinds(&ports, "o-123").await,
            ["sms_sent", "operator_notified", "operator_notified"]
        );
    }

    #[tokio::test]
    async fn tamper_texts_the_victim_when_the_order_says_so() {
        let mut quiet = order_json("o-quiet", "+34600123456");
        quiet.policy.notify_victim_on_tamper = false;
        let ports = ports_with(&[order_json("o-123", PHONE), quiet]).await;
        let failed = run(
            &ports,
            vec![
                msg("m1", &tamper("o-123", 7, 0)),
                msg("m2", &tamper("o-quiet", 7, 0)),
            ],
            NOW,
        )
        .await;
        assert!(failed.is_empty(), "{failed:?}");
        let sms = ports.notifier.sms();
        assert_eq!(sms.len(), 1, "only the order that asks for it");
        assert_eq!(sms[0].to.e164(), PHONE);
        assert!(
            sms[0].text.contains("may have been removed"),
            "{}",
            sms[0].text
        );
        assert!(sms[0].text.contains("call 999"));
        let ops = ports.notifier.operator_events();
        assert_eq!(ops.len(), 2);
        for op in &ops {
            assert_eq!(op["kind"], "tag_event:strap_tamper");
            assert_eq!(op["urgency"], "urgent");
            assert_eq!(op["zone_id"], Value::Null);
            assert_eq!(op["offender_position"], Value::Null);
            assert_eq!(op["tag_event"], json!({"kind": "strap_tamper", "seq": 7}));
        }
        assert_eq!(ops[0]["victim_sms"], "sent:tamper");
        assert_eq!(ops[1]["victim_sms"], "none");
        assert_eq!(ports.metrics.get("SmsSent", "tamper"), 1);
    }

    #[tokio::test]
    async fn an_unknown_order_is_an_item_failure() {
        let ports = ports().await;
        let failed = run(&ports, vec![msg("m1", &warning("o-missing", 1, 0))], NOW).await;
        assert_eq!(failed, ["m1"]);
        assert_eq!(ports.metrics.get("AlertRejected", "unknown_order"), 1);
        assert!(ports.notifier.sms().is_empty());
        assert!(ports.notifier.operator_events().is_empty());
    }

    #[tokio::test]
    async fn an_unparseable_body_is_an_item_failure_and_counted() {
        let ports = ports().await;
        let good = warning("o-123", 1, 0);
        let failed = run(
            &ports,
            vec![
                message("bad-json", None, Some("{not json".into())),
                message("bad-shape", None, Some(r#"{"event_id":"x"}"#.into())),
                message("no-body", None, None),
                msg("good", &good),
            ],
            NOW,
        )
        .await;
        assert_eq!(failed, ["bad-json", "bad-shape", "no-body"]);
        assert_eq!(ports.metrics.get("AlertRejected", "bad_message"), 3);
        assert_eq!(ports.notifier.sms().len(), 1, "other messages proceed");
    }

    #[tokio::test]
    async fn store_errors_fail_the_item_and_say_whether_to_retry() {
        let ports = ports().await;
        let event = warning("o-123", 1, 0);
        ports
            .store
            .fail_next(StoreError::corrupt("idempotency", "bad item"));
        assert_eq!(run(&ports, vec![msg("m1", &event)], NOW).await, ["m1"]);
        assert_eq!(ports.metrics.get("AlertFailed", "corrupt"), 1);
        ports.store.fail_next(StoreError::Throttled {
            service: "dynamodb",
            code: "ThrottlingException".into(),
        });
        let e = handle_event(&event, &ports, NOW).await.unwrap_err();
        assert!(e.is_retryable() && e.reason() == "throttled", "{e}");
        assert!(!AlertError::Store(StoreError::corrupt("x", "y")).is_retryable());
        // Nothing was claimed by the failed attempts: the redelivery handles it at once.
        assert!(
            run(&ports, vec![msg("m1", &event)], NOW + 1000)
                .await
                .is_empty()
        );
        assert_eq!(ports.notifier.sms().len(), 1);
    }

    #[tokio::test]
    async fn an_sns_failure_is_retried_and_the_redelivery_texts_exactly_once() {
        let ports = ports().await;
        let event = warning("o-123", 1, 0);
        ports.notifier.fail_next(1);
        assert_eq!(run(&ports, vec![msg("m1", &event)], NOW).await, ["m1"]);
        assert!(ports.notifier.sms().is_empty());
        assert_eq!(ports.metrics.get("AlertFailed", "unavailable"), 1);
        // The failure released the claim: the redelivery after the visibility timeout
        // handles it at once, without burning a receive on "in progress".
        let later = NOW + 60_000;
        assert!(run(&ports, vec![msg("m1", &event)], later).await.is_empty());
        assert_eq!(ports.metrics.get("AlertFailed", "in_progress"), 0);
        assert!(
            run(&ports, vec![msg("m1", &event)], later + 60_000)
                .await
                .is_empty()
        );
        assert_eq!(ports.notifier.sms().len(), 1);
        assert_eq!(ports.notifier.operator_events().len(), 1);
        assert_eq!(
            audit_kinds(&ports, "o-123").await,
            ["sms_sent", "operator_notified"]
        );
    }

    /// A notifier whose operator publishes fail while `fail_operator` is set, and whose SMS
    /// failures quote the number back, as SNS may.
    #[derive(Default)]
    struct FlakyNotifier {
        inner: MemoryNotifier,
        fail_operator: Mutex<bool>,
        reject_sms: Mutex<bool>,
    }

    impl Notifier for FlakyNotifier {
        async fn send_sms(&self, to: &PhoneNumber, text: &str) -> Result<String, StoreError> {
            if std::mem::take(&mut *self.reject_sms.lock().unwrap()) {
                return Err(StoreError::Rejected {
                    service: "sns",
                    code: "InvalidParameter".into(),
                    detail: format!(
                        "Invalid parameter: PhoneNumber Reason: {} is opted out",
                        to.e164()
                    ),
                });
            }
            self.inner.send_sms(to, text).await
        }

        async fn publish_operator(
            &self,
            event: &Value,
            subject: &str,
        ) -> Result<String, StoreError> {
            if std::mem::take(&mut *self.fail_operator.lock().unwrap()) {
                return Err(StoreError::Throttled {
                    service: "sns",
                    code: "Throttling".into(),
                });
            }
            self.inner.publish_operator(event, subject).await
        }
    }

    #[tokio::test]
    async fn a_failure_after_the_sms_does_not_text_the_victim_again() {
        let store = MemoryStore::new();
        store.put_order(&order_json("o-123", PHONE)).await.unwrap();
        let ports = Ports {
            store,
            notifier: FlakyNotifier::default(),
            metrics: MemoryMetrics::default(),
        };
        *ports.notifier.fail_operator.lock().unwrap() = true;
        let event = warning("o-123", 1, 0);
        let r = handle_batch(batch(vec![msg("m1", &event)]), &ports, NOW).await;
        assert_eq!(failures(&r), ["m1"]);
        assert_eq!(ports.notifier.inner.sms().len(), 1);
        let later = NOW + CLAIM_STALE_AFTER_MS + 1_000;
        let r = handle_batch(batch(vec![msg("m1", &event)]), &ports, later).await;
        assert!(failures(&r).is_empty());
        // The notices were saved with the SMS, so the cooldown holds the repeat back.
        assert_eq!(ports.notifier.inner.sms().len(), 1);
        let ops = ports.notifier.inner.operator_events();
        assert_eq!(ops.len(), 1);
        assert_eq!(ops[0]["victim_sms"], "held:warning");
        let chain = ports.store.read(&event.order_id).await.unwrap();
        assert_eq!(verify_chain(&chain), Ok(()));
        let kinds: Vec<_> = chain.iter().map(|r| r.kind.as_str()).collect();
        assert_eq!(kinds, ["sms_sent", "sms_held", "operator_notified"]);
    }

    #[tokio::test]
    async fn a_failure_blocks_later_messages_of_its_group_only() {
        let ports =
            ports_with(&[order_json("o-1", PHONE), order_json("o-2", "+12025550123")]).await;
        use AlertLevel::*;
        let o1_warning = warning("o-1", 1, 0);
        let o1_breach = zone_change(
            "o-1",
            2,
            (Warning, Breach, Cause::Entered),
            (Warning, Breach),
            30,
        );
        let o2_warning = warning("o-2", 1, 0);
        ports.notifier.fail_next(1); // o-1's warning SMS
        let failed = run(
            &ports,
            vec![
                msg("a1", &o1_warning),
                msg("b1", &o2_warning),
                msg("a2", &o1_breach),
                message("bad", Some("o-2"), Some("[]".into())),
                msg(
                    "b2",
                    &zone_change(
                        "o-2",
                        2,
                        (Warning, Breach, Cause::Entered),
                        (Warning, Breach),
                        30,
                    ),
                ),
            ],
            NOW,
        )
        .await;
        assert_eq!(failed, ["a1", "a2", "bad", "b2"]);
        assert_eq!(ports.metrics.get("AlertRejected", "bad_message"), 1);
        assert_eq!(ports.metrics.get("AlertFailed", "group_blocked"), 2);
        // o-1's breach was not touched: never claimed, nothing audited.
        assert!(audit_kinds(&ports, "o-1").await.is_empty());
        let sms = ports.notifier.sms();
        assert_eq!(sms.len(), 1);
        assert_eq!(sms[0].to.e164(), "+12025550123");
        assert!(sms[0].text.contains("call 911"));
        // Redelivered in order after the stale window, o-1 catches up: warning, then breach.
        let later = NOW + CLAIM_STALE_AFTER_MS + 1_000;
        assert!(
            run(
                &ports,
                vec![msg("a1", &o1_warning), msg("a2", &o1_breach)],
                later
            )
            .await
            .is_empty()
        );
        let texts: Vec<_> = ports
            .notifier
            .sms()
            .into_iter()
            .filter(|s| s.to.e164() == PHONE)
            .map(|s| s.text)
            .collect();
        assert_eq!(texts.len(), 2);
        assert!(texts[0].contains("may be near your home") && texts[1].contains("URGENT"));
    }

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Every log line this test binary writes, from every test: one process-wide subscriber,
    /// installed once. A thread-local subscriber races with the other tests over `tracing`'s
    /// global level and callsite caches and can miss lines; a global one cannot.
    fn captured_logs() -> Captured {
        static LOGS: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
        LOGS.get_or_init(|| {
            let logs = Captured::default();
            let writer = logs.clone();
            let subscriber = tracing_subscriber::fmt()
                .json()
                .with_ansi(false)
                .with_max_level(tracing::Level::TRACE)
                .with_writer(move || writer.clone())
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("the only global subscriber");
            logs
        })
        .clone()
    }

    #[tokio::test]
    async fn no_log_line_operator_event_or_audit_record_holds_the_phone_number() {
        let logs = captured_logs();

        let store = MemoryStore::new();
        store.put_order(&order_json("o-123", PHONE)).await.unwrap();
        let ports = Ports {
            store,
            notifier: FlakyNotifier::default(),
            metrics: MemoryMetrics::default(),
        };
        *ports.notifier.reject_sms.lock().unwrap() = true;
        use AlertLevel::*;
        let breach = zone_change(
            "o-123",
            2,
            (Warning, Breach, Cause::Entered),
            (Warning, Breach),
            30,
        );
        assert_eq!(run_flaky(&ports, &warning("o-123", 1, 0), NOW).await, ["m"]);
        let later = NOW + CLAIM_STALE_AFTER_MS + 1_000;
        assert!(
            run_flaky(&ports, &warning("o-123", 1, 0), later)
                .await
                .is_empty()
        );
        assert!(run_flaky(&ports, &breach, later).await.is_empty());
        assert!(
            run_flaky(&ports, &tamper("o-123", 3, 40), later)
                .await
                .is_empty()
        );
        assert_eq!(ports.notifier.inner.sms().len(), 3);

        let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        assert!(logs.contains("alert event handled"), "{logs}");
        assert!(
            logs.contains("+44…23"),
            "the SNS error is logged, redacted: {logs}"
        );
        let digits = &PHONE[1..];
        assert!(!logs.contains(digits), "{logs}");
        assert!(!logs.contains("51.50"), "no coordinates in logs: {logs}");
        let ops = serde_json::to_string(&ports.notifier.inner.operator_events()).unwrap();
        assert!(!ops.contains(digits), "{ops}");
        let chain = ports
            .store
            .read(&OrderId::new("o-123").unwrap())
            .await
            .unwrap();
        let audit = serde_json::to_string(&chain).unwrap();
        assert!(!audit.contains(digits), "{audit}");
    }

    async fn run_flaky(
        ports: &Ports<MemoryStore, FlakyNotifier, MemoryMetrics>,
        event: &AlertEvent,
        now_ms: i64,
    ) -> Vec<String> {
        let r = handle_batch(batch(vec![msg("m", event)]), ports, now_ms).await;
        failures(&r).into_iter().map(str::to_owned).collect()
    }

    #[test]
    fn bad_message_errors_never_quote_the_body() {
        let body = r#"{"event_id":"x","order_id":"o-1","tag_id":"t-1","at_ms":"+447700900123"}"#;
        let serde_text = serde_json::from_str::<AlertEvent>(body)
            .unwrap_err()
            .to_string();
        assert!(
            serde_text.contains("7700900123"),
            "serde quotes: {serde_text}"
        );
        let e = parse_event(Some(body)).unwrap_err();
        let text = e.to_string();
        assert!(!text.contains("7700900123"), "{text}");
        assert!(text.contains("data error at line 1"), "{text}");
        assert!(!e.is_retryable());
    }

    #[test]
    fn redaction_covers_both_forms_of_the_number() {
        let phone = PhoneNumber::new(PHONE).unwrap();
        let e = redact_phone(
            StoreError::Unavailable {
                service: "sns",
                detail: "to +447700900123 (447700900123) failed".into(),
            },
            &phone,
        );
        assert_eq!(
            e.to_string(),
            "sns is unavailable: to +44…23 (+44…23) failed"
        );
    }
}
