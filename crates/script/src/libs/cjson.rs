//! `cjson`: lua-cjson 2.1.0 as Redis bundles it (JSON encoding and decoding).
//!
//! Encoding: numbers as `%.14g` (the precision is configurable), strings with `"`, `\`, `/`, control characters and
//! DEL escaped and every other byte as is, tables as arrays when all keys are positive integers and the array is not
//! excessively sparse (keys from 2^31 count as lua-cjson's int conversion makes them count), else as objects in
//! `next` order. Decoding: the input is read as a C string (a NUL
//! byte ends it), numbers go through C's `strtod` (so hex, `inf` and `nan` decode by default, as in Redis), `\uXXXX`
//! escapes (surrogate pairs included) become UTF-8, and `null` becomes `cjson.null`, a NULL light userdata.
//!
//! Each module table (`cjson` and every `cjson.new()`) has its own configuration, kept in a full userdata that is the
//! first upvalue of its functions. The `encode_keep_buffer` setting is accepted and reported, but has no effect: there
//! is no buffer to keep.

use std::ffi::{c_char, c_int, c_void};

use mlua::ffi;

use super::raw::{c_function, format_g, type_name, LuaResult, Raise, State};

const NAME: &str = "cjson";
const VERSION: &str = "2.1.0";

/// The configuration of one module table. Plain old data: Lua frees the userdata that holds it without a destructor.
#[repr(C)]
#[derive(Clone, Copy)]
struct Config {
    encode_sparse_convert: c_int,
    encode_sparse_ratio: c_int,
    encode_sparse_safe: c_int,
    encode_max_depth: c_int,
    decode_max_depth: c_int,
    encode_number_precision: c_int,
    encode_keep_buffer: c_int,
    /// 0: an error, 1: printed as C prints them (`inf`, `-inf`) and `nan`, 2: `null`.
    encode_invalid_numbers: c_int,
    decode_invalid_numbers: c_int,
}

const DEFAULT_CONFIG: Config = Config {
    encode_sparse_convert: 0,
    encode_sparse_ratio: 2,
    encode_sparse_safe: 10,
    encode_max_depth: 1000,
    decode_max_depth: 1000,
    encode_number_precision: 14,
    encode_keep_buffer: 1,
    encode_invalid_numbers: 0,
    decode_invalid_numbers: 1,
};

/// The configuration of the running function's module table (its first upvalue).
fn config(state: &State) -> LuaResult<*mut Config> {
    let config = state.to_userdata(ffi::lua_upvalueindex(1)) as *mut Config;
    if config.is_null() {
        return Err(Raise::error("BUG: Unable to fetch CJSON configuration"));
    }
    Ok(config)
}

fn read_config(state: &State) -> LuaResult<Config> {
    // SAFETY: the upvalue is a userdata of `size_of::<Config>()` bytes that `open_module` initialised.
    Ok(unsafe { *config(state)? })
}

/// lua-cjson's argument handling for the configuration functions: at most `count` arguments, missing ones nil.
fn config_arguments(state: &State, count: c_int) -> LuaResult<*mut Config> {
    if state.top() > count {
        return Err(Raise::arg(count + 1, "found too many arguments"));
    }
    while state.top() < count {
        state.push_nil();
    }
    config(state)
}

/// Sets `*setting` from argument `index` when it is not nil (an integer in `min..=max`), and pushes the setting.
fn integer_option(state: &State, index: c_int, setting: *mut c_int, min: c_int, max: c_int) -> LuaResult<()> {
    if state.lua_type(index) != ffi::LUA_TNIL {
        // luaL_checkinteger, then C's conversion to int.
        let value = state.check_integer(index)? as c_int;
        if !(min..=max).contains(&value) {
            return Err(Raise::arg(1, format!("expected integer between {min} and {max}")));
        }
        // SAFETY: `setting` points into the live configuration userdata.
        unsafe { *setting = value };
    }
    // SAFETY: as above.
    state.push_number(f64::from(unsafe { *setting }));
    Ok(())
}

