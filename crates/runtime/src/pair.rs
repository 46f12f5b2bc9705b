//! A cross-core command over this core and one other, in one round trip.
//!
//! MSET, MGET, DEL, UNLINK, EXISTS and TOUCH hop once: one step per core, all at once. When
//! their keys are on this core and exactly one other, and neither the append-only log nor
//! keyspace events are on, they need not take their locks first and run second. This core
//! takes its locks if they are free at once; the step for the other core travels as
//! `Msg::TryRun`, which takes that core's locks if they are free at once, runs the step and
//! releases; then this core runs its own step and releases. Every lock is held before either
//! step runs and none is released before that (two-phase locking), and no core waits for a
//! lock while holding one (so no cycle of waits). When a lock is not free, nothing has run:
//! the command is dropped before its step here and goes the general way (`Core::run_multi`).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::task::{Poll, Waker};

use bytes::Bytes;
use futures::future::{Either, LocalBoxFuture};
use futures::FutureExt;
use shoal_commands::{Coordinator, HopOp, HopResult, MultiFn};
use shoal_resp::{Frame, Protocol};

use crate::core::{Core, Msg, Payload, TxId};
use crate::locks::LockSet;

/// The cross-core commands that hop exactly once (so the other core's step may release).
pub(crate) const ONE_HOP: [&str; 6] = ["mset", "mget", "del", "unlink", "exists", "touch"];

/// Whether the pair paths may run now: neither the log (each grant is one of its records) nor
/// keyspace events (published before the locks go) are on. The other core checks events too.
pub(crate) fn applies(core: &Core) -> bool {
    !crate::aof::LOG.is_active() && core.settings.borrow().notify_keyspace_events == 0
}

/// Splits a pair's lock sets into this core's, the other core and its set; None unless
/// `sets` holds exactly this core and one other.
pub(crate) fn split(own: usize, mut sets: Vec<(usize, LockSet)>) -> Option<(LockSet, usize, LockSet)> {
    let at = sets.iter().position(|(shard, _)| *shard == own)?;
    let (_, local) = sets.swap_remove(at);
    let (peer, remote) = sets.pop()?;
    sets.is_empty().then_some((local, peer, remote))
}

/// This core's locks of a two-core command or EXEC, released when dropped (a future that
/// goes away in the middle must not keep its keys, as `Transaction`'s drop ensures for the
/// general path) unless released explicitly first.
pub(crate) struct LocalHold {
    core: Rc<Core>,
    tx: TxId,
    held: bool,
}

impl LocalHold {
    /// Takes `set` for `tx` on `core` if it is free at once.
    pub(crate) fn try_take(core: &Rc<Core>, tx: TxId, set: LockSet) -> Option<LocalHold> {
        core.try_hold(tx, set).then(|| LocalHold { core: core.clone(), tx, held: true })
    }

    /// Releases; `wrote` as in `Msg::Release`.
    pub(crate) fn release(mut self, wrote: bool) {
        self.held = false;
        self.core.release_local(self.tx, wrote);
    }
}

impl Drop for LocalHold {
    fn drop(&mut self) {
        if self.held {
            self.core.release_local(self.tx, false);
        }
    }
}

/// Runs the one hop: the other core's step by `Msg::TryRun`, then this core's.
struct PairCoordinator {
    core: Rc<Core>,
    db: usize,
    proto: Protocol,
    tx: TxId,
    peer: usize,
    /// The other core's locks, until the hop sends them.
    remote: RefCell<Option<LockSet>>,
    /// Set when the other core refused: the command's future is then dropped.
    refusal: Refusal,
    /// Whether this core's step changed anything (its release then tells the watchers).
    changed: Cell<bool>,
    /// The steps are a replica client's read (see [`crate::core::hiding_expired`]).
    hiding: bool,
}

impl Coordinator for PairCoordinator {
    fn shard_count(&self) -> usize {
        self.core.shard_count
    }

    fn db_index(&self) -> usize {
        self.db
    }

    fn proto(&self) -> Protocol {
        self.proto
    }

