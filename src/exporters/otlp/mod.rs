//! OTLP push: every export interval, the same instrument points that
//! `/metrics` encodes are sent to a collector, cumulative or as deltas, over
//! HTTP (protobuf or JSON) or gRPC.
//!
//! The exporter runs on a thread of its own with its own small runtime, so a
//! slow or absent collector never takes a worker from the service. There is
//! no queue: each export reads the current cumulative state, so an export
//! that fails loses nothing (the next one carries it) and memory stays flat
//! through an outage. A failure the collector calls transient is retried
//! with backoff, within the export's time. An outage is logged once when it
//! starts and once when it ends, and so are rejected points.

mod config;
mod encode;
mod transport;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, oneshot};

pub use config::{OtlpCompression, OtlpProtocol, OtlpTemporality};
pub(crate) use config::{OtlpConfig, OtlpSettings};
use encode::{Encoder, Origin};
use transport::{Accepted, Retry, Transport};

use crate::error::BuildError;
use crate::model::family::Value;
use crate::part::{Assembly, Env, Part, Running, StartDebug, part_boilerplate};
use crate::source::{BoxFuture, Sources};

/// First wait before a retry; it doubles, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The running exporter. [`OtlpExporter::shutdown`] stops the export
/// thread after a last export, and so does dropping it.
#[derive(Debug)]
pub(crate) struct OtlpExporter {
    commands: mpsc::UnboundedSender<Shutdown>,
}

/// Asks the export thread to stop, when it was asked.
#[derive(Debug)]
struct Shutdown {
    asked: Instant,
    done: oneshot::Sender<()>,
}

impl OtlpExporter {
    /// Starts the export thread.
    pub(crate) fn start(sources: Arc<Sources>, config: OtlpConfig) -> std::io::Result<Self> {
        let origin = Origin {
            resource: resource(&sources, &config),
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
                    Ok(runtime) => runtime.block_on(run(sources, config, origin, receiver)),
                    Err(e) => {
                        tracing::error!(error = %e, "serverwatch: OTLP export disabled: no runtime")
                    }
                }
            })?;
        Ok(Self { commands })
    }

    /// Makes a last export, unless one is under way, and stops; returns
    /// within the export timeout of the call whatever the collector does.
    /// Returns at once if already stopped.
    pub(crate) async fn shutdown(&self) {
        let (done, finished) = oneshot::channel();
        let asked = Instant::now();
        if self.commands.send(Shutdown { asked, done }).is_ok() {
            let _ = finished.await;
        }
    }
}

/// The OTLP settings as a part: the environment is read first (it may
/// name the service), and the export thread starts once every source is
/// known.
#[derive(Debug, Clone, Default)]
pub(crate) struct OtlpPart {
    pub(crate) settings: OtlpSettings,
    resolved: Option<OtlpConfig>,
}

impl Part for OtlpPart {
    part_boilerplate!();

    fn read_env(&mut self, env: Env<'_>) -> Result<Option<String>, BuildError> {
        self.resolved = self.settings.resolve(env)?;
        Ok(self
            .resolved
            .as_ref()
            .and_then(|c| c.service_name().map(str::to_owned)))
    }

    fn build(self: Box<Self>, assembly: &mut Assembly) -> Result<(), BuildError> {
        let Some(config) = self.resolved else {
            return Ok(());
        };
        assembly.starts.push(StartDebug(
            "the OTLP export",
            Box::new(move |sources, handles| {
                let exporter = OtlpExporter::start(Arc::clone(sources), config).map_err(|e| {
                    BuildError::new(
                        "otlp_endpoint",
                        format!("cannot start the export thread: {e}"),
                    )
                })?;
                handles.running.push(Box::new(exporter));
                Ok(())
            }),
        ));
        Ok(())
    }
}

impl Running for OtlpExporter {
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(OtlpExporter::shutdown(self))
    }
}

async fn run(
    sources: Arc<Sources>,
    config: OtlpConfig,
    origin: Origin,
    mut shutdown: mpsc::UnboundedReceiver<Shutdown>,
) {
    let transport = match Transport::new(&config) {
        Ok(transport) => transport,
        Err(e) => {
            tracing::error!(error = %e, "serverwatch: OTLP export disabled: cannot set up the client");
            return;
        }
    };
    let mut exporter = Exporter {
        encoder: Encoder::new(origin, config.temporality),
        sources,
        transport,
        outage: Outage::default(),
        rejections: Rejections::default(),
        config,
    };
    let interval = exporter.config.interval;
    let shutdown_budget = exporter.shutdown_budget();
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // `None`: the handle was dropped; a last export all the same.
    let asked = |stop: &Option<Shutdown>| stop.as_ref().map_or_else(Instant::now, |s| s.asked);
    let stop = loop {
        tokio::select! {
            _ = ticker.tick() => {
                let export = exporter.export(Instant::now() + exporter.budget());
                tokio::pin!(export);
                tokio::select! {
                    () = &mut export => {}
                    stop = shutdown.recv() => {
                        // The export under way is the last one, within the
                        // shutdown's time.
                        let deadline = tokio::time::Instant::from_std(asked(&stop) + shutdown_budget);
                        let _ = tokio::time::timeout_at(deadline, &mut export).await;
                        break stop;
                    }
                }
            }
            stop = shutdown.recv() => {
                exporter.export(asked(&stop) + shutdown_budget).await;
                break stop;
            }
        }
    };
    if let Some(stop) = stop {
        let _ = stop.done.send(());
    }
}

