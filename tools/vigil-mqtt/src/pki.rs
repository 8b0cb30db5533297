//! A local certificate authority for mutual TLS on loopback: the CA, the broker's server
//! certificate (127.0.0.1 and localhost) and one client certificate per tag (CN = tag id = the
//! AWS IoT thing name), all PEM files under `.local/pki/` (git-ignored).
//!
//! ```text
//! .local/pki/ca.pem  ca.key           the local CA (ECDSA P-256, 10 years)
//! .local/pki/server.pem  server.key   the broker's certificate, SAN 127.0.0.1, ::1, localhost
//! .local/pki/clients/<id>.pem  .key   one per tag, and one for the bridge (`vigil-bridge`)
//! ```
//!
//! The CA key lives beside the CA so that later runs can issue more client certificates from
//! the same CA: this is a test CA for loopback only, never for a real tag. Keys are written
//! 0600 and the folders are 0700 (other users of the machine cannot read a key or plant a
//! certificate). Leaf certificates (server, clients) are valid for [`LEAF_VALIDITY_DAYS`] and
//! issued again when fewer than [`RENEW_BEFORE_DAYS`] remain, or when an older run issued one
//! with a longer validity (rcgen's default was the year 4096).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// The common name of the local CA; also how its parameters are rebuilt to issue more certs.
const CA_COMMON_NAME: &str = "Vigil local test CA";
/// How long a leaf certificate is valid, from the day before it is issued.
pub const LEAF_VALIDITY_DAYS: i64 = 30;
/// A leaf certificate with fewer days than this left is issued again.
pub const RENEW_BEFORE_DAYS: i64 = 7;

/// The client identity the IoT rule bridge connects with.
pub const BRIDGE_CLIENT_ID: &str = "vigil-bridge";
/// The client identity that sends commands to tags (`tags/{tag}/cmd`) and may watch every
/// tag's topics: the operators' side, which in AWS publishes through the IoT data plane with
/// IAM rather than as a thing.
pub const OPERATOR_CLIENT_ID: &str = "vigil-operator";

/// The IoT policy a tag's certificate has (logical name in `infra/resources.json`).
pub const TAG_POLICY: &str = "tag";

/// The IoT policy a victim's own device's certificate has.
pub const VICTIM_DEVICE_POLICY: &str = "victim-device";

/// What can go wrong generating or reading certificates.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// rcgen refused to build or sign a certificate.
    #[error("generating {what}: {source}")]
    Generate {
        /// Which certificate.
        what: String,
        /// The rcgen error.
        #[source]
        source: rcgen::Error,
    },
    /// A client id that cannot be a file name or an IoT thing name.
    #[error(
        "client id {0:?} is not valid: use 1-64 characters of A-Z a-z 0-9 - _ . (an AWS IoT thing name)"
    )]
    BadClientId(String),
}

/// A certificate and its private key, PEM.
#[derive(Debug, Clone)]
pub struct CertPair {
    /// The certificate file.
    pub cert: PathBuf,
    /// The private key file (PKCS#8).
    pub key: PathBuf,
}

impl CertPair {
    /// Reads both files: `(certificate PEM, key PEM)`.
    ///
    /// Fails with [`PkiError::Io`] if either file cannot be read.
    pub fn read(&self) -> Result<(Vec<u8>, Vec<u8>), PkiError> {
        Ok((read(&self.cert)?, read(&self.key)?))
    }
}

/// A local PKI directory (see the module docs for its files).
#[derive(Debug, Clone)]
pub struct Pki {
    dir: PathBuf,
}

impl Pki {
    /// The default directory: `<workspace root>/.local/pki`.
    pub fn default_dir() -> PathBuf {
        vigil_local::local_dir().join("pki")
    }

