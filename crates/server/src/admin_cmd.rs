//! Administrative commands, and those of features Shoal does not run yet, answered as Redis
//! answers with the feature off (their table entries are in `shoal_commands::admin`):
//!
//! - WAIT counts the replicas that acknowledged the connection's writes
//!   (`crate::replication::wait`); WAITAOF the local fsync of them and the replicas whose
//!   append-only file holds them (see [`waitaof`]). Both are refused on a replica.
//! - ACL: the only user is `default`, with every permission, and the password `requirepass`
//!   gives it. The read-only subcommands answer as Redis does for that user, ACL LOG lists
//!   failed authentications (`crate::acl_log`); creating users (SETUSER) is not
//!   implemented, and SETUSER says so.
//! - MEMORY DOCTOR, MALLOC-STATS, PURGE and HELP (MEMORY USAGE runs on the key's core, in
//!   `shoal_commands::admin`): the allocator is mimalloc, so MALLOC-STATS prints its
//!   statistics and PURGE makes every core's heap return what it can. DOCTOR tells an empty
//!   instance from one with data, and finds no issue in the latter (Redis also looks at
//!   fragmentation, peaks and buffers; Shoal does not yet). MEMORY STATS reports
//!   [`crate::memory_stats`]'s figures.
//! - MONITOR: entering and leaving it (the lines: `shoal_runtime::monitor`).

use std::time::Duration;

use bytes::Bytes;
use futures::future::{select, Either, LocalBoxFuture};
use futures::FutureExt;
use sha2::{Digest, Sha256};
use shoal_commands::args;
use shoal_commands::errors;
use shoal_commands::table::{self, CommandSpec};
use shoal_resp::Frame;

use crate::node::Node;
use crate::server_commands::{bulk, help, subcommand_syntax_error, text};

pub const CLUSTER_DISABLED: &str = "ERR This instance has cluster support disabled";

const NO_ACL_FILE: &str = "ERR This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration.";