/// The export thread's state.
struct Exporter {
    sources: Arc<Sources>,
    config: OtlpConfig,
    encoder: Encoder,
    transport: Transport,
    outage: Outage,
    rejections: Rejections,
}

impl Exporter {
    /// The longest one export may take, its retries included: the export
    /// timeout, and never past the next export.
    fn budget(&self) -> Duration {
        self.config.export_timeout.min(self.config.interval)
    }

    /// The longest the last export may take.
    fn shutdown_budget(&self) -> Duration {
        self.config.timeout.min(self.budget())
    }

    /// Reads the state and sends it, retrying what may be retried, until
    /// `deadline`.
    async fn export(&mut self, deadline: Instant) {
        // With nobody scraping or asking /health, the exports alone keep
        // the probes' results current (at most one export behind).
        self.sources.refresh_in_background();
        let encoded = self
            .encoder
            .encode(self.sources.families(), SystemTime::now());
        let mut backoff = FIRST_BACKOFF;
        let result = loop {
            let attempt = self
                .config
                .timeout
                .min(deadline.saturating_duration_since(Instant::now()));
            let failed =
                match tokio::time::timeout(attempt, self.transport.send(&encoded.request)).await {
                    Ok(Ok(accepted)) => break Ok(accepted),
                    Ok(Err(failed)) => failed,
                    Err(_) => transport::Failed {
                        error: format!("no answer within {attempt:?}"),
                        retry: Retry::After(None),
                    },
                };
            let Retry::After(asked) = failed.retry else {
                break Err(failed.error);
            };
            let wait = asked.unwrap_or_else(|| jitter(backoff));
            backoff = (backoff * 2).min(MAX_BACKOFF);
            if Instant::now() + wait >= deadline {
                break Err(format!(
                    "{}; no time left for a retry after {wait:?}",
                    failed.error
                ));
            }
            tracing::debug!(
                endpoint = %self.config.endpoint,
                error = %failed.error,
                "serverwatch: OTLP export attempt failed, another in {wait:?}"
            );
            tokio::time::sleep(wait).await;
        };
        match result {
            Ok(accepted) => {
                self.rejections.record(&self.config.endpoint, &accepted);
                self.encoder.taken(encoded);
                self.outage
                    .record(&self.config.endpoint, self.config.interval, Ok(()));
            }
            Err(error) => {
                self.outage
                    .record(&self.config.endpoint, self.config.interval, Err(error))
            }
        }
    }
}

/// Between half of `backoff` and all of it, so that many exporters that
/// failed together do not retry together.
fn jitter(backoff: Duration) -> Duration {
    let random = (uuid::Uuid::new_v4().as_u128() % 1000) as u32;
    backoff / 2 + backoff / 2 * random / 1000
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

/// Tracks the points the collector rejects (`partial_success`), so that a
/// run of rejecting exports is reported once, with the count.
#[derive(Debug, Default)]
struct Rejections {
    /// Points rejected since the run started, and by how many exports.
    since: Option<(i64, u64)>,
}

impl Rejections {
    fn record(&mut self, endpoint: &http::Uri, accepted: &Accepted) {
        match (&accepted.rejected, &mut self.since) {
            (None, None) => {}
            (None, Some((points, exports))) => {
                tracing::info!(
                    %endpoint,
                    rejected = *points,
                    exports = *exports,
                    "serverwatch: OTLP collector accepts every point again"
                );
                self.since = None;
            }
            (Some((points, message)), None) => {
                tracing::warn!(
                    %endpoint,
                    rejected = *points,
                    %message,
                    "serverwatch: OTLP collector rejected points; silent until it accepts them all"
                );
                self.since = Some((*points, 1));
            }
            (Some((points, message)), Some((total, exports))) => {
                *total += points;
                *exports += 1;
                tracing::debug!(%endpoint, rejected = *points, %message, "serverwatch: OTLP collector still rejecting points");
            }
        }
    }
}

/// `service.*` and `telemetry.sdk.*` (what `target_info` shows on
/// `/metrics`), the constant labels, then `OTEL_RESOURCE_ATTRIBUTES` for
/// everything else.
fn resource(sources: &Sources, config: &OtlpConfig) -> Vec<(String, String)> {
    let mut attributes: Vec<(String, String)> = sources
        .resource()
        .into_iter()
        .map(|(attribute, value)| {
            let value = match value {
                Value::Str(s) => s.into_owned(),
                Value::Int(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
            };
            (attribute.otel.to_owned(), value)
        })
        .collect();
    for (key, value) in sources
        .service
        .constant_labels
        .iter()
        .chain(&config.resource_attributes)
    {
        if !attributes.iter().any(|(k, _)| k == key) {
            attributes.push((key.clone(), value.clone()));
        }
    }
    attributes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_are_counted_over_a_run_and_end_with_a_full_acceptance() {
        let endpoint = http::Uri::from_static("http://c:4318/v1/metrics");
        let mut rejections = Rejections::default();
        let partial = |n: i64| Accepted {
            rejected: Some((n, "too old".into())),
        };
        rejections.record(&endpoint, &partial(3));
        rejections.record(&endpoint, &partial(2));
        assert_eq!(rejections.since, Some((5, 2)));
        rejections.record(&endpoint, &Accepted::default());
        assert_eq!(rejections.since, None);
    }

    #[test]
    fn jitter_stays_within_half_the_backoff_and_all_of_it() {
        for _ in 0..100 {
            let wait = jitter(FIRST_BACKOFF);
            assert!(
                FIRST_BACKOFF / 2 <= wait && wait <= FIRST_BACKOFF,
                "{wait:?}"
            );
        }
    }
}
