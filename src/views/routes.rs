//! The observability routes (`/metrics`, `/health`, and `/dashboard` with
//! its feature), protected when a token is set.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, HeaderValue, header};

use super::Views;
use super::health::HealthReport;
use super::prometheus;

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
    routes.with_state(views)
}

async fn metrics(State(views): State<Arc<Views>>, headers: HeaderMap) -> Response {
    let state = views.state();
    state.refresh_probes_in_background();
    prometheus::response(state.read_families().await, &headers)
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
