//! MongoDB's settings (feature `mongodb`).

use super::Builder;
use crate::sources::mongo::MongoSettings;

impl Builder {
    fn mongo(&mut self) -> &mut MongoSettings {
        self.parts.get_mut::<MongoSettings>()
    }

    /// Records the MongoDB driver's commands and connection pool: installs
    /// serverwatch's command and connection-pool event handlers on `options`
    /// (before the client is built from them) and remembers the credentials
    /// in them, so that they are redacted from everything serverwatch shows.
    /// The options must not have event handlers of their own.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use mongodb::{Client, options::ClientOptions};
    ///
    /// let mut options = ClientOptions::parse("mongodb://127.0.0.1:27017").await?;
    /// let builder = serverwatch::ServerWatch::builder().instrument_mongodb(&mut options);
    /// let client = Client::with_options(options)?;
    /// let watch = builder.mongodb(client).build()?;
    /// # Ok(()) }
    /// ```
    pub fn instrument_mongodb(mut self, options: &mut mongodb::options::ClientOptions) -> Self {
        self.mongo().instrument(options);
        self
    }

    /// Probes this client for `/health`: `ping` on `admin`, at most one per
    /// [`mongodb_probe_interval`](Self::mongodb_probe_interval), each bounded by
    /// [`mongodb_probe_timeout`](Self::mongodb_probe_timeout). A failed probe
    /// makes the service unhealthy (503).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = mongodb::Client::with_uri_str("mongodb://127.0.0.1:27017").await?;
    /// let watch = serverwatch::ServerWatch::builder().mongodb(client).build()?;
    /// # Ok(()) }
    /// ```
    pub fn mongodb(mut self, client: mongodb::Client) -> Self {
        self.mongo().client(client);
        self
    }

    /// The longest a health probe may take. Default 1 s.
    ///
    /// ```
    /// let builder = serverwatch::ServerWatch::builder()
    ///     .mongodb_probe_timeout(std::time::Duration::from_millis(500));
    /// ```
    pub fn mongodb_probe_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.mongo().timeout = timeout;
        self
    }

    /// How long a probe's result is reused. Default 5 s.
    ///
    /// ```
    /// let builder = serverwatch::ServerWatch::builder()
    ///     .mongodb_probe_interval(std::time::Duration::from_secs(2));
    /// ```
    pub fn mongodb_probe_interval(mut self, interval: std::time::Duration) -> Self {
        self.mongo().interval = interval;
        self
    }
}
