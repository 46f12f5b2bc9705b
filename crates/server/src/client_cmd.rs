//! CLIENT: the connection's own settings (ID, SETNAME, REPLY, ...) and the server's clients
//! (LIST, KILL, PAUSE), which live on every core and are reached with `call_all`.
//!
//! Shoal has one kind of client (normal), one user (`default`), no blocking
//! commands and no client eviction yet: the filters and subcommands about those answer as
//! Redis does for a server that has none.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use shoal_commands::args::{self, is};
use shoal_commands::{errors, CommandSpec};
use shoal_resp::Frame;

use crate::client::ClientInfo;
use crate::connection::{Conn, ReplyMode};
use crate::node::{self, Node};
use crate::pause::PauseMode;
use crate::server_commands::{bulk, help, subcommand_syntax_error, text, valid_client_name, After, BAD_CLIENT_NAME};

/// The longest pause we arm; a longer CLIENT PAUSE lasts this long (about 30 years).
const PAUSE_MS_MAX: u64 = 1_000_000_000_000;

const HELP: &[&str] = &[
    "CACHING (YES|NO)",
    "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
    "GETREDIR",
    "    Return the client ID we are redirecting to when tracking is enabled.",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to specified local address",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Kill connections by type.",
    "    * USER <username>",
    "      Kill connections authenticated by <username>.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "    * ID <client-id>",
    "      Kill connections by client id.",
    "LIST [options ...]",
    "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Return clients of specified type.",
    "UNPAUSE",
    "    Stop the current client pause, resuming traffic.",
    "PAUSE <timeout> [WRITE|ALL]",
    "    Suspend all, or just write, clients for <timeout> milliseconds.",
    "REPLY (ON|OFF|SKIP)",
    "    Control the replies sent to the current connection.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "SETINFO <option> <value>",
    "    Set client meta attr. Options are:",
    "    * LIB-NAME: the client lib name.",
    "    * LIB-VER: the client lib version.",
    "UNBLOCK <clientid> [TIMEOUT|ERROR]",
    "    Unblock the specified blocked client.",
    "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
    "         [OPTIN] [OPTOUT] [NOLOOP]",
    "    Control server assisted client side caching.",
    "TRACKINGINFO",
    "    Report tracking status for the current connection.",
    "NO-EVICT (ON|OFF)",
    "    Protect current client connection from eviction.",
];

/// CLIENT subcommand [arguments ...]
pub async fn client(node: &Rc<Node>, conn: &mut Conn, spec: &'static CommandSpec, args: &[Bytes]) -> (Frame, After) {
    let frame = match spec.name {
        "client|id" => Frame::Integer(conn.client.id as i64),
        "client|getname" => {
            let name = conn.client.name.borrow().clone();
            if name.is_empty() {
                Frame::Null
            } else {
                bulk(name)
            }
        }
        "client|setname" => {
            if valid_client_name(&args[2]) {
                *conn.client.name.borrow_mut() = String::from_utf8_lossy(&args[2]).into_owned();
                args::ok()
            } else {
                errors::error(BAD_CLIENT_NAME)
            }
        }
        "client|info" => text(conn.client.describe() + "\n"),
        "client|list" => list(node, args).await,
        "client|kill" => return kill(node, conn, args).await,
        "client|pause" => pause(node, args).await,
        "client|unpause" => {
            node.core.call_all(|_| node::current().pause.unpause()).await;
            args::ok()
        }
        "client|reply" => reply(conn, &args[2]),
        "client|setinfo" => setinfo(conn, &args[2], &args[3]),
        "client|no-evict" if is(&args[2], "on") || is(&args[2], "off") => {
            conn.client.no_evict.set(is(&args[2], "on"));
            args::ok()
        }
        "client|no-evict" => errors::syntax(),
        "client|getredir" | "client|tracking" | "client|trackinginfo" | "client|caching" => crate::tracking::command(node, conn, args).await,
        "client|unblock" => unblock(node, args).await,
        "client|help" => help("CLIENT", HELP),
        _ => errors::unknown_subcommand("client", &args[1]),
    };
    (frame, After::Continue)
}

