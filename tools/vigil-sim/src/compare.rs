//! Comparing what a run did with what its scenario expects; independent of the executor.
//!
//! - SMS: per phone, the expected levels in order against the levels sent in order. With
//!   `no_other_sms` the two sequences must be equal; without it the expected ones must appear
//!   in that order among the sent ones, and extra SMS are allowed. The failures reported are
//!   the fewest that explain the difference (a longest common subsequence).
//! - Operator events: each expected kind must occur at least as often as it is listed, in any
//!   order. A kind without a `:` part also matches the kinds that add one, so `fix_rejected`
//!   counts any `fix_rejected:<reason>`; exact kinds are matched first.

use crate::executor::Run;
use crate::names::{alert_name, fmt_offset};
use crate::scenario::Expectations;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use vigil_core::{OrderId, PhoneNumber, VictimAlert};

/// One way a run differs from its expectations.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "failure")]
pub enum Failure {
    /// An expected SMS was not sent.
    MissingSms {
        /// The phone (serialised redacted).
        #[serde(serialize_with = "redacted")]
        to: PhoneNumber,
        /// The level expected.
        level: VictimAlert,
        /// Its position among the SMS expected for this phone, from 1.
        nth: usize,
    },
    /// An SMS was sent that the scenario does not expect (only with `no_other_sms`).
    UnexpectedSms {
        /// The phone (serialised redacted).
        #[serde(serialize_with = "redacted")]
        to: PhoneNumber,
        /// The level sent.
        level: VictimAlert,
        /// When, seconds after the start.
        at_s: f64,
        /// The order it was sent under.
        order_id: OrderId,
    },
    /// An expected operator event occurred fewer times than listed.
    MissingOperatorEvent {
        /// The kind expected.
        kind: String,
        /// How many times it is listed.
        expected: usize,
        /// How many of those were matched.
        seen: usize,
    },
    /// An operator event listed with `times` occurred more often.
    TooManyOperatorEvents {
        /// The kind.
        kind: String,
        /// How many times it may occur.
        expected: usize,
        /// How many times it occurred.
        seen: usize,
    },
    /// A device received other reporting commands than expected (only with `commands`).
    Commands {
        /// The tag or victim's device.
        device: String,
        /// The commands expected, in order: the interval, and `/` the batching window when
        /// there is one (`60/900`).
        expected: Vec<String>,
        /// The commands received, in order, written alike.
        received: Vec<String>,
    },
}

fn redacted<S: serde::Serializer>(phone: &PhoneNumber, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&phone.redacted())
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::MissingSms { to, level, nth } => write!(
                f,
                "missing SMS: {} to {to} (SMS number {nth} expected for this phone)",
                alert_name(*level)
            ),
            Failure::UnexpectedSms {
                to,
                level,
                at_s,
                order_id,
            } => write!(
                f,
                "unexpected SMS at {}: {} to {to} (order {order_id})",
                fmt_offset(*at_s),
                alert_name(*level)
            ),
            Failure::MissingOperatorEvent {
                kind,
                expected,
                seen,
            } => write!(
                f,
                "operator event {kind}: expected {expected}, matched {seen}"
            ),
            Failure::TooManyOperatorEvents {
                kind,
                expected,
                seen,
            } => write!(
                f,
                "operator event {kind}: expected exactly {expected}, occurred {seen} times"
            ),
            Failure::Commands {
                device,
                expected,
                received,
            } => write!(
                f,
                "reporting commands to {device}: expected intervals (/ windows) [{}] s, received [{}] s",
                expected.join(", "),
                received.join(", ")
            ),
        }
    }
}

/// The result of comparing one run with its expectations.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Verdict {
    /// Every difference found; empty when the run passes.
    pub failures: Vec<Failure>,
}

