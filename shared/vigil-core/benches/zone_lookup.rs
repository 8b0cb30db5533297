//! Per-fix zone lookup: the geohash index against a brute-force scan of the same zones.
//!
//! Run with `cargo bench -p vigil-core --bench zone_lookup`; the results and how to read them
//! are in `docs/PERFORMANCE.md`.
//!
//! # Workload
//! One deterministic stream of 100,000 zones (a fixed-seed splitmix64, no `rand`) placed where
//! people live in Great Britain: 70 % within a few kilometres of one of 26 towns and cities,
//! picked in proportion to population, and 30 % in the countryside around them (tens of
//! kilometres). Homes, workplaces and schools; circles of 50-300 m radius and, for one zone in
//! ten, a 5-12 vertex polygon of the same size; warning buffers of 200-1500 m; schools and half
//! the workplaces only in force on weekday hours (Europe/London). The 1k, 10k and 100k indexes
//! hold the first 1k, 10k and 100k zones of that stream, so a bigger deployment is the same
//! country, denser.
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
use serde_json::{Value, json};
use std::hint::black_box;
use std::time::{Duration, Instant};
use vigil_core::evaluate::assess;
use vigil_core::geodesy::GeoBox;
use vigil_core::index::fix_cells;
use vigil_core::{AlertLevel, Assessment, BreachRules, Fix, MemoryZoneIndex, TagId, Zone};

/// Index sizes benchmarked.
const SIZES: [usize; 3] = [1_000, 10_000, 100_000];
/// Fixes per size; a power of two so that cycling through them is a mask.
const FIXES: usize = 4_096;
/// Seed of every random choice, so each run measures the same workload.
const SEED: u64 = 0x5EED_F1C3;
/// Monday 2026-03-02T00:00:00Z, Unix ms: fixes fall in the week that follows.
const WEEK_START_MS: i64 = 1_772_409_600_000;
const WEEK_MS: i64 = 7 * 24 * 3_600_000;

/// The region: Great Britain's bounding box (latitude, longitude in degrees).
const SOUTH: f64 = 50.0;
const NORTH: f64 = 58.5;
const WEST: f64 = -5.5;
const EAST: f64 = 1.8;
const M_PER_DEG_LAT: f64 = 111_320.0;

/// Towns and cities: latitude, longitude, urban-area population in millions (approximate).
const TOWNS: [(f64, f64, f64); 26] = [
    (51.507, -0.128, 9.0),  // London
    (52.486, -1.890, 2.9),  // Birmingham
    (53.480, -2.242, 2.8),  // Manchester
    (53.800, -1.549, 1.9),  // Leeds and Bradford
    (55.864, -4.252, 1.7),  // Glasgow
    (53.408, -2.992, 1.4),  // Liverpool
    (54.978, -1.618, 1.1),  // Newcastle
    (53.381, -1.470, 1.0),  // Sheffield
    (50.910, -1.404, 0.9),  // Southampton and Portsmouth
    (52.954, -1.158, 0.8),  // Nottingham
    (51.455, -2.588, 0.7),  // Bristol
    (51.482, -3.179, 0.6),  // Cardiff
    (55.953, -3.188, 0.55), // Edinburgh
    (52.637, -1.135, 0.55), // Leicester
    (50.823, -0.138, 0.5),  // Brighton
    (53.003, -2.180, 0.37), // Stoke-on-Trent
    (53.768, -0.333, 0.3),  // Hull
    (51.621, -3.944, 0.3),  // Swansea
    (50.376, -4.143, 0.26), // Plymouth
    (57.150, -2.094, 0.23), // Aberdeen
    (52.630, 1.297, 0.2),   // Norwich
    (56.462, -2.971, 0.15), // Dundee
    (52.205, 0.122, 0.15),  // Cambridge
    (51.752, -1.258, 0.15), // Oxford
    (50.718, -3.534, 0.13), // Exeter
    (57.478, -4.225, 0.06), // Inverness
];

