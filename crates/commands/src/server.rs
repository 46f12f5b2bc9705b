//! Server-wide keyspace commands that run on every core: DBSIZE, FLUSHDB, FLUSHALL.

use bytes::Bytes;
use futures::future::LocalBoxFuture;
use futures::FutureExt;
use shoal_resp::Frame;

use crate::args::{self, is};
use crate::ctx::{self, Coordinator, Ctx};
use crate::errors;
use crate::table::{flags::*, CommandSpec, Handler, KeySpec};

const BASE: CommandSpec = CommandSpec {
    name: "",
    arity: 0,
    flags: 0,
    keys: KeySpec::NONE,
    acl: &["@keyspace"],
    group: "server",
    summary: "",
    since: "1.0.0",
    complexity: "O(1)",
    handler: Handler::Connection,
    subcommands: &[],
};

pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "dbsize",
        arity: 1,
        flags: READONLY | FAST | ALL_SHARDS,
        summary: "Returns the number of keys in the database.",
        handler: Handler::Multi(dbsize),
        ..BASE
    },
    CommandSpec {
        name: "flushdb",
        arity: -1,
        flags: WRITE | ALL_SHARDS,
        acl: &["@keyspace", "@dangerous"],
        summary: "Removes all keys from the current database.",
        complexity: "O(N) where N is the number of keys in the selected database",
        handler: Handler::Multi(flushdb),
        ..BASE
    },
    CommandSpec {
        name: "flushall",
        arity: -1,
        flags: WRITE | ALL_SHARDS,
        acl: &["@keyspace", "@dangerous"],
        summary: "Removes all keys from all databases.",
        complexity: "O(N) where N is the total number of keys in all databases",
        handler: Handler::Multi(flushall),
        ..BASE
    },
];

/// DBSIZE
fn dbsize(coordinator: &dyn Coordinator, _args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    async move {
        let sizes = ctx::hop_all(coordinator, |ctx: &mut Ctx| ctx.db().len()).await;
        args::int(sizes.iter().sum::<usize>())
    }
    .boxed_local()
}

/// Parses the optional ASYNC | SYNC argument of FLUSHDB and FLUSHALL.
fn flush_mode(args: &[Bytes]) -> Result<(), Frame> {
    match args.len() {
        1 => Ok(()),
        2 if is(&args[1], "async") || is(&args[1], "sync") => Ok(()),
        _ => Err(errors::syntax()),
    }
}

/// FLUSHDB [ASYNC | SYNC]
fn flushdb(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    async move {
        if let Err(e) = flush_mode(&args) {
            return e;
        }
        ctx::hop_all(coordinator, |ctx: &mut Ctx| drop(ctx.db().clear())).await;
        args::ok()
    }
    .boxed_local()
}

/// FLUSHALL [ASYNC | SYNC]
fn flushall(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    async move {
        if let Err(e) = flush_mode(&args) {
            return e;
        }
        ctx::hop_all(coordinator, |ctx: &mut Ctx| {
            for db in &mut ctx.shard.dbs {
                drop(db.clear());
            }
        })
        .await;
        args::ok()
    }
    .boxed_local()
}
