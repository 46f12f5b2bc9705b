//! Whole RDB files, streamed: a [`Writer`] over any `io::Write` and a [`Reader`] over any
//! `io::Read`, so a file never has to fit in memory (one value at a time does).
//!
//! Layout: `REDIS` + 4 ASCII digits of version; records, each opened by an opcode or a value
//! type byte; `0xFF` (EOF); then, from version 5, the CRC-64 of every byte before it, 8 bytes
//! little-endian (all zero when checksums are off, which readers then skip).
//!
//! Opcodes: 0xFA AUX (two strings), 0xFB RESIZEDB (two lengths), 0xFC EXPIRETIME_MS (i64 LE),
//! 0xFD EXPIRETIME (i32 LE seconds, old files), 0xFE SELECTDB (length), 0xF8 IDLE (length,
//! seconds), 0xF9 FREQ (one byte), 0xF5 FUNCTION2 (a string: the library source),
//! 0xF4 SLOT_INFO (three lengths, skipped), 0xF6 FUNCTION_PRE_GA and 0xF7 MODULE_AUX (refused).
//! A key is `[EXPIRETIME_MS] [IDLE | FREQ] type key value`.
//!
//! Several cores can each produce a [`Chunk`] (SELECTDB + entries) concurrently; the writer
//! appends them between header and trailer, folding each chunk's own CRC into the file's
//! with [`crc64::combine`] so no byte is read twice. SELECTDB may repeat for the same db (one
//! chunk per core): Redis loads such files.

use std::io::{BufReader, Read, Write};

use shoal_store::types::Limits;
use shoal_store::Value;

use crate::codec::{read_len, read_string, write_len, write_string};
use crate::crc64;
use crate::error::{Error, Result};
use crate::input::Input;
use crate::value::{read_value, types, value_type, write_value, FieldTtls};
use crate::{RDB_VERSION_MAX, RDB_VERSION_WRITTEN};

/// The opcodes.
pub mod opcodes {
    /// Cluster slot sizes (skipped).
    pub const SLOT_INFO: u8 = 244;
    /// A function library.
    pub const FUNCTION2: u8 = 245;
    /// A function, 7.0 release-candidate form (refused).
    pub const FUNCTION_PRE_GA: u8 = 246;
    /// Module aux data (refused).
    pub const MODULE_AUX: u8 = 247;
    /// The next key's LRU idle seconds.
    pub const IDLE: u8 = 248;
    /// The next key's LFU counter.
    pub const FREQ: u8 = 249;
    /// An aux field.
    pub const AUX: u8 = 250;
    /// Sizing hints for the current db.
    pub const RESIZEDB: u8 = 251;
    /// The next key's expiry, Unix ms.
    pub const EXPIRETIME_MS: u8 = 252;
    /// The next key's expiry, Unix seconds (old files).
    pub const EXPIRETIME: u8 = 253;
    /// Switches the db.
    pub const SELECTDB: u8 = 254;
    /// The end, before the checksum.
    pub const EOF: u8 = 255;
}

/// What a writer puts in the header.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// The `redis-ver` aux field.
    pub redis_ver: String,
    /// The `ctime` aux field, Unix seconds.
    pub ctime_s: i64,
    /// The `used-mem` aux field, bytes.
    pub used_mem: u64,
    /// The `aof-base` aux field: whether this file is the base of an AOF.
    pub aof_base: bool,
    /// More aux pairs, written after the standard ones.
    pub extra_aux: Vec<(Vec<u8>, Vec<u8>)>,
    /// LZF-compress long strings and blobs (`rdbcompression`).
    pub compress: bool,
    /// Write the CRC-64 trailer; zeros when off (`rdbchecksum no`).
    pub checksum: bool,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions { redis_ver: "7.0.15".into(), ctime_s: 0, used_mem: 0, aof_base: false, extra_aux: Vec::new(), compress: true, checksum: true }
    }
}

/// Per-key metadata written before a key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EntryMeta {
    /// Absolute expiry, Unix milliseconds.
    pub expire_ms: Option<i64>,
    /// LRU idle time, seconds (written when `lfu_freq` is None).
    pub lru_idle_s: Option<u64>,
    /// LFU counter.
    pub lfu_freq: Option<u8>,
}

fn encode_select_db(out: &mut Vec<u8>, db: u64) {
    out.push(opcodes::SELECTDB);
    write_len(out, db);
}

fn encode_resize_db(out: &mut Vec<u8>, db_size: u64, expires_size: u64) {
    out.push(opcodes::RESIZEDB);
    write_len(out, db_size);
    write_len(out, expires_size);
}