/// CLIENT REPLY ON|OFF|SKIP. OFF and SKIP suppress their own reply too (the connection loop
/// applies the mode when it writes).
fn reply(conn: &mut Conn, mode: &[u8]) -> Frame {
    conn.reply_mode = if is(mode, "on") {
        ReplyMode::On
    } else if is(mode, "off") {
        ReplyMode::Off
    } else if is(mode, "skip") {
        ReplyMode::SkipArmed
    } else {
        return errors::syntax();
    };
    args::ok()
}

/// CLIENT SETINFO LIB-NAME|LIB-VER value
fn setinfo(conn: &mut Conn, option: &[u8], value: &[u8]) -> Frame {
    let target = if is(option, "lib-name") {
        &conn.client.lib_name
    } else if is(option, "lib-ver") {
        &conn.client.lib_ver
    } else {
        return errors::error(&format!("ERR Unrecognized option '{}'", String::from_utf8_lossy(option)));
    };
    if !valid_client_name(value) {
        return errors::error(&format!("ERR {} cannot contain spaces, newlines or special characters.", String::from_utf8_lossy(option).to_ascii_lowercase()));
    }
    *target.borrow_mut() = String::from_utf8_lossy(value).into_owned();
    args::ok()
}

/// A client type, as CLIENT LIST TYPE and CLIENT KILL TYPE name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientType {
    Normal,
    Replica,
    PubSub,
    Master,
}

impl ClientType {
    /// Redis's `getClientTypeByName`.
    fn parse(name: &[u8]) -> Result<ClientType, Frame> {
        if is(name, "normal") {
            Ok(ClientType::Normal)
        } else if is(name, "slave") || is(name, "replica") {
            Ok(ClientType::Replica)
        } else if is(name, "pubsub") {
            Ok(ClientType::PubSub)
        } else if is(name, "master") {
            Ok(ClientType::Master)
        } else {
            Err(errors::error(&format!("ERR Unknown client type '{}'", String::from_utf8_lossy(name))))
        }
    }

    /// Redis's `getClientType`: the link to this replica's master is MASTER, a replica's
    /// connection REPLICA (unless it monitors), a subscribed client PUBSUB, any other NORMAL.
    fn matches(self, client: &ClientInfo) -> bool {
        let master = crate::replica::is_link(client.id);
        let replica = !client.monitor.get() && crate::replication::is_replica(client.id);
        match self {
            ClientType::Master => master,
            ClientType::Replica => !master && replica,
            ClientType::PubSub => !master && !replica && client.is_subscriber(),
            ClientType::Normal => !master && !replica && !client.is_subscriber(),
        }
    }
}

/// Which clients CLIENT LIST shows.
#[derive(Clone, Debug, PartialEq, Eq)]
enum ListFilter {
    All,
    Type(ClientType),
    /// These ids, in this order (repeated ids are listed again, as Redis does).
    Ids(Vec<u64>),
}

/// Parses CLIENT LIST [TYPE type] [ID id ...].
fn parse_list_filter(args: &[Bytes]) -> Result<ListFilter, Frame> {
    if args.len() == 2 {
        return Ok(ListFilter::All);
    }
    if args.len() == 4 && is(&args[2], "type") {
        return ClientType::parse(&args[3]).map(ListFilter::Type);
    }
    if args.len() > 3 && is(&args[2], "id") {
        let mut ids = Vec::with_capacity(args.len() - 3);
        for arg in &args[3..] {
            let id = args::parse_i64(arg).map_err(|_| errors::error("ERR Invalid client ID"))?;
            // No client has an id below 1; such an id lists nothing.
            ids.push(u64::try_from(id).unwrap_or(0));
        }
        return Ok(ListFilter::Ids(ids));
    }
    Err(errors::syntax())
}

