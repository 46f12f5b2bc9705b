//! Commands that need the connection or the whole server (`Handler::Connection` entries):
//! SELECT, HELLO, AUTH, QUIT, RESET, TIME and SHUTDOWN here; CLIENT, COMMAND, INFO, CONFIG
//! and DEBUG in their own modules.
//!
//! Server-wide state lives on every core; these handlers gather or change it with
//! `Core::call_all`. They never touch another core's data directly.

use std::rc::Rc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use shoal_commands::args::{self, is};
use shoal_commands::errors;
use shoal_commands::table::flags;
use shoal_commands::CommandSpec;
use shoal_resp::{Frame, Protocol};

use crate::connection::{Conn, ReplyMode};
use crate::node::Node;

/// What the connection does after a command.
pub enum After {
    Continue,
    Close,
}

/// The Redis version we are compatible with, as HELLO and INFO report it.
pub const REDIS_VERSION: &str = "7.2.0";

/// Server error texts, Redis's wording (shoal_commands::errors holds the ones commands share).
pub const NOAUTH: &str = "NOAUTH Authentication required.";
pub const HELLO_NOAUTH: &str = "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time";
pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
pub const AUTH_WITHOUT_PASSWORD: &str =
    "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?";
pub const BAD_CLIENT_NAME: &str = "ERR Client names cannot contain spaces, newlines or special characters.";

pub fn bulk(s: impl AsRef<[u8]>) -> Frame {
    Frame::Bulk(Bytes::copy_from_slice(s.as_ref()))
}

pub fn simple(s: impl AsRef<[u8]>) -> Frame {
    Frame::Simple(Bytes::copy_from_slice(s.as_ref()))
}

/// A text reply (CLIENT LIST, INFO): a verbatim string in RESP3, a bulk string in RESP2.
pub fn text(s: String) -> Frame {
    Frame::Verbatim { format: *b"txt", text: Bytes::from(s) }
}

/// The reply to `<COMMAND> HELP`, as Redis's `addReplyHelp`: a title, the lines, then HELP.
pub fn help(command: &str, lines: &[&str]) -> Frame {
    let mut reply = Vec::with_capacity(lines.len() + 3);
    reply.push(simple(format!("{command} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:")));
    reply.extend(lines.iter().map(simple));
    reply.push(simple("HELP"));
    reply.push(simple("    Prints this help."));
    Frame::Array(reply)
}

/// Redis's `addReplySubcommandSyntaxError`, for a subcommand parsed inside its handler.
pub fn subcommand_syntax_error(args: &[Bytes]) -> Frame {
    errors::subcommand_syntax(args)
}

/// The NOAUTH refusal for `spec` while `requirepass` is set and the client has not
/// authenticated; None when the command may run. Checked before every command.
pub fn auth_refusal(node: &Node, conn: &Conn, spec: &CommandSpec) -> Option<Frame> {
    if conn.authenticated || spec.has(flags::NO_AUTH) || node.config.borrow().requirepass.is_empty() {
        return None;
    }
    Some(errors::error(NOAUTH))
}

