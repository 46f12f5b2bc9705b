//! RDB snapshots without fork: SAVE, BGSAVE, save points, LASTSAVE, the save at shutdown, and
//! what INFO reports of them.
//!
//! A save takes a consistent cut across cores (every shard locked whole for an instant, see
//! `Core::lock_everything`), starts a snapshot of every database there
//! (`shoal_store::snapshot`), and lets go: the cores keep serving. The saving core then
//! asks every core, in rounds, for its next chunk of the file (up to `CHUNK_BYTES` of
//! SELECTDB and entries, built on the core that owns the keys) and writes the chunks through
//! io_uring (glommio's buffered file) to `temp-<pid>.rdb`, combining their CRC-64s. Then it
//! fsyncs the file, renames it over `dbfilename`, and fsyncs the directory.
//!
//! Memory: a write during the save copies the old value of a key the walk has not reached
//! yet; those copies (plus one chunk per core) are what a save costs beyond the dataset.
//! INFO reports their peak as `rdb_last_cow_size`.
//!
//! One save runs at a time, process-wide ([`STATE`]).

use futures::StreamExt;
use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use shoal_rdb::{Chunk, EntryMeta, SealedChunk, Writer, WriterOptions};
use shoal_runtime::Core;

use crate::node::Node;

/// Bytes of one chunk: what one core builds between two looks at its clients.
const CHUNK_BYTES: usize = 64 * 1024;
/// Buckets walked between two checks of the chunk's size.
const BUCKETS_PER_STEP: usize = 16;
/// After a failed background save, save points wait this long before trying again (Redis's
/// CONFIG_BGSAVE_RETRY_DELAY).
const RETRY_DELAY_S: i64 = 5;

/// The process's save state: atomics, read by INFO on any core.
pub struct SaveState {
    in_progress: AtomicBool,
    /// BGSAVE SCHEDULE asked while a save ran: start another when it ends.
    scheduled: AtomicBool,
    /// Unix seconds of the last successful save (the start time at boot).
    last_save_s: AtomicI64,
    last_ok: AtomicBool,
    /// Unix seconds of the last attempt, for the retry delay.
    last_try_s: AtomicI64,
    /// Seconds the last background save took, -1 before any.
    last_duration_s: AtomicI64,
    /// Unix milliseconds when the running save started.
    started_ms: AtomicU64,
    saves: AtomicU64,
    /// Every core's key changes added up when the last successful save took its cut.
    changes_at_save: AtomicU64,
    /// Peak bytes of values copied aside during the last save.
    last_copied_bytes: AtomicU64,
    /// Each core's running count of key changes, published by its cron.
    core_changes: OnceLock<Box<[AtomicU64]>>,
    /// The running snapshot is an AOF rewrite.
    rewriting: AtomicBool,
    /// BGREWRITEAOF asked while a save ran: start it when the save ends.
    rewrite_scheduled: AtomicBool,
    rewrite_ok: AtomicBool,
    rewrites: AtomicU64,
    /// Seconds the last rewrite took, -1 before any.
    last_rewrite_s: AtomicI64,
}

pub static STATE: SaveState = SaveState {
    in_progress: AtomicBool::new(false),
    scheduled: AtomicBool::new(false),
    last_save_s: AtomicI64::new(0),
    last_ok: AtomicBool::new(true),
    last_try_s: AtomicI64::new(0),
    last_duration_s: AtomicI64::new(-1),
    started_ms: AtomicU64::new(0),
    saves: AtomicU64::new(0),
    changes_at_save: AtomicU64::new(0),
    last_copied_bytes: AtomicU64::new(0),
    core_changes: OnceLock::new(),
    rewriting: AtomicBool::new(false),
    rewrite_scheduled: AtomicBool::new(false),
    rewrite_ok: AtomicBool::new(true),
    rewrites: AtomicU64::new(0),
    last_rewrite_s: AtomicI64::new(-1),
};

