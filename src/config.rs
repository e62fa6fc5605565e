//! The core settings, checked: what [`Builder`](crate::Builder) collects
//! before the parts are built. The parts with settings of their own (OTLP,
//! MongoDB) check theirs beside their code.

use crate::error::BuildError;
use crate::model::exemplar::ExemplarFilter;
use crate::model::histogram::Bounds;
use crate::source::Service;
use crate::sources::requests::{LabelSettings, RequestBounds};

/// Largest accepted `max_series`.
const MAX_SERIES_LIMIT: usize = 100_000;
/// Largest accepted `recent_errors`.
const RECENT_ERRORS_LIMIT: usize = 1_000;

/// The bearer token: its `Debug` never shows it, so that no log of a
/// settings struct leaks it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct BearerToken(pub(crate) String);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

/// The core settings, as given; [`Config`] is what `check` makes of them.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// `None`: the environment decides (`OTEL_SERVICE_NAME`, …).
    pub(crate) service_name: Option<String>,
    pub(crate) service_version: String,
    pub(crate) max_series: usize,
    pub(crate) recent_errors: usize,
    pub(crate) bearer_token: Option<BearerToken>,
    /// `None`: shown when a bearer token is set.
    pub(crate) panic_messages: Option<bool>,
    pub(crate) path_prefix: String,
    /// Put before every name on `/metrics`.
    pub(crate) metric_prefix: Option<String>,
    /// Classic bounds; `None` keeps the defaults.
    pub(crate) duration_buckets: Option<Vec<f64>>,
    pub(crate) request_body_size_buckets: Option<Vec<f64>>,
    pub(crate) response_body_size_buckets: Option<Vec<f64>>,
    pub(crate) disabled_instruments: Vec<String>,
    /// Route templates that are not recorded.
    pub(crate) skip_routes: Vec<String>,
    /// `None`: `OTEL_METRICS_EXEMPLAR_FILTER` decides.
    pub(crate) exemplar_filter: Option<ExemplarFilter>,
    pub(crate) max_scrapes_in_flight: usize,
    /// The app's request labels, route groups and status classes.
    pub(crate) labels: LabelSettings,
    /// Labels on every series, in the order given.
    pub(crate) constant_labels: Vec<(String, String)>,
    pub(crate) otel_scope_labels: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            service_name: None,
            service_version: "unknown".to_owned(),
            max_series: 2_000,
            recent_errors: 10,
            bearer_token: None,
            panic_messages: None,
            path_prefix: String::new(),
            metric_prefix: None,
            duration_buckets: None,
            request_body_size_buckets: None,
            response_body_size_buckets: None,
            disabled_instruments: Vec::new(),
            skip_routes: Vec::new(),
            exemplar_filter: None,
            max_scrapes_in_flight: 4,
            labels: LabelSettings::default(),
            constant_labels: Vec::new(),
            otel_scope_labels: false,
        }
    }
}

/// The core settings, checked.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) service: Service,
    pub(crate) max_series: usize,
    pub(crate) recent_errors: usize,
    pub(crate) bearer_token: Option<BearerToken>,
    /// Whether `/health` shows the messages of panics.
    pub(crate) panic_messages: bool,
    pub(crate) path_prefix: String,
    pub(crate) metric_prefix: Option<String>,
    pub(crate) bounds: RequestBounds,
    /// Names of instruments that exist.
    pub(crate) disabled_instruments: Vec<String>,
    pub(crate) skip_routes: Vec<String>,
    pub(crate) max_scrapes_in_flight: usize,
    /// `otel_scope_name` and `otel_scope_version` on every series of
    /// `/metrics`.
    pub(crate) otel_scope_labels: bool,
}

