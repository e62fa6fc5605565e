//! What a lying, leaving or guessing client, a panicking stream and a flood
//! of label sets do to the figures, over real sockets: raw HTTP/1.1 written
//! on a TCP stream where a well-behaved client would not do it.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::routing::{get, post};
use serde_json::Value;
use serverwatch::ServerWatch;
use support::exposition::{Sample, labels, samples_named};
use support::{TestApp, eventually, sample};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_stream::{Stream, StreamExt};

const COUNT: &str = "http_server_request_duration_seconds_count";
const DURATION_SUM: &str = "http_server_request_duration_seconds_sum";
const REQUEST_SIZE_SUM: &str = "http_server_request_body_size_bytes_sum";
const RESPONSE_SIZE_SUM: &str = "http_server_response_body_size_bytes_sum";

/// No raw exchange may take longer (the test fails instead of hanging).
const EXCHANGE_LIMIT: Duration = Duration::from_secs(20);

/// The two ways the layer is put on a router: axum's own bodies
/// (`instrument`, the default) and bodies of any type (`layer()`).
#[derive(Debug, Clone, Copy)]
enum Bodies {
    Axum,
    Any,
}

async fn serve(watch: &ServerWatch, routes: Router, bodies: Bodies) -> TestApp {
    let app = match bodies {
        Bodies::Axum => watch.instrument(routes),
        Bodies::Any => watch.router().merge(routes.layer(watch.layer())),
    };
    TestApp::serve(app).await
}

/// Reads the whole body it is sent and answers its length.
async fn count_body(body: Body) -> String {
    let mut stream = body.into_data_stream();
    let mut read = 0;
    while let Some(Ok(chunk)) = stream.next().await {
        read += chunk.len();
    }
    read.to_string()
}

/// Writes `request` on a fresh connection, closes the sending side, and
/// reads until the server closes.
async fn exchange(app: &TestApp, request: &[u8]) -> Vec<u8> {
    tokio::time::timeout(EXCHANGE_LIMIT, async {
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        stream.shutdown().await.unwrap();
        let mut answer = Vec::new();
        // A reset after a partial answer is one of the outcomes under test.
        let _ = stream.read_to_end(&mut answer).await;
        answer
    })
    .await
    .expect("the server neither answered nor closed")
}

#[tokio::test]
async fn forged_content_lengths_count_only_the_bytes_received() {
    for bodies in [Bodies::Axum, Bodies::Any] {
        let watch = ServerWatch::builder().build().unwrap();
        let routes = Router::new().route("/items/{id}", post(count_body));
        let app = serve(&watch, routes, bodies).await;
        // 10 GiB declared five times, then twice a length near 2^64 (whose
        // sum would wrap a u64), each time with 10 bytes sent.
        let lengths = [10_737_418_240u64; 5]
            .into_iter()
            .chain([18_446_744_073_709_551_610; 2]);
        for length in lengths {
            let request = format!(
                "POST /items/1 HTTP/1.1\r\nHost: t\r\nContent-Length: {length}\r\n\r\n0123456789"
            );
            let answer = exchange(&app, request.as_bytes()).await;
            let answer = String::from_utf8_lossy(&answer);
            assert!(answer.ends_with("\r\n\r\n10"), "{bodies:?}: {answer}");
        }
        let text = app.metrics().await;
        let route = [("http_route", "/items/{id}")];
        assert_eq!(sample(&text, COUNT, &route), Some(7.0), "{bodies:?}");
        assert_eq!(
            sample(&text, REQUEST_SIZE_SUM, &route),
            Some(70.0),
            "{bodies:?}: the bytes received, not the lengths declared"
        );
    }
}

