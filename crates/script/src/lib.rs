//! Lua scripting as Redis 7.0 has it: EVAL scripts and FUNCTION libraries, run in Lua 5.1
//! with Redis's sandbox, its `redis` library, its Lua/RESP conversions and its error texts.
//!
//! The server keeps one [`Engine`] per core and sends it SCRIPT LOAD, FUNCTION LOAD and the
//! like on every core, so an engine holds no global state and need not be `Send`. A running
//! script reaches the server only through the [`Host`] trait: the server runs each
//! `redis.call` and applies every command-level rule (unknown command, arity, commands not
//! allowed from scripts, writes from read-only scripts, undeclared keys) itself.
//!
//! What the engine does not do: parse EVAL/FCALL's `numkeys` (the server hands over keys and
//! arguments), enforce flags against the server's state (`no-writes` during FCALL_RO aside),
//! replicate effects, or implement the `bit`, `struct`, `cjson` and `cmsgpack` libraries
//! (those live in [`libs`]).
//!
//! Error texts the Host should produce for `redis.call`, as Redis 7.0 does (the engine adds
//! the ` script: <sha or function>, on @user_script:<line>.` suffix when `redis.call` raises
//! them, and returns them as `{err=...}` tables from `redis.pcall`):
//! - `ERR Unknown Redis command called from script`
//! - `ERR Wrong number of args calling Redis command from script`
//! - `ERR This Redis command is not allowed from script`
//! - `ERR Write commands are not allowed from read-only scripts.`
//! - `ERR Script attempted to access a non local key in a cluster node` (cluster only)
//! - `OOM command not allowed when used memory > 'maxmemory'.`
//! - otherwise the command's own error reply.
//!
//! The server also answers, before a script runs, what depends on the flags and its own
//! state (for example a shebang script without `allow-oom` under OOM gets
//! `-OOM command not allowed when used memory > 'maxmemory'.` with no suffix); the engine
//! only refuses FCALL_RO of a function without `no-writes`.
//!
//! Known differences from redis-server 7.0.15:
//! - FUNCTION LIST orders libraries and functions by name; Redis's order is its hash
//!   tables' (it varies between processes).
//! - A returned table nested deeper than 400 levels (a table that holds itself) ends in
//!   `-ERR reached lua stack limit` at that depth; Redis gets there at about 8000 levels.
//! - `error({})` (an error table without `err`) fails with `ERR unknown error`; Redis 7.0
//!   crashes.
//! - `redis.log` while a library loads (FUNCTION LOAD) is accepted and dropped: there is no
//!   Host then.
//! - An error value that is not a string or an error table, caught by `xpcall` or
//!   `coroutine.resume` after a kill, is mlua's error object rather than Redis's.

mod convert;
mod dump;
pub mod libs;
mod sandbox;
mod shebang;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mlua::{Function, HookTriggers, Lua, MultiValue, Value, VmState};
use shoal_resp::{Frame, Protocol};

use sandbox::{ErrorInfo, Sandbox};

/// What a running script asks of the server. The server implements it per script run; it
/// knows the script's flags and declared keys and applies the command-level rules itself
/// (unknown command, arity, "not allowed from script", writes in read-only scripts,
/// undeclared keys), answering with the error Frame Redis would give (see the crate docs
/// for the texts).
pub trait Host {
    /// Runs one command for `redis.call` / `redis.pcall`; the reply is built in `proto` (the
    /// script's `redis.setresp` version: RESP2 unless the script called `setresp(3)`).
    /// `args[0]` is the command name as the script wrote it.
    fn call(&mut self, args: &[Bytes], proto: Protocol) -> Frame;
    /// `redis.log`: the message is the arguments joined by spaces.
    fn log(&mut self, level: LogLevel, message: &[u8]);
    /// Called from an instruction-count hook while a script runs (every
    /// [`KILL_CHECK_INSTRUCTIONS`] instructions), with the time the script has run so far.
    /// Returning `true` kills it (SCRIPT KILL / FUNCTION KILL); the engine then fails the
    /// script with Redis's error.
    fn should_kill(&mut self, elapsed: Duration) -> bool;
    /// `redis.acl_check_cmd(command, ...)`: whether the current user may run the command.
    /// Unknown commands are `Err(Frame::error("ERR Invalid command passed to redis.acl_check_cmd()"))`.
    /// The default allows everything.
    fn acl_check(&mut self, args: &[Bytes]) -> Result<bool, Frame> {
        let _ = args;
        Ok(true)
    }
}

