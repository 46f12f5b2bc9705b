//! The typed configuration: one public field per directive, with Redis's
//! defaults in `Config::default()`.
//!
//! Field names are the directive names with `_` for `-`, so `maxmemory-policy`
//! is `config.maxmemory_policy`; units are in each field's doc (Redis's
//! names carry no unit suffix and we keep the mapping obvious). This module
//! does not parse or print anything: `table` maps names to fields.

use std::path::PathBuf;

use crate::values::{
    AppendFsync, ClientOutputBufferLimits, KeyspaceEvents, LogLevel, MaxmemoryPolicy, OutputBufferLimit, Percentiles, ProtectedConfigs, SavePoint,
};

/// The server configuration. Every core keeps its own copy; CONFIG SET is
/// applied to each copy by the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Addresses to listen on (at most 16). `*` is every IPv4 address, `::*`
    /// every IPv6 one; a leading `-` makes an address optional (no error if
    /// it is unavailable). Empty: listen on no TCP address.
    pub bind: Vec<String>,
    /// TCP port; 0 means no TCP listener.
    pub port: u16,
    /// Refuse non-loopback clients when no password is set and `bind` is the
    /// default.
    pub protected_mode: bool,
    /// `listen(2)` backlog.
    pub tcp_backlog: u32,
    /// Close a client idle for this many seconds; 0 never.
    pub timeout: u32,
    /// TCP keepalive interval, seconds; 0 disables.
    pub tcp_keepalive: u32,
    /// Always false: Shoal runs in the foreground, under a supervisor.
    pub daemonize: bool,
    /// `disable-thp`: turn transparent huge pages off for the process, as Redis does.
    pub disable_thp: bool,
    /// Where to write the pid; empty for nowhere.
    pub pidfile: String,
    /// A Unix domain socket to accept connections on as well; empty for none.
    pub unixsocket: String,
    pub loglevel: LogLevel,
    /// Log file path; empty logs to standard output.
    pub logfile: String,
    /// Number of logical databases (SELECT 0..databases-1).
    pub databases: u32,
    pub always_show_logo: bool,
    /// Frequency of background tasks (expiry, timeouts), per second; kept in
    /// 1..=500 as Redis clamps it.
    pub hz: u32,
    /// Raise `hz` temporarily with many clients.
    pub dynamic_hz: bool,
    /// Maximum number of connected clients.
    pub maxclients: u32,
    /// Memory limit in bytes; 0 is no limit.
    pub maxmemory: u64,
    pub maxmemory_policy: MaxmemoryPolicy,
    /// Keys sampled per eviction.
    pub maxmemory_samples: u32,
    /// How long eviction may run before a command (0-100; 10 is 500 microseconds, 100 is
    /// no limit), as Redis's `maxmemory-eviction-tenacity`.
    pub maxmemory_eviction_tenacity: u32,
    /// Largest bulk string a client may send, bytes.
    pub proto_max_bulk_len: u64,
    /// Largest query buffer of one client, bytes.
    pub client_query_buffer_limit: u64,
    pub client_output_buffer_limit: ClientOutputBufferLimits,
    /// Working directory for the RDB and AOF files, as given. The server
    /// chdirs into it after loading and whenever CONFIG SET changes it (as
    /// Redis does); CONFIG GET and CONFIG REWRITE print the process's current
    /// directory, as Redis does.
    pub dir: String,
    /// RDB file name (a plain file name, inside `dir`).
    pub dbfilename: String,
    /// Snapshot points; empty disables periodic snapshots.
    pub save: Vec<SavePoint>,
    pub rdbcompression: bool,
    pub rdbchecksum: bool,
    pub stop_writes_on_bgsave_error: bool,
    pub appendonly: bool,
    /// Base name of the append-only files (a plain file name).
    pub appendfilename: String,
    /// Directory of the append-only files, inside `dir` (a plain name).
    pub appenddirname: String,
    pub appendfsync: AppendFsync,
    pub no_appendfsync_on_rewrite: bool,
    /// Rewrite the AOF when it grew by this percentage; 0 disables.
    pub auto_aof_rewrite_percentage: u32,
    /// Do not auto-rewrite an AOF smaller than this, bytes.
    pub auto_aof_rewrite_min_size: u64,
    pub aof_load_truncated: bool,
    pub aof_use_rdb_preamble: bool,
    pub aof_timestamp_enabled: bool,
    /// The default user's password; empty for none.
    pub requirepass: String,
    pub lazyfree_lazy_eviction: bool,
    pub lazyfree_lazy_expire: bool,
    pub lazyfree_lazy_server_del: bool,
    pub lazyfree_lazy_user_del: bool,
    pub lazyfree_lazy_user_flush: bool,
    /// Shoal: whether a script may touch keys it did not declare on cores other than its
    /// declared keys' (every script then holds every core while it runs).
    pub script_undeclared_keys: bool,
    /// A script or function running longer than this, milliseconds, lets
    /// other clients get BUSY replies (alias `lua-time-limit`).
    pub busy_reply_threshold: u64,
    /// Microseconds to wait after loading each key (Redis's testing knob, to watch LOADING).
    pub key_load_delay: u64,
    pub notify_keyspace_events: KeyspaceEvents,
    /// Negative: a size class (-1 is 4 KiB ... -5 is 64 KiB) per list node;
    /// positive: entries per node.
    pub list_max_listpack_size: i32,
    /// List nodes left uncompressed at each end; 0 compresses nothing.
    pub list_compress_depth: u32,
    pub hash_max_listpack_entries: u64,
    /// Bytes.
    pub hash_max_listpack_value: u64,
    /// Redis 8.10's compact hashes: a hash of at least this many fields (0: none) moves to a
    /// shared field-name template on its next write, unless it has more than
    /// `hash_max_template_entries` (0: no bound).
    pub hash_min_template_entries: u64,
    pub hash_max_template_entries: u64,
    /// The same window for the hashes of an RDB file as it loads (at startup, DEBUG RELOAD,
    /// a replica's full resynchronisation); 0: none.
    pub hash_rdb_load_min_template_entries: u64,
    pub hash_rdb_load_max_template_entries: u64,
    /// After such a load, a template fewer hashes than this hold is given up (its hashes
    /// become plain again): one shared by a few keys costs more than it saves. 0: keep all.
    pub hash_rdb_load_template_disassembly_threshold: u64,
    pub set_max_intset_entries: u64,
    pub set_max_listpack_entries: u64,
    /// Bytes.
    pub set_max_listpack_value: u64,
    pub zset_max_listpack_entries: u64,
    /// Bytes.
    pub zset_max_listpack_value: u64,
    /// Bytes.
    pub hll_sparse_max_bytes: u64,
    /// Bytes of a stream's listpack node (0: no limit but Redis's 1 GiB).
    pub stream_node_max_bytes: u64,
    /// Entries of a stream's listpack node (0: no limit).
    pub stream_node_max_entries: u64,
    /// Keys remembered for client-side caching before the oldest are invalidated (0: no
    /// bound).
    pub tracking_table_max_keys: u64,
    /// The master this server replicates (`replicaof <host> <port>`), if any.
    pub replicaof: Option<(String, u16)>,
    /// A replica refuses writes from its clients.
    pub replica_read_only: bool,
    /// A replica whose link is down still answers its clients (else MASTERDOWN).
    pub replica_serve_stale_data: bool,
    /// `repl-diskless-sync`: a full resynchronisation streams the snapshot to the replica
    /// (`$EOF:` framing) rather than through a file, when the replica can take it.
    pub repl_diskless_sync: bool,
    /// A master refuses writes (NOREPLICAS) unless this many replicas acknowledged within
    /// `min_replicas_max_lag` seconds (0: never refuses).
    pub min_replicas_to_write: u64,
    pub min_replicas_max_lag: u64,
    /// The password (and user) a replica authenticates to its master with.
    pub masterauth: String,
    pub masteruser: String,
    /// Seconds a master waits at shutdown for its replicas to acknowledge everything.
    pub shutdown_timeout: u64,
    /// Cluster mode: the node speaks Redis Cluster (slots owned by nodes, MOVED/ASK, the
    /// cluster bus on `cluster_port`, or the client port + 10000).
    pub cluster_enabled: bool,
    /// Where the node keeps its cluster state (its id, the nodes it knows, their slots).
    pub cluster_config_file: String,
    /// Milliseconds without an answer after which a node is suspected to have failed.
    pub cluster_node_timeout: u64,
    /// The cluster bus port (0: the client port + 10000).
    pub cluster_port: u64,
    /// What the node tells the others of its address (empty, 0: what they see).
    pub cluster_announce_ip: String,
    pub cluster_announce_port: u64,
    pub cluster_announce_bus_port: u64,
    /// The cluster stops serving when some slot has no working owner.
    pub cluster_require_full_coverage: bool,
    /// A failed cluster still answers reads.
    pub cluster_allow_reads_when_down: bool,
    /// A failed cluster still serves sharded Pub/Sub.
    pub cluster_allow_pubsubshard_when_down: bool,
    /// Directives Redis has and Shoal accepts with no effect (or an effect elsewhere, such as
    /// `replica-priority` in INFO), by name, when set to something other than their default
    /// (see `table::Kind::Compat`).
    pub compat: std::collections::BTreeMap<&'static str, String>,
    /// Bytes of the replication stream kept for replicas that reconnect (partial resync).
    pub repl_backlog_size: u64,
    /// Seconds without replicas after which the backlog is freed (0: never).
    pub repl_backlog_ttl: u64,
    /// Seconds between the PINGs a master sends its replicas.
    pub repl_ping_replica_period: u64,
    /// Seconds without a sign of life before a replication link counts as dead.
    pub repl_timeout: u64,
    /// Log commands slower than this, microseconds; -1 disables, 0 logs all.
    pub slowlog_log_slower_than: i64,
    pub slowlog_max_len: u64,
    /// Entries ACL LOG keeps.
    pub acllog_max_len: u64,
    /// Record latency spikes above this, milliseconds; 0 disables.
    pub latency_monitor_threshold: u64,
    /// Keep per-command latency histograms (INFO latencystats, LATENCY HISTOGRAM).
    pub latency_tracking: bool,
    /// The percentiles INFO latencystats prints, each within [0, 100].
    pub latency_tracking_info_percentiles: Percentiles,
    /// 1..=10: how hard the active expiry cycle works.
    pub active_expire_effort: u32,
    pub lfu_log_factor: u32,
    /// Minutes.
    pub lfu_decay_time: u32,
    /// Always false: Shoal has no active defragmentation.
    pub activedefrag: bool,
    /// Accepted for compatibility and ignored: Shoal's threads are its cores
    /// (see `threads`).
    pub io_threads: u32,
    pub enable_protected_configs: ProtectedConfigs,
    /// Shoal only: how many cores (threads) to run; 0 means one per CPU in
    /// the process's affinity mask, resolved by the server.
    pub threads: u32,
    /// The absolute path of the file this was loaded from, for REWRITE.
    pub(crate) source_path: Option<PathBuf>,
}

