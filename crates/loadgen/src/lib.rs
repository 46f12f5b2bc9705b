//! shoal-loadgen: a load generator for what redis-benchmark cannot send as one unit:
//! `MULTI` .. `EXEC` transactions whose keys live on different cores of a shoal-server,
//! `EVALSHA` scripts, and a GET/SET mix with a share of such transactions. Plain `get` and
//! `set` workloads send what redis-benchmark sends, to calibrate the tool against it.
//!
//! One thread drives every connection ([`driver`]), so the client can be pinned to one CPU;
//! every reply is checked ([`resp`]), so a server that answers wrongly cannot look fast.
//! It does not speak RESP3, cluster redirections, TLS or AUTH.

pub mod driver;
pub mod keys;
pub mod pubsub;
pub mod resp;
pub mod rng;
pub mod workload;
