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

use super::Views;
use super::health::HealthReport;
use super::prometheus::{self, Format};

/// The liveness probe's path: 200 while the process answers. It touches no
/// dependency, so that an orchestrator never restarts a healthy process
/// for a database that is down.
pub(crate) const LIVENESS_PATH: &str = "/livez";
/// The readiness probe's path: 200 while every critical check (and the
/// database's probe) passes, else 503 and the names of those that fail.
pub(crate) const READINESS_PATH: &str = "/readyz";

/// Builds the router.
pub(crate) fn router<S>(views: Arc<Views>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let routes = Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health));
    #[cfg(feature = "dashboard")]
    let routes = routes.merge(super::dashboard::routes());
    let routes = if views.access().is_protected() {
        routes.layer(middleware::from_fn_with_state(
            Arc::clone(&views),
            require_token,
        ))
    } else {
        routes
    };
    routes
        .route(LIVENESS_PATH, get(liveness))
        .route(READINESS_PATH, get(readiness))
        .with_state(views)
}

async fn metrics(State(views): State<Arc<Views>>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    let state = views.state();
    state.refresh_probes_in_background();
    let mut body = prometheus::encode(state.read_families().await, format);
    if let Some(registry) = views.registry() {
        prometheus::append_registry(&mut body, registry, format);
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        )],
        body,
    )
        .into_response()
}

async fn health(State(views): State<Arc<Views>>) -> Response {
    let report = HealthReport::read(views.state()).await;
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

async fn readiness(State(views): State<Arc<Views>>) -> Response {
    let failed = views.state().not_ready().await;
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
async fn require_token(State(views): State<Arc<Views>>, request: Request, next: Next) -> Response {
    #[cfg(feature = "dashboard")]
    if let Some(response) = super::dashboard::sign_in(views.access(), &request) {
        if response.status() == http::StatusCode::UNAUTHORIZED {
            views.state().count_unauthorized();
        }
        return response;
    }
    if views.access().allows(request.headers()) {
        return next.run(request).await;
    }
    views.state().count_unauthorized();
    #[cfg(feature = "dashboard")]
    return super::dashboard::refused(&request);
    #[cfg(not(feature = "dashboard"))]
    super::auth::unauthorized(())
}
