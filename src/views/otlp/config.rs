//! OTLP settings, the OpenTelemetry way: the standard environment variables,
//! overridden by builder methods. A bad value fails `build()` with an error
//! that names the variable (or the builder method).

use std::time::Duration;

use http::{HeaderName, HeaderValue, Uri};
use percent_encoding::percent_decode_str;

use crate::config::Env;
use crate::error::BuildError;

/// The OTLP transport.
///
/// ```
/// let watch = serverwatch::ServerWatch::builder()
///     .otlp_endpoint("http://127.0.0.1:4317")
///     .otlp_protocol(serverwatch::OtlpProtocol::Grpc)
///     .build()?;
/// # Ok::<(), serverwatch::BuildError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// Protobuf over HTTP POST to `…/v1/metrics` (`http/protobuf`, the default).
    HttpProtobuf,
    /// gRPC (`grpc`).
    Grpc,
}

/// What the builder methods set; `None` leaves the environment's say.
#[derive(Clone, Default)]
pub(crate) struct OtlpSettings {
    pub(crate) endpoint: Option<String>,
    pub(crate) protocol: Option<OtlpProtocol>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) interval: Option<Duration>,
    /// Histograms as base-2 exponential ones.
    pub(crate) exponential_histograms: Option<bool>,
}

/// Settings after the environment was read and everything was checked.
#[derive(Clone)]
pub(crate) struct OtlpConfig {
    /// The URL requests go to: `…/v1/metrics` for HTTP, the server for gRPC.
    pub(crate) endpoint: Uri,
    pub(crate) protocol: OtlpProtocol,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) timeout: Duration,
    pub(crate) interval: Duration,
    /// `OTEL_RESOURCE_ATTRIBUTES`, decoded.
    pub(crate) resource_attributes: Vec<(String, String)>,
    /// Histograms as base-2 exponential ones, not explicit-bucket ones.
    pub(crate) exponential_histograms: bool,
}

/// Header values are credentials (API keys): `Debug` shows their names only.
fn redacted<'a, N: std::fmt::Debug + 'a, V: 'a>(
    headers: impl IntoIterator<Item = &'a (N, V)>,
) -> Vec<(&'a N, &'static str)> {
    headers
        .into_iter()
        .map(|(n, _)| (n, "<redacted>"))
        .collect()
}

impl std::fmt::Debug for OtlpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpSettings")
            .field("endpoint", &self.endpoint)
            .field("protocol", &self.protocol)
            .field("headers", &redacted(&self.headers))
            .field("timeout", &self.timeout)
            .field("interval", &self.interval)
            .finish()
    }
}

impl std::fmt::Debug for OtlpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpConfig")
            .field("endpoint", &self.endpoint)
            .field("protocol", &self.protocol)
            .field("headers", &redacted(&self.headers))
            .field("timeout", &self.timeout)
            .field("interval", &self.interval)
            .field("resource_attributes", &self.resource_attributes)
            .finish()
    }
}

const ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
const METRICS_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT";
const PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
const METRICS_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL";
const HEADERS: &str = "OTEL_EXPORTER_OTLP_HEADERS";
const METRICS_HEADERS: &str = "OTEL_EXPORTER_OTLP_METRICS_HEADERS";
const TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TIMEOUT";
const METRICS_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT";
const INTERVAL: &str = "OTEL_METRIC_EXPORT_INTERVAL";
const EXPORTER: &str = "OTEL_METRICS_EXPORTER";
const RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";
const HISTOGRAM_AGGREGATION: &str = "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION";

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

fn error(setting: &'static str, reason: String) -> BuildError {
    BuildError::new(setting, reason)
}

impl OtlpConfig {
    /// `service.name` from `OTEL_RESOURCE_ATTRIBUTES`, if it names one.
    pub(crate) fn service_name(&self) -> Option<&str> {
        self.resource_attributes
            .iter()
            .find(|(k, _)| k == "service.name")
            .map(|(_, v)| v.as_str())
    }
}

