//! The tokio runtime's figures, as `/metrics` and `/health` show them, from
//! a real runtime under known load. The app runs on a runtime of its own
//! (two workers), which serverwatch watches; the observability routes and
//! the test's client run on the test's runtime, so that reading the figures
//! adds nothing to what is measured. Directions and bounds, never speeds.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use serverwatch::ServerWatch;
use support::{TestApp, eventually, sample};

const DEADLINE: Duration = Duration::from_secs(20);
/// CPU time one `/spin` request takes, at least.
const SPIN: Duration = Duration::from_millis(5);

/// The app's runtime: two workers, on a thread of the test's.
struct AppRuntime {
    runtime: Option<tokio::runtime::Runtime>,
}

impl AppRuntime {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        Self {
            runtime: Some(runtime),
        }
    }

    fn handle(&self) -> tokio::runtime::Handle {
        self.runtime.as_ref().unwrap().handle().clone()
    }
}

impl Drop for AppRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Spins on the CPU for [`SPIN`], without yielding: a CPU-bound handler.
async fn spin() -> &'static str {
    let start = Instant::now();
    while start.elapsed() < SPIN {
        std::hint::spin_loop();
    }
    "spun"
}

/// Serves `/spin` instrumented by `watch` on the app's runtime; serves the
/// observability routes on the test's. Returns (app, ops).
async fn serve(watch: &ServerWatch, app_runtime: &AppRuntime) -> (TestApp, TestApp) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/spin", get(spin))
        .layer(watch.layer().for_axum());
    app_runtime.handle().spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        axum::serve(listener, app).await.unwrap();
    });
    let ops = TestApp::serve(watch.router()).await;
    let app = TestApp {
        addr,
        client: reqwest::Client::new(),
    };
    (app, ops)
}

/// The workers' busy seconds on `/metrics`, added up.
async fn busy_seconds(ops: &TestApp) -> f64 {
    let text = ops.metrics().await;
    (0..2)
        .map(|w| {
            let worker = w.to_string();
            sample(
                &text,
                "tokio_runtime_worker_busy_time_seconds_total",
                &[("tokio_worker", &worker)],
            )
            .unwrap_or_else(|| panic!("no busy time of worker {w}:\n{text}"))
        })
        .sum()
}

