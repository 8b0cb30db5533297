//! What commands return: a value for `--json` and a human rendering.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

/// A command's result: [`Serialize`] gives the `--json` form, [`Report::human`] the default.
pub trait Report: Serialize {
    /// The human-readable form, ending without a newline.
    fn human(&self) -> String;
}

/// An instant as RFC 3339 UTC with milliseconds, e.g. `2026-03-01T09:00:00.000Z`.
pub fn rfc3339_ms(at_ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(at_ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| format!("{at_ms} ms"))
}

/// An optional instant for tables, `-` when absent.
pub fn or_dash(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || "-".to_owned(),
        |t| t.to_rfc3339_opts(SecondsFormat::Secs, true),
    )
}

/// A plain message, e.g. "zone home removed".
#[derive(Debug, Clone, Serialize)]
pub struct Done {
    /// What was done.
    pub message: String,
}

impl Report for Done {
    fn human(&self) -> String {
        self.message.clone()
    }
}
