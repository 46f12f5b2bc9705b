//! One Lua 5.1 state with Redis's sandbox: the globals scripts see, the `redis` library, the
//! read-only tables, Redis's `math.random`, and the runner that reports errors as Redis does.
//!
//! Most of the sandbox is Lua (`prelude.lua`): wrappers raise Lua values (strings and
//! `{err=...}` tables) exactly as Redis's C functions do, which a Rust callback cannot do
//! through mlua. The Rust side here supplies what Lua cannot: the host calls (as raw Lua C
//! functions, which raise as Redis's do, and are a small script's hottest path), SHA1, the
//! PRNG and the error handler, which reads the Lua stack.

use std::cell::Cell;
use std::ffi::c_int;
use std::ptr::NonNull;
use std::rc::Rc;
use std::time::Instant;

use crate::Host;
use bytes::Bytes;
use mlua::{ffi, ChunkMode, Function, Lua, LuaOptions, MultiValue, StdLib, Table, Value};
use shoal_resp::{Frame, Protocol};

/// The chunk name of the prelude; the error handler skips its frames.
const INTERNAL_CHUNK: &str = "=[shoal]";

/// What `redis.REDIS_VERSION` and `redis.REDIS_VERSION_NUM` report (the oracle's).
pub(crate) const REDIS_VERSION: &str = "7.0.15";
pub(crate) const REDIS_VERSION_NUM: i64 = 0x0007_000f;

/// Redis's `lrand48`: the seed Redis 7.0 starts from, observed on the oracle (its first
/// `math.random()` after start is 0.39646477363839, which is this seed's first draw).
pub(crate) const RAND_SEED: i32 = 0x1234_abcd;

/// The state of an lrand48 generator seeded with `seed`.
pub(crate) fn rand_state(seed: i32) -> u64 {
    (u64::from(seed as u32) << 16) | 0x330e
}

/// Advances an lrand48 state and returns its 31-bit draw.
fn rand_draw(state: &Cell<u64>) -> i32 {
    let next = state.get().wrapping_mul(0x5_deec_e66d).wrapping_add(0xb) & ((1 << 48) - 1);
    state.set(next);
    (next >> 17) as i32
}

/// Per-run flags shared by the callbacks of one Lua state.
pub(crate) struct RunState {
    /// Whether the script called `redis.setresp(3)`.
    pub resp3: Cell<bool>,
    /// Set once the host asked to kill the running script.
    pub killed: Cell<bool>,
    /// When the running script started.
    pub started: Cell<Instant>,
    /// Whether a script is running (the hook does nothing otherwise).
    pub running: Cell<bool>,
    /// The host of the running script, set by [`HostSlot`] for the length of one run; empty
    /// between runs and while a library loads. Taken out while a callback uses it.
    host: Cell<Option<NonNull<dyn Host>>>,
    /// The reply a host function is pushing onto the Lua stack (see [`host_function`]).
    reply: Cell<Option<Frame>>,
}

impl RunState {
    pub fn new() -> RunState {
        RunState {
            resp3: Cell::new(false),
            killed: Cell::new(false),
            started: Cell::new(Instant::now()),
            running: Cell::new(false),
            host: Cell::new(None),
            reply: Cell::new(None),
        }
    }

    /// Runs `f` with the running script's host, or returns `None` when there is none (no
    /// script running, a library loading, or a callback of this run already using it).
    pub fn with_host<R>(&self, f: impl FnOnce(&mut dyn Host) -> R) -> Option<R> {
        let mut host = self.host.take()?;
        // SAFETY: the pointer was made from a `&mut dyn Host` that `HostSlot` borrows for as
        // long as it is in the slot, and `HostSlot`'s drop empties the slot before that
        // borrow ends. Taking it out of the slot while `f` runs makes this the only
        // reference in use: a nested callback finds the slot empty.
        let result = f(unsafe { host.as_mut() });
        self.host.set(Some(host));
        Some(result)
    }
}

/// Puts a script's host in its state's slot for the length of one run, and empties the slot
/// when dropped (also on panic).
pub(crate) struct HostSlot<'a> {
    state: &'a RunState,
}

