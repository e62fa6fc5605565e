//! Exporters: each reads the shared state when asked and writes it out in
//! its own format. None of them is on the request path.

#[cfg(feature = "otlp")]
pub(crate) mod otlp;
pub(crate) mod points;
pub(crate) mod prometheus;
