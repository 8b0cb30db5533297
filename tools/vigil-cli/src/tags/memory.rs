//! [`TagRegistry`] in memory, for unit tests: IoT's rules for things and certificates, and
//! any call made to fail.

use super::{IssuedCertificate, TagRegistry};
use crate::csr::TagCsr;
use crate::error::{CliError, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};
use vigil_core::TagId;

/// A call of [`MemoryRegistry`] that a test can make fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum IotCall {
    /// [`TagRegistry::create_thing`].
    CreateThing,
    /// [`TagRegistry::create_certificate`].
    CreateCertificate,
    /// [`TagRegistry::attach_policy`].
    AttachPolicy,
    /// [`TagRegistry::attach_thing_principal`].
    AttachThingPrincipal,
    /// [`TagRegistry::set_certificate_active`].
    SetCertificateActive,
    /// [`TagRegistry::detach_policy`].
    DetachPolicy,
    /// [`TagRegistry::detach_thing_principal`].
    DetachThingPrincipal,
    /// [`TagRegistry::delete_certificate`].
    DeleteCertificate,
    /// [`TagRegistry::delete_thing`].
    DeleteThing,
}

/// A certificate in [`MemoryRegistry`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryCertificate {
    /// Its id.
    pub id: String,
    /// Its ARN.
    pub arn: String,
    /// Whether it is ACTIVE.
    pub active: bool,
    /// The policies attached to it.
    pub policies: BTreeSet<String>,
    /// The things it is attached to.
    pub things: BTreeSet<TagId>,
}

#[derive(Debug, Default)]
struct MemoryIot {
    things: BTreeSet<TagId>,
    certificates: BTreeMap<String, MemoryCertificate>,
    issued: u32,
}

impl MemoryIot {
    fn certificate(&mut self, arn: &str) -> Result<&mut MemoryCertificate> {
        self.certificates
            .values_mut()
            .find(|c| c.arn == arn)
            .ok_or_else(|| refused(format!("no certificate {arn}")))
    }
}

/// [`TagRegistry`] in memory, for unit tests: things and certificates with IoT's rules (a
/// certificate is deleted only INACTIVE with nothing attached, a thing only without
/// certificates), and calls a test makes fail.
#[derive(Debug, Default)]
pub struct MemoryRegistry {
    iot: Mutex<MemoryIot>,
    failing: Mutex<BTreeSet<IotCall>>,
}

/// IoT refusing a call, as a retry would not fix.
fn refused(detail: String) -> CliError {
    CliError::Aws {
        operation: "memory IoT".into(),
        detail,
        retryable: false,
    }
}

impl MemoryRegistry {
    /// Makes the next `call` fail, once.
    pub fn fail_next(&self, call: IotCall) {
        self.failing.lock().expect("registry lock").insert(call);
    }

    /// Every certificate, attached to a thing or not.
    pub fn certificates(&self) -> Vec<MemoryCertificate> {
        self.lock().certificates.values().cloned().collect()
    }

    /// The certificates attached to the tag's thing.
    pub fn certificates_of(&self, tag: &TagId) -> Vec<MemoryCertificate> {
        self.certificates()
            .into_iter()
            .filter(|c| c.things.contains(tag))
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, MemoryIot> {
        self.iot.lock().expect("registry lock")
    }

    /// The registry for `call`, or the failure a test asked for.
    fn call(&self, call: IotCall) -> Result<MutexGuard<'_, MemoryIot>> {
        if self.failing.lock().expect("registry lock").remove(&call) {
            return Err(refused(format!("{call:?} failed (as the test asked)")));
        }
        Ok(self.lock())
    }
}

impl TagRegistry for MemoryRegistry {
    async fn thing_exists(&self, tag: &TagId) -> Result<bool> {
        Ok(self.lock().things.contains(tag))
    }

    async fn create_thing(&self, tag: &TagId) -> Result<String> {
        if !self.call(IotCall::CreateThing)?.things.insert(tag.clone()) {
            return Err(refused(format!("thing {tag} exists")));
        }
        Ok(format!("arn:aws:iot:local:0:thing/{tag}"))
    }

