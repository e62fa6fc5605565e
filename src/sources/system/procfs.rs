//! The Linux details that `sysinfo` does not report: psutil's memory_info
//! breakdown, sockets, and the buffers/cached/active/inactive split of system
//! memory. Each read is of this process's own `/proc` entries or of a
//! system-wide summary file, never of other processes.

use std::fs;

use super::{SystemSnapshot, ThreadStats};

/// How many threads the health report lists.
const TOP_THREADS: usize = 5;

/// Fills in what only `/proc` tells. A file that cannot be read leaves its
/// figures at zero rather than failing the whole reading.
pub(super) fn complete(snapshot: &mut SystemSnapshot) {
    let kib = |fields: &[(String, u64)], name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map_or(0, |(_, v)| v * 1024)
    };

    let status = key_values("/proc/self/status");
    let p = &mut snapshot.process;
    p.shared_bytes = kib(&status, "RssFile") + kib(&status, "RssShmem");
    p.text_bytes = kib(&status, "VmExe");
    p.lib_bytes = kib(&status, "VmLib");
    p.data_bytes = kib(&status, "VmData") + kib(&status, "VmStk");
    if let Some((_, threads)) = status.iter().find(|(k, _)| k == "Threads") {
        p.threads = *threads;
    }
    p.sockets = count_sockets();
    if let Some((user, system)) = cpu_user_system() {
        p.cpu_user_system = Some((user, system));
        p.cpu_seconds = user + system;
    }
    p.top_threads = top_threads();

    let meminfo = key_values("/proc/meminfo");
    let m = &mut snapshot.memory;
    m.buffers = kib(&meminfo, "Buffers");
    // What `free` and psutil call cached: the page cache plus reclaimable slab.
    m.cached = kib(&meminfo, "Cached") + kib(&meminfo, "SReclaimable");
    m.active = kib(&meminfo, "Active");
    m.inactive = kib(&meminfo, "Inactive");
    m.shared = kib(&meminfo, "Shmem");
    m.free = kib(&meminfo, "MemFree");
    m.used = m
        .total
        .saturating_sub(m.free)
        .saturating_sub(m.buffers)
        .saturating_sub(m.cached);

    let page = rustix::param::page_size() as u64;
    let vmstat = key_values("/proc/vmstat");
    let pages = |name: &str| {
        vmstat
            .iter()
            .find(|(k, _)| k == name)
            .map_or(0, |(_, v)| v * page)
    };
    snapshot.swap.swapped_in = pages("pswpin");
    snapshot.swap.swapped_out = pages("pswpout");
}

/// User and system CPU time of this process, from `/proc/self/stat`.
fn cpu_user_system() -> Option<(f64, f64)> {
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces and parentheses: count from its end.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user / ticks, system / ticks))
}

/// Parses `Key: 123 kB` and `key 123` lines; other lines are skipped.
fn key_values(path: &str) -> Vec<(String, u64)> {
    let Ok(text) = fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let key = parts.next()?.trim_end_matches(':');
            let value = parts.next()?.parse().ok()?;
            Some((key.to_owned(), value))
        })
        .collect()
}

/// The busiest threads by CPU time, from each task's `schedstat` (its
/// first field is the time spent on a CPU, in nanoseconds).
fn top_threads() -> Vec<ThreadStats> {
    let Ok(tasks) = fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut threads: Vec<ThreadStats> = tasks
        .filter_map(Result::ok)
        .filter_map(|task| {
            let id = task.file_name().to_str()?.parse().ok()?;
            let path = task.path();
            let name = fs::read_to_string(path.join("comm")).ok()?;
            let schedstat = fs::read_to_string(path.join("schedstat")).ok()?;
            let nanos: u64 = schedstat.split_whitespace().next()?.parse().ok()?;
            Some(ThreadStats {
                id,
                name: name.trim_end().to_owned(),
                cpu_seconds: nanos as f64 / 1e9,
            })
        })
        .collect();
    threads.sort_by(|a, b| {
        b.cpu_seconds
            .total_cmp(&a.cpu_seconds)
            .then(a.id.cmp(&b.id))
    });
    threads.truncate(TOP_THREADS);
    threads
}

fn count_sockets() -> u64 {
    let Ok(entries) = fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| fs::read_link(e.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("socket:"))
        .count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_states_add_up_to_the_total() {
        let mut s = SystemSnapshot::default();
        s.memory.total = key_values("/proc/meminfo")
            .iter()
            .find(|(k, _)| k == "MemTotal")
            .map(|(_, v)| v * 1024)
            .unwrap();
        complete(&mut s);
        let m = &s.memory;
        assert_eq!(m.used + m.free + m.buffers + m.cached, m.total);
        assert!(s.process.data_bytes > 0);
        let (user, system) = s.process.cpu_user_system.unwrap();
        assert!(user >= 0.0 && system >= 0.0);
        assert!((user + system - s.process.cpu_seconds).abs() < 1e-9);
    }

    #[test]
    fn sockets_are_counted() {
        let _listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(count_sockets() >= 1);
    }
}
