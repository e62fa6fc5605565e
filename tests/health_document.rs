//! `/health` keeps the layout of the original `EnhancedHealthCheck` document
//! and tells the truth about the traffic it saw.

mod support;

use serde_json::Value;
use serverwatch::ServerWatch;
use support::exposition::samples_named;
use support::serve_sample;

/// Every key path of `reference` must exist in `ours` with the same JSON type.
/// Maps keyed by data (status codes, endpoints) compare their values;
/// arrays compare their first element's keys.
fn assert_same_layout(reference: &Value, ours: &Value, path: &str, missing: &mut Vec<String>) {
    match (reference, ours) {
        (Value::Object(s), Value::Object(o)) => {
            let keyed_by_data = path.ends_with(".status_codes") || path.ends_with(".endpoints");
            for (key, reference_value) in s {
                if keyed_by_data {
                    for ours_value in o.values() {
                        assert_same_layout(
                            reference_value,
                            ours_value,
                            &format!("{path}.*"),
                            missing,
                        );
                    }
                    continue;
                }
                // Per-thread memory was the process's RSS repeated: replaced
                // by per-thread CPU time, on purpose.
                if path.ends_with(".threads[]") && key == "memory_info" {
                    continue;
                }
                match o.get(key) {
                    Some(ours_value) => assert_same_layout(
                        reference_value,
                        ours_value,
                        &format!("{path}.{key}"),
                        missing,
                    ),
                    None => missing.push(format!("{path}.{key}")),
                }
            }
        }
        (Value::Array(s), Value::Array(o)) => {
            if let (Some(s0), Some(o0)) = (s.first(), o.first()) {
                assert_same_layout(s0, o0, &format!("{path}[]"), missing);
            }
        }
        (Value::Number(s), Value::Number(o)) => {
            assert_eq!(
                s.is_f64(),
                o.is_f64(),
                "{path}: reference {s} and ours {o} differ in integer/float type"
            );
        }
        (s, o) => assert_eq!(
            std::mem::discriminant(s),
            std::mem::discriminant(o),
            "{path}: reference {s} and ours {o} differ in JSON type"
        ),
    }
}

#[tokio::test]
async fn has_every_key_path_of_the_reference_with_the_same_types() {
    let reference: Value =
        serde_json::from_str(include_str!("fixtures/enhanced-health-check-example.json")).unwrap();
    let watch = ServerWatch::builder().build().unwrap();
    let app = serve_sample(&watch).await;
    for path in ["/items/1", "/items/0", "/fail"] {
        app.get(path).await;
    }
    let response = app.get("/health").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let ours: Value = response.json().await.unwrap();
    let mut missing = Vec::new();
    assert_same_layout(&reference, &ours, "", &mut missing);
    assert!(missing.is_empty(), "missing key paths: {missing:?}");

    assert_eq!(ours["status"], "healthy");
    assert_eq!(ours["database"]["status"], "not configured");
    let process = &ours["memory_analysis"]["process"]["process"];
    assert_eq!(process["pid"], std::process::id());
    assert!(process["memory_info"]["rss"].as_u64().unwrap() > 0);
    let threads = ours["memory_analysis"]["process"]["threads"]
        .as_array()
        .unwrap();
    assert!((1..=5).contains(&threads.len()));
    assert!(
        threads
            .iter()
            .all(|t| t["cpu_seconds"].is_f64() && t["thread_id"].is_u64())
    );
}

#[tokio::test]
async fn counts_every_request_and_rates_errors_against_all_of_them() {
    let watch = ServerWatch::builder().build().unwrap();
    let app = serve_sample(&watch).await;
    for id in 1..=12 {
        app.get(&format!("/items/{id}")).await;
    }
    for path in [
        "/items/0",
        "/items/0",
        "/fail",
        "/fail",
        "/panic",
        "/api/users/3",
        "/nope",
    ] {
        app.get(path).await;
    }
    let health = app.health().await;
    let a = &health["application"];
    assert_eq!(a["total_requests"], 19, "panics count as requests too");
    assert_eq!(
        a["error_count"], 3,
        "5xx and panics are errors; 4xx are not"
    );
    assert_eq!(a["error_rate"].as_f64().unwrap(), 3.0 / 19.0 * 100.0);
    assert_eq!(
        a["status_codes"],
        serde_json::json!({"200": 13, "404": 3, "500": 3})
    );
    assert_eq!(
        a["endpoints"],
        serde_json::json!({
            "GET /items/{id}": 14, "GET /fail": 2, "GET /panic": 1,
            "GET /api/users/{id}": 1, "GET unmatched": 1
        })
    );
    assert_eq!(a["routes"]["/items/{id}"]["requests"], 14);
    assert_eq!(a["routes"]["/fail"]["errors"], 2);
    let errors = a["recent_errors"].as_array().unwrap();
    assert_eq!(errors.len(), 3);
    assert_eq!(errors[0]["endpoint"], "GET /panic");
    assert_eq!(errors[1]["error"], "Internal Server Error");
    let ts = errors[0]["timestamp"].as_str().unwrap();
    assert!(ts.len() == 23 && ts.ends_with(" UTC"), "timestamp {ts:?}");
    let latency = &a["latency"];
    let (p50, p95, p99) = (
        latency["p50"].as_f64().unwrap(),
        latency["p95"].as_f64().unwrap(),
        latency["p99"].as_f64().unwrap(),
    );
    assert!(0.0 < p50 && p50 <= p95 && p95 <= p99, "{latency}");
    assert!(a["average_response_time"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
async fn the_numbers_agree_with_metrics() {
    let watch = ServerWatch::builder().build().unwrap();
    let app = serve_sample(&watch).await;
    for path in ["/items/1", "/items/2", "/fail", "/nope"] {
        app.get(path).await;
    }
    let health = app.health().await;
    let text = app.metrics().await;
    let total: f64 = samples_named(&text, "http_server_request_duration_seconds_count")
        .iter()
        .map(|s| s.value)
        .sum();
    assert_eq!(
        health["application"]["total_requests"].as_f64().unwrap(),
        total
    );
    let rss = support::sample(&text, "process_resident_memory_bytes", &[]).unwrap();
    let health_rss = health["memory_analysis"]["process"]["process"]["memory_info"]["rss"]
        .as_f64()
        .unwrap();
    assert_eq!(rss, health_rss, "both read the same cached system reading");
}
