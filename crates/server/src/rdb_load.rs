//! Loading `dbfilename` at startup. A reader thread reads the file once and sends its keys to
//! their owning cores in batches ([`KeyPipe`]), while the cores already accept connections
//! and answer LOADING to every command not flagged `loading` (as Redis does); each core puts
//! the batches into its shard as they come, and the reader waits while too many keys sit
//! untaken, so a load holds the dataset and a bounded number of keys besides (before, every
//! key was read before any went in: 1.7x the steady memory at the peak). A file that cannot
//! be read whole stops the server with a message naming it and the offset: nothing is ever
//! served from half a file. DEBUG RELOAD and a replica's full sync load the same way, with
//! every shard locked ([`install_all`]).

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use bytes::Bytes;
use shoal_config::Config;
use shoal_rdb::{Event, Reader, ReaderOptions};
use shoal_store::Value;

/// One key read from the file, bound for the core that owns it.
pub struct LoadedKey {
    pub db: usize,
    pub key: Vec<u8>,
    pub value: Value,
    pub expire_at_ms: Option<u64>,
    /// Idle seconds (from IDLE, or derived from FREQ as OBJECT FREQ derives it back).
    pub idle_s: Option<u64>,
}

/// What the file held, waiting for the cores.
#[derive(Default)]
pub struct Preload {
    /// Function libraries' source code, loaded on every core.
    pub functions: Vec<Bytes>,
    pub keys_loaded: u64,
    pub keys_expired: u64,
    /// `appendonly yes`: the commands to replay after the base, and where to append.
    pub aof: Option<crate::aof::Replay>,
    /// The replication history the file was saved at (`repl-id`, `repl-offset`,
    /// `repl-stream-db`), when it names one.
    pub replication: Option<(String, u64, usize)>,
}

/// Keys a reader thread read from a file, on their way to the cores that own them, in
/// batches of [`KeyPipe::BATCH`] per core, which the cores take while it reads. The reader
/// waits while [`KeyPipe::BOUND`] keys sit untaken.
pub struct KeyPipe {
    queues: Vec<Mutex<Vec<Vec<LoadedKey>>>>,
    /// Keys pushed and not yet taken.
    queued: AtomicUsize,
}

impl KeyPipe {
    /// Keys a batch holds.
    const BATCH: usize = 1024;
    /// Some megabytes of keys in flight, whatever the file's size.
    const BOUND: usize = 64 * 1024;

    fn new(threads: usize) -> KeyPipe {
        KeyPipe { queues: (0..threads).map(|_| Mutex::new(Vec::new())).collect(), queued: AtomicUsize::new(0) }
    }

    fn threads(&self) -> usize {
        self.queues.len()
    }

    /// On the reader: hands `batch` to `core`, then waits while the pipe is over its bound.
    fn push(&self, core: usize, batch: Vec<LoadedKey>) {
        self.queued.fetch_add(batch.len(), Ordering::SeqCst);
        self.queues[core].lock().expect("not poisoned").push(batch);
        while self.queued.load(Ordering::SeqCst) > Self::BOUND {
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
    }

    /// On core `core`: the batches pushed for it since it last took.
    fn take(&self, core: usize) -> Vec<Vec<LoadedKey>> {
        let batches = std::mem::take(&mut *self.queues[core].lock().expect("not poisoned"));
        self.queued.fetch_sub(batches.iter().map(Vec::len).sum(), Ordering::SeqCst);
        batches
    }
}

/// The reader's side of a [`KeyPipe`]: fills a batch per core, sends each when full, and the
/// rest when dropped.
struct Batches<'a> {
    pipe: &'a KeyPipe,
    filling: Vec<Vec<LoadedKey>>,
}

impl<'a> Batches<'a> {
    fn new(pipe: &'a KeyPipe) -> Batches<'a> {
        Batches { pipe, filling: (0..pipe.threads()).map(|_| Vec::new()).collect() }
    }

    fn push(&mut self, core: usize, key: LoadedKey) {
        let batch = &mut self.filling[core];
        batch.push(key);
        if batch.len() == KeyPipe::BATCH {
            self.pipe.push(core, std::mem::replace(batch, Vec::with_capacity(KeyPipe::BATCH)));
        }
    }
}

impl Drop for Batches<'_> {
    fn drop(&mut self) {
        for (core, batch) in self.filling.iter_mut().enumerate() {
            if !batch.is_empty() {
                self.pipe.push(core, std::mem::take(batch));
            }
        }
    }
}

