//! The dashboard in a real browser: Debian's Chromium, driven by
//! playwright-core from the scripts in `tests/browser/`, against the app
//! served in-process. Nothing here skips: without Chromium, node or
//! playwright-core the test fails and says to run `scripts/install-test-deps`.
//!
//! - It loads under a prefix, signs in with `?token=`, and makes no request
//!   to another origin, none that fails, and logs no console error.
//! - It shows the figures of `/health` at the same moment, and every chart
//!   has drawn its series.
//! - Markup in error messages is shown as text and runs nothing.
//! - It fits a laptop (1280×800) and a phone (390×844) without horizontal
//!   overflow; screenshots of both go to `test-artifacts/`.
//! - It stops polling while hidden, shows it is disconnected when the service
//!   stops, and recovers when the service is back on the same port.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Path as UrlPath;
use axum::routing::get;
use serde_json::Value;
use serverwatch::ServerWatch;
use support::launcher::HeldPorts;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::TcpListener;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const INSTALL_HINT: &str = "run scripts/install-test-deps: it installs Debian's chromium, and \
                            playwright-core in tests/browser with npm ci";

const TOKEN: &str = "dashboard-s3cret";

/// Markup in a request path, shown back in a panic message.
const XSS_IN_PATH: &str = "<img src=x onerror=window.__xss=1>";
const XSS_IN_PATH_ENCODED: &str = "%3Cimg%20src=x%20onerror=window.__xss=1%3E";
/// Markup in a panic message.
const XSS_IN_PANIC: &str = r#"<img src=x onerror="window.__xss=1"><script>alert(1)</script>"#;
/// Markup in a value of one of the app's labels.
const XSS_IN_LABEL: &str = r#"<img src=x onerror="window.__xss=3">gold"#;
/// Markup in a failing health check's reason.
const XSS_IN_CHECK: &str = r#"<img src=x onerror="window.__xss=2">refused"#;

/// How long any one step may take.
const STEP: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// The app

async fn echo_in_panic(UrlPath(item): UrlPath<String>) -> &'static str {
    panic!("no such item: {item}")
}

async fn markup_in_panic() -> &'static str {
    panic!("{XSS_IN_PANIC}")
}

/// The sample routes, plus a slow one, a long template, and two that put
/// markup in the recent errors.
fn routes() -> Router {
    support::sample_routes()
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(30)).await;
                "slow"
            }),
        )
        .route(
            "/api/v1/organisations/{organisation}/projects/{project}/deployments",
            get(|| async { "[]" }),
        )
        .route("/xss/{item}", get(echo_in_panic))
        .route("/xss-panic", get(markup_in_panic))
}

/// A known mix: successes, client errors, server errors, panics, an
/// unmatched path, and the two markup payloads last (newest errors).
async fn send_traffic(base: &str) {
    let client = reqwest::Client::new();
    let mut paths: Vec<String> = (1..=12).map(|i| format!("/items/{i}")).collect();
    paths.extend(["/items/0"; 3].map(String::from));
    paths.extend(["/fail"; 4].map(String::from));
    paths.extend(["/panic"; 2].map(String::from));
    paths.extend(["/api/users/7"; 5].map(String::from));
    paths.extend(["/slow"; 3].map(String::from));
    paths.extend(["/no/such/page"; 2].map(String::from));
    paths.push("/api/v1/organisations/acme/projects/web/deployments".into());
    paths.push(format!("/xss/{XSS_IN_PATH_ENCODED}"));
    paths.push("/xss-panic".into());
    for path in paths {
        client.get(format!("{base}{path}")).send().await.unwrap();
    }
}

// ---------------------------------------------------------------------------
// The browser scripts

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn require_browser() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "Chromium is missing ({chromium}): {INSTALL_HINT}"
    );
    match std::process::Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        other => panic!("cannot run node ({other:?}): {INSTALL_HINT}"),
    }
    assert!(
        browser_dir()
            .join("node_modules/playwright-core/package.json")
            .exists(),
        "playwright-core is not installed in tests/browser: {INSTALL_HINT}"
    );
}

