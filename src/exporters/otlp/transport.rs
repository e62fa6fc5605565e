//! Sending one request to the collector, over HTTP (protobuf or JSON) or
//! gRPC, compressed if asked, and reading its answer the way the OTLP
//! specification defines it: success (perhaps partial), or a failure that
//! may be retried, perhaps after a delay the collector named.

use std::io::Write as _;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue, StatusCode, header};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use prost::Message as _;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic_types::StatusExt as _;

use super::config::{OtlpCompression, OtlpConfig, OtlpProtocol};

#[derive(Debug)]
pub(crate) enum Transport {
    Http {
        client: reqwest::Client,
        url: String,
        headers: HeaderMap,
        json: bool,
        compression: OtlpCompression,
    },
    Grpc {
        client: MetricsServiceClient<Channel>,
        metadata: MetadataMap,
    },
}

/// A request the collector took.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Accepted {
    /// `partial_success`: the data points it rejected, and why.
    pub(crate) rejected: Option<(i64, String)>,
}

/// A request that failed.
#[derive(Debug, PartialEq)]
pub(crate) struct Failed {
    pub(crate) error: String,
    pub(crate) retry: Retry,
}

/// Whether a failed request may be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    No,
    /// After the backoff, or after the delay the collector asked for.
    After(Option<Duration>),
}

/// The exporter's `User-Agent`, in the form the OTLP specification
/// recommends: the exporter, its version and its language.
const USER_AGENT: &str = concat!(
    "serverwatch/",
    env!("CARGO_PKG_VERSION"),
    " (OTLP exporter; Rust)"
);

impl Transport {
    /// Sets up the client; nothing is connected yet (a collector that is
    /// down at start is only noticed by the first export). Must run inside
    /// the exporter's Tokio runtime.
    pub(crate) fn new(config: &OtlpConfig) -> Result<Self, String> {
        match config.protocol {
            OtlpProtocol::HttpProtobuf | OtlpProtocol::HttpJson => {
                let builder = reqwest::Client::builder()
                    .user_agent(USER_AGENT)
                    .timeout(config.timeout)
                    .connect_timeout(config.timeout);
                let client = http_tls(builder, config)?
                    .build()
                    .map_err(|e| error_chain(&e))?;
                let json = config.protocol == OtlpProtocol::HttpJson;
                let mut headers: HeaderMap = config.headers.iter().cloned().collect();
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(if json {
                        "application/json"
                    } else {
                        "application/x-protobuf"
                    }),
                );
                if let Some(encoding) = content_encoding(config.compression) {
                    headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
                }
                Ok(Transport::Http {
                    client,
                    url: config.endpoint.to_string(),
                    headers,
                    json,
                    compression: config.compression,
                })
            }
            OtlpProtocol::Grpc => {
                let endpoint = Endpoint::from(config.endpoint.clone())
                    .user_agent(USER_AGENT)
                    .map_err(|e| error_chain(&e))?
                    .connect_timeout(config.timeout)
                    .timeout(config.timeout);
                let channel = grpc_tls(endpoint, config)?.connect_lazy();
                let mut metadata = MetadataMap::new();
                for (name, value) in &config.headers {
                    let key = MetadataKey::from_bytes(name.as_str().as_bytes())
                        .map_err(|e| e.to_string())?;
                    let value =
                        MetadataValue::try_from(value.as_bytes()).map_err(|e| e.to_string())?;
                    metadata.insert(key, value);
                }
                let mut client = MetricsServiceClient::new(channel);
                client = match config.compression {
                    OtlpCompression::None => client,
                    OtlpCompression::Gzip => client.send_compressed(CompressionEncoding::Gzip),
                    #[cfg(feature = "otlp-zstd")]
                    OtlpCompression::Zstd => client.send_compressed(CompressionEncoding::Zstd),
                    #[cfg(not(feature = "otlp-zstd"))]
                    OtlpCompression::Zstd => return Err("zstd needs the otlp-zstd feature".into()),
                };
                Ok(Transport::Grpc { client, metadata })
            }
        }
    }

    /// Sends `request` once.
    pub(crate) async fn send(
        &mut self,
        request: &ExportMetricsServiceRequest,
    ) -> Result<Accepted, Failed> {
        match self {
            Transport::Http {
                client,
                url,
                headers,
                json,
                compression,
            } => {
                let body = if *json {
                    json_body(request).map_err(|e| Failed::permanent(e.to_string()))?
                } else {
                    request.encode_to_vec()
                };
                let body = compress(*compression, body).map_err(Failed::permanent)?;
                let response = client
                    .post(url.as_str())
                    .headers(headers.clone())
                    .body(body)
                    .send()
                    .await
                    // Not connected, or no answer: transient, as the
                    // specification has it for HTTP.
                    .map_err(|e| Failed {
                        error: error_chain(&e),
                        retry: Retry::After(None),
                    })?;
                let status = response.status();
                let retry_after = retry_after(response.headers(), SystemTime::now());
                let body = response.bytes().await.unwrap_or_default();
                if status.is_success() {
                    return Ok(Accepted {
                        rejected: http_partial_success(&body, *json),
                    });
                }
                let retry = match status {
                    StatusCode::TOO_MANY_REQUESTS
                    | StatusCode::BAD_GATEWAY
                    | StatusCode::SERVICE_UNAVAILABLE
                    | StatusCode::GATEWAY_TIMEOUT => Retry::After(retry_after),
                    _ => Retry::No,
                };
                let text: String = String::from_utf8_lossy(&body).chars().take(200).collect();
                Err(Failed {
                    error: format!("HTTP {status}: {text}"),
                    retry,
                })
            }
            Transport::Grpc { client, metadata } => {
                let mut grpc_request = tonic::Request::new(request.clone());
                *grpc_request.metadata_mut() = metadata.clone();
                match client.export(grpc_request).await {
                    Ok(response) => Ok(Accepted {
                        rejected: partial_success(response.into_inner().partial_success),
                    }),
                    Err(status) => Err(Failed {
                        error: grpc_error(&status),
                        retry: grpc_retry(&status),
                    }),
                }
            }
        }
    }
}

