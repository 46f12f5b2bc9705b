//! CLIENT PAUSE on one core: the pause state, and the wait a connection does before running
//! commands the pause holds.
//!
//! CLIENT PAUSE and CLIENT UNPAUSE set every core's state (with `call_all`); each connection
//! checks its own core's state before it runs a round of commands. This module does not
//! decide which commands are writes: the caller says whether a round has any.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Instant;

use futures::future::{select, Either};
use shoal_commands::table::flags;
use shoal_commands::CommandSpec;
use shoal_runtime::{Cmd, LocalEvent};

use crate::client::ClientInfo;
use crate::node::Node;

/// What CLIENT PAUSE holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PauseMode {
    /// Write commands (and commands that may replicate) wait; reads go on.
    Write,
    /// Every command waits.
    All,
}

/// One core's pause state.
#[derive(Default)]
pub struct Pause {
    /// The mode and the deadline, while a pause is set (it may have run out already).
    state: Cell<Option<(PauseMode, Instant)>>,
    /// Set when the pause is lifted or changed, to wake the connections holding their
    /// commands; replaced by a fresh event each time.
    changed: RefCell<Rc<LocalEvent>>,
}

impl Pause {
    /// CLIENT PAUSE: as Redis's `pauseActions`, the new mode replaces the old one and the
    /// later of the two deadlines wins.
    pub fn pause(&self, mode: PauseMode, deadline: Instant) {
        let deadline = match self.state.get() {
            Some((_, current)) if current > deadline => current,
            _ => deadline,
        };
        self.state.set(Some((mode, deadline)));
        self.wake();
    }

    /// CLIENT UNPAUSE.
    pub fn unpause(&self) {
        self.state.set(None);
        self.wake();
    }

    fn wake(&self) {
        let previous = std::mem::replace(&mut *self.changed.borrow_mut(), Rc::new(LocalEvent::default()));
        previous.set();
    }

    /// Whether a pause was set and not lifted (it may have run out already).
    pub fn is_set(&self) -> bool {
        self.state.get().is_some()
    }

    /// The deadline until which a round of commands waits; `writes` says whether the round
    /// has a write command. None: it runs now.
    pub fn holds(&self, writes: bool, now: Instant) -> Option<Instant> {
        match self.state.get() {
            Some((mode, deadline)) if deadline > now => (mode == PauseMode::All || writes).then_some(deadline),
            // Run out: forget it, so that later rounds take the fast path again.
            Some(_) => {
                self.state.set(None);
                None
            }
            None => None,
        }
    }

    /// Whether writes are paused now (active expiry waits then, as in Redis, because
    /// expiring a key is a write).
    pub fn holds_writes(&self) -> bool {
        self.holds(true, Instant::now()).is_some()
    }
}

/// Waits while the pause holds a connection's round: the `batch` to execute, then a
/// connection-level command if `connection_command`. A round that runs nothing never waits.
/// Returns None when the round must not run (see [`wait`]), else whether it was held (the
/// server may have become a replica meanwhile: a FAILOVER's pause ends there).
pub async fn wait_for_round(node: &Node, client: &ClientInfo, batch: &[Cmd], connection_writes: Option<bool>) -> Option<bool> {
    // The common case, no pause at all, costs one load.
    if !node.pause.is_set() || (batch.is_empty() && connection_writes.is_none()) {
        return Some(false);
    }
    let writes = batch.iter().any(|cmd| writes_or_replicates(cmd.spec)) || connection_writes == Some(true);
    if node.pause.holds(writes, Instant::now()).is_none() {
        return Some(false);
    }
    wait(node, client, writes).await.then_some(true)
}

/// Redis pauses writes and the commands that may replicate (its `is_may_replicate_command`).
pub(crate) fn writes_or_replicates(spec: &CommandSpec) -> bool {
    spec.is_write() || spec.has(flags::MAY_REPLICATE)
}

/// Whether a connection-level command counts as a write for CLIENT PAUSE WRITE: EXEC when
/// its queue holds one, EVAL and FCALL (which may replicate), FUNCTION LOAD, ...
pub fn connection_command_writes(spec: &CommandSpec, conn: &crate::connection::Conn) -> bool {
    match spec.name {
        "exec" => conn.multi.as_ref().is_some_and(|multi| multi.queued.iter().any(|queued| writes_or_replicates(queued.spec))),
        _ => writes_or_replicates(spec),
    }
}

/// Waits while the pause holds a round of commands (`writes`: whether it has a write).
/// Returns false when the client was killed or the server is shutting down meanwhile: the
/// round must not run then.
pub async fn wait(node: &Node, client: &ClientInfo, writes: bool) -> bool {
    loop {
        let Some(deadline) = node.pause.holds(writes, Instant::now()) else {
            return true;
        };
        let changed = node.pause.changed.borrow().clone();
        let timer = std::pin::pin!(glommio::timer::sleep(deadline.saturating_duration_since(Instant::now())));
        let changed_wait = std::pin::pin!(changed.wait());
        let stop = std::pin::pin!(select(client.kill.wait(), node.shutdown.wait()));
        match select(select(timer, changed_wait), stop).await {
            Either::Left(_) => continue,
            Either::Right(_) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn write_pause_holds_writes_only_until_its_deadline() {
        let pause = Pause::default();
        let now = Instant::now();
        let deadline = now + Duration::from_secs(10);
        pause.pause(PauseMode::Write, deadline);
        assert_eq!(pause.holds(true, now), Some(deadline));
        assert_eq!(pause.holds(false, now), None);
        assert_eq!(pause.holds(true, deadline), None, "a pause ends at its deadline");
        assert!(!pause.is_set(), "and is forgotten then");
    }

    #[test]
    fn all_pause_holds_every_round() {
        let pause = Pause::default();
        let now = Instant::now();
        pause.pause(PauseMode::All, now + Duration::from_secs(1));
        assert!(pause.holds(false, now).is_some());
        assert!(pause.holds(true, now).is_some());
    }

    #[test]
    fn a_new_pause_takes_the_new_mode_and_the_later_deadline() {
        let pause = Pause::default();
        let now = Instant::now();
        let later = now + Duration::from_secs(20);
        pause.pause(PauseMode::All, later);
        pause.pause(PauseMode::Write, now + Duration::from_secs(5));
        assert_eq!(pause.holds(false, now), None, "the mode is now WRITE");
        assert_eq!(pause.holds(true, now), Some(later), "the later deadline stays");
    }

    #[test]
    fn unpause_lifts_the_pause_and_wakes_waiters() {
        let pause = Pause::default();
        let now = Instant::now();
        pause.pause(PauseMode::All, now + Duration::from_secs(60));
        let event = pause.changed.borrow().clone();
        assert!(!event.is_set());
        pause.unpause();
        assert!(event.is_set(), "waiters were woken");
        assert_eq!(pause.holds(true, now), None);
        assert!(!pause.holds_writes());
    }
}
