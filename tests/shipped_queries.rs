//! The shipped Grafana board (`grafana/serverwatch.json`) and Prometheus
//! rules (`prometheus/rules/`) against a real Prometheus that scrapes a
//! serverwatch app every second while it serves a traffic mix with
//! failures, panics, slow requests and MongoDB commands (on nx-27017, a
//! real wire-protocol server), and evaluates the shipped rules every second.
//!
//! Every PromQL expression of the board (each panel target, each variable
//! query) and of the rules, with the template variables substituted as
//! Grafana would, must parse and return at least one series; a variable's
//! `label_values(...)` must find its label through the series API. An alert
//! is `<signal> <op> <threshold>`: a healthy service rightly makes the whole
//! expression empty, so its signal must return series here, and
//! `promtool test rules` (tests/compose_stack.rs) proves each alert fires
//! and stays quiet on synthetic series.
//!
//! It runs twice: against a Prometheus that stores the classic `_count`,
//! `_sum` and `_bucket` series, and against one with native histograms on,
//! which stores each histogram as one native series and nothing else.
//! Every query must answer in both.
//!
//! The first test checks the board's structure, without any server.

mod support;

use support::mongo;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::get;
use mongodb::bson::{Document, doc};
use serde_json::Value;
use serverwatch::ServerWatch;
use support::board::{self, board, board_queries, panels, rule_files};
use support::prometheus::{Prometheus, wait_for};

/// The scrape job of the test: anything but the board's default, so that
/// nothing in the board or the rules can depend on the job's name.
const JOB: &str = "shipped-queries";

/// Time allowed for the series (and the recording rules' results) to
/// appear once Prometheus scrapes.
const SERIES_DEADLINE: Duration = Duration::from_secs(40);

// ---------------------------------------------------------------------------
// What the board and the rules contain

/// The query variables: name and query text.
fn variable_queries(board: &Value) -> Vec<(String, String)> {
    board["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .filter(|v| v["type"] == "query")
        .map(|v| {
            let query = v["query"]["query"]
                .as_str()
                .or_else(|| v["query"].as_str())
                .or_else(|| v["definition"].as_str())
                .expect("a query variable has a query");
            (v["name"].as_str().unwrap().to_owned(), query.to_owned())
        })
        .collect()
}

/// A rule: its name (`record` or `alert`), whether it is an alert, and its
/// expression.
#[derive(Debug, Clone)]
struct Rule {
    name: String,
    alert: bool,
    expr: String,
}

fn rules() -> Vec<Rule> {
    let mut rules = Vec::new();
    for file in rule_files() {
        let doc = support::yaml_file(&file);
        for group in doc["groups"].as_array().expect("groups") {
            for r in group["rules"].as_array().expect("rules") {
                let (name, alert) = match (r["record"].as_str(), r["alert"].as_str()) {
                    (Some(n), None) => (n, false),
                    (None, Some(n)) => (n, true),
                    _ => panic!("{}: a rule is either record or alert: {r}", file.display()),
                };
                rules.push(Rule {
                    name: name.to_owned(),
                    alert,
                    expr: r["expr"].as_str().expect("expr").to_owned(),
                });
            }
        }
    }
    rules
}

/// `<signal> <op> <threshold>`, split at the last top-level comparison
/// (outside parentheses, braces and strings), the threshold a number.
fn split_alert(expr: &str) -> Option<(String, String, f64)> {
    let bytes = expr.as_bytes();
    let (mut depth, mut quote) = (0i32, None::<u8>);
    let mut last = None;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) if c == b'\\' => i += 1,
            Some(_) => {}
            None => match c {
                b'"' | b'\'' | b'`' => quote = Some(c),
                b'(' | b'{' | b'[' => depth += 1,
                b')' | b'}' | b']' => depth -= 1,
                b'=' | b'!' | b'>' | b'<' if depth == 0 => {
                    let two = bytes.get(i..i + 2).unwrap_or(&[]);
                    let len = if matches!(two, b"==" | b"!=" | b">=" | b"<=") {
                        2
                    } else if c == b'>' || c == b'<' {
                        1
                    } else {
                        0
                    };
                    if len > 0 {
                        last = Some((i, len));
                        i += len;
                        continue;
                    }
                }
                _ => {}
            },
        }
        i += 1;
    }
    let (at, len) = last?;
    let threshold = expr[at + len..].trim().parse().ok()?;
    Some((
        expr[..at].trim().to_owned(),
        expr[at..at + len].to_owned(),
        threshold,
    ))
}

