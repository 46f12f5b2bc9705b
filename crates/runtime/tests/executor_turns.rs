//! glommio's executor (vendored and patched: see `vendor/glommio/SHOAL.md`) keeps its preempt
//! timer armed across turns instead of re-arming it on each. Such a timer may fire between two
//! turns; the executor must then take another turn, never park with tasks still runnable.
//! Two executors play ping-pong for several preempt quanta (100 ms each), every ball handled
//! by a task spawned for it, so turns are short and many: an executor that parked with its
//! task runnable would never be woken again, and the test fails by timing out.

use std::time::{Duration, Instant};

use glommio::channels::shared_channel;
use glommio::LocalExecutorBuilder;

/// How long the rally lasts: a dozen preempt quanta.
const RALLY: Duration = Duration::from_millis(1200);

#[test]
fn an_executor_never_parks_with_a_runnable_task() {
    let (to_b, from_a) = shared_channel::new_bounded::<u64>(4);
    let (to_a, from_b) = shared_channel::new_bounded::<u64>(4);
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let a = LocalExecutorBuilder::default()
        .name("a")
        .spawn(move || async move {
            let (sender, receiver) = (to_b.connect().await, from_b.connect().await);
            let start = Instant::now();
            let mut ball = 0;
            while start.elapsed() < RALLY {
                sender.send(ball).await.expect("b stays");
                let back = receiver.recv().await.expect("b answers");
                // Each return is handled by a task of its own, runnable at the turn's end.
                ball = glommio::spawn_local(async move { back + 1 }).await;
            }
            drop(sender);
            done_tx.send(ball).unwrap();
        })
        .unwrap();
    let b = LocalExecutorBuilder::default()
        .name("b")
        .spawn(move || async move {
            let receiver = from_a.connect().await;
            let sender = to_a.connect().await;
            while let Some(ball) = receiver.recv().await {
                let back = glommio::spawn_local(async move { ball + 1 }).await;
                if sender.send(back).await.is_err() {
                    break;
                }
            }
        })
        .unwrap();
    let rallies = done_rx.recv_timeout(Duration::from_secs(30)).expect("the rally ended: no executor parked with a runnable task");
    assert!(rallies > 100, "only {rallies} exchanges in {RALLY:?}");
    a.join().unwrap();
    b.join().unwrap();
}
