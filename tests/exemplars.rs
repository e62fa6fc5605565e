//! Trace-linked exemplars: a request handled inside a sampled span leaves
//! its trace and span ids on the duration bucket it lands in, read by a real
//! Prometheus (`--enable-feature=exemplar-storage`) from OpenMetrics and by a
//! real OTLP receiver; a request outside any span leaves none.
//!
//! The spans come the two ways an app has them: an OpenTelemetry context
//! made current around the request (the `opentelemetry` API alone), and a
//! `tracing` span through `tracing-opentelemetry`. Either way the trace is
//! the client's, from its `traceparent` header.

mod support;

use support::rotel;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use opentelemetry::trace::{
    FutureExt as _, SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};
use serverwatch::{ExemplarFilter, ServerWatch};
use support::exposition::{Sample, parse_samples};
use support::prometheus::{
    PROTOBUF_ACCEPT, Prometheus, decode_protobuf, parse_openmetrics_strict, promtool_check_metrics,
};
use support::rotel::Rotel;
use support::{TestApp, eventually};

/// The client's trace: `traceparent: 00-<trace>-<span>-01`.
fn traceparent(trace: u128, span: u64) -> String {
    format!("00-{trace:032x}-{span:016x}-01")
}

/// The remote span of a `traceparent` header, sampled or not as it says.
fn remote_span(request: &Request) -> Option<SpanContext> {
    let header = request.headers().get("traceparent")?.to_str().ok()?;
    let mut parts = header.split('-');
    let (_, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    Some(SpanContext::new(
        TraceId::from_hex(trace).ok()?,
        SpanId::from_hex(span).ok()?,
        TraceFlags::new(u8::from_str_radix(flags, 16).ok()?),
        true,
        TraceState::default(),
    ))
}

/// Runs the request inside the client's span, as the current OpenTelemetry
/// context (what an OpenTelemetry propagation middleware does).
async fn in_remote_context(request: Request, next: Next) -> Response {
    match remote_span(&request) {
        Some(span) => {
            let cx = opentelemetry::Context::current().with_remote_span_context(span);
            next.run(request).with_context(cx).await
        }
        None => next.run(request).await,
    }
}

fn routes() -> Router {
    Router::new()
        .route("/traced", get(|| async { "in a trace" }))
        .route("/untraced", get(|| async { "in none" }))
}

async fn send(app: &TestApp, path: &str, traceparent: Option<String>) {
    let mut request = app.client.get(app.url(path));
    if let Some(header) = traceparent {
        request = request.header("traceparent", header);
    }
    assert_eq!(request.send().await.unwrap().status(), 200);
}

/// Trace ids the test makes up, distinct per test and run.
fn trace_ids(n: usize) -> Vec<u128> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    (1..=n as u128).map(|k| (now << 16) | k).collect()
}

/// The OpenMetrics text of `/metrics`.

