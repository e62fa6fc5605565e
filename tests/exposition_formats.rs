//! `/metrics` in both text formats, checked by the reference tools:
//! `promtool check metrics` for the classic format (0.0.4) and Python's
//! strict OpenMetrics parser for OpenMetrics 1.0.0. Both must carry the same
//! request figures.

mod support;

use support::prometheus;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use support::exposition::{Exemplar, Sample, labels, parse_samples, value_of};
use support::prometheus::{DEADLINE, counts_by_series, wait_for};

const OPENMETRICS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0";

/// GETs `/metrics`, with `accept` if given: (Content-Type, body).
async fn scrape(addr: SocketAddr, accept: Option<&str>) -> (String, String) {
    let mut request = reqwest::Client::new().get(format!("http://{addr}/metrics"));
    if let Some(accept) = accept {
        request = request.header(reqwest::header::ACCEPT, accept);
    }
    let response = request.send().await.expect("GET /metrics");
    assert_eq!(response.status(), 200, "GET /metrics");
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .expect("a Content-Type")
        .to_str()
        .unwrap()
        .to_owned();
    (content_type, response.text().await.unwrap())
}

/// Serves the test app, sends the request mix and waits until every request
/// is recorded (a request is recorded once its response body is done).
async fn app_after_traffic() -> SocketAddr {
    let watch = serverwatch::ServerWatch::builder()
        .service_name("exposition-test")
        .service_version("1.2.3")
        .build()
        .unwrap();
    let addr = prometheus::spawn_app(&watch).await;
    prometheus::send_traffic(addr).await;
    let expected = prometheus::expected_counts();
    wait_for("every request to be recorded", DEADLINE, || async {
        let counts = counts_by_series(&parse_samples(&scrape(addr, None).await.1));
        if counts == expected {
            Ok(())
        } else {
            Err(format!("got {counts:?}, want {expected:?}"))
        }
    })
    .await;
    addr
}

