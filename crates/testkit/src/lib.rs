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
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port").local_addr().expect("local addr").port()
}

/// A running server process, killed on drop.
pub struct Server {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl Server {
    /// Starts shoal-server with `threads` threads and extra arguments.
    pub fn start(threads: usize, extra: &[&str]) -> Server {
        let port = free_port();
        let dir = scratch_dir("shoal");
        let mut args: Vec<String> = vec!["--port".into(), port.to_string(), "--threads".into(), threads.to_string(), "--bind".into(), "127.0.0.1".into()];
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = Command::new(server_binary()).args(&args).current_dir(&dir).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start shoal-server");
        let mut server = Server { child, port, dir };
        server.wait_ready();
        server
    }

    /// Starts Debian's redis-server as the oracle, or None when it is not installed (a panic
    /// under SHOAL_REQUIRE_ALL=1).
    pub fn start_redis() -> Option<Server> {
        if !need("redis-server") {
            return None;
        }
        let port = free_port();
        let dir = scratch_dir("redis");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let mut server = Server { child, port, dir };
        server.wait_ready();
        Some(server)
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("server exited during startup with {status}");
            }
            if let Ok(mut raw) = self.try_raw() {
                if raw.command(&["PING"]).is_ok_and(|r| r == "+PONG\r\n") {
                    return;
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
        let stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(Raw { reader: BufReader::new(stream.try_clone()?), stream })
    }

    /// A raw connection that speaks bytes.
    pub fn raw(&self) -> Raw {
        self.try_raw().expect("connect")
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
        let _ = std::fs::remove_dir_all(&self.dir);
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
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
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
        let mut out = Vec::new();
        self.read_frame(&mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
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
