//! Vigil's domain core: everything that decides whether a victim is in danger, with no I/O,
//! no async and no AWS. The functions and adapters build on it; it is tested on its own.
//!
//! # Layout
//! - [`ids`]: identifiers (tag, order, zone, victim), checked where they enter.
//! - [`fix`]: the wire format of fixes and tag events, parsing, and validation errors.
//! - [`forces`]: the police forces a deployment serves, their settings and areas.
//! - [`geodesy`]: geodesic and haversine distances; conservative latitude/longitude boxes.
//! - [`cells`]: the geohash cells of the zone index (precision 6, polar caps) and covers.
//! - [`zone`]: zones (circle or polygon), warning buffer, weekly schedule, validity.
//! - [`order`]: protection orders, victims (E.164 phone, language) and alert policy settings.
//! - [`evaluate`]: CLEAR / WARNING / BREACH for one fix and one zone, with accuracy.
//! - [`state`]: the per (order, zone) state machine with hysteresis and escalation.
//! - [`policy`]: who is told about a change, cooldowns, urgency.
//! - [`messages`]: victim SMS texts by language, and SMS segment counting.
//! - [`watch`]: one order's states and policy together, as ingest and alerting apply them.
//! - [`index`]: an in-memory zone index with the same cells as the DynamoDB table.
//! - [`history`]: a tag's history of accepted fixes: the speed check, lateness, duplicates.
//! - [`ingest`]: the ingest function's decisions: which orders to judge, what to commit and
//!   queue, what a rejected fix near a zone must tell operators.
//! - [`proximity`]: the victim's moving zone: when her device's position and his fix may be
//!   compared (freshness), what is judged, her device's silence.
//! - [`watchdog`]: a tag's silence and lack of GPS as alerts: when each starts and ends per
//!   order, when to look at the tag again, whether its last fix was near a victim's zone.
//! - [`reporting`]: pursuit mode: the reporting rate a device should keep, the commands that
//!   tell it, and the check that it obeys.
//! - [`events`]: alert events between functions (ingest -> queue -> alert).
//! - [`operator`]: the operator events the monitoring centre sees, and their vocabulary.
//! - [`audit`]: the audit log's per-order hash chain: building and verifying records.

pub mod anchor;
pub mod audit;
pub mod batching;
pub mod cells;
pub mod escalation;
pub mod evaluate;
pub mod events;
pub mod fix;
pub mod forces;
pub mod geodesy;
pub mod history;
pub mod ids;
pub mod index;
pub mod ingest;
pub mod messages;
pub mod operator;
pub mod operator_kind;
pub mod order;
pub mod policy;
pub mod proximity;
pub mod reporting;
pub mod state;
pub mod watch;
pub mod watchdog;
pub mod zone;

pub use cells::Cell;
pub use evaluate::{AlertLevel, Assessment, BreachRules};
pub use fix::{Fix, FixError, TagEvent, TagEventKind, ValidationLimits};
pub use history::TagHistory;
pub use ids::{DeviceId, ForceId, OrderId, TagId, VictimId, ZoneId, ZoneKey};
pub use index::MemoryZoneIndex;
pub use operator::{OperatorEvent, OperatorKind};
pub use order::{Language, OrderPolicy, OrderTerms, PhoneNumber, ProtectionOrder, Victim};
pub use policy::{Hold, Moment, Urgency, VictimAlert, VictimDecision};
pub use state::{StepRules, ZoneState};
pub use watch::OrderWatch;
pub use zone::{Zone, ZoneKind, ZoneShape, ZoneSpec};
