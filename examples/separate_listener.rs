//! The observability routes on a listener of their own, protected by a
//! bearer token, while the app's listener serves only the app.
//!
//! ```text
//! METRICS_TOKEN=s3cret cargo run --example separate_listener
//! curl -s 127.0.0.1:3000/hello
//! curl -s -H 'Authorization: Bearer s3cret' 127.0.0.1:9100/metrics
//! ```
//!
//! A browser opens http://127.0.0.1:9100/dashboard?token=s3cret once and
//! keeps the token in a cookie.

use axum::Router;
use axum::routing::get;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let token = std::env::var("METRICS_TOKEN").unwrap_or_else(|_| "change-me".to_owned());
    let watch = serverwatch::ServerWatch::builder()
        .service_name("hello")
        .bearer_token(token)
        .build()?;

    // The app: recorded, but without the observability routes.
    let app = Router::new()
        .route("/hello", get(|| async { "hello" }))
        .layer(watch.layer());
    // The observability routes alone: /metrics, /health, /dashboard.
    let ops: Router = watch.router();

    let app_listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    let ops_listener = tokio::net::TcpListener::bind("127.0.0.1:9100").await?;
    println!("app on http://127.0.0.1:3000, ops on http://127.0.0.1:9100 (token required)");
    tokio::try_join!(async { axum::serve(app_listener, app).await }, async {
        axum::serve(ops_listener, ops).await
    },)?;
    Ok(())
}
