//! The command log's encoding, byte for byte as Redis 7.0 writes it.
//!
//! A command is a RESP array of bulk strings (`catAppendOnlyGenericCommand`):
//! `*<argc>\r\n` then `$<len>\r\n<arg>\r\n` per argument. A database switch is a `SELECT`
//! command written before the first command for another database (`feedAppendOnlyFile`);
//! a new incremental file starts with no database selected, so its first command is
//! preceded by a `SELECT`. With `aof-timestamp-enabled`, `#TS:<unix-seconds>\r\n` lines are
//! written when the second changes.
//!
//! This module does not rewrite commands (Redis turns `EXPIRE` into `PEXPIREAT`, `SET EX`
//! into `SET PXAT`, and so on before logging); that is the caller's job.

/// Appends one command in Redis's AOF encoding.
pub fn encode_command<A: AsRef<[u8]>>(args: &[A], out: &mut Vec<u8>) {
    debug_assert!(!args.is_empty(), "a command has at least its name");
    let mut buffer = itoa::Buffer::new();
    out.push(b'*');
    out.extend_from_slice(buffer.format(args.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for arg in args {
        let arg = arg.as_ref();
        out.push(b'$');
        out.extend_from_slice(buffer.format(arg.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends `SELECT <db>` in Redis's AOF encoding.
pub fn encode_select(db: usize, out: &mut Vec<u8>) {
    let mut buffer = itoa::Buffer::new();
    encode_command(&[b"SELECT".as_slice(), buffer.format(db).as_bytes()], out);
}

/// Appends a `#TS:<unix-seconds>\r\n` annotation (Redis's `genAofTimestampAnnotationIfNeeded`).
pub fn encode_timestamp(unix_secs: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(b"#TS:");
    out.extend_from_slice(itoa::Buffer::new().format(unix_secs).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Encodes a stream of commands for one file, writing `SELECT` only when the database
/// changes (Redis's `server.aof_selected_db`). Start a new encoder for each new file.
#[derive(Debug, Default, Clone)]
pub struct CommandEncoder {
    selected_db: Option<usize>,
}

impl CommandEncoder {
    /// An encoder with no database selected, as at the start of a file.
    pub fn new() -> CommandEncoder {
        CommandEncoder::default()
    }

    /// Appends the command for database `db`, preceded by `SELECT` if `db` is not the one
    /// selected.
    pub fn encode<A: AsRef<[u8]>>(&mut self, db: usize, args: &[A], out: &mut Vec<u8>) {
        if self.selected_db != Some(db) {
            encode_select(db, out);
            self.selected_db = Some(db);
        }
        encode_command(args, out);
    }

    /// Forgets the selected database, so the next command writes `SELECT` (Redis does this
    /// when it opens a new incremental file).
    pub fn reset(&mut self) {
        self.selected_db = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_is_an_array_of_bulk_strings() {
        let mut out = Vec::new();
        encode_command(&["SET", "k", ""], &mut out);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
    }

    #[test]
    fn select_and_timestamp_match_redis() {
        let mut out = Vec::new();
        encode_select(12, &mut out);
        encode_timestamp(1_700_000_000, &mut out);
        assert_eq!(out, b"*2\r\n$6\r\nSELECT\r\n$2\r\n12\r\n#TS:1700000000\r\n");
    }

    #[test]
    fn encoder_selects_only_when_the_database_changes() {
        let mut encoder = CommandEncoder::new();
        let mut out = Vec::new();
        encoder.encode(0, &["PING"], &mut out);
        encoder.encode(0, &["PING"], &mut out);
        encoder.encode(3, &["PING"], &mut out);
        assert_eq!(out, b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n*1\r\n$4\r\nPING\r\n");
        encoder.reset();
        out.clear();
        encoder.encode(3, &["PING"], &mut out);
        assert!(out.starts_with(b"*2\r\n$6\r\nSELECT"), "a reset encoder selects again");
    }
}
