//! Creates the resources of `infra/resources.json` in an emulator, idempotently: an existing
//! table is checked against its declared keys, an existing queue gets its declared attributes,
//! an existing IoT policy is left as it is.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode as DynamoBillingMode, KeySchemaElement,
    KeyType as DynamoKeyRole, ScalarAttributeType, StreamSpecification, StreamViewType,
    TableDescription, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};
use aws_sdk_sqs::types::QueueAttributeName;

use crate::resources::{BillingMode, KeyDef, KmsKeyDef, QueueDef, Resources, TableDef};
use crate::{Error, Result};

/// Logical name of the topic whose messages [`crate::Emulator::operator_events`] returns.
pub(crate) const OPERATORS_TOPIC: &str = "operators";

/// Logical name of the harness's own queue subscribed to the operators topic (not a Vigil
/// resource: it exists only in emulators, for emulators that do not record topic publishes).
pub(crate) const OPERATORS_TAP: &str = "operators-tap";

/// The SDK clients one emulator is driven with.
#[derive(Debug, Clone)]
pub(crate) struct Clients {
    pub(crate) dynamodb: aws_sdk_dynamodb::Client,
    pub(crate) sqs: aws_sdk_sqs::Client,
    pub(crate) sns: aws_sdk_sns::Client,
    pub(crate) iot: aws_sdk_iot::Client,
    pub(crate) kms: aws_sdk_kms::Client,
    pub(crate) ssm: aws_sdk_ssm::Client,
    pub(crate) s3: aws_sdk_s3::Client,
    pub(crate) streams: aws_sdk_dynamodbstreams::Client,
    pub(crate) endpoint: String,
    /// Where the DynamoDB client goes (DynamoDB Local's port, or `endpoint`), for errors.
    pub(crate) dynamodb_endpoint: String,
}

impl Clients {
    /// Whether DynamoDB is served apart from the emulator (DynamoDB Local).
    pub(crate) fn dynamodb_local(&self) -> bool {
        self.dynamodb_endpoint != self.endpoint
    }
}

impl Clients {
    pub(crate) fn new(
        config: &aws_config::SdkConfig,
        endpoint: &str,
        dynamodb_endpoint: &str,
    ) -> Clients {
        Clients {
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            sqs: aws_sdk_sqs::Client::new(config),
            sns: aws_sdk_sns::Client::new(config),
            iot: aws_sdk_iot::Client::new(config),
            kms: aws_sdk_kms::Client::new(config),
            ssm: aws_sdk_ssm::Client::new(config),
            // Emulators on loopback have no per-bucket host names.
            s3: aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(config)
                    .force_path_style(true)
                    .build(),
            ),
            streams: aws_sdk_dynamodbstreams::Client::new(config),
            endpoint: endpoint.to_owned(),
            dynamodb_endpoint: dynamodb_endpoint.to_owned(),
        }
    }

    /// Maps an SDK error to [`Error::Aws`] with the operation and full error context.
    pub(crate) fn fail<E: std::error::Error>(
        &self,
        operation: impl Into<String>,
    ) -> impl FnOnce(E) -> Error {
        fail_at(operation.into(), self.endpoint.clone())
    }

    /// As [`Clients::fail`], for a DynamoDB call (which has its own endpoint).
    pub(crate) fn fail_dynamodb<E: std::error::Error>(
        &self,
        operation: impl Into<String>,
    ) -> impl FnOnce(E) -> Error {
        fail_at(operation.into(), self.dynamodb_endpoint.clone())
    }
}

fn fail_at<E: std::error::Error>(operation: String, endpoint: String) -> impl FnOnce(E) -> Error {
    move |e| Error::Aws {
        operation,
        endpoint,
        message: DisplayErrorContext(&e).to_string(),
    }
}

