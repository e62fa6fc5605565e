//! The app's own health checks: any dependency (a cache, a queue, another
//! service) probed by a function of the app's, each bounded, single-flight
//! and cached by the shared probe ([`crate::sources::probe`]), exactly
//! as the MongoDB ping is. Each shows in `/health` and as two gauges; a
//! critical one that fails makes the service unhealthy and not ready.

pub(crate) mod instruments;

use std::collections::BTreeMap;
use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::error::BuildError;
use crate::model::family::{Family, Value};
use crate::model::instruments::Instrument;
use crate::part::{Assembly, Part, part_boilerplate};
use crate::source::{BoxFuture, Section, Source, Wants};
use crate::sources::probe::{Call, Probe, ProbeResult};
use instruments as ck;

/// The longest accepted check name, in bytes.
const MAX_NAME: usize = 64;

/// How one health check runs: its timeout, how long its result is reused,
/// and whether its failure makes the service unhealthy. Default: 1 s, 5 s,
/// critical (as the MongoDB probe).
///
/// ```
/// use std::time::Duration;
///
/// let options = serverwatch::CheckOptions::default()
///     .timeout(Duration::from_millis(300))
///     .interval(Duration::from_secs(10))
///     .critical(false);
/// let watch = serverwatch::ServerWatch::builder()
///     .health_check_with("cache", options, || async { Ok::<(), String>(()) })
///     .build()?;
/// # Ok::<(), serverwatch::BuildError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckOptions {
    timeout: Duration,
    interval: Duration,
    critical: bool,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(1),
            interval: Duration::from_secs(5),
            critical: true,
        }
    }
}

impl CheckOptions {
    /// The longest one run may take; a run still going then counts as
    /// failed. Default 1 s.
    ///
    /// ```
    /// let options = serverwatch::CheckOptions::default()
    ///     .timeout(std::time::Duration::from_millis(250));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long a result is reused before the check runs again. Default 5 s.
    ///
    /// ```
    /// let options = serverwatch::CheckOptions::default()
    ///     .interval(std::time::Duration::from_secs(30));
    /// ```
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Whether a failure makes `/health` answer 503 and the readiness
    /// route refuse (default); a non-critical check is reported and
    /// counted, and changes neither.
    ///
    /// ```
    /// let options = serverwatch::CheckOptions::default().critical(false);
    /// ```
    pub fn critical(mut self, critical: bool) -> Self {
        self.critical = critical;
        self
    }
}

/// The checks as the builder collects them.
#[derive(Clone, Default)]
pub(crate) struct CheckSettings {
    checks: Vec<(String, CheckOptions, Call)>,
}

impl std::fmt::Debug for CheckSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.checks.iter().map(|(n, _, _)| n.as_str()).collect();
        f.debug_struct("CheckSettings")
            .field("checks", &names)
            .finish()
    }
}

impl CheckSettings {
    /// Adds a check: `check` resolves to `Ok` (whatever it holds) when the
    /// dependency answered, to `Err` with the reason otherwise.
    pub(crate) fn add<F, Fut, T, E>(&mut self, name: String, options: CheckOptions, check: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        E: Display,
    {
        let call: Call = Arc::new(move || {
            let run = check();
            Box::pin(async move { run.await.map(drop).map_err(|e| e.to_string()) })
        });
        self.checks.push((name, options, call));
    }

    fn checked(self) -> Result<HealthChecks, BuildError> {
        let mut checks: Vec<Check> = Vec::with_capacity(self.checks.len());
        for (name, options, call) in self.checks {
            let wrong = |reason: String| Err(BuildError::new("health_check", reason));
            if name.is_empty() || name.len() > MAX_NAME || name.chars().any(char::is_control) {
                return wrong(format!(
                    "a check's name must be 1 to {MAX_NAME} bytes without control characters, \
                     got {name:?}"
                ));
            }
            if checks.iter().any(|c| c.name == name) {
                return wrong(format!("two checks are named {name:?}"));
            }
            if options.timeout.is_zero() || options.interval.is_zero() {
                return wrong(format!(
                    "the timeout and interval of check {name:?} must be longer than zero"
                ));
            }
            let probe = Probe::new(call, "the check", options.timeout, options.interval);
            checks.push(Check {
                name,
                critical: options.critical,
                probe: Arc::new(probe),
            });
        }
        Ok(HealthChecks { checks })
    }
}

#[derive(Debug)]
struct Check {
    name: String,
    critical: bool,
    probe: Arc<Probe>,
}

/// Every check of the app.
#[derive(Debug, Default)]
pub(crate) struct HealthChecks {
    checks: Vec<Check>,
}

/// One check in `/health`.
#[derive(Debug, Serialize)]
struct CheckReport {
    /// `"healthy"` or `"error: …"`.
    status: String,
    /// Duration of the last run, in seconds.
    duration_seconds: f64,
    critical: bool,
}

/// What the checks say: the `checks` section of `/health`, and the names
/// of the critical ones that failed.
#[derive(Debug)]
struct ChecksReport {
    pub(crate) body: serde_json::Value,
    pub(crate) failed_critical: Vec<String>,
}

/// The checks of one reading, running.
struct RunningChecks<'a> {
    checks: &'a HealthChecks,
    critical_only: bool,
    running: tokio::task::JoinSet<(usize, ProbeResult)>,
}

