//! The streaming loader of the command log: base and incremental files, in order.
//!
//! It follows Redis 7.0's `loadSingleAppendOnlyFile` and `loadAppendOnlyFiles` (aof.c):
//! - Each file starts in database 0 (Redis gives each file a fresh fake client); `SELECT`
//!   changes the database of the commands that follow and is not handed to the caller.
//! - A file starting with `REDIS` holds an RDB (a `.base.rdb` file, or an RDB preamble in an
//!   `.aof` file). The loader hands out [`Item::Rdb`] and waits: the caller loads the RDB with
//!   its RDB reader and tells how many bytes it used ([`Loader::rdb_consumed`]); RESP commands
//!   that follow are then parsed from there.
//! - `MULTI` ... `EXEC` is handed out as one [`Item::Transaction`], never command by command,
//!   so the caller applies it atomically. `DISCARD` drops the open transaction.
//! - Lines starting with `#` are annotations; `#TS:<unix-seconds>` is handed out as
//!   [`Item::Timestamp`] (outside a transaction), the others are skipped.
//! - A file that ends inside a command, or inside a `MULTI` block, has a truncated tail. In
//!   the last file, with [`LoadPolicy::load_truncated`], the tail is cut off on disk at the
//!   end of the last complete command (or before the open `MULTI`), the file is fsynced and
//!   the cut is reported in [`LoadReport::truncated`]; otherwise the load fails. A truncated
//!   tail in any other file is always an error.
//! - Anything else malformed (a line not starting with `*` or `$`, a bad number, bulk data
//!   not followed by CRLF, a count or length over [`LoadLimits`]) is a format error naming the
//!   file and the byte offset.
//!
//! Invariants: a command is handed out only once it is complete, and a transaction only once
//! its `EXEC` is complete, so nothing is handed out that a truncation later removes. Memory
//! is bounded by the limits: at most 1024 argument slots are reserved up front whatever
//! count a file announces, and bulk data is read in pieces as it arrives, never allocated to
//! its announced length before the bytes exist. Files are read through a buffered reader
//! in 1 MiB chunks, never whole.
//!
//! Deliberate differences from Redis, all stricter or safer:
//! - Numbers after `*` and `$` must be plain decimal digits ending in `\r\n` (Redis's `atoi`
//!   and `strtol` accept trailing garbage), and the two bytes after bulk data must be `\r\n`
//!   (Redis skips them unread).
//! - `EXEC` or `DISCARD` without `MULTI`, a nested `MULTI`, and a malformed `SELECT` are
//!   format errors (Redis replays them into an error reply that nobody sees).
//! - An annotation line without its `\n` at the end of a file is a truncated tail (Redis
//!   accepts it, and the next appended command would then be swallowed by the annotation).
//! - A complete annotation line counts as a valid record: a trim keeps it (Redis trims back
//!   to the end of the last command), so a [`Item::Timestamp`] handed out is never trimmed.
//! - A cut anywhere inside a `MULTI` block trims the whole block. Redis 7.0 does that only
//!   when the file ends cleanly between commands of the block; when the cut is inside a
//!   command it keeps the open `MULTI` and the commands queued so far, so commands appended
//!   afterwards would join that transaction and be reverted at the next load. (The
//!   differential test against `redis-server` shows both cases.)
//! - After an RDB preamble, the valid prefix starts at the end of the RDB, so trimming a
//!   truncated first command keeps the preamble (Redis 7.0 would truncate to offset 0).
//! - A truncated tail in a file that is not the last one is refused without touching the
//!   file (Redis truncates it, then refuses).
//! - Command names are not looked up: an unknown command is handed out as it is.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::manifest::Manifest;

/// A `*`, `$` or `#` line, `\n` included, is at most this long: Redis reads lines with
/// `fgets` into a buffer of `AOF_ANNOTATION_LINE_MAX_LEN` (1024) bytes, NUL included, and
/// the rest of a longer line would be read as the next line and refused.
const LINE_LEN_MAX: usize = 1023;

/// The reading buffer: files are read in chunks of this size.
const READ_CHUNK_BYTES: usize = 1 << 20;

/// Argument slots reserved up front at most, whatever count a file announces.
const ARGS_PREALLOCATION_MAX: usize = 1024;

/// Bulk bytes reserved up front at most; the rest grows as the bytes are read.
const BULK_PREALLOCATION_MAX: u64 = 64 * 1024;

/// Bounds on what one command may announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadLimits {
    /// The most arguments (command name included) of one command. Default: `i32::MAX`, as
    /// Redis's multibulk limit.
    pub args_max: u64,
    /// The longest argument. Default: 512 MiB, Redis's default `proto-max-bulk-len`.
    pub bulk_len_max: u64,
}

