//! The shipped Grafana board (`grafana/serverwatch.json`) and Prometheus
//! rules (`prometheus/rules/`): their queries, with the board's variables
//! substituted as Grafana would, and whether each has data in a real
//! Prometheus.

use std::path::PathBuf;

use serde_json::Value;

use super::prometheus::Prometheus;

/// What `$__rate_interval`, `$__interval` and `$__range` become.
const RATE_INTERVAL: &str = "1m";
const INTERVAL: &str = "15s";
const RANGE: &str = "5m";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn board() -> Value {
    let path = repo().join("grafana/serverwatch.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Every panel, the rows' nested panels included.
pub fn panels(board: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    for p in board["panels"].as_array().expect("panels") {
        all.push(p);
        if let Some(nested) = p["panels"].as_array() {
            all.extend(nested);
        }
    }
    all
}

/// One PromQL expression of the board: where it comes from, and the text.
#[derive(Debug, Clone)]
pub struct BoardQuery {
    pub panel: String,
    pub ref_id: String,
    pub expr: String,
}

pub fn board_queries(board: &Value) -> Vec<BoardQuery> {
    let mut queries = Vec::new();
    for p in panels(board) {
        if p["type"] == "row" {
            continue;
        }
        for t in p["targets"].as_array().into_iter().flatten() {
            queries.push(BoardQuery {
                panel: p["title"].as_str().unwrap_or("?").to_owned(),
                ref_id: t["refId"].as_str().unwrap_or("?").to_owned(),
                expr: t["expr"].as_str().unwrap_or("").to_owned(),
            });
        }
    }
    queries
}

pub fn rule_files() -> Vec<PathBuf> {
    let dir = repo().join("prometheus/rules");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no rule file in {}", dir.display());
    files
}

/// A Prometheus configuration that scrapes `target` as `job` and evaluates
/// the shipped rules, both every second.
pub fn config_with_rules(job: &str, target: &str) -> String {
    let rule_files: String = rule_files()
        .iter()
        .map(|f| format!("  - '{}'\n", f.display()))
        .collect();
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n{rule_files}\
         scrape_configs:\n  - job_name: {job}\n    static_configs:\n      \
         - targets: ['{target}']\n"
    )
}

/// Grafana's substitution of the board's variables in `expr`.
pub fn substitute(expr: &str, job: &str, instance: &str, route: &str) -> String {
    let mut out = expr.to_owned();
    for (name, value) in [
        ("__rate_interval", RATE_INTERVAL),
        ("__interval", INTERVAL),
        ("__range", RANGE),
        ("DS_PROMETHEUS", "prometheus"),
        ("instance", instance),
        ("route", route),
        ("job", job),
    ] {
        out = out
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    out
}

/// The board queries that return no series for `job` and `instance` (a
/// regex), every route chosen; a query that does not parse fails the test.
pub async fn queries_without_data(prom: &Prometheus, job: &str, instance: &str) -> Vec<String> {
    let mut empty = Vec::new();
    for q in board_queries(&board()) {
        let expr = substitute(&q.expr, job, instance, ".*");
        match prom.try_query(&expr).await {
            Err(e) => panic!(
                "board panel {:?} ({}) does not parse: {e}\n{expr}",
                q.panel, q.ref_id
            ),
            Ok(r) if r.as_array().is_none_or(Vec::is_empty) => {
                empty.push(format!("board panel {:?} ({}): {expr}", q.panel, q.ref_id))
            }
            Ok(_) => {}
        }
    }
    empty
}
