//! SLOWLOG: the commands that ran for at least `slowlog-log-slower-than` microseconds.
//!
//! Each core logs the commands it ran itself, where their arguments are, so nothing crosses
//! cores on the data path: the check is one comparison of the run time per command. An
//! entry names its client by id; SLOWLOG GET (in the server crate) gathers every core's
//! entries, newest first by their ids (drawn from one counter, so they order the entries of
//! all cores), and looks the clients' addresses and names up on their cores.
//!
//! As in Redis: EXEC is not logged but its commands are; a script's `redis.call` commands
//! are logged with no client (Redis's Lua client, `?:0`), and so is the script; commands
//! replayed from the append-only file are not logged.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use shoal_commands::table::flags;
use shoal_commands::CommandSpec;

/// The client of commands that no client sent: a script's calls (Redis shows `?:0`).
pub const NO_CLIENT: u64 = 0;
/// Commands that are never logged (replayed from the append-only file).
pub const NOT_LOGGED: u64 = u64::MAX;

/// Redis's limits on what an entry keeps: at most 32 arguments, the last saying how many
/// more there were, and 128 bytes of each, with a note of how many more.
const MAX_ARGC: usize = 32;
const MAX_STRING: usize = 128;

/// Threshold value that turns the log off (a negative `slowlog-log-slower-than`).
const OFF: u64 = u64::MAX;

/// One logged command.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Unique and increasing across cores.
    pub id: u64,
    /// When it ran, in Unix seconds.
    pub time: u64,
    pub micros: u64,
    /// The arguments, trimmed and redacted as Redis keeps them.
    pub args: Vec<Bytes>,
    /// The client's id, or [`NO_CLIENT`].
    pub client: u64,
}

/// A core's slow log.
pub struct SlowLog {
    threshold_us: Cell<u64>,
    max_len: Cell<usize>,
    entries: RefCell<VecDeque<Entry>>,
}

impl Default for SlowLog {
    fn default() -> Self {
        SlowLog { threshold_us: Cell::new(10_000), max_len: Cell::new(128), entries: RefCell::new(VecDeque::new()) }
    }
}

impl SlowLog {
    /// `slowlog-log-slower-than` (negative: off) and `slowlog-max-len`.
    pub fn configure(&self, slower_than: i64, max_len: u64) {
        self.threshold_us.set(u64::try_from(slower_than).unwrap_or(OFF));
        self.max_len.set(usize::try_from(max_len).unwrap_or(usize::MAX));
    }

    /// Whether the log is on: then callers keep what an entry needs.
    pub fn on(&self) -> bool {
        self.threshold_us.get() != OFF
    }

    /// Logs the command if it ran long enough. `next_id` is the counter shared by the cores.
    pub fn note(&self, spec: &CommandSpec, args: &[Bytes], elapsed: Duration, client: u64, next_id: &AtomicU64) {
        let micros = elapsed.as_micros() as u64;
        if micros < self.threshold_us.get() || client == NOT_LOGGED || spec.has(flags::SKIP_SLOWLOG) || args.is_empty() {
            return;
        }
        let time = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let entry = Entry { id: next_id.fetch_add(1, Ordering::Relaxed), time, micros, args: logged_args(spec, args), client };
        let mut entries = self.entries.borrow_mut();
        entries.push_front(entry);
        entries.truncate(self.max_len.get());
    }

    /// The newest `count` entries, newest first.
    pub fn newest(&self, count: usize) -> Vec<Entry> {
        self.entries.borrow().iter().take(count).cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.entries.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.borrow().is_empty()
    }

    pub fn reset(&self) {
        self.entries.borrow_mut().clear();
    }
}

/// The arguments as an entry keeps them: trimmed (see [`MAX_ARGC`]), and with secrets
/// replaced by `(redacted)` as Redis does (AUTH's, HELLO's after AUTH, CONFIG SET's
/// passwords).
pub fn logged_args(spec: &CommandSpec, args: &[Bytes]) -> Vec<Bytes> {
    let kept = args.len().min(MAX_ARGC);
    (0..kept)
        .map(|index| {
            if kept != args.len() && index == kept - 1 {
                return Bytes::from(format!("... ({} more arguments)", args.len() - kept + 1));
            }
            if is_redacted(spec, args, index) {
                return Bytes::from_static(b"(redacted)");
            }
            let arg = &args[index];
            if arg.len() <= MAX_STRING {
                return arg.clone();
            }
            let mut trimmed = arg[..MAX_STRING].to_vec();
            trimmed.extend_from_slice(format!("... ({} more bytes)", arg.len() - MAX_STRING).as_bytes());
            Bytes::from(trimmed)
        })
        .collect()
}

