//! BITFIELD and BITFIELD_RO: signed and unsigned integers of 1 to 64 bits (unsigned up to 63)
//! at any bit offset of a string, read, written and incremented with Redis's overflow rules
//! (Redis's `bitfieldGeneric`).
//!
//! All operations are parsed before any runs; the first bad argument decides the error. A
//! command with at least one SET or INCRBY creates the key and grows it to the highest bit
//! it writes, even when every write then fails with OVERFLOW FAIL, as Redis does.

use bytes::Bytes;
use shoal_resp::Frame;

use super::{bit_at, parse_bit_offset, read_string, string_for_bits};
use crate::args::{self, is};
use crate::ctx::{Ctx, Settings};
use crate::errors;

const TYPE_INVALID: &str = "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";
const OVERFLOW_INVALID: &str = "ERR Invalid OVERFLOW type specified";
const RO_ONLY_GET: &str = "ERR BITFIELD_RO only supports the GET subcommand";

/// What a write does when the result does not fit the field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Get,
    Set(i64),
    IncrBy(i64),
}

/// An integer field: its width and signedness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Field {
    signed: bool,
    bits: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FieldOp {
    kind: Kind,
    field: Field,
    offset: u64,
    overflow: Overflow,
}

/// Parses `i<bits>` (1 to 64) or `u<bits>` (1 to 63), as `getBitfieldTypeFromArgument`; the
/// width is read up to the first NUL byte, as C's `strlen` does.
fn parse_field(arg: &[u8]) -> Result<Field, Frame> {
    let invalid = || errors::error(TYPE_INVALID);
    let signed = match arg.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return Err(invalid()),
    };
    let digits = arg[1..].split(|&b| b == 0).next().unwrap_or_default();
    let bits = shoal_store::value::parse_canonical_i64(digits).ok_or_else(invalid)?;
    let bits_max = if signed { 64 } else { 63 };
    if !(1..=bits_max).contains(&bits) {
        return Err(invalid());
    }
    Ok(Field { signed, bits: bits as u32 })
}

/// The operations of a BITFIELD command, and the highest bit a write reaches (None: reads only).
type Parsed = (Vec<FieldOp>, Option<u64>);

fn parse_ops(args: &[Bytes], settings: &Settings) -> Result<Parsed, Frame> {
    let mut ops = Vec::new();
    let mut highest_write: Option<u64> = None;
    let mut overflow = Overflow::Wrap;
    let mut j = 2;
    while j < args.len() {
        let left = args.len() - j - 1;
        let sub = &args[j];
        let is_get = is(sub, "get") && left >= 2;
        let is_set = is(sub, "set") && left >= 3;
        let is_incrby = is(sub, "incrby") && left >= 3;
        if !is_get && !is_set && !is_incrby {
            if is(sub, "overflow") && left >= 1 {
                let word = &args[j + 1];
                overflow = if is(word, "wrap") {
                    Overflow::Wrap
                } else if is(word, "sat") {
                    Overflow::Sat
                } else if is(word, "fail") {
                    Overflow::Fail
                } else {
                    return Err(errors::error(OVERFLOW_INVALID));
                };
                j += 2;
                continue;
            }
            return Err(errors::syntax());
        }
        let field = parse_field(&args[j + 1])?;
        let offset = parse_bit_offset(&args[j + 2], Some(field.bits), settings)?;
        let kind = if is_get {
            Kind::Get
        } else {
            let last_bit = offset + field.bits as u64 - 1;
            highest_write = Some(highest_write.map_or(last_bit, |h| h.max(last_bit)));
            let value = args::parse_i64(&args[j + 3])?;
            if is_set {
                Kind::Set(value)
            } else {
                Kind::IncrBy(value)
            }
        };
        ops.push(FieldOp { kind, field, offset, overflow });
        j += if is_get { 3 } else { 4 };
    }
    Ok((ops, highest_write))
}

fn get_unsigned(bytes: &[u8], offset: u64, bits: u32) -> u64 {
    (0..bits as u64).fold(0, |value, i| (value << 1) | bit_at(bytes, offset + i) as u64)
}

fn get_signed(bytes: &[u8], offset: u64, bits: u32) -> i64 {
    let value = get_unsigned(bytes, offset, bits);
    if bits < 64 && value & (1u64 << (bits - 1)) != 0 {
        (value | (u64::MAX << bits)) as i64
    } else {
        value as i64
    }
}