/// splitmix64: tiny, fast, and good enough to spread a workload; fixed seed, so reproducible.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform in 0..n.
    fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize
    }

    /// Two independent standard normal deviates (Box-Muller).
    fn normal_pair(&mut self) -> (f64, f64) {
        let r = (-2.0 * (1.0 - self.unit()).ln()).sqrt();
        let theta = std::f64::consts::TAU * self.unit();
        (r * theta.cos(), r * theta.sin())
    }
}

/// The point `north_m`, `east_m` metres from (lat, lon); a flat approximation, fine at zone scale.
fn offset(lat: f64, lon: f64, north_m: f64, east_m: f64) -> (f64, f64) {
    (
        lat + north_m / M_PER_DEG_LAT,
        lon + east_m / (M_PER_DEG_LAT * lat.to_radians().cos()),
    )
}

fn in_region(lat: f64, lon: f64) -> bool {
    (SOUTH..=NORTH).contains(&lat) && (WEST..=EAST).contains(&lon)
}

/// A point where people are: near a town picked by population, or in the country around it.
fn populated_point(rng: &mut SplitMix64) -> (f64, f64) {
    let total: f64 = TOWNS.iter().map(|t| t.2).sum();
    loop {
        let mut pick = rng.range(0.0, total);
        let &(lat, lon, pop_m) = TOWNS
            .iter()
            .find(|t| {
                pick -= t.2;
                pick < 0.0
            })
            .unwrap_or(&TOWNS[0]);
        let sigma_m = if rng.unit() < 0.7 {
            2_500.0 + 3_500.0 * pop_m.sqrt()
        } else {
            30_000.0
        };
        let (n, e) = rng.normal_pair();
        let (lat, lon) = offset(lat, lon, n * sigma_m, e * sigma_m);
        if in_region(lat, lon) {
            return (lat, lon);
        }
    }
}

/// Where a generated zone is, for placing fixes near it.
struct Site {
    lat: f64,
    lon: f64,
    radius_m: f64,
    buffer_m: f64,
}

/// Zone number `i` of the stream, as the JSON operators would send.
fn zone_json(i: usize, rng: &mut SplitMix64) -> (Value, Site) {
    let (lat, lon) = populated_point(rng);
    let roll = rng.unit();
    let kind = if roll < 0.55 {
        "home"
    } else if roll < 0.85 {
        "work"
    } else {
        "school"
    };
    let radius_m = rng.range(50.0, 300.0);
    let buffer_m = rng.range(200.0, 1_500.0).round();
    let mut zone = json!({
        "zone_id": format!("zone-{i:06}"),
        "kind": kind,
        "buffer_m": buffer_m,
        "order_id": format!("order-{:06}", i / 2),
    });
    if rng.unit() < 0.1 {
        // A star-shaped ring (angles increasing, so it is simple) of about the same size.
        let n = 5 + rng.below(8);
        let ring: Vec<[f64; 2]> = (0..n)
            .map(|k| {
                let angle = std::f64::consts::TAU * (k as f64 + rng.range(0.1, 0.9)) / n as f64;
                let r = radius_m * rng.range(0.6, 1.0);
                let (plat, plon) = offset(lat, lon, r * angle.cos(), r * angle.sin());
                [plon, plat]
            })
            .collect();
        zone["polygon"] = json!(ring);
    } else {
        zone["circle"] = json!({"lat": lat, "lon": lon, "radius_m": radius_m});
    }
    let hours = match kind {
        "school" => Some(("07:30", "17:00")),
        "work" if rng.unit() < 0.5 => Some(("07:00", "19:00")),
        _ => None,
    };
    if let Some((start, end)) = hours {
        zone["schedule"] = json!({"time_zone": "Europe/London", "windows": [
            {"days": ["mon", "tue", "wed", "thu", "fri"], "start": start, "end": end}]});
    }
    let site = Site {
        lat,
        lon,
        radius_m,
        buffer_m,
    };
    (zone, site)
}

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
    let mut rng = SplitMix64(SEED);
    let largest = SIZES[SIZES.len() - 1];
    let (specs, sites): (Vec<Value>, Vec<Site>) =
        (0..largest).map(|i| zone_json(i, &mut rng)).unzip();
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
