//! A base-2 exponential histogram: OpenTelemetry's `ExponentialHistogram`
//! and Prometheus's native histogram, kept beside the classic buckets of
//! every histogram so that percentiles are true at every scale.
//!
//! Observations are recorded at [`SCALE`] 4: bucket `i` holds the values in
//! `(2^(i/16), 2^((i+1)/16)]` of the exported unit (seconds, bytes), 16
//! buckets per doubling, so a bucket is 4.4 % wide and the estimate at its
//! middle is within [`RELATIVE_ERROR`] (2.2 %) of any value in it. A bucket
//! index is found from the bits of the value's `f64` (no logarithm), and
//! recording is one relaxed atomic addition. Buckets are allocated 32 at a
//! time (two doublings) on first use, so memory grows with the range of
//! values actually seen: at most [`MAX_BYTES`] per histogram (every
//! doubling from 1 ns to 584 years, or from 1 byte to 16 EiB), typically
//! under 2 KB.
//!
//! Readers take a [`ExponentialSnapshot`], which can be merged, subtracted
//! and downscaled exactly, and fitted to the bucket limit that exporters
//! use ([`MAX_EXPORTED_BUCKETS`], OpenTelemetry's default).

use std::sync::atomic::{AtomicU64, Ordering};

use once_cell::race::OnceBox;

/// The scale observations are recorded at: 2^4 buckets per doubling.
pub(crate) const SCALE: i32 = 4;
/// Buckets per doubling at [`SCALE`].
const PER_OCTAVE: i32 = 1 << SCALE;
/// The largest relative error of a bucket's estimate at [`SCALE`]:
/// `(b - 1) / (b + 1)` with `b = 2^(1/16)`.
#[cfg_attr(not(test), allow(dead_code, reason = "documents the bound; tested"))]
pub(crate) const RELATIVE_ERROR: f64 = 0.021_657_462_326_226_25;
/// The most buckets an exported histogram has; past it, the histogram is
/// downscaled (OpenTelemetry's default `MaxSize`).
pub(crate) const MAX_EXPORTED_BUCKETS: usize = 160;
/// Buckets allocated together.
const CHUNK: usize = 32;
/// Chunks per histogram: enough for every positive `u64` in base units,
/// whether the unit is a nanosecond exported in seconds or a byte.
const CHUNKS: usize = 33;
/// The memory of one histogram with every chunk allocated, in bytes (and
/// the allocator's header of each chunk).
pub(crate) const MAX_BYTES: usize =
    std::mem::size_of::<AtomicExponential>() + CHUNKS * std::mem::size_of::<Chunk>();
const _: () = assert!(MAX_BYTES <= 9 * 1024, "the documented bound");

/// `floor((2^(k/16) - 1) · 2^52)` for k = 1..=15: where the `f64` mantissa
/// crosses the bucket boundaries inside one doubling. (Exact integers: the
/// unit test checks them against `powf`.)
const MANTISSA_BOUNDARIES: [u64; 15] = [
    0x0b5586cf9890f,
    0x172b83c7d517a,
    0x2387a6e756238,
    0x306fe0a31b715,
    0x3dea64c123422,
    0x4bfdad5362a27,
    0x5ab07dd485429,
    0x6a09e667f3bcc,
    0x7a11473eb0186,
    0x8ace5422aa0db,
    0x9c49182a3f090,
    0xae89f995ad3ad,
    0xc199bdd85529c,
    0xd5818dcfba487,
    0xea4afa2a490d9,
];

/// The bucket index of a positive, normal `x` at [`SCALE`]: the `i` with
/// `2^(i/16) < x <= 2^((i+1)/16)`.
fn index(x: f64) -> i32 {
    let bits = x.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i32 - 1023;
    let mantissa = bits & ((1 << 52) - 1);
    if mantissa == 0 {
        // An exact power of two is the upper bound of the bucket below.
        return exponent * PER_OCTAVE - 1;
    }
    // The top four bits of the mantissa count the boundaries below it or
    // one or two fewer: `2^x - 1 <= x` puts boundary k at or below k/16 of
    // the doubling, and never more than 1.4 buckets below. The boundaries
    // are irrational, so no mantissa equals one: a strict comparison with
    // their floor is exact.
    let mut above = (mantissa >> 48) as usize;
    while above < MANTISSA_BOUNDARIES.len() && mantissa > MANTISSA_BOUNDARIES[above] {
        above += 1;
    }
    exponent * PER_OCTAVE + above as i32
}

