//! `VIGIL_DYNAMODB=local`: AWS's DynamoDB Local serves DynamoDB on a port of its own, moto
//! serves the rest, and every client takes its endpoint per service. Installing and starting
//! DynamoDB Local needs Java 17 and npm, so these tests are ignored by `cargo test`;
//! `tools/test.sh` runs them. The refusal without Java needs neither, and always runs.

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, TimeToLiveStatus};
use vigil_local::{DynamoDb, Emulator, Error};

#[tokio::test]
#[ignore = "needs Java 17 and npm (DynamoDB Local); tools/test.sh runs it"]
async fn dynamodb_goes_to_dynamodb_local_and_the_rest_to_moto() {
    let emulator = Emulator::start_with("ddbl", DynamoDb::Local).await.unwrap();
    assert_eq!(emulator.dynamodb(), DynamoDb::Local);
    let moto = emulator.endpoint_url().to_owned();
    let dynamodb_url = emulator.dynamodb_endpoint_url().to_owned();
    assert_ne!(moto, dynamodb_url);
    let env: HashMap<String, String> = emulator.env_vars().into_iter().collect();
    assert_eq!(env["AWS_ENDPOINT_URL"], moto);
    assert_eq!(env["AWS_ENDPOINT_URL_DYNAMODB"], dynamodb_url);

    // The harness's DynamoDB client writes to DynamoDB Local...
    let table = emulator.table_name("orders").unwrap().to_owned();
    let dynamodb = aws_sdk_dynamodb::Client::new(&emulator.sdk_config());
    dynamodb
        .put_item()
        .table_name(&table)
        .item("order_id", AttributeValue::S("o-ddbl".into()))
        .send()
        .await
        .unwrap();
    // ...where the tables are; moto has none of them.
    let listed = dynamodb.list_tables().send().await.unwrap();
    assert!(listed.table_names().contains(&table), "{listed:?}");
    // TTL stays off there: DynamoDB Local deletes expired items by the wall clock within
    // seconds, and scenarios run on clocks in the past. An item that expired long ago is
    // still there after DynamoDB Local's sweeps (about every few seconds when TTL is on).
    let last_seen = emulator.table_name("last-seen").unwrap().to_owned();
    let ttl = dynamodb
        .describe_time_to_live()
        .table_name(&last_seen)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ttl.time_to_live_description()
            .and_then(|d| d.time_to_live_status()),
        Some(&TimeToLiveStatus::Disabled)
    );
    dynamodb
        .put_item()
        .table_name(&last_seen)
        .item("tag_id", AttributeValue::S("t-expired".into()))
        .item("expires_at", AttributeValue::N("1".into()))
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(12)).await;
    let kept = dynamodb
        .get_item()
        .table_name(&last_seen)
        .key("tag_id", AttributeValue::S("t-expired".into()))
        .send()
        .await
        .unwrap();
    assert!(kept.item().is_some(), "an expired item was deleted");
    let on_moto = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&emulator.sdk_config())
            .endpoint_url(&moto)
            .build(),
    );
    let moto_tables = on_moto.list_tables().send().await.unwrap();
    assert!(moto_tables.table_names().is_empty(), "{moto_tables:?}");
    // SNS is still moto's: its SMS record is read back from moto.
    assert!(emulator.sent_sms().await.unwrap().is_empty());

    // A reset empties DynamoDB Local's tables too, and keeps them.
    emulator.reset().await.unwrap();
    let after = dynamodb
        .get_item()
        .table_name(&table)
        .key("order_id", AttributeValue::S("o-ddbl".into()))
        .send()
        .await
        .unwrap();
    assert!(after.item().is_none(), "{after:?}");

    // Dropping the emulator stops DynamoDB Local: its port is closed on return.
    drop(emulator);
    let gone = reqwest::Client::new()
        .get(&dynamodb_url)
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(
        gone.is_err(),
        "DynamoDB Local outlived the emulator: {gone:?}"
    );
}

#[test]
fn the_setting_names_its_values() {
    assert_eq!("local".parse::<DynamoDb>().unwrap(), DynamoDb::Local);
    assert_eq!("moto".parse::<DynamoDb>().unwrap(), DynamoDb::Moto);
    let Err(Error::Setting(message)) = "dynalite".parse::<DynamoDb>() else {
        panic!("an unknown engine is refused");
    };
    assert!(
        message.contains("VIGIL_DYNAMODB") && message.contains("`local`"),
        "{message}"
    );
}

/// Without Java, `vigil-local up` with `VIGIL_DYNAMODB=local` stops before installing
/// anything and says what to install.
#[test]
fn without_java_the_error_names_the_package_to_install() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("no-java-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    // An empty PATH: no `java` (nor python3, npm: Java is checked before anything starts).
    let out = Command::new(env!("CARGO_BIN_EXE_vigil-local"))
        .args(["up", "--env-file"])
        .arg(dir.join("emulator.env"))
        .env("PATH", &bin)
        .env("VIGIL_DYNAMODB", "local")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("apt install openjdk-17-jre-headless"),
        "{stderr}"
    );
    assert!(!dir.join("emulator.env").exists());
}
