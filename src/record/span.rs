//! The sampled trace a request is handled in, for its exemplar: read from
//! the current OpenTelemetry context when the request starts. A `tracing`
//! span is seen there too, through `tracing-opentelemetry`, which makes a
//! span's context current while the span is entered (its default).

use crate::model::exemplar::SpanIds;

/// The trace and span of the current context, if it holds a sampled span.
#[cfg(feature = "exemplars")]
pub(super) fn current() -> Option<SpanIds> {
    use opentelemetry::trace::TraceContextExt;

    // Read in place: `Context::current()` would clone the context.
    opentelemetry::Context::map_current(|cx| {
        let span = cx.span();
        let context = span.span_context();
        (context.is_valid() && context.is_sampled()).then(|| SpanIds {
            trace_id: context.trace_id().to_bytes(),
            span_id: context.span_id().to_bytes(),
        })
    })
}

/// Without the `exemplars` feature, no trace is read.
#[cfg(not(feature = "exemplars"))]
pub(super) fn current() -> Option<SpanIds> {
    None
}
