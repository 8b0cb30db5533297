//! Protected zones: shape, warning buffer, weekly schedule and validity.
//!
//! A [`Zone`] is built from a [`ZoneSpec`] (the JSON form) and checked once; afterwards it
//! carries what evaluation needs precomputed: the box of everything within its buffer, and the
//! polygon with longitudes unwrapped so that one crossing the antimeridian is contiguous.

use crate::geodesy::{self, GeoBox, geodesic_m, haversine_m, wrap_lon};
use crate::ids::{OrderId, ZoneId, ZoneKey};
use chrono::{DateTime, Datelike, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use geo::{Closest, Contains, Coord, HaversineClosestPoint, Line, LineString, Point, Polygon};
use serde::{Deserialize, Serialize};

/// Largest circle radius accepted, metres.
pub const MAX_RADIUS_M: f64 = 50_000.0;
/// Largest warning buffer accepted, metres.
pub const MAX_BUFFER_M: f64 = 20_000.0;
/// Most polygon vertices accepted.
pub const MAX_POLYGON_VERTICES: usize = 1_000;
/// Longest polygon edge accepted, metres (keeps the great-circle bulge of an edge tiny).
pub const MAX_POLYGON_EDGE_M: f64 = 50_000.0;
/// Polygons must lie within this latitude; circles may go anywhere.
pub const MAX_POLYGON_LAT: f64 = 85.0;

/// The zone id of every order's moving zone around the victim's own device
/// (`crate::proximity`). Reserved: operators cannot give a fixed zone this id, and it is never
/// in the zone tables (it has no fixed place).
pub const VICTIM_ZONE_ID: &str = "victim-device";

/// What a zone protects; it chooses the words of the victim's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ZoneKind {
    /// The victim's home.
    Home,
    /// The victim's workplace.
    Work,
    /// A school (the victim's or their children's).
    School,
    /// Any other protected place.
    #[default]
    Other,
    /// A moving zone around the victim's own reported position.
    VictimLocation,
}

/// The geometry of a zone, as written in JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ZoneShape {
    /// A circle: centre and radius.
    Circle {
        /// Centre latitude, degrees.
        lat: f64,
        /// Centre longitude, degrees.
        lon: f64,
        /// Radius, metres.
        radius_m: f64,
    },
    /// A simple polygon ring, `[lon, lat]` pairs (GeoJSON order); closing it is optional.
    Polygon(Vec<[f64; 2]>),
}

/// Days and hours when a zone is in force, in a named time zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// IANA time zone name, e.g. `Europe/London`; normally the order's.
    pub time_zone: String,
    /// The windows; the zone is in force when any window is.
    pub windows: Vec<WindowSpec>,
}

/// One weekly window. `start`/`end` are `HH:MM` local time; an `end` before `start` runs past
/// midnight into the next day; `end` may be `24:00`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    /// Days on which the window starts: `mon` .. `sun`.
    pub days: Vec<String>,
    /// Start, `HH:MM`.
    pub start: String,
    /// End, `HH:MM` (exclusive).
    pub end: String,
}

/// A zone as written in JSON: what operators create and scenarios hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneSpec {
    /// The zone's id.
    pub zone_id: ZoneId,
    /// What it protects.
    #[serde(default)]
    pub kind: ZoneKind,
    /// Its geometry.
    #[serde(flatten)]
    pub shape: ZoneShape,
    /// Warning buffer around the shape, metres.
    pub buffer_m: f64,
    /// When it is in force each week; always when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleSpec>,
    /// In force from this instant; at once when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<DateTime<Utc>>,
    /// In force until this instant (exclusive); for ever when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<DateTime<Utc>>,
    /// The order this zone belongs to: it restrains that order's offender and protects that
    /// order's victim, and nobody else's. A place two orders protect is two zones, so that no
    /// change to one order's zone can touch another victim's protection.
    pub order_id: OrderId,
}

