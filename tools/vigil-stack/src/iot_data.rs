//! [`IotDataApi`]: the AWS IoT data plane's `Publish` for the local stack, so that what sends
//! a device a command in AWS (the alert function's commander, `IotCommander`; the AWS CLI's
//! `iot-data publish`) does the same here, at `AWS_ENDPOINT_URL_IOT_DATA_PLANE`, and the
//! command reaches the device over the local broker.
//!
//! `POST /topics/{topic}` (the topic percent-encoded, `/` as `%2F` as the SDK sends it, or
//! plain) with the payload as the body and the query `qos` (0, the default, or 1) and `retain`
//! (`true`/`false`, default `false`): the body is published on the topic to the local broker,
//! with that QoS and retain flag, and the answer is 200 `{}` once the broker has it (for QoS 1,
//! after its PUBACK). The MQTT 5 fields (`contentType`, `responseTopic`, `messageExpiry`, the
//! `x-amz-mqtt5-*` headers) are accepted and ignored: the local broker speaks MQTT 3.1.1 to
//! devices. Refused as IoT refuses them (`x-amzn-ErrorType` and `{"message"}`):
//! - 400 `InvalidRequestException`: an empty topic, one with a wildcard (`+`, `#`), one that
//!   starts with `$` (reserved), one over 256 bytes, one that is not UTF-8; a `qos` other than
//!   0 or 1; a `retain` other than `true` or `false`;
//! - 413 `RequestEntityTooLargeException`: a payload over 128 KiB;
//! - 503 `ServiceUnavailableException`: the broker cannot be reached or did not acknowledge;
//! - 405 `MethodNotAllowedException` for another method on `/topics/...`, 404 for other paths.
//!
//! It publishes as the operators' service identity: the `vigil-operator` certificate (to which
//! the broker's front applies no thing policy, as IAM, not a thing's policy, governs the data
//! plane in AWS), with its own client id, [`IOT_DATA_CLIENT_ID`], so that a `mosquitto_sub -i
//! vigil-operator` watching the topics does not take over its connection. One MQTT connection
//! is kept and reused for every request, one publish at a time; if it is lost, the next
//! request connects again.
//!
//! Local only: it listens on 127.0.0.1 and checks no signature (any credentials do, as with
//! the emulator); never expose it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_types::SdkConfig;
use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use vigil_local::http::{json_response, read_request};
use vigil_mqtt::client::MAX_PAYLOAD_BYTES;
use vigil_mqtt::{CertPair, Endpoint};

/// The variable aws-config (and the AWS CLI) read the IoT data plane's endpoint from.
pub const ENDPOINT_VAR: &str = "AWS_ENDPOINT_URL_IOT_DATA_PLANE";

/// The SDK's service id of the IoT data plane (`aws-sdk-iotdataplane`), the key of its
/// per-service endpoint.
pub const SERVICE_ID: &str = "IoT Data Plane";

/// The MQTT client id the data plane publishes with (certificate `vigil-operator`).
pub const IOT_DATA_CLIENT_ID: &str = "vigil-operator-iot-data";

/// IoT's limit on a topic name, in bytes.
pub const MAX_TOPIC_BYTES: usize = 256;

/// How long a publish may wait for the broker (connecting, and the PUBACK).
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the data plane did not start.
#[derive(Debug, thiserror::Error)]
pub enum IotDataError {
    /// The certificate or the CA could not be read.
    #[error(transparent)]
    Pki(#[from] vigil_mqtt::pki::PkiError),
    /// No loopback port could be bound.
    #[error("binding a loopback port: {0}")]
    Bind(#[from] std::io::Error),
}

/// The running IoT data plane endpoint; stops (and closes its MQTT connection) when dropped.
pub struct IotDataApi {
    url: String,
    server: JoinHandle<()>,
    publisher: JoinHandle<()>,
    published: Arc<AtomicU64>,
}

impl IotDataApi {
    /// Serves `Publish` on a free loopback port, publishing to the broker at `broker` with
    /// `identity` (the `vigil-operator` certificate). The broker is first connected to on the
    /// first request.
    ///
    /// Fails if the certificate or CA cannot be read, or no port can be bound.
    pub async fn start(broker: &Endpoint, identity: &CertPair) -> Result<Self, IotDataError> {
        let options = vigil_mqtt::client::mqtt_options(broker, IOT_DATA_CLIENT_ID, identity)?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
        let (requests, queue) = mpsc::channel(64);
        let published = Arc::new(AtomicU64::new(0));
        let publisher = tokio::spawn(run_publisher(options, queue, published.clone()));
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let requests = requests.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve(stream, &requests).await {
                        tracing::debug!(error = %e, "IoT data plane connection ended");
                    }
                });
            }
        });
        Ok(IotDataApi {
            url,
            server,
            publisher,
            published,
        })
    }

    /// Its URL (`AWS_ENDPOINT_URL_IOT_DATA_PLANE`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// How many publishes the broker has acknowledged so far: a reader of the command topics
    /// (the simulator) waits until it has received as many.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::SeqCst)
    }
}