/// Physical identities of everything that was created, by logical name.
#[derive(Debug, Clone, Default)]
pub(crate) struct Provisioned {
    pub(crate) tables: BTreeMap<String, String>,
    pub(crate) queue_urls: BTreeMap<String, String>,
    pub(crate) topic_arns: BTreeMap<String, String>,
    pub(crate) iot_policies: BTreeMap<String, String>,
    /// KMS keys by the environment variable that carries them: the key's alias, which names
    /// the same key after an emulator reset recreates it (the ARN would not).
    pub(crate) key_ids: BTreeMap<String, String>,
    /// Buckets by the environment variable that carries their name.
    pub(crate) bucket_names: BTreeMap<String, String>,
    pub(crate) operators_tap_url: Option<String>,
    /// Each force's operators' topic (`vigil-<stage>-operators-<force>`), by force id.
    pub(crate) force_topic_arns: BTreeMap<String, String>,
    /// The forces' run-time document (`infra/forces.json` with each topic's ARN) and the
    /// parameter it was put in (`/vigil/<stage>/forces`), as the CDK app makes them.
    pub(crate) forces_document: String,
    pub(crate) forces_parameter: String,
}

/// The forces of the deployment (docs/FORCES.md), one definition with the CDK app.
const FORCES: &str = include_str!("../../../infra/forces.json");

/// Creates each force's operators' topic and puts the run-time document (`infra/forces.json`
/// without its comment, each force with `operators_topic_arn`) in the parameter
/// `/vigil/<stage>/forces`, as the CDK app does.
async fn provision_forces(clients: &Clients, stage: &str, out: &mut Provisioned) -> Result<()> {
    let mut doc: serde_json::Value = serde_json::from_str(FORCES)
        .map_err(|e| Error::Definition(format!("infra/forces.json: {e}")))?;
    if let Some(o) = doc.as_object_mut() {
        o.remove("$comment");
    }
    let forces = doc["forces"]
        .as_array_mut()
        .ok_or_else(|| Error::Definition("infra/forces.json: no forces list".into()))?;
    for force in forces {
        let id = force["id"].as_str().unwrap_or_default().to_owned();
        let arn = ensure_topic(clients, &format!("vigil-{stage}-operators-{id}")).await?;
        force["operators_topic_arn"] = serde_json::Value::String(arn.clone());
        out.force_topic_arns.insert(id, arn);
    }
    let parameter = format!("/vigil/{stage}/forces");
    let document = doc.to_string();
    clients
        .ssm
        .put_parameter()
        .name(&parameter)
        .value(&document)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .map_err(clients.fail(format!("PutParameter {parameter}")))?;
    out.forces_document = document;
    out.forces_parameter = parameter;
    Ok(())
}

/// The account of emulators that do not say otherwise: moto's default (`DEFAULT_ACCOUNT_ID`,
/// overridable there with `MOTO_ACCOUNT_ID`). Used only if no ARN gives the real one.
pub(crate) const FALLBACK_ACCOUNT: &str = "123456789012";

/// The account id inside an ARN (`arn:aws:sns:us-east-1:123456789012:name`), if it has one.
pub(crate) fn account_of_arn(arn: &str) -> Option<&str> {
    let account = arn.split(':').nth(4)?;
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())).then_some(account)
}

/// Creates (or checks) every declared resource for `stage`, then the operators tap.
pub(crate) async fn provision(
    clients: &Clients,
    resources: &Resources,
    stage: &str,
    region: &str,
) -> Result<Provisioned> {
    let mut out = Provisioned::default();
    for table in &resources.tables {
        let name = resources.physical_name(stage, &table.name);
        ensure_table(clients, table, &name).await?;
        out.tables.insert(table.name.clone(), name);
    }
    let mut queue_arns = BTreeMap::new();
    for queue in &resources.queues {
        let name = resources.queue_physical_name(stage, queue);
        let url = ensure_queue(clients, &name, queue_attributes(queue, &queue_arns)?).await?;
        queue_arns.insert(queue.name.clone(), queue_arn(clients, &url).await?);
        out.queue_urls.insert(queue.name.clone(), url);
    }
    for topic in &resources.topics {
        let arn = ensure_topic(clients, &resources.physical_name(stage, &topic.name)).await?;
        out.topic_arns.insert(topic.name.clone(), arn);
    }
    // The emulator's account, as its own ARNs spell it: policies name resources by ARN.
    let account = out
        .topic_arns
        .values()
        .find_map(|arn| account_of_arn(arn))
        .unwrap_or(FALLBACK_ACCOUNT)
        .to_owned();
    for key in &resources.keys {
        let alias = format!("alias/{}", resources.physical_name(stage, &key.name));
        ensure_kms_key(clients, key, &alias).await?;
        out.key_ids.insert(key.env.clone(), alias);
    }
    for bucket in &resources.buckets {
        let name = resources.physical_name(stage, &bucket.name);
        let years = bucket.object_lock.map(|_| longest_retention_years());
        ensure_bucket(clients, &name, region, years).await?;
        out.bucket_names.insert(bucket.env.clone(), name);
    }
    let infra = crate::workspace_root().join("infra");
    for policy in &resources.iot_policies {
        let name = resources.physical_name(stage, &policy.name);
        let document = policy.render(&infra, region, &account, stage)?;
        let arn = ensure_iot_policy(clients, &name, &document).await?;
        out.iot_policies.insert(policy.name.clone(), arn);
    }
    if let Some(topic_arn) = out.topic_arns.get(OPERATORS_TOPIC) {
        let name = resources.physical_name(stage, OPERATORS_TAP);
        let url = ensure_queue(clients, &name, Vec::new()).await?;
        let arn = queue_arn(clients, &url).await?;
        clients
            .sns
            .subscribe()
            .topic_arn(topic_arn)
            .protocol("sqs")
            .endpoint(&arn)
            .send()
            .await
            .map_err(clients.fail(format!("Subscribe {name} to {topic_arn}")))?;
        out.operators_tap_url = Some(url);
    }
    provision_forces(clients, stage, &mut out).await?;
    Ok(out)
}