/// Why a zone specification was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ZoneError {
    /// A coordinate is not a valid latitude or longitude.
    #[error("zone {zone}: coordinate ({lat}, {lon}) is not a valid latitude, longitude")]
    BadCoordinate {
        /// The zone.
        zone: String,
        /// Latitude given.
        lat: f64,
        /// Longitude given.
        lon: f64,
    },
    /// A distance is negative, not finite, or beyond its limit.
    #[error("zone {zone}: {field} {value} m must be between {min} and {max} m")]
    BadDistance {
        /// The zone.
        zone: String,
        /// Which distance.
        field: &'static str,
        /// The value.
        value: f64,
        /// Smallest allowed.
        min: f64,
        /// Largest allowed.
        max: f64,
    },
    /// The polygon cannot be used.
    #[error("zone {zone}: polygon {problem}")]
    BadPolygon {
        /// The zone.
        zone: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The schedule cannot be used.
    #[error("zone {zone}: schedule {problem}")]
    BadSchedule {
        /// The zone.
        zone: String,
        /// What is wrong with it.
        problem: String,
    },
    /// `valid_until` is not after `valid_from`.
    #[error("zone {zone}: valid_until must be after valid_from")]
    EmptyValidity {
        /// The zone.
        zone: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
struct Window {
    days: [bool; 7], // Monday first
    start_min: u32,
    end_min: u32,
}

/// A checked weekly schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct WeeklySchedule {
    tz: Tz,
    windows: Vec<Window>,
}

fn parse_hhmm(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) => Some(24 * 60),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

fn parse_day(s: &str) -> Option<usize> {
    ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .iter()
        .position(|d| d.eq_ignore_ascii_case(s))
}

impl WeeklySchedule {
    fn from_spec(spec: &ScheduleSpec) -> Result<Self, String> {
        let tz: Tz = spec.time_zone.parse().map_err(|_| {
            format!(
                "time zone {:?} is not an IANA name like Europe/London",
                spec.time_zone
            )
        })?;
        if spec.windows.is_empty() {
            return Err("has no windows; leave the schedule out for a zone always in force".into());
        }
        let windows = spec
            .windows
            .iter()
            .map(|w| {
                let mut days = [false; 7];
                for d in &w.days {
                    days[parse_day(d)
                        .ok_or_else(|| format!("day {d:?} is not one of mon..sun"))?] = true;
                }
                if !days.contains(&true) {
                    return Err("window has no days".to_owned());
                }
                let start_min = parse_hhmm(&w.start).filter(|&m| m < 24 * 60);
                let start_min =
                    start_min.ok_or_else(|| format!("start {:?} is not HH:MM", w.start))?;
                let end_min =
                    parse_hhmm(&w.end).ok_or_else(|| format!("end {:?} is not HH:MM", w.end))?;
                if start_min == end_min {
                    return Err(format!("window {}-{} is empty", w.start, w.end));
                }
                Ok(Window {
                    days,
                    start_min,
                    end_min,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Self { tz, windows })
    }

    /// Whether the schedule is in force at `at_ms` (Unix milliseconds).
    pub fn is_active(&self, at_ms: i64) -> bool {
        let Some(utc) = DateTime::<Utc>::from_timestamp_millis(at_ms) else {
            return false;
        };
        let local = utc.with_timezone(&self.tz);
        let day = local.weekday().num_days_from_monday() as usize;
        let yesterday = (day + 6) % 7;
        let minute = local.hour() * 60 + local.minute();
        self.windows.iter().any(|w| {
            if w.start_min < w.end_min {
                w.days[day] && (w.start_min..w.end_min).contains(&minute)
            } else {
                (w.days[day] && minute >= w.start_min) || (w.days[yesterday] && minute < w.end_min)
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Prepared {
    Circle {
        lat: f64,
        lon: f64,
        radius_m: f64,
    },
    // Longitudes unwrapped: contiguous even across the antimeridian, possibly beyond 180.
    Polygon {
        polygon: Polygon<f64>,
        edges: Vec<Line<f64>>,
        // Haversine length of each edge: with the haversine distances to its ends, it bounds
        // the distance to the edge from below without finding the closest point.
        edge_haversine_m: Vec<f64>,
        max_lon: f64,
    },
}

/// A checked zone, ready for evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Zone {
    spec: ZoneSpec,
    prepared: Prepared,
    schedule: Option<WeeklySchedule>,
    reach: GeoBox,
}

fn valid_coord(lat: f64, lon: f64) -> bool {
    lat.is_finite()
        && lon.is_finite()
        && (-90.0..=90.0).contains(&lat)
        && (-180.0..=180.0).contains(&lon)
}

fn check_distance(
    zone: &str,
    field: &'static str,
    value: f64,
    min: f64,
    max: f64,
) -> Result<(), ZoneError> {
    if value.is_finite() && (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ZoneError::BadDistance {
            zone: zone.to_owned(),
            field,
            value,
            min,
            max,
        })
    }
}

fn prepare_polygon(zone: &str, ring: &[[f64; 2]]) -> Result<(Prepared, GeoBox), ZoneError> {
    let bad = |problem: String| ZoneError::BadPolygon {
        zone: zone.to_owned(),
        problem,
    };
    let mut pts: Vec<[f64; 2]> = ring.to_vec();
    if pts.len() > 1 && pts.first() == pts.last() {
        pts.pop();
    }
    if pts.len() < 3 {
        return Err(bad(format!(
            "needs at least 3 distinct vertices, has {}",
            pts.len()
        )));
    }
    if pts.len() > MAX_POLYGON_VERTICES {
        return Err(bad(format!(
            "has {} vertices; at most {MAX_POLYGON_VERTICES}",
            pts.len()
        )));
    }
    for &[lon, lat] in &pts {
        if !valid_coord(lat, lon) {
            return Err(ZoneError::BadCoordinate {
                zone: zone.to_owned(),
                lat,
                lon,
            });
        }
        if lat.abs() > MAX_POLYGON_LAT {
            return Err(bad(format!(
                "reaches latitude {lat}; polygons must stay within ±{MAX_POLYGON_LAT}° (use a circle)"
            )));
        }
    }
    // Unwrap longitudes: a ring spanning more than 180° is taken to cross the antimeridian.
    let raw_span = pts.iter().map(|p| p[0]).fold(f64::MIN, f64::max)
        - pts.iter().map(|p| p[0]).fold(f64::MAX, f64::min);
    if raw_span > 180.0 {
        for p in &mut pts {
            if p[0] < 0.0 {
                p[0] += 360.0;
            }
        }
    }
    let min_lon = pts.iter().map(|p| p[0]).fold(f64::MAX, f64::min);
    let max_lon = pts.iter().map(|p| p[0]).fold(f64::MIN, f64::max);
    if max_lon - min_lon >= 180.0 {
        return Err(bad("spans 180° of longitude or more".into()));
    }
    let mut max_edge_m: f64 = 0.0;
    let mut edges = Vec::with_capacity(pts.len());
    for i in 0..pts.len() {
        let [lon1, lat1] = pts[i];
        let [lon2, lat2] = pts[(i + 1) % pts.len()];
        let edge_m = geodesic_m(lat1, lon1, lat2, lon2);
        if edge_m > MAX_POLYGON_EDGE_M {
            return Err(bad(format!(
                "edge {i} is {edge_m:.0} m long; at most {MAX_POLYGON_EDGE_M} m"
            )));
        }
        max_edge_m = max_edge_m.max(edge_m);
        // The haversine closest-point routine works on wrapped longitudes.
        edges.push(Line::new(
            Coord {
                x: wrap_lon(lon1),
                y: lat1,
            },
            Coord {
                x: wrap_lon(lon2),
                y: lat2,
            },
        ));
    }
    let edge_haversine_m = edges
        .iter()
        .map(|e| haversine_m(e.start.y, e.start.x, e.end.y, e.end.x))
        .collect();
    let polygon = Polygon::new(
        LineString::from(pts.iter().map(|&[x, y]| Coord { x, y }).collect::<Vec<_>>()),
        vec![],
    );
    if geo::Area::unsigned_area(&polygon) == 0.0 {
        return Err(bad("has no area".into()));
    }
    let south = pts.iter().map(|p| p[1]).fold(f64::MAX, f64::min);
    let north = pts.iter().map(|p| p[1]).fold(f64::MIN, f64::max);
    // A great-circle edge bulges poleward of its endpoints by about L^2 tan(lat) / 8R.
    let lat_max = south.abs().max(north.abs()).to_radians();
    let bulge_m = max_edge_m * max_edge_m * lat_max.tan() / (8.0 * geodesy::WGS84_M_MIN) + 1.0;
    let shape_box = GeoBox::from_bounds(south, north, min_lon, max_lon).expand(bulge_m);
    Ok((
        Prepared::Polygon {
            polygon,
            edges,
            edge_haversine_m,
            max_lon,
        },
        shape_box,
    ))
}

impl Zone {
    /// Checks a specification and prepares the zone; fails with the first problem found.
    pub fn new(spec: ZoneSpec) -> Result<Zone, ZoneError> {
        let id = spec.zone_id.as_str();
        check_distance(id, "buffer_m", spec.buffer_m, 0.0, MAX_BUFFER_M)?;
        if let (Some(from), Some(until)) = (spec.valid_from, spec.valid_until)
            && until <= from
        {
            return Err(ZoneError::EmptyValidity {
                zone: id.to_owned(),
            });
        }
        let schedule = spec
            .schedule
            .as_ref()
            .map(WeeklySchedule::from_spec)
            .transpose()
            .map_err(|problem| ZoneError::BadSchedule {
                zone: id.to_owned(),
                problem,
            })?;
        let (prepared, shape_box) = match spec.shape {
            ZoneShape::Circle { lat, lon, radius_m } => {
                if !valid_coord(lat, lon) {
                    return Err(ZoneError::BadCoordinate {
                        zone: id.to_owned(),
                        lat,
                        lon,
                    });
                }
                check_distance(id, "radius_m", radius_m, 0.0, MAX_RADIUS_M)?;
                (
                    Prepared::Circle { lat, lon, radius_m },
                    GeoBox::disc(lat, lon, radius_m),
                )
            }
            ZoneShape::Polygon(ref ring) => prepare_polygon(id, ring)?,
        };
        let reach = shape_box.expand(spec.buffer_m);
        Ok(Zone {
            spec,
            prepared,
            schedule,
            reach,
        })
    }

    /// The zone's id.
    pub fn id(&self) -> &ZoneId {
        &self.spec.zone_id
    }

    /// What it protects.
    pub fn kind(&self) -> ZoneKind {
        self.spec.kind
    }

    /// Warning buffer, metres.
    pub fn buffer_m(&self) -> f64 {
        self.spec.buffer_m
    }

    /// The order this zone belongs to.
    pub fn order_id(&self) -> &OrderId {
        &self.spec.order_id
    }

    /// The zone's key: its order and its id, unique across the deployment.
    pub fn key(&self) -> ZoneKey {
        ZoneKey::new(self.spec.order_id.clone(), self.spec.zone_id.clone())
    }

    /// The specification the zone was built from.
    pub fn spec(&self) -> &ZoneSpec {
        &self.spec
    }

    /// A box holding every point within the warning buffer of the shape: what the index
    /// covers with cells and what the prefilter tests first.
    pub fn reach(&self) -> &GeoBox {
        &self.reach
    }

    /// Whether the zone is in force at `at_ms`: within its validity and its schedule.
    pub fn in_force(&self, at_ms: i64) -> bool {
        let from_ok = self
            .spec
            .valid_from
            .is_none_or(|t| at_ms >= t.timestamp_millis());
        let until_ok = self
            .spec
            .valid_until
            .is_none_or(|t| at_ms < t.timestamp_millis());
        from_ok && until_ok && self.schedule.as_ref().is_none_or(|s| s.is_active(at_ms))
    }

    /// For a circle: a haversine estimate of the signed distance in metres from a point to the
    /// edge, and a bound on how far the geodesic distance can be from it (haversine is within
    /// [`geodesy::HAVERSINE_MAX_REL_ERROR`] of geodesic; a millimetre more for rounding). `None`
    /// for a polygon, which is always measured geodesically.
    pub fn distance_estimate_m(&self, lat: f64, lon: f64) -> Option<(f64, f64)> {
        match &self.prepared {
            Prepared::Circle {
                lat: clat,
                lon: clon,
                radius_m,
            } => {
                let h = haversine_m(lat, lon, *clat, *clon);
                Some((h - radius_m, h * geodesy::HAVERSINE_MAX_REL_ERROR + 0.001))
            }
            Prepared::Polygon { .. } => None,
        }
    }

    /// Signed geodesic distance in metres from a point to the zone's edge: negative inside,
    /// positive outside. Decided geodesically; `within_m` lets a circle skip the geodesic
    /// computation when haversine already proves the point further than that from the edge,
    /// in which case the haversine estimate is returned.
    pub fn distance_to_edge_m(&self, lat: f64, lon: f64, within_m: f64) -> f64 {
        match &self.prepared {
            Prepared::Circle {
                lat: clat,
                lon: clon,
                radius_m,
            } => {
                let h = haversine_m(lat, lon, *clat, *clon);
                let lower = h * (1.0 - geodesy::HAVERSINE_MAX_REL_ERROR) - radius_m;
                if lower > within_m {
                    return h - radius_m;
                }
                geodesic_m(lat, lon, *clat, *clon) - radius_m
            }
            Prepared::Polygon {
                polygon,
                edges,
                edge_haversine_m,
                max_lon,
            } => {
                let probe = Point::new(lon, lat);
                let inside = polygon.contains(&probe)
                    || (*max_lon > 180.0 && polygon.contains(&Point::new(lon + 360.0, lat)));
                // The geodesic distance to the nearest edge decides, but each edge costs a
                // closest-point search and a geodesic (ten haversines). Edges are measured from the
                // one that looks nearest, and an edge is skipped when a lower bound of its distance
                // already exceeds the best found: the minimum is the one of measuring every edge.
                // A point of an edge lies on the arc between its ends, so by the triangle
                // inequality on the sphere it is at least (to_start + to_end - length) / 2 from the
                // fix; the closest-point search can land a few centimetres off the arc, hence the
                // metre spare. Geodesic >= haversine * (1 - HAVERSINE_MAX_REL_ERROR), less a
                // millimetre: at sub-millimetre distances rounding outweighs the relative bound.
                let to_end: Vec<f64> = edges
                    .iter()
                    .map(|e| haversine_m(lat, lon, e.end.y, e.end.x))
                    .collect();
                let n = edges.len();
                let bound_m = |i: usize| {
                    let to_start = to_end[(i + n - 1) % n];
                    (to_start + to_end[i] - edge_haversine_m[i]) / 2.0 - 1.0
                };
                let lower = |h: f64| h * (1.0 - geodesy::HAVERSINE_MAX_REL_ERROR) - 0.001;
                let first = (0..n).min_by(|&i, &j| bound_m(i).total_cmp(&bound_m(j)));
                let others = (0..n).filter(|&i| Some(i) != first);
                let mut edge_m = f64::INFINITY;
                for i in first.into_iter().chain(others) {
                    if lower(bound_m(i)) > edge_m {
                        continue;
                    }
                    let e = &edges[i];
                    let p = match e.haversine_closest_point(&probe) {
                        Closest::SinglePoint(p) | Closest::Intersection(p) => p,
                        Closest::Indeterminate => Point::from(e.start),
                    };
                    if lower(haversine_m(lat, lon, p.y(), p.x())) > edge_m {
                        continue;
                    }
                    edge_m = edge_m.min(geodesic_m(lat, lon, p.y(), p.x()));
                }
                if inside { -edge_m } else { edge_m }
            }
        }
    }
}

impl TryFrom<ZoneSpec> for Zone {
    type Error = ZoneError;
    fn try_from(spec: ZoneSpec) -> Result<Zone, ZoneError> {
        Zone::new(spec)
    }
}

impl Serialize for Zone {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.spec.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Zone {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Zone, D::Error> {
        Zone::new(ZoneSpec::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// The weekday of `at_ms` in UTC; a helper for tests and tools.
pub fn utc_weekday(at_ms: i64) -> Option<Weekday> {
    DateTime::<Utc>::from_timestamp_millis(at_ms).map(|t| t.weekday())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn zone(v: serde_json::Value) -> Result<Zone, String> {
        serde_json::from_value::<Zone>(v).map_err(|e| e.to_string())
    }

    fn circle() -> serde_json::Value {
        json!({"zone_id":"home","kind":"home","circle":{"lat":51.5,"lon":-0.12,"radius_m":100},"buffer_m":500,"order_id":"o1"})
    }

    fn ms(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    #[test]
    fn circle_distance_is_signed_and_geodesic() {
        let z = zone(circle()).unwrap();
        assert!((z.distance_to_edge_m(51.5, -0.12, 1e9) + 100.0).abs() < 1e-6);
        // 0.01° of latitude at 51.5°N is 1113.1 m on WGS84.
        let d = z.distance_to_edge_m(51.51, -0.12, 1e9);
        assert!((d - 1013.1).abs() < 1.0, "{d}");
        // Far beyond the limit: the haversine estimate, still the right order.
        let far = z.distance_to_edge_m(52.5, -0.12, 1000.0);
        assert!((far - 111_200.0).abs() < 1_000.0, "{far}");
    }

    #[test]
    fn polygon_inside_outside_and_edge_distance() {
        // A ~700 m square around (51.5, -0.12).
        let z = zone(json!({"zone_id":"school","polygon":[[-0.125,51.497],[-0.115,51.497],[-0.115,51.503],[-0.125,51.503],[-0.125,51.497]],"buffer_m":200,"order_id":"o1"})).unwrap();
        let inside = z.distance_to_edge_m(51.5, -0.12, 1e9);
        assert!(inside < -300.0 && inside > -340.0, "{inside}"); // 0.003° lat = 333.6 m
        let out = z.distance_to_edge_m(51.504, -0.12, 1e9);
        assert!((out - 111.2).abs() < 1.0, "{out}");
    }

    #[test]
    fn polygon_across_the_antimeridian() {
        let z = zone(json!({"zone_id":"fiji","polygon":[[179.99,-17.0],[-179.99,-17.0],[-179.99,-16.99],[179.99,-16.99]],"buffer_m":100,"order_id":"o1"})).unwrap();
        assert!(z.distance_to_edge_m(-16.995, 179.999, 1e9) < 0.0);
        assert!(z.distance_to_edge_m(-16.995, -179.999, 1e9) < 0.0);
        let east = z.distance_to_edge_m(-16.995, -179.98, 1e9);
        assert!((east - 1064.0).abs() < 5.0, "{east}");
        assert!(z.reach().contains(-16.995, 180.0) && !z.reach().contains(-16.995, 0.0));
    }

    #[test]
    fn refuses_bad_zones_with_reasons() {
        let mut v = circle();
        v["circle"]["radius_m"] = json!(-1);
        assert!(
            zone(v)
                .unwrap_err()
                .contains("radius_m -1 m must be between 0 and 50000")
        );
        let mut v = circle();
        v["circle"]["lat"] = json!(91);
        assert!(zone(v).unwrap_err().contains("not a valid latitude"));
        let mut v = circle();
        v["orders"] = json!(["o1", "o2"]);
        assert!(zone(v).unwrap_err().contains("unknown field `orders`"));
        let mut v = circle();
        v["colour"] = json!("red");
        assert!(zone(v).unwrap_err().contains("unknown field"));
        let e = zone(json!({"zone_id":"p","polygon":[[0,0],[1,0]],"buffer_m":1,"order_id":"o"}))
            .unwrap_err();
        assert!(e.contains("at least 3 distinct vertices"), "{e}");
        let e = zone(
            json!({"zone_id":"p","polygon":[[0,0],[0.1,0],[0.2,0]],"buffer_m":1,"order_id":"o"}),
        )
        .unwrap_err();
        assert!(e.contains("no area"), "{e}");
        let e = zone(json!({"zone_id":"p","polygon":[[0,86],[0.1,86],[0.1,86.1]],"buffer_m":1,"order_id":"o"})).unwrap_err();
        assert!(e.contains("use a circle"), "{e}");
        let mut v = circle();
        v["valid_from"] = json!("2026-01-02T00:00:00Z");
        v["valid_until"] = json!("2026-01-01T00:00:00Z");
        assert!(zone(v).unwrap_err().contains("valid_until must be after"));
    }

    #[test]
    fn validity_window() {
        let mut v = circle();
        v["valid_from"] = json!("2026-01-01T00:00:00Z");
        v["valid_until"] = json!("2026-02-01T00:00:00Z");
        let z = zone(v).unwrap();
        assert!(!z.in_force(ms("2025-12-31T23:59:59Z")));
        assert!(z.in_force(ms("2026-01-01T00:00:00Z")));
        assert!(!z.in_force(ms("2026-02-01T00:00:00Z")));
    }

    #[test]
    fn schedule_in_local_time_with_overnight_windows() {
        let mut v = circle();
        v["schedule"] = json!({"time_zone":"Europe/London","windows":[
            {"days":["mon","tue","wed","thu","fri"],"start":"08:00","end":"17:30"},
            {"days":["sat"],"start":"22:00","end":"06:00"}]});
        let z = zone(v).unwrap();
        // Monday 2026-06-01, BST (UTC+1): 08:30 local = 07:30Z.
        assert!(z.in_force(ms("2026-06-01T07:30:00Z")));
        assert!(!z.in_force(ms("2026-06-01T06:30:00Z"))); // 07:30 local
        assert!(!z.in_force(ms("2026-06-01T16:30:00Z"))); // 17:30 local, end exclusive
        // Saturday 2026-06-06 23:00 local and Sunday 05:59 local are in the overnight window.
        assert!(z.in_force(ms("2026-06-06T22:00:00Z")));
        assert!(z.in_force(ms("2026-06-07T04:59:00Z")));
        assert!(!z.in_force(ms("2026-06-07T05:00:00Z")));
        // Winter: GMT. Monday 2026-01-05 08:00 local = 08:00Z.
        assert!(z.in_force(ms("2026-01-05T08:00:00Z")));
        assert!(!z.in_force(ms("2026-01-05T07:59:00Z")));
    }

    #[test]
    fn bad_schedules() {
        for (sched, needle) in [
            (
                json!({"time_zone":"Mars/Olympus","windows":[{"days":["mon"],"start":"08:00","end":"09:00"}]}),
                "IANA",
            ),
            (json!({"time_zone":"UTC","windows":[]}), "no windows"),
            (
                json!({"time_zone":"UTC","windows":[{"days":["funday"],"start":"08:00","end":"09:00"}]}),
                "funday",
            ),
            (
                json!({"time_zone":"UTC","windows":[{"days":["mon"],"start":"8am","end":"09:00"}]}),
                "8am",
            ),
            (
                json!({"time_zone":"UTC","windows":[{"days":["mon"],"start":"09:00","end":"09:00"}]}),
                "empty",
            ),
        ] {
            let mut v = circle();
            v["schedule"] = sched;
            let e = zone(v).unwrap_err();
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn round_trips_as_json() {
        let z = zone(circle()).unwrap();
        let back: Zone = serde_json::from_str(&serde_json::to_string(&z).unwrap()).unwrap();
        assert_eq!(back, z);
    }
}
