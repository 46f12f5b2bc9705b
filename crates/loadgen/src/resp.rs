//! RESP2 replies as a client reads them: an incremental parser that tells an incomplete reply
//! from a malformed one, and the checks the load generator makes on every reply.
//!
//! Replies borrow the read buffer (bulk strings are not copied), so checking a reply costs
//! no allocation except for arrays. No sockets here, and no RESP3: the load generator never
//! sends `HELLO`, so a server answers in RESP2.

use std::fmt;

/// Arrays nested deeper than this are refused (no reply the load generator expects nests at all).
const NESTING_MAX: usize = 8;

/// One RESP2 reply, borrowing the buffer it was parsed from.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply<'a> {
    Simple(&'a [u8]),
    Error(&'a [u8]),
    Integer(i64),
    /// `None` is the nil bulk string (`$-1`).
    Bulk(Option<&'a [u8]>),
    /// `None` is the nil array (`*-1`), as EXEC answers when a WATCH failed.
    Array(Option<Vec<Reply<'a>>>),
}

impl fmt::Display for Reply<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Simple(text) => write!(f, "+{}", String::from_utf8_lossy(text)),
            Reply::Error(text) => write!(f, "-{}", String::from_utf8_lossy(text)),
            Reply::Integer(value) => write!(f, ":{value}"),
            Reply::Bulk(None) => write!(f, "(nil bulk)"),
            Reply::Bulk(Some(bytes)) if bytes.len() <= 64 => write!(f, "${} {:?}", bytes.len(), String::from_utf8_lossy(bytes)),
            Reply::Bulk(Some(bytes)) => write!(f, "${} (bulk string)", bytes.len()),
            Reply::Array(None) => write!(f, "(nil array)"),
            Reply::Array(Some(items)) => {
                write!(f, "*{} [", items.len())?;
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{item}")?;
                }
                write!(f, "]")
            }
        }
    }
}

/// Bytes that are not RESP2: the connection cannot be trusted past them.
#[derive(Debug, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "protocol error: {}", self.0)
    }
}

/// Parses one reply from the front of `buf`. `Ok(None)` means the reply is not complete yet
/// (read more and try again); `Ok(Some((reply, consumed)))` gives the reply and its length.
pub fn parse(buf: &[u8]) -> Result<Option<(Reply<'_>, usize)>, ProtocolError> {
    parse_at(buf, 0, 0)
}

/// Parses the reply that starts at `start`; on success returns it and the offset just past it.
fn parse_at(buf: &[u8], start: usize, depth: usize) -> Result<Option<(Reply<'_>, usize)>, ProtocolError> {
    let Some((line, next)) = line_at(buf, start)? else {
        return Ok(None);
    };
    let (kind, body) = (line[0], &line[1..]);
    match kind {
        b'+' => Ok(Some((Reply::Simple(body), next))),
        b'-' => Ok(Some((Reply::Error(body), next))),
        b':' => Ok(Some((Reply::Integer(parse_integer(body)?), next))),
        b'$' => {
            let length = parse_integer(body)?;
            if length == -1 {
                return Ok(Some((Reply::Bulk(None), next)));
            }
            let length = usize::try_from(length).map_err(|_| ProtocolError(format!("bulk length {length}")))?;
            let end = next + length;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(ProtocolError(format!("bulk string of {length} bytes not followed by CRLF")));
            }
            Ok(Some((Reply::Bulk(Some(&buf[next..end])), end + 2)))
        }
        b'*' => {
            let count = parse_integer(body)?;
            if count == -1 {
                return Ok(Some((Reply::Array(None), next)));
            }
            let count = usize::try_from(count).map_err(|_| ProtocolError(format!("array length {count}")))?;
            if depth == NESTING_MAX {
                return Err(ProtocolError(format!("arrays nested deeper than {NESTING_MAX}")));
            }
            // Each element takes at least 3 bytes, so a huge count cannot make us reserve much.
            let mut items = Vec::with_capacity(count.min(buf.len() / 3 + 1));
            let mut offset = next;
            for _ in 0..count {
                let Some((item, after)) = parse_at(buf, offset, depth + 1)? else {
                    return Ok(None);
                };
                items.push(item);
                offset = after;
            }
            Ok(Some((Reply::Array(Some(items)), offset)))
        }
        other => Err(ProtocolError(format!("unknown reply type byte {:?}", other as char))),
    }
}

