//! RDB persistence against the real binaries: SAVE, BGSAVE and SHUTDOWN write a `dump.rdb`
//! that `redis-check-rdb` accepts and Debian's redis-server loads with the same contents; a
//! `dump.rdb` written by redis-server loads into Shoal; BGSAVE is a point-in-time image while
//! writers keep writing on every core; a damaged file stops startup; a failing save refuses
//! writes with MISCONF until a save succeeds again.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use shoal_testkit::{need, Raw, Server};
use shoal_tests::{assert_same, connect, contents, fill, settled_peak_and_resident, Tmpfs, THREADS};

fn check_rdb(path: &Path) {
    if !need("redis-check-rdb") {
        return;
    }
    let output = Command::new("redis-check-rdb").arg(path).output().expect("run redis-check-rdb");
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && text.contains("RDB looks OK"), "redis-check-rdb refused {path:?}:\n{text}");
}

fn info_field(server: &Server, field: &str) -> String {
    let mut con = connect(server);
    let info: String = redis::cmd("INFO").arg("persistence").query(&mut con).unwrap();
    info.lines().find_map(|line| line.strip_prefix(&format!("{field}:"))).unwrap_or_else(|| panic!("{field} in INFO")).trim().to_owned()
}

fn wait_for_bgsave(server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while info_field(server, "rdb_bgsave_in_progress") != "0" {
        assert!(Instant::now() < deadline, "BGSAVE did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn save_writes_a_file_that_redis_checks_and_loads_with_the_same_contents_and_shoal_reloads() {
    let dir = Server::scratch("persist");
    let shoal = Server::start_in(&dir, THREADS, &["--save", ""]);
    fill(&shoal);
    let mut con = connect(&shoal);
    let library = "#!lua name=lib\nredis.register_function('f', function(keys, args) return 7 end)";
    let _: String = redis::cmd("FUNCTION").arg("LOAD").arg(library).query(&mut con).unwrap();
    let before = contents(&shoal);
    assert!(before.len() > 50, "filled");
    let _: () = redis::cmd("SAVE").query(&mut con).unwrap();
    let lastsave: i64 = redis::cmd("LASTSAVE").query(&mut con).unwrap();
    assert!((lastsave - (shoal_runtime_now_s())).abs() < 30, "LASTSAVE is now");
    assert_eq!(info_field(&shoal, "rdb_changes_since_last_save"), "0");
    assert_eq!(info_field(&shoal, "rdb_last_bgsave_status"), "ok");
    drop(con);
    drop(shoal);
    check_rdb(&dir.join("dump.rdb"));

    // Shoal restarts on its own file: same keys, same function.
    let again = Server::start_in(&dir, THREADS, &["--save", ""]);
    assert_same(&contents(&again), &before, "Shoal reloads what it saved");
    let mut con = connect(&again);
    let seven: i64 = redis::cmd("FCALL").arg("f").arg(0).query(&mut con).unwrap();
    assert_eq!(seven, 7, "functions survive a restart");
    drop(con);
    drop(again);

    // Redis loads it too.
    if let Some(redis) = Server::start_redis_in(&dir, &["--dbfilename", "dump.rdb"]) {
        assert_same(&contents(&redis), &before, "redis-server loads Shoal's file with the same contents");
        let mut con = connect(&redis);
        let seven: i64 = redis::cmd("FCALL").arg("f").arg(0).query(&mut con).unwrap();
        assert_eq!(seven, 7);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn shoal_runtime_now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[test]
fn a_dump_written_by_redis_loads_into_shoal_on_every_core() {
    let dir = Server::scratch("persist-redis");
    let Some(redis) = Server::start_redis_in(&dir, &[]) else { return };
    fill(&redis);
    let before = contents(&redis);
    let mut con = connect(&redis);
    let _: () = redis::cmd("SAVE").query(&mut con).unwrap();
    drop(con);
    drop(redis);
    let shoal = Server::start_in(&dir, THREADS, &["--save", ""]);
    assert_same(&contents(&shoal), &before, "Shoal loads Redis's file");
    drop(shoal);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn shutdown_saves_when_save_points_are_set_or_asked_and_nosave_does_not() {
    let dir = Server::scratch("persist-shutdown");
    // Save points configured: a plain SHUTDOWN saves.
    let mut shoal = Server::start_in(&dir, THREADS, &["--save", "3600 1"]);
    let mut con = connect(&shoal);
    let _: () = redis::cmd("SET").arg("kept").arg("1").query(&mut con).unwrap();
    let _ = redis::cmd("SHUTDOWN").query::<()>(&mut con);
    assert_eq!(shoal.wait_exit(Duration::from_secs(20)), Some(0));
    let shoal = Server::start_in(&dir, THREADS, &["--save", ""]);
    let mut con = connect(&shoal);
    let kept: Option<String> = redis::cmd("GET").arg("kept").query(&mut con).unwrap();
    assert_eq!(kept.as_deref(), Some("1"));
    // NOSAVE: the write after the last save is lost, on purpose.
    let _: () = redis::cmd("SET").arg("lost").arg("1").query(&mut con).unwrap();
    let _ = redis::cmd("SHUTDOWN").arg("NOSAVE").query::<()>(&mut con);
    drop(shoal);
    // SIGTERM with save points saves; SHUTDOWN SAVE saves without them.
    let mut shoal = Server::start_in(&dir, THREADS, &["--save", "3600 1"]);
    let mut con = connect(&shoal);
    let lost: Option<String> = redis::cmd("GET").arg("lost").query(&mut con).unwrap();
    assert_eq!(lost, None, "NOSAVE did not save");
    let _: () = redis::cmd("SET").arg("on-sigterm").arg("1").query(&mut con).unwrap();
    shoal.signal("TERM");
    assert_eq!(shoal.wait_exit(Duration::from_secs(20)), Some(0));
    let mut shoal = Server::start_in(&dir, THREADS, &["--save", ""]);
    let mut con = connect(&shoal);
    let kept: Option<String> = redis::cmd("GET").arg("on-sigterm").query(&mut con).unwrap();
    assert_eq!(kept.as_deref(), Some("1"), "SIGTERM saved");
    let _: () = redis::cmd("SET").arg("on-shutdown-save").arg("1").query(&mut con).unwrap();
    let _ = redis::cmd("SHUTDOWN").arg("SAVE").query::<()>(&mut con);
    assert_eq!(shoal.wait_exit(Duration::from_secs(20)), Some(0));
    let shoal = Server::start_in(&dir, THREADS, &["--save", ""]);
    let mut con = connect(&shoal);
    let kept: Option<String> = redis::cmd("GET").arg("on-shutdown-save").query(&mut con).unwrap();
    assert_eq!(kept.as_deref(), Some("1"), "SHUTDOWN SAVE saved");
    drop(shoal);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `shutdown-on-sigterm` and `shutdown-on-sigint` decide what a signal does, as the words
/// of a SHUTDOWN would: `nosave` skips the save that save points would make, `save` saves
/// without them; `default` keeps the default (the test above).
#[test]
fn shutdown_on_sigterm_and_sigint_choose_what_a_signal_saves() {
    let dir = Server::scratch("persist-signals");
    let mut shoal = Server::start_in(&dir, THREADS, &["--save", "3600 1", "--shutdown-on-sigterm", "nosave now"]);
    let mut raw = shoal.raw();
    assert_eq!(raw.command(&["CONFIG", "GET", "shutdown-on-sigterm"]).unwrap(), "*2\r\n$19\r\nshutdown-on-sigterm\r\n$10\r\nnosave now\r\n");
    assert_eq!(raw.command(&["SET", "lost", "1"]).unwrap(), "+OK\r\n");
    shoal.signal("TERM");
    assert_eq!(shoal.wait_exit(Duration::from_secs(20)), Some(0));
    assert!(!dir.join("dump.rdb").exists(), "SIGTERM under nosave saved nothing");
    let mut shoal = Server::start_in(&dir, THREADS, &["--save", "", "--shutdown-on-sigint", "save"]);
    let mut raw = shoal.raw();
    assert_eq!(raw.command(&["SET", "kept", "1"]).unwrap(), "+OK\r\n");
    shoal.signal("INT");
    assert_eq!(shoal.wait_exit(Duration::from_secs(20)), Some(0));
    let shoal = Server::start_in(&dir, THREADS, &["--save", ""]);
    assert_eq!(shoal.raw().command(&["MGET", "kept", "lost"]).unwrap(), "*2\r\n$1\r\n1\r\n$-1\r\n", "SIGINT under save saved");
    drop(shoal);
    let _ = std::fs::remove_dir_all(&dir);
}

/// BGSAVE under writes on every core: the file holds exactly what was there when BGSAVE
/// answered, although every key is overwritten, deleted or created while it writes.
#[test]
fn bgsave_is_a_point_in_time_image_while_writers_change_every_key() {
    let dir = Server::scratch("persist-pit");
    let shoal = Server::start_in(&dir, THREADS, &["--save", ""]);
    let mut con = connect(&shoal);
    const KEYS: usize = 60_000;
    // Large enough that the walk takes a while: each value is 200 bytes.
    let _: () = redis::cmd("DEBUG").arg("POPULATE").arg(KEYS).arg("key").arg(200).query(&mut con).unwrap();
    let _: () = redis::cmd("RPUSH").arg("list").arg("before").query(&mut con).unwrap();
    let reply: String = redis::cmd("BGSAVE").query(&mut con).unwrap();
    assert_eq!(reply, "Background saving started");
    // Everything from here on is after the cut.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let url = shoal.url();
            std::thread::spawn(move || {
                let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
                let mut pipe = redis::pipe();
                for i in (w..KEYS).step_by(4) {
                    match i % 3 {
                        0 => pipe.cmd("SET").arg(format!("key:{i}")).arg("after").ignore(),
                        1 => pipe.cmd("DEL").arg(format!("key:{i}")).ignore(),
                        _ => pipe.cmd("SET").arg(format!("new:{i}")).arg("after").ignore(),
                    };
                    if i % 512 < 4 {
                        pipe.query::<()>(&mut con).unwrap();
                        pipe = redis::pipe();
                    }
                }
                pipe.cmd("RPUSH").arg("list").arg("after").ignore();
                pipe.query::<()>(&mut con).unwrap();
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    wait_for_bgsave(&shoal);
    assert_eq!(info_field(&shoal, "rdb_last_bgsave_status"), "ok");
    let copied: u64 = info_field(&shoal, "rdb_last_cow_size").parse().unwrap();
    eprintln!("bytes copied aside during the BGSAVE: {copied}");
    drop(con);
    drop(shoal);
    check_rdb(&dir.join("dump.rdb"));
    let shoal = Server::start_in(&dir, THREADS, &["--save", ""]);
    let mut con = connect(&shoal);
    let size: usize = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(size, KEYS + 1, "every key of the cut, none created after");
    for i in (0..KEYS).step_by(97) {
        let value: String = redis::cmd("GET").arg(format!("key:{i}")).query(&mut con).unwrap();
        // DEBUG POPULATE pads its values with zero bytes to the size asked.
        assert_eq!(value.trim_end_matches('\0'), format!("value:{i}"), "key:{i} as it was at the cut");
    }
    let list: Vec<String> = redis::cmd("LRANGE").arg("list").arg(0).arg(-1).query(&mut con).unwrap();
    assert_eq!(list, vec!["before"]);
    drop(con);
    drop(shoal);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_damaged_file_stops_startup_with_a_message_and_never_loads_half() {
    let dir = Server::scratch("persist-damaged");
    let shoal = Server::start_in(&dir, 2, &["--save", ""]);
    fill(&shoal);
    let mut con = connect(&shoal);
    let _: () = redis::cmd("SAVE").query(&mut con).unwrap();
    drop(con);
    drop(shoal);
    let path = dir.join("dump.rdb");
    let good = std::fs::read(&path).unwrap();
    let start = |dir: &Path| {
        let output = Command::new(shoal_testkit::server_binary())
            .args(["--port", &shoal_testkit::free_port().to_string(), "--threads", "2", "--bind", "127.0.0.1", "--save", ""])
            .current_dir(dir)
            .output()
            .expect("run shoal-server");
        (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    // Truncated.
    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    let (code, stderr) = start(&dir);
    assert_eq!(code, Some(1), "refused: {stderr}");
    assert!(stderr.contains("dump.rdb"), "names the file: {stderr}");
    // One byte changed in the middle: the checksum catches it if the parser does not.
    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x20;
    std::fs::write(&path, &flipped).unwrap();
    let (code, stderr) = start(&dir);
    assert_eq!(code, Some(1), "refused: {stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failing_save_refuses_writes_with_misconf_until_a_save_succeeds() {
    let dir = Server::scratch("persist-misconf");
    let shoal = Server::start_in(&dir, THREADS, &["--save", "3600 1"]);
    let mut raw = shoal.raw();
    assert_eq!(raw.command(&["SET", "a", "1"]).unwrap(), "+OK\r\n");
    // A directory in the way of dump.rdb: the save cannot rename its file into place.
    std::fs::create_dir(dir.join("dump.rdb")).unwrap();
    assert_eq!(raw.command(&["SAVE"]).unwrap(), "-ERR\r\n");
    assert_eq!(raw.command(&["BGSAVE"]).unwrap(), "+Background saving started\r\n");
    wait_for_bgsave(&shoal);
    assert_eq!(info_field(&shoal, "rdb_last_bgsave_status"), "err");
    let misconf = raw.command(&["SET", "a", "2"]).unwrap();
    assert!(misconf.starts_with("-MISCONF "), "{misconf}");
    assert_eq!(raw.command(&["GET", "a"]).unwrap(), "$1\r\n1\r\n", "reads still work");
    assert!(std::fs::read_dir(&dir).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().starts_with("temp-")), "no temp file left");
    // The obstacle goes: the next save succeeds and writes are accepted again.
    std::fs::remove_dir(dir.join("dump.rdb")).unwrap();
    assert_eq!(raw.command(&["BGSAVE"]).unwrap(), "+Background saving started\r\n");
    wait_for_bgsave(&shoal);
    assert_eq!(info_field(&shoal, "rdb_last_bgsave_status"), "ok");
    assert_eq!(raw.command(&["SET", "a", "3"]).unwrap(), "+OK\r\n");
    drop(shoal);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_full_disk_fails_the_save_refuses_writes_keeps_reads_and_recovers_when_space_returns() {
    let Some(disk) = Tmpfs::mount("8m") else { return };
    // Most of the space taken: the dataset (about 4 MB as a file) does not fit in the rest.
    std::fs::write(disk.0.join("filler"), vec![0u8; 6 << 20]).unwrap();
    let shoal = Server::start_in(&disk.0, THREADS, &["--save", "3600 1", "--rdbcompression", "no"]);
    let mut raw = shoal.raw();
    let value = "x".repeat(200);
    for batch in 0..20 {
        let requests: Vec<u8> = (0..1000).flat_map(|i| Raw::encode(&["SET", &format!("k{}", batch * 1000 + i), &value])).collect();
        raw.send(&requests);
        for _ in 0..1000 {
            assert_eq!(raw.read_reply().unwrap(), "+OK\r\n");
        }
    }
    assert_eq!(raw.command(&["SAVE"]).unwrap(), "-ERR\r\n");
    assert_eq!(raw.command(&["BGSAVE"]).unwrap(), "+Background saving started\r\n");
    wait_for_bgsave(&shoal);
    assert_eq!(info_field(&shoal, "rdb_last_bgsave_status"), "err");
    assert_eq!(
        raw.command(&["SET", "k0", "new"]).unwrap(),
        "-MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.\r\n"
    );
    assert_eq!(raw.command(&["GET", "k1"]).unwrap(), format!("${}\r\n{value}\r\n", value.len()), "reads still work");
    let left: Vec<String> = std::fs::read_dir(&disk.0).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(left, ["filler"], "no partial file is left on the full disk");
    // Space comes back: the next save succeeds, writes are accepted, and the file loads.
    std::fs::remove_file(disk.0.join("filler")).unwrap();
    assert_eq!(raw.command(&["BGSAVE"]).unwrap(), "+Background saving started\r\n");
    wait_for_bgsave(&shoal);
    assert_eq!(info_field(&shoal, "rdb_last_bgsave_status"), "ok");
    assert_eq!(raw.command(&["SET", "k0", "new"]).unwrap(), "+OK\r\n");
    drop(raw);
    drop(shoal);
    let shoal = Server::start_in(&disk.0, THREADS, &["--save", ""]);
    let mut raw = shoal.raw();
    assert_eq!(raw.command(&["DBSIZE"]).unwrap(), ":20000\r\n");
    drop(raw);
    drop(shoal);
}

#[test]
fn flushall_with_save_points_saves_the_empty_dataset_as_redis_does() {
    let run = |server: &Server| -> (String, String) {
        let mut raw = server.raw();
        assert_eq!(raw.command(&["MSET", "a", "1", "b", "2", "{a}c", "3"]).unwrap(), "+OK\r\n");
        assert_eq!(raw.command(&["SAVE"]).unwrap(), "+OK\r\n");
        assert_eq!(raw.command(&["SET", "d", "4"]).unwrap(), "+OK\r\n");
        assert_eq!(raw.command(&["FLUSHALL"]).unwrap(), "+OK\r\n");
        (info_field(server, "rdb_changes_since_last_save"), info_field(server, "rdb_last_bgsave_status"))
    };
    let dir = Server::scratch("persist-flushall");
    let shoal = Server::start_in(&dir, THREADS, &["--save", "3600 1"]);
    let ours = run(&shoal);
    drop(shoal);
    // The file on disk is the empty dataset: a restart finds no key.
    let shoal = Server::start_in(&dir, THREADS, &["--save", ""]);
    assert_eq!(shoal.raw().command(&["DBSIZE"]).unwrap(), ":0\r\n", "FLUSHALL saved the empty dataset");
    drop(shoal);
    let _ = std::fs::remove_dir_all(&dir);
    let redis_dir = Server::scratch("persist-flushall-redis");
    if let Some(redis) = Server::start_redis_in(&redis_dir, &["--save", "3600 1"]) {
        assert_eq!(ours, run(&redis), "rdb_changes_since_last_save and the save's status after FLUSHALL");
        drop(redis);
        let redis = Server::start_redis_in(&redis_dir, &["--save", ""]).unwrap();
        assert_eq!(redis.raw().command(&["DBSIZE"]).unwrap(), ":0\r\n");
    }
    let _ = std::fs::remove_dir_all(&redis_dir);
}

#[test]
fn a_save_point_saves_in_the_background_once_enough_changes_are_made() {
    let dir = Server::scratch("persist-point");
    let shoal = Server::start_in(&dir, THREADS, &["--save", "1 3", "--hz", "50"]);
    let mut raw = shoal.raw();
    for key in ["a", "b", "c", "d"] {
        assert_eq!(raw.command(&["SET", key, "1"]).unwrap(), "+OK\r\n");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while info_field(&shoal, "rdb_saves") == "0" {
        assert!(Instant::now() < deadline, "no save within the deadline");
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_for_bgsave(&shoal);
    assert!(dir.join("dump.rdb").exists());
    assert_eq!(info_field(&shoal, "rdb_changes_since_last_save"), "0");
    // SCHEDULE with no save running starts one at once.
    assert_eq!(raw.command(&["BGSAVE", "SCHEDULE"]).unwrap(), "+Background saving started\r\n");
    wait_for_bgsave(&shoal);
    assert_eq!(raw.command(&["BGSAVE", "NOW"]).unwrap(), "-ERR syntax error\r\n");
    drop(shoal);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn debug_reload_saves_empties_and_loads_back_and_nosave_loads_the_older_file() {
    let dir = Server::scratch("persist-reload");
    let shoal = Server::start_in(&dir, THREADS, &["--save", ""]);
    fill(&shoal);
    let before = contents(&shoal);
    let mut raw = shoal.raw();
    assert_eq!(raw.command(&["DEBUG", "RELOAD"]).unwrap(), "+OK\r\n");
    assert_same(&contents(&shoal), &before, "the same keys after a reload");
    assert_eq!(info_field(&shoal, "rdb_changes_since_last_save"), "0", "the reload saved");
    assert_eq!(raw.command(&["SET", "after-the-save", "1"]).unwrap(), "+OK\r\n");
    assert_eq!(info_field(&shoal, "rdb_changes_since_last_save"), "1", "changes count again after a reload");
    assert_eq!(raw.command(&["DEBUG", "RELOAD", "NOSAVE"]).unwrap(), "+OK\r\n");
    assert_same(&contents(&shoal), &before, "NOSAVE loads the file as it was");
    assert_eq!(raw.command(&["DEBUG", "RELOAD", "BOGUS"]).unwrap(), "-ERR DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options.\r\n");
    drop(shoal);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn while_the_file_loads_commands_get_loading_and_info_shows_it() {
    let dir = Server::scratch("persist-loading");
    let shoal = Server::start_in(&dir, THREADS, &["--save", ""]);
    let mut raw = shoal.raw();
    assert_eq!(raw.command(&["DEBUG", "POPULATE", "2000"]).unwrap(), "+OK\r\n");
    assert_eq!(raw.command(&["SAVE"]).unwrap(), "+OK\r\n");
    drop(raw);
    drop(shoal);
    // One millisecond per key: about two seconds of loading.
    let shoal = Server::start_in_accepting(&dir, THREADS, &["--save", "", "--key-load-delay", "1000"]);
    let mut raw = shoal.raw();
    assert_eq!(raw.command(&["GET", "key:1"]).unwrap(), "-LOADING Redis is loading the dataset in memory\r\n");
    let info = raw.command(&["INFO", "persistence"]).unwrap();
    assert!(info.contains("\r\nloading:1\r\n") && info.contains("loading_total_bytes:"), "{info}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while raw.command(&["PING"]).unwrap() != "+PONG\r\n" {
        assert!(Instant::now() < deadline, "still loading");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(raw.command(&["DBSIZE"]).unwrap(), ":2000\r\n");
    assert!(raw.command(&["INFO", "persistence"]).unwrap().contains("\r\nloading:0\r\n"));
    drop(shoal);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn loading_a_file_at_startup_holds_little_more_than_the_dataset() {
    const KEYS: usize = 300_000;
    let dir = Server::scratch("persist-load-peak");
    let shoal = Server::start_in(&dir, THREADS, &["--save", ""]);
    let mut raw = shoal.raw();
    assert_eq!(raw.command(&["DEBUG", "POPULATE", &KEYS.to_string(), "key", "100"]).unwrap(), "+OK\r\n");
    assert_eq!(raw.command(&["SAVE"]).unwrap(), "+OK\r\n");
    drop(raw);
    drop(shoal);
    let shoal = Server::start_in_accepting(&dir, THREADS, &["--save", ""]);
    let mut raw = shoal.raw();
    let deadline = Instant::now() + Duration::from_secs(120);
    while raw.command(&["PING"]).unwrap() != "+PONG\r\n" {
        assert!(Instant::now() < deadline, "still loading");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(raw.command(&["DBSIZE"]).unwrap(), format!(":{KEYS}\r\n"));
    let (peak, resident) = settled_peak_and_resident(shoal.pid());
    // Reading every key before installing any peaked at 1.7x.
    assert!((peak as f64) < 1.3 * resident as f64, "the load peaked at {peak} kB for {resident} kB resident after it");
    drop(shoal);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `redis-cli --rdb` takes a snapshot of every core over the wire (REPLCONF rdb-only, then
/// SYNC): the file passes `redis-check-rdb` and redis-server loads the same contents; REPLCONF
/// answers as Redis does.
#[test]
fn redis_cli_rdb_fetches_a_snapshot_that_redis_loads() {
    if !need("redis-cli") {
        return;
    }
    let server = Server::start(THREADS, &[]);
    fill(&server);
    let dir = Server::scratch("cli-rdb");
    let path = dir.join("fetched.rdb");
    let output = Command::new("redis-cli").args(["-p", &server.port.to_string(), "--rdb"]).arg(&path).output().expect("run redis-cli");
    let text = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success() && text.contains("Transfer finished with success"), "{text}");
    check_rdb(&path);
    if let Some(redis) = Server::start_redis_in(&dir, &["--dbfilename", "fetched.rdb"]) {
        assert_same(&contents(&redis), &contents(&server), "redis-server loading what redis-cli --rdb fetched");
    }
    // The connection goes on serving.
    let mut raw = server.raw();
    assert_eq!(raw.command(&["PING"]).unwrap(), "+PONG\r\n");
    // --functions-rdb: the libraries alone (REPLCONF rdb-filter-only functions).
    let library = "#!lua name=cli\nredis.register_function('answer', function() return 42 end)";
    assert_eq!(raw.command(&["FUNCTION", "LOAD", library]).unwrap(), "$3\r\ncli\r\n");
    let functions = dir.join("functions.rdb");
    let output = Command::new("redis-cli").args(["-p", &server.port.to_string(), "--functions-rdb"]).arg(&functions).output().expect("run redis-cli");
    let text = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success() && text.contains("Transfer finished with success"), "{text}");
    check_rdb(&functions);
    if let Some(redis) = Server::start_redis_in(&dir, &["--dbfilename", "functions.rdb"]) {
        let mut redis_raw = redis.raw();
        assert_eq!(redis_raw.command(&["DBSIZE"]).unwrap(), ":0\r\n", "no keys in it");
        assert_eq!(redis_raw.command(&["FCALL", "answer", "0"]).unwrap(), ":42\r\n");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn replconf_answers_as_redis_does() {
    shoal_tests::assert_replies_like_redis(
        &[],
        &[],
        &[
            &["REPLCONF", "foo"],
            &["REPLCONF", "foo", "bar"],
            &["REPLCONF", "rdb-only", "2"],
            &["REPLCONF", "rdb-only", "x"],
            &["REPLCONF", "rdb-only", "0"],
            &["REPLCONF", "listening-port", "abc"],
            &["REPLCONF", "listening-port", "6380", "capa", "eof", "capa", "psync2"],
            &["REPLCONF", "rdb-filter-only", "keys"],
            &["REPLCONF", "rdb-filter-only", "functions"],
        ],
    );
}
