//! The request layer: what one request records, by route template, and what
//! a panic, a vanished client or a flood of distinct paths does to it.

mod support;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http_body_util::BodyExt;
use serverwatch::ServerWatch;
use support::exposition::{Sample, parse_samples};
use support::{TestApp, eventually, sample, series_count, serve_sample};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

const COUNT: &str = "http_server_request_duration_seconds_count";
const ACTIVE: &str = "http_server_active_requests";

#[tokio::test]
async fn requests_are_labelled_by_route_template_method_and_status() {
    let watch = ServerWatch::builder().build().unwrap();
    let app = serve_sample(&watch).await;
    for id in 1..=7 {
        assert_eq!(app.status(&format!("/items/{id}")).await, 200);
    }
    assert_eq!(app.status("/items/0").await, 404);
    assert_eq!(app.status("/fail").await, 500);
    assert_eq!(app.status("/api/users/9").await, 200);
    assert_eq!(app.status("/no/such/page").await, 404);

    let text = app.metrics().await;
    let count = |labels: &[(&str, &str)]| sample(&text, COUNT, labels);
    let ok = [
        ("http_request_method", "GET"),
        ("http_route", "/items/{id}"),
        ("http_response_status_code", "200"),
    ];
    assert_eq!(count(&ok), Some(7.0));
    assert_eq!(
        count(&[
            ("http_route", "/items/{id}"),
            ("http_response_status_code", "404")
        ]),
        Some(1.0)
    );
    assert_eq!(
        count(&[("http_route", "/fail"), ("error_type", "500")]),
        Some(1.0)
    );
    assert_eq!(
        count(&[("http_route", "/api/users/{id}")]),
        Some(1.0),
        "nested routers keep their full template"
    );
    assert_eq!(
        count(&[
            ("http_route", "unmatched"),
            ("http_response_status_code", "404")
        ]),
        Some(1.0)
    );
    assert!(
        !text.contains("/no/such/page") && !text.contains("/items/7"),
        "a raw path became a label value"
    );
    let samples = parse_samples(&text);
    assert!(
        samples
            .iter()
            .all(|s| s.label("http_route") != Some("/metrics")),
        "observability routes are not recorded"
    );
    // 4xx are the client's errors, not the service's.
    let client_errors: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.label("http_response_status_code") == Some("404"))
        .collect();
    assert!(!client_errors.is_empty());
    assert!(
        client_errors
            .iter()
            .all(|s| s.label("error_type").is_none()),
        "{client_errors:?}"
    );
}

