//! [`Builder`]: every setting is a method; [`Builder::build`] checks them all
//! and starts the parts. The settings of an optional part are in a file of
//! their own here, compiled with its feature.

#[cfg(feature = "metrics")]
mod metrics;
#[cfg(feature = "mongodb")]
mod mongodb;
#[cfg(feature = "otlp")]
mod otlp;
mod requests;

use std::sync::Arc;

use crate::ServerWatch;
use crate::config::{BearerToken, Settings};
use crate::error::BuildError;
use crate::exporters::Endpoints;
use crate::part::{Assembly, Env, Handles, Parts};
use crate::source::Sources;
use crate::sources::checks::{CheckOptions, CheckSettings};
use crate::sources::requests::RequestStore;
use crate::sources::runtime::RuntimeChoice;
use crate::sources::system::SystemSwitch;

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
#[derive(Debug, Clone)]
pub struct Builder {
    settings: Settings,
    /// The settings of every source and exporter that brings its own.
    parts: Parts,
    /// The app's own prometheus-client registry, merged into `/metrics`.
    registry: Option<Arc<prometheus_client::registry::Registry>>,
}

impl Default for Builder {
    fn default() -> Self {
        let mut parts = crate::sources::parts();
        parts.extend(crate::exporters::parts());
        Self {
            settings: Settings::default(),
            parts: Parts::new(parts),
            registry: None,
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
    /// let builder = serverwatch::ServerWatch::builder().service_name("inventory");
    /// ```
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.settings.service_name = Some(name.into());
        self
    }

    /// The service's version, shown in `serverwatch_build_info` and sent as
    /// the OTLP `service.version`. Default `unknown`.
    ///
    /// ```
    /// let builder = serverwatch::ServerWatch::builder().service_version(env!("CARGO_PKG_VERSION"));
    /// ```
    pub fn service_version(mut self, version: impl Into<String>) -> Self {
        self.settings.service_version = version.into();
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
        self.settings.max_series = max;
        self
    }

    /// How many recent errors `/health` lists. Default 10, at most 1000; 0
    /// keeps none.
    ///
    /// ```
    /// let builder = serverwatch::ServerWatch::builder().recent_errors(50);
    /// ```
    pub fn recent_errors(mut self, capacity: usize) -> Self {
        self.settings.recent_errors = capacity;
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
        self.settings.bearer_token = Some(BearerToken(token.into()));
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
        self.settings.panic_messages = Some(show);
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
        self.settings.path_prefix = prefix.into();
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
        self.settings.metric_prefix = Some(prefix.into());
        self
    }

    /// A label on every series of `/metrics` (`region="eu-west-1"`), and a
    /// resource attribute over OTLP; call it once per label. The name is a
    /// Prometheus label name, given once, not reserved (`__…`, `le`,
    /// `quantile`, `otel_scope_*`) and not one that serverwatch's own series
    /// carry (`http_route`, `service_name`, …). An app's own
    /// [`prometheus_registry`](Self::prometheus_registry) keeps its labels.
    /// Default: none.
    ///
    /// ```
    /// let builder = serverwatch::ServerWatch::builder().constant_label("region", "eu-west-1");
    /// let err = serverwatch::ServerWatch::builder()
    ///     .constant_label("http_route", "/")
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.setting(), "constant_label");
    /// ```
    pub fn constant_label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings
            .constant_labels
            .push((name.into(), value.into()));
        self
    }

    /// Whether every series of `/metrics` (but `target_info`) carries
    /// `otel_scope_name="serverwatch"` and `otel_scope_version`, as the
    /// OpenTelemetry-Prometheus compatibility specification allows. Off by
    /// default: every series has the same scope, Prometheus 3's own OTLP
    /// receiver adds these labels only with `promote_scope_metadata`, and
    /// two more labels on every series make a scrape of many series
    /// markedly larger and slower. OTLP always sends the scope.
    ///
    /// ```
    /// let builder = serverwatch::ServerWatch::builder().otel_scope_labels(true);
    /// ```
    pub fn otel_scope_labels(mut self, on: bool) -> Self {
        self.settings.otel_scope_labels = on;
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
        self.parts.get_mut::<SystemSwitch>().0 = on;
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
        self.settings.duration_buckets = Some(bounds.into());
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
        self.settings.request_body_size_buckets = Some(bounds.into());
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
        self.settings.response_body_size_buckets = Some(bounds.into());
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
        self.settings
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
        self.settings
            .skip_routes
            .extend(templates.into_iter().map(Into::into));
        self
    }

    /// Which requests leave an exemplar on their duration bucket, on
    /// `/metrics` and over OTLP, overriding `OTEL_METRICS_EXEMPLAR_FILTER`
    /// (`always_on`, `always_off` or `trace_based`; a bad value fails
    /// `build()` with an error that names the variable). Default
    /// `trace_based`: those handled inside a sampled span. Exemplars need
    /// the `exemplars` feature.
    ///
    /// ```
    /// let watch = serverwatch::ServerWatch::builder()
    ///     .exemplar_filter(serverwatch::ExemplarFilter::AlwaysOn)
    ///     .build()?;
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    pub fn exemplar_filter(mut self, filter: crate::ExemplarFilter) -> Self {
        self.settings.exemplar_filter = Some(filter);
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
        self.parts
            .get_mut::<CheckSettings>()
            .add(name.into(), options, check);
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
        *self.parts.get_mut::<RuntimeChoice>() = RuntimeChoice::Given(handle);
        self
    }

    /// Whether the tokio runtime's figures are read (`tokio_runtime_*`,
    /// `/health`'s `runtime`, the dashboard's Runtime card). Default: on,
    /// for the runtime `build()` runs in (or the one given to
    /// [`runtime`](Self::runtime)); they are read when an exporter asks, never on
    /// the request path.
    ///
    /// ```
    /// let watch = serverwatch::ServerWatch::builder().runtime_metrics(false).build()?;
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    pub fn runtime_metrics(mut self, on: bool) -> Self {
        let runtime = self.parts.get_mut::<RuntimeChoice>();
        *runtime = match (on, std::mem::take(runtime)) {
            (false, _) => RuntimeChoice::Off,
            (true, RuntimeChoice::Off) => RuntimeChoice::Current,
            (true, kept) => kept,
        };
        self
    }

    /// The most scrapes of `/metrics` served at once, as client_golang's
    /// `MaxRequestsInFlight`: one more is answered 503 with `Retry-After`.
    /// Scrapes that arrive while a reading is under way share it. A scrape
    /// that sends `X-Prometheus-Scrape-Timeout-Seconds` (Prometheus does)
    /// is read and encoded within 90% of that timeout, or answered 503 with
    /// the reason. Default 4; 0 fails `build()`.
    ///
    /// ```
    /// let watch = serverwatch::ServerWatch::builder().max_scrapes_in_flight(2).build()?;
    /// let err = serverwatch::ServerWatch::builder().max_scrapes_in_flight(0).build().unwrap_err();
    /// assert_eq!(err.setting(), "max_scrapes_in_flight");
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    pub fn max_scrapes_in_flight(mut self, max: usize) -> Self {
        self.settings.max_scrapes_in_flight = max;
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
    fn build_with_env(mut self, env: Env<'_>) -> Result<ServerWatch, BuildError> {
        let exemplar_filter = crate::config::exemplar_filter(
            self.settings.exemplar_filter,
            env(crate::config::EXEMPLAR_FILTER),
        )?;
        let mut name_from_env = env("OTEL_SERVICE_NAME").filter(|s| !s.trim().is_empty());
        for part in self.parts.iter_mut() {
            let named = part.read_env(env)?;
            name_from_env = name_from_env.or(named);
        }
        let labels = std::mem::take(&mut self.settings.labels);
        crate::config::check_label_clash(&self.settings.constant_labels, &labels)?;
        let config = self.settings.check(|| name_from_env)?;
        let labelling = labels.check(config.max_series)?;
        let instruments: Vec<_> = crate::sources::instruments().collect();
        let disabled = config
            .disabled_instruments
            .iter()
            .filter_map(|name| {
                instruments
                    .iter()
                    .find(|i| i.otel_name == *name || i.prometheus_family() == *name)
            })
            .map(|i| i.otel_name)
            .collect();
        // Family names taken: serverwatch's, then the merged registry's.
        let mut reserved: Vec<String> = instruments.iter().map(|i| i.prometheus_family()).collect();
        if let Some(registry) = &self.registry {
            let theirs = crate::exporters::prometheus::registry_families(registry);
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
        let requests = Arc::new(
            RequestStore::new(
                config.max_series,
                config.recent_errors,
                config.bounds,
                config.panic_messages,
            )
            .skipping(config.skip_routes)
            .with_exemplar_filter(exemplar_filter)
            .labelled(labelling),
        );
        let mut assembly = Assembly {
            max_series: config.max_series,
            reserved,
            sources: vec![Arc::clone(&requests) as _],
            handles: Handles::default(),
            starts: Vec::new(),
        };
        for part in self.parts.into_iter() {
            part.build(&mut assembly)?;
        }
        let sources = Arc::new(Sources::new(config.service, disabled, assembly.sources));
        let mut handles = assembly.handles;
        for start in assembly.starts {
            (start.1)(&sources, &mut handles)?;
        }
        let endpoints = Endpoints::new(
            sources,
            config.bearer_token,
            crate::exporters::prometheus::Exposition {
                prefix: config.metric_prefix,
                scope_labels: config.otel_scope_labels,
            },
            self.registry,
            config.max_scrapes_in_flight,
            handles.values.clone(),
        );
        Ok(ServerWatch::new(
            endpoints,
            requests,
            config.path_prefix,
            handles,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_wrong_setting_is_named() {
        let label = |name: &str| ServerWatch::builder().constant_label(name, "x");
        let cases: [(Builder, &str); 18] = [
            (ServerWatch::builder().service_name(" "), "service_name"),
            (ServerWatch::builder().max_series(0), "max_series"),
            (
                ServerWatch::builder().max_scrapes_in_flight(0),
                "max_scrapes_in_flight",
            ),
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
            (label("my-label"), "constant_label"),
            (label("__name"), "constant_label"),
            (label("le"), "constant_label"),
            (label("http_route"), "constant_label"),
            (label("otel_scope_name"), "constant_label"),
            (
                label("customer_plan").request_label("customer.plan", |_| None),
                "constant_label",
            ),
            (
                label("region").constant_label("region", "y"),
                "constant_label",
            ),
        ];
        for (builder, setting) in cases {
            let err = builder.build_with_env(&|_| None).unwrap_err();
            assert_eq!(err.setting(), setting);
            assert!(err.to_string().contains(setting), "{err}");
        }
    }

    #[test]
    fn the_exemplar_filter_comes_from_the_environment_unless_set() {
        use crate::ExemplarFilter::{AlwaysOff, AlwaysOn, TraceBased};
        let filter = |builder: Builder, value: Option<&'static str>| {
            let env = move |name: &str| {
                (name == "OTEL_METRICS_EXEMPLAR_FILTER")
                    .then(|| value.map(str::to_owned))
                    .flatten()
            };
            builder
                .build_with_env(&env)
                .map(|watch| watch.requests().exemplar_filter())
        };
        let builder = ServerWatch::builder;
        assert_eq!(filter(builder(), None).unwrap(), TraceBased);
        assert_eq!(filter(builder(), Some(" ")).unwrap(), TraceBased);
        assert_eq!(filter(builder(), Some("always_on")).unwrap(), AlwaysOn);
        assert_eq!(filter(builder(), Some("Always_Off")).unwrap(), AlwaysOff);
        assert_eq!(filter(builder(), Some("trace_based")).unwrap(), TraceBased);
        let mine = builder().exemplar_filter(AlwaysOff);
        assert_eq!(filter(mine, Some("always_on")).unwrap(), AlwaysOff);
        let err = filter(builder(), Some("sometimes")).unwrap_err();
        assert_eq!(err.setting(), "OTEL_METRICS_EXEMPLAR_FILTER");
        assert!(
            err.to_string().contains("OTEL_METRICS_EXEMPLAR_FILTER"),
            "{err}"
        );
    }

    #[test]
    fn the_service_name_comes_from_the_environment_unless_set() {
        let env = |name: &str| (name == "OTEL_SERVICE_NAME").then(|| "from-env".to_owned());
        let watch = ServerWatch::builder().build_with_env(&env).unwrap();
        assert_eq!(watch.sources().service.name, "from-env");
        let watch = ServerWatch::builder()
            .service_name("mine")
            .build_with_env(&env)
            .unwrap();
        assert_eq!(watch.sources().service.name, "mine");
        let watch = ServerWatch::builder().build_with_env(&|_| None).unwrap();
        assert_eq!(watch.sources().service.name, "unknown_service");
    }
}
