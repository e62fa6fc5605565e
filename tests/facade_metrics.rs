//! The app's own metrics through the `metrics` facade, with serverwatch
//! installed as the recorder: counters, gauges and histograms with labels
//! appear on `/metrics` (checked by `promtool` and the strict OpenMetrics
//! parser) and in a real OTLP receiver (rotel) with equal values, under the
//! same cardinality cap as the request metrics. An app's own
//! prometheus-client registry is merged into `/metrics`, and only there.

mod support;

use support::prometheus;

use std::time::Duration;

use serverwatch::ServerWatch;
use support::exposition::{Sample, parse_samples, value_of as value};
use support::rotel::{AttrValue, Batch, Rotel};
use support::{sample, series_count};

const DEADLINE: Duration = Duration::from_secs(30);

fn assert_promtool_clean(text: &str) {
    let report = prometheus::promtool_check_metrics(text);
    assert!(
        report.success && report.output.is_empty(),
        "promtool check metrics (success: {}) said:\n{}\non:\n{text}",
        report.success,
        report.output
    );
}

/// The value of the number point of `metric` with `key` = `label`.
fn point(batch: &Batch, metric: &str, key: &str, label: &str) -> f64 {
    let m = batch
        .metric(metric)
        .unwrap_or_else(|| panic!("no {metric} in {:?}", batch.names()));
    let points = m.points_with(&[(key, AttrValue::Str(label.to_owned()))]);
    match points.as_slice() {
        [p] => p.value.unwrap_or_else(|| panic!("{metric}: {p:?}")),
        other => panic!("{metric}{{{key}={label}}}: {other:?}"),
    }
}

