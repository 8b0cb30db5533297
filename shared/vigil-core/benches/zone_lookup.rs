//! Per-fix zone lookup: the geohash index against a brute-force scan of the same zones.
//!
//! Run with `cargo bench -p vigil-core --bench zone_lookup`; the results and how to read them
//! are in `docs/PERFORMANCE.md`.
//!
//! # Workload
//! One deterministic stream of 100,000 zones (`vigil_testkit::zone_stream`: a fixed-seed
//! splitmix64, no `rand`) placed where people live in Great Britain: 70 % within a few
//! kilometres of one of 26 towns and cities, picked in proportion to population, and 30 % in
//! the countryside around them (tens of kilometres). Homes, workplaces and schools; circles of
//! 50-300 m radius and, for one zone in ten, a 5-12 vertex polygon of the same size; warning
//! buffers of 200-1500 m; schools and half the workplaces only in force on weekday hours
//! (Europe/London). The 1k, 10k and 100k indexes hold the first 1k, 10k and 100k zones of that
//! stream, so a bigger deployment is the same country, denser.
//!
//! Each size gets 4,096 fixes, cycled so that one iteration judges one fix: 45 % anywhere in
//! the region (sea and moorland included), 45 % where people are (the same population model as
//! the zones), 10 % near one of the indexed zones (inside it, in its buffer or just beyond);
//! accuracy 5-50 m, times spread over one week.
//!
//! # Benchmarks (one iteration = one fix; N = 1000, 10000, 100000)
//! - `per_fix/index/N`: [`MemoryZoneIndex::evaluate`] over the whole mix.
//! - `per_fix/brute_force/N`: [`MemoryZoneIndex::evaluate_brute_force`] over the same mix.
//! - `per_fix/box_scan/N`: a scan that tests each zone's reach box before judging it: what
//!   the cells buy over the cheapest scan, not only over judging every zone.
//! - `per_fix/index_candidates/N`: the lookup alone (cells read, reach boxes cut).
//! - `per_fix/index_anywhere/N`, `per_fix/index_populated/N`, `per_fix/index_near_zone/N`:
//!   the index on one class of fix at a time.
//!
//! # Setup, not timed
//! For each size the setup checks that the index and the brute-force scan give the same
//! assessments on a sample of fixes (panics if not), prints the index's size and the
//! per-fix work to stderr, and times every fix on its own to print the per-fix latency
//! distribution: criterion's figure is the cost per fix averaged over the mix.

use criterion::{BenchmarkId, Criterion, SamplingMode, criterion_group, criterion_main};
use serde_json::Value;
use std::hint::black_box;
use std::time::{Duration, Instant};
use vigil_core::evaluate::assess;
use vigil_core::geodesy::GeoBox;
use vigil_core::index::fix_cells;
use vigil_core::{AlertLevel, Assessment, BreachRules, Fix, MemoryZoneIndex, TagId, Zone};
use vigil_testkit::zone_stream::{
    self, EAST, NORTH, SEED, SOUTH, Site, SplitMix64, WEST, offset, populated_point,
};

/// Index sizes benchmarked.
const SIZES: [usize; 3] = [1_000, 10_000, 100_000];
/// Fixes per size; a power of two so that cycling through them is a mask.
const FIXES: usize = 4_096;
/// Monday 2026-03-02T00:00:00Z, Unix ms: fixes fall in the week that follows.
const WEEK_START_MS: i64 = 1_772_409_600_000;
const WEEK_MS: i64 = 7 * 24 * 3_600_000;

/// Where a fix was drawn from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FixClass {
    Anywhere,
    Populated,
    NearZone,
}

/// Each class of fix: how the setup prints it, and the benchmark that times it alone.
const CLASSES: [(FixClass, &str, &str); 3] = [
    (FixClass::Anywhere, "anywhere", "index_anywhere"),
    (FixClass::Populated, "populated", "index_populated"),
    (FixClass::NearZone, "near a zone", "index_near_zone"),
];

/// `FIXES` fixes for an index of the first `sites.len()` zones.
fn fixes(sites: &[Site], rng: &mut SplitMix64) -> Vec<(Fix, FixClass)> {
    let tag = TagId::new("bench-tag").expect("valid tag id");
    (0..FIXES)
        .map(|seq| {
            let roll = rng.unit();
            let (class, (lat, lon)) = if roll < 0.45 {
                let p = (rng.range(SOUTH, NORTH), rng.range(WEST, EAST));
                (FixClass::Anywhere, p)
            } else if roll < 0.90 {
                (FixClass::Populated, populated_point(rng))
            } else {
                let site = &sites[rng.below(sites.len())];
                let d = rng.range(0.0, site.radius_m + site.buffer_m + 300.0);
                let bearing = rng.range(0.0, std::f64::consts::TAU);
                let p = offset(site.lat, site.lon, d * bearing.cos(), d * bearing.sin());
                (FixClass::NearZone, p)
            };
            let accuracy_m = match rng.unit() {
                r if r < 0.7 => rng.range(5.0, 15.0),
                r if r < 0.95 => rng.range(15.0, 35.0),
                _ => rng.range(35.0, 50.0),
            };
            let fix = Fix {
                tag_id: tag.clone(),
                seq: seq as u64,
                at_ms: WEEK_START_MS + (rng.unit() * WEEK_MS as f64) as i64,
                lat,
                lon,
                accuracy_m: accuracy_m.round(),
                speed_mps: None,
                heading_deg: None,
                battery_pct: Some(80),
            };
            (fix, class)
        })
        .collect()
}

