//! The `zone-cells` table at scale (docs/PERFORMANCE.md, "Scale model"): how big its items grow
//! and what a fix's read of them costs, for deployments of 30k to 3M zones.
//!
//! ```sh
//! cargo test -p vigil-aws --test cell_items -- --ignored --nocapture
//! ```
//!
//! The zones are the first N of `vigil_testkit::zone_stream` (the `zone_lookup` benchmark's
//! zones where people live in Great Britain). Each zone goes under every cell of
//! `vigil_core::index::zone_cells`, as the attribute the DynamoDB adapter writes
//! (`items::zone_attr` = `items::zone_value`), and each item's size is DynamoDB's
//! (`items::attribute_size_bytes`: names plus values). A fix reads the cells of
//! `vigil_core::index::fix_cells`, each item rounded up to 4 KB, eventually consistent as
//! ingest's `BatchGetItem` reads them (`items::read_units`).
//!
//! The tags: one per order, three zones per order (so N / 3 tags), each reporting once a minute
//! (docs/DESIGN.md: at rest) from where people are (the zones' own population model), 10 m
//! accurate. The read rate of each cell follows from a sample of such fixes.

use std::collections::HashMap;
use vigil_aws::items::{
    self, MAX_ITEM_BYTES, attribute_size_bytes, item_size_bytes, read_units, write_units,
};
use vigil_core::index::{fix_cells, zone_cells};
use vigil_core::{BreachRules, Cell, Fix, TagId, Zone};
use vigil_testkit::zone_stream::{self, SplitMix64, populated_point};

/// Deployments measured, in zones (ascending: one pass over the stream serves them all).
/// 30k, 300k and 3M zones are the zones of 10k, 100k and 1M tags; 100k and 1M the benchmark's
/// largest index and ten times it.
const SIZES: [usize; 5] = [30_000, 100_000, 300_000, 1_000_000, 3_000_000];
/// Zones per order (and per tag): the tags of a deployment of N zones are N / 3.
const ZONES_PER_TAG: usize = 3;
/// Fixes per tag per second: one a minute, a tag at rest.
const FIXES_PER_TAG_S: f64 = 1.0 / 60.0;
/// Fixes sampled for the read rates.
const SAMPLED_FIXES: usize = 200_000;
/// A fix in central London: Charing Cross, 10 m accurate.
const CENTRAL_LONDON: (f64, f64) = (51.5074, -0.1278);
const ACCURACY_M: f64 = 10.0;

/// One `zone-cells` item as it would be stored: its size and how many zones it holds.
#[derive(Clone, Copy)]
struct CellItem {
    bytes: usize,
    zones: usize,
}

/// The `zone-cells` table's partition key, from its one definition (infra/resources.json).
fn cell_key_name() -> String {
    let resources: serde_json::Value =
        serde_json::from_str(include_str!("../../../infra/resources.json")).expect("valid JSON");
    resources["tables"]
        .as_array()
        .and_then(|tables| {
            tables
                .iter()
                .find(|t| t["name"] == items::table::ZONE_CELLS)
        })
        .and_then(|t| t["partition_key"]["name"].as_str())
        .expect("infra/resources.json defines zone-cells with a partition key")
        .to_owned()
}

fn fix_at(lat: f64, lon: f64) -> Fix {
    Fix {
        tag_id: TagId::new("scale-tag").expect("valid tag id"),
        seq: 1,
        at_ms: 0,
        lat,
        lon,
        accuracy_m: ACCURACY_M,
        speed_mps: None,
        heading_deg: None,
        battery_pct: None,
    }
}

/// The cells each sampled fix reads (tags are where people are).
fn sampled_fix_cells() -> Vec<Vec<Cell>> {
    let rules = BreachRules::default();
    let mut rng = SplitMix64(zone_stream::SEED ^ 0xF1C5);
    (0..SAMPLED_FIXES)
        .map(|_| {
            let (lat, lon) = populated_point(&mut rng);
            fix_cells(&fix_at(lat, lon), &rules)
        })
        .collect()
}

fn kb(bytes: usize) -> String {
    format!("{:.1} KB", bytes as f64 / 1024.0)
}

/// The eventually consistent read units of one fix that reads `cells` (an absent cell item
/// still costs the minimum read).
fn fix_read_units(cells: &[Cell], table: &HashMap<Cell, CellItem>, key_bytes: usize) -> f64 {
    cells
        .iter()
        .map(|c| read_units(table.get(c).map_or(key_bytes, |i| i.bytes), false))
        .sum()
}

