//! What operators write, typed and checked: orders ([`OrderSpec`]) with their victims and
//! zones, zones (`vigil_core::ZoneSpec`, checked by [`check_zone`]), GeoJSON polygons, ids,
//! dates, validity windows, time zones and languages. Every error names the field that was
//! wrong and says what to write instead; nothing here reads a file or a terminal, so the CLI
//! and the console API check input with the same code.

use crate::error::{AdminError, Result};
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::Value;
use vigil_core::{
    Language, OrderId, OrderPolicy, PhoneNumber, ProtectionOrder, TagId, Victim, VictimId, Zone,
    ZoneId, ZoneSpec,
};

/// An order as operators write it (a file, flags or a request): the order, its time zone for
/// local dates and zone schedules, and optionally its zones.
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
    /// Language code; the force's default language when absent.
    #[serde(default)]
    pub language: Option<String>,
}

/// A checked order and its checked zones, ready to write.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedOrder {
    /// The order.
    pub order: ProtectionOrder,
    /// Its zones.
    pub zones: Vec<Zone>,
}

fn invalid(field: &str, problem: impl std::fmt::Display) -> AdminError {
    AdminError::Invalid(format!("{field}: {problem}"))
}

/// Deserializes typed input from any serde format (JSON here; the CLI adds YAML); the error
/// names the path of the field that is wrong, e.g. `victim.phone: invalid type`.
pub fn deserialize<'de, D, T>(de: D) -> Result<T, String>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." || path.is_empty() {
            e.inner().to_string()
        } else {
            format!("{path}: {}", e.inner())
        }
    })
}

/// Parses JSON text into `T`; the error names the field's path.
pub fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    deserialize(&mut serde_json::Deserializer::from_str(text))
}

/// Parses an order id.
///
/// Fails with [`AdminError::Invalid`] saying what an id may hold.
pub fn order_id(text: &str) -> Result<OrderId> {
    OrderId::new(text).map_err(|e| AdminError::Invalid(format!("order id: {e}")))
}

/// Parses a tag id.
///
/// Fails with [`AdminError::Invalid`] saying what an id may hold.
pub fn tag_id(text: &str) -> Result<TagId> {
    TagId::new(text).map_err(|e| AdminError::Invalid(format!("tag id: {e}")))
}

/// Parses a zone id.
///
/// Fails with [`AdminError::Invalid`] saying what an id may hold.
pub fn zone_id(text: &str) -> Result<ZoneId> {
    ZoneId::new(text).map_err(|e| AdminError::Invalid(format!("zone id: {e}")))
}

/// Parses an IANA time zone name.
///
/// Fails with [`AdminError::Invalid`] naming `field` when it is not one.
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
/// Fails with [`AdminError::Invalid`] naming `field` when the text is none of these, when a
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
///
/// Fails with [`AdminError::Invalid`] naming `what` (`order`, `zone`) otherwise.
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

impl OrderSpec {
    /// Checks everything (ids, E.164 phone, language, time zone, dates, zones) and builds the
    /// order and its zones; nothing is written.
    ///
    /// Fails with [`AdminError::Invalid`] naming the first field that is wrong.
    pub fn check(&self) -> Result<CheckedOrder> {
        self.check_with(None)
    }

    /// As [`OrderSpec::check`], with `language` for a victim whose spec names none (the
    /// order's force's default).
    ///
    /// Fails with [`AdminError::Invalid`] naming the first field that is wrong.
    pub fn check_with_default_language(&self, language: Language) -> Result<CheckedOrder> {
        self.check_with(Some(language))
    }

    fn check_with(&self, default_language: Option<Language>) -> Result<CheckedOrder> {
        let order_id = OrderId::new(&self.order_id).map_err(|e| invalid("order_id", e))?;
        let tag_id = TagId::new(&self.tag_id).map_err(|e| invalid("tag_id", e))?;
        let victim_id =
            VictimId::new(&self.victim.victim_id).map_err(|e| invalid("victim.victim_id", e))?;
        let phone = PhoneNumber::new(self.victim.phone.as_str()).map_err(|e| {
            // The number itself is never echoed: it is a victim's.
            invalid("victim.phone", e)
        })?;
        let language = match (&self.victim.language, default_language) {
            (Some(code), _) => parse_language(code)?,
            (None, Some(default)) => default,
            (None, None) => {
                return Err(invalid(
                    "victim.language",
                    "missing: give the victim's language (en, es, fr, de)",
                ));
            }
        };
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
                .map_err(|e| AdminError::Invalid(format!("zones[{i}]: {e}")))?;
            zones.push(zone);
        }
        let order = ProtectionOrder {
            force_id: None,
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
            // Set with her device's registration (docs/PROXIMITY.md), not by the order file.
            victim_device: None,
        };
        Ok(CheckedOrder { order, zones })
    }
}

/// Parses a language code Vigil has templates for.
///
/// Fails with [`AdminError::Invalid`] listing the supported codes.
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
    let spec: ZoneSpec = parse_json(&z.to_string())?;
    fixed_zone(spec)
}

/// A fixed zone from its specification: everything `vigil_core` checks, and neither the
/// moving zone's reserved id nor its kind (the moving zone is the order's `victim_zone`,
/// around her device, never a place).
fn fixed_zone(spec: ZoneSpec) -> std::result::Result<Zone, String> {
    if spec.zone_id.as_str() == vigil_core::proximity::VICTIM_ZONE_ID {
        return Err(format!(
            "zone id {:?} is reserved for the zone around the victim's own device (the order's victim_zone)",
            spec.zone_id.as_str()
        ));
    }
    if spec.kind == vigil_core::ZoneKind::VictimLocation {
        return Err(
            "kind victim_location is the zone around the victim's own device: set the order's victim_zone instead"
                .to_owned(),
        );
    }
    Zone::new(spec).map_err(|e| e.to_string())
}

/// Checks a zone specification: its schedule's time zone, then everything `vigil_core`
/// checks (id, coordinates, radius or polygon, buffer, schedule windows, validity).
///
/// Fails with [`AdminError::Invalid`] saying what is wrong with it.
pub fn check_zone(spec: ZoneSpec) -> Result<Zone> {
    if let Some(s) = &spec.schedule {
        parse_time_zone("schedule.time_zone", &s.time_zone)?;
    }
    fixed_zone(spec).map_err(AdminError::Invalid)
}

/// The polygon ring (`[lon, lat]` pairs) of a GeoJSON document: a Polygon geometry, a Feature
/// with one, a MultiPolygon of one polygon, or a FeatureCollection with exactly one polygon.
///
/// Fails with [`AdminError::Invalid`] for other geometries, several polygons, or holes.
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
        parse_json(json).unwrap()
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
    fn the_moving_zone_is_never_a_fixed_zone() {
        let with =
            |from: &str, to: &str| spec(&OK.replace(from, to)).check().unwrap_err().to_string();
        let e = with("\"zone_id\":\"home\"", "\"zone_id\":\"victim-device\"");
        assert!(e.contains("reserved") && e.contains("victim_zone"), "{e}");
        let e = with("\"kind\":\"home\"", "\"kind\":\"victim_location\"");
        assert!(
            e.contains("victim_location") && e.contains("victim_zone"),
            "{e}"
        );
        let z: ZoneSpec = serde_json::from_value(serde_json::json!({
            "zone_id": "victim-device", "order_id": "o1", "buffer_m": 100,
            "circle": {"lat": 51.5, "lon": -0.12, "radius_m": 100}
        }))
        .unwrap();
        assert!(check_zone(z).unwrap_err().to_string().contains("reserved"));
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
