//! The app's own request labels, route groups and status classes, read back
//! where they are used: by PromQL in a real Prometheus, as attributes in a
//! real OTLP receiver (rotel), and in `/health`. Past the series cap, label
//! sets go to the overflow series with their error.

mod support;

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use serverwatch::{Builder, OtlpProtocol, RequestHead, ResponseHead, ServerWatch};
use support::TestApp;
use support::exposition::samples_named;
use support::otlp::{DEADLINE, DURATION, has_requests};
use support::prometheus::{Prometheus, vector, wait_for};
use support::rotel::{AttrValue, Rotel};

const COUNT: &str = "http_server_request_duration_seconds_count";

/// The tier a request asks for in `x-tier`, from a fixed set.
fn tier(request: RequestHead<'_>) -> Option<&'static str> {
    match request.headers.get("x-tier")?.as_bytes() {
        b"gold" => Some("gold"),
        _ => Some("standard"),
    }
}

/// Whether the handler served the answer from its cache (`x-cache`).
fn cache(response: ResponseHead<'_>) -> Option<&'static str> {
    let hit = response.headers.get("x-cache")? == "hit";
    Some(if hit { "hit" } else { "miss" })
}

/// Tier and cache labels, the static routes in one group, status classes.
fn builder() -> Builder {
    ServerWatch::builder()
        .service_name("labels-test")
        .request_label("tier", tier)
        .response_label("cache", cache)
        .group_routes("/static/*", ["/static/{*path}", "/assets/{*path}"])
        .status_code_classes(true)
}

fn routes() -> Router {
    async fn item(Path(id): Path<u64>) -> Result<(HeaderMap, String), StatusCode> {
        if id == 0 {
            return Err(StatusCode::NOT_FOUND);
        }
        let mut headers = HeaderMap::new();
        let cached = if id % 2 == 0 { "hit" } else { "miss" };
        headers.insert("x-cache", cached.parse().unwrap());
        Ok((headers, format!("{{\"id\":{id}}}")))
    }
    Router::new()
        .route("/items/{id}", get(item))
        .route("/static/{*path}", get(|| async { "css" }))
        .route("/assets/{*path}", get(|| async { "js" }))
        .route(
            "/fail",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "down") }),
        )
}

/// `GET path` with `x-tier: tier` (none for ""), which must get `status`.
async fn send(app: &TestApp, path: &str, tier: &str, status: u16) {
    let mut request = app.client.get(app.url(path));
    if !tier.is_empty() {
        request = request.header("x-tier", tier);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status().as_u16(), status, "GET {path}");
    // The request is recorded once its body is done.
    response.bytes().await.unwrap();
}

/// The traffic whose counts every check below expects: gold 8 (2 of them
/// failed), standard 7, no tier 4; cache hit 5, miss 5; `/static/*` 5;
/// 2xx 15, 4xx 2, 5xx 2.
async fn send_traffic(app: &TestApp) {
    for id in 1..=6 {
        send(app, &format!("/items/{id}"), "gold", 200).await;
    }
    for id in 7..=10 {
        send(app, &format!("/items/{id}"), "", 200).await;
    }
    for _ in 0..2 {
        send(app, "/items/0", "bronze", 404).await;
        send(app, "/fail", "gold", 503).await;
    }
    for file in ["a.css", "b.css", "c.css"] {
        send(app, &format!("/static/{file}"), "standard", 200).await;
    }
    for file in ["a.js", "b.js"] {
        send(app, &format!("/assets/{file}"), "standard", 200).await;
    }
}

const TOTAL: u64 = 19;

