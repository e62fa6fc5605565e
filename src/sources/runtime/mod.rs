//! The tokio runtime that serves the app, read through tokio's stable
//! metrics API when an exporter asks (a scrape, an export, `/health`, the
//! dashboard's sampler): never on the request path, and with nothing of
//! serverwatch's running inside the runtime. Every figure is one of tokio's
//! own counters, which it keeps whether anyone reads them or not.
//!
//! The runtime is the one `build()` runs in, or the one given to the
//! builder. On a current-thread runtime there is one worker: the thread
//! that drives it (`block_on`). Without any, nothing is read and `/health`
//! says so.

use std::sync::Arc;

use serde::Serialize;
use tokio::runtime::{Handle, RuntimeFlavor};

use crate::error::BuildError;
use crate::model::family::{Family, Value};
use crate::model::instruments::Instrument;
use crate::model::instruments::runtime as rt;
use crate::part::{Assembly, Part, part_boilerplate};
use crate::source::{BoxFuture, Section, Source, Wants};

/// The watched runtime.
#[derive(Debug, Clone)]
pub(crate) struct RuntimeWatch {
    handle: Handle,
}

/// One worker thread's counters.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct WorkerReading {
    /// Seconds spent running tasks.
    pub(crate) busy_seconds: f64,
    pub(crate) parks: u64,
    pub(crate) park_unparks: u64,
    /// Whether it is parked now (an odd park/unpark count).
    pub(crate) parked: bool,
}

/// One reading of the runtime: the `runtime` section of `/health`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RuntimeReading {
    /// `"multi_thread"` or `"current_thread"`.
    pub(crate) flavor: &'static str,
    pub(crate) workers: usize,
    pub(crate) alive_tasks: usize,
    pub(crate) global_queue_depth: usize,
    /// The workers' busy time, added up.
    pub(crate) busy_seconds: f64,
    /// By worker index.
    #[serde(rename = "worker_threads")]
    pub(crate) per_worker: Vec<WorkerReading>,
}

impl RuntimeWatch {
    /// Watches the runtime `build()` runs in, if any.
    pub(crate) fn current() -> Option<Self> {
        Handle::try_current().ok().map(Self::of)
    }

    /// Watches the runtime of `handle`.
    pub(crate) fn of(handle: Handle) -> Self {
        Self { handle }
    }

    /// Reads every figure now: a few relaxed atomic loads per worker.
    pub(crate) fn read(&self) -> RuntimeReading {
        let metrics = self.handle.metrics();
        let per_worker: Vec<WorkerReading> = (0..metrics.num_workers())
            .map(|w| {
                let park_unparks = metrics.worker_park_unpark_count(w);
                WorkerReading {
                    busy_seconds: metrics.worker_total_busy_duration(w).as_secs_f64(),
                    parks: metrics.worker_park_count(w),
                    park_unparks,
                    parked: park_unparks % 2 == 1,
                }
            })
            .collect();
        RuntimeReading {
            flavor: match self.handle.runtime_flavor() {
                RuntimeFlavor::CurrentThread => "current_thread",
                RuntimeFlavor::MultiThread => "multi_thread",
                _ => "other",
            },
            workers: per_worker.len(),
            alive_tasks: metrics.num_alive_tasks(),
            global_queue_depth: metrics.global_queue_depth(),
            busy_seconds: per_worker.iter().map(|w| w.busy_seconds).sum(),
            per_worker,
        }
    }
}

/// Which tokio runtime is watched.
#[derive(Debug, Clone, Default)]
pub(crate) enum RuntimeChoice {
    /// The one `build()` runs in, if any.
    #[default]
    Current,
    Given(Handle),
    Off,
}

impl Part for RuntimeChoice {
    part_boilerplate!();

    fn instruments(&self) -> &'static [&'static Instrument] {
        rt::ALL
    }

    fn build(self: Box<Self>, assembly: &mut Assembly) -> Result<(), BuildError> {
        let watch = match *self {
            RuntimeChoice::Current => RuntimeWatch::current(),
            RuntimeChoice::Given(handle) => Some(RuntimeWatch::of(handle)),
            RuntimeChoice::Off => None,
        };
        if let Some(watch) = watch {
            assembly.source(Arc::new(watch));
        }
        Ok(())
    }
}

impl Source for RuntimeWatch {
    fn families(&self, wants: Wants<'_>, out: &mut Vec<Family>) {
        let families = self.read().families();
        out.extend(families.into_iter().filter(|f| wants(f.instrument)));
    }

    fn health(&self) -> BoxFuture<'_, Option<Section>> {
        Box::pin(async { Some(Section::report("runtime", self.read())) })
    }
}

impl RuntimeReading {
    fn families(&self) -> Vec<Family> {
        let one = |instrument, n: usize| Family::new(instrument).number(Vec::new(), n as f64);
        let mut busy = Family::new(&rt::WORKER_BUSY_TIME);
        let mut parks = Family::new(&rt::WORKER_PARKS);
        let mut park_unparks = Family::new(&rt::WORKER_PARK_UNPARKS);
        for (index, w) in self.per_worker.iter().enumerate() {
            let worker = || vec![(&rt::WORKER, Value::Int(index as i64))];
            busy = busy.number(worker(), w.busy_seconds);
            parks = parks.number(worker(), w.parks as f64);
            park_unparks = park_unparks.number(worker(), w.park_unparks as f64);
        }
        vec![
            one(&rt::WORKERS, self.workers),
            one(&rt::ALIVE_TASKS, self.alive_tasks),
            one(&rt::GLOBAL_QUEUE_DEPTH, self.global_queue_depth),
            busy,
            parks,
            park_unparks,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_current_thread_runtime_has_one_worker_that_gets_busy() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let watch = RuntimeWatch::of(runtime.handle().clone());
        let before = watch.read();
        assert_eq!((before.flavor, before.workers), ("current_thread", 1));
        // Spawned tasks: the scheduler counts the batches of tasks it runs.
        runtime.block_on(async {
            for _ in 0..20 {
                tokio::spawn(async {
                    let spin = std::time::Instant::now();
                    while spin.elapsed() < Duration::from_millis(1) {
                        std::hint::spin_loop();
                    }
                })
                .await
                .unwrap();
            }
        });
        let after = watch.read();
        assert!(after.busy_seconds > before.busy_seconds, "{after:?}");
        let families = after.families();
        assert_eq!(families.len(), 6);
        assert_eq!(families[3].points.len(), 1, "one busy time per worker");
    }
}
