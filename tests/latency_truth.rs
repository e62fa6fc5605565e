//! Latency that tells the truth at every scale: handlers of known latency,
//! and the percentiles every view reports for them, against a real
//! Prometheus (native histograms) and a real OTLP receiver.
//!
//! The truth is bracketed per request: a timing layer inside serverwatch's
//! (around the handler) measures no more than serverwatch does, and one
//! outside it (around the whole router) no less. The order statistics
//! follow, so the true quantile of each route lies between the inner and
//! the outer quantile of the same rank, and every estimate must lie within
//! 5 % of that range.

mod support;

use support::rotel;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use serverwatch::ServerWatch;
use support::prometheus::{Prometheus, decode_protobuf, vector};
use support::rotel::Rotel;
use support::{TestApp, eventually, sample};

/// The routes, and how long each sleeps.
const ROUTES: [(&str, Duration); 3] = [
    ("/fast", Duration::ZERO),
    ("/sleep/2ms", Duration::from_millis(2)),
    ("/sleep/200ms", Duration::from_millis(200)),
];

fn app() -> Router {
    ROUTES.iter().fold(Router::new(), |app, &(path, sleep)| {
        app.route(
            path,
            get(move || async move {
                if !sleep.is_zero() {
                    tokio::time::sleep(sleep).await;
                }
                "done"
            }),
        )
    })
}

/// Durations per path, as one timing layer saw them.
#[derive(Clone, Default)]
struct Timings(Arc<Mutex<BTreeMap<String, Vec<Duration>>>>);

impl Timings {
    /// The durations of `path`, sorted.
    fn of(&self, path: &str) -> Vec<Duration> {
        let mut times = self
            .0
            .lock()
            .unwrap()
            .get(path)
            .cloned()
            .unwrap_or_default();
        times.sort();
        times
    }

    /// Every duration, sorted.
    fn all(&self) -> Vec<Duration> {
        let mut times: Vec<Duration> = self.0.lock().unwrap().values().flatten().copied().collect();
        times.sort();
        times
    }
}

async fn timed(timings: Timings, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let start = Instant::now();
    let response = next.run(request).await;
    let elapsed = start.elapsed();
    timings
        .0
        .lock()
        .unwrap()
        .entry(path)
        .or_default()
        .push(elapsed);
    response
}

/// The sample app with serverwatch, bracketed by two timing layers: the
/// inner one (around each handler) and the outer one (around everything).
fn bracketed(watch: &ServerWatch) -> (Router, Timings, Timings) {
    let (inner, outer) = (Timings::default(), Timings::default());
    let app = app().layer(middleware::from_fn({
        let inner = inner.clone();
        move |request, next| timed(inner.clone(), request, next)
    }));
    let app = watch.instrument(app).layer(middleware::from_fn({
        let outer = outer.clone();
        move |request: Request, next: Next| {
            let outer = outer.clone();
            async move {
                // Only the sample routes, not /health or /metrics.
                match request.extensions().get::<MatchedPath>() {
                    Some(m) if ROUTES.iter().any(|(p, _)| *p == m.as_str()) => {
                        timed(outer, request, next).await
                    }
                    _ => next.run(request).await,
                }
            }
        }
    }));
    (app, inner, outer)
}

/// Sends `n` requests to `path`, `concurrent` at a time.
async fn send(app: &TestApp, path: &str, n: usize, concurrent: usize) {
    for wave in 0..n.div_ceil(concurrent) {
        let size = concurrent.min(n - wave * concurrent);
        let requests = (0..size).map(|_| async {
            let response = app.get(path).await;
            assert_eq!(response.status(), 200);
            response.bytes().await.unwrap();
        });
        futures_util::future::join_all(requests).await;
    }
}

/// The observation of rank `ceil(q · n)`.
fn quantile(sorted: &[Duration], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64()
}

/// `estimate` lies within 5 % of `[lowest, highest]`.
fn assert_within(what: &str, estimate: f64, lowest: f64, highest: f64) {
    // The figures, for `--nocapture`.
    eprintln!("{what}: {estimate:.7} s, truth within [{lowest:.7}, {highest:.7}] s");
    assert!(
        estimate >= lowest * 0.95 && estimate <= highest * 1.05,
        "{what}: {estimate:.7} s is not within 5 % of [{lowest:.7}, {highest:.7}] s"
    );
}

const PERCENTILES: [(&str, f64); 3] = [("p50", 0.50), ("p95", 0.95), ("p99", 0.99)];

