//! The broker's front door: where IoT Core authenticates a device and applies its policy,
//! before anything reaches the message broker.
//!
//! Each client connects here with TLS and a client certificate from the local CA. The front
//! takes the certificate's CN as the thing name and the policy attached to its certificate
//! (the tag policy, or a victim's device's: [`Pki::attached_policy`]), opens a plain TCP
//! connection to rumqttd on loopback, and relays MQTT packets, checking the client's against
//! that [`Policy`]:
//! - `CONNECT`: `iot:Connect` on `client/<client id>`; refused with CONNACK 5 (not
//!   authorised) and the connection closed, so another tag cannot take a tag's client id;
//! - `PUBLISH`: `iot:Publish` on `topic/<topic>`; refused by closing the connection, as IoT
//!   Core does for MQTT 3.1.1; so is a payload over 128 KiB, IoT Core's limit, from anyone;
//! - `SUBSCRIBE`: `iot:Subscribe` on `topicfilter/<filter>` for every filter; refused by
//!   closing the connection (stricter than IoT Core, which answers SUBACK 0x80 per filter).
//!
//! A publish the policy allows on a Basic Ingest topic (`$aws/rules/<rule>/<topic>`) goes to the
//! broker on [`BASIC_INGEST_RELAY`]`<rule>/<topic>` instead: rumqttd neither routes nor lets
//! anyone subscribe to `$` topics, and in IoT Core such a message goes to the named rule only,
//! never to subscribers. The rule bridge subscribes there ([`crate::bridge::BridgeOptions`]);
//! no policy lets a device publish or subscribe on the relay's topics.
//!
//! Packets from the broker to the client are relayed as they are (`iot:Receive` is enforced
//! through Subscribe, see [`crate::policy`]). Service identities ([`SERVICE_IDENTITIES`]: the
//! rules engine's stand-in and the operators' command sender, which use IAM in AWS, not a
//! thing's policy) pass unchecked. Every refusal is logged (thing, client id, action, name: no
//! payload) and kept in [`Denials`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use rumqttc::mqttbytes::v4::Packet;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::pki::{BRIDGE_CLIENT_ID, OPERATOR_CLIENT_ID, Pki};
use crate::policy::{Action, Policies, Policy};

/// Certificate CNs that are AWS-side services, not things: no IoT policy applies to them.
pub const SERVICE_IDENTITIES: [&str; 2] = [BRIDGE_CLIENT_ID, OPERATOR_CLIENT_ID];

/// The largest MQTT packet relayed: IoT Core's payload limit plus room for a topic (the
/// payload limit itself is checked on every PUBLISH).
pub(crate) const MAX_PACKET_BYTES: usize = crate::client::MAX_PAYLOAD_BYTES + 64 * 1024;
/// How many refusals are kept for inspection.
const KEPT_DENIALS: usize = 1_000;
/// CONNACK, return code 5: not authorised (MQTT 3.1.1, 3.2.2.3).
const CONNACK_NOT_AUTHORISED: [u8; 4] = [0x20, 0x02, 0x00, 0x05];

/// One refused operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The certificate's CN.
    pub thing: String,
    /// The MQTT client id of the connection (empty before CONNECT).
    pub client_id: String,
    /// What was refused.
    pub action: Action,
    /// The client id, topic or topic filter.
    pub name: String,
}

/// The refusals so far (the latest [`KEPT_DENIALS`]).
#[derive(Debug, Clone, Default)]
pub struct Denials(Arc<Mutex<Vec<Denial>>>);

impl Denials {
    /// A copy of the refusals kept.
    pub fn list(&self) -> Vec<Denial> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn push(&self, denial: Denial) {
        tracing::warn!(
            thing = %denial.thing,
            client_id = %denial.client_id,
            action = denial.action.name(),
            name = %denial.name,
            "refused by the tag policy; connection closed"
        );
        let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if list.len() == KEPT_DENIALS {
            list.remove(0);
        }
        list.push(denial);
    }
}

/// The live client connections by MQTT client id, so that a test can cut them as a network
/// would (fault injection, docs/FAULTS.md): the TCP connection is closed with no DISCONNECT.
#[derive(Debug, Clone, Default)]
pub struct Connections(
    Arc<Mutex<std::collections::HashMap<String, Vec<Arc<tokio::sync::Notify>>>>>,
);

impl Connections {
    /// Cuts every live connection of `client_id`; returns how many there were.
    pub fn cut(&self, client_id: &str) -> usize {
        let cut = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(client_id)
            .unwrap_or_default();
        for c in &cut {
            c.notify_one();
        }
        cut.len()
    }

    fn register(&self, client_id: &str) -> Arc<tokio::sync::Notify> {
        let notify = Arc::new(tokio::sync::Notify::new());
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(client_id.to_owned())
            .or_default()
            .push(notify.clone());
        notify
    }

