//! What is recorded and how it is read.
//!
//! The request store ([`requests`]) and the integrations
//! ([`crate::integrations`]) each own their state and offer a narrow read
//! API; [`State`] holds them together and gives the views one reading of
//! everything ([`State::families`]) and the parts of `/health`.

pub(crate) mod exemplar;
pub(crate) mod exponential;
pub(crate) mod histogram;
pub(crate) mod reading;
pub(crate) mod requests;
pub(crate) mod series;

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::instruments::{self as i, Instrument};
use crate::integrations::checks::{HealthChecks, RunningChecks};
#[cfg(feature = "metrics")]
use crate::integrations::facade::FacadeStore;
#[cfg(feature = "mongodb")]
use crate::integrations::mongo::MongoWatch;
use crate::integrations::runtime::{RuntimeReading, RuntimeWatch};
use crate::integrations::system::{SystemReader, SystemSnapshot};
use reading::{Family, HealthSection, Value};
use requests::RequestStore;

/// Every instrument serverwatch defines.
fn instruments() -> impl Iterator<Item = &'static Instrument> {
    let all = i::ALL
        .iter()
        .chain(crate::integrations::runtime::instruments::ALL)
        .chain(crate::integrations::checks::instruments::ALL);
    #[cfg(feature = "mongodb")]
    let all = all.chain(crate::integrations::mongo::instruments::ALL);
    all.copied()
}

/// The family names on `/metrics` of every instrument serverwatch defines:
/// what neither the metrics facade nor a merged registry may use.
pub(crate) fn reserved_families() -> Vec<String> {
    instruments().map(|i| i.prometheus_family()).collect()
}

/// Who is watched: the service's name and version.
#[derive(Debug, Clone)]
pub(crate) struct Service {
    pub(crate) name: String,
    pub(crate) version: String,
}

/// The instrument called `name`, by its OpenTelemetry name or its family
/// name on `/metrics`.
pub(crate) fn instrument(name: &str) -> Option<&'static Instrument> {
    instruments().find(|i| i.otel_name == name || i.prometheus_family() == name)
}

/// Everything watched, for the views to read.
#[derive(Debug)]
pub(crate) struct State {
    service: Service,
    /// Left out of every reading.
    disabled: Vec<&'static Instrument>,
    requests: Arc<RequestStore>,
    system: SystemReader,
    /// Whether the process and system figures are read at all.
    reads_system: bool,
    #[cfg(feature = "mongodb")]
    mongo: Option<MongoWatch>,
    /// The app's own health checks.
    checks: HealthChecks,
    /// The tokio runtime that serves the app, if one is watched.
    runtime: Option<RuntimeWatch>,
    /// The app's own metrics, recorded through the `metrics` facade.
    #[cfg(feature = "metrics")]
    facade: Arc<FacadeStore>,
    /// Requests to the observability routes refused for their token.
    unauthorized: AtomicU64,
}

