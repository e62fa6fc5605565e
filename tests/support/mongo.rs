//! MongoDB for the tests, with nothing mocked inside serverwatch or the
//! driver:
//!
//! - [`Nx`]: nx-27017, a real MongoDB wire-protocol server (PyPI), started on
//!   a free loopback port with an in-memory database, stopped and restarted
//!   on the same port, killed (by its PID) on drop;
//! - [`BlackHole`]: a TCP listener that accepts connections and never
//!   answers, the database that hangs;
//! - [`WireProxy`]: a proxy in front of a server that reads the wire protocol
//!   as it passes, counts the commands and connections, and on request
//!   swallows a command (it never gets an answer), answers one with an error
//!   of its own, or closes a given connection.
//!
//! Include it with `#[path = "support/mongo.rs"] mod mongo;`. Nothing here
//! skips: a missing nx-27017 fails the test and says to run
//! `scripts/install-test-deps`.

#![allow(
    dead_code,
    reason = "each test file uses a different part of this module"
)]

use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

#[allow(
    clippy::duplicate_mod,
    reason = "each helper stands alone; a test binary may include several"
)]
#[path = "scratch.rs"]
mod scratch;

use mongodb::bson::{Document, doc};
use mongodb::options::ClientOptions;
use scratch::{free_port, fresh_temp_dir};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// How long nx-27017 may take to answer a ping after it was started.
pub const READY_DEADLINE: Duration = Duration::from_secs(20);

/// Pause between two polls.
const POLL_EVERY: Duration = Duration::from_millis(50);

/// The command that runs the server.
const NX: &str = "nx-27017";

const INSTALL_HINT: &str = "run scripts/install-test-deps to install nx-27017, the MongoDB \
                            wire-protocol server the tests start (`pip install nx-27017`)";

// ---------------------------------------------------------------------------
// nx-27017

/// Fails the test, telling how to install it, unless `nx-27017 --help` runs.
/// Checked once per test binary.
pub fn require_nx() {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    let checked = CHECKED.get_or_init(|| match Command::new(NX).arg("--help").output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "`{NX} --help` failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )),
        Err(e) => Err(format!("cannot run `{NX}`: {e}")),
    });
    if let Err(e) = checked {
        panic!("{e}\n{INSTALL_HINT}");
    }
}

/// An nx-27017 server of the test's own, on 127.0.0.1, with an in-memory
/// database. Its logs, PID file and output live in a temporary directory
/// (kept, and its path printed, when the test fails).
#[derive(Debug)]
pub struct Nx {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    /// Starts so far; each has its own log, PID file and output file.
    runs: u32,
}

impl Nx {
    /// Starts nx-27017 on a free port and waits until it answers a ping
    /// through the driver. Tries another port if the one picked was taken in
    /// the meantime.
    pub async fn start() -> Self {
        require_nx();
        let mut nx = Nx {
            child: None,
            port: 0,
            dir: fresh_temp_dir("nx"),
            runs: 0,
        };
        let mut failures = Vec::new();
        for _attempt in 0..5 {
            nx.port = free_port();
            match nx.launch().await {
                Ok(()) => return nx,
                Err(e) => failures.push(e),
            }
        }
        panic!(
            "nx-27017 did not start (logs in {}):\n{}",
            nx.dir.display(),
            failures.join("\n---\n")
        );
    }

