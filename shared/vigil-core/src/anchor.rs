//! Anchors: what an order's audit chain held, written where no function or operator can
//! rewrite it (an S3 bucket with Object Lock in compliance mode), and checking a chain against
//! them (docs/EVIDENCE.md).
//!
//! The hash chain ([`crate::audit`]) catches a record changed or removed in the middle, but
//! not a chain rewritten from some record onwards with fresh hashes, nor one cut short. The
//! anchor function reads the audit table's stream and writes, for each batch, the newest record
//! of each changed chain ([`Observed::Head`]), and the stored content of every record that was
//! overwritten ([`Observed::Modified`]) or deleted ([`Observed::Removed`]): the service never
//! does either, so each such anchor is itself the trace of a rewrite. A chain verifies against
//! its anchors only if it holds, at every anchored position, the anchored hash.

use crate::audit::AuditRecord;
use crate::ids::OrderId;
use serde::{Deserialize, Serialize};

/// The format version of an anchor object.
pub const ANCHOR_VERSION: u32 = 1;

/// Where in the bucket anchors live; each order's under `anchors/<order id>/`.
pub const ANCHOR_PREFIX: &str = "anchors/";

/// The longest a record may wait for its anchor when everything runs: the stream's batching
/// window (10 s), the stream's own delay (under a second, typically) and the anchor function's
/// retries, with a margin. The `IteratorAge` alarm fires beyond it (docs/EVIDENCE.md). A
/// record recorded longer than this before an export and covered by no anchor is a finding.
pub const ANCHOR_LAG_MAX_MS: i64 = 5 * 60 * 1000;

/// How the anchor function saw the record it anchors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Observed {
    /// The newest record of its chain written in a batch of the stream (an insert).
    Head,
    /// A stored record's content before it was overwritten (never done by Vigil).
    Modified,
    /// A stored record's content before it was deleted (never done by Vigil).
    Removed,
}

impl Observed {
    /// Its name, as in the object key and the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Observed::Head => "head",
            Observed::Modified => "modified",
            Observed::Removed => "removed",
        }
    }
}

impl std::fmt::Display for Observed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One anchor: an order's record `seq` had hash `hash` when the anchor function saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Anchor {
    /// [`ANCHOR_VERSION`].
    pub v: u32,
    /// The chain's order.
    pub order_id: OrderId,
    /// The record's position in the chain.
    pub seq: u64,
    /// The record's hash as stored.
    pub hash: String,
    /// When the record says it was recorded (Unix ms).
    pub recorded_at_ms: i64,
    /// When the anchor function wrote the anchor (its clock, Unix ms).
    pub anchored_at_ms: i64,
    /// How it was seen.
    pub observed: Observed,
    /// The stream record it came from (its sequence number): where an investigator finds it in
    /// the function's logs.
    pub stream_sequence: String,
}

impl Anchor {
    /// The anchor of `record`, seen as `observed` in stream record `stream_sequence`.
    pub fn of(
        record: &AuditRecord,
        observed: Observed,
        anchored_at_ms: i64,
        stream_sequence: &str,
    ) -> Anchor {
        Anchor {
            v: ANCHOR_VERSION,
            order_id: record.order_id.clone(),
            seq: record.seq,
            hash: record.hash.clone(),
            recorded_at_ms: record.recorded_at_ms,
            anchored_at_ms,
            observed,
            stream_sequence: stream_sequence.to_owned(),
        }
    }

    /// Its object key: `anchors/<order>/<seq, 12 digits>-<hash>-<observed>.json`. The same fact
    /// seen twice (a retried batch) has the same key, so writing it again changes nothing; a
    /// different hash at the same position has another key, so a rewrite can never replace an
    /// anchor. Order ids are `[A-Za-z0-9._-]`, safe in a key.
    pub fn key(&self) -> String {
        format!(
            "{}{:012}-{}-{}.json",
            order_prefix(&self.order_id),
            self.seq,
            self.hash,
            self.observed
        )
    }
}

