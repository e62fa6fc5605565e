//! A fixed-size history of the headline figures, sampled every few seconds,
//! so that charts are already full when a page opens.
//!
//! The sampler is a plain thread that wakes every [`SAMPLE_INTERVAL`] and
//! reads every source's families (those of the instruments turned off
//! included: the dashboard shows every request); it ends by itself once the
//! sources it reads are gone.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::Serialize;

use crate::model::family::{Attributes, Family, OVERFLOW_LABEL, PointValue, Value, percent};
use crate::model::histogram::Totals;
use crate::model::instruments::{self as i, Attribute, Instrument, runtime as rt};
use crate::source::Sources;

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
    reading: Reading,
}

/// What a sample is made of, read from the families.
#[derive(Debug, Default)]
struct Reading {
    /// Every request.
    all: Totals,
    /// Requests per route template, `other` past the cardinality cap.
    routes: BTreeMap<String, u64>,
    rss_bytes: Option<u64>,
    /// The runtime workers' busy seconds, added up, and how many there are.
    busy: Option<(f64, usize)>,
}

impl Reading {
    fn of(families: &[Family]) -> Self {
        let mut reading = Self::default();
        let mut busy_seconds = None;
        let mut workers = None;
        for family in families {
            let is = |instrument: &Instrument| family.instrument.otel_name == instrument.otel_name;
            for point in &family.points {
                match &point.value {
                    PointValue::Histogram { data, .. } if is(&i::HTTP_SERVER_REQUEST_DURATION) => {
                        let failed = attribute(&point.attributes, &i::ERROR_TYPE).is_some();
                        reading.all.add(data, failed);
                        let route = match attribute(&point.attributes, &i::HTTP_ROUTE) {
                            Some(Value::Str(route)) => route.to_string(),
                            _ => OVERFLOW_LABEL.to_owned(),
                        };
                        *reading.routes.entry(route).or_default() += data.count;
                    }
                    PointValue::Number(n) if is(&i::PROCESS_RESIDENT_MEMORY) => {
                        reading.rss_bytes = Some(*n as u64);
                    }
                    PointValue::Number(n) if is(&rt::WORKER_BUSY_TIME) => {
                        *busy_seconds.get_or_insert(0.0) += n;
                    }
                    PointValue::Number(n) if is(&rt::WORKERS) => workers = Some(*n as usize),
                    _ => {}
                }
            }
        }
        reading.busy = busy_seconds.zip(workers);
        reading
    }
}

fn attribute<'a>(attributes: &'a Attributes, key: &Attribute) -> Option<&'a Value> {
    attributes
        .iter()
        .find(|(a, _)| a.otel == key.otel)
        .map(|(_, value)| value)
}

impl History {
    /// Starts the sampler thread, reading `sources`.
    pub(crate) fn start(sources: &Arc<Sources>) -> Arc<Self> {
        let history = Arc::new(Self::default());
        let weak: Weak<Sources> = Arc::downgrade(sources);
        let sampler = Arc::clone(&history);
        let spawned = std::thread::Builder::new()
            .name("serverwatch-history".into())
            .spawn(move || {
                while let Some(sources) = weak.upgrade() {
                    sampler.sample(&sources.families_where(&|_| true), SystemTime::now());
                    drop(sources);
                    std::thread::sleep(SAMPLE_INTERVAL);
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "serverwatch: no history sampler, charts start empty");
        }
        history
    }

    /// Takes one sample of `families` at `now`; the first call only sets
    /// the baseline.
    fn sample(&self, families: &[Family], now: SystemTime) {
        let reading = Reading::of(families);
        let mut previous = self.previous.lock();
        if let Some(before) = previous.as_ref() {
            let seconds = now
                .duration_since(before.time)
                .unwrap_or_default()
                .as_secs_f64();
            if seconds > 0.0 {
                let sample = difference(&before.reading, &reading, seconds, now);
                let mut samples = self.samples.lock();
                if samples.len() == CAPACITY {
                    samples.pop_front();
                }
                samples.push_back(sample);
            }
        }
        *previous = Some(Baseline { time: now, reading });
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
    before: Option<(f64, usize)>,
    now: Option<(f64, usize)>,
    seconds: f64,
) -> Option<f64> {
    let ((then, _), (busy, workers)) = (before?, now?);
    let share = (busy - then).max(0.0) / (seconds * workers.max(1) as f64);
    Some((share * 100.0).min(100.0))
}

fn difference(before: &Reading, now: &Reading, seconds: f64, at: SystemTime) -> Sample {
    let interval = now.all.duration.minus(&before.all.duration);
    let errors = now.all.errors.saturating_sub(before.all.errors);
    Sample {
        time: at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        request_rate: interval.count as f64 / seconds,
        error_rate: percent(errors, interval.count),
        p50: interval.quantile(0.50),
        p95: interval.quantile(0.95),
        p99: interval.quantile(0.99),
        rss_bytes: now.rss_bytes,
        routes: now
            .routes
            .iter()
            .map(|(route, requests)| {
                let then = before.routes.get(route).copied().unwrap_or(0);
                (
                    route.clone(),
                    requests.saturating_sub(then) as f64 / seconds,
                )
            })
            .collect(),
        runtime_busy: busy_percent(before.busy, now.busy, seconds),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::requests::tests::observation;

    #[test]
    fn samples_are_rates_of_the_interval_and_the_ring_is_bounded() {
        let watch = crate::ServerWatch::builder().build().unwrap();
        let sources = watch.sources();
        let store = watch.requests();
        let history = History::default();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        store.record(&observation("/a", 200, 1));
        history.sample(&sources.families_where(&|_| true), t0);
        assert!(
            history.document().samples.is_empty(),
            "the first call sets the baseline"
        );

        for _ in 0..8 {
            store.record(&observation("/a", 200, 1));
        }
        store.record(&observation("/b", 500, 300));
        store.record(&observation("/b", 500, 300));
        history.sample(
            &sources.families_where(&|_| true),
            t0 + Duration::from_secs(5),
        );
        let doc = history.document();
        let s = &doc.samples[0];
        assert_eq!(s.request_rate, 2.0);
        assert_eq!(s.error_rate, 20.0);
        assert_eq!(s.routes["/a"], 1.6);
        assert_eq!(s.routes["/b"], 0.4);
        assert!(s.p50 <= 0.005 && s.p99 > 0.25, "{s:?}");
        assert!(s.rss_bytes.is_some_and(|rss| rss > 0));

        for i in 2..(CAPACITY as u64 + 10) {
            history.sample(
                &sources.families_where(&|_| true),
                t0 + Duration::from_secs(5 * i),
            );
        }
        let doc = history.document();
        assert_eq!(doc.samples.len(), CAPACITY);
        assert_eq!(doc.samples.last().unwrap().request_rate, 0.0);
    }

    #[test]
    fn the_busy_share_is_of_every_worker_over_the_interval() {
        let busy = |s: u64, workers| Some((s as f64, workers));
        assert_eq!(busy_percent(busy(10, 2), busy(15, 2), 5.0), Some(50.0));
        assert_eq!(busy_percent(busy(0, 1), busy(9, 1), 5.0), Some(100.0));
        assert_eq!(busy_percent(None, busy(9, 1), 5.0), None);
    }
}
