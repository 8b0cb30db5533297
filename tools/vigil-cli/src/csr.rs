//! Certificate signing requests: checking the one a tag made before IoT signs it
//! (`tags register --csr`), and making one for a simulated or bench tag (`tags csr`).
//!
//! A tag's private key is made on the tag and never leaves it; only the CSR (its public key and
//! its name, signed with the key) reaches the operator and IoT.

use crate::error::{CliError, Result};
use crate::owner_only::{self, write_new};
use crate::report::Report;
use serde::Serialize;
use std::path::{Path, PathBuf};
use vigil_core::TagId;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::error::X509Error;
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;

/// The PEM labels of a PKCS#10 request (OpenSSL writes the first; older tools the second).
const CSR_LABELS: [&str; 2] = ["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"];

/// A CSR that parsed, whose signature verifies with its own public key, and whose subject
/// common name is the tag it is registered for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagCsr {
    der: Vec<u8>,
}

impl TagCsr {
    /// Reads and checks the CSR in `path` for `tag` (see [`TagCsr::parse`]).
    ///
    /// Fails with [`CliError::Io`] when the file cannot be read, [`CliError::Invalid`] as
    /// [`TagCsr::parse`].
    pub fn read(path: &Path, tag: &TagId) -> Result<TagCsr> {
        let text =
            std::fs::read(path).map_err(CliError::io(format!("reading {}", path.display())))?;
        TagCsr::parse(&text, &path.display().to_string(), tag)
    }

    /// Checks `pem`, named `source` in errors: one PEM PKCS#10 request, its signature verifies,
    /// its subject has exactly one common name and it is `tag`.
    ///
    /// Fails with [`CliError::Invalid`] saying which check failed and what to do; a file that
    /// holds a private key is refused without reading further.
    pub fn parse(pem: &[u8], source: &str, tag: &TagId) -> Result<TagCsr> {
        let invalid = |what: String| {
            CliError::Invalid(format!(
                "{source}: {what}; make a CSR on tag {tag} (subject CN={tag}), see \
                 `vigil tags csr --help`"
            ))
        };
        if pem.windows(11).any(|w| w == b"PRIVATE KEY") {
            return Err(CliError::Invalid(format!(
                "{source} holds a private key: give only the CSR (the key stays on the tag)"
            )));
        }
        let blocks: Vec<Pem> = Pem::iter_from_buffer(pem)
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| invalid(format!("not PEM ({e})")))?;
        let der = match blocks.as_slice() {
            [one] if CSR_LABELS.contains(&one.label.as_str()) => &one.contents,
            [one] => {
                return Err(invalid(format!(
                    "a PEM {} where a CERTIFICATE REQUEST was expected",
                    one.label
                )));
            }
            [] => return Err(invalid("no PEM CERTIFICATE REQUEST in it".into())),
            _ => {
                return Err(invalid(format!(
                    "{} PEM blocks where one CERTIFICATE REQUEST was expected",
                    blocks.len()
                )));
            }
        };
        let request = match X509CertificationRequest::from_der(der) {
            Ok(([], request)) => request,
            Ok(_) => return Err(invalid("bytes after the PKCS#10 request".into())),
            Err(e) => return Err(invalid(format!("not a PKCS#10 request ({e})"))),
        };
        match request.verify_signature() {
            Ok(()) => {}
            Err(X509Error::SignatureUnsupportedAlgorithm) => {
                return Err(invalid(
                    "signed with an algorithm Vigil cannot check (use ECDSA P-256 or RSA 2048+)"
                        .into(),
                ));
            }
            Err(_) => {
                return Err(invalid(
                    "its signature does not verify with its own public key (altered, or not \
                     signed by the key it names)"
                        .into(),
                ));
            }
        }
        let names: Vec<&str> = request
            .certification_request_info
            .subject
            .iter_common_name()
            .map(|cn| cn.as_str().unwrap_or("(not text)"))
            .collect();
        match names.as_slice() {
            [cn] if *cn == tag.as_str() => Ok(TagCsr { der: der.clone() }),
            [cn] => Err(CliError::Invalid(format!(
                "{source} is a CSR for tag {cn} (subject CN={cn}), not for tag {tag}: register it \
                 as `vigil tags register {cn}`, or use the CSR made on tag {tag}"
            ))),
            [] => Err(invalid("its subject has no common name (CN)".into())),
            many => Err(invalid(format!(
                "its subject has {} common names ({}); a tag's has one, its id",
                many.len(),
                many.join(", ")
            ))),
        }
    }

    /// The request as PEM: exactly the bytes that were checked, whatever else the file held
    /// around them.
    pub fn pem(&self) -> String {
        use base64::Engine;
        let body = base64::engine::general_purpose::STANDARD.encode(&self.der);
        let mut out = String::from("-----BEGIN CERTIFICATE REQUEST-----\n");
        for line in body.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE REQUEST-----\n");
        out
    }
}

/// A key and CSR made for a simulated or bench tag.
#[derive(Debug, Clone, Serialize)]
pub struct MadeCsr {
    /// The tag (the CSR's subject CN).
    pub tag_id: TagId,
    /// The private key (PKCS#8 PEM, ECDSA P-256), mode 0600.
    pub key: PathBuf,
    /// The CSR (PEM), mode 0600.
    pub csr: PathBuf,
}

impl Report for MadeCsr {
    fn human(&self) -> String {
        format!(
            "made a key and CSR for tag {tag}\nkey (0600)  {}\ncsr         {}\nregister it with \
             `vigil tags register {tag} --csr {}`; the key stays with the tag",
            self.key.display(),
            self.csr.display(),
            self.csr.display(),
            tag = self.tag_id,
        )
    }
}