/// A linear scan that tests each zone's reach box (the index's own cut) before judging it.
fn evaluate_box_scan(zones: &[Zone], fix: &Fix, rules: &BreachRules) -> Vec<Assessment> {
    let disc = GeoBox::disc(fix.lat, fix.lon, rules.lookup_radius_m(fix.accuracy_m));
    zones
        .iter()
        .filter(|z| z.reach().intersects(&disc))
        .map(|z| assess(fix, z, true, rules))
        .filter(|a| a.exit > AlertLevel::Clear)
        .collect()
}

/// An assessment list in a comparable order, compared in full (ids, levels, distance).
fn sorted(mut found: Vec<Assessment>) -> Vec<Assessment> {
    found.sort_by(|a, b| a.zone_id.cmp(&b.zone_id));
    found
}

/// Panics unless the index and both scans agree on every `stride`-th fix.
fn check_agreement(
    index: &MemoryZoneIndex,
    zones: &[Zone],
    fixes: &[(Fix, FixClass)],
    stride: usize,
) {
    let rules = BreachRules::default();
    let mut checked = 0;
    let mut hits = 0;
    for (fix, _) in fixes.iter().step_by(stride) {
        let fast = sorted(index.evaluate(fix, &rules));
        let slow = sorted(index.evaluate_brute_force(fix, &rules));
        let context = format!(
            "fix {} at {}, {} with {} zones",
            fix.seq,
            fix.lat,
            fix.lon,
            zones.len()
        );
        assert_eq!(fast, slow, "index and brute force disagree on {context}");
        let boxed = sorted(evaluate_box_scan(zones, fix, &rules));
        assert_eq!(fast, boxed, "index and box scan disagree on {context}");
        checked += 1;
        hits += fast.len();
    }
    eprintln!(
        "  agreement: index == brute force == box scan on {checked} fixes ({hits} assessments above CLEAR)"
    );
}

/// Prints the index's size and the work per fix lookup, by class of fix.
fn print_index_stats(index: &MemoryZoneIndex, fixes: &[(Fix, FixClass)]) {
    let rules = BreachRules::default();
    eprintln!(
        "  index: {} zones, {} cell entries ({:.1} per zone)",
        index.len(),
        index.entries(),
        index.entries() as f64 / index.len() as f64
    );
    for (class, name, _) in CLASSES {
        let of_class: Vec<&Fix> = fixes
            .iter()
            .filter(|(_, c)| *c == class)
            .map(|(f, _)| f)
            .collect();
        let n = of_class.len() as f64;
        let (mut cells, mut candidates, mut hits, mut empty) = (0, 0, 0, 0);
        for fix in &of_class {
            cells += fix_cells(fix, &rules).len();
            let c = index
                .candidates(fix.lat, fix.lon, rules.lookup_radius_m(fix.accuracy_m))
                .len();
            candidates += c;
            empty += usize::from(c == 0);
            hits += index.evaluate(fix, &rules).len();
        }
        eprintln!(
            "  {name:>11} ({:>4} fixes): {:.2} cells read, {:.2} candidate zones, {:.2} above CLEAR; \
             {:.0} % with no candidate",
            of_class.len(),
            cells as f64 / n,
            candidates as f64 / n,
            hits as f64 / n,
            100.0 * empty as f64 / n
        );
    }
}

/// Times each fix on its own (best of a few batches) and prints the latency percentiles, for
/// all fixes and by class of fix.
fn print_latency_distribution(index: &MemoryZoneIndex, fixes: &[(Fix, FixClass)]) {
    const REPEAT: u32 = 16;
    let rules = BreachRules::default();
    let timed: Vec<(f64, FixClass)> = fixes
        .iter()
        .map(|(fix, class)| {
            let best_ns = (0..3)
                .map(|_| {
                    let start = Instant::now();
                    for _ in 0..REPEAT {
                        black_box(index.evaluate(black_box(fix), &rules));
                    }
                    start.elapsed().as_nanos() as f64 / f64::from(REPEAT)
                })
                .fold(f64::INFINITY, f64::min);
            (best_ns, *class)
        })
        .collect();
    let summary = |name: &str, keep: &dyn Fn(FixClass) -> bool| {
        let mut ns: Vec<f64> = timed
            .iter()
            .filter(|(_, c)| keep(*c))
            .map(|(t, _)| *t)
            .collect();
        ns.sort_by(f64::total_cmp);
        let at = |q: f64| ns[((ns.len() - 1) as f64 * q).round() as usize];
        eprintln!(
            "  {name:>11}: p50 {:>6.0} ns, p90 {:>6.0} ns, p99 {:>6.0} ns, mean {:>6.0} ns",
            at(0.5),
            at(0.9),
            at(0.99),
            ns.iter().sum::<f64>() / ns.len() as f64
        );
    };
    eprintln!("  index latency per fix, each fix timed alone:");
    summary("all fixes", &|_| true);
    for (class, name, _) in CLASSES {
        summary(name, &|c| c == class);
    }
}

