//! What every serverwatch metric is: its OpenTelemetry name, its
//! Prometheus base name, unit, help text and kind, defined once here (the
//! MongoDB integration defines its own the same way, beside its code).
//!
//! OpenTelemetry names come from `opentelemetry-semantic-conventions`. On
//! `/metrics` they are spelled the Prometheus way (dots become underscores,
//! the unit is appended by the encoder, counters get `_total`); the process
//! metrics use the names that existing Prometheus dashboards expect.

pub(crate) mod runtime;

use std::collections::HashMap;
use std::sync::OnceLock;

use opentelemetry_semantic_conventions::{attribute as attr, metric};
use parking_lot::Mutex;
use prometheus_client::registry::Unit;

/// How an instrument aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Monotonic sum.
    Counter,
    /// Sum that goes up and down (a Prometheus gauge, an OTLP non-monotonic sum).
    UpDownCounter,
    /// Sampled value.
    Gauge,
    /// Distribution over fixed buckets.
    Histogram,
    /// A constant 1 carrying its labels (build information).
    Info,
}

/// Unit of an instrument, in both spellings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MetricUnit {
    Seconds,
    Bytes,
    /// A plain count (UCUM annotation such as `{request}` on the OTLP side).
    Count(&'static str),
}

impl MetricUnit {
    /// The Prometheus unit suffix, if any.
    pub(crate) fn prometheus(self) -> Option<&'static Unit> {
        static SECONDS: Unit = Unit::Seconds;
        static BYTES: Unit = Unit::Bytes;
        match self {
            MetricUnit::Seconds => Some(&SECONDS),
            MetricUnit::Bytes => Some(&BYTES),
            MetricUnit::Count(_) => None,
        }
    }

    /// The UCUM unit used over OTLP.
    #[cfg_attr(not(feature = "otlp"), allow(dead_code))]
    pub(crate) fn otel(self) -> &'static str {
        match self {
            MetricUnit::Seconds => "s",
            MetricUnit::Bytes => "By",
            MetricUnit::Count(annotation) => annotation,
        }
    }
}

/// A label (Prometheus) / attribute (OpenTelemetry) key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Attribute {
    /// `None`: not a Prometheus label; the points that differ only in it
    /// are added up into one sample on `/metrics`.
    pub(crate) prometheus: Option<&'static str>,
    #[cfg_attr(not(feature = "otlp"), allow(dead_code))]
    pub(crate) otel: &'static str,
}

impl Attribute {
    /// The attribute of a key known only when the app runs (its own labels),
    /// spelled on `/metrics` as `prometheus` makes it: made once per key in
    /// the process and kept for its life, like a constant, as the exporters
    /// read keys as `&'static`.
    pub(crate) fn interned(otel: &str, prometheus: impl FnOnce(&str) -> String) -> &'static Self {
        static INTERNED: OnceLock<Mutex<HashMap<String, &'static Attribute>>> = OnceLock::new();
        let mut interned = INTERNED.get_or_init(Mutex::default).lock();
        if let Some(attribute) = interned.get(otel) {
            return attribute;
        }
        let attribute: &'static Self = Box::leak(Box::new(Self {
            prometheus: Some(String::leak(prometheus(otel))),
            otel: String::leak(otel.to_owned()),
        }));
        interned.insert(otel.to_owned(), attribute);
        attribute
    }
}

/// Definition of one metric.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Instrument {
    #[cfg_attr(not(feature = "otlp"), allow(dead_code))]
    pub(crate) otel_name: &'static str,
    /// Prometheus name without the unit suffix (the encoder appends it).
    pub(crate) prometheus_name: &'static str,
    pub(crate) unit: MetricUnit,
    pub(crate) help: &'static str,
    pub(crate) kind: Kind,
}

impl Instrument {
    /// The family name on `/metrics`: the base name and the unit suffix.
    pub(crate) fn prometheus_family(&self) -> String {
        match self.unit.prometheus() {
            Some(unit) => format!("{}_{}", self.prometheus_name, unit.as_str()),
            None => self.prometheus_name.to_owned(),
        }
    }
}