impl OtlpSettings {
    /// Resolves the settings against `env`. `Ok(None)`: OTLP is off, because
    /// no endpoint is set anywhere or `OTEL_METRICS_EXPORTER` names another
    /// exporter (`none`, say).
    pub(crate) fn resolve(&self, env: Env<'_>) -> Result<Option<OtlpConfig>, BuildError> {
        let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        if let Some(exporters) = var(EXPORTER)
            && !exporters.split(',').any(|e| e.trim() == "otlp")
        {
            return Ok(None);
        }
        let protocol = match self.protocol {
            Some(p) => p,
            None => match first(&var, &[METRICS_PROTOCOL, PROTOCOL]) {
                None => OtlpProtocol::HttpProtobuf,
                Some((name, value)) => parse_protocol(name, &value)?,
            },
        };
        let endpoint = if let Some(url) = &self.endpoint {
            endpoint_url("otlp_endpoint", url, protocol, true)?
        } else if let Some(url) = var(METRICS_ENDPOINT) {
            endpoint_url(METRICS_ENDPOINT, &url, protocol, false)?
        } else if let Some(url) = var(ENDPOINT) {
            endpoint_url(ENDPOINT, &url, protocol, true)?
        } else {
            return Ok(None);
        };

        // Generic first, so that the metrics-specific variable and then the
        // builder win for the same header name.
        let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
        let mut add = |setting: &'static str, name: &str, value: &str| {
            let name = HeaderName::try_from(name.trim())
                .map_err(|_| error(setting, format!("{name:?} is not a valid header name")))?;
            let value = HeaderValue::try_from(value.trim()).map_err(|_| {
                error(
                    setting,
                    format!("the value of {name} is not a valid header value"),
                )
            })?;
            headers.retain(|(n, _)| *n != name);
            headers.push((name, value));
            Ok::<_, BuildError>(())
        };
        for setting in [HEADERS, METRICS_HEADERS] {
            if let Some(list) = var(setting) {
                for (name, value) in parse_pairs(setting, &list)? {
                    add(setting, &name, &value)?;
                }
            }
        }
        for (name, value) in &self.headers {
            add("otlp_header", name, value)?;
        }

        let timeout = match self.timeout {
            Some(t) => positive("otlp_timeout", t)?,
            None => match first(&var, &[METRICS_TIMEOUT, TIMEOUT]) {
                Some((name, value)) => millis(name, &value)?,
                None => DEFAULT_TIMEOUT,
            },
        };
        let interval = match self.interval {
            Some(i) => positive("otlp_export_interval", i)?,
            None => match var(INTERVAL) {
                Some(value) => millis(INTERVAL, &value)?,
                None => DEFAULT_INTERVAL,
            },
        };
        let resource_attributes = match var(RESOURCE_ATTRIBUTES) {
            Some(list) => parse_pairs(RESOURCE_ATTRIBUTES, &list)?,
            None => Vec::new(),
        };
        let exponential_histograms = match self.exponential_histograms {
            Some(exponential) => exponential,
            None => match var(HISTOGRAM_AGGREGATION) {
                None => false,
                Some(value) => match value.trim().to_ascii_lowercase().as_str() {
                    "explicit_bucket_histogram" => false,
                    "base2_exponential_bucket_histogram" => true,
                    other => {
                        return Err(error(
                            HISTOGRAM_AGGREGATION,
                            format!(
                                "unknown aggregation {other:?}: use \"explicit_bucket_histogram\" \
                                 or \"base2_exponential_bucket_histogram\""
                            ),
                        ));
                    }
                },
            },
        };
        Ok(Some(OtlpConfig {
            endpoint,
            protocol,
            headers,
            timeout,
            interval,
            resource_attributes,
            exponential_histograms,
        }))
    }
}