/// A new home zone at [`CENTRAL_LONDON`]: 150 m radius, 1,000 m warning buffer.
fn london_home() -> Zone {
    serde_json::from_value(serde_json::json!({
        "zone_id": "zone-new", "kind": "home", "buffer_m": 1000, "order_id": "order-new",
        "circle": {"lat": CENTRAL_LONDON.0, "lon": CENTRAL_LONDON.1, "radius_m": 150}
    }))
    .expect("a valid zone")
}

/// Prints the table's figures for a deployment of `zones` zones.
fn report(
    zones: usize,
    table: &HashMap<Cell, CellItem>,
    fixes: &[Vec<Cell>],
    reads: &HashMap<Cell, usize>,
    key_bytes: usize,
) {
    let rules = BreachRules::default();
    let tags = zones / ZONES_PER_TAG;
    let entries: usize = table.values().map(|i| i.zones).sum();
    let (largest_cell, largest) = table
        .iter()
        .max_by_key(|(c, i)| (i.bytes, **c))
        .map(|(c, i)| (*c, *i))
        .expect("cells");
    let over_limit = table.values().filter(|i| i.bytes > MAX_ITEM_BYTES).count();
    let over_100k = table.values().filter(|i| i.bytes > 100 * 1024).count();

    let london = fix_cells(&fix_at(CENTRAL_LONDON.0, CENTRAL_LONDON.1), &rules);
    let london_bytes: usize = london
        .iter()
        .map(|c| table.get(c).map_or(key_bytes, |i| i.bytes))
        .sum();
    let london_zones: usize = london
        .iter()
        .filter_map(|c| table.get(c))
        .map(|i| i.zones)
        .sum();
    let london_eventual = fix_read_units(&london, table, key_bytes);
    let london_strong: f64 = london
        .iter()
        .map(|c| read_units(table.get(c).map_or(key_bytes, |i| i.bytes), true))
        .sum();
    // Adding a zone is one `UpdateItem` per cell, each charged for the whole item after it.
    let home = london_home();
    let home_bytes =
        attribute_size_bytes(&items::zone_attr(&home.key()), &items::zone_value(&home));
    let home_cells = zone_cells(&home);
    let home_wcu: usize = home_cells
        .iter()
        .map(|c| write_units(table.get(c).map_or(key_bytes, |i| i.bytes) + home_bytes))
        .sum();
    let home_refused = home_cells
        .iter()
        .filter(|c| table.get(c).map_or(key_bytes, |i| i.bytes) + home_bytes > MAX_ITEM_BYTES)
        .count();

    let mut per_fix: Vec<f64> = fixes
        .iter()
        .map(|cells| fix_read_units(cells, table, key_bytes))
        .collect();
    per_fix.sort_by(f64::total_cmp);
    let mean = per_fix.iter().sum::<f64>() / per_fix.len() as f64;
    let at = |q: f64| per_fix[((per_fix.len() - 1) as f64 * q).round() as usize];
    let fixes_over_limit = fixes
        .iter()
        .filter(|cells| {
            cells
                .iter()
                .any(|c| table.get(c).is_some_and(|i| i.bytes > MAX_ITEM_BYTES))
        })
        .count();

    // The hottest partition: a cell item's read units per second, from the share of fixes that
    // read it, at N / 3 tags reporting once a minute.
    let fleet_fixes_s = tags as f64 * FIXES_PER_TAG_S;
    let (hot_cell, hot_rcu_s, hot_reads_s) = reads
        .iter()
        .map(|(c, &n)| {
            let reads_s = fleet_fixes_s * n as f64 / fixes.len() as f64;
            let item = table.get(c).map_or(key_bytes, |i| i.bytes);
            (*c, reads_s * read_units(item, false), reads_s)
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .expect("fixes read cells");

    println!(
        "SCALE zones {zones} (tags {tags}, one fix a minute each: {fleet_fixes_s:.0} fixes/s)"
    );
    println!(
        "SCALE   cell items {}, entries {} ({:.1} per zone); items over 100 KB {over_100k}, over 400 KB {over_limit}",
        table.len(),
        entries,
        entries as f64 / zones as f64
    );
    println!(
        "SCALE   largest item: cell {largest_cell}, {} zones, {} bytes ({}); read {} RCU eventually consistent, {} strongly",
        largest.zones,
        largest.bytes,
        kb(largest.bytes),
        read_units(largest.bytes, false),
        read_units(largest.bytes, true)
    );
    println!(
        "SCALE   central London fix ({}, {}, {ACCURACY_M} m): {} cells ({}), {london_zones} zones, {london_bytes} bytes ({}): {london_eventual} RCU eventually consistent (ingest's read), {london_strong} strongly",
        CENTRAL_LONDON.0,
        CENTRAL_LONDON.1,
        london.len(),
        london.iter().map(Cell::key).collect::<Vec<_>>().join(" "),
        kb(london_bytes)
    );
    println!(
        "SCALE   a new home zone there (150 m, 1,000 m buffer): {} UpdateItems, {home_wcu} WCU; {home_refused} of them refused (item over 400 KB)",
        home_cells.len()
    );
    println!(
        "SCALE   per fix where people are ({} sampled): cell read units mean {mean:.2}, p50 {}, p99 {}, max {}; {:.2} % read an item over 400 KB",
        fixes.len(),
        at(0.5),
        at(0.99),
        at(1.0),
        100.0 * fixes_over_limit as f64 / fixes.len() as f64
    );
    println!(
        "SCALE   zone-cells reads: {:.0} RCU/s in all; hottest partition: cell {hot_cell}, {hot_reads_s:.1} reads/s, {hot_rcu_s:.0} RCU/s (a partition serves 3,000)",
        mean * fleet_fixes_s
    );
}

#[test]
#[ignore = "the scale model's measurement: minutes in a debug build; run with --ignored --nocapture"]
fn cell_items_at_scale() {
    let key_name = cell_key_name();
    let key_bytes = |cell: &Cell| attribute_size_bytes(&key_name, &items::s(cell.key()));
    let fixes = sampled_fix_cells();
    let mut reads: HashMap<Cell, usize> = HashMap::new();
    for cell in fixes.iter().flatten() {
        *reads.entry(*cell).or_default() += 1;
    }
    let absent_key_bytes = key_bytes(&Cell::of_point(CENTRAL_LONDON.0, CENTRAL_LONDON.1));

    let mut table: HashMap<Cell, CellItem> = HashMap::new();
    let mut stream = zone_stream::zones().map(|(spec, _)| {
        serde_json::from_value::<Zone>(spec).expect("the stream's zones are valid")
    });
    let mut held = 0;
    // The first zone whose write makes an item exceed 400 KB (DynamoDB would refuse it).
    let mut first_refused: Option<(usize, Cell)> = None;
    let mut provisioning_wcu = 0usize;
    // The largest item at the first size, rebuilt as the real item to check the sums.
    let mut check: Option<(Cell, CellItem)> = None;
    for size in SIZES {
        for (n, zone) in (held + 1..).zip(stream.by_ref().take(size - held)) {
            let bytes =
                attribute_size_bytes(&items::zone_attr(&zone.key()), &items::zone_value(&zone));
            for cell in zone_cells(&zone) {
                let item = table.entry(cell).or_insert(CellItem {
                    bytes: key_bytes(&cell),
                    zones: 0,
                });
                item.bytes += bytes;
                item.zones += 1;
                provisioning_wcu += write_units(item.bytes);
                if item.bytes > MAX_ITEM_BYTES && first_refused.is_none() {
                    first_refused = Some((n, cell));
                }
            }
        }
        held = size;
        report(size, &table, &fixes, &reads, absent_key_bytes);
        println!(
            "SCALE   writing all {size} zones, one UpdateItem per cell: {provisioning_wcu} WCU; first write refused (item over 400 KB): {}",
            first_refused.map_or("none".to_owned(), |(n, cell)| format!(
                "zone {n}, cell {cell}"
            ))
        );
        if check.is_none() {
            check = table
                .iter()
                .max_by_key(|(c, i)| (i.bytes, **c))
                .map(|(c, i)| (*c, *i));
        }
    }

    // The sums above are the item's size: rebuild the largest item of the first size with the
    // adapter's mapping and measure it whole.
    let (cell, expected) = check.expect("a first size");
    let mut item = items::Item::from([(key_name.clone(), items::s(cell.key()))]);
    for zone in zone_stream::zones()
        .take(SIZES[0])
        .map(|(spec, _)| serde_json::from_value::<Zone>(spec).expect("valid"))
        .filter(|z| zone_cells(z).contains(&cell))
    {
        item.insert(items::zone_attr(&zone.key()), items::zone_value(&zone));
    }
    assert_eq!(item_size_bytes(&item), expected.bytes);
    assert_eq!(
        items::zones_of_cell(&item)
            .expect("the item reads back")
            .len(),
        expected.zones
    );
    println!(
        "SCALE check: cell {cell} at {} zones rebuilt as the adapter writes it: {} bytes, {} zones, as summed",
        SIZES[0], expected.bytes, expected.zones
    );
}
