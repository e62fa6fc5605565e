//! [`Builder`]: every setting is a method; [`Builder::build`] checks them all
//! and starts the parts.

use std::sync::Arc;

use crate::ServerWatch;
use crate::config::{BearerToken, Config, Env};
use crate::error::BuildError;
use crate::integrations::checks::{CheckOptions, CheckSettings};
#[cfg(feature = "metrics")]
use crate::integrations::facade::{FacadeSettings, FacadeStore};
#[cfg(feature = "mongodb")]
use crate::integrations::mongo::MongoSettings;
use crate::integrations::runtime::RuntimeWatch;
use crate::integrations::system::SystemReader;
use crate::state::State;
use crate::state::requests::RequestStore;
use crate::views::Views;
#[cfg(feature = "otlp")]
use crate::views::otlp::{
    OtlpCompression, OtlpExporter, OtlpProtocol, OtlpSettings, OtlpTemporality,
};

/// Configures a [`ServerWatch`]; [`Builder::build`] checks the settings.
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
#[derive(Debug, Clone, Default)]
pub struct Builder {
    config: Config,
    #[cfg(feature = "otlp")]
    otlp: OtlpSettings,
    #[cfg(feature = "mongodb")]
    mongo: MongoSettings,
    checks: CheckSettings,
    runtime: RuntimeChoice,
    #[cfg(feature = "metrics")]
    facade: FacadeSettings,
    /// The app's own prometheus-client registry, merged into `/metrics`.
    registry: Option<Arc<prometheus_client::registry::Registry>>,
}

/// Which tokio runtime is watched.
#[derive(Debug, Clone, Default)]
enum RuntimeChoice {
    /// The one `build()` runs in, if any.
    #[default]
    Current,
    Given(tokio::runtime::Handle),
    Off,
}