/// Makes an ECDSA P-256 key and a CSR with subject CN = `tag`, and writes them to `key_out`
/// and `csr_out` (each created 0600, never overwritten; a missing folder of the key is created
/// 0700). For simulated and bench tags: a real tag makes its key itself.
///
/// Fails with [`CliError::Invalid`] when a file exists, [`CliError::Io`] when one cannot be
/// written (the key is removed again if the CSR cannot be written).
pub fn make_tag_csr(tag: &TagId, key_out: &Path, csr_out: &Path) -> Result<MadeCsr> {
    if let Some(p) = [key_out, csr_out].into_iter().find(|p| p.exists()) {
        return Err(CliError::Invalid(format!(
            "{} exists already: move it away or choose another path",
            p.display()
        )));
    }
    let failed = |e: rcgen::Error| CliError::Invalid(format!("making the key and CSR: {e}"));
    let key = rcgen::KeyPair::generate().map_err(failed)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, tag.as_str());
    let csr = params
        .serialize_request(&key)
        .and_then(|r| r.pem())
        .map_err(failed)?;
    if let Some(dir) = key_out.parent().filter(|d| !d.as_os_str().is_empty()) {
        owner_only::create_dir(dir)?;
    }
    let exists = "move it away or choose another path";
    write_new(key_out, key.serialize_pem().as_bytes(), exists)?;
    if let Err(e) = write_new(csr_out, csr.as_bytes(), exists) {
        let _ = std::fs::remove_file(key_out);
        return Err(e);
    }
    Ok(MadeCsr {
        tag_id: tag.clone(),
        key: key_out.to_owned(),
        csr: csr_out.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tag(id: &str) -> TagId {
        TagId::new(id).unwrap()
    }

    /// A fresh folder for one use: tests run in parallel and several make CSRs for one tag.
    fn scratch(name: &str) -> PathBuf {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("vigil-cli-csr-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// A CSR made by [`make_tag_csr`] for `id`, as PEM bytes.
    fn made(id: &str) -> Vec<u8> {
        let dir = scratch(id);
        let r = make_tag_csr(&tag(id), &dir.join("k.pem"), &dir.join("c.pem")).unwrap();
        let pem = std::fs::read(&r.csr).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        pem
    }

    #[test]
    fn a_csr_made_for_the_tag_is_accepted_and_sent_as_it_was_checked() {
        let pem = made("tag-1");
        let csr = TagCsr::parse(&pem, "c.pem", &tag("tag-1")).unwrap();
        assert_eq!(csr.pem().as_bytes(), pem.as_slice());
        let mut with_text = b"Certificate Request:\n    Data: ...\n".to_vec();
        with_text.extend_from_slice(&pem);
        assert_eq!(
            TagCsr::parse(&with_text, "c.pem", &tag("tag-1")).unwrap(),
            csr
        );
    }

    #[test]
    fn a_csr_for_another_tag_is_refused_naming_both() {
        let e = TagCsr::parse(&made("tag-2"), "c.pem", &tag("tag-1")).unwrap_err();
        let m = e.to_string();
        assert_eq!(e.exit_code(), 1);
        assert!(
            m.contains("for tag tag-2") && m.contains("not for tag tag-1"),
            "{m}"
        );
    }

    #[test]
    fn a_csr_with_a_bad_signature_is_refused() {
        let csr = TagCsr::parse(&made("tag-1"), "c.pem", &tag("tag-1")).unwrap();
        let mut der = csr.der.clone();
        // The last byte is the signature's (ECDSA's s); the request still parses.
        *der.last_mut().unwrap() ^= 0x01;
        let altered = TagCsr { der }.pem();
        let e = TagCsr::parse(altered.as_bytes(), "c.pem", &tag("tag-1")).unwrap_err();
        assert!(e.to_string().contains("signature does not verify"), "{e}");
    }

    #[test]
    fn what_is_not_one_csr_is_refused_with_the_reason() {
        let t = tag("tag-1");
        let pem = made("tag-1");
        let cases: [(&[u8], &str); 4] = [
            (b"not pem at all", "no PEM CERTIFICATE REQUEST"),
            (
                b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                "holds a private key",
            ),
            (
                b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "a PEM CERTIFICATE where",
            ),
            (
                b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
                "not a PKCS#10 request",
            ),
        ];
        for (text, expected) in cases {
            let e = TagCsr::parse(text, "c.pem", &t).unwrap_err();
            assert!(e.to_string().contains(expected), "{expected}: {e}");
        }
        let twice = [pem.clone(), pem].concat();
        let e = TagCsr::parse(&twice, "c.pem", &t).unwrap_err();
        assert!(e.to_string().contains("2 PEM blocks"), "{e}");
    }

    #[test]
    fn the_key_is_written_0600_and_nothing_is_overwritten() {
        let dir = scratch("modes");
        let (key, csr) = (dir.join("keys/k.pem"), dir.join("keys/c.pem"));
        make_tag_csr(&tag("tag-1"), &key, &csr).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&key), 0o600);
        assert_eq!(mode(&dir.join("keys")), 0o700);
        assert!(
            std::fs::read_to_string(&key)
                .unwrap()
                .contains("BEGIN PRIVATE KEY")
        );
        let before = std::fs::read(&key).unwrap();
        let e = make_tag_csr(&tag("tag-1"), &key, &dir.join("other.pem")).unwrap_err();
        assert!(e.to_string().contains("exists already"), "{e}");
        assert_eq!(std::fs::read(&key).unwrap(), before);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
