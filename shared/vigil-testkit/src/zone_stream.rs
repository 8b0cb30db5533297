//! The zone stream of the benchmarks and the scale model: zones placed where people live in
//! Great Britain, generated from a fixed seed so that every run measures the same zones.
//!
//! 70 % of the zones are within a few kilometres of one of 26 towns and cities, picked in
//! proportion to population, and 30 % in the countryside around them (tens of kilometres).
//! Homes, workplaces and schools; circles of 50-300 m radius and, for one zone in ten, a 5-12
//! vertex polygon of the same size; warning buffers of 200-1500 m; schools and half the
//! workplaces only in force on weekday hours (Europe/London). Zone `i` belongs to order
//! `i / 2`. The first `n` zones of the stream are a deployment of `n` zones, so a bigger
//! deployment is the same country, denser. Read by `vigil-core`'s `zone_lookup` benchmark and
//! by `vigil-aws`'s cell item measurement (`tests/cell_items.rs`); docs/PERFORMANCE.md.

use serde_json::{Value, json};

/// Seed of every random choice, so each run measures the same workload.
pub const SEED: u64 = 0x5EED_F1C3;

/// The region's southern edge: Great Britain's bounding box, latitude in degrees.
pub const SOUTH: f64 = 50.0;
/// The region's northern edge.
pub const NORTH: f64 = 58.5;
/// The region's western edge, longitude in degrees.
pub const WEST: f64 = -5.5;
/// The region's eastern edge.
pub const EAST: f64 = 1.8;
const M_PER_DEG_LAT: f64 = 111_320.0;

/// Towns and cities: latitude, longitude, urban-area population in millions (approximate).
pub const TOWNS: [(f64, f64, f64); 26] = [
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
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform in 0..n.
    pub fn below(&mut self, n: usize) -> usize {
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
pub fn offset(lat: f64, lon: f64, north_m: f64, east_m: f64) -> (f64, f64) {
    (
        lat + north_m / M_PER_DEG_LAT,
        lon + east_m / (M_PER_DEG_LAT * lat.to_radians().cos()),
    )
}

fn in_region(lat: f64, lon: f64) -> bool {
    (SOUTH..=NORTH).contains(&lat) && (WEST..=EAST).contains(&lon)
}

/// A point where people are: near a town picked by population, or in the country around it.
pub fn populated_point(rng: &mut SplitMix64) -> (f64, f64) {
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
pub struct Site {
    /// Latitude of the zone's centre.
    pub lat: f64,
    /// Longitude of the zone's centre.
    pub lon: f64,
    /// The zone's radius (a polygon's largest).
    pub radius_m: f64,
    /// The zone's warning buffer.
    pub buffer_m: f64,
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

/// The stream from its first zone: each zone's JSON (as operators would send it) and where it
/// is. Endless: take as many as the deployment holds.
pub fn zones() -> impl Iterator<Item = (Value, Site)> {
    let mut rng = SplitMix64(SEED);
    (0..).map(move |i| zone_json(i, &mut rng))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_is_valid_zones_and_the_same_every_time() {
        let first: Vec<Value> = zones().take(200).map(|(z, _)| z).collect();
        let again: Vec<Value> = zones().take(200).map(|(z, _)| z).collect();
        assert_eq!(first, again);
        for z in first {
            let zone: vigil_core::Zone = serde_json::from_value(z).expect("a valid zone");
            let reach = zone.reach();
            assert!(reach.south > SOUTH - 0.1 && reach.north < NORTH + 0.1);
        }
    }
}
