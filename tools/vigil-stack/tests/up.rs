//! `vigil-stack up` as a user runs it: the binary, not the library. A fix published to the
//! broker it starts, at the host its env file names, must end as an SMS in the emulator (both
//! functions run: issue 11.5), the IoT data plane the env file names must publish to the
//! broker, and SIGTERM must stop it as Ctrl-C does: the emulator it started and the data plane
//! are gone and the env file removed (it would otherwise point at dead ports).
//!
//! The fix goes out with `mosquitto_pub` when it is installed: a client nobody here wrote, on
//! OpenSSL, which sends the host as SNI and was refused for `127.0.0.1` (issue 11.6). Without
//! it the test publishes with rumqttc to the same host and says so.
//!
//! Again with `--dynamodb local` (ignored by `cargo test`: it needs Java 17 and npm;
//! `tools/test.sh` runs it): the env file sends DynamoDB to DynamoDB Local and the rest to
//! moto, and SIGTERM stops both.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, Packet, QoS};
use vigil_core::{ProtectionOrder, Zone};
use vigil_local::Emulator;
use vigil_mqtt::Endpoint;
use vigil_mqtt::pki::Pki;
use vigil_stack::Functions;

const TAG: &str = "tag-up";
const PHONE: &str = "+447700900321";

/// Stops the child with SIGTERM if the test ends early, so no `up` outlives a failed test.
struct Up(Option<Child>);

impl Drop for Up {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            terminate(child);
            let _ = child.wait();
        }
    }
}

fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -TERM {}", child.id());
}

fn read_env(path: &Path) -> Option<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).ok()?;
    let env: BTreeMap<String, String> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    // Written in one call, but make sure it is complete before using it.
    env.contains_key("VIGIL_ZONES_TABLE").then_some(env)
}

