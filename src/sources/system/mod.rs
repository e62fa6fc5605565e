//! Process and system figures, read when an exporter asks for them (at scrape or
//! export time), never by a background loop.
//!
//! Only this process is refreshed, never the whole process table, and a
//! refresh is cached for [`REFRESH_TTL`] behind one lock, so a scrape storm
//! costs one refresh per interval however many readers arrive at once. A
//! refresh reads files (sysinfo's, every open fd's link, every thread's
//! stat), so the async exporters take it on tokio's blocking threads
//! ([`SystemReader::read`]), never on a worker.

#[cfg(target_os = "linux")]
mod procfs;

mod families;
mod health;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::BuildError;
use crate::model::family::percent;
use crate::part::{Assembly, Part, part_boilerplate};
use parking_lot::Mutex;
use sysinfo::{MemoryRefreshKind, Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// Whether the process and system figures are read at all.
#[derive(Debug, Clone)]
pub(crate) struct SystemSwitch(pub(crate) bool);

impl Default for SystemSwitch {
    fn default() -> Self {
        Self(true)
    }
}

impl Part for SystemSwitch {
    part_boilerplate!();

    fn build(self: Box<Self>, assembly: &mut Assembly) -> Result<(), BuildError> {
        if self.0 {
            assembly.source(Arc::new(SystemReader::new()));
        }
        Ok(())
    }
}

/// How long one refresh serves every reader.
pub(crate) const REFRESH_TTL: Duration = Duration::from_secs(1);

/// Figures of this process.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProcessStats {
    pub(crate) pid: u32,
    pub(crate) resident_bytes: u64,
    pub(crate) virtual_bytes: u64,
    pub(crate) cpu_seconds: f64,
    /// The same CPU time split into (user, system), where the OS tells it.
    pub(crate) cpu_user_system: Option<(f64, f64)>,
    pub(crate) start_time_seconds: u64,
    pub(crate) threads: u64,
    pub(crate) open_fds: Option<u64>,
    pub(crate) max_fds: Option<u64>,
    /// Open sockets.
    pub(crate) sockets: u64,
    /// psutil's `memory_info` breakdown, where the OS tells it.
    pub(crate) shared_bytes: u64,
    pub(crate) text_bytes: u64,
    pub(crate) lib_bytes: u64,
    pub(crate) data_bytes: u64,
    /// The busiest threads by CPU time, busiest first.
    pub(crate) top_threads: Vec<ThreadStats>,
}

/// CPU time of one thread.
#[derive(Debug, Clone, Default)]
pub(crate) struct ThreadStats {
    pub(crate) id: u32,
    pub(crate) name: String,
    pub(crate) cpu_seconds: f64,
}

/// System memory, in bytes; the states used, free, buffers and cached add up
/// to the total.
#[derive(Debug, Clone, Default)]
pub(crate) struct MemoryStats {
    pub(crate) total: u64,
    pub(crate) available: u64,
    pub(crate) used: u64,
    pub(crate) free: u64,
    pub(crate) buffers: u64,
    pub(crate) cached: u64,
    pub(crate) active: u64,
    pub(crate) inactive: u64,
    pub(crate) shared: u64,
}

/// Swap, in bytes.
#[derive(Debug, Clone, Default)]
pub(crate) struct SwapStats {
    pub(crate) total: u64,
    pub(crate) used: u64,
    pub(crate) free: u64,
    /// Bytes swapped in and out since boot.
    pub(crate) swapped_in: u64,
    pub(crate) swapped_out: u64,
}

/// One consistent reading of everything above.
#[derive(Debug, Clone, Default)]
pub(crate) struct SystemSnapshot {
    pub(crate) process: ProcessStats,
    pub(crate) memory: MemoryStats,
    pub(crate) swap: SwapStats,
    /// Seconds since serverwatch started watching.
    pub(crate) uptime_seconds: f64,
}

impl SystemSnapshot {
    /// Process RSS as a percentage of system memory.
    pub(crate) fn memory_percent(&self) -> f64 {
        percent(self.process.resident_bytes, self.memory.total)
    }
}

/// Reads and caches [`SystemSnapshot`]s.
#[derive(Debug)]
pub(crate) struct SystemReader {
    /// Shared with the blocking thread that refreshes it.
    inner: Arc<Reader>,
}

#[derive(Debug)]
struct Reader {
    pid: Pid,
    started: Instant,
    state: Mutex<Cache>,
}

#[derive(Debug)]
struct Cache {
    system: System,
    cached: Option<(Instant, Arc<SystemSnapshot>)>,
}

impl SystemReader {
    pub(crate) fn new() -> Self {
        Self {
            inner: Arc::new(Reader {
                pid: Pid::from_u32(std::process::id()),
                started: Instant::now(),
                state: Mutex::new(Cache {
                    system: System::new(),
                    cached: None,
                }),
            }),
        }
    }

    /// The current figures, at most [`REFRESH_TTL`] old, read on this
    /// thread: for serverwatch's own threads (the history sampler, the OTLP
    /// exporter), which may block.
    pub(crate) fn snapshot(&self) -> Arc<SystemSnapshot> {
        self.inner.snapshot()
    }

