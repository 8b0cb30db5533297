//! Evidence bundles: an order's audit trail exported as `audit.json` and `audit.csv`, with the
//! anchors that cover it (`anchors.json`), a `manifest.json`, and the manifest's signature by
//! the evidence key (`signature.json`); verified offline with the key's public half
//! (docs/EVIDENCE.md).
//!
//! The manifest holds the SHA-256 of each file and the first and last hash of the chain; the
//! signature (ECDSA P-256 by the KMS key, whose private half never leaves KMS) covers the
//! manifest, so no file can change without the signature failing. Verification checks the
//! signature with a public key the investigator holds (never one the bundle carries), the
//! file hashes, the chain of `audit.json` and the chain rebuilt from `audit.csv` (either file,
//! altered alone, is caught and its first broken record named), and the chain against every
//! anchor: a chain rewritten with fresh hashes or cut short disagrees with the anchors written
//! before, which nobody can change.

use crate::error::{CliError, Result};
use crate::owner_only::{self, write_new};
use crate::report::{Report, rfc3339_ms};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;
use vigil_admin::AdminError;
use vigil_aws::ports::{AdminStore, AnchorBucket, AuditLog, EvidenceSigner};
use vigil_core::OrderId;
use vigil_core::anchor::{Anchor, check_against_anchors};
use vigil_core::audit::{AuditRecord, GENESIS_HASH, verify_chain};
use x509_parser::asn1_rs::BitString;
use x509_parser::oid_registry::OID_SIG_ECDSA_WITH_SHA256;
use x509_parser::prelude::FromDer;
use x509_parser::x509::{AlgorithmIdentifier, SubjectPublicKeyInfo};

/// The records, as JSON.
pub const AUDIT_JSON: &str = "audit.json";
/// The records, as CSV.
pub const AUDIT_CSV: &str = "audit.csv";
/// The anchors that cover the chain, as read from the anchors bucket.
pub const ANCHORS_JSON: &str = "anchors.json";
/// The manifest.
pub const MANIFEST: &str = "manifest.json";
/// The manifest's signature.
pub const SIGNATURE: &str = "signature.json";
/// What the evidence key signs: this line, then the SHA-256 (hex) of `manifest.json`'s bytes
/// and a newline (a statement of fixed size, whatever the manifest's).
pub const SIGNED_STATEMENT: &str = "vigil evidence manifest v1\nsha256:";
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
    /// Anchors of the order in the anchors bucket at export (all in `anchors.json`).
    #[serde(default)]
    pub anchor_count: usize,
    /// Whether the chain agreed with every anchor, and every record old enough had one, at
    /// export.
    #[serde(default)]
    pub anchors_verified_at_export: bool,
    /// SHA-256 (hex) of each file of the bundle, by name.
    pub files: BTreeMap<String, String>,
    /// The tool that made it.
    pub tool: String,
}

/// `signature.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureFile {
    /// `ECDSA_SHA_256`.
    pub algorithm: String,
    /// The key that signed (its ARN).
    pub key_id: String,
    /// SHA-256 (hex) of the signing key's public key (DER), as KMS gave it at export: compare
    /// with `vigil evidence public-key`'s.
    pub public_key_sha256: String,
    /// What was signed: [`SIGNED_STATEMENT`] with the manifest's SHA-256.
    pub statement: String,
    /// The signature (DER, base64).
    pub signature: String,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The statement the evidence key signs for a manifest.
pub fn statement(manifest: &[u8]) -> String {
    format!("{SIGNED_STATEMENT}{}\n", sha256_hex(manifest))
}

/// The fingerprint of a public key: SHA-256 (hex) of its DER.
pub fn fingerprint(public_key_der: &[u8]) -> String {
    sha256_hex(public_key_der)
}

