//! Reading back what Vigil sent, from the emulator's own records: SMS and operator-topic
//! events. This is the one place that knows the emulators' inspection endpoints:
//!
//! - moto: `GET /moto-api/data.json`, whose `sns.SMS` is a list of
//!   `{"phone_number", "message", "message_id"}` and whose `sns.Topic[]` entries carry
//!   `sent_notifications`: `[message_id, message, subject, attributes, group_id]` per publish,
//!   with attributes as `{"name": {"Type": "String", "Value": "..."}}`. `POST /moto-api/reset`
//!   clears all state.
//! - LocalStack: `GET /_aws/sns/sms-messages?region=R`, which groups messages by number:
//!   `{"sms_messages": {"+44...": [{"PhoneNumber", "Message", "MessageId", ...}]}, "region": R}`;
//!   `DELETE` on the same path clears them.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, Result};

/// Which emulator answers at an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EmulatorKind {
    /// moto's server (`/moto-api/` answers).
    Moto,
    /// LocalStack (`/_localstack/health` answers).
    LocalStack,
}

/// One SMS that SNS `Publish(PhoneNumber)` sent, as the emulator recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentSms {
    /// Destination in E.164, e.g. `+447700900123`.
    pub phone_number: String,
    /// Message text as published.
    pub message: String,
    /// The MessageId that Publish returned.
    pub message_id: String,
}

/// One message published to the operators topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMessage {
    /// The MessageId that Publish returned.
    pub message_id: String,
    /// Message body as published (Vigil publishes JSON).
    pub message: String,
    /// Subject, if one was given.
    pub subject: Option<String>,
    /// Message attributes: name to string value.
    pub attributes: BTreeMap<String, String>,
}

/// A read-back connection to one emulator endpoint.
#[derive(Debug, Clone)]
pub struct ReadBack {
    http: reqwest::Client,
    endpoint: String,
    region: String,
    kind: EmulatorKind,
}

/// How long a read-back may take, unless the caller allows more.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The plain-HTTP client used for emulator control and inspection endpoints (loopback, no
/// proxy, short timeouts).
pub(crate) fn http_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(2))
        .timeout(READ_TIMEOUT)
        .build()
        .map_err(|e| Error::ReadBack {
            url: String::new(),
            message: format!("building the HTTP client: {e}"),
        })
}

impl ReadBack {
    /// Finds out which emulator serves `endpoint_url` (moto is tried first).
    ///
    /// Fails with [`Error::ReadBack`] when neither moto's nor LocalStack's inspection endpoint
    /// answers, for example when nothing listens there or it is real AWS. `region` selects
    /// LocalStack's per-region store; moto ignores it.
    pub async fn detect(endpoint_url: &str, region: &str) -> Result<ReadBack> {
        let http = http_client()?;
        let endpoint = endpoint_url.trim_end_matches('/').to_owned();
        let kind = detect_kind(&http, &endpoint).await?;
        Ok(ReadBack {
            http,
            endpoint,
            region: region.to_owned(),
            kind,
        })
    }

    /// A read-back for an endpoint already known to be moto (one this crate started).
    pub(crate) fn moto(http: reqwest::Client, endpoint: &str, region: &str) -> ReadBack {
        ReadBack {
            http,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            region: region.to_owned(),
            kind: EmulatorKind::Moto,
        }
    }

    /// Which emulator this is.
    pub fn kind(&self) -> EmulatorKind {
        self.kind
    }

    /// Every SMS sent since the emulator started or was last reset, oldest first (moto), or
    /// grouped by phone number in first-seen order (LocalStack).
    ///
    /// The emulator records SMS per server (moto) or per account and region (LocalStack), not
    /// per stage: emulators that share a server see each other's SMS. Fails with
    /// [`Error::ReadBack`] if the endpoint does not answer or answers with another shape.
    pub async fn sent_sms(&self) -> Result<Vec<SentSms>> {
        match self.kind {
            EmulatorKind::Moto => self.moto_sms(&self.moto_data().await?),
            EmulatorKind::LocalStack => {
                let path = "/_aws/sns/sms-messages";
                let body = self
                    .get_json(&format!("{path}?region={}", self.region))
                    .await?;
                parse_localstack_sms(&body).map_err(|message| self.shape_error(path, message))
            }
        }
    }

