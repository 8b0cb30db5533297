//! Tags: registering a tag with AWS IoT from a CSR the tag made (thing, certificate, the Vigil
//! tag policy, the thing principal), undoing a registration that fails part way, writing the
//! certificate safely, and deactivating a tag.
//!
//! [`TagRegistry`] is the port, one method per IoT call so that [`register_tag`] can undo
//! exactly what it did; [`IotRegistry`] (`tags/iot.rs`) implements it with aws-sdk-iot and
//! [`MemoryRegistry`] (`tags/memory.rs`) in memory for unit tests (which can make any call
//! fail). The port lives here, not in `vigil-aws`, because only the CLI manages things: the
//! functions never link the IoT control plane. The audit of a registration or deactivation is
//! vigil-admin's (`vigil_admin::tags`).

use crate::csr::TagCsr;
use crate::error::{CliError, Result};
use crate::owner_only::{self, write_new};
use crate::report::Report;
use serde::Serialize;
use std::future::Future;
use std::path::{Path, PathBuf};
use vigil_core::TagId;

/// A certificate IoT issued for a tag's CSR. It holds no private key: that stays on the tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCertificate {
    /// The certificate's ARN.
    pub arn: String,
    /// The certificate's id.
    pub id: String,
    /// The certificate, PEM.
    pub pem: String,
}

