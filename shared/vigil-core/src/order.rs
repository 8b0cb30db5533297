//! Protection orders: the offender's tag, the victim and how they are told, and the policy.

use crate::ids::{DeviceId, ForceId, OrderId, TagId, VictimId, ZoneId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A phone number in E.164 form: `+`, a country code and 7 to 15 digits in all.
///
/// Its `Debug` and `Display` show only the country code and last two digits, so that a number
/// printed by accident in a log is not a victim's number; [`PhoneNumber::e164`] gives it whole.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneNumber(String);

/// Why a phone number was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "phone number must be E.164: '+', a country code, 7 to 15 digits in all, no spaces (e.g. +447700900123)"
)]
pub struct PhoneError;

impl PhoneNumber {
    /// Checks and wraps an E.164 number.
    pub fn new(s: impl Into<String>) -> Result<Self, PhoneError> {
        let s = s.into();
        let digits = s.strip_prefix('+').ok_or(PhoneError)?;
        let ok = (7..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if ok { Ok(Self(s)) } else { Err(PhoneError) }
    }

    /// The full number, for the SMS gateway only.
    pub fn e164(&self) -> &str {
        &self.0
    }

    /// The emergency number where this phone is registered (by country code): 999 in the
    /// UK, 911 in North America, 112 elsewhere in Europe and as a default.
    pub fn emergency_number(&self) -> &'static str {
        let d = &self.0[1..];
        if d.starts_with("44") {
            "999"
        } else if d.starts_with('1') {
            "911"
        } else if d.starts_with("61") {
            "000"
        } else {
            "112"
        }
    }

    /// Whether the number belongs to one of `countries` (ISO 3166 alpha-2 codes, e.g. `GB`),
    /// judged by its calling code. A code Vigil does not know allows nothing.
    pub fn in_countries(&self, countries: &[String]) -> bool {
        countries
            .iter()
            .any(|c| calling_code(c).is_some_and(|code| self.0[1..].starts_with(code)))
    }

    /// The number with all but the country code's first digits and the last two hidden.
    pub fn redacted(&self) -> String {
        let n = self.0.len();
        format!("{}…{}", &self.0[..3], &self.0[n - 2..])
    }
}

/// The international calling code of a country Vigil may be deployed in (ISO 3166 alpha-2,
/// case-insensitive). North America shares `1`.
pub fn calling_code(country: &str) -> Option<&'static str> {
    Some(match country.to_ascii_uppercase().as_str() {
        "GB" | "GG" | "JE" | "IM" => "44",
        "IE" => "353",
        "ES" => "34",
        "FR" => "33",
        "DE" => "49",
        "NL" => "31",
        "BE" => "32",
        "PT" => "351",
        "IT" => "39",
        "SE" => "46",
        "NO" => "47",
        "DK" => "45",
        "AU" => "61",
        "NZ" => "64",
        "US" | "CA" => "1",
        _ => return None,
    })
}

impl TryFrom<String> for PhoneNumber {
    type Error = PhoneError;
    fn try_from(s: String) -> Result<Self, PhoneError> {
        Self::new(s)
    }
}

impl From<PhoneNumber> for String {
    fn from(p: PhoneNumber) -> String {
        p.0
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.redacted())
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// The languages Vigil has victim message templates for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// English.
    En,
    /// Spanish.
    Es,
    /// French.
    Fr,
    /// German.
    De,
}

impl Language {
    /// Every language with templates.
    pub const ALL: [Language; 4] = [Language::En, Language::Es, Language::Fr, Language::De];
}

/// The protected person, as far as alerting needs to know them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Victim {
    /// Their id.
    pub victim_id: VictimId,
    /// Where SMS go.
    pub phone: PhoneNumber,
    /// Which templates they get.
    pub language: Language,
}

