//! The capacity units `RequestCounter` computes from the items it sees, against DynamoDB's
//! published rules applied by hand and against the units AWS's DynamoDB Local reports
//! (`ReturnConsumedCapacity`), for the operations Vigil uses: so the cost table (`vigil-sim
//! cost`) is priced on DynamoDB's own arithmetic. moto's `ConsumedCapacity` is a fixed value
//! whatever the items, so on moto only the rules by hand are checked.
//!
//! `VIGIL_DYNAMODB=local cargo test -p vigil-pipeline --test capacity_emulator`

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeyType, KeysAndAttributes, Put,
    ReturnConsumedCapacity, ScalarAttributeType, TransactWriteItem,
};
use std::collections::HashMap;
use vigil_aws::counting::RequestCounter;
use vigil_local::{DynamoDb, Emulator};

const TABLE: &str = "capacity-check";

fn item(sk: &str, bytes: usize) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S("p".to_owned())),
        ("sk".to_owned(), AttributeValue::S(sk.to_owned())),
        ("body".to_owned(), AttributeValue::S("x".repeat(bytes))),
    ])
}

fn key(sk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S("p".to_owned())),
        ("sk".to_owned(), AttributeValue::S(sk.to_owned())),
    ])
}

#[tokio::test]
async fn the_counter_s_units_are_dynamodb_s() {
    let emulator = Emulator::start().await.expect("emulator starts");
    let local = DynamoDb::from_env().expect("VIGIL_DYNAMODB") == DynamoDb::Local;
    let counter = RequestCounter::new();
    let conf = aws_sdk_dynamodb::config::Builder::from(&emulator.sdk_config())
        .interceptor(counter.clone())
        .build();
    let db = Client::from_conf(conf);
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let key_part = |name: &str, kind| {
        aws_sdk_dynamodb::types::KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .unwrap()
    };
    db.create_table()
        .table_name(TABLE)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("pk"))
        .attribute_definitions(attribute("sk"))
        .key_schema(key_part("pk", KeyType::Hash))
        .key_schema(key_part("sk", KeyType::Range))
        .send()
        .await
        .unwrap();
    let total = ReturnConsumedCapacity::Total;
    // (what, counted, reported): each operation alone, the counter reset before it.
    let mut checks: Vec<(&str, f64, f64)> = Vec::new();

    // Puts of 100 B, 1.5 KB and 5,000 B (4.9 KB): 1, 2 and 5 write units.
    for (sk, bytes, units) in [("a", 100, 1.0), ("b", 1_500, 2.0), ("c", 5_000, 5.0)] {
        counter.reset();
        let out = db
            .put_item()
            .table_name(TABLE)
            .set_item(Some(item(sk, bytes)))
            .return_consumed_capacity(total.clone())
            .send()
            .await
            .unwrap();
        let reported = out.consumed_capacity().and_then(|c| c.capacity_units());
        checks.push((
            "PutItem",
            counter.capacity().write_units,
            reported.unwrap_or(units),
        ));
    }
    // A batch of the three and one missing, eventually consistent: 0.5 + 0.5 + 1 + 0.5.
    counter.reset();
    let keys = KeysAndAttributes::builder()
        .set_keys(Some(vec![key("a"), key("b"), key("c"), key("none")]))
        .build()
        .unwrap();
    let out = db
        .batch_get_item()
        .request_items(TABLE, keys)
        .return_consumed_capacity(total.clone())
        .send()
        .await
        .unwrap();
    let reported: f64 = out
        .consumed_capacity()
        .iter()
        .filter_map(|c| c.capacity_units())
        .sum();
    checks.push(("BatchGetItem", counter.capacity().read_units, reported));
    // A consistent query of all three (6.6 KB): 2 read units.
    counter.reset();
    let out = db
        .query()
        .table_name(TABLE)
        .key_condition_expression("pk = :p")
        .expression_attribute_values(":p", AttributeValue::S("p".to_owned()))
        .consistent_read(true)
        .return_consumed_capacity(total.clone())
        .send()
        .await
        .unwrap();
    let reported = out.consumed_capacity().and_then(|c| c.capacity_units());
    checks.push((
        "Query",
        counter.capacity().read_units,
        reported.unwrap_or(2.0),
    ));
    // A transaction of two small puts: 2 units each.
    counter.reset();
    let put = |sk: &str| {
        TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name(TABLE)
                    .set_item(Some(item(sk, 100)))
                    .build()
                    .unwrap(),
            )
            .build()
    };
    let out = db
        .transact_write_items()
        .transact_items(put("d"))
        .transact_items(put("e"))
        .return_consumed_capacity(total)
        .send()
        .await
        .unwrap();
    let reported: f64 = out
        .consumed_capacity()
        .iter()
        .filter_map(|c| c.capacity_units())
        .sum();
    checks.push((
        "TransactWriteItems",
        counter.capacity().write_units,
        reported,
    ));

    eprintln!("CAPACITY (operation, counted, reported by the engine): {checks:?}");
    let by_rules = [1.0, 2.0, 5.0, 2.5, 2.0, 4.0];
    // Where DynamoDB Local's report departs from AWS's published rules, which the counter
    // follows: it charges nothing for a key a batch does not find (AWS: "the minimum read
    // capacity units according to the read type"), and does not double a transaction's writes
    // (AWS: two write units per KB in a transaction).
    let local_differs = [0.0, 0.0, 0.0, 0.5, 0.0, 2.0];
    for (((op, counted, reported), expected), differs) in
        checks.iter().zip(by_rules).zip(local_differs)
    {
        assert_eq!(*counted, expected, "{op}: DynamoDB's rules by hand");
        if local {
            assert_eq!(
                *counted - differs,
                *reported,
                "{op}: as DynamoDB Local reports it"
            );
        }
    }
}