/// BGREWRITEAOF: the reply Redis gives. The cut (and the move to a new incremental file) is
/// taken before the reply. Inside EXEC (`in_exec`) the rewrite is only scheduled, as Redis
/// schedules it there: the cut waits for transactions that hold locks, this one included.
pub async fn bgrewriteaof(node: &Rc<Node>, in_exec: bool) -> Result<&'static str, &'static str> {
    if STATE.in_progress.load(Ordering::Relaxed) && STATE.rewriting.load(Ordering::Relaxed) {
        return Err("ERR Background append only file rewriting already in progress");
    }
    if in_exec || STATE.in_progress.load(Ordering::Relaxed) {
        STATE.rewrite_scheduled.store(true, Ordering::Relaxed);
        return Ok("Background append only file rewriting scheduled");
    }
    let Some(cut) = start_background(node, Purpose::AofRewrite) else {
        STATE.rewrite_scheduled.store(true, Ordering::Relaxed);
        return Ok("Background append only file rewriting scheduled");
    };
    cut.await;
    Ok("Background append only file rewriting started")
}

/// What INFO shows of AOF rewrites: (in progress, scheduled, last ok, count, last seconds).
pub fn rewrite_info() -> (bool, bool, bool, u64, i64) {
    (
        STATE.rewriting.load(Ordering::Relaxed),
        STATE.rewrite_scheduled.load(Ordering::Relaxed),
        STATE.rewrite_ok.load(Ordering::Relaxed),
        STATE.rewrites.load(Ordering::Relaxed),
        STATE.last_rewrite_s.load(Ordering::Relaxed),
    )
}

fn unix_s() -> i64 {
    (shoal_runtime::now_ms() / 1000) as i64
}

/// Sets up the state for `threads` cores; the last save time starts at boot, as in Redis.
pub fn init(threads: usize) {
    let _ = STATE.core_changes.set((0..threads).map(|_| AtomicU64::new(0)).collect());
    STATE.last_save_s.store(unix_s(), Ordering::Relaxed);
}

/// What INFO's persistence section shows of saving.
pub struct SaveInfo {
    pub changes_since_save: u64,
    pub in_progress: bool,
    pub last_save_s: i64,
    pub last_ok: bool,
    pub last_duration_s: i64,
    pub current_duration_s: i64,
    pub saves: u64,
    pub last_copied_bytes: u64,
}

/// What INFO shows of saving, given every core's change count now (read by INFO itself, so
/// a change shows at once rather than at the next cron tick, as in Redis).
pub fn info(changes: u64) -> SaveInfo {
    let in_progress = STATE.in_progress.load(Ordering::Relaxed);
    let started_ms = STATE.started_ms.load(Ordering::Relaxed);
    SaveInfo {
        changes_since_save: changes.saturating_sub(STATE.changes_at_save.load(Ordering::Relaxed)),
        in_progress,
        last_save_s: STATE.last_save_s.load(Ordering::Relaxed),
        last_ok: STATE.last_ok.load(Ordering::Relaxed),
        last_duration_s: STATE.last_duration_s.load(Ordering::Relaxed),
        current_duration_s: if in_progress { (shoal_runtime::now_ms().saturating_sub(started_ms) / 1000) as i64 } else { -1 },
        saves: STATE.saves.load(Ordering::Relaxed),
        last_copied_bytes: STATE.last_copied_bytes.load(Ordering::Relaxed),
    }
}

/// LASTSAVE: Unix seconds of the last successful save.
pub fn last_save() -> i64 {
    STATE.last_save_s.load(Ordering::Relaxed)
}

/// Redis's reply to a write while saves fail.
pub const MISCONF: &str = "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.";

/// Whether writes are refused: the last save failed, save points are configured and
/// `stop-writes-on-bgsave-error` is on (Redis's condition). A later good save lifts it.
pub fn writes_refused(node: &Node) -> bool {
    if STATE.last_ok.load(Ordering::Relaxed) {
        // Or the AOF cannot be written (refused whatever the configuration, as Redis does).
        return shoal_runtime::aof::LOG.file_on() && crate::aof::write_error_refusal().is_some();
    }
    let config = node.config.borrow();
    config.stop_writes_on_bgsave_error && !config.save.is_empty()
}

fn total_changes() -> u64 {
    STATE.core_changes.get().map_or(0, |cores| cores.iter().map(|c| c.load(Ordering::Relaxed)).sum())
}

