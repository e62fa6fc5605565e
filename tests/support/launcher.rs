//! How the tests run a real external server: a fresh scratch directory, free
//! loopback ports, the child's stdout and stderr in a log file, a readiness
//! poll with a deadline, stop by PID, restart on the same ports. A helper
//! describes its server with [`ServerKind`]; [`Server`] does the rest.
//!
//! Shared by every helper that starts a server (`support::rotel`,
//! `support::prometheus`, `support::mongo`) and by tests with a server of
//! their own.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a spawned server may take to be ready.
pub const READY_DEADLINE: Duration = Duration::from_secs(60);

/// Pause between two readiness polls.
const READY_POLL: Duration = Duration::from_millis(50);

/// Pause before spawning again on the same ports: the port a killed run held
/// can stay busy for a moment.
const RESPAWN_PAUSE: Duration = Duration::from_millis(200);

/// Runs on fresh ports before [`Server::launch`] gives up.
const ATTEMPTS: usize = 5;

/// Lines of the log that a failure message ends with.
const TAIL: usize = 60;

/// What one kind of server brings: its command line and what "ready" means
/// once it accepts connections.
pub trait ServerKind {
    /// Names the scratch directory and the messages.
    const NAME: &'static str;

    /// Said with every failure to find or run the server.
    const INSTALL_HINT: &'static str;

    /// The command line of one run; the launcher sets stdin, stdout and
    /// stderr.
    fn command(&self, run: &Run<'_>) -> Command;

    /// One readiness poll, made once the child accepts connections on all
    /// its ports and owns them: `Err` says what is still missing.
    fn ready(&self, run: &Run<'_>) -> impl Future<Output = Result<(), String>> + Send {
        let _ = run;
        async { Ok(()) }
    }
}

/// Where one run of a server lives.
#[derive(Debug)]
pub struct Run<'a> {
    /// The server's scratch directory, shared by its runs (configuration).
    pub home: &'a Path,
    /// This run's own directory (`run-N` in `home`): log, PID file, data.
    pub dir: &'a Path,
    /// The ports, in the order the kind's command line uses them.
    pub ports: &'a [u16],
}

/// An external server of the test's own, on 127.0.0.1. Dropping it kills the
/// child (by its PID) and removes its directory, unless the test is failing:
/// then the directory stays and its path is printed. Between a stop and the
/// next run its ports are held ([`HeldPorts`]), so it comes back on them.
#[derive(Debug)]
pub struct Server<K: ServerKind> {
    pub kind: K,
    home: PathBuf,
    ports: Vec<u16>,
    held: Option<HeldPorts>,
    child: Option<Child>,
    runs: u32,
}

impl<K: ServerKind> Server<K> {
    /// A server with its scratch directory made, not running yet (the
    /// caller may write its configuration there first).
    pub fn new(kind: K) -> Self {
        Self {
            kind,
            home: fresh_temp_dir(K::NAME),
            ports: Vec::new(),
            held: None,
            child: None,
            runs: 0,
        }
    }

    /// Runs it on `count` free ports and waits until it is ready. A port
    /// taken in the meantime (the child exits, or another process answers)
    /// means another try on fresh ports.
    pub async fn launch(&mut self, count: usize) {
        let mut failures = Vec::new();
        for _attempt in 0..ATTEMPTS {
            let held = HeldPorts::fresh(count);
            self.ports = held.ports.clone();
            self.held = Some(held);
            match self.run_once().await {
                Ok(()) => return,
                Err(e) => failures.push(e),
            }
        }
        panic!("{} did not start:\n{}", K::NAME, failures.join("\n---\n"));
    }

    /// Runs it on the `held` ports (released as it is spawned) and waits
    /// until it is ready.
    pub async fn launch_held(&mut self, held: HeldPorts) {
        let ports = held.ports.clone();
        self.held = Some(held);
        self.launch_on(&ports).await;
    }

