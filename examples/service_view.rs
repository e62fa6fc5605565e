//! The service's own view: the tokio runtime (nothing to do), the app's
//! business metrics through the `metrics` facade, a health check of a
//! dependency with the probes of an orchestrator, a constant label on every
//! series, a request label of the app's own, and a route left unrecorded.
//!
//! ```text
//! cargo run --example service_view
//! curl -s 127.0.0.1:3000/orders -X POST && curl -s 127.0.0.1:3000/metrics | grep -E 'shop|tokio|check'
//! curl -s 127.0.0.1:3000/orders -X POST -H 'x-channel: app' && curl -s 127.0.0.1:3000/metrics | grep -E 'channel|region'
//! curl -si 127.0.0.1:3000/readyz      # 503 while the "payments" dependency is down
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A stand-in dependency: up for 20 s, down for 10 s.
    let started = std::time::Instant::now();
    let payments_up = move || started.elapsed().as_secs() % 30 < 20;

    let watch = serverwatch::ServerWatch::builder()
        .service_name("shop")
        // Not recorded: browsers ask for it, and it says nothing of the shop.
        .skip_routes(["/favicon.ico"])
        // Each request series by the channel the order came from: a label
        // from a fixed set, never the header's raw value.
        // On every series, and a resource attribute over OTLP.
        .constant_label("region", "eu-west-1")
        .request_label("channel", |request| {
            let app = request.headers.get("x-channel")? == "app";
            Some(if app { "app" } else { "web" })
        })
        .health_check("payments", move || async move {
            if payments_up() {
                Ok(())
            } else {
                Err("connection refused")
            }
        })
        .health_check_with(
            "recommendations",
            serverwatch::CheckOptions::default()
                .timeout(Duration::from_millis(200))
                .critical(false),
            || async { Ok::<(), String>(()) },
        )
        .build()?;
    // The explicit call that makes serverwatch the facade's recorder.
    metrics::set_global_recorder(watch.metrics_recorder())?;
    metrics::describe_counter!("shop.orders", "Orders placed");
    metrics::describe_histogram!(
        "shop.order.value",
        metrics::Unit::Count,
        "Value of an order, in cents"
    );

    let next = Arc::new(AtomicU64::new(1));
    let app = Router::new()
        .route(
            "/orders",
            post(move || {
                let n = next.fetch_add(1, Ordering::Relaxed);
                async move {
                    metrics::counter!("shop.orders", "channel" => "web").increment(1);
                    metrics::histogram!("shop.order.value").record((n % 7 * 1_250) as f64);
                    format!("order {n}")
                }
            }),
        )
        .route("/favicon.ico", get(|| async { "" }));
    let app = watch.instrument(app);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("serving on http://{}/dashboard", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
