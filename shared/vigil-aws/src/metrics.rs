//! Metrics: CloudWatch Embedded Metric Format lines on stdout (Lambda ships them to CloudWatch
//! Logs, which turns them into metrics without an API call), and an in-memory counter for tests.

use crate::ports::Metrics;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The metric namespace.
pub const NAMESPACE: &str = "Vigil";

/// Writes one EMF line per count to stdout.
#[derive(Debug, Default, Clone, Copy)]
pub struct EmfMetrics;

/// The EMF line for a count, at `timestamp_ms`.
pub fn emf_line(name: &str, dimension: (&str, &str), n: u64, timestamp_ms: i64) -> String {
    emf_line_each(name, &[dimension], n, timestamp_ms)
}

/// The EMF line for a count under several dimension sets (one dimension each), at
/// `timestamp_ms`: one log line, one metric per dimension set.
pub fn emf_line_each(name: &str, dimensions: &[(&str, &str)], n: u64, timestamp_ms: i64) -> String {
    let sets: Vec<[&str; 1]> = dimensions.iter().map(|(d, _)| [*d]).collect();
    let mut line = serde_json::json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": sets,
                "Metrics": [{"Name": name, "Unit": "Count"}]
            }]
        },
        name: n
    });
    for (d, v) in dimensions {
        line[*d] = serde_json::Value::String((*v).to_owned());
    }
    line.to_string()
}

impl Metrics for EmfMetrics {
    fn count(&self, name: &str, dimension: (&str, &str), n: u64) {
        println!(
            "{}",
            emf_line(name, dimension, n, chrono::Utc::now().timestamp_millis())
        );
    }

    fn count_each(&self, name: &str, dimensions: &[(&str, &str)], n: u64) {
        println!(
            "{}",
            emf_line_each(name, dimensions, n, chrono::Utc::now().timestamp_millis())
        );
    }
}

/// A counter's key: metric name, dimension name, dimension value.
type CounterKey = (String, String, String);

/// Counters in memory, for tests and the simulator. Clones share one set of counters.
#[derive(Debug, Default, Clone)]
pub struct MemoryMetrics {
    counts: Arc<Mutex<BTreeMap<CounterKey, u64>>>,
}

impl MemoryMetrics {
    /// The count of `name` with dimension value `value`.
    pub fn get(&self, name: &str, value: &str) -> u64 {
        let counts = self.counts.lock().expect("metrics lock");
        counts
            .iter()
            .filter(|((n, _, v), _)| n == name && v == value)
            .map(|(_, c)| c)
            .sum()
    }

    /// The total of `name` over all dimension values.
    pub fn total(&self, name: &str) -> u64 {
        let counts = self.counts.lock().expect("metrics lock");
        counts
            .iter()
            .filter(|((n, _, _), _)| n == name)
            .map(|(_, c)| c)
            .sum()
    }
}

impl Metrics for MemoryMetrics {
    fn count(&self, name: &str, dimension: (&str, &str), n: u64) {
        *self
            .counts
            .lock()
            .expect("metrics lock")
            .entry((
                name.to_owned(),
                dimension.0.to_owned(),
                dimension.1.to_owned(),
            ))
            .or_default() += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_counts_under_each_dimension_set() {
        let line = emf_line_each(
            "FixesEvaluated",
            &[("Path", "quiet"), ("Force", "met")],
            1,
            7,
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([["Path"], ["Force"]])
        );
        assert_eq!(
            (v["Path"].as_str(), v["Force"].as_str()),
            (Some("quiet"), Some("met"))
        );
        assert_eq!(v["FixesEvaluated"], 1);
    }

    #[test]
    fn emf_shape() {
        let v: serde_json::Value =
            serde_json::from_str(&emf_line("FixRejected", ("Reason", "malformed"), 1, 5)).unwrap();
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"],
            "FixRejected"
        );
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0][0],
            "Reason"
        );
        assert_eq!(
            (v["Reason"].as_str(), v["FixRejected"].as_u64()),
            (Some("malformed"), Some(1))
        );
    }

    #[test]
    fn memory_counts() {
        let m = MemoryMetrics::default();
        m.count("FixRejected", ("Reason", "malformed"), 1);
        m.count("FixRejected", ("Reason", "malformed"), 2);
        m.count("FixRejected", ("Reason", "not_finite"), 1);
        assert_eq!(
            (m.get("FixRejected", "malformed"), m.total("FixRejected")),
            (3, 4)
        );
    }
}
