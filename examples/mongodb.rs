//! The MongoDB driver's commands and connection pool as metrics, and a
//! bounded `ping` that makes `/health` report the database (503 when it is
//! down).
//!
//! ```text
//! MONGODB_URI=mongodb://127.0.0.1:27017 cargo run --example mongodb --features mongodb
//! curl -s 127.0.0.1:3000/count && curl -s 127.0.0.1:3000/health
//! ```

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use mongodb::bson::Document;
use mongodb::options::ClientOptions;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let uri = std::env::var("MONGODB_URI").unwrap_or_else(|_| "mongodb://127.0.0.1:27017".into());
    let mut options = ClientOptions::parse(&uri).await?;
    // Installs serverwatch's event handlers, and remembers the credentials
    // so that no view ever shows them.
    let builder = serverwatch::ServerWatch::builder().instrument_mongodb(&mut options);
    let client = mongodb::Client::with_options(options)?;
    let watch = builder
        .mongodb(client.clone())
        .mongodb_probe_timeout(Duration::from_millis(500))
        .build()?;

    let items = client.database("shop").collection::<Document>("items");
    let app = Router::new().route(
        "/count",
        get(move || {
            let items = items.clone();
            async move {
                match items.count_documents(Document::new()).await {
                    Ok(n) => n.to_string(),
                    Err(e) => format!("error: {e}"),
                }
            }
        }),
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("serving on http://{}", listener.local_addr()?);
    axum::serve(listener, watch.instrument(app)).await?;
    Ok(())
}
