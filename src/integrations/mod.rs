//! What is watched besides the requests. Each integration owns its state,
//! reads it when a view asks, and gives its metric families and its
//! `/health` section through a narrow API.

#[cfg(feature = "mongodb")]
pub(crate) mod mongo;
pub(crate) mod system;
