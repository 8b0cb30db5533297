//! Counting the AWS requests a piece of work makes: an SDK interceptor that tallies every
//! request sent (retries included: each is billed) by operation, and the DynamoDB capacity
//! units each consumed, computed from the items it actually read and wrote. Used to measure
//! the cost of a fix (`vigil-sim cost`, docs/PERFORMANCE.md).
//!
//! Capacity units follow DynamoDB's published rules, applied to the item sizes of the request
//! and response bodies (an emulator's own `ConsumedCapacity` is not relied on: moto reports
//! fixed values):
//! - a read unit is 4 KB, half a unit when eventually consistent; `GetItem` and each item of a
//!   `BatchGetItem` round up on their own (an item not found costs one read all the same);
//!   `Query` and `Scan` round the total of the items returned once;
//! - a write unit is 1 KB; transactions (`TransactWriteItems`, `TransactGetItems`) count double;
//!   a write refused by its condition is billed like one that succeeds;
//! - the size of an item is the sum of its attribute names and values (strings as UTF-8,
//!   numbers a byte per two significant digits plus one, 3 bytes plus one per element for
//!   lists and maps), as DynamoDB's "item sizes" page states.
//!
//! What the bodies cannot show is counted as at least one unit and reported in
//! [`Capacity::estimated_writes`]: an `UpdateItem`, `DeleteItem` or a transaction's update,
//! whose item is not in the request (it would be billed on the larger of the item before and
//! after). A `PutItem` is sized by the item it writes; one that replaces a larger item is
//! billed on the larger, which the bodies do not show either (our puts replace items of the
//! same shape).

use crate::items::{number_size_bytes, read_units};
use aws_sdk_dynamodb::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// DynamoDB capacity consumed, in request units (on-demand billing's units).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Capacity {
    /// Read request units.
    pub read_units: f64,
    /// Write request units.
    pub write_units: f64,
    /// Writes whose item size the bodies did not show, counted as one unit each (two in a
    /// transaction).
    pub estimated_writes: u64,
}

#[derive(Debug, Default)]
struct Tally {
    requests: BTreeMap<String, u64>,
    capacity: Capacity,
}

/// Requests sent, by operation (`DynamoDB_20120810.BatchGetItem` becomes `BatchGetItem`), and
/// the DynamoDB capacity they consumed.
#[derive(Debug, Default, Clone)]
pub struct RequestCounter {
    tally: Arc<Mutex<Tally>>,
}

impl RequestCounter {
    /// A new counter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counts so far, by operation.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.tally.lock().expect("counter lock").requests.clone()
    }

    /// The DynamoDB capacity consumed so far.
    pub fn capacity(&self) -> Capacity {
        self.tally.lock().expect("counter lock").capacity
    }

    /// Sets every count back to zero.
    pub fn reset(&self) {
        *self.tally.lock().expect("counter lock") = Tally::default();
    }

    /// The total of the named operations.
    pub fn total_of(&self, ops: &[&str]) -> u64 {
        let t = self.tally.lock().expect("counter lock");
        ops.iter()
            .map(|o| t.requests.get(*o).copied().unwrap_or(0))
            .sum()
    }
}

/// A DynamoDB request's operation and body, kept from transmit to the response.
#[derive(Debug, Clone)]
struct SentRequest {
    operation: String,
    body: Value,
}

