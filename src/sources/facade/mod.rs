//! The app's own metrics, through the `metrics` crate's facade
//! (`metrics::counter!`, `gauge!`, `histogram!`): serverwatch's
//! [`MetricsRecorder`], once the app installs it, keeps them beside its own,
//! and every exporter shows them with the same rules.
//!
//! - Each label set is a series of a capped set ([`SeriesSet`]): a known
//!   one is found without a lock, a new one costs one insertion, and past
//!   `max_series` label sets a name's new ones share its overflow series
//!   (`otel_metric_overflow="true"`).
//! - Counters and gauges are one atomic each; histograms are the
//!   [`AtomicHistogram`] of the request metrics, so they have native
//!   histograms and OTLP exponential points too.
//! - Names and units follow serverwatch's rules ([`names`]).
//! - With an idle timeout, counter and histogram series that see no update
//!   for that long are dropped ([`expiry`]).
//! - Classic bounds are chosen per name, prefix or suffix ([`buckets`]).

mod buckets;
mod expiry;
mod families;
mod names;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata,
    SharedString, Unit,
};

use crate::error::BuildError;
use crate::model::family::{Family, start_now};
use crate::model::histogram::{AtomicHistogram, Bounds};
use crate::model::instruments::{Instrument, Kind};
use crate::model::series::SeriesSet;
use crate::part::{Assembly, Part, part_boilerplate};
use crate::source::{Source, Wants};
pub use buckets::MetricMatcher;
use expiry::{Expiry, Readings};
use names::Conversion;

/// What the builder collects for the facade.
#[derive(Debug, Clone, Default)]
pub(crate) struct FacadeSettings {
    /// Classic bounds, in the order given.
    buckets: Vec<(MetricMatcher, Vec<f64>)>,
    idle_timeout: Option<Duration>,
}

impl FacadeSettings {
    pub(crate) fn buckets(&mut self, matcher: MetricMatcher, bounds: Vec<f64>) {
        self.buckets.push((matcher, bounds));
    }

    pub(crate) fn idle_timeout(&mut self, idle: Duration) {
        self.idle_timeout = Some(idle);
    }

    /// Checks the bounds (at the finest resolution a unit has: a name's
    /// unit is known only once it is recorded) and the timeout.
    fn check(&self) -> Result<(), BuildError> {
        for (matcher, bounds) in &self.buckets {
            let wrong = |e: String| BuildError::new("metrics_histogram_buckets", e);
            if matcher.pattern().is_empty() {
                return Err(wrong(format!("{matcher:?} matches every name or none")));
            }
            Bounds::new(bounds, 1e-9).map_err(|e| wrong(format!("{matcher:?}: {e}")))?;
        }
        if self.idle_timeout.is_some_and(|idle| idle.is_zero()) {
            return Err(BuildError::new(
                "metrics_idle_timeout",
                "must be above zero (leave it unset for series that never expire)",
            ));
        }
        Ok(())
    }
}

/// The app's metrics are a source whatever `disable_instruments` says: it
/// names serverwatch's instruments only.
impl Part for FacadeSettings {
    part_boilerplate!();

    fn build(self: Box<Self>, assembly: &mut Assembly) -> Result<(), BuildError> {
        self.check()?;
        let store = FacadeStore::new(*self, assembly.max_series, assembly.reserved.clone());
        assembly.source(Arc::clone(&store) as Arc<dyn Source>);
        assembly.handles.values.insert(MetricsRecorder { store });
        Ok(())
    }
}

impl Source for FacadeStore {
    fn families(&self, _: Wants<'_>, out: &mut Vec<Family>) {
        self.expire_idle();
        out.extend(self.read_families());
    }
}

