//! A fixed-size history of the headline figures, sampled every few seconds,
//! so that charts are already full when a page opens.
//!
//! The sampler is a plain thread that wakes every [`SAMPLE_INTERVAL`] and
//! reads the request summary that `/health` shows; it ends by itself once
//! the state it reads is gone.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::Serialize;

use crate::state::State;
use crate::state::histogram::Totals;
use crate::state::requests::RequestSummary;

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
    /// Errors (5xx, panics, failed streamed bodies, aborted requests) as
    /// a percentage of requests; 0 without requests.
    pub(crate) error_rate: f64,
    /// Duration percentiles of the interval's requests, in seconds.
    pub(crate) p50: f64,
    pub(crate) p95: f64,
    pub(crate) p99: f64,
    /// Process resident memory, in bytes; `null` while the system is not
    /// read.
    pub(crate) rss_bytes: Option<u64>,
    /// Requests per second by route template.
    pub(crate) routes: BTreeMap<String, f64>,
    /// Share of the tokio workers' time spent running tasks, in %
    /// (`null` without a watched runtime).
    pub(crate) runtime_busy: Option<f64>,
}

/// The JSON document of the history endpoint.
#[derive(Debug, Serialize)]
pub(crate) struct HistoryDocument {
    /// Seconds between samples.
    pub(crate) interval_seconds: u64,
    /// Oldest first.
    pub(crate) samples: Vec<Sample>,
}

/// The ring buffer and the summary of the last sample, which the next one
/// is the difference from.
#[derive(Debug, Default)]
pub(crate) struct History {
    samples: Mutex<VecDeque<Sample>>,
    previous: Mutex<Option<Baseline>>,
}

/// What the next sample is the difference from.
#[derive(Debug)]
struct Baseline {
    time: SystemTime,
    summary: RequestSummary,
    /// The runtime workers' busy time, and how many there are.
    busy: Option<(Duration, usize)>,
}

impl History {
    /// Starts the sampler thread, reading `state`.
    pub(crate) fn start(state: &Arc<State>) -> Arc<Self> {
        let history = Arc::new(Self::default());
        let weak: Weak<State> = Arc::downgrade(state);
        let sampler = Arc::clone(&history);
        let spawned = std::thread::Builder::new()
            .name("serverwatch-history".into())
            .spawn(move || {
                while let Some(state) = weak.upgrade() {
                    sampler.sample(&state, SystemTime::now());
                    drop(state);
                    std::thread::sleep(SAMPLE_INTERVAL);
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "serverwatch: no history sampler, charts start empty");
        }
        history
    }

    /// Takes one sample at `now`; the first call only sets the baseline.
    fn sample(&self, state: &State, now: SystemTime) {
        let summary = state.requests().summary();
        let busy = state.runtime_busy();
        let mut previous = self.previous.lock();
        if let Some(before) = previous.as_ref() {
            let seconds = now
                .duration_since(before.time)
                .unwrap_or_default()
                .as_secs_f64();
            if seconds > 0.0 {
                let rss_bytes = state.system_now().map(|s| s.process.resident_bytes);
                let mut sample = difference(&before.summary, &summary, seconds, now, rss_bytes);
                sample.runtime_busy = busy_percent(before.busy, busy, seconds);
                let mut samples = self.samples.lock();
                if samples.len() == CAPACITY {
                    samples.pop_front();
                }
                samples.push_back(sample);
            }
        }
        *previous = Some(Baseline {
            time: now,
            summary,
            busy,
        });
    }

    /// The samples, oldest first.
    pub(crate) fn document(&self) -> HistoryDocument {
        HistoryDocument {
            interval_seconds: SAMPLE_INTERVAL.as_secs(),
            samples: self.samples.lock().iter().cloned().collect(),
        }
    }
}

/// The workers' busy share of the interval, in %: busy time over the
/// interval's length times the workers, at most 100.
fn busy_percent(
    before: Option<(Duration, usize)>,
    now: Option<(Duration, usize)>,
    seconds: f64,
) -> Option<f64> {
    let ((then, _), (busy, workers)) = (before?, now?);
    let share = busy.saturating_sub(then).as_secs_f64() / (seconds * workers.max(1) as f64);
    Some((share * 100.0).min(100.0))
}

fn difference(
    before: &RequestSummary,
    now: &RequestSummary,
    seconds: f64,
    at: SystemTime,
    rss_bytes: Option<u64>,
) -> Sample {
    let interval = now.all.duration.minus(&before.all.duration);
    let errors = now.all.errors.saturating_sub(before.all.errors);
    let requests = |t: Option<&Totals>| t.map_or(0, Totals::requests);
    Sample {
        time: at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        request_rate: interval.count as f64 / seconds,
        error_rate: crate::state::reading::percent(errors, interval.count),
        p50: interval.quantile(0.50),
        p95: interval.quantile(0.95),
        p99: interval.quantile(0.99),
        rss_bytes,
        routes: now
            .routes
            .iter()
            .map(|(route, totals)| {
                let then = requests(before.routes.get(route));
                let n = totals.requests().saturating_sub(then);
                (route.clone(), n as f64 / seconds)
            })
            .collect(),
        runtime_busy: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::requests::tests::observation;

    #[test]
    fn samples_are_rates_of_the_interval_and_the_ring_is_bounded() {
        let watch = crate::ServerWatch::builder().build().unwrap();
        let state = watch.state();
        let store = state.requests();
        let history = History::default();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        store.record(&observation("/a", 200, 1));
        history.sample(state, t0);
        assert!(
            history.document().samples.is_empty(),
            "the first call sets the baseline"
        );

        for _ in 0..8 {
            store.record(&observation("/a", 200, 1));
        }
        store.record(&observation("/b", 500, 300));
        store.record(&observation("/b", 500, 300));
        history.sample(state, t0 + Duration::from_secs(5));
        let doc = history.document();
        let s = &doc.samples[0];
        assert_eq!(s.request_rate, 2.0);
        assert_eq!(s.error_rate, 20.0);
        assert_eq!(s.routes["/a"], 1.6);
        assert_eq!(s.routes["/b"], 0.4);
        assert!(s.p50 <= 0.005 && s.p99 > 0.25, "{s:?}");
        assert!(s.rss_bytes.is_some_and(|rss| rss > 0));

        for i in 2..(CAPACITY as u64 + 10) {
            history.sample(state, t0 + Duration::from_secs(5 * i));
        }
        let doc = history.document();
        assert_eq!(doc.samples.len(), CAPACITY);
        assert_eq!(doc.samples.last().unwrap().request_rate, 0.0);
    }

    #[test]
    fn the_busy_share_is_of_every_worker_over_the_interval() {
        let second = Duration::from_secs(1);
        let busy = |s: u64, workers| Some((second * s as u32, workers));
        assert_eq!(busy_percent(busy(10, 2), busy(15, 2), 5.0), Some(50.0));
        assert_eq!(busy_percent(busy(0, 1), busy(9, 1), 5.0), Some(100.0));
        assert_eq!(busy_percent(None, busy(9, 1), 5.0), None);
    }
}
