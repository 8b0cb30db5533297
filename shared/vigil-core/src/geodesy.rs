//! Distances on the WGS84 ellipsoid and conservative latitude/longitude boxes.
//!
//! Decisions are geodesic (Karney's algorithm, through `geo`). Haversine on the mean sphere is
//! within [`HAVERSINE_MAX_REL_ERROR`] of it and ten times cheaper, so it prefilters.
//!
//! [`GeoBox`] bounds "every point within `r` metres of something" in latitude and longitude.
//! The bounds are proved, not estimated: on the ellipsoid a path element satisfies
//! `ds >= M_min * |dlat|` and `ds >= a * cos(lat) * |dlon|`, where `M_min = a(1 - e^2)` is the
//! smallest meridional radius of curvature and `a` the equatorial radius (the prime-vertical
//! radius is never smaller than `a`). So a point `r` metres away differs by at most
//! `r / M_min` radians in latitude and, if no point of the path is nearer the pole than
//! `lat_max`, by at most `r / (a cos lat_max)` in longitude. The index and the prefilter both
//! rely on these boxes never being too small.

use geo::{Distance, Geodesic, Haversine, Point};

/// WGS84 equatorial radius, metres.
pub const WGS84_A: f64 = 6_378_137.0;
/// WGS84 smallest meridional radius of curvature, `a (1 - e^2)`, metres.
pub const WGS84_M_MIN: f64 = 6_335_439.327;
/// Largest relative error of [`haversine_m`] against [`geodesic_m`] on WGS84 (about 0.56 %).
pub const HAVERSINE_MAX_REL_ERROR: f64 = 0.006;

/// Geodesic distance in metres between two points given as latitude, longitude in degrees.
pub fn geodesic_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    Geodesic.distance(Point::new(lon1, lat1), Point::new(lon2, lat2))
}

/// Great-circle distance in metres on the mean sphere; see [`HAVERSINE_MAX_REL_ERROR`].
pub fn haversine_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    Haversine.distance(Point::new(lon1, lat1), Point::new(lon2, lat2))
}

/// Wraps a longitude in degrees into [-180, 180).
pub fn wrap_lon(lon: f64) -> f64 {
    let w = (lon + 180.0).rem_euclid(360.0) - 180.0;
    if w >= 180.0 { w - 360.0 } else { w }
}

/// A latitude band and a longitude interval that may cross the antimeridian.
///
/// `west..=east` runs eastwards from `west`; when `west > east` the interval crosses 180°.
/// `all_lons` means every longitude (the box reaches a pole or is wider than half the globe).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoBox {
    /// Southern edge, degrees.
    pub south: f64,
    /// Northern edge, degrees.
    pub north: f64,
    /// Western edge, degrees in [-180, 180).
    pub west: f64,
    /// Eastern edge, degrees in [-180, 180).
    pub east: f64,
    /// The box spans every longitude.
    pub all_lons: bool,
}

impl GeoBox {
    /// The box holding just one point.
    pub fn point(lat: f64, lon: f64) -> Self {
        let lon = wrap_lon(lon);
        Self {
            south: lat,
            north: lat,
            west: lon,
            east: lon,
            all_lons: false,
        }
    }

    /// The smallest box holding points whose longitudes are given unwrapped and contiguous
    /// (`lon_min <= lon_max`, both within one 360° turn).
    pub fn from_bounds(south: f64, north: f64, lon_min: f64, lon_max: f64) -> Self {
        let all_lons = lon_max - lon_min >= 360.0;
        Self {
            south,
            north,
            west: if all_lons { -180.0 } else { wrap_lon(lon_min) },
            east: if all_lons { 180.0 } else { wrap_lon(lon_max) },
            all_lons,
        }
    }

    /// A box holding every point whose geodesic distance to some point of `self` is at most
    /// `r_m` metres (see the module docs for the proof).
    pub fn expand(&self, r_m: f64) -> Self {
        let dlat = (r_m.max(0.0) / WGS84_M_MIN).to_degrees();
        let south = self.south - dlat;
        let north = self.north + dlat;
        let lat_max = south.abs().max(north.abs());
        if self.all_lons || lat_max >= 90.0 {
            return Self {
                south: south.max(-90.0),
                north: north.min(90.0),
                west: -180.0,
                east: 180.0,
                all_lons: true,
            };
        }
        let dlon = (r_m.max(0.0) / (WGS84_A * lat_max.to_radians().cos())).to_degrees();
        let width = self.width_deg() + 2.0 * dlon;
        if width >= 360.0 {
            return Self {
                south,
                north,
                west: -180.0,
                east: 180.0,
                all_lons: true,
            };
        }
        Self {
            south,
            north,
            west: wrap_lon(self.west - dlon),
            east: wrap_lon(self.east + dlon),
            all_lons: false,
        }
    }

