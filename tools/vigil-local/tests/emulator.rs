//! The harness against a real moto server (installed into `.local/venv` on first use).
//! Every test starts its own server, so they run in parallel without sharing state.

use std::collections::HashMap;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{BillingMode, KeyType, TimeToLiveStatus};
use aws_sdk_sns::types::MessageAttributeValue;
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;
use vigil_local::{Emulator, EmulatorKind, Error, Resources};

fn port_accepts(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).is_ok()
}

async fn publish_sms(emulator: &Emulator, phone: &str, text: &str) -> String {
    let sns = aws_sdk_sns::Client::new(&emulator.sdk_config());
    let sms_type = MessageAttributeValue::builder()
        .data_type("String")
        .string_value("Transactional")
        .build()
        .unwrap();
    sns.publish()
        .phone_number(phone)
        .message(text)
        .message_attributes("AWS.SNS.SMS.SMSType", sms_type)
        .send()
        .await
        .unwrap()
        .message_id()
        .unwrap()
        .to_owned()
}

async fn publish_operator_event(emulator: &Emulator, body: &str, level: &str) -> String {
    let sns = aws_sdk_sns::Client::new(&emulator.sdk_config());
    let attribute = MessageAttributeValue::builder()
        .data_type("String")
        .string_value(level)
        .build()
        .unwrap();
    sns.publish()
        .topic_arn(emulator.topic_arn("operators").unwrap())
        .subject(level)
        .message(body)
        .message_attributes("level", attribute)
        .send()
        .await
        .unwrap()
        .message_id()
        .unwrap()
        .to_owned()
}

