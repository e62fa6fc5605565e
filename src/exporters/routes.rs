//! The observability routes (`/metrics`, `/health`, and `/dashboard` with
//! its feature), protected when a token is set, and the probes of an
//! orchestrator (`/livez`, `/readyz`), which are not: they tell nothing but
//! whether the service is up and ready.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, HeaderValue, header};

use super::Endpoints;
use super::health::HealthReport;
use super::prometheus;
use crate::record::Claims;

/// Every route of [`router`], relative to where it is mounted. A layer
/// outside the router offers a claim to the requests whose route ends with
/// one of them, and the router takes it: however it is mounted, its
/// requests are never recorded.
pub(crate) const PATHS: &[&str] = &[
    "/metrics",
    "/health",
    #[cfg(feature = "dashboard")]
    super::dashboard::PAGE_PATH,
    #[cfg(feature = "dashboard")]
    "/dashboard/history",
    #[cfg(feature = "dashboard")]
    "/dashboard/assets/{name}",
    LIVENESS_PATH,
    READINESS_PATH,
];

/// The liveness probe's path: 200 while the process answers. It touches no
/// dependency, so that an orchestrator never restarts a healthy process
/// for a database that is down.
pub(crate) const LIVENESS_PATH: &str = "/livez";
/// The readiness probe's path: 200 while every critical check (and the
/// database's probe) passes, else 503 and the names of those that fail.
pub(crate) const READINESS_PATH: &str = "/readyz";

/// Builds the router.
pub(crate) fn router<S>(endpoints: Arc<Endpoints>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let routes = Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health));
    #[cfg(feature = "dashboard")]
    let routes = routes.merge(super::dashboard::routes());
    let routes = if endpoints.access().is_protected() {
        routes.layer(middleware::from_fn_with_state(
            Arc::clone(&endpoints),
            require_token,
        ))
    } else {
        routes
    };
    // Outside the token: an orchestrator's probes carry none.
    let routes = routes
        .route(LIVENESS_PATH, get(liveness))
        .route(READINESS_PATH, get(readiness));
    // Outermost, so that refused requests are not recorded either.
    routes
        .layer(middleware::map_request(unrecorded))
        .with_state(endpoints)
}

/// Takes the request off the books of every layer it went through.
async fn unrecorded(request: Request) -> Request {
    Claims::take_all(request.extensions());
    request
}

async fn metrics(State(endpoints): State<Arc<Endpoints>>, headers: HeaderMap) -> Response {
    let sources = endpoints.sources();
    sources.refresh_in_background();
    let encode = |families| {
        prometheus::response(
            families,
            sources,
            endpoints.registry(),
            &headers,
            endpoints.exposition(),
        )
    };
    endpoints
        .scrape_limits()
        .scrape(sources, &headers, encode)
        .await
}

async fn health(State(endpoints): State<Arc<Endpoints>>) -> Response {
    let report = HealthReport::read(endpoints.sources()).await;
    (
        report.http_status(),
        [
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        axum::Json(report),
    )
        .into_response()
}

async fn liveness() -> Response {
    probe_answer(http::StatusCode::OK, "ok\n".to_owned())
}

async fn readiness(State(endpoints): State<Arc<Endpoints>>) -> Response {
    let failed = endpoints.sources().not_ready().await;
    if failed.is_empty() {
        probe_answer(http::StatusCode::OK, "ok\n".to_owned())
    } else {
        let names = failed.join(", ");
        probe_answer(
            http::StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {names}\n"),
        )
    }
}

/// A probe's answer: plain text, never cached.
fn probe_answer(status: http::StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
        ],
        body,
    )
        .into_response()
}

/// Lets the request through when it carries the token; a browser signing
/// in to the dashboard gets its cookie; anything else gets 401, and is
/// counted (`serverwatch_unauthorized_requests_total`).
async fn require_token(
    State(endpoints): State<Arc<Endpoints>>,
    request: Request,
    next: Next,
) -> Response {
    #[cfg(feature = "dashboard")]
    if let Some(response) = super::dashboard::sign_in(endpoints.access(), &request) {
        if response.status() == http::StatusCode::UNAUTHORIZED {
            endpoints.sources().count_unauthorized();
        }
        return response;
    }
    if endpoints.access().allows(request.headers()) {
        return next.run(request).await;
    }
    endpoints.sources().count_unauthorized();
    #[cfg(feature = "dashboard")]
    return super::dashboard::refused(&request);
    #[cfg(not(feature = "dashboard"))]
    super::auth::unauthorized(())
}
