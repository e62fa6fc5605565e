//! What the builder collects for MongoDB, and its checks.

use std::sync::Arc;
use std::time::Duration;

use mongodb::Client;
use mongodb::event::EventHandler;
use mongodb::options::ClientOptions;

use super::MongoWatch;
use super::events::DriverMetrics;
use super::probe::ping_probe;
use super::redact::Secrets;
use crate::error::BuildError;
use crate::model::instruments::Instrument;
use crate::part::{Assembly, Part, part_boilerplate};

/// The MongoDB settings of a [`Builder`](crate::Builder).
#[derive(Clone)]
pub(crate) struct MongoSettings {
    driver: Option<Arc<DriverMetrics>>,
    client: Option<Client>,
    secrets: Secrets,
    pub(crate) timeout: Duration,
    pub(crate) interval: Duration,
    /// Set when the options already had an event handler of their own.
    conflict: Option<&'static str>,
}

/// Without the client's own `Debug`, which prints the driver's last errors
/// as the server sent them, unredacted.
impl std::fmt::Debug for MongoSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoSettings")
            .field("driver", &self.driver)
            .field("client", &self.client.as_ref().map(|_| "mongodb::Client"))
            .field("secrets", &self.secrets)
            .field("timeout", &self.timeout)
            .field("interval", &self.interval)
            .field("conflict", &self.conflict)
            .finish()
    }
}

impl Default for MongoSettings {
    fn default() -> Self {
        Self {
            driver: None,
            client: None,
            secrets: Secrets::default(),
            timeout: Duration::from_secs(1),
            interval: Duration::from_secs(5),
            conflict: None,
        }
    }
}

impl MongoSettings {
    /// Installs the event handlers on `options` and remembers its
    /// credentials so that they can be redacted.
    pub(crate) fn instrument(&mut self, options: &mut ClientOptions) {
        if let Some(credential) = &options.credential {
            for secret in [&credential.password, &credential.username]
                .into_iter()
                .flatten()
            {
                self.secrets.add(secret);
            }
        }
        if options.command_event_handler.is_some() {
            self.conflict = Some("command_event_handler");
            return;
        }
        if options.cmap_event_handler.is_some() {
            self.conflict = Some("cmap_event_handler");
            return;
        }
        let driver = Arc::clone(
            self.driver
                .get_or_insert_with(|| Arc::new(DriverMetrics::new())),
        );
        let commands = Arc::clone(&driver);
        options.command_event_handler =
            Some(EventHandler::callback(move |e| commands.on_command(e)));
        options.cmap_event_handler = Some(EventHandler::callback(move |e| driver.on_pool(e)));
    }

    pub(crate) fn client(&mut self, client: Client) {
        self.client = Some(client);
    }
}

impl Part for MongoSettings {
    part_boilerplate!();

    fn instruments(&self) -> &'static [&'static Instrument] {
        super::instruments::ALL
    }

    /// Adds no source when MongoDB is not configured at all.
    fn build(self: Box<Self>, assembly: &mut Assembly) -> Result<(), BuildError> {
        if let Some(handler) = self.conflict {
            return Err(BuildError::new(
                "instrument_mongodb",
                format!(
                    "the ClientOptions already have a {handler}; serverwatch installs its own \
                     (the driver takes one per kind), so leave it unset"
                ),
            ));
        }
        for (setting, value) in [
            ("mongodb_probe_timeout", self.timeout),
            ("mongodb_probe_interval", self.interval),
        ] {
            if value.is_zero() {
                return Err(BuildError::new(setting, "must be longer than zero"));
            }
        }
        if self.driver.is_none() && self.client.is_none() {
            return Ok(());
        }
        let this = *self;
        assembly.source(Arc::new(MongoWatch {
            driver: this.driver,
            probe: this
                .client
                .map(|c| Arc::new(ping_probe(c, this.secrets, this.timeout, this.interval))),
        }));
        Ok(())
    }
}
