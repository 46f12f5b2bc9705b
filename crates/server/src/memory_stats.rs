//! Where the memory goes, as Redis's MEMORY STATS and INFO memory report it (Redis's
//! `getMemoryOverheadData`): the allocator's total split into what the server holds whatever
//! the data (startup, client buffers, script caches, the keyspace tables' overhead) and the
//! dataset, plus the allocator's and the kernel's views.
//!
//! - **Startup** is what was allocated before any data: the main thread's allocations before
//!   the files start loading, and each core's before it installs its keys (rings, buffers),
//!   added up as the cores come up ([`note_core_ready`]).
//! - **Clients** are the buffers CLIENT LIST shows per connection (`tot-mem`).
//! - **Scripts**: every core caches the same scripts and libraries, each in its own Lua states;
//!   the figures add the cores up.
//! - **Keyspace overhead** per database: `Db::overhead` (tables and TTL structures).
//! - The allocator's figures: what the server allocated (as `used_memory`), mimalloc's
//!   committed bytes as active, and the process's RSS as resident (mimalloc does not
//!   measure residency on Linux).

use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use shoal_script::EngineMemory;

use crate::node::Node;

static STARTUP_BYTES: AtomicU64 = AtomicU64::new(0);

/// The main thread, before anything loads: its allocations so far count as startup.
pub fn note_main_ready() {
    STARTUP_BYTES.fetch_add(crate::alloc::thread_bytes().max(0) as u64, Ordering::Relaxed);
}

/// A core, set up and about to install its keys: its allocations so far count as startup.
pub fn note_core_ready() {
    STARTUP_BYTES.fetch_add(crate::alloc::thread_bytes().max(0) as u64, Ordering::Relaxed);
}

/// One core's share.
#[derive(Debug, Default, Clone)]
struct CoreMemory {
    clients: u64,
    engine: EngineMemory,
    /// Per database: (keys, main table overhead, TTL overhead).
    dbs: Vec<(usize, usize, usize)>,
}

/// The figures of one MEMORY STATS or INFO memory.
#[derive(Debug, Default, Clone)]
pub struct MemoryReport {
    pub used: u64,
    pub peak: u64,
    pub startup: u64,
    pub rss: u64,
    pub clients_normal: u64,
    pub engine: EngineMemory,
    pub libraries: usize,
    pub functions: usize,
    /// Per database with keys: (index, keys, main table overhead, TTL overhead).
    pub dbs: Vec<(usize, usize, usize, usize)>,
    /// mimalloc's committed and resident bytes.
    pub allocator_active: u64,
    pub allocator_resident: u64,
}

/// (ratio, difference in bytes) pairs, each the larger view over the smaller.
#[derive(Debug, Clone, Copy)]
pub struct Ratios {
    /// The allocator's active bytes over what the server allocated.
    pub allocator_fragmentation: (f64, i64),
    /// The allocator's resident bytes over its active ones.
    pub allocator_rss: (f64, i64),
    /// The process's RSS over the allocator's resident bytes.
    pub rss_overhead: (f64, i64),
    /// The process's RSS over what the server allocated (INFO's `mem_fragmentation_*`).
    pub fragmentation: (f64, i64),
}

impl MemoryReport {
    pub fn keys(&self) -> usize {
        self.dbs.iter().map(|db| db.1).sum()
    }

    /// Redis's `used_memory_overhead`: startup, clients, script caches and the tables.
    pub fn overhead(&self) -> u64 {
        let tables: usize = self.dbs.iter().map(|db| db.2 + db.3).sum();
        self.startup + self.clients_normal + (self.engine.scripts_eval + self.engine.functions) as u64 + tables as u64
    }

    /// Redis's `used_memory_dataset`: the rest.
    pub fn dataset(&self) -> u64 {
        self.used.saturating_sub(self.overhead())
    }

    /// What is allocated beyond startup (at least 1, as Redis divides by it).
    fn net(&self) -> u64 {
        self.used.saturating_sub(self.startup).max(1)
    }

    /// The dataset's share of what is not startup, in percent.
    pub fn dataset_percentage(&self) -> f64 {
        self.dataset() as f64 * 100.0 / self.net() as f64
    }

    /// What is not startup, per key (0 without keys).
    pub fn bytes_per_key(&self) -> u64 {
        match self.keys() {
            0 => 0,
            keys => self.net() / keys as u64,
        }
    }

    /// The ratios and differences between the four views of memory: what the server
    /// allocated, what the allocator has active and resident, and the process's RSS.
    pub fn ratios(&self) -> Ratios {
        let between = |over: u64, under: u64| (if under == 0 { 0.0 } else { over as f64 / under as f64 }, over as i64 - under as i64);
        Ratios {
            allocator_fragmentation: between(self.allocator_active, self.used),
            allocator_rss: between(self.allocator_resident, self.allocator_active),
            rss_overhead: between(self.rss, self.allocator_resident),
            fragmentation: between(self.rss, self.used),
        }
    }

    pub fn peak_percentage(&self) -> f64 {
        if self.peak == 0 {
            0.0
        } else {
            self.used as f64 * 100.0 / self.peak as f64
        }
    }
}

/// Gathers the figures from every core.
pub async fn report(node: &Rc<Node>) -> MemoryReport {
    let cores = node
        .core
        .call_all(|core| {
            let node = crate::node::current();
            let clients = node.clients.borrow().values().map(|client| client.buffers.get().total() as u64).sum();
            let dbs = core.with_shard(|shard| {
                shard
                    .dbs
                    .iter()
                    .map(|db| {
                        let (main, expires) = db.overhead();
                        (db.len(), main, expires)
                    })
                    .collect()
            });
            CoreMemory { clients, engine: crate::scripting::engine_memory(), dbs }
        })
        .await;
    let mut report = MemoryReport { used: crate::alloc::used_bytes(), startup: STARTUP_BYTES.load(Ordering::Relaxed), ..MemoryReport::default() };
    report.peak = crate::info::record_peak(report.used);
    report.rss = crate::info::system::resident_bytes();
    report.allocator_active = crate::info::system::allocator_bytes();
    // mimalloc does not measure what of its memory is resident (see `allocator_bytes`): the
    // process's RSS stands in, so the RSS overhead reads 1.
    report.allocator_resident = report.rss;
    let (libraries, functions) = crate::scripting::function_counts();
    (report.libraries, report.functions) = (libraries, functions);
    let mut dbs: Vec<(usize, usize, usize)> = Vec::new();
    for core in cores {
        report.clients_normal += core.clients;
        report.engine.vm_eval += core.engine.vm_eval;
        report.engine.vm_functions += core.engine.vm_functions;
        report.engine.scripts_eval += core.engine.scripts_eval;
        report.engine.functions += core.engine.functions;
        // Every core caches the same scripts: the count is one core's.
        report.engine.cached_scripts = report.engine.cached_scripts.max(core.engine.cached_scripts);
        dbs.resize(dbs.len().max(core.dbs.len()), (0, 0, 0));
        for (total, db) in dbs.iter_mut().zip(core.dbs) {
            total.0 += db.0;
            total.1 += db.1;
            total.2 += db.2;
        }
    }
    report.dbs = dbs.into_iter().enumerate().filter(|(_, db)| db.0 > 0).map(|(index, (keys, main, expires))| (index, keys, main, expires)).collect();
    report
}
