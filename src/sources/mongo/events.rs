//! The driver's command and connection-pool events, turned into metrics.
//!
//! The handlers run inline on the driver's path, so they only add to atomics,
//! with one short lock to pair a command's start (which names the database
//! and collection) with its end (which does not).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use mongodb::error::{Error, ErrorKind};
use mongodb::event::cmap::CmapEvent;
use mongodb::event::command::CommandEvent;
use parking_lot::{Mutex, MutexGuard, RwLock};

use super::instruments::DB_DURATION_BOUNDS_SECONDS;
use crate::model::family::start_now;
use crate::model::histogram::{AtomicHistogram, Bounds, HistogramSnapshot};
use crate::model::series::SeriesSet;

/// Commands whose start is still waiting for its end, at most; past this
/// (events lost), the oldest pairing is given up.
const MAX_IN_FLIGHT: usize = 4096;
/// Distinct (command, database, collection, error) label sets.
const MAX_OPERATION_SERIES: usize = 1000;
/// The driver's default `maxPoolSize`.
const DEFAULT_MAX_POOL_SIZE: u32 = 10;

/// Labels of one operation series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct OperationKey {
    pub(crate) operation: String,
    pub(crate) namespace: String,
    pub(crate) collection: Option<String>,
    pub(crate) error: Option<String>,
}

/// A started command: (connection id, request id).
type CommandId = (u32, i32);
/// What a command works on: (database, collection).
type Target = (String, Option<String>);

/// The counters of one connection pool (one server address).
#[derive(Debug)]
pub(crate) struct PoolStats {
    /// The open (ready) connections by id, and whether each is checked out.
    /// Counted by id rather than by adding and subtracting: the driver
    /// reports a connection that fails while being established as closed
    /// without its ever having been ready, and closes a checked-out
    /// connection without a check-in when its pool has closed.
    connections: Mutex<HashMap<u32, bool>>,
    pending: AtomicI64,
    timeouts: AtomicU64,
    max: AtomicI64,
    create_time: AtomicHistogram,
    wait_time: AtomicHistogram,
    /// When the pool was first seen, in nanoseconds since the Unix epoch.
    start: u64,
}

/// The durations of one operation series, since its first operation.
#[derive(Debug)]
struct Operation {
    /// In nanoseconds since the Unix epoch.
    start: u64,
    duration: AtomicHistogram,
}

impl Operation {
    fn new(bounds: &Bounds) -> Self {
        Self {
            start: start_now(),
            duration: AtomicHistogram::new(bounds),
        }
    }
}

impl PoolStats {
    fn connections(&self) -> MutexGuard<'_, HashMap<u32, bool>> {
        self.connections.lock()
    }
}

/// A copy of one pool's figures.
#[derive(Debug, Clone)]
pub(crate) struct PoolSnapshot {
    pub(crate) name: String,
    pub(crate) idle: i64,
    pub(crate) used: i64,
    pub(crate) pending: i64,
    pub(crate) timeouts: u64,
    pub(crate) max: i64,
    pub(crate) create_time: HistogramSnapshot,
    pub(crate) wait_time: HistogramSnapshot,
    /// When the pool was first seen, in nanoseconds since the Unix epoch.
    pub(crate) start: u64,
}

/// A copy of one operation series: its labels (`None` past the cap), its
/// durations, and its start in nanoseconds since the Unix epoch.
pub(crate) type OperationSnapshot = (Option<OperationKey>, HistogramSnapshot, u64);

/// Everything the driver's events feed.
#[derive(Debug)]
pub(crate) struct DriverMetrics {
    pub(crate) bounds: Bounds,
    operations: SeriesSet<OperationKey, Operation>,
    /// The operations past the cap, without labels.
    overflow: Operation,
    started: Mutex<HashMap<CommandId, Target>>,
    pools: RwLock<Vec<(String, Arc<PoolStats>)>>,
}

