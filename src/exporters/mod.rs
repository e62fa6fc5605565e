//! The exporters: each reads the sources ([`Sources`]) when it is asked,
//! and shows them in its own form. None of them is on the request path.
//!
//! - [`prometheus`]: `/metrics`, in the Prometheus text formats and protobuf;
//! - [`otlp`]: the OTLP push, from a thread of its own;
//! - [`health`]: the `/health` document;
//! - [`dashboard`]: the built-in page and its history;
//! - [`routes`] and [`auth`]: the observability routes and their protection.

pub(crate) mod auth;
#[cfg(feature = "dashboard")]
pub(crate) mod dashboard;
pub(crate) mod health;
#[cfg(feature = "otlp")]
pub(crate) mod otlp;
#[cfg(not(feature = "otlp"))]
mod otlp_unavailable;
pub(crate) mod prometheus;
pub(crate) mod routes;

use std::sync::Arc;

use crate::config::BearerToken;
use crate::part::Part;
use crate::source::Sources;
use auth::Access;

/// The settings of the exporters that are parts.
pub(crate) fn parts() -> Vec<Box<dyn Part>> {
    vec![
        #[cfg(feature = "dashboard")]
        Box::new(dashboard::DashboardPart),
        #[cfg(feature = "otlp")]
        Box::new(otlp::OtlpPart::default()),
        #[cfg(not(feature = "otlp"))]
        Box::new(otlp_unavailable::OtlpUnavailable),
    ]
}

/// What the observability routes serve from.
#[derive(Debug)]
pub(crate) struct Endpoints {
    sources: Arc<Sources>,
    access: Access,
    /// The settings of `/metrics`.
    exposition: prometheus::Exposition,
    /// The app's own prometheus-client registry, added to `/metrics`.
    registry: Option<Arc<prometheus_client::registry::Registry>>,
    scrape_limits: prometheus::ScrapeLimits,
    /// What the parts left for the routes (the dashboard's history).
    #[cfg_attr(not(feature = "dashboard"), allow(dead_code, reason = "the history"))]
    values: http::Extensions,
}

impl Endpoints {
    pub(crate) fn new(
        sources: Arc<Sources>,
        bearer_token: Option<BearerToken>,
        exposition: prometheus::Exposition,
        registry: Option<Arc<prometheus_client::registry::Registry>>,
        max_scrapes_in_flight: usize,
        values: http::Extensions,
    ) -> Self {
        Self {
            sources,
            access: Access::new(bearer_token),
            exposition,
            registry,
            scrape_limits: prometheus::ScrapeLimits::new(max_scrapes_in_flight),
            values,
        }
    }

    pub(crate) fn exposition(&self) -> &prometheus::Exposition {
        &self.exposition
    }

    pub(crate) fn sources(&self) -> &Arc<Sources> {
        &self.sources
    }

    pub(crate) fn scrape_limits(&self) -> &prometheus::ScrapeLimits {
        &self.scrape_limits
    }

    pub(crate) fn access(&self) -> &Access {
        &self.access
    }

    pub(crate) fn registry(&self) -> Option<&prometheus_client::registry::Registry> {
        self.registry.as_deref()
    }

    /// What a part left of type `T`.
    #[cfg_attr(not(feature = "dashboard"), allow(dead_code, reason = "the history"))]
    pub(crate) fn value<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.values.get::<T>()
    }
}
