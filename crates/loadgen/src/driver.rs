//! The event loop: many connections driven by one thread with mio (epoll), as redis-benchmark
//! does, so the whole client can be pinned to one CPU.
//!
//! Each connection writes `pipeline` units in one write, reads until every reply of all of
//! them has arrived, and only then writes the next batch. A unit's latency runs from the
//! write of its batch to the read that brought its last reply byte. Every reply is checked
//! against what its command must answer; the first that is not aborts the run.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::resp::{check, parse, Mismatch, Reply};
use crate::workload::{push_command, Generator, UnitKind};

/// Bytes read per `read` call; a connection's buffer grows past this only for a reply larger than it.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// A server that sends nothing for this long while replies are owed has hung.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Latencies are recorded in microseconds up to this bound (longer ones are clamped to it).
const LATENCY_MAX_US: u64 = 60_000_000;
/// Most connections one run opens.
pub const CLIENTS_MAX: usize = 10_000;
/// Most units in flight per connection.
pub const PIPELINE_MAX: usize = 10_000;

/// When a run stops issuing units.
#[derive(Debug, Clone, Copy)]
pub enum Limit {
    Units(u64),
    Duration(Duration),
}

#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub clients: usize,
    pub pipeline: usize,
    pub limit: Limit,
    /// Poll without sleeping, so the client never waits in the kernel for a reply and the
    /// server never pays for waking it: isolates the server's own cost per request.
    pub busy_poll: bool,
    /// CLIENT TRACKING on every connection, its invalidations redirected to this client (see
    /// [`tracking_sink`]).
    pub tracking_redirect: Option<u64>,
}

/// What a finished run measured.
#[derive(Debug)]
pub struct Report {
    pub units: u64,
    /// Units that were `MULTI` .. `EXEC` transactions.
    pub tx_units: u64,
    pub elapsed: Duration,
    /// Unit latencies in microseconds.
    pub latency_us: Histogram<u64>,
}

impl Report {
    pub fn units_per_sec(&self) -> f64 {
        self.units as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn latency_ms_at(&self, quantile: f64) -> f64 {
        self.latency_us.value_at_quantile(quantile) as f64 / 1000.0
    }
}

/// Why a run stopped early.
#[derive(Debug)]
pub enum RunError {
    Io(io::Error),
    /// The server answered a command with an error (for example, it does not support it).
    Server {
        command: &'static str,
        message: String,
    },
    /// A reply that is well-formed RESP but not what the command must answer.
    Unexpected {
        command: &'static str,
        detail: String,
    },
    Protocol(String),
    Closed,
    TimedOut,
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Io(error) => write!(f, "I/O error: {error}"),
            RunError::Server { command, message } => write!(f, "the server answered {command} with an error: -{message}"),
            RunError::Unexpected { command, detail } => write!(f, "unexpected reply to {command}: {detail}"),
            RunError::Protocol(detail) => write!(f, "{detail}"),
            RunError::Closed => write!(f, "the server closed a connection"),
            RunError::TimedOut => write!(f, "no reply for {} s", REPLY_TIMEOUT.as_secs()),
        }
    }
}

impl From<io::Error> for RunError {
    fn from(error: io::Error) -> RunError {
        RunError::Io(error)
    }
}

impl std::error::Error for RunError {}

fn mismatch_error(command: &'static str, mismatch: Mismatch) -> RunError {
    match mismatch {
        Mismatch::ServerError(message) => RunError::Server { command, message },
        Mismatch::Unexpected(detail) => RunError::Unexpected { command, detail },
    }
}

/// A unit whose replies are still arriving.
#[derive(Debug)]
struct InFlight {
    kind: UnitKind,
    /// Replies of this unit already checked.
    replies_done: usize,
}

struct Connection {
    stream: TcpStream,
    output: Vec<u8>,
    output_written: usize,
    input: Vec<u8>,
    /// `input[input_start..input_filled]` holds bytes read but not yet parsed.
    input_start: usize,
    input_filled: usize,
    in_flight: VecDeque<InFlight>,
    batch_written_at: Instant,
}

/// Counts shared by all connections.
struct Progress {
    limit: Limit,
    started_at: Instant,
    issued: u64,
    completed: u64,
    tx_completed: u64,
    pipeline: usize,
    latency_us: Histogram<u64>,
}

impl Progress {
    /// How many units the next batch may hold (0 once the limit is reached).
    fn batch_size(&self, now: Instant) -> usize {
        match self.limit {
            Limit::Units(total) => (total - self.issued).min(self.pipeline as u64) as usize,
            Limit::Duration(length) if now.duration_since(self.started_at) < length => self.pipeline,
            Limit::Duration(_) => 0,
        }
    }
}

