//! CONFIG GET and CONFIG SET on a loaded configuration, with Redis 7's
//! matching rules, all-or-nothing multi-argument SET, and its exact error
//! texts.
//!
//! This module changes the `Config` value only. Side effects (rebinding
//! listeners, chdir into `dir`, resizing structures) are the server's job: `set`
//! returns the names whose value changed so that it can apply them.

use crate::config::Config;
use crate::table::{self, ApplyContext, Mutability, TABLE};
use crate::values::ProtectedConfigs;

impl Config {
    /// CONFIG GET: every directive whose name matches any of `patterns`, as
    /// (name, value) pairs, each directive once.
    ///
    /// As in Redis 7: a pattern without `*`, `?` or `[` is an exact,
    /// case-insensitive lookup and the reply uses the name as the client
    /// spelled it; a glob pattern matches names case-insensitively and lists
    /// aliases (`hash-max-ziplist-entries`) as entries of their own. Redis
    /// replies in hash order; we reply in table order.
    pub fn get(&self, patterns: &[&[u8]]) -> Vec<(String, String)> {
        let mut reply: Vec<(String, String)> = Vec::new();
        let already_listed = |reply: &[(String, String)], name: &[u8]| reply.iter().any(|(listed, _)| listed.as_bytes().eq_ignore_ascii_case(name));
        for &pattern in patterns {
            if !pattern.iter().any(|b| matches!(b, b'*' | b'?' | b'[')) {
                if already_listed(&reply, pattern) {
                    continue;
                }
                if let Some((index, _)) = table::lookup(pattern) {
                    reply.push((String::from_utf8_lossy(pattern).into_owned(), table::format(self, &TABLE[index])));
                }
                continue;
            }
            for (index, name) in table::all_names() {
                if already_listed(&reply, name.as_bytes()) {
                    continue;
                }
                if shoal_glob::matches_nocase(pattern, name.as_bytes()) {
                    reply.push((name.to_owned(), table::format(self, &TABLE[index])));
                }
            }
        }
        reply
    }

    /// CONFIG SET name value [name value ...] from a client that is not
    /// local (see `set_from_client`).
    pub fn set(&mut self, pairs: &[(&[u8], &[u8])]) -> Result<Vec<&'static str>, String> {
        self.set_from_client(pairs, false)
    }

    /// CONFIG SET with Redis 7 semantics: every pair is applied or none is.
    ///
    /// `local_client` says whether the client came over loopback or a Unix
    /// socket, for `enable-protected-configs local`. Returns the canonical
    /// names of the directives whose value changed, in argument order. The
    /// error is the whole reply text, `ERR ...`, as Redis words it. An odd
    /// number of arguments is the caller's to refuse (Redis: `ERR syntax
    /// error`).
    pub fn set_from_client(&mut self, pairs: &[(&[u8], &[u8])], local_client: bool) -> Result<Vec<&'static str>, String> {
        // First pass, as Redis: names, mutability and duplicates; the first
        // problem found wins. An alias is a directive of its own here, so
        // `lua-time-limit` and `busy-reply-threshold` together are no
        // duplicate (the later one wins).
        let mut targets: Vec<(usize, &'static str)> = Vec::with_capacity(pairs.len());
        for &(name, _) in pairs {
            let shown = String::from_utf8_lossy(name);
            let Some((index, matched)) = table::lookup(name) else {
                return Err(format!("ERR Unknown option or number of arguments for CONFIG SET - '{shown}'"));
            };
            let reason = match TABLE[index].mutability {
                Mutability::Immutable => Some("can't set immutable config"),
                Mutability::Protected if !self.protected_configs_allowed(local_client) => Some("can't set protected config"),
                _ if targets.contains(&(index, matched)) => Some("duplicate parameter"),
                _ => None,
            };
            if let Some(reason) = reason {
                return Err(format!("ERR CONFIG SET failed (possibly related to argument '{shown}') - {reason}"));
            }
            targets.push((index, matched));
        }

        // Second pass: apply everything to a copy, so that a failure leaves
        // `self` untouched.
        let mut updated = self.clone();
        let mut context = ApplyContext::default();
        for (&(index, matched), &(_, value)) in targets.iter().zip(pairs) {
            let directive = &TABLE[index];
            let args = if directive.is_multi_arg() { split_on_spaces(value) } else { vec![value.to_vec()] };
            table::apply(&mut updated, directive, &args, &mut context)
                .map_err(|reason| format!("ERR CONFIG SET failed (possibly related to argument '{matched}') - {reason}"))?;
        }

        let mut changed: Vec<&'static str> = Vec::new();
        for &(index, _) in &targets {
            let directive = &TABLE[index];
            if !changed.contains(&directive.name) && table::format(self, directive) != table::format(&updated, directive) {
                changed.push(directive.name);
            }
        }
        *self = updated;
        Ok(changed)
    }

    fn protected_configs_allowed(&self, local_client: bool) -> bool {
        match self.enable_protected_configs {
            ProtectedConfigs::Yes => true,
            ProtectedConfigs::Local => local_client,
            ProtectedConfigs::No => false,
        }
    }
}

