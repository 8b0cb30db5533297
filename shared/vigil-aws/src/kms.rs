//! The KMS adapter of [`DestinationMac`]: HMAC-SHA-256 with a KMS HMAC key (`GenerateMac`).
//! The key never leaves KMS, so nobody with only the tables can compute or forge the hash of
//! a number they would redirect SMS to.

use crate::error::{StoreError, classify};
use crate::ports::DestinationMac;
use aws_sdk_kms::Client;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::MacAlgorithmSpec;
use vigil_core::PhoneNumber;

/// SMS destination hashes on KMS.
#[derive(Clone)]
pub struct KmsDestinationMac {
    client: Client,
    key_id: String,
}

impl KmsDestinationMac {
    /// Hashes with the HMAC key `key_id` (an ARN, id or alias).
    pub fn new(client: Client, key_id: impl Into<String>) -> Self {
        Self {
            client,
            key_id: key_id.into(),
        }
    }
}

impl DestinationMac for KmsDestinationMac {
    async fn mac(&self, phone: &PhoneNumber) -> Result<String, StoreError> {
        let resp = self
            .client
            .generate_mac()
            .key_id(&self.key_id)
            .mac_algorithm(MacAlgorithmSpec::HmacSha256)
            .message(Blob::new(phone.e164().as_bytes()))
            .send()
            .await
            // The request carries the number; the error never does (SDK errors print the
            // service's code and message only).
            .map_err(|e| classify("kms", "destination mac", e))?;
        let mac = resp.mac.ok_or_else(|| StoreError::Unavailable {
            service: "kms",
            detail: "GenerateMac returned no MAC".into(),
        })?;
        Ok(hex::encode(mac.as_ref()))
    }
}