/// A public key from a file: PEM (`PUBLIC KEY`) or DER, checked to be a SubjectPublicKeyInfo.
pub fn public_key_from(bytes: &[u8], source: &str) -> Result<Vec<u8>> {
    let invalid = |what: String| {
        CliError::Invalid(format!(
            "{source}: {what}; give the evidence key's public key as `vigil evidence public-key` writes it"
        ))
    };
    let der = if bytes.starts_with(b"-----BEGIN") {
        let blocks: Vec<x509_parser::pem::Pem> = x509_parser::pem::Pem::iter_from_buffer(bytes)
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| invalid(format!("not PEM ({e})")))?;
        match blocks.as_slice() {
            [one] if one.label == "PUBLIC KEY" => one.contents.clone(),
            [one] => {
                return Err(invalid(format!(
                    "a PEM {} where a PUBLIC KEY was expected",
                    one.label
                )));
            }
            _ => {
                return Err(invalid(format!(
                    "{} PEM blocks where one PUBLIC KEY was expected",
                    blocks.len()
                )));
            }
        }
    } else {
        bytes.to_vec()
    };
    match SubjectPublicKeyInfo::from_der(&der) {
        Ok(([], _)) => Ok(der),
        Ok(_) => Err(invalid("bytes after the public key".into())),
        Err(e) => Err(invalid(format!("not a public key ({e})"))),
    }
}

/// A public key (DER) as PEM.
pub fn public_key_pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN PUBLIC KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END PUBLIC KEY-----\n");
    out
}

/// Whether `signature` (DER) by ECDSA P-256 with SHA-256 over `message` verifies with
/// `public_key` (DER SubjectPublicKeyInfo).
pub fn signature_verifies(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let Ok((_, spki)) = SubjectPublicKeyInfo::from_der(public_key) else {
        return false;
    };
    let alg = AlgorithmIdentifier::new(OID_SIG_ECDSA_WITH_SHA256, None);
    x509_parser::verify::verify_signature(&spki, &alg, &BitString::new(0, signature), message)
        .is_ok()
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

/// Where an export reads and signs: the store, the anchors bucket and the evidence key.
pub struct Sources<'a, S, B, K> {
    /// Orders and the audit log.
    pub store: &'a S,
    /// The anchors bucket.
    pub anchors: &'a B,
    /// The evidence signing key.
    pub signer: &'a K,
}

