//! OTLP settings, the OpenTelemetry way: the standard environment variables,
//! overridden by builder methods. A bad value fails `build()` with an error
//! that names the variable (or the builder method).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{HeaderName, HeaderValue, Uri};
use percent_encoding::percent_decode_str;

use crate::error::BuildError;
use crate::part::Env;

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
    /// The OTLP JSON encoding over HTTP POST to `…/v1/metrics` (`http/json`).
    HttpJson,
    /// gRPC (`grpc`).
    Grpc,
}

/// How export requests are compressed (`OTEL_EXPORTER_OTLP_COMPRESSION`).
///
/// ```
/// let watch = serverwatch::ServerWatch::builder()
///     .otlp_endpoint("http://127.0.0.1:4318")
///     .otlp_compression(serverwatch::OtlpCompression::Gzip)
///     .build()?;
/// # Ok::<(), serverwatch::BuildError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpCompression {
    /// Uncompressed (`none`, the default).
    None,
    /// `gzip`, on every transport.
    Gzip,
    /// `zstd`, on every transport; needs serverwatch's `otlp-zstd` feature.
    Zstd,
}

/// Which temporality the sums and histograms are exported with
/// (`OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`). Gauges have none,
/// and up-down counters (requests in flight, memory) stay cumulative, as
/// the OpenTelemetry specification has it.
///
/// ```
/// let watch = serverwatch::ServerWatch::builder()
///     .otlp_endpoint("http://127.0.0.1:4318")
///     .otlp_temporality(serverwatch::OtlpTemporality::Delta)
///     .build()?;
/// # Ok::<(), serverwatch::BuildError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpTemporality {
    /// Every point from a fixed start (`cumulative`, the default).
    Cumulative,
    /// Counters and histograms as what changed since the last export
    /// (`delta`).
    Delta,
    /// Histograms and the counters recorded per request as deltas, the
    /// counters read from the system (CPU time) cumulative (`lowmemory`).
    LowMemory,
}

/// What the builder methods set; `None` leaves the environment's say.
#[derive(Clone, Default)]
pub(crate) struct OtlpSettings {
    pub(crate) endpoint: Option<String>,
    pub(crate) protocol: Option<OtlpProtocol>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) interval: Option<Duration>,
    pub(crate) compression: Option<OtlpCompression>,
    pub(crate) temporality: Option<OtlpTemporality>,
    pub(crate) certificate: Option<PathBuf>,
    /// Certificate and key.
    pub(crate) client_certificate: Option<(PathBuf, PathBuf)>,
    /// Histograms as base-2 exponential ones.
    pub(crate) exponential_histograms: Option<bool>,
}

/// Header values are credentials (API keys): only their names are shown.
impl fmt::Debug for OtlpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpSettings")
            .field("endpoint", &self.endpoint)
            .field("protocol", &self.protocol)
            .field("headers", &HeaderNames(self.headers.iter().map(|h| &*h.0)))
            .field("timeout", &self.timeout)
            .field("interval", &self.interval)
            .field("compression", &self.compression)
            .field("temporality", &self.temporality)
            .field("certificate", &self.certificate)
            .field("client_certificate", &self.client_certificate)
            .field("exponential_histograms", &self.exponential_histograms)
            .finish()
    }
}

/// Settings after the environment was read and everything was checked.
#[derive(Clone)]
pub(crate) struct OtlpConfig {
    /// The URL requests go to: `…/v1/metrics` for HTTP, the server for gRPC.
    pub(crate) endpoint: Uri,
    pub(crate) protocol: OtlpProtocol,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    /// The longest one request may take.
    pub(crate) timeout: Duration,
    /// The longest one export may take, its retries included.
    pub(crate) export_timeout: Duration,
    pub(crate) interval: Duration,
    pub(crate) compression: OtlpCompression,
    pub(crate) temporality: OtlpTemporality,
    pub(crate) tls: Tls,
    /// `OTEL_RESOURCE_ATTRIBUTES`, decoded.
    pub(crate) resource_attributes: Vec<(String, String)>,
    /// Histograms as base-2 exponential ones, not explicit-bucket ones.
    pub(crate) exponential_histograms: bool,
}

