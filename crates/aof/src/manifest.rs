//! The AOF manifest: which base, incremental and history files make up the append-only
//! file, in which order.
//!
//! The text format is Redis 7.0's (aof.c): one line per file,
//! `file <name> seq <n> type <b|h|i>\n`, keys in any order and matched without regard to
//! case, unknown key/value pairs ignored (Redis reserves them for later versions), lines
//! starting with `#` skipped. Values are split as `sdssplitargs` splits them, so a name with
//! spaces or special bytes is written quoted (`sdscatrepr`) and read back unquoted.
//!
//! Parsing keeps Redis's validation and error messages (`aofLoadManifestFromFile`): an empty
//! file, a blank line, a line over 1024 bytes or not ending in `\n`, fewer than six or an odd
//! number of tokens, a missing name, seq or type, a name that is a path, a second base, an
//! incremental seq not greater than the previous one, and an unknown type are all refused.
//! A manifest without a base is valid, as in Redis (the data then lives in incremental files
//! only).
//!
//! Invariants of a [`Manifest`] (checked by [`Manifest::check_invariants`]): the base, if
//! any, has type `b`; incremental files have type `i` and strictly increasing seqs; history
//! files have type `h`.

use std::fmt;

/// Redis's `AOF_MANIFEST_LINE_MAX_LEN`: a manifest line, `\n` included, is at most this long.
const LINE_LEN_MAX: usize = 1024;

/// The role of a file in the manifest (the `type` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    /// `b`: the base file, a snapshot written by a rewrite (RDB or AOF format).
    Base,
    /// `h`: a file replaced by a rewrite, waiting to be deleted; never loaded.
    History,
    /// `i`: an incremental file, the command log written after the base.
    Incr,
}

impl FileType {
    /// The manifest's one-character spelling of the type.
    pub fn as_char(self) -> char {
        match self {
            FileType::Base => 'b',
            FileType::History => 'h',
            FileType::Incr => 'i',
        }
    }
}

/// One file named by the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// The file's name inside the AOF directory (never a path).
    pub name: String,
    /// The sequence number (Redis's `long long`).
    pub seq: i64,
    /// Its role.
    pub file_type: FileType,
}

/// Why a manifest was refused. The messages are Redis 7.0's, with the 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The manifest has no line at all.
    #[error("Found an empty AOF manifest")]
    Empty,
    /// A line is longer than 1024 bytes, or the last line has no `\n`.
    #[error("The AOF manifest file contains too long line (line {line})")]
    LineTooLong { line: usize },
    /// A blank line, unbalanced quotes, too few or an odd number of tokens, or a missing
    /// name, seq or type.
    #[error("Invalid AOF manifest file format (line {line})")]
    InvalidFormat { line: usize },
    /// The file name contains `/` or `\`.
    #[error("File can't be a path, just a filename (line {line})")]
    NotBaseName { line: usize },
    /// A second line with type `b`.
    #[error("Found duplicate base file information (line {line})")]
    DuplicateBase { line: usize },
    /// An incremental file whose seq is not greater than the previous incremental file's.
    #[error("Found a non-monotonic sequence number (line {line})")]
    NonMonotonicSeq { line: usize },
    /// A type other than `b`, `h` or `i`.
    #[error("Unknown AOF file type (line {line})")]
    UnknownType { line: usize },
    /// The file name is not UTF-8 (Redis would accept it; we keep names as `String`).
    #[error("AOF manifest file name is not UTF-8 (line {line})")]
    NameNotUtf8 { line: usize },
}

impl ManifestError {
    /// The 1-based line the error is on (Redis counts every line read, comments included),
    /// `None` for an empty manifest.
    pub fn line(&self) -> Option<usize> {
        match *self {
            ManifestError::Empty => None,
            ManifestError::LineTooLong { line }
            | ManifestError::InvalidFormat { line }
            | ManifestError::NotBaseName { line }
            | ManifestError::DuplicateBase { line }
            | ManifestError::NonMonotonicSeq { line }
            | ManifestError::UnknownType { line }
            | ManifestError::NameNotUtf8 { line } => Some(line),
        }
    }
}

/// The parsed manifest: Redis's `aofManifest`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// The base file, if any.
    pub base: Option<FileInfo>,
    /// Incremental files, in load order (strictly increasing seqs).
    pub incrs: Vec<FileInfo>,
    /// Files replaced by rewrites, to be deleted.
    pub history: Vec<FileInfo>,
    /// The highest base seq handed out (the next base gets this plus one).
    pub cur_base_seq: i64,
    /// The highest incremental seq handed out (the next incremental file gets this plus one).
    pub cur_incr_seq: i64,
}