impl<'a> HostSlot<'a> {
    pub fn new(state: &'a RunState, host: &'a mut dyn Host) -> HostSlot<'a> {
        let host: NonNull<dyn Host + 'a> = NonNull::from(host);
        // SAFETY: only the trait object's lifetime bound changes (the layout is the same).
        // The pointer is used only while it is in the slot, and `drop` below takes it out
        // before `'a` ends, so it never outlives the borrow it came from.
        let host: NonNull<dyn Host + 'static> = unsafe { std::mem::transmute::<NonNull<dyn Host + 'a>, NonNull<dyn Host + 'static>>(host) };
        state.host.set(Some(host));
        HostSlot { state }
    }
}

impl Drop for HostSlot<'_> {
    fn drop(&mut self) {
        self.state.host.set(None);
    }
}

/// A Lua state with the sandbox installed.
pub(crate) struct Sandbox {
    pub lua: Lua,
    /// The helpers the prelude uses, and the host functions (`call`, `log`, `acl_check_cmd`)
    /// that reach the running script's host through [`RunState::with_host`].
    pub impl_table: Table,
    /// What scripts see as `_G`: a read-only proxy.
    pub genv: Table,
    /// The real table behind `genv` (KEYS and ARGV are set in it).
    pub env: Table,
    /// The metatable of `genv`; its `__index` is switched to `load_env` while a library loads.
    pub genv_mt: Table,
    /// The globals of a library while it loads (functions only).
    pub load_env: Option<Table>,
    /// `run(f [, keys, args])`: xpcall with the error handler; returns ok and the first result.
    pub run: Function,
    /// `run_chunk(f)`: runs a library's main chunk under the error handler.
    pub run_chunk: Function,
    /// [`run_with_arguments`]; held here only, never reachable from Lua code.
    pub run_with_arguments: Function,
    pub state: Rc<RunState>,
}

/// Where an error was raised, as the handler found it: Redis's `source` and `line`.
pub(crate) struct ErrorInfo {
    pub message: Vec<u8>,
    pub location: Option<(String, i64)>,
}

impl Sandbox {
    /// A fresh state for EVAL scripts (`functions == false`) or FUNCTION libraries, drawing
    /// `math.random` from the engine's shared generator.
    pub fn new(functions: bool, rand: Rc<Cell<u64>>) -> mlua::Result<Sandbox> {
        let lua = Lua::new_with(StdLib::TABLE | StdLib::STRING | StdLib::MATH, LuaOptions::default())?;
        crate::libs::register_all(&lua)?;
        let state = Rc::new(RunState::new());
        let state_ref = state.clone();

        let impl_table = lua.create_table()?;
        impl_table.raw_set("version", REDIS_VERSION)?;
        impl_table.raw_set("version_num", REDIS_VERSION_NUM)?;
        let draw = rand.clone();
        impl_table.raw_set(
            "rand_next",
            lua.create_function(move |_, ()| {
                let max = f64::from(i32::MAX);
                Ok(f64::from(rand_draw(&draw) % i32::MAX) / max)
            })?,
        )?;
        impl_table.raw_set(
            "rand_seed",
            lua.create_function(move |_, seed: f64| {
                rand.set(rand_state(c_int_cast(seed)));
                Ok(())
            })?,
        )?;
        impl_table.raw_set("sha1hex", lua.create_function(|_, s: mlua::String| Ok(crate::sha1hex(&s.as_bytes())))?)?;
        let resp_state = state.clone();
        impl_table.raw_set(
            "setresp",
            lua.create_function(move |_, version: f64| {
                resp_state.resp3.set(version == 3.0);
                Ok(())
            })?,
        )?;
        impl_table.raw_set("handler", lua.create_function(error_handler)?)?;
        let kill_state = state.clone();
        impl_table.raw_set("killed", lua.create_function(move |_, ()| Ok(kill_state.killed.get()))?)?;
        impl_table.raw_set("expose", lua.create_function(expose)?)?;
        for (name, what) in [("call", HostFunction::Call), ("pcall", HostFunction::PCall), ("acl_check_cmd", HostFunction::AclCheck)] {
            // SAFETY: the closure's upvalues are what `host_function` reads: the RunState,
            // which this Sandbox keeps alive (scripts run only through it), and the number.
            let function = unsafe {
                lua.exec_raw::<Function>((), |state| {
                    ffi::lua_pushlightuserdata(state, Rc::as_ptr(&state_ref).cast_mut().cast());
                    ffi::lua_pushinteger(state, what as ffi::lua_Integer);
                    ffi::lua_pushcclosure(state, host_function, 2);
                })?
            };
            impl_table.raw_set(name, function)?;
        }

        let prelude = lua.load(include_str!("prelude.lua")).set_name(INTERNAL_CHUNK).set_mode(ChunkMode::Text).into_function()?;
        let (genv, env, genv_mt, load_env, run, run_chunk): (Table, Table, Table, Option<Table>, Function, Function) =
            prelude.call((lua.globals(), impl_table.clone(), functions))?;

        // SAFETY: `run_with_arguments` is a Lua C function; see its contract. The Function is
        // kept in the Sandbox and never stored where Lua code could call it. Its upvalues are
        // the names it sets, interned once rather than on every run.
        let run_with_arguments = unsafe {
            lua.exec_raw::<Function>((), |state| {
                ffi::lua_pushstring(state, c"KEYS".as_ptr());
                ffi::lua_pushstring(state, c"ARGV".as_ptr());
                ffi::lua_pushcclosure(state, run_with_arguments, 2);
            })?
        };

        Ok(Sandbox { lua, impl_table, genv, env, genv_mt, load_env, run, run_chunk, run_with_arguments, state })
    }