async fn gauge(ops: &TestApp, name: &str) -> f64 {
    let text = ops.metrics().await;
    sample(&text, name, &[]).unwrap_or_else(|| panic!("no {name}:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_time_grows_under_cpu_bound_load_and_stays_flat_when_idle() {
    let app_runtime = AppRuntime::new();
    let watch = ServerWatch::builder()
        .runtime(app_runtime.handle())
        .build()
        .unwrap();
    let (app, ops) = serve(&watch, &app_runtime).await;
    assert_eq!(gauge(&ops, "tokio_runtime_workers").await, 2.0);

    let before = busy_seconds(&ops).await;
    const REQUESTS: u32 = 120;
    let client = app.client.clone();
    let mut load = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (client, url) = (client.clone(), app.url("/spin"));
        load.spawn(async move {
            for _ in 0..REQUESTS / 4 {
                let response = client.get(&url).send().await.unwrap();
                assert_eq!(response.text().await.unwrap(), "spun");
            }
        });
    }
    load.join_all().await;
    // A worker adds its busy time when it finishes a batch of tasks: by
    // the time it has parked, every request's spin is in.
    let spun = (SPIN * REQUESTS).as_secs_f64();
    let after = eventually("the spins in the busy time", DEADLINE, || async {
        let busy = busy_seconds(&ops).await;
        (busy - before >= spun).then_some(busy)
    })
    .await;

    // Idle: nothing runs on the app's runtime (the scrapes are served by
    // the test's), so the busy time stays where it is.
    let idle = Duration::from_millis(500);
    tokio::time::sleep(idle).await;
    let later = busy_seconds(&ops).await;
    assert!(
        later - after < 0.05 * idle.as_secs_f64() * 2.0,
        "{:.4} s busy over {idle:?} of idleness",
        later - after
    );
    eprintln!(
        "busy: +{:.3} s for {spun:.3} s of spins, then +{:.4} s over {idle:?} idle",
        after - before,
        later - after
    );

    // /health has the same figures, per worker.
    let health = ops.health().await;
    let runtime = &health["runtime"];
    assert_eq!(runtime["flavor"], "multi_thread");
    assert_eq!(runtime["workers"], 2);
    let per_worker: f64 = runtime["worker_threads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["busy_seconds"].as_f64().unwrap())
        .sum();
    assert!(
        per_worker >= later && per_worker - later < 0.05,
        "{runtime}"
    );
    assert!((runtime["busy_seconds"].as_f64().unwrap() - per_worker).abs() < 1e-9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_depth_and_alive_tasks_rise_and_fall_with_a_burst_of_tasks() {
    let app_runtime = AppRuntime::new();
    let handle = app_runtime.handle();
    let watch = ServerWatch::builder()
        .runtime(handle.clone())
        .build()
        .unwrap();
    let (_app, ops) = serve(&watch, &app_runtime).await;
    let baseline = gauge(&ops, "tokio_runtime_alive_tasks").await;

    // Both workers held by a task each, so that what is spawned from
    // outside waits in the global queue.
    let hold = Arc::new(AtomicBool::new(true));
    let holding = Arc::new(AtomicUsize::new(0));
    for _ in 0..2 {
        let (hold, holding) = (Arc::clone(&hold), Arc::clone(&holding));
        handle.spawn(async move {
            holding.fetch_add(1, Ordering::SeqCst);
            while hold.load(Ordering::SeqCst) {
                std::hint::spin_loop();
            }
        });
    }
    eventually("both workers held", DEADLINE, || async {
        (holding.load(Ordering::SeqCst) == 2).then_some(())
    })
    .await;

    const BURST: usize = 200;
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..BURST {
        let ran = Arc::clone(&ran);
        handle.spawn(async move {
            ran.fetch_add(1, Ordering::SeqCst);
        });
    }
    let queued = gauge(&ops, "tokio_runtime_global_queue_depth").await;
    let alive = gauge(&ops, "tokio_runtime_alive_tasks").await;
    assert!(
        (BURST as f64..=BURST as f64 + 2.0).contains(&queued),
        "every task of the burst waits: {queued} queued"
    );
    assert!(
        alive >= baseline + (BURST + 2) as f64,
        "{alive} alive, {baseline} before"
    );
    let health = ops.health().await;
    let depth = health["runtime"]["global_queue_depth"].as_u64().unwrap() as usize;
    assert!(
        (BURST..=BURST + 2).contains(&depth),
        "/health: {depth} queued"
    );

    hold.store(false, Ordering::SeqCst);
    eventually("the burst to run", DEADLINE, || async {
        (ran.load(Ordering::SeqCst) == BURST).then_some(())
    })
    .await;
    eventually(
        "the queue to empty and the tasks to end",
        DEADLINE,
        || async {
            let queued = gauge(&ops, "tokio_runtime_global_queue_depth").await;
            let alive = gauge(&ops, "tokio_runtime_alive_tasks").await;
            (queued == 0.0 && alive <= baseline).then_some(())
        },
    )
    .await;
}

#[test]
fn without_a_runtime_nothing_is_read_and_health_says_so() {
    // build() outside any runtime, and no handle given.
    let watch = ServerWatch::builder().build().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let ops = TestApp::serve(watch.router()).await;
        let text = ops.metrics().await;
        assert!(!text.contains("tokio_runtime_"), "{text}");
        let health = ops.health().await;
        assert_eq!(health["runtime"], serde_json::json!({"flavor": "none"}));
    });

    // On a current-thread runtime: one worker, the thread that drives it.
    let watch = runtime.block_on(async { ServerWatch::builder().build().unwrap() });
    runtime.block_on(async {
        let ops = TestApp::serve(watch.router()).await;
        let health = ops.health().await;
        assert_eq!(health["runtime"]["flavor"], "current_thread");
        assert_eq!(health["runtime"]["workers"], 1);
        assert_eq!(gauge(&ops, "tokio_runtime_workers").await, 1.0);
    });
}

/// The per-worker counters cost a series per worker: they can be left out
/// by name, and the rest of the runtime's figures stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_worker_counters_can_be_disabled_by_name() {
    let watch = ServerWatch::builder()
        .disable_instruments([
            "tokio.runtime.worker.parks",
            "tokio_runtime_worker_park_unparks",
        ])
        .build()
        .unwrap();
    let ops = TestApp::serve(watch.router()).await;
    let text = ops.metrics().await;
    assert!(!text.contains("tokio_runtime_worker_park"), "{text}");
    assert!(
        text.contains("tokio_runtime_worker_busy_time_seconds_total"),
        "{text}"
    );
    assert_eq!(gauge(&ops, "tokio_runtime_workers").await, 2.0);
}