impl Default for Config {
    /// Redis 7's defaults (7.2's for `set-max-listpack-*` and `loglevel`).
    fn default() -> Self {
        const MB: u64 = 1024 * 1024;
        Config {
            bind: vec!["127.0.0.1".to_owned(), "-::1".to_owned()],
            port: 6379,
            protected_mode: true,
            tcp_backlog: 511,
            timeout: 0,
            tcp_keepalive: 300,
            daemonize: false,
            disable_thp: true,
            pidfile: String::new(),
            unixsocket: String::new(),
            loglevel: LogLevel::Notice,
            logfile: String::new(),
            databases: 16,
            always_show_logo: false,
            hz: 10,
            dynamic_hz: true,
            maxclients: 10_000,
            maxmemory: 0,
            maxmemory_policy: MaxmemoryPolicy::Noeviction,
            maxmemory_samples: 5,
            maxmemory_eviction_tenacity: 10,
            proto_max_bulk_len: 512 * MB,
            client_query_buffer_limit: 1024 * MB,
            client_output_buffer_limit: ClientOutputBufferLimits {
                normal: OutputBufferLimit { hard_bytes: 0, soft_bytes: 0, soft_seconds: 0 },
                replica: OutputBufferLimit { hard_bytes: 256 * MB, soft_bytes: 64 * MB, soft_seconds: 60 },
                pubsub: OutputBufferLimit { hard_bytes: 32 * MB, soft_bytes: 8 * MB, soft_seconds: 60 },
            },
            dir: "./".to_owned(),
            dbfilename: "dump.rdb".to_owned(),
            save: vec![SavePoint { seconds: 3600, changes: 1 }, SavePoint { seconds: 300, changes: 100 }, SavePoint { seconds: 60, changes: 10_000 }],
            rdbcompression: true,
            rdbchecksum: true,
            stop_writes_on_bgsave_error: true,
            appendonly: false,
            appendfilename: "appendonly.aof".to_owned(),
            appenddirname: "appendonlydir".to_owned(),
            appendfsync: AppendFsync::Everysec,
            no_appendfsync_on_rewrite: false,
            auto_aof_rewrite_percentage: 100,
            auto_aof_rewrite_min_size: 64 * MB,
            aof_load_truncated: true,
            aof_use_rdb_preamble: true,
            aof_timestamp_enabled: false,
            requirepass: String::new(),
            lazyfree_lazy_eviction: false,
            lazyfree_lazy_expire: false,
            lazyfree_lazy_server_del: false,
            lazyfree_lazy_user_del: false,
            lazyfree_lazy_user_flush: false,
            script_undeclared_keys: false,
            busy_reply_threshold: 5000,
            key_load_delay: 0,
            notify_keyspace_events: KeyspaceEvents::default(),
            list_max_listpack_size: -2,
            list_compress_depth: 0,
            hash_max_listpack_entries: 512,
            hash_max_listpack_value: 64,
            hash_min_template_entries: 0,
            hash_max_template_entries: 0,
            hash_rdb_load_min_template_entries: 0,
            hash_rdb_load_max_template_entries: 0,
            hash_rdb_load_template_disassembly_threshold: 0,
            set_max_intset_entries: 512,
            set_max_listpack_entries: 128,
            set_max_listpack_value: 64,
            zset_max_listpack_entries: 128,
            zset_max_listpack_value: 64,
            hll_sparse_max_bytes: 3000,
            stream_node_max_bytes: 4096,
            stream_node_max_entries: 100,
            tracking_table_max_keys: 1_000_000,
            replicaof: None,
            replica_read_only: true,
            replica_serve_stale_data: true,
            repl_diskless_sync: true,
            min_replicas_to_write: 0,
            min_replicas_max_lag: 10,
            masterauth: String::new(),
            masteruser: String::new(),
            shutdown_timeout: 10,
            cluster_enabled: false,
            cluster_config_file: "nodes.conf".to_owned(),
            cluster_node_timeout: 15_000,
            cluster_port: 0,
            cluster_announce_ip: String::new(),
            cluster_announce_port: 0,
            cluster_announce_bus_port: 0,
            cluster_require_full_coverage: true,
            cluster_allow_reads_when_down: false,
            cluster_allow_pubsubshard_when_down: true,
            compat: std::collections::BTreeMap::new(),
            repl_backlog_size: 1024 * 1024,
            repl_backlog_ttl: 3600,
            repl_ping_replica_period: 10,
            repl_timeout: 60,
            slowlog_log_slower_than: 10_000,
            slowlog_max_len: 128,
            acllog_max_len: 128,
            latency_monitor_threshold: 0,
            latency_tracking: true,
            latency_tracking_info_percentiles: Percentiles(vec![50.0, 99.0, 99.9]),
            active_expire_effort: 1,
            lfu_log_factor: 10,
            lfu_decay_time: 1,
            activedefrag: false,
            io_threads: 1,
            enable_protected_configs: ProtectedConfigs::No,
            threads: 0,
            source_path: None,
        }
    }
}

impl Config {
    /// The absolute path of the configuration file this was loaded from, if
    /// any. CONFIG REWRITE writes there.
    pub fn source_path(&self) -> Option<&std::path::Path> {
        self.source_path.as_deref()
    }
}
