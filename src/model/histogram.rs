//! A lock-free histogram of integer observations: classic buckets with
//! fixed bounds (what Prometheus's `_bucket` series and OTLP's explicit
//! histograms carry, and dashboards built on them expect) and, recorded in
//! the same pass, a base-2 exponential histogram ([`super::exponential`]),
//! which percentiles are computed from.
//!
//! Observations are whole base units (nanoseconds, bytes), so the sum is
//! exact (and saturates rather than wrap); recording is a few relaxed
//! atomic operations, with no lock and no allocation (but for the first
//! observation in a new range of the exponential buckets). Readers scale to
//! the exported unit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::exemplar::{Exemplar, Exemplars, SpanIds};
use super::exponential::{AtomicExponential, ExponentialSnapshot, Layout};

/// The most classic bounds a histogram may have.
pub(crate) const MAX_BOUNDS: usize = 64;

/// Upper bounds of a histogram's classic buckets, inclusive, in the exported
/// unit and in the integer base unit that is recorded.
#[derive(Debug, Clone)]
pub(crate) struct Bounds {
    /// As exported (seconds, bytes).
    exported: Arc<[f64]>,
    /// Exported unit per base unit (1e-9 for nanoseconds to seconds).
    scale: f64,
    base: Vec<u64>,
    layout: Layout,
}

impl Bounds {
    /// Checks `exported` (finite, at least 0, strictly increasing once in
    /// base units, at most [`MAX_BOUNDS`] of them); the error says why not.
    pub(crate) fn new(exported: &[f64], scale: f64) -> Result<Self, String> {
        if exported.is_empty() || exported.len() > MAX_BOUNDS {
            return Err(format!(
                "needs 1 to {MAX_BOUNDS} bounds, got {}",
                exported.len()
            ));
        }
        if let Some(b) = exported.iter().find(|b| !b.is_finite() || **b < 0.0) {
            return Err(format!("bounds must be finite and not negative, got {b}"));
        }
        let base: Vec<u64> = exported
            .iter()
            .map(|b| (b / scale).round() as u64)
            .collect();
        if let Some(w) = base.windows(2).position(|w| w[0] >= w[1]) {
            return Err(format!(
                "bounds must be strictly increasing (and apart by at least the \
                 recorded resolution, {scale:e}), but {} is followed by {}",
                exported[w],
                exported[w + 1]
            ));
        }
        Ok(Self {
            exported: exported.into(),
            scale,
            base,
            layout: Layout::new(scale),
        })
    }

    /// The bounds in the exported unit.
    pub(crate) fn exported(&self) -> &Arc<[f64]> {
        &self.exported
    }

    fn bucket(&self, value: u64) -> usize {
        if self.base.len() <= 16 {
            // A few bounds: a linear scan beats a binary search.
            self.base
                .iter()
                .position(|&b| value <= b)
                .unwrap_or(self.base.len())
        } else {
            self.base.partition_point(|&b| b < value)
        }
    }
}

/// The recording side.
#[derive(Debug)]
pub(crate) struct AtomicHistogram {
    /// One per bound, plus the +Inf bucket; not cumulative.
    buckets: Box<[AtomicU64]>,
    sum: AtomicU64,
    /// The smallest observation (`u64::MAX` without any).
    min: AtomicU64,
    /// The largest observation.
    max: AtomicU64,
    exponential: AtomicExponential,
    /// The last traced observation of each classic bucket.
    exemplars: Exemplars,
}