/// Checks every declared table, queue and topic against the emulator, for one stage.
async fn assert_resources_exist(emulator: &Emulator) {
    let resources = Resources::bundled().unwrap();
    let config = emulator.sdk_config();
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let sns = aws_sdk_sns::Client::new(&config);

    for table in &resources.tables {
        let name = emulator.table_name(&table.name).unwrap();
        assert_eq!(name, format!("vigil-{}-{}", emulator.stage(), table.name));
        let described = dynamodb
            .describe_table()
            .table_name(name)
            .send()
            .await
            .unwrap();
        let description = described.table().unwrap();
        let types: HashMap<&str, &str> = description
            .attribute_definitions()
            .iter()
            .map(|d| (d.attribute_name(), d.attribute_type().as_str()))
            .collect();
        let keys: HashMap<KeyType, &str> = description
            .key_schema()
            .iter()
            .map(|k| (k.key_type().clone(), k.attribute_name()))
            .collect();
        let pk = &table.partition_key;
        assert_eq!(keys[&KeyType::Hash], pk.name, "{name} hash key");
        assert_eq!(
            types[pk.name.as_str()],
            pk.kind.as_str(),
            "{name} hash key type"
        );
        match &table.sort_key {
            Some(sk) => {
                assert_eq!(keys[&KeyType::Range], sk.name, "{name} range key");
                assert_eq!(
                    types[sk.name.as_str()],
                    sk.kind.as_str(),
                    "{name} range key type"
                );
            }
            None => assert_eq!(keys.len(), 1, "{name} has only a hash key"),
        }
        let billing = description
            .billing_mode_summary()
            .and_then(|b| b.billing_mode());
        assert_eq!(billing, Some(&BillingMode::PayPerRequest), "{name} billing");

        let ttl = dynamodb
            .describe_time_to_live()
            .table_name(name)
            .send()
            .await
            .unwrap();
        let ttl = ttl.time_to_live_description().unwrap();
        match &table.ttl_attribute {
            Some(attribute) => {
                assert_eq!(
                    ttl.time_to_live_status(),
                    Some(&TimeToLiveStatus::Enabled),
                    "{name}"
                );
                assert_eq!(ttl.attribute_name(), Some(attribute.as_str()), "{name}");
            }
            None => assert_ne!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Enabled)),
        }
    }

    for queue in &resources.queues {
        let url = emulator.queue_url(&queue.name).unwrap();
        assert!(url.ends_with(&resources.queue_physical_name(emulator.stage(), queue)));
        let fifo = attributes_fifo(&sqs, url).await;
        assert_eq!(fifo, queue.fifo, "{url}");
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .unwrap();
        let attributes = attributes.attributes().unwrap();
        if let Some(s) = queue.visibility_timeout_s {
            assert_eq!(
                attributes[&QueueAttributeName::VisibilityTimeout],
                s.to_string()
            );
        }
        if let Some(s) = queue.retention_period_s {
            assert_eq!(
                attributes[&QueueAttributeName::MessageRetentionPeriod],
                s.to_string()
            );
        }
        match &queue.dead_letter {
            Some(dlq) => {
                let policy: Value =
                    serde_json::from_str(&attributes[&QueueAttributeName::RedrivePolicy]).unwrap();
                let dlq_def = resources
                    .queues
                    .iter()
                    .find(|q| q.name == dlq.queue)
                    .unwrap();
                let dlq_name = resources.queue_physical_name(emulator.stage(), dlq_def);
                let target = policy["deadLetterTargetArn"].as_str().unwrap();
                assert!(target.ends_with(&format!(":{dlq_name}")), "{target}");
                let count = match &policy["maxReceiveCount"] {
                    Value::Number(n) => n.as_u64().unwrap(),
                    Value::String(s) => s.parse().unwrap(),
                    other => panic!("maxReceiveCount {other}"),
                };
                assert_eq!(count, u64::from(dlq.max_receive_count));
            }
            None => assert!(!attributes.contains_key(&QueueAttributeName::RedrivePolicy)),
        }
    }

    for topic in &resources.topics {
        let arn = emulator.topic_arn(&topic.name).unwrap();
        assert!(arn.ends_with(&format!(":vigil-{}-{}", emulator.stage(), topic.name)));
        sns.get_topic_attributes()
            .topic_arn(arn)
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn start_creates_every_declared_resource() {
    let emulator = Emulator::start().await.unwrap();
    assert_eq!(emulator.kind(), EmulatorKind::Moto);
    assert_eq!(emulator.stage(), "local");
    assert_resources_exist(&emulator).await;

    let env: HashMap<String, String> = emulator.env_vars().into_iter().collect();
    assert_eq!(env["AWS_ENDPOINT_URL"], emulator.endpoint_url());
    assert_eq!(env["AWS_REGION"], "us-east-1");
    assert_eq!(env["AWS_DEFAULT_REGION"], "us-east-1");
    assert_eq!(env["VIGIL_STAGE"], "local");
    assert!(env.contains_key("AWS_ACCESS_KEY_ID") && env.contains_key("AWS_SECRET_ACCESS_KEY"));
    assert_eq!(env["VIGIL_ZONE_CELLS_TABLE"], "vigil-local-zone-cells");
    assert_eq!(
        env["VIGIL_ALERTS_QUEUE_URL"],
        emulator.queue_url("alerts").unwrap()
    );
    assert_eq!(
        env["VIGIL_OPERATORS_TOPIC_ARN"],
        emulator.topic_arn("operators").unwrap()
    );

    let unknown = emulator.table_name("nope").unwrap_err();
    assert!(matches!(unknown, Error::Unknown { .. }), "{unknown}");
}

#[tokio::test]
async fn connect_is_idempotent_and_stages_share_one_server() {
    let owner = Emulator::start().await.unwrap();
    // Same stage again: everything exists already, nothing fails.
    let again = Emulator::connect(owner.endpoint_url(), "local")
        .await
        .unwrap();
    assert_eq!(
        again.queue_url("alerts").unwrap(),
        owner.queue_url("alerts").unwrap()
    );
    assert_eq!(again.port(), None, "connect never owns a server");

    let stage = Emulator::unique_stage("t");
    let other = Emulator::connect(owner.endpoint_url(), &stage)
        .await
        .unwrap();
    assert_eq!(other.stage(), stage);
    assert_resources_exist(&other).await;
    assert_ne!(
        other.table_name("zones").unwrap(),
        owner.table_name("zones").unwrap()
    );

    // A connected value does not stop the server when dropped.
    drop(other);
    drop(again);
    assert!(port_accepts(owner.port().unwrap()));
}

#[tokio::test]
async fn sms_are_read_back_and_reset_clears_them() {
    let emulator = Emulator::start().await.unwrap();
    assert!(emulator.sent_sms().await.unwrap().is_empty());

    let id = publish_sms(&emulator, "+447700900123", "Vigil test: go to a safe place").await;
    let sent = emulator.sent_sms().await.unwrap();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].phone_number, "+447700900123");
    assert_eq!(sent[0].message, "Vigil test: go to a safe place");
    assert_eq!(sent[0].message_id, id);

    publish_operator_event(&emulator, r#"{"level":"BREACH"}"#, "BREACH").await;
    assert_eq!(emulator.operator_events().await.unwrap().len(), 1);

    emulator.reset().await.unwrap();
    assert!(emulator.sent_sms().await.unwrap().is_empty());
    assert!(emulator.operator_events().await.unwrap().is_empty());
    // The resources are back after the reset, with the same names.
    assert_resources_exist(&emulator).await;
    publish_sms(&emulator, "+447700900124", "after reset").await;
    assert_eq!(emulator.sent_sms().await.unwrap().len(), 1);
}