/// Sets `*setting` from argument `index` when it is not nil: a boolean, or one of `options` by name (its position);
/// pushes the setting as a boolean when it is 0 or 1, else as its name.
fn enum_option(state: &State, index: c_int, setting: *mut c_int, options: &[&str]) -> LuaResult<()> {
    if state.lua_type(index) != ffi::LUA_TNIL {
        let value = if state.lua_type(index) == ffi::LUA_TBOOLEAN {
            c_int::from(state.to_boolean(index))
        } else {
            let name = state.check_bytes(index)?;
            let name = &name[..name.iter().position(|&byte| byte == 0).unwrap_or(name.len())];
            match options.iter().position(|option| option.as_bytes() == name) {
                Some(position) => position as c_int,
                None => {
                    let mut message = b"invalid option '".to_vec();
                    message.extend_from_slice(name);
                    message.push(b'\'');
                    return Err(Raise::arg(index, message));
                }
            }
        };
        // SAFETY: `setting` points into the live configuration userdata.
        unsafe { *setting = value };
    }
    // SAFETY: as above.
    let value = unsafe { *setting };
    if value == 0 || value == 1 {
        state.push_boolean(value == 1);
    } else {
        state.push_bytes(options[value as usize].as_bytes());
    }
    Ok(())
}

const BOOLEAN_OPTIONS: &[&str] = &["off", "on"];

fn encode_sparse_array(state: &State) -> LuaResult<c_int> {
    let config = config_arguments(state, 3)?;
    // SAFETY: `config` points to the live configuration userdata.
    unsafe {
        enum_option(state, 1, &raw mut (*config).encode_sparse_convert, BOOLEAN_OPTIONS)?;
        integer_option(state, 2, &raw mut (*config).encode_sparse_ratio, 0, c_int::MAX)?;
        integer_option(state, 3, &raw mut (*config).encode_sparse_safe, 0, c_int::MAX)?;
    }
    Ok(3)
}

fn encode_max_depth(state: &State) -> LuaResult<c_int> {
    let config = config_arguments(state, 1)?;
    // SAFETY: `config` points to the live configuration userdata.
    integer_option(state, 1, unsafe { &raw mut (*config).encode_max_depth }, 1, c_int::MAX)?;
    Ok(1)
}

fn decode_max_depth(state: &State) -> LuaResult<c_int> {
    let config = config_arguments(state, 1)?;
    // SAFETY: `config` points to the live configuration userdata.
    integer_option(state, 1, unsafe { &raw mut (*config).decode_max_depth }, 1, c_int::MAX)?;
    Ok(1)
}

fn encode_number_precision(state: &State) -> LuaResult<c_int> {
    let config = config_arguments(state, 1)?;
    // SAFETY: `config` points to the live configuration userdata.
    integer_option(state, 1, unsafe { &raw mut (*config).encode_number_precision }, 1, 14)?;
    Ok(1)
}

fn encode_keep_buffer(state: &State) -> LuaResult<c_int> {
    let config = config_arguments(state, 1)?;
    // SAFETY: `config` points to the live configuration userdata.
    enum_option(state, 1, unsafe { &raw mut (*config).encode_keep_buffer }, BOOLEAN_OPTIONS)?;
    Ok(1)
}

fn encode_invalid_numbers(state: &State) -> LuaResult<c_int> {
    let config = config_arguments(state, 1)?;
    // SAFETY: `config` points to the live configuration userdata.
    enum_option(state, 1, unsafe { &raw mut (*config).encode_invalid_numbers }, &["off", "on", "null"])?;
    Ok(1)
}

fn decode_invalid_numbers(state: &State) -> LuaResult<c_int> {
    let config = config_arguments(state, 1)?;
    // SAFETY: `config` points to the live configuration userdata.
    enum_option(state, 1, unsafe { &raw mut (*config).decode_invalid_numbers }, BOOLEAN_OPTIONS)?;
    Ok(1)
}

// Encoding.

struct Encoder<'a> {
    state: &'a State,
    config: Config,
    out: Vec<u8>,
}

/// "Cannot serialise <type of the value at index>: <reason>".
fn cannot_serialise(state: &State, index: c_int, reason: &str) -> Raise {
    Raise::error(format!("Cannot serialise {}: {reason}", type_name(state.lua_type(index))))
}

