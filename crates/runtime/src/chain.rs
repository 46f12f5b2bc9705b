//! An EXEC over several cores as one message passed from core to core.
//!
//! The general path of a transaction costs four messages per other core: it asks each core
//! for its locks and waits for the grants, then sends each core its commands and waits for
//! their replies. An EXEC of keyed single-core commands without WATCH, while neither the
//! append-only log nor keyspace events are on, needs neither round trip to come back before
//! the next one starts: its commands do not depend on each other's replies, and nothing has
//! to be checked once every lock is held. Its steps (one per core, ascending) travel as one
//! [`Chain`]: each core takes its locks (waiting in its queue if it must, as any transaction
//! does), runs its commands and keeps the locks, then hands the chain to the next core. The
//! last core, holding the last locks, releases everything and answers the coordinator. About
//! two messages per core instead of four.
//!
//! The cross-core commands that hop once (MSET, MGET, DEL, UNLINK, EXISTS, TOUCH) over more
//! than this core and one other take the same road ([`Core::run_multi_chain`]): their one hop
//! is the chain's steps.
//!
//! Why it is still atomic and cannot deadlock: every lock is taken before any is released
//! (two-phase locking), and a core whose keys another client wants serves it only after the
//! release, so what anyone reads on any core is all of the transaction or none of it. A
//! chain waits for a core's locks while it holds only locks of lower cores, the order every
//! transaction takes them in, so no cycle of waits can form.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use bytes::Bytes;
use futures::future::LocalBoxFuture;
use futures::FutureExt;
use shoal_commands::{Coordinator, HopOp, HopResult, MultiFn};
use shoal_resp::{Frame, Protocol};

use crate::core::{Core, Msg, Payload, TxId};
use crate::locks::LockSet;
use crate::pair::Refusal;

/// A chained transaction between two of its steps.
pub struct Chain {
    pub(crate) tx: TxId,
    pub(crate) db: usize,
    pub(crate) proto: Protocol,
    /// The transaction's time, the same on every core (as Redis fixes an EXEC's).
    pub(crate) now: u64,
    /// The coordinator, and its request the last core answers.
    pub(crate) origin: usize,
    pub(crate) req: u64,
    /// The steps not run yet, one per core, ascending; the first is the receiving core's.
    pub(crate) steps: VecDeque<(usize, LockSet, HopOp)>,
    /// What the steps run so far returned, with their cores (which hold their locks) and
    /// whether each changed anything there.
    pub(crate) done: Vec<(usize, HopResult, bool)>,
    /// Whether a core's release tells the watchers and waiters of its locked keys when its
    /// step changed anything (a cross-core command's steps; an EXEC's commands tell them as
    /// they run).
    pub(crate) signal: bool,
    /// An EXEC's WATCH check. With one, the chain takes every lock on its way forward
    /// without running anything (`waiting` keeps the ops), checks at the last core, and
    /// runs the steps on its way back, each core releasing as soon as its step ran; the
    /// first core answers. A failed check releases everything and answers no results.
    pub(crate) check: Option<crate::transaction::WatchCheck>,
    pub(crate) waiting: Vec<(usize, HopOp)>,
    /// On its way back (see `check`).
    pub(crate) back: bool,
}