    /// The same, for an async task: the cached figures if they are fresh
    /// and nobody is refreshing them, else a wait for the refresh (or the
    /// refresh itself) on tokio's blocking threads.
    pub(crate) async fn read(&self) -> Arc<SystemSnapshot> {
        if let Some(fresh) = self.inner.fresh() {
            return fresh;
        }
        let inner = Arc::clone(&self.inner);
        match tokio::task::spawn_blocking(move || inner.snapshot()).await {
            Ok(snapshot) => snapshot,
            Err(e) => match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                // The runtime is shutting down: read here, this once.
                Err(_) => self.inner.snapshot(),
            },
        }
    }
}

impl Reader {
    /// The cached figures, if fresh and not being refreshed; never waits.
    fn fresh(&self) -> Option<Arc<SystemSnapshot>> {
        let state = self.state.try_lock()?;
        let (at, snapshot) = state.cached.as_ref()?;
        (at.elapsed() < REFRESH_TTL).then(|| Arc::clone(snapshot))
    }

    fn snapshot(&self) -> Arc<SystemSnapshot> {
        let mut state = self.state.lock();
        if let Some((at, snapshot)) = &state.cached
            && at.elapsed() < REFRESH_TTL
        {
            return Arc::clone(snapshot);
        }
        let snapshot = Arc::new(self.read(&mut state.system));
        state.cached = Some((Instant::now(), Arc::clone(&snapshot)));
        snapshot
    }

    fn read(&self, system: &mut System) -> SystemSnapshot {
        system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[self.pid]),
            true,
            ProcessRefreshKind::nothing().with_memory().with_cpu(),
        );
        system.refresh_memory_specifics(MemoryRefreshKind::everything());

        let mut snapshot = SystemSnapshot {
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            memory: MemoryStats {
                total: system.total_memory(),
                available: system.available_memory(),
                used: system.used_memory(),
                free: system.free_memory(),
                ..MemoryStats::default()
            },
            swap: SwapStats {
                total: system.total_swap(),
                used: system.used_swap(),
                free: system.free_swap(),
                ..SwapStats::default()
            },
            ..SystemSnapshot::default()
        };
        if let Some(process) = system.process(self.pid) {
            let p = &mut snapshot.process;
            p.pid = self.pid.as_u32();
            p.resident_bytes = process.memory();
            p.virtual_bytes = process.virtual_memory();
            p.cpu_seconds = process.accumulated_cpu_time() as f64 / 1000.0;
            p.start_time_seconds = process.start_time();
            p.open_fds = process.open_files().map(|n| n as u64);
            p.max_fds = process.open_files_limit().map(|n| n as u64);
            p.threads = process.tasks().map_or(1, |t| t.len().max(1) as u64);
        }
        #[cfg(target_os = "linux")]
        procfs::complete(&mut snapshot);
        if snapshot.process.start_time_seconds == 0 {
            snapshot.process.start_time_seconds = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
                .saturating_sub(snapshot.uptime_seconds as u64);
        }
        snapshot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let reader = SystemReader::new();
        let s = reader.snapshot();
        assert_eq!(s.process.pid, std::process::id());
        assert!(s.process.resident_bytes > 0);
        assert!(s.process.virtual_bytes >= s.process.resident_bytes);
        assert!(s.process.threads >= 1);
        assert!(s.memory.total > 0);
        assert!(s.process.start_time_seconds > 1_600_000_000);
        #[cfg(target_os = "linux")]
        assert!(!s.process.top_threads.is_empty());
    }

    /// A refresh that takes long (here: one that holds the lock) keeps
    /// the async reader waiting on a blocking thread, while the worker goes
    /// on running other tasks.
    #[test]
    fn an_async_read_never_blocks_the_worker() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let reader = SystemReader::new();
        let (locked, release) = (
            std::sync::mpsc::channel::<()>(),
            std::sync::mpsc::channel::<()>(),
        );
        let inner = Arc::clone(&reader.inner);
        let holder = std::thread::spawn(move || {
            let _refreshing = inner.state.lock();
            locked.0.send(()).unwrap();
            release.1.recv().unwrap();
        });
        locked.1.recv().unwrap();
        let ticks = runtime.block_on(async {
            let read = reader.read();
            tokio::pin!(read);
            let mut ticks = 0;
            let mut tick = tokio::time::interval(Duration::from_millis(5));
            loop {
                tokio::select! {
                    _ = &mut read => return ticks,
                    _ = tick.tick() => {
                        ticks += 1;
                        if ticks == 20 {
                            release.0.send(()).unwrap();
                        }
                    }
                }
            }
        });
        holder.join().unwrap();
        assert!(
            ticks >= 20,
            "the worker ran {ticks} ticks while the read waited"
        );
    }

    #[test]
    fn refreshes_are_cached() {
        let reader = SystemReader::new();
        let a = reader.snapshot();
        let b = reader.snapshot();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(Arc::ptr_eq(&a, &reader.inner.fresh().unwrap()));
    }
}
