//! Request metrics: a tower layer that records every request once into the
//! request store ([`crate::sources::requests`]) that the exporters read.
//!
//! Per request the layer takes the method, the route template (never the
//! raw path), the status, the body sizes and the duration: when the
//! response is ready if its body is already in memory, else when the
//! streamed body is done. A panicking handler is caught and answered with
//! 500.

mod body;
mod claim;
mod future;
mod in_flight;
mod layer;
mod nested;
mod span;

pub use body::{RequestBody, ResponseBody};
pub(crate) use claim::Claims;
pub use future::ResponseFuture;
pub use layer::{AnyBody, AxumBody, RequestMetricsLayer, RequestMetricsService};
pub(crate) use nested::{NestedServices, check_path};
