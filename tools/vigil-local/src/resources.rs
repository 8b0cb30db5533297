//! The resource definition file, `infra/resources.json`: Vigil's tables, queues, topics and
//! IoT policies by logical name, and the rule that turns a logical name into a physical one
//! for a stage.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The definition file as this crate was built with it (cargo rebuilds when it changes).
const BUNDLED: &str = include_str!("../../../infra/resources.json");

/// Every table, queue and topic Vigil needs, as `infra/resources.json` declares them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// Free text for readers of the file; ignored here.
    #[serde(rename = "$comment", default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// How physical names are made from logical ones.
    pub naming: Naming,
    /// DynamoDB tables.
    pub tables: Vec<TableDef>,
    /// SQS queues, dead-letter queues included.
    pub queues: Vec<QueueDef>,
    /// SNS topics.
    pub topics: Vec<TopicDef>,
    /// KMS keys the functions use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KmsKeyDef>,
    /// S3 buckets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buckets: Vec<BucketDef>,
    /// IoT Core policies (documents under `infra/`, shared with the CDK app).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub iot_policies: Vec<IotPolicyDef>,
}

/// One S3 bucket: its logical name, its Object Lock mode and the variable that gives its name
/// to the functions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketDef {
    /// Logical name, e.g. `anchors` (locally `vigil-<stage>-<name>`).
    pub name: String,
    /// Object Lock: every object locked in this mode, by default for the longest
    /// `audit_retention_years` of `infra/forces.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<ObjectLock>,
    /// The environment variable that carries the bucket's name.
    pub env: String,
}

/// Object Lock modes Vigil uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObjectLock {
    /// Compliance mode: nobody can shorten or remove a lock.
    #[serde(rename = "COMPLIANCE")]
    Compliance,
}

/// A DynamoDB stream's view type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StreamView {
    /// Items before and after each write.
    #[serde(rename = "NEW_AND_OLD_IMAGES")]
    NewAndOldImages,
    /// Items after each write.
    #[serde(rename = "NEW_IMAGE")]
    NewImage,
    /// Items before each write.
    #[serde(rename = "OLD_IMAGE")]
    OldImage,
    /// Keys only.
    #[serde(rename = "KEYS_ONLY")]
    KeysOnly,
}

impl StreamView {
    /// DynamoDB's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamView::NewAndOldImages => "NEW_AND_OLD_IMAGES",
            StreamView::NewImage => "NEW_IMAGE",
            StreamView::OldImage => "OLD_IMAGE",
            StreamView::KeysOnly => "KEYS_ONLY",
        }
    }
}

/// One KMS key: its logical name, what kind of key it is, and the variable that gives its ARN
/// to the functions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KmsKeyDef {
    /// Logical name, e.g. `sms-destination` (alias `alias/vigil-<stage>-<name>`).
    pub name: String,
    /// KMS `KeySpec`, e.g. `HMAC_256`.
    pub key_spec: String,
    /// KMS `KeyUsage`, e.g. `GENERATE_VERIFY_MAC`.
    pub key_usage: String,
    /// The environment variable that carries the key's ARN.
    pub env: String,
}

/// One IoT Core policy: its logical name and the policy document file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IotPolicyDef {
    /// Logical name, e.g. `tag` (physical `vigil-<stage>-tag`).
    pub name: String,
    /// The document's path relative to `infra/`, e.g. `iot/tag-policy.json`: IAM-style policy
    /// JSON with `{{region}}`, `{{account}}` and `{{stage}}` placeholders.
    pub document: String,
}

impl IotPolicyDef {
    /// The document's path under `infra`, e.g. `<root>/infra/iot/tag-policy.json`.
    pub fn document_path(&self, infra: &std::path::Path) -> std::path::PathBuf {
        infra.join(&self.document)
    }

    /// Reads the document from `infra` and fills in its placeholders; see [`render_policy`].
    ///
    /// Fails with [`Error::Io`] if the file cannot be read, or as [`render_policy`] does.
    pub fn render(
        &self,
        infra: &std::path::Path,
        region: &str,
        account: &str,
        stage: &str,
    ) -> Result<String> {
        let path = self.document_path(infra);
        let text = std::fs::read_to_string(&path)
            .map_err(crate::io_error(format!("reading {}", path.display())))?;
        render_policy(&text, region, account, stage)
            .map_err(|e| Error::Definition(format!("{}: {e}", path.display())))
    }
}

