//! `/dashboard`: the built-in HTML dashboard, compiled into the binary, and
//! `/dashboard/history`, the sampled history its charts start from.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderValue, header};

use crate::Shared;

/// The dashboard's routes, relative to where the observability routes are
/// mounted.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new().route("/dashboard/history", get(history))
}

async fn history(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        axum::Json(shared.history.document()),
    )
        .into_response()
}