#[tokio::test]
async fn health_percentiles_are_true_from_microseconds_to_hundreds_of_milliseconds() {
    let watch = ServerWatch::builder().build().unwrap();
    let (router, inner, outer) = bracketed(&watch);
    let app = TestApp::serve(router).await;
    send(&app, ROUTES[0].0, 300, 1).await;
    send(&app, ROUTES[1].0, 60, 1).await;
    send(&app, ROUTES[2].0, 20, 10).await;

    let health = app.health().await;
    let routes = &health["application"]["routes"];
    for (path, _) in ROUTES {
        let latency = &routes[path]["latency"];
        let (inner, outer) = (inner.of(path), outer.of(path));
        for (name, q) in PERCENTILES {
            let estimate = latency[name].as_f64().unwrap();
            let what = format!("{path} {name}");
            assert_within(&what, estimate, quantile(&inner, q), quantile(&outer, q));
        }
    }
    let overall = &health["application"]["latency"];
    for (name, q) in PERCENTILES {
        let estimate = overall[name].as_f64().unwrap();
        let (low, high) = (quantile(&inner.all(), q), quantile(&outer.all(), q));
        assert_within(&format!("overall {name}"), estimate, low, high);
    }
}

#[tokio::test]
async fn a_real_prometheus_reads_native_histograms_and_keeps_the_classic_buckets() {
    let watch = ServerWatch::builder().build().unwrap();
    let (router, inner, outer) = bracketed(&watch);
    let app = TestApp::serve(router).await;
    let prometheus =
        Prometheus::start_with_features("native", app.addr, &["native-histograms"]).await;
    // The series scraped once before the traffic, so that its rate sees all
    // of it (a rate has nothing to compare the first sample of a series with).
    send(&app, "/sleep/2ms", 1, 1).await;
    eventually("a first scrape", Duration::from_secs(30), || async {
        let count = "histogram_count(sum(http_server_request_duration_seconds))";
        let seen = vector(&prometheus.query(count).await);
        (seen.first().map(|(_, v)| *v) == Some(1.0)).then_some(())
    })
    .await;
    send(&app, "/sleep/2ms", 99, 4).await;

    let query = "histogram_quantile(0.5, sum(rate(http_server_request_duration_seconds[1m])))";
    let median = eventually("the native median", Duration::from_secs(30), || async {
        let count = vector(
            &prometheus
                .query("histogram_count(sum(increase(http_server_request_duration_seconds[1m])))")
                .await,
        );
        // Wait until the rate covers the traffic (`increase` extrapolates
        // over the window, so not to the request).
        let seen = count.first().map_or(0.0, |(_, v)| *v);
        if seen < 99.0 {
            return None;
        }
        vector(&prometheus.query(query).await)
            .first()
            .map(|(_, v)| *v)
    })
    .await;
    // Interpolated inside a bucket of 4.4 %: within 5 % of the truth.
    let (low, high) = (inner.of("/sleep/2ms"), outer.of("/sleep/2ms"));
    assert_within(
        "Prometheus's native median",
        median,
        quantile(&low, 0.5),
        quantile(&high, 0.5),
    );

    // The same scrape carries the classic buckets: they are in the
    // protobuf exposition, beside the native buckets.
    let protobuf = app
        .client
        .get(app.url("/metrics"))
        .header(
            "accept",
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;\
             encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        protobuf.headers()["content-type"],
        "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; \
         encoding=delimited"
    );
    let families = decode_protobuf(&protobuf.bytes().await.unwrap());
    let duration = families
        .iter()
        .find(|f| f.name == "http_server_request_duration_seconds")
        .expect("the duration family");
    let h = duration
        .metric
        .iter()
        .find_map(|m| {
            let route = m.label.iter().any(|l| l.value == "/sleep/2ms");
            route.then_some(m.histogram.as_ref()?)
        })
        .expect("the /sleep/2ms histogram");
    assert_eq!(h.sample_count, 100);
    assert_eq!(h.bucket.len(), 15, "14 classic bounds and +Inf");
    assert_eq!(h.bucket.last().unwrap().cumulative_count, 100);
    assert_eq!(h.schema, 4);
    let native: i64 = h
        .positive_delta
        .iter()
        .scan(0, |c, d| {
            *c += d;
            Some(*c)
        })
        .sum();
    assert_eq!(
        native as u64 + h.zero_count,
        100,
        "the native buckets add up"
    );

    // A Prometheus without native histograms scrapes the text format: the
    // classic buckets answer the classic query.
    let classic = Prometheus::start("classic", app.addr).await;
    let classic_query = "histogram_quantile(0.5, sum by (le) \
                         (http_server_request_duration_seconds_bucket{http_route=\"/sleep/2ms\"}))";
    let classic_median = eventually("the classic median", Duration::from_secs(30), || async {
        vector(&classic.query(classic_query).await)
            .first()
            .map(|(_, v)| *v)
    })
    .await;
    // Interpolated inside the classic bucket that holds the true median:
    // what classic buckets can say. A loaded machine can stretch a 2 ms
    // sleep past the first bound, so the bucket comes from the truth.
    let bounds: Vec<f64> = h.bucket.iter().map(|b| b.upper_bound).collect();
    let (lowest, highest) = (quantile(&low, 0.5), quantile(&high, 0.5));
    let floor = bounds
        .iter()
        .copied()
        .filter(|&b| b < lowest)
        .fold(0.0, f64::max);
    let ceiling = bounds.iter().copied().find(|&b| b >= highest).unwrap();
    eprintln!("the classic median: {classic_median:.7} s, its buckets span [{floor}, {ceiling}] s");
    assert!(
        classic_median > floor && classic_median <= ceiling,
        "the classic median {classic_median} s is outside the buckets [{floor}, {ceiling}] s \
         that hold the true median [{lowest}, {highest}] s"
    );
}