/// How alerts for one order behave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrderPolicy {
    /// The court allows telling the victim the offender's position.
    pub reveal_offender_position: bool,
    /// The same victim message level is not repeated within this many seconds.
    pub cooldown_s: u64,
    /// A breach lasting this long goes to the operators as urgent.
    pub escalate_breach_after_s: u64,
    /// A new breach within this many seconds of the previous one goes as urgent.
    pub repeat_breach_window_s: u64,
    /// Tell the victim when the strap is tampered with.
    pub notify_victim_on_tamper: bool,
    /// A late fix (older than the newest one seen) may still text the victim if it is at most
    /// this many seconds older; beyond it only operators hear.
    pub late_fix_victim_window_s: u64,
    /// An alert reaches the victim only if the alert function handles it within this many
    /// seconds of the server receiving the tag's message; an older one (a queue backlog, a
    /// redrive from the dead-letter queue) goes to operators only, marked late.
    pub max_event_age_s: u64,
    /// At most this many victim SMS per rolling hour (server time); at the cap operators are
    /// paged instead. Bounds what any tag, or anyone holding its key, can make the victim
    /// receive, and this order's share of the account's SMS budget.
    pub max_victim_sms_per_hour: u32,
    /// At most this many victim SMS per rolling 24 hours (server time).
    pub max_victim_sms_per_day: u32,
    /// How often the tag (and her device) report while every zone is clear, seconds: what
    /// they are told after pursuit ends (docs/PROXIMITY.md, pursuit mode).
    pub report_interval_s: u32,
    /// How often they report while any zone of the order is at WARNING or BREACH, seconds.
    pub pursuit_report_interval_s: u32,
    /// No message from the tag for longer than this is silence, seconds (docs/WATCHDOG.md).
    pub silence_limit_s: u32,
    /// Messages but no usable fix for longer than this is "no GPS", seconds.
    pub no_gps_limit_s: u32,
    /// The victim is told of silence (or no GPS) when the tag's last fix was within this
    /// distance beyond the warning buffer of one of her zones, metres.
    pub silent_victim_distance_m: f64,
    /// A strap tamper not restored within this many seconds is raised again to operators
    /// (urgent), seconds.
    pub tamper_grace_s: u32,
    /// A low battery not charged within this many seconds is raised to operators, seconds.
    pub battery_low_grace_s: u32,
    /// An urgent operator alert not acknowledged within this many seconds of being sent is
    /// sent again as `unacknowledged` (docs/WATCHDOG.md, escalation).
    pub ack_within_s: u32,
    /// While still not acknowledged, it is sent again every this many seconds.
    pub renotify_every_s: u32,
    /// Adaptive reporting (docs/WIRE_FORMAT.md): the tag may batch its fixes while far from
    /// every zone. On unless the order says not (a force's choice): an operator's change that
    /// a window does not know of ends it within the watchdog's minute. Written only when off,
    /// so an order written before it was on by default reads as on.
    #[serde(skip_serializing_if = "is_true")]
    pub adaptive_reporting: bool,
}

impl Default for OrderPolicy {
    fn default() -> Self {
        Self {
            reveal_offender_position: false,
            cooldown_s: 15 * 60,
            escalate_breach_after_s: 5 * 60,
            repeat_breach_window_s: 60 * 60,
            notify_victim_on_tamper: true,
            late_fix_victim_window_s: 10 * 60,
            max_event_age_s: 10 * 60,
            max_victim_sms_per_hour: 6,
            max_victim_sms_per_day: 20,
            report_interval_s: 60,
            pursuit_report_interval_s: 15,
            silence_limit_s: 5 * 60,
            no_gps_limit_s: 10 * 60,
            silent_victim_distance_m: 2_000.0,
            tamper_grace_s: 5 * 60,
            battery_low_grace_s: 30 * 60,
            ack_within_s: 5 * 60,
            renotify_every_s: 5 * 60,
            adaptive_reporting: true,
        }
    }
}

fn is_true(b: &bool) -> bool {
    *b
}

