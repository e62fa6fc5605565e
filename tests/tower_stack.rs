//! The layer on a plain hyper/tower service, without axum's router: route
//! templates from the layer's function, bodies of hyper's own types, a
//! panic caught, and the numbers on `/metrics` and `/health`.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serverwatch::{RequestBody, ServerWatch};
use support::{TestApp, sample};
use tower::{Layer, service_fn};

const COUNT: &str = "http_server_request_duration_seconds_count";

/// Answers with the length of the body it read; panics on `/panic`.
async fn handle(
    request: http::Request<RequestBody<Incoming>>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    if request.uri().path() == "/panic" {
        panic!("boom from a hyper service");
    }
    let body = request.into_body().collect().await.unwrap().to_bytes();
    Ok(http::Response::new(Full::new(Bytes::from(format!(
        "read {} bytes",
        body.len()
    )))))
}

/// Serves `handle` behind the layer with plain hyper, on a free port.
async fn serve_hyper(watch: &ServerWatch) -> SocketAddr {
    let layer = watch.layer().route_template(|request| {
        let path = request.uri.path();
        if path.starts_with("/users/") {
            Some("/users/{id}")
        } else if path == "/panic" {
            Some("/panic")
        } else {
            None
        }
    });
    let service = layer.layer(service_fn(handle));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_hyper_service_is_recorded_under_the_templates_the_layer_is_given() {
    let watch = ServerWatch::builder().build().unwrap();
    let addr = serve_hyper(&watch).await;
    let ops = TestApp::serve(watch.router()).await;
    let client = reqwest::Client::new();
    let url = |path: &str| format!("http://{addr}{path}");

    for id in 1..=3 {
        let response = client
            .get(url(&format!("/users/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let posted = client
        .post(url("/users/9"))
        .body(vec![b'x'; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(posted.text().await.unwrap(), "read 1000 bytes");
    assert_eq!(
        client.get(url("/elsewhere")).send().await.unwrap().status(),
        200
    );
    let panicked = client.get(url("/panic")).send().await.unwrap();
    assert_eq!(panicked.status(), 500);
    assert_eq!(panicked.text().await.unwrap(), "Internal Server Error");

    let text = ops.metrics().await;
    let users = [
        ("http_route", "/users/{id}"),
        ("http_request_method", "GET"),
    ];
    assert_eq!(sample(&text, COUNT, &users), Some(3.0), "{text}");
    assert_eq!(
        sample(
            &text,
            "http_server_request_body_size_bytes_sum",
            &[
                ("http_route", "/users/{id}"),
                ("http_request_method", "POST")
            ]
        ),
        Some(1000.0)
    );
    assert_eq!(
        sample(&text, COUNT, &[("http_route", "unmatched")]),
        Some(1.0),
        "a path the function does not name is not a label"
    );
    assert!(!text.contains("/elsewhere"));
    assert_eq!(
        sample(
            &text,
            COUNT,
            &[("http_route", "/panic"), ("error_type", "panic")]
        ),
        Some(1.0)
    );
    let health = ops.health().await;
    assert_eq!(health["application"]["total_requests"], 6);
    assert_eq!(health["application"]["error_count"], 1);
}
