//! Collectors of the tests' own, for what a real receiver cannot be made to
//! do: one that accepts connections and never answers ([`Silent`]), relays
//! to rotel that refuse the first requests the way the OTLP specification
//! lets a collector refuse, and take zstd, which rotel does not ([`Relay`]), and
//! a TLS front for rotel with certificates made in the test ([`TlsFront`],
//! [`Pki`]). All on 127.0.0.1, on free ports, ended with the test.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::rustls;
use tonic::codec::CompressionEncoding;

use super::otlp;
use super::rotel::Rotel;
use serverwatch::OtlpProtocol;

/// Aborts its task when dropped, so that nothing outlives the test.
struct Task(JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn listen() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

// ---------------------------------------------------------------------------
// A collector that never answers

/// Accepts every connection, reads what comes, and never answers.
pub struct Silent {
    pub port: u16,
    connections: Arc<AtomicUsize>,
    bytes: Arc<AtomicUsize>,
    _task: Task,
}

impl Silent {
    pub async fn start() -> Self {
        let (listener, port) = listen().await;
        let connections = Arc::new(AtomicUsize::new(0));
        let bytes = Arc::new(AtomicUsize::new(0));
        let (accepted, counted) = (Arc::clone(&connections), Arc::clone(&bytes));
        let task = tokio::spawn(async move {
            let mut readers = tokio::task::JoinSet::new();
            while let Ok((mut socket, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::Relaxed);
                let counted = Arc::clone(&counted);
                readers.spawn(async move {
                    let mut buffer = [0u8; 4096];
                    while let Ok(n @ 1..) = socket.read(&mut buffer).await {
                        counted.fetch_add(n, Ordering::Relaxed);
                    }
                });
            }
        });
        Self {
            port,
            connections,
            bytes,
            _task: Task(task),
        }
    }

    pub fn endpoint(&self) -> String {
        otlp::endpoint(self.port)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Bytes received so far, on every connection.
    pub fn bytes_received(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }
}

// ---------------------------------------------------------------------------
// Collectors that refuse, then pass on

/// When a request arrived, how it was compressed, and who sent it.
struct Arrival {
    time: Instant,
    encoding: Option<String>,
    user_agent: Option<String>,
}

/// When each request arrived, how it was compressed, and who sent it.
#[derive(Clone, Default)]
pub struct Arrivals(Arc<Mutex<Vec<Arrival>>>);

impl Arrivals {
    fn record(&self, encoding: Option<&str>, user_agent: Option<&str>) -> usize {
        let mut arrivals = self.0.lock().unwrap();
        arrivals.push(Arrival {
            time: Instant::now(),
            encoding: encoding.map(str::to_owned),
            user_agent: user_agent.map(str::to_owned),
        });
        arrivals.len()
    }

    pub fn times(&self) -> Vec<Instant> {
        self.0.lock().unwrap().iter().map(|a| a.time).collect()
    }

    /// The `Content-Encoding` (HTTP) or `grpc-encoding` of each request.
    pub fn encodings(&self) -> Vec<Option<String>> {
        let arrivals = self.0.lock().unwrap();
        arrivals.iter().map(|a| a.encoding.clone()).collect()
    }

    /// The `User-Agent` of each request.
    pub fn user_agents(&self) -> Vec<Option<String>> {
        let arrivals = self.0.lock().unwrap();
        arrivals.iter().map(|a| a.user_agent.clone()).collect()
    }
}

/// Refuses the first `refusals` requests, then passes every request on to
/// rotel, decompressed if rotel would not take it, and answers what rotel
/// answers.
pub struct Relay {
    pub port: u16,
    pub arrivals: Arrivals,
    _task: Task,
}

impl Relay {
    /// Over HTTP: `503 Service Unavailable` with `Retry-After: <retry_after>`
    /// (whole seconds); the rest goes to `rotel_http` (`http://host:port`).
    pub async fn http(refusals: usize, retry_after: Duration, rotel_http: String) -> Self {
        let (listener, port) = listen().await;
        let arrivals = Arrivals::default();
        let seen = arrivals.clone();
        let client = reqwest::Client::new();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (seen, client, rotel) = (seen.clone(), client.clone(), rotel_http.clone());
                let service =
                    hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                        let (seen, client, rotel) = (seen.clone(), client.clone(), rotel.clone());
                        async move {
                            let header =
                                |name| request.headers().get(name).and_then(|v| v.to_str().ok());
                            let n = seen.record(header("content-encoding"), header("user-agent"));
                            let response = if n <= refusals {
                                hyper::Response::builder()
                                    .status(503)
                                    .header("retry-after", retry_after.as_secs().to_string())
                                    .body(Full::new(Bytes::from_static(b"busy")))
                                    .unwrap()
                            } else {
                                pass_on(&client, &rotel, request).await
                            };
                            Ok::<_, Infallible>(response)
                        }
                    });
                tokio::spawn(async move {
                    let io = hyper_util::rt::TokioIo::new(socket);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
        });
        Self {
            port,
            arrivals,
            _task: Task(task),
        }
    }

    /// Over gRPC: `UNAVAILABLE` with a RetryInfo of `retry_after`; the rest
    /// goes to `rotel_grpc` (`http://host:port`).
    pub async fn grpc(refusals: usize, retry_after: Duration, rotel_grpc: String) -> Self {
        let (listener, port) = listen().await;
        let arrivals = Arrivals::default();
        let service = RelayGrpc {
            refusals,
            retry_after,
            arrivals: arrivals.clone(),
            rotel: MetricsServiceClient::connect(rotel_grpc).await.unwrap(),
        };
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(
                    MetricsServiceServer::new(service)
                        .accept_compressed(CompressionEncoding::Gzip)
                        .accept_compressed(CompressionEncoding::Zstd),
                )
                .serve_with_incoming(incoming)
                .await;
        });
        Self {
            port,
            arrivals,
            _task: Task(task),
        }
    }

    /// In front of `rotel`, over `protocol`: [`Relay::grpc`] or
    /// [`Relay::http`].
    pub async fn in_front_of(
        rotel: &Rotel,
        protocol: OtlpProtocol,
        refusals: usize,
        retry_after: Duration,
    ) -> Self {
        let upstream = rotel.endpoint(protocol);
        match protocol {
            OtlpProtocol::Grpc => Self::grpc(refusals, retry_after, upstream).await,
            OtlpProtocol::HttpProtobuf | OtlpProtocol::HttpJson => {
                Self::http(refusals, retry_after, upstream).await
            }
        }
    }

    pub fn endpoint(&self) -> String {
        otlp::endpoint(self.port)
    }
}

