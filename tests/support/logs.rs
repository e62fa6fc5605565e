//! The `serverwatch` log lines of a test binary, captured by a global
//! `tracing` subscriber installed by the first call to [`captured`] (a test
//! binary that calls it installs no subscriber of its own).

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

/// Every formatted `serverwatch` event of this test binary, from any test.
pub fn captured() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buffer);
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("serverwatch=debug"))
            .with_ansi(false)
            .with_writer(move || Capture(Arc::clone(&sink)))
            .try_init()
            .expect("the only global subscriber of this test binary");
        buffer
    })
}

/// A place in the captured log, taken before an exporter is built: the
/// lines after it leave out an earlier test's exporter to the same port
/// (a port is free again once its test is over).
#[derive(Debug, Clone, Copy)]
pub struct Mark(usize);

/// The end of the captured log, now (installing the subscriber first).
pub fn mark() -> Mark {
    Mark(captured().lock().unwrap().len())
}

/// The captured lines after `since` that contain `text` (tests run in
/// parallel: each exporter logs its own endpoint, which tells them apart).
pub fn lines_with(since: Mark, text: &str) -> Vec<String> {
    // The subscriber writes whole events, so a mark is at a line's start.
    String::from_utf8_lossy(&captured().lock().unwrap()[since.0..])
        .lines()
        .filter(|l| l.contains(text))
        .map(str::to_owned)
        .collect()
}

/// Appends what the subscriber writes (one event at a time) to the buffer.
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
