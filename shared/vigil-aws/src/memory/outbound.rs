//! The outbound ports in memory: the alert queue, SMS and the operators' topic, and the
//! destination hash.

use crate::error::StoreError;
use crate::ports::{AlertQueue, Commander, DestinationMac, ForceMessage, Notifier};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use vigil_core::events::AlertEvent;
use vigil_core::{OperatorEvent, PhoneNumber};

/// The alert queue in memory. Clones share one queue.
#[derive(Default, Clone)]
pub struct MemoryQueue {
    sent: Arc<Mutex<Vec<AlertEvent>>>,
    failures: Arc<Mutex<u32>>,
}

impl MemoryQueue {
    /// Everything sent so far.
    pub fn sent(&self) -> Vec<AlertEvent> {
        self.sent.lock().expect("queue lock").clone()
    }

    /// Takes everything sent so far.
    pub fn drain(&self) -> Vec<AlertEvent> {
        std::mem::take(&mut *self.sent.lock().expect("queue lock"))
    }

    /// Makes the next `n` sends fail as unavailable.
    pub fn fail_next(&self, n: u32) {
        *self.failures.lock().expect("queue lock") = n;
    }
}

impl AlertQueue for MemoryQueue {
    async fn send(&self, events: &[AlertEvent]) -> Result<(), StoreError> {
        {
            let mut f = self.failures.lock().expect("queue lock");
            if *f > 0 {
                *f -= 1;
                return Err(StoreError::Unavailable {
                    service: "sqs",
                    detail: "injected failure".into(),
                });
            }
        }
        self.sent
            .lock()
            .expect("queue lock")
            .extend_from_slice(events);
        Ok(())
    }
}

/// An SMS recorded by [`MemoryNotifier`].
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedSms {
    /// Recipient.
    pub to: PhoneNumber,
    /// Text.
    pub text: String,
    /// The sender id asked for (`None`: the deployment's).
    pub sender_id: Option<String>,
}

/// SMS and operator events in memory. Clones share one record.
#[derive(Default, Clone)]
pub struct MemoryNotifier {
    sms: Arc<Mutex<Vec<RecordedSms>>>,
    operator: Arc<Mutex<Vec<OperatorEvent>>>,
    forces: Arc<Mutex<Vec<ForceMessage>>>,
    failures: Arc<Mutex<u32>>,
}

impl MemoryNotifier {
    /// SMS sent so far.
    pub fn sms(&self) -> Vec<RecordedSms> {
        self.sms.lock().expect("notifier lock").clone()
    }

    /// Messages published to forces' topics so far.
    pub fn force_messages(&self) -> Vec<ForceMessage> {
        self.forces.lock().expect("notifier lock").clone()
    }

    /// Operator events published so far.
    pub fn operator_events(&self) -> Vec<OperatorEvent> {
        self.operator.lock().expect("notifier lock").clone()
    }

    /// Makes the next `n` calls fail as unavailable.
    pub fn fail_next(&self, n: u32) {
        *self.failures.lock().expect("notifier lock") = n;
    }

    fn injected(&self) -> Result<(), StoreError> {
        let mut f = self.failures.lock().expect("notifier lock");
        if *f > 0 {
            *f -= 1;
            return Err(StoreError::Unavailable {
                service: "sns",
                detail: "injected failure".into(),
            });
        }
        Ok(())
    }
}

impl Notifier for MemoryNotifier {
    async fn send_sms(
        &self,
        to: &PhoneNumber,
        text: &str,
        sender_id: Option<&str>,
    ) -> Result<String, StoreError> {
        self.injected()?;
        let mut sms = self.sms.lock().expect("notifier lock");
        sms.push(RecordedSms {
            to: to.clone(),
            text: text.to_owned(),
            sender_id: sender_id.map(str::to_owned),
        });
        Ok(format!("sms-{}", sms.len()))
    }

    async fn publish_operator(&self, event: &OperatorEvent) -> Result<String, StoreError> {
        self.injected()?;
        let mut ops = self.operator.lock().expect("notifier lock");
        ops.push(event.clone());
        Ok(format!("op-{}", ops.len()))
    }

    async fn publish_to_force(&self, message: &ForceMessage) -> Result<String, StoreError> {
        self.injected()?;
        let mut all = self.forces.lock().expect("notifier lock");
        all.push(message.clone());
        Ok(format!("force-{}", all.len()))
    }
}

/// A destination hash with a key held in memory (HMAC-SHA-256, RFC 2104), for tests.
#[derive(Clone)]
pub struct MemoryMac {
    key: [u8; 32],
}

impl Default for MemoryMac {
    fn default() -> Self {
        Self::new(b"vigil-test-destination-key")
    }
}

impl MemoryMac {
    /// A hash keyed by `key`.
    pub fn new(key: &[u8]) -> Self {
        let mut k = [0u8; 32];
        k.copy_from_slice(&Sha256::digest(key));
        Self { key: k }
    }

    /// The HMAC of `message`, hex.
    pub fn hmac_hex(&self, message: &[u8]) -> String {
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(&self.key);
        let pad = |b: u8| block.map(|k| k ^ b);
        let inner = Sha256::new()
            .chain_update(pad(0x36))
            .chain_update(message)
            .finalize();
        let outer = Sha256::new()
            .chain_update(pad(0x5c))
            .chain_update(inner)
            .finalize();
        hex::encode(outer)
    }
}

impl DestinationMac for MemoryMac {
    async fn mac(&self, phone: &PhoneNumber) -> Result<String, StoreError> {
        Ok(self.hmac_hex(phone.e164().as_bytes()))
    }
}

/// A command recorded by [`MemoryCommander`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedCommand {
    /// The topic it was published on.
    pub topic: String,
    /// The payload.
    pub payload: Vec<u8>,
}

/// Commands to devices in memory, with the retained one per topic as the IoT broker keeps it.
/// Clones share one record.
#[derive(Default, Clone)]
pub struct MemoryCommander {
    published: Arc<Mutex<Vec<RecordedCommand>>>,
    failures: Arc<Mutex<u32>>,
}

impl MemoryCommander {
    /// Every command published so far, in order.
    pub fn published(&self) -> Vec<RecordedCommand> {
        self.published.lock().expect("commander lock").clone()
    }

    /// Makes the next `n` publishes fail as unavailable.
    pub fn fail_next(&self, n: u32) {
        *self.failures.lock().expect("commander lock") = n;
    }
}

impl Commander for MemoryCommander {
    async fn publish(&self, topic: &str, payload: &[u8]) -> Result<(), StoreError> {
        {
            let mut f = self.failures.lock().expect("commander lock");
            if *f > 0 {
                *f -= 1;
                return Err(StoreError::Unavailable {
                    service: "iot-data",
                    detail: "injected failure".into(),
                });
            }
        }
        self.published
            .lock()
            .expect("commander lock")
            .push(RecordedCommand {
                topic: topic.to_owned(),
                payload: payload.to_vec(),
            });
        Ok(())
    }
}
