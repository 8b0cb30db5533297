//! Dead-letter queues: what the functions could not process, to inspect and to send back once
//! the cause is fixed (`vigil dlq list`, `vigil dlq redrive`; docs/FAULTS.md).
//!
//! - `alerts-dlq` (FIFO): alert events the alert function failed five times (SNS or the store
//!   unavailable, a timeout). A redrive sends each back to the alerts queue in its own message
//!   group, with the deduplication id `redrive-<its message id>` (a redrive repeated after a
//!   crash between send and delete is not queued twice), then deletes it. The alert function
//!   judges a redriven event by the current state and its receive time: it never texts what
//!   the state contradicts, and an old one reaches operators only, marked late.
//! - `rule-errors`: tag messages ingest failed on after Lambda's retries (Lambda's on-failure
//!   destination records; IoT rule error-action records). A redrive invokes ingest
//!   (`vigil-<stage>-ingest`) again, synchronously, with the record's `requestPayload`, and
//!   deletes the record only when ingest succeeded; an error-action record holds no event to
//!   invoke with and is left, named.
//!
//! Listing receives the messages (SQS has no peek) and makes them visible again at once. No
//! victim data is in either queue: alert events carry ids, levels and the offender's fix.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use serde::Serialize;
use serde_json::Value;

use crate::error::{CliError, Result};
use crate::report::{Report, rfc3339_ms, table};

/// The dead-letter queues, by their logical names in `infra/resources.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeadLetterQueue {
    /// Alert events the alert function could not handle (FIFO).
    AlertsDlq,
    /// Tag messages ingest could not handle after its retries.
    RuleErrors,
}

impl DeadLetterQueue {
    /// Both, in the order they are listed.
    pub const ALL: [DeadLetterQueue; 2] = [DeadLetterQueue::AlertsDlq, DeadLetterQueue::RuleErrors];

    /// The logical name (`infra/resources.json`).
    pub fn logical(self) -> &'static str {
        match self {
            DeadLetterQueue::AlertsDlq => "alerts-dlq",
            DeadLetterQueue::RuleErrors => "rule-errors",
        }
    }

    fn fifo(self) -> bool {
        matches!(self, DeadLetterQueue::AlertsDlq)
    }
}

/// `vigil dlq ...`
#[derive(clap::Subcommand, Debug)]
pub enum DlqCmd {
    /// What each dead-letter queue holds (both unless --queue).
    #[command(
        after_help = "Example:\n  vigil dlq list\n  vigil dlq list --queue alerts-dlq --json"
    )]
    List {
        /// One queue only.
        #[arg(long, value_enum)]
        queue: Option<DeadLetterQueue>,
        /// At most this many messages per queue.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Send parked messages back to be processed again (once the cause is fixed).
    #[command(
        after_help = "Example:\n  vigil dlq redrive --queue alerts-dlq\n  vigil dlq redrive --queue rule-errors --message-id 6c1f...\n\nalerts-dlq: back to the alerts queue, in order per order. rule-errors: ingest is invoked\nagain with the failed event; a message that fails again stays in the queue."
    )]
    Redrive {
        /// The queue to redrive.
        #[arg(long, value_enum)]
        queue: DeadLetterQueue,
        /// Only this message (an id from `vigil dlq list`).
        #[arg(long)]
        message_id: Option<String>,
        /// At most this many messages.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

/// One parked message, described without its body.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Parked {
    /// The queue.
    pub queue: DeadLetterQueue,
    /// The SQS message id (for `--message-id`).
    pub message_id: String,
    /// When it was first sent to its original queue, if SQS says.
    pub sent_ms: Option<i64>,
    /// How many times it was received (deliveries to the function, then listings).
    pub receive_count: Option<u64>,
    /// What it is, read from its body.
    pub what: String,
    /// The order or tag it concerns.
    pub subject: String,
    /// Why it failed, when the record says.
    pub reason: Option<String>,
}

