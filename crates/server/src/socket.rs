//! A connection's socket, on a ring of our own per core.
//!
//! glommio 0.9 reads a socket with a direct `recv`, and when that finds nothing it arms a
//! one-shot io_uring poll, once per read; it writes with a direct `send` per reply. Each core
//! here owns one io_uring ring instead (io-uring crate), with a provided-buffer ring:
//!
//! - **Input.** Every connection has one multishot RECV armed, so a readable socket costs no
//!   system call of its own; the kernel copies what arrives into a free buffer and posts a
//!   completion. Whoever reaps (below) moves the bytes into the connection's pending input,
//!   gives the buffer back at once and wakes the connection. A receive that ends (no free
//!   buffer: ENOBUFS; a full completion queue; our cancel when a connection holds more than
//!   `PENDING_MAX` unread) is re-armed when the connection next waits for input, so nothing is
//!   lost and a client that sends faster than it is served meets TCP's back-pressure.
//! - **Output.** A reply is copied into the connection's send buffer and queued as a SEND
//!   entry; `flush_loop`, a task woken by the first queued send, runs after the tasks already
//!   runnable and submits every queued send in one `io_uring_enter`. One send per connection
//!   is in flight: the writer waits for its completion (and sends the rest of a short one), so
//!   a client that reads nothing holds its connection back, and the output limits' timers
//!   and the Pub/Sub overflow see the write pending, as with glommio's `write_all`.
//! - **Wakeups.** The ring's eventfd tells glommio that completions are waiting: one task per
//!   core (`reap_loop`) awaits the eventfd with an io_uring READ on glommio's own ring, then
//!   reaps our completion queue (no system call). A connection that finds no input reaps
//!   too, so a busy core rarely waits for the eventfd. `flush_loop` turns the eventfd off
//!   while it submits and reaps right after: the sends that complete during the submit
//!   would otherwise each cost the reaper a turn and another READ. The ring is created with COOP_TASKRUN:
//!   completions are posted when the thread next enters the kernel, without interrupting it.
//!
//! The ring is on by default (`RING_DEFAULT`): `SHOAL_SOCKET_RING=0` in the environment keeps
//! every connection on glommio's `TcpStream`, and so does a kernel that cannot set the ring up
//! (before 5.19: no provided-buffer rings);
//! `SHOAL_SOCKET_RING_SEND=0` keeps the ring for input and writes with glommio. The log says at
//! debug level which path each core took, and INFO's `shoal_socket_io` says it too.
//! `SHOAL_SOCKET_RING_BUFFERS` (a power of two) sets the buffers per core, for tests;
//! `SHOAL_SOCKET_RING_DEFER=1` creates the ring with DEFER_TASKRUN instead (measured no better).
//!
//! Closing: dropping a `Socket` cancels its receive (the kernel holds the file while it is
//! armed) and, if a send is in flight, keeps the slot and its buffer until that completes.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::unix::io::{AsRawFd, FromRawFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use futures::AsyncReadExt;
use glommio::net::TcpStream;
use io_uring::{cqueue, opcode, types, IoUring};

/// Whether the cores use their own ring when `SHOAL_SOCKET_RING` is unset: yes, the ring with
/// SEND entries costs 13-25% less CPU per request at pipeline 1 (bench/RESULTS.md, sixth
/// session).
const RING_DEFAULT: bool = true;
/// Submission queue entries: arms and cancels, submitted one at a time.
const SQ_ENTRIES: u32 = 256;
/// Completion queue entries: room for a burst of receives between two reaps (the kernel keeps
/// what overflows, and a multishot receive that overflowed stops and is re-armed).
const CQ_ENTRIES: u32 = 8192;
/// Provided buffers per core, unless `SHOAL_SOCKET_RING_BUFFERS` says otherwise (a power of
/// two; tests use a handful to exhaust them).
const BUFFERS_DEFAULT: u16 = 256;
/// Bytes per provided buffer.
const BUFFER_BYTES: usize = 16 * 1024;
/// The buffer group our receives draw from.
const BUFFER_GROUP: u16 = 0;
/// Input a connection may have pending (received, not yet taken by its task) before its
/// receive is cancelled; the socket's own buffer then holds the rest, and the client feels
/// TCP's back-pressure, as with a plain read. It is re-armed when the task has taken the input.
const PENDING_MAX: usize = 256 * 1024;

/// io_uring_enter's flag to reap (and run deferred work); the crate keeps its own private.
const IORING_ENTER_GETEVENTS: u32 = 1;

/// user_data's low byte: what the entry was.
const KIND_RECV: u64 = 1;
const KIND_CANCEL: u64 = 2;
const KIND_SEND: u64 = 3;

/// Cores whose connections read through their own ring (for INFO).
static RING_CORES: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static RING: RefCell<Option<Rc<Ring>>> = const { RefCell::new(None) };
}

