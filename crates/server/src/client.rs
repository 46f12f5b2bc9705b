//! What the server knows about each connected client: the fields CLIENT LIST shows, and the
//! switches other clients flip (CLIENT KILL, the idle timeout).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Instant;

use shoal_runtime::LocalEvent;

use crate::node::Node;

/// A connected client, shared between its connection task and the core's registry.
pub struct ClientInfo {
    pub id: u64,
    pub addr: String,
    pub laddr: String,
    pub fd: i32,
    pub name: RefCell<String>,
    pub lib_name: RefCell<String>,
    pub lib_ver: RefCell<String>,
    pub db: Cell<usize>,
    pub resp: Cell<u8>,
    pub created: Instant,
    pub last_interaction: Cell<Instant>,
    /// The last command's name, as CLIENT LIST's `cmd=` shows it.
    pub last_command: Cell<&'static str>,
    /// Set to make the connection close (CLIENT KILL, idle timeout, shutdown).
    pub kill: LocalEvent,
}

impl ClientInfo {
    pub fn new(id: u64, addr: String, laddr: String, fd: i32) -> Self {
        let now = Instant::now();
        ClientInfo {
            id,
            addr,
            laddr,
            fd,
            name: RefCell::new(String::new()),
            lib_name: RefCell::new(String::new()),
            lib_ver: RefCell::new(String::new()),
            db: Cell::new(0),
            resp: Cell::new(2),
            created: now,
            last_interaction: Cell::new(now),
            last_command: Cell::new("NULL"),
            kill: LocalEvent::default(),
        }
    }

    /// One line of CLIENT LIST / CLIENT INFO, in Redis's field order.
    pub fn describe(&self) -> String {
        let now = Instant::now();
        format!(
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags=N db={} sub=0 psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            self.addr,
            self.laddr,
            self.fd,
            self.name.borrow(),
            now.duration_since(self.created).as_secs(),
            now.duration_since(self.last_interaction.get()).as_secs(),
            self.db.get(),
            self.last_command.get(),
            self.resp.get(),
            self.lib_name.borrow(),
            self.lib_ver.borrow(),
        )
    }
}

/// Closes clients idle for longer than `timeout` seconds (0: never), as Redis's
/// clientsCronHandleTimeout does.
pub fn enforce_idle_timeout(node: &Rc<Node>) {
    let timeout_s = node.config.borrow().timeout as u64;
    if timeout_s == 0 {
        return;
    }
    let now = Instant::now();
    for client in node.clients.borrow().values() {
        if now.duration_since(client.last_interaction.get()).as_secs() > timeout_s {
            tracing::debug!("Closing idle client {}", client.id);
            client.kill.set();
        }
    }
}
