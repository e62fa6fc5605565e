//! Where requests are recorded: one set of atomic histograms per label set,
//! found without locking or allocating, and a bounded list of recent errors.
//!
//! Every view (`/metrics`, `/health`, later OTLP and the dashboard) reads
//! snapshots of this store; nothing else holds request numbers.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::SystemTime;

use hashbrown::Equivalent;

use crate::histogram::{AtomicHistogram, Bounds, HistogramSnapshot};
use crate::instruments::{BODY_SIZE_BOUNDS_BYTES, DURATION_BOUNDS_SECONDS};
use crate::series::{SeriesSet, ToKey};

/// The `http.route` value of requests that matched no route. A raw path
/// never becomes a label value.
pub(crate) const UNMATCHED_ROUTE: &str = "unmatched";

/// Longest error message kept in the recent-errors list, in bytes.
const MAX_ERROR_MESSAGE: usize = 256;

/// HTTP methods as the semantic conventions name them; anything else is
/// `_OTHER`, so a client cannot mint label values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Connect,
    Options,
    Trace,
    Patch,
    Other,
}

impl Method {
    pub(crate) const ALL: [Method; 10] = [
        Method::Get,
        Method::Head,
        Method::Post,
        Method::Put,
        Method::Delete,
        Method::Connect,
        Method::Options,
        Method::Trace,
        Method::Patch,
        Method::Other,
    ];

    pub(crate) fn from_http(method: &http::Method) -> Self {
        match *method {
            http::Method::GET => Method::Get,
            http::Method::HEAD => Method::Head,
            http::Method::POST => Method::Post,
            http::Method::PUT => Method::Put,
            http::Method::DELETE => Method::Delete,
            http::Method::CONNECT => Method::Connect,
            http::Method::OPTIONS => Method::Options,
            http::Method::TRACE => Method::Trace,
            http::Method::PATCH => Method::Patch,
            _ => Method::Other,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Connect => "CONNECT",
            Method::Options => "OPTIONS",
            Method::Trace => "TRACE",
            Method::Patch => "PATCH",
            Method::Other => "_OTHER",
        }
    }
}

/// Why a request counts as an error (`error.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum ErrorKind {
    /// The handler answered with a 5xx status; `error.type` is the code.
    ServerError,
    /// The handler panicked; serverwatch answered 500.
    Panic,
}

/// Labels of one series. `R` is `Box<str>` when stored and `&str` when
/// looking up, so a lookup never allocates; both hash alike.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct SeriesKey<R = Box<str>> {
    pub(crate) method: Method,
    pub(crate) route: R,
    pub(crate) status: u16,
    pub(crate) error: Option<ErrorKind>,
}

impl SeriesKey {
    /// The `error.type` value, if the request failed.
    pub(crate) fn error_type(&self) -> Option<String> {
        match self.error? {
            ErrorKind::ServerError => Some(self.status.to_string()),
            ErrorKind::Panic => Some("panic".to_owned()),
        }
    }
}

impl ToKey<SeriesKey> for SeriesKey<&str> {
    fn to_key(&self) -> SeriesKey {
        SeriesKey {
            method: self.method,
            route: self.route.into(),
            status: self.status,
            error: self.error,
        }
    }
}

impl Equivalent<SeriesKey> for SeriesKey<&str> {
    fn equivalent(&self, key: &SeriesKey) -> bool {
        self.method == key.method
            && self.status == key.status
            && self.error == key.error
            && *self.route == *key.route
    }
}

/// The instruments of one label set.
#[derive(Debug)]
struct Series {
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
}

/// A copy of one series, in exported units.
#[derive(Debug, Clone)]
pub(crate) struct SeriesSnapshot {
    /// `None` for the overflow series.
    pub(crate) key: Option<SeriesKey>,
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
    pub(crate) status: u16,
    pub(crate) message: String,
}

/// The request metrics of one [`ServerWatch`](crate::ServerWatch).
#[derive(Debug)]
pub(crate) struct RequestStore {
    pub(crate) duration_bounds: Bounds,
    pub(crate) size_bounds: Bounds,
    series: SeriesSet<SeriesKey, Series>,
    active: [AtomicI64; Method::ALL.len()],
    recent_errors: Mutex<VecDeque<RecentError>>,
    recent_errors_capacity: usize,
}