impl Storable for SentRequest {
    type Storer = StoreReplace<Self>;
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // The JSON protocols name the operation in X-Amz-Target; the query protocols in Action.
        let req = context.request();
        let target = req.headers().get("x-amz-target");
        let op = match target {
            Some(target) => target.rsplit('.').next().unwrap_or(target).to_owned(),
            None => "Other".to_owned(),
        };
        if target.is_some_and(|t| t.starts_with("DynamoDB_")) {
            let body = req
                .body()
                .bytes()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            cfg.interceptor_state().store_put(SentRequest {
                operation: op.clone(),
                body,
            });
        }
        *self
            .tally
            .lock()
            .expect("counter lock")
            .requests
            .entry(op)
            .or_default() += 1;
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(sent) = cfg.load::<SentRequest>() else {
            return Ok(());
        };
        let response = context.response();
        let body: Value = response
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(Value::Null);
        let refused_by_condition = body
            .get("__type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.ends_with("ConditionalCheckFailedException"));
        let used = if response.status().is_success() {
            consumed(&sent.operation, &sent.body, &body)
        } else if refused_by_condition {
            consumed(&sent.operation, &sent.body, &Value::Null)
        } else {
            Capacity::default()
        };
        let mut t = self.tally.lock().expect("counter lock");
        t.capacity.read_units += used.read_units;
        t.capacity.write_units += used.write_units;
        t.capacity.estimated_writes += used.estimated_writes;
        Ok(())
    }
}

/// The capacity one DynamoDB operation consumed, from its request and response bodies.
pub fn consumed(operation: &str, request: &Value, response: &Value) -> Capacity {
    let mut c = Capacity::default();
    let consistent = |spec: &Value| spec.get("ConsistentRead") == Some(&Value::Bool(true));
    let items = |v: Option<&Value>| -> Vec<usize> {
        v.and_then(Value::as_array)
            .map(|a| a.iter().map(item_size).collect())
            .unwrap_or_default()
    };
    match operation {
        "GetItem" => {
            let size = response.get("Item").map_or(0, item_size);
            c.read_units = read_units(size, consistent(request));
        }
        "BatchGetItem" => {
            let requested = request.get("RequestItems").and_then(Value::as_object);
            for (table, spec) in requested.into_iter().flatten() {
                let keys = spec
                    .get("Keys")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                let unprocessed = response
                    .pointer(&format!("/UnprocessedKeys/{table}/Keys"))
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                let found = items(response.pointer(&format!("/Responses/{table}")));
                let missing = keys.saturating_sub(unprocessed + found.len());
                c.read_units += found
                    .iter()
                    .map(|s| read_units(*s, consistent(spec)))
                    .sum::<f64>()
                    + missing as f64 * read_units(0, consistent(spec));
            }
        }
        "Query" | "Scan" => {
            let total: usize = items(response.get("Items")).iter().sum();
            c.read_units = read_units(total, consistent(request));
        }
        "TransactGetItems" => {
            let answers = response.get("Responses").and_then(Value::as_array);
            c.read_units = answers
                .into_iter()
                .flatten()
                .map(|r| 2.0 * read_units(r.get("Item").map_or(0, item_size), true))
                .sum();
        }
        "PutItem" => c.write_units = write_units(request.get("Item").map_or(0, item_size)),
        "UpdateItem" | "DeleteItem" => match response.get("Attributes") {
            Some(item) => c.write_units = write_units(item_size(item)),
            None => {
                c.write_units = 1.0;
                c.estimated_writes = 1;
            }
        },
        "BatchWriteItem" => {
            let tables = request.get("RequestItems").and_then(Value::as_object);
            for w in tables
                .into_iter()
                .flatten()
                .filter_map(|(_, w)| w.as_array())
            {
                for put_or_delete in w {
                    match put_or_delete.pointer("/PutRequest/Item") {
                        Some(item) => c.write_units += write_units(item_size(item)),
                        None => {
                            c.write_units += 1.0;
                            c.estimated_writes += 1;
                        }
                    }
                }
            }
        }
        "TransactWriteItems" => {
            let parts = request.get("TransactItems").and_then(Value::as_array);
            for part in parts.into_iter().flatten() {
                match part.pointer("/Put/Item") {
                    Some(item) => c.write_units += 2.0 * write_units(item_size(item)),
                    None => {
                        c.write_units += 2.0;
                        c.estimated_writes += 1;
                    }
                }
            }
        }
        _ => {}
    }
    c
}

