//! What the command line reads: order and zone files (JSON or YAML), the victim's phone from a
//! file or standard input, and the shape and schedule flags, turned into vigil-admin's typed
//! input ([`OrderSpec`], a checked [`Zone`]). Checking the input itself is vigil-admin's; the
//! errors here name the flag or file that was wrong.

use crate::args::{AddZone, CreateOrder};
use crate::error::{CliError, Result};
use serde_json::Value;
use std::path::Path;
use vigil_admin::OrderSpec;
use vigil_admin::input::{
    self as admin, VictimSpec, check_validity, check_zone, geojson_ring, order_id, parse_instant,
    parse_time_zone, zone_id,
};
use vigil_core::zone::{ScheduleSpec, WindowSpec, ZoneShape};
use vigil_core::{OrderPolicy, Zone, ZoneKind, ZoneSpec};

fn invalid(field: &str, problem: impl std::fmt::Display) -> CliError {
    CliError::Invalid(format!("{field}: {problem}"))
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
        admin::deserialize(serde_yaml_ng::Deserializer::from_str(text))
    } else {
        admin::parse_json(text)
    }
}

/// The victim's phone from `--phone-file` (`-`: standard input): the first line, trimmed.
///
/// Fails with [`CliError::Invalid`] when no file is given or its first line is empty,
/// [`CliError::Io`] when it cannot be read.
pub fn read_phone(path: Option<&Path>) -> Result<String> {
    let path = path.ok_or_else(|| {
        CliError::Invalid(
            "--phone-file is required without --file (a file, or - for standard input)".into(),
        )
    })?;
    let text = if path == Path::new("-") {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map_err(CliError::io(
            "reading the phone from standard input".to_owned(),
        ))?;
        line
    } else {
        std::fs::read_to_string(path)
            .map_err(CliError::io(format!("reading {}", path.display())))?
    };
    let phone = text.lines().next().unwrap_or_default().trim().to_owned();
    if phone.is_empty() {
        return Err(CliError::Invalid(format!(
            "--phone-file {}: no phone number on its first line",
            path.display()
        )));
    }
    Ok(phone)
}

/// The order `vigil orders create` was given: its `--file`, or its flags (the phone read from
/// `--phone-file`). Checking it is [`vigil_admin::orders::create_order`]'s.
///
/// Fails with [`CliError::Invalid`] naming a missing flag, or as [`read_spec`] and
/// [`read_phone`].
pub(crate) fn order_spec(c: &CreateOrder) -> Result<OrderSpec> {
    if let Some(f) = &c.file {
        return read_spec(f);
    }
    let need = |v: &Option<String>, flag: &str| {
        v.clone().ok_or_else(|| {
            CliError::Invalid(format!(
                "{flag} is required without --file (see `vigil orders create --help`)"
            ))
        })
    };
    Ok(OrderSpec {
        order_id: need(&c.order_id, "--order-id")?,
        tag_id: need(&c.tag, "--tag")?,
        victim: VictimSpec {
            victim_id: need(&c.victim_id, "--victim-id")?,
            phone: read_phone(c.phone_file.as_deref())?,
            language: c.language.clone(),
        },
        time_zone: c.time_zone.clone(),
        valid_from: c.valid_from.clone(),
        valid_until: c.valid_until.clone(),
        policy: OrderPolicy::default(),
        zones: vec![],
    })
}

/// The zone `vigil zones add` was given (its `--file`, or its flags), checked.
///
/// Fails with [`CliError::Invalid`] naming the flag or file that is wrong or missing, or what
/// is wrong with the zone.
pub(crate) fn zone_spec(a: &AddZone) -> Result<Zone> {
    if let Some(f) = &a.file {
        return Ok(check_zone(read_spec::<ZoneSpec>(f)?)?);
    }
    let zone_id = zone_id(
        a.zone_id
            .as_deref()
            .ok_or_else(|| CliError::Invalid("--zone-id is required without --file".into()))?,
    )?;
    let order_id = order_id(a.order.as_deref().ok_or_else(|| {
        CliError::Invalid("--order is required: every zone belongs to one order".into())
    })?)?;
    let shape = match (&a.circle, &a.geojson) {
        (Some(c), None) => {
            let (lat, lon, radius_m) = parse_circle(c)?;
            ZoneShape::Circle { lat, lon, radius_m }
        }
        (None, Some(path)) => {
            let doc: Value = read_spec(path)?;
            ZoneShape::Polygon(
                geojson_ring(&doc)
                    .map_err(|e| CliError::Invalid(format!("{}: {e}", path.display())))?,
            )
        }
        _ => {
            return Err(CliError::Invalid(
                "give the shape: --circle LAT,LON,RADIUS_M or --geojson FILE (or --file)".into(),
            ));
        }
    };
    let kind: ZoneKind = serde_json::from_value(Value::String(a.kind.clone())).map_err(|_| {
        CliError::Invalid(format!(
            "--kind {:?} is not one of home, work, school, other",
            a.kind
        ))
    })?;
    let tz = a
        .time_zone
        .as_deref()
        .map(|t| parse_time_zone("--time-zone", t))
        .transpose()?;
    let valid_from = a
        .valid_from
        .as_deref()
        .map(|t| parse_instant("--valid-from", t, tz))
        .transpose()?;
    let valid_until = a
        .valid_until
        .as_deref()
        .map(|t| parse_instant("--valid-until", t, tz))
        .transpose()?;
    check_validity("zone", valid_from, valid_until)?;
    Ok(check_zone(ZoneSpec {
        zone_id,
        kind,
        shape,
        buffer_m: a.buffer,
        schedule: schedule(&a.schedule, a.time_zone.as_deref())?,
        valid_from,
        valid_until,
        order_id,
    })?)
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
