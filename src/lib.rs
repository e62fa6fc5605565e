#![doc = include_str!("docs/crate.md")]
// docs.rs marks what each feature brings.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
mod config;
mod error;
mod exporters;
mod model;
mod part;
mod record;
mod source;
mod sources;

use std::any::Any;
use std::convert::Infallible;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::response::IntoResponse;
use parking_lot::Mutex;
use tower_service::Service;

#[doc(inline)]
pub use crate::builder::Builder;
#[doc(inline)]
pub use crate::error::BuildError;
use crate::exporters::Endpoints;
#[cfg(feature = "otlp")]
#[doc(inline)]
pub use crate::exporters::otlp::{OtlpCompression, OtlpProtocol, OtlpTemporality};
use crate::part::Handles;
use crate::record::NestedServices;
#[doc(inline)]
pub use crate::record::{
    AnyBody, AxumBody, ExemplarFilter, RequestBody, RequestMetricsLayer, RequestMetricsService,
    ResponseBody, ResponseFuture,
};
#[doc(inline)]
pub use crate::sources::checks::CheckOptions;
#[cfg(feature = "metrics")]
#[doc(inline)]
pub use crate::sources::facade::{MetricMatcher, MetricsRecorder};
use crate::sources::requests::RequestStore;
pub use crate::sources::requests::{RequestHead, ResponseHead};

/// A handle on one service's observability. Cheap to clone: every clone
/// shares the same recorded state.
///
/// ```
/// let watch = serverwatch::ServerWatch::builder()
///     .service_name("inventory")
///     .build()?;
/// let other_handle = watch.clone();
/// # Ok::<(), serverwatch::BuildError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ServerWatch {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    endpoints: Arc<Endpoints>,
    /// What the layer records into.
    requests: Arc<RequestStore>,
    path_prefix: String,
    /// What the parts left: the facade's recorder, the OTLP export.
    handles: Handles,
    /// The services mounted with [`ServerWatch::nest_service`]: each layer
    /// takes the ones known when it is made, so no request waits on this
    /// lock.
    nested: Mutex<Option<Arc<NestedServices>>>,
}

impl ServerWatch {
    /// Starts configuring a [`ServerWatch`].
    ///
    /// ```
    /// let watch = serverwatch::ServerWatch::builder().max_series(500).build()?;
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    pub fn builder() -> Builder {
        Builder::default()
    }