/// CLIENT LIST [TYPE NORMAL|MASTER|REPLICA|PUBSUB] [ID client-id [client-id ...]]
async fn list(node: &Rc<Node>, args: &[Bytes]) -> Frame {
    let filter = match parse_list_filter(args) {
        Ok(filter) => filter,
        Err(e) => return e,
    };
    let wanted = filter.clone();
    let per_core = node
        .core
        .call_all(move |_| {
            let node = node::current();
            let clients = node.clients.borrow();
            clients
                .values()
                .filter(|client| match &wanted {
                    ListFilter::All => true,
                    ListFilter::Type(kind) => kind.matches(client),
                    ListFilter::Ids(ids) => ids.contains(&client.id),
                })
                .map(|client| (client.id, client.describe()))
                .collect::<Vec<_>>()
        })
        .await;
    let mut lines: Vec<(u64, String)> = per_core.into_iter().flatten().collect();
    // Redis lists clients in connection order, which is id order.
    lines.sort_by_key(|(id, _)| *id);
    let mut out = String::new();
    let mut push = |line: &str| {
        out.push_str(line);
        out.push('\n');
    };
    match filter {
        ListFilter::Ids(ids) => {
            for id in ids {
                if let Some((_, line)) = lines.iter().find(|(listed, _)| *listed == id) {
                    push(line);
                }
            }
        }
        _ => lines.iter().for_each(|(_, line)| push(line)),
    }
    text(out)
}

/// Which clients CLIENT KILL closes: every given condition must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct KillFilter {
    addr: Option<String>,
    laddr: Option<String>,
    id: Option<u64>,
    kind: Option<ClientType>,
    /// The caller's own id, when SKIPME is yes.
    skip: Option<u64>,
}

impl KillFilter {
    fn matches(&self, client: &ClientInfo) -> bool {
        self.addr.as_ref().is_none_or(|addr| *addr == client.addr)
            && self.laddr.as_ref().is_none_or(|laddr| *laddr == client.laddr)
            && self.id.is_none_or(|id| id == client.id)
            && self.kind.is_none_or(|kind| kind.matches(client))
            && self.skip != Some(client.id)
    }
}

/// Parses CLIENT KILL's arguments; `old_style` is the `CLIENT KILL addr:port` form.
fn parse_kill_filter(args: &[Bytes], own_id: u64) -> Result<(KillFilter, bool), Frame> {
    if args.len() == 3 {
        // The old form never skips the caller.
        let filter = KillFilter { addr: Some(String::from_utf8_lossy(&args[2]).into_owned()), ..KillFilter::default() };
        return Ok((filter, true));
    }
    let mut filter = KillFilter { skip: Some(own_id), ..KillFilter::default() };
    let mut i = 2;
    while i < args.len() {
        let Some(value) = args.get(i + 1) else {
            return Err(errors::syntax());
        };
        let option = &args[i];
        if is(option, "id") {
            match args::parse_i64(value) {
                Ok(id) if id >= 1 => filter.id = Some(id as u64),
                _ => return Err(errors::error("ERR client-id should be greater than 0")),
            }
        } else if is(option, "type") {
            filter.kind = Some(ClientType::parse(value)?);
        } else if is(option, "addr") {
            filter.addr = Some(String::from_utf8_lossy(value).into_owned());
        } else if is(option, "laddr") {
            filter.laddr = Some(String::from_utf8_lossy(value).into_owned());
        } else if is(option, "user") {
            // `default` is the only user, and every client is authenticated as it.
            if &value[..] != b"default" {
                return Err(errors::error(&format!("ERR No such user '{}'", String::from_utf8_lossy(value))));
            }
        } else if is(option, "skipme") {
            if is(value, "yes") {
                filter.skip = Some(own_id);
            } else if is(value, "no") {
                filter.skip = None;
            } else {
                return Err(errors::syntax());
            }
        } else {
            return Err(errors::syntax());
        }
        i += 2;
    }
    Ok((filter, false))
}

/// CLIENT KILL addr:port
/// CLIENT KILL [ID id] [TYPE type] [USER username] [ADDR addr] [LADDR laddr] [SKIPME yes|no]
///
/// Clients on any core are killed by setting their `kill` event there; each closes after
/// its current command. A caller that kills itself gets the reply, then is closed.
async fn kill(node: &Rc<Node>, conn: &mut Conn, args: &[Bytes]) -> (Frame, After) {
    let own_id = conn.client.id;
    let (filter, old_style) = match parse_kill_filter(args, own_id) {
        Ok(parsed) => parsed,
        Err(e) => return (e, After::Continue),
    };
    let per_core = node
        .core
        .call_all(move |_| {
            let node = node::current();
            let clients = node.clients.borrow();
            let mut killed = Vec::new();
            // A client already closing is not killed twice.
            for client in clients.values().filter(|c| !c.kill.is_set() && filter.matches(c)) {
                client.kill();
                killed.push(client.id);
            }
            killed
        })
        .await;
    let killed: Vec<u64> = per_core.into_iter().flatten().collect();
    let after = if killed.contains(&own_id) { After::Close } else { After::Continue };
    let frame = match (old_style, killed.len()) {
        (true, 0) => errors::error("ERR No such client"),
        (true, _) => args::ok(),
        (false, n) => args::int(n),
    };
    (frame, after)
}

