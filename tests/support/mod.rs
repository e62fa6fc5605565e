//! What the integration tests share, one module tree that each test binary
//! includes with `mod support;`: a sample app served on a free loopback port
//! and a reader for the Prometheus text of `/metrics` (here), and the real
//! servers and collectors the tests start (the submodules).
#![allow(dead_code, reason = "each test binary uses a different part")]

pub mod board;
pub mod collector;
pub mod exposition;
pub mod launcher;
pub mod logs;
pub mod mongo;
pub mod otlp;
pub mod prometheus;
pub mod rotel;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serverwatch::ServerWatch;

use exposition::{Sample, samples_named};

/// What a scraper sends to ask for OpenMetrics.
pub const OPENMETRICS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0";

/// A served app; the server task ends with the test's runtime.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
}

impl TestApp {
    pub async fn serve(app: Router) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            addr,
            client: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn status(&self, path: &str) -> u16 {
        self.get(path).await.status().as_u16()
    }

    pub async fn metrics(&self) -> String {
        self.get("/metrics").await.text().await.unwrap()
    }

    /// `/metrics` in the format that `accept` asks for.
    pub async fn metrics_as(&self, accept: &str) -> Vec<u8> {
        let request = self
            .client
            .get(self.url("/metrics"))
            .header("accept", accept);
        request
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec()
    }

    /// `/metrics` in OpenMetrics.
    pub async fn openmetrics(&self) -> String {
        String::from_utf8(self.metrics_as(OPENMETRICS_ACCEPT).await).unwrap()
    }

    pub async fn health(&self) -> serde_json::Value {
        self.get("/health").await.json().await.unwrap()
    }

    /// The JSON document at `path`, asked for with the bearer `token`.
    pub async fn json_with_token(&self, path: &str, token: &str) -> serde_json::Value {
        let response = self.client.get(self.url(path)).bearer_auth(token);
        response.send().await.unwrap().json().await.unwrap()
    }
}

/// The routes of the demo: `/items/{id}` (404 for 0), `/fail` (500),
/// `/panic`, `/echo` (POST, answers the body), and `/api/users/{id}` in a
/// nested router.
pub fn sample_routes() -> Router {
    Router::new()
        .route("/items/{id}", get(item))
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "failed") }),
        )
        .route("/panic", get(panics))
        .route("/echo", post(|body: axum::body::Bytes| async move { body }))
        .nest(
            "/api",
            Router::new().route(
                "/users/{id}",
                get(|Path(id): Path<u32>| async move { id.to_string() }),
            ),
        )
}

/// `/status/{code}`, answering with that status: one label set per code.
pub fn status_routes() -> Router {
    Router::new().route(
        "/status/{code}",
        get(|Path(code): Path<u16>| async move { StatusCode::from_u16(code).unwrap() }),
    )
}

async fn item(Path(id): Path<u64>) -> Result<String, StatusCode> {
    if id == 0 {
        Err(StatusCode::NOT_FOUND)
    } else {
        Ok(format!("item {id}"))
    }
}

async fn panics() -> &'static str {
    panic!("boom: handler panicked on purpose")
}

/// Serves [`sample_routes`] instrumented by `watch`.
pub async fn serve_sample(watch: &ServerWatch) -> TestApp {
    TestApp::serve(watch.instrument(sample_routes())).await
}

/// The value of the sample `name{labels…}` whose labels include every pair
/// of `labels`, if exactly one sample matches (more than one fails the
/// test).
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<Sample> = samples_named(text, name)
        .into_iter()
        .filter(|s| s.has_labels(labels))
        .collect();
    match found.as_slice() {
        [] => None,
        [one] => Some(one.value),
        more => panic!("more than one {name} sample matches {labels:?}: {more:?}"),
    }
}

/// Number of samples of `name` (the distinct label sets).
pub fn series_count(text: &str, name: &str) -> usize {
    samples_named(text, name).len()
}

/// Polls `check` until it returns `Some`, failing the test after `deadline`.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A YAML file read as JSON, by Python's yaml (PyYAML, which
/// `scripts/install-test-deps` installs): no YAML crate in the tests.
pub fn yaml_file(path: &std::path::Path) -> serde_json::Value {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
        ])
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3: {e}"));
    assert!(
        out.status.success(),
        "reading {} with Python's yaml failed (run scripts/install-test-deps for PyYAML): {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{}: not JSON-compatible YAML: {e}", path.display()))
}