/// serverwatch as the `metrics` facade's recorder: install it with
/// `metrics::set_global_recorder` (or for a scope, with
/// `metrics::with_local_recorder`), and what the app and its libraries
/// record through `metrics::counter!`, `gauge!` and `histogram!` appears on
/// `/metrics`, in the OTLP push, under the same cardinality cap as the
/// request metrics. serverwatch never installs it by itself.
///
/// ```
/// let watch = serverwatch::ServerWatch::builder().build()?;
/// metrics::with_local_recorder(&watch.metrics_recorder(), || {
///     metrics::describe_histogram!("checkout.duration", metrics::Unit::Seconds, "Checkouts.");
///     metrics::counter!("orders.placed", "region" => "eu").increment(1);
///     metrics::histogram!("checkout.duration").record(0.25);
/// });
/// // In main: metrics::set_global_recorder(watch.metrics_recorder())?;
/// # Ok::<(), serverwatch::BuildError>(())
/// ```
#[derive(Debug, Clone)]
pub struct MetricsRecorder {
    store: Arc<FacadeStore>,
}

/// What a name was described with.
#[derive(Debug, Clone)]
struct Description {
    unit: Option<Unit>,
    help: String,
}

/// One name, as exported: fixed when its first series is made.
#[derive(Debug)]
struct Name {
    /// As given to the macro.
    given: Box<str>,
    kind: Kind,
    instrument: &'static Instrument,
    conversion: Conversion,
    /// Histograms only.
    bounds: Option<Bounds>,
}

/// The value of one series.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "made once in its Arc and never moved; boxing would cost every record a pointer"
)]
enum Cell {
    Counter(AtomicU64),
    /// The `f64`'s bits.
    Gauge(AtomicU64),
    Histogram(AtomicHistogram),
}

/// One series: a label set of a name.
#[derive(Debug)]
struct Series {
    name: Arc<Name>,
    cell: Cell,
    /// Set for the series that may expire.
    expiry: Option<Expiry>,
    /// When the series was made, in nanoseconds since the Unix epoch: a
    /// series made again is a new one, reset.
    start: u64,
}

/// Every facade metric of one [`ServerWatch`](crate::ServerWatch).
#[derive(Debug)]
pub(crate) struct FacadeStore {
    /// Classic bounds given to the builder, in the order given.
    buckets: Vec<(MetricMatcher, Vec<f64>)>,
    /// With an idle timeout: the readings that series are stamped with.
    readings: Option<Arc<Readings>>,
    /// Itself, for the series that must find their successor.
    me: Weak<FacadeStore>,
    /// Family names taken: serverwatch's own and the merged registry's.
    reserved: Vec<String>,
    descriptions: papaya::HashMap<String, Description>,
    described: AtomicUsize,
    /// By Prometheus family name, so that two names spelled alike there
    /// cannot both be exported.
    names: SeriesSet<String, Arc<Name>>,
    series: SeriesSet<Key, Arc<Series>>,
    /// Past the cap: one series per name, by family name.
    overflow: SeriesSet<String, Arc<Series>>,
    max: usize,
    /// Whether a refused name was logged (once per store).
    warned: AtomicBool,
}

