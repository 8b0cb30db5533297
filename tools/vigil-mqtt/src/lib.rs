//! Vigil's MQTT side, for local runs and load tests: what AWS IoT Core does for Vigil, on one
//! machine, over real MQTT with mutual TLS.
//!
//! # Layout
//! - [`pki`]: a local CA, the broker's server certificate and one client certificate per tag
//!   (CN = tag id = thing name), as PEM files under `.local/pki/`.
//! - [`broker`]: [`LocalBroker`], rumqttd embedded on a free loopback port, requiring a client
//!   certificate from the local CA.
//! - [`policy`]: [`Policy`], the shipped tag policy (`infra/iot/tag-policy.json`) evaluated as
//!   IoT Core does; [`front`]: the broker's TLS front door, which authenticates each client by
//!   its certificate and applies the policy to every CONNECT, PUBLISH and SUBSCRIBE.
//! - [`client`]: [`Endpoint`] and the rumqttc options (mTLS, ALPN on 443) shared by the bridge
//!   and the simulator, for the local broker and for AWS IoT Core.
//! - [`sql`]: the subset of IoT SQL the rule files use: parser (errors with columns) and
//!   evaluator (IoT Core's semantics for JSON and non-JSON payloads).
//! - [`action`]: [`RuleAction`] and its implementations (Lambda in-process, Lambda over the
//!   Invoke API, DynamoDB PutItem), and [`RuleTargets`], which rule gets which action.
//! - [`bridge`]: [`Bridge`], the rules engine on the local broker: one subscription per rule
//!   file, evaluation with an injectable [`Clock`], actions, counters and the error path.
//! - [`lambda_watch`]: [`LambdaWatch`], `cargo lambda watch` as a child process (pinned
//!   cargo-lambda from PyPI in `.local/venv-cargo-lambda`), for the real function binaries.
//! - [`tagsim`]: the tag simulator behind the `vigil-tagsim` binary: many tags publishing fixes
//!   and events (QoS 1), obeying `tags/{tag}/cmd`, bounded in count and time.
//!
//! Binaries: `vigil-tagsim` (the simulator) and `vigil-mqtt` (`pki`: make certificates; `up`:
//! run the broker and the bridge against a running emulator). Guide: `docs/MQTT.md`.

pub mod action;
pub mod bridge;
pub mod broker;
pub mod client;
pub mod front;
pub mod lambda_watch;
pub mod pki;
pub mod policy;
pub mod sql;
pub mod tagsim;

pub use action::{ActionError, DynamoPut, HttpLambda, InProcessLambda, RuleAction, RuleTargets};
pub use bridge::{
    Anchor, Bridge, BridgeOptions, Clock, CompressedClock, RuleFile, RuleStats, ScenarioClock,
    WallClock, load_rules,
};
pub use broker::LocalBroker;
pub use client::Endpoint;
pub use lambda_watch::LambdaWatch;
pub use pki::{CertPair, Pki};
pub use policy::{Policies, Policy, PolicyContext};
pub use sql::{Evaluation, Message, RuleOutput, Statement};
