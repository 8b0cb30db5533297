//! The local CA and the broker's mutual TLS: a client of the local CA connects; one without a
//! certificate, or with one from another CA, is refused.

mod common;

use std::time::Duration;

use rumqttc::{AsyncClient, MqttOptions, TlsConfiguration, Transport};
use vigil_mqtt::pki::{self, Pki};

#[test]
fn pki_generates_ca_server_and_client_certificates_once() {
    let dir = common::test_dir("pki");
    let pki = Pki::ensure(&dir).unwrap();
    for file in ["ca.pem", "ca.key", "server.pem", "server.key"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        assert!(text.starts_with("-----BEGIN"), "{file}: {text}");
    }
    let ca_before = std::fs::read(pki.ca().cert).unwrap();
    let tag = pki.client("tag-0042").unwrap();
    assert!(tag.cert.ends_with("clients/tag-0042.pem"));
    let cert_before = std::fs::read(&tag.cert).unwrap();
    // Opening again keeps the CA and the certificates it issued.
    let again = Pki::ensure(&dir).unwrap();
    assert_eq!(std::fs::read(again.ca().cert).unwrap(), ca_before);
    assert_eq!(
        std::fs::read(again.client("tag-0042").unwrap().cert).unwrap(),
        cert_before
    );
    assert!(matches!(
        pki.client("bad/id"),
        Err(pki::PkiError::BadClientId(_))
    ));
    assert!(matches!(pki.client(""), Err(pki::PkiError::BadClientId(_))));
}

#[tokio::test]
async fn a_client_with_a_certificate_of_the_local_ca_connects() {
    let (pki, broker) = common::broker("accepts");
    let tag = pki.client("tag-1").unwrap();
    let (client, _eventloop) = common::connect(&broker.endpoint(), "tag-1", &tag)
        .await
        .expect("connects over mTLS");
    client.disconnect().await.unwrap();
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let (pki, broker) = common::broker("no-cert");
    let mut options = MqttOptions::new("anonymous", "127.0.0.1", broker.port());
    options.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
        ca: pki.ca_pem().unwrap(),
        alpn: None,
        client_auth: None,
    }));
    let (_client, mut eventloop) = AsyncClient::new(options, 10);
    let first = tokio::time::timeout(Duration::from_secs(10), eventloop.poll())
        .await
        .expect("an answer within 10 s");
    assert!(
        first.is_err(),
        "connected without a client certificate: {first:?}"
    );
    // Still serving clients that have one.
    let tag = pki.client("tag-2").unwrap();
    common::connect(&broker.endpoint(), "tag-2", &tag)
        .await
        .expect("connects");
}

#[tokio::test]
async fn a_client_with_a_certificate_from_another_ca_is_refused() {
    let (_pki, broker) = common::broker("foreign");
    let foreign = pki::foreign_client(&common::test_dir("foreign-ca"), "tag-1").unwrap();
    let refused = common::connect(&broker.endpoint(), "tag-1", &foreign).await;
    assert!(refused.is_err(), "connected with a foreign certificate");
}

#[test]
fn keys_are_private_and_leaf_certificates_short_lived() {
    // Issue 16.11: the CA key and every client key were world-readable, and leaves were valid
    // until the year 4096.
    use std::os::unix::fs::PermissionsExt;
    let dir = common::test_dir("pki-modes");
    let pki = Pki::ensure(&dir).unwrap();
    let tag = pki.client("tag-7").unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for key in [pki.ca().key, pki.server().key, tag.key.clone()] {
        assert_eq!(mode(&key), 0o600, "{}", key.display());
    }
    for folder in [dir.clone(), dir.join("clients")] {
        assert_eq!(mode(&folder), 0o700, "{}", folder.display());
    }
    let now = chrono::Utc::now().timestamp();
    let days_left = |cert: &std::path::Path| (pki::not_after(cert).unwrap() - now) / 86_400;
    for cert in [pki.server().cert, tag.cert.clone()] {
        let left = days_left(&cert);
        assert!(
            (pki::LEAF_VALIDITY_DAYS - 1..=pki::LEAF_VALIDITY_DAYS).contains(&left),
            "{}: {left} days",
            cert.display()
        );
    }

    // A leaf from an older run, valid for decades, is issued again (with the same CA), and a
    // folder left open by an older run is closed again.
    std::fs::set_permissions(dir.join("clients"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let old = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["tag-7".to_owned()]).unwrap();
    params.not_after = rcgen::date_time_ymd(4096, 1, 1);
    let legacy = params.self_signed(&old).unwrap();
    std::fs::write(&tag.cert, legacy.pem()).unwrap();
    assert!(days_left(&tag.cert) > 365 * 1000);
    let again = Pki::ensure(&dir).unwrap().client("tag-7").unwrap();
    assert!(days_left(&again.cert) <= pki::LEAF_VALIDITY_DAYS);
    assert_eq!(mode(&dir.join("clients")), 0o700);
}

#[tokio::test]
async fn a_payload_of_128_kib_is_taken_and_one_byte_more_closes_the_connection() {
    use rumqttc::{Event, Packet, QoS};
    use vigil_mqtt::client::MAX_PAYLOAD_BYTES;
    // IoT Core's limit is on the payload: exactly 128 KiB, with its topic, is a message.
    let (pki, broker) = common::broker("payload-limit");
    let tag = pki.client("tag-1").unwrap();
    let (client, mut eventloop) = common::connect(&broker.endpoint(), "tag-1", &tag)
        .await
        .expect("connects");
    let publish = |payload: usize| {
        let client = client.clone();
        async move {
            client
                .publish(
                    "tags/tag-1/event",
                    QoS::AtLeastOnce,
                    false,
                    vec![b'x'; payload],
                )
                .await
                .unwrap();
        }
    };
    publish(MAX_PAYLOAD_BYTES).await;
    let acked = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await
    .expect("an answer within 10 s");
    assert_eq!(acked, Ok(()), "128 KiB was refused");
    publish(MAX_PAYLOAD_BYTES + 1).await;
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => return false,
                Ok(_) => {}
                Err(_) => return true,
            }
        }
    })
    .await
    .expect("an answer within 10 s");
    assert!(closed, "a payload over 128 KiB was acknowledged");
}
