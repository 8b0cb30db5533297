//! [`LocalBroker`]: rumqttd embedded in this process, one MQTT 3.1.1 listener on 127.0.0.1 that
//! requires TLS with a client certificate from the local CA, as AWS IoT Core does on 8883.
//!
//! rumqttd 0.20's TLS acceptor verifies the client chain against one CA file (its
//! `verify-client-cert` feature): a client without a certificate, or with one from another CA,
//! fails the handshake. What it does not do is IoT Core's policy check (a tag may publish only
//! under its own thing name): locally any client of the CA may use any topic.
//!
//! rumqttd has no shutdown: its threads run until the process exits. Tests and tools start one
//! broker per process (or per test); nothing outlives the process.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings, TlsConfig};

use crate::pki::{Pki, PkiError};

/// Largest payload the broker accepts: AWS IoT Core's limit (128 KiB).
pub const MAX_PAYLOAD_BYTES: usize = 128 * 1024;
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
    /// No free port, or the listener never accepted connections.
    #[error("the MQTT broker did not start: {0}")]
    Start(String),
}

/// A running broker: its address and the PKI its clients need.
#[derive(Debug)]
pub struct LocalBroker {
    addr: SocketAddr,
    pki: Pki,
    _thread: JoinHandle<()>,
}

impl LocalBroker {
    /// Starts a broker on a free port of 127.0.0.1 with the certificates of `pki` (see
    /// [`Pki::ensure`]) and returns once it accepts TCP connections.
    ///
    /// Fails with [`BrokerError::Start`] if no port could be bound within 10 s (three ports
    /// are tried).
    pub fn start(pki: &Pki) -> Result<LocalBroker, BrokerError> {
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port().map_err(|e| BrokerError::Start(format!("no free port: {e}")))?;
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let config = broker_config(pki, addr);
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
                    return Ok(LocalBroker {
                        addr,
                        pki: pki.clone(),
                        _thread: thread,
                    });
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            last = format!("no listener on {addr} (port taken, or rumqttd failed: see its log)");
        }
        Err(BrokerError::Start(last))
    }

    /// Starts a broker with the default PKI directory (`.local/pki`), creating it if missing.
    ///
    /// Fails as [`Pki::ensure`] and [`LocalBroker::start`].
    pub fn start_default() -> Result<LocalBroker, BrokerError> {
        LocalBroker::start(&Pki::ensure(Pki::default_dir())?)
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

/// rumqttd's configuration, built explicitly (its `Config::default()` has no listener).
fn broker_config(pki: &Pki, listen: SocketAddr) -> Config {
    let path = |p: PathBuf| p.to_string_lossy().into_owned();
    let server = ServerSettings {
        name: format!("vigil-mtls-{}", listen.port()),
        listen,
        tls: Some(TlsConfig::Rustls {
            capath: Some(path(pki.ca().cert)),
            certpath: path(pki.server().cert),
            keypath: path(pki.server().key),
        }),
        next_connection_delay_ms: 0,
        connections: ConnectionSettings {
            connection_timeout_ms: 5_000,
            max_payload_size: MAX_PAYLOAD_BYTES,
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
        v4: Some([("mtls".to_owned(), server)].into_iter().collect()),
        ..Config::default()
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