/// `(family name, sample names)` of a classic exposition, from its `# TYPE`
/// lines and the samples under each.
fn classic_families(text: &str) -> BTreeMap<String, (String, Vec<String>)> {
    let mut families: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            current = name.to_owned();
            families.insert(current.clone(), (kind.to_owned(), Vec::new()));
        } else if !line.starts_with('#') && !line.is_empty() {
            let name = line.split(['{', ' ']).next().unwrap().to_owned();
            families
                .get_mut(&current)
                .unwrap_or_else(|| panic!("sample {line:?} before any # TYPE"))
                .1
                .push(name);
        }
    }
    families
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_text_format_passes_promtool() {
    prometheus::require_tool("promtool", &["--version"]);
    let addr = app_after_traffic().await;
    let (content_type, body) = scrape(addr, None).await;
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "Content-Type {content_type:?}"
    );

    // Every family has samples, so promtool lints them all.
    let families = classic_families(&body);
    for name in [
        "http_server_request_duration_seconds",
        "http_server_request_body_size_bytes",
        "http_server_response_body_size_bytes",
        "http_server_active_requests",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "serverwatch_build_info",
    ] {
        assert!(families.contains_key(name), "no family {name} in:\n{body}");
    }
    for (name, (_, samples)) in &families {
        assert!(!samples.is_empty(), "family {name} has no samples:\n{body}");
    }

    let report = prometheus::promtool_check_metrics(&body);
    assert!(
        report.success && report.output.is_empty(),
        "promtool check metrics (success: {}) said:\n{}\non:\n{body}",
        report.success,
        report.output
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openmetrics_passes_the_strict_parser_and_matches_the_classic_format() {
    prometheus::require_tool(
        "python3",
        &["-c", "import prometheus_client.openmetrics.parser"],
    );
    let addr = app_after_traffic().await;
    let (content_type, om) = scrape(addr, Some(OPENMETRICS_ACCEPT)).await;
    assert!(
        content_type.starts_with("application/openmetrics-text; version=1.0.0"),
        "Content-Type {content_type:?}"
    );
    let families = prometheus::parse_openmetrics_strict(&om)
        .unwrap_or_else(|e| panic!("the strict OpenMetrics parser failed:\n{e}\non:\n{om}"));

    let kinds: BTreeMap<&str, &str> = families
        .iter()
        .map(|f| (f.name.as_str(), f.kind.as_str()))
        .collect();
    for (name, kind) in [
        ("http_server_request_duration_seconds", "histogram"),
        ("process_cpu_seconds", "counter"),
        ("process_resident_memory_bytes", "gauge"),
        ("serverwatch_build", "info"),
    ] {
        assert_eq!(
            kinds.get(name).copied(),
            Some(kind),
            "family {name} in {kinds:?}"
        );
    }
    for family in &families {
        assert!(
            !family.samples.is_empty(),
            "family {} has no samples:\n{om}",
            family.name
        );
    }

    // The parser's samples, and the classic format's, carry the same request
    // figures: exactly what was sent.
    let om_samples: Vec<Sample> = families.iter().flat_map(|f| f.samples.clone()).collect();
    let (_, classic) = scrape(addr, None).await;
    let classic_samples = parse_samples(&classic);
    let expected = prometheus::expected_counts();
    assert_eq!(
        counts_by_series(&om_samples),
        expected,
        "OpenMetrics:\n{om}"
    );
    assert_eq!(
        counts_by_series(&classic_samples),
        expected,
        "classic:\n{classic}"
    );

    let items_ok = [
        ("http_route", "/items/{id}"),
        ("http_response_status_code", "200"),
    ];
    let panics = [("http_route", "/panic"), ("error_type", "panic")];
    for (name, labels) in [
        ("http_server_request_duration_seconds_count", &items_ok[..]),
        ("http_server_request_duration_seconds_count", &panics[..]),
        ("http_server_request_body_size_bytes_count", &items_ok[..]),
        ("http_server_response_body_size_bytes_count", &items_ok[..]),
        ("http_server_response_body_size_bytes_sum", &items_ok[..]),
    ] {
        let in_om = value_of(&om_samples, name, labels);
        let in_classic = value_of(&classic_samples, name, labels);
        assert_eq!(in_om, in_classic, "{name}{labels:?}");
    }
    let inf_bucket = [
        ("http_route", "/items/{id}"),
        ("http_response_status_code", "200"),
        ("le", "+Inf"),
    ];
    assert_eq!(
        value_of(
            &classic_samples,
            "http_server_request_duration_seconds_bucket",
            &inf_bucket
        ),
        37.0
    );

    // The same build labels in both, the info's value being 1.
    let build = [
        ("service_name", "exposition-test"),
        ("service_version", "1.2.3"),
    ];
    assert_eq!(value_of(&om_samples, "serverwatch_build_info", &build), 1.0);
    assert_eq!(
        value_of(&classic_samples, "serverwatch_build_info", &build),
        1.0
    );

    // Same families in both formats (the classic names counters and infos
    // after their samples).
    let om_names: BTreeSet<String> = families
        .iter()
        .map(|f| match f.kind.as_str() {
            "counter" => format!("{}_total", f.name),
            "info" => format!("{}_info", f.name),
            _ => f.name.clone(),
        })
        .collect();
    let classic_names: BTreeSet<String> = classic_families(&classic).into_keys().collect();
    assert_eq!(om_names, classic_names);
}

/// The checks above are not vacuous: the tools do reject what is wrong.
#[test]
fn the_reference_tools_reject_bad_expositions() {
    let report =
        prometheus::promtool_check_metrics("# HELP foo A counter.\n# TYPE foo counter\nfoo 1\n");
    assert!(
        !report.success && report.output.contains("_total"),
        "promtool accepted a counter without _total: {report:?}"
    );
    let err = prometheus::parse_openmetrics_strict("# TYPE foo counter\nfoo_total 1\n")
        .expect_err("the strict parser accepted an exposition without # EOF");
    assert!(err.contains("EOF"), "{err}");
    assert_eq!(
        parse_samples(
            "a{r=\"/x/{id}\",q=\"s p\\\"c\"} 2.5 # {} 1\nb 3\n\
             c_bucket{le=\"0.1\"} 4 # {trace_id=\"ab\",span_id=\"cd\"} 0.05 1.5\n"
        ),
        [
            Sample {
                name: "a".into(),
                labels: labels(&[("q", "s p\"c"), ("r", "/x/{id}")]),
                value: 2.5,
                exemplar: Some(Exemplar {
                    labels: BTreeMap::new(),
                    value: 1.0,
                }),
            },
            Sample {
                name: "b".into(),
                labels: BTreeMap::new(),
                value: 3.0,
                exemplar: None,
            },
            Sample {
                name: "c_bucket".into(),
                labels: labels(&[("le", "0.1")]),
                value: 4.0,
                exemplar: Some(Exemplar {
                    labels: labels(&[("span_id", "cd"), ("trace_id", "ab")]),
                    value: 0.05,
                }),
            },
        ]
    );
}
