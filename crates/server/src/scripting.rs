//! EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, FCALL, FCALL_RO, SCRIPT and FUNCTION on the
//! scripting engine (`shoal-script`) and the runtime's script runner
//! (`shoal_runtime::script`).
//!
//! Each core has its own engine (a thread-local: Lua states are not `Send`). What changes
//! the cache or the libraries (SCRIPT LOAD, EVAL of a new body, FUNCTION LOAD, ...) runs on
//! every core, so EVALSHA and FCALL work whichever core a connection lives on.
//!
//! A script runs holding the cores of the keys it declares (see `shoal_runtime::script`).
//! Keys it did not declare are fine when they live on one of those cores; elsewhere the call
//! fails with a clear error, unless `script-undeclared-keys yes` makes every script hold
//! every core.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use shoal_commands::dispatch::{self, Route};
use shoal_commands::{args, errors, CommandSpec};
use shoal_resp::{Frame, Protocol};
use shoal_runtime::script::ScriptAccess;
use shoal_script::{Engine, Host, LogLevel, RestorePolicy, Source};

use crate::connection::Conn;
use crate::node::Node;
use crate::server_commands::help;

thread_local! {
    static ENGINE: RefCell<Engine> = RefCell::new(Engine::new());
}

/// Drops every function library on this core (DEBUG RELOAD before loading).
pub fn flush_libraries() {
    with_engine(|engine| engine.function_flush());
}

/// Loads function libraries read from a file into this core's engine.
pub fn load_libraries(codes: &[Bytes]) -> Result<(), String> {
    with_engine(|engine| {
        for code in codes {
            engine.function_load(code, false).map_err(|e| format!("Failed loading library: {}", String::from_utf8_lossy(&frame_text(&e))))?;
        }
        Ok(())
    })
}

fn frame_text(frame: &Frame) -> Vec<u8> {
    match frame {
        Frame::Error(text) | Frame::Simple(text) | Frame::Bulk(text) => text.to_vec(),
        other => format!("{other:?}").into_bytes(),
    }
}

/// Every function library's source code on this core (each core holds the same ones).
pub fn library_codes() -> Vec<Bytes> {
    with_engine(|engine| engine.library_codes())
}

/// Creates this core's engine (its Lua states) now, at startup, as Redis does, so that their
/// memory counts as startup memory rather than data.
pub fn init() {
    ENGINE.with(|_| ());
}

/// This core's engine's memory (each core holds the same scripts, in its own Lua states).
pub fn engine_memory() -> shoal_script::EngineMemory {
    with_engine(|engine| engine.memory())
}

/// This core's (libraries, functions); every core holds the same.
pub fn function_counts() -> (usize, usize) {
    with_engine(|engine| engine.function_counts())
}

fn with_engine<R>(f: impl FnOnce(&mut Engine) -> R) -> R {
    ENGINE.with(|engine| f(&mut engine.borrow_mut()))
}

/// The reply every core gave to a change made on all of them: this core's.
async fn on_every_core<T: Send + 'static>(node: &Rc<Node>, change: impl Fn(&mut Engine) -> T + Send + Clone + 'static) -> T {
    let mut results = node.core.call_all(move |_| with_engine(&change)).await;
    results.swap_remove(node.core.id)
}

/// A change of the function libraries counts as one change of the dataset, as Redis counts
/// it (`rdb_changes_since_last_save`, save points).
fn count_change(node: &Rc<Node>) {
    node.core.with_shard(|shard| shard.dbs[0].add_changes(1));
}