/// Redis splits a multi-argument CONFIG SET value on single spaces
/// (`sdssplitlen`), so `""` is no argument and two spaces make an empty one.
fn split_on_spaces(value: &[u8]) -> Vec<Vec<u8>> {
    if value.is_empty() {
        return Vec::new();
    }
    value.split(|&b| b == b' ').map(<[u8]>::to_vec).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::{LogLevel, SavePoint};

    fn get(config: &Config, patterns: &[&str]) -> Vec<(String, String)> {
        let patterns: Vec<&[u8]> = patterns.iter().map(|p| p.as_bytes()).collect();
        config.get(&patterns)
    }

    fn pairs(list: &[(String, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(name, value)| (name.clone(), (*value).to_owned())).collect()
    }

    fn set(config: &mut Config, args: &[&str]) -> Result<Vec<&'static str>, String> {
        assert!(args.len() % 2 == 0, "CONFIG SET takes pairs");
        let pairs: Vec<(&[u8], &[u8])> = args.chunks(2).map(|pair| (pair[0].as_bytes(), pair[1].as_bytes())).collect();
        config.set(&pairs)
    }

    /// Checks that CONFIG SET `args` fails with `expected` and changes nothing.
    fn check_set_error(args: &[&str], expected: &str) {
        let mut config = Config::default();
        assert_eq!(set(&mut config, args), Err(expected.to_owned()), "CONFIG SET {args:?}");
        assert_eq!(config, Config::default(), "a failed CONFIG SET {args:?} changed something");
    }

    fn one(name: &str, value: &str) -> Vec<(String, String)> {
        pairs(&[(name.to_owned(), value)])
    }

    #[test]
    fn get_formats_values_like_redis() {
        let config = Config::default();
        let cases: &[(&str, &str)] = &[
            ("bind", "127.0.0.1 -::1"),
            ("port", "6379"),
            ("protected-mode", "yes"),
            ("loglevel", "notice"),
            ("logfile", ""),
            ("maxmemory-policy", "noeviction"),
            ("proto-max-bulk-len", "536870912"),
            ("client-query-buffer-limit", "1073741824"),
            ("client-output-buffer-limit", "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"),
            ("save", "3600 1 300 100 60 10000"),
            ("appendfsync", "everysec"),
            ("notify-keyspace-events", ""),
            ("list-max-listpack-size", "-2"),
            ("slowlog-log-slower-than", "10000"),
            ("auto-aof-rewrite-min-size", "67108864"),
            ("threads", "0"),
        ];
        for &(name, value) in cases {
            assert_eq!(get(&config, &[name]), one(name, value), "CONFIG GET {name}");
        }
    }

    #[test]
    fn get_of_dir_prints_the_current_directory() {
        let cwd = std::env::current_dir().expect("cwd");
        assert_eq!(get(&Config::default(), &["dir"]), one("dir", &cwd.to_string_lossy()));
    }

    #[test]
    fn get_by_exact_name_echoes_the_client_s_spelling_once() {
        let config = Config::default();
        assert_eq!(get(&config, &["PORT"]), one("PORT", "6379"));
        assert_eq!(get(&config, &["port", "PORT"]), one("port", "6379"));
        assert_eq!(get(&config, &["PORT", "*"]).iter().filter(|(n, _)| n.eq_ignore_ascii_case("port")).count(), 1);
        assert_eq!(get(&config, &["no-such-thing"]), vec![]);
    }

    #[test]
    fn get_by_exact_alias_and_canonical_name_lists_both() {
        let config = Config::default();
        assert_eq!(
            get(&config, &["hash-max-ziplist-entries", "hash-max-listpack-entries"]),
            pairs(&[("hash-max-ziplist-entries".to_owned(), "512"), ("hash-max-listpack-entries".to_owned(), "512"),])
        );
    }

    #[test]
    fn get_by_glob_lists_aliases_as_their_own_entries() {
        let config = Config::default();
        let names = |patterns: &[&str]| -> Vec<String> { get(&config, patterns).into_iter().map(|(name, _)| name).collect() };
        assert_eq!(
            names(&["*ziplist*"]),
            vec!["list-max-ziplist-size", "hash-max-ziplist-entries", "hash-max-ziplist-value", "zset-max-ziplist-entries", "zset-max-ziplist-value"]
        );
        assert_eq!(
            names(&["*max-*entries"]),
            vec![
                "hash-max-listpack-entries",
                "hash-max-ziplist-entries",
                "hash-max-template-entries",
                "hash-rdb-load-max-template-entries",
                "set-max-intset-entries",
                "set-max-listpack-entries",
                "zset-max-listpack-entries",
                "zset-max-ziplist-entries",
                "stream-node-max-entries"
            ]
        );
        assert_eq!(names(&["PORT*"]), vec!["port"]);
        assert_eq!(names(&["port", "p?rt", "*"]).iter().filter(|n| *n == "port").count(), 1);
        let everything = names(&["*"]);
        assert_eq!(everything.len(), table::all_names().count());
    }

    #[test]
    fn set_applies_every_pair_and_reports_what_changed() {
        let mut config = Config::default();
        let changed = set(&mut config, &["hz", "20", "maxmemory", "1gb", "loglevel", "WARNING", "timeout", "0"]);
        assert_eq!(changed, Ok(vec!["hz", "maxmemory", "loglevel"]));
        assert_eq!(config.hz, 20);
        assert_eq!(config.maxmemory, 1 << 30);
        assert_eq!(config.loglevel, LogLevel::Warning);
    }

    #[test]
    fn set_through_an_alias_reports_the_canonical_name() {
        let mut config = Config::default();
        assert_eq!(set(&mut config, &["lua-time-limit", "10", "busy-reply-threshold", "20"]), Ok(vec!["busy-reply-threshold"]));
        assert_eq!(config.busy_reply_threshold, 20);
    }

    #[test]
    fn set_splits_multi_argument_values_on_spaces() {
        let mut config = Config::default();
        set(&mut config, &["save", "10 1 20 2", "bind", "127.0.0.1 ::1"]).expect("valid");
        assert_eq!(config.save, vec![SavePoint { seconds: 10, changes: 1 }, SavePoint { seconds: 20, changes: 2 }]);
        assert_eq!(config.bind, vec!["127.0.0.1", "::1"]);
        set(&mut config, &["save", "", "bind", ""]).expect("valid");
        assert_eq!(config.save, vec![]);
        assert_eq!(config.bind, Vec::<String>::new());
        set(&mut config, &["client-output-buffer-limit", "normal 1mb 2k 3 pubsub 1 1 1"]).expect("valid");
        assert_eq!(
            get(&config, &["client-output-buffer-limit"]),
            one("client-output-buffer-limit", "normal 1048576 2000 3 slave 268435456 67108864 60 pubsub 1 1 1")
        );
        assert_eq!(set(&mut config, &["client-output-buffer-limit", ""]), Ok(vec![]));
        set(&mut config, &["notify-keyspace-events", "KEA"]).expect("valid");
        assert_eq!(get(&config, &["notify-keyspace-events"]), one("notify-keyspace-events", "AKE"));
        set(&mut config, &["hz", "1000"]).expect("valid");
        assert_eq!(config.hz, 500);
    }

    #[test]
    fn set_errors_match_redis_word_for_word() {
        let cases: &[(&[&str], &str)] = &[
            (&["foo", "1"], "ERR Unknown option or number of arguments for CONFIG SET - 'foo'"),
            (&["hz", "5", "foo", "1"], "ERR Unknown option or number of arguments for CONFIG SET - 'foo'"),
            (
                &["port", "abc"],
                "ERR CONFIG SET failed (possibly related to argument 'port') - argument couldn't be parsed into an integer",
            ),
            (
                &["timeout", "abc"],
                "ERR CONFIG SET failed (possibly related to argument 'timeout') - argument couldn't be parsed into an integer",
            ),
            (
                &["databases", "3"],
                "ERR CONFIG SET failed (possibly related to argument 'databases') - can't set immutable config",
            ),
            (
                &["databases", "3", "foo", "1"],
                "ERR CONFIG SET failed (possibly related to argument 'databases') - can't set immutable config",
            ),
            (&["foo", "1", "databases", "3"], "ERR Unknown option or number of arguments for CONFIG SET - 'foo'"),
            (
                &["hz", "1", "databases", "3", "hz", "2"],
                "ERR CONFIG SET failed (possibly related to argument 'databases') - can't set immutable config",
            ),
            (
                &["hz", "5", "HZ", "6"],
                "ERR CONFIG SET failed (possibly related to argument 'HZ') - duplicate parameter",
            ),
            (
                &["hz", "x", "timeout", "y"],
                "ERR CONFIG SET failed (possibly related to argument 'hz') - argument couldn't be parsed into an integer",
            ),
            (
                &["hz", "5", "maxmemory", "1x"],
                "ERR CONFIG SET failed (possibly related to argument 'maxmemory') - argument must be a memory value",
            ),
            (
                &["LUA-TIME-LIMIT", "abc"],
                "ERR CONFIG SET failed (possibly related to argument 'lua-time-limit') - argument couldn't be parsed into an integer",
            ),
            (
                &["timeout", "-1"],
                "ERR CONFIG SET failed (possibly related to argument 'timeout') - argument must be between 0 and 2147483647 inclusive",
            ),
            (
                &["maxclients", "0"],
                "ERR CONFIG SET failed (possibly related to argument 'maxclients') - argument must be between 1 and 4294967295 inclusive",
            ),
            (
                &["proto-max-bulk-len", "1"],
                "ERR CONFIG SET failed (possibly related to argument 'proto-max-bulk-len') - argument must be between 1048576 and 9223372036854775807 inclusive",
            ),
            (
                &["hll-sparse-max-bytes", "9223372036854775808"],
                "ERR CONFIG SET failed (possibly related to argument 'hll-sparse-max-bytes') - argument must be between 0 and 9223372036854775807 inclusive",
            ),
            (
                &["save", "10 1  20 2"],
                "ERR CONFIG SET failed (possibly related to argument 'save') - Invalid save parameters",
            ),
            (
                &["loglevel", "loud"],
                "ERR CONFIG SET failed (possibly related to argument 'loglevel') - argument(s) must be one of the following: debug, verbose, notice, warning, nothing",
            ),
            (
                &["appendfsync", "foo"],
                "ERR CONFIG SET failed (possibly related to argument 'appendfsync') - argument(s) must be one of the following: everysec, always, no",
            ),
            (
                &["maxmemory-policy", "foo"],
                "ERR CONFIG SET failed (possibly related to argument 'maxmemory-policy') - argument(s) must be one of the following: volatile-lru, volatile-lfu, volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction",
            ),
            (
                &["protected-mode", "1"],
                "ERR CONFIG SET failed (possibly related to argument 'protected-mode') - argument must be 'yes' or 'no'",
            ),
            (
                &["client-output-buffer-limit", "normal 1 2"],
                "ERR CONFIG SET failed (possibly related to argument 'client-output-buffer-limit') - Wrong number of arguments in buffer limit configuration.",
            ),
            (
                &["notify-keyspace-events", "KQ"],
                "ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - Invalid event class character. Use 'Ag$lshzxeKEtmdn'.",
            ),
            (
                &["dir", "/tmp"],
                "ERR CONFIG SET failed (possibly related to argument 'dir') - can't set protected config",
            ),
            (
                &["dbfilename", "x.rdb"],
                "ERR CONFIG SET failed (possibly related to argument 'dbfilename') - can't set protected config",
            ),
            (
                &["daemonize", "no"],
                "ERR CONFIG SET failed (possibly related to argument 'daemonize') - can't set immutable config",
            ),
            (
                &["hz", "7", "activedefrag", "yes"],
                "ERR CONFIG SET failed (possibly related to argument 'activedefrag') - Active defragmentation cannot be enabled: Shoal does not implement it",
            ),
        ];
        for &(args, expected) in cases {
            check_set_error(args, expected);
        }
    }

    #[test]
    fn protected_configs_follow_enable_protected_configs() {
        let mut config = Config { enable_protected_configs: ProtectedConfigs::Local, ..Config::default() };
        let pairs: &[(&[u8], &[u8])] = &[(b"dbfilename", b"other.rdb")];
        assert!(config.set_from_client(pairs, false).is_err());
        assert_eq!(config.set_from_client(pairs, true), Ok(vec!["dbfilename"]));
        assert_eq!(config.dbfilename, "other.rdb");
        assert_eq!(
            config.set_from_client(&[(b"dbfilename", b"a/b")], true),
            Err("ERR CONFIG SET failed (possibly related to argument 'dbfilename') - dbfilename can't be a path, just a filename".to_owned())
        );
        config.enable_protected_configs = ProtectedConfigs::Yes;
        let error = config.set(&[(b"dir", b"/nonexistent-shoal-dir")]);
        assert_eq!(error, Err("ERR CONFIG SET failed (possibly related to argument 'dir') - No such file or directory".to_owned()));
    }

    #[test]
    fn setting_a_value_to_itself_reports_no_change() {
        let mut config = Config::default();
        assert_eq!(set(&mut config, &["hz", "10", "save", "3600 1 300 100 60 10000"]), Ok(vec![]));
    }
}
