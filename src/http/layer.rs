//! The tower `Layer`/`Service` pair that records every request.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::MatchedPath;
use http::{Request, Response, StatusCode, header};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::body::{ByteSink, CountingBody};
use super::store::{ErrorKind, Method, Observation, RequestStore, SeriesKey, UNMATCHED_ROUTE};

/// Body of the 500 answer that replaces a panicking handler's response.
const PANIC_BODY: &str = "Internal Server Error";

/// A tower [`Layer`] that records every request passing through it.
///
/// Apply it with [`Router::layer`](axum::Router::layer) so that it sees the
/// matched route template; it then also covers nested routers and the
/// fallback. A panicking handler is caught and answered with 500.
///
/// ```
/// use axum::{Router, routing::get};
///
/// let watch = serverwatch::ServerWatch::builder().build()?;
/// let app: Router = Router::new()
///     .route("/items/{id}", get(|| async { "item" }))
///     .layer(watch.layer());
/// # Ok::<(), serverwatch::BuildError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RequestMetricsLayer {
    store: Arc<RequestStore>,
}

impl RequestMetricsLayer {
    pub(crate) fn new(store: Arc<RequestStore>) -> Self {
        Self { store }
    }
}

impl<S> Layer<S> for RequestMetricsLayer {
    type Service = RequestMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestMetricsService {
            inner,
            store: Arc::clone(&self.store),
        }
    }
}

/// The service produced by [`RequestMetricsLayer`].
///
/// ```
/// use tower::Layer;
///
/// let watch = serverwatch::ServerWatch::builder().build()?;
/// let handler = tower::service_fn(|_req: http::Request<axum::body::Body>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(axum::body::Body::empty()))
/// });
/// let _service = watch.layer().layer(handler);
/// # Ok::<(), serverwatch::BuildError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RequestMetricsService<S> {
    inner: S,
    store: Arc<RequestStore>,
}

impl<S> Service<Request<Body>> for RequestMetricsService<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let method = Method::from_http(request.method());
        let route = request.extensions().get::<MatchedPath>().cloned();
        let (request, request_size) = measure_request(request);
        let in_flight = InFlight::new(Arc::clone(&self.store), method, route, request_size);
        let state = match catch_unwind(AssertUnwindSafe(|| self.inner.call(request))) {
            Ok(future) => State::Running { future },
            Err(payload) => State::Panicked {
                message: Some(panic_message(payload)),
            },
        };
        ResponseFuture {
            state,
            in_flight: Some(in_flight),
        }
    }
}

/// Takes the body length from its exact size hint (the Content-Length), or
/// counts the bytes as they are read when the length is unknown.
fn measure_request(request: Request<Body>) -> (Request<Body>, RequestSize) {
    if let Some(exact) = http_body::Body::size_hint(request.body()).exact() {
        return (request, RequestSize::Known(exact));
    }
    let read = Arc::new(AtomicU64::new(0));
    let request = request.map(|body| Body::new(CountingBody::new(body, Arc::clone(&read))));
    (request, RequestSize::Counted(read))
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "handler panicked".to_owned()
    }
}

pin_project! {
    /// Future of [`RequestMetricsService`].
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
        in_flight: Option<InFlight>,
    }
}

pin_project! {
    #[project = StateProj]
    #[derive(Debug)]
    enum State<F> {
        Running { #[pin] future: F },
        Panicked { message: Option<String> },
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let panic = match this.state.project() {
            StateProj::Running { future } => {
                match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
                    Ok(Poll::Pending) => return Poll::Pending,
                    Ok(Poll::Ready(Ok(response))) => {
                        let in_flight = this.in_flight.take().expect("polled after completion");
                        let completion = in_flight.respond(response.status(), None);
                        return Poll::Ready(Ok(completion.attach(response)));
                    }
                    // The inner service failed without a response (axum's
                    // routes never do); the request ends unrecorded.
                    Ok(Poll::Ready(Err(error))) => return Poll::Ready(Err(error)),
                    Err(payload) => panic_message(payload),
                }
            }
            StateProj::Panicked { message } => message.take().unwrap_or_default(),
        };
        let in_flight = this.in_flight.take().expect("polled after completion");
        let completion = in_flight.respond(StatusCode::INTERNAL_SERVER_ERROR, Some(panic));
        let mut response = Response::new(Body::from(PANIC_BODY));
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        Poll::Ready(Ok(completion.attach(response)))
    }
}

#[derive(Debug)]
enum RequestSize {
    Known(u64),
    Counted(Arc<AtomicU64>),
}

/// A request between its start and its response. Dropping it (the client
/// went away, the future was cancelled) ends it in the active-requests gauge.
#[derive(Debug)]
pub(crate) struct InFlight {
    store: Arc<RequestStore>,
    method: Method,
    route: Option<MatchedPath>,
    request_size: RequestSize,
    start: Instant,
}

impl InFlight {
    fn new(
        store: Arc<RequestStore>,
        method: Method,
        route: Option<MatchedPath>,
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

    fn respond(self, status: StatusCode, panic: Option<String>) -> Completion {
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

/// A request with a response; it is recorded when dropped.
#[derive(Debug)]
pub(crate) struct Completion {
    in_flight: InFlight,
    status: u16,
    error: Option<ErrorKind>,
    message: Option<String>,
    response_bytes: u64,
}

impl Completion {
    /// Records the request now when the body's length is known (a body
    /// already in memory: the response is returned untouched), or when the
    /// body is done — sent, or dropped because the client left — when it is
    /// streamed, so that the duration and size cover the stream.
    fn attach(mut self, response: Response<Body>) -> Response<Body> {
        match http_body::Body::size_hint(response.body()).exact() {
            Some(length) => {
                self.response_bytes = length;
                response
            }
            None => response.map(|body| Body::new(CountingBody::new(body, self))),
        }
    }
}

impl ByteSink for Completion {
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
                route: f
                    .route
                    .as_ref()
                    .map_or(UNMATCHED_ROUTE, MatchedPath::as_str),
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
