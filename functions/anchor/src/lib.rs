//! The anchor function: for each batch of the audit table's stream, writes to the anchors
//! bucket (S3, Object Lock in compliance mode) the head of each chain that changed and the
//! content of every record that was overwritten or deleted (`vigil_core::anchor`;
//! docs/EVIDENCE.md).
//!
//! Its role may only put objects under `anchors/` (no read, no delete), and nobody may
//! shorten or remove an object's retention. Each object is kept for its order's force's
//! audit retention (`audit_retention_years`), or the longest of the deployment's forces when
//! the order's force is not known.
//!
//! Failures: an anchor that cannot be written fails the batch from its stream record on
//! (`batchItemFailures` with that record's sequence number), so Lambda retries from there and
//! nothing after it is skipped; the mapping retries without limit (a record is never dropped),
//! and the `IteratorAge` alarm says when anchoring falls behind. A record that cannot be read
//! as an audit record (not written by Vigil) is counted and logged, never anchored and never
//! retried; the chain it sits in then fails verification anyway.

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use vigil_aws::ports::{AnchorBucket, Metrics, OrderForces};
use vigil_core::OrderId;
use vigil_core::anchor::{Observed, StreamChange, anchors_of};
use vigil_core::audit::AuditRecord;
use vigil_core::forces::Forces;

/// An anchor's retention when neither its order's force nor any force is known: the
/// deployment's default (`infra/forces.json`'s default for `audit_retention_years`).
pub const DEFAULT_RETENTION_YEARS: u32 = 7;

/// What the function needs.
pub struct Ports<B, F, M> {
    /// The anchors bucket.
    pub bucket: B,
    /// The force of each order (its retention).
    pub orders: F,
    /// Counters.
    pub metrics: M,
    /// The forces of the deployment, read once per cold start; `None` when unreadable.
    pub forces: Option<Arc<Forces>>,
}

/// What one batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Stream records in the batch.
    pub records: usize,
    /// Anchors written (or found already written).
    pub anchored: usize,
    /// Records that were not audit records.
    pub unreadable: usize,
    /// The sequence number to retry from, when an anchor could not be written.
    pub retry_from: Option<String>,
}

impl Outcome {
    /// The partial batch response Lambda's stream mapping reads (`ReportBatchItemFailures`).
    pub fn response(&self) -> Value {
        json!({
            "batchItemFailures": self
                .retry_from
                .iter()
                .map(|s| json!({ "itemIdentifier": s }))
                .collect::<Vec<_>>()
        })
    }
}

