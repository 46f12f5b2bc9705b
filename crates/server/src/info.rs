//! INFO [section [section ...]]: Redis's sections, field names and layout (`# Section`
//! headers, `name:value` lines, CRLF line ends, a blank line between sections).
//!
//! Counters live on every core (command and error statistics, keyspace sizes and hits); INFO
//! adds them up with one `call_all`. Process-wide figures (memory, CPU, uptime) come from the
//! operating system. Fields for subsystems Shoal does not have yet (persistence,
//! replication, modules, cluster) report what is true of a server without them; fields we
//! do not measure (network bytes, latency percentiles) are left out rather than made up.
//!
//! `used_memory` is what the allocator counted as asked for and not freed, by every thread
//! (`alloc::used_bytes`), the figure `maxmemory` is checked against, as Redis's is;
//! `used_memory_rss` is the process's resident set size from /proc. `used_memory_peak` is the largest `used_memory` INFO has seen.

use std::fmt::Write as _;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use shoal_resp::Frame;
use shoal_runtime::stats::CoreStats;
use shoal_store::DbStats;

use crate::node::Node;
use crate::server_commands::{text, REDIS_VERSION};

/// An INFO section, in the order Redis prints them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Server,
    Clients,
    Memory,
    Persistence,
    Stats,
    Replication,
    Cpu,
    Modules,
    Commandstats,
    Errorstats,
    Latencystats,
    Cluster,
    Keyspace,
}

impl Section {
    pub const ALL: [Section; 13] = [
        Section::Server,
        Section::Clients,
        Section::Memory,
        Section::Persistence,
        Section::Stats,
        Section::Replication,
        Section::Cpu,
        Section::Modules,
        Section::Commandstats,
        Section::Errorstats,
        Section::Latencystats,
        Section::Cluster,
        Section::Keyspace,
    ];

    /// The name INFO takes as an argument.
    pub fn name(self) -> &'static str {
        match self {
            Section::Server => "server",
            Section::Clients => "clients",
            Section::Memory => "memory",
            Section::Persistence => "persistence",
            Section::Stats => "stats",
            Section::Replication => "replication",
            Section::Cpu => "cpu",
            Section::Modules => "modules",
            Section::Commandstats => "commandstats",
            Section::Errorstats => "errorstats",
            Section::Latencystats => "latencystats",
            Section::Cluster => "cluster",
            Section::Keyspace => "keyspace",
        }
    }

    /// The `# Title` header.
    fn title(self) -> &'static str {
        match self {
            Section::Server => "Server",
            Section::Clients => "Clients",
            Section::Memory => "Memory",
            Section::Persistence => "Persistence",
            Section::Stats => "Stats",
            Section::Replication => "Replication",
            Section::Cpu => "CPU",
            Section::Modules => "Modules",
            Section::Commandstats => "Commandstats",
            Section::Errorstats => "Errorstats",
            Section::Latencystats => "Latencystats",
            Section::Cluster => "Cluster",
            Section::Keyspace => "Keyspace",
        }
    }

    /// Whether plain INFO (and `default`) includes the section.
    fn is_default(self) -> bool {
        !matches!(self, Section::Commandstats | Section::Latencystats)
    }

    /// Whether the section needs the counters of every core.
    fn needs_cores(self) -> bool {
        matches!(
            self,
            Section::Clients
                | Section::Memory
                | Section::Persistence
                | Section::Stats
                | Section::Commandstats
                | Section::Latencystats
                | Section::Errorstats
                | Section::Keyspace
        )
    }
}

/// The sections INFO's arguments ask for, in Redis's order: none means `default`; `all` and
/// `everything` mean every section (Shoal has no module sections, which is all they differ
/// by); unknown names are ignored. Case does not matter.
pub fn requested(args: &[Bytes]) -> Vec<Section> {
    let mut wanted = [false; Section::ALL.len()];
    if args.is_empty() {
        wanted = Section::ALL.map(Section::is_default);
    }
    for arg in args {
        let name = String::from_utf8_lossy(arg).to_ascii_lowercase();
        match name.as_str() {
            "all" | "everything" => wanted = [true; Section::ALL.len()],
            "default" => {
                for (i, section) in Section::ALL.iter().enumerate() {
                    wanted[i] |= section.is_default();
                }
            }
            _ => {
                if let Some(i) = Section::ALL.iter().position(|s| s.name() == name) {
                    wanted[i] = true;
                }
            }
        }
    }
    Section::ALL.iter().zip(wanted).filter(|(_, w)| *w).map(|(s, _)| *s).collect()
}

/// CPU time, as `getrusage` reports it.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuTimes {
    pub sys: Duration,
    pub user: Duration,
}

