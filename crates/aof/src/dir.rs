//! The AOF directory: what is on disk, and the file operations that keep the manifest and
//! the files it names consistent.
//!
//! Layout (Redis 7.0): `<dir>/<appenddirname>/` holds `<appendfilename>.manifest`, the base
//! file `<appendfilename>.<seq>.base.rdb` or `.base.aof`, incremental files
//! `<appendfilename>.<seq>.incr.aof`, and history files awaiting deletion. Before 7.0 the
//! AOF was the single file `<dir>/<appendfilename>`.
//!
//! Invariants:
//! - The manifest on disk is always complete: it is written to
//!   `temp-<appendfilename>.manifest`, fsynced, renamed over the manifest, and the directory
//!   is fsynced (Redis's `writeAofManifestFile` plus the directory fsync that makes the
//!   rename durable).
//! - A file is created and fsynced before the manifest that names it is persisted, so a
//!   crash never leaves the manifest naming a file that does not exist.
//!
//! Not here: deciding when to rotate, rewrite or fsync the log (the server's policy), and
//! loading (see [`crate::load`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::load::{LoadPolicy, Loader};
use crate::manifest::{Manifest, ManifestError};

/// What [`AofDir::open`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AofState {
    /// No AOF at all (no manifest, or one naming no base and no incremental file, and no
    /// old single file): start empty.
    None,
    /// The pre-7.0 single file `<dir>/<appendfilename>`, or an upgrade to the multi-part
    /// layout that was interrupted. Load it as the base (it is the last and only file), then
    /// call [`AofDir::upgrade_legacy`], as Redis's `aofUpgradePrepare` does.
    Legacy {
        /// The old file.
        path: PathBuf,
    },
    /// A manifest naming files to load.
    Manifest(Manifest),
}

/// Why a directory operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    /// A file system operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// The manifest is invalid.
    #[error("{}: {source}", path.display())]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: ManifestError,
    },
}

/// The AOF's place on disk: `dir`, `appenddirname` and `appendfilename`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AofDir {
    dir: PathBuf,
    aof_dir: PathBuf,
    appendfilename: String,
}

impl AofDir {
    /// The AOF of `<dir>/<appenddirname>`, with files named after `appendfilename` (Redis's
    /// defaults: `appendonlydir` and `appendonly.aof`).
    pub fn new(dir: impl Into<PathBuf>, appenddirname: &str, appendfilename: &str) -> AofDir {
        let dir = dir.into();
        AofDir { aof_dir: dir.join(appenddirname), dir, appendfilename: appendfilename.to_string() }
    }

    /// `<dir>/<appenddirname>`.
    pub fn aof_dir(&self) -> &Path {
        &self.aof_dir
    }

    /// The base name files are named after.
    pub fn appendfilename(&self) -> &str {
        &self.appendfilename
    }

    /// The path of a file the manifest names.
    pub fn path_of(&self, name: &str) -> PathBuf {
        self.aof_dir.join(name)
    }

    /// `<dir>/<appenddirname>/<appendfilename>.manifest`.
    pub fn manifest_path(&self) -> PathBuf {
        self.aof_dir.join(format!("{}.manifest", self.appendfilename))
    }

    /// The pre-7.0 single file, `<dir>/<appendfilename>`.
    pub fn legacy_path(&self) -> PathBuf {
        self.dir.join(&self.appendfilename)
    }

    /// Reads the manifest; `None` when the directory or the manifest does not exist.
    pub fn read_manifest(&self) -> Result<Option<Manifest>, DirError> {
        let path = self.manifest_path();
        let text = match fs::read(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(DirError::Io { path, source }),
        };
        Manifest::parse(&text).map(Some).map_err(|source| DirError::Manifest { path, source })
    }

    /// Finds what is on disk, with Redis 7.0's rules (`loadAppendOnlyFiles`): the old single
    /// file is used when it exists and there is no AOF directory, or a manifest naming no
    /// files, or a manifest whose only file is a base with the old file's name that has not
    /// been moved into the directory yet (an interrupted upgrade).
    pub fn open(&self) -> Result<AofState, DirError> {
        let manifest = if self.aof_dir.is_dir() { self.read_manifest()? } else { None };
        let legacy = self.legacy_path();
        if legacy.is_file() {
            let upgrade = match &manifest {
                None => true,
                Some(manifest) if manifest.is_empty() => true,
                Some(manifest) => {
                    manifest.incrs.is_empty()
                        && manifest.base.as_ref().is_some_and(|base| base.name == self.appendfilename)
                        && !self.path_of(&self.appendfilename).exists()
                }
            };
            if upgrade {
                return Ok(AofState::Legacy { path: legacy });
            }
        }
        match manifest {
            Some(manifest) if !manifest.is_empty() => Ok(AofState::Manifest(manifest)),
            _ => Ok(AofState::None),
        }
    }