/// The cron's part, on every core: publish this core's change count; on core 0, start a
/// background save when a save point is due (or one was scheduled).
pub fn cron(node: &Rc<Node>) {
    let core = &node.core;
    let changes = core.with_shard(|shard| shard.dbs.iter().map(|db| db.stats.changes).sum::<u64>());
    if let Some(cores) = STATE.core_changes.get() {
        cores[core.id].store(changes, Ordering::Relaxed);
    }
    if core.id != 0 || STATE.in_progress.load(Ordering::Relaxed) {
        return;
    }
    if STATE.scheduled.swap(false, Ordering::Relaxed) {
        let _ = start_background(node, Purpose::Rdb);
        return;
    }
    // A BGREWRITEAOF scheduled under `appendonly no` runs too, as in Redis.
    if !shoal_runtime::aof::LOG.file_on() && STATE.rewrite_scheduled.swap(false, Ordering::Relaxed) {
        let _ = start_background(node, Purpose::AofRewrite);
        return;
    }
    if shoal_runtime::aof::LOG.file_on() {
        let (percentage, min_size) = {
            let config = node.config.borrow();
            (config.auto_aof_rewrite_percentage as u64, config.auto_aof_rewrite_min_size)
        };
        let grown = crate::aof::INCR_BYTES.load(Ordering::Relaxed);
        let base = crate::aof::BASE_BYTES.load(Ordering::Relaxed);
        // Redis's rule: the AOF has grown past min-size and by `percentage` over its size
        // after the last rewrite.
        let due = percentage > 0 && base + grown >= min_size && grown * 100 >= base.max(1) * percentage;
        if STATE.rewrite_scheduled.swap(false, Ordering::Relaxed) || due {
            if due {
                tracing::info!("Starting automatic rewriting of AOF on {}% growth", grown * 100 / base.max(1));
            }
            let _ = start_background(node, Purpose::AofRewrite);
            return;
        }
    }
    let now = unix_s();
    let changed = total_changes().saturating_sub(STATE.changes_at_save.load(Ordering::Relaxed));
    let since_save = now - STATE.last_save_s.load(Ordering::Relaxed);
    // After a failure, wait before trying again, as Redis does.
    if !STATE.last_ok.load(Ordering::Relaxed) && now - STATE.last_try_s.load(Ordering::Relaxed) < RETRY_DELAY_S {
        return;
    }
    let due = node.config.borrow().save.iter().find(|point| changed >= point.changes && since_save >= point.seconds as i64).copied();
    if let Some(point) = due {
        tracing::info!("{} changes in {} seconds. Saving...", point.changes, point.seconds);
        let _ = start_background(node, Purpose::Rdb);
    }
}

/// BGSAVE [SCHEDULE]: the reply Redis gives. The snapshot's cut is taken before the reply,
/// so, as with Redis's fork, a write the client sends after the reply is not in the file.
/// Inside EXEC (`in_exec`) the save is only scheduled, as Redis schedules it there: the cut
/// waits for transactions that hold locks, this one included.
pub async fn bgsave(node: &Rc<Node>, schedule: bool, in_exec: bool) -> Result<&'static str, &'static str> {
    let in_progress = STATE.in_progress.load(Ordering::Relaxed);
    // A snapshot (BGSAVE's, or one for a replica) is Redis's RDB child.
    if in_progress && !STATE.rewriting.load(Ordering::Relaxed) {
        return Err("ERR Background save already in progress");
    }
    if in_progress || in_exec {
        if schedule || in_exec {
            STATE.scheduled.store(true, Ordering::Relaxed);
            return Ok("Background saving scheduled");
        }
        return Err("ERR Another child process is active (AOF?): can't BGSAVE right now. Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible.");
    }
    let Some(cut) = start_background(node, Purpose::Rdb) else {
        return Err("ERR Background save already in progress");
    };
    cut.await;
    Ok("Background saving started")
}

/// Starts a save in the background on this core: None if one is already running, else a
/// future that completes once the cut is taken.
fn start_background(node: &Rc<Node>, purpose: Purpose) -> Option<impl std::future::Future<Output = ()>> {
    if STATE.in_progress.swap(true, Ordering::SeqCst) {
        return None;
    }
    match purpose {
        Purpose::Rdb | Purpose::RdbInLink => tracing::info!("Background saving started"),
        Purpose::AofRewrite => tracing::info!("Background append only file rewriting started"),
        Purpose::Transfer | Purpose::Replica(_) => tracing::info!("Starting a snapshot for a SYNC"),
    }
    let node = node.clone();
    let (cut_taken, cut) = futures::channel::oneshot::channel::<()>();
    let save = async move {
        let _ = save_claimed(&node, Some(cut_taken), purpose).await;
    };
    // In a task queue of its own with the same shares as the connections: when both have
    // work, the scheduler splits the core between them instead of letting the save's chunks
    // run back to back.
    match glommio::spawn_local_into(save, save_queue()) {
        Ok(task) => drop(task.detach()),
        Err(e) => tracing::warn!("could not start the background save: {e}"),
    }
    Some(async move {
        let _ = cut.await;
    })
}

