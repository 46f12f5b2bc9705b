//! `cmsgpack`: lua-cmsgpack 0.4.0 as Redis bundles it (MessagePack encoding and decoding).
//!
//! Encoding: a number that a 64-bit integer holds exactly is packed as the smallest MessagePack integer, any other as
//! a float when a float holds it exactly, else as a double; strings as fixstr/str8/str16/str32; a table whose keys are
//! exactly 1..n is an array, any other table a map (in `next` order); tables nested 16 deep, functions, userdata and
//! threads become nil. Decoding: every MessagePack type but bin and ext; uint64 reads as a signed 64-bit integer (so
//! 2^64 - 1 is -1), as in Redis's build for Lua 5.1.
//!
//! The Lua stack is used as lua-cmsgpack uses it (one string per packed argument, concatenated at the end; the same
//! slots for tables), so that `lua_checkstack` gives up at the same points with the same messages.

use std::ffi::c_int;

use mlua::ffi;

use super::raw::{c_function, f64_to_i64, LuaResult, Raise, State};

const NAME: &str = "cmsgpack";
const VERSION: &str = "lua-cmsgpack 0.4.0";
const COPYRIGHT: &str = "Copyright (C) 2012, Salvatore Sanfilippo";
const DESCRIPTION: &str = "MessagePack C implementation for Lua";

/// Tables nested this deep (the outermost at level 0) are packed as nil, which also stops reference cycles.
const NESTING_MAX: u32 = 16;

fn check_stack(state: &State, extra: c_int, context: &str) -> LuaResult<()> {
    if state.check_stack(extra) {
        Ok(())
    } else {
        Err(Raise::error(format!("stack overflow ({context})")))
    }
}

// Encoding.