    fn hop(&self, ops: Vec<(usize, HopOp)>) -> LocalBoxFuture<'_, Vec<HopResult>> {
        async move {
            let mut results: Vec<Option<HopResult>> = ops.iter().map(|_| None).collect();
            let mut local = Vec::new();
            let mut wait = None;
            for (index, (shard, op)) in ops.into_iter().enumerate() {
                let op = if self.hiding { crate::core::hiding_expired(op) } else { op };
                if shard == self.core.id {
                    local.push((index, op));
                    continue;
                }
                debug_assert_eq!(shard, self.peer, "the pair path runs on two cores");
                let locks = self.remote.borrow_mut().take().expect("the commands of the pair path hop once, one step per core");
                wait = Some((index, self.core.try_run(shard, self.tx, locks, self.db, self.proto, op, true)));
            }
            if let Some((index, run)) = wait {
                let Some(result) = run.await else {
                    return self.refusal.refuse().await;
                };
                results[index] = Some(result);
            }
            for (index, op) in local {
                let ((result, _), changed) = self.core.run_hop_counting(self.db, self.proto, op);
                if changed {
                    self.changed.set(true);
                }
                results[index] = Some(result);
            }
            results.into_iter().map(|result| result.expect("every step ran")).collect()
        }
        .boxed_local()
    }
}

impl Core {
    /// Sends `op` to core `peer` as `Msg::TryRun` (`signal` as there); its result, or None
    /// when a lock there was not free (nothing ran there).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn try_run(
        self: &Rc<Self>,
        peer: usize,
        tx: TxId,
        locks: LockSet,
        db: usize,
        proto: Protocol,
        op: HopOp,
        signal: bool,
    ) -> impl std::future::Future<Output = Option<HopResult>> {
        let reply = self.request(peer, |req| Msg::TryRun { req, tx, locks, db, proto, op, signal });
        async move {
            match reply.await.expect("a peer always answers a try") {
                Payload::Refused => None,
                Payload::Hop(result, _, _) => Some(result),
                _ => unreachable!("a try to run is answered with its result or a refusal"),
            }
        }
    }

    /// Runs `multi` for `args` over this core and one other by the pair path. None when a
    /// lock was not free: nothing ran and nothing is held.
    pub(crate) async fn run_multi_pair(
        self: &Rc<Self>,
        db: usize,
        proto: Protocol,
        multi: MultiFn,
        args: &[Bytes],
        sets: Vec<(usize, LockSet)>,
        reading: bool,
    ) -> Option<Frame> {
        let (local, peer, remote) = split(self.id, sets)?;
        let hiding = reading && self.with_shard(|shard| shard.dbs[db].loading());
        let tx = self.new_tx();
        let hold = LocalHold::try_take(self, tx, local)?;
        let coordinator = PairCoordinator {
            core: self.clone(),
            db,
            proto,
            tx,
            peer,
            remote: RefCell::new(Some(remote)),
            refusal: Refusal::default(),
            changed: Cell::new(false),
            hiding,
        };
        let outcome = coordinator.refusal.unless_refused(multi(&coordinator, args.to_vec())).await;
        hold.release(outcome.is_some() && coordinator.changed.get());
        outcome
    }
}

/// A refusal that ends a cross-core command's future in the middle, before anything ran:
/// its hop awaits [`Refusal::refuse`], and the command runs under
/// [`Refusal::unless_refused`], which then drops it.
#[derive(Default)]
pub(crate) struct Refusal {
    refused: Cell<bool>,
    waiter: RefCell<Option<Waker>>,
}

impl Refusal {
    /// Marks the command refused; never completes (the command's future is dropped).
    pub(crate) async fn refuse<T>(&self) -> T {
        self.refused.set(true);
        if let Some(waker) = self.waiter.borrow_mut().take() {
            waker.wake();
        }
        futures::future::pending().await
    }

    /// `run`'s output, or None when it was refused.
    pub(crate) async fn unless_refused<T>(&self, run: impl std::future::Future<Output = T>) -> Option<T> {
        let refused = std::future::poll_fn(|cx| {
            if self.refused.get() {
                return Poll::Ready(());
            }
            *self.waiter.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        });
        match futures::future::select(std::pin::pin!(run), std::pin::pin!(refused)).await {
            Either::Left((output, _)) => Some(output),
            Either::Right(_) => None,
        }
    }
}