/// `node tests/browser/<script>`, killed on drop, talking in lines: JSON
/// events on its stdout, plain words on its stdin.
struct BrowserScript {
    name: String,
    _child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl BrowserScript {
    fn start(script: &str, args: &[&str]) -> Self {
        require_browser();
        let mut child = Command::new("node")
            .arg(script)
            .args(args)
            .current_dir(browser_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run node {script}: {e}\n{INSTALL_HINT}"));
        Self {
            name: script.to_owned(),
            stdin: child.stdin.take().expect("piped stdin"),
            stdout: BufReader::new(child.stdout.take().expect("piped stdout")).lines(),
            _child: child,
        }
    }

    /// The next message, which must be `event`.
    async fn expect(&mut self, event: &str) -> Value {
        let line = tokio::time::timeout(STEP, self.stdout.next_line())
            .await
            .unwrap_or_else(|_| panic!("{}: no {event:?} within {STEP:?}", self.name))
            .expect("reading the script's stdout")
            .unwrap_or_else(|| panic!("{}: ended before {event:?}", self.name));
        let message: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {line}", self.name));
        match message["event"].as_str() {
            Some(e) if e == event => message,
            Some("error") => panic!("{}: {}", self.name, message["message"]),
            _ => panic!("{}: expected {event:?}, got {line}", self.name),
        }
    }

    async fn send(&mut self, word: &str) {
        self.stdin
            .write_all(format!("{word}\n").as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{}: writing {word:?}: {e}", self.name));
        self.stdin.flush().await.unwrap();
    }
}

// ---------------------------------------------------------------------------
// Reading what the page shows

/// "1,234" → 1234.
fn shown_count(text: &Value) -> u64 {
    let text = text.as_str().expect("a shown figure");
    text.replace(',', "")
        .parse()
        .unwrap_or_else(|e| panic!("{text:?} is not a count: {e}"))
}

/// A shown decimal and half its last digit: "12.50%" → (12.5, 0.005).
fn shown_decimal(text: &str) -> (f64, f64) {
    let number = text
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .replace(',', "");
    let value: f64 = number
        .parse()
        .unwrap_or_else(|e| panic!("{text:?} is not a number: {e}"));
    let decimals = number.split_once('.').map_or(0, |(_, d)| d.len());
    (value, 0.5 * 10f64.powi(-(decimals as i32)) + 1e-9)
}

/// "4.75 ms" or "1.25 s", in seconds, with its precision.
fn shown_seconds(text: &Value) -> (f64, f64) {
    let text = text.as_str().expect("a shown duration");
    let (scale, number) = if let Some(ms) = text.strip_suffix(" ms") {
        (1e-3, ms)
    } else if let Some(s) = text.strip_suffix(" s") {
        (1.0, s)
    } else {
        panic!("{text:?} is not a duration")
    };
    let (value, precision) = shown_decimal(number);
    (value * scale, precision * scale)
}

fn assert_close(what: &str, shown: (f64, f64), actual: &Value) {
    let actual = actual
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: {actual}"));
    assert!(
        (shown.0 - actual).abs() <= shown.1,
        "{what}: the page shows {} (± {}), /health says {actual}",
        shown.0,
        shown.1
    );
}

/// Polls until the history holds a sample, so that the charts have data.
async fn wait_for_a_history_sample(client: &reqwest::Client, url: &str) {
    support::eventually("a history sample", STEP, || async {
        let doc: Value = client
            .get(url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (!doc["samples"].as_array()?.is_empty()).then_some(())
    })
    .await;
}

// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_the_health_figures_safely_at_both_sizes() {
    let started = Instant::now();
    let not_critical = serverwatch::CheckOptions::default().critical(false);
    let watch = ServerWatch::builder()
        .service_name("dashboard-test")
        .path_prefix("/ops")
        .bearer_token(TOKEN)
        .health_check("queue", || async { Ok::<(), String>(()) })
        .request_label("tier", |request| {
            (request.uri.path() == "/slow").then_some(XSS_IN_LABEL)
        })
        .health_check_with("cache", not_critical, || async {
            Err::<(), _>(XSS_IN_CHECK)
        })
        .build()
        .unwrap();
    let app = support::TestApp::serve(watch.instrument(routes())).await;
    let origin = format!("http://{}", app.addr);
    send_traffic(&origin).await;
    wait_for_a_history_sample(&app.client, &app.url("/ops/dashboard/history")).await;

    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("test-artifacts");
    let page_url = app.url(&format!("/ops/dashboard?token={TOKEN}"));
    let mut script = BrowserScript::start(
        "check-page.mjs",
        &[&page_url, artifacts.to_str().expect("a UTF-8 path")],
    );

    // The page as read, then /health at once: nothing is recorded between.
    let shown = script.expect("figures").await;
    let health = app.json_with_token("/ops/health", TOKEN).await;
    let application = &health["application"];

    assert_eq!(
        shown["location"],
        app.url("/ops/dashboard"),
        "signed in, the token is gone from the address"
    );
    assert_eq!(shown["status"], health["status"]);
    assert_eq!(
        shown_count(&shown["total_requests"]),
        34,
        "the traffic sent"
    );
    assert_eq!(
        shown_count(&shown["total_requests"]),
        application["total_requests"].as_u64().unwrap()
    );
    assert_eq!(
        shown_count(&shown["error_count"]),
        application["error_count"].as_u64().unwrap()
    );
    let error_rate = shown["error_rate"].as_str().unwrap();
    assert!(error_rate.ends_with('%'), "{error_rate}");
    assert_close(
        "error rate",
        shown_decimal(error_rate),
        &application["error_rate"],
    );
    assert_close(
        "average",
        shown_seconds(&shown["average_response_time"]),
        &application["average_response_time"],
    );
    for q in ["p50", "p95", "p99"] {
        assert_close(q, shown_seconds(&shown[q]), &application["latency"][q]);
    }
    let shown_routes: BTreeMap<String, u64> = shown["routes"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(route, n)| (route.clone(), shown_count(n)))
        .collect();
    let health_routes: BTreeMap<String, u64> = application["routes"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(route, r)| (route.clone(), r["requests"].as_u64().unwrap()))
        .collect();
    assert_eq!(shown_routes, health_routes, "requests per route");
    assert_eq!(health_routes["/xss/{item}"], 1);

    // The app's labels, with markup in a value shown as text.
    let tier = &application["labels"]["tier"][XSS_IN_LABEL];
    let shown_tier = &shown["labels"][format!("tier={XSS_IN_LABEL}")];
    assert_eq!(tier["requests"], 3, "the /slow requests");
    assert_eq!(shown_count(shown_tier), 3);
    let labels_text = shown["labels_text"].as_str().unwrap();
    assert!(labels_text.contains(XSS_IN_LABEL), "{labels_text}");
    assert_eq!(shown["labels_markup"], 0, "no element came from a label");

    // Markup in errors is text, and nothing ran.
    let errors_text = shown["recent_errors_text"].as_str().unwrap();
    assert!(errors_text.contains(XSS_IN_PATH), "{errors_text}");
    assert!(errors_text.contains(XSS_IN_PANIC), "{errors_text}");
    assert_eq!(
        shown["recent_errors_items"],
        application["recent_errors"].as_array().unwrap().len()
    );
    assert_eq!(
        shown["recent_errors_markup"], 0,
        "no element came from data"
    );
    assert_eq!(shown["xss"], Value::Null, "window.__xss was set");
    assert!(
        shown["database_text"]
            .as_str()
            .unwrap()
            .contains("No database configured"),
        "{}",
        shown["database_text"]
    );

    // The runtime card and the checks, as /health has them; markup in a
    // check's reason is text.
    let runtime = &health["runtime"];
    assert_eq!(shown_count(&shown["runtime_workers"]), 2, "{runtime}");
    assert_eq!(
        shown_count(&shown["runtime_workers"]),
        runtime["workers"].as_u64().unwrap()
    );
    assert!(
        shown["runtime_flavor"]
            .as_str()
            .unwrap()
            .contains("multi-thread"),
        "{}",
        shown["runtime_flavor"]
    );
    let busy = shown["runtime_busy"].as_str().unwrap();
    let (busy, _) = shown_decimal(busy);
    assert!((0.0..=100.0).contains(&busy), "busy {busy}");
    assert_eq!(
        shown["checks"],
        serde_json::json!({"cache": "failing", "queue": "healthy"})
    );
    assert_eq!(health["checks"]["cache"]["critical"], false);
    assert!(
        shown["checks_text"]
            .as_str()
            .unwrap()
            .contains(XSS_IN_CHECK),
        "{}",
        shown["checks_text"]
    );
    assert_eq!(shown["checks_markup"], 0, "no element came from a check");
    assert_eq!(shown["status"], "healthy", "a non-critical check fails");

    let done = script.expect("done").await;
    for (size, report) in done["sizes"].as_object().unwrap() {
        let charts = report["charts"].as_object().unwrap();
        assert_eq!(charts.len(), 5, "{size}: {charts:?}");
        for (name, chart) in charts {
            let points = chart["points"].as_u64().unwrap();
            assert!(points >= 1, "{size}: chart {name} has no data: {chart}");
            assert!(chart["series"].as_u64().unwrap() >= 1, "{size}: {name}");
            for len in chart["series_lengths"].as_array().unwrap() {
                assert_eq!(len.as_u64(), Some(points), "{size}: {name}: {chart}");
            }
            assert!(
                chart["painted_pixels"].as_u64().unwrap() > 0,
                "{size}: chart {name}'s canvas is blank: {chart}"
            );
            assert!(
                chart["series_pixels"].as_u64().unwrap() > 0,
                "{size}: chart {name} drew no series: {chart}"
            );
        }
        // A phone widens its layout viewport to fit what overflows: compare
        // with the width asked for, not with what the page got.
        let layout = &report["layout"];
        let inner = layout["viewport_width"].as_f64().unwrap();
        assert_eq!(
            layout["inner_width"].as_f64(),
            Some(inner),
            "{size}: {layout}"
        );
        assert!(
            layout["scroll_width"].as_f64().unwrap() <= inner,
            "{size}: horizontal overflow: {layout}"
        );
        let cards = layout["cards"].as_object().unwrap();
        assert_eq!(cards.len(), 9, "{size}: {cards:?}");
        for (id, card) in cards {
            assert_eq!(card["visible"], true, "{size}: card {id} is hidden");
            assert!(
                card["width"].as_f64().unwrap() > 100.0,
                "{size}: {id}: {card}"
            );
            assert!(
                card["height"].as_f64().unwrap() > 50.0,
                "{size}: {id}: {card}"
            );
            assert!(
                card["left"].as_f64().unwrap() >= 0.0,
                "{size}: {id}: {card}"
            );
            assert!(
                card["right"].as_f64().unwrap() <= inner,
                "{size}: {id}: {card}"
            );
        }
        assert_eq!(report["xss"], Value::Null, "{size}: window.__xss was set");
        let screenshot = Path::new(report["screenshot"].as_str().unwrap());
        assert!(
            std::fs::metadata(screenshot).is_ok_and(|m| m.len() > 10_000),
            "{size}: no screenshot at {}",
            screenshot.display()
        );
    }

    let requests: Vec<&str> = done["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    for url in &requests {
        assert!(
            url.starts_with(&format!("{origin}/")),
            "a request to another origin: {url}"
        );
    }
    for wanted in [
        "/ops/health",
        "/ops/dashboard/history",
        "/ops/dashboard/assets/dashboard.js",
        "/ops/dashboard/assets/uPlot.iife.min.js",
    ] {
        assert!(
            requests
                .iter()
                .any(|r| r.starts_with(&format!("{origin}{wanted}"))),
            "the page never asked for {wanted}: {requests:?}"
        );
    }
    for key in ["failed", "console_errors", "page_errors", "dialogs"] {
        assert_eq!(done[key], serde_json::json!([]), "{key}");
    }
    eprintln!("browser check done in {:?}", started.elapsed());
}

// ---------------------------------------------------------------------------
// Stopping and restarting the service

/// The app served on a port it can leave and take back: held while it is
/// stopped, so that nothing else takes it meanwhile.
struct Restartable {
    addr: SocketAddr,
    app: Router,
    running: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
    held: Option<HeldPorts>,
}

impl Restartable {
    async fn start(app: Router) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut server = Self {
            addr: listener.local_addr().unwrap(),
            app,
            running: None,
            held: None,
        };
        server.serve(listener);
        server
    }

    fn serve(&mut self, listener: TcpListener) {
        let (stop, stopped) = oneshot::channel::<()>();
        let app = self.app.clone();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        self.running = Some((stop, task));
    }

    /// Stops listening and closes every connection (the browser keeps some
    /// alive).
    async fn stop(&mut self) {
        let (stop, task) = self.running.take().expect("running");
        let _ = stop.send(());
        tokio::time::timeout(STEP, task)
            .await
            .expect("the server stops")
            .unwrap();
        self.held = HeldPorts::hold(&[self.addr.port()]);
    }

    async fn restart(&mut self) {
        self.held = None;
        let addr = self.addr;
        let listener = support::eventually("the same port again", STEP, || async move {
            TcpListener::bind(addr).await.ok()
        })
        .await;
        self.serve(listener);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_pauses_when_hidden_and_shows_when_the_service_is_gone_and_back() {
    let watch = ServerWatch::builder().build().unwrap();
    let mut server = Restartable::start(watch.instrument(support::sample_routes())).await;
    let page_url = format!("http://{}/dashboard", server.addr);
    let mut script = BrowserScript::start("reconnect.mjs", &[&page_url]);
    script.expect("live").await;

    let paused = script.expect("paused").await;
    assert_eq!(
        paused["requests_while_hidden"],
        serde_json::json!([]),
        "no polling while hidden"
    );
    assert_eq!(paused["resumed"], true, "polling resumes when visible");
    script.expect("ready").await;

    server.stop().await;
    script.send("stopped").await;
    let down = script.expect("disconnected").await;
    assert!(
        down["after_ms"].as_u64().unwrap() <= 6_000,
        "the page took too long to notice: {down}"
    );
    assert!(
        down["banner"]
            .as_str()
            .unwrap_or("")
            .contains("Disconnected"),
        "{down}"
    );
    assert_eq!(down["pill"], "Disconnected");
    assert_eq!(down["stale"], true, "the last figures are shown as stale");

    server.restart().await;
    script.send("restarted").await;
    let back = script.expect("recovered").await;
    assert!(
        back["after_ms"].as_u64().unwrap() <= 6_000,
        "the page took too long to recover: {back}"
    );
    assert_eq!(back["pill"], "Live");
    assert_eq!(back["stale"], false);
    assert_eq!(back["page_errors"], serde_json::json!([]));
    assert_eq!(back["dialogs"], serde_json::json!([]));
}
