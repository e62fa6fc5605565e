//! Body wrappers: the response body records the request when it is done
//! (sent, or dropped because the client left), and a request body without a
//! known length is counted as it is read.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::layer::Completion;

pin_project! {
    /// The response body of an instrumented request.
    ///
    /// It yields the handler's body unchanged (or serverwatch's own 500 body
    /// after a panic) and records the request once, when it is dropped.
    #[derive(Debug)]
    pub struct RecordingBody<B> {
        #[pin]
        kind: Kind<B>,
        completion: Completion,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Panicked { body: Option<Bytes> },
    }
}

impl<B> RecordingBody<B> {
    pub(crate) fn inner(body: B, completion: Completion) -> Self {
        Self {
            kind: Kind::Inner { body },
            completion,
        }
    }

    pub(crate) fn panicked(body: &'static str, completion: Completion) -> Self {
        Self {
            kind: Kind::Panicked {
                body: Some(Bytes::from_static(body.as_bytes())),
            },
            completion,
        }
    }
}

impl<B> Body for RecordingBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let frame = match this.kind.project() {
            KindProj::Inner { body } => std::task::ready!(body.poll_frame(cx)),
            KindProj::Panicked { body } => body.take().map(|b| Ok(Frame::data(b))),
        };
        if let Some(data) = data_of(&frame) {
            this.completion.add_response_bytes(data.remaining());
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Panicked { body } => body.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Panicked { body } => {
                SizeHint::with_exact(body.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}

pin_project! {
    /// A request body of unknown length whose bytes are counted as the
    /// handler reads them.
    pub(crate) struct CountingBody<B> {
        #[pin]
        body: B,
        read: Arc<AtomicU64>,
    }
}

impl<B> CountingBody<B> {
    pub(crate) fn new(body: B, read: Arc<AtomicU64>) -> Self {
        Self { body, read }
    }
}

impl<B> Body for CountingBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.body.poll_frame(cx));
        if let Some(data) = data_of(&frame) {
            this.read
                .fetch_add(data.remaining() as u64, Ordering::Relaxed);
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

fn data_of<E>(frame: &Option<Result<Frame<Bytes>, E>>) -> Option<&Bytes> {
    match frame {
        Some(Ok(frame)) => frame.data_ref(),
        _ => None,
    }
}