    /// Compiles `code` as a chunk named `chunk_name` running in the sandbox's globals; the
    /// error is Lua's message (`user_script:1: unexpected symbol near '<eof>'`).
    pub fn compile(&self, code: &[u8], chunk_name: &str) -> Result<Function, String> {
        if code.first() == Some(&0x1b) {
            // Bytecode is refused: crafted bytecode can crash Lua 5.1.
            return Err(format!("{}: attempt to load a binary chunk", chunk_name.trim_start_matches('@')));
        }
        let function = self.lua.load(code).set_name(chunk_name).set_mode(ChunkMode::Text).into_function().map_err(|error| match error {
            mlua::Error::SyntaxError { message, .. } => message,
            other => other.to_string(),
        })?;
        function.set_environment(self.genv.clone()).map_err(|error| error.to_string())?;
        Ok(function)
    }

    /// Reads what the runner returned: `Ok(value)`, or the error with its location.
    pub fn outcome(&self, result: mlua::Result<MultiValue>) -> Result<Value, ErrorInfo> {
        let mut values = match result {
            Ok(values) => values.into_iter(),
            Err(error) => return Err(ErrorInfo { message: format!("ERR {error}").into_bytes(), location: None }),
        };
        let ok = matches!(values.next(), Some(Value::Boolean(true)));
        let value = values.next().unwrap_or(Value::Nil);
        if ok {
            return Ok(value);
        }
        Err(error_info(&self.lua, value))
    }
}

/// C's `(int)` of a double on x86-64 (through a 64-bit integer, as Lua 5.1's `lua_tointeger`).
pub(crate) fn c_int_cast(value: f64) -> i32 {
    c_long_cast(value) as i32
}

/// 2^63, the first double past `i64::MAX`.
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

/// C's `(long long)` of a double on x86-64: out of range and NaN give `i64::MIN`.
pub(crate) fn c_long_cast(value: f64) -> i64 {
    if value.is_nan() || !(-TWO_POW_63..TWO_POW_63).contains(&value) {
        i64::MIN
    } else {
        value as i64
    }
}

