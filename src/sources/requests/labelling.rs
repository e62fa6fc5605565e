//! The app's own say in the request labels: labels of its own taken from
//! each request or response, route templates folded into groups, and
//! status codes shown as classes. Nothing of it runs unless configured.
//!
//! The values of the app's labels are interned per store: a label set is
//! looked up once, and the request carries only its number, so that a
//! request without them carries nothing more.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use hashbrown::Equivalent;
use http::{Extensions, HeaderMap, Request, Response, StatusCode, Uri, Version};

use super::labels::ErrorKind;
use crate::error::BuildError;
use crate::model::instruments::{self as i, Attribute};
use crate::model::series::{SeriesSet, ToKey};

/// What a [`request_label`](crate::Builder::request_label) function reads
/// of a request: the fields of [`http::request::Parts`], borrowed, so that
/// reading them costs nothing (only a request taken apart has `Parts`).
///
/// ```
/// let request = http::Request::get("/items/1").header("x-api-version", "2").body(())?;
/// let head = serverwatch::RequestHead::from(&request);
/// assert_eq!(head.headers["x-api-version"], "2");
/// assert_eq!(head.uri.path(), "/items/1");
/// # Ok::<(), http::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct RequestHead<'a> {
    /// The request's method.
    pub method: &'a http::Method,
    /// The request's URI: the raw path, never to be a label value as it is.
    pub uri: &'a Uri,
    /// The request's HTTP version.
    pub version: Version,
    /// The request's headers.
    pub headers: &'a HeaderMap,
    /// What the middleware before the layer put there (an authenticated
    /// tenant, say).
    pub extensions: &'a Extensions,
}

impl<'a, B> From<&'a Request<B>> for RequestHead<'a> {
    fn from(request: &'a Request<B>) -> Self {
        Self {
            method: request.method(),
            uri: request.uri(),
            version: request.version(),
            headers: request.headers(),
            extensions: request.extensions(),
        }
    }
}

/// What a [`response_label`](crate::Builder::response_label) function
/// reads of a response: the fields of [`http::response::Parts`], borrowed.
///
/// ```
/// let response = http::Response::builder().status(404).header("x-cache", "HIT").body(())?;
/// let head = serverwatch::ResponseHead::from(&response);
/// assert_eq!(head.status, 404);
/// assert_eq!(head.headers["x-cache"], "HIT");
/// # Ok::<(), http::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ResponseHead<'a> {
    /// The status the handler answered with.
    pub status: StatusCode,
    /// The response's HTTP version.
    pub version: Version,
    /// The response's headers.
    pub headers: &'a HeaderMap,
    /// What the handler put there.
    pub extensions: &'a Extensions,
}

impl<'a, B> From<&'a Response<B>> for ResponseHead<'a> {
    fn from(response: &'a Response<B>) -> Self {
        Self {
            status: response.status(),
            version: response.version(),
            headers: response.headers(),
            extensions: response.extensions(),
        }
    }
}

/// Gives a request's value of one of the app's labels.
pub(crate) type RequestLabel = Arc<dyn Fn(RequestHead<'_>) -> Option<&'static str> + Send + Sync>;
/// Gives a response's value of one of the app's labels.
pub(crate) type ResponseLabel = Arc<dyn Fn(ResponseHead<'_>) -> Option<&'static str> + Send + Sync>;

/// The most labels of its own an app may add: each multiplies the series.
pub(crate) const MAX_LABELS: usize = 8;

/// The number of a label set: [`NO_LABELS`] without the app's labels.
pub(crate) type LabelSetId = u32;
/// No label of the app's (none configured, or none given yet).
pub(crate) const NO_LABELS: LabelSetId = 0;
/// A label set past the cap: the request goes to the overflow series.
pub(crate) const OVERFLOW_LABELS: LabelSetId = u32::MAX;

/// The settings as given to the builder.
#[derive(Clone, Default)]
pub(crate) struct LabelSettings {
    pub(crate) request: Vec<(String, RequestLabel)>,
    pub(crate) response: Vec<(String, ResponseLabel)>,
    /// A group's label value, and the patterns of the templates it holds.
    pub(crate) groups: Vec<(String, Vec<String>)>,
    pub(crate) status_classes: bool,
}

impl fmt::Debug for LabelSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn names<F>(labels: &[(String, F)]) -> Vec<&str> {
            labels.iter().map(|(name, _)| name.as_str()).collect()
        }
        f.debug_struct("LabelSettings")
            .field("request", &names(&self.request))
            .field("response", &names(&self.response))
            .field("groups", &self.groups)
            .field("status_classes", &self.status_classes)
            .finish()
    }
}

