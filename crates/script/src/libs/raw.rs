//! A thin layer over Lua 5.1's C API for the libraries' functions.
//!
//! The libraries are written as plain Lua C functions, not as mlua callbacks, for one reason: errors. mlua turns a
//! callback's `Err` into a userdata error object, while Redis's C libraries raise plain strings built by `luaL_error`
//! and `luaL_argerror` (with the caller's position and the function's name as the caller spelt it). A script that
//! catches them with `pcall` must see the very same string. So each function body is safe Rust that returns
//! [`Raise`] on failure, and [`finish`] raises it with Lua's own `luaL_argerror`/`luaL_where` once every Rust value of
//! the body has been dropped (the same pattern mlua uses: nothing with a destructor is live when `lua_error` jumps).
//!
//! The bodies only use API calls that cannot run Lua code (raw gets and sets, no metamethods); the only way these
//! calls can still jump out is a memory error (Lua's allocator failing, or a memory limit the engine sets), which
//! skips the destructors of the body's Rust values, so their memory leaks. The body's frames hold nothing else that
//! needs unwinding.
//!
//! What it does not do: it is no general binding. It has exactly what the four libraries need.

use std::ffi::{c_char, c_int, c_void};

use mlua::ffi;

/// A Lua error that a library function raises, built by [`finish`] as the C libraries build theirs.
#[derive(Debug)]
pub(crate) enum Raise {
    /// `luaL_argerror(L, index, message)`: "bad argument #index to 'name' (message)".
    Arg(c_int, Vec<u8>),
    /// `luaL_error(L, message)`: the message prefixed with the calling Lua function's position.
    Error(Vec<u8>),
    /// An error the Lua core raises inside a C function (as `lua_settable`'s "table index is nil"): no position.
    Plain(Vec<u8>),
}

impl Raise {
    pub(crate) fn arg(index: c_int, message: impl Into<Vec<u8>>) -> Self {
        Raise::Arg(index, message.into())
    }

    pub(crate) fn error(message: impl Into<Vec<u8>>) -> Self {
        Raise::Error(message.into())
    }

    pub(crate) fn plain(message: impl Into<Vec<u8>>) -> Self {
        Raise::Plain(message.into())
    }
}

pub(crate) type LuaResult<T> = Result<T, Raise>;

/// Defines `unsafe extern "C-unwind" fn $name(L) -> c_int` that runs `$body(&State)` and raises its error, if any.
macro_rules! c_function {
    ($name:ident => $body:path) => {
        pub(crate) unsafe extern "C-unwind" fn $name(state: *mut mlua::ffi::lua_State) -> std::ffi::c_int {
            // SAFETY: Lua calls this C function with a live state.
            let lua_state = unsafe { $crate::libs::raw::State::new(state) };
            // A panic is a bug in the library; unwinding into Lua's C frames is undefined, so the process stops (the
            // panic hook has printed the message by then).
            let result = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| $body(&lua_state))) {
                Ok(result) => result,
                Err(_) => std::process::abort(),
            };
            // SAFETY: `result` is moved in; `finish` drops every Rust value before it raises.
            unsafe { $crate::libs::raw::finish(state, result) }
        }
    };
}
pub(crate) use c_function;

/// Returns the result count, or raises the error as a Lua error (after freeing the Rust side of it).
///
/// # Safety
/// `state` is the state of the running C function, and no Rust value with a destructor may be live in the caller.
pub(crate) unsafe fn finish(state: *mut ffi::lua_State, result: LuaResult<c_int>) -> c_int {
    let (index, message) = match result {
        Ok(count) => return count,
        Err(Raise::Arg(index, message)) => (Some(index), message),
        Err(Raise::Error(message)) => (None, message),
        Err(Raise::Plain(message)) => (Some(PLAIN), message),
    };
    // SAFETY: the message is copied into Lua before its Rust buffer is freed; the Lua string stays on the stack while
    // `luaL_argerror` reads it.
    unsafe {
        // The body may have filled the stack (deep nesting); neither luaL_argerror nor luaL_where reads the values.
        ffi::lua_settop(state, 0);
        ffi::lua_pushlstring(state, message.as_ptr() as *const c_char, message.len());
        drop(message);
        match index {
            Some(PLAIN) => {}
            Some(index) => {
                ffi::luaL_argerror(state, index, ffi::lua_tostring(state, -1));
            }
            None => {
                ffi::luaL_where(state, 1);
                ffi::lua_insert(state, -2);
                ffi::lua_concat(state, 2);
            }
        }
        ffi::lua_error(state)
    }
}

