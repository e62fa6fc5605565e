//! The compose stack, checked with what runs here (no Docker engine does):
//!
//! - `docker-compose config` (Debian's docker-compose) validates
//!   docker-compose.yml against the Compose specification, offline;
//! - every file it mounts exists, and the files agree with each other
//!   (ports, paths, service names, the OTLP endpoint);
//! - `promtool check config`, `promtool check rules` and
//!   `promtool test rules` pass on prometheus/;
//! - the collector's configuration has the pipeline the README describes,
//!   and its renames make every serverwatch metric come out of the OTLP
//!   feed under the name it has on /metrics;
//! - the Dockerfile is multi-stage, builds the demo from what the build
//!   context holds, and everything the build includes is in the context.
//!
//! Nothing skips: a missing tool fails the test and says to run
//! `scripts/install-test-deps`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use support::yaml_file;

const INSTALL_HINT: &str = "run scripts/install-test-deps (it installs promtool and \
                            docker-compose from Debian, PyYAML from PyPI)";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{program}`: {e}\n{INSTALL_HINT}"))
}

fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn compose() -> Value {
    yaml_file(&repo().join("docker-compose.yml"))
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    let s = &compose["services"][name];
    assert!(s.is_object(), "docker-compose.yml has no service {name}");
    s
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().expect("a string").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A service's environment as a map (either compose spelling).
fn environment(service: &Value) -> BTreeMap<String, String> {
    match &service["environment"] {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect(),
        Value::Array(list) => list
            .iter()
            .filter_map(|e| e.as_str()?.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// The bind mounts of a service: (source relative to the repo, target).
fn bind_mounts(service: &Value) -> Vec<(String, String)> {
    strings(&service["volumes"])
        .into_iter()
        .filter(|v| v.starts_with("./"))
        .map(|v| {
            let mut parts = v.split(':');
            let source = parts.next().unwrap().trim_start_matches("./").to_owned();
            let target = parts.next().expect("a mount target").to_owned();
            (source, target)
        })
        .collect()
}

/// The container target where `source` (relative to the repo) is mounted.
fn mounted_at(service: &Value, source: &str) -> String {
    bind_mounts(service)
        .into_iter()
        .find(|(s, _)| s == source)
        .unwrap_or_else(|| panic!("{source} is not mounted"))
        .1
}

/// `host:port` → port.
fn port_of(address: &str) -> u16 {
    let address = address.rsplit("//").next().unwrap();
    let address = address.split('/').next().unwrap();
    address
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("{address} has no port"))
        .1
        .parse()
        .unwrap()
}

// ---------------------------------------------------------------------------
// docker-compose.yml

#[test]
fn the_compose_file_is_valid_compose() {
    // Offline: `config` parses, validates and interpolates; it contacts no
    // engine.
    let out = run("docker-compose", &["-f", "docker-compose.yml", "config"]);
    assert_success(&out, "docker-compose config");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("WARNING"),
        "docker-compose config warns: {stderr}"
    );
}

#[test]
fn the_stack_has_its_services_pinned_checked_and_published() {
    let c = compose();
    let names: BTreeSet<&str> = c["services"]
        .as_object()
        .expect("services")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "app",
            "mongo",
            "otel-collector",
            "prometheus",
            "grafana",
            "tempo"
        ])
    );

    for name in &names {
        let s = service(&c, name);
        let image = s["image"].as_str().unwrap_or_default();
        if *name == "app" {
            assert_eq!(s["build"]["dockerfile"], "Dockerfile");
            continue;
        }
        // Pinned: a version tag, never latest.
        let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or_default();
        assert!(
            tag.chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit() || c == 'v')
                && tag.contains('.')
                && tag != "latest",
            "{name}: image {image:?} is not pinned to a version"
        );
        // The collector image has no shell or HTTP client to run a check
        // with; Prometheus watches it instead (up{job="otel-collector"}).
        if *name != "otel-collector" {
            assert!(
                s["healthcheck"]["test"].is_array(),
                "{name} has no health check"
            );
        }
    }
    assert!(service(&c, "app")["healthcheck"]["test"].is_array());

    // Published where the README says.
    let ports = |name: &str| strings(&service(&c, name)["ports"]);
    assert!(ports("app").contains(&"3000:3000".to_owned()));
    assert!(ports("prometheus").contains(&"9090:9090".to_owned()));
    assert!(ports("grafana").contains(&"3001:3000".to_owned()));

    // Named volumes, declared and used.
    let declared: BTreeSet<&str> = c["volumes"]
        .as_object()
        .expect("named volumes")
        .keys()
        .map(String::as_str)
        .collect();
    let mut used = BTreeSet::new();
    for name in &names {
        for v in strings(&service(&c, name)["volumes"]) {
            if !v.starts_with("./") && !v.starts_with('/') {
                used.insert(v.split(':').next().unwrap().to_owned());
            }
        }
    }
    let declared: BTreeSet<String> = declared.into_iter().map(str::to_owned).collect();
    assert_eq!(used, declared, "named volumes used vs declared");
    for wanted in [
        "mongo-data",
        "prometheus-data",
        "grafana-data",
        "tempo-data",
    ] {
        assert!(declared.contains(wanted), "no volume {wanted}");
    }

    // Every file or directory mounted exists, inside the repo.
    for name in &names {
        for (source, _) in bind_mounts(service(&c, name)) {
            let path = repo().join(&source);
            assert!(
                path.exists(),
                "{name} mounts ./{source}, which does not exist"
            );
            assert!(
                !source.contains(".."),
                "{name} mounts {source} outside the repo"
            );
        }
    }
}

#[test]
fn the_app_reaches_mongo_and_the_collector_by_service_name() {
    let c = compose();
    let app = service(&c, "app");
    let env = environment(app);
    assert_eq!(env["MONGODB_URI"], "mongodb://mongo:27017");
    assert_eq!(
        env["OTEL_EXPORTER_OTLP_ENDPOINT"],
        "http://otel-collector:4318"
    );
    assert!(!env["OTEL_SERVICE_NAME"].is_empty());
    let command = strings(&app["command"]).join(" ");
    assert!(
        command.contains("--listen 0.0.0.0:3000")
            && command.contains("--traffic")
            && command.contains("--traces"),
        "the app runs the demo with traffic and traces on 0.0.0.0:3000: {command}"
    );

    // The collector listens for OTLP/HTTP where the app sends it.
    let collector = service(&c, "otel-collector");
    let config_target = mounted_at(collector, "otel-collector/config.yaml");
    assert!(
        strings(&collector["command"]).contains(&format!("--config={config_target}")),
        "the collector is started with the mounted configuration"
    );
    let config = yaml_file(&repo().join("otel-collector/config.yaml"));
    let http = config["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
        .as_str()
        .expect("an OTLP/HTTP endpoint");
    assert!(
        http.starts_with("0.0.0.0:"),
        "reachable from other containers"
    );
    assert_eq!(port_of(http), port_of(&env["OTEL_EXPORTER_OTLP_ENDPOINT"]));
}

#[test]
fn prometheus_scrapes_the_app_and_the_collector_and_loads_the_rules() {
    let c = compose();
    let prometheus = service(&c, "prometheus");
    let config_target = mounted_at(prometheus, "prometheus/prometheus.yml");
    let command = strings(&prometheus["command"]);
    assert!(
        command.contains(&format!("--config.file={config_target}")),
        "{command:?}"
    );
    // rule_files are relative to the configuration: the rules directory is
    // mounted beside it.
    let rules_target = mounted_at(prometheus, "prometheus/rules");
    let config_dir = Path::new(&config_target).parent().unwrap();
    let config = yaml_file(&repo().join("prometheus/prometheus.yml"));
    for pattern in strings(&config["rule_files"]) {
        let resolved = config_dir.join(&pattern);
        assert!(
            resolved.starts_with(&rules_target),
            "rule_files {pattern} resolves to {} in the container, not under {rules_target}",
            resolved.display()
        );
    }

    let mut targets: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for job in config["scrape_configs"].as_array().expect("scrape_configs") {
        let name = job["job_name"].as_str().unwrap().to_owned();
        for sc in job["static_configs"].as_array().into_iter().flatten() {
            targets
                .entry(name.clone())
                .or_default()
                .extend(strings(&sc["targets"]));
        }
    }
    assert_eq!(targets["serverwatch"], ["app:3000"]);
    // The collector's prometheus exporter, with the sender's job/instance
    // kept.
    let collector = yaml_file(&repo().join("otel-collector/config.yaml"));
    let exporter = collector["exporters"]["prometheus"]["endpoint"]
        .as_str()
        .expect("the collector's prometheus exporter endpoint");
    assert_eq!(
        targets["otel-collector"],
        [format!("otel-collector:{}", port_of(exporter))]
    );
    let otel_job = config["scrape_configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job_name"] == "otel-collector")
        .unwrap();
    assert_eq!(otel_job["honor_labels"], true);
}

#[test]
fn grafana_is_provisioned_with_the_datasource_and_the_board_as_home() {
    let c = compose();
    let grafana = service(&c, "grafana");
    let env = environment(grafana);
    assert_eq!(env["GF_AUTH_ANONYMOUS_ENABLED"], "true");
    assert_eq!(env["GF_AUTH_ANONYMOUS_ORG_ROLE"], "Viewer");

    let board_target = mounted_at(grafana, "grafana/serverwatch.json");
    assert_eq!(
        env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"],
        board_target
    );
    assert_eq!(
        mounted_at(grafana, "grafana/provisioning"),
        "/etc/grafana/provisioning"
    );

    // The dashboard provider reads the directory the board is mounted in.
    let provider = yaml_file(&repo().join("grafana/provisioning/dashboards/serverwatch.yml"));
    let providers = provider["providers"].as_array().expect("providers");
    assert_eq!(providers.len(), 1);
    assert_eq!(providers[0]["type"], "file");
    assert_eq!(
        providers[0]["options"]["path"].as_str().unwrap(),
        Path::new(&board_target).parent().unwrap().to_str().unwrap()
    );

    // The datasource is the stack's Prometheus, default, with the uid the
    // board's DS_PROMETHEUS variable resolves to by default; an exemplar's
    // trace_id leads to the stack's Tempo.
    let ds = yaml_file(&repo().join("grafana/provisioning/datasources/prometheus.yml"));
    let list = ds["datasources"].as_array().expect("datasources");
    assert_eq!(list.len(), 2);
    let prom = &list[0];
    let tempo = &list[1];
    assert_eq!(tempo["type"], "tempo");
    let tempo_port = port_of(strings(&service(&c, "tempo")["ports"])[0].as_str());
    assert_eq!(tempo["url"], format!("http://tempo:{tempo_port}"));
    let destinations = prom["jsonData"]["exemplarTraceIdDestinations"]
        .as_array()
        .expect("exemplar destinations");
    assert_eq!(destinations.len(), 1);
    assert_eq!(destinations[0]["name"], "trace_id");
    assert_eq!(destinations[0]["datasourceUid"], tempo["uid"]);
    let command = strings(&service(&c, "prometheus")["command"]);
    assert!(
        command.contains(&"--enable-feature=exemplar-storage".to_owned()),
        "Prometheus keeps exemplars: {command:?}"
    );
    assert_eq!(prom["type"], "prometheus");
    assert_eq!(prom["isDefault"], true);
    assert_eq!(prom["url"], "http://prometheus:9090");
    let scrape =
        yaml_file(&repo().join("prometheus/prometheus.yml"))["global"]["scrape_interval"].clone();
    assert_eq!(
        prom["jsonData"]["timeInterval"], scrape,
        "$__rate_interval is based on the real scrape interval"
    );
}

// ---------------------------------------------------------------------------
// Prometheus: promtool

#[test]
fn promtool_accepts_the_config_and_the_rules_and_their_unit_tests_pass() {
    // The stack runs Prometheus 3; the promtool here is 2.42, which does
    // not know the one Prometheus 3 setting: it is checked here, and the
    // rest of the file by promtool.
    let config = std::fs::read_to_string(repo().join("prometheus/prometheus.yml")).unwrap();
    let parsed = yaml_file(&repo().join("prometheus/prometheus.yml"));
    assert_eq!(
        parsed["global"]["metric_name_escaping_scheme"].as_str(),
        Some("underscores"),
        "the board and the rules query the classic names: Prometheus 3 must ask for them"
    );
    let without: String = config
        .lines()
        .filter(|l| !l.trim_start().starts_with("metric_name_escaping_scheme:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let dir = support::launcher::fresh_temp_dir("promtool");
    let checked = dir.join("prometheus.yml");
    std::fs::write(&checked, without).unwrap();
    std::os::unix::fs::symlink(repo().join("prometheus/rules"), dir.join("rules")).unwrap();
    let out = run("promtool", &["check", "config", checked.to_str().unwrap()]);
    assert_success(&out, "promtool check config");
    std::fs::remove_dir_all(&dir).unwrap();

    let mut rules: Vec<String> = std::fs::read_dir(repo().join("prometheus/rules"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .map(|p| p.strip_prefix(repo()).unwrap().display().to_string())
        .collect();
    rules.sort();
    let mut args = vec!["check", "rules"];
    args.extend(rules.iter().map(String::as_str));
    assert_success(&run("promtool", &args), "promtool check rules");

    // Each rule file is exercised by the unit tests.
    let tests = yaml_file(&repo().join("prometheus/tests/serverwatch-alerts.test.yml"));
    let tested: BTreeSet<String> = strings(&tests["rule_files"])
        .iter()
        .map(|f| {
            let p = repo().join("prometheus/tests").join(f);
            let p = p.canonicalize().unwrap_or(p);
            p.strip_prefix(repo().canonicalize().unwrap())
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    assert_eq!(tested, rules.iter().cloned().collect::<BTreeSet<_>>());
    // ... and every alert has a test case.
    let tested_alerts: BTreeSet<&str> = tests["tests"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_array().into_iter().flatten())
        .filter_map(|a| a["alertname"].as_str())
        .collect();
    for file in &rules {
        let doc = yaml_file(&repo().join(file));
        for group in doc["groups"].as_array().unwrap() {
            for rule in group["rules"].as_array().unwrap() {
                if let Some(alert) = rule["alert"].as_str() {
                    assert!(
                        tested_alerts.contains(alert),
                        "alert {alert} has no promtool test"
                    );
                }
            }
        }
    }

    let out = run(
        "promtool",
        &[
            "test",
            "rules",
            "prometheus/tests/serverwatch-alerts.test.yml",
        ],
    );
    assert_success(&out, "promtool test rules");
}

// ---------------------------------------------------------------------------
// The collector

#[test]
fn the_collector_pipeline_takes_otlp_in_and_serves_prometheus_out() {
    let config = yaml_file(&repo().join("otel-collector/config.yaml"));
    let protocols = &config["receivers"]["otlp"]["protocols"];
    assert_eq!(protocols["http"]["endpoint"], "0.0.0.0:4318");
    assert_eq!(protocols["grpc"]["endpoint"], "0.0.0.0:4317");
    assert_eq!(
        config["exporters"]["prometheus"]["endpoint"],
        "0.0.0.0:8889"
    );

    let service = &config["service"];
    let pipelines = service["pipelines"].as_object().expect("pipelines");
    assert_eq!(
        pipelines.keys().collect::<Vec<_>>(),
        ["metrics", "traces"],
        "a pipeline for metrics, one for traces"
    );
    let metrics = &pipelines["metrics"];
    let traces = &pipelines["traces"];
    assert_eq!(strings(&traces["receivers"]), ["otlp"]);
    assert_eq!(strings(&traces["exporters"]), ["otlp/tempo"]);
    // The traces go to Tempo's OTLP/gRPC receiver, by service name.
    let tempo = yaml_file(&repo().join("tempo/tempo.yaml"));
    let tempo_grpc = tempo["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
        .as_str()
        .expect("Tempo's OTLP/gRPC endpoint");
    assert_eq!(
        config["exporters"]["otlp/tempo"]["endpoint"],
        format!("tempo:{}", port_of(tempo_grpc))
    );
    assert_eq!(strings(&metrics["receivers"]), ["otlp"]);
    assert_eq!(strings(&metrics["exporters"]), ["prometheus"]);
    let processors = strings(&metrics["processors"]);
    assert!(
        processors.contains(&"transform/prometheus_names".to_owned()),
        "{processors:?}"
    );
    // Every component the service uses is defined, and every one defined
    // is used.
    let both = |key: &str| {
        let mut all = strings(&metrics[key]);
        all.extend(strings(&traces[key]));
        all
    };
    for (kind, used) in [
        ("receivers", both("receivers")),
        ("processors", both("processors")),
        ("exporters", both("exporters")),
        ("extensions", strings(&service["extensions"])),
    ] {
        let defined: BTreeSet<String> = config[kind]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        let used: BTreeSet<String> = used.into_iter().collect();
        assert_eq!(used, defined, "{kind}: used vs defined");
    }
    assert_eq!(
        config["extensions"]["health_check"]["endpoint"],
        "0.0.0.0:13133"
    );
}

/// One instrument serverwatch defines.
#[derive(Debug)]
struct Instrument {
    otel_name: String,
    otel_unit: String,
    /// The family name on /metrics: the base name and its unit suffix.
    prometheus_family: String,
    kind: String,
}

impl Instrument {
    /// Its sample name on /metrics: `_total` for counters, `_info` for
    /// info metrics.
    fn metrics_name(&self) -> String {
        let mut name = self.prometheus_family.clone();
        match self.kind.as_str() {
            "Counter" => name.push_str("_total"),
            "Info" => name.push_str("_info"),
            _ => {}
        }
        name
    }
}

/// Every instrument serverwatch defines, from the table that a unit test
/// of the crate keeps equal to the definitions.
fn instruments() -> Vec<Instrument> {
    let table = std::fs::read_to_string(repo().join("tests/fixtures/instruments.tsv")).unwrap();
    table
        .lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            assert_eq!(f.len(), 4, "a malformed row: {line}");
            Instrument {
                otel_name: f[0].to_owned(),
                otel_unit: f[1].to_owned(),
                kind: f[2].to_owned(),
                prometheus_family: f[3].to_owned(),
            }
        })
        .collect()
}

/// The Prometheus name the collector's `prometheus` exporter gives an OTLP
/// metric (its default translation, with suffixes; the OpenTelemetry
/// specification's "OTLP Metric points to Prometheus"): dots and other
/// characters to underscores, the unit's suffix (`{...}` annotations have
/// none; "1" is `ratio` on gauges), and `_total` on monotonic sums.
fn otlp_to_prometheus(name: &str, unit: &str, kind: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let suffix = match unit {
        "s" => Some("seconds"),
        "By" => Some("bytes"),
        "1" if matches!(kind, "Gauge" | "Info") => Some("ratio"),
        _ => None,
    };
    if let Some(suffix) = suffix
        && !out.split('_').any(|token| token == suffix)
    {
        out.push('_');
        out.push_str(suffix);
    }
    if kind == "Counter" {
        out.push_str("_total");
    }
    out
}

/// The transform processor's statements, applied to (name, unit) in order
/// as the collector does. Only the two forms the configuration uses are
/// understood; any other statement fails the test.
fn apply_transform(statements: &[String], name: &str, unit: &str) -> (String, String) {
    let (mut name, mut unit) = (name.to_owned(), unit.to_owned());
    for statement in statements {
        let (action, condition) = statement
            .split_once(" where ")
            .unwrap_or_else(|| panic!("unconditional statement: {statement}"));
        let target = condition
            .strip_prefix("metric.name == \"")
            .and_then(|s| s.strip_suffix('"'))
            .unwrap_or_else(|| panic!("unexpected condition: {condition}"));
        if name != target {
            continue;
        }
        if let Some(value) = action
            .strip_prefix("set(metric.name, \"")
            .and_then(|s| s.strip_suffix("\")"))
        {
            name = value.to_owned();
        } else if let Some(value) = action
            .strip_prefix("set(metric.unit, \"")
            .and_then(|s| s.strip_suffix("\")"))
        {
            unit = value.to_owned();
        } else {
            panic!("unexpected statement: {statement}");
        }
    }
    (name, unit)
}

#[test]
fn over_otlp_every_metric_reaches_prometheus_under_its_metrics_name() {
    let config = yaml_file(&repo().join("otel-collector/config.yaml"));
    let statements =
        strings(&config["processors"]["transform/prometheus_names"]["metric_statements"]);
    assert!(!statements.is_empty());
    let all = instruments();
    assert!(all.len() >= 25, "read only {} instruments", all.len());

    let mut wrong = Vec::new();
    let mut renamed = 0;
    for i in &all {
        let (name, unit) = apply_transform(&statements, &i.otel_name, &i.otel_unit);
        if (name.as_str(), unit.as_str()) != (i.otel_name.as_str(), i.otel_unit.as_str()) {
            renamed += 1;
        }
        let got = otlp_to_prometheus(&name, &unit, &i.kind);
        if got != i.metrics_name() {
            wrong.push(format!(
                "{} ({}) arrives as {got}, /metrics says {}",
                i.otel_name,
                i.otel_unit,
                i.metrics_name()
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "add renames to otel-collector/config.yaml:\n  {}",
        wrong.join("\n  ")
    );
    // No statement is dead: each one changes an instrument.
    assert_eq!(renamed, statements.len(), "{statements:?}");
}

#[test]
fn the_translation_follows_the_specification() {
    assert_eq!(
        otlp_to_prometheus("http.server.request.duration", "s", "Histogram"),
        "http_server_request_duration_seconds"
    );
    assert_eq!(
        otlp_to_prometheus("process.cpu.time", "s", "Counter"),
        "process_cpu_time_seconds_total"
    );
    assert_eq!(
        otlp_to_prometheus(
            "db.client.connection.count",
            "{connection}",
            "UpDownCounter"
        ),
        "db_client_connection_count"
    );
    assert_eq!(
        otlp_to_prometheus("serverwatch.database.up", "1", "Gauge"),
        "serverwatch_database_up_ratio"
    );
}

// ---------------------------------------------------------------------------
// The Dockerfile

/// `.dockerignore`'s verdict on `path` (relative to the context): its last
/// matching pattern wins; `*` matches everything, `name` or `name/` the
/// entry and everything under it.
fn docker_ignored(patterns: &[String], path: &str) -> bool {
    let mut ignored = false;
    for pattern in patterns {
        let (negated, p) = match pattern.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pattern.as_str()),
        };
        let p = p.trim_end_matches('/');
        let matches = p == "*" || path == p || path.starts_with(&format!("{p}/"));
        if matches {
            ignored = !negated;
        }
    }
    ignored
}

#[test]
fn the_dockerfile_builds_the_demo_from_the_context() {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let patterns: Vec<String> = std::fs::read_to_string(repo().join(".dockerignore"))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();

    let froms: Vec<&str> = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("FROM "))
        .collect();
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    for from in &froms {
        let image = from.split_whitespace().next().unwrap();
        let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("latest");
        assert!(
            tag.chars().next().is_some_and(|c| c.is_ascii_digit()),
            "{image} is not pinned"
        );
    }
    assert!(
        dockerfile.contains("cargo build --release --locked --example demo"),
        "the image runs the demo, built with the lock file"
    );
    assert!(dockerfile.contains("\"0.0.0.0:3000\"") && dockerfile.contains("\"--traffic\""));

    // Every COPY source is in the context.
    let mut copied = Vec::new();
    for line in dockerfile.lines() {
        let Some(rest) = line.strip_prefix("COPY ") else {
            continue;
        };
        if rest.starts_with("--from") {
            continue;
        }
        let parts: Vec<&str> = rest.split_whitespace().collect();
        for source in &parts[..parts.len() - 1] {
            assert!(repo().join(source).exists(), "COPY {source}: no such file");
            assert!(
                !docker_ignored(&patterns, source),
                "COPY {source}, which .dockerignore leaves out"
            );
            copied.push(source.to_string());
        }
    }
    for wanted in ["Cargo.toml", "Cargo.lock", "src", "examples"] {
        assert!(copied.iter().any(|c| c == wanted), "{wanted} is not copied");
    }
    // Big or irrelevant parts stay out of the context.
    for path in [
        "target",
        ".git",
        "tests/shipped_queries.rs",
        "benches",
        "grafana",
    ] {
        assert!(
            docker_ignored(&patterns, path),
            "{path} is in the build context"
        );
    }

    // Every file the library compiles in (include_str!/include_bytes!) is
    // copied.
    let mut included = 0;
    for entry in walk(&repo().join("src")) {
        let text = std::fs::read_to_string(&entry).unwrap();
        for piece in text.split("include_").skip(1) {
            let Some(arg) = piece
                .strip_prefix("str!(\"")
                .or_else(|| piece.strip_prefix("bytes!(\""))
            else {
                continue;
            };
            let relative = &arg[..arg.find('"').unwrap()];
            let file = entry.parent().unwrap().join(relative);
            let file = file.canonicalize().unwrap_or(file);
            let in_repo = file
                .strip_prefix(repo().canonicalize().unwrap())
                .unwrap_or_else(|_| {
                    panic!("{} includes {relative}, outside the repo", entry.display())
                })
                .display()
                .to_string();
            assert!(
                copied
                    .iter()
                    .any(|c| in_repo == *c || in_repo.starts_with(&format!("{c}/"))),
                "{} includes {in_repo}, which the Dockerfile does not copy",
                entry.display()
            );
            included += 1;
        }
    }
    assert!(included > 0, "found no include_str!/include_bytes!");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

#[test]
fn dockerignore_matching_works_like_docker() {
    let patterns: Vec<String> = ["*", "!src/", "!Cargo.toml"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert!(docker_ignored(&patterns, "target"));
    assert!(!docker_ignored(&patterns, "src"));
    assert!(!docker_ignored(&patterns, "src/lib.rs"));
    assert!(!docker_ignored(&patterns, "Cargo.toml"));
    assert!(docker_ignored(&patterns, "Cargo.lock"));
}