impl Failed {
    fn permanent(error: String) -> Self {
        Self {
            error,
            retry: Retry::No,
        }
    }
}

/// The OTLP JSON encoding of `request`, by opentelemetry-proto's serde
/// support, which follows the specification (64-bit integers as decimal
/// strings, enums as integers, ids in hex), except for the counts of
/// histogram points: those are written as numbers, which the specification
/// makes every receiver accept too, because rotel reads only numbers there
/// (it drops the histogram otherwise, silently).
fn json_body(request: &ExportMetricsServiceRequest) -> serde_json::Result<Vec<u8>> {
    use serde_json::Value;
    let mut json = serde_json::to_value(request)?;
    let histogram_points = json
        .pointer_mut("/resourceMetrics")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get_mut("scopeMetrics")?.as_array_mut())
        .flatten()
        .filter_map(|s| s.get_mut("metrics")?.as_array_mut())
        .flatten()
        .filter_map(|m| m.pointer_mut("/histogram/dataPoints")?.as_array_mut())
        .flatten();
    for point in histogram_points {
        let as_number = |v: &mut Value| {
            if let Some(n) = v.as_str().and_then(|s| s.parse::<u64>().ok()) {
                *v = Value::from(n);
            }
        };
        if let Some(count) = point.get_mut("count") {
            as_number(count);
        }
        if let Some(buckets) = point.get_mut("bucketCounts").and_then(Value::as_array_mut) {
            buckets.iter_mut().for_each(as_number);
        }
    }
    serde_json::to_vec(&json)
}

/// The `Content-Encoding` of `compression`.
fn content_encoding(compression: OtlpCompression) -> Option<&'static str> {
    match compression {
        OtlpCompression::None => None,
        OtlpCompression::Gzip => Some("gzip"),
        OtlpCompression::Zstd => Some("zstd"),
    }
}

