//! glommio's executor (vendored and patched: see `vendor/glommio/SHOAL.md`) keeps a pending
//! latency timer across turns and lets it stand in for a user timer due later when it sleeps.
//! If that kept timer fired while the executor was awake and its completion was consumed
//! without a second look, the executor slept with no timer armed and never woke for the user
//! timer: a server whose cores poll for its dataset with 1-2 ms sleeps hung at startup about
//! once in a thousand starts on two loaded CPUs. Here four fresh executors per round wait on
//! short timers, as those cores do, for `ROUNDS` rounds (400 by default, about 12 s); a round
//! in which no timer fires for 10 s fails. Without the fix it failed two runs in three.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::LocalExecutorBuilder;

#[test]
fn fresh_executors_waiting_on_short_timers_always_wake() {
    let rounds: usize = std::env::var("ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(400);
    for round in 0..rounds {
        // Another thread makes the executors' condition true a little later, as the loading
        // thread does at startup.
        let ready = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(AtomicUsize::new(0));
        let setter = {
            let ready = ready.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(3));
                ready.store(true, Ordering::SeqCst);
            })
        };
        let executors: Vec<_> = (0..4)
            .map(|i| {
                let (ready, progress) = (ready.clone(), progress.clone());
                LocalExecutorBuilder::default()
                    .name(&format!("timers-{i}"))
                    .spawn(move || async move {
                        while !ready.load(Ordering::SeqCst) {
                            glommio::timer::sleep(Duration::from_millis(2)).await;
                            progress.fetch_add(1, Ordering::SeqCst);
                        }
                        for _ in 0..5 {
                            glommio::timer::sleep(Duration::from_millis(1)).await;
                            progress.fetch_add(1, Ordering::SeqCst);
                        }
                    })
                    .unwrap()
            })
            .collect();
        let finished = Arc::new(AtomicBool::new(false));
        let joiner = {
            let finished = finished.clone();
            std::thread::spawn(move || {
                for executor in executors {
                    executor.join().unwrap();
                }
                finished.store(true, Ordering::SeqCst);
            })
        };
        let mut last = (0, Instant::now());
        while !finished.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
            let now = progress.load(Ordering::SeqCst);
            if now != last.0 {
                last = (now, Instant::now());
            }
            assert!(last.1.elapsed() < Duration::from_secs(10), "round {round}: no timer fired for 10 s ({now} sleeps done)");
        }
        joiner.join().unwrap();
        setter.join().unwrap();
    }
}