/// Redis's ACL categories, in the order ACL CAT lists them.
const CATEGORIES: &[&str] = &[
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

/// Whether `name` is a command this module answers.
pub fn handles(name: &str) -> bool {
    matches!(name, "readonly" | "readwrite" | "asking" | "wait" | "waitaof" | "replicaof" | "slaveof" | "failover")
        || ["cluster|", "acl|", "memory|", "module|"].iter().any(|family| name.starts_with(family))
}

/// Redis's refusal of WAIT on a replica.
const WAIT_ON_A_REPLICA: &str = "ERR WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated.";

/// Runs one of [`handles`]'s commands, except a WAIT or WAITAOF that may block (the
/// connection runs those, see [`wait`] and [`waitaof`]): these never block.
pub async fn run(node: &std::rc::Rc<Node>, spec: &'static CommandSpec, args: &[Bytes]) -> Frame {
    match spec.name {
        "wait" if crate::replica::is_replica() => errors::error(WAIT_ON_A_REPLICA),
        "wait" => match parse_wait(args) {
            // Inside MULTI or a script WAIT never blocks, as in Redis.
            Ok(_) => Frame::Integer(0),
            Err(error) => error,
        },
        "waitaof" => waitaof_in_exec(node, args),
        "acl|log" => crate::acl_log::acl_log(node, args).await,
        "memory|purge" => memory_purge(node).await,
        "memory|doctor" => memory_doctor(node).await,
        "memory|stats" => memory_stats(node).await,
        name if name.starts_with("acl|") => acl(node, spec, args),
        name if name.starts_with("memory|") => memory(spec),
        name if name.starts_with("module|") => module(spec),
        "replicaof" | "slaveof" if crate::cluster::enabled() => errors::error("ERR REPLICAOF not allowed in cluster mode."),
        "replicaof" | "slaveof" => crate::replica::replicaof(node, args).await,
        "failover" => crate::replication::failover(node, args).await,
        _ => errors::error(CLUSTER_DISABLED),
    }
}

/// WAIT numreplicas timeout: the number of replicas that acknowledged this connection's
/// writes (logged up to `marks`, None: it wrote nothing), once enough did or the timeout
/// (milliseconds; 0: forever) passed, or `interrupted` completes (CLIENT UNBLOCK, kill,
/// close: see the connection).
pub async fn wait(node: &std::rc::Rc<Node>, marks: Option<Vec<u64>>, args: &[Bytes], interrupted: LocalBoxFuture<'_, Option<Frame>>) -> Frame {
    if crate::replica::is_replica() {
        return errors::error(WAIT_ON_A_REPLICA);
    }
    let (wanted, timeout) = match parse_wait(args) {
        Ok(parsed) => parsed,
        Err(error) => return error,
    };
    crate::replication::wait(node, marks, wanted, timeout, interrupted).await
}

/// WAITAOF numlocal numreplicas timeout: [1 if this connection's writes are fsynced to the
/// append-only file, replicas that said (`REPLCONF ACK ... FACK <offset>`) their file holds
/// them], once enough are or the timeout passes. `written` is what the connection's commands logged. Without
/// `interrupted` (inside MULTI) it never waits. Under `appendfsync no` a write counts once written: Shoal never
/// fsyncs then, and the kernel decides.
pub async fn waitaof(node: &std::rc::Rc<Node>, written: Written<'_>, args: &[Bytes], interrupted: Option<LocalBoxFuture<'_, Option<Frame>>>) -> Frame {
    const OUT_OF_RANGE: &str = "ERR value is out of range, must be positive";
    let mut counts = [0i64; 2];
    for (count, arg) in counts.iter_mut().zip(&args[1..3]) {
        *count = match args::parse_i64(arg) {
            Ok(n) if n < 0 => return errors::error(OUT_OF_RANGE),
            Ok(n) => n,
            Err(error) => return error,
        };
    }
    let [local, replicas] = counts;
    let timeout = match args::parse_i64(&args[3]) {
        Err(_) => return errors::error("ERR timeout is not an integer or out of range"),
        Ok(t) if t < 0 => return errors::error("ERR timeout is negative"),
        Ok(t) => (t > 0).then(|| Duration::from_millis(t as u64)),
    };
    if crate::replica::is_replica() {
        return errors::error(
            "ERR WAITAOF cannot be used with replica instances. Please also note that writes to replicas are just local and are not propagated.",
        );
    }
    let logging = node.config.borrow().appendonly;
    if local > 0 && !logging {
        return errors::error("ERR WAITAOF cannot be used when numlocal is set but appendonly is disabled.");
    }
    let synced = || {
        let done = match written {
            Written::Nothing => true,
            Written::UpTo(marks) => shoal_runtime::aof::LOG.synced_up_to(marks),
            Written::NotYetLogged => false,
        };
        i64::from(logging && done)
    };
    // Where the connection's writes end in the replication stream: a replica counts once
    // its `FACK` reaches there (None: not logged yet, no replica counts).
    let target = match written {
        Written::Nothing => Some(0),
        Written::UpTo(marks) => Some(crate::replication::offset_of(node, Some(marks)).await),
        Written::NotYetLogged => None,
    };
    let fsynced_replicas = || target.map_or(0, crate::replication::fsynced_replicas);
    let done = || synced() >= local && fsynced_replicas() >= replicas;
    if let Some(interrupted) = interrupted.filter(|_| !done()) {
        let timer = match timeout {
            Some(timeout) => glommio::timer::sleep(timeout).boxed_local(),
            None => futures::future::pending().boxed_local(),
        };
        let fsynced = async {
            match written {
                Written::UpTo(marks) if replicas == 0 && local <= 1 => node.core.aof_synced(marks).await,
                // The replicas' acknowledgements arrive on their cores: look every millisecond.
                _ if replicas > 0 && target.is_some() => {
                    crate::replication::ask_for_acks(node).await;
                    while !done() {
                        glommio::timer::sleep(Duration::from_millis(1)).await;
                    }
                }
                _ => std::future::pending().await,
            }
        };
        if let Either::Left((Some(error), _)) = select(interrupted, select(timer, std::pin::pin!(fsynced))).await {
            return error;
        }
    }
    Frame::Array(vec![Frame::Integer(synced()), Frame::Integer(fsynced_replicas())])
}

/// WAITAOF inside MULTI: answers at once. An EXEC logs its writes when it ends, so inside
/// one the connection's writes are never known to be fsynced yet (Redis answers 1 when the
/// EXEC wrote nothing before it; Shoal answers 0 then too, never claiming more).
fn waitaof_in_exec(node: &std::rc::Rc<Node>, args: &[Bytes]) -> Frame {
    waitaof(node, Written::NotYetLogged, args, None).now_or_never().expect("WAITAOF without a wait answers at once")
}

/// Where the log's streams stand once everything this core's commands logged is in them: a
/// transaction over several cores leaves its marks in the other cores' streams when they
/// handle its release, which a round trip to every core waits for (messages between two
/// cores keep their order). So a connection's writes are all before these marks (and
/// others' too: WAITAOF may wait for more than its own connection's writes, never less).
pub async fn logged_so_far(node: &Node) -> Vec<u64> {
    node.core.call_all(|_| ()).await;
    shoal_runtime::aof::LOG.appended()
}

/// What a connection wrote, as WAITAOF sees it.
pub enum Written<'a> {
    /// Nothing yet.
    Nothing,
    /// Commands logged up to these marks of the log's streams (see [`logged_so_far`]).
    UpTo(&'a [u64]),
    /// Writes the log does not hold yet (an EXEC's, logged when it ends).
    NotYetLogged,
}

/// WAIT's arguments: the replicas asked for and the timeout (`None`: forever).
fn parse_wait(args: &[Bytes]) -> Result<(i64, Option<Duration>), Frame> {
    let wanted = args::parse_i64(&args[1])?;
    let timeout = args::parse_i64(&args[2]).map_err(|_| errors::error("ERR timeout is not an integer or out of range"))?;
    if timeout < 0 {
        return Err(errors::error("ERR timeout is negative"));
    }
    Ok((wanted, (timeout > 0).then(|| Duration::from_millis(timeout as u64))))
}

fn acl(node: &Node, spec: &'static CommandSpec, args: &[Bytes]) -> Frame {
    match spec.name {
        "acl|whoami" => bulk("default"),
        "acl|users" => Frame::Array(vec![bulk("default")]),
        "acl|list" => Frame::Array(vec![bulk(format!("user default on {} ~* &* +@all", password_rule(node)))]),
        "acl|getuser" => getuser(node, &args[2]),
        "acl|cat" => cat(args),
        "acl|genpass" => genpass(args),
        "acl|dryrun" => dryrun(args),
        "acl|deluser" => deluser(args),
        "acl|save" | "acl|load" => errors::error(NO_ACL_FILE),
        "acl|setuser" => errors::error("ERR ACL SETUSER is not supported: the only user is 'default' (its password is requirepass)"),
        "acl|help" => help(
            "ACL",
            &[
                "CAT [<category>]",
                "    List all commands that belong to <category>, or all command categories",
                "    when no category is specified.",
                "DELUSER <username> [<username> ...]",
                "    Delete a list of users.",
                "DRYRUN <username> <command> [<arg> ...]",
                "    Returns whether the user can execute the given command without executing the command.",
                "GETUSER <username>",
                "    Get the user's details.",
                "GENPASS [<bits>]",
                "    Generate a secure 256-bit user password. The optional `bits` argument can",
                "    be used to specify a different size.",
                "LIST",
                "    Show users details in config file format.",
                "LOAD",
                "    Reload users from the ACL file.",
                "LOG [<count> | RESET]",
                "    Show the ACL log entries.",
                "SAVE",
                "    Save the current config to the ACL file.",
                "SETUSER <username> <attribute> [<attribute> ...]",
                "    Create or modify a user with the specified attributes.",
                "USERS",
                "    List all the registered usernames.",
                "WHOAMI",
                "    Return the current connection username.",
            ],
        ),
        _ => unreachable!("{} is an ACL subcommand", spec.name),
    }
}

/// MONITOR: from now on the connection gets a line for every command any client runs (see
/// `shoal_runtime::monitor`). None when it already monitors (Redis answers nothing then).
pub fn monitor(node: &Node, conn: &mut crate::connection::Conn) -> Option<Frame> {
    if conn.in_exec {
        return Some(errors::error("ERR MONITOR isn't allowed for DENY BLOCKING client"));
    }
    if conn.monitor.is_some() {
        return None;
    }
    // Held to `client-output-buffer-limit pubsub`, as a subscriber (see `shoal_runtime::monitor`).
    node.core.pubsub_set_limit(crate::pubsub::limit(node));
    let sink = shoal_runtime::pubsub::Subscriber::new(conn.client.id, conn.proto);
    node.core.monitor_add(sink.clone());
    conn.monitor = Some(sink);
    conn.client.monitor.set(true);
    Some(args::ok())
}

/// Ends MONITOR mode (the connection closes, or RESET).
pub fn leave_monitor(node: &Node, conn: &mut crate::connection::Conn) {
    if let Some(sink) = conn.monitor.take() {
        node.core.monitor_remove(&sink);
        conn.client.monitor.set(false);
    }
}

/// MODULE: none is loaded, and loading is off, as under Redis's default
/// `enable-module-command no` (Shoal cannot load Redis modules).
fn module(spec: &'static CommandSpec) -> Frame {
    match spec.name {
        "module|list" => Frame::Array(Vec::new()),
        "module|help" => help(
            "MODULE",
            &[
                "LIST",
                "    Return a list of loaded modules.",
                "LOAD <path> [<arg> ...]",
                "    Load a module library from <path>, passing to it any optional arguments.",
                "LOADEX <path> [[CONFIG NAME VALUE] [CONFIG NAME VALUE]] [ARGS ...]",
                "    Load a module library from <path>, while passing it module configurations and optional arguments.",
                "UNLOAD <name>",
                "    Unload a module.",
            ],
        ),
        _ => errors::error("ERR MODULE command not allowed. If the enable-module-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server."),
    }
}

/// Redis's DOCTOR says nothing below this much memory in use.
const DOCTOR_MIN_BYTES: u64 = 5 * 1024 * 1024;

fn memory(spec: &'static CommandSpec) -> Frame {
    match spec.name {
        "memory|malloc-stats" => text(malloc_stats()),
        "memory|help" => help(
            "MEMORY",
            &[
                "DOCTOR",
                "    Return memory problems reports.",
                "MALLOC-STATS",
                "    Return internal statistics report from the memory allocator.",
                "PURGE",
                "    Attempt to purge dirty pages for reclamation by the allocator.",
                "STATS",
                "    Return information about the memory usage of the server.",
                "USAGE <key> [SAMPLES <count>]",
                "    Return memory in bytes used by <key> and its value. Nested values are",
                "    sampled up to <count> times (default: 5, 0 means sample all).",
            ],
        ),
        _ => unreachable!("{} runs elsewhere", spec.name),
    }
}

/// MEMORY DOCTOR. An instance with no key counts as empty whatever its memory (Shoal's
/// cores hold several megabytes of buffers before any key exists).
async fn memory_doctor(node: &std::rc::Rc<Node>) -> Frame {
    let keys: usize = node.core.call_all(|core| core.with_shard(|shard| shard.dbs.iter().map(|db| db.len()).sum::<usize>())).await.into_iter().sum();
    text(if keys == 0 || crate::alloc::used_bytes() < DOCTOR_MIN_BYTES {
        "Hi Sam, this instance is empty or is using very little memory, my issues detector can't be used in these conditions. Please, leave for your mission on Earth and fill it with some data. The new Sam and I will be back to our programming as soon as I finished rebooting.\n".to_string()
    } else {
        "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.\n".to_string()
    })
}

/// MEMORY STATS, with Redis's keys in Redis's order (a map in RESP3, pairs in RESP2). The
/// ratios are single-precision, as Redis computes them; the figures are
/// [`crate::memory_stats`]'s.
async fn memory_stats(node: &std::rc::Rc<Node>) -> Frame {
    let report = crate::memory_stats::report(node).await;
    let ratios = report.ratios();
    let count = |n: u64| Frame::Integer(n.min(i64::MAX as u64) as i64);
    let ratio = |r: f64| Frame::Double(r as f32 as f64);
    let mut pairs = vec![
        (bulk("peak.allocated"), count(report.peak)),
        (bulk("total.allocated"), count(report.used)),
        (bulk("startup.allocated"), count(report.startup)),
        (bulk("replication.backlog"), Frame::Integer(0)),
        (bulk("clients.slaves"), Frame::Integer(0)),
        (bulk("clients.normal"), count(report.clients_normal)),
        (bulk("cluster.links"), Frame::Integer(0)),
        (bulk("aof.buffer"), Frame::Integer(0)),
        (bulk("lua.caches"), count(report.engine.scripts_eval as u64)),
        (bulk("functions.caches"), count(report.engine.functions as u64)),
    ];
    for &(index, _, main, expires) in &report.dbs {
        let tables = Frame::Map(vec![(bulk("overhead.hashtable.main"), count(main as u64)), (bulk("overhead.hashtable.expires"), count(expires as u64))]);
        pairs.push((bulk(format!("db.{index}")), tables));
    }
    pairs.extend([
        (bulk("overhead.total"), count(report.overhead())),
        (bulk("keys.count"), count(report.keys() as u64)),
        (bulk("keys.bytes-per-key"), count(report.bytes_per_key())),
        (bulk("dataset.bytes"), count(report.dataset())),
        (bulk("dataset.percentage"), ratio(report.dataset_percentage())),
        (bulk("peak.percentage"), ratio(report.peak_percentage())),
        (bulk("allocator.allocated"), count(report.used)),
        (bulk("allocator.active"), count(report.allocator_active)),
        (bulk("allocator.resident"), count(report.allocator_resident)),
        (bulk("allocator-fragmentation.ratio"), ratio(ratios.allocator_fragmentation.0)),
        (bulk("allocator-fragmentation.bytes"), Frame::Integer(ratios.allocator_fragmentation.1)),
        (bulk("allocator-rss.ratio"), ratio(ratios.allocator_rss.0)),
        (bulk("allocator-rss.bytes"), Frame::Integer(ratios.allocator_rss.1)),
        (bulk("rss-overhead.ratio"), ratio(ratios.rss_overhead.0)),
        (bulk("rss-overhead.bytes"), Frame::Integer(ratios.rss_overhead.1)),
        (bulk("fragmentation"), ratio(ratios.fragmentation.0)),
        (bulk("fragmentation.bytes"), Frame::Integer(ratios.fragmentation.1)),
    ]);
    Frame::Map(pairs)
}

/// MEMORY PURGE: every core's heap gives back the memory it can.
async fn memory_purge(node: &std::rc::Rc<Node>) -> Frame {
    // SAFETY: mi_collect works on the calling thread's heap, which is alive.
    node.core.call_all(|_| unsafe { libmimalloc_sys::mi_collect(true) }).await;
    args::ok()
}

/// mimalloc's statistics, as it prints them.
fn malloc_stats() -> String {
    unsafe extern "C" fn append(message: *const std::ffi::c_char, out: *mut std::ffi::c_void) {
        // SAFETY: mimalloc passes a NUL-terminated message and the `out` given below.
        let (message, out) = unsafe { (std::ffi::CStr::from_ptr(message), &mut *out.cast::<String>()) };
        out.push_str(&message.to_string_lossy());
    }
    let mut out = String::new();
    // SAFETY: `append` only appends to `out`, which outlives the call.
    unsafe { libmimalloc_sys::mi_stats_print_out(Some(append), (&mut out as *mut String).cast()) };
    out
}

/// The default user's password as ACL LIST shows it: `nopass`, or `#` and its SHA-256.
fn password_rule(node: &Node) -> String {
    match password_hash(node) {
        Some(hash) => format!("#{hash}"),
        None => "nopass".to_string(),
    }
}

fn password_hash(node: &Node) -> Option<String> {
    let config = node.config.borrow();
    if config.requirepass.is_empty() {
        return None;
    }
    Some(Sha256::digest(config.requirepass.as_bytes()).iter().map(|b| format!("{b:02x}")).collect())
}

/// ACL GETUSER name
fn getuser(node: &Node, name: &[u8]) -> Frame {
    if name != b"default" {
        return Frame::Null;
    }
    let hash = password_hash(node);
    let mut flags = vec![bulk("on")];
    if hash.is_none() {
        flags.push(bulk("nopass"));
    }
    Frame::Map(vec![
        (bulk("flags"), Frame::Set(flags)),
        (bulk("passwords"), Frame::Array(hash.into_iter().map(bulk).collect())),
        (bulk("commands"), bulk("+@all")),
        (bulk("keys"), bulk("~*")),
        (bulk("channels"), bulk("&*")),
        (bulk("selectors"), Frame::Array(Vec::new())),
    ])
}

/// ACL CAT [category]
fn cat(args: &[Bytes]) -> Frame {
    match args.len() {
        2 => Frame::Array(CATEGORIES.iter().map(bulk).collect()),
        3 => {
            let Some(category) = CATEGORIES.iter().find(|c| c.as_bytes().eq_ignore_ascii_case(&args[2])) else {
                return errors::error(&format!("ERR Unknown category '{}'", String::from_utf8_lossy(&args[2])));
            };
            let wanted = format!("@{category}");
            let mut names = Vec::new();
            for spec in table::all() {
                // A container (CLIENT) is listed by its own categories, and so is each of
                // its subcommands (CLIENT|LIST), as Redis does.
                let family = std::iter::once(spec).chain(spec.subcommands.iter());
                names.extend(family.filter(|spec| spec.acl_categories().contains(&wanted.as_str())).map(|spec| bulk(spec.name)));
            }
            Frame::Array(names)
        }
        _ => subcommand_syntax_error(args),
    }
}

/// ACL GENPASS [bits]: random bits from the kernel, in hex (bits rounded up to a digit).
fn genpass(args: &[Bytes]) -> Frame {
    const RANGE: &str = "ERR ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096";
    let bits = match args.get(2) {
        None => 256,
        Some(arg) => match args::parse_i64(arg) {
            Err(error) => return error,
            Ok(bits) if !(1..=4096).contains(&bits) => return errors::error(RANGE),
            Ok(bits) => bits as usize,
        },
    };
    if args.len() > 3 {
        return subcommand_syntax_error(args);
    }
    let digits = bits.div_ceil(4);
    let mut random = vec![0u8; digits.div_ceil(2)];
    fill_random(&mut random);
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    bulk(&hex[..digits])
}

/// Fills `buf` from the kernel's random source.
fn fill_random(buf: &mut [u8]) {
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: the pointer and length describe the unfilled tail of `buf`.
        let got = unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), buf.len() - filled, 0) };
        if got > 0 {
            filled += got as usize;
        }
    }
}

