//! The police forces one deployment serves (docs/FORCES.md): their settings as the deployment
//! configures them (`infra/forces.json`; at run time the parameter `/vigil/<stage>/forces`,
//! which adds each force's operators' topic), and where each force's area is, for routing an
//! urgent event to the police who can respond where it happens.
//!
//! Who may see and change which force's records is `vigil-admin`'s rule (`access`); this
//! module only knows the forces.

use crate::ids::ForceId;
use crate::order::Language;
use geo::{Contains, Coord, LineString, Point, Polygon};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The scope name of national administrators: never a force's id.
pub const NATIONAL: &str = "national";

/// The most points a force's area may have (a published boundary simplified for routing).
pub const MAX_AREA_POINTS: usize = 5_000;

/// One force's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForceConfig {
    /// Its id, the force every record of it names.
    pub id: ForceId,
    /// Its name, for people.
    pub name: String,
    /// The alphanumeric sender id of its victims' SMS; the deployment's when absent.
    #[serde(default)]
    pub sms_sender_id: Option<String>,
    /// Its victims' language when an order names none.
    pub default_language: Language,
    /// How long its audit chains and evidence are kept, in years.
    pub audit_retention_years: u32,
    /// Its area (a GeoJSON Polygon), for routing urgent events by place.
    #[serde(default)]
    pub area: Option<Area>,
    /// Its operators' topic (in the run-time document; the CDK app adds it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operators_topic_arn: Option<String>,
}

/// A force's area: a GeoJSON Polygon with one ring of `[lon, lat]` points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Area {
    /// Always `Polygon`.
    #[serde(rename = "type")]
    pub kind: String,
    /// One ring (holes are not used for routing).
    pub coordinates: Vec<Vec<[f64; 2]>>,
}

impl Area {
    fn polygon(&self) -> Result<Polygon<f64>, String> {
        if self.kind != "Polygon" {
            return Err(format!("area type is {:?}; it must be Polygon", self.kind));
        }
        let [ring] = self.coordinates.as_slice() else {
            return Err(format!(
                "area has {} rings; it must have one (the outline)",
                self.coordinates.len()
            ));
        };
        if ring.len() < 4 || ring.len() > MAX_AREA_POINTS {
            return Err(format!(
                "area has {} points; it must have 4 to {MAX_AREA_POINTS} (closed: the first point again at the end)",
                ring.len()
            ));
        }
        if ring.first() != ring.last() {
            return Err("area is not closed: its last point must equal its first".into());
        }
        if let Some([lon, lat]) = ring.iter().find(|[lon, lat]| {
            !(lon.is_finite() && lat.is_finite() && lon.abs() <= 180.0 && lat.abs() <= 90.0)
        }) {
            return Err(format!(
                "area point [{lon}, {lat}] is not a WGS84 [lon, lat]"
            ));
        }
        let line: LineString<f64> = ring.iter().map(|[x, y]| Coord { x: *x, y: *y }).collect();
        Ok(Polygon::new(line, vec![]))
    }
}

/// The forces of a deployment, checked.
#[derive(Debug, Clone)]
pub struct Forces {
    default_force: ForceId,
    forces: Vec<(ForceConfig, Option<Polygon<f64>>)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    #[serde(rename = "$comment", default)]
    _comment: Option<String>,
    default_force: ForceId,
    forces: Vec<ForceConfig>,
}

/// Why a forces document cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("forces configuration: {0}")]
pub struct ForcesError(pub String);

impl Forces {
    /// Reads and checks a forces document (`infra/forces.json`, or the run-time parameter).
    ///
    /// Fails naming the force and the field: unknown fields, no forces, a duplicate or reserved
    /// id, a default force that is not listed, a sender id, retention or area out of range.
    pub fn parse(json: &str) -> Result<Forces, ForcesError> {
        let doc: Document = serde_json::from_str(json).map_err(|e| ForcesError(e.to_string()))?;
        Forces::new(doc.default_force, doc.forces)
    }

    /// Checks forces given as values (tests, the local harness).
    ///
    /// Fails as [`Forces::parse`] does.
    pub fn new(default_force: ForceId, forces: Vec<ForceConfig>) -> Result<Forces, ForcesError> {
        if forces.is_empty() {
            return Err(ForcesError(
                "no forces: a deployment serves at least one".into(),
            ));
        }
        let mut seen = BTreeSet::new();
        let mut checked = Vec::new();
        for f in forces {
            let bad = |what: String| ForcesError(format!("force {}: {what}", f.id));
            if f.id.as_str() == NATIONAL {
                return Err(bad(format!(
                    "{NATIONAL:?} is reserved for national administrators"
                )));
            }
            if !seen.insert(f.id.clone()) {
                return Err(bad("listed twice".into()));
            }
            if f.name.trim().is_empty() || f.name.len() > 200 {
                return Err(bad("name must be 1-200 characters".into()));
            }
            if let Some(s) = &f.sms_sender_id {
                let ok = (3..=11).contains(&s.len())
                    && s.chars().all(|c| c.is_ascii_alphanumeric())
                    && s.chars().any(|c| c.is_ascii_alphabetic());
                if !ok {
                    return Err(bad(format!(
                        "sms_sender_id {s:?} must be 3-11 letters and digits with at least one letter"
                    )));
                }
            }
            if !(1..=100).contains(&f.audit_retention_years) {
                return Err(bad(format!(
                    "audit_retention_years {} must be 1-100",
                    f.audit_retention_years
                )));
            }
            let polygon = f
                .area
                .as_ref()
                .map(Area::polygon)
                .transpose()
                .map_err(bad)?;
            checked.push((f, polygon));
        }
        if !seen.contains(&default_force) {
            return Err(ForcesError(format!(
                "default_force {default_force} is not one of the forces"
            )));
        }
        Ok(Forces {
            default_force,
            forces: checked,
        })
    }

