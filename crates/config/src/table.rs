//! The directive table: one descriptor per directive (name, aliases, value
//! type with its bounds, mutability, and how to read and write the typed
//! field of `Config`), and the three operations every caller goes through:
//! `apply` (parse arguments into the field), `format` (the CONFIG GET text)
//! and `rewrite_lines` (the CONFIG REWRITE lines).
//!
//! Adding a directive: a field in `Config` with its default, and one entry in
//! `TABLE`. This module does no I/O except `dir`'s directory check and reading
//! the current directory for it.

use crate::args::repr;
use crate::config::Config;
use crate::values::{
    format_bool, format_memory, parse_bool, parse_integer, parse_memory, parse_save, AppendFsync, ConfigEnum, KeyspaceEvents, LogLevel, MaxmemoryPolicy,
    ProtectedConfigs, ERR_INTEGER, ERR_MEMORY,
};

/// Redis's `CONFIG_BINDADDR_MAX`.
const BIND_ADDRESSES_MAX: usize = 16;

/// Who may change a directive at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mutability {
    Mutable,
    /// Only in the file or on the command line.
    Immutable,
    /// CONFIG SET only when `enable-protected-configs` allows it.
    Protected,
}

pub(crate) struct Directive {
    /// The canonical name, lowercase.
    pub(crate) name: &'static str,
    /// Older names that read and write the same field (CONFIG GET lists them
    /// as entries of their own, as Redis does).
    pub(crate) aliases: &'static [&'static str],
    pub(crate) mutability: Mutability,
    pub(crate) kind: Kind,
}

pub(crate) enum Kind {
    Bool {
        get: fn(&Config) -> bool,
        set: fn(&mut Config, bool),
        /// When set, `yes` is refused with this reason.
        refuse_yes: Option<&'static str>,
    },
    /// Integers, bounds inclusive. Memory values take units and print plain
    /// in CONFIG GET but with units in CONFIG REWRITE.
    Integer {
        min: i128,
        max: i128,
        memory: bool,
        get: fn(&Config) -> i128,
        set: fn(&mut Config, i128),
    },
    Enum {
        names: &'static [&'static str],
        get: fn(&Config) -> usize,
        set: fn(&mut Config, usize),
    },
    Text {
        /// Redis stores an empty value as NULL: REWRITE then drops the line.
        empty_is_null: bool,
        /// When set, the value must be a plain name; the reason otherwise.
        plain_name: Option<&'static str>,
        get: fn(&Config) -> &str,
        set: fn(&mut Config, String),
    },
    Bind,
    Save,
    ClientOutputBufferLimit,
    NotifyKeyspaceEvents,
    Dir,
    Percentiles,
    /// `replicaof <host> <port>`, or `no one`.
    ReplicaOf,
    /// A directive of Redis's that Shoal takes, checks as Redis checks it, shows in CONFIG
    /// GET and REWRITE, and otherwise ignores (so a `redis.conf` loads): its value lives in
    /// `Config::compat` when it is not `default`.
    Compat {
        check: Check,
        default: &'static str,
    },
}

/// How a [`Kind::Compat`] value is checked.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Check {
    Bool,
    Int(i64, i64),
    /// (name, what CONFIG GET shows for it): Redis shows an alias as the first name of its
    /// value (`oom-score-adj relative` reads back `yes`).
    Enum(&'static [(&'static str, &'static str)]),
    Text,
    /// This many integers (one argument each, or one argument split at spaces).
    Ints(usize),
    /// `shutdown-on-sigterm`/`-sigint`: `default`, or any of `save`, `nosave`, `now`,
    /// `force` (not both `save` and `nosave`), shown in that order.
    ShutdownFlags,
    /// An octal number up to this (`unixsocketperm`), shown in octal.
    Octal(u32),
    /// A memory size (shown in bytes) or a percentage up to 100 (`maxmemory-clients`).
    MemoryOrPercent,
}

impl Config {
    /// A [`Kind::Compat`] directive's value, by its name (the default when never set).
    pub fn compat_value(&self, name: &str) -> &str {
        if let Some(value) = self.compat.get(name) {
            return value;
        }
        TABLE
            .iter()
            .find_map(|d| match d.kind {
                Kind::Compat { default, .. } if d.name == name => Some(default),
                _ => None,
            })
            .unwrap_or("")
    }
}

impl Directive {
    /// Whether the directive takes several arguments (Redis's
    /// `MULTI_ARG_CONFIG`): a single argument is then split into several.
    pub(crate) fn is_multi_arg(&self) -> bool {
        matches!(
            self.kind,
            Kind::Bind
                | Kind::Save
                | Kind::ClientOutputBufferLimit
                | Kind::Percentiles
                | Kind::ReplicaOf
                | Kind::Compat { check: Check::Ints(_) | Check::ShutdownFlags, .. }
        )
    }
}

/// State that lives for one whole load (file, includes and command line).
#[derive(Debug, Default)]
pub(crate) struct ApplyContext {
    /// Loading from a file or the command line, rather than CONFIG SET.
    pub(crate) loading: bool,
    /// A `save` line was already read during this load: further ones add to
    /// it instead of replacing the defaults.
    pub(crate) save_seen: bool,
    /// A `yes` Shoal refuses (`daemonize yes`), read during this load: its reason. The load
    /// fails only if no later line (the command line, say) says `no`.
    pub(crate) refused_yes: Option<String>,
    /// Those refusals, with the line that made them (directive index, error).
    pub(crate) deferred: Vec<(usize, crate::load::ConfigError)>,
}

