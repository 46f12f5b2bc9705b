//! Server-wide keyspace commands that run on every core: DBSIZE, FLUSHDB, FLUSHALL, SWAPDB.
//!
//! Each core holds its slice of every database, so these run as one hop on every core with
//! the whole of each core locked; no core ever sees another core's half-done change.

use bytes::Bytes;
use futures::future::LocalBoxFuture;
use futures::FutureExt;
use shoal_resp::Frame;
use shoal_store::Shard;

use crate::args::{self, is};
use crate::ctx::{self, Coordinator, Ctx};
use crate::errors;
use crate::table::{flags::*, CommandSpec, Handler};

const BASE: CommandSpec = CommandSpec { acl: &["@keyspace"], group: "server", ..CommandSpec::DEFAULT };

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
    CommandSpec {
        name: "swapdb",
        arity: 3,
        flags: WRITE | FAST | ALL_SHARDS,
        acl: &["@keyspace", "@dangerous"],
        summary: "Swaps two Redis databases.",
        since: "4.0.0",
        complexity: "O(N) where N is the count of clients watching or blocking on keys from both databases.",
        handler: Handler::Multi(swapdb),
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

/// Parses the optional ASYNC | SYNC argument of FLUSHDB and FLUSHALL: Some(true) for
/// ASYNC, Some(false) for SYNC, None for neither (`lazyfree-lazy-user-flush` decides).
fn flush_mode(args: &[Bytes]) -> Result<Option<bool>, Frame> {
    match args.len() {
        1 => Ok(None),
        2 if is(&args[1], "async") => Ok(Some(true)),
        2 if is(&args[1], "sync") => Ok(Some(false)),
        _ => Err(errors::syntax()),
    }
}

/// FLUSHDB [ASYNC | SYNC]
fn flushdb(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    async move {
        let mode = match flush_mode(&args) {
            Ok(mode) => mode,
            Err(e) => return e,
        };
        ctx::hop_all(coordinator, move |ctx: &mut Ctx| {
            let lazy = mode.unwrap_or(ctx.settings.lazyfree_lazy_user_flush);
            let index = ctx.db_index;
            // One change per key removed, expired or not (Redis's `emptyData` count).
            let removed = ctx.shard.dbs[index].len() as u64;
            ctx.shard.flush_db(index, lazy);
            ctx.shard.dbs[index].add_changes(removed);
        })
        .await;
        args::ok()
    }
    .boxed_local()
}

/// FLUSHALL [ASYNC | SYNC]
fn flushall(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    async move {
        let mode = match flush_mode(&args) {
            Ok(mode) => mode,
            Err(e) => return e,
        };
        ctx::hop_all(coordinator, move |ctx: &mut Ctx| {
            let lazy = mode.unwrap_or(ctx.settings.lazyfree_lazy_user_flush);
            for index in 0..ctx.shard.dbs.len() {
                // One change per key removed, expired or not (Redis's `emptyData` count).
                let removed = ctx.shard.dbs[index].len() as u64;
                ctx.shard.flush_db(index, lazy);
                ctx.shard.dbs[index].add_changes(removed);
            }
        })
        .await;
        args::ok()
    }
    .boxed_local()
}

/// Swaps databases `first` and `second` on this core; false, changing nothing, when either
/// index is out of range.
pub fn op_swapdb(shard: &mut Shard, first: i32, second: i32) -> bool {
    let db_count = shard.dbs.len();
    let index = |i: i32| usize::try_from(i).ok().filter(|&i| i < db_count);
    let (Some(first), Some(second)) = (index(first), index(second)) else {
        return false;
    };
    shard.dbs.swap(first, second);
    // One change for the whole server, counted on the first core.
    if shard.id == 0 {
        shard.dbs[first].add_changes(1);
    }
    true
}

/// Parses a SWAPDB index: any failure, even an integer beyond 32 bits, gets `error`.
fn swapdb_index(arg: &[u8], error: &str) -> Result<i32, Frame> {
    args::parse_i32(arg).map_err(|_| errors::error(error))
}

/// SWAPDB index1 index2
fn swapdb(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    async move {
        let first = match swapdb_index(&args[1], errors::INVALID_FIRST_DB_INDEX) {
            Ok(index) => index,
            Err(e) => return e,
        };
        let second = match swapdb_index(&args[2], errors::INVALID_SECOND_DB_INDEX) {
            Ok(index) => index,
            Err(e) => return e,
        };
        let swapped = ctx::hop_all(coordinator, move |ctx: &mut Ctx| op_swapdb(ctx.shard, first, second)).await;
        // Every core has the same databases, so they all agree.
        debug_assert!(swapped.windows(2).all(|w| w[0] == w[1]), "every core swaps or none does");
        if swapped.first().copied().unwrap_or(false) {
            args::ok()
        } else {
            errors::error(errors::DB_INDEX_OUT_OF_RANGE)
        }
    }
    .boxed_local()
}

#[cfg(test)]
mod tests {
    use crate::testing::replies::*;
    use shoal_resp::Frame;

    use crate::testing::{check, check_db};

    #[test]
    fn swapdb_swaps_databases_on_every_core() {
        check_db(
            &[
                (0, &["MSET", "foo", "0", "bar", "0", "baz", "0"]),
                (1, &["SET", "qux", "1", "EX", "100"]),
                (0, &["SWAPDB", "0", "1"]),
                (0, &["EXISTS", "foo", "bar", "baz", "qux"]),
                (0, &["TTL", "qux"]),
                (1, &["EXISTS", "foo", "bar", "baz", "qux"]),
                (0, &["DBSIZE"]),
                (1, &["DBSIZE"]),
                (0, &["SWAPDB", "1", "0"]),
                (0, &["DBSIZE"]),
            ],
            &[ok(), ok(), ok(), Frame::Integer(1), Frame::Integer(100), Frame::Integer(3), Frame::Integer(1), Frame::Integer(3), ok(), Frame::Integer(3)],
        );
    }

    #[test]
    fn swapdb_of_a_database_with_itself_is_ok() {
        check(&[&["SET", "foo", "v"], &["SWAPDB", "0", "0"], &["GET", "foo"]], &[ok(), ok(), Frame::Bulk("v".into())]);
    }

    #[test]
    fn swapdb_names_the_bad_index() {
        let out_of_range = err("ERR DB index is out of range");
        check(
            &[
                &["SWAPDB", "x", "1"],
                &["SWAPDB", "0", "x"],
                &["SWAPDB", "x", "y"],
                &["SWAPDB", "16", "x"],
                &["SWAPDB", "4294967296", "0"],
                &["SWAPDB", "0", "-4294967296"],
                &["SWAPDB", "0", "16"],
                &["SWAPDB", "-1", "0"],
                &["SWAPDB", "16", "16"],
            ],
            &[
                err("ERR invalid first DB index"),
                err("ERR invalid second DB index"),
                err("ERR invalid first DB index"),
                err("ERR invalid second DB index"),
                err("ERR invalid first DB index"),
                err("ERR invalid second DB index"),
                out_of_range.clone(),
                out_of_range.clone(),
                out_of_range,
            ],
        );
    }

    #[test]
    fn swapdb_out_of_range_changes_nothing() {
        check_db(
            &[(0, &["SET", "foo", "v"]), (0, &["SWAPDB", "0", "16"]), (0, &["GET", "foo"])],
            &[ok(), err("ERR DB index is out of range"), Frame::Bulk("v".into())],
        );
    }
}