/// Writes the low `bits` bits of `value` at `offset`, most significant first. The buffer
/// already reaches the last bit.
fn set_bits(buffer: &mut [u8], offset: u64, bits: u32, value: u64) {
    for i in 0..bits as u64 {
        let on = (value >> (bits as u64 - 1 - i)) & 1 == 1;
        let at = offset + i;
        let byte = &mut buffer[(at >> 3) as usize];
        let mask = 0x80u8 >> (at & 7);
        if on {
            *byte |= mask;
        } else {
            *byte &= !mask;
        }
    }
}

/// Whether `value + increment` overflows an unsigned field of `bits` bits, and the value
/// WRAP or SAT gives then (Redis's `checkUnsignedBitfieldOverflow`).
fn unsigned_overflow(value: u64, increment: i64, bits: u32, overflow: Overflow) -> Option<u64> {
    let max: u64 = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
    let increment_max = max.wrapping_sub(value) as i64;
    let increment_min = (value as i64).wrapping_neg();
    let wrapped = || value.wrapping_add(increment as u64) & !(u64::MAX.checked_shl(bits).unwrap_or(0));
    if value > max || (increment > 0 && increment > increment_max) {
        Some(if overflow == Overflow::Sat { max } else { wrapped() })
    } else if increment < 0 && increment < increment_min {
        Some(if overflow == Overflow::Sat { 0 } else { wrapped() })
    } else {
        None
    }
}

/// Whether `value + increment` overflows a signed field of `bits` bits, and the value WRAP
/// or SAT gives then (Redis's `checkSignedBitfieldOverflow`).
fn signed_overflow(value: i64, increment: i64, bits: u32, overflow: Overflow) -> Option<i64> {
    let max: i64 = if bits == 64 { i64::MAX } else { (1i64 << (bits - 1)) - 1 };
    let min = -max - 1;
    let increment_max = (max as u64).wrapping_sub(value as u64) as i64;
    let increment_min = min.wrapping_sub(value);
    let wrapped = || {
        let mut c = (value as u64).wrapping_add(increment as u64);
        if bits < 64 {
            let mask = u64::MAX << bits;
            if c & (1u64 << (bits - 1)) != 0 {
                c |= mask;
            } else {
                c &= !mask;
            }
        }
        c as i64
    };
    if value > max || (bits != 64 && increment > increment_max) || (value >= 0 && increment > 0 && increment > increment_max) {
        Some(if overflow == Overflow::Sat { max } else { wrapped() })
    } else if value < min || (bits != 64 && increment < increment_min) || (value < 0 && increment < 0 && increment < increment_min) {
        Some(if overflow == Overflow::Sat { min } else { wrapped() })
    } else {
        None
    }
}

/// Runs a SET or INCRBY on `buffer`: the reply (the old value for SET, the new one for
/// INCRBY, null when OVERFLOW FAIL refuses it), and whether it wrote a different value.
fn run_write(buffer: &mut [u8], op: &FieldOp) -> (Frame, bool) {
    let Field { signed, bits } = op.field;
    if signed {
        let old = get_signed(buffer, op.offset, bits);
        let (new, overflowed, reply) = match op.kind {
            Kind::IncrBy(increment) => {
                let limit = signed_overflow(old, increment, bits, op.overflow);
                let new = limit.unwrap_or_else(|| old.wrapping_add(increment));
                (new, limit.is_some(), new)
            }
            Kind::Set(value) => {
                let limit = signed_overflow(value, 0, bits, op.overflow);
                (limit.unwrap_or(value), limit.is_some(), old)
            }
            Kind::Get => unreachable!("a read is not a write"),
        };
        if overflowed && op.overflow == Overflow::Fail {
            return (Frame::Null, false);
        }
        set_bits(buffer, op.offset, bits, new as u64);
        (Frame::Integer(reply), new != old)
    } else {
        let old = get_unsigned(buffer, op.offset, bits);
        let (new, overflowed, reply) = match op.kind {
            Kind::IncrBy(increment) => {
                let limit = unsigned_overflow(old, increment, bits, op.overflow);
                let new = limit.unwrap_or_else(|| old.wrapping_add(increment as u64));
                (new, limit.is_some(), new)
            }
            Kind::Set(value) => {
                let limit = unsigned_overflow(value as u64, 0, bits, op.overflow);
                (limit.unwrap_or(value as u64), limit.is_some(), old)
            }
            Kind::Get => unreachable!("a read is not a write"),
        };
        if overflowed && op.overflow == Overflow::Fail {
            return (Frame::Null, false);
        }
        set_bits(buffer, op.offset, bits, new);
        (Frame::Integer(reply as i64), new != old)
    }
}

fn run_get(bytes: &[u8], op: &FieldOp) -> Frame {
    let Field { signed, bits } = op.field;
    if signed {
        Frame::Integer(get_signed(bytes, op.offset, bits))
    } else {
        Frame::Integer(get_unsigned(bytes, op.offset, bits) as i64)
    }
}

