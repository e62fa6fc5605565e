//! The observability routes (`/metrics`, `/health`) and their optional
//! bearer-token protection.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, HeaderValue, StatusCode, header};

use crate::Shared;
use crate::export::prometheus::{self, Format};
use crate::health::HealthReport;

/// Builds the router; protected when a bearer token is configured.
pub(crate) fn router<S>(shared: Arc<Shared>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let protected = shared.config.bearer_token.is_some();
    let routes = Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health));
    #[cfg(feature = "dashboard")]
    let routes = routes.merge(crate::dashboard::routes());
    let routes = if protected {
        routes.layer(middleware::from_fn_with_state(
            Arc::clone(&shared),
            require_token,
        ))
    } else {
        routes
    };
    routes.with_state(shared)
}

async fn metrics(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    let body = prometheus::encode(&prometheus::registry(shared), format);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        )],
        body,
    )
        .into_response()
}

async fn health(State(shared): State<Arc<Shared>>) -> Response {
    let report = HealthReport::read(&shared);
    (
        report.http_status(),
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        axum::Json(report),
    )
        .into_response()
}

/// Answers 401, with nothing but a `WWW-Authenticate` challenge, unless the
/// request carries the configured bearer token.
async fn require_token(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let expected = shared.config.bearer_token.as_deref().unwrap_or_default();
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
        )
            .into_response()
    }
}

/// Compares without an early exit, so the time taken does not tell how much
/// of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, &x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(!x));
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_equal_only_when_identical() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3creT"));
        assert!(!constant_time_eq(b"s3cre", b"s3cret"));
        assert!(!constant_time_eq(b"", b"s3cret"));
    }
}