/// What a body says, for [`Parked`]: (what, subject, reason).
pub fn describe(queue: DeadLetterQueue, body: &str) -> (String, String, Option<String>) {
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return ("unreadable (not JSON)".into(), "-".into(), None);
    };
    let text = |v: &Value| v.as_str().map(str::to_owned);
    match queue {
        DeadLetterQueue::AlertsDlq => {
            if let Ok(event) = serde_json::from_value::<vigil_core::events::AlertEvent>(v.clone()) {
                return (
                    format!("{} {}", event.type_name(), event.event_id),
                    event.order_id.to_string(),
                    None,
                );
            }
            let kind = text(&v["type"])
                .or_else(|| text(&v["body"]["type"]))
                .unwrap_or_else(|| "alert event".into());
            let what = match text(&v["event_id"]) {
                Some(id) => format!("{kind} {id}"),
                None => kind,
            };
            (
                what,
                text(&v["order_id"]).unwrap_or_else(|| "-".into()),
                None,
            )
        }
        DeadLetterQueue::RuleErrors => {
            if let Some(payload) = v.get("requestPayload") {
                let tag = text(&payload["tag_id"]).unwrap_or_else(|| "-".into());
                let channel = text(&payload["channel"]).unwrap_or_else(|| "message".into());
                let attempts = v["requestContext"]["approximateInvokeCount"].as_u64();
                let condition =
                    text(&v["requestContext"]["condition"]).unwrap_or_else(|| "failed".into());
                let what = match attempts {
                    Some(n) => format!("ingest {channel}: {condition} after {n} attempts"),
                    None => format!("ingest {channel}: {condition}"),
                };
                (what, tag, text(&v["responsePayload"]["errorMessage"]))
            } else {
                let topic = text(&v["topic"]).unwrap_or_else(|| "-".into());
                let reason = v["failures"][0]["errorMessage"].as_str().map(str::to_owned);
                ("rule error (no event to invoke with)".into(), topic, reason)
            }
        }
    }
}

/// The parked messages of the queues asked for.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetters {
    /// Messages per queue as SQS counts them (visible and in flight).
    pub counts: BTreeMap<String, u64>,
    /// The messages received (up to the limit per queue).
    pub messages: Vec<Parked>,
}

impl Report for DeadLetters {
    fn human(&self) -> String {
        let counts: Vec<String> = self
            .counts
            .iter()
            .map(|(q, n)| format!("{q}: {n}"))
            .collect();
        if self.messages.is_empty() {
            return format!("{} (nothing parked)", counts.join(", "));
        }
        let rows: Vec<[String; 6]> = self
            .messages
            .iter()
            .map(|m| {
                [
                    m.queue.logical().to_owned(),
                    m.message_id.clone(),
                    m.sent_ms.map_or_else(|| "-".into(), rfc3339_ms),
                    m.subject.clone(),
                    m.what.clone(),
                    m.reason.clone().unwrap_or_default(),
                ]
            })
            .collect();
        format!(
            "{}\n{}",
            counts.join(", "),
            table(
                ["QUEUE", "MESSAGE", "SENT", "ORDER/TAG", "WHAT", "REASON"],
                &rows,
                &[]
            )
        )
    }
}

/// What a redrive did.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Redriven {
    /// Sent back (or ingest invoked successfully), and deleted from the dead-letter queue.
    pub moved: Vec<String>,
    /// Left in the queue, each with why.
    pub left: Vec<(String, String)>,
}

impl Report for Redriven {
    fn human(&self) -> String {
        let mut out = format!("redriven: {}", self.moved.len());
        for (id, why) in &self.left {
            out.push_str(&format!("\nleft {id}: {why}"));
        }
        out
    }
}

/// The clients and names a dead-letter command needs.
pub struct Queues {
    sqs: aws_sdk_sqs::Client,
    lambda: aws_sdk_lambda::Client,
    config: vigil_aws::Config,
}