/// Redis's reply while the dataset loads.
pub const LOADING_ERROR: &str = "LOADING Redis is loading the dataset in memory";

/// A load, shared by its reader thread and the cores: at startup, or under a lock that holds
/// every shard (DEBUG RELOAD, a replica's full sync).
pub struct Startup {
    result: OnceLock<Result<Preload, String>>,
    /// The keys on their way from the reader to the cores.
    keys: KeyPipe,
    /// Cores that installed their share.
    installed: AtomicUsize,
}

static LOADING: AtomicBool = AtomicBool::new(false);
static STARTED_S: AtomicI64 = AtomicI64::new(0);
static TOTAL_BYTES: AtomicU64 = AtomicU64::new(0);
static LOADED_BYTES: AtomicU64 = AtomicU64::new(0);

/// Whether the dataset is still loading (commands get LOADING).
#[inline]
pub fn loading() -> bool {
    LOADING.load(Ordering::Relaxed)
}

/// INFO's loading fields while loading: (start time, total bytes, bytes loaded).
pub fn progress() -> (i64, u64, u64) {
    (STARTED_S.load(Ordering::Relaxed), TOTAL_BYTES.load(Ordering::Relaxed), LOADED_BYTES.load(Ordering::Relaxed))
}

/// Starts reading `dbfilename` on a thread of its own; the cores wait for it in [`install_when_read`].
pub fn start(config: &Config, threads: usize) -> std::sync::Arc<Startup> {
    // Nothing to load: no LOADING state at all, not even for the first milliseconds.
    if !config.appendonly && !std::path::Path::new(&config.dbfilename).exists() {
        let startup = Startup::new(threads);
        let _ = startup.result.set(Ok(Preload::default()));
        return std::sync::Arc::new(startup);
    }
    LOADING.store(true, Ordering::SeqCst);
    let config = config.clone();
    spawn_reader("shoal-load", threads, move |keys| read(&config, keys))
}

impl Startup {
    fn new(threads: usize) -> Startup {
        Startup { result: OnceLock::new(), keys: KeyPipe::new(threads), installed: AtomicUsize::new(0) }
    }
}

/// Runs `read` on a thread named `name`, its keys into the returned load's pipe.
fn spawn_reader(name: &str, threads: usize, read: impl FnOnce(&KeyPipe) -> Result<Preload, String> + Send + 'static) -> std::sync::Arc<Startup> {
    let startup = std::sync::Arc::new(Startup::new(threads));
    let reader = startup.clone();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let _ = reader.result.set(read(&reader.keys));
        })
        .expect("spawning a file's reader");
    startup
}

/// On a core, once listening: waits for the reader, then installs this core's keys. The
/// last core to finish ends the LOADING state. Err: the file could not be loaded. A shutdown
/// asked meanwhile stops the wait (and nothing is saved while loading).
pub async fn install_when_read(core: &std::rc::Rc<shoal_runtime::Core>, startup: &Startup) -> Result<(), String> {
    // The log's commands replay after the base: nothing expires until then.
    let aof = crate::node::current().config.borrow().appendonly;
    let Some(preload) = install_from(core, startup, aof).await else { return Ok(()) };
    let preload = preload?;
    let installed = startup.installed.fetch_add(1, Ordering::SeqCst) + 1;
    match &preload.aof {
        None if installed == core.shard_count => {
            // Before any write can run: the history the file was saved at goes on.
            if let Some((replid, offset, db)) = saved_replication(preload) {
                let replica = crate::node::current().config.borrow().replicaof.is_some();
                tracing::info!("Continuing replication history {replid}:{offset} from the RDB file.");
                crate::replication::restore(&replid, offset, db, replica);
                if !replica {
                    // The writer (on core 0) feeds the backlog from the first write on.
                    core.call_on(0, crate::aof::start_feeding).await;
                }
            }
            LOADING.store(false, Ordering::SeqCst);
        }
        None => {}
        // The log's commands replay on core 0 once every core holds the base.
        Some(replay) if core.id == 0 => {
            while startup.installed.load(Ordering::SeqCst) < core.shard_count {
                glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
            }
            crate::aof::replay_and_start(core, replay).await?;
            // Keys the log left expired now expire, lazily or by the active cycle.
            core.call_all(|core| core.with_shard_unreported(|shard| shard.set_loading(false))).await;
            LOADING.store(false, Ordering::SeqCst);
        }
        Some(_) => {}
    }
    Ok(())
}