    /// A box holding the whole disc of radius `r_m` metres around a point.
    pub fn disc(lat: f64, lon: f64, r_m: f64) -> Self {
        Self::point(lat, lon).expand(r_m)
    }

    /// Longitudinal width in degrees, 0 to 360.
    pub fn width_deg(&self) -> f64 {
        if self.all_lons {
            360.0
        } else {
            (self.east - self.west).rem_euclid(360.0)
        }
    }

    /// Whether `lon` lies in the longitude interval.
    pub fn contains_lon(&self, lon: f64) -> bool {
        self.all_lons || (wrap_lon(lon) - self.west).rem_euclid(360.0) <= self.width_deg()
    }

    /// Whether the point lies in the box (edges included).
    pub fn contains(&self, lat: f64, lon: f64) -> bool {
        lat >= self.south && lat <= self.north && self.contains_lon(lon)
    }

    /// Whether the two boxes share at least one point.
    pub fn intersects(&self, other: &GeoBox) -> bool {
        if self.north < other.south || other.north < self.south {
            return false;
        }
        self.all_lons
            || other.all_lons
            || self.contains_lon(other.west)
            || other.contains_lon(self.west)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_longitudes() {
        assert_eq!(wrap_lon(180.0), -180.0);
        assert_eq!(wrap_lon(-180.0), -180.0);
        assert_eq!(wrap_lon(190.0), -170.0);
        assert_eq!(wrap_lon(-190.0), 170.0);
        assert_eq!(wrap_lon(10.0), 10.0);
    }

    #[test]
    fn haversine_is_within_stated_error_of_geodesic() {
        for &(a, b, c, d) in &[
            (0.0, 0.0, 0.0, 1.0),
            (0.0, 0.0, 1.0, 0.0),
            (51.5, -0.1, 51.6, 0.1),
            (80.0, 10.0, 80.01, 10.5),
            (-33.9, 151.2, -33.91, 151.21),
        ] {
            let g = geodesic_m(a, b, c, d);
            let h = haversine_m(a, b, c, d);
            assert!(
                (g - h).abs() <= HAVERSINE_MAX_REL_ERROR * g,
                "{a},{b}->{c},{d}: {g} vs {h}"
            );
        }
    }

    #[test]
    fn disc_box_crosses_the_antimeridian() {
        let b = GeoBox::disc(10.0, 179.999, 1_000.0);
        assert!(b.west > 179.0 && b.east < -179.0, "{b:?}");
        assert!(b.contains(10.0, -179.995));
        assert!(b.contains(10.0, 179.995));
        assert!(!b.contains(10.0, 0.0));
        assert!(b.width_deg() < 0.1);
    }

    #[test]
    fn disc_box_near_a_pole_takes_every_longitude() {
        let b = GeoBox::disc(89.995, 0.0, 1_000.0);
        assert!(b.all_lons);
        assert_eq!(b.north, 90.0);
        assert!(b.contains(89.999, 123.0));
    }

    #[test]
    fn disc_box_holds_points_at_the_radius() {
        // Points exactly r away in eight directions, at several latitudes, must be inside.
        for lat in [0.0, 45.0, 70.0, 84.0, -60.0] {
            let r = 5_000.0;
            let b = GeoBox::disc(lat, 20.0, r);
            for bearing in (0..360).step_by(45) {
                let p = geo::Destination::destination(
                    &Geodesic,
                    Point::new(20.0, lat),
                    bearing as f64,
                    r,
                );
                assert!(
                    b.contains(p.y(), p.x()),
                    "lat {lat} bearing {bearing}: {p:?} not in {b:?}"
                );
            }
        }
    }

    #[test]
    fn boxes_intersect_across_the_antimeridian() {
        let east = GeoBox::from_bounds(0.0, 1.0, 179.0, 179.9);
        let west = GeoBox::from_bounds(0.0, 1.0, -179.9, -179.0);
        assert!(!east.intersects(&west));
        assert!(east.expand(30_000.0).intersects(&west));
        let band = GeoBox::from_bounds(0.5, 0.6, 170.0, 190.0);
        assert!(band.intersects(&west) && band.intersects(&east));
        assert!(!band.intersects(&GeoBox::from_bounds(0.0, 1.0, 0.0, 1.0)));
    }
}
