//! The loader against files written byte by byte: truncation at every offset, corruption,
//! limits, RDB preambles, annotations and transactions.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{cmd, command, TempDir};
use shoal_aof::{encode_command, encode_select, encode_timestamp, Item, LoadError, LoadLimits, LoadPolicy, LoadReport, Loader, Truncation};

fn policy(load_truncated: bool) -> LoadPolicy {
    LoadPolicy { load_truncated, ..LoadPolicy::default() }
}

/// Loads every item, or the first error; answers `Item::Rdb` with `rdb_len`.
fn load_all(paths: Vec<PathBuf>, policy: LoadPolicy, rdb_len: u64) -> Result<(Vec<Item>, LoadReport), LoadError> {
    let mut loader = Loader::new(paths, policy);
    let mut items = Vec::new();
    while let Some(item) = loader.next_item()? {
        if matches!(item, Item::Rdb { .. }) {
            loader.rdb_consumed(rdb_len)?;
        }
        items.push(item);
    }
    Ok((items, loader.into_report()))
}

fn write(path: &Path, bytes: &[u8]) -> PathBuf {
    fs::write(path, bytes).unwrap();
    path.to_path_buf()
}

/// One record of a test log: its bytes, the item it hands out once complete (a transaction
/// is handed out by its EXEC), and whether a `MULTI` is open after it.
struct Record {
    bytes: Vec<u8>,
    item: Option<Item>,
    in_multi: bool,
}

fn record(encode: impl FnOnce(&mut Vec<u8>), item: Option<Item>, in_multi: bool) -> Record {
    let mut bytes = Vec::new();
    encode(&mut bytes);
    Record { bytes, item, in_multi }
}

/// A small log with every kind of record: SELECT, plain commands, an annotation, a
/// transaction with a SELECT inside, and a comment.
fn sample_log() -> Vec<Record> {
    vec![
        record(|out| encode_select(0, out), None, false),
        record(|out| encode_command(&["SET", "a", "1"], out), Some(command(0, &["SET", "a", "1"])), false),
        record(|out| encode_timestamp(1_700_000_000, out), Some(Item::Timestamp(1_700_000_000)), false),
        record(|out| encode_command(&["MULTI"], out), None, true),
        record(|out| encode_command(&["SET", "b", "two"], out), None, true),
        record(|out| encode_select(1, out), None, true),
        record(|out| encode_command(&["INCR", "c"], out), None, true),
        record(|out| encode_command(&["EXEC"], out), Some(Item::Transaction(vec![cmd(0, &["SET", "b", "two"]), cmd(1, &["INCR", "c"])])), false),
        record(|out| out.extend_from_slice(b"# a comment\r\n"), None, false),
        record(|out| encode_command(&["DEL", "a", ""], out), Some(command(1, &["DEL", "a", ""])), false),
    ]
}

#[test]
fn truncation_at_every_offset_of_the_last_file_trims_to_the_last_complete_record() {
    let records = sample_log();
    let full: Vec<u8> = records.iter().flat_map(|r| r.bytes.clone()).collect();
    // A complete first file, so the truncated one is the last of two.
    let mut base = Vec::new();
    encode_command(&["SET", "base", "x"], &mut base);
    let dir = TempDir::new("every-offset");
    for cut in 0..=full.len() {
        // The expected valid prefix: the end of the last record after which no MULTI is open.
        let mut valid = 0;
        let mut expected = vec![command(0, &["SET", "base", "x"])];
        let mut end = 0;
        for r in &records {
            end += r.bytes.len();
            if end > cut {
                break;
            }
            if !r.in_multi {
                valid = end;
            }
        }
        let mut end = 0;
        for r in &records {
            end += r.bytes.len();
            if end <= valid {
                expected.extend(r.item.clone());
            }
        }
        let base_path = write(&dir.path().join("base.aof"), &base);
        let incr_path = write(&dir.path().join("incr.aof"), &full[..cut]);

        let refused = load_all(vec![base_path.clone(), incr_path.clone()], policy(false), 0);
        if valid == cut {
            let (items, report) = refused.unwrap();
            assert_eq!(items, expected, "cut at {cut}, nothing to trim");
            assert_eq!(report.truncated, None);
        } else {
            match refused {
                Err(LoadError::Truncated { path, offset, file_len }) => {
                    assert_eq!((path, offset, file_len), (incr_path.clone(), valid as u64, cut as u64), "cut at {cut}");
                }
                other => panic!("cut at {cut}: expected a refusal, got {other:?}"),
            }
            assert_eq!(fs::metadata(&incr_path).unwrap().len(), cut as u64, "a refusal leaves the file alone");
        }

        let (items, report) = load_all(vec![base_path, incr_path.clone()], policy(true), 0).unwrap();
        assert_eq!(items, expected, "cut at {cut}");
        let expected_truncation = (valid != cut).then(|| Truncation { path: incr_path.clone(), offset: valid as u64, trimmed_bytes: (cut - valid) as u64 });
        assert_eq!(report.truncated, expected_truncation, "cut at {cut}");
        assert_eq!(report.bytes, (base.len() + valid) as u64, "cut at {cut}");
        assert_eq!(fs::read(&incr_path).unwrap(), &full[..valid], "cut at {cut}: the file on disk ends at the boundary");
        // Loading the trimmed file again finds nothing to trim.
        let (again, report) = load_all(vec![dir.path().join("base.aof"), incr_path], policy(true), 0).unwrap();
        assert_eq!(again, expected, "cut at {cut}, second load");
        assert_eq!(report.truncated, None);
    }
}

