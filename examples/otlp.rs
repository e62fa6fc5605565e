//! Pushing every metric over OTLP to an OpenTelemetry Collector, with a last
//! export when the service stops.
//!
//! ```text
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 OTEL_METRIC_EXPORT_INTERVAL=5000 \
//!     cargo run --example otlp --features otlp
//! ```
//!
//! The standard `OTEL_*` variables configure it (endpoint, protocol,
//! headers, timeout, interval, resource attributes); builder methods such as
//! `otlp_endpoint` override them. `/metrics` keeps serving the same numbers.

use axum::Router;
use axum::routing::get;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let mut builder = serverwatch::ServerWatch::builder().service_name("checkout");
    if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_none() {
        builder = builder.otlp_endpoint("http://127.0.0.1:4318");
    }
    let watch = builder.build()?;
    let app = watch.instrument(Router::new().route("/pay", get(|| async { "paid" })));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("serving on http://{}; Ctrl-C stops", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    // The requests of the last interval reach the collector too; this
    // waits at most the export timeout.
    watch.shutdown().await;
    Ok(())
}
