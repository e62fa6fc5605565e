//! MongoDB as a watched dependency, against a real MongoDB wire-protocol
//! server (nx-27017) and the real driver, set up the way a user sets it up:
//!
//! 1. healthy: `/health` says so, and `/metrics` counts exactly the commands
//!    the test ran, by command, database and collection, with the pool's
//!    figures, and still passes `promtool check metrics`;
//! 2. the server is killed: `/health` answers 503 within the probe's bound,
//!    and 200 again soon after the server is back on the same port;
//! 3. a server that accepts connections and never answers: `/health` still
//!    answers within the bound, and `/metrics` never waits for the ping;
//! 4. 200 concurrent `/health` requests during an outage: all answered
//!    within the bound, with one ping on the wire;
//! 5. a URI with a password: the password appears nowhere (health, both
//!    metrics formats, OTLP, logs, `Debug`), even when the driver's error
//!    message carries it;
//! 6. a connection that fails while it is being established does not make
//!    the pool's connection count drift.
//!
//! Each test starts its own server (or listener), client and app, on free
//! loopback ports.

mod support;

use support::prometheus;
use support::rotel;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use mongodb::Client;
use mongodb::bson::{Document, doc};
use mongodb::options::ClientOptions;
use serde_json::Value;
use serverwatch::{Builder, ServerWatch};
use support::TestApp;

use support::exposition::{Sample, parse_samples, value_of};
use support::mongo::{BlackHole, Nx, ProxyMode, WireProxy};

/// The probe's default timeout.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest a `/health` (or `/metrics`) request may take while the
/// database is down: the probe's timeout and a little for the rest.
const BOUND: Duration = Duration::from_millis(1200);
/// The same bound with room for scheduling 200 requests at once.
const BURST_BOUND: Duration = Duration::from_millis(1500);
/// No request may take this long, whatever happens (the test fails instead
/// of hanging).
const REQUEST_LIMIT: Duration = Duration::from_secs(20);

const OPENMETRICS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0";

// ---------------------------------------------------------------------------
// Setup and requests

/// A client built from `uri` with serverwatch's handlers, probed by the
/// watch, and the sample app served with the watch's routes.
struct Watched {
    app: TestApp,
    client: Client,
    watch: ServerWatch,
}

/// Builds everything the way the README tells a user to.
async fn watched(uri: &str, configure: impl FnOnce(Builder) -> Builder) -> Watched {
    let mut options = ClientOptions::parse(uri).await.expect("a valid URI");
    let builder = configure(ServerWatch::builder().instrument_mongodb(&mut options));
    let client = Client::with_options(options).expect("a client");
    let watch = builder
        .mongodb(client.clone())
        .build()
        .expect("a valid configuration");
    let app = TestApp::serve(watch.instrument(support::sample_routes())).await;
    Watched { app, client, watch }
}

/// One GET: status, body, and the request's wall time.
async fn get(app: &TestApp, path: &str, accept: Option<&str>) -> (u16, String, Duration) {
    let mut request = app.client.get(app.url(path));
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let start = Instant::now();
    let response = tokio::time::timeout(REQUEST_LIMIT, async {
        let response = request.send().await.expect("GET");
        let status = response.status().as_u16();
        (status, response.text().await.expect("a body"))
    })
    .await
    .unwrap_or_else(|_| panic!("GET {path} took more than {REQUEST_LIMIT:?}"));
    (response.0, response.1, start.elapsed())
}

/// `/health`: status, document, wall time.
async fn health(app: &TestApp) -> (u16, Value, Duration) {
    let (status, body, took) = get(app, "/health", None).await;
    let document =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("/health is not JSON ({e}): {body}"));
    (status, document, took)
}

/// The classic text of `/metrics`, and the request's wall time.
async fn metrics(app: &TestApp) -> (String, Duration) {
    let (status, body, took) = get(app, "/metrics", None).await;
    assert_eq!(status, 200, "/metrics answered {status}: {body}");
    (body, took)
}