impl Verdict {
    /// Whether the run met every expectation.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Compares a run with the expectations; see the module docs for the rules.
pub fn compare(expect: &Expectations, run: &Run) -> Verdict {
    let mut failures = compare_sms(expect, run);
    failures.extend(compare_operator_events(expect, run));
    failures.extend(compare_commands(expect, run));
    Verdict { failures }
}

/// Exact, per device, in order, when the scenario lists commands.
fn compare_commands(expect: &Expectations, run: &Run) -> Vec<Failure> {
    let Some(listed) = &expect.commands else {
        return Vec::new();
    };
    let told = |interval: u32, batch: u32| {
        if batch == 0 {
            interval.to_string()
        } else {
            format!("{interval}/{batch}")
        }
    };
    let mut expected: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for c in listed {
        expected
            .entry(c.tag_id.as_str())
            .or_default()
            .push(told(c.report_interval_s, c.batch_s));
    }
    let mut received: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (_, c) in run.commands() {
        received
            .entry(c.thing.as_str())
            .or_default()
            .push(told(c.report_interval_s, c.batch_s));
    }
    let devices: std::collections::BTreeSet<&str> =
        expected.keys().chain(received.keys()).copied().collect();
    devices
        .into_iter()
        .filter_map(|d| {
            let (e, r) = (
                expected.get(d).cloned().unwrap_or_default(),
                received.get(d).cloned().unwrap_or_default(),
            );
            (e != r).then(|| Failure::Commands {
                device: d.to_owned(),
                expected: e,
                received: r,
            })
        })
        .collect()
}

fn compare_sms(expect: &Expectations, run: &Run) -> Vec<Failure> {
    // Per phone, in first-appearance order: expected levels, and sent (level, at_s, order).
    let mut phones: Vec<&PhoneNumber> = Vec::new();
    let mut expected: BTreeMap<usize, Vec<VictimAlert>> = BTreeMap::new();
    let mut sent: BTreeMap<usize, Vec<(VictimAlert, f64, &OrderId)>> = BTreeMap::new();
    for e in &expect.sms {
        let k = phone_slot(&mut phones, &e.to);
        expected.entry(k).or_default().push(e.level);
    }
    for (step, sms) in run.sms() {
        let k = phone_slot(&mut phones, &sms.to);
        sent.entry(k)
            .or_default()
            .push((sms.level, step.at_s, &sms.order_id));
    }
    let mut failures = Vec::new();
    for (k, phone) in phones.iter().enumerate() {
        let want = expected.get(&k).map(Vec::as_slice).unwrap_or_default();
        let got = sent.get(&k).map(Vec::as_slice).unwrap_or_default();
        let got_levels: Vec<VictimAlert> = got.iter().map(|g| g.0).collect();
        let (want_matched, got_matched) = align(want, &got_levels);
        for (i, level) in want.iter().enumerate() {
            if !want_matched[i] {
                failures.push(Failure::MissingSms {
                    to: (*phone).clone(),
                    level: *level,
                    nth: i + 1,
                });
            }
        }
        if expect.no_other_sms {
            for (j, (level, at_s, order_id)) in got.iter().enumerate() {
                if !got_matched[j] {
                    failures.push(Failure::UnexpectedSms {
                        to: (*phone).clone(),
                        level: *level,
                        at_s: *at_s,
                        order_id: (*order_id).clone(),
                    });
                }
            }
        }
    }
    failures
}

/// The position of `phone` in `phones`, added at the end when new.
fn phone_slot<'a>(phones: &mut Vec<&'a PhoneNumber>, phone: &'a PhoneNumber) -> usize {
    phones.iter().position(|q| *q == phone).unwrap_or_else(|| {
        phones.push(phone);
        phones.len() - 1
    })
}