/// Runs a connection-level command. Returns its reply (None: no reply) and what follows.
pub async fn run(node: &Rc<Node>, conn: &mut Conn, spec: &'static CommandSpec, args: Vec<Bytes>) -> (Option<Frame>, After) {
    if spec.name == "shutdown" {
        return shutdown(node, &args).await;
    }
    if spec.name == "monitor" {
        return (crate::admin_cmd::monitor(node, conn), After::Continue);
    }
    // Scripts show in MONITOR before they run, their calls after it (see `feed_monitors`).
    if spec.has(flags::SKIP_MONITOR) {
        node.core.feed_monitors_always(conn.db, &conn.client.addr, spec, &args);
    }
    let started = shoal_runtime::stats::Stopwatch::start();
    let (frame, after) = match spec.name {
        "select" => (select(node, conn, &args), After::Continue),
        "multi" => (crate::multi::multi(conn), After::Continue),
        "exec" => crate::multi::exec(node, conn).await,
        "discard" => (crate::multi::discard(node, conn), After::Continue),
        "watch" => (crate::multi::watch(node, conn, &args).await, After::Continue),
        "unwatch" => (crate::multi::unwatch(node, conn), After::Continue),
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro" => (crate::scripting::run(node, conn, spec, &args).await, After::Continue),
        name if name.starts_with("script|") => (crate::scripting::script(node, spec, &args).await, After::Continue),
        name if name.starts_with("function|") => {
            let frame = crate::scripting::function(node, spec, &args).await;
            // Libraries survive a restart through the log, as in Redis.
            if matches!(name, "function|load" | "function|delete" | "function|flush" | "function|restore") && !matches!(frame, Frame::Error(_)) {
                node.core.aof_log_keyless(&args);
            }
            (frame, After::Continue)
        }
        "quit" => (args::ok(), After::Close),
        "replconf" => return (crate::sync_cmd::replconf(conn, &args), After::Continue),
        "reset" => {
            crate::pubsub::reset(node, conn).await;
            crate::tracking::disable(node, conn).await;
            (reset(node, conn), After::Continue)
        }
        name if crate::pubsub::subscription(name).is_some() => (crate::pubsub::subscription_in_exec(node, conn, spec, &args).await, After::Continue),
        name if name == "publish" || name == "spublish" || name.starts_with("pubsub|") => {
            (crate::pubsub::command(node, conn, spec, &args).await, After::Continue)
        }
        name if name.starts_with("himport|") => {
            let reply = conn.fieldsets.run(spec, &args);
            conn.client.note_fieldsets(conn.fieldsets.bytes());
            (reply, After::Continue)
        }
        "hello" => (hello(node, conn, &args), After::Continue),
        "auth" => (auth(node, conn, &args), After::Continue),
        "time" => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            (Frame::Array(vec![bulk(now.as_secs().to_string()), bulk(now.subsec_micros().to_string())]), After::Continue)
        }
        "info" => (crate::info::info(node, &args).await, After::Continue),
        "save" => (save(node).await, After::Continue),
        "bgsave" => (bgsave(node, &args, conn.in_exec).await, After::Continue),
        "lastsave" => (Frame::Integer(crate::save::last_save()), After::Continue),
        "role" => (crate::replica::role().unwrap_or_else(crate::replication::role), After::Continue),
        "bgrewriteaof" => match crate::save::bgrewriteaof(node, conn.in_exec).await {
            Ok(text) => (Frame::Simple(Bytes::from_static(text.as_bytes())), After::Continue),
            Err(text) => (errors::error(text), After::Continue),
        },
        name if name.starts_with("latency|") => (crate::latency_cmd::latency(node, spec, &args).await, After::Continue),
        name if name.starts_with("slowlog|") => (crate::slowlog_cmd::slowlog(node, spec, &args).await, After::Continue),
        "readonly" | "readwrite" | "asking" => {
            (crate::cluster::command::flag_command(spec.name, &mut conn.cluster_readonly, &mut conn.asking), After::Continue)
        }
        name if name.starts_with("cluster|") => (crate::cluster::command::cluster(node, spec, &args).await, After::Continue),
        name if crate::admin_cmd::handles(name) => (crate::admin_cmd::run(node, spec, &args).await, After::Continue),
        "debug" => (crate::debug_cmd::debug(node, conn, &args).await, After::Continue),
        "migrate" => (crate::migrate::migrate(node, conn, &args).await, After::Continue),
        name if name == "command" || name.starts_with("command|") => (crate::command_docs::command(spec, &args), After::Continue),
        name if name.starts_with("client|") => crate::client_cmd::client(node, conn, spec, &args).await,
        name if name.starts_with("config|") => (crate::config_cmd::config(node, conn, spec, &args).await, After::Continue),
        _ => (errors::error(&format!("ERR '{}' is not implemented yet", spec.name)), After::Continue),
    };
    account(node, conn, spec, &args, started.elapsed(), &frame);
    (Some(frame), after)
}

/// What every command the connection runs itself is counted in: INFO commandstats, the slow
/// log and latency monitor, and MONITOR.
pub fn account(node: &Node, conn: &Conn, spec: &CommandSpec, args: &[Bytes], elapsed: std::time::Duration, reply: &Frame) {
    node.core.stats.borrow_mut().record(spec.name, elapsed, reply);
    node.core.note_slow(spec, args, elapsed, conn.client.id);
    node.core.feed_monitors(conn.db, &conn.client.addr, spec, args);
}

/// SELECT index
fn select(node: &Rc<Node>, conn: &mut Conn, args: &[Bytes]) -> Frame {
    let index = match args::parse_i64(&args[1]) {
        Ok(i) => i,
        Err(_) => return errors::not_integer(),
    };
    if crate::cluster::enabled() && index != 0 {
        return errors::error("ERR SELECT is not allowed in cluster mode");
    }
    let databases = node.config.borrow().databases as i64;
    if index < 0 || index >= databases {
        return errors::error(errors::DB_INDEX_OUT_OF_RANGE);
    }
    conn.db = index as usize;
    conn.client.db.set(conn.db);
    args::ok()
}