thread_local! {
    static SAVE_QUEUE: std::cell::OnceCell<glommio::TaskQueueHandle> = const { std::cell::OnceCell::new() };
}

/// This core's task queue for background saves (made on first use).
fn save_queue() -> glommio::TaskQueueHandle {
    SAVE_QUEUE.with(|queue| *queue.get_or_init(|| glommio::executor().create_task_queue(glommio::Shares::default(), glommio::Latency::NotImportant, "bgsave")))
}

/// SAVE (and the save at shutdown): saves now and waits. Err when a save is already running
/// or this one failed (the reason is logged).
pub async fn save(node: &Rc<Node>) -> Result<(), SaveError> {
    save_with(node, Purpose::Rdb).await
}

/// [`save`] for `Purpose::Rdb` or `Purpose::RdbInLink`.
async fn save_with(node: &Rc<Node>, purpose: Purpose) -> Result<(), SaveError> {
    if STATE.in_progress.swap(true, Ordering::SeqCst) {
        return Err(SaveError::InProgress);
    }
    save_claimed(node, None, purpose).await.map_err(|_| SaveError::Failed)
}

#[derive(Debug)]
pub enum SaveError {
    InProgress,
    /// The save failed (logged already).
    Failed,
}

/// Runs a save once `STATE.in_progress` is ours, and records how it went.
async fn save_claimed(node: &Rc<Node>, cut_taken: Option<futures::channel::oneshot::Sender<()>>, purpose: Purpose) -> std::io::Result<()> {
    let started = Instant::now();
    if purpose == Purpose::AofRewrite {
        STATE.rewriting.store(true, Ordering::Relaxed);
        let result = write_snapshot(node, cut_taken, purpose, None).await;
        match &result {
            Ok(report) => tracing::info!("Background AOF rewrite finished successfully ({} bytes in {:.3} s)", report.bytes, started.elapsed().as_secs_f64()),
            Err(e) => tracing::warn!("Background AOF rewrite failed: {e}"),
        }
        STATE.rewrite_ok.store(result.is_ok(), Ordering::Relaxed);
        STATE.rewrites.fetch_add(result.is_ok() as u64, Ordering::Relaxed);
        STATE.last_rewrite_s.store(started.elapsed().as_secs() as i64, Ordering::Relaxed);
        STATE.rewriting.store(false, Ordering::Relaxed);
        STATE.in_progress.store(false, Ordering::SeqCst);
        return result.map(|_| ());
    }
    STATE.started_ms.store(shoal_runtime::now_ms(), Ordering::Relaxed);
    STATE.last_try_s.store(unix_s(), Ordering::Relaxed);
    let result = write_snapshot(node, cut_taken, purpose, None).await;
    match &result {
        Ok(report) => {
            tracing::info!("DB saved on disk ({} bytes in {:.3} s)", report.bytes, started.elapsed().as_secs_f64());
            STATE.last_save_s.store(unix_s(), Ordering::Relaxed);
            STATE.changes_at_save.store(report.changes_at_cut, Ordering::Relaxed);
            STATE.last_copied_bytes.store(report.copied_bytes, Ordering::Relaxed);
            STATE.saves.fetch_add(1, Ordering::Relaxed);
            STATE.last_ok.store(true, Ordering::Relaxed);
        }
        Err(e) => {
            tracing::warn!("Background saving error: {e}");
            STATE.last_ok.store(false, Ordering::Relaxed);
        }
    }
    STATE.last_duration_s.store(started.elapsed().as_secs() as i64, Ordering::Relaxed);
    STATE.in_progress.store(false, Ordering::SeqCst);
    result.map(|_| ())
}

struct Report {
    bytes: u64,
    changes_at_cut: u64,
    copied_bytes: u64,
}

/// What each core needs to build its chunks.
#[derive(Clone, Copy)]
struct ChunkOptions {
    compress: bool,
    /// Which access information the file records: Redis writes IDLE under an LRU policy,
    /// FREQ under an LFU one, and neither otherwise.
    access: Access,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    None,
    Lru,
    Lfu,
}