impl State {
    #[allow(
        clippy::too_many_arguments,
        reason = "one per part watched; some exist only with their feature"
    )]
    pub(crate) fn new(
        service: Service,
        disabled: &[String],
        requests: Arc<RequestStore>,
        system: SystemReader,
        reads_system: bool,
        #[cfg(feature = "mongodb")] mongo: Option<MongoWatch>,
        checks: HealthChecks,
        runtime: Option<RuntimeWatch>,
        #[cfg(feature = "metrics")] facade: Arc<FacadeStore>,
    ) -> Self {
        Self {
            service,
            disabled: disabled.iter().filter_map(|n| instrument(n)).collect(),
            requests,
            system,
            reads_system,
            #[cfg(feature = "mongodb")]
            mongo,
            checks,
            runtime,
            #[cfg(feature = "metrics")]
            facade,
            unauthorized: AtomicU64::new(0),
        }
    }

    /// A request to the observability routes was refused for its token.
    pub(crate) fn count_unauthorized(&self) {
        self.unauthorized.fetch_add(1, Ordering::Relaxed);
    }

    #[cfg_attr(
        not(any(feature = "dashboard", feature = "otlp", test)),
        allow(dead_code, reason = "read by the dashboard and OTLP only")
    )]
    pub(crate) fn service(&self) -> &Service {
        &self.service
    }

    /// The store of the metrics facade, for the recorder the app installs.
    #[cfg(feature = "metrics")]
    pub(crate) fn facade(&self) -> Arc<FacadeStore> {
        Arc::clone(&self.facade)
    }

    /// The request store, for the layer that records into it and for the
    /// views that read its summary.
    pub(crate) fn requests(&self) -> Arc<RequestStore> {
        Arc::clone(&self.requests)
    }

    /// Process and system figures, at most a second old, read on this
    /// thread: for serverwatch's own threads, which may block. `None` when
    /// they are not read (`process_and_system_metrics(false)`).
    pub(crate) fn system_now(&self) -> Option<Arc<SystemSnapshot>> {
        self.reads_system.then(|| self.system.snapshot())
    }

    /// The same for an async view: a refresh happens on tokio's blocking
    /// threads, never on a worker.
    pub(crate) async fn system(&self) -> Option<Arc<SystemSnapshot>> {
        if self.reads_system {
            Some(self.system.read().await)
        } else {
            None
        }
    }

    /// Seconds since serverwatch started, whether the system is read or not.
    pub(crate) fn uptime_seconds(&self) -> f64 {
        self.system.uptime_seconds()
    }

    /// One reading of every instrument that is on, in a fixed order, on this thread:
    /// what the OTLP exporter (on a thread of its own) encodes.
    #[cfg_attr(
        not(any(feature = "otlp", test)),
        allow(dead_code, reason = "read by OTLP only")
    )]
    pub(crate) fn families(&self) -> Vec<Family> {
        self.families_with(self.system_now().as_deref())
    }

    /// The same for an async view (`/metrics`), which must not block.
    pub(crate) async fn read_families(&self) -> Vec<Family> {
        self.families_with(self.system().await.as_deref())
    }

    fn families_with(&self, system: Option<&SystemSnapshot>) -> Vec<Family> {
        // By name: instruments are constants, which have no one address.
        let on = |i: &Instrument| !self.disabled.iter().any(|d| d.otel_name == i.otel_name);
        let mut families = self.requests.families(on);
        if let Some(system) = system {
            families.extend(system.families());
        }
        #[cfg(feature = "mongodb")]
        if let Some(mongo) = &self.mongo {
            families.extend(mongo.families());
        }
        families.extend(self.checks.families());
        if let Some(runtime) = self.runtime() {
            families.extend(runtime.families());
        }
        let unauthorized = self.unauthorized.load(Ordering::Relaxed) as f64;
        families.push(Family::new(&i::UNAUTHORIZED_REQUESTS).number(Vec::new(), unauthorized));
        families.push(self.build_info());
        families.retain(|f| on(f.instrument));
        // The app's own last, after every family of serverwatch's; the app
        // chooses what it emits, so none is left out.
        #[cfg(feature = "metrics")]
        families.extend(self.facade.families());
        families
    }

    /// The `database` section of `/health`; `None` when no database is
    /// watched. Probes the database if its last probe is stale.
    pub(crate) async fn database(&self) -> Option<HealthSection> {
        #[cfg(feature = "mongodb")]
        if let Some(mongo) = &self.mongo {
            return Some(mongo.health().await);
        }
        None
    }

    /// Starts the app's health checks whose results are stale (only the
    /// critical ones if `critical_only`), to be awaited after the other
    /// probes have been started: they all run at once.
    pub(crate) fn start_checks(&self, critical_only: bool) -> RunningChecks<'_> {
        self.checks.start(critical_only)
    }

    /// What keeps the service from being ready: the critical checks that
    /// fail, and the database if its probe does. Probes what is stale.
    pub(crate) async fn not_ready(&self) -> Vec<String> {
        let checks = self.start_checks(true);
        let database_down = self.database().await.is_some_and(|db| !db.healthy);
        let mut failed = checks.report().await.failed_critical;
        if database_down {
            failed.push("database".to_owned());
        }
        failed
    }

    /// The runtime's figures now, if a runtime is watched.
    pub(crate) fn runtime(&self) -> Option<RuntimeReading> {
        self.runtime.as_ref().map(RuntimeWatch::read)
    }

    /// The runtime workers' busy time, added up, if a runtime is watched.
    #[cfg_attr(
        not(any(feature = "dashboard", test)),
        allow(dead_code, reason = "read by the dashboard's sampler only")
    )]
    pub(crate) fn runtime_busy(&self) -> Option<(std::time::Duration, usize)> {
        let runtime = self.runtime.as_ref()?;
        Some((runtime.busy(), runtime.workers()))
    }

    /// Has the probes whose results are stale renewed in the background:
    /// the families carry their latest results, and a scrape never waits
    /// on a database or a check.
    pub(crate) fn refresh_probes_in_background(&self) {
        #[cfg(feature = "mongodb")]
        if let Some(mongo) = &self.mongo {
            mongo.refresh_in_background();
        }
        self.checks.refresh_in_background();
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
