//! RESP2 and RESP3: the request decoder and the reply encoder.
//!
//! What it does:
//! - [`RequestDecoder`] turns the bytes a client sent into requests (`Vec<Bytes>`), one at a
//!   time, incrementally: it tells an *incomplete* request (`Ok(None)`, read more) from a
//!   *protocol error* (`Err`, reply and close). It follows Redis 7.0's `processMultibulkBuffer`
//!   and `processInlineBuffer` (networking.c) byte for byte, quirks included; the quirks are
//!   listed in the [`decode`](mod@decode) module docs.
//! - [`encode()`] writes a [`Frame`] in RESP3, or downgrades it to RESP2 exactly as Redis does
//!   (a map becomes a flat array, a double a bulk string, and so on).
//! - [`format_double`] formats an `f64` the way Redis 7.0's `addReplyDouble` does (`%.17g`).
//!
//! What it deliberately does not do: sockets, a runtime, the keyspace, command lookup or
//! authentication. It does not decode *replies* (it is the server's side of the protocol),
//! and it has no RESP3 attribute type (`|`): Redis 7.0 sends one only for
//! `DEBUG PROTOCOL attrib`.
//!
//! Memory: the decoder preallocates at most 1024 argument slots whatever count a client
//! announces, and otherwise holds only what the client has sent. The caller bounds that with
//! its read size, [`DecodeLimits`], and [`RequestDecoder::partial_request_len`].

pub mod decode;
pub mod encode;
pub mod encoded;
#[doc(hidden)]
pub mod fuzz_support;
pub mod inline;

use bytes::Bytes;

pub use decode::{command_name, RequestDecoder};
pub use encode::{encode, encode_request, encoded_len, format_double, DoubleText};
pub use encoded::{AggregateKind, Encoded};
pub use inline::{quote, split_args};

/// Limits the decoder enforces, named after the Redis directives.
#[derive(Clone, Copy, Debug)]
pub struct DecodeLimits {
    /// `proto-max-bulk-len`: the largest bulk string a request may carry.
    pub bulk_len_max: usize,
    /// Largest inline request line (Redis's PROTO_INLINE_MAX_SIZE, 64 KiB).
    pub inline_len_max: usize,
    /// Largest number of arguments in one multibulk request (Redis: INT_MAX).
    pub multibulk_len_max: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits { bulk_len_max: 512 * 1024 * 1024, inline_len_max: 64 * 1024, multibulk_len_max: i32::MAX as usize }
    }
}

/// A protocol error: the reply text Redis sends before closing the connection,
/// without the leading `-` and trailing CRLF, e.g. `ERR Protocol error: invalid multibulk length`.
///
/// The text is Latin-1: every `char` stands for one byte. It is ASCII except in
/// `expected '$', got 'X'`, where Redis echoes the offending byte raw, so a byte of 0x80 or
/// more shows as the `char` of the same number. Build the reply with
/// [`ProtocolError::to_frame`] (or [`ProtocolError::reply_bytes`]), which turns each `char`
/// back into its byte; writing `.0.as_bytes()` would send UTF-8 where Redis sends one byte.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProtocolError(pub String);

impl ProtocolError {
    /// The error text as the bytes Redis puts between `-` and CRLF.
    pub fn reply_bytes(&self) -> Vec<u8> {
        self.0
            .chars()
            .flat_map(|c| match u8::try_from(u32::from(c)) {
                Ok(byte) => vec![byte],
                // Not produced by this crate: keep foreign text readable rather than lose it.
                Err(_) => c.to_string().into_bytes(),
            })
            .collect()
    }

    /// The error reply to send before closing the connection.
    pub fn to_frame(&self) -> Frame {
        Frame::Error(Bytes::from(self.reply_bytes()))
    }
}

impl From<&ProtocolError> for Frame {
    fn from(error: &ProtocolError) -> Frame {
        error.to_frame()
    }
}

/// A reply. RESP3 types are downgraded to RESP2 by the encoder when the connection speaks RESP2.
///
/// `Simple` and `Error` hold the text without the type byte and CRLF; an `Error` starts with
/// its code (`ERR unknown command`, `WRONGTYPE Operation against ...`). The encoder replaces
/// any CR or LF inside them with a space, as Redis's `addReplyErrorFormat` does, so a reply
/// built from user input cannot break the framing.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Simple(Bytes),
    Error(Bytes),
    Integer(i64),
    Bulk(Bytes),
    Null,
    NullArray,
    Array(Vec<Frame>),
    Map(Vec<(Frame, Frame)>),
    Set(Vec<Frame>),
    Double(f64),
    Boolean(bool),
    BigNumber(Bytes),
    Verbatim {
        format: [u8; 3],
        text: Bytes,
    },
    Push(Vec<Frame>),
    /// An array, set or map whose items are already encoded (see [`Encoded`]): replies of
    /// many elements, without a frame and an allocation per element. It is not equal to the
    /// `Array` it stands for; compare [`Frame::into_plain`]s.
    Encoded(Encoded),
}