    async fn create_certificate(&self, csr: &TagCsr) -> Result<IssuedCertificate> {
        let mut iot = self.call(IotCall::CreateCertificate)?;
        iot.issued += 1;
        let id = format!("cert{}", iot.issued);
        let arn = format!("arn:aws:iot:local:0:cert/{id}");
        iot.certificates.insert(
            id.clone(),
            MemoryCertificate {
                id: id.clone(),
                arn: arn.clone(),
                active: false,
                policies: BTreeSet::new(),
                things: BTreeSet::new(),
            },
        );
        Ok(IssuedCertificate {
            arn,
            id,
            pem: format!("-----BEGIN CERTIFICATE-----\nfor\n{}", csr.pem()),
        })
    }

    async fn attach_policy(&self, policy: &str, certificate_arn: &str) -> Result<()> {
        let mut iot = self.call(IotCall::AttachPolicy)?;
        iot.certificate(certificate_arn)?
            .policies
            .insert(policy.to_owned());
        Ok(())
    }

    async fn attach_thing_principal(&self, tag: &TagId, certificate_arn: &str) -> Result<()> {
        let mut iot = self.call(IotCall::AttachThingPrincipal)?;
        if !iot.things.contains(tag) {
            return Err(refused(format!("no thing {tag}")));
        }
        iot.certificate(certificate_arn)?.things.insert(tag.clone());
        Ok(())
    }

    async fn set_certificate_active(&self, certificate_id: &str, active: bool) -> Result<()> {
        let mut iot = self.call(IotCall::SetCertificateActive)?;
        let cert = iot
            .certificates
            .get_mut(certificate_id)
            .ok_or_else(|| refused(format!("no certificate {certificate_id}")))?;
        cert.active = active;
        Ok(())
    }

    async fn detach_policy(&self, policy: &str, certificate_arn: &str) -> Result<()> {
        let mut iot = self.call(IotCall::DetachPolicy)?;
        if let Ok(cert) = iot.certificate(certificate_arn) {
            cert.policies.remove(policy);
        }
        Ok(())
    }

    async fn detach_thing_principal(&self, tag: &TagId, certificate_arn: &str) -> Result<()> {
        let mut iot = self.call(IotCall::DetachThingPrincipal)?;
        if let Ok(cert) = iot.certificate(certificate_arn) {
            cert.things.remove(tag);
        }
        Ok(())
    }

    async fn delete_certificate(&self, certificate_id: &str) -> Result<()> {
        let mut iot = self.call(IotCall::DeleteCertificate)?;
        match iot.certificates.get(certificate_id) {
            Some(c) if c.active => Err(refused(format!("certificate {certificate_id} is ACTIVE"))),
            Some(c) if !c.things.is_empty() || !c.policies.is_empty() => Err(refused(format!(
                "certificate {certificate_id} has things or policies attached"
            ))),
            _ => {
                iot.certificates.remove(certificate_id);
                Ok(())
            }
        }
    }

    async fn delete_thing(&self, tag: &TagId) -> Result<()> {
        let mut iot = self.call(IotCall::DeleteThing)?;
        if iot.certificates.values().any(|c| c.things.contains(tag)) {
            return Err(refused(format!("thing {tag} has a certificate attached")));
        }
        iot.things.remove(tag);
        Ok(())
    }

    async fn deactivate(&self, tag: &TagId) -> Result<Vec<String>> {
        let mut iot = self.lock();
        if !iot.things.contains(tag) {
            return Err(CliError::NotFound(format!("no IoT thing {tag}")));
        }
        let mut ids = Vec::new();
        for c in iot
            .certificates
            .values_mut()
            .filter(|c| c.things.contains(tag))
        {
            c.active = false;
            ids.push(c.id.clone());
        }
        Ok(ids)
    }

    async fn data_endpoint(&self) -> Result<String> {
        Ok("memory.iot.local".into())
    }
}
