//! Instrument points to an OTLP `ExportMetricsServiceRequest`, with the
//! OpenTelemetry names, units and attribute types, in the temporality asked
//! for.
//!
//! Histograms go as explicit-bucket histograms (the classic bounds), or as
//! base-2 exponential histograms when the exporter is asked to.
//!
//! Deltas are computed from the cumulative state: the exporter keeps the
//! cumulative value of every delta point as the collector last took it, and
//! sends the difference; a point that did not change is left out, as the
//! OpenTelemetry SDKs do. A series new since then starts at that export's
//! time (none of its observations is older), and so does one that started
//! again since (a reset: all of it is new); a failed export moves nothing,
//! so the next one carries its share and deltas stay lossless. A cumulative
//! point starts at its series' start, as `/metrics` has it.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge,
    Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    exemplar, exponential_histogram_data_point, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::config::OtlpTemporality;
use crate::model::exponential::MAX_EXPORTED_BUCKETS;
use crate::model::family::{Family, Point, PointValue, Value};
use crate::model::instruments::{Instrument, Kind};

/// What is fixed per exporter: the resource, the start of the first
/// deltas, and how histograms are sent.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub(crate) resource: Vec<(String, String)>,
    pub(crate) start: SystemTime,
    /// Base-2 exponential histograms instead of explicit-bucket ones.
    pub(crate) exponential: bool,
}

/// Encodes each export; remembers what the collector took, for deltas.
#[derive(Debug)]
pub(crate) struct Encoder {
    origin: Origin,
    temporality: OtlpTemporality,
    /// The cumulative values of the delta points as of the last export the
    /// collector took.
    taken: Baseline,
}

/// Cumulative values of the delta points, as of `time`.
#[derive(Debug, Default)]
pub(crate) struct Baseline {
    time: u64,
    values: HashMap<PointKey, PointValue>,
}

/// A point's identity: its instrument and attributes.
type PointKey = (&'static str, Vec<(&'static str, Value)>);

/// One export, and what the baseline becomes once the collector took it.
#[derive(Debug)]
pub(crate) struct Encoded {
    pub(crate) request: ExportMetricsServiceRequest,
    baseline: Baseline,
}

impl Encoder {
    pub(crate) fn new(origin: Origin, temporality: OtlpTemporality) -> Self {
        let taken = Baseline {
            time: nanos(origin.start),
            values: HashMap::new(),
        };
        Self {
            origin,
            temporality,
            taken,
        }
    }

    /// Encodes one reading of the families, taken at `now`.
    pub(crate) fn encode(&self, families: Vec<Family>, now: SystemTime) -> Encoded {
        let now = nanos(now);
        let mut baseline = Baseline {
            time: now,
            values: HashMap::new(),
        };
        let metrics = families
            .into_iter()
            .map(|family| self.metric(family, now, &mut baseline))
            .collect();
        Encoded {
            request: self.request(metrics),
            baseline,
        }
    }

    /// The collector took `encoded`: later deltas start from it.
    pub(crate) fn taken(&mut self, encoded: Encoded) {
        self.taken = encoded.baseline;
    }

    /// Whether the points of `instrument` are sent as deltas: counters
    /// and histograms, as the temporality preference of the OpenTelemetry
    /// specification has it (`lowmemory` keeps observed counters cumulative).
    fn is_delta(&self, instrument: &Instrument) -> bool {
        match (self.temporality, instrument.kind) {
            (OtlpTemporality::Cumulative, _) => false,
            (_, Kind::Histogram) => true,
            (OtlpTemporality::Delta, Kind::Counter) => true,
            (OtlpTemporality::LowMemory, Kind::Counter) => !is_observed(instrument),
            (_, Kind::UpDownCounter | Kind::Gauge | Kind::Info) => false,
        }
    }

