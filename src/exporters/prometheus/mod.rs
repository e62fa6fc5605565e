//! `/metrics`: every instrument in the format the scraper prefers: the
//! Prometheus protobuf format (with native histograms, [`collector`]),
//! OpenMetrics, or the classic text format (0.0.4), which is also the
//! default; gzip-compressed when the scraper accepts it.
//!
//! The text is written here, byte for byte as `prometheus-client`'s encoder
//! writes it (a test holds it to that): at 10 000 label sets that encoder
//! spends most of a scrape encoding each label set again for every bucket
//! line, through `fmt::Write` trait objects. Here each label set is written
//! once per point and the bucket lines are copied around it. The body is
//! written a chunk at a time as the connection takes it (compressed as it is
//! written, with gzip), so a scrape never holds its whole text.

mod collector;
mod escaping;
mod limits;
mod registry;

pub(crate) use limits::ScrapeLimits;

pub(crate) use registry::families as registry_families;

use std::io::Write as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, header};
use http_body::Frame;

use crate::model::exemplar::Exemplar;
use crate::model::family::{Family, PointValue, Value};
use crate::model::histogram::HistogramSnapshot;
use crate::model::instruments::{self as i, Instrument, Kind};
use crate::source::Sources;
use escaping::{Escaping, is_classic};

/// Content type of the OpenMetrics text format.
pub(crate) const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the classic Prometheus text format.
pub(crate) const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Content type of the Prometheus protobuf format, the one that carries
/// native histograms.
pub(crate) const PROTOBUF_CONTENT_TYPE: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

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
    /// none of them (what curl and older scrapers get). Parsed here: three
    /// media types with four parameters need no general content
    /// negotiation. With it, the `escaping=` the chosen type asked for: only
    /// the 1.0.0 text formats have one; protobuf keeps the classic names
    /// (its names need no escaping, and a scraper that allows UTF-8 takes
    /// classic ones) and says so.
    pub(crate) fn negotiate(accept: Option<&str>) -> (Self, Option<Escaping>) {
        let Some(accept) = accept else {
            return (Format::Prometheus, None);
        };
        let rank = |f: Format| match f {
            Format::Protobuf => 2,
            Format::OpenMetrics => 1,
            Format::Prometheus => 0,
        };
        let mut best: Option<(f64, Format, Option<Escaping>)> = None;
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default().to_ascii_lowercase();
            let (mut q, mut proto, mut encoding) = (1.0, None, None);
            let (mut version, mut escaping) = (None, None);
            for parameter in parts {
                let (name, value) = parameter.split_once('=').unwrap_or((parameter, ""));
                let value = value.trim().trim_matches('"');
                match name.trim().to_ascii_lowercase().as_str() {
                    "q" => q = value.parse().unwrap_or(0.0),
                    "proto" => proto = Some(value),
                    "encoding" => encoding = Some(value),
                    "version" => version = Some(value),
                    "escaping" => escaping = Escaping::parse(value),
                    _ => {}
                }
            }
            let format = match media.as_str() {
                "application/vnd.google.protobuf"
                    if proto == Some("io.prometheus.client.MetricFamily")
                        && encoding == Some("delimited") =>
                {
                    Format::Protobuf
                }
                "application/openmetrics-text" => Format::OpenMetrics,
                "text/plain" | "text/*" | "*/*" => Format::Prometheus,
                _ => continue,
            };
            let escaping = match format {
                Format::Protobuf => escaping.map(|_| Escaping::Underscores),
                _ if version == Some("1.0.0") => escaping,
                _ => None,
            };
            let better = match best {
                None => q > 0.0,
                Some((best_q, best_format, _)) => {
                    q > best_q || (q == best_q && rank(format) > rank(best_format))
                }
            };
            if better {
                best = Some((q, format, escaping));
            }
        }
        best.map_or((Format::Prometheus, None), |(_, format, escaping)| {
            (format, escaping)
        })
    }

    /// The `Content-Type` of the format, naming the escaping when one was
    /// negotiated (the text format is then 1.0.0, which may quote names).
    pub(crate) fn content_type(self, escaping: Option<Escaping>) -> HeaderValue {
        let base = match self {
            Format::Protobuf => PROTOBUF_CONTENT_TYPE,
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Format::Prometheus => PROMETHEUS_CONTENT_TYPE,
        };
        let Some(escaping) = escaping else {
            return HeaderValue::from_static(base);
        };
        let base = match self {
            Format::Prometheus => "text/plain; version=1.0.0; charset=utf-8",
            Format::Protobuf | Format::OpenMetrics => base,
        };
        HeaderValue::try_from(format!("{base}; escaping={}", escaping.as_str()))
            .unwrap_or_else(|_| HeaderValue::from_static(base))
    }
}

