//! The tower `Layer`/`Service` pair that records every request.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::MatchedPath;
use bytes::Bytes;
use http::{Request, Response, StatusCode, header, request};
use http_body::{Frame, SizeHint};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::body::{ByteSink, CountingBody};
use crate::state::requests::{
    ErrorKind, Method, Observation, RequestStore, SeriesKey, UNMATCHED_ROUTE,
};

/// Body of the 500 answer that replaces a panicking handler's response.
const PANIC_BODY: &str = "Internal Server Error";

/// Names the route template of a request, for stacks without axum's router.
type RouteTemplate = Arc<dyn Fn(&request::Parts) -> Option<&'static str> + Send + Sync>;

/// A tower [`Layer`] that records every request passing through it.
///
/// On an axum [`Router`](axum::Router), apply it with
/// [`Router::layer`](axum::Router::layer) so that it sees the matched route
/// template; it then also covers nested routers and the fallback. On any
/// other tower stack (hyper, tonic) it works the same, generic over the
/// request and response bodies; name the routes with
/// [`route_template`](Self::route_template), or they are recorded as
/// `unmatched`. A panicking handler is caught and answered with 500.
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
#[derive(Clone)]
pub struct RequestMetricsLayer {
    store: Arc<RequestStore>,
    route_template: Option<RouteTemplate>,
}

impl fmt::Debug for RequestMetricsLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestMetricsLayer")
            .field("route_template", &self.route_template.is_some())
            .finish_non_exhaustive()
    }
}

impl RequestMetricsLayer {
    pub(crate) fn new(store: Arc<RequestStore>) -> Self {
        Self {
            store,
            route_template: None,
        }
    }

    /// Names the route template of the requests that axum's router did not
    /// match (there is no [`MatchedPath`]): `Some("/users/{id}")`, or `None`
    /// for `unmatched`. Return templates from a fixed set, never the raw
    /// path: each distinct value is a series.
    ///
    /// ```
    /// let watch = serverwatch::ServerWatch::builder().build()?;
    /// let layer = watch.layer().route_template(|request| {
    ///     match request.uri.path() {
    ///         "/" => Some("/"),
    ///         path if path.starts_with("/users/") => Some("/users/{id}"),
    ///         _ => None,
    ///     }
    /// });
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    pub fn route_template<F>(mut self, template: F) -> Self
    where
        F: Fn(&request::Parts) -> Option<&'static str> + Send + Sync + 'static,
    {
        self.route_template = Some(Arc::new(template));
        self
    }
}

impl<S> Layer<S> for RequestMetricsLayer {
    type Service = RequestMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestMetricsService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service produced by [`RequestMetricsLayer`]. The inner service gets
/// the request with its body wrapped in a [`RequestBody`], and its response
/// goes on with the body wrapped in a [`ResponseBody`].
///
/// ```
/// use tower::{Layer, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let watch = serverwatch::ServerWatch::builder().build()?;
/// let handler = tower::service_fn(|_: http::Request<serverwatch::RequestBody<String>>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(String::from("hi")))
/// });
/// let service: serverwatch::RequestMetricsService<_> = watch.layer().layer(handler);
/// let response = service.oneshot(http::Request::new(String::new())).await?;
/// assert_eq!(response.status(), 200);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RequestMetricsService<S> {
    inner: S,
    layer: RequestMetricsLayer,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequestMetricsService<S>
where
    S: Service<Request<RequestBody<ReqBody>>, Response = Response<ResBody>>,
    ReqBody: http_body::Body,
    ResBody: http_body::Body<Data = Bytes>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let method = Method::from_http(request.method());
        let (request, route) = self.route(request);
        let (request, request_size) = measure_request(request);
        let in_flight = InFlight::new(Arc::clone(&self.layer.store), method, route, request_size);
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

impl<S> RequestMetricsService<S> {
    fn route<B>(&self, request: Request<B>) -> (Request<B>, Route) {
        if let Some(matched) = request.extensions().get::<MatchedPath>() {
            let route = Route::Matched(matched.clone());
            return (request, route);
        }
        let Some(template) = &self.layer.route_template else {
            return (request, Route::Unmatched);
        };
        let (parts, body) = request.into_parts();
        let route = template(&parts).map_or(Route::Unmatched, Route::Named);
        (Request::from_parts(parts, body), route)
    }
}

/// The route template a request is recorded under.
#[derive(Debug)]
enum Route {
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

pin_project! {
    /// The request body as the inner service of [`RequestMetricsService`]
    /// sees it: the original body, its bytes counted when its length was
    /// not declared. It is read like any [`http_body::Body`].
    ///
    /// ```
    /// use http_body_util::BodyExt;
    /// use tower::{Layer, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let watch = serverwatch::ServerWatch::builder().build()?;
    /// let echo = tower::service_fn(|request: http::Request<serverwatch::RequestBody<String>>| async {
    ///     let body = request.into_body().collect().await?.to_bytes();
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(body)))
    /// });
    /// let response = watch.layer().layer(echo).oneshot(http::Request::new("ping".to_owned())).await?;
    /// assert_eq!(response.into_body().collect().await?.to_bytes(), "ping");
    /// # Ok(()) }
    /// ```
    #[derive(Debug)]
    pub struct RequestBody<B> {
        #[pin]
        body: CountingBody<B, Option<Arc<AtomicU64>>>,
    }
}