/// Fills the `{{region}}`, `{{account}}` and `{{stage}}` placeholders of a policy document.
/// IoT's own policy variables (`${iot:...}`) are left as they are.
///
/// Fails with [`Error::Definition`] if another `{{...}}` placeholder is left or the result is
/// not JSON with a `Statement` list.
pub fn render_policy(text: &str, region: &str, account: &str, stage: &str) -> Result<String> {
    let rendered = text
        .replace("{{region}}", region)
        .replace("{{account}}", account)
        .replace("{{stage}}", stage);
    if let Some(at) = rendered.find("{{") {
        let end = rendered[at..]
            .find("}}")
            .map_or(rendered.len(), |e| at + e + 2);
        return Err(Error::Definition(format!(
            "unknown placeholder {} (known: {{{{region}}}}, {{{{account}}}}, {{{{stage}}}})",
            &rendered[at..end]
        )));
    }
    let value: serde_json::Value = serde_json::from_str(&rendered)
        .map_err(|e| Error::Definition(format!("policy is not JSON: {e}")))?;
    if !value.get("Statement").is_some_and(|s| s.is_array()) {
        return Err(Error::Definition("policy has no \"Statement\" list".into()));
    }
    Ok(rendered)
}

/// The naming rule: `pattern` with `{stage}` and `{name}` substituted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Naming {
    /// For example `vigil-{stage}-{name}`.
    pub pattern: String,
    /// The stage used when none is given (`local`).
    pub default_stage: String,
}

/// One DynamoDB table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableDef {
    /// Logical name, e.g. `zone-state`.
    pub name: String,
    /// Capacity mode.
    pub billing_mode: BillingMode,
    /// Hash key.
    pub partition_key: KeyDef,
    /// Range key, if the table has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_key: Option<KeyDef>,
    /// Attribute (epoch seconds) by which DynamoDB TTL expires items, if enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_attribute: Option<String>,
    /// The table's DynamoDB stream, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<StreamView>,
}

/// DynamoDB capacity mode. Only on-demand is used by Vigil.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BillingMode {
    /// On-demand capacity.
    #[serde(rename = "PAY_PER_REQUEST")]
    PayPerRequest,
}

/// A key attribute: its name and DynamoDB scalar type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyDef {
    /// Attribute name.
    pub name: String,
    /// Attribute type.
    #[serde(rename = "type")]
    pub kind: KeyType,
}

/// DynamoDB key attribute types, spelled as DynamoDB spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyType {
    /// String.
    S,
    /// Number.
    N,
    /// Binary.
    B,
}

impl KeyType {
    /// DynamoDB's spelling: `"S"`, `"N"` or `"B"`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::S => "S",
            KeyType::N => "N",
            KeyType::B => "B",
        }
    }
}

/// One standard SQS queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueDef {
    /// Logical name, e.g. `alerts`.
    pub name: String,
    /// Visibility timeout in seconds (SQS default 30 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility_timeout_s: Option<u32>,
    /// Message retention in seconds (SQS default 4 days when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_period_s: Option<u32>,
    /// Where messages go after too many receives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<DeadLetterDef>,
    /// A FIFO queue (its physical name ends in `.fifo`): ordered per message group, deduplicated
    /// by id. A FIFO queue's dead-letter queue must be FIFO too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fifo: bool,
}

/// A queue's redrive policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterDef {
    /// Logical name of the dead-letter queue, declared in the same file.
    pub queue: String,
    /// Receives before a message moves to the dead-letter queue.
    pub max_receive_count: u32,
}

/// One standard SNS topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicDef {
    /// Logical name, e.g. `operators`.
    pub name: String,
}

impl Resources {
    /// The definition file this crate was built with, parsed and checked.
    ///
    /// Fails only if `infra/resources.json` is invalid, which the crate's tests catch.
    pub fn bundled() -> Result<Resources> {
        Resources::parse(BUNDLED)
    }

    /// Parses and checks a definition file's text.
    ///
    /// Fails with [`Error::Definition`] on malformed JSON, an unknown field, a duplicate
    /// logical name, a name that is not lowercase letters, digits and `-`, a dead-letter
    /// queue that is not declared (or declared after the queue that uses it), or a naming
    /// pattern without `{stage}` and `{name}`.
    pub fn parse(text: &str) -> Result<Resources> {
        let resources: Resources = serde_json::from_str(text)
            .map_err(|e| Error::Definition(format!("infra/resources.json: {e}")))?;
        resources.check()?;
        Ok(resources)
    }