/// The settings of `/metrics` beside the families.
#[derive(Debug, Clone, Default)]
pub(crate) struct Exposition {
    /// Put before every serverwatch name, with `_`.
    pub(crate) prefix: Option<String>,
    /// `otel_scope_name` and `otel_scope_version` on every series but
    /// `target_info`.
    pub(crate) scope_labels: bool,
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
    /// choice is gzip or not: tower-http's CompressionLayer would bring
    /// async-compression into the library and copy each chunk once more.
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

/// The `/metrics` response to a scrape with these request headers: the
/// text of `families` and `target_info`, written (and compressed) a chunk at
/// a time as the connection takes it, with the prefix and `_` before every
/// name and the constant labels on every series, then the app's own
/// `registry` as it is.
pub(crate) fn response(
    mut families: Vec<Family>,
    sources: &Sources,
    registry: Option<&prometheus_client::registry::Registry>,
    request: &HeaderMap,
    exposition: &Exposition,
) -> Response {
    let text = |name| {
        request
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let (format, escaping) = Format::negotiate(text(header::ACCEPT));
    let encoding = Encoding::negotiate(text(header::ACCEPT_ENCODING));
    let theirs = registry
        .map(|r| registry::encode(r, format))
        .unwrap_or_default();
    families.push(Family::new(&i::TARGET_INFO).number(sources.resource(), 1.0));
    let labels = ExtraLabels::new(&sources.service.constant_labels, exposition.scope_labels);
    let body = match format {
        // A tenth of the text's size: encoded whole, compressed whole.
        Format::Protobuf => {
            let mut bytes = collector::protobuf(families, exposition.prefix.as_deref(), &labels);
            bytes.extend(theirs);
            Body::from(match encoding {
                Encoding::Identity => bytes,
                Encoding::Gzip => gzip(&bytes),
            })
        }
        Format::OpenMetrics | Format::Prometheus => {
            let text_format = if format == Format::OpenMetrics {
                TextFormat::OpenMetrics
            } else {
                TextFormat::Prometheus
            };
            let spelling = Spelling::new(
                exposition.prefix.as_deref(),
                escaping.unwrap_or(Escaping::Underscores),
                &labels,
            );
            Body::new(TextBody::new(
                Text::new(families, text_format, spelling).then(theirs),
                encoding,
            ))
        }
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, format.content_type(escaping));
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if let Some(encoding) = encoding.header() {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    response
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = gzip.write_all(bytes);
    gzip.finish().unwrap_or_default()
}

/// The two text formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextFormat {
    OpenMetrics,
    Prometheus,
}

/// How much text is written at a time: the size of a body chunk, or of
/// what is handed to the compressor.
const CHUNK: usize = 256 * 1024;

/// The body of a scrape: writes the next chunk of text when the connection
/// asks for one, so that writing overlaps sending and a scrape never holds
/// its whole text.
struct TextBody {
    text: Text,
    gzip: Option<flate2::write::GzEncoder<Vec<u8>>>,
    done: bool,
}

impl TextBody {
    fn new(text: Text, encoding: Encoding) -> Self {
        let gzip = (encoding == Encoding::Gzip)
            .then(|| flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        Self {
            text,
            gzip,
            done: false,
        }
    }

    /// The next chunk of the body; `None` at the end.
    fn next_chunk(&mut self) -> Option<Bytes> {
        while !self.done {
            let mut chunk = Vec::with_capacity(CHUNK + CHUNK / 4);
            self.done = !self.text.write(&mut chunk);
            let Some(gzip) = &mut self.gzip else {
                return Some(Bytes::from(chunk));
            };
            // Writing into a Vec cannot fail.
            let _ = gzip.write_all(&chunk);
            if self.done {
                let _ = gzip.try_finish();
            }
            // What the compressor has output so far; it may hold on to
            // small inputs.
            let compressed = std::mem::take(gzip.get_mut());
            if !compressed.is_empty() {
                return Some(Bytes::from(compressed));
            }
        }
        None
    }
}

impl http_body::Body for TextBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.get_mut().next_chunk().map(|c| Ok(Frame::data(c))))
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.gzip.as_ref().is_none_or(|g| g.get_ref().is_empty())
    }
}

