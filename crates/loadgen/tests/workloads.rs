//! Runs the real `shoal-loadgen` binary against Debian's redis-server on a free port (skipped
//! when redis-server is missing, unless SHOAL_REQUIRE_ALL=1), and against shoal-server when
//! SHOAL_SERVER_BIN names one, and checks that the server's counters add up to what the load
//! generator says it ran. A fake server checks that an unsupported command ends the run
//! cleanly with exit status 3 and the server's error.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output};

use redis::Commands;
use shoal_testkit::Server;

const UNITS: u64 = 300;

/// One run's CSV row.
#[derive(Debug)]
struct Row {
    units: u64,
    tx_units: u64,
    units_per_sec: f64,
}

fn loadgen(port: u16, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shoal-loadgen"))
        .args(["--port", &port.to_string(), "--csv", "--clients", "7", "--keyspace", "1000"])
        .args(args)
        .output()
        .expect("run shoal-loadgen")
}

fn run_ok(port: u16, args: &[&str]) -> Row {
    let output = loadgen(port, args);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{args:?} failed: {}{stdout}", String::from_utf8_lossy(&output.stderr));
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("workload,units_per_sec,p50_ms,p99_ms,units,tx_units,seconds,clients,pipeline"));
    let fields: Vec<&str> = lines.next().expect("a CSV row").split(',').collect();
    assert_eq!(fields.len(), 9, "{fields:?}");
    Row { units_per_sec: fields[1].parse().unwrap(), units: fields[4].parse().unwrap(), tx_units: fields[5].parse().unwrap() }
}

/// The sum of the integer values of the keys matching `pattern`, and how many keys there are.
fn sum_of(connection: &mut redis::Connection, pattern: &str) -> (i64, usize) {
    let keys: Vec<String> = connection.keys(pattern).unwrap();
    let mut sum = 0;
    for key in &keys {
        let value: i64 = connection.get(key).unwrap();
        sum += value;
    }
    (sum, keys.len())
}

fn flush(connection: &mut redis::Connection) {
    let _: () = redis::cmd("FLUSHALL").query(connection).unwrap();
}

/// Every workload at pipeline 1 and 4: the run reports exactly the units asked for, and the
/// counters INCRed by transactions and scripts add up.
fn check_workloads(server: &Server, scripts: bool) {
    let mut connection = server.client();
    let units = UNITS.to_string();
    for pipeline in ["1", "4"] {
        flush(&mut connection);
        let row = run_ok(server.port, &["--workload", "multi-incr5", "-n", &units, "-P", pipeline]);
        assert_eq!((row.units, row.tx_units), (UNITS, UNITS));
        assert!(row.units_per_sec > 0.0);
        let (sum, _) = sum_of(&mut connection, "tx:*");
        assert_eq!(sum, 5 * UNITS as i64, "five INCRs per transaction at pipeline {pipeline}");

        flush(&mut connection);
        let row = run_ok(server.port, &["--workload", "mixed", "-n", &units, "-P", pipeline, "--tx-percent", "20"]);
        assert_eq!(row.units, UNITS);
        assert!(row.tx_units > 0 && row.tx_units < UNITS, "some units are transactions: {row:?}");
        let (sum, _) = sum_of(&mut connection, "tx:*");
        assert_eq!(sum, 5 * row.tx_units as i64);
        let (_, written) = sum_of(&mut connection, "tx:*");
        let total: usize = redis::cmd("DBSIZE").query(&mut connection).unwrap();
        assert!(total > written, "the mix also SETs plain keys");

        for workload in ["get", "set"] {
            let row = run_ok(server.port, &["--workload", workload, "-n", &units, "-P", pipeline]);
            assert_eq!((row.units, row.tx_units), (UNITS, 0));
        }

        if scripts {
            flush(&mut connection);
            let row = run_ok(server.port, &["--workload", "evalsha", "-n", &units, "-P", pipeline]);
            assert_eq!(row.units, UNITS);
            let (sum, _) = sum_of(&mut connection, "key:*");
            assert_eq!(sum, UNITS as i64, "one INCR per script call at pipeline {pipeline}");
        }
    }
}

#[test]
fn counters_add_up_on_redis() {
    let Some(server) = Server::start_redis() else { return };
    check_workloads(&server, true);
}

#[test]
fn counters_add_up_on_shoal_with_four_threads() {
    if std::env::var_os("SHOAL_SERVER_BIN").is_none() {
        eprintln!("skipping: set SHOAL_SERVER_BIN to a shoal-server binary to run the workloads against it");
        return;
    }
    let server = Server::start(4, &[]);
    // Scripts are checked only where the server supports them.
    let scripts = loadgen(server.port, &["--workload", "evalsha", "-n", "1"]).status.success();
    check_workloads(&server, scripts);
}

#[test]
fn seconds_limit_ends_the_run() {
    let Some(server) = Server::start_redis() else { return };
    let row = run_ok(server.port, &["--workload", "get", "--seconds", "0.2"]);
    assert!(row.units > 0);
}

/// A fake server that answers every read with `reply`; returns its port.
fn fake_server(reply: &'static [u8]) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                while let Ok(read) = stream.read(&mut buffer) {
                    if read == 0 || stream.write_all(reply).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// A server that answers every command with an error, as a server without scripting answers
/// SCRIPT LOAD; returns its port.
fn refusing_server() -> u16 {
    fake_server(b"-ERR unknown command 'SCRIPT', with args beginning with: 'LOAD'\r\n")
}

#[test]
fn an_unsupported_command_exits_3_with_the_server_error() {
    let port = refusing_server();
    let output = loadgen(port, &["--workload", "evalsha", "-n", "10"]);
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("SCRIPT LOAD") && stderr.contains("-ERR unknown command 'SCRIPT'"), "{stderr}");
    assert!(output.stdout.is_empty(), "no results are printed");

    let output = loadgen(port, &["--workload", "multi-incr5", "-n", "10"]);
    assert_eq!(output.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&output.stderr).contains("answered MULTI with an error"));
}

#[test]
fn a_wrong_reply_exits_1_naming_the_command() {
    // Answers every command with +OK: right for SET, wrong for GET.
    let port = fake_server(b"+OK\r\n");
    let output = loadgen(port, &["--workload", "get", "-n", "10"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unexpected reply to GET") && stderr.contains("+OK"), "{stderr}");
}