/// CLIENT PAUSE timeout [WRITE | ALL]
async fn pause(node: &Rc<Node>, args: &[Bytes]) -> Frame {
    let (timeout_ms, mode) = match parse_pause(args) {
        Ok(parsed) => parsed,
        Err(e) => return e,
    };
    let deadline = Instant::now() + Duration::from_millis(timeout_ms.min(PAUSE_MS_MAX));
    node.core.call_all(move |_| node::current().pause.pause(mode, deadline)).await;
    args::ok()
}

fn parse_pause(args: &[Bytes]) -> Result<(u64, PauseMode), Frame> {
    let timeout_ms = args::parse_i64(&args[2]).map_err(|_| errors::error("ERR timeout is not an integer or out of range"))?;
    if timeout_ms < 0 {
        return Err(errors::error("ERR timeout is negative"));
    }
    let mode = match args.len() {
        3 => PauseMode::All,
        4 if is(&args[3], "write") => PauseMode::Write,
        4 if is(&args[3], "all") => PauseMode::All,
        4 => return Err(errors::error("ERR CLIENT PAUSE mode must be WRITE or ALL")),
        _ => return Err(subcommand_syntax_error(args)),
    };
    Ok((timeout_ms as u64, mode))
}

/// CLIENT UNBLOCK client-id [TIMEOUT | ERROR]: ends a blocked client's wait on whichever
/// core it lives, as if it timed out, or with an UNBLOCKED error. 1 if it was blocked.
async fn unblock(node: &Rc<Node>, args: &[Bytes]) -> Frame {
    let (id, error) = match parse_unblock(args) {
        Ok(parsed) => parsed,
        Err(e) => return e,
    };
    let per_core = node.core.call_all(move |_| node::current().clients.borrow().get(&id).is_some_and(|c| c.request_unblock(error))).await;
    args::int(per_core.into_iter().any(|unblocked| unblocked) as i64)
}

