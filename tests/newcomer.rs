//! What a newcomer meets first, each through a real server: a nested
//! service (`ServeDir`) recorded under its nest's template; the
//! observability routes never recorded, however they are mounted, and what
//! each way of composing records; a route collision that names the path and
//! `path_prefix` at the caller's line; a name prefix and the switch for the
//! process and system metrics.

mod support;

use std::collections::BTreeSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use serverwatch::ServerWatch;
use support::exposition::parse_samples;
use support::prometheus::{PROTOBUF_ACCEPT, decode_protobuf};
use support::rotel::{Batch, Rotel};
use support::{TestApp, sample, sample_routes};
use tower_http::services::ServeDir;

const COUNT: &str = "http_server_request_duration_seconds_count";
const ACTIVE: &str = "http_server_active_requests";

/// A directory of static files, made for one test.
fn assets(test: &str) -> PathBuf {
    let dir = support::launcher::fresh_temp_dir(test);
    std::fs::create_dir(dir.join("css")).unwrap();
    std::fs::write(dir.join("css/site.css"), "body { margin: 0 }").unwrap();
    dir
}

/// The body of the answer to `request`.
async fn text_of(request: reqwest::RequestBuilder) -> String {
    request.send().await.unwrap().text().await.unwrap()
}

fn count(text: &str, labels: &[(&str, &str)]) -> Option<f64> {
    sample(text, COUNT, labels)
}

/// The app with `ServeDir` at `/static`, served twice: nested through the
/// watch and instrumented, and nested by hand with a layer told the path.
async fn serve_nested_assets(dir: &Path) -> [TestApp; 2] {
    let home = || Router::new().route("/", get(|| async { "home" }));
    let instrumented = ServerWatch::builder().build().unwrap();
    let layered = ServerWatch::builder().build().unwrap();
    let nested = instrumented.nest_service(home(), "/static", ServeDir::new(dir));
    [
        TestApp::serve(instrumented.instrument(nested)).await,
        TestApp::serve(
            home()
                .nest_service("/static", ServeDir::new(dir))
                .merge(layered.router())
                .layer(layered.layer().for_axum().nested_services(["/static"])),
        )
        .await,
    ]
}

