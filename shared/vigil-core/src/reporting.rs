//! Pursuit mode: how often the offender's tag and the victim's own device report, told to
//! them as commands on their `cmd` topic, and checked against what they do.
//!
//! - **What a device should do** ([`wanted`]): while any zone of an order is open (WARNING or
//!   BREACH), the order asks for its pursuit interval (default 15 s), otherwise for its normal
//!   interval (default 60 s). A device that serves several orders (a tag restrained by two
//!   orders) follows the most demanding one: the shortest interval asked for.
//! - **What it was told** ([`ReportingCommand`]): kept on the device's item (`tags.cmd`,
//!   `devices.cmd`). A device never told anything is taken to report at the normal interval
//!   its orders ask for: nothing is sent to a fleet of quiet tags.
//! - **When to tell it** ([`next_command`], in the alert function, on the current state):
//!   when what it should do differs from what it was told (a new command, attempt 1), or when
//!   ingest saw it keep the old rate long after a command (the same command again, up to
//!   [`MAX_ATTEMPTS`]; the last attempt tells operators the device does not obey).
//! - **When to ask** ([`check`], in ingest, on every accepted message, from what ingest
//!   already read): the state says one interval and the device was told another (a command
//!   lost to a failure), or the gap between its last two messages says it ignores what it was
//!   told. Both wait [`resend_after_ms`] after the last command, which rate-limits commands to
//!   one per device per two normal intervals however many messages arrive.
//! - **When an operator changes an order** (a zone added or replaced, her device given, the
//!   order created on a tag or moved to one: [`Ask::OrderChanged`], queued by the watchdog for
//!   vigil-admin, docs/WIRE_FORMAT.md): [`after_change`] ends any batching window at once, and
//!   its command is the window's fence: no window judged from a message received before it may
//!   start ([`next_window`] grows only from a newer judgement than the one kept).
//!
//! The device's own clock plays no part: gaps are server receive times.

use crate::ids::{DeviceId, OrderId, TagId};
use crate::order::OrderPolicy;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Commands of one interval sent to a device that keeps its old rate, at most; the last one
/// also tells operators (`device_ignores_commands`).
pub const MAX_ATTEMPTS: u32 = 4;

/// A device that takes reporting commands.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "device", content = "id", rename_all = "snake_case")]
pub enum Commanded {
    /// The offender's tag: `tags/{tag_id}/cmd`.
    Tag(TagId),
    /// The victim's own device: `victims/{device_id}/cmd`.
    VictimDevice(DeviceId),
}

impl Commanded {
    /// The MQTT topic its commands go to.
    pub fn topic(&self) -> String {
        match self {
            Self::Tag(t) => format!("tags/{t}/cmd"),
            Self::VictimDevice(d) => format!("victims/{d}/cmd"),
        }
    }

    /// `tag` or `victim_device`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Tag(_) => "tag",
            Self::VictimDevice(_) => "victim_device",
        }
    }

    /// The thing name.
    pub fn id(&self) -> &str {
        match self {
            Self::Tag(t) => t.as_str(),
            Self::VictimDevice(d) => d.as_str(),
        }
    }
}

impl fmt::Display for Commanded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind(), self.id())
    }
}

/// What a device was last told, as kept on its item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportingCommand {
    /// The interval it was told, seconds.
    pub report_interval_s: u32,
    /// Server time of the last publish of this command, Unix ms.
    pub sent_at_ms: i64,
    /// How many times this interval was published (1: the first time).
    pub attempts: u32,
    /// Whether it is the pursuit rate (an order's zone was open).
    pub pursuit: bool,
    /// The order whose state asked for it; its audit chain records the command.
    pub order_id: OrderId,
    /// The batching window it was told, seconds (adaptive reporting, [`crate::batching`]):
    /// it may hold its fixes this long and send them as one v2 batch; 0: every fix at once.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub batch_s: u32,
    /// The receive time of the message the window was judged from, Unix ms: a window is
    /// grown only from a newer judgement than the one kept (asks may arrive out of order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_basis_ms: Option<i64>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The payload of a command: `{"report_interval_s":60,"batch_s":300}` (`batch_s` 0: send every
