//! Loading a configuration: the file (with its includes), then the
//! command-line overrides, line by line as Redis's
//! `loadServerConfigFromString` does, stopping at the first bad line with an
//! error formatted like Redis's fatal config error.
//!
//! Differences from Redis, on purpose:
//! - errors name the file (or the command line), and command-line "lines" are
//!   numbered from 1 (Redis numbers them after the file's lines);
//! - include cycles and includes nested deeper than `INCLUDE_DEPTH_MAX` are
//!   errors (Redis recurses until it crashes);
//! - `dir` is not entered during the load (a library must not chdir), so an
//!   `include` after `dir` is still relative to the process's directory;
//! - reading the configuration from standard input (`-`) is not supported.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::args::split_args;
use crate::config::Config;
use crate::table::{self, strerror, ApplyContext, TABLE};

/// How many files may be open at once through nested `include`s.
pub const INCLUDE_DEPTH_MAX: usize = 16;

/// Where a configuration line came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOrigin {
    /// A file, as named in the command line or in the `include`.
    File(PathBuf),
    /// The `--name value` arguments after the file name.
    CommandLine,
}

impl fmt::Display for ConfigOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigOrigin::File(path) => {
                write!(f, "the configuration file '{}'", path.display())
            }
            ConfigOrigin::CommandLine => f.write_str("the command line"),
        }
    }
}

/// Why a configuration could not be loaded. The `Display` text is what the
/// server prints before exiting (Redis prints a blank line before a
/// `Directive` error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A file (the main one or an included one) could not be read.
    #[error("Fatal error, can't open config file '{}': {reason}", path.display())]
    Open { path: PathBuf, reason: String },
    /// A line was rejected: an unknown directive, a wrong number of
    /// arguments, a bad value, unbalanced quotes, or a bad include.
    #[error(
        "*** FATAL CONFIG FILE ERROR (Shoal {version}) ***\nReading {origin}, at line {line_number}\n>>> '{line}'\n{reason}",
        version = env!("CARGO_PKG_VERSION")
    )]
    Directive {
        origin: ConfigOrigin,
        /// 1-based.
        line_number: usize,
        /// The line, trimmed.
        line: String,
        /// Redis's reason text, e.g. "argument couldn't be parsed into an
        /// integer".
        reason: String,
    },
}

/// Loads `file` (if any), then the command-line `overrides`, on top of the
/// defaults.
///
/// `overrides` is the argv tail after the file name, as redis-server takes
/// it: `--port 7000 --save "" --bind 127.0.0.1 ::1`. Each `--name` starts a
/// directive and the arguments after it are its arguments; `--name value` in
/// one argument works too; right after a bare `--name`, the next argument is
/// its value even if it starts with `--`; a `--save` with no value means
/// `save ""`.
pub fn load(file: Option<&Path>, overrides: &[String]) -> Result<Config, ConfigError> {
    let mut config = Config::default();
    let mut context = ApplyContext { loading: true, ..Default::default() };
    let mut open_files = Vec::new();
    if let Some(file) = file {
        load_file(&mut config, &mut context, file, &mut open_files)?;
        config.source_path = Some(std::path::absolute(file).unwrap_or_else(|_| file.to_owned()));
    }
    for (index, line) in command_line_lines(overrides).iter().enumerate() {
        apply_line(&mut config, &mut context, line, &ConfigOrigin::CommandLine, index + 1, &mut open_files)?;
    }
    for (index, error) in std::mem::take(&mut context.deferred) {
        if let table::Kind::Bool { get, .. } = TABLE[index].kind {
            if get(&config) {
                return Err(error);
            }
        }
    }
    Ok(config)
}

/// Reads one file and applies its lines. `open_files` holds the canonical
/// paths of the files being read, outermost first.
fn load_file(config: &mut Config, context: &mut ApplyContext, path: &Path, open_files: &mut Vec<PathBuf>) -> Result<(), ConfigError> {
    let open_error = |error: std::io::Error| ConfigError::Open { path: path.to_owned(), reason: strerror(&error) };
    let content = std::fs::read(path).map_err(open_error)?;
    let canonical = std::fs::canonicalize(path).map_err(open_error)?;
    open_files.push(canonical);
    let origin = ConfigOrigin::File(path.to_owned());
    for (index, line) in split_lines(&content).into_iter().enumerate() {
        apply_line(config, context, line, &origin, index + 1, open_files)?;
    }
    open_files.pop();
    Ok(())
}