#[test]
fn a_truncated_file_that_is_not_the_last_is_refused_and_left_alone() {
    let dir = TempDir::new("not-last");
    let mut bytes = Vec::new();
    encode_command(&["SET", "a", "1"], &mut bytes);
    encode_command(&["SET", "b", "2"], &mut bytes);
    let cut = bytes.len() - 3;
    let first = write(&dir.path().join("1.aof"), &bytes[..cut]);
    let second = write(&dir.path().join("2.aof"), &bytes);
    match load_all(vec![first.clone(), second], policy(true), 0) {
        Err(LoadError::TruncatedNotLast { path, offset }) => assert_eq!((path, offset), (first.clone(), 27)),
        other => panic!("expected TruncatedNotLast, got {other:?}"),
    }
    assert_eq!(fs::metadata(&first).unwrap().len(), cut as u64);
}

#[test]
fn an_open_multi_at_the_end_of_a_file_that_is_not_the_last_is_refused() {
    let dir = TempDir::new("multi-not-last");
    let mut bytes = Vec::new();
    encode_command(&["MULTI"], &mut bytes);
    encode_command(&["SET", "a", "1"], &mut bytes);
    let first = write(&dir.path().join("1.aof"), &bytes);
    let second = write(&dir.path().join("2.aof"), b"");
    assert!(matches!(load_all(vec![first, second], policy(true), 0), Err(LoadError::TruncatedNotLast { offset: 0, .. })));
}

/// Corrupts an otherwise valid three-command log and expects a format error at `offset`.
fn assert_format_error(corrupt: impl Fn(&mut Vec<u8>), offset: u64) {
    let dir = TempDir::new("corrupt");
    let mut bytes = Vec::new();
    encode_command(&["SET", "a", "1"], &mut bytes);
    encode_command(&["SET", "b", "2"], &mut bytes);
    encode_command(&["SET", "c", "3"], &mut bytes);
    corrupt(&mut bytes);
    let path = write(&dir.path().join("incr.aof"), &bytes);
    for load_truncated in [true, false] {
        match load_all(vec![path.clone()], policy(load_truncated), 0) {
            Err(LoadError::Format { path: error_path, offset: error_offset, reason }) => {
                assert_eq!((&error_path, error_offset), (&path, offset), "reason: {reason}");
            }
            other => panic!("expected a format error at {offset}, got {other:?}"),
        }
    }
    assert_eq!(fs::read(&path).unwrap(), bytes, "a format error never truncates");
}