/// The prefix of an order's anchors.
pub fn order_prefix(order_id: &OrderId) -> String {
    format!("{ANCHOR_PREFIX}{order_id}/")
}

/// What one batch of the audit table's stream gives the anchor function, in stream order.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamChange {
    /// A record written where none was.
    Inserted(AuditRecord),
    /// A record overwritten: its content before.
    Modified(AuditRecord),
    /// A record deleted: its content before.
    Removed(AuditRecord),
}

/// The anchors a batch of stream changes gives: for each order, its newest inserted record
/// ([`Observed::Head`]: it covers every record before it, through the chain), and every
/// overwritten or deleted record's content before. Each paired with the index of the change it
/// came from (for partial batch failures). Sorted by order, then seq.
pub fn anchors_of(changes: &[(StreamChange, String)], anchored_at_ms: i64) -> Vec<(usize, Anchor)> {
    let mut heads: std::collections::BTreeMap<&OrderId, (usize, &AuditRecord, &str)> =
        std::collections::BTreeMap::new();
    let mut out = Vec::new();
    for (i, (change, sequence)) in changes.iter().enumerate() {
        match change {
            StreamChange::Inserted(r) => {
                let newer = heads.get(&r.order_id).is_none_or(|(_, h, _)| r.seq > h.seq);
                if newer {
                    heads.insert(&r.order_id, (i, r, sequence));
                }
            }
            StreamChange::Modified(r) => {
                out.push((
                    i,
                    Anchor::of(r, Observed::Modified, anchored_at_ms, sequence),
                ));
            }
            StreamChange::Removed(r) => {
                out.push((
                    i,
                    Anchor::of(r, Observed::Removed, anchored_at_ms, sequence),
                ));
            }
        }
    }
    out.extend(
        heads
            .into_values()
            .map(|(i, r, s)| (i, Anchor::of(r, Observed::Head, anchored_at_ms, s))),
    );
    out.sort_by(|(_, a), (_, b)| (&a.order_id, a.seq).cmp(&(&b.order_id, b.seq)));
    out
}

/// Where a chain and its anchors disagree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnchorFinding {
    /// The chain's record at an anchored position has another hash: the chain was rewritten.
    #[error(
        "record {seq} disagrees with its anchor of {anchored_at} ({observed}): anchored hash {anchored}, the chain's {found}; {since}"
    )]
    Disagrees {
        /// The anchored position.
        seq: u64,
        /// When it was anchored (RFC 3339).
        anchored_at: String,
        /// How the anchor saw it.
        observed: Observed,
        /// The anchored hash (first 16 hex digits).
        anchored: String,
        /// The chain's hash there (first 16 hex digits).
        found: String,
        /// Where the rewrite starts, as far as the anchors tell.
        since: String,
    },
    /// The chain ends before an anchored position: records were cut off.
    #[error(
        "record {seq} was anchored at {anchored_at} ({observed}) but the chain ends at record {last}: {}",
        removed(*.from, *.seq)
    )]
    Truncated {
        /// The anchored position.
        seq: u64,
        /// When it was anchored (RFC 3339).
        anchored_at: String,
        /// How the anchor saw it.
        observed: Observed,
        /// The chain's last record (0: none).
        last: u64,
        /// The first record missing.
        from: u64,
    },
    /// An anchor of another order was given.
    #[error("an anchor of record {seq} belongs to order {found}, not {expected}")]
    WrongOrder {
        /// Its position.
        seq: u64,
        /// Its order.
        found: String,
        /// The chain's order.
        expected: String,
    },
    /// Records old enough to have been anchored are covered by no anchor.
    #[error(
        "records {from} to {to} were recorded more than {lag_min} minutes before the export but no anchor covers them (the anchor function was not running, or anchors were left out)"
    )]
    Unanchored {
        /// The first record not covered.
        from: u64,
        /// The last record recorded long enough before the export.
        to: u64,
        /// The allowed lag, in minutes.
        lag_min: i64,
    },
}

fn removed(from: u64, to: u64) -> String {
    if from == to {
        format!("record {to} was removed")
    } else {
        format!("records {from} to {to} were removed")
    }
}