impl Manifest {
    /// Parses a manifest's bytes as Redis's `aofLoadManifestFromFile` does.
    pub fn parse(text: &[u8]) -> Result<Manifest, ManifestError> {
        let mut manifest = Manifest::default();
        let mut line_number = 0;
        let mut incr_seq_max: i64 = 0;
        let mut rest = text;
        while !rest.is_empty() {
            // Redis reads with `fgets` into a buffer of 1025 bytes: a chunk ends after `\n`
            // or after 1024 bytes.
            let chunk_len = match rest.iter().position(|&b| b == b'\n') {
                Some(newline) if newline < LINE_LEN_MAX => newline + 1,
                _ => rest.len().min(LINE_LEN_MAX),
            };
            let (chunk, tail) = rest.split_at(chunk_len);
            rest = tail;
            line_number += 1;
            if chunk[0] == b'#' {
                continue;
            }
            if chunk.last() != Some(&b'\n') {
                return Err(ManifestError::LineTooLong { line: line_number });
            }
            let line = trim(chunk);
            if line.is_empty() {
                return Err(ManifestError::InvalidFormat { line: line_number });
            }
            let tokens = split_args(line).ok_or(ManifestError::InvalidFormat { line: line_number })?;
            // Redis accepts more than six tokens for forward compatibility.
            if tokens.len() < 6 || tokens.len() % 2 != 0 {
                return Err(ManifestError::InvalidFormat { line: line_number });
            }
            let mut name: Option<Vec<u8>> = None;
            let mut seq: i64 = 0;
            let mut type_byte: u8 = 0;
            for pair in tokens.chunks_exact(2) {
                let (key, value) = (&pair[0], &pair[1]);
                if key.eq_ignore_ascii_case(b"file") {
                    if value.contains(&b'/') || value.contains(&b'\\') {
                        return Err(ManifestError::NotBaseName { line: line_number });
                    }
                    name = Some(value.clone());
                } else if key.eq_ignore_ascii_case(b"seq") {
                    seq = atoll(value);
                } else if key.eq_ignore_ascii_case(b"type") {
                    type_byte = value.first().copied().unwrap_or(0);
                }
            }
            // Redis checks `!file_name || !file_seq || !file_type`: a seq of 0 counts as
            // missing, and so does an empty type.
            let (Some(name), true, true) = (name, seq != 0, type_byte != 0) else {
                return Err(ManifestError::InvalidFormat { line: line_number });
            };
            let name = String::from_utf8(name).map_err(|_| ManifestError::NameNotUtf8 { line: line_number })?;
            match type_byte {
                b'b' => {
                    if manifest.base.is_some() {
                        return Err(ManifestError::DuplicateBase { line: line_number });
                    }
                    manifest.base = Some(FileInfo { name, seq, file_type: FileType::Base });
                    manifest.cur_base_seq = seq;
                }
                b'h' => manifest.history.push(FileInfo { name, seq, file_type: FileType::History }),
                b'i' => {
                    if seq <= incr_seq_max {
                        return Err(ManifestError::NonMonotonicSeq { line: line_number });
                    }
                    incr_seq_max = seq;
                    manifest.incrs.push(FileInfo { name, seq, file_type: FileType::Incr });
                    manifest.cur_incr_seq = seq;
                }
                _ => return Err(ManifestError::UnknownType { line: line_number }),
            }
        }
        if line_number == 0 {
            return Err(ManifestError::Empty);
        }
        Ok(manifest)
    }

    /// The files to load, in order: the base (if any), then the incremental files.
    pub fn files_to_load(&self) -> impl Iterator<Item = &FileInfo> {
        self.base.iter().chain(self.incrs.iter())
    }

    /// Whether the manifest names no file to load (Redis's `AOF_NOT_EXIST` case).
    pub fn is_empty(&self) -> bool {
        self.base.is_none() && self.incrs.is_empty()
    }

    /// Adds a new incremental file at the end and returns its name,
    /// `<appendfilename>.<seq>.incr.aof` (Redis's `getNewIncrAofName`). The caller creates
    /// the file, then persists the manifest.
    pub fn add_incr(&mut self, appendfilename: &str) -> String {
        self.cur_incr_seq += 1;
        let name = format!("{appendfilename}.{}.incr.aof", self.cur_incr_seq);
        self.incrs.push(FileInfo { name: name.clone(), seq: self.cur_incr_seq, file_type: FileType::Incr });
        self.debug_check();
        name
    }

