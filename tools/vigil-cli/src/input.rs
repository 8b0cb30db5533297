//! Reading what operators write: order and zone files (JSON or YAML), GeoJSON polygons,
//! dates, time zones and weekly schedules given as flags. Every error says which field was
//! wrong and what to write instead.

use crate::error::{CliError, Result};
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::Value;
use std::path::Path;
use vigil_core::zone::{ScheduleSpec, WindowSpec};
use vigil_core::{
    Language, OrderId, OrderPolicy, PhoneNumber, ProtectionOrder, TagId, Victim, VictimId, Zone,
    ZoneSpec,
};

/// An order as operators write it (file or flags): the order, its time zone for local dates and
/// zone schedules, and optionally its zones.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderSpec {
    /// The order's id.
    pub order_id: String,
    /// The offender's tag.
    pub tag_id: String,
    /// The protected person: `victim_id`, `phone` (E.164), `language` (en, es, fr, de).
    pub victim: VictimSpec,
    /// IANA time zone (e.g. `Europe/London`): dates without an offset are local to it, and it
    /// is the default time zone of the zones' schedules.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// In force from: RFC 3339 (`2026-01-01T00:00:00Z`), or a local date or date-time.
    #[serde(default)]
    pub valid_from: Option<String>,
    /// In force until (exclusive), as `valid_from`.
    #[serde(default)]
    pub valid_until: Option<String>,
    /// Alert behaviour; defaults when absent.
    #[serde(default)]
    pub policy: OrderPolicy,
    /// Zones to create with the order (zone JSON; `orders` defaults to this order, a schedule's
    /// `time_zone` to the order's).
    #[serde(default)]
    pub zones: Vec<Value>,
}

/// The victim as written; checked into [`Victim`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VictimSpec {
    /// Their id.
    pub victim_id: String,
    /// E.164 phone number.
    pub phone: String,
    /// Language code.
    pub language: String,
}

/// A checked order and its checked zones, ready to write.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedOrder {
    /// The order.
    pub order: ProtectionOrder,
    /// Its zones.
    pub zones: Vec<Zone>,
}

fn invalid(field: &str, problem: impl std::fmt::Display) -> CliError {
    CliError::Invalid(format!("{field}: {problem}"))
}

/// Parses an IANA time zone name.
///
/// Fails with [`CliError::Invalid`] naming `field` when it is not one.
pub fn parse_time_zone(field: &str, name: &str) -> Result<Tz> {
    name.parse().map_err(|_| {
        invalid(
            field,
            format!(
                "{name:?} is not an IANA time zone name like Europe/London or America/New_York"
            ),
        )
    })
}

/// Parses an instant: RFC 3339 with an offset (`2026-03-01T09:00:00Z`), or, with `tz`, a local
/// date-time (`2026-03-01T09:00`) or date (`2026-03-01`, meaning its midnight) in that zone.
///
/// Fails with [`CliError::Invalid`] naming `field` when the text is none of these, when a
/// local time is given without a time zone, or when it does not exist there (a DST gap).
pub fn parse_instant(field: &str, text: &str, tz: Option<Tz>) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let local = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M"))
        .or_else(|_| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d").map(|d| d.and_time(Default::default()))
        })
        .map_err(|_| {
            invalid(
                field,
                format!(
                    "{text:?} is not a date: use RFC 3339 like 2026-03-01T09:00:00Z, or a local \
                     2026-03-01T09:00 or 2026-03-01 with a time zone"
                ),
            )
        })?;
    let tz = tz.ok_or_else(|| {
        invalid(
            field,
            format!(
                "{text:?} has no UTC offset: add one (e.g. {text}Z) or give the order's time zone"
            ),
        )
    })?;
    tz.from_local_datetime(&local)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| {
            invalid(
                field,
                format!("{text} does not exist in {tz} (clocks change)"),
            )
        })
}

