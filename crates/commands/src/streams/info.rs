//! XINFO STREAM [FULL [COUNT n]], XINFO GROUPS, XINFO CONSUMERS and XINFO HELP, with the
//! fields of the current Redis documentation (7.2 added `active-time` and `inactive`).
//!
//! `radix-tree-keys` counts the listpack nodes the stream's model holds, as Redis's radix tree
//! holds them; `radix-tree-nodes`, the tree's inner node count, has no counterpart here and
//! is estimated (a key per node and a root).

use bytes::Bytes;
use shoal_resp::Frame;
use shoal_store::types::stream::{Group, Stream, StreamId};

use super::{entry_frame, id_frame, read_stream};
use crate::args;
use crate::ctx::Ctx;
use crate::errors;
use crate::table::{flags::*, CommandSpec, Handler, KeySpec};

const SUBCOMMAND_KEY: KeySpec = KeySpec { first: 2, last: 2, step: 1 };
const BASE: CommandSpec = CommandSpec { keys: SUBCOMMAND_KEY, acl: &["@stream"], group: "stream", since: "5.0.0", ..CommandSpec::DEFAULT };

pub const COMMANDS: &[CommandSpec] = &[CommandSpec {
    name: "xinfo",
    arity: -2,
    flags: 0,
    keys: KeySpec::NONE,
    acl: &[],
    summary: "A container for stream introspection commands",
    complexity: "Depends on subcommand.",
    handler: Handler::Keys { local: xinfo, multi: None },
    subcommands: XINFO_SUBCOMMANDS,
    ..BASE
}];

const XINFO_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "xinfo|consumers",
        arity: 4,
        flags: READONLY,
        summary: "List the consumers in a consumer group",
        complexity: "O(1)",
        handler: Handler::Keys { local: xinfo_consumers, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "xinfo|groups",
        arity: 3,
        flags: READONLY,
        summary: "List the consumer groups of a stream",
        complexity: "O(1)",
        handler: Handler::Keys { local: xinfo_groups, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "xinfo|help",
        arity: 2,
        flags: LOADING | STALE,
        keys: KeySpec::NONE,
        summary: "Show helpful text about the different subcommands",
        complexity: "O(1)",
        handler: Handler::Keys { local: xinfo_help, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "xinfo|stream",
        arity: -3,
        flags: READONLY,
        summary: "Get information about a stream",
        complexity: "O(1)",
        handler: Handler::Keys { local: xinfo_stream, multi: None },
        ..BASE
    },
];

/// XINFO (without a subcommand; the dispatcher's arity check answers first).
fn xinfo(_ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    errors::wrong_arity("xinfo")
}

fn xinfo_help(_ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    const LINES: &[&str] = &[
        "XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "CONSUMERS <key> <groupname>",
        "    Show consumers of <groupname>.",
        "GROUPS <key>",
        "    Show the stream consumer groups.",
        "STREAM <key> [FULL [COUNT <count>]",
        "    Show information about the stream.",
        "HELP",
        "    Prints this help.",
    ];
    Frame::Array(LINES.iter().map(|line| Frame::Simple(Bytes::from_static(line.as_bytes()))).collect())
}

fn bulk(text: &str) -> Frame {
    Frame::Bulk(Bytes::copy_from_slice(text.as_bytes()))
}

fn map(pairs: Vec<(&str, Frame)>) -> Frame {
    Frame::Map(pairs.into_iter().map(|(name, value)| (bulk(name), value)).collect())
}

fn number(n: u64) -> Frame {
    args::int(n.min(i64::MAX as u64) as i64)
}

/// The group's lag behind the stream (Redis's `streamReplyWithCGLag`): null when unknown.
fn lag(stream: &Stream, group: &Group) -> Frame {
    if stream.entries_added == 0 {
        return Frame::Integer(0);
    }
    let read = match group.entries_read {
        Some(read) if !stream.has_tombstones_from(group.last_id) => Some(read),
        _ => stream.entries_before_or_at(group.last_id),
    };
    match read {
        Some(read) => args::int(stream.entries_added as i64 - read as i64),
        None => Frame::Null,
    }
}

fn entries_read(group: &Group) -> Frame {
    group.entries_read.map_or(Frame::Null, number)
}

/// The stream at `args[2]`, or `ERR no such key`.
fn stream_arg<'a>(ctx: &'a mut Ctx, args: &[Bytes]) -> Result<&'a Stream, Frame> {
    let now = ctx.now_ms;
    read_stream(ctx.db(), &args[2], now)?.ok_or_else(|| errors::error("ERR no such key"))
}