impl Default for LoadLimits {
    fn default() -> Self {
        LoadLimits { args_max: i32::MAX as u64, bulk_len_max: 512 * 1024 * 1024 }
    }
}

/// How to load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadPolicy {
    /// Redis's `aof-load-truncated`: cut a truncated tail of the last file off (on disk) and
    /// go on, instead of failing. Redis's default is `yes`.
    pub load_truncated: bool,
    /// Bounds on counts and lengths.
    pub limits: LoadLimits,
}

/// One command of the log, with the database it applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The database selected when the command was logged.
    pub db: usize,
    /// The command name and its arguments, as logged.
    pub args: Vec<Bytes>,
}

/// What the loader hands out, in log order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// One command outside a transaction.
    Command(Command),
    /// The commands between `MULTI` and `EXEC` (both left out), to apply atomically. Each
    /// command carries its database, since a `SELECT` may appear inside the block.
    Transaction(Vec<Command>),
    /// A `#TS:<unix-seconds>` annotation (`aof-timestamp-enabled`).
    Timestamp(u64),
    /// The file at `path` holds an RDB starting at byte `offset` (0: a `.base.rdb` file or
    /// an RDB preamble). Load it with the RDB reader, then call [`Loader::rdb_consumed`]
    /// with the number of bytes it used before asking for the next item.
    Rdb {
        /// The file holding the RDB.
        path: PathBuf,
        /// Where the RDB starts in the file.
        offset: u64,
    },
}

/// A truncated tail that was cut off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    /// The file that was truncated (always the last one).
    pub path: PathBuf,
    /// Its new length: the end of the last complete command.
    pub offset: u64,
    /// How many bytes were cut off.
    pub trimmed_bytes: u64,
}

/// What a load did, for the log and `INFO`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Files opened (empty ones included).
    pub files: usize,
    /// Commands handed out, inside transactions included; `SELECT`, `MULTI` and `EXEC` not
    /// counted.
    pub commands: u64,
    /// Transactions handed out.
    pub transactions: u64,
    /// `#TS:` annotations seen.
    pub timestamps: u64,
    /// Bytes of the files that were consumed, RDB parts included, truncated tails excluded.
    pub bytes: u64,
    /// The truncated tail that was cut off, if any.
    pub truncated: Option<Truncation>,
}

/// Why a load failed. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Reading, truncating or syncing failed.
    #[error("error reading the append only file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// A file the manifest names does not exist.
    #[error("the append only file {} doesn't exist", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// The bytes at `offset` are not a valid command.
    #[error("bad file format reading the append only file {} at offset {offset}: {reason}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// Where the offending line or bytes start.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The last file ends inside a command or transaction and `load_truncated` is off.
    #[error(
        "Unexpected end of file reading the append only file {}. You can: 1) Make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>. 2) Alternatively you can set the 'aof-load-truncated' configuration option to yes and restart the server. (It is valid up to offset {offset} of {file_len}.)",
        path.file_name().map(|name| name.to_string_lossy()).unwrap_or_default()
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// The end of the last complete command.
        offset: u64,
        /// The file's length.
        file_len: u64,
    },
    /// A file other than the last ends inside a command or transaction.
    #[error("the append only file {} is truncated at offset {offset} but is not the last file", path.display())]
    TruncatedNotLast {
        /// The file.
        path: PathBuf,
        /// The end of the last complete command.
        offset: u64,
    },
    /// The caller asked for the next item without calling [`Loader::rdb_consumed`] after
    /// [`Item::Rdb`], or gave a length past the end of the file.
    #[error("RDB in {} not consumed correctly: {reason}", path.display())]
    RdbProtocol {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: &'static str,
    },
    /// The loader already failed; it hands out nothing more.
    #[error("the loader already failed")]
    AlreadyFailed,
}

/// Streams the items of a list of AOF files, in order. See the module docs for the rules.
///
/// Use it as an iterator of `Result<Item, LoadError>`, or through [`Loader::next_item`].
/// After an error, it hands out [`LoadError::AlreadyFailed`]. When it returns `None`,
/// [`Loader::report`] is final.
#[derive(Debug)]
pub struct Loader {
    paths: Vec<PathBuf>,
    next_file: usize,
    current: Option<OpenFile>,
    policy: LoadPolicy,
    report: LoadReport,
    /// Set between [`Item::Rdb`] and [`Loader::rdb_consumed`].
    rdb_pending: bool,
    failed: bool,
    line: Vec<u8>,
}