fn aws(operation: impl Into<String>) -> impl FnOnce(String) -> CliError {
    let operation = operation.into();
    move |detail| CliError::Aws {
        operation,
        detail,
        retryable: true,
    }
}

fn sdk_error<E: std::error::Error + 'static>(e: aws_sdk_sqs::error::SdkError<E>) -> String {
    aws_sdk_sqs::error::DisplayErrorContext(e).to_string()
}

impl Queues {
    /// The queues of the configured stage, with clients from its SDK settings.
    pub fn new(aws: &vigil_aws::Aws) -> Queues {
        Queues::with_clients(
            aws_sdk_sqs::Client::new(&aws.sdk),
            aws_sdk_lambda::Client::new(&aws.sdk),
            aws.config.clone(),
        )
    }

    /// The queues of the configured stage, with these clients.
    pub fn with_clients(
        sqs: aws_sdk_sqs::Client,
        lambda: aws_sdk_lambda::Client,
        config: vigil_aws::Config,
    ) -> Queues {
        Queues {
            sqs,
            lambda,
            config,
        }
    }

    /// A dead-letter queue's URL (see [`Queues::url_of`]).
    async fn url(&self, queue: DeadLetterQueue) -> Result<String> {
        self.url_of(queue.logical(), queue.fifo()).await
    }

    /// A queue's URL: from its `VIGIL_<NAME>_QUEUE_URL` variable when set (the local stack's
    /// env file), else asked of SQS by its physical name.
    async fn url_of(&self, logical: &str, fifo: bool) -> Result<String> {
        let var = format!(
            "VIGIL_{}_QUEUE_URL",
            logical.replace('-', "_").to_ascii_uppercase()
        );
        if let Ok(url) = std::env::var(&var) {
            return Ok(url);
        }
        let name = format!(
            "{}{}",
            self.config.name(logical),
            if fifo { ".fifo" } else { "" }
        );
        let out = self
            .sqs
            .get_queue_url()
            .queue_name(&name)
            .send()
            .await
            .map_err(|e| aws(format!("GetQueueUrl {name}"))(sdk_error(e)))?;
        out.queue_url()
            .map(str::to_owned)
            .ok_or_else(|| CliError::NotFound(format!("queue {name}")))
    }

