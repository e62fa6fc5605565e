//! The future of one recorded request: it catches a panicking handler, and
//! hands the response on with its completion attached.

use std::any::Any;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use pin_project_lite::pin_project;

use super::body::{CountingBody, ResponseBody};
use super::in_flight::{Completion, InFlight};
use super::layer::{AnyBody, AxumBody};

/// Body of the 500 answer that replaces a panicking handler's response.
const PANIC_BODY: &str = "Internal Server Error";

pin_project! {
    /// Future of [`RequestMetricsService`](super::RequestMetricsService).
    #[derive(Debug)]
    pub struct ResponseFuture<F, K = AnyBody> {
        #[pin]
        stage: Stage<F>,
        in_flight: Option<InFlight>,
        kind: PhantomData<fn() -> K>,
    }
}

pin_project! {
    #[project = StateProj]
    #[derive(Debug)]
    enum Stage<F> {
        Running { #[pin] future: F },
        Panicked { message: Option<String> },
    }
}

impl<F, K> ResponseFuture<F, K> {
    /// The future of the inner service's call, or the panic of that call.
    pub(super) fn new(in_flight: InFlight, called: std::thread::Result<F>) -> Self {
        let stage = match called {
            Ok(future) => Stage::Running { future },
            Err(payload) => Stage::Panicked {
                message: Some(panic_message(&*payload)),
            },
        };
        Self {
            stage,
            in_flight: Some(in_flight),
            kind: PhantomData,
        }
    }
}

impl<F, B, E, K> Future for ResponseFuture<F, K>
where
    F: Future<Output = Result<Response<B>, E>>,
    K: Bodies<B>,
{
    type Output = Result<Response<K::Out>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let panic = match this.stage.project() {
            StateProj::Running { future } => {
                match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
                    Ok(Poll::Pending) => return Poll::Pending,
                    Ok(Poll::Ready(Ok(response))) => {
                        let in_flight = this.in_flight.take().expect("polled after completion");
                        let completion = in_flight.respond(response.status(), None);
                        return Poll::Ready(Ok(K::respond(response, completion)));
                    }
                    // The inner service failed without a response (axum's
                    // routes never do): dropped, the request is recorded
                    // as aborted.
                    Ok(Poll::Ready(Err(error))) => {
                        this.in_flight.take();
                        return Poll::Ready(Err(error));
                    }
                    Err(payload) => panic_message(&*payload),
                }
            }
            StateProj::Panicked { message } => message.take().unwrap_or_default(),
        };
        let in_flight = this.in_flight.take().expect("polled after completion");
        let completion = in_flight.respond(StatusCode::INTERNAL_SERVER_ERROR, Some(panic));
        Poll::Ready(Ok(panic_response(completion, K::full)))
    }
}

mod sealed {
    use super::{Bytes, Completion, Response};

    /// What goes out of the layer for a response body `B`: only serverwatch
    /// implements it, for [`AnyBody`](super::AnyBody) and
    /// [`AxumBody`](super::AxumBody).
    pub trait Bodies<B> {
        /// The body type that goes out.
        type Out;
        /// The response, with its completion attached.
        fn respond(response: Response<B>, completion: Completion) -> Response<Self::Out>;
        /// A body of its own, for the answer to a panic.
        fn full(bytes: Bytes) -> Self::Out;
    }
}

use sealed::Bodies;

impl<B: http_body::Body<Data = Bytes>> Bodies<B> for AnyBody {
    type Out = ResponseBody<B>;

    fn respond(response: Response<B>, completion: Completion) -> Response<Self::Out> {
        let completion = completion.attach(&response);
        response.map(|body| ResponseBody::new(body, completion))
    }

    fn full(bytes: Bytes) -> Self::Out {
        ResponseBody::full(bytes)
    }
}

impl Bodies<Body> for AxumBody {
    type Out = Body;

    /// A body in memory goes on untouched; a streamed one is counted inside
    /// a body of axum's own type.
    fn respond(response: Response<Body>, completion: Completion) -> Response<Body> {
        match completion.attach(&response) {
            None => response,
            Some(completion) => {
                response.map(|body| Body::new(CountingBody::new(body, Some(completion))))
            }
        }
    }

    fn full(bytes: Bytes) -> Body {
        Body::from(bytes)
    }
}

/// The 500 answer to a panic, with `PANIC_BODY` in the body made by `body`.
fn panic_response<T>(completion: Completion, body: impl FnOnce(Bytes) -> T) -> Response<T> {
    let mut response = Response::new(Bytes::from_static(PANIC_BODY.as_bytes()));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    completion.finish(PANIC_BODY.len() as u64);
    response.map(body)
}

/// The message a panic was raised with.
pub(super) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "handler panicked".to_owned()
    }
}
