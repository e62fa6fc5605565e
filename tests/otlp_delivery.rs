//! OTLP delivery when the collector is not simply there: a collector that
//! accepts connections and never answers cannot hold `shutdown()` past the
//! timeout; the refusals the OTLP specification calls retryable are retried
//! when the collector says, within the interval, and the data reaches the
//! real receiver (rotel); `https://` with a custom CA and with a client
//! certificate works, and without the CA the export fails with a logged
//! error that names the cause. Over HTTP and gRPC each.
//!
//! A test binary of its own: it installs a global `tracing` subscriber that
//! captures the log lines.

mod support;

use std::time::{Duration, Instant};

use serverwatch::{Builder, OtlpProtocol};
use support::collector::{Pki, Relay, Silent, TlsFront};
use support::otlp::{DEADLINE, FAILED, has_requests, over_protocols, send_items};
use support::rotel::Rotel;
use support::{eventually, logs, serve_sample};

/// What `shutdown()` may take beyond the timeout: the thread hand-over.
const MARGIN: Duration = Duration::from_millis(500);

fn builder(endpoint: String, protocol: OtlpProtocol) -> Builder {
    support::otlp::builder("otlp-delivery", endpoint, protocol)
}

/// Waits until rotel got a batch that carries all `n` requests.
async fn wait_for_requests(rotel: &Rotel, n: u64) {
    rotel
        .wait_for_batch("every request", DEADLINE, has_requests(n))
        .await;
}

// ---------------------------------------------------------------------------
// 1. A collector that never answers

/// `shutdown()` returns within the timeout, whether it makes the last
/// export itself or an export is under way when it is called; the export
/// under way is the last one.
async fn shutdown_is_bounded_by_the_timeout(protocol: OtlpProtocol) {
    let timeout = Duration::from_secs(2);

    // Nothing under way: the last export hangs.
    let silent = Silent::start().await;
    let watch = builder(silent.endpoint(), protocol)
        .otlp_timeout(timeout)
        .otlp_export_interval(Duration::from_secs(60))
        .build()
        .unwrap();
    let app = serve_sample(&watch).await;
    send_items(&app, 3).await;
    let start = Instant::now();
    watch.shutdown().await;
    let took = start.elapsed();
    eprintln!("{protocol:?}, last export hanging: shutdown took {took:?}");
    assert!(
        took < timeout + MARGIN,
        "shutdown took {took:?}, the timeout is {timeout:?}"
    );
    assert!(silent.bytes_received() > 0, "the last export was sent");

    // An export under way when shutdown is asked.
    let silent = Silent::start().await;
    let interval = Duration::from_secs(1);
    let watch = builder(silent.endpoint(), protocol)
        .otlp_timeout(timeout)
        .otlp_export_interval(interval)
        .build()
        .unwrap();
    eventually("an export under way", DEADLINE, || async {
        (silent.bytes_received() > 0).then_some(())
    })
    .await;
    let start = Instant::now();
    watch.shutdown().await;
    let took = start.elapsed();
    eprintln!("{protocol:?}, export under way: shutdown took {took:?}");
    assert!(
        took < timeout + MARGIN,
        "shutdown took {took:?}, the timeout is {timeout:?}"
    );
    assert_eq!(
        silent.connections(),
        1,
        "no export started after shutdown was asked"
    );
}

// ---------------------------------------------------------------------------
// 2. Retries

/// The collector refuses the first export (HTTP 503 with `Retry-After: 1`,
/// gRPC UNAVAILABLE with a RetryInfo of 1 s); the exporter waits as told,
/// sends again before the next export is due, and rotel gets the data.
async fn retried_when_the_collector_says(protocol: OtlpProtocol) {
    let retry_after = Duration::from_secs(1);
    let interval = Duration::from_secs(3);
    let rotel = Rotel::start().await;
    let relay = Relay::in_front_of(&rotel, protocol, 1, retry_after).await;
    let watch = builder(relay.endpoint(), protocol)
        .otlp_export_interval(interval)
        .build()
        .unwrap();
    let app = serve_sample(&watch).await;
    send_items(&app, 7).await;
    wait_for_requests(&rotel, 7).await;

    let arrivals = relay.arrivals.times();
    assert!(arrivals.len() >= 2, "{arrivals:?}");
    let waited = arrivals[1] - arrivals[0];
    eprintln!("{protocol:?}: the retry came {waited:?} after the refusal");
    assert!(
        waited >= retry_after,
        "the retry came {waited:?} after the refusal, {retry_after:?} was asked"
    );
    assert!(
        waited < interval,
        "the retry came {waited:?} after the refusal: past the interval {interval:?}"
    );
    watch.shutdown().await;
}

// ---------------------------------------------------------------------------
// 3. TLS

/// The exporter trusts the test's CA when told to, presents its client
/// certificate when the collector wants one, and without the CA logs an
/// error that says the certificate's issuer is unknown.
async fn tls_with_a_custom_ca_and_client_certificate(protocol: OtlpProtocol) {
    let pki = Pki::new();
    let rotel = Rotel::start().await;
    let port = rotel.port(protocol);

    // A custom CA.
    let front = TlsFront::start(&pki, port, false).await;
    let watch = builder(front.endpoint(), protocol)
        .otlp_export_interval(Duration::from_millis(300))
        .otlp_certificate(&pki.ca_file)
        .build()
        .unwrap();
    let app = serve_sample(&watch).await;
    send_items(&app, 4).await;
    wait_for_requests(&rotel, 4).await;
    watch.shutdown().await;

    // The same endpoint without the CA.
    let since = logs::mark();
    let watch = builder(front.endpoint(), protocol)
        .otlp_export_interval(Duration::from_millis(300))
        .build()
        .unwrap();
    let needle = format!("127.0.0.1:{}", front.port);
    let line = eventually("a logged TLS failure", DEADLINE, || async {
        logs::lines_with(since, &needle)
            .into_iter()
            .find(|l| l.contains(FAILED))
    })
    .await;
    assert!(
        line.contains("UnknownIssuer"),
        "the error names the cause: {line}"
    );
    watch.shutdown().await;

    // Mutual TLS: in with the client certificate, out without it.
    let front = TlsFront::start(&pki, port, true).await;
    let watch = builder(front.endpoint(), protocol)
        .otlp_export_interval(Duration::from_millis(300))
        .otlp_certificate(&pki.ca_file)
        .otlp_client_certificate(&pki.client_certificate_file, &pki.client_key_file)
        .build()
        .unwrap();
    let app = serve_sample(&watch).await;
    send_items(&app, 9).await;
    wait_for_requests(&rotel, 9).await;
    watch.shutdown().await;
    let watch = builder(front.endpoint(), protocol)
        .otlp_export_interval(Duration::from_millis(300))
        .otlp_certificate(&pki.ca_file)
        .build()
        .unwrap();
    eventually(
        "the front to refuse a client without certificate",
        DEADLINE,
        || async {
            let refused = front.refused.lock().unwrap();
            refused.iter().find(|e| e.contains("certificate")).cloned()
        },
    )
    .await;
    watch.shutdown().await;
}

over_protocols! {
    shutdown_is_bounded_by_the_timeout => [http_protobuf, grpc];
    retried_when_the_collector_says => [http_protobuf, grpc];
    tls_with_a_custom_ca_and_client_certificate => [http_protobuf, grpc];
}
