//! CONFIG GET, SET, RESETSTAT, REWRITE and HELP.
//!
//! Every core keeps its own copy of the configuration. CONFIG GET reads the calling core's
//! copy; CONFIG SET checks and applies the change to a copy (all pairs or none, in
//! `shoal_config`), then hands the new configuration to every core, which also refreshes the
//! settings its operations read (`Core::settings`).
//!
//! `bind` and `port` move the listeners: every core binds the new addresses first, and
//! accepts there (the old ones closing) only once no other server turns out to have bound
//! them at the same moment; connections already accepted stay.

use std::rc::Rc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use shoal_commands::args::{self, is};
use shoal_commands::{errors, CommandSpec};
use shoal_config::Config;
use shoal_resp::Frame;

use crate::connection::Conn;
use crate::node::{self, Node};
use crate::server_commands::{bulk, help};

const HELP: &[&str] = &[
    "GET <pattern>",
    "    Return parameters matching the glob-like <pattern> and their values.",
    "SET <directive> <value>",
    "    Set the configuration <directive> to <value>.",
    "RESETSTAT",
    "    Reset statistics reported by the INFO command.",
    "REWRITE",
    "    Rewrite the configuration file.",
];

/// CONFIG subcommand [argument ...]
pub async fn config(node: &Rc<Node>, conn: &Conn, spec: &CommandSpec, args: &[Bytes]) -> Frame {
    match spec.name {
        "config|get" => get(&node.config.borrow(), &args[2..]),
        "config|set" => set(node, conn, &args[2..]).await,
        "config|resetstat" => {
            resetstat(node).await;
            args::ok()
        }
        "config|rewrite" => match node.config.borrow().rewrite() {
            Ok(()) => {
                tracing::info!("CONFIG REWRITE executed with success.");
                args::ok()
            }
            Err(text) => errors::error(&text),
        },
        "config|help" => help("CONFIG", HELP),
        _ => errors::unknown_subcommand("config", &args[1]),
    }
}

/// CONFIG GET parameter [parameter ...]: a map of name to value.
fn get(config: &Config, patterns: &[Bytes]) -> Frame {
    let patterns: Vec<&[u8]> = patterns.iter().map(|p| &p[..]).collect();
    Frame::Map(config.get(&patterns).into_iter().map(|(name, value)| (bulk(name), bulk(value))).collect())
}

/// Whether the client connected over loopback, for `enable-protected-configs local`.
fn is_local(addr: &str) -> bool {
    addr.parse::<std::net::SocketAddr>().is_ok_and(|a| a.ip().is_loopback())
}