/// How many Lua instructions run between two [`Host::should_kill`] calls (Redis's hook uses
/// the same count).
pub const KILL_CHECK_INSTRUCTIONS: u32 = 100_000;

/// How long a library's main chunk may run in FUNCTION LOAD (Redis's 500 ms).
const LOAD_TIMEOUT: Duration = Duration::from_millis(500);

/// Redis collects Lua garbage with a step every this many script runs.
const GC_PERIOD_RUNS: u32 = 50;

/// The levels of `redis.log` (`redis.LOG_DEBUG` is 0 ... `redis.LOG_WARNING` is 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// `redis.LOG_DEBUG` (0).
    Debug,
    /// `redis.LOG_VERBOSE` (1).
    Verbose,
    /// `redis.LOG_NOTICE` (2).
    Notice,
    /// `redis.LOG_WARNING` (3).
    Warning,
}

/// What FUNCTION RESTORE does with the libraries already loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestorePolicy {
    /// Add the payload's libraries; fail if one already exists (the default).
    Append,
    /// Replace libraries of the same name.
    Replace,
    /// Delete every library first.
    Flush,
}

/// The script of an EVAL-family command.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// EVAL: the body, compiled and cached under its SHA1 as Redis does.
    Body(&'a [u8]),
    /// EVALSHA: a SHA1 in hex, either case; unknown is a NOSCRIPT error.
    Sha(&'a [u8]),
}

/// A script's or function's flags (the `#!lua flags=` line or `register_function`'s
/// `flags`). A script without a shebang has none of them and `shebang == false`: Redis then
/// applies the pre-7.0 rules (may write, denied on OOM only when it writes, and so on).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScriptFlags {
    /// Whether the script started with a `#!` line (always true for functions).
    pub shebang: bool,
    /// `no-writes`: the script may not write (EVAL_RO and FCALL_RO need it on functions).
    pub no_writes: bool,
    /// `allow-oom`: the script may run, and write, when the server is out of memory.
    pub allow_oom: bool,
    /// `allow-stale`: the script may run on a stale replica.
    pub allow_stale: bool,
    /// `no-cluster`: the script refuses to run in cluster mode.
    pub no_cluster: bool,
    /// `allow-cross-slot-keys`: the script may touch keys of several slots.
    pub allow_cross_slot_keys: bool,
}

struct Script {
    function: Function,
    flags: ScriptFlags,
    /// The body's length (memory figures).
    body_len: usize,
}

struct LibraryFunction {
    callback: Function,
    flags: ScriptFlags,
    description: Option<Bytes>,
}

struct Library {
    code: Bytes,
    functions: BTreeMap<Vec<u8>, LibraryFunction>,
}

/// An engine's memory (see [`Engine::memory`]), in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineMemory {
    /// The EVAL Lua state's heap.
    pub vm_eval: usize,
    /// The FUNCTION Lua state's heap.
    pub vm_functions: usize,
    pub cached_scripts: usize,
    /// The cached scripts' bodies and entries (Redis's `used_memory_scripts_eval`).
    pub scripts_eval: usize,
    /// The libraries' code and entries (Redis's `used_memory_functions`).
    pub functions: usize,
}

/// The scripting engine of one core: the EVAL script cache and the FUNCTION libraries, each
/// in its own Lua state as in Redis.
pub struct Engine {
    scripts_lua: Sandbox,
    /// By SHA1 in lowercase hex.
    /// By SHA1: EVALSHA looks one up per call, so a fast hash (SipHash was 1.4% of EVALSHA).
    scripts: HashMap<ShaKey, Script, foldhash::fast::RandomState>,
    functions_lua: Sandbox,
    libraries: BTreeMap<Vec<u8>, Library>,
    /// Function name -> the library that holds it.
    function_library: HashMap<Vec<u8>, Vec<u8>>,
    /// The lrand48 state behind `math.random`, shared by both Lua states as Redis's is.
    rand: Rc<Cell<u64>>,
    runs_since_gc: u32,
}