    /// Runs it on these ports and waits until it is ready, spawning it again
    /// while it fails to start, until [`READY_DEADLINE`].
    pub async fn launch_on(&mut self, ports: &[u16]) {
        self.ports = ports.to_vec();
        let start = Instant::now();
        loop {
            match self.run_once().await {
                Ok(()) => return,
                Err(e) if start.elapsed() > READY_DEADLINE => panic!(
                    "{} did not start on ports {ports:?} within {READY_DEADLINE:?}:\n{e}",
                    K::NAME
                ),
                Err(_) => tokio::time::sleep(RESPAWN_PAUSE).await,
            }
        }
    }

    /// Stops it if it runs, then runs it again on the same ports, with a new
    /// log, and waits until it is ready.
    pub async fn restart(&mut self) {
        self.stop();
        let ports = std::mem::take(&mut self.ports);
        self.launch_on(&ports).await;
    }

    /// Kills the child (SIGKILL, by its PID: a crash, not a shutdown) and
    /// waits for it to be gone, so its ports are closed when this returns:
    /// connections are refused, and the ports are held for the next run.
    /// The log stays readable until the next run.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            self.held = HeldPorts::hold(&self.ports);
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// The ports of the latest run, in the order of the command line.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Where the latest run's stdout and stderr go.
    pub fn log_path(&self) -> PathBuf {
        self.run_dir().join("output.log")
    }

    /// Everything the latest run printed so far (read lossily: a server may
    /// print bytes that are not UTF-8).
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.log_path()).unwrap_or_default()).into_owned()
    }

    /// The last `lines` lines of [`Server::log`], for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn run_dir(&self) -> PathBuf {
        self.home.join(format!("run-{}", self.runs))
    }

    /// Spawns one run on `self.ports` and waits until it is ready. `Err`
    /// (the child killed) when the ports were not its to take.
    async fn run_once(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "{} is already running", K::NAME);
        self.runs += 1;
        let dir = self.run_dir();
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let log = std::fs::File::create(self.log_path()).expect("creating the log file");
        let run = Run {
            home: &self.home,
            dir: &dir,
            ports: &self.ports,
        };
        let mut command = self.kind.command(&run);
        // Released at the last moment: the child binds them next.
        self.held = None;
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cloning the log file handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                let program = command.get_program().to_string_lossy();
                panic!("cannot run `{program}`: {e}\n{}", K::INSTALL_HINT)
            });
        self.child = Some(child);
        let ready = self.wait_ready(&dir).await;
        if ready.is_err() {
            self.stop();
        }
        ready.map_err(|e| self.failure(&e))
    }

    /// `what` went wrong with the latest run, with the end of its log.
    fn failure(&self, what: &str) -> String {
        format!(
            "{} on ports {:?}: {what}; {} ends with:\n{}",
            K::NAME,
            self.ports,
            self.log_path().display(),
            self.log_tail(TAIL)
        )
    }

    /// Polls until the child accepts connections on every port, owns the
    /// listening sockets (another test's server may have taken a port
    /// first) and passes the kind's own check. `Err` as soon as the child
    /// has exited or another process listens on one of its ports; fails the
    /// test after [`READY_DEADLINE`].
    async fn wait_ready(&mut self, dir: &Path) -> Result<(), String> {
        let run = &Run {
            home: &self.home,
            dir,
            ports: &self.ports,
        };
        let kind = &self.kind;
        let child = self.child.as_mut().expect("a child was spawned");
        let pid = child.id();
        // `Ok(Err(_))`: give up at once; `Err(_)`: not ready yet.
        let polled = poll(READY_DEADLINE, READY_POLL, move || {
            let exited = child.try_wait().expect("polling the child");
            async move {
                if let Some(status) = exited {
                    return Ok(Err(format!("exited ({status})")));
                }
                for &port in run.ports {
                    let connect = tokio::net::TcpStream::connect(("127.0.0.1", port));
                    if !matches!(
                        tokio::time::timeout(Duration::from_secs(1), connect).await,
                        Ok(Ok(_))
                    ) {
                        return Err(format!("port {port} does not accept connections yet"));
                    }
                }
                if let Some(own) = listening_ports(pid)
                    && let Some(port) = run.ports.iter().find(|p| !own.contains(p))
                {
                    return Ok(Err(format!(
                        "another process listens on port {port} (the child listens on {own:?})"
                    )));
                }
                kind.ready(run).await.map(Ok)
            }
        })
        .await;
        polled.unwrap_or_else(|last| {
            panic!(
                "{}",
                self.failure(&format!("not ready after {READY_DEADLINE:?} ({last})"))
            )
        })
    }
}