/// fix at once).
pub fn payload(command: &ReportingCommand) -> Vec<u8> {
    format!(
        "{{\"report_interval_s\":{},\"batch_s\":{}}}",
        command.report_interval_s, command.batch_s
    )
    .into_bytes()
}

/// A window ingest judged allowed for a tag (adaptive reporting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// The window, seconds.
    pub batch_s: u32,
    /// Receive time of the message it was judged from, Unix ms.
    pub basis_ms: i64,
}

/// What a device should do now, by its orders' states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    /// The interval, seconds.
    pub report_interval_s: u32,
    /// Whether an order's zone is open.
    pub pursuit: bool,
    /// The interval it reports at when never told anything: the shortest normal interval of
    /// its orders.
    pub normal_s: u32,
}

/// What a device serving orders with these policies should do, given for each whether any
/// of its zones is open; `None` without orders.
pub fn wanted<'a>(orders: impl IntoIterator<Item = (&'a OrderPolicy, bool)>) -> Option<Wanted> {
    let mut out: Option<Wanted> = None;
    for (policy, open) in orders {
        let asked = if open {
            policy.pursuit_report_interval_s
        } else {
            policy.report_interval_s
        };
        let w = out.get_or_insert(Wanted {
            report_interval_s: asked,
            pursuit: open,
            normal_s: policy.report_interval_s,
        });
        w.report_interval_s = w.report_interval_s.min(asked);
        w.pursuit |= open;
        w.normal_s = w.normal_s.min(policy.report_interval_s);
    }
    out
}

/// How long after a command a device is given to follow it before its rate counts against
/// it: two of the slower of the normal and the commanded interval (it may have been asleep
/// for a whole normal interval when the command came, and needs one commanded interval to
/// show the new rate). Also the shortest time between two commands to one device.
pub fn resend_after_ms(wanted: &Wanted, command: &ReportingCommand) -> i64 {
    2 * i64::from(wanted.normal_s.max(command.report_interval_s)) * 1000
}

/// Whether a gap between two messages (server receive times) contradicts an interval: more
/// than twice the interval plus 5 s (too slow), or less than half of it (too fast).
pub fn contradicts(report_interval_s: u32, gap_ms: i64) -> bool {
    let interval_ms = i64::from(report_interval_s) * 1000;
    gap_ms > 2 * interval_ms + 5_000 || 2 * gap_ms < interval_ms
}

/// Why the alert function is asked to command a device: by ingest, from a message, or by the
/// watchdog, for an operator's change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ask {
    /// The state asks for another interval than the device was told (a command lost to a
    /// failure, or never sent).
    Differs,
    /// The device keeps a rate the command it was sent at `sent_at_ms` contradicts.
    Ignored,
    /// The batching window the tag may use differs from the one it was told.
    Window,
    /// An operator changed what protects a victim of the tag's orders (a zone added or
    /// replaced, her device given, the order created on the tag or moved to it): any window
    /// was judged without it, so it ends at once ([`after_change`]).
    OrderChanged,
}

impl Ask {
    /// `differs`, `ignored`, `window` or `order_changed`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Differs => "differs",
            Self::Ignored => "ignored",
            Self::Window => "window",
            Self::OrderChanged => "order_changed",
        }
    }
}

/// Ingest's check on an accepted message of `fixes` fixes (more than one in a v2 batch)
/// received at `received_ms`, with `previous_ms` the receive time of the device's previous
/// accepted message: whether to ask for a command. The rate is judged per fix: a message of
/// four fixes four minutes after the last one is a fix a minute.
pub fn check(
    wanted: &Wanted,
    told: Option<&ReportingCommand>,
    previous_ms: Option<i64>,
    fixes: usize,
    received_ms: i64,
) -> Option<Ask> {
    let told_s = told.map_or(wanted.normal_s, |c| c.report_interval_s);
    let waited = |c: &ReportingCommand| received_ms - c.sent_at_ms >= resend_after_ms(wanted, c);
    if told_s != wanted.report_interval_s {
        return told.is_none_or(waited).then_some(Ask::Differs);
    }
    let c = told?;
    let gap = (received_ms - previous_ms?) / i64::try_from(fixes.max(1)).unwrap_or(i64::MAX);
    // Told to send every fix at once (in pursuit, or no window): several in one message were
    // held back.
    let held_back = (c.pursuit || c.batch_s == 0) && fixes > 1;
    (c.attempts < MAX_ATTEMPTS && waited(c) && (held_back || contradicts(c.report_interval_s, gap)))
        .then_some(Ask::Ignored)
}