macro_rules! boolean {
    ($name:literal, $mutability:ident, $field:ident) => {
        boolean!($name, $mutability, $field, None)
    };
    ($name:literal, $mutability:ident, $field:ident, $refuse_yes:expr) => {
        Directive {
            name: $name,
            aliases: &[],
            mutability: Mutability::$mutability,
            kind: Kind::Bool { get: |c| c.$field, set: |c, v| c.$field = v, refuse_yes: $refuse_yes },
        }
    };
}

/// `plain` integers or `memory` sizes (which take units).
macro_rules! is_memory {
    (plain) => {
        false
    };
    (memory) => {
        true
    };
}

macro_rules! integer {
    ($name:literal, $aliases:expr, $mutability:ident, $field:ident, $min:expr, $max:expr, $unit:ident) => {
        Directive {
            name: $name,
            aliases: $aliases,
            mutability: Mutability::$mutability,
            kind: Kind::Integer {
                min: $min as i128,
                max: $max as i128,
                memory: is_memory!($unit),
                get: |c| c.$field as i128,
                // In range by construction: `apply` checks the bounds first.
                set: |c, v| c.$field = v as _,
            },
        }
    };
}

macro_rules! enumeration {
    ($name:literal, $mutability:ident, $field:ident, $type:ty) => {
        Directive {
            name: $name,
            aliases: &[],
            mutability: Mutability::$mutability,
            kind: Kind::Enum { names: <$type as ConfigEnum>::NAMES, get: |c| c.$field.index(), set: |c, i| c.$field = <$type as ConfigEnum>::VALUES[i] },
        }
    };
}

macro_rules! text {
    ($name:literal, $mutability:ident, $field:ident, $empty_is_null:expr, $plain_name:expr) => {
        Directive {
            name: $name,
            aliases: &[],
            mutability: Mutability::$mutability,
            kind: Kind::Text { empty_is_null: $empty_is_null, plain_name: $plain_name, get: |c| &c.$field, set: |c, v| c.$field = v },
        }
    };
}

const fn special(name: &'static str, mutability: Mutability, kind: Kind) -> Directive {
    Directive { name, aliases: &[], mutability, kind }
}

