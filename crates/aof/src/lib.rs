//! Redis 7's multi-part append-only file (AOF): the manifest, the directory of files it
//! names, an encoder for the command log, and a streaming loader with Redis's truncation
//! rules.
//!
//! What it does:
//! - [`Manifest`] parses and writes `appendonly.aof.manifest` exactly as Redis 7.0's
//!   `aofLoadManifestFromFile` and `getAofManifestAsString` do (aof.c), and names new base
//!   and incremental files as `getNewBaseFileNameAndMarkPreAsHistory` and
//!   `getNewIncrAofName` do.
//! - [`AofDir`] finds what is on disk (no AOF, the pre-7.0 single file, or a manifest and
//!   its files), creates the initial file set, persists the manifest atomically (temporary
//!   file, fsync, rename, fsync of the directory) and deletes history files.
//! - [`Loader`] streams the command log of the base and incremental files in order, one
//!   command or one whole `MULTI`/`EXEC` transaction at a time, applying Redis's
//!   `loadSingleAppendOnlyFile` rules for a truncated tail (trimmed on disk when allowed,
//!   refused otherwise) and for format errors (refused with the file and byte offset).
//! - [`encode`] writes commands, `SELECT` and `#TS:` annotations byte for byte as Redis's
//!   `catAppendOnlyGenericCommand` and `feedAppendOnlyFile` do.
//!
//! What it deliberately does not do: it has no `async` and no runtime (plain `std::fs`,
//! synchronous, callable from any thread); it does not decode RDB (the loader stops at an
//! RDB base or preamble and lets the caller's RDB reader consume it); it does not look
//! commands up or execute them; it does not decide when to fsync the log or when to rewrite
//! (the server's policy).

pub mod dir;
pub mod encode;
pub mod load;
pub mod manifest;

pub use dir::{AofDir, AofState, DirError};
pub use encode::{encode_command, encode_select, encode_timestamp, CommandEncoder};
pub use load::{Command, Item, LoadError, LoadLimits, LoadPolicy, LoadReport, Loader, Truncation};
pub use manifest::{FileInfo, FileType, Manifest, ManifestError};