/// The handler of the runner's xpcall: turns any error value into a table `{err=...}` and
/// records where it was raised, as Redis's `__redis__err__handler` does. The place is the
/// innermost frame outside the prelude, or the one above it if that is a C function (the
/// C function that raised the error).
fn error_handler(lua: &Lua, error: Value) -> mlua::Result<Table> {
    // Level 0 is this handler. Frames of the prelude do not count, nor C functions called
    // from the prelude (its `error` calls): a wrapper then looks like the C function Redis
    // has in its place, since every wrapper is entered through a C trampoline.
    let mut stack: Vec<(&'static str, Option<String>, i64)> = Vec::new();
    for level in 1..64 {
        let Some(frame) = lua.inspect_stack(level, |debug| {
            let source = debug.source();
            (source.what, source.source.map(|s| s.into_owned()), debug.current_line().map_or(-1, |line| line as i64))
        }) else {
            break;
        };
        stack.push(frame);
    }
    let internal = |index: usize| stack.get(index).is_some_and(|(_, source, _)| source.as_deref() == Some(INTERNAL_CHUNK));
    let frames: Vec<&(&'static str, Option<String>, i64)> =
        (0..stack.len()).filter(|&index| !(internal(index) || stack[index].0 == "C" && internal(index + 1))).map(|index| &stack[index]).collect();
    let picked = match frames.first() {
        Some((what, ..)) if *what == "C" => frames.get(1).copied(),
        other => other.copied(),
    };
    let table = match &error {
        Value::Table(table) if matches!(table.raw_get::<Value>("err"), Ok(Value::String(_))) => table.clone(),
        other => {
            let table = lua.create_table()?;
            let mut message = b"ERR ".to_vec();
            let described = describe(lua, other);
            // A Lua library function failing inside one of the prelude's wrappers names the
            // prelude's line; name the script's line instead, as Redis would.
            let caller = frames.iter().find(|(what, ..)| *what != "C");
            match (strip_internal_position(&described), caller) {
                (Some(rest), Some((_, Some(source), line))) => {
                    message.extend_from_slice(format!("{}:{line}: ", source.trim_start_matches('@')).as_bytes());
                    message.extend_from_slice(rest);
                }
                _ => message.extend_from_slice(&described),
            }
            table.raw_set("err", lua.create_string(&message)?)?;
            table
        }
    };
    if let Some((_, Some(source), line)) = picked {
        table.raw_set("source", source.as_str())?;
        table.raw_set("line", *line)?;
    }
    Ok(table)
}

/// The message without a leading `[shoal]:<line>: ` position, if it has one.
fn strip_internal_position(message: &[u8]) -> Option<&[u8]> {
    let rest = message.strip_prefix(b"[shoal]:")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    rest[digits..].strip_prefix(b": ")
}

/// A raised value as Lua's `tostring` shows it, for values that are not error tables.
fn describe(lua: &Lua, value: &Value) -> Vec<u8> {
    match value {
        Value::String(s) => s.as_bytes().to_vec(),
        Value::Number(_) | Value::Integer(_) => lua.coerce_string(value.clone()).ok().flatten().map(|s| s.as_bytes().to_vec()).unwrap_or_default(),
        Value::Nil => b"nil".to_vec(),
        Value::Boolean(b) => {
            if *b {
                b"true".to_vec()
            } else {
                b"false".to_vec()
            }
        }
        Value::Error(error) => error.to_string().into_bytes(),
        // Redis 7.0 crashes on error({}); an error without a message gets a generic one.
        _ => b"unknown error".to_vec(),
    }
}

/// The message and location of what the handler returned.
fn error_info(lua: &Lua, value: Value) -> ErrorInfo {
    match value {
        Value::Table(table) => {
            let message = match table.raw_get::<Value>("err") {
                Ok(Value::String(s)) => s.as_bytes().to_vec(),
                _ => b"ERR unknown error".to_vec(),
            };
            let source = table.raw_get::<Option<mlua::String>>("source").ok().flatten().map(|s| s.to_string_lossy());
            let line = table.raw_get::<Option<i64>>("line").ok().flatten();
            ErrorInfo { message, location: source.zip(line) }
        }
        // "error in error handling" and the like come back as plain values.
        other => {
            let mut message = b"ERR ".to_vec();
            message.extend_from_slice(&describe(lua, &other));
            ErrorInfo { message, location: None }
        }
    }
}

/// What a host function does (its second upvalue).
#[derive(Clone, Copy, PartialEq, Eq)]
enum HostFunction {
    /// `redis.call`: runs a command; an error reply is raised.
    Call = 0,
    /// `redis.pcall`: runs a command; an error reply is returned as `{err=...}`.
    PCall = 1,
    /// `redis.acl_check_cmd`: whether the user may run the command; errors are raised.
    AclCheck = 2,
}

/// `redis.call`, `redis.pcall` and `redis.acl_check_cmd`: Lua C closures over the state's
/// [`RunState`] (upvalue 1, a light userdata) and a [`HostFunction`] (upvalue 2). They read
/// their arguments straight from the Lua stack and push the reply straight onto it (no mlua
/// value, callback or Lua wrapper in between: a third of a small script's cost), and raise
/// errors as Redis's C functions do, with the error table as the error value.
///
/// # Safety
/// Called by Lua only, as one of the closures `Sandbox::new` builds, while the Sandbox (and
/// so the RunState) lives.
unsafe extern "C-unwind" fn host_function(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: see the contract. `host_reply` returns with nothing left to drop, so the
    // longjmp of `lua_error` skips no destructor.
    unsafe {
        let run = &*(ffi::lua_touserdata(state, ffi::lua_upvalueindex(1)) as *const RunState);
        let what = match ffi::lua_tointeger(state, ffi::lua_upvalueindex(2)) {
            0 => HostFunction::Call,
            1 => HostFunction::PCall,
            _ => HostFunction::AclCheck,
        };
        if host_reply(state, run, what) && what != HostFunction::PCall {
            ffi::lua_error(state)
        } else {
            1
        }
    }
}

/// Runs the host function `what` with the arguments on the stack and pushes its reply;
/// returns whether the reply is an error.
///
/// # Safety
/// `state` is a running C function's state. Pushing may raise a Lua memory error, which
/// longjmps out of here: the reply is then owned by `run` (not by this frame), and dropped
/// at the next call or with the state.
unsafe fn host_reply(state: *mut ffi::lua_State, run: &RunState, what: HostFunction) -> bool {
    // A panicking command becomes an error reply rather than unwinding through Lua's C frames.
    let reply = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: reading the stack raises nothing.
        let args = match unsafe { stack_args(state) } {
            Ok(args) => args,
            Err(message) => return Frame::Error(Bytes::from_static(message.as_bytes())),
        };
        match what {
            HostFunction::Call | HostFunction::PCall => {
                let proto = if run.resp3.get() { Protocol::Resp3 } else { Protocol::Resp2 };
                // Only a running script reaches redis.call; a loading library sees another redis.
                run.with_host(|host| host.call(&args, proto)).unwrap_or_else(|| Frame::Error(Bytes::from_static(b"ERR redis.call is not available here")))
            }
            HostFunction::AclCheck => match run.with_host(|host| host.acl_check(&args)).unwrap_or(Ok(true)) {
                Ok(allowed) => Frame::Boolean(allowed),
                Err(Frame::Error(text)) => Frame::Error(text),
                Err(_) => Frame::Error(Bytes::from_static(b"ERR Invalid command passed to redis.acl_check_cmd()")),
            },
        }
    }))
    .unwrap_or_else(|_| Frame::Error(Bytes::from_static(b"ERR the command panicked")));
    let failed = reply.is_error();
    // ACL's answer is a Lua boolean whatever the script's RESP version.
    let resp3 = run.resp3.get() || what == HostFunction::AclCheck;
    run.reply.set(Some(reply.into_plain()));
    // SAFETY: the cell was just filled, and nothing else uses it until it is emptied below:
    // pushing runs no script code (no userdata a script can make has a finalizer).
    unsafe {
        if let Some(reply) = (*run.reply.as_ptr()).as_ref() {
            crate::convert::push_frame(state, reply, resp3, 0);
        }
    }
    run.reply.set(None);
    failed
}