/// EVAL, EVALSHA, their _RO forms, FCALL and FCALL_RO.
pub async fn run(node: &Rc<Node>, conn: &mut Conn, spec: &'static CommandSpec, args: &[Bytes]) -> Frame {
    let numkeys = match args::parse_i64(&args[2]) {
        Ok(n) if n < 0 => return errors::error("ERR Number of keys can't be negative"),
        Ok(n) if n as usize > args.len() - 3 => return errors::error("ERR Number of keys can't be greater than number of args"),
        Ok(n) => n as usize,
        Err(_) => return errors::not_integer(),
    };
    let keys = &args[3..3 + numkeys];
    // A tracking client's script may read any key it declares: they are remembered before it
    // runs, confirmed after (Redis remembers only the keys of the read-only commands it
    // calls: here a declared key the script only wrote brings an invalidation too).
    let _reads = if crate::tracking::reads_tracked(conn) { crate::tracking::PendingReads::register(node, conn.client.id, keys.to_vec()) } else { None };
    // EVAL of a body new to this core: cache it on every core first, so an EVALSHA that
    // follows on another core finds it (and so the script may run on another core).
    if let Some(Source::Body(body)) = source_of(spec, args) {
        if node.core.shard_count > 1 && !with_engine(|engine| engine.script_exists(Engine::sha1hex(body).as_bytes())) {
            let body = args[1].clone();
            let _ = on_every_core(node, move |engine| engine.script_load(&body).is_ok()).await;
        }
    }
    let flags = match source_of(spec, args) {
        Some(Source::Body(body)) => Engine::script_flags(body).ok(),
        Some(Source::Sha(sha)) => with_engine(|engine| engine.cached_flags(sha)),
        None => with_engine(|engine| engine.function_flags(&args[1])),
    };
    let read_only = spec.name.ends_with("_ro") || flags.is_some_and(|f| f.no_writes);
    // A read-only replica runs scripts that may write only to fail their writes, and refuses
    // one whose flags say it writes (Redis's `scriptPrepareForRun`).
    let replica_ro = crate::replica::read_only(node) && conn.master_link.is_none();
    if replica_ro && !read_only && flags.is_some_and(|f| f.shebang) {
        return errors::error("READONLY You can't write against a read only replica.");
    }
    // `min-replicas-to-write`, likewise.
    let noreplicas = !read_only && conn.master_link.is_none() && crate::replication::too_few_replicas(node);
    if noreplicas && flags.is_some_and(|f| f.shebang) {
        return errors::error(crate::replication::NOREPLICAS);
    }
    // A script without a shebang (Redis's eval compatibility mode) runs while memory is over
    // `maxmemory`, but its first write that may grow memory fails (Redis's
    // `pre_command_oom_state`, checked in `scriptVerifyOOM`); a script that declared flags
    // was refused already, unless it may run then (`allow-oom`, `no-writes`).
    let compat = source_of(spec, args).is_some() && !flags.is_some_and(|f| f.shebang);
    let oom = compat && crate::evict::out_of_memory(node, conn.in_exec);
    // Inside EXEC the transaction holds the declared keys' cores only (it planned its locks
    // from them), so the script may not ask for more.
    let all_cores = node.config.borrow().script_undeclared_keys && !conn.in_exec;
    // One key (the common case) needs no vector.
    let one_shard: [usize; 1];
    let many_shards: Vec<usize>;
    let shards: &[usize] = match keys {
        _ if all_cores => {
            many_shards = (0..node.core.shard_count).collect();
            &many_shards
        }
        [] => &[],
        [key] => {
            one_shard = [shoal_store::slot::key_shard(key, node.core.shard_count)];
            if one_shard[0] == node.core.id {
                // The first step of the key's prefetch; `execute` takes the second.
                node.core.with_shard(|shard| shard.dbs[conn.db].prefetch_bucket(key));
            }
            &one_shard
        }
        _ => {
            let mut shards: Vec<usize> = keys.iter().map(|k| shoal_store::slot::key_shard(k, node.core.shard_count)).collect();
            shards.sort_unstable();
            shards.dedup();
            many_shards = shards;
            &many_shards
        }
    };
    // Inside EXEC, EXEC's own check covers the script's keys.
    let cluster = if conn.in_exec { 0 } else { conn.cluster_guard };
    let run = Run { spec, numkeys, db: conn.db, proto: conn.proto, read_only, replica_ro, noreplicas, oom, client_id: conn.client.id, cluster };
    // Every declared key on one other core: run the script there, in place, as one message
    // (rather than park that core). When something is locked there, park it after all.
    if let [owner] = shards {
        if *owner != node.core.id && !conn.in_exec {
            let owned: Vec<Bytes> = args.to_vec();
            let ran = node
                .core
                .call_on(*owner, move |core| {
                    let there = crate::node::current();
                    core.run_script_here(|access| execute(&there, access, &run, &owned)).ok()
                })
                .await;
            if let Some(reply) = ran {
                return reply;
            }
        }
    }
    node.core.run_script(shards, conn.in_exec, |access| execute(node, access, &run, args)).await
}