/// Why a command is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// An order's zone opened: report faster.
    Pursuit,
    /// Every zone is clear again: back to the normal rate.
    Normal,
    /// The same command again: the device kept its old rate.
    Resend,
    /// The batching window changed (adaptive reporting).
    Window,
    /// An operator changed an order of the device: no window until one is judged afresh.
    OrderChanged,
}

impl Reason {
    /// `pursuit`, `normal`, `resend`, `window` or `order_changed`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pursuit => "pursuit",
            Self::Normal => "normal",
            Self::Resend => "resend",
            Self::Window => "window",
            Self::OrderChanged => "order_changed",
        }
    }
}

/// The alert function's decision on the current state: the command to publish and keep, if
/// any. `resend` is set when ingest saw the device ignore the command sent at that time; a
/// resend happens only if that command is still the one kept (nobody sent another since) and
/// [`resend_after_ms`] has passed, so duplicate asks publish once.
pub fn next_command(
    wanted: &Wanted,
    told: Option<&ReportingCommand>,
    resend: Option<i64>,
    order_id: &OrderId,
    now_ms: i64,
) -> Option<(ReportingCommand, Reason)> {
    let told_s = told.map_or(wanted.normal_s, |c| c.report_interval_s);
    if told_s != wanted.report_interval_s {
        let reason = if wanted.pursuit {
            Reason::Pursuit
        } else {
            Reason::Normal
        };
        return Some((
            ReportingCommand {
                report_interval_s: wanted.report_interval_s,
                sent_at_ms: now_ms,
                attempts: 1,
                pursuit: wanted.pursuit,
                order_id: order_id.clone(),
                // A change of rate ends any batching: the tag is near a zone (pursuit) or was
                // (back to normal after a clear); ingest judges a window afresh. The basis is
                // kept: a window judged before it (before an operator's change) never starts.
                batch_s: 0,
                window_basis_ms: told.and_then(|c| c.window_basis_ms),
            },
            reason,
        ));
    }
    let c = told?;
    let asked_at = resend?;
    (asked_at == c.sent_at_ms
        && c.attempts < MAX_ATTEMPTS
        && now_ms - c.sent_at_ms >= resend_after_ms(wanted, c))
    .then(|| {
        (
            ReportingCommand {
                sent_at_ms: now_ms,
                attempts: c.attempts + 1,
                order_id: order_id.clone(),
                ..c.clone()
            },
            Reason::Resend,
        )
    })
}

/// The alert function's decision on a window ingest judged (`proposed`): the command to
/// publish and keep, if any. Only at the normal rate (in pursuit there is no window, and a
/// change of rate is [`next_command`]'s). A shorter window is told at once; a longer one only
/// when judged from a newer message than the window kept, so an old ask arriving late never
/// lengthens a window a newer one shortened.
pub fn next_window(
    wanted: &Wanted,
    told: Option<&ReportingCommand>,
    proposed: Window,
    order_id: &OrderId,
    now_ms: i64,
) -> Option<(ReportingCommand, Reason)> {
    let told_s = told.map_or(wanted.normal_s, |c| c.report_interval_s);
    if wanted.pursuit || told_s != wanted.report_interval_s {
        return None;
    }
    let current = told.map_or(0, |c| c.batch_s);
    let newer = told
        .and_then(|c| c.window_basis_ms)
        .is_none_or(|b| proposed.basis_ms > b);
    let change = proposed.batch_s < current || (proposed.batch_s > current && newer);
    change.then(|| {
        (
            ReportingCommand {
                report_interval_s: wanted.report_interval_s,
                sent_at_ms: now_ms,
                attempts: 1,
                pursuit: false,
                order_id: order_id.clone(),
                batch_s: proposed.batch_s,
                window_basis_ms: Some(proposed.basis_ms),
            },
            Reason::Window,
        )
    })
}

