//! The one seam between what is watched and what shows it. Every part that
//! produces metrics or health is a [`Source`]; [`Sources`] holds them in the
//! order they were registered and is all that the exporters read. It knows
//! no source by name.

use std::borrow::Cow;
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::model::family::{Attributes, Family, Value, process_start};
use crate::model::instruments::{self as i, Instrument};

/// A boxed future: what a trait object's async method returns.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Which instruments a reading wants: all but those the user turned off.
pub(crate) type Wants<'a> = &'a dyn Fn(&Instrument) -> bool;

/// A part that is watched: the request store, the system, the runtime,
/// MongoDB, the app's checks, the app's own metrics.
pub(crate) trait Source: Send + Sync + Debug {
    /// Appends its metric families, read now, leaving out the instruments
    /// that `wants` refuses. May block briefly (a `/proc` read): async
    /// callers read through [`Sources::read_families`].
    fn families(&self, wants: Wants<'_>, out: &mut Vec<Family>);

    /// Its section of `/health`, if it has one; probes what is stale, each
    /// probe bounded by its own timeout.
    fn health(&self) -> BoxFuture<'_, Option<Section>> {
        Box::pin(async { None })
    }

    /// The names of what keeps the service from being ready (a critical
    /// check, the database), probing what is stale.
    fn not_ready(&self) -> BoxFuture<'_, Vec<String>> {
        Box::pin(async { Vec::new() })
    }

    /// Has the probes whose results are stale renewed in the background, so
    /// that a reading carries recent results and never waits on one.
    fn refresh_in_background(&self) {}
}

/// A section of `/health`: its key, its body, and whether it is healthy.
#[derive(Debug)]
pub(crate) struct Section {
    pub(crate) key: &'static str,
    pub(crate) healthy: bool,
    pub(crate) body: serde_json::Value,
}

impl Section {
    /// A section that never makes the service unhealthy.
    pub(crate) fn report(key: &'static str, body: impl serde::Serialize) -> Self {
        Self {
            key,
            healthy: true,
            body: serde_json::to_value(body).unwrap_or_default(),
        }
    }
}

/// Who is watched: the service's name, version and instance, and the
/// labels that every series of it carries.
#[derive(Debug, Clone)]
pub(crate) struct Service {
    pub(crate) name: String,
    pub(crate) version: String,
    /// `service.instance.id`, the same in `target_info` and in the OTLP
    /// resource.
    pub(crate) instance_id: String,
    /// On every series of `/metrics`; resource attributes over OTLP.
    pub(crate) constant_labels: Vec<(String, String)>,
}

/// Every source, and what belongs to no source: who is watched, since
/// when, and the refused requests to the observability routes.
#[derive(Debug)]
pub(crate) struct Sources {
    pub(crate) service: Service,
    started: Instant,
    /// Left out of every reading, by OpenTelemetry name.
    disabled: Vec<&'static str>,
    list: Vec<Arc<dyn Source>>,
    unauthorized: AtomicU64,
}

impl Sources {
    pub(crate) fn new(
        service: Service,
        disabled: Vec<&'static str>,
        list: Vec<Arc<dyn Source>>,
    ) -> Self {
        // The start of the series that keep none is fixed from here on.
        process_start();
        Self {
            service,
            started: Instant::now(),
            disabled,
            list,
            unauthorized: AtomicU64::new(0),
        }
    }

    /// Seconds since serverwatch started.
    pub(crate) fn uptime_seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// A request to the observability routes was refused for its token.
    pub(crate) fn count_unauthorized(&self) {
        self.unauthorized.fetch_add(1, Ordering::Relaxed);
    }

    /// One reading of every instrument that is on, in registration order,
    /// on this thread (which may block briefly): what every exporter
    /// encodes, which is why they all carry the same numbers.
    pub(crate) fn families(&self) -> Vec<Family> {
        self.families_where(&|instrument| !self.disabled.contains(&instrument.otel_name))
    }

    /// [`families`](Self::families) for an async exporter: read on tokio's
    /// blocking threads, never on a worker.
    pub(crate) async fn read_families(self: &Arc<Self>) -> Vec<Family> {
        let sources = Arc::clone(self);
        match tokio::task::spawn_blocking(move || sources.families()).await {
            Ok(families) => families,
            Err(e) => match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                // The runtime is shutting down: read here, this once.
                Err(_) => self.families(),
            },
        }
    }

    /// The families of the instruments `wants`, turned off or not: the
    /// dashboard shows every request whatever is exported.
    pub(crate) fn families_where(&self, wants: Wants<'_>) -> Vec<Family> {
        let mut families = Vec::new();
        for source in &self.list {
            source.families(wants, &mut families);
        }
        let unauthorized = self.unauthorized.load(Ordering::Relaxed) as f64;
        let own = [
            Family::new(&i::UNAUTHORIZED_REQUESTS).number(Vec::new(), unauthorized),
            self.build_info(),
        ];
        families.extend(own.into_iter().filter(|f| wants(f.instrument)));
        families
    }

    /// Every source's section of `/health`, probed at once.
    pub(crate) async fn health(&self) -> Vec<Section> {
        let sections = self.list.iter().map(|source| source.health());
        futures_util::future::join_all(sections)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// What keeps the service from being ready, every source probed at once.
    pub(crate) async fn not_ready(&self) -> Vec<String> {
        let failed = self.list.iter().map(|source| source.not_ready());
        futures_util::future::join_all(failed)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// Has every stale probe renewed in the background.
    pub(crate) fn refresh_in_background(&self) {
        for source in &self.list {
            source.refresh_in_background();
        }
    }

    /// The resource: who is watched and what watches it, as OTLP sends it
    /// and as `target_info` writes it.
    pub(crate) fn resource(&self) -> Attributes {
        let text = |s: &str| Value::Str(Cow::Owned(s.to_owned()));
        let service = &self.service;
        vec![
            (&i::SERVICE_NAME, text(&service.name)),
            (&i::SERVICE_VERSION, text(&service.version)),
            (&i::SERVICE_INSTANCE_ID, text(&service.instance_id)),
            (
                &i::TELEMETRY_SDK_NAME,
                Value::Str(Cow::Borrowed("serverwatch")),
            ),
            (
                &i::TELEMETRY_SDK_LANGUAGE,
                Value::Str(Cow::Borrowed("rust")),
            ),
            (
                &i::TELEMETRY_SDK_VERSION,
                Value::Str(Cow::Borrowed(env!("CARGO_PKG_VERSION"))),
            ),
        ]
    }

    fn build_info(&self) -> Family {
        let text = |s: &str| Value::Str(Cow::Owned(s.to_owned()));
        Family::new(&i::BUILD_INFO).number(
            vec![
                (
                    &i::SERVERWATCH_VERSION,
                    Value::Str(Cow::Borrowed(env!("CARGO_PKG_VERSION"))),
                ),
                (&i::SERVICE_NAME, text(&self.service.name)),
                (&i::SERVICE_VERSION, text(&self.service.version)),
            ],
            1.0,
        )
    }
}