/// The lower and upper bound of bucket `i` at `scale`.
fn bounds(i: i32, scale: i32) -> (f64, f64) {
    let width = (-f64::from(scale)).exp2();
    (
        (f64::from(i) * width).exp2(),
        (f64::from(i + 1) * width).exp2(),
    )
}

/// Where the buckets of one unit lie: base units (nanoseconds, bytes) are
/// recorded, exported units (seconds, bytes) are bucketed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    /// Exported unit per base unit.
    unit: f64,
    /// The index of one base unit, the smallest positive observation.
    first: i32,
}

impl Layout {
    pub(crate) fn new(unit: f64) -> Self {
        let layout = Self {
            unit,
            first: index(unit),
        };
        debug_assert!(layout.slot(u64::MAX) < CHUNK * CHUNKS);
        layout
    }

    /// The slot of a positive observation in base units.
    fn slot(&self, value: u64) -> usize {
        (index(value as f64 * self.unit) - self.first) as usize
    }
}

type Chunk = [AtomicU64; CHUNK];

/// The recording side.
#[derive(Debug)]
pub(crate) struct AtomicExponential {
    /// Observations of exactly 0.
    zero: AtomicU64,
    /// Allocated on first use; racing first uses each allocate, one wins
    /// and the others free theirs (no lock).
    chunks: [OnceBox<Chunk>; CHUNKS],
}

impl AtomicExponential {
    pub(crate) fn new() -> Self {
        Self {
            zero: AtomicU64::new(0),
            chunks: std::array::from_fn(|_| OnceBox::new()),
        }
    }

    /// Adds one observation, in base units. Release: a reader that sees it
    /// (with Acquire) also sees what the same recording wrote before it.
    pub(crate) fn record(&self, layout: &Layout, value: u64) {
        if value == 0 {
            self.zero.fetch_add(1, Ordering::Release);
            return;
        }
        let slot = layout.slot(value);
        self.chunk(slot / CHUNK)[slot % CHUNK].fetch_add(1, Ordering::Release);
    }

    /// The chunk `n`, allocated by the first recording that needs it.
    fn chunk(&self, n: usize) -> &Chunk {
        self.chunks[n].get_or_init(|| Box::new(std::array::from_fn(|_| AtomicU64::new(0))))
    }

    /// Copies the buckets, trimmed to the ones that are not empty.
    pub(crate) fn snapshot(&self, layout: &Layout) -> ExponentialSnapshot {
        let zero = self.zero.load(Ordering::Acquire);
        let mut first = None;
        let mut counts = Vec::new();
        for (n, chunk) in self.chunks.iter().enumerate() {
            let Some(chunk) = chunk.get() else {
                continue;
            };
            for (k, bucket) in chunk.iter().enumerate() {
                let count = bucket.load(Ordering::Acquire);
                if count == 0 && first.is_none() {
                    continue;
                }
                let slot = n * CHUNK + k;
                let start = *first.get_or_insert(slot);
                counts.resize(slot - start, 0);
                counts.push(count);
            }
        }
        while counts.last() == Some(&0) {
            counts.pop();
        }
        ExponentialSnapshot {
            scale: SCALE,
            zero,
            offset: first.map_or(0, |slot| slot as i32 + layout.first),
            counts,
        }
    }
}

/// A copy of an exponential histogram: dense counts from `offset` (bucket
/// index in the OpenTelemetry convention) at `scale`, and the zero bucket.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ExponentialSnapshot {
    pub(crate) scale: i32,
    /// Observations of exactly 0.
    pub(crate) zero: u64,
    /// The index of `counts[0]`.
    pub(crate) offset: i32,
    pub(crate) counts: Vec<u64>,
}

impl ExponentialSnapshot {
    /// Observations, the zero bucket included.
    pub(crate) fn count(&self) -> u64 {
        self.zero + self.counts.iter().sum::<u64>()
    }