/// Runs `config.limit` units of `generator`'s workload and reports throughput and latency.
pub fn run(config: &Config, generator: &mut Generator) -> Result<Report, RunError> {
    assert!((1..=CLIENTS_MAX).contains(&config.clients), "clients {} out of 1..={CLIENTS_MAX}", config.clients);
    assert!((1..=PIPELINE_MAX).contains(&config.pipeline), "pipeline {} out of 1..={PIPELINE_MAX}", config.pipeline);
    let mut poll = Poll::new()?;
    let mut connections = Vec::with_capacity(config.clients);
    for index in 0..config.clients {
        let mut stream = StdTcpStream::connect(config.addr)?;
        if let Some(redirect) = config.tracking_redirect {
            command_on(&mut stream, &[b"CLIENT", b"TRACKING", b"on", b"REDIRECT", redirect.to_string().as_bytes()])?;
        }
        stream.set_nodelay(true)?;
        stream.set_nonblocking(true)?;
        let mut stream = TcpStream::from_std(stream);
        poll.registry().register(&mut stream, Token(index), Interest::READABLE | Interest::WRITABLE)?;
        connections.push(Connection {
            stream,
            output: Vec::with_capacity(4096),
            output_written: 0,
            input: vec![0; READ_CHUNK_BYTES],
            input_start: 0,
            input_filled: 0,
            in_flight: VecDeque::with_capacity(config.pipeline),
            batch_written_at: Instant::now(),
        });
    }

    let latency_us = Histogram::new_with_bounds(1, LATENCY_MAX_US, 3).expect("valid histogram bounds");
    let mut progress =
        Progress { limit: config.limit, started_at: Instant::now(), issued: 0, completed: 0, tx_completed: 0, pipeline: config.pipeline, latency_us };
    for connection in &mut connections {
        start_batch(connection, generator, &mut progress, Instant::now())?;
    }
    let mut last_completed_at = progress.started_at;
    let mut events = Events::with_capacity(1024);
    while progress.completed < progress.issued {
        poll.poll(&mut events, Some(if config.busy_poll { Duration::ZERO } else { REPLY_TIMEOUT }))?;
        if events.is_empty() {
            if config.busy_poll && last_completed_at.elapsed() < REPLY_TIMEOUT {
                continue;
            }
            return Err(RunError::TimedOut);
        }
        for event in &events {
            let connection = &mut connections[event.token().0];
            if event.is_writable() {
                flush(connection)?;
            }
            if event.is_readable() || event.is_read_closed() {
                let read_at = read_available(connection)?;
                let completed_before = progress.completed;
                take_replies(connection, &mut progress, read_at)?;
                if progress.completed > completed_before {
                    last_completed_at = read_at;
                }
                if connection.in_flight.is_empty() {
                    start_batch(connection, generator, &mut progress, read_at)?;
                }
            }
        }
    }
    Ok(Report {
        units: progress.completed,
        tx_units: progress.tx_completed,
        elapsed: last_completed_at.duration_since(progress.started_at),
        latency_us: progress.latency_us,
    })
}

/// Writes the connection's next batch of units, if the limit allows one.
fn start_batch(connection: &mut Connection, generator: &mut Generator, progress: &mut Progress, now: Instant) -> Result<(), RunError> {
    let size = progress.batch_size(now);
    if size == 0 {
        return Ok(());
    }
    connection.output.clear();
    connection.output_written = 0;
    for _ in 0..size {
        let kind = generator.push_unit(&mut connection.output);
        connection.in_flight.push_back(InFlight { kind, replies_done: 0 });
    }
    progress.issued += size as u64;
    connection.batch_written_at = Instant::now();
    flush(connection)
}