/// An EVAL-family request once checked, without its arguments (which may travel to the core
/// that runs it).
#[derive(Clone, Copy)]
struct Run {
    spec: &'static CommandSpec,
    numkeys: usize,
    db: usize,
    proto: Protocol,
    read_only: bool,
    /// This is a read-only replica: writes called fail with READONLY.
    replica_ro: bool,
    /// Too few good replicas (`min-replicas-to-write`): writes called fail with NOREPLICAS.
    noreplicas: bool,
    /// Memory was over `maxmemory` when the script started and it declared no flags.
    oom: bool,
    client_id: u64,
    /// Cluster mode: the request's guard flags (see `crate::cluster::guard`), checked again
    /// where the script runs, before it runs.
    cluster: u8,
}

/// The flags a script declared, for the command checks that read them (OOM): those of an
/// EVAL body or a cached EVALSHA script with a shebang, or of a function; None for a script
/// without a shebang (or unknown), which the checks treat as the command itself.
pub fn declared_flags(spec: &CommandSpec, args: &[Bytes]) -> Option<shoal_script::ScriptFlags> {
    if !matches!(spec.name, "eval" | "eval_ro" | "evalsha" | "evalsha_ro" | "fcall" | "fcall_ro") || args.len() < 2 {
        return None;
    }
    let flags = match source_of(spec, args) {
        Some(Source::Body(body)) => Engine::script_flags(body).ok(),
        Some(Source::Sha(sha)) => with_engine(|engine| engine.cached_flags(sha)),
        None => with_engine(|engine| engine.function_flags(&args[1])),
    };
    flags.filter(|f| f.shebang || source_of(spec, args).is_none())
}

/// The script of an EVAL-family request; `None` for a function (FCALL, FCALL_RO).
fn source_of<'a>(spec: &CommandSpec, args: &'a [Bytes]) -> Option<Source<'a>> {
    match spec.name {
        "eval" | "eval_ro" => Some(Source::Body(&args[1])),
        "evalsha" | "evalsha_ro" => Some(Source::Sha(&args[1])),
        _ => None,
    }
}

/// Runs the script of `run` with `access` on this core.
fn execute(node: &Rc<Node>, access: &ScriptAccess, run: &Run, args: &[Bytes]) -> Frame {
    let (keys, argv) = args[3..].split_at(run.numkeys);
    if let Some(key) = keys.first().filter(|_| run.cluster != 0) {
        let shard = access.shard_of(key);
        if let Some(refusal) = access.inspect(shard, 0, |db| crate::cluster::guard(run.spec, args, db, run.cluster)) {
            return refusal;
        }
    }
    let source = source_of(run.spec, args);
    let running = crate::busy::start(node.core.id, source.is_none(), access.now_ms());
    // The second step of the prefetch `run` began: the interpreter's work until the script
    // calls for the key gives the node time to arrive (measured: 3-5% less CPU per EVALSHA
    // of an INCR at pipeline 16; prefetching further ahead, from the next request of the
    // pipeline, gained nothing more).
    if let [key] = keys {
        node.core.with_shard(|shard| shard.dbs[run.db].prefetch_head(key));
    }
    let mut host = ScriptHost {
        node,
        access,
        db: run.db,
        read_only: run.read_only,
        replica_ro: run.replica_ro,
        noreplicas: run.noreplicas,
        oom: run.oom,
        client_id: run.client_id,
        running: &running,
        fieldsets: Default::default(),
    };
    with_engine(|engine| match source {
        Some(source) => engine.eval(source, keys, argv, run.proto, &mut host),
        None => engine.fcall(&args[1], keys, argv, run.proto, run.spec.name.ends_with("_ro"), &mut host),
    })
}

