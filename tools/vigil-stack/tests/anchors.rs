//! The anchor function on the emulator, wired as the stack wires it: the audit table's stream
//! (moto's DynamoDB streams) into the function, anchors into the bucket (moto's S3 with
//! Object Lock in compliance mode). What an insider's overwrite and delete leave there, and
//! that a locked anchor cannot be deleted.
//!
//! Not emulated: moto lets an object's compliance-mode retention be *shortened*
//! (`PutObjectRetention`), which AWS refuses; nothing here relies on it, and it is not tested.

use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vigil_aws::items;
use vigil_aws::ports::AuditLog;
use vigil_core::OrderId;
use vigil_core::anchor::{Anchor, Observed};
use vigil_core::audit::AuditRecord;
use vigil_local::BucketObject;
use vigil_stack::Functions;

const T0: i64 = 1_764_432_000_000;

async fn order(f: &Functions, id: &str) -> OrderId {
    let mut o = vigil_testkit::order();
    o.order_id = OrderId::new(id).unwrap();
    o.force_id = Some(vigil_testkit::force("met"));
    f.provision(&o, &[]).await;
    o.order_id
}

async fn append(f: &Functions, o: &OrderId, n: usize, at: i64) -> Vec<AuditRecord> {
    let mut out = vec![];
    for i in 0..n {
        let e = vigil_aws::ports::AuditEntry {
            kind: "zone_change".into(),
            detail: json!({"i": i}),
        };
        out.extend(f.store.append(o, &[e], at + i as i64).await.unwrap());
    }
    out
}

fn anchors(objects: &[BucketObject]) -> Vec<Anchor> {
    objects
        .iter()
        .map(|o| vigil_aws::evidence::anchor_from_object(&o.key, &o.body).unwrap())
        .collect()
}

#[tokio::test]
async fn each_chain_head_is_anchored_locked_and_an_insiders_rewrite_leaves_its_trace() {
    let f = Functions::start().await;
    anchored_locked_and_rewrites_traced(f).await;
}

#[tokio::test]
#[ignore = "needs Java 17 and npm (DynamoDB Local); tools/test.sh runs it"]
async fn on_dynamodb_local_each_chain_head_is_anchored_and_an_insiders_rewrite_leaves_its_trace() {
    let emulator = vigil_local::Emulator::start_with("local", vigil_local::DynamoDb::Local)
        .await
        .expect("emulator with DynamoDB Local starts");
    anchored_locked_and_rewrites_traced(Functions::on(emulator).unwrap()).await;
}

async fn anchored_locked_and_rewrites_traced(f: Functions) {
    let o = order(&f, "o-anchor").await;
    let chain = append(&f, &o, 3, T0).await;
    f.advance_clock(T0 + 5_000);
    let finished = f.drain_streams().await.unwrap();
    assert!(finished >= 3, "{finished}");

    let objects = f.emulator.bucket_objects("anchors").await.unwrap();
    let got = anchors(&objects);
    let heads: Vec<&Anchor> = got.iter().filter(|a| a.order_id == o).collect();
    assert_eq!(heads.len(), 1, "{got:?}");
    assert_eq!((heads[0].seq, &heads[0].hash), (3, &chain[2].hash));
    assert_eq!(heads[0].observed, Observed::Head);
    assert_eq!(heads[0].anchored_at_ms, T0 + 5_000, "the stack's clock");
    let head = objects.iter().find(|x| x.key == heads[0].key()).unwrap();
    assert_eq!(head.lock_mode.as_deref(), Some("COMPLIANCE"));
    let years = (head.retain_until_ms.unwrap() - (T0 + 5_000)) as f64 / (365.25 * 86_400_000.0);
    assert!((years - 7.0).abs() < 0.01, "met keeps 7 years: {years}");

    // A locked anchor cannot be deleted, not even by version.
    let bucket = f.emulator.bucket_name("anchors").unwrap();
    let refused = f
        .emulator
        .s3()
        .delete_object()
        .bucket(&bucket)
        .key(&head.key)
        .set_version_id(head.version_id.clone())
        .send()
        .await;
    assert!(refused.is_err(), "a locked anchor was deleted");
    assert_eq!(
        f.emulator.bucket_objects("anchors").await.unwrap().len(),
        objects.len()
    );

    // The insider: record 3 overwritten with a re-hashed forgery, record 2 deleted, straight
    // in the table with the SDK.
    let forged = AuditRecord::next(
        &o,
        Some(&chain[1]),
        T0 + 2,
        "zone_change",
        json!({"forged": true}),
    );
    let table = f.emulator.table_name("audit").unwrap().to_owned();
    let db = aws_sdk_dynamodb::Client::new(&f.emulator.sdk_config());
    db.put_item()
        .table_name(&table)
        .set_item(Some(items::audit_item(&forged)))
        .send()
        .await
        .unwrap();
    db.delete_item()
        .table_name(&table)
        .key("order_id", items::s(o.as_str()))
        .key(
            "seq",
            aws_sdk_dynamodb::types::AttributeValue::N("2".into()),
        )
        .send()
        .await
        .unwrap();
    f.drain_streams().await.unwrap();
    let got = anchors(&f.emulator.bucket_objects("anchors").await.unwrap());
    let traces: Vec<(u64, Observed, &str)> = got
        .iter()
        .filter(|a| a.order_id == o && a.observed != Observed::Head)
        .map(|a| (a.seq, a.observed, a.hash.as_str()))
        .collect();
    assert_eq!(
        traces,
        vec![
            (2, Observed::Removed, chain[1].hash.as_str()),
            (3, Observed::Modified, chain[2].hash.as_str()),
        ],
        "the content before, not the forgery"
    );
    assert_eq!(f.anchor.metrics.total("AuditRecordRewritten"), 2);
    // What is left in the table now fails against the anchors, naming record 2.
    let left = f.store.read(&o).await.unwrap();
    let findings = vigil_core::anchor::check_against_anchors(&left, &got, T0 + 10_000);
    assert!(!findings.is_empty());
}

#[tokio::test]
async fn under_the_stacks_event_sources_a_change_is_anchored_within_the_batching_window() {
    let f = Arc::new(Functions::start().await);
    let tasks = f.spawn_event_sources(vigil_mqtt::CompressedClock::starting_now(1.0));
    let o = order(&f, "o-window").await;
    let now = chrono::Utc::now().timestamp_millis();
    let chain = append(&f, &o, 2, now).await;
    let start = Instant::now();
    let deadline = vigil_stack::ANCHOR_WINDOW + Duration::from_secs(20);
    let anchored = loop {
        let got = anchors(&f.emulator.bucket_objects("anchors").await.unwrap());
        if let Some(a) = got.into_iter().find(|a| a.order_id == o && a.seq == 2) {
            break a;
        }
        assert!(
            start.elapsed() < deadline,
            "no anchor after {:?}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let waited = start.elapsed();
    println!(
        "ANCHORED after {:.1} s (window {:?})",
        waited.as_secs_f64(),
        vigil_stack::ANCHOR_WINDOW
    );
    assert_eq!(anchored.hash, chain[1].hash);
    assert!(
        waited >= vigil_stack::ANCHOR_WINDOW - Duration::from_secs(1),
        "gathered for the window: {waited:?}"
    );
    for t in tasks {
        t.abort();
    }
}