/// Runs parsed operations on the string at `key`: reads only look it up, writes create and
/// grow it first. Returns one reply per operation.
fn op_bitfield(ctx: &mut Ctx, key: &[u8], ops: &[FieldOp], highest_write: Option<u64>) -> Result<Vec<Frame>, Frame> {
    let now = ctx.now_ms;
    let db = ctx.db();
    let Some(highest) = highest_write else {
        let value = read_string(db, key, now)?;
        let replies = match value {
            Some(s) => s.with_bytes(|bytes| ops.iter().map(|op| run_get(bytes, op)).collect()),
            None => ops.iter().map(|op| run_get(&[], op)).collect(),
        };
        return Ok(replies);
    };
    let (buffer, grown) = string_for_bits(db, key, (highest >> 3) as usize + 1, now)?;
    // Redis counts a change per SET or INCRBY that ran (not refused by OVERFLOW FAIL) and
    // either wrote a different value or met a string this command created or grew.
    let mut changes = 0;
    let replies = ops
        .iter()
        .map(|op| {
            if op.kind == Kind::Get {
                return run_get(buffer, op);
            }
            let (reply, changed) = run_write(buffer, op);
            if changed || (grown && reply != Frame::Null) {
                changes += 1;
            }
            reply
        })
        .collect();
    db.add_changes(changes);
    if changes > 0 {
        ctx.notify(crate::ctx::notify::STRING, "setbit", key);
    }
    Ok(replies)
}

/// BITFIELD and BITFIELD_RO (`read_only`): parse everything, then run.
pub(super) fn bitfield_command(ctx: &mut Ctx, args: &[Bytes], read_only: bool) -> Frame {
    let (ops, highest_write) = match parse_ops(args, ctx.settings) {
        Ok(parsed) => parsed,
        Err(e) => return e,
    };
    if read_only && highest_write.is_some() {
        return errors::error(RO_ONLY_GET);
    }
    match op_bitfield(ctx, &args[1], &ops, highest_write) {
        Ok(replies) => Frame::Array(replies),
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_parse_like_redis() {
        assert_eq!(parse_field(b"i64"), Ok(Field { signed: true, bits: 64 }));
        assert_eq!(parse_field(b"u63"), Ok(Field { signed: false, bits: 63 }));
        for bad in [&b"u64"[..], b"i65", b"i0", b"I8", b"8", b"", b"i", b"i08", b"u-1"] {
            assert!(parse_field(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn unsigned_overflow_wraps_saturates_or_fails() {
        assert_eq!(unsigned_overflow(250, 10, 8, Overflow::Wrap), Some(4));
        assert_eq!(unsigned_overflow(250, 10, 8, Overflow::Sat), Some(255));
        assert_eq!(unsigned_overflow(5, -10, 8, Overflow::Sat), Some(0));
        assert_eq!(unsigned_overflow(5, -10, 8, Overflow::Wrap), Some(251));
        assert_eq!(unsigned_overflow(5, 10, 8, Overflow::Fail), None);
        assert_eq!(unsigned_overflow(u64::MAX, 0, 63, Overflow::Sat), Some(i64::MAX as u64));
    }

    #[test]
    fn signed_overflow_wraps_saturates_or_fails() {
        assert_eq!(signed_overflow(120, 10, 8, Overflow::Wrap), Some(-126));
        assert_eq!(signed_overflow(120, 10, 8, Overflow::Sat), Some(127));
        assert_eq!(signed_overflow(-120, -10, 8, Overflow::Sat), Some(-128));
        assert_eq!(signed_overflow(-120, -10, 8, Overflow::Wrap), Some(126));
        assert_eq!(signed_overflow(i64::MAX, 1, 64, Overflow::Wrap), Some(i64::MIN));
        assert_eq!(signed_overflow(i64::MIN, -1, 64, Overflow::Sat), Some(i64::MIN));
        assert_eq!(signed_overflow(1, 1, 64, Overflow::Fail), None);
    }

    #[test]
    fn fields_read_back_what_was_written() {
        let mut buffer = vec![0u8; 16];
        set_bits(&mut buffer, 5, 13, 0x1abc);
        assert_eq!(get_unsigned(&buffer, 5, 13), 0x1abc);
        set_bits(&mut buffer, 64, 64, (-2i64) as u64);
        assert_eq!(get_signed(&buffer, 64, 64), -2);
        set_bits(&mut buffer, 1, 3, 0b101);
        assert_eq!(get_signed(&buffer, 1, 3), -3);
    }
}
