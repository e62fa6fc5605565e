//! The metric model every other part speaks: what an instrument is, the
//! families of points a source gives when it is read, and the recording
//! primitives (histograms, exemplars, capped series sets). It is the lowest
//! layer: nothing here uses any other module of the crate.

pub(crate) mod exemplar;
pub(crate) mod exponential;
pub(crate) mod family;
pub(crate) mod histogram;
pub(crate) mod instruments;
pub(crate) mod series;
