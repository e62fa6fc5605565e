//! The `application` section of `/health`: the request summary with the
//! field names of Python's `EnhancedHealthCheck`, latency percentiles and
//! per-route figures added.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Serialize;

use super::RecentError;
use super::summary::RequestSummary;
use crate::model::family::percent;
use crate::model::histogram::{HistogramSnapshot, Totals};

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
    /// Per label of the app's, per value; absent without them.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) labels: BTreeMap<String, BTreeMap<String, RouteFigures>>,
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

impl RequestSummary {
    /// The `application` section of `/health`.
    pub(crate) fn application(&self) -> Application {
        let s = self;
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
            routes: figures(&s.routes),
            labels: s
                .labels
                .iter()
                .map(|(name, values)| (name.clone(), figures(values)))
                .collect(),
        }
    }
}

/// The figures of each of `totals`.
fn figures(totals: &BTreeMap<String, Totals>) -> BTreeMap<String, RouteFigures> {
    totals
        .iter()
        .map(|(key, t)| {
            let figures = RouteFigures {
                requests: t.requests(),
                errors: t.errors,
                average_response_time: t.duration.mean(),
                latency: Latency::of(&t.duration),
            };
            (key.clone(), figures)
        })
        .collect()
}

fn error_entry(e: &RecentError) -> ErrorEntry {
    ErrorEntry {
        timestamp: format_utc(e.time),
        error: e.message.clone(),
        endpoint: format!("{} {}", e.method.as_str(), e.route),
        status: e.status.map(|s| s.as_u16()),
        error_type: e.error.error_type(e.status).into_owned(),
    }
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
    fn timestamps_are_utc_calendar_dates() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_935_572);
        assert_eq!(format_utc(t), "2026-11-29 06:59:32 UTC");
        assert_eq!(format_utc(UNIX_EPOCH), "1970-01-01 00:00:00 UTC");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(format_utc(leap), "2000-02-29 00:00:00 UTC");
    }
}
