//! The sampled trace a request is handled in, for its exemplar: read from
//! the current OpenTelemetry context when the request starts. A `tracing`
//! span is seen there too, through `tracing-opentelemetry`, which makes a
//! span's context current while the span is entered (its default).

use crate::model::exemplar::{ExemplarFilter, SpanIds};

/// The trace and span of the current context, if it holds a span that
/// `filter` admits.
#[cfg(feature = "exemplars")]
pub(super) fn current(filter: ExemplarFilter) -> Option<SpanIds> {
    use opentelemetry::trace::TraceContextExt;

    if filter == ExemplarFilter::AlwaysOff {
        return None;
    }
    // Read in place: `Context::current()` would clone the context.
    opentelemetry::Context::map_current(|cx| {
        let span = cx.span();
        let context = span.span_context();
        let admitted = filter == ExemplarFilter::AlwaysOn || context.is_sampled();
        (context.is_valid() && admitted).then(|| SpanIds {
            trace_id: context.trace_id().to_bytes(),
            span_id: context.span_id().to_bytes(),
        })
    })
}

/// Without the `exemplars` feature, no trace is read.
#[cfg(not(feature = "exemplars"))]
pub(super) fn current(_: ExemplarFilter) -> Option<SpanIds> {
    None
}
