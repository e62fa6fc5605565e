//! What the OTLP tests share: the exporter aimed at a collector over a
//! protocol, traffic that a batch must then carry, the exporter's log
//! lines, and one test per protocol for each check ([`over_protocols!`]).

use std::time::Duration;

use serverwatch::{Builder, OtlpProtocol, ServerWatch};

use super::TestApp;
use super::rotel::Batch;

/// How long a receiver may take to show what was sent.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The histogram each request is counted in.
pub const DURATION: &str = "http.server.request.duration";

/// What the exporter logs when an outage starts, at each export that fails
/// during it, and when it ends.
pub const FAILED: &str = "serverwatch: OTLP export failed";
pub const STILL_FAILING: &str = "serverwatch: OTLP export still failing";
pub const RECOVERED: &str = "serverwatch: OTLP export recovered";

/// Of a collector's `ports` (gRPC, then HTTP), the one `protocol` goes to.
pub fn port_for(protocol: OtlpProtocol, ports: &[u16]) -> u16 {
    match protocol {
        OtlpProtocol::Grpc => ports[0],
        OtlpProtocol::HttpProtobuf | OtlpProtocol::HttpJson => ports[1],
    }
}

/// `http://127.0.0.1:PORT`
pub fn endpoint(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// The service `service`, exporting to `endpoint` over `protocol`.
pub fn builder(service: &str, endpoint: String, protocol: OtlpProtocol) -> Builder {
    ServerWatch::builder()
        .service_name(service)
        .otlp_endpoint(endpoint)
        .otlp_protocol(protocol)
}

/// Sends `GET /items/1` to `/items/n`, each of which must get 200.
pub async fn send_items(app: &TestApp, n: u64) {
    for id in 1..=n {
        let response = app.get(&format!("/items/{id}")).await;
        assert_eq!(response.status(), 200, "GET /items/{id}");
        // Read the body: the request is recorded once its body is done.
        response.bytes().await.unwrap();
    }
}

/// A check for [`Rotel::wait_for_batch`](super::rotel::Rotel::wait_for_batch):
/// the batch counts exactly `n` requests.
pub fn has_requests(n: u64) -> impl Fn(&Batch) -> Result<(), String> + Copy {
    move |batch| match batch.total_count(DURATION) {
        count if count == n => Ok(()),
        count => Err(format!("{count} of {n} requests")),
    }
}

/// For each `check => [protocol, …];`, a module `check` with one test per
/// protocol (`grpc`, `http_protobuf`, `http_json`) that runs
/// `check(protocol)` on two worker threads. Attributes before `check` go on
/// its module.
#[allow(unused_macros, reason = "only the OTLP test binaries use it")]
macro_rules! over_protocols {
    ($($(#[$attr:meta])* $check:ident => [$($protocol:ident),+ $(,)?];)+) => {
        $(
            $(#[$attr])*
            mod $check {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $protocol() {
                        super::$check($crate::support::otlp::over_protocols!(@$protocol)).await;
                    }
                )+
            }
        )+
    };
    (@grpc) => {
        ::serverwatch::OtlpProtocol::Grpc
    };
    (@http_protobuf) => {
        ::serverwatch::OtlpProtocol::HttpProtobuf
    };
    (@http_json) => {
        ::serverwatch::OtlpProtocol::HttpJson
    };
}
#[allow(unused_imports, reason = "only the OTLP test binaries use it")]
pub(crate) use over_protocols;