/// A `$name` or `${name}` left in `expr` (`${1}` of label_replace is not
/// one).
fn leftover_variable(expr: &str) -> Option<String> {
    let bytes = expr.as_bytes();
    for (i, &c) in bytes.iter().enumerate() {
        if c != b'$' {
            continue;
        }
        let rest = &expr[i + 1..];
        let rest = rest.strip_prefix('{').unwrap_or(rest);
        if rest
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        {
            return Some(expr[i..].chars().take(30).collect());
        }
    }
    None
}

/// `label_values(selector, label)` → (selector, label).
fn label_values(query: &str) -> Option<(String, String)> {
    let inner = query
        .trim()
        .strip_prefix("label_values(")?
        .strip_suffix(')')?;
    let (selector, label) = inner.rsplit_once(',')?;
    Some((selector.trim().to_owned(), label.trim().to_owned()))
}

// ---------------------------------------------------------------------------
// The board's structure

#[test]
fn the_board_imports_through_the_ui_and_loads_by_provisioning() {
    let board = board();
    assert_eq!(board["uid"], "serverwatch", "the board's uid is fixed");
    assert!(board["id"].is_null(), "an exported board carries no id");

    // Importable through the UI: one datasource input...
    let inputs = board["__inputs"].as_array().expect("__inputs");
    assert!(
        inputs.iter().any(|i| i["name"] == "DS_PROMETHEUS"
            && i["type"] == "datasource"
            && i["pluginId"] == "prometheus"),
        "__inputs names DS_PROMETHEUS, a Prometheus datasource: {inputs:?}"
    );
    // ... and loadable by provisioning, where __inputs is not read: a
    // datasource variable of the same name resolves ${DS_PROMETHEUS}.
    let variables = board["templating"]["list"].as_array().expect("variables");
    let variable = |name: &str| {
        variables
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no variable {name}"))
    };
    let ds = variable("DS_PROMETHEUS");
    assert_eq!(ds["type"], "datasource");
    assert_eq!(ds["query"], "prometheus");

    // job selects one feed; instance and route aggregate over All (".*").
    let job = variable("job");
    assert_eq!(job["type"], "query");
    assert_eq!(job["includeAll"], false);
    for name in ["instance", "route"] {
        let v = variable(name);
        assert_eq!(v["type"], "query", "{name}");
        assert_eq!(v["multi"], true, "{name} is multi-valued");
        assert_eq!(v["includeAll"], true, "{name} offers All");
        assert_eq!(v["allValue"], ".*", "{name}'s All is one regex, not a list");
    }

    // Every panel and target reads the variable's datasource.
    let ds_ref = serde_json::json!({"type": "prometheus", "uid": "${DS_PROMETHEUS}"});
    for v in variables.iter().filter(|v| v["type"] == "query") {
        assert_eq!(v["datasource"], ds_ref, "variable {}", v["name"]);
    }
    let mut ids = BTreeSet::new();
    let mut cells: BTreeMap<(u64, u64), String> = BTreeMap::new();
    let mut rows = Vec::new();
    for p in panels(&board) {
        let title = p["title"].as_str().unwrap_or("?");
        let id = p["id"].as_u64().unwrap_or_else(|| panic!("{title}: no id"));
        assert!(ids.insert(id), "panel id {id} ({title}) is used twice");
        let g = &p["gridPos"];
        let (x, y, w, h) = (
            g["x"].as_u64().unwrap(),
            g["y"].as_u64().unwrap(),
            g["w"].as_u64().unwrap(),
            g["h"].as_u64().unwrap(),
        );
        assert!(x + w <= 24, "{title} is wider than the grid");
        for cx in x..x + w {
            for cy in y..y + h {
                if let Some(other) = cells.insert((cx, cy), title.to_owned()) {
                    panic!("{title} overlaps {other}");
                }
            }
        }
        if p["type"] == "row" {
            rows.push(title.to_owned());
            continue;
        }
        assert_eq!(p["datasource"], ds_ref, "panel {title}");
        assert!(
            p["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{title} has a description"
        );
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title} has no query");
        for t in targets {
            assert_eq!(t["datasource"], ds_ref, "a target of {title}");
            assert!(
                t["expr"].as_str().is_some_and(|e| !e.trim().is_empty()),
                "a target of {title} has no expr"
            );
        }
    }
    assert_eq!(
        rows,
        [
            "Overview", "Requests", "Errors", "Memory", "Runtime", "MongoDB"
        ]
    );

    // Every variable reference is to a variable the board defines (or a
    // Grafana global).
    let defined: BTreeSet<String> = variables
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_owned())
        .collect();
    for q in board_queries(&board) {
        let substituted = board::substitute(&q.expr, JOB, ".*", ".*");
        if let Some(name) = leftover_variable(&substituted) {
            panic!(
                "{} ({}) uses an unknown variable {name}: {}; defined: {defined:?}",
                q.panel, q.ref_id, q.expr
            );
        }
    }
}