/// What a snapshot is for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Purpose {
    /// `dbfilename` (SAVE, BGSAVE, save points, SHUTDOWN).
    Rdb,
    /// `dbfilename`, saved by a replica's master link itself (the master's FLUSHALL with
    /// save points set). The link is inside that command, so it is not asked to pause at
    /// the next boundary (it would wait for this save): the file records the offset where
    /// the link's round began, and a restart that continues from there runs the FLUSHALL
    /// again, which makes it right whatever else the round held.
    RdbInLink,
    /// The AOF's new base (BGREWRITEAOF): at the cut, the log moves to a new incremental file.
    AofRewrite,
    /// A file for SYNC to send (`redis-cli --rdb`), left for the caller.
    Transfer,
    /// A file for a replica, with this mark in the log's streams at the cut.
    Replica(u64),
}

/// The file a [`Purpose::Transfer`] snapshot is written to (one snapshot runs at a time).
fn transfer_file() -> String {
    format!("temp-transfer-{}.rdb", std::process::id())
}

/// SYNC from `redis-cli --rdb`: a snapshot of every core, taken as BGSAVE takes one, in a
/// file of its own that the caller sends and removes. Waits while another save runs.
pub async fn snapshot_for_transfer(node: &Rc<Node>) -> std::io::Result<String> {
    transfer_snapshot(node, None, Purpose::Transfer, None).await
}

/// A replica's full resynchronisation: as [`snapshot_for_transfer`], with `mark` in every
/// core's log stream at the cut (see `crate::replication`); `cut_taken` fires once it is
/// taken.
/// With `stream` (`repl-diskless-sync`), the file's bytes go there as they are made, and no
/// file is written.
pub async fn snapshot_for_replica(
    node: &Rc<Node>,
    mark: u64,
    cut_taken: futures::channel::oneshot::Sender<()>,
    stream: Option<Stream>,
) -> std::io::Result<String> {
    transfer_snapshot(node, Some(cut_taken), Purpose::Replica(mark), stream).await
}

/// A full resynchronisation of a replica of this replica: as [`snapshot_for_replica`],
/// without a mark (the master link, paused until `cut_taken` fires, says the offset).
pub async fn snapshot_for_chained_replica(
    node: &Rc<Node>,
    cut_taken: futures::channel::oneshot::Sender<()>,
    stream: Option<Stream>,
) -> std::io::Result<String> {
    transfer_snapshot(node, Some(cut_taken), Purpose::Transfer, stream).await
}

/// Where a streamed snapshot's bytes go, a bounded channel: the snapshot waits while its
/// reader (the replica's connection) is behind.
pub type Stream = futures::channel::mpsc::Sender<Vec<u8>>;

/// An RDB file with no keys: the function libraries (`with_functions`) or nothing at all, as
/// Redis sends for `REPLCONF rdb-filter-only functions` or `""` (`redis-cli --functions-rdb`).
pub fn filtered_rdb(node: &Node, with_functions: bool) -> std::io::Result<Vec<u8>> {
    let pending = Pending::default();
    let checksum = node.config.borrow().rdbchecksum;
    let header = WriterOptions { ctime_s: unix_s(), used_mem: crate::info::system::allocator_bytes(), checksum, ..WriterOptions::default() };
    let mut writer = Writer::new(pending.clone(), &header)?;
    if with_functions {
        for code in crate::scripting::library_codes() {
            writer.function(&code)?;
        }
    }
    writer.finish()?;
    let bytes = std::mem::take(&mut *pending.0.borrow_mut());
    Ok(bytes)
}

/// Whether a save (BGSAVE, a rewrite, a transfer) runs now.
pub fn saving() -> bool {
    STATE.in_progress.load(Ordering::SeqCst)
}

/// A snapshot into [`transfer_file`], once no other save runs.
async fn transfer_snapshot(
    node: &Rc<Node>,
    cut_taken: Option<futures::channel::oneshot::Sender<()>>,
    purpose: Purpose,
    stream: Option<Stream>,
) -> std::io::Result<String> {
    while STATE.in_progress.swap(true, Ordering::SeqCst) {
        glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
    }
    let result = write_snapshot(node, cut_taken, purpose, stream).await;
    STATE.in_progress.store(false, Ordering::SeqCst);
    result.map(|_| transfer_file())
}