#[tokio::test]
async fn operator_events_are_read_from_moto_and_from_the_tap() {
    let emulator = Emulator::start().await.unwrap();
    let first = publish_operator_event(&emulator, r#"{"level":"WARNING"}"#, "WARNING").await;
    let second = publish_operator_event(&emulator, r#"{"level":"BREACH"}"#, "BREACH").await;

    let events = emulator.operator_events().await.unwrap();
    let ids: Vec<&str> = events.iter().map(|e| e.message_id.as_str()).collect();
    assert_eq!(ids, [first.as_str(), second.as_str()]);
    assert_eq!(events[1].message, r#"{"level":"BREACH"}"#);
    assert_eq!(events[1].subject.as_deref(), Some("BREACH"));
    assert_eq!(events[1].attributes["level"], "BREACH");

    // The SQS tap (LocalStack's path) sees the same messages, and keeps them once drained.
    let tapped = emulator.operator_events_from_tap().await.unwrap();
    assert_eq!(tapped, events);
    assert_eq!(emulator.operator_events_from_tap().await.unwrap(), events);
}

#[tokio::test]
async fn dropping_the_emulator_stops_its_server() {
    let emulator = Emulator::start().await.unwrap();
    let port = emulator.port().unwrap();
    let log = emulator.log_path().unwrap().to_path_buf();
    assert!(port_accepts(port));
    assert!(log.is_file());
    drop(emulator);
    assert!(
        !port_accepts(port),
        "moto still listens on {port} after drop"
    );
}

#[tokio::test]
async fn two_emulators_run_at_once_on_different_ports() {
    let (a, b) = tokio::join!(Emulator::start(), Emulator::start());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_ne!(a.port(), b.port());
    assert_ne!(a.endpoint_url(), b.endpoint_url());
    publish_sms(&a, "+447700900001", "only on a").await;
    assert_eq!(a.sent_sms().await.unwrap().len(), 1);
    assert!(
        b.sent_sms().await.unwrap().is_empty(),
        "servers share no state"
    );
}

#[tokio::test]
async fn connect_to_nothing_says_what_to_do() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let err = Emulator::connect(&format!("http://127.0.0.1:{port}"), "local")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("neither moto nor LocalStack"), "{text}");
    assert!(text.contains("vigil-local up"), "{text}");
}

#[tokio::test]
async fn binary_up_writes_env_and_stops_on_sigterm_and_sms_prints_json() {
    let dir = std::env::temp_dir().join(format!("vigil-local-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let env_file = dir.join("emulator.env");
    let _ = std::fs::remove_file(&env_file);
    let mut up = std::process::Command::new(env!("CARGO_BIN_EXE_vigil-local"))
        .args(["up", "--stage", "bin", "--env-file"])
        .arg(&env_file)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(120);
    let env: HashMap<String, String> = loop {
        if let Ok(text) = std::fs::read_to_string(&env_file) {
            break text
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        }
        assert!(
            up.try_wait().unwrap().is_none(),
            "vigil-local up exited early"
        );
        assert!(Instant::now() < deadline, "no env file from vigil-local up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let endpoint = env["AWS_ENDPOINT_URL"].clone();
    assert_eq!(env["VIGIL_AUDIT_TABLE"], "vigil-bin-audit");

    let emulator = Emulator::connect(&endpoint, "bin").await.unwrap();
    publish_sms(&emulator, "+447700900999", "from the binary test").await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil-local"))
        .args(["sms", "--endpoint", &endpoint])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed[0]["phone_number"], "+447700900999");
    assert_eq!(printed[0]["message"], "from the binary test");

    let status = std::process::Command::new("kill")
        .args(["-TERM", &up.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = up.wait().unwrap();
    assert!(exit.success(), "vigil-local up exited with {exit}");
    let port: u16 = endpoint.rsplit(':').next().unwrap().parse().unwrap();
    assert!(
        !port_accepts(port),
        "moto still listens after vigil-local up stopped"
    );
    assert!(
        !env_file.exists(),
        "env file of a stopped emulator is removed"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

async fn attributes_fifo(sqs: &aws_sdk_sqs::Client, url: &str) -> bool {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::FifoQueue)
        .send()
        .await
        .unwrap();
    attributes
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::FifoQueue))
        .is_some_and(|v| v == "true")
}

#[tokio::test]
async fn the_tag_policy_is_created_from_the_shared_document() {
    let emulator = Emulator::start().await.unwrap();
    let iot = aws_sdk_iot::Client::new(&emulator.sdk_config());
    let name = emulator.iot_policy_name("tag").unwrap();
    assert_eq!(name, "vigil-local-tag");
    let policy = iot.get_policy().policy_name(&name).send().await.unwrap();
    assert_eq!(
        policy.policy_arn(),
        Some(emulator.iot_policy_arn("tag").unwrap())
    );
    let document: Value = serde_json::from_str(policy.policy_document().unwrap()).unwrap();
    let text = document.to_string();
    assert!(!text.contains("{{"), "placeholders left: {text}");
    let statements = document["Statement"].as_array().unwrap();
    let actions: Vec<&str> = statements
        .iter()
        .map(|s| s["Action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["iot:Connect", "iot:Publish", "iot:Subscribe", "iot:Receive"]
    );
    let connect = &statements[0];
    assert_eq!(
        connect["Resource"],
        "arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}"
    );
    assert_eq!(
        connect["Condition"]["Bool"]["iot:Connection.Thing.IsAttached"],
        "true"
    );
    assert!(text.contains(
        "topic/$aws/rules/vigil_local_ingest/tags/${iot:Connection.Thing.ThingName}/fix"
    ));

    // Provisioning again (as connect or reset do) keeps the one policy.
    let again = Emulator::connect(emulator.endpoint_url(), "local")
        .await
        .unwrap();
    assert_eq!(
        again.iot_policy_arn("tag").unwrap(),
        emulator.iot_policy_arn("tag").unwrap()
    );
    assert!(matches!(
        emulator.iot_policy_name("nope"),
        Err(Error::Unknown { .. })
    ));
}
