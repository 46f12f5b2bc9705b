//! `supervised systemd|upstart|auto`: telling the service manager that the server is ready
//! (its data loaded, every core accepting) and that it is stopping, as Redis does.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

use shoal_config::Config;

/// The server is ready: systemd gets `READY=1`, upstart a SIGSTOP of this process.
pub fn ready(config: &Config) {
    match mode(config) {
        Mode::Systemd => notify("STATUS=Ready to accept connections\nREADY=1\n"),
        Mode::Upstart => {
            tracing::info!("supervised by upstart, will stop to signal readiness.");
            // SAFETY: raise only sends a signal to this process.
            unsafe { libc::raise(libc::SIGSTOP) };
        }
        Mode::None => {}
    }
}

/// The server is shutting down: systemd gets `STOPPING=1`.
pub fn stopping(config: &Config) {
    if mode(config) == Mode::Systemd {
        notify("STOPPING=1\n");
    }
}

#[derive(PartialEq, Eq)]
enum Mode {
    None,
    Systemd,
    Upstart,
}

/// Redis's rules: `auto` is systemd when $NOTIFY_SOCKET is set, upstart when $UPSTART_JOB
/// is; `upstart` needs $UPSTART_JOB too.
fn mode(config: &Config) -> Mode {
    let systemd = std::env::var_os("NOTIFY_SOCKET").is_some();
    let upstart = std::env::var_os("UPSTART_JOB").is_some();
    match config.compat_value("supervised") {
        "systemd" => Mode::Systemd,
        "upstart" if upstart => Mode::Upstart,
        "auto" if systemd => Mode::Systemd,
        "auto" if upstart => Mode::Upstart,
        _ => Mode::None,
    }
}

/// Sends `message` to $NOTIFY_SOCKET (a path, or `@name` in the abstract namespace).
fn notify(message: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        tracing::warn!("systemd supervision requested or auto-detected, but NOTIFY_SOCKET not found!");
        return;
    };
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
    let address = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name),
        None => SocketAddr::from_pathname(&path),
    };
    let sent = address.and_then(|address| UnixDatagram::unbound()?.send_to_addr(message.as_bytes(), &address));
    if let Err(e) = sent {
        tracing::warn!("Can't send notification to systemd: {e}");
    }
}
