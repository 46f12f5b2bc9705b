//! From a request to a route: table lookup, arity check, key extraction and owning cores
//! (Redis's `processCommand`, before anything runs). The runtime and the test harness both
//! start here, so they cannot disagree about where a command runs.

use bytes::Bytes;
use shoal_resp::Frame;

use crate::errors;
use crate::table::{self, flags, CommandSpec, Handler};

/// Where a command runs.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// `Handler::Keys` on one core: the owner of all its keys, or None for the connection's
    /// own core when it has no keys.
    Single(Option<usize>),
    /// A transaction over these cores (ascending).
    Multi(Vec<usize>),
    /// The connection layer handles it.
    Connection,
}

/// A request resolved against the table.
pub struct Resolved {
    /// The entry that runs: the command, or its subcommand.
    pub spec: &'static CommandSpec,
    pub route: Route,
}

/// Resolves `args` (a non-empty request) to its table entry and route, or the error reply.
pub fn resolve(args: &[Bytes], shard_count: usize) -> Result<Resolved, Frame> {
    let mut spec = table::lookup(&args[0]).ok_or_else(|| errors::unknown_command(args))?;
    if !spec.subcommands.is_empty() && args.len() >= 2 {
        spec = table::lookup_subcommand(spec, &args[1]).ok_or_else(|| errors::unknown_subcommand(spec.name, &args[1]))?;
    }
    if !spec.arity_ok(args.len()) {
        return Err(errors::wrong_arity(spec.name));
    }
    let route = match spec.handler {
        Handler::Connection => Route::Connection,
        // A request that may read keys its arguments do not name (SORT ... BY w_*) runs over
        // every core.
        _ if spec.all_shards_when.is_some_and(|all_shards| all_shards(args).is_some()) => Route::Multi((0..shard_count).collect()),
        Handler::Multi(_) if spec.has(flags::ALL_SHARDS) => Route::Multi((0..shard_count).collect()),
        Handler::Multi(_) => Route::Multi(shards_of(spec, args, shard_count)),
        // Blocking commands run as transactions: waiting needs their keys locked. One that
        // cannot wait (XREAD without BLOCK) on one core's keys runs as a plain command.
        Handler::Blocking(ops) => {
            let shards = shards_of(spec, args, shard_count);
            let never_waits = || matches!((ops.parse)(args), Ok(Some(timeout)) if timeout.is_zero());
            match shards.len() {
                0 | 1 if ops.at_once.is_some() && never_waits() => Route::Single(shards.first().copied()),
                _ => Route::Multi(shards),
            }
        }
        Handler::Keys { multi, .. } => {
            let shards = shards_of(spec, args, shard_count);
            match shards.len() {
                0 => Route::Single(None),
                1 => Route::Single(Some(shards[0])),
                _ if multi.is_some() => Route::Multi(shards),
                _ => return Err(errors::error("CROSSSLOT Keys in request don't hash to the same slot")),
            }
        }
    };
    Ok(Resolved { spec, route })
}

/// The key arguments of a request.
pub fn keys<'a>(spec: &CommandSpec, args: &'a [Bytes]) -> impl Iterator<Item = &'a Bytes> {
    table::key_positions(spec, args).into_iter().map(move |i| &args[i])
}

/// The keys a write may change, where it also reads keys it leaves alone (COPY's source,
/// SINTERSTORE's sets, SORT's list, ...): only these are signalled to WATCH, blocked clients
/// and tracking clients, as Redis signals only what it modified. Every key for the others.
pub fn written_keys<'a>(spec: &CommandSpec, args: &'a [Bytes]) -> Vec<&'a Bytes> {
    let store_target = |words: &[&str]| args.iter().position(|arg| words.iter().any(|word| crate::args::is(arg, word))).and_then(|i| args.get(i + 1));
    match spec.name {
        "copy" | "bitop" => args.get(2).into_iter().collect(),
        "sinterstore" | "sunionstore" | "sdiffstore" | "zunionstore" | "zinterstore" | "zdiffstore" | "zrangestore" | "geosearchstore" | "pfmerge" => {
            args.get(1).into_iter().collect()
        }
        // The destination first, as Redis signals them.
        "rpoplpush" | "lmove" | "brpoplpush" | "blmove" => args.get(2).into_iter().chain(args.get(1)).collect(),
        "sort" => store_target(&["store"]).into_iter().collect(),
        "georadius" | "georadiusbymember" => store_target(&["store", "storedist"]).into_iter().collect(),
        _ => keys(spec, args).collect(),
    }
}

/// The distinct cores owning the keys of a request, ascending.
pub fn shards_of(spec: &CommandSpec, args: &[Bytes], shard_count: usize) -> Vec<usize> {
    let mut shards: Vec<usize> = keys(spec, args).map(|k| shoal_store::slot::key_shard(k, shard_count)).collect();
    shards.sort_unstable();
    shards.dedup();
    shards
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(args: &[&str], shard_count: usize) -> Route {
        let args: Vec<Bytes> = args.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect();
        resolve(&args, shard_count).unwrap_or_else(|e| panic!("{args:?} resolves: {e:?}")).route
    }

    #[test]
    fn a_request_that_may_read_any_key_runs_over_every_core() {
        assert_eq!(route(&["SORT", "k", "BY", "w_*"], 4), Route::Multi(vec![0, 1, 2, 3]));
        assert_eq!(route(&["SORT_RO", "k", "GET", "h_*->f"], 3), Route::Multi(vec![0, 1, 2]));
        assert_eq!(route(&["SORT", "k", "BY", "w_*", "STORE", "d"], 1), Route::Multi(vec![0]));
    }

    #[test]
    fn a_request_that_reads_only_its_keys_is_routed_by_them() {
        let shard = shoal_store::slot::key_shard(b"k", 4);
        assert_eq!(route(&["SORT", "k"], 4), Route::Single(Some(shard)));
        // A BY pattern without `*` sorts nothing, and GET # is the element itself.
        assert_eq!(route(&["SORT", "k", "BY", "nosort", "GET", "#", "GET", "constant"], 4), Route::Single(Some(shard)));
        // A malformed request goes to the key's core, which reports the error.
        assert_eq!(route(&["SORT", "k", "BY"], 4), Route::Single(Some(shard)));
    }

    #[test]
    fn the_hook_says_whether_the_transaction_writes() {
        let spec = table::lookup(b"sort").unwrap();
        let all_shards = spec.all_shards_when.expect("SORT has the hook");
        let args = |list: &[&str]| -> Vec<Bytes> { list.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect() };
        assert_eq!(all_shards(&args(&["sort", "k", "by", "w_*", "store", "d"])), Some(true));
        assert_eq!(all_shards(&args(&["sort", "k", "get", "v_*"])), Some(false));
        assert_eq!(all_shards(&args(&["sort", "k", "store", "d"])), None);
        let spec = table::lookup(b"sort_ro").unwrap();
        let all_shards = spec.all_shards_when.expect("SORT_RO has the hook");
        assert_eq!(all_shards(&args(&["sort_ro", "k", "by", "w_*"])), Some(false));
        assert_eq!(all_shards(&args(&["sort_ro", "k", "by", "w_*", "store", "d"])), None, "STORE is a syntax error in SORT_RO");
    }
}
