//! The request decoder: bytes from a client to argument vectors.
//!
//! It follows Redis 7.0's `processInputBuffer`, `processMultibulkBuffer` and
//! `processInlineBuffer` (networking.c), so that the same bytes give the same requests and the
//! same protocol errors. A request starting with `*` is multibulk; anything else is inline.
//!
//! Redis behaviours kept on purpose, each checked against `redis-server` 7.0.15:
//! - A header line (`*<n>` or `$<len>`) ends at the first `\r`, and only *some* byte has to
//!   follow it: Redis skips two bytes without looking at the second. `*1\rX$4\r\nPING\r\n` is
//!   `PING`.
//! - Bulk data is followed by two bytes that are skipped unread: `$4\r\nPINGXY` is `PING`.
//! - Lines are searched with C's `strchr`, which stops at a NUL byte. A NUL before the line's
//!   terminator hides the terminator, so the request never completes; once more than
//!   [`DecodeLimits::inline_len_max`] bytes are waiting, the "too big" error follows.
//! - Numbers are parsed with Redis's `string2ll`: no sign `+`, no leading zero, no `-0`, at
//!   most 20 characters.
//! - `*0` and any negative count (down to `i64::MIN`) are an empty request, skipped silently;
//!   so is a blank inline line.
//! - The "too big" errors look at everything still unparsed in the buffer, not at the line
//!   length: a 100 KiB inline line that arrives in one piece is accepted, as Redis accepts
//!   one that fits in its reads. Memory stays bounded by the caller's read size plus
//!   `inline_len_max`.
//! - In `expected '$', got 'X'`, a CR or LF byte is shown as a space, since Redis's
//!   `addReplyErrorFormat` maps them so.
//!
//! Redis's `unauthenticated multibulk length` / `unauthenticated bulk length` errors are not
//! produced here: the decoder does not know whether the client has authenticated.
//!
//! The decoder keeps state between calls: the progress through a multibulk request whose
//! header and first arguments were already taken from the buffer (Redis keeps the same in
//! `c->multibulklen`, `c->bulklen` and `c->argv`). So the cost of a request arriving in many
//! pieces stays linear in its size. Feed it one connection's bytes, in order.

use bytes::{Buf, Bytes, BytesMut};

use crate::inline::{split_tokens, Token};
use crate::{DecodeLimits, ProtocolError};

/// Redis preallocates at most this many argument slots for a multibulk count, so that a
/// client announcing `*2147483647` does not get two billion slots before sending anything.
const ARGS_PREALLOCATION_MAX: usize = 1024;

/// Arguments up to this long are copied out of the buffer into their own allocation;
/// longer ones are slices of the buffer's. A slice costs two atomic reference-count updates
/// (one to take it, one to drop it) on a header every argument of the buffer shares, plus
/// the `BytesMut` bookkeeping; a short copy with mimalloc costs less (measured: 67-73 ns
/// against 112-115 ns per three-argument request). Long arguments stay slices, so a big
/// value is never copied twice before it is stored.
const ARG_COPY_LEN_MAX: usize = 256;

/// Requests with at most this many arguments may take the fast path
/// (`RequestDecoder::whole_short_request`).
const SHORT_REQUEST_ARGS_MAX: usize = 16;

/// Decodes requests (multibulk arrays of bulk strings, or inline lines) from a buffer.
///
/// Construct it with [`RequestDecoder::new`] or `Default`. After an `Err` the connection is
/// to be closed. The call may have consumed skipped empty requests or a multibulk header
/// before it failed, but the failing line is left in the buffer, and calling again returns
/// the same error.
#[derive(Debug, Default)]
pub struct RequestDecoder {
    pub limits: DecodeLimits,
    /// The multibulk request in progress, if its header has been consumed.
    partial: Option<PartialRequest>,
    /// How many bytes at the front of the buffer are known to hold no terminator for the line
    /// being searched, so a line arriving a byte at a time is not searched from its start
    /// again each time. Reset whenever bytes are consumed.
    scanned_len: usize,
}

#[derive(Debug)]
struct PartialRequest {
    /// Arguments still to come; more than zero while the request is partial.
    args_remaining: usize,
    args: Vec<Bytes>,
    /// The length of the next argument, once its `$<len>` line has been consumed.
    bulk_len: Option<usize>,
    /// Bytes held in `args`, for the caller's query-buffer accounting.
    args_len_sum: usize,
}

/// Where a line's terminator is, searched as Redis's `strchr` does.
enum LineEnd {
    /// The terminator's index in the buffer.
    Found(usize),
    /// No terminator before the end of the buffer or before a NUL byte.
    Missing,
}

enum Step {
    /// More bytes are needed; nothing more can be done now.
    Incomplete,
    /// An empty request was consumed (`*0`, `*-1`, a blank inline line): look again.
    Skipped,
    Request(Vec<Bytes>),
    /// A multibulk header was consumed; its arguments follow.
    Started,
}

impl RequestDecoder {
    pub fn new(limits: DecodeLimits) -> Self {
        RequestDecoder { limits, partial: None, scanned_len: 0 }
    }

