//! A picture of a run as SVG, written by hand: zones with their warning buffers (dashed), each
//! tag's track, and a marker where each alert fired.
//!
//! The projection is equirectangular around the picture's centre, with longitude scaled by
//! the cosine of the centre's latitude, so that circles stay round and distances read true at
//! city scale. It does not handle a picture across the antimeridian or near a pole; scenarios
//! are a few kilometres wide.

use crate::executor::{Outcome, Run};
use crate::names::{alert_name, fmt_offset};
use crate::scenario::Scenario;
use std::collections::HashMap;
use std::fmt::Write as _;
use vigil_core::{VictimAlert, ZoneShape};

/// Metres per degree of latitude on the mean sphere: plenty for a picture.
const M_PER_DEG: f64 = 111_195.0;
/// Width of the drawing, pixels.
const WIDTH_PX: f64 = 960.0;
/// Tallest drawing area, pixels.
const MAX_HEIGHT_PX: f64 = 900.0;
/// Margin around the drawing area, pixels.
const MARGIN_PX: f64 = 24.0;
/// Height of the legend band below the drawing, pixels.
const LEGEND_PX: f64 = 56.0;
/// Height of the title band above the drawing, pixels.
const HEADER_PX: f64 = 30.0;
/// Rough width of one character of label text, pixels (12 px bold sans-serif).
const CHAR_PX: f64 = 7.5;
const TRACK_COLOURS: [&str; 4] = ["#111827", "#7c3aed", "#0e7490", "#b45309"];

/// A zone's outline.
#[derive(Debug, Clone, PartialEq)]
pub enum Outline {
    /// Centre and radius.
    Circle {
        /// Centre latitude, degrees.
        lat: f64,
        /// Centre longitude, degrees.
        lon: f64,
        /// Radius, metres.
        radius_m: f64,
    },
    /// Vertices as (latitude, longitude), degrees; not closed.
    Polygon(Vec<(f64, f64)>),
}

/// One zone to draw.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneDrawing {
    /// Text beside it (the zone id and kind).
    pub label: String,
    /// Its shape.
    pub outline: Outline,
    /// Its warning buffer, metres, drawn dashed around the shape.
    pub buffer_m: f64,
}

/// One accepted fix on a track.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackPoint {
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
    /// Hover text.
    pub label: String,
}

/// One tag's track, in device time order.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    /// The tag.
    pub tag: String,
    /// Its accepted fixes.
    pub points: Vec<TrackPoint>,
}

/// What a marker stands for; it chooses the marker's colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerKind {
    /// A victim SMS of this kind was sent.
    Sms(VictimAlert),
    /// Operators only were told (step down, escalation, zone out of force, ...).
    OperatorOnly,
}

/// A place where an alert fired.
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
    /// What fired.
    pub kind: MarkerKind,
    /// Text beside it.
    pub label: String,
}

/// Everything a picture shows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Picture {
    /// Title (also the SVG `<title>`).
    pub title: String,
    /// Zones.
    pub zones: Vec<ZoneDrawing>,
    /// Tracks, one per tag.
    pub tracks: Vec<Track>,
    /// Alert markers.
    pub markers: Vec<Marker>,
}