/// Reads `dbfilename` (in the working directory, which is `dir`) if it exists. Err with the
/// message to print when it exists but cannot be loaded whole.
/// Its keys go to the cores through `keys`.
pub fn read(config: &Config, keys: &KeyPipe) -> Result<Preload, String> {
    if config.appendonly {
        return crate::aof::read(config, keys);
    }
    read_dump_into(config, keys)
}

/// Starts reading `dbfilename` for DEBUG RELOAD (whatever `appendonly` says, as in Redis),
/// on a thread of its own; the cores take its keys with [`install_all`].
pub fn start_for_reload(config: &Config, threads: usize) -> std::sync::Arc<Startup> {
    let config = config.clone();
    spawn_reader("shoal-reload", threads, move |keys| read_dump_into(&config, keys))
}

/// Reads `dbfilename`, its keys into `keys`.
fn read_dump_into(config: &Config, keys: &KeyPipe) -> Result<Preload, String> {
    let name = &config.dbfilename;
    let file = match std::fs::File::open(name) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Preload::default()),
        Err(e) => return Err(format!("Fatal error loading the DB ({name}): {e}. Exiting.")),
    };
    let started = std::time::Instant::now();
    STARTED_S.store((shoal_runtime::now_ms() / 1000) as i64, Ordering::Relaxed);
    TOTAL_BYTES.store(file.metadata().map(|m| m.len()).unwrap_or(0), Ordering::Relaxed);
    let mut preload = Preload::default();
    // A replica loads keys whose time has passed too: its master's DELs remove them (as
    // Redis's replica loads them).
    read_rdb(config, name, file, &mut preload, keys, config.replicaof.is_some())?;
    tracing::info!(
        "DB loaded from disk: {:.3} seconds ({} keys, {} expired keys skipped)",
        started.elapsed().as_secs_f64(),
        preload.keys_loaded,
        preload.keys_expired
    );
    Ok(preload)
}

/// Starts reading the snapshot a replica received from its master, at `path`, on a thread of
/// its own: keys whose time has passed load too (a replica waits for its master's DEL, as in
/// Redis). The cores take its keys with [`install_all`].
pub fn start_for_replica(config: &Config, path: &str, threads: usize) -> std::sync::Arc<Startup> {
    let (config, path) = (config.clone(), path.to_owned());
    spawn_reader("shoal-sync-load", threads, move |keys| read_for_replica(&config, &path, keys))
}

fn read_for_replica(config: &Config, path: &str, keys: &KeyPipe) -> Result<Preload, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("can't open the snapshot from the master ({path}): {e}"))?;
    let mut preload = Preload::default();
    read_rdb(config, path, file, &mut preload, keys, true)?;
    tracing::info!("MASTER <-> REPLICA sync: {} keys loaded", preload.keys_loaded);
    Ok(preload)
}

/// While the caller holds every shard (DEBUG RELOAD, a replica's full sync): every core
/// installs its keys as `startup`'s reader sends them, in a task of its own that waits for
/// the reader between batches (a blocking call would hold back the messages that start the
/// other cores' calls), then the function libraries. `loading`: nothing expires from then
/// on (a replica waits for its master's DELs). Err: the file could not be read whole (what
/// was installed stays, as Redis's failed load leaves it).
pub async fn install_all(core: &std::rc::Rc<shoal_runtime::Core>, startup: std::sync::Arc<Startup>, loading: bool) -> Result<(), String> {
    let outcomes = std::sync::Arc::new(Mutex::new(Vec::new()));
    let results = outcomes.clone();
    core.call_all(move |core| {
        let (core, startup, results) = (core.clone(), startup.clone(), results.clone());
        glommio::spawn_local(async move {
            let result = match install_from(&core, &startup, loading).await {
                Some(result) => result.map(drop),
                None => Err("shutting down".to_owned()),
            };
            results.lock().expect("not poisoned").push(result);
        })
        .detach();
    })
    .await;
    while outcomes.lock().expect("not poisoned").len() < core.shard_count {
        glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
    }
    let outcomes = std::mem::take(&mut *outcomes.lock().expect("not poisoned"));
    outcomes.into_iter().find_map(Result::err).map_or(Ok(()), Err)
}