    /// Ok(Some(args)) consumes one request from the front of `buf`; Ok(None) means more bytes are needed.
    ///
    /// `Ok(Some(args))` always has at least one argument: empty requests are skipped, as
    /// Redis skips them. `Ok(None)` may have consumed the header and the first arguments of
    /// a multibulk request; the decoder remembers them. Multibulk arguments longer than
    /// `ARG_COPY_LEN_MAX` are slices of `buf`'s allocation, not copies.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        loop {
            let step = if let Some(partial) = self.partial.take() {
                self.multibulk_args(partial, buf)?
            } else if buf.is_empty() {
                Step::Incomplete
            } else if buf[0] == b'*' {
                if let Some(args) = self.whole_short_request(buf) {
                    return Ok(Some(args));
                }
                self.multibulk_header(buf)?
            } else {
                self.inline(buf)?
            };
            match step {
                Step::Incomplete => return Ok(None),
                Step::Request(args) => {
                    debug_assert!(!args.is_empty(), "a decoded request has at least one argument");
                    return Ok(Some(args));
                }
                Step::Skipped | Step::Started => {}
            }
        }
    }

    /// Bytes of a partial multibulk request that were taken from the buffer and are held
    /// here: the arguments received so far. Redis counts them with the query buffer against
    /// `client-query-buffer-limit`; so should the caller.
    pub fn partial_request_len(&self) -> usize {
        self.partial.as_ref().map_or(0, |partial| partial.args_len_sum)
    }

    /// Whether a multibulk request has been started and not finished. (A partial inline
    /// request is never consumed, so it shows as a non-empty buffer instead.)
    pub fn has_partial_request(&self) -> bool {
        self.partial.is_some()
    }

    /// Finds the first `terminator` in `buf`, or reports it missing if a NUL or the end of
    /// the buffer comes first, resuming where the last search of this line stopped.
    fn find_line_end(&mut self, buf: &[u8], terminator: u8) -> LineEnd {
        let from = self.scanned_len.min(buf.len());
        match memchr::memchr2(terminator, 0, &buf[from..]) {
            Some(offset) if buf[from + offset] == terminator => LineEnd::Found(from + offset),
            Some(offset) => {
                // Stay on the NUL, so every later search stops at it again at once.
                self.scanned_len = from + offset;
                LineEnd::Missing
            }
            None => {
                self.scanned_len = buf.len();
                LineEnd::Missing
            }
        }
    }

    fn consume(&mut self, buf: &mut BytesMut, len: usize) {
        buf.advance(len);
        self.scanned_len = 0;
    }

    fn inline(&mut self, buf: &mut BytesMut) -> Result<Step, ProtocolError> {
        let newline = match self.find_line_end(buf, b'\n') {
            LineEnd::Found(index) => index,
            LineEnd::Missing => {
                if buf.len() > self.limits.inline_len_max {
                    return Err(error("Protocol error: too big inline request"));
                }
                return Ok(Step::Incomplete);
            }
        };
        let line_len = if newline > 0 && buf[newline - 1] == b'\r' { newline - 1 } else { newline };
        // Split before consuming: on unbalanced quotes Redis consumes nothing.
        let tokens = split_tokens(&buf[..line_len]).ok_or_else(|| error("Protocol error: unbalanced quotes in request"))?;
        let line = buf.split_to(newline + 1).freeze();
        self.scanned_len = 0;
        if tokens.is_empty() {
            return Ok(Step::Skipped);
        }
        let args = tokens
            .into_iter()
            .map(|token| match token {
                Token::Raw(range) => line.slice(range),
                Token::Owned(bytes) => Bytes::from(bytes),
            })
            .collect();
        Ok(Step::Request(args))
    }

    /// The fast path, for the common case of a pipeline: a whole multibulk request of at
    /// most `SHORT_REQUEST_ARGS_MAX` arguments of at most `ARG_COPY_LEN_MAX` bytes each, all
    /// in `buf`, taken in one pass and one `advance`. Anything else (a partial request, a
    /// malformed one, an empty one, long arguments, a limit passed) returns `None` having
    /// consumed nothing, and the general path takes it, with its errors.
    fn whole_short_request(&mut self, buf: &mut BytesMut) -> Option<Vec<Bytes>> {
        let bytes = &buf[..];
        let (count, mut at) = short_header(bytes, 0)?;
        let count = usize::try_from(count).ok().filter(|&count| (1..=SHORT_REQUEST_ARGS_MAX).contains(&count) && count <= self.limits.multibulk_len_max)?;
        // Copied as they are found: a request that turns out to be partial (the last of a
        // read, now and then) wastes its copies, which is cheaper than a second pass.
        let mut args = Vec::with_capacity(count);
        for index in 0..count {
            if bytes.get(at) != Some(&b'$') {
                return None;
            }
            let (len, data) = short_header(bytes, at)?;
            let len = usize::try_from(len).ok().filter(|&len| len <= ARG_COPY_LEN_MAX && len <= self.limits.bulk_len_max)?;
            // The data and two more bytes, which Redis skips without checking they are CRLF.
            at = data.checked_add(len + 2).filter(|&end| end <= bytes.len())?;
            args.push(copy_arg(index, &bytes[data..data + len]));
        }
        self.consume(buf, at);
        Some(args)
    }

    fn multibulk_header(&mut self, buf: &mut BytesMut) -> Result<Step, ProtocolError> {
        debug_assert_eq!(buf.first(), Some(&b'*'), "a multibulk request starts with '*'");
        let cr = match self.find_line_end(buf, b'\r') {
            LineEnd::Found(index) => index,
            LineEnd::Missing => {
                if buf.len() > self.limits.inline_len_max {
                    return Err(error("Protocol error: too big mbulk count string"));
                }
                return Ok(Step::Incomplete);
            }
        };
        // Redis wants one more byte after the CR and skips it without checking it is LF.
        if cr + 1 >= buf.len() {
            return Ok(Step::Incomplete);
        }
        let count = match parse_redis_i64(&buf[1..cr]) {
            Some(count) if count <= clamp_to_i64(self.limits.multibulk_len_max) => count,
            _ => return Err(error("Protocol error: invalid multibulk length")),
        };
        self.consume(buf, cr + 2);
        let Ok(args_remaining) = usize::try_from(count) else {
            return Ok(Step::Skipped);
        };
        if args_remaining == 0 {
            return Ok(Step::Skipped);
        }
        self.partial =
            Some(PartialRequest { args_remaining, args: Vec::with_capacity(args_remaining.min(ARGS_PREALLOCATION_MAX)), bulk_len: None, args_len_sum: 0 });
        Ok(Step::Started)
    }

    /// Continues `partial`; it goes back into `self.partial` unless it completes.
    fn multibulk_args(&mut self, mut partial: PartialRequest, buf: &mut BytesMut) -> Result<Step, ProtocolError> {
        debug_assert!(partial.args_remaining > 0, "a partial request has arguments to come");
        match self.read_args(&mut partial, buf) {
            Ok(true) => Ok(Step::Request(partial.args)),
            Ok(false) => {
                self.partial = Some(partial);
                Ok(Step::Incomplete)
            }
            Err(error) => {
                self.partial = Some(partial);
                Err(error)
            }
        }
    }

    /// Reads arguments until the request is complete (`true`) or more bytes are needed.
    fn read_args(&mut self, partial: &mut PartialRequest, buf: &mut BytesMut) -> Result<bool, ProtocolError> {
        while partial.args_remaining > 0 {
            let bulk_len = match partial.bulk_len {
                Some(len) => len,
                None => match self.bulk_len_line(buf)? {
                    Some(len) => {
                        partial.bulk_len = Some(len);
                        len
                    }
                    None => return Ok(false),
                },
            };
            // The data and two more bytes, which Redis skips without checking they are CRLF.
            if buf.len() < bulk_len.saturating_add(2) {
                return Ok(false);
            }
            let arg = if bulk_len <= ARG_COPY_LEN_MAX {
                let arg = copy_arg(partial.args.len(), &buf[..bulk_len]);
                self.consume(buf, bulk_len + 2);
                arg
            } else {
                let arg = buf.split_to(bulk_len).freeze();
                self.consume(buf, 2);
                arg
            };
            partial.args.push(arg);
            partial.args_len_sum += bulk_len;
            partial.bulk_len = None;
            partial.args_remaining -= 1;
        }
        Ok(true)
    }

    /// Reads a `$<len>` line: `Ok(None)` if it is not complete yet.
    fn bulk_len_line(&mut self, buf: &mut BytesMut) -> Result<Option<usize>, ProtocolError> {
        let cr = match self.find_line_end(buf, b'\r') {
            LineEnd::Found(index) => index,
            LineEnd::Missing => {
                if buf.len() > self.limits.inline_len_max {
                    return Err(error("Protocol error: too big bulk count string"));
                }
                return Ok(None);
            }
        };
        if cr + 1 >= buf.len() {
            return Ok(None);
        }
        if buf[0] != b'$' {
            return Err(expected_dollar(buf[0]));
        }
        let len = match parse_redis_i64(&buf[1..cr]) {
            Some(len) if len >= 0 && len <= clamp_to_i64(self.limits.bulk_len_max) => len,
            _ => return Err(error("Protocol error: invalid bulk length")),
        };
        let Ok(len) = usize::try_from(len) else {
            return Err(error("Protocol error: invalid bulk length"));
        };
        self.consume(buf, cr + 2);
        Ok(Some(len))
    }
}