impl Core {
    /// Runs `steps` (cores ascending, each with its locks and its op) as one chain and
    /// returns each core's result, in the steps' order, or None when the first core found
    /// that chains no longer apply (nothing ran). The locks are released before this
    /// returns, also when the caller goes away meanwhile (the last core releases them).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn run_chain(
        self: &Rc<Self>,
        tx: TxId,
        db: usize,
        proto: Protocol,
        now: u64,
        steps: VecDeque<(usize, LockSet, HopOp)>,
        signal: bool,
        check: Option<crate::transaction::WatchCheck>,
    ) -> Option<Vec<(usize, HopResult)>> {
        debug_assert!(steps.iter().zip(steps.iter().skip(1)).all(|(a, b)| a.0 < b.0), "cores in ascending order");
        let (req, answer) = self.expect_reply();
        let first = steps.front().expect("a chain has a step").0;
        let chain = Box::new(Chain { tx, db, proto, now, origin: self.id, req, steps, done: Vec::new(), signal, check, waiting: Vec::new(), back: false });
        if first == self.id {
            self.chain_arrived(chain);
        } else {
            self.send(first, Msg::Chain(chain));
        }
        match answer.await.expect("the last core of a chain always answers") {
            Payload::Chain(done) => Some(done),
            Payload::Refused => None,
            _ => unreachable!("a chain is answered with its results or refused"),
        }
    }

    /// A chain reached this core: its step runs once its locks are granted.
    pub(crate) fn chain_arrived(self: &Rc<Self>, mut chain: Box<Chain>) {
        if chain.back {
            return self.chain_step_back(chain);
        }
        let set = chain.steps.front_mut().map(|(_, set, _)| std::mem::take(set)).expect("a chain arrives with its step");
        let granted = self.locks.borrow_mut().acquire(set, crate::core::Waiter::Chain(chain));
        if let Some(granted) = granted {
            self.process_grants(vec![granted]);
        }
    }

    /// Runs this core's step of `chain`, which now holds its locks here, and passes it on;
    /// the last step releases every core and answers.
    pub(crate) fn chain_step(self: &Rc<Self>, set: LockSet, mut chain: Box<Chain>) {
        let tx = chain.tx;
        self.hold(tx, set);
        // The first step decides: the log may have started (or keyspace events come on)
        // since the coordinator looked. Nothing ran yet, so the EXEC can still go the general
        // way. Once the first core holds its locks, the cut that starts a log waits for the
        // chain to release them, so its writes are in the snapshot.
        if chain.done.is_empty() && chain.waiting.is_empty() && !crate::pair::applies(self) {
            self.release_local(tx, false);
            self.answer(chain.origin, chain.req, Payload::Refused);
            return;
        }
        let (_, _, op) = chain.steps.pop_front().expect("a granted chain has its step");
        if chain.check.is_some() {
            return self.chain_locked(chain, op);
        }
        // Keyspace events are off wherever a chain runs (see `crate::pair::applies`).
        let before = chain.signal.then(|| self.with_shard(|shard| crate::core::changes(shard)));
        let (result, _) = self.run_hop(chain.db, chain.proto, op, chain.now, Some(tx));
        let changed = before.is_some_and(|before| self.with_shard(|shard| crate::core::changes(shard)) != before);
        chain.done.push((self.id, result, changed));
        if let Some(&(next, _, _)) = chain.steps.front() {
            self.send(next, Msg::Chain(chain));
            return;
        }
        // Every lock is held and every step ran: release, this core last.
        let Chain { origin, req, done, .. } = *chain;
        let mut here = false;
        let results = done
            .into_iter()
            .map(|(core, result, changed)| {
                if core == self.id {
                    here = changed;
                } else {
                    self.send(core, Msg::Release { tx, wrote: changed, barrier: false });
                }
                (core, result)
            })
            .collect();
        self.release_local(tx, here);
        self.answer(origin, req, Payload::Chain(results));
    }

    /// A checked chain's forward step: this core's locks are held; its op waits for the way
    /// back. The last core checks the WATCH, now that every lock is held.
    fn chain_locked(self: &Rc<Self>, mut chain: Box<Chain>, op: HopOp) {
        chain.waiting.push((self.id, op));
        if let Some(&(next, _, _)) = chain.steps.front() {
            self.send(next, Msg::Chain(chain));
            return;
        }
        let holds = chain.check.as_ref().is_some_and(|check| check());
        if !holds {
            let tx = chain.tx;
            for &(core, _) in &chain.waiting {
                if core != self.id {
                    self.send(core, Msg::Release { tx, wrote: false, barrier: false });
                }
            }
            self.release_local(tx, false);
            self.answer(chain.origin, chain.req, Payload::Chain(Vec::new()));
            return;
        }
        chain.back = true;
        self.chain_step_back(chain);
    }

    /// A checked chain's way back: runs this core's op, releases here (every lock was held
    /// before the first op ran), and passes the chain to the core before; the first core
    /// answers with every core's result, in ascending core order.
    fn chain_step_back(self: &Rc<Self>, mut chain: Box<Chain>) {
        let tx = chain.tx;
        let (core, op) = chain.waiting.pop().expect("a chain on its way back has this core's op");
        debug_assert_eq!(core, self.id);
        // An EXEC's commands tell the watchers and waiters as they run.
        let (result, _) = self.run_hop(chain.db, chain.proto, op, chain.now, Some(tx));
        chain.done.push((self.id, result, false));
        self.release_local(tx, false);
        if let Some(&(previous, _)) = chain.waiting.last() {
            self.send(previous, Msg::Chain(chain));
            return;
        }
        let Chain { origin, req, done, .. } = *chain;
        let results = done.into_iter().rev().map(|(core, result, _)| (core, result)).collect();
        self.answer(origin, req, Payload::Chain(results));
    }
}

