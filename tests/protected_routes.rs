//! The observability routes can be protected by a bearer token, moved under
//! a prefix, or served on a listener of their own.

mod support;

use serverwatch::ServerWatch;
use support::{TestApp, sample, sample_routes, serve_sample};

#[tokio::test]
async fn without_the_token_the_answer_is_401_and_nothing_else() {
    let watch = ServerWatch::builder()
        .bearer_token("s3cret-token")
        .build()
        .unwrap();
    let app = serve_sample(&watch).await;
    assert_eq!(
        app.status("/items/1").await,
        200,
        "the app itself stays open"
    );
    for path in ["/metrics", "/health"] {
        for auth in [
            None,
            Some("Bearer wrong"),
            Some("Basic s3cret-token"),
            Some("Bearer s3cret-tokenx"),
        ] {
            let mut request = app.client.get(app.url(path));
            if let Some(auth) = auth {
                request = request.header("authorization", auth);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 401, "{path} with {auth:?}");
            assert_eq!(response.headers()["www-authenticate"], "Bearer");
            assert!(
                response.bytes().await.unwrap().is_empty(),
                "a 401 says nothing else"
            );
        }
        let ok = app
            .client
            .get(app.url(path))
            .bearer_auth("s3cret-token")
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200, "{path} with the token");
    }
}

#[tokio::test]
async fn the_routes_can_live_under_a_prefix() {
    let watch = ServerWatch::builder().path_prefix("/ops").build().unwrap();
    let app = serve_sample(&watch).await;
    assert_eq!(app.status("/metrics").await, 404);
    assert_eq!(app.status("/ops/health").await, 200);
    let text = app.get("/ops/metrics").await.text().await.unwrap();
    let unmatched = [
        ("http_route", "unmatched"),
        ("http_response_status_code", "404"),
    ];
    assert_eq!(
        sample(
            &text,
            "http_server_request_duration_seconds_count",
            &unmatched
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn the_routes_can_be_served_on_a_separate_listener() {
    let watch = ServerWatch::builder().build().unwrap();
    let app = TestApp::serve(sample_routes().layer(watch.layer())).await;
    let ops = TestApp::serve(watch.router()).await;
    assert_eq!(app.status("/items/5").await, 200);
    assert_eq!(
        app.status("/metrics").await,
        404,
        "not on the public listener"
    );
    let text = ops.metrics().await;
    assert_eq!(
        sample(
            &text,
            "http_server_request_duration_seconds_count",
            &[("http_route", "/items/{id}")]
        ),
        Some(1.0)
    );
}