#[derive(Debug)]
struct OpenFile {
    path: PathBuf,
    reader: BufReader<File>,
    /// Bytes consumed from the start of the file.
    offset: u64,
    file_len: u64,
    is_last: bool,
    db: usize,
    /// The end of the last complete command (or annotation) outside a transaction: where a
    /// truncated tail is cut.
    valid_up_to: u64,
    /// The open `MULTI` block: the commands queued so far.
    multi: Option<Vec<Command>>,
}

/// How reading a line ended.
enum Line {
    /// A line ending in `\n`.
    Complete,
    /// Bytes, then the end of the file before `\n`.
    Partial,
    /// The end of the file before any byte.
    Eof,
    /// [`LINE_LEN_MAX`] bytes without `\n`.
    TooLong,
}

/// What parsing one record found.
enum Step {
    Item(Item),
    /// A record that hands nothing out (`SELECT`, `MULTI`, a command queued in a transaction,
    /// a comment).
    Nothing,
    /// The file ended cleanly.
    EndOfFile,
    /// The file ended inside a command or transaction.
    Truncated,
}

impl Loader {
    /// A loader of `paths`, in order; the last one is the file that may be trimmed.
    pub fn new(paths: Vec<PathBuf>, policy: LoadPolicy) -> Loader {
        Loader { paths, next_file: 0, current: None, policy, report: LoadReport::default(), rdb_pending: false, failed: false, line: Vec::new() }
    }

    /// A loader of the manifest's base and incremental files, inside `aof_dir`.
    pub fn for_manifest(aof_dir: &Path, manifest: &Manifest, policy: LoadPolicy) -> Loader {
        Loader::new(manifest.files_to_load().map(|info| aof_dir.join(&info.name)).collect(), policy)
    }

    /// What was loaded so far; final once the loader has returned `None`.
    pub fn report(&self) -> &LoadReport {
        &self.report
    }

    /// Consumes the loader and returns its report.
    pub fn into_report(self) -> LoadReport {
        self.report
    }

    /// After [`Item::Rdb`]: the RDB reader used `len` bytes from the RDB's start; parsing
    /// goes on with RESP commands from there.
    pub fn rdb_consumed(&mut self, len: u64) -> Result<(), LoadError> {
        if !self.rdb_pending {
            return Err(LoadError::RdbProtocol { path: PathBuf::new(), reason: "rdb_consumed called without a pending Item::Rdb" });
        }
        let file = self.current.as_mut().expect("an RDB is pending in the open file");
        if len > file.file_len {
            self.failed = true;
            return Err(LoadError::RdbProtocol { path: file.path.clone(), reason: "consumed length is past the end of the file" });
        }
        if let Err(source) = file.reader.seek(SeekFrom::Start(len)) {
            self.failed = true;
            return Err(LoadError::Io { path: file.path.clone(), source });
        }
        file.offset = len;
        file.valid_up_to = len;
        self.rdb_pending = false;
        Ok(())
    }