    /// The force records without one are migrated to (`vigil admin migrate-forces`).
    pub fn default_force(&self) -> &ForceId {
        &self.default_force
    }

    /// The settings of `id`, if the deployment serves it.
    pub fn get(&self, id: &ForceId) -> Option<&ForceConfig> {
        self.forces.iter().map(|(f, _)| f).find(|f| &f.id == id)
    }

    /// Every force, in the configured order.
    pub fn iter(&self) -> impl Iterator<Item = &ForceConfig> {
        self.forces.iter().map(|(f, _)| f)
    }

    /// How long `force` keeps its audit and evidence, in years (`None` for no force, or one
    /// the deployment does not serve).
    pub fn retention_years(&self, force: Option<&ForceId>) -> Option<u32> {
        force
            .and_then(|f| self.get(f))
            .map(|f| f.audit_retention_years)
    }

    /// The forces whose area holds the point (an outline's edge counts as outside; areas of
    /// neighbouring forces share edges).
    pub fn containing(&self, lat: f64, lon: f64) -> Vec<&ForceId> {
        let point = Point::new(lon, lat);
        self.forces
            .iter()
            .filter(|(_, p)| p.as_ref().is_some_and(|p| p.contains(&point)))
            .map(|(f, _)| &f.id)
            .collect()
    }

    /// The forces other than `own` whose area holds the point: where an urgent event of a
    /// force's order is also routed.
    pub fn others_at(&self, own: Option<&ForceId>, lat: f64, lon: f64) -> Vec<ForceId> {
        self.containing(lat, lon)
            .into_iter()
            .filter(|f| Some(*f) != own)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../../infra/forces.json");

    fn force(id: &str) -> ForceConfig {
        ForceConfig {
            id: ForceId::new(id).unwrap(),
            name: format!("Force {id}"),
            sms_sender_id: None,
            default_language: Language::En,
            audit_retention_years: 7,
            area: None,
            operators_topic_arn: None,
        }
    }

    #[test]
    fn the_shipped_forces_parse_and_route_london_to_the_met() {
        let forces = Forces::parse(SHIPPED).unwrap();
        assert_eq!(forces.default_force().as_str(), "met");
        // Westminster is the Met's; Reading is Thames Valley's; Paris is nobody's.
        let ids = |lat, lon| -> Vec<String> {
            forces
                .containing(lat, lon)
                .iter()
                .map(|f| f.to_string())
                .collect()
        };
        assert_eq!(ids(51.4995, -0.1248), ["met"]);
        assert_eq!(ids(51.4543, -0.9781), ["tvp"]);
        assert!(ids(48.8566, 2.3522).is_empty());
        let met = ForceId::new("met").unwrap();
        assert_eq!(
            forces.others_at(Some(&met), 51.4543, -0.9781),
            [ForceId::new("tvp").unwrap()]
        );
        assert!(forces.others_at(Some(&met), 51.4995, -0.1248).is_empty());
    }

    #[test]
    fn bad_configurations_name_the_force_and_field() {
        let err = |default: &str, forces: Vec<ForceConfig>| {
            Forces::new(ForceId::new(default).unwrap(), forces)
                .unwrap_err()
                .to_string()
        };
        assert!(err("a", vec![]).contains("no forces"));
        assert!(err("a", vec![force("a"), force("a")]).contains("force a: listed twice"));
        assert!(err("national", vec![force("national")]).contains("reserved"));
        assert!(err("b", vec![force("a")]).contains("default_force b"));
        let mut f = force("a");
        f.sms_sender_id = Some("12345".into());
        assert!(err("a", vec![f]).contains("sms_sender_id"));
        let mut f = force("a");
        f.audit_retention_years = 0;
        assert!(err("a", vec![f]).contains("audit_retention_years"));
        let area = |ring: Vec<[f64; 2]>| Area {
            kind: "Polygon".into(),
            coordinates: vec![ring],
        };
        let mut f = force("a");
        f.area = Some(area(vec![[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 0.5]]));
        assert!(err("a", vec![f]).contains("not closed"));
        let mut f = force("a");
        f.area = Some(area(vec![[0.0, 0.0], [1.0, 0.0], [0.0, 95.0], [0.0, 0.0]]));
        assert!(err("a", vec![f]).contains("WGS84"));
        let mut f = force("a");
        f.area = Some(area(vec![[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]]));
        assert!(err("a", vec![f]).contains("4 to"));
        assert!(
            Forces::parse(r#"{"default_force":"a","forces":[],"extra":1}"#)
                .unwrap_err()
                .to_string()
                .contains("extra")
        );
    }
}
