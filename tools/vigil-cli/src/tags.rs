//! Tags: registering a tag with AWS IoT (thing, keys and certificate, the Vigil tag policy,
//! the thing principal), writing its credentials safely, and deactivating it.
//!
//! [`TagRegistry`] is the port; [`IotRegistry`] implements it with aws-sdk-iot and
//! [`MemoryRegistry`] in memory for unit tests. The port lives here, not in `vigil-aws`,
//! because only the CLI manages things: the functions never link the IoT control plane.

use crate::error::{CliError, Result};
use crate::owner_only::{self, write_new};
use crate::report::Report;
use aws_sdk_iot::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use serde::Serialize;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use vigil_core::TagId;

/// What IoT returns when a tag is registered; the private key exists only here.
#[derive(Clone, PartialEq, Eq)]
pub struct TagCredentials {
    /// The thing's ARN.
    pub thing_arn: String,
    /// The certificate's ARN.
    pub certificate_arn: String,
    /// The certificate's id.
    pub certificate_id: String,
    /// The certificate, PEM.
    pub certificate_pem: String,
    /// The public key, PEM.
    pub public_key: String,
    /// The private key, PEM. Never printed.
    pub private_key: String,
}

impl std::fmt::Debug for TagCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TagCredentials")
            .field("thing_arn", &self.thing_arn)
            .field("certificate_arn", &self.certificate_arn)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

/// The IoT control plane as the CLI needs it.
pub trait TagRegistry: Send + Sync {
    /// Whether a thing named after the tag exists.
    fn thing_exists(&self, tag: &TagId) -> impl Future<Output = Result<bool>> + Send;
    /// Creates the thing, an active certificate with new keys, attaches `policy` to the
    /// certificate and the certificate to the thing.
    fn register(
        &self,
        tag: &TagId,
        policy: &str,
    ) -> impl Future<Output = Result<TagCredentials>> + Send;
    /// Sets every certificate of the thing INACTIVE; returns their ids.
    fn deactivate(&self, tag: &TagId) -> impl Future<Output = Result<Vec<String>>> + Send;
    /// The IoT data endpoint (ATS) tags connect to.
    fn data_endpoint(&self) -> impl Future<Output = Result<String>> + Send;
}

/// [`TagRegistry`] on AWS IoT.
#[derive(Debug, Clone)]
pub struct IotRegistry {
    client: aws_sdk_iot::Client,
}

impl IotRegistry {
    /// A registry on `client`.
    pub fn new(client: aws_sdk_iot::Client) -> Self {
        IotRegistry { client }
    }
}

const RETRYABLE: &[&str] = &[
    "ThrottlingException",
    "ServiceUnavailableException",
    "InternalFailureException",
    "InternalException",
    "LimitExceededException",
];

fn iot_error<E, R>(operation: String) -> impl FnOnce(SdkError<E, R>) -> CliError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    move |e| {
        let (retryable, detail) = match &e {
            SdkError::ServiceError(se) => {
                let code = se.err().code().unwrap_or("Unknown");
                (
                    RETRYABLE.contains(&code),
                    format!("{code}: {}", se.err().message().unwrap_or_default()),
                )
            }
            SdkError::ConstructionFailure(_) => (false, DisplayErrorContext(&e).to_string()),
            _ => (true, DisplayErrorContext(&e).to_string()),
        };
        CliError::Aws {
            operation,
            detail,
            retryable,
        }
    }
}