    /// Installs a new base, `<appendfilename>.<seq>.base.rdb` or `.base.aof`, and moves the
    /// old base (if any) to the front of the history; returns the new name (Redis's
    /// `getNewBaseFileNameAndMarkPreAsHistory`).
    pub fn set_new_base(&mut self, appendfilename: &str, rdb: bool) -> String {
        if let Some(mut old) = self.base.take() {
            old.file_type = FileType::History;
            self.history.insert(0, old);
        }
        self.cur_base_seq += 1;
        let suffix = if rdb { "rdb" } else { "aof" };
        let name = format!("{appendfilename}.{}.base.{suffix}", self.cur_base_seq);
        self.base = Some(FileInfo { name: name.clone(), seq: self.cur_base_seq, file_type: FileType::Base });
        self.debug_check();
        name
    }

    /// Moves the incremental files covered by a finished rewrite to the history (Redis's
    /// `markRewrittenIncrAofAsHistory`). With `keep_current` (AOF is on, so the last file is
    /// the one being appended to, opened when the rewrite started), the last incremental file
    /// stays; otherwise all of them move. Each moved file goes to the front of the history,
    /// newest first, as in Redis.
    pub fn mark_rewritten_incrs_as_history(&mut self, keep_current: bool) {
        let keep = usize::from(keep_current).min(self.incrs.len());
        let moved_len = self.incrs.len() - keep;
        let moved: Vec<FileInfo> = self.incrs.drain(..moved_len).collect();
        for mut info in moved {
            info.file_type = FileType::History;
            self.history.insert(0, info);
        }
        self.debug_check();
    }

    /// The manifest's side of a finished rewrite, as Redis's `backgroundRewriteDoneHandler`
    /// does it: the new base replaces the old one and the incremental files written before
    /// the rewrite started become history. Returns the new base's name, which the caller
    /// gives to the rewritten file (rename) before persisting the manifest.
    ///
    /// The full sequence for the caller: at the start of the rewrite, [`Manifest::add_incr`]
    /// (a fresh incremental file for the writes that follow) and persist; when the rewritten
    /// base is complete and fsynced, this function, the rename, persist, then delete the
    /// history files.
    pub fn finish_rewrite(&mut self, appendfilename: &str, rdb: bool, keep_current: bool) -> String {
        let name = self.set_new_base(appendfilename, rdb);
        self.mark_rewritten_incrs_as_history(keep_current);
        name
    }

    /// Checks the invariants listed in the module docs; panics with the one that fails.
    pub fn check_invariants(&self) {
        if let Some(base) = &self.base {
            assert_eq!(base.file_type, FileType::Base, "the base file must have type b");
        }
        for info in &self.history {
            assert_eq!(info.file_type, FileType::History, "history files must have type h");
        }
        for info in &self.incrs {
            assert_eq!(info.file_type, FileType::Incr, "incremental files must have type i");
        }
        for pair in self.incrs.windows(2) {
            assert!(pair[0].seq < pair[1].seq, "incremental seqs must increase: {} then {}", pair[0].seq, pair[1].seq);
        }
    }

    fn debug_check(&self) {
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
    }
}

/// Writes the manifest as Redis's `getAofManifestAsString`: the base, then history files,
/// then incremental files, one `file <name> seq <n> type <t>\n` line each.
impl fmt::Display for Manifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for info in self.base.iter().chain(self.history.iter()).chain(self.incrs.iter()) {
            let name: std::borrow::Cow<'_, str> = if needs_repr(info.name.as_bytes()) { repr(info.name.as_bytes()).into() } else { info.name.as_str().into() };
            writeln!(f, "file {name} seq {} type {}", info.seq, info.file_type.as_char())?;
        }
        Ok(())
    }
}

/// C's `isspace` in the C locale.
fn is_c_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// `sdstrim(line, " \t\r\n")`.
fn trim(line: &[u8]) -> &[u8] {
    let is_trimmed = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let start = line.iter().position(|b| !is_trimmed(b)).unwrap_or(line.len());
    let end = line.iter().rposition(|b| !is_trimmed(b)).map_or(start, |i| i + 1);
    &line[start..end]
}

