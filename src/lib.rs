//! Make an axum service observable in one call.
//!
//! serverwatch records every request once, in a tower layer, into a small
//! lock-free store, and reads process and system figures from `sysinfo` when
//! they are asked for. Every view reads that same state:
//!
//! - `/metrics`: Prometheus text or OpenMetrics, encoded by `prometheus-client`,
//!   with OpenTelemetry semantic-convention names;
//! - `/health`: the JSON document of the original Python `EnhancedHealthCheck`,
//!   answering 503 when unhealthy.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let app = Router::new().route("/items/{id}", get(|| async { "item" }));
//! let watch = serverwatch::ServerWatch::builder().build()?;
//! let app = watch.instrument(app); // adds /metrics and /health
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! The examples in `examples/` show each way of using the crate; `demo.rs` is
//! a complete sample service.

#[cfg(feature = "dashboard")]
mod dashboard;
mod export;
mod health;
mod histogram;
#[cfg(feature = "dashboard")]
mod history;
pub mod http;
mod instruments;
#[cfg(feature = "mongodb")]
mod mongo;
mod routes;
mod series;
mod system;

use std::fmt;
use std::sync::Arc;

use axum::Router;

#[cfg(feature = "otlp")]
#[doc(inline)]
pub use crate::export::otlp::OtlpProtocol;
#[cfg(feature = "otlp")]
use crate::export::otlp::{OtlpExporter, OtlpSettings};
#[doc(inline)]
pub use crate::http::RequestMetricsLayer;
use crate::http::store::RequestStore;
use crate::system::SystemWatch;

/// Largest accepted [`Builder::max_series`].
const MAX_SERIES_LIMIT: usize = 100_000;
/// Largest accepted [`Builder::recent_errors`].
const RECENT_ERRORS_LIMIT: usize = 1_000;

/// A handle on one service's observability. Cheap to clone: every clone
/// shares the same recorded state.
///
/// ```
/// let watch = serverwatch::ServerWatch::builder()
///     .service_name("inventory")
///     .build()?;
/// let other_handle = watch.clone();
/// # Ok::<(), serverwatch::BuildError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ServerWatch {
    shared: Arc<Shared>,
    #[cfg(feature = "otlp")]
    otlp: Option<Arc<OtlpExporter>>,
}

/// What every handle, layer and route shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) requests: Arc<RequestStore>,
    pub(crate) system: SystemWatch,
    #[cfg(feature = "dashboard")]
    pub(crate) history: history::History,
    #[cfg(feature = "mongodb")]
    pub(crate) mongo: Option<mongo::MongoWatch>,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) service_name: String,
    pub(crate) service_version: String,
    pub(crate) max_series: usize,
    pub(crate) recent_errors: usize,
    pub(crate) bearer_token: Option<String>,
    pub(crate) path_prefix: String,
}

impl ServerWatch {
    /// Starts configuring a [`ServerWatch`].
    ///
    /// ```
    /// let watch = serverwatch::ServerWatch::builder().max_series(500).build()?;
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The layer that records requests. Add it with
    /// [`Router::layer`](axum::Router::layer), after the routes it should see.
    ///
    /// ```
    /// use axum::{Router, routing::get};
    ///
    /// let watch = serverwatch::ServerWatch::builder().build()?;
    /// let app: Router = Router::new()
    ///     .route("/", get(|| async { "hi" }))
    ///     .layer(watch.layer());
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    pub fn layer(&self) -> RequestMetricsLayer {
        RequestMetricsLayer::new(Arc::clone(&self.shared.requests))
    }

    /// The observability routes, `/metrics`, `/health` and (feature
    /// `dashboard`) `/dashboard`, protected by the bearer token if one is set. Mount them where you like: nest them under
    /// a prefix, or serve them on a listener of their own.
    ///
    /// ```
    /// use axum::Router;
    ///
    /// let watch = serverwatch::ServerWatch::builder().build()?;
    /// // On the app, under /ops:
    /// let app: Router = Router::new().nest("/ops", watch.router());
    /// // Or alone, for a separate listener:
    /// let ops: Router = watch.router();
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    pub fn router<S>(&self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        routes::router(Arc::clone(&self.shared))
    }

