//! A real Prometheus scrapes an instrumented app and sees, through PromQL,
//! exactly the requests sent: per route template, status and error type,
//! with no raw path as a label value. It asks for gzip, and gets it.

mod support;

use support::prometheus;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use support::prometheus::{DEADLINE, Prometheus, vector, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_sees_every_request_by_route_status_and_error() {
    let watch = serverwatch::ServerWatch::builder()
        .service_name("scrape-test")
        .build()
        .unwrap();
    // The Accept-Encoding of each scrape, and the Content-Encoding of its answer.
    let scrapes: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let seen = Arc::clone(&scrapes);
    let app = prometheus::app(&watch).layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let seen = Arc::clone(&seen);
            async move {
                let header = |h: &axum::http::HeaderMap, name| {
                    h.get(name)
                        .and_then(|v: &axum::http::HeaderValue| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned()
                };
                let metrics = request.uri().path() == "/metrics";
                let accept = header(request.headers(), "accept-encoding");
                let response = next.run(request).await;
                if metrics {
                    let encoding = header(response.headers(), "content-encoding");
                    seen.lock().unwrap().push((accept, encoding));
                }
                response
            }
        },
    ));
    let addr = prometheus::serve(app).await;
    let prom = Prometheus::start("app", addr).await;

    prometheus::send_traffic(addr).await;

    // Exactly the counts sent, per series: nothing missing, nothing extra
    // (Prometheus's own scrapes of /metrics are not recorded).
    let expected = prometheus::expected_counts();
    let promql = "sum by (http_route, http_response_status_code, error_type) \
                  (http_server_request_duration_seconds_count{job=\"app\"})";
    wait_for("the request counts in Prometheus", DEADLINE, || async {
        let counts: BTreeMap<(String, String, String), f64> = vector(&prom.query(promql).await)
            .into_iter()
            .map(|(labels, value)| {
                let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
                (
                    (
                        label("http_route"),
                        label("http_response_status_code"),
                        label("error_type"),
                    ),
                    value,
                )
            })
            .collect();
        if counts == expected {
            Ok(())
        } else {
            Err(format!(
                "got {counts:?}, want {expected:?}; targets: {}",
                prom.targets().await
            ))
        }
    })
    .await;

    // Prometheus scraped the target without complaint (its OpenMetrics
    // negotiation included).
    wait_for(
        "the target to be up, without scrape error",
        DEADLINE,
        || async {
            let targets = prom.targets_json().await;
            match targets.as_array().map(Vec::as_slice) {
                Some([t]) if t["health"] == "up" && t["lastError"] == "" => Ok(()),
                _ => Err(targets.to_string()),
            }
        },
    )
    .await;

    wait_for("up{job=\"app\"} == 1", DEADLINE, || async {
        let up = vector(&prom.query("up{job=\"app\"}").await);
        match up.as_slice() {
            [(_, v)] if *v == 1.0 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    wait_for("process_resident_memory_bytes > 0", DEADLINE, || async {
        let rss = vector(
            &prom
                .query("process_resident_memory_bytes{job=\"app\"}")
                .await,
        );
        match rss.as_slice() {
            [(_, v)] if *v > 0.0 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    // Route templates, never raw paths, in every label of every series.
    let series = prom.series("{job=\"app\"}").await;
    assert!(
        series
            .iter()
            .any(|s| s.get("http_route").map(String::as_str) == Some("/api/users/{id}")),
        "no series for the nested route in {series:?}"
    );
    let raw = prometheus::raw_path_labels(&series, &prometheus::raw_paths());
    assert!(raw.is_empty(), "raw paths as label values: {raw:?}");

    // Every one of those answers came gzip-compressed, as Prometheus asked.
    let scrapes = scrapes.lock().unwrap().clone();
    assert!(!scrapes.is_empty());
    for (accept, encoding) in &scrapes {
        assert!(accept.contains("gzip"), "Prometheus asked for {accept:?}");
        assert_eq!(encoding, "gzip", "{scrapes:?}");
    }
}
