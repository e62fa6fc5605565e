//! Request metrics: a tower layer that records every request once into a
//! lock-free store that all views read.
//!
//! Per request the layer takes the method, the matched route template (never
//! the raw path), the status, the body sizes and the duration, and adds them
//! to the atomic histograms of that label set: when the response is ready if
//! its body is already in memory, else when the streamed body is done. A
//! panicking handler is caught and answered with 500.

mod body;
mod layer;
pub(crate) mod store;

#[doc(inline)]
pub use layer::{RequestMetricsLayer, RequestMetricsService, ResponseFuture};