/// Everything INFO prints, gathered first so that rendering is a pure function.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// `latency-tracking` and its percentiles (INFO latencystats).
    pub latency_tracking: Option<Vec<f64>>,
    pub process_id: u32,
    pub run_id: String,
    pub os: String,
    pub port: u16,
    pub bind: Vec<String>,
    pub hz: u32,
    pub now_us: u64,
    pub uptime_s: u64,
    pub executable: String,
    pub config_file: String,
    pub threads: usize,
    /// How the cores read their sockets (see `crate::socket`).
    pub socket_io: &'static str,
    pub socket_buffer_givebacks: u64,
    pub connected_clients: usize,
    pub blocked_clients: usize,
    /// The largest query buffer and pending output of any client lately (see
    /// `crate::client::Buffers`).
    pub client_recent_max: (usize, usize),
    /// Keys with blocked clients, counted per core that owns them.
    pub blocking_keys: usize,
    pub lazyfree: (u64, u64),
    pub maxclients: u32,
    pub used_memory: u64,
    pub used_memory_rss: u64,
    pub used_memory_peak: u64,
    pub total_system_memory: u64,
    pub maxmemory: u64,
    pub maxmemory_policy: String,
    pub connections_received: u64,
    pub rejected_connections: u64,
    /// Commands per second over the last samples, every core added up.
    pub ops_per_second: u64,
    /// Every core's command and error statistics, added up.
    pub stats: CoreStats,
    /// Every core's keyspace counters, added up.
    pub db_stats: DbStats,
    /// Every core's change count (Redis's `dirty`), added up.
    pub changes: u64,
    /// Per database: (keys, keys with a TTL, hashes with field TTLs), over every core.
    pub keyspace: Vec<(usize, usize, usize)>,
    pub cpu_process: CpuTimes,
    pub cpu_children: CpuTimes,
    /// The core thread that answered INFO (Redis's `_main_thread` fields).
    pub cpu_thread: CpuTimes,
    /// Channels and patterns with a subscriber (every core knows them all), and shard channels
    /// with one (each counted by the core that owns it, added up).
    pub pubsub_channels: usize,
    pub pubsub_patterns: usize,
    pub pubsub_shard_channels: usize,
    /// INFO's tracking_total_keys, tracking_total_items and tracking_total_prefixes.
    pub tracking_keys: usize,
    pub tracking_items: usize,
    pub tracking_prefixes: usize,
    /// HIMPORT's field-name templates in use, every core's added up (see
    /// `shoal_store::types::template`).
    pub hash_templates: usize,
    /// Where the memory goes (only gathered for the memory section).
    pub memory: crate::memory_stats::MemoryReport,
}

/// INFO [section [section ...]]
pub async fn info(node: &Rc<Node>, args: &[Bytes]) -> Frame {
    let sections = requested(&args[1..]);
    let snapshot = snapshot(node, &sections).await;
    text(render(&sections, &snapshot))
}

/// One core's counters.
struct CoreReport {
    stats: CoreStats,
    ops_per_second: u64,
    db_stats: DbStats,
    /// The core's change count (Redis's `dirty`) now, not as its cron last published it.
    changes: u64,
    keyspace: Vec<(usize, usize, usize)>,
    blocked_clients: usize,
    blocking_keys: usize,
    /// The largest recent (query buffer, pending output) of this core's clients.
    client_recent_max: (usize, usize),
    /// (pending, freed) of the lazyfree thread every core shares.
    lazyfree: (u64, u64),
    /// (channels, patterns, shard channels owned) with subscribers.
    pubsub: (usize, usize, usize),
    /// Client-side caching: (keys, items, prefixes) remembered on the core.
    tracking: (usize, usize, usize),
    /// Field-name templates some hash of this core uses.
    hash_templates: usize,
}

