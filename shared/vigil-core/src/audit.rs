//! The audit log's hash chain, pure: building records and verifying a chain.
//!
//! Each order has its own append-only chain. Record `n` carries the hash of record `n - 1`
//! (`prev_hash`; the first carries [`GENESIS_HASH`]) and its own hash, SHA-256 over a canonical
//! JSON encoding of every other field. Changing, removing or reordering any record breaks the
//! chain at that record, which [`verify_chain`] reports.

use crate::ids::OrderId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `prev_hash` of an order's first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One entry of an order's audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// The order whose chain this is.
    pub order_id: OrderId,
    /// Position in the chain, from 1.
    pub seq: u64,
    /// When it was recorded, Unix ms (wall clock of the recording function).
    pub recorded_at_ms: i64,
    /// What it records: `zone_change`, `tag_event`, `sms_sent`, `sms_held`, `operator_notified`,
    /// `alert_acknowledged`, ...
    pub kind: String,
    /// The details, as JSON. Never a victim's full phone number or coordinates.
    pub detail: serde_json::Value,
    /// Hash of the previous record.
    pub prev_hash: String,
    /// This record's hash.
    pub hash: String,
}

#[derive(Serialize)]
struct Hashed<'a> {
    order_id: &'a OrderId,
    seq: u64,
    recorded_at_ms: i64,
    kind: &'a str,
    detail: &'a serde_json::Value,
    prev_hash: &'a str,
}

fn hash_of(
    order_id: &OrderId,
    seq: u64,
    recorded_at_ms: i64,
    kind: &str,
    detail: &serde_json::Value,
    prev_hash: &str,
) -> String {
    // serde_json maps are sorted by key (no preserve_order feature), so the encoding is canonical.
    let bytes = serde_json::to_vec(&Hashed {
        order_id,
        seq,
        recorded_at_ms,
        kind,
        detail,
        prev_hash,
    })
    .expect("audit fields serialize");
    hex::encode(Sha256::digest(&bytes))
}

impl AuditRecord {
    /// The record that follows `previous` (or starts the chain when `None`).
    pub fn next(
        order_id: &OrderId,
        previous: Option<&AuditRecord>,
        recorded_at_ms: i64,
        kind: &str,
        detail: serde_json::Value,
    ) -> AuditRecord {
        let (seq, prev_hash) = match previous {
            Some(p) => (p.seq + 1, p.hash.clone()),
            None => (1, GENESIS_HASH.to_owned()),
        };
        let hash = hash_of(order_id, seq, recorded_at_ms, kind, &detail, &prev_hash);
        AuditRecord {
            order_id: order_id.clone(),
            seq,
            recorded_at_ms,
            kind: kind.to_owned(),
            detail,
            prev_hash,
            hash,
        }
    }

    /// Whether the stored hash matches the record's content.
    pub fn hash_is_valid(&self) -> bool {
        hash_of(
            &self.order_id,
            self.seq,
            self.recorded_at_ms,
            &self.kind,
            &self.detail,
            &self.prev_hash,
        ) == self.hash
    }
}

/// Where and why a chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// A record's content does not match its hash (it was altered).
    #[error("record {seq}: content does not match its hash (altered)")]
    Altered {
        /// The record.
        seq: u64,
    },
    /// A record does not point at the hash of the record before it.
    #[error("record {seq}: prev_hash does not match record {prev}'s hash (removed or reordered)")]
    BrokenLink {
        /// The record.
        seq: u64,
        /// The record before it.
        prev: u64,
    },
    /// Sequence numbers are not 1, 2, 3, ...
    #[error(
        "record at position {position} has seq {seq}; expected {expected} (missing or extra record)"
    )]
    Gap {
        /// Position in the list, from 1.
        position: usize,
        /// Its seq.
        seq: u64,
        /// The seq it should have.
        expected: u64,
    },
    /// A record belongs to another order.
    #[error("record {seq} belongs to order {found}, not {expected}")]
    WrongOrder {
        /// The record.
        seq: u64,
        /// Its order.
        found: String,
        /// The chain's order.
        expected: String,
    },
}

/// Verifies a whole chain, in seq order from 1; returns the first broken link.
pub fn verify_chain(records: &[AuditRecord]) -> Result<(), ChainError> {
    let Some(first) = records.first() else {
        return Ok(());
    };
    let mut prev_hash = GENESIS_HASH;
    for (i, r) in records.iter().enumerate() {
        let expected = i as u64 + 1;
        if r.order_id != first.order_id {
            return Err(ChainError::WrongOrder {
                seq: r.seq,
                found: r.order_id.to_string(),
                expected: first.order_id.to_string(),
            });
        }
        if r.seq != expected {
            return Err(ChainError::Gap {
                position: i + 1,
                seq: r.seq,
                expected,
            });
        }
        if !r.hash_is_valid() {
            return Err(ChainError::Altered { seq: r.seq });
        }
        if r.prev_hash != prev_hash {
            return Err(ChainError::BrokenLink {
                seq: r.seq,
                prev: r.seq - 1,
            });
        }
        prev_hash = &r.hash;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chain(n: usize) -> Vec<AuditRecord> {
        let order = OrderId::new("o1").unwrap();
        let mut out: Vec<AuditRecord> = vec![];
        for i in 0..n {
            let r = AuditRecord::next(
                &order,
                out.last(),
                1000 + i as i64,
                "zone_change",
                json!({"i": i, "b": [1, 2], "a": "x"}),
            );
            out.push(r);
        }
        out
    }

    #[test]
    fn a_fresh_chain_verifies() {
        let c = chain(5);
        assert_eq!(c[0].prev_hash, GENESIS_HASH);
        assert_eq!(c[4].seq, 5);
        assert_eq!(verify_chain(&c), Ok(()));
        assert_eq!(verify_chain(&[]), Ok(()));
    }

    #[test]
    fn hashes_survive_a_json_round_trip() {
        let c = chain(3);
        let back: Vec<AuditRecord> =
            serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(verify_chain(&back), Ok(()));
    }

    #[test]
    fn altered_content_is_detected() {
        let mut c = chain(5);
        c[2].detail = json!({"i": 99});
        assert_eq!(verify_chain(&c), Err(ChainError::Altered { seq: 3 }));
    }

    #[test]
    fn a_rehashed_forgery_breaks_the_next_link() {
        let mut c = chain(5);
        let forged = AuditRecord::next(
            &c[0].order_id,
            Some(&c[1]),
            0,
            "zone_change",
            json!({"forged": true}),
        );
        c[2] = forged;
        assert_eq!(
            verify_chain(&c),
            Err(ChainError::BrokenLink { seq: 4, prev: 3 })
        );
    }

    #[test]
    fn removed_or_reordered_records_are_detected() {
        let mut c = chain(5);
        c.remove(1);
        assert!(matches!(
            verify_chain(&c),
            Err(ChainError::Gap {
                position: 2,
                seq: 3,
                expected: 2
            })
        ));
        let mut c = chain(5);
        c.swap(1, 2);
        assert!(matches!(verify_chain(&c), Err(ChainError::Gap { .. })));
    }
}