    /// The one-call setup: records every request of `app` (its nested
    /// routers and its fallback included) and adds the observability routes
    /// under [`Builder::path_prefix`]. Requests to the observability routes
    /// themselves are not recorded. `app` must not have routes of its own at
    /// those paths (axum refuses overlapping routes): move ours with
    /// [`Builder::path_prefix`] if it does.
    ///
    /// ```
    /// use axum::{Router, routing::get};
    ///
    /// let watch = serverwatch::ServerWatch::builder().build()?;
    /// let app: Router = watch.instrument(Router::new().route("/", get(|| async { "hi" })));
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    pub fn instrument<S>(&self, app: Router<S>) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let routes = match self.shared.config.path_prefix.as_str() {
            "" => self.router(),
            prefix => Router::new().nest(prefix, self.router()),
        };
        // Merged into the routes (not the other way round) so that the
        // app's fallback, now instrumented, is the one that stays: axum keeps
        // the fallback of the router passed to `merge` when neither has a
        // custom one.
        routes.merge(app.layer(self.layer()))
    }

    /// Stops the OTLP export after a last one, so that the final requests
    /// reach the collector; waits at most the export timeout. Call it when
    /// the server has stopped serving. Without OTLP (or a second time) it
    /// returns at once.
    ///
    /// ```
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let watch = serverwatch::ServerWatch::builder().build()?;
    /// // … axum::serve(listener, app).with_graceful_shutdown(signal).await?;
    /// watch.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub async fn shutdown(&self) {
        #[cfg(feature = "otlp")]
        if let Some(otlp) = &self.otlp {
            otlp.shutdown().await;
        }
    }
}

/// Configures a [`ServerWatch`]; settings are checked by [`Builder::build`].
///
/// ```
/// let watch = serverwatch::ServerWatch::builder()
///     .service_name("inventory")
///     .service_version(env!("CARGO_PKG_VERSION"))
///     .path_prefix("/ops")
///     .bearer_token("change-me")
///     .build()?;
/// # Ok::<(), serverwatch::BuildError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    config: Config,
    /// Set by [`Builder::service_name`]; else the environment decides.
    service_name: Option<String>,
    #[cfg(feature = "otlp")]
    otlp: OtlpSettings,
    #[cfg(feature = "mongodb")]
    mongo: mongo::MongoSettings,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            service_name: None,
            #[cfg(feature = "otlp")]
            otlp: OtlpSettings::default(),
            #[cfg(feature = "mongodb")]
            mongo: mongo::MongoSettings::default(),
            config: Config {
                service_name: String::new(),
                service_version: "unknown".to_owned(),
                max_series: 2_000,
                recent_errors: 10,
                bearer_token: None,
                path_prefix: String::new(),
            },
        }
    }
}

impl Builder {
    /// The service's name, shown in `serverwatch_build_info` and sent as
    /// the OTLP `service.name`. Defaults to `OTEL_SERVICE_NAME`, else
    /// `service.name` in `OTEL_RESOURCE_ATTRIBUTES` (with OTLP on), else
    /// `unknown_service`.
    ///
    /// ```
    /// let watch = serverwatch::ServerWatch::builder().service_name("inventory").build()?;
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// The service's version, shown in `serverwatch_build_info`.
    ///
    /// ```
    /// let watch = serverwatch::ServerWatch::builder()
    ///     .service_version(env!("CARGO_PKG_VERSION"))
    ///     .build()?;
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    pub fn service_version(mut self, version: impl Into<String>) -> Self {
        self.config.service_version = version.into();
        self
    }