/// The topic `name`'s ARN, created when missing (`CreateTopic` returns an existing topic's).
async fn ensure_topic(clients: &Clients, name: &str) -> Result<String> {
    let created = clients
        .sns
        .create_topic()
        .name(name)
        .send()
        .await
        .map_err(clients.fail(format!("CreateTopic {name}")))?;
    Ok(created.topic_arn().unwrap_or_default().to_owned())
}

/// The longest `audit_retention_years` of `infra/forces.json` (7 when none says): an Object
/// Lock bucket's default retention, as the CDK app sets it.
pub(crate) fn longest_retention_years() -> i32 {
    serde_json::from_str::<serde_json::Value>(FORCES)
        .ok()
        .and_then(|d| {
            d["forces"].as_array().and_then(|f| {
                f.iter()
                    .filter_map(|f| f["audit_retention_years"].as_i64())
                    .max()
            })
        })
        .and_then(|y| i32::try_from(y).ok())
        .unwrap_or(7)
}

/// The bucket `name`, created when missing; with `lock_years`, with Object Lock and a default
/// retention of that many years in compliance mode.
async fn ensure_bucket(
    clients: &Clients,
    name: &str,
    region: &str,
    lock_years: Option<i32>,
) -> Result<()> {
    use aws_sdk_s3::types::{
        BucketLocationConstraint, CreateBucketConfiguration, DefaultRetention,
        ObjectLockConfiguration, ObjectLockEnabled, ObjectLockRetentionMode, ObjectLockRule,
    };
    if clients.s3.head_bucket().bucket(name).send().await.is_err() {
        let mut create = clients
            .s3
            .create_bucket()
            .bucket(name)
            .object_lock_enabled_for_bucket(lock_years.is_some());
        if region != "us-east-1" {
            create = create.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region))
                    .build(),
            );
        }
        create
            .send()
            .await
            .map_err(clients.fail(format!("CreateBucket {name}")))?;
    }
    if let Some(years) = lock_years {
        let config = ObjectLockConfiguration::builder()
            .object_lock_enabled(ObjectLockEnabled::Enabled)
            .rule(
                ObjectLockRule::builder()
                    .default_retention(
                        DefaultRetention::builder()
                            .mode(ObjectLockRetentionMode::Compliance)
                            .years(years)
                            .build(),
                    )
                    .build(),
            )
            .build();
        clients
            .s3
            .put_object_lock_configuration()
            .bucket(name)
            .object_lock_configuration(config)
            .send()
            .await
            .map_err(clients.fail(format!("PutObjectLockConfiguration {name}")))?;
    }
    Ok(())
}