impl OrderPolicy {
    /// Highest per-hour cap an order may set: a victim is never sent more than this.
    pub const MAX_SMS_PER_HOUR_LIMIT: u32 = 12;
    /// Highest per-day cap an order may set.
    pub const MAX_SMS_PER_DAY_LIMIT: u32 = 48;

    /// Checks values an operator sets; fails naming the field and its bounds.
    pub fn check(&self) -> Result<(), String> {
        let range = |field: &str, v: u64, min: u64, max: u64| {
            if (min..=max).contains(&v) {
                Ok(())
            } else {
                Err(format!(
                    "policy.{field} is {v}; it must be between {min} and {max}"
                ))
            }
        };
        range("cooldown_s", self.cooldown_s, 0, 24 * 3600)?;
        range(
            "escalate_breach_after_s",
            self.escalate_breach_after_s,
            0,
            24 * 3600,
        )?;
        range(
            "repeat_breach_window_s",
            self.repeat_breach_window_s,
            0,
            7 * 24 * 3600,
        )?;
        range(
            "late_fix_victim_window_s",
            self.late_fix_victim_window_s,
            0,
            3600,
        )?;
        range("max_event_age_s", self.max_event_age_s, 30, 3600)?;
        range(
            "max_victim_sms_per_hour",
            u64::from(self.max_victim_sms_per_hour),
            1,
            u64::from(Self::MAX_SMS_PER_HOUR_LIMIT),
        )?;
        range(
            "max_victim_sms_per_day",
            u64::from(self.max_victim_sms_per_day),
            u64::from(self.max_victim_sms_per_hour),
            u64::from(Self::MAX_SMS_PER_DAY_LIMIT),
        )?;
        range(
            "report_interval_s",
            u64::from(self.report_interval_s),
            5,
            3600,
        )?;
        // Pursuit is faster than normal, and never below what a tag's battery and the
        // per-fix cost can sustain for hours.
        range(
            "pursuit_report_interval_s",
            u64::from(self.pursuit_report_interval_s),
            5,
            u64::from(self.report_interval_s),
        )?;
        // The watchdog runs once a minute: limits under two minutes would call a tag that
        // reports once a minute silent after one lost message.
        range(
            "silence_limit_s",
            u64::from(self.silence_limit_s),
            120,
            24 * 3600,
        )?;
        range(
            "no_gps_limit_s",
            u64::from(self.no_gps_limit_s),
            120,
            24 * 3600,
        )?;
        range(
            "tamper_grace_s",
            u64::from(self.tamper_grace_s),
            60,
            24 * 3600,
        )?;
        range(
            "battery_low_grace_s",
            u64::from(self.battery_low_grace_s),
            60,
            7 * 24 * 3600,
        )?;
        // The watchdog looks once a minute: a shorter time could not be kept.
        range("ack_within_s", u64::from(self.ack_within_s), 60, 3600)?;
        range(
            "renotify_every_s",
            u64::from(self.renotify_every_s),
            60,
            3600,
        )?;
        let d = self.silent_victim_distance_m;
        if d.is_finite() && (0.0..=50_000.0).contains(&d) {
            Ok(())
        } else {
            Err(format!(
                "policy.silent_victim_distance_m is {d}; it must be between 0 and 50000 metres"
            ))
        }
    }
}

/// An order's moving zone, as the order sets it: she carries a device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VictimZoneTerms {
    /// Radius of the circle around her position, metres.
    pub radius_m: f64,
    /// Warning buffer around the circle, metres.
    pub buffer_m: f64,
    /// A position (hers or his) older than this, by the server's clock, stops counting.
    pub max_position_age_s: u64,
    /// Two positions further apart in time than this are not compared.
    pub pair_window_s: u64,
}

impl Default for VictimZoneTerms {
    fn default() -> Self {
        VictimZoneTerms {
            radius_m: 500.0,
            buffer_m: 1_000.0,
            max_position_age_s: 300,
            pair_window_s: 120,
        }
    }
}