/// The number on the `*<n>` or `$<len>` line at `at` (its first byte not checked) and where
/// the next line starts, for the fast path: `None` unless the line's `\r` comes within the
/// 20 characters a number may have, with no NUL before it and a byte after it (the general
/// path's rules for a complete line), and the number is one Redis would parse.
/// The first argument of a request (the command's name) as a static `Bytes` when it is one
/// of the commonest names, in capitals or small letters: the same bytes without an
/// allocation, and nothing to free where the request ends up (often another core).
fn static_name(name: &[u8]) -> Option<Bytes> {
    let name: &'static [u8] = match name {
        b"GET" => b"GET",
        b"get" => b"get",
        b"SET" => b"SET",
        b"set" => b"set",
        b"DEL" => b"DEL",
        b"del" => b"del",
        b"MGET" => b"MGET",
        b"mget" => b"mget",
        b"MSET" => b"MSET",
        b"mset" => b"mset",
        b"INCR" => b"INCR",
        b"incr" => b"incr",
        b"DECR" => b"DECR",
        b"decr" => b"decr",
        b"INCRBY" => b"INCRBY",
        b"incrby" => b"incrby",
        b"EXPIRE" => b"EXPIRE",
        b"expire" => b"expire",
        b"TTL" => b"TTL",
        b"ttl" => b"ttl",
        b"EXISTS" => b"EXISTS",
        b"exists" => b"exists",
        b"HGET" => b"HGET",
        b"hget" => b"hget",
        b"HSET" => b"HSET",
        b"hset" => b"hset",
        b"HMGET" => b"HMGET",
        b"hmget" => b"hmget",
        b"HDEL" => b"HDEL",
        b"hdel" => b"hdel",
        b"HGETALL" => b"HGETALL",
        b"hgetall" => b"hgetall",
        b"HINCRBY" => b"HINCRBY",
        b"hincrby" => b"hincrby",
        b"LPUSH" => b"LPUSH",
        b"lpush" => b"lpush",
        b"RPUSH" => b"RPUSH",
        b"rpush" => b"rpush",
        b"LPOP" => b"LPOP",
        b"lpop" => b"lpop",
        b"RPOP" => b"RPOP",
        b"rpop" => b"rpop",
        b"LRANGE" => b"LRANGE",
        b"lrange" => b"lrange",
        b"LLEN" => b"LLEN",
        b"llen" => b"llen",
        b"SADD" => b"SADD",
        b"sadd" => b"sadd",
        b"SREM" => b"SREM",
        b"srem" => b"srem",
        b"SMEMBERS" => b"SMEMBERS",
        b"smembers" => b"smembers",
        b"SISMEMBER" => b"SISMEMBER",
        b"sismember" => b"sismember",
        b"SPOP" => b"SPOP",
        b"spop" => b"spop",
        b"SCARD" => b"SCARD",
        b"scard" => b"scard",
        b"ZADD" => b"ZADD",
        b"zadd" => b"zadd",
        b"ZREM" => b"ZREM",
        b"zrem" => b"zrem",
        b"ZRANGE" => b"ZRANGE",
        b"zrange" => b"zrange",
        b"ZSCORE" => b"ZSCORE",
        b"zscore" => b"zscore",
        b"ZINCRBY" => b"ZINCRBY",
        b"zincrby" => b"zincrby",
        b"ZRANK" => b"ZRANK",
        b"zrank" => b"zrank",
        b"ZCARD" => b"ZCARD",
        b"zcard" => b"zcard",
        b"PFADD" => b"PFADD",
        b"pfadd" => b"pfadd",
        b"PFCOUNT" => b"PFCOUNT",
        b"pfcount" => b"pfcount",
        b"PUBLISH" => b"PUBLISH",
        b"publish" => b"publish",
        b"EVALSHA" => b"EVALSHA",
        b"evalsha" => b"evalsha",
        b"MULTI" => b"MULTI",
        b"multi" => b"multi",
        b"EXEC" => b"EXEC",
        b"exec" => b"exec",
        b"PING" => b"PING",
        b"ping" => b"ping",
        b"SETEX" => b"SETEX",
        b"setex" => b"setex",
        b"APPEND" => b"APPEND",
        b"append" => b"append",
        b"PEXPIRE" => b"PEXPIRE",
        b"pexpire" => b"pexpire",
        b"UNLINK" => b"UNLINK",
        b"unlink" => b"unlink",
        _ => return None,
    };
    Some(Bytes::from_static(name))
}

