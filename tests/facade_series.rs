//! The life of a `metrics`-facade series: with `metrics_idle_timeout`, a
//! counter that sees no update for that long leaves `/metrics` and the OTLP
//! push, and one that comes back reads as a reset (a lower value) in a real
//! Prometheus and in rotel; label sets that churn stop piling up. And
//! `metrics_histogram_buckets` per full name, prefix or suffix, as a real
//! Prometheus stores the `le` bounds.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use serverwatch::{MetricMatcher, ServerWatch};
use support::exposition::samples_named;
use support::prometheus::{Prometheus, vector, wait_for};
use support::rotel::{AttrValue, Batch, Rotel};

const DEADLINE: Duration = Duration::from_secs(30);

/// Prometheus scraping `target` every 250 ms under the job `job`.
async fn prometheus_scraping(job: &str, target: SocketAddr) -> Prometheus {
    Prometheus::start_with_config(|_| {
        format!(
            "global:\n  scrape_interval: 250ms\n  scrape_timeout: 250ms\n\
             scrape_configs:\n  - job_name: {job}\n    static_configs:\n      \
             - targets: ['{target}']\n"
        )
    })
    .await
}

/// The one value of `promql`, `None` when it returns no series.
async fn single(prom: &Prometheus, promql: &str) -> Option<f64> {
    let result = vector(&prom.query(promql).await);
    assert!(result.len() <= 1, "{promql}: {result:?}");
    result.first().map(|(_, v)| *v)
}