/// Labels `/metrics` or OTLP already give every request series: the app's
/// may not take their names.
const TAKEN: [&Attribute; 5] = [
    &i::HTTP_REQUEST_METHOD,
    &i::HTTP_ROUTE,
    &i::HTTP_RESPONSE_STATUS_CODE,
    &i::ERROR_TYPE,
    &i::OVERFLOW,
];

impl LabelSettings {
    /// Checks every name and pattern; `max_series` caps the label sets.
    pub(crate) fn check(self, max_series: usize) -> Result<Labelling, BuildError> {
        let mut attributes: Vec<&'static Attribute> = Vec::new();
        let names = self.request.iter().map(|(n, _)| ("request_label", n));
        let names = names.chain(self.response.iter().map(|(n, _)| ("response_label", n)));
        for (setting, name) in names {
            let prometheus = check_name(setting, name)?;
            if attributes.iter().any(|a| a.prometheus == Some(&prometheus)) {
                return Err(BuildError::new(
                    setting,
                    format!("the label {name:?} is given twice (as {prometheus:?} on /metrics)"),
                ));
            }
            attributes.push(Attribute::interned(name, |_| prometheus));
        }
        if attributes.len() > MAX_LABELS {
            return Err(BuildError::new(
                if self.response.is_empty() {
                    "request_label"
                } else {
                    "response_label"
                },
                format!(
                    "at most {MAX_LABELS} labels of the app's own, got {}: each multiplies the series",
                    attributes.len()
                ),
            ));
        }
        let mut groups = matchit::Router::new();
        let mut group_names = Vec::new();
        for (group, patterns) in self.groups {
            if group.trim().is_empty() {
                return Err(BuildError::new(
                    "group_routes",
                    "a group's name must not be empty",
                ));
            }
            for pattern in patterns {
                let bad = |why: String| {
                    BuildError::new(
                        "group_routes",
                        format!("pattern {pattern:?} of {group:?}: {why}"),
                    )
                };
                if !pattern.starts_with('/') {
                    return Err(bad("a pattern starts with '/'".to_owned()));
                }
                groups
                    .insert(pattern.as_str(), group_names.len())
                    .map_err(|e| bad(e.to_string()))?;
            }
            group_names.push(group.into_boxed_str());
        }
        Ok(Labelling {
            attributes: attributes.into(),
            request: self.request.into_iter().map(|(_, f)| f).collect(),
            response: self.response.into_iter().map(|(_, f)| f).collect(),
            groups: (!group_names.is_empty()).then(|| Groups {
                matcher: groups,
                names: group_names.into(),
            }),
            status_classes: self.status_classes,
            sets: SeriesSet::new(max_series),
            next: AtomicU32::new(NO_LABELS + 1),
        })
    }
}

/// The Prometheus spelling of a label `name`, if it may be one of the app's.
fn check_name(setting: &'static str, name: &str) -> Result<String, BuildError> {
    let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
    if !valid {
        return Err(BuildError::new(
            setting,
            format!(
                "a label name is a letter or '_', then letters, digits, '_' or '.', got {name:?}"
            ),
        ));
    }
    let prometheus = name.replace('.', "_");
    // Prometheus's own, and those it gives every target.
    let reserved = prometheus.starts_with("__")
        || ["le", "quantile", "job", "instance"].contains(&&*prometheus);
    if reserved
        || TAKEN
            .iter()
            .any(|a| a.prometheus == Some(&prometheus) || a.otel == name)
    {
        return Err(BuildError::new(
            setting,
            format!("{name:?} is a label serverwatch or Prometheus already uses"),
        ));
    }
    Ok(prometheus)
}

/// Route templates folded into groups, matched as paths.
struct Groups {
    matcher: matchit::Router<usize>,
    names: Box<[Box<str>]>,
}

/// One interned label set: the values given after those of `parent`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct LabelSet<V = Box<[Option<&'static str>]>> {
    parent: LabelSetId,
    values: V,
}

