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
//! Nothing here skips: a missing nx-27017 fails the test and says to run
//! `scripts/install-test-deps`.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::launcher::{Run, Server, ServerKind, require};
use mongodb::bson::{Document, doc};
use mongodb::options::ClientOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// The command that runs the server.
const NX: &str = "nx-27017";

const INSTALL_HINT: &str = "run scripts/install-test-deps to install nx-27017, the MongoDB \
                            wire-protocol server the tests start (`pip install nx-27017`)";

// ---------------------------------------------------------------------------
// nx-27017

/// An nx-27017 server of the test's own, on 127.0.0.1, with an in-memory
/// database (empty again after each restart).
pub type Nx = Server<Nx27017>;

#[derive(Debug)]
pub struct Nx27017;

impl ServerKind for Nx27017 {
    const NAME: &'static str = "nx-27017";
    const INSTALL_HINT: &'static str = INSTALL_HINT;

    fn command(&self, run: &Run<'_>) -> Command {
        let mut command = Command::new(NX);
        command
            .args(["--db", "memory", "--host", "127.0.0.1", "-p"])
            .arg(run.ports[0].to_string())
            // The default log and PID files are shared by every nx-27017 of
            // the machine, and a live PID in the PID file makes the next one
            // refuse to start. It logs to stdout too.
            .arg("--log-file")
            .arg(run.dir.join("nx.log"))
            .arg("--pid-file")
            .arg(run.dir.join("nx.pid"));
        command
    }

    /// Ready once a ping through the driver succeeds.
    async fn ready(&self, run: &Run<'_>) -> Result<(), String> {
        ping(&uri(loopback(run.ports[0])))
            .await
            .map_err(|e| format!("ping failed: {e}"))
    }
}

impl Nx {
    /// Starts nx-27017 on a free port and waits until it answers a ping
    /// through the driver.
    pub async fn start() -> Self {
        require(NX, &["--help"], INSTALL_HINT);
        let mut nx = Server::new(Nx27017);
        nx.launch(1).await;
        nx
    }

    pub fn port(&self) -> u16 {
        self.ports()[0]
    }

    pub fn addr(&self) -> SocketAddr {
        loopback(self.port())
    }

    /// `mongodb://127.0.0.1:PORT/`
    pub fn uri(&self) -> String {
        uri(self.addr())
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn uri(addr: SocketAddr) -> String {
    format!("mongodb://{addr}/")
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
        uri(self.addr)
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
        uri(self.addr)
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
