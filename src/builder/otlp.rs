//! The OTLP push's settings (feature `otlp`): each overrides its
//! `OTEL_*` variable.

use super::Builder;
use crate::exporters::otlp::{
    OtlpCompression, OtlpPart, OtlpProtocol, OtlpSettings, OtlpTemporality,
};

impl Builder {
    fn otlp(&mut self) -> &mut OtlpSettings {
        &mut self.parts.get_mut::<OtlpPart>().settings
    }

    /// Pushes every metric over OTLP to this collector endpoint, overriding
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`. For HTTP a base URL gets `/v1/metrics`
    /// appended. For gRPC, one without a scheme (`collector:4317`) is
    /// `https://`, or `http://` when `OTEL_EXPORTER_OTLP_INSECURE` is
    /// `true`. OTLP is on when an endpoint is set here or in the
    /// environment, unless `OTEL_METRICS_EXPORTER` names another exporter.
    /// Every export says `User-Agent: serverwatch/<version> (OTLP exporter;
    /// Rust)`.
    ///
    /// ```
    /// let builder = serverwatch::ServerWatch::builder().otlp_endpoint("http://127.0.0.1:4318");
    /// ```
    pub fn otlp_endpoint(mut self, url: impl Into<String>) -> Self {
        self.otlp().endpoint = Some(url.into());
        self
    }

    /// The OTLP transport, overriding `OTEL_EXPORTER_OTLP_PROTOCOL`.
    /// Default: HTTP/protobuf.
    ///
    /// ```
    /// let builder = serverwatch::ServerWatch::builder()
    ///     .otlp_endpoint("http://127.0.0.1:4317")
    ///     .otlp_protocol(serverwatch::OtlpProtocol::Grpc);
    /// ```
    pub fn otlp_protocol(mut self, protocol: OtlpProtocol) -> Self {
        self.otlp().protocol = Some(protocol);
        self
    }

    /// Adds a header (or gRPC metadata) to every export, on top of
    /// `OTEL_EXPORTER_OTLP_HEADERS`; a name given here wins.
    ///
    /// ```
    /// let builder = serverwatch::ServerWatch::builder().otlp_header("api-key", "secret");
    /// ```
    pub fn otlp_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.otlp().headers.push((name.into(), value.into()));
        self
    }

    /// How long one export request may take, overriding
    /// `OTEL_EXPORTER_OTLP_TIMEOUT`; also the most
    /// [`ServerWatch::shutdown`](crate::ServerWatch::shutdown) waits.
    /// Default 10 s. An export and its retries together take at most
    /// `OTEL_METRIC_EXPORT_TIMEOUT` (default 30 s) and never run into the
    /// next export.
    ///
    /// ```
    /// let builder = serverwatch::ServerWatch::builder().otlp_timeout(std::time::Duration::from_secs(2));
    /// ```
    pub fn otlp_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.otlp().timeout = Some(timeout);
        self
    }

    /// Time between exports, overriding `OTEL_METRIC_EXPORT_INTERVAL`.
    /// Default 60 s.
    ///
    /// ```
    /// let builder = serverwatch::ServerWatch::builder()
    ///     .otlp_export_interval(std::time::Duration::from_secs(10));
    /// ```
    pub fn otlp_export_interval(mut self, interval: std::time::Duration) -> Self {
        self.otlp().interval = Some(interval);
        self
    }

    /// Sends histograms over OTLP as base-2 exponential histograms (scale 4,
    /// downscaled to at most 160 buckets), overriding
    /// `OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION`
    /// (`base2_exponential_bucket_histogram` or `explicit_bucket_histogram`).
    /// Default: explicit-bucket histograms with the classic bounds.
    ///
    /// ```
    /// let builder = serverwatch::ServerWatch::builder()
    ///     .otlp_endpoint("http://127.0.0.1:4318")
    ///     .otlp_exponential_histograms(true);
    /// ```
    pub fn otlp_exponential_histograms(mut self, exponential: bool) -> Self {
        self.otlp().exponential_histograms = Some(exponential);
        self
    }

    /// Compresses the exports, overriding `OTEL_EXPORTER_OTLP_COMPRESSION`.
    /// Default: none.
    ///
    /// ```
    /// let builder = serverwatch::ServerWatch::builder()
    ///     .otlp_compression(serverwatch::OtlpCompression::Gzip);
    /// ```
    pub fn otlp_compression(mut self, compression: OtlpCompression) -> Self {
        self.otlp().compression = Some(compression);
        self
    }

    /// Exports counters and histograms as deltas (or cumulative, the
    /// default), overriding `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`.
    ///
    /// ```
    /// let builder = serverwatch::ServerWatch::builder()
    ///     .otlp_temporality(serverwatch::OtlpTemporality::Delta);
    /// ```
    pub fn otlp_temporality(mut self, temporality: OtlpTemporality) -> Self {
        self.otlp().temporality = Some(temporality);
        self
    }

    /// Trusts the CA certificates in this PEM file for `https://` collectors,
    /// besides the webpki roots, overriding `OTEL_EXPORTER_OTLP_CERTIFICATE`.
    /// Needs the `otlp-tls` feature; the file is read by [`build`](Self::build).
    ///
    /// ```
    /// let builder = serverwatch::ServerWatch::builder().otlp_certificate("/etc/ssl/collector-ca.pem");
    /// ```
    pub fn otlp_certificate(mut self, ca_pem: impl Into<std::path::PathBuf>) -> Self {
        self.otlp().certificate = Some(ca_pem.into());
        self
    }

    /// Presents this client certificate (mutual TLS), from PEM files of the
    /// certificate chain and its private key, overriding
    /// `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE` and `OTEL_EXPORTER_OTLP_CLIENT_KEY`.
    /// Needs the `otlp-tls` feature; the files are read by [`build`](Self::build).
    ///
    /// ```
    /// let builder = serverwatch::ServerWatch::builder()
    ///     .otlp_client_certificate("/etc/ssl/me.pem", "/etc/ssl/me-key.pem");
    /// ```
    pub fn otlp_client_certificate(
        mut self,
        certificate_pem: impl Into<std::path::PathBuf>,
        key_pem: impl Into<std::path::PathBuf>,
    ) -> Self {
        self.otlp().client_certificate = Some((certificate_pem.into(), key_pem.into()));
        self
    }
}