#[test]
fn corruption_in_the_middle_is_refused_with_file_and_offset() {
    // The second command starts at 27: `*3\r\n` at 27, `$3\r\n` at 31, `SET\r\n` at 35,
    // `$1\r\n` at 40, `b\r\n` at 44.
    assert_format_error(|b| b[27] = b'x', 27);
    assert_format_error(|b| b[31] = b'%', 31);
    assert_format_error(|b| b[32] = b'z', 31);
    assert_format_error(|b| b[28] = b'0', 27);
    // Bulk data followed by something other than CRLF.
    assert_format_error(|b| b[45] = b'X', 45);
    // A line feed without carriage return.
    assert_format_error(|b| b[29] = b' ', 27);
    // A negative length.
    assert_format_error(|b| b.splice(32..33, *b"-1").for_each(drop), 31);
}

#[test]
fn exec_or_discard_without_multi_and_nested_multi_are_refused() {
    for log in [vec![vec!["EXEC"]], vec![vec!["DISCARD"]], vec![vec!["MULTI"], vec!["MULTI"]], vec![vec!["SELECT", "x"]], vec![vec!["SELECT"]]] {
        let dir = TempDir::new("bad-multi");
        let mut bytes = Vec::new();
        for command in &log {
            encode_command(command, &mut bytes);
        }
        let path = write(&dir.path().join("incr.aof"), &bytes);
        assert!(matches!(load_all(vec![path], policy(true), 0), Err(LoadError::Format { .. })), "{log:?}");
    }
}

#[test]
fn discard_drops_the_open_transaction() {
    let dir = TempDir::new("discard");
    let mut bytes = Vec::new();
    for command in [&["MULTI"][..], &["SET", "a", "1"], &["DISCARD"], &["SET", "b", "2"]] {
        encode_command(command, &mut bytes);
    }
    let path = write(&dir.path().join("incr.aof"), &bytes);
    let (items, report) = load_all(vec![path], policy(false), 0).unwrap();
    assert_eq!(items, vec![command(0, &["SET", "b", "2"])]);
    assert_eq!(report.commands, 1);
}

#[test]
fn counts_and_lengths_over_the_limits_are_refused_without_allocating_them() {
    let dir = TempDir::new("limits");
    let tight = LoadPolicy { load_truncated: true, limits: LoadLimits { args_max: 3, bulk_len_max: 4 } };
    let cases: &[(&[u8], LoadPolicy)] = &[
        (b"*4\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n", tight),
        (b"*1\r\n$5\r\nhello\r\n", tight),
        (b"*1\r\n$536870913\r\n", policy(true)),
        (b"*2147483648\r\n", policy(true)),
        (b"*0\r\n", policy(true)),
        (b"*99999999999999999999999\r\n", policy(true)),
    ];
    for (bytes, policy) in cases {
        let path = write(&dir.path().join("incr.aof"), bytes);
        assert!(matches!(load_all(vec![path], *policy, 0), Err(LoadError::Format { offset: 0 | 4, .. })), "{:?}", String::from_utf8_lossy(bytes));
    }
    // Within the limits, a huge announced count or length that is not there is a truncated
    // tail, trimmed without allocating what was announced.
    for bytes in [&b"*2147483647\r\n$1\r\na\r\n"[..], b"*1\r\n$536870912\r\nabc"] {
        let path = write(&dir.path().join("incr.aof"), bytes);
        let (items, report) = load_all(vec![path.clone()], policy(true), 0).unwrap();
        assert!(items.is_empty());
        assert_eq!(report.truncated.unwrap().trimmed_bytes, bytes.len() as u64);
        assert_eq!(fs::metadata(&path).unwrap().len(), 0);
    }
}

#[test]
fn a_line_over_1024_bytes_is_a_format_error() {
    let dir = TempDir::new("long-line");
    let mut bytes = b"#".repeat(1100);
    bytes.extend_from_slice(b"\r\n");
    let path = write(&dir.path().join("incr.aof"), &bytes);
    assert!(matches!(load_all(vec![path], policy(true), 0), Err(LoadError::Format { offset: 0, .. })));
}