impl AtomicHistogram {
    pub(crate) fn new(bounds: &Bounds) -> Self {
        Self {
            buckets: (0..=bounds.base.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            min: AtomicU64::new(u64::MAX),
            max: AtomicU64::new(0),
            exponential: AtomicExponential::new(),
            exemplars: Exemplars::new(bounds.base.len() + 1),
        }
    }

    /// [`record`](Self::record), keeping the observation as its bucket's
    /// exemplar when it was made inside a sampled trace.
    pub(crate) fn record_traced(&self, bounds: &Bounds, value: u64, span: Option<SpanIds>) {
        let bucket = bounds.bucket(value);
        self.record_in(bounds, bucket, value);
        if let Some(span) = span {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
            self.exemplars.store(bucket, span, value, now);
        }
    }

    pub(crate) fn record(&self, bounds: &Bounds, value: u64) {
        self.record_in(bounds, bounds.bucket(value), value);
    }

    fn record_in(&self, bounds: &Bounds, bucket: usize, value: u64) {
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        // Saturates: a sum that wrapped would fall, which Prometheus reads
        // as a counter reset. Uncontended, the update is one exchange.
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |sum| {
                Some(sum.saturating_add(value))
            });
        // A plain load first: an extreme rarely moves, and a read costs
        // less than a locked read-modify-write.
        if value > self.max.load(Ordering::Relaxed) {
            self.max.fetch_max(value, Ordering::Relaxed);
        }
        if value < self.min.load(Ordering::Relaxed) {
            self.min.fetch_min(value, Ordering::Relaxed);
        }
        // Last, with Release: a snapshot that sees it sees the rest.
        self.exponential.record(&bounds.layout, value);
    }

    /// Copies the current state. The exponential buckets are read first
    /// (with Acquire) and the classic ones after, so that the count, taken
    /// from the classic buckets, is never below the exponential total.
    pub(crate) fn snapshot(&self, bounds: &Bounds) -> HistogramSnapshot {
        let exponential = self.exponential.snapshot(&bounds.layout);
        let buckets: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let count = buckets.iter().sum();
        let in_unit = |v: u64| v as f64 * bounds.scale;
        let (min, max) = match count {
            0 => (None, None),
            _ => (
                Some(in_unit(self.min.load(Ordering::Relaxed))),
                Some(in_unit(self.max.load(Ordering::Relaxed))),
            ),
        };
        HistogramSnapshot {
            count,
            sum: in_unit(self.sum.load(Ordering::Relaxed)),
            min,
            max,
            buckets,
            exponential,
            exemplars: self.exemplars.snapshot(bounds.scale),
        }
    }
}

/// A copy of a histogram, in the exported unit.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct HistogramSnapshot {
    pub(crate) count: u64,
    pub(crate) sum: f64,
    /// The smallest and largest observation, where known: not for an
    /// interval ([`minus`](Self::minus)), whose extremes nothing recorded.
    pub(crate) min: Option<f64>,
    pub(crate) max: Option<f64>,
    /// Per-bucket (not cumulative) counts; the last one is +Inf.
    pub(crate) buckets: Vec<u64>,
    pub(crate) exponential: ExponentialSnapshot,
    /// Per classic bucket, its exemplar if it has one; empty when no
    /// bucket ever had one.
    pub(crate) exemplars: Vec<Option<Exemplar>>,
}

impl HistogramSnapshot {
    /// Adds another snapshot of the same bounds into this one.
    pub(crate) fn merge(&mut self, other: &HistogramSnapshot) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; other.buckets.len()];
        }
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        let extreme = |a: Option<f64>, b: Option<f64>, pick: fn(f64, f64) -> f64| match (a, b) {
            (Some(a), Some(b)) => Some(pick(a, b)),
            (a, b) => a.or(b),
        };
        self.min = extreme(self.min, other.min, f64::min);
        self.max = extreme(self.max, other.max, f64::max);
        self.count += other.count;
        self.sum += other.sum;
        self.exponential.merge(&other.exponential);
    }

    /// What was added since `earlier`, a snapshot of the same histogram.
    #[cfg_attr(
        not(any(feature = "dashboard", feature = "otlp")),
        allow(dead_code, reason = "intervals are for the dashboard and OTLP deltas")
    )]
    pub(crate) fn minus(&self, earlier: &HistogramSnapshot) -> HistogramSnapshot {
        let buckets: Vec<u64> = self
            .buckets
            .iter()
            .enumerate()
            .map(|(i, n)| n.saturating_sub(earlier.buckets.get(i).copied().unwrap_or(0)))
            .collect();
        // An exemplar belongs to the interval only if its bucket grew.
        let exemplars = self
            .exemplars
            .iter()
            .zip(&buckets)
            .map(|(e, &n)| e.filter(|_| n > 0))
            .collect();
        HistogramSnapshot {
            count: buckets.iter().sum(),
            sum: (self.sum - earlier.sum).max(0.0),
            min: None,
            max: None,
            buckets,
            exponential: self.exponential.minus(&earlier.exponential),
            exemplars,
        }
    }

    /// Estimates a quantile (0..=1) from the exponential buckets: within
    /// 2.2 % of the observation of that rank, and exact at the extremes
    /// when they are known.
    pub(crate) fn quantile(&self, q: f64) -> f64 {
        self.exponential.quantile(q, self.min, self.max)
    }

    /// The mean observation, 0 when there were none.
    pub(crate) fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum / self.count as f64
        }
    }
}