impl Frame {
    /// `+OK`.
    pub fn ok() -> Frame {
        Frame::Simple(Bytes::from_static(b"OK"))
    }

    /// A simple string, e.g. `Frame::simple("PONG")`.
    pub fn simple(text: impl Into<Bytes>) -> Frame {
        Frame::Simple(text.into())
    }

    /// An error whose text starts with its code, e.g. `Frame::error("ERR syntax error")`.
    pub fn error(text: impl Into<Bytes>) -> Frame {
        Frame::Error(text.into())
    }

    /// A bulk string.
    pub fn bulk(data: impl Into<Bytes>) -> Frame {
        Frame::Bulk(data.into())
    }

    /// An integer reply.
    pub fn from_int(value: i64) -> Frame {
        Frame::Integer(value)
    }

    /// An array of bulk strings, the shape of most multi-value replies.
    pub fn bulks<I, B>(items: I) -> Frame
    where
        I: IntoIterator<Item = B>,
        B: Into<Bytes>,
    {
        Frame::Array(items.into_iter().map(|item| Frame::Bulk(item.into())).collect())
    }

    /// The same reply with every [`Frame::Encoded`], at any depth, turned into ordinary frames.
    pub fn into_plain(self) -> Frame {
        match self {
            Frame::Encoded(encoded) => encoded.to_frame(),
            Frame::Array(items) => Frame::Array(items.into_iter().map(Frame::into_plain).collect()),
            Frame::Set(items) => Frame::Set(items.into_iter().map(Frame::into_plain).collect()),
            Frame::Push(items) => Frame::Push(items.into_iter().map(Frame::into_plain).collect()),
            Frame::Map(pairs) => Frame::Map(pairs.into_iter().map(|(key, value)| (key.into_plain(), value.into_plain())).collect()),
            other => other,
        }
    }

    /// Whether this is an error reply.
    pub fn is_error(&self) -> bool {
        matches!(self, Frame::Error(_))
    }

    /// The code of an error reply (`ERR`, `WRONGTYPE`, ...): its text up to the first space,
    /// the key of Redis's `INFO errorstats`. `None` for other frames.
    pub fn error_code(&self) -> Option<&[u8]> {
        match self {
            Frame::Error(text) => Some(text.split(|&byte| byte == b' ').next().unwrap_or_default()),
            _ => None,
        }
    }
}

impl From<i64> for Frame {
    fn from(value: i64) -> Frame {
        Frame::Integer(value)
    }
}

/// Protocol version of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Resp2,
    Resp3,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_error_reply_keeps_a_high_byte_as_one_byte() {
        let error = ProtocolError("ERR Protocol error: expected '$', got '\u{ff}'".to_string());
        assert_eq!(error.reply_bytes(), b"ERR Protocol error: expected '$', got '\xff'".to_vec());
        assert_eq!(error.to_frame(), Frame::Error(Bytes::from_static(b"ERR Protocol error: expected '$', got '\xff'")));
    }

    #[test]
    fn error_code_is_the_first_word() {
        assert_eq!(Frame::error("WRONGTYPE Operation against a key").error_code(), Some(&b"WRONGTYPE"[..]));
        assert_eq!(Frame::error("ERR").error_code(), Some(&b"ERR"[..]));
        assert_eq!(Frame::ok().error_code(), None);
    }

    #[test]
    fn helpers_build_the_expected_variants() {
        assert_eq!(Frame::ok(), Frame::Simple(Bytes::from_static(b"OK")));
        assert_eq!(Frame::bulk("v"), Frame::Bulk(Bytes::from_static(b"v")));
        assert_eq!(Frame::from(7), Frame::Integer(7));
        assert_eq!(Frame::from_int(-1), Frame::Integer(-1));
        assert_eq!(Frame::bulks(["a", "b"]), Frame::Array(vec![Frame::bulk("a"), Frame::bulk("b")]));
        assert!(Frame::error("ERR x").is_error());
    }
}
