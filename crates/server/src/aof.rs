//! `appendonly yes`: the append-only file's directory at startup (read with `shoal-aof`), the
//! replay of its commands, and the writer task that appends every core's writes to the
//! current incremental file (`shoal_runtime::aof` has the streams and their merge).
//!
//! Startup: the reading thread (`rdb_load::start`) opens `appenddirname` (creating the
//! directory, an empty incremental file and the manifest when there is none) and reads the
//! base's RDB image (loaded like `dump.rdb`). Once every core holds the base, core 0 replays
//! the commands through the ordinary command path (transactions as units) while a thread of
//! their own streams them from the files in bounded batches (memory does not grow with the
//! files); then it starts logging and the writer. Until then every command answers LOADING;
//! a log found damaged part way stops the server before anything is served.
//!
//! The writer (core 0) takes what the streams hold, writes it at the end of the current
//! incremental file through io_uring, and fsyncs per `appendfsync`: after every batch
//! (`always`: replies wait for it), once a second (`everysec`), or never (`no`).

use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use shoal_aof::{AofDir, AofState, Item, LoadPolicy};
use shoal_commands::dispatch::{self, Route};
use shoal_config::{AppendFsync, Config};
use shoal_resp::{Frame, Protocol};
use shoal_runtime::aof::{Merger, LOG};
use shoal_runtime::{BlockCtx, Cmd, Core};

use crate::rdb_load::{KeyPipe, Preload};

/// The AOF directory and its manifest, once loaded (rewrites change them).
struct Files {
    dir: AofDir,
    manifest: shoal_aof::Manifest,
}

static FILES: std::sync::Mutex<Option<Files>> = std::sync::Mutex::new(None);
/// Rewrites' switches: (id, the incremental file the writer moves to).
static SWITCHES: std::sync::Mutex<Vec<(u64, PathBuf)>> = std::sync::Mutex::new(Vec::new());
static NEXT_SWITCH: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
/// Bytes in the current incremental file, and the size of the AOF after the last rewrite
/// (or at startup): what `auto-aof-rewrite-percentage` compares.
pub static INCR_BYTES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
pub static BASE_BYTES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// At a rewrite's cut (every shard locked): creates the next incremental file, names it in
/// the manifest, and returns the id of the switch every stream is about to get; 0 (no
/// switch) when the log is off (BGREWRITEAOF under `appendonly no` writes a base only).
pub fn begin_rewrite() -> std::io::Result<u64> {
    if !LOG.file_on() {
        return Ok(0);
    }
    let mut files = FILES.lock().expect("not poisoned");
    let files = files.as_mut().ok_or_else(|| std::io::Error::other("the AOF is not loaded"))?;
    let (_, name) = files.dir.open_new_incr(&mut files.manifest).map_err(|e| std::io::Error::other(e.to_string()))?;
    let id = NEXT_SWITCH.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    SWITCHES.lock().expect("not poisoned").push((id, files.dir.path_of(&name)));
    Ok(id)
}

/// A rewrite's snapshot is written (as an RDB) and fsynced at `temp`, in the working
/// directory: it becomes the new base, `<appendfilename>.<seq>.base.rdb` with
/// `aof-use-rdb-preamble yes`, or, with `no`, converted to commands (Redis's
/// `rewriteAppendOnlyFileRio`) as `.base.aof`; the files it covers become history, and the
/// history is deleted. With the log off (BGREWRITEAOF under `appendonly no`), the manifest
/// on disk gets the new base and every incremental file becomes history, as in Redis.
pub async fn finish_rewrite(temp: &str) -> std::io::Result<()> {
    let node = crate::node::current();
    let (appenddirname, appendfilename, rdb, timestamps, options) = {
        let config = node.config.borrow();
        let options = shoal_rdb::ReaderOptions { limits: crate::node::settings_of(&config).limits, now_ms: shoal_runtime::now_ms() as i64 };
        (config.appenddirname.clone(), config.appendfilename.clone(), config.aof_use_rdb_preamble, config.aof_timestamp_enabled, options)
    };
    let base_temp = if rdb {
        PathBuf::from(temp)
    } else {
        let commands = PathBuf::from(format!("temp-rewriteaof-bg-{}.aof", std::process::id()));
        let timestamp = timestamps.then(|| shoal_runtime::now_ms() / 1000);
        let result = convert_on_a_thread(PathBuf::from(temp), commands.clone(), options, timestamp).await;
        let _ = std::fs::remove_file(temp);
        if let Err(e) = result {
            let _ = std::fs::remove_file(&commands);
            return Err(e);
        }
        commands
    };
    let result = install_base(&base_temp, rdb, &appenddirname, &appendfilename);
    if result.is_err() {
        let _ = std::fs::remove_file(&base_temp);
    }
    result
}

