//! What commands return: a value for `--json` and a human rendering, for the CLI's own
//! results and for vigil-admin's views of orders, zones and alerts.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use vigil_admin::alerts::{Acknowledged, Acknowledgement, AlertView};
use vigil_admin::orders::OrderView;
use vigil_admin::zones::ZoneView;
use vigil_core::OrderId;
use vigil_core::ZoneShape;
use vigil_core::escalation::Unacknowledged;

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

/// A tag's (or device's) quarantined messages.
#[derive(Debug, Serialize)]
pub struct Quarantined {
    /// The tag id or `device:<id>`.
    pub key: String,
    /// Its records, oldest first.
    pub records: Vec<vigil_aws::ports::QuarantineRecord>,
}

impl Report for Quarantined {
    fn human(&self) -> String {
        if self.records.is_empty() {
            return format!("nothing in quarantine for {}", self.key);
        }
        let mut out = format!(
            "{} message(s) in quarantine for {}:",
            self.records.len(),
            self.key
        );
        for r in &self.records {
            out.push_str(&format!(
                "\n{}  {}  {}",
                rfc3339_ms(r.received_at_ms),
                r.reason,
                r.detail
            ));
        }
        out
    }
}

impl Report for vigil_admin::forces::Migrated {
    fn human(&self) -> String {
        let c = &self.changed;
        let mut out = format!(
            "gave force {} to {} order(s), {} tag(s), {} device(s) that had none",
            self.force,
            c.orders.len(),
            c.tags.len(),
            c.devices.len()
        );
        if c.orders.is_empty() && c.tags.is_empty() && c.devices.is_empty() {
            out.push_str(" (nothing to migrate)");
        }
        out
    }
}

impl Report for vigil_admin::forces::Transferred {
    fn human(&self) -> String {
        if self.orders.is_empty() {
            return format!("the case is of force {} already: nothing moved", self.to);
        }
        let moved: Vec<String> = self.orders.iter().map(|(o, _)| o.to_string()).collect();
        format!(
            "moved to force {}: tag {}, order(s) {}, {} device(s); each order's chain records it",
            self.to,
            self.tag_id,
            moved.join(", "),
            self.devices.len()
        )
    }
}