/// A group of series added up: their merged distribution, and how many of
/// its observations were failures.
#[derive(Debug, Clone, Default)]
pub(crate) struct Totals {
    pub(crate) duration: HistogramSnapshot,
    pub(crate) errors: u64,
}

impl Totals {
    /// Adds one series; all its observations are failures if `failed`.
    pub(crate) fn add(&mut self, h: &HistogramSnapshot, failed: bool) {
        self.duration.merge(h);
        if failed {
            self.errors += h.count;
        }
    }

    /// How many observations there were.
    pub(crate) fn requests(&self) -> u64 {
        self.duration.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECONDS: [f64; 3] = [0.01, 0.1, 1.0];

    #[test]
    fn the_sum_saturates_and_never_falls() {
        let bounds = Bounds::new(&[1.0], 1.0).unwrap();
        let h = AtomicHistogram::new(&bounds);
        h.record(&bounds, u64::MAX - 5);
        h.record(&bounds, 10);
        h.record(&bounds, 1);
        let s = h.snapshot(&bounds);
        assert_eq!(s.count, 3);
        assert_eq!(s.sum, u64::MAX as f64);
    }

    #[test]
    fn values_land_in_inclusive_upper_bounds() {
        let bounds = Bounds::new(&SECONDS, 1e-9).unwrap();
        let h = AtomicHistogram::new(&bounds);
        for nanos in [10_000_000, 10_000_001, 2_000_000_000] {
            h.record(&bounds, nanos);
        }
        let s = h.snapshot(&bounds);
        assert_eq!(s.buckets, vec![1, 1, 0, 1]);
        assert_eq!(s.count, 3);
        assert_eq!(s.exponential.count(), 3);
        assert!((s.sum - 2.020000001).abs() < 1e-12);
        assert_eq!((s.min, s.max), (Some(0.01), Some(2.0)));
    }

    #[test]
    fn many_bounds_are_searched_alike() {
        let many: Vec<f64> = (1..=40).map(|i| f64::from(i) * 0.001).collect();
        let bounds = Bounds::new(&many, 1e-9).unwrap();
        for (nanos, bucket) in [
            (0, 0),
            (1_000_000, 0),
            (1_000_001, 1),
            (40_000_000, 39),
            (u64::MAX, 40),
        ] {
            assert_eq!(bounds.bucket(nanos), bucket, "{nanos}");
        }
    }

    #[test]
    fn bad_bounds_say_why() {
        assert!(Bounds::new(&[], 1.0).unwrap_err().contains("1 to 64"));
        assert!(
            Bounds::new(&[1.0, f64::NAN], 1.0)
                .unwrap_err()
                .contains("finite")
        );
        assert!(Bounds::new(&[-1.0], 1.0).unwrap_err().contains("negative"));
        assert!(
            Bounds::new(&[2.0, 1.0], 1.0)
                .unwrap_err()
                .contains("increasing")
        );
        let err = Bounds::new(&[1e-10, 2e-10], 1e-9).unwrap_err();
        assert!(err.contains("resolution"), "{err}");
    }

    #[test]
    fn an_interval_forgets_the_lifetime_extremes() {
        let bounds = Bounds::new(&SECONDS, 1e-9).unwrap();
        let h = AtomicHistogram::new(&bounds);
        h.record(&bounds, 5_000_000_000);
        let before = h.snapshot(&bounds);
        h.record(&bounds, 1_000);
        let interval = h.snapshot(&bounds).minus(&before);
        assert_eq!(
            (interval.count, interval.min, interval.max),
            (1, None, None)
        );
        let p99 = interval.quantile(0.99);
        assert!(
            (p99 - 1e-6).abs() / 1e-6 < 0.022,
            "{p99}: not the 5 s of before"
        );
    }
}
