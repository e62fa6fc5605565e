//! Exemplars: per classic bucket of a histogram, the last observation that
//! was made inside a sampled trace, with its trace and span ids, so that a
//! bucket on a board leads to a trace that landed in it.
//!
//! Each slot is a sequence lock over plain atomics: a writer takes it by
//! moving its sequence from even to odd and gives it back even; a writer
//! that finds it taken gives up (the slot holds a newer exemplar a moment
//! later anyway), and a reader retries until it reads one version whole.
//! No lock, no allocation but the slots' first one.

use std::sync::atomic::{AtomicU64, Ordering, fence};

use once_cell::race::OnceBox;

/// Which requests may leave an exemplar (`OTEL_METRICS_EXEMPLAR_FILTER`), on
/// `/metrics` and over OTLP alike. Exemplars need serverwatch's `exemplars`
/// feature; without it there are none, whatever the filter.
///
/// ```
/// let watch = serverwatch::ServerWatch::builder()
///     .exemplar_filter(serverwatch::ExemplarFilter::AlwaysOff)
///     .build()?;
/// # Ok::<(), serverwatch::BuildError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExemplarFilter {
    /// A request handled inside any span, sampled or not (`always_on`).
    /// One handled outside every span has no trace to lead to, and leaves
    /// none.
    AlwaysOn,
    /// None at all (`always_off`).
    AlwaysOff,
    /// A request handled inside a sampled span (`trace_based`, the default).
    #[default]
    TraceBased,
}

/// The trace and span of an observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SpanIds {
    pub(crate) trace_id: [u8; 16],
    pub(crate) span_id: [u8; 8],
}

/// One exemplar as read, in the exported unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Exemplar {
    pub(crate) ids: SpanIds,
    pub(crate) value: f64,
    /// When it was observed, in nanoseconds since the Unix epoch.
    pub(crate) time_unix_nanos: u64,
}

#[derive(Debug, Default)]
struct Slot {
    /// Even: free and whole; odd: being written; 0: never written.
    sequence: AtomicU64,
    trace_high: AtomicU64,
    trace_low: AtomicU64,
    span: AtomicU64,
    value: AtomicU64,
    time: AtomicU64,
}

/// The exemplar slots of one histogram: one per classic bucket.
#[derive(Debug)]
pub(crate) struct Exemplars {
    buckets: usize,
    slots: OnceBox<Box<[Slot]>>,
}

impl Exemplars {
    /// Slots for `buckets` buckets, allocated with the first exemplar.
    pub(crate) fn new(buckets: usize) -> Self {
        Self {
            buckets,
            slots: OnceBox::new(),
        }
    }

    /// Keeps `ids` as the exemplar of `bucket`, for an observation of
    /// `value` base units at `time_unix_nanos`.
    pub(crate) fn store(&self, bucket: usize, ids: SpanIds, value: u64, time_unix_nanos: u64) {
        let slots = self
            .slots
            .get_or_init(|| Box::new((0..self.buckets).map(|_| Slot::default()).collect()));
        let Some(slot) = slots.get(bucket) else {
            return;
        };
        let sequence = slot.sequence.load(Ordering::Relaxed);
        if sequence % 2 == 1
            || slot
                .sequence
                .compare_exchange(sequence, sequence + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let trace = u128::from_be_bytes(ids.trace_id);
        slot.trace_high
            .store((trace >> 64) as u64, Ordering::Relaxed);
        slot.trace_low.store(trace as u64, Ordering::Relaxed);
        slot.span
            .store(u64::from_be_bytes(ids.span_id), Ordering::Relaxed);
        slot.value.store(value, Ordering::Relaxed);
        slot.time.store(time_unix_nanos, Ordering::Relaxed);
        slot.sequence.store(sequence + 2, Ordering::Release);
    }

    /// The exemplar of every bucket that has one, `unit` converting its
    /// value from base units; empty when none was ever kept.
    pub(crate) fn snapshot(&self, unit: f64) -> Vec<Option<Exemplar>> {
        let Some(slots) = self.slots.get() else {
            return Vec::new();
        };
        slots.iter().map(|slot| read(slot, unit)).collect()
    }
}

/// One whole version of `slot`, or `None` if it was never written.
fn read(slot: &Slot, unit: f64) -> Option<Exemplar> {
    loop {
        let before = slot.sequence.load(Ordering::Acquire);
        if before == 0 {
            return None;
        }
        if before % 2 == 1 {
            std::hint::spin_loop();
            continue;
        }
        let high = slot.trace_high.load(Ordering::Relaxed);
        let low = slot.trace_low.load(Ordering::Relaxed);
        let span = slot.span.load(Ordering::Relaxed);
        let value = slot.value.load(Ordering::Relaxed);
        let time = slot.time.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        if slot.sequence.load(Ordering::Relaxed) == before {
            let trace = (u128::from(high) << 64) | u128::from(low);
            return Some(Exemplar {
                ids: SpanIds {
                    trace_id: trace.to_be_bytes(),
                    span_id: span.to_be_bytes(),
                },
                value: value as f64 * unit,
                time_unix_nanos: time,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u8) -> SpanIds {
        SpanIds {
            trace_id: [n; 16],
            span_id: [n; 8],
        }
    }

    #[test]
    fn each_bucket_keeps_its_last_exemplar() {
        let exemplars = Exemplars::new(3);
        assert!(exemplars.snapshot(1.0).is_empty(), "nothing allocated yet");
        exemplars.store(0, ids(1), 5, 100);
        exemplars.store(0, ids(2), 7, 200);
        exemplars.store(2, ids(3), 9, 300);
        exemplars.store(9, ids(4), 9, 300);
        let read = exemplars.snapshot(0.5);
        assert_eq!(read.len(), 3);
        assert_eq!(
            read[0],
            Some(Exemplar {
                ids: ids(2),
                value: 3.5,
                time_unix_nanos: 200
            })
        );
        assert_eq!(read[1], None);
        assert_eq!(read[2].map(|e| e.ids), Some(ids(3)));
    }

    #[test]
    fn a_reader_never_sees_half_an_exemplar() {
        let exemplars = Exemplars::new(1);
        std::thread::scope(|scope| {
            for t in 1..=4u8 {
                let exemplars = &exemplars;
                scope.spawn(move || {
                    for _ in 0..20_000 {
                        // Every field of one exemplar says the same number.
                        exemplars.store(0, ids(t), u64::from(t), u64::from(t));
                    }
                });
            }
            for _ in 0..20_000 {
                if let Some(e) = exemplars.snapshot(1.0).first().copied().flatten() {
                    let t = e.ids.span_id[0];
                    assert_eq!(e.ids.trace_id, [t; 16]);
                    assert_eq!(e.ids.span_id, [t; 8]);
                    assert_eq!((e.value, e.time_unix_nanos), (f64::from(t), u64::from(t)));
                }
            }
        });
    }
}
