//! Sending one request to the collector, over HTTP/protobuf or gRPC.

use http::{HeaderMap, header};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use prost::Message as _;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::{Channel, Endpoint};

use super::config::{OtlpConfig, OtlpProtocol};

#[derive(Debug)]
pub(crate) enum Transport {
    Http {
        client: reqwest::Client,
        url: String,
        headers: HeaderMap,
    },
    Grpc {
        client: MetricsServiceClient<Channel>,
        metadata: MetadataMap,
    },
}

impl Transport {
    /// Sets up the client; nothing is connected yet (a collector that is
    /// down at start is only noticed by the first export). Must run inside
    /// the exporter's Tokio runtime.
    pub(crate) fn new(config: &OtlpConfig) -> Result<Self, String> {
        match config.protocol {
            OtlpProtocol::HttpProtobuf => {
                let client = reqwest::Client::builder()
                    .timeout(config.timeout)
                    .connect_timeout(config.timeout)
                    .build()
                    .map_err(|e| e.to_string())?;
                let mut headers: HeaderMap = config.headers.iter().cloned().collect();
                headers.insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("application/x-protobuf"),
                );
                Ok(Transport::Http {
                    client,
                    url: config.endpoint.to_string(),
                    headers,
                })
            }
            OtlpProtocol::Grpc => {
                let channel = Endpoint::from(config.endpoint.clone())
                    .connect_timeout(config.timeout)
                    .timeout(config.timeout)
                    .connect_lazy();
                let mut metadata = MetadataMap::new();
                for (name, value) in &config.headers {
                    let key = MetadataKey::from_bytes(name.as_str().as_bytes())
                        .map_err(|e| e.to_string())?;
                    let value =
                        MetadataValue::try_from(value.as_bytes()).map_err(|e| e.to_string())?;
                    metadata.insert(key, value);
                }
                Ok(Transport::Grpc {
                    client: MetricsServiceClient::new(channel),
                    metadata,
                })
            }
        }
    }

    pub(crate) async fn send(
        &mut self,
        request: ExportMetricsServiceRequest,
    ) -> Result<(), String> {
        match self {
            Transport::Http {
                client,
                url,
                headers,
            } => {
                let response = client
                    .post(url.as_str())
                    .headers(headers.clone())
                    .body(request.encode_to_vec())
                    .send()
                    .await
                    .map_err(|e| error_chain(&e))?;
                let status = response.status();
                if status.is_success() {
                    return Ok(());
                }
                let body = response.text().await.unwrap_or_default();
                Err(format!(
                    "HTTP {status}: {}",
                    body.chars().take(200).collect::<String>()
                ))
            }
            Transport::Grpc { client, metadata } => {
                let mut request = tonic::Request::new(request);
                *request.metadata_mut() = metadata.clone();
                client
                    .export(request)
                    .await
                    .map(drop)
                    .map_err(|status| format!("gRPC {:?}: {}", status.code(), status.message()))
            }
        }
    }
}

/// An error with its causes, which for connection errors hold the reason.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
