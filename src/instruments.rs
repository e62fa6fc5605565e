//! The one place where every serverwatch metric is defined: its OpenTelemetry
//! name, its Prometheus base name, unit, help text and labels.
//!
//! Names follow the OpenTelemetry semantic conventions v1.44. On `/metrics`
//! they are spelled the Prometheus way (dots become underscores, the unit is
//! appended by the encoder, counters get `_total`); the process metrics use the
//! names that existing Prometheus dashboards expect.

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

pub(crate) const HTTP_REQUEST_METHOD: Attribute = Attribute {
    prometheus: Some("http_request_method"),
    otel: "http.request.method",
};
pub(crate) const HTTP_ROUTE: Attribute = Attribute {
    prometheus: Some("http_route"),
    otel: "http.route",
};
pub(crate) const HTTP_RESPONSE_STATUS_CODE: Attribute = Attribute {
    prometheus: Some("http_response_status_code"),
    otel: "http.response.status_code",
};
pub(crate) const ERROR_TYPE: Attribute = Attribute {
    prometheus: Some("error_type"),
    otel: "error.type",
};
/// Marks the one series that absorbs label sets past the cardinality cap
/// (the same attribute the OpenTelemetry SDK uses).
pub(crate) const OVERFLOW: Attribute = Attribute {
    prometheus: Some("otel_metric_overflow"),
    otel: "otel.metric.overflow",
};
pub(crate) const CPU_MODE: Attribute = Attribute {
    prometheus: None,
    otel: "cpu.mode",
};
pub(crate) const SERVERWATCH_VERSION: Attribute = Attribute {
    prometheus: Some("serverwatch_version"),
    otel: "serverwatch.version",
};
pub(crate) const SERVICE_NAME: Attribute = Attribute {
    prometheus: Some("service_name"),
    otel: "service.name",
};
pub(crate) const SERVICE_VERSION: Attribute = Attribute {
    prometheus: Some("service_version"),
    otel: "service.version",
};
pub(crate) const SYSTEM_MEMORY_STATE: Attribute = Attribute {
    prometheus: Some("system_memory_state"),
    otel: "system.memory.state",
};
pub(crate) const SYSTEM_PAGING_STATE: Attribute = Attribute {
    prometheus: Some("system_paging_state"),
    otel: "system.paging.state",
};

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
    otel_name: "http.server.request.duration",
    prometheus_name: "http_server_request_duration",
    unit: MetricUnit::Seconds,
    help: "Duration of HTTP server requests, until the response was ready (for a streamed body: until it was sent).",
    kind: Kind::Histogram,
};
pub(crate) const HTTP_SERVER_ACTIVE_REQUESTS: Instrument = Instrument {
    otel_name: "http.server.active_requests",
    prometheus_name: "http_server_active_requests",
    unit: MetricUnit::Count("{request}"),
    help: "Number of HTTP server requests in flight.",
    kind: Kind::UpDownCounter,
};
pub(crate) const HTTP_SERVER_REQUEST_BODY_SIZE: Instrument = Instrument {
    otel_name: "http.server.request.body.size",
    prometheus_name: "http_server_request_body_size",
    unit: MetricUnit::Bytes,
    help: "Size of HTTP server request bodies.",
    kind: Kind::Histogram,
};
pub(crate) const HTTP_SERVER_RESPONSE_BODY_SIZE: Instrument = Instrument {
    otel_name: "http.server.response.body.size",
    prometheus_name: "http_server_response_body_size",
    unit: MetricUnit::Bytes,
    help: "Size of HTTP server response bodies.",
    kind: Kind::Histogram,
};

