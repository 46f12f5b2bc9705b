//! Test support, for dev-dependencies only: start the real `shoal-server` binary (or Debian's
//! `redis-server`, the oracle) on a free loopback port, wait until it answers, and talk to it
//! through the `redis` crate or raw bytes. Servers are killed when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether every optional tool must be present (CI sets SHOAL_REQUIRE_ALL=1): then a test
/// that would skip for a missing tool fails instead.
pub fn require_all() -> bool {
    std::env::var("SHOAL_REQUIRE_ALL").is_ok_and(|v| v == "1")
}

/// Whether `program` is on PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {program}")).stdout(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Returns false (skip) when `program` is missing, or panics when SHOAL_REQUIRE_ALL=1.
pub fn need(program: &str) -> bool {
    if have(program) {
        return true;
    }
    assert!(!require_all(), "{program} is required (SHOAL_REQUIRE_ALL=1) but not on PATH");
    eprintln!("skipping: {program} not on PATH");
    false
}

/// The shoal-server binary: $SHOAL_SERVER_BIN, or the workspace's target/{debug,release}.
pub fn server_binary() -> PathBuf {
    if let Ok(path) = std::env::var("SHOAL_SERVER_BIN") {
        return PathBuf::from(path);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root.join("target"));
    for profile in ["debug", "release"] {
        let path = target.join(profile).join("shoal-server");
        if path.exists() {
            return path;
        }
    }
    panic!("shoal-server is not built: run `cargo build -p shoal-server` first (or set SHOAL_SERVER_BIN)");
}

/// A free loopback port (bound and released; the race with other processes is accepted).
/// Never the same port twice in one process: tests running side by side in one binary would
/// otherwise both start a server on a port the kernel handed out twice, and the loser's PING
/// would be answered by the winner.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port").local_addr().expect("local addr").port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Whether a server on `port` answers PING with PONG now. Every failure (refused, reset, a
/// LOADING reply, a timeout) is a no: startup probes retry on it rather than panic.
pub fn answers_ping(port: u16) -> bool {
    let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    (&stream).write_all(b"*1\r\n$4\r\nPING\r\n").is_ok() && reader.read_line(&mut line).is_ok() && line == "+PONG\r\n"
}

/// The `process_id` INFO reports on `port`, or None when it does not answer it.
fn answering_pid(port: u16) -> Option<u32> {
    let mut raw = Raw::connect(port).ok()?;
    raw.set_read_timeout(Duration::from_secs(10));
    let info = raw.command(&["INFO", "server"]).ok()?;
    info.lines().find_map(|line| line.strip_prefix("process_id:")).and_then(|pid| pid.trim().parse().ok())
}

/// A running server process, killed on drop.
pub struct Server {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
    /// Whether the directory is this server's own scratch directory, removed on drop.
    owns_dir: bool,
}

impl Server {
    /// Starts shoal-server with `threads` threads and extra arguments.
    pub fn start(threads: usize, extra: &[&str]) -> Server {
        let dir = scratch_dir("shoal");
        let mut server = Server::spawn_on_a_free_port(dir, threads, extra, &[]);
        server.owns_dir = true;
        server
    }

    /// Spawns shoal-server on a port from [`free_port`] and waits until it answers. Another
    /// process may take that port between our check and the server's bind (the server then
    /// exits at once): it is tried again on another port, up to three times.
    fn spawn_on_a_free_port(dir: PathBuf, threads: usize, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut attempts = 3;
        loop {
            let mut server = Server::spawn_unready_env(dir.clone(), free_port(), threads, extra, env);
            match server.try_ready() {
                Ok(()) => return server,
                Err(status) if attempts > 1 => {
                    attempts -= 1;
                    eprintln!("server on port {} exited during startup with {status}; trying another port", server.port);
                }
                Err(status) => panic!("server exited during startup with {status}"),
            }
        }
    }

