//! The health probe: `ping` on `admin`, bounded by a short timeout, cached
//! for an interval and single-flight, so that `/health` under any load sends
//! at most one ping per interval and never waits longer than the bound.
//! `/metrics` never waits for it: it reads the latest result and, when that
//! is stale, has the next ping sent in the background.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mongodb::Client;
use mongodb::bson::doc;

use super::redact::Secrets;

/// The outcome of one ping.
#[derive(Debug, Clone)]
pub(crate) struct ProbeResult {
    pub(crate) healthy: bool,
    /// `"healthy"` or `"error: …"` (credentials redacted).
    pub(crate) status: String,
    pub(crate) latency: Duration,
}

pub(crate) struct Probe {
    client: Client,
    timeout: Duration,
    interval: Duration,
    secrets: Secrets,
    /// Held across the ping: callers that arrive meanwhile wait for its
    /// result instead of sending their own.
    cached: tokio::sync::Mutex<Option<(Instant, ProbeResult)>>,
    /// The latest result, for readers that cannot wait (exporters).
    last: parking_lot::Mutex<Option<ProbeResult>>,
}

/// Without the client: its `Debug` prints the driver's last errors as the
/// server sent them, unredacted.
impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probe")
            .field("timeout", &self.timeout)
            .field("interval", &self.interval)
            .field("last", &self.last())
            .finish_non_exhaustive()
    }
}

impl Probe {
    pub(crate) fn new(
        client: Client,
        timeout: Duration,
        interval: Duration,
        secrets: Secrets,
    ) -> Self {
        Self {
            client,
            timeout,
            interval,
            secrets,
            cached: tokio::sync::Mutex::new(None),
            last: parking_lot::Mutex::new(None),
        }
    }

    /// A result at most one interval old; pings if there is none.
    pub(crate) async fn check(&self) -> ProbeResult {
        let mut cached = self.cached.lock().await;
        if let Some((at, result)) = cached.as_ref()
            && at.elapsed() < self.interval
        {
            return result.clone();
        }
        let result = self.ping().await;
        *cached = Some((Instant::now(), result.clone()));
        *self.last.lock() = Some(result.clone());
        result
    }

    /// For the readers that must not wait (`/metrics`): when the latest
    /// result is stale and no ping is in flight, starts one in the
    /// background on the current runtime; returns at once either way.
    pub(crate) fn refresh_in_background(self: &Arc<Self>) {
        let stale = match self.cached.try_lock() {
            Ok(cached) => cached
                .as_ref()
                .is_none_or(|(at, _)| at.elapsed() >= self.interval),
            // A ping is in flight.
            Err(_) => false,
        };
        if !stale {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let probe = Arc::clone(self);
            runtime.spawn(async move { probe.check().await });
        }
    }

    /// The latest result without pinging, if there was one.
    pub(crate) fn last(&self) -> Option<ProbeResult> {
        self.last.lock().clone()
    }

    async fn ping(&self) -> ProbeResult {
        let start = Instant::now();
        let admin = self.client.database("admin");
        let outcome = tokio::time::timeout(self.timeout, admin.run_command(doc! {"ping": 1})).await;
        let latency = start.elapsed();
        let (healthy, status) = match outcome {
            Ok(Ok(_)) => (true, "healthy".to_owned()),
            Ok(Err(e)) => (
                false,
                format!("error: {}", self.secrets.redact(&e.to_string())),
            ),
            Err(_) => (
                false,
                format!("error: no answer to ping within {:?}", self.timeout),
            ),
        };
        ProbeResult {
            healthy,
            status,
            latency,
        }
    }
}