impl TagRegistry for IotRegistry {
    async fn thing_exists(&self, tag: &TagId) -> Result<bool> {
        match self
            .client
            .describe_thing()
            .thing_name(tag.as_str())
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(iot_error(format!("DescribeThing {tag}"))(e)),
        }
    }

    async fn register(&self, tag: &TagId, policy: &str) -> Result<TagCredentials> {
        let thing = self
            .client
            .create_thing()
            .thing_name(tag.as_str())
            .send()
            .await
            .map_err(iot_error(format!("CreateThing {tag}")))?;
        let keys = self
            .client
            .create_keys_and_certificate()
            .set_as_active(true)
            .send()
            .await
            .map_err(iot_error(format!("CreateKeysAndCertificate for {tag}")))?;
        let certificate_arn = keys.certificate_arn().unwrap_or_default().to_owned();
        self.client
            .attach_policy()
            .policy_name(policy)
            .target(&certificate_arn)
            .send()
            .await
            .map_err(iot_error(format!(
                "AttachPolicy {policy} to {certificate_arn}"
            )))?;
        self.client
            .attach_thing_principal()
            .thing_name(tag.as_str())
            .principal(&certificate_arn)
            .send()
            .await
            .map_err(iot_error(format!("AttachThingPrincipal {tag}")))?;
        let pair = keys.key_pair();
        Ok(TagCredentials {
            thing_arn: thing.thing_arn().unwrap_or_default().to_owned(),
            certificate_id: keys.certificate_id().unwrap_or_default().to_owned(),
            certificate_arn,
            certificate_pem: keys.certificate_pem().unwrap_or_default().to_owned(),
            public_key: pair
                .and_then(|p| p.public_key())
                .unwrap_or_default()
                .to_owned(),
            private_key: pair
                .and_then(|p| p.private_key())
                .unwrap_or_default()
                .to_owned(),
        })
    }

    async fn deactivate(&self, tag: &TagId) -> Result<Vec<String>> {
        let principals = match self
            .client
            .list_thing_principals()
            .thing_name(tag.as_str())
            .send()
            .await
        {
            Ok(p) => p.principals().to_vec(),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                return Err(CliError::NotFound(format!(
                    "no IoT thing {tag}: register it with `vigil tags register {tag}`"
                )));
            }
            Err(e) => return Err(iot_error(format!("ListThingPrincipals {tag}"))(e)),
        };
        let mut ids = Vec::new();
        for arn in principals.iter().filter(|a| a.contains(":cert/")) {
            let id = arn.rsplit('/').next().unwrap_or_default().to_owned();
            self.client
                .update_certificate()
                .certificate_id(&id)
                .new_status(aws_sdk_iot::types::CertificateStatus::Inactive)
                .send()
                .await
                .map_err(iot_error(format!("UpdateCertificate {id} INACTIVE")))?;
            ids.push(id);
        }
        Ok(ids)
    }

    async fn data_endpoint(&self) -> Result<String> {
        Ok(self
            .client
            .describe_endpoint()
            .endpoint_type("iot:Data-ATS")
            .send()
            .await
            .map_err(iot_error("DescribeEndpoint iot:Data-ATS".into()))?
            .endpoint_address()
            .unwrap_or_default()
            .to_owned())
    }
}

/// A certificate in [`MemoryRegistry`]: id, whether it is active, the policy attached.
pub type MemoryCertificate = (String, bool, String);

/// [`TagRegistry`] in memory, for unit tests: things with their certificates' states.
#[derive(Debug, Default)]
pub struct MemoryRegistry {
    things: Mutex<std::collections::BTreeMap<TagId, Vec<MemoryCertificate>>>,
}

impl MemoryRegistry {
    /// The certificates of a thing: (id, active, policy).
    pub fn certificates(&self, tag: &TagId) -> Vec<MemoryCertificate> {
        self.things
            .lock()
            .expect("registry lock")
            .get(tag)
            .cloned()
            .unwrap_or_default()
    }
}

impl TagRegistry for MemoryRegistry {
    async fn thing_exists(&self, tag: &TagId) -> Result<bool> {
        Ok(self.things.lock().expect("registry lock").contains_key(tag))
    }

    async fn register(&self, tag: &TagId, policy: &str) -> Result<TagCredentials> {
        let mut things = self.things.lock().expect("registry lock");
        let id = format!("cert{}", things.len() + 1);
        things
            .entry(tag.clone())
            .or_default()
            .push((id.clone(), true, policy.to_owned()));
        Ok(TagCredentials {
            thing_arn: format!("arn:aws:iot:local:0:thing/{tag}"),
            certificate_arn: format!("arn:aws:iot:local:0:cert/{id}"),
            certificate_id: id,
            certificate_pem: "-----BEGIN CERTIFICATE-----\n".into(),
            public_key: "-----BEGIN PUBLIC KEY-----\n".into(),
            private_key: "-----BEGIN RSA PRIVATE KEY-----\n".into(),
        })
    }

    async fn deactivate(&self, tag: &TagId) -> Result<Vec<String>> {
        let mut things = self.things.lock().expect("registry lock");
        let certs = things
            .get_mut(tag)
            .ok_or_else(|| CliError::NotFound(format!("no IoT thing {tag}")))?;
        for c in certs.iter_mut() {
            c.1 = false;
        }
        Ok(certs.iter().map(|c| c.0.clone()).collect())
    }

