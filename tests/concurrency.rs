//! Atomicity of multi-key commands whose keys live on different cores, under contention from
//! many clients: MSET and MGET never see half a write, RENAME never shows a key in both places
//! or in neither, MSETNX sets all of its keys or none.
//!
//! Each test runs for a bounded time and a bounded number of operations, and asserts that the
//! contention it needs really happened (enough versions seen, enough renames done), so a
//! slow machine fails loudly instead of passing without testing anything.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use shoal_testkit::{key_core, keys_on_distinct_cores, Server};
use shoal_tests::connect;

const THREADS: usize = 4;
/// How long the timed tests keep their writers going.
const RUN_FOR: Duration = Duration::from_secs(2);

/// How many cores of a `threads`-core server `keys` live on.
fn distinct_cores(keys: &[String], threads: usize) -> usize {
    keys.iter().map(|k| key_core(k.as_bytes(), threads)).collect::<HashSet<_>>().len()
}

#[test]
fn mget_never_sees_half_of_an_mset_across_cores() {
    mset_and_mget_over(THREADS, 4);
}

/// With two cores, each MSET and MGET is over the connection's core and one other: the path
/// that runs the other core's part with its lock in one message (`runtime::pair`).
#[test]
fn mget_never_sees_half_of_an_mset_over_two_cores() {
    mset_and_mget_over(2, 2);
}

fn mset_and_mget_over(threads: usize, cores: usize) {
    let server = Server::start(threads, &[]);
    let keys = Arc::new(keys_on_distinct_cores("group", cores, threads));
    assert_eq!(distinct_cores(&keys, threads), cores, "the group's keys live on {cores} cores");
    let mut setup = connect(&server);
    redis::cmd("MSET").arg(keys.iter().flat_map(|k| [k.as_str(), "initial"]).collect::<Vec<_>>()).query::<()>(&mut setup).unwrap();

    let deadline = Instant::now() + RUN_FOR;
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|writer| {
            let (mut connection, keys) = (connect(&server), keys.clone());
            std::thread::spawn(move || {
                let mut writes = 0u64;
                while writes < 50_000 && Instant::now() < deadline {
                    let version = format!("w{writer}:{writes}");
                    let args: Vec<&str> = keys.iter().flat_map(|k| [k.as_str(), version.as_str()]).collect();
                    redis::cmd("MSET").arg(args).query::<()>(&mut connection).unwrap();
                    writes += 1;
                }
                writes
            })
        })
        .collect();
    let readers: Vec<_> = (0..3)
        .map(|reader| {
            let (mut connection, keys, stop) = (connect(&server), keys.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut versions = HashSet::new();
                // The last counter this reader saw from each writer: a linearizable store
                // never shows an older write after a newer one of the same writer.
                let mut latest: HashMap<String, u64> = HashMap::new();
                while !stop.load(Ordering::SeqCst) {
                    let values: Vec<Option<String>> = redis::cmd("MGET").arg(&*keys).query(&mut connection).unwrap();
                    let first = values[0].clone().expect("the group's keys always exist");
                    assert!(values.iter().all(|v| v.as_deref() == Some(first.as_str())), "reader {reader} saw half of an MSET: {values:?}");
                    if let Some((writer, counter)) = first.split_once(':') {
                        let counter: u64 = counter.parse().unwrap();
                        let previous = latest.insert(writer.to_string(), counter).unwrap_or(0);
                        assert!(counter >= previous, "reader {reader} saw {writer}'s write {counter} after its write {previous}");
                    }
                    versions.insert(first);
                }
                versions
            })
        })
        .collect();
    let writes: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    stop.store(true, Ordering::SeqCst);
    let mut seen = HashSet::new();
    for reader in readers {
        let versions = reader.join().unwrap();
        assert!(versions.len() > 1, "every reader saw the group change at least once");
        seen.extend(versions);
    }
    assert!(writes >= 100, "the writers managed only {writes} MSETs in {RUN_FOR:?}");
    assert!(seen.len() >= 20, "the readers saw only {} distinct versions of {writes} writes", seen.len());
    eprintln!("{writes} MSETs, {} distinct versions seen by the readers", seen.len());
}

