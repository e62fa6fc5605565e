//! The demo (`examples/demo.rs`), which users copy, run as a user runs it.

#[allow(dead_code, reason = "the demo needs only part of the launcher")]
#[path = "support/launcher.rs"]
mod launcher;

use std::path::PathBuf;
use std::process::Command;

use launcher::{Run, Server, ServerKind};

/// The demo binary that `cargo test` builds beside the test binaries, with
/// `OTEL_SERVICE_NAME` set to `name` if given.
struct Demo {
    path: PathBuf,
    service_name: Option<&'static str>,
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
        Self { path, service_name }
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
        command
    }
}

async fn service_name_of(demo: Demo) -> String {
    let mut server = Server::new(demo);
    server.launch(1).await;
    let url = format!("http://127.0.0.1:{}/metrics", server.ports()[0]);
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("serverwatch_build_info{"))
        .unwrap_or_else(|| panic!("no build info in:\n{text}"));
    let (_, rest) = line.split_once("service_name=\"").unwrap();
    rest.split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn the_demo_honours_otel_service_name() {
    assert_eq!(
        service_name_of(Demo::new(Some("checkout"))).await,
        "checkout"
    );
    assert_eq!(service_name_of(Demo::new(None)).await, "serverwatch-demo");
}