fn put_integer(buffer: &mut Vec<u8>, number: i64) {
    if number >= 0 {
        match number {
            0..=127 => buffer.push(number as u8),
            128..=0xff => buffer.extend_from_slice(&[0xcc, number as u8]),
            0x100..=0xffff => {
                buffer.push(0xcd);
                buffer.extend_from_slice(&(number as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                buffer.push(0xce);
                buffer.extend_from_slice(&(number as u32).to_be_bytes());
            }
            _ => {
                buffer.push(0xcf);
                buffer.extend_from_slice(&(number as u64).to_be_bytes());
            }
        }
    } else {
        match number {
            -32..=-1 => buffer.push(number as i8 as u8),
            -128..=-33 => buffer.extend_from_slice(&[0xd0, number as i8 as u8]),
            -32768..=-129 => {
                buffer.push(0xd1);
                buffer.extend_from_slice(&(number as i16).to_be_bytes());
            }
            -2147483648..=-32769 => {
                buffer.push(0xd2);
                buffer.extend_from_slice(&(number as i32).to_be_bytes());
            }
            _ => {
                buffer.push(0xd3);
                buffer.extend_from_slice(&number.to_be_bytes());
            }
        }
    }
}

fn put_number(buffer: &mut Vec<u8>, number: f64) {
    // lua-cmsgpack's test: not infinite, and a cast to int64_t gives the number back.
    if !number.is_infinite() && f64_to_i64(number) as f64 == number {
        put_integer(buffer, f64_to_i64(number));
    } else if f64::from(number as f32) == number {
        buffer.push(0xca);
        buffer.extend_from_slice(&(number as f32).to_be_bytes());
    } else {
        buffer.push(0xcb);
        buffer.extend_from_slice(&number.to_be_bytes());
    }
}

fn put_string(buffer: &mut Vec<u8>, bytes: &[u8]) {
    let len = bytes.len();
    if len < 32 {
        buffer.push(0xa0 | len as u8);
    } else if len <= 0xff {
        buffer.extend_from_slice(&[0xd9, len as u8]);
    } else if len <= 0xffff {
        buffer.push(0xda);
        buffer.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        buffer.push(0xdb);
        buffer.extend_from_slice(&(len as u32).to_be_bytes());
    }
    buffer.extend_from_slice(bytes);
}

/// An array or map header: `fix` | n for n < 16, else the 16-bit or the 32-bit form.
fn put_header(buffer: &mut Vec<u8>, count: u64, fix: u8, code16: u8, code32: u8) {
    if count <= 15 {
        buffer.push(fix | count as u8);
    } else if count <= 0xffff {
        buffer.push(code16);
        buffer.extend_from_slice(&(count as u16).to_be_bytes());
    } else {
        buffer.push(code32);
        buffer.extend_from_slice(&(count as u32).to_be_bytes());
    }
}

/// Packs the value on top of the stack, and pops it.
fn encode_value(state: &State, buffer: &mut Vec<u8>, level: u32) -> LuaResult<()> {
    let mut lua_type = state.lua_type(-1);
    if lua_type == ffi::LUA_TTABLE && level == NESTING_MAX {
        lua_type = ffi::LUA_TNIL;
    }
    match lua_type {
        ffi::LUA_TSTRING => put_string(buffer, state.to_bytes(-1).unwrap_or_default()),
        ffi::LUA_TBOOLEAN => buffer.push(if state.to_boolean(-1) { 0xc3 } else { 0xc2 }),
        ffi::LUA_TNUMBER => put_number(buffer, state.to_number(-1)),
        ffi::LUA_TTABLE => {
            if table_is_array(state)? {
                encode_array(state, buffer, level)?;
            } else {
                encode_map(state, buffer, level)?;
            }
        }
        _ => buffer.push(0xc0),
    }
    state.pop(1);
    Ok(())
}

/// True when the keys of the table on top of the stack are exactly 1..n (an empty table included).
fn table_is_array(state: &State) -> LuaResult<bool> {
    let top = state.top();
    check_stack(state, 2, "in function table_is_an_array")?;
    let mut count: c_int = 0;
    let mut max: c_int = 0;
    state.push_nil();
    while state.next(-2) {
        state.pop(1);
        let key = state.to_number(-1);
        // A positive number that an int holds exactly.
        let is_index = state.lua_type(-1) == ffi::LUA_TNUMBER && key > 0.0 && !key.is_infinite() && f64::from(super::raw::f64_to_i32(key)) == key;
        if !is_index {
            state.set_top(top);
            return Ok(false);
        }
        max = max.max(key as c_int);
        count = count.wrapping_add(1);
    }
    state.set_top(top);
    Ok(max == count)
}

fn encode_array(state: &State, buffer: &mut Vec<u8>, level: u32) -> LuaResult<()> {
    let len = state.object_len(-1);
    put_header(buffer, len as u64, 0x90, 0xdc, 0xdd);
    check_stack(state, 1, "in function mp_encode_lua_table_as_array")?;
    for index in 1..=len.min(c_int::MAX as usize) as c_int {
        state.raw_get_index(-1, index);
        encode_value(state, buffer, level + 1)?;
    }
    Ok(())
}

fn encode_map(state: &State, buffer: &mut Vec<u8>, level: u32) -> LuaResult<()> {
    check_stack(state, 3, "in function mp_encode_lua_table_as_map")?;
    let mut len: u64 = 0;
    state.push_nil();
    while state.next(-2) {
        state.pop(1);
        len += 1;
    }
    put_header(buffer, len, 0x80, 0xde, 0xdf);
    state.push_nil();
    while state.next(-2) {
        state.push_value(-2);
        encode_value(state, buffer, level + 1)?;
        encode_value(state, buffer, level + 1)?;
    }
    Ok(())
}

/// cmsgpack.pack(v1, v2, ...): the concatenation of each value's encoding.
fn pack(state: &State) -> LuaResult<c_int> {
    let count = state.top();
    if count == 0 {
        return Err(Raise::arg(0, "MessagePack pack needs input."));
    }
    if !state.check_stack(count) {
        return Err(Raise::arg(0, "Too many arguments for MessagePack pack."));
    }
    let mut buffer = Vec::new();
    for index in 1..=count {
        check_stack(state, 1, "in function mp_check")?;
        state.push_value(index);
        encode_value(state, &mut buffer, 0)?;
        state.push_bytes(&buffer);
        buffer.clear();
    }
    state.concat(count);
    Ok(1)
}

// Decoding.

const MISSING_BYTES: &str = "Missing bytes in input.";
const BAD_FORMAT: &str = "Bad data format in input.";

struct Cursor<'a> {
    data: &'a [u8],
    position: usize,
}

impl Cursor<'_> {
    fn left(&self) -> usize {
        self.data.len() - self.position
    }

    fn need(&self, count: usize) -> LuaResult<()> {
        if self.left() < count {
            return Err(Raise::error(MISSING_BYTES));
        }
        Ok(())
    }

    /// The `N` bytes after the type byte; the caller has checked they are there.
    fn array<const N: usize>(&self) -> [u8; N] {
        self.data[self.position + 1..self.position + 1 + N].try_into().expect("the length was checked")
    }

    /// Pushes the `len`-byte string after a `header`-byte header, and consumes both.
    fn push_string(&mut self, state: &State, header: usize, len: usize) -> LuaResult<()> {
        self.need(header.saturating_add(len))?;
        state.push_bytes(&self.data[self.position + header..self.position + header + len]);
        self.position += header + len;
        Ok(())
    }
}

