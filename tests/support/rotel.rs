//! A real OTLP receiver for the tests: rotel, the collector whose PyPI wheel
//! `scripts/install-test-deps` installs. It listens for OTLP over gRPC and
//! HTTP on two free loopback ports, drops the data (`--exporter blackhole`)
//! and prints every metric it receives, in detail, to its log;
//! [`parse`] reads that print-out back into [`Batch`]es.
//!
//! Nothing here skips: a missing rotel fails the test and says to run
//! `scripts/install-test-deps`.
//!
//! Rotel prints each request it receives in one write, starting with a
//! `ResourceMetrics #0` line. A batch is complete once the next one has
//! started; the last one is complete once the output ends with a newline and
//! has not grown for [`SETTLE`].

use super::launcher::{HeldPorts, Run, Server, ServerKind, poll, require};
use super::otlp;
use serverwatch::OtlpProtocol;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long the output must stay the same before its last batch counts as
/// complete.
pub const SETTLE: Duration = Duration::from_millis(150);

/// Pause between two polls of the output.
const POLL_EVERY: Duration = Duration::from_millis(25);

const INSTALL_HINT: &str = "run scripts/install-test-deps to install rotel, the OTLP receiver \
                            the tests start (the `rotel` package from PyPI carries the \
                            rotel-agent binary)";

/// A rotel of the test's own on 127.0.0.1 (ports: gRPC, then HTTP), printing
/// what it receives to its log.
pub type Rotel = Server<Agent>;

/// The `rotel-agent` binary, and how long its output has been quiet.
#[derive(Debug)]
pub struct Agent {
    path: PathBuf,
    /// The log read last, its length when it last changed, and when.
    seen: Mutex<(PathBuf, u64, Instant)>,
}

impl Agent {
    /// Finds the `rotel-agent` binary shipped in the `rotel` Python package;
    /// fails the test, telling how to install it, when it is not there.
    fn find() -> Self {
        const SCRIPT: &str = "import os, rotel; \
                              print(os.path.join(os.path.dirname(rotel.__file__), 'rotel-agent'))";
        let path = PathBuf::from(require("python3", &["-c", SCRIPT], INSTALL_HINT).trim());
        assert!(
            path.is_file(),
            "{} does not exist\n{INSTALL_HINT}",
            path.display()
        );
        Self {
            path,
            seen: Mutex::new((PathBuf::new(), 0, Instant::now())),
        }
    }
}

impl ServerKind for Agent {
    const NAME: &'static str = "rotel";
    const INSTALL_HINT: &'static str = INSTALL_HINT;

    fn command(&self, run: &Run<'_>) -> Command {
        let mut command = Command::new(&self.path);
        command
            .arg("start")
            .args([
                "--otlp-grpc-endpoint",
                &format!("127.0.0.1:{}", run.ports[0]),
            ])
            .args([
                "--otlp-http-endpoint",
                &format!("127.0.0.1:{}", run.ports[1]),
            ])
            .args(["--exporter", "blackhole"])
            .args(["--debug-log", "metrics"])
            .args(["--debug-log", "traces"])
            .args(["--debug-log-verbosity", "detailed"])
            // One print-out per request received, as soon as it is received.
            .arg("--disable-batching")
            .arg("--pid-file")
            .arg(run.dir.join("rotel.pid"))
            .arg("--log-file")
            .arg(run.dir.join("rotel.log"))
            .env("NO_COLOR", "1");
        // The developer's ROTEL_* settings must not change what is printed.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("ROTEL_") {
                command.env_remove(name);
            }
        }
        command
    }
}

impl Rotel {
    /// Starts rotel on two free ports and waits until it listens on both.
    pub async fn start() -> Self {
        let mut rotel = Server::new(Agent::find());
        rotel.launch(2).await;
        rotel
    }

    /// Starts rotel on `ports` (gRPC, then HTTP), which the caller held,
    /// for instance to configure an exporter before the receiver exists,
    /// and waits until it listens on both.
    pub async fn start_on(ports: HeldPorts) -> Self {
        let mut rotel = Server::new(Agent::find());
        rotel.launch_held(ports).await;
        rotel
    }

    /// `http://127.0.0.1:PORT`, the base URL of the OTLP/HTTP receiver.
    pub fn http_endpoint(&self) -> String {
        otlp::endpoint(self.http_port())
    }

    /// `http://127.0.0.1:PORT`, the OTLP/gRPC receiver.
    pub fn grpc_endpoint(&self) -> String {
        otlp::endpoint(self.grpc_port())
    }

