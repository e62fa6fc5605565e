#![doc = include_str!("docs/crate.md")]

mod builder;
mod config;
mod error;
mod instruments;
mod integrations;
mod record;
mod state;
mod views;

use std::sync::Arc;

use axum::Router;

#[doc(inline)]
pub use crate::builder::Builder;
#[doc(inline)]
pub use crate::error::BuildError;
#[doc(inline)]
pub use crate::integrations::checks::CheckOptions;
#[cfg(feature = "metrics")]
#[doc(inline)]
pub use crate::integrations::facade::MetricsRecorder;
#[doc(inline)]
pub use crate::record::{
    AnyBody, AxumBody, RequestBody, RequestMetricsLayer, RequestMetricsService, ResponseBody,
    ResponseFuture,
};
use crate::views::Views;
#[cfg(feature = "otlp")]
use crate::views::otlp::OtlpExporter;
#[cfg(feature = "otlp")]
#[doc(inline)]
pub use crate::views::otlp::OtlpProtocol;

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
    views: Arc<Views>,
    path_prefix: String,
    #[cfg(feature = "otlp")]
    otlp: Option<OtlpExporter>,
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
        views: Views,
        path_prefix: String,
        #[cfg(feature = "otlp")] otlp: Option<OtlpExporter>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                views: Arc::new(views),
                path_prefix,
                #[cfg(feature = "otlp")]
                otlp,
            }),
        }
    }

    /// The layer that records requests. Add it with
    /// [`Router::layer`](axum::Router::layer), after the routes it should see
    /// (with [`for_axum`](RequestMetricsLayer::for_axum) there, it costs
    /// less); it also works on any other tower stack (see
    /// [`RequestMetricsLayer`]).
    ///
    /// ```
    /// use axum::{Router, routing::get};
    ///
    /// let watch = serverwatch::ServerWatch::builder().build()?;
    /// let app: Router = Router::new()
    ///     .route("/", get(|| async { "hi" }))
    ///     .layer(watch.layer());
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    pub fn layer(&self) -> RequestMetricsLayer {
        RequestMetricsLayer::new(self.inner.views.state().requests())
    }

    /// The observability routes, `/metrics`, `/health` and (feature
    /// `dashboard`) `/dashboard`, protected by the bearer token if one is
    /// set. Mount them where you like: nest them under a prefix, or serve
    /// them on a listener of their own.
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
        views::routes::router(Arc::clone(&self.inner.views))
    }

    /// The one-call setup: records every request of `app` (its nested
    /// routers and its fallback included) and adds the observability routes
    /// under [`Builder::path_prefix`]. Requests to the observability routes
    /// themselves are not recorded. `app` must not have routes of its own at
    /// those paths (axum refuses overlapping routes): move ours with
    /// [`Builder::path_prefix`] if it does.
    ///
    /// ```
    /// use axum::{Router, routing::get};
    ///
    /// let watch = serverwatch::ServerWatch::builder().build()?;
    /// let app: Router = watch.instrument(Router::new().route("/", get(|| async { "hi" })));
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    pub fn instrument<S>(&self, app: Router<S>) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let routes = match self.inner.path_prefix.as_str() {
            "" => self.router(),
            prefix => Router::new().nest(prefix, self.router()),
        };
        // Merged into the routes (not the other way round) so that the
        // app's fallback, now instrumented, is the one that stays: axum keeps
        // the fallback of the router passed to `merge` when neither has a
        // custom one.
        routes.merge(app.layer(self.layer().for_axum()))
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
        MetricsRecorder::new(self.inner.views.state().facade())
    }

    /// Stops the OTLP export after a last one, so that the final requests
    /// reach the collector; waits at most the export timeout. Call it when
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
        #[cfg(feature = "otlp")]
        if let Some(otlp) = &self.inner.otlp {
            otlp.shutdown().await;
        }
    }

    #[cfg(test)]
    pub(crate) fn service_name(&self) -> &str {
        &self.inner.views.state().service().name
    }

    #[cfg(test)]
    pub(crate) fn state(&self) -> &state::State {
        self.inner.views.state()
    }
}