    /// Opens `dir`, creating the CA and the server certificate if either is missing. An existing
    /// CA is kept, so certificates issued earlier stay valid.
    ///
    /// Fails with [`PkiError::Io`] if the directory cannot be written, or
    /// [`PkiError::Generate`] if a certificate cannot be made.
    pub fn ensure(dir: impl Into<PathBuf>) -> Result<Pki, PkiError> {
        let pki = Pki { dir: dir.into() };
        mkdir(&pki.dir)?;
        mkdir(&pki.dir.join("clients"))?;
        let _lock = pki.lock()?;
        let ca = pki.ca();
        if !ca.cert.is_file() || !ca.key.is_file() {
            let key = KeyPair::generate().map_err(generate("the CA key"))?;
            let cert = ca_params()
                .self_signed(&key)
                .map_err(generate("the CA certificate"))?;
            write(&ca.key, key.serialize_pem().as_bytes(), KEY_MODE)?;
            write(&ca.cert, cert.pem().as_bytes(), CERT_MODE)?;
            // A new CA invalidates everything it did not sign.
            let _ = std::fs::remove_file(pki.server().cert);
            if let Ok(entries) = std::fs::read_dir(pki.dir.join("clients")) {
                for entry in entries.flatten() {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        let server = pki.server();
        if needs_issuing(&server) {
            let mut params =
                CertificateParams::new(vec!["localhost".to_owned()]).map_err(generate("server"))?;
            params
                .subject_alt_names
                .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
            params
                .subject_alt_names
                .push(SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()));
            params.distinguished_name = name("vigil local broker");
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            pki.issue(&server, params, "the server certificate")?;
        }
        Ok(pki)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate and key.
    pub fn ca(&self) -> CertPair {
        CertPair {
            cert: self.dir.join("ca.pem"),
            key: self.dir.join("ca.key"),
        }
    }

    /// The broker's server certificate and key.
    pub fn server(&self) -> CertPair {
        CertPair {
            cert: self.dir.join("server.pem"),
            key: self.dir.join("server.key"),
        }
    }

    /// The CA certificate, PEM.
    ///
    /// Fails with [`PkiError::Io`] if it cannot be read.
    pub fn ca_pem(&self) -> Result<Vec<u8>, PkiError> {
        read(&self.ca().cert)
    }

    /// The client certificate of `client_id` (a tag id, or [`BRIDGE_CLIENT_ID`]), issuing it
    /// when missing: CN = `client_id`, client-auth only, no organisation (the broker would
    /// otherwise treat the organisation as a tenant and rename the client).
    ///
    /// Fails with [`PkiError::BadClientId`] for an id that is not a valid thing name, and
    /// otherwise as [`Pki::ensure`].
    pub fn client(&self, client_id: &str) -> Result<CertPair, PkiError> {
        let valid = !client_id.is_empty()
            && client_id.len() <= 64
            && client_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !valid {
            return Err(PkiError::BadClientId(client_id.to_owned()));
        }
        let pair = CertPair {
            cert: self.dir.join("clients").join(format!("{client_id}.pem")),
            key: self.dir.join("clients").join(format!("{client_id}.key")),
        };
        let _lock = self.lock()?;
        if needs_issuing(&pair) {
            let mut params = CertificateParams::default();
            params.distinguished_name = name(client_id);
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            self.issue(
                &pair,
                params,
                &format!("the client certificate of {client_id}"),
            )?;
        }
        Ok(pair)
    }

    /// The client certificate of a victim's own device (docs/PROXIMITY.md), issuing it when
    /// missing, with the victim-device policy attached: as `vigil devices register` attaches
    /// it in AWS, the certificate may then act only on `victims/<device>/...`.
    ///
    /// Fails as [`Pki::client`].
    pub fn device(&self, device_id: &str) -> Result<CertPair, PkiError> {
        let pair = self.client(device_id)?;
        let path = self.attachment(device_id);
        write(&path, VICTIM_DEVICE_POLICY.as_bytes(), CERT_MODE)?;
        Ok(pair)
    }

    /// The IoT policy attached to `thing`'s certificate: [`VICTIM_DEVICE_POLICY`] for a
    /// certificate [`Pki::device`] issued, [`TAG_POLICY`] otherwise.
    pub fn attached_policy(&self, thing: &str) -> String {
        std::fs::read_to_string(self.attachment(thing))
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| TAG_POLICY.to_owned())
    }

    fn attachment(&self, thing: &str) -> PathBuf {
        self.dir.join("clients").join(format!("{thing}.policy"))
    }

    /// An exclusive lock on `<dir>/.lock`, so parallel tests and tools issue each file once.
    fn lock(&self) -> Result<std::fs::File, PkiError> {
        let path = self.dir.join(".lock");
        let file = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .and_then(|f| f.lock().map(|()| f))
            .map_err(|source| PkiError::Io { path, source })?;
        Ok(file)
    }

    fn issue(
        &self,
        pair: &CertPair,
        params: CertificateParams,
        what: &str,
    ) -> Result<(), PkiError> {
        let ca_key_pem = String::from_utf8_lossy(&read(&self.ca().key)?).into_owned();
        let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(generate("reading the CA key"))?;
        // The issuer name and key identifier come from the CA's parameters and key: rebuilding
        // the same parameters avoids parsing the CA certificate.
        let issuer = Issuer::new(ca_params(), ca_key);
        let key = KeyPair::generate().map_err(generate(what))?;
        let mut params = params;
        set_leaf_validity(&mut params, chrono::Utc::now().date_naive());
        let cert = params.signed_by(&key, &issuer).map_err(generate(what))?;
        write(&pair.key, key.serialize_pem().as_bytes(), KEY_MODE)?;
        write(&pair.cert, cert.pem().as_bytes(), CERT_MODE)
    }
}

/// A throwaway CA that is not the local one, with one client certificate, in `dir`: for tests
/// that a broker refuses certificates from another CA.
///
/// Fails as [`Pki::ensure`].
pub fn foreign_client(dir: &Path, client_id: &str) -> Result<CertPair, PkiError> {
    Pki::ensure(dir)?.client(client_id)
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = name(CA_COMMON_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2035, 1, 1);
    params
}

/// A leaf's validity issued on `today`: from yesterday (clock skew) for
/// [`LEAF_VALIDITY_DAYS`].
fn set_leaf_validity(params: &mut CertificateParams, today: chrono::NaiveDate) {
    use chrono::Datelike;
    let day = |d: chrono::NaiveDate| {
        // Month 1-12 and day 1-31 always fit.
        rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8)
    };
    params.not_before = day(today - chrono::Days::new(1));
    params.not_after = day(today + chrono::Days::new(LEAF_VALIDITY_DAYS.unsigned_abs()));
}

/// Whether `pair` is missing, unreadable, expiring within [`RENEW_BEFORE_DAYS`], or valid for
/// longer than a leaf issued now would be.
fn needs_issuing(pair: &CertPair) -> bool {
    if !pair.cert.is_file() || !pair.key.is_file() {
        return true;
    }
    let Some(not_after) = not_after(&pair.cert) else {
        return true;
    };
    let now = chrono::Utc::now().timestamp();
    let day = 86_400;
    not_after < now + RENEW_BEFORE_DAYS * day || not_after > now + (LEAF_VALIDITY_DAYS + 1) * day
}

/// The certificate's `notAfter`, Unix seconds.
pub fn not_after(cert: &Path) -> Option<i64> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let der = CertificateDer::from_pem_file(cert).ok()?;
    let (_, parsed) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    Some(parsed.validity().not_after.timestamp())
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

fn generate(what: impl Into<String>) -> impl FnOnce(rcgen::Error) -> PkiError {
    let what = what.into();
    move |source| PkiError::Generate { what, source }
}

/// Private keys: owner read and write only.
const KEY_MODE: u32 = 0o600;
/// Certificates: public, but written only by the owner.
const CERT_MODE: u32 = 0o644;

/// Creates `path` (and its parents) and makes it 0700, also when it already existed.
fn mkdir(path: &Path) -> Result<(), PkiError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let io = |source| PkiError::Io {
        path: path.to_owned(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(io)
}

fn read(path: &Path) -> Result<Vec<u8>, PkiError> {
    std::fs::read(path).map_err(|source| PkiError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Writes via a temporary file (created with `mode`, so a key is never readable by others, not
/// even for a moment) and a rename, so a concurrent reader never sees half a PEM.
fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::fs::File::options()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes))
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|source| PkiError::Io {
            path: path.to_owned(),
            source,
        })
}
