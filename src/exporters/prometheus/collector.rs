//! The families as a `prometheus-client` collector: what the Prometheus
//! protobuf format is encoded from (every histogram with its native buckets,
//! from the exponential ones fitted to the bucket limit, beside its classic
//! buckets), and what the text writer is held to, byte for byte, in tests.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use parking_lot::Mutex;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, MetricEncoder, NativeHistogram, NativeHistogramBuckets, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::model::exemplar::Exemplar;
use crate::model::exponential::{ExponentialSnapshot, MAX_EXPORTED_BUCKETS};
use crate::model::family::{Family, PointValue, Value};
use crate::model::histogram::HistogramSnapshot;
use crate::model::instruments::Kind;

use super::{ExtraLabels, is_target_info};

/// The width of the native histograms' zero bucket: the default of the Go
/// client, far below any observation (1 ns, 1 byte), so that only zeros fall
/// in it.
const NATIVE_ZERO_THRESHOLD: f64 = 2.938_735_877_055_719e-39;

/// `families` as length-delimited `MetricFamily` messages, the histograms'
/// exemplars on their classic buckets and among their native ones, the
/// counters' start as their created timestamp (a histogram's is given to
/// prometheus-client). prometheus-client takes exemplars only of its own
/// histogram type and a start only of a histogram, so these are added to
/// the messages it made, in order. `prefix` and `_` go before every name,
/// the `extra` labels after every point's own.
pub(super) fn protobuf(
    mut families: Vec<Family>,
    prefix: Option<&str>,
    extra: &ExtraLabels<'_>,
) -> Vec<u8> {
    use prometheus_client::encoding::prometheus_protobuf::{encode, prometheus_data_model as pb};
    use prost::Message;

    // Taken, not copied: the collector writes no exemplar.
    let exemplars: Vec<Vec<Vec<Option<Exemplar>>>> = families
        .iter_mut()
        .map(|family| {
            family
                .points
                .iter_mut()
                .filter_map(|p| match &mut p.value {
                    PointValue::Histogram { data, .. } => Some(std::mem::take(&mut data.exemplars)),
                    PointValue::Number(_) => None,
                })
                .collect()
        })
        .collect();
    let counter_starts = Arc::new(Mutex::new(Vec::new()));
    let collector = Families {
        families,
        labels: owned_labels(extra, false),
        target_labels: owned_labels(extra, true),
        counter_starts: Some(Arc::clone(&counter_starts)),
    };
    let mut registry = prefix.map_or_else(Registry::default, Registry::with_prefix);
    registry.register_collector(Box::new(collector));
    // The collector cannot fail.
    let mut messages = encode(&registry).unwrap_or_default();
    let mut counter_starts = std::mem::take(&mut *counter_starts.lock()).into_iter();
    let as_message = |e: &Exemplar| {
        let label = |name: &str, value: String| pb::LabelPair {
            name: name.to_owned(),
            value,
        };
        pb::Exemplar {
            label: vec![
                label(
                    "trace_id",
                    format!("{:032x}", u128::from_be_bytes(e.ids.trace_id)),
                ),
                label(
                    "span_id",
                    format!("{:016x}", u64::from_be_bytes(e.ids.span_id)),
                ),
            ],
            value: e.value,
            timestamp: Some(timestamp(e.time_unix_nanos)),
        }
    };
    for (message, exemplars) in messages.iter_mut().zip(&exemplars) {
        for metric in message.metric.iter_mut() {
            if let Some(counter) = metric.counter.as_mut() {
                counter.start_timestamp = counter_starts.next().map(timestamp);
            }
        }
        for (metric, exemplars) in message.metric.iter_mut().zip(exemplars) {
            let Some(h) = metric.histogram.as_mut() else {
                continue;
            };
            for (bucket, exemplar) in h.bucket.iter_mut().zip(exemplars) {
                bucket.exemplar = exemplar.as_ref().map(as_message);
            }
            h.exemplars = exemplars.iter().flatten().map(as_message).collect();
        }
    }
    let mut bytes = Vec::new();
    for message in messages {
        // Encoding into a Vec cannot fail.
        let _ = message.encode_length_delimited(&mut bytes);
    }
    bytes
}

