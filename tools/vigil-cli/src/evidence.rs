//! Evidence bundles: an order's audit trail exported as `audit.json`, `audit.csv` and
//! `manifest.json`, and verified offline.
//!
//! The manifest holds the SHA-256 of each file and the first and last hash of the chain;
//! verification checks the file hashes, the chain of `audit.json` and the chain rebuilt from
//! `audit.csv` (so either file, altered alone, is caught and its first broken record named).

use crate::error::{CliError, Result};
use crate::owner_only::{self, write_new};
use crate::report::{Report, rfc3339_ms};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;
use vigil_admin::AdminError;
use vigil_aws::ports::{AdminStore, AuditLog};
use vigil_core::OrderId;
use vigil_core::audit::{AuditRecord, GENESIS_HASH, verify_chain};

/// The records, as JSON.
pub const AUDIT_JSON: &str = "audit.json";
/// The records, as CSV.
pub const AUDIT_CSV: &str = "audit.csv";
/// The manifest.
pub const MANIFEST: &str = "manifest.json";
/// What to do when a bundle file exists: bundles are never overwritten.
const NEVER_OVERWRITTEN: &str = "an evidence bundle is never overwritten: choose a new --out";
const CSV_HEADER: [&str; 6] = ["seq", "recorded_at", "kind", "prev_hash", "hash", "detail"];

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The force the order belongs to (docs/FORCES.md); absent in bundles made before forces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_id: Option<vigil_core::ForceId>,
    /// Until when the force keeps its audit and evidence (`audit_retention_years` of
    /// infra/forces.json, from the export): the bundle must be kept at least as long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain_until: Option<DateTime<Utc>>,
    /// The order whose chain this is.
    pub order_id: OrderId,
    /// When the bundle was made.
    pub exported_at: DateTime<Utc>,
    /// Number of records.
    pub record_count: usize,
    /// Hash of the first record (the genesis hash when there are none).
    pub first_hash: String,
    /// Hash of the last record (the genesis hash when there are none).
    pub last_hash: String,
    /// Whether the chain verified when it was exported.
    pub chain_verified_at_export: bool,
    /// SHA-256 (hex) of each file of the bundle, by name.
    pub files: BTreeMap<String, String>,
    /// The tool that made it.
    pub tool: String,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The CSV form of the records.
pub fn records_csv(records: &[AuditRecord]) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let fail = |e: csv::Error| CliError::Invalid(format!("writing CSV: {e}"));
    w.write_record(CSV_HEADER).map_err(fail)?;
    for r in records {
        w.write_record([
            r.seq.to_string(),
            rfc3339_ms(r.recorded_at_ms),
            r.kind.clone(),
            r.prev_hash.clone(),
            r.hash.clone(),
            r.detail.to_string(),
        ])
        .map_err(fail)?;
    }
    w.into_inner()
        .map_err(|e| CliError::Invalid(format!("writing CSV: {e}")))
}

fn records_from_csv(
    order_id: &OrderId,
    bytes: &[u8],
) -> std::result::Result<Vec<AuditRecord>, String> {
    let mut r = csv::Reader::from_reader(bytes);
    let header = r.headers().map_err(|e| e.to_string())?.clone();
    if header.iter().ne(CSV_HEADER) {
        return Err(format!("header is {header:?}, expected {CSV_HEADER:?}"));
    }
    let mut out = Vec::new();
    for (i, row) in r.records().enumerate() {
        let row = row.map_err(|e| format!("row {}: {e}", i + 1))?;
        let bad = |what: &str| format!("row {} ({what}) cannot be read", i + 1);
        let recorded_at = DateTime::parse_from_rfc3339(&row[1]).map_err(|_| bad("recorded_at"))?;
        out.push(AuditRecord {
            order_id: order_id.clone(),
            seq: row[0].parse().map_err(|_| bad("seq"))?,
            recorded_at_ms: recorded_at.timestamp_millis(),
            kind: row[2].to_owned(),
            detail: serde_json::from_str(&row[5]).map_err(|_| bad("detail"))?,
            prev_hash: row[3].to_owned(),
            hash: row[4].to_owned(),
        });
    }
    Ok(out)
}