const fn compat(name: &'static str, aliases: &'static [&'static str], check: Check, default: &'static str) -> Directive {
    Directive { name, aliases, mutability: Mutability::Mutable, kind: Kind::Compat { check, default } }
}

/// A [`compat`] directive Redis takes only at startup.
const fn compat_fixed(name: &'static str, check: Check, default: &'static str) -> Directive {
    Directive { name, aliases: &[], mutability: Mutability::Immutable, kind: Kind::Compat { check, default } }
}

const INT_MAX: i64 = i32::MAX as i64;
const LONG_MAX: i64 = i64::MAX;
const MB: i64 = 1024 * 1024;

/// Every directive, in the order CONFIG GET and CONFIG REWRITE list them.
pub(crate) static TABLE: &[Directive] = &[
    special("bind", Mutability::Mutable, Kind::Bind),
    integer!("port", &[], Mutable, port, 0, 65535, plain),
    boolean!("protected-mode", Mutable, protected_mode),
    integer!("tcp-backlog", &[], Immutable, tcp_backlog, 0, INT_MAX, plain),
    integer!("timeout", &[], Mutable, timeout, 0, INT_MAX, plain),
    integer!("tcp-keepalive", &[], Mutable, tcp_keepalive, 0, INT_MAX, plain),
    boolean!("disable-thp", Immutable, disable_thp),
    boolean!("daemonize", Immutable, daemonize, Some("Shoal does not daemonize: run it in the foreground under a supervisor, with 'daemonize no'")),
    text!("pidfile", Immutable, pidfile, true, None),
    text!("unixsocket", Immutable, unixsocket, true, None),
    compat_fixed("unixsocketperm", Check::Octal(0o777), "0"),
    enumeration!("loglevel", Mutable, loglevel, LogLevel),
    text!("logfile", Immutable, logfile, false, None),
    integer!("databases", &[], Immutable, databases, 1, INT_MAX, plain),
    boolean!("always-show-logo", Immutable, always_show_logo),
    Directive {
        name: "hz",
        aliases: &[],
        mutability: Mutability::Mutable,
        kind: Kind::Integer {
            min: 0,
            max: INT_MAX as i128,
            memory: false,
            get: |c| c.hz.into(),
            // Redis accepts any int and clamps it to 1..=500.
            set: |c, v| c.hz = v.clamp(1, 500) as u32,
        },
    },
    boolean!("dynamic-hz", Mutable, dynamic_hz),
    integer!("maxclients", &[], Mutable, maxclients, 1, u32::MAX, plain),
    integer!("maxmemory", &[], Mutable, maxmemory, 0, u64::MAX, memory),
    compat("maxmemory-clients", &[], Check::MemoryOrPercent, "0"),
    enumeration!("maxmemory-policy", Mutable, maxmemory_policy, MaxmemoryPolicy),
    integer!("maxmemory-samples", &[], Mutable, maxmemory_samples, 1, INT_MAX, plain),
    integer!("maxmemory-eviction-tenacity", &[], Mutable, maxmemory_eviction_tenacity, 0, 100, plain),
    integer!("proto-max-bulk-len", &[], Mutable, proto_max_bulk_len, MB, LONG_MAX, memory),
    integer!("client-query-buffer-limit", &[], Mutable, client_query_buffer_limit, MB, LONG_MAX, memory),
    special("client-output-buffer-limit", Mutability::Mutable, Kind::ClientOutputBufferLimit),
    special("dir", Mutability::Protected, Kind::Dir),
    text!("dbfilename", Protected, dbfilename, false, Some("dbfilename can't be a path, just a filename")),
    special("save", Mutability::Mutable, Kind::Save),
    boolean!("rdbcompression", Mutable, rdbcompression),
    boolean!("rdbchecksum", Immutable, rdbchecksum),
    boolean!("stop-writes-on-bgsave-error", Mutable, stop_writes_on_bgsave_error),
    boolean!("appendonly", Mutable, appendonly),
    text!("appendfilename", Immutable, appendfilename, false, Some("appendfilename can't be a path, just a filename")),
    text!("appenddirname", Immutable, appenddirname, false, Some("appenddirname can't be a path, just a dirname")),
    enumeration!("appendfsync", Mutable, appendfsync, AppendFsync),
    boolean!("no-appendfsync-on-rewrite", Mutable, no_appendfsync_on_rewrite),
    integer!("auto-aof-rewrite-percentage", &[], Mutable, auto_aof_rewrite_percentage, 0, INT_MAX, plain),
    integer!("auto-aof-rewrite-min-size", &[], Mutable, auto_aof_rewrite_min_size, 0, LONG_MAX, memory),
    boolean!("aof-load-truncated", Mutable, aof_load_truncated),
    boolean!("aof-use-rdb-preamble", Mutable, aof_use_rdb_preamble),
    boolean!("aof-timestamp-enabled", Mutable, aof_timestamp_enabled),
    text!("requirepass", Mutable, requirepass, true, None),
    boolean!("lazyfree-lazy-eviction", Mutable, lazyfree_lazy_eviction),
    boolean!("lazyfree-lazy-expire", Mutable, lazyfree_lazy_expire),
    boolean!("lazyfree-lazy-server-del", Mutable, lazyfree_lazy_server_del),
    boolean!("lazyfree-lazy-user-del", Mutable, lazyfree_lazy_user_del),
    boolean!("lazyfree-lazy-user-flush", Mutable, lazyfree_lazy_user_flush),
    boolean!("script-undeclared-keys", Mutable, script_undeclared_keys),
    integer!("busy-reply-threshold", &["lua-time-limit"], Mutable, busy_reply_threshold, 0, LONG_MAX, plain),
    integer!("key-load-delay", &[], Mutable, key_load_delay, 0, INT_MAX, plain),
    special("notify-keyspace-events", Mutability::Mutable, Kind::NotifyKeyspaceEvents),
    integer!("list-max-listpack-size", &["list-max-ziplist-size"], Mutable, list_max_listpack_size, i32::MIN, i32::MAX, plain),
    integer!("list-compress-depth", &[], Mutable, list_compress_depth, 0, INT_MAX, plain),
    integer!("hash-max-listpack-entries", &["hash-max-ziplist-entries"], Mutable, hash_max_listpack_entries, 0, LONG_MAX, plain),
    integer!("hash-max-listpack-value", &["hash-max-ziplist-value"], Mutable, hash_max_listpack_value, 0, LONG_MAX, memory),
    integer!("hash-min-template-entries", &[], Mutable, hash_min_template_entries, 0, LONG_MAX, plain),
    integer!("hash-max-template-entries", &[], Mutable, hash_max_template_entries, 0, LONG_MAX, plain),
    integer!("hash-rdb-load-min-template-entries", &[], Mutable, hash_rdb_load_min_template_entries, 0, LONG_MAX, plain),
    integer!("hash-rdb-load-max-template-entries", &[], Mutable, hash_rdb_load_max_template_entries, 0, LONG_MAX, plain),
    integer!("hash-rdb-load-template-disassembly-threshold", &[], Mutable, hash_rdb_load_template_disassembly_threshold, 0, LONG_MAX, plain),
    integer!("set-max-intset-entries", &[], Mutable, set_max_intset_entries, 0, LONG_MAX, plain),
    integer!("set-max-listpack-entries", &[], Mutable, set_max_listpack_entries, 0, LONG_MAX, plain),
    integer!("set-max-listpack-value", &[], Mutable, set_max_listpack_value, 0, LONG_MAX, memory),
    integer!("zset-max-listpack-entries", &["zset-max-ziplist-entries"], Mutable, zset_max_listpack_entries, 0, LONG_MAX, plain),
    integer!("zset-max-listpack-value", &["zset-max-ziplist-value"], Mutable, zset_max_listpack_value, 0, LONG_MAX, memory),
    integer!("hll-sparse-max-bytes", &[], Mutable, hll_sparse_max_bytes, 0, LONG_MAX, memory),
    integer!("stream-node-max-bytes", &[], Mutable, stream_node_max_bytes, 0, LONG_MAX, memory),
    integer!("stream-node-max-entries", &[], Mutable, stream_node_max_entries, 0, LONG_MAX, plain),
    integer!("tracking-table-max-keys", &[], Mutable, tracking_table_max_keys, 0, LONG_MAX, plain),
    Directive { name: "replicaof", aliases: &["slaveof"], mutability: Mutability::Immutable, kind: Kind::ReplicaOf },
    Directive {
        name: "replica-read-only",
        aliases: &["slave-read-only"],
        mutability: Mutability::Mutable,
        kind: Kind::Bool { get: |c| c.replica_read_only, set: |c, v| c.replica_read_only = v, refuse_yes: None },
    },
    Directive {
        name: "replica-serve-stale-data",
        aliases: &["slave-serve-stale-data"],
        mutability: Mutability::Mutable,
        kind: Kind::Bool { get: |c| c.replica_serve_stale_data, set: |c, v| c.replica_serve_stale_data = v, refuse_yes: None },
    },
    compat("replica-priority", &["slave-priority"], Check::Int(0, INT_MAX), "100"),
    compat("replica-announce-ip", &["slave-announce-ip"], Check::Text, ""),
    compat("replica-announce-port", &["slave-announce-port"], Check::Int(0, 65535), "0"),
    compat("replica-announced", &[], Check::Bool, "yes"),
    compat("replica-ignore-maxmemory", &["slave-ignore-maxmemory"], Check::Bool, "yes"),
    compat("replica-ignore-disk-write-errors", &[], Check::Bool, "no"),
    compat("replica-lazy-flush", &["slave-lazy-flush"], Check::Bool, "no"),
    Directive {
        name: "repl-diskless-sync",
        aliases: &[],
        mutability: Mutability::Mutable,
        kind: Kind::Bool { get: |c| c.repl_diskless_sync, set: |c, v| c.repl_diskless_sync = v, refuse_yes: None },
    },
    compat("repl-diskless-sync-delay", &[], Check::Int(0, INT_MAX), "5"),
    compat("repl-diskless-sync-max-replicas", &[], Check::Int(0, INT_MAX), "0"),
    compat("repl-diskless-load", &[], Check::Enum(&[("disabled", "disabled"), ("on-empty-db", "on-empty-db"), ("swapdb", "swapdb")]), "disabled"),
    compat("repl-disable-tcp-nodelay", &[], Check::Bool, "no"),
    compat("shutdown-on-sigint", &[], Check::ShutdownFlags, "default"),
    compat("shutdown-on-sigterm", &[], Check::ShutdownFlags, "default"),
    // Tuning of Redis's own machinery (active defragmentation, fork children's CPUs, I/O
    // threads, crash reports, syslog): nothing of it exists here.
    compat("active-defrag-cycle-min", &[], Check::Int(1, 99), "1"),
    compat("active-defrag-cycle-max", &[], Check::Int(1, 99), "25"),
    compat("active-defrag-max-scan-fields", &[], Check::Int(1, LONG_MAX), "1000"),
    compat("active-defrag-threshold-lower", &[], Check::Int(0, 1000), "10"),
    compat("active-defrag-threshold-upper", &[], Check::Int(0, 1000), "100"),
    compat("aof-disable-auto-gc", &[], Check::Bool, "no"),
    compat("crash-log-enabled", &[], Check::Bool, "yes"),
    compat("crash-memcheck-enabled", &[], Check::Bool, "yes"),
    compat("ignore-warnings", &[], Check::Text, ""),
    compat("propagation-error-behavior", &[], Check::Enum(&[("ignore", "ignore"), ("panic", "panic"), ("panic-on-replicas", "panic-on-replicas")]), "ignore"),
    compat_fixed("server_cpulist", Check::Text, ""),
    compat_fixed("bio_cpulist", Check::Text, ""),
    compat_fixed("aof_rewrite_cpulist", Check::Text, ""),
    compat_fixed("bgsave_cpulist", Check::Text, ""),
    compat_fixed("io-threads-do-reads", Check::Bool, "no"),
    compat_fixed("syslog-enabled", Check::Bool, "no"),
    compat_fixed("syslog-ident", Check::Text, "redis"),
    compat_fixed(
        "syslog-facility",
        Check::Enum(&[
            ("user", "user"),
            ("local0", "local0"),
            ("local1", "local1"),
            ("local2", "local2"),
            ("local3", "local3"),
            ("local4", "local4"),
            ("local5", "local5"),
            ("local6", "local6"),
            ("local7", "local7"),
        ]),
        "local0",
    ),
    compat_fixed("socket-mark-id", Check::Int(0, u32::MAX as i64), "0"),
    integer!("min-replicas-to-write", &["min-slaves-to-write"], Mutable, min_replicas_to_write, 0, INT_MAX, plain),
    integer!("min-replicas-max-lag", &["min-slaves-max-lag"], Mutable, min_replicas_max_lag, 0, INT_MAX, plain),
    text!("masterauth", Mutable, masterauth, true, None),
    text!("masteruser", Mutable, masteruser, true, None),
    integer!("shutdown-timeout", &[], Mutable, shutdown_timeout, 0, INT_MAX, plain),
    boolean!("cluster-enabled", Immutable, cluster_enabled),
    text!("cluster-config-file", Immutable, cluster_config_file, false, None),
    integer!("cluster-node-timeout", &[], Mutable, cluster_node_timeout, 0, LONG_MAX, plain),
    integer!("cluster-port", &[], Immutable, cluster_port, 0, 65535, plain),
    text!("cluster-announce-ip", Mutable, cluster_announce_ip, true, None),
    integer!("cluster-announce-port", &[], Mutable, cluster_announce_port, 0, 65535, plain),
    integer!("cluster-announce-bus-port", &[], Mutable, cluster_announce_bus_port, 0, 65535, plain),
    boolean!("cluster-require-full-coverage", Mutable, cluster_require_full_coverage),
    boolean!("cluster-allow-reads-when-down", Mutable, cluster_allow_reads_when_down),
    boolean!("cluster-allow-pubsubshard-when-down", Mutable, cluster_allow_pubsubshard_when_down),
    // Read by the cluster's elections (validity factor, no-failover); the others have no
    // effect yet (replica migration, link buffers, hostnames, TLS).
    compat("cluster-replica-validity-factor", &["cluster-slave-validity-factor"], Check::Int(0, INT_MAX), "10"),
    compat("cluster-migration-barrier", &[], Check::Int(0, INT_MAX), "1"),
    compat("cluster-allow-replica-migration", &[], Check::Bool, "yes"),
    compat("cluster-replica-no-failover", &["cluster-slave-no-failover"], Check::Bool, "no"),
    compat("cluster-link-sendbuf-limit", &[], Check::Int(0, LONG_MAX), "0"),
    compat("cluster-announce-tls-port", &[], Check::Int(0, 65535), "0"),
    compat("cluster-announce-hostname", &[], Check::Text, ""),
    compat("cluster-preferred-endpoint-type", &[], Check::Enum(&[("ip", "ip"), ("hostname", "hostname"), ("unknown-endpoint", "unknown-endpoint")]), "ip"),
    integer!("repl-backlog-size", &[], Mutable, repl_backlog_size, 1, LONG_MAX, memory),
    integer!("repl-backlog-ttl", &[], Mutable, repl_backlog_ttl, 0, INT_MAX, plain),
    integer!("repl-ping-replica-period", &["repl-ping-slave-period"], Mutable, repl_ping_replica_period, 1, INT_MAX, plain),
    integer!("repl-timeout", &[], Mutable, repl_timeout, 1, INT_MAX, plain),
    integer!("slowlog-log-slower-than", &[], Mutable, slowlog_log_slower_than, -1, LONG_MAX, plain),
    integer!("slowlog-max-len", &[], Mutable, slowlog_max_len, 0, LONG_MAX, plain),
    integer!("acllog-max-len", &[], Mutable, acllog_max_len, 0, LONG_MAX, plain),
    integer!("latency-monitor-threshold", &[], Mutable, latency_monitor_threshold, 0, LONG_MAX, plain),
    boolean!("latency-tracking", Mutable, latency_tracking),
    special("latency-tracking-info-percentiles", Mutability::Mutable, Kind::Percentiles),
    integer!("active-expire-effort", &[], Mutable, active_expire_effort, 1, 10, plain),
    integer!("lfu-log-factor", &[], Mutable, lfu_log_factor, 0, INT_MAX, plain),
    integer!("lfu-decay-time", &[], Mutable, lfu_decay_time, 0, INT_MAX, plain),
    boolean!("activedefrag", Mutable, activedefrag, Some("Active defragmentation cannot be enabled: Shoal does not implement it")),
    integer!("io-threads", &[], Immutable, io_threads, 1, 128, plain),
    compat("activerehashing", &[], Check::Bool, "yes"),
    compat("aof-rewrite-incremental-fsync", &[], Check::Bool, "yes"),
    compat("rdb-save-incremental-fsync", &[], Check::Bool, "yes"),
    compat("rdb-del-sync-files", &[], Check::Bool, "no"),
    compat("jemalloc-bg-thread", &[], Check::Bool, "yes"),
    compat("oom-score-adj", &[], Check::Enum(&[("no", "no"), ("yes", "yes"), ("relative", "yes"), ("absolute", "absolute")]), "no"),
    compat("oom-score-adj-values", &[], Check::Ints(3), "0 200 800"),
    Directive { name: "set-proc-title", aliases: &[], mutability: Mutability::Immutable, kind: Kind::Compat { check: Check::Bool, default: "yes" } },
    Directive {
        name: "supervised",
        aliases: &[],
        mutability: Mutability::Immutable,
        kind: Kind::Compat { check: Check::Enum(&[("upstart", "upstart"), ("systemd", "systemd"), ("auto", "auto"), ("no", "no")]), default: "no" },
    },
    compat("proc-title-template", &[], Check::Text, "{title} {listen-addr} {server-mode}"),
    enumeration!("enable-protected-configs", Immutable, enable_protected_configs, ProtectedConfigs),
    integer!("threads", &[], Immutable, threads, 0, 1024, plain),
];

/// Finds a directive by name or alias, in any case. Returns its index in
/// `TABLE` and the matching name, as stored (lowercase).
pub(crate) fn lookup(name: &[u8]) -> Option<(usize, &'static str)> {
    TABLE.iter().enumerate().find_map(|(index, directive)| {
        std::iter::once(&directive.name)
            .chain(directive.aliases)
            .find(|candidate| candidate.as_bytes().eq_ignore_ascii_case(name))
            .map(|&matched| (index, matched))
    })
}

/// Every name CONFIG GET knows, aliases included, with the directive index.
pub(crate) fn all_names() -> impl Iterator<Item = (usize, &'static str)> {
    TABLE
        .iter()
        .enumerate()
        .flat_map(|(index, directive)| std::iter::once(directive.name).chain(directive.aliases.iter().copied()).map(move |name| (index, name)))
}

fn to_text(value: &[u8]) -> Result<String, String> {
    String::from_utf8(value.to_vec()).map_err(|_| "argument must be valid UTF-8 (Shoal stores this value as text)".to_owned())
}

/// The reason text of an I/O error without Rust's " (os error N)" suffix, so
/// it reads like C's `strerror`.
pub(crate) fn strerror(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error") {
        Some(end) => text[..end].to_owned(),
        None => text,
    }
}