    /// The next item, `Ok(None)` at the end of the last file.
    pub fn next_item(&mut self) -> Result<Option<Item>, LoadError> {
        if self.failed {
            return Err(LoadError::AlreadyFailed);
        }
        let result = self.advance();
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    fn advance(&mut self) -> Result<Option<Item>, LoadError> {
        if self.rdb_pending {
            let path = self.current.as_ref().map(|file| file.path.clone()).unwrap_or_default();
            return Err(LoadError::RdbProtocol { path, reason: "rdb_consumed was not called after Item::Rdb" });
        }
        loop {
            if self.current.is_none() {
                if self.next_file == self.paths.len() {
                    return Ok(None);
                }
                let index = self.next_file;
                self.next_file += 1;
                let is_last = self.next_file == self.paths.len();
                if let Some(item) = self.open(index, is_last)? {
                    return Ok(Some(item));
                }
                continue;
            }
            match self.step()? {
                Step::Item(item) => return Ok(Some(item)),
                Step::Nothing => {}
                Step::EndOfFile => {
                    let file = self.current.take().expect("a file is open");
                    self.report.bytes += file.offset;
                }
                Step::Truncated => self.truncate_tail()?,
            }
        }
    }

    /// Opens the file; hands out [`Item::Rdb`] if it starts with `REDIS`.
    fn open(&mut self, index: usize, is_last: bool) -> Result<Option<Item>, LoadError> {
        let path = self.paths[index].clone();
        let io_error = |source: io::Error| LoadError::Io { path: path.clone(), source };
        let mut handle = match File::open(&path) {
            Ok(handle) => handle,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Err(LoadError::Missing { path }),
            Err(error) => return Err(io_error(error)),
        };
        let file_len = handle.metadata().map_err(io_error)?.len();
        self.report.files += 1;
        let mut signature = [0u8; 5];
        let signature_len = read_up_to(&mut handle, &mut signature).map_err(io_error)?;
        handle.seek(SeekFrom::Start(0)).map_err(io_error)?;
        let is_rdb = signature_len == signature.len() && &signature == b"REDIS";
        self.current = Some(OpenFile {
            path: path.clone(),
            reader: BufReader::with_capacity(READ_CHUNK_BYTES, handle),
            offset: 0,
            file_len,
            is_last,
            db: 0,
            valid_up_to: 0,
            multi: None,
        });
        if is_rdb {
            self.rdb_pending = true;
            return Ok(Some(Item::Rdb { path, offset: 0 }));
        }
        Ok(None)
    }

    /// Parses one record (a line or a command) of the open file.
    fn step(&mut self) -> Result<Step, LoadError> {
        let limits = self.policy.limits;
        let file = self.current.as_mut().expect("a file is open");
        let record_start = file.offset;
        let format = |file: &OpenFile, offset: u64, reason: String| LoadError::Format { path: file.path.clone(), offset, reason };
        match read_line(file, &mut self.line)? {
            Line::Eof if file.multi.is_some() => return Ok(Step::Truncated),
            Line::Eof => return Ok(Step::EndOfFile),
            Line::Partial => return Ok(Step::Truncated),
            Line::TooLong => return Err(format(file, record_start, format!("line longer than {LINE_LEN_MAX} bytes"))),
            Line::Complete => {}
        }
        if self.line[0] == b'#' {
            if file.multi.is_none() {
                file.valid_up_to = file.offset;
            }
            let Some(secs) = self.line.strip_prefix(b"#TS:").and_then(parse_number) else {
                return Ok(Step::Nothing);
            };
            self.report.timestamps += 1;
            // Inside a transaction the annotation is counted but not handed out, so that an
            // open `MULTI` cut off later has handed out nothing.
            return Ok(if file.multi.is_none() { Step::Item(Item::Timestamp(secs)) } else { Step::Nothing });
        }
        let Some(count) = self.line.strip_prefix(b"*").and_then(parse_number) else {
            return Err(format(file, record_start, format!("expected '*<count>\\r\\n', got {:?}", String::from_utf8_lossy(&self.line))));
        };
        if count == 0 || count > limits.args_max {
            return Err(format(file, record_start, format!("invalid argument count {count} (limit {})", limits.args_max)));
        }
        let mut args = Vec::with_capacity((count as usize).min(ARGS_PREALLOCATION_MAX));
        for _ in 0..count {
            let line_start = file.offset;
            match read_line(file, &mut self.line)? {
                Line::Eof | Line::Partial => return Ok(Step::Truncated),
                Line::TooLong => return Err(format(file, line_start, format!("line longer than {LINE_LEN_MAX} bytes"))),
                Line::Complete => {}
            }
            let Some(len) = self.line.strip_prefix(b"$").and_then(parse_number) else {
                return Err(format(file, line_start, format!("expected '$<length>\\r\\n', got {:?}", String::from_utf8_lossy(&self.line))));
            };
            if len > limits.bulk_len_max {
                return Err(format(file, line_start, format!("bulk length {len} over the limit {}", limits.bulk_len_max)));
            }
            let mut data = Vec::with_capacity(len.min(BULK_PREALLOCATION_MAX) as usize);
            let read = (&mut file.reader).take(len).read_to_end(&mut data).map_err(|source| LoadError::Io { path: file.path.clone(), source })?;
            file.offset += read as u64;
            if (read as u64) < len {
                return Ok(Step::Truncated);
            }
            let mut crlf = [0u8; 2];
            let crlf_len = read_up_to(&mut file.reader, &mut crlf).map_err(|source| LoadError::Io { path: file.path.clone(), source })?;
            let crlf_start = file.offset;
            file.offset += crlf_len as u64;
            if crlf_len < 2 {
                return Ok(Step::Truncated);
            }
            if &crlf != b"\r\n" {
                return Err(format(file, crlf_start, "bulk data not followed by \\r\\n".to_string()));
            }
            args.push(Bytes::from(data));
        }
        let name = &args[0];
        if name.eq_ignore_ascii_case(b"select") {
            let db = (args.len() == 2).then(|| parse_digits(&args[1])).flatten().and_then(|db| usize::try_from(db).ok());
            let Some(db) = db else {
                return Err(format(file, record_start, "SELECT needs one non-negative database index".to_string()));
            };
            file.db = db;
        } else if name.eq_ignore_ascii_case(b"multi") {
            if file.multi.is_some() {
                return Err(format(file, record_start, "MULTI calls can not be nested".to_string()));
            }
            file.multi = Some(Vec::new());
            // `valid_up_to` stays before the MULTI: a block cut off is trimmed whole.
            return Ok(Step::Nothing);
        } else if name.eq_ignore_ascii_case(b"exec") {
            let Some(commands) = file.multi.take() else {
                return Err(format(file, record_start, "EXEC without MULTI".to_string()));
            };
            file.valid_up_to = file.offset;
            self.report.transactions += 1;
            self.report.commands += commands.len() as u64;
            return Ok(Step::Item(Item::Transaction(commands)));
        } else if name.eq_ignore_ascii_case(b"discard") {
            if file.multi.take().is_none() {
                return Err(format(file, record_start, "DISCARD without MULTI".to_string()));
            }
        } else {
            let command = Command { db: file.db, args };
            if let Some(queued) = file.multi.as_mut() {
                queued.push(command);
                return Ok(Step::Nothing);
            }
            self.report.commands += 1;
            file.valid_up_to = file.offset;
            return Ok(Step::Item(Item::Command(command)));
        }
        if file.multi.is_none() {
            file.valid_up_to = file.offset;
        }
        Ok(Step::Nothing)
    }

    /// The open file ends inside a command or transaction: refuse, or cut the tail off.
    fn truncate_tail(&mut self) -> Result<(), LoadError> {
        let file = self.current.take().expect("a file is open");
        if !file.is_last {
            return Err(LoadError::TruncatedNotLast { path: file.path, offset: file.valid_up_to });
        }
        if !self.policy.load_truncated {
            return Err(LoadError::Truncated { path: file.path, offset: file.valid_up_to, file_len: file.file_len });
        }
        drop(file.reader);
        let io_error = |source: io::Error| LoadError::Io { path: file.path.clone(), source };
        let handle = OpenOptions::new().write(true).open(&file.path).map_err(io_error)?;
        handle.set_len(file.valid_up_to).map_err(io_error)?;
        handle.sync_all().map_err(io_error)?;
        self.report.bytes += file.valid_up_to;
        self.report.truncated = Some(Truncation { path: file.path.clone(), offset: file.valid_up_to, trimmed_bytes: file.file_len - file.valid_up_to });
        Ok(())
    }
}

impl Iterator for Loader {
    type Item = Result<Item, LoadError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_item().transpose()
    }
}

