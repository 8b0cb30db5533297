//! The monitoring centre's console in a real browser, through the whole local stack: the
//! stack and its console as `vigil-stack up --console` starts them, the web app built from
//! `functions/console/web`, and `e2e/console.mjs` driving Debian's Chromium with
//! playwright-core. The operator signs in; a tag then breaches its victim's home zone over
//! MQTT (mutual TLS, Basic Ingest, the rule bridge, ingest, the alert function); the breach
//! must appear in the queue as urgent within 10 s; the operator opens the order, sees the zone,
//! its buffer and the track, and acknowledges with a note; a second session with no token or a
//! tampered one gets nothing. Then the audit chain, read from the emulator, holds the
//! acknowledgement with the operator's identity. Last, `e2e/cognito.mjs`: the deployed
//! sign-in (authorization code with PKCE) against a stand-in for Cognito's managed sign-in.
//! The screenshots land in target/console-screenshots (docs/images with
//! `VIGIL_UPDATE_DOCS_IMAGES=1`).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use vigil_aws::ports::AuditLog;
use vigil_mqtt::tagsim::{self, Route, SimConfig};
use vigil_stack::console::{build_web, web_dir};
use vigil_stack::{LocalConsole, LocalStack, StackClock, StackOptions};
use vigil_testkit::{HOME, force, home_zone, order};

const NOTE: &str = "called her; unit dispatched";

/// The next line of the browser test's output that starts with `want`, within two minutes.
async fn next_line(
    lines: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    want: &str,
) -> Option<String> {
    tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.recv().await {
            if line.starts_with(want) {
                return Some(line);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}

#[tokio::test]
async fn an_operator_sees_the_breach_urgent_opens_the_order_and_acknowledges_it() {
    let chromium = Command::new("sh")
        .args(["-c", "command -v chromium"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .expect(
            "Chromium is needed for the console's browser test: tools/test.sh installs Debian's \
             (apt-get install chromium)",
        );
    let dist = tokio::task::spawn_blocking(build_web)
        .await
        .unwrap()
        .expect("the console's web app builds");

    let pki_dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("vigil-stack-{}-console", std::process::id()));
    let _ = std::fs::remove_dir_all(&pki_dir);
    let stack = LocalStack::start(StackOptions {
        pki_dir,
        clock: StackClock::Wall,
        ..StackOptions::default()
    })
    .await
    .expect("the local stack starts");
    let mut o1 = order();
    o1.force_id = Some(force("met"));
    stack.functions.provision(&o1, &[home_zone()]).await;
    let console = LocalConsole::start(&stack, dist, None)
        .await
        .expect("the console starts");

    // Screenshots: target/console-screenshots, or docs/images (docs/CONSOLE.md's) when
    // VIGIL_UPDATE_DOCS_IMAGES=1 asks for them to be refreshed.
    let shots = match std::env::var("VIGIL_UPDATE_DOCS_IMAGES").as_deref() {
        Ok("1") => vigil_local::workspace_root().join("docs/images"),
        _ => vigil_local::workspace_root().join("target/console-screenshots"),
    };
    let mut browser = Command::new("node")
        .arg("e2e/console.mjs")
        .current_dir(web_dir())
        .env("CONSOLE_URL", console.url())
        .env("CHROMIUM", &chromium)
        .env("ORDER", "o1")
        .env("ZONE", "home")
        .env("OPERATOR", "alice")
        .env("NOTE", NOTE)
        .env("URGENT_WITHIN_MS", "10000")
        .env("SCREENSHOTS", &shots)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs the browser test");
    let stdout = BufReader::new(browser.stdout.take().unwrap());
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            println!("browser: {line}");
            let _ = lines_tx.send(line);
        }
    });
    // Signed in: now the tag walks into the zone, as a tag publishes.
    let ready = next_line(&mut lines, "READY").await;
    if ready.is_none() {
        let out = browser.wait_with_output().unwrap();
        panic!(
            "the browser never got ready: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let pki = stack.pki.clone();
    let summary = tagsim::run(SimConfig {
        endpoint: stack.endpoint(),
        tags: vec!["tag-1".to_owned()],
        identity: Arc::new(move |tag| pki.client(tag)),
        route: Route::Track(
            [60.0, 30.0, 0.0]
                .iter()
                .map(|north_m| (HOME.0 + north_m / 111_250.0, HOME.1))
                .collect(),
        ),
        // 30 m a second: a walk the speed check accepts (a faster one is quarantined).
        report_interval: Duration::from_secs(1),
        max_fixes_per_tag: Some(3),
        duration: Duration::from_secs(20),
        accuracy_m: 10.0,
        events: false,
        seed: 1,
        progress: false,
        basic_ingest_rule: Some(format!("vigil_{}_ingest", stack.emulator().stage())),
    })
    .await;
    assert_eq!(summary.acked, 3, "{summary}");

    let acked = next_line(&mut lines, "ACKED").await;
    let status = tokio::task::spawn_blocking(move || browser.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        acked.is_some() && status.status.success(),
        "the browser test failed ({}):\n{}",
        status.status,
        String::from_utf8_lossy(&status.stderr)
    );

    // The audit chain in the emulator holds the acknowledgement, by the operator who signed in.
    let chain = stack
        .functions
        .store
        .read(&o1.order_id)
        .await
        .expect("the audit chain reads");
    let ack = chain
        .iter()
        .rev()
        .find(|r| r.kind == "alert_acknowledged")
        .unwrap_or_else(|| panic!("no acknowledgement in {chain:#?}"));
    assert_eq!(ack.detail["operator"], "local:alice");
    assert_eq!(ack.detail["zone_id"], "home");
    assert_eq!(ack.detail["note"], NOTE);
    assert_eq!(ack.detail["level"], "breach");

    // The deployed sign-in's flow (authorization code with PKCE, as Cognito's managed sign-in
    // serves it) against a stand-in identity provider, the API being this console's.
    // Off the runtime's thread: the console it signs in to is served by this runtime.
    let mut sign_in = Command::new("node");
    sign_in
        .arg("e2e/cognito.mjs")
        .current_dir(web_dir())
        .env("CONSOLE_URL", console.url())
        .env("CHROMIUM", &chromium)
        .env("OPERATOR", "alice");
    let cognito = tokio::task::spawn_blocking(move || sign_in.output())
        .await
        .unwrap()
        .expect("node runs the sign-in test");
    let out = String::from_utf8_lossy(&cognito.stdout);
    assert!(
        cognito.status.success()
            && out.contains("SIGNED_IN local:alice")
            && out.contains("STATE_REFUSED"),
        "the Cognito sign-in test failed ({}):\n{out}\n{}",
        cognito.status,
        String::from_utf8_lossy(&cognito.stderr)
    );
    drop(console);
    stack.stop().await;
}