/// Runs a one-hop cross-core command's hop as a chain (see [`Core::run_multi_chain`]).
struct ChainCoordinator {
    core: Rc<Core>,
    db: usize,
    proto: Protocol,
    tx: TxId,
    /// The locks per core (ascending), until the hop takes them.
    sets: RefCell<Option<Vec<(usize, LockSet)>>>,
    /// Set when the first core refused (nothing ran): the command's future is then dropped.
    refusal: Refusal,
    /// The steps are a replica client's read (see [`crate::core::hiding_expired`]).
    hiding: bool,
}

impl Coordinator for ChainCoordinator {
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
            let mut sets = self.sets.borrow_mut().take().expect("the commands of the chain path hop once");
            let count = ops.len();
            let mut ops: Vec<(usize, usize, HopOp)> = ops.into_iter().enumerate().map(|(index, (shard, op))| (shard, index, op)).collect();
            ops.sort_by_key(|(shard, _, _)| *shard);
            // One step per core with an op, with that core's locks (every locked core has a
            // step: the locks come from the same keys).
            let mut indexes = Vec::with_capacity(ops.len());
            let mut steps = VecDeque::with_capacity(ops.len());
            for (shard, index, op) in ops {
                debug_assert!(steps.back().is_none_or(|(last, _, _)| *last < shard), "the commands of the chain path hop once per core");
                let set = sets.iter_mut().find(|(s, _)| *s == shard).map(|(_, set)| std::mem::take(set)).unwrap_or_default();
                let op = if self.hiding { crate::core::hiding_expired(op) } else { op };
                indexes.push(index);
                steps.push_back((shard, set, op));
            }
            debug_assert!(sets.iter().all(|(_, set)| set.is_empty()), "every locked core has a step");
            let Some(done) = self.core.run_chain(self.tx, self.db, self.proto, crate::core::now_ms(), steps, true, None).await else {
                return self.refusal.refuse().await;
            };
            let mut results: Vec<Option<HopResult>> = (0..count).map(|_| None).collect();
            for (index, (_, result)) in indexes.into_iter().zip(done) {
                results[index] = Some(result);
            }
            results.into_iter().map(|result| result.expect("every step ran")).collect()
        }
        .boxed_local()
    }
}

impl Core {
    /// Runs `multi` for `args`, a command that hops once (`crate::pair::ONE_HOP`), as one
    /// chain over the cores of `sets`. None when the first core found that chains no
    /// longer apply: nothing ran and nothing is held.
    pub(crate) async fn run_multi_chain(
        self: &Rc<Self>,
        db: usize,
        proto: Protocol,
        multi: MultiFn,
        args: &[Bytes],
        sets: Vec<(usize, LockSet)>,
        reading: bool,
    ) -> Option<Frame> {
        let hiding = reading && self.with_shard(|shard| shard.dbs[db].loading());
        let coordinator =
            ChainCoordinator { core: self.clone(), db, proto, tx: self.new_tx(), sets: RefCell::new(Some(sets)), refusal: Refusal::default(), hiding };
        coordinator.refusal.unless_refused(multi(&coordinator, args.to_vec())).await
    }
}
