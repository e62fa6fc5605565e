//! Helpers for the tests that check `/metrics` against the real Prometheus
//! tools: a test app served in-process, a fixed request mix, a real
//! Prometheus server (started on a free port with its own TSDB, killed on
//! drop) and its query API, `promtool check metrics`, Python's strict
//! OpenMetrics parser.
//!
//! Nothing here skips: a missing tool fails the test and says to run
//! `scripts/install-test-deps`.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use super::exposition::{Exemplar, Sample, parse_value};
use super::launcher::{Run, Server, ServerKind, poll, require};
use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::Value;

/// How long anything may take to appear (a scrape result, a recorded
/// request).
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Pause between two polls.
const POLL_EVERY: Duration = Duration::from_millis(100);

const INSTALL_HINT: &str = "run scripts/install-test-deps to install Prometheus, promtool and \
                            Python's prometheus_client";

// ---------------------------------------------------------------------------
// Tools

/// Fails the test, telling how to install it, unless `program args` runs and
/// exits with success.
pub fn require_tool(program: &str, args: &[&str]) {
    require(program, args, INSTALL_HINT);
}

fn run_with_stdin(program: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{program}`: {e}\n{INSTALL_HINT}"));
    // Write from a thread so that a tool writing a lot while we write cannot
    // deadlock on full pipes.
    let mut input = child.stdin.take().expect("piped stdin");
    let text = stdin.to_owned();
    let writer = std::thread::spawn(move || input.write_all(text.as_bytes()));
    let out = child.wait_with_output().expect("waiting for the tool");
    writer
        .join()
        .expect("stdin writer thread")
        .unwrap_or_else(|e| panic!("writing to `{program}`: {e}"));
    out
}

/// What `promtool check metrics` said about an exposition in the classic
/// Prometheus text format.
#[derive(Debug)]
pub struct PromtoolReport {
    pub success: bool,
    /// stdout and stderr together: the lint problems, if any.
    pub output: String,
}

/// Runs `promtool check metrics` with `text` on stdin.
pub fn promtool_check_metrics(text: &str) -> PromtoolReport {
    require_tool("promtool", &["--version"]);
    let out = run_with_stdin("promtool", &["check", "metrics"], text);
    PromtoolReport {
        success: out.status.success(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// One metric family as the strict OpenMetrics parser saw it.
#[derive(Debug, Clone)]
pub struct OmFamily {
    pub name: String,
    pub kind: String,
    pub unit: String,
    pub samples: Vec<Sample>,
}

const OPENMETRICS_PARSER: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families

text = sys.stdin.read()
families = []
for family in text_string_to_metric_families(text):
    families.append({
        "name": family.name,
        "type": family.type,
        "unit": family.unit,
        "samples": [
            {
                "name": s.name,
                "labels": dict(s.labels),
                "value": repr(float(s.value)),
                "exemplar": s.exemplar and {
                    "labels": dict(s.exemplar.labels),
                    "value": repr(float(s.exemplar.value)),
                },
            }
            for s in family.samples
        ],
    })
json.dump(families, sys.stdout)
"#;

/// Parses `text` with `prometheus_client`'s strict OpenMetrics parser.
/// `Err` carries the parser's complaint (its traceback).
pub fn parse_openmetrics_strict(text: &str) -> Result<Vec<OmFamily>, String> {
    require_tool(
        "python3",
        &["-c", "import prometheus_client.openmetrics.parser"],
    );
    let out = run_with_stdin("python3", &["-c", OPENMETRICS_PARSER], text);
    if !out.status.success() {
        return Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let families: Vec<Value> =
        serde_json::from_slice(&out.stdout).expect("the parser script prints JSON");
    Ok(families
        .into_iter()
        .map(|f| OmFamily {
            name: f["name"].as_str().unwrap().to_owned(),
            kind: f["type"].as_str().unwrap().to_owned(),
            unit: f["unit"].as_str().unwrap_or_default().to_owned(),
            samples: f["samples"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| Sample {
                    name: s["name"].as_str().unwrap().to_owned(),
                    labels: labels(&s["labels"]).unwrap(),
                    value: python_float(&s["value"]),
                    exemplar: s["exemplar"].as_object().map(|e| Exemplar {
                        labels: labels(&e["labels"]).unwrap(),
                        value: python_float(&e["value"]),
                    }),
                })
                .collect(),
        })
        .collect())
}

// ---------------------------------------------------------------------------
// Polling

/// Calls `check` until it returns `Ok`, at most until `deadline` has passed;
/// then fails with `what` and the last `Err`.
pub async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    poll(deadline, POLL_EVERY, check)
        .await
        .unwrap_or_else(|last| {
            panic!("timed out after {deadline:?} waiting for {what}; last: {last}")
        })
}

// ---------------------------------------------------------------------------
// The test app and its traffic

/// The app's routes, wrapped by `watch.instrument`.
pub fn app(watch: &serverwatch::ServerWatch) -> Router {
    async fn item(Path(id): Path<u64>) -> Result<String, StatusCode> {
        if id == 0 {
            return Err(StatusCode::NOT_FOUND);
        }
        Ok(format!("{{\"id\":{id}}}"))
    }
    async fn panics() -> &'static str {
        panic!("the /panic route panics on purpose")
    }
    async fn user(Path(id): Path<u64>) -> String {
        format!("user {id}")
    }
    let app = Router::new()
        .route("/items/{id}", get(item))
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "failed on purpose") }),
        )
        .route("/panic", get(panics))
        .nest("/api", Router::new().route("/users/{id}", get(user)));
    watch.instrument(app)
}

/// Serves [`app`] on 127.0.0.1, on a free port, in this runtime.
pub async fn spawn_app(watch: &serverwatch::ServerWatch) -> SocketAddr {
    serve(app(watch)).await
}

/// Serves `app` on 127.0.0.1, on a free port, in this runtime.
pub async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding the test app");
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serving the app") });
    addr
}

/// One expected request series: route template, status, `error_type` ("" for
/// none), and how many requests were sent.
pub type Expected = (&'static str, u16, &'static str, u64);

/// The request mix, and what each request must be recorded as.
pub const EXPECTED: [Expected; 6] = [
    ("/items/{id}", 200, "", 37),
    ("/items/{id}", 404, "", 5),
    ("/fail", 500, "500", 3),
    ("/panic", 500, "panic", 2),
    ("unmatched", 404, "", 4),
    ("/api/users/{id}", 200, "", 6),
];

/// Total requests of [`EXPECTED`].
pub fn expected_total() -> u64 {
    EXPECTED.iter().map(|e| e.3).sum()
}

/// The raw paths the mix sends, for checking none becomes a label value.
pub fn raw_paths() -> Vec<String> {
    let mut paths = Vec::new();
    paths.extend((1..=37).map(|i| format!("/items/{i}")));
    paths.extend((0..5).map(|_| "/items/0".to_owned()));
    paths.extend((0..3).map(|_| "/fail".to_owned()));
    paths.extend((0..2).map(|_| "/panic".to_owned()));
    paths.extend((1..=4).map(|i| format!("/nope/{i}")));
    paths.extend((1..=6).map(|i| format!("/api/users/{i}")));
    paths
}

/// Sends the mix of [`EXPECTED`] and checks each answer's status.
pub async fn send_traffic(addr: SocketAddr) {
    let client = reqwest::Client::new();
    let paths = raw_paths();
    assert_eq!(paths.len() as u64, expected_total());
    for path in paths {
        let want = match path.as_str() {
            "/items/0" | "/nope/1" | "/nope/2" | "/nope/3" | "/nope/4" => 404,
            "/fail" | "/panic" => 500,
            _ => 200,
        };
        let response = client
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(response.status().as_u16(), want, "GET {path}");
        // Read the body: the request is recorded once its body is done.
        response.bytes().await.unwrap();
    }
}

/// The expected counts keyed like [`counts_by_series`] keys them.
pub fn expected_counts() -> BTreeMap<(String, String, String), f64> {
    EXPECTED
        .iter()
        .map(|(route, status, error, n)| {
            (
                ((*route).to_owned(), status.to_string(), (*error).to_owned()),
                *n as f64,
            )
        })
        .collect()
}

/// Sums `http_server_request_duration_seconds_count` samples by (route,
/// status, error_type) ("" when there is no error_type).
pub fn counts_by_series(samples: &[Sample]) -> BTreeMap<(String, String, String), f64> {
    let mut counts = BTreeMap::new();
    for s in samples
        .iter()
        .filter(|s| s.name == "http_server_request_duration_seconds_count")
    {
        let label = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
        *counts
            .entry((
                label("http_route"),
                label("http_response_status_code"),
                label("error_type"),
            ))
            .or_insert(0.0) += s.value;
    }
    counts
}

// ---------------------------------------------------------------------------
// Prometheus

/// A Prometheus server of the test's own, on 127.0.0.1, with the
/// configuration the test gave it and a TSDB of its own.
pub type Prometheus = Server<PrometheusServer>;

/// The `prometheus` binary, and the client its API is queried with.
#[derive(Debug)]
pub struct PrometheusServer {
    client: reqwest::Client,
    /// `--enable-feature` values.
    features: Vec<String>,
}

/// The configuration file, in the server's scratch directory.
const CONFIG: &str = "prometheus.yml";

impl ServerKind for PrometheusServer {
    const NAME: &'static str = "prometheus";
    const INSTALL_HINT: &'static str = INSTALL_HINT;

    fn command(&self, run: &Run<'_>) -> Command {
        let mut command = Command::new("prometheus");
        command
            .arg(format!("--config.file={}", run.home.join(CONFIG).display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                run.dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{}", run.ports[0]));
        for feature in &self.features {
            command.arg(format!("--enable-feature={feature}"));
        }
        command
    }

    /// Ready once `/-/ready` answers 200.
    async fn ready(&self, run: &Run<'_>) -> Result<(), String> {
        let url = format!("http://127.0.0.1:{}/-/ready", run.ports[0]);
        match self.client.get(url).send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("/-/ready answered {}", r.status())),
            Err(e) => Err(e.to_string()),
        }
    }
}

impl Prometheus {
    /// Starts Prometheus scraping `target` under job `job` every second and
    /// waits until it is ready.
    pub async fn start(job: &str, target: SocketAddr) -> Self {
        Self::start_with_features(job, target, &[]).await
    }

    /// [`Prometheus::start`], with `--enable-feature` for each of
    /// `features` (such as `native-histograms`).
    pub async fn start_with_features(job: &str, target: SocketAddr, features: &[&str]) -> Self {
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: {job}\n    static_configs:\n      \
             - targets: ['{target}']\n"
        );
        Self::launch_with(|_dir| config, features).await
    }

    /// Starts Prometheus with the configuration `config` returns (given the
    /// directory the server gets, for any file it wants there) and waits
    /// until it is ready.
    pub async fn start_with_config(config: impl FnOnce(&std::path::Path) -> String) -> Self {
        Self::launch_with(config, &[]).await
    }

    /// [`Prometheus::start_with_config`], with `--enable-feature` for each
    /// of `features`.
    pub async fn launch_with(
        config: impl FnOnce(&std::path::Path) -> String,
        features: &[&str],
    ) -> Self {
        require_tool("prometheus", &["--version"]);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let features = features.iter().map(|f| f.to_string()).collect();
        let mut prometheus = Server::new(PrometheusServer { client, features });
        let home = prometheus.home();
        std::fs::write(home.join(CONFIG), config(home)).unwrap();
        prometheus.launch(1).await;
        prometheus
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports()[0])
    }

    /// Runs an instant PromQL query and returns `data.result` (for a vector,
    /// an array of `{"metric": {...}, "value": [ts, "v"]}`).
    pub async fn query(&self, promql: &str) -> Value {
        self.try_query(promql)
            .await
            .unwrap_or_else(|e| panic!("query {promql:?}: {e}"))
    }

    /// Runs an instant PromQL query; `Err` carries Prometheus's answer (a
    /// parse error, say) instead of failing the test.
    pub async fn try_query(&self, promql: &str) -> Result<Value, String> {
        self.api_data("/api/v1/query", &[("query", promql)])
            .await
            .map(|data| data["result"].clone())
    }

    /// The label sets of the series matching `matcher` (`/api/v1/series`).
    pub async fn series(&self, matcher: &str) -> Vec<BTreeMap<String, String>> {
        let data = self
            .api_data("/api/v1/series", &[("match[]", matcher)])
            .await
            .unwrap_or_else(|e| panic!("series {matcher:?}: {e}"));
        data.as_array()
            .expect("series data is an array")
            .iter()
            .map(|s| labels(s).expect("a series is an object"))
            .collect()
    }

    /// `GET` an API path (`/api/v1/rules`, ...) and return its `data`.
    pub async fn api_data(&self, path: &str, params: &[(&str, &str)]) -> Result<Value, String> {
        let response = self
            .kind
            .client
            .get(format!("{}{path}", self.url()))
            .query(params)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| e.to_string())?;
        if !status.is_success() || body["status"] != "success" {
            return Err(format!("{status}: {body}"));
        }
        Ok(body["data"].clone())
    }

    /// The active scrape targets as `/api/v1/targets` reports them.
    pub async fn targets_json(&self) -> Value {
        self.api_data("/api/v1/targets", &[])
            .await
            .unwrap_or_else(|e| panic!("targets: {e}"))["activeTargets"]
            .clone()
    }

    /// The active scrape targets, for messages.
    pub async fn targets(&self) -> String {
        match self.api_data("/api/v1/targets", &[]).await {
            Ok(data) => data["activeTargets"].to_string(),
            Err(e) => e,
        }
    }
}

/// A float the parser script printed (Python's `repr`).
fn python_float(value: &Value) -> f64 {
    parse_value(value.as_str().unwrap()).expect("the parser script prints Python float reprs")
}

/// A JSON object of label values as a map (`None` when it is not an object).
fn labels(object: &Value) -> Option<BTreeMap<String, String>> {
    Some(
        object
            .as_object()?
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect(),
    )
}

/// The `(value, labels)` of an instant-vector result, one per series.
pub fn vector(result: &Value) -> Vec<(BTreeMap<String, String>, f64)> {
    result
        .as_array()
        .expect("an instant vector")
        .iter()
        .map(|r| {
            let labels = labels(&r["metric"]).expect("a metric is an object");
            let value = parse_value(r["value"][1].as_str().unwrap()).unwrap();
            (labels, value)
        })
        .collect()
}

/// Every label value of `series` that is a raw request path: one of `sent`,
/// or a path with a concrete id where the route template should be.
pub fn raw_path_labels(series: &[BTreeMap<String, String>], sent: &[String]) -> Vec<String> {
    let sent: BTreeSet<&str> = sent.iter().map(String::as_str).collect();
    // Label values that may equal a sent path because they are its template.
    let templates: BTreeSet<&str> = EXPECTED.iter().map(|e| e.0).collect();
    let mut found = BTreeSet::new();
    for labels in series {
        for value in labels.values() {
            let raw = (sent.contains(value.as_str()) && !templates.contains(value.as_str()))
                || value.starts_with("/nope")
                || value
                    .strip_prefix("/items/")
                    .or_else(|| value.strip_prefix("/api/users/"))
                    .is_some_and(|id| id.bytes().all(|b| b.is_ascii_digit()));
            if raw {
                found.insert(value.clone());
            }
        }
    }
    found.into_iter().collect()
}

/// What Prometheus with native histograms asks `/metrics` for.
pub const PROTOBUF_ACCEPT: &str =
    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited";

/// The length-delimited `MetricFamily` messages of a protobuf exposition.
pub fn decode_protobuf(
    mut bytes: &[u8],
) -> Vec<prometheus_client::encoding::prometheus_protobuf::prometheus_data_model::MetricFamily> {
    use prost::Message;
    let mut families = Vec::new();
    while !bytes.is_empty() {
        families.push(
            prometheus_client::encoding::prometheus_protobuf::prometheus_data_model::MetricFamily::decode_length_delimited(&mut bytes)
                .expect("a length-delimited MetricFamily"),
        );
    }
    families
}
