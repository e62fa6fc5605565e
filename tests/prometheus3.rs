//! What a Prometheus 3 scrape and the OpenTelemetry compatibility
//! specification expect of `/metrics`: the `escaping=` negotiation (UTF-8
//! names only when asked, the escaping echoed in `Content-Type`), the start
//! of every series (`_created`, protobuf created timestamps, OTLP start
//! times, all the same), `target_info`, scope labels and constant labels.
//! The suite's Prometheus (2.x) cannot negotiate UTF-8: negotiation and
//! starts are read from the payloads; it still scrapes the default form.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serverwatch::{OtlpProtocol, ServerWatch};

use support::exposition::{Sample, parse_samples};
use support::otlp::{DURATION, has_requests, send_items};
use support::prometheus::{
    DEADLINE, PROTOBUF_ACCEPT, Prometheus, decode_protobuf, parse_openmetrics_strict, vector,
    wait_for,
};
use support::rotel::{AttrValue, Rotel};
use support::{OPENMETRICS_ACCEPT, TestApp, serve_sample};

/// What Prometheus 3 sends by default.
const PROMETHEUS_3_ACCEPT: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;\
     q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;\
     escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";

const CLASSIC_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `GET /metrics` with `accept`: (Content-Type, body).
async fn scrape(addr: SocketAddr, accept: Option<&str>) -> (String, Vec<u8>) {
    let mut request = reqwest::Client::new().get(format!("http://{addr}/metrics"));
    if let Some(accept) = accept {
        request = request.header(reqwest::header::ACCEPT, accept);
    }
    let response = request.send().await.expect("GET /metrics");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    (content_type, response.bytes().await.unwrap().to_vec())
}