impl<K: ServerKind> Drop for Server<K> {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("{} logs kept in {}", K::NAME, self.home.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.home);
        }
    }
}

/// Calls `check` every `every` until it returns `Ok`; `Err` with its last
/// complaint once `deadline` has passed.
pub async fn poll<T, F, Fut>(deadline: Duration, every: Duration, mut check: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        match check().await {
            Ok(value) => return Ok(value),
            Err(last) if start.elapsed() >= deadline => return Err(last),
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}

/// The stdout of `program args`, which must run and succeed; otherwise
/// fails the test with what went wrong and `hint`. Each command line runs
/// once per test binary.
pub fn require(program: &str, args: &[&str], hint: &str) -> String {
    static RAN: Mutex<BTreeMap<Vec<String>, Result<String, String>>> = Mutex::new(BTreeMap::new());
    let line: Vec<String> = std::iter::once(program)
        .chain(args.iter().copied())
        .map(str::to_owned)
        .collect();
    let mut ran = RAN.lock().unwrap();
    let result = ran.entry(line).or_insert_with(|| {
        match Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
        {
            Ok(out) if out.status.success() => {
                Ok(String::from_utf8_lossy(&out.stdout).into_owned())
            }
            Ok(out) => Err(format!(
                "`{program} {}` failed ({}): {}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )),
            Err(e) => Err(format!("cannot run `{program}`: {e}")),
        }
    });
    let result = result.clone();
    // Released before failing, so that other tests still get the message.
    drop(ran);
    result.unwrap_or_else(|e| panic!("{e}\n{hint}"))
}

/// A new, empty directory under the system's temp dir, unique to this
/// process and call.
pub fn fresh_temp_dir(what: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!(
        "serverwatch-{what}-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    dir
}

/// Loopback ports bound but not listening: a connection to one is refused,
/// as when no server is there, and no other socket takes one meanwhile
/// (neither a bind to port 0 nor an outgoing connection picks a bound
/// port). Released when dropped.
#[derive(Debug)]
pub struct HeldPorts {
    ports: Vec<u16>,
    _sockets: Vec<tokio::net::TcpSocket>,
}

impl HeldPorts {
    /// `count` free ports, held until a server is launched on them.
    pub fn fresh(count: usize) -> Self {
        let sockets: Vec<_> = (0..count)
            .map(|_| bound(0).expect("binding 127.0.0.1:0"))
            .collect();
        let ports = sockets
            .iter()
            .map(|s| s.local_addr().unwrap().port())
            .collect();
        Self {
            ports,
            _sockets: sockets,
        }
    }

    /// `ports`, which a server has just left, held for its next run; `None`
    /// when one cannot be bound (then they are left free).
    pub fn hold(ports: &[u16]) -> Option<Self> {
        let sockets = ports
            .iter()
            .map(|&port| bound(port).ok())
            .collect::<Option<Vec<_>>>()?;
        Some(Self {
            ports: ports.to_vec(),
            _sockets: sockets,
        })
    }

    pub fn ports(&self) -> &[u16] {
        &self.ports
    }
}

/// A socket bound to 127.0.0.1:`port`, not listening.
fn bound(port: u16) -> std::io::Result<tokio::net::TcpSocket> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    // Binds past the TIME_WAIT connections a killed server leaves behind.
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
    Ok(socket)
}

/// The TCP ports process `pid` listens on, from `/proc`; `None` where that
/// cannot be read (not Linux).
fn listening_ports(pid: u32) -> Option<Vec<u16>> {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    let inodes: Vec<String> = fds
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_owned(),
            )
        })
        .collect();
    let mut ports = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            if fields.len() < 10 || fields[3] != "0A" || !inodes.iter().any(|i| i == fields[9]) {
                continue;
            }
            let port = fields[1].rsplit(':').next()?;
            ports.push(u16::from_str_radix(port, 16).ok()?);
        }
    }
    Some(ports)
}
