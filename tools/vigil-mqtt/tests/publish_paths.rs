//! Issue 16.3: every topic the shipped tag policy lets a tag publish on reaches the ingest rule,
//! and through it the ingest function with every safety check. Basic Ingest
//! (`$aws/rules/<rule>/...`) delivers to the named rule only, skipping any other rule: with
//! one rule, and the tag's history kept by ingest itself, nothing is skipped on that path.

use vigil_mqtt::bridge::{default_rules_dir, load_rules};
use vigil_mqtt::sql::{Evaluation, Message, RuleOutput};

const STAGE: &str = "local";
const TAG: &str = "tag-7";

/// The topics the policy's `iot:Publish` statements allow, for thing `TAG`.
fn publishable_topics() -> Vec<String> {
    let path = vigil_local::workspace_root().join("infra/iot/tag-policy.json");
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

#[test]
fn every_topic_a_tag_may_publish_on_reaches_the_ingest_rule() {
    let rules = load_rules(&default_rules_dir()).unwrap();
    let names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["ingest"], "one rule: no path skips a second one");
    let ingest = &rules[0].statement;
    let basic_ingest_prefix = format!("$aws/rules/vigil_{STAGE}_{}/", rules[0].name);

    let topics = publishable_topics();
    assert_eq!(topics.len(), 4, "{topics:?}");
    for topic in &topics {
        // What the rule sees: Basic Ingest strips its prefix and reaches this rule only.
        let seen = topic.strip_prefix(&basic_ingest_prefix).unwrap_or(topic);
        assert!(
            !seen.starts_with("$aws/"),
            "{topic} goes to a rule that does not exist"
        );
        assert!(ingest.matches_topic(seen), "{topic} is not ingested");
        let out = ingest.evaluate(&Message {
            topic: seen,
            payload: b"{}",
            received_at_ms: 1,
            client_id: Some(TAG),
        });
        match out {
            Evaluation::Output(RuleOutput::Json(event)) => {
                assert_eq!(event["tag_id"], TAG, "{topic}");
                assert_eq!(event["client_id"], TAG, "{topic}");
            }
            other => panic!("{topic}: the ingest rule did not deliver it: {other:?}"),
        }
    }
}