impl ToKey<LabelSet> for LabelSet<&[Option<&'static str>]> {
    fn to_key(&self) -> LabelSet {
        LabelSet {
            parent: self.parent,
            values: self.values.into(),
        }
    }
}

impl Equivalent<LabelSet> for LabelSet<&[Option<&'static str>]> {
    fn equivalent(&self, key: &LabelSet) -> bool {
        self.parent == key.parent && *self.values == *key.values
    }
}

/// The checked settings, and the label sets seen.
pub(crate) struct Labelling {
    /// The request labels', then the response labels'.
    attributes: Box<[&'static Attribute]>,
    request: Box<[RequestLabel]>,
    response: Box<[ResponseLabel]>,
    groups: Option<Groups>,
    status_classes: bool,
    sets: SeriesSet<LabelSet, LabelSetId>,
    next: AtomicU32,
}

impl Default for Labelling {
    fn default() -> Self {
        LabelSettings::default()
            .check(1)
            .expect("no settings are valid settings")
    }
}

impl fmt::Debug for Labelling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Labelling")
            .field("attributes", &self.attributes)
            .field("status_classes", &self.status_classes)
            .finish_non_exhaustive()
    }
}

impl Labelling {
    /// Whether requests have labels of the app's.
    pub(crate) fn on_requests(&self) -> bool {
        !self.request.is_empty()
    }

    /// Whether responses have labels of the app's.
    pub(crate) fn on_responses(&self) -> bool {
        !self.response.is_empty()
    }

    /// The label set of a request: its values looked up once.
    // Out of line: a request path without labels keeps its code as it is.
    #[inline(never)]
    pub(crate) fn of_request(&self, head: RequestHead<'_>) -> LabelSetId {
        let mut values = [None; MAX_LABELS];
        for (value, label) in values.iter_mut().zip(&self.request) {
            *value = label(head);
        }
        self.intern(NO_LABELS, &values[..self.request.len()])
    }

    /// The label set of a request of the set `set` that got this response.
    // Out of line: a request path without labels keeps its code as it is.
    #[inline(never)]
    pub(crate) fn of_response(&self, set: LabelSetId, head: ResponseHead<'_>) -> LabelSetId {
        if set == OVERFLOW_LABELS {
            return set;
        }
        let mut values = [None; MAX_LABELS];
        for (value, label) in values.iter_mut().zip(&self.response) {
            *value = label(head);
        }
        self.intern(set, &values[..self.response.len()])
    }

    fn intern(&self, parent: LabelSetId, values: &[Option<&'static str>]) -> LabelSetId {
        let key = LabelSet { parent, values };
        let mut id = OVERFLOW_LABELS;
        let make = || self.next.fetch_add(1, Ordering::Relaxed);
        self.sets.with(&key, make, |set| id = *set);
        id
    }

    /// Whether it folds route templates or status codes.
    pub(crate) fn folds(&self) -> bool {
        self.groups.is_some() || self.status_classes
    }

    /// The route a template is recorded under: its group's, if any.
    pub(crate) fn route<'a>(&'a self, template: &'a str) -> &'a str {
        match &self.groups {
            Some(groups) => groups
                .matcher
                .at(template)
                .map_or(template, |found| &groups.names[*found.value]),
            None => template,
        }
    }

    /// The status a series keeps: its class's (`200` for any 2xx) when
    /// classes are on, but the code of a 5xx answer, its `error.type`.
    pub(crate) fn status(
        &self,
        status: Option<StatusCode>,
        error: Option<ErrorKind>,
    ) -> Option<StatusCode> {
        if self.status_classes && error != Some(ErrorKind::ServerError) {
            status.and_then(|s| StatusCode::from_u16(s.as_u16() / 100 * 100).ok())
        } else {
            status
        }
    }

    /// A status as it is shown: `2xx` when classes are on.
    pub(crate) fn status_label(&self, status: Option<StatusCode>) -> Option<String> {
        let status = status.filter(|_| self.status_classes)?;
        Some(format!("{}xx", status.as_u16() / 100))
    }

    /// Every label set seen, for one reading.
    pub(crate) fn resolver(&self) -> Resolver<'_> {
        Resolver {
            attributes: &self.attributes,
            sets: self
                .sets
                .collect(|set, id| (*id, set.clone()))
                .into_iter()
                .collect(),
        }
    }
}

