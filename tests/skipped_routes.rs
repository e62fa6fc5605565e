//! Routes the app says not to record are absent from every view: `/metrics`,
//! the OTLP push (to a real receiver, rotel), `/health` and the dashboard's
//! history. The app still answers them, panics caught.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use axum::routing::get;
use serverwatch::ServerWatch;
use support::exposition::parse_samples;
use support::rotel::Rotel;

const DEADLINE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipped_routes_are_absent_from_every_view() {
    let rotel = Rotel::start().await;
    let watch = ServerWatch::builder()
        .skip_routes(["/favicon.ico", "/ping", "/api/users/{id}"])
        .otlp_endpoint(rotel.http_endpoint())
        .otlp_export_interval(Duration::from_millis(300))
        .build()
        .unwrap();
    let routes = support::sample_routes()
        .route("/favicon.ico", get(|| async { "icon" }))
        .route(
            "/ping",
            get(|| async {
                if true {
                    panic!("a skipped route's panic is still caught");
                }
                "pong"
            }),
        );
    let app = support::TestApp::serve(watch.instrument(routes)).await;
    for _ in 0..5 {
        assert_eq!(app.status("/favicon.ico").await, 200);
        assert_eq!(app.status("/ping").await, 500);
        assert_eq!(app.status("/api/users/7").await, 200, "nested");
    }
    for id in 1..=3 {
        assert_eq!(app.status(&format!("/items/{id}")).await, 200);
    }

    // /health: only the three recorded requests.
    let health = support::eventually("the recorded requests", DEADLINE, || async {
        let health = app.health().await;
        (health["application"]["total_requests"] == 3).then_some(health)
    })
    .await;
    let application = &health["application"];
    let routes: Vec<&String> = application["routes"].as_object().unwrap().keys().collect();
    assert_eq!(routes, ["/items/{id}"]);
    assert_eq!(
        application["error_count"], 0,
        "the skipped panics count nowhere"
    );
    assert!(application["recent_errors"].as_array().unwrap().is_empty());

    // /metrics.
    let text = app.metrics().await;
    let recorded = routes_on(&text);
    for skipped in ["/favicon.ico", "/ping", "/api/users/{id}"] {
        assert!(
            !recorded.contains(skipped),
            "{skipped} on /metrics:\n{text}"
        );
    }
    assert!(recorded.contains("/items/{id}"), "{text}");

    // OTLP.
    let batch = rotel
        .wait_for_batch("the recorded requests", DEADLINE, |b| {
            match b.total_count("http.server.request.duration") {
                3 => Ok(()),
                n => Err(format!("{n} requests")),
            }
        })
        .await;
    let duration = batch.metric("http.server.request.duration").unwrap();
    let otlp_routes: Vec<String> = duration
        .points
        .iter()
        .filter_map(|p| Some(p.attr("http.route")?.as_str()?.to_owned()))
        .collect();
    assert_eq!(otlp_routes, ["/items/{id}"]);

    // The dashboard's history: its routes come from the same summary.
    let history = support::eventually("a history sample", DEADLINE, || async {
        let doc: serde_json::Value = app.get("/dashboard/history").await.json().await.ok()?;
        let samples = doc["samples"].as_array()?.clone();
        (!samples.is_empty()).then_some(samples)
    })
    .await;
    for sample in history {
        let routes: Vec<&String> = sample["routes"].as_object().unwrap().keys().collect();
        assert!(routes.iter().all(|r| *r == "/items/{id}"), "{routes:?}");
    }
}

/// A skipped route that is also an observability route (mounted inside the
/// app's layer) is in no gauge: the route's own unrecording must not take it
/// off one either.
#[tokio::test]
async fn a_skipped_observability_route_leaves_the_active_gauge_at_zero() {
    let watch = ServerWatch::builder()
        .skip_routes(["/ops/metrics"])
        .build()
        .unwrap();
    let app = support::sample_routes()
        .nest("/ops", watch.router())
        .layer(watch.layer());
    let app = support::TestApp::serve(app).await;
    assert_eq!(app.status("/items/1").await, 200);
    let mut text = String::new();
    for _ in 0..3 {
        text = app.get("/ops/metrics").await.text().await.unwrap();
    }
    assert_eq!(
        support::sample(
            &text,
            "http_server_active_requests",
            &[("http_request_method", "GET")]
        ),
        Some(0.0),
        "{text}"
    );
    assert!(!routes_on(&text).contains("/ops/metrics"), "{text}");
}

/// Every `http_route` label value on `/metrics`.
fn routes_on(text: &str) -> BTreeSet<String> {
    parse_samples(text)
        .into_iter()
        .filter_map(|mut s| s.labels.remove("http_route"))
        .collect()
}