/// Copies argument `index` of a request out of the input buffer (see [`static_name`]).
fn copy_arg(index: usize, arg: &[u8]) -> Bytes {
    if index == 0 {
        command_name(arg)
    } else {
        Bytes::copy_from_slice(arg)
    }
}

/// A command's name as an argument: static for the commonest names (see [`static_name`]),
/// a copy otherwise.
pub fn command_name(name: &[u8]) -> Bytes {
    static_name(name).unwrap_or_else(|| Bytes::copy_from_slice(name))
}

/// The second argument of the multibulk request at the start of `bytes` (for most commands,
/// their key), when the request has one and its first two arguments are whole in `bytes`.
/// A hint for prefetching, not a parse: the request is decoded properly later.
pub fn first_key(bytes: &[u8]) -> Option<&[u8]> {
    if bytes.first() != Some(&b'*') {
        return None;
    }
    let (count, mut at) = short_header(bytes, 0)?;
    if count < 2 {
        return None;
    }
    for index in 0..2 {
        if bytes.get(at) != Some(&b'$') {
            return None;
        }
        let (len, data) = short_header(bytes, at)?;
        let len = usize::try_from(len).ok()?;
        let end = data.checked_add(len).filter(|&end| end <= bytes.len())?;
        if index == 1 {
            return Some(&bytes[data..end]);
        }
        at = end + 2;
    }
    None
}

fn short_header(bytes: &[u8], at: usize) -> Option<(i64, usize)> {
    let line = bytes.get(at + 1..)?;
    let cr = line.iter().take(21).position(|&b| b == b'\r' || b == 0)?;
    if line[cr] != b'\r' || cr + 1 >= line.len() {
        return None;
    }
    Some((parse_redis_i64(&line[..cr])?, at + 1 + cr + 2))
}