fn counts(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_queries_by_the_apps_label_the_group_and_the_class() {
    let watch = builder().build().unwrap();
    let app = TestApp::serve(watch.instrument(routes())).await;
    let prom = Prometheus::start("app", app.addr).await;
    send_traffic(&app).await;

    // Each query's result, keyed by the values of its `by` labels.
    let by = |labels: &'static [&'static str]| {
        let prom = &prom;
        move || async move {
            let promql = format!("sum by ({}) ({COUNT}{{job=\"app\"}})", labels.join(", "));
            let result: BTreeMap<String, f64> = vector(&prom.query(&promql).await)
                .into_iter()
                .map(|(series, value)| {
                    let key = labels
                        .iter()
                        .map(|l| series.get(*l).map_or("", |v| v.as_str()));
                    (key.collect::<Vec<_>>().join(" "), value)
                })
                .collect();
            let total: f64 = result.values().sum();
            if total == TOTAL as f64 {
                Ok(result)
            } else {
                Err(format!("{total} of {TOTAL} requests: {result:?}"))
            }
        }
    };
    let tiers = wait_for("the requests per tier", DEADLINE, by(&["tier"])).await;
    assert_eq!(
        tiers,
        counts(&[("gold", 8.0), ("standard", 7.0), ("", 4.0)])
    );
    let cached = wait_for("the requests per cache", DEADLINE, by(&["cache"])).await;
    assert_eq!(cached, counts(&[("hit", 5.0), ("miss", 5.0), ("", 9.0)]));
    let routes = wait_for("the requests per route", DEADLINE, by(&["http_route"])).await;
    assert_eq!(
        routes,
        counts(&[("/items/{id}", 12.0), ("/static/*", 5.0), ("/fail", 2.0)])
    );
    const CLASS: [&str; 2] = ["http_response_status_code", "error_type"];
    let classes = wait_for("the requests per class", DEADLINE, by(&CLASS)).await;
    assert_eq!(
        classes,
        counts(&[("2xx ", 15.0), ("4xx ", 2.0), ("5xx 503", 2.0)])
    );
    // The labels together: a gold request that failed.
    let failed = vector(
        &prom
            .query(&format!(
                "sum({COUNT}{{tier=\"gold\", http_response_status_code=\"5xx\"}})"
            ))
            .await,
    );
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].1, 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_otlp_receiver_gets_the_labels_as_attributes() {
    let rotel = Rotel::start().await;
    let protocol = OtlpProtocol::HttpProtobuf;
    let watch = builder()
        .otlp_endpoint(rotel.endpoint(protocol))
        .otlp_protocol(protocol)
        .otlp_export_interval(std::time::Duration::from_millis(300))
        .build()
        .unwrap();
    let app = TestApp::serve(watch.instrument(routes())).await;
    send_traffic(&app).await;
    let batch = rotel
        .wait_for_batch("every request", DEADLINE, has_requests(TOTAL))
        .await;
    let duration = batch.metric(DURATION).unwrap();
    let count = |wanted: &[(&str, AttrValue)]| -> u64 {
        duration
            .points_with(wanted)
            .iter()
            .filter_map(|p| p.count)
            .sum()
    };
    let s = |v: &str| AttrValue::Str(v.to_owned());
    assert_eq!(count(&[("tier", s("gold"))]), 8);
    assert_eq!(count(&[("tier", s("standard"))]), 7);
    assert_eq!(count(&[("cache", s("hit"))]), 5);
    assert_eq!(count(&[("http.route", s("/static/*"))]), 5);
    // A class is a string; a 5xx keeps its code as its error.type.
    assert_eq!(count(&[("http.response.status_code", s("2xx"))]), 15);
    let failed = [
        ("http.response.status_code", s("5xx")),
        ("error.type", s("503")),
        ("tier", s("gold")),
    ];
    assert_eq!(count(&failed), 2);
    let untiered = duration
        .points
        .iter()
        .filter(|p| !p.attributes.contains_key("tier"))
        .filter_map(|p| p.count)
        .sum::<u64>();
    assert_eq!(untiered, 4, "no value, no attribute");
    watch.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_adds_the_requests_per_label_and_shows_classes() {
    let watch = builder().build().unwrap();
    let app = TestApp::serve(watch.instrument(routes())).await;
    send_traffic(&app).await;
    let health: serde_json::Value = app.get("/health").await.json().await.unwrap();
    let application = &health["application"];
    assert_eq!(application["total_requests"], TOTAL);
    let labels = &application["labels"];
    assert_eq!(labels["tier"]["gold"]["requests"], 8);
    assert_eq!(labels["tier"]["gold"]["errors"], 2);
    assert_eq!(labels["tier"]["standard"]["requests"], 7);
    assert_eq!(labels["cache"]["hit"]["requests"], 5);
    assert_eq!(
        application["status_codes"],
        serde_json::json!({"2xx": 15, "4xx": 2, "5xx": 2})
    );
    assert_eq!(application["routes"]["/static/*"]["requests"], 5);
    assert_eq!(application["endpoints"]["GET /static/*"], 5);
    // The recent errors keep the code.
    assert_eq!(application["recent_errors"][0]["status"], 503);
    assert_eq!(application["recent_errors"][0]["endpoint"], "GET /fail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_sets_past_the_cap_go_to_the_overflow_with_their_error() {
    let watch = ServerWatch::builder()
        .max_series(2)
        .request_label("tier", tier)
        .build()
        .unwrap();
    let app = TestApp::serve(watch.instrument(routes())).await;
    send(&app, "/items/1", "gold", 200).await;
    send(&app, "/items/2", "standard", 200).await;
    // Both label sets of the app's are taken: no tier is a third.
    send(&app, "/fail", "", 503).await;
    send(&app, "/items/3", "", 200).await;
    let text = app.metrics().await;
    let samples = samples_named(&text, COUNT);
    let by_labels: BTreeMap<BTreeMap<String, String>, f64> =
        samples.into_iter().map(|s| (s.labels, s.value)).collect();
    let labels = |pairs: &[(&str, &str)]| support::exposition::labels(pairs);
    let overflow = |error: Option<&str>| {
        let mut pairs = vec![("otel_metric_overflow", "true")];
        pairs.extend(error.map(|e| ("error_type", e)));
        by_labels.get(&labels(&pairs)).copied()
    };
    assert_eq!(overflow(Some("503")), Some(1.0), "{text}");
    assert_eq!(overflow(None), Some(1.0), "{text}");
    let tiers: Vec<&str> = by_labels
        .keys()
        .filter_map(|l| l.get("tier").map(String::as_str))
        .collect();
    assert_eq!(tiers, ["gold", "standard"]);
}

#[test]
fn wrong_labels_and_groups_are_named() {
    let cases: [(Builder, &str); 6] = [
        (
            ServerWatch::builder().request_label("tenant-tier", tier),
            "request_label",
        ),
        (
            ServerWatch::builder().request_label("http_request_method", tier),
            "request_label",
        ),
        (
            ServerWatch::builder()
                .request_label("tier", tier)
                .request_label("tier", tier),
            "request_label",
        ),
        (
            ServerWatch::builder().response_label("error.type", cache),
            "response_label",
        ),
        (
            (0..9).fold(ServerWatch::builder(), |b, n| {
                b.response_label(format!("label_{n}"), cache)
            }),
            "response_label",
        ),
        (
            ServerWatch::builder().group_routes("/x", ["/x/{*a}", "/x/{*b}"]),
            "group_routes",
        ),
    ];
    for (builder, setting) in cases {
        let err = builder.build().unwrap_err();
        assert_eq!(err.setting(), setting, "{err}");
        assert!(err.to_string().contains(setting), "{err}");
    }
}