#[test]
fn every_alert_compares_a_signal_with_a_threshold() {
    let all = rules();
    let recorded: BTreeSet<&str> = all
        .iter()
        .filter(|r| !r.alert)
        .map(|r| r.name.as_str())
        .collect();
    let alerts: Vec<&Rule> = all.iter().filter(|r| r.alert).collect();
    let names: BTreeSet<&str> = alerts.iter().map(|r| r.name.as_str()).collect();
    for wanted in [
        "ServerwatchServiceDown",
        "ServerwatchHighErrorRatio",
        "ServerwatchHighLatencyP99",
        "ServerwatchMemoryGrowing",
        "ServerwatchMongoDBDown",
        "ServerwatchMongoDBSlow",
    ] {
        assert!(names.contains(wanted), "no alert {wanted}: {names:?}");
    }
    for a in alerts {
        let (signal, _, _) = split_alert(&a.expr)
            .unwrap_or_else(|| panic!("{}: not `<signal> <op> <number>`: {}", a.name, a.expr));
        // The signal is a recording rule, or an aggregation of a metric.
        let is_recorded = recorded.contains(signal.as_str());
        assert!(
            is_recorded || signal.contains(" by ("),
            "{}: the signal {signal:?} is neither a recording rule nor an aggregation",
            a.name
        );
    }
}

// ---------------------------------------------------------------------------
// The app under watch

type Items = mongodb::Collection<Document>;

async fn item(Path(id): Path<u64>, items: Items) -> Result<String, StatusCode> {
    if id == 0 {
        return Err(StatusCode::NOT_FOUND);
    }
    let key = doc! {"_id": id as i64};
    let found = items
        .find_one(key.clone())
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    if found.is_none() {
        let mut new = key;
        new.insert("name", format!("item {id}"));
        // Two requests for the same new id may race: a duplicate is fine.
        let _ = items.insert_one(new).await;
    }
    Ok(format!("item {id}"))
}

/// A query the server rejects (an operator it does not know): a failed
/// MongoDB command, answered 503.
async fn bad_query(items: Items) -> StatusCode {
    match items.find_one(doc! {"name": {"$noSuchOperator": 1}}).await {
        Ok(_) => StatusCode::OK,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

const INTENDED_PANIC: &str = "the /panic route panics on purpose";

async fn panics() -> &'static str {
    panic!("{INTENDED_PANIC}")
}

/// Keeps the /panic route's panics (dozens a test) out of the output; any
/// other panic is reported as usual.
fn quiet_intended_panics() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let intended = info
            .payload()
            .downcast_ref::<String>()
            .is_some_and(|m| m == INTENDED_PANIC);
        if !intended {
            report(info);
        }
    }));
}

fn routes(items: Items) -> Router {
    let for_items = items.clone();
    Router::new()
        .route("/items/{id}", get(move |id| item(id, for_items.clone())))
        .route("/search", get(move || bad_query(items.clone())))
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "failed on purpose") }),
        )
        .route("/panic", get(panics))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(120)).await;
                "slow"
            }),
        )
}

/// Sends a request mix every 20 ms until `stop` is set (at most 60 s):
/// items found and created, 404s, unmatched paths, 500s, panics, slow
/// requests and failing MongoDB queries.
fn send_traffic(addr: SocketAddr, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        for n in 0u64..3000 {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            tick.tick().await;
            let path = match n % 12 {
                0 => "/fail".to_owned(),
                3 => "/items/0".to_owned(),
                5 => "/slow".to_owned(),
                7 => "/search".to_owned(),
                9 => format!("/no/such/page/{n}"),
                11 if n % 24 == 11 => "/panic".to_owned(),
                _ => format!("/items/{}", n % 40 + 1),
            };
            let client = client.clone();
            tokio::spawn(async move {
                let _ = client.get(format!("http://{addr}{path}")).send().await;
            });
        }
    })
}

