//! The observability routes (`/metrics`, `/health`, and `/dashboard` with
//! its feature) and their optional token protection.

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
    #[cfg(feature = "mongodb")]
    if let Some(mongo) = &shared.mongo {
        mongo.refresh().await;
    }
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
    let report = HealthReport::read(&shared).await;
    (
        report.http_status(),
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        axum::Json(report),
    )
        .into_response()
}

/// The cookie a browser keeps the token in: it cannot send an
/// `Authorization` header when it navigates to the dashboard.
const TOKEN_COOKIE: &str = "serverwatch_token";

/// Answers 401, with nothing but a `WWW-Authenticate` challenge, unless the
/// request carries the configured token: as `Authorization: Bearer <token>`,
/// or in the `serverwatch_token` cookie. `GET …/dashboard?token=<token>`
/// signs a browser in: it sets that cookie and redirects to the page without
/// the token in the address.
async fn require_token(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let expected = shared.config.bearer_token.as_deref().unwrap_or_default();
    #[cfg(feature = "dashboard")]
    if let Some(given) = dashboard_sign_in_token(&request) {
        return if constant_time_eq(&given, expected.as_bytes()) {
            dashboard_sign_in(&request, expected)
        } else {
            unauthorized(&request)
        };
    }
    let headers = request.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let cookie = cookie_token(headers);
    // Both compared, so that the time taken does not tell which was tried.
    let bearer_ok = bearer.is_some_and(|t| constant_time_eq(t.as_bytes(), expected.as_bytes()));
    let cookie_ok = cookie.is_some_and(|t| constant_time_eq(&t, expected.as_bytes()));
    if bearer_ok | cookie_ok {
        next.run(request).await
    } else {
        unauthorized(&request)
    }
}

/// 401 with a `Bearer` challenge. The dashboard page also says, as plain
/// text, how a browser signs in; every other route answers nothing else.
fn unauthorized(request: &Request) -> Response {
    let challenge = [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))];
    #[cfg(feature = "dashboard")]
    if is_dashboard_page(request) {
        return (
            StatusCode::UNAUTHORIZED,
            challenge,
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            "401 Unauthorized: this dashboard is protected by a token.\n\
             Open it once as …/dashboard?token=<the token>: the browser then keeps it \
             in a cookie for this session.\n",
        )
            .into_response();
    }
    #[cfg(not(feature = "dashboard"))]
    let _ = request;
    (StatusCode::UNAUTHORIZED, challenge).into_response()
}

/// The value of the `serverwatch_token` cookie, percent-decoded.
fn cookie_token(headers: &HeaderMap) -> Option<Vec<u8>> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == TOKEN_COOKIE).then(|| percent_decode(value.trim_matches('"')))
        })
}

/// The route template the request matched, prefix included (`/ops/dashboard`).
#[cfg(feature = "dashboard")]
fn matched_path(request: &Request) -> Option<&str> {
    request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str())
}

#[cfg(feature = "dashboard")]
fn is_dashboard_page(request: &Request) -> bool {
    matched_path(request).is_some_and(|p| p.ends_with(crate::dashboard::PAGE_PATH))
}

/// The `token` query parameter of `GET …/dashboard?token=…`, percent-decoded.
#[cfg(feature = "dashboard")]
fn dashboard_sign_in_token(request: &Request) -> Option<Vec<u8>> {
    if !(request.method() == http::Method::GET || request.method() == http::Method::HEAD)
        || !is_dashboard_page(request)
    {
        return None;
    }
    request.uri().query()?.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        (name == "token").then(|| percent_decode(value))
    })
}

/// 303 to the page without the query, setting the cookie for every route
/// mounted beside the page (Path = the mount path, `/ops/` or `/`).
#[cfg(feature = "dashboard")]
fn dashboard_sign_in(request: &Request, token: &str) -> Response {
    let mut cookie = format!(
        "{TOKEN_COOKIE}={}; HttpOnly; SameSite=Strict",
        percent_encode_cookie(token)
    );
    // The page is `<mount path>dashboard`. A prefix holding a parameter has
    // no single path: the browser's default, the page's directory, is then
    // the mount path itself.
    let mount = matched_path(request).and_then(|p| p.strip_suffix("dashboard"));
    if let Some(mount) = mount.filter(|m| !m.contains(['{', '}'])) {
        cookie.push_str("; Path=");
        cookie.push_str(mount);
    }
    let Ok(cookie) = HeaderValue::try_from(cookie) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    (
        StatusCode::SEE_OTHER,
        [
            // Relative: resolved against `…/dashboard?token=…`, it is the
            // same page, under whatever prefix, without the query.
            (header::LOCATION, HeaderValue::from_static("dashboard")),
            (header::SET_COOKIE, cookie),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ],
    )
        .into_response()
}

/// Percent-encodes every byte a cookie value cannot hold (and `%`).
#[cfg(feature = "dashboard")]
fn percent_encode_cookie(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_graphic() && !matches!(b, b'"' | b',' | b';' | b'\\' | b'%') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes; anything else, a `+` included, stays as it is.
fn percent_decode(value: &str) -> Vec<u8> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
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

    #[test]
    fn the_token_cookie_is_found_among_others_and_decoded() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; b=2"));
        assert_eq!(cookie_token(&headers), None);
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("x=y;serverwatch_token=a%3Bb%25c+d; z=1"),
        );
        assert_eq!(cookie_token(&headers).as_deref(), Some(&b"a;b%c+d"[..]));
    }

    #[test]
    fn percent_decoding_leaves_malformed_escapes_and_plus_alone() {
        assert_eq!(percent_decode("a%20b+c"), b"a b+c");
        assert_eq!(percent_decode("%4"), b"%4");
        assert_eq!(percent_decode("%zz%41"), b"%zzA");
        assert_eq!(percent_decode("%E2%82%AC"), "€".as_bytes());
    }

    #[cfg(feature = "dashboard")]
    #[test]
    fn cookie_encoding_round_trips_every_printable_token() {
        let token: String = (b'!'..=b'~').map(char::from).collect();
        let encoded = percent_encode_cookie(&token);
        assert!(!encoded.contains([';', ',', '"', '\\', ' ']), "{encoded}");
        assert_eq!(percent_decode(&encoded), token.as_bytes());
    }
}