fn encode_entry(out: &mut Vec<u8>, key: &[u8], value: &Value, meta: &EntryMeta, compress: bool) {
    if let Some(ms) = meta.expire_ms {
        out.push(opcodes::EXPIRETIME_MS);
        out.extend_from_slice(&ms.to_le_bytes());
    }
    if let Some(freq) = meta.lfu_freq {
        out.extend_from_slice(&[opcodes::FREQ, freq]);
    } else if let Some(idle) = meta.lru_idle_s {
        out.push(opcodes::IDLE);
        write_len(out, idle);
    }
    out.push(value_type(value));
    write_string(out, key, compress);
    write_value(out, value, compress);
}

fn encode_aux(out: &mut Vec<u8>, key: &[u8], value: &[u8], compress: bool) {
    out.push(opcodes::AUX);
    write_string(out, key, compress);
    write_string(out, value, compress);
}

/// One core's section of a file (SELECTDB, RESIZEDB, entries), built in memory elsewhere and
/// appended to a [`Writer`] with its CRC already computed.
#[derive(Debug, Clone, Default)]
pub struct Chunk {
    bytes: Vec<u8>,
    compress: bool,
}

impl Chunk {
    /// An empty chunk; `compress` as [`WriterOptions::compress`].
    pub fn new(compress: bool) -> Self {
        Chunk { bytes: Vec::new(), compress }
    }

    /// Appends SELECTDB `db`.
    pub fn select_db(&mut self, db: u64) {
        encode_select_db(&mut self.bytes, db);
    }

    /// Appends RESIZEDB (a sizing hint for the loader).
    pub fn resize_db(&mut self, db_size: u64, expires_size: u64) {
        encode_resize_db(&mut self.bytes, db_size, expires_size);
    }

    /// Appends one key.
    pub fn entry(&mut self, key: &[u8], value: &Value, meta: &EntryMeta) {
        encode_entry(&mut self.bytes, key, value, meta, self.compress);
    }

    /// The bytes so far.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Finishes the chunk: its bytes and their CRC-64.
    pub fn finish(self) -> SealedChunk {
        let crc = crc64::crc64(&self.bytes);
        SealedChunk { bytes: self.bytes, crc }
    }
}

/// A finished chunk: bytes plus their CRC-64, ready for [`Writer::append_chunk`].
#[derive(Debug, Clone)]
pub struct SealedChunk {
    /// The chunk's bytes.
    pub bytes: Vec<u8>,
    /// `crc64(&bytes)`.
    pub crc: u64,
}

/// Writes an RDB file (version 10) to `W`, tracking the CRC-64 as it goes.
pub struct Writer<W: Write> {
    out: W,
    crc: u64,
    written: u64,
    checksum: bool,
    compress: bool,
    scratch: Vec<u8>,
}

impl<W: Write> Writer<W> {
    /// Writes the header (`REDIS0010` and the aux fields) and returns the writer.
    pub fn new(out: W, options: &WriterOptions) -> std::io::Result<Self> {
        let mut w = Writer { out, crc: 0, written: 0, checksum: options.checksum, compress: options.compress, scratch: Vec::new() };
        let mut head = format!("REDIS{RDB_VERSION_WRITTEN:04}").into_bytes();
        let c = options.compress;
        encode_aux(&mut head, b"redis-ver", options.redis_ver.as_bytes(), c);
        encode_aux(&mut head, b"redis-bits", b"64", c);
        encode_aux(&mut head, b"ctime", itoa::Buffer::new().format(options.ctime_s).as_bytes(), c);
        encode_aux(&mut head, b"used-mem", itoa::Buffer::new().format(options.used_mem).as_bytes(), c);
        encode_aux(&mut head, b"aof-base", if options.aof_base { b"1" } else { b"0" }, c);
        for (key, value) in &options.extra_aux {
            encode_aux(&mut head, key, value, c);
        }
        w.emit(&head)?;
        Ok(w)
    }