impl Encoder<'_> {
    fn string(&mut self, index: c_int) {
        let bytes = self.state.to_bytes(index).unwrap_or_default();
        self.out.reserve(bytes.len() + 2);
        self.out.push(b'"');
        for &byte in bytes {
            match byte {
                b'"' => self.out.extend_from_slice(b"\\\""),
                b'\\' => self.out.extend_from_slice(b"\\\\"),
                b'/' => self.out.extend_from_slice(b"\\/"),
                b'\x08' => self.out.extend_from_slice(b"\\b"),
                b'\x0c' => self.out.extend_from_slice(b"\\f"),
                b'\n' => self.out.extend_from_slice(b"\\n"),
                b'\r' => self.out.extend_from_slice(b"\\r"),
                b'\t' => self.out.extend_from_slice(b"\\t"),
                0..=0x1f | 0x7f => self.out.extend_from_slice(format!("\\u{byte:04x}").as_bytes()),
                _ => self.out.push(byte),
            }
        }
        self.out.push(b'"');
    }

    fn number(&mut self, index: c_int) -> LuaResult<()> {
        let number = self.state.to_number(index);
        if !number.is_finite() {
            match self.config.encode_invalid_numbers {
                0 => return Err(cannot_serialise(self.state, index, "must not be NaN or Inf")),
                // C prints a NaN with its sign ("-nan"); lua-cjson spells it "nan" whatever the sign.
                1 if number.is_nan() => {
                    self.out.extend_from_slice(b"nan");
                    return Ok(());
                }
                1 => {}
                _ => {
                    self.out.extend_from_slice(b"null");
                    return Ok(());
                }
            }
        }
        self.out.extend_from_slice(format_g(number, self.config.encode_number_precision).as_bytes());
        Ok(())
    }

    /// Appends the value on top of the stack, and pops it.
    ///
    /// Iterative, with the open tables in `frames` (and on the Lua stack, laid out as lua-cjson's recursion lays them
    /// out, so `lua_checkstack` fails at the same depth), so that nesting as deep as the configuration allows cannot
    /// overflow the Rust stack.
    fn value(&mut self) -> LuaResult<()> {
        enum Frame {
            /// An array, the next index to encode, and its length. The table is on top of the stack.
            Array(c_int, c_int),
            /// An object, and whether a member was written. The table and the last key are on top of the stack.
            Object(bool),
        }
        let state = self.state;
        let mut frames: Vec<Frame> = Vec::new();
        loop {
            // A table that opens stays on the stack for its members; a scalar is popped once written.
            let opened = state.lua_type(-1) == ffi::LUA_TTABLE;
            match state.lua_type(-1) {
                ffi::LUA_TSTRING => self.string(-1),
                ffi::LUA_TNUMBER => self.number(-1)?,
                ffi::LUA_TBOOLEAN => {
                    let text: &[u8] = if state.to_boolean(-1) { b"true" } else { b"false" };
                    self.out.extend_from_slice(text);
                }
                ffi::LUA_TTABLE => {
                    let depth = frames.len() as c_int + 1;
                    if depth > self.config.encode_max_depth || !state.check_stack(3) {
                        return Err(Raise::error(format!("Cannot serialise, excessive nesting ({depth})")));
                    }
                    match self.array_length()? {
                        Some(length) => {
                            self.out.push(b'[');
                            frames.push(Frame::Array(1, length));
                        }
                        None => {
                            self.out.push(b'{');
                            state.push_nil();
                            frames.push(Frame::Object(false));
                        }
                    }
                }
                ffi::LUA_TNIL => self.out.extend_from_slice(b"null"),
                ffi::LUA_TLIGHTUSERDATA if state.to_userdata(-1).is_null() => self.out.extend_from_slice(b"null"),
                _ => return Err(cannot_serialise(state, -1, "type not supported")),
            }
            if !opened {
                state.pop(1);
            }
            // Find the next value to encode, closing the tables that are done.
            loop {
                match frames.last_mut() {
                    None => return Ok(()),
                    Some(Frame::Array(next, length)) => {
                        if *next > *length {
                            self.out.push(b']');
                            frames.pop();
                            state.pop(1);
                            continue;
                        }
                        if *next > 1 {
                            self.out.push(b',');
                        }
                        state.raw_get_index(-1, *next);
                        *next += 1;
                        break;
                    }
                    Some(Frame::Object(written)) => {
                        if !state.next(-2) {
                            self.out.push(b'}');
                            frames.pop();
                            state.pop(1);
                            continue;
                        }
                        if *written {
                            self.out.push(b',');
                        }
                        *written = true;
                        match state.lua_type(-2) {
                            ffi::LUA_TNUMBER => {
                                self.out.push(b'"');
                                self.number(-2)?;
                                self.out.extend_from_slice(b"\":");
                            }
                            ffi::LUA_TSTRING => {
                                self.string(-2);
                                self.out.push(b':');
                            }
                            _ => return Err(cannot_serialise(state, -2, "table key must be a number or string")),
                        }
                        break;
                    }
                }
            }
        }
    }

    /// The array length of the table on top of the stack, or `None` when it encodes as an object.
    fn array_length(&self) -> LuaResult<Option<c_int>> {
        let state = self.state;
        let mut max: c_int = 0;
        let mut items: c_int = 0;
        state.push_nil();
        while state.next(-2) {
            let key = state.to_number(-2);
            let is_index = state.lua_type(-2) == ffi::LUA_TNUMBER && key.floor() == key && key >= 1.0;
            if !is_index {
                state.pop(2);
                return Ok(None);
            }
            // lua-cjson compares as doubles and stores in an int: a key from 2^31 stores INT_MIN on x86-64, so the
            // outcome depends on the traversal order, exactly as in Redis (a lone such key makes an object).
            if key > f64::from(max) {
                max = super::raw::f64_to_i32(key);
            }
            items = items.wrapping_add(1);
            state.pop(1);
        }
        let config = &self.config;
        // C multiplies in int, which wraps on x86-64.
        let sparse = max > items.wrapping_mul(config.encode_sparse_ratio);
        if config.encode_sparse_ratio > 0 && sparse && max > config.encode_sparse_safe {
            if config.encode_sparse_convert == 0 {
                return Err(cannot_serialise(state, -1, "excessively sparse array"));
            }
            return Ok(None);
        }
        Ok(if max > 0 { Some(max) } else { None })
    }
}

