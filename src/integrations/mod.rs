//! What is watched besides the requests. Each integration owns its state,
//! reads it when a view asks, and gives its metric families and its
//! `/health` section through a narrow API.

pub(crate) mod checks;
#[cfg(feature = "metrics")]
pub(crate) mod facade;
#[cfg(feature = "mongodb")]
pub(crate) mod mongo;
pub(crate) mod probe;
pub(crate) mod runtime;
pub(crate) mod system;
