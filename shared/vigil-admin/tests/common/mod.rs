//! What the forces tests share: an order spec with two zones (one expired), and a caller.

use vigil_admin::input::parse_json;
use vigil_admin::{Caller, Operator, OrderSpec};

/// An order of `tag` for `victim` with a home zone at `lat` (valid to 2030) and an expired one.
pub fn spec(order: &str, tag: &str, victim: &str, phone: &str, lat: f64) -> OrderSpec {
    parse_json(&format!(
        r#"{{"order_id":"{order}","tag_id":"{tag}",
        "victim":{{"victim_id":"{victim}","phone":"{phone}"}},
        "zones":[{{"zone_id":"home","circle":{{"lat":{lat},"lon":-0.12,"radius_m":100}},"buffer_m":500,
                   "valid_until":"2030-01-01T00:00:00Z"}},
                 {{"zone_id":"old","circle":{{"lat":{lat},"lon":-0.2,"radius_m":100}},"buffer_m":500,
                   "valid_until":"2020-01-02T00:00:00Z"}}]}}"#
    ))
    .unwrap()
}

/// A caller named `name` acting for `scope` (a force's id, or `national`).
pub fn caller(name: &str, scope: &str) -> Caller {
    Caller::new(
        Operator::Local(name.into()),
        vigil_admin::Scope::parse(scope).unwrap(),
    )
}