    /// The same observations at a scale lower by `by`: each bucket goes into
    /// the one that contains it (indices shifted right, as OpenTelemetry
    /// downscales).
    pub(crate) fn downscaled(&self, by: i32) -> Self {
        if by <= 0 || self.counts.is_empty() {
            return Self {
                scale: self.scale - by.max(0),
                ..self.clone()
            };
        }
        let offset = self.offset >> by;
        let last = (self.offset + self.counts.len() as i32 - 1) >> by;
        let mut counts = vec![0; (last - offset + 1) as usize];
        for (k, &n) in self.counts.iter().enumerate() {
            counts[(((self.offset + k as i32) >> by) - offset) as usize] += n;
        }
        Self {
            scale: self.scale - by,
            zero: self.zero,
            offset,
            counts,
        }
    }

    /// Downscaled as little as needed to hold at most `max` buckets.
    pub(crate) fn fitted(&self, max: usize) -> Self {
        let mut by = 0;
        loop {
            let fitted = self.downscaled(by);
            if fitted.counts.len() <= max {
                return fitted;
            }
            by += 1;
        }
    }

    /// Adds `other` into this one, at the lower of the two scales.
    pub(crate) fn merge(&mut self, other: &Self) {
        if other.counts.is_empty() && other.zero == 0 {
            return;
        }
        if self.counts.is_empty() && self.zero == 0 {
            *self = other.clone();
            return;
        }
        let scale = self.scale.min(other.scale);
        let (a, b) = (
            self.downscaled(self.scale - scale),
            other.downscaled(other.scale - scale),
        );
        *self = a.combined(&b, |x, y| x + y);
    }