impl VictimZoneTerms {
    /// Checks values an operator sets; fails naming the field and its bounds.
    pub fn check(&self) -> Result<(), String> {
        let metres = |field: &str, v: f64, min: f64, max: f64| {
            if v.is_finite() && (min..=max).contains(&v) {
                Ok(())
            } else {
                Err(format!(
                    "victim_zone.{field} is {v}; it must be between {min} and {max} metres"
                ))
            }
        };
        let seconds = |field: &str, v: u64, min: u64, max: u64| {
            if (min..=max).contains(&v) {
                Ok(())
            } else {
                Err(format!(
                    "victim_zone.{field} is {v}; it must be between {min} and {max} seconds"
                ))
            }
        };
        metres("radius_m", self.radius_m, 50.0, 5_000.0)?;
        metres("buffer_m", self.buffer_m, 0.0, 10_000.0)?;
        seconds("max_position_age_s", self.max_position_age_s, 30, 3_600)?;
        seconds(
            "pair_window_s",
            self.pair_window_s,
            10,
            self.max_position_age_s,
        )
    }
}

/// Her own device, as an order knows it: which device, and the zone around it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VictimDevice {
    /// The device (its AWS IoT thing name).
    pub device_id: DeviceId,
    /// The moving zone's settings.
    #[serde(default)]
    pub zone: VictimZoneTerms,
}

/// What the offender-facing side (ingest) knows of an order: its validity and policy, never
/// the victim. Ingest's decisions take these terms, so the offender side cannot even construct
/// victim data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderTerms {
    /// The order.
    pub order_id: OrderId,
    /// The force the order belongs to (docs/FORCES.md); absent on orders written before forces
    /// existed, until `vigil admin migrate-forces` gives them one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_id: Option<ForceId>,
    /// In force from; at once when absent.
    #[serde(default)]
    pub valid_from: Option<DateTime<Utc>>,
    /// In force until (exclusive); for ever when absent.
    #[serde(default)]
    pub valid_until: Option<DateTime<Utc>>,
    /// Escalation and alert settings.
    #[serde(default)]
    pub policy: OrderPolicy,
    /// The victim's own device and the zone around it, when she carries one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub victim_device: Option<VictimDevice>,
}

impl OrderTerms {
    /// Whether the order is in force at `at_ms` (Unix milliseconds).
    pub fn in_force(&self, at_ms: i64) -> bool {
        self.valid_from
            .is_none_or(|t| at_ms >= t.timestamp_millis())
            && self
                .valid_until
                .is_none_or(|t| at_ms < t.timestamp_millis())
    }
}

/// A court's protection order: one offender (by tag), one victim, their zones and the policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtectionOrder {
    /// The order's id.
    pub order_id: OrderId,
    /// The offender's tag.
    pub tag_id: TagId,
    /// The force the order belongs to (docs/FORCES.md): its operators alone see and change it.
    /// Absent on orders written before forces existed, until `vigil admin migrate-forces`
    /// gives them one (until then only national administrators see them; they protect as
    /// before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_id: Option<ForceId>,
    /// The protected person.
    pub victim: Victim,
    /// The zones that protect this victim from this offender.
    #[serde(default)]
    pub zone_ids: Vec<ZoneId>,
    /// The order is in force from this instant; at once when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<DateTime<Utc>>,
    /// The order ends at this instant; never when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<DateTime<Utc>>,
    /// Alert behaviour.
    #[serde(default)]
    pub policy: OrderPolicy,
    /// The victim's own device and the zone around it (`crate::proximity`), when she carries
    /// one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub victim_device: Option<VictimDevice>,
}

impl ProtectionOrder {
    /// The order's terms: everything but the victim.
    pub fn terms(&self) -> OrderTerms {
        OrderTerms {
            order_id: self.order_id.clone(),
            force_id: self.force_id.clone(),
            valid_from: self.valid_from,
            valid_until: self.valid_until,
            policy: self.policy.clone(),
            victim_device: self.victim_device.clone(),
        }
    }