impl Picture {
    /// The picture of a run: the scenario's zones, each tag's accepted fixes, and a marker at
    /// the fix (or, for a tag event, the tag's last position) behind each SMS or
    /// operator-only zone event.
    pub fn of_run(scenario: &Scenario, run: &Run) -> Picture {
        let zones = scenario
            .zones
            .iter()
            .map(|z| {
                let spec = z.spec();
                let outline = match &spec.shape {
                    ZoneShape::Circle { lat, lon, radius_m } => Outline::Circle {
                        lat: *lat,
                        lon: *lon,
                        radius_m: *radius_m,
                    },
                    ZoneShape::Polygon(ring) => {
                        Outline::Polygon(ring.iter().map(|&[lon, lat]| (lat, lon)).collect())
                    }
                };
                ZoneDrawing {
                    label: format!(
                        "{} ({})",
                        spec.zone_id,
                        crate::names::serde_name(&spec.kind)
                    ),
                    outline,
                    buffer_m: spec.buffer_m,
                }
            })
            .collect();
        let mut tracks: Vec<(String, Vec<(i64, TrackPoint)>)> = Vec::new();
        let mut last_position: HashMap<&str, (f64, f64)> = HashMap::new();
        let mut markers = Vec::new();
        for step in &run.steps {
            let tag = step.tag_id.as_str();
            if let Outcome::Fix {
                at_ms,
                lat,
                lon,
                accuracy_m,
                ..
            } = step.outcome
            {
                let point = TrackPoint {
                    lat,
                    lon,
                    label: format!("{tag} {} ±{accuracy_m:.0} m", fmt_offset(step.at_s)),
                };
                match tracks.iter_mut().find(|(t, _)| t == tag) {
                    Some((_, points)) => points.push((at_ms, point)),
                    None => tracks.push((tag.to_owned(), vec![(at_ms, point)])),
                }
                last_position.insert(tag, (lat, lon));
            }
            let Some(&(lat, lon)) = last_position.get(tag) else {
                continue;
            };
            let when = fmt_offset(step.at_s);
            for sms in &step.sms {
                markers.push(Marker {
                    lat,
                    lon,
                    kind: MarkerKind::Sms(sms.level),
                    label: format!("{} {when}", alert_name(sms.level).to_uppercase()),
                });
            }
            if step.sms.is_empty() {
                let kinds: Vec<&str> = step
                    .operator_events
                    .iter()
                    .filter(|e| e.zone_id.is_some() || e.kind.starts_with("tag_event"))
                    .map(|e| e.kind.as_str())
                    .collect();
                if !kinds.is_empty() {
                    markers.push(Marker {
                        lat,
                        lon,
                        kind: MarkerKind::OperatorOnly,
                        label: format!("{} {when}", kinds.join(", ")),
                    });
                }
            }
        }
        Picture {
            title: format!("Vigil scenario: {}", scenario.name),
            zones,
            tracks: tracks
                .into_iter()
                .map(|(tag, mut points)| {
                    points.sort_by_key(|(at_ms, _)| *at_ms);
                    Track {
                        tag,
                        points: points.into_iter().map(|(_, p)| p).collect(),
                    }
                })
                .collect(),
            markers,
        }
    }
}

/// Local metres east and north of a reference point.
#[derive(Debug, Clone, Copy)]
struct Projection {
    lat0: f64,
    lon0: f64,
    cos_lat0: f64,
}

impl Projection {
    fn xy(&self, lat: f64, lon: f64) -> (f64, f64) {
        (
            (lon - self.lon0) * self.cos_lat0 * M_PER_DEG,
            (lat - self.lat0) * M_PER_DEG,
        )
    }
}

/// Metres to pixels: `x_px = left + x * scale`, `y_px = top - y * scale` (north up).
#[derive(Debug, Clone, Copy)]
struct Canvas {
    scale: f64,
    left: f64,
    top: f64,
}

impl Canvas {
    fn px(&self, (x, y): (f64, f64)) -> (f64, f64) {
        (self.left + x * self.scale, self.top - y * self.scale)
    }
}

/// Escapes text for XML content and attribute values.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t') => {}
            c => out.push(c),
        }
    }
    out
}

/// Distance in metres from a point to a polygon's boundary (planar, metres).
fn distance_to_ring(p: (f64, f64), ring: &[(f64, f64)]) -> f64 {
    let n = ring.len();
    (0..n)
        .map(|i| {
            let (a, b) = (ring[i], ring[(i + 1) % n]);
            let (dx, dy) = (b.0 - a.0, b.1 - a.1);
            let len2 = dx * dx + dy * dy;
            let t = if len2 > 0.0 {
                (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / len2).clamp(0.0, 1.0)
            } else {
                0.0
            };
            (p.0 - a.0 - t * dx).hypot(p.1 - a.1 - t * dy)
        })
        .fold(f64::INFINITY, f64::min)
}