/// RESET: back to a fresh connection's state, authentication included (Redis's
/// `clearClientConnectionState`). The library name and version stay.
fn reset(node: &Rc<Node>, conn: &mut Conn) -> Frame {
    crate::multi::leave(node, conn);
    crate::admin_cmd::leave_monitor(node, conn);
    conn.fieldsets.discard_all();
    conn.client.note_fieldsets(0);
    conn.db = 0;
    conn.proto = Protocol::Resp2;
    conn.reply_mode = ReplyMode::On;
    conn.authenticated = node.config.borrow().requirepass.is_empty();
    conn.client.db.set(0);
    conn.client.resp.set(2);
    *conn.client.name.borrow_mut() = String::new();
    simple("RESET")
}

/// HELLO [protover [AUTH username password] [SETNAME clientname]]
fn hello(node: &Rc<Node>, conn: &mut Conn, args: &[Bytes]) -> Frame {
    let mut proto = conn.proto;
    if args.len() >= 2 {
        match args::parse_i64(&args[1]) {
            Ok(2) => proto = Protocol::Resp2,
            Ok(3) => proto = Protocol::Resp3,
            Ok(_) => return errors::error("NOPROTO unsupported protocol version"),
            Err(_) => return errors::error("ERR Protocol version is not an integer or out of range"),
        }
    }
    let mut i = 2;
    let mut credentials = None;
    let mut name = None;
    while i < args.len() {
        let remaining = args.len() - i - 1;
        if is(&args[i], "auth") && remaining >= 2 {
            credentials = Some((args[i + 1].clone(), args[i + 2].clone()));
            i += 3;
        } else if is(&args[i], "setname") && remaining >= 1 {
            if !valid_client_name(&args[i + 1]) {
                return errors::error(BAD_CLIENT_NAME);
            }
            name = Some(args[i + 1].clone());
            i += 2;
        } else {
            return errors::error(&format!("ERR Syntax error in HELLO option '{}'", String::from_utf8_lossy(&args[i])));
        }
    }
    if let Some((user, password)) = credentials {
        if let Err(e) = authenticate(node, conn, &args[0], &user, &password) {
            return e;
        }
    }
    if !conn.authenticated {
        return errors::error(HELLO_NOAUTH);
    }
    if let Some(name) = name {
        *conn.client.name.borrow_mut() = String::from_utf8_lossy(&name).into_owned();
    }
    conn.proto = proto;
    conn.client.resp.set(if proto == Protocol::Resp3 { 3 } else { 2 });
    Frame::Map(vec![
        (bulk("server"), bulk("redis")),
        (bulk("version"), bulk(REDIS_VERSION)),
        (bulk("proto"), Frame::Integer(if proto == Protocol::Resp3 { 3 } else { 2 })),
        (bulk("id"), Frame::Integer(conn.client.id as i64)),
        (bulk("mode"), bulk("standalone")),
        (bulk("role"), bulk("master")),
        (bulk("modules"), Frame::Array(vec![])),
    ])
}

/// AUTH [username] password
fn auth(node: &Rc<Node>, conn: &mut Conn, args: &[Bytes]) -> Frame {
    if args.len() > 3 {
        return errors::syntax();
    }
    if args.len() == 2 && node.config.borrow().requirepass.is_empty() {
        return errors::error(AUTH_WITHOUT_PASSWORD);
    }
    let (user, password) = if args.len() == 3 { (&args[1][..], &args[2][..]) } else { (&b"default"[..], &args[1][..]) };
    match authenticate(node, conn, &args[0], user, password) {
        Ok(()) => args::ok(),
        Err(e) => e,
    }
}

/// Checks credentials against the only user, `default`, whose password is `requirepass`
/// (none: any password is accepted, as for Redis's `nopass`).
/// A failure is logged for ACL LOG, with `command` (AUTH or HELLO, as the client spelled it).
fn authenticate(node: &Rc<Node>, conn: &mut Conn, command: &[u8], user: &[u8], password: &[u8]) -> Result<(), Frame> {
    let requirepass = node.config.borrow().requirepass.clone();
    if user == b"default" && (requirepass.is_empty() || password == requirepass.as_bytes()) {
        conn.authenticated = true;
        Ok(())
    } else {
        crate::acl_log::auth_failed(node, command, user, conn.client.describe());
        Err(errors::error(WRONGPASS))
    }
}