/// Checks that `until` is after `from` when both are given.
pub fn check_validity(
    what: &str,
    from: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> Result<()> {
    match (from, until) {
        (Some(f), Some(u)) if u <= f => Err(invalid(
            what,
            format!("valid_until {u} must be after valid_from {f}"),
        )),
        _ => Ok(()),
    }
}

/// Reads a JSON or YAML file (by extension: `.yaml`/`.yml` is YAML, anything else JSON) into
/// `T`, with the path of a bad field in the message.
///
/// Fails with [`CliError::Io`] if the file cannot be read, [`CliError::Invalid`] if it does not
/// parse or a field is wrong.
pub fn read_spec<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path)
        .map_err(CliError::io(format!("reading {}", path.display())))?;
    let yaml = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    parse_spec(&text, yaml).map_err(|e| CliError::Invalid(format!("{}: {e}", path.display())))
}

/// Parses JSON or YAML text into `T`; the error names the field's path.
pub fn parse_spec<T: serde::de::DeserializeOwned>(text: &str, yaml: bool) -> Result<T, String> {
    if yaml {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| describe(e.path().to_string(), e.inner()))
    } else {
        let mut de = serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(&mut de)
            .map_err(|e| describe(e.path().to_string(), e.inner()))
    }
}

fn describe(path: String, e: &dyn std::fmt::Display) -> String {
    if path == "." || path.is_empty() {
        e.to_string()
    } else {
        format!("{path}: {e}")
    }
}

impl OrderSpec {
    /// Checks everything (ids, E.164 phone, language, time zone, dates, zones) and builds the
    /// order and its zones; nothing is written.
    ///
    /// Fails with [`CliError::Invalid`] naming the first field that is wrong.
    pub fn check(&self) -> Result<CheckedOrder> {
        let order_id = OrderId::new(&self.order_id).map_err(|e| invalid("order_id", e))?;
        let tag_id = TagId::new(&self.tag_id).map_err(|e| invalid("tag_id", e))?;
        let victim_id =
            VictimId::new(&self.victim.victim_id).map_err(|e| invalid("victim.victim_id", e))?;
        let phone = PhoneNumber::new(self.victim.phone.as_str()).map_err(|e| {
            // The number itself is never echoed: it is a victim's.
            invalid("victim.phone", e)
        })?;
        let language = parse_language(&self.victim.language)?;
        let tz = self
            .time_zone
            .as_deref()
            .map(|t| parse_time_zone("time_zone", t))
            .transpose()?;
        let valid_from = self
            .valid_from
            .as_deref()
            .map(|t| parse_instant("valid_from", t, tz))
            .transpose()?;
        let valid_until = self
            .valid_until
            .as_deref()
            .map(|t| parse_instant("valid_until", t, tz))
            .transpose()?;
        check_validity("order", valid_from, valid_until)?;
        let mut zones = Vec::new();
        for (i, z) in self.zones.iter().enumerate() {
            let zone = zone_in_order(z, &order_id, self.time_zone.as_deref())
                .map_err(|e| CliError::Invalid(format!("zones[{i}]: {e}")))?;
            zones.push(zone);
        }
        let order = ProtectionOrder {
            order_id,
            tag_id,
            victim: Victim {
                victim_id,
                phone,
                language,
            },
            zone_ids: zones.iter().map(|z| z.id().clone()).collect(),
            valid_from,
            valid_until,
            policy: self.policy.clone(),
        };
        Ok(CheckedOrder { order, zones })
    }
}