/// The IoT control plane as the CLI needs it, one IoT call per method.
pub trait TagRegistry: Send + Sync {
    /// Whether a thing named after the tag exists.
    fn thing_exists(&self, tag: &TagId) -> impl Future<Output = Result<bool>> + Send;
    /// Creates the thing named after the tag; returns its ARN.
    fn create_thing(&self, tag: &TagId) -> impl Future<Output = Result<String>> + Send;
    /// Has IoT sign a certificate for the CSR, INACTIVE.
    fn create_certificate(
        &self,
        csr: &TagCsr,
    ) -> impl Future<Output = Result<IssuedCertificate>> + Send;
    /// Attaches the IoT policy `policy` to the certificate.
    fn attach_policy(
        &self,
        policy: &str,
        certificate_arn: &str,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Attaches the certificate to the tag's thing.
    fn attach_thing_principal(
        &self,
        tag: &TagId,
        certificate_arn: &str,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Sets the certificate ACTIVE (it can connect) or INACTIVE.
    fn set_certificate_active(
        &self,
        certificate_id: &str,
        active: bool,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Detaches `policy` from the certificate; one not attached is not an error.
    fn detach_policy(
        &self,
        policy: &str,
        certificate_arn: &str,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Detaches the certificate from the tag's thing; one not attached is not an error.
    fn detach_thing_principal(
        &self,
        tag: &TagId,
        certificate_arn: &str,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Deletes a certificate, which must be INACTIVE with nothing attached.
    fn delete_certificate(&self, certificate_id: &str) -> impl Future<Output = Result<()>> + Send;
    /// Deletes the tag's thing, which must have no certificate attached.
    fn delete_thing(&self, tag: &TagId) -> impl Future<Output = Result<()>> + Send;
    /// Sets every certificate of the thing INACTIVE; returns their ids.
    fn deactivate(&self, tag: &TagId) -> impl Future<Output = Result<Vec<String>>> + Send;
    /// The IoT data endpoint (ATS) tags connect to.
    fn data_endpoint(&self) -> impl Future<Output = Result<String>> + Send;
}

mod iot;
mod memory;

pub use iot::IotRegistry;
pub use memory::{IotCall, MemoryCertificate, MemoryRegistry};

/// A registered tag.
#[derive(Debug, Clone, Serialize)]
pub struct Registered {
    /// The tag.
    pub tag_id: TagId,
    /// The thing's ARN.
    pub thing_arn: String,
    /// The certificate's ARN.
    pub certificate_arn: String,
    /// The certificate's id.
    pub certificate_id: String,
    /// The policy attached.
    pub policy: String,
    /// The certificate file written (the only file: the private key stays on the tag).
    pub certificate_file: PathBuf,
    /// Where the tag connects (MQTT over TLS, port 8883).
    pub data_endpoint: String,
}

impl Report for Registered {
    fn human(&self) -> String {
        format!(
            "registered tag {tag}\nthing        {}\ncertificate  {} (ACTIVE)\npolicy       {}\n\
             file (0600)  {} (install it on the tag, whose private key never left it)\n\
             the tag connects to mqtts://{}:8883 with client id {tag} (the thing name)",
            self.thing_arn,
            self.certificate_arn,
            self.policy,
            self.certificate_file.display(),
            self.data_endpoint,
            tag = self.tag_id,
        )
    }
}

/// Where the tag's certificate is written in `dir`: `<tag>.cert.pem`.
pub fn certificate_path(dir: &Path, tag: &TagId) -> PathBuf {
    dir.join(format!("{tag}.cert.pem"))
}

/// What to do when a certificate file exists: it is never overwritten.
const MOVE_IT_AWAY: &str = "move it away or choose another --out-dir";

/// What [`register_tag`] has done so far: what a failure must undo.
#[derive(Debug, Default)]
struct Progress {
    thing_created: bool,
    certificate: Option<IssuedCertificate>,
    /// Attempted: a call that failed may still have taken effect, and undoing is harmless.
    policy_attached: bool,
    /// Attempted, as above.
    principal_attached: bool,
    certificate_file: Option<PathBuf>,
}

/// Registers a tag from the CSR it made: checks first that the thing and the certificate file
/// do not exist, then creates the thing, has IoT sign the CSR (INACTIVE), attaches `policy` and
/// the thing principal, writes the certificate with mode 0600 into `out_dir` (created 0700),
/// and only then sets the certificate ACTIVE. No private key passes through here.
///
/// If a step fails, everything done is undone (file removed, certificate detached, set
/// INACTIVE and deleted, thing deleted) so the same command can be run again; the error is
/// [`CliError::RolledBack`] with the step's error and anything that could not be undone.
/// Otherwise fails with [`CliError::Invalid`] when the thing or the file exists (saying what to
/// do), [`CliError::Aws`] when IoT fails before anything was made, [`CliError::Io`].
pub async fn register_tag(
    registry: &impl TagRegistry,
    tag: &TagId,
    policy: &str,
    csr: &TagCsr,
    out_dir: &Path,
) -> Result<Registered> {
    let certificate_file = certificate_path(out_dir, tag);
    if certificate_file.exists() {
        return Err(CliError::Invalid(format!(
            "{} exists already: {MOVE_IT_AWAY}",
            certificate_file.display()
        )));
    }
    if registry.thing_exists(tag).await? {
        return Err(CliError::Invalid(format!(
            "{tag} is registered already (IoT thing {tag} exists: a tag, or a victim's device). To replace a lost or \
             compromised certificate, deactivate it with `vigil tags deactivate {tag}` and have \
             an engineer delete the thing; to use another tag, register a new id"
        )));
    }
    let data_endpoint = registry.data_endpoint().await?;
    owner_only::create_dir(out_dir)?;
    let mut done = Progress::default();
    match register_steps(registry, tag, policy, csr, &certificate_file, &mut done).await {
        Ok((thing_arn, certificate)) => Ok(Registered {
            tag_id: tag.clone(),
            thing_arn,
            certificate_arn: certificate.arn,
            certificate_id: certificate.id,
            policy: policy.to_owned(),
            certificate_file,
            data_endpoint,
        }),
        Err(cause) => Err(CliError::RolledBack {
            cause: Box::new(cause),
            not_undone: roll_back(registry, tag, policy, done).await,
        }),
    }
}

/// The steps of [`register_tag`] that make something, each noted in `done` as it is made.
/// The certificate becomes ACTIVE last, so a failure that cannot be undone leaves no
/// certificate that can connect.
async fn register_steps(
    registry: &impl TagRegistry,
    tag: &TagId,
    policy: &str,
    csr: &TagCsr,
    certificate_file: &Path,
    done: &mut Progress,
) -> Result<(String, IssuedCertificate)> {
    let thing_arn = registry.create_thing(tag).await?;
    done.thing_created = true;
    let certificate = registry.create_certificate(csr).await?;
    done.certificate = Some(certificate.clone());
    done.policy_attached = true;
    registry.attach_policy(policy, &certificate.arn).await?;
    done.principal_attached = true;
    registry
        .attach_thing_principal(tag, &certificate.arn)
        .await?;
    write_new(certificate_file, certificate.pem.as_bytes(), MOVE_IT_AWAY)?;
    done.certificate_file = Some(certificate_file.to_owned());
    registry
        .set_certificate_active(&certificate.id, true)
        .await?;
    Ok((thing_arn, certificate))
}

/// Undoes what `done` records, last step first; returns what could not be undone, each with
/// its error. The certificate is set INACTIVE before it is deleted whatever happened, so one
/// that cannot be deleted cannot connect either.
async fn roll_back(
    registry: &impl TagRegistry,
    tag: &TagId,
    policy: &str,
    done: Progress,
) -> Vec<String> {
    let mut not_undone = Vec::new();
    let mut note = |r: Result<()>| {
        if let Err(e) = r {
            not_undone.push(e.to_string());
        }
    };
    if let Some(file) = &done.certificate_file {
        note(
            std::fs::remove_file(file)
                .map_err(CliError::io(format!("removing {}", file.display()))),
        );
    }
    if let Some(cert) = &done.certificate {
        if done.principal_attached {
            note(registry.detach_thing_principal(tag, &cert.arn).await);
        }
        if done.policy_attached {
            note(registry.detach_policy(policy, &cert.arn).await);
        }
        note(registry.set_certificate_active(&cert.id, false).await);
        note(registry.delete_certificate(&cert.id).await);
    }
    if done.thing_created {
        note(registry.delete_thing(tag).await);
    }
    not_undone
}

/// A deactivated tag.
#[derive(Debug, Clone, Serialize)]
pub struct Deactivated {
    /// The tag.
    pub tag_id: TagId,
    /// The certificates now INACTIVE.
    pub certificates: Vec<String>,
}

impl Report for Deactivated {
    fn human(&self) -> String {
        format!(
            "tag {}: {} certificate(s) set INACTIVE ({}); it can no longer connect",
            self.tag_id,
            self.certificates.len(),
            self.certificates.join(", ")
        )
    }
}

/// Sets every certificate of the tag's thing INACTIVE.
///
/// Fails with [`CliError::NotFound`] when the thing does not exist, [`CliError::Aws`].
pub async fn deactivate_tag(registry: &impl TagRegistry, tag: &TagId) -> Result<Deactivated> {
    Ok(Deactivated {
        tag_id: tag.clone(),
        certificates: registry.deactivate(tag).await?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csr::make_tag_csr;
    use std::collections::BTreeSet;
    use std::os::unix::fs::PermissionsExt;

    const POLICY: &str = "vigil-local-tag";

    /// An empty scratch folder for `name`.
    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("vigil-cli-tags-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A CSR made for `tag` (its key made in `dir/keys`, as a simulated tag would).
    fn csr(dir: &Path, tag: &TagId) -> TagCsr {
        let keys = dir.join("keys");
        let made = make_tag_csr(tag, &keys.join("tag.key"), &keys.join("tag.csr")).unwrap();
        TagCsr::read(&made.csr, tag).unwrap()
    }

    fn files_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    #[tokio::test]
    async fn register_writes_only_the_certificate_0600_and_activates_it_last() {
        let dir = scratch("register");
        let reg = MemoryRegistry::default();
        let tag = TagId::new("tag-1").unwrap();
        let csr = csr(&dir, &tag);
        let out = dir.join("creds");
        let r = register_tag(&reg, &tag, POLICY, &csr, &out).await.unwrap();
        assert_eq!(files_in(&out), ["tag-1.cert.pem"]);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&r.certificate_file), 0o600);
        assert_eq!(mode(&out), 0o700);
        let certs = reg.certificates_of(&tag);
        assert_eq!(certs.len(), 1);
        assert!(certs[0].active);
        assert_eq!(certs[0].policies, BTreeSet::from([POLICY.to_owned()]));
        assert_eq!(certs[0].id, r.certificate_id);

        let e = register_tag(&reg, &tag, POLICY, &csr, &out)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("exists already"), "{e}");
        let e = register_tag(&reg, &tag, POLICY, &csr, &dir.join("other"))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("registered already"), "{e}");
        assert_eq!(reg.certificates().len(), 1, "a refusal makes nothing");

        let d = deactivate_tag(&reg, &tag).await.unwrap();
        assert_eq!(d.certificates, [r.certificate_id]);
        assert!(reg.certificates().iter().all(|c| !c.active));
        let none = TagId::new("none").unwrap();
        assert_eq!(
            deactivate_tag(&reg, &none).await.unwrap_err().exit_code(),
            2
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// How a step of a registration is made to fail.
    #[derive(Debug, Clone, Copy)]
    enum Failure {
        Iot(IotCall),
        /// Something at the certificate's path that `exists()` does not see (a dangling
        /// symlink), so the check passes and writing the file fails.
        CertificateFile,
    }

    #[tokio::test]
    async fn a_failure_at_any_step_is_rolled_back_and_a_retry_succeeds() {
        let dir = scratch("rollback");
        let tag = TagId::new("tag-1").unwrap();
        let csr = csr(&dir, &tag);
        for failure in [
            Failure::Iot(IotCall::CreateThing),
            Failure::Iot(IotCall::CreateCertificate),
            Failure::Iot(IotCall::AttachPolicy),
            Failure::Iot(IotCall::AttachThingPrincipal),
            Failure::CertificateFile,
            Failure::Iot(IotCall::SetCertificateActive),
        ] {
            let reg = MemoryRegistry::default();
            let out = dir.join(format!("{failure:?}"));
            std::fs::create_dir_all(&out).unwrap();
            let blocker = certificate_path(&out, &tag);
            match failure {
                Failure::Iot(call) => reg.fail_next(call),
                Failure::CertificateFile => {
                    std::os::unix::fs::symlink(dir.join("nowhere"), &blocker).unwrap();
                }
            }

            let e = register_tag(&reg, &tag, POLICY, &csr, &out)
                .await
                .unwrap_err();
            let m = e.to_string();
            let cause = match failure {
                Failure::Iot(call) => format!("{call:?} failed"),
                Failure::CertificateFile => format!("creating {}", blocker.display()),
            };
            assert!(m.contains(&cause), "{failure:?}: {m}");
            assert!(m.contains("rolled back"), "{failure:?}: {m}");
            assert!(matches!(e, CliError::RolledBack { .. }), "{failure:?}");
            assert_eq!(reg.certificates(), [], "{failure:?}: no certificate left");
            assert!(!reg.thing_exists(&tag).await.unwrap(), "{failure:?}");

            if let Failure::CertificateFile = failure {
                assert!(blocker.symlink_metadata().is_ok(), "what was there is kept");
                std::fs::remove_file(&blocker).unwrap();
            }
            assert_eq!(files_in(&out), Vec::<String>::new(), "{failure:?}");
            let r = register_tag(&reg, &tag, POLICY, &csr, &out)
                .await
                .unwrap_or_else(|e| panic!("{failure:?}: the retry fails: {e}"));
            let certs = reg.certificates();
            assert_eq!(certs.len(), 1, "{failure:?}");
            assert!(certs[0].active && certs[0].id == r.certificate_id);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_rollback_that_cannot_finish_names_what_is_left_and_leaves_nothing_active() {
        let dir = scratch("rollback-fails");
        let tag = TagId::new("tag-1").unwrap();
        let csr = csr(&dir, &tag);
        let reg = MemoryRegistry::default();
        reg.fail_next(IotCall::AttachThingPrincipal);
        reg.fail_next(IotCall::DeleteCertificate);
        let e = register_tag(&reg, &tag, POLICY, &csr, &dir.join("creds"))
            .await
            .unwrap_err();
        let m = e.to_string();
        assert!(
            m.starts_with("memory IoT: AttachThingPrincipal failed")
                && m.contains("rollback incomplete")
                && m.contains("DeleteCertificate failed"),
            "{m}"
        );
        assert!(!e.is_retryable());
        assert_eq!(e.exit_code(), 3);
        let left = reg.certificates();
        assert_eq!(left.len(), 1);
        assert!(!left[0].active && left[0].policies.is_empty() && left[0].things.is_empty());
        assert!(!reg.thing_exists(&tag).await.unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