    pub fn grpc_port(&self) -> u16 {
        self.ports()[0]
    }

    pub fn http_port(&self) -> u16 {
        self.ports()[1]
    }

    /// The port that `protocol` is received on.
    pub fn port(&self, protocol: OtlpProtocol) -> u16 {
        otlp::port_for(protocol, self.ports())
    }

    /// `http://127.0.0.1:PORT`, where `protocol` is received.
    pub fn endpoint(&self, protocol: OtlpProtocol) -> String {
        otlp::endpoint(self.port(protocol))
    }

    /// The complete batches the current run received, oldest first.
    pub fn batches(&self) -> Vec<Batch> {
        let (mut batches, quiet_for) = self.read();
        if quiet_for < SETTLE {
            batches.pop();
        }
        batches
    }

    /// Every batch received so far and how long the output has not changed
    /// (zero when it does not end with a full line).
    fn read(&self) -> (Vec<Batch>, Duration) {
        let path = self.log_path();
        let bytes = std::fs::read(&path).unwrap_or_default();
        let quiet_for = {
            let mut seen = self.kind.seen.lock().unwrap();
            let len = bytes.len() as u64;
            if seen.0 != path || seen.1 != len {
                *seen = (path, len, Instant::now());
            }
            if bytes.is_empty() || bytes.ends_with(b"\n") {
                seen.2.elapsed()
            } else {
                Duration::ZERO
            }
        };
        (parse(&String::from_utf8_lossy(&bytes)), quiet_for)
    }

    /// Waits until the output has not changed for `quiet` (at least
    /// [`SETTLE`]), then returns every batch received, all complete. For
    /// counting exports once no more are expected.
    pub async fn wait_quiet(&self, quiet: Duration, deadline: Duration) -> Vec<Batch> {
        let quiet = quiet.max(SETTLE);
        poll(deadline, POLL_EVERY, || {
            let (batches, quiet_for) = self.read();
            std::future::ready(if quiet_for >= quiet {
                Ok(batches)
            } else {
                Err(format!("quiet for {quiet_for:?} only"))
            })
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "rotel's output still changing after {deadline:?}:\n{}",
                self.log_tail(60)
            )
        })
    }

    /// Polls until the latest complete batch passes `check`, and returns
    /// it; fails the test after `deadline` with `what`, the last complaint
    /// of `check` and the end of rotel's output.
    pub async fn wait_for_batch<F>(&self, what: &str, deadline: Duration, mut check: F) -> Batch
    where
        F: FnMut(&Batch) -> Result<(), String>,
    {
        poll(deadline, POLL_EVERY, || {
            let latest = match self.batches().pop() {
                Some(batch) => check(&batch).map(|()| batch),
                None => Err("no complete batch received".to_owned()),
            };
            std::future::ready(latest)
        })
        .await
        .unwrap_or_else(|last| {
            panic!(
                "timed out after {deadline:?} waiting for {what}; last: {last}\n\
                 rotel output ({}), last lines:\n{}",
                self.log_path().display(),
                self.log_tail(60)
            )
        })
    }
}

// ---------------------------------------------------------------------------
// The print-out

/// An attribute value as rotel prints it (`Str(…)`, `Int(…)`, …).
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    Str(String),
    Int(i64),
    Bool(bool),
    Double(f64),
    /// Any other printed form, as printed.
    Other(String),
}

impl AttrValue {
    fn parse(text: &str) -> Self {
        let inner = |prefix: &str| text.strip_prefix(prefix)?.strip_suffix(')');
        if let Some(s) = inner("Str(") {
            return AttrValue::Str(s.to_owned());
        }
        if let Some(n) = inner("Int(").and_then(|n| n.parse().ok()) {
            return AttrValue::Int(n);
        }
        if let Some(b) = inner("Bool(").and_then(|b| b.parse().ok()) {
            return AttrValue::Bool(b);
        }
        if let Some(d) = inner("Double(").and_then(|d| d.parse().ok()) {
            return AttrValue::Double(d);
        }
        AttrValue::Other(text.to_owned())
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            AttrValue::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            AttrValue::Int(n) => Some(*n),
            _ => None,
        }
    }
}

impl fmt::Display for AttrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrValue::Str(s) => write!(f, "Str({s})"),
            AttrValue::Int(n) => write!(f, "Int({n})"),
            AttrValue::Bool(b) => write!(f, "Bool({b})"),
            AttrValue::Double(d) => write!(f, "Double({d})"),
            AttrValue::Other(s) => f.write_str(s),
        }
    }
}