#[test]
fn arguments_larger_than_the_read_buffer_load_whole() {
    let dir = TempDir::new("big-bulk");
    let big: String = (0..300_000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    let mut bytes = Vec::new();
    encode_command(&["SET", "big", &big], &mut bytes);
    encode_command(&["SET", "small", "1"], &mut bytes);
    let path = write(&dir.path().join("incr.aof"), &bytes);
    let (items, report) = load_all(vec![path], policy(false), 0).unwrap();
    assert_eq!(items, vec![command(0, &["SET", "big", &big]), command(0, &["SET", "small", "1"])]);
    assert_eq!(report.bytes, bytes.len() as u64);
}

#[test]
fn timestamps_are_handed_out_and_other_annotations_skipped() {
    let dir = TempDir::new("timestamps");
    let mut bytes = Vec::new();
    encode_timestamp(100, &mut bytes);
    encode_command(&["SET", "a", "1"], &mut bytes);
    bytes.extend_from_slice(b"#TS:notanumber\r\n#something else\r\n");
    encode_timestamp(200, &mut bytes);
    encode_command(&["MULTI"], &mut bytes);
    encode_timestamp(201, &mut bytes);
    encode_command(&["SET", "b", "1"], &mut bytes);
    encode_command(&["EXEC"], &mut bytes);
    let path = write(&dir.path().join("incr.aof"), &bytes);
    let (items, report) = load_all(vec![path], policy(false), 0).unwrap();
    assert_eq!(items, vec![Item::Timestamp(100), command(0, &["SET", "a", "1"]), Item::Timestamp(200), Item::Transaction(vec![cmd(0, &["SET", "b", "1"])])]);
    assert_eq!(report.timestamps, 3);
}

#[test]
fn every_file_starts_in_database_zero() {
    let dir = TempDir::new("db-per-file");
    let mut first = Vec::new();
    encode_select(4, &mut first);
    encode_command(&["SET", "a", "1"], &mut first);
    let mut second = Vec::new();
    encode_command(&["SET", "b", "1"], &mut second);
    let paths = vec![write(&dir.path().join("1.aof"), &first), write(&dir.path().join("2.aof"), &second)];
    let (items, _) = load_all(paths, policy(false), 0).unwrap();
    assert_eq!(items, vec![command(4, &["SET", "a", "1"]), command(0, &["SET", "b", "1"])]);
}

#[test]
fn empty_files_load_and_missing_files_are_refused() {
    let dir = TempDir::new("empty-missing");
    let empty = write(&dir.path().join("empty.aof"), b"");
    let (items, report) = load_all(vec![empty.clone(), empty.clone()], policy(false), 0).unwrap();
    assert!(items.is_empty());
    assert_eq!(report.files, 2);
    let missing = dir.path().join("missing.aof");
    assert!(matches!(load_all(vec![empty, missing.clone()], policy(true), 0), Err(LoadError::Missing { path }) if path == missing));
}

/// A stand-in for an RDB: the loader never looks past the signature.
const FAKE_RDB: &[u8] = b"REDIS0010\xfa\x05hello\xff01234567";

#[test]
fn an_rdb_preamble_is_handed_to_the_caller_and_resp_resumes_after_it() {
    let dir = TempDir::new("preamble");
    let mut bytes = FAKE_RDB.to_vec();
    encode_command(&["SET", "a", "1"], &mut bytes);
    let path = write(&dir.path().join("base.aof"), &bytes);
    let (items, report) = load_all(vec![path.clone()], policy(false), FAKE_RDB.len() as u64).unwrap();
    assert_eq!(items, vec![Item::Rdb { path: path.clone(), offset: 0 }, command(0, &["SET", "a", "1"])]);
    assert_eq!(report.bytes, bytes.len() as u64);

    // A truncated command after the preamble is cut off, the preamble kept.
    let path = write(&dir.path().join("base.aof"), &bytes[..bytes.len() - 1]);
    let (items, report) = load_all(vec![path.clone()], policy(true), FAKE_RDB.len() as u64).unwrap();
    assert_eq!(items, vec![Item::Rdb { path: path.clone(), offset: 0 }]);
    assert_eq!(report.truncated.unwrap().offset, FAKE_RDB.len() as u64);
    assert_eq!(fs::read(&path).unwrap(), FAKE_RDB);
}

#[test]
fn an_rdb_not_consumed_before_the_next_item_is_an_error() {
    let dir = TempDir::new("rdb-misuse");
    let path = write(&dir.path().join("base.rdb"), FAKE_RDB);
    let mut loader = Loader::new(vec![path.clone()], policy(false));
    assert_eq!(loader.next_item().unwrap(), Some(Item::Rdb { path, offset: 0 }));
    assert!(matches!(loader.next_item(), Err(LoadError::RdbProtocol { .. })));
    assert!(matches!(loader.next_item(), Err(LoadError::AlreadyFailed)));

    let mut loader = Loader::new(vec![dir.path().join("base.rdb")], policy(false));
    loader.next_item().unwrap();
    assert!(matches!(loader.rdb_consumed(FAKE_RDB.len() as u64 + 1), Err(LoadError::RdbProtocol { .. })));
}

#[test]
fn a_whole_rdb_file_then_incr_files_load_in_order() {
    let dir = TempDir::new("rdb-base");
    let base = write(&dir.path().join("a.1.base.rdb"), FAKE_RDB);
    let mut incr = Vec::new();
    encode_command(&["SET", "after", "1"], &mut incr);
    let incr = write(&dir.path().join("a.1.incr.aof"), &incr);
    let (items, _) = load_all(vec![base.clone(), incr], policy(false), FAKE_RDB.len() as u64).unwrap();
    assert_eq!(items, vec![Item::Rdb { path: base, offset: 0 }, command(0, &["SET", "after", "1"])]);
}

#[test]
fn the_loader_is_an_iterator() {
    let dir = TempDir::new("iterator");
    let mut bytes = Vec::new();
    encode_command(&["PING"], &mut bytes);
    let path = write(&dir.path().join("incr.aof"), &bytes);
    let items: Result<Vec<Item>, LoadError> = Loader::new(vec![path], policy(false)).collect();
    assert_eq!(items.unwrap(), vec![command(0, &["PING"])]);
}

#[test]
fn encoded_commands_load_back_exactly() {
    // A small deterministic generator (xorshift), so failures reproduce.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |bound: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % bound
    };
    let mut encoder = shoal_aof::CommandEncoder::new();
    let mut bytes = Vec::new();
    let mut expected = Vec::new();
    for _ in 0..500 {
        let db = next(16) as usize;
        let argc = 1 + next(5) as usize;
        let args: Vec<Vec<u8>> = (0..argc).map(|_| (0..next(40)).map(|_| next(256) as u8).collect()).collect();
        // Keep generated names clear of the words the loader interprets.
        let mut args = args;
        args[0].insert(0, b'X');
        encoder.encode(db, &args, &mut bytes);
        expected.push(Item::Command(shoal_aof::Command { db, args: args.into_iter().map(bytes::Bytes::from).collect() }));
    }
    let dir = TempDir::new("round-trip");
    let path = write(&dir.path().join("incr.aof"), &bytes);
    let (items, report) = load_all(vec![path], policy(false), 0).unwrap();
    assert_eq!(items, expected);
    assert_eq!(report.commands, 500);
    assert_eq!(report.bytes, bytes.len() as u64);
}