/// Parses a language code Vigil has templates for.
///
/// Fails with [`CliError::Invalid`] listing the supported codes.
pub fn parse_language(code: &str) -> Result<Language> {
    serde_json::from_value(Value::String(code.to_ascii_lowercase())).map_err(|_| {
        let known: Vec<String> = Language::ALL
            .iter()
            .map(|l| {
                serde_json::to_value(l)
                    .expect("language serializes")
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        invalid(
            "victim.language",
            format!(
                "{code:?} has no message templates; supported: {}",
                known.join(", ")
            ),
        )
    })
}

fn zone_in_order(
    z: &Value,
    order_id: &OrderId,
    tz: Option<&str>,
) -> std::result::Result<Zone, String> {
    let mut z = z.clone();
    let obj = z.as_object_mut().ok_or("a zone must be an object")?;
    let owner = obj
        .entry("order_id")
        .or_insert_with(|| Value::from(order_id.as_str()));
    if owner.as_str() != Some(order_id.as_str()) {
        return Err(format!(
            "the zone names order_id {owner} but is listed under order {order_id}: a zone belongs to the order that lists it"
        ));
    }
    if let (Some(tz), Some(schedule)) = (tz, obj.get_mut("schedule").and_then(Value::as_object_mut))
    {
        schedule
            .entry("time_zone")
            .or_insert_with(|| Value::from(tz));
    }
    let spec: ZoneSpec = parse_spec(&z.to_string(), false)?;
    Zone::new(spec).map_err(|e| e.to_string())
}

/// Checks a zone specification.
///
/// Fails with [`CliError::Invalid`] saying what is wrong with it.
pub fn check_zone(spec: ZoneSpec) -> Result<Zone> {
    if let Some(s) = &spec.schedule {
        parse_time_zone("schedule.time_zone", &s.time_zone)?;
    }
    Zone::new(spec).map_err(|e| CliError::Invalid(e.to_string()))
}

/// Parses a circle flag `LAT,LON,RADIUS_M`, e.g. `51.5,-0.12,150`.
///
/// Fails with [`CliError::Invalid`] when it is not three numbers.
pub fn parse_circle(text: &str) -> Result<(f64, f64, f64)> {
    let parts: Vec<f64> = text
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| {
            invalid(
                "--circle",
                format!("{text:?} is not LAT,LON,RADIUS_M (e.g. 51.5,-0.12,150)"),
            )
        })?;
    match parts[..] {
        [lat, lon, r] => Ok((lat, lon, r)),
        _ => Err(invalid(
            "--circle",
            format!("{text:?} is not LAT,LON,RADIUS_M (e.g. 51.5,-0.12,150)"),
        )),
    }
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Parses a schedule window flag: `DAYS HH:MM-HH:MM`, where DAYS is a comma list of days and
/// day ranges (`mon-fri`, `sat,sun`, `mon,wed-fri`); an end before the start runs past
/// midnight. E.g. `mon-fri 08:00-18:00`, `fri,sat 22:00-06:00`.
///
/// Fails with [`CliError::Invalid`] showing the expected form.
pub fn parse_window(text: &str) -> Result<WindowSpec> {
    let bad = || {
        invalid(
            "--schedule",
            format!("{text:?} is not DAYS HH:MM-HH:MM (e.g. \"mon-fri 08:00-18:00\")"),
        )
    };
    let (days, hours) = text.trim().split_once(' ').ok_or_else(bad)?;
    let (start, end) = hours.trim().split_once('-').ok_or_else(bad)?;
    let day_index = |d: &str| {
        DAYS.iter()
            .position(|x| x.eq_ignore_ascii_case(d.trim()))
            .ok_or_else(bad)
    };
    let mut out = Vec::new();
    for part in days.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day_index(a)?, day_index(b)?);
                let mut i = a;
                loop {
                    out.push(DAYS[i].to_owned());
                    if i == b {
                        break;
                    }
                    i = (i + 1) % 7;
                }
            }
            None => out.push(DAYS[day_index(part)?].to_owned()),
        }
    }
    Ok(WindowSpec {
        days: out,
        start: start.trim().to_owned(),
        end: end.trim().to_owned(),
    })
}

/// Builds a schedule from window flags and a time zone.
///
/// Fails with [`CliError::Invalid`] when windows are given without a time zone or the time
/// zone is unknown.
pub fn schedule(windows: &[String], tz: Option<&str>) -> Result<Option<ScheduleSpec>> {
    if windows.is_empty() {
        return Ok(None);
    }
    let tz = tz.ok_or_else(|| {
        invalid(
            "--time-zone",
            "a schedule needs the time zone its hours are in (e.g. --time-zone Europe/London)",
        )
    })?;
    parse_time_zone("--time-zone", tz)?;
    Ok(Some(ScheduleSpec {
        time_zone: tz.to_owned(),
        windows: windows
            .iter()
            .map(|w| parse_window(w))
            .collect::<Result<_>>()?,
    }))
}

