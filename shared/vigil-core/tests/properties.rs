//! Property tests of the domain core.
//!
//! - The cell cover never misses: every point within a zone's buffer lies in one of the zone's
//!   cells, every point of a fix's lookup disc lies in one of the fix's cells, and the index
//!   finds exactly what a brute-force scan over all zones finds, worldwide, including across
//!   the antimeridian and above 80°.
//! - The state machine does not flap under bounded jitter, a fix inside a zone always yields
//!   BREACH, duplicates change nothing wherever they arrive, and late fixes never lower a level.

use geo::{Destination, Geodesic, Point};
use proptest::prelude::*;
use serde_json::json;
use vigil_core::cells::{Cell, cover_disc};
use vigil_core::evaluate::{AlertLevel, Assessment, BreachRules, assess};
use vigil_core::geodesy::wrap_lon;
use vigil_core::index::{MemoryZoneIndex, zone_cells};
use vigil_core::state::{Observation, StepRules, ZoneState, step};
use vigil_core::{Fix, TagId, Zone, ZoneId};

/// A point `distance_m` from (lat, lon) on `bearing_deg`, longitude wrapped.
fn destination(lat: f64, lon: f64, bearing_deg: f64, distance_m: f64) -> (f64, f64) {
    let p = Geodesic.destination(Point::new(lon, lat), bearing_deg, distance_m);
    (p.y(), wrap_lon(p.x()))
}

fn circle(id: &str, lat: f64, lon: f64, radius_m: f64, buffer_m: f64) -> Zone {
    serde_json::from_value(
        json!({"zone_id": id, "circle": {"lat": lat, "lon": lon, "radius_m": radius_m},
        "buffer_m": buffer_m, "order_id": "o"}),
    )
    .unwrap()
}

/// A star-shaped polygon around a centre: vertices at increasing bearings and random radii.
fn star_polygon(id: &str, lat: f64, lon: f64, radii_m: &[f64], buffer_m: f64) -> Zone {
    let n = radii_m.len();
    let ring: Vec<[f64; 2]> = radii_m
        .iter()
        .enumerate()
        .map(|(i, &r)| {
            let (la, lo) = destination(lat, lon, 360.0 * i as f64 / n as f64, r);
            [lo, la]
        })
        .collect();
    serde_json::from_value(
        json!({"zone_id": id, "polygon": ring, "buffer_m": buffer_m, "order_id": "o"}),
    )
    .unwrap()
}

fn fix(seq: u64, at_ms: i64, lat: f64, lon: f64, accuracy_m: f64) -> Fix {
    Fix {
        tag_id: TagId::new("t").unwrap(),
        seq,
        at_ms,
        lat,
        lon,
        accuracy_m,
        speed_mps: None,
        heading_deg: None,
        battery_pct: None,
    }
}

/// Latitudes weighted towards the hard places: anywhere, above 80°, and right at the caps.
fn any_lat() -> impl Strategy<Value = f64> {
    prop_oneof![
        -89.99..89.99f64,
        80.0..89.99f64,
        -89.99..-80.0f64,
        84.9..85.1f64,
        -0.01..0.01f64,
    ]
}

/// Longitudes weighted towards the antimeridian and the prime meridian.
fn any_lon() -> impl Strategy<Value = f64> {
    prop_oneof![
        -180.0..180.0f64,
        179.9..180.0f64,
        -180.0..-179.9f64,
        -0.01..0.01f64,
    ]
}

fn key(a: &Assessment) -> (String, AlertLevel, AlertLevel) {
    (a.zone_id.to_string(), a.entry, a.exit)
}