    async fn count(&self, url: &str) -> Result<u64> {
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| aws(format!("GetQueueAttributes {url}"))(sdk_error(e)))?;
        let attrs = out.attributes().cloned().unwrap_or_default();
        let n = |k| {
            attrs
                .get(&k)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok(n(QueueAttributeName::ApproximateNumberOfMessages)
            + n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible))
    }

    /// Receives up to 10 messages, hidden for `hide`.
    async fn receive(&self, url: &str, hide: Duration) -> Result<Vec<aws_sdk_sqs::types::Message>> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(i32::try_from(hide.as_secs()).unwrap_or(i32::MAX))
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(|e| aws(format!("ReceiveMessage {url}"))(sdk_error(e)))?;
        Ok(out.messages().to_vec())
    }

    async fn show_again(&self, url: &str, receipt: &str) -> Result<()> {
        self.sqs
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(receipt)
            .visibility_timeout(0)
            .send()
            .await
            .map_err(|e| aws(format!("ChangeMessageVisibility {url}"))(sdk_error(e)))?;
        Ok(())
    }

    async fn delete(&self, url: &str, receipt: &str) -> Result<()> {
        self.sqs
            .delete_message()
            .queue_url(url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| aws(format!("DeleteMessage {url}"))(sdk_error(e)))?;
        Ok(())
    }

    /// `vigil dlq list`.
    ///
    /// Fails when SQS fails.
    pub async fn list(&self, queue: Option<DeadLetterQueue>, limit: usize) -> Result<DeadLetters> {
        let queues = queue.map_or(DeadLetterQueue::ALL.to_vec(), |q| vec![q]);
        let mut out = DeadLetters {
            counts: BTreeMap::new(),
            messages: Vec::new(),
        };
        for q in queues {
            let url = self.url(q).await?;
            out.counts
                .insert(q.logical().to_owned(), self.count(&url).await?);
            let mut receipts = Vec::new();
            let mut seen = std::collections::BTreeSet::new();
            while seen.len() < limit {
                let batch = self.receive(&url, Duration::from_secs(30)).await?;
                if batch.is_empty() {
                    break;
                }
                for m in batch {
                    let id = m.message_id().unwrap_or_default().to_owned();
                    receipts.push(m.receipt_handle().unwrap_or_default().to_owned());
                    if !seen.insert(id.clone()) || seen.len() > limit {
                        continue;
                    }
                    out.messages.push(parked(q, &m));
                }
            }
            // Listing must not delay a redrive or the queue's own handling.
            for receipt in receipts {
                self.show_again(&url, &receipt).await?;
            }
        }
        Ok(out)
    }

    /// `vigil dlq redrive`.
    ///
    /// Fails when SQS fails; a message that cannot be redriven is left and named instead.
    pub async fn redrive(
        &self,
        queue: DeadLetterQueue,
        message_id: Option<&str>,
        limit: usize,
    ) -> Result<Redriven> {
        let url = self.url(queue).await?;
        let target = match queue {
            DeadLetterQueue::AlertsDlq => Some(self.url_of("alerts", true).await?),
            DeadLetterQueue::RuleErrors => None,
        };
        let mut done = Redriven::default();
        let mut skipped = Vec::new();
        while done.moved.len() + done.left.len() < limit {
            let batch = self.receive(&url, Duration::from_secs(60)).await?;
            if batch.is_empty() {
                break;
            }
            for m in batch {
                let id = m.message_id().unwrap_or_default().to_owned();
                let receipt = m.receipt_handle().unwrap_or_default().to_owned();
                if message_id.is_some_and(|wanted| wanted != id) {
                    skipped.push(receipt);
                    continue;
                }
                let result = match &target {
                    Some(alerts) => self.send_back(alerts, &m).await,
                    None => self.invoke_again(&m).await,
                };
                match result {
                    Ok(()) => {
                        self.delete(&url, &receipt).await?;
                        done.moved.push(id);
                    }
                    Err(why) => {
                        skipped.push(receipt);
                        done.left.push((id, why));
                    }
                }
            }
            if message_id.is_some() && !done.moved.is_empty() {
                break;
            }
        }
        for receipt in skipped {
            self.show_again(&url, &receipt).await?;
        }
        if let Some(wanted) = message_id
            && done.moved.is_empty()
            && done.left.is_empty()
        {
            return Err(CliError::NotFound(format!(
                "no message {wanted} in {}",
                queue.logical()
            )));
        }
        Ok(done)
    }

    /// An alert event back to the alerts queue, in its message group.
    async fn send_back(
        &self,
        alerts: &str,
        m: &aws_sdk_sqs::types::Message,
    ) -> std::result::Result<(), String> {
        let id = m.message_id().unwrap_or_default();
        let group = m
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
            .ok_or("no message group id (not from a FIFO queue)")?;
        self.sqs
            .send_message()
            .queue_url(alerts)
            .message_body(m.body().unwrap_or_default())
            .message_group_id(group)
            .message_deduplication_id(redrive_dedup_id(id))
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }

    /// Ingest invoked again with a failed invocation's event.
    async fn invoke_again(
        &self,
        m: &aws_sdk_sqs::types::Message,
    ) -> std::result::Result<(), String> {
        let body: Value = serde_json::from_str(m.body().unwrap_or_default())
            .map_err(|e| format!("not JSON: {e}"))?;
        let event = body
            .get("requestPayload")
            .ok_or("an IoT rule error record: it holds no event to invoke ingest with")?;
        let function = self.config.name("ingest");
        if let Some(arn) = body["requestContext"]["functionArn"].as_str()
            && !arn.contains(&format!(":function:{function}"))
        {
            return Err(format!("the record is for {arn}, not {function}"));
        }
        let out = self
            .lambda
            .invoke()
            .function_name(&function)
            .payload(aws_sdk_lambda::primitives::Blob::new(event.to_string()))
            .send()
            .await
            .map_err(|e| aws_sdk_lambda::error::DisplayErrorContext(e).to_string())?;
        if let Some(kind) = out.function_error() {
            let payload = out
                .payload()
                .map(|p| String::from_utf8_lossy(p.as_ref()).into_owned())
                .unwrap_or_default();
            return Err(format!("{function} failed again ({kind}): {payload}"));
        }
        Ok(())
    }
}

