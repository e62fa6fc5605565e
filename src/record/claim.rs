//! Requests that their route takes off the books. The layer cannot tell an
//! observability route from the app's before it answers (the user chooses
//! where they are mounted), so it offers a claim to the requests that may be
//! to one; the observability routes take it, and the request then leaves the
//! active-requests gauge at once and is never recorded.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::sources::requests::{Method, RequestStore};

const LIVE: u8 = 0;
const TAKEN: u8 = 1;
const SETTLED: u8 = 2;

/// The claim on one request in flight, shared by the layer that counts it
/// and the route it goes to.
#[derive(Debug)]
pub(crate) struct Claim {
    store: Arc<RequestStore>,
    method: Method,
    state: AtomicU8,
}

impl Claim {
    pub(crate) fn new(store: Arc<RequestStore>, method: Method) -> Arc<Self> {
        Arc::new(Self {
            store,
            method,
            state: AtomicU8::new(LIVE),
        })
    }

    /// The route takes the request: it ends in the active gauge now, and the
    /// layer records nothing of it. Only before the layer settled it.
    fn take(&self) {
        if self
            .state
            .compare_exchange(LIVE, TAKEN, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.store.end(self.method);
        }
    }

    /// The layer is done with the request: `true` when a route took it (the
    /// layer then neither records it nor ends it), after which none can.
    pub(crate) fn settle(&self) -> bool {
        self.state
            .compare_exchange(LIVE, SETTLED, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
    }
}

/// The claims on a request, one per layer it went through, carried in its
/// extensions.
#[derive(Debug, Clone)]
pub(crate) struct Claims(Vec<Arc<Claim>>);

impl Claims {
    /// Adds `claim` to the request's.
    pub(crate) fn offer(extensions: &mut http::Extensions, claim: Arc<Claim>) {
        match extensions.get_mut::<Claims>() {
            Some(Claims(claims)) => claims.push(claim),
            None => {
                extensions.insert(Claims(vec![claim]));
            }
        }
    }

    /// Takes every claim on the request: what the observability routes do.
    pub(crate) fn take_all(extensions: &http::Extensions) {
        if let Some(Claims(claims)) = extensions.get::<Claims>() {
            claims.iter().for_each(|claim| claim.take());
        }
    }
}