    fn emit(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.out.write_all(bytes)?;
        if self.checksum {
            self.crc = crc64::update(self.crc, bytes);
        }
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn emit_scratch(&mut self) -> std::io::Result<()> {
        let scratch = std::mem::take(&mut self.scratch);
        let result = self.emit(&scratch);
        self.scratch = scratch;
        self.scratch.clear();
        result
    }

    /// Bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// Writes one more aux field.
    pub fn aux(&mut self, key: &[u8], value: &[u8]) -> std::io::Result<()> {
        encode_aux(&mut self.scratch, key, value, self.compress);
        self.emit_scratch()
    }

    /// Writes a FUNCTION2 record: one function library's source code.
    pub fn function(&mut self, source: &[u8]) -> std::io::Result<()> {
        self.scratch.push(opcodes::FUNCTION2);
        write_string(&mut self.scratch, source, self.compress);
        self.emit_scratch()
    }

    /// Writes SELECTDB `db` (it may repeat for a db).
    pub fn select_db(&mut self, db: u64) -> std::io::Result<()> {
        encode_select_db(&mut self.scratch, db);
        self.emit_scratch()
    }

    /// Writes RESIZEDB.
    pub fn resize_db(&mut self, db_size: u64, expires_size: u64) -> std::io::Result<()> {
        encode_resize_db(&mut self.scratch, db_size, expires_size);
        self.emit_scratch()
    }

    /// Writes one key of the current db.
    pub fn entry(&mut self, key: &[u8], value: &Value, meta: &EntryMeta) -> std::io::Result<()> {
        encode_entry(&mut self.scratch, key, value, meta, self.compress);
        self.emit_scratch()
    }

    /// Appends a chunk made elsewhere; its CRC is combined, not recomputed.
    pub fn append_chunk(&mut self, chunk: &SealedChunk) -> std::io::Result<()> {
        self.append_raw(&chunk.bytes, chunk.crc)
    }

    /// Appends `bytes` whose CRC-64 is `crc` (for chunks kept elsewhere than a [`SealedChunk`]).
    pub fn append_raw(&mut self, bytes: &[u8], crc: u64) -> std::io::Result<()> {
        self.out.write_all(bytes)?;
        if self.checksum {
            self.crc = crc64::combine(self.crc, crc, bytes.len() as u64);
        }
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Streams `len` bytes from `source` (a chunk spilled to a file) whose CRC-64 is `crc`.
    pub fn append_from(&mut self, source: impl Read, len: u64, crc: u64) -> std::io::Result<()> {
        let copied = std::io::copy(&mut source.take(len), &mut self.out)?;
        if copied != len {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, format!("chunk source gave {copied} of {len} bytes")));
        }
        if self.checksum {
            self.crc = crc64::combine(self.crc, crc, len);
        }
        self.written += len;
        Ok(())
    }

    /// Writes EOF and the checksum, flushes, and returns the inner writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.emit(&[opcodes::EOF])?;
        let crc = if self.checksum { self.crc } else { 0 };
        self.out.write_all(&crc.to_le_bytes())?;
        self.written += 8;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// What the reader needs to build values.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReaderOptions {
    /// The encoding thresholds loaded values follow.
    pub limits: Limits,
    /// The current time, Unix milliseconds, for hash field TTLs.
    pub now_ms: i64,
}

/// One key read from a file. Keys whose expiry has passed are returned like any other: the
/// caller decides (Redis drops them when it loads as a primary).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The db of the last SELECTDB (0 before any).
    pub db: u64,
    /// The key's bytes.
    pub key: Vec<u8>,
    /// The value, encoded per [`ReaderOptions::limits`].
    pub value: Value,
    /// Absolute expiry, Unix milliseconds (converted from seconds in old files).
    pub expire_ms: Option<i64>,
    /// LRU idle seconds.
    pub idle: Option<u64>,
    /// LFU counter.
    pub freq: Option<u8>,
    /// Hash field TTLs dropped or discarded while loading the value.
    pub field_ttls: FieldTtls,
}

/// A record of the file.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Aux {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    SelectDb(u64),
    ResizeDb {
        db_size: u64,
        expires_size: u64,
    },
    Entry(Entry),
    /// A FUNCTION2 record: a library's source code.
    Function(Vec<u8>),
}

/// Counts of what the reader skipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReaderStats {
    /// Keys whose value was empty (Redis skips them too).
    pub empty_keys_skipped: u64,
    /// SLOT_INFO records skipped.
    pub slot_info_skipped: u64,
}

/// Reads an RDB file as a sequence of [`Event`]s; at EOF, verifies the checksum.
pub struct Reader<R: Read> {
    input: Input<BufReader<R>>,
    version: u16,
    db: u64,
    done: bool,
    options: ReaderOptions,
    stats: ReaderStats,
}

