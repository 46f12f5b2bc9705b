//! DUMP payloads: `type byte, value, RDB version (2 bytes LE), CRC-64 of all of that (8 bytes
//! LE)`, as DUMP and RESTORE exchange them.
//!
//! [`dump`] writes version 10 (Redis 7.0). [`restore`] accepts versions up to 12 (as a Redis
//! accepts versions up to its own) and checks the checksum before decoding; its errors carry
//! Redis's exact reply texts.

use shoal_store::types::Limits;
use shoal_store::Value;

use crate::crc64;
use crate::input::Input;
use crate::value::{read_value, types, value_type, write_value, Loaded};
use crate::{RDB_VERSION_MAX, RDB_VERSION_WRITTEN};

/// Why RESTORE refuses a payload; `Display` gives Redis's error reply text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// Too short, a newer RDB version, or a checksum mismatch.
    #[error("ERR DUMP payload version or checksum are wrong")]
    VersionOrChecksum,
    /// The value does not decode (or decodes to an empty value).
    #[error("ERR Bad data format")]
    BadDataFormat,
}

/// Serializes `value` as DUMP does, LZF-compressing long strings and blobs when `compress`.
pub fn dump(value: &Value, compress: bool) -> Vec<u8> {
    let mut out = vec![value_type(value)];
    write_value(&mut out, value, compress);
    out.extend_from_slice(&RDB_VERSION_WRITTEN.to_le_bytes());
    let crc = crc64::crc64(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Checks a payload's footer (Redis's `verifyDumpPayload`) and returns the body.
fn verify(payload: &[u8]) -> Result<&[u8], RestoreError> {
    if payload.len() < 10 {
        return Err(RestoreError::VersionOrChecksum);
    }
    let (body, footer) = payload.split_at(payload.len() - 10);
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    if version > RDB_VERSION_MAX {
        return Err(RestoreError::VersionOrChecksum);
    }
    let crc = u64::from_le_bytes(footer[2..10].try_into().expect("8 bytes"));
    if crc64::crc64(&payload[..payload.len() - 8]) != crc {
        return Err(RestoreError::VersionOrChecksum);
    }
    Ok(body)
}

/// Decodes a DUMP payload into a value with `limits` deciding its encoding. Hash field TTLs
/// (RDB 12 payloads) are judged against `now_ms`; see [`Loaded`].
pub fn restore_loaded(payload: &[u8], limits: &Limits, now_ms: i64) -> Result<Loaded, RestoreError> {
    let body = verify(payload)?;
    let mut input = Input::new(body);
    let type_byte = input.read_u8("the type").map_err(|_| RestoreError::BadDataFormat)?;
    if !types::is_value_type(type_byte) {
        return Err(RestoreError::BadDataFormat);
    }
    let loaded = read_value(&mut input, type_byte, limits, now_ms).map_err(|_| RestoreError::BadDataFormat)?;
    if loaded.value.is_none() {
        return Err(RestoreError::BadDataFormat);
    }
    Ok(loaded)
}

/// Decodes a DUMP payload (see [`restore_loaded`]; field TTLs are judged against time 0, so
/// none counts as expired).
pub fn restore(payload: &[u8], limits: &Limits) -> Result<Value, RestoreError> {
    restore_loaded(payload, limits, 0).map(|l| l.value.expect("checked non-empty"))
}
