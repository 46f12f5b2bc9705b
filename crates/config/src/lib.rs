//! Shoal's server configuration, in `redis.conf` syntax with Redis's directive
//! names, defaults, bounds, error texts and CONFIG GET/SET/REWRITE behaviour.
//!
//! - `load` reads a file (and its includes) and the command-line overrides
//!   into a `Config`, or fails with a `ConfigError` that prints like Redis's
//!   fatal config error.
//! - `Config` is plain data: the server reads fields directly
//!   (`config.port`, `config.maxmemory`, `config.save`, ...). It is `Clone +
//!   Send`; every core keeps its own copy.
//! - `Config::get`, `Config::set` and `Config::rewrite` implement CONFIG GET,
//!   CONFIG SET and CONFIG REWRITE; their errors are complete `ERR ...` reply
//!   texts.
//!
//! One table (`table::TABLE`) describes every directive; parsing, CONFIG GET,
//! CONFIG SET and CONFIG REWRITE all go through it.
//!
//! What this crate does not do: no sockets, no async, no process state. It
//! never chdirs, binds, daemonizes or opens log files; the server applies
//! those effects, using the names `Config::set` reports as changed.

mod args;
mod config;
mod load;
mod rewrite;
mod runtime;
mod table;
mod values;

pub use config::Config;
pub use load::{load, ConfigError, ConfigOrigin, INCLUDE_DEPTH_MAX};
pub use table::trim_double;
pub use values::{
    keyspace_classes, AppendFsync, ClientOutputBufferLimits, KeyspaceEvents, LogLevel, MaxmemoryPolicy, OutputBufferLimit, Percentiles, ProtectedConfigs,
    SavePoint,
};

#[cfg(test)]
pub(crate) mod test_support {
    //! A temporary directory for tests that need files, removed on drop.

    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU64, Ordering};

    pub(crate) struct TempDir(PathBuf);

    impl TempDir {
        pub(crate) fn new() -> Self {
            static COUNTER: AtomicU64 = AtomicU64::new(0);
            let path = std::env::temp_dir().join(format!("shoal-config-test-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
            std::fs::create_dir_all(&path).expect("create a temporary directory");
            TempDir(path)
        }

        pub(crate) fn path(&self) -> &Path {
            &self.0
        }

        /// Writes `text` to `name` in the directory and returns its path.
        pub(crate) fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, text).expect("write a temporary file");
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn the_annotated_default_file_loads_as_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/shoal.conf");
        let mut config = load(Some(&path), &[]).expect("config/shoal.conf loads");
        assert!(config.source_path().is_some());
        config.source_path = None;
        assert_eq!(config, Config::default());
    }

    #[test]
    fn the_annotated_default_file_mentions_every_directive() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/shoal.conf");
        let text = std::fs::read_to_string(path).expect("config/shoal.conf");
        for directive in table::TABLE {
            let mentioned = text.lines().any(|line| line.split_whitespace().next() == Some(directive.name));
            assert!(mentioned, "config/shoal.conf lacks a `{}` line", directive.name);
        }
    }

    #[test]
    fn config_is_clone_and_send() {
        fn assert_clone_send<T: Clone + Send + 'static>() {}
        assert_clone_send::<Config>();
    }
}