/// cjson.encode(value)
fn encode(state: &State) -> LuaResult<c_int> {
    let config = read_config(state)?;
    if state.top() != 1 {
        return Err(Raise::arg(1, "expected 1 argument"));
    }
    let mut encoder = Encoder { state, config, out: Vec::new() };
    encoder.value()?;
    state.push_bytes(&encoder.out);
    Ok(1)
}

// Decoding.

#[derive(Clone, Copy, PartialEq)]
enum TokenKind {
    ObjectBegin,
    ObjectEnd,
    ArrayBegin,
    ArrayEnd,
    String,
    Number,
    Boolean,
    Null,
    Colon,
    Comma,
    End,
    /// The payload is the error's description.
    Error(&'static str),
}

impl TokenKind {
    fn describe(self) -> &'static str {
        match self {
            TokenKind::ObjectBegin => "T_OBJ_BEGIN",
            TokenKind::ObjectEnd => "T_OBJ_END",
            TokenKind::ArrayBegin => "T_ARR_BEGIN",
            TokenKind::ArrayEnd => "T_ARR_END",
            TokenKind::String => "T_STRING",
            TokenKind::Number => "T_NUMBER",
            TokenKind::Boolean => "T_BOOLEAN",
            TokenKind::Null => "T_NULL",
            TokenKind::Colon => "T_COLON",
            TokenKind::Comma => "T_COMMA",
            TokenKind::End => "T_END",
            TokenKind::Error(description) => description,
        }
    }
}

struct Token {
    kind: TokenKind,
    /// Where the token (or the error) starts, 0-based.
    index: usize,
    number: f64,
    boolean: bool,
}

unsafe extern "C" {
    fn strtod(text: *const c_char, end: *mut *mut c_char) -> f64;
}

struct Decoder<'a> {
    state: &'a State,
    config: Config,
    /// The JSON text; Lua keeps a NUL byte after it, which `strtod` relies on.
    data: &'a [u8],
    position: usize,
    depth: c_int,
    /// The last string token's bytes, unescaped.
    string: Vec<u8>,
}