    /// Whether the order is in force at `at_ms` (Unix milliseconds).
    pub fn in_force(&self, at_ms: i64) -> bool {
        self.terms().in_force(at_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adaptive_reporting_is_on_by_default_and_an_order_turning_it_off_keeps_it_off() {
        assert!(OrderPolicy::default().adaptive_reporting);
        let default = serde_json::to_value(OrderPolicy::default()).unwrap();
        assert!(default.get("adaptive_reporting").is_none(), "{default}");
        let off = OrderPolicy {
            adaptive_reporting: false,
            ..OrderPolicy::default()
        };
        let text = serde_json::to_string(&off).unwrap();
        assert!(text.contains(r#""adaptive_reporting":false"#), "{text}");
        let back: OrderPolicy = serde_json::from_str(&text).unwrap();
        assert!(!back.adaptive_reporting);
        let unsaid: OrderPolicy = serde_json::from_str("{}").unwrap();
        assert!(unsaid.adaptive_reporting);
    }

    #[test]
    fn e164_numbers() {
        assert!(PhoneNumber::new("+447700900123").is_ok());
        for bad in [
            "447700900123",
            "+44 7700 900123",
            "+0447700900",
            "+12345",
            "+1234567890123456",
            "+44770090012a",
        ] {
            assert_eq!(PhoneNumber::new(bad), Err(PhoneError), "{bad}");
        }
    }

    #[test]
    fn phone_numbers_never_print_whole() {
        let p = PhoneNumber::new("+447700900123").unwrap();
        assert_eq!(format!("{p}"), "+44…23");
        assert!(!format!("{p:?}").contains("7700900"));
        assert_eq!(p.e164(), "+447700900123");
    }

    #[test]
    fn destination_countries() {
        let uk = PhoneNumber::new("+447700900123").unwrap();
        let es = PhoneNumber::new("+34600123456").unwrap();
        let gb = vec!["GB".to_owned()];
        assert!(uk.in_countries(&gb));
        assert!(!es.in_countries(&gb));
        assert!(es.in_countries(&["gb".to_owned(), "ES".to_owned()]));
        assert!(!uk.in_countries(&["XX".to_owned()]));
        assert!(!uk.in_countries(&[]));
    }

    #[test]
    fn emergency_numbers_by_country() {
        let e = |n: &str| PhoneNumber::new(n).unwrap().emergency_number();
        assert_eq!(e("+447700900123"), "999");
        assert_eq!(e("+34600123456"), "112");
        assert_eq!(e("+12025550123"), "911");
        assert_eq!(e("+33612345678"), "112");
    }

    #[test]
    fn order_json_and_validity() {
        let o: ProtectionOrder = serde_json::from_str(
            r#"{"order_id":"o1","tag_id":"t1",
            "victim":{"victim_id":"v1","phone":"+447700900123","language":"es"},
            "valid_until":"2026-01-01T00:00:00Z","policy":{"cooldown_s":60}}"#,
        )
        .unwrap();
        assert_eq!(o.victim.language, Language::Es);
        assert_eq!(o.policy.cooldown_s, 60);
        assert!(!o.policy.reveal_offender_position);
        assert!(o.in_force(0));
        assert!(
            !o.in_force(
                DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
                    .unwrap()
                    .timestamp_millis()
            )
        );
        let e = serde_json::from_str::<ProtectionOrder>(
            r#"{"order_id":"o1","tag_id":"t1",
            "victim":{"victim_id":"v1","phone":"07700900123","language":"en"}}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("E.164"), "{e}");
        let e = serde_json::from_str::<ProtectionOrder>(
            r#"{"order_id":"o1","tag_id":"t1",
            "victim":{"victim_id":"v1","phone":"+447700900123","language":"xx"}}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown variant"), "{e}");
    }
}
