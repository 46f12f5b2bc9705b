//! Shared helpers for the integration tests in this folder (the tests themselves are the
//! `[[test]]` targets listed in Cargo.toml). Everything reusable lives in `shoal-testkit`.

use shoal_testkit::Server;

/// Threads the integration tests start Shoal with, so keys spread over several cores.
pub const THREADS: usize = 4;

/// Shoal, then redis-server when installed, each started with the same extra directives.
pub fn shoal_and_redis(extra: &[&str]) -> Vec<Server> {
    let mut servers = vec![Server::start(THREADS, extra)];
    servers.extend(Server::start_redis_with(extra));
    servers
}

/// Asserts that each request gets exactly its reply, on one connection, from every server.
pub fn assert_replies(servers: &[Server], exchanges: &[(&[&str], &str)]) {
    for server in servers {
        let mut raw = server.raw();
        for (request, expected) in exchanges {
            assert_eq!(&raw.command(request).unwrap(), expected, "{request:?} on port {}", server.port);
        }
    }
}
