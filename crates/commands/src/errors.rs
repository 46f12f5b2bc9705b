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
pub const INCREMENT_NAN_OR_INFINITY: &str = "ERR increment would produce NaN or Infinity";
pub const LCS_WRONG_TYPE: &str = "ERR The specified keys must contain string values";
pub const LCS_IDX_AND_LEN: &str = "ERR If you want both the length and indexes, please just use IDX.";
pub const LCS_STRING_TOO_LONG: &str = "ERR String too long for LCS";
pub const LCS_TABLE_TOO_LARGE: &str = "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len";
pub const LCS_ALLOCATION_FAILED: &str = "ERR Insufficient memory, failed allocating transient memory for LCS";
/// Redis's `getIntFromObjectOrReply` for an integer that does not fit 32 bits.
pub const INT_OUT_OF_RANGE: &str = "ERR value is out of range, value must between -2147483648 and 2147483647";
pub const SAME_OBJECT: &str = "ERR source and destination objects are the same";
pub const EXPIRE_NX_AND_OTHERS: &str = "ERR NX and XX, GT or LT options at the same time are not compatible";
pub const EXPIRE_GT_AND_LT: &str = "ERR GT and LT options at the same time are not compatible";
pub const INVALID_FIRST_DB_INDEX: &str = "ERR invalid first DB index";
pub const INVALID_SECOND_DB_INDEX: &str = "ERR invalid second DB index";
/// IFDEQ's or IFDNE's digest is not 16 characters long (Redis 8.4).
pub const DIGEST_LENGTH: &str = "ERR must be exactly 16 hexadecimal characters";
pub const BUSYKEY: &str = "BUSYKEY Target key name already exists.";
pub const RESTORE_INVALID_TTL: &str = "ERR Invalid TTL value, must be >= 0";
pub const RESTORE_INVALID_IDLETIME: &str = "ERR Invalid IDLETIME value, must be >= 0";
pub const RESTORE_INVALID_FREQ: &str = "ERR Invalid FREQ value, must be >= 0 and <= 255";
pub const LFU_NOT_SELECTED: &str = "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";
pub const LFU_SELECTED: &str = "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";

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
    error(&format!("ERR unknown command '{}', with args beginning with: {}", sanitize(&args[0], 128), quoted))
}

/// `ERR unknown subcommand 'foo'. Try OBJECT HELP.`
pub fn unknown_subcommand(command: &str, sub: &[u8]) -> Frame {
    error(&format!("ERR unknown subcommand '{}'. Try {} HELP.", sanitize(sub, 128), command.to_ascii_uppercase()))
}

/// Redis's `addReplySubcommandSyntaxError`, for a subcommand parsed inside its handler:
/// `ERR unknown subcommand or wrong number of arguments for 'CREATE'. Try XGROUP HELP.`
pub fn subcommand_syntax(args: &[bytes::Bytes]) -> Frame {
    let sub: String = String::from_utf8_lossy(&args[1]).chars().take(128).collect();
    error(&format!("ERR unknown subcommand or wrong number of arguments for '{sub}'. Try {} HELP.", String::from_utf8_lossy(&args[0]).to_ascii_uppercase()))
}

/// `ERR invalid expire time in 'set' command`
pub fn invalid_expire(command: &str) -> Frame {
    error(&format!("ERR invalid expire time in '{}' command", command.to_ascii_lowercase()))
}

/// `ERR Unsupported option foo` (EXPIRE and friends).
pub fn unsupported_option(option: &[u8]) -> Frame {
    error(&format!("ERR Unsupported option {}", sanitize(option, option.len())))
}

/// Redis replaces newlines in echoed arguments with spaces and truncates them.
fn sanitize(bytes: &[u8], len_max: usize) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(len_max)]);
    text.chars().map(|c| if c == '\r' || c == '\n' { ' ' } else { c }).collect()
}
