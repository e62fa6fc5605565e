//! The `metrics` facade's settings (feature `metrics`).

use super::Builder;
use crate::sources::facade::FacadeSettings;

impl Builder {
    /// The classic bucket bounds of the `metrics`-facade histogram `name`
    /// (as given to `histogram!`), in its unit once converted (seconds for
    /// a time unit, bytes for a size), checked as
    /// [`duration_buckets`](Self::duration_buckets) are. Default: the
    /// request-duration bounds for seconds, the body-size bounds for bytes,
    /// else 1, 2, 5, 10, … 10 000.
    ///
    /// ```
    /// let builder = serverwatch::ServerWatch::builder()
    ///     .metrics_histogram_buckets("checkout.items", [1.0, 2.0, 5.0, 10.0, 20.0]);
    /// ```
    pub fn metrics_histogram_buckets(
        mut self,
        name: impl Into<String>,
        bounds: impl Into<Vec<f64>>,
    ) -> Self {
        self.parts
            .get_mut::<FacadeSettings>()
            .buckets(name.into(), bounds.into());
        self
    }
}