/// The alert function's decision when an operator changed what protects a victim of the
/// device's orders (an [`Ask::OrderChanged`] handled at `now_ms`): the command to publish and
/// keep, always: the rate the state asks for, no window (`batch_s` 0), and `now_ms` as the
/// window's basis, a fence: [`next_window`] grows a window only from a message received after
/// it, so a window ingest judged from the zones as they were before the change, whose ask
/// arrives late, never starts. `now_ms` is the alert function's clock, which handles the ask
/// after the change was written, whatever the operator's clock says.
///
/// Published even when the tag already sends every fix at once: the command it follows then
/// does not change, and the fence must be kept whether or not it batched.
pub fn after_change(
    wanted: &Wanted,
    order_id: &OrderId,
    now_ms: i64,
) -> (ReportingCommand, Reason) {
    (
        ReportingCommand {
            report_interval_s: wanted.report_interval_s,
            sent_at_ms: now_ms,
            attempts: 1,
            pursuit: wanted.pursuit,
            order_id: order_id.clone(),
            batch_s: 0,
            window_basis_ms: Some(now_ms),
        },
        Reason::OrderChanged,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(normal: u32, pursuit: u32) -> OrderPolicy {
        OrderPolicy {
            report_interval_s: normal,
            pursuit_report_interval_s: pursuit,
            ..OrderPolicy::default()
        }
    }

    fn order() -> OrderId {
        OrderId::new("o1").unwrap()
    }

    fn told(interval: u32, at: i64, attempts: u32) -> ReportingCommand {
        ReportingCommand {
            report_interval_s: interval,
            sent_at_ms: at,
            attempts,
            pursuit: interval == 15,
            order_id: order(),
            batch_s: 0,
            window_basis_ms: None,
        }
    }

    #[test]
    fn the_most_demanding_order_sets_the_rate() {
        let (a, b) = (policy(60, 15), policy(120, 10));
        assert_eq!(wanted([]), None);
        let quiet = wanted([(&a, false), (&b, false)]).unwrap();
        assert_eq!(
            (quiet.report_interval_s, quiet.pursuit, quiet.normal_s),
            (60, false, 60)
        );
        let one_open = wanted([(&a, true), (&b, false)]).unwrap();
        assert_eq!((one_open.report_interval_s, one_open.pursuit), (15, true));
        let other_open = wanted([(&a, false), (&b, true)]).unwrap();
        assert_eq!(other_open.report_interval_s, 10);
    }

    #[test]
    fn a_quiet_device_never_told_anything_gets_nothing() {
        let w = wanted([(&OrderPolicy::default(), false)]).unwrap();
        assert_eq!(next_command(&w, None, None, &order(), 1_000), None);
        assert_eq!(check(&w, None, Some(0), 1, 60_000), None);
    }

    #[test]
    fn an_open_zone_commands_pursuit_and_clear_commands_normal() {
        let p = OrderPolicy::default();
        let open = wanted([(&p, true)]).unwrap();
        let (c, why) = next_command(&open, None, None, &order(), 5_000).unwrap();
        assert_eq!(why, Reason::Pursuit);
        assert_eq!(
            (c.report_interval_s, c.attempts, c.sent_at_ms),
            (15, 1, 5_000)
        );
        // Told already: a second event of the same episode sends nothing.
        assert_eq!(next_command(&open, Some(&c), None, &order(), 6_000), None);
        let clear = wanted([(&p, false)]).unwrap();
        let (back, why) = next_command(&clear, Some(&c), None, &order(), 7_000).unwrap();
        assert_eq!((back.report_interval_s, why), (60, Reason::Normal));
        assert_eq!(payload(&c), br#"{"report_interval_s":15,"batch_s":0}"#);
    }

    #[test]
    fn ingest_asks_when_the_state_and_the_command_differ_after_the_wait() {
        let p = OrderPolicy::default();
        let open = wanted([(&p, true)]).unwrap();
        // Never told, zone open: ask at once.
        assert_eq!(check(&open, None, Some(0), 1, 60_000), Some(Ask::Differs));
        // Told normal at t=0 (lost pursuit): wait two normal intervals.
        let normal = told(60, 0, 1);
        assert_eq!(check(&open, Some(&normal), Some(0), 1, 119_999), None);
        assert_eq!(
            check(&open, Some(&normal), Some(0), 1, 120_000),
            Some(Ask::Differs)
        );
    }

    #[test]
    fn a_device_keeping_the_old_rate_is_asked_for_again_up_to_the_cap() {
        let p = OrderPolicy::default();
        let open = wanted([(&p, true)]).unwrap();
        let fast = told(15, 0, 1);
        // Within the wait: its rate does not count yet.
        assert_eq!(check(&open, Some(&fast), Some(60_000), 1, 119_000), None);
        // After it: one minute between messages contradicts 15 s.
        assert_eq!(
            check(&open, Some(&fast), Some(120_000), 1, 180_000),
            Some(Ask::Ignored)
        );
        // Obeying (15 s gaps, or up to 35 s with a lost message): fine.
        assert_eq!(check(&open, Some(&fast), Some(165_000), 1, 180_000), None);
        assert_eq!(check(&open, Some(&fast), Some(145_000), 1, 180_000), None);
        // At the cap: ingest stops asking.
        let capped = told(15, 0, MAX_ATTEMPTS);
        assert_eq!(check(&open, Some(&capped), Some(120_000), 1, 180_000), None);
        // Told normal but reporting every 15 s: too fast, asked again too.
        let clear = wanted([(&p, false)]).unwrap();
        let slow = told(60, 0, 1);
        assert_eq!(
            check(&clear, Some(&slow), Some(165_000), 1, 180_000),
            Some(Ask::Ignored)
        );
    }

    #[test]
    fn a_batch_is_judged_per_fix_and_never_in_pursuit() {
        let p = OrderPolicy::default();
        let clear = wanted([(&p, false)]).unwrap();
        let normal = ReportingCommand {
            batch_s: 300,
            ..told(60, 0, 1)
        };
        // Told a window: five fixes five minutes after the last message, a fix a minute.
        assert_eq!(
            check(&clear, Some(&normal), Some(300_000), 5, 600_000),
            None
        );
        // One fix five minutes after: too slow.
        assert_eq!(
            check(&clear, Some(&normal), Some(300_000), 1, 600_000),
            Some(Ask::Ignored)
        );
        // In pursuit, four fixes a minute in one message are held back, whatever the rate.
        let open = wanted([(&p, true)]).unwrap();
        let fast = told(15, 0, 1);
        assert_eq!(
            check(&open, Some(&fast), Some(120_000), 4, 180_000),
            Some(Ask::Ignored)
        );
        assert_eq!(check(&open, Some(&fast), Some(165_000), 1, 180_000), None);
    }

    #[test]
    fn windows_shrink_at_once_and_grow_only_from_a_newer_judgement() {
        let p = OrderPolicy::default();
        let clear = wanted([(&p, false)]).unwrap();
        let w = |batch_s, basis_ms| Window { batch_s, basis_ms };
        // Never told: a window of 600 s judged at t=1000.
        let (c, why) = next_window(&clear, None, w(600, 1_000), &order(), 1_500).unwrap();
        assert_eq!(
            (why, c.batch_s, c.window_basis_ms, c.report_interval_s),
            (Reason::Window, 600, Some(1_000), 60)
        );
        assert_eq!(payload(&c), br#"{"report_interval_s":60,"batch_s":600}"#);
        // The same again: nothing.
        assert_eq!(
            next_window(&clear, Some(&c), w(600, 2_000), &order(), 2_500),
            None
        );
        // Shorter, even judged from an older message: at once.
        let (s, _) = next_window(&clear, Some(&c), w(120, 900), &order(), 3_000).unwrap();
        assert_eq!(s.batch_s, 120);
        // Longer from an older judgement than the kept one: never.
        assert_eq!(
            next_window(&clear, Some(&s), w(900, 800), &order(), 3_500),
            None
        );
        // Longer from a newer one: yes.
        assert_eq!(
            next_window(&clear, Some(&s), w(900, 4_000), &order(), 4_500)
                .unwrap()
                .0
                .batch_s,
            900
        );
        // In pursuit: no window; a change of rate ends batching.
        let open = wanted([(&p, true)]).unwrap();
        assert_eq!(
            next_window(&open, Some(&c), w(900, 5_000), &order(), 5_500),
            None
        );
        let (pursuit, _) = next_command(&open, Some(&c), None, &order(), 6_000).unwrap();
        assert_eq!((pursuit.report_interval_s, pursuit.batch_s), (15, 0));
        // Told a window, several fixes a message are expected; told none, they are held back.
        assert_eq!(check(&clear, Some(&c), Some(0), 10, 600_000), None);
        let none = told(60, 0, 1);
        assert_eq!(
            check(&clear, Some(&none), Some(0), 10, 600_000),
            Some(Ask::Ignored)
        );
    }

    #[test]
    fn an_operators_change_ends_the_window_and_fences_older_judgements() {
        let p = OrderPolicy::default();
        let clear = wanted([(&p, false)]).unwrap();
        let w = |batch_s, basis_ms| Window { batch_s, basis_ms };
        // Told 900 s, judged from a message received at t=1000.
        let (batching, _) = next_window(&clear, None, w(900, 1_000), &order(), 1_500).unwrap();
        // An operator's change, handled at t=5000: no window, at the normal rate.
        let (ended, why) = after_change(&clear, &order(), 5_000);
        assert_eq!(why, Reason::OrderChanged);
        assert_eq!(
            (
                ended.batch_s,
                ended.report_interval_s,
                ended.window_basis_ms
            ),
            (0, 60, Some(5_000))
        );
        assert_eq!(payload(&ended), br#"{"report_interval_s":60,"batch_s":0}"#);
        assert_ne!(batching, ended);
        // A window judged from a message received before the change never starts...
        assert_eq!(
            next_window(&clear, Some(&ended), w(900, 4_999), &order(), 6_000),
            None
        );
        // ... nor one judged before it with the tag never told anything before the change.
        let (fence, _) = after_change(&clear, &order(), 5_000);
        assert_eq!(
            next_window(&clear, Some(&fence), w(300, 2_000), &order(), 6_000),
            None
        );
        // One judged afresh, after the change, does.
        let (again, _) = next_window(&clear, Some(&ended), w(900, 5_001), &order(), 6_000).unwrap();
        assert_eq!(again.batch_s, 900);
        // In pursuit: the pursuit rate, still no window.
        let open = wanted([(&p, true)]).unwrap();
        let (fast, _) = after_change(&open, &order(), 7_000);
        assert_eq!(
            (fast.report_interval_s, fast.pursuit, fast.batch_s),
            (15, true, 0)
        );
        // The fence outlives a change of rate: back to normal keeps it.
        let (back, _) = next_command(&clear, Some(&fast), None, &order(), 8_000).unwrap();
        assert_eq!(back.window_basis_ms, Some(7_000));
        assert_eq!(
            next_window(&clear, Some(&back), w(900, 6_500), &order(), 9_000),
            None
        );
    }

    #[test]
    fn a_resend_happens_once_per_command_and_after_the_wait() {
        let p = OrderPolicy::default();
        let open = wanted([(&p, true)]).unwrap();
        let fast = told(15, 0, 1);
        // Too early.
        assert_eq!(
            next_command(&open, Some(&fast), Some(0), &order(), 100_000),
            None
        );
        let (again, why) = next_command(&open, Some(&fast), Some(0), &order(), 120_000).unwrap();
        assert_eq!(
            (why, again.attempts, again.sent_at_ms),
            (Reason::Resend, 2, 120_000)
        );
        // A second ask about the first command finds another kept: nothing.
        assert_eq!(
            next_command(&open, Some(&again), Some(0), &order(), 130_000),
            None
        );
        // The cap.
        let capped = told(15, 0, MAX_ATTEMPTS);
        assert_eq!(
            next_command(&open, Some(&capped), Some(0), &order(), 500_000),
            None
        );
    }

    #[test]
    fn gaps_that_contradict_an_interval() {
        assert!(!contradicts(15, 15_000));
        assert!(!contradicts(15, 35_000));
        assert!(contradicts(15, 35_001));
        assert!(contradicts(60, 29_999));
        assert!(!contradicts(60, 30_000));
        assert!(!contradicts(60, 125_000));
    }

    #[test]
    fn topics_and_names() {
        let t = Commanded::Tag(TagId::new("tag-1").unwrap());
        let d = Commanded::VictimDevice(DeviceId::new("dev-1").unwrap());
        assert_eq!(t.topic(), "tags/tag-1/cmd");
        assert_eq!(d.topic(), "victims/dev-1/cmd");
        assert_eq!(d.to_string(), "victim_device:dev-1");
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, r#"{"device":"tag","id":"tag-1"}"#);
    }
}