/// On a core: installs its keys as `load`'s reader sends them, then the function libraries;
/// the reader's result. `loading`: see [`Installer::new`]. None: a shutdown was asked.
async fn install_from<'a>(core: &shoal_runtime::Core, load: &'a Startup, loading: bool) -> Option<Result<&'a Preload, String>> {
    let mut installer = Installer::new(core, loading);
    let preload = match installer.take_while_reading(core, load).await? {
        Ok(preload) => preload,
        Err(e) => return Some(Err(e)),
    };
    installer.finish(core);
    Some(crate::scripting::load_libraries(&preload.functions).map(|()| preload))
}

/// Reads one RDB image from `source` (a file positioned at its start) into `keys`;
/// returns how many bytes the image took. `keep_expired`: keys and fields whose time has
/// passed load too: the image is the base of the append-only log, whose commands may touch
/// them (as Redis's `RDBFLAGS_AOF_PREAMBLE`; they expire once the log is replayed), or this
/// server is a replica, whose master's DELs remove them.
pub fn read_rdb(config: &Config, name: &str, source: impl std::io::Read, preload: &mut Preload, keys: &KeyPipe, keep_expired: bool) -> Result<u64, String> {
    let threads = keys.threads();
    let mut batches = Batches::new(keys);
    // Nothing counts as expired at time zero.
    let now_ms = if keep_expired { 0 } else { shoal_runtime::now_ms() };
    let delay = std::time::Duration::from_micros(config.key_load_delay);
    let limits = crate::node::settings_of(config).limits;
    let options = ReaderOptions { limits, now_ms: now_ms as i64 };
    let fail = |e: shoal_rdb::Error| format!("Short read or corrupt file loading the DB ({name}): {e}. Exiting.");
    let mut reader = Reader::new(std::io::BufReader::with_capacity(1 << 20, source), options).map_err(fail)?;
    let databases = config.databases as u64;
    while let Some(event) = reader.next_event().map_err(fail)? {
        match event {
            Event::Entry(entry) => {
                if entry.db >= databases {
                    return Err(format!("FATAL: Data file was created with a Redis server configured to handle more than {databases} databases. Exiting"));
                }
                // As a master does, keys already expired are not loaded.
                if entry.expire_ms.is_some_and(|at| at < now_ms as i64) {
                    preload.keys_expired += 1;
                    continue;
                }
                let idle_s = entry.idle.or(entry.freq.map(|freq| (5u64.saturating_sub(freq as u64)) * 60));
                let core = shoal_store::slot::key_shard(&entry.key, threads);
                batches.push(
                    core,
                    LoadedKey { db: entry.db as usize, key: entry.key, value: entry.value, expire_at_ms: entry.expire_ms.map(|at| at.max(0) as u64), idle_s },
                );
                preload.keys_loaded += 1;
                if preload.keys_loaded.is_multiple_of(1024) {
                    LOADED_BYTES.store(reader.offset(), Ordering::Relaxed);
                }
                if !delay.is_zero() {
                    std::thread::sleep(delay);
                }
            }
            Event::Function(code) => preload.functions.push(Bytes::from(code)),
            Event::Aux { key, value } => note_replication(preload, &key, &value),
            Event::SelectDb(_) | Event::ResizeDb { .. } => {}
        }
    }
    Ok(reader.offset())
}

/// Keeps the replication aux fields of a file (see [`Preload::replication`]): the id first
/// (Redis writes `repl-stream-db`, `repl-id`, `repl-offset` in that order; any order works).
fn note_replication(preload: &mut Preload, key: &[u8], value: &[u8]) {
    let text = String::from_utf8_lossy(value);
    let mut replication = preload.replication.take().unwrap_or((String::new(), u64::MAX, usize::MAX));
    match key {
        b"repl-id" if text.len() == 40 => replication.0 = text.into_owned(),
        b"repl-offset" => replication.1 = text.parse().unwrap_or(u64::MAX),
        b"repl-stream-db" => replication.2 = text.parse().unwrap_or(usize::MAX),
        _ => {}
    }
    preload.replication = Some(replication);
}

/// The replication history a loaded file names, whole (id, offset and database all there).
pub fn saved_replication(preload: &Preload) -> Option<(String, u64, usize)> {
    preload.replication.clone().filter(|(replid, offset, db)| !replid.is_empty() && *offset != u64::MAX && *db != usize::MAX)
}

