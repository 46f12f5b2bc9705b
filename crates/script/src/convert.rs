//! Conversions between replies and Lua values, as Redis 7.0 documents them ("Data type
//! conversion" in the Lua API reference) and as the oracle shows them.
//!
//! A reply becomes a Lua value by the script's `redis.setresp` version; a script's return
//! value becomes a [`Frame`] by the same version (booleans and null differ), and the server
//! encodes that frame in the client's protocol (the encoder downgrades RESP3 types).

use bytes::Bytes;
use mlua::{Lua, Table, Value};
use shoal_resp::Frame;

use crate::sandbox::c_long_cast;

/// How deep a returned table may nest before the conversion gives up. Redis stops at its Lua
/// stack limit (about 8000 levels) with "reached lua stack limit"; we stop earlier so the
/// recursion stays well inside a thread's stack.
const DEPTH_MAX: usize = 400;

/// How many values one reply may convert: a table that holds itself several times would
/// otherwise take exponential time.
const NODES_MAX: usize = 10_000_000;

/// A reply as a Lua value: RESP2 rules unless `resp3`. An error reply becomes `{err=...}`
/// (the caller decides whether to raise it).
pub(crate) fn frame_to_lua(lua: &Lua, frame: &Frame, resp3: bool) -> mlua::Result<Value> {
    Ok(match frame {
        Frame::Simple(text) => single(lua, "ok", Value::String(lua.create_string(text)?))?,
        Frame::Error(text) => single(lua, "err", Value::String(lua.create_string(text)?))?,
        Frame::Integer(n) => Value::Number(*n as f64),
        Frame::Bulk(data) => Value::String(lua.create_string(data)?),
        Frame::Null | Frame::NullArray => {
            if resp3 {
                Value::Nil
            } else {
                Value::Boolean(false)
            }
        }
        Frame::Array(items) | Frame::Push(items) => array(lua, items.iter(), resp3)?,
        Frame::Map(pairs) => {
            if resp3 {
                let map = lua.create_table_with_capacity(0, pairs.len())?;
                for (key, value) in pairs {
                    let key = frame_to_lua(lua, key, resp3)?;
                    if !matches!(key, Value::Nil) {
                        map.raw_set(key, frame_to_lua(lua, value, resp3)?)?;
                    }
                }
                single(lua, "map", Value::Table(map))?
            } else {
                array(lua, pairs.iter().flat_map(|(key, value)| [key, value]), resp3)?
            }
        }
        Frame::Set(items) => {
            if resp3 {
                let set = lua.create_table_with_capacity(0, items.len())?;
                for item in items {
                    let key = frame_to_lua(lua, item, resp3)?;
                    if !matches!(key, Value::Nil) {
                        set.raw_set(key, true)?;
                    }
                }
                single(lua, "set", Value::Table(set))?
            } else {
                array(lua, items.iter(), resp3)?
            }
        }
        Frame::Double(value) => {
            if resp3 {
                single(lua, "double", Value::Number(*value))?
            } else {
                Value::String(lua.create_string(shoal_resp::format_double(*value))?)
            }
        }
        Frame::Boolean(value) => {
            if resp3 {
                Value::Boolean(*value)
            } else {
                Value::Number(if *value { 1.0 } else { 0.0 })
            }
        }
        Frame::BigNumber(digits) => {
            if resp3 {
                single(lua, "big_number", Value::String(lua.create_string(digits)?))?
            } else {
                Value::String(lua.create_string(digits)?)
            }
        }
        Frame::Verbatim { format, text } => {
            if resp3 {
                let inner = lua.create_table()?;
                inner.raw_set("format", lua.create_string(format)?)?;
                inner.raw_set("string", lua.create_string(text)?)?;
                single(lua, "verbatim_string", Value::Table(inner))?
            } else {
                Value::String(lua.create_string(text)?)
            }
        }
        // Built in the script's protocol, so its frames are those an ordinary reply would be.
        Frame::Encoded(encoded) => frame_to_lua(lua, &encoded.to_frame(), resp3)?,
    })
}

fn single(lua: &Lua, key: &str, value: Value) -> mlua::Result<Value> {
    let table = lua.create_table_with_capacity(0, 1)?;
    table.raw_set(key, value)?;
    Ok(Value::Table(table))
}

fn array<'a>(lua: &Lua, items: impl Iterator<Item = &'a Frame>, resp3: bool) -> mlua::Result<Value> {
    let table = lua.create_table_with_capacity(items.size_hint().0, 0)?;
    for (index, item) in items.enumerate() {
        // A RESP3 null inside an array leaves a hole, as in Redis.
        table.raw_set(index + 1, frame_to_lua(lua, item, resp3)?)?;
    }
    Ok(Value::Table(table))
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
