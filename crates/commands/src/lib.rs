//! The command table and the command families.
//!
//! Each family file holds handlers (named after their command: parse arguments, build the
//! reply) and operations (`op_*`: synchronous work on one core's data, no replies). Nothing
//! here knows glommio or sockets: cross-core commands are written against the
//! [`ctx::Coordinator`] trait, which the runtime implements.

pub mod admin;
pub mod args;
pub mod bitmaps;
pub mod blocking;
pub mod connection;
pub mod ctx;
pub mod dispatch;
pub mod errors;
pub mod geo;
pub mod hashes;
pub mod hyperloglog;
pub mod keys;
pub mod lists;
pub mod propagate;
pub mod pubsub;
pub mod scripting;
pub mod server;
pub mod sets;
pub mod sort;
pub mod streams;
pub mod strings;
pub mod table;
#[cfg(test)]
mod testing;
pub mod transactions;
pub mod zsets;

pub use ctx::{Coordinator, Ctx, HopOp, HopResult, MultiFn, Settings};
pub use dispatch::{resolve, Resolved, Route};
pub use table::{CommandSpec, Handler};