/// What the app records, the way an app's code (or a library of its) does.
fn record_the_shop() {
    metrics::describe_counter!("shop.orders", metrics::Unit::Count, "Orders placed");
    metrics::describe_gauge!("shop.queue.depth", "Orders waiting to be packed");
    metrics::describe_histogram!(
        "shop.checkout.duration",
        metrics::Unit::Milliseconds,
        "Time to check out"
    );
    for (region, n) in [("eu", 3), ("us", 5)] {
        for _ in 0..n {
            metrics::counter!("shop.orders", "region" => region).increment(1);
        }
    }
    metrics::gauge!("shop.queue.depth", "queue" => "fragile").set(7.0);
    metrics::gauge!("shop.queue.depth", "queue" => "bulk").set(2.0);
    metrics::gauge!("shop.queue.depth", "queue" => "bulk").increment(1.5);
    let checkout = metrics::histogram!("shop.checkout.duration", "method" => "card");
    for ms in [250.0, 40.0, 1200.0] {
        checkout.record(ms);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facade_metrics_reach_metrics_and_otlp_with_equal_values() {
    let rotel = Rotel::start().await;
    let watch = ServerWatch::builder()
        .service_name("facade-test")
        .otlp_endpoint(rotel.http_endpoint())
        .otlp_export_interval(Duration::from_millis(300))
        .build()
        .unwrap();
    // The explicit call: serverwatch never installs itself.
    metrics::set_global_recorder(watch.metrics_recorder()).expect("the first recorder");
    record_the_shop();
    let app = support::serve_sample(&watch).await;

    // /metrics, classic text: promtool finds nothing to say.
    let text = app.metrics().await;
    assert_promtool_clean(&text);
    let classic = parse_samples(&text);
    for (region, n) in [("eu", 3.0), ("us", 5.0)] {
        assert_eq!(
            value(&classic, "shop_orders_total", &[("region", region)]),
            n
        );
    }
    assert_eq!(
        value(&classic, "shop_queue_depth", &[("queue", "fragile")]),
        7.0
    );
    assert_eq!(
        value(&classic, "shop_queue_depth", &[("queue", "bulk")]),
        3.5
    );
    let card = [("method", "card")];
    let name = "shop_checkout_duration_seconds";
    assert_eq!(value(&classic, &format!("{name}_count"), &card), 3.0);
    let sum = value(&classic, &format!("{name}_sum"), &card);
    assert!(
        (sum - 1.49).abs() < 1e-9,
        "milliseconds become seconds: {sum}"
    );
    // The request-duration bounds, in seconds.
    let le = |bound: &str| value(&classic, &format!("{name}_bucket"), &[("le", bound)]);
    assert_eq!(
        (le("0.05"), le("0.25"), le("1.0"), le("+Inf")),
        (1.0, 2.0, 2.0, 3.0)
    );
    assert!(
        text.contains("# HELP shop_orders_total Orders placed"),
        "{text}"
    );

    // OpenMetrics: the strict parser accepts it, with the same numbers.
    let om = app.openmetrics().await;
    let families = prometheus::parse_openmetrics_strict(&om)
        .unwrap_or_else(|e| panic!("the strict OpenMetrics parser failed:\n{e}\non:\n{om}"));
    let kind = |n: &str| {
        families
            .iter()
            .find(|f| f.name == n)
            .map(|f| (f.kind.as_str(), f.unit.as_str()))
    };
    assert_eq!(kind("shop_orders"), Some(("counter", "")));
    assert_eq!(kind("shop_queue_depth"), Some(("gauge", "")));
    assert_eq!(kind(name), Some(("histogram", "seconds")));
    let parsed: Vec<Sample> = families.iter().flat_map(|f| f.samples.clone()).collect();
    assert_eq!(
        value(&parsed, "shop_orders_total", &[("region", "us")]),
        5.0
    );

    // OTLP: the given names, the same values.
    let batch = rotel
        .wait_for_batch("a batch with the shop's metrics", DEADLINE, |b| {
            match b.metric("shop.checkout.duration") {
                Some(m) if m.total_count() == 3 => Ok(()),
                other => Err(format!("checkout: {other:?}")),
            }
        })
        .await;
    let orders = batch.metric("shop.orders").unwrap();
    assert_eq!(
        (orders.data_type.as_str(), orders.monotonic),
        ("Sum", Some(true))
    );
    for region in ["eu", "us"] {
        assert_eq!(
            point(&batch, "shop.orders", "region", region),
            sample(&text, "shop_orders_total", &[("region", region)]).unwrap()
        );
    }
    for queue in ["fragile", "bulk"] {
        assert_eq!(
            point(&batch, "shop.queue.depth", "queue", queue),
            sample(&text, "shop_queue_depth", &[("queue", queue)]).unwrap()
        );
    }
    let checkout = batch.metric("shop.checkout.duration").unwrap();
    assert_eq!(checkout.unit, "s");
    assert_eq!(checkout.description, "Time to check out");
    let p = &checkout.points[0];
    assert_eq!(p.attr("method"), Some(&AttrValue::Str("card".into())));
    assert_eq!(p.count, Some(3));
    assert!((p.sum.unwrap() - sum).abs() < 1e-9, "{p:?}");
    assert_eq!(p.bucket_counts.iter().sum::<u64>(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cardinality_cap_holds_for_facade_metrics() {
    let watch = ServerWatch::builder().max_series(5).build().unwrap();
    metrics::with_local_recorder(&watch.metrics_recorder(), || {
        for job in 0..40 {
            metrics::counter!("jobs.done", "job" => job.to_string()).increment(2);
        }
        for job in 0..40 {
            metrics::histogram!("jobs.size", "job" => job.to_string()).record(3.0);
        }
    });
    let app = support::serve_sample(&watch).await;
    let text = app.metrics().await;
    assert_promtool_clean(&text);
    // Five label sets are recorded one by one (the first five of
    // `jobs.done`: the cap counts the label sets of every name); every
    // other one shares its name's overflow series, and nothing is lost.
    let done = parse_samples(&text)
        .into_iter()
        .filter(|s| s.name == "jobs_done_total")
        .collect::<Vec<_>>();
    assert_eq!(done.len(), 6, "five series and the overflow:\n{text}");
    assert_eq!(done.iter().map(|s| s.value).sum::<f64>(), 80.0);
    assert_eq!(
        sample(
            &text,
            "jobs_done_total",
            &[("otel_metric_overflow", "true")]
        ),
        Some(70.0)
    );
    assert_eq!(
        series_count(&text, "jobs_size_count"),
        1,
        "all in its overflow"
    );
    assert_eq!(
        sample(
            &text,
            "jobs_size_count",
            &[("otel_metric_overflow", "true")]
        ),
        Some(40.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prometheus_client_registry_is_merged_into_metrics_only() {
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::registry::{Registry, Unit};

    let jobs: Family<Vec<(String, String)>, Counter> = Family::default();
    let latency = Histogram::new([0.1, 1.0]);
    let mut registry = Registry::default();
    registry.register("legacy_jobs", "Jobs run by the old scheduler", jobs.clone());
    registry.register_with_unit(
        "legacy_latency",
        "Latency of the old scheduler",
        Unit::Seconds,
        latency.clone(),
    );
    let rotel = Rotel::start().await;
    let watch = ServerWatch::builder()
        .prometheus_registry(registry)
        .otlp_endpoint(rotel.http_endpoint())
        .otlp_export_interval(Duration::from_millis(300))
        .build()
        .unwrap();
    jobs.get_or_create(&vec![("queue".into(), "nightly".into())])
        .inc_by(4);
    latency.observe(0.5);
    let app = support::serve_sample(&watch).await;

    let text = app.metrics().await;
    assert_promtool_clean(&text);
    assert_eq!(
        sample(&text, "legacy_jobs_total", &[("queue", "nightly")]),
        Some(4.0)
    );
    assert_eq!(
        sample(&text, "legacy_latency_seconds_count", &[]),
        Some(1.0)
    );
    assert!(sample(&text, "process_cpu_seconds_total", &[]).is_some());

    let om = app.openmetrics().await;
    let families = prometheus::parse_openmetrics_strict(&om)
        .unwrap_or_else(|e| panic!("the strict OpenMetrics parser failed:\n{e}\non:\n{om}"));
    assert!(families.iter().any(|f| f.name == "legacy_jobs"));
    assert_eq!(om.matches("# EOF").count(), 1);

    // Over OTLP: serverwatch's own, never the registry's.
    let batch = rotel
        .wait_for_batch("a batch", DEADLINE, |b| {
            b.metric("process.cpu.time")
                .map(drop)
                .ok_or_else(|| format!("{:?}", b.names()))
        })
        .await;
    assert!(
        batch.names().iter().all(|n| !n.contains("legacy")),
        "{:?}",
        batch.names()
    );

    // A family named like one of serverwatch's is refused at build().
    let mut clash = Registry::default();
    clash.register_with_unit(
        "process_cpu",
        "CPU",
        Unit::Seconds,
        Counter::<u64>::default(),
    );
    let err = ServerWatch::builder()
        .prometheus_registry(clash)
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "prometheus_registry");
    assert!(err.to_string().contains("process_cpu_seconds"), "{err}");
}

/// `metric_prefix` is serverwatch's: the facade's names get it, the
/// registry's are written as registered, and a clash is judged on the names
/// as written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metric_prefix_leaves_the_registry_s_names_as_registered() {
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::registry::{Registry, Unit};

    let jobs: Counter = Counter::default();
    let mut registry = Registry::default();
    registry.register("legacy_jobs", "Jobs run by the old scheduler", jobs.clone());
    let watch = ServerWatch::builder()
        .metric_prefix("inv")
        .prometheus_registry(registry)
        .build()
        .unwrap();
    jobs.inc_by(2);
    metrics::with_local_recorder(&watch.metrics_recorder(), || {
        metrics::counter!("orders.placed").increment(3);
    });
    let app = support::serve_sample(&watch).await;
    let text = app.metrics().await;
    assert_promtool_clean(&text);
    assert_eq!(sample(&text, "legacy_jobs_total", &[]), Some(2.0));
    assert_eq!(sample(&text, "inv_orders_placed_total", &[]), Some(3.0));
    assert!(sample(&text, "inv_process_cpu_seconds_total", &[]).is_some());
    assert!(sample(&text, "process_cpu_seconds_total", &[]).is_none());

    let unprefixed = || {
        let mut registry = Registry::default();
        registry.register_with_unit(
            "process_cpu",
            "CPU",
            Unit::Seconds,
            Counter::<u64>::default(),
        );
        registry
    };
    // Beside inv_process_cpu_seconds it is a name of its own ...
    ServerWatch::builder()
        .metric_prefix("inv")
        .prometheus_registry(unprefixed())
        .build()
        .unwrap();
    // ... and a registry whose name is the prefixed one clashes.
    let mut clash = Registry::default();
    clash.register_with_unit(
        "inv_process_cpu",
        "CPU",
        Unit::Seconds,
        Counter::<u64>::default(),
    );
    let err = ServerWatch::builder()
        .metric_prefix("inv")
        .prometheus_registry(clash)
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "prometheus_registry");
    assert!(err.to_string().contains("inv_process_cpu_seconds"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prometheus_with_native_histograms_reads_the_facade_and_the_registry() {
    use prometheus_client::metrics::counter::Counter;

    let legacy: Counter = Counter::default();
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register(
        "legacy_jobs",
        "Jobs run by the old scheduler",
        legacy.clone(),
    );
    let watch = ServerWatch::builder()
        .prometheus_registry(registry)
        .build()
        .unwrap();
    legacy.inc_by(6);
    metrics::with_local_recorder(&watch.metrics_recorder(), || {
        let wait = metrics::histogram!("pick.wait_seconds", "zone" => "a");
        for ms in 1..=100 {
            wait.record(f64::from(ms) / 1000.0);
        }
    });
    let addr = support::serve_sample(&watch).await.addr;
    // It asks for the protobuf format, where both arrive as MetricFamily
    // messages, the histogram with its native buckets.
    let prom =
        prometheus::Prometheus::start_with_features("facade", addr, &["native-histograms"]).await;
    let answer = |promql: &'static str| {
        let prom = &prom;
        async move {
            let found = prometheus::vector(&prom.query(promql).await);
            match found.as_slice() {
                [(_, v)] => Ok(*v),
                other => Err(format!("{promql}: {other:?}")),
            }
        }
    };
    let count = prometheus::wait_for("the native histogram", DEADLINE, || {
        answer("histogram_count(pick_wait_seconds{zone=\"a\"})")
    })
    .await;
    assert_eq!(count, 100.0);
    let sum = answer("histogram_sum(pick_wait_seconds{zone=\"a\"})")
        .await
        .unwrap();
    assert!((sum - 5.05).abs() < 1e-9, "{sum}");
    // The median of 1..=100 ms, within a native bucket's width (±4.4 %).
    let p50 = answer("histogram_quantile(0.5, pick_wait_seconds{zone=\"a\"})")
        .await
        .unwrap();
    assert!((p50 - 0.0505).abs() / 0.0505 < 0.05, "p50 {p50}");
    let jobs = prometheus::wait_for("the registry's counter", DEADLINE, || {
        answer("legacy_jobs_total{job=\"facade\"}")
    })
    .await;
    assert_eq!(jobs, 6.0);
}