/// INFO's `shoal_socket_io`: `io_uring` when every core reads through its own ring, `glommio`
/// when none does, `mixed` otherwise.
pub fn path_name(threads: usize) -> &'static str {
    match RING_CORES.load(Ordering::Relaxed) {
        0 => "glommio",
        n if n >= threads => "io_uring",
        _ => "mixed",
    }
}

/// Sets up this core's ring and starts its reaper, unless the environment or the kernel says
/// no. Call once per core, on its executor, before accepting.
pub fn init(core_id: usize) {
    let wanted = match std::env::var("SHOAL_SOCKET_RING").as_deref() {
        Ok("1") => true,
        Ok("0") => false,
        _ => RING_DEFAULT,
    };
    if !wanted {
        tracing::debug!("core {core_id}: sockets read through glommio (SHOAL_SOCKET_RING is not 1)");
        return;
    }
    let buffers =
        std::env::var("SHOAL_SOCKET_RING_BUFFERS").ok().and_then(|v| v.parse::<u16>().ok()).filter(|n| n.is_power_of_two()).unwrap_or(BUFFERS_DEFAULT);
    let defer = std::env::var("SHOAL_SOCKET_RING_DEFER").is_ok_and(|v| v == "1");
    match Ring::new(buffers, defer).or_else(|e| if defer { Ring::new(buffers, false) } else { Err(e) }) {
        Ok((mut ring, eventfd)) => {
            ring.sends = !std::env::var("SHOAL_SOCKET_RING_SEND").is_ok_and(|v| v == "0");
            let ring = Rc::new(ring);
            if ring.sends {
                glommio::spawn_local(flush_loop(ring.clone())).detach();
            }
            let ring_defer = ring.defer;
            let ring_sends = ring.sends;
            RING.with(|r| *r.borrow_mut() = Some(ring.clone()));
            RING_CORES.fetch_add(1, Ordering::Relaxed);
            glommio::spawn_local(reap_loop(ring, eventfd)).detach();
            tracing::debug!(
                "core {core_id}: sockets read through an io_uring ring with {buffers} provided buffers{}, replies leave by {}",
                if ring_defer { ", deferred task running" } else { "" },
                if ring_sends { "its SEND entries" } else { "send(2)" }
            );
        }
        Err(e) => tracing::debug!("core {core_id}: sockets read through glommio (no io_uring ring of our own: {e})"),
    }
}

/// One connection's state on the ring.
#[derive(Default)]
struct Conn {
    /// Bumped when the slot is freed, so late completions of a closed connection are
    /// recognised (their buffers are given back, their bytes dropped).
    generation: u32,
    live: bool,
    fd: RawFd,
    /// Received, not yet taken by the connection's task.
    pending: BytesMut,
    /// The peer closed its side (or a kill shut our read side).
    eof: bool,
    error: Option<i32>,
    /// A multishot receive is in the kernel.
    armed: bool,
    /// Its cancel is in the kernel (too much pending input).
    cancelling: bool,
    waker: Option<Waker>,
    /// Replies being sent by a SEND entry (with `SHOAL_SOCKET_RING_SEND=1`): the kernel reads
    /// them until its completion, so they live here, not in the writing future.
    send_buffer: BytesMut,
    send_in_flight: bool,
    /// The last send's result: bytes sent, or minus the errno.
    send_result: Option<i32>,
    write_waker: Option<Waker>,
}

struct Ring {
    uring: RefCell<IoUring>,
    /// Set up with DEFER_TASKRUN: completions are posted only when we enter the ring.
    defer: bool,
    /// The provided-buffer ring's entries (page-aligned, mmap'd) and the buffers.
    entries: *mut types::BufRingEntry,
    entries_len: usize,
    buffers: Box<[u8]>,
    buffer_count: u16,
    /// Our copy of the buffer ring's tail; the kernel reads the one in the first entry.
    tail: Cell<u16>,
    conns: RefCell<Vec<Conn>>,
    free: RefCell<Vec<u32>>,
    /// Replies go out as SEND entries, submitted together once per executor turn (by
    /// `flush_loop`), instead of a `send` call each.
    sends: bool,
    flush_requested: Cell<bool>,
    flush_waker: RefCell<Option<Waker>>,
    /// Flushes done so far, and who waits for the next (`Socket::queued_sends_left`).
    flushes: Cell<u64>,
    flush_waiters: RefCell<Vec<Waker>>,
    /// A submit was refused: entries wait in the submission queue for the next reap.
    resubmit: Cell<bool>,
    /// Warms the cache for the request at the start of a connection's new input (see
    /// [`set_input_prefetch`]).
    prefetch: RefCell<Option<InputPrefetch>>,
}

/// New input longer than this is not prefetched by the reaper: it holds several requests, and
/// the batch prefetches all their keys when it runs (it cost GET at pipeline 16 1.5%).
const PREFETCH_INPUT_MAX: usize = 256;