/// CONFIG SET parameter value [parameter value ...]
async fn set(node: &Rc<Node>, conn: &Conn, pairs: &[Bytes]) -> Frame {
    let chunks = pairs.chunks_exact(2);
    if !chunks.remainder().is_empty() {
        return errors::syntax();
    }
    let pairs: Vec<(&[u8], &[u8])> = chunks.map(|pair| (&pair[0][..], &pair[1][..])).collect();
    let mut config = node.config.borrow().clone();
    let changed = match config.set_from_client(&pairs, is_local(&conn.client.addr)) {
        Ok(changed) => changed,
        Err(text) => return errors::error(&text),
    };
    // Redis chdirs into `dir` as it applies it. `changed` never lists `dir` (its value is
    // printed from the current directory), so look at the arguments.
    if let Some((name, _)) = pairs.iter().find(|(name, _)| is(name, "dir")) {
        if let Err(e) = std::env::set_current_dir(&config.dir) {
            return errors::error(&format!("ERR CONFIG SET failed (possibly related to argument '{}') - {}", String::from_utf8_lossy(name), strerror(&e)));
        }
    }
    if !changed.is_empty() {
        tracing::debug!("CONFIG SET changed {}", changed.join(", "));
    }
    let rebind = changed.iter().any(|name| *name == "port" || *name == "bind");
    if rebind {
        // As Redis: refuse, changing nothing, when the new addresses cannot be listened on.
        // Every core binds them first; none accepts until no other server turns out to have
        // bound them at the same moment (SO_REUSEPORT would let both listen, each getting
        // some of the clients).
        let bound = {
            let current = node.config.borrow().clone();
            match node::probe_new_addresses(&config, &current) {
                Err(e) => Err(e),
                Ok(()) => {
                    let pending = config.clone();
                    let failures: Vec<std::io::Error> =
                        node.core.call_all(move |_| node::bind_pending(&node::current(), &pending).err()).await.into_iter().flatten().collect();
                    match failures.into_iter().next() {
                        Some(e) => Err(e),
                        None => node::new_addresses_alone(&config, &current),
                    }
                }
            }
        };
        if let Err(e) = bound {
            node.core.call_all(|_| node::drop_pending(&node::current())).await;
            let name = if changed.contains(&"port") { "port" } else { "bind" };
            tracing::warn!("CONFIG SET {name}: {e}");
            return errors::error(&format!(
                "ERR CONFIG SET failed (possibly related to argument '{name}') - Unable to listen on this port. Check server logs."
            ));
        }
    }
    if changed.contains(&"loglevel") {
        crate::logging::set_level(config.loglevel);
    }
    let appendonly = changed.contains(&"appendonly").then_some(config.appendonly);
    let limit_changed = changed.iter().any(|name| name.starts_with("maxmemory"));
    broadcast(node, config).await;
    if rebind {
        node.core.call_all(|_| node::accept_pending(&node::current())).await;
    }
    // As Redis, a limit below what is used starts evicting at once.
    if limit_changed {
        crate::evict::after_config_set(node).await;
    }
    // As Redis: turning the AOF on rewrites it from the data as it is; off stops logging.
    match appendonly {
        Some(true) => {
            if let Err(e) = crate::aof::turn_on(node, conn.in_exec).await {
                tracing::warn!("CONFIG SET appendonly yes: {e}");
                return errors::error(&format!("ERR CONFIG SET failed (possibly related to argument 'appendonly') - {e}"));
            }
        }
        Some(false) => crate::aof::turn_off(node).await,
        None => {}
    }
    args::ok()
}

/// An I/O error as C's strerror words it, without Rust's " (os error N)".
fn strerror(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error") {
        Some(end) => text[..end].to_owned(),
        None => text,
    }
}

/// Installs `config` on every core, with the operation settings derived from it.
pub async fn broadcast(node: &Rc<Node>, config: Config) {
    crate::cluster::set_full_coverage(config.cluster_require_full_coverage);
    node.core
        .call_all(move |core| {
            let settings = node::settings_of(&config);
            core.with_shard(|shard| shard.configure_lazyfree(shard.lazyfree.clone(), settings.lazyfree_lazy_expire, settings.lazyfree_lazy_server_del));
            core.install_settings(settings);
            crate::evict::configure(&config);
            node::configure_slowlog(core, &config);
            core.tracking_set_max_keys(config.tracking_table_max_keys as usize);
            *node::current().config.borrow_mut() = config.clone();
            core.pubsub_set_limit(crate::pubsub::limit(&node::current()));
        })
        .await;
}

/// CONFIG RESETSTAT: zeroes what INFO counts, on every core: command and error statistics,
/// keyspace hits, misses and expired keys, and the connection counters.
pub async fn resetstat(node: &Rc<Node>) {
    node.core
        .call_all(|core| {
            core.stats.borrow_mut().reset();
            core.with_shard(|shard| {
                for db in &mut shard.dbs {
                    db.stats = Default::default();
                }
            });
        })
        .await;
    let shared = &node.core.shared;
    shared.connections_received.store(0, Ordering::Relaxed);
    shared.rejected_connections.store(0, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_replies_a_map_of_names_to_values() {
        let config = Config::default();
        let patterns = [Bytes::from_static(b"port"), Bytes::from_static(b"maxmemory-polic?")];
        assert_eq!(get(&config, &patterns), Frame::Map(vec![(bulk("port"), bulk("6379")), (bulk("maxmemory-policy"), bulk("noeviction"))]));
        assert_eq!(get(&config, &[Bytes::from_static(b"nosuch")]), Frame::Map(vec![]));
    }

    #[test]
    fn loopback_clients_are_local() {
        assert!(is_local("127.0.0.1:5000"));
        assert!(is_local("[::1]:5000"));
        assert!(!is_local("10.0.0.1:5000"));
        assert!(!is_local(""));
    }
}