    /// The most label sets (method, route, status, error) recorded one by
    /// one; further ones are added to a single series labelled
    /// `otel_metric_overflow="true"`. Default 2000, at most 100 000.
    ///
    /// ```
    /// let watch = serverwatch::ServerWatch::builder().max_series(500).build()?;
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    pub fn max_series(mut self, max: usize) -> Self {
        self.config.max_series = max;
        self
    }

    /// How many recent errors `/health` lists. Default 10, at most 1000; 0
    /// keeps none.
    ///
    /// ```
    /// let watch = serverwatch::ServerWatch::builder().recent_errors(50).build()?;
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    pub fn recent_errors(mut self, capacity: usize) -> Self {
        self.config.recent_errors = capacity;
        self
    }

    /// Protects the observability routes: a request without
    /// `Authorization: Bearer <token>` (or the `serverwatch_token` cookie that
    /// opening `…/dashboard?token=<token>` sets in a browser) gets 401.
    ///
    /// ```
    /// let token = std::env::var("METRICS_TOKEN").unwrap_or_else(|_| "change-me".into());
    /// let watch = serverwatch::ServerWatch::builder().bearer_token(token).build()?;
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.config.bearer_token = Some(token.into());
        self
    }

    /// Where [`ServerWatch::instrument`] mounts the observability routes,
    /// such as `/ops` for `/ops/metrics`. Default: the root.
    ///
    /// ```
    /// let watch = serverwatch::ServerWatch::builder().path_prefix("/ops").build()?;
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    pub fn path_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config.path_prefix = prefix.into();
        self
    }

    /// Pushes every metric over OTLP to this collector endpoint, overriding
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`. For HTTP a base URL gets `/v1/metrics`
    /// appended. OTLP is on when an endpoint is set here or in the
    /// environment, unless `OTEL_METRICS_EXPORTER` names another exporter.
    ///
    /// ```
    /// let watch = serverwatch::ServerWatch::builder()
    ///     .otlp_endpoint("http://127.0.0.1:4318")
    ///     .build()?;
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    #[cfg(feature = "otlp")]
    pub fn otlp_endpoint(mut self, url: impl Into<String>) -> Self {
        self.otlp.endpoint = Some(url.into());
        self
    }

    /// The OTLP transport, overriding `OTEL_EXPORTER_OTLP_PROTOCOL`.
    /// Default: HTTP/protobuf.
    ///
    /// ```
    /// let watch = serverwatch::ServerWatch::builder()
    ///     .otlp_protocol(serverwatch::OtlpProtocol::Grpc)
    ///     .build()?;
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    #[cfg(feature = "otlp")]
    pub fn otlp_protocol(mut self, protocol: OtlpProtocol) -> Self {
        self.otlp.protocol = Some(protocol);
        self
    }

    /// Adds a header (or gRPC metadata) to every export, on top of
    /// `OTEL_EXPORTER_OTLP_HEADERS`; a name given here wins.
    ///
    /// ```
    /// let watch = serverwatch::ServerWatch::builder()
    ///     .otlp_header("api-key", "secret")
    ///     .build()?;
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    #[cfg(feature = "otlp")]
    pub fn otlp_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.otlp.headers.push((name.into(), value.into()));
        self
    }

    /// How long one export may take, overriding `OTEL_EXPORTER_OTLP_TIMEOUT`.
    /// Default 10 s.
    ///
    /// ```
    /// let watch = serverwatch::ServerWatch::builder()
    ///     .otlp_timeout(std::time::Duration::from_secs(2))
    ///     .build()?;
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    #[cfg(feature = "otlp")]
    pub fn otlp_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.otlp.timeout = Some(timeout);
        self
    }

    /// Time between exports, overriding `OTEL_METRIC_EXPORT_INTERVAL`.
    /// Default 60 s.
    ///
    /// ```
    /// let watch = serverwatch::ServerWatch::builder()
    ///     .otlp_export_interval(std::time::Duration::from_secs(10))
    ///     .build()?;
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    #[cfg(feature = "otlp")]
    pub fn otlp_export_interval(mut self, interval: std::time::Duration) -> Self {
        self.otlp.interval = Some(interval);
        self
    }

    /// Records the MongoDB driver's commands and connection pool: installs
    /// serverwatch's command and connection-pool event handlers on `options`
    /// (before the client is built from them) and remembers the credentials
    /// in them, so that they are redacted from everything serverwatch shows.
    /// The options must not have event handlers of their own.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use mongodb::{Client, options::ClientOptions};
    ///
    /// let mut options = ClientOptions::parse("mongodb://127.0.0.1:27017").await?;
    /// let builder = serverwatch::ServerWatch::builder().instrument_mongodb(&mut options);
    /// let client = Client::with_options(options)?;
    /// let watch = builder.mongodb(client).build()?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "mongodb")]
    pub fn instrument_mongodb(mut self, options: &mut mongodb::options::ClientOptions) -> Self {
        self.mongo.instrument(options);
        self
    }

    /// Probes this client for `/health`: `ping` on `admin`, at most one per
    /// [`mongodb_probe_interval`](Self::mongodb_probe_interval), each bounded by
    /// [`mongodb_probe_timeout`](Self::mongodb_probe_timeout). A failed probe
    /// makes the service unhealthy (503).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = mongodb::Client::with_uri_str("mongodb://127.0.0.1:27017").await?;
    /// let watch = serverwatch::ServerWatch::builder().mongodb(client).build()?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "mongodb")]
    pub fn mongodb(mut self, client: mongodb::Client) -> Self {
        self.mongo.client(client);
        self
    }

    /// The longest a health probe may take. Default 1 s.
    ///
    /// ```
    /// let watch = serverwatch::ServerWatch::builder()
    ///     .mongodb_probe_timeout(std::time::Duration::from_millis(500))
    ///     .build()?;
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    #[cfg(feature = "mongodb")]
    pub fn mongodb_probe_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.mongo.timeout = timeout;
        self
    }

    /// How long a probe's result is reused. Default 5 s.
    ///
    /// ```
    /// let watch = serverwatch::ServerWatch::builder()
    ///     .mongodb_probe_interval(std::time::Duration::from_secs(2))
    ///     .build()?;
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    #[cfg(feature = "mongodb")]
    pub fn mongodb_probe_interval(mut self, interval: std::time::Duration) -> Self {
        self.mongo.interval = interval;
        self
    }

    /// Checks the settings and builds the handle.
    ///
    /// ```
    /// let err = serverwatch::ServerWatch::builder().max_series(0).build().unwrap_err();
    /// assert_eq!(err.setting(), "max_series");
    /// ```
    pub fn build(self) -> Result<ServerWatch, BuildError> {
        self.build_with_env(&|name| std::env::var(name).ok())
    }

    /// [`Builder::build`], reading the environment through `env`.
    fn build_with_env(
        self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ServerWatch, BuildError> {
        #[cfg(feature = "otlp")]
        let otlp = self.otlp.resolve(env)?;
        let from_env = || {
            let name = env("OTEL_SERVICE_NAME").filter(|s| !s.trim().is_empty());
            #[cfg(feature = "otlp")]
            let name = name.or_else(|| {
                let attributes = &otlp.as_ref()?.resource_attributes;
                attributes
                    .iter()
                    .find(|(k, _)| k == "service.name")
                    .map(|(_, v)| v.clone())
            });
            name
        };
        let mut config = self.config;
        config.service_name = self
            .service_name
            .or_else(from_env)
            .unwrap_or_else(|| "unknown_service".to_owned());
        let config = config.validated()?;
        #[cfg(feature = "mongodb")]
        let mongo = self.mongo.build()?;
        let requests = Arc::new(RequestStore::new(config.max_series, config.recent_errors));
        let shared = Arc::new(Shared {
            config,
            requests,
            system: SystemWatch::new(),
            #[cfg(feature = "dashboard")]
            history: history::History::default(),
            #[cfg(feature = "mongodb")]
            mongo,
        });
        #[cfg(feature = "dashboard")]
        history::History::start(&shared);
        #[cfg(feature = "otlp")]
        let otlp = match otlp {
            None => None,
            Some(config) => Some(Arc::new(
                OtlpExporter::start(Arc::clone(&shared), config).map_err(|e| BuildError {
                    setting: "otlp_endpoint",
                    reason: format!("cannot start the export thread: {e}"),
                })?,
            )),
        };
        Ok(ServerWatch {
            shared,
            #[cfg(feature = "otlp")]
            otlp,
        })
    }
}

