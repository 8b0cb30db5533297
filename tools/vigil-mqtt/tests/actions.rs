//! Rule wiring and the DynamoDBv2 item mapping, without a broker.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;
use vigil_mqtt::action::{ActionTarget, attribute};
use vigil_mqtt::bridge::{Bridge, BridgeError, BridgeOptions, default_rules_dir, load_rules};
use vigil_mqtt::pki::CertPair;
use vigil_mqtt::{Endpoint, RuleAction, RuleTargets, WallClock};

#[test]
fn json_values_map_to_dynamodb_types_as_the_dynamodbv2_action() {
    assert_eq!(attribute(&json!(4711)), AttributeValue::N("4711".into()));
    assert_eq!(
        attribute(&json!(-0.12776)),
        AttributeValue::N("-0.12776".into())
    );
    assert_eq!(
        attribute(&json!("tag-1")),
        AttributeValue::S("tag-1".into())
    );
    assert_eq!(attribute(&json!(true)), AttributeValue::Bool(true));
    assert_eq!(attribute(&json!(null)), AttributeValue::Null(true));
    assert_eq!(
        attribute(&json!([1, "a"])),
        AttributeValue::L(vec![
            AttributeValue::N("1".into()),
            AttributeValue::S("a".into())
        ])
    );
    assert_eq!(
        attribute(&json!({"k": false})),
        AttributeValue::M([("k".to_owned(), AttributeValue::Bool(false))].into())
    );
}

#[test]
fn the_default_targets_are_the_cdk_apps() {
    let targets = RuleTargets::default();
    // Tags' messages and victims' devices' positions both go to ingest, and no rule writes a
    // table directly: the tag's history is ingest's, from accepted fixes only (issue 11,
    // defect 1), and her positions are stored only by ingest, only if newer.
    let ingest = ActionTarget::Lambda {
        function: "ingest".into(),
    };
    let names: Vec<&str> = targets.0.keys().map(String::as_str).collect();
    assert_eq!(names, ["ingest", "victim"], "{targets:?}");
    assert!(targets.0.values().all(|t| *t == ingest), "{targets:?}");
    // Every rule file has a target.
    for rule in load_rules(&default_rules_dir()).unwrap() {
        assert!(
            targets.0.contains_key(&rule.name),
            "{} has no target",
            rule.name
        );
    }
}

#[tokio::test]
async fn a_rule_without_an_action_stops_the_bridge_from_starting() {
    let actions: BTreeMap<String, Arc<dyn RuleAction>> = BTreeMap::new();
    let nowhere = Endpoint {
        host: "127.0.0.1".into(),
        port: 1,
        ca: "/nonexistent".into(),
    };
    let identity = CertPair {
        cert: "/nonexistent".into(),
        key: "/nonexistent".into(),
    };
    let result = Bridge::start(
        &nowhere,
        &identity,
        load_rules(&default_rules_dir()).unwrap(),
        actions,
        Arc::new(WallClock),
        &BridgeOptions::default(),
    )
    .await;
    match result {
        Err(BridgeError::Wiring(message)) => {
            assert!(message.contains("rule ingest"), "{message}")
        }
        Err(e) => panic!("expected a wiring error, got {e}"),
        Ok(_) => panic!("started without an action for ingest"),
    }
}

#[test]
fn a_rule_file_outside_the_subset_names_the_file_and_column() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("vigil-mqtt-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("bad.sql"), "SELECT lower(x) AS y FROM 'a/#'\n").unwrap();
    let e = load_rules(&dir).unwrap_err().to_string();
    assert!(
        e.contains("bad.sql") && e.contains("column 8") && e.contains("`lower`"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