/// The outline of everything within `b` metres of a polygon (planar, metres), traced as the
/// outermost point at distance `b` along rays from the vertices' mean: exact wherever the
/// buffered shape is star-shaped from there, as any zone with a buffer wider than its
/// concavities is; otherwise its outer envelope.
fn buffer_outline(ring: &[(f64, f64)], b: f64) -> Vec<(f64, f64)> {
    const RAYS: usize = 360;
    let n = ring.len();
    if n < 3 || b <= 0.0 {
        return ring.to_vec();
    }
    let c = (
        ring.iter().map(|p| p.0).sum::<f64>() / n as f64,
        ring.iter().map(|p| p.1).sum::<f64>() / n as f64,
    );
    let r_max = ring
        .iter()
        .map(|p| (p.0 - c.0).hypot(p.1 - c.1))
        .fold(0.0, f64::max)
        + b
        + 1.0;
    // The distance changes by at most the step along a ray, so a step below `b` cannot jump
    // over the band of points within `b` of the boundary.
    let step = b / 8.0;
    (0..RAYS)
        .filter_map(|k| {
            let a = std::f64::consts::TAU * k as f64 / RAYS as f64;
            let at = |r: f64| (c.0 + r * a.cos(), c.1 + r * a.sin());
            let mut outer = r_max;
            let mut inner = r_max - step;
            while distance_to_ring(at(inner), ring) > b {
                outer = inner;
                inner -= step;
                if inner < 0.0 {
                    return None;
                }
            }
            for _ in 0..40 {
                let mid = (outer + inner) / 2.0;
                if distance_to_ring(at(mid), ring) > b {
                    outer = mid;
                } else {
                    inner = mid;
                }
            }
            Some(at(inner))
        })
        .collect()
}

