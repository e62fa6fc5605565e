//! What a part gives the exporters when it is read: metric families (one
//! reading per scrape or export, encoded by `/metrics` and OTLP alike, which
//! is what makes them carry the same numbers) and sections of `/health`.

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::model::histogram::HistogramSnapshot;
use crate::model::instruments::{self as i, Attribute, Instrument};

/// An instrument with its points.
#[derive(Debug, Clone)]
pub(crate) struct Family {
    pub(crate) instrument: &'static Instrument,
    pub(crate) points: Vec<Point>,
}

/// An attribute set.
pub(crate) type Attributes = Vec<(&'static Attribute, Value)>;

/// One point: an attribute set, a value, and since when it counts.
#[derive(Debug, Clone)]
pub(crate) struct Point {
    pub(crate) attributes: Attributes,
    pub(crate) value: PointValue,
    /// When the series started, in nanoseconds since the Unix epoch: its
    /// first observation, or [`process_start`] for gauges and for series
    /// that keep no start. OTLP's `start_time_unix_nano`, OpenMetrics'
    /// `_created`.
    pub(crate) start: u64,
}

/// An attribute value, typed as the semantic conventions type it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Value {
    Str(Cow<'static, str>),
    Int(i64),
    Bool(bool),
}

#[derive(Debug, Clone)]
pub(crate) enum PointValue {
    Number(f64),
    Histogram {
        /// The classic bounds, in the exported unit.
        bounds: Arc<[f64]>,
        data: HistogramSnapshot,
    },
}

impl Family {
    pub(crate) fn new(instrument: &'static Instrument) -> Self {
        Self {
            instrument,
            points: Vec::new(),
        }
    }

    /// Adds a number point, started at [`process_start`].
    pub(crate) fn number(mut self, attributes: Attributes, value: f64) -> Self {
        self.points.push(Point {
            attributes,
            value: PointValue::Number(value),
            start: process_start(),
        });
        self
    }

    /// Adds a histogram point.
    pub(crate) fn histogram(
        mut self,
        attributes: Attributes,
        bounds: &Arc<[f64]>,
        data: HistogramSnapshot,
    ) -> Self {
        self.points.push(Point {
            attributes,
            value: PointValue::Histogram {
                bounds: Arc::clone(bounds),
                data,
            },
            start: process_start(),
        });
        self
    }

    /// The same, with the point added last started at `start` (nanoseconds
    /// since the Unix epoch): a series that keeps its own start.
    pub(crate) fn started(mut self, start: u64) -> Self {
        if let Some(point) = self.points.last_mut() {
            point.start = start;
        }
        self
    }
}

/// The start of a series made now, in nanoseconds since the Unix epoch,
/// floored to the millisecond: as precise as a start needs to be, and far
/// cheaper to compress, as each `/metrics` scrape writes every start.
pub(crate) fn start_now() -> u64 {
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| {
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 1_000_000)
    });
    millis * 1_000_000
}

/// When serverwatch started watching this process, in nanoseconds since
/// the Unix epoch (fixed when the first set of sources is made): the start
/// of gauges and of the series that keep none.
pub(crate) fn process_start() -> u64 {
    static START: LazyLock<u64> = LazyLock::new(start_now);
    *START
}

/// The attributes of the series that absorbs the label sets past a
/// cardinality cap (the attribute the OpenTelemetry SDK uses), with the
/// error type it keeps.
pub(crate) fn overflow_attributes(error_type: Option<Cow<'static, str>>) -> Attributes {
    let mut attributes = vec![(&i::OVERFLOW, Value::Bool(true))];
    if let Some(error) = error_type {
        attributes.push((&i::ERROR_TYPE, Value::Str(error)));
    }
    attributes
}

/// The label value that stands for the label sets past a cardinality cap
/// in the summaries of `/health` and the dashboard.
pub(crate) const OVERFLOW_LABEL: &str = "other";

/// `part` as a percentage of `whole`, 0 when `whole` is 0.
pub(crate) fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}