/// Reads a line of at most [`LINE_LEN_MAX`] bytes into `line`, `\n` included, and advances
/// the file's offset past it.
fn read_line(file: &mut OpenFile, line: &mut Vec<u8>) -> Result<Line, LoadError> {
    line.clear();
    loop {
        let available = match file.reader.fill_buf() {
            Ok(available) => available,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(LoadError::Io { path: file.path.clone(), source }),
        };
        if available.is_empty() {
            return Ok(if line.is_empty() { Line::Eof } else { Line::Partial });
        }
        let window = &available[..available.len().min(LINE_LEN_MAX - line.len())];
        let (taken, complete) = match window.iter().position(|&b| b == b'\n') {
            Some(newline) => (newline + 1, true),
            None => (window.len(), false),
        };
        line.extend_from_slice(&window[..taken]);
        file.reader.consume(taken);
        file.offset += taken as u64;
        if complete {
            return Ok(Line::Complete);
        }
        if line.len() == LINE_LEN_MAX {
            return Ok(Line::TooLong);
        }
    }
}

/// Reads until `buffer` is full or the end of the file; returns how many bytes were read.
fn read_up_to(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// Parses `<digits>\r\n` (the rest of a `*`, `$` or `#TS:` line).
fn parse_number(rest: &[u8]) -> Option<u64> {
    parse_digits(rest.strip_suffix(b"\r\n")?)
}

/// Parses plain decimal digits: no sign, no space, at least one digit, no overflow.
fn parse_digits(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_plain_digits_followed_by_crlf() {
        assert_eq!(parse_number(b"12\r\n"), Some(12));
        assert_eq!(parse_number(b"0\r\n"), Some(0));
        assert_eq!(parse_number(b"12\n"), None);
        assert_eq!(parse_number(b"-1\r\n"), None);
        assert_eq!(parse_number(b"1x\r\n"), None);
        assert_eq!(parse_number(b"\r\n"), None);
        assert_eq!(parse_number(b"99999999999999999999\r\n"), None);
    }
}