/// An array or map being decoded; its table is on the stack.
enum Frame {
    /// An array, the index of its next element, and how many elements are left (the index is on the stack while an
    /// element is decoded).
    Array(f64, u64),
    /// A map, how many pairs are left, and whether the current pair's key is decoded (then it is on the stack).
    Map(u64, bool),
}

/// Decodes one value at the cursor and pushes it.
///
/// Iterative, with open arrays and maps in `frames` and their tables on the Lua stack laid out as lua-cmsgpack's
/// recursion lays them out, so deep nesting fails with the same error, and never overflows the Rust stack.
fn decode_value(state: &State, cursor: &mut Cursor) -> LuaResult<()> {
    let mut frames: Vec<Frame> = Vec::new();
    loop {
        cursor.need(1)?;
        check_stack(state, 1, "too many return values at once; use unpack_one or unpack_limit instead.")?;
        let code = cursor.data[cursor.position];
        let mut opened = None;
        match code {
            0xcc => {
                cursor.need(2)?;
                state.push_number(f64::from(cursor.array::<1>()[0]));
                cursor.position += 2;
            }
            0xd0 => {
                cursor.need(2)?;
                state.push_number(f64::from(cursor.array::<1>()[0] as i8));
                cursor.position += 2;
            }
            0xcd => {
                cursor.need(3)?;
                state.push_number(f64::from(u16::from_be_bytes(cursor.array())));
                cursor.position += 3;
            }
            0xd1 => {
                cursor.need(3)?;
                state.push_number(f64::from(i16::from_be_bytes(cursor.array())));
                cursor.position += 3;
            }
            0xce => {
                cursor.need(5)?;
                state.push_number(f64::from(u32::from_be_bytes(cursor.array())));
                cursor.position += 5;
            }
            0xd2 => {
                cursor.need(5)?;
                state.push_number(f64::from(i32::from_be_bytes(cursor.array())));
                cursor.position += 5;
            }
            // uint64 goes through lua_Integer, a signed 64-bit integer, in Redis's build.
            0xcf | 0xd3 => {
                cursor.need(9)?;
                state.push_number(i64::from_be_bytes(cursor.array()) as f64);
                cursor.position += 9;
            }
            0xc0 => {
                state.push_nil();
                cursor.position += 1;
            }
            0xc2 | 0xc3 => {
                state.push_boolean(code == 0xc3);
                cursor.position += 1;
            }
            0xca => {
                cursor.need(5)?;
                state.push_number(f64::from(f32::from_be_bytes(cursor.array())));
                cursor.position += 5;
            }
            0xcb => {
                cursor.need(9)?;
                state.push_number(f64::from_be_bytes(cursor.array()));
                cursor.position += 9;
            }
            0xd9 => {
                cursor.need(2)?;
                let len = usize::from(cursor.array::<1>()[0]);
                cursor.push_string(state, 2, len)?;
            }
            0xda => {
                cursor.need(3)?;
                let len = usize::from(u16::from_be_bytes(cursor.array()));
                cursor.push_string(state, 3, len)?;
            }
            0xdb => {
                cursor.need(5)?;
                let len = u32::from_be_bytes(cursor.array()) as usize;
                cursor.push_string(state, 5, len)?;
            }
            0xdc | 0xde => {
                cursor.need(3)?;
                let len = u64::from(u16::from_be_bytes(cursor.array()));
                cursor.position += 3;
                opened = Some(if code == 0xdc { Frame::Array(1.0, len) } else { Frame::Map(len, false) });
            }
            0xdd | 0xdf => {
                cursor.need(5)?;
                let len = u64::from(u32::from_be_bytes(cursor.array()));
                cursor.position += 5;
                opened = Some(if code == 0xdd { Frame::Array(1.0, len) } else { Frame::Map(len, false) });
            }
            0x00..=0x7f => {
                state.push_number(f64::from(code));
                cursor.position += 1;
            }
            0xe0..=0xff => {
                state.push_number(f64::from(code as i8));
                cursor.position += 1;
            }
            0xa0..=0xbf => cursor.push_string(state, 1, usize::from(code & 0x1f))?,
            0x90..=0x9f => {
                cursor.position += 1;
                opened = Some(Frame::Array(1.0, u64::from(code & 0xf)));
            }
            0x80..=0x8f => {
                cursor.position += 1;
                opened = Some(Frame::Map(u64::from(code & 0xf), false));
            }
            _ => return Err(Raise::error(BAD_FORMAT)),
        }
        // True when a complete value is on top of the stack for the innermost open container.
        let mut completed = true;
        if let Some(frame) = opened {
            state.new_table(0, 0);
            if matches!(frame, Frame::Array(..)) {
                check_stack(state, 1, "in function mp_decode_to_lua_array")?;
            }
            frames.push(frame);
            completed = false;
        }
        // Store completed values in their containers, close the containers that are full, and prepare the next value.
        loop {
            let Some(frame) = frames.last_mut() else {
                return Ok(());
            };
            match frame {
                Frame::Array(next, left) => {
                    if completed {
                        state.raw_set(-3);
                        *left -= 1;
                    }
                    if *left == 0 {
                        frames.pop();
                        completed = true;
                        continue;
                    }
                    state.push_number(*next);
                    *next += 1.0;
                    break;
                }
                Frame::Map(left, key_decoded) => {
                    if completed {
                        if !*key_decoded {
                            *key_decoded = true;
                            break;
                        }
                        match state.lua_type(-2) {
                            ffi::LUA_TNIL => return Err(Raise::plain("table index is nil")),
                            ffi::LUA_TNUMBER if state.to_number(-2).is_nan() => return Err(Raise::plain("table index is NaN")),
                            _ => {}
                        }
                        state.raw_set(-3);
                        *key_decoded = false;
                        *left -= 1;
                    }
                    if *left == 0 {
                        frames.pop();
                        completed = true;
                        continue;
                    }
                    break;
                }
            }
        }
    }
}

