//! A fixed-size history of the headline figures, sampled every few seconds,
//! so that charts are already full when a page opens.
//!
//! The sampler is a plain thread that wakes every [`SAMPLE_INTERVAL`] and
//! reads the same store as every other view; it ends by itself once the
//! [`ServerWatch`](crate::ServerWatch) and everything built from it are gone.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::Shared;
use crate::histogram::HistogramSnapshot;

/// Time between two samples.
pub(crate) const SAMPLE_INTERVAL: Duration = Duration::from_secs(5);
/// Samples kept: 15 minutes.
pub(crate) const CAPACITY: usize = 180;

/// One sample: what happened during the interval that ends at `time`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct Sample {
    /// End of the interval, milliseconds since the Unix epoch.
    pub(crate) time: u64,
    /// Requests per second.
    pub(crate) request_rate: f64,
    /// Errors (5xx and panics) as a percentage of requests; 0 without requests.
    pub(crate) error_rate: f64,
    /// Duration percentiles of the interval's requests, in seconds.
    pub(crate) p50: f64,
    pub(crate) p95: f64,
    pub(crate) p99: f64,
    /// Process resident memory, in bytes.
    pub(crate) rss_bytes: u64,
    /// Requests per second by route template.
    pub(crate) routes: BTreeMap<String, f64>,
}

/// The JSON document of the history endpoint.
#[derive(Debug, Serialize)]
pub(crate) struct HistoryDocument {
    /// Seconds between samples.
    pub(crate) interval_seconds: u64,
    /// Oldest first.
    pub(crate) samples: Vec<Sample>,
}

/// The cumulative totals a sample is the difference of.
#[derive(Debug, Clone, Default)]
struct Totals {
    duration: HistogramSnapshot,
    errors: u64,
    routes: BTreeMap<String, u64>,
}

/// The ring buffer and the state between two samples.
#[derive(Debug, Default)]
pub(crate) struct History {
    samples: Mutex<VecDeque<Sample>>,
    previous: Mutex<Option<(SystemTime, Totals)>>,
}

impl History {
    /// Starts the sampler thread for `shared`.
    pub(crate) fn start(shared: &Arc<Shared>) {
        let weak: Weak<Shared> = Arc::downgrade(shared);
        let spawned = std::thread::Builder::new()
            .name("serverwatch-history".into())
            .spawn(move || {
                loop {
                    match weak.upgrade() {
                        Some(shared) => shared.history.sample(&shared, SystemTime::now()),
                        None => return,
                    }
                    std::thread::sleep(SAMPLE_INTERVAL);
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "serverwatch: no history sampler, charts start empty");
        }
    }

    /// Takes one sample at `now`. The first call only sets the baseline.
    pub(crate) fn sample(&self, shared: &Shared, now: SystemTime) {
        let totals = totals(shared);
        let mut previous = self.previous.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((then, before)) = previous.as_ref() {
            let seconds = now.duration_since(*then).unwrap_or_default().as_secs_f64();
            if seconds > 0.0 {
                let sample = difference(shared, before, &totals, seconds, now);
                let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
                if samples.len() == CAPACITY {
                    samples.pop_front();
                }
                samples.push_back(sample);
            }
        }
        *previous = Some((now, totals));
    }

    /// The samples, oldest first.
    pub(crate) fn document(&self) -> HistoryDocument {
        let samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        HistoryDocument {
            interval_seconds: SAMPLE_INTERVAL.as_secs(),
            samples: samples.iter().cloned().collect(),
        }
    }
}

fn totals(shared: &Shared) -> Totals {
    let mut t = Totals::default();
    for series in shared.requests.snapshot() {
        let d = &series.duration;
        t.duration.merge(d);
        let route = series.key.as_ref().map_or("other", |k| &*k.route);
        *t.routes.entry(route.to_owned()).or_default() += d.count;
        if series.key.as_ref().is_some_and(|k| k.error.is_some()) {
            t.errors += d.count;
        }
    }
    t
}

fn difference(
    shared: &Shared,
    before: &Totals,
    now: &Totals,
    seconds: f64,
    at: SystemTime,
) -> Sample {
    let interval = now.duration.minus(&before.duration);
    let errors = now.errors.saturating_sub(before.errors);
    let bounds = shared.requests.duration_bounds.exported;
    Sample {
        time: at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        request_rate: interval.count as f64 / seconds,
        error_rate: crate::system::percent(errors, interval.count),
        p50: interval.quantile(bounds, 0.50),
        p95: interval.quantile(bounds, 0.95),
        p99: interval.quantile(bounds, 0.99),
        rss_bytes: shared.system.snapshot().process.resident_bytes,
        routes: now
            .routes
            .iter()
            .map(|(route, n)| {
                let then = before.routes.get(route).copied().unwrap_or(0);
                (route.clone(), n.saturating_sub(then) as f64 / seconds)
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::store::{ErrorKind, Method, Observation, SeriesKey};

    fn record(shared: &Shared, route: &str, status: u16, millis: u64) {
        let error = (status >= 500).then_some(ErrorKind::ServerError);
        shared.requests.record(&Observation {
            key: SeriesKey {
                method: Method::Get,
                route,
                status,
                error,
            },
            duration_nanos: millis * 1_000_000,
            request_bytes: 0,
            response_bytes: 0,
            message: None,
        });
    }

    #[test]
    fn samples_are_rates_of_the_interval_and_the_ring_is_bounded() {
        let watch = crate::ServerWatch::builder().build().unwrap();
        let shared = &watch.shared;
        let history = History::default();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        record(shared, "/a", 200, 1);
        history.sample(shared, t0);
        assert!(
            history.document().samples.is_empty(),
            "the first call sets the baseline"
        );

        for _ in 0..8 {
            record(shared, "/a", 200, 1);
        }
        record(shared, "/b", 500, 300);
        record(shared, "/b", 500, 300);
        history.sample(shared, t0 + Duration::from_secs(5));
        let doc = history.document();
        let s = &doc.samples[0];
        assert_eq!(s.request_rate, 2.0);
        assert_eq!(s.error_rate, 20.0);
        assert_eq!(s.routes["/a"], 1.6);
        assert_eq!(s.routes["/b"], 0.4);
        assert!(s.p50 <= 0.005 && s.p99 > 0.25, "{s:?}");
        assert!(s.rss_bytes > 0);

        for i in 2..(CAPACITY as u64 + 10) {
            history.sample(shared, t0 + Duration::from_secs(5 * i));
        }
        let doc = history.document();
        assert_eq!(doc.samples.len(), CAPACITY);
        assert_eq!(doc.samples.last().unwrap().request_rate, 0.0);
    }
}