/// Writes what the kernel takes of the pending output; the rest waits for a writable event.
fn flush(connection: &mut Connection) -> Result<(), RunError> {
    while connection.output_written < connection.output.len() {
        match connection.stream.write(&connection.output[connection.output_written..]) {
            Ok(0) => return Err(RunError::Closed),
            Ok(written) => connection.output_written += written,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}

/// Reads until the socket has nothing more (mio is edge-triggered); returns when it finished.
/// Linux only, as the whole benchmark (see the short read below).
fn read_available(connection: &mut Connection) -> Result<Instant, RunError> {
    loop {
        if connection.input_start == connection.input_filled {
            connection.input_start = 0;
            connection.input_filled = 0;
        } else if connection.input.len() - connection.input_filled < READ_CHUNK_BYTES / 4 {
            // Move the unparsed tail to the front, and grow only if it fills most of the buffer.
            connection.input.copy_within(connection.input_start..connection.input_filled, 0);
            connection.input_filled -= connection.input_start;
            connection.input_start = 0;
            if connection.input.len() - connection.input_filled < READ_CHUNK_BYTES / 4 {
                let grown = connection.input.len() * 2;
                connection.input.resize(grown, 0);
            }
        }
        let space = connection.input.len() - connection.input_filled;
        match connection.stream.read(&mut connection.input[connection.input_filled..]) {
            Ok(0) => return Err(RunError::Closed),
            // A short read emptied the socket. Bytes that arrive after it raise a new edge
            // on Linux's epoll, so the read that would only say WouldBlock is skipped: it
            // was half of this client's system calls at pipeline 1.
            Ok(read) if read < space => {
                connection.input_filled += read;
                return Ok(Instant::now());
            }
            Ok(read) => connection.input_filled += read,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(Instant::now()),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error.into()),
        }
    }
}

/// Checks every complete reply in the connection's input against its unit.
fn take_replies(connection: &mut Connection, progress: &mut Progress, read_at: Instant) -> Result<(), RunError> {
    loop {
        let parsed = parse(&connection.input[connection.input_start..connection.input_filled]).map_err(|error| RunError::Protocol(error.to_string()))?;
        let Some((reply, consumed)) = parsed else {
            return Ok(());
        };
        let Some(unit) = connection.in_flight.front_mut() else {
            return Err(RunError::Unexpected { command: "(nothing in flight)", detail: format!("a reply nobody asked for: {reply}") });
        };
        let expects = unit.kind.expects();
        check(expects[unit.replies_done], &reply).map_err(|mismatch| mismatch_error(unit.kind.command(unit.replies_done), mismatch))?;
        connection.input_start += consumed;
        unit.replies_done += 1;
        if unit.replies_done == expects.len() {
            if unit.kind == UnitKind::MultiIncr5 {
                progress.tx_completed += 1;
            }
            connection.in_flight.pop_front();
            progress.completed += 1;
            let latency_us = read_at.duration_since(connection.batch_written_at).as_micros() as u64;
            progress.latency_us.saturating_record(latency_us.max(1));
        }
    }
}

/// Runs one command on a fresh blocking connection and returns its reply, rendered as text
/// for errors and as the raw bytes of a bulk or simple string otherwise.
pub fn command_once(addr: SocketAddr, args: &[&[u8]]) -> Result<Vec<u8>, RunError> {
    command_on(&mut StdTcpStream::connect(addr)?, args)
}

/// For runs with client-side caching: a connection subscribed to `__redis__:invalidate`,
/// which a thread reads and discards for the rest of the process, so the load connections
/// can redirect their invalidations to it and stay RESP2. Returns its client id.
pub fn tracking_sink(addr: SocketAddr) -> Result<u64, RunError> {
    let mut stream = StdTcpStream::connect(addr)?;
    let id = command_on(&mut stream, &[b"CLIENT", b"ID"])?;
    let id = String::from_utf8_lossy(&id).parse().map_err(|_| RunError::Protocol("CLIENT ID is not a number".to_owned()))?;
    command_on(&mut stream, &[b"SUBSCRIBE", b"__redis__:invalidate"])?;
    stream.set_read_timeout(None)?;
    std::thread::spawn(move || {
        let mut chunk = vec![0u8; 64 * 1024];
        while matches!(stream.read(&mut chunk), Ok(n) if n > 0) {}
    });
    Ok(id)
}

/// Runs one command on a blocking connection and returns its reply as [`command_once`] does
/// (an integer as its digits, an array as nothing).
fn command_on(stream: &mut StdTcpStream, args: &[&[u8]]) -> Result<Vec<u8>, RunError> {
    stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
    let mut request = Vec::new();
    push_command(&mut request, args);
    stream.write_all(&request)?;
    let mut input = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some((reply, _)) = parse(&input).map_err(|error| RunError::Protocol(error.to_string()))? {
            let command = if args[0].eq_ignore_ascii_case(b"SCRIPT") { "SCRIPT LOAD" } else { "the setup command" };
            return match reply {
                Reply::Error(message) => Err(RunError::Server { command, message: String::from_utf8_lossy(message).into_owned() }),
                Reply::Bulk(Some(bytes)) | Reply::Simple(bytes) => Ok(bytes.to_vec()),
                Reply::Integer(value) => Ok(value.to_string().into_bytes()),
                Reply::Array(_) => Ok(Vec::new()),
                other => Err(RunError::Unexpected { command, detail: format!("expected a string, got {other}") }),
            };
        }
        let read = stream.read(&mut chunk)?;
        if read == 0 {
            return Err(RunError::Closed);
        }
        input.extend_from_slice(&chunk[..read]);
    }
}