/// The value of `jobs.done{queue="a"}` in `batch`, `None` when absent.
fn otlp_jobs(batch: &Batch) -> Option<f64> {
    let metric = batch.metric("jobs.done")?;
    assert_eq!(
        metric.temporality.as_deref(),
        Some("AGGREGATION_TEMPORALITY_CUMULATIVE")
    );
    let points = metric.points_with(&[("queue", AttrValue::Str("a".into()))]);
    points.first().and_then(|p| p.value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counter_that_expires_and_comes_back_reads_as_a_reset() {
    let rotel = Rotel::start().await;
    let watch = ServerWatch::builder()
        .service_name("facade-expiry")
        .otlp_endpoint(rotel.http_endpoint())
        .otlp_export_interval(Duration::from_millis(300))
        .metrics_idle_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let app = support::serve_sample(&watch).await;
    let prom = prometheus_scraping("facade-expiry", app.addr).await;
    let prom = &prom;
    // Prometheus's first scrape comes seconds after it is ready.
    wait_for("a first scrape", DEADLINE, || async {
        match single(prom, "up").await {
            Some(1.0) => Ok(()),
            other => Err(format!("up: {other:?}")),
        }
    })
    .await;
    // A handle kept by the app: it outlives the series it was made for.
    let jobs = metrics::with_local_recorder(
        &watch.metrics_recorder(),
        || metrics::counter!("jobs.done", "queue" => "a"),
    );
    jobs.increment(5);
    let query = r#"jobs_done_total{queue="a"}"#;
    let rotel = &rotel;
    let value_is = |want: Option<f64>| async move {
        let seen = single(prom, query).await;
        let otlp = rotel.batches().last().and_then(otlp_jobs);
        if seen == want && otlp == want {
            Ok(())
        } else {
            Err(format!("Prometheus {seen:?}, OTLP {otlp:?}"))
        }
    };
    // Seen by both before it expires (for the last time, at the latest).
    wait_for("5 in Prometheus and OTLP", DEADLINE, || async {
        let most = single(prom, &format!("max_over_time({query}[1m])")).await;
        let otlp = rotel.batches().iter().any(|b| otlp_jobs(b) == Some(5.0));
        if most == Some(5.0) && otlp {
            Ok(())
        } else {
            Err(format!("Prometheus {most:?}, OTLP seen: {otlp}"))
        }
    })
    .await;
    // Idle for two seconds: gone from both (Prometheus marks it stale).
    wait_for("the idle series to go", DEADLINE, || value_is(None)).await;
    jobs.increment(2);
    wait_for("2 in Prometheus and OTLP", DEADLINE, || value_is(Some(2.0))).await;

    let resets = single(prom, &format!("resets({query}[1m])")).await;
    assert_eq!(resets, Some(1.0), "one reset, from 5 to 2");
    // OTLP: 5, then nothing, then 2; never a value between.
    let mut seen: Vec<Option<f64>> = rotel.batches().iter().map(otlp_jobs).collect();
    seen.dedup();
    let first = seen.iter().position(|v| *v == Some(5.0)).unwrap();
    assert_eq!(seen[first..], [Some(5.0), None, Some(2.0)], "{seen:?}");
    // And a new start: what makes a cumulative receiver read a reset.
    let starts = |want: f64| -> Vec<(u64, u64)> {
        rotel
            .batches()
            .iter()
            .filter_map(|b| {
                let metric = b.metric("jobs.done")?;
                let points = metric.points_with(&[("queue", AttrValue::Str("a".into()))]);
                let p = points.first()?;
                (p.value == Some(want))
                    .then(|| (p.start_time_unix_nano.unwrap(), p.time_unix_nano.unwrap()))
            })
            .collect()
    };
    let (five, two) = (starts(5.0), starts(2.0));
    let last_five = five.iter().map(|&(_, time)| time).max().unwrap();
    assert!(
        two.iter().all(|&(start, _)| start > last_five),
        "the 2 starts after the last 5 was sent: {five:?} then {two:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churning_label_sets_stop_piling_up_once_idle_ones_expire() {
    // Per round 20 new label sets, then a scrape; 40 rounds 100 ms apart.
    async fn series_per_scrape(watch: &ServerWatch) -> Vec<usize> {
        let app = support::serve_sample(watch).await;
        let recorder = watch.metrics_recorder();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut counts = Vec::new();
        for round in 0..40 {
            tick.tick().await;
            metrics::with_local_recorder(&recorder, || {
                for n in 0..20 {
                    let job = format!("{round}-{n}");
                    metrics::counter!("jobs.done", "job" => job).increment(1);
                }
            });
            counts.push(samples_named(&app.metrics().await, "jobs_done_total").len());
        }
        counts
    }
    let builder = ServerWatch::builder().max_series(5000);
    let kept = series_per_scrape(&builder.clone().build().unwrap()).await;
    assert_eq!(kept.last(), Some(&800), "without a timeout every one stays");
    let idle = Duration::from_millis(500);
    let watch = builder.metrics_idle_timeout(idle).build().unwrap();
    let expiring = series_per_scrape(&watch).await;
    // At most the label sets of the last idle + 2 reading intervals (7
    // rounds), whatever the time the test ran.
    let most = *expiring[10..].iter().max().unwrap();
    eprintln!("series per scrape, without a timeout {kept:?}, with {idle:?} {expiring:?}");
    assert!(most <= 7 * 20, "{most} series: {expiring:?}");
    assert!(expiring.last().unwrap() >= &20, "{expiring:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histogram_buckets_follow_the_most_specific_matcher() {
    let watch = ServerWatch::builder()
        .metrics_histogram_buckets(MetricMatcher::Prefix("shop.".into()), [10.0, 100.0])
        .metrics_histogram_buckets("shop.basket.items", [1.0, 2.0, 5.0])
        .metrics_histogram_buckets(MetricMatcher::Suffix(".wait".into()), [0.1, 1.0])
        .build()
        .unwrap();
    metrics::with_local_recorder(&watch.metrics_recorder(), || {
        metrics::describe_histogram!("queue.wait", metrics::Unit::Milliseconds, "Waits");
        metrics::histogram!("shop.basket.items").record(3.0);
        metrics::histogram!("shop.basket.weight").record(30.0);
        // `shop.` and `.wait` are as long: the one given last wins.
        metrics::histogram!("shop.queue.wait").record(0.5);
        metrics::histogram!("queue.wait").record(250.0);
        metrics::histogram!("other.items").record(3.0);
    });
    let app = support::serve_sample(&watch).await;
    let prom = prometheus_scraping("facade-buckets", app.addr).await;
    // The buckets of `family` as Prometheus stores them: (le, count).
    let buckets = |family: &'static str| {
        let prom = &prom;
        async move {
            let result = prom.query(&format!("{family}_bucket")).await;
            let mut buckets: Vec<(f64, f64)> = vector(&result)
                .iter()
                .map(|(labels, v)| (labels["le"].parse().unwrap(), *v))
                .collect();
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            if buckets.is_empty() {
                Err(format!("no {family}_bucket yet"))
            } else {
                Ok(buckets)
            }
        }
    };
    let bounds = |family| async move {
        let found = buckets(family).await?;
        Ok::<Vec<f64>, String>(found.iter().map(|b| b.0).collect())
    };
    let inf = f64::INFINITY;
    for (family, want) in [
        ("shop_basket_items", vec![1.0, 2.0, 5.0, inf]),
        ("shop_basket_weight", vec![10.0, 100.0, inf]),
        ("shop_queue_wait", vec![0.1, 1.0, inf]),
        ("queue_wait_seconds", vec![0.1, 1.0, inf]),
    ] {
        let got = wait_for(family, DEADLINE, || bounds(family)).await;
        assert_eq!(got, want, "{family}");
    }
    let other = wait_for("other_items", DEADLINE, || bounds("other_items")).await;
    assert_eq!(other.len(), 14, "the 13 default bounds and +Inf: {other:?}");
    // 250 ms counts in the 1 s bucket, not the 0.1 s one.
    let wait = buckets("queue_wait_seconds").await.unwrap();
    assert_eq!(wait, [(0.1, 0.0), (1.0, 1.0), (f64::INFINITY, 1.0)]);
}