impl Default for Engine {
    fn default() -> Self {
        Engine::new()
    }
}

impl Engine {
    /// A new engine: no scripts, no libraries.
    pub fn new() -> Engine {
        let rand = Rc::new(Cell::new(sandbox::rand_state(sandbox::RAND_SEED)));
        Engine {
            scripts_lua: new_sandbox(false, rand.clone()),
            scripts: HashMap::default(),
            functions_lua: new_sandbox(true, rand.clone()),
            libraries: BTreeMap::new(),
            function_library: HashMap::new(),
            rand,
            runs_since_gc: 0,
        }
    }

    /// The SHA1 of `body` in lowercase hex, the name EVALSHA knows a script by.
    pub fn sha1hex(body: &[u8]) -> String {
        sha1hex(body)
    }

    /// SCRIPT LOAD: checks the shebang, compiles and caches the script; returns its SHA1.
    pub fn script_load(&mut self, body: &[u8]) -> Result<String, Frame> {
        let sha = sha1hex(body);
        let key = sha_key(sha.as_bytes()).expect("a SHA1 in hex has 40 digits");
        if !self.scripts.contains_key(&key) {
            self.compile_script(body, key)?;
        }
        Ok(sha)
    }

    /// SCRIPT EXISTS for one SHA1 (either case).
    pub fn script_exists(&self, sha: &[u8]) -> bool {
        sha_key(sha).is_some_and(|key| self.scripts.contains_key(&key))
    }

    /// SCRIPT FLUSH: forgets every script and starts a fresh Lua state, as Redis does.
    pub fn script_flush(&mut self) {
        self.scripts.clear();
        self.scripts_lua = new_sandbox(false, self.rand.clone());
    }

    /// The flags of a script body, from its shebang only (nothing is compiled).
    pub fn script_flags(body: &[u8]) -> Result<ScriptFlags, Frame> {
        shebang::script_flags(body)
    }

    /// The flags of a cached script, by SHA1 (either case).
    pub fn cached_flags(&self, sha: &[u8]) -> Option<ScriptFlags> {
        self.scripts.get(&sha_key(sha)?).map(|script| script.flags)
    }

    /// EVAL / EVALSHA (and their _RO forms: the server refuses writes through the Host).
    /// `client_proto` is the calling connection's protocol; the returned frame is meant to be
    /// encoded in it (the script's `redis.setresp` decides its RESP3 types).
    pub fn eval(&mut self, source: Source<'_>, keys: &[Bytes], argv: &[Bytes], client_proto: Protocol, host: &mut dyn Host) -> Frame {
        // The reply's shape depends on the script's setresp only; the encoder applies the
        // client's protocol.
        let _ = client_proto;
        let key = match source {
            Source::Body(body) => match self.script_load(body) {
                Ok(sha) => sha_key(sha.as_bytes()).expect("a SHA1 in hex has 40 digits"),
                Err(error) => return error,
            },
            Source::Sha(sha) => match sha_key(sha) {
                Some(key) => key,
                None => return Frame::error("NOSCRIPT No matching script. Please use EVAL."),
            },
        };
        let Some(script) = self.scripts.get(&key) else {
            return Frame::error("NOSCRIPT No matching script. Please use EVAL.");
        };
        // Keys come from `sha1hex`: ASCII hex digits.
        let name = std::str::from_utf8(&key).unwrap_or_default();
        let frame = run_script(&self.scripts_lua, &script.function, Arguments::Globals { keys, argv }, name, host);
        self.after_run(false);
        frame
    }

    fn compile_script(&mut self, body: &[u8], key: ShaKey) -> Result<(), Frame> {
        let flags = shebang::script_flags(body)?;
        let function = self
            .scripts_lua
            .compile(shebang::without_shebang(body), "@user_script")
            .map_err(|message| Frame::Error(format!("ERR Error compiling script (new function): {message}").into()))?;
        self.scripts.insert(key, Script { function, flags, body_len: body.len() });
        Ok(())
    }

