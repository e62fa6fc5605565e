//! The instruments of the app's health checks: one gauge of the last result
//! and one of its duration, per check.

use crate::model::instruments::{Attribute, Instrument, Kind, MetricUnit};

/// The check's name, as given to the builder.
pub(crate) const CHECK: Attribute = Attribute {
    prometheus: Some("check"),
    otel: "check",
};
/// The labels of the checks' series.
pub(crate) const LABELS: &[&Attribute] = &[&CHECK];

pub(crate) const HEALTH_CHECK_UP: Instrument = Instrument {
    otel_name: "serverwatch.health_check.up",
    prometheus_name: "serverwatch_health_check_up",
    unit: MetricUnit::Count("1"),
    help: "1 when the last run of the health check succeeded within its timeout, else 0.",
    kind: Kind::Gauge,
};
pub(crate) const HEALTH_CHECK_DURATION: Instrument = Instrument {
    otel_name: "serverwatch.health_check.duration",
    prometheus_name: "serverwatch_health_check_duration",
    unit: MetricUnit::Seconds,
    help: "Duration of the last run of the health check (at most its timeout).",
    kind: Kind::Gauge,
};

/// Every instrument defined here.
pub(crate) const ALL: &[&Instrument] = &[&HEALTH_CHECK_UP, &HEALTH_CHECK_DURATION];
