//! What Lambda's DynamoDB stream event source mapping does, for running stream-triggered
//! functions locally (the anchor function on the audit table's stream): read each shard in
//! order from its oldest record, hand a batch to the function as the Lambda DynamoDB event
//! JSON, and move on only past what the function finished. A batch item failure
//! (`{"batchItemFailures":[{"itemIdentifier": <SequenceNumber>}]}`) makes the next batch start
//! at that record; a failed invocation repeats the whole batch. Nothing is ever skipped, as
//! with the mapping's unlimited retries.
//!
//! Each read takes a fresh shard iterator after the last record finished (iterators expire
//! after 15 minutes on AWS; positions do not). The table's latest stream is looked up on each
//! read, so a table deleted and created again (DynamoDB Local's reset) is followed to its new
//! stream, from its beginning.

use crate::{Error, Result};
use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// A table's stream seen as a Lambda event source.
pub struct StreamEventSource {
    dynamodb: aws_sdk_dynamodb::Client,
    streams: aws_sdk_dynamodbstreams::Client,
    table: String,
    region: String,
    stream_arn: Option<String>,
    /// Per shard, the sequence number of the last record the function finished.
    done: BTreeMap<String, String>,
}

/// One batch read: the Lambda event, and where it came from.
#[derive(Debug, Clone)]
pub struct StreamBatch {
    /// The Lambda DynamoDB event: `{"Records": [...]}`.
    pub event: Value,
    shard: String,
    sequences: Vec<String>,
}

impl StreamBatch {
    /// Number of records.
    pub fn len(&self) -> usize {
        self.sequences.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.sequences.is_empty()
    }
}

fn fail<E: std::fmt::Debug>(operation: String) -> impl FnOnce(E) -> Error {
    move |e| Error::Aws {
        operation,
        endpoint: "dynamodb streams".into(),
        message: format!("{e:?}"),
    }
}

impl StreamEventSource {
    /// The stream of table `table` (its physical name), read with the emulator's clients.
    pub fn new(
        dynamodb: aws_sdk_dynamodb::Client,
        streams: aws_sdk_dynamodbstreams::Client,
        table: impl Into<String>,
        region: impl Into<String>,
    ) -> Self {
        Self {
            dynamodb,
            streams,
            table: table.into(),
            region: region.into(),
            stream_arn: None,
            done: BTreeMap::new(),
        }
    }

    async fn latest_stream(&mut self) -> Result<Option<String>> {
        let described = self
            .dynamodb
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(fail(format!("DescribeTable {}", self.table)))?;
        let arn = described
            .table()
            .and_then(|t| t.latest_stream_arn())
            .map(str::to_owned);
        if arn != self.stream_arn {
            self.done.clear();
            self.stream_arn.clone_from(&arn);
        }
        Ok(arn)
    }