impl FacadeStore {
    /// A store of at most `max_series` label sets (and as many names and
    /// descriptions), which refuses the family names in `reserved`.
    fn new(settings: FacadeSettings, max_series: usize, reserved: Vec<String>) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            buckets: settings.buckets,
            readings: settings
                .idle_timeout
                .map(|idle| Arc::new(Readings::new(idle))),
            me: me.clone(),
            reserved,
            descriptions: papaya::HashMap::new(),
            described: AtomicUsize::new(0),
            names: SeriesSet::new(max_series),
            series: SeriesSet::new(max_series),
            overflow: SeriesSet::new(max_series),
            max: max_series,
            warned: AtomicBool::new(false),
        })
    }

    fn describe(&self, name: &KeyName, unit: Option<Unit>, help: &SharedString) {
        let descriptions = self.descriptions.pin();
        if descriptions.get(name.as_str()).is_none()
            && self.described.fetch_add(1, Ordering::Relaxed) >= self.max
        {
            return;
        }
        let description = Description {
            unit,
            help: help.to_string(),
        };
        descriptions.insert(name.as_str().to_owned(), description);
    }

    /// The series of `key` for a metric of `kind`: found without a lock,
    /// made if new (in the name's overflow series past the cap); `None`
    /// when the name cannot be exported.
    fn series(&self, key: &Key, kind: Kind) -> Option<Arc<Series>> {
        if let Some(series) = self.series.get(key, Arc::clone) {
            if !series.expired() {
                return (series.name.kind == kind).then_some(series);
            }
            // Expired but not yet taken out: its successor takes its place.
            self.series.remove_if(key, |s| Arc::ptr_eq(s, &series));
        }
        let name = self.name(key.name(), kind)?;
        let make = |expiry| {
            Arc::new(Series {
                cell: Cell::new(&name),
                name: Arc::clone(&name),
                expiry,
                start: start_now(),
            })
        };
        // Gauges never expire (see `expiry`), nor do overflow series.
        let expires = self.readings.as_ref().filter(|_| kind != Kind::Gauge);
        let expiry = || expires.map(|r| Expiry::new(r, key.clone(), self.me.clone()));
        let mut found = None;
        let admitted = self
            .series
            .with(key, || make(expiry()), |s| found = Some(Arc::clone(s)));
        if !admitted {
            let family = name.instrument.prometheus_name.to_owned();
            self.overflow
                .with(&family, || make(None), |s| found = Some(Arc::clone(s)));
        }
        found.filter(|s| s.name.kind == kind)
    }

    /// Takes out the series that have seen no update for the idle timeout:
    /// done at each reading, before the series are read.
    fn expire_idle(&self) {
        let Some(readings) = &self.readings else {
            return;
        };
        let idle_below = readings.advance(Instant::now());
        let idle = self.series.collect(|key, series| {
            let expired = series.expiry.as_ref().is_some_and(|e| e.expire(idle_below));
            expired.then(|| key.clone())
        });
        for key in idle.into_iter().flatten() {
            self.series.remove_if(&key, |s| s.expired());
        }
    }

    /// The name `given` as a metric of `kind`, made on its first series;
    /// `None` (logged once) when it clashes with a family already taken.
    fn name(&self, given: &str, kind: Kind) -> Option<Arc<Name>> {
        let description = self.descriptions.pin().get(given).cloned();
        let conversion = Conversion::of(given, description.as_ref().and_then(|d| d.unit));
        let base = names::prometheus_base(given, kind, conversion.unit);
        let make = || {
            let help = description
                .as_ref()
                .map(|d| d.help.clone())
                .filter(|h| !h.trim().is_empty())
                .unwrap_or_else(|| format!("{given}, recorded through the metrics facade."));
            let instrument = names::instrument(given, base.clone(), kind, conversion.unit, help);
            let bounds = (kind == Kind::Histogram).then(|| self.bounds(given, &conversion));
            Arc::new(Name {
                given: given.into(),
                kind,
                instrument,
                conversion,
                bounds,
            })
        };
        let family = match conversion.unit.prometheus() {
            Some(unit) => format!("{base}_{}", unit.as_str()),
            None => base.clone(),
        };
        let mut found = None;
        let free = !self.reserved.contains(&family)
            && self
                .names
                .with(&base, make, |n| found = Some(Arc::clone(n)));
        let name = found.filter(|n| free && *n.given == *given && n.kind == kind);
        if name.is_none() && !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                metric = given,
                "serverwatch: a metrics-facade name is not exported: its Prometheus name is \
                 taken (by serverwatch, the merged registry, another name or another kind), or \
                 max_series names are in use; further ones are dropped silently"
            );
        }
        name
    }

    /// The classic bounds of the histogram `name`: the builder's, else the
    /// unit's defaults.
    fn bounds(&self, name: &str, conversion: &Conversion) -> Bounds {
        let default = || {
            Bounds::new(conversion.bounds, conversion.resolution)
                .expect("the default bounds are valid")
        };
        match buckets::bounds_for(&self.buckets, name) {
            Some(given) => Bounds::new(given, conversion.resolution).unwrap_or_else(|e| {
                tracing::warn!(metric = name, error = %e, "serverwatch: metrics_histogram_buckets \
                    do not fit the unit's resolution; the defaults are used");
                default()
            }),
            None => default(),
        }
    }
}

impl Cell {
    fn new(name: &Name) -> Self {
        match (name.kind, &name.bounds) {
            (Kind::Histogram, Some(bounds)) => Cell::Histogram(AtomicHistogram::new(bounds)),
            (Kind::Gauge, _) => Cell::Gauge(AtomicU64::new(0f64.to_bits())),
            _ => Cell::Counter(AtomicU64::new(0)),
        }
    }
}

