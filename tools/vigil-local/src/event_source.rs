//! What Lambda's SQS event source mapping does, for running queue-triggered functions locally:
//! receive a batch (with system attributes, so a FIFO message's `MessageGroupId` is there), hand
//! it to the function as the Lambda SQS event JSON, then delete the messages the function did
//! not report as batch item failures. Failed messages reappear after the visibility timeout and
//! move to the dead-letter queue after its `maxReceiveCount`, as on AWS.

use crate::{Error, Result};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// A queue seen as a Lambda event source.
#[derive(Clone)]
pub struct SqsEventSource {
    sqs: Client,
    queue_url: String,
    region: String,
}

/// One batch received: the Lambda event, and what is needed to acknowledge it.
#[derive(Debug, Clone)]
pub struct ReceivedBatch {
    /// The Lambda SQS event: `{"Records": [...]}`.
    pub event: Value,
    receipts: Vec<(String, String)>,
}

impl ReceivedBatch {
    /// Number of messages in the batch.
    pub fn len(&self) -> usize {
        self.receipts.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.receipts.is_empty()
    }
}

impl SqsEventSource {
    /// The queue at `queue_url`, with a client for the emulator.
    pub fn new(sqs: Client, queue_url: impl Into<String>, region: impl Into<String>) -> Self {
        Self {
            sqs,
            queue_url: queue_url.into(),
            region: region.into(),
        }
    }

    fn fail<E: std::fmt::Debug>(&self, operation: &str) -> impl Fn(E) -> Error + '_ {
        let operation = format!("{operation} {}", self.queue_url);
        move |e| Error::Aws {
            operation: operation.clone(),
            endpoint: self.queue_url.clone(),
            message: format!("{e:?}"),
        }
    }

    /// Receives up to `max` (1 to 10) messages, waiting up to `wait_s` seconds for the first.
    pub async fn receive(&self, max: i32, wait_s: i32) -> Result<ReceivedBatch> {
        let received = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .wait_time_seconds(wait_s)
            .send()
            .await
            .map_err(self.fail("ReceiveMessage"))?;
        let mut records = Vec::new();
        let mut receipts = Vec::new();
        for m in received.messages() {
            let attributes: BTreeMap<&str, &str> = m
                .attributes()
                .map(|a| a.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect())
                .unwrap_or_default();
            records.push(json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "awsRegion": self.region,
            }));
            receipts.push((
                m.message_id().unwrap_or_default().to_owned(),
                m.receipt_handle().unwrap_or_default().to_owned(),
            ));
        }
        Ok(ReceivedBatch {
            event: json!({ "Records": records }),
            receipts,
        })
    }

    /// Acknowledges a batch given the function's response (`{"batchItemFailures":
    /// [{"itemIdentifier": ...}]}`): deletes every message not reported as failed. Returns the
    /// number deleted. The failed ones come back after the queue's visibility timeout, as
    /// with Lambda.
    pub async fn complete(&self, batch: &ReceivedBatch, response: &Value) -> Result<usize> {
        self.complete_retrying(batch, response, None).await
    }

    /// As [`SqsEventSource::complete`]; with `retry_after`, the failed messages come back
    /// after that instead of the queue's visibility timeout (tests that drive a message to
    /// the dead-letter queue in seconds rather than minutes).
    pub async fn complete_retrying(
        &self,
        batch: &ReceivedBatch,
        response: &Value,
        retry_after: Option<std::time::Duration>,
    ) -> Result<usize> {
        let failed = batch_item_failures(response);
        let mut deleted = 0;
        for (id, receipt) in batch
            .receipts
            .iter()
            .filter(|(id, _)| !failed.contains(&id.as_str()))
        {
            self.sqs
                .delete_message()
                .queue_url(&self.queue_url)
                .receipt_handle(receipt)
                .send()
                .await
                .map_err(self.fail(&format!("DeleteMessage {id}")))?;
            deleted += 1;
        }
        if let Some(after) = retry_after {
            let failed: Vec<_> = batch
                .receipts
                .iter()
                .filter(|(id, _)| failed.contains(&id.as_str()))
                .cloned()
                .collect();
            self.return_after(&failed, after).await?;
        }
        Ok(deleted)
    }

    /// Makes every message of a batch the function did not finish (it timed out) visible
    /// again after `after`, instead of the queue's visibility timeout.
    pub async fn release(&self, batch: &ReceivedBatch, after: std::time::Duration) -> Result<()> {
        self.return_after(&batch.receipts, after).await
    }

    async fn return_after(
        &self,
        receipts: &[(String, String)],
        after: std::time::Duration,
    ) -> Result<()> {
        let seconds = i32::try_from(after.as_secs()).unwrap_or(i32::MAX);
        for (id, receipt) in receipts {
            self.sqs
                .change_message_visibility()
                .queue_url(&self.queue_url)
                .receipt_handle(receipt)
                .visibility_timeout(seconds)
                .send()
                .await
                .map_err(self.fail(&format!("ChangeMessageVisibility {id}")))?;
        }
        Ok(())
    }
}

/// The item identifiers a function reported failed in its partial batch response
/// (`{"batchItemFailures": [{"itemIdentifier": ...}]}`), for a queue or a stream alike.
pub(crate) fn batch_item_failures(response: &Value) -> Vec<&str> {
    response["batchItemFailures"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["itemIdentifier"].as_str())
                .collect()
        })
        .unwrap_or_default()
}