/// Header values are credentials (API keys): only their names are shown.
impl fmt::Debug for OtlpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpConfig")
            .field("endpoint", &self.endpoint)
            .field("protocol", &self.protocol)
            .field(
                "headers",
                &HeaderNames(self.headers.iter().map(|h| h.0.as_str())),
            )
            .field("timeout", &self.timeout)
            .field("export_timeout", &self.export_timeout)
            .field("interval", &self.interval)
            .field("compression", &self.compression)
            .field("temporality", &self.temporality)
            .field("tls", &self.tls)
            .field("resource_attributes", &self.resource_attributes)
            .field("exponential_histograms", &self.exponential_histograms)
            .finish()
    }
}

/// Prints header names as a list, without their values.
struct HeaderNames<I>(I);

impl<'a, I: Iterator<Item = &'a str> + Clone> fmt::Debug for HeaderNames<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.clone()).finish()
    }
}

/// TLS beyond the webpki roots: a CA to trust and a client certificate, as
/// PEM read (and checked) when the settings are resolved.
#[derive(Clone, Default)]
pub(crate) struct Tls {
    pub(crate) ca: Option<Vec<u8>>,
    /// Certificate chain and private key.
    pub(crate) client: Option<(Vec<u8>, Vec<u8>)>,
}

/// The private key is never shown.
impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("ca", &self.ca.as_ref().map(|_| "set"))
            .field("client_certificate", &self.client.as_ref().map(|_| "set"))
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
const COMPRESSION: &str = "OTEL_EXPORTER_OTLP_COMPRESSION";
const METRICS_COMPRESSION: &str = "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION";
const CERTIFICATE: &str = "OTEL_EXPORTER_OTLP_CERTIFICATE";
const METRICS_CERTIFICATE: &str = "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE";
const CLIENT_CERTIFICATE: &str = "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE";
const METRICS_CLIENT_CERTIFICATE: &str = "OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE";
const CLIENT_KEY: &str = "OTEL_EXPORTER_OTLP_CLIENT_KEY";
const METRICS_CLIENT_KEY: &str = "OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY";
const INSECURE: &str = "OTEL_EXPORTER_OTLP_INSECURE";
const METRICS_INSECURE: &str = "OTEL_EXPORTER_OTLP_METRICS_INSECURE";
const TEMPORALITY: &str = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE";
const INTERVAL: &str = "OTEL_METRIC_EXPORT_INTERVAL";
const EXPORT_TIMEOUT: &str = "OTEL_METRIC_EXPORT_TIMEOUT";
const EXPORTER: &str = "OTEL_METRICS_EXPORTER";
const SDK_DISABLED: &str = "OTEL_SDK_DISABLED";
const RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";
const HISTOGRAM_AGGREGATION: &str = "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION";

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(30);
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
    /// no endpoint is set anywhere, `OTEL_METRICS_EXPORTER` names another
    /// exporter (`none`, say) or `OTEL_SDK_DISABLED` is `true`.
    pub(crate) fn resolve(&self, env: Env<'_>) -> Result<Option<OtlpConfig>, BuildError> {
        let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        if let Some(value) = var(SDK_DISABLED)
            && parse_bool(SDK_DISABLED, &value)?
        {
            return Ok(None);
        }
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
        let (setting, url, append_path) = if let Some(url) = &self.endpoint {
            ("otlp_endpoint", url.clone(), true)
        } else if let Some(url) = var(METRICS_ENDPOINT) {
            (METRICS_ENDPOINT, url, false)
        } else if let Some(url) = var(ENDPOINT) {
            (ENDPOINT, url, true)
        } else {
            return Ok(None);
        };
        let url = with_grpc_scheme(&var, protocol, url)?;
        let endpoint = endpoint_url(setting, &url, protocol, append_path)?;

        // Generic first, so that the metrics-specific variable and then the
        // builder win for the same header name.
        let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
        let mut add = |setting: &'static str, name: &str, value: &str| {
            let name = HeaderName::try_from(name.trim())
                .map_err(|_| error(setting, format!("{name:?} is not a valid header name")))?;
            let mut value = HeaderValue::try_from(value.trim()).map_err(|_| {
                error(
                    setting,
                    format!("the value of {name} is not a valid header value"),
                )
            })?;
            value.set_sensitive(true);
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
        let export_timeout = match var(EXPORT_TIMEOUT) {
            Some(value) => millis(EXPORT_TIMEOUT, &value)?,
            None => DEFAULT_EXPORT_TIMEOUT,
        };
        let interval = match self.interval {
            Some(i) => positive("otlp_export_interval", i)?,
            None => match var(INTERVAL) {
                Some(value) => millis(INTERVAL, &value)?,
                None => DEFAULT_INTERVAL,
            },
        };
        let compression = match self.compression {
            Some(c) => check_compression("otlp_compression", c)?,
            None => match first(&var, &[METRICS_COMPRESSION, COMPRESSION]) {
                Some((name, value)) => check_compression(name, parse_compression(name, &value)?)?,
                None => OtlpCompression::None,
            },
        };
        let temporality = match self.temporality {
            Some(t) => t,
            None => match var(TEMPORALITY) {
                Some(value) => parse_temporality(&value)?,
                None => OtlpTemporality::Cumulative,
            },
        };
        let tls = self.tls(&var)?;
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
            export_timeout,
            interval,
            compression,
            temporality,
            tls,
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

/// An OpenTelemetry boolean: `true` or `false`, in any case.
fn parse_bool(setting: &'static str, value: &str) -> Result<bool, BuildError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(error(
            setting,
            format!("{value:?} is not a boolean: use \"true\" or \"false\""),
        )),
    }
}

