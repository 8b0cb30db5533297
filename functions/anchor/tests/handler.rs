//! The anchor function over the in-memory ports: what a batch of the audit table's stream
//! anchors, for how long, and what happens when the bucket fails or a record is not Vigil's.

use serde_json::{Value, json};
use std::sync::Arc;
use vigil_anchor::{Ports, handle};
use vigil_aws::memory::{MemoryAnchors, MemoryStore};
use vigil_aws::metrics::MemoryMetrics;
use vigil_aws::ports::AdminStore;
use vigil_core::OrderId;
use vigil_core::anchor::Observed;
use vigil_core::audit::AuditRecord;
use vigil_core::forces::Forces;

const NOW: i64 = 1_764_432_000_000;

/// Two forces: met keeps its audit 7 years, tvp 12.
fn forces() -> Forces {
    let mut doc: Value = serde_json::from_str(include_str!("../../../infra/forces.json")).unwrap();
    for f in doc["forces"].as_array_mut().unwrap() {
        if f["id"] == "tvp" {
            f["audit_retention_years"] = json!(12);
        }
    }
    Forces::parse(&doc.to_string()).unwrap()
}

fn chain(order: &str, n: usize) -> Vec<AuditRecord> {
    let order = OrderId::new(order).unwrap();
    let mut out: Vec<AuditRecord> = vec![];
    for i in 0..n {
        let r = AuditRecord::next(
            &order,
            out.last(),
            NOW + i as i64,
            "zone_change",
            json!({"i": i}),
        );
        out.push(r);
    }
    out
}

fn image(r: &AuditRecord) -> Value {
    json!({
        "order_id": {"S": r.order_id.as_str()},
        "seq": {"N": r.seq.to_string()},
        "record": {"S": serde_json::to_string(r).unwrap()},
    })
}

/// A stream record as Lambda delivers it.
fn stream(name: &str, seq: u64, r: &AuditRecord) -> Value {
    let mut d = json!({
        "Keys": {"order_id": {"S": r.order_id.as_str()}, "seq": {"N": r.seq.to_string()}},
        "SequenceNumber": format!("{:021}", seq),
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    });
    match name {
        "INSERT" => d["NewImage"] = image(r),
        "REMOVE" => d["OldImage"] = image(r),
        _ => {
            d["OldImage"] = image(r);
            let mut forged = r.clone();
            forged.detail = json!({"forged": true});
            d["NewImage"] = image(&forged);
        }
    }
    json!({"eventID": format!("e{seq}"), "eventName": name, "eventSource": "aws:dynamodb", "dynamodb": d})
}

async fn ports(forces: Option<Forces>) -> Ports<MemoryAnchors, MemoryStore, MemoryMetrics> {
    let store = MemoryStore::new();
    for (id, force) in [("o-met", "met"), ("o-tvp", "tvp")] {
        let mut o = vigil_testkit::order();
        o.order_id = OrderId::new(id).unwrap();
        o.force_id = Some(vigil_testkit::force(force));
        store.put_order(&o).await.unwrap();
    }
    Ports {
        bucket: MemoryAnchors::new(),
        orders: store,
        metrics: MemoryMetrics::default(),
        forces: forces.map(Arc::new),
    }
}

fn years(until: chrono::DateTime<chrono::Utc>) -> i64 {
    (until.timestamp_millis() - NOW) / (365 * 86_400_000)
}