/// SCRIPT subcommands.
pub async fn script(node: &Rc<Node>, spec: &'static CommandSpec, args: &[Bytes]) -> Frame {
    match spec.name {
        "script|load" => {
            let body = args[2].clone();
            match on_every_core(node, move |engine| engine.script_load(&body)).await {
                Ok(sha) => Frame::Bulk(Bytes::from(sha)),
                Err(error) => error,
            }
        }
        "script|exists" => Frame::Array(args[2..].iter().map(|sha| Frame::Integer(with_engine(|e| e.script_exists(sha)) as i64)).collect()),
        "script|flush" => match flush_mode(&args[2..]) {
            Ok(()) => {
                on_every_core(node, |engine| engine.script_flush()).await;
                args::ok()
            }
            Err(error) => error,
        },
        "script|kill" => crate::busy::kill(node.core.id, false),
        // The Lua debugger (redis-cli --ldb) is not implemented: scripts always run normally,
        // which is what NO asks; YES and SYNC are refused rather than silently ignored.
        "script|debug" if args[2].eq_ignore_ascii_case(b"no") => args::ok(),
        "script|debug" if args[2].eq_ignore_ascii_case(b"yes") || args[2].eq_ignore_ascii_case(b"sync") => {
            errors::error("ERR SCRIPT DEBUG is not supported: Shoal has no Lua debugger")
        }
        "script|debug" => errors::error("ERR Use SCRIPT DEBUG YES/SYNC/NO"),
        "script|help" => help(
            "SCRIPT",
            &[
                "DEBUG (YES|SYNC|NO)",
                "    Set the debug mode for subsequent scripts executed.",
                "EXISTS <sha1> [<sha1> ...]",
                "    Return information about the existence of the scripts in the script cache.",
                "FLUSH [ASYNC|SYNC]",
                "    Flush the Lua scripts cache. Very dangerous on replicas.",
                "    When called without the optional mode argument, the behavior is determined by the",
                "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
                "    * ASYNC: Asynchronously flush the scripts cache.",
                "    * SYNC: Synchronously flush the scripts cache.",
                "KILL",
                "    Kill the currently executing Lua script.",
                "LOAD <script>",
                "    Load a script into the scripts cache without executing it.",
            ],
        ),
        _ => errors::error(&format!("ERR '{}' is not implemented yet", spec.name)),
    }
}

/// FUNCTION subcommands.
pub async fn function(node: &Rc<Node>, spec: &'static CommandSpec, args: &[Bytes]) -> Frame {
    match spec.name {
        "function|load" => {
            let replace = args.len() == 4 && args[2].eq_ignore_ascii_case(b"REPLACE");
            if args.len() > 4 || (args.len() == 4 && !replace) {
                return errors::error(&format!("ERR Unknown option given: {}", String::from_utf8_lossy(&args[2])));
            }
            let code = args[args.len() - 1].clone();
            match on_every_core(node, move |engine| engine.function_load(&code, replace)).await {
                Ok(name) => {
                    count_change(node);
                    Frame::Bulk(Bytes::from(name))
                }
                Err(error) => error,
            }
        }
        "function|delete" => {
            let library = args[2].clone();
            match on_every_core(node, move |engine| engine.function_delete(&library)).await {
                Ok(()) => {
                    count_change(node);
                    args::ok()
                }
                Err(error) => error,
            }
        }
        "function|flush" => match flush_mode(&args[2..]) {
            Ok(()) => {
                on_every_core(node, |engine| engine.function_flush()).await;
                count_change(node);
                args::ok()
            }
            Err(error) => error,
        },
        "function|list" => {
            let mut pattern = None;
            let mut with_code = false;
            let mut i = 2;
            while i < args.len() {
                if args[i].eq_ignore_ascii_case(b"WITHCODE") && !with_code {
                    with_code = true;
                } else if args[i].eq_ignore_ascii_case(b"LIBRARYNAME") && pattern.is_none() && i + 1 < args.len() {
                    pattern = Some(args[i + 1].clone());
                    i += 1;
                } else {
                    return errors::error(&format!("ERR Unknown argument {}", String::from_utf8_lossy(&args[i])));
                }
                i += 1;
            }
            with_engine(|engine| engine.function_list(pattern.as_deref(), with_code))
        }
        "function|dump" => Frame::Bulk(Bytes::from(with_engine(|engine| engine.function_dump()))),
        "function|restore" => {
            let policy = match args.get(3) {
                None => RestorePolicy::Append,
                Some(p) if p.eq_ignore_ascii_case(b"APPEND") => RestorePolicy::Append,
                Some(p) if p.eq_ignore_ascii_case(b"REPLACE") => RestorePolicy::Replace,
                Some(p) if p.eq_ignore_ascii_case(b"FLUSH") => RestorePolicy::Flush,
                Some(_) => return errors::error("ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE."),
            };
            if args.len() > 4 {
                return errors::syntax();
            }
            let payload = args[2].clone();
            match on_every_core(node, move |engine| engine.function_restore(&payload, policy)).await {
                Ok(()) => {
                    count_change(node);
                    args::ok()
                }
                Err(error) => error,
            }
        }
        "function|kill" => crate::busy::kill(node.core.id, true),
        "function|stats" => {
            let (libraries, functions) = with_engine(|engine| engine.function_counts());
            let engines = Frame::Map(vec![(
                Frame::bulk("LUA"),
                Frame::Map(vec![
                    (Frame::bulk("libraries_count"), Frame::Integer(libraries as i64)),
                    (Frame::bulk("functions_count"), Frame::Integer(functions as i64)),
                ]),
            )]);
            Frame::Map(vec![(Frame::bulk("running_script"), Frame::Null), (Frame::bulk("engines"), engines)])
        }
        "function|help" => help(
            "FUNCTION",
            &[
                "LOAD [REPLACE] <FUNCTION CODE>",
                "    Create a new library with the given library name and code.",
                "DELETE <LIBRARY NAME>",
                "    Delete the given library.",
                "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
                "    Return general information on all the libraries:",
                "    * Library name",
                "    * The engine used to run the Library",
                "    * Library description",
                "    * Functions list",
                "    * Library code (if WITHCODE is given)",
                "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
                "STATS",
                "    Return information about the current function running:",
                "    * Function name",
                "    * Command used to run the function",
                "    * Duration in MS that the function is running",
                "    If no function is running, return nil",
                "    In addition, returns a list of available engines.",
                "KILL",
                "    Kill the current running function.",
                "FLUSH [ASYNC|SYNC]",
                "    Delete all the libraries.",
                "    When called without the optional mode argument, the behavior is determined by the",
                "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
                "    * ASYNC: Asynchronously flush the libraries.",
                "    * SYNC: Synchronously flush the libraries.",
                "DUMP",
                "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
                "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
                "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
                "    control how to handle existing libraries (default APPEND):",
                "    * FLUSH: delete all existing libraries.",
                "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
                "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
                "      libraries with the new libraries (notice that even on this option there is a chance of failure",
                "      in case of functions name collision with another library).",
            ],
        ),
        _ => errors::error(&format!("ERR '{}' is not implemented yet", spec.name)),
    }
}

