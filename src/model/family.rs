//! What a part gives the exporters when it is read: metric families (one
//! reading per scrape or export, encoded by `/metrics` and OTLP alike, which
//! is what makes them carry the same numbers) and sections of `/health`.

use std::borrow::Cow;
use std::sync::Arc;

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

/// One point: an attribute set and a value.
#[derive(Debug, Clone)]
pub(crate) struct Point {
    pub(crate) attributes: Attributes,
    pub(crate) value: PointValue,
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

    /// Adds a number point.
    pub(crate) fn number(mut self, attributes: Attributes, value: f64) -> Self {
        self.points.push(Point {
            attributes,
            value: PointValue::Number(value),
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
        });
        self
    }
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