fn parse_protocol(setting: &'static str, value: &str) -> Result<OtlpProtocol, BuildError> {
    match value.trim() {
        "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
        "http/json" => Ok(OtlpProtocol::HttpJson),
        "grpc" => Ok(OtlpProtocol::Grpc),
        other => Err(error(
            setting,
            format!("unknown protocol {other:?}: use \"http/protobuf\", \"http/json\" or \"grpc\""),
        )),
    }
}

fn parse_compression(setting: &'static str, value: &str) -> Result<OtlpCompression, BuildError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "none" => Ok(OtlpCompression::None),
        "gzip" => Ok(OtlpCompression::Gzip),
        "zstd" => Ok(OtlpCompression::Zstd),
        _ => Err(error(
            setting,
            format!("unknown compression {value:?}: use \"gzip\", \"zstd\" or \"none\""),
        )),
    }
}

fn check_compression(
    setting: &'static str,
    compression: OtlpCompression,
) -> Result<OtlpCompression, BuildError> {
    if compression == OtlpCompression::Zstd && !cfg!(feature = "otlp-zstd") {
        return Err(error(
            setting,
            "zstd needs serverwatch's `otlp-zstd` feature".into(),
        ));
    }
    Ok(compression)
}

fn parse_temporality(value: &str) -> Result<OtlpTemporality, BuildError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "cumulative" => Ok(OtlpTemporality::Cumulative),
        "delta" => Ok(OtlpTemporality::Delta),
        "lowmemory" => Ok(OtlpTemporality::LowMemory),
        _ => Err(error(
            TEMPORALITY,
            format!(
                "unknown temporality {value:?}: use \"cumulative\", \"delta\" or \"lowmemory\""
            ),
        )),
    }
}