fn short(hash: &str) -> String {
    hash.chars().take(16).collect()
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || format!("{ms} ms"),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}

/// Checks a chain (`records`, in seq order from 1, already verified as a chain) against
/// `anchors` for the same order, and that every record recorded at least
/// [`ANCHOR_LAG_MAX_MS`] before `exported_at_ms` is covered by an anchor at or after it.
/// Returns every finding, the first-disagreeing first (by seq).
///
/// Because each record's hash covers the one before it, a chain that holds the anchored hash at
/// position `n` holds, unchanged, every record up to `n` as it was when anchored. So the first
/// record that disagrees is after the last anchor the chain agrees with and at or before the
/// first it disagrees with; with an anchor of every overwritten record (the stream gives them),
/// it is named exactly.
pub fn check_against_anchors(
    records: &[AuditRecord],
    anchors: &[Anchor],
    exported_at_ms: i64,
) -> Vec<AnchorFinding> {
    let mut findings = Vec::new();
    let Some(order) = records
        .first()
        .map(|r| &r.order_id)
        .or(anchors.first().map(|a| &a.order_id))
    else {
        return findings;
    };
    let mut sorted: Vec<&Anchor> = anchors.iter().collect();
    // At one position, an overwritten or deleted record's anchor first: it names exactly
    // where a rewrite starts.
    sorted.sort_by_key(|a| (a.seq, a.observed == Observed::Head, a.anchored_at_ms));
    let last = records.last().map_or(0, |r| r.seq);
    let mut last_agreeing: Option<u64> = None;
    let mut disagreed = false;
    for a in &sorted {
        if a.order_id != *order {
            findings.push(AnchorFinding::WrongOrder {
                seq: a.seq,
                found: a.order_id.to_string(),
                expected: order.to_string(),
            });
            continue;
        }
        let at = rfc3339(a.anchored_at_ms);
        match records.get((a.seq as usize).wrapping_sub(1)) {
            Some(r) if r.seq == a.seq && r.hash == a.hash => {
                if !disagreed {
                    last_agreeing = Some(a.seq);
                }
            }
            Some(r) => {
                disagreed = true;
                let since = match (a.observed, last_agreeing) {
                    // The stream gives the content of every overwritten or deleted record, so
                    // the first such anchor the chain disagrees with is the first record
                    // changed.
                    (Observed::Modified, _) => format!(
                        "record {} was overwritten in the table: the chain was rewritten from record {}",
                        a.seq, a.seq
                    ),
                    (Observed::Removed, _) => format!(
                        "record {} was deleted from the table: the chain was rewritten from record {}",
                        a.seq, a.seq
                    ),
                    (Observed::Head, Some(p)) if p + 1 == a.seq => {
                        format!("the chain was rewritten from record {}", a.seq)
                    }
                    (Observed::Head, Some(p)) => format!(
                        "the rewrite starts after record {p} (which agrees with its anchor) and at or before record {}",
                        a.seq
                    ),
                    (Observed::Head, None) if a.seq == 1 => {
                        "the chain was rewritten from record 1".to_owned()
                    }
                    (Observed::Head, None) => {
                        format!("the rewrite starts at or before record {}", a.seq)
                    }
                };
                findings.push(AnchorFinding::Disagrees {
                    seq: a.seq,
                    anchored_at: at,
                    observed: a.observed,
                    anchored: short(&a.hash),
                    found: short(&r.hash),
                    since,
                });
            }
            None => {
                disagreed = true;
                findings.push(AnchorFinding::Truncated {
                    seq: a.seq,
                    anchored_at: at,
                    observed: a.observed,
                    last,
                    from: last + 1,
                });
            }
        }
    }
    // Coverage: the newest record an anchor of this chain reaches (agreeing or not: a
    // disagreement is reported above), against the records old enough to need one.
    let covered = sorted
        .iter()
        .filter(|a| a.order_id == *order)
        .map(|a| a.seq)
        .max()
        .unwrap_or(0);
    let due: Vec<&AuditRecord> = records
        .iter()
        .filter(|r| r.seq > covered && r.recorded_at_ms <= exported_at_ms - ANCHOR_LAG_MAX_MS)
        .collect();
    if let (Some(from), Some(to)) = (due.first(), due.last()) {
        findings.push(AnchorFinding::Unanchored {
            from: from.seq,
            to: to.seq,
            lag_min: ANCHOR_LAG_MAX_MS / 60_000,
        });
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::verify_chain;
    use serde_json::json;

    const T0: i64 = 1_764_432_000_000;

    fn order() -> OrderId {
        OrderId::new("o-1").unwrap()
    }

    fn extend(chain: &mut Vec<AuditRecord>, n: usize, tag: &str) {
        for _ in 0..n {
            let seq = chain.len() as i64;
            let r = AuditRecord::next(
                &order(),
                chain.last(),
                T0 + seq * 1000,
                "zone_change",
                json!({"i": seq, "by": tag}),
            );
            chain.push(r);
        }
    }

    fn chain(n: usize) -> Vec<AuditRecord> {
        let mut c = vec![];
        extend(&mut c, n, "service");
        c
    }

    /// Anchors as the anchor function makes them: one head per batch of `every` inserts.
    fn heads(chain: &[AuditRecord], every: usize) -> Vec<Anchor> {
        chain
            .chunks(every)
            .map(|batch| {
                let changes: Vec<_> = batch
                    .iter()
                    .map(|r| (StreamChange::Inserted(r.clone()), format!("s{}", r.seq)))
                    .collect();
                anchors_of(&changes, T0 + 60_000).remove(0).1
            })
            .collect()
    }

    const LATE: i64 = T0 + 3_600_000;

    #[test]
    fn a_batch_anchors_each_orders_newest_insert_and_every_old_image() {
        let c = chain(4);
        let other = AuditRecord::next(&OrderId::new("o-2").unwrap(), None, T0, "k", json!({}));
        let changes = vec![
            (StreamChange::Inserted(c[0].clone()), "1".to_owned()),
            (StreamChange::Inserted(other.clone()), "2".to_owned()),
            (StreamChange::Inserted(c[2].clone()), "3".to_owned()),
            (StreamChange::Inserted(c[1].clone()), "4".to_owned()),
            (StreamChange::Modified(c[3].clone()), "5".to_owned()),
            (StreamChange::Removed(c[1].clone()), "6".to_owned()),
        ];
        let got: Vec<(usize, u64, Observed)> = anchors_of(&changes, T0)
            .into_iter()
            .map(|(i, a)| (i, a.seq, a.observed))
            .collect();
        assert_eq!(
            got,
            vec![
                (5, 2, Observed::Removed),
                (2, 3, Observed::Head),
                (4, 4, Observed::Modified),
                (1, 1, Observed::Head),
            ]
        );
        let a = Anchor::of(&c[2], Observed::Head, T0, "3");
        assert_eq!(
            a.key(),
            format!("anchors/o-1/000000000003-{}-head.json", c[2].hash)
        );
        let back: Anchor = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn an_untouched_chain_agrees_with_its_anchors() {
        let c = chain(10);
        assert_eq!(check_against_anchors(&c, &heads(&c, 3), LATE), vec![]);
        // Records newer than the last anchor but within the lag are not a finding.
        let mut c2 = c.clone();
        extend(&mut c2, 2, "service");
        assert_eq!(
            check_against_anchors(&c2, &heads(&c, 3), c2[11].recorded_at_ms + 1000),
            vec![]
        );
    }

    #[test]
    fn a_tail_rewritten_with_valid_hashes_is_caught_at_the_first_anchor_it_disagrees_with() {
        let original = chain(10);
        let anchors = heads(&original, 3); // heads 3, 6, 9, 10
        let mut forged = original[..4].to_vec();
        extend(&mut forged, 6, "insider");
        assert_eq!(
            verify_chain(&forged),
            Ok(()),
            "the forgery is a valid chain"
        );
        let findings = check_against_anchors(&forged, &anchors, LATE);
        assert_eq!(findings.len(), 3, "{findings:?}");
        assert_eq!(
            findings[0].to_string(),
            format!(
                "record 6 disagrees with its anchor of 2025-11-29T16:01:00.000Z (head): anchored hash {}, the chain's {}; the rewrite starts after record 3 (which agrees with its anchor) and at or before record 6",
                &original[5].hash[..16],
                &forged[5].hash[..16]
            )
        );
    }

    #[test]
    fn with_the_overwritten_records_anchored_the_first_rewritten_record_is_named() {
        let original = chain(10);
        let mut anchors = heads(&original, 3);
        // The stream gives the old content of each record the insider overwrote (5 to 10).
        for r in &original[4..] {
            anchors.push(Anchor::of(r, Observed::Modified, LATE, "m"));
        }
        let mut forged = original[..4].to_vec();
        extend(&mut forged, 6, "insider");
        let first = &check_against_anchors(&forged, &anchors, LATE)[0];
        assert!(
            first
                .to_string()
                .starts_with("record 5 disagrees with its anchor of"),
            "{first}"
        );
        assert!(first.to_string().ends_with(
            "record 5 was overwritten in the table: the chain was rewritten from record 5"
        ));
    }

    #[test]
    fn deleted_last_records_are_caught() {
        let original = chain(10);
        let anchors = heads(&original, 5); // heads 5, 10
        let cut = &original[..7];
        assert_eq!(verify_chain(cut), Ok(()), "a cut chain is a valid chain");
        let findings = check_against_anchors(cut, &anchors, LATE);
        assert_eq!(
            findings,
            vec![AnchorFinding::Truncated {
                seq: 10,
                anchored_at: "2025-11-29T16:01:00.000Z".into(),
                observed: Observed::Head,
                last: 7,
                from: 8
            }]
        );
        assert!(
            findings[0]
                .to_string()
                .ends_with("records 8 to 10 were removed")
        );
    }

    #[test]
    fn a_replaced_record_rehashed_onward_is_caught() {
        let original = chain(8);
        let anchors = heads(&original, 2); // 2, 4, 6, 8
        let mut forged = original[..2].to_vec();
        // Record 3 replaced, 4 to 8 re-hashed with their own content.
        let mut replaced = original[2].clone();
        replaced.detail = json!({"i": 2, "by": "insider"});
        forged.push(AuditRecord::next(
            &order(),
            forged.last(),
            replaced.recorded_at_ms,
            &replaced.kind,
            replaced.detail.clone(),
        ));
        for r in &original[3..] {
            forged.push(AuditRecord::next(
                &order(),
                forged.last(),
                r.recorded_at_ms,
                &r.kind,
                r.detail.clone(),
            ));
        }
        assert_eq!(verify_chain(&forged), Ok(()));
        let findings = check_against_anchors(&forged, &anchors, LATE);
        assert_eq!(findings.len(), 3);
        assert!(
            findings[0]
                .to_string()
                .ends_with("the rewrite starts after record 2 (which agrees with its anchor) and at or before record 4"),
            "{}",
            findings[0]
        );
    }

    #[test]
    fn records_no_anchor_covers_are_a_finding_once_old_enough() {
        let c = chain(6);
        let anchors = heads(&c[..2], 2); // head 2 only
        let findings = check_against_anchors(&c, &anchors, LATE);
        assert_eq!(
            findings,
            vec![AnchorFinding::Unanchored {
                from: 3,
                to: 6,
                lag_min: 5
            }]
        );
        // Exported a minute after record 6: 3 to 6 may still be on their way.
        assert_eq!(
            check_against_anchors(&c, &anchors, c[5].recorded_at_ms + 60_000),
            vec![]
        );
        let stranger = Anchor {
            order_id: OrderId::new("o-2").unwrap(),
            ..anchors[0].clone()
        };
        assert!(matches!(
            check_against_anchors(&c[..2], &[stranger], LATE)[0],
            AnchorFinding::WrongOrder { seq: 2, .. }
        ));
    }
}
