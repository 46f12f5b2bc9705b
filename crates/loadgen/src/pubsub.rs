//! Pub/Sub load: publishers send `PUBLISH` (pipelined) while subscribers read the messages,
//! all driven by one thread with mio, so the client can be pinned to one CPU.
//!
//! Subscriber `i` subscribes to channel `i % channels`, publisher `j` publishes to channel
//! `j % channels`. Each message's payload starts with the time it was written (nanoseconds
//! since the run began, 20 digits), so a subscriber measures the delivery latency of every
//! message it reads. Counts and latencies are taken in a window after a warm-up; every
//! PUBLISH reply must be an integer and every message must arrive on the channel subscribed.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::driver::RunError;
use crate::resp::{parse, Reply};
use crate::workload::push_command;

/// Bytes read per `read` call.
const READ_CHUNK_BYTES: usize = 256 * 1024;
/// Latencies are recorded in microseconds up to this bound (longer ones are clamped to it).
const LATENCY_MAX_US: u64 = 60_000_000;
/// Digits of the timestamp at the start of each payload.
const STAMP_DIGITS: usize = 20;
/// A run that delivers nothing for this long has hung.
const STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What one run does.
#[derive(Debug, Clone)]
pub struct PubsubConfig {
    pub addr: SocketAddr,
    pub publishers: usize,
    pub subscribers: usize,
    pub channels: usize,
    /// PUBLISH commands in flight per publisher.
    pub pipeline: usize,
    /// Payload bytes (at least the timestamp's digits).
    pub payload_size: usize,
    pub warmup: Duration,
    pub duration: Duration,
}

/// What a run measured, in its window.
#[derive(Debug)]
pub struct PubsubReport {
    pub published: u64,
    /// Receivers PUBLISH reported, summed (what the subscribers should have received).
    pub receivers: u64,
    pub delivered: u64,
    pub window: Duration,
    pub latency_us: Histogram<u64>,
}

impl PubsubReport {
    pub fn published_per_sec(&self) -> f64 {
        self.published as f64 / self.window.as_secs_f64()
    }

    pub fn delivered_per_sec(&self) -> f64 {
        self.delivered as f64 / self.window.as_secs_f64()
    }

    pub fn latency_ms_at(&self, quantile: f64) -> f64 {
        self.latency_us.value_at_quantile(quantile) as f64 / 1000.0
    }
}

struct Conn {
    stream: TcpStream,
    /// Bytes to write, and how many of them are written.
    output: Vec<u8>,
    written: usize,
    input: Vec<u8>,
    filled: usize,
    /// Publishers: PUBLISH replies owed.
    in_flight: usize,
    channel: Vec<u8>,
}

impl Conn {
    fn new(stream: StdTcpStream, channel: Vec<u8>) -> io::Result<Conn> {
        stream.set_nodelay(true)?;
        stream.set_nonblocking(true)?;
        Ok(Conn { stream: TcpStream::from_std(stream), output: Vec::new(), written: 0, input: vec![0; READ_CHUNK_BYTES], filled: 0, in_flight: 0, channel })
    }

