//! OTLP push: every export interval, the same instrument points that
//! `/metrics` encodes are sent to a collector, cumulative, over HTTP/protobuf
//! or gRPC.
//!
//! The exporter runs on a thread of its own with its own small runtime, so a
//! slow or absent collector never takes a worker from the service. There is
//! no queue: each export reads the current cumulative state, so an export
//! that fails loses nothing (the next one carries it) and memory stays flat
//! through an outage. An outage is logged once when it starts and once when
//! it ends.

mod config;
mod encode;
mod transport;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, oneshot};

pub use config::OtlpProtocol;
pub(crate) use config::{OtlpConfig, OtlpSettings};
use encode::Origin;
use transport::Transport;

use crate::state::State;

/// The running exporter; dropping it does not stop the export thread,
/// [`OtlpExporter::shutdown`] does.
#[derive(Debug)]
pub(crate) struct OtlpExporter {
    commands: mpsc::UnboundedSender<oneshot::Sender<()>>,
}

impl OtlpExporter {
    /// Starts the export thread.
    pub(crate) fn start(state: Arc<State>, config: OtlpConfig) -> std::io::Result<Self> {
        let origin = Origin {
            resource: resource(&state, &config),
            start: SystemTime::now(),
            exponential: config.exponential_histograms,
        };
        let (commands, receiver) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("serverwatch-otlp".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                match runtime {
                    Ok(runtime) => runtime.block_on(run(state, config, origin, receiver)),
                    Err(e) => {
                        tracing::error!(error = %e, "serverwatch: OTLP export disabled: no runtime")
                    }
                }
            })?;
        Ok(Self { commands })
    }

    /// Makes a last export and stops. Returns at once if already stopped.
    pub(crate) async fn shutdown(&self) {
        let (done, finished) = oneshot::channel();
        if self.commands.send(done).is_ok() {
            let _ = finished.await;
        }
    }
}

async fn run(
    state: Arc<State>,
    config: OtlpConfig,
    origin: Origin,
    mut shutdown: mpsc::UnboundedReceiver<oneshot::Sender<()>>,
) {
    let mut transport = match Transport::new(&config) {
        Ok(transport) => transport,
        Err(e) => {
            tracing::error!(error = %e, "serverwatch: OTLP export disabled: cannot set up the client");
            return;
        }
    };
    let mut outage = Outage::default();
    let start = tokio::time::Instant::now() + config.interval;
    let mut ticker = tokio::time::interval_at(start, config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => export(&state, &config, &origin, &mut transport, &mut outage).await,
            done = shutdown.recv() => {
                export(&state, &config, &origin, &mut transport, &mut outage).await;
                if let Some(done) = done {
                    let _ = done.send(());
                }
                return;
            }
        }
    }
}

async fn export(
    state: &State,
    config: &OtlpConfig,
    origin: &Origin,
    transport: &mut Transport,
    outage: &mut Outage,
) {
    let request = encode::request(origin, &state.families(), SystemTime::now());
    let result = match tokio::time::timeout(config.timeout, transport.send(request)).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {:?}", config.timeout)),
    };
    outage.record(&config.endpoint, config.interval, result);
}

/// Tracks failed exports so that an outage is reported once, not once per
/// interval.
#[derive(Debug, Default)]
struct Outage {
    since: Option<(Instant, u64)>,
}

impl Outage {
    fn record(&mut self, endpoint: &http::Uri, interval: Duration, result: Result<(), String>) {
        match (result, &mut self.since) {
            (Ok(()), None) => tracing::trace!(%endpoint, "serverwatch: OTLP export sent"),
            (Ok(()), Some((since, failures))) => {
                tracing::info!(
                    %endpoint,
                    failures = *failures,
                    after = ?since.elapsed(),
                    "serverwatch: OTLP export recovered"
                );
                self.since = None;
            }
            (Err(error), None) => {
                tracing::warn!(
                    %endpoint,
                    %error,
                    "serverwatch: OTLP export failed; retrying every {interval:?}, \
                     silent until it recovers (nothing is lost: exports are cumulative)"
                );
                self.since = Some((Instant::now(), 1));
            }
            (Err(error), Some((_, failures))) => {
                *failures += 1;
                tracing::debug!(%endpoint, %error, "serverwatch: OTLP export still failing");
            }
        }
    }
}

/// `service.*` and `telemetry.sdk.*`, then `OTEL_RESOURCE_ATTRIBUTES` for
/// everything else.
fn resource(state: &State, config: &OtlpConfig) -> Vec<(String, String)> {
    let service = state.service();
    let mut attributes: Vec<(String, String)> = vec![
        ("service.name".into(), service.name.clone()),
        ("service.version".into(), service.version.clone()),
        // A random (version 4) UUID, as the semantic conventions recommend.
        (
            "service.instance.id".into(),
            uuid::Uuid::new_v4().to_string(),
        ),
        ("telemetry.sdk.name".into(), "serverwatch".into()),
        ("telemetry.sdk.language".into(), "rust".into()),
        (
            "telemetry.sdk.version".into(),
            env!("CARGO_PKG_VERSION").into(),
        ),
    ];
    for (key, value) in &config.resource_attributes {
        if !attributes.iter().any(|(k, _)| k == key) {
            attributes.push((key.clone(), value.clone()));
        }
    }
    attributes
}