fn timestamp(unix_nanos: u64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: (unix_nanos / 1_000_000_000) as i64,
        nanos: (unix_nanos % 1_000_000_000) as i32,
    }
}

/// The `extra` labels of every series, or of `target_info`'s, owned by
/// the collector.
fn owned_labels(extra: &ExtraLabels<'_>, target_info: bool) -> Labels {
    extra
        .of(target_info)
        .map(|(k, v)| (Cow::Owned(k.to_owned()), Cow::Owned(v.to_owned())))
        .collect()
}

/// Families to encode, as a prometheus-client collector.
#[derive(Debug)]
pub(super) struct Families {
    families: Vec<Family>,
    /// Added after every point's labels, and after `target_info`'s.
    labels: Labels,
    target_labels: Labels,
    /// Where the start of every counter sample is put, in order, when
    /// wanted.
    counter_starts: Option<Arc<Mutex<Vec<u64>>>>,
}

impl Families {
    /// The families alone, as prometheus-client writes them.
    #[cfg(test)]
    pub(super) fn new(families: Vec<Family>) -> Self {
        Self {
            families,
            labels: Vec::new(),
            target_labels: Vec::new(),
            counter_starts: None,
        }
    }
}

type Labels = Vec<(Cow<'static, str>, Cow<'static, str>)>;

impl Collector for Families {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for family in &self.families {
            let extra = if is_target_info(family.instrument) {
                &self.target_labels
            } else {
                &self.labels
            };
            let counter_starts = self.counter_starts.as_deref();
            encode_family(&mut encoder, family, extra, counter_starts)?;
        }
        Ok(())
    }
}

fn encode_family(
    encoder: &mut DescriptorEncoder,
    family: &Family,
    extra: &Labels,
    counter_starts: Option<&Mutex<Vec<u64>>>,
) -> Result<(), std::fmt::Error> {
    let instrument = family.instrument;
    let kind = match instrument.kind {
        Kind::Counter => MetricType::Counter,
        Kind::UpDownCounter | Kind::Gauge => MetricType::Gauge,
        Kind::Histogram => MetricType::Histogram,
        Kind::Info => MetricType::Info,
    };
    let mut metric = encoder.encode_descriptor(
        instrument.prometheus_name,
        instrument.help,
        instrument.unit.prometheus(),
        kind,
    )?;
    let mut starts = counter_starts.map(|s| s.lock());
    for (mut labels, sample, start) in samples(family) {
        labels.extend(extra.iter().cloned());
        if let (Kind::Counter, Some(starts)) = (instrument.kind, starts.as_mut()) {
            starts.push(start);
        }
        if labels.is_empty() || instrument.kind == Kind::Info {
            write_sample(&mut metric, instrument.kind, &labels, &sample, start)?;
        } else {
            let mut labelled = metric.encode_family(&labels)?;
            write_sample(&mut labelled, instrument.kind, &labels, &sample, start)?;
        }
    }
    Ok(())
}

fn write_sample(
    metric: &mut MetricEncoder<'_>,
    kind: Kind,
    labels: &Labels,
    sample: &Sample<'_>,
    start: u64,
) -> Result<(), std::fmt::Error> {
    match (kind, sample) {
        // An info's labels are its value: written by `encode_info` itself.
        (Kind::Info, _) => metric.encode_info(labels),
        (Kind::Counter, Sample::Number(v)) => metric.encode_counter::<NoLabelSet, _, f64>(v, None),
        (_, Sample::Number(v)) => metric.encode_gauge(v),
        (_, Sample::Histogram(bounds, h)) => {
            let buckets: Vec<(f64, u64)> = bounds
                .iter()
                .copied()
                .chain([f64::INFINITY])
                .zip(h.buckets.iter().copied())
                .collect();
            // The text formats write the classic buckets only.
            let native = h.exponential.fitted(MAX_EXPORTED_BUCKETS);
            let (spans, deltas) = native_buckets(&native);
            let native = NativeHistogram {
                schema: native.scale,
                zero_threshold: NATIVE_ZERO_THRESHOLD,
                zero_count: native.zero,
                negative: NativeHistogramBuckets {
                    spans: &[],
                    deltas: &[],
                },
                positive: NativeHistogramBuckets {
                    spans: &spans,
                    deltas: &deltas,
                },
                created: Some(UNIX_EPOCH + Duration::from_nanos(start)),
            };
            metric
                .encode_histogram_with_native::<NoLabelSet>(h.sum, h.count, &buckets, None, native)
        }
    }
}

