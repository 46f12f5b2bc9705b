//! `shoal-loadgen`: the command line around [`shoal_loadgen::driver::run`]. Prints one line
//! of results (or CSV with `--csv`). Exit status: 0 on success; 3 when the server answered a
//! command with an error (it rejected or does not support the workload); 2 for bad arguments
//! (clap's usage errors); 1 for anything else (I/O, protocol errors, replies of the wrong shape).

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use shoal_loadgen::driver::{self, Config, Limit, RunError, CLIENTS_MAX, PIPELINE_MAX};
use shoal_loadgen::workload::{Generator, Settings, Workload, INCR_SCRIPT};

/// Load generator for transactions and scripts against Redis or shoal-server.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Server host.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Server port.
    #[arg(short, long, default_value_t = 6379)]
    port: u16,
    /// What each unit sends.
    #[arg(short, long, value_enum)]
    workload: Workload,
    /// Connections, all driven by this one thread.
    #[arg(short, long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=CLIENTS_MAX as u64))]
    clients: u64,
    /// Total units to run (ignored with --seconds).
    #[arg(short = 'n', long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    requests: u64,
    /// Run for this many seconds instead of a number of units.
    #[arg(long)]
    seconds: Option<f64>,
    /// Units each connection writes at once and keeps in flight.
    #[arg(short = 'P', long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=PIPELINE_MAX as u64))]
    pipeline: u64,
    /// Random keys are drawn from 0..N (redis-benchmark's -r); transaction tags too.
    #[arg(short = 'r', long = "keyspace", default_value_t = 100_000)]
    key_range: u64,
    /// Bytes in each SET value.
    #[arg(short = 'd', long = "data-size", default_value_t = 64)]
    value_size: usize,
    /// Share of `mixed` units that are multi-incr5 transactions, in percent.
    #[arg(long, default_value_t = 10.0)]
    tx_percent: f64,
    /// Spread each transaction's five keys over this many cores (shoal's --threads).
    #[arg(long, default_value_t = 4)]
    tx_cores: usize,
    /// Put all five keys of each transaction on one core (of --tx-cores), as hash-tagged
    /// keys would be, instead of spreading them.
    #[arg(long)]
    tx_one_core: bool,
    /// Poll the sockets without ever sleeping (one CPU spins): the server then never pays
    /// for waking the client, which isolates its own cost per request.
    #[arg(long)]
    busy_poll: bool,
    /// Client-side caching: every connection turns CLIENT TRACKING on, its invalidations
    /// redirected to one subscribed connection that a thread drains, so the server
    /// remembers every key read and tells of every write.
    #[arg(long)]
    tracking: bool,
    /// Seed of the key choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print a CSV header and one row instead of a sentence.
    #[arg(long)]
    csv: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("shoal-loadgen: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Run(error)) => {
            eprintln!("shoal-loadgen: {}: {error}", workload_name(args.workload));
            ExitCode::from(if matches!(error, RunError::Server { .. }) { 3 } else { 1 })
        }
    }
}

enum Failure {
    Usage(String),
    Run(RunError),
}

fn run(args: &Args) -> Result<(), Failure> {
    let addr: SocketAddr = (args.host.as_str(), args.port)
        .to_socket_addrs()
        .map_err(|error| Failure::Usage(format!("{}:{}: {error}", args.host, args.port)))?
        .next()
        .ok_or_else(|| Failure::Usage(format!("{}:{} has no address", args.host, args.port)))?;
    let limit = match args.seconds {
        Some(seconds) if seconds > 0.0 && seconds.is_finite() => Limit::Duration(Duration::from_secs_f64(seconds)),
        Some(seconds) => return Err(Failure::Usage(format!("--seconds {seconds} must be positive"))),
        None => Limit::Units(args.requests),
    };
    let settings = Settings {
        workload: args.workload,
        key_range: args.key_range,
        value_size: args.value_size,
        tx_percent: args.tx_percent,
        tx_cores: args.tx_cores,
        tx_one_core: args.tx_one_core,
        seed: args.seed,
    };
    let mut generator = Generator::new(&settings).map_err(Failure::Usage)?;
    if args.workload == Workload::Evalsha {
        let sha = driver::command_once(addr, &[b"SCRIPT", b"LOAD", INCR_SCRIPT.as_bytes()]).map_err(Failure::Run)?;
        generator.set_script_sha(String::from_utf8_lossy(&sha).into_owned());
    }
    let tracking_redirect = if args.tracking { Some(driver::tracking_sink(addr).map_err(Failure::Run)?) } else { None };
    let config = Config { addr, clients: args.clients as usize, pipeline: args.pipeline as usize, limit, busy_poll: args.busy_poll, tracking_redirect };
    let report = driver::run(&config, &mut generator).map_err(Failure::Run)?;
    let name = workload_name(args.workload);
    let (p50, p99) = (report.latency_ms_at(0.50), report.latency_ms_at(0.99));
    if args.csv {
        println!("workload,units_per_sec,p50_ms,p99_ms,units,tx_units,seconds,clients,pipeline");
        println!(
            "{name},{:.2},{p50:.3},{p99:.3},{},{},{:.6},{},{}",
            report.units_per_sec(),
            report.units,
            report.tx_units,
            report.elapsed.as_secs_f64(),
            args.clients,
            args.pipeline
        );
    } else {
        println!(
            "{name}: {:.2} units/s, p50 {p50:.3} ms, p99 {p99:.3} ms ({} units, {} transactions, in {:.3} s; {} clients, pipeline {})",
            report.units_per_sec(),
            report.units,
            report.tx_units,
            report.elapsed.as_secs_f64(),
            args.clients,
            args.pipeline
        );
    }
    Ok(())
}

fn workload_name(workload: Workload) -> &'static str {
    match workload {
        Workload::MultiIncr5 => "multi-incr5",
        Workload::Evalsha => "evalsha",
        Workload::Mixed => "mixed",
        Workload::Get => "get",
        Workload::Set => "set",
    }
}
