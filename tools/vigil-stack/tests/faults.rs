//! Fault injection through the whole local stack (issue 11, hardening 2; docs/FAULTS.md): a
//! tag publishes over mutual TLS, the broker applies the tag policy, the bridge invokes
//! ingest, the alert function texts through the emulator's SNS, and in between the faults AWS
//! and networks have: the emulator unreachable, SNS failing, a function that runs out of
//! time, connections cut, alert events delivered twice and out of order. After each, every
//! expected SMS is sent exactly once, nothing is lost (what could not be processed is in a
//! dead-letter queue) and `vigil dlq` (the CLI's own code) inspects and redrives it.

use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, Packet, QoS};
use vigil_aws::ports::IngestStore;
use vigil_cli::dlq::{DeadLetterQueue, Queues};
use vigil_core::fix::encode_fix;
use vigil_core::{TagHistory, TagId};
use vigil_local::SentSms;
use vigil_stack::{LocalStack, StackOptions};
use vigil_testkit::{VICTIM_PHONE, fix_north, home_zone, order};

const TAG: &str = "tag-1";

/// A stack with the fault proxy, its own PKI and the testkit's order `o1` (home zone, 500 m
/// buffer).
async fn stack(name: &str, options: StackOptions) -> LocalStack {
    let pki_dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("vigil-faults-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&pki_dir);
    let stack = LocalStack::start(StackOptions {
        pki_dir,
        faults: true,
        ..options
    })
    .await
    .expect("the local stack starts");
    stack.functions.provision(&order(), &[home_zone()]).await;
    stack
}

/// `vigil dlq` as the CLI runs it, on the stack's env (Lambda at the stack's Invoke API).
fn dlq(stack: &LocalStack) -> Queues {
    let sdk = stack.emulator().sdk_config();
    let lambda = aws_sdk_lambda::config::Builder::from(&sdk)
        .endpoint_url(stack.invoke_api.url())
        .build();
    Queues::with_clients(
        aws_sdk_sqs::Client::new(&sdk),
        aws_sdk_lambda::Client::from_conf(lambda),
        stack.functions.config.clone(),
    )
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Publishes fix `seq` of tag-1, `north_m` metres north of home, taken `age_s` seconds ago,
/// as the tag would (QoS 1, over mutual TLS with its own certificate, its session kept);
/// returns once the broker acknowledged it. Fixes far apart are dated minutes apart, so the
/// speed check accepts them.
async fn publish(stack: &LocalStack, seq: u64, north_m: f64, age_s: i64) {
    let cert = stack.pki.client(TAG).unwrap();
    let options = vigil_mqtt::client::tag_options(&stack.endpoint(), TAG, &cert).unwrap();
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    let payload = encode_fix(&fix_north(seq, now_ms() - age_s * 1000, north_m));
    client
        .publish(format!("tags/{TAG}/fix"), QoS::AtLeastOnce, false, payload)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Event::Incoming(Packet::PubAck(_)) = eventloop.poll().await.expect("connected") {
                return;
            }
        }
    })
    .await
    .expect("the broker acknowledged the fix");
    let _ = client.disconnect().await;
}

