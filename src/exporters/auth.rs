//! Protection of the observability routes by a bearer token: in the
//! `Authorization` header, or in the cookie a browser keeps it in (it cannot
//! send a header when it navigates to the dashboard).

use axum::response::{IntoResponse, Response};
use cookie::Cookie;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use subtle::ConstantTimeEq;

use crate::config::BearerToken;

/// The cookie a browser keeps the token in.
pub(crate) const TOKEN_COOKIE: &str = "serverwatch_token";

/// Who may read the observability routes: anyone, or the holders of the
/// token (which its `Debug` does not show).
#[derive(Debug, Clone)]
pub(crate) struct Access {
    token: Option<BearerToken>,
}

impl Access {
    pub(crate) fn new(token: Option<BearerToken>) -> Self {
        Self { token }
    }

    pub(crate) fn is_protected(&self) -> bool {
        self.token.is_some()
    }

    /// The token, for the cookie a browser signs in with.
    #[cfg(feature = "dashboard")]
    pub(crate) fn token(&self) -> Option<&str> {
        self.token.as_ref().map(|t| t.0.as_str())
    }

    /// Whether `candidate` is the token. The time taken tells neither how
    /// much of it was right nor how long the token is.
    pub(crate) fn matches(&self, candidate: &[u8]) -> bool {
        let Some(BearerToken(token)) = &self.token else {
            return true;
        };
        let token = token.as_bytes();
        if candidate.len() == token.len() {
            candidate.ct_eq(token).into()
        } else {
            // The same work as a comparison of equal lengths, then no.
            let _ = token.ct_eq(token);
            false
        }
    }

    /// Whether the request carries the token, as a bearer token or in the
    /// cookie.
    pub(crate) fn allows(&self, headers: &HeaderMap) -> bool {
        if self.token.is_none() {
            return true;
        }
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_credentials);
        let cookie = cookie_token(headers);
        // Both compared, so that the time taken does not tell which was tried.
        let bearer_ok = bearer.is_some_and(|t| self.matches(t.as_bytes()));
        let cookie_ok = cookie.is_some_and(|t| self.matches(t.as_bytes()));
        bearer_ok | cookie_ok
    }
}

/// 401 with a `Bearer` challenge, and `body` (`()` for none).
pub(crate) fn unauthorized(body: impl IntoResponse) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
        body,
    )
        .into_response()
}

/// The token of an `Authorization: Bearer <token>` value. The scheme is
/// matched without regard to case, as RFC 9110 (section 11.1) wants.
fn bearer_credentials(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start_matches(' '))
}

/// The value of the token cookie, percent-decoded.
fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse_encoded)
        .filter_map(Result::ok)
        .find(|c| c.name() == TOKEN_COOKIE)
        .map(|c| c.value_trimmed().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_equal_only_when_identical() {
        let access = Access::new(Some(BearerToken("s3cret".into())));
        assert!(access.matches(b"s3cret"));
        assert!(!access.matches(b"s3creT"));
        assert!(!access.matches(b"s3cre"));
        assert!(!access.matches(b""));
        assert!(Access::new(None).matches(b"anything"));
    }

    #[test]
    fn the_bearer_scheme_is_matched_without_regard_to_case() {
        for value in ["Bearer t0k", "bearer t0k", "BEARER t0k", "bEaReR  t0k"] {
            assert_eq!(bearer_credentials(value), Some("t0k"), "{value}");
        }
        for value in ["Basic t0k", "Bearert0k", "t0k", "Bearer"] {
            assert_eq!(bearer_credentials(value), None, "{value}");
        }
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
        assert_eq!(cookie_token(&headers).as_deref(), Some("a;b%c+d"));
        let access = Access::new(Some(BearerToken("a;b%c+d".into())));
        assert!(access.allows(&headers));
    }
}