async fn snapshot(node: &Rc<Node>, sections: &[Section]) -> Snapshot {
    let mut snapshot = Snapshot::default();
    if sections.iter().any(|s| s.needs_cores()) {
        let reports = node
            .core
            .call_all(|core| CoreReport {
                stats: core.stats.borrow().clone(),
                ops_per_second: core.stats.borrow().ops_rate.per_second(),
                db_stats: core.with_shard(|shard| shard.stats()),
                changes: core.with_shard(|shard| shard.dbs.iter().map(|db| db.stats.changes).sum()),
                keyspace: core.with_shard(|shard| shard.dbs.iter().map(|db| (db.len(), db.expires_len(), db.volatile_hashes())).collect()),
                blocked_clients: core.blocked_clients(),
                blocking_keys: core.blocking_keys(),
                client_recent_max: {
                    let now = crate::client::coarse_ms();
                    crate::node::current()
                        .clients
                        .borrow()
                        .values()
                        .map(|c| c.buffers.get().recent_peaks(now))
                        .fold((0, 0), |a, b| (a.0.max(b.0), a.1.max(b.1)))
                },
                lazyfree: core.with_shard(|shard| {
                    shard.lazyfree.as_ref().map_or((0, 0), |l| (l.stats.pending.load(Ordering::Relaxed), l.stats.freed.load(Ordering::Relaxed)))
                }),
                pubsub: core.pubsub_info(),
                tracking: core.tracking_totals(),
                hash_templates: shoal_store::types::template::in_use(),
            })
            .await;
        for report in reports {
            snapshot.stats.merge(&report.stats);
            snapshot.ops_per_second += report.ops_per_second;
            snapshot.blocked_clients += report.blocked_clients;
            snapshot.client_recent_max =
                (snapshot.client_recent_max.0.max(report.client_recent_max.0), snapshot.client_recent_max.1.max(report.client_recent_max.1));
            snapshot.blocking_keys += report.blocking_keys;
            snapshot.lazyfree = report.lazyfree;
            snapshot.changes += report.changes;
            snapshot.pubsub_shard_channels += report.pubsub.2;
            snapshot.tracking_keys += report.tracking.0;
            snapshot.tracking_items += report.tracking.1;
            // Every core holds every BCAST prefix.
            snapshot.tracking_prefixes = report.tracking.2;
            snapshot.hash_templates += report.hash_templates;
            snapshot.db_stats.expired_keys += report.db_stats.expired_keys;
            snapshot.db_stats.expired_fields += report.db_stats.expired_fields;
            snapshot.db_stats.evicted_keys += report.db_stats.evicted_keys;
            snapshot.db_stats.keyspace_hits += report.db_stats.keyspace_hits;
            snapshot.db_stats.keyspace_misses += report.db_stats.keyspace_misses;
            snapshot.keyspace.resize(snapshot.keyspace.len().max(report.keyspace.len()), (0, 0, 0));
            for (total, (keys, expires, volatile_hashes)) in snapshot.keyspace.iter_mut().zip(report.keyspace) {
                total.0 += keys;
                total.1 += expires;
                total.2 += volatile_hashes;
            }
        }
    }
    if sections.contains(&Section::Memory) {
        snapshot.memory = crate::memory_stats::report(node).await;
    }
    let config = node.config.borrow();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let uptime = node.started.elapsed();
    let (run_id, _) = ids();
    let shared = &node.core.shared;
    // What maxmemory is checked against, as Redis's used_memory is.
    let used_memory = crate::alloc::used_bytes();
    Snapshot {
        latency_tracking: config.latency_tracking.then(|| config.latency_tracking_info_percentiles.0.clone()),
        process_id: std::process::id(),
        run_id: run_id.to_owned(),
        os: system::os_name(),
        port: config.port,
        bind: config.bind.clone(),
        hz: config.hz,
        now_us: now.as_micros() as u64,
        uptime_s: uptime.as_secs(),
        executable: std::env::current_exe().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default(),
        config_file: config.source_path().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default(),
        threads: node.core.shard_count,
        socket_io: crate::socket::path_name(node.core.shard_count),
        socket_buffer_givebacks: crate::socket::buffer_givebacks(),
        connected_clients: shared.clients.load(Ordering::Relaxed),
        maxclients: config.maxclients,
        used_memory,
        used_memory_rss: system::resident_bytes(),
        used_memory_peak: record_peak(used_memory),
        total_system_memory: system::total_memory_bytes(),
        maxmemory: config.maxmemory,
        maxmemory_policy: config.maxmemory_policy.as_str().to_owned(),
        connections_received: shared.connections_received.load(Ordering::Relaxed),
        rejected_connections: shared.rejected_connections.load(Ordering::Relaxed),
        cpu_process: system::cpu_times(system::RUSAGE_SELF),
        cpu_children: system::cpu_times(system::RUSAGE_CHILDREN),
        cpu_thread: system::cpu_times(system::RUSAGE_THREAD),
        pubsub_channels: node.core.pubsub_info().0,
        pubsub_patterns: node.core.pubsub_info().1,
        ..snapshot
    }
}

/// The highest `used_memory` seen so far (by INFO).
pub(crate) fn record_peak(used: u64) -> u64 {
    static PEAK: AtomicU64 = AtomicU64::new(0);
    PEAK.fetch_max(used, Ordering::Relaxed).max(used)
}

/// The run id and the replication id: 40 random hex characters each, fixed for the process.
pub fn ids() -> (&'static str, &'static str) {
    static IDS: OnceLock<(String, String)> = OnceLock::new();
    let (run, replication) = IDS.get_or_init(|| (system::random_hex40(), system::random_hex40()));
    (run, replication)
}

/// Redis's `bytesToHuman`.
pub fn bytes_to_human(n: u64) -> String {
    const UNITS: [(u64, &str); 5] = [(1 << 10, "K"), (1 << 20, "M"), (1 << 30, "G"), (1 << 40, "T"), (1 << 50, "P")];
    if n < 1024 {
        return format!("{n}B");
    }
    for (unit, suffix) in UNITS {
        if n < unit * 1024 {
            return format!("{:.2}{suffix}", n as f64 / unit as f64);
        }
    }
    format!("{n}B")
}