impl Decoder<'_> {
    /// The byte at `index`, or NUL past the end (the C parser sees the terminating NUL there).
    fn byte_at(&self, index: usize) -> u8 {
        self.data.get(index).copied().unwrap_or(0)
    }

    fn token(&self, kind: TokenKind, index: usize) -> Token {
        Token { kind, index, number: 0.0, boolean: false }
    }

    fn error_token(&self, description: &'static str) -> Token {
        self.token(TokenKind::Error(description), self.position)
    }

    fn next_token(&mut self) -> Token {
        while matches!(self.byte_at(self.position), b' ' | b'\t' | b'\n' | b'\r') {
            self.position += 1;
        }
        let start = self.position;
        let byte = self.byte_at(start);
        let single = match byte {
            b'{' => Some(TokenKind::ObjectBegin),
            b'}' => Some(TokenKind::ObjectEnd),
            b'[' => Some(TokenKind::ArrayBegin),
            b']' => Some(TokenKind::ArrayEnd),
            b':' => Some(TokenKind::Colon),
            b',' => Some(TokenKind::Comma),
            _ => None,
        };
        if let Some(kind) = single {
            self.position += 1;
            return self.token(kind, start);
        }
        let rest = &self.data[start.min(self.data.len())..];
        match byte {
            0 => self.token(TokenKind::End, start),
            b'"' => self.string_token(),
            b'-' | b'0'..=b'9' => {
                if self.config.decode_invalid_numbers == 0 && self.is_invalid_number() {
                    return self.error_token("invalid number");
                }
                self.number_token()
            }
            b'f' | b'i' | b'I' | b'n' | b'N' | b't' | b'+' => {
                if rest.starts_with(b"true") {
                    self.position += 4;
                    Token { boolean: true, ..self.token(TokenKind::Boolean, start) }
                } else if rest.starts_with(b"false") {
                    self.position += 5;
                    Token { boolean: false, ..self.token(TokenKind::Boolean, start) }
                } else if rest.starts_with(b"null") {
                    self.position += 4;
                    self.token(TokenKind::Null, start)
                } else if self.config.decode_invalid_numbers != 0 && self.is_invalid_number() {
                    self.number_token()
                } else {
                    self.error_token("invalid token")
                }
            }
            _ => self.error_token("invalid token"),
        }
    }

    /// lua-cjson's test for numbers JSON does not allow: a leading `+`, hex, leading zeros, `inf`, `nan`.
    fn is_invalid_number(&self) -> bool {
        let mut at = self.position;
        match self.byte_at(at) {
            b'+' => return true,
            b'-' => at += 1,
            _ => {}
        }
        let first = self.byte_at(at);
        if first == b'0' {
            let second = self.byte_at(at + 1);
            return second | 0x20 == b'x' || second.is_ascii_digit();
        }
        if first <= b'9' {
            return false;
        }
        let word = [self.byte_at(at), self.byte_at(at + 1), self.byte_at(at + 2)];
        word.eq_ignore_ascii_case(b"inf") || word.eq_ignore_ascii_case(b"nan")
    }

    fn number_token(&mut self) -> Token {
        let start = self.position;
        if start >= self.data.len() {
            return self.error_token("invalid number");
        }
        // SAFETY: `data` is a Lua string, which Lua always follows with a NUL byte, so strtod stops inside it.
        let (number, consumed) = unsafe {
            let text = self.data.as_ptr().add(start) as *const c_char;
            let mut end: *mut c_char = std::ptr::null_mut();
            let number = strtod(text, &mut end);
            (number, (end as usize).saturating_sub(text as usize))
        };
        if consumed == 0 {
            return self.error_token("invalid number");
        }
        self.position += consumed;
        Token { number, ..self.token(TokenKind::Number, start) }
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        let mut value = 0;
        for offset in 0..4 {
            let digit = char::from(self.byte_at(at + offset)).to_digit(16)?;
            value = value << 4 | digit;
        }
        Some(value)
    }

    /// Appends the `\uXXXX` escape (or surrogate pair) at the current position as UTF-8; false when invalid.
    fn unicode_escape(&mut self) -> bool {
        let Some(mut code_point) = self.hex4(self.position + 2) else {
            return false;
        };
        let mut escape_len = 6;
        if code_point & 0xf800 == 0xd800 {
            if code_point & 0x400 != 0 {
                return false;
            }
            if self.byte_at(self.position + 6) != b'\\' || self.byte_at(self.position + 7) != b'u' {
                return false;
            }
            let Some(low) = self.hex4(self.position + 8) else {
                return false;
            };
            if low & 0xfc00 != 0xdc00 {
                return false;
            }
            code_point = (((code_point & 0x3ff) << 10) | (low & 0x3ff)) + 0x10000;
            escape_len = 12;
        }
        let Some(character) = char::from_u32(code_point) else {
            return false;
        };
        let mut utf8 = [0u8; 4];
        self.string.extend_from_slice(character.encode_utf8(&mut utf8).as_bytes());
        self.position += escape_len;
        true
    }

    fn string_token(&mut self) -> Token {
        let start = self.position;
        self.position += 1;
        self.string.clear();
        loop {
            let byte = self.byte_at(self.position);
            match byte {
                b'"' => break,
                0 => return self.error_token("unexpected end of string"),
                b'\\' => {
                    let unescaped = match self.byte_at(self.position + 1) {
                        b'"' => b'"',
                        b'\\' => b'\\',
                        b'/' => b'/',
                        b'b' => b'\x08',
                        b'f' => b'\x0c',
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'u' => {
                            if self.unicode_escape() {
                                continue;
                            }
                            return self.error_token("invalid unicode escape code");
                        }
                        _ => return self.error_token("invalid escape code"),
                    };
                    self.string.push(unescaped);
                    self.position += 2;
                }
                _ => {
                    self.string.push(byte);
                    self.position += 1;
                }
            }
        }
        self.position += 1;
        self.token(TokenKind::String, start)
    }

    fn parse_error(&self, expected: &str, token: &Token) -> Raise {
        Raise::error(format!("Expected {expected} but found {} at character {}", token.kind.describe(), token.index + 1))
    }

    fn descend(&mut self, slots: c_int) -> LuaResult<()> {
        self.depth += 1;
        if self.depth <= self.config.decode_max_depth && self.state.check_stack(slots) {
            return Ok(());
        }
        Err(Raise::error(format!("Found too many nested data structures ({}) at character {}", self.depth, self.position)))
    }

    fn push_key(&mut self, token: &Token) -> LuaResult<()> {
        if token.kind != TokenKind::String {
            return Err(self.parse_error("object key string", token));
        }
        self.state.push_bytes(&self.string);
        let colon = self.next_token();
        if colon.kind != TokenKind::Colon {
            return Err(self.parse_error("colon", &colon));
        }
        Ok(())
    }

    /// Pushes the value that starts with `token`.
    ///
    /// Iterative, with the open arrays and objects in `frames` and their tables on the Lua stack, so that nesting as
    /// deep as the configuration allows cannot overflow the Rust stack. Tokens are read, and errors raised, in the
    /// order of lua-cjson's recursive parser.
    fn value(&mut self, mut token: Token) -> LuaResult<()> {
        enum Frame {
            /// An array and the index of its next element.
            Array(c_int),
            /// An object, with the key of the value being parsed on the stack.
            Object,
        }
        let mut frames: Vec<Frame> = Vec::new();
        loop {
            match token.kind {
                TokenKind::String => self.state.push_bytes(&self.string),
                TokenKind::Number => self.state.push_number(token.number),
                TokenKind::Boolean => self.state.push_boolean(token.boolean),
                TokenKind::Null => self.state.push_light_userdata(std::ptr::null_mut::<c_void>()),
                TokenKind::ObjectBegin => {
                    self.descend(3)?;
                    self.state.new_table(0, 0);
                    token = self.next_token();
                    if token.kind == TokenKind::ObjectEnd {
                        self.depth -= 1;
                    } else {
                        self.push_key(&token)?;
                        frames.push(Frame::Object);
                        token = self.next_token();
                        continue;
                    }
                }
                TokenKind::ArrayBegin => {
                    self.descend(2)?;
                    self.state.new_table(0, 0);
                    token = self.next_token();
                    if token.kind == TokenKind::ArrayEnd {
                        self.depth -= 1;
                    } else {
                        frames.push(Frame::Array(1));
                        continue;
                    }
                }
                _ => return Err(self.parse_error("value", &token)),
            }
            // A value is complete on top of the stack: store it in its container, and close containers that end.
            loop {
                match frames.last_mut() {
                    None => return Ok(()),
                    Some(Frame::Array(index)) => {
                        self.state.raw_set_index(-2, *index);
                        *index = index.wrapping_add(1);
                        token = self.next_token();
                        if token.kind == TokenKind::ArrayEnd {
                            frames.pop();
                            self.depth -= 1;
                            continue;
                        }
                        if token.kind != TokenKind::Comma {
                            return Err(self.parse_error("comma or array end", &token));
                        }
                        token = self.next_token();
                        break;
                    }
                    Some(Frame::Object) => {
                        self.state.raw_set(-3);
                        token = self.next_token();
                        if token.kind == TokenKind::ObjectEnd {
                            frames.pop();
                            self.depth -= 1;
                            continue;
                        }
                        if token.kind != TokenKind::Comma {
                            return Err(self.parse_error("comma or object end", &token));
                        }
                        token = self.next_token();
                        self.push_key(&token)?;
                        token = self.next_token();
                        break;
                    }
                }
            }
        }
    }
}