#[test]
fn corrupted_logs_never_panic_and_only_shrink_on_a_reported_trim() {
    let records = sample_log();
    let full: Vec<u8> = records.iter().flat_map(|r| r.bytes.clone()).collect();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |bound: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % bound
    };
    let dir = TempDir::new("mutations");
    for _ in 0..2000 {
        let mut bytes = full.clone();
        for _ in 0..1 + next(3) {
            let at = next(bytes.len() as u64) as usize;
            bytes[at] = match next(4) {
                0 => b'*',
                1 => b'$',
                2 => b'\n',
                _ => next(256) as u8,
            };
        }
        let cut = bytes.len() - next(8) as usize;
        bytes.truncate(cut);
        let path = write(&dir.path().join("incr.aof"), &bytes);
        match load_all(vec![path.clone()], policy(true), 0) {
            Ok((_, report)) => {
                let len = fs::metadata(&path).unwrap().len();
                match report.truncated {
                    Some(truncation) => {
                        assert_eq!(truncation.offset + truncation.trimmed_bytes, bytes.len() as u64);
                        assert_eq!(len, truncation.offset, "the file ends where the trim says");
                    }
                    None => assert_eq!(len, bytes.len() as u64, "no trim reported, so the file is untouched"),
                }
            }
            Err(LoadError::Format { offset, .. }) => {
                assert!(offset < bytes.len() as u64);
                assert_eq!(fs::read(&path).unwrap(), bytes, "a refused file is untouched");
            }
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
}