impl Config {
    fn validated(self) -> Result<Self, BuildError> {
        let fail = |setting, reason: String| Err(BuildError { setting, reason });
        if self.service_name.trim().is_empty() {
            return fail("service_name", "must not be empty".into());
        }
        if !(1..=MAX_SERIES_LIMIT).contains(&self.max_series) {
            return fail(
                "max_series",
                format!(
                    "must be between 1 and {MAX_SERIES_LIMIT}, got {}",
                    self.max_series
                ),
            );
        }
        if self.recent_errors > RECENT_ERRORS_LIMIT {
            return fail(
                "recent_errors",
                format!(
                    "must be at most {RECENT_ERRORS_LIMIT}, got {}",
                    self.recent_errors
                ),
            );
        }
        if let Some(token) = &self.bearer_token {
            if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
                return fail(
                    "bearer_token",
                    "must be non-empty printable ASCII without spaces".into(),
                );
            }
        }
        let prefix = &self.path_prefix;
        if !prefix.is_empty()
            && (!prefix.starts_with('/')
                || prefix.ends_with('/')
                || prefix.contains(['{', '}', '*', '?', '#']))
        {
            return fail(
                "path_prefix",
                format!(
                    "must be empty or a path like \"/ops\" (leading '/', no trailing '/', \
                     no wildcards), got {prefix:?}"
                ),
            );
        }
        Ok(self)
    }
}

