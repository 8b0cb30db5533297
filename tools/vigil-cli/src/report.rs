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

/// A text table: each column as wide as its widest cell, two spaces between columns, cells
/// left-aligned except the columns named in `right` (numbers). The last column is not padded.
pub fn table<const N: usize>(headers: [&str; N], rows: &[[String; N]], right: &[usize]) -> String {
    let mut widths = headers.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            if i > 0 {
                text.push_str("  ");
            }
            if right.contains(&i) {
                text.push_str(&" ".repeat(pad));
                text.push_str(cell);
            } else {
                text.push_str(cell);
                if i + 1 < N {
                    text.push_str(&" ".repeat(pad));
                }
            }
        }
        text
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push('\n');
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_columns_line_up_whatever_the_cell_widths() {
        let rows = [
            ["o-1".to_owned(), "home".to_owned(), "6".to_owned()],
            [
                "an-order-id-longer-than-the-old-fixed-width".to_owned(),
                "é".to_owned(),
                "1234".to_owned(),
            ],
        ];
        let text = table(["ORDER", "ZONE", "CELLS"], &rows, &[2]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        // The second column starts at the same character on every line.
        let starts: Vec<usize> = lines
            .iter()
            .zip(["ZONE", "home", "é"])
            .map(|(l, cell)| l[..l.find(cell).unwrap()].chars().count())
            .collect();
        assert!(starts.iter().all(|&s| s == starts[0]), "{text}");
        // Numbers are right-aligned: every line ends at the same column.
        let ends: Vec<usize> = lines.iter().map(|l| l.chars().count()).collect();
        assert!(ends.iter().all(|&e| e == ends[0]), "{text}");
        assert!(lines[1].ends_with("     6"), "{text}");
    }
}
