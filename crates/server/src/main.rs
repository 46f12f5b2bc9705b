//! `shoal-server`: a Redis-compatible server, thread-per-core.
//!
//! Arguments follow `redis-server`: an optional configuration file, then directives as
//! `--name value ...`. This crate owns the process edge: configuration, logging, signals,
//! listeners and connections. Commands run in `shoal-runtime` and `shoal-commands`.

mod acl_log;
mod admin_cmd;
mod alloc;
mod aof;
mod busy;
mod client;
mod client_cmd;
mod cluster;
mod command_docs;
mod config_cmd;
mod connection;
mod debug_cmd;
mod evict;
mod info;
mod latency_cmd;
mod logging;
mod memory_stats;
mod migrate;
mod multi;
mod node;
mod pause;
mod port_owner;
mod pubsub;
mod rdb_load;
mod replica;
mod replication;
mod save;
mod scripting;
mod server_commands;
mod slowlog_cmd;
mod socket;
mod supervise;
mod sync_cmd;
mod tracking;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use clap::Parser;

/// mimalloc: size classes without a per-allocation header (glibc adds 8 bytes and rounds to 16),
/// and thread-local heaps that suit one thread per core; see `alloc.rs` for how we call it.
#[global_allocator]
static ALLOCATOR: alloc::Allocator = alloc::Allocator;
use shoal_runtime::{LaunchOptions, Shared};

/// A Redis-compatible in-memory data store, thread-per-core.
#[derive(Parser, Debug)]
#[command(
    name = "shoal-server",
    version,
    about,
    override_usage = "shoal-server [/path/to/shoal.conf] [--directive value ...]\n       shoal-server --port 7777 --threads 4\n       shoal-server /etc/shoal.conf --loglevel verbose",
    after_help = "Directives are redis.conf's (port, bind, databases, save, ...) plus `threads` (default: the CPUs this process may run on). With no arguments the server listens on 127.0.0.1:6379 with the embedded defaults."
)]
struct Cli {
    /// A configuration file in redis.conf syntax.
    config: Option<PathBuf>,
    /// Configuration directives, as `--name value ...`.
    #[arg(allow_hyphen_values = true, trailing_var_arg = true)]
    directives: Vec<String>,
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    // clap handles --help and --version; everything else is redis-server's own syntax, which
    // clap cannot express (directive names are not known flags).
    if matches!(argv.get(1).map(String::as_str), Some("-h" | "--help" | "-v" | "--version")) {
        Cli::parse();
        return;
    }
    let (config_path, overrides) = match argv.get(1) {
        Some(first) if !first.starts_with("--") => (Some(PathBuf::from(first)), argv[2..].to_vec()),
        _ => (None, argv.get(1..).unwrap_or_default().to_vec()),
    };
    let config = match shoal_config::load(config_path.as_deref(), &overrides) {
        Ok(config) => config,
        Err(e) => {
            // Redis starts its fatal configuration message with an empty line.
            eprintln!("\n{e}");
            std::process::exit(1);
        }
    };
    // As Redis does for `dir`: the working directory is where files are read and written.
    if !config.dir.is_empty() {
        if let Err(e) = std::env::set_current_dir(&config.dir) {
            eprintln!("Can't chdir to '{}': {e}", config.dir);
            std::process::exit(1);
        }
    }
    logging::init(&config);
    set_transparent_huge_pages_off(config.disable_thp);
    let threads = if config.threads == 0 { shoal_runtime::affinity_cpus().len().max(1) } else { config.threads as usize };
    if let Err(e) = node::probe_bind(&config) {
        tracing::warn!("{e}");
        eprintln!("{e}");
        std::process::exit(1);
    }
    if config.cluster_enabled {
        if let Err(e) = cluster::init(&config) {
            tracing::warn!("{e}");
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
    let shared = Arc::new(Shared::default());
    install_signal_handlers(shared.clone());
    busy::init(threads);
    save::init(threads);
    shoal_runtime::aof::LOG.init(threads);
    memory_stats::note_main_ready();
    let startup = rdb_load::start(&config, threads);
    let options = LaunchOptions { threads, databases: config.databases as usize, settings: node::settings_of(&config) };
    let config = Arc::new(config);
    let result = shoal_runtime::launch(options, shared.clone(), move |core| node::run_core(core, (*config).clone(), startup.clone()));
    if let Err(e) = result {
        tracing::error!("{e}");
        eprintln!("shoal-server: {e}");
        std::process::exit(1);
    }
    tracing::info!("Shoal is now ready to exit, bye bye...");
    std::process::exit(shared.exit_code.load(Ordering::SeqCst) as i32);
}

/// SIGTERM and SIGINT ask for an orderly shutdown; each core's cron notices within a tick.
fn install_signal_handlers(shared: Arc<Shared>) {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = match signal_hook::iterator::Signals::new([SIGTERM, SIGINT]) {
        Ok(signals) => signals,
        Err(e) => {
            tracing::warn!("could not install signal handlers: {e}");
            return;
        }
    };
    std::thread::Builder::new()
        .name("shoal-signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                let name = if signal == SIGINT { "SIGINT" } else { "SIGTERM" };
                tracing::warn!("Received {name} scheduling shutdown...");
                shared.shutdown_by_sigint.store(signal == SIGINT, Ordering::SeqCst);
                shared.shutdown_requested.store(true, Ordering::SeqCst);
            }
        })
        .expect("spawning the signal thread");
}

/// `disable-thp yes` (the default): no transparent huge pages for this process (Redis's
/// `disableTHPForProcess`). The allocator asks for huge pages on its arenas; with them an
/// idle server holds whole 2 MB pages for a few bytes each (measured: 13.1 MB of RSS empty
/// with them, 9.4 MB without).
///
/// The setting only stops faults from then on: pages the allocator touched before it stay
/// huge. So it is turned off before anything allocates, by an ELF constructor (the runtime
/// runs `.init_array` before `main`, and the allocator maps its first arena on the first
/// allocation), and `main` sets it again as configured (on for `disable-thp no`).
#[used]
#[link_section = ".init_array"]
static THP_OFF_BEFORE_MAIN: extern "C" fn() = thp_off_before_main;

extern "C" fn thp_off_before_main() {
    // Nothing may allocate or log here: the allocator and tracing are not ready. An error
    // shows when `main` sets it again, with the configuration known.
    // SAFETY: as in `set_transparent_huge_pages_off`.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

/// Turns transparent huge pages off (or back on) for this process.
fn set_transparent_huge_pages_off(off: bool) {
    // SAFETY: prctl with PR_SET_THP_DISABLE takes plain integer arguments and changes only
    // this process's memory policy.
    let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, off as libc::c_ulong, 0, 0, 0) };
    if rc != 0 {
        tracing::warn!("could not set transparent huge pages {}: {}", if off { "off" } else { "on" }, std::io::Error::last_os_error());
    }
}