/// The `q` quantile of an exponential histogram point as a backend reads
/// it: the bucket of rank `ceil(q · count)`, at its relative middle.
fn exponential_quantile(point: &rotel::DataPoint, q: f64) -> f64 {
    let count = point.count.unwrap();
    let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
    let mut seen = point.zero_count.unwrap_or(0);
    if seen >= rank {
        return 0.0;
    }
    for &(lower, upper, n) in &point.exponential_buckets {
        seen += n;
        if seen >= rank {
            return 2.0 * lower * upper / (lower + upper);
        }
    }
    panic!("rank {rank} is past the buckets of {point:?}")
}

#[tokio::test]
async fn otlp_exponential_histograms_reach_the_collector_with_the_counts_of_metrics() {
    let rotel = Rotel::start().await;
    let watch = ServerWatch::builder()
        .otlp_endpoint(rotel.http_endpoint())
        .otlp_export_interval(Duration::from_millis(300))
        .otlp_exponential_histograms(true)
        .build()
        .unwrap();
    let (router, inner, outer) = bracketed(&watch);
    let app = TestApp::serve(router).await;
    send(&app, "/fast", 40, 4).await;
    send(&app, "/sleep/2ms", 10, 5).await;
    let metrics = app.metrics().await;

    let batch = rotel
        .wait_for_batch("exponential durations", Duration::from_secs(20), |b| {
            let seen = b.total_count("http.server.request.duration");
            if seen >= 50 {
                Ok(())
            } else {
                Err(format!("{seen} requests so far"))
            }
        })
        .await;
    let duration = batch.metric("http.server.request.duration").unwrap();
    assert_eq!(duration.data_type, "ExponentialHistogram", "{duration:?}");
    for route in ["/fast", "/sleep/2ms"] {
        let point = duration
            .points
            .iter()
            .find(|p| p.attr("http.route") == Some(&rotel::AttrValue::Str(route.into())))
            .unwrap_or_else(|| panic!("no point for {route}"));
        let on_metrics = sample(
            &metrics,
            "http_server_request_duration_seconds_count",
            &[("http_route", route)],
        )
        .unwrap();
        assert_eq!(point.count, Some(on_metrics as u64), "{route}");
        assert_eq!(point.scale(), Some(4), "{route}: {point:?}");
        let buckets: u64 = point.exponential_buckets.iter().map(|b| b.2).sum::<u64>()
            + point.zero_count.unwrap_or(0);
        assert_eq!(buckets, on_metrics as u64, "{route}: the buckets add up");
        // The buckets are the store's, in seconds: bucket i ends at 2^(i/16).
        for &(lower, upper, _) in &point.exponential_buckets {
            let i = (lower.log2() * 16.0).round();
            assert!(
                (lower.log2() * 16.0 - i).abs() < 1e-6,
                "{lower} is a bound of scale 4"
            );
            assert!((upper / lower - 2f64.powf(1.0 / 16.0)).abs() < 1e-9);
        }
        // What a backend reads from these buckets is the truth within 5 %.
        let (low, high) = (inner.of(route), outer.of(route));
        for (name, q) in PERCENTILES {
            let estimate = exponential_quantile(point, q);
            let what = format!("OTLP {route} {name}");
            assert_within(&what, estimate, quantile(&low, q), quantile(&high, q));
        }
    }
    watch.shutdown().await;
}