/// Parses `args` (already split for multi-argument directives, exactly one
/// for the others) into the directive's field. On error the field may be
/// left unchanged or changed; callers work on a copy when that matters.
pub(crate) fn apply(config: &mut Config, directive: &Directive, args: &[Vec<u8>], context: &mut ApplyContext) -> Result<(), String> {
    let single = || {
        debug_assert_eq!(args.len(), 1, "{} takes one argument", directive.name);
        args[0].as_slice()
    };
    match &directive.kind {
        Kind::Bool { set, refuse_yes, .. } => {
            let value = parse_bool(single())?;
            if let (true, Some(reason)) = (value, refuse_yes) {
                if !context.loading {
                    return Err((*reason).to_owned());
                }
                // Judged once the whole load is read: a later `no` wins.
                context.refused_yes = Some((*reason).to_owned());
            }
            set(config, value);
        }
        Kind::Integer { min, max, memory, set, .. } => {
            let value = if *memory { i128::from(parse_memory(single()).ok_or(ERR_MEMORY)?) } else { i128::from(parse_integer(single()).ok_or(ERR_INTEGER)?) };
            if value < *min || value > *max {
                return Err(format!("argument must be between {min} and {max} inclusive"));
            }
            set(config, value);
        }
        Kind::Enum { names, set, .. } => {
            let value = single();
            let index = names
                .iter()
                .position(|name| name.as_bytes().eq_ignore_ascii_case(value))
                .ok_or_else(|| format!("argument(s) must be one of the following: {}", names.join(", ")))?;
            set(config, index);
        }
        Kind::Text { plain_name, set, .. } => {
            let value = to_text(single())?;
            if let Some(reason) = plain_name {
                if value.contains(['/', '\\']) {
                    return Err((*reason).to_owned());
                }
            }
            set(config, value);
        }
        Kind::Compat { check, default } => {
            let value = match check {
                Check::Bool => format_bool(parse_bool(single())?).to_owned(),
                Check::Int(min, max) => {
                    let value = parse_integer(single()).ok_or(ERR_INTEGER)?;
                    if value < *min || value > *max {
                        return Err(format!("argument must be between {min} and {max} inclusive"));
                    }
                    value.to_string()
                }
                Check::Enum(names) => {
                    let value = single();
                    let (_, shown) = names.iter().find(|(name, _)| name.as_bytes().eq_ignore_ascii_case(value)).ok_or_else(|| {
                        format!("argument(s) must be one of the following: {}", names.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", "))
                    })?;
                    (*shown).to_owned()
                }
                Check::Text => to_text(single())?,
                Check::Ints(count) => {
                    let values: Vec<i64> = args.iter().map(|arg| parse_integer(arg).ok_or(ERR_INTEGER)).collect::<Result<_, _>>()?;
                    if values.len() != *count {
                        return Err("wrong number of arguments".to_owned());
                    }
                    values.iter().map(i64::to_string).collect::<Vec<_>>().join(" ")
                }
                Check::ShutdownFlags => shutdown_flags(args)?,
                Check::MemoryOrPercent => {
                    const INVALID: &str = "argument must be a memory or percent value";
                    let text = std::str::from_utf8(single()).map_err(|_| INVALID.to_owned())?;
                    match text.strip_suffix('%') {
                        Some(percent) => {
                            let percent: u64 = percent.parse().map_err(|_| INVALID.to_owned())?;
                            if percent > 100 {
                                return Err("percentage argument must be less or equal to 100".to_owned());
                            }
                            format!("{percent}%")
                        }
                        None => parse_memory(single()).ok_or(INVALID)?.to_string(),
                    }
                }
                Check::Octal(max) => {
                    let value = std::str::from_utf8(single()).ok().and_then(|text| u32::from_str_radix(text, 8).ok()).ok_or(ERR_INTEGER)?;
                    if value > *max {
                        return Err(format!("argument must be between 0 and {max:o} inclusive"));
                    }
                    format!("{value:o}")
                }
            };
            if value == *default {
                config.compat.remove(directive.name);
            } else {
                config.compat.insert(directive.name, value);
            }
        }
        Kind::ReplicaOf => {
            // A single empty argument (CONFIG GET's value when not a replica): none.
            if args.is_empty() || (args.len() == 1 && args[0].is_empty()) {
                config.replicaof = None;
                return Ok(());
            }
            if args.len() != 2 {
                return Err("wrong number of arguments".to_owned());
            }
            if args[0].eq_ignore_ascii_case(b"no") && args[1].eq_ignore_ascii_case(b"one") {
                config.replicaof = None;
                return Ok(());
            }
            let port = std::str::from_utf8(&args[1]).ok().and_then(|p| p.parse::<u16>().ok()).ok_or("Invalid master port")?;
            config.replicaof = Some((to_text(&args[0])?, port));
        }
        Kind::Bind => {
            if args.len() > BIND_ADDRESSES_MAX {
                return Err("Too many bind addresses specified.".to_owned());
            }
            // A single empty argument means no address at all.
            let args = if args.len() == 1 && args[0].is_empty() { &[][..] } else { args };
            config.bind = args.iter().map(|address| to_text(address)).collect::<Result<_, _>>()?;
        }
        Kind::Save => {
            // `save ""` clears the points; during a load, the first `save`
            // line replaces the defaults and later ones add to it.
            let clear = args.len() == 1 && args[0].is_empty();
            if clear {
                config.save.clear();
            }
            let points = parse_save(if clear { &[] } else { args })?;
            if !context.loading || !context.save_seen {
                config.save.clear();
            }
            context.save_seen |= context.loading;
            config.save.extend(points);
        }
        Kind::ClientOutputBufferLimit => config.client_output_buffer_limit.apply(args)?,
        Kind::NotifyKeyspaceEvents => {
            config.notify_keyspace_events = KeyspaceEvents::parse(single())?;
        }
        Kind::Percentiles => {
            // A single empty argument means none.
            let args = if args.len() == 1 && args[0].is_empty() { &[][..] } else { args };
            let mut percentiles = Vec::with_capacity(args.len());
            for arg in args {
                let value = parse_percentile(arg).ok_or("Invalid latency-tracking-info-percentiles parameters")?;
                if !(0.0..=100.0).contains(&value) {
                    return Err("latency-tracking-info-percentiles parameters should sit between [0.0,100.0]".to_owned());
                }
                percentiles.push(value);
            }
            config.latency_tracking_info_percentiles = crate::values::Percentiles(percentiles);
        }
        Kind::Dir => {
            let dir = to_text(single())?;
            // Redis chdirs here; we only check that it would succeed, and the
            // server chdirs (see `Config::dir`).
            match std::fs::metadata(&dir) {
                Ok(metadata) if metadata.is_dir() => config.dir = dir,
                Ok(_) => return Err("Not a directory".to_owned()),
                Err(error) => return Err(strerror(&error)),
            }
        }
    }
    Ok(())
}

