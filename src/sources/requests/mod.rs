//! Where requests are recorded: one set of atomic histograms per label set,
//! found without locking or allocating, and a bounded list of recent errors.
//!
//! The layer ([`crate::record`]) writes here; every exporter reads either the
//! metric families ([`RequestStore::families`]) or the summary
//! ([`RequestStore::summary`]); nothing else holds request numbers.

mod families;
mod health;
mod labelling;
mod labels;
mod summary;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::SystemTime;

use parking_lot::Mutex;

pub(crate) use labelling::{LabelSetId, LabelSettings, Labelling, NO_LABELS, OVERFLOW_LABELS};
pub use labelling::{RequestHead, ResponseHead};
pub(crate) use labels::{ErrorKind, Method, OverflowKey, SeriesKey, UNMATCHED_ROUTE, status_key};

use crate::model::exemplar::{ExemplarFilter, SpanIds};
use crate::model::family::start_now;
use crate::model::histogram::{AtomicHistogram, Bounds, HistogramSnapshot};
use crate::model::instruments::{BODY_SIZE_BOUNDS_BYTES, DURATION_BOUNDS_SECONDS};

/// The classic bounds of the three histograms of a label set.
#[derive(Debug, Clone)]
pub(crate) struct RequestBounds {
    pub(crate) duration: Bounds,
    pub(crate) request_size: Bounds,
    pub(crate) response_size: Bounds,
}

impl RequestBounds {
    /// Nanoseconds are recorded and seconds exported; bytes are both.
    pub(crate) const DURATION_UNIT: f64 = 1e-9;
    pub(crate) const SIZE_UNIT: f64 = 1.0;
}

impl Default for RequestBounds {
    /// The semantic conventions' bounds for durations, powers of four for
    /// sizes.
    fn default() -> Self {
        let duration = Bounds::new(&DURATION_BOUNDS_SECONDS, Self::DURATION_UNIT);
        let size = Bounds::new(&BODY_SIZE_BOUNDS_BYTES, Self::SIZE_UNIT);
        let size = size.expect("the default size bounds are valid");
        Self {
            duration: duration.expect("the default duration bounds are valid"),
            request_size: size.clone(),
            response_size: size,
        }
    }
}
use crate::model::series::SeriesSet;

/// Longest error message kept in the recent-errors list, in bytes.
const MAX_ERROR_MESSAGE: usize = 256;
/// What the recent-errors list says of a panic whose message is not shown.
pub(crate) const HIDDEN_PANIC_MESSAGE: &str = "the handler panicked (its message is shown only \
     when a bearer_token protects the observability routes, or with panic_messages(true))";

/// The instruments of one label set.
#[derive(Debug)]
struct Series {
    /// Its first observation, in nanoseconds since the Unix epoch: a
    /// series is made by the first request of its label set.
    start: u64,
    duration: AtomicHistogram,
    request_size: AtomicHistogram,
    response_size: AtomicHistogram,
}

/// What one finished request contributes.
#[derive(Debug)]
pub(crate) struct Observation<'a> {
    pub(crate) key: SeriesKey<&'a str>,
    pub(crate) duration_nanos: u64,
    pub(crate) request_bytes: u64,
    pub(crate) response_bytes: u64,
    /// Message for the recent-errors list (only read for errors).
    pub(crate) message: Option<&'a str>,
    /// The sampled trace the request was handled in, if any: the
    /// duration's exemplar.
    pub(crate) span: Option<SpanIds>,
}

/// Whose numbers a [`SeriesSnapshot`] holds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum SeriesLabels {
    Series(SeriesKey),
    /// Label sets past the cap, with the error they keep.
    Overflow(OverflowKey),
}

impl SeriesLabels {
    pub(crate) fn failed(&self) -> bool {
        match self {
            SeriesLabels::Series(key) => key.error.is_some(),
            SeriesLabels::Overflow(key) => key.error.is_some(),
        }
    }
}

/// A copy of one series, in exported units.
#[derive(Debug, Clone)]
pub(crate) struct SeriesSnapshot {
    pub(crate) labels: SeriesLabels,
    /// Its first observation, in nanoseconds since the Unix epoch.
    pub(crate) start: u64,
    pub(crate) duration: HistogramSnapshot,
    pub(crate) request_size: HistogramSnapshot,
    pub(crate) response_size: HistogramSnapshot,
}

/// One entry of the recent-errors list.
#[derive(Debug, Clone)]
pub(crate) struct RecentError {
    pub(crate) time: SystemTime,
    pub(crate) method: Method,
    pub(crate) route: String,
    /// `None` when no answer was sent.
    pub(crate) status: Option<http::StatusCode>,
    pub(crate) error: ErrorKind,
    pub(crate) message: String,
}