/// The key behind `alias`, created (with the alias) when missing.
async fn ensure_kms_key(clients: &Clients, key: &KmsKeyDef, alias: &str) -> Result<String> {
    let existing = clients.kms.describe_key().key_id(alias).send().await;
    if let Ok(found) = existing
        && let Some(arn) = found.key_metadata().map(|m| m.arn().unwrap_or_default())
        && !arn.is_empty()
    {
        return Ok(arn.to_owned());
    }
    let created = clients
        .kms
        .create_key()
        .key_spec(key.key_spec.as_str().into())
        .key_usage(key.key_usage.as_str().into())
        .description(format!("Vigil {} (local)", key.name))
        .send()
        .await
        .map_err(clients.fail(format!("CreateKey {alias}")))?;
    let meta = created.key_metadata().ok_or_else(|| Error::Aws {
        operation: format!("CreateKey {alias}"),
        endpoint: clients.endpoint.clone(),
        message: "no key metadata in the response".into(),
    })?;
    clients
        .kms
        .create_alias()
        .alias_name(alias)
        .target_key_id(meta.key_id())
        .send()
        .await
        .map_err(clients.fail(format!("CreateAlias {alias}")))?;
    Ok(meta.arn().unwrap_or_default().to_owned())
}

async fn ensure_table(clients: &Clients, table: &TableDef, name: &str) -> Result<()> {
    let op = |operation: &str| format!("{operation} {name}");
    let mut definitions = Vec::new();
    let mut schema = Vec::new();
    let keys = [(&table.partition_key, DynamoKeyRole::Hash)]
        .into_iter()
        .chain(table.sort_key.iter().map(|k| (k, DynamoKeyRole::Range)));
    for (key, role) in keys {
        definitions.push(
            AttributeDefinition::builder()
                .attribute_name(&key.name)
                .attribute_type(ScalarAttributeType::from(key.kind.as_str()))
                .build()
                .map_err(clients.fail_dynamodb(op("CreateTable")))?,
        );
        schema.push(
            KeySchemaElement::builder()
                .attribute_name(&key.name)
                .key_type(role)
                .build()
                .map_err(clients.fail_dynamodb(op("CreateTable")))?,
        );
    }
    let billing = match table.billing_mode {
        BillingMode::PayPerRequest => DynamoBillingMode::PayPerRequest,
    };
    let stream = table.stream.map(|view| {
        StreamSpecification::builder()
            .stream_enabled(true)
            .stream_view_type(StreamViewType::from(view.as_str()))
            .build()
    });
    let stream = stream
        .transpose()
        .map_err(clients.fail_dynamodb(op("CreateTable")))?;
    let created = clients
        .dynamodb
        .create_table()
        .table_name(name)
        .billing_mode(billing)
        .set_attribute_definitions(Some(definitions))
        .set_key_schema(Some(schema))
        .set_stream_specification(stream.clone())
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) =>
        {
            let existing = check_existing_table(clients, table, name).await?;
            if let Some(spec) = stream {
                ensure_stream(clients, name, existing.as_ref(), spec).await?;
            }
        }
        Err(e) => return Err(clients.fail_dynamodb(op("CreateTable"))(e)),
    }
    wait_active(clients, name).await?;

    // Not on DynamoDB Local: it deletes expired items by the wall clock within seconds (AWS
    // within days), and the local stack runs scenarios on clocks in the past (their fixed
    // dates), so every expiry Vigil computes from a receive time there has already passed: the
    // tags' history, event digests and alert claims vanished mid-scenario (the late fixes of
    // replayed_and_out_of_order texted the victim once the history was gone). moto never
    // expires items; with TTL off, DynamoDB Local keeps what the functions wrote too. Expiry is
    // not under test locally.
    if let Some(attribute) = table
        .ttl_attribute
        .as_ref()
        .filter(|_| !clients.dynamodb_local())
    {
        let current = clients
            .dynamodb
            .describe_time_to_live()
            .table_name(name)
            .send()
            .await
            .map_err(clients.fail_dynamodb(op("DescribeTimeToLive")))?;
        let description = current.time_to_live_description();
        let enabled = description.is_some_and(|d| {
            matches!(
                d.time_to_live_status(),
                Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
            ) && d.attribute_name() == Some(attribute.as_str())
        });
        if !enabled {
            let spec = TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(attribute)
                .build()
                .map_err(clients.fail_dynamodb(op("UpdateTimeToLive")))?;
            clients
                .dynamodb
                .update_time_to_live()
                .table_name(name)
                .time_to_live_specification(spec)
                .send()
                .await
                .map_err(clients.fail_dynamodb(op("UpdateTimeToLive")))?;
        }
    }
    Ok(())
}