/// The line that starts at `start` (without its CRLF) and the offset after the CRLF.
fn line_at(buf: &[u8], start: usize) -> Result<Option<(&[u8], usize)>, ProtocolError> {
    let Some(newline) = buf[start..].iter().position(|&b| b == b'\n') else {
        return Ok(None);
    };
    let end = start + newline;
    if newline < 2 || buf[end - 1] != b'\r' {
        return Err(ProtocolError(format!("malformed line {:?}", String::from_utf8_lossy(&buf[start..=end]))));
    }
    Ok(Some((&buf[start..end - 1], end + 1)))
}

fn parse_integer(text: &[u8]) -> Result<i64, ProtocolError> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| ProtocolError(format!("not an integer: {:?}", String::from_utf8_lossy(text))))
}

/// What one command's reply must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// `+OK` (MULTI, SET).
    Ok,
    /// `+QUEUED` (a command inside MULTI).
    Queued,
    /// Any integer (INCR, or a script that returns INCR's result).
    Integer,
    /// A bulk string or nil (GET).
    BulkOrNil,
    /// An array of exactly this many integers, each at least 1 (EXEC of INCRs).
    PositiveIntegers(usize),
}

/// Why a reply failed its check.
#[derive(Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// The server answered with an error (at top level or inside EXEC's array): it rejected
    /// the command, for example because it does not support it.
    ServerError(String),
    /// Anything else that is not what the command must answer.
    Unexpected(String),
}

/// Checks `reply` against `expect`.
pub fn check(expect: Expect, reply: &Reply<'_>) -> Result<(), Mismatch> {
    if let Reply::Error(message) = reply {
        return Err(Mismatch::ServerError(String::from_utf8_lossy(message).into_owned()));
    }
    let fits = match (expect, reply) {
        (Expect::Ok, Reply::Simple(text)) => *text == b"OK",
        (Expect::Queued, Reply::Simple(text)) => *text == b"QUEUED",
        (Expect::Integer, Reply::Integer(_)) => true,
        (Expect::BulkOrNil, Reply::Bulk(_)) => true,
        (Expect::PositiveIntegers(count), Reply::Array(Some(items))) => {
            if let Some(Reply::Error(message)) = items.iter().find(|item| matches!(item, Reply::Error(_))) {
                return Err(Mismatch::ServerError(String::from_utf8_lossy(message).into_owned()));
            }
            items.len() == count && items.iter().all(|item| matches!(item, Reply::Integer(value) if *value >= 1))
        }
        _ => false,
    };
    if fits {
        Ok(())
    } else {
        Err(Mismatch::Unexpected(format!("expected {}, got {reply}", describe(expect))))
    }
}

