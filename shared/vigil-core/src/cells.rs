//! The geohash cells of the zone index.
//!
//! # Precision
//! One precision, 6: a cell is 0.0110° of longitude by 0.0055° of latitude, about 1.22 km by
//! 0.61 km at the equator and 0.76 km by 0.61 km in London. A home zone (100-300 m radius) with
//! its warning buffer (500-1000 m) covers 6 to 20 cells, written once when the zone is made. A
//! fix's lookup disc (accuracy up to 50 m plus the 50 m exit margin) touches 1, 2 or 4 cells:
//! one batched read of small items. Precision 5 (4.9 km square) would put a whole district's
//! zones in every item a fix reads; precision 7 (153 m) would write hundreds of cells per zone
//! and read up to nine per fix.
//!
//! # Correctness
//! A zone is stored under every cell that its shape plus warning buffer can reach, and a fix
//! reads every cell that its lookup disc can reach. Both sets come from a [`GeoBox`] that is
//! proved never too small, enumerated over every cell the box overlaps, with longitudes taken
//! modulo 360° (so the antimeridian is just another cell edge). If the zone's reach and the
//! fix's disc share a point, they share that point's cell. Above 85° north or south, longitude
//! cells shrink towards nothing, so everything there lives in one polar cap cell per
//! hemisphere instead; no zone is missed and no cover explodes.

use crate::geodesy::{GeoBox, wrap_lon};
use std::fmt;

/// Geohash precision (characters) of the index.
pub const PRECISION: usize = 6;
/// Latitude beyond which a point belongs to its hemisphere's polar cap cell.
pub const POLAR_CAP_LAT: f64 = 85.0;

const AXIS_BITS: u32 = 15; // 30 bits at precision 6: 15 of longitude, 15 of latitude.
const AXIS_CELLS: u32 = 1 << AXIS_BITS;
const CELL_LON_DEG: f64 = 360.0 / AXIS_CELLS as f64;
const CELL_LAT_DEG: f64 = 180.0 / AXIS_CELLS as f64;
const NORTH_CAP: u32 = 1 << 30;
const SOUTH_CAP: u32 = NORTH_CAP + 1;
const BASE32: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";

/// One cell of the index: a precision-6 geohash, or a polar cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cell(u32);

/// Why a cell key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{key:?} is not a cell key: expected a {PRECISION}-character geohash, \"cap-n\" or \"cap-s\""
)]
pub struct CellKeyError {
    key: String,
}

fn row_of(lat: f64) -> u32 {
    (((lat + 90.0) / CELL_LAT_DEG).floor().max(0.0) as u32).min(AXIS_CELLS - 1)
}

fn col_of(lon: f64) -> u32 {
    (((wrap_lon(lon) + 180.0) / CELL_LON_DEG).floor().max(0.0) as u32).min(AXIS_CELLS - 1)
}

fn interleave(col: u32, row: u32) -> u32 {
    // Geohash bits alternate longitude, latitude, starting with longitude at the top.
    let mut bits = 0u32;
    for i in (0..AXIS_BITS).rev() {
        bits = (bits << 1) | ((col >> i) & 1);
        bits = (bits << 1) | ((row >> i) & 1);
    }
    bits
}

impl Cell {
    /// The northern polar cap cell.
    pub const NORTH_CAP: Cell = Cell(NORTH_CAP);
    /// The southern polar cap cell.
    pub const SOUTH_CAP: Cell = Cell(SOUTH_CAP);

    /// The cell holding a point (latitude, longitude in degrees).
    pub fn of_point(lat: f64, lon: f64) -> Cell {
        if lat >= POLAR_CAP_LAT {
            Cell::NORTH_CAP
        } else if lat <= -POLAR_CAP_LAT {
            Cell::SOUTH_CAP
        } else {
            Cell(interleave(col_of(lon), row_of(lat)))
        }
    }

    /// The key stored in the index: the geohash, or `cap-n` / `cap-s`.
    pub fn key(&self) -> String {
        match self.0 {
            NORTH_CAP => "cap-n".to_owned(),
            SOUTH_CAP => "cap-s".to_owned(),
            bits => (0..PRECISION)
                .rev()
                .map(|i| BASE32[((bits >> (5 * i)) & 31) as usize] as char)
                .collect(),
        }
    }

    /// Reads a key written by [`Cell::key`].
    pub fn from_key(key: &str) -> Result<Cell, CellKeyError> {
        let err = || CellKeyError {
            key: key.to_owned(),
        };
        match key {
            "cap-n" => return Ok(Cell::NORTH_CAP),
            "cap-s" => return Ok(Cell::SOUTH_CAP),
            _ => {}
        }
        if key.len() != PRECISION {
            return Err(err());
        }
        key.bytes()
            .try_fold(0u32, |bits, b| {
                let v = BASE32.iter().position(|&c| c == b).ok_or_else(err)?;
                Ok((bits << 5) | v as u32)
            })
            .map(Cell)
    }

