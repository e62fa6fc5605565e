//! `/metrics`: every instrument encoded by `prometheus-client` at scrape
//! time, in the format the scraper asks for: the Prometheus protobuf format
//! (with native histograms beside the classic buckets), OpenMetrics, or the
//! classic Prometheus text format (0.0.4), which is also the default.

use std::borrow::Cow;
use std::fmt::Write as _;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, MetricEncoder, NativeHistogram, NativeHistogramBuckets, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::instruments::Kind;
use crate::state::exponential::{ExponentialSnapshot, MAX_EXPORTED_BUCKETS};
use crate::state::histogram::HistogramSnapshot;
use crate::state::reading::{Family, PointValue};

/// Content type of the OpenMetrics text format.
pub(crate) const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the classic Prometheus text format.
pub(crate) const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Content type of the Prometheus protobuf format, the one that carries
/// native histograms.
pub(crate) const PROTOBUF_CONTENT_TYPE: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// The width of the native histograms' zero bucket: the default of the Go
/// client, far below any observation (1 ns, 1 byte), so that only zeros fall
/// in it.
const NATIVE_ZERO_THRESHOLD: f64 = 2.938_735_877_055_719e-39;

/// The formats served at `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Protobuf,
    OpenMetrics,
    Prometheus,
}

impl Format {
    /// The format the `Accept` header prefers (highest `q`; on a tie,
    /// protobuf, then OpenMetrics), the classic text format when it names
    /// none of them (what curl and older scrapers get).
    pub(crate) fn negotiate(accept: Option<&str>) -> Self {
        let Some(accept) = accept else {
            return Format::Prometheus;
        };
        let mut best: Option<(f64, Format)> = None;
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default().to_ascii_lowercase();
            let (mut q, mut proto, mut encoding) = (1.0, None, None);
            for parameter in parts {
                let (name, value) = parameter.split_once('=').unwrap_or((parameter, ""));
                let value = value.trim().trim_matches('"');
                match name.trim().to_ascii_lowercase().as_str() {
                    "q" => q = value.parse().unwrap_or(0.0),
                    "proto" => proto = Some(value.to_owned()),
                    "encoding" => encoding = Some(value.to_owned()),
                    _ => {}
                }
            }
            let format = match media.as_str() {
                "application/vnd.google.protobuf"
                    if proto.as_deref() == Some("io.prometheus.client.MetricFamily")
                        && encoding.as_deref() == Some("delimited") =>
                {
                    Format::Protobuf
                }
                "application/openmetrics-text" => Format::OpenMetrics,
                "text/plain" | "text/*" | "*/*" => Format::Prometheus,
                _ => continue,
            };
            let rank = |f: Format| match f {
                Format::Protobuf => 2,
                Format::OpenMetrics => 1,
                Format::Prometheus => 0,
            };
            let better = match best {
                None => q > 0.0,
                Some((best_q, best_format)) => {
                    q > best_q || (q == best_q && rank(format) > rank(best_format))
                }
            };
            if better {
                best = Some((q, format));
            }
        }
        best.map_or(Format::Prometheus, |(_, format)| format)
    }

    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Format::Protobuf => PROTOBUF_CONTENT_TYPE,
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Format::Prometheus => PROMETHEUS_CONTENT_TYPE,
        }
    }
}