pub(crate) const HTTP_REQUEST_METHOD: Attribute = Attribute {
    prometheus: Some("http_request_method"),
    otel: attr::HTTP_REQUEST_METHOD,
};
pub(crate) const HTTP_ROUTE: Attribute = Attribute {
    prometheus: Some("http_route"),
    otel: attr::HTTP_ROUTE,
};
pub(crate) const HTTP_RESPONSE_STATUS_CODE: Attribute = Attribute {
    prometheus: Some("http_response_status_code"),
    otel: attr::HTTP_RESPONSE_STATUS_CODE,
};
pub(crate) const ERROR_TYPE: Attribute = Attribute {
    prometheus: Some("error_type"),
    otel: attr::ERROR_TYPE,
};
/// Marks the series that absorb label sets past the cardinality cap: the
/// attribute the OpenTelemetry SDK uses (not in the conventions).
pub(crate) const OVERFLOW: Attribute = Attribute {
    prometheus: Some("otel_metric_overflow"),
    otel: "otel.metric.overflow",
};
pub(crate) const CPU_MODE: Attribute = Attribute {
    prometheus: None,
    otel: attr::CPU_MODE,
};
pub(crate) const SERVERWATCH_VERSION: Attribute = Attribute {
    prometheus: Some("serverwatch_version"),
    otel: "serverwatch.version",
};
pub(crate) const SERVICE_NAME: Attribute = Attribute {
    prometheus: Some("service_name"),
    otel: attr::SERVICE_NAME,
};
pub(crate) const SERVICE_VERSION: Attribute = Attribute {
    prometheus: Some("service_version"),
    otel: attr::SERVICE_VERSION,
};
pub(crate) const SYSTEM_MEMORY_STATE: Attribute = Attribute {
    prometheus: Some("system_memory_state"),
    otel: attr::SYSTEM_MEMORY_STATE,
};
pub(crate) const SYSTEM_PAGING_STATE: Attribute = Attribute {
    prometheus: Some("system_paging_state"),
    otel: attr::SYSTEM_PAGING_STATE,
};
pub(crate) const SERVICE_INSTANCE_ID: Attribute = Attribute {
    prometheus: Some("service_instance_id"),
    otel: "service.instance.id",
};
pub(crate) const TELEMETRY_SDK_NAME: Attribute = Attribute {
    prometheus: Some("telemetry_sdk_name"),
    otel: "telemetry.sdk.name",
};
pub(crate) const TELEMETRY_SDK_LANGUAGE: Attribute = Attribute {
    prometheus: Some("telemetry_sdk_language"),
    otel: "telemetry.sdk.language",
};
pub(crate) const TELEMETRY_SDK_VERSION: Attribute = Attribute {
    prometheus: Some("telemetry_sdk_version"),
    otel: "telemetry.sdk.version",
};

/// The labels of the series defined here, on `/metrics`.
pub(crate) const LABELS: &[&Attribute] = &[
    &HTTP_REQUEST_METHOD,
    &HTTP_ROUTE,
    &HTTP_RESPONSE_STATUS_CODE,
    &ERROR_TYPE,
    &OVERFLOW,
    &SERVERWATCH_VERSION,
    &SERVICE_NAME,
    &SERVICE_VERSION,
    &SYSTEM_MEMORY_STATE,
    &SYSTEM_PAGING_STATE,
    &SERVICE_INSTANCE_ID,
    &TELEMETRY_SDK_NAME,
    &TELEMETRY_SDK_LANGUAGE,
    &TELEMETRY_SDK_VERSION,
    &runtime::WORKER,
];

