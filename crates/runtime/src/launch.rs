//! Starting the cores: one glommio executor per thread, pinned when there are enough CPUs,
//! joined by a full channel mesh, each running the server's per-core main.

use std::future::Future;
use std::rc::Rc;
use std::sync::mpsc;
use std::sync::Arc;

use glommio::channels::channel_mesh::MeshBuilder;
use glommio::{LocalExecutorBuilder, Placement};
use shoal_commands::Settings;

use crate::core::{Core, Msg, Shared};
use crate::memlock;

/// Mesh messages in flight from one core to another before the sender waits.
const MESH_CAPACITY: usize = 1024;

pub struct LaunchOptions {
    pub threads: usize,
    pub databases: usize,
    pub settings: Settings,
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(transparent)]
    Memlock(#[from] memlock::MemlockError),
    #[error("could not start executor {core}: {reason}")]
    Executor { core: usize, reason: String },
    #[error("could not start the lazyfree thread: {0}")]
    LazyFree(std::io::Error),
}

/// The CPUs this process may run on (its affinity mask).
pub fn affinity_cpus() -> Vec<usize> {
    // SAFETY: sched_getaffinity fills the zeroed set we pass; CPU_ISSET only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect();
        }
        (0..libc::CPU_SETSIZE as usize).filter(|&cpu| libc::CPU_ISSET(cpu, &set)).collect()
    }
}

extern "C" {
    fn shoal_uring_coop_linked() -> std::ffi::c_int;
}

enum Event {
    Started,
    Ended(usize, Result<(), String>),
}

/// Starts `options.threads` cores, runs `main` on each, and returns when every core's main
/// has returned.
pub fn launch<F, Fut>(options: LaunchOptions, shared: Arc<Shared>, main: F) -> Result<(), LaunchError>
where
    F: Fn(Rc<Core>) -> Fut + Send + Clone + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let threads = options.threads;
    assert!(threads > 0, "at least one thread");
    // SAFETY: a C function without arguments or side effects; calling it keeps the object
    // that defines our syscall() in the link (see src/uring_coop.c).
    let linked = unsafe { shoal_uring_coop_linked() };
    debug_assert_eq!(linked, 1, "uring_coop.c is linked");
    let io_memory = memlock::ensure(threads)?;
    let cpus = affinity_cpus();
    let pin = threads <= cpus.len();
    let mesh = MeshBuilder::<Vec<Msg>, _>::full(threads, MESH_CAPACITY);
    let lazyfree = shoal_store::lazyfree::LazyFree::start().map_err(LaunchError::LazyFree)?;
    crate::stats::Stopwatch::calibrate();
    // Each executor reports when it starts and when it ends. An executor that fails to
    // build never reaches the mesh, and the others would wait for it forever: so we watch
    // for an end before every executor has started, and give up then.
    let (events_tx, events_rx) = mpsc::channel::<Event>();
    for index in 0..threads {
        let placement = if pin { cpus.get(index).map_or(Placement::Unbound, |&cpu| Placement::Fixed(cpu)) } else { Placement::Unbound };
        let mesh = mesh.clone();
        let main = main.clone();
        let shared = shared.clone();
        let settings = options.settings.clone();
        let databases = options.databases;
        let lazyfree = lazyfree.clone();
        let started_tx = events_tx.clone();
        let mut builder = LocalExecutorBuilder::new(placement).name(&format!("shoal-{index}")).io_memory(io_memory);
        // SHOAL_SPIN_US (an experiment's switch, off by default; see `crate::spin`).
        if let Some(spin) = crate::spin::idle() {
            builder = builder.spin_before_park(spin);
        }
        let handle = builder
            .spawn(move || async move {
                let _ = started_tx.send(Event::Started);
                let (senders, mut receivers) = join_mesh(mesh).await;
                let id = senders.peer_id();
                let core = Rc::new(Core::new(id, threads, databases, settings, shared, senders));
                Core::make_current(&core);
                let (expire, server_del) = {
                    let settings = core.settings.borrow();
                    (settings.lazyfree_lazy_expire, settings.lazyfree_lazy_server_del)
                };
                core.with_shard(|shard| shard.configure_lazyfree(Some(lazyfree), expire, server_del));
                for (peer, stream) in receivers.streams() {
                    let core = core.clone();
                    glommio::spawn_local(async move {
                        while let Some(batch) = stream.recv().await {
                            for msg in batch {
                                core.handle(peer, msg);
                            }
                        }
                    })
                    .detach();
                }
                main(core).await;
            })
            .map_err(|e| LaunchError::Executor { core: index, reason: e.to_string() })?;
        let ended_tx = events_tx.clone();
        std::thread::spawn(move || {
            let result = handle.join().map_err(|e| e.to_string());
            let _ = ended_tx.send(Event::Ended(index, result));
        });
    }
    drop(events_tx);
    let (mut started, mut ended) = (0, 0);
    while ended < threads {
        match events_rx.recv() {
            Ok(Event::Started) => started += 1,
            Ok(Event::Ended(core, Err(reason))) => return Err(LaunchError::Executor { core, reason }),
            Ok(Event::Ended(core, Ok(()))) if started < threads => {
                return Err(LaunchError::Executor { core, reason: "it stopped before every core started".into() })
            }
            Ok(Event::Ended(_, Ok(()))) => ended += 1,
            Err(_) => break,
        }
    }
    Ok(())
}

/// Joins the channel mesh, waking this executor every millisecond meanwhile.
///
/// glommio's mesh join can lose the cross-executor wakeup that tells a waiting executor its
/// peers are ready: under load about one start in fifty hung here for good, every executor
/// asleep in io_uring. An executor that wakes for any reason rechecks its shared channels,
/// so the ticks turn a lost wakeup into a millisecond's delay. (Once running, each core's
/// cron wakes it at least every `hz` period, which does the same.)
async fn join_mesh(
    mesh: MeshBuilder<Vec<Msg>, glommio::channels::channel_mesh::Full>,
) -> (glommio::channels::channel_mesh::Senders<Vec<Msg>>, glommio::channels::channel_mesh::Receivers<Vec<Msg>>) {
    let join = std::pin::pin!(mesh.join());
    let ticks = std::pin::pin!(async {
        loop {
            glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
        }
    });
    match futures::future::select(join, ticks).await {
        futures::future::Either::Left((joined, _)) => joined.expect("every core joins the mesh"),
        futures::future::Either::Right(_) => unreachable!("the ticks never end"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn io_uring_rings_are_created_with_cooperative_task_running() {
        // SAFETY: see launch(); keeps uring_coop.c linked into this test binary.
        assert_eq!(unsafe { super::shoal_uring_coop_linked() }, 1);
        // struct io_uring_params is 120 bytes; flags is its third u32.
        let mut params = [0u32; 30];
        // SAFETY: io_uring_setup reads and writes the params we pass; we close the ring after.
        let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4, params.as_mut_ptr()) };
        assert!(fd >= 0, "io_uring_setup works here");
        // SAFETY: fd is the ring we just created.
        unsafe { libc::close(fd as i32) };
        let coop_taskrun = 1 << 8;
        assert_ne!(params[2] & coop_taskrun, 0, "COOP_TASKRUN was added to the flags");
    }
}
