//! Metrics in CloudWatch Embedded Metric Format: one JSON line per request that CloudWatch
//! Logs turns into metrics, with no API call from the function.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

/// The CloudWatch namespace and the `Service` dimension of every metric.
pub const NAMESPACE: &str = "bcast";

/// What one request measured.
#[derive(Debug, Default)]
pub struct Metrics {
    values: Vec<(&'static str, f64, &'static str)>,
}

impl Metrics {
    /// Adds `n` to a counter (`Published`, `Fetched`, `Missed`, `KeyReuse`, `RateLimited`,
    /// `RedisErrors`, …).
    pub fn count(&mut self, name: &'static str, n: u64) {
        match self.values.iter_mut().find(|(m, _, _)| *m == name) {
            Some((_, v, _)) => *v += n as f64,
            None => self.values.push((name, n as f64, "Count")),
        }
    }

    /// Records a duration in milliseconds (`RedisLatency`).
    pub fn time(&mut self, name: &'static str, elapsed: Duration) {
        self.values
            .push((name, elapsed.as_secs_f64() * 1000.0, "Milliseconds"));
    }

    /// The EMF document for `function`, or `None` when nothing was measured.
    pub fn to_emf(&self, function: &str, at: SystemTime) -> Option<String> {
        if self.values.is_empty() {
            return None;
        }
        let timestamp = at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut definitions: Vec<Value> = Vec::new();
        let mut root = Map::new();
        for (name, value, unit) in &self.values {
            match root.get_mut(*name) {
                // A metric measured twice is sent as a list of values.
                Some(Value::Array(list)) => list.push(json!(value)),
                Some(first) => *first = json!([first.clone(), value]),
                None => {
                    definitions.push(json!({"Name": name, "Unit": unit}));
                    root.insert((*name).to_owned(), json!(value));
                }
            }
        }
        root.insert("Service".into(), json!(NAMESPACE));
        root.insert("Function".into(), json!(function));
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [["Service"], ["Service", "Function"]],
                    "Metrics": definitions,
                }],
            }),
        );
        Some(Value::Object(root).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_declares_every_metric_it_carries() {
        let mut m = Metrics::default();
        assert_eq!(m.to_emf("fetch", UNIX_EPOCH), None);
        m.count("Fetched", 3);
        m.count("Fetched", 2);
        m.time("RedisLatency", Duration::from_micros(1500));
        m.time("RedisLatency", Duration::from_micros(500));
        let doc: Value = serde_json::from_str(
            &m.to_emf("fetch", UNIX_EPOCH + Duration::from_secs(2))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(doc["Fetched"], 5.0);
        assert_eq!(doc["RedisLatency"], json!([1.5, 0.5]));
        assert_eq!(doc["Function"], "fetch");
        assert_eq!(doc["Service"], "bcast");
        let cw = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(doc["_aws"]["Timestamp"], 2000);
        assert_eq!(cw["Namespace"], "bcast");
        assert_eq!(
            cw["Metrics"],
            json!([{"Name": "Fetched", "Unit": "Count"}, {"Name": "RedisLatency", "Unit": "Milliseconds"}])
        );
        for dims in cw["Dimensions"].as_array().unwrap() {
            for d in dims.as_array().unwrap() {
                assert!(
                    doc[d.as_str().unwrap()].is_string(),
                    "dimension {d} has a value"
                );
            }
        }
    }
}
