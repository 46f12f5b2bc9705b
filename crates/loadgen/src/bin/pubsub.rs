//! shoal-pubsub-load: publishers and subscribers against one server (see
//! `shoal_loadgen::pubsub`); prints the published and delivered message rates and the
//! delivery latency.

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use shoal_loadgen::pubsub::{run, PubsubConfig};

/// Pub/Sub load: `--publishers` connections PUBLISH (pipelined) to `--channels` channels while
/// `--subscribers` connections read them.
#[derive(Parser, Debug)]
#[command(name = "shoal-pubsub-load", version)]
struct Args {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(short, long, default_value_t = 6379)]
    port: u16,
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    publishers: u64,
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    subscribers: u64,
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    channels: u64,
    /// PUBLISH commands in flight per publisher.
    #[arg(short = 'P', long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pipeline: u64,
    /// Payload bytes (at least 20: the send time).
    #[arg(short = 'd', long = "data-size", default_value_t = 64, value_parser = clap::value_parser!(u64).range(20..=1_000_000))]
    data_size: u64,
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Print a CSV header and one row instead of a sentence.
    #[arg(long)]
    csv: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let Some(addr) = (args.host.as_str(), args.port).to_socket_addrs().ok().and_then(|mut a| a.next()) else {
        eprintln!("shoal-pubsub-load: {}:{} has no address", args.host, args.port);
        return ExitCode::from(2);
    };
    let addr: SocketAddr = addr;
    if !(args.seconds > 0.0 && args.seconds.is_finite() && args.warmup >= 0.0 && args.warmup.is_finite()) {
        eprintln!("shoal-pubsub-load: --seconds must be positive and --warmup not negative");
        return ExitCode::from(2);
    }
    let config = PubsubConfig {
        addr,
        publishers: args.publishers as usize,
        subscribers: args.subscribers as usize,
        channels: args.channels as usize,
        pipeline: args.pipeline as usize,
        payload_size: args.data_size as usize,
        warmup: Duration::from_secs_f64(args.warmup),
        duration: Duration::from_secs_f64(args.seconds),
    };
    let report = match run(&config) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("shoal-pubsub-load: {error}");
            return ExitCode::from(1);
        }
    };
    let (p50, p99) = (report.latency_ms_at(0.50), report.latency_ms_at(0.99));
    if args.csv {
        println!("published_per_sec,delivered_per_sec,p50_ms,p99_ms,published,receivers,delivered,seconds");
        println!(
            "{:.2},{:.2},{p50:.3},{p99:.3},{},{},{},{:.3}",
            report.published_per_sec(),
            report.delivered_per_sec(),
            report.published,
            report.receivers,
            report.delivered,
            report.window.as_secs_f64()
        );
    } else {
        println!(
            "{:.0} published/s, {:.0} delivered/s, latency p50 {p50:.3} ms, p99 {p99:.3} ms ({} published to {} receivers, {} delivered in {:.1} s)",
            report.published_per_sec(),
            report.delivered_per_sec(),
            report.published,
            report.receivers,
            report.delivered,
            report.window.as_secs_f64()
        );
    }
    ExitCode::SUCCESS
}