    fn unregister(&self, client_id: &str, notify: &Arc<tokio::sync::Notify>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(list) = map.get_mut(client_id) {
            list.retain(|n| !Arc::ptr_eq(n, notify));
            if list.is_empty() {
                map.remove(client_id);
            }
        }
    }
}

/// Why the front could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("the broker's TLS front: {0}")]
pub struct FrontError(String);

/// The TLS configuration: the server certificate, client certificates required from the CA.
pub(crate) fn tls_acceptor(pki: &Pki) -> Result<TlsAcceptor, FrontError> {
    let err = |what: &str, e: &dyn std::fmt::Display| FrontError(format!("{what}: {e}"));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(pki.ca().cert).map_err(|e| err("the CA", &e))? {
        roots
            .add(cert.map_err(|e| err("the CA", &e))?)
            .map_err(|e| err("the CA", &e))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| err("client verification", &e))?;
    let chain = CertificateDer::pem_file_iter(pki.server().cert)
        .map_err(|e| err("the server certificate", &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err("the server certificate", &e))?;
    let key =
        PrivateKeyDer::from_pem_file(pki.server().key).map_err(|e| err("the server key", &e))?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err("TLS versions", &e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| err("the server certificate", &e))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accepts connections on `listener` until the task is dropped, relaying each to `broker`.
pub(crate) async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    broker: SocketAddr,
    policies: Arc<Policies>,
    pki: Pki,
    denials: Denials,
    connections: Connections,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accepting an MQTT connection");
                continue;
            }
        };
        let (acceptor, policies, pki, denials, connections) = (
            acceptor.clone(),
            policies.clone(),
            pki.clone(),
            denials.clone(),
            connections.clone(),
        );
        tokio::spawn(async move {
            let attached = |thing: &str| {
                let name = pki.attached_policy(thing);
                policies.get(&name).cloned().ok_or(name)
            };
            if let Err(e) = relay(stream, acceptor, broker, attached, &denials, &connections).await
            {
                tracing::debug!(%peer, error = %e, "MQTT connection ended");
            }
        });
    }
}

async fn relay(
    stream: TcpStream,
    acceptor: TlsAcceptor,
    broker: SocketAddr,
    attached: impl Fn(&str) -> Result<Policy, String>,
    denials: &Denials,
    connections: &Connections,
) -> Result<(), String> {
    let _ = stream.set_nodelay(true);
    let peer = stream.peer_addr().ok();
    let tls = match acceptor.accept(stream).await {
        Ok(tls) => tls,
        Err(e) => {
            // A client without a certificate, or with one from another CA.
            tracing::warn!(?peer, error = %e, "TLS handshake refused");
            return Err(format!("TLS handshake: {e}"));
        }
    };
    let thing = {
        let (_, session) = tls.get_ref();
        let cert = session
            .peer_certificates()
            .and_then(|c| c.first())
            .ok_or("no client certificate")?;
        common_name(cert.as_ref()).ok_or("a client certificate without a CN")?
    };
    let service = SERVICE_IDENTITIES.contains(&thing.as_str());
    let policy = &match attached(&thing) {
        Ok(policy) => policy,
        Err(name) => {
            tracing::warn!(
                thing,
                policy = name,
                "a certificate with a policy that is not shipped"
            );
            return Err(format!(
                "{thing}: policy {name:?} is not in infra/resources.json"
            ));
        }
    };
    let (mut client_read, mut client_write) = tokio::io::split(tls);
    let deny = |action: Action, name: &str, client_id: &str| {
        denials.push(Denial {
            thing: thing.clone(),
            client_id: client_id.to_owned(),
            action,
            name: name.to_owned(),
        });
    };

    // CONNECT first, checked before the broker hears of the client at all.
    let mut buf = BytesMut::with_capacity(4096);
    let (connect, client_id) = loop {
        if let Some((frame, packet)) = next_packet(&mut buf)? {
            let Packet::Connect(connect) = packet else {
                return Err("the first packet is not CONNECT".to_owned());
            };
            let id = connect.client_id;
            if !service && !policy.allows(&thing, &id, Action::Connect, &id) {
                deny(Action::Connect, &id, &id);
                let _ = client_write.write_all(&CONNACK_NOT_AUTHORISED).await;
                let _ = client_write.shutdown().await;
                return Err(format!("{thing} may not connect as {id}"));
            }
            break (frame, id);
        }
        if read_more(&mut client_read, &mut buf).await? == 0 {
            return Ok(());
        }
    };
    let upstream = TcpStream::connect(broker)
        .await
        .map_err(|e| format!("the broker at {broker}: {e}"))?;
    let _ = upstream.set_nodelay(true);
    let (mut broker_read, mut broker_write) = upstream.into_split();
    broker_write
        .write_all(&connect)
        .await
        .map_err(|e| format!("to the broker: {e}"))?;

    let inbound = async {
        loop {
            // Relay every whole packet in the buffer, checking it first.
            while let Some((frame, packet)) = next_packet(&mut buf)? {
                match &packet {
                    Packet::Connect(_) => return Err("a second CONNECT".to_owned()),
                    // IoT Core's limit, for things and services alike; MQTT 3.1.1 has no way
                    // to refuse one message, so the connection is closed.
                    Packet::Publish(publish)
                        if publish.payload.len() > crate::client::MAX_PAYLOAD_BYTES =>
                    {
                        tracing::warn!(
                            thing = %thing,
                            client_id = %client_id,
                            topic = %publish.topic,
                            bytes = publish.payload.len(),
                            "a payload over 128 KiB; connection closed"
                        );
                        return Err(format!(
                            "{client_id}: a payload of {} bytes on {}, over 128 KiB",
                            publish.payload.len(),
                            publish.topic
                        ));
                    }
                    Packet::Publish(publish) if !service => {
                        let topic = publish.topic.as_str();
                        if !policy.allows(&thing, &client_id, Action::Publish, topic) {
                            deny(Action::Publish, topic, &client_id);
                            return Err(format!("{thing} may not publish on {topic}"));
                        }
                    }
                    Packet::Subscribe(subscribe) if !service => {
                        for filter in &subscribe.filters {
                            let path = filter.path.as_str();
                            if !policy.allows(&thing, &client_id, Action::Subscribe, path) {
                                deny(Action::Subscribe, path, &client_id);
                                return Err(format!("{thing} may not subscribe to {path}"));
                            }
                        }
                    }
                    _ => {}
                }
                let frame = match &packet {
                    Packet::Publish(publish) => relayed(frame, publish)?,
                    _ => frame,
                };
                broker_write
                    .write_all(&frame)
                    .await
                    .map_err(|e| format!("to the broker: {e}"))?;
            }
            if read_more(&mut client_read, &mut buf).await? == 0 {
                return Ok::<(), String>(());
            }
        }
    };
    let outbound = tokio::io::copy(&mut broker_read, &mut client_write);
    let cut = connections.register(&client_id);
    let result = tokio::select! {
        r = inbound => r,
        r = outbound => r.map(drop).map_err(|e| format!("to the client: {e}")),
        () = cut.notified() => {
            // A network failure: both sides lose the connection, nobody sends DISCONNECT.
            connections.unregister(&client_id, &cut);
            return Err(format!("{client_id}: connection cut (fault injection)"));
        }
    };
    connections.unregister(&client_id, &cut);
    let _ = client_write.shutdown().await;
    result
}