/// Names the written base in the manifest (see [`finish_rewrite`]).
fn install_base(base_temp: &std::path::Path, rdb: bool, appenddirname: &str, appendfilename: &str) -> std::io::Result<()> {
    let io = |e: shoal_aof::DirError| std::io::Error::other(e.to_string());
    let mut files = FILES.lock().expect("not poisoned");
    let active = LOG.file_on();
    if !active {
        // The log is off: the directory as it is on disk (maybe none yet).
        let dir = AofDir::new(".", appenddirname, appendfilename);
        dir.create_dir().map_err(io)?;
        let manifest = dir.read_manifest().map_err(io)?.unwrap_or_default();
        *files = Some(Files { dir, manifest });
    }
    let files = files.as_mut().ok_or_else(|| std::io::Error::other("the AOF is not loaded"))?;
    let mut manifest = files.manifest.clone();
    let base = manifest.finish_rewrite(appendfilename, rdb, active);
    let path = files.dir.path_of(&base);
    std::fs::rename(base_temp, &path)?;
    files.dir.persist_manifest(&manifest).map_err(io)?;
    files.manifest = manifest;
    files.dir.delete_history(&mut files.manifest).map_err(io)?;
    BASE_BYTES.store(std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0), std::sync::atomic::Ordering::Relaxed);
    INCR_BYTES.store(0, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// Runs [`rdb_to_commands`] on a thread of its own (it reads and writes the whole dataset)
/// and waits for it without blocking this core.
async fn convert_on_a_thread(rdb: PathBuf, out: PathBuf, options: shoal_rdb::ReaderOptions, timestamp: Option<u64>) -> std::io::Result<()> {
    let (done, result) = std::sync::mpsc::channel();
    std::thread::Builder::new().name("shoal-aof-rewrite".into()).spawn(move || {
        let _ = done.send(rdb_to_commands(&rdb, &out, options, timestamp));
    })?;
    loop {
        match result.try_recv() {
            Ok(result) => return result,
            Err(std::sync::mpsc::TryRecvError::Empty) => glommio::timer::sleep(Duration::from_millis(2)).await,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => return Err(std::io::Error::other("the AOF rewrite's conversion thread stopped")),
        }
    }
}

/// Redis's `AOF_REWRITE_ITEMS_PER_CMD`: elements per RPUSH, SADD, ZADD or HMSET.
const REWRITE_ITEMS_PER_CMD: usize = 64;

/// A stream as Redis's `rewriteStreamObject` writes it: an XADD per entry (an empty stream:
/// one XADD trimmed away at once), XSETID with the counters, then per consumer group XGROUP
/// CREATE, an XCLAIM ... FORCE per pending entry, and XGROUP CREATECONSUMER for consumers
/// without pending entries.
fn rewrite_stream(encoder: &mut shoal_aof::CommandEncoder, db: usize, key: &[u8], stream: &shoal_store::types::Stream, out: &mut Vec<u8>) {
    if stream.is_empty() {
        encoder.encode(db, &[b"XADD".as_slice(), key, b"MAXLEN", b"0", b"0-1", b"x", b"y"], out);
    }
    for (id, fields) in stream.range(shoal_store::types::stream::StreamId::MIN, shoal_store::types::stream::StreamId::MAX, false) {
        let id = id.to_string();
        let mut args: Vec<&[u8]> = vec![b"XADD", key, id.as_bytes()];
        for (field, value) in fields.iter() {
            args.push(field);
            args.push(value);
        }
        encoder.encode(db, &args, out);
    }
    let (last, added, max_deleted) = (stream.last_id.to_string(), stream.entries_added.to_string(), stream.max_deleted_id.to_string());
    encoder.encode(db, &[b"XSETID".as_slice(), key, last.as_bytes(), b"ENTRIESADDED", added.as_bytes(), b"MAXDELETEDID", max_deleted.as_bytes()], out);
    for (name, group) in &stream.groups {
        let last = group.last_id.to_string();
        let read = group.entries_read.map_or("-1".to_string(), |n| n.to_string());
        encoder.encode(db, &[b"XGROUP".as_slice(), b"CREATE", key, name, last.as_bytes(), b"ENTRIESREAD", read.as_bytes()], out);
        for (id, pending) in &group.pending {
            let (id, time, count) = (id.to_string(), pending.delivery_time_ms.to_string(), pending.delivery_count.to_string());
            let args: [&[u8]; 12] =
                [b"XCLAIM", key, name, &pending.consumer, b"0", id.as_bytes(), b"TIME", time.as_bytes(), b"RETRYCOUNT", count.as_bytes(), b"JUSTID", b"FORCE"];
            encoder.encode(db, &args, out);
        }
        for (consumer_name, consumer) in &group.consumers {
            if consumer.pending.is_empty() {
                encoder.encode(db, &[b"XGROUP".as_slice(), b"CREATECONSUMER", key, name, consumer_name], out);
            }
        }
    }
}

/// Writes the dataset of the RDB file `rdb` as commands into `out`, fsynced, as Redis's
/// `rewriteAppendOnlyFileRio` does: `#TS:<timestamp>` first (`aof-timestamp-enabled`), a
/// FUNCTION LOAD per library, then per database a SELECT and per key SET, RPUSH, SADD, ZADD
/// (scores as `%.17g`) or HMSET (at most 64 elements each), then PEXPIREAT if it expires.
/// Reads and writes through bounded buffers.
fn rdb_to_commands(rdb: &std::path::Path, out: &std::path::Path, options: shoal_rdb::ReaderOptions, timestamp: Option<u64>) -> std::io::Result<()> {
    use shoal_store::Value;
    use std::io::Write;
    let file = std::fs::File::open(rdb)?;
    let mut reader = shoal_rdb::Reader::new(std::io::BufReader::with_capacity(1 << 20, file), options).map_err(std::io::Error::other)?;
    let mut writer = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(out)?);
    let mut bytes = Vec::new();
    if let Some(second) = timestamp {
        shoal_aof::encode_timestamp(second, &mut bytes);
    }
    let mut encoder = shoal_aof::CommandEncoder::new();
    // Emits `name key` followed by `items` in commands of at most 64 elements (of `per` args).
    fn batched(encoder: &mut shoal_aof::CommandEncoder, db: usize, name: &[u8], key: &[u8], items: Vec<Vec<u8>>, per: usize, out: &mut Vec<u8>) {
        for chunk in items.chunks(REWRITE_ITEMS_PER_CMD * per) {
            let mut args: Vec<&[u8]> = Vec::with_capacity(chunk.len() + 2);
            args.push(name);
            args.push(key);
            args.extend(chunk.iter().map(Vec::as_slice));
            encoder.encode(db, &args, out);
        }
    }
    while let Some(event) = reader.next_event().map_err(std::io::Error::other)? {
        match event {
            shoal_rdb::Event::Function(code) => shoal_aof::encode_command(&[b"FUNCTION".as_slice(), b"LOAD", &code], &mut bytes),
            shoal_rdb::Event::Entry(entry) => {
                let (db, key) = (entry.db as usize, entry.key.as_slice());
                match &entry.value {
                    Value::Str(s) => s.with_bytes(|value| encoder.encode(db, &[b"SET".as_slice(), key, value], &mut bytes)),
                    Value::List(list) => batched(&mut encoder, db, b"RPUSH", key, list.iter().map(<[u8]>::to_vec).collect(), 1, &mut bytes),
                    Value::Set(set) => batched(&mut encoder, db, b"SADD", key, set.iter().map(|m| m.with_bytes(<[u8]>::to_vec)).collect(), 1, &mut bytes),
                    Value::ZSet(zset) => {
                        let items = zset.iter().flat_map(|(member, score)| [shoal_resp::format_double(score).into_bytes(), member.to_vec()]).collect();
                        batched(&mut encoder, db, b"ZADD", key, items, 2, &mut bytes)
                    }
                    Value::Hash(hash) => {
                        let items = hash.iter().flat_map(|(field, value)| [field.to_vec(), value.to_vec()]).collect();
                        batched(&mut encoder, db, b"HMSET", key, items, 2, &mut bytes);
                        // Field TTLs (Redis 7.4), one command per field as Redis's rewrite does.
                        for (field, at_ms) in hash.field_ttls() {
                            encoder.encode(db, &[b"HPEXPIREAT".as_slice(), key, at_ms.to_string().as_bytes(), b"FIELDS", b"1", field], &mut bytes);
                        }
                    }
                    Value::Stream(stream) => rewrite_stream(&mut encoder, db, key, stream, &mut bytes),
                }
                if let Some(at_ms) = entry.expire_ms {
                    encoder.encode(db, &[b"PEXPIREAT".as_slice(), key, at_ms.to_string().as_bytes()], &mut bytes);
                }
            }
            _ => {}
        }
        if bytes.len() >= 64 * 1024 {
            writer.write_all(&bytes)?;
            bytes.clear();
        }
    }
    writer.write_all(&bytes)?;
    let file = writer.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()
}