#[test]
fn a_key_renamed_back_and_forth_across_cores_always_exists_exactly_once() {
    let server = Server::start(THREADS, &[]);
    let names = keys_on_distinct_cores("pingpong", 2, THREADS);
    assert_eq!(distinct_cores(&names, THREADS), 2, "the two names live on two cores");
    let (a, b) = (names[0].clone(), names[1].clone());
    let mut setup = connect(&server);
    redis::cmd("SET").arg(&a).arg("payload").query::<()>(&mut setup).unwrap();

    let deadline = Instant::now() + RUN_FOR;
    let stop = Arc::new(AtomicBool::new(false));
    let renamers: Vec<_> = (0..3)
        .map(|_| {
            let (mut connection, a, b) = (connect(&server), a.clone(), b.clone());
            std::thread::spawn(move || {
                let mut renames = 0u64;
                let mut attempts = 0u64;
                while attempts < 50_000 && Instant::now() < deadline {
                    for (from, to) in [(&a, &b), (&b, &a)] {
                        attempts += 1;
                        // Another renamer may have moved the key first: that is the one error
                        // allowed.
                        match redis::cmd("RENAME").arg(from).arg(to).query::<()>(&mut connection) {
                            Ok(()) => renames += 1,
                            Err(e) => assert!(e.to_string().contains("no such key"), "RENAME {from} {to}: {e}"),
                        }
                    }
                }
                renames
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (mut connection, a, b, stop) = (connect(&server), a.clone(), b.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut observations = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let exists: i64 = redis::cmd("EXISTS").arg(&a).arg(&b).query(&mut connection).unwrap();
                    assert_eq!(exists, 1, "EXISTS {a} {b} after {observations} observations");
                    let values: Vec<Option<String>> = redis::cmd("MGET").arg(&a).arg(&b).query(&mut connection).unwrap();
                    let present: Vec<_> = values.iter().flatten().collect();
                    assert_eq!(present, vec!["payload"], "MGET {a} {b} after {observations} observations");
                    observations += 1;
                }
                observations
            })
        })
        .collect();
    let renames: u64 = renamers.into_iter().map(|r| r.join().unwrap()).sum();
    stop.store(true, Ordering::SeqCst);
    let observations: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(renames >= 50, "only {renames} renames succeeded in {RUN_FOR:?}");
    assert!(observations >= 50, "the readers looked only {observations} times");
    let exists: i64 = redis::cmd("EXISTS").arg(&a).arg(&b).query(&mut setup).unwrap();
    assert_eq!(exists, 1, "after the renames, one of {a} and {b} exists");
    eprintln!("{renames} renames, {observations} observations");
}

#[test]
fn msetnx_under_contention_sets_all_of_its_keys_or_none() {
    const WRITERS: usize = 6;
    const ROUNDS: usize = 150;
    let server = Server::start(THREADS, &[]);
    let keys: Vec<String> = (0..WRITERS).map(|i| format!("nx:{i}")).collect();
    assert!(distinct_cores(&keys, THREADS) >= 3, "the keys spread over at least three cores");
    // Writer w's group is keys w, w+1 and w+2 (wrapping): each group overlaps four others.
    let group = |writer: usize| -> Vec<usize> { (0..3).map(|i| (writer + i) % WRITERS).collect() };

    // Each round: every writer sends one MSETNX at once (as near as a barrier allows), then the
    // main thread checks the outcome and clears the keys.
    let start = Arc::new(Barrier::new(WRITERS + 1));
    let done = Arc::new(Barrier::new(WRITERS + 1));
    // A writer reports errors instead of panicking: it must keep meeting the barriers, or the
    // main thread would wait for it forever.
    let (results, outcomes) = std::sync::mpsc::channel::<(usize, usize, redis::RedisResult<i64>)>();
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let mut connection = connect(&server);
            let (start, done, results, keys) = (start.clone(), done.clone(), results.clone(), keys.clone());
            let mine = group(writer);
            std::thread::spawn(move || {
                for round in 0..ROUNDS {
                    start.wait();
                    let value = format!("w{writer}:r{round}");
                    let args: Vec<&str> = mine.iter().flat_map(|&k| [keys[k].as_str(), value.as_str()]).collect();
                    let set = redis::cmd("MSETNX").arg(args).query(&mut connection);
                    results.send((round, writer, set)).unwrap();
                    done.wait();
                }
            })
        })
        .collect();
    let mut checker = connect(&server);
    let mut contested_rounds = 0;
    for round in 0..ROUNDS {
        start.wait();
        done.wait();
        let mut set = [0i64; WRITERS];
        for _ in 0..WRITERS {
            let (r, writer, reply) = outcomes.recv().unwrap();
            assert_eq!(r, round, "results arrive round by round");
            set[writer] = reply.unwrap_or_else(|e| panic!("round {round}: writer {writer}'s MSETNX failed: {e}"));
        }
        let values: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query(&mut checker).unwrap();
        let winners: Vec<usize> = (0..WRITERS).filter(|&w| set[w] == 1).collect();
        assert!(!winners.is_empty(), "round {round}: someone's MSETNX succeeds on empty keys ({set:?})");
        for &w in &winners {
            for k in group(w) {
                assert_eq!(
                    values[k].as_deref(),
                    Some(format!("w{w}:r{round}").as_str()),
                    "round {round}: writer {w} got 1, so all its keys are its own: {values:?}"
                );
            }
        }
        for (k, value) in values.iter().enumerate() {
            if let Some(value) = value {
                let owner: usize = value.trim_start_matches('w').split(':').next().unwrap().parse().unwrap();
                assert!(
                    winners.contains(&owner) && group(owner).contains(&k),
                    "round {round}: key {k} holds {value}, from a writer that got 0 (a partial MSETNX): {set:?}"
                );
            }
        }
        for w in (0..WRITERS).filter(|w| !winners.contains(w)) {
            assert!(group(w).iter().any(|&k| values[k].is_some()), "round {round}: writer {w} got 0 though none of its keys exist: {values:?}");
        }
        if winners.len() < WRITERS {
            contested_rounds += 1;
        }
        let deleted: i64 = redis::cmd("DEL").arg(&keys).query(&mut checker).unwrap();
        assert!(deleted >= 3, "round {round}: DEL removed {deleted} keys");
    }
    for writer in writers {
        writer.join().unwrap();
    }
    // Six overlapping groups cannot all win: every round is contested.
    assert_eq!(contested_rounds, ROUNDS);
    eprintln!("{ROUNDS} rounds of {WRITERS} concurrent MSETNX, every one all or nothing");
}