    fn request(&self, metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
        let resource = Resource {
            attributes: self
                .origin
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
                    metrics,
                    ..ScopeMetrics::default()
                }],
                ..ResourceMetrics::default()
            }],
        }
    }

    fn metric(&self, family: Family, now: u64, baseline: &mut Baseline) -> Metric {
        let i = family.instrument;
        let delta = self.is_delta(i);
        let temporality = if delta {
            AggregationTemporality::Delta
        } else {
            AggregationTemporality::Cumulative
        } as i32;
        let mut numbers = Vec::new();
        let mut histograms = Vec::new();
        let mut exponentials = Vec::new();
        for point in family.points {
            let sent = if delta {
                self.delta(i, point, now)
            } else {
                Sent::cumulative(point, now)
            };
            if sent.delta.as_ref().is_some_and(is_zero) {
                sent.keep(baseline);
                continue;
            }
            match sent.value() {
                PointValue::Number(value) => numbers.push(number_point(&sent, *value)),
                PointValue::Histogram { data, .. } if self.origin.exponential => {
                    exponentials.push(exponential_point(&sent, data))
                }
                PointValue::Histogram { bounds, data } => histograms.push(HistogramDataPoint {
                    attributes: attributes(&sent.point),
                    start_time_unix_nano: sent.start,
                    time_unix_nano: sent.time,
                    count: data.count,
                    sum: Some(data.sum),
                    // A delta's extremes would be the interval's, which are
                    // only known for the first one.
                    min: data.min.filter(|_| sent.whole),
                    max: data.max.filter(|_| sent.whole),
                    // Per bucket, not cumulative, the +Inf bucket last: as
                    // OTLP wants.
                    bucket_counts: data.buckets.clone(),
                    explicit_bounds: bounds.to_vec(),
                    exemplars: exemplars(data),
                    ..HistogramDataPoint::default()
                }),
            }
            sent.keep(baseline);
        }
        let data = match i.kind {
            Kind::Counter | Kind::UpDownCounter => metric::Data::Sum(Sum {
                data_points: numbers,
                aggregation_temporality: temporality,
                is_monotonic: i.kind == Kind::Counter,
            }),
            Kind::Gauge | Kind::Info => metric::Data::Gauge(Gauge {
                data_points: numbers,
            }),
            Kind::Histogram if self.origin.exponential => {
                metric::Data::ExponentialHistogram(ExponentialHistogram {
                    data_points: exponentials,
                    aggregation_temporality: temporality,
                })
            }
            Kind::Histogram => metric::Data::Histogram(Histogram {
                data_points: histograms,
                aggregation_temporality: temporality,
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

    /// The point as a delta from what the collector took.
    fn delta(&self, instrument: &Instrument, point: Point, now: u64) -> Sent {
        let key = key(instrument, &point);
        let earlier = (point.start <= self.taken.time)
            .then(|| self.taken.values.get(&key))
            .flatten();
        Sent {
            start: self.taken.time,
            time: now,
            delta: earlier.map(|earlier| minus(&point.value, earlier)),
            whole: earlier.is_none(),
            key: Some(key),
            point,
        }
    }
}

/// A histogram point as an exponential one, fitted to the bucket limit.
fn exponential_point(
    sent: &Sent,
    data: &crate::model::histogram::HistogramSnapshot,
) -> ExponentialHistogramDataPoint {
    let exponential = data.exponential.fitted(MAX_EXPORTED_BUCKETS);
    ExponentialHistogramDataPoint {
        attributes: attributes(&sent.point),
        start_time_unix_nano: sent.start,
        time_unix_nano: sent.time,
        // Its own total: the classic count may be ahead by a recording that
        // was in flight when the buckets were read.
        count: exponential.count(),
        sum: Some(data.sum),
        scale: exponential.scale,
        zero_count: exponential.zero,
        positive: Some(exponential_histogram_data_point::Buckets {
            offset: exponential.offset,
            bucket_counts: exponential.counts,
        }),
        min: data.min.filter(|_| sent.whole),
        max: data.max.filter(|_| sent.whole),
        exemplars: exemplars(data),
        ..ExponentialHistogramDataPoint::default()
    }
}

/// The exemplars of a histogram point: the last traced observation of each
/// classic bucket, with its trace and span ids as bytes.
fn exemplars(data: &crate::model::histogram::HistogramSnapshot) -> Vec<Exemplar> {
    data.exemplars
        .iter()
        .flatten()
        .map(|e| Exemplar {
            time_unix_nano: e.time_unix_nanos,
            span_id: e.ids.span_id.to_vec(),
            trace_id: e.ids.trace_id.to_vec(),
            value: Some(exemplar::Value::AsDouble(e.value)),
            ..Exemplar::default()
        })
        .collect()
}

/// A point as sent: its cumulative reading, and the delta sent for it.
struct Sent {
    start: u64,
    time: u64,
    point: Point,
    /// `None`: the reading itself is sent.
    delta: Option<PointValue>,
    /// Whether what is sent covers every observation of the point.
    whole: bool,
    /// Set for the delta points, whose reading the baseline keeps.
    key: Option<PointKey>,
}

impl Sent {
    fn cumulative(point: Point, time: u64) -> Self {
        Self {
            start: point.start,
            time,
            point,
            delta: None,
            whole: true,
            key: None,
        }
    }

    fn value(&self) -> &PointValue {
        self.delta.as_ref().unwrap_or(&self.point.value)
    }

    /// Keeps the reading of a delta point in `baseline`.
    fn keep(self, baseline: &mut Baseline) {
        if let Some(key) = self.key {
            baseline.values.insert(key, self.point.value);
        }
    }
}

fn key(instrument: &Instrument, point: &Point) -> PointKey {
    (
        instrument.otel_name,
        point
            .attributes
            .iter()
            .map(|(attribute, value)| (attribute.otel, value.clone()))
            .collect(),
    )
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

fn number_point(sent: &Sent, value: f64) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attributes(&sent.point),
        start_time_unix_nano: sent.start,
        time_unix_nano: sent.time,
        value: Some(number_data_point::Value::AsDouble(value)),
        ..NumberDataPoint::default()
    }
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

/// What was added to `now` since `earlier`, a reading of the same point:
/// what a delta exporter sends. A value below `earlier` was reset, so all
/// of it is new.
fn minus(now: &PointValue, earlier: &PointValue) -> PointValue {
    match (now, earlier) {
        (PointValue::Number(n), PointValue::Number(then)) if n >= then => {
            PointValue::Number(n - then)
        }
        (PointValue::Histogram { bounds, data }, PointValue::Histogram { data: then, .. })
            if data.count >= then.count =>
        {
            PointValue::Histogram {
                bounds: std::sync::Arc::clone(bounds),
                data: data.minus(then),
            }
        }
        _ => now.clone(),
    }
}

/// Whether nothing was observed: what a delta of an idle point is.
fn is_zero(value: &PointValue) -> bool {
    match value {
        PointValue::Number(v) => *v == 0.0,
        PointValue::Histogram { data, .. } => data.count == 0,
    }
}

/// Read from the process or the system when asked (an asynchronous
/// instrument, in OpenTelemetry's terms), rather than recorded as events
/// happen: the `process.*` and `system.*` ones.
fn is_observed(instrument: &Instrument) -> bool {
    instrument.otel_name.starts_with("process.") || instrument.otel_name.starts_with("system.")
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::time::Duration;

    use super::*;
    use crate::model::family::Attributes;
    use crate::model::histogram::HistogramSnapshot;
    use crate::model::instruments as i;

    fn bounds() -> std::sync::Arc<[f64]> {
        [0.1, 1.0].as_slice().into()
    }

    fn route(r: &'static str) -> Attributes {
        vec![(&i::HTTP_ROUTE, Value::Str(Cow::Borrowed(r)))]
    }

    fn histogram(buckets: [u64; 3], sum: f64) -> HistogramSnapshot {
        HistogramSnapshot {
            count: buckets.iter().sum(),
            sum,
            max: Some(2.0),
            buckets: buckets.to_vec(),
            ..HistogramSnapshot::default()
        }
    }

    /// A reading: the duration histogram of `routes`, and the CPU time.
    fn families(routes: &[(&'static str, [u64; 3], f64)], cpu: f64) -> Vec<Family> {
        let durations = routes.iter().fold(
            Family::new(&i::HTTP_SERVER_REQUEST_DURATION),
            |family, (r, buckets, sum)| {
                family
                    .histogram(route(r), &bounds(), histogram(*buckets, *sum))
                    .started(SERIES_START)
            },
        );
        vec![
            durations,
            Family::new(&i::PROCESS_CPU_TIME)
                .number(Vec::new(), cpu)
                .started(SERIES_START),
        ]
    }

    /// When the series of the readings started: before the exporter.
    const SERIES_START: u64 = 90_000_000_000;

    fn origin() -> Origin {
        Origin {
            exponential: false,
            resource: Vec::new(),
            start: UNIX_EPOCH + Duration::from_secs(100),
        }
    }

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn metrics(encoded: &Encoded) -> &[Metric] {
        &encoded.request.resource_metrics[0].scope_metrics[0].metrics
    }

    /// Route, start and time (s), count, buckets and max of a duration point.
    type DurationPoint = (String, u64, u64, u64, Vec<u64>, Option<f64>);

    fn durations(encoded: &Encoded) -> Vec<DurationPoint> {
        let Some(metric::Data::Histogram(h)) = &metrics(encoded)[0].data else {
            panic!("not a histogram");
        };
        h.data_points
            .iter()
            .map(|p| {
                let Some(any_value::Value::StringValue(route)) =
                    p.attributes[0].value.as_ref().and_then(|v| v.value.clone())
                else {
                    panic!("no route");
                };
                (
                    route,
                    p.start_time_unix_nano / 1_000_000_000,
                    p.time_unix_nano / 1_000_000_000,
                    p.count,
                    p.bucket_counts.clone(),
                    p.max,
                )
            })
            .collect()
    }

    /// (temporality, start s, value) of the CPU time.
    fn cpu(encoded: &Encoded) -> (i32, u64, f64) {
        let Some(metric::Data::Sum(sum)) = &metrics(encoded)[1].data else {
            panic!("not a sum");
        };
        let p = &sum.data_points[0];
        let Some(number_data_point::Value::AsDouble(v)) = p.value else {
            panic!("not a double");
        };
        (
            sum.aggregation_temporality,
            p.start_time_unix_nano / 1_000_000_000,
            v,
        )
    }

    fn temporality(encoded: &Encoded) -> i32 {
        match &metrics(encoded)[0].data {
            Some(metric::Data::Histogram(h)) => h.aggregation_temporality,
            _ => panic!("not a histogram"),
        }
    }

    const DELTA: i32 = AggregationTemporality::Delta as i32;
    const CUMULATIVE: i32 = AggregationTemporality::Cumulative as i32;

    #[test]
    fn cumulative_points_start_at_their_series_start() {
        let mut encoder = Encoder::new(origin(), OtlpTemporality::Cumulative);
        let first = encoder.encode(families(&[("/a", [1, 2, 0], 1.0)], 1.5), at(160));
        encoder.taken(first);
        let second = encoder.encode(families(&[("/a", [2, 2, 1], 3.0)], 2.5), at(220));
        assert_eq!(temporality(&second), CUMULATIVE);
        assert_eq!(
            durations(&second),
            [("/a".into(), 90, 220, 5, vec![2, 2, 1], Some(2.0))]
        );
        assert_eq!(cpu(&second), (CUMULATIVE, 90, 2.5));
    }

    #[test]
    fn deltas_carry_what_changed_since_the_export_the_collector_took() {
        let mut encoder = Encoder::new(origin(), OtlpTemporality::Delta);
        let first = encoder.encode(families(&[("/a", [1, 2, 0], 1.0)], 1.5), at(160));
        assert_eq!(temporality(&first), DELTA);
        assert_eq!(
            durations(&first),
            [("/a".into(), 100, 160, 3, vec![1, 2, 0], Some(2.0))],
            "the first delta is everything since the start, with its max"
        );
        encoder.taken(first);

        // A burst on /a, and /b seen for the first time.
        let reading = [("/a", [3, 2, 1], 4.0), ("/b", [0, 1, 0], 0.5)];
        let second = encoder.encode(families(&reading, 2.0), at(220));
        assert_eq!(
            durations(&second),
            [
                ("/a".into(), 160, 220, 3, vec![2, 0, 1], None),
                ("/b".into(), 160, 220, 1, vec![0, 1, 0], Some(2.0)),
            ]
        );
        assert_eq!(cpu(&second), (DELTA, 160, 0.5));

        // Not taken (the export failed): the next delta still starts at 160.
        let reading = [("/a", [4, 2, 1], 4.5), ("/b", [0, 1, 0], 0.5)];
        let third = encoder.encode(families(&reading, 2.0), at(280));
        assert_eq!(
            durations(&third),
            [
                ("/a".into(), 160, 280, 4, vec![3, 0, 1], None),
                ("/b".into(), 160, 280, 1, vec![0, 1, 0], Some(2.0)),
            ]
        );
        encoder.taken(third);
        let reading = [("/a", [4, 2, 1], 4.5), ("/b", [0, 1, 1], 3.0)];
        let fourth = encoder.encode(families(&reading, 2.0), at(340));
        assert_eq!(
            durations(&fourth),
            [("/b".into(), 280, 340, 1, vec![0, 0, 1], None)],
            "a point that did not change is left out"
        );
        encoder.taken(fourth);
        let fifth = encoder.encode(families(&reading, 2.0), at(400));
        assert_eq!(durations(&fifth), []);
        encoder.taken(fifth);
        let reading = [("/a", [5, 2, 1], 4.6), ("/b", [0, 1, 1], 3.0)];
        let sixth = encoder.encode(families(&reading, 2.0), at(460));
        assert_eq!(
            durations(&sixth),
            [("/a".into(), 400, 460, 1, vec![1, 0, 0], None)],
            "back after a quiet export, from that export on"
        );
    }

    #[test]
    fn a_series_that_started_again_sends_all_of_it_as_its_delta() {
        let mut encoder = Encoder::new(origin(), OtlpTemporality::Delta);
        let first = encoder.encode(families(&[("/a", [1, 2, 0], 1.0)], 1.5), at(160));
        encoder.taken(first);
        // Made again at 200 s (it expired): fewer observations than before
        // would read as a reset anyway, so it has more.
        let again = families(&[("/a", [2, 2, 1], 3.0)], 2.5)
            .into_iter()
            .map(|mut family| {
                for point in &mut family.points {
                    point.start = 200_000_000_000;
                }
                family
            })
            .collect();
        let second = encoder.encode(again, at(220));
        assert_eq!(
            durations(&second),
            [("/a".into(), 160, 220, 5, vec![2, 2, 1], Some(2.0))]
        );
    }

    #[test]
    fn overflow_series_have_deltas_of_their_own() {
        let overflow = |error: Option<&'static str>, buckets: [u64; 3]| {
            let attributes = crate::model::family::overflow_attributes(error.map(Cow::Borrowed));
            (attributes, histogram(buckets, 1.0))
        };
        let reading = |ok: [u64; 3], failed: [u64; 3]| {
            let [a, b] = [overflow(None, ok), overflow(Some("500"), failed)];
            vec![
                Family::new(&i::HTTP_SERVER_REQUEST_DURATION)
                    .histogram(a.0, &bounds(), a.1)
                    .started(SERIES_START)
                    .histogram(b.0, &bounds(), b.1)
                    .started(SERIES_START),
            ]
        };
        let counts = |encoded: &Encoded| -> Vec<(usize, u64)> {
            let Some(metric::Data::Histogram(h)) = &metrics(encoded)[0].data else {
                panic!("not a histogram");
            };
            h.data_points
                .iter()
                .map(|p| (p.attributes.len(), p.count))
                .collect()
        };
        let mut encoder = Encoder::new(origin(), OtlpTemporality::Delta);
        let first = encoder.encode(reading([1, 0, 0], [0, 0, 1]), at(160));
        assert_eq!(counts(&first), [(1, 1), (2, 1)]);
        encoder.taken(first);
        let second = encoder.encode(reading([3, 1, 0], [0, 0, 1]), at(220));
        assert_eq!(counts(&second), [(1, 3)], "only the one that changed");
    }

    #[test]
    fn low_memory_keeps_observed_counters_cumulative() {
        let mut encoder = Encoder::new(origin(), OtlpTemporality::LowMemory);
        let first = encoder.encode(families(&[("/a", [1, 0, 0], 0.1)], 1.5), at(160));
        encoder.taken(first);
        let second = encoder.encode(families(&[("/a", [2, 0, 0], 0.2)], 2.5), at(220));
        assert_eq!(temporality(&second), DELTA);
        assert_eq!(cpu(&second), (CUMULATIVE, 90, 2.5));
    }
}
