//! The naming and unit rules of the metrics recorded through the `metrics`
//! facade, the same as serverwatch's own: the name as given over OTLP, the
//! Prometheus spelling on `/metrics` (underscores, the unit's suffix,
//! `_total` on counters, both added by the encoder), durations in seconds
//! and sizes in bytes whatever unit they were recorded in.
//!
//! The exporters read instruments and attribute keys as `&'static` (those of
//! serverwatch's own are constants), so the facade's are interned: made
//! once per distinct definition in the process and kept for its life, like
//! a constant. At most `max_series` names per store reach this point.

use std::collections::HashMap;
use std::sync::OnceLock;

use metrics::Unit;
use parking_lot::Mutex;

use crate::model::instruments::{
    Attribute, BODY_SIZE_BOUNDS_BYTES, DURATION_BOUNDS_SECONDS, Instrument, Kind, MetricUnit,
};

/// Classic bounds of a facade histogram that is neither a duration nor a
/// size: 1-2-5 steps from 1 to 10 000.
pub(crate) const GENERIC_BOUNDS: [f64; 13] = [
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0,
];

/// How the values of one name are exported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Conversion {
    pub(crate) unit: MetricUnit,
    /// Exported unit per recorded unit (1e-3 for milliseconds to seconds).
    pub(crate) to_exported: f64,
    /// Exported unit per integer base unit a histogram records: 1 ns for
    /// seconds, 1 byte, else a millionth.
    pub(crate) resolution: f64,
    /// The default classic bounds, in the exported unit.
    pub(crate) bounds: &'static [f64],
}

impl Conversion {
    /// The conversion of a name described with `unit` (or none: then a
    /// `_seconds` or `_bytes` suffix of the name decides).
    pub(crate) fn of(name: &str, unit: Option<Unit>) -> Self {
        let seconds = |to_exported| Self {
            unit: MetricUnit::Seconds,
            to_exported,
            resolution: 1e-9,
            bounds: &DURATION_BOUNDS_SECONDS,
        };
        let bytes = |to_exported| Self {
            unit: MetricUnit::Bytes,
            to_exported,
            resolution: 1.0,
            bounds: &BODY_SIZE_BOUNDS_BYTES,
        };
        let count = |annotation| Self {
            unit: MetricUnit::Count(annotation),
            to_exported: 1.0,
            resolution: 1e-6,
            bounds: &GENERIC_BOUNDS,
        };
        match unit {
            Some(Unit::Seconds) => seconds(1.0),
            Some(Unit::Milliseconds) => seconds(1e-3),
            Some(Unit::Microseconds) => seconds(1e-6),
            Some(Unit::Nanoseconds) => seconds(1e-9),
            Some(Unit::Bytes) => bytes(1.0),
            Some(Unit::Kibibytes) => bytes(1024.0),
            Some(Unit::Mebibytes) => bytes(1024.0 * 1024.0),
            Some(Unit::Gibibytes) => bytes(1024.0 * 1024.0 * 1024.0),
            Some(Unit::Tebibytes) => bytes(1024.0 * 1024.0 * 1024.0 * 1024.0),
            Some(Unit::Count) => count("{count}"),
            Some(Unit::Percent) => count("%"),
            Some(Unit::CountPerSecond) => count("{count}/s"),
            Some(Unit::BitsPerSecond) => count("bit/s"),
            Some(Unit::KilobitsPerSecond) => count("kbit/s"),
            Some(Unit::MegabitsPerSecond) => count("Mbit/s"),
            Some(Unit::GigabitsPerSecond) => count("Gbit/s"),
            Some(Unit::TerabitsPerSecond) => count("Tbit/s"),
            None if name.ends_with("_seconds") => seconds(1.0),
            None if name.ends_with("_bytes") => bytes(1.0),
            None => count(""),
        }
    }
}

/// The Prometheus base name of `name` (the encoder appends the unit's
/// suffix and a counter's `_total`): every character outside
/// `[A-Za-z0-9_]` an underscore, a leading digit guarded, and the suffixes
/// the encoder will add taken off.
pub(crate) fn prometheus_base(name: &str, kind: Kind, unit: MetricUnit) -> String {
    let mut base = sanitized(name);
    if kind == Kind::Counter {
        strip(&mut base, "_total");
    }
    if let Some(unit) = unit.prometheus() {
        strip(&mut base, &format!("_{}", unit.as_str()));
    }
    base
}

