//! An in-memory zone index: the same cell scheme as the DynamoDB table, for unit tests,
//! benchmarks and the demo.

use crate::cells::{Cell, cover_box, cover_disc};
use crate::evaluate::{AlertLevel, Assessment, BreachRules, assess};
use crate::fix::Fix;
use crate::geodesy::GeoBox;
use crate::ids::ZoneKey;
use crate::zone::Zone;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// The cells a zone is stored under: every cell its shape plus warning buffer can reach.
pub fn zone_cells(zone: &Zone) -> Vec<Cell> {
    let mut out = Vec::new();
    cover_box(zone.reach(), &mut out);
    out
}

/// The cells a fix must read: every cell its lookup disc (accuracy plus exit margin) touches.
pub fn fix_cells(fix: &Fix, rules: &BreachRules) -> Vec<Cell> {
    let mut out = Vec::with_capacity(4);
    cover_disc(
        fix.lat,
        fix.lon,
        rules.lookup_radius_m(fix.accuracy_m),
        &mut out,
    );
    out
}

/// Cells are already well-mixed bits; a multiplicative hash is enough and much cheaper than
/// SipHash on the hot path.
#[derive(Default)]
struct CellHasher(u64);

impl Hasher for CellHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = (self.0 ^ u64::from(n)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Zones indexed by cell, in memory.
#[derive(Default)]
pub struct MemoryZoneIndex {
    zones: Vec<Option<Zone>>,
    // Each slot's reach box, kept beside the zones rather than read from them: the per-fix cut
    // reads this dense array (40 bytes a zone) instead of a cache line of every listed zone.
    reach: Vec<GeoBox>,
    by_id: HashMap<ZoneKey, u32>,
    cells: HashMap<Cell, Vec<u32>, BuildHasherDefault<CellHasher>>,
}

impl MemoryZoneIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a zone, replacing any zone with the same key (and its cell entries).
    pub fn insert(&mut self, zone: Zone) {
        let key = zone.key();
        self.remove(&key);
        let slot = self.zones.len() as u32;
        for cell in zone_cells(&zone) {
            self.cells.entry(cell).or_default().push(slot);
        }
        self.by_id.insert(key, slot);
        self.reach.push(*zone.reach());
        self.zones.push(Some(zone));
    }

    /// Removes a zone and every cell entry of it; returns it if it was there.
    pub fn remove(&mut self, key: &ZoneKey) -> Option<Zone> {
        let slot = self.by_id.remove(key)?;
        let zone = self.zones[slot as usize].take()?;
        for cell in zone_cells(&zone) {
            if let Some(list) = self.cells.get_mut(&cell) {
                list.retain(|&s| s != slot);
                if list.is_empty() {
                    self.cells.remove(&cell);
                }
            }
        }
        Some(zone)
    }

    /// Number of zones held.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether the index holds no zone.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Number of (cell, zone) entries: what the DynamoDB table would hold.
    pub fn entries(&self) -> usize {
        self.cells.values().map(Vec::len).sum()
    }

    /// A zone by key.
    pub fn get(&self, key: &ZoneKey) -> Option<&Zone> {
        self.by_id
            .get(key)
            .and_then(|&s| self.zones[s as usize].as_ref())
    }

    /// The zones that may be within `radius_m` metres of (lat, lon) or of their buffer: read
    /// from the cells the disc touches, each once, then cut by the zones' reach boxes.
    pub fn candidates(&self, lat: f64, lon: f64, radius_m: f64) -> Vec<&Zone> {
        let mut out = Vec::new();
        self.for_each_candidate(lat, lon, radius_m, |z| out.push(z));
        out
    }

    /// Calls `visit` with each zone [`MemoryZoneIndex::candidates`] returns, in the same order,
    /// without collecting them: the per-fix path allocates only for what it keeps.
    fn for_each_candidate<'a>(
        &'a self,
        lat: f64,
        lon: f64,
        radius_m: f64,
        mut visit: impl FnMut(&'a Zone),
    ) {
        let disc = GeoBox::disc(lat, lon, radius_m);
        let mut cells = Vec::with_capacity(4);
        cover_box(&disc, &mut cells);
        let mut take = |slot: u32| {
            if self.reach[slot as usize].intersects(&disc)
                && let Some(zone) = self.zones[slot as usize].as_ref()
            {
                visit(zone);
            }
        };
        if let [cell] = cells[..] {
            // One cell (the usual case): its list is already in slot order, without repeats.
            for &slot in self.cells.get(&cell).into_iter().flatten() {
                take(slot);
            }
            return;
        }
        let mut slots: Vec<u32> = Vec::new();
        for cell in &cells {
            if let Some(list) = self.cells.get(cell) {
                slots.extend_from_slice(list);
            }
        }
        slots.sort_unstable();
        slots.dedup();
        for slot in slots {
            take(slot);
        }
    }

    /// Judges a fix against every candidate zone and returns the assessments that are not
    /// CLEAR on exit (the ones that can open or hold an alert). Every zone is treated as in
    /// force for an order in force; schedules and validity still apply.
    pub fn evaluate(&self, fix: &Fix, rules: &BreachRules) -> Vec<Assessment> {
        let mut found = Vec::new();
        let radius_m = rules.lookup_radius_m(fix.accuracy_m);
        self.for_each_candidate(fix.lat, fix.lon, radius_m, |zone| {
            // A zone out of force is CLEAR whatever the distance: skip measuring it.
            if !zone.in_force(fix.at_ms) {
                return;
            }
            let assessment = assess(fix, zone, true, rules);
            if assessment.exit > AlertLevel::Clear {
                found.push(assessment);
            }
        });
        found
    }

    /// The same answer as [`MemoryZoneIndex::evaluate`] by judging the fix against every zone:
    /// the reference the index is tested and benchmarked against.
    pub fn evaluate_brute_force(&self, fix: &Fix, rules: &BreachRules) -> Vec<Assessment> {
        self.zones
            .iter()
            .flatten()
            .map(|z| assess(fix, z, true, rules))
            .filter(|a| a.exit > AlertLevel::Clear)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{OrderId, TagId, ZoneId};
    use serde_json::json;

    fn key(zone: &str) -> ZoneKey {
        ZoneKey::new(OrderId::new("o").unwrap(), ZoneId::new(zone).unwrap())
    }

    fn circle(id: &str, lat: f64, lon: f64, radius_m: f64, buffer_m: f64) -> Zone {
        serde_json::from_value(json!({"zone_id":id,"circle":{"lat":lat,"lon":lon,"radius_m":radius_m},"buffer_m":buffer_m,"order_id":"o"})).unwrap()
    }

    fn fix(lat: f64, lon: f64, accuracy_m: f64) -> Fix {
        Fix {
            tag_id: TagId::new("t").unwrap(),
            seq: 1,
            at_ms: 0,
            lat,
            lon,
            accuracy_m,
            speed_mps: None,
            heading_deg: None,
            battery_pct: None,
        }
    }

    fn ids(a: &[Assessment]) -> Vec<String> {
        let mut v: Vec<_> = a.iter().map(|a| a.zone_id.to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn finds_zones_near_and_not_far() {
        let mut idx = MemoryZoneIndex::new();
        idx.insert(circle("home", 51.5, -0.12, 100.0, 500.0));
        idx.insert(circle("far", 52.5, -0.12, 100.0, 500.0));
        let rules = BreachRules::default();
        assert_eq!(
            ids(&idx.evaluate(&fix(51.5, -0.12, 10.0), &rules)),
            vec!["home"]
        );
        assert_eq!(
            ids(&idx.evaluate(&fix(51.505, -0.12, 10.0), &rules)),
            vec!["home"]
        ); // ~556 m: exit WARNING
        assert!(idx.evaluate(&fix(51.52, -0.12, 10.0), &rules).is_empty());
    }

    #[test]
    fn remove_leaves_no_cell_entries() {
        let mut idx = MemoryZoneIndex::new();
        idx.insert(circle("a", 51.5, -0.12, 100.0, 500.0));
        idx.insert(circle("b", 51.5, -0.12, 200.0, 800.0));
        let both = idx.entries();
        assert!(idx.remove(&key("b")).is_some());
        assert!(idx.entries() < both);
        assert!(idx.remove(&key("a")).is_some());
        assert_eq!((idx.entries(), idx.len()), (0, 0));
        assert!(idx.remove(&key("a")).is_none());
    }

    #[test]
    fn same_zone_id_in_two_orders_is_two_zones() {
        let mut idx = MemoryZoneIndex::new();
        let mut other: serde_json::Value =
            serde_json::to_value(circle("home", 51.5, -0.12, 100.0, 500.0)).unwrap();
        other["order_id"] = json!("o2");
        idx.insert(circle("home", 51.5, -0.12, 100.0, 500.0));
        idx.insert(serde_json::from_value(other).unwrap());
        assert_eq!(idx.len(), 2);
        assert_eq!(
            idx.evaluate(&fix(51.5, -0.12, 10.0), &BreachRules::default())
                .len(),
            2
        );
    }

    #[test]
    fn insert_replaces_by_key() {
        let mut idx = MemoryZoneIndex::new();
        idx.insert(circle("a", 51.5, -0.12, 100.0, 500.0));
        idx.insert(circle("a", 40.0, -3.7, 100.0, 500.0));
        assert_eq!(idx.len(), 1);
        assert!(
            idx.evaluate(&fix(51.5, -0.12, 10.0), &BreachRules::default())
                .is_empty()
        );
        assert_eq!(
            idx.evaluate(&fix(40.0, -3.7, 10.0), &BreachRules::default())
                .len(),
            1
        );
    }

    #[test]
    fn antimeridian_and_pole() {
        let mut idx = MemoryZoneIndex::new();
        idx.insert(circle("dateline", -16.5, 179.999, 300.0, 500.0));
        idx.insert(circle("pole", 89.99, 45.0, 2000.0, 1000.0));
        let rules = BreachRules::default();
        assert_eq!(
            ids(&idx.evaluate(&fix(-16.5, -179.999, 10.0), &rules)),
            vec!["dateline"]
        );
        assert_eq!(
            ids(&idx.evaluate(&fix(89.995, -135.0, 10.0), &rules)),
            vec!["pole"]
        );
    }
}
