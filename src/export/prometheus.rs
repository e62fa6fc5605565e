//! `/metrics`: every instrument encoded by `prometheus-client` at scrape
//! time, as OpenMetrics when the scraper asks for it and as the classic
//! Prometheus text format (0.0.4) otherwise.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::Shared;
use crate::histogram::HistogramSnapshot;
use crate::http::store::SeriesSnapshot;
use crate::instruments::{self as i, Attribute, Instrument, Kind};

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

/// Selects one of the histograms of a series.
type PickHistogram = fn(&SeriesSnapshot) -> &HistogramSnapshot;

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let shared = &self.0;
        encode_requests(shared, &mut encoder)?;
        encode_system(shared, &mut encoder)?;
        let mut info = family(&mut encoder, &i::BUILD_INFO)?;
        info.encode_info(&vec![
            ("serverwatch_version", env!("CARGO_PKG_VERSION")),
            ("service_name", shared.config.service_name.as_str()),
            ("service_version", shared.config.service_version.as_str()),
        ])
    }
}

fn family<'a>(
    encoder: &'a mut DescriptorEncoder,
    instrument: &'a Instrument,
) -> Result<prometheus_client::encoding::MetricEncoder<'a>, std::fmt::Error> {
    let kind = match instrument.kind {
        Kind::Counter => MetricType::Counter,
        Kind::Gauge => MetricType::Gauge,
        Kind::Histogram => MetricType::Histogram,
        Kind::Info => MetricType::Info,
    };
    encoder.encode_descriptor(
        instrument.prometheus_name,
        instrument.help,
        instrument.unit.prometheus(),
        kind,
    )
}

fn encode_requests(
    shared: &Shared,
    encoder: &mut DescriptorEncoder,
) -> Result<(), std::fmt::Error> {
    let store = &shared.requests;
    let series = store.snapshot();
    let labels: Vec<Labels> = series
        .iter()
        .map(|s| match &s.key {
            None => vec![(i::OVERFLOW.prometheus, Cow::Borrowed("true"))],
            Some(key) => {
                let mut l: Labels = vec![
                    (
                        i::HTTP_REQUEST_METHOD.prometheus,
                        Cow::Borrowed(key.method.as_str()),
                    ),
                    (i::HTTP_ROUTE.prometheus, Cow::Owned(key.route.to_string())),
                    (
                        i::HTTP_RESPONSE_STATUS_CODE.prometheus,
                        Cow::Owned(key.status.to_string()),
                    ),
                ];
                if let Some(error) = key.error_type() {
                    l.push((i::ERROR_TYPE.prometheus, Cow::Owned(error)));
                }
                l
            }
        })
        .collect();

    let histograms: [(&Instrument, &[f64], PickHistogram); 3] = [
        (
            &i::HTTP_SERVER_REQUEST_DURATION,
            store.duration_bounds.exported,
            |s| &s.duration,
        ),
        (
            &i::HTTP_SERVER_REQUEST_BODY_SIZE,
            store.size_bounds.exported,
            |s| &s.request_size,
        ),
        (
            &i::HTTP_SERVER_RESPONSE_BODY_SIZE,
            store.size_bounds.exported,
            |s| &s.response_size,
        ),
    ];
    for (instrument, bounds, pick) in histograms {
        let mut metric = family(encoder, instrument)?;
        for (s, labels) in series.iter().zip(&labels) {
            let h = pick(s);
            let buckets: Vec<(f64, u64)> = bounds
                .iter()
                .copied()
                .chain([f64::INFINITY])
                .zip(h.buckets.iter().copied())
                .collect();
            metric
                .encode_family(labels)?
                .encode_histogram::<NoLabelSet>(h.sum, h.count, &buckets, None)?;
        }
    }

    let mut active = family(encoder, &i::HTTP_SERVER_ACTIVE_REQUESTS)?;
    for (method, n) in store.active() {
        let labels = [(i::HTTP_REQUEST_METHOD.prometheus, method.as_str())];
        ConstGauge::new(n).encode(active.encode_family(&labels)?)?;
    }
    Ok(())
}

fn encode_system(shared: &Shared, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let s = shared.system.snapshot();
    let p = &s.process;
    let gauges: [(&Instrument, f64); 5] = [
        (&i::PROCESS_RESIDENT_MEMORY, p.resident_bytes as f64),
        (&i::PROCESS_VIRTUAL_MEMORY, p.virtual_bytes as f64),
        (&i::PROCESS_START_TIME, p.start_time_seconds as f64),
        (&i::PROCESS_UPTIME, s.uptime_seconds),
        (&i::PROCESS_THREADS, p.threads as f64),
    ];
    for (instrument, value) in gauges {
        ConstGauge::new(value).encode(family(encoder, instrument)?)?;
    }
    for (instrument, value) in [
        (&i::PROCESS_OPEN_FDS, p.open_fds),
        (&i::PROCESS_MAX_FDS, p.max_fds),
    ] {
        if let Some(value) = value {
            ConstGauge::new(value as f64).encode(family(encoder, instrument)?)?;
        }
    }
    ConstCounter::new(p.cpu_seconds).encode(family(encoder, &i::PROCESS_CPU_TIME)?)?;

    let m = &s.memory;
    let memory = [
        ("used", m.used),
        ("free", m.free),
        ("buffers", m.buffers),
        ("cached", m.cached),
    ];
    labelled_gauges(
        encoder,
        &i::SYSTEM_MEMORY_USAGE,
        &i::SYSTEM_MEMORY_STATE,
        &memory,
    )?;
    ConstGauge::new(m.total as f64).encode(family(encoder, &i::SYSTEM_MEMORY_LIMIT)?)?;
    let swap = [("used", s.swap.used), ("free", s.swap.free)];
    labelled_gauges(
        encoder,
        &i::SYSTEM_PAGING_USAGE,
        &i::SYSTEM_PAGING_STATE,
        &swap,
    )
}

fn labelled_gauges(
    encoder: &mut DescriptorEncoder,
    instrument: &Instrument,
    attribute: &Attribute,
    values: &[(&str, u64)],
) -> Result<(), std::fmt::Error> {
    let mut metric = family(encoder, instrument)?;
    for (state, value) in values {
        let labels = [(attribute.prometheus, *state)];
        ConstGauge::new(*value as f64).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
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