/// cjson.decode(text)
fn decode(state: &State) -> LuaResult<c_int> {
    let config = read_config(state)?;
    if state.top() != 1 {
        return Err(Raise::arg(1, "expected 1 argument"));
    }
    let data = state.check_bytes(1)?;
    // A NUL among the first two bytes gives away UTF-16 or UTF-32 (RFC 4627, section 3).
    if data.len() >= 2 && (data[0] == 0 || data[1] == 0) {
        return Err(Raise::error("JSON parser does not support UTF-16 or UTF-32"));
    }
    let mut decoder = Decoder { state, config, data, position: 0, depth: 0, string: Vec::new() };
    let token = decoder.next_token();
    decoder.value(token)?;
    let token = decoder.next_token();
    if token.kind != TokenKind::End {
        return Err(decoder.parse_error("the end", &token));
    }
    Ok(1)
}

c_function!(c_encode => encode);
c_function!(c_decode => decode);
c_function!(c_encode_sparse_array => encode_sparse_array);
c_function!(c_encode_max_depth => encode_max_depth);
c_function!(c_decode_max_depth => decode_max_depth);
c_function!(c_encode_number_precision => encode_number_precision);
c_function!(c_encode_keep_buffer => encode_keep_buffer);
c_function!(c_encode_invalid_numbers => encode_invalid_numbers);
c_function!(c_decode_invalid_numbers => decode_invalid_numbers);