/// One unit to replay: a command, or a transaction's commands; each with its database.
pub type Unit = Vec<(usize, Vec<Bytes>)>;

/// What the feeding thread sends core 0, in log order.
enum Feed {
    /// Units to replay, about [`FEED_BATCH_BYTES`] of arguments at most (one unit may be
    /// bigger).
    Units(Vec<Unit>),
    /// Every file was read (a truncated tail trimmed, if any).
    Done(shoal_aof::LoadReport),
    /// The log cannot be loaded: the message to exit with.
    Failed(String),
}

/// Arguments' bytes per batch of units the feeding thread sends.
const FEED_BATCH_BYTES: usize = 1 << 20;
/// Batches in flight between the feeding thread and core 0: with [`FEED_BATCH_BYTES`], what
/// a load holds in memory beyond the dataset, whatever the size of the files.
const FEED_BATCHES_MAX: usize = 2;
/// Arguments' bytes per batch of commands core 0 executes at once.
const REPLAY_BATCH_BYTES: usize = 1 << 20;

/// What the log holds beyond its base, streamed, and where appends go.
pub struct Replay {
    /// The commands, from the thread reading the files (taken once, by core 0).
    feed: std::sync::Mutex<Option<std::sync::mpsc::Receiver<Feed>>>,
    /// The incremental file to append to (its length is read once the load has trimmed it).
    append_path: PathBuf,
    /// Keys the base held, for the log line.
    base_keys: u64,
}

fn unit_bytes(unit: &Unit) -> usize {
    unit.iter().flat_map(|(_, args)| args).map(Bytes::len).sum()
}

