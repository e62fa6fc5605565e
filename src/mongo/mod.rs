//! MongoDB as a measured dependency: a bounded health probe on the client,
//! and the driver's command and connection-pool events as metrics.

mod events;
mod probe;
mod redact;

use std::sync::Arc;
use std::time::Duration;

use mongodb::Client;
use mongodb::event::EventHandler;
use mongodb::options::ClientOptions;
use serde::Serialize;

pub(crate) use events::DriverMetrics;
pub(crate) use probe::Probe;
use redact::Secrets;

use crate::BuildError;

/// What the builder collected.
#[derive(Clone)]
pub(crate) struct MongoSettings {
    driver: Option<Arc<DriverMetrics>>,
    client: Option<Client>,
    secrets: Secrets,
    pub(crate) timeout: Duration,
    pub(crate) interval: Duration,
    /// Set when the options already had an event handler of their own.
    conflict: Option<&'static str>,
}

/// Without the client's own `Debug`, which prints the driver's last errors
/// as the server sent them, unredacted.
impl std::fmt::Debug for MongoSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoSettings")
            .field("driver", &self.driver)
            .field("client", &self.client.as_ref().map(|_| "mongodb::Client"))
            .field("secrets", &self.secrets)
            .field("timeout", &self.timeout)
            .field("interval", &self.interval)
            .field("conflict", &self.conflict)
            .finish()
    }
}

impl Default for MongoSettings {
    fn default() -> Self {
        Self {
            driver: None,
            client: None,
            secrets: Secrets::default(),
            timeout: Duration::from_secs(1),
            interval: Duration::from_secs(5),
            conflict: None,
        }
    }
}

/// The MongoDB part of the shared state.
#[derive(Debug)]
pub(crate) struct MongoWatch {
    pub(crate) driver: Option<Arc<DriverMetrics>>,
    pub(crate) probe: Option<Probe>,
}

impl MongoSettings {
    /// Installs the event handlers on `options` and remembers its
    /// credentials so that they can be redacted.
    pub(crate) fn instrument(&mut self, options: &mut ClientOptions) {
        if let Some(credential) = &options.credential {
            for secret in [&credential.password, &credential.username]
                .into_iter()
                .flatten()
            {
                self.secrets.add(secret);
            }
        }
        if options.command_event_handler.is_some() {
            self.conflict = Some("command_event_handler");
            return;
        }
        if options.cmap_event_handler.is_some() {
            self.conflict = Some("cmap_event_handler");
            return;
        }
        let driver = Arc::clone(
            self.driver
                .get_or_insert_with(|| Arc::new(DriverMetrics::new())),
        );
        let commands = Arc::clone(&driver);
        options.command_event_handler =
            Some(EventHandler::callback(move |e| commands.on_command(e)));
        options.cmap_event_handler = Some(EventHandler::callback(move |e| driver.on_pool(e)));
    }

    pub(crate) fn client(&mut self, client: Client) {
        self.client = Some(client);
    }

    /// `Ok(None)` when MongoDB is not configured at all.
    pub(crate) fn build(self) -> Result<Option<MongoWatch>, BuildError> {
        if let Some(handler) = self.conflict {
            return Err(BuildError {
                setting: "instrument_mongodb",
                reason: format!(
                    "the ClientOptions already have a {handler}; serverwatch installs its own \
                     (the driver takes one per kind), so leave it unset"
                ),
            });
        }
        for (setting, value) in [
            ("mongodb_probe_timeout", self.timeout),
            ("mongodb_probe_interval", self.interval),
        ] {
            if value.is_zero() {
                return Err(BuildError {
                    setting,
                    reason: "must be longer than zero".into(),
                });
            }
        }
        if self.driver.is_none() && self.client.is_none() {
            return Ok(None);
        }
        Ok(Some(MongoWatch {
            driver: self.driver,
            probe: self
                .client
                .map(|c| Probe::new(c, self.timeout, self.interval, self.secrets)),
        }))
    }
}

/// The `database` section of `/health` when MongoDB is watched.
#[derive(Debug, Serialize)]
pub(crate) struct DatabaseReport {
    /// `"healthy"`, `"error: …"`, or `"not probed"` (metrics without a client).
    pub(crate) status: String,
    /// Duration of the last ping, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ping_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) operations: Option<Operations>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) pools: Vec<PoolReport>,
    #[serde(skip)]
    pub(crate) healthy: bool,
}

#[derive(Debug, Serialize)]
pub(crate) struct Operations {
    pub(crate) total: u64,
    pub(crate) errors: u64,
    /// Mean duration in seconds.
    pub(crate) average_duration: f64,
    /// Count per command name.
    pub(crate) by_command: std::collections::BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
pub(crate) struct PoolReport {
    pub(crate) name: String,
    pub(crate) idle: i64,
    pub(crate) used: i64,
    pub(crate) pending: i64,
    pub(crate) max: i64,
    pub(crate) timeouts: u64,
}

impl MongoWatch {
    /// Probes (or reuses a recent probe) and reads the driver's figures.
    pub(crate) async fn report(&self) -> DatabaseReport {
        let probe = match &self.probe {
            Some(p) => Some(p.check().await),
            None => None,
        };
        let operations = self.driver.as_ref().map(|d| {
            let mut all = crate::histogram::HistogramSnapshot::default();
            let mut errors = 0;
            let mut by_command = std::collections::BTreeMap::new();
            for (key, h) in d.operations() {
                all.merge(&h);
                if key.as_ref().is_some_and(|k| k.error.is_some()) {
                    errors += h.count;
                }
                let name = key.map_or_else(|| "other".to_owned(), |k| k.operation);
                *by_command.entry(name).or_default() += h.count;
            }
            Operations {
                total: all.count,
                errors,
                average_duration: all.mean(),
                by_command,
            }
        });
        let pools = self.driver.as_ref().map_or_else(Vec::new, |d| {
            d.pools()
                .into_iter()
                .map(|p| PoolReport {
                    name: p.name,
                    idle: p.idle,
                    used: p.used,
                    pending: p.pending,
                    max: p.max,
                    timeouts: p.timeouts,
                })
                .collect()
        });
        DatabaseReport {
            healthy: probe.as_ref().is_none_or(|p| p.healthy),
            status: probe
                .as_ref()
                .map_or_else(|| "not probed".to_owned(), |p| p.status.clone()),
            ping_seconds: probe.map(|p| p.latency.as_secs_f64()),
            operations,
            pools,
        }
    }

    /// Refreshes the probe if its result is stale, for `/metrics`.
    pub(crate) async fn refresh(&self) {
        if let Some(probe) = &self.probe {
            probe.check().await;
        }
    }
}