    /// Kills the server (SIGKILL, by its PID: a crash, not a shutdown) and
    /// waits for it to be gone. Its port is closed when this returns.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (with an empty database) and
    /// waits until it answers a ping. Fails the test if the port stays taken
    /// or the server does not come up within [`READY_DEADLINE`].
    pub async fn restart(&mut self) {
        self.stop();
        let start = Instant::now();
        loop {
            match self.launch().await {
                Ok(()) => return,
                Err(e) if start.elapsed() > READY_DEADLINE => panic!(
                    "nx-27017 did not start again on port {} within {READY_DEADLINE:?}:\n{e}",
                    self.port
                ),
                // Most likely the port is still (or already) held by
                // another socket: try again.
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `mongodb://127.0.0.1:PORT/`
    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/", self.port)
    }

    /// The log and output of the latest run, for failure messages.
    pub fn log(&self) -> String {
        let read = |name: String| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        format!(
            "{}{}",
            read(format!("nx-{}.log", self.runs)),
            read(format!("out-{}.txt", self.runs))
        )
    }

    /// Spawns one run on `self.port` and waits until it is ready; on failure
    /// it is killed and `Err` says why.
    async fn launch(&mut self) -> Result<(), String> {
        self.runs += 1;
        let run = self.runs;
        let file = |name: String| self.dir.join(name);
        let out = std::fs::File::create(file(format!("out-{run}.txt"))).unwrap();
        let child = Command::new(NX)
            .args(["--db", "memory", "--host", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("--log-file")
            .arg(file(format!("nx-{run}.log")))
            // The default PID file is shared by every nx-27017 of the
            // machine, and a live PID in it makes the next one refuse to
            // start.
            .arg("--pid-file")
            .arg(file(format!("nx-{run}.pid")))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `{NX}`: {e}\n{INSTALL_HINT}"));
        self.child = Some(child);
        match self.wait_ready().await {
            Ok(()) => Ok(()),
            Err(e) => {
                self.stop();
                Err(e)
            }
        }
    }

    /// Ready: the process is alive, its own log says it listens on our
    /// port (so that the server answering is this one, not another test's
    /// that took the port), and a ping through the driver succeeds.
    async fn wait_ready(&mut self) -> Result<(), String> {
        let listening = format!("Listening on 127.0.0.1:{}", self.port);
        let log_path = self.dir.join(format!("nx-{}.log", self.runs));
        let start = Instant::now();
        let mut last = String::from("not listening yet");
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                return Err(format!("nx-27017 exited ({status}):\n{}", self.log()));
            }
            let logged = std::fs::read_to_string(&log_path)
                .unwrap_or_default()
                .contains(&listening);
            if logged && StdTcpStream::connect(self.addr()).is_ok() {
                match ping(&self.uri()).await {
                    Ok(()) => return Ok(()),
                    Err(e) => last = format!("ping failed: {e}"),
                }
            }
            if start.elapsed() > READY_DEADLINE {
                return Err(format!(
                    "nx-27017 on port {} not ready after {READY_DEADLINE:?} ({last}):\n{}",
                    self.port,
                    self.log()
                ));
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }
}

/// One `ping` on `admin` through a client of its own.
async fn ping(uri: &str) -> Result<(), mongodb::error::Error> {
    let mut options = ClientOptions::parse(uri).await?;
    options.direct_connection = Some(true);
    options.server_selection_timeout = Some(Duration::from_millis(500));
    options.connect_timeout = Some(Duration::from_millis(500));
    let client = mongodb::Client::with_options(options)?;
    let result = client
        .database("admin")
        .run_command(doc! {"ping": 1})
        .await
        .map(drop);
    client.shutdown().immediate(true).await;
    result
}

impl Drop for Nx {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("nx-27017 logs kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

// ---------------------------------------------------------------------------
// The black hole

/// A listener on a free loopback port that accepts every connection and
/// never sends a byte: the connections stay open (held by the task) until
/// the black hole is dropped.
#[derive(Debug)]
pub struct BlackHole {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl BlackHole {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the black hole");
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                held.push(socket);
            }
        });
        Self {
            addr,
            accepted,
            task,
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// `mongodb://127.0.0.1:PORT/`
    pub fn uri(&self) -> String {
        format!("mongodb://{}/", self.addr)
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------------------
// The wire-protocol proxy

/// What [`WireProxy`] does to the messages it relays.
#[derive(Debug, Clone)]
pub enum ProxyMode {
    /// Relays everything.
    Forward,
    /// Swallows every command of this name: the server never sees it, the
    /// client never gets an answer (a server that hangs on it).
    Stall(&'static str),
    /// Answers every command of this name itself with this document
    /// (`{ok: 0, errmsg: …}`), without the server seeing it.
    Answer(&'static str, Document),
    /// Closes the n-th accepted connection (1-based) when its first message
    /// arrives, before relaying it; relays everything else.
    CloseConnection(usize),
}

#[derive(Debug)]
struct ProxyState {
    upstream: SocketAddr,
    mode: Mutex<ProxyMode>,
    /// Every command clients sent, in order: (connection, command name).
    commands: Mutex<Vec<(usize, String)>>,
    accepted: AtomicUsize,
}

/// A TCP proxy on a free loopback port in front of `upstream` that reads
/// the MongoDB wire protocol as it passes (each message is relayed whole).
/// Its connections end when it is dropped.
#[derive(Debug)]
pub struct WireProxy {
    pub addr: SocketAddr,
    state: Arc<ProxyState>,
    task: JoinHandle<()>,
}

impl WireProxy {
    pub async fn start(upstream: SocketAddr, mode: ProxyMode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the proxy");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(ProxyState {
            upstream,
            mode: Mutex::new(mode),
            commands: Mutex::new(Vec::new()),
            accepted: AtomicUsize::new(0),
        });
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            // Dropped with this task, which aborts every connection's task.
            let mut connections = JoinSet::new();
            while let Ok((socket, _)) = listener.accept().await {
                let index = shared.accepted.fetch_add(1, Ordering::SeqCst) + 1;
                connections.spawn(relay(socket, index, Arc::clone(&shared)));
                while connections.try_join_next().is_some() {}
            }
        });
        Self { addr, state, task }
    }

    pub fn set_mode(&self, mode: ProxyMode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    /// `mongodb://127.0.0.1:PORT/`
    pub fn uri(&self) -> String {
        format!("mongodb://{}/", self.addr)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.state.accepted.load(Ordering::SeqCst)
    }

    /// Every command clients sent so far, in order, as (connection number,
    /// command name); connections are numbered from 1 as accepted.
    pub fn commands(&self) -> Vec<(usize, String)> {
        self.state.commands.lock().unwrap().clone()
    }

    /// How many commands named `name` clients sent so far.
    pub fn count(&self, name: &str) -> usize {
        self.state
            .commands
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, c)| c == name)
            .count()
    }
}

impl Drop for WireProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Relays one client connection; ends (closing both sides) when either side
/// closes or the mode says so.
async fn relay(client: TcpStream, index: usize, state: Arc<ProxyState>) {
    let Ok(server) = TcpStream::connect(state.upstream).await else {
        return;
    };
    let (mut from_client, to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    // Written by both directions: the server's answers and the proxy's own.
    let to_client = Arc::new(tokio::sync::Mutex::new(to_client));
    let answers = {
        let to_client = Arc::clone(&to_client);
        tokio::spawn(async move {
            while let Ok(message) = read_message(&mut from_server).await {
                if to_client.lock().await.write_all(&message).await.is_err() {
                    break;
                }
            }
        })
    };
    let mut first = true;
    while let Ok(message) = read_message(&mut from_client).await {
        let name = command_name(&message);
        state.commands.lock().unwrap().push((index, name.clone()));
        let mode = state.mode.lock().unwrap().clone();
        match mode {
            ProxyMode::CloseConnection(n) if n == index && first => break,
            ProxyMode::Stall(command) if name == command => {}
            ProxyMode::Answer(command, reply) if name == command => {
                let answer = op_msg_reply(request_id(&message), &reply);
                if write_to(&to_client, &answer).await.is_err() {
                    break;
                }
            }
            _ => {
                if to_server.write_all(&message).await.is_err() {
                    break;
                }
            }
        }
        first = false;
    }
    answers.abort();
}

async fn write_to(
    writer: &tokio::sync::Mutex<OwnedWriteHalf>,
    bytes: &[u8],
) -> std::io::Result<()> {
    writer.lock().await.write_all(bytes).await
}

/// Reads one whole message (its 16-byte header included).
async fn read_message(reader: &mut OwnedReadHalf) -> std::io::Result<Vec<u8>> {
    let mut length = [0u8; 4];
    reader.read_exact(&mut length).await?;
    let length = i32::from_le_bytes(length);
    if !(16..=48_000_000).contains(&length) {
        return Err(std::io::Error::other(format!(
            "bad message length {length}"
        )));
    }
    let mut message = vec![0u8; length as usize];
    message[..4].copy_from_slice(&length.to_le_bytes());
    reader.read_exact(&mut message[4..]).await?;
    Ok(message)
}

fn le_i32(bytes: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn request_id(message: &[u8]) -> i32 {
    le_i32(message, 4).unwrap_or(0)
}

/// The command a message carries: the first key of its command document
/// (`OP_MSG` body section, or the query of a legacy `OP_QUERY`), else
/// `"opcode N"`.
pub fn command_name(message: &[u8]) -> String {
    let opcode = le_i32(message, 12).unwrap_or(0);
    let document = match opcode {
        // OP_MSG: flag bits, then sections; kind 0 is the body, kind 1 a
        // document sequence (size, identifier, documents).
        2013 => {
            let mut at = 20;
            let mut body = None;
            while let Some(&kind) = message.get(at) {
                match kind {
                    0 => {
                        body = Some(at + 1);
                        break;
                    }
                    1 => match le_i32(message, at + 1) {
                        Some(size) if size > 0 => at += 1 + size as usize,
                        _ => break,
                    },
                    _ => break,
                }
            }
            body
        }
        // OP_QUERY: flags, collection name (a C string), skip, return, query.
        2004 => message
            .get(20..)
            .and_then(|rest| rest.iter().position(|&b| b == 0))
            .map(|nul| 20 + nul + 1 + 8),
        _ => None,
    };
    document
        .and_then(|doc| {
            // Document size, then the first element's type and C-string key.
            let key = message.get(doc + 5..)?;
            let end = key.iter().position(|&b| b == 0)?;
            Some(String::from_utf8_lossy(&key[..end]).into_owned())
        })
        .unwrap_or_else(|| format!("opcode {opcode}"))
}

/// An `OP_MSG` answering request `response_to` with `body`.
fn op_msg_reply(response_to: i32, body: &Document) -> Vec<u8> {
    let mut document = Vec::new();
    body.to_writer(&mut document).expect("encoding the answer");
    let length = 16 + 4 + 1 + document.len();
    let mut message = Vec::with_capacity(length);
    message.extend_from_slice(&(length as i32).to_le_bytes());
    message.extend_from_slice(&0x5eedi32.to_le_bytes());
    message.extend_from_slice(&response_to.to_le_bytes());
    message.extend_from_slice(&2013i32.to_le_bytes());
    message.extend_from_slice(&0u32.to_le_bytes());
    message.push(0);
    message.extend_from_slice(&document);
    message
}
