//! End to end with the real ingest binary: the bridge invokes it through `cargo lambda watch`'s
//! Invoke API (cargo-lambda from PyPI, pinned, installed when missing), wired to the emulator
//! by environment as in Lambda. The first invoke builds the function.

mod common;

use std::sync::Arc;
use std::time::Duration;

use vigil_core::{ProtectionOrder, Zone};
use vigil_mqtt::bridge::{Bridge, default_rules_dir, load_rules};
use vigil_mqtt::pki::BRIDGE_CLIENT_ID;
use vigil_mqtt::tagsim::{self, Route, SimConfig};
use vigil_mqtt::{HttpLambda, LambdaWatch, RuleAction, RuleTargets, WallClock};
use vigil_pipeline::Pipeline;

const HOME: (f64, f64) = (51.5, -0.12);

#[tokio::test]
async fn the_ingest_binary_under_cargo_lambda_watch_queues_the_alert() {
    let pipeline = Pipeline::start().await;
    let order: ProtectionOrder = serde_json::from_value(serde_json::json!({
        "order_id": "o1", "tag_id": "tag-lw",
        "victim": {"victim_id": "v1", "phone": "+447700900123", "language": "en"}
    }))
    .unwrap();
    let home: Zone = serde_json::from_value(serde_json::json!({
        "zone_id": "home", "kind": "home", "circle": {"lat": HOME.0, "lon": HOME.1, "radius_m": 100},
        "buffer_m": 500, "order_id": "o1"
    }))
    .unwrap();
    pipeline.provision(&order, &[home]).await;

    let function_dir = vigil_local::workspace_root()
        .join("functions")
        .join("ingest");
    let env = pipeline.emulator.env_vars();
    let watch = tokio::task::spawn_blocking(move || LambdaWatch::start(&function_dir, &env))
        .await
        .unwrap()
        .expect("cargo lambda watch starts");

    let (pki, broker) = common::broker("lambda-watch");
    let ingest: Arc<dyn RuleAction> = Arc::new(HttpLambda::new(&watch.url(), "ingest"));
    let actions = RuleTargets::default()
        .build(
            |f| (f == "ingest").then(|| ingest.clone()),
            &aws_sdk_dynamodb::Client::new(&pipeline.emulator.sdk_config()),
            |t| pipeline.emulator.table_name(t).ok().map(str::to_owned),
        )
        .unwrap();
    let bridge = Bridge::start(
        &broker.endpoint(),
        &pki.client(BRIDGE_CLIENT_ID).unwrap(),
        load_rules(&default_rules_dir()).unwrap(),
        actions,
        Arc::new(WallClock),
    )
    .await
    .unwrap();
    let sim_pki = pki.clone();
    let summary = tagsim::run(SimConfig {
        endpoint: broker.endpoint(),
        tags: vec!["tag-lw".to_owned()],
        identity: Arc::new(move |tag| sim_pki.client(tag)),
        route: Route::Track(vec![(HOME.0 + 400.0 / 111_250.0, HOME.1)]),
        report_interval: Duration::from_secs(1),
        max_fixes_per_tag: Some(1),
        duration: Duration::from_secs(20),
        accuracy_m: 10.0,
        events: false,
        seed: 1,
        progress: false,
    })
    .await;
    assert_eq!(summary.acked, 1, "{summary}");
    // The first invoke compiles the function: allow for a cold build on two cores.
    let stats = bridge
        .wait_until(Duration::from_secs(900), |s| s["ingest"].handled() >= 1)
        .await
        .unwrap_or_else(|s| panic!("not handled: {s:?}; log {}", watch.log().display()));
    assert_eq!(
        stats["ingest"].action_ok,
        1,
        "{:?}; log {}",
        bridge.failures(),
        watch.log().display()
    );
    let sqs = aws_sdk_sqs::Client::new(&pipeline.emulator.sdk_config());
    let received = sqs
        .receive_message()
        .queue_url(pipeline.config.alerts_queue_url().unwrap())
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    assert_eq!(received.messages().len(), 1, "{received:?}");
    let body: serde_json::Value =
        serde_json::from_str(received.messages()[0].body().unwrap()).unwrap();
    assert_eq!(body["tag_id"], "tag-lw");
    bridge.stop().await;
    drop(watch);
}