pub(crate) const PROCESS_RESIDENT_MEMORY: Instrument = Instrument {
    otel_name: "process.memory.usage",
    prometheus_name: "process_resident_memory",
    unit: MetricUnit::Bytes,
    help: "Resident set size of this process.",
    kind: Kind::UpDownCounter,
};
pub(crate) const PROCESS_VIRTUAL_MEMORY: Instrument = Instrument {
    otel_name: "process.memory.virtual",
    prometheus_name: "process_virtual_memory",
    unit: MetricUnit::Bytes,
    help: "Virtual memory size of this process.",
    kind: Kind::UpDownCounter,
};
pub(crate) const PROCESS_CPU_TIME: Instrument = Instrument {
    otel_name: "process.cpu.time",
    prometheus_name: "process_cpu",
    unit: MetricUnit::Seconds,
    help: "Total user and system CPU time spent by this process.",
    kind: Kind::Counter,
};
pub(crate) const PROCESS_OPEN_FDS: Instrument = Instrument {
    otel_name: "process.unix.file_descriptor.count",
    prometheus_name: "process_open_fds",
    unit: MetricUnit::Count("{file_descriptor}"),
    help: "Number of open file descriptors.",
    kind: Kind::UpDownCounter,
};
pub(crate) const PROCESS_MAX_FDS: Instrument = Instrument {
    otel_name: "process.unix.file_descriptor.limit",
    prometheus_name: "process_max_fds",
    unit: MetricUnit::Count("{file_descriptor}"),
    help: "Maximum number of open file descriptors.",
    kind: Kind::UpDownCounter,
};
pub(crate) const PROCESS_START_TIME: Instrument = Instrument {
    otel_name: "process.start_time",
    prometheus_name: "process_start_time",
    unit: MetricUnit::Seconds,
    help: "Start time of this process since the Unix epoch.",
    kind: Kind::Gauge,
};
pub(crate) const PROCESS_UPTIME: Instrument = Instrument {
    otel_name: "process.uptime",
    prometheus_name: "process_uptime",
    unit: MetricUnit::Seconds,
    help: "Time since serverwatch started watching this process.",
    kind: Kind::Gauge,
};
pub(crate) const PROCESS_THREADS: Instrument = Instrument {
    otel_name: "process.thread.count",
    prometheus_name: "process_threads",
    unit: MetricUnit::Count("{thread}"),
    help: "Number of OS threads of this process.",
    kind: Kind::UpDownCounter,
};
pub(crate) const SYSTEM_MEMORY_USAGE: Instrument = Instrument {
    otel_name: "system.memory.usage",
    prometheus_name: "system_memory_usage",
    unit: MetricUnit::Bytes,
    help: "System memory in use, by state.",
    kind: Kind::UpDownCounter,
};
pub(crate) const SYSTEM_MEMORY_LIMIT: Instrument = Instrument {
    otel_name: "system.memory.limit",
    prometheus_name: "system_memory_limit",
    unit: MetricUnit::Bytes,
    help: "Total system memory.",
    kind: Kind::UpDownCounter,
};
pub(crate) const SYSTEM_PAGING_USAGE: Instrument = Instrument {
    otel_name: "system.paging.usage",
    prometheus_name: "system_paging_usage",
    unit: MetricUnit::Bytes,
    help: "Swap space, by state (used and free add up to the total).",
    kind: Kind::UpDownCounter,
};
pub(crate) const BUILD_INFO: Instrument = Instrument {
    otel_name: "serverwatch.build.info",
    prometheus_name: "serverwatch_build",
    unit: MetricUnit::Count("1"),
    help: "Versions of serverwatch and of the watched service.",
    kind: Kind::Info,
};

/// The MongoDB instruments (semantic conventions for database clients).
#[cfg(feature = "mongodb")]
pub(crate) mod database {
    use super::{Attribute, Instrument, Kind, MetricUnit};

