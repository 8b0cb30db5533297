//! [`Policy`]: the tag's AWS IoT policy (`infra/iot/tag-policy.json`, the file the CDK app
//! ships), evaluated for the local broker's front ([`crate::front`]) as IoT Core evaluates it
//! for a connection authenticated by a thing's certificate.
//!
//! Supported, which is what the shipped file uses (anything else is refused when the policy
//! loads, naming the statement, so the policy that ships is the policy the tests exercise):
//! - `Effect` `Allow` and `Deny` (a matching Deny wins); `Action` one or a list of
//!   `iot:Connect`, `iot:Publish`, `iot:Subscribe`, `iot:Receive`, `iot:*`;
//! - `Resource` one or a list of ARNs `arn:aws:iot:{{region}}:{{account}}:<type>/<name>` with
//!   the CDK app's placeholders `{{region}}`, `{{account}}`, `{{stage}}`, the policy variables
//!   `${iot:Connection.Thing.ThingName}` and `${iot:ClientId}`, and IAM wildcards `*`, `?`;
//! - `Condition` `Bool` `iot:Connection.Thing.IsAttached`: locally a certificate is attached
//!   to exactly the thing its CN names (that is how the local PKI issues them), so it holds.
//!
//! `iot:Receive` is enforced through `iot:Subscribe`: the front checks what a client
//! subscribes to, not each message delivered. That is exact only when every subscribable
//! filter is a receivable topic and the other way round, which loading checks.

use std::path::Path;

/// Values for the CDK app's placeholders in the policy file.
#[derive(Debug, Clone)]
pub struct PolicyContext {
    /// `{{region}}`.
    pub region: String,
    /// `{{account}}`.
    pub account: String,
    /// `{{stage}}`.
    pub stage: String,
}

impl PolicyContext {
    /// The local stack's: moto's region and account, and `stage`.
    pub fn local(stage: &str) -> PolicyContext {
        PolicyContext {
            region: "us-east-1".to_owned(),
            account: "123456789012".to_owned(),
            stage: stage.to_owned(),
        }
    }
}

/// An MQTT operation a policy allows or denies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `iot:Connect`, resource `client/<client id>`.
    Connect,
    /// `iot:Publish`, resource `topic/<topic>`.
    Publish,
    /// `iot:Subscribe`, resource `topicfilter/<filter>`.
    Subscribe,
    /// `iot:Receive`, resource `topic/<topic>`.
    Receive,
}

impl Action {
    fn from_name(name: &str) -> Option<Vec<Action>> {
        Some(match name {
            "iot:Connect" => vec![Action::Connect],
            "iot:Publish" => vec![Action::Publish],
            "iot:Subscribe" => vec![Action::Subscribe],
            "iot:Receive" => vec![Action::Receive],
            "iot:*" => vec![
                Action::Connect,
                Action::Publish,
                Action::Subscribe,
                Action::Receive,
            ],
            _ => return None,
        })
    }

    /// The ARN resource type this action is checked against.
    pub fn resource_type(self) -> &'static str {
        match self {
            Action::Connect => "client",
            Action::Publish | Action::Receive => "topic",
            Action::Subscribe => "topicfilter",
        }
    }

    /// The IAM action name.
    pub fn name(self) -> &'static str {
        match self {
            Action::Connect => "iot:Connect",
            Action::Publish => "iot:Publish",
            Action::Subscribe => "iot:Subscribe",
            Action::Receive => "iot:Receive",
        }
    }
}

/// Why a policy file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Not a policy document.
    #[error("{0}")]
    Invalid(String),
    /// A policy feature the local broker does not evaluate.
    #[error("{0}: the local broker evaluates only what docs/MQTT.md lists")]
    Unsupported(String),
}

#[derive(Debug, Clone)]
struct Statement {
    allow: bool,
    actions: Vec<Action>,
    /// Full ARNs with the placeholders filled and the policy variables left in.
    resources: Vec<String>,
}

/// Every IoT policy `infra/resources.json` declares, by logical name (`tag`,
/// `victim-device`): the policies the CDK app ships, one of which the CLI attaches to each
/// certificate. Locally the PKI records which one a certificate has ([`crate::Pki::attached_policy`]).
#[derive(Debug, Clone)]
pub struct Policies(std::collections::BTreeMap<String, Policy>);