/// The label sets of one reading, by number.
pub(crate) struct Resolver<'a> {
    attributes: &'a [&'static Attribute],
    sets: HashMap<LabelSetId, LabelSet>,
}

impl Resolver<'_> {
    /// The app's labels of the set `id`, in order, those without a value
    /// left out.
    pub(crate) fn labels(&self, id: LabelSetId) -> Vec<(&'static Attribute, &'static str)> {
        let mut values: Vec<Option<&'static str>> = Vec::new();
        let mut next = id;
        while let Some(set) = self.sets.get(&next) {
            values.splice(0..0, set.values.iter().copied());
            next = set.parent;
        }
        self.attributes
            .iter()
            .zip(values)
            .filter_map(|(attribute, value)| Some((*attribute, value?)))
            .collect()
    }

    /// The app's label names, in order.
    pub(crate) fn attributes(&self) -> &[&'static Attribute] {
        self.attributes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(_: RequestHead<'_>) -> Option<&'static str> {
        Some("gold")
    }

    fn settings(names: &[&str]) -> LabelSettings {
        LabelSettings {
            request: names
                .iter()
                .map(|n| (n.to_string(), Arc::new(label) as _))
                .collect(),
            ..LabelSettings::default()
        }
    }

    #[test]
    fn wrong_names_are_refused() {
        for names in [
            &["tier", "tier"][..],
            &["tier.a", "tier_a"],
            &["http_route"],
            &["http.route"],
            &["error_type"],
            &["__x"],
            &["le"],
            &["job"],
            &["1x"],
            &["a-b"],
            &["a", "b", "c", "d", "e", "f", "g", "h", "i"],
        ] {
            let err = settings(names).check(10).unwrap_err();
            assert_eq!(err.setting(), "request_label", "{names:?}");
        }
        assert!(settings(&["tenant.tier", "api_version"]).check(10).is_ok());
    }

    #[test]
    fn label_sets_are_interned_and_capped() {
        let labelling = settings(&["tier"]).check(1).unwrap();
        let request = Request::new(());
        let first = labelling.of_request(RequestHead::from(&request));
        assert_ne!(first, OVERFLOW_LABELS);
        assert_eq!(labelling.of_request(RequestHead::from(&request)), first);
        let full = labelling.intern(NO_LABELS, &[Some("silver")]);
        assert_eq!(full, OVERFLOW_LABELS);
        let resolver = labelling.resolver();
        let labels = resolver.labels(first);
        assert_eq!(labels.len(), 1);
        assert_eq!((labels[0].0.otel, labels[0].1), ("tier", "gold"));
    }

    #[test]
    fn groups_fold_templates_and_bad_patterns_are_refused() {
        let groups = |patterns: &[&str]| LabelSettings {
            groups: vec![(
                "/static/*".into(),
                patterns.iter().map(|p| p.to_string()).collect(),
            )],
            ..LabelSettings::default()
        };
        let labelling = groups(&["/static/{*path}", "/assets/{*path}"])
            .check(10)
            .unwrap();
        assert_eq!(labelling.route("/assets/{*path}"), "/static/*");
        assert_eq!(labelling.route("/static/{*rest}"), "/static/*");
        assert_eq!(labelling.route("/items/{id}"), "/items/{id}");
        for bad in [&["static"][..], &["/a/{*x}", "/a/{*x}"], &["/a/{x"]] {
            let err = groups(bad).check(10).unwrap_err();
            assert_eq!(err.setting(), "group_routes", "{bad:?}");
        }
    }

    #[test]
    fn classes_keep_the_code_of_a_5xx_answer() {
        let labelling = LabelSettings {
            status_classes: true,
            ..LabelSettings::default()
        }
        .check(10)
        .unwrap();
        let code = |c| StatusCode::from_u16(c).ok();
        assert_eq!(labelling.status(code(404), None), code(400));
        let server_error = Some(ErrorKind::ServerError);
        assert_eq!(labelling.status(code(503), server_error), code(503));
        assert_eq!(
            labelling.status(code(500), Some(ErrorKind::Panic)),
            code(500)
        );
        assert_eq!(labelling.status_label(code(503)).as_deref(), Some("5xx"));
        assert_eq!(labelling.status_label(None), None);
    }
}
