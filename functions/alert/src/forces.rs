//! Forces (docs/FORCES.md): an operator event of a force's order to that force's operators'
//! topic as well, and an urgent one inside another force's area to that force as a responder
//! event, with what a response needs and nothing of the victim.

use crate::AlertError;
use tracing::warn;
use vigil_aws::ports::{ForceMessage, Metrics, Notifier};
use vigil_core::ForceId;
use vigil_core::forces::Forces;
use vigil_core::operator::OperatorEvent;

/// Publishes `operator` to its force's topic (`audience=case`) and, when it is urgent and
/// happened inside other forces' areas, a responder event to each of theirs
/// (`audience=responders`), counting each. Returns what was routed (force and the responder
/// event's random reference), for the case's audit record.
///
/// Fails with [`AlertError::Store`] when a publish fails (the event is retried; operators
/// dedupe by `event_id`).
pub async fn tell_forces(
    notifier: &impl Notifier,
    metrics: &impl Metrics,
    forces: &Forces,
    operator: &OperatorEvent,
) -> Result<Vec<serde_json::Value>, AlertError> {
    let force = operator.force_id.as_ref();
    if let Some((f, topic)) =
        force.and_then(|f| Some((f, forces.get(f)?.operators_topic_arn.clone()?)))
    {
        let message = ForceMessage {
            force_id: f.clone(),
            topic_arn: topic,
            subject: operator.subject(),
            body: serde_json::to_string(operator).expect("operator events serialize"),
            audience: "case",
            kind: operator.kind.to_string(),
            urgency: operator.urgency.name(),
        };
        notifier.publish_to_force(&message).await?;
    }
    let mut routed = Vec::new();
    let reference = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    let Some(r) = operator.for_responders(reference) else {
        return Ok(routed);
    };
    for other in forces.others_at(force, r.offender.lat, r.offender.lon) {
        let Some(topic) = forces
            .get(&other)
            .and_then(|c| c.operators_topic_arn.clone())
        else {
            warn!(force = %other, "an urgent event in this force's area: it has no operators' topic to route to");
            continue;
        };
        let message = ForceMessage {
            force_id: other.clone(),
            topic_arn: topic,
            subject: format!(
                "Vigil URGENT {} in your area (case of force {})",
                r.kind,
                r.case_force.as_ref().map_or("-", |f| f.as_str())
            ),
            body: serde_json::to_string(&r).expect("responder events serialize"),
            audience: "responders",
            kind: r.kind.to_string(),
            urgency: r.urgency.name(),
        };
        notifier.publish_to_force(&message).await?;
        metrics.count("RoutedEvents", ("Force", other.as_str()), 1);
        routed.push(serde_json::json!({ "force_id": other.as_str(), "reference": &r.reference }));
    }
    Ok(routed)
}

/// The force as a metric dimension (`none` for an order not migrated yet), so a shared
/// deployment can report and charge each force.
pub fn force_dimension(force: Option<&ForceId>) -> (&'static str, &str) {
    ("Force", force.map_or("none", ForceId::as_str))
}
