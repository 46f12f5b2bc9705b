//! Canonical error replies, with Redis's exact wording.
//!
//! Every command error a client can see is built here, so the text lives in one place and
//! INFO errorstats can count by prefix.

use shoal_resp::Frame;

pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
pub const SYNTAX: &str = "ERR syntax error";
pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
pub const NOT_FLOAT: &str = "ERR value is not a valid float";
pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
pub const NO_SUCH_KEY: &str = "ERR no such key";
pub const DB_INDEX_OUT_OF_RANGE: &str = "ERR DB index is out of range";
pub const STRING_TOO_LONG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
pub const OFFSET_OUT_OF_RANGE: &str = "ERR offset is out of range";
pub const INVALID_CURSOR: &str = "ERR invalid cursor";

pub fn error(text: &str) -> Frame {
    debug_assert!(text.split(' ').next().is_some_and(|p| p.chars().all(|c| c.is_ascii_uppercase())), "error `{text}` starts with an upper-case prefix");
    Frame::Error(bytes::Bytes::copy_from_slice(text.as_bytes()))
}

pub fn wrong_type() -> Frame {
    error(WRONGTYPE)
}

pub fn syntax() -> Frame {
    error(SYNTAX)
}

pub fn not_integer() -> Frame {
    error(NOT_INTEGER)
}

/// `ERR wrong number of arguments for 'get' command`
pub fn wrong_arity(name: &str) -> Frame {
    error(&format!("ERR wrong number of arguments for '{}' command", name.to_ascii_lowercase()))
}

/// `ERR unknown command 'foo', with args beginning with: 'a' 'b' `
pub fn unknown_command(args: &[bytes::Bytes]) -> Frame {
    // As Redis's processCommand: the quoted arguments are added while that list is under
    // 128 bytes, each cut to what is left of the 128.
    let mut quoted = String::new();
    for arg in &args[1..] {
        if quoted.len() >= 128 {
            break;
        }
        quoted.push_str(&format!("'{}' ", sanitize(arg, 128 - quoted.len())));
    }
    error(&format!(
        "ERR unknown command '{}', with args beginning with: {}",
        sanitize(&args[0], 128),
        quoted
    ))
}

/// `ERR unknown subcommand 'foo'. Try OBJECT HELP.`
pub fn unknown_subcommand(command: &str, sub: &[u8]) -> Frame {
    error(&format!("ERR unknown subcommand '{}'. Try {} HELP.", sanitize(sub, 128), command.to_ascii_uppercase()))
}

/// `ERR invalid expire time in 'set' command`
pub fn invalid_expire(command: &str) -> Frame {
    error(&format!("ERR invalid expire time in '{}' command", command.to_ascii_lowercase()))
}

/// Redis replaces newlines in echoed arguments with spaces and truncates them.
fn sanitize(bytes: &[u8], len_max: usize) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(len_max)]);
    text.chars().map(|c| if c == '\r' || c == '\n' { ' ' } else { c }).collect()
}