/// The process's current directory, which is what Redis prints for `dir`.
fn current_dir() -> Option<String> {
    std::env::current_dir().ok().map(|dir| dir.to_string_lossy().into_owned())
}

/// The value as CONFIG GET prints it.
pub(crate) fn format(config: &Config, directive: &Directive) -> String {
    match &directive.kind {
        Kind::Bool { get, .. } => format_bool(get(config)).to_owned(),
        Kind::Integer { get, .. } => get(config).to_string(),
        Kind::Enum { names, get, .. } => names[get(config)].to_owned(),
        Kind::Text { get, .. } => get(config).to_owned(),
        Kind::Bind => config.bind.join(" "),
        Kind::ReplicaOf => config.replicaof.as_ref().map(|(host, port)| format!("{host} {port}")).unwrap_or_default(),
        Kind::Compat { .. } => config.compat_value(directive.name).to_owned(),
        Kind::Save => config.save.iter().map(|point| format!("{} {}", point.seconds, point.changes)).collect::<Vec<_>>().join(" "),
        Kind::ClientOutputBufferLimit => config
            .client_output_buffer_limit
            .classes()
            .iter()
            .map(|(class, limit)| format!("{class} {} {} {}", limit.hard_bytes, limit.soft_bytes, limit.soft_seconds))
            .collect::<Vec<_>>()
            .join(" "),
        Kind::NotifyKeyspaceEvents => config.notify_keyspace_events.to_string(),
        Kind::Dir => current_dir().unwrap_or_else(|| config.dir.clone()),
        Kind::Percentiles => format_percentiles(&config.latency_tracking_info_percentiles.0),
    }
}