/// ACL DRYRUN user command [arg ...]: the default user may run every command that exists
/// with a valid number of arguments.
fn dryrun(args: &[Bytes]) -> Frame {
    if &args[2][..] != b"default" {
        return errors::error(&format!("ERR User '{}' not found", String::from_utf8_lossy(&args[2])));
    }
    let request = &args[3..];
    let not_found = || errors::error(&format!("ERR Command '{}' not found", String::from_utf8_lossy(&request[0])));
    let Some(mut spec) = table::lookup(&request[0]) else { return not_found() };
    if !spec.subcommands.is_empty() && request.len() >= 2 {
        match table::lookup_subcommand(spec, &request[1]) {
            Some(sub) => spec = sub,
            None => return not_found(),
        }
    }
    let count = request.len() as i32;
    if (spec.arity > 0 && spec.arity != count) || count < -spec.arity {
        return errors::error(&format!("ERR wrong number of arguments for '{}' command", spec.name));
    }
    args::ok()
}

/// ACL DELUSER name [name ...]: no user but `default` exists, and it cannot go.
fn deluser(args: &[Bytes]) -> Frame {
    if args[2..].iter().any(|name| &name[..] == b"default") {
        return errors::error("ERR The 'default' user cannot be removed");
    }
    Frame::Integer(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(parts: &[&str]) -> Vec<Bytes> {
        parts.iter().map(|p| Bytes::copy_from_slice(p.as_bytes())).collect()
    }

    #[test]
    fn wait_arguments_are_checked_as_redis_does() {
        assert_eq!(parse_wait(&request(&["wait", "1", "10"])).unwrap(), (1, Some(Duration::from_millis(10))));
        assert_eq!(parse_wait(&request(&["wait", "1", "0"])).unwrap(), (1, None));
        assert!(matches!(parse_wait(&request(&["wait", "x", "0"])), Err(Frame::Error(e)) if e.starts_with(b"ERR value is not an integer")));
        assert!(matches!(parse_wait(&request(&["wait", "0", "1.5"])), Err(Frame::Error(e)) if e.starts_with(b"ERR timeout is not an integer")));
        assert!(matches!(parse_wait(&request(&["wait", "0", "-1"])), Err(Frame::Error(e)) if &e[..] == b"ERR timeout is negative"));
    }

    #[test]
    fn genpass_returns_as_many_hex_digits_as_the_bits_need() {
        for (bits, digits) in [("1", 1), ("5", 2), ("8", 2), ("256", 64), ("4096", 1024)] {
            let Frame::Bulk(pass) = genpass(&request(&["acl", "genpass", bits])) else { panic!("a bulk string") };
            assert_eq!(pass.len(), digits, "{bits} bits");
            assert!(pass.iter().all(|b| b.is_ascii_hexdigit()));
        }
        let a = genpass(&request(&["acl", "genpass"]));
        let b = genpass(&request(&["acl", "genpass"]));
        assert_ne!(a, b, "two passwords differ");
    }
}
