//! A one-shot local event: tasks on one core wait until it is set. Used for shutdown, kills
//! and pauses.
//!
//! A waiter registers its waker on first poll and removes it when it is dropped, so an event
//! that many short-lived tasks wait on (every connection waits on the core's shutdown event
//! while it reads) holds one waker per task waiting *now*, not one per task that ever waited.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
pub struct LocalEvent {
    set: Cell<bool>,
    waiters: RefCell<HashMap<u64, Waker, foldhash::fast::FixedState>>,
    next_waiter: Cell<u64>,
}

impl LocalEvent {
    pub fn is_set(&self) -> bool {
        self.set.get()
    }

    pub fn set(&self) {
        self.set.set(true);
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for (_, waker) in waiters {
            waker.wake();
        }
    }

    /// Completes once the event is set.
    pub fn wait(&self) -> Wait<'_> {
        Wait { event: self, id: None }
    }

    /// Tasks waiting now (for tests).
    pub fn waiters(&self) -> usize {
        self.waiters.borrow().len()
    }
}

pub struct Wait<'a> {
    event: &'a LocalEvent,
    /// Our entry in the event's waiters, once polled.
    id: Option<u64>,
}

impl Future for Wait<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.event.is_set() {
            return Poll::Ready(());
        }
        let event = self.event;
        let mut waiters = event.waiters.borrow_mut();
        match self.id {
            Some(id) => match waiters.get_mut(&id) {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                Some(waker) => *waker = cx.waker().clone(),
                None => {
                    waiters.insert(id, cx.waker().clone());
                }
            },
            None => {
                let id = event.next_waiter.get();
                event.next_waiter.set(id + 1);
                waiters.insert(id, cx.waker().clone());
                drop(waiters);
                self.id = Some(id);
            }
        }
        Poll::Pending
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.event.waiters.borrow_mut().remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_waiter_leaves_nothing_behind_and_set_wakes_the_rest() {
        let event = LocalEvent::default();
        let woken = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        struct Count(std::sync::Arc<std::sync::atomic::AtomicUsize>);
        impl std::task::Wake for Count {
            fn wake(self: std::sync::Arc<Self>) {
                self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let waker = Waker::from(std::sync::Arc::new(Count(woken.clone())));
        let mut cx = Context::from_waker(&waker);
        for _ in 0..1000 {
            let mut wait = Box::pin(event.wait());
            assert!(wait.as_mut().poll(&mut cx).is_pending());
            assert!(wait.as_mut().poll(&mut cx).is_pending(), "polling again does not add a waiter");
            assert_eq!(event.waiters(), 1);
        }
        assert_eq!(event.waiters(), 0, "every dropped waiter removed itself");
        let mut kept = Box::pin(event.wait());
        assert!(kept.as_mut().poll(&mut cx).is_pending());
        event.set();
        assert_eq!(woken.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(kept.as_mut().poll(&mut cx).is_ready());
        assert_eq!(event.waiters(), 0);
    }
}