/// Reads the AOF directory (on the loading thread): the base's keys into `keys`, for their
/// cores; the commands that follow are streamed to core 0 by a thread of their own, in
/// bounded batches, while core 0 replays them ([`replay_and_start`]).
pub fn read(config: &Config, keys: &KeyPipe) -> Result<Preload, String> {
    let dir = AofDir::new(".", &config.appenddirname, &config.appendfilename);
    let fail = |e: &dyn std::fmt::Display| format!("Fatal error loading the append only file: {e}. Exiting.");
    let policy = LoadPolicy { load_truncated: config.aof_load_truncated, ..LoadPolicy::default() };
    // The files, with a pre-7.0 single file moved into the directory first (as Redis's
    // `aofUpgradePrepare` does before loading).
    let (mut manifest, loader) = match dir.open().map_err(|e| fail(&e))? {
        AofState::None => (dir.create_initial().map_err(|e| fail(&e))?, None),
        AofState::Legacy { .. } => {
            let manifest = dir.upgrade_legacy().map_err(|e| fail(&e))?;
            let loader = shoal_aof::Loader::for_manifest(dir.aof_dir(), &manifest, policy);
            (manifest, Some(loader))
        }
        AofState::Manifest(manifest) => {
            let loader = shoal_aof::Loader::for_manifest(dir.aof_dir(), &manifest, policy);
            (manifest, Some(loader))
        }
    };
    // Where appends go: the manifest's last incremental file (a new, empty one when it has
    // none; the loader's last file, which a truncated tail may be cut from, stays the last
    // one it reads).
    if manifest.incrs.is_empty() {
        dir.open_new_incr(&mut manifest).map_err(|e| fail(&e))?;
    }
    let append_path = dir.path_of(&manifest.incrs.last().expect("an incremental file").name);
    let total: u64 = manifest.files_to_load().map(|f| std::fs::metadata(dir.path_of(&f.name)).map(|m| m.len()).unwrap_or(0)).sum();
    BASE_BYTES.store(total, std::sync::atomic::Ordering::Relaxed);
    *FILES.lock().expect("not poisoned") = Some(Files { dir, manifest });

    let mut preload = Preload::default();
    // The base: an RDB image (a `.base.rdb`, or an RDB preamble) loads here, like dump.rdb.
    let mut first = None;
    if let Some(mut loader) = loader {
        loop {
            match loader.next_item().map_err(|e| fail(&e))? {
                Some(Item::Rdb { path, offset }) => {
                    let used = read_rdb_at(config, &path, offset, &mut preload, keys)?;
                    loader.rdb_consumed(used).map_err(|e| fail(&e))?;
                }
                item => {
                    first = Some((loader, item));
                    break;
                }
            }
        }
    }
    let (sender, feed) = std::sync::mpsc::sync_channel(FEED_BATCHES_MAX);
    match first {
        Some((loader, item)) => {
            std::thread::Builder::new().name("shoal-aof-load".into()).spawn(move || feed_units(loader, item, &sender)).map_err(|e| fail(&e))?;
        }
        None => {
            let _ = sender.send(Feed::Done(shoal_aof::LoadReport::default()));
        }
    }
    preload.aof = Some(Replay { feed: std::sync::Mutex::new(Some(feed)), append_path, base_keys: preload.keys_loaded });
    Ok(preload)
}

/// Loads the RDB image at `offset` of `path`, its keys into `keys`; returns its length.
fn read_rdb_at(config: &Config, path: &std::path::Path, offset: u64, preload: &mut Preload, keys: &KeyPipe) -> Result<u64, String> {
    use std::io::{Seek, SeekFrom};
    let fail = |e: &dyn std::fmt::Display| format!("Fatal error loading the append only file: {e}. Exiting.");
    let mut file = std::fs::File::open(path).map_err(|e| fail(&e))?;
    file.seek(SeekFrom::Start(offset)).map_err(|e| fail(&e))?;
    crate::rdb_load::read_rdb(config, &path.to_string_lossy(), file, preload, keys, true)
}

/// On the feeding thread: reads the log's items from `first` on and sends them in batches
/// (blocking while core 0 is behind), then the report, or the failure.
fn feed_units(mut loader: shoal_aof::Loader, first: Option<Item>, sender: &std::sync::mpsc::SyncSender<Feed>) {
    let fail = |e: &dyn std::fmt::Display| format!("Fatal error loading the append only file: {e}. Exiting.");
    let mut batch: Vec<Unit> = Vec::new();
    let mut batch_bytes = 0;
    let mut next = Ok(first);
    loop {
        let item = match next {
            Ok(Some(item)) => item,
            Ok(None) => break,
            Err(e) => {
                let _ = sender.send(Feed::Units(batch));
                let _ = sender.send(Feed::Failed(e));
                return;
            }
        };
        let unit: Unit = match item {
            Item::Command(command) => vec![(command.db, command.args)],
            Item::Transaction(commands) => commands.into_iter().map(|c| (c.db, c.args)).collect(),
            Item::Timestamp(_) => Vec::new(),
            Item::Rdb { path, .. } => {
                // Only a first file (a base, or a pre-7.0 single file) holds an RDB; its keys
                // cannot go in after commands were replayed.
                let _ = sender.send(Feed::Units(batch));
                let _ = sender.send(Feed::Failed(fail(&format!("{} holds an RDB preamble but is not the first file", path.display()))));
                return;
            }
        };
        if !unit.is_empty() {
            batch_bytes += unit_bytes(&unit);
            batch.push(unit);
        }
        if batch_bytes >= FEED_BATCH_BYTES {
            batch_bytes = 0;
            if sender.send(Feed::Units(std::mem::take(&mut batch))).is_err() {
                return;
            }
        }
        next = loader.next_item().map_err(|e| fail(&e));
    }
    if !batch.is_empty() && sender.send(Feed::Units(batch)).is_err() {
        return;
    }
    let _ = sender.send(Feed::Done(loader.into_report()));
}