    fn check(&self) -> Result<()> {
        let bad = |what: String| Err(Error::Definition(format!("infra/resources.json: {what}")));
        if !self.naming.pattern.contains("{stage}") || !self.naming.pattern.contains("{name}") {
            return bad("naming.pattern must contain {stage} and {name}".into());
        }
        check_stage(&self.naming.default_stage)?;
        let mut seen = std::collections::BTreeSet::new();
        let names = self
            .tables
            .iter()
            .map(|t| ("table", &t.name))
            .chain(self.queues.iter().map(|q| ("queue", &q.name)))
            .chain(self.topics.iter().map(|t| ("topic", &t.name)))
            .chain(self.buckets.iter().map(|b| ("bucket", &b.name)))
            .chain(self.keys.iter().map(|k| ("key", &k.name)))
            .chain(self.iot_policies.iter().map(|p| ("iot policy", &p.name)));
        for (kind, name) in names {
            if !is_logical_name(name) {
                return bad(format!(
                    "{kind} name {name:?} must be lowercase letters, digits and '-'"
                ));
            }
            if !seen.insert((kind, name)) {
                return bad(format!("{kind} {name:?} is declared twice"));
            }
        }
        for key in &self.keys {
            let known = matches!(
                (key.key_spec.as_str(), key.key_usage.as_str()),
                ("HMAC_256", "GENERATE_VERIFY_MAC") | ("ECC_NIST_P256", "SIGN_VERIFY")
            );
            if !known {
                return bad(format!(
                    "key {:?}: {} for {} is not a key Vigil uses (HMAC_256 for GENERATE_VERIFY_MAC, ECC_NIST_P256 for SIGN_VERIFY)",
                    key.name, key.key_spec, key.key_usage
                ));
            }
        }
        for policy in &self.iot_policies {
            let doc = std::path::Path::new(&policy.document);
            let inside = doc.is_relative()
                && doc
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)));
            if !inside || !policy.document.ends_with(".json") {
                return bad(format!(
                    "iot policy {:?}: document {:?} must be a .json file path inside infra/ (e.g. iot/tag-policy.json)",
                    policy.name, policy.document
                ));
            }
        }
        for (i, queue) in self.queues.iter().enumerate() {
            if let Some(dlq) = &queue.dead_letter {
                let Some(target) = self.queues[..i].iter().find(|q| q.name == dlq.queue) else {
                    return bad(format!(
                        "queue {:?}: dead-letter queue {:?} must be declared before it",
                        queue.name, dlq.queue
                    ));
                };
                if target.fifo != queue.fifo {
                    return bad(format!(
                        "queue {:?}: dead-letter queue {:?} must be FIFO exactly when the queue is",
                        queue.name, dlq.queue
                    ));
                }
            }
        }
        Ok(())
    }

    /// The physical name of a logical resource for `stage`, e.g. `vigil-local-zones`.
    pub fn physical_name(&self, stage: &str, logical: &str) -> String {
        self.naming
            .pattern
            .replace("{stage}", stage)
            .replace("{name}", logical)
    }

    /// The physical name of a queue for `stage`: as [`Resources::physical_name`], with `.fifo`
    /// appended for a FIFO queue, as SQS requires.
    pub fn queue_physical_name(&self, stage: &str, queue: &QueueDef) -> String {
        let name = self.physical_name(stage, &queue.name);
        if queue.fifo {
            format!("{name}.fifo")
        } else {
            name
        }
    }

    /// The table declared under `logical`, if any.
    pub fn table(&self, logical: &str) -> Option<&TableDef> {
        self.tables.iter().find(|t| t.name == logical)
    }

    /// The queue declared under `logical`, if any.
    pub fn queue(&self, logical: &str) -> Option<&QueueDef> {
        self.queues.iter().find(|q| q.name == logical)
    }

    /// The bucket declared under `logical`, if any.
    pub fn bucket(&self, logical: &str) -> Option<&BucketDef> {
        self.buckets.iter().find(|b| b.name == logical)
    }

    /// The IoT policy declared under `logical`, if any.
    pub fn iot_policy(&self, logical: &str) -> Option<&IotPolicyDef> {
        self.iot_policies.iter().find(|p| p.name == logical)
    }

    /// The topic declared under `logical`, if any.
    pub fn topic(&self, logical: &str) -> Option<&TopicDef> {
        self.topics.iter().find(|t| t.name == logical)
    }
}

fn is_logical_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Checks that `stage` can go into every physical name: 1 to 32 lowercase letters, digits
/// and `-`, not starting with `-`.
pub fn check_stage(stage: &str) -> Result<()> {
    if stage.len() <= 32 && is_logical_name(stage) {
        Ok(())
    } else {
        Err(Error::Definition(format!(
            "stage {stage:?} must be 1 to 32 lowercase letters, digits and '-', not starting with '-'"
        )))
    }
}

/// The environment variable that carries a resource's physical identity to a child process:
/// `VIGIL_<NAME>_TABLE` (table name), `VIGIL_<NAME>_QUEUE_URL` (queue URL) or
/// `VIGIL_<NAME>_TOPIC_ARN` (topic ARN), with `<NAME>` the logical name in upper snake case.
/// These are the names `vigil-aws`'s config loader reads (`VIGIL_ALERTS_QUEUE_URL`,
/// `VIGIL_OPERATORS_TOPIC_ARN`); it derives table names from `VIGIL_STAGE` instead.
pub fn env_var_name(kind: ResourceKind, logical: &str) -> String {
    let upper = logical.replace('-', "_").to_ascii_uppercase();
    match kind {
        ResourceKind::Table => format!("VIGIL_{upper}_TABLE"),
        ResourceKind::Queue => format!("VIGIL_{upper}_QUEUE_URL"),
        ResourceKind::Topic => format!("VIGIL_{upper}_TOPIC_ARN"),
    }
}