impl DriverMetrics {
    pub(crate) fn new() -> Self {
        let bounds = Bounds::new(&DB_DURATION_BOUNDS_SECONDS, 1e-9)
            .expect("the semantic conventions' bounds are valid");
        Self {
            operations: SeriesSet::new(MAX_OPERATION_SERIES),
            overflow: Operation::new(&bounds),
            bounds,
            started: Mutex::new(HashMap::new()),
            pools: RwLock::new(Vec::new()),
        }
    }

    pub(crate) fn on_command(&self, event: CommandEvent) {
        match event {
            CommandEvent::Started(e) => {
                let collection = collection_of(&e.command_name, &e.command);
                let mut started = self.started.lock();
                if started.len() >= MAX_IN_FLIGHT {
                    started.clear();
                }
                started.insert((e.connection.id, e.request_id), (e.db, collection));
            }
            CommandEvent::Succeeded(e) => self.finish(
                e.connection.id,
                e.request_id,
                e.command_name,
                e.duration,
                None,
            ),
            CommandEvent::Failed(e) => {
                let error = error_type(&e.failure);
                self.finish(
                    e.connection.id,
                    e.request_id,
                    e.command_name,
                    e.duration,
                    Some(error),
                )
            }
            _ => {}
        }
    }

    fn finish(
        &self,
        connection: u32,
        request: i32,
        operation: String,
        duration: std::time::Duration,
        error: Option<String>,
    ) {
        let started = self.started.lock().remove(&(connection, request));
        let (namespace, collection) = started.unwrap_or_default();
        let key = OperationKey {
            operation,
            namespace,
            collection,
            error,
        };
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        let record = |o: &Operation| o.duration.record(&self.bounds, nanos);
        if !self
            .operations
            .with(&key, || Operation::new(&self.bounds), record)
        {
            record(&self.overflow);
        }
    }

    pub(crate) fn on_pool(&self, event: CmapEvent) {
        let address = |a: &mongodb::options::ServerAddress| a.to_string();
        match event {
            CmapEvent::PoolCreated(e) => {
                let max = e
                    .options
                    .and_then(|o| o.max_pool_size)
                    .unwrap_or(DEFAULT_MAX_POOL_SIZE);
                self.pool(&address(&e.address))
                    .max
                    .store(i64::from(max), Ordering::Relaxed);
            }
            CmapEvent::ConnectionReady(e) => {
                let pool = self.pool(&address(&e.address));
                pool.connections().insert(e.connection_id, false);
                pool.create_time.record(&self.bounds, nanos(e.duration));
            }
            CmapEvent::ConnectionClosed(e) => {
                self.pool(&address(&e.address))
                    .connections()
                    .remove(&e.connection_id);
            }
            CmapEvent::ConnectionCheckoutStarted(e) => {
                self.pool(&address(&e.address))
                    .pending
                    .fetch_add(1, Ordering::Relaxed);
            }
            CmapEvent::ConnectionCheckoutFailed(e) => {
                let pool = self.pool(&address(&e.address));
                pool.pending.fetch_sub(1, Ordering::Relaxed);
                if matches!(
                    e.reason,
                    mongodb::event::cmap::ConnectionCheckoutFailedReason::Timeout
                ) {
                    pool.timeouts.fetch_add(1, Ordering::Relaxed);
                }
            }
            CmapEvent::ConnectionCheckedOut(e) => {
                let pool = self.pool(&address(&e.address));
                pool.pending.fetch_sub(1, Ordering::Relaxed);
                pool.connections().insert(e.connection_id, true);
                pool.wait_time.record(&self.bounds, nanos(e.duration));
            }
            CmapEvent::ConnectionCheckedIn(e) => {
                let pool = self.pool(&address(&e.address));
                if let Some(used) = pool.connections().get_mut(&e.connection_id) {
                    *used = false;
                }
            }
            _ => {}
        }
    }

