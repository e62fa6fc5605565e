//! How a browser signs in to a protected dashboard: it opens
//! `…/dashboard?token=<token>` once, and gets the token in an HttpOnly
//! cookie and a redirect to the page without the token in the address.

use axum::extract::{MatchedPath, Request};
use axum::response::{IntoResponse, Response};
use cookie::{Cookie, SameSite};
use http::{HeaderValue, StatusCode, header};
use percent_encoding::percent_decode_str;

use super::PAGE_PATH;
use crate::exporters::auth::{Access, TOKEN_COOKIE, unauthorized};

/// The answer to a sign-in (`GET …/dashboard?token=…`): a 303 with the
/// cookie when the token is right, a 401 when it is not. `None` for every
/// other request.
pub(crate) fn sign_in(access: &Access, request: &Request) -> Option<Response> {
    let given = sign_in_token(request)?;
    let token = access.token()?;
    Some(if access.matches(&given) {
        signed_in(request, token)
    } else {
        refused(request)
    })
}

/// The 401 of a protected route. The dashboard page also says, as plain
/// text, how a browser signs in; every other route answers nothing else.
pub(crate) fn refused(request: &Request) -> Response {
    if !is_page(request) {
        return unauthorized(());
    }
    unauthorized((
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
    ))
}

/// The route template the request matched, prefix included (`/ops/dashboard`).
fn matched_path(request: &Request) -> Option<&str> {
    request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
}

fn is_page(request: &Request) -> bool {
    matched_path(request).is_some_and(|p| p.ends_with(PAGE_PATH))
}

/// The `token` query parameter of `GET …/dashboard?token=…`, percent-decoded
/// (a `+` stays a `+`).
fn sign_in_token(request: &Request) -> Option<Vec<u8>> {
    if !(request.method() == http::Method::GET || request.method() == http::Method::HEAD)
        || !is_page(request)
    {
        return None;
    }
    request.uri().query()?.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        (name == "token").then(|| percent_decode_str(value).collect())
    })
}

/// 303 to the page without the query, setting the cookie for every route
/// mounted beside the page (Path = the mount path, `/ops/` or `/`).
fn signed_in(request: &Request, token: &str) -> Response {
    let mut cookie = Cookie::build((TOKEN_COOKIE, token))
        .http_only(true)
        .same_site(SameSite::Strict);
    // The page is `<mount path>dashboard`. A prefix holding a parameter has
    // no single path: the browser's default, the page's directory, is then
    // the mount path itself.
    let mount = matched_path(request).and_then(|p| p.strip_suffix("dashboard"));
    if let Some(mount) = mount.filter(|m| !m.contains(['{', '}'])) {
        cookie = cookie.path(mount.to_owned());
    }
    let Ok(cookie) = HeaderValue::try_from(cookie.build().encoded().to_string()) else {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_printable_token_survives_the_cookie() {
        let token: String = (b'!'..=b'~').map(char::from).collect();
        let encoded = Cookie::new(TOKEN_COOKIE, token.as_str())
            .encoded()
            .to_string();
        let value = encoded.strip_prefix("serverwatch_token=").unwrap();
        assert!(!value.contains([';', ',', '"', '\\', ' ']), "{encoded}");
        let parsed = Cookie::parse_encoded(encoded.as_str()).unwrap();
        assert_eq!(parsed.value(), token);
    }
}
