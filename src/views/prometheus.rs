//! `/metrics`: every instrument in the Prometheus text formats, as
//! OpenMetrics when the scraper asks for it and as the classic text format
//! (0.0.4) otherwise, gzip-compressed when the scraper accepts it.
//!
//! The text is written here, byte for byte as `prometheus-client`'s encoder
//! writes it (a test holds it to that): at 10 000 label sets that encoder
//! spends most of a scrape encoding each label set again for every bucket
//! line, through `fmt::Write` trait objects. Here each label set is written
//! once per point and the bucket lines are copied around it. With gzip, the
//! text is compressed as it is written, so a scrape holds only its
//! compressed form.

use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, header};

use crate::instruments::{Instrument, Kind};
use crate::state::histogram::HistogramSnapshot;
use crate::state::reading::{Family, PointValue, Value};

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

/// Whether the body is gzip-compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Identity,
    Gzip,
}

impl Encoding {
    /// gzip when `Accept-Encoding` accepts it (by name or by `*`) with a
    /// q-value above zero, identity otherwise. Written here because the only
    /// choice is gzip or not; tower-http's CompressionLayer, which also
    /// negotiates, would compress only once the whole text is built.
    pub(crate) fn negotiate(accept_encoding: Option<&str>) -> Self {
        let Some(header) = accept_encoding else {
            return Encoding::Identity;
        };
        let mut gzip = None;
        let mut any = None;
        for item in header.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                gzip = Some(q);
            } else if coding == "*" {
                any = Some(q);
            }
        }
        match gzip.or(any) {
            Some(q) if q > 0.0 => Encoding::Gzip,
            _ => Encoding::Identity,
        }
    }

    /// The `Content-Encoding` value, if any.
    pub(crate) fn header(self) -> Option<&'static str> {
        match self {
            Encoding::Identity => None,
            Encoding::Gzip => Some("gzip"),
        }
    }
}