/// The next whole packet in `buf` (its bytes, to relay unchanged, and its parse), or `None`
/// if more bytes are needed. Fails for a malformed or oversized packet.
fn next_packet(buf: &mut BytesMut) -> Result<Option<(BytesMut, Packet)>, String> {
    let length = match rumqttc::mqttbytes::check(buf.iter(), MAX_PACKET_BYTES) {
        Ok(header) => header.frame_length(),
        Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => return Ok(None),
        Err(e) => return Err(format!("a malformed packet: {e}")),
    };
    let frame = buf.split_to(length);
    let packet = Packet::read(&mut frame.clone(), MAX_PACKET_BYTES)
        .map_err(|e| format!("a malformed packet: {e}"))?;
    Ok(Some((frame, packet)))
}

async fn read_more(
    client: &mut (impl tokio::io::AsyncRead + Unpin),
    buf: &mut BytesMut,
) -> Result<usize, String> {
    client
        .read_buf(buf)
        .await
        .map_err(|e| format!("from the client: {e}"))
}

/// Where a Basic Ingest message (`$aws/rules/<rule>/<topic>`) goes on the broker:
/// `<this><rule>/<topic>`.
pub const BASIC_INGEST_RELAY: &str = "vigil-local/basic-ingest/";

/// The IoT Core prefix of Basic Ingest topics.
const BASIC_INGEST: &str = "$aws/rules/";

/// The frame to send the broker for a publish on `topic`: a Basic Ingest publish re-encoded on
/// its relay topic, anything else unchanged.
fn relayed(frame: BytesMut, publish: &rumqttc::mqttbytes::v4::Publish) -> Result<BytesMut, String> {
    let Some(rest) = publish.topic.strip_prefix(BASIC_INGEST) else {
        return Ok(frame);
    };
    let mut relayed = publish.clone();
    relayed.topic = format!("{BASIC_INGEST_RELAY}{rest}");
    let mut out = BytesMut::with_capacity(frame.len() + BASIC_INGEST_RELAY.len());
    relayed
        .write(&mut out)
        .map_err(|e| format!("re-encoding a Basic Ingest publish: {e}"))?;
    Ok(out)
}

/// The subject's common name of a DER certificate.
fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}