/// Write units for an item of `size` bytes (at least one), as a figure to add up.
fn write_units(size: usize) -> f64 {
    crate::items::write_units(size) as f64
}

/// The size DynamoDB bills for an item in its JSON wire form (`{"name": {"S": "..."}}`).
pub fn item_size(item: &Value) -> usize {
    item.as_object().map_or(0, attributes_size)
}

fn attributes_size(attributes: &Map<String, Value>) -> usize {
    attributes
        .iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

fn value_size(value: &Value) -> usize {
    let Some((kind, v)) = value.as_object().and_then(|o| o.iter().next()) else {
        return 0;
    };
    let strings = || v.as_array().into_iter().flatten().filter_map(Value::as_str);
    match kind.as_str() {
        "S" => v.as_str().map_or(0, str::len),
        "N" => v.as_str().map_or(0, number_size_bytes),
        "B" => v.as_str().map_or(0, base64_decoded_len),
        "BOOL" | "NULL" => 1,
        "SS" => strings().map(str::len).sum(),
        "NS" => strings().map(number_size_bytes).sum(),
        "BS" => strings().map(base64_decoded_len).sum(),
        "L" => {
            3 + v
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| value_size(e) + 1)
                .sum::<usize>()
        }
        "M" => {
            3 + v.as_object().map_or(0, |m| {
                m.iter()
                    .map(|(name, e)| name.len() + value_size(e) + 1)
                    .sum::<usize>()
            })
        }
        _ => 0,
    }
}

fn base64_decoded_len(b64: &str) -> usize {
    let padding = b64.chars().rev().take_while(|c| *c == '=').count();
    (b64.len() / 4) * 3 - padding.min(2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn item_sizes_follow_dynamodb_s_rules() {
        // "pk" 2 + "tag-1" 5; "n" 1 + 3 significant digits (2 bytes) + 1; "ok" 2 + 1.
        let item = json!({"pk": {"S": "tag-1"}, "n": {"N": "12.300"}, "ok": {"BOOL": true}});
        assert_eq!(item_size(&item), 7 + 4 + 3);
        // A list: 3 + (value + 1) per element; a map: 3 + (name + value + 1) per entry.
        let nested = json!({"l": {"L": [{"S": "ab"}]}, "m": {"M": {"k": {"S": "v"}}}});
        assert_eq!(item_size(&nested), (1 + 3 + 3) + (1 + 3 + 3));
    }

    #[test]
    fn reads_round_per_item_in_a_batch_and_once_for_a_query() {
        let small = json!({"pk": {"S": "x"}});
        let request = json!({"RequestItems": {
            "tags": {"Keys": [{}, {}, {}]},
            "zones": {"Keys": [{}], "ConsistentRead": true}
        }});
        // Two tags found, one missing (still a read), all eventually consistent: 1.5; the
        // consistent zone: 1.
        let response = json!({"Responses": {"tags": [small, small], "zones": [small]}});
        let c = consumed("BatchGetItem", &request, &response);
        assert_eq!(c.read_units, 2.5);
        let many = json!({"Items": vec![json!({"pk": {"S": "x".repeat(1500)}}); 3]});
        assert_eq!(consumed("Query", &json!({}), &many).read_units, 1.0);
        assert_eq!(
            consumed("Query", &json!({"ConsistentRead": true}), &many).read_units,
            2.0
        );
    }

    #[test]
    fn writes_round_per_kilobyte_and_transactions_count_double() {
        let item = json!({"pk": {"S": "x".repeat(1100)}});
        assert_eq!(
            consumed("PutItem", &json!({"Item": item}), &json!({})).write_units,
            2.0
        );
        let tx = json!({"TransactItems": [{"Put": {"Item": {"pk": {"S": "x"}}}}, {"Update": {}}]});
        let c = consumed("TransactWriteItems", &tx, &json!({}));
        assert_eq!((c.write_units, c.estimated_writes), (4.0, 1));
    }
}
