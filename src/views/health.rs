//! `/health`: a JSON document with the keys and nesting of Python's
//! `EnhancedHealthCheck` (the layout existing consumers read), with latency
//! percentiles and per-route figures added. Every number is read from the
//! same state that `/metrics` encodes.

use std::collections::BTreeMap;
use std::time::SystemTime;

use http::StatusCode;
use serde::Serialize;

use crate::integrations::system::SystemSnapshot;
use crate::state::State;
use crate::state::histogram::HistogramSnapshot;
use crate::state::reading::percent;
use crate::state::requests::{NO_STATUS, RecentError, RequestSummary};

/// The `database.status` value while no database is watched.
pub(crate) const DATABASE_NOT_CONFIGURED: &str = "not configured";
/// The `runtime.flavor` value while no tokio runtime is watched.
pub(crate) const RUNTIME_NOT_WATCHED: &str = "none";

/// The whole document.
#[derive(Debug, Serialize)]
pub(crate) struct HealthReport {
    pub(crate) status: &'static str,
    pub(crate) uptime: Uptime,
    /// `{"status": "not configured"}`, or the database's own section.
    pub(crate) database: serde_json::Value,
    pub(crate) memory_analysis: MemorySection,
    pub(crate) application: Application,
    /// The app's health checks by name: status, duration, critical.
    pub(crate) checks: serde_json::Value,
    /// The tokio runtime's figures, or `{"flavor": "none"}`.
    pub(crate) runtime: serde_json::Value,
}

#[derive(Debug, Serialize)]
pub(crate) struct Uptime {
    pub(crate) seconds: f64,
    pub(crate) formatted: String,
}

/// The figures, or `{"status": "disabled"}` with
/// `process_and_system_metrics(false)`: no number rather than a wrong one.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum MemorySection {
    Read(Box<MemoryAnalysis>),
    Disabled { status: &'static str },
}

/// The `memory_analysis.status` value while the system is not read.
pub(crate) const MEMORY_DISABLED: &str = "disabled";

#[derive(Debug, Serialize)]
pub(crate) struct MemoryAnalysis {
    process: ProcessSection,
    system: SystemSection,
}

#[derive(Debug, Serialize)]
struct ProcessSection {
    process: ProcessInfo,
    /// The busiest threads by CPU time. (Not a memory figure per thread:
    /// threads share one address space.)
    threads: Vec<ThreadInfo>,
}

#[derive(Debug, Serialize)]
struct ProcessInfo {
    pid: u32,
    memory_percent: f64,
    memory_info: MemoryInfo,
    num_threads: u64,
    open_files: u64,
    connections: u64,
}

#[derive(Debug, Serialize)]
struct MemoryInfo {
    rss: u64,
    vms: u64,
    shared: u64,
    text: u64,
    lib: u64,
    data: u64,
    /// Always 0 on Linux since 2.6, as in psutil.
    dirty: u64,
}

#[derive(Debug, Serialize)]
struct ThreadInfo {
    thread_id: u32,
    name: String,
    cpu_seconds: f64,
}

#[derive(Debug, Serialize)]
struct SystemSection {
    virtual_memory: VirtualMemory,
    swap_memory: SwapMemory,
}

#[derive(Debug, Serialize)]
struct VirtualMemory {
    total: u64,
    available: u64,
    used: u64,
    free: u64,
    percent: f64,
    active: u64,
    inactive: u64,
    buffers: u64,
    cached: u64,
    shared: u64,
}