impl<R: Read> Reader<R> {
    /// Checks the magic and version (1 to 12) and returns the reader.
    pub fn new(source: R, options: ReaderOptions) -> Result<Self> {
        let mut input = Input::new(BufReader::with_capacity(1 << 16, source));
        let head: [u8; 9] = input.read_array("the header")?;
        if &head[..5] != b"REDIS" {
            return Err(Error::Corrupt { offset: 0, what: "not an RDB file: missing the REDIS magic".into() });
        }
        let version = std::str::from_utf8(&head[5..])
            .ok()
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| Error::Corrupt { offset: 5, what: "the version is not 4 digits".into() })?;
        if version == 0 || version > RDB_VERSION_MAX {
            return Err(Error::Unsupported { offset: 5, what: format!("RDB version {version} is not supported (1 to {RDB_VERSION_MAX})") });
        }
        Ok(Reader { input, version, db: 0, done: false, options, stats: ReaderStats::default() })
    }

    /// The file's RDB version.
    pub fn version(&self) -> u16 {
        self.version
    }

    /// What was skipped so far.
    pub fn stats(&self) -> ReaderStats {
        self.stats
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.input.offset()
    }

    /// The next record; `Ok(None)` once EOF and the checksum have been read and verified.
    /// After an error, every call returns `Ok(None)`: nothing after it can be trusted.
    pub fn next_event(&mut self) -> Result<Option<Event>> {
        if self.done {
            return Ok(None);
        }
        let result = self.read_event();
        if result.is_err() {
            self.done = true;
        }
        result
    }

    fn read_event(&mut self) -> Result<Option<Event>> {
        let mut expire_ms = None;
        let mut idle = None;
        let mut freq = None;
        loop {
            let at = self.input.offset();
            let op = self.input.read_u8("a record type")?;
            match op {
                opcodes::EOF => {
                    let computed = self.input.crc();
                    if self.version >= 5 {
                        let stored = u64::from_le_bytes(self.input.read_array("the checksum")?);
                        if stored != 0 && stored != computed {
                            return Err(Error::Corrupt {
                                offset: at + 1,
                                what: format!("checksum mismatch: file says {stored:016x}, content has {computed:016x}"),
                            });
                        }
                    }
                    self.done = true;
                    return Ok(None);
                }
                opcodes::SELECTDB => {
                    self.db = read_len(&mut self.input)?;
                    return Ok(Some(Event::SelectDb(self.db)));
                }
                opcodes::RESIZEDB => {
                    let db_size = read_len(&mut self.input)?;
                    let expires_size = read_len(&mut self.input)?;
                    return Ok(Some(Event::ResizeDb { db_size, expires_size }));
                }
                opcodes::AUX => {
                    let key = read_string(&mut self.input)?;
                    let value = read_string(&mut self.input)?;
                    return Ok(Some(Event::Aux { key, value }));
                }
                opcodes::FUNCTION2 => return Ok(Some(Event::Function(read_string(&mut self.input)?))),
                opcodes::FUNCTION_PRE_GA => {
                    return Err(Error::Unsupported {
                        offset: at,
                        what: "functions saved by Redis 7.0 release candidates (FUNCTION_PRE_GA) are not supported".into(),
                    })
                }
                opcodes::MODULE_AUX => return Err(Error::Unsupported { offset: at, what: "module aux data is not supported".into() }),
                opcodes::SLOT_INFO => {
                    for _ in 0..3 {
                        read_len(&mut self.input)?;
                    }
                    self.stats.slot_info_skipped += 1;
                }
                opcodes::EXPIRETIME_MS => expire_ms = Some(i64::from_le_bytes(self.input.read_array("an expire time")?)),
                opcodes::EXPIRETIME => expire_ms = Some(i32::from_le_bytes(self.input.read_array("an expire time")?) as i64 * 1000),
                opcodes::IDLE => idle = Some(read_len(&mut self.input)?),
                opcodes::FREQ => freq = Some(self.input.read_u8("an LFU counter")?),
                t if types::is_value_type(t) => {
                    let key = read_string(&mut self.input)?;
                    let loaded = read_value(&mut self.input, t, &self.options.limits, self.options.now_ms)?;
                    match loaded.value {
                        Some(value) => {
                            return Ok(Some(Event::Entry(Entry { db: self.db, key, value, expire_ms, idle, freq, field_ttls: loaded.field_ttls })));
                        }
                        None => {
                            self.stats.empty_keys_skipped += 1;
                            expire_ms = None;
                            idle = None;
                            freq = None;
                        }
                    }
                }
                other => return Err(Error::Unsupported { offset: at, what: format!("unknown record type {other}") }),
            }
        }
    }
}

impl<R: Read> Iterator for Reader<R> {
    type Item = Result<Event>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_event() {
            Ok(Some(event)) => Some(Ok(event)),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }
}
