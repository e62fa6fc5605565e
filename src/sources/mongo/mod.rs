//! MongoDB as a measured dependency: a bounded health probe on the client,
//! and the driver's command and connection-pool events as metrics. All of
//! it is here: the builder's part ([`MongoSettings`]), the instruments, the
//! metric families and the `database` section of `/health`.

mod events;
mod families;
pub(crate) mod instruments;
mod probe;
mod redact;
mod settings;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::model::family::{Family, OVERFLOW_LABEL};
use crate::model::histogram::Totals;
use crate::source::{BoxFuture, Section, Source, Wants};
use crate::sources::probe::Probe;
use events::DriverMetrics;
pub(crate) use settings::MongoSettings;

/// What serverwatch watches of MongoDB.
#[derive(Debug)]
pub(crate) struct MongoWatch {
    driver: Option<Arc<DriverMetrics>>,
    probe: Option<Arc<Probe>>,
}

/// The `database` section of `/health` when MongoDB is watched.
#[derive(Debug, Serialize)]
struct DatabaseReport {
    /// `"healthy"`, `"error: …"`, or `"not probed"` (metrics without a client).
    status: String,
    /// Duration of the last ping, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    ping_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    operations: Option<Operations>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pools: Vec<PoolReport>,
}

#[derive(Debug, Serialize)]
struct Operations {
    total: u64,
    errors: u64,
    /// Mean duration in seconds.
    average_duration: f64,
    /// Count per command name.
    by_command: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
struct PoolReport {
    name: String,
    idle: i64,
    used: i64,
    pending: i64,
    max: i64,
    timeouts: u64,
}

impl Source for MongoWatch {
    fn families(&self, wants: Wants<'_>, out: &mut Vec<Family>) {
        let families = self.read_families();
        out.extend(families.into_iter().filter(|f| wants(f.instrument)));
    }

    fn health(&self) -> BoxFuture<'_, Option<Section>> {
        Box::pin(async { Some(self.database().await) })
    }

    fn not_ready(&self) -> BoxFuture<'_, Vec<String>> {
        Box::pin(async {
            match self.database().await.healthy {
                true => Vec::new(),
                false => vec!["database".to_owned()],
            }
        })
    }

    /// Has the probe renewed in the background if its result is stale,
    /// for `/metrics`, which reads the latest result and never waits.
    fn refresh_in_background(&self) {
        if let Some(probe) = &self.probe {
            probe.refresh_in_background();
        }
    }
}

impl MongoWatch {
    /// The `database` section of `/health`: probes (or reuses a recent
    /// probe) and reads the driver's figures.
    async fn database(&self) -> Section {
        let probe = match &self.probe {
            Some(p) => Some(p.check().await),
            None => None,
        };
        let operations = self.driver.as_ref().map(|d| {
            let mut all = Totals::default();
            let mut by_command = BTreeMap::new();
            for (key, h, _) in d.operations() {
                all.add(&h, key.as_ref().is_some_and(|k| k.error.is_some()));
                let name = key.map_or_else(|| OVERFLOW_LABEL.to_owned(), |k| k.operation);
                *by_command.entry(name).or_default() += h.count;
            }
            Operations {
                total: all.requests(),
                errors: all.errors,
                average_duration: all.duration.mean(),
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
        let report = DatabaseReport {
            status: probe
                .as_ref()
                .map_or_else(|| "not probed".to_owned(), |p| p.status.clone()),
            ping_seconds: probe.as_ref().map(|p| p.latency.as_secs_f64()),
            operations,
            pools,
        };
        Section {
            key: "database",
            healthy: probe.as_ref().is_none_or(|p| p.healthy),
            body: serde_json::to_value(report).unwrap_or_default(),
        }
    }
}