    pub(crate) fn new(
        endpoints: Endpoints,
        requests: Arc<RequestStore>,
        path_prefix: String,
        handles: Handles,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                endpoints: Arc::new(endpoints),
                requests,
                path_prefix,
                handles,
                nested: Mutex::new(None),
            }),
        }
    }

    /// The layer that records requests. Add it with
    /// [`Router::layer`](axum::Router::layer), after the routes it should see
    /// (with [`for_axum`](RequestMetricsLayer::for_axum) there, it costs
    /// less); the services mounted with [`nest_service`](Self::nest_service)
    /// before it is made, or named with
    /// [`nested_services`](RequestMetricsLayer::nested_services), get their
    /// nest's template. It also
    /// works on any other tower stack (see [`RequestMetricsLayer`]). The
    /// observability routes, nested or merged into the router before the
    /// layer, are never recorded; merge them before the layer rather than
    /// after, or axum replaces the app's instrumented fallback with theirs.
    ///
    /// ```
    /// use axum::{Router, routing::get};
    ///
    /// let watch = serverwatch::ServerWatch::builder().build()?;
    /// let app: Router = Router::new()
    ///     .route("/", get(|| async { "hi" }))
    ///     .nest("/ops", watch.router())
    ///     .layer(watch.layer());
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    pub fn layer(&self) -> RequestMetricsLayer {
        RequestMetricsLayer::new(
            Arc::clone(&self.inner.requests),
            exporters::routes::PATHS,
            self.inner.nested.lock().clone(),
        )
    }

    /// Nests `service` at `path` in `app`, as
    /// [`Router::nest_service`](axum::Router::nest_service) does, and
    /// remembers the path: the layers this watch makes afterwards, and so
    /// [`instrument`](Self::instrument), record a request under it (axum
    /// gives it no `MatchedPath`) as the nest's template, `/static/{*rest}`,
    /// instead of `unmatched`. Mount nested services this way before
    /// calling [`layer`](Self::layer) or `instrument`: a layer made earlier
    /// does not know them. `path` is the one the layer will see, so nest
    /// the service into the router the layer goes on.
    ///
    /// # Panics
    ///
    /// When `path` is not one a service can be nested at (it must start
    /// with `/`, and not be the root, end with `/` or hold a wildcard), or
    /// when axum refuses it: the message names the path.
    ///
    /// ```
    /// use axum::{Router, routing::get};
    ///
    /// let watch = serverwatch::ServerWatch::builder().build()?;
    /// let assets = tower::service_fn(|_| async {
    ///     Ok::<_, std::convert::Infallible>(axum::response::Response::new(axum::body::Body::empty()))
    /// });
    /// let app: Router = Router::new().route("/", get(|| async { "home" }));
    /// // First the nested services, then `instrument` (or `layer`).
    /// let app = watch.nest_service(app, "/static", assets);
    /// // GET /static/site.css is recorded as /static/{*rest}.
    /// let app = watch.instrument(app);
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    #[track_caller]
    pub fn nest_service<S, T>(&self, app: Router<S>, path: &str, service: T) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
        T: Service<Request, Error = Infallible> + Clone + Send + Sync + 'static,
        T::Response: IntoResponse,
        T::Future: Send + 'static,
    {
        record::check_path(path);
        let app = app.nest_service(path, service);
        let mut nested = self.inner.nested.lock();
        *nested = NestedServices::with_paths(nested.as_deref(), [path.to_owned()]).map(Arc::new);
        app
    }

    /// The observability routes, `/metrics`, `/health` and (feature
    /// `dashboard`) `/dashboard`, protected by the bearer token if one is
    /// set. Mount them where you like: nest them under a prefix, or serve
    /// them on a listener of their own. Their requests are never recorded,
    /// even under a layer of this crate.
    ///
    /// ```
    /// use axum::Router;
    ///
    /// let watch = serverwatch::ServerWatch::builder().build()?;
    /// // On the app, under /ops:
    /// let app: Router = Router::new().nest("/ops", watch.router());
    /// // Or alone, for a separate listener:
    /// let ops: Router = watch.router();
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    pub fn router<S>(&self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        exporters::routes::router(Arc::clone(&self.inner.endpoints))
    }

    /// The one-call setup: records every request of `app` (its nested
    /// routers, the services nested with [`nest_service`](Self::nest_service)
    /// and its fallback included) and adds the
    /// observability routes under [`Builder::path_prefix`]. Requests to the
    /// observability routes themselves are not recorded, nor are those to
    /// routes added to the returned router afterwards (`Router::layer` only
    /// covers the routes it is given): call it last.
    ///
    /// # Panics
    ///
    /// When `app` has a route of its own where the observability routes go
    /// (axum refuses overlapping routes): the message names the path, and
    /// [`Builder::path_prefix`] moves ours.
    ///
    /// ```
    /// use axum::{Router, routing::get};
    ///
    /// let watch = serverwatch::ServerWatch::builder().build()?;
    /// let app: Router = watch.instrument(Router::new().route("/", get(|| async { "hi" })));
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    #[track_caller]
    pub fn instrument<S>(&self, app: Router<S>) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let prefix = self.inner.path_prefix.as_str();
        let routes = match prefix {
            "" => self.router(),
            prefix => Router::new().nest(prefix, self.router()),
        };
        let app = app.layer(self.layer().for_axum());
        // Merged into the routes (not the other way round) so that the
        // app's fallback, now instrumented, is the one that stays: axum keeps
        // the fallback of the router passed to `merge` when neither has a
        // custom one. axum panics on an overlap, inside this crate: caught, to
        // panic again at the caller's line, with what to do about it.
        match catch_unwind(AssertUnwindSafe(|| routes.merge(app))) {
            Ok(router) => router,
            Err(payload) => panic!("{}", collision(prefix, &*payload)),
        }
    }

    /// The recorder of the `metrics` facade (feature `metrics`): install it
    /// with `metrics::set_global_recorder(watch.metrics_recorder())`, and
    /// what the app records through `metrics::counter!`, `gauge!` and
    /// `histogram!` appears on `/metrics` and in the OTLP push. serverwatch
    /// never installs it by itself. Every clone records into the same
    /// store.
    ///
    /// ```
    /// let watch = serverwatch::ServerWatch::builder().build()?;
    /// metrics::with_local_recorder(&watch.metrics_recorder(), || {
    ///     metrics::counter!("orders.placed").increment(1);
    /// });
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    #[cfg(feature = "metrics")]
    pub fn metrics_recorder(&self) -> MetricsRecorder {
        let recorder = self.inner.handles.values.get::<MetricsRecorder>();
        recorder.expect("the facade's part is registered").clone()
    }

    /// Stops the OTLP export after a last one, so that the final requests
    /// reach the collector (an export under way when it is called is the
    /// last one). Returns within the OTLP timeout
    /// ([`Builder::otlp_timeout`]) whatever the collector does. Call it when
    /// the server has stopped serving. Without OTLP (or a second time) it
    /// returns at once.
    ///
    /// ```
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let watch = serverwatch::ServerWatch::builder().build()?;
    /// // … axum::serve(listener, app).with_graceful_shutdown(signal).await?;
    /// watch.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub async fn shutdown(&self) {
        for running in &self.inner.handles.running {
            running.shutdown().await;
        }
    }

    #[cfg(test)]
    pub(crate) fn sources(&self) -> &Arc<source::Sources> {
        self.inner.endpoints.sources()
    }

    #[cfg(test)]
    pub(crate) fn requests(&self) -> &RequestStore {
        &self.inner.requests
    }
}