/// Splits on `\n` like Redis's `sdssplitlen`: no lines for an empty text,
/// and a final empty line after a trailing newline.
pub(crate) fn split_lines(content: &[u8]) -> Vec<&[u8]> {
    if content.is_empty() {
        return Vec::new();
    }
    content.split(|&b| b == b'\n').collect()
}

/// Trims `" \t\r\n"` from both ends, like Redis's `sdstrim`.
pub(crate) fn trim_line(line: &[u8]) -> &[u8] {
    let is_trimmed = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let start = line.iter().position(|b| !is_trimmed(b)).unwrap_or(line.len());
    let end = line.iter().rposition(|b| !is_trimmed(b)).map_or(start, |i| i + 1);
    &line[start..end]
}

fn apply_line(
    config: &mut Config,
    context: &mut ApplyContext,
    line: &[u8],
    origin: &ConfigOrigin,
    line_number: usize,
    open_files: &mut Vec<PathBuf>,
) -> Result<(), ConfigError> {
    let line = trim_line(line);
    if line.is_empty() || line[0] == b'#' {
        return Ok(());
    }
    let error = |reason: String| ConfigError::Directive { origin: origin.clone(), line_number, line: String::from_utf8_lossy(line).into_owned(), reason };
    let args = split_args(line).map_err(|_| error("Unbalanced quotes in configuration line".to_owned()))?;
    let Some(name) = args.first() else {
        return Ok(());
    };
    if let Some((index, _)) = table::lookup(name) {
        let directive = &TABLE[index];
        if !directive.is_multi_arg() && args.len() != 2 {
            return Err(error("wrong number of arguments".to_owned()));
        }
        // `save "900 1 300 10"`: a multi-argument directive given as one
        // argument is split again (an unsplittable one counts as none).
        let values =
            if directive.is_multi_arg() && args.len() == 2 && !args[1].is_empty() { split_args(&args[1]).unwrap_or_default() } else { args[1..].to_vec() };
        table::apply(config, directive, &values, context).map_err(error)?;
        // A refused `yes` fails the load only if nothing later says `no` (Debian's
        // redis.conf says `daemonize yes`, its service `--daemonize no`).
        if let Some(reason) = context.refused_yes.take() {
            context.deferred.push((index, error(reason)));
        }
        return Ok(());
    }
    if name.eq_ignore_ascii_case(b"include") && args.len() == 2 {
        let path = path_from_bytes(&args[1]);
        if open_files.len() >= INCLUDE_DEPTH_MAX {
            return Err(error(format!("include nested too deep (more than {INCLUDE_DEPTH_MAX} files)")));
        }
        if let Ok(canonical) = std::fs::canonicalize(&path) {
            if open_files.contains(&canonical) {
                return Err(error(format!("include cycle: '{}' is already being read", path.display())));
            }
        }
        return load_file(config, context, &path, open_files);
    }
    Err(error("Bad directive or wrong number of arguments".to_owned()))
}

fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
}

