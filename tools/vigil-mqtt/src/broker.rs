//! [`LocalBroker`]: rumqttd embedded in this process behind a TLS front door ([`crate::front`]),
//! as AWS IoT Core is on 8883: a client needs a certificate from the local CA, and the front
//! applies the shipped tag policy (`infra/iot/tag-policy.json`) to every CONNECT, PUBLISH and
//! SUBSCRIBE, taking the thing name from the certificate's CN.
//!
//! rumqttd itself listens without TLS on another loopback port that only the front uses.
//! rumqttd has no shutdown: its threads run until the process exits; the front stops when the
//! [`LocalBroker`] is dropped (its connections close). Tests and tools start one broker per
//! process (or per test).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::front::{Connections, Denial, Denials};
use crate::policy::{Policies, PolicyContext, PolicyError};
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

use crate::pki::{Pki, PkiError};

pub use crate::client::MAX_PAYLOAD_BYTES;
/// How long the listener may take to come up.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts with a fresh free port, in case another process takes the one picked.
const PORT_ATTEMPTS: usize = 3;

/// Why a broker did not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The certificates could not be made or found.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The tag policy could not be loaded.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The TLS front could not be set up.
    #[error(transparent)]
    Front(#[from] crate::front::FrontError),
    /// No free port, or the listener never accepted connections.
    #[error("the MQTT broker did not start: {0}")]
    Start(String),
}

/// A running broker: its address and the PKI its clients need.
#[derive(Debug)]
pub struct LocalBroker {
    addr: SocketAddr,
    pki: Pki,
    denials: Denials,
    connections: Connections,
    _broker: JoinHandle<()>,
    /// Dropping it stops the front's runtime, and with it every client connection.
    _front: tokio::sync::oneshot::Sender<()>,
}

impl LocalBroker {
    /// Starts a broker on a free port of 127.0.0.1 with the certificates of `pki` (see
    /// [`Pki::ensure`]) and the shipped tag policy for stage `local`, and returns once it
    /// accepts connections.
    ///
    /// Fails as [`LocalBroker::start_for_stage`].
    pub fn start(pki: &Pki) -> Result<LocalBroker, BrokerError> {
        LocalBroker::start_for_stage(pki, "local")
    }

    /// As [`LocalBroker::start`], with the policy's `{{stage}}` (the Basic Ingest rule name)
    /// set to `stage`.
    ///
    /// Fails with [`BrokerError::Policy`] if the policy file cannot be evaluated here,
    /// [`BrokerError::Front`] if the certificates cannot be loaded, and
    /// [`BrokerError::Start`] if no port could be bound within 10 s (three ports are tried).
    pub fn start_for_stage(pki: &Pki, stage: &str) -> Result<LocalBroker, BrokerError> {
        let policies = Arc::new(Policies::shipped(&PolicyContext::local(stage))?);
        let front_pki = pki.clone();
        let acceptor = crate::front::tls_acceptor(pki)?;
        let (internal, broker) = start_rumqttd()?;
        let front = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|e| BrokerError::Start(format!("no free port for the front: {e}")))?;
        let addr = front
            .local_addr()
            .map_err(|e| BrokerError::Start(e.to_string()))?;
        let denials = Denials::default();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let front_denials = denials.clone();
        let connections = Connections::default();
        let front_connections = connections.clone();
        std::thread::Builder::new()
            .name(format!("vigil-broker-front-{}", addr.port()))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("vigil-broker-front")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, "the broker's front has no runtime");
                        return;
                    }
                };
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(front) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!(error = %e, "the broker's front cannot listen");
                            return;
                        }
                    };
                    tokio::select! {
                        () = crate::front::serve(listener, acceptor, internal, policies, front_pki, front_denials, front_connections) => {}
                        _ = stopped => {}
                    }
                });
                // Dropping the runtime ends every relayed connection.
            })
            .map_err(|e| BrokerError::Start(format!("spawning the front thread: {e}")))?;
        Ok(LocalBroker {
            addr,
            pki: pki.clone(),
            denials,
            connections,
            _broker: broker,
            _front: stop,
        })
    }

    /// Cuts every live connection of `client_id` as a network failure would (no DISCONNECT,
    /// no will suppressed); returns how many were cut. For fault injection (docs/FAULTS.md).
    pub fn cut_connections(&self, client_id: &str) -> usize {
        self.connections.cut(client_id)
    }

    /// What the tag policy refused so far (the latest 1,000), oldest first.
    pub fn denials(&self) -> Vec<Denial> {
        self.denials.list()
    }

    /// The listener's address (127.0.0.1 and a free port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The listener's port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The PKI whose CA the broker trusts and whose server certificate it presents.
    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    /// Where a client connects: host `127.0.0.1`, the port, and the local CA.
    pub fn endpoint(&self) -> crate::client::Endpoint {
        crate::client::Endpoint {
            host: "127.0.0.1".to_owned(),
            port: self.port(),
            ca: self.pki.ca().cert,
        }
    }
}

/// Starts rumqttd without TLS on a free loopback port, for the front only; returns its address
/// once it accepts TCP connections.
fn start_rumqttd() -> Result<(SocketAddr, JoinHandle<()>), BrokerError> {
    let mut last = String::new();
    for _ in 0..PORT_ATTEMPTS {
        let port = free_port().map_err(|e| BrokerError::Start(format!("no free port: {e}")))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let config = broker_config(addr);
        let thread = std::thread::Builder::new()
            .name(format!("vigil-broker-{port}"))
            .spawn(move || {
                let mut broker = Broker::new(config);
                if let Err(e) = broker.start() {
                    tracing::error!(error = %e, "MQTT broker stopped");
                }
            })
            .map_err(|e| BrokerError::Start(format!("spawning the broker thread: {e}")))?;
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline && !thread.is_finished() {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok((addr, thread));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        last = format!("no listener on {addr} (port taken, or rumqttd failed: see its log)");
    }
    Err(BrokerError::Start(last))
}

/// rumqttd's configuration, built explicitly (its `Config::default()` has no listener).
fn broker_config(listen: SocketAddr) -> Config {
    let server = ServerSettings {
        name: format!("vigil-internal-{}", listen.port()),
        listen,
        tls: None,
        next_connection_delay_ms: 0,
        connections: ConnectionSettings {
            connection_timeout_ms: 5_000,
            // rumqttd's limit is on the whole packet after its fixed header (topic, packet id
            // and payload): the front's, which checks the payload itself against IoT Core's
            // 128 KiB, so that a payload of exactly 128 KiB fits.
            max_payload_size: crate::front::MAX_PACKET_BYTES,
            max_inflight_count: 500,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    Config {
        id: 0,
        router: RouterConfig {
            max_connections: 20_000,
            max_outgoing_packet_count: 500,
            max_segment_size: 16 * 1024 * 1024,
            max_segment_count: 10,
            ..RouterConfig::default()
        },
        v4: Some([("internal".to_owned(), server)].into_iter().collect()),
        ..Config::default()
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