impl Drop for IotDataApi {
    fn drop(&mut self) {
        self.server.abort();
        self.publisher.abort();
    }
}

/// `sdk` with the IoT data plane's endpoint set to `url` as `AWS_ENDPOINT_URL_IOT_DATA_PLANE`
/// would set it (a per-service setting, not a forced endpoint): every other service keeps the
/// endpoint `sdk` gives it.
pub fn with_endpoint(sdk: &SdkConfig, url: &str) -> SdkConfig {
    sdk.clone()
        .into_builder()
        .service_config(IotDataEndpoint {
            inner: sdk.clone(),
            url: url.to_owned(),
        })
        .build()
}

/// The per-service endpoints of an SDK configuration, with the IoT data plane's replaced.
#[derive(Debug)]
struct IotDataEndpoint {
    inner: SdkConfig,
    url: String,
}

impl LoadServiceConfig for IotDataEndpoint {
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        if key.service_id() == SERVICE_ID && key.profile() == "endpoint_url" {
            return Some(self.url.clone());
        }
        self.inner.service_config()?.load_config(key)
    }
}

/// One publish for the broker, and where its outcome goes.
struct Publish {
    topic: String,
    qos: QoS,
    retain: bool,
    payload: Vec<u8>,
    done: oneshot::Sender<Result<(), String>>,
}

/// The one MQTT connection: publishes one request at a time (connecting first when there is no
/// connection) and, between requests, keeps the connection alive (pings) and notices when it
/// is lost.
async fn run_publisher(
    options: MqttOptions,
    mut queue: mpsc::Receiver<Publish>,
    published: Arc<AtomicU64>,
) {
    let mut connection: Option<EventLoop> = None;
    let mut client: Option<AsyncClient> = None;
    loop {
        let request = match connection.as_mut() {
            None => match queue.recv().await {
                Some(request) => request,
                None => return,
            },
            Some(eventloop) => {
                tokio::select! {
                    request = queue.recv() => match request {
                        Some(request) => request,
                        None => return,
                    },
                    event = eventloop.poll() => {
                        if let Err(e) = event {
                            tracing::info!(error = %e, "IoT data plane: the broker connection was lost; the next publish connects again");
                            connection = None;
                            client = None;
                        }
                        continue;
                    }
                }
            }
        };
        // A connection found dead while publishing is replaced once, if the publish had not
        // gone out on it yet.
        let mut outcome = Err(String::new());
        for _ in 0..2 {
            if connection.is_none() {
                match connect(&options).await {
                    Ok((c, eventloop)) => {
                        client = Some(c);
                        connection = Some(eventloop);
                    }
                    Err(e) => {
                        outcome = Err(e);
                        break;
                    }
                }
            }
            let (Some(c), Some(eventloop)) = (client.as_ref(), connection.as_mut()) else {
                break;
            };
            match publish(c, eventloop, &request).await {
                Ok(()) => {
                    published.fetch_add(1, Ordering::SeqCst);
                    outcome = Ok(());
                    break;
                }
                Err((sent, e)) => {
                    connection = None;
                    client = None;
                    outcome = Err(e);
                    if sent {
                        break;
                    }
                }
            }
        }
        let _ = request.done.send(outcome);
    }
}