    /// Counts a run and, every [`GC_PERIOD_RUNS`] runs, takes a GC step on the Lua state that
    /// ran (`functions`: the FUNCTION state), as Redis does after a script or function. The
    /// other state made no garbage in this run; stepping it too would mark and sweep it for
    /// nothing.
    ///
    /// Redis's step is "as if 50 KB were allocated", which on a heap this small finishes a
    /// whole cycle (marking every live object) every 50 runs; our heap is about 2.5 times
    /// Redis's (75-90 KB against 33 KB), so that step cost 7% of a one-line EVALSHA. We take
    /// one basic incremental step instead (`LUA_GCSTEP` with 0). The heap stays bounded
    /// either way: Lua's own incremental collector runs in both states and starts a cycle
    /// whenever the heap doubles (`setpause` 200), paying work in proportion to allocation.
    fn after_run(&mut self, functions: bool) {
        self.runs_since_gc += 1;
        if self.runs_since_gc >= GC_PERIOD_RUNS {
            self.runs_since_gc = 0;
            let lua = if functions { &self.functions_lua.lua } else { &self.scripts_lua.lua };
            let _ = lua.gc_step();
        }
    }

    /// `FUNCTION LOAD [REPLACE]`: loads a library; returns its name.
    pub fn function_load(&mut self, code: &[u8], replace: bool) -> Result<String, Frame> {
        let name = shebang::library_name(code)?;
        if self.libraries.contains_key(&name) && !replace {
            return Err(Frame::Error(format!("ERR Library '{}' already exists", String::from_utf8_lossy(&name)).into()));
        }
        let library = self.build_library(code)?;
        for function in library.functions.keys() {
            if let Some(owner) = self.function_library.get(function) {
                if *owner != name {
                    return Err(Frame::Error(format!("ERR Function {} already exists", String::from_utf8_lossy(function)).into()));
                }
            }
        }
        self.remove_library(&name);
        self.insert_library(name.clone(), library);
        Ok(String::from_utf8_lossy(&name).into_owned())
    }

    /// Compiles a library and runs its main chunk, collecting its functions; changes nothing.
    fn build_library(&mut self, code: &[u8]) -> Result<Library, Frame> {
        shebang::library_name(code)?;
        let sandbox = &self.functions_lua;
        let chunk = sandbox
            .compile(shebang::without_shebang(code), "@user_function")
            .map_err(|message| Frame::Error(format!("ERR Error compiling function: {message}").into()))?;
        let registered: RefCell<BTreeMap<Vec<u8>, LibraryFunction>> = RefCell::new(BTreeMap::new());
        let outcome = sandbox.lua.scope(|scope| {
            let register = scope.create_function(|lua, args: MultiValue| register_function(lua, args, &registered))?;
            sandbox.impl_table.raw_set("register_function", register)?;
            if let Some(load_env) = &sandbox.load_env {
                sandbox.genv_mt.raw_set("__index", load_env.clone())?;
            }
            let state = &sandbox.state;
            state.killed.set(false);
            state.started.set(Instant::now());
            state.running.set(true);
            let result = sandbox.run_chunk.call::<MultiValue>(chunk);
            state.running.set(false);
            let outcome = sandbox.outcome(result).map(|_| ());
            sandbox.genv_mt.raw_set("__index", sandbox.env.clone())?;
            sandbox.impl_table.raw_set("register_function", Value::Nil)?;
            Ok(outcome)
        });
        let timed_out = sandbox.state.killed.replace(false);
        let outcome = outcome.map_err(|error| Frame::Error(format!("ERR Error registering functions: ERR {error}").into()))?;
        if timed_out {
            return Err(Frame::error("ERR Error registering functions: ERR FUNCTION LOAD timeout"));
        }
        if let Err(info) = outcome {
            let mut text = b"ERR Error registering functions: ".to_vec();
            text.extend_from_slice(&info.message);
            return Err(Frame::Error(text.into()));
        }
        let functions = registered.into_inner();
        if functions.is_empty() {
            return Err(Frame::error("ERR No functions registered"));
        }
        Ok(Library { code: Bytes::copy_from_slice(code), functions })
    }

    fn remove_library(&mut self, name: &[u8]) -> Option<Library> {
        let library = self.libraries.remove(name)?;
        for function in library.functions.keys() {
            self.function_library.remove(function);
        }
        Some(library)
    }

