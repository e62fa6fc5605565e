//! The layer on a plain hyper/tower service, without axum's router: the
//! route templates come from a function of yours. The observability routes
//! are served on a second listener.
//!
//! ```text
//! cargo run --example tower_stack
//! curl -s 127.0.0.1:3000/users/7 && curl -s 127.0.0.1:9100/metrics | grep http_route
//! ```

use std::convert::Infallible;

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tower::{Layer, service_fn};

type Request = http::Request<serverwatch::RequestBody<hyper::body::Incoming>>;

async fn handle(request: Request) -> Result<http::Response<String>, Infallible> {
    let body = format!("you asked for {}", request.uri().path());
    Ok(http::Response::new(body))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let watch = serverwatch::ServerWatch::builder().build()?;
    // Templates from a fixed set: a raw path must never become a label.
    let layer = watch.layer().route_template(|request| {
        match request.uri.path() {
            "/" => Some("/"),
            path if path.starts_with("/users/") => Some("/users/{id}"),
            _ => None, // recorded as `unmatched`
        }
    });
    let service = layer.layer(service_fn(handle));

    let ops = tokio::net::TcpListener::bind("127.0.0.1:9100").await?;
    let ops_router: axum::Router = watch.router();
    tokio::spawn(async move { axum::serve(ops, ops_router).await });

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("serving on http://127.0.0.1:3000, metrics on http://127.0.0.1:9100/metrics");
    loop {
        let (stream, _) = listener.accept().await?;
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            let io = TokioIo::new(stream);
            if let Err(e) = http1::Builder::new().serve_connection(io, service).await {
                eprintln!("connection error: {e}");
            }
        });
    }
}
