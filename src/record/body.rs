//! A body wrapper that counts the bytes going through it, for the bodies
//! whose length is not known up front: streamed responses (which are
//! recorded when the body is done, sent or dropped because the client left)
//! and request bodies without a Content-Length.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

/// Where a [`CountingBody`] adds the bytes it saw.
pub(crate) trait ByteSink {
    fn add(&mut self, bytes: usize);
}

impl ByteSink for Arc<AtomicU64> {
    fn add(&mut self, bytes: usize) {
        self.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

impl<S: ByteSink> ByteSink for Option<S> {
    fn add(&mut self, bytes: usize) {
        if let Some(sink) = self {
            sink.add(bytes);
        }
    }
}

pin_project! {
    /// Yields `body` unchanged, adding the length of every data frame to
    /// `sink`; the sink is dropped with the body.
    #[derive(Debug)]
    pub(crate) struct CountingBody<B, S> {
        #[pin]
        body: B,
        sink: S,
    }
}

impl<B, S> CountingBody<B, S> {
    pub(crate) fn new(body: B, sink: S) -> Self {
        Self { body, sink }
    }
}

impl<B, S> Body for CountingBody<B, S>
where
    B: Body,
    S: ByteSink,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.body.poll_frame(cx));
        if let Some(Ok(frame)) = &frame
            && let Some(data) = frame.data_ref()
        {
            this.sink.add(data.remaining());
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