/// A field of an order view's JSON as text (`-` for null).
fn field(order: &OrderView, path: &[&str]) -> String {
    let mut v = &order.order;
    for p in path {
        v = &v[*p];
    }
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

impl Report for OrderView {
    fn human(&self) -> String {
        format!(
            "order     {}\ntag       {}\nvictim    {} phone {} language {}\nvalid     {} .. {}{}\nzones     {}\npolicy    {}",
            field(self, &["order_id"]),
            field(self, &["tag_id"]),
            field(self, &["victim", "victim_id"]),
            field(self, &["victim", "phone"]),
            field(self, &["victim", "language"]),
            field(self, &["valid_from"]),
            field(self, &["valid_until"]),
            if self.in_force {
                " (in force)"
            } else {
                " (not in force)"
            },
            if self.zones.is_empty() {
                "-".to_owned()
            } else {
                self.zones.join(", ")
            },
            self.order["policy"],
        )
    }
}

/// Many orders.
#[derive(Debug, Clone, Serialize)]
pub struct OrderList {
    /// The orders.
    pub orders: Vec<OrderView>,
}

impl Report for OrderList {
    fn human(&self) -> String {
        if self.orders.is_empty() {
            return "no orders".into();
        }
        let rows: Vec<[String; 5]> = self
            .orders
            .iter()
            .map(|o| {
                [
                    field(o, &["order_id"]),
                    field(o, &["tag_id"]),
                    if o.in_force { "yes" } else { "no" }.to_owned(),
                    field(o, &["valid_until"]),
                    field(o, &["victim", "phone"]),
                ]
            })
            .collect();
        table(
            ["ORDER", "TAG", "IN FORCE", "VALID UNTIL", "PHONE"],
            &rows,
            &[],
        )
    }
}

/// Many zones.
#[derive(Debug, Clone, Serialize)]
pub struct ZoneList {
    /// The zones.
    pub zones: Vec<ZoneView>,
}

impl Report for ZoneView {
    fn human(&self) -> String {
        ZoneList {
            zones: vec![self.clone()],
        }
        .human()
    }
}

impl Report for ZoneList {
    fn human(&self) -> String {
        if self.zones.is_empty() {
            return "no zones".into();
        }
        let rows: Vec<[String; 8]> = self
            .zones
            .iter()
            .map(|z| {
                let kind = serde_json::to_value(z.zone.kind).expect("kind serializes");
                let shape = match &z.zone.shape {
                    ZoneShape::Circle { radius_m, .. } => format!("circle r={radius_m} m"),
                    ZoneShape::Polygon(ring) => format!("polygon {} pts", ring.len()),
                };
                [
                    z.zone.order_id.to_string(),
                    z.zone.zone_id.to_string(),
                    kind.as_str().unwrap_or_default().to_owned(),
                    shape,
                    format!("{} m", z.zone.buffer_m),
                    z.cells.to_string(),
                    if z.in_force { "yes" } else { "no" }.to_owned(),
                    or_dash(z.zone.valid_until),
                ]
            })
            .collect();
        table(
            [
                "ORDER",
                "ZONE",
                "KIND",
                "SHAPE",
                "BUFFER",
                "CELLS",
                "IN FORCE",
                "VALID UNTIL",
            ],
            &rows,
            &[4, 5],
        )
    }
}

/// The open alerts.
#[derive(Debug, Clone, Serialize)]
pub struct AlertList {
    /// The alerts, by order and zone.
    pub alerts: Vec<AlertView>,
}

impl Report for AlertList {
    fn human(&self) -> String {
        if self.alerts.is_empty() {
            return "no open alerts".into();
        }
        let rows: Vec<[String; 6]> = self
            .alerts
            .iter()
            .map(|a| {
                let level = serde_json::to_value(a.alert.level).expect("level serializes");
                [
                    level.as_str().unwrap_or_default().to_uppercase(),
                    a.alert.order_id.to_string(),
                    a.alert.zone_id.to_string(),
                    a.alert.tag_id.to_string(),
                    a.alert.since_ms.map_or_else(|| "-".into(), rfc3339_ms),
                    a.acknowledged_by.as_deref().unwrap_or("no").to_owned(),
                ]
            })
            .collect();
        table(
            ["LEVEL", "ORDER", "ZONE", "TAG", "SINCE", "ACKNOWLEDGED"],
            &rows,
            &[],
        )
    }
}

/// `vigil alerts unacked`: an order's urgent alerts nobody acknowledged.
#[derive(Debug, Serialize)]
pub struct Unacked {
    /// The order.
    pub order_id: OrderId,
    /// Oldest first.
    pub alerts: Vec<Unacknowledged>,
}

impl Report for Unacked {
    fn human(&self) -> String {
        if self.alerts.is_empty() {
            return format!("order {}: every urgent alert acknowledged", self.order_id);
        }
        let rows: Vec<[String; 5]> = self
            .alerts
            .iter()
            .map(|a| {
                [
                    a.event_id.clone(),
                    a.kinds.first().cloned().unwrap_or_default(),
                    a.zone_id
                        .as_ref()
                        .map_or_else(|| "-".into(), ToString::to_string),
                    rfc3339_ms(a.notified_at_ms),
                    a.renotified.to_string(),
                ]
            })
            .collect();
        table(["EVENT", "KIND", "ZONE", "TOLD", "SENT AGAIN"], &rows, &[])
    }
}

impl Report for Acknowledgement {
    fn human(&self) -> String {
        format!(
            "acknowledged {} ({}) by {}: audit record {}; covers {}",
            self.order_id,
            self.scope,
            self.record.detail["operator"].as_str().unwrap_or_default(),
            self.record.seq,
            if self.covers.is_empty() {
                "nothing unacknowledged".to_owned()
            } else {
                self.covers.join(", ")
            }
        )
    }
}

impl Report for Acknowledged {
    fn human(&self) -> String {
        format!(
            "acknowledged {}/{} ({:?}) by {}: audit record {} ({})",
            self.alert.order_id,
            self.alert.zone_id,
            self.alert.level,
            self.record.detail["operator"].as_str().unwrap_or_default(),
            self.record.seq,
            &self.record.hash[..12],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_shows_the_victims_phone_masked_unless_revealed() {
        let order = vigil_testkit::order();
        let zones = [vigil_testkit::home_zone()];
        let now = Utc::now();
        let view = OrderView::new(&order, &zones, false, now);
        assert!(!view.human().contains("7700900123"), "{}", view.human());
        assert!(
            OrderView::new(&order, &zones, true, now)
                .human()
                .contains("+447700900123")
        );
        let list = OrderList { orders: vec![view] }.human();
        assert!(!list.contains("7700900123"), "{list}");
    }

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