impl<B: http_body::Body> http_body::Body for RequestBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Takes the body length from its exact size hint (the Content-Length), or
/// counts the bytes as they are read when the length is unknown.
fn measure_request<B: http_body::Body>(
    request: Request<B>,
) -> (Request<RequestBody<B>>, RequestSize) {
    let (size, sink) = match http_body::Body::size_hint(request.body()).exact() {
        Some(exact) => (RequestSize::Known(exact), None),
        None => {
            let read = Arc::new(AtomicU64::new(0));
            (RequestSize::Counted(Arc::clone(&read)), Some(read))
        }
    };
    let request = request.map(|body| RequestBody {
        body: CountingBody::new(body, sink),
    });
    (request, size)
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

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body<Data = Bytes>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

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
        let mut completion = in_flight.respond(StatusCode::INTERNAL_SERVER_ERROR, Some(panic));
        completion.response_bytes = PANIC_BODY.len() as u64;
        drop(completion);
        let mut response = Response::new(ResponseBody {
            kind: Kind::Panic {
                body: Some(Bytes::from_static(PANIC_BODY.as_bytes())),
            },
        });
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        Poll::Ready(Ok(response))
    }
}

pin_project! {
    /// The response body after [`RequestMetricsService`]: the inner
    /// service's body, counted when streamed, or the 500 answer to a panic.
    ///
    /// ```
    /// use http_body_util::BodyExt;
    /// use tower::{Layer, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let watch = serverwatch::ServerWatch::builder().build()?;
    /// let panics = tower::service_fn(|_: http::Request<serverwatch::RequestBody<String>>| async {
    ///     if true {
    ///         panic!("boom");
    ///     }
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    /// });
    /// let response = watch.layer().layer(panics).oneshot(http::Request::new(String::new())).await?;
    /// assert_eq!(response.status(), 500);
    /// let body: serverwatch::ResponseBody<String> = response.into_body();
    /// assert_eq!(body.collect().await?.to_bytes(), "Internal Server Error");
    /// # Ok(()) }
    /// ```
    #[derive(Debug)]
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<B> {
        Inner { #[pin] body: CountingBody<B, Option<Completion>> },
        Panic { body: Option<Bytes> },
    }
}

impl<B: http_body::Body<Data = Bytes>> http_body::Body for ResponseBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Panic { body } => Poll::Ready(body.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Panic { body } => body.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Panic { body } => {
                SizeHint::with_exact(body.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
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
struct InFlight {
    store: Arc<RequestStore>,
    method: Method,
    route: Route,
    request_size: RequestSize,
    start: Instant,
}

impl InFlight {
    fn new(
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
struct Completion {
    in_flight: InFlight,
    status: u16,
    error: Option<ErrorKind>,
    message: Option<String>,
    response_bytes: u64,
}

impl Completion {
    /// Records the request now when the body's length is known (a body
    /// already in memory), or when the body is done — sent, or dropped
    /// because the client left — when it is streamed, so that the duration
    /// and size cover the stream.
    fn attach<B: http_body::Body>(mut self, response: Response<B>) -> Response<ResponseBody<B>> {
        let sink = match http_body::Body::size_hint(response.body()).exact() {
            Some(length) => {
                self.response_bytes = length;
                None
            }
            None => Some(self),
        };
        response.map(|body| ResponseBody {
            kind: Kind::Inner {
                body: CountingBody::new(body, sink),
            },
        })
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
