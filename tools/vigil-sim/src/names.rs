//! How values are named in text: serde wire names and scenario offsets. Shared by the report,
//! the comparison, the demo and the SVG, and depending on none of them.

use serde::Serialize;
use vigil_core::{AlertLevel, VictimAlert};

/// The snake_case wire name of a serde enum value (`warning`, `sustained_exit`, ...).
pub fn serde_name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

/// The wire name of an alert level: `clear`, `warning` or `breach`.
pub fn level_name(level: AlertLevel) -> String {
    serde_name(&level)
}

/// The wire name of a victim alert: `warning`, `breach`, `all_clear`, `tag_silent`, `tamper`.
pub fn alert_name(alert: VictimAlert) -> String {
    serde_name(&alert)
}

/// A scenario offset as `+MM:SS`, or `+H:MM:SS` from an hour on; fractions of a second are
/// shown to the millisecond.
pub fn fmt_offset(at_s: f64) -> String {
    let sign = if at_s < 0.0 { "-" } else { "+" };
    let ms = (at_s.abs() * 1000.0).round() as i64;
    let (s, frac) = (ms / 1000, ms % 1000);
    let (h, m, s) = (s / 3600, (s / 60) % 60, s % 60);
    let frac = if frac == 0 {
        String::new()
    } else {
        format!(".{frac:03}")
    };
    if h > 0 {
        format!("{sign}{h}:{m:02}:{s:02}{frac}")
    } else {
        format!("{sign}{m:02}:{s:02}{frac}")
    }
}
