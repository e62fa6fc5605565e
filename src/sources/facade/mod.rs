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

mod families;
mod names;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

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
use names::Conversion;

/// What the builder collects for the facade: classic bounds by name.
#[derive(Debug, Clone, Default)]
pub(crate) struct FacadeSettings {
    buckets: Vec<(String, Vec<f64>)>,
}

impl FacadeSettings {
    pub(crate) fn buckets(&mut self, name: String, bounds: Vec<f64>) {
        self.buckets.push((name, bounds));
    }

    /// Checks the bounds (at the finest resolution a unit has: a name's
    /// unit is known only once it is recorded).
    fn checked(self) -> Result<HashMap<String, Vec<f64>>, BuildError> {
        let mut checked = HashMap::new();
        for (name, bounds) in self.buckets {
            Bounds::new(&bounds, 1e-9).map_err(|e| {
                BuildError::new("metrics_histogram_buckets", format!("{name:?}: {e}"))
            })?;
            checked.insert(name, bounds);
        }
        Ok(checked)
    }
}

/// The app's metrics are a source whatever `disable_instruments` says: it
/// names serverwatch's instruments only.
impl Part for FacadeSettings {
    part_boilerplate!();

    fn build(self: Box<Self>, assembly: &mut Assembly) -> Result<(), BuildError> {
        let store = Arc::new(FacadeStore::new(
            self.checked()?,
            assembly.max_series,
            assembly.reserved.clone(),
        ));
        assembly.source(Arc::clone(&store) as Arc<dyn Source>);
        assembly.handles.values.insert(MetricsRecorder { store });
        Ok(())
    }
}

impl Source for FacadeStore {
    fn families(&self, _: Wants<'_>, out: &mut Vec<Family>) {
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
    /// When the series was made, in nanoseconds since the Unix epoch: a
    /// series made again is a new one, reset.
    start: u64,
}

/// Every facade metric of one [`ServerWatch`](crate::ServerWatch).
#[derive(Debug)]
pub(crate) struct FacadeStore {
    /// Classic bounds given to the builder, by name.
    buckets: HashMap<String, Vec<f64>>,
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
    pub(crate) fn new(
        buckets: HashMap<String, Vec<f64>>,
        max_series: usize,
        reserved: Vec<String>,
    ) -> Self {
        Self {
            buckets,
            reserved,
            descriptions: papaya::HashMap::new(),
            described: AtomicUsize::new(0),
            names: SeriesSet::new(max_series),
            series: SeriesSet::new(max_series),
            overflow: SeriesSet::new(max_series),
            max: max_series,
            warned: AtomicBool::new(false),
        }
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
            return (series.name.kind == kind).then_some(series);
        }
        let name = self.name(key.name(), kind)?;
        let make = || {
            Arc::new(Series {
                cell: Cell::new(&name),
                name: Arc::clone(&name),
                start: start_now(),
            })
        };
        let mut found = None;
        let admitted = self.series.with(key, make, |s| found = Some(Arc::clone(s)));
        if !admitted {
            let family = name.instrument.prometheus_name.to_owned();
            self.overflow
                .with(&family, make, |s| found = Some(Arc::clone(s)));
        }
        found.filter(|s| s.name.kind == kind)
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
        match self.buckets.get(name) {
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
        if let Cell::Counter(n) = &self.cell {
            n.fetch_add(value, Ordering::Relaxed);
        }
    }

    fn absolute(&self, value: u64) {
        if let Cell::Counter(n) = &self.cell {
            n.fetch_max(value, Ordering::Relaxed);
        }
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
        let (Cell::Histogram(h), Some(bounds)) = (&self.cell, &self.name.bounds) else {
            return;
        };
        if value.is_nan() {
            return;
        }
        let c = &self.name.conversion;
        // Saturating: `as` clamps to 0 ..= u64::MAX.
        let base = (value * c.to_exported / c.resolution).round() as u64;
        h.record(bounds, base);
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
        let reserved = vec!["process_cpu_seconds".to_owned()];
        MetricsRecorder {
            store: Arc::new(FacadeStore::new(HashMap::new(), max_series, reserved)),
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