/// Called by the reaper with the start of a connection's new input: first with
/// [`PrefetchStep::First`] as its bytes arrive, then with [`PrefetchStep::Second`] once every
/// completion of the reap is taken, before any connection runs.
pub type InputPrefetch = Box<dyn Fn(&[u8], PrefetchStep)>;

/// The two steps of an input prefetch: a dependent load (a hash bucket, then the node it
/// names) needs the first to have arrived before the second can be asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrefetchStep {
    First,
    Second,
}

/// A quiet core gives back the pages of its socket buffers (beside the allocator's purge,
/// `alloc::return_freed_pages`): the provided-buffer ring hands buffers out in FIFO order,
/// so deep pipelines leave every one of them resident (4 MiB a core) otherwise.
pub fn release_buffer_pages() {
    let ring = RING.with(|r| r.borrow().clone());
    if let Some(ring) = ring {
        match ring.release_pages() {
            Ok(()) => drop(GIVEBACKS.fetch_add(1, Ordering::Relaxed)),
            Err(e) => tracing::warn!("could not give back the socket buffers' pages: {e}"),
        }
    }
}

/// Give-backs of socket buffer pages so far, every core's (INFO's
/// `shoal_socket_buffer_givebacks`).
static GIVEBACKS: AtomicU64 = AtomicU64::new(0);

pub fn buffer_givebacks() -> u64 {
    GIVEBACKS.load(Ordering::Relaxed)
}

/// Installs this core's input prefetch: when several connections' requests arrive in one
/// reap, each one's key is on its way into the cache while the others are taken and run.
/// Without the ring (glommio's path) it is never called.
pub fn set_input_prefetch(prefetch: InputPrefetch) {
    RING.with(|ring| {
        if let Some(ring) = ring.borrow().as_ref() {
            *ring.prefetch.borrow_mut() = Some(prefetch);
        }
    });
}

impl Ring {
    fn new(buffer_count: u16, defer: bool) -> io::Result<(Ring, glommio::io::BufferedFile)> {
        // COOP_TASKRUN: a completion does not interrupt the busy core; it is posted when the
        // thread next enters the kernel (each executor turn does, and every send). With
        // DEFER_TASKRUN it is posted only when we enter this ring asking for completions, in
        // a batch; the kernel signals the eventfd when such work first waits.
        let mut builder = IoUring::builder();
        builder.setup_coop_taskrun().setup_taskrun_flag().setup_single_issuer().setup_cqsize(CQ_ENTRIES);
        if defer {
            builder.setup_defer_taskrun();
        }
        let uring = builder.build(SQ_ENTRIES)?;
        let entries_len = buffer_count as usize * std::mem::size_of::<types::BufRingEntry>();
        // SAFETY: an anonymous private mapping; we check the result and unmap it in Drop.
        let entries =
            unsafe { libc::mmap(std::ptr::null_mut(), entries_len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0) };
        if entries == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut ring = Ring {
            uring: RefCell::new(uring),
            defer,
            entries: entries.cast(),
            entries_len,
            buffers: vec![0u8; buffer_count as usize * BUFFER_BYTES].into_boxed_slice(),
            buffer_count,
            tail: Cell::new(0),
            conns: RefCell::new(Vec::new()),
            free: RefCell::new(Vec::new()),
            sends: false,
            flush_requested: Cell::new(false),
            flush_waker: RefCell::new(None),
            flushes: Cell::new(0),
            flush_waiters: RefCell::new(Vec::new()),
            resubmit: Cell::new(false),
            prefetch: RefCell::new(None),
        };
        // SAFETY: the entries stay mapped, and the buffers allocated, as long as the ring
        // lives (Drop unregisters before unmapping).
        unsafe { ring.uring.get_mut().submitter().register_buf_ring_with_flags(ring.entries as u64, buffer_count, BUFFER_GROUP, 0)? };
        for bid in 0..buffer_count {
            ring.give_back(bid);
        }
        // A blocking eventfd: glommio's READ on it then waits for a count, where a
        // non-blocking one would end at once with EAGAIN.
        // SAFETY: eventfd takes two integers and returns a new descriptor or -1.
        let eventfd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if eventfd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the descriptor is ours; the BufferedFile owns it from here on.
        let file = unsafe { glommio::io::BufferedFile::from_raw_fd(eventfd) };
        ring.uring.get_mut().submitter().register_eventfd(eventfd)?;
        Ok((ring, file))
    }

    fn buffer(&self, bid: u16) -> &[u8] {
        let start = bid as usize * BUFFER_BYTES;
        &self.buffers[start..start + BUFFER_BYTES]
    }

