//! OTLP push against a real receiver (rotel): over both transports the
//! receiver gets exactly what `/metrics` shows, with the semantic-convention
//! names, units, types, bounds and resource; `shutdown()` sends a last export;
//! bad settings are named by `build()`.
//!
//! Each test starts its own rotel and its own app, on free loopback ports.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serverwatch::{Builder, OtlpCompression, OtlpProtocol, OtlpTemporality, ServerWatch};
use support::collector::Relay;
use support::otlp::{DEADLINE, DURATION, has_requests, over_protocols, send_items};
use support::rotel::{self, AttrValue, Batch, DataPoint, Rotel};
use support::{TestApp, serve_sample};

const INTERVAL: Duration = Duration::from_millis(300);

const REQUEST_SIZE: &str = "http.server.request.body.size";
const RESPONSE_SIZE: &str = "http.server.response.body.size";

/// The OTLP histograms and their Prometheus names.
const HISTOGRAMS: [(&str, &str); 3] = [
    (DURATION, "http_server_request_duration_seconds"),
    (REQUEST_SIZE, "http_server_request_body_size_bytes"),
    (RESPONSE_SIZE, "http_server_response_body_size_bytes"),
];

const DURATION_BOUNDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

fn builder_for(rotel: &Rotel, protocol: OtlpProtocol, interval: Duration) -> Builder {
    support::otlp::builder("otlp-test", rotel.endpoint(protocol), protocol)
        .service_version("1.2.3")
        .otlp_export_interval(interval)
}

// ---------------------------------------------------------------------------
// Traffic