impl Settings {
    /// Checks every setting; `name_from_env` gives the service name when
    /// none was set.
    pub(crate) fn check(
        self,
        name_from_env: impl FnOnce() -> Option<String>,
    ) -> Result<Config, BuildError> {
        let name = self
            .service_name
            .or_else(name_from_env)
            .unwrap_or_else(|| "unknown_service".to_owned());
        if name.trim().is_empty() {
            return Err(BuildError::new("service_name", "must not be empty"));
        }
        if !(1..=MAX_SERIES_LIMIT).contains(&self.max_series) {
            return Err(BuildError::new(
                "max_series",
                format!(
                    "must be between 1 and {MAX_SERIES_LIMIT}, got {}",
                    self.max_series
                ),
            ));
        }
        if self.max_scrapes_in_flight == 0 {
            return Err(BuildError::new(
                "max_scrapes_in_flight",
                "must be at least 1, or no scrape would be served",
            ));
        }
        if self.recent_errors > RECENT_ERRORS_LIMIT {
            return Err(BuildError::new(
                "recent_errors",
                format!(
                    "must be at most {RECENT_ERRORS_LIMIT}, got {}",
                    self.recent_errors
                ),
            ));
        }
        if let Some(BearerToken(token)) = &self.bearer_token
            && (token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(BuildError::new(
                "bearer_token",
                "must be non-empty printable ASCII without spaces",
            ));
        }
        // "/" is the root, as "" is.
        let prefix = if self.path_prefix == "/" {
            ""
        } else {
            self.path_prefix.as_str()
        };
        if !prefix.is_empty()
            && (!prefix.starts_with('/')
                || prefix.ends_with('/')
                || prefix.contains(['{', '}', '*', '?', '#']))
        {
            return Err(BuildError::new(
                "path_prefix",
                format!(
                    "must be \"/\" (the root) or a path like \"/ops\" (leading '/', no \
                     trailing '/', no wildcards), got {prefix:?}"
                ),
            ));
        }
        if let Some(prefix) = &self.metric_prefix {
            check_metric_prefix(prefix)?;
        }
        check_constant_labels(&self.constant_labels)?;
        if let Some(route) = self.skip_routes.iter().find(|r| !r.starts_with('/')) {
            return Err(BuildError::new(
                "skip_routes",
                format!("a route template starts with '/', got {route:?}"),
            ));
        }
        let mut bounds = RequestBounds::default();
        for (setting, given, unit, slot) in [
            (
                "duration_buckets",
                &self.duration_buckets,
                RequestBounds::DURATION_UNIT,
                &mut bounds.duration,
            ),
            (
                "request_body_size_buckets",
                &self.request_body_size_buckets,
                RequestBounds::SIZE_UNIT,
                &mut bounds.request_size,
            ),
            (
                "response_body_size_buckets",
                &self.response_body_size_buckets,
                RequestBounds::SIZE_UNIT,
                &mut bounds.response_size,
            ),
        ] {
            if let Some(given) = given {
                *slot = Bounds::new(given, unit).map_err(|e| BuildError::new(setting, e))?;
            }
        }
        let disabled_instruments = self
            .disabled_instruments
            .iter()
            .map(|name| {
                let name = name.trim();
                crate::sources::instrument(name)
                    .map(|_| name.to_owned())
                    .ok_or_else(|| {
                        BuildError::new(
                            "disable_instruments",
                            format!(
                                "no instrument is called {name:?}: use an OpenTelemetry name \
                             (http.server.request.body.size) or a /metrics family name \
                             (http_server_request_body_size_bytes)"
                            ),
                        )
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Config {
            disabled_instruments,
            service: Service {
                name,
                version: self.service_version,
                // A random (version 4) UUID, as the semantic conventions
                // recommend.
                instance_id: uuid::Uuid::new_v4().to_string(),
                constant_labels: self.constant_labels,
            },
            max_series: self.max_series,
            recent_errors: self.recent_errors,
            // A panic's message often holds request data: shown only to
            // the holders of the token, unless the user says otherwise.
            panic_messages: self.panic_messages.unwrap_or(self.bearer_token.is_some()),
            bearer_token: self.bearer_token,
            path_prefix: prefix.to_owned(),
            metric_prefix: self.metric_prefix,
            bounds,
            skip_routes: self.skip_routes,
            max_scrapes_in_flight: self.max_scrapes_in_flight,
            otel_scope_labels: self.otel_scope_labels,
        })
    }
}

/// The variable that chooses the exemplar filter.
pub(crate) const EXEMPLAR_FILTER: &str = "OTEL_METRICS_EXEMPLAR_FILTER";

/// The exemplar filter: the builder's, else the variable's (`from_env`,
/// any case), else `trace_based`, the specification's default.
pub(crate) fn exemplar_filter(
    given: Option<ExemplarFilter>,
    from_env: Option<String>,
) -> Result<ExemplarFilter, BuildError> {
    if let Some(filter) = given {
        return Ok(filter);
    }
    let Some(value) = from_env.filter(|v| !v.trim().is_empty()) else {
        return Ok(ExemplarFilter::default());
    };
    match value.trim().to_ascii_lowercase().as_str() {
        "always_on" => Ok(ExemplarFilter::AlwaysOn),
        "always_off" => Ok(ExemplarFilter::AlwaysOff),
        "trace_based" => Ok(ExemplarFilter::TraceBased),
        _ => Err(BuildError::new(
            EXEMPLAR_FILTER,
            format!(
                "unknown filter {value:?}: use \"always_on\", \"always_off\" or \"trace_based\""
            ),
        )),
    }
}

/// The labels `/metrics` writes itself, beside serverwatch's own series'
/// labels: a constant label of one of these names would clash.
const EXPOSITION_LABELS: &[&str] = &["le", "quantile", "otel_scope_name", "otel_scope_version"];

/// A constant label and a request or response label of one name would
/// give a series two values of one label.
pub(crate) fn check_label_clash(
    constant_labels: &[(String, String)],
    labels: &LabelSettings,
) -> Result<(), BuildError> {
    let app_labels = (labels.request.iter().map(|(name, _)| name))
        .chain(labels.response.iter().map(|(name, _)| name));
    for app_label in app_labels {
        let spelled = app_label.replace('.', "_");
        if let Some((name, _)) = constant_labels.iter().find(|(n, _)| *n == spelled) {
            return Err(BuildError::new(
                "constant_label",
                format!("the name {name:?} is also a request or response label"),
            ));
        }
    }
    Ok(())
}

/// Constant labels as Prometheus wants them: each name a valid label name,
/// not reserved (`__…`), not a label that serverwatch's series or the
/// exposition already carry, and given once.
fn check_constant_labels(labels: &[(String, String)]) -> Result<(), BuildError> {
    for (n, (name, _)) in labels.iter().enumerate() {
        let mut chars = name.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        let reason = if !valid {
            "must be a letter or '_' followed by letters, digits and underscores"
        } else if name.starts_with("__") {
            "must not start with \"__\": Prometheus reserves those names"
        } else if EXPOSITION_LABELS.contains(&name.as_str())
            || crate::sources::label_names().any(|l| l == name)
        {
            "is a label serverwatch's own series carry"
        } else if labels[..n].iter().any(|(earlier, _)| earlier == name) {
            "is given twice"
        } else {
            continue;
        };
        return Err(BuildError::new(
            "constant_label",
            format!("the name {name:?} {reason}"),
        ));
    }
    Ok(())
}

/// A metric name prefix as Prometheus wants one: a letter, then letters,
/// digits and underscores, not ending with one (the prefix is joined with
/// `_`). Colons are for recording rules, and `__` starts reserved names.
fn check_metric_prefix(prefix: &str) -> Result<(), BuildError> {
    let mut chars = prefix.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !prefix.ends_with('_');
    if valid {
        Ok(())
    } else {
        Err(BuildError::new(
            "metric_prefix",
            format!(
                "must be a letter followed by letters, digits and underscores, not ending with \
                 '_' (it is joined to each name with one), such as \"inventory\"; got {prefix:?}"
            ),
        ))
    }
}