/// CONFIG SET appendonly yes, at run time: opens (or creates) the AOF directory, starts
/// logging and the writer, then rewrites, so the new base holds the data as it is (as Redis
/// does; inside EXEC, `in_exec`, the rewrite is scheduled for the cron, as Redis schedules it
/// there). Err with the reason when the files cannot be opened.
pub async fn turn_on(node: &Rc<crate::node::Node>, in_exec: bool) -> Result<(), String> {
    if LOG.file_on() {
        return Ok(());
    }
    let (path, len) = {
        let config = node.config.borrow();
        let dir = AofDir::new(".", &config.appenddirname, &config.appendfilename);
        let fail = |e: &dyn std::fmt::Display| format!("can't open the append only file: {e}");
        let mut manifest = match dir.open().map_err(|e| fail(&e))? {
            AofState::None => dir.create_initial().map_err(|e| fail(&e))?,
            AofState::Legacy { .. } => dir.upgrade_legacy().map_err(|e| fail(&e))?,
            AofState::Manifest(manifest) => manifest,
        };
        if manifest.incrs.is_empty() {
            dir.open_new_incr(&mut manifest).map_err(|e| fail(&e))?;
        }
        let path = dir.path_of(&manifest.incrs.last().expect("an incremental file").name);
        let len = std::fs::metadata(&path).map_err(|e| fail(&e))?.len();
        BASE_BYTES.store(0, std::sync::atomic::Ordering::Relaxed);
        *FILES.lock().expect("not poisoned") = Some(Files { dir, manifest });
        (path, len)
    };
    let always = node.config.borrow().appendfsync == AppendFsync::Always;
    LOG.set_timestamps(node.config.borrow().aof_timestamp_enabled);
    node.core
        .call_on(0, move |core| {
            LOG.activate(always);
            start_writer(core, Some((path, len)));
        })
        .await;
    // The base: everything there is now.
    let _ = crate::save::bgrewriteaof(node, in_exec).await;
    Ok(())
}

/// CONFIG SET appendonly no, at run time: stops logging to the file; the writer writes what
/// it merged, fsyncs and closes the file (and stops, unless it feeds replicas).
pub async fn turn_off(node: &Rc<crate::node::Node>) {
    LOG.deactivate();
    node.core.call_on(0, |core| core.ring_aof_writer()).await;
}

/// The last write or fsync of the AOF failed (writes are refused until one succeeds): its
/// error text, as C's strerror words it.
static WRITE_ERROR: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

static WRITE_FAILED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Redis's refusal while the AOF cannot be written, if it cannot.
pub fn write_error_refusal() -> Option<String> {
    if !WRITE_FAILED.load(std::sync::atomic::Ordering::Relaxed) {
        return None;
    }
    WRITE_ERROR.lock().expect("not poisoned").as_ref().map(|e| format!("MISCONF Errors writing to the AOF file: {e}"))
}

fn set_write_error(error: Option<&std::io::Error>) {
    let text = error.map(|e| {
        let text = e.to_string();
        text.find(" (os error").map_or(text.clone(), |end| text[..end].to_owned())
    });
    WRITE_FAILED.store(text.is_some(), std::sync::atomic::Ordering::Relaxed);
    *WRITE_ERROR.lock().expect("not poisoned") = text;
}