async fn write_snapshot(
    node: &Rc<Node>,
    cut_taken: Option<futures::channel::oneshot::Sender<()>>,
    purpose: Purpose,
    stream: Option<Stream>,
) -> std::io::Result<Report> {
    let (filename, options) = {
        let config = node.config.borrow();
        let policy = config.maxmemory_policy.as_str().to_owned();
        let access = if policy.contains("lfu") {
            Access::Lfu
        } else if policy.contains("lru") {
            Access::Lru
        } else {
            Access::None
        };
        (config.dbfilename.clone(), (ChunkOptions { compress: config.rdbcompression, access }, config.rdbchecksum))
    };
    let (chunk_options, checksum) = options;
    // The RDB file records where it stands in the replication stream (see
    // `replication::SavePoint`).
    let point = match purpose {
        Purpose::Rdb => crate::replication::save_point().await,
        Purpose::RdbInLink => crate::replica::history().map(|(replid, offset, db)| crate::replication::SavePoint::Still(replid, offset, db)),
        Purpose::AofRewrite | Purpose::Transfer | Purpose::Replica(_) => None,
    };
    if purpose == Purpose::AofRewrite {
        crate::aof::writer_file_open().await;
    }
    // The cut: no command runs anywhere while every database starts its snapshot.
    let lock = node.core.lock_everything().await;
    let changes: Vec<u64> = node
        .core
        .call_all(|core| {
            core.with_shard(|shard| {
                for (index, db) in shard.dbs.iter_mut().enumerate() {
                    db.snapshot_begin(index);
                }
                shard.dbs.iter().map(|db| db.stats.changes).sum::<u64>()
            })
        })
        .await;
    // A rewrite: at the same cut, the log moves to a new incremental file (every stream gets
    // the switch while every shard is locked).
    let switch = match purpose {
        Purpose::AofRewrite => Some(crate::aof::begin_rewrite()),
        Purpose::Rdb | Purpose::RdbInLink | Purpose::Transfer | Purpose::Replica(_) => None,
    };
    if let Some(Ok(id)) = switch {
        node.core.call_all(move |core| core.aof_switch(id)).await;
    }
    if let Purpose::Replica(mark) = purpose {
        node.core.call_all(move |core| core.aof_mark(mark)).await;
    }
    if let Some(crate::replication::SavePoint::Mark(mark)) = point {
        node.core.call_all(move |core| core.aof_mark(mark)).await;
    }
    lock.end();
    let replication = match point {
        Some(point) => crate::replication::saved_at(node, point).await,
        None => None,
    };
    let aux: Vec<(Vec<u8>, Vec<u8>)> = replication.map_or_else(Vec::new, |(replid, offset, db)| {
        vec![
            (b"repl-stream-db".to_vec(), db.to_string().into_bytes()),
            (b"repl-id".to_vec(), replid.into_bytes()),
            (b"repl-offset".to_vec(), offset.to_string().into_bytes()),
        ]
    });
    if let Some(cut_taken) = cut_taken {
        let _ = cut_taken.send(());
    }
    let changes_at_cut = changes.iter().sum();
    if let Some(Err(e)) = switch {
        end_snapshots(node).await;
        return Err(e);
    }

    if let Some(stream) = stream {
        let result = write_rdb(node, Sink::Stream { stream, sent: 0 }, chunk_options, checksum, Vec::new()).await;
        if result.is_err() {
            end_snapshots(node).await;
        }
        return result.map(|(bytes, copied_bytes)| Report { bytes, changes_at_cut, copied_bytes });
    }
    let transfer = matches!(purpose, Purpose::Transfer | Purpose::Replica(_));
    let temp = if transfer { transfer_file() } else { format!("temp-{}.rdb", std::process::id()) };
    let result = write_file(node, &temp, chunk_options, checksum, aux).await;
    if transfer {
        return match result {
            Ok((bytes, copied_bytes)) => Ok(Report { bytes, changes_at_cut, copied_bytes }),
            Err(e) => {
                end_snapshots(node).await;
                let _ = std::fs::remove_file(&temp);
                Err(e)
            }
        };
    }
    if purpose == Purpose::AofRewrite {
        return match result {
            Ok((bytes, copied_bytes)) => {
                if let Err(e) = crate::aof::finish_rewrite(&temp).await {
                    let _ = std::fs::remove_file(&temp);
                    return Err(e);
                }
                Ok(Report { bytes, changes_at_cut, copied_bytes })
            }
            Err(e) => {
                end_snapshots(node).await;
                let _ = std::fs::remove_file(&temp);
                Err(e)
            }
        };
    }
    match result {
        Ok((bytes, copied_bytes)) => {
            if let Err(e) = glommio::io::rename(&temp, &filename).await.map_err(glommio_io) {
                let _ = std::fs::remove_file(&temp);
                return Err(e);
            }
            // The rename is durable once the directory is synced. (A plain blocking fsync:
            // glommio's Directory does not open the working directory.)
            std::fs::File::open(".")?.sync_all()?;
            Ok(Report { bytes, changes_at_cut, copied_bytes })
        }
        Err(e) => {
            // Abandon the snapshots that did not finish, and the partial file.
            end_snapshots(node).await;
            let _ = std::fs::remove_file(&temp);
            Err(e)
        }
    }
}