impl CounterFn for Series {
    fn increment(&self, value: u64) {
        self.live(&|series| {
            if let Cell::Counter(n) = &series.cell {
                n.fetch_add(value, Ordering::Relaxed);
            }
        });
    }

    fn absolute(&self, value: u64) {
        self.live(&|series| {
            if let Cell::Counter(n) = &series.cell {
                n.fetch_max(value, Ordering::Relaxed);
            }
        });
    }
}

impl GaugeFn for Series {
    fn increment(&self, value: f64) {
        self.update(|v| v + value);
    }

    fn decrement(&self, value: f64) {
        self.update(|v| v - value);
    }

    fn set(&self, value: f64) {
        if let Cell::Gauge(bits) = &self.cell {
            bits.store(value.to_bits(), Ordering::Relaxed);
        }
    }
}

impl Series {
    fn expired(&self) -> bool {
        self.expiry.as_ref().is_some_and(Expiry::expired)
    }

    /// Runs `update` on this series or, once it has expired, on the one
    /// that took its place: an app may hold a handle for ever.
    fn live(&self, update: &dyn Fn(&Series)) {
        match &self.expiry {
            Some(expiry) if !expiry.touch() => {
                if let Some(next) = expiry.successor(self.name.kind) {
                    next.live(update);
                }
            }
            _ => update(self),
        }
    }

    fn update(&self, f: impl Fn(f64) -> f64) {
        if let Cell::Gauge(bits) = &self.cell {
            let _ = bits.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some(f(f64::from_bits(b)).to_bits())
            });
        }
    }
}

impl HistogramFn for Series {
    /// Records `value` in the name's unit; a negative one counts as 0 (the
    /// buckets hold no negative values) and NaN is dropped.
    fn record(&self, value: f64) {
        if value.is_nan() {
            return;
        }
        let c = &self.name.conversion;
        // Saturating: `as` clamps to 0 ..= u64::MAX.
        let base = (value * c.to_exported / c.resolution).round() as u64;
        self.live(&|series| {
            if let (Cell::Histogram(h), Some(bounds)) = (&series.cell, &series.name.bounds) {
                h.record(bounds, base);
            }
        });
    }
}