async fn scrape_text(addr: SocketAddr, accept: Option<&str>) -> (String, String) {
    let (content_type, body) = scrape(addr, accept).await;
    (content_type, String::from_utf8(body).unwrap())
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

/// A service whose `/metrics` holds only what requests make, so that two
/// scrapes are equal byte for byte.
fn quiet_builder(name: &str) -> serverwatch::Builder {
    ServerWatch::builder()
        .service_name(name)
        .process_and_system_metrics(false)
        .runtime_metrics(false)
}

/// The request duration series of `GET /items/{id}` answered 200.
const ITEMS: [(&str, &str); 3] = [
    ("http_request_method", "GET"),
    ("http_route", "/items/{id}"),
    ("http_response_status_code", "200"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scraper_that_asks_for_no_utf_8_gets_the_classic_names_byte_for_byte() {
    let watch = quiet_builder("p3-classic").build().unwrap();
    let app = serve_sample(&watch).await;
    send_items(&app, 3).await;

    let (content_type, default) = scrape(app.addr, None).await;
    assert_eq!(content_type, CLASSIC_CONTENT_TYPE);
    for (accept, want_type) in [
        ("text/plain;version=0.0.4", CLASSIC_CONTENT_TYPE),
        // 0.0.4 has no escaping: the parameter is not for it.
        (
            "text/plain;version=0.0.4;escaping=allow-utf-8",
            CLASSIC_CONTENT_TYPE,
        ),
        (
            "text/plain;version=1.0.0;escaping=underscores",
            "text/plain; version=1.0.0; charset=utf-8; escaping=underscores",
        ),
    ] {
        let (content_type, body) = scrape(app.addr, Some(accept)).await;
        assert_eq!(content_type, want_type, "{accept}");
        assert!(body == default, "{accept}: not the default body");
    }

    let (content_type, openmetrics) = scrape(app.addr, Some(OPENMETRICS_ACCEPT)).await;
    assert_eq!(content_type, OPENMETRICS_CONTENT_TYPE);
    let underscores = format!("{OPENMETRICS_ACCEPT};escaping=underscores");
    let (content_type, body) = scrape(app.addr, Some(&underscores)).await;
    assert_eq!(
        content_type,
        format!("{OPENMETRICS_CONTENT_TYPE}; escaping=underscores")
    );
    assert!(body == openmetrics, "escaping=underscores changed the body");

    let text = String::from_utf8(default).unwrap();
    let names: BTreeSet<String> = parse_samples(&text).into_iter().map(|s| s.name).collect();
    assert!(names.contains("http_server_request_duration_seconds_count"));
    for name in names {
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{name} is not a classic name"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_utf_8_keeps_the_opentelemetry_names_and_says_so() {
    let watch = quiet_builder("p3-utf8").build().unwrap();
    let app = serve_sample(&watch).await;
    send_items(&app, 3).await;
    let items = [
        ("http.request.method", "GET"),
        ("http.route", "/items/{id}"),
        ("http.response.status_code", "200"),
    ];

    let (content_type, text) = scrape_text(app.addr, Some(PROMETHEUS_3_ACCEPT)).await;
    assert_eq!(
        content_type,
        format!("{OPENMETRICS_CONTENT_TYPE}; escaping=allow-utf-8")
    );
    let families = parse_openmetrics_strict(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let duration = families
        .iter()
        .find(|f| f.name == "http.server.request.duration")
        .unwrap_or_else(|| panic!("no http.server.request.duration in\n{text}"));
    assert_eq!(duration.kind, "histogram");
    let count = |samples: &[Sample], name: &str| {
        samples
            .iter()
            .find(|s| s.name == name && s.has_labels(&items))
            .map(|s| s.value)
    };
    assert_eq!(
        count(&duration.samples, "http.server.request.duration_count"),
        Some(3.0)
    );
    assert!(
        families
            .iter()
            .any(|f| f.name == "target" && f.kind == "info")
    );

    let utf8_text = "text/plain;version=1.0.0;escaping=allow-utf-8";
    let (content_type, text) = scrape_text(app.addr, Some(utf8_text)).await;
    assert_eq!(
        content_type,
        "text/plain; version=1.0.0; charset=utf-8; escaping=allow-utf-8"
    );
    assert_eq!(
        count(&parse_samples(&text), "http.server.request.duration_count"),
        Some(3.0),
        "{text}"
    );

    // Escaped, the OpenTelemetry names are still what is written.
    for (escaping, name, route) in [
        (
            "dots",
            "http_dot_server_dot_request_dot_duration",
            "http_dot_route",
        ),
        (
            "values",
            "U__http_2e_server_2e_request_2e_duration",
            "U__http_2e_route",
        ),
    ] {
        let accept = format!("{OPENMETRICS_ACCEPT};escaping={escaping}");
        let (content_type, text) = scrape_text(app.addr, Some(&accept)).await;
        assert_eq!(
            content_type,
            format!("{OPENMETRICS_CONTENT_TYPE}; escaping={escaping}")
        );
        let families = parse_openmetrics_strict(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let family = families
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no {name} in\n{text}"));
        let count = family
            .samples
            .iter()
            .find(|s| s.name == format!("{name}_count") && s.label(route) == Some("/items/{id}"))
            .map(|s| s.value);
        assert_eq!(count, Some(3.0), "{escaping}");
    }

    // Protobuf names need no escaping: it keeps the classic ones, and says
    // which it wrote.
    let accept = format!("{PROTOBUF_ACCEPT};escaping=allow-utf-8");
    let (content_type, body) = scrape(app.addr, Some(&accept)).await;
    assert!(
        content_type.ends_with("; escaping=underscores"),
        "{content_type}"
    );
    let names: Vec<String> = decode_protobuf(&body).into_iter().map(|f| f.name).collect();
    assert!(
        names.contains(&"http_server_request_duration_seconds".to_owned()),
        "{names:?}"
    );
}

/// `_created` samples by family name and label set, exact to the
/// nanosecond (read from the text of the value, not as a float).
fn created_nanos(text: &str) -> BTreeMap<(String, BTreeMap<String, String>), u64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|line| {
            let sample = parse_samples(line).pop()?;
            let family = sample.name.strip_suffix("_created")?.to_owned();
            let value = line.rsplit(' ').next()?;
            let (seconds, fraction) = value.split_once('.').unwrap_or((value, "0"));
            let nanos: u64 = format!("{fraction:0<9}")[..9].parse().ok()?;
            Some((
                (family, sample.labels),
                seconds.parse::<u64>().ok()? * 1_000_000_000 + nanos,
            ))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_counter_and_histogram_has_its_start_in_openmetrics_and_protobuf() {
    let watch = ServerWatch::builder()
        .service_name("p3-created")
        .build()
        .unwrap();
    let app = serve_sample(&watch).await;
    let before_traffic = unix_nanos(SystemTime::now());
    send_items(&app, 2).await;
    let after_traffic = unix_nanos(SystemTime::now());

    let (_, text) = scrape_text(app.addr, Some(OPENMETRICS_ACCEPT)).await;
    let families = parse_openmetrics_strict(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let created = created_nanos(&text);
    for family in families
        .iter()
        .filter(|f| matches!(f.kind.as_str(), "counter" | "histogram"))
    {
        let series: BTreeSet<BTreeMap<String, String>> = family
            .samples
            .iter()
            .filter(|s| !s.name.ends_with("_created"))
            .map(|s| {
                let mut labels = s.labels.clone();
                labels.remove("le");
                labels
            })
            .collect();
        for labels in series {
            let key = (family.name.clone(), labels);
            let start = created
                .get(&key)
                .unwrap_or_else(|| panic!("no _created for {key:?}"));
            assert!(*start <= after_traffic, "{key:?} starts in the future");
        }
    }
    // A request series starts at its first request; a series that keeps
    // no start, when serverwatch started.
    let items = |labels: &BTreeMap<String, String>| {
        ITEMS
            .iter()
            .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
    };
    let (_, items_start) = created
        .iter()
        .find(|((family, labels), _)| {
            family == "http_server_request_duration_seconds" && items(labels)
        })
        .expect("the /items/{id} series");
    assert!((before_traffic..=after_traffic).contains(items_start));
    let unauthorized = created
        .iter()
        .find(|((family, _), _)| family == "serverwatch_unauthorized_requests")
        .map(|(_, start)| *start);
    assert!(
        unauthorized.is_some_and(|s| s <= before_traffic),
        "{unauthorized:?}"
    );

    // Protobuf carries the same starts as created timestamps.
    let (_, body) = scrape(app.addr, Some(PROTOBUF_ACCEPT)).await;
    let mut checked = 0;
    for family in decode_protobuf(&body) {
        for metric in &family.metric {
            let timestamp = match (&metric.counter, &metric.histogram) {
                (Some(c), _) => c.start_timestamp.as_ref(),
                (_, Some(h)) => h.start_timestamp.as_ref(),
                _ => continue,
            };
            let timestamp =
                timestamp.unwrap_or_else(|| panic!("{} without a created timestamp", family.name));
            let nanos = timestamp.seconds as u64 * 1_000_000_000 + timestamp.nanos as u64;
            let labels: BTreeMap<String, String> = metric
                .label
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect();
            if family.name == "http_server_request_duration_seconds" && items(&labels) {
                assert_eq!(nanos, *items_start, "protobuf and OpenMetrics differ");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 1, "the /items/{{id}} series in protobuf");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_series_starts_at_the_same_nanosecond_on_metrics_and_over_otlp() {
    let rotel = Rotel::start().await;
    let protocol = OtlpProtocol::HttpProtobuf;
    let watch = support::otlp::builder("p3-start", rotel.endpoint(protocol), protocol)
        .otlp_export_interval(Duration::from_millis(300))
        .build()
        .unwrap();
    let app = serve_sample(&watch).await;
    send_items(&app, 2).await;
    let batch = rotel
        .wait_for_batch("both requests", DEADLINE, has_requests(2))
        .await;
    let point = batch
        .metric(DURATION)
        .expect("the duration histogram")
        .points_with(&[("http.route", AttrValue::Str("/items/{id}".into()))])
        .pop()
        .expect("the /items/{id} point")
        .clone();

    let (_, body) = scrape(app.addr, Some(PROTOBUF_ACCEPT)).await;
    let family = decode_protobuf(&body)
        .into_iter()
        .find(|f| f.name == "http_server_request_duration_seconds")
        .expect("the duration family");
    let metric = family
        .metric
        .iter()
        .find(|m| {
            m.label
                .iter()
                .any(|l| l.name == "http_route" && l.value == "/items/{id}")
        })
        .expect("the /items/{id} series");
    let created = metric
        .histogram
        .as_ref()
        .and_then(|h| h.start_timestamp.as_ref())
        .expect("a created timestamp");
    let created = created.seconds as u64 * 1_000_000_000 + created.nanos as u64;
    assert_eq!(point.start_time_unix_nano, Some(created));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn constant_labels_and_the_resource_reach_prometheus_and_otlp() {
    let rotel = Rotel::start().await;
    let protocol = OtlpProtocol::HttpProtobuf;
    let watch = support::otlp::builder("p3-labels", rotel.endpoint(protocol), protocol)
        .service_version("4.5.6")
        .otlp_export_interval(Duration::from_millis(300))
        .constant_label("region", "eu-west-1")
        .build()
        .unwrap();
    let addr = support::prometheus::spawn_app(&watch).await;
    let prom = Prometheus::start("app", addr).await;
    support::prometheus::send_traffic(addr).await;

    // Resource over OTLP: the constant label beside the service.
    let batch = rotel
        .wait_for_batch("a batch", DEADLINE, |b| {
            if b.metric(DURATION).is_some() {
                Ok(())
            } else {
                Err("no requests yet".into())
            }
        })
        .await;
    let resource = |k: &str| {
        batch
            .resource
            .get(k)
            .and_then(AttrValue::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(resource("region"), "eu-west-1", "{:?}", batch.resource);
    let instance = resource("service.instance.id");
    assert!(
        uuid::Uuid::parse_str(&instance).is_ok(),
        "{:?}",
        batch.resource
    );

    // PromQL sees the label on serverwatch's series, and the same
    // resource in target_info.
    let series = "http_server_request_duration_seconds_count{job=\"app\",region=\"eu-west-1\"}";
    wait_for("the labelled series in Prometheus", DEADLINE, || async {
        let found = vector(&prom.query(series).await);
        if found.is_empty() {
            Err(format!("none yet; targets: {}", prom.targets().await))
        } else {
            Ok(())
        }
    })
    .await;
    let unlabelled = "count by (__name__) ({job=\"app\",region=\"\",__name__!~\"up|scrape_.*\"})";
    let unlabelled = vector(&prom.query(unlabelled).await);
    assert!(
        unlabelled.is_empty(),
        "series without region: {unlabelled:?}"
    );
    let target = vector(&prom.query("target_info{job=\"app\"}").await);
    let [(labels, 1.0)] = target.as_slice() else {
        panic!("one target_info, got {target:?}");
    };
    for (k, v) in [
        ("service_name", "p3-labels"),
        ("service_version", "4.5.6"),
        ("service_instance_id", instance.as_str()),
        ("telemetry_sdk_name", "serverwatch"),
        ("region", "eu-west-1"),
    ] {
        assert_eq!(labels.get(k).map(String::as_str), Some(v), "{labels:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scope_labels_are_on_every_series_but_target_info_when_asked() {
    for on in [false, true] {
        let watch = ServerWatch::builder()
            .service_name("p3-scope")
            .otel_scope_labels(on)
            .build()
            .unwrap();
        let app: TestApp = serve_sample(&watch).await;
        send_items(&app, 1).await;
        let (_, text) = scrape_text(app.addr, None).await;
        let samples = parse_samples(&text);
        assert!(samples.iter().any(|s| s.name == "target_info"), "{text}");
        for sample in samples {
            let scoped = sample.label("otel_scope_name") == Some("serverwatch")
                && sample.label("otel_scope_version") == Some(env!("CARGO_PKG_VERSION"));
            let want = on && sample.name != "target_info";
            assert_eq!(scoped, want, "{sample:?} with otel_scope_labels({on})");
        }
    }
}
