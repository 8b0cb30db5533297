//! The SQS adapter of the alert queue.
//!
//! On a FIFO queue (URL ending in `.fifo`) events are grouped by order, so the alert function
//! sees one order's events in order and one at a time, and deduplicated by event id within
//! SQS's five-minute window (the idempotency table covers the rest).

use crate::error::{StoreError, classify};
use crate::ports::AlertQueue;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use vigil_core::events::AlertEvent;

/// The alert queue on SQS.
#[derive(Clone)]
pub struct SqsQueue {
    client: Client,
    url: String,
}

impl SqsQueue {
    /// A queue at `url`.
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    fn is_fifo(&self) -> bool {
        self.url.ends_with(".fifo")
    }
}

/// A deduplication id SQS accepts (at most 128 characters) for any event id.
pub fn dedup_id(event_id: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(event_id.as_bytes()))
}

impl AlertQueue for SqsQueue {
    async fn send(&self, events: &[AlertEvent]) -> Result<(), StoreError> {
        for chunk in events.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    let mut b = SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(serde_json::to_string(e).expect("events serialize"));
                    if self.is_fifo() {
                        b = b
                            .message_group_id(e.order_id.as_str())
                            .message_deduplication_id(dedup_id(&e.event_id));
                    }
                    b.build().map_err(|err| StoreError::Config(err.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let resp = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| classify("sqs", "alert queue", e))?;
            if let Some(f) = resp.failed.first() {
                let err = format!("{}: {}", f.code, f.message.as_deref().unwrap_or(""));
                return Err(if f.sender_fault {
                    StoreError::Rejected {
                        service: "sqs",
                        code: f.code.clone(),
                        detail: err,
                    }
                } else {
                    StoreError::Unavailable {
                        service: "sqs",
                        detail: err,
                    }
                });
            }
        }
        Ok(())
    }
}