/// Decodes up to `limit` values from byte `offset` (all of them when both are 0); unless decoding all, the first
/// result is the offset after them, or -1 at the end of the input.
///
/// `limit` and `offset` are 64-bit, as in Redis's build; its messages print them (and the length) with `%d`, which
/// shows their low 32 bits. The message about a negative value shows the input length where it means the limit.
fn unpack_full(state: &State, limit: i64, offset: i64) -> LuaResult<c_int> {
    let decode_all = limit == 0 && offset == 0;
    let data = state.check_bytes(1)?;
    let len_shown = data.len() as i32;
    if offset < 0 || limit < 0 {
        let offset_shown = offset as i32;
        return Err(Raise::error(format!("Invalid request to unpack with offset of {offset_shown} and limit of {len_shown}.")));
    }
    if offset as u64 > data.len() as u64 {
        let offset_shown = offset as i32;
        return Err(Raise::error(format!("Start offset {offset_shown} greater than input length {len_shown}.")));
    }
    let limit = if decode_all { i64::from(i32::MAX) } else { limit };
    let mut cursor = Cursor { data, position: offset as usize };
    let mut count: c_int = 0;
    while cursor.left() > 0 && i64::from(count) < limit {
        decode_value(state, &mut cursor)?;
        count += 1;
    }
    if !decode_all {
        // lua-cmsgpack pushes the offset without asking for room; the call cannot fail where C's push succeeds.
        state.check_stack(1);
        let next_offset = (data.len() - cursor.left()).min(i32::MAX as usize);
        state.push_number(if cursor.left() == 0 { -1.0 } else { next_offset as f64 });
        state.insert(2);
        count += 1;
    }
    Ok(count)
}

/// cmsgpack.unpack(s): every value in `s`.
fn unpack(state: &State) -> LuaResult<c_int> {
    unpack_full(state, 0, 0)
}

/// cmsgpack.unpack_one(s [, offset]): the next offset (-1 at the end) and one value.
fn unpack_one(state: &State) -> LuaResult<c_int> {
    let offset = state.opt_integer(2, 0)?;
    state.pop(state.top() - 1);
    unpack_full(state, 1, offset)
}

/// cmsgpack.unpack_limit(s, limit [, offset]): the next offset (-1 at the end) and up to `limit` values.
fn unpack_limit(state: &State) -> LuaResult<c_int> {
    let limit = state.check_integer(2)?;
    let offset = state.opt_integer(3, 0)?;
    state.pop(state.top() - 1);
    unpack_full(state, limit, offset)
}