    /// Reads the next batch of at most `max` records (1 to 1000) from the first shard that has
    /// any past what was finished; `None` when there are none now.
    pub async fn poll(&mut self, max: i32) -> Result<Option<StreamBatch>> {
        let Some(arn) = self.latest_stream().await? else {
            return Ok(None);
        };
        let described = self
            .streams
            .describe_stream()
            .stream_arn(&arn)
            .send()
            .await
            .map_err(fail(format!("DescribeStream {arn}")))?;
        let shards: Vec<String> = described
            .stream_description()
            .map(|d| {
                d.shards()
                    .iter()
                    .filter_map(|s| s.shard_id().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        for shard in shards {
            let mut request = self
                .streams
                .get_shard_iterator()
                .stream_arn(&arn)
                .shard_id(&shard);
            request = match self.done.get(&shard) {
                Some(seq) => request
                    .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                    .sequence_number(seq),
                None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
            };
            let iterator = request
                .send()
                .await
                .map_err(fail(format!("GetShardIterator {shard}")))?;
            let Some(iterator) = iterator.shard_iterator() else {
                continue;
            };
            let got = self
                .streams
                .get_records()
                .shard_iterator(iterator)
                .limit(max)
                .send()
                .await
                .map_err(fail(format!("GetRecords {shard}")))?;
            if got.records().is_empty() {
                continue;
            }
            let records: Vec<Value> = got
                .records()
                .iter()
                .map(|r| lambda_record(r, &arn, &self.region))
                .collect();
            let sequences = got
                .records()
                .iter()
                .map(|r| {
                    r.dynamodb()
                        .and_then(|d| d.sequence_number())
                        .unwrap_or_default()
                        .to_owned()
                })
                .collect();
            return Ok(Some(StreamBatch {
                event: json!({ "Records": records }),
                shard,
                sequences,
            }));
        }
        Ok(None)
    }

    /// Records what the function finished of `batch`, given its response: everything before
    /// the first record it reported as failed (the whole batch when none), so the next
    /// [`poll`](StreamEventSource::poll) starts there. Returns the number finished.
    pub fn complete(&mut self, batch: &StreamBatch, response: &Value) -> usize {
        let failed = crate::event_source::batch_item_failures(response);
        let finished = batch
            .sequences
            .iter()
            .position(|s| failed.contains(&s.as_str()))
            .unwrap_or(batch.sequences.len());
        if let Some(last) = finished.checked_sub(1).map(|i| &batch.sequences[i]) {
            self.done.insert(batch.shard.clone(), last.clone());
        }
        finished
    }
}

/// A stream record as Lambda delivers it to a function.
pub fn lambda_record(r: &Record, stream_arn: &str, region: &str) -> Value {
    let mut dynamodb = Map::new();
    if let Some(d) = r.dynamodb() {
        if let Some(t) = d.approximate_creation_date_time() {
            dynamodb.insert("ApproximateCreationDateTime".into(), json!(t.secs()));
        }
        for (name, image) in [
            ("Keys", d.keys()),
            ("NewImage", d.new_image()),
            ("OldImage", d.old_image()),
        ] {
            if let Some(image) = image {
                dynamodb.insert(name.into(), item_json(image));
            }
        }
        if let Some(s) = d.sequence_number() {
            dynamodb.insert("SequenceNumber".into(), json!(s));
        }
        if let Some(n) = d.size_bytes() {
            dynamodb.insert("SizeBytes".into(), json!(n));
        }
        if let Some(v) = d.stream_view_type() {
            dynamodb.insert("StreamViewType".into(), json!(v.as_str()));
        }
    }
    json!({
        "eventID": r.event_id(),
        "eventName": r.event_name().map(|n| n.as_str()),
        "eventVersion": r.event_version().unwrap_or("1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    })
}

fn item_json(item: &std::collections::HashMap<String, AttributeValue>) -> Value {
    Value::Object(
        item.iter()
            .map(|(k, v)| (k.clone(), attribute_json(v)))
            .collect(),
    )
}

/// An attribute value in DynamoDB JSON (`{"S": "..."}`, `{"N": "1"}`, binary as base64).
pub fn attribute_json(v: &AttributeValue) -> Value {
    use base64::Engine;
    let b64 = |b: &aws_sdk_dynamodbstreams::primitives::Blob| {
        base64::engine::general_purpose::STANDARD.encode(b.as_ref())
    };
    match v {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::B(b) => json!({ "B": b64(b) }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(b) => json!({ "NULL": b }),
        AttributeValue::M(m) => json!({ "M": item_json(m) }),
        AttributeValue::L(l) => json!({ "L": l.iter().map(attribute_json).collect::<Vec<_>>() }),
        AttributeValue::Ss(ss) => json!({ "SS": ss }),
        AttributeValue::Ns(ns) => json!({ "NS": ns }),
        AttributeValue::Bs(bs) => json!({ "BS": bs.iter().map(b64).collect::<Vec<_>>() }),
        _ => json!({ "NULL": true }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodbstreams::primitives::Blob;
    use aws_sdk_dynamodbstreams::types::{OperationType, StreamRecord};
    use std::collections::HashMap;

    #[test]
    fn attribute_values_are_dynamodb_json() {
        let m = HashMap::from([("a".to_owned(), AttributeValue::N("1".into()))]);
        let cases = [
            (AttributeValue::S("x".into()), json!({"S": "x"})),
            (
                AttributeValue::B(Blob::new(b"hi".to_vec())),
                json!({"B": "aGk="}),
            ),
            (AttributeValue::Bool(true), json!({"BOOL": true})),
            (AttributeValue::Null(true), json!({"NULL": true})),
            (AttributeValue::M(m), json!({"M": {"a": {"N": "1"}}})),
            (
                AttributeValue::L(vec![AttributeValue::S("y".into())]),
                json!({"L": [{"S": "y"}]}),
            ),
            (AttributeValue::Ss(vec!["p".into()]), json!({"SS": ["p"]})),
            (AttributeValue::Ns(vec!["2".into()]), json!({"NS": ["2"]})),
            (
                AttributeValue::Bs(vec![Blob::new(b"hi".to_vec())]),
                json!({"BS": ["aGk="]}),
            ),
        ];
        for (v, want) in cases {
            assert_eq!(attribute_json(&v), want);
        }
    }

    #[test]
    fn a_record_is_the_lambda_event_record() {
        let keys = HashMap::from([("order_id".to_owned(), AttributeValue::S("o1".into()))]);
        let r = Record::builder()
            .event_id("e1")
            .event_name(OperationType::Remove)
            .dynamodb(
                StreamRecord::builder()
                    .set_keys(Some(keys.clone()))
                    .set_old_image(Some(keys))
                    .sequence_number("42")
                    .build(),
            )
            .build();
        let v = lambda_record(&r, "arn:s", "eu-west-2");
        assert_eq!(v["eventName"], "REMOVE");
        assert_eq!(v["eventSource"], "aws:dynamodb");
        assert_eq!(v["eventSourceARN"], "arn:s");
        assert_eq!(v["dynamodb"]["SequenceNumber"], "42");
        assert_eq!(v["dynamodb"]["OldImage"]["order_id"], json!({"S": "o1"}));
        assert!(v["dynamodb"].get("NewImage").is_none());
    }

    fn source() -> StreamEventSource {
        let conf = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .build();
        let sconf = aws_sdk_dynamodbstreams::Config::builder()
            .behavior_version(aws_sdk_dynamodbstreams::config::BehaviorVersion::latest())
            .build();
        StreamEventSource::new(
            aws_sdk_dynamodb::Client::from_conf(conf),
            aws_sdk_dynamodbstreams::Client::from_conf(sconf),
            "t",
            "eu-west-2",
        )
    }

    #[test]
    fn only_what_the_function_finished_is_passed() {
        let mut s = source();
        let batch = StreamBatch {
            event: json!({}),
            shard: "sh".into(),
            sequences: vec!["1".into(), "2".into(), "3".into()],
        };
        // The second failed: the next batch starts at it.
        let failed = json!({"batchItemFailures": [{"itemIdentifier": "2"}]});
        assert_eq!(s.complete(&batch, &failed), 1);
        assert_eq!(s.done.get("sh").map(String::as_str), Some("1"));
        // The first failed: nothing finished, the position stays.
        let first = json!({"batchItemFailures": [{"itemIdentifier": "1"}]});
        assert_eq!(s.complete(&batch, &first), 0);
        assert_eq!(s.done.get("sh").map(String::as_str), Some("1"));
        // All done.
        assert_eq!(s.complete(&batch, &json!({"batchItemFailures": []})), 3);
        assert_eq!(s.done.get("sh").map(String::as_str), Some("3"));
    }
}