    /// The SMS in moto's `data.json`.
    fn moto_sms(&self, data: &Value) -> Result<Vec<SentSms>> {
        let Some(list) = data.pointer("/sns/SMS") else {
            return Ok(Vec::new()); // SNS never used since start or reset
        };
        serde_json::from_value(list.clone())
            .map_err(|e| self.shape_error("/moto-api/data.json", format!("sns.SMS: {e}")))
    }

    /// The SMS sent and the messages published to `topic_arn`, from one read of moto's
    /// `data.json` allowed `timeout`: moto writes out every object it ever made there, which
    /// after a load run of thousands of tags takes minutes. moto only.
    pub(crate) async fn moto_sms_and_topic(
        &self,
        topic_arn: &str,
        timeout: Duration,
    ) -> Result<(Vec<SentSms>, Vec<TopicMessage>)> {
        let data = self.get_json_within("/moto-api/data.json", timeout).await?;
        Ok((self.moto_sms(&data)?, self.moto_topic(&data, topic_arn)?))
    }

    /// Messages moto recorded as published to `topic_arn`, oldest first. moto only.
    pub(crate) async fn moto_topic_messages(&self, topic_arn: &str) -> Result<Vec<TopicMessage>> {
        self.moto_topic(&self.moto_data().await?, topic_arn)
    }

    fn moto_topic(&self, data: &Value, topic_arn: &str) -> Result<Vec<TopicMessage>> {
        let topics = data
            .pointer("/sns/Topic")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let Some(topic) = topics.iter().find(|t| t["arn"] == topic_arn) else {
            return Ok(Vec::new());
        };
        let sent = topic["sent_notifications"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        sent.iter()
            .map(|n| {
                let message_id = n[0].as_str();
                let message = n[1].as_str();
                match (message_id, message) {
                    (Some(id), Some(message)) => Ok(TopicMessage {
                        message_id: id.to_owned(),
                        message: message.to_owned(),
                        subject: n[2].as_str().map(str::to_owned),
                        attributes: attribute_values(&n[3]),
                    }),
                    _ => Err(self.shape_error(
                        "/moto-api/data.json",
                        format!("sns.Topic[].sent_notifications entry {n}"),
                    )),
                }
            })
            .collect()
    }

    /// Clears recorded state: all of moto's (`POST /moto-api/reset`), or LocalStack's SMS
    /// records only.
    pub(crate) async fn reset(&self) -> Result<()> {
        let (method, path) = match self.kind {
            EmulatorKind::Moto => (reqwest::Method::POST, "/moto-api/reset".to_owned()),
            EmulatorKind::LocalStack => (
                reqwest::Method::DELETE,
                format!("/_aws/sns/sms-messages?region={}", self.region),
            ),
        };
        let url = format!("{}{path}", self.endpoint);
        let answer = self
            .http
            .request(method, &url)
            .send()
            .await
            .map_err(|e| read_error(&url, e))?;
        if answer.status().is_success() {
            Ok(())
        } else {
            Err(Error::ReadBack {
                url,
                message: format!("answered {}", answer.status()),
            })
        }
    }

    async fn moto_data(&self) -> Result<Value> {
        self.get_json("/moto-api/data.json").await
    }

    async fn get_json(&self, path: &str) -> Result<Value> {
        self.get_json_within(path, READ_TIMEOUT).await
    }

    async fn get_json_within(&self, path: &str, timeout: Duration) -> Result<Value> {
        let url = format!("{}{path}", self.endpoint);
        let answer = self
            .http
            .get(&url)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| read_error(&url, e))?;
        let status = answer.status();
        let body = answer.bytes().await.map_err(|e| read_error(&url, e))?;
        if !status.is_success() {
            return Err(Error::ReadBack {
                url,
                message: format!("answered {status}"),
            });
        }
        serde_json::from_slice(&body).map_err(|e| Error::ReadBack {
            url,
            message: format!("not JSON: {e}"),
        })
    }

    fn shape_error(&self, path: &str, message: String) -> Error {
        Error::ReadBack {
            url: format!("{}{path}", self.endpoint),
            message: format!("unexpected shape: {message}"),
        }
    }
}

