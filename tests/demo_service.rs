//! The demo (`examples/demo.rs`), which users copy, run as a user runs it.

mod support;

use support::launcher;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use support::board;
use support::exposition::samples_named;
use support::launcher::{Run, Server, ServerKind};
use support::mongo::Nx;
use support::prometheus::{Prometheus, wait_for};
use support::rotel::Rotel;

/// The demo binary that `cargo test` builds beside the test binaries, with
/// `OTEL_SERVICE_NAME` set to `name` if given, and the flags and variables
/// a test adds.
struct Demo {
    path: PathBuf,
    service_name: Option<&'static str>,
    args: Vec<&'static str>,
    env: Vec<(&'static str, String)>,
}

impl Demo {
    fn new(service_name: Option<&'static str>) -> Self {
        // target/<profile>/deps/demo_service-… → target/<profile>/examples/demo
        let exe = std::env::current_exe().unwrap();
        let path = exe
            .parent()
            .unwrap()
            .with_file_name("examples")
            .join("demo");
        assert!(
            path.is_file(),
            "no demo binary at {}: `cargo test` builds the examples (or run \
             `cargo build --all-features --example demo`)",
            path.display()
        );
        Self {
            path,
            service_name,
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// Pushing its metrics every 300 ms to `rotel`, over HTTP.
    fn pushing_to(mut self, rotel: &Rotel) -> Self {
        self.env
            .push(("OTEL_EXPORTER_OTLP_ENDPOINT", rotel.http_endpoint()));
        self.env.push(("OTEL_METRIC_EXPORT_INTERVAL", "300".into()));
        self
    }
}

impl ServerKind for Demo {
    const NAME: &'static str = "demo";
    const INSTALL_HINT: &'static str = "cargo build --all-features --example demo";

    fn command(&self, run: &Run<'_>) -> Command {
        let mut command = Command::new(&self.path);
        command.args(["--listen", &format!("127.0.0.1:{}", run.ports[0])]);
        for var in [
            "OTEL_SERVICE_NAME",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "MONGODB_URI",
        ] {
            command.env_remove(var);
        }
        if let Some(name) = self.service_name {
            command.env("OTEL_SERVICE_NAME", name);
        }
        command.args(&self.args);
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }
}

async fn service_name_of(demo: Demo) -> String {
    let mut server = Server::new(demo);
    server.launch(1).await;
    let url = format!("http://127.0.0.1:{}/metrics", server.ports()[0]);
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    let info = samples_named(&text, "serverwatch_build_info");
    assert_eq!(info.len(), 1, "one build info in:\n{text}");
    info[0]
        .label("service_name")
        .unwrap_or_else(|| panic!("no service_name on {:?}", info[0]))
        .to_owned()
}

#[tokio::test]
async fn the_demo_honours_otel_service_name() {
    assert_eq!(
        service_name_of(Demo::new(Some("checkout"))).await,
        "checkout"
    );
    assert_eq!(service_name_of(Demo::new(None)).await, "serverwatch-demo");
}

/// Sends `n` requests to `path` of the demo behind `server`.
async fn send(server: &Server<Demo>, path: &str, n: usize) {
    let url = format!("http://127.0.0.1:{}{path}", server.ports()[0]);
    for _ in 0..n {
        reqwest::get(&url).await.unwrap();
    }
}

#[tokio::test]
async fn the_standard_variable_makes_the_demo_push_exponential_histograms() {
    let rotel = Rotel::start().await;
    let mut demo = Demo::new(None).pushing_to(&rotel);
    demo.env.push((
        "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION",
        "base2_exponential_bucket_histogram".into(),
    ));
    let mut server = Server::new(demo);
    server.launch(1).await;
    send(&server, "/items/3", 12).await;
    let batch = rotel
        .wait_for_batch(
            "12 requests in exponential histograms",
            Duration::from_secs(20),
            |b| {
                let seen: u64 = b
                    .metric("http.server.request.duration")
                    .filter(|m| m.data_type == "ExponentialHistogram")
                    .map_or(0, |m| m.points.iter().filter_map(|p| p.count).sum());
                if seen >= 12 {
                    Ok(())
                } else {
                    Err(format!("{seen} so far"))
                }
            },
        )
        .await;
    let duration = batch.metric("http.server.request.duration").unwrap();
    let point = &duration.points[0];
    assert_eq!(point.scale(), Some(4), "{point:?}");
    let buckets: u64 =
        point.exponential_buckets.iter().map(|b| b.2).sum::<u64>() + point.zero_count.unwrap_or(0);
    assert_eq!(buckets, point.count.unwrap());
}

#[tokio::test]
async fn the_demo_with_traces_links_its_exemplars_to_its_spans() {
    let rotel = Rotel::start().await;
    let mut demo = Demo::new(None).pushing_to(&rotel);
    demo.args.push("--traces");
    let mut server = Server::new(demo);
    server.launch(1).await;
    send(&server, "/items/5", 5).await;
    // The exemplars reach rotel with the metrics, the spans with the traces.
    let batch = rotel
        .wait_for_batch("an exemplar from the demo", Duration::from_secs(20), |b| {
            let seen = b
                .metric("http.server.request.duration")
                .is_some_and(|m| m.points.iter().any(|p| !p.exemplar_trace_ids.is_empty()));
            if seen { Ok(()) } else { Err("none yet".into()) }
        })
        .await;
    let exemplars: Vec<String> = batch
        .metric("http.server.request.duration")
        .unwrap()
        .points
        .iter()
        .flat_map(|p| p.exemplar_trace_ids.clone())
        .collect();
    launcher::poll(Duration::from_secs(20), Duration::from_millis(100), || {
        let spans = rotel.span_trace_ids();
        let missing: Vec<&String> = exemplars.iter().filter(|t| !spans.contains(*t)).collect();
        let result = if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("no span of trace {missing:?} among {spans:?}"))
        };
        async move { result }
    })
    .await
    .unwrap_or_else(|e| panic!("the exemplars' traces never reached rotel: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_of_the_shipped_board_has_data_on_the_demo() {
    let nx = Nx::start().await;
    let mut demo = Demo::new(None);
    demo.args.push("--traffic");
    demo.env.push(("MONGODB_URI", nx.uri()));
    let mut server = Server::new(demo);
    server.launch(1).await;
    let target = format!("127.0.0.1:{}", server.ports()[0]);
    let prom = Prometheus::start_with_config(|_| board::config_with_rules("demo", &target)).await;
    wait_for(
        "every board query to have data on the demo",
        Duration::from_secs(60),
        || async {
            let empty = board::queries_without_data(&prom, "demo", ".*").await;
            if empty.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{} without data:\n  {}",
                    empty.len(),
                    empty.join("\n  ")
                ))
            }
        },
    )
    .await;
}