/// One export as rotel received it: a resource and its metrics.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub resource: BTreeMap<String, AttrValue>,
    /// `name version` of each instrumentation scope.
    pub scopes: Vec<String>,
    pub metrics: Vec<Metric>,
}

impl Batch {
    /// The metric called `name`, if there is exactly one.
    pub fn metric(&self, name: &str) -> Option<&Metric> {
        let mut found = self.metrics.iter().filter(|m| m.name == name);
        let metric = found.next()?;
        assert!(found.next().is_none(), "metric {name} appears twice");
        Some(metric)
    }

    pub fn names(&self) -> Vec<&str> {
        self.metrics.iter().map(|m| m.name.as_str()).collect()
    }

    /// The count of every point of the histogram `name` added up (0 when the
    /// metric is absent).
    pub fn total_count(&self, name: &str) -> u64 {
        self.metric(name).map_or(0, Metric::total_count)
    }
}

/// One metric: its descriptor and its data points.
#[derive(Debug, Clone, Default)]
pub struct Metric {
    pub name: String,
    pub description: String,
    pub unit: String,
    /// `Histogram`, `Sum`, `Gauge`, …
    pub data_type: String,
    /// `AGGREGATION_TEMPORALITY_CUMULATIVE`, …; `None` for gauges.
    pub temporality: Option<String>,
    /// Printed for sums only.
    pub monotonic: Option<bool>,
    pub points: Vec<DataPoint>,
}

impl Metric {
    /// Counts of every histogram point added up.
    pub fn total_count(&self) -> u64 {
        self.points.iter().filter_map(|p| p.count).sum()
    }

    /// The points whose attributes include every `(key, value)` of `wanted`.
    pub fn points_with(&self, wanted: &[(&str, AttrValue)]) -> Vec<&DataPoint> {
        self.points
            .iter()
            .filter(|p| wanted.iter().all(|(k, v)| p.attributes.get(*k) == Some(v)))
            .collect()
    }
}

/// One data point (number or histogram).
#[derive(Debug, Clone, Default)]
pub struct DataPoint {
    pub attributes: BTreeMap<String, AttrValue>,
    pub start_time_unix_nano: Option<u64>,
    pub time_unix_nano: Option<u64>,
    /// Number points.
    pub value: Option<f64>,
    /// Histogram points.
    pub count: Option<u64>,
    pub sum: Option<f64>,
    pub bounds: Vec<f64>,
    /// Per bucket (not cumulative), the +Inf bucket last; for an
    /// exponential histogram, its positive buckets.
    pub bucket_counts: Vec<u64>,
    /// Exponential histogram points: their zero bucket, and their
    /// positive buckets as `(lower, upper, count)`.
    pub zero_count: Option<u64>,
    pub exponential_buckets: Vec<(f64, f64, u64)>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// The trace ids of the point's exemplars, in hex.
    pub exemplar_trace_ids: Vec<String>,
}

impl DataPoint {
    pub fn attr(&self, key: &str) -> Option<&AttrValue> {
        self.attributes.get(key)
    }

    /// The scale of an exponential histogram point, from the width of its
    /// first bucket (`upper / lower = 2^(2^-scale)`).
    pub fn scale(&self) -> Option<i32> {
        let &(lower, upper, _) = self.exponential_buckets.first()?;
        Some(-(upper / lower).log2().log2().round() as i32)
    }
}

/// Where `     -> key: value` lines belong.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Section {
    Other,
    Resource,
    Descriptor,
    PointAttributes,
    /// `Exemplars:` of a point, each `Exemplar #n` with its `-> Trace ID:`.
    Exemplars,
}

impl Rotel {
    /// The trace ids of every span rotel printed.
    pub fn span_trace_ids(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Trace ID"))
            .filter_map(|rest| rest.trim_start().strip_prefix(':'))
            .map(|id| id.trim().to_owned())
            .collect()
    }
}