fn error(message: &str) -> ProtocolError {
    ProtocolError(format!("ERR {message}"))
}

/// `expected '$', got 'X'` with the byte as Redis prints it: raw (kept as a Latin-1 `char`,
/// see [`ProtocolError`]), except CR and LF, which `addReplyErrorFormat` turns into spaces.
fn expected_dollar(byte: u8) -> ProtocolError {
    let shown = match byte {
        b'\r' | b'\n' => ' ',
        other => char::from(other),
    };
    ProtocolError(format!("ERR Protocol error: expected '$', got '{shown}'"))
}

fn clamp_to_i64(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// Redis's `string2ll` (util.c): an optional `-`, then digits with no leading zero (a lone
/// `0` excepted), fewer than 21 characters in all, within `i64`.
pub(crate) fn parse_redis_i64(text: &[u8]) -> Option<i64> {
    // LONG_STR_SIZE is 21: a string that long or longer is refused outright.
    if text.is_empty() || text.len() >= 21 {
        return None;
    }
    if text == b"0" {
        return Some(0);
    }
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut magnitude: u64 = 0;
    for &digit in digits {
        if !digit.is_ascii_digit() {
            return None;
        }
        magnitude = magnitude.checked_mul(10)?.checked_add(u64::from(digit - b'0'))?;
    }
    if negative {
        // -(2^63) is the one magnitude that fits only as a negative number.
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoder() -> RequestDecoder {
        RequestDecoder::default()
    }

    #[test]
    fn command_names_keep_their_bytes_whether_static_or_copied() {
        for name in ["GET", "get", "Get", "LPUSH", "lpush", "LPush", "XYZZY"] {
            let request = format!("*2\r\n${}\r\n{name}\r\n$1\r\nk\r\n", name.len());
            // Whole (the fast path) and fed a byte at a time (the general path).
            let (whole, error) = decode_all(request.as_bytes());
            assert_eq!((whole, error), (vec![vec![name.as_bytes().to_vec(), b"k".to_vec()]], None));
            let mut decoder = decoder();
            let mut buf = BytesMut::new();
            let mut got = None;
            for byte in request.bytes() {
                buf.extend_from_slice(&[byte]);
                if let Some(args) = decoder.decode(&mut buf).unwrap() {
                    got = Some(args);
                }
            }
            let args = got.expect("one request");
            assert_eq!(&args[0][..], name.as_bytes());
            // Common names in capitals or small letters are static; other spellings copied.
            assert_eq!(static_name(name.as_bytes()).is_some(), name != "Get" && name != "LPush" && name != "XYZZY");
        }
        assert_eq!(copy_arg(1, b"GET"), Bytes::from_static(b"GET"), "only the first argument is looked up");
    }

    #[test]
    fn first_key_is_the_second_argument_of_a_whole_enough_request() {
        assert_eq!(first_key(b"*2\r\n$3\r\nGET\r\n$5\r\nkey:1\r\n"), Some(&b"key:1"[..]));
        assert_eq!(first_key(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv"), Some(&b"k"[..]), "the rest may be missing");
        assert_eq!(first_key(b"*2\r\n$3\r\nGET\r\n$0\r\n\r\n"), Some(&b""[..]));
        assert_eq!(first_key(b"*2\r\n$3\r\nGET\r\n$5\r\nkey"), None, "the key is cut");
        assert_eq!(first_key(b"*1\r\n$4\r\nPING\r\n"), None, "no second argument");
        assert_eq!(first_key(b"GET key\r\n"), None, "inline requests are not looked at");
        assert_eq!(first_key(b"*2\r\n+3\r\nGET\r\n$1\r\nk\r\n"), None);
        assert_eq!(first_key(b"*2\r\n$-1\r\n$1\r\nk\r\n"), None);
        assert_eq!(first_key(b""), None);
    }

    /// Decodes everything in `input` fed at once: the requests, then the error if one came.
    fn decode_all(input: &[u8]) -> (Vec<Vec<Vec<u8>>>, Option<String>) {
        decode_all_with(RequestDecoder::default(), input)
    }

    fn decode_all_with(mut decoder: RequestDecoder, input: &[u8]) -> (Vec<Vec<Vec<u8>>>, Option<String>) {
        let mut buf = BytesMut::from(input);
        let mut requests = Vec::new();
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(args)) => requests.push(args.iter().map(|arg| arg.to_vec()).collect()),
                Ok(None) => return (requests, None),
                Err(error) => return (requests, Some(error.0)),
            }
        }
    }

    fn request(args: &[&str]) -> Vec<Vec<u8>> {
        args.iter().map(|arg| arg.as_bytes().to_vec()).collect()
    }

    fn protocol_error(input: &[u8]) -> Option<String> {
        decode_all(input).1
    }

    #[test]
    fn multibulk_request_decodes_to_its_arguments() {
        let (requests, error) = decode_all(b"*2\r\n$4\r\nECHO\r\n$3\r\nfoo\r\n");
        assert_eq!(requests, vec![request(&["ECHO", "foo"])]);
        assert_eq!(error, None);
    }

    #[test]
    fn pipelined_requests_decode_one_per_call() {
        let mut buf = BytesMut::from(&b"*1\r\n$4\r\nPING\r\nPING\r\n*1\r\n$4\r\nPI"[..]);
        let mut decoder = decoder();
        assert_eq!(decoder.decode(&mut buf).unwrap(), Some(vec![Bytes::from_static(b"PING")]));
        assert_eq!(decoder.decode(&mut buf).unwrap(), Some(vec![Bytes::from_static(b"PING")]));
        assert_eq!(decoder.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(b"NG\r\n");
        assert_eq!(decoder.decode(&mut buf).unwrap(), Some(vec![Bytes::from_static(b"PING")]));
        assert!(buf.is_empty());
    }

    #[test]
    fn incomplete_inline_request_consumes_nothing() {
        let mut buf = BytesMut::from(&b"PIN"[..]);
        assert_eq!(decoder().decode(&mut buf).unwrap(), None);
        assert_eq!(&buf[..], b"PIN");
    }

    #[test]
    fn long_arguments_share_the_buffer_allocation_and_short_ones_are_copied() {
        let long = "x".repeat(ARG_COPY_LEN_MAX + 1);
        let short = "y".repeat(ARG_COPY_LEN_MAX);
        let mut buf = BytesMut::with_capacity(1024);
        buf.extend_from_slice(format!("*3\r\n$3\r\nSET\r\n${}\r\n{long}\r\n${}\r\n{short}\r\n", long.len(), short.len()).as_bytes());
        let start = buf.as_ptr() as usize;
        let end = start + buf.len();
        let args = decoder().decode(&mut buf).unwrap().unwrap();
        assert_eq!(args, request(&["SET", &long, &short]));
        let inside = |arg: &Bytes| (start..end).contains(&(arg.as_ptr() as usize));
        assert!(!inside(&args[0]) && !inside(&args[2]), "short arguments are copied");
        assert!(inside(&args[1]), "a long argument is a slice of the buffer");
    }

    #[test]
    fn bulk_data_is_followed_by_two_unchecked_bytes() {
        let (requests, error) = decode_all(b"*1\r\n$4\r\nPINGXY*1\r\n$4\r\nPING\r\n");
        assert_eq!(requests, vec![request(&["PING"]), request(&["PING"])]);
        assert_eq!(error, None);
    }

    #[test]
    fn header_cr_may_be_followed_by_any_byte() {
        assert_eq!(decode_all(b"*1\rX$4\r\nPING\r\n").0, vec![request(&["PING"])]);
        assert_eq!(decode_all(b"*1\r\n$4\rXPING\r\n").0, vec![request(&["PING"])]);
    }

    #[test]
    fn header_cr_at_the_end_of_the_buffer_waits_for_one_more_byte() {
        let mut buf = BytesMut::from(&b"*1\r"[..]);
        let mut decoder = decoder();
        assert_eq!(decoder.decode(&mut buf).unwrap(), None);
        assert_eq!(&buf[..], b"*1\r");
    }

    #[test]
    fn zero_and_negative_counts_are_skipped() {
        let (requests, error) = decode_all(b"*0\r\n*-1\r\n*-9223372036854775808\r\nPING\r\n");
        assert_eq!(requests, vec![request(&["PING"])]);
        assert_eq!(error, None);
    }

    #[test]
    fn skipped_empty_request_alone_gives_none_and_is_consumed() {
        let mut buf = BytesMut::from(&b"*0\r\n\r\n"[..]);
        assert_eq!(decoder().decode(&mut buf).unwrap(), None);
        assert!(buf.is_empty());
    }

    #[test]
    fn malformed_count_is_invalid_multibulk_length() {
        for input in [&b"*\r\n"[..], b"*01\r\n", b"*-0\r\n", b"*+1\r\n", b"*1a\r\n", b"*2147483648\r\n", b"*-9223372036854775809\r\n"] {
            assert_eq!(protocol_error(input).as_deref(), Some("ERR Protocol error: invalid multibulk length"), "input {input:?}");
        }
    }

    #[test]
    fn count_at_the_limit_is_accepted() {
        let mut buf = BytesMut::from(&b"*2147483647\r\n"[..]);
        let mut decoder = decoder();
        assert_eq!(decoder.decode(&mut buf).unwrap(), None);
        assert!(decoder.has_partial_request());
    }

    #[test]
    fn count_above_a_custom_limit_is_invalid_multibulk_length() {
        let limits = DecodeLimits { multibulk_len_max: 2, ..DecodeLimits::default() };
        let (_, error) = decode_all_with(RequestDecoder::new(limits), b"*3\r\n");
        assert_eq!(error.as_deref(), Some("ERR Protocol error: invalid multibulk length"));
    }

    #[test]
    fn malformed_bulk_length_is_invalid_bulk_length() {
        for input in
            [&b"*1\r\n$\r\n"[..], b"*1\r\n$04\r\nPING\r\n", b"*1\r\n$-1\r\n", b"*1\r\n$1a\r\n", b"*1\r\n$99999999999999999999\r\n", b"*1\r\n$536870913\r\n"]
        {
            assert_eq!(protocol_error(input).as_deref(), Some("ERR Protocol error: invalid bulk length"), "input {input:?}");
        }
    }

    #[test]
    fn bulk_length_at_the_limit_is_accepted() {
        let mut buf = BytesMut::from(&b"*1\r\n$536870912\r\n"[..]);
        assert_eq!(decoder().decode(&mut buf).unwrap(), None);
    }

    #[test]
    fn missing_dollar_names_the_byte_found() {
        assert_eq!(protocol_error(b"*1\r\nX4\r\n").as_deref(), Some("ERR Protocol error: expected '$', got 'X'"));
        assert_eq!(protocol_error(b"*3\r\n$4\r\nECHO\r\n$1\r\na\r\n*1\r\n$4\r\nPING\r\n").as_deref(), Some("ERR Protocol error: expected '$', got '*'"));
    }

    #[test]
    fn missing_dollar_shows_cr_and_lf_as_space() {
        assert_eq!(protocol_error(b"*1\r\n\r\n").as_deref(), Some("ERR Protocol error: expected '$', got ' '"));
        assert_eq!(protocol_error(b"*1\r\n\n\r\n").as_deref(), Some("ERR Protocol error: expected '$', got ' '"));
    }

    #[test]
    fn missing_dollar_echoes_a_high_byte_raw() {
        let mut buf = BytesMut::from(&b"*1\r\n\xff\r\n"[..]);
        let error = decoder().decode(&mut buf).unwrap_err();
        assert_eq!(error.reply_bytes(), b"ERR Protocol error: expected '$', got '\xff'".to_vec());
    }

    #[test]
    fn requests_before_a_protocol_error_are_decoded() {
        let (requests, error) = decode_all(b"PING\r\n*1\r\n$4\r\nPING\r\n*x\r\n");
        assert_eq!(requests, vec![request(&["PING"]), request(&["PING"])]);
        assert_eq!(error.as_deref(), Some("ERR Protocol error: invalid multibulk length"));
    }

    #[test]
    fn error_is_repeated_and_consumes_nothing() {
        let mut buf = BytesMut::from(&b"*x\r\n"[..]);
        let mut decoder = decoder();
        let first = decoder.decode(&mut buf).unwrap_err();
        assert_eq!(decoder.decode(&mut buf).unwrap_err(), first);
        assert_eq!(&buf[..], b"*x\r\n");
    }

    #[test]
    fn count_line_without_cr_is_too_big_past_the_inline_limit() {
        let mut input = vec![b'*'];
        input.extend(std::iter::repeat_n(b'1', 64 * 1024 - 1));
        assert_eq!(protocol_error(&input), None);
        input.push(b'1');
        assert_eq!(protocol_error(&input).as_deref(), Some("ERR Protocol error: too big mbulk count string"));
    }

    #[test]
    fn long_count_line_with_its_cr_is_invalid_not_too_big() {
        let mut input = vec![b'*'];
        input.extend(std::iter::repeat_n(b'1', 64 * 1024));
        input.extend_from_slice(b"\r\n");
        assert_eq!(protocol_error(&input).as_deref(), Some("ERR Protocol error: invalid multibulk length"));
    }

    #[test]
    fn bulk_length_line_without_cr_is_too_big_past_the_inline_limit() {
        let mut input = b"*2\r\n$4\r\nECHO\r\n".to_vec();
        let waiting = input.len();
        input.push(b'$');
        input.extend(std::iter::repeat_n(b'1', 64 * 1024 - 1));
        assert_eq!(protocol_error(&input), None, "{} bytes waiting", input.len() - waiting);
        input.push(b'1');
        assert_eq!(protocol_error(&input).as_deref(), Some("ERR Protocol error: too big bulk count string"));
    }

    #[test]
    fn inline_line_without_newline_is_too_big_past_the_inline_limit() {
        let input = vec![b'P'; 64 * 1024];
        assert_eq!(protocol_error(&input), None);
        let input = vec![b'P'; 64 * 1024 + 1];
        assert_eq!(protocol_error(&input).as_deref(), Some("ERR Protocol error: too big inline request"));
    }

    #[test]
    fn long_inline_line_that_arrives_whole_is_accepted() {
        let mut input = b"ECHO ".to_vec();
        input.extend(std::iter::repeat_n(b'a', 70 * 1024));
        input.extend_from_slice(b"\r\n");
        let (requests, error) = decode_all(&input);
        assert_eq!(error, None);
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0][1].len(), 70 * 1024);
    }

    #[test]
    fn nul_before_the_terminator_stalls_the_request() {
        for input in [&b"PI\0NG\r\n"[..], b"*1\0\r\n$4\r\nPING\r\n", b"*1\r\n$4\0\r\nPING\r\n", b"*1\r\n\0\r\n"] {
            let mut buf = BytesMut::from(input);
            let mut decoder = decoder();
            assert_eq!(decoder.decode(&mut buf).unwrap(), None, "input {input:?}");
            buf.extend_from_slice(b"PING\r\n");
            assert_eq!(decoder.decode(&mut buf).unwrap(), None, "input {input:?} then more");
        }
    }

    #[test]
    fn nul_stall_ends_in_too_big_past_the_inline_limit() {
        let mut input = b"PI\0NG\r\n".to_vec();
        input.resize(64 * 1024, b'a');
        assert_eq!(protocol_error(&input), None);
        input.push(b'a');
        assert_eq!(protocol_error(&input).as_deref(), Some("ERR Protocol error: too big inline request"));

        let mut input = b"*1\r\n$1\0".to_vec();
        let mut decoder = decoder();
        let mut buf = BytesMut::from(&input[..]);
        assert_eq!(decoder.decode(&mut buf).unwrap(), None);
        // The header `*1` is consumed; what waits is `$1\0...`.
        input = vec![b'a'; 64 * 1024 - 3 + 1];
        buf.extend_from_slice(&input);
        assert_eq!(decoder.decode(&mut buf).unwrap_err().0, "ERR Protocol error: too big bulk count string");
    }

    #[test]
    fn nul_inside_bulk_data_is_data() {
        assert_eq!(decode_all(b"*1\r\n$4\r\nP\0NG\r\n").0, vec![vec![b"P\0NG".to_vec()]]);
    }

    #[test]
    fn empty_bulk_is_an_empty_argument() {
        assert_eq!(decode_all(b"*1\r\n$0\r\n\r\n").0, vec![vec![Vec::new()]]);
    }

    #[test]
    fn inline_request_splits_like_sdssplitargs() {
        assert_eq!(decode_all(b"SET k \"a b\"\r\n").0, vec![request(&["SET", "k", "a b"])]);
    }

    #[test]
    fn inline_request_may_end_with_a_bare_newline() {
        assert_eq!(decode_all(b"PING\nPING\r\n").0, vec![request(&["PING"]), request(&["PING"])]);
    }

    #[test]
    fn inline_request_strips_only_one_cr() {
        assert_eq!(decode_all(b"PING\r\r\n").0, vec![request(&["PING"])]);
        assert_eq!(decode_all(b"PING\rX\n").0, vec![request(&["PING", "X"])]);
    }

    #[test]
    fn blank_inline_lines_are_skipped() {
        let (requests, error) = decode_all(b"\r\n\n   \r\n\x0b\nPING\n");
        assert_eq!(requests, vec![request(&["PING"])]);
        assert_eq!(error, None);
    }

    #[test]
    fn inline_with_unbalanced_quotes_is_protocol_error() {
        for input in [&b"ECHO \"a\"b\r\n"[..], b"ECHO 'a'b\r\n", b"ECHO \"a\r\n", b"ECHO \"a\"\"b\"\r\n"] {
            assert_eq!(protocol_error(input).as_deref(), Some("ERR Protocol error: unbalanced quotes in request"), "input {input:?}");
        }
    }

    #[test]
    fn inline_request_is_checked_only_once_its_line_is_complete() {
        let mut buf = BytesMut::from(&b"ECHO \"a"[..]);
        let mut decoder = decoder();
        assert_eq!(decoder.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(b" b\"\r\n");
        assert_eq!(decoder.decode(&mut buf).unwrap(), Some(vec![Bytes::from_static(b"ECHO"), Bytes::from_static(b"a b")]));
    }

    #[test]
    fn line_starting_with_another_type_byte_is_inline() {
        assert_eq!(decode_all(b"$4\r\n").0, vec![request(&["$4"])]);
    }

    #[test]
    fn partial_request_len_counts_arguments_taken_from_the_buffer() {
        let mut buf = BytesMut::from(&b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nva"[..]);
        let mut decoder = decoder();
        assert_eq!(decoder.decode(&mut buf).unwrap(), None);
        assert_eq!(decoder.partial_request_len(), 4);
        assert_eq!(&buf[..], b"va");
        buf.extend_from_slice(b"lue\r\n");
        assert_eq!(decoder.decode(&mut buf).unwrap().map(|args| args.len()), Some(3));
        assert_eq!(decoder.partial_request_len(), 0);
        assert!(!decoder.has_partial_request());
    }

    #[test]
    fn huge_announced_count_preallocates_little() {
        let mut buf = BytesMut::from(&b"*2147483647\r\n$1\r\na\r\n"[..]);
        let mut decoder = decoder();
        assert_eq!(decoder.decode(&mut buf).unwrap(), None);
        let capacity = decoder.partial.as_ref().map(|partial| partial.args.capacity());
        assert_eq!(capacity, Some(ARGS_PREALLOCATION_MAX));
    }

    #[test]
    fn string2ll_rules_are_redis_rules() {
        assert_eq!(parse_redis_i64(b"0"), Some(0));
        assert_eq!(parse_redis_i64(b"-1"), Some(-1));
        assert_eq!(parse_redis_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_redis_i64(b"-9223372036854775808"), Some(i64::MIN));
        for refused in [&b""[..], b"-", b"-0", b"00", b"01", b"+1", b" 1", b"1 ", b"9223372036854775808", b"-9223372036854775809"] {
            assert_eq!(parse_redis_i64(refused), None, "{refused:?}");
        }
        // Twenty-one characters are refused before any digit is read.
        assert_eq!(parse_redis_i64(b"-0000000000000000001"), None);
        assert_eq!(parse_redis_i64(b"100000000000000000000"), None);
    }
}