/// Exports an order's audit trail into `out` (created if missing; its bundle files must not
/// exist), with the order's anchors, and signs the manifest. Returns the manifest written.
///
/// The anchors are listed before the chain is read: every anchored record then is in the
/// chain read (unless someone removed it, which is what the anchors are for).
///
/// Fails with [`CliError::NotFound`] when the order neither exists nor has records,
/// [`CliError::Io`] when a file cannot be written, or [`AdminError::Store`] (the anchors
/// bucket or the key included).
pub async fn export<S: AdminStore + AuditLog, B: AnchorBucket, K: EvidenceSigner>(
    from: Sources<'_, S, B, K>,
    order: &vigil_core::ProtectionOrder,
    retention_years: Option<u32>,
    out: &Path,
    now: DateTime<Utc>,
) -> Result<Manifest> {
    let order_id = &order.order_id;
    let mut anchors = from
        .anchors
        .anchors(order_id)
        .await
        .map_err(AdminError::store(format!(
            "reading the anchors of {order_id}"
        )))?;
    anchors.sort_by(|a, b| (a.seq, &a.key()).cmp(&(b.seq, &b.key())));
    let records = from
        .store
        .read(order_id)
        .await
        .map_err(AdminError::store(format!(
            "reading the audit log of {order_id}"
        )))?;
    if records.is_empty()
        && anchors.is_empty()
        && from
            .store
            .get_order(order_id)
            .await
            .map_err(AdminError::store(format!("reading order {order_id}")))?
            .is_none()
    {
        return Err(CliError::NotFound(format!(
            "no order {order_id} and no audit records for it"
        )));
    }
    let public_key = from
        .signer
        .public_key()
        .await
        .map_err(AdminError::store("reading the evidence key's public key"))?;
    let json = serde_json::to_vec_pretty(&records).expect("records serialize");
    let csv = records_csv(&records)?;
    let anchors_json = serde_json::to_vec_pretty(&anchors).expect("anchors serialize");
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
        anchor_count: anchors.len(),
        anchors_verified_at_export: check_against_anchors(
            &records,
            &anchors,
            now.timestamp_millis(),
        )
        .is_empty(),
        files: BTreeMap::from([
            (AUDIT_JSON.to_owned(), sha256_hex(&json)),
            (AUDIT_CSV.to_owned(), sha256_hex(&csv)),
            (ANCHORS_JSON.to_owned(), sha256_hex(&anchors_json)),
        ]),
        tool: format!("vigil {}", env!("CARGO_PKG_VERSION")),
    };
    let mut m = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
    m.push(b'\n');
    let statement = statement(&m);
    let signed = from
        .signer
        .sign(statement.as_bytes())
        .await
        .map_err(AdminError::store(
            "signing the manifest with the evidence key",
        ))?;
    let signature = SignatureFile {
        algorithm: signed.algorithm,
        key_id: signed.key_id,
        public_key_sha256: fingerprint(&public_key),
        statement,
        signature: {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(&signed.signature)
        },
    };
    let mut sig = serde_json::to_vec_pretty(&signature).expect("signature serializes");
    sig.push(b'\n');
    // Offender positions and SMS texts: readable by the operator only (0700 folder, 0600
    // files), whatever the umask.
    owner_only::create_dir(out)?;
    write_new(&out.join(AUDIT_JSON), &json, NEVER_OVERWRITTEN)?;
    write_new(&out.join(AUDIT_CSV), &csv, NEVER_OVERWRITTEN)?;
    write_new(&out.join(ANCHORS_JSON), &anchors_json, NEVER_OVERWRITTEN)?;
    write_new(&out.join(MANIFEST), &m, NEVER_OVERWRITTEN)?;
    write_new(&out.join(SIGNATURE), &sig, NEVER_OVERWRITTEN)?;
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
            "exported {} audit records of order {} to {}\nchain {} at export; last hash {}\n{} anchors; the chain {} them\nmanifest signed by the evidence key\nfiles: {}",
            m.record_count,
            m.order_id,
            self.dir,
            if m.chain_verified_at_export {
                "verified"
            } else {
                "BROKEN"
            },
            m.last_hash,
            m.anchor_count,
            if m.anchors_verified_at_export {
                "agrees with"
            } else {
                "DISAGREES with"
            },
            [AUDIT_JSON, AUDIT_CSV, ANCHORS_JSON, MANIFEST, SIGNATURE].join(", "),
        )
    }
}

/// The evidence key's public key, written.
#[derive(Debug, Clone, Serialize)]
pub struct PublicKeyWritten {
    /// Where.
    pub file: String,
    /// SHA-256 (hex) of the key (DER): what `signature.json` names.
    pub sha256: String,
}

