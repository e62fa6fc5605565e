//! One request on its way through the layer: in flight until it has a
//! response, then a [`Completion`] that records it when dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::MatchedPath;
use http::{Response, StatusCode};

use super::body::ByteSink;
use crate::state::requests::{
    ErrorKind, Method, Observation, RequestStore, SeriesKey, UNMATCHED_ROUTE,
};

/// The route template a request is recorded under.
#[derive(Debug)]
pub(super) enum Route {
    Matched(MatchedPath),
    Named(&'static str),
    Unmatched,
}

impl Route {
    fn as_str(&self) -> &str {
        match self {
            Route::Matched(m) => m.as_str(),
            Route::Named(name) => name,
            Route::Unmatched => UNMATCHED_ROUTE,
        }
    }
}

/// Where the bytes of a counted request body go.
pub(super) type Counter = Arc<AtomicU64>;

/// How the request body's size is known.
#[derive(Debug)]
pub(super) enum RequestSize {
    /// Declared up front (the Content-Length).
    Known(u64),
    /// Counted as the body is read.
    Counted(Counter),
}

impl RequestSize {
    /// The size of a body with this size hint, and the counter to feed when
    /// it has to be counted.
    pub(super) fn of(body: &impl http_body::Body) -> (Self, Option<Counter>) {
        match body.size_hint().exact() {
            Some(exact) => (RequestSize::Known(exact), None),
            None => {
                let read = Arc::new(AtomicU64::new(0));
                (RequestSize::Counted(Arc::clone(&read)), Some(read))
            }
        }
    }
}

/// A request between its start and its response. Dropping it (the client
/// went away, the future was cancelled) ends it in the active-requests gauge.
#[derive(Debug)]
pub(super) struct InFlight {
    store: Arc<RequestStore>,
    method: Method,
    route: Route,
    request_size: RequestSize,
    start: Instant,
}

impl InFlight {
    pub(super) fn new(
        store: Arc<RequestStore>,
        method: Method,
        route: Route,
        request_size: RequestSize,
    ) -> Self {
        store.start(method);
        Self {
            store,
            method,
            route,
            request_size,
            start: Instant::now(),
        }
    }

    /// The request has a response (`panic`: the handler panicked instead).
    pub(super) fn respond(self, status: StatusCode, panic: Option<String>) -> Completion {
        let error = match (&panic, status.is_server_error()) {
            (Some(_), _) => Some(ErrorKind::Panic),
            (None, true) => Some(ErrorKind::ServerError),
            (None, false) => None,
        };
        Completion {
            in_flight: self,
            status: status.as_u16(),
            error,
            message: panic,
            response_bytes: 0,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.store.end(self.method);
    }
}

/// A request with a response; it is recorded when dropped. (Public only so
/// that the sealed trait of the future can name it: the module is private.)
#[derive(Debug)]
pub struct Completion {
    in_flight: InFlight,
    status: u16,
    error: Option<ErrorKind>,
    message: Option<String>,
    response_bytes: u64,
}

impl Completion {
    /// Records the request now when the body's length is known (a body
    /// already in memory: `None`), or hands the completion back for the
    /// body to carry when it is streamed, so that the duration and the size
    /// cover the stream: it is recorded when the body is done, sent or
    /// dropped because the client left.
    pub(super) fn attach<B: http_body::Body>(
        mut self,
        response: &Response<B>,
    ) -> Option<Box<Self>> {
        match response.body().size_hint().exact() {
            Some(length) => {
                self.response_bytes = length;
                None
            }
            None => Some(Box::new(self)),
        }
    }
}

impl Completion {
    /// Records the request now, with a response body of `bytes`.
    pub(super) fn finish(mut self, bytes: u64) {
        self.response_bytes = bytes;
    }
}

impl ByteSink for Box<Completion> {
    fn add(&mut self, bytes: usize) {
        self.response_bytes += bytes as u64;
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        let f = &self.in_flight;
        let request_bytes = match &f.request_size {
            RequestSize::Known(n) => *n,
            RequestSize::Counted(read) => read.load(Ordering::Relaxed),
        };
        f.store.record(&Observation {
            key: SeriesKey {
                method: f.method,
                route: f.route.as_str(),
                status: self.status,
                error: self.error,
            },
            duration_nanos: u64::try_from(f.start.elapsed().as_nanos()).unwrap_or(u64::MAX),
            request_bytes,
            response_bytes: self.response_bytes,
            message: self.message.as_deref(),
        });
    }
}