/// Stands for [`Raise::Plain`] in [`finish`]; no argument has this index.
const PLAIN: c_int = c_int::MIN;

/// The state of a running library function.
///
/// Invariant: built only by [`c_function`] (and the libraries' open functions) from the state Lua passed to the C
/// function, so the pointer is live for as long as the `State` is. Stack indices passed to its methods must be
/// acceptable indices (an argument index, or a slot the function pushed itself), as the C API requires.
pub(crate) struct State {
    state: *mut ffi::lua_State,
}

/// The names `lua_typename` gives, as `luaL_typename` reports them in argument errors.
pub(crate) fn type_name(lua_type: c_int) -> &'static str {
    match lua_type {
        ffi::LUA_TNIL => "nil",
        ffi::LUA_TBOOLEAN => "boolean",
        ffi::LUA_TLIGHTUSERDATA | ffi::LUA_TUSERDATA => "userdata",
        ffi::LUA_TNUMBER => "number",
        ffi::LUA_TSTRING => "string",
        ffi::LUA_TTABLE => "table",
        ffi::LUA_TFUNCTION => "function",
        ffi::LUA_TTHREAD => "thread",
        _ => "no value",
    }
}

impl State {
    /// # Safety
    /// `state` is the live state of a running C function.
    pub(crate) unsafe fn new(state: *mut ffi::lua_State) -> Self {
        State { state }
    }

    pub(crate) fn top(&self) -> c_int {
        // SAFETY: see the type's invariant.
        unsafe { ffi::lua_gettop(self.state) }
    }

    pub(crate) fn set_top(&self, index: c_int) {
        // SAFETY: see the type's invariant.
        unsafe { ffi::lua_settop(self.state, index) }
    }

    pub(crate) fn pop(&self, count: c_int) {
        self.set_top(-count - 1);
    }

    pub(crate) fn lua_type(&self, index: c_int) -> c_int {
        // SAFETY: see the type's invariant.
        unsafe { ffi::lua_type(self.state, index) }
    }

    pub(crate) fn is_none(&self, index: c_int) -> bool {
        self.lua_type(index) == ffi::LUA_TNONE
    }

    pub(crate) fn is_none_or_nil(&self, index: c_int) -> bool {
        self.lua_type(index) <= ffi::LUA_TNIL
    }

    /// True for numbers and strings convertible to numbers (`lua_isnumber`).
    pub(crate) fn is_number(&self, index: c_int) -> bool {
        // SAFETY: see the type's invariant.
        unsafe { ffi::lua_isnumber(self.state, index) != 0 }
    }

    /// `lua_tonumber`: 0 for what does not convert.
    pub(crate) fn to_number(&self, index: c_int) -> f64 {
        // SAFETY: see the type's invariant.
        unsafe { ffi::lua_tonumber(self.state, index) }
    }

    pub(crate) fn to_boolean(&self, index: c_int) -> bool {
        // SAFETY: see the type's invariant.
        unsafe { ffi::lua_toboolean(self.state, index) != 0 }
    }

    /// `lua_tolstring`: a string, or a number converted in place to its string form; `None` otherwise.
    ///
    /// The slice lives while the value stays at `index`; callers keep their arguments on the stack for the whole call.
    pub(crate) fn to_bytes<'a>(&self, index: c_int) -> Option<&'a [u8]> {
        let mut len = 0usize;
        // SAFETY: see the type's invariant; Lua strings are immutable and live while they are on the stack.
        unsafe {
            let ptr = ffi::lua_tolstring(self.state, index, &mut len);
            if ptr.is_null() {
                None
            } else {
                Some(std::slice::from_raw_parts(ptr as *const u8, len))
            }
        }
    }

    pub(crate) fn to_userdata(&self, index: c_int) -> *mut c_void {
        // SAFETY: see the type's invariant.
        unsafe { ffi::lua_touserdata(self.state, index) }
    }

