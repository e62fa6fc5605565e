//! A lock-free, fixed-bucket histogram of integer observations.
//!
//! Observations are whole base units (nanoseconds, bytes), so the sum is exact
//! and recording is two relaxed atomic additions and an atomic maximum: no
//! lock, no allocation, no floating-point compare-and-swap loop. Readers
//! scale to the exported unit.

use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of a histogram, inclusive, in the exported unit and in the
/// integer base unit that is recorded.
#[derive(Debug)]
pub(crate) struct Bounds {
    /// As exported (seconds, bytes).
    pub(crate) exported: &'static [f64],
    /// Exported unit per base unit (1e-9 for nanoseconds to seconds).
    pub(crate) scale: f64,
    base: Vec<u64>,
}

impl Bounds {
    pub(crate) fn new(exported: &'static [f64], scale: f64) -> Self {
        let base = exported
            .iter()
            .map(|b| (b / scale).round() as u64)
            .collect();
        Self {
            exported,
            scale,
            base,
        }
    }

    fn bucket(&self, value: u64) -> usize {
        // At most 15 bounds: a linear scan beats a binary search here.
        self.base
            .iter()
            .position(|&b| value <= b)
            .unwrap_or(self.base.len())
    }
}

/// The recording side.
#[derive(Debug)]
pub(crate) struct AtomicHistogram {
    /// One per bound, plus the +Inf bucket; not cumulative.
    buckets: Box<[AtomicU64]>,
    sum: AtomicU64,
    /// The largest observation: it caps percentile estimates, which would
    /// otherwise put a 20 µs request's p95 at 4.75 ms (inside 0…5 ms).
    max: AtomicU64,
}

impl AtomicHistogram {
    pub(crate) fn new(bounds: &Bounds) -> Self {
        Self {
            buckets: (0..=bounds.base.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }

    pub(crate) fn record(&self, bounds: &Bounds, value: u64) {
        self.buckets[bounds.bucket(value)].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
        self.max.fetch_max(value, Ordering::Relaxed);
    }

    /// Copies the current state. The count is derived from the buckets, so
    /// it always equals the +Inf bucket.
    pub(crate) fn snapshot(&self, bounds: &Bounds) -> HistogramSnapshot {
        let buckets: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        HistogramSnapshot {
            count: buckets.iter().sum(),
            sum: self.sum.load(Ordering::Relaxed) as f64 * bounds.scale,
            max: self.max.load(Ordering::Relaxed) as f64 * bounds.scale,
            buckets,
        }
    }
}

/// A copy of a histogram, in the exported unit.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct HistogramSnapshot {
    pub(crate) count: u64,
    pub(crate) sum: f64,
    /// The largest observation (0 without any).
    pub(crate) max: f64,
    /// Per-bucket (not cumulative) counts; the last one is +Inf.
    pub(crate) buckets: Vec<u64>,
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
        self.count += other.count;
        self.sum += other.sum;
        self.max = self.max.max(other.max);
    }

    /// What was added since `earlier`, a snapshot of the same histogram.
    #[cfg(any(feature = "dashboard", feature = "otlp"))]
    pub(crate) fn minus(&self, earlier: &HistogramSnapshot) -> HistogramSnapshot {
        let buckets: Vec<u64> = self
            .buckets
            .iter()
            .enumerate()
            .map(|(i, n)| n.saturating_sub(earlier.buckets.get(i).copied().unwrap_or(0)))
            .collect();
        HistogramSnapshot {
            count: buckets.iter().sum(),
            sum: (self.sum - earlier.sum).max(0.0),
            // The largest since the start: still an upper bound for the interval.
            max: self.max,
            buckets,
        }
    }

    /// Estimates a quantile (0..=1) by linear interpolation inside the bucket,
    /// the way PromQL's `histogram_quantile` does, capped by the largest
    /// observation.
    pub(crate) fn quantile(&self, bounds: &[f64], q: f64) -> f64 {
        let estimate = self.interpolate(bounds, q);
        if self.max > 0.0 {
            estimate.min(self.max)
        } else {
            estimate
        }
    }

    fn interpolate(&self, bounds: &[f64], q: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let rank = q * self.count as f64;
        let mut seen = 0u64;
        for (i, &n) in self.buckets.iter().enumerate() {
            if n == 0 || ((seen + n) as f64) < rank {
                seen += n;
                continue;
            }
            let Some(&upper) = bounds.get(i) else {
                // In +Inf: the largest observation, else the highest bound.
                return if self.max > 0.0 {
                    self.max
                } else {
                    bounds.last().copied().unwrap_or(0.0)
                };
            };
            let lower = if i == 0 { 0.0 } else { bounds[i - 1] };
            return lower + (upper - lower) * (rank - seen as f64) / n as f64;
        }
        bounds.last().copied().unwrap_or(0.0)
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
    fn values_land_in_inclusive_upper_bounds() {
        let bounds = Bounds::new(&SECONDS, 1e-9);
        let h = AtomicHistogram::new(&bounds);
        for nanos in [10_000_000, 10_000_001, 2_000_000_000] {
            h.record(&bounds, nanos);
        }
        let s = h.snapshot(&bounds);
        assert_eq!(s.buckets, vec![1, 1, 0, 1]);
        assert_eq!(s.count, 3);
        assert!((s.sum - 2.020000001).abs() < 1e-12);
        assert_eq!(s.max, 2.0);
    }

    #[test]
    fn quantile_interpolates_like_promql() {
        let s = HistogramSnapshot {
            count: 4,
            sum: 0.0,
            max: 0.0,
            buckets: vec![2, 2, 0, 0],
        };
        assert!((s.quantile(&SECONDS, 0.5) - 0.01).abs() < 1e-12);
        assert!((s.quantile(&SECONDS, 0.75) - 0.055).abs() < 1e-12);
        assert_eq!(HistogramSnapshot::default().quantile(&SECONDS, 0.99), 0.0);
        let fast = HistogramSnapshot { max: 0.00002, ..s };
        assert_eq!(
            fast.quantile(&SECONDS, 0.95),
            0.00002,
            "capped by the largest observation"
        );
    }

    #[test]
    fn quantile_in_the_inf_bucket_is_the_largest_observation_or_the_highest_bound() {
        let s = HistogramSnapshot {
            count: 1,
            sum: 30.0,
            max: 0.0,
            buckets: vec![0, 0, 0, 1],
        };
        assert_eq!(s.quantile(&SECONDS, 0.99), 1.0);
        let known = HistogramSnapshot { max: 30.0, ..s };
        assert_eq!(known.quantile(&SECONDS, 0.99), 30.0);
    }
}
