//! The error of reading an RDB stream: what went wrong and at which byte offset.

/// Why an RDB file or payload could not be read. Every variant carries the byte offset
/// (from the start of the stream) where the problem was found.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The underlying reader or writer failed.
    #[error("RDB I/O error at byte {offset}: {source}")]
    Io {
        offset: u64,
        #[source]
        source: std::io::Error,
    },
    /// The stream ended before a complete record.
    #[error("RDB truncated at byte {offset}: unexpected end of data while reading {what}")]
    Truncated { offset: u64, what: &'static str },
    /// The bytes do not follow the format.
    #[error("RDB corrupt at byte {offset}: {what}")]
    Corrupt { offset: u64, what: String },
    /// Valid RDB that Shoal cannot represent (streams, modules, newer versions).
    #[error("RDB not supported at byte {offset}: {what}")]
    Unsupported { offset: u64, what: String },
}

impl Error {
    /// The byte offset the error refers to.
    pub fn offset(&self) -> u64 {
        match self {
            Error::Io { offset, .. } | Error::Truncated { offset, .. } | Error::Corrupt { offset, .. } | Error::Unsupported { offset, .. } => *offset,
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
