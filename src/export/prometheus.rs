//! `/metrics`: every instrument encoded by `prometheus-client` at scrape
//! time, as OpenMetrics when the scraper asks for it and as the classic
//! Prometheus text format (0.0.4) otherwise.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::points::{self, Family, PointValue};
use crate::Shared;
use crate::histogram::HistogramSnapshot;
use crate::instruments::Kind;

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

/// The registry `/metrics` encodes: one collector that reads the shared state.
pub(crate) fn registry(shared: Arc<Shared>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(StateCollector(shared)));
    registry
}

/// Encodes `registry` in `format`.
pub(crate) fn encode(registry: &Registry, format: Format) -> String {
    let mut text = String::with_capacity(16 * 1024);
    // Writing into a String cannot fail; the collector only fails on that.
    prometheus_client::encoding::text::encode(&mut text, registry).expect("encoding into a String");
    match format {
        Format::OpenMetrics => text,
        Format::Prometheus => to_classic(&text),
    }
}

/// Rewrites prometheus-client's OpenMetrics text as the classic format:
/// counters and infos are named after their samples (`_total`, `_info`), the
/// `# UNIT` lines and `# EOF` go, and infos become gauges.
fn to_classic(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut lines = openmetrics.lines().peekable();
    while let Some(line) = lines.next() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let Some(rest) = line.strip_prefix("# HELP ") else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        // prometheus-client writes HELP, then TYPE, for every family.
        let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
        let kind = lines
            .peek()
            .and_then(|t| t.strip_prefix("# TYPE "))
            .and_then(|t| t.rsplit_once(' '))
            .map_or("untyped", |(_, kind)| kind);
        let (name, kind) = match kind {
            "counter" => (Cow::Owned(format!("{name}_total")), "counter"),
            "info" => (Cow::Owned(format!("{name}_info")), "gauge"),
            other => (Cow::Borrowed(name), other),
        };
        lines.next();
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
    }
    out
}

/// Produces every metric from the shared state when `/metrics` is read.
#[derive(Debug)]
struct StateCollector(Arc<Shared>);

type Labels = Vec<(&'static str, Cow<'static, str>)>;

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for family in points::read(&self.0) {
            encode_family(&mut encoder, &family)?;
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
        let om = "# HELP process_cpu_seconds CPU.\n# TYPE process_cpu_seconds counter\n\
                  # UNIT process_cpu_seconds seconds\nprocess_cpu_seconds_total 1.5\n\
                  # HELP sw_build Versions.\n# TYPE sw_build info\nsw_build_info{v=\"1\"} 1\n\
                  # HELP g A gauge.\n# TYPE g gauge\ng 2\n# EOF\n";
        assert_eq!(
            to_classic(om),
            "# HELP process_cpu_seconds_total CPU.\n# TYPE process_cpu_seconds_total counter\n\
             process_cpu_seconds_total 1.5\n\
             # HELP sw_build_info Versions.\n# TYPE sw_build_info gauge\nsw_build_info{v=\"1\"} 1\n\
             # HELP g A gauge.\n# TYPE g gauge\ng 2\n"
        );
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
