//! The limits of `/metrics`: a scrape that cannot be read and encoded
//! within the `X-Prometheus-Scrape-Timeout-Seconds` it sends is cut and
//! answered 503 with the reason, and scrapes past `max_scrapes_in_flight`
//! get 503 with `Retry-After`.

mod support;

use std::time::{Duration, Instant};

use serverwatch::ServerWatch;
use support::TestApp;
use support::exposition::samples_named;

/// A service with 10 000 label sets of a facade histogram: about 14 MB of
/// text, far more than 0.05 s of encoding.
async fn big_service(in_flight: usize) -> TestApp {
    let watch = ServerWatch::builder()
        .max_series(20_000)
        .max_scrapes_in_flight(in_flight)
        .build()
        .unwrap();
    metrics::with_local_recorder(&watch.metrics_recorder(), || {
        for n in 0..10_000 {
            metrics::histogram!("job.duration_seconds", "job" => n.to_string()).record(0.25);
        }
    });
    support::serve_sample(&watch).await
}

fn scrape(app: &TestApp, timeout: Option<&str>) -> reqwest::RequestBuilder {
    let request = app.client.get(app.url("/metrics"));
    match timeout {
        Some(t) => request.header("X-Prometheus-Scrape-Timeout-Seconds", t),
        None => request,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_past_its_timeout_is_cut_and_says_so() {
    let app = big_service(4).await;
    // Without a timeout, all of it.
    let started = Instant::now();
    let text = scrape(&app, None)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let whole = started.elapsed();
    assert_eq!(
        samples_named(&text, "job_duration_seconds_count").len(),
        10_000
    );

    // The connection ready again, the runtime idle.
    assert_eq!(app.status("/livez").await, 200);
    let started = Instant::now();
    let response = scrape(&app, Some("0.05")).send().await.unwrap();
    let status = response.status();
    let body = response.text().await.unwrap();
    let elapsed = started.elapsed();
    eprintln!("whole scrape {whole:?}; with a 0.05 s timeout {elapsed:?} ({status})");
    // The deadline is 0.045 s: answered within 0.1 s, or, on a machine
    // busy enough to slow every scrape, in a quarter of the whole one.
    assert!(
        elapsed < Duration::from_millis(100) || elapsed * 4 < whole,
        "cut after {elapsed:?}; the whole scrape took {whole:?}"
    );
    assert_eq!(status, 503, "{}", &body[..body.len().min(200)]);
    assert!(body.contains("scrape timeout (0.05 s"), "{body}");

    // A timeout that leaves room: answered in full.
    let response = scrape(&app, Some("30")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert_eq!(
        samples_named(&text, "job_duration_seconds_count").len(),
        10_000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_past_the_limit_get_503_and_retry_after() {
    let app = big_service(1).await;
    // Its headers are in, its body is not read: it is still in flight.
    let first = scrape(&app, None).send().await.unwrap();
    assert_eq!(first.status(), 200);
    let refused = scrape(&app, None).send().await.unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    let reason = refused.text().await.unwrap();
    assert!(reason.contains("max_scrapes_in_flight"), "{reason}");
    // Read to its end, the first lets the next one in.
    let text = first.text().await.unwrap();
    assert_eq!(
        samples_named(&text, "job_duration_seconds_count").len(),
        10_000
    );
    let next = scrape(&app, None).send().await.unwrap();
    assert_eq!(next.status(), 200);
}