/// `text` as a Prometheus name can hold it: every character outside
/// `[A-Za-z0-9_]` an underscore, and an underscore before a leading digit.
fn sanitized(text: &str) -> String {
    let mut name: String = text
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name
}

fn strip(base: &mut String, suffix: &str) {
    if base.len() > suffix.len() && base.ends_with(suffix) {
        base.truncate(base.len() - suffix.len());
    }
}

/// The Prometheus label of the key `key`: underscores for what a label
/// name cannot hold, and `label_` before the names that the formats or
/// serverwatch reserve (`le`, `quantile`, `otel_metric_overflow`, `__…`).
fn prometheus_label(key: &str) -> String {
    let mut label = sanitized(key);
    let reserved = [
        "le",
        "quantile",
        crate::model::instruments::OVERFLOW.prometheus.unwrap_or(""),
    ];
    if reserved.contains(&label.as_str()) || label.starts_with("__") {
        label.insert_str(0, "label_");
    }
    label
}

/// What an interned instrument is made of.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Definition {
    otel_name: String,
    prometheus_name: String,
    unit: &'static str,
    help: String,
    kind: &'static str,
}

static INSTRUMENTS: OnceLock<Mutex<HashMap<Definition, &'static Instrument>>> = OnceLock::new();

/// The instrument of the facade name `name`, made once per definition.
pub(crate) fn instrument(
    name: &str,
    prometheus_name: String,
    kind: Kind,
    unit: MetricUnit,
    help: String,
) -> &'static Instrument {
    let kind_name = match kind {
        Kind::Counter => "counter",
        Kind::Gauge => "gauge",
        _ => "histogram",
    };
    let definition = Definition {
        otel_name: name.to_owned(),
        prometheus_name,
        unit: unit.otel(),
        help,
        kind: kind_name,
    };
    let mut interned = INSTRUMENTS.get_or_init(Mutex::default).lock();
    if let Some(instrument) = interned.get(&definition) {
        return instrument;
    }
    let instrument: &'static Instrument = Box::leak(Box::new(Instrument {
        otel_name: String::leak(definition.otel_name.clone()),
        prometheus_name: String::leak(definition.prometheus_name.clone()),
        unit,
        help: String::leak(definition.help.clone()),
        kind,
    }));
    interned.insert(definition, instrument);
    instrument
}

/// The attribute of the label key `key`, made once per key.
pub(crate) fn attribute(key: &str) -> &'static Attribute {
    Attribute::interned(key, prometheus_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_spelled_the_prometheus_way_without_the_suffixes_the_encoder_adds() {
        let count = MetricUnit::Count("");
        let base = |name, kind, unit| prometheus_base(name, kind, unit);
        assert_eq!(base("orders.placed", Kind::Counter, count), "orders_placed");
        assert_eq!(base("orders_total", Kind::Counter, count), "orders");
        assert_eq!(base("orders_total", Kind::Gauge, count), "orders_total");
        let seconds = MetricUnit::Seconds;
        assert_eq!(
            base("checkout.duration", Kind::Histogram, seconds),
            "checkout_duration"
        );
        assert_eq!(
            base("rpc_latency_seconds", Kind::Histogram, seconds),
            "rpc_latency"
        );
        assert_eq!(base("2xx-answers", Kind::Counter, count), "_2xx_answers");
    }

    #[test]
    fn time_and_size_units_become_seconds_and_bytes() {
        let ms = Conversion::of("x", Some(Unit::Milliseconds));
        assert_eq!((ms.unit, ms.to_exported), (MetricUnit::Seconds, 1e-3));
        let kib = Conversion::of("x", Some(Unit::Kibibytes));
        assert_eq!((kib.unit, kib.to_exported), (MetricUnit::Bytes, 1024.0));
        assert_eq!(
            Conversion::of("wait_seconds", None).unit,
            MetricUnit::Seconds
        );
        assert_eq!(Conversion::of("wait", None).unit, MetricUnit::Count(""));
    }

    #[test]
    fn reserved_labels_are_renamed_and_keys_interned_once() {
        assert_eq!(prometheus_label("le"), "label_le");
        assert_eq!(prometheus_label("__name__"), "label___name__");
        assert_eq!(prometheus_label("http.method"), "http_method");
        assert!(std::ptr::eq(attribute("region"), attribute("region")));
    }
}
