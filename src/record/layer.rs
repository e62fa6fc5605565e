//! The tower `Layer`/`Service` pair that records every request.

use std::fmt;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::MatchedPath;
use bytes::Bytes;
use http::{Request, Response, request};
use tower_layer::Layer;
use tower_service::Service;

use super::body::{CountingBody, RequestBody, ResponseBody};
use super::claim::{Claim, Claims};
use super::future::ResponseFuture;
use super::in_flight::{Counter, InFlight, Route, request_counter};
use super::nested::NestedServices;
use crate::sources::requests::{Method, NO_LABELS, RequestHead, RequestStore};

/// Names the route template of a request, for stacks without axum's router.
type RouteTemplate = Arc<dyn Fn(&request::Parts) -> Option<&'static str> + Send + Sync>;

/// The layer works with request and response bodies of any type: the inner
/// service gets a [`RequestBody`], and a [`ResponseBody`] goes out. The
/// default.
///
/// ```
/// let layer: serverwatch::RequestMetricsLayer<serverwatch::AnyBody> =
///     serverwatch::ServerWatch::builder().build()?.layer();
/// # Ok::<(), serverwatch::BuildError>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct AnyBody;

/// The layer works with axum's own [`Body`] in and out, and passes the
/// bodies it need not count through untouched: two allocations fewer per
/// request than [`AnyBody`] on an axum router. See
/// [`RequestMetricsLayer::for_axum`].
///
/// ```
/// let layer: serverwatch::RequestMetricsLayer<serverwatch::AxumBody> =
///     serverwatch::ServerWatch::builder().build()?.layer().for_axum();
/// # Ok::<(), serverwatch::BuildError>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct AxumBody;

/// A tower [`Layer`] that records every request passing through it.
///
/// It is generic over the request and response bodies ([`AnyBody`]), so it
/// sits on any tower stack: axum, hyper, tonic. On an axum
/// [`Router`](axum::Router), apply it with
/// [`Router::layer`](axum::Router::layer) so that it sees the matched route
/// template; it then also covers nested routers and the fallback,
/// [`nested_services`](Self::nested_services) names the nested services, and
/// [`for_axum`](Self::for_axum) makes it cheaper there. On other stacks, name
/// the routes with [`route_template`](Self::route_template), or they are
/// recorded as `unmatched`. A panicking handler is caught and answered with
/// 500.
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
pub struct RequestMetricsLayer<K = AnyBody> {
    store: Arc<RequestStore>,
    route_template: Option<RouteTemplate>,
    nested: Option<Arc<NestedServices>>,
    /// The paths of the observability routes, relative to where they are
    /// mounted: a request whose route ends with one is offered a claim.
    observability: &'static [&'static str],
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for RequestMetricsLayer<K> {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
            route_template: self.route_template.clone(),
            nested: self.nested.clone(),
            observability: self.observability,
            kind: PhantomData,
        }
    }
}

impl<K> fmt::Debug for RequestMetricsLayer<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestMetricsLayer")
            .field("route_template", &self.route_template.is_some())
            .field("nested_services", &self.nested)
            .finish_non_exhaustive()
    }
}

impl RequestMetricsLayer {
    pub(crate) fn new(
        store: Arc<RequestStore>,
        observability: &'static [&'static str],
        nested: Option<Arc<NestedServices>>,
    ) -> Self {
        Self {
            store,
            route_template: None,
            nested,
            observability,
            kind: PhantomData,
        }
    }

    /// The same layer for an axum [`Router`](axum::Router) only: axum's
    /// [`Body`] goes in and out, and a body that need not be counted (an
    /// empty request body, a response in memory) passes through untouched,
    /// which saves the two allocations a wrapped body costs in axum. [`ServerWatch::instrument`]
    /// uses it.
    ///
    /// [`ServerWatch::instrument`]: crate::ServerWatch::instrument
    ///
    /// ```
    /// use axum::{Router, routing::get};
    ///
    /// let watch = serverwatch::ServerWatch::builder().build()?;
    /// let app: Router = Router::new()
    ///     .route("/items/{id}", get(|| async { "item" }))
    ///     .layer(watch.layer().for_axum());
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    pub fn for_axum(self) -> RequestMetricsLayer<AxumBody> {
        RequestMetricsLayer {
            store: self.store,
            route_template: self.route_template,
            nested: self.nested,
            observability: self.observability,
            kind: PhantomData,
        }
    }
}

impl<K> RequestMetricsLayer<K> {
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

    /// Records the requests under the services nested at `paths`
    /// (`Router::nest_service`, `ServeDir`) under the nest's template: a
    /// request to `/static/css/site.css` under `"/static"` is recorded as
    /// `/static/{*rest}`. axum gives them no `MatchedPath`, so without this
    /// they are `unmatched`. Each path is the full one the layer sees the
    /// requests at, as given to `nest_service` on the router the layer is
    /// added to; a path parameter (`/t/{tenant}/files`) stays a parameter.
    /// The paths add to those already known: the ones registered with
    /// [`ServerWatch::nest_service`] before the layer was made, which
    /// [`ServerWatch::instrument`] covers without this.
    ///
    /// [`ServerWatch::nest_service`]: crate::ServerWatch::nest_service
    /// [`ServerWatch::instrument`]: crate::ServerWatch::instrument
    ///
    /// # Panics
    ///
    /// When a path is not one a service can be nested at (it must start
    /// with `/`, and not be the root, end with `/` or hold a wildcard), or
    /// conflicts with another: the message names the path.
    ///
    /// ```
    /// use axum::{Router, routing::get};
    ///
    /// let watch = serverwatch::ServerWatch::builder().build()?;
    /// let assets = tower::service_fn(|_| async {
    ///     Ok::<_, std::convert::Infallible>(axum::response::Response::new(axum::body::Body::empty()))
    /// });
    /// let app: Router = Router::new()
    ///     .route("/", get(|| async { "home" }))
    ///     .nest_service("/static", assets);
    /// // GET /static/site.css is recorded as /static/{*rest}.
    /// let app = app.layer(watch.layer().nested_services(["/static"]));
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    #[track_caller]
    pub fn nested_services(mut self, paths: impl IntoIterator<Item = impl Into<String>>) -> Self {
        let paths = paths.into_iter().map(Into::into);
        self.nested = NestedServices::with_paths(self.nested.as_deref(), paths).map(Arc::new);
        self
    }