/// Whether a writer task runs (a turned-off one may still be draining).
static WRITER_RUNNING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// On core 0, once every core holds the base: replays the log's commands as the feeding
/// thread reads them, then starts logging and the writer. Err (the server exits, nothing
/// saved) when the log turns out to be damaged part way: what was replayed is never served.
pub async fn replay_and_start(core: &Rc<Core>, replay: &Replay) -> Result<(), String> {
    let started = Instant::now();
    let Some(feed) = replay.feed.lock().expect("not poisoned").take() else {
        return Err("the append only file was replayed already".to_owned());
    };
    let mut batch: Vec<Cmd> = Vec::new();
    let mut batch_db = 0;
    let mut batch_bytes = 0;
    let mut replayed = 0u64;
    let report = loop {
        let units = match feed.try_recv() {
            Ok(Feed::Units(units)) => units,
            Ok(Feed::Done(report)) => break report,
            Ok(Feed::Failed(message)) => return Err(message),
            Err(std::sync::mpsc::TryRecvError::Empty) => {
                glommio::timer::sleep(Duration::from_millis(1)).await;
                continue;
            }
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                return Err("Fatal error loading the append only file: the reading thread stopped. Exiting.".to_owned())
            }
        };
        for unit in units {
            batch_bytes += unit_bytes(&unit);
            for (db, args) in unit {
                let resolved = dispatch::resolve(&args, core.shard_count).map_err(|e| format!("Bad command in the append only file: {e:?}. Exiting."))?;
                if matches!(resolved.route, Route::Connection) {
                    if resolved.spec.name.starts_with("function|") {
                        // Function libraries, on every core, in order with the rest.
                        if !batch.is_empty() {
                            run_batch(core, batch_db, std::mem::take(&mut batch)).await;
                        }
                        let node = crate::node::current();
                        if let Frame::Error(e) = crate::scripting::function(&node, resolved.spec, &args).await {
                            tracing::warn!("'{}' in the append only file failed: {}", String::from_utf8_lossy(&args[0]), String::from_utf8_lossy(&e));
                        }
                        continue;
                    }
                    // SELECT is the loader's; anything else needing a connection is skipped.
                    tracing::warn!("Skipping '{}' in the append only file", String::from_utf8_lossy(&args[0]));
                    continue;
                }
                if db != batch_db && !batch.is_empty() {
                    run_batch(core, batch_db, std::mem::take(&mut batch)).await;
                }
                batch_db = db;
                batch.push(Cmd { spec: resolved.spec, route: resolved.route, args, guard: 0 });
                replayed += 1;
                if batch.len() >= 1024 {
                    run_batch(core, batch_db, std::mem::take(&mut batch)).await;
                }
            }
            if batch_bytes >= REPLAY_BATCH_BYTES {
                batch_bytes = 0;
                if !batch.is_empty() {
                    run_batch(core, batch_db, std::mem::take(&mut batch)).await;
                }
            }
        }
    };
    if !batch.is_empty() {
        run_batch(core, batch_db, batch).await;
    }
    if let Some(cut) = &report.truncated {
        let name = cut.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        // Redis's lines, then how much went.
        tracing::warn!("!!! Warning: short read while loading the AOF file {name}!!!");
        tracing::warn!("!!! Truncating the AOF {name} at offset {} !!!", cut.offset);
        tracing::warn!("AOF {name} loaded anyway because aof-load-truncated is enabled");
        tracing::warn!("Trimmed {} bytes off the end of {name} (a command or transaction cut short)", cut.trimmed_bytes);
    }
    tracing::info!(
        "DB loaded from append only file: {} commands, {} transactions, {} keys in the base; {replayed} commands replayed in {:.3} s",
        report.commands,
        report.transactions,
        replay.base_keys,
        started.elapsed().as_secs_f64()
    );
    let (always, timestamps) = {
        let config = &crate::node::current().config;
        let config = config.borrow();
        (config.appendfsync == AppendFsync::Always, config.aof_timestamp_enabled)
    };
    // Appends go at the end of the last incremental file, as the load left it (trimmed).
    let path = replay.append_path.clone();
    let len = std::fs::metadata(&path).map_err(|e| format!("Fatal error loading the append only file: {e}. Exiting."))?.len();
    LOG.set_timestamps(timestamps);
    LOG.activate(always);
    start_writer(core, Some((path, len)));
    Ok(())
}

async fn run_batch(core: &Rc<Core>, db: usize, cmds: Vec<Cmd>) {
    let frames = core.execute(db, Protocol::Resp2, cmds, &BlockCtx::NEVER).await;
    for frame in frames {
        if let Frame::Error(text) = frame {
            tracing::debug!("a command of the append only file failed: {}", String::from_utf8_lossy(&text));
        }
    }
}

/// A file for the writer to append to from the given position: the log was turned on (or
/// loaded) while a writer may already run for the replicas. It stays here until the writer
/// has it open (see [`writer_file_open`]).
static OPEN_FILE: std::sync::Mutex<Option<(PathBuf, u64)>> = std::sync::Mutex::new(None);

/// `SHOAL_TEST_AOF_OPEN_DELAY_MS`: the writer waits this long before each open of a given
/// file, so tests can make a rewrite outrun it (see [`writer_file_open`]).
fn open_delay() -> Option<Duration> {
    static DELAY: std::sync::OnceLock<Option<Duration>> = std::sync::OnceLock::new();
    *DELAY.get_or_init(|| std::env::var("SHOAL_TEST_AOF_OPEN_DELAY_MS").ok().and_then(|ms| ms.parse().ok()).map(Duration::from_millis))
}