/// Puts loaded keys into a core's shard, batch by batch.
struct Installer {
    now_ms: u64,
    /// `hash-rdb-load-*-template-entries`: hashes of the file move to field-name templates.
    template_min: u64,
    template_max: u64,
    disassembly: u64,
    limits: shoal_store::Limits,
    /// The keys moved to templates, for the disassembly pass once all are in.
    templated: Vec<(usize, Vec<u8>)>,
}

impl Installer {
    /// `loading`: nothing expires until the caller says (the log's commands replay on these
    /// keys first; a replica waits for its master's DELs).
    fn new(core: &shoal_runtime::Core, loading: bool) -> Installer {
        let config = crate::node::current().config.borrow().clone();
        core.with_shard_unreported(|shard| shard.set_loading(loading));
        Installer {
            now_ms: shoal_runtime::now_ms(),
            template_min: config.hash_rdb_load_min_template_entries,
            template_max: config.hash_rdb_load_max_template_entries,
            disassembly: config.hash_rdb_load_template_disassembly_threshold,
            limits: crate::node::settings_of(&config).limits,
            templated: Vec::new(),
        }
    }

    /// Puts in the keys `startup`'s reader sends this core, as they come, until it is done;
    /// then its result. None: a shutdown was asked meanwhile.
    async fn take_while_reading<'a>(&mut self, core: &shoal_runtime::Core, startup: &'a Startup) -> Option<Result<&'a Preload, String>> {
        loop {
            // Read before taking: the reader pushes every batch before it sets the result.
            let done = startup.result.get();
            let batches = startup.keys.take(core.id);
            let took = !batches.is_empty();
            for batch in batches {
                self.add(core, batch);
            }
            if let Some(result) = done {
                return Some(result.as_ref().map_err(Clone::clone));
            }
            if core.shared.shutdown.load(Ordering::Relaxed) || core.shared.shutdown_requested.load(Ordering::Relaxed) {
                return None;
            }
            if took {
                glommio::yield_if_needed().await;
            } else {
                glommio::timer::sleep(std::time::Duration::from_millis(2)).await;
            }
        }
    }

    /// Puts `keys` in. Loaded keys raise no keyspace notification (`new`), as in Redis.
    fn add(&mut self, core: &shoal_runtime::Core, keys: Vec<LoadedKey>) {
        let Installer { now_ms, template_min, template_max, disassembly, ref limits, ref mut templated } = *self;
        core.with_shard_unreported(|shard| {
            // Room for every key up front (no resize on the way), and each group's buckets
            // prefetched before its keys go in.
            let mut per_db = vec![0usize; shard.dbs.len()];
            keys.iter().for_each(|loaded| per_db[loaded.db] += 1);
            for (db, &count) in shard.dbs.iter_mut().zip(&per_db) {
                db.reserve(count);
            }
            const GROUP: usize = 16;
            let mut keys = keys.into_iter();
            let mut group: Vec<LoadedKey> = Vec::with_capacity(GROUP);
            loop {
                group.extend(keys.by_ref().take(GROUP));
                if group.is_empty() {
                    break;
                }
                for loaded in &group {
                    shard.dbs[loaded.db].prefetch_keys(&[&loaded.key]);
                }
                for mut loaded in group.drain(..) {
                    if let (Value::Hash(hash), true) = (&mut loaded.value, template_min > 0) {
                        hash.template_if_within(template_min, template_max, limits);
                        if disassembly > 0 && hash.template_holders().is_some() {
                            templated.push((loaded.db, loaded.key.clone()));
                        }
                    }
                    let db = &mut shard.dbs[loaded.db];
                    db.set_with_expire(&loaded.key, loaded.value, loaded.expire_at_ms, now_ms);
                    if let Some(idle_s) = loaded.idle_s {
                        let at = now_ms.saturating_sub(idle_s * 1000);
                        db.set_lru(&loaded.key, shoal_store::db::lru_clock(at));
                    }
                }
            }
        });
    }

    /// Once every key is in: `hash-rdb-load-template-disassembly-threshold`, a template few
    /// keys share goes.
    fn finish(self, core: &shoal_runtime::Core) {
        let (now_ms, disassembly) = (self.now_ms, self.disassembly);
        core.with_shard_unreported(|shard| {
            for (db, key) in self.templated {
                let Some(entry) = shard.dbs[db].lookup_quiet_mut(&key, now_ms) else { continue };
                if let Value::Hash(hash) = &mut entry.value {
                    if hash.template_holders().is_some_and(|holders| (holders as u64) < disassembly) {
                        hash.untemplate();
                    }
                }
            }
        });
    }
}
