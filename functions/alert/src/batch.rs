//! One SQS batch: parse each body, handle the events in order, and report the failures so
//! that SQS redelivers them (and everything after them in their group).

use crate::{AlertError, Ports, handle_event};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use std::collections::HashSet;
use tracing::{error, warn};
use vigil_aws::ports::{
    AlertStore, AuditLog, Commander, DestinationMac, EscalationStore, Metrics, Notifier,
    ReportingStore,
};
use vigil_core::events::AlertEvent;

/// The SQS attribute that carries a FIFO message's group (the order id).
pub const MESSAGE_GROUP_ID: &str = "MessageGroupId";

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

/// Handles one SQS batch at `now_ms`; returns the messages to redeliver (partial batch
/// failure).
///
/// Messages are handled in batch order. A failed message is reported as a batch item failure,
/// and so is every later message of the same group (the FIFO `MessageGroupId`, which is the
/// order id; on a standard queue the event's order id), without being handled, so that one
/// order's events are never applied out of order. Never fails as a whole: bad input is a
/// failed item, not a crashed function.
pub async fn handle_batch<S, N, D, M, C>(
    event: SqsEvent,
    ports: &Ports<S, N, D, M, C>,
    now_ms: i64,
) -> SqsBatchResponse
where
    S: AlertStore + AuditLog + ReportingStore + EscalationStore,
    N: Notifier,
    D: DestinationMac,
    M: Metrics,
    C: Commander,
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
            report_failure(&e, &message_id, &ports.metrics);
            if let Some(g) = group {
                failed_groups.insert(g);
            }
            response.add_failure(message_id);
        }
    }
    response
}

fn report_failure<M: Metrics>(e: &AlertError, message_id: &str, metrics: &M) {
    let reason = e.reason();
    match e {
        AlertError::BadMessage { .. } | AlertError::UnknownOrder(_) => {
            metrics.count("AlertRejected", ("Reason", reason), 1);
            error!(message_id, reason, error = %e, "alert event rejected");
        }
        _ if e.is_retryable() => {
            metrics.count("AlertFailed", ("Reason", reason), 1);
            warn!(message_id, reason, error = %e, "alert event failed; it will be redelivered");
        }
        _ => {
            metrics.count("AlertFailed", ("Reason", reason), 1);
            error!(
                message_id,
                reason,
                error = %e,
                "alert event failed and a retry cannot help; it goes to the dead-letter queue after redrive"
            );
        }
    }
}