/// The arguments of a host function as command arguments: strings as they are, numbers as
/// `%.17g`, anything else is Redis's error.
///
/// # Safety
/// `state` is a running C function's state.
unsafe fn stack_args(state: *mut ffi::lua_State) -> Result<Vec<Bytes>, &'static str> {
    // SAFETY: indexes 1..=top are the function's arguments; reading them raises nothing
    // (numbers are read as numbers, never converted in place).
    unsafe {
        let count = ffi::lua_gettop(state);
        if count == 0 {
            return Err("ERR Please specify at least one argument for this redis lib call");
        }
        let mut args = Vec::with_capacity(count as usize);
        for index in 1..=count {
            match ffi::lua_type(state, index) {
                ffi::LUA_TSTRING => {
                    let mut len = 0;
                    let data = ffi::lua_tolstring(state, index, &mut len);
                    let bytes = std::slice::from_raw_parts(data.cast::<u8>(), len);
                    args.push(if index == 1 { shoal_resp::command_name(bytes) } else { Bytes::copy_from_slice(bytes) });
                }
                ffi::LUA_TNUMBER => args.push(Bytes::from(shoal_resp::format_double(ffi::lua_tonumber(state, index)))),
                _ => return Err("ERR Lua redis lib command arguments must be strings or integers"),
            }
        }
        Ok(args)
    }
}

