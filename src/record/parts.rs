//! The parts of a request or a response, for the app's functions that read
//! them: only a message taken apart has them, so they are swapped out and
//! back, which copies nothing big.

use std::mem::swap;

use http::{Request, Response, request, response};

/// `read` of the parts of `request`.
pub(super) fn of_request<B, T>(
    request: &mut Request<B>,
    read: impl FnOnce(&request::Parts) -> T,
) -> T {
    let (mut parts, ()) = Request::new(()).into_parts();
    let exchange = |parts: &mut request::Parts, request: &mut Request<B>| {
        swap(&mut parts.method, request.method_mut());
        swap(&mut parts.uri, request.uri_mut());
        swap(&mut parts.version, request.version_mut());
        swap(&mut parts.headers, request.headers_mut());
        swap(&mut parts.extensions, request.extensions_mut());
    };
    exchange(&mut parts, request);
    let read = read(&parts);
    exchange(&mut parts, request);
    read
}

/// `read` of the parts of `response`.
pub(super) fn of_response<B, T>(
    response: &mut Response<B>,
    read: impl FnOnce(&response::Parts) -> T,
) -> T {
    let (mut parts, ()) = Response::new(()).into_parts();
    let exchange = |parts: &mut response::Parts, response: &mut Response<B>| {
        swap(&mut parts.status, response.status_mut());
        swap(&mut parts.version, response.version_mut());
        swap(&mut parts.headers, response.headers_mut());
        swap(&mut parts.extensions, response.extensions_mut());
    };
    exchange(&mut parts, response);
    let read = read(&parts);
    exchange(&mut parts, response);
    read
}