/// An existing table (`existing`, as described) gets its declared stream when it has none (a
/// table made before the stream was declared).
async fn ensure_stream(
    clients: &Clients,
    name: &str,
    existing: Option<&TableDescription>,
    spec: StreamSpecification,
) -> Result<()> {
    let enabled = existing
        .and_then(|t| t.stream_specification())
        .is_some_and(|s| s.stream_enabled());
    if !enabled {
        clients
            .dynamodb
            .update_table()
            .table_name(name)
            .stream_specification(spec)
            .send()
            .await
            .map_err(clients.fail_dynamodb(format!("UpdateTable {name} (stream)")))?;
    }
    Ok(())
}

/// A table that already exists must have the declared keys, or the code under test would be
/// running against a schema that production does not have. Returns its description.
async fn check_existing_table(
    clients: &Clients,
    table: &TableDef,
    name: &str,
) -> Result<Option<TableDescription>> {
    let described = clients
        .dynamodb
        .describe_table()
        .table_name(name)
        .send()
        .await
        .map_err(clients.fail_dynamodb(format!("DescribeTable {name}")))?;
    let found = described.table().map(existing_keys).unwrap_or_default();
    let declared: Vec<(String, String, String)> = [(&table.partition_key, "HASH")]
        .into_iter()
        .chain(table.sort_key.iter().map(|k| (k, "RANGE")))
        .map(|(k, role): (&KeyDef, &str)| {
            (role.to_owned(), k.name.clone(), k.kind.as_str().to_owned())
        })
        .collect();
    if found == declared {
        Ok(described.table)
    } else {
        Err(Error::Definition(format!(
            "table {name} already exists in the emulator with keys {found:?}, but \
             infra/resources.json declares {declared:?}: reset the emulator (moto: \
             `POST /moto-api/reset`) or use another stage"
        )))
    }
}

/// (role, attribute, type) for each key of an existing table, hash key first.
fn existing_keys(table: &TableDescription) -> Vec<(String, String, String)> {
    let mut keys: Vec<(String, String, String)> = table
        .key_schema()
        .iter()
        .map(|k| {
            let kind = table
                .attribute_definitions()
                .iter()
                .find(|d| d.attribute_name() == k.attribute_name())
                .map(|d| d.attribute_type().as_str().to_owned())
                .unwrap_or_default();
            (
                k.key_type().as_str().to_owned(),
                k.attribute_name().to_owned(),
                kind,
            )
        })
        .collect();
    keys.sort_by_key(|(role, _, _)| role != "HASH");
    keys
}

