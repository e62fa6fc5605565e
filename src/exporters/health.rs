//! `/health`: a JSON document with the keys and nesting of Python's
//! `EnhancedHealthCheck` (the layout existing consumers read). Each source
//! gives its own section; this module only lays them out, in that layout's
//! order, with a placeholder for each section no source gave.

use http::StatusCode;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Value, json};

use crate::source::{Section, Sources};

/// The sections in the document's order, and what each says when no source
/// gives it (the database is not watched, the system not read, no runtime
/// found).
fn layout() -> [(&'static str, Value); 5] {
    [
        ("database", json!({ "status": "not configured" })),
        ("memory_analysis", json!({ "status": "disabled" })),
        ("application", json!({})),
        ("checks", json!({})),
        ("runtime", json!({ "flavor": "none" })),
    ]
}

/// The whole document.
#[derive(Debug)]
pub(crate) struct HealthReport {
    /// Whether every section is healthy.
    healthy: bool,
    uptime_seconds: f64,
    sections: Vec<(&'static str, Value)>,
}

impl HealthReport {
    /// Reads every source, probing what is stale (each probe bounded by its
    /// own timeout, all at once).
    pub(crate) async fn read(sources: &Sources) -> Self {
        let mut given = sources.health().await;
        let healthy = given.iter().all(|s| s.healthy);
        let mut sections: Vec<(&'static str, Value)> = layout()
            .into_iter()
            .map(
                |(key, placeholder)| match given.iter().position(|s| s.key == key) {
                    Some(at) => (key, given.remove(at).body),
                    None => (key, placeholder),
                },
            )
            .collect();
        // A source's section outside the layout goes after it.
        sections.extend(
            given
                .into_iter()
                .map(|Section { key, body, .. }| (key, body)),
        );
        Self {
            healthy,
            uptime_seconds: sources.uptime_seconds(),
            sections,
        }
    }

    /// 200 when healthy, 503 otherwise.
    pub(crate) fn http_status(&self) -> StatusCode {
        if self.healthy {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

impl Serialize for HealthReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.sections.len() + 2))?;
        map.serialize_entry("status", if self.healthy { "healthy" } else { "unhealthy" })?;
        let uptime = json!({
            "seconds": self.uptime_seconds,
            "formatted": format_uptime(self.uptime_seconds),
        });
        map.serialize_entry("uptime", &uptime)?;
        for (key, body) in &self.sections {
            map.serialize_entry(key, body)?;
        }
        map.end()
    }
}

/// `"1d 2h 3m 4s"`, leaving out leading zero units.
fn format_uptime(seconds: f64) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_leaves_out_leading_zero_units() {
        assert_eq!(format_uptime(2.47), "2s");
        assert_eq!(format_uptime(93_784.0), "1d 2h 3m 4s");
        assert_eq!(format_uptime(3600.0), "1h 0s");
    }

    #[test]
    fn the_sections_keep_the_layout_and_an_unhealthy_one_answers_503() {
        let watch = crate::ServerWatch::builder().build().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let report = runtime.block_on(HealthReport::read(watch.sources()));
        assert_eq!(report.http_status(), StatusCode::OK);
        let text = serde_json::to_string(&report).unwrap();
        let keys = [
            "status",
            "uptime",
            "database",
            "memory_analysis",
            "application",
            "checks",
            "runtime",
        ];
        let at: Vec<usize> = keys
            .iter()
            .map(|k| text.find(&format!("\"{k}\":")).unwrap())
            .collect();
        assert!(at.is_sorted(), "{text}");
        let unhealthy = HealthReport {
            healthy: false,
            ..report
        };
        assert_eq!(unhealthy.http_status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            serde_json::to_string(&unhealthy)
                .unwrap()
                .contains(r#""status":"unhealthy""#)
        );
    }
}
