//! The views: each reads the state ([`crate::state::State`]) when it is
//! asked, and shows it in its own form. None of them is on the request path.
//!
//! - [`prometheus`]: `/metrics`, in the Prometheus text formats;
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
pub(crate) mod prometheus;
pub(crate) mod routes;

use std::sync::Arc;

use crate::config::BearerToken;
use crate::state::State;
use auth::Access;

/// What the observability routes serve from.
#[derive(Debug)]
pub(crate) struct Views {
    state: Arc<State>,
    access: Access,
    /// Put before every name on `/metrics`.
    metric_prefix: Option<String>,
    #[cfg(feature = "dashboard")]
    history: Arc<dashboard::History>,
    /// The app's own prometheus-client registry, added to `/metrics`.
    registry: Option<Arc<prometheus_client::registry::Registry>>,
}

impl Views {
    /// The views of `state`; starts the dashboard's history sampler.
    pub(crate) fn new(
        state: Arc<State>,
        bearer_token: Option<BearerToken>,
        metric_prefix: Option<String>,
        registry: Option<Arc<prometheus_client::registry::Registry>>,
    ) -> Self {
        Self {
            #[cfg(feature = "dashboard")]
            history: dashboard::History::start(&state),
            state,
            access: Access::new(bearer_token),
            metric_prefix,
            registry,
        }
    }

    pub(crate) fn metric_prefix(&self) -> Option<&str> {
        self.metric_prefix.as_deref()
    }

    pub(crate) fn state(&self) -> &State {
        &self.state
    }

    pub(crate) fn access(&self) -> &Access {
        &self.access
    }

    pub(crate) fn registry(&self) -> Option<&prometheus_client::registry::Registry> {
        self.registry.as_deref()
    }

    #[cfg(feature = "dashboard")]
    pub(crate) fn history(&self) -> &dashboard::History {
        &self.history
    }
}