/// C's `atoll`: optional leading white space, an optional sign, then digits up to the first
/// non-digit; 0 when there are none. Overflow saturates (glibc's `strtoll` behaviour).
fn atoll(text: &[u8]) -> i64 {
    let mut i = 0;
    while i < text.len() && is_c_space(text[i]) {
        i += 1;
    }
    let negative = match text.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let mut value: i64 = 0;
    while let Some(digit) = text.get(i).filter(|b| b.is_ascii_digit()) {
        let digit = i64::from(digit - b'0');
        value = if negative { value.saturating_mul(10).saturating_sub(digit) } else { value.saturating_mul(10).saturating_add(digit) };
        i += 1;
    }
    value
}

/// Redis's `sdssplitargs` (`shoal_resp::split_args`), on the line up to a NUL byte, as a C
/// string ends there. `None` for unbalanced quotes or a closing quote followed by something
/// other than white space.
pub(crate) fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let line = match line.iter().position(|&b| b == 0) {
        Some(nul) => &line[..nul],
        None => line,
    };
    shoal_resp::split_args(line)
}

/// Redis's `sdsneedsrepr`: whether a name must be quoted to survive `sdssplitargs`.
fn needs_repr(name: &[u8]) -> bool {
    name.iter().any(|&b| matches!(b, b'\\' | b'"' | b'\n' | b'\r' | b'\t' | 0x07 | 0x08) || !is_c_print(b) || is_c_space(b))
}

/// C's `isprint` in the C locale.
fn is_c_print(byte: u8) -> bool {
    (0x20..0x7f).contains(&byte)
}

