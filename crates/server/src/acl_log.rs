//! ACL LOG: the failed authentications (AUTH and HELLO ... AUTH with a wrong password or an
//! unknown user), as Redis 7.2 logs them. With one user holding every permission nothing
//! else is ever denied, so `auth` is the only reason logged.
//!
//! The log is server-wide and lives on core 0: a failure elsewhere is sent there (rare, off
//! the data path). As in Redis, a failure like one logged in the last 60 seconds (same
//! reason, context, object and user) counts on that entry, which moves to the front;
//! `acllog-max-len` bounds the entries.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use bytes::Bytes;
use shoal_commands::{args, errors};
use shoal_resp::Frame;

use crate::node::{self, Node};
use crate::server_commands::bulk;

/// Failures this close together (milliseconds) count on one entry.
const GROUPING_MS: u64 = 60_000;

/// One entry of the log.
#[derive(Clone, Debug)]
struct Entry {
    count: u64,
    /// The command that failed (AUTH or HELLO), as the client spelled it.
    object: String,
    username: String,
    client_info: String,
    id: u64,
    created_ms: u64,
    updated_ms: u64,
}

/// Core 0's log.
#[derive(Default)]
pub struct AclLog {
    entries: RefCell<VecDeque<Entry>>,
    next_id: std::cell::Cell<u64>,
}

fn now_ms() -> u64 {
    shoal_runtime::now_ms()
}

impl AclLog {
    fn add(&self, object: String, username: String, client_info: String, max_len: usize, now: u64) {
        let mut entries = self.entries.borrow_mut();
        let similar = entries.iter().position(|e| e.object == object && e.username == username && now.saturating_sub(e.updated_ms) < GROUPING_MS);
        let entry = match similar.and_then(|at| entries.remove(at)) {
            Some(mut entry) => {
                entry.count += 1;
                entry.client_info = client_info;
                entry.updated_ms = now;
                entry
            }
            None => {
                let id = self.next_id.get();
                self.next_id.set(id + 1);
                Entry { count: 1, object, username, client_info, id, created_ms: now, updated_ms: now }
            }
        };
        entries.push_front(entry);
        entries.truncate(max_len);
    }
}

/// Logs a failed authentication of `username` by `command` (AUTH or HELLO, as the client
/// spelled it) from the client described by `client_info` (its CLIENT LIST line).
pub fn auth_failed(node: &Rc<Node>, command: &[u8], username: &[u8], client_info: String) {
    let username = String::from_utf8_lossy(username).into_owned();
    let command = String::from_utf8_lossy(command).into_owned();
    let now = now_ms();
    let add = move |_: &Rc<shoal_runtime::Core>| {
        let node = node::current();
        let max_len = node.config.borrow().acllog_max_len as usize;
        node.acl_log.add(command, username, client_info, max_len, now);
    };
    if node.core.id == 0 {
        add(&node.core);
    } else {
        let core = node.core.clone();
        glommio::spawn_local(async move { core.call_on(0, add).await }).detach();
    }
}

/// ACL LOG [count | RESET]
pub async fn acl_log(node: &Rc<Node>, args: &[Bytes]) -> Frame {
    if args.len() > 3 {
        return crate::server_commands::subcommand_syntax_error(args);
    }
    let count = match args.get(2) {
        None => 10,
        Some(arg) if arg.eq_ignore_ascii_case(b"reset") => {
            node.core.call_on(0, |_| node::current().acl_log.entries.borrow_mut().clear()).await;
            return args::ok();
        }
        Some(arg) => match args::parse_i64(arg) {
            Ok(count) => usize::try_from(count).unwrap_or(0),
            Err(_) => return errors::not_integer(),
        },
    };
    let (entries, now) =
        node.core.call_on(0, move |_| (node::current().acl_log.entries.borrow().iter().take(count).cloned().collect::<Vec<_>>(), now_ms())).await;
    Frame::Array(
        entries
            .into_iter()
            .map(|entry| {
                Frame::Map(vec![
                    (bulk("count"), Frame::Integer(entry.count as i64)),
                    (bulk("reason"), bulk("auth")),
                    (bulk("context"), bulk("toplevel")),
                    (bulk("object"), bulk(&entry.object)),
                    (bulk("username"), bulk(entry.username)),
                    (bulk("age-seconds"), Frame::Double(now.saturating_sub(entry.created_ms) as f64 / 1000.0)),
                    (bulk("client-info"), bulk(entry.client_info)),
                    (bulk("entry-id"), Frame::Integer(entry.id as i64)),
                    (bulk("timestamp-created"), Frame::Integer(entry.created_ms as i64)),
                    (bulk("timestamp-last-updated"), Frame::Integer(entry.updated_ms as i64)),
                ])
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_within_a_minute_count_on_one_entry_which_moves_to_the_front() {
        let log = AclLog::default();
        log.add("auth".into(), "alice".into(), "first".into(), 10, 1_000);
        log.add("auth".into(), "bob".into(), "b".into(), 10, 2_000);
        log.add("auth".into(), "alice".into(), "second".into(), 10, 30_000);
        let entries: Vec<Entry> = log.entries.borrow().iter().cloned().collect();
        assert_eq!(entries.iter().map(|e| (e.username.as_str(), e.count)).collect::<Vec<_>>(), [("alice", 2), ("bob", 1)]);
        assert_eq!((entries[0].client_info.as_str(), entries[0].created_ms, entries[0].updated_ms), ("second", 1_000, 30_000));
        // More than a minute after its last failure: a new entry.
        log.add("auth".into(), "alice".into(), "third".into(), 10, 100_000);
        assert_eq!(log.entries.borrow().len(), 3);
        assert_eq!(log.entries.borrow()[0].id, 2);
        // Another command is another entry.
        log.add("hello".into(), "alice".into(), "fourth".into(), 10, 100_001);
        assert_eq!(log.entries.borrow().len(), 4);
        // Bounded.
        log.add("auth".into(), "carol".into(), "c".into(), 2, 100_002);
        assert_eq!(log.entries.borrow().iter().map(|e| (e.object.as_str(), e.username.as_str())).collect::<Vec<_>>(), [("auth", "carol"), ("hello", "alice")]);
    }
}