/// A gRPC endpoint without a scheme (`collector:4317`) gets `https://`, or
/// `http://` when `OTEL_EXPORTER_OTLP_INSECURE` is `true`, as the
/// specification has it; any other URL is left as it is.
fn with_grpc_scheme(
    var: &dyn Fn(&str) -> Option<String>,
    protocol: OtlpProtocol,
    url: String,
) -> Result<String, BuildError> {
    if protocol != OtlpProtocol::Grpc || url.contains("://") {
        return Ok(url);
    }
    let insecure = match first(var, &[METRICS_INSECURE, INSECURE]) {
        Some((name, value)) => parse_bool(name, &value)?,
        None => false,
    };
    let scheme = if insecure { "http" } else { "https" };
    Ok(format!("{scheme}://{}", url.trim()))
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
    if protocol != OtlpProtocol::Grpc && append_path && !uri.path().ends_with("/v1/metrics") {
        let joined = format!("{}/v1/metrics", url.trim_end_matches('/'));
        return joined
            .parse()
            .map_err(|e| error(setting, format!("{joined:?} is not a URL: {e}")));
    }
    Ok(uri)
}

impl OtlpSettings {
    /// The CA and the client certificate, from their files; the builder wins
    /// over the metrics-specific variable, which wins over the generic one.
    fn tls(&self, var: &dyn Fn(&str) -> Option<String>) -> Result<Tls, BuildError> {
        let ca = match &self.certificate {
            Some(path) => Some(pem_file("otlp_certificate", path, Pem::Certificates)?),
            None => first(var, &[METRICS_CERTIFICATE, CERTIFICATE])
                .map(|(name, path)| pem_file(name, Path::new(path.trim()), Pem::Certificates))
                .transpose()?,
        };
        if let Some((certificate, key)) = &self.client_certificate {
            let setting = "otlp_client_certificate";
            let client = Some((
                pem_file(setting, certificate, Pem::Certificates)?,
                pem_file(setting, key, Pem::PrivateKey)?,
            ));
            return Ok(Tls { ca, client });
        }
        let certificate = first(var, &[METRICS_CLIENT_CERTIFICATE, CLIENT_CERTIFICATE]);
        let key = first(var, &[METRICS_CLIENT_KEY, CLIENT_KEY]);
        let client = match (certificate, key) {
            (None, None) => None,
            (Some((name, _)), None) => {
                return Err(error(
                    name,
                    format!("a client certificate needs its key: set {CLIENT_KEY} too"),
                ));
            }
            (None, Some((name, _))) => {
                return Err(error(
                    name,
                    format!("a client key needs its certificate: set {CLIENT_CERTIFICATE} too"),
                ));
            }
            (Some((cert_name, cert)), Some((key_name, key))) => Some((
                pem_file(cert_name, Path::new(cert.trim()), Pem::Certificates)?,
                pem_file(key_name, Path::new(key.trim()), Pem::PrivateKey)?,
            )),
        };
        Ok(Tls { ca, client })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pem {
    Certificates,
    PrivateKey,
}

/// Reads a PEM file and checks that it holds what it should, so that a
/// wrong file fails `build()` rather than every export.
fn pem_file(setting: &'static str, path: &Path, kind: Pem) -> Result<Vec<u8>, BuildError> {
    if !cfg!(feature = "otlp-tls") {
        return Err(error(
            setting,
            "certificates need TLS: enable serverwatch's `otlp-tls` feature".into(),
        ));
    }
    let shown = path.display();
    let pem =
        std::fs::read(path).map_err(|e| error(setting, format!("cannot read {shown}: {e}")))?;
    match pem_problem(&pem, kind) {
        None => Ok(pem),
        Some(problem) => Err(error(setting, format!("{shown}: {problem}"))),
    }
}

/// What is wrong with `pem`, if anything.
#[cfg(feature = "otlp-tls")]
fn pem_problem(pem: &[u8], kind: Pem) -> Option<String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    match kind {
        Pem::Certificates => {
            let certificates: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem).collect();
            match certificates {
                Ok(c) if c.is_empty() => Some("no PEM certificate in it".into()),
                Ok(_) => None,
                Err(e) => Some(format!("not a PEM certificate: {e}")),
            }
        }
        Pem::PrivateKey => PrivateKeyDer::from_pem_slice(pem)
            .err()
            .map(|e| format!("not a PEM private key: {e}")),
    }
}

