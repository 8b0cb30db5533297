//! [`Emulator`]: one emulator endpoint with Vigil's resources created for one stage.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sns::config::Credentials;

use crate::moto::{self, MotoProcess};
use crate::provision::{self, Clients, OPERATORS_TOPIC, Provisioned};
use crate::readback::{self, EmulatorKind, ReadBack, SentSms, TopicMessage};
use crate::resources::{self, ResourceKind, Resources};
use crate::{DEFAULT_REGION, Error, Result, local_dir};

/// Static credentials for emulators: they accept any, and LocalStack maps `test` to its
/// default account.
const TEST_ACCESS_KEY_ID: &str = "test";
const TEST_SECRET_ACCESS_KEY: &str = "test";

/// An AWS emulator with every resource of `infra/resources.json` created for one stage.
///
/// [`Emulator::start`] runs a private `moto_server` that lives as long as this value: dropping
/// it kills the process and waits for it to exit. [`Emulator::connect`] uses an emulator
/// someone else runs and leaves it running.
#[derive(Debug)]
pub struct Emulator {
    endpoint_url: String,
    stage: String,
    region: String,
    sdk_config: SdkConfig,
    clients: Clients,
    resources: Resources,
    provisioned: Provisioned,
    readback: ReadBack,
    /// Operator events drained from the tap queue so far (emulators other than moto).
    tapped: Mutex<Vec<TopicMessage>>,
    /// The private moto process, if this value started one; dropped (killed) with it.
    server: Option<MotoProcess>,
}

impl Emulator {
    /// Starts a private moto server for the default stage (`local`) and creates every
    /// resource. See [`Emulator::start_with_stage`].
    pub async fn start() -> Result<Emulator> {
        let resources = Resources::bundled()?;
        let stage = resources.naming.default_stage.clone();
        Emulator::start_inner(resources, &stage).await
    }

    /// Starts a private moto server and creates every resource for `stage`.
    ///
    /// On first use this creates `<root>/.local/venv` and installs the pinned moto into it
    /// (about half a minute; parallel callers wait on a file lock). The server listens on a
    /// free port of 127.0.0.1 and logs to `.local/logs/moto-<port>.log`.
    ///
    /// Fails with [`Error::Install`] if the venv cannot be made (no `python3`, no network to
    /// PyPI), [`Error::Startup`] if the server does not answer within 60 s (the error ends with
    /// its log), [`Error::Definition`] for a bad stage, or [`Error::Aws`] if creating a
    /// resource fails.
    pub async fn start_with_stage(stage: &str) -> Result<Emulator> {
        Emulator::start_inner(Resources::bundled()?, stage).await
    }

    async fn start_inner(resources: Resources, stage: &str) -> Result<Emulator> {
        resources::check_stage(stage)?;
        let local = local_dir();
        let server = moto::ensure_moto(local.clone()).await?;
        let http = readback::http_client()?;
        let process = MotoProcess::spawn(&server, &local.join("logs"), &http).await?;
        let endpoint = format!("http://127.0.0.1:{}", process.port());
        let readback = ReadBack::moto(http, &endpoint, DEFAULT_REGION);
        // If provisioning fails, `process` is dropped with the error and moto is killed.
        Emulator::provisioned(resources, &endpoint, stage, readback, Some(process)).await
    }

    /// Uses an emulator that is already running at `endpoint_url` (moto or LocalStack) and
    /// creates, for `stage`, whatever resources are missing. Nothing is stopped on drop.
    ///
    /// Fails with [`Error::ReadBack`] if neither moto nor LocalStack answers there,
    /// [`Error::Definition`] if a table exists with other keys than declared, or
    /// [`Error::Aws`] if creating a resource fails.
    pub async fn connect(endpoint_url: &str, stage: &str) -> Result<Emulator> {
        resources::check_stage(stage)?;
        let resources = Resources::bundled()?;
        let readback = ReadBack::detect(endpoint_url, DEFAULT_REGION).await?;
        let endpoint = endpoint_url.trim_end_matches('/');
        Emulator::provisioned(resources, endpoint, stage, readback, None).await
    }