/// Sends an OTLP/HTTP request on to rotel, with its content headers; a
/// zstd body decompressed, since rotel takes only gzip.
async fn pass_on(
    client: &reqwest::Client,
    rotel: &str,
    request: hyper::Request<Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let mut body = body.collect().await.unwrap().to_bytes().to_vec();
    let mut headers = parts.headers;
    if headers.get("content-encoding").is_some_and(|e| e == "zstd") {
        body = zstd::decode_all(body.as_slice()).unwrap();
        headers.remove("content-encoding");
    }
    let mut forward = client
        .post(format!("{rotel}{}", parts.uri.path()))
        .body(body);
    for name in ["content-type", "content-encoding"] {
        if let Some(value) = headers.get(name) {
            forward = forward.header(name, value);
        }
    }
    let answer = forward.send().await.unwrap();
    let status = answer.status().as_u16();
    let body = answer.bytes().await.unwrap();
    hyper::Response::builder()
        .status(status)
        .body(Full::new(body))
        .unwrap()
}

struct RelayGrpc {
    refusals: usize,
    retry_after: Duration,
    arrivals: Arrivals,
    rotel: MetricsServiceClient<tonic::transport::Channel>,
}

#[tonic::async_trait]
impl MetricsService for RelayGrpc {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        use tonic_types::{ErrorDetails, StatusExt};
        let metadata = |name| request.metadata().get(name).and_then(|v| v.to_str().ok());
        let arrived = self
            .arrivals
            .record(metadata("grpc-encoding"), metadata("user-agent"));
        if arrived <= self.refusals {
            return Err(tonic::Status::with_error_details(
                tonic::Code::Unavailable,
                "busy",
                ErrorDetails::with_retry_info(Some(self.retry_after)),
            ));
        }
        self.rotel.clone().export(request.into_inner()).await
    }
}

// ---------------------------------------------------------------------------
// TLS

/// A CA, a server certificate for 127.0.0.1 and a client certificate, made
/// for the test; the CA and the client's files are written to a scratch
/// directory, for the exporter to read.
pub struct Pki {
    dir: PathBuf,
    pub ca_file: PathBuf,
    pub client_certificate_file: PathBuf,
    pub client_key_file: PathBuf,
    ca: rustls::pki_types::CertificateDer<'static>,
    server_chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    server_key: rustls::pki_types::PrivateKeyDer<'static>,
}

impl Pki {
    pub fn new() -> Self {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
            IsCa, KeyPair, KeyUsagePurpose,
        };
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "serverwatch test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

        let mut server = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_key = KeyPair::generate().unwrap();
        let server_cert = server.signed_by(&server_key, &ca).unwrap();

        let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
        client
            .distinguished_name
            .push(DnType::CommonName, "serverwatch test client");
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_key = KeyPair::generate().unwrap();
        let client_cert = client.signed_by(&client_key, &ca).unwrap();

        let dir = std::env::temp_dir().join(format!(
            "serverwatch-pki-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, pem: String| {
            let path = dir.join(name);
            std::fs::write(&path, pem).unwrap();
            path
        };
        Self {
            ca_file: write("ca.pem", ca.pem()),
            client_certificate_file: write("client.pem", client_cert.pem()),
            client_key_file: write("client-key.pem", client_key.serialize_pem()),
            dir: dir.clone(),
            ca: ca.der().clone(),
            server_chain: vec![server_cert.der().clone()],
            server_key: rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Terminates TLS with the [`Pki`]'s server certificate (HTTP/2 or HTTP/1.1,
/// as the client offers) and passes the bytes on to a port of rotel's.
pub struct TlsFront {
    pub port: u16,
    /// Why handshakes failed, as the server saw it.
    pub refused: Arc<Mutex<Vec<String>>>,
    _task: Task,
}

impl TlsFront {
    /// `client_auth`: only clients with a certificate from the CA get in.
    pub async fn start(pki: &Pki, target_port: u16, client_auth: bool) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if client_auth {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(pki.ca.clone()).unwrap();
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder
            .with_single_cert(pki.server_chain.clone(), pki.server_key.clone_key())
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let (listener, port) = listen().await;
        let refused = Arc::new(Mutex::new(Vec::new()));
        let noted = Arc::clone(&refused);
        let target = SocketAddr::from(([127, 0, 0, 1], target_port));
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (acceptor, noted) = (acceptor.clone(), Arc::clone(&noted));
                tokio::spawn(async move {
                    match acceptor.accept(socket).await {
                        Ok(mut tls) => {
                            if let Ok(mut upstream) = TcpStream::connect(target).await {
                                let _ =
                                    tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
                            }
                        }
                        Err(e) => noted.lock().unwrap().push(e.to_string()),
                    }
                });
            }
        });
        Self {
            port,
            refused,
            _task: Task(task),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}
