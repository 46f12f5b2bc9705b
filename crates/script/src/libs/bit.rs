//! `bit`: LuaBitOp 1.0.2's bitwise operations on 32-bit integers.
//!
//! Lua 5.1 numbers are doubles. Each argument is normalised as LuaBitOp does: adding 2^52 + 2^51 leaves the value,
//! rounded to an integer (ties to even), in the low 32 bits of the double's bit pattern, so any number wraps modulo
//! 2^32 and infinities and NaN become 0. Results are signed 32-bit integers.

use std::ffi::c_int;

use super::raw::{c_function, LuaResult, State};

/// LuaBitOp's normalisation of an argument to 32 bits; a non-number raises "number expected".
fn bit_arg(state: &State, index: c_int) -> LuaResult<u32> {
    let bits = normalise(state.to_number(index));
    // LuaBitOp only looks at the type when the result is 0, which is also what every non-number gives.
    if bits == 0 && !state.is_number(index) {
        return Err(state.type_error(index, "number"));
    }
    Ok(bits)
}

fn normalise(number: f64) -> u32 {
    (number + 6755399441055744.0).to_bits() as u32
}

fn push_bits(state: &State, bits: u32) -> LuaResult<c_int> {
    state.push_number(f64::from(bits as i32));
    Ok(1)
}

fn tobit(state: &State) -> LuaResult<c_int> {
    let bits = bit_arg(state, 1)?;
    push_bits(state, bits)
}

fn bnot(state: &State) -> LuaResult<c_int> {
    let bits = bit_arg(state, 1)?;
    push_bits(state, !bits)
}

fn fold(state: &State, operation: fn(u32, u32) -> u32) -> LuaResult<c_int> {
    let mut bits = bit_arg(state, 1)?;
    for index in 2..=state.top() {
        bits = operation(bits, bit_arg(state, index)?);
    }
    push_bits(state, bits)
}

fn band(state: &State) -> LuaResult<c_int> {
    fold(state, |a, b| a & b)
}

fn bor(state: &State) -> LuaResult<c_int> {
    fold(state, |a, b| a | b)
}

fn bxor(state: &State) -> LuaResult<c_int> {
    fold(state, |a, b| a ^ b)
}

fn shift(state: &State, operation: fn(u32, u32) -> u32) -> LuaResult<c_int> {
    let bits = bit_arg(state, 1)?;
    let count = bit_arg(state, 2)? & 31;
    push_bits(state, operation(bits, count))
}

fn lshift(state: &State) -> LuaResult<c_int> {
    shift(state, |bits, count| bits << count)
}

fn rshift(state: &State) -> LuaResult<c_int> {
    shift(state, |bits, count| bits >> count)
}

fn arshift(state: &State) -> LuaResult<c_int> {
    shift(state, |bits, count| ((bits as i32) >> count) as u32)
}

fn rol(state: &State) -> LuaResult<c_int> {
    shift(state, u32::rotate_left)
}

fn ror(state: &State) -> LuaResult<c_int> {
    shift(state, u32::rotate_right)
}

fn bswap(state: &State) -> LuaResult<c_int> {
    let bits = bit_arg(state, 1)?;
    push_bits(state, bits.swap_bytes())
}

/// bit.tohex(x [, n]): `n` hex digits (8 by default, at most 8), upper case when `n` is negative.
fn tohex(state: &State) -> LuaResult<c_int> {
    let mut bits = bit_arg(state, 1)?;
    let width = if state.is_none(2) { 8 } else { bit_arg(state, 2)? as i32 };
    let digits: &[u8; 16] = if width < 0 { b"0123456789ABCDEF" } else { b"0123456789abcdef" };
    // -2^31 has no positive counterpart; LuaBitOp as compiled for Redis prints 8 digits for it.
    let width = width.checked_abs().unwrap_or(8).min(8) as usize;
    let mut buffer = [0u8; 8];
    for slot in buffer[..width].iter_mut().rev() {
        *slot = digits[(bits & 15) as usize];
        bits >>= 4;
    }
    state.push_bytes(&buffer[..width]);
    Ok(1)
}

