//! The MongoDB instruments: the semantic conventions for database clients,
//! and the health probe's two gauges.

use opentelemetry_semantic_conventions::{attribute as attr, metric};

use crate::model::instruments::{Attribute, Instrument, Kind, MetricUnit};

pub(crate) const DB_SYSTEM_NAME: Attribute = Attribute {
    prometheus: Some("db_system_name"),
    otel: attr::DB_SYSTEM_NAME,
};
pub(crate) const DB_OPERATION_NAME: Attribute = Attribute {
    prometheus: Some("db_operation_name"),
    otel: attr::DB_OPERATION_NAME,
};
pub(crate) const DB_NAMESPACE: Attribute = Attribute {
    prometheus: Some("db_namespace"),
    otel: attr::DB_NAMESPACE,
};
pub(crate) const DB_COLLECTION_NAME: Attribute = Attribute {
    prometheus: Some("db_collection_name"),
    otel: attr::DB_COLLECTION_NAME,
};
pub(crate) const DB_CONNECTION_STATE: Attribute = Attribute {
    prometheus: Some("db_client_connection_state"),
    otel: attr::DB_CLIENT_CONNECTION_STATE,
};
pub(crate) const DB_CONNECTION_POOL_NAME: Attribute = Attribute {
    prometheus: Some("db_client_connection_pool_name"),
    otel: attr::DB_CLIENT_CONNECTION_POOL_NAME,
};
/// The labels of MongoDB's series.
pub(crate) const LABELS: &[&Attribute] = &[
    &DB_SYSTEM_NAME,
    &DB_OPERATION_NAME,
    &DB_NAMESPACE,
    &DB_COLLECTION_NAME,
    &DB_CONNECTION_STATE,
    &DB_CONNECTION_POOL_NAME,
];

/// Semantic-convention bounds for `db.client.operation.duration`, in seconds.
pub(crate) const DB_DURATION_BOUNDS_SECONDS: [f64; 9] =
    [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0];

pub(crate) const DB_CLIENT_OPERATION_DURATION: Instrument = Instrument {
    otel_name: metric::DB_CLIENT_OPERATION_DURATION,
    prometheus_name: "db_client_operation_duration",
    unit: MetricUnit::Seconds,
    help: "Duration of database client operations (MongoDB commands).",
    kind: Kind::Histogram,
};
pub(crate) const DB_CLIENT_CONNECTION_COUNT: Instrument = Instrument {
    otel_name: metric::DB_CLIENT_CONNECTION_COUNT,
    prometheus_name: "db_client_connection_count",
    unit: MetricUnit::Count("{connection}"),
    help: "Connections of the driver's pool, by state (idle or used).",
    kind: Kind::UpDownCounter,
};
pub(crate) const DB_CLIENT_CONNECTION_MAX: Instrument = Instrument {
    otel_name: metric::DB_CLIENT_CONNECTION_MAX,
    prometheus_name: "db_client_connection_max",
    unit: MetricUnit::Count("{connection}"),
    help: "Largest number of connections the pool allows.",
    kind: Kind::UpDownCounter,
};
pub(crate) const DB_CLIENT_CONNECTION_PENDING_REQUESTS: Instrument = Instrument {
    otel_name: metric::DB_CLIENT_CONNECTION_PENDING_REQUESTS,
    prometheus_name: "db_client_connection_pending_requests",
    unit: MetricUnit::Count("{request}"),
    help: "Requests waiting for a connection from the pool.",
    kind: Kind::UpDownCounter,
};
pub(crate) const DB_CLIENT_CONNECTION_TIMEOUTS: Instrument = Instrument {
    otel_name: metric::DB_CLIENT_CONNECTION_TIMEOUTS,
    prometheus_name: "db_client_connection_timeouts",
    unit: MetricUnit::Count("{timeout}"),
    help: "Connection checkouts that timed out.",
    kind: Kind::Counter,
};
pub(crate) const DB_CLIENT_CONNECTION_CREATE_TIME: Instrument = Instrument {
    otel_name: metric::DB_CLIENT_CONNECTION_CREATE_TIME,
    prometheus_name: "db_client_connection_create_time",
    unit: MetricUnit::Seconds,
    help: "Time it took to create a new connection (handshake and authentication included).",
    kind: Kind::Histogram,
};
pub(crate) const DB_CLIENT_CONNECTION_WAIT_TIME: Instrument = Instrument {
    otel_name: metric::DB_CLIENT_CONNECTION_WAIT_TIME,
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

/// Every instrument defined here.
pub(crate) const ALL: &[&Instrument] = &[
    &DB_CLIENT_OPERATION_DURATION,
    &DB_CLIENT_CONNECTION_COUNT,
    &DB_CLIENT_CONNECTION_MAX,
    &DB_CLIENT_CONNECTION_PENDING_REQUESTS,
    &DB_CLIENT_CONNECTION_TIMEOUTS,
    &DB_CLIENT_CONNECTION_CREATE_TIME,
    &DB_CLIENT_CONNECTION_WAIT_TIME,
    &DATABASE_UP,
    &DATABASE_PING_DURATION,
];
