//! `struct`: Roberto Ierusalimschy's lua_struct as Redis bundles it (binary packing of numbers and strings).
//!
//! Formats are read as C strings (they end at the first NUL byte). Options: `>` big endian, `<` little endian (the
//! default, x86-64 being little endian), `!n` alignment (8 without n), `x` a zero byte, `b`/`B` char, `h`/`H` short,
//! `l`/`L` long, `T` size_t, `i[n]`/`I[n]` an integer of n bytes (4 by default, at most 32), `f` float, `d` double,
//! `s` a zero-terminated string, `c[n]` n bytes (`c0`: all of the string when packing, the previous number's count
//! when unpacking), spaces ignored. Integers are 64 bits wide inside: wider sizes pad with zero bytes, and numbers
//! convert to integers as C's casts do on x86-64.

use std::ffi::c_int;

use super::raw::{c_function, f64_to_i64, f64_to_u64, LuaResult, Raise, State};

/// The widest integer (`i32`), as Redis's lua_struct limits it.
const INT_SIZE_MAX: usize = 32;
/// The alignment `!` sets without a number: that of a double on x86-64.
const ALIGN_MAX: usize = 8;

#[derive(Clone, Copy, PartialEq)]
enum Endian {
    Little,
    Big,
}

struct Header {
    endian: Endian,
    align: usize,
}

impl Header {
    fn new() -> Self {
        Header { endian: Endian::Little, align: 1 }
    }
}

/// A cursor over a format string, cut at its first NUL as C reads it.
struct Format<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Format<'a> {
    fn new(format: &'a [u8]) -> Self {
        let end = format.iter().position(|&byte| byte == 0).unwrap_or(format.len());
        Format { bytes: &format[..end], position: 0 }
    }

    fn next_option(&mut self) -> Option<u8> {
        let option = *self.bytes.get(self.position)?;
        self.position += 1;
        Some(option)
    }

    /// The decimal number that follows, or `default` when no digit follows.
    fn number(&mut self, default: usize) -> LuaResult<usize> {
        if !self.bytes.get(self.position).is_some_and(u8::is_ascii_digit) {
            return Ok(default);
        }
        let mut number: i32 = 0;
        while let Some(&digit) = self.bytes.get(self.position).filter(|byte| byte.is_ascii_digit()) {
            let digit = i32::from(digit - b'0');
            if number > i32::MAX / 10 || number * 10 > i32::MAX - digit {
                return Err(Raise::error("integral size overflow"));
            }
            number = number * 10 + digit;
            self.position += 1;
        }
        Ok(number as usize)
    }

    /// The size in bytes of `option`, reading its count if it takes one; 0 for options without a size.
    fn option_size(&mut self, option: u8) -> LuaResult<usize> {
        Ok(match option {
            b'B' | b'b' | b'x' => 1,
            b'H' | b'h' => 2,
            b'L' | b'l' | b'T' | b'd' => 8,
            b'f' => 4,
            b'c' => self.number(1)?,
            b'i' | b'I' => {
                let size = self.number(4)?;
                if size > INT_SIZE_MAX {
                    return Err(Raise::error(format!("integral size {size} is larger than limit of {INT_SIZE_MAX}")));
                }
                size
            }
            _ => 0,
        })
    }

    /// The options that change the header: endianness, alignment, spaces; anything else is invalid.
    fn control(&mut self, option: u8, header: &mut Header) -> LuaResult<()> {
        match option {
            b' ' => {}
            b'>' => header.endian = Endian::Big,
            b'<' => header.endian = Endian::Little,
            b'!' => {
                let align = self.number(ALIGN_MAX)?;
                if !align.is_power_of_two() {
                    return Err(Raise::error(format!("alignment {align} is not a power of 2")));
                }
                header.align = align;
            }
            _ => {
                let mut message = b"invalid format option '".to_vec();
                message.push(option);
                message.push(b'\'');
                return Err(Raise::arg(1, message));
            }
        }
        Ok(())
    }
}

/// The padding that aligns `position` for an item of `size` bytes (strings are never aligned).
fn padding(position: usize, header: &Header, option: u8, size: usize) -> usize {
    if size <= 1 || option == b'c' {
        return 0;
    }
    let align = size.min(header.align);
    // Alignments are powers of two, except an item's own odd size (i3), which lua_struct masks all the same.
    (align - (position & (align - 1))) & (align - 1)
}

fn put_integer(buffer: &mut Vec<u8>, number: f64, endian: Endian, size: usize) {
    let mut value = if number < 0.0 { f64_to_i64(number) as u64 } else { f64_to_u64(number) };
    let start = buffer.len();
    buffer.resize(start + size, 0);
    let bytes = &mut buffer[start..];
    for index in 0..size {
        let slot = if endian == Endian::Little { index } else { size - 1 - index };
        bytes[slot] = value as u8;
        value = value.checked_shr(8).unwrap_or(0);
    }
}