/// The request metrics of one [`ServerWatch`](crate::ServerWatch).
#[derive(Debug)]
pub(crate) struct RequestStore {
    bounds: RequestBounds,
    series: SeriesSet<SeriesKey, Series>,
    /// Past the cap: one series per error kept, from a closed set.
    overflow: SeriesSet<OverflowKey, Series>,
    active: [AtomicI64; Method::ALL.len()],
    recent_errors: Mutex<VecDeque<RecentError>>,
    recent_errors_capacity: usize,
    /// Whether the recent errors keep a panic's message.
    panic_messages: bool,
    /// Route templates that are not recorded.
    skipped: Box<[Box<str>]>,
    /// Which requests may leave an exemplar.
    exemplar_filter: ExemplarFilter,
    labelling: Labelling,
    /// Whether the labelling folds routes or statuses.
    folds: bool,
}

impl RequestStore {
    /// A store of at most `max_series` label sets, with `bounds`, that lists
    /// the last `recent_errors_capacity` errors, with their panic messages
    /// if `panic_messages` (they often hold request data).
    pub(crate) fn new(
        max_series: usize,
        recent_errors_capacity: usize,
        bounds: RequestBounds,
        panic_messages: bool,
    ) -> Self {
        Self {
            series: SeriesSet::new(max_series),
            overflow: SeriesSet::new(OverflowKey::MAX),
            bounds,
            active: Default::default(),
            recent_errors: Mutex::new(VecDeque::with_capacity(recent_errors_capacity)),
            recent_errors_capacity,
            panic_messages,
            skipped: Box::default(),
            exemplar_filter: ExemplarFilter::default(),
            labelling: Labelling::default(),
            folds: false,
        }
    }

    /// The same store, keeping exemplars of the requests `filter` admits.
    pub(crate) fn with_exemplar_filter(mut self, filter: ExemplarFilter) -> Self {
        self.exemplar_filter = filter;
        self
    }

    /// Which requests may leave an exemplar.
    pub(crate) fn exemplar_filter(&self) -> ExemplarFilter {
        self.exemplar_filter
    }

    /// The same store, with the app's labels, groups and status classes.
    pub(crate) fn labelled(mut self, labelling: Labelling) -> Self {
        self.folds = labelling.folds();
        self.labelling = labelling;
        self
    }

    /// The app's labels, groups and status classes.
    pub(crate) fn labelling(&self) -> &Labelling {
        &self.labelling
    }

    /// The same store, recording nothing of the routes whose templates are
    /// in `routes`.
    pub(crate) fn skipping(mut self, routes: Vec<String>) -> Self {
        self.skipped = routes.into_iter().map(String::into_boxed_str).collect();
        self
    }

    /// Whether requests to `route` (a template) are not recorded: a few
    /// string comparisons, none without skipped routes.
    pub(crate) fn skips(&self, route: &str) -> bool {
        self.skipped.iter().any(|s| **s == *route)
    }