/// Polls `check` every 200 ms until it returns `Some`, or panics naming `what` after `limit`.
async fn until<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The victim's SMS as the emulator recorded them (read again when a busy emulator is slow).
async fn victim_sms(stack: &LocalStack) -> Vec<SentSms> {
    let mut attempts = 0;
    let sms = loop {
        match stack.emulator().sent_sms().await {
            Ok(sms) => break sms,
            Err(e) if attempts < 5 => {
                attempts += 1;
                eprintln!("SMS read-back failed ({e}); again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => panic!("SMS read-back: {e}"),
        }
    };
    sms.into_iter()
        .filter(|s| s.phone_number == VICTIM_PHONE)
        .collect()
}

/// Waits for the victim's first SMS, then a while longer, and returns every SMS she got.
async fn settled_sms(stack: &LocalStack) -> Vec<SentSms> {
    until("the victim's SMS", Duration::from_secs(90), || async {
        let sms = victim_sms(stack).await;
        (!sms.is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    victim_sms(stack).await
}

async fn parked(stack: &LocalStack, queue: DeadLetterQueue) -> usize {
    dlq(stack)
        .list(Some(queue), 100)
        .await
        .unwrap()
        .messages
        .len()
}

async fn history(stack: &LocalStack) -> TagHistory {
    stack
        .functions
        .store
        .history(&TagId::new(TAG).unwrap())
        .await
        .unwrap()
}

/// A stack whose alert messages come back after 1 s, where a warning (fix 1, 400 m north,
/// dated `age_s` ago) failed five times while SNS answered 503 and is now parked in
/// `alerts-dlq`; SNS is still failing.
async fn warning_parked_while_sns_fails(name: &str, age_s: i64) -> LocalStack {
    let stack = stack(
        name,
        StackOptions {
            alert_retry_after: Some(Duration::from_secs(1)),
            ..StackOptions::default()
        },
    )
    .await;
    stack.faults.as_ref().unwrap().set_failing("sns", true);
    publish(&stack, 1, 400.0, age_s).await; // inside the 500 m buffer: a warning
    // Five failed deliveries, then the queue's redrive policy parks the event.
    until(
        "the warning in alerts-dlq",
        Duration::from_secs(120),
        || async { (parked(&stack, DeadLetterQueue::AlertsDlq).await == 1).then_some(()) },
    )
    .await;
    stack
}

#[tokio::test]
async fn sns_failing_parks_the_alert_and_a_redrive_texts_the_victim_once() {
    let stack = warning_parked_while_sns_fails("sns", 0).await;
    let faults = stack.faults.as_ref().unwrap();
    assert!(faults.stats().failed["sns"] >= 5, "{:?}", faults.stats());
    assert!(victim_sms(&stack).await.is_empty());
    let listed = dlq(&stack)
        .list(Some(DeadLetterQueue::AlertsDlq), 10)
        .await
        .unwrap();
    assert_eq!(listed.messages[0].subject, "o1");
    assert!(
        listed.messages[0].what.starts_with("zone_change "),
        "{listed:?}"
    );

    faults.set_failing("sns", false);
    let redriven = dlq(&stack)
        .redrive(DeadLetterQueue::AlertsDlq, None, 100)
        .await
        .unwrap();
    assert_eq!((redriven.moved.len(), redriven.left.len()), (1, 0));
    let sms = settled_sms(&stack).await;
    assert_eq!(sms.len(), 1, "{sms:#?}");
    assert!(sms[0].message.contains("may be"), "{}", sms[0].message);
    assert_eq!(parked(&stack, DeadLetterQueue::AlertsDlq).await, 0);
    let again = dlq(&stack)
        .redrive(DeadLetterQueue::AlertsDlq, None, 100)
        .await
        .unwrap();
    assert!(again.moved.is_empty());
    stack.stop().await;
}

#[tokio::test]
async fn the_emulator_unreachable_loses_no_fix_and_a_redrive_texts_the_victim_once() {
    let stack = stack("down", StackOptions::default()).await;
    publish(&stack, 1, 1_500.0, 120).await; // outside the buffer: accepted, no alert
    until(
        "the first fix in the history",
        Duration::from_secs(30),
        || async { (history(&stack).await.fixes.len() == 1).then_some(()) },
    )
    .await;

    // The functions' AWS endpoint goes away mid-scenario: ingest cannot read or write, the
    // bridge's retries run out, and the event is kept in rule-errors, not dropped.
    let faults = stack.faults.as_ref().unwrap();
    faults.set_down(true);
    publish(&stack, 2, 400.0, 0).await;
    until(
        "the fix in rule-errors",
        Duration::from_secs(60),
        || async { (parked(&stack, DeadLetterQueue::RuleErrors).await == 1).then_some(()) },
    )
    .await;
    assert!(faults.stats().refused > 0);
    let listed = dlq(&stack)
        .list(Some(DeadLetterQueue::RuleErrors), 10)
        .await
        .unwrap();
    assert_eq!(listed.messages[0].subject, TAG, "{listed:?}");
    assert!(victim_sms(&stack).await.is_empty());

    // Back: the redrive invokes ingest again with the kept event (through the Lambda Invoke
    // API, as in AWS); the breach warning reaches the victim once.
    faults.set_down(false);
    let redriven = dlq(&stack)
        .redrive(DeadLetterQueue::RuleErrors, None, 100)
        .await
        .unwrap();
    assert_eq!(
        (redriven.moved.len(), redriven.left.len()),
        (1, 0),
        "{redriven:?}"
    );
    let sms = settled_sms(&stack).await;
    assert_eq!(sms.len(), 1, "{sms:#?}");
    assert_eq!(history(&stack).await.fixes.len(), 2);
    assert_eq!(parked(&stack, DeadLetterQueue::RuleErrors).await, 0);
    stack.stop().await;
}

#[tokio::test]
async fn a_redrive_that_fails_again_leaves_the_event_parked() {
    let stack = stack("down-twice", StackOptions::default()).await;
    let faults = stack.faults.as_ref().unwrap();
    faults.set_down(true);
    publish(&stack, 1, 400.0, 0).await;
    until(
        "the fix in rule-errors",
        Duration::from_secs(60),
        || async { (parked(&stack, DeadLetterQueue::RuleErrors).await == 1).then_some(()) },
    )
    .await;
    // Still down: ingest fails again, the record stays, and the operator is told why.
    let redriven = dlq(&stack)
        .redrive(DeadLetterQueue::RuleErrors, None, 100)
        .await
        .unwrap();
    assert_eq!(redriven.moved.len(), 0);
    assert_eq!(redriven.left.len(), 1, "{redriven:?}");
    assert!(redriven.left[0].1.contains("failed again"), "{redriven:?}");
    assert_eq!(parked(&stack, DeadLetterQueue::RuleErrors).await, 1);
    stack.stop().await;
}

#[tokio::test]
async fn an_alert_function_that_times_out_mid_batch_texts_the_victim_once() {
    // The SMS request is swallowed (never reaches SNS) and the function runs out of time with
    // the event claimed. The batch comes back after the queue's visibility timeout (60 s);
    // the dead invocation's claim is stale by then (50 s) and the event is handled once.
    let stack = stack(
        "timeout",
        StackOptions {
            alert_timeout: Duration::from_secs(3),
            ..StackOptions::default()
        },
    )
    .await;
    let faults = stack.faults.as_ref().unwrap();
    faults.set_hang_after("sns", Some(0));
    publish(&stack, 1, 400.0, 0).await;
    until(
        "the alert function's timeout",
        Duration::from_secs(60),
        || async { (stack.functions.alert_timeouts() >= 1).then_some(()) },
    )
    .await;
    assert_eq!(faults.stats().swallowed["sns"], 1);
    faults.set_hang_after("sns", None);
    let sms = settled_sms(&stack).await;
    assert_eq!(sms.len(), 1, "{sms:#?}");
    assert_eq!(stack.functions.alert_timeouts(), 1);
    assert_eq!(parked(&stack, DeadLetterQueue::AlertsDlq).await, 0);
    stack.stop().await;
}

#[tokio::test]
async fn alert_events_delivered_twice_and_out_of_order_never_text_twice_or_stale() {
    // The warning (dated six minutes ago) fails into alerts-dlq while SNS is down.
    let stack = warning_parked_while_sns_fails("order", 360).await;
    let faults = stack.faults.as_ref().unwrap();
    faults.set_failing("sns", false);
    // The offender leaves: outside for four minutes, the zone is clear again (hysteresis:
    // three) before the warning is redriven.
    publish(&stack, 2, 1_500.0, 240).await;
    publish(&stack, 3, 1_500.0, 0).await;
    until("the all-clear handled", Duration::from_secs(30), || async {
        let m = &stack.functions.alert.metrics;
        (m.total("OperatorEvents") >= 1).then_some(())
    })
    .await;

    // A copy of the parked warning sent straight to the alerts queue (a second delivery), and
    // then the redrive (a third): the warning now arrives after the all-clear.
    let sqs = aws_sdk_sqs::Client::new(&stack.emulator().sdk_config());
    let dlq_url = stack.emulator().queue_url("alerts-dlq").unwrap().to_owned();
    let got = sqs
        .receive_message()
        .queue_url(&dlq_url)
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    let body = got.messages()[0].body().unwrap().to_owned();
    sqs.send_message()
        .queue_url(stack.emulator().queue_url("alerts").unwrap())
        .message_body(&body)
        .message_group_id("o1")
        .message_deduplication_id("copy-1")
        .send()
        .await
        .unwrap();
    let redriven = dlq(&stack)
        .redrive(DeadLetterQueue::AlertsDlq, None, 100)
        .await
        .unwrap();
    assert_eq!(redriven.moved.len(), 1);
    let metrics = &stack.functions.alert.metrics;
    until(
        "both deliveries of the warning handled",
        Duration::from_secs(30),
        || async {
            (metrics.get("SmsHeld", "superseded") + metrics.total("AlertDuplicate") >= 2)
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The warning is contradicted by the current state (the offender left): operators only.
    // Its second delivery is a duplicate. The victim, never warned, gets nothing at all.
    assert_eq!(metrics.get("SmsHeld", "superseded"), 1, "{metrics:?}");
    assert_eq!(metrics.total("AlertDuplicate"), 1, "{metrics:?}");
    assert!(
        victim_sms(&stack).await.is_empty(),
        "{:#?}",
        victim_sms(&stack).await
    );
    stack.stop().await;
}

#[tokio::test]
async fn cut_connections_of_the_bridge_and_of_a_tag_lose_no_fix() {
    let stack = stack("cut", StackOptions::default()).await;
    publish(&stack, 1, 1_500.0, 240).await;
    until("fix 1 handled", Duration::from_secs(30), || async {
        (history(&stack).await.fixes.len() == 1).then_some(())
    })
    .await;

    // The network drops the bridge's connection: it reconnects, subscribes again, and the
    // next fix is handled.
    let bridge_id = format!("vigil-bridge-ingest-{}", std::process::id());
    assert_eq!(stack.broker.cut_connections(&bridge_id), 1);
    stack
        .bridge
        .wait_until(Duration::from_secs(30), |s| s["ingest"].resubscribed >= 1)
        .await
        .expect("the bridge reconnected and subscribed again");
    publish(&stack, 2, 1_500.0, 180).await;
    until("fix 2 handled", Duration::from_secs(30), || async {
        (history(&stack).await.fixes.len() == 2).then_some(())
    })
    .await;

    // A tag's connection is cut while it has a fix in flight (published, not yet
    // acknowledged): the tag keeps its session, so it reconnects and sends the fix again;
    // ingest keeps it once.
    let cert = stack.pki.client(TAG).unwrap();
    let options = vigil_mqtt::client::tag_options(&stack.endpoint(), TAG, &cert).unwrap();
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    let mut acked = 0;
    let mut cut = 0;
    let payload = |seq| encode_fix(&fix_north(seq, now_ms(), 400.0));
    client
        .publish(
            format!("tags/{TAG}/fix"),
            QoS::AtLeastOnce,
            false,
            payload(3),
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked < 1 && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), eventloop.poll()).await {
            Ok(Ok(Event::Outgoing(rumqttc::Outgoing::Publish(_)))) if cut == 0 => {
                cut = stack.broker.cut_connections(TAG);
            }
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acked += 1,
            Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(200)).await,
            _ => {}
        }
    }
    assert_eq!(cut, 1, "the tag's connection was cut");
    assert_eq!(acked, 1, "the fix was sent again and acknowledged");
    let sms = settled_sms(&stack).await;
    assert_eq!(sms.len(), 1, "{sms:#?}");
    let h = history(&stack).await;
    assert_eq!(h.fixes.iter().filter(|f| f.seq == 3).count(), 1, "{h:#?}");
    stack.stop().await;
}