impl Policies {
    /// The policies the CDK app ships, read from the documents `infra/resources.json` names.
    ///
    /// Fails as [`Policy::load`], or with [`PolicyError::Invalid`] if `infra/resources.json`
    /// cannot be read.
    pub fn shipped(context: &PolicyContext) -> Result<Policies, PolicyError> {
        let resources = vigil_local::Resources::bundled()
            .map_err(|e| PolicyError::Invalid(format!("infra/resources.json: {e}")))?;
        let infra = vigil_local::workspace_root().join("infra");
        let mut policies = std::collections::BTreeMap::new();
        for def in &resources.iot_policies {
            let policy = Policy::load(&def.document_path(&infra), context)?;
            policies.insert(def.name.clone(), policy);
        }
        Ok(Policies(policies))
    }

    /// The policy with this logical name.
    pub fn get(&self, name: &str) -> Option<&Policy> {
        self.0.get(name)
    }
}

/// A parsed IoT policy, ready to answer "may this thing do this".
#[derive(Debug, Clone)]
pub struct Policy {
    arn_prefix: String,
    statements: Vec<Statement>,
}

const THING_NAME: &str = "${iot:Connection.Thing.ThingName}";
const CLIENT_ID: &str = "${iot:ClientId}";

impl Policy {
    /// The policy the CDK app ships: `infra/iot/tag-policy.json` in the workspace.
    ///
    /// Fails as [`Policy::load`].
    pub fn shipped(context: &PolicyContext) -> Result<Policy, PolicyError> {
        Policy::load(
            &vigil_local::workspace_root().join("infra/iot/tag-policy.json"),
            context,
        )
    }

    /// Reads and parses a policy file.
    ///
    /// Fails with [`PolicyError::Io`] if it cannot be read, and as [`Policy::parse`].
    pub fn load(path: &Path, context: &PolicyContext) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Policy::parse(&text, context)
            .map_err(|e| PolicyError::Invalid(format!("{}: {e}", path.display())))
    }

    /// Parses a policy document.
    ///
    /// Fails with [`PolicyError::Invalid`] for a document that is not a policy, and
    /// [`PolicyError::Unsupported`] for an action, condition or variable not evaluated here,
    /// or a Receive grant that differs from the Subscribe grant.
    pub fn parse(text: &str, context: &PolicyContext) -> Result<Policy, PolicyError> {
        let doc: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| PolicyError::Invalid(format!("not JSON: {e}")))?;
        let list = doc["Statement"]
            .as_array()
            .ok_or_else(|| PolicyError::Invalid("no Statement list".to_owned()))?;
        let arn_prefix = format!("arn:aws:iot:{}:{}:", context.region, context.account);
        let mut statements = Vec::new();
        for (i, s) in list.iter().enumerate() {
            let name = s["Sid"]
                .as_str()
                .map_or_else(|| format!("#{i}"), str::to_owned);
            let allow = match s["Effect"].as_str() {
                Some("Allow") => true,
                Some("Deny") => false,
                other => {
                    return Err(PolicyError::Invalid(format!(
                        "statement {name}: Effect {other:?}"
                    )));
                }
            };
            let mut actions = Vec::new();
            for a in strings(&s["Action"], &name, "Action")? {
                actions.extend(Action::from_name(&a).ok_or_else(|| {
                    PolicyError::Unsupported(format!("statement {name}: action {a}"))
                })?);
            }
            let mut resources = Vec::new();
            for r in strings(&s["Resource"], &name, "Resource")? {
                let r = r
                    .replace("{{region}}", &context.region)
                    .replace("{{account}}", &context.account)
                    .replace("{{stage}}", &context.stage);
                let unknown = r
                    .replace(THING_NAME, "")
                    .replace(CLIENT_ID, "")
                    .contains("${");
                if unknown || r.contains("{{") {
                    return Err(PolicyError::Unsupported(format!(
                        "statement {name}: a variable in {r}"
                    )));
                }
                resources.push(r);
            }
            check_condition(&s["Condition"], &name)?;
            statements.push(Statement {
                allow,
                actions,
                resources,
            });
        }
        let policy = Policy {
            arn_prefix,
            statements,
        };
        policy.check_receive_matches_subscribe()?;
        Ok(policy)
    }

    /// Whether a connection authenticated as `thing` with MQTT client id `client_id` may do
    /// `action` on `name` (a client id, topic or topic filter): some Allow statement matches
    /// and no Deny does. A thing or client id with an IAM wildcard character in it is refused
    /// everything (it would widen the policy's variables).
    pub fn allows(&self, thing: &str, client_id: &str, action: Action, name: &str) -> bool {
        if [thing, client_id]
            .iter()
            .any(|v| v.contains(['*', '?']) || v.is_empty())
        {
            return false;
        }
        let resource = format!("{}{}/{name}", self.arn_prefix, action.resource_type());
        let mut allowed = false;
        for s in self
            .statements
            .iter()
            .filter(|s| s.actions.contains(&action))
        {
            let hit = s.resources.iter().any(|pattern| {
                let pattern = pattern
                    .replace(THING_NAME, thing)
                    .replace(CLIENT_ID, client_id);
                glob(pattern.as_bytes(), resource.as_bytes())
            });
            if hit && !s.allow {
                return false;
            }
            allowed |= hit;
        }
        allowed
    }

    fn check_receive_matches_subscribe(&self) -> Result<(), PolicyError> {
        let names = |action: Action| {
            let prefix = format!("{}{}/", self.arn_prefix, action.resource_type());
            let mut v: Vec<(bool, String)> = self
                .statements
                .iter()
                .filter(|s| s.actions.contains(&action))
                .flat_map(|s| {
                    s.resources
                        .iter()
                        .filter_map(|r| r.strip_prefix(&prefix).map(|n| (s.allow, n.to_owned())))
                })
                .collect();
            v.sort();
            v
        };
        let (subscribe, receive) = (names(Action::Subscribe), names(Action::Receive));
        if subscribe != receive {
            return Err(PolicyError::Unsupported(format!(
                "iot:Receive {receive:?} differs from iot:Subscribe {subscribe:?} (the local \
                 broker enforces Receive through Subscribe)"
            )));
        }
        Ok(())
    }
}