    /// Writes what it can; true when everything is written.
    fn flush(&mut self) -> Result<bool, RunError> {
        while self.written < self.output.len() {
            match self.stream.write(&self.output[self.written..]) {
                Ok(0) => return Err(RunError::Closed),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.output.clear();
        self.written = 0;
        Ok(true)
    }

    /// Reads what is there; false once the socket has nothing more now.
    fn read_some(&mut self) -> Result<bool, RunError> {
        if self.filled == self.input.len() {
            self.input.resize(self.input.len() * 2, 0);
        }
        match self.stream.read(&mut self.input[self.filled..]) {
            Ok(0) => Err(RunError::Closed),
            Ok(n) => {
                self.filled += n;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(true),
            Err(e) => Err(e.into()),
        }
    }
}

fn channel_name(index: usize) -> Vec<u8> {
    format!("channel:{index}").into_bytes()
}

/// Subscribes over a blocking connection and waits for the confirmation.
fn subscribe(addr: SocketAddr, channel: &[u8]) -> Result<StdTcpStream, RunError> {
    let mut stream = StdTcpStream::connect(addr)?;
    stream.set_read_timeout(Some(STALL_TIMEOUT))?;
    let mut request = Vec::new();
    push_command(&mut request, &[b"SUBSCRIBE", channel]);
    stream.write_all(&request)?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(RunError::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
        match parse(&buf).map_err(|e| RunError::Protocol(e.0))? {
            None => continue,
            Some((Reply::Array(Some(items)), used)) if used == buf.len() && matches!(items.first(), Some(Reply::Bulk(Some(b"subscribe")))) => {
                return Ok(stream)
            }
            Some((other, _)) => return Err(RunError::Unexpected { command: "SUBSCRIBE", detail: other.to_string() }),
        }
    }
}

/// Runs the publishers and subscribers of `config` and reports what the window measured.
pub fn run(config: &PubsubConfig) -> Result<PubsubReport, RunError> {
    assert!(config.publishers >= 1 && config.subscribers >= 1 && config.channels >= 1 && config.pipeline >= 1);
    let mut poll = Poll::new()?;
    let mut conns = Vec::with_capacity(config.subscribers + config.publishers);
    for i in 0..config.subscribers {
        let channel = channel_name(i % config.channels);
        let stream = subscribe(config.addr, &channel)?;
        conns.push(Conn::new(stream, channel)?);
    }
    for j in 0..config.publishers {
        conns.push(Conn::new(StdTcpStream::connect(config.addr)?, channel_name(j % config.channels))?);
    }
    for (index, conn) in conns.iter_mut().enumerate() {
        let interest = if index < config.subscribers { Interest::READABLE } else { Interest::READABLE | Interest::WRITABLE };
        poll.registry().register(&mut conn.stream, Token(index), interest)?;
    }

    let base = Instant::now();
    let window_start = base + config.warmup;
    let window_end = window_start + config.duration;
    let mut report = PubsubReport {
        published: 0,
        receivers: 0,
        delivered: 0,
        window: config.duration,
        latency_us: Histogram::new_with_bounds(1, LATENCY_MAX_US, 3).expect("bounds"),
    };
    let padding = config.payload_size.saturating_sub(STAMP_DIGITS);
    let mut payload = Vec::with_capacity(STAMP_DIGITS + padding);

    // Each publisher starts with a full pipeline.
    for conn in conns.iter_mut().skip(config.subscribers) {
        fill_pipeline(conn, config.pipeline, base, padding, &mut payload);
        conn.flush()?;
    }
    let mut events = Events::with_capacity(1024);
    let mut last_progress = Instant::now();
    loop {
        let now = Instant::now();
        let publishing = now < window_end;
        let owed: usize = conns.iter().skip(config.subscribers).map(|c| c.in_flight).sum();
        if !publishing && owed == 0 {
            break;
        }
        if now.duration_since(last_progress) > STALL_TIMEOUT {
            return Err(RunError::TimedOut);
        }
        poll.poll(&mut events, Some(Duration::from_millis(100)))?;
        for event in events.iter() {
            let index = event.token().0;
            let conn = &mut conns[index];
            if event.is_writable() {
                conn.flush()?;
            }
            if !event.is_readable() {
                continue;
            }
            while conn.read_some()? {
                let now = Instant::now();
                let in_window = now >= window_start && now < window_end;
                let mut offset = 0;
                while let Some((reply, used)) = parse(&conn.input[offset..conn.filled]).map_err(|e| RunError::Protocol(e.0))? {
                    offset += used;
                    if index < config.subscribers {
                        let stamp = message_stamp(&reply, &conn.channel)?;
                        if in_window {
                            report.delivered += 1;
                            let sent = base + Duration::from_nanos(stamp);
                            report.latency_us.saturating_record(now.saturating_duration_since(sent).as_micros() as u64);
                        }
                    } else {
                        let Reply::Integer(receivers) = reply else {
                            return Err(RunError::Unexpected { command: "PUBLISH", detail: reply.to_string() });
                        };
                        conn.in_flight -= 1;
                        if in_window {
                            report.published += 1;
                            report.receivers += receivers as u64;
                        }
                    }
                    last_progress = now;
                }
                conn.input.copy_within(offset..conn.filled, 0);
                conn.filled -= offset;
            }
            if index >= config.subscribers && Instant::now() < window_end && conn.in_flight == 0 {
                fill_pipeline(conn, config.pipeline, base, padding, &mut payload);
                conn.flush()?;
            }
        }
    }
    Ok(report)
}

/// Queues `pipeline` PUBLISH commands stamped with the time now.
fn fill_pipeline(conn: &mut Conn, pipeline: usize, base: Instant, padding: usize, payload: &mut Vec<u8>) {
    for _ in 0..pipeline {
        payload.clear();
        let stamp = base.elapsed().as_nanos() as u64;
        payload.extend_from_slice(format!("{stamp:0width$}", width = STAMP_DIGITS).as_bytes());
        payload.resize(STAMP_DIGITS + padding, b'x');
        push_command(&mut conn.output, &[b"PUBLISH", &conn.channel, &payload[..]]);
        conn.in_flight += 1;
    }
}

/// The send time carried by a `message` push for `channel`.
fn message_stamp(reply: &Reply<'_>, channel: &[u8]) -> Result<u64, RunError> {
    let unexpected = || RunError::Unexpected { command: "SUBSCRIBE", detail: reply.to_string() };
    let Reply::Array(Some(items)) = reply else { return Err(unexpected()) };
    match items.as_slice() {
        [Reply::Bulk(Some(b"message")), Reply::Bulk(Some(on)), Reply::Bulk(Some(payload))] if *on == channel && payload.len() >= STAMP_DIGITS => {
            std::str::from_utf8(&payload[..STAMP_DIGITS]).ok().and_then(|s| s.parse().ok()).ok_or_else(unexpected)
        }
        _ => Err(unexpected()),
    }
}
