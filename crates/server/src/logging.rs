//! Logging through `tracing`, at `loglevel`, to `logfile` or standard output. The level can
//! change at run time (CONFIG SET loglevel) through a reload handle.

use std::sync::OnceLock;

use shoal_config::LogLevel;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Registry;

static LEVEL: OnceLock<reload::Handle<LevelFilter, Registry>> = OnceLock::new();

fn filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Debug | LogLevel::Verbose => LevelFilter::DEBUG,
        LogLevel::Notice => LevelFilter::INFO,
        LogLevel::Warning => LevelFilter::WARN,
        LogLevel::Nothing => LevelFilter::OFF,
    }
}

/// Installs the global subscriber. Exits the process if `logfile` cannot be opened, as Redis
/// does.
pub fn init(config: &shoal_config::Config) {
    let (level, handle) = reload::Layer::new(filter(config.loglevel));
    let _ = LEVEL.set(handle);
    let registry = tracing_subscriber::registry().with(level);
    let layer = tracing_subscriber::fmt::layer().with_target(false).with_thread_names(true);
    if config.logfile.is_empty() {
        registry.with(layer).init();
    } else {
        match std::fs::OpenOptions::new().create(true).append(true).open(&config.logfile) {
            Ok(file) => registry.with(layer.with_ansi(false).with_writer(std::sync::Mutex::new(file))).init(),
            Err(e) => {
                eprintln!("Can't open the log file: {} ({e})", config.logfile);
                std::process::exit(1);
            }
        }
    }
}

/// Changes the level of the running subscriber (CONFIG SET loglevel).
pub fn set_level(level: LogLevel) {
    if let Some(handle) = LEVEL.get() {
        let _ = handle.modify(|filter_now| *filter_now = filter(level));
    }
}