#[tokio::test]
async fn a_real_prometheus_stores_the_trace_ids_of_the_requests_made_in_spans() {
    let watch = ServerWatch::builder().build().unwrap();
    let app = watch
        .instrument(routes())
        .layer(middleware::from_fn(in_remote_context));
    let app = TestApp::serve(app).await;
    let prometheus =
        Prometheus::start_with_features("exemplars", app.addr, &["exemplar-storage"]).await;

    // One traced request at a time, each seen by a scrape before the next:
    // a bucket keeps only its last exemplar.
    let traces = trace_ids(4);
    let mut stored = BTreeSet::new();
    for (k, &trace) in traces.iter().enumerate() {
        send(&app, "/traced", Some(traceparent(trace, k as u64 + 1))).await;
        send(&app, "/untraced", None).await;
        let wanted = format!("{trace:032x}");
        let found = eventually(
            "the exemplar in Prometheus",
            Duration::from_secs(30),
            || async {
                let ids = exemplar_trace_ids(&prometheus, "/traced").await;
                ids.contains(&wanted).then_some(ids)
            },
        )
        .await;
        stored.extend(found);
    }
    let sent: BTreeSet<String> = traces.iter().map(|t| format!("{t:032x}")).collect();
    assert_eq!(stored, sent, "every trace, and nothing else");
    assert!(
        exemplar_trace_ids(&prometheus, "/untraced")
            .await
            .is_empty(),
        "a request outside any span carries no exemplar"
    );

    // The formats: OpenMetrics with exemplars is valid for the strict
    // parser; the classic text carries none and stays promtool-clean.
    let text = app.openmetrics().await;
    assert!(
        parse_samples(&text).iter().any(|s| s
            .exemplar
            .as_ref()
            .is_some_and(|e| e.labels.contains_key("trace_id"))),
        "{text}"
    );
    parse_openmetrics_strict(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let classic = app.metrics().await;
    assert!(!classic.contains("trace_id"));
    let report = promtool_check_metrics(&classic);
    assert!(
        report.success && report.output.trim().is_empty(),
        "{}",
        report.output
    );

    // The protobuf format carries them too: on the classic bucket, and
    // among the native histogram's exemplars.
    let protobuf = app.metrics_as(PROTOBUF_ACCEPT).await;
    let families = decode_protobuf(&protobuf);
    let duration = families
        .iter()
        .find(|f| f.name == "http_server_request_duration_seconds")
        .unwrap();
    let last = format!("{:032x}", traces[traces.len() - 1]);
    for metric in &duration.metric {
        let traced = metric.label.iter().any(|l| l.value == "/traced");
        let h = metric.histogram.as_ref().unwrap();
        let ids = |e: &prometheus_client::encoding::prometheus_protobuf::prometheus_data_model::Exemplar| {
            e.label.iter().find(|l| l.name == "trace_id").map(|l| l.value.clone())
        };
        let on_buckets: Vec<String> = h
            .bucket
            .iter()
            .filter_map(|b| b.exemplar.as_ref())
            .filter_map(ids)
            .collect();
        let native: Vec<String> = h.exemplars.iter().filter_map(ids).collect();
        if traced {
            assert!(on_buckets.contains(&last), "{on_buckets:?}");
            assert_eq!(on_buckets, native);
        } else {
            assert!(on_buckets.is_empty() && native.is_empty());
        }
    }
}

/// The trace ids Prometheus stores as exemplars of `route`'s duration.
async fn exemplar_trace_ids(prometheus: &Prometheus, route: &str) -> BTreeSet<String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let query = format!("http_server_request_duration_seconds_bucket{{http_route=\"{route}\"}}");
    let (start, end) = ((now - 600).to_string(), (now + 60).to_string());
    let data = prometheus
        .api_data(
            "/api/v1/query_exemplars",
            &[("query", &query), ("start", &start), ("end", &end)],
        )
        .await
        .unwrap_or_else(|e| panic!("query_exemplars: {e}"));
    data.as_array()
        .into_iter()
        .flatten()
        .flat_map(|series| series["exemplars"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e["labels"]["trace_id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "current_thread")]
async fn a_tracing_span_leaves_its_trace_on_the_bucket_and_over_otlp() {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    // A tracer of the SDK's (the app's own, as it would be), whose spans
    // tracing-opentelemetry makes current while they are entered; this
    // runtime has one thread, which the subscriber is the default of.
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let tracer = provider.tracer("exemplars-test");
    let subscriber =
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));
    let _default = tracing::subscriber::set_default(subscriber);

    let rotel = Rotel::start().await;
    let watch = ServerWatch::builder()
        .otlp_endpoint(rotel.http_endpoint())
        .otlp_export_interval(Duration::from_millis(300))
        .build()
        .unwrap();
    let app = watch.instrument(routes()).layer(middleware::from_fn(
        |request: Request, next: Next| async move {
            // A span only for the requests that come with a trace: the
            // others are handled outside any span.
            let Some(parent) = remote_span(&request) else {
                return next.run(request).await;
            };
            let span = tracing::info_span!("request", path = %request.uri().path());
            let _ =
                span.set_parent(opentelemetry::Context::current().with_remote_span_context(parent));
            tracing::Instrument::instrument(next.run(request), span).await
        },
    ));
    let app = TestApp::serve(app).await;
    let trace = trace_ids(1)[0];
    send(&app, "/traced", Some(traceparent(trace, 7))).await;
    send(&app, "/untraced", None).await;

    let text = app.openmetrics().await;
    let wanted = format!("{trace:032x}");
    let samples = parse_samples(&text);
    let traced: Vec<&Sample> = samples
        .iter()
        .filter(|s| {
            let exemplar = s.exemplar.as_ref().map(|e| &e.labels);
            exemplar.and_then(|e| e.get("trace_id")) == Some(&wanted)
        })
        .collect();
    assert_eq!(traced.len(), 1, "one bucket carries the trace:\n{text}");
    assert_eq!(
        traced[0].label("http_route"),
        Some("/traced"),
        "{:?}",
        traced[0]
    );
    // The span is tracing's own, a child of the client's: not span 7.
    let span = traced[0].exemplar.as_ref().unwrap().labels.get("span_id");
    assert!(
        span.is_some_and(|id| *id != format!("{:016x}", 7)),
        "{:?}",
        traced[0]
    );

    let batch = rotel
        .wait_for_batch("an exemplar over OTLP", Duration::from_secs(20), |b| {
            let seen = b
                .metric("http.server.request.duration")
                .is_some_and(|m| m.points.iter().any(|p| !p.exemplar_trace_ids.is_empty()));
            if seen {
                Ok(())
            } else {
                Err("no exemplar yet".to_owned())
            }
        })
        .await;
    let duration = batch.metric("http.server.request.duration").unwrap();
    for point in &duration.points {
        let route = point.attr("http.route").cloned();
        if route == Some(rotel::AttrValue::Str("/traced".into())) {
            assert_eq!(point.exemplar_trace_ids, vec![format!("{trace:032x}")]);
        } else {
            assert!(point.exemplar_trace_ids.is_empty(), "{point:?}");
        }
    }
    watch.shutdown().await;
    let _ = provider.shutdown();
}

/// Per route, the trace ids of the exemplars of its duration buckets: from
/// OpenMetrics, from the protobuf format (classic buckets and native
/// exemplars), and from an OTLP batch; a route without one is left out.
type ByRoute = BTreeMap<String, BTreeSet<String>>;

async fn exemplars_on_metrics(app: &TestApp) -> [ByRoute; 2] {
    let mut text = ByRoute::new();
    for sample in parse_samples(&app.openmetrics().await) {
        let trace = sample
            .exemplar
            .as_ref()
            .and_then(|e| e.labels.get("trace_id"));
        if let (Some(route), Some(trace)) = (sample.label("http_route"), trace) {
            text.entry(route.to_owned())
                .or_default()
                .insert(trace.clone());
        }
    }
    let mut protobuf = ByRoute::new();
    let families = decode_protobuf(&app.metrics_as(PROTOBUF_ACCEPT).await);
    for family in &families {
        for metric in &family.metric {
            let route = metric.label.iter().find(|l| l.name == "http_route");
            let Some(h) = metric.histogram.as_ref() else {
                continue;
            };
            let exemplars = h.bucket.iter().filter_map(|b| b.exemplar.as_ref());
            for exemplar in exemplars.chain(&h.exemplars) {
                let trace = exemplar.label.iter().find(|l| l.name == "trace_id");
                if let (Some(route), Some(trace)) = (route, trace) {
                    let traces = protobuf.entry(route.value.clone()).or_default();
                    traces.insert(trace.value.clone());
                }
            }
        }
    }
    [text, protobuf]
}

fn exemplars_over_otlp(batch: &rotel::Batch) -> ByRoute {
    let mut by_route = ByRoute::new();
    for metric in &batch.metrics {
        for point in metric
            .points
            .iter()
            .filter(|p| !p.exemplar_trace_ids.is_empty())
        {
            let Some(rotel::AttrValue::Str(route)) = point.attr("http.route") else {
                panic!("an exemplar on a point without a route: {point:?}");
            };
            let traces = by_route.entry(route.clone()).or_default();
            traces.extend(point.exemplar_trace_ids.iter().cloned());
        }
    }
    by_route
}

/// A request in a sampled span (`/traced`) and one in a span that is not
/// sampled (`/untraced`), and which of them leave an exemplar under
/// `filter`, on `/metrics` and over OTLP alike.
async fn leave_exemplars_under(filter: ExemplarFilter) {
    let rotel = Rotel::start().await;
    let watch = ServerWatch::builder()
        .exemplar_filter(filter)
        .otlp_endpoint(rotel.http_endpoint())
        .otlp_export_interval(Duration::from_millis(300))
        .build()
        .unwrap();
    let app = watch
        .instrument(routes())
        .layer(middleware::from_fn(in_remote_context));
    let app = TestApp::serve(app).await;
    let [sampled, unsampled] = trace_ids(2)[..] else {
        unreachable!()
    };
    send(&app, "/traced", Some(traceparent(sampled, 1))).await;
    let not_sampled = format!("00-{unsampled:032x}-{:016x}-00", 2);
    send(&app, "/untraced", Some(not_sampled)).await;

    let ids = |trace: u128| BTreeSet::from([format!("{trace:032x}")]);
    let wanted: ByRoute = match filter {
        ExemplarFilter::AlwaysOff => ByRoute::new(),
        ExemplarFilter::TraceBased => ByRoute::from([("/traced".into(), ids(sampled))]),
        ExemplarFilter::AlwaysOn => ByRoute::from([
            ("/traced".into(), ids(sampled)),
            ("/untraced".into(), ids(unsampled)),
        ]),
    };
    for (format, found) in ["OpenMetrics", "protobuf"]
        .iter()
        .zip(exemplars_on_metrics(&app).await)
    {
        assert_eq!(found, wanted, "{format}");
    }
    let batch = rotel
        .wait_for_batch("both requests", Duration::from_secs(20), |b| {
            match b.total_count("http.server.request.duration") {
                2 => Ok(()),
                n => Err(format!("{n} of 2 requests")),
            }
        })
        .await;
    assert_eq!(exemplars_over_otlp(&batch), wanted, "OTLP");
    watch.shutdown().await;
}

#[tokio::test]
async fn always_off_leaves_no_exemplar_anywhere() {
    leave_exemplars_under(ExemplarFilter::AlwaysOff).await;
}

#[tokio::test]
async fn trace_based_takes_only_the_sampled_spans() {
    leave_exemplars_under(ExemplarFilter::TraceBased).await;
}

#[tokio::test]
async fn always_on_takes_spans_that_are_not_sampled_too() {
    leave_exemplars_under(ExemplarFilter::AlwaysOn).await;
}