#[cfg(not(feature = "otlp-tls"))]
fn pem_problem(_: &[u8], _: Pem) -> Option<String> {
    None
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
                .ok_or_else(|| error(setting, format!("{:?} is not key=value", redact(item))))?;
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

/// An item of a `key=value` list as an error may show it: a header value is
/// a credential, so at most its first characters.
fn redact(item: &str) -> String {
    let shown: String = item.chars().take(3).collect();
    if shown.len() < item.len() {
        format!("{shown}…")
    } else {
        shown
    }
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
    fn off_without_an_endpoint_or_when_another_exporter_is_chosen_or_disabled() {
        assert!(resolve(&OtlpSettings::default(), &[]).unwrap().is_none());
        let vars = [(ENDPOINT, "http://c:4318"), (EXPORTER, "none")];
        assert!(resolve(&OtlpSettings::default(), &vars).unwrap().is_none());
        let vars = [(ENDPOINT, "http://c:4318"), (SDK_DISABLED, "TRUE")];
        assert!(resolve(&OtlpSettings::default(), &vars).unwrap().is_none());
        let vars = [(ENDPOINT, "http://c:4318"), (SDK_DISABLED, "false")];
        assert!(resolve(&OtlpSettings::default(), &vars).unwrap().is_some());
    }

    #[test]
    fn reads_the_standard_variables() {
        let vars = [
            (ENDPOINT, "http://collector:4318/"),
            (HEADERS, "api-key=abc%20def,x-tenant=t1"),
            (METRICS_HEADERS, "x-tenant=t2"),
            (TIMEOUT, "2500"),
            (EXPORT_TIMEOUT, "4000"),
            (INTERVAL, "1000"),
            (COMPRESSION, "none"),
            (METRICS_COMPRESSION, "GZIP"),
            (TEMPORALITY, "LowMemory"),
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
        assert_eq!(c.export_timeout, Duration::from_secs(4));
        assert_eq!(c.interval, Duration::from_secs(1));
        assert_eq!(c.compression, OtlpCompression::Gzip);
        assert_eq!(c.temporality, OtlpTemporality::LowMemory);
        assert_eq!(c.resource_attributes[1], ("team".into(), "a,b".into()));
    }

    #[test]
    fn the_defaults() {
        let vars = [(ENDPOINT, "http://c:4318")];
        let c = resolve(&OtlpSettings::default(), &vars).unwrap().unwrap();
        assert_eq!(
            (c.timeout, c.export_timeout, c.interval),
            (DEFAULT_TIMEOUT, DEFAULT_EXPORT_TIMEOUT, DEFAULT_INTERVAL)
        );
        assert_eq!(c.compression, OtlpCompression::None);
        assert_eq!(c.temporality, OtlpTemporality::Cumulative);
        assert!(c.tls.ca.is_none() && c.tls.client.is_none());
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
        let vars = [(ENDPOINT, "http://c:4318"), (PROTOCOL, "http/json")];
        let c = resolve(&OtlpSettings::default(), &vars).unwrap().unwrap();
        assert_eq!(
            (c.protocol, c.endpoint.to_string()),
            (OtlpProtocol::HttpJson, "http://c:4318/v1/metrics".into())
        );
    }

    #[test]
    fn a_grpc_endpoint_without_a_scheme_is_secure_unless_insecure_is_true() {
        let grpc = (PROTOCOL, "grpc");
        let endpoint = |vars: &[(&str, &str)]| {
            resolve(&OtlpSettings::default(), vars)
                .map(|c| c.unwrap().endpoint.to_string())
                .map_err(|e| e.setting().to_owned())
        };
        for (insecure, want) in [
            (INSECURE, "http://c:4317/"),
            (METRICS_INSECURE, "http://c:4317/"),
        ] {
            let vars = [grpc, (ENDPOINT, "c:4317"), (insecure, "TRUE")];
            assert_eq!(endpoint(&vars).unwrap(), want);
        }
        let vars = [
            grpc,
            (METRICS_ENDPOINT, "c:4317"),
            (METRICS_INSECURE, "false"),
            (INSECURE, "true"),
        ];
        let secure = endpoint(&vars);
        if cfg!(feature = "otlp-tls") {
            assert_eq!(
                secure.unwrap(),
                "https://c:4317/",
                "the metrics variable wins"
            );
            let vars = [grpc, (ENDPOINT, "c:4317")];
            assert_eq!(
                endpoint(&vars).unwrap(),
                "https://c:4317/",
                "secure by default"
            );
        } else {
            assert_eq!(
                secure.unwrap_err(),
                METRICS_ENDPOINT,
                "https needs otlp-tls"
            );
        }
        // A scheme says it all; over HTTP, an endpoint needs one.
        let vars = [grpc, (ENDPOINT, "http://c:4317"), (INSECURE, "false")];
        assert_eq!(endpoint(&vars).unwrap(), "http://c:4317/");
        let vars = [(ENDPOINT, "c:4318"), (INSECURE, "true")];
        assert_eq!(endpoint(&vars).unwrap_err(), ENDPOINT);
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
            compression: Some(OtlpCompression::Gzip),
            temporality: Some(OtlpTemporality::Delta),
            ..OtlpSettings::default()
        };
        let vars = [
            (ENDPOINT, "not a url"),
            (PROTOCOL, "bogus"),
            (INTERVAL, "x"),
            (COMPRESSION, "brotli"),
            (TEMPORALITY, "sometimes"),
        ];
        let c = resolve(&settings, &vars).unwrap().unwrap();
        assert_eq!(c.endpoint, "http://mine:4318/");
        assert_eq!(c.interval, Duration::from_millis(200));
        assert_eq!(c.compression, OtlpCompression::Gzip);
        assert_eq!(c.temporality, OtlpTemporality::Delta);
    }

    #[test]
    fn debug_shows_header_names_never_their_values() {
        let settings = OtlpSettings {
            endpoint: Some("http://mine:4318".into()),
            headers: vec![("api-key".into(), "s3cr3t-from-builder".into())],
            ..OtlpSettings::default()
        };
        let vars = [(HEADERS, "x-token=s3cr3t-from-env")];
        let config = resolve(&settings, &vars).unwrap().unwrap();
        for shown in [format!("{settings:?}"), format!("{config:?}")] {
            assert!(
                shown.contains("api-key") && !shown.contains("s3cr3t"),
                "{shown}"
            );
        }
        assert!(format!("{config:?}").contains("x-token"));
        let err = resolve(
            &OtlpSettings::default(),
            &[(ENDPOINT, "http://c"), (HEADERS, "s3cr3t")],
        )
        .unwrap_err();
        assert!(!err.to_string().contains("s3cr3t"), "{err}");
    }

    #[test]
    fn bad_values_name_their_variable() {
        let c = (ENDPOINT, "http://c");
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (vec![(ENDPOINT, "::not a url::")], ENDPOINT),
            (vec![(METRICS_ENDPOINT, "ftp://c:21")], METRICS_ENDPOINT),
            (vec![c, (PROTOCOL, "carrier-pigeon")], PROTOCOL),
            (vec![c, (METRICS_PROTOCOL, "http/xml")], METRICS_PROTOCOL),
            (vec![c, (HEADERS, "novalue")], HEADERS),
            (vec![c, (METRICS_HEADERS, "a=%zz")], METRICS_HEADERS),
            (vec![c, (CLIENT_KEY, "/nonexistent/k.pem")], CLIENT_KEY),
            (
                vec![c, (METRICS_CLIENT_CERTIFICATE, "/nonexistent/c.pem")],
                METRICS_CLIENT_CERTIFICATE,
            ),
            (vec![c, (TIMEOUT, "10s")], TIMEOUT),
            (vec![c, (METRICS_TIMEOUT, "-1")], METRICS_TIMEOUT),
            (vec![c, (EXPORT_TIMEOUT, "0")], EXPORT_TIMEOUT),
            (vec![c, (INTERVAL, "0")], INTERVAL),
            (vec![c, (COMPRESSION, "brotli")], COMPRESSION),
            (vec![c, (METRICS_COMPRESSION, "gz")], METRICS_COMPRESSION),
            (vec![c, (TEMPORALITY, "deltas")], TEMPORALITY),
            (vec![c, (SDK_DISABLED, "yes")], SDK_DISABLED),
            (
                vec![(PROTOCOL, "grpc"), (ENDPOINT, "c:4317"), (INSECURE, "1")],
                INSECURE,
            ),
            (
                vec![
                    (PROTOCOL, "grpc"),
                    (ENDPOINT, "c"),
                    (METRICS_INSECURE, "no"),
                ],
                METRICS_INSECURE,
            ),
            (vec![c, (CERTIFICATE, "/nonexistent/ca.pem")], CERTIFICATE),
            (
                vec![c, (METRICS_CERTIFICATE, "/nonexistent/ca.pem")],
                METRICS_CERTIFICATE,
            ),
            (
                vec![c, (CLIENT_CERTIFICATE, "/nonexistent/c.pem")],
                CLIENT_CERTIFICATE,
            ),
            (
                vec![c, (METRICS_CLIENT_KEY, "/nonexistent/k.pem")],
                METRICS_CLIENT_KEY,
            ),
            (
                vec![
                    c,
                    (CLIENT_CERTIFICATE, "/nonexistent/c.pem"),
                    (CLIENT_KEY, "/nonexistent/k.pem"),
                ],
                CLIENT_CERTIFICATE,
            ),
            (vec![c, (RESOURCE_ATTRIBUTES, "a=%zz")], RESOURCE_ATTRIBUTES),
            (
                vec![c, (HISTOGRAM_AGGREGATION, "sketch")],
                HISTOGRAM_AGGREGATION,
            ),
        ];
        for (vars, setting) in cases {
            let err = resolve(&OtlpSettings::default(), &vars).unwrap_err();
            assert_eq!(err.setting(), setting, "{err}");
            assert!(err.to_string().contains(setting));
        }
    }

    #[cfg(feature = "otlp-tls")]
    #[test]
    fn certificate_files_must_hold_what_they_name() {
        let dir = std::env::temp_dir().join(format!("serverwatch-pem-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let not_pem = dir.join("not.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        let not_pem = not_pem.to_str().unwrap();
        for setting in [CERTIFICATE, METRICS_CERTIFICATE] {
            let vars = [(ENDPOINT, "https://c"), (setting, not_pem)];
            let err = resolve(&OtlpSettings::default(), &vars).unwrap_err();
            assert_eq!(err.setting(), setting, "{err}");
            assert!(err.to_string().contains("no PEM certificate"), "{err}");
        }
        let vars = [
            (ENDPOINT, "https://c"),
            (CLIENT_CERTIFICATE, not_pem),
            (CLIENT_KEY, not_pem),
        ];
        let err = resolve(&OtlpSettings::default(), &vars).unwrap_err();
        assert_eq!(err.setting(), CLIENT_CERTIFICATE, "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(not(feature = "otlp-zstd"))]
    #[test]
    fn zstd_needs_its_feature() {
        let vars = [(ENDPOINT, "http://c"), (COMPRESSION, "zstd")];
        let err = resolve(&OtlpSettings::default(), &vars).unwrap_err();
        assert_eq!(err.setting(), COMPRESSION);
        assert!(err.to_string().contains("otlp-zstd"), "{err}");
    }
}