fn parse_unblock(args: &[Bytes]) -> Result<(u64, bool), Frame> {
    let error = match args.len() {
        3 => false,
        4 if is(&args[3], "timeout") => false,
        4 if is(&args[3], "error") => true,
        4 => return Err(errors::error("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR")),
        _ => return Err(subcommand_syntax_error(args)),
    };
    let id = args::parse_i64(&args[2])?;
    Ok((id.max(0) as u64, error))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<Bytes> {
        list.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect()
    }

    fn client(id: u64, addr: &str) -> ClientInfo {
        ClientInfo::new(id, addr.to_owned(), "127.0.0.1:6379".to_owned(), 7)
    }

    #[test]
    fn list_filters_parse_like_redis() {
        assert_eq!(parse_list_filter(&args(&["client", "list"])), Ok(ListFilter::All));
        assert_eq!(parse_list_filter(&args(&["client", "list", "TYPE", "normal"])), Ok(ListFilter::Type(ClientType::Normal)));
        assert_eq!(parse_list_filter(&args(&["client", "list", "type", "SLAVE"])), Ok(ListFilter::Type(ClientType::Replica)));
        assert_eq!(parse_list_filter(&args(&["client", "list", "id", "3", "1", "0"])), Ok(ListFilter::Ids(vec![3, 1, 0])));
        assert_eq!(parse_list_filter(&args(&["client", "list", "type", "foo"])), Err(errors::error("ERR Unknown client type 'foo'")));
        assert_eq!(parse_list_filter(&args(&["client", "list", "id", "1", "x"])), Err(errors::error("ERR Invalid client ID")));
        assert_eq!(parse_list_filter(&args(&["client", "list", "id"])), Err(errors::syntax()));
        assert_eq!(parse_list_filter(&args(&["client", "list", "foo"])), Err(errors::syntax()));
        assert_eq!(parse_list_filter(&args(&["client", "list", "type", "normal", "x"])), Err(errors::syntax()));
    }

    #[test]
    fn old_style_kill_matches_the_address_and_does_not_skip_the_caller() {
        let (filter, old_style) = parse_kill_filter(&args(&["client", "kill", "1.2.3.4:5"]), 9).unwrap();
        assert!(old_style);
        assert!(filter.matches(&client(9, "1.2.3.4:5")));
        assert!(!filter.matches(&client(9, "1.2.3.4:6")));
    }

    #[test]
    fn new_style_kill_skips_the_caller_unless_told_not_to() {
        let (filter, old_style) = parse_kill_filter(&args(&["client", "kill", "type", "normal"]), 9).unwrap();
        assert!(!old_style);
        assert!(!filter.matches(&client(9, "a:1")));
        assert!(filter.matches(&client(10, "a:1")));
        let (filter, _) = parse_kill_filter(&args(&["client", "kill", "id", "9", "skipme", "no"]), 9).unwrap();
        assert!(filter.matches(&client(9, "a:1")));
        assert!(!filter.matches(&client(10, "a:1")));
    }

    #[test]
    fn kill_filter_errors_match_redis() {
        let cases: &[(&[&str], Frame)] = &[
            (&["client", "kill", "id", "abc"], errors::error("ERR client-id should be greater than 0")),
            (&["client", "kill", "id", "0"], errors::error("ERR client-id should be greater than 0")),
            (&["client", "kill", "foo", "bar"], errors::syntax()),
            (&["client", "kill", "skipme", "maybe"], errors::syntax()),
            (&["client", "kill", "user", "nosuch"], errors::error("ERR No such user 'nosuch'")),
            (&["client", "kill", "type", "x"], errors::error("ERR Unknown client type 'x'")),
            (&["client", "kill", "id", "1", "type"], errors::syntax()),
        ];
        for (list, expected) in cases {
            assert_eq!(parse_kill_filter(&args(list), 1).err().as_ref(), Some(expected), "{list:?}");
        }
        let (filter, _) = parse_kill_filter(&args(&["client", "kill", "user", "default", "laddr", "x:1"]), 1).unwrap();
        assert_eq!(filter.laddr.as_deref(), Some("x:1"));
    }

    #[test]
    fn pause_arguments_parse_like_redis() {
        assert_eq!(parse_pause(&args(&["client", "pause", "10"])), Ok((10, PauseMode::All)));
        assert_eq!(parse_pause(&args(&["client", "pause", "10", "write"])), Ok((10, PauseMode::Write)));
        assert_eq!(parse_pause(&args(&["client", "pause", "0", "ALL"])), Ok((0, PauseMode::All)));
        assert_eq!(parse_pause(&args(&["client", "pause", "abc"])), Err(errors::error("ERR timeout is not an integer or out of range")));
        assert_eq!(parse_pause(&args(&["client", "pause", "-1"])), Err(errors::error("ERR timeout is negative")));
        assert_eq!(parse_pause(&args(&["client", "pause", "10", "foo"])), Err(errors::error("ERR CLIENT PAUSE mode must be WRITE or ALL")));
        assert_eq!(
            parse_pause(&args(&["client", "pause", "10", "write", "x"])),
            Err(errors::error("ERR unknown subcommand or wrong number of arguments for 'pause'. Try CLIENT HELP."))
        );
    }

    #[test]
    fn unblock_checks_the_reason_then_the_id() {
        assert_eq!(parse_unblock(&args(&["client", "unblock", "5"])), Ok((5, false)));
        assert_eq!(parse_unblock(&args(&["client", "unblock", "5", "error"])), Ok((5, true)));
        assert_eq!(parse_unblock(&args(&["client", "unblock", "x", "foo"])), Err(errors::error("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR")));
        assert_eq!(parse_unblock(&args(&["client", "unblock", "x"])), Err(errors::not_integer()));
    }
}