impl Report for PublicKeyWritten {
    fn human(&self) -> String {
        format!(
            "wrote the evidence key's public key to {}\nsha256 {}",
            self.file, self.sha256
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
    /// Anchors in `anchors.json`.
    pub anchors: usize,
    /// The newest record an anchor covers (its position), if any.
    pub anchored_up_to: Option<u64>,
    /// The fingerprint of the public key the signature verified with, when it did.
    pub signed_by: Option<String>,
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
                "OK: {} records of order {}; manifest signed by the evidence key (public key sha256 {}); file hashes match the manifest; hash chain intact; the chain agrees with its {} anchors{}",
                self.records,
                self.order_id.as_ref().map_or("?", |o| o.as_str()),
                self.signed_by.as_deref().unwrap_or("?"),
                self.anchors,
                self.anchored_up_to
                    .map_or(String::new(), |n| format!(" (anchored up to record {n})")),
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

/// Verifies a bundle offline with the evidence key's public key (DER): the manifest's
/// signature, the file hashes, record count and end hashes, the chain of `audit.json`, the
/// chain rebuilt from `audit.csv`, and the chain against every anchor in `anchors.json`.
/// Never contacts AWS.
///
/// Returns the findings (check [`Verification::ok`]); fails only with [`CliError::Io`] or
/// [`CliError::Tampered`] when the bundle cannot be read at all.
pub fn verify(dir: &Path, public_key: &[u8]) -> Result<Verification> {
    let reading = |name: &str| {
        CliError::io(format!(
            "reading {} (is {} an evidence bundle?)",
            dir.join(name).display(),
            dir.display()
        ))
    };
    let manifest_bytes = std::fs::read(dir.join(MANIFEST)).map_err(reading(MANIFEST))?;
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| CliError::Tampered(format!("{MANIFEST} cannot be read: {e}")))?;
    let mut problems = Vec::new();
    let mut first_broken_link = None;
    let signed_by = check_signature(dir, &manifest_bytes, public_key, &mut problems);
    let mut contents = BTreeMap::new();
    for name in [AUDIT_JSON, AUDIT_CSV, ANCHORS_JSON] {
        let bytes = match std::fs::read(dir.join(name)) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && name == ANCHORS_JSON => {
                problems.push(format!("{name}: missing (the bundle carries no anchors)"));
                b"[]".to_vec()
            }
            Err(e) => return Err(reading(name)(e)),
        };
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
    let anchors: Vec<Anchor> = match serde_json::from_slice(&contents[ANCHORS_JSON]) {
        Ok(a) => a,
        Err(e) => {
            problems.push(format!("{ANCHORS_JSON}: cannot be read as anchors: {e}"));
            vec![]
        }
    };
    for finding in check_against_anchors(
        &json_records,
        &anchors,
        manifest.exported_at.timestamp_millis(),
    ) {
        let link = format!("{AUDIT_JSON} against {ANCHORS_JSON}: {finding}");
        problems.push(link.clone());
        first_broken_link.get_or_insert(link);
    }
    Ok(Verification {
        dir: dir.display().to_string(),
        order_id: Some(manifest.order_id),
        records: json_records.len(),
        anchors: anchors.len(),
        anchored_up_to: anchors.iter().map(|a| a.seq).max(),
        signed_by,
        problems,
        first_broken_link,
    })
}

/// Checks `signature.json` against the manifest and the public key; the key's fingerprint
/// when it verifies, else a problem saying why.
fn check_signature(
    dir: &Path,
    manifest: &[u8],
    public_key: &[u8],
    problems: &mut Vec<String>,
) -> Option<String> {
    let given = fingerprint(public_key);
    let sig: SignatureFile = match std::fs::read(dir.join(SIGNATURE)) {
        Err(_) => {
            problems.push(format!(
                "{SIGNATURE}: missing: the bundle is not signed, so nothing shows it came from Vigil's export"
            ));
            return None;
        }
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(s) => s,
            Err(e) => {
                problems.push(format!("{SIGNATURE}: cannot be read: {e}"));
                return None;
            }
        },
    };
    let signature = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.decode(&sig.signature)
    };
    let expected = statement(manifest);
    let verifies = sig.algorithm == vigil_aws::evidence::SIGNING_ALGORITHM
        && signature.is_ok_and(|s| signature_verifies(public_key, expected.as_bytes(), &s));
    if verifies {
        return Some(given);
    }
    problems.push(if sig.public_key_sha256 != given {
        format!(
            "{MANIFEST}: the signature does not verify with the public key given (sha256 {given}): the bundle was signed by another key (sha256 {}, {})",
            sig.public_key_sha256, sig.key_id
        )
    } else if sig.statement != expected {
        format!(
            "{MANIFEST}: changed after it was signed (its SHA-256 is not the one the signature covers)"
        )
    } else {
        format!(
            "{SIGNATURE}: the signature does not verify with the public key given (sha256 {given}): it was made by another key, or altered"
        )
    });
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_aws::StoreError;
    use vigil_aws::memory::{MemoryAnchors, MemoryStore};
    use vigil_aws::ports::{AuditEntry, Signed};
    use vigil_core::anchor::Observed;

    /// An evidence key held locally (tests only): ECDSA P-256, as the KMS key.
    struct LocalSigner(rcgen::KeyPair);

    impl LocalSigner {
        fn new() -> Self {
            LocalSigner(rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap())
        }
        fn public_der(&self) -> Vec<u8> {
            rcgen::PublicKeyData::subject_public_key_info(&self.0)
        }
    }

    impl EvidenceSigner for LocalSigner {
        async fn sign(&self, message: &[u8]) -> std::result::Result<Signed, StoreError> {
            Ok(Signed {
                key_id: "local-test-key".into(),
                algorithm: "ECDSA_SHA_256".into(),
                signature: rcgen::SigningKey::sign(&self.0, message).unwrap(),
            })
        }
        async fn public_key(&self) -> std::result::Result<Vec<u8>, StoreError> {
            Ok(self.public_der())
        }
    }

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

