//! The generic keyspace family: DEL, EXISTS, EXPIRE, RENAME, SCAN and friends (Redis's `db.c`
//! and `expire.c`).

use bytes::Bytes;
use futures::future::LocalBoxFuture;
use futures::FutureExt;
use shoal_resp::Frame;

use crate::ctx::{self, Coordinator, Ctx};
use crate::table::{flags::*, CommandSpec, Handler, KeySpec};

const BASE: CommandSpec = CommandSpec {
    name: "",
    arity: 0,
    flags: 0,
    keys: KeySpec::ONE,
    acl: &["@keyspace"],
    group: "generic",
    summary: "",
    since: "1.0.0",
    complexity: "O(1)",
    handler: Handler::Connection,
    subcommands: &[],
};

pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "del",
        arity: -2,
        flags: WRITE,
        keys: KeySpec::ALL,
        summary: "Deletes one or more keys.",
        complexity: "O(N) where N is the number of keys that will be removed.",
        handler: Handler::Keys { local: del, multi: Some(del_multi) },
        ..BASE
    },
    CommandSpec {
        name: "unlink",
        arity: -2,
        flags: WRITE | FAST,
        keys: KeySpec::ALL,
        summary: "Asynchronously deletes one or more keys.",
        since: "4.0.0",
        complexity: "O(1) for each key removed regardless of its size.",
        handler: Handler::Keys { local: del, multi: Some(del_multi) },
        ..BASE
    },
    CommandSpec {
        name: "exists",
        arity: -2,
        flags: READONLY | FAST,
        keys: KeySpec::ALL,
        summary: "Determines whether one or more keys exist.",
        complexity: "O(N) where N is the number of keys to check.",
        handler: Handler::Keys { local: exists, multi: Some(exists_multi) },
        ..BASE
    },
];

/// Removes `keys`; returns how many existed.
pub fn op_del(ctx: &mut Ctx, keys: &[Bytes]) -> usize {
    let now = ctx.now_ms;
    let db = ctx.db();
    keys.iter().filter(|k| db.lookup_write(k, now).is_some() && db.remove(k).is_some()).count()
}

/// DEL key [key ...]
fn del(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    Frame::Integer(op_del(ctx, &args[1..]) as i64)
}

/// Runs a counting op on every core's keys and adds the counts up.
fn count_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>, op: fn(&mut Ctx, &[Bytes]) -> usize) -> LocalBoxFuture<'_, Frame> {
    async move {
        let groups = ctx::group_by_shard(coordinator.shard_count(), args.into_iter().enumerate().skip(1));
        let counts = ctx::hop_per_shard(coordinator, groups, move |ctx, keys| op(ctx, &keys)).await;
        Frame::Integer(counts.iter().map(|(_, n)| *n as i64).sum())
    }
    .boxed_local()
}

fn del_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    count_multi(coordinator, args, op_del)
}

/// How many of `keys` exist, counting repeats.
pub fn op_exists(ctx: &mut Ctx, keys: &[Bytes]) -> usize {
    let now = ctx.now_ms;
    let db = ctx.db();
    keys.iter().filter(|k| db.lookup_read(k, now).is_some()).count()
}

/// EXISTS key [key ...]
fn exists(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    Frame::Integer(op_exists(ctx, &args[1..]) as i64)
}

fn exists_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    count_multi(coordinator, args, op_exists)
}

#[cfg(test)]
mod tests {
    use crate::testing::check;
    use shoal_resp::Frame;

    #[test]
    fn del_counts_existing_keys_across_shards() {
        check(&[&["MSET", "a", "1", "b", "2", "c", "3"], &["DEL", "a", "b", "x", "c"], &["EXISTS", "a", "b", "c"]], &[Frame::Simple("OK".into()), Frame::Integer(3), Frame::Integer(0)]);
    }

    #[test]
    fn exists_counts_repeated_keys_each_time() {
        check(&[&["SET", "a", "1"], &["EXISTS", "a", "a", "b"]], &[Frame::Simple("OK".into()), Frame::Integer(2)]);
    }
}