/// Why a stream record is not an audit record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unreadable {
    /// No sequence number or event name.
    #[error("stream record {0} has no {1}")]
    Missing(usize, &'static str),
    /// An event name other than INSERT, MODIFY or REMOVE.
    #[error("stream record {0} has event name {1:?}")]
    EventName(usize, String),
    /// The image's `record` is not an audit record.
    #[error("stream record {0}: the {1} is not an audit record: {2}")]
    Record(usize, &'static str, String),
}

fn record_of(i: usize, dynamodb: &Value, image: &'static str) -> Result<AuditRecord, Unreadable> {
    let text = dynamodb
        .get(image)
        .and_then(|img| img.get("record"))
        .and_then(|r| r.get("S"))
        .and_then(Value::as_str)
        .ok_or(Unreadable::Record(i, image, "no `record` string".into()))?;
    serde_json::from_str(text).map_err(|e| Unreadable::Record(i, image, e.to_string()))
}

/// One stream record as a change: what it did and its sequence number.
pub fn change_of(i: usize, record: &Value) -> Result<(StreamChange, String), Unreadable> {
    let dynamodb = record.get("dynamodb").unwrap_or(&Value::Null);
    let sequence = dynamodb
        .get("SequenceNumber")
        .and_then(Value::as_str)
        .ok_or(Unreadable::Missing(i, "dynamodb.SequenceNumber"))?
        .to_owned();
    let name = record
        .get("eventName")
        .and_then(Value::as_str)
        .ok_or(Unreadable::Missing(i, "eventName"))?;
    let change = match name {
        "INSERT" => StreamChange::Inserted(record_of(i, dynamodb, "NewImage")?),
        "MODIFY" => StreamChange::Modified(record_of(i, dynamodb, "OldImage")?),
        "REMOVE" => StreamChange::Removed(record_of(i, dynamodb, "OldImage")?),
        other => return Err(Unreadable::EventName(i, other.to_owned())),
    };
    Ok((change, sequence))
}

fn years_of<F, B, M>(ports: &Ports<B, F, M>, force: Option<&vigil_core::ForceId>) -> u32 {
    let forces = ports.forces.as_deref();
    forces
        .and_then(|f| f.retention_years(force))
        .or_else(|| forces.and_then(|f| f.iter().map(|c| c.audit_retention_years).max()))
        .unwrap_or(DEFAULT_RETENTION_YEARS)
}

/// Handles one batch of the audit table's stream at `now_ms`.
pub async fn handle<B: AnchorBucket, F: OrderForces, M: Metrics>(
    event: &Value,
    ports: &Ports<B, F, M>,
    now_ms: i64,
) -> Outcome {
    let records = event
        .get("Records")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let mut outcome = Outcome {
        records: records.len(),
        ..Outcome::default()
    };
    let mut changes = Vec::with_capacity(records.len());
    // Indices into `records` of each readable change.
    let mut index = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        match change_of(i, r) {
            Ok(c) => {
                changes.push(c);
                index.push(i);
            }
            Err(e) => {
                outcome.unreadable += 1;
                ports
                    .metrics
                    .count("AnchorUnreadable", ("Function", "anchor"), 1);
                tracing::error!(error = %e, "audit stream record is not an audit record; not anchored");
            }
        }
    }
    let anchors = anchors_of(&changes, now_ms);
    for (_, a) in &anchors {
        if a.observed != Observed::Head {
            // Vigil never overwrites or deletes an audit record: this is the trace of someone
            // who did. Order and position only: no content.
            ports
                .metrics
                .count("AuditRecordRewritten", ("Observed", a.observed.as_str()), 1);
            tracing::error!(order_id = %a.order_id, seq = a.seq, observed = %a.observed,
                "an audit record was {} in the table; its content before is anchored",
                if a.observed == Observed::Modified { "overwritten" } else { "deleted" });
        }
    }
    let orders: Vec<OrderId> = anchors
        .iter()
        .map(|(_, a)| a.order_id.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    // The orders' forces; when they cannot be read, the longest retention (never shorter
    // than a force's policy).
    let forces = match ports.orders.order_forces(&orders).await {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(error = %e, "orders' forces unreadable; anchors kept for the longest retention");
            Default::default()
        }
    };
    let now = chrono::DateTime::from_timestamp_millis(now_ms).unwrap_or_default();
    let mut failed: Option<usize> = None;
    for (change, anchor) in &anchors {
        let force = forces.get(&anchor.order_id).and_then(Option::as_ref);
        let years = years_of(ports, force);
        let retain_until = now
            .checked_add_months(chrono::Months::new(12 * years))
            .unwrap_or(now);
        match ports.bucket.put_anchor(anchor, retain_until).await {
            Ok(()) => {
                outcome.anchored += 1;
                ports
                    .metrics
                    .count("Anchored", ("Observed", anchor.observed.as_str()), 1);
            }
            Err(e) => {
                tracing::error!(order_id = %anchor.order_id, seq = anchor.seq, error = %e, "anchor not written; the batch is retried from its record");
                ports
                    .metrics
                    .count("AnchorFailed", ("Function", "anchor"), 1);
                let i = index[*change];
                failed = Some(failed.map_or(i, |f| f.min(i)));
            }
        }
    }
    outcome.retry_from = failed.map(|i| {
        records[i]["dynamodb"]["SequenceNumber"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    });
    outcome
}