fn get_integer(bytes: &[u8], endian: Endian, signed: bool) -> f64 {
    let mut value: u64 = 0;
    let mut push = |byte: u8| value = (value << 8) | u64::from(byte);
    if endian == Endian::Big {
        bytes.iter().copied().for_each(&mut push);
    } else {
        bytes.iter().rev().copied().for_each(&mut push);
    }
    if !signed {
        return value as f64;
    }
    // The sign bit is bit size*8-1; x86-64 takes shift counts modulo 64, which is what sizes above 8 (and 0) get.
    let mask = u64::MAX << ((bytes.len() * 8).wrapping_sub(1) & 63);
    if value & mask != 0 {
        value |= mask;
    }
    value as i64 as f64
}

/// struct.pack(fmt, v1, v2, ...)
fn pack(state: &State) -> LuaResult<c_int> {
    let mut format = Format::new(state.check_bytes(1)?);
    let mut header = Header::new();
    let mut argument: c_int = 2;
    let mut buffer = Vec::new();
    // lua_struct pushes a nil after the arguments, so a missing value is reported as "got nil", not "got no value".
    state.push_nil();
    while let Some(option) = format.next_option() {
        let mut size = format.option_size(option)?;
        let pad = padding(buffer.len(), &header, option, size);
        buffer.resize(buffer.len() + pad, 0);
        match option {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let number = state.check_number(argument)?;
                argument += 1;
                put_integer(&mut buffer, number, header.endian, size);
            }
            b'x' => buffer.push(0),
            b'f' => {
                let number = state.check_number(argument)? as f32;
                argument += 1;
                let bytes = if header.endian == Endian::Big { number.to_be_bytes() } else { number.to_le_bytes() };
                buffer.extend_from_slice(&bytes);
            }
            b'd' => {
                let number = state.check_number(argument)?;
                argument += 1;
                let bytes = if header.endian == Endian::Big { number.to_be_bytes() } else { number.to_le_bytes() };
                buffer.extend_from_slice(&bytes);
            }
            b'c' | b's' => {
                let string = state.check_bytes(argument)?;
                argument += 1;
                if size == 0 {
                    size = string.len();
                }
                // lua_struct reports the argument after the string.
                if string.len() < size {
                    return Err(Raise::arg(argument, "string too short"));
                }
                buffer.extend_from_slice(&string[..size]);
                if option == b's' {
                    buffer.push(0);
                }
            }
            _ => format.control(option, &mut header)?,
        }
    }
    state.push_bytes(&buffer);
    Ok(1)
}

/// struct.unpack(fmt, s [, i]): the values, then the position after them.
fn unpack(state: &State) -> LuaResult<c_int> {
    let mut format = Format::new(state.check_bytes(1)?);
    let data = state.check_bytes(2)?;
    let offset = state.opt_integer(3, 1)? as u64 as usize;
    if offset == 0 {
        return Err(Raise::arg(3, "offset must be 1 or greater"));
    }
    let mut position = offset - 1;
    let mut header = Header::new();
    let mut count: c_int = 0;
    let too_short = || Raise::arg(2, "data string too short");
    let fits = |position: usize, size: usize| size <= data.len() && position <= data.len() - size;
    while let Some(option) = format.next_option() {
        let mut size = format.option_size(option)?;
        position = position.wrapping_add(padding(position, &header, option, size));
        if !fits(position, size) {
            return Err(too_short());
        }
        if !state.check_stack(2) {
            return Err(Raise::error("stack overflow (too many results)"));
        }
        match option {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let signed = option.is_ascii_lowercase();
                state.push_number(get_integer(&data[position..position + size], header.endian, signed));
                count += 1;
            }
            b'x' => {}
            b'f' => {
                let bytes: [u8; 4] = data[position..position + 4].try_into().expect("size 4 was checked");
                let number = if header.endian == Endian::Big { f32::from_be_bytes(bytes) } else { f32::from_le_bytes(bytes) };
                state.push_number(f64::from(number));
                count += 1;
            }
            b'd' => {
                let bytes: [u8; 8] = data[position..position + 8].try_into().expect("size 8 was checked");
                let number = if header.endian == Endian::Big { f64::from_be_bytes(bytes) } else { f64::from_le_bytes(bytes) };
                state.push_number(number);
                count += 1;
            }
            b'c' => {
                if size == 0 {
                    if count == 0 || !state.is_number(-1) {
                        return Err(Raise::error("format 'c0' needs a previous size"));
                    }
                    size = f64_to_u64(state.to_number(-1)) as usize;
                    state.pop(1);
                    count -= 1;
                    if !fits(position, size) {
                        return Err(too_short());
                    }
                }
                state.push_bytes(&data[position..position + size]);
                count += 1;
            }
            b's' => {
                let Some(length) = data[position..].iter().position(|&byte| byte == 0) else {
                    return Err(Raise::error("unfinished string in data"));
                };
                state.push_bytes(&data[position..position + length]);
                size = length + 1;
                count += 1;
            }
            _ => format.control(option, &mut header)?,
        }
        position = position.wrapping_add(size);
    }
    state.push_number(position.wrapping_add(1) as i64 as f64);
    Ok(count + 1)
}

