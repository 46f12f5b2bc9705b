//! Which cores are running a script, so that SCRIPT KILL and FUNCTION KILL sent on another
//! core can stop it.
//!
//! A script runs on its core's thread without yielding, so that core reads nothing until the
//! script ends: a kill can only come from a connection on another core. The script's hook
//! (every 100,000 Lua instructions) asks [`Guard::killed`].
//!
//! Each core has one slot, registered once; starting a script only stores to its atomics.
//! A generation number tells runs apart, so a kill meant for a script that has just ended
//! cannot stop the next one.
//!
//! Clients on other cores whose command needs a core running a script for longer than
//! `busy-reply-threshold` get Redis's BUSY error instead of waiting ([`busy_reply`]).

use std::cell::OnceCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use shoal_resp::Frame;

/// A core's script slot.
struct Slot {
    core: usize,
    /// The run in progress (odd while one runs), bumped at start and end.
    generation: AtomicU64,
    function: AtomicBool,
    /// Set once the run executed a write command: it may then not be killed.
    wrote: AtomicBool,
    /// The generation SCRIPT KILL / FUNCTION KILL asked to stop.
    kill: AtomicU64,
}

static SLOTS: Mutex<Vec<Arc<Slot>>> = Mutex::new(Vec::new());

/// Per core: when its running script started (Unix ms, shifted left once, the low bit set
/// for a function), or 0. Written only by its core; read by every core for BUSY replies.
static SINCE: OnceLock<Box<[AtomicU64]>> = OnceLock::new();

/// Sizes the table for `cores` cores (once, before any core serves).
pub fn init(cores: usize) {
    let _ = SINCE.set((0..cores).map(|_| AtomicU64::new(0)).collect());
}

/// The BUSY error for a command that needs `shards` (of a core other than the caller's),
/// when one of them has run a script for `threshold_ms()` or more (read only then).
pub fn busy_reply(shards: &[usize], threshold_ms: impl Fn() -> u64) -> Option<Frame> {
    let since = SINCE.get()?;
    shards.iter().find_map(|&shard| {
        let value = since.get(shard)?.load(Ordering::Relaxed);
        if value == 0 || shoal_runtime::now_ms().saturating_sub(value >> 1) < threshold_ms() {
            return None;
        }
        Some(Frame::Error(Bytes::from_static(if value & 1 == 1 { SLOW_FUNCTION } else { SLOW_EVAL })))
    })
}

thread_local! {
    static MINE: OnceCell<Arc<Slot>> = const { OnceCell::new() };
}

/// A script running on this core; the slot is idle again when the guard drops.
pub struct Guard {
    slot: Arc<Slot>,
    generation: u64,
}

/// Marks a script (or a function) as running on `core`, this thread's core, since `now_ms`
/// (Unix milliseconds: the time the script sees).
pub fn start(core: usize, function: bool, now_ms: u64) -> Guard {
    let slot = MINE.with(|mine| {
        mine.get_or_init(|| {
            let slot = Arc::new(Slot {
                core,
                generation: AtomicU64::new(0),
                function: AtomicBool::new(false),
                wrote: AtomicBool::new(false),
                kill: AtomicU64::new(0),
            });
            SLOTS.lock().unwrap_or_else(|e| e.into_inner()).push(slot.clone());
            slot
        })
        .clone()
    });
    slot.function.store(function, Ordering::Relaxed);
    slot.wrote.store(false, Ordering::Relaxed);
    let generation = slot.generation.fetch_add(1, Ordering::AcqRel) + 1;
    if let Some(since) = SINCE.get().and_then(|since| since.get(core)) {
        since.store(now_ms << 1 | function as u64, Ordering::Relaxed);
    }
    Guard { slot, generation }
}

impl Guard {
    /// The script ran a write command.
    pub fn wrote(&self) {
        self.slot.wrote.store(true, Ordering::Release);
    }

    /// Whether SCRIPT KILL or FUNCTION KILL asked this run to stop.
    pub fn killed(&self) -> bool {
        self.slot.kill.load(Ordering::Acquire) == self.generation
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(since) = SINCE.get().and_then(|since| since.get(self.slot.core)) {
            since.store(0, Ordering::Relaxed);
        }
        self.slot.generation.fetch_add(1, Ordering::AcqRel);
    }
}

const SLOW_EVAL: &[u8] = b"BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
const SLOW_FUNCTION: &[u8] = b"BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";

/// SCRIPT KILL (`function` false) or FUNCTION KILL (`function` true), sent on core `here`.
pub fn kill(here: usize, function: bool) -> Frame {
    let slots = SLOTS.lock().unwrap_or_else(|e| e.into_inner());
    // A script on this very core is not running: we are.
    let running = slots.iter().filter(|s| s.core != here).find_map(|s| {
        let generation = s.generation.load(Ordering::Acquire);
        (generation % 2 == 1).then_some((s, generation))
    });
    let Some((slot, generation)) = running else {
        return Frame::Error(Bytes::from_static(b"NOTBUSY No scripts in execution right now."));
    };
    if slot.wrote.load(Ordering::Acquire) {
        return Frame::Error(Bytes::from_static(
            b"UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.",
        ));
    }
    match (function, slot.function.load(Ordering::Acquire)) {
        (false, true) => Frame::Error(Bytes::from_static(SLOW_FUNCTION)),
        (true, false) => Frame::Error(Bytes::from_static(SLOW_EVAL)),
        _ => {
            slot.kill.store(generation, Ordering::Release);
            Frame::Simple(Bytes::from_static(b"OK"))
        }
    }
}
