//! The settings of the request labels: the app's own, route groups and
//! status classes.

use std::sync::Arc;

use super::Builder;
use crate::sources::requests::{RequestHead, ResponseHead};

impl Builder {
    /// Adds a label of the app's own to every request instrument, its value
    /// taken from each request: a tenant's tier, an API version. `label`
    /// reads the request's [`RequestHead`] (its method, URI, headers and
    /// extensions, as in `http::request::Parts`) and gives the value, from a
    /// fixed set in the code (a `&'static str`, so that no client can mint
    /// values and none is copied), or `None` for no value (the label is
    /// then absent). It runs once per request, when the request comes in,
    /// before the handler; it costs what it does, and one lookup of the
    /// label set.
    ///
    /// The name is spelled as given over OTLP and with `_` for `.` on
    /// `/metrics` (`tenant.tier` gives `tenant_tier`); it is a letter or
    /// `_`, then letters, digits, `_` or `.`, and not one serverwatch or
    /// Prometheus uses (`http_route`, `error_type`, `le`, `job`, `__…`). At most 8
    /// labels of the app's, request and response ones together. Each label
    /// set counts in [`max_series`](Self::max_series): past it, requests
    /// go to the overflow series, which keeps their error. `/health` adds
    /// up the requests per label and value under `application.labels`, and
    /// the dashboard shows them.
    ///
    /// ```
    /// let watch = serverwatch::ServerWatch::builder()
    ///     .request_label("api_version", |request| {
    ///         match request.headers.get("x-api-version")?.as_bytes() {
    ///             b"1" => Some("v1"),
    ///             b"2" => Some("v2"),
    ///             _ => Some("other"),
    ///         }
    ///     })
    ///     .build()?;
    /// let err = serverwatch::ServerWatch::builder()
    ///     .request_label("http_route", |_| None)
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.setting(), "request_label");
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    pub fn request_label<F>(mut self, name: impl Into<String>, label: F) -> Self
    where
        F: Fn(RequestHead<'_>) -> Option<&'static str> + Send + Sync + 'static,
    {
        let labels = &mut self.settings.labels.request;
        labels.push((name.into(), Arc::new(label)));
        self
    }

    /// Adds a label of the app's own taken from each response, as
    /// [`request_label`](Self::request_label) does from requests, with the
    /// same rules, from the response's [`ResponseHead`] (status, headers,
    /// extensions): a cache outcome the handler put in a header or an
    /// extension, for instance. It runs once per response, when the
    /// handler has answered; a request that got no answer from the handler
    /// (it panicked, or the client left) has no value.
    ///
    /// ```
    /// let watch = serverwatch::ServerWatch::builder()
    ///     .response_label("cache", |response| {
    ///         let hit = response.headers.get("x-cache")? == "HIT";
    ///         Some(if hit { "hit" } else { "miss" })
    ///     })
    ///     .build()?;
    /// let err = serverwatch::ServerWatch::builder()
    ///     .response_label("cache-state", |_| None)
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.setting(), "response_label");
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    pub fn response_label<F>(mut self, name: impl Into<String>, label: F) -> Self
    where
        F: Fn(ResponseHead<'_>) -> Option<&'static str> + Send + Sync + 'static,
    {
        let labels = &mut self.settings.labels.response;
        labels.push((name.into(), Arc::new(label)));
        self
    }

    /// Records the routes whose templates match one of `patterns` under
    /// one `http.route` value, `group`: fewer series for many routes that
    /// read alike. A pattern is matched against the template, as a path is
    /// against a route (axum's syntax: `{name}` matches a segment,
    /// `{*rest}` the rest), so `/static/{*path}` matches the templates
    /// `/static/{*path}` and `/static/site.css` alike. A pattern starts
    /// with `/`, and two may not conflict: else [`build`](Self::build)
    /// fails with the setting `group_routes`. Skipped routes
    /// ([`skip_routes`](Self::skip_routes)) are matched on their own
    /// templates.
    ///
    /// ```
    /// let watch = serverwatch::ServerWatch::builder()
    ///     .group_routes("/static/*", ["/static/{*path}", "/assets/{*path}"])
    ///     .build()?;
    /// let err = serverwatch::ServerWatch::builder()
    ///     .group_routes("/static/*", ["static/{*path}"])
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.setting(), "group_routes");
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    pub fn group_routes<I, S>(mut self, group: impl Into<String>, patterns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let patterns = patterns.into_iter().map(Into::into).collect();
        self.settings.labels.groups.push((group.into(), patterns));
        self
    }

    /// Shows `http_response_status_code` as its class, `2xx`, `3xx`, `4xx`
    /// or `5xx`, on `/metrics`, over OTLP (as a string, where the semantic
    /// conventions have an integer) and in `/health`'s `status_codes`: at
    /// most four series per route and method, for dashboards that need no
    /// more. A 5xx answer keeps its code as its `error_type`, as the
    /// conventions say, so it still has a series per code; the recent
    /// errors keep the codes too. Default: off, the codes.
    ///
    /// ```
    /// let watch = serverwatch::ServerWatch::builder().status_code_classes(true).build()?;
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    pub fn status_code_classes(mut self, on: bool) -> Self {
        self.settings.labels.status_classes = on;
        self
    }
}
