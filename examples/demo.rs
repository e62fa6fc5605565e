//! The demo service: a small sample API with serverwatch on it.
//!
//! ```text
//! cargo run --example demo -- --traffic
//! ```
//!
//! Then open http://127.0.0.1:3000/dashboard (the live dashboard),
//! http://127.0.0.1:3000/health and http://127.0.0.1:3000/metrics.
//!
//! Flags:
//! - `--listen ADDR`: where to serve (default `127.0.0.1:3000`);
//! - `--traffic`: send itself a steady mix of requests so the numbers move;
//! - `--ops-listen ADDR`: serve the observability routes on a listener of
//!   their own instead of on the app;
//! - `--token TOKEN`: protect the observability routes with a bearer token;
//! - `--traces`: make a span of each request (a child of the caller's
//!   `traceparent`, if it sends one) and push the spans over OTLP to
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` (or its `…_TRACES_…` form): the request
//!   durations then carry exemplars, the trace id of a request in each
//!   bucket.
//!
//! The items served are kept in memory, an item store whose health check
//! (`item_store`) shows in `/health` and as `serverwatch_health_check_up`.
//! With `MONGODB_URI` set, `/items/{id}` also stores and reads its items in
//! MongoDB (database `serverwatch_demo`), and `/fail` sends it a query it
//! rejects, so the database metrics move and `/health` probes the server.
//!
//! With `OTEL_EXPORTER_OTLP_ENDPOINT` set (and the other standard `OTEL_*`
//! variables, if you like) it also pushes its metrics over OTLP, and sends a
//! last export when stopped with Ctrl-C or SIGTERM. It is named
//! `serverwatch-demo` unless `OTEL_SERVICE_NAME` names it otherwise.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::get;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serverwatch::ServerWatch;
use tokio::net::TcpListener;

#[derive(Debug)]
struct Args {
    listen: SocketAddr,
    ops_listen: Option<SocketAddr>,
    token: Option<String>,
    traffic: bool,
    traces: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        listen: ([127, 0, 0, 1], 3000).into(),
        ops_listen: None,
        token: None,
        traffic: false,
        traces: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match flag.as_str() {
            "--listen" => args.listen = parse_addr("--listen", &value("--listen")?)?,
            "--ops-listen" => {
                args.ops_listen = Some(parse_addr("--ops-listen", &value("--ops-listen")?)?)
            }
            "--token" => args.token = Some(value("--token")?),
            "--traffic" => args.traffic = true,
            "--traces" => args.traces = true,
            "-h" | "--help" => {
                return Err(
                    "usage: demo [--listen ADDR] [--traffic] [--traces] [--ops-listen ADDR] \
                     [--token TOKEN]"
                        .into(),
                );
            }
            other => return Err(format!("unknown flag {other:?} (try --help)")),
        }
    }
    Ok(args)
}

fn parse_addr(flag: &str, value: &str) -> Result<SocketAddr, String> {
    value
        .parse()
        .map_err(|e| format!("{flag} {value:?}: {e} (expected HOST:PORT, like 127.0.0.1:3000)"))
}

/// Where items live in MongoDB, when `MONGODB_URI` is set.
type Items = Option<mongodb::Collection<mongodb::bson::Document>>;

/// The items served so far, by id, kept in memory.
#[derive(Debug, Clone, Default)]
struct ItemStore(Arc<RwLock<HashMap<u64, String>>>);

impl ItemStore {
    /// Its health check: it answers while its lock is usable (a writer
    /// that panicked poisons it), with how many items it holds.
    async fn check(&self) -> Result<usize, String> {
        match self.0.read() {
            Ok(items) => Ok(items.len()),
            Err(_) => Err("the item store's lock is poisoned".to_owned()),
        }
    }
}

/// The sample API.
fn app(store: ItemStore, items: Items) -> Router {
    let for_fail = items.clone();
    Router::new()
        .route(
            "/items/{id}",
            get(move |path| item(path, store.clone(), items.clone())),
        )
        .route("/fail", get(move || fail(for_fail.clone())))
        .route("/panic", get(panics))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                "slow"
            }),
        )
}

async fn item(Path(id): Path<u64>, store: ItemStore, items: Items) -> Result<String, StatusCode> {
    if id == 0 {
        return Err(StatusCode::NOT_FOUND);
    }
    let name = format!("item {id}");
    if let Ok(mut kept) = store.0.write() {
        kept.entry(id).or_insert_with(|| name.clone());
    }
    if let Some(items) = items {
        let key = mongodb::bson::doc! {"_id": id as i64};
        let found = items.find_one(key.clone()).await.map_err(|e| {
            tracing::warn!("MongoDB find failed: {e}");
            StatusCode::SERVICE_UNAVAILABLE
        })?;
        if found.is_none() {
            let mut doc = key;
            doc.insert("name", &name);
            items.insert_one(doc).await.map_err(|e| {
                tracing::warn!("MongoDB insert failed: {e}");
                StatusCode::SERVICE_UNAVAILABLE
            })?;
        }
    }
    Ok(format!("{{\"id\":{id},\"name\":\"{name}\"}}"))
}

/// Fails on purpose; with MongoDB, through a query the server rejects (an
/// operator it does not know).
async fn fail(items: Items) -> (StatusCode, &'static str) {
    if let Some(items) = items {
        let bad = mongodb::bson::doc! {"name": {"$noSuchOperator": 1}};
        if let Err(e) = items.find_one(bad).await {
            tracing::debug!("the failing query failed, as meant: {e}");
        }
    }
    (StatusCode::INTERNAL_SERVER_ERROR, "failed on purpose")
}

async fn panics() -> &'static str {
    panic!("the /panic route panics on purpose")
}

/// Sends a steady request mix to the demo itself, about 20 requests a second.
async fn traffic(base: String) {
    let client = reqwest::Client::new();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    for n in 0u64.. {
        tick.tick().await;
        let path = match n % 20 {
            0 => "/fail".to_owned(),
            7 => "/items/0".to_owned(),
            13 => "/slow".to_owned(),
            19 if n % 100 == 19 => "/panic".to_owned(),
            15 => format!("/no/such/page/{n}"),
            _ => format!("/items/{}", n % 50 + 1),
        };
        let client = client.clone();
        let url = format!("{base}{path}");
        tokio::spawn(async move {
            let _ = client.get(url).send().await;
        });
    }
}

/// Logs to stderr; with `--traces`, also every span over OTLP. The
/// provider is returned to be shut down (a last export) at the end.
fn install_tracing(
    traces: bool,
    service: &str,
) -> Result<Option<SdkTracerProvider>, Box<dyn std::error::Error>> {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer());
    if !traces {
        logs.init();
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service.to_owned())
                .build(),
        )
        .build();
    let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "serverwatch-demo");
    logs.with(tracing_opentelemetry::layer().with_tracer(tracer))
        .init();
    Ok(Some(provider))
}

/// Handles the request inside a span of its own, named after its route, a
/// child of the caller's trace if its `traceparent` names one. Added around
/// serverwatch's layer, so that serverwatch sees the span as current.
async fn in_a_span(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use opentelemetry::propagation::TextMapPropagator as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;

    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |m| m.as_str());
    let name = format!("{} {route}", request.method());
    let span = tracing::info_span!("request", otel.name = %name, otel.kind = "server");
    let parent = opentelemetry_sdk::propagation::TraceContextPropagator::new()
        .extract(&opentelemetry_http::HeaderExtractor(request.headers()));
    let _ = span.set_parent(parent);
    tracing::Instrument::instrument(next.run(request), span).await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let service =
        std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "serverwatch-demo".to_owned());
    let tracer = install_tracing(args.traces, &service)?;
    // The /panic route panics on purpose: one log line each, not a backtrace.
    std::panic::set_hook(Box::new(|info| tracing::warn!("{info}")));

    let store = ItemStore::default();
    let checked = store.clone();
    let mut builder = ServerWatch::builder()
        .service_version(env!("CARGO_PKG_VERSION"))
        .health_check("item_store", move || {
            let store = checked.clone();
            async move { store.check().await }
        });
    // A name set in code wins over OTEL_SERVICE_NAME: set one only when the
    // environment does not name the service.
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        builder = builder.service_name(&service);
    }
    if let Some(token) = &args.token {
        builder = builder.bearer_token(token);
    }
    let mut items: Items = None;
    if let Ok(uri) = std::env::var("MONGODB_URI") {
        let mut options = mongodb::options::ClientOptions::parse(&uri).await?;
        // Fail fast when the server is down, rather than after the driver's 30 s.
        options.server_selection_timeout = Some(Duration::from_secs(2));
        builder = builder.instrument_mongodb(&mut options);
        let client = mongodb::Client::with_options(options)?;
        items = Some(client.database("serverwatch_demo").collection("items"));
        builder = builder.mongodb(client);
        tracing::info!("storing items in MongoDB (MONGODB_URI)");
    }
    let watch = builder.build()?;

    let listener = TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    let app = match args.ops_listen {
        None => {
            tracing::info!("dashboard on http://{addr}/dashboard (also /health and /metrics)");
            watch.instrument(app(store, items))
        }
        Some(ops_addr) => {
            let ops = TcpListener::bind(ops_addr).await?;
            tracing::info!(
                "dashboard on http://{0}/dashboard (also /health and /metrics)",
                ops.local_addr()?
            );
            let router = watch.router();
            tokio::spawn(async move { axum::serve(ops, router).await });
            app(store, items).layer(watch.layer())
        }
    };
    let app = if args.traces {
        tracing::info!("a span for each request, pushed over OTLP (--traces)");
        app.layer(axum::middleware::from_fn(in_a_span))
    } else {
        app
    };
    tracing::info!("sample API on http://{addr} (/items/{{id}}, /fail, /panic, /slow)");
    if args.traffic {
        tracing::info!("sending itself a steady request mix (--traffic)");
        tokio::spawn(traffic(format!("http://{addr}")));
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    // The last OTLP export, so the final requests reach the collector.
    watch.shutdown().await;
    if let Some(tracer) = tracer {
        // The spans still queued; the exporter blocks, so off the runtime.
        tokio::task::spawn_blocking(move || tracer.shutdown()).await??;
    }
    Ok(())
}

/// Ctrl-C, or SIGTERM (what `docker stop` and Kubernetes send).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