fn points_attr(canvas: &Canvas, pts: &[(f64, f64)]) -> String {
    pts.iter()
        .map(|&p| {
            let (x, y) = canvas.px(p);
            format!("{x:.1},{y:.1}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn polygon_ring(proj: &Projection, vertices: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut ring: Vec<(f64, f64)> = vertices.iter().map(|&(la, lo)| proj.xy(la, lo)).collect();
    if ring.len() > 1 && ring.first() == ring.last() {
        ring.pop();
    }
    ring
}

fn marker_colour(kind: MarkerKind) -> &'static str {
    match kind {
        MarkerKind::Sms(VictimAlert::Warning) => "#f59e0b",
        MarkerKind::Sms(VictimAlert::Breach) => "#dc2626",
        MarkerKind::Sms(VictimAlert::AllClear | VictimAlert::ContactRestored) => "#16a34a",
        MarkerKind::Sms(VictimAlert::TagSilent | VictimAlert::Tamper) => "#db2777",
        MarkerKind::OperatorOnly => "#64748b",
    }
}

/// A round length for the scale bar, about a fifth of `width_m`.
fn scale_bar_m(width_m: f64) -> f64 {
    let target = width_m / 5.0;
    [
        10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1_000.0, 2_000.0, 5_000.0, 10_000.0, 20_000.0,
        50_000.0,
    ]
    .into_iter()
    .rev()
    .find(|&m| m <= target)
    .unwrap_or(10.0)
}

/// Where everything goes on the page: the projection, the metres-to-pixels mapping and the
/// page's size.
struct Layout {
    proj: Projection,
    canvas: Canvas,
    /// Width of the drawn extent, metres (for the scale bar).
    width_m: f64,
    /// Bottom of the drawing area, pixels.
    drawing_bottom: f64,
    /// Page height, pixels.
    height: f64,
}

fn extent(values: &[f64]) -> (f64, f64) {
    (
        values.iter().copied().fold(f64::INFINITY, f64::min),
        values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    )
}

impl Layout {
    fn of(picture: &Picture) -> Layout {
        // Reference point: the middle of everything drawn.
        let mut lats = Vec::new();
        let mut lons = Vec::new();
        for z in &picture.zones {
            match &z.outline {
                Outline::Circle { lat, lon, .. } => {
                    lats.push(*lat);
                    lons.push(*lon);
                }
                Outline::Polygon(v) => {
                    lats.extend(v.iter().map(|p| p.0));
                    lons.extend(v.iter().map(|p| p.1));
                }
            }
        }
        for t in &picture.tracks {
            lats.extend(t.points.iter().map(|p| p.lat));
            lons.extend(t.points.iter().map(|p| p.lon));
        }
        let mid = |v: &[f64]| {
            let (lo, hi) = extent(v);
            if lo.is_finite() { (lo + hi) / 2.0 } else { 0.0 }
        };
        let (lat0, lon0) = (mid(&lats), mid(&lons));
        let proj = Projection {
            lat0,
            lon0,
            cos_lat0: lat0.to_radians().cos(),
        };

        // Extent in metres: zones with their buffers, and the tracks.
        let mut xs = vec![];
        let mut ys = vec![];
        let mut around = |(x, y): (f64, f64), r: f64| {
            xs.extend([x - r, x + r]);
            ys.extend([y - r, y + r]);
        };
        for z in &picture.zones {
            match &z.outline {
                Outline::Circle { lat, lon, radius_m } => {
                    around(proj.xy(*lat, *lon), radius_m + z.buffer_m)
                }
                Outline::Polygon(v) => {
                    for &(la, lo) in v {
                        around(proj.xy(la, lo), z.buffer_m);
                    }
                }
            }
        }
        for t in &picture.tracks {
            for p in &t.points {
                around(proj.xy(p.lat, p.lon), 30.0);
            }
        }
        if xs.is_empty() {
            (xs, ys) = (vec![-500.0, 500.0], vec![-500.0, 500.0]);
        }
        let (min_x, max_x) = extent(&xs);
        let (min_y, max_y) = extent(&ys);
        let (w_m, h_m) = ((max_x - min_x).max(100.0), (max_y - min_y).max(100.0));
        let inner_w = WIDTH_PX - 2.0 * MARGIN_PX;
        let scale = (inner_w / w_m).min((MAX_HEIGHT_PX - 2.0 * MARGIN_PX) / h_m);
        let drawing_bottom = HEADER_PX + h_m * scale + 2.0 * MARGIN_PX;
        Layout {
            proj,
            canvas: Canvas {
                scale,
                left: MARGIN_PX + (inner_w - w_m * scale) / 2.0 - min_x * scale,
                top: HEADER_PX + MARGIN_PX + max_y * scale,
            },
            width_m: w_m,
            drawing_bottom,
            height: drawing_bottom + LEGEND_PX,
        }
    }

    fn px(&self, lat: f64, lon: f64) -> (f64, f64) {
        self.canvas.px(self.proj.xy(lat, lon))
    }
}

// Writing to a String cannot fail, so the `fmt::Result`s below are discarded.

fn write_zones(s: &mut String, zones: &[ZoneDrawing], at: &Layout) {
    const BUFFER_STYLE: &str = r##"fill="#fde68a" fill-opacity="0.18" stroke="#b45309" stroke-width="1.5" stroke-dasharray="8 5""##;
    const ZONE_STYLE: &str =
        r##"fill="#ef4444" fill-opacity="0.22" stroke="#b91c1c" stroke-width="1.5""##;
    let scale = at.canvas.scale;
    let _ = writeln!(s, r#"<g id="zones">"#);
    for z in zones {
        let (label_x, label_y) = match &z.outline {
            Outline::Circle { lat, lon, radius_m } => {
                let (cx, cy) = at.px(*lat, *lon);
                let _ = writeln!(
                    s,
                    r#"<circle class="buffer" cx="{cx:.1}" cy="{cy:.1}" r="{:.1}" {BUFFER_STYLE}/>"#,
                    (radius_m + z.buffer_m) * scale
                );
                let _ = writeln!(
                    s,
                    r#"<circle class="zone" cx="{cx:.1}" cy="{cy:.1}" r="{:.1}" {ZONE_STYLE}/>"#,
                    radius_m * scale
                );
                (cx, cy + radius_m * scale + 16.0)
            }
            Outline::Polygon(v) => {
                let ring = polygon_ring(&at.proj, v);
                let _ = writeln!(
                    s,
                    r#"<polygon class="buffer" points="{}" {BUFFER_STYLE}/>"#,
                    points_attr(&at.canvas, &buffer_outline(&ring, z.buffer_m))
                );
                let _ = writeln!(
                    s,
                    r#"<polygon class="zone" points="{}" {ZONE_STYLE}/>"#,
                    points_attr(&at.canvas, &ring)
                );
                let south = ring
                    .iter()
                    .copied()
                    .fold((0.0, f64::INFINITY), |a, p| if p.1 < a.1 { p } else { a });
                let (x, y) = at.canvas.px(south);
                (x, y + 16.0)
            }
        };
        let _ = writeln!(
            s,
            r##"<text class="zone-label" x="{label_x:.1}" y="{label_y:.1}" text-anchor="middle" fill="#7f1d1d">{}</text>"##,
            xml_escape(&z.label)
        );
    }
    let _ = writeln!(s, "</g>");
}

fn write_tracks(s: &mut String, tracks: &[Track], at: &Layout) {
    let _ = writeln!(s, r#"<g id="tracks">"#);
    for (i, t) in tracks.iter().enumerate() {
        let colour = TRACK_COLOURS[i % TRACK_COLOURS.len()];
        let pts: Vec<(f64, f64)> = t.points.iter().map(|p| at.proj.xy(p.lat, p.lon)).collect();
        let _ = writeln!(
            s,
            r#"<polyline class="track" points="{}" fill="none" stroke="{colour}" stroke-width="2" stroke-linejoin="round"><title>{}</title></polyline>"#,
            points_attr(&at.canvas, &pts),
            xml_escape(&t.tag)
        );
        for (p, xy) in t.points.iter().zip(&pts) {
            let (x, y) = at.canvas.px(*xy);
            let _ = writeln!(
                s,
                r#"<circle class="fix" cx="{x:.1}" cy="{y:.1}" r="2.5" fill="{colour}"><title>{}</title></circle>"#,
                xml_escape(&p.label)
            );
        }
    }
    let _ = writeln!(s, "</g>");
}

fn write_markers(s: &mut String, markers: &[Marker], at: &Layout) {
    let _ = writeln!(s, r#"<g id="alerts">"#);
    // Markers at the same place are fanned out so that each label stays readable.
    let mut at_place: HashMap<(i64, i64), usize> = HashMap::new();
    for m in markers {
        let (x, y) = at.px(m.lat, m.lon);
        let n = at_place
            .entry(((x * 10.0) as i64, (y * 10.0) as i64))
            .or_default();
        let dy = *n as f64 * 16.0;
        *n += 1;
        let colour = marker_colour(m.kind);
        let r = if m.kind == MarkerKind::OperatorOnly {
            5.0
        } else {
            8.0
        };
        // Labels go right of the marker unless they would run off the page.
        let label_w = CHAR_PX * m.label.chars().count() as f64;
        let (tx, anchor) = if x + 12.0 + label_w > WIDTH_PX - 4.0 {
            (x - 12.0, "end")
        } else {
            (x + 12.0, "start")
        };
        let label = xml_escape(&m.label);
        let _ = writeln!(
            s,
            r##"<g class="marker"><circle cx="{x:.1}" cy="{y:.1}" r="{r}" fill="{colour}" stroke="#ffffff" stroke-width="2"/><text x="{tx:.1}" y="{:.1}" text-anchor="{anchor}" fill="{colour}" font-weight="bold">{label}</text><title>{label}</title></g>"##,
            y + 4.0 + dy,
        );
    }
    let _ = writeln!(s, "</g>");
}

fn write_legend(s: &mut String, at: &Layout) {
    let ly = at.drawing_bottom + 20.0;
    let _ = writeln!(s, r#"<g id="legend">"#);
    let items: [(&str, MarkerKind); 5] = [
        ("warning SMS", MarkerKind::Sms(VictimAlert::Warning)),
        ("breach SMS", MarkerKind::Sms(VictimAlert::Breach)),
        ("all-clear SMS", MarkerKind::Sms(VictimAlert::AllClear)),
        ("tamper / silent SMS", MarkerKind::Sms(VictimAlert::Tamper)),
        ("operators only", MarkerKind::OperatorOnly),
    ];
    let mut x = MARGIN_PX;
    for (text, kind) in items {
        let _ = writeln!(
            s,
            r#"<circle cx="{:.1}" cy="{ly:.1}" r="6" fill="{}"/><text x="{:.1}" y="{:.1}">{text}</text>"#,
            x + 6.0,
            marker_colour(kind),
            x + 16.0,
            ly + 4.0
        );
        x += 32.0 + 7.0 * text.len() as f64;
    }
    let _ = writeln!(
        s,
        r##"<line x1="{x:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="#b45309" stroke-width="1.5" stroke-dasharray="8 5"/><text x="{:.1}" y="{:.1}">warning buffer</text>"##,
        x + 28.0,
        x + 34.0,
        ly + 4.0
    );
    let bar_m = scale_bar_m(at.width_m);
    let bar_px = bar_m * at.canvas.scale;
    let (bx, by) = (WIDTH_PX - MARGIN_PX - bar_px, ly + 20.0);
    let bar_label = if bar_m >= 1000.0 {
        format!("{} km", bar_m / 1000.0)
    } else {
        format!("{bar_m} m")
    };
    let _ = writeln!(
        s,
        r##"<g id="scale-bar"><line x1="{bx:.1}" y1="{by:.1}" x2="{:.1}" y2="{by:.1}" stroke="#111827" stroke-width="3"/><text x="{:.1}" y="{:.1}" text-anchor="middle">{bar_label}</text></g>"##,
        bx + bar_px,
        bx + bar_px / 2.0,
        by - 6.0
    );
    let _ = writeln!(s, "</g>");
}

/// Renders a picture as a standalone SVG document: a title, the zones (buffers dashed), the
/// tracks, the alert markers, a legend and a scale bar.
pub fn render(picture: &Picture) -> String {
    let at = Layout::of(picture);
    let height = at.height;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH_PX:.0}" height="{height:.0}" viewBox="0 0 {WIDTH_PX:.0} {height:.0}" font-family="Helvetica, Arial, sans-serif" font-size="12">"#
    );
    let title = xml_escape(&picture.title);
    let _ = writeln!(s, "<title>{title}</title>");
    let _ = writeln!(
        s,
        r##"<rect x="0" y="0" width="{WIDTH_PX:.0}" height="{height:.0}" fill="#f8fafc"/>"##
    );
    let _ = writeln!(
        s,
        r##"<text class="heading" x="{MARGIN_PX:.0}" y="22" font-size="16" font-weight="bold" fill="#111827">{title}</text>"##
    );
    write_zones(&mut s, &picture.zones, &at);
    write_tracks(&mut s, &picture.tracks, &at);
    write_markers(&mut s, &picture.markers, &at);
    write_legend(&mut s, &at);
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture() -> Picture {
        Picture {
            title: "a <test> & \"quotes\"".into(),
            zones: vec![
                ZoneDrawing {
                    label: "home (home)".into(),
                    outline: Outline::Circle {
                        lat: 51.5,
                        lon: -0.12,
                        radius_m: 150.0,
                    },
                    buffer_m: 500.0,
                },
                ZoneDrawing {
                    label: "school & yard".into(),
                    outline: Outline::Polygon(vec![
                        (51.51, -0.13),
                        (51.51, -0.125),
                        (51.513, -0.125),
                        (51.513, -0.13),
                    ]),
                    buffer_m: 200.0,
                },
            ],
            tracks: vec![Track {
                tag: "tag-1".into(),
                points: vec![
                    TrackPoint {
                        lat: 51.49,
                        lon: -0.12,
                        label: "+00:00".into(),
                    },
                    TrackPoint {
                        lat: 51.499,
                        lon: -0.12,
                        label: "+01:00".into(),
                    },
                ],
            }],
            markers: vec![
                Marker {
                    lat: 51.499,
                    lon: -0.12,
                    kind: MarkerKind::Sms(VictimAlert::Breach),
                    label: "BREACH +01:00".into(),
                },
                Marker {
                    lat: 51.499,
                    lon: -0.12,
                    kind: MarkerKind::OperatorOnly,
                    label: "breach_persisting <urgent>".into(),
                },
            ],
        }
    }

    #[test]
    fn writes_well_formed_svg_with_the_expected_elements() {
        let svg = render(&picture());
        let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "svg");
        assert_eq!(
            root.tag_name().namespace(),
            Some("http://www.w3.org/2000/svg")
        );
        let by_class = |class: &str| {
            doc.descendants()
                .filter(|n| n.attribute("class") == Some(class))
                .collect::<Vec<_>>()
        };
        let buffers = by_class("buffer");
        assert_eq!(buffers.len(), 2);
        assert!(
            buffers
                .iter()
                .all(|b| b.attribute("stroke-dasharray").is_some())
        );
        assert_eq!(buffers[0].tag_name().name(), "circle");
        assert_eq!(buffers[1].tag_name().name(), "polygon");
        let zones = by_class("zone");
        assert_eq!(zones.len(), 2);
        assert!(
            zones
                .iter()
                .all(|z| z.attribute("stroke-dasharray").is_none())
        );
        // The buffer circle is the zone's radius plus its buffer.
        let r = |n: &roxmltree::Node| n.attribute("r").unwrap().parse::<f64>().unwrap();
        assert!((r(&buffers[0]) / r(&zones[0]) - 650.0 / 150.0).abs() < 0.01);
        assert_eq!(by_class("track").len(), 1);
        assert_eq!(by_class("fix").len(), 2);
        assert_eq!(by_class("marker").len(), 2);
        let title = root.children().find(|n| n.has_tag_name("title")).unwrap();
        assert_eq!(title.text(), Some("a <test> & \"quotes\""));
        let labels: Vec<&str> = by_class("zone-label")
            .iter()
            .filter_map(|n| n.text())
            .collect();
        assert_eq!(labels, ["home (home)", "school & yard"]);
        assert!(
            doc.descendants()
                .any(|n| n.attribute("id") == Some("scale-bar"))
        );
    }

    #[test]
    fn polygon_buffer_outline_is_at_the_buffer_distance() {
        let square = vec![(0.0, 0.0), (100.0, 0.0), (100.0, 100.0), (0.0, 100.0)];
        // An L whose notch (90 x 60 m) is far smaller than the buffer: the outline must still
        // be exactly the buffer distance from the shape everywhere.
        let l = vec![
            (0.0, 0.0),
            (160.0, 0.0),
            (160.0, 70.0),
            (70.0, 70.0),
            (70.0, 130.0),
            (0.0, 130.0),
        ];
        for (ring, b) in [(square.clone(), 20.0), (l.clone(), 300.0), (l, 15.0)] {
            let out = buffer_outline(&ring, b);
            assert_eq!(out.len(), 360);
            for &p in &out {
                assert!((distance_to_ring(p, &ring) - b).abs() < 1e-6, "{p:?}");
            }
        }
        assert_eq!(buffer_outline(&square, 0.0), square);
    }

    #[test]
    fn escapes_xml() {
        assert_eq!(xml_escape("a<b>&'\"\u{1}"), "a&lt;b&gt;&amp;&apos;&quot;");
    }
}