    /// A loader for the state [`AofDir::open`] found (`None` for [`AofState::None`]).
    pub fn loader(&self, state: &AofState, policy: LoadPolicy) -> Option<Loader> {
        match state {
            AofState::None => None,
            AofState::Legacy { path } => Some(Loader::new(vec![path.clone()], policy)),
            AofState::Manifest(manifest) => Some(Loader::for_manifest(&self.aof_dir, manifest, policy)),
        }
    }

    /// Moves the old single file into the AOF directory as the base, as Redis's
    /// `aofUpgradePrepare`: create the directory, persist a manifest whose base is
    /// `<appendfilename>` with seq 1, then rename the file into the directory. A crash
    /// between the two steps is the interrupted upgrade [`AofDir::open`] recognises.
    pub fn upgrade_legacy(&self) -> Result<Manifest, DirError> {
        self.create_dir()?;
        let mut manifest = Manifest::default();
        manifest.set_new_base(&self.appendfilename, false);
        // `set_new_base` names the file like a rewrite would; the upgrade keeps the old name.
        manifest.base.as_mut().expect("a base was just set").name = self.appendfilename.clone();
        self.persist_manifest(&manifest)?;
        let from = self.legacy_path();
        let to = self.path_of(&self.appendfilename);
        fs::rename(&from, &to).map_err(|source| DirError::Io { path: from, source })?;
        sync_dir(&self.aof_dir)?;
        sync_dir(&self.dir)?;
        Ok(manifest)
    }

    /// Creates the AOF directory, an empty first incremental file and a manifest naming it,
    /// each durable before the next step. Returns the manifest.
    pub fn create_initial(&self) -> Result<Manifest, DirError> {
        self.create_dir()?;
        let mut manifest = Manifest::default();
        self.open_new_incr(&mut manifest)?;
        Ok(manifest)
    }

    /// Adds a new incremental file to `manifest` (Redis's `openNewIncrAofForAppend`): creates
    /// the empty file, fsyncs it and the directory, then persists the manifest. Returns the
    /// file opened for appending and its name. On error `manifest` is left unchanged.
    pub fn open_new_incr(&self, manifest: &mut Manifest) -> Result<(File, String), DirError> {
        let mut next = manifest.clone();
        let name = next.add_incr(&self.appendfilename);
        let path = self.path_of(&name);
        let io_error = |source: io::Error| DirError::Io { path: path.clone(), source };
        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(io_error)?;
        // A leftover file of that name is not in the manifest, so nothing of it was ever
        // acknowledged as part of the AOF.
        file.set_len(0).map_err(io_error)?;
        file.sync_all().map_err(io_error)?;
        sync_dir(&self.aof_dir)?;
        self.persist_manifest(&next)?;
        *manifest = next;
        Ok((file, name))
    }

    /// Writes the manifest atomically and durably: temporary file, fsync, rename, fsync of
    /// the directory.
    pub fn persist_manifest(&self, manifest: &Manifest) -> Result<(), DirError> {
        manifest.check_invariants();
        let temp = self.aof_dir.join(format!("temp-{}.manifest", self.appendfilename));
        let io_error = |source: io::Error| DirError::Io { path: temp.clone(), source };
        let mut file = OpenOptions::new().create(true).write(true).truncate(true).open(&temp).map_err(io_error)?;
        file.write_all(manifest.to_string().as_bytes()).map_err(io_error)?;
        file.sync_all().map_err(io_error)?;
        drop(file);
        fs::rename(&temp, self.manifest_path()).map_err(io_error)?;
        sync_dir(&self.aof_dir)
    }

    /// Deletes the history files, then persists the manifest without them (Redis's
    /// `aofDelHistoryFiles`). A history file already gone is fine. Returns how many files
    /// were deleted.
    pub fn delete_history(&self, manifest: &mut Manifest) -> Result<usize, DirError> {
        if manifest.history.is_empty() {
            return Ok(0);
        }
        let mut deleted = 0;
        for info in &manifest.history {
            let path = self.path_of(&info.name);
            match fs::remove_file(&path) {
                Ok(()) => deleted += 1,
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(DirError::Io { path, source }),
            }
        }
        manifest.history.clear();
        self.persist_manifest(manifest)?;
        Ok(deleted)
    }

    /// Creates the AOF directory (durably) if it does not exist.
    pub fn create_dir(&self) -> Result<(), DirError> {
        if self.aof_dir.is_dir() {
            return Ok(());
        }
        fs::create_dir_all(&self.aof_dir).map_err(|source| DirError::Io { path: self.aof_dir.clone(), source })?;
        sync_dir(&self.dir)
    }
}

/// Makes a directory's entries (creations, renames) durable.
fn sync_dir(path: &Path) -> Result<(), DirError> {
    File::open(path).and_then(|dir| dir.sync_all()).map_err(|source| DirError::Io { path: path.to_path_buf(), source })
}