/// One expected request series: method, route, status, `error.type` and how
/// many requests were sent.
type Expected = (&'static str, &'static str, i64, Option<&'static str>, u64);

/// What [`send_mix`] sends, as it must be recorded.
const MIX: [Expected; 7] = [
    ("GET", "/items/{id}", 200, None, 20),
    ("GET", "/items/{id}", 404, None, 3),
    ("GET", "/fail", 500, Some("500"), 2),
    ("GET", "/panic", 500, Some("panic"), 2),
    ("POST", "/echo", 200, None, 6),
    ("GET", "/api/users/{id}", 200, None, 4),
    ("GET", "unmatched", 404, None, 2),
];

fn mix_total() -> u64 {
    MIX.iter().map(|e| e.4).sum()
}

/// Bodies of the `/echo` requests: empty to past the 64 KiB bucket.
const ECHO_SIZES: [usize; 6] = [0, 10, 100, 1_000, 5_000, 70_000];

async fn expect_status(response: reqwest::Response, want: u16, what: &str) {
    assert_eq!(response.status().as_u16(), want, "{what}");
    // Read the body: the request is recorded once its body is done.
    response.bytes().await.unwrap();
}

/// Sends the requests of [`MIX`] and checks each answer.
async fn send_mix(app: &TestApp) {
    for id in 1..=20 {
        expect_status(app.get(&format!("/items/{id}")).await, 200, "item").await;
    }
    for _ in 0..3 {
        expect_status(app.get("/items/0").await, 404, "missing item").await;
    }
    for _ in 0..2 {
        expect_status(app.get("/fail").await, 500, "/fail").await;
        expect_status(app.get("/panic").await, 500, "/panic").await;
    }
    for size in ECHO_SIZES {
        let response = app
            .client
            .post(app.url("/echo"))
            .body(vec![b'x'; size])
            .send()
            .await
            .unwrap();
        expect_status(response, 200, "/echo").await;
    }
    for id in 1..=4 {
        expect_status(app.get(&format!("/api/users/{id}")).await, 200, "user").await;
    }
    for n in 1..=2 {
        expect_status(app.get(&format!("/nope/{n}")).await, 404, "unmatched").await;
    }
}

// ---------------------------------------------------------------------------
// Comparing a batch with /metrics

/// The Prometheus labels a request point must have, from its OTLP
/// attributes; checks their types on the way.
fn labels_of(point: &DataPoint) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    for (key, value) in &point.attributes {
        let label = match (key.as_str(), value) {
            ("http.request.method", AttrValue::Str(s)) => ("http_request_method", s.clone()),
            ("http.route", AttrValue::Str(s)) => ("http_route", s.clone()),
            ("http.response.status_code", AttrValue::Int(n)) => {
                ("http_response_status_code", n.to_string())
            }
            ("error.type", AttrValue::Str(s)) => ("error_type", s.clone()),
            _ => return Err(format!("unexpected attribute {key}: {value} on {point:?}")),
        };
        labels.insert(label.0.to_owned(), label.1);
    }
    Ok(labels)
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// Every point of the three request histograms of `batch` equals the same
/// series on `/metrics`: count, sum, each bucket, and the same series.
fn assert_batch_matches_metrics(batch: &Batch, metrics_text: &str) {
    let samples = support::exposition::parse_samples(metrics_text);
    for (otel, prom) in HISTOGRAMS {
        let metric = batch
            .metric(otel)
            .unwrap_or_else(|| panic!("{otel} missing from the batch: {:?}", batch.names()));
        let by_labels = |suffix: &str| -> BTreeMap<BTreeMap<String, String>, f64> {
            let name = format!("{prom}{suffix}");
            samples
                .iter()
                .filter(|s| s.name == name)
                .map(|s| (s.labels.clone(), s.value))
                .collect()
        };
        let counts = by_labels("_count");
        let sums = by_labels("_sum");
        let buckets = by_labels("_bucket");

        let mut seen = BTreeSet::new();
        for point in &metric.points {
            let labels = labels_of(point).unwrap_or_else(|e| panic!("{otel}: {e}"));
            assert!(seen.insert(labels.clone()), "{otel}: two points {labels:?}");
            let count = point.count.expect("a histogram point has a count");
            assert_eq!(
                counts.get(&labels).copied(),
                Some(count as f64),
                "{otel} count of {labels:?}"
            );
            let sum = point.sum.expect("a histogram point has a sum");
            let prom_sum = sums.get(&labels).copied().unwrap_or(f64::NAN);
            assert!(
                close(sum, prom_sum),
                "{otel} sum of {labels:?}: OTLP {sum}, /metrics {prom_sum}"
            );

            // Per-bucket counts against Prometheus's cumulative ones.
            assert_eq!(
                point.bucket_counts.len(),
                point.bounds.len() + 1,
                "{otel} {labels:?}: one bucket per bound plus +Inf"
            );
            let mut prom_buckets: Vec<(f64, f64)> = buckets
                .iter()
                .filter_map(|(l, v)| {
                    let mut rest = l.clone();
                    let le = rest.remove("le")?;
                    (rest == labels).then(|| (le.parse::<f64>().expect("le is a number"), *v))
                })
                .collect();
            prom_buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mut cumulative = 0;
            let mut ours = Vec::new();
            for (i, n) in point.bucket_counts.iter().enumerate() {
                cumulative += n;
                let le = point.bounds.get(i).copied().unwrap_or(f64::INFINITY);
                ours.push((le, cumulative as f64));
            }
            assert_eq!(
                ours, prom_buckets,
                "{otel} buckets of {labels:?}: OTLP (cumulated) vs /metrics"
            );
            assert_eq!(
                cumulative, count,
                "{otel} {labels:?}: buckets add up to count"
            );
        }
        let prom_series: BTreeSet<_> = counts.keys().cloned().collect();
        assert_eq!(seen, prom_series, "{otel}: the same series on both sides");
    }
}

/// Count of each (method, route, status, error) series of `name`.
fn counts_by_series(
    batch: &Batch,
    name: &str,
) -> BTreeMap<(String, String, i64, Option<String>), u64> {
    let mut counts = BTreeMap::new();
    for p in batch
        .metric(name)
        .map(|m| m.points.as_slice())
        .unwrap_or_default()
    {
        let s = |k: &str| p.attr(k).and_then(AttrValue::as_str).map(str::to_owned);
        let key = (
            s("http.request.method").unwrap_or_default(),
            s("http.route").unwrap_or_default(),
            p.attr("http.response.status_code")
                .and_then(AttrValue::as_int)
                .unwrap_or(-1),
            s("error.type"),
        );
        *counts.entry(key).or_insert(0) += p.count.unwrap_or(0);
    }
    counts
}

fn expected_series() -> BTreeMap<(String, String, i64, Option<String>), u64> {
    MIX.iter()
        .map(|(method, route, status, error, n)| {
            (
                (
                    (*method).to_owned(),
                    (*route).to_owned(),
                    *status,
                    error.map(str::to_owned),
                ),
                *n,
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------
// 1. The receiver gets what /metrics shows

async fn receiver_equals_metrics(protocol: OtlpProtocol, compression: OtlpCompression) {
    let rotel = Rotel::start().await;
    let watch = builder_for(&rotel, protocol, INTERVAL)
        .otlp_compression(compression)
        .build()
        .unwrap();
    check_receiver_equals_metrics(&rotel, &watch).await;
}

/// Sends the mix through `watch`, and checks what `rotel` received against
/// `/metrics` and the traffic.
async fn check_receiver_equals_metrics(rotel: &Rotel, watch: &ServerWatch) {
    let app = serve_sample(watch).await;
    send_mix(&app).await;

    // The latest batch that carries every request sent (nothing is sent
    // after, so the state no longer changes).
    let batch = rotel
        .wait_for_batch(
            "a batch with every request sent",
            DEADLINE,
            has_requests(mix_total()),
        )
        .await;
    let text = app.metrics().await;
    assert_batch_matches_metrics(&batch, &text);

    // And both equal the traffic sent, series by series, for the three
    // histograms.
    for name in [DURATION, REQUEST_SIZE, RESPONSE_SIZE] {
        assert_eq!(counts_by_series(&batch, name), expected_series(), "{name}");
    }
    // The /echo request bodies, byte for byte.
    let echo = batch
        .metric(REQUEST_SIZE)
        .unwrap()
        .points_with(&[("http.route", AttrValue::Str("/echo".into()))]);
    assert_eq!(echo.len(), 1);
    assert_eq!(echo[0].sum, Some(ECHO_SIZES.iter().sum::<usize>() as f64));

    watch.shutdown().await;
}

async fn receiver_gets_what_metrics_shows(protocol: OtlpProtocol) {
    receiver_equals_metrics(protocol, OtlpCompression::None).await;
}

async fn receiver_gets_gzip(protocol: OtlpProtocol) {
    receiver_equals_metrics(protocol, OtlpCompression::Gzip).await;
}

over_protocols! {
    receiver_gets_what_metrics_shows => [http_protobuf, grpc, http_json];
    receiver_gets_gzip => [http_protobuf, grpc, http_json];
}

/// zstd, through a relay of the test's own that decompresses it for rotel
/// (which takes only gzip).
#[cfg(feature = "otlp-zstd")]
async fn zstd_over(protocol: OtlpProtocol) {
    let rotel = Rotel::start().await;
    let relay = Relay::in_front_of(&rotel, protocol, 0, Duration::ZERO).await;
    let watch = builder_for(&rotel, protocol, INTERVAL)
        .otlp_endpoint(relay.endpoint())
        .otlp_compression(OtlpCompression::Zstd)
        .build()
        .unwrap();
    check_receiver_equals_metrics(&rotel, &watch).await;
    let encodings = relay.arrivals.encodings();
    assert!(
        encodings.iter().all(|e| e.as_deref() == Some("zstd")),
        "{encodings:?}"
    );
}

over_protocols! {
    #[cfg(feature = "otlp-zstd")]
    zstd_over => [http_protobuf, grpc];
}

/// Every export names its sender as the OTLP specification recommends:
/// `serverwatch/<version> (OTLP exporter; Rust)`, first of the header (gRPC
/// adds tonic's own after it).
async fn user_agent_names_serverwatch(protocol: OtlpProtocol) {
    let rotel = Rotel::start().await;
    let relay = Relay::in_front_of(&rotel, protocol, 0, Duration::ZERO).await;
    let watch = builder_for(&rotel, protocol, INTERVAL)
        .otlp_endpoint(relay.endpoint())
        .build()
        .unwrap();
    let app = serve_sample(&watch).await;
    send_items(&app, 2).await;
    rotel
        .wait_for_batch("the requests, through the relay", DEADLINE, has_requests(2))
        .await;
    watch.shutdown().await;

    let wanted = format!(
        "serverwatch/{} (OTLP exporter; Rust)",
        env!("CARGO_PKG_VERSION")
    );
    let agents = relay.arrivals.user_agents();
    assert!(!agents.is_empty());
    for agent in &agents {
        let agent = agent.as_deref().unwrap_or_default();
        match protocol {
            OtlpProtocol::Grpc => {
                let rest = agent.strip_prefix(wanted.as_str());
                assert!(rest.is_some_and(|r| r.starts_with(" tonic/")), "{agents:?}");
            }
            OtlpProtocol::HttpProtobuf | OtlpProtocol::HttpJson => {
                assert_eq!(agent, wanted, "{agents:?}")
            }
        }
    }
}

over_protocols! {
    user_agent_names_serverwatch => [http_protobuf, grpc, http_json];
}

// ---------------------------------------------------------------------------
// 2. Semantic conventions

const CUMULATIVE: &str = "AGGREGATION_TEMPORALITY_CUMULATIVE";

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit() && !c.is_ascii_uppercase(),
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_units_types_bounds_and_resource_follow_the_semantic_conventions() {
    let rotel = Rotel::start().await;
    let watch = builder_for(&rotel, OtlpProtocol::HttpProtobuf, INTERVAL)
        .build()
        .unwrap();
    let app = serve_sample(&watch).await;
    send_mix(&app).await;
    let has_all = has_requests(mix_total());
    let first = rotel
        .wait_for_batch("a batch with every request", DEADLINE, has_all)
        .await;
    // A later batch: the series are cumulative from a fixed start.
    let time = |b: &Batch| b.metric(DURATION).and_then(|m| m.points[0].time_unix_nano);
    let batch = rotel
        .wait_for_batch("the next batch", DEADLINE, |b| {
            has_all(b)?;
            if time(b) > time(&first) {
                Ok(())
            } else {
                Err("no newer batch yet".into())
            }
        })
        .await;

    // Resource.
    let r = &batch.resource;
    let text = |k: &str| r.get(k).and_then(AttrValue::as_str).unwrap_or_default();
    assert_eq!(text("service.name"), "otlp-test", "{r:?}");
    assert_eq!(text("service.version"), "1.2.3", "{r:?}");
    assert_eq!(text("telemetry.sdk.name"), "serverwatch", "{r:?}");
    assert!(is_uuid(text("service.instance.id")), "{r:?}");
    assert_eq!(
        first.resource["service.instance.id"], r["service.instance.id"],
        "one instance id per process"
    );

    let metric = |name: &str| {
        batch
            .metric(name)
            .unwrap_or_else(|| panic!("{name} missing; got {:?}", batch.names()))
    };

    // The request histograms.
    for (name, unit) in [(DURATION, "s"), (REQUEST_SIZE, "By"), (RESPONSE_SIZE, "By")] {
        let m = metric(name);
        assert_eq!(m.unit, unit, "{name}");
        assert_eq!(m.data_type, "Histogram", "{name}");
        assert_eq!(m.temporality.as_deref(), Some(CUMULATIVE), "{name}");
        assert!(!m.description.is_empty(), "{name}");
        assert!(!m.points.is_empty(), "{name}");
        for p in &m.points {
            let labels = labels_of(p).unwrap_or_else(|e| panic!("{name}: {e}"));
            for key in [
                "http_request_method",
                "http_route",
                "http_response_status_code",
            ] {
                assert!(labels.contains_key(key), "{name}: {key} missing on {p:?}");
            }
            let status = p
                .attr("http.response.status_code")
                .unwrap()
                .as_int()
                .unwrap();
            assert_eq!(
                p.attr("error.type").is_some(),
                status >= 500,
                "{name}: error.type on server errors only: {p:?}"
            );
            assert_eq!(
                p.bucket_counts.iter().sum::<u64>(),
                p.count.unwrap(),
                "{p:?}"
            );
            if name == DURATION {
                assert_eq!(p.bounds, DURATION_BOUNDS, "{name} bounds");
            }
            let (start, time) = (p.start_time_unix_nano.unwrap(), p.time_unix_nano.unwrap());
            assert!(
                0 < start && start < time,
                "{name}: start {start}, time {time}"
            );
        }
    }

    // Cumulative: the same start, a later time, the same counts (nothing was
    // sent in between).
    let (a, b) = (
        &first.metric(DURATION).unwrap().points,
        &metric(DURATION).points,
    );
    assert_eq!(a.len(), b.len());
    for (a, b) in a.iter().zip(b) {
        assert_eq!(a.attributes, b.attributes);
        assert_eq!(
            a.start_time_unix_nano, b.start_time_unix_nano,
            "fixed start"
        );
        assert!(a.time_unix_nano < b.time_unix_nano, "later time");
        assert_eq!((a.count, a.sum), (b.count, b.sum), "{:?}", a.attributes);
    }

    let active = metric("http.server.active_requests");
    assert_eq!(active.data_type, "Sum");
    assert_eq!(active.monotonic, Some(false));
    assert_eq!(active.temporality.as_deref(), Some(CUMULATIVE));
    assert!(
        active.points.iter().all(|p| {
            p.value == Some(0.0)
                && p.attributes.len() == 1
                && p.attr("http.request.method")
                    .is_some_and(|m| m.as_str().is_some())
        }),
        "nothing in flight, by method: {:?}",
        active.points
    );

    // Process and system.
    for (name, unit) in [
        ("process.memory.usage", "By"),
        ("process.memory.virtual", "By"),
        ("system.memory.usage", "By"),
        ("process.cpu.time", "s"),
    ] {
        assert_eq!(metric(name).unit, unit, "{name}");
    }
    for name in [
        "process.memory.usage",
        "process.memory.virtual",
        "process.thread.count",
        "process.unix.file_descriptor.count",
    ] {
        let m = metric(name);
        assert_eq!(m.points.len(), 1, "{name}");
        assert!(m.points[0].value.unwrap() >= 1.0, "{name}: {:?}", m.points);
    }
    let cpu = metric("process.cpu.time");
    assert_eq!(cpu.data_type, "Sum");
    assert_eq!(cpu.monotonic, Some(true));
    assert_eq!(cpu.temporality.as_deref(), Some(CUMULATIVE));
    let modes: BTreeSet<&str> = cpu
        .points
        .iter()
        .map(|p| {
            p.attr("cpu.mode")
                .and_then(AttrValue::as_str)
                .unwrap_or("?")
        })
        .collect();
    assert_eq!(modes, BTreeSet::from(["system", "user"]));
    assert!(cpu.points.iter().all(|p| p.value.unwrap() >= 0.0));
    let memory = metric("system.memory.usage");
    assert_eq!(memory.data_type, "Sum");
    assert_eq!(memory.monotonic, Some(false));
    let states: BTreeSet<&str> = memory
        .points
        .iter()
        .map(|p| {
            p.attr("system.memory.state")
                .and_then(AttrValue::as_str)
                .unwrap_or("?")
        })
        .collect();
    assert_eq!(
        states,
        BTreeSet::from(["buffers", "cached", "free", "used"])
    );

    watch.shutdown().await;
}

// ---------------------------------------------------------------------------
// 3. Deltas

const DELTA: &str = "AGGREGATION_TEMPORALITY_DELTA";

/// The request histograms of `batches` added up point by point: what the
/// deltas amount to, in the form of one cumulative batch.
fn added_up(batches: &[Batch]) -> Batch {
    let mut total = Batch::default();
    for (name, _) in HISTOGRAMS {
        let mut merged = rotel::Metric {
            name: name.to_owned(),
            ..rotel::Metric::default()
        };
        for point in batches
            .iter()
            .filter_map(|b| b.metric(name))
            .flat_map(|m| &m.points)
        {
            match merged
                .points
                .iter_mut()
                .find(|p| p.attributes == point.attributes)
            {
                Some(into) => {
                    into.count = Some(into.count.unwrap_or(0) + point.count.unwrap_or(0));
                    into.sum = Some(into.sum.unwrap_or(0.0) + point.sum.unwrap_or(0.0));
                    for (a, b) in into.bucket_counts.iter_mut().zip(&point.bucket_counts) {
                        *a += b;
                    }
                }
                None => merged.points.push(point.clone()),
            }
        }
        total.metrics.push(merged);
    }
    total
}

/// The sum of the duration counts over `batches`.
fn requests_in(batches: &[Batch]) -> u64 {
    batches.iter().map(|b| b.total_count(DURATION)).sum()
}

/// Waits until the deltas rotel received add up to `n` requests; returns
/// every batch received.
async fn wait_for_deltas(rotel: &Rotel, n: u64) -> Vec<Batch> {
    support::eventually("deltas adding up to every request", DEADLINE, || async {
        let batches = rotel.batches();
        (requests_in(&batches) == n).then_some(batches)
    })
    .await
}

/// Two exports around a known burst carry exactly the burst; every delta
/// starts where the one before it ended, a series first seen in the burst
/// starts at the export before it, and the deltas add up to what `/metrics`
/// shows, bucket by bucket. A restart starts afresh.
async fn deltas(protocol: OtlpProtocol) {
    let rotel = Rotel::start().await;
    let watch = builder_for(&rotel, protocol, INTERVAL)
        .otlp_temporality(OtlpTemporality::Delta)
        .build()
        .unwrap();
    let app = serve_sample(&watch).await;
    send_items(&app, 5).await;
    let before = wait_for_deltas(&rotel, 5).await.len();

    // The burst: more of a known series, and one never seen before.
    send_items(&app, 3).await;
    for id in 1..=4 {
        expect_status(app.get(&format!("/api/users/{id}")).await, 200, "user").await;
    }
    let batches = wait_for_deltas(&rotel, 12).await;
    let burst = &batches[before..];
    let route = |r: &str| vec![("http.route", AttrValue::Str(r.into()))];
    let count_of = |batches: &[Batch], r: &str| -> u64 {
        batches
            .iter()
            .filter_map(|b| b.metric(DURATION))
            .flat_map(|m| m.points_with(&route(r)))
            .map(|p| p.count.unwrap_or(0))
            .sum()
    };
    assert_eq!(count_of(burst, "/items/{id}"), 3, "exactly the burst");
    assert_eq!(count_of(burst, "/api/users/{id}"), 4, "exactly the burst");

    // Temporality per kind.
    let last = batches.last().unwrap();
    for (name, temporality) in [
        (DURATION, Some(DELTA)),
        (REQUEST_SIZE, Some(DELTA)),
        ("process.cpu.time", Some(DELTA)),
        ("http.server.active_requests", Some(CUMULATIVE)),
        ("process.memory.usage", Some(CUMULATIVE)),
        ("process.thread.count", Some(CUMULATIVE)),
    ] {
        let metric = last
            .metric(name)
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(metric.temporality.as_deref(), temporality, "{name}");
    }

    // Every delta starts where the export before it ended (no gap, no
    // overlap), those of the first export at the exporter's start, after
    // the process's; the cumulative points give each export's time and the
    // process's start.
    let export_time = |b: &Batch| {
        let p = &b.metric("process.memory.usage")?.points[0];
        Some((p.start_time_unix_nano?, p.time_unix_nano?))
    };
    let times: Vec<(u64, u64)> = batches.iter().map(|b| export_time(b).unwrap()).collect();
    let exporter_start = batches[0]
        .metric("process.cpu.time")
        .and_then(|m| m.points[0].start_time_unix_nano)
        .expect("the first export's CPU time");
    assert!((times[0].0..times[0].1).contains(&exporter_start));
    for (j, batch) in batches.iter().enumerate() {
        let start = if j == 0 {
            exporter_start
        } else {
            times[j - 1].1
        };
        for name in [DURATION, REQUEST_SIZE, "process.cpu.time"] {
            for p in batch
                .metric(name)
                .map(|m| m.points.as_slice())
                .unwrap_or_default()
            {
                assert_eq!(
                    p.start_time_unix_nano,
                    Some(start),
                    "{name} in export {j}: {p:?}"
                );
                assert_eq!(
                    p.time_unix_nano,
                    Some(times[j].1),
                    "{name} in export {j}: {p:?}"
                );
            }
        }
    }
    let first_of = |r: &str| {
        batches.iter().position(|b| {
            b.metric(DURATION)
                .is_some_and(|m| !m.points_with(&route(r)).is_empty())
        })
    };
    let users = first_of("/api/users/{id}").expect("the new series was sent");
    assert!(users >= before, "first seen in the burst");
    assert!(
        times[users - 1].1 > times[0].0,
        "a new series starts at the export before its first observation, \
         not at the exporter's start"
    );
    for batch in &batches {
        for p in batch
            .metric(DURATION)
            .map(|m| m.points.as_slice())
            .unwrap_or_default()
        {
            assert!(p.count.unwrap() > 0, "idle points are left out: {p:?}");
        }
    }

    // The same numbers as /metrics, bucket by bucket.
    assert_batch_matches_metrics(&added_up(&batches), &app.metrics().await);
    watch.shutdown().await;

    // A restart: its deltas start afresh, after everything the old exporter
    // sent.
    let old_end = times.last().unwrap().1;
    let restarted = builder_for(&rotel, protocol, INTERVAL)
        .otlp_temporality(OtlpTemporality::Delta)
        .build()
        .unwrap();
    let instance = |b: &Batch| b.resource.get("service.instance.id").cloned();
    let old_instance = instance(last);
    let batch = rotel
        .wait_for_batch("an export of the restarted exporter", DEADLINE, |b| {
            if instance(b) != old_instance {
                Ok(())
            } else {
                Err("only the old exporter's".into())
            }
        })
        .await;
    let p = &batch.metric("process.cpu.time").unwrap().points[0];
    assert!(
        p.start_time_unix_nano.unwrap() > old_end,
        "the restarted exporter starts afresh: {p:?}, the old one ended at {old_end}"
    );
    restarted.shutdown().await;
}

over_protocols! {
    deltas => [http_protobuf, grpc];
}

// ---------------------------------------------------------------------------
// 4. Shutdown flushes

async fn shutdown_flushes(protocol: OtlpProtocol) {
    const N: u64 = 25;
    let timeout = Duration::from_secs(10);
    let rotel = Rotel::start().await;
    // No periodic export happens during the test.
    let watch = support::otlp::builder("otlp-test", rotel.endpoint(protocol), protocol)
        .otlp_export_interval(Duration::from_secs(60))
        .otlp_timeout(timeout)
        .build()
        .unwrap();
    let app = serve_sample(&watch).await;
    send_items(&app, N).await;

    let start = Instant::now();
    watch.shutdown().await;
    let took = start.elapsed();
    assert!(
        took < timeout / 4,
        "shutdown took {took:?}, the export timeout is {timeout:?}"
    );

    let route = [("http.route", AttrValue::Str("/items/{id}".into()))];
    let batch = rotel
        .wait_for_batch("the last export", DEADLINE, |b| {
            let points = b.metric(DURATION).map(|m| m.points_with(&route));
            match points.as_deref() {
                Some([p]) if p.count == Some(N) => Ok(()),
                other => Err(format!("got {other:?}")),
            }
        })
        .await;
    assert_eq!(batch.total_count(DURATION), N);
    let batches = rotel.wait_quiet(Duration::from_secs(1), DEADLINE).await;
    assert_eq!(
        batches.len(),
        1,
        "exactly one export: the last one\n{}",
        rotel.log_tail(40)
    );

    // A second call returns at once and sends nothing.
    let start = Instant::now();
    watch.shutdown().await;
    assert!(start.elapsed() < Duration::from_secs(1));
    // The service still answers (and records) after the exporter stopped.
    expect_status(app.get("/items/1").await, 200, "after shutdown").await;
}

over_protocols! {
    shutdown_flushes => [http_protobuf, grpc];
}

// ---------------------------------------------------------------------------
// 5. Instruments turned off

/// The body-size histograms, off: gone from OTLP and `/metrics` alike, while
/// the duration histogram and `/health` still count every request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instruments_turned_off_leave_every_view() {
    let rotel = Rotel::start().await;
    let watch = builder_for(&rotel, OtlpProtocol::HttpProtobuf, INTERVAL)
        .disable_instruments([REQUEST_SIZE, "http_server_response_body_size_bytes"])
        .build()
        .unwrap();
    let app = serve_sample(&watch).await;
    send_mix(&app).await;
    let total = mix_total();
    let batch = rotel
        .wait_for_batch("a batch with every request", DEADLINE, has_requests(total))
        .await;
    assert!(batch.metric(REQUEST_SIZE).is_none(), "{:?}", batch.names());
    assert!(batch.metric(RESPONSE_SIZE).is_none(), "{:?}", batch.names());
    let text = app.metrics().await;
    assert!(!text.contains("body_size"), "{text}");
    assert_eq!(
        support::sample(
            &text,
            "http_server_request_duration_seconds_count",
            &[("http_route", "/echo")]
        ),
        Some(6.0)
    );
    assert_eq!(app.health().await["application"]["total_requests"], total);
    watch.shutdown().await;
}

// ---------------------------------------------------------------------------
// 6. Bad settings are named

#[test]
fn bad_otlp_settings_are_named() {
    let base = || ServerWatch::builder().otlp_endpoint("http://127.0.0.1:4318");
    let cases = [
        (
            ServerWatch::builder().otlp_endpoint("not a url"),
            "otlp_endpoint",
        ),
        (
            ServerWatch::builder().otlp_endpoint("ftp://x"),
            "otlp_endpoint",
        ),
        (
            base().otlp_export_interval(Duration::ZERO),
            "otlp_export_interval",
        ),
        (base().otlp_timeout(Duration::ZERO), "otlp_timeout"),
        (base().otlp_header("bad header", "v"), "otlp_header"),
        (
            base().otlp_certificate("/nonexistent/ca.pem"),
            "otlp_certificate",
        ),
        (
            base().otlp_client_certificate("/nonexistent/c.pem", "/nonexistent/k.pem"),
            "otlp_client_certificate",
        ),
    ];
    for (builder, setting) in cases {
        let err = builder.build().unwrap_err();
        assert_eq!(err.setting(), setting, "{err}");
        assert!(err.to_string().contains(setting), "{err}");
    }
}

// ---------------------------------------------------------------------------
// 7. The reader of what rotel prints, which every check above relies on

/// A print-out of rotel's: two requests, after a log line of its own.
const ROTEL_PRINT_OUT: &str = "\
\x1b[2m2026-01-01T00:00:00Z\x1b[0m INFO Starting Rotel.
ResourceMetrics #0
Resource SchemaURL: 
Resource attributes:
     -> service.name: Str(svc)
ScopeMetrics #0
ScopeMetrics SchemaURL: 
InstrumentationScope serverwatch 0.1.0
Metric #0
Descriptor:
     -> Name: http.server.request.duration
     -> Description: Duration: of requests.
     -> Unit: s
     -> DataType: Histogram
     -> AggregationTemporality: AGGREGATION_TEMPORALITY_CUMULATIVE
HistogramDataPoints #0
Data point attributes:
     -> http.route: Str(/items/{id})
     -> http.response.status_code: Int(200)
StartTimestamp: 1
Timestamp: 2
Count: 3
Sum: 0.5
ExplicitBounds #0: 0.1
ExplicitBounds #1: 1
Buckets #0, Count: 1
Buckets #1, Count: 2
Buckets #2, Count: 0
Metric #1
Descriptor:
     -> Name: process.cpu.time
     -> Unit: s
     -> DataType: Sum
     -> IsMonotonic: true
     -> AggregationTemporality: AGGREGATION_TEMPORALITY_CUMULATIVE
NumberDataPoints #0
Data point attributes:
     -> cpu.mode: Str(user)
StartTimestamp: 1
Timestamp: 2
Value: 0.25
ResourceMetrics #0
Resource attributes:
     -> service.name: Str(svc)
";

#[test]
fn rotel_print_out_is_read_into_batches_metrics_and_points() {
    let batches = rotel::parse(ROTEL_PRINT_OUT);
    assert_eq!(batches.len(), 2);
    let b = &batches[0];
    assert_eq!(b.resource["service.name"], AttrValue::Str("svc".into()));
    assert_eq!(b.scopes, ["serverwatch 0.1.0"]);
    assert_eq!(
        b.names(),
        ["http.server.request.duration", "process.cpu.time"]
    );
    let h = b.metric("http.server.request.duration").unwrap();
    assert_eq!(h.description, "Duration: of requests.");
    assert_eq!((h.unit.as_str(), h.data_type.as_str()), ("s", "Histogram"));
    assert_eq!(h.monotonic, None);
    let p = &h.points[0];
    assert_eq!(
        p.attr("http.route"),
        Some(&AttrValue::Str("/items/{id}".into()))
    );
    assert_eq!(
        p.attr("http.response.status_code"),
        Some(&AttrValue::Int(200))
    );
    assert_eq!((p.count, p.sum), (Some(3), Some(0.5)));
    assert_eq!(p.bounds, [0.1, 1.0]);
    assert_eq!(p.bucket_counts, [1, 2, 0]);
    assert_eq!(
        (p.start_time_unix_nano, p.time_unix_nano),
        (Some(1), Some(2))
    );
    let cpu = b.metric("process.cpu.time").unwrap();
    assert_eq!(cpu.monotonic, Some(true));
    assert_eq!(cpu.points[0].value, Some(0.25));
    assert!(batches[1].metrics.is_empty());
}
