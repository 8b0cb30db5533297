//! Helpers shared by the MQTT tests: a private PKI per test, and a plain client.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, Packet};
use vigil_mqtt::pki::{CertPair, Pki};
use vigil_mqtt::{Endpoint, LocalBroker};

/// A fresh PKI directory under the target dir, unique to this test process and `name`.
pub fn test_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("vigil-mqtt-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A PKI and a broker that trusts it.
pub fn broker(name: &str) -> (Pki, LocalBroker) {
    let pki = Pki::ensure(test_dir(name)).expect("pki");
    let broker = LocalBroker::start(&pki).expect("broker starts");
    (pki, broker)
}

/// Connects `client_id` with `identity` and polls until CONNACK (Ok) or the first error.
pub async fn connect(
    endpoint: &Endpoint,
    client_id: &str,
    identity: &CertPair,
) -> Result<(AsyncClient, EventLoop), String> {
    let options = vigil_mqtt::client::mqtt_options(endpoint, client_id, identity)
        .map_err(|e| e.to_string())?;
    let (client, mut eventloop) = AsyncClient::new(options, 100);
    let answer = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await
    .map_err(|_| "no CONNACK within 10 s".to_owned())?;
    answer.map(|()| (client, eventloop))
}
