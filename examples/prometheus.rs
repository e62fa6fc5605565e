//! Prometheus only: an axum app whose requests are recorded, with
//! `/metrics` for a Prometheus to scrape (and `/health`, `/dashboard`).
//!
//! ```text
//! cargo run --example prometheus
//! curl -s 127.0.0.1:3000/items/7 && curl -s 127.0.0.1:3000/metrics | grep http_server
//! ```
//!
//! A Prometheus scrape job for it:
//!
//! ```yaml
//! scrape_configs:
//!   - job_name: inventory
//!     static_configs: [{ targets: ["127.0.0.1:3000"] }]
//! ```

use axum::Router;
use axum::extract::Path;
use axum::routing::get;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let app = Router::new().route(
        "/items/{id}",
        get(|Path(id): Path<u32>| async move { format!("item {id}") }),
    );

    let watch = serverwatch::ServerWatch::builder()
        .service_name("inventory")
        .service_version(env!("CARGO_PKG_VERSION"))
        .build()?;
    // Records every request under its route template (`/items/{id}`) and
    // adds /metrics, /health and /dashboard.
    let app = watch.instrument(app);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("serving on http://{}/metrics", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