/// `db_client_operation_duration_seconds_count` by (operation, namespace,
/// collection, error type); "" for a missing label.
fn operation_counts(samples: &[Sample]) -> BTreeMap<(String, String, String, String), f64> {
    let mut counts = BTreeMap::new();
    for s in samples
        .iter()
        .filter(|s| s.name == "db_client_operation_duration_seconds_count")
    {
        assert_eq!(
            s.labels.get("db_system_name").map(String::as_str),
            Some("mongodb"),
            "{s:?}"
        );
        let label = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
        *counts
            .entry((
                label("db_operation_name"),
                label("db_namespace"),
                label("db_collection_name"),
                label("error_type"),
            ))
            .or_insert(0.0) += s.value;
    }
    counts
}

/// The lines of `text` about the database, for the test output.
fn database_lines(text: &str) -> String {
    text.lines()
        .filter(|l| l.contains("db_") || l.contains("database"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits until `/health` shows these pool figures. The driver checks a
/// connection back in on its pool's own task, just after the operation
/// has returned, so a `/health` whose ping has just ended may still count
/// the ping's connection as used.
async fn pools_settle(app: &TestApp, want: Value) {
    let start = Instant::now();
    loop {
        let (_, body, _) = health(app).await;
        let pools = &body["database"]["pools"];
        if *pools == want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the pools are {pools:#}, not {want:#}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What a burst of concurrent `/health` requests got.
struct Burst {
    /// Status, document and wall time of each request.
    answers: Vec<(u16, Value, Duration)>,
    /// How long the whole burst took.
    took: Duration,
    /// The slowest request of the same burst sent again right after, while
    /// the probe's result is reused: what answering the burst costs without
    /// waiting for a probe, on this machine at this moment.
    baseline: Duration,
}

impl Burst {
    /// The longest a request of the burst may take: the probe's timeout on
    /// top of what answering the burst costs anyway, and never less than
    /// [`BURST_BOUND`]. On a loaded machine (the suite runs many tests at
    /// once, on few CPUs) merely answering 200 requests can take a second;
    /// a probe that made requests wait for each other, or for more than
    /// one timeout, still exceeds this.
    fn bound(&self) -> Duration {
        BURST_BOUND.max(PROBE_TIMEOUT + self.baseline + Duration::from_millis(300))
    }

    fn slowest(&self) -> Duration {
        self.answers.iter().map(|a| a.2).max().unwrap_or_default()
    }
}

/// Sends `n` GET requests to `url` at once over `client`; each one's
/// status, body and wall time.
async fn concurrently(
    client: &reqwest::Client,
    url: String,
    n: usize,
) -> Vec<(u16, String, Duration)> {
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (client, url) = (client.clone(), url.clone());
        requests.spawn(async move {
            let start = Instant::now();
            let response = tokio::time::timeout(REQUEST_LIMIT, client.get(&url).send())
                .await
                .unwrap_or_else(|_| panic!("GET {url} hung"))
                .unwrap_or_else(|e| panic!("GET {url}: {e}"));
            let status = response.status().as_u16();
            let body = response.text().await.expect("a body");
            (status, body, start.elapsed())
        });
    }
    requests.join_all().await
}

/// Sends `n` `/health` requests at once, then again for the baseline
/// (see [`Burst::baseline`]): the probe's interval must outlast both. The
/// client opens its `n` connections beforehand, so that the times are the
/// server's.
async fn burst(app: &TestApp, n: usize) -> Burst {
    let client = reqwest::Client::new();
    concurrently(&client, app.url("/items/1"), n).await;
    let start = Instant::now();
    let parse = |(status, body, took): (u16, String, Duration)| {
        let document = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("/health is not JSON ({e}): {body}"));
        (status, document, took)
    };
    let answers: Vec<(u16, Value, Duration)> = concurrently(&client, app.url("/health"), n)
        .await
        .into_iter()
        .map(parse)
        .collect();
    let took = start.elapsed();
    let baseline = concurrently(&client, app.url("/health"), n)
        .await
        .into_iter()
        .map(parse)
        .map(|(status, body, took)| {
            assert_eq!(
                (status, &body["database"]["status"]),
                (answers[0].0, &answers[0].1["database"]["status"]),
                "the baseline burst must reuse the burst's probe: {body:#}"
            );
            took
        })
        .max()
        .unwrap_or_default();
    Burst {
        answers,
        took,
        baseline,
    }
}

// ---------------------------------------------------------------------------
// 1. Healthy

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn healthy_database_reports_its_commands_and_pool() {
    let nx = Nx::start().await;
    // One probe for the whole test: every later /health and /metrics reuses
    // it, so the pings are known exactly (one).
    let w = watched(&nx.uri(), |b| {
        b.mongodb_probe_interval(Duration::from_secs(3600))
    })
    .await;

    let items = w.client.database("shop").collection::<Document>("items");
    for sku in 1..=3 {
        items
            .insert_one(doc! {"sku": sku, "name": format!("item {sku}")})
            .await
            .expect("insert_one");
    }
    for sku in 1..=2 {
        let found = items.find_one(doc! {"sku": sku}).await.expect("find_one");
        assert!(found.is_some(), "find_one found no sku {sku}");
    }
    let count = items
        .count_documents(doc! {})
        .await
        .expect("count_documents");
    assert_eq!(count, 3, "count_documents");

    // /health, twice: one probe.
    for _ in 0..2 {
        let (status, body, _) = health(&w.app).await;
        assert_eq!(status, 200, "{body:#}");
        assert_eq!(body["status"], "healthy", "{body:#}");
        let db = &body["database"];
        assert_eq!(db["status"], "healthy", "{db:#}");
        assert!(
            db["ping_seconds"].as_f64().is_some_and(|s| s > 0.0),
            "{db:#}"
        );
        // What the driver sent: insert, find (find_one), aggregate
        // (count_documents), and the probe's ping.
        assert_eq!(
            db["operations"]["by_command"],
            serde_json::json!({"insert": 3, "find": 2, "aggregate": 1, "ping": 1}),
            "{db:#}"
        );
        assert_eq!(db["operations"]["total"], 7, "{db:#}");
        assert_eq!(db["operations"]["errors"], 0, "{db:#}");
    }
    // One connection did everything, one after the other.
    pools_settle(
        &w.app,
        serde_json::json!([{
            "name": format!("127.0.0.1:{}", nx.port()),
            "idle": 1, "used": 0, "pending": 0, "max": 10, "timeouts": 0,
        }]),
    )
    .await;

    let (text, _) = metrics(&w.app).await;
    let samples = parse_samples(&text);
    let key = |op: &str, ns: &str, coll: &str| {
        (op.to_owned(), ns.to_owned(), coll.to_owned(), String::new())
    };
    let want = BTreeMap::from([
        (key("insert", "shop", "items"), 3.0),
        (key("find", "shop", "items"), 2.0),
        (key("aggregate", "shop", "items"), 1.0),
        (key("ping", "admin", ""), 1.0),
    ]);
    assert_eq!(
        operation_counts(&samples),
        want,
        "database lines:\n{}",
        database_lines(&text)
    );
    let pool = (
        "db_client_connection_pool_name",
        format!("127.0.0.1:{}", nx.port()),
    );
    let pool = (pool.0, pool.1.as_str());
    let state = |s| [("db_client_connection_state", s), pool];
    assert_eq!(
        value_of(&samples, "db_client_connection_count", &state("idle")),
        1.0
    );
    assert_eq!(
        value_of(&samples, "db_client_connection_count", &state("used")),
        0.0
    );
    assert_eq!(
        value_of(&samples, "db_client_connection_max", &[pool]),
        10.0
    );
    assert_eq!(
        value_of(&samples, "db_client_connection_pending_requests", &[pool]),
        0.0
    );
    assert_eq!(
        value_of(&samples, "db_client_connection_timeouts_total", &[pool]),
        0.0
    );
    // One connection created; one checkout per command (6 operations, 1 ping).
    assert_eq!(
        value_of(
            &samples,
            "db_client_connection_create_time_seconds_count",
            &[pool]
        ),
        1.0
    );
    assert_eq!(
        value_of(
            &samples,
            "db_client_connection_wait_time_seconds_count",
            &[pool]
        ),
        7.0
    );
    assert_eq!(value_of(&samples, "serverwatch_database_up", &[]), 1.0);
    let ping = value_of(&samples, "serverwatch_database_ping_duration_seconds", &[]);
    assert!(ping > 0.0 && ping < 1.0, "ping duration {ping}");

    let (status, om, _) = get(&w.app, "/metrics", Some(OPENMETRICS_ACCEPT)).await;
    assert_eq!(status, 200);
    prometheus::parse_openmetrics_strict(&om)
        .unwrap_or_else(|e| panic!("the strict OpenMetrics parser failed:\n{e}\non:\n{om}"));
    assert!(om.contains("# TYPE db_client_operation_duration_seconds histogram"));

    println!("database lines on /metrics:\n{}", database_lines(&text));
    // `db_client_connection_count` is the semantic conventions' name
    // (`db.client.connection.count`) in its Prometheus spelling, the one an
    // OpenTelemetry Collector gives the OTLP feed too, so that one board reads
    // both feeds. promtool's naming lint reserves `_count` for histograms:
    // that one complaint is expected, and nothing else may be said.
    const EXPECTED_LINT: &str = "db_client_connection_count non-histogram and non-summary metrics should not have \"_count\" suffix";
    let report = prometheus::promtool_check_metrics(&text);
    let complaints: Vec<&str> = report
        .output
        .lines()
        .filter(|line| !line.trim().is_empty() && line.trim() != EXPECTED_LINT)
        .collect();
    assert!(
        complaints.is_empty(),
        "promtool check metrics (success: {}) said:\n{}\non:\n{text}",
        report.success,
        report.output
    );
    assert!(
        report.output.contains(EXPECTED_LINT),
        "the expected lint is gone: drop the exception above"
    );
}

// ---------------------------------------------------------------------------
// 2. The server is killed, then back

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stopped_database_answers_503_within_the_bound_and_recovers() {
    let mut nx = Nx::start().await;
    let interval = Duration::from_secs(1);
    let w = watched(&nx.uri(), |b| b.mongodb_probe_interval(interval)).await;
    let (status, body, _) = health(&w.app).await;
    assert_eq!(status, 200, "{body:#}");

    nx.stop();
    let stopped = Instant::now();
    // Cached results may say healthy for up to one interval; then every
    // probe fails. Keep asking for two more intervals, so that both kinds
    // of failure are measured: the pooled connection's I/O error, and the
    // pings that wait for a server until the probe's timeout.
    let mut first_503 = None;
    let mut slowest = Duration::ZERO;
    let mut statuses = Vec::new();
    while first_503.is_none_or(|at: Instant| at.elapsed() < 2 * interval + PROBE_TIMEOUT) {
        let (status, body, took) = health(&w.app).await;
        assert!(
            took <= BOUND,
            "/health took {took:?} (bound {BOUND:?}) with the database down: {body:#}"
        );
        slowest = slowest.max(took);
        match (status, first_503) {
            (200, None) => assert!(
                stopped.elapsed() < interval + PROBE_TIMEOUT,
                "still healthy {:?} after the server was killed: {body:#}",
                stopped.elapsed()
            ),
            (503, _) => {
                first_503.get_or_insert_with(Instant::now);
                assert_eq!(body["status"], "unhealthy", "{body:#}");
                let db_status = body["database"]["status"].as_str().unwrap_or_default();
                assert!(db_status.starts_with("error: "), "{body:#}");
                if !statuses.iter().any(|s| s == db_status) {
                    statuses.push(db_status.to_owned());
                }
            }
            _ => panic!("/health answered {status} after a 503: {body:#}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("database down: slowest /health {slowest:?}; statuses: {statuses:#?}");
    assert!(
        statuses.iter().any(|s| s.contains("within")),
        "no probe was cut by the timeout: {statuses:?}"
    );

    let (text, took) = metrics(&w.app).await;
    assert!(
        took <= BOUND,
        "/metrics took {took:?} with the database down"
    );
    let samples = parse_samples(&text);
    assert_eq!(value_of(&samples, "serverwatch_database_up", &[]), 0.0);

    nx.restart().await;
    let restarted = Instant::now();
    // A failed result is reused for one interval; the driver then finds
    // the server again within its minimum heartbeat (500 ms).
    let recovery_limit = interval + Duration::from_millis(750);
    loop {
        let (status, body, took) = health(&w.app).await;
        assert!(
            took <= BOUND,
            "/health took {took:?} while recovering: {body:#}"
        );
        if status == 200 {
            assert_eq!(body["database"]["status"], "healthy", "{body:#}");
            break;
        }
        assert!(
            restarted.elapsed() <= recovery_limit,
            "still unhealthy {:?} after the server was back: {body:#}",
            restarted.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "healthy again {:?} after the server was back",
        restarted.elapsed()
    );
    let (text, _) = metrics(&w.app).await;
    let samples = parse_samples(&text);
    assert_eq!(value_of(&samples, "serverwatch_database_up", &[]), 1.0);
}

// ---------------------------------------------------------------------------
// 3. A server that never answers

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn silent_server_cannot_hang_health() {
    let hole = BlackHole::start().await;
    let w = watched(&hole.uri(), |b| {
        b.mongodb_probe_interval(Duration::from_secs(1))
    })
    .await;
    for _ in 0..3 {
        let (status, body, took) = health(&w.app).await;
        println!("/health against a black hole: {status} in {took:?}");
        assert!(took <= BOUND, "/health took {took:?} (bound {BOUND:?})");
        assert_eq!(status, 503, "{body:#}");
        assert_eq!(body["status"], "unhealthy", "{body:#}");
        assert_eq!(
            body["database"]["status"], "error: no answer to ping within 1s",
            "{body:#}"
        );
        let (text, took) = metrics(&w.app).await;
        assert!(took <= BOUND, "/metrics took {took:?} (bound {BOUND:?})");
        let samples = parse_samples(&text);
        assert_eq!(value_of(&samples, "serverwatch_database_up", &[]), 0.0);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        hole.accepted() >= 1,
        "the driver never connected to the black hole"
    );
}

/// `/metrics` reads the probe's latest result and never waits for a ping;
/// scraped alone (nobody asks `/health`), it still has the probe renewed,
/// in the background.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_scrape_never_waits_on_the_database() {
    let hole = BlackHole::start().await;
    let timeout = Duration::from_secs(5);
    let w = watched(&hole.uri(), |b| {
        b.mongodb_probe_timeout(timeout)
            .mongodb_probe_interval(Duration::from_secs(1))
    })
    .await;
    let start = Instant::now();
    loop {
        let (text, took) = metrics(&w.app).await;
        assert!(
            took < timeout / 2,
            "/metrics took {took:?}: it waited for the ping (timeout {timeout:?})"
        );
        let samples = parse_samples(&text);
        if samples.iter().any(|s| s.name == "serverwatch_database_up") {
            assert_eq!(value_of(&samples, "serverwatch_database_up", &[]), 0.0);
            break;
        }
        assert!(
            start.elapsed() < 3 * timeout,
            "no probe result on /metrics after {:?}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(hole.accepted() >= 1, "the background probe never connected");
}

// ---------------------------------------------------------------------------
// 4. A burst of /health during an outage

/// How many pings reach the server: with the server down no ping is ever
/// sent (the driver waits for a server to select, until the probe's
/// timeout), so nothing on the wire can count them. The proxy counts them
/// where they can be counted: in front of a server that accepts the
/// handshake and then never answers a ping (a hung database). A probe that
/// is not single-flight sends one ping per request (up to the pool's size
/// at once, the rest waiting for a connection); the probe sends one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_health_requests_sends_one_ping() {
    let nx = Nx::start().await;
    let proxy = WireProxy::start(nx.addr(), ProxyMode::Stall("ping")).await;
    let w = watched(&proxy.uri(), |b| {
        b.mongodb_probe_interval(Duration::from_secs(30))
    })
    .await;

    let burst = burst(&w.app, 200).await;
    println!(
        "200 concurrent /health against a hung database: {:?} in all, slowest {:?} \
         (bound {:?}, baseline {:?}); pings sent: {}; commands seen by the proxy: {:?}",
        burst.took,
        burst.slowest(),
        burst.bound(),
        burst.baseline,
        proxy.count("ping"),
        proxy.commands()
    );
    assert_eq!(burst.answers.len(), 200);
    for (status, body, took) in &burst.answers {
        assert_eq!(*status, 503, "{body:#}");
        assert_eq!(
            body["database"]["status"], "error: no answer to ping within 1s",
            "{body:#}"
        );
        assert!(
            *took <= burst.bound(),
            "a /health took {took:?} (bound {:?}): {body:#}",
            burst.bound()
        );
    }
    assert_eq!(proxy.count("ping"), 1, "pings: {:?}", proxy.commands());

    // The ping given up on frees its connection: nothing stays used or
    // waiting in the pool's figures.
    let (_, body, _) = health(&w.app).await;
    let pools = body["database"]["pools"].as_array().expect("pools");
    assert_eq!(pools.len(), 1, "{body:#}");
    assert_eq!(pools[0]["used"], 0, "{body:#}");
    assert_eq!(pools[0]["pending"], 0, "{body:#}");
}

/// The same burst with the server killed: every request is answered within
/// the bound. The pool's broken connection makes the first failed ping
/// fail at once; the burst comes after it, when the driver no longer knows
/// a server to send a ping to and a ping waits for one until the probe's
/// timeout: the slow way.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_health_requests_with_the_server_down_is_bounded() {
    let mut nx = Nx::start().await;
    let interval = Duration::from_secs(2);
    let w = watched(&nx.uri(), |b| b.mongodb_probe_interval(interval)).await;
    let (status, body, _) = health(&w.app).await;
    assert_eq!(status, 200, "{body:#}");
    nx.stop();
    // Past the cached healthy result: the first failure.
    tokio::time::sleep(interval + Duration::from_millis(100)).await;
    let (status, body, took) = health(&w.app).await;
    assert_eq!(status, 503, "{body:#}");
    assert!(took <= BOUND, "/health took {took:?}: {body:#}");
    // Past the cached failure.
    tokio::time::sleep(interval + Duration::from_millis(100)).await;

    let burst = burst(&w.app, 200).await;
    println!(
        "200 concurrent /health with the server down: {:?} in all, slowest {:?} \
         (bound {:?}, baseline {:?})",
        burst.took,
        burst.slowest(),
        burst.bound(),
        burst.baseline
    );
    assert_eq!(burst.answers.len(), 200);
    for (status, body, took) in &burst.answers {
        assert_eq!(*status, 503, "{body:#}");
        assert_eq!(
            body["database"]["status"], "error: no answer to ping within 1s",
            "{body:#}"
        );
        assert!(
            *took <= burst.bound(),
            "a /health took {took:?} (bound {:?}): {body:#}",
            burst.bound()
        );
    }
}

// ---------------------------------------------------------------------------
// 5. Credentials

const USER: &str = "alice";
/// Every character a URI must escape in a password.
const PASSWORD: &str = "S3cr3t:P@ss/w0rd%";

/// The password as it is spelled in a URI, with upper- or lower-case hex.
fn encoded_password(lower: bool) -> String {
    PASSWORD
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ if lower => format!("%{b:02x}"),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn secret_spellings() -> [String; 3] {
    [
        PASSWORD.to_owned(),
        encoded_password(false),
        encoded_password(true),
    ]
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in secret_spellings() {
        assert!(
            !text.contains(&secret),
            "{what} shows the password (as {secret:?}):\n{text}"
        );
    }
}

/// Everything every tracing event of this test binary printed.
fn captured_logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        #[derive(Clone)]
        struct Capture(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Capture {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let logs = Arc::new(Mutex::new(Vec::new()));
        let writer = Capture(Arc::clone(&logs));
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "serverwatch=trace,mongodb=trace,mongodb_health=trace,info",
            ))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global subscriber in this test binary");
        logs
    })
}

/// Checks every output of one watched client whose probe fails: `/health`,
/// `/metrics` in both formats, and the `Debug` of the watch. Returns the
/// probe's status.
async fn outputs_without_secret(w: &Watched) -> String {
    let (status, body, _) = get(&w.app, "/health", None).await;
    assert_eq!(status, 503, "the probe must fail: {body}");
    assert_no_secret("/health", &body);
    let document: Value = serde_json::from_str(&body).unwrap();
    let db_status = document["database"]["status"].as_str().unwrap().to_owned();
    assert!(db_status.starts_with("error: "), "{body}");
    assert!(
        !db_status.contains("no answer to ping"),
        "the probe timed out instead of failing with the driver's error: {db_status}"
    );
    let (text, _) = metrics(&w.app).await;
    assert_no_secret("/metrics", &text);
    let (_, om, _) = get(&w.app, "/metrics", Some(OPENMETRICS_ACCEPT)).await;
    assert_no_secret("/metrics (OpenMetrics)", &om);
    assert_no_secret("the watch's Debug", &format!("{:?}", w.watch));
    db_status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_password_appears_nowhere() {
    let logs = captured_logs();
    tracing::info!("capture check: {USER} signs in");
    let nx = Nx::start().await;
    let rotel = rotel::Rotel::start().await;
    let uri = |port: u16| {
        format!(
            "mongodb://{USER}:{}@127.0.0.1:{port}/?authSource=admin",
            encoded_password(false)
        )
    };
    let with_otlp = |name: &'static str| {
        let endpoint = rotel.http_endpoint();
        move |b: Builder| {
            let b = b
                .service_name(name)
                .otlp_endpoint(endpoint)
                .otlp_export_interval(Duration::from_millis(300));
            assert_no_secret("the builder's Debug", &format!("{b:?}"));
            b
        }
    };

    // a. The real server, which knows no authentication: the driver's own
    //    error.
    let direct = watched(&uri(nx.port()), with_otlp("secrets-direct")).await;
    let direct_status = outputs_without_secret(&direct).await;
    println!("probe status, real server: {direct_status}");

    // b. A server whose error message repeats the connection string and the
    //    password: what serverwatch shows must have them replaced.
    let echo = format!(
        "Authentication failed for {} (password {PASSWORD}, user {USER})",
        uri(nx.port())
    );
    let proxy = WireProxy::start(
        nx.addr(),
        ProxyMode::Answer(
            "saslStart",
            doc! {"ok": 0, "errmsg": &echo, "code": 18, "codeName": "AuthenticationFailed"},
        ),
    )
    .await;
    let echoed = watched(&uri(proxy.addr.port()), with_otlp("secrets-echo")).await;
    let echo_status = outputs_without_secret(&echoed).await;
    println!("probe status, server repeating the password: {echo_status}");
    assert!(
        proxy.count("saslStart") >= 1,
        "the driver never tried to authenticate: {:?}",
        proxy.commands()
    );
    assert!(
        echo_status.contains("Authentication failed for mongodb://***@127.0.0.1")
            && echo_status.contains("(password ***"),
        "the server's message is not in the status, redacted: {echo_status}"
    );

    // OTLP: both services' database metrics, after their failed probes.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let output = rotel.log();
        let exported = ["secrets-direct", "secrets-echo", "serverwatch.database.up"]
            .iter()
            .all(|s| output.contains(s));
        if exported {
            assert_no_secret("the OTLP export", &output);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no OTLP export with the database metrics of both services; rotel printed:\n{}",
            rotel.log_tail(80)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let logs = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(
        logs.contains("capture check: alice signs in"),
        "the log capture does not work:\n{logs}"
    );
    assert_no_secret("the logs", &logs);
    println!("{} bytes of logs captured", logs.len());
    drop((direct, echoed));
}

// ---------------------------------------------------------------------------
// 6. A connection that fails while being established

/// The driver reports such a connection as created and then closed, never
/// ready. Once the database is reachable again, the pool has one idle
/// connection and the figures must say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_connection_attempt_leaves_the_pool_figures_right() {
    let nx = Nx::start().await;
    // Connection 1 is the driver's monitor (opened when the client is
    // built, before any operation can select the server); connection 2 is
    // the pool's first, closed during its handshake.
    let proxy = WireProxy::start(nx.addr(), ProxyMode::CloseConnection(2)).await;
    let w = watched(&proxy.uri(), |b| {
        b.mongodb_probe_interval(Duration::from_millis(200))
    })
    .await;

    // The driver may retry the ping on another connection at once (a
    // network error during a handshake is retryable), so the first answer
    // may already be healthy.
    let start = Instant::now();
    loop {
        let (status, body, _) = health(&w.app).await;
        println!("probe: {}", body["database"]["status"]);
        if status == 200 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never healthy: {body:#}; commands: {:?}",
            proxy.commands()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let on_second: Vec<String> = proxy
        .commands()
        .into_iter()
        .filter(|(connection, _)| *connection == 2)
        .map(|(_, command)| command)
        .collect();
    assert_eq!(
        on_second,
        ["isMaster"],
        "connection 2 must be a pool connection closed in its handshake; commands: {:?}",
        proxy.commands()
    );
    let pool = format!("127.0.0.1:{}", proxy.addr.port());
    pools_settle(
        &w.app,
        serde_json::json!([{
            "name": pool, "idle": 1, "used": 0, "pending": 0, "max": 10, "timeouts": 0,
        }]),
    )
    .await;
    let (text, _) = metrics(&w.app).await;
    let samples = parse_samples(&text);
    let idle = value_of(
        &samples,
        "db_client_connection_count",
        &[("db_client_connection_state", "idle")],
    );
    assert_eq!(idle, 1.0, "{}", database_lines(&text));
}