    /// A request started.
    pub(crate) fn start(&self, method: Method) {
        self.active[method as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// A request ended, with or without a response (the client may be gone).
    pub(crate) fn end(&self, method: Method) {
        self.active[method as usize].fetch_sub(1, Ordering::Relaxed);
    }

    /// Records a finished request.
    pub(crate) fn record(&self, observation: &Observation<'_>) {
        let given = &observation.key;
        let folded;
        let key = if self.folds {
            folded = SeriesKey {
                route: self.labelling.route(given.route),
                status: self.labelling.status(given.status, given.error),
                ..*given
            };
            &folded
        } else {
            given
        };
        let make = || Series::new(&self.bounds);
        let record = |series: &Series| series.record(self, observation);
        if key.labels == OVERFLOW_LABELS || !self.series.with(key, make, record) {
            self.overflow.with(&key.overflow(), make, record);
        }
        if key.error.is_some() && self.recent_errors_capacity > 0 {
            self.push_error(observation, key.route);
        }
    }

    /// Lists a failed request, under the `route` it is recorded under.
    fn push_error(&self, observation: &Observation<'_>, route: &str) {
        let key = &observation.key;
        let message = match (observation.message, key.error) {
            (Some(_), Some(ErrorKind::Panic)) if !self.panic_messages => {
                HIDDEN_PANIC_MESSAGE.to_owned()
            }
            (Some(m), _) => truncate(m, MAX_ERROR_MESSAGE).to_owned(),
            (None, Some(ErrorKind::Aborted)) => {
                "no answer: the request ended before one was sent (the client left)".to_owned()
            }
            (None, Some(ErrorKind::BodyError)) => {
                "the response body failed after the status was sent: the answer was cut short"
                    .to_owned()
            }
            (None, _) => (key.status)
                .and_then(|s| s.canonical_reason())
                .unwrap_or("server error")
                .to_owned(),
        };
        let entry = RecentError {
            time: SystemTime::now(),
            method: key.method,
            route: route.to_owned(),
            status: key.status,
            error: key.error.unwrap_or(ErrorKind::ServerError),
            message,
        };
        let mut errors = self.recent_errors.lock();
        if errors.len() == self.recent_errors_capacity {
            errors.pop_back();
        }
        errors.push_front(entry);
    }

    /// Requests in flight, per method.
    fn active(&self) -> impl Iterator<Item = (Method, i64)> + '_ {
        Method::ALL
            .iter()
            .map(|&m| (m, self.active[m as usize].load(Ordering::Relaxed)))
    }

    /// Copies every series, sorted by labels; the overflow series come last,
    /// once they have been used.
    fn snapshot(&self) -> Vec<SeriesSnapshot> {
        let mut out = self
            .series
            .collect(|key, series| series.snapshot(self, SeriesLabels::Series(key.clone())));
        out.extend(
            self.overflow
                .collect(|key, series| series.snapshot(self, SeriesLabels::Overflow(*key))),
        );
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }

    /// The recent errors, newest first.
    fn recent_errors(&self) -> Vec<RecentError> {
        self.recent_errors.lock().iter().cloned().collect()
    }
}

impl Series {
    fn new(bounds: &RequestBounds) -> Self {
        Self {
            start: start_now(),
            duration: AtomicHistogram::new(&bounds.duration),
            request_size: AtomicHistogram::new(&bounds.request_size),
            response_size: AtomicHistogram::new(&bounds.response_size),
        }
    }

    fn record(&self, store: &RequestStore, o: &Observation<'_>) {
        let bounds = &store.bounds;
        self.duration
            .record_traced(&bounds.duration, o.duration_nanos, o.span);
        self.request_size
            .record(&bounds.request_size, o.request_bytes);
        self.response_size
            .record(&bounds.response_size, o.response_bytes);
    }

    fn snapshot(&self, store: &RequestStore, labels: SeriesLabels) -> SeriesSnapshot {
        SeriesSnapshot {
            labels,
            start: self.start,
            duration: self.duration.snapshot(&store.bounds.duration),
            request_size: self.request_size.snapshot(&store.bounds.request_size),
            response_size: self.response_size.snapshot(&store.bounds.response_size),
        }
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn observation(route: &str, status: u16, millis: u64) -> Observation<'_> {
        Observation {
            key: SeriesKey {
                method: Method::Get,
                route,
                status: http::StatusCode::from_u16(status).ok(),
                error: (status >= 500).then_some(ErrorKind::ServerError),
                labels: NO_LABELS,
            },
            duration_nanos: millis * 1_000_000,
            request_bytes: 0,
            response_bytes: 10,
            message: None,
            span: None,
        }
    }

    #[test]
    fn label_sets_past_the_cap_go_to_the_overflow_and_keep_their_errors() {
        let store = RequestStore::new(2, 10, RequestBounds::default(), true);
        for route in ["/a", "/b", "/c", "/d", "/a"] {
            store.record(&observation(route, 200, 1));
        }
        store.record(&observation("/e", 503, 1));
        let snapshot = store.snapshot();
        assert_eq!(snapshot.len(), 4);
        assert_eq!(snapshot[0].duration.count, 2, "/a keeps its series");
        let ok = &snapshot[2];
        assert!(matches!(ok.labels, SeriesLabels::Overflow(k) if k.error.is_none()));
        assert_eq!(ok.duration.count, 2);
        let failed = &snapshot[3];
        assert!(failed.labels.failed());
        assert_eq!(failed.duration.count, 1);
    }

    #[test]
    fn recent_errors_are_bounded_and_newest_first() {
        let store = RequestStore::new(100, 3, RequestBounds::default(), true);
        for status in 500..505 {
            store.record(&observation("/x", status, 1));
        }
        store.record(&observation("/x", 200, 1));
        let errors = store.recent_errors();
        let statuses: Vec<u16> = errors
            .iter()
            .filter_map(|e| Some(e.status?.as_u16()))
            .collect();
        assert_eq!(statuses, vec![504, 503, 502]);
        assert_eq!(errors[0].message, "Gateway Timeout");
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let long = "é".repeat(300);
        let cut = truncate(&long, MAX_ERROR_MESSAGE);
        assert!(cut.len() <= MAX_ERROR_MESSAGE);
        assert!(cut.chars().all(|c| c == 'é'));
    }
}