/// Whether argument `index` of a request is a secret that the slow log and MONITOR show as
/// `(redacted)`, as Redis does: AUTH's, HELLO's after AUTH, CONFIG SET's passwords.
pub fn is_redacted(spec: &CommandSpec, args: &[Bytes], index: usize) -> bool {
    match spec.name {
        "auth" => index >= 1,
        "hello" => args.iter().position(|a| a.eq_ignore_ascii_case(b"auth")).is_some_and(|at| index == at + 1 || index == at + 2),
        "config|set" => index >= 3 && index % 2 == 1 && is_secret(&args[index - 1]),
        _ => false,
    }
}

/// Directives whose values Redis never shows in the slow log.
fn is_secret(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"requirepass") || name.eq_ignore_ascii_case(b"masterauth")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str) -> &'static CommandSpec {
        let (command, sub) = name.split_once('|').map_or((name, None), |(c, s)| (c, Some(s)));
        let spec = shoal_commands::table::lookup(command.as_bytes()).expect("a command");
        sub.map_or(spec, |sub| shoal_commands::table::lookup_subcommand(spec, sub.as_bytes()).expect("a subcommand"))
    }

    fn args(parts: &[&str]) -> Vec<Bytes> {
        parts.iter().map(|p| Bytes::copy_from_slice(p.as_bytes())).collect()
    }

    #[test]
    fn long_requests_are_trimmed_as_redis_trims_them() {
        let many: Vec<String> = (0..40).map(|i| i.to_string()).collect();
        let mut request = vec!["rpush".to_string()];
        request.extend(many);
        let request: Vec<Bytes> = request.iter().map(|s| Bytes::copy_from_slice(s.as_bytes())).collect();
        let logged = logged_args(spec("rpush"), &request);
        assert_eq!(logged.len(), 32);
        assert_eq!(logged[30], "29");
        assert_eq!(logged[31], "... (10 more arguments)");
        let long = "x".repeat(200);
        let logged = logged_args(spec("set"), &args(&["set", "k", &long]));
        assert_eq!(logged[2], format!("{}... (72 more bytes)", "x".repeat(128)));
        assert_eq!(logged_args(spec("set"), &args(&["set", "k", &"y".repeat(128)]))[2].len(), 128);
    }

    #[test]
    fn secrets_are_redacted() {
        assert_eq!(logged_args(spec("auth"), &args(&["auth", "u", "p"])), args(&["auth", "(redacted)", "(redacted)"]));
        assert_eq!(
            logged_args(spec("hello"), &args(&["hello", "3", "AUTH", "u", "p", "SETNAME", "n"])),
            args(&["hello", "3", "AUTH", "(redacted)", "(redacted)", "SETNAME", "n"])
        );
        assert_eq!(
            logged_args(spec("config|set"), &args(&["config", "set", "maxmemory", "1", "requirepass", "p"])),
            args(&["config", "set", "maxmemory", "1", "requirepass", "(redacted)"])
        );
    }

    #[test]
    fn only_slow_enough_commands_are_kept_newest_first_and_bounded() {
        let log = SlowLog::default();
        let ids = AtomicU64::new(1);
        log.configure(100, 2);
        log.note(spec("get"), &args(&["get", "a"]), Duration::from_micros(99), 7, &ids);
        assert!(log.is_empty());
        for key in ["a", "b", "c"] {
            log.note(spec("get"), &args(&["get", key]), Duration::from_micros(100), 7, &ids);
        }
        let newest = log.newest(10);
        assert_eq!(newest.iter().map(|e| (e.id, e.args[1].clone())).collect::<Vec<_>>(), vec![(3, Bytes::from("c")), (2, Bytes::from("b"))]);
        assert_eq!(newest[0].micros, 100);
        assert_eq!(newest[0].client, 7);
        // EXEC, replays, and an off log keep nothing.
        log.reset();
        log.note(spec("exec"), &args(&["exec"]), Duration::from_secs(1), 7, &ids);
        log.note(spec("get"), &args(&["get", "a"]), Duration::from_secs(1), NOT_LOGGED, &ids);
        log.configure(-1, 2);
        assert!(!log.on());
        log.note(spec("get"), &args(&["get", "a"]), Duration::from_secs(1), 7, &ids);
        assert_eq!(log.len(), 0);
        log.configure(0, 2);
        log.note(spec("get"), &args(&["get", "a"]), Duration::ZERO, 7, &ids);
        assert_eq!(log.len(), 1);
    }
}