/// The labels `/metrics` adds to every series: the constant labels, and
/// the instrumentation scope's when asked (never on `target_info`, which
/// is the resource's).
#[derive(Debug)]
struct ExtraLabels<'a> {
    constant: &'a [(String, String)],
    scope: bool,
}

impl<'a> ExtraLabels<'a> {
    fn new(constant: &'a [(String, String)], scope: bool) -> Self {
        Self { constant, scope }
    }

    /// The labels added to every series, or to `target_info`'s, in order.
    fn of(&self, target_info: bool) -> impl Iterator<Item = (&'a str, &'a str)> {
        let scope = (self.scope && !target_info).then_some([
            ("otel_scope_name", "serverwatch"),
            ("otel_scope_version", env!("CARGO_PKG_VERSION")),
        ]);
        self.constant
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .chain(scope.into_iter().flatten())
    }
}

/// Whether the family is `target_info`, the resource's: it carries the
/// constant labels only.
fn is_target_info(instrument: &Instrument) -> bool {
    std::ptr::eq(instrument, &i::TARGET_INFO)
}

/// How the names and labels of a text scrape are spelled.
#[derive(Debug, Default)]
struct Spelling {
    /// Written before every name, with `_`.
    prefix: Option<String>,
    escaping: Escaping,
    /// The added labels as label text, for every family but `target_info`,
    /// and for `target_info`.
    labels: Vec<u8>,
    target_labels: Vec<u8>,
}

impl Spelling {
    fn new(prefix: Option<&str>, escaping: Escaping, extra: &ExtraLabels<'_>) -> Self {
        let text = |target_info| {
            let mut out = Vec::new();
            for (name, value) in extra.of(target_info) {
                if !out.is_empty() {
                    out.push(b',');
                }
                write_label_name(&mut out, &escaping.escape(name));
                out.extend_from_slice(b"=\"");
                escape_label(&mut out, value);
                out.push(b'"');
            }
            out
        };
        Self {
            prefix: prefix.map(|p| format!("{p}_")),
            escaping,
            labels: text(false),
            target_labels: text(true),
        }
    }

    /// The family name of `instrument`: an info's without the `.info` that
    /// its samples' `_info` repeats.
    fn name(&self, instrument: &Instrument) -> Name {
        let classic = instrument.prometheus_family();
        let otel = match instrument.kind {
            Kind::Info => instrument.otel_name.trim_end_matches(".info"),
            _ => instrument.otel_name,
        };
        let text = match &self.prefix {
            Some(prefix) => self
                .escaping
                .name(&format!("{prefix}{otel}"), &format!("{prefix}{classic}"))
                .into_owned(),
            None => self.escaping.name(otel, &classic).into_owned(),
        };
        Name {
            quoted: !is_classic(&text),
            text,
        }
    }

