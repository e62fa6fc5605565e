//! The `metrics` facade's settings (feature `metrics`).

use std::time::Duration;

use super::Builder;
use crate::sources::facade::{FacadeSettings, MetricMatcher};

impl Builder {
    /// The classic bucket bounds of the `metrics`-facade histograms that
    /// `matcher` names (a full name as given to `histogram!`, or a
    /// [`MetricMatcher`] prefix or suffix), in their unit once converted
    /// (seconds for a time unit, bytes for a size), checked as
    /// [`duration_buckets`](Self::duration_buckets) are; an empty pattern
    /// fails `build()`. When several settings match a name, the full name
    /// wins, then the longest prefix or suffix, then the one given last.
    /// Default: the request-duration bounds for seconds, the body-size
    /// bounds for bytes, else 1, 2, 5, 10, … 10 000.
    ///
    /// ```
    /// use serverwatch::MetricMatcher;
    ///
    /// let watch = serverwatch::ServerWatch::builder()
    ///     .metrics_histogram_buckets("checkout.items", [1.0, 2.0, 5.0, 10.0, 20.0])
    ///     .metrics_histogram_buckets(MetricMatcher::Suffix(".wait".into()), [0.01, 0.1, 1.0])
    ///     .build()?;
    /// let err = serverwatch::ServerWatch::builder()
    ///     .metrics_histogram_buckets(MetricMatcher::Prefix("db.".into()), [1.0, 0.5])
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.setting(), "metrics_histogram_buckets");
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    pub fn metrics_histogram_buckets(
        mut self,
        matcher: impl Into<MetricMatcher>,
        bounds: impl Into<Vec<f64>>,
    ) -> Self {
        self.parts
            .get_mut::<FacadeSettings>()
            .buckets(matcher.into(), bounds.into());
        self
    }

    /// Drops a `metrics`-facade counter or histogram series (one label set
    /// of a name) that has seen no update for `idle`, so that a service
    /// whose labels churn (a job id, a tenant) does not keep every label
    /// set it ever saw, and frees its place under
    /// [`max_series`](Self::max_series). It goes at a reading (a scrape,
    /// an OTLP export): the first one `idle` after the first reading that
    /// followed its last update. Updated again, it comes back as a new
    /// series from 0, even through a handle the app kept: a counter's
    /// lower value reads as a reset to Prometheus's `rate` and `increase`.
    /// Gauges never expire, since a gauge's last value stays true until it
    /// is set again. Zero fails `build()`. Default: series never expire.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let watch = serverwatch::ServerWatch::builder()
    ///     .metrics_idle_timeout(Duration::from_secs(600))
    ///     .build()?;
    /// let err = serverwatch::ServerWatch::builder()
    ///     .metrics_idle_timeout(Duration::ZERO)
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.setting(), "metrics_idle_timeout");
    /// # Ok::<(), serverwatch::BuildError>(())
    /// ```
    pub fn metrics_idle_timeout(mut self, idle: Duration) -> Self {
        self.parts.get_mut::<FacadeSettings>().idle_timeout(idle);
        self
    }
}