/// The polygon ring (`[lon, lat]` pairs) of a GeoJSON document: a Polygon geometry, a Feature
/// with one, a MultiPolygon of one polygon, or a FeatureCollection with exactly one polygon.
///
/// Fails with [`CliError::Invalid`] for other geometries, several polygons, or holes.
pub fn geojson_ring(doc: &Value) -> Result<Vec<[f64; 2]>> {
    let bad = |m: String| invalid("GeoJSON", m);
    let kind = doc.get("type").and_then(Value::as_str).unwrap_or("");
    let coords = match kind {
        "FeatureCollection" => {
            let features = doc
                .get("features")
                .and_then(Value::as_array)
                .ok_or_else(|| bad("FeatureCollection has no features list".into()))?;
            if features.len() != 1 {
                return Err(bad(format!(
                    "FeatureCollection has {} features; export the one zone alone",
                    features.len()
                )));
            }
            return geojson_ring(&features[0]);
        }
        "Feature" => {
            let geometry = doc
                .get("geometry")
                .ok_or_else(|| bad("Feature has no geometry".into()))?;
            return geojson_ring(geometry);
        }
        "Polygon" => doc.get("coordinates").cloned(),
        "MultiPolygon" => {
            let polys = doc
                .get("coordinates")
                .and_then(Value::as_array)
                .ok_or_else(|| bad("MultiPolygon has no coordinates".into()))?;
            if polys.len() != 1 {
                return Err(bad(format!(
                    "MultiPolygon has {} polygons; a zone is one polygon: add one zone each",
                    polys.len()
                )));
            }
            Some(polys[0].clone())
        }
        other => {
            return Err(bad(format!(
                "geometry {other:?} is not a Polygon (use --circle for a point and radius)"
            )));
        }
    };
    let rings: Vec<Vec<[f64; 2]>> = coords
        .and_then(|c| serde_json::from_value::<Vec<Vec<Vec<f64>>>>(c).ok())
        .ok_or_else(|| bad("polygon coordinates are not [[[lon, lat], ...]]".into()))?
        .into_iter()
        .map(|ring| {
            ring.into_iter()
                .map(|p| match p[..] {
                    [lon, lat, ..] => Ok([lon, lat]),
                    _ => Err(bad("a position needs [lon, lat]".into())),
                })
                .collect()
        })
        .collect::<Result<_>>()?;
    match rings.len() {
        1 => Ok(rings.into_iter().next().expect("one ring")),
        0 => Err(bad("polygon has no ring".into())),
        n => Err(bad(format!(
            "polygon has {} holes; Vigil zones have none (split it into zones)",
            n - 1
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> OrderSpec {
        parse_spec(json, false).unwrap()
    }

    const OK: &str = r#"{"order_id":"o1","tag_id":"t1","time_zone":"Europe/London",
        "victim":{"victim_id":"v1","phone":"+447700900123","language":"es"},
        "valid_from":"2026-03-29","valid_until":"2027-01-01T00:00:00Z",
        "zones":[{"zone_id":"home","kind":"home","circle":{"lat":51.5,"lon":-0.12,"radius_m":100},
                  "buffer_m":500,"schedule":{"windows":[{"days":["mon"],"start":"08:00","end":"18:00"}]}}]}"#;

    #[test]
    fn a_good_order_checks_with_local_dates_and_defaults() {
        let c = spec(OK).check().unwrap();
        assert_eq!(c.order.victim.language, Language::Es);
        // 29 March 2026 is the first day of BST: midnight local is still GMT.
        assert_eq!(
            c.order.valid_from.unwrap().to_rfc3339(),
            "2026-03-29T00:00:00+00:00"
        );
        assert_eq!(c.zones[0].order_id(), &OrderId::new("o1").unwrap());
        assert_eq!(
            c.zones[0].spec().schedule.as_ref().unwrap().time_zone,
            "Europe/London"
        );
        assert_eq!(c.order.zone_ids, [vigil_core::ZoneId::new("home").unwrap()]);
    }

    #[test]
    fn yaml_reads_the_same() {
        let yaml = "order_id: o1\ntag_id: t1\nvictim:\n  victim_id: v1\n  phone: \"+447700900123\"\n  language: en\n";
        let s: OrderSpec = parse_spec(yaml, true).unwrap();
        assert!(s.check().is_ok());
        let e = parse_spec::<OrderSpec>("order_id: o1\ntag_id: t1\nvictim:\n  phone: 1\n", true)
            .unwrap_err();
        assert!(e.contains("victim"), "{e}");
    }

    #[test]
    fn errors_name_the_field_and_never_echo_the_phone() {
        let with =
            |from: &str, to: &str| spec(&OK.replace(from, to)).check().unwrap_err().to_string();
        let e = with("+447700900123", "07700 900123");
        assert!(
            e.starts_with("victim.phone: ") && e.contains("E.164"),
            "{e}"
        );
        assert!(!e.contains("07700 900123"), "{e}");
        let e = with("\"es\"", "\"pt\"");
        assert!(
            e.contains("victim.language") && e.contains("en, es, fr, de"),
            "{e}"
        );
        let e = with("Europe/London", "Europe/Londres");
        assert!(e.contains("time_zone") && e.contains("IANA"), "{e}");
        let e = with("2026-03-29", "29/03/2026");
        assert!(e.contains("valid_from") && e.contains("RFC 3339"), "{e}");
        let e = with("2027-01-01T00:00:00Z", "2025-01-01T00:00:00Z");
        assert!(e.contains("must be after"), "{e}");
        let e = with("\"radius_m\":100", "\"radius_m\":-1");
        assert!(e.contains("zones[0]") && e.contains("radius_m"), "{e}");
        let e = spec(&OK.replace(",\"time_zone\":\"Europe/London\"", ""))
            .check()
            .unwrap_err()
            .to_string();
        assert!(e.contains("no UTC offset"), "{e}");
    }

    #[test]
    fn windows_and_circles() {
        let w = parse_window("mon-fri 08:00-18:00").unwrap();
        assert_eq!(w.days, ["mon", "tue", "wed", "thu", "fri"]);
        let w = parse_window("sat-mon 22:00-06:00").unwrap();
        assert_eq!(w.days, ["sat", "sun", "mon"]);
        assert!(parse_window("weekdays 8-6").is_err());
        assert_eq!(
            parse_circle("51.5, -0.12, 150").unwrap(),
            (51.5, -0.12, 150.0)
        );
        assert!(parse_circle("51.5,-0.12").is_err());
        assert!(schedule(&["mon 08:00-09:00".into()], None).is_err());
        assert!(schedule(&["mon 08:00-09:00".into()], Some("Mars/Olympus")).is_err());
    }

    #[test]
    fn geojson_shapes() {
        let poly = serde_json::json!({"type":"Polygon","coordinates":[[[0.0,51.0],[0.01,51.0],[0.01,51.01],[0.0,51.0]]]});
        assert_eq!(geojson_ring(&poly).unwrap().len(), 4);
        let fc = serde_json::json!({"type":"FeatureCollection","features":[{"type":"Feature","properties":{},"geometry":poly}]});
        assert_eq!(geojson_ring(&fc).unwrap().len(), 4);
        let holed = serde_json::json!({"type":"Polygon","coordinates":[[[0.0,51.0],[1.0,51.0],[1.0,52.0]],[[0.1,51.1],[0.2,51.1],[0.2,51.2]]]});
        assert!(
            geojson_ring(&holed)
                .unwrap_err()
                .to_string()
                .contains("holes")
        );
        let point = serde_json::json!({"type":"Point","coordinates":[0.0,51.0]});
        assert!(
            geojson_ring(&point)
                .unwrap_err()
                .to_string()
                .contains("--circle")
        );
    }
}