/// Ends every core's snapshots (a save that failed).
async fn end_snapshots(node: &Rc<Node>) {
    node.core
        .call_all(|core| {
            core.with_shard(|shard| {
                for db in &mut shard.dbs {
                    db.snapshot_end();
                }
            })
        })
        .await;
}

/// A `Write` into a buffer the saving task empties into the file after each call.
#[derive(Clone, Default)]
struct Pending(Rc<RefCell<Vec<u8>>>);

impl Write for Pending {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes the file at `path`: header, functions, every core's chunks, trailer, fsync.
/// Returns its size and the peak bytes copied aside on any core.
async fn write_file(node: &Rc<Node>, path: &str, options: ChunkOptions, checksum: bool, aux: Vec<(Vec<u8>, Vec<u8>)>) -> std::io::Result<(u64, u64)> {
    let file = glommio::io::BufferedFile::create(path).await.map_err(glommio_io)?;
    write_rdb(node, Sink::File { file, position: 0 }, options, checksum, aux).await
}

/// Where [`write_rdb`] puts the bytes.
enum Sink {
    File { file: glommio::io::BufferedFile, position: u64 },
    Stream { stream: Stream, sent: u64 },
}

impl Sink {
    /// Writes out what the writer produced so far.
    async fn flush(&mut self, pending: &Pending) -> std::io::Result<()> {
        let mut bytes = std::mem::take(&mut *pending.0.borrow_mut());
        match self {
            Sink::File { file, position } => crate::aof::write_all(file, &mut bytes, position).await,
            Sink::Stream { stream, sent } => {
                use futures::SinkExt;
                if bytes.is_empty() {
                    return Ok(());
                }
                *sent += bytes.len() as u64;
                stream.send(bytes).await.map_err(|_| std::io::Error::other("the replica went away"))
            }
        }
    }