/// The positive buckets of a native histogram: spans over the buckets in
/// use and the count of each as its difference from the one before.
/// Prometheus numbers a bucket by its upper bound (bucket `i` ends at
/// `2^(i/2^schema)`), OpenTelemetry by its lower one: one apart. An empty
/// histogram keeps one empty span, so that it is still read as native.
fn native_buckets(h: &ExponentialSnapshot) -> (Vec<(i32, u32)>, Vec<i64>) {
    if h.counts.is_empty() {
        return (vec![(0, 0)], Vec::new());
    }
    let mut spans: Vec<(i32, u32)> = Vec::new();
    let mut deltas = Vec::with_capacity(h.counts.len());
    let (mut previous, mut next_index, mut gap) = (0i64, h.offset + 1, 0);
    for (k, &count) in h.counts.iter().enumerate() {
        let index = h.offset + 1 + k as i32;
        if count == 0 {
            gap += 1;
            continue;
        }
        match spans.last_mut() {
            // Joined by a run of at most two empty buckets: cheaper to
            // write them as zero deltas than to start a span.
            Some(span) if gap <= 2 => {
                span.1 += gap + 1;
                for _ in 0..gap {
                    deltas.push(-previous);
                    previous = 0;
                }
            }
            Some(_) => spans.push((index - next_index, 1)),
            None => spans.push((index, 1)),
        }
        gap = 0;
        next_index = index + 1;
        deltas.push(count as i64 - previous);
        previous = count as i64;
    }
    (spans, deltas)
}

enum Sample<'a> {
    Number(f64),
    Histogram(&'a [f64], &'a HistogramSnapshot),
}

/// The family's points as Prometheus samples. Attributes without a
/// Prometheus spelling (such as `cpu.mode`) are not labels: points that
/// differ only in them are added up, from the earliest start.
fn samples(family: &Family) -> Vec<(Labels, Sample<'_>, u64)> {
    let mut out: Vec<(Labels, Sample<'_>, u64)> = Vec::with_capacity(family.points.len());
    for point in &family.points {
        let labels: Labels = point
            .attributes
            .iter()
            .filter_map(|(attribute, value)| {
                Some((Cow::Borrowed(attribute.prometheus?), label(value)))
            })
            .collect();
        match &point.value {
            PointValue::Number(v) => match out.iter_mut().find(|(l, ..)| *l == labels) {
                Some((_, Sample::Number(sum), start)) => {
                    *sum += v;
                    *start = (*start).min(point.start);
                }
                _ => out.push((labels, Sample::Number(*v), point.start)),
            },
            PointValue::Histogram { bounds, data } => {
                out.push((labels, Sample::Histogram(bounds, data), point.start))
            }
        }
    }
    out
}

/// The Prometheus label value of an attribute.
fn label(value: &Value) -> Cow<'static, str> {
    match value {
        Value::Str(s) => s.clone(),
        Value::Int(n) => Cow::Owned(n.to_string()),
        Value::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_buckets_are_spans_of_deltas_numbered_by_upper_bound() {
        let h = ExponentialSnapshot {
            scale: 3,
            zero: 0,
            offset: -2,
            counts: vec![2, 0, 3, 0, 0, 0, 1],
        };
        let (spans, deltas) = native_buckets(&h);
        // Buckets -1 and +1 in Prometheus's numbering, one empty between
        // them written as a zero delta; then three empty ones: a new span.
        assert_eq!(spans, vec![(-1, 3), (3, 1)]);
        assert_eq!(deltas, vec![2, -2, 3, -2]);
        assert_eq!(
            native_buckets(&ExponentialSnapshot::default()),
            (vec![(0, 0)], vec![])
        );
    }
}
