//! FUNCTION DUMP's payload in Redis's format: for each library the RDB opcode for a function
//! library (245) and its code as an RDB string, then the RDB version as two little-endian
//! bytes and the CRC64 (Jones polynomial, reflected) of everything before it, little-endian.
//!
//! Reading accepts what Redis writes: plain, integer-encoded and LZF-compressed strings.
//! Writing never compresses (Redis reads uncompressed strings as well).

/// The RDB opcode that introduces a function library's code.
pub(crate) const OPCODE_FUNCTION: u8 = 245;
/// The RDB version of Redis 7.0.
pub(crate) const RDB_VERSION: u16 = 10;

/// Redis's CRC64: the Jones polynomial, reflected input and output, initial value 0.
pub(crate) fn crc64(bytes: &[u8]) -> u64 {
    const POLY_REFLECTED: u64 = 0x95ac_9329_ac4b_c9b5;
    let mut crc = 0u64;
    for &byte in bytes {
        crc ^= u64::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ POLY_REFLECTED } else { crc >> 1 };
        }
    }
    crc
}

/// The payload for `codes`, one library's code each.
pub(crate) fn encode<'a>(codes: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for code in codes {
        out.push(OPCODE_FUNCTION);
        write_length(&mut out, code.len() as u64);
        out.extend_from_slice(code);
    }
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn write_length(out: &mut Vec<u8>, len: u64) {
    if len < 64 {
        out.push(len as u8);
    } else if len < 16384 {
        out.push(0x40 | (len >> 8) as u8);
        out.push(len as u8);
    } else if len <= u64::from(u32::MAX) {
        out.push(0x80);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

/// Why a payload was refused.
#[derive(Debug, PartialEq)]
pub(crate) enum DecodeError {
    /// Too short, a newer RDB version, or a checksum mismatch.
    VersionOrChecksum,
    /// Something other than a function library inside.
    NotAFunction,
    /// A truncated or malformed string.
    Malformed,
}

/// The libraries' codes in `payload`.
pub(crate) fn decode(payload: &[u8]) -> Result<Vec<Vec<u8>>, DecodeError> {
    if payload.len() < 10 {
        return Err(DecodeError::VersionOrChecksum);
    }
    let (body, footer) = payload.split_at(payload.len() - 10);
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    let crc = u64::from_le_bytes(footer[2..10].try_into().map_err(|_| DecodeError::VersionOrChecksum)?);
    if version > RDB_VERSION || crc64(&payload[..payload.len() - 8]) != crc {
        return Err(DecodeError::VersionOrChecksum);
    }
    let mut reader = Reader { bytes: body, at: 0 };
    let mut codes = Vec::new();
    while reader.at < body.len() {
        if reader.byte()? != OPCODE_FUNCTION {
            return Err(DecodeError::NotAFunction);
        }
        codes.push(reader.string()?);
    }
    Ok(codes)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

/// A length, or one of the special string encodings.
enum Length {
    Plain(u64),
    Encoded(u8),
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, DecodeError> {
        let byte = *self.bytes.get(self.at).ok_or(DecodeError::Malformed)?;
        self.at += 1;
        Ok(byte)
    }

    fn take(&mut self, len: u64) -> Result<&[u8], DecodeError> {
        let len = usize::try_from(len).map_err(|_| DecodeError::Malformed)?;
        let end = self.at.checked_add(len).filter(|&end| end <= self.bytes.len()).ok_or(DecodeError::Malformed)?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn length(&mut self) -> Result<Length, DecodeError> {
        let first = self.byte()?;
        Ok(match first >> 6 {
            0 => Length::Plain(u64::from(first & 0x3f)),
            1 => Length::Plain((u64::from(first & 0x3f) << 8) | u64::from(self.byte()?)),
            2 => match first {
                0x80 => Length::Plain(u64::from(u32::from_be_bytes(self.take(4)?.try_into().map_err(|_| DecodeError::Malformed)?))),
                0x81 => Length::Plain(u64::from_be_bytes(self.take(8)?.try_into().map_err(|_| DecodeError::Malformed)?)),
                _ => return Err(DecodeError::Malformed),
            },
            _ => Length::Encoded(first & 0x3f),
        })
    }

    fn plain_length(&mut self) -> Result<u64, DecodeError> {
        match self.length()? {
            Length::Plain(len) => Ok(len),
            Length::Encoded(_) => Err(DecodeError::Malformed),
        }
    }

    fn string(&mut self) -> Result<Vec<u8>, DecodeError> {
        match self.length()? {
            Length::Plain(len) => Ok(self.take(len)?.to_vec()),
            Length::Encoded(0) => Ok((self.byte()? as i8).to_string().into_bytes()),
            Length::Encoded(1) => {
                let bytes = self.take(2)?;
                Ok(i16::from_le_bytes([bytes[0], bytes[1]]).to_string().into_bytes())
            }
            Length::Encoded(2) => {
                let bytes = self.take(4)?;
                Ok(i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]).to_string().into_bytes())
            }
            Length::Encoded(3) => {
                let compressed_len = self.plain_length()?;
                let len = self.plain_length()?;
                let compressed = self.take(compressed_len)?;
                lzf_decompress(compressed, usize::try_from(len).map_err(|_| DecodeError::Malformed)?)
            }
            Length::Encoded(_) => Err(DecodeError::Malformed),
        }
    }
}

/// LZF decompression into exactly `len` bytes.
fn lzf_decompress(input: &[u8], len: usize) -> Result<Vec<u8>, DecodeError> {
    // The length comes from the payload; cap what is reserved up front.
    let mut out = Vec::with_capacity(len.min(1 << 20));
    let mut at = 0;
    while at < input.len() {
        let control = usize::from(input[at]);
        at += 1;
        if control < 32 {
            let run = control + 1;
            let literal = input.get(at..at + run).ok_or(DecodeError::Malformed)?;
            out.extend_from_slice(literal);
            at += run;
        } else {
            let mut run = control >> 5;
            if run == 7 {
                run += usize::from(*input.get(at).ok_or(DecodeError::Malformed)?);
                at += 1;
            }
            let low = usize::from(*input.get(at).ok_or(DecodeError::Malformed)?);
            at += 1;
            let back = ((control & 0x1f) << 8) + low + 1;
            let start = out.len().checked_sub(back).ok_or(DecodeError::Malformed)?;
            for i in 0..run + 2 {
                let byte = out[start + i];
                out.push(byte);
            }
        }
        if out.len() > len {
            return Err(DecodeError::Malformed);
        }
    }
    if out.len() != len {
        return Err(DecodeError::Malformed);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64_matches_redis_check_value() {
        // Redis's crc64 self-test: crc64(0, "123456789") == 0xe9c6d914c4b8d9ca.
        assert_eq!(crc64(b"123456789"), 0xe9c6_d914_c4b8_d9ca);
    }

    #[test]
    fn payload_round_trips() {
        let long = vec![b'x'; 20000];
        let codes: Vec<&[u8]> = vec![b"#!lua name=a\n", &long, b""];
        let payload = encode(codes.iter().copied());
        assert_eq!(decode(&payload).unwrap(), codes.iter().map(|c| c.to_vec()).collect::<Vec<_>>());
    }

    #[test]
    fn corrupt_payload_is_refused() {
        let mut payload = encode([b"#!lua name=a\n".as_slice()].into_iter());
        let last = payload.len() - 1;
        payload[last] ^= 1;
        assert_eq!(decode(&payload), Err(DecodeError::VersionOrChecksum));
        assert_eq!(decode(b"\xf5\x00\x0a\x00"), Err(DecodeError::VersionOrChecksum));
    }

    #[test]
    fn redis_dump_with_lzf_decodes() {
        // FUNCTION DUMP from redis-server 7.0.15 of
        // "#!lua name=lib1\nredis.register_function{function_name='f1', callback=function() return 1 end, flags={'no-writes'}}",
        // which rdbcompression stored LZF-compressed.
        let payload = b"\xf5\xc3@i@r\x1f#!lua name=lib1\nredis.register_f\x07unction{\xc0\x08\x00_`*\x0e'f1', callback=\xc0\x1c\x1f() return 1 end, flags={'no-writ\x04es'}}\n\x00\x14\x1d\x92\xb1\\\xe9\x81\x94";
        let codes = decode(payload).unwrap();
        assert_eq!(codes.len(), 1);
        assert_eq!(
            String::from_utf8(codes[0].clone()).unwrap(),
            "#!lua name=lib1\nredis.register_function{function_name='f1', callback=function() return 1 end, flags={'no-writes'}}"
        );
    }
}