fn parked(queue: DeadLetterQueue, m: &aws_sdk_sqs::types::Message) -> Parked {
    let attr = |k: MessageSystemAttributeName| m.attributes().and_then(|a| a.get(&k)).cloned();
    let (what, subject, reason) = describe(queue, m.body().unwrap_or_default());
    Parked {
        queue,
        message_id: m.message_id().unwrap_or_default().to_owned(),
        sent_ms: attr(MessageSystemAttributeName::SentTimestamp).and_then(|v| v.parse().ok()),
        receive_count: attr(MessageSystemAttributeName::ApproximateReceiveCount)
            .and_then(|v| v.parse().ok()),
        what,
        subject,
        reason,
    }
}

/// The deduplication id of a redriven alert message: the same for every redrive of one
/// parked message, so a redrive repeated after a crash between send and delete is dropped by
/// the FIFO queue (within its five-minute window) instead of queued twice.
pub fn redrive_dedup_id(dlq_message_id: &str) -> String {
    let id: String = dlq_message_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(100)
        .collect();
    format!("redrive-{id}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_alert_event_is_described_by_kind_id_and_order() {
        let body = json!({"event_id": "zc:o-1:home:3", "order_id": "o-1", "type": "zone_change"});
        let (what, subject, reason) = describe(DeadLetterQueue::AlertsDlq, &body.to_string());
        assert_eq!(what, "zone_change zc:o-1:home:3");
        assert_eq!(subject, "o-1");
        assert_eq!(reason, None);
    }

    #[test]
    fn a_destination_record_names_the_tag_attempts_and_error() {
        let body = json!({
            "requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 3},
            "requestPayload": {"tag_id": "tag-1", "channel": "fix"},
            "responsePayload": {"errorMessage": "dynamodb is unavailable"},
        });
        let (what, subject, reason) = describe(DeadLetterQueue::RuleErrors, &body.to_string());
        assert_eq!(what, "ingest fix: RetriesExhausted after 3 attempts");
        assert_eq!(subject, "tag-1");
        assert_eq!(reason.as_deref(), Some("dynamodb is unavailable"));
    }

    #[test]
    fn a_rule_error_record_says_it_cannot_be_invoked_again() {
        let body = json!({"topic": "tags/t/fix", "failures": [{"errorMessage": "bad"}]});
        let (what, subject, reason) = describe(DeadLetterQueue::RuleErrors, &body.to_string());
        assert!(what.contains("no event"), "{what}");
        assert_eq!(
            (subject.as_str(), reason.as_deref()),
            ("tags/t/fix", Some("bad"))
        );
        assert_eq!(
            describe(DeadLetterQueue::RuleErrors, "{").0,
            "unreadable (not JSON)"
        );
    }

    #[test]
    fn a_redrive_is_deduplicated_by_the_parked_message() {
        assert_eq!(redrive_dedup_id("6c1f-aa"), redrive_dedup_id("6c1f-aa"));
        assert_ne!(redrive_dedup_id("6c1f-aa"), redrive_dedup_id("6c1f-ab"));
        assert!(redrive_dedup_id(&"x".repeat(500)).len() <= 128);
        assert_eq!(redrive_dedup_id("a b/c"), "redrive-abc");
    }
}
