//! Helpers shared by the integration tests: a temporary directory and item builders.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use shoal_aof::{Command, Item};

/// A directory under the system's temporary directory, removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let path = std::env::temp_dir().join(format!("shoal-aof-{label}-{}-{unique}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A command for database `db`.
pub fn cmd(db: usize, args: &[&str]) -> Command {
    Command { db, args: args.iter().map(|arg| Bytes::copy_from_slice(arg.as_bytes())).collect() }
}

/// A single command item.
pub fn command(db: usize, args: &[&str]) -> Item {
    Item::Command(cmd(db, args))
}