    /// Starts shoal-server with extra environment variables (the socket path's switches:
    /// `SHOAL_SOCKET_RING`, `SHOAL_SOCKET_RING_BUFFERS`).
    pub fn start_with_env(threads: usize, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let dir = scratch_dir("shoal");
        let mut server = Server::spawn_on_a_free_port(dir, threads, extra, env);
        server.owns_dir = true;
        server
    }

    /// Starts shoal-server on `port` (to restart on the port of one that exited).
    pub fn start_on(port: u16, threads: usize, extra: &[&str]) -> Server {
        let mut server = Server::spawn_in(scratch_dir("shoal"), port, threads, extra);
        server.owns_dir = true;
        server
    }

    /// Starts shoal-server in `dir` (its working directory, where it reads and writes
    /// dump.rdb), which outlives the server: a later server can start on the same files.
    pub fn start_in(dir: &std::path::Path, threads: usize, extra: &[&str]) -> Server {
        Server::spawn_on_a_free_port(dir.to_path_buf(), threads, extra, &[])
    }

    /// [`Server::start_in`] with extra environment variables.
    pub fn start_in_with_env(dir: &std::path::Path, threads: usize, extra: &[&str], env: &[(&str, &str)]) -> Server {
        Server::spawn_on_a_free_port(dir.to_path_buf(), threads, extra, env)
    }

    /// [`Server::start_in`] on a given port (a server restarted where its replicas look).
    pub fn start_in_on(dir: &std::path::Path, port: u16, threads: usize, extra: &[&str]) -> Server {
        Server::spawn_in(dir.to_path_buf(), port, threads, extra)
    }

    /// A scratch directory for [`Server::start_in`] and [`Server::start_redis_in`]; the
    /// caller removes it.
    pub fn scratch(tag: &str) -> PathBuf {
        scratch_dir(tag)
    }