async fn detect_kind(http: &reqwest::Client, endpoint: &str) -> Result<EmulatorKind> {
    let probes = [
        ("/moto-api/", EmulatorKind::Moto),
        ("/_localstack/health", EmulatorKind::LocalStack),
    ];
    let mut answers = Vec::new();
    for (path, kind) in probes {
        let url = format!("{endpoint}{path}");
        match http.get(&url).send().await {
            Ok(answer) if answer.status().is_success() => return Ok(kind),
            Ok(answer) => answers.push(format!("{path} answered {}", answer.status())),
            Err(e) => answers.push(format!("{path}: {}", error_chain(&e))),
        }
    }
    Err(Error::ReadBack {
        url: endpoint.to_owned(),
        message: format!(
            "neither moto nor LocalStack answers here ({}); start one with `vigil-local up`",
            answers.join("; ")
        ),
    })
}

/// `{"name": {"Type": "String", "Value": "v"}}` -> `{"name": "v"}`.
fn attribute_values(attributes: &Value) -> BTreeMap<String, String> {
    attributes
        .as_object()
        .map(|map| {
            map.iter()
                .filter_map(|(name, a)| {
                    let value = a.get("Value").or_else(|| a.get("StringValue"))?;
                    Some((name.clone(), value.as_str()?.to_owned()))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn parse_localstack_sms(body: &Value) -> Result<Vec<SentSms>, String> {
    let by_number = body
        .get("sms_messages")
        .and_then(Value::as_object)
        .ok_or("no \"sms_messages\" object")?;
    let mut out = Vec::new();
    for (number, messages) in by_number {
        let messages = messages
            .as_array()
            .ok_or_else(|| format!("sms_messages[{number:?}] is not a list"))?;
        for m in messages {
            let field = |name: &str| m.get(name).and_then(Value::as_str).map(str::to_owned);
            out.push(SentSms {
                phone_number: field("PhoneNumber").unwrap_or_else(|| number.clone()),
                message: field("Message").ok_or_else(|| format!("no Message in {m}"))?,
                message_id: field("MessageId").unwrap_or_default(),
            });
        }
    }
    Ok(out)
}

/// SNS's envelope for SQS subscribers, as found in the operators tap queue.
pub(crate) fn parse_sns_envelope(body: &str) -> Option<TopicMessage> {
    let v: Value = serde_json::from_str(body).ok()?;
    Some(TopicMessage {
        message_id: v.get("MessageId")?.as_str()?.to_owned(),
        message: v.get("Message")?.as_str()?.to_owned(),
        subject: v.get("Subject").and_then(Value::as_str).map(str::to_owned),
        attributes: v
            .get("MessageAttributes")
            .map(attribute_values)
            .unwrap_or_default(),
    })
}

fn read_error(url: &str, e: reqwest::Error) -> Error {
    Error::ReadBack {
        url: url.to_owned(),
        message: error_chain(&e),
    }
}

/// reqwest's Display stops at the outermost error; the cause (e.g. "connection refused") is
/// what a user needs.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn localstack_sms_are_flattened_from_the_by_number_map() {
        let body = json!({
            "sms_messages": {
                "+447700900001": [
                    {"PhoneNumber": "+447700900001", "Message": "a", "MessageId": "m1"},
                    {"PhoneNumber": "+447700900001", "Message": "b", "MessageId": "m2"}
                ],
                "+447700900002": [{"Message": "c", "MessageId": "m3"}]
            },
            "region": "us-east-1"
        });
        let sms = parse_localstack_sms(&body).unwrap();
        assert_eq!(sms.len(), 3);
        assert_eq!(sms[2].phone_number, "+447700900002");
        assert_eq!(sms[1].message, "b");
        assert!(parse_localstack_sms(&json!({"region": "x"})).is_err());
    }

    #[test]
    fn sns_envelopes_keep_subject_and_attributes() {
        let body = json!({
            "Type": "Notification",
            "MessageId": "id-1",
            "Message": "{\"level\":\"BREACH\"}",
            "Subject": "BREACH",
            "MessageAttributes": {"level": {"Type": "String", "Value": "BREACH"}}
        })
        .to_string();
        let event = parse_sns_envelope(&body).unwrap();
        assert_eq!(event.message_id, "id-1");
        assert_eq!(event.subject.as_deref(), Some("BREACH"));
        assert_eq!(event.attributes["level"], "BREACH");
        assert!(parse_sns_envelope("not json").is_none());
    }
}