fn per_fix(c: &mut Criterion) {
    let rules = BreachRules::default();
    let largest = SIZES[SIZES.len() - 1];
    let (specs, sites): (Vec<Value>, Vec<Site>) = zone_stream::zones().take(largest).unzip();
    let zones: Vec<Zone> = specs
        .into_iter()
        .map(|v| serde_json::from_value(v).expect("generated zones are valid"))
        .collect();

    let mut group = c.benchmark_group("per_fix");
    for size in SIZES {
        let mut index = MemoryZoneIndex::new();
        for zone in &zones[..size] {
            index.insert(zone.clone());
        }
        let fixes = fixes(&sites[..size], &mut SplitMix64(SEED ^ size as u64));
        eprintln!("zone_lookup: {size} zones, {FIXES} fixes");
        check_agreement(&index, &zones[..size], &fixes, (size / 64).clamp(1, 32));
        print_index_stats(&index, &fixes);
        print_latency_distribution(&index, &fixes);

        // Each class on its own, cut to a power of two so that cycling is a mask as well.
        let by_class: Vec<(&str, Vec<Fix>)> = CLASSES
            .iter()
            .map(|&(class, _, bench)| {
                let mut of_class: Vec<Fix> = fixes
                    .iter()
                    .filter(|(_, c)| *c == class)
                    .map(|(f, _)| f.clone())
                    .collect();
                of_class.truncate(1 << of_class.len().ilog2());
                (bench, of_class)
            })
            .collect();
        let fixes: Vec<Fix> = fixes.into_iter().map(|(f, _)| f).collect();
        group
            .sampling_mode(SamplingMode::Auto)
            .sample_size(100)
            .warm_up_time(Duration::from_secs(2))
            .measurement_time(Duration::from_secs(5));
        group.bench_with_input(BenchmarkId::new("index", size), &fixes, |b, fixes| {
            let mut next = 0;
            b.iter(|| {
                let fix = &fixes[next & (fixes.len() - 1)];
                next += 1;
                index.evaluate(black_box(fix), &rules)
            });
        });
        // The lookup alone (cells read, reach boxes cut), without judging the candidates.
        group.bench_with_input(
            BenchmarkId::new("index_candidates", size),
            &fixes,
            |b, fixes| {
                let mut next = 0;
                b.iter(|| {
                    let fix = black_box(&fixes[next & (fixes.len() - 1)]);
                    next += 1;
                    let radius_m = rules.lookup_radius_m(fix.accuracy_m);
                    index.candidates(fix.lat, fix.lon, radius_m).len()
                });
            },
        );
        group
            .sample_size(50)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        for (bench, of_class) in &by_class {
            group.bench_with_input(BenchmarkId::new(*bench, size), of_class, |b, fixes| {
                let mut next = 0;
                b.iter(|| {
                    let fix = &fixes[next & (fixes.len() - 1)];
                    next += 1;
                    index.evaluate(black_box(fix), &rules)
                });
            });
        }

        // A scan of 100k zones takes milliseconds: few, equal samples keep the run short.
        group
            .sampling_mode(SamplingMode::Flat)
            .sample_size(if size >= 100_000 { 10 } else { 20 })
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(if size >= 100_000 { 15 } else { 5 }));
        group.bench_with_input(BenchmarkId::new("brute_force", size), &fixes, |b, fixes| {
            let mut next = 0;
            b.iter(|| {
                let fix = &fixes[next & (fixes.len() - 1)];
                next += 1;
                index.evaluate_brute_force(black_box(fix), &rules)
            });
        });
        group
            .sample_size(20)
            .measurement_time(Duration::from_secs(5));
        let scanned = &zones[..size];
        group.bench_with_input(BenchmarkId::new("box_scan", size), &fixes, |b, fixes| {
            let mut next = 0;
            b.iter(|| {
                let fix = &fixes[next & (fixes.len() - 1)];
                next += 1;
                evaluate_box_scan(scanned, black_box(fix), &rules)
            });
        });
    }
    group.finish();
}

criterion_group!(benches, per_fix);
criterion_main!(benches);