/// Completes once the writer holds the file it was given open, or its open failed. A
/// rewrite waits for this before its cut: the rewrite deletes the incremental files its
/// base covers, and a writer that had not opened its file by then would find it gone and
/// never reach the cut that moves it on (CONFIG SET appendonly yes hung so when its rewrite
/// finished before core 0's writer first ran).
pub async fn writer_file_open() {
    while OPEN_FILE.lock().expect("not poisoned").is_some() && !WRITE_FAILED.load(std::sync::atomic::Ordering::Relaxed) {
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
}

/// On core 0, once the log is active: has the writer append to `file` (when given) and starts
/// it unless it runs.
fn start_writer(core: &Rc<Core>, file: Option<(PathBuf, u64)>) {
    if file.is_some() {
        *OPEN_FILE.lock().expect("not poisoned") = file;
    }
    if WRITER_RUNNING.swap(true, std::sync::atomic::Ordering::SeqCst) {
        core.ring_aof_writer();
        return;
    }
    let writer = glommio::spawn_local(write_until_stopped(core.clone()));
    if let Some(old) = crate::node::current().aof_writer.replace(Some(writer)) {
        // A writer that stopped: it has nothing left to do.
        old.detach();
    }
}

/// Replicas are to be fed (on core 0): the log keeps what the cores run, and the writer runs.
pub fn start_feeding(core: &Rc<Core>) {
    // The stream's next command selects its database: replicas that continue from here
    // (after a promotion) may stand in another one than the file's last SELECT.
    if !LOG.feeding() {
        RESELECT.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    LOG.set_feeding(true);
    start_writer(core, None);
}

/// Set when feeding starts: the writer's next command is preceded by a SELECT.
static RESELECT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The writer: merges the streams into the append-only file (while `appendonly yes`) and the
/// replication stream (while replicas are fed) until shutdown, then flushes and fsyncs.
async fn write_until_stopped(core: Rc<Core>) {
    let mut file: Option<AofFile> = None;
    let mut position = 0;
    let mut merger = Merger::new(core.shard_count);
    // Where this file stood when we started appending to it (what growth counts from).
    let mut start = 0;
    let mut last_fsync = Instant::now();
    let mut unsynced = false;
    let node = crate::node::current();
    // Bytes merged but not yet written (kept across a failed write, to retry).
    let mut unwritten = Vec::new();
    // Per stream, the records last announced durable, fsynced (for WAITAOF) and fed.
    let mut published = vec![0u64; core.shard_count];
    let mut synced = vec![0u64; core.shard_count];
    let mut fed = vec![0u64; core.shard_count];
    loop {
        if RESELECT.swap(false, std::sync::atomic::Ordering::SeqCst) {
            merger.db = None;
        }
        let opening = OPEN_FILE.lock().expect("not poisoned").clone();
        if let Some((path, at)) = opening {
            if let Some(delay) = open_delay() {
                glommio::timer::sleep(delay).await;
            }
            match AofFile::open(&path).await {
                Ok(new_file) => {
                    // Opened: a rewrite may start (unless another file was given meanwhile).
                    {
                        let mut given = OPEN_FILE.lock().expect("not poisoned");
                        if given.as_ref().is_some_and(|(p, a)| *p == path && *a == at) {
                            *given = None;
                        }
                    }
                    if let Some(old) = file.replace(new_file) {
                        old.close().await;
                    }
                    (position, start) = (at, at);
                    unsynced = false;
                }
                Err(e) => {
                    // Nothing is written, and nothing counts as durable, until it opens:
                    // writes are refused meanwhile (MISCONF) and the open is tried again.
                    tracing::error!("Can't open the append only file {path:?} for appending: {e}");
                    set_write_error(Some(&e));
                    glommio::timer::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        }
        // The log is on but no file is open (only while one is being opened): what the merge
        // gives waits for it.
        let awaiting_file = file.is_none() && LOG.file_on();
        let policy = node.config.borrow().appendfsync;
        LOG.set_always(policy == AppendFsync::Always);
        if let Some(file) = &mut file {
            file.blocking = policy == AppendFsync::Always && core.shard_count == 1;
        }
        let before = unwritten.len();
        let consumed = merger.collect(&mut unwritten);
        let annotations = merger.take_annotations();
        if LOG.feeding() || !annotations.marks.is_empty() {
            crate::replication::feed(&unwritten, before, &annotations.stamps, &annotations.marks);
        }
        // The replicas' own commands (PUBLISH) are not the file's.
        if file.is_some() && !annotations.repl_only.is_empty() {
            let mut kept = Vec::with_capacity(unwritten.len());
            let mut at = 0;
            for range in &annotations.repl_only {
                kept.extend_from_slice(&unwritten[at..range.start]);
                at = range.end;
            }
            kept.extend_from_slice(&unwritten[at..]);
            unwritten = kept;
        }
        crate::replication::writer_tick();
        if consumed != fed {
            shoal_runtime::aof::publish_fed(&consumed);
            fed.clone_from(&consumed);
            if file.is_none() && !awaiting_file {
                core.aof_announce_durable();
            }
        }
        if file.is_none() && !awaiting_file {
            unwritten.clear();
        }
        let wrote = file.is_some() && !unwritten.is_empty();
        if let (true, Some(file)) = (wrote, &file) {
            if let Err(e) = file.write(&mut unwritten, &mut position).await {
                // Redis exits when it cannot write the AOF under `always`; here writes are
                // refused (MISCONF) and the write is retried, replies waiting meanwhile.
                tracing::warn!("Error writing to the AOF file: {e}");
                set_write_error(Some(&e));
                glommio::timer::sleep(Duration::from_millis(100)).await;
                continue;
            }
            set_write_error(None);
            unsynced = true;
        }
        let sync_now = unsynced && (policy == AppendFsync::Always || (policy == AppendFsync::Everysec && last_fsync.elapsed() >= Duration::from_secs(1)));
        if let (true, Some(file)) = (sync_now, &file) {
            if let Err(e) = file.sync().await {
                tracing::warn!("Error fsyncing the AOF file: {e}");
                set_write_error(Some(&e));
                glommio::timer::sleep(Duration::from_millis(100)).await;
                continue;
            }
            unsynced = false;
            last_fsync = Instant::now();
        }
        if wrote {
            INCR_BYTES.store(position - start, std::sync::atomic::Ordering::Relaxed);
        }
        // CONFIG SET aof-timestamp-enabled: the cores stamp their appends from now on.
        LOG.set_timestamps(node.config.borrow().aof_timestamp_enabled);
        // A rewrite's cut: everything before it is in this file; fsync it, then go on in the
        // next one.
        if let Some(id) = merger.take_switch() {
            let next = {
                let mut switches = SWITCHES.lock().expect("not poisoned");
                let at = switches.iter().position(|(s, _)| *s == id).expect("a switch names its file");
                switches.remove(at).1
            };
            if let Some(old) = &file {
                if let Err(e) = old.sync().await {
                    tracing::warn!("Error fsyncing the AOF file: {e}");
                }
                match AofFile::open(&next).await {
                    Ok(new_file) => {
                        file.replace(new_file).expect("a file").close().await;
                        position = 0;
                        start = 0;
                        INCR_BYTES.store(0, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(e) => tracing::error!("Can't open the new append only file {next:?}: {e}; appending to the old one"),
                }
            } else if awaiting_file {
                // No file yet at a rewrite's cut: what came before the cut is in the new base;
                // what comes after goes to the next file.
                tracing::warn!("A rewrite's cut reached the AOF writer before its file was open; going on in {next:?}");
                unwritten.clear();
                *OPEN_FILE.lock().expect("not poisoned") = Some((next, 0));
            }
            unsynced = false;
            last_fsync = Instant::now();
            shoal_runtime::aof::publish_durable(&mut merger, &consumed);
            shoal_runtime::aof::publish_synced(&consumed);
            core.aof_announce_durable();
            synced.clone_from(&consumed);
            published = consumed;
            continue;
        }
        // Durable: under `always`, what is fsynced (records that carry no bytes, such as a
        // reference to a body written earlier, as soon as nothing unsynced precedes them);
        // under `everysec` and `no`, what is written (nobody waits for more).
        let durable = (policy != AppendFsync::Always || !unsynced) && !awaiting_file;
        // Fsynced, for WAITAOF (under `no`, written: Shoal never fsyncs then).
        let newly_synced = (policy == AppendFsync::No || !unsynced) && consumed != synced;
        if newly_synced {
            shoal_runtime::aof::publish_synced(&consumed);
            synced.clone_from(&consumed);
        }
        if durable && consumed != published {
            shoal_runtime::aof::publish_durable(&mut merger, &consumed);
            published = consumed;
            core.aof_announce_durable();
        } else if newly_synced {
            core.aof_announce_durable();
        }
        // CONFIG SET appendonly no: what was merged is in the file; fsync and close it.
        if file.is_some() && !LOG.file_on() && unwritten.is_empty() {
            let old = file.take().expect("a file");
            let _ = old.sync().await;
            old.close().await;
            unsynced = false;
        }
        if wrote || sync_now {
            continue;
        }
        let stopping = core.shared.shutdown.load(std::sync::atomic::Ordering::SeqCst) || !LOG.is_active();
        let drained = !merger.holds_records() && !merger.mid_transaction() && !shoal_runtime::aof::streams_hold_records();
        if stopping && drained && OPEN_FILE.lock().expect("not poisoned").is_none() {
            // Stopped from here on: a log turned on meanwhile starts a new writer.
            WRITER_RUNNING.store(false, std::sync::atomic::Ordering::SeqCst);
            if let Some(file) = file {
                let _ = file.sync().await;
                file.close().await;
            }
            return;
        }
        if merger.holds_records() {
            tracing::debug!("AOF merge waits: {}", merger.fronts());
        }
        if shoal_runtime::aof::writer_going_idle() {
            // Woken by an append, or in time for the next second's fsync or a shutdown.
            let wait = std::pin::pin!(core.aof_writer_wait());
            let tick = std::pin::pin!(glommio::timer::sleep(Duration::from_millis(100)));
            futures::future::select(wait, tick).await;
        }
    }
}

/// The incremental file the writer appends to, through io_uring; or, on a one-core server
/// under `appendfsync always`, with plain blocking `pwrite` and `fdatasync` (`blocking`), as
/// Redis writes it. There every writer waits for that fsync anyway, and while the core
/// blocks the next requests gather and are then run as one batch; through io_uring the
/// core wakes for each request that arrives during the fsync, which cost 15% of the
/// throughput at pipeline 1 (bench/aof.py). With several cores the writer's core keeps
/// serving its clients and the other cores' messages during the fsync.
struct AofFile {
    uring: glommio::io::BufferedFile,
    plain: std::fs::File,
    blocking: bool,
}

impl AofFile {
    async fn open(path: &std::path::Path) -> std::io::Result<AofFile> {
        let uring = glommio::io::OpenOptions::new().write(true).buffered_open(path).await.map_err(std::io::Error::from)?;
        let plain = std::fs::OpenOptions::new().write(true).open(path)?;
        Ok(AofFile { uring, plain, blocking: false })
    }

    /// Writes `bytes` at `position` (see [`write_all`]).
    async fn write(&self, bytes: &mut Vec<u8>, position: &mut u64) -> std::io::Result<()> {
        if !self.blocking {
            return write_all(&self.uring, bytes, position).await;
        }
        use std::os::unix::fs::FileExt;
        while !bytes.is_empty() {
            let written = self.plain.write_at(bytes, *position)?;
            if written == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            bytes.drain(..written);
            *position += written as u64;
        }
        Ok(())
    }

    async fn sync(&self) -> std::io::Result<()> {
        if self.blocking {
            self.plain.sync_data()
        } else {
            self.uring.fdatasync().await.map_err(std::io::Error::from)
        }
    }

    async fn close(self) {
        let _ = self.uring.close().await;
    }
}

/// Writes `bytes` at `position` through io_uring, removing from it what was written (all of
/// it on success; what is left on failure, for a retry). Used by the AOF writer and by saves.
pub async fn write_all(file: &glommio::io::BufferedFile, bytes: &mut Vec<u8>, position: &mut u64) -> std::io::Result<()> {
    while !bytes.is_empty() {
        let written = file.write_at(bytes.clone(), *position).await.map_err(std::io::Error::from)?;
        if written == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::WriteZero, "the file took no bytes"));
        }
        *position += written as u64;
        bytes.drain(..written);
    }
    Ok(())
}