impl Builder {
    /// The service's name, shown in `serverwatch_build_info` and sent as
    /// the OTLP `service.name`. Defaults to `OTEL_SERVICE_NAME`, else
    /// `service.name` in `OTEL_RESOURCE_ATTRIBUTES` (with OTLP on), else
    /// `unknown_service`.
    ///
    /// ```
    /// let builder = serverwatch::ServerWatch::builder().service_name("inventory");
    /// ```
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.config.service_name = Some(name.into());
        self
    }

    /// The service's version, shown in `serverwatch_build_info` and sent as
    /// the OTLP `service.version`. Default `unknown`.
    ///
    /// ```
    /// let builder = serverwatch::ServerWatch::builder().service_version(env!("CARGO_PKG_VERSION"));
    /// ```
    pub fn service_version(mut self, version: impl Into<String>) -> Self {
        self.config.service_version = version.into();
        self
    }

    /// The most label sets (method, route, status, error) recorded one by
    /// one; further ones are added to the series labelled
    /// `otel_metric_overflow="true"`. Default 2000, at most 100 000.
    ///
    /// ```
    /// let err = serverwatch::ServerWatch::builder().max_series(0).build().unwrap_err();
    /// assert_eq!(err.setting(), "max_series");
    /// ```
    pub fn max_series(mut self, max: usize) -> Self {
        self.config.max_series = max;
        self
    }

    /// How many recent errors `/health` lists. Default 10, at most 1000; 0
    /// keeps none.
    ///
    /// ```
    /// let builder = serverwatch::ServerWatch::builder().recent_errors(50);
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
    /// let builder = serverwatch::ServerWatch::builder().bearer_token(token);
    /// ```
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.config.bearer_token = Some(BearerToken(token.into()));
        self
    }

    /// Whether the recent errors of `/health` and the dashboard show the
    /// message a handler panicked with. Such messages often hold request
    /// data, so by default they are shown only when a
    /// [`bearer_token`](Self::bearer_token) protects those routes; otherwise
    /// the entry says that the handler panicked, and where to look is the
    /// service's own log (serverwatch installs no panic hook, which would
    /// be process-wide, so it knows no location).
    ///
    /// ```
    /// // A service on a private network, whose panics carry no secrets:
    /// let builder = serverwatch::ServerWatch::builder().panic_messages(true);
    /// ```
    pub fn panic_messages(mut self, show: bool) -> Self {
        self.config.panic_messages = Some(show);
        self
    }

    /// Where [`ServerWatch::instrument`] mounts the observability routes,
    /// such as `/ops` for `/ops/metrics`. Default: the root (`""` or `"/"`).
    ///
    /// ```
    /// let builder = serverwatch::ServerWatch::builder().path_prefix("/ops");
    /// let root = serverwatch::ServerWatch::builder().path_prefix("/").build()?;
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    pub fn path_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config.path_prefix = prefix.into();
        self
    }

    /// Puts `prefix` and `_` before every metric name on `/metrics`:
    /// `inventory` gives `inventory_http_server_request_duration_seconds`.
    /// A letter, then letters, digits and underscores. Labels keep their
    /// names, and OTLP its semantic-convention names (its receivers tell
    /// services apart by `service.name`). The Grafana board and the alert
    /// rules shipped with serverwatch read the names without a prefix.
    /// Default: none.
    ///
    /// ```
    /// let builder = serverwatch::ServerWatch::builder().metric_prefix("inventory");
    /// let err = serverwatch::ServerWatch::builder().metric_prefix("my-app").build().unwrap_err();
    /// assert_eq!(err.setting(), "metric_prefix");
    /// ```
    pub fn metric_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config.metric_prefix = Some(prefix.into());
        self
    }

    /// Whether the process and system figures (`process_*`, `system_*`) are
    /// read and shown, on `/metrics`, over OTLP, in `/health` (whose
    /// `memory_analysis` then says `{"status": "disabled"}`) and on the
    /// dashboard. Turn them off for a second [`ServerWatch`] in one process,
    /// or where node-exporter already reports them. Default: on.
    ///
    /// ```
    /// let builder = serverwatch::ServerWatch::builder().process_and_system_metrics(false);
    /// ```
    pub fn process_and_system_metrics(mut self, on: bool) -> Self {
        self.config.process_and_system_metrics = on;
        self
    }

    /// The classic bucket bounds of `http.server.request.duration`, in
    /// seconds: finite, at least 0, strictly increasing, at most 64 of them.
    /// Default: the semantic conventions' 0.005 … 10 s. They shape only the
    /// `_bucket` series (and OTLP's explicit histograms); percentiles and
    /// native histograms come from the exponential buckets, whatever the
    /// bounds.
    ///
    /// ```
    /// let watch = serverwatch::ServerWatch::builder()
    ///     .duration_buckets([0.0001, 0.001, 0.01, 0.1, 1.0])
    ///     .build()?;
    /// let err = serverwatch::ServerWatch::builder()
    ///     .duration_buckets([1.0, 0.5])
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.setting(), "duration_buckets");
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    pub fn duration_buckets(mut self, bounds: impl Into<Vec<f64>>) -> Self {
        self.config.duration_buckets = Some(bounds.into());
        self
    }

    /// The classic bucket bounds of `http.server.request.body.size`, in
    /// bytes, checked as [`duration_buckets`](Self::duration_buckets) are.
    /// Default: 0, then powers of four from 64 B to 16 MiB.
    ///
    /// ```
    /// let builder = serverwatch::ServerWatch::builder().request_body_size_buckets([0.0, 1e3, 1e6]);
    /// ```
    pub fn request_body_size_buckets(mut self, bounds: impl Into<Vec<f64>>) -> Self {
        self.config.request_body_size_buckets = Some(bounds.into());
        self
    }

    /// The classic bucket bounds of `http.server.response.body.size`, in
    /// bytes, checked as [`duration_buckets`](Self::duration_buckets) are.
    /// Default: as for request bodies.
    ///
    /// ```
    /// let builder = serverwatch::ServerWatch::builder().response_body_size_buckets([0.0, 1e3, 1e6]);
    /// ```
    pub fn response_body_size_buckets(mut self, bounds: impl Into<Vec<f64>>) -> Self {
        self.config.response_body_size_buckets = Some(bounds.into());
        self
    }

    /// Leaves these instruments out of `/metrics` and OTLP alike, by their
    /// OpenTelemetry name (`http.server.request.body.size`) or their family
    /// name on `/metrics` (`http_server_request_body_size_bytes`); an
    /// unknown name fails [`build`](Self::build). Each request histogram
    /// costs, per label set, 13 to 16 lines of `/metrics` (about 2 KB in all
    /// for the duration's) and an OTLP point; the requests are still
    /// recorded, and `/health` and the dashboard still count them. All on
    /// by default.
    ///
    /// ```
    /// let watch = serverwatch::ServerWatch::builder()
    ///     .disable_instruments(["http.server.request.body.size", "http.server.response.body.size"])
    ///     .build()?;
    /// let err = serverwatch::ServerWatch::builder()
    ///     .disable_instruments(["http.server.request.size"])
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.setting(), "disable_instruments");
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    pub fn disable_instruments<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config
            .disabled_instruments
            .extend(names.into_iter().map(Into::into));
        self
    }

    /// Route templates that are not recorded at all: requests to them count
    /// nowhere (no series, not in flight, not in `/health` or the
    /// dashboard). For the routes that would only add noise, such as
    /// `/favicon.ico` or the app's own probe route. The templates are the
    /// ones axum matched (`/assets/{*path}`), or those that a
    /// [`route_template`](crate::RequestMetricsLayer::route_template)
    /// function gives.
    ///
    /// ```
    /// let watch = serverwatch::ServerWatch::builder()
    ///     .skip_routes(["/favicon.ico", "/ping"])
    ///     .build()?;
    /// let err = serverwatch::ServerWatch::builder().skip_routes(["ping"]).build().unwrap_err();
    /// assert_eq!(err.setting(), "skip_routes");
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    pub fn skip_routes<I, S>(mut self, templates: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config
            .skip_routes
            .extend(templates.into_iter().map(Into::into));
        self
    }

    /// Adds a health check of a dependency: `check` resolves to `Ok` (of
    /// anything) when it answers, to `Err` with the reason when not. It is
    /// critical, bounded by 1 s and its result reused for 5 s (see
    /// [`health_check_with`](Self::health_check_with) for others). `/health`
    /// shows it under `checks`, `/metrics` as
    /// `serverwatch_health_check_up{check="…"}`, and when it fails `/health`
    /// answers 503 and `/readyz` refuses. The reason is shown in `/health`:
    /// keep credentials out of it.
    ///
    /// ```
    /// let watch = serverwatch::ServerWatch::builder()
    ///     .health_check("redis", || async {
    ///         // e.g. a PING on a connection from the app's pool
    ///         Ok::<_, std::io::Error>(())
    ///     })
    ///     .build()?;
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    pub fn health_check<F, Fut, T, E>(self, name: impl Into<String>, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<T, E>> + Send + 'static,
        E: std::fmt::Display,
    {
        self.health_check_with(name, CheckOptions::default(), check)
    }

    /// [`health_check`](Self::health_check) with its own timeout, interval,
    /// or as a non-critical check, which is reported but never makes the
    /// service unhealthy. Each name is used once; a wrong one fails
    /// `build()` with the setting `health_check`.
    ///
    /// ```
    /// use serverwatch::CheckOptions;
    /// use std::time::Duration;
    ///
    /// let watch = serverwatch::ServerWatch::builder()
    ///     .health_check_with(
    ///         "recommendations",
    ///         CheckOptions::default().timeout(Duration::from_millis(200)).critical(false),
    ///         || async { Ok::<(), String>(()) },
    ///     )
    ///     .build()?;
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    pub fn health_check_with<F, Fut, T, E>(
        mut self,
        name: impl Into<String>,
        options: CheckOptions,
        check: F,
    ) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<T, E>> + Send + 'static,
        E: std::fmt::Display,
    {
        self.checks.add(name.into(), options, check);
        self
    }

    /// Watches this tokio runtime rather than the one `build()` runs in:
    /// for a `build()` outside any runtime, or an app served by another
    /// runtime than the current one.
    ///
    /// ```
    /// let runtime = tokio::runtime::Runtime::new().unwrap();
    /// // Outside the runtime: without the handle, nothing would be watched.
    /// let watch = serverwatch::ServerWatch::builder()
    ///     .runtime(runtime.handle().clone())
    ///     .build()?;
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    pub fn runtime(mut self, handle: tokio::runtime::Handle) -> Self {
        self.runtime = RuntimeChoice::Given(handle);
        self
    }

    /// Whether the tokio runtime's figures are read (`tokio_runtime_*`,
    /// `/health`'s `runtime`, the dashboard's Runtime card). Default: on,
    /// for the runtime `build()` runs in (or the one given to
    /// [`runtime`](Self::runtime)); they are read when a view asks, never on
    /// the request path.
    ///
    /// ```
    /// let watch = serverwatch::ServerWatch::builder().runtime_metrics(false).build()?;
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    pub fn runtime_metrics(mut self, on: bool) -> Self {
        self.runtime = match (on, self.runtime) {
            (false, _) => RuntimeChoice::Off,
            (true, RuntimeChoice::Off) => RuntimeChoice::Current,
            (true, kept) => kept,
        };
        self
    }

    /// Adds the families of an app's own `prometheus_client` registry to
    /// `/metrics`, after serverwatch's, in every format. They go to
    /// `/metrics` only, never over OTLP (prometheus-client keeps no points
    /// that could be read back). A family named like one of serverwatch's
    /// fails `build()` (setting `prometheus_registry`). Its names are
    /// written as registered, without [`metric_prefix`](Self::metric_prefix).
    ///
    /// ```
    /// use prometheus_client::{metrics::counter::Counter, registry::Registry};
    ///
    /// let orders: Counter = Counter::default();
    /// let mut registry = Registry::default();
    /// registry.register("orders", "Orders placed", orders.clone());
    /// let watch = serverwatch::ServerWatch::builder()
    ///     .prometheus_registry(registry)
    ///     .build()?;
    /// orders.inc(); // shows as orders_total on /metrics
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    pub fn prometheus_registry(mut self, registry: prometheus_client::registry::Registry) -> Self {
        self.registry = Some(Arc::new(registry));
        self
    }

    /// The classic bucket bounds of the `metrics`-facade histogram `name`
    /// (as given to `histogram!`), in its unit once converted (seconds for
    /// a time unit, bytes for a size), checked as
    /// [`duration_buckets`](Self::duration_buckets) are. Default: the
    /// request-duration bounds for seconds, the body-size bounds for bytes,
    /// else 1, 2, 5, 10, … 10 000.
    ///
    /// ```
    /// let builder = serverwatch::ServerWatch::builder()
    ///     .metrics_histogram_buckets("checkout.items", [1.0, 2.0, 5.0, 10.0, 20.0]);
    /// ```
    #[cfg(feature = "metrics")]
    pub fn metrics_histogram_buckets(
        mut self,
        name: impl Into<String>,
        bounds: impl Into<Vec<f64>>,
    ) -> Self {
        self.facade.buckets(name.into(), bounds.into());
        self
    }

    /// Pushes every metric over OTLP to this collector endpoint, overriding
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`. For HTTP a base URL gets `/v1/metrics`
    /// appended. OTLP is on when an endpoint is set here or in the
    /// environment, unless `OTEL_METRICS_EXPORTER` names another exporter.
    ///
    /// ```
    /// let builder = serverwatch::ServerWatch::builder().otlp_endpoint("http://127.0.0.1:4318");
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
    /// let builder = serverwatch::ServerWatch::builder()
    ///     .otlp_endpoint("http://127.0.0.1:4317")
    ///     .otlp_protocol(serverwatch::OtlpProtocol::Grpc);
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
    /// let builder = serverwatch::ServerWatch::builder().otlp_header("api-key", "secret");
    /// ```
    #[cfg(feature = "otlp")]
    pub fn otlp_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.otlp.headers.push((name.into(), value.into()));
        self
    }

    /// How long one export request may take, overriding
    /// `OTEL_EXPORTER_OTLP_TIMEOUT`; also the most [`ServerWatch::shutdown`]
    /// waits. Default 10 s. An export and its retries together take at
    /// most `OTEL_METRIC_EXPORT_TIMEOUT` (default 30 s) and never run into
    /// the next export.
    ///
    /// ```
    /// let builder = serverwatch::ServerWatch::builder().otlp_timeout(std::time::Duration::from_secs(2));
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
    /// let builder = serverwatch::ServerWatch::builder()
    ///     .otlp_export_interval(std::time::Duration::from_secs(10));
    /// ```
    #[cfg(feature = "otlp")]
    pub fn otlp_export_interval(mut self, interval: std::time::Duration) -> Self {
        self.otlp.interval = Some(interval);
        self
    }

    /// Sends histograms over OTLP as base-2 exponential histograms (scale 4,
    /// downscaled to at most 160 buckets), overriding
    /// `OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION`
    /// (`base2_exponential_bucket_histogram` or `explicit_bucket_histogram`).
    /// Default: explicit-bucket histograms with the classic bounds.
    ///
    /// ```
    /// let builder = serverwatch::ServerWatch::builder()
    ///     .otlp_endpoint("http://127.0.0.1:4318")
    ///     .otlp_exponential_histograms(true);
    /// ```
    #[cfg(feature = "otlp")]
    pub fn otlp_exponential_histograms(mut self, exponential: bool) -> Self {
        self.otlp.exponential_histograms = Some(exponential);
        self
    }

    /// Compresses the exports, overriding `OTEL_EXPORTER_OTLP_COMPRESSION`.
    /// Default: none.
    ///
    /// ```
    /// let builder = serverwatch::ServerWatch::builder()
    ///     .otlp_compression(serverwatch::OtlpCompression::Gzip);
    /// ```
    #[cfg(feature = "otlp")]
    pub fn otlp_compression(mut self, compression: OtlpCompression) -> Self {
        self.otlp.compression = Some(compression);
        self
    }

    /// Exports counters and histograms as deltas (or cumulative, the
    /// default), overriding `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`.
    ///
    /// ```
    /// let builder = serverwatch::ServerWatch::builder()
    ///     .otlp_temporality(serverwatch::OtlpTemporality::Delta);
    /// ```
    #[cfg(feature = "otlp")]
    pub fn otlp_temporality(mut self, temporality: OtlpTemporality) -> Self {
        self.otlp.temporality = Some(temporality);
        self
    }

    /// Trusts the CA certificates in this PEM file for `https://` collectors,
    /// besides the webpki roots, overriding `OTEL_EXPORTER_OTLP_CERTIFICATE`.
    /// Needs the `otlp-tls` feature; the file is read by [`build`](Self::build).
    ///
    /// ```
    /// let builder = serverwatch::ServerWatch::builder().otlp_certificate("/etc/ssl/collector-ca.pem");
    /// ```
    #[cfg(feature = "otlp")]
    pub fn otlp_certificate(mut self, ca_pem: impl Into<std::path::PathBuf>) -> Self {
        self.otlp.certificate = Some(ca_pem.into());
        self
    }

    /// Presents this client certificate (mutual TLS), from PEM files of the
    /// certificate chain and its private key, overriding
    /// `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE` and `OTEL_EXPORTER_OTLP_CLIENT_KEY`.
    /// Needs the `otlp-tls` feature; the files are read by [`build`](Self::build).
    ///
    /// ```
    /// let builder = serverwatch::ServerWatch::builder()
    ///     .otlp_client_certificate("/etc/ssl/me.pem", "/etc/ssl/me-key.pem");
    /// ```
    #[cfg(feature = "otlp")]
    pub fn otlp_client_certificate(
        mut self,
        certificate_pem: impl Into<std::path::PathBuf>,
        key_pem: impl Into<std::path::PathBuf>,
    ) -> Self {
        self.otlp.client_certificate = Some((certificate_pem.into(), key_pem.into()));
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
    /// let builder = serverwatch::ServerWatch::builder()
    ///     .mongodb_probe_timeout(std::time::Duration::from_millis(500));
    /// ```
    #[cfg(feature = "mongodb")]
    pub fn mongodb_probe_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.mongo.timeout = timeout;
        self
    }

    /// How long a probe's result is reused. Default 5 s.
    ///
    /// ```
    /// let builder = serverwatch::ServerWatch::builder()
    ///     .mongodb_probe_interval(std::time::Duration::from_secs(2));
    /// ```
    #[cfg(feature = "mongodb")]
    pub fn mongodb_probe_interval(mut self, interval: std::time::Duration) -> Self {
        self.mongo.interval = interval;
        self
    }

    /// Checks the settings and builds the handle; starts the OTLP export (if
    /// configured) and the dashboard's history sampler on threads of their
    /// own.
    ///
    /// ```
    /// let err = serverwatch::ServerWatch::builder().recent_errors(5000).build().unwrap_err();
    /// assert_eq!(err.setting(), "recent_errors");
    /// ```
    pub fn build(self) -> Result<ServerWatch, BuildError> {
        self.build_with_env(&|name| std::env::var(name).ok())
    }

    /// [`Builder::build`], reading the environment through `env`.
    fn build_with_env(self, env: Env<'_>) -> Result<ServerWatch, BuildError> {
        #[cfg(feature = "otlp")]
        let otlp = self.otlp.resolve(env)?;
        #[cfg(not(feature = "otlp"))]
        warn_otlp_unavailable(env);
        let name_from_env = || {
            let name = env("OTEL_SERVICE_NAME").filter(|s| !s.trim().is_empty());
            #[cfg(feature = "otlp")]
            let name = name.or_else(|| otlp.as_ref()?.service_name().map(str::to_owned));
            name
        };
        let config = self.config.check(name_from_env)?;
        #[cfg(feature = "mongodb")]
        let mongo = self.mongo.build()?;
        let checks = self.checks.build()?;
        // Family names taken: serverwatch's, then the merged registry's.
        let mut reserved = crate::state::reserved_families();
        if let Some(registry) = &self.registry {
            let theirs = crate::views::prometheus::registry_families(registry);
            // The registry's names are written as they are; serverwatch's
            // with the prefix.
            let ours: Vec<String> = match &config.metric_prefix {
                Some(prefix) => reserved.iter().map(|f| format!("{prefix}_{f}")).collect(),
                None => reserved.clone(),
            };
            if let Some(taken) = theirs.iter().find(|f| ours.contains(f)) {
                return Err(BuildError::new(
                    "prometheus_registry",
                    format!("the registry's family {taken:?} is one of serverwatch's"),
                ));
            }
            reserved.extend(theirs);
        }
        #[cfg(feature = "metrics")]
        let facade = Arc::new(FacadeStore::new(
            self.facade.build()?,
            config.max_series,
            reserved,
        ));
        let runtime = match self.runtime {
            RuntimeChoice::Current => RuntimeWatch::current(),
            RuntimeChoice::Given(handle) => Some(RuntimeWatch::of(handle)),
            RuntimeChoice::Off => None,
        };
        let requests = Arc::new(
            RequestStore::new(
                config.max_series,
                config.recent_errors,
                config.bounds,
                config.panic_messages,
            )
            .skipping(config.skip_routes),
        );
        let state = Arc::new(State::new(
            config.service,
            &config.disabled_instruments,
            requests,
            SystemReader::new(),
            config.process_and_system_metrics,
            #[cfg(feature = "mongodb")]
            mongo,
            checks,
            runtime,
            #[cfg(feature = "metrics")]
            facade,
        ));
        #[cfg(feature = "otlp")]
        let otlp = otlp
            .map(|config| OtlpExporter::start(Arc::clone(&state), config))
            .transpose()
            .map_err(|e| {
                BuildError::new(
                    "otlp_endpoint",
                    format!("cannot start the export thread: {e}"),
                )
            })?;
        Ok(ServerWatch::new(
            Views::new(
                state,
                config.bearer_token,
                config.metric_prefix,
                self.registry,
            ),
            config.path_prefix,
            #[cfg(feature = "otlp")]
            otlp,
        ))
    }
}

