//! End to end with the real ingest binary: the bridge invokes it through `cargo lambda watch`'s
//! Invoke API (cargo-lambda from PyPI, from its hashed lock, installed when missing), wired to
//! the emulator by environment as in Lambda. The stack builds the function before it starts
//! `cargo lambda watch`, so the first invoke runs it at once.

use std::sync::Arc;
use std::time::Duration;

use vigil_mqtt::tagsim::{self, Route, SimConfig};
use vigil_stack::{IngestRunner, LocalStack, StackClock, StackOptions};
use vigil_testkit::{HOME, VICTIM_PHONE, home_zone, order};

#[tokio::test]
async fn the_ingest_binary_under_cargo_lambda_watch_texts_the_victim() {
    // The stack starts `cargo lambda watch` itself, with the emulator's environment, as
    // `vigil-stack up --cargo-lambda-watch` does.
    let pki_dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("vigil-stack-{}-lambda-watch", std::process::id()));
    let _ = std::fs::remove_dir_all(&pki_dir);
    let stack = LocalStack::start(StackOptions {
        pki_dir,
        clock: StackClock::Wall,
        ingest: IngestRunner::CargoLambdaWatch,
        ..StackOptions::default()
    })
    .await
    .expect("the stack starts with cargo lambda watch");
    let watch_log = stack
        .lambda_watch
        .get("ingest")
        .expect("the stack runs cargo lambda watch")
        .log()
        .to_owned();
    stack.functions.provision(&order(), &[home_zone()]).await;

    let sim_pki = stack.pki.clone();
    let summary = tagsim::run(SimConfig {
        endpoint: stack.endpoint(),
        tags: vec!["tag-1".to_owned()],
        identity: Arc::new(move |tag| sim_pki.client(tag)),
        route: Route::Track(vec![(HOME.0 + 400.0 / 111_250.0, HOME.1)]),
        report_interval: Duration::from_secs(1),
        max_fixes_per_tag: Some(1),
        duration: Duration::from_secs(20),
        accuracy_m: 10.0,
        events: false,
        seed: 1,
        progress: false,
        basic_ingest_rule: None,
    })
    .await;
    assert_eq!(summary.acked, 1, "{summary}");
    // Built before the stack started: the first invoke only starts the binary.
    let stats = stack
        .bridge
        .wait_until(Duration::from_secs(120), |s| s["ingest"].handled() >= 1)
        .await
        .unwrap_or_else(|s| panic!("not handled: {s:?}; log {}", watch_log.display()));
    assert_eq!(
        stats["ingest"].action_ok,
        1,
        "{:?}; log {}",
        stack.bridge.failures(),
        watch_log.display()
    );
    // The binary queued the alert event; the stack's alert function texted the victim.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let sms = loop {
        let sms = stack.functions.sms().await;
        if !sms.is_empty() || std::time::Instant::now() > deadline {
            break sms;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(sms.len(), 1, "{sms:#?}");
    assert_eq!(sms[0].phone_number, VICTIM_PHONE);
    stack.stop().await;
}
