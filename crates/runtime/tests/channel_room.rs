//! The core-to-core channels (glommio's, vendored and patched: see `vendor/glommio/SHOAL.md`)
//! must wake a producer that waits for room in a full channel. A channel of one slot between
//! two executors, both of which sleep often, must carry every item in order: a missed wakeup
//! would hang here (the test fails by timing out).

use std::time::Duration;

use glommio::channels::shared_channel;
use glommio::LocalExecutorBuilder;

const ITEMS: u64 = 20_000;

#[test]
fn a_producer_waiting_for_room_is_always_woken() {
    let (sender, receiver) = shared_channel::new_bounded::<u64>(1);
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let producer = LocalExecutorBuilder::default()
        .name("producer")
        .spawn(move || async move {
            let sender = sender.connect().await;
            for item in 0..ITEMS {
                sender.send(item).await.expect("the consumer stays");
                // Sometimes sleep, so the consumer finds the channel empty and sleeps too.
                if item % 1000 == 0 {
                    glommio::timer::sleep(Duration::from_millis(1)).await;
                }
            }
        })
        .unwrap();
    let consumer = LocalExecutorBuilder::default()
        .name("consumer")
        .spawn(move || async move {
            let receiver = receiver.connect().await;
            for expected in 0..ITEMS {
                assert_eq!(receiver.recv().await, Some(expected), "items arrive in order");
                // Sometimes sleep with the channel full, so the producer waits for room.
                if expected % 997 == 0 {
                    glommio::timer::sleep(Duration::from_millis(1)).await;
                }
            }
            done_tx.send(()).unwrap();
        })
        .unwrap();
    done_rx.recv_timeout(Duration::from_secs(30)).expect("every item arrived: no producer left asleep with room in the channel");
    producer.join().unwrap();
    consumer.join().unwrap();
}