fn seconds(d: Duration) -> String {
    format!("{}.{:06}", d.as_secs(), d.subsec_micros())
}

/// The text of the requested sections.
pub fn render(sections: &[Section], s: &Snapshot) -> String {
    let mut out = String::new();
    for (i, &section) in sections.iter().enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        out.push_str("# ");
        out.push_str(section.title());
        out.push_str("\r\n");
        for (name, value) in fields(section, s) {
            let _ = write!(out, "{name}:{value}\r\n");
        }
    }
    out
}

/// The `name:value` lines of one section.
fn fields(section: Section, s: &Snapshot) -> Vec<(String, String)> {
    let mut lines: Vec<(String, String)> = Vec::new();
    let mut add = |name: &str, value: String| lines.push((name.to_owned(), value));
    match section {
        Section::Server => {
            add("redis_version", REDIS_VERSION.to_owned());
            add("redis_git_sha1", "00000000".to_owned());
            add("redis_git_dirty", "0".to_owned());
            add("redis_build_id", "0".to_owned());
            add("redis_mode", "standalone".to_owned());
            add("os", s.os.clone());
            add("arch_bits", (usize::BITS).to_string());
            add("monotonic_clock", "POSIX clock_gettime".to_owned());
            add("multiplexing_api", "io_uring".to_owned());
            add("atomicvar_api", "c11-builtin".to_owned());
            // Not built by GCC; Redis prints 0.0.0 then.
            add("gcc_version", "0.0.0".to_owned());
            add("process_id", s.process_id.to_string());
            add("process_supervised", "no".to_owned());
            add("run_id", s.run_id.clone());
            add("tcp_port", s.port.to_string());
            add("server_time_usec", s.now_us.to_string());
            add("uptime_in_seconds", s.uptime_s.to_string());
            add("uptime_in_days", (s.uptime_s / 86_400).to_string());
            add("hz", s.hz.to_string());
            add("configured_hz", s.hz.to_string());
            add("lru_clock", ((s.now_us / 1_000_000) & 0xFF_FFFF).to_string());
            add("executable", s.executable.clone());
            add("config_file", s.config_file.clone());
            add("io_threads_active", "0".to_owned());
            if s.port != 0 {
                let binds: String = s.bind.iter().map(|b| format!(",bind={b}")).collect();
                add("listener0", format!("name=tcp{binds},port={}", s.port));
            }
            add("shoal_version", env!("CARGO_PKG_VERSION").to_owned());
            add("threads", s.threads.to_string());
            add("shoal_socket_io", s.socket_io.to_owned());
            add("shoal_socket_buffer_givebacks", s.socket_buffer_givebacks.to_string());
        }
        Section::Clients => {
            add("connected_clients", s.connected_clients.to_string());
            add("cluster_connections", "0".to_owned());
            add("maxclients", s.maxclients.to_string());
            add("client_recent_max_input_buffer", s.client_recent_max.0.to_string());
            add("client_recent_max_output_buffer", s.client_recent_max.1.to_string());
            add("blocked_clients", s.blocked_clients.to_string());
            add("tracking_clients", shoal_runtime::tracking::clients().to_string());
            add("clients_in_timeout_table", "0".to_owned());
            add("total_blocking_keys", s.blocking_keys.to_string());
            add("total_blocking_keys_on_nokey", "0".to_owned());
        }
        Section::Memory => {
            let peak = s.used_memory_peak.max(s.used_memory);
            add("used_memory", s.used_memory.to_string());
            add("used_memory_human", bytes_to_human(s.used_memory));
            add("used_memory_rss", s.used_memory_rss.to_string());
            add("used_memory_rss_human", bytes_to_human(s.used_memory_rss));
            add("used_memory_peak", peak.to_string());
            add("used_memory_peak_human", bytes_to_human(peak));
            add("used_memory_peak_perc", format!("{:.2}%", if peak == 0 { 0.0 } else { s.used_memory as f64 * 100.0 / peak as f64 }));
            let m = &s.memory;
            add("used_memory_overhead", m.overhead().to_string());
            add("used_memory_startup", m.startup.to_string());
            add("used_memory_dataset", m.dataset().to_string());
            add("used_memory_dataset_perc", format!("{:.2}%", m.dataset_percentage()));
            add("allocator_allocated", m.used.to_string());
            add("allocator_active", m.allocator_active.to_string());
            add("allocator_resident", m.allocator_resident.to_string());
            add("total_system_memory", s.total_system_memory.to_string());
            add("total_system_memory_human", bytes_to_human(s.total_system_memory));
            let (vm_eval, vm_functions) = (m.engine.vm_eval as u64, m.engine.vm_functions as u64);
            add("used_memory_lua", vm_eval.to_string());
            add("used_memory_vm_eval", vm_eval.to_string());
            add("used_memory_lua_human", bytes_to_human(vm_eval));
            add("used_memory_scripts_eval", m.engine.scripts_eval.to_string());
            add("number_of_cached_scripts", m.engine.cached_scripts.to_string());
            add("number_of_functions", m.functions.to_string());
            add("number_of_libraries", m.libraries.to_string());
            add("used_memory_vm_functions", vm_functions.to_string());
            add("used_memory_vm_total", (vm_eval + vm_functions).to_string());
            add("used_memory_vm_total_human", bytes_to_human(vm_eval + vm_functions));
            add("used_memory_functions", m.engine.functions.to_string());
            let scripts = (m.engine.scripts_eval + m.engine.functions) as u64;
            add("used_memory_scripts", scripts.to_string());
            add("used_memory_scripts_human", bytes_to_human(scripts));
            add("maxmemory", s.maxmemory.to_string());
            add("maxmemory_human", bytes_to_human(s.maxmemory));
            add("maxmemory_policy", s.maxmemory_policy.clone());
            let ratios = m.ratios();
            add("allocator_frag_ratio", format!("{:.2}", ratios.allocator_fragmentation.0));
            add("allocator_frag_bytes", ratios.allocator_fragmentation.1.to_string());
            add("allocator_rss_ratio", format!("{:.2}", ratios.allocator_rss.0));
            add("allocator_rss_bytes", ratios.allocator_rss.1.to_string());
            add("rss_overhead_ratio", format!("{:.2}", ratios.rss_overhead.0));
            add("rss_overhead_bytes", ratios.rss_overhead.1.to_string());
            let ratio = if s.used_memory == 0 { 0.0 } else { s.used_memory_rss as f64 / s.used_memory as f64 };
            add("mem_fragmentation_ratio", format!("{ratio:.2}"));
            add("mem_fragmentation_bytes", (s.used_memory_rss as i64 - s.used_memory as i64).to_string());
            // Everything allocated counts against maxmemory (no replica or AOF buffers apart).
            add("mem_not_counted_for_evict", "0".to_owned());
            add("mem_replication_backlog", crate::replication::backlog_bytes().to_string());
            add("mem_total_replication_buffers", "0".to_owned());
            add("mem_clients_slaves", "0".to_owned());
            add("mem_clients_normal", m.clients_normal.to_string());
            add("mem_cluster_links", "0".to_owned());
            add("mem_aof_buffer", "0".to_owned());
            add("mem_allocator", mem_allocator());
            add("active_defrag_running", "0".to_owned());
            add("lazyfree_pending_objects", s.lazyfree.0.to_string());
            add("lazyfreed_objects", s.lazyfree.1.to_string());
        }
        Section::Persistence => {
            let save = crate::save::info(s.changes);
            let loading = crate::rdb_load::loading();
            add("loading", (loading as u8).to_string());
            add("async_loading", "0".to_owned());
            if loading {
                let (started_s, total, loaded) = crate::rdb_load::progress();
                let now_s = (shoal_runtime::now_ms() / 1000) as i64;
                let perc = if total == 0 { 0.0 } else { loaded as f64 * 100.0 / total as f64 };
                let elapsed = (now_s - started_s).max(0);
                let eta = if loaded == 0 { 1 } else { ((total.saturating_sub(loaded)) as f64 / (loaded as f64 / elapsed.max(1) as f64)) as i64 };
                add("loading_start_time", started_s.to_string());
                add("loading_total_bytes", total.to_string());
                add("loading_rdb_used_mem", "0".to_owned());
                add("loading_loaded_bytes", loaded.to_string());
                add("loading_loaded_perc", format!("{perc:.2}"));
                add("loading_eta_seconds", eta.to_string());
            }
            add("current_cow_peak", "0".to_owned());
            add("current_cow_size", "0".to_owned());
            add("current_cow_size_age", "0".to_owned());
            add("current_fork_perc", "0.00".to_owned());
            add("current_save_keys_processed", "0".to_owned());
            add("current_save_keys_total", "0".to_owned());
            add("rdb_changes_since_last_save", save.changes_since_save.to_string());
            add("rdb_bgsave_in_progress", (save.in_progress as u8).to_string());
            add("rdb_last_save_time", save.last_save_s.to_string());
            add("rdb_last_bgsave_status", if save.last_ok { "ok" } else { "err" }.to_owned());
            add("rdb_last_bgsave_time_sec", save.last_duration_s.to_string());
            add("rdb_current_bgsave_time_sec", save.current_duration_s.to_string());
            add("rdb_saves", save.saves.to_string());
            // No fork, so no copy-on-write: the values copied aside during the last save.
            add("rdb_last_cow_size", save.last_copied_bytes.to_string());
            add("aof_enabled", (shoal_runtime::aof::LOG.file_on() as u8).to_string());
            let (rewriting, scheduled, rewrite_ok, rewrites, last_rewrite_s) = crate::save::rewrite_info();
            add("aof_rewrite_in_progress", (rewriting as u8).to_string());
            add("aof_rewrite_scheduled", (scheduled as u8).to_string());
            add("aof_last_rewrite_time_sec", last_rewrite_s.to_string());
            add("aof_current_rewrite_time_sec", "-1".to_owned());
            add("aof_last_bgrewrite_status", if rewrite_ok { "ok" } else { "err" }.to_owned());
            add("aof_rewrites", rewrites.to_string());
            add("aof_last_write_status", if crate::aof::write_error_refusal().is_some() { "err" } else { "ok" }.to_owned());
        }
        Section::Stats => {
            let errors: u64 = s.stats.errors.values().sum();
            add("total_connections_received", s.connections_received.to_string());
            add("total_commands_processed", s.stats.commands_processed.to_string());
            // Not measured yet.
            add("instantaneous_ops_per_sec", s.ops_per_second.to_string());
            add("rejected_connections", s.rejected_connections.to_string());
            let [full, partial_ok, partial_err] = crate::replication::sync_counts();
            add("sync_full", full.to_string());
            add("sync_partial_ok", partial_ok.to_string());
            add("sync_partial_err", partial_err.to_string());
            add("expired_keys", s.db_stats.expired_keys.to_string());
            add("expired_subkeys", s.db_stats.expired_fields.to_string());
            add("evicted_keys", s.db_stats.evicted_keys.to_string());
            add("evicted_clients", crate::client::EVICTED_CLIENTS.load(std::sync::atomic::Ordering::Relaxed).to_string());
            add("keyspace_hits", s.db_stats.keyspace_hits.to_string());
            add("keyspace_misses", s.db_stats.keyspace_misses.to_string());
            add("pubsub_channels", s.pubsub_channels.to_string());
            add("pubsub_patterns", s.pubsub_patterns.to_string());
            add("pubsubshard_channels", s.pubsub_shard_channels.to_string());
            add("latest_fork_usec", "0".to_owned());
            add("total_forks", "0".to_owned());
            add("tracking_total_keys", s.tracking_keys.to_string());
            add("tracking_total_items", s.tracking_items.to_string());
            add("tracking_total_prefixes", s.tracking_prefixes.to_string());
            add("hash_templates", s.hash_templates.to_string());
            add("hash_template_keys", shoal_store::types::template::template_hashes().to_string());
            add("unexpected_error_replies", "0".to_owned());
            add("total_error_replies", errors.to_string());
        }
        Section::Replication => {
            if !crate::replica::info(&mut |name, value| add(name, value)) {
                add("role", "master".to_owned());
                crate::replication::info(&mut |name, value| add(name, value));
            }
        }
        Section::Cpu => {
            add("used_cpu_sys", seconds(s.cpu_process.sys));
            add("used_cpu_user", seconds(s.cpu_process.user));
            add("used_cpu_sys_children", seconds(s.cpu_children.sys));
            add("used_cpu_user_children", seconds(s.cpu_children.user));
            add("used_cpu_sys_main_thread", seconds(s.cpu_thread.sys));
            add("used_cpu_user_main_thread", seconds(s.cpu_thread.user));
        }
        Section::Modules => {}
        // Per command run: its latency at each configured percentile, in microseconds
        // (Redis's `fillPercentileDistributionLatencies`); the header alone when tracking is
        // off.
        Section::Latencystats => {
            if let Some(percentiles) = &s.latency_tracking {
                let commands = s.stats.commands();
                let mut commands: Vec<_> = commands.iter().filter(|(_, c)| c.histogram.total() > 0).collect();
                commands.sort_by_key(|(name, _)| *name);
                for (name, stat) in commands {
                    let values: Vec<String> = percentiles
                        .iter()
                        .map(|&p| {
                            let label = shoal_config::trim_double(&format!("{p:.6}"));
                            format!("p{label}={:.3}", stat.histogram.value_at_percentile(p) as f64 / 1000.0)
                        })
                        .collect();
                    add(&format!("latency_percentiles_usec_{name}"), values.join(","));
                }
            }
        }
        Section::Commandstats => {
            let commands = s.stats.commands();
            let mut commands: Vec<_> = commands.iter().filter(|(_, c)| c.calls > 0 || c.rejected_calls > 0 || c.failed_calls > 0).collect();
            commands.sort_by_key(|(name, _)| *name);
            for (name, stat) in commands {
                let per_call = if stat.calls == 0 { 0.0 } else { stat.usec as f64 / stat.calls as f64 };
                add(
                    &format!("cmdstat_{name}"),
                    format!(
                        "calls={},usec={},usec_per_call={per_call:.2},rejected_calls={},failed_calls={}",
                        stat.calls, stat.usec, stat.rejected_calls, stat.failed_calls
                    ),
                );
            }
        }
        Section::Errorstats => {
            let mut errors: Vec<_> = s.stats.errors.iter().collect();
            errors.sort();
            for (prefix, count) in errors {
                add(&format!("errorstat_{prefix}"), format!("count={count}"));
            }
        }
        Section::Cluster => add("cluster_enabled", if crate::cluster::enabled() { "1" } else { "0" }.to_owned()),
        Section::Keyspace => {
            // Redis 7.4's line: `subexpiry` counts the hashes with field TTLs.
            for (db, &(keys, expires, volatile_hashes)) in s.keyspace.iter().enumerate() {
                if keys > 0 || expires > 0 {
                    add(&format!("db{db}"), format!("keys={keys},expires={expires},avg_ttl=0,subexpiry={volatile_hashes}"));
                }
            }
        }
    }
    lines
}