c_function!(c_pack => pack);
c_function!(c_unpack => unpack);
c_function!(c_unpack_one => unpack_one);
c_function!(c_unpack_limit => unpack_limit);

fn open(state: &State) -> LuaResult<c_int> {
    let functions: [(&str, ffi::lua_CFunction); 4] = [("pack", c_pack), ("unpack", c_unpack), ("unpack_one", c_unpack_one), ("unpack_limit", c_unpack_limit)];
    state.new_table(0, 8);
    for (name, function) in functions {
        state.push_c_closure(function, 0);
        state.set_field(-2, name);
    }
    for (name, value) in [("_NAME", NAME), ("_VERSION", VERSION), ("_COPYRIGHT", COPYRIGHT), ("_DESCRIPTION", DESCRIPTION)] {
        state.push_bytes(value.as_bytes());
        state.set_field(-2, name);
    }
    Ok(1)
}

c_function!(c_open => open);

pub(crate) fn register(lua: &mlua::Lua) -> mlua::Result<()> {
    super::raw::register(lua, "cmsgpack", c_open)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{eval, eval_bytes};

    #[test]
    fn pack_picks_the_smallest_integer_encoding() {
        assert_eq!(eval_bytes("return cmsgpack.pack(1, -1, 127, 128, -32, -33)"), b"\x01\xff\x7f\xcc\x80\xe0\xd0\xdf");
        assert_eq!(eval_bytes("return cmsgpack.pack(65536, -2^31 - 1)"), b"\xce\x00\x01\x00\x00\xd3\xff\xff\xff\xff\x7f\xff\xff\xff");
    }

    #[test]
    fn pack_uses_floats_when_exact_and_doubles_otherwise() {
        assert_eq!(eval_bytes("return cmsgpack.pack(1.5, 0.1, 2^63)"), b"\xca?\xc0\x00\x00\xcb?\xb9\x99\x99\x99\x99\x99\x9a\xca_\x00\x00\x00");
        assert_eq!(eval_bytes("return cmsgpack.pack(-0.0, 0/0)"), b"\x00\xcb\xff\xf8\x00\x00\x00\x00\x00\x00");
    }

    #[test]
    fn pack_encodes_tables_as_arrays_or_maps() {
        assert_eq!(eval_bytes("return cmsgpack.pack({1, 2, 3}, {}, {a = 1}, {[1] = 1, [3] = 3})"), b"\x93\x01\x02\x03\x90\x81\xa1a\x01\x82\x01\x01\x03\x03");
        let nested = "local t = {} local n = t for i = 1, 20 do n[1] = {} n = n[1] end return cmsgpack.pack(t)";
        assert_eq!(eval_bytes(nested), [vec![0x91; 16], vec![0xc0]].concat());
    }

    #[test]
    fn unpack_reads_what_pack_writes() {
        let code = "local t = cmsgpack.unpack(cmsgpack.pack({1, 'two', {x = 3.5}, true})) return t[1] .. t[2] .. t[3].x .. tostring(t[4])";
        assert_eq!(eval(code), "1two3.5true");
        assert_eq!(eval("return table.concat({cmsgpack.unpack_one('\\1\\2\\3', 1)}, ' ')"), "2 2");
        assert_eq!(eval("return table.concat({cmsgpack.unpack_limit('\\1\\2\\3', 2)}, ' ')"), "2 1 2");
        assert_eq!(eval("return cmsgpack.unpack('\\207\\255\\255\\255\\255\\255\\255\\255\\255')"), "-1");
    }

    #[test]
    fn unpack_rejects_truncated_and_unknown_input() {
        assert_eq!(eval("return select(2, pcall(cmsgpack.unpack, '\\146\\1'))"), "Missing bytes in input.");
        assert_eq!(eval("return select(2, pcall(cmsgpack.unpack, '\\196\\1a'))"), "Bad data format in input.");
        assert_eq!(eval("return select(2, pcall(cmsgpack.unpack, '\\129\\192\\1'))"), "table index is nil");
        assert_eq!(eval("return select(2, pcall(cmsgpack.unpack_one, '\\1', 2))"), "Start offset 2 greater than input length 1.");
    }

    #[test]
    fn unpack_of_deep_nesting_fails_cleanly() {
        let code = "local ok, e = pcall(cmsgpack.unpack, string.rep('\\145', 100000)) return e";
        assert!(eval(code).starts_with("stack overflow"));
    }
}