    pub(crate) fn type_error(&self, index: c_int, expected: &str) -> Raise {
        Raise::arg(index, format!("{expected} expected, got {}", type_name(self.lua_type(index))))
    }

    /// `luaL_checknumber`.
    pub(crate) fn check_number(&self, index: c_int) -> LuaResult<f64> {
        let number = self.to_number(index);
        if number == 0.0 && !self.is_number(index) {
            return Err(self.type_error(index, "number"));
        }
        Ok(number)
    }

    /// `luaL_checkinteger`: the number truncated as C's cast does (see [`f64_to_i64`]).
    pub(crate) fn check_integer(&self, index: c_int) -> LuaResult<i64> {
        self.check_number(index).map(f64_to_i64)
    }

    /// `luaL_optinteger`.
    pub(crate) fn opt_integer(&self, index: c_int, default: i64) -> LuaResult<i64> {
        if self.is_none_or_nil(index) {
            Ok(default)
        } else {
            self.check_integer(index)
        }
    }

    /// `luaL_checklstring`.
    pub(crate) fn check_bytes<'a>(&self, index: c_int) -> LuaResult<&'a [u8]> {
        self.to_bytes(index).ok_or_else(|| self.type_error(index, "string"))
    }

    /// `lua_checkstack`: false when the stack cannot grow by `extra` slots.
    pub(crate) fn check_stack(&self, extra: c_int) -> bool {
        // SAFETY: see the type's invariant.
        unsafe { ffi::lua_checkstack(self.state, extra) != 0 }
    }

    pub(crate) fn push_nil(&self) {
        // SAFETY: see the type's invariant.
        unsafe { ffi::lua_pushnil(self.state) }
    }

    pub(crate) fn push_number(&self, number: f64) {
        // SAFETY: see the type's invariant.
        unsafe { ffi::lua_pushnumber(self.state, number) }
    }

    pub(crate) fn push_boolean(&self, value: bool) {
        // SAFETY: see the type's invariant.
        unsafe { ffi::lua_pushboolean(self.state, value as c_int) }
    }

    pub(crate) fn push_bytes(&self, bytes: &[u8]) {
        // An empty slice's pointer may dangle; give Lua a real one.
        let pointer = if bytes.is_empty() { c"".as_ptr() } else { bytes.as_ptr() as *const c_char };
        // SAFETY: see the type's invariant; Lua copies the bytes.
        unsafe { ffi::lua_pushlstring_(self.state, pointer, bytes.len()) }
    }

    pub(crate) fn push_light_userdata(&self, pointer: *mut c_void) {
        // SAFETY: see the type's invariant.
        unsafe { ffi::lua_pushlightuserdata(self.state, pointer) }
    }

    pub(crate) fn push_value(&self, index: c_int) {
        // SAFETY: see the type's invariant.
        unsafe { ffi::lua_pushvalue(self.state, index) }
    }

    /// Pushes C function `function` with the top `upvalues` values as its upvalues (popping them).
    pub(crate) fn push_c_closure(&self, function: ffi::lua_CFunction, upvalues: c_int) {
        // SAFETY: see the type's invariant.
        unsafe { ffi::lua_pushcclosure(self.state, function, upvalues) }
    }

    pub(crate) fn new_table(&self, array_len: c_int, record_len: c_int) {
        // SAFETY: see the type's invariant.
        unsafe { ffi::lua_createtable(self.state, array_len.max(0), record_len.max(0)) }
    }

    /// Pushes a new full userdata of `size` bytes (no metatable, no destructor) and returns its memory.
    pub(crate) fn new_userdata(&self, size: usize) -> *mut c_void {
        // SAFETY: see the type's invariant.
        unsafe { ffi::lua_newuserdata(self.state, size) }
    }

    /// `t[k] = v` without metamethods, `t` at `table`, `k` and `v` the top two values (popped).
    pub(crate) fn raw_set(&self, table: c_int) {
        // SAFETY: see the type's invariant.
        unsafe { ffi::lua_rawset(self.state, table) }
    }

    /// `t[n] = v` without metamethods, `v` the top value (popped).
    pub(crate) fn raw_set_index(&self, table: c_int, n: c_int) {
        // SAFETY: see the type's invariant.
        unsafe { ffi::lua_rawseti_(self.state, table, n) }
    }