    /// [`Server::start_in`] that returns as soon as the server accepts connections, before
    /// it answers PING (while it loads its dataset, it answers LOADING).
    pub fn start_in_accepting(dir: &std::path::Path, threads: usize, extra: &[&str]) -> Server {
        let mut server = Server::spawn_unready(dir.to_path_buf(), free_port(), threads, extra);
        let deadline = Instant::now() + Duration::from_secs(60);
        while server.try_raw().is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("server exited during startup with {status}");
            }
            assert!(Instant::now() < deadline, "server on port {} did not accept in time", server.port);
            std::thread::sleep(Duration::from_millis(5));
        }
        server
    }

    /// Starts shoal-server on a given port (a restart where clients or replicas look for it).
    /// While it was down, another process's outgoing connection may have been given that
    /// port as its own (the kernel hands out free ports so); the server then exits at once,
    /// and it is tried again a few times, as such a connection soon ends.
    fn spawn_in(dir: PathBuf, port: u16, threads: usize, extra: &[&str]) -> Server {
        let mut attempts = 5;
        loop {
            let mut server = Server::spawn_unready(dir.clone(), port, threads, extra);
            match server.try_ready() {
                Ok(()) => return server,
                Err(status) if attempts > 1 => {
                    attempts -= 1;
                    eprintln!("server on port {port} exited during startup with {status}; trying the same port again");
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(status) => panic!("server exited during startup with {status}"),
            }
        }
    }

    fn spawn_unready(dir: PathBuf, port: u16, threads: usize, extra: &[&str]) -> Server {
        Server::spawn_unready_env(dir, port, threads, extra, &[])
    }

    fn spawn_unready_env(dir: PathBuf, port: u16, threads: usize, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut args: Vec<String> = vec!["--port".into(), port.to_string(), "--threads".into(), threads.to_string(), "--bind".into(), "127.0.0.1".into()];
        args.extend(extra.iter().map(|s| s.to_string()));
        // SHOAL_TEST_SERVER_OUTPUT=1 shows the server's own output (its logs, a panic's message).
        let output = || {
            if std::env::var("SHOAL_TEST_SERVER_OUTPUT").is_ok_and(|v| v == "1") {
                Stdio::inherit()
            } else {
                Stdio::null()
            }
        };
        let child = Command::new(server_binary())
            .args(&args)
            .envs(env.iter().copied())
            .current_dir(&dir)
            .stdout(output())
            .stderr(output())
            .spawn()
            .expect("start shoal-server");
        Server { child, port, dir, owns_dir: false }
    }

    /// Starts Debian's redis-server in `dir` (which outlives it) with extra directives, or None
    /// when it is not installed (a panic under SHOAL_REQUIRE_ALL=1).
    pub fn start_redis_in(dir: &std::path::Path, extra: &[&str]) -> Option<Server> {
        if !need("redis-server") {
            return None;
        }
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir"])
            .arg(dir)
            .args(extra)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let mut server = Server { child, port, dir: dir.to_path_buf(), owns_dir: false };
        server.wait_ready();
        Some(server)
    }

    /// Starts Debian's redis-server as the oracle, or None when it is not installed (a panic
    /// under SHOAL_REQUIRE_ALL=1).
    pub fn start_redis() -> Option<Server> {
        Server::start_redis_with(&[])
    }

    /// Starts Debian's redis-server with extra directives (`--maxclients 2`), or None when it is
    /// not installed (a panic under SHOAL_REQUIRE_ALL=1).
    pub fn start_redis_with(extra: &[&str]) -> Option<Server> {
        if !need("redis-server") {
            return None;
        }
        let port = free_port();
        let dir = scratch_dir("redis");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(extra)
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let mut server = Server { child, port, dir, owns_dir: true };
        server.wait_ready();
        Some(server)
    }

    fn wait_ready(&mut self) {
        if let Err(status) = self.try_ready() {
            panic!("server exited during startup with {status}");
        }
    }

    /// Waits until the server answers PING; Err when it exited first.
    fn try_ready(&mut self) -> Result<(), std::process::ExitStatus> {
        // Generous: on a 2-core machine running many test binaries at once, a debug server
        // can take seconds to get its turn.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(status);
            }
            if answers_ping(self.port) {
                // Another test process's server may hold the same port (ports here are bound
                // and released, then taken by whoever starts first); Shoal refuses to share
                // it and exits, but until then the other one answers. Only ours will do.
                match answering_pid(self.port) {
                    Some(pid) if pid == self.child.id() => return Ok(()),
                    Some(_) => {
                        let _ = self.child.kill();
                        return Err(self.child.wait().expect("wait for the server"));
                    }
                    None => {}
                }
            }
            assert!(Instant::now() < deadline, "server on port {} did not answer PING in time", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A `redis` crate connection.
    pub fn client(&self) -> redis::Connection {
        redis::Client::open(self.url()).expect("client").get_connection().expect("connect")
    }

    fn try_raw(&self) -> std::io::Result<Raw> {
        Raw::connect(self.port)
    }

    /// A raw connection that speaks bytes.
    pub fn raw(&self) -> Raw {
        self.try_raw().expect("connect")
    }

    /// A raw connection, or the error when the server is not accepting (or gone).
    pub fn raw_result(&self) -> std::io::Result<Raw> {
        self.try_raw()
    }

    /// Waits for the process to exit by itself, up to `timeout`; returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends a signal to the server process.
    pub fn signal(&self, signal: &str) {
        Command::new("kill").args([&format!("-{signal}"), &self.child.id().to_string()]).status().expect("kill");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.owns_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn scratch_dir(tag: &str) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("{tag}-test-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A raw RESP connection: write bytes, read whole replies back as their exact bytes.
pub struct Raw {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Raw {
    /// A raw connection to a server on this machine's `port`.
    pub fn connect(port: u16) -> std::io::Result<Raw> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        // Small writes leave at once, so a request split across writes reaches the server split.
        stream.set_nodelay(true)?;
        Ok(Raw { reader: BufReader::new(stream.try_clone()?), stream })
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Sends bytes, returning the error (the server may have closed the connection already).
    pub fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// A second handle on the socket for writing, so one thread can write a long pipeline
    /// while another reads its replies (a single thread could block both ways).
    pub fn writer(&self) -> TcpStream {
        self.stream.try_clone().expect("clone the socket")
    }

    /// Changes how long a write may block before it fails.
    pub fn set_write_timeout(&mut self, timeout: Duration) {
        self.stream.set_write_timeout(Some(timeout)).expect("set the write timeout");
    }

    /// Reads until the server closes the connection (an orderly close or a reset) and returns
    /// what arrived; a read timeout is an error, so a connection left open fails the test.
    pub fn read_until_closed(&mut self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        match self.reader.read_to_end(&mut out) {
            Ok(_) => Ok(out),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted) => Ok(out),
            Err(e) => Err(std::io::Error::new(
                e.kind(),
                format!("{e} (the connection is still open; {} bytes arrived: {:?})", out.len(), String::from_utf8_lossy(&out)),
            )),
        }
    }

    /// Changes how long a read waits before it fails.
    pub fn set_read_timeout(&mut self, timeout: Duration) {
        self.stream.set_read_timeout(Some(timeout)).expect("set the read timeout");
    }

    /// Encodes `args` as a multibulk request.
    pub fn encode(args: &[&str]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    /// Sends one command and returns its reply's exact bytes.
    pub fn command(&mut self, args: &[&str]) -> std::io::Result<String> {
        self.stream.write_all(&Self::encode(args))?;
        self.read_reply()
    }

    /// Reads one complete reply (of any RESP2/RESP3 type) and returns its bytes.
    pub fn read_reply(&mut self) -> std::io::Result<String> {
        Ok(String::from_utf8_lossy(&self.read_reply_bytes()?).into_owned())
    }

    /// Reads one complete reply and returns its exact bytes, binary-safe.
    pub fn read_reply_bytes(&mut self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.read_frame(&mut out)?;
        Ok(out)
    }

    /// Sends one command given as binary-safe arguments and returns its reply's exact bytes.
    pub fn command_bytes(&mut self, args: &[&[u8]]) -> std::io::Result<Vec<u8>> {
        self.stream.write_all(&Self::encode_bytes(args))?;
        self.read_reply_bytes()
    }

    /// Encodes binary-safe `args` as a multibulk request.
    pub fn encode_bytes(args: &[&[u8]]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg);
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    fn read_frame(&mut self, out: &mut Vec<u8>) -> std::io::Result<()> {
        let mut kind = [0u8; 1];
        self.reader.read_exact(&mut kind)?;

        out.push(kind[0]);
        let mut rest = Vec::new();
        self.reader.read_until(b'\n', &mut rest)?;
        out.extend_from_slice(&rest);
        let header = String::from_utf8_lossy(&rest).trim_end().to_string();
        let count = |h: &str| h.parse::<i64>().unwrap_or(-1);
        match kind[0] {
            b'$' | b'=' | b'!' => {
                let n = count(&header);
                if n >= 0 {
                    let mut body = vec![0u8; n as usize + 2];
                    self.reader.read_exact(&mut body)?;
                    out.extend_from_slice(&body);
                }
            }
            b'*' | b'~' | b'>' => {
                for _ in 0..count(&header).max(0) {
                    self.read_frame(out)?;
                }
            }
            b'%' | b'|' => {
                for _ in 0..count(&header).max(0) * 2 {
                    self.read_frame(out)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Reads until the server closes the connection; returns what arrived.
    pub fn read_to_close(&mut self) -> String {
        let mut out = Vec::new();
        let _ = self.reader.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// How a process that was run to completion ended.
#[derive(Debug)]
pub struct Exit {
    /// The exit code; None when it was killed by a signal or ran past the timeout.
    pub code: Option<i32>,
    /// Whether it was still running at the timeout (and was killed).
    pub timed_out: bool,
    pub elapsed: Duration,
    pub stdout: String,
    pub stderr: String,
}

/// A `Command` for the shoal-server binary with `args`, for tests that run it to completion
/// (startup failures); wrap it yourself for tools like `prlimit`.
pub fn server_command(args: &[&str]) -> Command {
    let mut command = Command::new(server_binary());
    command.args(args);
    command
}

/// Runs `command` with stdin closed, captures stdout and stderr, and waits for it to exit, up
/// to `timeout` (then kills it and reports `timed_out`).
pub fn run_to_exit(command: Command, timeout: Duration) -> Exit {
    run(command, None, timeout)
}

/// Runs `command` as `run_to_exit` does, with `input` on its stdin (a script for redis-cli).
pub fn run_with_input(command: Command, input: &[u8], timeout: Duration) -> Exit {
    run(command, Some(input.to_vec()), timeout)
}

fn run(mut command: Command, input: Option<Vec<u8>>, timeout: Duration) -> Exit {
    let started = Instant::now();
    let stdin = if input.is_some() { Stdio::piped() } else { Stdio::null() };
    let mut child = command.stdin(stdin).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn the command");
    if let (Some(input), Some(mut pipe)) = (input, child.stdin.take()) {
        // Written by a thread and closed after, so a child that reads slowly cannot block us.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    // Pipes are drained by threads, so a chatty child cannot block on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut text);
            }
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let deadline = started + timeout;
    let (code, timed_out) = loop {
        if let Some(status) = child.try_wait().expect("wait for the command") {
            break (status.code(), false);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break (None, true);
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = started.elapsed();
    Exit { code, timed_out, elapsed, stdout: stdout.join().expect("stdout reader"), stderr: stderr.join().expect("stderr reader") }
}

/// Number of hash slots, as in Redis Cluster.
pub const SLOT_COUNT: u16 = 16384;

/// CRC16-XMODEM (polynomial 0x1021, initial value 0), as Redis Cluster's `crc16`. Written out
/// here rather than borrowed from the server, so the tests check the server's routing instead
/// of sharing its bugs.
pub fn crc16_xmodem(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= (byte as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

/// The hash slot of `key`: CRC16 of the key, or of its hash tag (the bytes between the first
/// `{` and the first `}` after it, when not empty).
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = match key.iter().position(|&b| b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crc16_xmodem(hashed) % SLOT_COUNT
}

/// The core that owns `key` in a server with `threads` threads: slot modulo threads.
pub fn key_core(key: &[u8], threads: usize) -> usize {
    key_slot(key) as usize % threads
}

/// `count` key names made from `prefix` (`prefix:0`, `prefix:1`, ...) that live on pairwise
/// different cores of a server with `threads` threads; `count` must not exceed `threads`.
pub fn keys_on_distinct_cores(prefix: &str, count: usize, threads: usize) -> Vec<String> {
    assert!(count <= threads, "{count} keys cannot live on distinct cores of {threads} threads");
    let mut keys: Vec<String> = Vec::new();
    let mut used = vec![false; threads];
    for n in 0.. {
        let key = format!("{prefix}:{n}");
        let core = key_core(key.as_bytes(), threads);
        if !used[core] {
            used[core] = true;
            keys.push(key);
            if keys.len() == count {
                break;
            }
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_slots_match_redis_cluster_keyslot() {
        // The values CLUSTER KEYSLOT gives (and the Redis Cluster specification's test vector).
        assert_eq!(crc16_xmodem(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b""), 0);
    }

    #[test]
    fn hash_tags_hash_only_the_tag() {
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
        assert_eq!(key_slot(b"foo{}{bar}"), crc16_xmodem(b"foo{}{bar}") % SLOT_COUNT);
        assert_eq!(key_slot(b"foo{bar"), crc16_xmodem(b"foo{bar") % SLOT_COUNT);
    }

    #[test]
    fn keys_on_distinct_cores_are_on_distinct_cores() {
        let keys = keys_on_distinct_cores("group", 4, 4);
        let mut cores: Vec<usize> = keys.iter().map(|k| key_core(k.as_bytes(), 4)).collect();
        cores.sort_unstable();
        assert_eq!(cores, vec![0, 1, 2, 3]);
    }
}
