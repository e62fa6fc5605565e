//! The labels of a request series: method, route template, status and
//! error. Every value comes from a closed set or from the app's own route
//! templates, so a client cannot mint label values.

use std::borrow::Cow;
use std::hash::{Hash, Hasher};

use hashbrown::Equivalent;
use http::StatusCode;

use super::labelling::LabelSetId;
use crate::model::series::ToKey;

/// The `http.route` value of requests that matched no route. A raw path
/// never becomes a label value.
pub(crate) const UNMATCHED_ROUTE: &str = "unmatched";

/// HTTP methods as the semantic conventions name them; anything else is
/// `_OTHER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Connect,
    Options,
    Trace,
    Patch,
    Other,
}

impl Method {
    pub(crate) const ALL: [Method; 10] = [
        Method::Get,
        Method::Head,
        Method::Post,
        Method::Put,
        Method::Delete,
        Method::Connect,
        Method::Options,
        Method::Trace,
        Method::Patch,
        Method::Other,
    ];

    pub(crate) fn from_http(method: &http::Method) -> Self {
        match *method {
            http::Method::GET => Method::Get,
            http::Method::HEAD => Method::Head,
            http::Method::POST => Method::Post,
            http::Method::PUT => Method::Put,
            http::Method::DELETE => Method::Delete,
            http::Method::CONNECT => Method::Connect,
            http::Method::OPTIONS => Method::Options,
            http::Method::TRACE => Method::Trace,
            http::Method::PATCH => Method::Patch,
            _ => Method::Other,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Connect => "CONNECT",
            Method::Options => "OPTIONS",
            Method::Trace => "TRACE",
            Method::Patch => "PATCH",
            Method::Other => "_OTHER",
        }
    }
}

/// Why a request counts as an error (`error.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum ErrorKind {
    /// The handler answered with a 5xx status; `error.type` is the code.
    ServerError,
    /// The handler panicked (serverwatch answered 500), or its streamed
    /// body did (after the status it was sent with).
    Panic,
    /// The streamed response body yielded an error after the status was
    /// sent: the client got an answer cut short.
    BodyError,
    /// The request ended before an answer was sent: the client closed the
    /// connection, or the server dropped the request. It has no status. A
    /// client that leaves in the middle of a streamed body is not one: it
    /// was answered.
    Aborted,
}

impl ErrorKind {
    /// The `error.type` value of a request that ended with `status`.
    pub(crate) fn error_type(self, status: Option<StatusCode>) -> Cow<'static, str> {
        match self {
            // A server error always has its status; `_OTHER` is the
            // conventions' fallback.
            ErrorKind::ServerError => status.map_or(Cow::Borrowed("_OTHER"), |s| {
                Cow::Owned(s.as_str().to_owned())
            }),
            ErrorKind::Panic => Cow::Borrowed("panic"),
            ErrorKind::BodyError => Cow::Borrowed("body_error"),
            ErrorKind::Aborted => Cow::Borrowed(ABORTED),
        }
    }
}

/// The `error.type` of an aborted request, and its key among the status
/// codes of `/health`.
pub(crate) const ABORTED: &str = "aborted";

/// Labels of one series. `R` is `Box<str>` when stored and `&str` when
/// looking up, so a lookup never allocates; both hash alike.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct SeriesKey<R = Box<str>> {
    pub(crate) method: Method,
    pub(crate) route: R,
    /// `None` when no answer was sent: no `http.response.status_code`.
    pub(crate) status: Option<StatusCode>,
    pub(crate) error: Option<ErrorKind>,
    /// The app's own labels, by number.
    pub(crate) labels: LabelSetId,
}

impl<R: AsRef<str>> Hash for SeriesKey<R> {
    /// The small fields as one word: one round of the hasher, not one per
    /// field, on every request.
    fn hash<H: Hasher>(&self, state: &mut H) {
        let error = self.error.map_or(0, |e| e as u64 + 1);
        let status = u64::from(self.status.map_or(0, |s| s.as_u16()));
        let labels = u64::from(self.labels);
        state.write_u64(self.method as u64 | status << 8 | error << 24 | labels << 32);
        self.route.as_ref().hash(state);
    }
}

impl<R> SeriesKey<R> {
    /// The `error.type` value, if the request failed.
    pub(crate) fn error_type(&self) -> Option<Cow<'static, str>> {
        self.error.map(|e| e.error_type(self.status))
    }

    /// The status as `/health` keys it: the code, or `aborted`.
    pub(crate) fn status_key(&self) -> String {
        status_key(self.status)
    }

    /// What the overflow series keeps of these labels: the error.
    pub(crate) fn overflow(&self) -> OverflowKey {
        OverflowKey {
            error: self.error,
            // Only an error's status is kept: it is its `error.type`.
            status: self.status.filter(|_| self.error.is_some()),
        }
    }
}

impl ToKey<SeriesKey> for SeriesKey<&str> {
    fn to_key(&self) -> SeriesKey {
        SeriesKey {
            method: self.method,
            route: self.route.into(),
            status: self.status,
            error: self.error,
            labels: self.labels,
        }
    }
}

impl Equivalent<SeriesKey> for SeriesKey<&str> {
    fn equivalent(&self, key: &SeriesKey) -> bool {
        self.method == key.method
            && self.status == key.status
            && self.error == key.error
            && self.labels == key.labels
            && *self.route == *key.route
    }
}

/// Labels of the overflow series: only the error, so that errors past the
/// cardinality cap still count as errors. At most a hundred 5xx codes and
/// the other kinds: a small, closed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct OverflowKey {
    pub(crate) error: Option<ErrorKind>,
    /// The status of a 5xx error.
    pub(crate) status: Option<StatusCode>,
}

impl OverflowKey {
    /// How many distinct keys there can be, at most.
    pub(crate) const MAX: usize = 128;

    pub(crate) fn error_type(&self) -> Option<Cow<'static, str>> {
        self.error.map(|e| e.error_type(self.status))
    }
}

/// A status code as `/health` keys it: `"200"`, or `aborted` for none.
pub(crate) fn status_key(status: Option<StatusCode>) -> String {
    status.map_or_else(|| ABORTED.to_owned(), |s| s.as_str().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_are_other() {
        let m = http::Method::from_bytes(b"BREW").unwrap();
        assert_eq!(Method::from_http(&m).as_str(), "_OTHER");
    }

    #[test]
    fn the_overflow_keeps_only_the_error() {
        let key = |status, error| SeriesKey {
            method: Method::Get,
            route: "/a",
            status: StatusCode::from_u16(status).ok(),
            error,
            labels: super::super::NO_LABELS,
        };
        assert_eq!(key(200, None).overflow(), key(404, None).overflow());
        let failed = key(503, Some(ErrorKind::ServerError)).overflow();
        assert_eq!(failed.error_type().as_deref(), Some("503"));
        assert_eq!(
            key(500, Some(ErrorKind::Panic))
                .overflow()
                .error_type()
                .as_deref(),
            Some("panic")
        );
    }
}