/// Exports an order's audit trail into `out` (created if missing; its bundle files must not
/// exist). Returns the manifest written.
///
/// Fails with [`CliError::NotFound`] when the order neither exists nor has records,
/// [`CliError::Io`] when a file cannot be written, or [`AdminError::Store`].
pub async fn export<S: AdminStore + AuditLog>(
    store: &S,
    order: &vigil_core::ProtectionOrder,
    retention_years: Option<u32>,
    out: &Path,
    now: DateTime<Utc>,
) -> Result<Manifest> {
    let order_id = &order.order_id;
    let records = store
        .read(order_id)
        .await
        .map_err(AdminError::store(format!(
            "reading the audit log of {order_id}"
        )))?;
    if records.is_empty()
        && store
            .get_order(order_id)
            .await
            .map_err(AdminError::store(format!("reading order {order_id}")))?
            .is_none()
    {
        return Err(CliError::NotFound(format!(
            "no order {order_id} and no audit records for it"
        )));
    }
    let json = serde_json::to_vec_pretty(&records).expect("records serialize");
    let csv = records_csv(&records)?;
    // Offender positions and SMS texts: readable by the operator only (0700 folder, 0600
    // files), whatever the umask.
    owner_only::create_dir(out)?;
    let manifest = Manifest {
        order_id: order_id.clone(),
        force_id: order.force_id.clone(),
        retain_until: retention_years
            .and_then(|y| now.checked_add_months(chrono::Months::new(12 * y))),
        exported_at: now,
        record_count: records.len(),
        first_hash: records.first().map_or(GENESIS_HASH, |r| &r.hash).to_owned(),
        last_hash: records.last().map_or(GENESIS_HASH, |r| &r.hash).to_owned(),
        chain_verified_at_export: verify_chain(&records).is_ok(),
        files: BTreeMap::from([
            (AUDIT_JSON.to_owned(), sha256_hex(&json)),
            (AUDIT_CSV.to_owned(), sha256_hex(&csv)),
        ]),
        tool: format!("vigil {}", env!("CARGO_PKG_VERSION")),
    };
    write_new(&out.join(AUDIT_JSON), &json, NEVER_OVERWRITTEN)?;
    write_new(&out.join(AUDIT_CSV), &csv, NEVER_OVERWRITTEN)?;
    let mut m = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
    m.push(b'\n');
    write_new(&out.join(MANIFEST), &m, NEVER_OVERWRITTEN)?;
    Ok(manifest)
}

/// A bundle written.
#[derive(Debug, Clone, Serialize)]
pub struct Exported {
    /// Where.
    pub dir: String,
    /// Its manifest.
    pub manifest: Manifest,
}

impl Report for Exported {
    fn human(&self) -> String {
        let m = &self.manifest;
        format!(
            "exported {} audit records of order {} to {}\nchain {} at export; last hash {}\nfiles: {}",
            m.record_count,
            m.order_id,
            self.dir,
            if m.chain_verified_at_export {
                "verified"
            } else {
                "BROKEN"
            },
            m.last_hash,
            [AUDIT_JSON, AUDIT_CSV, MANIFEST].join(", "),
        )
    }
}

/// What verifying a bundle found.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// The bundle's directory.
    pub dir: String,
    /// The order, from the manifest.
    pub order_id: Option<OrderId>,
    /// Records in `audit.json`.
    pub records: usize,
    /// Every problem found; empty when the bundle verifies.
    pub problems: Vec<String>,
    /// The first broken link of the chain, as "file: record N: why", if any.
    pub first_broken_link: Option<String>,
}

impl Verification {
    /// Whether the bundle verified.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl Report for Verification {
    fn human(&self) -> String {
        if self.ok() {
            return format!(
                "OK: {} records of order {}; file hashes match the manifest; hash chain intact",
                self.records,
                self.order_id.as_ref().map_or("?", |o| o.as_str())
            );
        }
        let mut out = String::from("FAILED:");
        for p in &self.problems {
            out.push_str(&format!("\n- {p}"));
        }
        if let Some(link) = &self.first_broken_link {
            out.push_str(&format!("\nfirst broken link: {link}"));
        }
        out
    }
}

