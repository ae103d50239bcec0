//! The log: one JSON line per request with route, status, duration and account, and never a
//! client key, a login token or a secret.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{Request, Service};
use serde_json::{json, Value};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn one_line_per_request_and_no_secrets() {
    let captured = Captured::default();
    let sink = captured.clone();
    let metrics_sink = captured.clone();
    bcast_shared::telemetry::init_with_writer(move || sink.clone());
    bcast_shared::telemetry::capture_metrics(move || metrics_sink.clone());

    let service = Service::start(&[]);
    let token = service.token("wp", "5");
    let mut secrets = vec![token.clone(), service.secret.clone()];
    let login = service
        .call("login", &Request::new("POST", "/login").bearer(&token))
        .await
        .expect(201, None);
    let mut key = login.body["client_key"].as_str().unwrap().to_owned();
    secrets.push(key.clone());
    service
        .call(
            "publish",
            &Request::new("POST", "/publish")
                .json(&json!({"client": "wp", "account_id": "5", "data": 1})),
        )
        .await
        .expect(200, None);
    for _ in 0..2 {
        let reply = service
            .call("fetch", &Request::new("GET", "/broadcasts").bearer(&key))
            .await
            .expect(200, None);
        key = reply.body["client_key"].as_str().unwrap().to_owned();
        secrets.push(key.clone());
    }
    // Failures log too, without echoing what was sent.
    service
        .call(
            "fetch",
            &Request::new("GET", "/broadcasts").bearer(&format!("{key}x")),
        )
        .await
        .expect(401, None);
    service
        .call(
            "login",
            &Request::new("POST", "/login").bearer(&format!("{token}x")),
        )
        .await
        .expect(401, None);
    service
        .call(
            "heartbeat",
            &Request::new("POST", "/heartbeat").bearer(&key),
        )
        .await
        .expect(200, None);

    // The first key, two rotations old: theft, counted as key reuse.
    service
        .call(
            "fetch",
            &Request::new("GET", "/broadcasts").bearer(&secrets[2]),
        )
        .await
        .expect(401, Some("client_key_reused"));

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    let requests: Vec<&Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "request")
        .collect();
    assert_eq!(requests.len(), 8, "{text}");
    for line in &requests {
        let f = &line["fields"];
        assert!(
            f["route"].is_string() && f["status"].is_u64() && f["duration_ms"].is_f64(),
            "{line}"
        );
    }
    assert_eq!(requests[0]["fields"]["route"], "POST /login");
    assert_eq!(requests[0]["fields"]["account"], "wp/5");
    assert_eq!(requests[4]["fields"]["error"], "client_key_invalid");

    // Each request also wrote its metrics in CloudWatch's embedded format.
    let metrics: Vec<&Value> = lines.iter().filter(|l| l.get("_aws").is_some()).collect();
    let published: Vec<&&Value> = metrics
        .iter()
        .filter(|m| m["Function"] == "publish")
        .collect();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0]["Published"], 1.0);
    let fetched: Vec<&&Value> = metrics
        .iter()
        .filter(|m| m["Function"] == "fetch" && m.get("Fetched").is_some())
        .collect();
    assert_eq!(fetched.len(), 2);
    assert_eq!(fetched[0]["Fetched"], 1.0);
    assert_eq!(fetched[0]["Missed"], 0.0);
    assert!(fetched[0]["RedisLatency"].as_f64().unwrap() > 0.0);
    let declared = &fetched[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"];
    assert_eq!(declared.as_array().unwrap().len(), 3, "{declared}");
    assert!(
        metrics.iter().any(|m| m["KeyReuse"] == 1.0),
        "key reuse is a metric"
    );
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "a secret is in the log");
        // Not even a recognisable part of one.
        assert!(!text.contains(&secret[secret.len() - 20..]));
    }
}