    /// Makes what was written durable (a file) and closes it; returns the bytes written.
    async fn finish(self) -> std::io::Result<u64> {
        match self {
            Sink::File { file, position } => {
                file.fdatasync().await.map_err(glommio_io)?;
                file.close().await.map_err(glommio_io)?;
                Ok(position)
            }
            Sink::Stream { sent, .. } => Ok(sent),
        }
    }
}

/// Writes the snapshot every core started at the cut (RDB format) to `sink`; returns the
/// bytes written and the peak of bytes a core copied aside.
async fn write_rdb(node: &Rc<Node>, mut sink: Sink, options: ChunkOptions, checksum: bool, extra_aux: Vec<(Vec<u8>, Vec<u8>)>) -> std::io::Result<(u64, u64)> {
    let pending = Pending::default();
    let header = WriterOptions {
        ctime_s: unix_s(),
        used_mem: crate::info::system::allocator_bytes(),
        compress: options.compress,
        checksum,
        extra_aux,
        ..WriterOptions::default()
    };
    let mut writer = Writer::new(pending.clone(), &header)?;
    for code in crate::scripting::library_codes() {
        writer.function(&code)?;
    }
    sink.flush(&pending).await?;

    // Every core builds its next chunk while the chunks before it are written: one request
    // in flight per core, each a task of its own, so that the saving core's own chunk is
    // built while its write is under way and no core waits for another.
    let request = |shard: usize| {
        let core = node.core.clone();
        glommio::spawn_local(async move { (shard, core.call_on(shard, move |core| next_chunk(core, options)).await) }).detach()
    };
    let mut in_flight: futures::stream::FuturesUnordered<_> = (0..node.core.shard_count).map(request).collect();
    let mut copied_peak = 0u64;
    let (mut chunks, started) = (0u64, Instant::now());
    // After a failure, the requests in flight are awaited (their chunks dropped), so none
    // reaches a core after the caller ends the snapshots, where a later save could be.
    let mut failure = None;
    while let Some(done) = in_flight.next().await {
        // A chunk task is cancelled only when its executor goes away mid-save.
        let Some((shard, chunk)) = done else {
            failure.get_or_insert_with(|| std::io::Error::other("a core stopped during the save"));
            continue;
        };
        let Some((chunk, copied)) = chunk else { continue };
        if failure.is_some() {
            continue;
        }
        chunks += 1;
        copied_peak = copied_peak.max(copied);
        let written = match writer.append_chunk(&chunk) {
            Ok(()) => sink.flush(&pending).await,
            Err(e) => Err(e),
        };
        match written {
            Ok(()) => in_flight.push(request(shard)),
            Err(e) => failure = Some(e),
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    tracing::debug!("Snapshot: {chunks} chunks in {:?}", started.elapsed());
    writer.finish()?;
    sink.flush(&pending).await?;
    Ok((sink.finish().await?, copied_peak))
}

/// On a core: its next chunk of the snapshot (SELECTDB and entries, up to about
/// `CHUNK_BYTES`) with the bytes copied aside that it encoded, or None once every database
/// of this core is written.
fn next_chunk(core: &Rc<Core>, options: ChunkOptions) -> Option<(SealedChunk, u64)> {
    let now_ms = shoal_runtime::now_ms();
    let meta = move |expire_at: Option<u64>, lru: u32| EntryMeta {
        expire_ms: expire_at.map(|at| at as i64),
        lru_idle_s: (options.access == Access::Lru).then(|| shoal_store::db::idle_seconds(lru, now_ms)),
        // The LFU counter lives in the same bits as the LRU clock (as in Redis): its low 8.
        lfu_freq: (options.access == Access::Lfu).then_some((lru & 0xff) as u8),
    };
    core.with_shard(|shard| {
        let mut chunk = Chunk::new(options.compress);
        let mut copied = 0u64;
        for db in &mut shard.dbs {
            let Some(snapshot) = db.snapshot() else { continue };
            let index = snapshot.db_index as u64;
            let mut selected = false;
            for (key, detached) in db.snapshot_drain() {
                if !std::mem::replace(&mut selected, true) {
                    chunk.select_db(index);
                }
                let before = chunk.bytes().len();
                chunk.entry(&key, &detached.entry.value, &meta(detached.expire_at_ms, detached.lru));
                copied += (chunk.bytes().len() - before) as u64;
            }
            let mut walked = db.snapshot().is_some_and(|s| s.walked());
            while !walked && chunk.bytes().len() < CHUNK_BYTES {
                walked = db.snapshot_step(BUCKETS_PER_STEP, |key, entry, expire_at, lru| {
                    if !std::mem::replace(&mut selected, true) {
                        chunk.select_db(index);
                    }
                    chunk.entry(key, &entry.value, &meta(expire_at, lru));
                });
            }
            if walked {
                db.snapshot_end();
            }
            if chunk.bytes().len() >= CHUNK_BYTES {
                break;
            }
        }
        (!chunk.bytes().is_empty()).then(|| (chunk.finish(), copied))
    })
}

/// FLUSHALL with save points set saves at once, as Redis does, so that `dbfilename` holds the
/// empty dataset (Redis kills a background save then; here it finishes first, and the save
/// after it writes over its file). `in_link`: the FLUSHALL came from this replica's master.
pub async fn save_after_flushall(node: &Rc<Node>, in_link: bool) {
    let purpose = if in_link { Purpose::RdbInLink } else { Purpose::Rdb };
    loop {
        match save_with(node, purpose).await {
            Err(SaveError::InProgress) => glommio::timer::sleep(Duration::from_millis(10)).await,
            // A failure is logged, and counts as a failed save (MISCONF), as in Redis.
            Err(SaveError::Failed) | Ok(()) => return,
        }
    }
}

/// The save before shutting down: waits for a running background save, then saves.
pub async fn save_at_shutdown(node: &Rc<Node>) -> Result<(), SaveError> {
    tracing::info!("Saving the final RDB snapshot before exiting.");
    loop {
        match save(node).await {
            Err(SaveError::InProgress) => glommio::timer::sleep(Duration::from_millis(10)).await,
            other => return other,
        }
    }
}

/// glommio's errors as `std::io::Error`.
fn glommio_io(error: glommio::GlommioError<()>) -> std::io::Error {
    error.into()
}