/// cjson.new(): a module table with a configuration of its own. Also what `register` installs as `cjson`.
fn new_module(state: &State) -> LuaResult<c_int> {
    let functions: [(&str, ffi::lua_CFunction); 9] = [
        ("encode", c_encode),
        ("decode", c_decode),
        ("encode_sparse_array", c_encode_sparse_array),
        ("encode_max_depth", c_encode_max_depth),
        ("decode_max_depth", c_decode_max_depth),
        ("encode_number_precision", c_encode_number_precision),
        ("encode_keep_buffer", c_encode_keep_buffer),
        ("encode_invalid_numbers", c_encode_invalid_numbers),
        ("decode_invalid_numbers", c_decode_invalid_numbers),
    ];
    state.new_table(0, functions.len() as c_int + 4);
    let config = state.new_userdata(std::mem::size_of::<Config>()) as *mut Config;
    // SAFETY: Lua returned `size_of::<Config>()` bytes, aligned for any C type.
    unsafe { config.write(DEFAULT_CONFIG) };
    for (name, function) in functions {
        state.push_value(-1);
        state.push_c_closure(function, 1);
        state.set_field(-3, name);
    }
    state.pop(1);
    state.push_light_userdata(std::ptr::null_mut());
    state.set_field(-2, "null");
    state.push_c_closure(c_new_module, 0);
    state.set_field(-2, "new");
    state.push_bytes(NAME.as_bytes());
    state.set_field(-2, "_NAME");
    state.push_bytes(VERSION.as_bytes());
    state.set_field(-2, "_VERSION");
    Ok(1)
}

c_function!(c_new_module => new_module);

pub(crate) fn register(lua: &mlua::Lua) -> mlua::Result<()> {
    super::raw::register(lua, "cjson", c_new_module)
}