/// Semantic-convention bounds for `http.server.request.duration`, in seconds.
pub(crate) const DURATION_BOUNDS_SECONDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Bounds for request and response body sizes, in bytes (powers of four from
/// 64 B to 16 MiB, plus 0 so that empty bodies stand apart).
pub(crate) const BODY_SIZE_BOUNDS_BYTES: [f64; 11] = [
    0.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
];

pub(crate) const HTTP_SERVER_REQUEST_DURATION: Instrument = Instrument {
    otel_name: metric::HTTP_SERVER_REQUEST_DURATION,
    prometheus_name: "http_server_request_duration",
    unit: MetricUnit::Seconds,
    help: "Duration of HTTP server requests, until the response was ready (for a streamed body: until it was sent; for an aborted request: until it ended).",
    kind: Kind::Histogram,
};
pub(crate) const HTTP_SERVER_ACTIVE_REQUESTS: Instrument = Instrument {
    otel_name: metric::HTTP_SERVER_ACTIVE_REQUESTS,
    prometheus_name: "http_server_active_requests",
    unit: MetricUnit::Count("{request}"),
    help: "Number of HTTP server requests in flight.",
    kind: Kind::UpDownCounter,
};
pub(crate) const HTTP_SERVER_REQUEST_BODY_SIZE: Instrument = Instrument {
    otel_name: metric::HTTP_SERVER_REQUEST_BODY_SIZE,
    prometheus_name: "http_server_request_body_size",
    unit: MetricUnit::Bytes,
    help: "Size of HTTP server request bodies.",
    kind: Kind::Histogram,
};
pub(crate) const HTTP_SERVER_RESPONSE_BODY_SIZE: Instrument = Instrument {
    otel_name: metric::HTTP_SERVER_RESPONSE_BODY_SIZE,
    prometheus_name: "http_server_response_body_size",
    unit: MetricUnit::Bytes,
    help: "Size of HTTP server response bodies.",
    kind: Kind::Histogram,
};

pub(crate) const PROCESS_RESIDENT_MEMORY: Instrument = Instrument {
    otel_name: metric::PROCESS_MEMORY_USAGE,
    prometheus_name: "process_resident_memory",
    unit: MetricUnit::Bytes,
    help: "Resident set size of this process.",
    kind: Kind::UpDownCounter,
};
pub(crate) const PROCESS_VIRTUAL_MEMORY: Instrument = Instrument {
    otel_name: metric::PROCESS_MEMORY_VIRTUAL,
    prometheus_name: "process_virtual_memory",
    unit: MetricUnit::Bytes,
    help: "Virtual memory size of this process.",
    kind: Kind::UpDownCounter,
};
pub(crate) const PROCESS_CPU_TIME: Instrument = Instrument {
    otel_name: metric::PROCESS_CPU_TIME,
    prometheus_name: "process_cpu",
    unit: MetricUnit::Seconds,
    help: "Total user and system CPU time spent by this process.",
    kind: Kind::Counter,
};
pub(crate) const PROCESS_OPEN_FDS: Instrument = Instrument {
    otel_name: metric::PROCESS_UNIX_FILE_DESCRIPTOR_COUNT,
    prometheus_name: "process_open_fds",
    unit: MetricUnit::Count("{file_descriptor}"),
    help: "Number of open file descriptors.",
    kind: Kind::UpDownCounter,
};
/// Not in the conventions: named after `process.unix.file_descriptor.count`.
pub(crate) const PROCESS_MAX_FDS: Instrument = Instrument {
    otel_name: "process.unix.file_descriptor.limit",
    prometheus_name: "process_max_fds",
    unit: MetricUnit::Count("{file_descriptor}"),
    help: "Maximum number of open file descriptors.",
    kind: Kind::UpDownCounter,
};
/// Not in the conventions (which have `process.creation.time` as a
/// resource attribute): the gauge Prometheus dashboards expect.
pub(crate) const PROCESS_START_TIME: Instrument = Instrument {
    otel_name: "process.start_time",
    prometheus_name: "process_start_time",
    unit: MetricUnit::Seconds,
    help: "Start time of this process since the Unix epoch.",
    kind: Kind::Gauge,
};
pub(crate) const PROCESS_UPTIME: Instrument = Instrument {
    otel_name: metric::PROCESS_UPTIME,
    prometheus_name: "process_uptime",
    unit: MetricUnit::Seconds,
    help: "Time since serverwatch started watching this process.",
    kind: Kind::Gauge,
};
pub(crate) const PROCESS_THREADS: Instrument = Instrument {
    otel_name: metric::PROCESS_THREAD_COUNT,
    prometheus_name: "process_threads",
    unit: MetricUnit::Count("{thread}"),
    help: "Number of OS threads of this process.",
    kind: Kind::UpDownCounter,
};
pub(crate) const SYSTEM_MEMORY_USAGE: Instrument = Instrument {
    otel_name: metric::SYSTEM_MEMORY_USAGE,
    prometheus_name: "system_memory_usage",
    unit: MetricUnit::Bytes,
    help: "System memory in use, by state.",
    kind: Kind::UpDownCounter,
};
pub(crate) const SYSTEM_MEMORY_LIMIT: Instrument = Instrument {
    otel_name: metric::SYSTEM_MEMORY_LIMIT,
    prometheus_name: "system_memory_limit",
    unit: MetricUnit::Bytes,
    help: "Total system memory.",
    kind: Kind::UpDownCounter,
};
pub(crate) const SYSTEM_PAGING_USAGE: Instrument = Instrument {
    otel_name: metric::SYSTEM_PAGING_USAGE,
    prometheus_name: "system_paging_usage",
    unit: MetricUnit::Bytes,
    help: "Swap space, by state (used and free add up to the total).",
    kind: Kind::UpDownCounter,
};
/// Not in the conventions: what a guessing attack on the token shows as.
pub(crate) const UNAUTHORIZED_REQUESTS: Instrument = Instrument {
    otel_name: "serverwatch.unauthorized_requests",
    prometheus_name: "serverwatch_unauthorized_requests",
    unit: MetricUnit::Count("{request}"),
    help: "Requests to the observability routes refused for a missing or wrong bearer token.",
    kind: Kind::Counter,
};
pub(crate) const BUILD_INFO: Instrument = Instrument {
    otel_name: "serverwatch.build.info",
    prometheus_name: "serverwatch_build",
    unit: MetricUnit::Count("1"),
    help: "Versions of serverwatch and of the watched service.",
    kind: Kind::Info,
};

/// `target_info` on `/metrics`: the OTLP resource's attributes as labels,
/// as the OpenTelemetry-Prometheus compatibility specification writes the
/// resource. Not an instrument: OTLP sends the resource itself.
pub(crate) static TARGET_INFO: Instrument = Instrument {
    otel_name: "target",
    prometheus_name: "target",
    unit: MetricUnit::Count("1"),
    help: "Target metadata: the attributes of the OpenTelemetry resource.",
    kind: Kind::Info,
};

/// Every instrument defined here.
pub(crate) const ALL: &[&Instrument] = &[
    &HTTP_SERVER_REQUEST_DURATION,
    &HTTP_SERVER_ACTIVE_REQUESTS,
    &HTTP_SERVER_REQUEST_BODY_SIZE,
    &HTTP_SERVER_RESPONSE_BODY_SIZE,
    &PROCESS_RESIDENT_MEMORY,
    &PROCESS_VIRTUAL_MEMORY,
    &PROCESS_CPU_TIME,
    &PROCESS_OPEN_FDS,
    &PROCESS_MAX_FDS,
    &PROCESS_START_TIME,
    &PROCESS_UPTIME,
    &PROCESS_THREADS,
    &SYSTEM_MEMORY_USAGE,
    &SYSTEM_MEMORY_LIMIT,
    &SYSTEM_PAGING_USAGE,
    &UNAUTHORIZED_REQUESTS,
    &BUILD_INFO,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_labels_are_the_otel_names_with_underscores() {
        for a in [
            HTTP_REQUEST_METHOD,
            HTTP_ROUTE,
            HTTP_RESPONSE_STATUS_CODE,
            ERROR_TYPE,
            OVERFLOW,
            SERVICE_NAME,
            SERVICE_VERSION,
            SYSTEM_MEMORY_STATE,
            SYSTEM_PAGING_STATE,
        ] {
            assert_eq!(a.prometheus, Some(a.otel.replace('.', "_")).as_deref());
        }
    }
}