/// The keys and arguments of one run, read by [`run_with_arguments`].
pub(crate) struct RunArguments<'a> {
    pub keys: &'a [Bytes],
    pub argv: &'a [Bytes],
    /// EVAL: set the globals KEYS and ARGV; otherwise (FCALL) pass two tables to the callback.
    pub globals: bool,
}

/// Pushes a new table holding `items` as Lua strings at 1..n, as Redis builds KEYS and ARGV.
///
/// # Safety
/// `state` is a running C function's state with room for two more values; Lua may raise a
/// memory error out of here, so the caller holds nothing with a destructor.
unsafe fn push_string_array(state: *mut ffi::lua_State, items: &[Bytes]) {
    // SAFETY: see the function's contract; each string is copied into Lua before the next.
    unsafe {
        ffi::lua_createtable(state, items.len() as c_int, 0);
        for (index, item) in items.iter().enumerate() {
            ffi::lua_pushlstring(state, item.as_ptr().cast(), item.len());
            ffi::lua_rawseti(state, -2, (index + 1) as ffi::lua_Integer);
        }
    }
}

/// Lua C function `(env, run, f, arguments)`, with the strings "KEYS" and "ARGV" as its
/// upvalues, called only by the engine with `arguments` a
/// light userdata pointing to a live [`RunArguments`]: for EVAL sets KEYS and ARGV in `env`
/// (raw sets: `env` has no `__newindex`) and returns `run(f)`; for FCALL returns
/// `run(f, keys, args)`. Built through Lua's C API, so a run makes no mlua call per value and
/// creates no closure.
///
/// # Safety
/// Called by Lua, from `Sandbox::run_with_arguments` only, with the four arguments above.
unsafe extern "C-unwind" fn run_with_arguments(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: the engine passes a pointer to a `RunArguments` that outlives this call (it
    // lives on the caller's stack across the synchronous `Function::call`), and scripts cannot
    // reach this function. Nothing here has a destructor, so a memory error that jumps out
    // of it (to the caller's pcall) skips nothing; the script's own errors are caught by the
    // runner's xpcall. The stack holds at most three values above the four arguments before
    // the call (within LUA_MINSTACK, 20); `lua_call` makes room for the results.
    unsafe {
        let arguments = &*(ffi::lua_touserdata(state, 4) as *const RunArguments);
        ffi::lua_settop(state, 3);
        if arguments.globals {
            for (name, items) in [(1, arguments.keys), (2, arguments.argv)] {
                ffi::lua_pushvalue(state, ffi::lua_upvalueindex(name));
                push_string_array(state, items);
                ffi::lua_rawset(state, 1);
            }
            ffi::lua_remove(state, 1);
            ffi::lua_call(state, 1, ffi::LUA_MULTRET);
        } else {
            ffi::lua_remove(state, 1);
            push_string_array(state, arguments.keys);
            push_string_array(state, arguments.argv);
            ffi::lua_call(state, 3, ffi::LUA_MULTRET);
        }
        ffi::lua_gettop(state)
    }
}

/// An error table `{err = message}`.
/// Calls the Lua function in its first upvalue with all its arguments. Script-visible
/// functions written in Lua are entered through it, so a script's `return f(...)` keeps the
/// script's frame (a tail call to a C function does) and errors report the script's line.
unsafe extern "C-unwind" fn trampoline(state: *mut ffi::lua_State) -> std::os::raw::c_int {
    let args = ffi::lua_gettop(state);
    ffi::lua_pushvalue(state, ffi::lua_upvalueindex(1));
    ffi::lua_insert(state, 1);
    // A Lua error unwinds through here by longjmp; this frame owns nothing to drop.
    ffi::lua_call(state, args, ffi::LUA_MULTRET);
    ffi::lua_gettop(state)
}

/// `function` behind a C trampoline.
fn expose(lua: &Lua, function: Function) -> mlua::Result<Function> {
    // SAFETY: the closure pushes one C closure over the argument on the stack; the trampoline
    // only moves stack values and calls.
    unsafe { lua.exec_raw::<Function>(function, |state| ffi::lua_pushcclosure(state, trampoline, 1)) }
}

pub(crate) fn error_table(lua: &Lua, message: &[u8]) -> mlua::Result<Table> {
    let table = lua.create_table()?;
    table.raw_set("err", lua.create_string(message)?)?;
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lrand48_from_seed_five_matches_the_oracle() {
        // redis-cli: EVAL "math.randomseed(5) return {math.random(1000), math.random(1000)}" 0
        // -> 525, 273
        let state = Cell::new(rand_state(5));
        let max = f64::from(i32::MAX);
        let draws: Vec<i64> = (0..2).map(|_| (f64::from(rand_draw(&state) % i32::MAX) / max * 1000.0).floor() as i64 + 1).collect();
        assert_eq!(draws, vec![525, 273]);
    }

    struct CountingHost {
        calls: usize,
    }

    impl Host for CountingHost {
        fn call(&mut self, _args: &[Bytes], _proto: shoal_resp::Protocol) -> shoal_resp::Frame {
            self.calls += 1;
            shoal_resp::Frame::Integer(self.calls as i64)
        }
        fn log(&mut self, _level: crate::LogLevel, _message: &[u8]) {}
        fn should_kill(&mut self, _elapsed: std::time::Duration) -> bool {
            false
        }
    }

    fn state() -> RunState {
        RunState::new()
    }

    #[test]
    fn the_host_slot_lends_the_host_for_one_run_only() {
        let state = state();
        let mut host = CountingHost { calls: 0 };
        assert!(state.with_host(|_| ()).is_none(), "no host before a run");
        {
            let _slot = HostSlot::new(&state, &mut host);
            let reply = state.with_host(|host| host.call(&[], shoal_resp::Protocol::Resp2));
            assert_eq!(reply, Some(shoal_resp::Frame::Integer(1)));
            // A nested use finds the slot empty rather than a second `&mut` to the host.
            let nested = state.with_host(|_| state.with_host(|_| ()).is_none());
            assert_eq!(nested, Some(true));
            assert!(state.with_host(|_| ()).is_some(), "the host is back after use");
        }
        assert!(state.with_host(|_| ()).is_none(), "the slot is empty after the run");
        assert_eq!(host.calls, 1);
    }

    #[test]
    fn the_host_slot_is_emptied_when_a_run_panics() {
        let state = state();
        let mut host = CountingHost { calls: 0 };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _slot = HostSlot::new(&state, &mut host);
            state.with_host(|_| panic!("a host call panics"));
        }));
        assert!(outcome.is_err());
        assert!(state.with_host(|_| ()).is_none(), "no host left behind");
    }

    #[test]
    fn c_casts_follow_x86() {
        assert_eq!(c_long_cast(f64::INFINITY), i64::MIN);
        assert_eq!(c_long_cast(f64::NAN), i64::MIN);
        assert_eq!(c_long_cast(-3.99), -3);
        assert_eq!(c_long_cast(3.99), 3);
    }
}