c_function!(c_tobit => tobit);
c_function!(c_bnot => bnot);
c_function!(c_band => band);
c_function!(c_bor => bor);
c_function!(c_bxor => bxor);
c_function!(c_lshift => lshift);
c_function!(c_rshift => rshift);
c_function!(c_arshift => arshift);
c_function!(c_rol => rol);
c_function!(c_ror => ror);
c_function!(c_bswap => bswap);
c_function!(c_tohex => tohex);

fn open(state: &State) -> LuaResult<c_int> {
    let functions: [(&str, mlua::ffi::lua_CFunction); 12] = [
        ("tobit", c_tobit),
        ("bnot", c_bnot),
        ("band", c_band),
        ("bor", c_bor),
        ("bxor", c_bxor),
        ("lshift", c_lshift),
        ("rshift", c_rshift),
        ("arshift", c_arshift),
        ("rol", c_rol),
        ("ror", c_ror),
        ("bswap", c_bswap),
        ("tohex", c_tohex),
    ];
    state.new_table(0, functions.len() as c_int);
    for (name, function) in functions {
        state.push_c_closure(function, 0);
        state.set_field(-2, name);
    }
    Ok(1)
}

c_function!(c_open => open);

pub(crate) fn register(lua: &mlua::Lua) -> mlua::Result<()> {
    super::raw::register(lua, "bit", c_open)
}

#[cfg(test)]
mod tests {
    use super::super::tests::eval;

    #[test]
    fn tobit_wraps_modulo_2_32_and_rounds_ties_to_even() {
        assert_eq!(eval("return bit.tobit(0xffffffff)"), "-1");
        assert_eq!(eval("return bit.tobit(2^32 + 5)"), "5");
        assert_eq!(eval("return bit.tobit(1.5) .. ' ' .. bit.tobit(2.5) .. ' ' .. bit.tobit(-2.5)"), "2 2 -2");
        assert_eq!(eval("return bit.tobit(1/0) .. ' ' .. bit.tobit(0/0) .. ' ' .. bit.tobit('12')"), "0 0 12");
    }

    #[test]
    fn tohex_honours_width_and_case() {
        assert_eq!(eval("return bit.tohex(-1)"), "ffffffff");
        assert_eq!(eval("return bit.tohex(255, -2)"), "FF");
        assert_eq!(eval("return bit.tohex(0x1234, 100)"), "00001234");
        assert_eq!(eval("return '[' .. bit.tohex(1, 0) .. ']'"), "[]");
        assert_eq!(eval("return bit.tohex(0xabc, -2^31)"), "00000ABC");
    }

    #[test]
    fn shifts_use_the_low_five_bits_of_the_count() {
        assert_eq!(eval("return bit.lshift(1, 33)"), "2");
        assert_eq!(eval("return bit.rshift(-1, 1)"), "2147483647");
        assert_eq!(eval("return bit.arshift(-256, 4)"), "-16");
        assert_eq!(eval("return bit.rol(0x12345678, 4) .. ' ' .. bit.ror(0x12345678, -4)"), "591751041 591751041");
        assert_eq!(eval("return bit.bswap(0x12345678)"), "2018915346");
        assert_eq!(eval("return bit.bxor(1, 2, 4, 8) .. ' ' .. bit.band(-1, 0xff, 0x0f) .. ' ' .. bit.bnot(0)"), "15 15 -1");
    }

    #[test]
    fn bad_arguments_raise_lua_argument_errors() {
        assert_eq!(eval("local ok, e = pcall(bit.tohex) return tostring(ok) .. e"), "falsebad argument #1 to '?' (number expected, got no value)");
        assert_eq!(
            eval("local ok, e = pcall(function() return bit.band(1, 'x') end) return e"),
            "user_script:1: bad argument #2 to 'band' (number expected, got string)"
        );
        assert_eq!(
            eval("local f = bit.tobit local ok, e = pcall(function() return f({}) end) return e"),
            "user_script:1: bad argument #1 to 'f' (number expected, got table)"
        );
    }
}