/// A percentile as Redis's `string2d` reads it: the whole argument a finite-or-infinite
/// number, no leading space, not NaN, no overflow to infinity nor underflow to zero.
fn parse_percentile(arg: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(arg).ok()?;
    if text.is_empty() || text.starts_with(|c: char| c.is_ascii_whitespace()) {
        return None;
    }
    let value: f64 = text.parse().ok()?;
    let spelled_infinite = text.trim_start_matches(['+', '-']).to_ascii_lowercase().starts_with("inf");
    let underflow = value == 0.0 && text.bytes().any(|b| (b'1'..=b'9').contains(&b)) && text.to_ascii_lowercase().contains('e');
    (!value.is_nan() && (value.is_finite() || spelled_infinite) && !underflow).then_some(value)
}

/// The percentiles as Redis prints them: `%f` with the trailing zeros (and a bare point)
/// cut, separated by spaces.
pub fn format_percentiles(percentiles: &[f64]) -> String {
    percentiles.iter().map(|p| trim_double(&format!("{p:.6}"))).collect::<Vec<_>>().join(" ")
}

/// Redis's `trimDoubleString`: a fixed-point number without trailing zeros or a bare point.
pub fn trim_double(text: &str) -> String {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text.to_owned()
    }
}

/// What CONFIG REWRITE does for one directive: the lines to write, each with
/// whether it must be written even where the file does not mention the
/// directive (Redis's `force`: the value differs from the default). No lines
/// means the directive must not appear in the file at all.
pub(crate) fn rewrite_lines(config: &Config, defaults: &Config, directive: &Directive) -> Vec<(String, bool)> {
    let name = directive.name;
    match &directive.kind {
        Kind::Bool { get, .. } => vec![(format!("{name} {}", format_bool(get(config))), get(config) != get(defaults))],
        Kind::Integer { get, memory, .. } => {
            let value = get(config);
            let text = match (*memory, u64::try_from(value)) {
                (true, Ok(bytes)) => format_memory(bytes),
                _ => value.to_string(),
            };
            vec![(format!("{name} {text}"), value != get(defaults))]
        }
        Kind::Enum { names, get, .. } => vec![(format!("{name} {}", names[get(config)]), get(config) != get(defaults))],
        Kind::Text { get, empty_is_null, .. } => {
            let value = get(config);
            if *empty_is_null && value.is_empty() {
                return vec![];
            }
            vec![(format!("{name} {}", repr(value.as_bytes())), value != get(defaults))]
        }
        Kind::ReplicaOf => match &config.replicaof {
            Some((host, port)) => vec![(format!("{name} {host} {port}"), true)],
            None => vec![],
        },
        Kind::Compat { check, default } => {
            let value = config.compat_value(name);
            let text = match check {
                Check::Text => repr(value.as_bytes()),
                _ => value.to_owned(),
            };
            vec![(format!("{name} {text}"), value != *default)]
        }
        Kind::Bind => {
            if config.bind == defaults.bind {
                return vec![];
            }
            vec![(format!("{name} {}", config.bind.join(" ")), true)]
        }
        // Always written, so that a missing line cannot bring the defaults
        // back; `save ""` when there are no points.
        Kind::Save if config.save.is_empty() => vec![(format!("{name} \"\""), true)],
        Kind::Save => config.save.iter().map(|point| (format!("{name} {} {}", point.seconds, point.changes), true)).collect(),
        Kind::ClientOutputBufferLimit => {
            let current = config.client_output_buffer_limit.classes();
            let default = defaults.client_output_buffer_limit.classes();
            current
                .iter()
                .zip(default.iter())
                .map(|((class, limit), (_, default_limit))| {
                    let class = if *class == "slave" { "replica" } else { class };
                    (
                        format!("{name} {class} {} {} {}", format_memory(limit.hard_bytes), format_memory(limit.soft_bytes), limit.soft_seconds),
                        limit != default_limit,
                    )
                })
                .collect()
        }
        Kind::NotifyKeyspaceEvents => {
            let flags = config.notify_keyspace_events.to_string();
            vec![(format!("{name} {}", repr(flags.as_bytes())), config.notify_keyspace_events.bits() != 0)]
        }
        Kind::Percentiles => {
            let (current, default) = (&config.latency_tracking_info_percentiles, &defaults.latency_tracking_info_percentiles);
            let text = if current.0.is_empty() { "\"\"".to_owned() } else { format_percentiles(&current.0) };
            vec![(format!("{name} {text}"), current != default)]
        }
        // Redis always writes the absolute current directory.
        Kind::Dir => match current_dir() {
            Some(dir) => vec![(format!("{name} {}", repr(dir.as_bytes())), true)],
            None => vec![],
        },
    }
}

