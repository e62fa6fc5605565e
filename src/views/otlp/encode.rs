//! Instrument points to an OTLP `ExportMetricsServiceRequest`, with the
//! OpenTelemetry names, units and attribute types, cumulative temporality.
//! Histograms go as explicit-bucket histograms (the classic bounds), or as
//! base-2 exponential histograms when the exporter is asked to.

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    exponential_histogram_data_point, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::instruments::Kind;
use crate::state::exponential::MAX_EXPORTED_BUCKETS;
use crate::state::reading::{Family, Point, PointValue, Value};

/// What is fixed per exporter: the resource, the start of the cumulative
/// series, and how histograms are sent.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub(crate) resource: Vec<(String, String)>,
    pub(crate) start: SystemTime,
    /// Base-2 exponential histograms instead of explicit-bucket ones.
    pub(crate) exponential: bool,
}

pub(crate) fn request(
    origin: &Origin,
    families: &[Family],
    now: SystemTime,
) -> ExportMetricsServiceRequest {
    let times = (nanos(origin.start), nanos(now));
    let resource = Resource {
        attributes: origin
            .resource
            .iter()
            .map(|(k, v)| key_value(k, any_value::Value::StringValue(v.clone())))
            .collect(),
        ..Resource::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "serverwatch".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..InstrumentationScope::default()
                }),
                metrics: families
                    .iter()
                    .map(|f| metric(f, times, origin.exponential))
                    .collect(),
                ..ScopeMetrics::default()
            }],
            ..ResourceMetrics::default()
        }],
    }
}

fn metric(family: &Family, times: (u64, u64), exponential: bool) -> Metric {
    let i = family.instrument;
    let numbers = || {
        family
            .points
            .iter()
            .filter_map(|p| number_point(p, times))
            .collect()
    };
    let cumulative = AggregationTemporality::Cumulative as i32;
    let data = match i.kind {
        Kind::Counter | Kind::UpDownCounter => metric::Data::Sum(Sum {
            data_points: numbers(),
            aggregation_temporality: cumulative,
            is_monotonic: i.kind == Kind::Counter,
        }),
        Kind::Gauge | Kind::Info => metric::Data::Gauge(Gauge {
            data_points: numbers(),
        }),
        Kind::Histogram if exponential => {
            metric::Data::ExponentialHistogram(ExponentialHistogram {
                data_points: family
                    .points
                    .iter()
                    .filter_map(|p| exponential_point(p, times))
                    .collect(),
                aggregation_temporality: cumulative,
            })
        }
        Kind::Histogram => metric::Data::Histogram(Histogram {
            data_points: family
                .points
                .iter()
                .filter_map(|p| histogram_point(p, times))
                .collect(),
            aggregation_temporality: cumulative,
        }),
    };
    Metric {
        name: i.otel_name.into(),
        description: i.help.into(),
        unit: i.unit.otel().into(),
        data: Some(data),
        ..Metric::default()
    }
}

fn attributes(point: &Point) -> Vec<KeyValue> {
    point
        .attributes
        .iter()
        .map(|(attribute, value)| {
            let value = match value {
                Value::Str(s) => any_value::Value::StringValue(s.to_string()),
                Value::Int(n) => any_value::Value::IntValue(*n),
                Value::Bool(b) => any_value::Value::BoolValue(*b),
            };
            key_value(attribute.otel, value)
        })
        .collect()
}

fn number_point(point: &Point, (start, now): (u64, u64)) -> Option<NumberDataPoint> {
    let PointValue::Number(value) = point.value else {
        return None;
    };
    Some(NumberDataPoint {
        attributes: attributes(point),
        start_time_unix_nano: start,
        time_unix_nano: now,
        value: Some(number_data_point::Value::AsDouble(value)),
        ..NumberDataPoint::default()
    })
}

fn histogram_point(point: &Point, (start, now): (u64, u64)) -> Option<HistogramDataPoint> {
    let PointValue::Histogram { bounds, data } = &point.value else {
        return None;
    };
    Some(HistogramDataPoint {
        attributes: attributes(point),
        start_time_unix_nano: start,
        time_unix_nano: now,
        count: data.count,
        sum: Some(data.sum),
        min: data.min,
        max: data.max,
        // Per bucket, not cumulative, the +Inf bucket last: as OTLP wants.
        bucket_counts: data.buckets.clone(),
        explicit_bounds: bounds.to_vec(),
        ..HistogramDataPoint::default()
    })
}

fn exponential_point(
    point: &Point,
    (start, now): (u64, u64),
) -> Option<ExponentialHistogramDataPoint> {
    let PointValue::Histogram { data, .. } = &point.value else {
        return None;
    };
    let exponential = data.exponential.fitted(MAX_EXPORTED_BUCKETS);
    Some(ExponentialHistogramDataPoint {
        attributes: attributes(point),
        start_time_unix_nano: start,
        time_unix_nano: now,
        // Its own total: the classic count may be ahead by a recording
        // that was in flight when the buckets were read.
        count: exponential.count(),
        sum: Some(data.sum),
        scale: exponential.scale,
        zero_count: exponential.zero,
        positive: Some(exponential_histogram_data_point::Buckets {
            offset: exponential.offset,
            bucket_counts: exponential.counts,
        }),
        min: data.min,
        max: data.max,
        ..ExponentialHistogramDataPoint::default()
    })
}

fn key_value(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