/// Parses rotel's detailed print-out into batches, one per
/// `ResourceMetrics` block, oldest first. Lines it does not know (rotel's
/// own log lines) are skipped. The last batch may be incomplete: see
/// [`Rotel::batches`].
pub fn parse(text: &str) -> Vec<Batch> {
    let mut batches: Vec<Batch> = Vec::new();
    let mut section = Section::Other;
    for line in text.lines() {
        if line.starts_with("ResourceMetrics #") {
            batches.push(Batch::default());
            section = Section::Other;
            continue;
        }
        let Some(batch) = batches.last_mut() else {
            continue;
        };
        if line == "Resource attributes:" {
            section = Section::Resource;
        } else if line.starts_with("ScopeMetrics #") {
            section = Section::Other;
        } else if let Some(scope) = line.strip_prefix("InstrumentationScope ") {
            batch.scopes.push(scope.to_owned());
        } else if line.starts_with("Metric #") {
            batch.metrics.push(Metric::default());
            section = Section::Descriptor;
        } else if line == "Descriptor:" {
            section = Section::Descriptor;
        } else if line
            // `HistogramDataPoints #0`, `NumberDataPoints #3`, …
            .split_once("DataPoints #")
            .is_some_and(|(kind, n)| !kind.contains(' ') && n.parse::<u32>().is_ok())
        {
            if let Some(metric) = batch.metrics.last_mut() {
                metric.points.push(DataPoint::default());
            }
            section = Section::Other;
        } else if line == "Data point attributes:" {
            section = Section::PointAttributes;
        } else if line == "Exemplars:" {
            section = Section::Exemplars;
        } else if let Some(entry) = line.trim_start().strip_prefix("-> ") {
            let (key, value) = entry.split_once(": ").unwrap_or((entry, ""));
            match section {
                Section::Resource => {
                    batch
                        .resource
                        .insert(key.to_owned(), AttrValue::parse(value));
                }
                Section::PointAttributes => {
                    if let Some(point) = last_point(batch) {
                        point
                            .attributes
                            .insert(key.to_owned(), AttrValue::parse(value));
                    }
                }
                Section::Descriptor => {
                    if let Some(metric) = batch.metrics.last_mut() {
                        descriptor(metric, key, value);
                    }
                }
                Section::Exemplars => {
                    if let (Some(point), "Trace ID") = (last_point(batch), key) {
                        point.exemplar_trace_ids.push(value.to_owned());
                    }
                }
                Section::Other => {}
            }
        } else if let Some(point) = last_point(batch) {
            point_line(point, line);
        }
    }
    batches
}

fn last_point(batch: &mut Batch) -> Option<&mut DataPoint> {
    batch.metrics.last_mut()?.points.last_mut()
}

fn descriptor(metric: &mut Metric, key: &str, value: &str) {
    match key {
        "Name" => metric.name = value.to_owned(),
        "Description" => metric.description = value.to_owned(),
        "Unit" => metric.unit = value.to_owned(),
        "DataType" => metric.data_type = value.to_owned(),
        "AggregationTemporality" => metric.temporality = Some(value.to_owned()),
        "IsMonotonic" => metric.monotonic = value.parse().ok(),
        _ => {}
    }
}

fn point_line(point: &mut DataPoint, line: &str) {
    let Some((key, value)) = line.split_once(": ") else {
        return;
    };
    let float = || value.trim().parse::<f64>().ok();
    let int = || value.trim().parse::<u64>().ok();
    match key {
        "StartTimestamp" => point.start_time_unix_nano = int(),
        "Timestamp" => point.time_unix_nano = int(),
        "Value" => point.value = float(),
        "Count" => point.count = int(),
        "Sum" => point.sum = float(),
        "Min" => point.min = float(),
        "Max" => point.max = float(),
        // `Bucket [0, 0], Count: 4`: the zero bucket.
        "Bucket [0, 0], Count" => point.zero_count = int(),
        // `Bucket (0.0001, 0.00011], Count: 7`: a positive bucket.
        _ if key.starts_with("Bucket (") && key.ends_with("], Count") => {
            let range = &key["Bucket (".len()..key.len() - "], Count".len()];
            let bounds = range
                .split_once(", ")
                .and_then(|(lo, hi)| Some((lo.parse().ok()?, hi.parse().ok()?)));
            if let (Some((lower, upper)), Some(count)) = (bounds, int()) {
                point.exponential_buckets.push((lower, upper, count));
            }
        }
        _ if key.starts_with("ExplicitBounds #") => {
            if let Some(bound) = float() {
                point.bounds.push(bound);
            }
        }
        // `Buckets #3, Count: 7`
        _ if key.starts_with("Buckets #") && key.ends_with(", Count") => {
            if let Some(count) = int() {
                point.bucket_counts.push(count);
            }
        }
        _ => {}
    }
}