#[cfg(test)]
mod tests {
    use super::super::tests::eval;

    #[test]
    fn encode_chooses_arrays_and_objects_as_lua_cjson() {
        assert_eq!(eval("return cjson.encode({1, 2, 3})"), "[1,2,3]");
        assert_eq!(eval("return cjson.encode({})"), "{}");
        assert_eq!(eval("return cjson.encode({[1] = 1, [5] = 3})"), "[1,null,null,null,3]");
        assert_eq!(eval("return cjson.encode({[2^31] = 1})"), "{\"2147483648\":1}");
        assert_eq!(eval("return select(2, pcall(cjson.encode, {[11] = 1}))"), "Cannot serialise table: excessively sparse array");
        assert_eq!(eval("local c = cjson.new() c.encode_sparse_array(true) return c.encode({[20] = 1})"), "{\"20\":1}");
    }

    #[test]
    fn encode_formats_numbers_and_escapes_strings() {
        assert_eq!(eval("return cjson.encode({0.1, 1e100, -0.0, 2^53})"), "[0.1,1e+100,-0,9.007199254741e+15]");
        assert_eq!(eval("return cjson.encode('a/b\"\\\\\\n\\1\\127\\128')"), "\"a\\/b\\\"\\\\\\n\\u0001\\u007f\u{fffd}\"");
        assert_eq!(eval("return select(2, pcall(cjson.encode, 0/0))"), "Cannot serialise number: must not be NaN or Inf");
        assert_eq!(eval("local c = cjson.new() c.encode_invalid_numbers(true) return c.encode({1/0, -1/0, 0/0})"), "[inf,-inf,nan]");
    }

    #[test]
    fn encode_limits_nesting() {
        let code = "local t = {} local c = t for i = 1, 1000 do c[1] = {} c = c[1] end return select(2, pcall(cjson.encode, t))";
        assert_eq!(eval(code), "Cannot serialise, excessive nesting (1001)");
        assert_eq!(eval("local t = {} t[1] = t return select(2, pcall(cjson.encode, t))"), "Cannot serialise, excessive nesting (1001)");
    }

    #[test]
    fn decode_reads_values_escapes_and_numbers() {
        assert_eq!(eval("return cjson.encode(cjson.decode('{\"a\":[1,{\"b\":null}]}'))"), "{\"a\":[1,{\"b\":null}]}");
        assert_eq!(eval("return cjson.decode('\"\\\\u00e9\\\\ud83d\\\\ude00\"')"), "é😀");
        assert_eq!(eval("return tostring(cjson.decode('0x10')) .. tostring(cjson.decode('-Infinity'))"), "16-inf");
        assert_eq!(eval("return tostring(cjson.decode('null') == cjson.null)"), "true");
    }

    #[test]
    fn decode_errors_name_the_token_and_position() {
        assert_eq!(eval("return select(2, pcall(cjson.decode, '[1,2'))"), "Expected comma or array end but found T_END at character 5");
        assert_eq!(eval("return select(2, pcall(cjson.decode, '\"\\\\ud83d\"'))"), "Expected value but found invalid unicode escape code at character 2");
        assert_eq!(eval("return select(2, pcall(cjson.decode, '123abc'))"), "Expected the end but found invalid token at character 4");
        assert_eq!(eval("return select(2, pcall(cjson.decode, string.rep('[', 1001)))"), "Found too many nested data structures (1001) at character 1001");
        assert_eq!(eval("return select(2, pcall(cjson.decode, 'a\\0'))"), "JSON parser does not support UTF-16 or UTF-32");
    }

    #[test]
    fn deep_nesting_within_raised_limits_does_not_overflow() {
        let code = "local c = cjson.new() c.decode_max_depth(100000) c.encode_max_depth(100000) \
                    local ok, e = pcall(c.decode, string.rep('[', 50000)) return e";
        assert!(eval(code).starts_with("Found too many nested data structures"));
        let code = "local c = cjson.new() c.encode_max_depth(100000) \
                    local t = {} local n = t for i = 1, 50000 do n[1] = {} n = n[1] end return select(2, pcall(c.encode, t))";
        assert!(eval(code).starts_with("Cannot serialise, excessive nesting"));
    }
}
