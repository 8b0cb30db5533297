//! MQTT client settings shared by the bridge and the simulator: where to connect and with which
//! certificate, for the local broker and for AWS IoT Core alike.

use std::path::PathBuf;
use std::time::Duration;

use rumqttc::{MqttOptions, TlsConfiguration, Transport};

use crate::pki::{CertPair, PkiError};

/// Largest MQTT payload: AWS IoT Core's limit (128 KiB), which the local broker applies too.
pub const MAX_PAYLOAD_BYTES: usize = 128 * 1024;

/// AWS IoT Core's port for MQTT over TLS with ALPN (`x-amzn-mqtt-ca`), for networks that block
/// 8883.
pub const IOT_ALPN_PORT: u16 = 443;

/// A broker to connect to with mutual TLS.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Host name or IP (for IoT Core: `<prefix>-ats.iot.<region>.amazonaws.com`).
    pub host: String,
    /// Port: 8883 (or 443 with ALPN) for IoT Core; the local broker's free port.
    pub port: u16,
    /// The CA that signed the broker's certificate (IoT Core: `AmazonRootCA1.pem`).
    pub ca: PathBuf,
}

/// A tag's options: as [`mqtt_options`], but the session is kept (`clean_session = false`):
/// a QoS 1 fix in flight when the network drops is sent again after the reconnect (on a clean
/// session the client discards it, and the fix is lost), and the command subscription
/// survives. IoT Core keeps a persistent session for an hour by default.
///
/// Fails as [`mqtt_options`].
pub fn tag_options(
    endpoint: &Endpoint,
    tag: &str,
    identity: &CertPair,
) -> Result<MqttOptions, PkiError> {
    let mut options = mqtt_options(endpoint, tag, identity)?;
    options.set_clean_session(false);
    Ok(options)
}

/// Options for one client: id, TLS with the client certificate, keep-alive 30 s, clean session.
///
/// Fails with [`PkiError::Io`] if the CA, certificate or key file cannot be read.
pub fn mqtt_options(
    endpoint: &Endpoint,
    client_id: &str,
    identity: &CertPair,
) -> Result<MqttOptions, PkiError> {
    let ca = std::fs::read(&endpoint.ca).map_err(|source| PkiError::Io {
        path: endpoint.ca.clone(),
        source,
    })?;
    let client_auth = identity.read()?;
    let alpn = (endpoint.port == IOT_ALPN_PORT).then(|| vec![b"x-amzn-mqtt-ca".to_vec()]);
    let mut options = MqttOptions::new(client_id, endpoint.host.clone(), endpoint.port);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_clean_session(true)
        .set_max_packet_size(MAX_PAYLOAD_BYTES + 1024, MAX_PAYLOAD_BYTES + 1024)
        .set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
            ca,
            alpn,
            client_auth: Some(client_auth),
        }));
    Ok(options)
}