/// The words of a `shutdown-on-sig*` value, checked and in Redis's order (see
/// [`Check::ShutdownFlags`]): one argument split at single spaces, or one word each.
fn shutdown_flags(args: &[Vec<u8>]) -> Result<String, String> {
    const WORDS: [&str; 4] = ["save", "nosave", "now", "force"];
    let invalid = || "argument(s) must be one of the following: default, save, nosave, now, force".to_owned();
    let words: Vec<&[u8]> = match args {
        [one] => one.split(|&b| b == b' ').collect(),
        many => many.iter().map(Vec::as_slice).collect(),
    };
    let mut set = [false; 4];
    for word in words {
        if word.eq_ignore_ascii_case(b"default") {
            continue;
        }
        let at = WORDS.iter().position(|w| w.as_bytes().eq_ignore_ascii_case(word)).ok_or_else(invalid)?;
        set[at] = true;
    }
    if set[0] && set[1] {
        return Err("shutdown options SAVE and NOSAVE can't be used simultaneously".to_owned());
    }
    let shown: Vec<&str> = WORDS.iter().zip(set).filter(|(_, on)| *on).map(|(word, _)| *word).collect();
    Ok(if shown.is_empty() { "default".to_owned() } else { shown.join(" ") })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_and_aliases_are_unique_lowercase_and_found_by_lookup() {
        let mut seen = HashSet::new();
        for (index, name) in all_names() {
            assert_eq!(name, name.to_ascii_lowercase(), "{name} should be lowercase");
            assert!(seen.insert(name), "{name} is listed twice");
            assert_eq!(lookup(name.as_bytes()).map(|found| found.0), Some(index));
            assert_eq!(lookup(name.to_ascii_uppercase().as_bytes()), Some((index, name)));
        }
    }

    #[test]
    fn every_default_formats_and_parses_back_to_itself() {
        let defaults = Config::default();
        for directive in TABLE {
            if matches!(directive.kind, Kind::Dir) {
                continue;
            }
            let text = format(&defaults, directive);
            let args = if directive.is_multi_arg() {
                text.split(' ').filter(|arg| !arg.is_empty()).map(|arg| arg.as_bytes().to_vec()).collect::<Vec<_>>()
            } else {
                vec![text.as_bytes().to_vec()]
            };
            let mut config = defaults.clone();
            let mut context = ApplyContext::default();
            apply(&mut config, directive, &args, &mut context).unwrap_or_else(|reason| panic!("{}: {text:?}: {reason}", directive.name));
            assert_eq!(config, defaults, "{} round trip of {text:?}", directive.name);
        }
    }

    #[test]
    fn integer_bounds_are_within_the_field_types() {
        // Setting the minimum and the maximum must be lossless.
        for directive in TABLE {
            if let Kind::Integer { min, max, get, set, .. } = &directive.kind {
                for bound in [*min, *max] {
                    let mut config = Config::default();
                    set(&mut config, bound);
                    let expected = if directive.name == "hz" { bound.clamp(1, 500) } else { bound };
                    assert_eq!(get(&config), expected, "{} at {bound}", directive.name);
                }
            }
        }
    }
}