/// `[ASYNC|SYNC]` of SCRIPT FLUSH and FUNCTION FLUSH.
fn flush_mode(rest: &[Bytes]) -> Result<(), Frame> {
    match rest {
        [] => Ok(()),
        [mode] if mode.eq_ignore_ascii_case(b"ASYNC") || mode.eq_ignore_ascii_case(b"SYNC") => Ok(()),
        [_] => Err(errors::error("ERR SCRIPT FLUSH only support SYNC|ASYNC option")),
        _ => Err(errors::syntax()),
    }
}

/// The server as one running script sees it.
struct ScriptHost<'a, 'b> {
    node: &'a Rc<Node>,
    access: &'a ScriptAccess<'b>,
    /// The script's database: the connection's, until the script runs SELECT.
    db: usize,
    read_only: bool,
    replica_ro: bool,
    noreplicas: bool,
    /// Memory was over `maxmemory` at the start and the script has not written yet: a
    /// command that may grow memory fails (cleared by the first write command called).
    oom: bool,
    client_id: u64,
    /// This run in the table SCRIPT KILL reads.
    running: &'a crate::busy::Guard,
    /// HIMPORT's fieldsets: each run has its own, as in Redis.
    fieldsets: shoal_commands::hashes::himport::Fieldsets,
}