fn describe(expect: Expect) -> String {
    match expect {
        Expect::Ok => "+OK".to_string(),
        Expect::Queued => "+QUEUED".to_string(),
        Expect::Integer => "an integer".to_string(),
        Expect::BulkOrNil => "a bulk string or nil".to_string(),
        Expect::PositiveIntegers(count) => format!("an array of {count} positive integers"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(bytes: &[u8]) -> Reply<'_> {
        let (reply, consumed) = parse(bytes).expect("valid").expect("complete");
        assert_eq!(consumed, bytes.len(), "the whole input is one reply");
        reply
    }

    #[test]
    fn each_reply_type_parses() {
        assert_eq!(parse_all(b"+OK\r\n"), Reply::Simple(b"OK"));
        assert_eq!(parse_all(b"-ERR unknown command\r\n"), Reply::Error(b"ERR unknown command"));
        assert_eq!(parse_all(b":-42\r\n"), Reply::Integer(-42));
        assert_eq!(parse_all(b"$3\r\nfoo\r\n"), Reply::Bulk(Some(b"foo")));
        assert_eq!(parse_all(b"$0\r\n\r\n"), Reply::Bulk(Some(b"")));
        assert_eq!(parse_all(b"$-1\r\n"), Reply::Bulk(None));
        assert_eq!(parse_all(b"*-1\r\n"), Reply::Array(None));
        assert_eq!(parse_all(b"*0\r\n"), Reply::Array(Some(vec![])));
        assert_eq!(parse_all(b"*2\r\n:1\r\n*1\r\n$1\r\nx\r\n"), Reply::Array(Some(vec![Reply::Integer(1), Reply::Array(Some(vec![Reply::Bulk(Some(b"x"))]))])));
    }

    #[test]
    fn bulk_string_may_hold_crlf() {
        assert_eq!(parse_all(b"$4\r\na\r\nb\r\n"), Reply::Bulk(Some(b"a\r\nb")));
    }

    #[test]
    fn every_strict_prefix_is_incomplete() {
        let whole: &[u8] = b"*3\r\n:1\r\n$5\r\nhello\r\n+QUEUED\r\n";
        for end in 0..whole.len() {
            assert_eq!(parse(&whole[..end]), Ok(None), "prefix of {end} bytes");
        }
        assert!(parse(whole).unwrap().is_some());
    }

    #[test]
    fn parse_stops_after_the_first_reply() {
        let (reply, consumed) = parse(b"+OK\r\n:1\r\n").unwrap().unwrap();
        assert_eq!(reply, Reply::Simple(b"OK"));
        assert_eq!(consumed, 5);
    }

    #[test]
    fn malformed_input_is_a_protocol_error() {
        assert!(parse(b"?what\r\n").is_err());
        assert!(parse(b":12a\r\n").is_err());
        assert!(parse(b"+OK\n").is_err());
        assert!(parse(b"$3\r\nfooXY").is_err());
        assert!(parse(b"$-2\r\n").is_err());
        assert!(parse(b"\r\n").is_err());
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut bytes = b"*1\r\n".repeat(NESTING_MAX + 1);
        bytes.extend_from_slice(b":1\r\n");
        assert!(parse(&bytes).is_err());
    }

    #[test]
    fn check_accepts_the_expected_replies() {
        assert_eq!(check(Expect::Ok, &Reply::Simple(b"OK")), Ok(()));
        assert_eq!(check(Expect::Queued, &Reply::Simple(b"QUEUED")), Ok(()));
        assert_eq!(check(Expect::Integer, &Reply::Integer(7)), Ok(()));
        assert_eq!(check(Expect::BulkOrNil, &Reply::Bulk(None)), Ok(()));
        assert_eq!(check(Expect::BulkOrNil, &Reply::Bulk(Some(b"v"))), Ok(()));
        let exec = Reply::Array(Some((1..=5).map(Reply::Integer).collect()));
        assert_eq!(check(Expect::PositiveIntegers(5), &exec), Ok(()));
    }

    #[test]
    fn check_refuses_wrong_types_and_counts() {
        assert!(matches!(check(Expect::Ok, &Reply::Simple(b"QUEUED")), Err(Mismatch::Unexpected(_))));
        assert!(matches!(check(Expect::Queued, &Reply::Integer(1)), Err(Mismatch::Unexpected(_))));
        assert!(matches!(check(Expect::Integer, &Reply::Bulk(Some(b"1"))), Err(Mismatch::Unexpected(_))));
        assert!(matches!(check(Expect::BulkOrNil, &Reply::Simple(b"OK")), Err(Mismatch::Unexpected(_))));
        let four = Reply::Array(Some((1..=4).map(Reply::Integer).collect()));
        assert!(matches!(check(Expect::PositiveIntegers(5), &four), Err(Mismatch::Unexpected(_))));
        let zero = Reply::Array(Some((0..5).map(Reply::Integer).collect()));
        assert!(matches!(check(Expect::PositiveIntegers(5), &zero), Err(Mismatch::Unexpected(_))));
        // EXEC answers nil when a WATCHed key changed; the load generator never WATCHes.
        assert!(matches!(check(Expect::PositiveIntegers(5), &Reply::Array(None)), Err(Mismatch::Unexpected(_))));
    }

    #[test]
    fn server_errors_are_told_apart_even_inside_exec() {
        let unknown = Reply::Error(b"ERR unknown command 'EVALSHA'");
        assert_eq!(check(Expect::Integer, &unknown), Err(Mismatch::ServerError("ERR unknown command 'EVALSHA'".to_string())));
        let exec = Reply::Array(Some(vec![Reply::Integer(1), Reply::Error(b"ERR value is not an integer or out of range")]));
        assert!(matches!(check(Expect::PositiveIntegers(2), &exec), Err(Mismatch::ServerError(message)) if message.starts_with("ERR value")));
    }
}