fn sorted(mut v: Vec<(String, AlertLevel, AlertLevel)>) -> Vec<(String, AlertLevel, AlertLevel)> {
    v.sort();
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Every point within a circle zone's buffer lies in one of the zone's cells.
    #[test]
    fn circle_cover_holds_every_point_within_the_buffer(
        lat in any_lat(), lon in any_lon(),
        radius_m in 0.0..5_000.0f64, buffer_m in 0.0..3_000.0f64,
        bearing in 0.0..360.0f64, frac in 0.0..=1.0f64,
    ) {
        let zone = circle("z", lat, lon, radius_m, buffer_m);
        let (plat, plon) = destination(lat, lon, bearing, frac * (radius_m + buffer_m));
        let cells = zone_cells(&zone);
        prop_assert!(cells.contains(&Cell::of_point(plat, plon)),
            "point ({plat}, {plon}) at {} m not covered; {} cells", frac * (radius_m + buffer_m), cells.len());
    }

    /// Every point of a fix's lookup disc lies in one of the fix's cells.
    #[test]
    fn disc_cover_holds_every_point_of_the_disc(
        lat in any_lat(), lon in any_lon(),
        radius_m in 0.0..400.0f64, bearing in 0.0..360.0f64, frac in 0.0..=1.0f64,
    ) {
        let mut cells = Vec::new();
        cover_disc(lat, lon, radius_m, &mut cells);
        let (plat, plon) = destination(lat, lon, bearing, frac * radius_m);
        prop_assert!(cells.contains(&Cell::of_point(plat, plon)));
        prop_assert!(cells.len() <= 2_000, "{} cells for a {radius_m} m disc at {lat}", cells.len());
    }

    /// The index finds exactly the zones a brute-force scan finds, with the same levels:
    /// clustered circles and polygons around a random place, fixes around the same place.
    #[test]
    fn index_agrees_with_brute_force(
        lat in any_lat(), lon in any_lon(),
        circles in prop::collection::vec((0.0..360.0f64, 0.0..4_000.0f64, 10.0..1_500.0f64, 0.0..1_500.0f64), 1..20),
        polygons in prop::collection::vec((0.0..360.0f64, 0.0..4_000.0f64, prop::collection::vec(30.0..1_200.0f64, 3..10), 0.0..1_000.0f64), 0..6),
        fixes in prop::collection::vec((0.0..360.0f64, 0.0..6_000.0f64, 0.0..250.0f64), 1..30),
    ) {
        let mut index = MemoryZoneIndex::new();
        for (i, &(b, d, r, buf)) in circles.iter().enumerate() {
            let (zlat, zlon) = destination(lat, lon, b, d);
            index.insert(circle(&format!("c{i}"), zlat, zlon, r, buf));
        }
        // Polygons must stay within ±85°; keep their centres well inside that.
        if lat.abs() < 84.0 {
            for (i, (b, d, radii, buf)) in polygons.iter().enumerate() {
                let (zlat, zlon) = destination(lat, lon, *b, *d);
                index.insert(star_polygon(&format!("p{i}"), zlat, zlon, radii, *buf));
            }
        }
        let rules = BreachRules::default();
        for (i, &(b, d, acc)) in fixes.iter().enumerate() {
            let (flat, flon) = destination(lat, lon, b, d);
            let f = fix(i as u64, 0, flat, flon, acc);
            let found = sorted(index.evaluate(&f, &rules).iter().map(key).collect());
            let truth = sorted(index.evaluate_brute_force(&f, &rules).iter().map(key).collect());
            prop_assert_eq!(found, truth, "fix ({}, {}) ±{}", flat, flon, acc);
        }
    }

    /// Deciding from the haversine estimate away from thresholds gives exactly the levels the
    /// geodesic distance gives: fixes placed at each threshold, a few metres either side.
    #[test]
    fn the_haversine_shortcut_never_changes_a_level(
        lat in any_lat(), lon in any_lon(),
        radius_m in 0.0..3_000.0f64, buffer_m in 0.0..2_000.0f64, acc in 0.0..250.0f64,
        which in 0usize..5, offset_m in -20.0..20.0f64, bearing in 0.0..360.0f64,
    ) {
        let rules = BreachRules::default();
        let zone = circle("z", lat, lon, radius_m, buffer_m);
        let thresholds = [0.0, acc, buffer_m, acc + rules.exit_margin_m, buffer_m + acc + rules.exit_margin_m];
        let out = (radius_m + thresholds[which] + offset_m).max(0.0);
        let (flat, flon) = destination(lat, lon, bearing, out);
        let f = fix(1, 0, flat, flon, acc);
        let fast = assess(&f, &zone, true, &rules);
        let exact = zone.distance_to_edge_m(flat, flon, f64::INFINITY);
        let (entry, exit) = vigil_core::evaluate::classify(exact, acc, buffer_m, &rules);
        prop_assert_eq!((fast.entry, fast.exit), (entry, exit), "estimate {} exact {}", fast.distance_m, exact);
        prop_assert!((fast.distance_m - exact).abs() <= 0.006 * (exact + radius_m).abs() + 0.01);
    }

    /// A fix inside a zone (circle or polygon) always leaves the state at BREACH, whatever
    /// came before, as long as it is newer and the zone is in force.
    #[test]
    fn a_fix_inside_always_yields_breach(
        lat in -80.0..80.0f64, lon in any_lon(),
        radii in prop::collection::vec(100.0..1_000.0f64, 3..9),
        use_polygon in any::<bool>(),
        inside_frac in 0.0..0.9f64, bearing in 0.0..360.0f64, acc in 0.0..250.0f64,
        history in prop::collection::vec((0.0..360.0f64, 0.0..3_000.0f64, 0.0..100.0f64), 0..12),
    ) {
        let zone = if use_polygon {
            star_polygon("z", lat, lon, &radii, 500.0)
        } else {
            circle("z", lat, lon, radii[0], 500.0)
        };
        let rules = StepRules::default();
        let mut state = ZoneState::default();
        for (i, &(b, d, a)) in history.iter().enumerate() {
            let (flat, flon) = destination(lat, lon, b, d);
            let f = fix(i as u64, i as i64 * 30_000, flat, flon, a);
            let obs = Observation { at_ms: f.at_ms, seq: f.seq, assessment: assess(&f, &zone, true, &rules.breach) };
            state = step(&state, &obs, &rules).0;
        }
        // Inside a star polygon along a vertex bearing, or inside the circle.
        let (flat, flon) = if use_polygon {
            let k = ((bearing / 360.0) * radii.len() as f64) as usize % radii.len();
            destination(lat, lon, 360.0 * k as f64 / radii.len() as f64, inside_frac * radii[k])
        } else {
            destination(lat, lon, bearing, inside_frac * radii[0])
        };
        let f = fix(1_000, 1_000_000_000, flat, flon, acc);
        let obs = Observation { at_ms: f.at_ms, seq: f.seq, assessment: assess(&f, &zone, true, &rules.breach) };
        prop_assert!(obs.assessment.distance_m <= 0.0, "test point should be inside: {}", obs.assessment.distance_m);
        let (next, _) = step(&state, &obs, &rules);
        prop_assert_eq!(next.level, AlertLevel::Breach);
    }

    /// An offender standing still, reported with jitter up to half the exit margin, never makes
    /// an alert go down: the levels only rise (at most CLEAR -> WARNING -> BREACH).
    #[test]
    fn bounded_jitter_never_flaps(
        true_distance_m in 0.0..900.0f64, true_bearing in 0.0..360.0f64,
        jitter in prop::collection::vec((0.0..360.0f64, 0.0..=1.0f64, 5.0..30.0f64), 10..80),
    ) {
        let rules = StepRules::default();
        let zone = circle("home", 51.5, -0.12, 100.0, 500.0);
        let (tlat, tlon) = destination(51.5, -0.12, true_bearing, 100.0 + true_distance_m);
        let max_jitter_m = rules.breach.exit_margin_m / 2.0;
        let mut state = ZoneState::default();
        let mut transitions = vec![];
        for (i, &(b, frac, acc)) in jitter.iter().enumerate() {
            let (flat, flon) = destination(tlat, tlon, b, frac * max_jitter_m);
            let f = fix(i as u64, i as i64 * 15_000, flat, flon, acc);
            let obs = Observation { at_ms: f.at_ms, seq: f.seq, assessment: assess(&f, &zone, true, &rules.breach) };
            let (next, st) = step(&state, &obs, &rules);
            if let Some(t) = st.transition {
                transitions.push((t.from, t.to));
            }
            state = next;
        }
        prop_assert!(transitions.iter().all(|(from, to)| to > from), "{transitions:?}");
        prop_assert!(transitions.len() <= 2, "{transitions:?}");
    }

    /// Delivering any observation again, anywhere later in the stream, changes neither the
    /// final state nor the transitions; and no late observation ever lowers the level.
    #[test]
    fn duplicates_are_irrelevant_and_late_fixes_never_lower(
        seq in prop::collection::vec((0i64..40, 0u8..3, 0u8..3), 1..40),
        dups in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 0..20),
    ) {
        let rules = StepRules::default();
        let level = |n: u8| [AlertLevel::Clear, AlertLevel::Warning, AlertLevel::Breach][n as usize];
        let base: Vec<Observation> = seq.iter().enumerate().map(|(i, &(t, e, x))| {
            let entry = level(e);
            Observation {
                at_ms: t * 20_000,
                seq: i as u64,
                assessment: Assessment { zone_id: ZoneId::new("z").unwrap(), in_force: true, entry, exit: level(x).max(entry), distance_m: 0.0 },
            }
        }).collect();
        // Insert copies of earlier observations at later positions.
        let mut with_dups: Vec<Observation> = base.clone();
        for (which, at) in &dups {
            let src = which.index(base.len());
            let pos_in_base = at.index(base.len()) .max(src) + 1;
            // Position in with_dups: after the original's position.
            let orig_pos = with_dups.iter().position(|o| o.seq == base[src].seq).unwrap();
            let pos = pos_in_base.max(orig_pos + 1).min(with_dups.len());
            with_dups.insert(pos, base[src].clone());
        }
        let run = |obs: &[Observation]| {
            let mut s = ZoneState::default();
            let mut ts = vec![];
            for o in obs {
                let newer = s.newest.is_none_or(|n| (o.at_ms, o.seq) > n);
                let (next, st) = step(&s, o, &rules);
                if !newer {
                    assert!(next.level >= s.level, "a late observation lowered the level");
                }
                ts.extend(st.transition);
                s = next;
            }
            (s, ts)
        };
        let (s1, t1) = run(&base);
        let (s2, t2) = run(&with_dups);
        prop_assert_eq!(s1, s2);
        prop_assert_eq!(t1, t2);
    }
}