/// A new connection, once the broker's CONNACK accepted it.
async fn connect(options: &MqttOptions) -> Result<(AsyncClient, EventLoop), String> {
    let (client, mut eventloop) = AsyncClient::new(options.clone(), 10);
    let connected = tokio::time::timeout(PUBLISH_TIMEOUT, async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await;
    match connected {
        Ok(Ok(())) => Ok((client, eventloop)),
        Ok(Err(e)) => Err(format!(
            "the broker at {}:{} cannot be reached: {e}",
            options.broker_address().0,
            options.broker_address().1
        )),
        Err(_) => Err("the broker did not accept the connection in time".to_owned()),
    }
}

/// Publishes `request` and waits until the broker has it: for QoS 0 once it is written, for
/// QoS 1 its PUBACK. An error says whether the publish went out before the connection failed.
async fn publish(
    client: &AsyncClient,
    eventloop: &mut EventLoop,
    request: &Publish,
) -> Result<(), (bool, String)> {
    client
        .publish(
            request.topic.clone(),
            request.qos,
            request.retain,
            request.payload.clone(),
        )
        .await
        .map_err(|e| (false, format!("publishing: {e}")))?;
    let mut sent = None;
    let acked = tokio::time::timeout(PUBLISH_TIMEOUT, async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                    if request.qos == QoS::AtMostOnce {
                        return Ok(());
                    }
                    sent = Some(pkid);
                }
                Ok(Event::Incoming(Packet::PubAck(ack))) if Some(ack.pkid) == sent => {
                    return Ok(());
                }
                Ok(_) => {}
                Err(e) => return Err(format!("the broker connection failed: {e}")),
            }
        }
    })
    .await;
    match acked {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err((sent.is_some(), e)),
        Err(_) => Err((true, "the broker did not acknowledge in time".to_owned())),
    }
}

async fn serve(mut stream: TcpStream, requests: &mpsc::Sender<Publish>) -> std::io::Result<()> {
    let mut buffered = Vec::new();
    while let Some((head, body)) = read_request(&mut stream, &mut buffered).await? {
        let response = respond(&head, body, requests).await;
        stream.write_all(&response).await?;
    }
    Ok(())
}

async fn respond(head: &str, body: Vec<u8>, requests: &mpsc::Sender<Publish>) -> Vec<u8> {
    let mut request_line = head.split_whitespace();
    let method = request_line.next().unwrap_or_default();
    let target = request_line.next().unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let Some(encoded) = path.strip_prefix("/topics/") else {
        return refused(
            404,
            "ResourceNotFoundException",
            &format!("no route {path}"),
        );
    };
    if method != "POST" {
        return refused(
            405,
            "MethodNotAllowedException",
            &format!("{method} is not allowed on /topics/; Publish is POST"),
        );
    }
    let (topic, qos, retain, payload) = match parse(encoded, query, body) {
        Ok(p) => p,
        Err((status, kind, message)) => return refused(status, kind, &message),
    };
    let (done, outcome) = oneshot::channel();
    let request = Publish {
        topic: topic.clone(),
        qos,
        retain,
        payload,
        done,
    };
    let outcome = match requests.send(request).await {
        Ok(()) => outcome
            .await
            .unwrap_or_else(|_| Err("the publisher stopped".to_owned())),
        Err(_) => Err("the publisher stopped".to_owned()),
    };
    match outcome {
        Ok(()) => json_response(200, &[], &json!({})),
        Err(e) => {
            tracing::warn!(%topic, error = %e, "IoT data plane: publish failed");
            refused(503, "ServiceUnavailableException", &e)
        }
    }
}

