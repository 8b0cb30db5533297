//! Fixtures shared by Vigil's tests, so every test speaks of the same order, victim and zone.
//!
//! # Layout
//! - [`order`]: order `o1` restraining tag `tag-1`, protecting victim `v1` ([`VICTIM_PHONE`],
//!   English).
//! - [`home_zone`]: zone `home` of order `o1`: a 100 m circle at [`HOME`] with a 500 m buffer.
//! - [`fix_north`]: a fix of `tag-1` some metres due north of [`HOME`].
//! - [`zone_stream`]: the benchmarks' and the scale model's zones where people live in Great
//!   Britain, from a fixed seed.

use vigil_core::{Fix, ProtectionOrder, TagId, Zone};

pub mod zone_stream;

/// Centre of the home zone: latitude, longitude.
pub const HOME: (f64, f64) = (51.5, -0.12);
/// The victim's phone number (a UK drama number, never a real person's).
pub const VICTIM_PHONE: &str = "+447700900123";
/// Metres per degree of latitude at 51.5°N (WGS84), for placing fixes.
const M_PER_DEG_LAT: f64 = 111_250.0;

/// Order `o1`: tag `tag-1`, victim `v1` at [`VICTIM_PHONE`], English, default policy.
pub fn order() -> ProtectionOrder {
    serde_json::from_value(serde_json::json!({
        "order_id": "o1", "tag_id": "tag-1",
        "victim": {"victim_id": "v1", "phone": VICTIM_PHONE, "language": "en"}
    }))
    .expect("a valid order")
}

/// Zone `home` of order `o1`: a 100 m circle at [`HOME`], 500 m warning buffer.
pub fn home_zone() -> Zone {
    serde_json::from_value(serde_json::json!({
        "zone_id": "home", "kind": "home", "circle": {"lat": HOME.0, "lon": HOME.1, "radius_m": 100},
        "buffer_m": 500, "order_id": "o1"
    }))
    .expect("a valid zone")
}

/// A fix of `tag-1`, `north_m` metres due north of [`HOME`]'s centre (negative: south), at
/// `at_ms`, with 10 m accuracy.
pub fn fix_north(seq: u64, at_ms: i64, north_m: f64) -> Fix {
    Fix {
        tag_id: TagId::new("tag-1").expect("valid tag id"),
        seq,
        at_ms,
        lat: HOME.0 + north_m / M_PER_DEG_LAT,
        lon: HOME.1,
        accuracy_m: 10.0,
        speed_mps: None,
        heading_deg: None,
        battery_pct: None,
    }
}

/// The forces the deployment ships with (`infra/forces.json`: `met`, the default, and `tvp`).
pub fn forces() -> vigil_core::forces::Forces {
    vigil_core::forces::Forces::parse(include_str!("../../../infra/forces.json"))
        .expect("infra/forces.json is valid")
}

/// A force of [`forces`] by id.
pub fn force(id: &str) -> vigil_core::ForceId {
    vigil_core::ForceId::new(id).expect("a force id")
}

/// Log output kept in memory, for tests that read back what was logged: a `tracing_subscriber`
/// writer (`.with_writer(move || logs.clone())`); clones share one buffer.
#[derive(Clone, Default)]
pub struct CapturedLogs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("log buffer").clone()).expect("logs are UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixes_land_where_they_say() {
        let zone = home_zone();
        let d = zone.distance_to_edge_m(fix_north(1, 0, 400.0).lat, HOME.1, f64::INFINITY);
        assert!((d - 300.0).abs() < 2.0, "{d}");
        assert_eq!(order().tag_id, fix_north(1, 0, 0.0).tag_id);
        assert_eq!(zone.order_id(), &order().order_id);
    }
}
