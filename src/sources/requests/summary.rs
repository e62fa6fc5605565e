//! The request figures `/health` and the dashboard show: totals, errors,
//! and the same per status, per endpoint and per route. Label sets past the
//! cardinality cap are counted under `other`, and their errors still count.

use std::collections::BTreeMap;

use super::{RecentError, RequestStore, SeriesLabels, status_key};
use crate::model::family::OVERFLOW_LABEL;
use crate::model::histogram::Totals;

/// A summary of every request recorded so far.
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestSummary {
    /// Every request, errors, panics and aborted ones included.
    pub(crate) all: Totals,
    /// Requests per status code (`"200"`), `aborted` for those that ended
    /// without an answer, `other` past the cap.
    pub(crate) status_codes: BTreeMap<String, u64>,
    /// Requests per `"METHOD /route/{template}"`, `other` past the cap.
    pub(crate) endpoints: BTreeMap<String, u64>,
    /// Per route template, all methods together; `other` past the cap.
    pub(crate) routes: BTreeMap<String, Totals>,
    /// Per label of the app's, per value; `other` past the cap.
    pub(crate) labels: BTreeMap<String, BTreeMap<String, Totals>>,
    /// Newest first.
    pub(crate) recent_errors: Vec<RecentError>,
}

impl RequestStore {
    /// Adds up every series.
    pub(crate) fn summary(&self) -> RequestSummary {
        let mut s = RequestSummary::default();
        let resolver = self.labelling.resolver();
        for series in self.snapshot() {
            let d = &series.duration;
            let failed = series.labels.failed();
            let (status, endpoint, route) = match &series.labels {
                SeriesLabels::Series(k) => (
                    self.labelling
                        .status_label(k.status)
                        .unwrap_or_else(|| k.status_key()),
                    format!("{} {}", k.method.as_str(), k.route),
                    k.route.to_string(),
                ),
                SeriesLabels::Overflow(k) => (
                    // An error's status is kept past the cap.
                    if k.error.is_some() {
                        status_key(k.status)
                    } else {
                        OVERFLOW_LABEL.to_owned()
                    },
                    OVERFLOW_LABEL.to_owned(),
                    OVERFLOW_LABEL.to_owned(),
                ),
            };
            s.all.add(d, failed);
            *s.status_codes.entry(status).or_default() += d.count;
            *s.endpoints.entry(endpoint).or_default() += d.count;
            s.routes.entry(route).or_default().add(d, failed);
            let own = match &series.labels {
                SeriesLabels::Series(k) => resolver.labels(k.labels),
                SeriesLabels::Overflow(_) => {
                    let names = resolver.attributes().iter();
                    names.map(|name| (*name, OVERFLOW_LABEL)).collect()
                }
            };
            for (name, value) in own {
                let values = s.labels.entry(name.otel.to_owned()).or_default();
                values.entry(value.to_owned()).or_default().add(d, failed);
            }
        }
        s.recent_errors = self.recent_errors();
        s
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::observation;
    use super::*;

    #[test]
    fn errors_count_per_route_and_past_the_cap() {
        let store = RequestStore::new(2, 10, super::super::RequestBounds::default(), true);
        store.record(&observation("/a", 200, 1));
        store.record(&observation("/a", 500, 3));
        store.record(&observation("/b", 503, 1));
        store.record(&observation("/c", 200, 1));
        let s = store.summary();
        assert_eq!((s.all.requests(), s.all.errors), (4, 2));
        assert_eq!((s.routes["/a"].requests(), s.routes["/a"].errors), (2, 1));
        assert_eq!(s.routes["/a"].duration.mean(), 0.002);
        assert_eq!(s.routes["other"].errors, 1, "{s:?}");
        assert_eq!(s.status_codes["503"], 1);
        assert_eq!(s.status_codes["other"], 1);
        assert_eq!(s.endpoints["GET /a"], 2);
        assert_eq!(s.recent_errors.len(), 2);
    }
}