/// The first of `names` that is set, with its value.
fn first(
    var: &dyn Fn(&str) -> Option<String>,
    names: &[&'static str],
) -> Option<(&'static str, String)> {
    names.iter().find_map(|&n| var(n).map(|v| (n, v)))
}

fn parse_protocol(setting: &'static str, value: &str) -> Result<OtlpProtocol, BuildError> {
    match value.trim() {
        "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
        "grpc" => Ok(OtlpProtocol::Grpc),
        "http/json" => Err(error(
            setting,
            "\"http/json\" is not supported: use \"http/protobuf\" or \"grpc\"".into(),
        )),
        other => Err(error(
            setting,
            format!("unknown protocol {other:?}: use \"http/protobuf\" or \"grpc\""),
        )),
    }
}

/// Checks the URL; for HTTP, a base URL (`append_path`) gets `/v1/metrics`.
fn endpoint_url(
    setting: &'static str,
    url: &str,
    protocol: OtlpProtocol,
    append_path: bool,
) -> Result<Uri, BuildError> {
    let url = url.trim();
    let uri: Uri = url
        .parse()
        .map_err(|e| error(setting, format!("{url:?} is not a URL: {e}")))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(error(
            setting,
            format!("{url:?} is not an http:// or https:// URL with a host"),
        ));
    }
    if uri.scheme_str() == Some("https") && !cfg!(feature = "otlp-tls") {
        return Err(error(
            setting,
            format!("{url:?} needs TLS: enable serverwatch's `otlp-tls` feature"),
        ));
    }
    if protocol == OtlpProtocol::HttpProtobuf && append_path && !uri.path().ends_with("/v1/metrics")
    {
        let joined = format!("{}/v1/metrics", url.trim_end_matches('/'));
        return joined
            .parse()
            .map_err(|e| error(setting, format!("{joined:?} is not a URL: {e}")));
    }
    Ok(uri)
}

fn millis(setting: &'static str, value: &str) -> Result<Duration, BuildError> {
    let ms: u64 = value.trim().parse().map_err(|_| {
        error(
            setting,
            format!("{value:?} is not a whole number of milliseconds"),
        )
    })?;
    positive(setting, Duration::from_millis(ms))
}

fn positive(setting: &'static str, d: Duration) -> Result<Duration, BuildError> {
    if d.is_zero() {
        Err(error(setting, "must be longer than zero".into()))
    } else {
        Ok(d)
    }
}

/// Parses the W3C-baggage-like `key=value,key2=value2` lists of
/// `OTEL_EXPORTER_OTLP_HEADERS` and `OTEL_RESOURCE_ATTRIBUTES`; values are
/// percent-decoded.
fn parse_pairs(setting: &'static str, list: &str) -> Result<Vec<(String, String)>, BuildError> {
    list.split(',')
        .filter(|item| !item.trim().is_empty())
        .map(|item| {
            let (key, value) = item
                .split_once('=')
                .filter(|(k, _)| !k.trim().is_empty())
                .ok_or_else(|| error(setting, format!("{item:?} is not key=value")))?;
            let value = decode(value.trim()).ok_or_else(|| {
                error(
                    setting,
                    format!("the value of {key:?} is badly percent-encoded"),
                )
            })?;
            Ok((key.trim().to_owned(), value))
        })
        .collect()
}

