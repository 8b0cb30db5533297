//! Vigil's alert function: takes alert events from the SQS alert queue, texts the victim when
//! the policy and the current state say so, tells the monitoring centre everything, and keeps
//! the order's hash-chained audit log. The handler is generic over the ports, so its tests and
//! the simulator run it on the in-memory adapters and `main.rs` on DynamoDB, SNS and KMS.
//!
//! # Layout
//! - [`batch`]: one SQS batch in, a partial batch failure response out; keeps FIFO order per
//!   message group by failing, unprocessed, every later message of a group that had a
//!   failure; [`batch::parse_event`] reads a body without quoting it.
//! - [`handle`]: one [`AlertEvent`]: claim its id (bound to its content), read the order, the
//!   victim's notices and the order's current level, decide with the core policy, send the
//!   SMS, save the notices, publish the typed operator event, append the audit records,
//!   finish.
//! - [`forces`]: the event to its order's force's topic too, and an urgent one inside another
//!   force's area to that force as a responder event (docs/FORCES.md).
//! - [`audit`]: the audit records of an event, built in one place.
//! - [`redact`]: phone numbers out of error texts.
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
//! # What reaches the victim
//! Only what the current state and the clock allow (see [`vigil_core::policy`]): an event
//! handled more than the order's `max_event_age_s` after its cause was received, or one the
//! order's current level contradicts (a redriven all-clear while the offender is near again),
//! goes to operators only, marked; SMS are capped per order per hour and per day, and
//! operators are paged at the cap. A number outside the deployment's countries
//! (`VIGIL_SMS_COUNTRIES`) is never texted.
//!
//! # Metrics (CloudWatch EMF, namespace `Vigil`)
//! `SmsSent{Alert}` and `{Force}`, `SmsHeld{Reason}`, `OperatorEvents{Urgency}` and `{Force}`,
//! `RoutedEvents{Force}` (by the force routed to), `AlertDuplicate{Type}`,
//! `ClaimMismatch{Type}` (alarmed: a claim written for other content),
//! `AlertRejected{Reason=bad_message|unknown_order}` (poison: ends in the dead-letter queue),
//! `AlertFailed{Reason}` (in_progress, group_blocked, or the store error's kind).

pub mod audit;
pub mod batch;
pub mod forces;
pub mod handle;
pub mod pursuit;
pub mod redact;

pub use batch::{handle_batch, parse_event};
pub use handle::handle_event;

use vigil_aws::StoreError;
use vigil_core::{OrderId, Urgency, VictimDecision};

/// A claim older than this that was never finished is taken over by the next delivery of the
/// event. A failure releases its claim at once (see [`handle_event`]); a claim goes stale only
/// when the function died mid-way. It must exceed the function's timeout (30 s, set in infra)
/// and stay below the queue's visibility timeout (60 s, `infra/resources.json`), so a
/// redelivery after a crash is never refused as "in progress" and receives are not wasted
/// on the way to the dead-letter queue.
pub const CLAIM_STALE_AFTER_MS: i64 = 50_000;

/// What the handler runs on: a store that is also the audit log, a notifier, the destination
/// hash, metrics, the commander of devices' reporting rates, and the countries SMS may go to.
pub struct Ports<S, N, D, M, C> {
    /// Idempotency claims, orders, zone states, victim notices and the audit log.
    pub store: S,
    /// SMS and the operators' topic.
    pub notifier: N,
    /// The keyed hash of SMS destinations.
    pub destination_mac: D,
    /// Counters.
    pub metrics: M,
    /// Commands to the tag and her device (pursuit mode).
    pub commander: C,
    /// ISO 3166 alpha-2 codes of the countries whose numbers may be texted.
    pub sms_countries: Vec<String>,
    /// The forces of the deployment (docs/FORCES.md): each force's operators' topic, SMS
    /// sender id and area. `None`: every operator event goes to the national topic alone.
    pub forces: Option<std::sync::Arc<vigil_core::forces::Forces>>,
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
            Self::Store(e) => e.kind(),
        }
    }
}