    const T0: i64 = 1_764_432_000_123;

    async fn append(store: &MemoryStore, o: &OrderId, from: i64, n: i64, by: &str) {
        for i in from..from + n {
            let e = AuditEntry {
                kind: "zone_change".into(),
                detail: serde_json::json!({"i": i, "by": by, "text": "a, \"quoted\"\nline"}),
            };
            store
                .append(o, std::slice::from_ref(&e), T0 + i * 1000)
                .await
                .unwrap();
        }
    }

    /// An order's chain of `n` records, each anchored as its head when written.
    async fn anchored_chain(n: i64) -> (MemoryStore, MemoryAnchors, OrderId) {
        let store = MemoryStore::new();
        let anchors = MemoryAnchors::new();
        let o = OrderId::new("o1").unwrap();
        append(&store, &o, 0, n, "service").await;
        for r in store.read(&o).await.unwrap() {
            let a = Anchor::of(&r, Observed::Head, r.recorded_at_ms + 10_000, "s");
            anchors.put_anchor(&a, Utc::now()).await.unwrap();
        }
        (store, anchors, o)
    }

    async fn export_to(
        store: &MemoryStore,
        anchors: &MemoryAnchors,
        signer: &LocalSigner,
        o: &OrderId,
        dir: &Path,
    ) -> Manifest {
        let from = Sources {
            store,
            anchors,
            signer,
        };
        export(from, &order(o), Some(7), dir, Utc::now())
            .await
            .unwrap()
    }

    fn problems(dir: &Path, key: &LocalSigner) -> Verification {
        verify(dir, &key.public_der()).unwrap()
    }

    #[tokio::test]
    async fn export_verifies_and_each_file_alone_is_checked() {
        let (store, anchors, o) = anchored_chain(4).await;
        let key = LocalSigner::new();
        let dir = tmp("ok");
        let m = export_to(&store, &anchors, &key, &o, &dir).await;
        let kept = m.retain_until.unwrap() - m.exported_at;
        assert!((2555..=2558).contains(&kept.num_days()), "7 years: {kept}");
        assert_eq!((m.record_count, m.anchor_count), (4, 4));
        assert!(m.chain_verified_at_export && m.anchors_verified_at_export);
        let v = problems(&dir, &key);
        assert!(v.ok(), "{}", v.human());
        assert!(
            v.human().starts_with(
                "OK: 4 records of order o1; manifest signed by the evidence key (public key sha256 "
            ),
            "{}",
            v.human()
        );
        assert!(
            v.human()
                .ends_with("the chain agrees with its 4 anchors (anchored up to record 4)"),
            "{}",
            v.human()
        );
        let from = Sources {
            store: &store,
            anchors: &anchors,
            signer: &key,
        };
        assert!(
            export(from, &order(&o), Some(7), &dir, Utc::now())
                .await
                .is_err(),
            "never overwrites"
        );

        // Alter record 3's detail in the CSV only.
        let csv = std::fs::read_to_string(dir.join(AUDIT_CSV)).unwrap();
        std::fs::write(
            dir.join(AUDIT_CSV),
            csv.replacen(
                "{\"\"by\"\":\"\"service\"\",\"\"i\"\":2",
                "{\"\"by\"\":\"\"service\"\",\"\"i\"\":7",
                1,
            ),
        )
        .unwrap();
        let v = problems(&dir, &key);
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
        let (store, anchors, o) = anchored_chain(4).await;
        let key = LocalSigner::new();
        let dir = tmp("rm");
        export_to(&store, &anchors, &key, &o, &dir).await;
        let mut records: Vec<AuditRecord> =
            serde_json::from_slice(&std::fs::read(dir.join(AUDIT_JSON)).unwrap()).unwrap();
        records.remove(1);
        std::fs::write(dir.join(AUDIT_JSON), serde_json::to_vec(&records).unwrap()).unwrap();
        let v = problems(&dir, &key);
        assert!(
            v.first_broken_link
                .unwrap()
                .starts_with("audit.json: record at position 2 has seq 3")
        );
        std::fs::remove_dir_all(&dir).unwrap();
        let from = Sources {
            store: &store,
            anchors: &anchors,
            signer: &key,
        };
        let none = order(&OrderId::new("none").unwrap());
        assert_eq!(
            export(from, &none, None, &dir, Utc::now())
                .await
                .unwrap_err()
                .exit_code(),
            2
        );
    }

