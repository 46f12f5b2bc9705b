//! The thread-per-core runtime: one glommio executor per core, each owning a shard of the
//! keyspace; the channel mesh between them; routing of commands to the owning core; and the
//! transaction layer that makes commands spanning cores atomic.
//!
//! This is the only library crate that touches glommio. It runs commands; it does not parse
//! the protocol or own sockets (the server does).

pub mod aof;
pub mod blocking;
mod chain;
pub mod core;
pub mod cron;
pub mod event;
pub mod evict;
pub mod latency;
pub mod launch;
pub mod locks;
pub mod memlock;
pub mod monitor;
mod pair;
pub mod pubsub;
pub mod script;
pub mod slowlog;
mod spin;
pub mod stats;
pub mod tracking;
pub mod transaction;
pub mod watch;

pub use crate::core::{now_ms, set_guard, yield_now, BlockCtx, Cmd, Core, Guard, Guarding, Shared};
pub use event::LocalEvent;
pub use launch::{affinity_cpus, launch, LaunchError, LaunchOptions};