/// Client names may not contain spaces, newlines or other special characters.
pub fn valid_client_name(name: &[u8]) -> bool {
    name.iter().all(|b| (b'!'..=b'~').contains(b))
}

/// SAVE
async fn save(node: &Rc<Node>) -> Frame {
    match crate::save::save(node).await {
        Ok(()) => args::ok(),
        Err(crate::save::SaveError::InProgress) => errors::error("ERR Background save already in progress"),
        // Redis answers a failed SAVE with a bare ERR; the log has the reason.
        Err(crate::save::SaveError::Failed) => errors::error("ERR"),
    }
}

/// BGSAVE [SCHEDULE]
async fn bgsave(node: &Rc<Node>, args: &[Bytes], in_exec: bool) -> Frame {
    let schedule = match args.len() {
        1 => false,
        2 if is(&args[1], "schedule") => true,
        _ => return errors::syntax(),
    };
    match crate::save::bgsave(node, schedule, in_exec).await {
        Ok(text) => Frame::Simple(Bytes::from_static(text.as_bytes())),
        Err(text) => errors::error(text),
    }
}

/// SHUTDOWN [NOSAVE | SAVE] [NOW] [FORCE] [ABORT]
async fn shutdown(node: &Rc<Node>, args: &[Bytes]) -> (Option<Frame>, After) {
    for arg in &args[1..] {
        if !(is(arg, "nosave") || is(arg, "save") || is(arg, "now") || is(arg, "force") || is(arg, "abort")) {
            return (Some(errors::syntax()), After::Continue);
        }
    }
    let has = |word: &str| args[1..].iter().any(|a| is(a, word));
    if has("abort") {
        return (Some(errors::error("ERR No shutdown in progress.")), After::Continue);
    }
    if has("save") && has("nosave") {
        return (Some(errors::syntax()), After::Continue);
    }
    tracing::warn!("User requested shutdown...");
    if shut_down(node, &has).await.is_err() {
        tracing::warn!("Errors trying to shut down the server. Check the logs for more information.");
        return (Some(errors::error("ERR Errors trying to SHUTDOWN. Check logs.")), After::Continue);
    }
    // Redis closes the connection without a reply when the shutdown goes ahead.
    (None, After::Close)
}

/// Shuts the server down as SHUTDOWN (or a signal, with `shutdown-on-sig*`'s words) asks,
/// `has` telling which of its words are given: replicas catch up first (writes paused)
/// unless `now`; the RDB file is saved with `save`, not with `nosave`, and otherwise when
/// save points are configured (never while the dataset loads: the file would miss keys).
/// Err: the save failed, and without `force` the server goes on (writes resume).
pub async fn shut_down(node: &Rc<Node>, has: &dyn Fn(&str) -> bool) -> Result<(), ()> {
    let paused = !has("now") && crate::replication::wait_for_replicas(node).await;
    let save = !crate::rdb_load::loading() && (has("save") || (!has("nosave") && !node.config.borrow().save.is_empty()));
    if save && crate::save::save_at_shutdown(node).await.is_err() && !has("force") {
        if paused {
            crate::replication::resume_after_failed_shutdown(node).await;
        }
        return Err(());
    }
    node.core.shared.shutdown.store(true, Ordering::SeqCst);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<Bytes> {
        list.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect()
    }

    #[test]
    fn help_wraps_the_lines_like_redis() {
        let Frame::Array(lines) = help("CONFIG", &["GET <pattern>"]) else { panic!("an array") };
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0], simple("CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"));
        assert_eq!(lines[1], simple("GET <pattern>"));
        assert_eq!(lines[2], simple("HELP"));
        assert_eq!(lines[3], simple("    Prints this help."));
    }

    #[test]
    fn subcommand_syntax_error_names_the_subcommand_as_typed() {
        assert_eq!(
            subcommand_syntax_error(&args(&["client", "PAUSE", "1", "x", "y"])),
            errors::error("ERR unknown subcommand or wrong number of arguments for 'PAUSE'. Try CLIENT HELP.")
        );
    }

    #[test]
    fn client_names_are_printable_without_spaces() {
        assert!(valid_client_name(b"worker-1"));
        assert!(valid_client_name(b""));
        assert!(!valid_client_name(b"a b"));
        assert!(!valid_client_name(b"a\nb"));
    }
}
