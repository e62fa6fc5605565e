//! The error of a wrong setting.

use std::fmt;

/// A setting given to [`Builder`](crate::Builder), or read from the
/// environment, was wrong. It names the setting: the builder method, or the
/// environment variable.
///
/// ```
/// let err = serverwatch::ServerWatch::builder().path_prefix("ops/").build().unwrap_err();
/// assert_eq!(err.setting(), "path_prefix");
/// assert!(err.to_string().contains("path_prefix"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError {
    setting: &'static str,
    reason: String,
}

impl BuildError {
    pub(crate) fn new(setting: &'static str, reason: impl Into<String>) -> Self {
        Self {
            setting,
            reason: reason.into(),
        }
    }

    /// The name of the wrong setting: the [`Builder`](crate::Builder) method,
    /// or the environment variable it was read from.
    ///
    /// ```
    /// let err = serverwatch::ServerWatch::builder().recent_errors(5000).build().unwrap_err();
    /// assert_eq!(err.setting(), "recent_errors");
    /// ```
    pub fn setting(&self) -> &'static str {
        self.setting
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid serverwatch setting `{}`: {}",
            self.setting, self.reason
        )
    }
}

impl std::error::Error for BuildError {}