async fn wait_active(clients: &Clients, name: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let described = clients
            .dynamodb
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(clients.fail_dynamodb(format!("DescribeTable {name}")))?;
        let status = described.table().and_then(|t| t.table_status()).cloned();
        if status == Some(TableStatus::Active) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Aws {
                operation: format!("DescribeTable {name}"),
                endpoint: clients.dynamodb_endpoint.clone(),
                message: format!("table is still {status:?} after 30 s"),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Deletes `tables` (those that exist) and waits until they are gone, so that creating them
/// again makes empty tables rather than finding the old ones.
pub(crate) async fn delete_tables(clients: &Clients, tables: &[&str]) -> Result<()> {
    for name in tables {
        let deleted = clients
            .dynamodb
            .delete_table()
            .table_name(*name)
            .send()
            .await;
        match deleted {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) => {}
            Err(e) => return Err(clients.fail_dynamodb(format!("DeleteTable {name}"))(e)),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for name in tables {
        loop {
            let described = clients
                .dynamodb
                .describe_table()
                .table_name(*name)
                .send()
                .await;
            match described {
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_resource_not_found_exception()) =>
                {
                    break;
                }
                Err(e) => return Err(clients.fail_dynamodb(format!("DescribeTable {name}"))(e)),
                Ok(_) if Instant::now() >= deadline => {
                    return Err(Error::Aws {
                        operation: format!("DeleteTable {name}"),
                        endpoint: clients.dynamodb_endpoint.clone(),
                        message: "the table still exists 30 s after it was deleted".into(),
                    });
                }
                Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
    Ok(())
}

fn queue_attributes(
    queue: &QueueDef,
    arns: &BTreeMap<String, String>,
) -> Result<Vec<(QueueAttributeName, String)>> {
    let mut attributes = Vec::new();
    if queue.fifo {
        attributes.push((QueueAttributeName::FifoQueue, "true".to_owned()));
        attributes.push((
            QueueAttributeName::ContentBasedDeduplication,
            "false".to_owned(),
        ));
    }
    if let Some(s) = queue.visibility_timeout_s {
        attributes.push((QueueAttributeName::VisibilityTimeout, s.to_string()));
    }
    if let Some(s) = queue.retention_period_s {
        attributes.push((QueueAttributeName::MessageRetentionPeriod, s.to_string()));
    }
    if let Some(dlq) = &queue.dead_letter {
        // Resources::parse guarantees the dead-letter queue was declared (and so created) first.
        let arn = arns.get(&dlq.queue).ok_or_else(|| {
            Error::Definition(format!(
                "queue {:?}: dead-letter queue {:?} was not created first",
                queue.name, dlq.queue
            ))
        })?;
        let policy = serde_json::json!({
            "deadLetterTargetArn": arn,
            "maxReceiveCount": dlq.max_receive_count,
        });
        attributes.push((QueueAttributeName::RedrivePolicy, policy.to_string()));
    }
    Ok(attributes)
}

/// Creates a queue with `attributes`, or sets them on the queue if it already exists with
/// others; returns its URL.
async fn ensure_queue(
    clients: &Clients,
    name: &str,
    attributes: Vec<(QueueAttributeName, String)>,
) -> Result<String> {
    let mut create = clients.sqs.create_queue().queue_name(name);
    for (key, value) in &attributes {
        create = create.attributes(key.clone(), value);
    }
    match create.send().await {
        Ok(created) => Ok(created.queue_url().unwrap_or_default().to_owned()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_queue_name_exists()) =>
        {
            let url = clients
                .sqs
                .get_queue_url()
                .queue_name(name)
                .send()
                .await
                .map_err(clients.fail(format!("GetQueueUrl {name}")))?
                .queue_url()
                .unwrap_or_default()
                .to_owned();
            let mut set = clients.sqs.set_queue_attributes().queue_url(&url);
            // FifoQueue is fixed at creation; setting it again is refused.
            for (key, value) in attributes
                .into_iter()
                .filter(|(k, _)| *k != QueueAttributeName::FifoQueue)
            {
                set = set.attributes(key, value);
            }
            set.send()
                .await
                .map_err(clients.fail(format!("SetQueueAttributes {name}")))?;
            Ok(url)
        }
        Err(e) => Err(clients.fail(format!("CreateQueue {name}"))(e)),
    }
}

async fn queue_arn(clients: &Clients, url: &str) -> Result<String> {
    let attributes = clients
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(clients.fail(format!("GetQueueAttributes {url}")))?;
    attributes
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| Error::Aws {
            operation: format!("GetQueueAttributes {url}"),
            endpoint: clients.endpoint.clone(),
            message: "no QueueArn in the answer".into(),
        })
}

/// Creates an IoT policy unless one of that name exists; returns its ARN.
async fn ensure_iot_policy(clients: &Clients, name: &str, document: &str) -> Result<String> {
    let created = clients
        .iot
        .create_policy()
        .policy_name(name)
        .policy_document(document)
        .send()
        .await;
    match created {
        Ok(out) => Ok(out.policy_arn().unwrap_or_default().to_owned()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_already_exists_exception()) =>
        {
            let got = clients
                .iot
                .get_policy()
                .policy_name(name)
                .send()
                .await
                .map_err(clients.fail(format!("GetPolicy {name}")))?;
            Ok(got.policy_arn().unwrap_or_default().to_owned())
        }
        Err(e) => Err(clients.fail(format!("CreatePolicy {name}"))(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_from_arns() {
        assert_eq!(
            account_of_arn("arn:aws:sns:us-east-1:123456789012:vigil-local-operators"),
            Some("123456789012")
        );
        assert_eq!(account_of_arn("arn:aws:sns:us-east-1::x"), None);
        assert_eq!(account_of_arn("not an arn"), None);
    }
}