// ---------------------------------------------------------------------------
// The decisive test

/// The recording rules that read one form of the histograms only: each has
/// series in that form and none in the other.
const ONE_FORM_ONLY: [(&str, Form); 2] = [
    (
        "job_instance_route:http_server_request_duration_seconds:rate1m",
        Form::Native,
    ),
    (
        "job_instance_route_le:http_server_request_duration_seconds_bucket:rate1m",
        Form::Classic,
    ),
];

/// How the Prometheus of a run stores histograms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// `_count`, `_sum` and `_bucket` series.
    Classic,
    /// One native histogram series (`--enable-feature=native-histograms`).
    Native,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shipped_query_returns_series_from_a_real_prometheus() {
    every_shipped_query_returns_series(Form::Classic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shipped_query_returns_series_from_a_prometheus_with_native_histograms() {
    every_shipped_query_returns_series(Form::Native).await;
}

async fn every_shipped_query_returns_series(form: Form) {
    let started = Instant::now();
    quiet_intended_panics();
    let nx = mongo::Nx::start().await;

    let mut options = mongodb::options::ClientOptions::parse(nx.uri())
        .await
        .unwrap();
    options.server_selection_timeout = Some(Duration::from_secs(2));
    let builder = ServerWatch::builder()
        .service_name("shipped-queries")
        .service_version("1.2.3")
        // For the board's Health checks panel.
        .health_check("cache", || async { Ok::<(), String>(()) })
        .instrument_mongodb(&mut options);
    let client = mongodb::Client::with_options(options).unwrap();
    let items: Items = client.database("serverwatch_test").collection("items");
    let watch = builder.mongodb(client).build().unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = watch.instrument(routes(items));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = send_traffic(addr, Arc::clone(&stop));

    // Scrapes and rule evaluations every second, the shipped rule files
    // loaded where they are.
    let features: &[&str] = match form {
        Form::Classic => &[],
        Form::Native => &["native-histograms"],
    };
    let prom = Prometheus::launch_with(
        |_dir| board::config_with_rules(JOB, &addr.to_string()),
        features,
    )
    .await;

    // The rules loaded, and each evaluated without error.
    let all_rules = rules();
    wait_for(
        "the shipped rules to be loaded and evaluated",
        SERIES_DEADLINE,
        || async {
            let data = prom.api_data("/api/v1/rules", &[]).await?;
            let mut seen = BTreeMap::new();
            for group in data["groups"].as_array().into_iter().flatten() {
                for r in group["rules"].as_array().into_iter().flatten() {
                    let name = r["name"].as_str().unwrap_or("?").to_owned();
                    seen.insert(name, (r["health"].clone(), r["lastError"].clone()));
                }
            }
            let mut problems = Vec::new();
            for rule in &all_rules {
                match seen.get(&rule.name) {
                    None => problems.push(format!("{} not loaded", rule.name)),
                    Some((health, error)) if health != "ok" => {
                        problems.push(format!("{}: health {health}, error {error}", rule.name))
                    }
                    Some(_) => {}
                }
            }
            if problems.is_empty() {
                Ok(())
            } else {
                Err(problems.join("; "))
            }
        },
    )
    .await;

    // Variable values, as Grafana would substitute them: All (".*"), and
    // the one instance chosen (a regex-escaped value).
    let instance_value = addr.to_string().replace('.', "\\\\.");
    let selections = [(".*".to_owned(), "All"), (instance_value, "the instance")];

    let board = board();
    let queries = board_queries(&board);
    assert!(queries.len() >= 40, "only {} board queries", queries.len());

    // Parse errors fail at once; an empty result may only be early.
    let check_all = || async {
        let mut empty = Vec::new();
        for (instance, which) in &selections {
            let missing = board::queries_without_data(&prom, JOB, instance).await;
            empty.extend(
                missing
                    .into_iter()
                    .map(|q| format!("{q} (instance {which})")),
            );
        }
        for rule in &all_rules {
            let other_form = ONE_FORM_ONLY
                .iter()
                .any(|(name, only)| *name == rule.name && *only != form);
            if other_form {
                continue;
            }
            // A healthy service leaves an alert empty: its signal is what
            // must have series.
            let (what, expr) = if rule.alert {
                let (signal, _, _) = split_alert(&rule.expr).expect("alert shape");
                match prom.try_query(&rule.expr).await {
                    Err(e) => panic!("alert {} does not parse: {e}", rule.name),
                    Ok(_) => ("signal of alert", signal),
                }
            } else {
                ("recording rule", rule.expr.clone())
            };
            match prom.try_query(&expr).await {
                Err(e) => panic!("{what} {} does not parse: {e}\n{expr}", rule.name),
                Ok(r) if r.as_array().is_none_or(Vec::is_empty) => {
                    empty.push(format!("{what} {}: {expr}", rule.name))
                }
                Ok(_) => {}
            }
            if !rule.alert {
                // What the board reads: the recorded series themselves.
                match prom.try_query(&rule.name).await {
                    Ok(r) if r.as_array().is_some_and(|a| !a.is_empty()) => {}
                    _ => empty.push(format!("recorded series {}", rule.name)),
                }
            }
        }
        empty
    };
    wait_for(
        "every board query, rule and alert signal to return series",
        SERIES_DEADLINE,
        || async {
            let empty = check_all().await;
            if empty.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{} returned no series:\n  {}\ntargets: {}",
                    empty.len(),
                    empty.join("\n  "),
                    prom.targets().await
                ))
            }
        },
    )
    .await;

    // The variables: each label_values(...) finds its label through the
    // series API, and the job and instance of this test among the values.
    for (name, query) in variable_queries(&board) {
        let (selector, label) = label_values(&query)
            .unwrap_or_else(|| panic!("variable {name}: not label_values(...): {query}"));
        let selector = board::substitute(&selector, JOB, ".*", ".*");
        let series = prom.series(&selector).await;
        let values: BTreeSet<String> = series
            .iter()
            .filter_map(|s| s.get(&label).cloned())
            .filter(|v| !v.is_empty())
            .collect();
        assert!(
            !values.is_empty(),
            "variable {name}: no series of {selector} has a {label} label ({} series)",
            series.len()
        );
        let wanted = match name.as_str() {
            "job" => Some(JOB.to_owned()),
            "instance" => Some(addr.to_string()),
            "route" => Some("/items/{id}".to_owned()),
            _ => None,
        };
        if let Some(wanted) = wanted {
            assert!(
                values.contains(&wanted),
                "variable {name}: {wanted} is not among {values:?}"
            );
        }
    }

    stop.store(true, Ordering::Relaxed);
    traffic.await.unwrap();
    drop(nx);
    eprintln!(
        "{form:?} histograms: {} board queries (x{}) and {} rules checked in {:?}",
        queries.len(),
        selections.len(),
        all_rules.len(),
        started.elapsed()
    );
}

