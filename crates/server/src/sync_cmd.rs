//! SYNC, PSYNC and REPLCONF, for `redis-cli --rdb` alone: a client that says
//! `REPLCONF rdb-only 1` gets a snapshot of every core as an RDB file, sent as Redis sends
//! one to a replica (`$<length>` and the bytes), and the connection closes. Shoal does not
//! replicate yet, so any other SYNC or PSYNC is refused: a replica must never believe it is
//! in sync with a master that sends it nothing.

use std::io::Read;
use std::rc::Rc;

use bytes::Bytes;
use shoal_commands::args::{self, is};
use shoal_commands::errors;
use shoal_resp::Frame;

use crate::connection::Conn;
use crate::node::Node;
use crate::socket::Socket;

/// What REPLCONF set on a connection.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReplConf {
    /// `rdb-only 1`: the snapshot, without a replication stream.
    pub rdb_only: bool,
    /// `rdb-filter-only`: a filtered snapshot, which Shoal cannot make.
    pub filtered: bool,
}

/// REPLCONF option value ...: `None` for the options Redis answers nothing to (ACK, GETACK).
pub fn replconf(conn: &mut Conn, args: &[Bytes]) -> Option<Frame> {
    if args.len().is_multiple_of(2) {
        return Some(errors::syntax());
    }
    for pair in args[1..].chunks(2) {
        let (option, value) = (&pair[0], &pair[1]);
        if is(option, "listening-port") {
            if let Err(error) = args::parse_i64(value) {
                return Some(error);
            }
        } else if is(option, "ip-address") || is(option, "capa") {
            // Accepted and ignored, as Redis ignores capabilities it does not know.
        } else if is(option, "ack") || is(option, "getack") {
            return None;
        } else if is(option, "rdb-only") {
            match args::parse_i64(value) {
                Ok(n @ 0..=1) => conn.replconf.rdb_only = n == 1,
                Ok(_) => return Some(errors::error("ERR value is out of range, value must between 0 and 1")),
                Err(error) => return Some(error),
            }
        } else if is(option, "rdb-filter-only") {
            // Redis knows one filter, `functions`; Shoal cannot apply it (SYNC then refuses).
            let value = String::from_utf8_lossy(value);
            if let Some(other) = value.split_whitespace().find(|filter| !filter.eq_ignore_ascii_case("functions")) {
                return Some(errors::error(&format!("ERR Unsupported rdb-filter-only option: {other}")));
            }
            conn.replconf.filtered = true;
        } else {
            return Some(errors::error(&format!("ERR Unrecognized REPLCONF option: {}", String::from_utf8_lossy(option))));
        }
    }
    Some(args::ok())
}

const NOT_A_REPLICA: &str = "ERR Shoal does not replicate yet: SYNC and PSYNC serve only a client that sent REPLCONF rdb-only 1 (redis-cli --rdb)";
const NO_FILTER: &str = "ERR Shoal cannot filter the RDB file it sends (REPLCONF rdb-filter-only)";

/// SYNC or PSYNC: the refusal (the connection goes on), or `None` once the file was sent
/// (the connection closes, as Redis closes an rdb-only replica's).
pub async fn sync(node: &Rc<Node>, socket: &mut Socket, conn: &Conn, psync: bool) -> std::io::Result<Option<Frame>> {
    if !conn.replconf.rdb_only {
        return Ok(Some(errors::error(NOT_A_REPLICA)));
    }
    if conn.replconf.filtered {
        return Ok(Some(errors::error(NO_FILTER)));
    }
    let path = match crate::save::snapshot_for_transfer(node).await {
        Ok(path) => path,
        Err(e) => {
            tracing::warn!("SYNC: the snapshot failed: {e}");
            return Ok(Some(errors::error("ERR the snapshot for SYNC failed, check the server log")));
        }
    };
    let sent = send_file(socket, &path, psync).await;
    let _ = std::fs::remove_file(&path);
    sent.map(|()| None)
}

/// Sends the file as Redis sends a replica its RDB: for PSYNC `+FULLRESYNC <replid> 0`
/// first, then `$<length>\r\n` and the bytes, without a trailing CRLF.
async fn send_file(socket: &mut Socket, path: &str, psync: bool) -> std::io::Result<()> {
    let mut file = std::fs::File::open(path)?;
    let length = file.metadata()?.len();
    let mut header = String::new();
    if psync {
        // No replication history: a fresh 40-character id, as a master that just started.
        use std::hash::{BuildHasher, Hasher};
        let replid: String =
            (0..3).map(|_| format!("{:016x}", std::collections::hash_map::RandomState::new().build_hasher().finish())).collect::<String>()[..40].to_owned();
        header.push_str(&format!("+FULLRESYNC {replid} 0\r\n"));
    }
    header.push_str(&format!("${length}\r\n"));
    socket.write_all(header.as_bytes()).await?;
    // The file was just written: reading it comes from the page cache. A chunk at a time,
    // so memory stays bounded whatever the dataset's size.
    let mut chunk = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        socket.write_all(&chunk[..n]).await?;
    }
}
