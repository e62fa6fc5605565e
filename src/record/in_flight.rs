//! One request on its way through the layer: in flight until it has a
//! response, then a [`Completion`] that records it when dropped. A request
//! dropped before it has a response (the client left, the server gave up on
//! it) is recorded too, as aborted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::MatchedPath;
use http::{Response, StatusCode};

use super::body::ByteSink;
use super::claim::Claim;
use crate::model::exemplar::SpanIds;
use crate::sources::requests::{
    ErrorKind, LabelSetId, Method, Observation, RequestStore, ResponseHead, SeriesKey,
    UNMATCHED_ROUTE,
};

/// The route template a request is recorded under.
#[derive(Debug)]
pub(super) enum Route {
    Matched(MatchedPath),
    /// Under a nested service (`/svc/{*rest}`), which axum gives no
    /// `MatchedPath`.
    Nested(Arc<str>),
    Named(&'static str),
    Unmatched,
}

impl Route {
    pub(super) fn as_str(&self) -> &str {
        match self {
            Route::Matched(m) => m.as_str(),
            Route::Nested(template) => template,
            Route::Named(name) => name,
            Route::Unmatched => UNMATCHED_ROUTE,
        }
    }
}

/// Where the bytes of a request body go as they are read.
pub(super) type Counter = Arc<AtomicU64>;

/// The counter for a request body, or `None` for a body known to be empty
/// (a GET's), which then costs nothing. A declared length is never trusted:
/// only the bytes read count.
pub(super) fn request_counter(body: &impl http_body::Body) -> Option<Counter> {
    // The size hint first: for axum's empty body it settles it in one call.
    if body.size_hint().exact() == Some(0) || body.is_end_stream() {
        None
    } else {
        Some(Arc::new(AtomicU64::new(0)))
    }
}

/// A request between its start and its response. Dropped without a
/// response (the client went away, the future was cancelled), it is
/// recorded as aborted; either way it ends in the active-requests gauge.
#[derive(Debug)]
pub(super) struct InFlight {
    store: Arc<RequestStore>,
    method: Method,
    route: Route,
    /// The app's labels of the request (and of its response, once it has
    /// one).
    labels: LabelSetId,
    request_bytes: Option<Counter>,
    start: Instant,
    /// The sampled trace the request is handled in.
    span: Option<SpanIds>,
    /// Set once a [`Completion`] recorded the request.
    recorded: bool,
    /// Offered to the route when it may be an observability route.
    claim: Option<Arc<Claim>>,
    /// The route took the claim, or the app skips the route: the request is
    /// neither recorded nor ended here.
    taken: bool,
}

impl InFlight {
    pub(super) fn new(
        store: Arc<RequestStore>,
        method: Method,
        route: Route,
        labels: LabelSetId,
        request_bytes: Option<Counter>,
        claim: Option<Arc<Claim>>,
        skipped: bool,
    ) -> Self {
        if !skipped {
            store.start(method);
        }
        let span = super::span::current(store.exemplar_filter());
        Self {
            store,
            method,
            route,
            labels,
            request_bytes,
            start: Instant::now(),
            span,
            recorded: false,
            claim,
            taken: skipped,
        }
    }

    /// Adds the app's labels of `response`, if it has labels of responses.
    fn label<B>(&mut self, response: &Response<B>) {
        let labelling = self.store.labelling();
        if labelling.on_responses() && !self.taken {
            self.labels = labelling.of_response(self.labels, ResponseHead::from(response));
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
            status: Some(status),
            error,
            message: panic,
            response_bytes: 0,
        }
    }

    fn record(
        &mut self,
        status: Option<StatusCode>,
        error: Option<ErrorKind>,
        response: u64,
        message: Option<&str>,
    ) {
        self.recorded = true;
        if let Some(claim) = self.claim.take() {
            self.taken = claim.settle();
        }
        if self.taken {
            return;
        }
        let request_bytes = self
            .request_bytes
            .as_ref()
            .map_or(0, |read| read.load(Ordering::Relaxed));
        self.store.record(&Observation {
            key: SeriesKey {
                method: self.method,
                route: self.route.as_str(),
                status,
                error,
                labels: self.labels,
            },
            duration_nanos: u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX),
            request_bytes,
            response_bytes: response,
            message,
            span: self.span,
        });
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.recorded {
            self.record(None, Some(ErrorKind::Aborted), 0, None);
        }
        if !self.taken {
            self.store.end(self.method);
        }
    }
}

/// A request with a response; it is recorded when dropped. (Public only so
/// that the sealed trait of the future can name it: the module is private.)
#[derive(Debug)]
pub struct Completion {
    in_flight: InFlight,
    status: Option<StatusCode>,
    error: Option<ErrorKind>,
    message: Option<String>,
    response_bytes: u64,
}

impl Completion {
    /// Records the request now when the body's length is known (a body
    /// already in memory: `None`), or hands the completion back for the
    /// body to carry when it is streamed, so that the duration and the size
    /// cover the stream: it is recorded when the body is done, sent or
    /// dropped because the client left (still with the status it was
    /// answered with: the answer was the service's), or as a panic when
    /// the body panics.
    pub(super) fn attach<B: http_body::Body>(
        mut self,
        response: &Response<B>,
    ) -> Option<Box<Self>> {
        self.in_flight.label(response);
        match response.body().size_hint().exact() {
            Some(length) => {
                self.response_bytes = length;
                None
            }
            None => Some(Box::new(self)),
        }
    }

    /// Records the request now, with a response body of `bytes`.
    pub(super) fn finish(mut self, bytes: u64) {
        self.response_bytes = bytes;
    }
}

impl ByteSink for Box<Completion> {
    fn add(&mut self, bytes: usize) {
        self.response_bytes = self.response_bytes.saturating_add(bytes as u64);
    }

    fn panicked(&mut self, message: String) {
        self.error = Some(ErrorKind::Panic);
        self.message = Some(message);
    }

    fn failed(&mut self) {
        self.error = Some(ErrorKind::BodyError);
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        let message = self.message.take();
        self.in_flight.record(
            self.status,
            self.error,
            self.response_bytes,
            message.as_deref(),
        );
    }
}