impl metrics::Recorder for MetricsRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.store.describe(&key, unit, &description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.store.describe(&key, unit, &description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.store.describe(&key, unit, &description);
    }

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        self.store
            .series(key, Kind::Counter)
            .map_or_else(Counter::noop, Counter::from_arc)
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        self.store
            .series(key, Kind::Gauge)
            .map_or_else(Gauge::noop, Gauge::from_arc)
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        self.store
            .series(key, Kind::Histogram)
            .map_or_else(Histogram::noop, Histogram::from_arc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorder(max_series: usize) -> MetricsRecorder {
        recorder_with(FacadeSettings::default(), max_series)
    }

    fn recorder_with(settings: FacadeSettings, max_series: usize) -> MetricsRecorder {
        let reserved = vec!["process_cpu_seconds".to_owned()];
        MetricsRecorder {
            store: FacadeStore::new(settings, max_series, reserved),
        }
    }

    #[test]
    fn label_sets_past_the_cap_share_the_overflow_series_of_their_name() {
        let recorder = recorder(2);
        metrics::with_local_recorder(&recorder, || {
            for region in ["eu", "us", "ap", "sa"] {
                metrics::counter!("orders", "region" => region).increment(10);
            }
        });
        let store = &recorder.store;
        assert_eq!(store.series.collect(|_, _| ()).len(), 2);
        let overflow = store.overflow.collect(|_, s| match &s.cell {
            Cell::Counter(n) => n.load(Ordering::Relaxed),
            _ => 0,
        });
        assert_eq!(overflow, vec![20]);
    }

    #[test]
    fn a_taken_name_or_another_kind_is_not_recorded() {
        let recorder = recorder(100);
        metrics::with_local_recorder(&recorder, || {
            metrics::describe_counter!("process.cpu", Unit::Seconds, "");
            metrics::counter!("process.cpu", "a" => "b").increment(1);
            metrics::counter!("jobs").increment(1);
            metrics::gauge!("jobs").set(5.0);
            metrics::gauge!("jobs.x").set(5.0);
            metrics::gauge!("jobs_x").set(6.0);
        });
        let names = recorder.store.names.collect(|k, _| k.clone());
        let mut names = names;
        names.sort();
        assert_eq!(names, ["jobs", "jobs_x"]);
        let series = recorder.store.series.collect(|k, _| k.name().to_owned());
        assert!(!series.contains(&"jobs_x".to_owned()), "{series:?}");
    }

    /// The counter and gauge values of the store's series, by label value.
    fn values(recorder: &MetricsRecorder) -> Vec<(String, f64)> {
        let mut values = recorder.store.series.collect(|key, s| {
            let label = key.labels().next().map_or("", |l| l.value()).to_owned();
            match &s.cell {
                Cell::Counter(n) => (label, n.load(Ordering::Relaxed) as f64),
                Cell::Gauge(bits) => (label, f64::from_bits(bits.load(Ordering::Relaxed))),
                Cell::Histogram(_) => (label, f64::NAN),
            }
        });
        values.sort_by(|a, b| a.0.cmp(&b.0));
        values
    }

    #[test]
    fn idle_counters_expire_and_come_back_from_zero_even_through_a_kept_handle() {
        let mut settings = FacadeSettings::default();
        settings.idle_timeout(Duration::from_nanos(1));
        let recorder = recorder_with(settings, 10);
        let store = Arc::clone(&recorder.store);
        let kept = metrics::with_local_recorder(&recorder, || {
            metrics::counter!("jobs", "queue" => "a").increment(5);
            metrics::gauge!("level", "pool" => "p").set(3.0);
            metrics::counter!("jobs", "queue" => "kept")
        });
        kept.increment(1);
        let value = || values(&recorder);
        assert_eq!(
            value(),
            [("a".into(), 5.0), ("kept".into(), 1.0), ("p".into(), 3.0)]
        );
        // Two readings: the first stamps what was updated, the next finds
        // it idle (a nanosecond's timeout).
        store.expire_idle();
        store.expire_idle();
        assert_eq!(value(), [("p".into(), 3.0)], "the gauge stays");
        kept.increment(2);
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!("jobs", "queue" => "a").increment(1);
        });
        assert_eq!(
            value(),
            [("a".into(), 1.0), ("kept".into(), 2.0), ("p".into(), 3.0)]
        );
    }

    #[test]
    fn expired_series_free_their_places_under_the_cap() {
        let mut settings = FacadeSettings::default();
        settings.idle_timeout(Duration::from_nanos(1));
        let recorder = recorder_with(settings, 2);
        for round in 0..5 {
            metrics::with_local_recorder(&recorder, || {
                for n in 0..2 {
                    let job = format!("{round}-{n}");
                    metrics::counter!("jobs", "job" => job).increment(1);
                }
            });
            recorder.store.expire_idle();
            recorder.store.expire_idle();
        }
        assert!(recorder.store.overflow.collect(|_, _| ()).is_empty());
        assert!(values(&recorder).is_empty());
    }

    #[test]
    fn without_a_timeout_nothing_expires() {
        let recorder = recorder(10);
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!("jobs", "queue" => "a").increment(5);
        });
        recorder.store.expire_idle();
        recorder.store.expire_idle();
        assert_eq!(values(&recorder), [("a".into(), 5.0)]);
    }

    #[test]
    fn histograms_convert_to_the_exported_unit() {
        let recorder = recorder(100);
        metrics::with_local_recorder(&recorder, || {
            metrics::describe_histogram!("wait", Unit::Milliseconds, "Waits.");
            metrics::histogram!("wait").record(250.0);
            metrics::histogram!("wait").record(-1.0);
            metrics::histogram!("wait").record(f64::NAN);
        });
        let store = &recorder.store;
        let sums = store
            .series
            .collect(|_, s| match (&s.cell, &s.name.bounds) {
                (Cell::Histogram(h), Some(b)) => {
                    let snapshot = h.snapshot(b);
                    (snapshot.count, snapshot.sum)
                }
                _ => (0, 0.0),
            });
        assert_eq!(sums, vec![(2, 0.25)]);
    }
}
