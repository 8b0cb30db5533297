//! The ingest Lambda: every message a tag publishes arrives here through the IoT rule.
//!
//! # Layout
//! - [`decode`]: the rule event ([`RuleEvent`], `infra/rules/ingest.sql`) to a validated fix
//!   or tag event, or a rejection with its reason; [`rule_event`] builds one as IoT Core does.
//! - [`fix`]: a fix: the tag's context in one read, duplicate and counter-conflict check,
//!   the speed check against the tag's ACCEPTED history, the orders near it, the history
//!   written after the states.
//! - [`commit`]: one order's states moved by a fix: the decision is the core's
//!   ([`vigil_core::ingest::plan_order`]); this module reads consistently, commits
//!   conditionally with backoff and jitter, and queues the outbox.
//! - [`event`]: a tag event, identified by its content, queued per order in force.
//! - [`moving`]: the victim's moving zone (docs/PROXIMITY.md): his fix against her device's
//!   newest position, her position (`infra/rules/victim.sql`) against his newest fix.
//! - [`pursuit`]: whether a device's reporting disagrees with pursuit mode; if so, one event
//!   asks the alert function to command it.
//! - [`handle`], [`Ports`], [`Outcome`], [`IngestError`]: the handler, what it runs on, what it
//!   returns and how it fails.
//!
//! Bad input (undecodable event, malformed payload, out-of-range values, a client that is not
//! the topic's tag, impossible speed, unknown tag) is logged with its reason (no personal
//! data), counted as the metric `MessageRejected{Reason}`, kept in the quarantine table (the
//! first 4 KiB of the payload), and acknowledged: IoT must not retry a poison message. It never
//! enters the tag's history. Throttling and outages are returned as retryable errors.

pub mod commit;
pub mod decode;
pub mod event;
pub mod fix;
pub mod moving;
pub mod pursuit;
pub mod window;

pub use decode::{PositionEvent, RuleEvent, position_event, rule_event};

use tracing::warn;
use vigil_aws::StoreError;
use vigil_aws::ports::{AlertQueue, IngestStore, Metrics, QuarantineRecord};
use vigil_core::batching::BatchRules;
use vigil_core::{BreachRules, ValidationLimits};

/// The ports the handler uses, and its settings.
pub struct Ports<S, Q, M> {
    /// Tables.
    pub store: S,
    /// The alert queue.
    pub queue: Q,
    /// Counters.
    pub metrics: M,
    /// Validation limits.
    pub limits: ValidationLimits,
    /// Breach thresholds.
    pub rules: BreachRules,
    /// Adaptive reporting: how long a tag far from everything may batch its fixes.
    pub batching: BatchRules,
}

impl<S, Q, M> Ports<S, Q, M> {
    /// Ports with the production limits and thresholds.
    pub fn new(store: S, queue: Q, metrics: M) -> Self {
        Self {
            store,
            queue,
            metrics,
            limits: ValidationLimits::default(),
            rules: BreachRules::default(),
            batching: BatchRules::default(),
        }
    }
}

/// What one message led to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A fix near nothing: one read, the history written.
    Quiet,
    /// A fix near a zone or with an open alert: states written, `events` alert events queued.
    Evaluated {
        /// Alert events queued.
        events: usize,
    },
    /// A message already handled (same counter, same content): nothing written.
    Duplicate,
    /// A v2 batch: what each of its fixes led to, in counter order.
    Batch(Vec<Outcome>),
    /// A tag event queued for `orders` orders.
    TagEvent {
        /// Orders it was queued for.
        orders: usize,
    },
    /// Rejected and quarantined; `operator_events` alert events name the zones a rejected
    /// fix would have raised.
    Rejected {
        /// The reason code.
        reason: String,
        /// Alert events queued for operators about it.
        operator_events: usize,
    },
}

/// An error the Lambda returns; [`IngestError::is_retryable`] tells the runtime's caller.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// A port failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IngestError {
    /// Whether IoT/Lambda should retry the event.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(e) => e.is_retryable(),
        }
    }

    /// The Lambda error type: `Retryable` or `Permanent`.
    pub fn error_type(&self) -> &'static str {
        if self.is_retryable() {
            "Retryable"
        } else {
            "Permanent"
        }
    }
}

/// Why a message was refused: a stable reason code and an explanation.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// The reason code (metric dimension, quarantine record).
    pub reason: String,
    /// The explanation, short and without payload content beyond the parser's position.
    pub detail: String,
}

impl From<vigil_core::FixError> for Rejection {
    fn from(e: vigil_core::FixError) -> Self {
        Rejection {
            reason: e.reason().to_owned(),
            detail: e.to_string(),
        }
    }
}

/// How much of a rejected payload is kept.
pub const QUARANTINE_PAYLOAD_BYTES: usize = 4096;

/// A jittered pause before retrying a lost race (the quiet path's history write and the
/// commit of transitions both use it).
pub(crate) fn pause(attempt: u32) -> impl Future<Output = ()> {
    tokio::time::sleep(vigil_aws::backoff(attempt, 10))
}

fn truncate_utf8(bytes: &[u8]) -> String {
    let end = bytes.len().min(QUARANTINE_PAYLOAD_BYTES);
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Logs, counts and keeps a rejected message.
async fn quarantine<S: IngestStore, Q, M: Metrics>(
    ports: &Ports<S, Q, M>,
    tag_id: &str,
    received_at_ms: i64,
    rejection: &Rejection,
    payload: &[u8],
) -> Result<(), IngestError> {
    // The tag id comes from the topic: an offender-side identifier, never victim data.
    warn!(tag_id, reason = %rejection.reason, detail = %rejection.detail, "message rejected");
    ports
        .metrics
        .count("MessageRejected", ("Reason", &rejection.reason), 1);
    ports
        .store
        .quarantine(&QuarantineRecord {
            tag_id: tag_id.chars().take(128).collect(),
            received_at_ms,
            reason: rejection.reason.clone(),
            detail: rejection.detail.clone(),
            payload: truncate_utf8(payload),
        })
        .await?;
    Ok(())
}

/// Handles one event from the IoT rule. `event` is the raw JSON, so that an event that does not
/// even have the rule's shape is quarantined rather than failing the invocation.
pub async fn handle<S: IngestStore, Q: AlertQueue, M: Metrics>(
    event: serde_json::Value,
    ports: &Ports<S, Q, M>,
) -> Result<Outcome, IngestError> {
    match decode::decode(event, &ports.limits) {
        decode::Decoded::Fixes(m) => fix::handle_fixes(m, ports).await,
        decode::Decoded::Event(m) => event::handle_tag_event(m, ports).await,
        decode::Decoded::Position(m) => moving::handle_position(m, ports).await,
        decode::Decoded::Rejected(r) => {
            quarantine(ports, &r.tag_id, r.received_at_ms, &r.rejection, &r.payload).await?;
            Ok(Outcome::Rejected {
                reason: r.rejection.reason,
                operator_events: 0,
            })
        }
        decode::Decoded::RejectedPosition(r) => moving::quarantine_position(ports, &r).await,
    }
}
