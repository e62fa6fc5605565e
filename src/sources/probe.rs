//! A bounded, single-flight, cached probe of a dependency: what the MongoDB
//! ping and every health check of the app run on.
//!
//! A probe is an async call that says whether the dependency answers. It is
//! bounded by a timeout, its result is reused for an interval, and callers
//! that arrive while it runs wait for that run instead of starting their
//! own: under any load `/health` starts at most one call per interval, and
//! never waits longer than the bound. Readers that must not wait at all
//! (`/metrics`, the exporters) read the latest result and, when it is
//! stale, have the next call made in the background.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One call of a probe: `Ok` when the dependency answered, else why not.
pub(crate) type Call =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// The outcome of one call.
#[derive(Debug, Clone)]
pub(crate) struct ProbeResult {
    pub(crate) healthy: bool,
    /// `"healthy"` or `"error: …"`.
    pub(crate) status: String,
    pub(crate) latency: Duration,
}

pub(crate) struct Probe {
    call: Call,
    /// What the call does, for the timeout's message (`"ping"`).
    action: &'static str,
    timeout: Duration,
    interval: Duration,
    /// Held across the call: callers that arrive meanwhile wait for its
    /// result instead of making their own.
    cached: tokio::sync::Mutex<Option<(Instant, ProbeResult)>>,
    /// The latest result, for readers that cannot wait (exporters).
    last: parking_lot::Mutex<Option<ProbeResult>>,
    /// The runtime the probe was made in (the app's), where background
    /// calls run: the exporter's thread asks for them too.
    runtime: Option<tokio::runtime::Handle>,
}

/// Without the call, which may hold a client whose `Debug` shows too much.
impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probe")
            .field("action", &self.action)
            .field("timeout", &self.timeout)
            .field("interval", &self.interval)
            .field("last", &self.last())
            .finish_non_exhaustive()
    }
}

impl Probe {
    pub(crate) fn new(
        call: Call,
        action: &'static str,
        timeout: Duration,
        interval: Duration,
    ) -> Self {
        Self {
            call,
            action,
            timeout,
            interval,
            cached: tokio::sync::Mutex::new(None),
            last: parking_lot::Mutex::new(None),
            runtime: tokio::runtime::Handle::try_current().ok(),
        }
    }

    /// A result at most one interval old; calls if there is none.
    pub(crate) async fn check(&self) -> ProbeResult {
        let mut cached = self.cached.lock().await;
        if let Some((at, result)) = cached.as_ref()
            && at.elapsed() < self.interval
        {
            return result.clone();
        }
        let result = self.run().await;
        *cached = Some((Instant::now(), result.clone()));
        *self.last.lock() = Some(result.clone());
        result
    }

    /// For the readers that must not wait (`/metrics`, the OTLP export):
    /// when the latest result is stale and no call is in flight, starts one
    /// in the background, on the runtime the probe was made in (else the
    /// current one); returns at once either way.
    pub(crate) fn refresh_in_background(self: &Arc<Self>) {
        let stale = match self.cached.try_lock() {
            Ok(cached) => cached
                .as_ref()
                .is_none_or(|(at, _)| at.elapsed() >= self.interval),
            // A call is in flight.
            Err(_) => false,
        };
        if !stale {
            return;
        }
        let runtime = self
            .runtime
            .clone()
            .or_else(|| tokio::runtime::Handle::try_current().ok());
        if let Some(runtime) = runtime {
            let probe = Arc::clone(self);
            runtime.spawn(async move { probe.check().await });
        }
    }

    /// The latest result without calling, if there was one.
    pub(crate) fn last(&self) -> Option<ProbeResult> {
        self.last.lock().clone()
    }

    async fn run(&self) -> ProbeResult {
        let start = Instant::now();
        let outcome = tokio::time::timeout(self.timeout, (self.call)()).await;
        let latency = start.elapsed();
        let (healthy, status) = match outcome {
            Ok(Ok(())) => (true, "healthy".to_owned()),
            Ok(Err(e)) => (false, format!("error: {e}")),
            Err(_) => (
                false,
                format!(
                    "error: no answer to {} within {:?}",
                    self.action, self.timeout
                ),
            ),
        };
        ProbeResult {
            healthy,
            status,
            latency,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn counting(calls: &Arc<AtomicUsize>, hang: bool) -> Call {
        let calls = Arc::clone(calls);
        Arc::new(move || {
            calls.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                if hang {
                    std::future::pending::<()>().await;
                }
                Err("refused".to_owned())
            })
        })
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_call_per_interval() {
        let calls = Arc::new(AtomicUsize::new(0));
        let probe = Arc::new(Probe::new(
            counting(&calls, false),
            "the check",
            Duration::from_secs(1),
            Duration::from_secs(60),
        ));
        let all: Vec<_> = (0..64)
            .map(|_| {
                let probe = Arc::clone(&probe);
                tokio::spawn(async move { probe.check().await })
            })
            .collect();
        for task in all {
            let result = task.await.unwrap();
            assert_eq!(result.status, "error: refused");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_hanging_call_ends_at_the_timeout() {
        let calls = Arc::new(AtomicUsize::new(0));
        let probe = Probe::new(
            counting(&calls, true),
            "ping",
            Duration::from_millis(50),
            Duration::from_secs(5),
        );
        let result = probe.check().await;
        assert!(!result.healthy);
        assert_eq!(result.status, "error: no answer to ping within 50ms");
        assert!(result.latency >= Duration::from_millis(50));
    }
}