    fn insert_library(&mut self, name: Vec<u8>, library: Library) {
        for function in library.functions.keys() {
            self.function_library.insert(function.clone(), name.clone());
        }
        self.libraries.insert(name, library);
    }

    /// FUNCTION DELETE.
    pub fn function_delete(&mut self, library: &[u8]) -> Result<(), Frame> {
        match self.remove_library(library) {
            Some(_) => {
                self.functions_lua.lua.expire_registry_values();
                Ok(())
            }
            None => Err(Frame::error("ERR Library not found")),
        }
    }

    /// FUNCTION FLUSH: deletes every library and starts a fresh Lua state.
    pub fn function_flush(&mut self) {
        self.libraries.clear();
        self.function_library.clear();
        self.functions_lua = new_sandbox(true, self.rand.clone());
    }

    /// `FUNCTION LIST [LIBRARYNAME pattern] [WITHCODE]`: libraries whose name matches the glob
    /// (case-insensitive, as Redis), in name order, functions in name order (Redis's order is
    /// its hash tables'). Maps and sets downgrade to arrays for RESP2 clients.
    pub fn function_list(&self, library_pattern: Option<&[u8]>, with_code: bool) -> Frame {
        let mut out = Vec::new();
        for (name, library) in &self.libraries {
            if let Some(pattern) = library_pattern {
                if !shoal_glob::matches_nocase(pattern, name) {
                    continue;
                }
            }
            let functions = library
                .functions
                .iter()
                .map(|(function_name, function)| {
                    Frame::Map(vec![
                        (Frame::bulk("name"), Frame::Bulk(Bytes::copy_from_slice(function_name))),
                        (Frame::bulk("description"), function.description.clone().map_or(Frame::Null, Frame::Bulk)),
                        (Frame::bulk("flags"), Frame::Set(shebang::flag_names(&function.flags).into_iter().map(Frame::simple).collect())),
                    ])
                })
                .collect();
            let mut fields = vec![
                (Frame::bulk("library_name"), Frame::Bulk(Bytes::copy_from_slice(name))),
                (Frame::bulk("engine"), Frame::bulk("LUA")),
                (Frame::bulk("functions"), Frame::Array(functions)),
            ];
            if with_code {
                fields.push((Frame::bulk("library_code"), Frame::Bulk(library.code.clone())));
            }
            out.push(Frame::Map(fields));
        }
        Frame::Array(out)
    }

    /// Every library's source code, in name order (what an RDB file records of functions).
    pub fn library_codes(&self) -> Vec<Bytes> {
        self.libraries.values().map(|library| library.code.clone()).collect()
    }

    /// FUNCTION DUMP: the payload in Redis's format (libraries in name order).
    pub fn function_dump(&self) -> Vec<u8> {
        dump::encode(self.libraries.values().map(|library| library.code.as_ref()))
    }

    /// `FUNCTION RESTORE payload [FLUSH|APPEND|REPLACE]`. All or nothing: on an error nothing
    /// changes.
    pub fn function_restore(&mut self, payload: &[u8], policy: RestorePolicy) -> Result<(), Frame> {
        let codes = dump::decode(payload).map_err(|error| match error {
            dump::DecodeError::VersionOrChecksum => Frame::error("ERR DUMP payload version or checksum are wrong"),
            dump::DecodeError::NotAFunction => Frame::error("ERR given type is not a function"),
            dump::DecodeError::Malformed => Frame::error("ERR Missing library metadata"),
        })?;
        let mut incoming: BTreeMap<Vec<u8>, Library> = BTreeMap::new();
        let mut incoming_functions: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        for code in &codes {
            let name = shebang::library_name(code)?;
            let library = self.build_library(code)?;
            if incoming.contains_key(&name) {
                return Err(Frame::Error(format!("ERR Library {} already exists", String::from_utf8_lossy(&name)).into()));
            }
            for function in library.functions.keys() {
                if incoming_functions.insert(function.clone(), name.clone()).is_some() {
                    return Err(Frame::Error(format!("ERR Function {} already exists", String::from_utf8_lossy(function)).into()));
                }
            }
            incoming.insert(name, library);
        }
        if policy != RestorePolicy::Flush {
            for (name, library) in &incoming {
                if self.libraries.contains_key(name) && policy == RestorePolicy::Append {
                    return Err(Frame::Error(format!("ERR Library {} already exists", String::from_utf8_lossy(name)).into()));
                }
                for function in library.functions.keys() {
                    if let Some(owner) = self.function_library.get(function) {
                        // Under REPLACE the owner may be a library being replaced.
                        let replaced = policy == RestorePolicy::Replace && incoming.contains_key(owner);
                        if !replaced {
                            return Err(Frame::Error(format!("ERR Function {} already exists", String::from_utf8_lossy(function)).into()));
                        }
                    }
                }
            }
        }
        if policy == RestorePolicy::Flush {
            self.libraries.clear();
            self.function_library.clear();
        }
        for (name, library) in incoming {
            self.remove_library(&name);
            self.insert_library(name, library);
        }
        self.functions_lua.lua.expire_registry_values();
        Ok(())
    }