/// Encodes `families` in `format`.
pub(crate) fn encode(families: Vec<Family>, format: Format) -> Vec<u8> {
    if format == Format::Protobuf {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Families(families)));
        // The collector cannot fail, nor can encoding into a Vec.
        return prometheus_client::encoding::prometheus_protobuf::encode_to_vec(&registry)
            .unwrap_or_default();
    }
    let mut text = String::with_capacity(16 * 1024);
    match format {
        Format::Protobuf => unreachable!("encoded above"),
        Format::OpenMetrics => {
            encode_registry(&mut text, Families(families));
            // Writing into a String cannot fail.
            let _ = prometheus_client::encoding::text::encode_eof(&mut text);
        }
        Format::Prometheus => {
            let mut one = String::new();
            for family in families {
                write_classic_descriptor(&mut text, &family);
                one.clear();
                encode_registry(&mut one, Families(vec![family]));
                // The samples alone: every line that is not a descriptor
                // comment. Their names are already the classic ones.
                for line in one.lines().filter(|l| !l.starts_with('#')) {
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
    }
    text.into_bytes()
}

/// Encodes the families with prometheus-client, in OpenMetrics, without `# EOF`.
fn encode_registry(out: &mut String, families: Families) {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(families));
    // Writing into a String cannot fail, nor can the collector.
    let _ = prometheus_client::encoding::text::encode_registry(out, &registry);
}

/// `# HELP` and `# TYPE` in the classic format: counters and infos are named
/// after their samples (`_total`, `_info`), infos are gauges, and there is
/// no `# UNIT`.
fn write_classic_descriptor(out: &mut String, family: &Family) {
    let instrument = family.instrument;
    let name = instrument.prometheus_family();
    let (name, kind) = match instrument.kind {
        Kind::Counter => (format!("{name}_total"), "counter"),
        Kind::Info => (format!("{name}_info"), "gauge"),
        Kind::UpDownCounter | Kind::Gauge => (name, "gauge"),
        Kind::Histogram => (name, "histogram"),
    };
    let help = instrument.help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Families to encode, as a prometheus-client collector.
#[derive(Debug)]
struct Families(Vec<Family>);

type Labels = Vec<(&'static str, Cow<'static, str>)>;

impl Collector for Families {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for family in &self.0 {
            encode_family(&mut encoder, family)?;
        }
        Ok(())
    }
}

fn encode_family(encoder: &mut DescriptorEncoder, family: &Family) -> Result<(), std::fmt::Error> {
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
    for (labels, sample) in samples(family) {
        if labels.is_empty() || instrument.kind == Kind::Info {
            write_sample(&mut metric, instrument.kind, &labels, &sample)?;
        } else {
            let mut labelled = metric.encode_family(&labels)?;
            write_sample(&mut labelled, instrument.kind, &labels, &sample)?;
        }
    }
    Ok(())
}

fn write_sample(
    metric: &mut MetricEncoder<'_>,
    kind: Kind,
    labels: &Labels,
    sample: &Sample<'_>,
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
                created: None,
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
/// differ only in them are added up.
fn samples(family: &Family) -> Vec<(Labels, Sample<'_>)> {
    let mut out: Vec<(Labels, Sample<'_>)> = Vec::with_capacity(family.points.len());
    for point in &family.points {
        let labels: Labels = point
            .attributes
            .iter()
            .filter_map(|(attribute, value)| Some((attribute.prometheus?, value.to_label())))
            .collect();
        match &point.value {
            PointValue::Number(v) => match out.iter_mut().find(|(l, _)| *l == labels) {
                Some((_, Sample::Number(sum))) => *sum += v,
                _ => out.push((labels, Sample::Number(*v))),
            },
            PointValue::Histogram { bounds, data } => {
                out.push((labels, Sample::Histogram(bounds, data)))
            }
        }
    }
    out
}

/// Appends the families of an app's own registry to `body`, an exposition
/// of serverwatch's families in `format`: before the `# EOF` of
/// OpenMetrics, respelled for the classic text format, as more messages of
/// the protobuf one.
pub(crate) fn append_registry(body: &mut Vec<u8>, registry: &Registry, format: Format) {
    if format == Format::Protobuf {
        // Writing into a Vec cannot fail, nor can a registry's metrics.
        if let Ok(theirs) =
            prometheus_client::encoding::prometheus_protobuf::encode_to_vec(registry)
        {
            body.extend(theirs);
        }
        return;
    }
    let mut theirs = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode_registry(&mut theirs, registry);
    match format {
        Format::OpenMetrics => {
            let eof = b"# EOF\n";
            if body.ends_with(eof) {
                body.truncate(body.len() - eof.len());
            }
            body.extend(theirs.as_bytes());
            body.extend(eof);
        }
        Format::Prometheus | Format::Protobuf => {
            body.extend(classic_from_openmetrics(&theirs).as_bytes());
        }
    }
}

/// The family names an app's registry puts on `/metrics` (as in its
/// `# TYPE` lines), for the builder to check against serverwatch's.
pub(crate) fn registry_families(registry: &Registry) -> Vec<String> {
    let mut text = String::new();
    let _ = prometheus_client::encoding::text::encode_registry(&mut text, registry);
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next())
        .map(str::to_owned)
        .collect()
}

/// OpenMetrics text, as prometheus-client writes it, in the classic
/// format: counters and infos named after their samples, no `# UNIT`, no
/// exemplars, no `_created` samples (the classic format has none of them).
fn classic_from_openmetrics(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut help: Option<(&str, &str)> = None;
    let mut kind = "";
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = Some(rest.split_once(' ').unwrap_or((rest, "")));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, given) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            kind = given;
            let (classic, classic_kind) = match given {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "gauge" | "histogram" | "summary" => (name.to_owned(), given),
                _ => (name.to_owned(), "untyped"),
            };
            if let Some((_, text)) = help.take().filter(|(n, _)| *n == name) {
                let _ = writeln!(out, "# HELP {classic} {text}");
            }
            let _ = writeln!(out, "# TYPE {classic} {classic_kind}");
        } else if !line.starts_with('#') && !line.is_empty() {
            let sample = line.split(" # ").next().unwrap_or(line);
            let name = sample.split(['{', ' ']).next().unwrap_or("");
            if name.ends_with("_created") && matches!(kind, "counter" | "histogram" | "summary") {
                continue;
            }
            out.push_str(sample);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_format_names_counters_and_infos_after_their_samples() {
        use crate::instruments as i;
        let families = || {
            vec![
                Family::new(&i::PROCESS_CPU_TIME).number(Vec::new(), 1.5),
                Family::new(&i::BUILD_INFO).number(
                    vec![(&i::SERVICE_NAME, crate::state::reading::Value::Bool(true))],
                    1.0,
                ),
                Family::new(&i::PROCESS_THREADS).number(Vec::new(), 2.0),
            ]
        };
        let help = |instrument: &crate::instruments::Instrument| instrument.help;
        let text = |format| String::from_utf8(encode(families(), format)).unwrap();
        assert_eq!(
            text(Format::Prometheus),
            format!(
                "# HELP process_cpu_seconds_total {}\n# TYPE process_cpu_seconds_total counter\n\
                 process_cpu_seconds_total 1.5\n\
                 # HELP serverwatch_build_info {}\n# TYPE serverwatch_build_info gauge\n\
                 serverwatch_build_info{{service_name=\"true\"}} 1\n\
                 # HELP process_threads {}\n# TYPE process_threads gauge\nprocess_threads 2.0\n",
                help(&i::PROCESS_CPU_TIME),
                help(&i::BUILD_INFO),
                help(&i::PROCESS_THREADS)
            )
        );
        let om = text(Format::OpenMetrics);
        assert!(om.contains("# TYPE process_cpu_seconds counter\n"), "{om}");
        assert!(om.ends_with("# EOF\n"));
    }

    #[test]
    fn a_registry_is_respelled_for_the_classic_format() {
        use prometheus_client::metrics::{counter::Counter, info::Info};
        let mut registry = Registry::default();
        let counter: Counter = Counter::default();
        counter.inc_by(3);
        registry.register("orders", "Orders placed", counter);
        registry.register("release", "The release", Info::new(vec![("name", "blue")]));
        let mut body = Vec::new();
        append_registry(&mut body, &registry, Format::Prometheus);
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "# HELP orders_total Orders placed.\n# TYPE orders_total counter\norders_total 3\n\
             # HELP release_info The release.\n# TYPE release_info gauge\n\
             release_info{name=\"blue\"} 1\n"
        );
        let mut om = b"x 1\n# EOF\n".to_vec();
        append_registry(&mut om, &registry, Format::OpenMetrics);
        let om = String::from_utf8(om).unwrap();
        assert!(om.starts_with("x 1\n# HELP orders"), "{om}");
        assert!(
            om.ends_with("# EOF\n") && om.matches("# EOF").count() == 1,
            "{om}"
        );
        assert_eq!(registry_families(&registry), ["orders", "release"]);
    }

    #[test]
    fn negotiates_the_format_the_scraper_prefers() {
        let prometheus_2 = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                            version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus_2)), Format::OpenMetrics);
        let native = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;\
                      encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
        assert_eq!(Format::negotiate(Some(native)), Format::Protobuf);
        let text_only = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;\
                         encoding=delimited;q=0.1,text/plain;q=0.9";
        assert_eq!(Format::negotiate(Some(text_only)), Format::Prometheus);
        let other_proto = "application/vnd.google.protobuf;proto=other.Message;encoding=delimited";
        assert_eq!(Format::negotiate(Some(other_proto)), Format::Prometheus);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Prometheus);
        assert_eq!(
            Format::negotiate(Some("application/json")),
            Format::Prometheus
        );
        assert_eq!(Format::negotiate(None), Format::Prometheus);
    }

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
