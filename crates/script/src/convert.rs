//! Conversions between replies and Lua values, as Redis 7.0 documents them ("Data type
//! conversion" in the Lua API reference) and as the oracle shows them.
//!
//! A reply becomes a Lua value by the script's `redis.setresp` version; a script's return
//! value becomes a [`Frame`] by the same version (booleans and null differ), and the server
//! encodes that frame in the client's protocol (the encoder downgrades RESP3 types).

use bytes::Bytes;
use std::ffi::{c_int, CStr};

use mlua::{ffi, Table, Value};
use shoal_resp::Frame;

use crate::sandbox::c_long_cast;

/// How deep a returned table may nest before the conversion gives up. Redis stops at its Lua
/// stack limit (about 8000 levels) with "reached lua stack limit"; we stop earlier so the
/// recursion stays well inside a thread's stack.
const DEPTH_MAX: usize = 400;

/// How many values one reply may convert: a table that holds itself several times would
/// otherwise take exponential time.
const NODES_MAX: usize = 10_000_000;

/// Pushes a reply as a Lua value: RESP2 rules unless `resp3`. An error reply becomes
/// `{err=...}` (the caller decides whether to raise it).
///
/// # Safety
/// `state` is a running C function's state with room for one more value. Lua may raise a
/// memory error out of here; this function and its recursion own nothing to drop.
pub(crate) unsafe fn push_frame(state: *mut ffi::lua_State, frame: &Frame, resp3: bool, depth: usize) {
    // SAFETY: see the contract; each level makes room for the three values it uses at once
    // (a table, a key, a value) before pushing them. Replies nest a few levels deep; past
    // DEPTH_MAX (or where Lua's stack ends) a value becomes nil.
    unsafe {
        if depth > DEPTH_MAX || ffi::lua_checkstack(state, 4) == 0 {
            ffi::lua_pushnil(state);
            return;
        }
        match frame {
            Frame::Simple(text) => single(state, c"ok", |state| push_bytes(state, text)),
            Frame::Error(text) => single(state, c"err", |state| push_bytes(state, text)),
            Frame::Integer(n) => ffi::lua_pushnumber(state, *n as f64),
            Frame::Bulk(data) => push_bytes(state, data),
            Frame::Null | Frame::NullArray => {
                if resp3 {
                    ffi::lua_pushnil(state)
                } else {
                    ffi::lua_pushboolean(state, 0)
                }
            }
            Frame::Array(items) | Frame::Push(items) => array(state, items.iter(), items.len(), resp3, depth),
            Frame::Map(pairs) => {
                if resp3 {
                    single(state, c"map", |state| {
                        ffi::lua_createtable(state, 0, c_int_len(pairs.len()));
                        for (key, value) in pairs {
                            push_frame(state, key, resp3, depth + 1);
                            if ffi::lua_isnil(state, -1) != 0 {
                                ffi::lua_pop(state, 1);
                                continue;
                            }
                            push_frame(state, value, resp3, depth + 1);
                            ffi::lua_rawset(state, -3);
                        }
                    })
                } else {
                    array(state, pairs.iter().flat_map(|(key, value)| [key, value]), pairs.len() * 2, resp3, depth)
                }
            }
            Frame::Set(items) => {
                if resp3 {
                    single(state, c"set", |state| {
                        ffi::lua_createtable(state, 0, c_int_len(items.len()));
                        for item in items {
                            push_frame(state, item, resp3, depth + 1);
                            if ffi::lua_isnil(state, -1) != 0 {
                                ffi::lua_pop(state, 1);
                                continue;
                            }
                            ffi::lua_pushboolean(state, 1);
                            ffi::lua_rawset(state, -3);
                        }
                    })
                } else {
                    array(state, items.iter(), items.len(), resp3, depth)
                }
            }
            Frame::Double(value) => {
                if resp3 {
                    single(state, c"double", |state| ffi::lua_pushnumber(state, *value))
                } else {
                    push_bytes(state, shoal_resp::DoubleText::new(*value).as_str().as_bytes())
                }
            }
            Frame::Boolean(value) => {
                if resp3 {
                    ffi::lua_pushboolean(state, c_int::from(*value))
                } else {
                    ffi::lua_pushnumber(state, if *value { 1.0 } else { 0.0 })
                }
            }
            Frame::BigNumber(digits) => {
                if resp3 {
                    single(state, c"big_number", |state| push_bytes(state, digits))
                } else {
                    push_bytes(state, digits)
                }
            }
            Frame::Verbatim { format, text } => {
                if resp3 {
                    single(state, c"verbatim_string", |state| {
                        ffi::lua_createtable(state, 0, 2);
                        ffi::lua_pushstring(state, c"format".as_ptr());
                        push_bytes(state, format);
                        ffi::lua_rawset(state, -3);
                        ffi::lua_pushstring(state, c"string".as_ptr());
                        push_bytes(state, text);
                        ffi::lua_rawset(state, -3);
                    })
                } else {
                    push_bytes(state, text)
                }
            }
            // The host hands over plain frames (`Frame::into_plain`).
            Frame::Encoded(_) => {
                debug_assert!(false, "an encoded frame reached a script");
                ffi::lua_pushnil(state)
            }
        }
    }
}

