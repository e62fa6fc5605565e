//! How an optional part (an integration or an exporter) joins a
//! [`Builder`](crate::Builder): it keeps its own settings as a [`Part`], and
//! at `build()` checks them and adds what it brings to the [`Assembly`]: a
//! source, a handle, a thread to start once every source is known. The
//! builder knows parts only through this trait.

use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;

use crate::error::BuildError;
use crate::model::instruments::Instrument;
use crate::source::{BoxFuture, Source, Sources};

/// How a setting's environment variable is read: `std::env::var` in
/// `build()`, a table in the tests.
pub(crate) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The settings of one part, as the builder keeps them until `build()`.
pub(crate) trait Part: Any + Debug + Send + Sync {
    fn clone_part(&self) -> Box<dyn Part>;

    fn as_any_mut(&mut self) -> &mut dyn Any;

    /// Every instrument it may show: names that `disable_instruments` may
    /// give, and that the app's own metrics may not take.
    fn instruments(&self) -> &'static [&'static Instrument] {
        &[]
    }

    /// Reads its environment variables, before anything is built; gives
    /// the service name they hold, if any, for when none is set.
    fn read_env(&mut self, _env: Env<'_>) -> Result<Option<String>, BuildError> {
        Ok(None)
    }

    /// Checks its settings and adds what it brings.
    fn build(self: Box<Self>, assembly: &mut Assembly) -> Result<(), BuildError>;
}

/// Something a part started that must be stopped at shutdown.
pub(crate) trait Running: Send + Sync + Debug {
    /// Ends it, within its own bound.
    fn shutdown(&self) -> BoxFuture<'_, ()>;
}

/// What starts once every source is known, such as an exporter's thread.
pub(crate) type Start =
    Box<dyn FnOnce(&Arc<Sources>, &mut Handles) -> Result<(), BuildError> + Send>;

/// What the parts leave for the handle: typed values (the facade's
/// recorder, the dashboard's history) and what runs until shutdown.
#[derive(Debug, Default)]
pub(crate) struct Handles {
    pub(crate) values: http::Extensions,
    pub(crate) running: Vec<Box<dyn Running>>,
}

/// What `build()` assembles.
#[derive(Debug)]
pub(crate) struct Assembly {
    /// Label sets per instrument before the overflow series.
    #[cfg_attr(
        not(feature = "metrics"),
        allow(dead_code, reason = "the facade's cap")
    )]
    pub(crate) max_series: usize,
    /// Family names on `/metrics` that are taken.
    #[cfg_attr(
        not(feature = "metrics"),
        allow(dead_code, reason = "the facade's check")
    )]
    pub(crate) reserved: Vec<String>,
    pub(crate) sources: Vec<Arc<dyn Source>>,
    pub(crate) handles: Handles,
    /// What runs once every source is known.
    pub(crate) starts: Vec<StartDebug>,
}

/// A [`Start`] with a name for `Debug`.
pub(crate) struct StartDebug(pub(crate) &'static str, pub(crate) Start);

impl Debug for StartDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl Assembly {
    pub(crate) fn source(&mut self, source: Arc<dyn Source>) {
        self.sources.push(source);
    }
}

/// Every part of a builder, in the order they register their sources.
#[derive(Debug)]
pub(crate) struct Parts(Vec<Box<dyn Part>>);

impl Clone for Parts {
    fn clone(&self) -> Self {
        Self(self.0.iter().map(|p| p.clone_part()).collect())
    }
}

impl Parts {
    pub(crate) fn new(parts: Vec<Box<dyn Part>>) -> Self {
        Self(parts)
    }

    /// The settings of the part of type `P`.
    ///
    /// # Panics
    ///
    /// If no part of that type is registered: a part's settings are only
    /// reachable from code compiled with it.
    pub(crate) fn get_mut<P: Part>(&mut self) -> &mut P {
        self.0
            .iter_mut()
            .find_map(|p| p.as_any_mut().downcast_mut::<P>())
            .expect("every part is registered in Builder::default")
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Box<dyn Part>> {
        self.0.iter_mut()
    }

    pub(crate) fn into_iter(self) -> impl Iterator<Item = Box<dyn Part>> {
        self.0.into_iter()
    }
}

/// A part's `clone_part` and `as_any_mut`, which are the same for every
/// part.
macro_rules! part_boilerplate {
    () => {
        fn clone_part(&self) -> Box<dyn $crate::part::Part> {
            Box::new(self.clone())
        }

        fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
            self
        }
    };
}
pub(crate) use part_boilerplate;
