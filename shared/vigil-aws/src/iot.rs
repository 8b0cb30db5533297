//! The IoT data plane adapter of the commander: `Publish` on a device's command topic, QoS 1,
//! retained. The endpoint is the SDK's regional default (`data-ats.iot.<region>.amazonaws.com`)
//! unless `AWS_ENDPOINT_URL_IOT_DATA_PLANE` names another (read by aws-config; the CDK app's
//! `iotDataEndpoint` setting sets it to the account's `iot:Data-ATS` endpoint, docs/DEPLOY.md).

use crate::error::{StoreError, classify};
use crate::ports::Commander;
use aws_sdk_iotdataplane::Client;
use aws_sdk_iotdataplane::primitives::Blob;

/// Commands through the IoT data plane.
#[derive(Clone)]
pub struct IotCommander {
    client: Client,
}

impl IotCommander {
    /// A commander on `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

impl Commander for IotCommander {
    async fn publish(&self, topic: &str, payload: &[u8]) -> Result<(), StoreError> {
        self.client
            .publish()
            .topic(topic)
            .qos(1)
            .retain(true)
            .payload(Blob::new(payload))
            .send()
            .await
            .map_err(|e| classify("iot-data", "command", e))?;
        Ok(())
    }
}