    /// FUNCTION STATS's counts: (libraries, functions).
    pub fn function_counts(&self) -> (usize, usize) {
        (self.libraries.len(), self.function_library.len())
    }

    /// What the engine holds in memory, as Redis's INFO memory and MEMORY STATS report it.
    pub fn memory(&self) -> EngineMemory {
        /// What Redis counts per cached script or library besides its text: its dict entry
        /// and object headers.
        const ENTRY_BYTES: usize = 96;
        EngineMemory {
            vm_eval: self.scripts_lua.lua.used_memory(),
            vm_functions: self.functions_lua.lua.used_memory(),
            cached_scripts: self.scripts.len(),
            scripts_eval: self.scripts.values().map(|script| script.body_len + ENTRY_BYTES).sum(),
            functions: self.libraries.values().map(|library| library.code.len() + ENTRY_BYTES).sum(),
        }
    }

    /// The flags of a function, by name.
    pub fn function_flags(&self, name: &[u8]) -> Option<ScriptFlags> {
        let library = self.function_library.get(name)?;
        self.libraries.get(library)?.functions.get(name).map(|function| function.flags)
    }

    /// FCALL / FCALL_RO (`read_only_call`): runs a function with its keys and arguments.
    pub fn fcall(&mut self, name: &[u8], keys: &[Bytes], argv: &[Bytes], client_proto: Protocol, read_only_call: bool, host: &mut dyn Host) -> Frame {
        let _ = client_proto;
        let Some(library) = self.function_library.get(name) else {
            return Frame::error("ERR Function not found");
        };
        let Some(function) = self.libraries.get(library).and_then(|library| library.functions.get(name)) else {
            return Frame::error("ERR Function not found");
        };
        if read_only_call && !function.flags.no_writes {
            return Frame::error("ERR Can not execute a script with write flag using *_ro command.");
        }
        let frame = run_script(&self.functions_lua, &function.callback, Arguments::Parameters { keys, argv }, &String::from_utf8_lossy(name), host);
        self.after_run(true);
        frame
    }
}

fn new_sandbox(functions: bool, rand: Rc<Cell<u64>>) -> Sandbox {
    // Only allocation failure could make this fail, and then nothing else would work either.
    let sandbox = Sandbox::new(functions, rand).and_then(|sandbox| {
        install_host_functions(&sandbox)?;
        install_hook(&sandbox)?;
        Ok(sandbox)
    });
    match sandbox {
        Ok(sandbox) => sandbox,
        Err(error) => panic!("creating the Lua sandbox failed: {error}"),
    }
}

/// The SHA1 of `bytes` in lowercase hex.
pub(crate) fn sha1hex(bytes: &[u8]) -> String {
    sha1_smol::Sha1::from(bytes).digest().to_string()
}

/// A script's SHA1 in lowercase hex, as the cache keys it.
type ShaKey = [u8; 40];

/// The cache key of a SHA1 given in hex, either case; `None` when it cannot be one (not 40
/// bytes long), so no script has it.
fn sha_key(sha: &[u8]) -> Option<ShaKey> {
    let mut key: ShaKey = sha.try_into().ok()?;
    key.make_ascii_lowercase();
    Some(key)
}