impl HealthChecks {
    /// Starts the checks whose results are stale (each at most once per
    /// interval, all at once, each bounded by its timeout), on tasks of
    /// their own, so that a client that leaves cancels no run that others
    /// wait for; only the critical ones if `critical_only`.
    fn start(&self, critical_only: bool) -> RunningChecks<'_> {
        let mut running = tokio::task::JoinSet::new();
        for (at, check) in self.checks.iter().enumerate() {
            if critical_only && !check.critical {
                continue;
            }
            let probe = Arc::clone(&check.probe);
            running.spawn(async move { (at, probe.check().await) });
        }
        RunningChecks {
            checks: self,
            critical_only,
            running,
        }
    }
}

impl RunningChecks<'_> {
    /// Waits for the checks and reports them.
    async fn report(mut self) -> ChecksReport {
        let mut results: Vec<(usize, ProbeResult)> = Vec::with_capacity(self.running.len());
        while let Some(done) = self.running.join_next().await {
            // A check that panicked is reported as failed.
            match done {
                Ok(result) => results.push(result),
                Err(e) => tracing::warn!(error = %e, "serverwatch: a health check panicked"),
            }
        }
        let mut body = BTreeMap::new();
        let mut failed_critical = Vec::new();
        for (at, check) in self.checks.checks.iter().enumerate() {
            if self.critical_only && !check.critical {
                continue;
            }
            let result = results.iter().find(|(i, _)| *i == at).map(|(_, r)| r);
            let (healthy, status, seconds) = match result {
                Some(r) => (r.healthy, r.status.clone(), r.latency.as_secs_f64()),
                None => (false, "error: the check panicked".to_owned(), 0.0),
            };
            if check.critical && !healthy {
                failed_critical.push(check.name.clone());
            }
            let report = CheckReport {
                status,
                duration_seconds: seconds,
                critical: check.critical,
            };
            body.insert(check.name.clone(), report);
        }
        ChecksReport {
            body: serde_json::to_value(body).unwrap_or_default(),
            failed_critical,
        }
    }
}

impl Part for CheckSettings {
    part_boilerplate!();

    fn instruments(&self) -> &'static [&'static Instrument] {
        ck::ALL
    }

    fn build(self: Box<Self>, assembly: &mut Assembly) -> Result<(), BuildError> {
        assembly.source(Arc::new(self.checked()?));
        Ok(())
    }
}

impl Source for HealthChecks {
    fn families(&self, wants: Wants<'_>, out: &mut Vec<Family>) {
        out.extend(self.gauges().into_iter().filter(|f| wants(f.instrument)));
    }

    fn health(&self) -> BoxFuture<'_, Option<Section>> {
        Box::pin(async {
            let report = self.start(false).report().await;
            Some(Section {
                key: "checks",
                healthy: report.failed_critical.is_empty(),
                body: report.body,
            })
        })
    }

    fn not_ready(&self) -> BoxFuture<'_, Vec<String>> {
        Box::pin(async { self.start(true).report().await.failed_critical })
    }

    /// Has the stale checks run in the background, for `/metrics`, which
    /// shows the latest results and never waits.
    fn refresh_in_background(&self) {
        for check in &self.checks {
            check.probe.refresh_in_background();
        }
    }
}

impl HealthChecks {
    /// The two gauges of every check that has run.
    fn gauges(&self) -> Vec<Family> {
        let mut up = Family::new(&ck::HEALTH_CHECK_UP);
        let mut duration = Family::new(&ck::HEALTH_CHECK_DURATION);
        for check in &self.checks {
            let Some(last) = check.probe.last() else {
                continue;
            };
            let name = || vec![(&ck::CHECK, Value::Str(check.name.clone().into()))];
            up = up.number(name(), if last.healthy { 1.0 } else { 0.0 });
            duration = duration.number(name(), last.latency.as_secs_f64());
        }
        if up.points.is_empty() {
            return Vec::new();
        }
        vec![up, duration]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_checks_are_named() {
        let ok = || async { Ok::<(), String>(()) };
        let build = |settings: CheckSettings| settings.checked().map(drop).unwrap_err();
        let mut twice = CheckSettings::default();
        twice.add("redis".into(), CheckOptions::default(), ok);
        twice.add("redis".into(), CheckOptions::default(), ok);
        assert!(build(twice).to_string().contains("two checks"));
        let mut empty = CheckSettings::default();
        empty.add(String::new(), CheckOptions::default(), ok);
        assert_eq!(build(empty).setting(), "health_check");
        let mut zero = CheckSettings::default();
        let options = CheckOptions::default().timeout(Duration::ZERO);
        zero.add("redis".into(), options, ok);
        assert!(build(zero).to_string().contains("longer than zero"));
    }
}