    /// Hands buffer `bid` back to the kernel.
    fn give_back(&self, bid: u16) {
        debug_assert!(bid < self.buffer_count, "buffer {bid} of {}", self.buffer_count);
        let tail = self.tail.get();
        let mask = self.buffer_count - 1;
        let addr = self.buffer(bid).as_ptr() as u64;
        // SAFETY: the entry lies within the mapping (masked index); the kernel reads only
        // entries before the published tail, and this one is past it until the store below.
        unsafe {
            let entry = &mut *self.entries.add((tail & mask) as usize);
            entry.set_addr(addr);
            entry.set_len(BUFFER_BYTES as u32);
            entry.set_bid(bid);
        }
        let tail = tail.wrapping_add(1);
        self.tail.set(tail);
        // SAFETY: the tail field lives in the first entry of our mapping; the kernel reads it
        // concurrently, hence the atomic release store (it publishes the entry written above).
        unsafe { AtomicU16::from_ptr(types::BufRingEntry::tail(self.entries) as *mut u16).store(tail, Ordering::Release) };
    }

    /// Gives the buffers' pages back to the system (a quiet core's give-back; see
    /// [`release_buffer_pages`]). The kernel may write into any buffer it owns at any moment,
    /// so it is made to own none first: the buffer ring is unregistered (receives that find
    /// no buffer end with ENOBUFS and are re-armed, as when buffers run out), and every
    /// completion posted so far is reaped, its bytes copied out. Receives run as task_work
    /// on this thread, never beside it, so none is half done here. Then the pages go, and the
    /// ring is registered again with every buffer.
    fn release_pages(&self) -> io::Result<()> {
        self.uring.borrow_mut().submitter().unregister_buf_ring(BUFFER_GROUP)?;
        self.reap();
        let page = crate::info::system::page_size() as usize;
        let start = (self.buffers.as_ptr() as usize).next_multiple_of(page);
        let end = (self.buffers.as_ptr() as usize + self.buffers.len()) / page * page;
        if end > start {
            // SAFETY: the range lies within our buffers, which no one reads or writes now;
            // their next use finds zero pages, which is fine for buffers about to be filled.
            if unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) } != 0 {
                tracing::debug!("madvise of the socket buffers: {}", io::Error::last_os_error());
            }
        }
        // A ring registered anew starts at head 0: so does our tail.
        self.tail.set(0);
        // SAFETY: as in `give_back`; the ring is not registered, so the kernel reads nothing.
        unsafe { AtomicU16::from_ptr(types::BufRingEntry::tail(self.entries) as *mut u16).store(0, Ordering::Release) };
        // SAFETY: as in `Ring::new`.
        unsafe { self.uring.borrow_mut().submitter().register_buf_ring_with_flags(self.entries as u64, self.buffer_count, BUFFER_GROUP, 0)? };
        for bid in 0..self.buffer_count {
            self.give_back(bid);
        }
        Ok(())
    }

    fn user_data(slot: u32, generation: u32, kind: u64) -> u64 {
        (generation as u64) << 32 | (slot as u64) << 8 | kind
    }

    /// Pushes one entry and submits it (a system call; only for arming and cancelling).
    fn submit(&self, entry: io_uring::squeue::Entry) {
        let mut uring = self.uring.borrow_mut();
        // SAFETY: the entries we push reference no memory of ours (the receive draws from
        // the registered buffer group).
        let pushed = unsafe { uring.submission().push(&entry) };
        assert!(pushed.is_ok(), "the submission queue has room: every push is submitted at once");
        self.submit_queued(&mut uring);
    }

    /// Submits what is queued. A refusal (EBUSY or EAGAIN: the kernel short of room or
    /// memory) leaves the entries queued; the next reap submits them again, so an arm or a
    /// cancel is late, never lost.
    fn submit_queued(&self, uring: &mut IoUring) {
        if let Err(e) = uring.submit() {
            tracing::debug!("io_uring submit: {e}");
            self.resubmit.set(true);
        }
    }

    fn arm(&self, slot: u32, conn: &mut Conn) {
        debug_assert!(!conn.armed, "one receive per connection");
        conn.armed = true;
        let entry = opcode::RecvMulti::new(types::Fd(conn.fd), BUFFER_GROUP).build().user_data(Self::user_data(slot, conn.generation, KIND_RECV));
        self.submit(entry);
    }

    /// Makes a slot reusable; late completions for it find its generation moved on.
    fn free_slot(&self, slot: u32) {
        let mut conns = self.conns.borrow_mut();
        let conn = &mut conns[slot as usize];
        debug_assert!(!conn.live && !conn.send_in_flight, "slot {slot} is done with");
        conn.generation = conn.generation.wrapping_add(1);
        conn.pending = BytesMut::new();
        conn.send_buffer = BytesMut::new();
        conn.waker = None;
        conn.write_waker = None;
        drop(conns);
        self.free.borrow_mut().push(slot);
    }

    /// Queues a SEND of `conn.send_buffer[offset..]`, submitted by the next flush.
    fn queue_send(&self, slot: u32, conn: &mut Conn, offset: usize) {
        debug_assert!(!conn.send_in_flight, "one send per connection at a time");
        conn.send_in_flight = true;
        conn.send_result = None;
        let data = &conn.send_buffer[offset..];
        let entry = opcode::Send::new(types::Fd(conn.fd), data.as_ptr(), data.len() as u32).flags(libc::MSG_NOSIGNAL).build().user_data(Self::user_data(
            slot,
            conn.generation,
            KIND_SEND,
        ));
        let mut uring = self.uring.borrow_mut();
        // SAFETY: the bytes live in the slot's send buffer, which is neither touched nor freed
        // until this entry's completion (the slot stays reserved while `send_in_flight`).
        if unsafe { uring.submission().push(&entry) }.is_err() {
            // The queue is full of this turn's sends: submit them now.
            self.submit_queued(&mut uring);
            // SAFETY: as above.
            let pushed = unsafe { uring.submission().push(&entry) };
            assert!(pushed.is_ok(), "a submitted queue has room");
        }
        drop(uring);
        if !self.flush_requested.replace(true) {
            if let Some(waker) = self.flush_waker.borrow_mut().take() {
                waker.wake();
            }
        }
    }

    fn cancel(&self, slot: u32, generation: u32, kind: u64) {
        let target = Self::user_data(slot, generation, kind);
        let entry = opcode::AsyncCancel::new(target).build().user_data(Self::user_data(slot, generation, KIND_CANCEL));
        self.submit(entry);
    }

    /// Takes every completion waiting (no system call), and wakes the connections it
    /// concerns. Returns how many completions it took.
    fn reap(&self) -> usize {
        let mut wakers: Vec<Waker> = Vec::new();
        let mut cancels: Vec<(u32, u32)> = Vec::new();
        let mut freed: Vec<u32> = Vec::new();
        // Connections whose input starts with a request that arrived in this reap.
        let mut fresh: Vec<u32> = Vec::new();
        let prefetch = self.prefetch.borrow();
        let mut taken = 0;
        {
            let mut uring = self.uring.borrow_mut();
            if self.defer && uring.submission().taskrun() {
                // Run the receives the kernel deferred to us; they post their completions.
                // SAFETY: no submission, no argument; GETEVENTS with nothing to wait for.
                if let Err(e) = unsafe { uring.submitter().enter::<libc::sigset_t>(0, 0, IORING_ENTER_GETEVENTS, None) } {
                    tracing::debug!("io_uring enter: {e}");
                }
            }
            let mut conns = self.conns.borrow_mut();
            for cqe in uring.completion() {
                taken += 1;
                let user_data = cqe.user_data();
                let flags = cqe.flags();
                let result = cqe.result();
                let bid = cqueue::buffer_select(flags);
                let kind = user_data & 0xff;
                let slot = ((user_data >> 8) & 0xff_ffff) as u32;
                let generation = (user_data >> 32) as u32;
                if kind == KIND_SEND {
                    let conn = conns.get_mut(slot as usize).filter(|c| c.generation == generation && c.send_in_flight);
                    let conn = conn.expect("a send's slot stays reserved until its completion");
                    conn.send_in_flight = false;
                    conn.send_result = Some(result);
                    if !conn.live {
                        // The connection went while this send was in flight: now the slot
                        // and its buffer may go too.
                        freed.push(slot);
                    } else if let Some(waker) = conn.write_waker.take() {
                        wakers.push(waker);
                    }
                    continue;
                }
                if kind != KIND_RECV {
                    continue;
                }
                let conn = conns.get_mut(slot as usize).filter(|c| c.live && c.generation == generation);
                let Some(conn) = conn else {
                    if let Some(bid) = bid {
                        self.give_back(bid);
                    }
                    continue;
                };
                if result > 0 {
                    let bid = bid.expect("a receive with data names its buffer");
                    let data = &self.buffer(bid)[..result as usize];
                    // A longer read holds a pipeline, whose keys the batch prefetches anyway.
                    if let Some(prefetch) = prefetch.as_ref().filter(|_| conn.pending.is_empty() && data.len() <= PREFETCH_INPUT_MAX) {
                        prefetch(data, PrefetchStep::First);
                        fresh.push(slot);
                    }
                    conn.pending.extend_from_slice(data);
                    self.give_back(bid);
                } else if result == 0 {
                    conn.eof = true;
                } else if -result != libc::ENOBUFS && -result != libc::ECANCELED {
                    conn.error = Some(-result);
                } else if let Some(bid) = bid {
                    self.give_back(bid);
                }
                if !cqueue::more(flags) {
                    tracing::debug!("receive of slot {slot} ended: result {result}, {} bytes pending", conn.pending.len());
                    // Ended: end-of-file, an error, a cancel, no free buffer (ENOBUFS) or an
                    // overflowed completion queue. The connection re-arms when it next waits.
                    conn.armed = false;
                    conn.cancelling = false;
                } else if conn.pending.len() > PENDING_MAX && !conn.cancelling {
                    conn.cancelling = true;
                    cancels.push((slot, generation));
                }
                if let Some(waker) = conn.waker.take() {
                    wakers.push(waker);
                }
            }
            if let Some(prefetch) = prefetch.as_ref() {
                for slot in fresh {
                    prefetch(&conns[slot as usize].pending, PrefetchStep::Second);
                }
            }
        }
        drop(prefetch);
        for (slot, generation) in cancels {
            self.cancel(slot, generation, KIND_RECV);
        }
        for slot in freed {
            self.free_slot(slot);
        }
        if self.resubmit.replace(false) {
            self.submit_queued(&mut self.uring.borrow_mut());
        }
        for waker in wakers {
            waker.wake();
        }
        taken
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        let _ = self.uring.get_mut().submitter().unregister_buf_ring(BUFFER_GROUP);
        // SAFETY: the mapping made in new(), no longer registered.
        unsafe { libc::munmap(self.entries.cast(), self.entries_len) };
    }
}