fn has_mosquitto_pub() -> bool {
    Command::new("mosquitto_pub")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

#[tokio::test]
async fn up_texts_the_victim_and_sigterm_stops_everything() {
    up_texts_the_victim_and_sigterm_stops_everything_with("moto").await;
}

#[tokio::test]
#[ignore = "needs Java 17 and npm (DynamoDB Local); tools/test.sh runs it"]
async fn up_on_dynamodb_local_texts_the_victim_and_sigterm_stops_everything() {
    up_texts_the_victim_and_sigterm_stops_everything_with("local").await;
}

async fn up_texts_the_victim_and_sigterm_stops_everything_with(dynamodb: &str) {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("vigil-stack-up-{dynamodb}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let pki_dir = dir.join("pki");
    let env_file = dir.join("mqtt.env");
    let child = Command::new(env!("CARGO_BIN_EXE_vigil-stack"))
        .args(["up", "--pki"])
        .arg(&pki_dir)
        .arg("--env-file")
        .arg(&env_file)
        .args(["--dynamodb", dynamodb])
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_DYNAMODB")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("up.log")).unwrap())
        .spawn()
        .expect("vigil-stack up starts");
    let mut up = Up(Some(child));

    let started = Instant::now();
    let env = loop {
        if let Some(env) = read_env(&env_file) {
            break env;
        }
        if let Some(status) = up.0.as_mut().unwrap().try_wait().unwrap() {
            panic!(
                "up exited with {status}: {}",
                std::fs::read_to_string(dir.join("up.log")).unwrap_or_default()
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "no env file after 180 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(env["VIGIL_MQTT_HOST"], "localhost", "{env:?}");
    let endpoint_url = env["AWS_ENDPOINT_URL"].clone();
    let dynamodb_url = env["AWS_ENDPOINT_URL_DYNAMODB"].clone();
    assert_eq!(
        dynamodb_url != endpoint_url,
        dynamodb == "local",
        "DynamoDB has its own endpoint exactly with DynamoDB Local: {env:?}"
    );

    // An order with a home zone, provisioned as `vigil orders create` does, through the
    // functions' store on the emulator `up` started (connected to, not owned: it stays up),
    // at the endpoints its env file names.
    let emulator =
        Emulator::connect_with_dynamodb(&endpoint_url, Some(&dynamodb_url), &env["VIGIL_STAGE"])
            .await
            .unwrap();
    let functions = Functions::on(emulator).unwrap();
    let order: ProtectionOrder = serde_json::from_value(serde_json::json!({
        "order_id": "o-up", "tag_id": TAG,
        "victim": {"victim_id": "v-up", "phone": PHONE, "language": "en"}
    }))
    .unwrap();
    let home: Zone = serde_json::from_value(serde_json::json!({
        "zone_id": "home", "kind": "home", "circle": {"lat": 51.5, "lon": -0.12, "radius_m": 150},
        "buffer_m": 500, "order_id": "o-up"
    }))
    .unwrap();
    functions.provision(&order, &[home]).await;

    // The tag's certificate from the PKI `up` uses (`vigil-mqtt pki --client`).
    let pki = Pki::ensure(&pki_dir).unwrap();
    let tag = pki.client(TAG).unwrap();
    let now_ms = chrono::Utc::now().timestamp_millis();
    let payload =
        format!(r#"{{"v":1,"seq":1,"at_ms":{now_ms},"lat":51.5001,"lon":-0.12,"accuracy_m":8}}"#);
    let topic = format!("tags/{TAG}/fix");
    if has_mosquitto_pub() {
        let out = Command::new("mosquitto_pub")
            .args(["-h", &env["VIGIL_MQTT_HOST"], "-p", &env["VIGIL_MQTT_PORT"]])
            .args(["--cafile", &env["VIGIL_MQTT_CA"]])
            .arg("--cert")
            .arg(&tag.cert)
            .arg("--key")
            .arg(&tag.key)
            .args(["-i", TAG, "-q", "1", "-t", &topic, "-m", &payload])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mosquitto_pub: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        eprintln!("mosquitto_pub is not installed: publishing with rumqttc instead");
        let endpoint = Endpoint {
            host: env["VIGIL_MQTT_HOST"].clone(),
            port: env["VIGIL_MQTT_PORT"].parse().unwrap(),
            ca: env["VIGIL_MQTT_CA"].clone().into(),
        };
        let options = vigil_mqtt::client::mqtt_options(&endpoint, TAG, &tag).unwrap();
        let (client, mut eventloop) = AsyncClient::new(options, 10);
        client
            .publish(topic, QoS::AtLeastOnce, false, payload.into_bytes())
            .await
            .unwrap();
        let acked = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Event::Incoming(Packet::PubAck(_)) = eventloop.poll().await.unwrap() {
                    break;
                }
            }
        })
        .await;
        assert!(acked.is_ok(), "no PUBACK");
    }

    // The breach SMS, sent by the alert function `up` runs.
    let deadline = Instant::now() + Duration::from_secs(60);
    let sms = loop {
        let sent = functions.sms().await;
        if !sent.is_empty() || Instant::now() > deadline {
            break sent;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(sms.len(), 1, "{sms:#?}");
    assert_eq!(sms[0].phone_number, PHONE);
    assert!(sms[0].message.contains("inside"), "{}", sms[0].message);

    // The IoT data plane the env file names publishes to the broker (as the alert function's
    // commands do), answering once the broker acknowledged.
    let iot_data = env["AWS_ENDPOINT_URL_IOT_DATA_PLANE"].clone();
    let published = reqwest::Client::new()
        .post(format!(
            "{iot_data}/topics/tags%2F{TAG}%2Fcmd?qos=1&retain=true"
        ))
        .body(r#"{"report_interval_s":15}"#)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    assert_eq!(published.status().as_u16(), 200);

    // SIGTERM: everything `up` started stops, and the env file goes.
    let mut child = up.0.take().unwrap();
    terminate(&child);
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "up exited with {status}");
    assert!(!env_file.exists(), "the env file outlived `up`");
    let http = reqwest::Client::new();
    for url in [
        format!("{endpoint_url}/moto-api/data.json"),
        dynamodb_url,
        iot_data,
    ] {
        let gone = http.get(&url).timeout(Duration::from_secs(2)).send().await;
        assert!(gone.is_err(), "{url} outlived `up`: {gone:?}");
    }
}
