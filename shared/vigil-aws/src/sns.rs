//! The SNS adapter of the notifier: transactional SMS by phone number, and the operators'
//! topic.

use crate::error::{StoreError, classify};
use crate::ports::{ForceMessage, Notifier};
use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;
use vigil_core::{OperatorEvent, PhoneNumber};

/// SMS and operator events on SNS.
#[derive(Clone)]
pub struct SnsNotifier {
    client: Client,
    operators_topic_arn: String,
    sender_id: Option<String>,
}

fn string_attr(v: &str) -> Result<MessageAttributeValue, StoreError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(v)
        .build()
        .map_err(|e| StoreError::Config(e.to_string()))
}

/// A topic message's subject as SNS accepts it: ASCII, at most 100 characters.
fn subject_line(subject: &str) -> String {
    subject.chars().filter(char::is_ascii).take(100).collect()
}

impl SnsNotifier {
    /// A notifier publishing operator events to `operators_topic_arn`; `sender_id` is the
    /// alphanumeric sender shown on SMS where the country allows it.
    pub fn new(
        client: Client,
        operators_topic_arn: impl Into<String>,
        sender_id: Option<String>,
    ) -> Self {
        Self {
            client,
            operators_topic_arn: operators_topic_arn.into(),
            sender_id,
        }
    }
}

impl Notifier for SnsNotifier {
    async fn send_sms(
        &self,
        to: &PhoneNumber,
        text: &str,
        sender_id: Option<&str>,
    ) -> Result<String, StoreError> {
        let mut req = self
            .client
            .publish()
            .phone_number(to.e164())
            .message(text)
            .message_attributes("AWS.SNS.SMS.SMSType", string_attr("Transactional")?);
        if let Some(sender) = sender_id.or(self.sender_id.as_deref()) {
            req = req.message_attributes("AWS.SNS.SMS.SenderID", string_attr(sender)?);
        }
        let resp = req.send().await.map_err(|e| classify("sns", "sms", e))?;
        Ok(resp.message_id.unwrap_or_default())
    }

    async fn publish_operator(&self, event: &OperatorEvent) -> Result<String, StoreError> {
        let subject = subject_line(&event.subject());
        // Subscribers filter on these attributes (e.g. only urgent events to a pager).
        let req = self
            .client
            .publish()
            .topic_arn(&self.operators_topic_arn)
            .subject(subject)
            .message(serde_json::to_string(event).expect("operator events serialize"))
            .message_attributes("kind", string_attr(&event.kind.to_string())?)
            .message_attributes("urgency", string_attr(event.urgency.name())?);
        let resp = req
            .send()
            .await
            .map_err(|e| classify("sns", "operators topic", e))?;
        Ok(resp.message_id.unwrap_or_default())
    }

    async fn publish_to_force(&self, message: &ForceMessage) -> Result<String, StoreError> {
        let subject = subject_line(&message.subject);
        let resp = self
            .client
            .publish()
            .topic_arn(&message.topic_arn)
            .subject(subject)
            .message(&message.body)
            .message_attributes("audience", string_attr(message.audience)?)
            .message_attributes("kind", string_attr(&message.kind)?)
            .message_attributes("urgency", string_attr(message.urgency)?)
            .send()
            .await
            .map_err(|e| classify("sns", "a force's operators topic", e))?;
        Ok(resp.message_id.unwrap_or_default())
    }
}