fn strings(value: &serde_json::Value, name: &str, field: &str) -> Result<Vec<String>, PolicyError> {
    let bad = || PolicyError::Invalid(format!("statement {name}: {field} is not a string or list"));
    match value {
        serde_json::Value::String(s) => Ok(vec![s.clone()]),
        serde_json::Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned).ok_or_else(bad))
            .collect(),
        _ => Err(bad()),
    }
}

fn check_condition(condition: &serde_json::Value, name: &str) -> Result<(), PolicyError> {
    let Some(map) = condition.as_object() else {
        return if condition.is_null() {
            Ok(())
        } else {
            Err(PolicyError::Invalid(format!(
                "statement {name}: Condition is not an object"
            )))
        };
    };
    for (operator, keys) in map {
        let supported = operator == "Bool"
            && keys.as_object().is_some_and(|k| {
                k.len() == 1 && k.get("iot:Connection.Thing.IsAttached") == Some(&"true".into())
            });
        if !supported {
            return Err(PolicyError::Unsupported(format!(
                "statement {name}: condition {operator} {keys}"
            )));
        }
    }
    Ok(())
}

/// IAM's wildcard match: `*` any run of characters, `?` exactly one; everything else literal.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Policy {
        Policy::shipped(&PolicyContext::local("local")).expect("the shipped policy loads")
    }

    #[test]
    fn a_tag_may_connect_only_as_itself() {
        let p = shipped();
        assert!(p.allows("tag-1", "tag-1", Action::Connect, "tag-1"));
        assert!(!p.allows("tag-1", "tag-2", Action::Connect, "tag-2"));
        assert!(!p.allows(
            "tag-1",
            "vigil-bridge-ingest-1",
            Action::Connect,
            "vigil-bridge-ingest-1"
        ));
    }

    #[test]
    fn a_tag_may_publish_only_its_own_fixes_and_events() {
        let p = shipped();
        for topic in [
            "tags/tag-1/fix",
            "tags/tag-1/event",
            "$aws/rules/vigil_local_ingest/tags/tag-1/fix",
            "$aws/rules/vigil_local_ingest/tags/tag-1/event",
        ] {
            assert!(
                p.allows("tag-1", "tag-1", Action::Publish, topic),
                "{topic}"
            );
        }
        for topic in [
            "tags/tag-2/fix",
            "tags/tag-1/cmd",
            "tags/tag-2/cmd",
            "tags/tag-1/fix/more",
            "tags/tag-1",
            "$aws/rules/vigil_prod_ingest/tags/tag-1/fix",
            "$aws/rules/vigil_local_ingest/tags/tag-2/fix",
            "other",
        ] {
            assert!(
                !p.allows("tag-1", "tag-1", Action::Publish, topic),
                "{topic}"
            );
        }
    }

    #[test]
    fn a_tag_may_subscribe_only_to_its_own_commands() {
        let p = shipped();
        assert!(p.allows("tag-1", "tag-1", Action::Subscribe, "tags/tag-1/cmd"));
        for filter in [
            "tags/+/cmd",
            "tags/#",
            "#",
            "tags/tag-2/cmd",
            "tags/tag-1/fix",
            "tags/tag-1/+",
        ] {
            assert!(
                !p.allows("tag-1", "tag-1", Action::Subscribe, filter),
                "{filter}"
            );
        }
    }

    #[test]
    fn wildcards_in_an_identity_are_refused_everything() {
        let p = shipped();
        assert!(!p.allows("*", "*", Action::Connect, "*"));
        assert!(!p.allows("tag-?", "tag-?", Action::Publish, "tags/tag-1/fix"));
        assert!(!p.allows("", "", Action::Connect, ""));
    }

    #[test]
    fn deny_wins_and_wildcards_match_as_iam_does() {
        let doc = r#"{"Statement": [
            {"Effect": "Allow", "Action": "iot:Publish", "Resource": "arn:aws:iot:{{region}}:{{account}}:topic/a/*"},
            {"Effect": "Deny", "Action": ["iot:Publish"], "Resource": ["arn:aws:iot:{{region}}:{{account}}:topic/a/secret?"]}
        ]}"#;
        let p = Policy::parse(doc, &PolicyContext::local("t")).unwrap();
        assert!(p.allows("x", "x", Action::Publish, "a/b/c"));
        assert!(p.allows("x", "x", Action::Publish, "a/secret"));
        assert!(!p.allows("x", "x", Action::Publish, "a/secret1"));
        assert!(!p.allows("x", "x", Action::Publish, "b/a"));
        assert!(!p.allows("x", "x", Action::Subscribe, "a/b"));
    }

    #[test]
    fn what_is_not_evaluated_here_is_refused_when_loading() {
        let ctx = PolicyContext::local("t");
        let one =
            |statement: &str| Policy::parse(&format!(r#"{{"Statement": [{statement}]}}"#), &ctx);
        let cases = [
            r#"{"Effect": "Allow", "Action": "iot:UpdateThingShadow", "Resource": "*"}"#,
            r#"{"Effect": "Allow", "Action": "iot:Publish", "Resource": "arn:aws:iot:r:a:topic/${iot:Certificate.Subject.CommonName}"}"#,
            r#"{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*", "Condition": {"StringEquals": {"iot:ClientId": "x"}}}"#,
            r#"{"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "arn:aws:iot:{{region}}:{{account}}:topicfilter/a/#"}"#,
        ];
        for case in cases {
            assert!(
                matches!(one(case), Err(PolicyError::Unsupported(_))),
                "{case}"
            );
        }
        assert!(matches!(
            one(r#"{"Effect": "Maybe", "Action": "iot:Connect", "Resource": "*"}"#),
            Err(PolicyError::Invalid(_))
        ));
        assert!(matches!(
            Policy::parse("[]", &ctx),
            Err(PolicyError::Invalid(_))
        ));
    }

    #[test]
    fn glob_matches_as_iam_wildcards() {
        assert!(glob(b"a*c", b"abbbc"));
        assert!(glob(b"a*", b"a"));
        assert!(glob(b"*", b""));
        assert!(glob(b"a?c", b"abc"));
        assert!(!glob(b"a?c", b"ac"));
        assert!(!glob(b"a*c", b"abcd"));
        assert!(glob(b"a*c*e", b"abcxcde"));
        assert!(
            glob(b"tags/+/cmd", b"tags/+/cmd"),
            "MQTT wildcards are literal here"
        );
    }
}