    /// The cell's own bounds, for geohash cells (`None` for a polar cap).
    pub fn bounds(&self) -> Option<geo::Rect<f64>> {
        if self.0 >= NORTH_CAP {
            return None;
        }
        geohash::decode_bbox(&self.key()).ok()
    }
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// Appends to `out` every cell that `area` overlaps (a superset of the cells of its points).
/// The order is row by row; no cell appears twice.
pub fn cover_box(area: &GeoBox, out: &mut Vec<Cell>) {
    if area.north >= POLAR_CAP_LAT {
        out.push(Cell::NORTH_CAP);
    }
    if area.south <= -POLAR_CAP_LAT {
        out.push(Cell::SOUTH_CAP);
    }
    let south = area.south.max(-POLAR_CAP_LAT);
    let north = area.north.min(POLAR_CAP_LAT);
    if south > north {
        return;
    }
    let (first_col, cols) = if area.all_lons || area.width_deg() + CELL_LON_DEG >= 360.0 {
        (0, AXIS_CELLS)
    } else {
        let first = col_of(area.west);
        let last = col_of(area.east);
        (first, (last + AXIS_CELLS - first) % AXIS_CELLS + 1)
    };
    for row in row_of(south)..=row_of(north) {
        for k in 0..cols {
            out.push(Cell(interleave((first_col + k) % AXIS_CELLS, row)));
        }
    }
}

/// The cells a fix must read: those its disc of `radius_m` metres around (lat, lon) touches.
pub fn cover_disc(lat: f64, lon: f64, radius_m: f64, out: &mut Vec<Cell>) {
    cover_box(&GeoBox::disc(lat, lon, radius_m), out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::Coord;

    #[test]
    fn keys_match_the_geohash_crate() {
        for &(lat, lon) in &[
            (51.5074, -0.1278),
            (-33.86, 151.21),
            (0.0, 0.0),
            (84.99, -179.99),
            (-84.9, 179.999),
            (40.0, -74.0),
        ] {
            let expected = geohash::encode(Coord { x: lon, y: lat }, PRECISION).unwrap();
            let cell = Cell::of_point(lat, lon);
            assert_eq!(cell.key(), expected, "{lat},{lon}");
            assert_eq!(Cell::from_key(&expected).unwrap(), cell);
            let rect = cell.bounds().unwrap();
            assert!(
                rect.min().x <= lon
                    && lon <= rect.max().x
                    && rect.min().y <= lat
                    && lat <= rect.max().y
            );
        }
    }

    #[test]
    fn polar_caps() {
        assert_eq!(Cell::of_point(85.0, 10.0), Cell::NORTH_CAP);
        assert_eq!(Cell::of_point(-89.0, 10.0), Cell::SOUTH_CAP);
        assert_eq!(Cell::NORTH_CAP.key(), "cap-n");
        assert_eq!(Cell::from_key("cap-s").unwrap(), Cell::SOUTH_CAP);
        assert!(Cell::NORTH_CAP.bounds().is_none());
        let mut cells = Vec::new();
        cover_disc(84.999, 0.0, 500.0, &mut cells);
        assert!(cells.contains(&Cell::NORTH_CAP));
        assert!(
            cells.contains(&Cell::of_point(84.996, 0.0)),
            "the band just below the cap"
        );
        assert!(cells.len() < 200, "{}", cells.len());
    }

    #[test]
    fn bad_keys() {
        for k in ["", "gcpvj", "gcpvj0a", "gcpvja"] {
            assert!(Cell::from_key(k).is_err(), "{k}");
        }
        assert!(Cell::from_key("gcpvj0").unwrap().to_string() == "gcpvj0");
    }

    #[test]
    fn small_disc_touches_one_to_four_cells() {
        let mut cells = Vec::new();
        cover_disc(51.5074, -0.1278, 20.0, &mut cells);
        assert!((1..=4).contains(&cells.len()), "{cells:?}");
        assert!(cells.contains(&Cell::of_point(51.5074, -0.1278)));
    }

    #[test]
    fn disc_on_a_cell_corner_touches_all_four() {
        // (0, 0) is a corner of four precision-6 cells.
        let mut cells = Vec::new();
        cover_disc(0.0, 0.0, 10.0, &mut cells);
        for (lat, lon) in [
            (0.0001, 0.0001),
            (-0.0001, 0.0001),
            (0.0001, -0.0001),
            (-0.0001, -0.0001),
        ] {
            assert!(cells.contains(&Cell::of_point(lat, lon)), "{lat},{lon}");
        }
        assert_eq!(cells.len(), 4);
    }

    #[test]
    fn disc_across_the_antimeridian_takes_both_sides() {
        let mut cells = Vec::new();
        cover_disc(-17.0, 180.0, 300.0, &mut cells);
        assert!(cells.contains(&Cell::of_point(-17.0, 179.999)));
        assert!(cells.contains(&Cell::of_point(-17.0, -179.999)));
        let mut sorted = cells.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), cells.len(), "no duplicates");
        assert!(cells.len() <= 6, "{}", cells.len());
    }

    #[test]
    fn large_zone_covers_many_cells() {
        let mut cells = Vec::new();
        cover_disc(51.5, -0.12, 5_000.0, &mut cells);
        // ~10 km x 10 km over 0.76 x 0.61 km cells.
        assert!((150..=400).contains(&cells.len()), "{}", cells.len());
    }
}
