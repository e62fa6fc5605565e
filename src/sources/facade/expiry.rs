//! Series expiry ([`Builder::metrics_idle_timeout`](crate::Builder::metrics_idle_timeout)):
//! a counter or histogram series that has seen no update for the idle
//! timeout is dropped at a reading, so that label sets that come and go
//! (a user id, a job id) leave the store rather than pile up in it. One
//! updated again is a new series: a counter starts again from 0, which
//! Prometheus and OTLP read as a reset, never as a fall.
//!
//! Gauges never expire: a gauge's last value stays true until it is set
//! again (a pool size set once at start-up is still the pool size hours
//! later), so dropping it would turn a true figure into a missing one.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use metrics::Key;
use parking_lot::Mutex;

use super::FacadeStore;

/// The bit of a stamp that marks its series expired.
const EXPIRED: u64 = 1 << 63;

/// The store's readings, numbered. An update stamps its series with the
/// current number, so that recording reads no clock; each reading starts
/// the next number and notes when.
#[derive(Debug)]
pub(super) struct Readings {
    idle: Duration,
    current: AtomicU64,
    /// When each reading started whose number a live stamp may still hold,
    /// the oldest first.
    starts: Mutex<VecDeque<(u64, Instant)>>,
}

impl Readings {
    pub(super) fn new(idle: Duration) -> Self {
        Self {
            idle,
            current: AtomicU64::new(0),
            starts: Mutex::new(VecDeque::from([(0, Instant::now())])),
        }
    }

    /// Starts the next reading; gives the number below which a stamp is
    /// idle. A series stamped `n` was last updated before reading `n + 1`
    /// started, so it is idle once that start is `idle` old: a series goes
    /// between one and two reading intervals past the timeout.
    pub(super) fn advance(&self, now: Instant) -> u64 {
        let mut starts = self.starts.lock();
        let next = self.current.fetch_add(1, Ordering::AcqRel) + 1;
        starts.push_back((next, now));
        while starts.len() > 1 && now.duration_since(starts[1].1) >= self.idle {
            starts.pop_front();
        }
        starts[0].0
    }
}

/// What a series that may expire keeps: its stamp, and how to find the
/// series that takes its place once it has expired.
#[derive(Debug)]
pub(super) struct Expiry {
    readings: Arc<Readings>,
    /// The number of the reading of its last update; [`EXPIRED`] once
    /// expired.
    stamp: AtomicU64,
    key: Key,
    store: Weak<FacadeStore>,
}

impl Expiry {
    pub(super) fn new(readings: &Arc<Readings>, key: Key, store: Weak<FacadeStore>) -> Self {
        Self {
            stamp: AtomicU64::new(readings.current.load(Ordering::Acquire)),
            readings: Arc::clone(readings),
            key,
            store,
        }
    }

    /// Notes an update: false once the series has expired, when the update
    /// belongs to the series that took its place.
    pub(super) fn touch(&self) -> bool {
        let now = self.readings.current.load(Ordering::Acquire);
        // Most updates fall in the reading of the one before: no write.
        now == self.stamp.load(Ordering::Acquire)
            || self
                .stamp
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                    (s & EXPIRED == 0).then_some(now)
                })
                .is_ok()
    }

    /// Marks the series expired if its last update came before reading
    /// `idle_below`; true if it is expired. An update and the expiry race
    /// on the one stamp: an update that wins keeps the series, one that
    /// loses goes to the new series.
    pub(super) fn expire(&self, idle_below: u64) -> bool {
        self.stamp
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                (s & EXPIRED == 0 && s < idle_below).then_some(s | EXPIRED)
            })
            .map_or_else(|s| s & EXPIRED != 0, |_| true)
    }

    pub(super) fn expired(&self) -> bool {
        self.stamp.load(Ordering::Acquire) & EXPIRED != 0
    }

    /// The series that takes this one's place (made now if need be).
    pub(super) fn successor(
        &self,
        kind: crate::model::instruments::Kind,
    ) -> Option<Arc<super::Series>> {
        self.store.upgrade()?.series(&self.key, kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_is_idle_once_the_next_reading_is_the_timeout_old() {
        let readings = Readings::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let at = |s| t0 + Duration::from_secs(s);
        assert_eq!(readings.advance(at(1)), 0);
        assert_eq!(readings.advance(at(60)), 0);
        // Reading 1 started 60 s before: what reading 0 stamped is idle.
        assert_eq!(readings.advance(at(61)), 1);
        // Readings 2 and 3 started less than 60 s before.
        assert_eq!(readings.advance(at(119)), 1);
        assert_eq!(readings.advance(at(200)), 4);
    }
}