/// How a script receives its keys and arguments.
enum Arguments<'a> {
    /// EVAL: the globals KEYS and ARGV.
    Globals { keys: &'a [Bytes], argv: &'a [Bytes] },
    /// FCALL: the callback's two parameters.
    Parameters { keys: &'a [Bytes], argv: &'a [Bytes] },
}

/// Calls the sandbox's runner on `function` with its keys and arguments (see
/// [`sandbox::run_with_arguments`]): one protected call, no mlua call per value and no
/// closure created per run.
fn call_runner(sandbox: &Sandbox, function: &Function, arguments: Arguments<'_>) -> mlua::Result<MultiValue> {
    let (keys, argv, globals) = match arguments {
        Arguments::Globals { keys, argv } => (keys, argv, true),
        Arguments::Parameters { keys, argv } => (keys, argv, false),
    };
    let arguments = sandbox::RunArguments { keys, argv, globals };
    // The C function reads `arguments` through this pointer during the call only.
    let pointer = mlua::LightUserData(std::ptr::from_ref(&arguments).cast_mut().cast());
    sandbox.run_with_arguments.call::<MultiValue>((&sandbox.env, &sandbox.run, function, pointer))
}

/// Runs `function` with the host in the sandbox's slot and returns its reply; `name` is what
/// errors report after "script:" (the SHA1 or the function name).
fn run_script(sandbox: &Sandbox, function: &Function, arguments: Arguments<'_>, name: &str, host: &mut dyn Host) -> Frame {
    let state = &sandbox.state;
    state.resp3.set(false);
    state.killed.set(false);
    state.started.set(Instant::now());
    let result = {
        let _slot = sandbox::HostSlot::new(state, host);
        state.running.set(true);
        let result = call_runner(sandbox, function, arguments);
        state.running.set(false);
        result
    };
    let frame = match sandbox.outcome(result) {
        Ok(value) => convert::lua_to_frame(&value, state.resp3.get()),
        Err(info) => error_frame(info, name, state.killed.get()),
    };
    if state.killed.replace(false) && !matches!(&frame, Frame::Error(text) if text.starts_with(KILLED)) {
        // A script that caught the kill error with pcall still fails.
        return Frame::Error(Bytes::from_static(KILLED));
    }
    frame
}

/// Registers `redis.log`'s sink, once for the sandbox's life: it reaches the running script's
/// host through the state's slot, so no callback is created per run. (`redis.call`, `pcall`
/// and `acl_check_cmd` are Lua C closures that `Sandbox::new` builds: `sandbox::host_function`.)
fn install_host_functions(sandbox: &Sandbox) -> mlua::Result<()> {
    let lua = &sandbox.lua;
    let state = sandbox.state.clone();
    let log = lua.create_function(move |_, (level, message): (i64, mlua::String)| {
        let level = match level {
            0 => LogLevel::Debug,
            1 => LogLevel::Verbose,
            2 => LogLevel::Notice,
            _ => LogLevel::Warning,
        };
        // Without a host (a library loading) the message is dropped.
        state.with_host(|host| host.log(level, &message.as_bytes()));
        Ok(())
    })?;
    sandbox.impl_table.raw_set("log", log)?;
    Ok(())
}

/// The error a killed script fails with (Redis says SCRIPT KILL for functions too).
const KILLED: &[u8] = b"ERR Script killed by user with SCRIPT KILL...";

fn error_frame(info: ErrorInfo, name: &str, killed: bool) -> Frame {
    let mut text = if killed { KILLED.to_vec() } else { info.message };
    if let Some((source, line)) = info.location {
        text.extend_from_slice(format!(" script: {name}, on {source}:{line}.").as_bytes());
    }
    Frame::Error(text.into())
}