impl RequestStore {
    pub(crate) fn new(max_series: usize, recent_errors_capacity: usize) -> Self {
        let duration_bounds = Bounds::new(&DURATION_BOUNDS_SECONDS, 1e-9);
        let size_bounds = Bounds::new(&BODY_SIZE_BOUNDS_BYTES, 1.0);
        let overflow = Series::new(&duration_bounds, &size_bounds);
        Self {
            series: SeriesSet::new(max_series, overflow),
            duration_bounds,
            size_bounds,
            active: Default::default(),
            recent_errors: Mutex::new(VecDeque::with_capacity(recent_errors_capacity)),
            recent_errors_capacity,
        }
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
        self.series.with(
            &observation.key,
            || Series::new(&self.duration_bounds, &self.size_bounds),
            |series| series.record(self, observation),
        );
        if observation.key.error.is_some() && self.recent_errors_capacity > 0 {
            self.push_error(observation);
        }
    }

    fn push_error(&self, observation: &Observation<'_>) {
        let key = &observation.key;
        let message = observation
            .message
            .map(|m| truncate(m, MAX_ERROR_MESSAGE).to_owned())
            .unwrap_or_else(|| {
                http::StatusCode::from_u16(key.status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("server error")
                    .to_owned()
            });
        let entry = RecentError {
            time: SystemTime::now(),
            method: key.method,
            route: key.route.to_owned(),
            status: key.status,
            message,
        };
        let mut errors = self.recent_errors.lock().unwrap_or_else(|e| e.into_inner());
        if errors.len() == self.recent_errors_capacity {
            errors.pop_back();
        }
        errors.push_front(entry);
    }

    /// Requests in flight, per method.
    pub(crate) fn active(&self) -> impl Iterator<Item = (Method, i64)> + '_ {
        Method::ALL
            .iter()
            .map(|&m| (m, self.active[m as usize].load(Ordering::Relaxed)))
    }

    /// Copies every series, sorted by labels; the overflow series comes last
    /// and only once it has been used.
    pub(crate) fn snapshot(&self) -> Vec<SeriesSnapshot> {
        let mut out: Vec<SeriesSnapshot> = self
            .series
            .entries()
            .into_iter()
            .map(|(key, series)| series.snapshot(self, Some(key)))
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        let overflow = self.series.overflow().snapshot(self, None);
        if overflow.duration.count > 0 {
            out.push(overflow);
        }
        out
    }

    /// The recent errors, newest first.
    pub(crate) fn recent_errors(&self) -> Vec<RecentError> {
        let errors = self.recent_errors.lock().unwrap_or_else(|e| e.into_inner());
        errors.iter().cloned().collect()
    }
}

impl Series {
    fn new(duration: &Bounds, size: &Bounds) -> Self {
        Self {
            duration: AtomicHistogram::new(duration),
            request_size: AtomicHistogram::new(size),
            response_size: AtomicHistogram::new(size),
        }
    }

    fn record(&self, store: &RequestStore, o: &Observation<'_>) {
        self.duration
            .record(&store.duration_bounds, o.duration_nanos);
        self.request_size
            .record(&store.size_bounds, o.request_bytes);
        self.response_size
            .record(&store.size_bounds, o.response_bytes);
    }

    fn snapshot(&self, store: &RequestStore, key: Option<SeriesKey>) -> SeriesSnapshot {
        SeriesSnapshot {
            key,
            duration: self.duration.snapshot(&store.duration_bounds),
            request_size: self.request_size.snapshot(&store.size_bounds),
            response_size: self.response_size.snapshot(&store.size_bounds),
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
mod tests {
    use super::*;

    fn observation(route: &str, status: u16, error: Option<ErrorKind>) -> Observation<'_> {
        Observation {
            key: SeriesKey {
                method: Method::Get,
                route,
                status,
                error,
            },
            duration_nanos: 1_000_000,
            request_bytes: 0,
            response_bytes: 10,
            message: None,
        }
    }

    #[test]
    fn label_sets_past_the_cap_go_to_one_overflow_series() {
        let store = RequestStore::new(2, 10);
        for route in ["/a", "/b", "/c", "/d", "/a"] {
            store.record(&observation(route, 200, None));
        }
        let snapshot = store.snapshot();
        assert_eq!(snapshot.len(), 3);
        assert_eq!(snapshot[0].duration.count, 2, "/a keeps its series");
        let overflow = snapshot.last().unwrap();
        assert!(overflow.key.is_none());
        assert_eq!(overflow.duration.count, 2);
    }

    #[test]
    fn recent_errors_are_bounded_and_newest_first() {
        let store = RequestStore::new(100, 3);
        for status in 500..505 {
            store.record(&observation("/x", status, Some(ErrorKind::ServerError)));
        }
        store.record(&observation("/x", 200, None));
        let errors = store.recent_errors();
        let statuses: Vec<u16> = errors.iter().map(|e| e.status).collect();
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

    #[test]
    fn unknown_methods_are_other() {
        let m = http::Method::from_bytes(b"BREW").unwrap();
        assert_eq!(Method::from_http(&m).as_str(), "_OTHER");
    }
}
