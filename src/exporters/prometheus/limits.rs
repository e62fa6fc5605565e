//! What bounds a scrape of `/metrics`, around the reading and the encoding
//! (which know nothing of it):
//!
//! - at most `max_scrapes_in_flight` at once, as client_golang's
//!   `MaxRequestsInFlight`; past that a scrape gets 503 and `Retry-After`;
//! - scrapes that arrive while a reading is under way share it, so that
//!   several scrapers cost one reading;
//! - a scrape that sends `X-Prometheus-Scrape-Timeout-Seconds` is read and
//!   encoded whole before a deadline within that timeout, checked between
//!   chunks of the text, or answered 503 with the reason: Prometheus would
//!   drop a late answer anyway, and the work stops there.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use parking_lot::Mutex;
use tokio::sync::{OnceCell, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::model::family::Family;
use crate::source::Sources;

/// The header in which Prometheus sends its scrape timeout, in seconds.
pub(crate) const TIMEOUT_HEADER: &str = "x-prometheus-scrape-timeout-seconds";

/// The share of the scraper's timeout a scrape may take: the rest is left
/// for the answer to reach it.
const SHARE_OF_TIMEOUT: f64 = 0.9;

/// One reading, shared by the scrapes that arrive while it is made.
type Reading = Arc<OnceCell<Arc<Vec<Family>>>>;

/// The limits of one `/metrics`.
#[derive(Debug)]
pub(crate) struct ScrapeLimits {
    permits: Arc<Semaphore>,
    /// The reading under way, if any.
    reading: Mutex<Option<Reading>>,
}

impl ScrapeLimits {
    /// At most `in_flight` scrapes at once.
    pub(crate) fn new(in_flight: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(in_flight)),
            reading: Mutex::new(None),
        }
    }

    /// The answer to a scrape: what `encode` makes of a reading of
    /// `sources`, within the limits.
    pub(crate) async fn scrape(
        &self,
        sources: &Arc<Sources>,
        request: &HeaderMap,
        encode: impl FnOnce(Vec<Family>) -> Response,
    ) -> Response {
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            return refused(
                "too many scrapes in flight (max_scrapes_in_flight); retry in a second",
                true,
            );
        };
        let timeout = request
            .get(TIMEOUT_HEADER)
            .and_then(|v| v.to_str().ok()?.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0);
        let Some(timeout) = timeout else {
            let families = owned(self.read(sources).await);
            return held(encode(families), permit);
        };
        let deadline = Instant::now() + Duration::from_secs_f64(timeout * SHARE_OF_TIMEOUT);
        let late = |what: &str| {
            refused(
                &format!("the scrape timeout ({timeout} s, {TIMEOUT_HEADER}) ran out {what}"),
                false,
            )
        };
        let Ok(reading) = tokio::time::timeout_at(deadline, self.read(sources)).await else {
            return late("while the metrics were read");
        };
        let response = encode(owned(reading));
        match whole_before(response, deadline).await {
            Some(response) => response,
            None => late("while the metrics were encoded"),
        }
    }

    /// The reading under way, or a new one.
    async fn read(&self, sources: &Arc<Sources>) -> Arc<Vec<Family>> {
        let cell = Arc::clone(self.reading.lock().get_or_insert_with(Reading::default));
        let families = cell
            .get_or_init(|| async { Arc::new(sources.read_families().await) })
            .await;
        let families = Arc::clone(families);
        // Done: a scrape that arrives from now on reads anew.
        let mut reading = self.reading.lock();
        if reading.as_ref().is_some_and(|r| Arc::ptr_eq(r, &cell)) {
            *reading = None;
        }
        families
    }
}

/// The families of a reading, copied only when another scrape shares it.
fn owned(families: Arc<Vec<Family>>) -> Vec<Family> {
    Arc::try_unwrap(families).unwrap_or_else(|shared| shared.as_ref().clone())
}

/// 503 with the reason; `Retry-After` when trying again soon may help.
fn refused(reason: &str, retry: bool) -> Response {
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")).into_response();
    if retry {
        let headers = response.headers_mut();
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// `response` with its body holding the permit: a streamed body is still
/// a scrape in flight until it is sent.
fn held(response: Response, permit: OwnedSemaphorePermit) -> Response {
    response.map(|body| {
        Body::new(Held {
            body,
            _permit: permit,
        })
    })
}

struct Held {
    body: Body,
    _permit: OwnedSemaphorePermit,
}

impl http_body::Body for Held {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// `response` with its whole body written before `deadline`, or `None`:
/// the encoder writes a chunk of text per frame, so the deadline is
/// checked between chunks.
async fn whole_before(response: Response, deadline: Instant) -> Option<Response> {
    let (parts, mut body) = response.into_parts();
    let mut bytes = BytesMut::new();
    loop {
        if Instant::now() >= deadline {
            return None;
        }
        let frame = std::future::poll_fn(|cx| http_body::Body::poll_frame(Pin::new(&mut body), cx));
        match frame.await {
            None => break,
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    bytes.extend_from_slice(&data);
                }
            }
            Some(Err(_)) => return None,
        }
    }
    Some(Response::from_parts(parts, Body::from(bytes.freeze())))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::model::instruments as i;
    use crate::source::{Service, Source, Wants};

    /// A source whose reading waits until it is let go, and counts.
    #[derive(Debug, Default)]
    struct Slow {
        readings: AtomicUsize,
        go: parking_lot::Mutex<Option<std::sync::mpsc::Receiver<()>>>,
    }

    impl Source for Slow {
        fn families(&self, _: Wants<'_>, out: &mut Vec<Family>) {
            self.readings.fetch_add(1, Ordering::SeqCst);
            if let Some(go) = self.go.lock().as_ref() {
                let _ = go.recv();
            }
            out.push(Family::new(&i::PROCESS_THREADS).number(Vec::new(), 1.0));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn scrapes_that_arrive_during_a_reading_share_it() {
        let (let_go, go) = std::sync::mpsc::channel();
        let slow = Arc::new(Slow::default());
        *slow.go.lock() = Some(go);
        let service = Service {
            name: "t".into(),
            version: "1".into(),
            instance_id: "i".into(),
            constant_labels: Vec::new(),
        };
        let sources = Arc::new(Sources::new(service, Vec::new(), vec![slow.clone() as _]));
        let limits = Arc::new(ScrapeLimits::new(4));
        let scrapes: Vec<_> = (0..3)
            .map(|_| {
                let (limits, sources) = (Arc::clone(&limits), Arc::clone(&sources));
                tokio::spawn(async move { limits.read(&sources).await.len() })
            })
            .collect();
        // All three wait on the one reading (and the slot holds it too).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while limits
            .reading
            .lock()
            .as_ref()
            .is_none_or(|r| Arc::strong_count(r) < 4)
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the scrapes never met"
            );
            tokio::task::yield_now().await;
        }
        let_go.send(()).unwrap();
        for scrape in scrapes {
            // Its families, and the two that every reading adds.
            assert_eq!(scrape.await.unwrap(), 3);
        }
        assert_eq!(slow.readings.load(Ordering::SeqCst), 1);
        drop(let_go);
        limits.read(&sources).await;
        assert_eq!(
            slow.readings.load(Ordering::SeqCst),
            2,
            "a later scrape reads anew"
        );
    }
}
