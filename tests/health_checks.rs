//! The app's own health checks, on real sockets: bounded by their timeout,
//! cached and single-flight under load, critical or not, and the split
//! probes of an orchestrator: `/livez` (never touches a dependency) and
//! `/readyz` (the critical checks).

mod support;

use support::rotel;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serverwatch::{CheckOptions, ServerWatch};
use support::{TestApp, sample};

/// A check that counts its runs and fails while `down` is set.
fn switchable(
    runs: &Arc<AtomicUsize>,
    down: &Arc<AtomicBool>,
) -> impl Fn() -> std::future::Ready<Result<(), String>> + Send + Sync + 'static {
    let (runs, down) = (Arc::clone(runs), Arc::clone(down));
    move || {
        runs.fetch_add(1, Ordering::SeqCst);
        std::future::ready(if down.load(Ordering::SeqCst) {
            Err("connection refused".to_owned())
        } else {
            Ok(())
        })
    }
}

async fn text(app: &TestApp, path: &str) -> (u16, String) {
    let response = app.get(path).await;
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_check_answers_within_its_timeout() {
    let timeout = Duration::from_millis(300);
    let watch = ServerWatch::builder()
        .health_check_with("search", CheckOptions::default().timeout(timeout), || {
            std::future::pending::<Result<(), String>>()
        })
        .build()
        .unwrap();
    let app = support::serve_sample(&watch).await;

    let start = Instant::now();
    let response = app.get("/health").await;
    let took = start.elapsed();
    assert_eq!(response.status(), 503, "a critical check that hangs fails");
    let health: serde_json::Value = response.json().await.unwrap();
    let check = &health["checks"]["search"];
    assert_eq!(
        check["status"],
        "error: no answer to the check within 300ms"
    );
    assert_eq!(check["critical"], true);
    let seconds = check["duration_seconds"].as_f64().unwrap();
    assert!((0.3..2.0).contains(&seconds), "{check}");
    assert!(
        took >= timeout && took < timeout + Duration::from_secs(2),
        "/health took {took:?} with a {timeout:?} timeout"
    );
    assert_eq!(health["status"], "unhealthy");
    eprintln!("a hanging check with a {timeout:?} timeout: /health answered in {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_critical_check_makes_readiness_refuse_while_liveness_stays() {
    let (runs, down) = (Arc::default(), Arc::new(AtomicBool::new(true)));
    let often = CheckOptions::default().interval(Duration::from_millis(50));
    let watch = ServerWatch::builder()
        .bearer_token("probe-token")
        .health_check_with("redis", often, switchable(&runs, &down))
        .build()
        .unwrap();
    let app = support::serve_sample(&watch).await;

    // The probes answer without the token; they say nothing but names.
    assert_eq!(text(&app, "/livez").await, (200, "ok\n".to_owned()));
    assert_eq!(
        text(&app, "/readyz").await,
        (503, "not ready: redis\n".to_owned())
    );
    assert_eq!(app.status("/health").await, 401, "/health keeps its token");
    let health = app.json_with_token("/health", "probe-token").await;
    assert_eq!(health["status"], "unhealthy");
    assert_eq!(
        health["checks"]["redis"]["status"],
        "error: connection refused"
    );

    // Liveness never runs a check.
    let before = runs.load(Ordering::SeqCst);
    for _ in 0..20 {
        assert_eq!(app.status("/livez").await, 200);
    }
    assert_eq!(runs.load(Ordering::SeqCst), before);

    // The dependency comes back: ready again once the interval has passed.
    down.store(false, Ordering::SeqCst);
    support::eventually("readiness", Duration::from_secs(10), || async {
        (text(&app, "/readyz").await == (200, "ok\n".to_owned())).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_non_critical_check_is_reported_and_the_service_stays_healthy() {
    let (runs, down) = (Arc::default(), Arc::new(AtomicBool::new(true)));
    let watch = ServerWatch::builder()
        .health_check_with(
            "recommendations",
            CheckOptions::default().critical(false),
            switchable(&runs, &down),
        )
        .health_check("queue", || async { Ok::<(), String>(()) })
        .build()
        .unwrap();
    let app = support::serve_sample(&watch).await;

    let response = app.get("/health").await;
    assert_eq!(response.status(), 200);
    let health: serde_json::Value = response.json().await.unwrap();
    assert_eq!(health["status"], "healthy");
    let check = &health["checks"]["recommendations"];
    assert_eq!(check["status"], "error: connection refused");
    assert_eq!(check["critical"], false);
    assert_eq!(health["checks"]["queue"]["status"], "healthy");
    assert_eq!(text(&app, "/readyz").await, (200, "ok\n".to_owned()));

    // The gauges carry the last results.
    let metrics = app.metrics().await;
    let up = |check| sample(&metrics, "serverwatch_health_check_up", &[("check", check)]);
    assert_eq!((up("recommendations"), up("queue")), (Some(0.0), Some(1.0)));
    let duration = sample(
        &metrics,
        "serverwatch_health_check_duration_seconds",
        &[("check", "queue")],
    );
    assert!(
        duration.is_some_and(|d| (0.0..1.0).contains(&d)),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_256_concurrent_requests_each_check_runs_once_per_interval() {
    let (redis_runs, redis_down) = (Arc::new(AtomicUsize::new(0)), Arc::default());
    let (queue_runs, queue_down) = (Arc::new(AtomicUsize::new(0)), Arc::default());
    let slow_runs = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&slow_runs);
    let hour = CheckOptions::default().interval(Duration::from_secs(3600));
    let watch = ServerWatch::builder()
        .health_check_with("redis", hour, switchable(&redis_runs, &redis_down))
        .health_check_with(
            "queue",
            hour.critical(false),
            switchable(&queue_runs, &queue_down),
        )
        // Slow enough that the requests pile up while it runs.
        .health_check_with("slow", hour, move || {
            counted.fetch_add(1, Ordering::SeqCst);
            async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                Ok::<(), String>(())
            }
        })
        .build()
        .unwrap();
    let app = Arc::new(support::serve_sample(&watch).await);

    let requests: Vec<_> = (0..256)
        .map(|i| {
            let app = Arc::clone(&app);
            tokio::spawn(async move {
                let path = if i % 2 == 0 { "/health" } else { "/readyz" };
                app.status(path).await
            })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap(), 200);
    }
    app.metrics().await;
    for (name, runs) in [
        ("redis", &redis_runs),
        ("queue", &queue_runs),
        ("slow", &slow_runs),
    ] {
        assert_eq!(runs.load(Ordering::SeqCst), 1, "{name} ran more than once");
    }
}

#[test]
fn wrong_checks_fail_the_build_naming_the_setting() {
    let ok = || async { Ok::<(), String>(()) };
    let err = ServerWatch::builder()
        .health_check("redis", ok)
        .health_check("redis", ok)
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "health_check");
    assert!(err.to_string().contains("\"redis\""), "{err}");
    let zero = CheckOptions::default().interval(Duration::ZERO);
    let err = ServerWatch::builder()
        .health_check_with("redis", zero, ok)
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "health_check");
}

/// With OTLP alone (nobody scrapes `/metrics` or asks `/health`), the
/// exports keep a check's result current: a dependency that goes down
/// shows in the push.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_otlp_push_alone_keeps_a_check_current() {
    let rotel = rotel::Rotel::start().await;
    let (runs, down) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let watch = ServerWatch::builder()
        .health_check_with(
            "queue",
            CheckOptions::default().interval(Duration::from_millis(200)),
            switchable(&runs, &down),
        )
        .otlp_endpoint(rotel.http_endpoint())
        .otlp_export_interval(Duration::from_millis(300))
        .build()
        .unwrap();
    let up = |want: f64| {
        move |batch: &rotel::Batch| {
            let metric = batch
                .metric("serverwatch.health_check.up")
                .ok_or_else(|| format!("no check in {:?}", batch.names()))?;
            let queue = metric.points_with(&[("check", rotel::AttrValue::Str("queue".into()))]);
            match queue.first().and_then(|p| p.value) {
                Some(v) if v == want => Ok(()),
                other => Err(format!("up = {other:?}")),
            }
        }
    };
    let deadline = Duration::from_secs(30);
    rotel
        .wait_for_batch("the check up", deadline, up(1.0))
        .await;
    down.store(true, Ordering::SeqCst);
    rotel
        .wait_for_batch("the check down", deadline, up(0.0))
        .await;
    assert!(runs.load(Ordering::SeqCst) >= 2, "the check ran again");
    watch.shutdown().await;
}