    /// The request's route template: axum's, else a nested service's, else
    /// the function's.
    fn route<B>(&self, request: &mut Request<B>) -> Route {
        if let Some(matched) = request.extensions().get::<MatchedPath>() {
            return Route::Matched(matched.clone());
        }
        if let Some(template) = self
            .nested
            .as_ref()
            .and_then(|nested| nested.template(request.uri().path()))
        {
            return Route::Nested(Arc::clone(template));
        }
        let Some(template) = &self.route_template else {
            return Route::Unmatched;
        };
        // The function reads `Parts`, which only a request taken apart has:
        // the parts are swapped out and back, which copies nothing big.
        let (mut parts, ()) = Request::new(()).into_parts();
        std::mem::swap(&mut parts.method, request.method_mut());
        std::mem::swap(&mut parts.uri, request.uri_mut());
        std::mem::swap(&mut parts.version, request.version_mut());
        std::mem::swap(&mut parts.headers, request.headers_mut());
        std::mem::swap(&mut parts.extensions, request.extensions_mut());
        let route = template(&parts).map_or(Route::Unmatched, Route::Named);
        std::mem::swap(&mut parts.method, request.method_mut());
        std::mem::swap(&mut parts.uri, request.uri_mut());
        std::mem::swap(&mut parts.version, request.version_mut());
        std::mem::swap(&mut parts.headers, request.headers_mut());
        std::mem::swap(&mut parts.extensions, request.extensions_mut());
        route
    }

    /// Starts recording `request`; gives the counter to feed with its body
    /// (`None` for an empty body).
    fn start<B: http_body::Body>(&self, request: &mut Request<B>) -> (InFlight, Option<Counter>) {
        let method = Method::from_http(request.method());
        let route = self.route(request);
        // A skipped request is in no gauge, so no route may take it off one.
        let skipped = self.store.skips(route.as_str());
        let claim = (!skipped && self.may_be_observability(&route, request)).then(|| {
            let claim = Claim::new(Arc::clone(&self.store), method);
            Claims::offer(request.extensions_mut(), Arc::clone(&claim));
            claim
        });
        let labelling = self.store.labelling();
        let labels = if labelling.on_requests() && !skipped {
            labelling.of_request(RequestHead::from(&*request))
        } else {
            NO_LABELS
        };
        let counter = request_counter(request.body());
        let in_flight = InFlight::new(
            Arc::clone(&self.store),
            method,
            route,
            labels,
            counter.clone(),
            claim,
            skipped,
        );
        (in_flight, counter)
    }

    /// Whether the request may be to an observability route mounted inside
    /// this layer: its template ends with one of their paths (the raw path
    /// contains one, for a request axum matched to no template). Only those
    /// pay for a claim.
    fn may_be_observability<B>(&self, route: &Route, request: &Request<B>) -> bool {
        match route {
            Route::Matched(_) | Route::Named(_) => {
                let template = route.as_str().as_bytes();
                // The last byte first: it turns away nearly every app route
                // without a string comparison.
                self.observability.iter().any(|path| {
                    let path = path.as_bytes();
                    path.last() == template.last() && template.ends_with(path)
                })
            }
            Route::Nested(_) | Route::Unmatched => {
                let path = request.uri().path();
                self.observability.iter().any(|p| path.contains(p))
            }
        }
    }
}

impl<S, K> Layer<S> for RequestMetricsLayer<K> {
    type Service = RequestMetricsService<S, K>;

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
pub struct RequestMetricsService<S, K = AnyBody> {
    inner: S,
    layer: RequestMetricsLayer<K>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequestMetricsService<S, AnyBody>
where
    S: Service<Request<RequestBody<ReqBody>>, Response = Response<ResBody>>,
    ReqBody: http_body::Body,
    ResBody: http_body::Body<Data = Bytes>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, AnyBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let (in_flight, counter) = self.layer.start(&mut request);
        let request = request.map(|body| RequestBody::new(body, counter));
        let called = catch_unwind(AssertUnwindSafe(|| self.inner.call(request)));
        ResponseFuture::new(in_flight, called)
    }
}

impl<S> Service<Request<Body>> for RequestMetricsService<S, AxumBody>
where
    S: Service<Request<Body>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, AxumBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let (in_flight, counter) = self.layer.start(&mut request);
        // Counted inside a body of axum's own type; an empty body goes on
        // untouched.
        if let Some(counter) = counter {
            request = request.map(|body| Body::new(CountingBody::new(body, Some(counter))));
        }
        let called = catch_unwind(AssertUnwindSafe(|| self.inner.call(request)));
        ResponseFuture::new(in_flight, called)
    }
}