    async fn data_endpoint(&self) -> Result<String> {
        Ok("memory.iot.local".into())
    }
}

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
    /// The files written (certificate, private key, public key).
    pub files: Vec<PathBuf>,
    /// Where the tag connects (MQTT over TLS, port 8883).
    pub data_endpoint: String,
}

impl Report for Registered {
    fn human(&self) -> String {
        let mut out = format!(
            "registered tag {}\nthing        {}\ncertificate  {} (ACTIVE)\npolicy       {}\nfiles (0600):",
            self.tag_id, self.thing_arn, self.certificate_arn, self.policy
        );
        for f in &self.files {
            out.push_str(&format!("\n  {}", f.display()));
        }
        out.push_str(&format!(
            "\nthe tag connects to mqtts://{}:8883 with client id {} (the thing name)",
            self.data_endpoint, self.tag_id
        ));
        out
    }
}

/// The three credential files of a tag in `dir`: certificate, private key, public key.
pub fn credential_paths(dir: &Path, tag: &TagId) -> [PathBuf; 3] {
    [
        dir.join(format!("{tag}.cert.pem")),
        dir.join(format!("{tag}.private.key")),
        dir.join(format!("{tag}.public.key")),
    ]
}

/// What to do when a credential file exists: they are never overwritten.
const MOVE_IT_AWAY: &str = "move it away or choose another --out-dir";

/// Registers a tag: checks first that the thing does not exist and that none of the credential
/// files exists in `out_dir` (the private key can be fetched only once), then registers it with
/// `policy` and writes the files with mode 0600.
///
/// Fails with [`CliError::Invalid`] when the thing or a file exists (saying what to do),
/// [`CliError::Aws`] when IoT fails, [`CliError::Io`] when a file cannot be written.
pub async fn register_tag(
    registry: &impl TagRegistry,
    tag: &TagId,
    policy: &str,
    out_dir: &Path,
) -> Result<Registered> {
    let paths = credential_paths(out_dir, tag);
    if let Some(p) = paths.iter().find(|p| p.exists()) {
        return Err(CliError::Invalid(format!(
            "{} exists already: {MOVE_IT_AWAY}",
            p.display()
        )));
    }
    if registry.thing_exists(tag).await? {
        return Err(CliError::Invalid(format!(
            "tag {tag} is registered already (IoT thing {tag} exists). To replace a lost or \
             compromised certificate, deactivate it with `vigil tags deactivate {tag}` and have \
             an engineer delete the thing; to use another tag, register a new id"
        )));
    }
    owner_only::create_dir(out_dir)?;
    let creds = registry.register(tag, policy).await?;
    let [cert, key, public] = &paths;
    write_new(key, creds.private_key.as_bytes(), MOVE_IT_AWAY)?;
    write_new(cert, creds.certificate_pem.as_bytes(), MOVE_IT_AWAY)?;
    write_new(public, creds.public_key.as_bytes(), MOVE_IT_AWAY)?;
    let data_endpoint = registry.data_endpoint().await?;
    Ok(Registered {
        tag_id: tag.clone(),
        thing_arn: creds.thing_arn,
        certificate_arn: creds.certificate_arn,
        certificate_id: creds.certificate_id,
        policy: policy.to_owned(),
        files: paths.to_vec(),
        data_endpoint,
    })
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
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test]
    async fn register_writes_private_files_once() {
        let dir = std::env::temp_dir().join(format!("vigil-cli-tags-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let reg = MemoryRegistry::default();
        let tag = TagId::new("tag-1").unwrap();
        let r = register_tag(&reg, &tag, "vigil-local-tag", &dir)
            .await
            .unwrap();
        for f in &r.files {
            let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", f.display());
        }
        assert!(
            !format!(
                "{:?}",
                TagCredentials::clone(&reg.register(&tag, "p").await.unwrap())
            )
            .contains("PRIVATE")
        );
        let e = register_tag(&reg, &tag, "vigil-local-tag", &dir)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("exists already"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
        let e = register_tag(&reg, &tag, "vigil-local-tag", &dir)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("registered already"), "{e}");
        let d = deactivate_tag(&reg, &tag).await.unwrap();
        assert_eq!(d.certificates.len(), 2);
        assert!(reg.certificates(&tag).iter().all(|c| !c.1));
        let none = TagId::new("none").unwrap();
        assert_eq!(
            deactivate_tag(&reg, &none).await.unwrap_err().exit_code(),
            2
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