#[tokio::test]
async fn a_nested_service_is_recorded_under_its_nest_template() {
    let dir = assets("nested");
    for app in &serve_nested_assets(&dir).await {
        let css = app.get("/static/css/site.css").await;
        assert_eq!(css.status(), 200);
        assert_eq!(css.text().await.unwrap(), "body { margin: 0 }");
        assert_eq!(app.status("/static/css/site.css").await, 200);
        assert_eq!(app.status("/static/css/missing.css").await, 404);
        assert_eq!(app.status("/nowhere").await, 404);

        let text = app.metrics().await;
        let nested = ("http_route", "/static/{*rest}");
        assert_eq!(
            count(&text, &[nested, ("http_response_status_code", "200")]),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            count(&text, &[nested, ("http_response_status_code", "404")]),
            Some(1.0),
            "a missing asset is the nested service's 404"
        );
        assert_eq!(
            count(
                &text,
                &[
                    ("http_route", "unmatched"),
                    ("http_response_status_code", "404")
                ]
            ),
            Some(1.0),
            "only the real 404 is unmatched: {text}"
        );
        assert!(!text.contains("site.css") && !text.contains("missing.css"));
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn no_request_to_a_nested_service_is_unmatched() {
    let dir = assets("nested-labels");
    for app in &serve_nested_assets(&dir).await {
        for path in ["/static/css/site.css", "/static/css/missing.css", "/"] {
            app.get(path).await;
        }
        let labels: BTreeSet<(String, String)> = parse_samples(&app.metrics().await)
            .into_iter()
            .filter(|s| s.name == COUNT)
            .map(|s| {
                (
                    s.labels["http_route"].clone(),
                    s.labels["http_response_status_code"].clone(),
                )
            })
            .collect();
        let want = [
            ("/", "200"),
            ("/static/{*rest}", "200"),
            ("/static/{*rest}", "404"),
        ];
        let want = want.map(|(route, status)| (route.to_owned(), status.to_owned()));
        assert_eq!(labels, BTreeSet::from(want));
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// Every observability route, under `prefix`.
fn observability_paths(prefix: &str) -> Vec<String> {
    [
        "/metrics",
        "/health",
        "/dashboard",
        "/dashboard/history",
        "/dashboard/assets/dashboard.js",
    ]
    .iter()
    .map(|path| format!("{prefix}{path}"))
    .collect()
}

/// Requests every observability route twice, then reads `/metrics`: what
/// the scrape shows of requests in flight (its own included, if it were
/// counted) and of the observability routes.
async fn scrape_after_visits(app: &TestApp, prefix: &str) -> String {
    for path in observability_paths(prefix) {
        for _ in 0..2 {
            assert_eq!(app.status(&path).await, 200, "{path}");
        }
    }
    app.get(&format!("{prefix}/metrics"))
        .await
        .text()
        .await
        .unwrap()
}

fn assert_no_observability_route(text: &str, prefix: &str) {
    for s in parse_samples(text) {
        let Some(route) = s.label("http_route") else {
            continue;
        };
        for path in ["/metrics", "/health", "/dashboard"] {
            assert!(
                !route.starts_with(&format!("{prefix}{path}")),
                "an observability route was recorded: {s:?}"
            );
        }
    }
    assert_eq!(
        sample(text, ACTIVE, &[("http_request_method", "GET")]),
        Some(0.0),
        "the scrape itself counts as a request in flight"
    );
}

#[tokio::test]
async fn the_observability_routes_are_never_recorded_however_mounted() {
    // Nested in the app, under the app's layer.
    let watch = ServerWatch::builder().build().unwrap();
    let app = sample_routes()
        .route("/api/health", get(|| async { "the app's own" }))
        .nest("/ops", watch.router())
        .layer(watch.layer());
    let app = TestApp::serve(app).await;
    assert_eq!(app.status("/items/1").await, 200);
    assert_eq!(app.status("/api/health").await, 200);
    let text = scrape_after_visits(&app, "/ops").await;
    assert_no_observability_route(&text, "/ops");
    assert_eq!(count(&text, &[("http_route", "/items/{id}")]), Some(1.0));
    assert_eq!(
        count(&text, &[("http_route", "/api/health")]),
        Some(1.0),
        "the app's own route of the same name is recorded"
    );
    let health: serde_json::Value = app.get("/ops/health").await.json().await.unwrap();
    assert_eq!(
        health["application"]["total_requests"], 2,
        "/health counts the app's requests only"
    );

    // Merged at the root, under the app's layer, with a token: refused
    // requests are not recorded either.
    let watch = ServerWatch::builder()
        .bearer_token("t0ken")
        .build()
        .unwrap();
    let app = sample_routes()
        .merge(watch.router())
        .layer(watch.layer().for_axum());
    let app = TestApp::serve(app).await;
    assert_eq!(app.status("/metrics").await, 401);
    assert_eq!(app.status("/items/1").await, 200);
    let text = text_of(app.client.get(app.url("/metrics")).bearer_auth("t0ken")).await;
    assert_no_observability_route(&text, "");
    assert_eq!(
        sample(&text, "serverwatch_unauthorized_requests_total", &[]),
        Some(1.0)
    );
    assert_eq!(count(&text, &[("http_route", "/items/{id}")]), Some(1.0));

    // instrument(), at the root ("" or "/") and under a prefix.
    for (prefix, mounted_at) in [("", ""), ("/", ""), ("/ops", "/ops")] {
        let watch = ServerWatch::builder().path_prefix(prefix).build().unwrap();
        let app = TestApp::serve(watch.instrument(sample_routes())).await;
        let text = scrape_after_visits(&app, mounted_at).await;
        assert_no_observability_route(&text, mounted_at);
    }
}

#[tokio::test]
async fn routes_added_after_instrument_are_served_but_not_recorded() {
    let watch = ServerWatch::builder().build().unwrap();
    let app = watch
        .instrument(sample_routes())
        .route("/late", get(|| async { "late" }));
    let app = TestApp::serve(app).await;
    assert_eq!(app.get("/late").await.text().await.unwrap(), "late");
    assert_eq!(app.status("/items/1").await, 200);
    let text = app.metrics().await;
    assert_eq!(count(&text, &[("http_route", "/items/{id}")]), Some(1.0));
    assert!(
        !text.contains("/late"),
        "as documented, a route added after instrument() is not recorded"
    );

    // The layer added last records them all, the fallback included.
    let watch = ServerWatch::builder().build().unwrap();
    let app = sample_routes()
        .route("/late", get(|| async { "late" }))
        .merge(watch.router())
        .layer(watch.layer().for_axum());
    let app = TestApp::serve(app).await;
    assert_eq!(app.status("/late").await, 200);
    assert_eq!(app.status("/nowhere").await, 404);
    let text = app.metrics().await;
    assert_eq!(count(&text, &[("http_route", "/late")]), Some(1.0));
    assert_eq!(count(&text, &[("http_route", "unmatched")]), Some(1.0));

    // A layer added before the observability routes are merged: axum keeps
    // the fallback of the router passed to `merge`, so the app's
    // instrumented fallback gives way to the observability router's, and
    // unmatched requests are not recorded (documented).
    let watch = ServerWatch::builder().build().unwrap();
    let app = sample_routes()
        .layer(watch.layer().for_axum())
        .merge(watch.router());
    let app = TestApp::serve(app).await;
    assert_eq!(app.status("/items/1").await, 200);
    assert_eq!(app.status("/nowhere").await, 404);
    let text = app.metrics().await;
    assert_eq!(count(&text, &[("http_route", "/items/{id}")]), Some(1.0));
    assert_eq!(count(&text, &[("http_route", "unmatched")]), None);
}

/// Where and with what a panic was raised.
type Raised = Arc<Mutex<Vec<(String, u32, String)>>>;

#[tokio::test]
async fn a_route_collision_names_the_path_and_path_prefix_at_the_callers_line() {
    let app = || sample_routes().route("/health", get(|| async { "the app's own health" }));
    let watch = ServerWatch::builder().build().unwrap();
    let raised: Raised = Arc::default();
    let hook = std::panic::take_hook();
    let seen = Arc::clone(&raised);
    std::panic::set_hook(Box::new(move |info| {
        let location = info.location().unwrap();
        let message = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        let at = (location.file().to_owned(), location.line(), message);
        seen.lock().unwrap().push(at);
    }));
    let line = line!() + 1;
    let caught = catch_unwind(AssertUnwindSafe(|| watch.instrument(app())));
    std::panic::set_hook(hook);
    let payload = caught.expect_err("the collision panics");
    let message = payload.downcast_ref::<String>().unwrap();
    assert!(message.contains("`/health`"), "{message}");
    assert!(message.contains("path_prefix"), "{message}");
    let (file, at, last) = raised.lock().unwrap().last().cloned().unwrap();
    assert_eq!(&last, message);
    assert!(file.ends_with("newcomer.rs"), "raised at {file}:{at}");
    assert_eq!(at, line, "raised at {file}:{at}");

    // What the message says to do works.
    let watch = ServerWatch::builder().path_prefix("/ops").build().unwrap();
    let app = TestApp::serve(watch.instrument(app())).await;
    let own = app.get("/health").await.text().await.unwrap();
    assert_eq!(own, "the app's own health");
    let ours: serde_json::Value = app.get("/ops/health").await.json().await.unwrap();
    assert_eq!(ours["status"], "healthy");
}

#[tokio::test]
async fn a_metric_prefix_and_no_process_or_system_metrics() {
    let rotel = Rotel::start().await;
    let watch = ServerWatch::builder()
        .metric_prefix("inventory")
        .process_and_system_metrics(false)
        .otlp_endpoint(rotel.http_endpoint())
        .otlp_export_interval(Duration::from_millis(300))
        .build()
        .unwrap();
    let app = TestApp::serve(watch.instrument(sample_routes())).await;
    for id in 1..=3 {
        assert_eq!(app.status(&format!("/items/{id}")).await, 200);
    }

    let prefixed = format!("inventory_{COUNT}");
    for accept in ["text/plain", "application/openmetrics-text; version=1.0.0"] {
        let text = text_of(app.client.get(app.url("/metrics")).header("accept", accept)).await;
        assert_eq!(
            sample(&text, &prefixed, &[("http_route", "/items/{id}")]),
            Some(3.0),
            "{text}"
        );
        for line in text.lines().filter(|l| !l.is_empty() && *l != "# EOF") {
            let name = line
                .strip_prefix("# HELP ")
                .or_else(|| line.strip_prefix("# TYPE "))
                .or_else(|| line.strip_prefix("# UNIT "))
                .unwrap_or(line);
            assert!(name.starts_with("inventory_"), "not prefixed: {line}");
            assert!(
                !name.starts_with("inventory_process_") && !name.starts_with("inventory_system_"),
                "process and system metrics are off: {line}"
            );
        }
    }

    // The protobuf format too (prometheus-client puts the prefix on).
    let protobuf = app.metrics_as(PROTOBUF_ACCEPT).await;
    let families = decode_protobuf(&protobuf);
    assert!(
        families
            .iter()
            .any(|f| f.name == "inventory_http_server_request_duration_seconds"),
        "no prefixed duration family"
    );
    for family in &families {
        assert!(
            family.name.starts_with("inventory_"),
            "not prefixed: {}",
            family.name
        );
        assert!(
            !family.name.starts_with("inventory_process_"),
            "{}",
            family.name
        );
    }

    let health = app.health().await;
    assert_eq!(
        health["memory_analysis"],
        serde_json::json!({ "status": "disabled" })
    );
    assert!(health["uptime"]["seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(health["application"]["total_requests"], 3);

    // OTLP keeps the semantic-convention names, without process or system
    // metrics.
    let batch = rotel
        .wait_for_batch(
            "a batch with the three requests",
            Duration::from_secs(30),
            |b: &Batch| match b.total_count("http.server.request.duration") {
                3 => Ok(()),
                n => Err(format!("{n} of 3 requests")),
            },
        )
        .await;
    let names = batch.names();
    assert!(names.contains(&"http.server.active_requests"), "{names:?}");
    assert!(
        !names.iter().any(|n| n.starts_with("process.")
            || n.starts_with("system.")
            || n.contains("inventory")),
        "{names:?}"
    );
}
