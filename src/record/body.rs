//! The bodies on either side of the layer. [`CountingBody`] counts the
//! bytes going through it and notes a panic of the body it wraps: every
//! request body that is not empty (a declared length is not what was
//! received), and streamed responses (which are recorded when the body is
//! done, sent or dropped because the client left). [`RequestBody`] and
//! [`ResponseBody`] are what the layer passes on when it works with bodies
//! of any type.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::future::panic_message;
use super::in_flight::Completion;

/// Where a [`CountingBody`] adds the bytes it saw.
pub(crate) trait ByteSink {
    fn add(&mut self, bytes: usize);

    /// The body panicked with `message` (the panic then goes on).
    fn panicked(&mut self, _message: String) {}

    /// The body yielded an error: what was sent is cut short.
    fn failed(&mut self) {}
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

    fn panicked(&mut self, message: String) {
        if let Some(sink) = self {
            sink.panicked(message);
        }
    }

    fn failed(&mut self) {
        if let Some(sink) = self {
            sink.failed();
        }
    }
}

pin_project! {
    /// Yields `body` unchanged, adding the length of every data frame to
    /// `sink`; the sink is dropped with the body. A panic of `body` is told
    /// to the sink, then resumed: what the server does with it is unchanged.
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
        let body = this.body;
        let frame = match catch_unwind(AssertUnwindSafe(|| body.poll_frame(cx))) {
            Ok(polled) => std::task::ready!(polled),
            Err(payload) => {
                this.sink.panicked(panic_message(&*payload));
                resume_unwind(payload)
            }
        };
        match &frame {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    this.sink.add(data.remaining());
                }
            }
            Some(Err(_)) => this.sink.failed(),
            None => {}
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

pin_project! {
    /// The request body as the inner service of [`RequestMetricsService`]
    /// sees it: the original body, its bytes counted as they are read (a
    /// declared Content-Length is not trusted). It is read like any
    /// [`http_body::Body`].
    ///
    /// ```
    /// use http_body_util::BodyExt;
    /// use tower::{Layer, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let watch = serverwatch::ServerWatch::builder().build()?;
    /// let echo = tower::service_fn(|request: http::Request<serverwatch::RequestBody<String>>| async {
    ///     let body = request.into_body().collect().await?.to_bytes();
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(body)))
    /// });
    /// let response = watch.layer().layer(echo).oneshot(http::Request::new("ping".to_owned())).await?;
    /// assert_eq!(response.into_body().collect().await?.to_bytes(), "ping");
    /// # Ok(()) }
    /// ```
    #[derive(Debug)]
    pub struct RequestBody<B> {
        #[pin]
        body: CountingBody<B, Option<Arc<AtomicU64>>>,
    }
}

impl<B: http_body::Body> http_body::Body for RequestBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl<B> RequestBody<B> {
    pub(super) fn new(body: B, sink: Option<Arc<AtomicU64>>) -> Self {
        Self {
            body: CountingBody::new(body, sink),
        }
    }
}

pin_project! {
    /// The response body after [`RequestMetricsService`]: the inner
    /// service's body, counted when streamed, or serverwatch's own 500
    /// answer to a panic.
    ///
    /// ```
    /// use http_body_util::BodyExt;
    /// use tower::{Layer, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let watch = serverwatch::ServerWatch::builder().build()?;
    /// let panics = tower::service_fn(|_: http::Request<serverwatch::RequestBody<String>>| async {
    ///     if true {
    ///         panic!("boom");
    ///     }
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    /// });
    /// let response = watch.layer().layer(panics).oneshot(http::Request::new(String::new())).await?;
    /// assert_eq!(response.status(), 500);
    /// let body: serverwatch::ResponseBody<String> = response.into_body();
    /// assert_eq!(body.collect().await?.to_bytes(), "Internal Server Error");
    /// # Ok(()) }
    /// ```
    #[derive(Debug)]
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<B> {
        // Boxed: only a streamed body carries it, and every response body
        // is moved several times on its way out.
        Inner { #[pin] body: CountingBody<B, Option<Box<Completion>>> },
        Full { body: Option<Bytes> },
    }
}

impl<B: http_body::Body<Data = Bytes>> http_body::Body for ResponseBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Full { body } => Poll::Ready(body.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Full { body } => body.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Full { body } => {
                SizeHint::with_exact(body.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}

impl<B> ResponseBody<B> {
    pub(super) fn new(body: B, completion: Option<Box<Completion>>) -> Self {
        Self {
            kind: Kind::Inner {
                body: CountingBody::new(body, completion),
            },
        }
    }

    pub(super) fn full(bytes: Bytes) -> Self {
        Self {
            kind: Kind::Full { body: Some(bytes) },
        }
    }
}