/// A longest common subsequence of `a` and `b`: which items of each are in it.
fn align<T: PartialEq>(a: &[T], b: &[T]) -> (Vec<bool>, Vec<bool>) {
    let (n, m) = (a.len(), b.len());
    // lcs[i][j]: length of the LCS of a[i..] and b[j..].
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut in_a, mut in_b) = (vec![false; n], vec![false; m]);
    let (mut i, mut j) = (0, 0);
    while i < n && j < m {
        if a[i] == b[j] {
            in_a[i] = true;
            in_b[j] = true;
            i += 1;
            j += 1;
        } else if lcs[i + 1][j] >= lcs[i][j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    (in_a, in_b)
}

/// Whether an event of kind `actual` is one a scenario listing `kind` means.
fn kind_matches(kind: &str, actual: &str) -> bool {
    actual == kind
        || (!kind.contains(':')
            && actual
                .strip_prefix(kind)
                .is_some_and(|rest| rest.starts_with(':')))
}

fn compare_operator_events(expect: &Expectations, run: &Run) -> Vec<Failure> {
    let mut available: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, e) in run.operator_events() {
        *available.entry(e.kind.as_str()).or_default() += 1;
    }
    let total = available.clone();
    // Listed kinds with their counts, in first-listed order; exact (`a:b`) kinds first, since
    // a bare kind can also take what they would need.
    let mut wanted: Vec<(&str, usize)> = Vec::new();
    for e in &expect.operator_events {
        let n = e.times.unwrap_or(1);
        match wanted.iter_mut().find(|(k, _)| *k == e.kind) {
            Some((_, count)) => *count += n,
            None => wanted.push((e.kind.as_str(), n)),
        }
    }
    wanted.sort_by_key(|(k, _)| !k.contains(':'));
    let mut failures = Vec::new();
    for e in expect.operator_events.iter().filter(|e| e.times.is_some()) {
        let seen: usize = total
            .iter()
            .filter(|(actual, _)| kind_matches(&e.kind, actual))
            .map(|(_, n)| n)
            .sum();
        let expected = e.times.unwrap_or_default();
        if seen > expected {
            failures.push(Failure::TooManyOperatorEvents {
                kind: e.kind.clone(),
                expected,
                seen,
            });
        }
    }
    for (kind, expected) in wanted {
        let mut seen = 0;
        for (actual, left) in available.iter_mut() {
            if kind_matches(kind, actual) {
                let take = (*left).min(expected - seen);
                *left -= take;
                seen += take;
            }
        }
        if seen < expected {
            failures.push(Failure::MissingOperatorEvent {
                kind: kind.to_owned(),
                expected,
                seen,
            });
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::{Outcome, SeenEvent, SentSms, StepRecord};
    use crate::scenario::{Channel, ExpectedOperatorEvent, ExpectedSms};
    use VictimAlert::*;
    use vigil_core::TagId;

    const VICTIM: &str = "+447700900123";
    const OTHER: &str = "+447700900456";

    fn phone(p: &str) -> PhoneNumber {
        PhoneNumber::new(p).unwrap()
    }

    fn step(at_s: f64, sms: &[(&str, VictimAlert)], kinds: &[&str]) -> StepRecord {
        StepRecord {
            message: 0,
            at_s,
            tag_id: TagId::new("t").unwrap(),
            channel: Channel::Fix,
            outcome: Outcome::Duplicate { seq: 1 },
            levels: vec![],
            sms: sms
                .iter()
                .map(|(to, level)| SentSms {
                    order_id: OrderId::new("o").unwrap(),
                    to: phone(to),
                    level: *level,
                    text: String::new(),
                })
                .collect(),
            operator_events: kinds
                .iter()
                .map(|k| SeenEvent {
                    kind: (*k).to_owned(),
                    order_id: None,
                    zone_id: None,
                    urgency: None,
                    detail: String::new(),
                })
                .collect(),
            commands: vec![],
        }
    }

    fn run(steps: Vec<StepRecord>) -> Run {
        Run {
            executor: "test".into(),
            steps,
        }
    }

    fn expect(sms: &[(&str, VictimAlert)], kinds: &[&str], no_other_sms: bool) -> Expectations {
        Expectations {
            sms: sms
                .iter()
                .map(|(to, level)| ExpectedSms {
                    to: phone(to),
                    level: *level,
                })
                .collect(),
            operator_events: kinds
                .iter()
                .map(|k| ExpectedOperatorEvent {
                    kind: (*k).to_owned(),
                    times: None,
                })
                .collect(),
            no_other_sms,
            commands: None,
        }
    }

    fn approach() -> Run {
        run(vec![
            step(0.0, &[], &[]),
            step(60.0, &[(VICTIM, Warning)], &["zone_warning"]),
            step(120.0, &[(VICTIM, Breach)], &["zone_breach"]),
            step(600.0, &[(VICTIM, AllClear)], &["zone_clear"]),
        ])
    }

    #[test]
    fn exact_match_passes() {
        let e = expect(
            &[(VICTIM, Warning), (VICTIM, Breach), (VICTIM, AllClear)],
            &["zone_breach", "zone_warning"],
            true,
        );
        assert!(compare(&e, &approach()).passed());
    }

    #[test]
    fn a_missing_sms_fails() {
        let e = expect(
            &[
                (VICTIM, Warning),
                (VICTIM, Breach),
                (VICTIM, Breach),
                (VICTIM, AllClear),
            ],
            &[],
            false,
        );
        let v = compare(&e, &approach());
        assert_eq!(
            v.failures,
            vec![Failure::MissingSms {
                to: phone(VICTIM),
                level: Breach,
                nth: 3
            }]
        );
        let text = v.failures[0].to_string();
        assert!(text.contains("missing SMS: breach to +44…23"), "{text}");
        assert!(!text.contains("7700900"), "never the whole number: {text}");
    }

    #[test]
    fn an_extra_sms_fails_only_with_no_other_sms() {
        let e = expect(&[(VICTIM, Warning), (VICTIM, AllClear)], &[], true);
        let v = compare(&e, &approach());
        assert_eq!(
            v.failures,
            vec![Failure::UnexpectedSms {
                to: phone(VICTIM),
                level: Breach,
                at_s: 120.0,
                order_id: OrderId::new("o").unwrap()
            }]
        );
        assert!(
            v.failures[0]
                .to_string()
                .starts_with("unexpected SMS at +02:00: breach")
        );
        let e = expect(&[(VICTIM, Warning), (VICTIM, AllClear)], &[], false);
        assert!(compare(&e, &approach()).passed());
    }

    #[test]
    fn order_per_phone_matters_but_not_across_phones() {
        let r = run(vec![
            step(0.0, &[(OTHER, Warning)], &[]),
            step(60.0, &[(VICTIM, Breach)], &[]),
            step(120.0, &[(OTHER, AllClear)], &[]),
        ]);
        let e = expect(
            &[(VICTIM, Breach), (OTHER, Warning), (OTHER, AllClear)],
            &[],
            true,
        );
        assert!(compare(&e, &r).passed());
        let e = expect(
            &[(VICTIM, Breach), (OTHER, AllClear), (OTHER, Warning)],
            &[],
            false,
        );
        let v = compare(&e, &r);
        assert_eq!(v.failures.len(), 1, "{:?}", v.failures);
        // Only one of the two can be matched in order: the other is reported missing.
        assert!(matches!(v.failures[0], Failure::MissingSms { ref to, .. } if to.e164() == OTHER));
    }

    #[test]
    fn sms_to_an_unexpected_phone_fails_with_no_other_sms() {
        let r = run(vec![step(0.0, &[(OTHER, Tamper)], &[])]);
        let v = compare(&expect(&[], &[], true), &r);
        assert!(matches!(
            &v.failures[..],
            [Failure::UnexpectedSms { level: Tamper, .. }]
        ));
    }

    #[test]
    fn operator_events_are_counted_and_bare_kinds_match_sub_kinds() {
        let r = run(vec![
            step(0.0, &[], &["fix_rejected:malformed", "zone_breach"]),
            step(60.0, &[], &["fix_rejected:not_finite", "zone_breach"]),
        ]);
        let ok = expect(
            &[],
            &[
                "zone_breach",
                "zone_breach",
                "fix_rejected",
                "fix_rejected:malformed",
            ],
            true,
        );
        assert!(compare(&ok, &r).passed());
        let too_many = expect(
            &[],
            &[
                "fix_rejected:not_finite",
                "fix_rejected",
                "fix_rejected",
                "zone_breach",
                "zone_breach",
                "zone_breach",
            ],
            true,
        );
        assert_eq!(
            compare(&too_many, &r).failures,
            vec![
                Failure::MissingOperatorEvent {
                    kind: "fix_rejected".into(),
                    expected: 2,
                    seen: 1
                },
                Failure::MissingOperatorEvent {
                    kind: "zone_breach".into(),
                    expected: 3,
                    seen: 2
                },
            ]
        );
        // A prefix only matches at a `:` boundary.
        let e = expect(&[], &["zone"], true);
        assert!(!compare(&e, &r).passed());
    }

    #[test]
    fn times_is_exact_fewer_and_more_both_fail() {
        let r = run(vec![
            step(300.0, &[], &["unacknowledged"]),
            step(600.0, &[], &["unacknowledged", "zone_breach"]),
            step(900.0, &[], &["unacknowledged"]),
        ]);
        let with = |n: usize| {
            let mut e = expect(&[], &["zone_breach"], true);
            e.operator_events.push(ExpectedOperatorEvent {
                kind: "unacknowledged".into(),
                times: Some(n),
            });
            e
        };
        assert!(compare(&with(3), &r).passed());
        assert_eq!(
            compare(&with(2), &r).failures,
            [Failure::TooManyOperatorEvents {
                kind: "unacknowledged".into(),
                expected: 2,
                seen: 3
            }]
        );
        assert!(
            compare(&with(2), &r).failures[0]
                .to_string()
                .contains("expected exactly 2, occurred 3 times")
        );
        assert_eq!(
            compare(&with(4), &r).failures,
            [Failure::MissingOperatorEvent {
                kind: "unacknowledged".into(),
                expected: 4,
                seen: 3
            }]
        );
        // Zero: never.
        assert!(!compare(&with(0), &r).passed());
        let none = run(vec![step(0.0, &[], &["zone_breach"])]);
        assert!(compare(&with(0), &none).passed());
    }

    #[test]
    fn alignment_reports_the_fewest_differences() {
        let (a, b) = align(&[1, 2, 3], &[2, 3, 4]);
        assert_eq!(a, [false, true, true]);
        assert_eq!(b, [true, true, false]);
    }

    #[test]
    fn commands_are_exact_per_device_when_listed() {
        use crate::executor::SentCommand;
        use crate::scenario::ExpectedCommand;
        let mut s1 = step(0.0, &[], &[]);
        s1.commands = vec![SentCommand {
            thing: "t".into(),
            victim_device: false,
            report_interval_s: 15,
            batch_s: 0,
        }];
        let r = run(vec![s1]);
        let mut e = expect(&[], &[], false);
        assert!(compare(&e, &r).passed(), "not listed: not checked");
        e.commands = Some(vec![]);
        let f = compare(&e, &r).failures;
        assert_eq!(
            f,
            [Failure::Commands {
                device: "t".into(),
                expected: vec![],
                received: vec!["15".to_owned()]
            }]
        );
        assert!(f[0].to_string().contains("received [15] s"));
        e.commands = Some(vec![ExpectedCommand {
            tag_id: "t".into(),
            report_interval_s: 15,
            batch_s: 0,
        }]);
        assert!(compare(&e, &r).passed());
    }
}