/// struct.size(fmt): the size of what `fmt` packs, which must not hold strings of variable length.
fn size(state: &State) -> LuaResult<c_int> {
    let mut format = Format::new(state.check_bytes(1)?);
    let mut header = Header::new();
    let mut position: usize = 0;
    while let Some(option) = format.next_option() {
        let size = format.option_size(option)?;
        position = position.wrapping_add(padding(position, &header, option, size));
        if option == b's' {
            return Err(Raise::arg(1, "option 's' has no fixed size"));
        }
        if option == b'c' && size == 0 {
            return Err(Raise::arg(1, "option 'c0' has no fixed size"));
        }
        // Unknown letters and digits count as size 0 here; unknown punctuation is an error.
        if !option.is_ascii_alphanumeric() {
            format.control(option, &mut header)?;
        }
        position = position.wrapping_add(size);
    }
    state.push_number(position as i64 as f64);
    Ok(1)
}

c_function!(c_pack => pack);
c_function!(c_unpack => unpack);
c_function!(c_size => size);

fn open(state: &State) -> LuaResult<c_int> {
    state.new_table(0, 3);
    for (name, function) in [("pack", c_pack as mlua::ffi::lua_CFunction), ("unpack", c_unpack), ("size", c_size)] {
        state.push_c_closure(function, 0);
        state.set_field(-2, name);
    }
    Ok(1)
}

c_function!(c_open => open);

pub(crate) fn register(lua: &mlua::Lua) -> mlua::Result<()> {
    super::raw::register(lua, "struct", c_open)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{eval, eval_bytes};

    #[test]
    fn pack_writes_integers_in_the_requested_byte_order() {
        assert_eq!(eval_bytes("return struct.pack('>I2', 258)"), b"\x01\x02");
        assert_eq!(eval_bytes("return struct.pack('<i4h', -2, 3)"), b"\xfe\xff\xff\xff\x03\x00");
        assert_eq!(eval_bytes("return struct.pack('<i10', -1)"), b"\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00");
        assert_eq!(eval_bytes("return struct.pack('<I8', 0/0)"), b"\0\0\0\0\0\0\0\x80");
        assert_eq!(eval_bytes("return struct.pack('<I8', 2^64)"), b"\0\0\0\0\0\0\0\0");
        assert_eq!(eval_bytes("return struct.pack('b', 300)"), b",");
    }

    #[test]
    fn pack_aligns_and_pads() {
        assert_eq!(eval_bytes("return struct.pack('!4 b i4 c3 x d', 1, 2, 'abcdef', 3)"), b"\x01\0\0\0\x02\0\0\0abc\0\0\0\0\0\0\0\x08@");
        assert_eq!(eval("return struct.size('>i4 !8 d')"), "16");
    }

    #[test]
    fn unpack_returns_values_and_the_next_position() {
        assert_eq!(eval("return table.concat({struct.unpack('<i2 i2', struct.pack('<i2 i2', -5, 7))}, ' ')"), "-5 7 5");
        assert_eq!(eval("return table.concat({struct.unpack('b c0', struct.pack('b c0', 3, 'xyz'))}, ' ')"), "xyz 5");
        assert_eq!(eval("return table.concat({struct.unpack('<i9', string.rep(string.char(1), 9))}, ' ')"), "-127 10");
        assert_eq!(eval("return table.concat({struct.unpack('<i4', 'xxxxxxxx', 1.9)}, ' ')"), "2021161080 5");
        assert_eq!(eval("return table.concat({struct.unpack('s s', 'ab\\0c\\0')}, ' ')"), "ab c 6");
    }

    #[test]
    fn errors_match_lua_struct() {
        let error = |code: &str| eval(&format!("local ok, e = pcall(function() return {code} end) return e"));
        assert_eq!(error("struct.size('s')"), "user_script:1: bad argument #1 to 'size' (option 's' has no fixed size)");
        assert_eq!(error("struct.size('!3')"), "user_script:1: alignment 3 is not a power of 2");
        assert_eq!(error("struct.size('i33')"), "user_script:1: integral size 33 is larger than limit of 32");
        assert_eq!(error("struct.pack('c2', 'a')"), "user_script:1: bad argument #3 to 'pack' (string too short)");
        assert_eq!(error("struct.unpack('i4', 'xxxx', 0)"), "user_script:1: bad argument #3 to 'unpack' (offset must be 1 or greater)");
        assert_eq!(error("struct.unpack('i4', 'xxxx', -1)"), "user_script:1: bad argument #2 to 'unpack' (data string too short)");
        assert_eq!(error("struct.unpack('c0', 'abc')"), "user_script:1: format 'c0' needs a previous size");
        assert_eq!(error("struct.size('c9999999999999')"), "user_script:1: integral size overflow");
        assert_eq!(error("struct.pack('y')"), "user_script:1: bad argument #1 to 'pack' (invalid format option 'y')");
        assert_eq!(eval("return struct.size('y')"), "0");
    }
}