#[test]
fn alert_expressions_split_into_signal_and_threshold() {
    assert_eq!(
        split_alert("job_instance:up:serverwatch == 0"),
        Some(("job_instance:up:serverwatch".into(), "==".into(), 0.0))
    );
    assert_eq!(
        split_alert("min by (job, instance) (x{a=\"b>c\"}) > 0.5"),
        Some((
            "min by (job, instance) (x{a=\"b>c\"})".into(),
            ">".into(),
            0.5
        ))
    );
    assert_eq!(split_alert("rate(x[5m])"), None);
    assert_eq!(split_alert("x > y"), None);
    assert_eq!(
        board::substitute(
            "rate(x{job=\"$job\", instance=~\"$instance\"}[$__rate_interval]) ${1}",
            JOB,
            ".*",
            ".*"
        ),
        format!("rate(x{{job=\"{JOB}\", instance=~\".*\"}}[1m]) ${{1}}")
    );
    assert_eq!(
        leftover_variable("label_replace(x, \"c\", \"${1}xx\")"),
        None
    );
    assert_eq!(leftover_variable("x[$__foo]").as_deref(), Some("$__foo]"));
    assert_eq!(
        label_values("label_values(up{job=\"a\"}, instance)"),
        Some(("up{job=\"a\"}".into(), "instance".into()))
    );
}