fn compress(compression: OtlpCompression, body: Vec<u8>) -> Result<Vec<u8>, String> {
    match compression {
        OtlpCompression::None => Ok(body),
        OtlpCompression::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(
                Vec::with_capacity(body.len() / 4),
                flate2::Compression::fast(),
            );
            encoder
                .write_all(&body)
                .and_then(|()| encoder.finish())
                .map_err(|e| e.to_string())
        }
        #[cfg(feature = "otlp-zstd")]
        OtlpCompression::Zstd => zstd::bulk::compress(&body, 0).map_err(|e| e.to_string()),
        #[cfg(not(feature = "otlp-zstd"))]
        OtlpCompression::Zstd => Err("zstd needs the otlp-zstd feature".into()),
    }
}

/// `Retry-After`: seconds, or an HTTP date.
fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or_default())
}

/// The partial success in an HTTP answer, encoded as the request was.
fn http_partial_success(body: &[u8], json: bool) -> Option<(i64, String)> {
    if body.is_empty() {
        return None;
    }
    let response: Option<ExportMetricsServiceResponse> = if json {
        serde_json::from_slice(body).ok()
    } else {
        ExportMetricsServiceResponse::decode(body).ok()
    };
    partial_success(response?.partial_success)
}

/// A partial success that says something: rejected points or a message.
fn partial_success(partial: Option<ExportMetricsPartialSuccess>) -> Option<(i64, String)> {
    partial
        .filter(|p| p.rejected_data_points != 0 || !p.error_message.is_empty())
        .map(|p| (p.rejected_data_points, p.error_message))
}

/// The code, the message and the causes (a status's own `Display` shows
/// its fields in Debug form).
fn grpc_error(status: &tonic::Status) -> String {
    let mut text = format!("gRPC {:?}: {}", status.code(), status.message());
    if let Some(source) = std::error::Error::source(status) {
        text.push_str(": ");
        text.push_str(&error_chain(source));
    }
    text
}

/// The gRPC codes the OTLP specification calls retryable; RESOURCE_EXHAUSTED
/// only when the server says when (RetryInfo), which it honours for all.
fn grpc_retry(status: &tonic::Status) -> Retry {
    use tonic::Code;
    let delay = status
        .get_details_retry_info()
        .and_then(|info| info.retry_delay);
    match status.code() {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => Retry::After(delay),
        Code::ResourceExhausted if delay.is_some() => Retry::After(delay),
        _ => Retry::No,
    }
}

/// The CA and client certificate of `config`, for reqwest.
#[cfg(feature = "otlp-tls")]
fn http_tls(
    mut builder: reqwest::ClientBuilder,
    config: &OtlpConfig,
) -> Result<reqwest::ClientBuilder, String> {
    if let Some(ca) = &config.tls.ca {
        for certificate in reqwest::Certificate::from_pem_bundle(ca).map_err(|e| error_chain(&e))? {
            builder = builder.add_root_certificate(certificate);
        }
    }
    if let Some((certificate, key)) = &config.tls.client {
        let pem = [certificate.as_slice(), b"\n", key.as_slice()].concat();
        let identity = reqwest::Identity::from_pem(&pem).map_err(|e| error_chain(&e))?;
        builder = builder.identity(identity);
    }
    Ok(builder)
}

#[cfg(not(feature = "otlp-tls"))]
fn http_tls(
    builder: reqwest::ClientBuilder,
    _: &OtlpConfig,
) -> Result<reqwest::ClientBuilder, String> {
    Ok(builder)
}

/// TLS for an `https://` gRPC endpoint: the webpki roots, the CA and the
/// client certificate of `config`.
#[cfg(feature = "otlp-tls")]
fn grpc_tls(endpoint: Endpoint, config: &OtlpConfig) -> Result<Endpoint, String> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    if config.endpoint.scheme_str() != Some("https") {
        return Ok(endpoint);
    }
    let mut tls = ClientTlsConfig::new().with_webpki_roots();
    if let Some(ca) = &config.tls.ca {
        tls = tls.ca_certificate(Certificate::from_pem(ca));
    }
    if let Some((certificate, key)) = &config.tls.client {
        tls = tls.identity(Identity::from_pem(certificate, key));
    }
    endpoint.tls_config(tls).map_err(|e| error_chain(&e))
}