    /// Writes the labels of a point of `instrument` into `out`.
    fn write_labels(
        &self,
        out: &mut Vec<u8>,
        instrument: &Instrument,
        attributes: &[(&'static crate::model::instruments::Attribute, Value)],
    ) {
        write_labels(out, attributes, self.escaping);
        let extra = if is_target_info(instrument) {
            &self.target_labels
        } else {
            &self.labels
        };
        if !extra.is_empty() {
            if !out.is_empty() {
                out.push(b',');
            }
            out.extend_from_slice(extra);
        }
    }
}

/// A family name as written: quoted inside the braces when it is not a
/// classic name (`{"http.server.request.duration_bucket",le="0.005"}`).
#[derive(Debug, Clone, PartialEq)]
struct Name {
    text: String,
    quoted: bool,
}

/// Where the text of a scrape is: the family and point written next.
struct Text {
    families: Vec<Family>,
    format: TextFormat,
    spelling: Spelling,
    /// Text written as it is after the families (before `# EOF`).
    tail: Vec<u8>,
    family: usize,
    point: usize,
    /// Whether the current family's descriptor is written.
    described: bool,
    /// The number points of the current family, added up per label set,
    /// with the earliest start.
    numbers: Vec<(Vec<u8>, f64, u64)>,
    buckets: Buckets,
    labels: Vec<u8>,
    /// Reused by [`write_histogram`].
    scratch: Vec<u8>,
}

impl Text {
    fn new(families: Vec<Family>, format: TextFormat, spelling: Spelling) -> Self {
        Self {
            families,
            format,
            spelling,
            tail: Vec::new(),
            family: 0,
            point: 0,
            described: false,
            numbers: Vec::new(),
            buckets: Buckets::default(),
            labels: Vec::with_capacity(256),
            scratch: Vec::with_capacity(256),
        }
    }

    /// The same, with `tail` written as it is after the families.
    fn then(mut self, tail: Vec<u8>) -> Self {
        self.tail = tail;
        self
    }

    /// Writes on into `out` until it holds [`CHUNK`] bytes; false once
    /// everything is written.
    fn write(&mut self, out: &mut Vec<u8>) -> bool {
        let openmetrics = self.format == TextFormat::OpenMetrics;
        while let Some(family) = self.families.get(self.family) {
            let instrument = family.instrument;
            let name = self.spelling.name(instrument);
            if !self.described {
                write_descriptor(out, instrument, &name, self.format);
                self.described = true;
            }
            while let Some(point) = family.points.get(self.point) {
                if out.len() >= CHUNK {
                    return true;
                }
                self.point += 1;
                self.labels.clear();
                self.spelling
                    .write_labels(&mut self.labels, instrument, &point.attributes);
                match &point.value {
                    // Points that differ only in attributes without a
                    // Prometheus label (`cpu.mode`) are one sample, added up.
                    PointValue::Number(v) => {
                        match self.numbers.iter_mut().find(|(l, ..)| *l == self.labels) {
                            Some((_, sum, start)) => {
                                *sum += v;
                                *start = (*start).min(point.start);
                            }
                            None => self.numbers.push((self.labels.clone(), *v, point.start)),
                        }
                    }
                    PointValue::Histogram { bounds, data } => {
                        self.buckets.prepare(&name, bounds);
                        write_histogram(
                            out,
                            &name,
                            &self.labels,
                            &self.buckets,
                            data,
                            openmetrics,
                            &mut self.scratch,
                        );
                        if openmetrics {
                            write_created(out, &name, &self.labels, point.start);
                        }
                    }
                }
            }
            for (labels, value, start) in self.numbers.drain(..) {
                write_number(out, instrument.kind, &name, &labels, value);
                if openmetrics && instrument.kind == Kind::Counter {
                    write_created(out, &name, &labels, start);
                }
            }
            self.family += 1;
            self.point = 0;
            self.described = false;
        }
        out.append(&mut self.tail);
        if openmetrics {
            out.extend_from_slice(b"# EOF\n");
        }
        false
    }
}

/// `# HELP`, `# TYPE` and, in OpenMetrics, `# UNIT` (when the name ends
/// with the unit, as OpenMetrics wants). The classic format names counters
/// and infos after their samples (`_total`, `_info`), has infos as gauges
/// and no units.
fn write_descriptor(out: &mut Vec<u8>, instrument: &Instrument, name: &Name, format: TextFormat) {
    let (suffix, kind) = match (format, instrument.kind) {
        (_, Kind::UpDownCounter | Kind::Gauge) => ("", "gauge"),
        (_, Kind::Histogram) => ("", "histogram"),
        (TextFormat::OpenMetrics, Kind::Counter) => ("", "counter"),
        (TextFormat::OpenMetrics, Kind::Info) => ("", "info"),
        (TextFormat::Prometheus, Kind::Counter) => ("_total", "counter"),
        (TextFormat::Prometheus, Kind::Info) => ("_info", "gauge"),
    };
    let write_family = |out: &mut Vec<u8>, suffix: &str| {
        if name.quoted {
            out.push(b'"');
            escape_label(out, &name.text);
            out.extend_from_slice(suffix.as_bytes());
            out.push(b'"');
        } else {
            out.extend_from_slice(name.text.as_bytes());
            out.extend_from_slice(suffix.as_bytes());
        }
    };
    for (keyword, text) in [("# HELP ", None), ("# TYPE ", Some(kind))] {
        out.extend_from_slice(keyword.as_bytes());
        write_family(out, suffix);
        out.push(b' ');
        match text {
            Some(kind) => out.extend_from_slice(kind.as_bytes()),
            None => escape_help(out, instrument.help),
        }
        out.push(b'\n');
    }
    if let (TextFormat::OpenMetrics, Some(unit)) = (format, instrument.unit.prometheus())
        && name
            .text
            .strip_suffix(unit.as_str())
            .is_some_and(|rest| rest.ends_with('_'))
    {
        out.extend_from_slice(b"# UNIT ");
        write_family(out, "");
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
/// escaped, keys spelled as `escaping` wants.
fn write_labels(
    out: &mut Vec<u8>,
    attributes: &[(&'static crate::model::instruments::Attribute, Value)],
    escaping: Escaping,
) {
    let mut first = true;
    for (attribute, value) in attributes {
        let Some(key) = attribute.prometheus else {
            continue;
        };
        if !first {
            out.push(b',');
        }
        first = false;
        if escaping == Escaping::Underscores {
            out.extend_from_slice(key.as_bytes());
        } else {
            write_label_name(out, &escaping.name(attribute.otel, key));
        }
        out.extend_from_slice(b"=\"");
        match value {
            Value::Str(s) => escape_label(out, s),
            Value::Int(n) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
            Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        }
        out.push(b'"');
    }
}

/// A label name, quoted when it is not a classic one.
fn write_label_name(out: &mut Vec<u8>, name: &str) {
    if is_classic(name) {
        out.extend_from_slice(name.as_bytes());
    } else {
        out.push(b'"');
        escape_label(out, name);
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

/// `name{labels}`, `name` when there are none, `{"name",labels}` when the
/// name is quoted.
fn write_name(out: &mut Vec<u8>, name: &Name, suffix: &str, labels: &[u8]) {
    if name.quoted {
        out.extend_from_slice(b"{\"");
        escape_label(out, &name.text);
        out.extend_from_slice(suffix.as_bytes());
        out.push(b'"');
        if !labels.is_empty() {
            out.push(b',');
            out.extend_from_slice(labels);
        }
        out.push(b'}');
        return;
    }
    out.extend_from_slice(name.text.as_bytes());
    out.extend_from_slice(suffix.as_bytes());
    if !labels.is_empty() {
        out.push(b'{');
        out.extend_from_slice(labels);
        out.push(b'}');
    }
}

fn write_number(out: &mut Vec<u8>, kind: Kind, name: &Name, labels: &[u8], value: f64) {
    match kind {
        Kind::Counter => write_name(out, name, "_total", labels),
        // An info's labels are its value; it is always 1.
        Kind::Info if !name.quoted => {
            out.extend_from_slice(name.text.as_bytes());
            out.extend_from_slice(b"_info{");
            out.extend_from_slice(labels);
            out.extend_from_slice(b"} 1\n");
            return;
        }
        Kind::Info => {
            write_name(out, name, "_info", labels);
            out.extend_from_slice(b" 1\n");
            return;
        }
        _ => write_name(out, name, "", labels),
    }
    out.push(b' ');
    out.extend_from_slice(dtoa::Buffer::new().format(value).as_bytes());
    out.push(b'\n');
}

/// `name_created{labels} seconds`: when the series started, in seconds
/// since the Unix epoch, exact to the nanosecond.
fn write_created(out: &mut Vec<u8>, name: &Name, labels: &[u8], start_nanos: u64) {
    write_name(out, name, "_created", labels);
    out.push(b' ');
    out.extend_from_slice(
        itoa::Buffer::new()
            .format(start_nanos / 1_000_000_000)
            .as_bytes(),
    );
    let fraction = start_nanos % 1_000_000_000;
    if fraction.is_multiple_of(1_000_000) {
        // Whole milliseconds, as series start: three digits at most, the
        // trailing zeros left out.
        let ms = fraction / 1_000_000;
        let digits = [
            b'.',
            b'0' + (ms / 100) as u8,
            b'0' + (ms / 10 % 10) as u8,
            b'0' + (ms % 10) as u8,
        ];
        let len = match ms {
            _ if ms.is_multiple_of(100) => 2,
            _ if ms.is_multiple_of(10) => 3,
            _ => 4,
        };
        out.extend_from_slice(&digits[..len]);
    } else {
        let mut digits = *b".000000000";
        let mut rest = fraction;
        for digit in digits[1..].iter_mut().rev() {
            *digit = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        let last = digits[1..].iter().rposition(|&d| d != b'0').unwrap_or(0);
        out.extend_from_slice(&digits[..last + 2]);
    }
    out.push(b'\n');
}

/// The start of each bucket line of a family, `name_bucket{le="…"`, made
/// once per family.
#[derive(Debug, Default)]
struct Buckets {
    /// The family name and bounds the lines are for.
    of: Option<(Name, Arc<[f64]>)>,
    lines: Vec<Vec<u8>>,
}

impl Buckets {
    fn prepare(&mut self, name: &Name, bounds: &Arc<[f64]>) {
        if self
            .of
            .as_ref()
            .is_some_and(|(n, b)| n == name && **b == **bounds)
        {
            return;
        }
        self.of = Some((name.clone(), Arc::clone(bounds)));
        let text = &name.text;
        self.lines = bounds
            .iter()
            .map(|b| dtoa::Buffer::new().format(*b).to_owned())
            .chain(["+Inf".to_owned()])
            .map(|le| match name.quoted {
                false => format!("{text}_bucket{{le=\"{le}\""),
                true => format!("{{\"{text}_bucket\",le=\"{le}\""),
            })
            .map(String::into_bytes)
            .collect();
    }
}

/// `_sum`, `_count`, then each bucket, cumulative, as prometheus-client
/// orders them (`le` first among the labels); with `exemplars` (only
/// OpenMetrics has them), a bucket's exemplar after its count.
fn write_histogram(
    out: &mut Vec<u8>,
    name: &Name,
    labels: &[u8],
    buckets: &Buckets,
    h: &HistogramSnapshot,
    exemplars: bool,
    scratch: &mut Vec<u8>,
) {
    write_name(out, name, "_sum", labels);
    out.push(b' ');
    out.extend_from_slice(dtoa::Buffer::new().format(h.sum).as_bytes());
    out.push(b'\n');
    write_name(out, name, "_count", labels);
    out.push(b' ');
    out.extend_from_slice(itoa::Buffer::new().format(h.count).as_bytes());
    out.push(b'\n');
    // What follows `le="…"` on every bucket line, made once: a copy per
    // line where there were three.
    scratch.clear();
    if !labels.is_empty() {
        scratch.push(b',');
        scratch.extend_from_slice(labels);
    }
    scratch.extend_from_slice(b"} ");
    let mut cumulative = 0u64;
    let mut number = itoa::Buffer::new();
    for (bucket, (line, n)) in buckets.lines.iter().zip(&h.buckets).enumerate() {
        cumulative += n;
        out.extend_from_slice(line);
        out.extend_from_slice(scratch);
        out.extend_from_slice(number.format(cumulative).as_bytes());
        if let Some(Some(exemplar)) = exemplars.then(|| h.exemplars.get(bucket)).flatten() {
            write_exemplar(out, exemplar);
        }
        out.push(b'\n');
    }
}

/// ` # {trace_id="…",span_id="…"} value timestamp`: an OpenMetrics
/// exemplar, the ids in lowercase hex as W3C trace context writes them (70
/// characters of labels, within the 128 OpenMetrics allows), the timestamp
/// in seconds.
fn write_exemplar(out: &mut Vec<u8>, exemplar: &Exemplar) {
    let trace = u128::from_be_bytes(exemplar.ids.trace_id);
    let span = u64::from_be_bytes(exemplar.ids.span_id);
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        " # {{trace_id=\"{trace:032x}\",span_id=\"{span:016x}\"}} "
    );
    out.extend_from_slice(dtoa::Buffer::new().format(exemplar.value).as_bytes());
    out.push(b' ');
    let seconds = exemplar.time_unix_nanos as f64 / 1e9;
    out.extend_from_slice(dtoa::Buffer::new().format(seconds).as_bytes());
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::model::instruments as i;

    /// The classic spelling, with `prefix`.
    fn spelling(prefix: Option<&str>) -> Spelling {
        Spelling::new(prefix, Escaping::Underscores, &ExtraLabels::new(&[], false))
    }

    /// The whole body, chunk after chunk.
    fn body(families: &[Family], format: TextFormat, encoding: Encoding) -> Vec<u8> {
        prefixed_body(families, format, encoding, None)
    }

    fn prefixed_body(
        families: &[Family],
        format: TextFormat,
        encoding: Encoding,
        prefix: Option<&str>,
    ) -> Vec<u8> {
        let mut body = TextBody::new(
            Text::new(copy(families), format, spelling(prefix)),
            encoding,
        );
        let mut bytes = Vec::new();
        while let Some(chunk) = body.next_chunk() {
            assert!(!chunk.is_empty());
            bytes.extend_from_slice(&chunk);
        }
        assert!(http_body::Body::is_end_stream(&body));
        bytes
    }

    fn text(families: &[Family], format: TextFormat) -> String {
        String::from_utf8(body(families, format, Encoding::Identity)).unwrap()
    }

    fn prefixed_text(families: &[Family], format: TextFormat, prefix: Option<&str>) -> String {
        String::from_utf8(prefixed_body(families, format, Encoding::Identity, prefix)).unwrap()
    }

    /// Equal texts, or the first line where they differ.
    fn assert_same(ours: &str, reference: &str) {
        if ours == reference {
            return;
        }
        let (n, (a, b)) = ours
            .lines()
            .chain(["<end>"])
            .zip(reference.lines().chain(["<end>"]))
            .enumerate()
            .find(|(_, (a, b))| a != b)
            .unwrap_or((0, ("", "")));
        panic!("line {n} differs:\n ours:      {a}\n reference: {b}");
    }

    fn copy(families: &[Family]) -> Vec<Family> {
        families
            .iter()
            .map(|f| Family {
                instrument: f.instrument,
                points: f
                    .points
                    .iter()
                    .map(|p| crate::model::family::Point {
                        attributes: p.attributes.clone(),
                        value: p.value.clone(),
                        start: p.start,
                    })
                    .collect(),
            })
            .collect()
    }

    #[test]
    fn classic_format_names_counters_and_infos_after_their_samples() {
        let families = vec![
            Family::new(&i::PROCESS_CPU_TIME).number(Vec::new(), 1.5),
            Family::new(&i::BUILD_INFO).number(vec![(&i::SERVICE_NAME, Value::Bool(true))], 1.0),
            Family::new(&i::PROCESS_THREADS).number(Vec::new(), 2.0),
        ];
        let help = |instrument: &crate::model::instruments::Instrument| instrument.help;
        assert_eq!(
            text(&families, TextFormat::Prometheus),
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
        let om = text(&families, TextFormat::OpenMetrics);
        assert!(om.contains("# TYPE process_cpu_seconds counter\n"), "{om}");
        assert!(om.ends_with("# EOF\n"));
    }

    #[test]
    fn negotiates_openmetrics_only_when_asked() {
        let prometheus_2 = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                            version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus_2)).0, Format::OpenMetrics);
        let native = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;\
                      encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
        assert_eq!(Format::negotiate(Some(native)).0, Format::Protobuf);
        let text_first = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;\
                          encoding=delimited;q=0.1,text/plain;q=0.9";
        assert_eq!(Format::negotiate(Some(text_first)).0, Format::Prometheus);
        let other = "application/vnd.google.protobuf;proto=other.Message;encoding=delimited";
        assert_eq!(Format::negotiate(Some(other)).0, Format::Prometheus);
        assert_eq!(
            Format::negotiate(Some("application/json")).0,
            Format::Prometheus
        );
        assert_eq!(Format::negotiate(Some("*/*")).0, Format::Prometheus);
        assert_eq!(Format::negotiate(None).0, Format::Prometheus);
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
            max: Some(0.5),
            buckets: (0..15).map(|b| if b == 3 { count } else { 0 }).collect(),
            ..HistogramSnapshot::default()
        };
        let bounds: &Arc<[f64]> = &i::DURATION_BOUNDS_SECONDS.as_slice().into();
        let sizes: Arc<[f64]> = i::BODY_SIZE_BOUNDS_BYTES.as_slice().into();
        let mode = |m: &'static str| vec![(&i::CPU_MODE, Value::Str(Cow::Borrowed(m)))];
        vec![
            Family::new(&i::HTTP_SERVER_REQUEST_DURATION)
                .histogram(route("/items/{id}"), bounds, h(7))
                .histogram(route("/a \"quoted\" \\ path\nnext"), bounds, h(1))
                .histogram(
                    crate::model::family::overflow_attributes(Some(Cow::Borrowed("500"))),
                    bounds,
                    h(0),
                ),
            Family::new(&i::HTTP_SERVER_REQUEST_BODY_SIZE).histogram(
                Vec::new(),
                &sizes,
                HistogramSnapshot {
                    count: 2,
                    sum: 70000.0,
                    max: Some(69000.0),
                    buckets: vec![1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0],
                    ..HistogramSnapshot::default()
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

    /// The text without its `_created` samples, which prometheus-client's
    /// text encoder does not write.
    fn without_created(text: &str) -> String {
        text.lines()
            .filter(|l| {
                !l.split(['{', ' '])
                    .next()
                    .unwrap_or("")
                    .ends_with("_created")
            })
            .map(|l| format!("{l}\n"))
            .collect()
    }

    fn assert_both_formats_match_the_reference(families: &[Family], prefix: Option<&str>) {
        assert_same(
            &without_created(&prefixed_text(families, TextFormat::OpenMetrics, prefix)),
            &reference::openmetrics(families, prefix),
        );
        assert_same(
            &prefixed_text(families, TextFormat::Prometheus, prefix),
            &reference::classic(families, prefix),
        );
    }

    #[test]
    fn the_text_is_what_prometheus_client_writes() {
        let families = sample_families();
        assert_both_formats_match_the_reference(&families, None);
    }

    #[test]
    fn a_prefix_is_written_as_prometheus_client_writes_it() {
        let families = sample_families();
        assert_both_formats_match_the_reference(&families, Some("inventory"));
        let text = prefixed_text(&families, TextFormat::Prometheus, Some("inventory"));
        assert!(
            text.contains("\ninventory_http_server_request_duration_seconds_bucket{"),
            "{text}"
        );
    }

    #[test]
    fn chunks_end_anywhere_and_join_into_the_same_text() {
        let mut families = sample_families();
        let sizes: Arc<[f64]> = i::BODY_SIZE_BOUNDS_BYTES.as_slice().into();
        let many = (0..3000).fold(
            Family::new(&i::HTTP_SERVER_RESPONSE_BODY_SIZE),
            |family, n| {
                family.histogram(
                    vec![(&i::HTTP_ROUTE, Value::Str(Cow::Owned(format!("/r/{n}"))))],
                    &sizes,
                    HistogramSnapshot {
                        count: 1,
                        sum: 10.0,
                        max: Some(10.0),
                        buckets: vec![0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                        ..HistogramSnapshot::default()
                    },
                )
            },
        );
        families.insert(1, many);
        let mut body = TextBody::new(
            Text::new(copy(&families), TextFormat::OpenMetrics, spelling(None)),
            Encoding::Identity,
        );
        let mut chunks = 0;
        while body.next_chunk().is_some() {
            chunks += 1;
        }
        assert!(chunks > 2, "{chunks} chunks");
        assert_both_formats_match_the_reference(&families, None);
    }

    #[test]
    fn created_is_the_start_in_seconds_exact_to_the_nanosecond() {
        let name = Name {
            text: "x".into(),
            quoted: false,
        };
        for (nanos, want) in [
            (1_700_000_000_000_000_000, "x_created 1700000000.0\n"),
            (1_700_000_000_250_000_000, "x_created 1700000000.25\n"),
            (1_700_000_000_007_000_000, "x_created 1700000000.007\n"),
            (
                1_700_000_000_000_000_123,
                "x_created 1700000000.000000123\n",
            ),
            (1_700_000_000_120_450_000, "x_created 1700000000.12045\n"),
        ] {
            let mut out = Vec::new();
            write_created(&mut out, &name, b"", nanos);
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
    }

    #[test]
    fn gzip_holds_the_same_text() {
        use std::io::Read as _;
        let families = sample_families();
        for format in [TextFormat::OpenMetrics, TextFormat::Prometheus] {
            let gzip = body(&families, format, Encoding::Gzip);
            let mut unzipped = String::new();
            flate2::read::GzDecoder::new(gzip.as_slice())
                .read_to_string(&mut unzipped)
                .unwrap();
            assert_eq!(unzipped, text(&families, format));
        }
    }

    /// prometheus-client's text encoder, fed the same families: what the
    /// text above must equal.
    mod reference {
        use prometheus_client::registry::Registry;

        use super::super::write_descriptor;
        use super::*;

        pub(super) fn openmetrics(families: &[Family], prefix: Option<&str>) -> String {
            let mut text = String::new();
            encode_registry(&mut text, families, prefix);
            prometheus_client::encoding::text::encode_eof(&mut text).unwrap();
            text
        }

        /// The classic format: our descriptors, then prometheus-client's
        /// sample lines, which are the same in both formats.
        pub(super) fn classic(families: &[Family], prefix: Option<&str>) -> String {
            let mut text = String::new();
            for family in families {
                let name = family.instrument.prometheus_family();
                let name = prefix.map_or_else(|| name.clone(), |p| format!("{p}_{name}"));
                let mut descriptor = Vec::new();
                write_descriptor(
                    &mut descriptor,
                    family.instrument,
                    &Name {
                        text: name,
                        quoted: false,
                    },
                    TextFormat::Prometheus,
                );
                text.push_str(std::str::from_utf8(&descriptor).unwrap());
                let mut one = String::new();
                encode_registry(&mut one, std::slice::from_ref(family), prefix);
                for line in one.lines().filter(|l| !l.starts_with('#')) {
                    text.push_str(line);
                    text.push('\n');
                }
            }
            text
        }

        fn encode_registry(out: &mut String, families: &[Family], prefix: Option<&str>) {
            let mut registry = prefix.map_or_else(Registry::default, Registry::with_prefix);
            registry.register_collector(Box::new(super::super::collector::Families::new(copy(
                families,
            ))));
            prometheus_client::encoding::text::encode_registry(out, &registry).unwrap();
        }
    }
}