    pub(crate) const DB_SYSTEM_NAME: Attribute = Attribute {
        prometheus: Some("db_system_name"),
        otel: "db.system.name",
    };
    pub(crate) const DB_OPERATION_NAME: Attribute = Attribute {
        prometheus: Some("db_operation_name"),
        otel: "db.operation.name",
    };
    pub(crate) const DB_NAMESPACE: Attribute = Attribute {
        prometheus: Some("db_namespace"),
        otel: "db.namespace",
    };
    pub(crate) const DB_COLLECTION_NAME: Attribute = Attribute {
        prometheus: Some("db_collection_name"),
        otel: "db.collection.name",
    };
    pub(crate) const DB_CONNECTION_STATE: Attribute = Attribute {
        prometheus: Some("db_client_connection_state"),
        otel: "db.client.connection.state",
    };
    pub(crate) const DB_CONNECTION_POOL_NAME: Attribute = Attribute {
        prometheus: Some("db_client_connection_pool_name"),
        otel: "db.client.connection.pool.name",
    };

    /// Semantic-convention bounds for `db.client.operation.duration`, in seconds.
    pub(crate) const DB_DURATION_BOUNDS_SECONDS: [f64; 9] =
        [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0];

    pub(crate) const DB_CLIENT_OPERATION_DURATION: Instrument = Instrument {
        otel_name: "db.client.operation.duration",
        prometheus_name: "db_client_operation_duration",
        unit: MetricUnit::Seconds,
        help: "Duration of database client operations (MongoDB commands).",
        kind: Kind::Histogram,
    };
    pub(crate) const DB_CLIENT_CONNECTION_COUNT: Instrument = Instrument {
        otel_name: "db.client.connection.count",
        prometheus_name: "db_client_connection_count",
        unit: MetricUnit::Count("{connection}"),
        help: "Connections of the driver's pool, by state (idle or used).",
        kind: Kind::UpDownCounter,
    };
    pub(crate) const DB_CLIENT_CONNECTION_MAX: Instrument = Instrument {
        otel_name: "db.client.connection.max",
        prometheus_name: "db_client_connection_max",
        unit: MetricUnit::Count("{connection}"),
        help: "Largest number of connections the pool allows.",
        kind: Kind::UpDownCounter,
    };
    pub(crate) const DB_CLIENT_CONNECTION_PENDING_REQUESTS: Instrument = Instrument {
        otel_name: "db.client.connection.pending_requests",
        prometheus_name: "db_client_connection_pending_requests",
        unit: MetricUnit::Count("{request}"),
        help: "Requests waiting for a connection from the pool.",
        kind: Kind::UpDownCounter,
    };
    pub(crate) const DB_CLIENT_CONNECTION_TIMEOUTS: Instrument = Instrument {
        otel_name: "db.client.connection.timeouts",
        prometheus_name: "db_client_connection_timeouts",
        unit: MetricUnit::Count("{timeout}"),
        help: "Connection checkouts that timed out.",
        kind: Kind::Counter,
    };
    pub(crate) const DB_CLIENT_CONNECTION_CREATE_TIME: Instrument = Instrument {
        otel_name: "db.client.connection.create_time",
        prometheus_name: "db_client_connection_create_time",
        unit: MetricUnit::Seconds,
        help: "Time it took to create a new connection (handshake and authentication included).",
        kind: Kind::Histogram,
    };
    pub(crate) const DB_CLIENT_CONNECTION_WAIT_TIME: Instrument = Instrument {
        otel_name: "db.client.connection.wait_time",
        prometheus_name: "db_client_connection_wait_time",
        unit: MetricUnit::Seconds,
        help: "Time it took to obtain a connection from the pool.",
        kind: Kind::Histogram,
    };
    pub(crate) const DATABASE_UP: Instrument = Instrument {
        otel_name: "serverwatch.database.up",
        prometheus_name: "serverwatch_database_up",
        unit: MetricUnit::Count("1"),
        help: "1 when the last health probe (a ping) of the database succeeded, else 0.",
        kind: Kind::Gauge,
    };
    pub(crate) const DATABASE_PING_DURATION: Instrument = Instrument {
        otel_name: "serverwatch.database.ping.duration",
        prometheus_name: "serverwatch_database_ping_duration",
        unit: MetricUnit::Seconds,
        help: "Duration of the last health probe (a ping) of the database.",
        kind: Kind::Gauge,
    };
}