/// # Safety
/// As [`push_frame`], with room for one value.
unsafe fn push_bytes(state: *mut ffi::lua_State, bytes: &[u8]) {
    // SAFETY: Lua copies the bytes.
    unsafe {
        ffi::lua_pushlstring(state, bytes.as_ptr().cast(), bytes.len());
    }
}

/// Pushes a table with one field `key`, whose value `value` pushes.
///
/// # Safety
/// As [`push_frame`], with room for three values; `value` pushes exactly one.
unsafe fn single(state: *mut ffi::lua_State, key: &CStr, value: impl FnOnce(*mut ffi::lua_State)) {
    // SAFETY: see the contract.
    unsafe {
        ffi::lua_createtable(state, 0, 1);
        ffi::lua_pushstring(state, key.as_ptr());
        value(state);
        ffi::lua_rawset(state, -3);
    }
}

/// Pushes a table of `items` at 1..n; a RESP3 null leaves a hole, as in Redis.
///
/// # Safety
/// As [`push_frame`], with room for two values.
unsafe fn array<'a>(state: *mut ffi::lua_State, items: impl Iterator<Item = &'a Frame>, len: usize, resp3: bool, depth: usize) {
    // SAFETY: see the contract.
    unsafe {
        ffi::lua_createtable(state, c_int_len(len), 0);
        for (index, item) in items.enumerate() {
            push_frame(state, item, resp3, depth + 1);
            ffi::lua_rawseti(state, -2, (index + 1) as ffi::lua_Integer);
        }
    }
}

/// A table size hint for Lua (sizes past `c_int` are hints only).
fn c_int_len(len: usize) -> c_int {
    c_int::try_from(len).unwrap_or(c_int::MAX)
}

/// A script's return value (or a nested value of it) as a reply, by the script's RESP
/// version at return time.
pub(crate) fn lua_to_frame(value: &Value, resp3: bool) -> Frame {
    let mut budget = NODES_MAX;
    convert(value, resp3, 0, &mut budget)
}

fn convert(value: &Value, resp3: bool, depth: usize, budget: &mut usize) -> Frame {
    if depth > DEPTH_MAX || *budget == 0 {
        return Frame::Error(Bytes::from_static(b"ERR reached lua stack limit"));
    }
    *budget -= 1;
    match value {
        Value::Nil => Frame::Null,
        Value::Boolean(b) => {
            if resp3 {
                Frame::Boolean(*b)
            } else if *b {
                Frame::Integer(1)
            } else {
                Frame::Null
            }
        }
        Value::Number(n) => Frame::Integer(c_long_cast(*n)),
        Value::Integer(i) => Frame::Integer(*i),
        Value::String(s) => Frame::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Table(table) => table_to_frame(table, resp3, depth, budget),
        _ => Frame::Null,
    }
}

fn table_to_frame(table: &Table, resp3: bool, depth: usize, budget: &mut usize) -> Frame {
    let field = |name: &str| table.raw_get::<Value>(name).unwrap_or(Value::Nil);
    if let Value::String(s) = field("err") {
        return Frame::Error(Bytes::copy_from_slice(&s.as_bytes()));
    }
    if let Value::String(s) = field("ok") {
        return Frame::Simple(Bytes::copy_from_slice(&s.as_bytes()));
    }
    match field("double") {
        Value::Number(n) => return Frame::Double(n),
        Value::Integer(n) => return Frame::Double(n as f64),
        _ => {}
    }
    if let Value::String(s) = field("big_number") {
        return Frame::BigNumber(Bytes::copy_from_slice(&s.as_bytes()));
    }
    if let Value::Table(map) = field("map") {
        let mut pairs = Vec::new();
        for (key, value) in map.pairs::<Value, Value>().flatten() {
            pairs.push((convert(&key, resp3, depth + 1, budget), convert(&value, resp3, depth + 1, budget)));
        }
        return Frame::Map(pairs);
    }
    if let Value::Table(set) = field("set") {
        let mut items = Vec::new();
        for (key, _) in set.pairs::<Value, Value>().flatten() {
            items.push(convert(&key, resp3, depth + 1, budget));
        }
        return Frame::Set(items);
    }
    if let Value::Table(verbatim) = field("verbatim_string") {
        let format = verbatim.raw_get::<Value>("format").unwrap_or(Value::Nil);
        let text = verbatim.raw_get::<Value>("string").unwrap_or(Value::Nil);
        if let (Value::String(format), Value::String(text)) = (format, text) {
            let format = format.as_bytes();
            if format.len() >= 3 {
                return Frame::Verbatim { format: [format[0], format[1], format[2]], text: Bytes::copy_from_slice(&text.as_bytes()) };
            }
        }
    }
    let mut items = Vec::new();
    for index in 1.. {
        match table.raw_get::<Value>(index) {
            Ok(Value::Nil) | Err(_) => break,
            Ok(value) => items.push(convert(&value, resp3, depth + 1, budget)),
        }
    }
    Frame::Array(items)
}