    fn pool(&self, name: &str) -> Arc<PoolStats> {
        if let Some((_, pool)) = self.pools.read().iter().find(|(n, _)| n == name) {
            return Arc::clone(pool);
        }
        let mut pools = self.pools.write();
        if let Some((_, pool)) = pools.iter().find(|(n, _)| n == name) {
            return Arc::clone(pool);
        }
        let pool = Arc::new(PoolStats {
            connections: Mutex::new(HashMap::new()),
            pending: AtomicI64::new(0),
            timeouts: AtomicU64::new(0),
            max: AtomicI64::new(i64::from(DEFAULT_MAX_POOL_SIZE)),
            create_time: AtomicHistogram::new(&self.bounds),
            wait_time: AtomicHistogram::new(&self.bounds),
            start: start_now(),
        });
        pools.push((name.to_owned(), Arc::clone(&pool)));
        pool
    }

    /// Every operation series, sorted by labels; past the cap, one series
    /// with no labels.
    pub(crate) fn operations(&self) -> Vec<OperationSnapshot> {
        let snapshot = |o: &Operation| o.duration.snapshot(&self.bounds);
        let mut out: Vec<OperationSnapshot> = self
            .operations
            .collect(|k, o| (Some(k.clone()), snapshot(o), o.start));
        out.sort_by(|a, b| a.0.cmp(&b.0));
        let overflow = snapshot(&self.overflow);
        if overflow.count > 0 {
            out.push((None, overflow, self.overflow.start));
        }
        out
    }

    pub(crate) fn pools(&self) -> Vec<PoolSnapshot> {
        let pools = self.pools.read();
        pools
            .iter()
            .map(|(name, p)| {
                let (open, used) = {
                    let connections = p.connections();
                    let used = connections.values().filter(|&&used| used).count();
                    (connections.len(), used)
                };
                PoolSnapshot {
                    name: name.clone(),
                    idle: (open - used) as i64,
                    used: used as i64,
                    pending: p.pending.load(Ordering::Relaxed),
                    timeouts: p.timeouts.load(Ordering::Relaxed),
                    max: p.max.load(Ordering::Relaxed),
                    create_time: p.create_time.snapshot(&self.bounds),
                    wait_time: p.wait_time.snapshot(&self.bounds),
                    start: p.start,
                }
            })
            .collect()
    }
}

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The collection a command works on: the value of its first key for the
/// commands that name one (`{"find": "items", …}`).
fn collection_of(command_name: &str, command: &mongodb::bson::Document) -> Option<String> {
    const ON_COLLECTION: [&str; 12] = [
        "find",
        "insert",
        "update",
        "delete",
        "aggregate",
        "count",
        "distinct",
        "findAndModify",
        "createIndexes",
        "dropIndexes",
        "listIndexes",
        "drop",
    ];
    if !ON_COLLECTION.contains(&command_name) {
        return None;
    }
    command.get_str(command_name).ok().map(str::to_owned)
}

/// `error.type`: the server's code name for a command error, else the kind.
fn error_type(error: &Error) -> String {
    match &*error.kind {
        ErrorKind::Command(c) if !c.code_name.is_empty() => c.code_name.clone(),
        ErrorKind::Command(c) => c.code.to_string(),
        ErrorKind::Write(_) | ErrorKind::InsertMany(_) | ErrorKind::BulkWrite(_) => {
            "WriteError".into()
        }
        ErrorKind::Io(_) => "IoError".into(),
        ErrorKind::ServerSelection { .. } => "ServerSelectionError".into(),
        ErrorKind::Authentication { .. } => "AuthenticationError".into(),
        ErrorKind::ConnectionPoolCleared { .. } => "ConnectionPoolCleared".into(),
        _ => "_OTHER".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::doc;

    #[test]
    fn commands_name_their_collection() {
        assert_eq!(
            collection_of("find", &doc! {"find": "items", "filter": {}}).as_deref(),
            Some("items")
        );
        assert_eq!(collection_of("ping", &doc! {"ping": 1}), None);
        assert_eq!(
            collection_of("find", &doc! {}),
            None,
            "a redacted command names nothing"
        );
    }
}
