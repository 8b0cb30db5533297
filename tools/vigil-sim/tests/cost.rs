//! `vigil-sim cost` against the emulator: the request shapes and capacity units the cost table
//! is built from, so that the table cannot drift silently when a handler's requests change.
//! Not timed, and no price is asserted (a price change must not break it): only the structure.

use std::collections::BTreeMap;
use vigil_sim::cost::{CostOptions, PATHS, Path, Prices, ROWS, measure, render};

fn requests(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
    pairs.iter().map(|(op, n)| ((*op).to_owned(), *n)).collect()
}

#[tokio::test]
async fn the_table_is_built_from_these_requests() {
    let m = measure(CostOptions {
        messages: 2,
        watchdog_tags: 5,
        watchdog_minutes: 3,
    })
    .await
    .expect("measured on the emulator");

    let quiet = requests(&[("BatchGetItem", 1.0), ("PutItem", 1.0)]);
    let quiet_device = requests(&[("BatchGetItem", 2.0), ("PutItem", 1.0)]);
    let near = requests(&[("BatchGetItem", 1.0), ("PutItem", 1.0), ("Query", 1.0)]);
    let near_device = requests(&[("BatchGetItem", 2.0), ("PutItem", 1.0), ("Query", 1.0)]);
    let expected = [
        (Path::TagQuiet, &quiet),
        (Path::TagQuietWithDevice, &quiet_device),
        (Path::TagNear, &near),
        (Path::TagNearWithDevice, &near_device),
        (Path::DevicePosition, &quiet_device),
        (Path::DevicePositionPursuit, &quiet_device),
        // A v2 batch of 15 far fixes: one quiet read and write for all, and the Query of the
        // order's zones that judges the window again on every message while there is one.
        (Path::TagBatched, &near),
    ];
    assert_eq!(m.paths.len(), PATHS.len(), "every path is measured");
    for (path, shape) in expected {
        let u = &m.paths[&path];
        assert_eq!(&u.requests, shape, "{path:?}");
        // Every item under 1 KB: the history's one write unit; no write sized by guess.
        assert_eq!(u.write_units, 1.0, "{path:?}");
        assert_eq!(u.estimated_writes, 0.0, "{path:?}");
        assert_eq!(u.sqs_requests(), 0.0, "{path:?}: nothing queued");
        assert!(
            u.payload_bytes > 0.0 && u.payload_bytes < 5.0 * 1024.0,
            "{path:?}"
        );
        assert!(u.log_bytes > 0.0, "{path:?}: its EMF line");
    }
    // The quiet fix reads the tag, its history and one cell, eventually consistent, each
    // under 4 KB; near a zone, the order's states (consistent) on top.
    assert_eq!(m.paths[&Path::TagQuiet].read_units, 1.5);
    assert_eq!(m.paths[&Path::TagNear].read_units, 2.5);

    // The watchdog over a healthy fleet: reads and its own marks, nothing queued.
    let w = &m.watchdog_per_tag_minute;
    for op in w.requests.keys() {
        assert!(
            ["BatchGetItem", "GetItem", "PutItem", "Query", "Scan"].contains(&op.as_str()),
            "unexpected watchdog request {op}"
        );
    }
    assert!(w.read_units > 0.0 && w.write_units > 0.0, "{w:?}");
    assert_eq!(w.sqs_requests(), 0.0);

    // The report: one line per row, the split with its total, one line per path.
    let prices = Prices::shipped().expect("prices.json parses");
    let report = render(&m, &prices);
    let table_rows = report.lines().filter(|l| l.starts_with("| 1 fix/")).count();
    assert_eq!(table_rows, ROWS.len(), "{report}");
    assert!(report.contains("| **total** |"), "{report}");
    for p in PATHS {
        assert!(report.contains(&format!("| {} |", p.label)), "{report}");
    }
}

#[test]
fn every_price_names_its_source() {
    let p = Prices::shipped().expect("prices.json parses");
    for (_, price) in p.each() {
        assert!(price.usd > 0.0 && price.per > 0.0, "{price:?}");
        assert!(price.source.starts_with("aws.amazon.com/"), "{price:?}");
    }
}