/// The message of a route collision in [`ServerWatch::instrument`]: axum's
/// own, with the path of ours it names and the setting that moves them.
fn collision(prefix: &str, payload: &(dyn Any + Send)) -> String {
    let axum = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("overlapping routes");
    let mut ours: Vec<String> = exporters::routes::PATHS
        .iter()
        .map(|path| format!("{prefix}{path}"))
        .collect();
    // The longest first: `/dashboard/history` before `/dashboard`.
    ours.sort_by_key(|path| std::cmp::Reverse(path.len()));
    let named = |path: &String| [format!("{path}`"), format!("{path}\"")];
    let path = ours
        .iter()
        .find(|path| named(path).iter().any(|n| axum.contains(n.as_str())))
        .map_or_else(|| ours.join(", "), |path| format!("`{path}`"));
    let at = if prefix.is_empty() {
        "the root"
    } else {
        prefix
    };
    format!(
        "serverwatch cannot add its observability routes at {at}: the app already has a route at \
         {path} ({axum}). Move serverwatch's routes with the `path_prefix` setting \
         (`ServerWatch::builder().path_prefix(\"/ops\")`), or mount `ServerWatch::router()` \
         yourself"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layer knows the observability routes by their paths: each path
    /// listed is a route of the router, with that very template, and a
    /// path not listed is none.
    #[tokio::test]
    async fn every_observability_route_is_listed() {
        use axum::extract::MatchedPath;
        use axum::middleware::{self, Next};
        use tower::ServiceExt;

        #[derive(Clone)]
        struct Template(Option<String>);
        async fn template(request: Request, next: Next) -> axum::response::Response {
            let matched = request.extensions().get::<MatchedPath>();
            let template = Template(matched.map(|m| m.as_str().to_owned()));
            let mut response = next.run(request).await;
            response.extensions_mut().insert(template);
            response
        }
        let watch = ServerWatch::builder().build().unwrap();
        let router: Router = watch.router().layer(middleware::from_fn(template));
        let get = |path: &str| {
            let request = Request::get(path).body(axum::body::Body::empty()).unwrap();
            let response = router.clone().oneshot(request);
            async move {
                let response = response.await.unwrap();
                let template = response.extensions().get::<Template>().cloned();
                (response.status(), template.and_then(|t| t.0))
            }
        };
        for listed in exporters::routes::PATHS {
            // An asset that exists: `{name}` is the only parameter.
            let path = listed.replace("{name}", "dashboard.js");
            assert!(!path.contains('{'), "a value for the parameter of {listed}");
            let (status, template) = get(&path).await;
            assert_ne!(status, 404, "{path}");
            assert_eq!(template.as_deref(), Some(*listed), "{path}");
        }
        assert_eq!(
            get("/not-listed").await,
            (http::StatusCode::NOT_FOUND, None)
        );
    }

    /// A layer covers the nested services the watch knew when it was made.
    #[tokio::test]
    async fn a_layer_takes_the_nested_services_mounted_before_it() {
        use tower::ServiceExt;

        let watch = ServerWatch::builder().build().unwrap();
        let early = watch.layer().for_axum();
        let assets = tower::service_fn(|_: Request| async {
            Ok::<_, Infallible>(axum::response::Response::new(axum::body::Body::empty()))
        });
        let app: Router = watch.nest_service(Router::new(), "/static", assets);
        for layer in [early, watch.layer().for_axum()] {
            let request = Request::get("/static/site.css").body(axum::body::Body::empty());
            let response = app.clone().layer(layer).oneshot(request.unwrap()).await;
            assert_eq!(response.unwrap().status(), 200);
        }
        let routes = watch.requests().summary().routes;
        let routes: Vec<(&str, u64)> = routes
            .iter()
            .map(|(route, totals)| (route.as_str(), totals.requests()))
            .collect();
        assert_eq!(routes, [("/static/{*rest}", 1), ("unmatched", 1)]);
    }
}
