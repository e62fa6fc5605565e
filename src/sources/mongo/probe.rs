//! The MongoDB health probe: `ping` on `admin`, run by the shared probe
//! ([`crate::sources::probe`]), which bounds, caches and
//! single-flights it; the driver's errors are redacted before anyone sees
//! them.

use std::sync::Arc;
use std::time::Duration;

use mongodb::Client;
use mongodb::bson::doc;

use super::redact::Secrets;
use crate::sources::probe::{Call, Probe};

/// The probe of `client`, with credentials redacted from its errors.
pub(crate) fn ping_probe(
    client: Client,
    secrets: Secrets,
    timeout: Duration,
    interval: Duration,
) -> Probe {
    let secrets = Arc::new(secrets);
    let call: Call = Arc::new(move || {
        let admin = client.database("admin");
        let secrets = Arc::clone(&secrets);
        Box::pin(async move {
            match admin.run_command(doc! {"ping": 1}).await {
                Ok(_) => Ok(()),
                Err(e) => Err(secrets.redact(&e.to_string())),
            }
        })
    });
    Probe::new(call, "ping", timeout, interval)
}