/// The `/metrics` response to a scrape with these request headers.
pub(crate) fn response(families: &[Family], request: &HeaderMap) -> Response {
    let text = |name| {
        request
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let format = Format::negotiate(text(header::ACCEPT));
    let encoding = Encoding::negotiate(text(header::ACCEPT_ENCODING));
    // The size of the last text this process wrote: only a capacity hint,
    // which spares the body most of its reallocations.
    static LAST_SIZE: AtomicUsize = AtomicUsize::new(16 * 1024);
    let (body, text_size) = encode(
        families,
        format,
        encoding,
        LAST_SIZE.load(Ordering::Relaxed),
    );
    LAST_SIZE.store(text_size, Ordering::Relaxed);
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if let Some(encoding) = encoding.header() {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    response
}

/// How much text is written before it is handed to the compressor.
const CHUNK: usize = 64 * 1024;

/// Encodes `families` in `format`, compressed as `encoding` says;
/// `size_hint` is the size of the text of the last scrape. Returns the body
/// and the size of the text.
fn encode(
    families: &[Family],
    format: Format,
    encoding: Encoding,
    size_hint: usize,
) -> (Vec<u8>, usize) {
    match encoding {
        Encoding::Identity => {
            let mut text = Vec::with_capacity(size_hint);
            write_text(families, format, &mut text, |_| {});
            let size = text.len();
            (text, size)
        }
        Encoding::Gzip => {
            let mut gzip = flate2::write::GzEncoder::new(
                Vec::with_capacity(size_hint / 16),
                flate2::Compression::fast(),
            );
            let mut chunk = Vec::with_capacity(2 * CHUNK);
            let mut size = 0;
            // Writing into a Vec cannot fail.
            write_text(families, format, &mut chunk, |text| {
                size += text.len();
                let _ = gzip.write_all(text);
                text.clear();
            });
            (gzip.finish().unwrap_or_default(), size)
        }
    }
}

/// Writes the text into `out`, handing it to `flush` whenever it holds
/// more than [`CHUNK`] bytes (`flush` may leave it as it is).
fn write_text(
    families: &[Family],
    format: Format,
    out: &mut Vec<u8>,
    mut flush: impl FnMut(&mut Vec<u8>),
) {
    let mut labels = Vec::with_capacity(256);
    let mut numbers: Vec<(Vec<u8>, f64)> = Vec::new();
    for family in families {
        let instrument = family.instrument;
        let name = instrument.prometheus_family();
        write_descriptor(out, instrument, &name, format);
        numbers.clear();
        let mut buckets = Buckets::default();
        for point in &family.points {
            labels.clear();
            write_labels(&mut labels, &point.attributes);
            match &point.value {
                // Points that differ only in attributes without a
                // Prometheus label (`cpu.mode`) are one sample, added up.
                PointValue::Number(v) => match numbers.iter_mut().find(|(l, _)| *l == labels) {
                    Some((_, sum)) => *sum += v,
                    None => numbers.push((labels.clone(), *v)),
                },
                PointValue::Histogram { bounds, data } => {
                    buckets.prepare(&name, bounds);
                    write_histogram(out, &name, &labels, &buckets, data);
                }
            }
            if out.len() > CHUNK {
                flush(out);
            }
        }
        for (labels, value) in &numbers {
            write_number(out, instrument.kind, &name, labels, *value);
        }
    }
    if format == Format::OpenMetrics {
        out.extend_from_slice(b"# EOF\n");
    }
    flush(out);
}

/// `# HELP`, `# TYPE` and, in OpenMetrics, `# UNIT`. The classic format
/// names counters and infos after their samples (`_total`, `_info`), has
/// infos as gauges and no units.
fn write_descriptor(out: &mut Vec<u8>, instrument: &Instrument, name: &str, format: Format) {
    let (suffix, kind) = match (format, instrument.kind) {
        (_, Kind::UpDownCounter | Kind::Gauge) => ("", "gauge"),
        (_, Kind::Histogram) => ("", "histogram"),
        (Format::OpenMetrics, Kind::Counter) => ("", "counter"),
        (Format::OpenMetrics, Kind::Info) => ("", "info"),
        (Format::Prometheus, Kind::Counter) => ("_total", "counter"),
        (Format::Prometheus, Kind::Info) => ("_info", "gauge"),
    };
    for (keyword, text) in [("# HELP ", None), ("# TYPE ", Some(kind))] {
        out.extend_from_slice(keyword.as_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(suffix.as_bytes());
        out.push(b' ');
        match text {
            Some(kind) => out.extend_from_slice(kind.as_bytes()),
            None => escape_help(out, instrument.help),
        }
        out.push(b'\n');
    }
    if let (Format::OpenMetrics, Some(unit)) = (format, instrument.unit.prometheus()) {
        out.extend_from_slice(b"# UNIT ");
        out.extend_from_slice(name.as_bytes());
        out.push(b' ');
        out.extend_from_slice(unit.as_str().as_bytes());
        out.push(b'\n');
    }
}

/// Help text with backslashes and newlines escaped, as both formats want.
fn escape_help(out: &mut Vec<u8>, help: &str) {
    for byte in help.bytes() {
        match byte {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            _ => out.push(byte),
        }
    }
}

/// `key="value",…` of the attributes that are Prometheus labels, values
/// escaped.
fn write_labels(out: &mut Vec<u8>, attributes: &[(&'static crate::instruments::Attribute, Value)]) {
    let mut first = true;
    for (attribute, value) in attributes {
        let Some(key) = attribute.prometheus else {
            continue;
        };
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"=\"");
        match value {
            Value::Str(s) => escape_label(out, s),
            Value::Int(n) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
            Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        }
        out.push(b'"');
    }
}

fn escape_label(out: &mut Vec<u8>, value: &str) {
    if !value.bytes().any(|b| matches!(b, b'\\' | b'"' | b'\n')) {
        out.extend_from_slice(value.as_bytes());
        return;
    }
    for byte in value.bytes() {
        match byte {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            _ => out.push(byte),
        }
    }
}

/// `name{labels}` or `name` when there are none.
fn write_name(out: &mut Vec<u8>, name: &str, suffix: &str, labels: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(suffix.as_bytes());
    if !labels.is_empty() {
        out.push(b'{');
        out.extend_from_slice(labels);
        out.push(b'}');
    }
}

fn write_number(out: &mut Vec<u8>, kind: Kind, name: &str, labels: &[u8], value: f64) {
    match kind {
        Kind::Counter => write_name(out, name, "_total", labels),
        // An info's labels are its value; it is always 1.
        Kind::Info => {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"_info{");
            out.extend_from_slice(labels);
            out.extend_from_slice(b"} 1\n");
            return;
        }
        _ => write_name(out, name, "", labels),
    }
    out.push(b' ');
    out.extend_from_slice(dtoa::Buffer::new().format(value).as_bytes());
    out.push(b'\n');
}

/// The start of each bucket line of a family, `name_bucket{le="…"`, made
/// once per family.
#[derive(Debug, Default)]
struct Buckets {
    bounds: Option<&'static [f64]>,
    lines: Vec<Vec<u8>>,
}

impl Buckets {
    fn prepare(&mut self, name: &str, bounds: &'static [f64]) {
        if self.bounds == Some(bounds) {
            return;
        }
        self.bounds = Some(bounds);
        self.lines = bounds
            .iter()
            .map(|b| dtoa::Buffer::new().format(*b).to_owned())
            .chain(["+Inf".to_owned()])
            .map(|le| format!("{name}_bucket{{le=\"{le}\"").into_bytes())
            .collect();
    }
}

/// `_sum`, `_count`, then each bucket, cumulative, as prometheus-client
/// orders them (`le` first among the labels).
fn write_histogram(
    out: &mut Vec<u8>,
    name: &str,
    labels: &[u8],
    buckets: &Buckets,
    h: &HistogramSnapshot,
) {
    write_name(out, name, "_sum", labels);
    out.push(b' ');
    out.extend_from_slice(dtoa::Buffer::new().format(h.sum).as_bytes());
    out.push(b'\n');
    write_name(out, name, "_count", labels);
    out.push(b' ');
    out.extend_from_slice(itoa::Buffer::new().format(h.count).as_bytes());
    out.push(b'\n');
    let mut cumulative = 0u64;
    let mut number = itoa::Buffer::new();
    for (line, n) in buckets.lines.iter().zip(&h.buckets) {
        cumulative += n;
        out.extend_from_slice(line);
        if !labels.is_empty() {
            out.push(b',');
            out.extend_from_slice(labels);
        }
        out.extend_from_slice(b"} ");
        out.extend_from_slice(number.format(cumulative).as_bytes());
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::instruments as i;

    fn text(families: &[Family], format: Format) -> String {
        String::from_utf8(encode(families, format, Encoding::Identity, 0).0).unwrap()
    }

    #[test]
    fn classic_format_names_counters_and_infos_after_their_samples() {
        let families = vec![
            Family::new(&i::PROCESS_CPU_TIME).number(Vec::new(), 1.5),
            Family::new(&i::BUILD_INFO).number(vec![(&i::SERVICE_NAME, Value::Bool(true))], 1.0),
            Family::new(&i::PROCESS_THREADS).number(Vec::new(), 2.0),
        ];
        let help = |instrument: &crate::instruments::Instrument| instrument.help;
        assert_eq!(
            text(&families, Format::Prometheus),
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
        let om = text(&families, Format::OpenMetrics);
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

    #[test]
    fn negotiates_gzip_by_name_or_star_with_a_positive_q() {
        use Encoding::{Gzip, Identity};
        for (header, want) in [
            (None, Identity),
            (Some("gzip"), Gzip),
            // What Prometheus sends.
            (Some("gzip"), Gzip),
            (Some("deflate, GZIP;q=0.5"), Gzip),
            (Some("br;q=1.0, gzip;q=0.8, *;q=0.1"), Gzip),
            (Some("*"), Gzip),
            (Some("identity"), Identity),
            (Some("gzip;q=0"), Identity),
            (Some("gzip; q=0.000"), Identity),
            (Some("*;q=0"), Identity),
            (Some("gzip;q=0, *"), Identity),
            (Some("br, deflate"), Identity),
            (Some(""), Identity),
        ] {
            assert_eq!(Encoding::negotiate(header), want, "{header:?}");
        }
    }

    /// The families of a busy service: histograms with and without labels,
    /// labels that need escaping, numbers added up over `cpu.mode`, every
    /// kind.
    fn sample_families() -> Vec<Family> {
        let route = |r: &'static str| {
            vec![
                (&i::HTTP_REQUEST_METHOD, Value::Str(Cow::Borrowed("GET"))),
                (&i::HTTP_ROUTE, Value::Str(Cow::Borrowed(r))),
                (&i::HTTP_RESPONSE_STATUS_CODE, Value::Int(200)),
            ]
        };
        let h = |count: u64| HistogramSnapshot {
            count,
            sum: count as f64 * 0.0123,
            max: 0.5,
            buckets: (0..15).map(|b| if b == 3 { count } else { 0 }).collect(),
        };
        let bounds = &i::DURATION_BOUNDS_SECONDS;
        let mode = |m: &'static str| vec![(&i::CPU_MODE, Value::Str(Cow::Borrowed(m)))];
        vec![
            Family::new(&i::HTTP_SERVER_REQUEST_DURATION)
                .histogram(route("/items/{id}"), bounds, h(7))
                .histogram(route("/a \"quoted\" \\ path\nnext"), bounds, h(1))
                .histogram(
                    crate::state::reading::overflow_attributes(Some(Cow::Borrowed("500"))),
                    bounds,
                    h(0),
                ),
            Family::new(&i::HTTP_SERVER_REQUEST_BODY_SIZE).histogram(
                Vec::new(),
                &i::BODY_SIZE_BOUNDS_BYTES,
                HistogramSnapshot {
                    count: 2,
                    sum: 70000.0,
                    max: 69000.0,
                    buckets: vec![1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0],
                },
            ),
            Family::new(&i::HTTP_SERVER_ACTIVE_REQUESTS)
                .number(
                    vec![(&i::HTTP_REQUEST_METHOD, Value::Str(Cow::Borrowed("GET")))],
                    3.0,
                )
                .number(
                    vec![(&i::HTTP_REQUEST_METHOD, Value::Str(Cow::Borrowed("POST")))],
                    0.0,
                ),
            Family::new(&i::PROCESS_CPU_TIME)
                .number(mode("user"), 1.25)
                .number(mode("system"), 0.5),
            Family::new(&i::PROCESS_RESIDENT_MEMORY).number(Vec::new(), 123456789.0),
            Family::new(&i::PROCESS_START_TIME).number(Vec::new(), 1.7e9 + 0.25),
            Family::new(&i::BUILD_INFO).number(
                vec![
                    (&i::SERVERWATCH_VERSION, Value::Str(Cow::Borrowed("0.1.0"))),
                    (&i::SERVICE_NAME, Value::Str(Cow::Borrowed("svc"))),
                ],
                1.0,
            ),
            Family::new(&i::SYSTEM_MEMORY_USAGE),
        ]
    }

    #[test]
    fn the_text_is_what_prometheus_client_writes() {
        let families = sample_families();
        assert_eq!(
            text(&families, Format::OpenMetrics),
            reference::openmetrics(&families)
        );
        assert_eq!(
            text(&families, Format::Prometheus),
            reference::classic(&families)
        );
    }

    #[test]
    fn gzip_holds_the_same_text() {
        use std::io::Read as _;
        let families = sample_families();
        for format in [Format::OpenMetrics, Format::Prometheus] {
            let (gzip, size) = encode(&families, format, Encoding::Gzip, 0);
            let mut unzipped = String::new();
            flate2::read::GzDecoder::new(gzip.as_slice())
                .read_to_string(&mut unzipped)
                .unwrap();
            assert_eq!(unzipped, text(&families, format));
            assert_eq!(size, unzipped.len());
        }
    }

    /// prometheus-client's text encoder, fed the same families: what the
    /// text above must equal.
    mod reference {
        use std::borrow::Cow;

        use prometheus_client::collector::Collector;
        use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
        use prometheus_client::metrics::MetricType;
        use prometheus_client::registry::Registry;

        use super::super::write_descriptor;
        use super::*;

        pub(super) fn openmetrics(families: &[Family]) -> String {
            let mut text = String::new();
            encode_registry(&mut text, families);
            prometheus_client::encoding::text::encode_eof(&mut text).unwrap();
            text
        }

        /// The classic format: our descriptors, then prometheus-client's
        /// sample lines, which are the same in both formats.
        pub(super) fn classic(families: &[Family]) -> String {
            let mut text = String::new();
            for family in families {
                let mut descriptor = Vec::new();
                write_descriptor(
                    &mut descriptor,
                    family.instrument,
                    &family.instrument.prometheus_family(),
                    Format::Prometheus,
                );
                text.push_str(std::str::from_utf8(&descriptor).unwrap());
                let mut one = String::new();
                encode_registry(&mut one, std::slice::from_ref(family));
                for line in one.lines().filter(|l| !l.starts_with('#')) {
                    text.push_str(line);
                    text.push('\n');
                }
            }
            text
        }

        fn encode_registry(out: &mut String, families: &[Family]) {
            let copies: Vec<Family> = families
                .iter()
                .map(|f| Family {
                    instrument: f.instrument,
                    points: f
                        .points
                        .iter()
                        .map(|p| crate::state::reading::Point {
                            attributes: p.attributes.clone(),
                            value: p.value.clone(),
                        })
                        .collect(),
                })
                .collect();
            let mut registry = Registry::default();
            registry.register_collector(Box::new(Families(copies)));
            prometheus_client::encoding::text::encode_registry(out, &registry).unwrap();
        }

        fn label(value: &Value) -> Cow<'static, str> {
            match value {
                Value::Str(s) => s.clone(),
                Value::Int(n) => Cow::Owned(n.to_string()),
                Value::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            }
        }

        #[derive(Debug)]
        struct Families(Vec<Family>);

        type Labels = Vec<(&'static str, Cow<'static, str>)>;

        impl Collector for Families {
            fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
                for family in &self.0 {
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
                    let mut numbers: Vec<(Labels, f64)> = Vec::new();
                    let mut histograms = Vec::new();
                    for point in &family.points {
                        let labels: Labels = point
                            .attributes
                            .iter()
                            .filter_map(|(a, v)| Some((a.prometheus?, label(v))))
                            .collect();
                        match &point.value {
                            PointValue::Number(v) => {
                                match numbers.iter_mut().find(|(l, _)| *l == labels) {
                                    Some((_, sum)) => *sum += v,
                                    None => numbers.push((labels, *v)),
                                }
                            }
                            PointValue::Histogram { bounds, data } => {
                                histograms.push((labels, *bounds, data))
                            }
                        }
                    }
                    for (labels, bounds, h) in histograms {
                        let buckets: Vec<(f64, u64)> = bounds
                            .iter()
                            .copied()
                            .chain([f64::INFINITY])
                            .zip(h.buckets.iter().copied())
                            .collect();
                        if labels.is_empty() {
                            metric
                                .encode_histogram::<NoLabelSet>(h.sum, h.count, &buckets, None)?;
                        } else {
                            metric
                                .encode_family(&labels)?
                                .encode_histogram::<NoLabelSet>(h.sum, h.count, &buckets, None)?;
                        }
                    }
                    for (labels, v) in numbers {
                        match instrument.kind {
                            Kind::Info => metric.encode_info(&labels)?,
                            Kind::Counter if labels.is_empty() => {
                                metric.encode_counter::<NoLabelSet, _, f64>(&v, None)?
                            }
                            Kind::Counter => metric
                                .encode_family(&labels)?
                                .encode_counter::<NoLabelSet, _, f64>(&v, None)?,
                            _ if labels.is_empty() => metric.encode_gauge(&v)?,
                            _ => metric.encode_family(&labels)?.encode_gauge(&v)?,
                        }
                    }
                }
                Ok(())
            }
        }
    }
}
