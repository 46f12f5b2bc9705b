//! Redis's RDB format: whole files and DUMP payloads, read and written, converted to and from
//! Shoal's in-memory [`Value`](shoal_store::Value)s.
//!
//! - [`crc64`] and [`lzf`]: Redis's checksum and string compression, implemented here.
//! - [`blobs`]: the compact encodings inside values (listpack, ziplist, zipmap, intset).
//! - [`value`]: one value, every type of RDB versions 1 to 12 read, version 10 written;
//!   streams (types 15, 19 and 21) in `stream`.
//! - [`dump`](mod@dump): DUMP / RESTORE payloads.
//! - [`file`](mod@file): streaming file [`Writer`] and [`Reader`], and per-core [`Chunk`]s.
//!
//! What this crate does not do: touch a keyspace, a socket or the clock (the caller passes
//! `now_ms`), or represent module values (reading them is an error naming the type).
//! Corrupt input is always an error, never a panic.

pub mod blobs;
mod codec;
pub mod crc64;
pub mod dump;
mod error;
pub mod file;
mod input;
pub mod lzf;
mod stream;
pub mod value;

pub use dump::{dump, restore, restore_loaded, RestoreError};
pub use error::{Error, Result};
pub use file::{Chunk, Entry, EntryMeta, Event, Reader, ReaderOptions, ReaderStats, SealedChunk, Writer, WriterOptions};
pub use value::{FieldTtls, Loaded};

/// The RDB version this crate writes (Redis 7.0's).
pub const RDB_VERSION_WRITTEN: u16 = 10;
/// The newest RDB version this crate reads (Redis 7.4's).
pub const RDB_VERSION_MAX: u16 = 12;