#[tokio::test]
async fn a_client_that_gives_up_before_the_answer_is_recorded_as_aborted() {
    for bodies in [Bodies::Axum, Bodies::Any] {
        let watch = ServerWatch::builder().build().unwrap();
        // When the handler started: after the layer started its clock.
        let started = Arc::new(std::sync::OnceLock::new());
        let handler_started = Arc::clone(&started);
        // Slower than any client waits, so that the client always leaves first.
        let routes = Router::new().route(
            "/slow",
            get(move || async move {
                handler_started.get_or_init(Instant::now);
                tokio::time::sleep(Duration::from_secs(60)).await;
                "slow"
            }),
        );
        let app = serve(&watch, routes, bodies).await;
        let mut client = TcpStream::connect(app.addr).await.unwrap();
        client
            .write_all(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let sent = Instant::now();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let leaving = Instant::now();
        drop(client);
        let text = eventually(
            "the aborted request on /metrics",
            EXCHANGE_LIMIT,
            || async {
                let text = app.metrics().await;
                sample(&text, COUNT, &[("http_route", "/slow")]).map(|_| text)
            },
        )
        .await;
        let waited = sent.elapsed().as_secs_f64();
        let slow: Vec<Sample> = samples_named(&text, COUNT)
            .into_iter()
            .filter(|s| s.has_labels(&[("http_route", "/slow")]))
            .collect();
        assert_eq!(slow.len(), 1, "{bodies:?}: {slow:?}");
        assert!(
            slow[0].label("error_type") == Some("aborted")
                && slow[0].label("http_response_status_code").is_none(),
            "{bodies:?}: no status was sent: {:?}",
            slow[0]
        );
        let duration = sample(&text, DURATION_SUM, &[("http_route", "/slow")]).unwrap();
        // At least from the handler's start to the client's leaving (the
        // layer's clock started before the one, and stopped after the
        // other), at most until it was seen.
        let alive = leaving
            .duration_since(*started.get().expect("the handler ran"))
            .as_secs_f64();
        assert!(
            (alive..=waited).contains(&duration),
            "{bodies:?}: recorded {duration} s; the handler ran {alive} s before the client \
             left, seen {waited} s after the request was sent"
        );
        let health = app.health().await;
        let a = &health["application"];
        assert_eq!(a["total_requests"], 1, "{a:#}");
        assert_eq!(a["error_count"], 1, "aborted requests are errors: {a:#}");
        assert_eq!(a["status_codes"], serde_json::json!({"aborted": 1}));
        let error = &a["recent_errors"][0];
        assert_eq!(error["error_type"], "aborted", "{error:#}");
        assert!(error.get("status").is_none(), "{error:#}");
        assert_eq!(error["endpoint"], "GET /slow");
    }
}

/// The first 3 KiB of an export, then `then`: how its body breaks.
fn export(then: impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static) -> Body {
    let first = tokio_stream::iter([Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 3072]))]);
    Body::from_stream(first.chain(then))
}

/// Serves `routes` (a `GET /export` whose body breaks after 3 KiB) both
/// ways and checks that the request is recorded with the 200 it was sent,
/// the 3 KiB and `error_type`, as the one error of `/health`; returns the
/// recent-error entries.
async fn a_broken_export_is_recorded(routes: fn() -> Router, error_type: &str) -> Vec<Value> {
    let mut entries = Vec::new();
    for bodies in [Bodies::Axum, Bodies::Any] {
        let watch = ServerWatch::builder().panic_messages(true).build().unwrap();
        let app = serve(&watch, routes(), bodies).await;
        let answer = exchange(&app, b"GET /export HTTP/1.1\r\nHost: t\r\n\r\n").await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            !answer.ends_with("0\r\n\r\n"),
            "{bodies:?}: the body must not look complete: {answer}"
        );
        let text = app.metrics().await;
        let broken = [
            ("http_route", "/export"),
            ("http_response_status_code", "200"),
            ("error_type", error_type),
        ];
        assert_eq!(
            sample(&text, COUNT, &broken),
            Some(1.0),
            "{bodies:?}\n{text}"
        );
        assert_eq!(
            sample(&text, RESPONSE_SIZE_SUM, &broken),
            Some(3072.0),
            "{bodies:?}: the bytes sent before it broke"
        );
        let health = app.health().await;
        let a = &health["application"];
        assert_eq!(a["error_count"], 1, "{a:#}");
        let error = a["recent_errors"][0].clone();
        assert_eq!(error["error_type"], error_type, "{error:#}");
        entries.push(error);
    }
    entries
}

#[tokio::test]
async fn a_panic_in_a_streamed_body_is_recorded_as_a_panic() {
    let routes = || {
        Router::new().route(
            "/export",
            get(|| async {
                export(
                    tokio_stream::iter([()]).map(|()| -> Result<Bytes, std::io::Error> {
                        panic!("the export broke after 3 KiB")
                    }),
                )
            }),
        )
    };
    for error in a_broken_export_is_recorded(routes, "panic").await {
        assert_eq!(error["error"], "the export broke after 3 KiB", "{error:#}");
    }
}

#[tokio::test]
async fn a_streamed_body_that_fails_is_recorded_as_an_error() {
    let routes = || {
        Router::new().route(
            "/export",
            get(|| async {
                export(tokio_stream::iter([Err(std::io::Error::other(
                    "disk gone",
                ))]))
            }),
        )
    };
    a_broken_export_is_recorded(routes, "body_error").await;
}