#[cfg(not(feature = "otlp-tls"))]
fn grpc_tls(endpoint: Endpoint, _: &OtlpConfig) -> Result<Endpoint, String> {
    Ok(endpoint)
}

/// An error with its causes, which for connection errors hold the reason.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some errors repeat their source in their own message.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers, now), None);
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(3)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(7));
        headers.insert(header::RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(7)));
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers, now), None);
    }

    #[test]
    fn grpc_codes_retried_as_the_specification_lists_them() {
        use tonic::Code;
        for code in [Code::Unavailable, Code::DeadlineExceeded, Code::Aborted] {
            assert_eq!(
                grpc_retry(&tonic::Status::new(code, "")),
                Retry::After(None)
            );
        }
        for code in [
            Code::InvalidArgument,
            Code::Unauthenticated,
            Code::ResourceExhausted,
        ] {
            assert_eq!(grpc_retry(&tonic::Status::new(code, "")), Retry::No);
        }
        let delay = Duration::from_millis(1500);
        let status = tonic::Status::with_error_details(
            Code::ResourceExhausted,
            "slow down",
            tonic_types::ErrorDetails::with_retry_info(Some(delay)),
        );
        assert_eq!(grpc_retry(&status), Retry::After(Some(delay)));
    }

    #[test]
    fn partial_success_is_read_from_either_encoding() {
        let response = ExportMetricsServiceResponse {
            partial_success: Some(ExportMetricsPartialSuccess {
                rejected_data_points: 3,
                error_message: "too old".into(),
            }),
        };
        let want = Some((3, "too old".to_owned()));
        assert_eq!(http_partial_success(&response.encode_to_vec(), false), want);
        let json = serde_json::to_vec(&response).unwrap();
        assert_eq!(http_partial_success(&json, true), want);
        assert_eq!(http_partial_success(b"", false), None);
        let empty = ExportMetricsServiceResponse {
            partial_success: Some(ExportMetricsPartialSuccess::default()),
        };
        assert_eq!(http_partial_success(&empty.encode_to_vec(), false), None);
    }

    #[test]
    fn json_follows_the_specification_with_histogram_counts_as_numbers() {
        use opentelemetry_proto::tonic::metrics::v1::{
            Histogram, HistogramDataPoint, Metric, ResourceMetrics, ScopeMetrics, metric,
        };
        let point = HistogramDataPoint {
            start_time_unix_nano: 1,
            time_unix_nano: 2,
            count: 3,
            sum: Some(0.5),
            bucket_counts: vec![1, 2],
            explicit_bounds: vec![0.1],
            ..HistogramDataPoint::default()
        };
        let request = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: "h".into(),
                        data: Some(metric::Data::Histogram(Histogram {
                            data_points: vec![point],
                            aggregation_temporality: 2,
                        })),
                        ..Metric::default()
                    }],
                    ..ScopeMetrics::default()
                }],
                ..ResourceMetrics::default()
            }],
        };
        let json: serde_json::Value =
            serde_json::from_slice(&json_body(&request).unwrap()).unwrap();
        let histogram = &json["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["histogram"];
        assert_eq!(histogram["aggregationTemporality"], 2, "enums as integers");
        let point = &histogram["dataPoints"][0];
        assert_eq!(point["timeUnixNano"], "2", "64-bit integers as strings");
        assert_eq!(point["count"], 3);
        assert_eq!(point["bucketCounts"], serde_json::json!([1, 2]));
        assert_eq!(point["explicitBounds"], serde_json::json!([0.1]));
    }

    #[test]
    fn gzip_bodies_decompress_to_the_original() {
        use std::io::Read as _;
        let body = b"serverwatch ".repeat(1000);
        let compressed = compress(OtlpCompression::Gzip, body.clone()).unwrap();
        assert!(compressed.len() < body.len() / 10);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(compressed.as_slice())
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, body);
    }
}
