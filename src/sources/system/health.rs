//! The system as a source: its families at every reading, and the
//! `memory_analysis` section of `/health`, with the field names of psutil
//! that Python's `EnhancedHealthCheck` used.

use serde::Serialize;

use super::{SystemReader, SystemSnapshot};
use crate::model::family::{Family, percent};
use crate::source::{BoxFuture, Section, Source, Wants};

impl Source for SystemReader {
    fn families(&self, wants: Wants<'_>, out: &mut Vec<Family>) {
        let snapshot = self.snapshot();
        out.extend(
            snapshot
                .families()
                .into_iter()
                .filter(|f| wants(f.instrument)),
        );
    }

    fn health(&self) -> BoxFuture<'_, Option<Section>> {
        Box::pin(async {
            let snapshot = self.read().await;
            Some(Section::report(
                "memory_analysis",
                memory_analysis(&snapshot),
            ))
        })
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct MemoryAnalysis {
    process: ProcessSection,
    system: SystemSection,
}

#[derive(Debug, Serialize)]
struct ProcessSection {
    process: ProcessInfo,
    /// The busiest threads by CPU time. (Not a memory figure per thread:
    /// threads share one address space.)
    threads: Vec<ThreadInfo>,
}

#[derive(Debug, Serialize)]
struct ProcessInfo {
    pid: u32,
    memory_percent: f64,
    memory_info: MemoryInfo,
    num_threads: u64,
    open_files: u64,
    connections: u64,
}

#[derive(Debug, Serialize)]
struct MemoryInfo {
    rss: u64,
    vms: u64,
    shared: u64,
    text: u64,
    lib: u64,
    data: u64,
    /// Always 0 on Linux since 2.6, as in psutil.
    dirty: u64,
}

#[derive(Debug, Serialize)]
struct ThreadInfo {
    thread_id: u32,
    name: String,
    cpu_seconds: f64,
}

#[derive(Debug, Serialize)]
struct SystemSection {
    virtual_memory: VirtualMemory,
    swap_memory: SwapMemory,
}

#[derive(Debug, Serialize)]
struct VirtualMemory {
    total: u64,
    available: u64,
    used: u64,
    free: u64,
    percent: f64,
    active: u64,
    inactive: u64,
    buffers: u64,
    cached: u64,
    shared: u64,
}

#[derive(Debug, Serialize)]
struct SwapMemory {
    total: u64,
    used: u64,
    free: u64,
    percent: f64,
    sin: u64,
    sout: u64,
}

fn memory_analysis(s: &SystemSnapshot) -> MemoryAnalysis {
    let p = &s.process;
    let m = &s.memory;
    MemoryAnalysis {
        process: ProcessSection {
            process: ProcessInfo {
                pid: p.pid,
                memory_percent: s.memory_percent(),
                memory_info: MemoryInfo {
                    rss: p.resident_bytes,
                    vms: p.virtual_bytes,
                    shared: p.shared_bytes,
                    text: p.text_bytes,
                    lib: p.lib_bytes,
                    data: p.data_bytes,
                    dirty: 0,
                },
                num_threads: p.threads,
                open_files: p.open_fds.unwrap_or(0),
                connections: p.sockets,
            },
            threads: p
                .top_threads
                .iter()
                .map(|t| ThreadInfo {
                    thread_id: t.id,
                    name: t.name.clone(),
                    cpu_seconds: t.cpu_seconds,
                })
                .collect(),
        },
        system: SystemSection {
            virtual_memory: VirtualMemory {
                total: m.total,
                available: m.available,
                used: m.used,
                free: m.free,
                // psutil's definition: what is not available.
                percent: round1(percent(m.total.saturating_sub(m.available), m.total)),
                active: m.active,
                inactive: m.inactive,
                buffers: m.buffers,
                cached: m.cached,
                shared: m.shared,
            },
            swap_memory: SwapMemory {
                total: s.swap.total,
                used: s.swap.used,
                free: s.swap.free,
                percent: round1(percent(s.swap.used, s.swap.total)),
                sin: s.swap.swapped_in,
                sout: s.swap.swapped_out,
            },
        },
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