#[tokio::test]
async fn panic_messages_are_shown_only_behind_a_token_or_when_asked() {
    let routes = || {
        Router::new().route(
            "/panic",
            get(|| async {
                if true {
                    panic!("card 4111-1111-1111-1111 declined");
                }
                ""
            }),
        )
    };
    let cases = [
        (ServerWatch::builder(), None, false),
        (
            ServerWatch::builder().bearer_token("t0k"),
            Some("t0k"),
            true,
        ),
        (ServerWatch::builder().panic_messages(true), None, true),
        (
            ServerWatch::builder()
                .bearer_token("t0k")
                .panic_messages(false),
            Some("t0k"),
            false,
        ),
    ];
    for (builder, token, shown) in cases {
        let watch = builder.build().unwrap();
        let app = TestApp::serve(watch.instrument(routes())).await;
        assert_eq!(app.status("/panic").await, 500);
        let mut request = app.client.get(app.url("/health"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let health: serde_json::Value = request.send().await.unwrap().json().await.unwrap();
        let error = &health["application"]["recent_errors"][0];
        assert_eq!(error["error_type"], "panic");
        let message = error["error"].as_str().unwrap();
        assert_eq!(
            message.contains("4111"),
            shown,
            "token {token:?}: {message}"
        );
        if !shown {
            assert!(message.contains("panicked"), "{message}");
        }
    }
}

#[tokio::test]
async fn debug_output_shows_no_token_and_no_otlp_header_value() {
    let builder = ServerWatch::builder()
        .bearer_token("token-SECRET-1")
        .otlp_endpoint("http://127.0.0.1:9")
        .otlp_header("api-key", "header-SECRET-2");
    let shown = format!("{builder:?}");
    assert!(!shown.contains("SECRET"), "{shown}");
    assert!(
        shown.contains("api-key"),
        "the header's name stays: {shown}"
    );
    let watch = builder.build().unwrap();
    for shown in [format!("{watch:?}"), format!("{watch:#?}")] {
        assert!(!shown.contains("SECRET"), "{shown}");
    }
}

#[tokio::test]
async fn errors_past_the_cardinality_cap_keep_their_error_type() {
    let watch = ServerWatch::builder().max_series(2).build().unwrap();
    let app = TestApp::serve(watch.instrument(support::status_routes())).await;
    // Two label sets fill the cap; the rest overflow.
    for code in [200, 201, 503, 503, 502, 200, 404] {
        assert_eq!(app.status(&format!("/status/{code}")).await, code);
    }
    let text = app.metrics().await;
    // Each overflow series: its label set and its count.
    let mut overflow: Vec<(BTreeMap<String, String>, f64)> = samples_named(&text, COUNT)
        .into_iter()
        .filter(|s| s.labels.contains_key("otel_metric_overflow"))
        .map(|s| (s.labels, s.value))
        .collect();
    overflow.sort_by(|a, b| a.0.cmp(&b.0));
    let flag = ("otel_metric_overflow", "true");
    assert_eq!(
        overflow,
        [
            (labels(&[("error_type", "502"), flag]), 1.0),
            (labels(&[("error_type", "503"), flag]), 2.0),
            (labels(&[flag]), 1.0),
        ],
        "{text}"
    );
    let health = app.health().await;
    let a = &health["application"];
    assert_eq!(a["total_requests"], 7, "{a:#}");
    assert_eq!(a["error_count"], 3, "overflowed 5xx are errors: {a:#}");
    assert_eq!(a["status_codes"]["503"], 2, "{a:#}");
    assert_eq!(a["routes"]["other"]["errors"], 3, "{a:#}");
}

#[tokio::test]
async fn health_is_never_sniffed_and_the_bearer_scheme_ignores_case() {
    let open = ServerWatch::builder().build().unwrap();
    let app = TestApp::serve(open.router()).await;
    let response = app.get("/health").await;
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");

    let watch = ServerWatch::builder().bearer_token("t0k").build().unwrap();
    let app = TestApp::serve(watch.router()).await;
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let response = app
            .client
            .get(app.url("/health"))
            .header("authorization", format!("{scheme} t0k"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{scheme}");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    }
}

#[tokio::test]
async fn refused_tokens_are_counted() {
    let watch = ServerWatch::builder().bearer_token("t0k").build().unwrap();
    let app = TestApp::serve(watch.router()).await;
    let refused = [
        ("/metrics", None),
        ("/metrics", Some("Bearer guess-1")),
        ("/health", Some("Bearer guess-2")),
        ("/dashboard?token=guess-3", None),
    ];
    for (path, auth) in refused {
        let mut request = app.client.get(app.url(path));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        assert_eq!(request.send().await.unwrap().status(), 401, "{path}");
    }
    let metrics = app.client.get(app.url("/metrics")).bearer_auth("t0k");
    let text = metrics.send().await.unwrap().text().await.unwrap();
    assert_eq!(
        sample(&text, "serverwatch_unauthorized_requests_total", &[]),
        Some(4.0),
        "{text}"
    );
}
