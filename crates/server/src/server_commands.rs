//! Commands that need the connection or the whole server: SELECT, HELLO, AUTH, QUIT, RESET,
//! CLIENT, COMMAND, INFO, CONFIG, TIME, SHUTDOWN, DEBUG.

use std::rc::Rc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use shoal_commands::args::{self, is};
use shoal_commands::errors;
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

fn bulk(s: impl AsRef<[u8]>) -> Frame {
    Frame::Bulk(Bytes::copy_from_slice(s.as_ref()))
}

fn simple(s: &'static str) -> Frame {
    Frame::Simple(Bytes::from_static(s.as_bytes()))
}

/// Runs a connection-level command. Returns its reply (None: no reply) and what follows.
pub async fn run(node: &Rc<Node>, conn: &mut Conn, spec: &'static CommandSpec, args: Vec<Bytes>) -> (Option<Frame>, After) {
    if spec.name == "shutdown" {
        return shutdown(node, &args);
    }
    let started = std::time::Instant::now();
    let (frame, after) = match spec.name {
        "select" => (select(node, conn, &args), After::Continue),
        "quit" => (args::ok(), After::Close),
        "reset" => {
            conn.db = 0;
            conn.proto = Protocol::Resp2;
            conn.reply_mode = ReplyMode::On;
            conn.client.db.set(0);
            conn.client.resp.set(2);
            *conn.client.name.borrow_mut() = String::new();
            (simple("RESET"), After::Continue)
        }
        "hello" => (hello(node, conn, &args), After::Continue),
        "auth" => (auth(node, &args), After::Continue),
        "client" => client(node, conn, &args).await,
        "time" => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            (Frame::Array(vec![bulk(now.as_secs().to_string()), bulk(now.subsec_micros().to_string())]), After::Continue)
        }
        _ => (errors::error(&format!("ERR '{}' is not implemented yet", spec.name)), After::Continue),
    };
    node.core.stats.borrow_mut().record(spec.name, started.elapsed(), &frame);
    (Some(frame), after)
}

/// SELECT index
fn select(node: &Rc<Node>, conn: &mut Conn, args: &[Bytes]) -> Frame {
    let index = match args::parse_i64(&args[1]) {
        Ok(i) => i,
        Err(_) => return errors::not_integer(),
    };
    let databases = node.config.borrow().databases as i64;
    if index < 0 || index >= databases {
        return errors::error(errors::DB_INDEX_OUT_OF_RANGE);
    }
    conn.db = index as usize;
    conn.client.db.set(conn.db);
    args::ok()
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
    let mut name = None;
    while i < args.len() {
        let remaining = args.len() - i - 1;
        if is(&args[i], "auth") && remaining >= 2 {
            let reply = auth(node, &[args[0].clone(), args[i + 1].clone(), args[i + 2].clone()]);
            if matches!(reply, Frame::Error(_)) {
                return reply;
            }
            i += 3;
        } else if is(&args[i], "setname") && remaining >= 1 {
            name = Some(args[i + 1].clone());
            i += 2;
        } else {
            return errors::error(&format!("ERR Syntax error in HELLO option '{}'", String::from_utf8_lossy(&args[i])));
        }
    }
    if let Some(name) = name {
        if let Err(e) = set_client_name(conn, &name) {
            return e;
        }
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
fn auth(node: &Rc<Node>, args: &[Bytes]) -> Frame {
    let requirepass = node.config.borrow().requirepass.clone();
    if args.len() > 3 {
        return errors::syntax();
    }
    if requirepass.is_empty() && args.len() == 2 {
        return errors::error("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?");
    }
    let (user, password) = if args.len() == 3 { (&args[1][..], &args[2][..]) } else { (&b"default"[..], &args[1][..]) };
    if user == b"default" && (requirepass.is_empty() || password == requirepass.as_bytes()) {
        args::ok()
    } else {
        errors::error("WRONGPASS invalid username-password pair or user is disabled.")
    }
}

/// Client names may not contain spaces, newlines or other special characters.
fn set_client_name(conn: &mut Conn, name: &[u8]) -> Result<(), Frame> {
    if name.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
        return Err(errors::error("ERR Client names cannot contain spaces, newlines or special characters."));
    }
    *conn.client.name.borrow_mut() = String::from_utf8_lossy(name).into_owned();
    Ok(())
}

/// CLIENT subcommand [arguments ...]
async fn client(node: &Rc<Node>, conn: &mut Conn, args: &[Bytes]) -> (Frame, After) {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    let frame = match (sub.as_str(), args.len()) {
        ("id", 2) => Frame::Integer(conn.client.id as i64),
        ("getname", 2) => {
            let name = conn.client.name.borrow().clone();
            if name.is_empty() {
                Frame::Null
            } else {
                bulk(name)
            }
        }
        ("setname", 3) => match set_client_name(conn, &args[2]) {
            Ok(()) => args::ok(),
            Err(e) => e,
        },
        ("info", 2) => Frame::Verbatim { format: *b"txt", text: Bytes::from(conn.client.describe() + "\n") },
        ("list", 2) => {
            let lines = node.core.call_all(|_| crate::node::current().clients.borrow().values().map(|c| c.describe()).collect::<Vec<_>>()).await;
            let mut text = String::new();
            for line in lines.into_iter().flatten() {
                text.push_str(&line);
                text.push('\n');
            }
            Frame::Verbatim { format: *b"txt", text: Bytes::from(text) }
        }
        ("reply", 3) => {
            if is(&args[2], "on") {
                conn.reply_mode = ReplyMode::On;
                args::ok()
            } else if is(&args[2], "off") {
                conn.reply_mode = ReplyMode::Off;
                return (args::ok(), After::Continue);
            } else if is(&args[2], "skip") {
                conn.reply_mode = ReplyMode::SkipArmed;
                return (args::ok(), After::Continue);
            } else {
                errors::syntax()
            }
        }
        ("setinfo", 4) => {
            let value = String::from_utf8_lossy(&args[3]).into_owned();
            if value.chars().any(|c| !('!'..='~').contains(&c)) {
                errors::error(&format!("ERR {} cannot contain spaces, newlines or special characters.", String::from_utf8_lossy(&args[2]).to_ascii_lowercase()))
            } else if is(&args[2], "lib-name") {
                *conn.client.lib_name.borrow_mut() = value;
                args::ok()
            } else if is(&args[2], "lib-ver") {
                *conn.client.lib_ver.borrow_mut() = value;
                args::ok()
            } else {
                errors::error(&format!("ERR Unrecognized option '{}'", String::from_utf8_lossy(&args[2])))
            }
        }
        ("id" | "getname" | "setname" | "info" | "list" | "reply" | "setinfo", _) => errors::wrong_arity(&format!("client|{sub}")),
        _ => errors::unknown_subcommand("client", &args[1]),
    };
    (frame, After::Continue)
}

/// SHUTDOWN [NOSAVE | SAVE] [NOW] [FORCE] [ABORT]
fn shutdown(node: &Rc<Node>, args: &[Bytes]) -> (Option<Frame>, After) {
    for arg in &args[1..] {
        if !(is(arg, "nosave") || is(arg, "save") || is(arg, "now") || is(arg, "force") || is(arg, "abort")) {
            return (Some(errors::syntax()), After::Continue);
        }
    }
    if args[1..].iter().any(|a| is(a, "abort")) {
        return (Some(errors::error("ERR No shutdown in progress.")), After::Continue);
    }
    tracing::warn!("User requested shutdown...");
    node.core.shared.shutdown.store(true, Ordering::SeqCst);
    // Redis closes the connection without a reply when the shutdown goes ahead.
    (None, After::Close)
}