/// Percent-decodes `s`; `None` for a malformed escape (which
/// `percent_decode_str` would keep as it is) or for bytes that are not UTF-8.
fn decode(s: &str) -> Option<String> {
    let malformed = s.match_indices('%').any(|(i, _)| {
        s.get(i + 1..i + 3)
            .is_none_or(|hex| !hex.bytes().all(|b| b.is_ascii_hexdigit()))
    });
    if malformed {
        return None;
    }
    percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|v| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(
        settings: &OtlpSettings,
        vars: &[(&str, &str)],
    ) -> Result<Option<OtlpConfig>, BuildError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        settings.resolve(&move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn off_without_an_endpoint_or_when_another_exporter_is_chosen() {
        assert!(resolve(&OtlpSettings::default(), &[]).unwrap().is_none());
        let vars = [(ENDPOINT, "http://c:4318"), (EXPORTER, "none")];
        assert!(resolve(&OtlpSettings::default(), &vars).unwrap().is_none());
    }

    #[test]
    fn reads_the_standard_variables() {
        let vars = [
            (ENDPOINT, "http://collector:4318/"),
            (HEADERS, "api-key=abc%20def,x-tenant=t1"),
            (METRICS_HEADERS, "x-tenant=t2"),
            (TIMEOUT, "2500"),
            (INTERVAL, "1000"),
            (
                RESOURCE_ATTRIBUTES,
                "deployment.environment=prod,team=a%2Cb",
            ),
        ];
        let c = resolve(&OtlpSettings::default(), &vars).unwrap().unwrap();
        assert_eq!(c.endpoint, "http://collector:4318/v1/metrics");
        assert_eq!(c.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(c.headers.len(), 2);
        assert_eq!(c.headers[0].1, "abc def");
        assert_eq!(c.headers[1].1, "t2", "the metrics-specific variable wins");
        assert_eq!(c.timeout, Duration::from_millis(2500));
        assert_eq!(c.interval, Duration::from_secs(1));
        assert_eq!(c.resource_attributes[1], ("team".into(), "a,b".into()));
    }

    #[test]
    fn the_metrics_endpoint_is_used_as_is_and_grpc_keeps_the_base() {
        let vars = [
            (METRICS_ENDPOINT, "http://c:9999/custom"),
            (ENDPOINT, "http://ignored:1"),
        ];
        let c = resolve(&OtlpSettings::default(), &vars).unwrap().unwrap();
        assert_eq!(c.endpoint, "http://c:9999/custom");
        let vars = [(ENDPOINT, "http://c:4317"), (PROTOCOL, "grpc")];
        let c = resolve(&OtlpSettings::default(), &vars).unwrap().unwrap();
        assert_eq!(
            (c.protocol, c.endpoint.to_string()),
            (OtlpProtocol::Grpc, "http://c:4317/".into())
        );
    }

    #[test]
    fn histograms_are_explicit_unless_exponential_ones_are_asked_for() {
        let base = [(ENDPOINT, "http://c:4318")];
        let c = resolve(&OtlpSettings::default(), &base).unwrap().unwrap();
        assert!(!c.exponential_histograms);
        let vars = [
            base[0],
            (HISTOGRAM_AGGREGATION, "Base2_Exponential_Bucket_Histogram"),
        ];
        let c = resolve(&OtlpSettings::default(), &vars).unwrap().unwrap();
        assert!(c.exponential_histograms);
        let settings = OtlpSettings {
            exponential_histograms: Some(false),
            ..OtlpSettings::default()
        };
        let c = resolve(&settings, &vars).unwrap().unwrap();
        assert!(!c.exponential_histograms, "the builder wins");
    }

    #[test]
    fn builder_methods_override_the_environment() {
        let settings = OtlpSettings {
            endpoint: Some("http://mine:4318".into()),
            protocol: Some(OtlpProtocol::Grpc),
            interval: Some(Duration::from_millis(200)),
            ..OtlpSettings::default()
        };
        let vars = [
            (ENDPOINT, "not a url"),
            (PROTOCOL, "bogus"),
            (INTERVAL, "x"),
        ];
        let c = resolve(&settings, &vars).unwrap().unwrap();
        assert_eq!(c.endpoint, "http://mine:4318/");
        assert_eq!(c.interval, Duration::from_millis(200));
    }

    #[test]
    fn bad_values_name_their_variable() {
        let cases: [(&[(&str, &str)], &str); 9] = [
            (&[(ENDPOINT, "::not a url::")], ENDPOINT),
            (&[(METRICS_ENDPOINT, "ftp://c:21")], METRICS_ENDPOINT),
            (
                &[(ENDPOINT, "http://c"), (PROTOCOL, "carrier-pigeon")],
                PROTOCOL,
            ),
            (
                &[(ENDPOINT, "http://c"), (METRICS_PROTOCOL, "http/json")],
                METRICS_PROTOCOL,
            ),
            (&[(ENDPOINT, "http://c"), (HEADERS, "novalue")], HEADERS),
            (&[(ENDPOINT, "http://c"), (TIMEOUT, "10s")], TIMEOUT),
            (&[(ENDPOINT, "http://c"), (INTERVAL, "0")], INTERVAL),
            (
                &[(ENDPOINT, "http://c"), (RESOURCE_ATTRIBUTES, "a=%zz")],
                RESOURCE_ATTRIBUTES,
            ),
            (
                &[(ENDPOINT, "http://c"), (HISTOGRAM_AGGREGATION, "sketch")],
                HISTOGRAM_AGGREGATION,
            ),
        ];
        for (vars, setting) in cases {
            let err = resolve(&OtlpSettings::default(), vars).unwrap_err();
            assert_eq!(err.setting(), setting, "{err}");
            assert!(err.to_string().contains(setting));
        }
    }
}