/// A setting given to [`Builder`] was wrong. It names the setting.
///
/// ```
/// let err = serverwatch::ServerWatch::builder().path_prefix("ops/").build().unwrap_err();
/// assert_eq!(err.setting(), "path_prefix");
/// assert!(err.to_string().contains("path_prefix"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError {
    setting: &'static str,
    reason: String,
}

impl BuildError {
    /// The name of the wrong setting, as spelled by the [`Builder`] method.
    ///
    /// ```
    /// let err = serverwatch::ServerWatch::builder().recent_errors(5000).build().unwrap_err();
    /// assert_eq!(err.setting(), "recent_errors");
    /// ```
    pub fn setting(&self) -> &'static str {
        self.setting
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid serverwatch setting `{}`: {}",
            self.setting, self.reason
        )
    }
}

impl std::error::Error for BuildError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::HealthReport;

    #[test]
    fn every_wrong_setting_is_named() {
        let cases: [(Builder, &str); 6] = [
            (ServerWatch::builder().service_name(" "), "service_name"),
            (ServerWatch::builder().max_series(0), "max_series"),
            (ServerWatch::builder().max_series(1_000_000), "max_series"),
            (ServerWatch::builder().recent_errors(1001), "recent_errors"),
            (ServerWatch::builder().bearer_token("a b"), "bearer_token"),
            (
                ServerWatch::builder().path_prefix("/ops/{x}"),
                "path_prefix",
            ),
        ];
        for (builder, setting) in cases {
            let err = builder.build().unwrap_err();
            assert_eq!(err.setting(), setting);
            assert!(err.to_string().contains(setting), "{err}");
        }
    }

    #[test]
    fn an_unhealthy_report_answers_503() {
        let watch = ServerWatch::builder().build().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut report = runtime.block_on(HealthReport::read(&watch.shared));
        assert_eq!(report.http_status(), ::http::StatusCode::OK);
        report.status = "unhealthy";
        assert_eq!(
            report.http_status(),
            ::http::StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