impl Host for ScriptHost<'_, '_> {
    fn call(&mut self, args: &[Bytes], proto: Protocol) -> Frame {
        let resolved = match dispatch::resolve(args, self.node.core.shard_count) {
            Ok(resolved) => resolved,
            Err(Frame::Error(text)) if text.starts_with(b"ERR unknown command") || text.starts_with(b"ERR unknown subcommand") => {
                return errors::error("ERR Unknown Redis command called from script")
            }
            Err(Frame::Error(text)) if text.starts_with(b"ERR wrong number of arguments") => {
                return errors::error("ERR Wrong number of args calling Redis command from script")
            }
            Err(error) => return error,
        };
        let spec = resolved.spec;
        if spec.has(shoal_commands::table::flags::NOSCRIPT) {
            return errors::error("ERR This Redis command is not allowed from script");
        }
        if self.read_only && spec.is_write() {
            return errors::error("ERR Write commands are not allowed from read-only scripts.");
        }
        if self.noreplicas && spec.is_write() {
            return errors::error(crate::replication::NOREPLICAS);
        }
        if self.replica_ro && spec.is_write() {
            return errors::error("READONLY You can't write against a read only replica.");
        }
        if self.oom && spec.has(shoal_commands::table::flags::DENYOOM) {
            return errors::error(crate::evict::OOM);
        }
        if spec.is_write() {
            // Redis's SCRIPT_WRITE_DIRTY: once a script wrote, it may not stop half way.
            self.oom = false;
        }
        let rewritten;
        let args = match spec.name {
            "himport|set" => {
                if let Err(refusal) = self.fieldsets.fields_for(args) {
                    return errors::error(refusal);
                }
                rewritten = self.fieldsets.rewrite_set(args.to_vec());
                &rewritten[..]
            }
            _ => args,
        };
        match resolved.route {
            Route::Connection => self.connection_command(spec, args),
            route => match self.access.run(self.db, proto, spec, &route, args) {
                Ok(reply) => {
                    if spec.is_write() && !matches!(reply, Frame::Error(_)) {
                        self.running.wrote();
                    }
                    reply
                }
                Err(_) => errors::error(
                    "ERR Script attempted to access a key on a core it does not hold: declare every key in KEYS, or set script-undeclared-keys yes",
                ),
            },
        }
    }

    /// `redis.acl_check_cmd`: Redis looks the command up as it would run it (a container's
    /// subcommand when one is given) and refuses an unknown one; there are no ACL users yet,
    /// so every known command is allowed (the default user's `+@all`).
    fn acl_check(&mut self, args: &[Bytes]) -> Result<bool, Frame> {
        let known = shoal_commands::table::lookup(&args[0]).and_then(|spec| match args.get(1) {
            Some(sub) if !spec.subcommands.is_empty() => shoal_commands::table::lookup_subcommand(spec, sub),
            _ => Some(spec),
        });
        match known {
            Some(_) => Ok(true),
            None => Err(errors::error("ERR Invalid command passed to redis.acl_check_cmd()")),
        }
    }

    fn log(&mut self, level: LogLevel, message: &[u8]) {
        let message = String::from_utf8_lossy(message);
        match level {
            LogLevel::Debug => tracing::debug!(client = self.client_id, "{message}"),
            LogLevel::Verbose => tracing::debug!(client = self.client_id, "{message}"),
            LogLevel::Notice => tracing::info!(client = self.client_id, "{message}"),
            LogLevel::Warning => tracing::warn!(client = self.client_id, "{message}"),
        }
    }

    fn should_kill(&mut self, _elapsed: Duration) -> bool {
        self.running.killed() || self.node.core.shared.shutdown.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl ScriptHost<'_, '_> {
    /// The connection-level commands a script may run: SELECT (for the rest of the script),
    /// TIME, PUBLISH (which never waits, so it runs while other cores are parked) and the
    /// PUBSUB counts every core knows; others are refused.
    fn connection_command(&mut self, spec: &'static CommandSpec, args: &[Bytes]) -> Frame {
        match spec.name {
            "select" => {
                let databases = self.node.config.borrow().databases as i64;
                match args::parse_i64(&args[1]) {
                    Ok(index) if (0..databases).contains(&index) => {
                        self.db = index as usize;
                        args::ok()
                    }
                    Ok(_) => errors::error(errors::DB_INDEX_OUT_OF_RANGE),
                    Err(_) => errors::not_integer(),
                }
            }
            "time" => {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                Frame::Array(vec![Frame::bulk(now.as_secs().to_string()), Frame::bulk(now.subsec_micros().to_string())])
            }
            "publish" => Frame::Integer(self.node.core.publish(&args[1], &args[2]) as i64),
            name if name.starts_with("himport|") => self.fieldsets.run(spec, args),
            "pubsub|channels" | "pubsub|numsub" | "pubsub|numpat" => crate::pubsub::local_query(&self.node.core, spec, args),
            _ => errors::error("ERR This Redis command is not allowed from script"),
        }
    }
}
