//! `/metrics`: every instrument encoded by `prometheus-client` at scrape
//! time, as OpenMetrics when the scraper asks for it and as the classic
//! Prometheus text format (0.0.4) otherwise.

use std::borrow::Cow;
use std::fmt::Write as _;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::instruments::Kind;
use crate::state::histogram::HistogramSnapshot;
use crate::state::reading::{Family, PointValue};

/// Content type of the OpenMetrics text format.
pub(crate) const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the classic Prometheus text format.
pub(crate) const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The two text formats served at `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    OpenMetrics,
    Prometheus,
}

impl Format {
    /// OpenMetrics when the `Accept` header names it, the classic format
    /// otherwise (what curl and older scrapers get).
    pub(crate) fn negotiate(accept: Option<&str>) -> Self {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Format::Prometheus => PROMETHEUS_CONTENT_TYPE,
        }
    }
}

/// Encodes `families` in `format`.
pub(crate) fn encode(families: Vec<Family>, format: Format) -> String {
    let mut text = String::with_capacity(16 * 1024);
    match format {
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
    text
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
            metric.encode_histogram::<NoLabelSet>(h.sum, h.count, &buckets, None)
        }
    }
}

enum Sample<'a> {
    Number(f64),
    Histogram(&'static [f64], &'a HistogramSnapshot),
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
        assert_eq!(
            encode(families(), Format::Prometheus),
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
        let om = encode(families(), Format::OpenMetrics);
        assert!(om.contains("# TYPE process_cpu_seconds counter\n"), "{om}");
        assert!(om.ends_with("# EOF\n"));
    }

    #[test]
    fn negotiates_openmetrics_only_when_asked() {
        let prometheus_2 = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                            version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus_2)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Prometheus);
        assert_eq!(Format::negotiate(None), Format::Prometheus);
    }
}