    /// The insider's rewrite as the store holds it: the original chain's first `keep` records,
    /// then `n` new ones with valid hashes.
    async fn rewritten(original: &MemoryStore, o: &OrderId, keep: usize, n: i64) -> MemoryStore {
        let forged = MemoryStore::new();
        let records = original.read(o).await.unwrap();
        for r in &records[..keep] {
            let e = AuditEntry {
                kind: r.kind.clone(),
                detail: r.detail.clone(),
            };
            forged.append(o, &[e], r.recorded_at_ms).await.unwrap();
        }
        append(&forged, o, keep as i64, n, "insider").await;
        forged
    }

    #[tokio::test]
    async fn a_tail_rewritten_with_valid_hashes_fails_naming_the_first_record_that_disagrees() {
        let (store, anchors, o) = anchored_chain(6).await;
        let forged = rewritten(&store, &o, 3, 4).await;
        assert!(verify_chain(&forged.read(&o).await.unwrap()).is_ok());
        let key = LocalSigner::new();
        let dir = tmp("tail");
        let m = export_to(&forged, &anchors, &key, &o, &dir).await;
        assert!(m.chain_verified_at_export && !m.anchors_verified_at_export);
        let v = problems(&dir, &key);
        assert!(!v.ok());
        let first = v.first_broken_link.unwrap();
        assert!(
            first.starts_with(
                "audit.json against anchors.json: record 4 disagrees with its anchor of "
            ),
            "{first}"
        );
        assert!(
            first.ends_with("the chain was rewritten from record 4"),
            "{first}"
        );
        assert!(
            Exported {
                dir: String::new(),
                manifest: m
            }
            .human()
            .contains("DISAGREES")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn deleted_last_records_fail_naming_what_was_cut() {
        let (store, anchors, o) = anchored_chain(6).await;
        let cut = rewritten(&store, &o, 4, 0).await;
        let key = LocalSigner::new();
        let dir = tmp("cut");
        export_to(&cut, &anchors, &key, &o, &dir).await;
        let v = problems(&dir, &key);
        let first = v.first_broken_link.unwrap();
        assert!(
            first.starts_with("audit.json against anchors.json: record 5 was anchored at "),
            "{first}"
        );
        let last = v.problems.last().unwrap();
        assert!(
            last.ends_with("but the chain ends at record 4: records 5 to 6 were removed"),
            "{last}"
        );
        assert!(
            first.ends_with("but the chain ends at record 4: record 5 was removed"),
            "{first}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_replaced_record_rehashed_onward_fails() {
        let (store, anchors, o) = anchored_chain(6).await;
        let records = store.read(&o).await.unwrap();
        let forged = MemoryStore::new();
        for r in &records {
            let mut detail = r.detail.clone();
            if r.seq == 2 {
                detail["by"] = serde_json::json!("insider");
            }
            let e = AuditEntry {
                kind: r.kind.clone(),
                detail,
            };
            forged.append(&o, &[e], r.recorded_at_ms).await.unwrap();
        }
        let key = LocalSigner::new();
        let dir = tmp("replaced");
        export_to(&forged, &anchors, &key, &o, &dir).await;
        let v = problems(&dir, &key);
        let first = v.first_broken_link.unwrap();
        assert!(
            first.contains("record 2 disagrees with its anchor"),
            "{first}"
        );
        assert!(
            first.ends_with("the chain was rewritten from record 2"),
            "{first}"
        );
        // Every anchor after it disagrees too.
        assert_eq!(v.problems.len(), 5, "{:?}", v.problems);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Rewrites `name` in a bundle and the manifest's hash of it, as a forger would.
    fn forge(dir: &Path, name: &str, bytes: &[u8]) -> Vec<u8> {
        std::fs::write(dir.join(name), bytes).unwrap();
        let mut m: Manifest =
            serde_json::from_slice(&std::fs::read(dir.join(MANIFEST)).unwrap()).unwrap();
        m.files.insert(name.to_owned(), sha256_hex(bytes));
        let mut mb = serde_json::to_vec_pretty(&m).unwrap();
        mb.push(b'\n');
        std::fs::write(dir.join(MANIFEST), &mb).unwrap();
        mb
    }

    #[tokio::test]
    async fn a_tampered_bundle_or_one_signed_by_another_key_fails() {
        let (store, anchors, o) = anchored_chain(4).await;
        let key = LocalSigner::new();
        let dir = tmp("forged");
        export_to(&store, &anchors, &key, &o, &dir).await;

        // The anchors file emptied and the manifest's hashes made to match: the manifest no
        // longer matches what was signed.
        let manifest = forge(&dir, ANCHORS_JSON, b"[]");
        let v = problems(&dir, &key);
        assert_eq!(
            v.problems[0],
            "manifest.json: changed after it was signed (its SHA-256 is not the one the signature covers)"
        );

        // Re-signed with another key (the forger's): the signature does not verify with ours.
        let other = LocalSigner::new();
        let statement = statement(&manifest);
        let sig = SignatureFile {
            algorithm: "ECDSA_SHA_256".into(),
            key_id: "forger".into(),
            public_key_sha256: fingerprint(&other.public_der()),
            signature: {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .encode(other.sign(statement.as_bytes()).await.unwrap().signature)
            },
            statement,
        };
        std::fs::write(dir.join(SIGNATURE), serde_json::to_vec(&sig).unwrap()).unwrap();
        let v = problems(&dir, &key);
        assert!(
            v.problems[0].starts_with(&format!(
                "manifest.json: the signature does not verify with the public key given (sha256 {}): the bundle was signed by another key (sha256 {}, forger)",
                fingerprint(&key.public_der()),
                fingerprint(&other.public_der())
            )),
            "{:?}",
            v.problems
        );
        // It verifies with the forger's key, but not against the anchors it dropped: the
        // records have none.
        let v = problems(&dir, &other);
        assert!(
            v.problems.iter().all(|p| !p.contains("signature")),
            "{:?}",
            v.problems
        );
        assert!(
            v.first_broken_link
                .as_deref()
                .is_some_and(|l| l.contains("no anchor covers them")),
            "{:?}",
            v
        );

        // The signature's bytes altered, claiming our key.
        let mut sig: SignatureFile =
            serde_json::from_slice(&std::fs::read(dir.join(SIGNATURE)).unwrap()).unwrap();
        sig.public_key_sha256 = fingerprint(&key.public_der());
        std::fs::write(dir.join(SIGNATURE), serde_json::to_vec(&sig).unwrap()).unwrap();
        assert!(
            problems(&dir, &key).problems[0].ends_with("it was made by another key, or altered")
        );

        // No signature at all.
        std::fs::remove_file(dir.join(SIGNATURE)).unwrap();
        assert!(problems(&dir, &key).problems[0].starts_with("signature.json: missing"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn public_keys_are_read_as_pem_or_der_and_nothing_else() {
        let key = LocalSigner::new();
        let der = key.public_der();
        let pem = public_key_pem(&der);
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert_eq!(public_key_from(pem.as_bytes(), "k.pem").unwrap(), der);
        assert_eq!(public_key_from(&der, "k.der").unwrap(), der);
        let e = public_key_from(b"hello", "k.txt").unwrap_err().to_string();
        assert!(e.contains("k.txt: not a public key"), "{e}");
        let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let e = public_key_from(cert.as_bytes(), "c.pem")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("a PEM CERTIFICATE where a PUBLIC KEY was expected"),
            "{e}"
        );
        assert!(signature_verifies(
            &der,
            b"m",
            &rcgen::SigningKey::sign(&key.0, b"m").unwrap()
        ));
        assert!(!signature_verifies(
            &der,
            b"n",
            &rcgen::SigningKey::sign(&key.0, b"m").unwrap()
        ));
    }
}