/// `redis.register_function`, in both its forms, with Redis's errors (returned as
/// `(true, {err=...})` for the Lua side to raise).
fn register_function(lua: &Lua, args: MultiValue, registered: &RefCell<BTreeMap<Vec<u8>, LibraryFunction>>) -> mlua::Result<(bool, Value)> {
    let fail = |message: &str| -> mlua::Result<(bool, Value)> { Ok((true, Value::Table(sandbox::error_table(lua, message.as_bytes())?))) };
    let as_name = |value: &Value| -> Option<Vec<u8>> {
        match value {
            Value::String(s) => Some(s.as_bytes().to_vec()),
            Value::Number(_) | Value::Integer(_) => lua.coerce_string(value.clone()).ok().flatten().map(|s| s.as_bytes().to_vec()),
            _ => None,
        }
    };
    let args: Vec<Value> = args.into_iter().collect();
    let (name, callback, flags, description) = match args.as_slice() {
        [Value::Table(table)] => {
            let mut name = None;
            let mut callback = None;
            let mut flags = ScriptFlags { shebang: true, ..ScriptFlags::default() };
            let mut description = None;
            for pair in table.pairs::<Value, Value>() {
                let (key, value) = pair?;
                let key = match &key {
                    Value::String(s) => s.as_bytes().to_vec(),
                    _ => return fail("ERR named argument key given to redis.register_function is not a string"),
                };
                match key.as_slice() {
                    b"function_name" => match as_name(&value) {
                        Some(value) => name = Some(value),
                        None => return fail("ERR function_name argument given to redis.register_function must be a string"),
                    },
                    b"description" => match as_name(&value) {
                        Some(value) => description = Some(Bytes::from(value)),
                        None => return fail("ERR description argument given to redis.register_function must be a string"),
                    },
                    b"callback" => match value {
                        Value::Function(function) => callback = Some(function),
                        _ => return fail("ERR callback argument given to redis.register_function must be a function"),
                    },
                    b"flags" => {
                        let Value::Table(list) = value else {
                            return fail("ERR flags argument to redis.register_function must be a table representing function flags");
                        };
                        for item in list.sequence_values::<Value>() {
                            match item? {
                                Value::String(flag) if shebang::set_flag(&mut flags, &flag.as_bytes()) => {}
                                _ => return fail("ERR unknown flag given"),
                            }
                        }
                    }
                    _ => return fail("ERR unknown argument given to redis.register_function"),
                }
            }
            let Some(name) = name else {
                return fail("ERR redis.register_function must get a function name argument");
            };
            let Some(callback) = callback else {
                return fail("ERR redis.register_function must get a callback argument");
            };
            (name, callback, flags, description)
        }
        [_] => return fail("ERR calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments)."),
        [name, callback] => {
            let Some(name) = as_name(name) else {
                return fail("ERR first argument to redis.register_function must be a string");
            };
            let Value::Function(callback) = callback else {
                return fail("ERR second argument to redis.register_function must be a function");
            };
            (name, callback.clone(), ScriptFlags { shebang: true, ..ScriptFlags::default() }, None)
        }
        _ => return fail("ERR wrong number of arguments to redis.register_function"),
    };
    if !shebang::valid_name(&name) {
        return fail(shebang::INVALID_NAME);
    }
    let mut registered = registered.borrow_mut();
    if registered.contains_key(&name) {
        return fail("ERR Function already exists in the library");
    }
    registered.insert(name, LibraryFunction { callback, flags, description });
    Ok((false, Value::Nil))
}

/// Installs the instruction-count hook of a sandbox: it asks the running script's host
/// whether to kill the script, and stops a library's main chunk (no host) after
/// [`LOAD_TIMEOUT`].
fn install_hook(sandbox: &Sandbox) -> mlua::Result<()> {
    let state = sandbox.state.clone();
    let triggers = HookTriggers { every_nth_instruction: Some(KILL_CHECK_INSTRUCTIONS), ..HookTriggers::new() };
    sandbox.lua.set_global_hook(triggers, move |_, _| {
        if !state.running.get() {
            return Ok(VmState::Continue);
        }
        if state.killed.get() {
            return Err(mlua::Error::runtime("Script killed"));
        }
        let elapsed = state.started.get().elapsed();
        // A library loading: no host, only the load timeout.
        let kill = state.with_host(|host| host.should_kill(elapsed)).unwrap_or(elapsed > LOAD_TIMEOUT);
        if kill {
            state.killed.set(true);
            return Err(mlua::Error::runtime("Script killed"));
        }
        Ok(VmState::Continue)
    })
}

#[cfg(test)]
mod tests;
