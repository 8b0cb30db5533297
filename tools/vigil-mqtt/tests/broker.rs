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
