//! Issue 16.3: every topic the shipped tag policy lets a tag publish on reaches the ingest rule,
//! and through it the ingest function with every safety check. Basic Ingest
//! (`$aws/rules/<rule>/...`) delivers to the named rule only, skipping any other rule: with
//! one rule per kind of device (tags: `ingest`; victims' devices: `victim`), every topic a
//! policy allows matches exactly one rule, so nothing is skipped on either path.

use vigil_mqtt::bridge::{default_rules_dir, load_rules};
use vigil_mqtt::sql::{Evaluation, Message, RuleOutput};

const STAGE: &str = "local";
const TAG: &str = "tag-7";

/// The topics the policy file's `iot:Publish` statements allow, for thing `TAG`.
fn publishable_topics(file: &str) -> Vec<String> {
    let path = vigil_local::workspace_root().join("infra/iot").join(file);
    let policy: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut topics = Vec::new();
    for statement in policy["Statement"].as_array().unwrap() {
        if statement["Action"] != "iot:Publish" {
            continue;
        }
        assert_eq!(statement["Effect"], "Allow");
        for resource in statement["Resource"].as_array().unwrap() {
            let resource = resource
                .as_str()
                .unwrap()
                .replace("{{stage}}", STAGE)
                .replace("${iot:Connection.Thing.ThingName}", TAG);
            let topic = resource
                .split_once(":topic/")
                .map(|(_, t)| t.to_owned())
                .unwrap_or_else(|| panic!("not a topic resource: {resource}"));
            assert!(!topic.contains('*'), "a wildcard publish: {topic}");
            topics.push(topic);
        }
    }
    topics
}

/// Every topic `policy` lets a thing publish on matches `rule` and no other rule, and the rule
/// delivers it with the thing's id under `id_field` and as the client id.
fn every_publishable_topic_reaches(
    policy: &str,
    rule: &str,
    id_field: &str,
    topics_allowed: usize,
) {
    let rules = load_rules(&default_rules_dir()).unwrap();
    let names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["ingest", "victim"], "one rule per kind of device");
    let target = rules.iter().find(|r| r.name == rule).unwrap();
    let basic_ingest_prefix = format!("$aws/rules/vigil_{STAGE}_{rule}/");

    let topics = publishable_topics(policy);
    assert_eq!(topics.len(), topics_allowed, "{topics:?}");
    for topic in &topics {
        // What the rule sees: Basic Ingest strips its prefix and reaches this rule only.
        let seen = topic.strip_prefix(&basic_ingest_prefix).unwrap_or(topic);
        assert!(
            !seen.starts_with("$aws/"),
            "{topic} goes to a rule that does not exist"
        );
        for other in rules.iter().filter(|r| r.name != rule) {
            assert!(
                !other.statement.matches_topic(seen),
                "{topic} also reaches rule {}",
                other.name
            );
        }
        assert!(
            target.statement.matches_topic(seen),
            "{topic} is not ingested"
        );
        let out = target.statement.evaluate(&Message {
            topic: seen,
            payload: b"{}",
            received_at_ms: 1,
            client_id: Some(TAG),
        });
        match out {
            Evaluation::Output(RuleOutput::Json(event)) => {
                assert_eq!(event[id_field], TAG, "{topic}");
                assert_eq!(event["client_id"], TAG, "{topic}");
            }
            other => panic!("{topic}: the {rule} rule did not deliver it: {other:?}"),
        }
    }
}

#[test]
fn every_topic_a_tag_may_publish_on_reaches_the_ingest_rule() {
    every_publishable_topic_reaches("tag-policy.json", "ingest", "tag_id", 4);
}

#[test]
fn every_topic_a_victims_device_may_publish_on_reaches_the_victim_rule() {
    every_publishable_topic_reaches("victim-device-policy.json", "victim", "device_id", 2);
}