/// The three kinds of resource in the definition file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    /// A DynamoDB table.
    Table,
    /// An SQS queue.
    Queue,
    /// An SNS topic.
    Topic,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_file_declares_what_vigil_needs() {
        let r = Resources::bundled().unwrap();
        assert_eq!(r.tables.len(), 13);
        // Her positions expire (docs/PROXIMITY.md); her device's orders do not.
        let positions = r.table("victim-positions").unwrap();
        assert_eq!(positions.partition_key.name, "device_id");
        assert_eq!(positions.ttl_attribute.as_deref(), Some("expires_at"));
        assert_eq!(r.table("devices").unwrap().ttl_attribute, None);
        let audit = r.table("audit").unwrap();
        assert_eq!(audit.partition_key.name, "order_id");
        assert_eq!(audit.sort_key.as_ref().unwrap().kind, KeyType::N);
        assert_eq!(
            r.table("idempotency").unwrap().ttl_attribute.as_deref(),
            Some("expires_at")
        );
        let alerts = r.queue("alerts").unwrap();
        assert_eq!(alerts.visibility_timeout_s, Some(60));
        assert_eq!(alerts.dead_letter.as_ref().unwrap().max_receive_count, 5);
        assert_eq!(
            r.queue("alerts-dlq").unwrap().retention_period_s,
            Some(14 * 24 * 3600)
        );
        assert!(r.topic("operators").is_some());
        assert_eq!(
            r.physical_name("local", "zone-cells"),
            "vigil-local-zone-cells"
        );
    }

    #[test]
    fn rejects_unknown_fields_duplicates_and_forward_dead_letters() {
        let base = Resources::bundled().unwrap();
        let mut v = serde_json::to_value(&base).unwrap();
        v["tables"][0]["gsi"] = serde_json::json!([]);
        assert!(Resources::parse(&v.to_string()).is_err());

        let mut dup = base.clone();
        dup.tables.push(dup.tables[0].clone());
        assert!(dup.check().is_err());

        let mut order = base.clone();
        order.queues.reverse();
        let err = order.check().unwrap_err().to_string();
        assert!(err.contains("must be declared before"), "{err}");
    }

    #[test]
    fn iot_policies_are_declared_checked_and_render() {
        let base = Resources::bundled().unwrap();
        let tag = base.iot_policy("tag").expect("the tag policy is declared");
        let infra = crate::workspace_root().join("infra");
        let text = tag
            .render(&infra, "eu-west-2", "123456789012", "prod")
            .unwrap();
        assert!(!text.contains("{{"), "{text}");
        assert!(text.contains("arn:aws:iot:eu-west-2:123456789012:client/"));
        assert!(text.contains("$aws/rules/vigil_prod_ingest/tags/"));
        assert!(text.contains("${iot:Connection.Thing.ThingName}"));

        for bad_doc in ["../secrets.json", "/etc/policy.json", "iot/tag-policy.yaml"] {
            let mut r = base.clone();
            r.iot_policies[0].document = bad_doc.into();
            assert!(r.check().is_err(), "{bad_doc}");
        }
        let mut dup = base.clone();
        dup.iot_policies.push(dup.iot_policies[0].clone());
        assert!(dup.check().is_err());
        let mut v = serde_json::to_value(&base).unwrap();
        v["iot_policies"][0]["version"] = serde_json::json!(2);
        assert!(Resources::parse(&v.to_string()).is_err());

        let e = render_policy(r#"{"Statement": [], "x": "{{acount}}"}"#, "r", "a", "s");
        assert!(e.unwrap_err().to_string().contains("{{acount}}"));
        assert!(render_policy("{}", "r", "a", "s").is_err());
    }

    #[test]
    fn stages_and_env_names() {
        assert!(check_stage("local").is_ok());
        assert!(check_stage("t-12-3").is_ok());
        assert!(check_stage("Prod").is_err());
        assert!(check_stage("").is_err());
        assert!(check_stage(&"a".repeat(33)).is_err());
        assert_eq!(
            env_var_name(ResourceKind::Table, "zone-cells"),
            "VIGIL_ZONE_CELLS_TABLE"
        );
        assert_eq!(
            env_var_name(ResourceKind::Queue, "alerts-dlq"),
            "VIGIL_ALERTS_DLQ_QUEUE_URL"
        );
        assert_eq!(
            env_var_name(ResourceKind::Topic, "operators"),
            "VIGIL_OPERATORS_TOPIC_ARN"
        );
    }
}