/// What INFO asks of the operating system.
pub(crate) mod system {
    use std::time::Duration;

    use super::CpuTimes;

    pub const RUSAGE_SELF: libc::c_int = 0;
    pub const RUSAGE_CHILDREN: libc::c_int = -1;
    /// Linux's per-thread usage (not exported by the libc crate for glibc).
    pub const RUSAGE_THREAD: libc::c_int = 1;

    pub fn cpu_times(who: libc::c_int) -> CpuTimes {
        // SAFETY: getrusage fills the zeroed struct we pass; nothing else is read or kept.
        let usage = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            if libc::getrusage(who, &mut usage) != 0 {
                return CpuTimes::default();
            }
            usage
        };
        let duration = |t: libc::timeval| Duration::new(t.tv_sec.max(0) as u64, (t.tv_usec.clamp(0, 999_999) as u32) * 1000);
        CpuTimes { sys: duration(usage.ru_stime), user: duration(usage.ru_utime) }
    }

    /// `uname -srm`, as Redis's `os` field.
    pub fn os_name() -> String {
        // SAFETY: uname fills the zeroed struct; its fields are NUL-terminated C strings.
        unsafe {
            let mut name: libc::utsname = std::mem::zeroed();
            if libc::uname(&mut name) != 0 {
                return String::new();
            }
            let field = |f: &[libc::c_char]| std::ffi::CStr::from_ptr(f.as_ptr()).to_string_lossy().into_owned();
            format!("{} {} {}", field(&name.sysname), field(&name.release), field(&name.machine))
        }
    }

    pub(crate) fn page_size() -> u64 {
        // SAFETY: sysconf only reads a system constant.
        let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if size > 0 {
            size as u64
        } else {
            4096
        }
    }

    /// The resident set size, from /proc/self/statm.
    pub fn resident_bytes() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
        let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
        pages * page_size()
    }

    /// Bytes mimalloc holds committed for the heaps. Committed is not resident: Linux backs
    /// a page when it is first touched, and mimalloc does not measure residency there.
    pub fn allocator_bytes() -> u64 {
        let mut counters = [0usize; 8];
        let [elapsed, user, system, rss, peak_rss, commit, peak_commit, faults] = &mut counters;
        // SAFETY: mi_process_info writes each counter through the pointers we pass, nothing else.
        unsafe { libmimalloc_sys::mi_process_info(elapsed, user, system, rss, peak_rss, commit, peak_commit, faults) };
        *commit as u64
    }

    pub fn total_memory_bytes() -> u64 {
        // SAFETY: sysconf only reads a system constant.
        let pages = unsafe { libc::sysconf(libc::_SC_PHYS_PAGES) };
        if pages > 0 {
            pages as u64 * page_size()
        } else {
            0
        }
    }

    /// 40 random hex characters (20 bytes from the kernel's random source).
    pub fn random_hex40() -> String {
        let mut bytes = [0u8; 20];
        let filled = std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
        if filled.is_err() {
            // No /dev/urandom: the time and the pid still make ids differ between runs.
            let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos() ^ std::process::id() as u128;
            for (i, b) in bytes.iter_mut().enumerate() {
                *b = (seed >> ((i % 16) * 8)) as u8 ^ (i as u8).wrapping_mul(151);
            }
        }
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// INFO's `mem_allocator`: mimalloc and its version (Redis prints `jemalloc-5.3.0` or `libc`).
fn mem_allocator() -> String {
    // SAFETY: mi_version only reads a constant.
    let version = unsafe { libmimalloc_sys::mi_version() };
    // Its encoding: major, two digits of minor, two of patch (30302 is 3.3.2).
    format!("mimalloc-{}.{}.{}", version / 10_000, version / 100 % 100, version % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<Bytes> {
        list.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect()
    }

    fn names(sections: &[Section]) -> Vec<&'static str> {
        sections.iter().map(|s| s.name()).collect()
    }

    #[test]
    fn default_sections_are_redis_s() {
        let expected = ["server", "clients", "memory", "persistence", "stats", "replication", "cpu", "modules", "errorstats", "cluster", "keyspace"];
        assert_eq!(names(&requested(&[])), expected);
        assert_eq!(names(&requested(&args(&["DEFAULT"]))), expected);
    }

    #[test]
    fn all_and_everything_add_commandstats_and_latencystats() {
        assert_eq!(requested(&args(&["all"])), Section::ALL.to_vec());
        assert_eq!(requested(&args(&["everything"])), Section::ALL.to_vec());
    }

    #[test]
    fn sections_come_in_redis_order_whatever_the_argument_order() {
        assert_eq!(names(&requested(&args(&["keyspace", "CPU", "nosuch"]))), ["cpu", "keyspace"]);
        assert_eq!(names(&requested(&args(&["default", "commandstats"]))).len(), 12);
        assert!(requested(&args(&["foo", "bar"])).is_empty());
    }

    #[test]
    fn render_separates_sections_with_a_blank_line_and_ends_lines_with_crlf() {
        let snapshot = Snapshot { keyspace: vec![(2, 1, 1), (0, 0, 0), (5, 0, 0)], ..Snapshot::default() };
        assert_eq!(
            render(&[Section::Cluster, Section::Keyspace], &snapshot),
            "# Cluster\r\ncluster_enabled:0\r\n\r\n# Keyspace\r\ndb0:keys=2,expires=1,avg_ttl=0,subexpiry=1\r\ndb2:keys=5,expires=0,avg_ttl=0,subexpiry=0\r\n"
        );
        assert_eq!(render(&[Section::Modules], &snapshot), "# Modules\r\n");
        assert_eq!(render(&[], &snapshot), "");
    }

    #[test]
    fn commandstats_and_errorstats_use_redis_s_line_format() {
        let mut stats = CoreStats::default();
        stats.record("get", Duration::from_micros(3), &Frame::Null);
        stats.record("get", Duration::from_micros(4), &Frame::Null);
        stats.record("client|list", Duration::from_micros(10), &Frame::Error(Bytes::from_static(b"ERR x")));
        stats.record_rejected(Some("set"), &Frame::Error(Bytes::from_static(b"NOAUTH Authentication required.")));
        let snapshot = Snapshot { stats, ..Snapshot::default() };
        assert_eq!(
            render(&[Section::Commandstats, Section::Errorstats], &snapshot),
            "# Commandstats\r\n\
             cmdstat_client|list:calls=1,usec=10,usec_per_call=10.00,rejected_calls=0,failed_calls=1\r\n\
             cmdstat_get:calls=2,usec=7,usec_per_call=3.50,rejected_calls=0,failed_calls=0\r\n\
             cmdstat_set:calls=0,usec=0,usec_per_call=0.00,rejected_calls=1,failed_calls=0\r\n\
             \r\n\
             # Errorstats\r\n\
             errorstat_ERR:count=1\r\n\
             errorstat_NOAUTH:count=1\r\n"
        );
    }

    #[test]
    fn server_section_has_redis_s_fields_and_ours() {
        let snapshot =
            Snapshot { run_id: "a".repeat(40), port: 6379, bind: vec!["*".into(), "-::*".into()], uptime_s: 2 * 86_400 + 5, threads: 4, ..Snapshot::default() };
        let text = render(&[Section::Server], &snapshot);
        for line in [
            "redis_version:7.2.0\r\n",
            "redis_mode:standalone\r\n",
            "multiplexing_api:io_uring\r\n",
            "uptime_in_seconds:172805\r\n",
            "uptime_in_days:2\r\n",
            "listener0:name=tcp,bind=*,bind=-::*,port=6379\r\n",
            "threads:4\r\n",
        ] {
            assert!(text.contains(line), "{line:?} in {text}");
        }
        assert!(text.contains(&format!("run_id:{}\r\n", "a".repeat(40))));
    }

    #[test]
    fn bytes_to_human_matches_redis() {
        assert_eq!(bytes_to_human(0), "0B");
        assert_eq!(bytes_to_human(1023), "1023B");
        assert_eq!(bytes_to_human(916_832), "895.34K");
        assert_eq!(bytes_to_human(7_020_544), "6.70M");
        assert_eq!(bytes_to_human(25_276_063_744), "23.54G");
    }

    #[test]
    fn run_ids_are_forty_hex_characters_and_stable() {
        let (run, replication) = ids();
        assert_eq!(run.len(), 40);
        assert!(run.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(run, replication);
        assert_eq!(ids().0, run);
    }

    #[test]
    fn the_operating_system_answers() {
        assert!(!system::os_name().is_empty());
        assert!(system::resident_bytes() > 0);
        assert!(system::allocator_bytes() > 0);
        assert!(system::total_memory_bytes() > 0);
    }
}
