//! Vigil's AWS side in one process, on the local emulator: the IoT rule's two actions, the
//! ingest handler, the alert queue (SQS FIFO, drained as Lambda's event source mapping does),
//! the alert handler, SNS, and read-back of what victims and operators received.
//!
//! # Layout
//! - [`Pipeline`]: start an emulator, provision through the admin port, publish fixes and raw
//!   payloads as IoT Core would deliver them, drain the alert queue through the alert function,
//!   and read back SMS and operator events.

use std::collections::BTreeMap;
use vigil_alert::handle_batch;
use vigil_aws::items::{self, table};
use vigil_aws::metrics::MemoryMetrics;
use vigil_aws::{Config, DynamoStore, SnsNotifier, SqsQueue};
use vigil_core::{BreachRules, Fix, ProtectionOrder, ValidationLimits, Zone};
use vigil_ingest::{Outcome, fix_payload, handle, rule_event};
use vigil_local::{Emulator, OperatorEvent, SentSms, SqsEventSource};

/// The functions wired on an emulator.
pub struct Pipeline {
    /// The emulator (stopped when the pipeline is dropped).
    pub emulator: Emulator,
    /// The functions' configuration.
    pub config: Config,
    /// The store, for provisioning and assertions.
    pub store: DynamoStore,
    /// The ingest function's ports.
    pub ingest: vigil_ingest::Ports<DynamoStore, SqsQueue, MemoryMetrics>,
    /// The alert function's ports.
    pub alert: vigil_alert::Ports<DynamoStore, SnsNotifier, MemoryMetrics>,
    source: SqsEventSource,
}

impl Pipeline {
    /// Starts an emulator and wires the functions to it as `main.rs` would in Lambda.
    pub async fn start() -> Pipeline {
        let emulator = Emulator::start().await.expect("emulator starts");
        let env: BTreeMap<String, String> = emulator.env_vars().into_iter().collect();
        let config = Config::from_lookup(|k| env.get(k).cloned()).expect("config");
        let sdk = emulator.sdk_config();
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &config);
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let queue_url = config.alerts_queue_url().expect("queue url").to_owned();
        let topic = config.operators_topic_arn().expect("topic arn").to_owned();
        let ingest = vigil_ingest::Ports {
            store: store.clone(),
            queue: SqsQueue::new(sqs.clone(), queue_url.clone()),
            metrics: MemoryMetrics::default(),
            limits: ValidationLimits::default(),
            rules: BreachRules::default(),
        };
        let alert = vigil_alert::Ports {
            store: store.clone(),
            notifier: SnsNotifier::new(aws_sdk_sns::Client::new(&sdk), topic, None),
            metrics: MemoryMetrics::default(),
        };
        let source = SqsEventSource::new(sqs, queue_url, emulator.region());
        Pipeline {
            emulator,
            config,
            store,
            ingest,
            alert,
            source,
        }
    }

    /// Provisions an order and its zones through the operator CLI's provisioning code.
    pub async fn provision(&self, order: &ProtectionOrder, zones: &[Zone]) {
        vigil_cli::orders::provision_order(&self.store, order, zones)
            .await
            .expect("provision order and zones");
    }

    /// Delivers a fix as IoT Core would: the rule's DynamoDB action writes last-seen, its Lambda
    /// action invokes ingest (received 200 ms after the device time).
    pub async fn publish_fix(&self, fix: &Fix) -> Outcome {
        let received_at = fix.at_ms + 200;
        self.store
            .client()
            .put_item()
            .table_name(self.config.name(table::LAST_SEEN))
            .set_item(Some(items::last_seen_item(
                fix,
                received_at,
                received_at / 1000 + 86_400,
            )))
            .send()
            .await
            .expect("last-seen put");
        self.publish_raw(fix.tag_id.as_str(), "fix", &fix_payload(fix), received_at)
            .await
    }

    /// Delivers any payload on `tags/{tag}/{channel}` to ingest, as the rule encodes it.
    pub async fn publish_raw(
        &self,
        tag: &str,
        channel: &str,
        payload: &[u8],
        received_at_ms: i64,
    ) -> Outcome {
        handle(
            rule_event(tag, channel, payload, received_at_ms),
            &self.ingest,
        )
        .await
        .expect("ingest")
    }

    /// Runs the alert function on everything in the alert queue, batch by batch, until it is
    /// empty; returns the number of messages handled.
    pub async fn drain(&self) -> usize {
        let mut handled = 0;
        loop {
            let batch = self.source.receive(10, 0).await.expect("receive");
            if batch.is_empty() {
                return handled;
            }
            let event = serde_json::from_value(batch.event.clone()).expect("SQS event");
            let response =
                handle_batch(event, &self.alert, chrono::Utc::now().timestamp_millis()).await;
            let response = serde_json::to_value(&response).expect("response");
            handled += self.source.complete(&batch, &response).await.expect("ack");
        }
    }

    /// SMS the emulator recorded.
    pub async fn sms(&self) -> Vec<SentSms> {
        self.emulator.sent_sms().await.expect("sms read-back")
    }

    /// Operator-topic events the emulator recorded.
    pub async fn operator_events(&self) -> Vec<OperatorEvent> {
        self.emulator
            .operator_events()
            .await
            .expect("operator events read-back")
    }
}