    async fn provisioned(
        resources: Resources,
        endpoint: &str,
        stage: &str,
        readback: ReadBack,
        server: Option<MotoProcess>,
    ) -> Result<Emulator> {
        let sdk_config = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(DEFAULT_REGION))
            .credentials_provider(Credentials::new(
                TEST_ACCESS_KEY_ID,
                TEST_SECRET_ACCESS_KEY,
                None,
                None,
                "vigil-local",
            ))
            .endpoint_url(endpoint)
            .load()
            .await;
        let clients = Clients::new(&sdk_config, endpoint);
        let provisioned = provision::provision(&clients, &resources, stage, DEFAULT_REGION).await?;
        Ok(Emulator {
            endpoint_url: endpoint.to_owned(),
            stage: stage.to_owned(),
            region: DEFAULT_REGION.to_owned(),
            sdk_config,
            clients,
            resources,
            provisioned,
            readback,
            tapped: Mutex::new(Vec::new()),
            server,
        })
    }

    /// A stage name no other emulator in this process has used: `<prefix>-<pid>-<n>`, for
    /// tests that share one server through [`Emulator::connect`]. Keep `prefix` short: a stage
    /// has at most 32 characters.
    pub fn unique_stage(prefix: &str) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}-{}-{n}", std::process::id())
    }

    /// Base URL of the emulator, e.g. `http://127.0.0.1:40123` (no trailing slash).
    pub fn endpoint_url(&self) -> &str {
        &self.endpoint_url
    }

    /// The stage whose resources this value created.
    pub fn stage(&self) -> &str {
        &self.stage
    }

    /// The region every client and ARN uses (`us-east-1`).
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Which emulator this is.
    pub fn kind(&self) -> EmulatorKind {
        self.readback.kind()
    }

    /// The port of the private moto server, if this value started one.
    pub fn port(&self) -> Option<u16> {
        self.server.as_ref().map(MotoProcess::port)
    }

    /// The private moto server's log file, if this value started one.
    pub fn log_path(&self) -> Option<&Path> {
        self.server.as_ref().map(MotoProcess::log)
    }

    /// SDK configuration for this emulator: region, static test credentials, endpoint URL.
    /// Build any AWS client from it: `aws_sdk_dynamodb::Client::new(&emulator.sdk_config())`.
    pub fn sdk_config(&self) -> SdkConfig {
        self.sdk_config.clone()
    }

    /// The definition file the resources were created from.
    pub fn resources(&self) -> &Resources {
        &self.resources
    }

    /// Physical name of a declared table, e.g. `zones` -> `vigil-local-zones`.
    ///
    /// Fails with [`Error::Unknown`] if `infra/resources.json` declares no such table.
    pub fn table_name(&self, logical: &str) -> Result<&str> {
        lookup("table", &self.provisioned.tables, logical)
    }

    /// URL of a declared queue, e.g. `alerts`.
    ///
    /// Fails with [`Error::Unknown`] if `infra/resources.json` declares no such queue.
    pub fn queue_url(&self, logical: &str) -> Result<&str> {
        lookup("queue", &self.provisioned.queue_urls, logical)
    }

    /// ARN of a declared topic, e.g. `operators`.
    ///
    /// Fails with [`Error::Unknown`] if `infra/resources.json` declares no such topic.
    pub fn topic_arn(&self, logical: &str) -> Result<&str> {
        lookup("topic", &self.provisioned.topic_arns, logical)
    }

    /// Physical name of a declared IoT policy, e.g. `tag` -> `vigil-local-tag`.
    ///
    /// Fails with [`Error::Unknown`] if `infra/resources.json` declares no such policy.
    pub fn iot_policy_name(&self, logical: &str) -> Result<String> {
        lookup("iot policy", &self.provisioned.iot_policies, logical)?;
        Ok(self.resources.physical_name(&self.stage, logical))
    }

    /// ARN of a declared IoT policy, e.g. `tag`.
    ///
    /// Fails with [`Error::Unknown`] if `infra/resources.json` declares no such policy.
    pub fn iot_policy_arn(&self, logical: &str) -> Result<&str> {
        lookup("iot policy", &self.provisioned.iot_policies, logical)
    }

    /// The environment a child process needs to use this emulator: `AWS_ENDPOINT_URL`,
    /// `AWS_REGION` (and `AWS_DEFAULT_REGION`), `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `VIGIL_STAGE`, and one variable per resource (see [`resources::env_var_name`]), e.g.
    /// `VIGIL_ZONE_CELLS_TABLE=vigil-local-zone-cells`, `VIGIL_ALERTS_QUEUE_URL=...`.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        let mut vars = vec![
            ("AWS_ENDPOINT_URL".to_owned(), self.endpoint_url.clone()),
            ("AWS_REGION".to_owned(), self.region.clone()),
            // boto3 and the AWS CLI read only this one.
            ("AWS_DEFAULT_REGION".to_owned(), self.region.clone()),
            (
                "AWS_ACCESS_KEY_ID".to_owned(),
                TEST_ACCESS_KEY_ID.to_owned(),
            ),
            (
                "AWS_SECRET_ACCESS_KEY".to_owned(),
                TEST_SECRET_ACCESS_KEY.to_owned(),
            ),
            ("VIGIL_STAGE".to_owned(), self.stage.clone()),
        ];
        let kinds = [
            (ResourceKind::Table, &self.provisioned.tables),
            (ResourceKind::Queue, &self.provisioned.queue_urls),
            (ResourceKind::Topic, &self.provisioned.topic_arns),
        ];
        for (kind, map) in kinds {
            for (logical, value) in map {
                vars.push((resources::env_var_name(kind, logical), value.clone()));
            }
        }
        for (var, key) in &self.provisioned.key_ids {
            vars.push((var.clone(), key.clone()));
        }
        vars
    }

    /// Every SMS sent through SNS `Publish(PhoneNumber)` since start or the last
    /// [`reset`](Emulator::reset). See [`ReadBack::sent_sms`], which this is.
    pub async fn sent_sms(&self) -> Result<Vec<SentSms>> {
        self.readback.sent_sms().await
    }

    /// Every message published to the `operators` topic since start or the last
    /// [`reset`](Emulator::reset), oldest first.
    ///
    /// moto records topic publishes itself, and they are read from `/moto-api/data.json`. Other
    /// emulators do not, so there this drains the `operators-tap` SQS queue that the harness
    /// subscribes to the topic ([`Emulator::operator_events_from_tap`]).
    pub async fn operator_events(&self) -> Result<Vec<TopicMessage>> {
        match self.readback.kind() {
            EmulatorKind::Moto => {
                let arn = self.topic_arn(OPERATORS_TOPIC)?;
                self.readback.moto_topic_messages(arn).await
            }
            EmulatorKind::LocalStack => self.operator_events_from_tap().await,
        }
    }

    /// The operators topic's messages as delivered to the harness's `vigil-<stage>-operators-tap`
    /// SQS subscription: drains the queue, and returns everything this value has drained so
    /// far. Works on any emulator that delivers SNS to SQS; [`Emulator::operator_events`] uses
    /// it where the emulator keeps no record of publishes.
    pub async fn operator_events_from_tap(&self) -> Result<Vec<TopicMessage>> {
        let drained = self.drain_tap().await?;
        let mut tapped = self.tapped.lock().unwrap_or_else(|e| e.into_inner());
        tapped.extend(drained);
        Ok(tapped.clone())
    }

    async fn drain_tap(&self) -> Result<Vec<TopicMessage>> {
        let Some(url) = &self.provisioned.operators_tap_url else {
            return Ok(Vec::new());
        };
        let sqs = &self.clients.sqs;
        let mut events = Vec::new();
        loop {
            let received = sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .send()
                .await
                .map_err(self.clients.fail(format!("ReceiveMessage {url}")))?;
            let messages = received.messages();
            if messages.is_empty() {
                return Ok(events);
            }
            for message in messages {
                let body = message.body().unwrap_or_default();
                events.push(readback::parse_sns_envelope(body).unwrap_or_else(|| {
                    // Raw delivery or a foreign message: keep it rather than lose evidence.
                    TopicMessage {
                        message_id: message.message_id().unwrap_or_default().to_owned(),
                        message: body.to_owned(),
                        subject: None,
                        attributes: Default::default(),
                    }
                }));
                if let Some(handle) = message.receipt_handle() {
                    sqs.delete_message()
                        .queue_url(url)
                        .receipt_handle(handle)
                        .send()
                        .await
                        .map_err(self.clients.fail(format!("DeleteMessage {url}")))?;
                }
            }
        }
    }

    /// Forgets everything sent and stored, then recreates the resources.
    ///
    /// moto: `POST /moto-api/reset` clears every service's state (all stages on that server),
    /// then this stage's resources are created again with the same names, URLs and ARNs.
    /// LocalStack has no such reset: there only the SMS records and the operator events are
    /// cleared; table and queue contents stay (use a fresh stage for isolation).
    pub async fn reset(&self) -> Result<()> {
        self.readback.reset().await?;
        match self.readback.kind() {
            EmulatorKind::Moto => {
                // Names, queue URLs and topic ARNs are derived from the stage, so the ones
                // already held stay valid.
                provision::provision(&self.clients, &self.resources, &self.stage, &self.region)
                    .await?;
            }
            EmulatorKind::LocalStack => {
                self.drain_tap().await?;
            }
        }
        self.tapped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        Ok(())
    }
}

fn lookup<'a>(
    kind: &'static str,
    map: &'a std::collections::BTreeMap<String, String>,
    logical: &str,
) -> Result<&'a str> {
    map.get(logical)
        .map(String::as_str)
        .ok_or_else(|| Error::Unknown {
            kind,
            logical: logical.to_owned(),
            declared: map.keys().cloned().collect::<Vec<_>>().join(", "),
        })
}