/// A refusal: its status, error type and message.
type Refusal = (u16, &'static str, String);

/// The topic, QoS, retain flag and payload of a `Publish`, checked as IoT checks them.
fn parse(
    encoded_topic: &str,
    query: &str,
    payload: Vec<u8>,
) -> Result<(String, QoS, bool, Vec<u8>), Refusal> {
    let invalid = |message: String| (400, "InvalidRequestException", message);
    let topic = String::from_utf8(percent_decode(encoded_topic))
        .map_err(|_| invalid("the topic is not UTF-8".to_owned()))?;
    if topic.is_empty() {
        return Err(invalid("the topic is empty".to_owned()));
    }
    if topic.contains(['+', '#']) {
        return Err(invalid(format!(
            "topic {topic:?}: a publish topic cannot contain the wildcards + or #"
        )));
    }
    if topic.starts_with('$') {
        return Err(invalid(format!(
            "topic {topic:?}: topics starting with $ are reserved"
        )));
    }
    if topic.len() > MAX_TOPIC_BYTES {
        return Err(invalid(format!(
            "the topic has {} bytes; at most {MAX_TOPIC_BYTES}",
            topic.len()
        )));
    }
    let mut qos = QoS::AtMostOnce;
    let mut retain = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = String::from_utf8_lossy(&percent_decode(value)).into_owned();
        match key {
            "qos" => {
                qos = match value.as_str() {
                    "0" => QoS::AtMostOnce,
                    "1" => QoS::AtLeastOnce,
                    _ => return Err(invalid(format!("qos {value:?}: use 0 or 1"))),
                }
            }
            "retain" => {
                retain = match value.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(invalid(format!("retain {value:?}: use true or false"))),
                }
            }
            // MQTT 5 properties: the local broker speaks MQTT 3.1.1 to devices.
            _ => {}
        }
    }
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err((
            413,
            "RequestEntityTooLargeException",
            format!(
                "the payload has {} bytes; at most {MAX_PAYLOAD_BYTES} (128 KiB)",
                payload.len()
            ),
        ));
    }
    Ok((topic, qos, retain, payload))
}

/// `%XX` sequences decoded to their bytes; anything else (a `%` not followed by two hex
/// digits, `+`) as it is.
fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            // Two hex digits make one byte.
            out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// A refused request, as IoT's REST API answers it (`x-amzn-ErrorType`, `{"message"}`).
fn refused(status: u16, kind: &str, message: &str) -> Vec<u8> {
    json_response(
        status,
        &[("x-amzn-ErrorType", kind)],
        &json!({ "message": message }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_decoded_and_checked_as_iot_checks_them() {
        let (topic, qos, retain, _) =
            parse("tags%2Ftag-x%2Fcmd", "qos=1&retain=true", b"{}".to_vec()).unwrap();
        assert_eq!(
            (topic.as_str(), qos, retain),
            ("tags/tag-x/cmd", QoS::AtLeastOnce, true)
        );
        // Unencoded slashes too; the defaults are QoS 0, not retained.
        let (topic, qos, retain, _) = parse("tags/tag-x/cmd", "", Vec::new()).unwrap();
        assert_eq!(
            (topic.as_str(), qos, retain),
            ("tags/tag-x/cmd", QoS::AtMostOnce, false)
        );
        // MQTT 5 fields are ignored.
        assert!(
            parse(
                "a",
                "qos=0&contentType=text%2Fplain&messageExpiry=60",
                vec![]
            )
            .is_ok()
        );
        for (topic, query) in [
            ("", ""),
            ("tags%2F%2B%2Fcmd", ""),
            ("tags/+/cmd", ""),
            ("tags%2F%23", ""),
            ("%24aws%2Fthings%2Fx", ""),
            ("%FF", ""),
            ("a", "qos=2"),
            ("a", "retain=yes"),
        ] {
            let refused = parse(topic, query, vec![]).unwrap_err();
            assert_eq!(
                (refused.0, refused.1),
                (400, "InvalidRequestException"),
                "{topic}?{query}"
            );
        }
        assert_eq!(parse(&"a".repeat(256), "", vec![]).unwrap().0.len(), 256);
        assert_eq!(parse(&"a".repeat(257), "", vec![]).unwrap_err().0, 400);
        assert!(parse("a", "", vec![0; MAX_PAYLOAD_BYTES]).is_ok());
        assert_eq!(
            parse("a", "", vec![0; MAX_PAYLOAD_BYTES + 1]).unwrap_err(),
            (
                413,
                "RequestEntityTooLargeException",
                format!(
                    "the payload has {} bytes; at most {MAX_PAYLOAD_BYTES} (128 KiB)",
                    MAX_PAYLOAD_BYTES + 1
                )
            )
        );
    }

    #[test]
    fn percent_decoding_leaves_what_is_not_an_escape() {
        assert_eq!(percent_decode("a%2fb%2Fc"), b"a/b/c");
        assert_eq!(percent_decode("100%"), b"100%");
        assert_eq!(percent_decode("%zz+"), b"%zz+");
        assert_eq!(percent_decode("%C3%A9"), "é".as_bytes());
    }
}
