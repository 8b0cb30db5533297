//! [`TagRegistry`] on AWS IoT: one control-plane call per method, IoT's errors classified
//! (retryable or not), and a delete after a detach tried again while IoT still propagates it.

use super::{IssuedCertificate, TagRegistry};
use crate::csr::TagCsr;
use crate::error::{CliError, Result};
use aws_sdk_iot::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_iot::types::CertificateStatus;
use std::future::Future;
use std::time::Duration;
use vigil_core::TagId;

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

/// IoT detaches a principal asynchronously ("it might take several seconds to propagate"), so
/// a delete right after a detach can be refused as still attached; it is tried again after
/// each of these waits before the refusal is reported.
const DETACH_PROPAGATION_WAITS: [Duration; 4] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
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

/// The service's error code, if IoT answered with one.
fn error_code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<&str> {
    e.as_service_error().and_then(|s| s.code())
}

/// `Ok(())` for a call that succeeded or found nothing to act on (ResourceNotFoundException,
/// whether or not the operation's model lists it).
fn unless_not_found<T, E, R>(
    operation: String,
    result: std::result::Result<T, SdkError<E, R>>,
) -> Result<()>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(_) => Ok(()),
        Err(e) if error_code(&e) == Some("ResourceNotFoundException") => Ok(()),
        Err(e) => Err(iot_error(operation)(e)),
    }
}

/// Runs a delete, again after each of [`DETACH_PROPAGATION_WAITS`] while IoT refuses it with
/// the error code `still_attached`.
async fn delete_after_detach<T, E, R, F, Fut>(
    operation: String,
    still_attached: &str,
    call: F,
) -> Result<()>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
    F: Fn() -> Fut,
    Fut: Future<Output = std::result::Result<T, SdkError<E, R>>>,
{
    for wait in DETACH_PROPAGATION_WAITS {
        match call().await {
            Ok(_) => return Ok(()),
            Err(e) if error_code(&e) == Some(still_attached) => {
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(iot_error(operation)(e)),
        }
    }
    call().await.map(|_| ()).map_err(iot_error(operation))
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

    async fn create_thing(&self, tag: &TagId) -> Result<String> {
        let thing = self
            .client
            .create_thing()
            .thing_name(tag.as_str())
            .send()
            .await
            .map_err(iot_error(format!("CreateThing {tag}")))?;
        Ok(thing.thing_arn().unwrap_or_default().to_owned())
    }

    async fn create_certificate(&self, csr: &TagCsr) -> Result<IssuedCertificate> {
        let cert = self
            .client
            .create_certificate_from_csr()
            .certificate_signing_request(csr.pem())
            .set_as_active(false)
            .send()
            .await
            .map_err(iot_error("CreateCertificateFromCsr".into()))?;
        Ok(IssuedCertificate {
            arn: cert.certificate_arn().unwrap_or_default().to_owned(),
            id: cert.certificate_id().unwrap_or_default().to_owned(),
            pem: cert.certificate_pem().unwrap_or_default().to_owned(),
        })
    }

    async fn attach_policy(&self, policy: &str, certificate_arn: &str) -> Result<()> {
        self.client
            .attach_policy()
            .policy_name(policy)
            .target(certificate_arn)
            .send()
            .await
            .map_err(iot_error(format!(
                "AttachPolicy {policy} to {certificate_arn}"
            )))?;
        Ok(())
    }

    async fn attach_thing_principal(&self, tag: &TagId, certificate_arn: &str) -> Result<()> {
        self.client
            .attach_thing_principal()
            .thing_name(tag.as_str())
            .principal(certificate_arn)
            .send()
            .await
            .map_err(iot_error(format!(
                "AttachThingPrincipal {certificate_arn} to {tag}"
            )))?;
        Ok(())
    }

    async fn set_certificate_active(&self, certificate_id: &str, active: bool) -> Result<()> {
        let status = if active {
            CertificateStatus::Active
        } else {
            CertificateStatus::Inactive
        };
        self.client
            .update_certificate()
            .certificate_id(certificate_id)
            .new_status(status.clone())
            .send()
            .await
            .map_err(iot_error(format!(
                "UpdateCertificate {certificate_id} {}",
                status.as_str()
            )))?;
        Ok(())
    }

    async fn detach_policy(&self, policy: &str, certificate_arn: &str) -> Result<()> {
        let result = self
            .client
            .detach_policy()
            .policy_name(policy)
            .target(certificate_arn)
            .send()
            .await;
        unless_not_found(
            format!("DetachPolicy {policy} from {certificate_arn}"),
            result,
        )
    }

    async fn detach_thing_principal(&self, tag: &TagId, certificate_arn: &str) -> Result<()> {
        let result = self
            .client
            .detach_thing_principal()
            .thing_name(tag.as_str())
            .principal(certificate_arn)
            .send()
            .await;
        unless_not_found(
            format!("DetachThingPrincipal {certificate_arn} from {tag}"),
            result,
        )
    }

    async fn delete_certificate(&self, certificate_id: &str) -> Result<()> {
        delete_after_detach(
            format!("DeleteCertificate {certificate_id}"),
            "DeleteConflictException",
            || {
                self.client
                    .delete_certificate()
                    .certificate_id(certificate_id)
                    .send()
            },
        )
        .await
    }

    async fn delete_thing(&self, tag: &TagId) -> Result<()> {
        delete_after_detach(
            format!("DeleteThing {tag}"),
            // IoT's refusal to delete a thing that still has a principal.
            "InvalidRequestException",
            || self.client.delete_thing().thing_name(tag.as_str()).send(),
        )
        .await
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
                    "no IoT thing {tag}: register it with `vigil tags register {tag} --csr <file>`"
                )));
            }
            Err(e) => return Err(iot_error(format!("ListThingPrincipals {tag}"))(e)),
        };
        let mut ids = Vec::new();
        for arn in principals.iter().filter(|a| a.contains(":cert/")) {
            let id = arn.rsplit('/').next().unwrap_or_default().to_owned();
            self.set_certificate_active(&id, false).await?;
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
