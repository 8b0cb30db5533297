//! Evidence (docs/EVIDENCE.md): anchors in the S3 bucket with Object Lock (compliance mode),
//! the evidence signing key on KMS (ECC P-256, sign and verify only; the private key never
//! leaves KMS), and the force of each order (DynamoDB), which sets an anchor's retention.

use crate::error::{StoreError, classify};
use crate::ports::{AnchorBucket, EvidenceSigner, Signed};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ObjectLockMode;
use chrono::{DateTime, Utc};
use vigil_core::OrderId;
use vigil_core::anchor::{Anchor, order_prefix};

/// The signing algorithm of evidence bundles: ECDSA over P-256 with SHA-256, the signature
/// DER-encoded (KMS's `ECDSA_SHA_256` on an `ECC_NIST_P256` key).
pub const SIGNING_ALGORITHM: &str = "ECDSA_SHA_256";

/// The anchors bucket on S3.
#[derive(Clone)]
pub struct S3AnchorBucket {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3AnchorBucket {
    /// Anchors in `bucket`.
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }
}

impl AnchorBucket for S3AnchorBucket {
    async fn put_anchor(
        &self,
        anchor: &Anchor,
        retain_until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let body = serde_json::to_vec(anchor).expect("anchors serialize");
        let result = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(anchor.key())
            .content_type("application/json")
            .body(ByteStream::from(body))
            // Never a second version of an anchor: the key names the fact (order, seq, hash,
            // how seen), so an existing object already says it.
            .if_none_match("*")
            .object_lock_mode(ObjectLockMode::Compliance)
            .object_lock_retain_until_date(aws_sdk_s3::primitives::DateTime::from_millis(
                retain_until.timestamp_millis(),
            ))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 412) => Ok(()),
            Err(e) => Err(classify("s3", &format!("anchor {}", anchor.key()), e)),
        }
    }

    async fn anchors(&self, order_id: &OrderId) -> Result<Vec<Anchor>, StoreError> {
        let prefix = order_prefix(order_id);
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let resp = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| classify("s3", &format!("listing {prefix}"), e))?;
            keys.extend(
                resp.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
            match resp.next_continuation_token() {
                Some(t) if resp.is_truncated() == Some(true) => token = Some(t.to_owned()),
                _ => break,
            }
        }
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let obj = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(&key)
                .send()
                .await
                .map_err(|e| classify("s3", &format!("anchor {key}"), e))?;
            let bytes = obj
                .body
                .collect()
                .await
                .map_err(|e| StoreError::Unavailable {
                    service: "s3",
                    detail: format!("reading anchor {key}: {e}"),
                })?;
            out.push(anchor_from_object(&key, &bytes.into_bytes())?);
        }
        Ok(out)
    }
}

/// An anchor object read back: its content, which must name the key it is stored under (an
/// object whose key and content disagree was not written by the anchor function).
pub fn anchor_from_object(key: &str, bytes: &[u8]) -> Result<Anchor, StoreError> {
    let anchor: Anchor = serde_json::from_slice(bytes)
        .map_err(|e| StoreError::corrupt(format!("anchor {key}"), e.to_string()))?;
    if anchor.key() != key {
        return Err(StoreError::corrupt(
            format!("anchor {key}"),
            format!("its content is the anchor of {}", anchor.key()),
        ));
    }
    Ok(anchor)
}

/// Evidence signatures on KMS.
#[derive(Clone)]
pub struct KmsEvidenceSigner {
    client: aws_sdk_kms::Client,
    key_id: String,
}

impl KmsEvidenceSigner {
    /// Signs with the asymmetric key `key_id` (an ARN, id or alias).
    pub fn new(client: aws_sdk_kms::Client, key_id: impl Into<String>) -> Self {
        Self {
            client,
            key_id: key_id.into(),
        }
    }
}

impl EvidenceSigner for KmsEvidenceSigner {
    async fn sign(&self, message: &[u8]) -> Result<Signed, StoreError> {
        let resp = self
            .client
            .sign()
            .key_id(&self.key_id)
            .message(Blob::new(message))
            .message_type(MessageType::Raw)
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await
            .map_err(|e| classify("kms", "signing the evidence manifest", e))?;
        let signature = resp.signature.ok_or_else(|| StoreError::Unavailable {
            service: "kms",
            detail: "Sign returned no signature".into(),
        })?;
        Ok(Signed {
            key_id: resp.key_id.unwrap_or_else(|| self.key_id.clone()),
            algorithm: SIGNING_ALGORITHM.to_owned(),
            signature: signature.into_inner(),
        })
    }

    async fn public_key(&self) -> Result<Vec<u8>, StoreError> {
        let resp = self
            .client
            .get_public_key()
            .key_id(&self.key_id)
            .send()
            .await
            .map_err(|e| classify("kms", "reading the evidence public key", e))?;
        resp.public_key
            .map(Blob::into_inner)
            .ok_or_else(|| StoreError::Unavailable {
                service: "kms",
                detail: "GetPublicKey returned no key".into(),
            })
    }
}