/// The environment asks for an OTLP export that this build cannot make:
/// said once, so that the variables are not ignored without a word.
#[cfg(not(feature = "otlp"))]
fn warn_otlp_unavailable(env: Env<'_>) {
    let set = |name: &str| env(name).is_some_and(|v| !v.trim().is_empty());
    let other_exporter = env("OTEL_METRICS_EXPORTER")
        .filter(|v| !v.trim().is_empty())
        .is_some_and(|v| !v.split(',').any(|e| e.trim() == "otlp"));
    let endpoints: Vec<&str> = [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    ]
    .into_iter()
    .filter(|name| set(name))
    .collect();
    if !endpoints.is_empty() && !other_exporter {
        tracing::warn!(
            variables = %endpoints.join(", "),
            "serverwatch: OTLP export is requested by the environment but serverwatch was built \
             without its `otlp` feature, so nothing is exported and the OTEL_EXPORTER_OTLP_* \
             variables are not read; enable the feature (features = [\"otlp\"]) to export"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_wrong_setting_is_named() {
        let cases: [(Builder, &str); 10] = [
            (ServerWatch::builder().service_name(" "), "service_name"),
            (ServerWatch::builder().max_series(0), "max_series"),
            (ServerWatch::builder().max_series(1_000_000), "max_series"),
            (ServerWatch::builder().recent_errors(1001), "recent_errors"),
            (ServerWatch::builder().bearer_token("a b"), "bearer_token"),
            (
                ServerWatch::builder().path_prefix("/ops/{x}"),
                "path_prefix",
            ),
            (
                ServerWatch::builder().disable_instruments(["http.server.duration"]),
                "disable_instruments",
            ),
            (ServerWatch::builder().metric_prefix(""), "metric_prefix"),
            (
                ServerWatch::builder().metric_prefix("1app"),
                "metric_prefix",
            ),
            (
                ServerWatch::builder().metric_prefix("app_"),
                "metric_prefix",
            ),
        ];
        for (builder, setting) in cases {
            let err = builder.build_with_env(&|_| None).unwrap_err();
            assert_eq!(err.setting(), setting);
            assert!(err.to_string().contains(setting), "{err}");
        }
    }

    #[test]
    fn the_service_name_comes_from_the_environment_unless_set() {
        let env = |name: &str| (name == "OTEL_SERVICE_NAME").then(|| "from-env".to_owned());
        let watch = ServerWatch::builder().build_with_env(&env).unwrap();
        assert_eq!(watch.service_name(), "from-env");
        let watch = ServerWatch::builder()
            .service_name("mine")
            .build_with_env(&env)
            .unwrap();
        assert_eq!(watch.service_name(), "mine");
        let watch = ServerWatch::builder().build_with_env(&|_| None).unwrap();
        assert_eq!(watch.service_name(), "unknown_service");
    }
}