#[tokio::test]
async fn unknown_methods_are_recorded_as_other() {
    let watch = ServerWatch::builder().build().unwrap();
    let app = serve_sample(&watch).await;
    let brew = reqwest::Method::from_bytes(b"BREW").unwrap();
    let status = app
        .client
        .request(brew, app.url("/items/1"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 405);
    let text = app.metrics().await;
    assert_eq!(
        sample(
            &text,
            COUNT,
            &[
                ("http_request_method", "_OTHER"),
                ("http_route", "/items/{id}")
            ]
        ),
        Some(1.0)
    );
    assert!(!text.contains("BREW"));
}

#[tokio::test]
async fn a_custom_fallback_is_recorded_as_unmatched() {
    let watch = ServerWatch::builder().build().unwrap();
    let routes = Router::new()
        .route("/", get(|| async { "home" }))
        .fallback(|| async { (http::StatusCode::NOT_FOUND, "custom 404") });
    let app = TestApp::serve(watch.instrument(routes)).await;
    assert_eq!(app.get("/x/y").await.text().await.unwrap(), "custom 404");
    let text = app.metrics().await;
    assert_eq!(
        sample(
            &text,
            COUNT,
            &[
                ("http_route", "unmatched"),
                ("http_response_status_code", "404")
            ]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_panicking_handler_is_answered_500_counted_and_listed() {
    let watch = ServerWatch::builder().panic_messages(true).build().unwrap();
    let app = serve_sample(&watch).await;
    let response = app.get("/panic").await;
    assert_eq!(response.status(), 500);
    assert_eq!(
        response.text().await.unwrap(),
        "Internal Server Error",
        "the panic message is not sent to the client"
    );
    assert_eq!(
        app.status("/items/1").await,
        200,
        "the service keeps serving"
    );
    assert_eq!(app.status("/panic").await, 500);

    let text = app.metrics().await;
    let panics = [
        ("http_route", "/panic"),
        ("http_response_status_code", "500"),
        ("error_type", "panic"),
    ];
    assert_eq!(sample(&text, COUNT, &panics), Some(2.0));
    let health = app.health().await;
    let newest = &health["application"]["recent_errors"][0];
    assert_eq!(newest["error"], "boom: handler panicked on purpose");
    assert_eq!(newest["endpoint"], "GET /panic");
    assert_eq!(newest["status"], 500);
}

#[tokio::test]
async fn body_sizes_are_recorded_with_and_without_a_content_length() {
    let watch = ServerWatch::builder().build().unwrap();
    let app = serve_sample(&watch).await;
    let body = vec![b'x'; 1000];
    let echoed = app
        .client
        .post(app.url("/echo"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.bytes().await.unwrap().len(), 1000);
    // A streamed body has no Content-Length: it is counted as it is read.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        vec![Ok(vec![b'y'; 3000]), Ok(vec![b'z'; 2000])];
    let stream = reqwest::Body::wrap_stream(futures_stream(chunks));
    let echoed = app
        .client
        .post(app.url("/echo"))
        .body(stream)
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.bytes().await.unwrap().len(), 5000);

    let text = app.metrics().await;
    let echo = [("http_route", "/echo")];
    assert_eq!(
        sample(&text, "http_server_request_body_size_bytes_sum", &echo),
        Some(6000.0)
    );
    assert_eq!(
        sample(&text, "http_server_response_body_size_bytes_sum", &echo),
        Some(6000.0)
    );
    let le_1024 = [("http_route", "/echo"), ("le", "1024.0")];
    assert_eq!(
        sample(
            &text,
            "http_server_request_body_size_bytes_bucket",
            &le_1024
        ),
        Some(1.0)
    );
}

fn futures_stream(
    chunks: Vec<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    tokio_stream::iter(chunks)
}

#[tokio::test]
async fn active_requests_fall_back_when_the_client_disconnects_mid_request() {
    let watch = ServerWatch::builder().build().unwrap();
    let routes = Router::new()
        .route("/hang", get(std::future::pending::<&'static str>))
        .route(
            "/stream",
            get(|| async {
                // An endless body: the client leaves in the middle of it.
                let chunks = tokio_stream::StreamExt::map(tokio_stream::iter(0u64..), |_| {
                    Ok::<_, std::io::Error>(bytes::Bytes::from_static(&[b'.'; 1024]))
                });
                Body::from_stream(chunks)
            }),
        );
    let app = TestApp::serve(watch.instrument(routes)).await;
    let active = || async {
        let text = app.metrics().await;
        sample(&text, ACTIVE, &[("http_request_method", "GET")])
    };

    for path in ["/hang", "/stream"] {
        let mut client = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
        client.write_all(request.as_bytes()).await.unwrap();
        if path == "/stream" {
            let mut first = [0u8; 4096];
            let n = client.read(&mut first).await.unwrap();
            assert!(n > 0 && first.starts_with(b"HTTP/1.1 200"));
        }
        eventually(
            "the request to be in flight",
            Duration::from_secs(10),
            || async { (active().await == Some(1.0)).then_some(()) },
        )
        .await;
        drop(client);
        eventually(
            "the gauge to drop back to 0",
            Duration::from_secs(10),
            || async { (active().await == Some(0.0)).then_some(()) },
        )
        .await;
    }
    // The stream that was cut off still counts as a request with its status.
    let text = app.metrics().await;
    assert_eq!(
        sample(&text, COUNT, &[("http_route", "/stream")]),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_flood_of_distinct_paths_leaves_the_series_count_bounded() {
    let watch = ServerWatch::builder().build().unwrap();
    let app = watch.instrument(support::sample_routes());
    for i in 0..50_000u32 {
        let unmatched = http::Request::get(format!("/random/{i}/{}", i.wrapping_mul(7919)))
            .body(Body::empty())
            .unwrap();
        let item = http::Request::get(format!("/items/{}", i + 1))
            .body(Body::empty())
            .unwrap();
        for request in [unmatched, item] {
            let response = app.clone().oneshot(request).await.unwrap();
            response.into_body().collect().await.unwrap();
        }
    }
    let response = app
        .oneshot(http::Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let text = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert_eq!(
        series_count(&text, COUNT),
        2,
        "one series per route template and status"
    );
    assert_eq!(
        sample(&text, COUNT, &[("http_route", "unmatched")]),
        Some(50_000.0)
    );
    assert_eq!(
        sample(&text, COUNT, &[("http_route", "/items/{id}")]),
        Some(50_000.0)
    );
    assert!(
        text.len() < 64 * 1024,
        "/metrics grew to {} bytes",
        text.len()
    );
}

#[tokio::test]
async fn label_sets_past_the_cap_share_one_overflow_series() {
    let watch = ServerWatch::builder().max_series(3).build().unwrap();
    let app = TestApp::serve(watch.instrument(support::status_routes())).await;
    for code in 200..210 {
        assert_eq!(app.status(&format!("/status/{code}")).await, code);
    }
    let text = app.metrics().await;
    assert_eq!(
        series_count(&text, COUNT),
        4,
        "three label sets plus the overflow series"
    );
    assert_eq!(
        sample(&text, COUNT, &[("otel_metric_overflow", "true")]),
        Some(7.0)
    );
    let health = app.health().await;
    assert_eq!(
        health["application"]["total_requests"], 10,
        "overflowed requests still count"
    );
}