/// XINFO STREAM key [FULL [COUNT count]]
fn xinfo_stream(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    // The key first, then the options, as Redis.
    let stream = match stream_arg(ctx, args) {
        Ok(stream) => stream,
        Err(error) => return error,
    };
    let options = &args[3..];
    let full = !options.is_empty();
    let mut count = 10;
    if full && ((options.len() != 1 && options.len() != 3) || !args::is(&options[0], "full") || (options.len() == 3 && !args::is(&options[1], "count"))) {
        return errors::subcommand_syntax(args);
    }
    if options.len() == 3 {
        count = match args::parse_i64(&options[2]) {
            Ok(n) if n < 0 => 10,
            Ok(n) => n as usize,
            Err(error) => return error,
        };
    }
    let limit = if count == 0 { usize::MAX } else { count };
    let keys = stream.nodes().count() as u64;
    let mut pairs = vec![
        ("length", number(stream.len() as u64)),
        ("radix-tree-keys", number(keys)),
        ("radix-tree-nodes", number(keys + 1)),
        ("last-generated-id", id_frame(stream.last_id)),
        ("max-deleted-entry-id", id_frame(stream.max_deleted_id)),
        ("entries-added", number(stream.entries_added)),
        ("recorded-first-entry-id", id_frame(stream.first_id())),
    ];
    if !full {
        let entry = |found: Option<(StreamId, shoal_store::types::stream::Entry<'_>)>| found.map_or(Frame::Null, |(id, fields)| entry_frame(id, fields));
        pairs.push(("groups", number(stream.groups.len() as u64)));
        pairs.push(("first-entry", entry(stream.first())));
        pairs.push(("last-entry", entry(stream.last())));
        return map(pairs);
    }
    pairs.push(("entries", Frame::Array(stream.range(StreamId::MIN, StreamId::MAX, false).take(limit).map(|(id, fields)| entry_frame(id, fields)).collect())));
    let groups = stream
        .groups
        .iter()
        .map(|(name, group)| {
            let pel = group
                .pending
                .iter()
                .take(limit)
                .map(|(id, p)| {
                    Frame::Array(vec![id_frame(*id), Frame::Bulk(Bytes::copy_from_slice(&p.consumer)), number(p.delivery_time_ms), number(p.delivery_count)])
                })
                .collect();
            let consumers = group
                .consumers
                .iter()
                .map(|(name, consumer)| {
                    let pel = consumer
                        .pending
                        .iter()
                        .take(limit)
                        .map(|id| {
                            let p = &group.pending[id];
                            Frame::Array(vec![id_frame(*id), number(p.delivery_time_ms), number(p.delivery_count)])
                        })
                        .collect();
                    map(vec![
                        ("name", Frame::Bulk(Bytes::copy_from_slice(name))),
                        ("seen-time", number(consumer.seen_time_ms)),
                        ("active-time", consumer.active_time_ms.map_or(Frame::Integer(-1), number)),
                        ("pel-count", number(consumer.pending.len() as u64)),
                        ("pending", Frame::Array(pel)),
                    ])
                })
                .collect();
            map(vec![
                ("name", Frame::Bulk(Bytes::copy_from_slice(name))),
                ("last-delivered-id", id_frame(group.last_id)),
                ("entries-read", entries_read(group)),
                ("lag", lag(stream, group)),
                ("pel-count", number(group.pending.len() as u64)),
                ("pending", Frame::Array(pel)),
                ("consumers", Frame::Array(consumers)),
            ])
        })
        .collect();
    pairs.push(("groups", Frame::Array(groups)));
    map(pairs)
}

/// XINFO GROUPS key
fn xinfo_groups(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let stream = match stream_arg(ctx, args) {
        Ok(stream) => stream,
        Err(error) => return error,
    };
    Frame::Array(
        stream
            .groups
            .iter()
            .map(|(name, group)| {
                map(vec![
                    ("name", Frame::Bulk(Bytes::copy_from_slice(name))),
                    ("consumers", number(group.consumers.len() as u64)),
                    ("pending", number(group.pending.len() as u64)),
                    ("last-delivered-id", id_frame(group.last_id)),
                    ("entries-read", entries_read(group)),
                    ("lag", lag(stream, group)),
                ])
            })
            .collect(),
    )
}

/// XINFO CONSUMERS key group
fn xinfo_consumers(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let now = ctx.now_ms;
    let stream = match stream_arg(ctx, args) {
        Ok(stream) => stream,
        Err(error) => return error,
    };
    let Some(group) = stream.groups.get(args[3].as_ref()) else {
        return errors::error(&format!(
            "NOGROUP No such consumer group '{}' for key name '{}'",
            String::from_utf8_lossy(&args[3]),
            String::from_utf8_lossy(&args[2])
        ));
    };
    let since = |at: u64| args::int((now as i64 - at as i64).max(0));
    Frame::Array(
        group
            .consumers
            .iter()
            .map(|(name, consumer)| {
                map(vec![
                    ("name", Frame::Bulk(Bytes::copy_from_slice(name))),
                    ("pending", number(consumer.pending.len() as u64)),
                    ("idle", since(consumer.seen_time_ms)),
                    ("inactive", consumer.active_time_ms.map_or(Frame::Integer(-1), since)),
                ])
            })
            .collect(),
    )
}
