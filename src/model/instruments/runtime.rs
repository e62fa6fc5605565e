//! The instruments of the tokio runtime: what its stable metrics API gives
//! (tokio 1.54, no `tokio_unstable`). Not in the semantic conventions: named
//! `tokio.runtime.*`, with the worker's index as `tokio.worker`.

use super::{Attribute, Instrument, Kind, MetricUnit};

/// The index of a worker thread, stable for the runtime's life.
pub(crate) const WORKER: Attribute = Attribute {
    prometheus: Some("tokio_worker"),
    otel: "tokio.worker",
};

pub(crate) const WORKERS: Instrument = Instrument {
    otel_name: "tokio.runtime.workers",
    prometheus_name: "tokio_runtime_workers",
    unit: MetricUnit::Count("{worker}"),
    help: "Worker threads of the tokio runtime (1 on a current-thread runtime).",
    kind: Kind::UpDownCounter,
};
pub(crate) const ALIVE_TASKS: Instrument = Instrument {
    otel_name: "tokio.runtime.alive_tasks",
    prometheus_name: "tokio_runtime_alive_tasks",
    unit: MetricUnit::Count("{task}"),
    help: "Tasks spawned on the tokio runtime that have not finished.",
    kind: Kind::UpDownCounter,
};
pub(crate) const GLOBAL_QUEUE_DEPTH: Instrument = Instrument {
    otel_name: "tokio.runtime.global_queue_depth",
    prometheus_name: "tokio_runtime_global_queue_depth",
    unit: MetricUnit::Count("{task}"),
    help: "Tasks waiting in the tokio runtime's global queue (spawned or woken from outside its workers).",
    kind: Kind::UpDownCounter,
};
pub(crate) const WORKER_BUSY_TIME: Instrument = Instrument {
    otel_name: "tokio.runtime.worker.busy_time",
    prometheus_name: "tokio_runtime_worker_busy_time",
    unit: MetricUnit::Seconds,
    help: "Time the worker thread spent running tasks (added when it finishes a batch of them).",
    kind: Kind::Counter,
};
pub(crate) const WORKER_PARKS: Instrument = Instrument {
    otel_name: "tokio.runtime.worker.parks",
    prometheus_name: "tokio_runtime_worker_parks",
    unit: MetricUnit::Count("{park}"),
    help: "Times the worker thread parked, out of work, to wait for events.",
    kind: Kind::Counter,
};
pub(crate) const WORKER_PARK_UNPARKS: Instrument = Instrument {
    otel_name: "tokio.runtime.worker.park_unparks",
    prometheus_name: "tokio_runtime_worker_park_unparks",
    unit: MetricUnit::Count("{transition}"),
    help: "Times the worker thread parked or unparked: odd while it is parked.",
    kind: Kind::Counter,
};

/// Every instrument defined here.
pub(crate) const ALL: &[&Instrument] = &[
    &WORKERS,
    &ALIVE_TASKS,
    &GLOBAL_QUEUE_DEPTH,
    &WORKER_BUSY_TIME,
    &WORKER_PARKS,
    &WORKER_PARK_UNPARKS,
];
