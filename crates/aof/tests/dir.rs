//! The AOF directory: what `open` finds, the initial file set, the legacy upgrade, rewrites
//! and history deletion, all on a real file system.

mod common;

use std::fs;

use common::{command, TempDir};
use shoal_aof::{encode_command, AofDir, AofState, DirError, Item, LoadPolicy, Manifest, ManifestError};

fn aof(dir: &TempDir) -> AofDir {
    AofDir::new(dir.path(), "appendonlydir", "appendonly.aof")
}

fn load(aof: &AofDir, state: &AofState) -> Vec<Item> {
    aof.loader(state, LoadPolicy::default()).unwrap().collect::<Result<_, _>>().unwrap()
}

#[test]
fn an_empty_dir_has_no_aof() {
    let dir = TempDir::new("empty");
    assert_eq!(aof(&dir).open().unwrap(), AofState::None);
}

#[test]
fn create_initial_writes_an_empty_incr_and_a_manifest_naming_it() {
    let dir = TempDir::new("initial");
    let aof = aof(&dir);
    let manifest = aof.create_initial().unwrap();
    assert_eq!(fs::read_to_string(aof.manifest_path()).unwrap(), "file appendonly.aof.1.incr.aof seq 1 type i\n");
    assert_eq!(fs::metadata(aof.path_of("appendonly.aof.1.incr.aof")).unwrap().len(), 0);
    assert!(!aof.aof_dir().join("temp-appendonly.aof.manifest").exists(), "the temporary manifest was renamed");
    let state = aof.open().unwrap();
    assert_eq!(state, AofState::Manifest(manifest));
    assert!(load(&aof, &state).is_empty());
}

#[test]
fn appended_commands_load_back_through_the_manifest() {
    let dir = TempDir::new("append");
    let aof = aof(&dir);
    let mut manifest = aof.create_initial().unwrap();
    let mut bytes = Vec::new();
    encode_command(&["SET", "a", "1"], &mut bytes);
    fs::write(aof.path_of(&manifest.incrs[0].name), &bytes).unwrap();
    let (_, second) = aof.open_new_incr(&mut manifest).unwrap();
    assert_eq!(second, "appendonly.aof.2.incr.aof");
    bytes.clear();
    encode_command(&["SET", "b", "2"], &mut bytes);
    fs::write(aof.path_of(&second), &bytes).unwrap();
    let state = aof.open().unwrap();
    assert_eq!(load(&aof, &state), vec![command(0, &["SET", "a", "1"]), command(0, &["SET", "b", "2"])]);
}

#[test]
fn a_legacy_file_is_found_then_upgraded_into_the_directory() {
    let dir = TempDir::new("legacy");
    let aof = aof(&dir);
    let mut bytes = Vec::new();
    encode_command(&["SET", "old", "1"], &mut bytes);
    fs::write(aof.legacy_path(), &bytes).unwrap();
    let state = aof.open().unwrap();
    assert_eq!(state, AofState::Legacy { path: aof.legacy_path() });
    assert_eq!(load(&aof, &state), vec![command(0, &["SET", "old", "1"])]);

    let manifest = aof.upgrade_legacy().unwrap();
    assert_eq!(manifest.to_string(), "file appendonly.aof seq 1 type b\n");
    assert!(!aof.legacy_path().exists());
    let state = aof.open().unwrap();
    assert_eq!(state, AofState::Manifest(manifest));
    assert_eq!(load(&aof, &state), vec![command(0, &["SET", "old", "1"])]);
}

#[test]
fn an_interrupted_upgrade_is_found_as_legacy_again() {
    let dir = TempDir::new("interrupted");
    let aof = aof(&dir);
    fs::write(aof.legacy_path(), b"").unwrap();
    // The manifest was persisted but the rename did not happen.
    fs::create_dir_all(aof.aof_dir()).unwrap();
    fs::write(aof.manifest_path(), "file appendonly.aof seq 1 type b\n").unwrap();
    assert_eq!(aof.open().unwrap(), AofState::Legacy { path: aof.legacy_path() });
    // A manifest naming no file also leaves the legacy file in charge.
    fs::write(aof.manifest_path(), "# nothing\n").unwrap();
    assert_eq!(aof.open().unwrap(), AofState::Legacy { path: aof.legacy_path() });
}

#[test]
fn a_manifest_with_files_wins_over_a_stray_legacy_file() {
    let dir = TempDir::new("both");
    let aof = aof(&dir);
    let manifest = aof.create_initial().unwrap();
    fs::write(aof.legacy_path(), b"").unwrap();
    assert_eq!(aof.open().unwrap(), AofState::Manifest(manifest));
}

#[test]
fn an_invalid_manifest_is_refused_with_its_path() {
    let dir = TempDir::new("invalid");
    let aof = aof(&dir);
    fs::create_dir_all(aof.aof_dir()).unwrap();
    fs::write(aof.manifest_path(), "file a seq 1 type b\nfile b seq 2 type b\n").unwrap();
    match aof.open() {
        Err(DirError::Manifest { path, source }) => {
            assert_eq!(path, aof.manifest_path());
            assert_eq!(source, ManifestError::DuplicateBase { line: 2 });
        }
        other => panic!("expected a manifest error, got {other:?}"),
    }
}

#[test]
fn a_rewrite_then_delete_history_leaves_only_the_new_files() {
    let dir = TempDir::new("rewrite");
    let aof = aof(&dir);
    let mut manifest = aof.create_initial().unwrap();
    let first_incr = manifest.incrs[0].name.clone();
    let mut bytes = Vec::new();
    encode_command(&["SET", "a", "1"], &mut bytes);
    fs::write(aof.path_of(&first_incr), &bytes).unwrap();

    // The rewrite starts: new writes go to a fresh incremental file.
    let (_, current) = aof.open_new_incr(&mut manifest).unwrap();
    // The rewritten base is complete: install it.
    let base = manifest.finish_rewrite(aof.appendfilename(), false, true);
    assert_eq!(base, "appendonly.aof.1.base.aof");
    fs::write(aof.path_of(&base), &bytes).unwrap();
    aof.persist_manifest(&manifest).unwrap();
    assert_eq!(
        fs::read_to_string(aof.manifest_path()).unwrap(),
        "file appendonly.aof.1.base.aof seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type h\nfile appendonly.aof.2.incr.aof seq 2 type i\n"
    );

    assert_eq!(aof.delete_history(&mut manifest).unwrap(), 1);
    assert!(!aof.path_of(&first_incr).exists());
    let reread = Manifest::parse(&fs::read(aof.manifest_path()).unwrap()).unwrap();
    assert_eq!(reread, manifest);
    assert!(reread.history.is_empty());
    let mut names: Vec<String> = fs::read_dir(aof.aof_dir()).unwrap().map(|entry| entry.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, vec![base.as_str(), current.as_str(), "appendonly.aof.manifest"]);
    let state = aof.open().unwrap();
    assert_eq!(load(&aof, &state), vec![command(0, &["SET", "a", "1"])]);
}
