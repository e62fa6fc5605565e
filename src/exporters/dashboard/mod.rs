//! `/dashboard`: the built-in HTML dashboard, compiled into the binary,
//! `/dashboard/history`, the sampled history its charts start from, and the
//! browser's sign-in to a protected dashboard.
//!
//! The page (`dashboard/` at the root of the crate) reads `health` and
//! `dashboard/history` through relative URLs, so it works wherever the
//! observability routes are mounted. It inserts every value as text, and a
//! Content-Security-Policy keeps anything else from running: no inline
//! script, no other origin.

mod history;
mod sign_in;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderName, HeaderValue, StatusCode, header};

use history::History;
pub(crate) use sign_in::{refused, sign_in};

use crate::error::BuildError;
use crate::exporters::Endpoints;
use crate::part::{Assembly, Part, StartDebug, part_boilerplate};

/// The dashboard as a part: its history sampler starts with the sources.
#[derive(Debug, Clone, Default)]
pub(crate) struct DashboardPart;

impl Part for DashboardPart {
    part_boilerplate!();

    fn build(self: Box<Self>, assembly: &mut Assembly) -> Result<(), BuildError> {
        assembly.starts.push(StartDebug(
            "the dashboard's history",
            Box::new(|sources, handles| {
                handles.values.insert(History::start(sources));
                Ok(())
            }),
        ));
        Ok(())
    }
}

/// The page's own path, relative to where the routes are mounted.
pub(crate) const PAGE_PATH: &str = "/dashboard";

/// Same origin only, nothing inline, no framing, no forms.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

const INDEX_HTML: &str = include_str!("../../../dashboard/index.html");

/// One file served under `dashboard/assets/`.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "dashboard.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../dashboard/dashboard.js"),
    },
    Asset {
        name: "dashboard.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../../dashboard/dashboard.css"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../../../dashboard/icon.svg"),
    },
    Asset {
        name: "uPlot.iife.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../dashboard/vendor/uPlot.iife.min.js"),
    },
    Asset {
        name: "uPlot.min.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../../dashboard/vendor/uPlot.min.css"),
    },
    Asset {
        name: "uPlot-LICENSE.txt",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("../../../dashboard/vendor/uPlot-LICENSE"),
    },
];

/// A fingerprint of every asset, appended to their URLs in the page
/// (`?v=…`), so that a new build is never served from an old cache while
/// the assets themselves can be cached for good.
const ASSETS_VERSION: u64 = {
    // FNV-1a, at compile time.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut a = 0;
    while a < ASSETS.len() {
        let body = ASSETS[a].body;
        let mut i = 0;
        while i < body.len() {
            hash = (hash ^ body[i] as u64).wrapping_mul(0x0000_0100_0000_01b3);
            i += 1;
        }
        a += 1;
    }
    hash
};

/// The dashboard's routes, relative to where the observability routes are
/// mounted.
pub(crate) fn routes() -> Router<Arc<Endpoints>> {
    Router::new()
        .route(PAGE_PATH, get(page))
        .route("/dashboard/history", get(history))
        .route("/dashboard/assets/{name}", get(asset))
}

/// Headers every dashboard response carries.
fn hardening() -> [(HeaderName, HeaderValue); 3] {
    [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
    ]
}

async fn page(State(endpoints): State<Arc<Endpoints>>) -> Response {
    let service = &endpoints.sources().service;
    let html = INDEX_HTML
        .replace("@ASSETS_VERSION@", &format!("{ASSETS_VERSION:016x}"))
        .replace("@SERVICE_NAME@", &html_escape::encode_safe(&service.name))
        .replace(
            "@SERVICE_VERSION@",
            &html_escape::encode_safe(&service.version),
        );
    (
        hardening(),
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        html,
    )
        .into_response()
}

async fn history(State(endpoints): State<Arc<Endpoints>>) -> Response {
    (
        hardening(),
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        axum::Json(
            endpoints
                .value::<Arc<History>>()
                .map(|history| history.document()),
        ),
    )
        .into_response()
}

async fn asset(Path(name): Path<String>) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return (StatusCode::NOT_FOUND, hardening()).into_response();
    };
    (
        hardening(),
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            // The page links them with the fingerprint of this build.
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=31536000, immutable"),
            ),
        ],
        asset.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_the_page_links_is_served() {
        let mut linked = 0;
        for part in INDEX_HTML.split("dashboard/assets/").skip(1) {
            let name = part.split(['?', '"']).next().unwrap();
            assert!(
                ASSETS.iter().any(|a| a.name == name),
                "the page links {name}, which is not served"
            );
            linked += 1;
        }
        assert!(linked >= 4, "the page links its script, styles and icon");
    }
}