/// Verifies a bundle offline: the manifest's file hashes, record count and end hashes, the
/// chain of `audit.json`, and the chain rebuilt from `audit.csv`. Never contacts AWS.
///
/// Returns the findings (check [`Verification::ok`]); fails only with [`CliError::Io`] or
/// [`CliError::Tampered`] when the bundle cannot be read at all.
pub fn verify(dir: &Path) -> Result<Verification> {
    let read = |name: &str| {
        std::fs::read(dir.join(name)).map_err(CliError::io(format!(
            "reading {} (is {} an evidence bundle?)",
            dir.join(name).display(),
            dir.display()
        )))
    };
    let manifest_bytes = read(MANIFEST)?;
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| CliError::Tampered(format!("{MANIFEST} cannot be read: {e}")))?;
    let mut problems = Vec::new();
    let mut first_broken_link = None;
    let mut contents = BTreeMap::new();
    for name in [AUDIT_JSON, AUDIT_CSV] {
        let bytes = read(name)?;
        match manifest.files.get(name) {
            Some(h) if *h == sha256_hex(&bytes) => {}
            Some(_) => problems.push(format!(
                "{name}: SHA-256 differs from the manifest (file changed)"
            )),
            None => problems.push(format!("{name}: not listed in the manifest")),
        }
        contents.insert(name, bytes);
    }
    let json_records: Vec<AuditRecord> = match serde_json::from_slice(&contents[AUDIT_JSON]) {
        Ok(r) => r,
        Err(e) => {
            problems.push(format!(
                "{AUDIT_JSON}: cannot be read as audit records: {e}"
            ));
            vec![]
        }
    };
    let mut check_chain = |name: &str, records: &[AuditRecord]| {
        if let Err(e) = verify_chain(records) {
            let link = format!("{name}: {e}");
            problems.push(link.clone());
            first_broken_link.get_or_insert(link);
            return;
        }
        if records.len() != manifest.record_count {
            problems.push(format!(
                "{name}: {} records; the manifest says {} (records removed or added)",
                records.len(),
                manifest.record_count
            ));
        }
        let first = records.first().map_or(GENESIS_HASH, |r| r.hash.as_str());
        let last = records.last().map_or(GENESIS_HASH, |r| r.hash.as_str());
        if first != manifest.first_hash || last != manifest.last_hash {
            problems.push(format!(
                "{name}: first/last hash differ from the manifest's (chain replaced or truncated)"
            ));
        }
        if let Some(r) = records.iter().find(|r| r.order_id != manifest.order_id) {
            problems.push(format!(
                "{name}: record {} belongs to order {}",
                r.seq, r.order_id
            ));
        }
    };
    check_chain(AUDIT_JSON, &json_records);
    match records_from_csv(&manifest.order_id, &contents[AUDIT_CSV]) {
        Ok(csv_records) => check_chain(AUDIT_CSV, &csv_records),
        Err(e) => problems.push(format!("{AUDIT_CSV}: {e}")),
    }
    Ok(Verification {
        dir: dir.display().to_string(),
        order_id: Some(manifest.order_id),
        records: json_records.len(),
        problems,
        first_broken_link,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_aws::memory::MemoryStore;
    use vigil_aws::ports::AuditEntry;

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("vigil-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    /// An order with id `id` (export takes the order as the caller's access check read it).
    fn order(id: &OrderId) -> vigil_core::ProtectionOrder {
        let mut o = vigil_testkit::order();
        o.order_id = id.clone();
        o
    }

    async fn store_with_chain() -> (MemoryStore, OrderId) {
        let store = MemoryStore::new();
        let o = OrderId::new("o1").unwrap();
        for i in 0..4 {
            let e = AuditEntry {
                kind: "zone_change".into(),
                detail: serde_json::json!({"i": i, "text": "a, \"quoted\"\nline"}),
            };
            store
                .append(&o, std::slice::from_ref(&e), 1_764_432_000_123 + i)
                .await
                .unwrap();
        }
        (store, o)
    }

    #[tokio::test]
    async fn export_verifies_and_each_file_alone_is_checked() {
        let (store, o) = store_with_chain().await;
        let dir = tmp("ok");
        let m = export(&store, &order(&o), Some(7), &dir, Utc::now())
            .await
            .unwrap();
        let kept = m.retain_until.unwrap() - m.exported_at;
        assert!((2555..=2558).contains(&kept.num_days()), "7 years: {kept}");
        assert_eq!(m.record_count, 4);
        assert!(m.chain_verified_at_export);
        let v = verify(&dir).unwrap();
        assert!(v.ok(), "{}", v.human());
        assert!(
            export(&store, &order(&o), Some(7), &dir, Utc::now())
                .await
                .is_err(),
            "never overwrites"
        );

        // Alter record 3's detail in the CSV only.
        let csv = std::fs::read_to_string(dir.join(AUDIT_CSV)).unwrap();
        std::fs::write(
            dir.join(AUDIT_CSV),
            csv.replacen("{\"\"i\"\":2", "{\"\"i\"\":7", 1),
        )
        .unwrap();
        let v = verify(&dir).unwrap();
        assert!(!v.ok());
        assert_eq!(
            v.first_broken_link.as_deref(),
            Some("audit.csv: record 3: content does not match its hash (altered)")
        );
        assert!(v.problems[0].contains("SHA-256"), "{:?}", v.problems);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_removed_json_record_is_named() {
        let (store, o) = store_with_chain().await;
        let dir = tmp("rm");
        export(&store, &order(&o), Some(7), &dir, Utc::now())
            .await
            .unwrap();
        let mut records: Vec<AuditRecord> =
            serde_json::from_slice(&std::fs::read(dir.join(AUDIT_JSON)).unwrap()).unwrap();
        records.remove(1);
        std::fs::write(dir.join(AUDIT_JSON), serde_json::to_vec(&records).unwrap()).unwrap();
        let v = verify(&dir).unwrap();
        assert!(
            v.first_broken_link
                .unwrap()
                .starts_with("audit.json: record at position 2 has seq 3")
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            export(
                &store,
                &order(&OrderId::new("none").unwrap()),
                None,
                &dir,
                Utc::now()
            )
            .await
            .unwrap_err()
            .exit_code(),
            2
        );
    }
}