/// Redis's `sdscatrepr`: a double-quoted, escaped form of the name.
fn repr(name: &[u8]) -> String {
    shoal_resp::quote(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(text.as_bytes())
    }

    #[test]
    fn redis_default_manifest_parses_and_formats_back() {
        let text = "file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n";
        let manifest = parse_str(text).unwrap();
        assert_eq!(manifest.base.as_ref().unwrap().name, "appendonly.aof.1.base.rdb");
        assert_eq!(manifest.incrs.len(), 1);
        assert_eq!(manifest.cur_base_seq, 1);
        assert_eq!(manifest.cur_incr_seq, 1);
        assert_eq!(manifest.to_string(), text);
        manifest.check_invariants();
    }

    #[test]
    fn keys_in_any_order_with_unknown_keys_and_comments_parse() {
        let text = "# comment\ntype i seq 3 file a.3.incr.aof\nFILE a.1.base.aof SEQ 1 TYPE b newkey newvalue\nfile a.2.incr.aof seq 2 type h\n";
        let manifest = parse_str(text).unwrap();
        assert_eq!(manifest.base.as_ref().unwrap().name, "a.1.base.aof");
        assert_eq!(manifest.incrs[0].seq, 3);
        assert_eq!(manifest.history[0].name, "a.2.incr.aof");
        assert_eq!(manifest.to_string(), "file a.1.base.aof seq 1 type b\nfile a.2.incr.aof seq 2 type h\nfile a.3.incr.aof seq 3 type i\n");
    }

    #[test]
    fn names_with_spaces_and_special_bytes_round_trip_quoted() {
        let mut manifest = Manifest::default();
        let name = manifest.add_incr("my append\"only\t\x01.aof");
        let text = manifest.to_string();
        assert_eq!(text, "file \"my append\\\"only\\t\\x01.aof.1.incr.aof\" seq 1 type i\n");
        let back = parse_str(&text).unwrap();
        assert_eq!(back.incrs[0].name, name);
        assert_eq!(back, manifest);
    }

    #[test]
    fn single_quoted_names_parse() {
        let manifest = parse_str("file 'a b\\'c' seq 1 type i\n").unwrap();
        assert_eq!(manifest.incrs[0].name, "a b'c");
    }

    #[test]
    fn a_manifest_without_base_is_valid_as_in_redis() {
        let manifest = parse_str("file x.1.incr.aof seq 1 type i\n").unwrap();
        assert!(manifest.base.is_none());
        assert!(!manifest.is_empty());
    }

    #[test]
    fn malformed_manifests_are_refused_with_redis_errors() {
        let cases: &[(&str, ManifestError)] = &[
            ("", ManifestError::Empty),
            ("file a seq 1 type i", ManifestError::LineTooLong { line: 1 }),
            ("file a seq 1 type i\n\n", ManifestError::InvalidFormat { line: 2 }),
            ("file a seq 1 type i\n   \n", ManifestError::InvalidFormat { line: 2 }),
            ("file a seq 1\n", ManifestError::InvalidFormat { line: 1 }),
            ("file a seq 1 type i x\n", ManifestError::InvalidFormat { line: 1 }),
            ("file a seq 1 typo i\n", ManifestError::InvalidFormat { line: 1 }),
            ("file a seq 0 type i\n", ManifestError::InvalidFormat { line: 1 }),
            ("file a seq x type i\n", ManifestError::InvalidFormat { line: 1 }),
            ("file \"a seq 1 type i\n", ManifestError::InvalidFormat { line: 1 }),
            ("file \"a\"b seq 1 type i\n", ManifestError::InvalidFormat { line: 1 }),
            ("file d/a seq 1 type i\n", ManifestError::NotBaseName { line: 1 }),
            ("file a seq 1 type b\nfile b seq 2 type b\n", ManifestError::DuplicateBase { line: 2 }),
            ("file a seq 2 type i\nfile b seq 2 type i\n", ManifestError::NonMonotonicSeq { line: 2 }),
            ("file a seq 2 type i\nfile b seq 1 type i\n", ManifestError::NonMonotonicSeq { line: 2 }),
            ("file a seq 1 type x\n", ManifestError::UnknownType { line: 1 }),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_str(text).as_ref(), Err(expected), "manifest {text:?}");
        }
    }

    #[test]
    fn unquoted_backslash_name_is_not_a_base_name() {
        assert_eq!(parse_str("file d\\a seq 1 type i\n"), Err(ManifestError::NotBaseName { line: 1 }));
    }

    #[test]
    fn a_line_of_1024_bytes_is_accepted_and_1025_refused() {
        let make = |len: usize| {
            let fixed = "file  seq 1 type i\n".len();
            format!("file {} seq 1 type i\n", "n".repeat(len - fixed))
        };
        assert!(parse_str(&make(1024)).is_ok());
        assert_eq!(parse_str(&make(1025)), Err(ManifestError::LineTooLong { line: 1 }));
    }

    #[test]
    fn a_manifest_of_comments_only_is_empty_but_valid() {
        let manifest = parse_str("# nothing here\n").unwrap();
        assert!(manifest.is_empty());
    }

    #[test]
    fn discontinuous_incr_seqs_are_accepted() {
        let manifest = parse_str("file a.1.incr.aof seq 1 type i\nfile a.5.incr.aof seq 5 type i\n").unwrap();
        assert_eq!(manifest.cur_incr_seq, 5);
    }

    #[test]
    fn rewrite_moves_old_base_and_covered_incrs_to_history() {
        let mut manifest = parse_str("file a.1.base.rdb seq 1 type b\nfile a.1.incr.aof seq 1 type i\nfile a.2.incr.aof seq 2 type i\n").unwrap();
        // The rewrite starts: a fresh incremental file takes the new writes.
        assert_eq!(manifest.add_incr("a"), "a.3.incr.aof");
        assert_eq!(manifest.finish_rewrite("a", false, true), "a.2.base.aof");
        manifest.check_invariants();
        assert_eq!(
            manifest.to_string(),
            "file a.2.base.aof seq 2 type b\nfile a.2.incr.aof seq 2 type h\nfile a.1.incr.aof seq 1 type h\nfile a.1.base.rdb seq 1 type h\nfile a.3.incr.aof seq 3 type i\n"
        );
    }

    #[test]
    fn rewrite_with_aof_off_moves_every_incr_to_history() {
        let mut manifest = parse_str("file a.1.base.rdb seq 1 type b\nfile a.1.incr.aof seq 1 type i\n").unwrap();
        assert_eq!(manifest.finish_rewrite("a", true, false), "a.2.base.rdb");
        assert!(manifest.incrs.is_empty());
        assert_eq!(manifest.history.len(), 2);
    }

    #[test]
    fn split_args_matches_sdssplitargs() {
        let split = |s: &str| split_args(s.as_bytes());
        assert_eq!(split("  a  b\t"), Some(vec![b"a".to_vec(), b"b".to_vec()]));
        assert_eq!(split("a\"b c\"d"), None);
        assert_eq!(split("a\"b c\" d"), Some(vec![b"ab c".to_vec(), b"d".to_vec()]));
        assert_eq!(split("\"\\x41\\n\\q\""), Some(vec![b"A\nq".to_vec()]));
        assert_eq!(split("''"), Some(vec![Vec::new()]));
        assert_eq!(split("'a"), None);
    }

    #[test]
    fn atoll_follows_c() {
        assert_eq!(atoll(b"  -12x"), -12);
        assert_eq!(atoll(b"+7"), 7);
        assert_eq!(atoll(b"x"), 0);
        assert_eq!(atoll(b"99999999999999999999999"), i64::MAX);
    }
}
