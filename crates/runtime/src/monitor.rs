//! MONITOR: every command the server runs, as a line to each monitoring client.
//!
//! A monitor is a [`Subscriber`] with no subscription: its buffer, its wake-up and its
//! output limit (`client-output-buffer-limit pubsub`, so a monitor that does not read is
//! cut off instead of growing without bound) are Pub/Sub's. Each core lists its own
//! monitors; the count of all of them is shared, so feeding costs one atomic load per
//! command while nobody monitors. A line is formatted once, on the core that ran the
//! command (or whose client sent it), and sent to every other core as one message; lines of
//! one core arrive everywhere in the order it fed them.
//!
//! The lines are Redis's: `+<seconds>.<micros> [<db> <client address>] "arg" ...`, with the
//! arguments quoted as Redis quotes them and secrets redacted, `lua` as the client of a
//! script's calls.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use shoal_commands::CommandSpec;

use crate::core::{Core, Msg};
use crate::pubsub::Subscriber;

/// A core's monitors.
#[derive(Default)]
pub struct Monitors {
    sinks: RefCell<Vec<Rc<Subscriber>>>,
}

impl Core {
    /// Whether any client of any core monitors (one atomic load).
    pub fn monitored(&self) -> bool {
        self.shared.monitors.load(Ordering::Relaxed) != 0
    }

    /// Makes `sink` a monitor of this core.
    pub fn monitor_add(&self, sink: Rc<Subscriber>) {
        self.monitors.sinks.borrow_mut().push(sink);
        self.shared.monitors.fetch_add(1, Ordering::Relaxed);
    }

    /// Stops feeding `sink` (its connection closes).
    pub fn monitor_remove(&self, sink: &Rc<Subscriber>) {
        let mut sinks = self.monitors.sinks.borrow_mut();
        if let Some(at) = sinks.iter().position(|s| Rc::ptr_eq(s, sink)) {
            sinks.swap_remove(at);
            self.shared.monitors.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Feeds the monitors a command that ran in database `db` for the client at `client`
    /// (its address, or `lua`), unless nobody monitors or the command is one Redis does not
    /// show (administrative ones, and those that feed themselves, as EVAL does before it runs).
    pub fn feed_monitors(self: &Rc<Self>, db: usize, client: &str, spec: &CommandSpec, args: &[Bytes]) {
        use shoal_commands::table::flags::{ADMIN, SKIP_MONITOR};
        if !self.monitored() || spec.has(ADMIN | SKIP_MONITOR) {
            return;
        }
        self.feed_monitors_always(db, client, spec, args);
    }

    /// As [`Core::feed_monitors`], whatever the command's flags (EVAL feeds itself with this
    /// before its script runs).
    pub fn feed_monitors_always(self: &Rc<Self>, db: usize, client: &str, spec: &CommandSpec, args: &[Bytes]) {
        if !self.monitored() {
            return;
        }
        let args = shoal_commands::hashes::himport::as_sent(spec, args);
        // A line longer than the output limit would cut every monitor off: do that without
        // building it (a request's arguments may take hundreds of megabytes, quoted up to
        // four times that).
        let hard = self.pubsub.borrow().limit.hard_bytes;
        if hard > 0 && args.iter().map(|a| a.len() as u64).sum::<u64>() > hard {
            self.overflow_monitors();
            for core in (0..self.shard_count).filter(|&core| core != self.id) {
                self.send(core, Msg::MonitorOverflow);
            }
            return;
        }
        let line = monitor_line(db, client, spec, args);
        self.deliver_monitor_line(&line);
        for core in (0..self.shard_count).filter(|&core| core != self.id) {
            self.send(core, Msg::MonitorLine(line.clone()));
        }
    }

    /// Cuts this core's monitors off, as a line past the output limit does.
    pub(crate) fn overflow_monitors(&self) {
        for sink in self.monitors.sinks.borrow().iter() {
            sink.overflow_now();
        }
    }

    /// Hands a line to this core's monitors.
    pub(crate) fn deliver_monitor_line(&self, line: &[u8]) {
        let limit = self.pubsub.borrow().limit;
        for sink in self.monitors.sinks.borrow().iter() {
            sink.push(line, limit);
        }
    }
}

/// The line a monitor gets for a command, as a RESP simple string.
pub fn monitor_line(db: usize, client: &str, spec: &CommandSpec, args: &[Bytes]) -> Bytes {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let mut line = BytesMut::with_capacity(64 + args.iter().map(|a| a.len() + 3).sum::<usize>());
    line.extend_from_slice(format!("+{}.{:06} [{db} {client}]", now.as_secs(), now.subsec_micros()).as_bytes());
    for (index, arg) in args.iter().enumerate() {
        line.extend_from_slice(b" ");
        if crate::slowlog::is_redacted(spec, args, index) {
            line.extend_from_slice(b"\"(redacted)\"");
        } else {
            quote(arg, &mut line);
        }
    }
    line.extend_from_slice(b"\r\n");
    line.freeze()
}

/// Redis's `sdscatrepr`: the bytes in double quotes, with `\\`, `\"`, `\n`, `\r`, `\t`,
/// `\a`, `\b` escaped and other unprintable bytes as `\xHH`.
fn quote(bytes: &[u8], out: &mut BytesMut) {
    out.extend_from_slice(b"\"");
    for &b in bytes {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x07 => out.extend_from_slice(b"\\a"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x20..=0x7e => out.extend_from_slice(&[b]),
            _ => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
        }
    }
    out.extend_from_slice(b"\"");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_quoted_as_redis_quotes_them() {
        let mut out = BytesMut::new();
        quote(b"a b\"c\\d\n\r\t\x07\x08\x00\xff~", &mut out);
        assert_eq!(&out[..], br#""a b\"c\\d\n\r\t\a\b\x00\xff~""#);
    }

    #[test]
    fn a_line_names_the_database_and_the_client_and_redacts_secrets() {
        let auth = shoal_commands::table::lookup(b"auth").unwrap();
        let args: Vec<Bytes> = ["AUTH", "user", "secret"].iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect();
        let line = monitor_line(3, "127.0.0.1:5000", auth, &args);
        let text = std::str::from_utf8(&line).unwrap();
        let (time, rest) = text[1..].split_once(' ').unwrap();
        assert!(time.split_once('.').is_some_and(|(secs, micros)| secs.len() >= 10 && micros.len() == 6), "{text}");
        assert_eq!(rest, "[3 127.0.0.1:5000] \"AUTH\" \"(redacted)\" \"(redacted)\"\r\n");
    }
}
