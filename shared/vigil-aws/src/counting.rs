//! Counting the AWS requests a piece of work makes: an SDK interceptor that tallies every
//! request sent (retries included: each is billed) by operation. Used to measure the cost of a
//! fix.

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Requests sent, by operation (`DynamoDB_20120810.BatchGetItem` becomes `BatchGetItem`).
#[derive(Debug, Default, Clone)]
pub struct RequestCounter {
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl RequestCounter {
    /// A new counter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counts so far, by operation.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.counts.lock().expect("counter lock").clone()
    }

    /// Sets every count back to zero.
    pub fn reset(&self) {
        self.counts.lock().expect("counter lock").clear();
    }

    /// The total of the named operations.
    pub fn total_of(&self, ops: &[&str]) -> u64 {
        let c = self.counts.lock().expect("counter lock");
        ops.iter().map(|o| c.get(*o).copied().unwrap_or(0)).sum()
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // The JSON protocols name the operation in X-Amz-Target; the query protocols in Action.
        let req = context.request();
        let op = match req.headers().get("x-amz-target") {
            Some(target) => target.rsplit('.').next().unwrap_or(target).to_owned(),
            None => "Other".to_owned(),
        };
        *self
            .counts
            .lock()
            .expect("counter lock")
            .entry(op)
            .or_default() += 1;
        Ok(())
    }
}