    /// What was added since `earlier`, a snapshot of the same histogram.
    #[cfg_attr(
        not(any(feature = "dashboard", feature = "otlp")),
        allow(dead_code, reason = "intervals are for the dashboard and OTLP deltas")
    )]
    pub(crate) fn minus(&self, earlier: &Self) -> Self {
        let scale = self.scale.min(earlier.scale);
        let (a, b) = (
            self.downscaled(self.scale - scale),
            earlier.downscaled(earlier.scale - scale),
        );
        let mut difference = a.combined(&b, u64::saturating_sub);
        difference.zero = a.zero.saturating_sub(b.zero);
        difference.trimmed()
    }

    /// `f` bucket by bucket over the union of both ranges (same scale).
    fn combined(&self, other: &Self, f: impl Fn(u64, u64) -> u64) -> Self {
        let end = |s: &Self| s.offset + s.counts.len() as i32;
        let (start, stop) = match (self.counts.is_empty(), other.counts.is_empty()) {
            (true, true) => (0, 0),
            (true, false) => (other.offset, end(other)),
            (false, true) => (self.offset, end(self)),
            (false, false) => (self.offset.min(other.offset), end(self).max(end(other))),
        };
        let at = |s: &Self, i: i32| {
            usize::try_from(i - s.offset)
                .ok()
                .and_then(|k| s.counts.get(k))
                .copied()
                .unwrap_or(0)
        };
        Self {
            scale: self.scale,
            zero: f(self.zero, other.zero),
            offset: start,
            counts: (start..stop)
                .map(|i| f(at(self, i), at(other, i)))
                .collect(),
        }
    }

    /// Without empty buckets at either end.
    #[cfg_attr(
        not(any(feature = "dashboard", feature = "otlp")),
        allow(dead_code, reason = "used by `minus` only")
    )]
    fn trimmed(mut self) -> Self {
        let leading = self.counts.iter().take_while(|&&n| n == 0).count();
        self.counts.drain(..leading);
        self.offset += leading as i32;
        while self.counts.last() == Some(&0) {
            self.counts.pop();
        }
        if self.counts.is_empty() {
            self.offset = 0;
        }
        self
    }

    /// Estimates the `q` quantile (0..=1), in the exported unit: the
    /// observation of rank `ceil(q · count)`, placed at the point of its
    /// bucket that is nearest, relatively, to every value in it
    /// (`2·lo·hi / (lo + hi)`), then clamped into `[min, max]` when they are
    /// known. 0 without observations.
    pub(crate) fn quantile(&self, q: f64, min: Option<f64>, max: Option<f64>) -> f64 {
        let count = self.count();
        if count == 0 {
            return 0.0;
        }
        let rank = ((q.clamp(0.0, 1.0) * count as f64).ceil() as u64).clamp(1, count);
        if rank <= self.zero {
            return 0.0;
        }
        let mut seen = self.zero;
        let mut estimate = 0.0;
        for (k, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let (lo, hi) = bounds(self.offset + k as i32, self.scale);
                estimate = 2.0 * lo * hi / (lo + hi);
                break;
            }
        }
        if let Some(min) = min {
            estimate = estimate.max(min);
        }
        if let Some(max) = max {
            estimate = estimate.min(max);
        }
        estimate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mantissa_boundaries_are_the_bucket_bounds() {
        for (k, &b) in MANTISSA_BOUNDARIES.iter().enumerate() {
            let bound = ((k + 1) as f64 / 16.0).exp2();
            let below = f64::from_bits((1023 << 52) | b);
            let above = f64::from_bits((1023 << 52) | (b + 1));
            assert!(
                below <= bound && bound <= above,
                "{k}: {below} {bound} {above}"
            );
        }
    }

    #[test]
    fn the_quick_index_counts_every_boundary_below() {
        for &b in &MANTISSA_BOUNDARIES {
            for mantissa in [b.saturating_sub(1), b, b + 1] {
                let x = f64::from_bits((1023 << 52) | mantissa);
                let slow = MANTISSA_BOUNDARIES
                    .iter()
                    .filter(|&&b| mantissa > b)
                    .count();
                assert_eq!(index(x), slow as i32, "{mantissa:#x}");
            }
        }
        for step in 1..1 << 12 {
            let mantissa = step << 40;
            let slow = MANTISSA_BOUNDARIES
                .iter()
                .filter(|&&b| mantissa > b)
                .count();
            assert_eq!(index(f64::from_bits((1023 << 52) | mantissa)), slow as i32);
        }
    }

    #[test]
    fn values_land_in_upper_inclusive_buckets() {
        assert_eq!(index(1.0), -1, "1 = 2^0 is the top of bucket -1");
        assert_eq!(index(1.0001), 0);
        assert_eq!(index(2.0), 15);
        assert_eq!(index(2.0f64.powf(1.0 / 16.0) * 1.000_000_1), 1);
        assert_eq!(index(0.5), -17);
        for i in -600..600 {
            let (lo, hi) = bounds(i, SCALE);
            let mid = (lo * hi).sqrt();
            assert_eq!(index(mid), i, "the middle of bucket {i}");
        }
    }

    #[test]
    fn the_bound_is_the_relative_error_of_a_bucket_s_estimate() {
        let (lo, hi) = bounds(7, SCALE);
        let estimate = 2.0 * lo * hi / (lo + hi);
        assert!(((estimate - lo) / lo - RELATIVE_ERROR).abs() < 1e-12);
        assert!(((hi - estimate) / hi - RELATIVE_ERROR).abs() < 1e-12);
    }

    #[test]
    fn memory_is_bounded() {
        for unit in [1e-9, 1.0] {
            let layout = Layout::new(unit);
            assert!(layout.slot(u64::MAX) < CHUNK * CHUNKS);
            assert_eq!(layout.slot(1), 0);
        }
    }

    /// What the tests record: nanoseconds, exported in seconds.
    const NANOS: f64 = 1e-9;

    fn histogram(values: &[u64]) -> (AtomicExponential, Layout) {
        let layout = Layout::new(NANOS);
        let h = AtomicExponential::new();
        for &v in values {
            h.record(&layout, v);
        }
        (h, layout)
    }

    /// The bound of a bucket's estimate at `scale`.
    fn bound(scale: i32) -> f64 {
        let b = (-f64::from(scale)).exp2().exp2();
        (b - 1.0) / (b + 1.0)
    }

    /// Checks every percentile from 0 to 100 against the observation of
    /// that rank, at the recorded scale and fitted to the export limit.
    fn assert_quantiles_within_bound(values: &[u64]) {
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        let (h, layout) = histogram(values);
        let snapshot = h.snapshot(&layout);
        let min = Some(sorted[0] as f64 * NANOS);
        let max = Some(sorted[sorted.len() - 1] as f64 * NANOS);
        for fitted in [snapshot.clone(), snapshot.fitted(MAX_EXPORTED_BUCKETS)] {
            assert!(fitted.counts.len() <= CHUNK * CHUNKS);
            let bound = bound(fitted.scale) * (1.0 + 1e-9);
            for p in 0..=100 {
                let q = f64::from(p) / 100.0;
                let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
                let truth = sorted[rank - 1] as f64 * NANOS;
                for (estimate, extremes) in [
                    (fitted.quantile(q, min, max), "with"),
                    (fitted.quantile(q, None, None), "without"),
                ] {
                    let error = if truth == 0.0 {
                        estimate
                    } else {
                        (estimate - truth).abs() / truth
                    };
                    assert!(
                        error <= bound,
                        "p{p} at scale {} ({extremes} extremes): {estimate} for {truth}, \
                         error {error} > {bound}",
                        fitted.scale
                    );
                }
            }
        }
    }

    #[test]
    fn adversarial_values_keep_their_quantiles() {
        let decades: Vec<u64> = (0..=12).map(|d| 10u64.pow(d)).collect();
        for values in [
            vec![1],
            vec![1; 1000],
            vec![u64::MAX],
            vec![u64::MAX, 1, u64::MAX],
            vec![0, 0, 0, 5],
            vec![0],
            vec![37_123; 10_000],
            decades,
            (1..=64).map(|e| (1u64 << (e - 1)).max(1)).collect(),
        ] {
            assert_quantiles_within_bound(&values);
        }
    }

    #[test]
    fn exported_histograms_fit_the_limit() {
        // Every doubling of u64: needs a downscale to fit 160 buckets.
        let values: Vec<u64> = (0..64).map(|e| 1u64 << e).collect();
        let (h, layout) = histogram(&values);
        let fitted = h.snapshot(&layout).fitted(MAX_EXPORTED_BUCKETS);
        assert!(fitted.counts.len() <= MAX_EXPORTED_BUCKETS);
        assert!(fitted.scale < SCALE);
        assert_eq!(fitted.count(), 64);
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            failure_persistence: None,
            ..proptest::test_runner::Config::default()
        })]

        #[test]
        fn random_values_keep_their_quantiles(
            values in proptest::collection::vec(
                proptest::prop_oneof![
                    0u64..=1_000,
                    1_000u64..=1_000_000,
                    1_000_000u64..=100_000_000_000,
                    proptest::num::u64::ANY,
                ],
                1..400,
            )
        ) {
            assert_quantiles_within_bound(&values);
        }

        #[test]
        fn differences_and_merges_are_exact(
            a in proptest::collection::vec(proptest::num::u64::ANY, 0..200),
            b in proptest::collection::vec(0u64..10_000_000_000, 0..200),
        ) {
            let layout = Layout::new(NANOS);
            let both = AtomicExponential::new();
            for &v in &a {
                both.record(&layout, v);
            }
            let before = both.snapshot(&layout);
            for &v in &b {
                both.record(&layout, v);
            }
            let after = both.snapshot(&layout);
            let (only_a, _) = histogram(&a);
            let (only_b, _) = histogram(&b);
            let (only_a, only_b) = (only_a.snapshot(&layout), only_b.snapshot(&layout));
            proptest::prop_assert_eq!(after.minus(&before), only_b.clone());
            let mut merged = only_a.clone();
            merged.merge(&only_b);
            proptest::prop_assert_eq!(&merged, &after);
            // Across scales the merge is at the lower one (an empty side
            // has no say), bucket for bucket.
            let mut coarse = only_a.downscaled(2);
            coarse.merge(&only_b);
            let by = coarse.scale - (SCALE - 2);
            proptest::prop_assert_eq!(coarse.downscaled(by), after.downscaled(2));
        }
    }

    #[test]
    fn concurrent_recording_loses_nothing() {
        let layout = Layout::new(NANOS);
        let h = AtomicExponential::new();
        let threads = 8;
        let per_thread = 20_000u64;
        std::thread::scope(|scope| {
            for t in 0..threads {
                let (h, layout) = (&h, &layout);
                scope.spawn(move || {
                    for n in 0..per_thread {
                        // Spread over many fresh chunks, raced for by all.
                        h.record(layout, (n % 64 + 1) << (t * 4 + n % 8));
                    }
                });
            }
        });
        let snapshot = h.snapshot(&layout);
        assert_eq!(snapshot.count(), threads * per_thread);
        let mut serial = AtomicExponential::new();
        for t in 0..threads {
            for n in 0..per_thread {
                serial.record(&layout, (n % 64 + 1) << (t * 4 + n % 8));
            }
        }
        assert_eq!(serial.snapshot(&layout), snapshot);
        serial = AtomicExponential::new();
        assert_eq!(serial.snapshot(&layout).count(), 0);
    }
}