#[tokio::test]
async fn a_batch_anchors_each_chains_head_for_its_forces_retention() {
    let p = ports(Some(forces())).await;
    let met = chain("o-met", 3);
    let tvp = chain("o-tvp", 2);
    let unknown = chain("o-gone", 1);
    let event = json!({"Records": [
        stream("INSERT", 1, &met[0]),
        stream("INSERT", 2, &tvp[0]),
        stream("INSERT", 3, &met[1]),
        stream("INSERT", 4, &met[2]),
        stream("INSERT", 5, &tvp[1]),
        stream("INSERT", 6, &unknown[0]),
    ]});
    let out = handle(&event, &p, NOW).await;
    assert_eq!((out.records, out.anchored, out.unreadable), (6, 3, 0));
    assert_eq!(out.response(), json!({"batchItemFailures": []}));
    let objects = p.bucket.objects();
    let got: Vec<(String, u64, i64)> = objects
        .iter()
        .map(|(_, a, t)| (a.order_id.to_string(), a.seq, years(*t)))
        .collect();
    assert_eq!(
        got,
        vec![
            ("o-gone".to_owned(), 1, 12), // no force known: the longest
            ("o-met".to_owned(), 3, 7),
            ("o-tvp".to_owned(), 2, 12),
        ]
    );
    let (key, a, _) = &objects[1];
    assert_eq!(
        key,
        &format!("anchors/o-met/000000000003-{}-head.json", met[2].hash)
    );
    assert_eq!(
        (a.hash.as_str(), a.observed, a.anchored_at_ms),
        (met[2].hash.as_str(), Observed::Head, NOW)
    );
    assert_eq!(a.stream_sequence, format!("{:021}", 4));
    assert_eq!(p.metrics.get("Anchored", "head"), 3);

    // The same batch again (Lambda retries a batch): the same objects, nothing new.
    handle(&event, &p, NOW + 1000).await;
    assert_eq!(p.bucket.objects().len(), 3);
    assert_eq!(
        p.bucket.objects()[1].1.anchored_at_ms,
        NOW,
        "first write stands"
    );
}

#[tokio::test]
async fn an_overwritten_or_deleted_record_is_anchored_as_it_was_and_counted() {
    let p = ports(None).await;
    let met = chain("o-met", 3);
    let event = json!({"Records": [
        stream("MODIFY", 7, &met[1]),
        stream("REMOVE", 8, &met[2]),
    ]});
    let out = handle(&event, &p, NOW).await;
    assert_eq!(out.anchored, 2);
    let seen: Vec<(u64, Observed, String)> = p
        .bucket
        .objects()
        .into_iter()
        .map(|(_, a, t)| (a.seq, a.observed, format!("{}y", years(t))))
        .collect();
    // The content before, not the forgery; no forces readable: the default retention.
    assert_eq!(
        seen,
        vec![
            (2, Observed::Modified, "7y".into()),
            (3, Observed::Removed, "7y".into())
        ]
    );
    assert_eq!(p.bucket.objects()[0].1.hash, met[1].hash);
    assert_eq!(p.metrics.get("AuditRecordRewritten", "modified"), 1);
    assert_eq!(p.metrics.get("AuditRecordRewritten", "removed"), 1);
}

#[tokio::test]
async fn a_failed_write_retries_the_batch_from_its_record_and_nothing_is_skipped() {
    let p = ports(Some(forces())).await;
    let met = chain("o-met", 2);
    let event = json!({"Records": [stream("INSERT", 10, &met[0]), stream("INSERT", 11, &met[1])]});
    p.bucket.fail_writes(true);
    let out = handle(&event, &p, NOW).await;
    assert_eq!(out.anchored, 0);
    // The head is record 2 (stream record 11): Lambda retries from there; record 1 is covered by it.
    assert_eq!(
        out.response(),
        json!({"batchItemFailures": [{"itemIdentifier": format!("{:021}", 11)}]})
    );
    assert_eq!(p.metrics.total("AnchorFailed"), 1);
    p.bucket.fail_writes(false);
    let retried = json!({"Records": [stream("INSERT", 11, &met[1])]});
    assert_eq!(handle(&retried, &p, NOW).await.retry_from, None);
    assert_eq!(p.bucket.objects()[0].1.seq, 2);
}

#[tokio::test]
async fn a_record_that_is_not_an_audit_record_is_counted_not_anchored_not_retried() {
    let p = ports(Some(forces())).await;
    let met = chain("o-met", 1);
    let mut garbage = stream("INSERT", 20, &met[0]);
    garbage["dynamodb"]["NewImage"]["record"] = json!({"S": "{not json"});
    let mut no_name = stream("INSERT", 21, &met[0]);
    no_name.as_object_mut().unwrap().remove("eventName");
    let event = json!({"Records": [garbage, no_name, stream("INSERT", 22, &met[0])]});
    let out = handle(&event, &p, NOW).await;
    assert_eq!((out.unreadable, out.anchored, out.retry_from), (2, 1, None));
    assert_eq!(p.metrics.total("AnchorUnreadable"), 2);
    // Not a stream event at all: nothing to do, nothing fails.
    let out = handle(&json!({"hello": 1}), &p, NOW).await;
    assert_eq!((out.records, out.anchored), (0, 0));
}