/// The per-core task that wakes connections when completions arrive while the core has
/// nothing else to do: glommio parks on its own ring, and our ring's eventfd completes the
/// READ glommio has there.
async fn reap_loop(ring: Rc<Ring>, eventfd: glommio::io::BufferedFile) {
    loop {
        ring.reap();
        // Completions posted after the reap above count up the eventfd, so this read ends
        // at once then: no wakeup is lost.
        if let Err(e) = eventfd.read_at(0, 8).await {
            tracing::warn!("reading the socket ring's eventfd failed: {e}");
            glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
        }
    }
}

/// Submits the SEND entries that connections queued, once per executor turn: a connection
/// that queues one wakes this task, which runs after the tasks already runnable, so the sends
/// of every connection served in this turn leave in one system call.
async fn flush_loop(ring: Rc<Ring>) {
    loop {
        std::future::poll_fn(|cx| {
            if ring.flush_requested.replace(false) {
                return Poll::Ready(());
            }
            *ring.flush_waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
        ring.resubmit.set(false);
        {
            let mut uring = ring.uring.borrow_mut();
            // Most sends complete while this submit runs; the reap below takes them, so
            // they need not signal the eventfd, which would complete the reaper's READ on
            // glommio's ring and cost a turn and another READ per flush. Whatever completes
            // before notifications are back on is reaped below; anything later signals.
            uring.completion().disable_eventfd();
            ring.submit_queued(&mut uring);
            uring.completion().enable_eventfd();
        }
        ring.reap();
        ring.flushes.set(ring.flushes.get() + 1);
        for waker in ring.flush_waiters.borrow_mut().drain(..) {
            waker.wake();
        }
    }
}

/// A connection's registration on its core's ring.
struct RingReader {
    ring: Rc<Ring>,
    slot: u32,
}

impl RingReader {
    fn new(ring: Rc<Ring>, fd: RawFd) -> RingReader {
        let slot = {
            let mut conns = ring.conns.borrow_mut();
            let slot = match ring.free.borrow_mut().pop() {
                Some(slot) => slot,
                None => {
                    conns.push(Conn::default());
                    (conns.len() - 1) as u32
                }
            };
            let conn = &mut conns[slot as usize];
            conn.live = true;
            conn.fd = fd;
            conn.eof = false;
            conn.error = None;
            conn.armed = false;
            conn.cancelling = false;
            conn.pending.clear();
            debug_assert!(!conn.send_in_flight, "a free slot has no send in flight");
            conn.send_result = None;
            ring.arm(slot, conn);
            slot
        };
        RingReader { ring, slot }
    }

    /// Ready when `ready(conn)` holds, reaping once more before giving up; re-arms the
    /// receive when it ended (no free buffer, a cancel) and input is still wanted.
    fn poll_until<T>(&self, cx: &Context<'_>, mut ready: impl FnMut(&mut Conn) -> Option<T>) -> Poll<T> {
        if let Some(value) = ready(&mut self.ring.conns.borrow_mut()[self.slot as usize]) {
            return Poll::Ready(value);
        }
        // Completions may be waiting that the reaper has not taken yet.
        if self.ring.reap() > 0 {
            if let Some(value) = ready(&mut self.ring.conns.borrow_mut()[self.slot as usize]) {
                return Poll::Ready(value);
            }
        }
        let mut conns = self.ring.conns.borrow_mut();
        let conn = &mut conns[self.slot as usize];
        if !conn.armed && !conn.eof && conn.error.is_none() && conn.pending.len() <= PENDING_MAX {
            self.ring.arm(self.slot, conn);
        }
        conn.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for RingReader {
    fn drop(&mut self) {
        let mut conns = self.ring.conns.borrow_mut();
        let conn = &mut conns[self.slot as usize];
        let (armed, sending, generation) = (conn.armed, conn.send_in_flight, conn.generation);
        conn.live = false;
        conn.waker = None;
        conn.write_waker = None;
        drop(conns);
        if armed {
            // The kernel holds the socket while the receive is armed: cancel it, so the
            // descriptor's close really closes it. Its last completion finds the slot dead
            // (or its generation moved on) and only gives its buffer back.
            self.ring.cancel(self.slot, generation, KIND_RECV);
        }
        if sending {
            // The kernel still reads the send buffer: the slot is freed by the send's
            // completion, which the cancel hastens.
            self.ring.cancel(self.slot, generation, KIND_SEND);
        } else {
            self.ring.free_slot(self.slot);
        }
    }
}

/// A client's socket.
pub struct Socket {
    /// Declared before the stream: dropped (its receive cancelled) before the descriptor
    /// closes.
    ring: Option<RingReader>,
    pub stream: TcpStream,
}

impl Socket {
    /// Wraps an accepted stream, reading through this core's ring when it has one.
    pub fn new(stream: TcpStream) -> Socket {
        let ring = RING.with(|r| r.borrow().clone()).map(|ring| RingReader::new(ring, stream.as_raw_fd()));
        Socket { ring, stream }
    }

    /// The ring registration, when replies leave by its SEND entries.
    fn sender(&self) -> Option<&RingReader> {
        self.ring.as_ref().filter(|reader| reader.ring.sends)
    }

    /// Whether `write_all_now_shared` can write (replies leave by the ring's SEND entries;
    /// glommio's stream writes only through `&mut`).
    pub fn writes_shared(&self) -> bool {
        self.sender().is_some()
    }

    /// Appends what the client sent to `input`, waiting for something: the count, 0 at
    /// end-of-file. `chunk` is the scratch buffer of glommio's path.
    pub async fn read(&mut self, input: &mut BytesMut, chunk: &mut [u8]) -> io::Result<usize> {
        let Some(reader) = &self.ring else {
            let read = self.stream.read(chunk).await?;
            input.extend_from_slice(&chunk[..read]);
            return Ok(read);
        };
        std::future::poll_fn(|cx| {
            reader.poll_until(cx, |conn| {
                if !conn.pending.is_empty() {
                    let count = conn.pending.len();
                    if input.is_empty() {
                        std::mem::swap(input, &mut conn.pending);
                    } else {
                        input.extend_from_slice(&conn.pending);
                        conn.pending.clear();
                    }
                    return Some(Ok(count));
                }
                if let Some(errno) = conn.error {
                    return Some(Err(io::Error::from_raw_os_error(errno)));
                }
                conn.eof.then_some(Ok(0))
            })
        })
        .await
    }

    /// Completes once the replies this core's connections have queued as SEND entries are
    /// submitted (at once when none is queued). A subscriber writes its messages after this,
    /// so the publisher's reply, queued first, also leaves first, as it does from Redis.
    pub async fn queued_sends_left(&self) {
        let Some(reader) = self.sender().filter(|reader| reader.ring.flush_requested.get()) else { return };
        let ring = &reader.ring;
        let wanted = ring.flushes.get() + 1;
        std::future::poll_fn(|cx| {
            if ring.flushes.get() >= wanted {
                return Poll::Ready(());
            }
            ring.flush_waiters.borrow_mut().push(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Writes all of `data`, handing the kernel what the socket takes now with a plain
    /// `send`, as glommio's `write_all` does, and only the rest to the ring. For a Pub/Sub
    /// subscriber: flow control between cores counts a message as written once the subscriber
    /// task it woke has run, which holds only if that run gave the bytes to the kernel. (Replies
    /// keep `write_all`, whose sends of one turn leave together.)
    pub async fn write_all_now(&mut self, data: &[u8]) -> io::Result<()> {
        let sent = self.send_now(data)?;
        if sent == data.len() {
            return Ok(());
        }
        self.write_all(&data[sent..]).await
    }

    /// `write_all_now` through a shared reference, for a write beside a wait on the same
    /// socket (a RESP3 subscriber's messages while it is blocked); `None` unless
    /// [`Socket::writes_shared`].
    pub fn write_all_now_shared<'a>(&'a self, data: &'a [u8]) -> Option<impl std::future::Future<Output = io::Result<()>> + 'a> {
        let reader = self.sender()?;
        Some(async move {
            let sent = self.send_now(data)?;
            ring_write_all(reader, &data[sent..]).await
        })
    }

    /// Sends what the socket takes of `data` at once, with a plain non-blocking `send`, when
    /// replies leave by the ring and none is in flight (it would go first); else nothing.
    /// Returns the bytes sent.
    fn send_now(&self, data: &[u8]) -> io::Result<usize> {
        match self.sender() {
            Some(reader) if !reader.ring.conns.borrow()[reader.slot as usize].send_in_flight => {
                // SAFETY: the descriptor is open while the socket lives; `data` is readable.
                let sent = unsafe { libc::send(self.stream.as_raw_fd(), data.as_ptr().cast(), data.len(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
                if sent < 0 {
                    let error = io::Error::last_os_error();
                    if !matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) {
                        return Err(error);
                    }
                }
                Ok(sent.max(0) as usize)
            }
            _ => Ok(0),
        }
    }

    /// Writes all of `data`. Through the ring's SEND entries when they are on (one send in
    /// flight per connection: the next waits for the completion, so a client that reads
    /// nothing holds its connection back), else glommio's `write_all`.
    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self.sender() {
            Some(reader) => ring_write_all(reader, data).await,
            None => futures::AsyncWriteExt::write_all(&mut self.stream, data).await,
        }
    }

    /// As [`Socket::write_all`], leaving `data` empty. On the ring `data`'s buffer itself
    /// becomes the SEND's and the last SEND's buffer takes its place, so the bytes are not
    /// copied (a long reply's copy was 6% of a ZRANGE of 100 members).
    pub async fn write_all_taking(&mut self, data: &mut BytesMut) -> io::Result<()> {
        match self.sender() {
            Some(reader) => ring_write(reader, |buffer| std::mem::swap(buffer, data)).await,
            None => {
                futures::AsyncWriteExt::write_all(&mut self.stream, data).await?;
                data.clear();
                Ok(())
            }
        }
    }

    /// Completes when the client has closed its connection (or it failed), as a one-byte
    /// peek returning 0 would say. Input it sent meanwhile stays for the next read.
    pub async fn closed(&self) {
        let Some(reader) = &self.ring else {
            let mut byte = [0u8; 1];
            match self.stream.peek(&mut byte).await {
                Ok(0) | Err(_) => return,
                // A peek cannot see a close behind input; that waits its turn.
                Ok(_) => return futures::future::pending::<()>().await,
            }
        };
        std::future::poll_fn(|cx| reader.poll_until(cx, |conn| (conn.eof || conn.error.is_some()).then_some(()))).await
    }

    /// Completes when the client has sent something, closed, or the connection failed.
    pub async fn readable(&self) {
        let Some(reader) = &self.ring else {
            let mut byte = [0u8; 1];
            let _ = self.stream.peek(&mut byte).await;
            return;
        };
        std::future::poll_fn(|cx| reader.poll_until(cx, |conn| (!conn.pending.is_empty() || conn.eof || conn.error.is_some()).then_some(()))).await
    }
}

/// Writes all of `data` by SEND entries (see `Socket::write_all`).
async fn ring_write_all(reader: &RingReader, data: &[u8]) -> io::Result<()> {
    ring_write(reader, |buffer| buffer.extend_from_slice(data)).await
}

/// Writes by SEND entries what `fill` puts in the connection's (empty) send buffer.
async fn ring_write(reader: &RingReader, fill: impl FnOnce(&mut BytesMut)) -> io::Result<()> {
    let (ring, slot) = (&reader.ring, reader.slot);
    // A write dropped before its completion (its connection is closing) leaves a send in
    // flight: wait for it rather than touch its buffer.
    std::future::poll_fn(|cx| if send_in_flight(&mut ring.conns.borrow_mut()[slot as usize], cx) { Poll::Pending } else { Poll::Ready(()) }).await;
    let len = {
        let mut conns = ring.conns.borrow_mut();
        let conn = &mut conns[slot as usize];
        conn.send_buffer.clear();
        fill(&mut conn.send_buffer);
        if conn.send_buffer.is_empty() {
            return Ok(());
        }
        ring.queue_send(slot, conn, 0);
        conn.send_buffer.len()
    };
    let mut sent = 0;
    std::future::poll_fn(|cx| {
        let mut conns = ring.conns.borrow_mut();
        let conn = &mut conns[slot as usize];
        if send_in_flight(conn, cx) {
            return Poll::Pending;
        }
        match conn.send_result.take() {
            Some(result) if result < 0 => Poll::Ready(Err(io::Error::from_raw_os_error(-result))),
            Some(0) => Poll::Ready(Err(io::Error::from(io::ErrorKind::WriteZero))),
            Some(result) => {
                sent += result as usize;
                if sent >= len {
                    return Poll::Ready(Ok(()));
                }
                // A short send: the rest goes in the next.
                ring.queue_send(slot, conn, sent);
                conn.write_waker = Some(cx.waker().clone());
                Poll::Pending
            }
            None => unreachable!("a finished send leaves its result"),
        }
    })
    .await
}

/// Whether `conn` has a send in flight; if so its writer is woken by the completion.
fn send_in_flight(conn: &mut Conn, cx: &Context<'_>) -> bool {
    if conn.send_in_flight {
        conn.write_waker = Some(cx.waker().clone());
    }
    conn.send_in_flight
}
