//! `/health`: the JSON document of the original `EnhancedHealthCheck`, with
//! every key and nesting kept, its defects fixed, and latency percentiles and
//! per-route figures added. Every number is read from the same state that
//! `/metrics` encodes.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use http::StatusCode;
use serde::Serialize;

use crate::Shared;
use crate::histogram::HistogramSnapshot;
use crate::http::store::RecentError;
use crate::system::{SystemSnapshot, percent};

/// The `database.status` value while no database is watched.
pub(crate) const DATABASE_NOT_CONFIGURED: &str = "not configured";

/// The whole document.
#[derive(Debug, Serialize)]
pub(crate) struct HealthReport {
    pub(crate) status: &'static str,
    pub(crate) uptime: Uptime,
    pub(crate) database: Database,
    pub(crate) memory_analysis: MemoryAnalysis,
    pub(crate) application: Application,
}

#[derive(Debug, Serialize)]
pub(crate) struct Uptime {
    pub(crate) seconds: f64,
    pub(crate) formatted: String,
}

/// `database`: `{"status": "not configured"}`, or the probe's report.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum Database {
    NotConfigured {
        status: &'static str,
    },
    #[cfg(feature = "mongodb")]
    Mongo(crate::mongo::DatabaseReport),
}

impl Database {
    fn healthy(&self) -> bool {
        match self {
            Database::NotConfigured { .. } => true,
            #[cfg(feature = "mongodb")]
            Database::Mongo(report) => report.healthy,
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct MemoryAnalysis {
    process: ProcessSection,
    system: SystemSection,
}

#[derive(Debug, Serialize)]
struct ProcessSection {
    process: ProcessInfo,
    /// The busiest threads by CPU time. (The seed listed the process RSS once
    /// per thread: threads share one address space, so that was not true.)
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
    /// Every request that got a response, errors and panics included.
    pub(crate) total_requests: u64,
    /// Requests answered with 5xx, panics included.
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
    fn of(h: &HistogramSnapshot, bounds: &[f64]) -> Self {
        Self {
            p50: h.quantile(bounds, 0.50),
            p95: h.quantile(bounds, 0.95),
            p99: h.quantile(bounds, 0.99),
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct RouteFigures {
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) average_response_time: f64,
    pub(crate) latency: Latency,
    #[serde(skip)]
    duration: HistogramSnapshot,
}

#[derive(Debug, Serialize)]
pub(crate) struct ErrorEntry {
    /// `"2026-11-24 06:59:32 UTC"`, as in the seed.
    pub(crate) timestamp: String,
    pub(crate) error: String,
    /// `"METHOD /route/{template}"`.
    pub(crate) endpoint: String,
    pub(crate) status: u16,
}

impl HealthReport {
    /// Reads the shared state; probes the database if its last probe is
    /// older than the probe interval (bounded by the probe timeout).
    pub(crate) async fn read(shared: &Shared) -> Self {
        let database = database(shared).await;
        let system = shared.system.snapshot();
        Self {
            status: if database.healthy() {
                "healthy"
            } else {
                "unhealthy"
            },
            uptime: Uptime {
                seconds: system.uptime_seconds,
                formatted: format_uptime(system.uptime_seconds),
            },
            database,
            memory_analysis: memory_analysis(&system),
            application: application(shared),
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

async fn database(shared: &Shared) -> Database {
    #[cfg(feature = "mongodb")]
    if let Some(mongo) = &shared.mongo {
        return Database::Mongo(mongo.report().await);
    }
    let _ = shared;
    Database::NotConfigured {
        status: DATABASE_NOT_CONFIGURED,
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

fn application(shared: &Shared) -> Application {
    let store = &shared.requests;
    let bounds = store.duration_bounds.exported;
    let mut all = HistogramSnapshot::default();
    let mut errors = 0;
    let mut status_codes = BTreeMap::new();
    let mut endpoints = BTreeMap::new();
    let mut routes: BTreeMap<String, RouteFigures> = BTreeMap::new();
    for series in store.snapshot() {
        let d = &series.duration;
        all.merge(d);
        let (status, endpoint, route, failed) = match &series.key {
            Some(k) => (
                k.status.to_string(),
                format!("{} {}", k.method.as_str(), k.route),
                k.route.to_string(),
                k.error.is_some(),
            ),
            // Label sets past the cap: counted, but without their labels.
            None => ("other".into(), "other".into(), "other".into(), false),
        };
        if failed {
            errors += d.count;
        }
        *status_codes.entry(status).or_default() += d.count;
        *endpoints.entry(endpoint).or_default() += d.count;
        let r = routes.entry(route).or_insert_with(|| RouteFigures {
            requests: 0,
            errors: 0,
            average_response_time: 0.0,
            latency: Latency::of(&HistogramSnapshot::default(), bounds),
            duration: HistogramSnapshot::default(),
        });
        r.requests += d.count;
        r.errors += if failed { d.count } else { 0 };
        r.duration.merge(d);
    }
    for r in routes.values_mut() {
        r.average_response_time = r.duration.mean();
        r.latency = Latency::of(&r.duration, bounds);
    }
    Application {
        total_requests: all.count,
        error_count: errors,
        error_rate: percent(errors, all.count),
        average_response_time: all.mean(),
        status_codes,
        endpoints,
        recent_errors: store.recent_errors().iter().map(error_entry).collect(),
        latency: Latency::of(&all, bounds),
        routes,
    }
}

fn error_entry(e: &RecentError) -> ErrorEntry {
    ErrorEntry {
        timestamp: format_utc(e.time),
        error: e.message.clone(),
        endpoint: format!("{} {}", e.method.as_str(), e.route),
        status: e.status,
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// `"1d 2h 3m 4s"`, leaving out leading zero units, as the seed did.
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

/// `"2026-11-24 06:59:32 UTC"`.
fn format_utc(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn uptime_is_formatted_like_the_seed() {
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
}