    /// Pushes `t[n]` without metamethods.
    pub(crate) fn raw_get_index(&self, table: c_int, n: c_int) {
        // SAFETY: see the type's invariant.
        unsafe { ffi::lua_rawgeti_(self.state, table, n) }
    }

    /// Sets field `name` of the table at `table` to the top value (popped), without metamethods.
    pub(crate) fn set_field(&self, table: c_int, name: &str) {
        let table = self.absolute(table);
        self.push_bytes(name.as_bytes());
        // SAFETY: see the type's invariant.
        unsafe { ffi::lua_insert(self.state, -2) };
        self.raw_set(table);
    }

    /// `lua_next` on the table at `table`: pops a key, pushes the next key and value; false at the end.
    pub(crate) fn next(&self, table: c_int) -> bool {
        // SAFETY: see the type's invariant; the libraries never change a table while they traverse it.
        unsafe { ffi::lua_next(self.state, table) != 0 }
    }

    /// `lua_objlen`.
    pub(crate) fn object_len(&self, index: c_int) -> usize {
        // SAFETY: see the type's invariant.
        unsafe { ffi::lua_objlen(self.state, index) }
    }

    /// `lua_concat` of the top `count` values, which must be strings or numbers.
    pub(crate) fn concat(&self, count: c_int) {
        // SAFETY: see the type's invariant; strings and numbers concatenate without metamethods.
        unsafe { ffi::lua_concat(self.state, count) }
    }

    /// Moves the top value to `index`, shifting the values above it up.
    pub(crate) fn insert(&self, index: c_int) {
        // SAFETY: see the type's invariant.
        unsafe { ffi::lua_insert(self.state, index) }
    }

    pub(crate) fn absolute(&self, index: c_int) -> c_int {
        if index < 0 && index > ffi::LUA_REGISTRYINDEX {
            self.top() + index + 1
        } else {
            index
        }
    }
}

/// 2^63, the first double beyond `i64`.
const TWO_63: f64 = (1u64 << 63) as f64;

/// C's `(long long)d` as x86-64 computes it: truncation, and `i64::MIN` for NaN and out-of-range values.
pub(crate) fn f64_to_i64(number: f64) -> i64 {
    if !(-TWO_63..TWO_63).contains(&number) {
        i64::MIN
    } else {
        number as i64
    }
}

/// C's `(unsigned long long)d` as GCC compiles it on x86-64: values from 2^63 go through `d - 2^63`.
pub(crate) fn f64_to_u64(number: f64) -> u64 {
    if number >= TWO_63 {
        (f64_to_i64(number - TWO_63) as u64) ^ (1 << 63)
    } else {
        f64_to_i64(number) as u64
    }
}

/// C's `(int)d` on x86-64: truncation, and `i32::MIN` for NaN and out-of-range values.
pub(crate) fn f64_to_i32(number: f64) -> i32 {
    // Truncation keeps values in (-2^31 - 1, 2^31) in range.
    if number.is_nan() || number <= -2147483649.0 || number >= 2147483648.0 {
        i32::MIN
    } else {
        number as i32
    }
}

unsafe extern "C" {
    fn snprintf(buffer: *mut c_char, size: usize, format: *const c_char, ...) -> c_int;
}

/// C's `printf("%.{precision}g", number)`, as Lua and lua-cjson format numbers.
pub(crate) fn format_g(number: f64, precision: c_int) -> String {
    let mut buffer = [0u8; 64];
    // SAFETY: the format is a NUL-terminated "%.*g", and snprintf writes at most `buffer.len()` bytes.
    let written = unsafe { snprintf(buffer.as_mut_ptr() as *mut c_char, buffer.len(), c"%.*g".as_ptr(), precision, number) };
    let len = usize::try_from(written).unwrap_or(0).min(buffer.len() - 1);
    String::from_utf8_lossy(&buffer[..len]).into_owned()
}

/// Runs `open` (a C function that pushes a module table) and stores the table as global `name`.
pub(crate) fn register(lua: &mlua::Lua, name: &str, open: ffi::lua_CFunction) -> mlua::Result<()> {
    // SAFETY: `open` is one of the libraries' open functions, which only build tables of C functions.
    let open = unsafe { lua.create_c_function(open) }?;
    let table: mlua::Table = open.call(())?;
    lua.globals().set(name, table)
}
