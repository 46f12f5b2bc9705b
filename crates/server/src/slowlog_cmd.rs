//! SLOWLOG GET, LEN, RESET and HELP over every core's log (see `shoal_runtime::slowlog`).
//!
//! Entries name their client by id. Its address and name are looked up on the cores when
//! SLOWLOG GET asks (so a name set since shows; Redis shows the name the client had when the
//! command ran): among the connected clients, or among the last [`DEPARTED_MAX`] that left
//! each core (an entry older than that, of a client gone since, shows an empty address and
//! name).

use std::collections::VecDeque;
use std::rc::Rc;

use bytes::Bytes;
use shoal_commands::args;
use shoal_commands::errors;
use shoal_commands::CommandSpec;
use shoal_resp::Frame;
use shoal_runtime::slowlog::{Entry, NO_CLIENT};

use crate::node::{self, Node};
use crate::server_commands::{bulk, help, subcommand_syntax_error};

/// How many clients that left a core it remembers, for the entries that name them.
pub const DEPARTED_MAX: usize = 1024;

/// A client's address and name, as an entry shows them.
type Ident = (u64, String, String);

/// The clients that left a core, newest first (see [`remember_departed`]).
#[derive(Default)]
pub struct Departed(std::cell::RefCell<VecDeque<Ident>>);

/// Keeps a leaving client's address and name, for slow log entries that name it.
pub fn remember_departed(node: &Node, id: u64, addr: &str, name: &str) {
    let mut departed = node.departed.0.borrow_mut();
    departed.push_front((id, addr.to_string(), name.to_string()));
    departed.truncate(DEPARTED_MAX);
}

pub async fn slowlog(node: &Rc<Node>, spec: &'static CommandSpec, args: &[Bytes]) -> Frame {
    match spec.name {
        "slowlog|get" => get(node, args).await,
        "slowlog|len" => {
            let max_len = node.config.borrow().slowlog_max_len as usize;
            let lens = node.core.call_all(|core| core.slowlog.len()).await;
            args::int(lens.into_iter().sum::<usize>().min(max_len))
        }
        "slowlog|reset" => {
            node.core.call_all(|core| core.slowlog.reset()).await;
            args::ok()
        }
        "slowlog|help" => help(
            "SLOWLOG",
            &[
                "GET [<count>]",
                "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
                "    Entries are made of:",
                "    id, timestamp, time in microseconds, arguments array, client IP and port,",
                "    client name",
                "LEN",
                "    Return the length of the slowlog.",
                "RESET",
                "    Reset the slowlog.",
            ],
        ),
        _ => unreachable!("{} is a SLOWLOG subcommand", spec.name),
    }
}

/// SLOWLOG GET [count]: the newest entries of all cores, newest first.
async fn get(node: &Rc<Node>, args: &[Bytes]) -> Frame {
    let max_len = node.config.borrow().slowlog_max_len as usize;
    let count = match args.len() {
        2 => 10,
        3 => match args::parse_i64(&args[2]) {
            Ok(-1) => max_len,
            Ok(count) if count >= 0 => (count as usize).min(max_len),
            _ => return errors::error("ERR count should be greater than or equal to -1"),
        },
        _ => return subcommand_syntax_error(args),
    };
    let per_core = node.core.call_all(move |core| core.slowlog.newest(count)).await;
    let mut entries: Vec<Entry> = per_core.into_iter().flatten().collect();
    entries.sort_by_key(|entry| std::cmp::Reverse(entry.id));
    entries.truncate(count);
    let mut wanted: Vec<u64> = entries.iter().map(|e| e.client).filter(|&id| id != NO_CLIENT).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let idents: Vec<Ident> = node
        .core
        .call_all(move |_| {
            let node = node::current();
            let clients = node.clients.borrow();
            let departed = node.departed.0.borrow();
            wanted
                .iter()
                .filter_map(|id| match clients.get(id) {
                    Some(client) => Some((*id, client.addr.clone(), client.name.borrow().clone())),
                    None => departed.iter().find(|(gone, _, _)| gone == id).cloned(),
                })
                .collect::<Vec<_>>()
        })
        .await
        .into_iter()
        .flatten()
        .collect();
    let ident = |client: u64| -> (String, String) {
        if client == NO_CLIENT {
            return ("?:0".to_string(), String::new());
        }
        idents.iter().find(|(id, _, _)| *id == client).map_or_else(Default::default, |(_, addr, name)| (addr.clone(), name.clone()))
    };
    Frame::Array(
        entries
            .into_iter()
            .map(|entry| {
                let (addr, name) = ident(entry.client);
                Frame::Array(vec![
                    Frame::Integer(entry.id as i64),
                    Frame::Integer(entry.time as i64),
                    Frame::Integer(entry.micros as i64),
                    Frame::Array(entry.args.into_iter().map(Frame::Bulk).collect()),
                    bulk(addr),
                    bulk(name),
                ])
            })
            .collect(),
    )
}