/// Turns redis-server's argv tail into configuration lines, as its `main`
/// does: option names are copied raw, arguments quoted.
fn command_line_lines(overrides: &[String]) -> Vec<Vec<u8>> {
    let mut lines: Vec<Vec<u8>> = Vec::new();
    // False right after a bare `--name`: its value comes next, whatever it
    // looks like.
    let mut name_has_value = true;
    for (j, arg) in overrides.iter().enumerate() {
        let is_last = j + 1 == overrides.len();
        if name_has_value && arg.starts_with("--") {
            let mut line = arg.as_bytes()[2..].to_vec();
            line.push(b' ');
            let words = split_args(arg.as_bytes()).map_or(0, |words| words.len());
            if words == 1 {
                name_has_value = false;
                let next_is_option = overrides.get(j + 1).is_some_and(|next| next.starts_with("--"));
                // `--save` with nothing after it means `save ""`.
                if arg.eq_ignore_ascii_case("--save") && (next_is_option || is_last) {
                    line.extend_from_slice(b"\"\"");
                    name_has_value = true;
                }
            } else {
                name_has_value = true;
            }
            lines.push(line);
        } else {
            if lines.is_empty() {
                lines.push(Vec::new());
            }
            let line = lines.last_mut().expect("a line was just ensured");
            line.extend_from_slice(crate::args::repr(arg.as_bytes()).as_bytes());
            line.push(b' ');
            name_has_value = true;
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TempDir;
    use crate::values::{LogLevel, SavePoint};

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|&arg| arg.to_owned()).collect()
    }

    /// Loads `text` as a configuration file, with `overrides` after it.
    fn load_text(text: &str, overrides: &[&str]) -> (TempDir, Result<Config, ConfigError>) {
        let dir = TempDir::new();
        let path = dir.write("shoal.conf", text);
        let result = load(Some(&path), &strings(overrides));
        (dir, result)
    }

    /// Checks that `text` fails at `line_number` of the file with `reason`.
    fn check_file_error(text: &str, line_number: usize, line: &str, reason: &str) {
        let (dir, result) = load_text(text, &[]);
        let expected =
            ConfigError::Directive { origin: ConfigOrigin::File(dir.path().join("shoal.conf")), line_number, line: line.to_owned(), reason: reason.to_owned() };
        assert_eq!(result, Err(expected), "loading {text:?}");
    }

    fn check_command_line_error(overrides: &[&str], line_number: usize, line: &str, reason: &str) {
        let expected = ConfigError::Directive { origin: ConfigOrigin::CommandLine, line_number, line: line.to_owned(), reason: reason.to_owned() };
        assert_eq!(load(None, &strings(overrides)), Err(expected), "overrides {overrides:?}");
    }

    #[test]
    fn an_empty_load_is_the_defaults() {
        assert_eq!(load(None, &[]), Ok(Config::default()));
    }

    #[test]
    fn comments_blank_lines_and_indentation_are_ignored() {
        let (_dir, config) = load_text("# a comment\n\n   port 7000  \r\n\t# another\nhz 20", &[]);
        let config = config.expect("valid file");
        assert_eq!(config.port, 7000);
        assert_eq!(config.hz, 20);
    }

    #[test]
    fn directive_names_are_case_insensitive_and_aliases_work() {
        let (_dir, config) = load_text("PORT 7000\nLua-Time-Limit 100\nhash-max-ziplist-entries 7\n", &[]);
        let config = config.expect("valid file");
        assert_eq!(config.port, 7000);
        assert_eq!(config.busy_reply_threshold, 100);
        assert_eq!(config.hash_max_listpack_entries, 7);
    }

    #[test]
    fn the_last_occurrence_of_a_directive_wins() {
        let (_dir, config) = load_text("port 7000\nport 7001\n", &["--port", "7002"]);
        assert_eq!(config.expect("valid").port, 7002);
    }

    #[test]
    fn quoted_arguments_are_unescaped() {
        let (_dir, config) = load_text("requirepass \"a b\\\"c\\x41\"\nlogfile 'it\\'s.log'\nloglevel \"warning\"\n", &[]);
        let config = config.expect("valid file");
        assert_eq!(config.requirepass, "a b\"cA");
        assert_eq!(config.logfile, "it's.log");
        assert_eq!(config.loglevel, LogLevel::Warning);
    }

    #[test]
    fn memory_units_are_accepted_where_redis_allows_them() {
        let (_dir, config) = load_text("maxmemory 1gb\nproto-max-bulk-len 2mb\nclient-query-buffer-limit 1G\nhash-max-listpack-value 1k\n", &[]);
        let config = config.expect("valid file");
        assert_eq!(config.maxmemory, 1 << 30);
        assert_eq!(config.proto_max_bulk_len, 2 << 20);
        assert_eq!(config.client_query_buffer_limit, 1_000_000_000);
        assert_eq!(config.hash_max_listpack_value, 1000);
        check_file_error("port 1k\n", 1, "port 1k", "argument couldn't be parsed into an integer");
    }

    #[test]
    fn hz_is_clamped_like_redis() {
        let (_dir, config) = load_text("hz 0\n", &[]);
        assert_eq!(config.expect("valid").hz, 1);
        let (_dir, config) = load_text("hz 1000\n", &[]);
        assert_eq!(config.expect("valid").hz, 500);
    }

    #[test]
    fn save_lines_accumulate_and_replace_the_defaults() {
        let (_dir, config) = load_text("save 900 1\nsave 300 10\n", &[]);
        assert_eq!(config.expect("valid").save, vec![SavePoint { seconds: 900, changes: 1 }, SavePoint { seconds: 300, changes: 10 }]);
        let (_dir, config) = load_text("save \"900 1 300 10\"\nsave 60 5\n", &[]);
        assert_eq!(config.expect("valid").save.len(), 3);
        let (_dir, config) = load_text("save 900 1\nsave \"\"\nsave 60 5\n", &[]);
        assert_eq!(config.expect("valid").save, vec![SavePoint { seconds: 60, changes: 5 }]);
    }

    #[test]
    fn command_line_save_adds_to_the_file_s_save_lines_like_redis() {
        let (_dir, config) = load_text("save 900 1\n", &["--save", "60", "5"]);
        assert_eq!(config.expect("valid").save.len(), 2);
        let (_dir, config) = load_text("save 900 1\n", &["--save", ""]);
        assert_eq!(config.expect("valid").save, vec![]);
    }

    #[test]
    fn a_bare_save_on_the_command_line_means_no_snapshots() {
        let config = load(None, &strings(&["--save"])).expect("valid");
        assert_eq!(config.save, vec![]);
        let config = load(None, &strings(&["--save", "--port", "7000"])).expect("valid");
        assert_eq!(config.save, vec![]);
        assert_eq!(config.port, 7000);
    }

    #[test]
    fn command_line_overrides_take_several_arguments() {
        let config = load(None, &strings(&["--port", "7000", "--bind", "127.0.0.1", "::1", "--save", "", "--threads", "4"])).expect("valid");
        assert_eq!(config.port, 7000);
        assert_eq!(config.bind, vec!["127.0.0.1", "::1"]);
        assert_eq!(config.save, vec![]);
        assert_eq!(config.threads, 4);
    }

    #[test]
    fn a_command_line_name_and_value_may_share_one_argument() {
        let config = load(None, &strings(&["--port 7000", "--requirepass", "--secret"])).expect("valid");
        assert_eq!(config.port, 7000);
        assert_eq!(config.requirepass, "--secret");
    }

    #[test]
    fn bind_takes_a_list_or_nothing() {
        let (_dir, config) = load_text("bind 127.0.0.1 ::1\n", &[]);
        assert_eq!(config.expect("valid").bind, vec!["127.0.0.1", "::1"]);
        let (_dir, config) = load_text("bind \"127.0.0.1 ::1\"\n", &[]);
        assert_eq!(config.expect("valid").bind, vec!["127.0.0.1", "::1"]);
        let (_dir, config) = load_text("bind\n", &[]);
        assert_eq!(config.expect("valid").bind, Vec::<String>::new());
    }

    #[test]
    fn client_output_buffer_limits_are_per_class() {
        let (_dir, config) = load_text("client-output-buffer-limit normal 1mb 512kb 10\nclient-output-buffer-limit slave 1 2 3\n", &[]);
        let limits = config.expect("valid").client_output_buffer_limit;
        assert_eq!(limits.normal.hard_bytes, 1 << 20);
        assert_eq!(limits.normal.soft_bytes, 512 << 10);
        assert_eq!(limits.normal.soft_seconds, 10);
        assert_eq!(limits.replica.hard_bytes, 1);
        assert_eq!(limits.pubsub, Config::default().client_output_buffer_limit.pubsub);
    }

    #[test]
    fn an_empty_client_output_buffer_limit_changes_nothing_but_an_empty_string_is_an_error() {
        let (_dir, config) = load_text("client-output-buffer-limit\n", &[]);
        assert_eq!(config.expect("valid").client_output_buffer_limit, Config::default().client_output_buffer_limit);
        check_file_error("client-output-buffer-limit \"\"\n", 1, "client-output-buffer-limit \"\"", "Wrong number of arguments in buffer limit configuration.");
    }

    #[test]
    fn each_error_class_names_the_line_and_redis_s_reason() {
        let cases: &[(&str, usize, &str, &str)] = &[
            ("# c\nport \"abc\"\n", 2, "port \"abc\"", "argument couldn't be parsed into an integer"),
            ("port 99999\n", 1, "port 99999", "argument must be between 0 and 65535 inclusive"),
            ("portx 1\n", 1, "portx 1", "Bad directive or wrong number of arguments"),
            ("port 1 2\n", 1, "port 1 2", "wrong number of arguments"),
            ("port\n", 1, "port", "wrong number of arguments"),
            ("protected-mode maybe\n", 1, "protected-mode maybe", "argument must be 'yes' or 'no'"),
            ("loglevel loud\n", 1, "loglevel loud", "argument(s) must be one of the following: debug, verbose, notice, warning, nothing"),
            ("maxmemory 1x\n", 1, "maxmemory 1x", "argument must be a memory value"),
            ("save 1\n", 1, "save 1", "Invalid save parameters"),
            ("save a b\n", 1, "save a b", "Invalid save parameters"),
            (
                "client-output-buffer-limit foo 1 1 1\n",
                1,
                "client-output-buffer-limit foo 1 1 1",
                "Invalid client class specified in buffer limit configuration.",
            ),
            ("client-output-buffer-limit normal 1 1\n", 1, "client-output-buffer-limit normal 1 1", "Wrong number of arguments in buffer limit configuration."),
            (
                "client-output-buffer-limit normal 1x 1 1\n",
                1,
                "client-output-buffer-limit normal 1x 1 1",
                "Error in hard, soft or soft_seconds setting in buffer limit configuration.",
            ),
            ("notify-keyspace-events Q\n", 1, "notify-keyspace-events Q", "Invalid event class character. Use 'Ag$lshzxeKEtmdn'."),
            ("notify-keyspace-events a b\n", 1, "notify-keyspace-events a b", "wrong number of arguments"),
            ("port \"abc\n", 1, "port \"abc", "Unbalanced quotes in configuration line"),
            ("port \"a\"b\n", 1, "port \"a\"b", "Unbalanced quotes in configuration line"),
            ("dbfilename a/b\n", 1, "dbfilename a/b", "dbfilename can't be a path, just a filename"),
            ("appenddirname a\\b\n", 1, "appenddirname a\\b", "appenddirname can't be a path, just a dirname"),
            ("bind 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17\n", 1, "bind 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17", "Too many bind addresses specified."),
            ("dir /nonexistent-shoal-dir\n", 1, "dir /nonexistent-shoal-dir", "No such file or directory"),
            ("dir /etc/passwd\n", 1, "dir /etc/passwd", "Not a directory"),
            ("include\n", 1, "include", "Bad directive or wrong number of arguments"),
            ("include a b\n", 1, "include a b", "Bad directive or wrong number of arguments"),
            ("io-threads 0\n", 1, "io-threads 0", "argument must be between 1 and 128 inclusive"),
            ("daemonize yes\n", 1, "daemonize yes", "Shoal does not daemonize: run it in the foreground under a supervisor, with 'daemonize no'"),
            ("activedefrag yes\n", 1, "activedefrag yes", "Active defragmentation cannot be enabled: Shoal does not implement it"),
        ];
        for &(text, line_number, line, reason) in cases {
            check_file_error(text, line_number, line, reason);
        }
    }

    #[test]
    fn a_refused_yes_fails_the_load_only_if_nothing_later_says_no() {
        let (dir, result) = load_text("daemonize yes\nport 7000\n", &["--daemonize", "no"]);
        let config = result.expect("a later no wins");
        assert!(!config.daemonize);
        assert_eq!(config.port, 7000);
        drop(dir);
        let (_dir, result) = load_text("daemonize no\n", &["--daemonize", "yes"]);
        assert!(matches!(result, Err(ConfigError::Directive { line_number: 1, .. })), "{result:?}");
    }

    #[test]
    fn command_line_errors_count_directives_as_lines() {
        check_command_line_error(&["--port", "abc"], 1, "port \"abc\"", "argument couldn't be parsed into an integer");
        check_command_line_error(&["--port", "1", "--foo", "2"], 2, "foo \"2\"", "Bad directive or wrong number of arguments");
        check_command_line_error(&["--port", "1", "2"], 1, "port \"1\" \"2\"", "wrong number of arguments");
        check_command_line_error(&["--port"], 1, "port", "wrong number of arguments");
        check_command_line_error(&["7000"], 1, "\"7000\"", "Bad directive or wrong number of arguments");
    }

    #[test]
    fn errors_print_like_redis_with_the_file_name() {
        let (dir, result) = load_text("# c\nport \"abc\"\n", &[]);
        let text = result.expect_err("bad port").to_string();
        let expected = format!(
            "*** FATAL CONFIG FILE ERROR (Shoal {}) ***\nReading the configuration file '{}', at line 2\n>>> 'port \"abc\"'\nargument couldn't be parsed into an integer",
            env!("CARGO_PKG_VERSION"),
            dir.path().join("shoal.conf").display()
        );
        assert_eq!(text, expected);
        let missing = load(Some(Path::new("/nonexistent/shoal.conf")), &[]).expect_err("missing file");
        assert_eq!(missing.to_string(), "Fatal error, can't open config file '/nonexistent/shoal.conf': No such file or directory");
    }

    #[test]
    fn includes_are_read_in_place_and_report_their_own_lines() {
        let dir = TempDir::new();
        let inner = dir.write("inner.conf", "hz 5\nport 7001\n");
        let outer = dir.write("outer.conf", &format!("port 7000\ninclude {}\nmaxclients 7\n", inner.display()));
        let config = load(Some(&outer), &[]).expect("valid");
        assert_eq!((config.hz, config.port, config.maxclients), (5, 7001, 7));
        assert_eq!(config.source_path(), Some(outer.as_path()));

        let bad = dir.write("bad.conf", "hz 5\nport x\n");
        let outer = dir.write("outer2.conf", &format!("# top\ninclude {}\n", bad.display()));
        let error = load(Some(&outer), &[]).expect_err("bad include");
        assert_eq!(
            error,
            ConfigError::Directive {
                origin: ConfigOrigin::File(bad),
                line_number: 2,
                line: "port x".to_owned(),
                reason: "argument couldn't be parsed into an integer".to_owned(),
            }
        );
    }

    #[test]
    fn a_missing_include_is_an_open_error() {
        let (_dir, result) = load_text("include /nonexistent/inc.conf\n", &[]);
        assert_eq!(result, Err(ConfigError::Open { path: PathBuf::from("/nonexistent/inc.conf"), reason: "No such file or directory".to_owned() }));
    }

    #[test]
    fn include_cycles_are_errors_instead_of_crashes() {
        let dir = TempDir::new();
        let a = dir.path().join("a.conf");
        let b = dir.write("b.conf", &format!("include {}\n", a.display()));
        dir.write("a.conf", &format!("port 7000\ninclude {}\n", b.display()));
        let error = load(Some(&a), &[]).expect_err("cycle");
        assert_eq!(
            error,
            ConfigError::Directive {
                origin: ConfigOrigin::File(b),
                line_number: 1,
                line: format!("include {}", a.display()),
                reason: format!("include cycle: '{}' is already being read", a.display()),
            }
        );
    }

    #[test]
    fn includes_nested_too_deep_are_errors() {
        let dir = TempDir::new();
        let depth = INCLUDE_DEPTH_MAX + 1;
        for level in 0..depth {
            let next = dir.path().join(format!("{}.conf", level + 1));
            dir.write(&format!("{level}.conf"), &format!("include {}\n", next.display()));
        }
        dir.write(&format!("{depth}.conf"), "port 7000\n");
        let error = load(Some(&dir.path().join("0.conf")), &[]).expect_err("too deep");
        let ConfigError::Directive { reason, .. } = error else {
            panic!("expected a directive error, got {error:?}");
        };
        assert_eq!(reason, "include nested too deep (more than 16 files)");
    }

    #[test]
    fn lines_split_like_sdssplitlen() {
        assert_eq!(split_lines(b""), Vec::<&[u8]>::new());
        assert_eq!(split_lines(b"a\n"), vec![&b"a"[..], b""]);
        assert_eq!(split_lines(b"a\nb"), vec![&b"a"[..], b"b"]);
    }
}