#[derive(Debug, Serialize)]
struct SwapMemory {
    total: u64,
    used: u64,
    free: u64,
    percent: f64,
    sin: u64,
    sout: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct Application {
    /// Every request, errors, panics and aborted ones included.
    pub(crate) total_requests: u64,
    /// Requests with an `error_type`: answered with 5xx, panicked, or
    /// aborted (ended before an answer was sent).
    pub(crate) error_count: u64,
    /// `error_count / total_requests × 100`.
    pub(crate) error_rate: f64,
    /// Mean duration in seconds.
    pub(crate) average_response_time: f64,
    pub(crate) status_codes: BTreeMap<String, u64>,
    /// Keyed by `"METHOD /route/{template}"`.
    pub(crate) endpoints: BTreeMap<String, u64>,
    pub(crate) recent_errors: Vec<ErrorEntry>,
    /// Duration percentiles in seconds, estimated from the histogram.
    pub(crate) latency: Latency,
    /// Per route template, all methods together.
    pub(crate) routes: BTreeMap<String, RouteFigures>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Latency {
    pub(crate) p50: f64,
    pub(crate) p95: f64,
    pub(crate) p99: f64,
}

impl Latency {
    fn of(h: &HistogramSnapshot) -> Self {
        Self {
            p50: h.quantile(0.50),
            p95: h.quantile(0.95),
            p99: h.quantile(0.99),
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct RouteFigures {
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) average_response_time: f64,
    pub(crate) latency: Latency,
}

#[derive(Debug, Serialize)]
pub(crate) struct ErrorEntry {
    /// `"2026-11-24 06:59:32 UTC"`.
    pub(crate) timestamp: String,
    pub(crate) error: String,
    /// `"METHOD /route/{template}"`.
    pub(crate) endpoint: String,
    /// The status sent; absent when the request ended without an answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) status: Option<u16>,
    /// As on `/metrics`: the 5xx code, `panic` or `aborted`.
    pub(crate) error_type: String,
}

impl HealthReport {
    /// Reads the state; probes the database if its last probe is older
    /// than the probe interval (bounded by the probe timeout).
    pub(crate) async fn read(state: &State) -> Self {
        let checks = state.start_checks(false);
        let (database_healthy, database) = match state.database().await {
            Some(section) => (section.healthy, section.body),
            None => (
                true,
                serde_json::json!({ "status": DATABASE_NOT_CONFIGURED }),
            ),
        };
        let checks = checks.report().await;
        let healthy = database_healthy && checks.failed_critical.is_empty();
        let runtime = match state.runtime() {
            Some(reading) => serde_json::to_value(reading).unwrap_or_default(),
            None => serde_json::json!({ "flavor": RUNTIME_NOT_WATCHED }),
        };
        let memory_analysis = match state.system().await {
            Some(system) => MemorySection::Read(Box::new(memory_analysis(&system))),
            None => MemorySection::Disabled {
                status: MEMORY_DISABLED,
            },
        };
        let uptime = state.uptime_seconds();
        Self {
            status: if healthy { "healthy" } else { "unhealthy" },
            uptime: Uptime {
                seconds: uptime,
                formatted: format_uptime(uptime),
            },
            database,
            memory_analysis,
            application: application(&state.requests().summary()),
            checks: checks.body,
            runtime,
        }
    }

    /// 200 when healthy, 503 otherwise.
    pub(crate) fn http_status(&self) -> StatusCode {
        if self.status == "healthy" {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

fn memory_analysis(s: &SystemSnapshot) -> MemoryAnalysis {
    let p = &s.process;
    let m = &s.memory;
    MemoryAnalysis {
        process: ProcessSection {
            process: ProcessInfo {
                pid: p.pid,
                memory_percent: s.memory_percent(),
                memory_info: MemoryInfo {
                    rss: p.resident_bytes,
                    vms: p.virtual_bytes,
                    shared: p.shared_bytes,
                    text: p.text_bytes,
                    lib: p.lib_bytes,
                    data: p.data_bytes,
                    dirty: 0,
                },
                num_threads: p.threads,
                open_files: p.open_fds.unwrap_or(0),
                connections: p.sockets,
            },
            threads: p
                .top_threads
                .iter()
                .map(|t| ThreadInfo {
                    thread_id: t.id,
                    name: t.name.clone(),
                    cpu_seconds: t.cpu_seconds,
                })
                .collect(),
        },
        system: SystemSection {
            virtual_memory: VirtualMemory {
                total: m.total,
                available: m.available,
                used: m.used,
                free: m.free,
                // psutil's definition: what is not available.
                percent: round1(percent(m.total.saturating_sub(m.available), m.total)),
                active: m.active,
                inactive: m.inactive,
                buffers: m.buffers,
                cached: m.cached,
                shared: m.shared,
            },
            swap_memory: SwapMemory {
                total: s.swap.total,
                used: s.swap.used,
                free: s.swap.free,
                percent: round1(percent(s.swap.used, s.swap.total)),
                sin: s.swap.swapped_in,
                sout: s.swap.swapped_out,
            },
        },
    }
}

fn application(s: &RequestSummary) -> Application {
    let latency = Latency::of;
    Application {
        total_requests: s.all.requests(),
        error_count: s.all.errors,
        error_rate: percent(s.all.errors, s.all.requests()),
        average_response_time: s.all.duration.mean(),
        status_codes: s.status_codes.clone(),
        endpoints: s.endpoints.clone(),
        recent_errors: s.recent_errors.iter().map(error_entry).collect(),
        latency: latency(&s.all.duration),
        routes: s
            .routes
            .iter()
            .map(|(route, t)| {
                let figures = RouteFigures {
                    requests: t.requests(),
                    errors: t.errors,
                    average_response_time: t.duration.mean(),
                    latency: latency(&t.duration),
                };
                (route.clone(), figures)
            })
            .collect(),
    }
}

fn error_entry(e: &RecentError) -> ErrorEntry {
    ErrorEntry {
        timestamp: format_utc(e.time),
        error: e.message.clone(),
        endpoint: format!("{} {}", e.method.as_str(), e.route),
        status: (e.status != NO_STATUS).then_some(e.status),
        error_type: e.error.error_type(e.status).into_owned(),
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// `"1d 2h 3m 4s"`, leaving out leading zero units.
pub(crate) fn format_uptime(seconds: f64) -> String {
    let total = seconds.max(0.0) as u64;
    let (d, h, m, s) = (
        total / 86_400,
        total % 86_400 / 3600,
        total % 3600 / 60,
        total % 60,
    );
    let mut parts = Vec::with_capacity(4);
    for (value, unit) in [(d, "d"), (h, "h"), (m, "m")] {
        if value > 0 {
            parts.push(format!("{value}{unit}"));
        }
    }
    parts.push(format!("{s}s"));
    parts.join(" ")
}

/// `"2026-11-24 06:59:32 UTC"`: RFC 3339 as humantime writes it, with a
/// space for the `T` and `UTC` for the `Z`.
fn format_utc(time: SystemTime) -> String {
    let rfc3339 = humantime::format_rfc3339_seconds(time).to_string();
    format!(
        "{} UTC",
        rfc3339.trim_end_matches('Z').replacen('T', " ", 1)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn uptime_leaves_out_leading_zero_units() {
        assert_eq!(format_uptime(2.47), "2s");
        assert_eq!(format_uptime(93_784.0), "1d 2h 3m 4s");
        assert_eq!(format_uptime(3600.0), "1h 0s");
    }

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_935_572);
        assert_eq!(format_utc(t), "2026-11-29 06:59:32 UTC");
        assert_eq!(format_utc(UNIX_EPOCH), "1970-01-01 00:00:00 UTC");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(format_utc(leap), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn an_unhealthy_report_answers_503() {
        let watch = crate::ServerWatch::builder().build().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut report = runtime.block_on(HealthReport::read(watch.state()));
        assert_eq!(report.http_status(), StatusCode::OK);
        report.status = "unhealthy";
        assert_eq!(report.http_status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
