//! SYNC, PSYNC and REPLCONF. A client that says `REPLCONF rdb-only 1` (`redis-cli --rdb`)
//! gets a snapshot of every core as an RDB file, sent as Redis sends one to a replica
//! (`$<length>` and the bytes), and the connection closes; any other SYNC or PSYNC comes
//! from a replica, served by `crate::replication`.

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
#[derive(Clone, Debug, Default)]
pub struct ReplConf {
    /// `rdb-only 1`: the snapshot, without a replication stream.
    pub rdb_only: bool,
    /// `rdb-filter-only`: a snapshot without keys; with `functions`, the libraries in it.
    pub filtered: bool,
    pub filter_functions: bool,
    /// `listening-port`: where a replica listens (INFO, ROLE).
    pub listening_port: u16,
    /// `capa eof`: the replica takes a snapshot streamed without a length (diskless).
    pub capa_eof: bool,
    /// `ip-address`: the address a replica announces (`replica-announce-ip`), shown for it
    /// in INFO and ROLE instead of the connection's.
    pub ip_address: Option<String>,
}

/// REPLCONF option value ...: `None` for the options Redis answers nothing to (ACK, GETACK).
pub fn replconf(conn: &mut Conn, args: &[Bytes]) -> Option<Frame> {
    if args.len().is_multiple_of(2) {
        return Some(errors::syntax());
    }
    for pair in args[1..].chunks(2) {
        let (option, value) = (&pair[0], &pair[1]);
        if is(option, "listening-port") {
            match args::parse_i64(value) {
                Ok(port) => conn.replconf.listening_port = u16::try_from(port).unwrap_or(0),
                Err(error) => return Some(error),
            }
        } else if is(option, "capa") {
            // Capabilities Shoal does not know are ignored, as Redis ignores them.
            if value.eq_ignore_ascii_case(b"eof") {
                conn.replconf.capa_eof = true;
            }
        } else if is(option, "ip-address") {
            conn.replconf.ip_address = Some(String::from_utf8_lossy(value).into_owned());
        } else if is(option, "ack") || is(option, "getack") {
            return None;
        } else if is(option, "rdb-only") {
            match args::parse_i64(value) {
                Ok(n @ 0..=1) => conn.replconf.rdb_only = n == 1,
                Ok(_) => return Some(errors::error("ERR value is out of range, value must between 0 and 1")),
                Err(error) => return Some(error),
            }
        } else if is(option, "rdb-filter-only") {
            // Redis knows one filter, `functions`; none at all leaves an empty file.
            let value = String::from_utf8_lossy(value);
            if let Some(other) = value.split_whitespace().find(|filter| !filter.eq_ignore_ascii_case("functions")) {
                return Some(errors::error(&format!("ERR Unsupported rdb-filter-only option: {other}")));
            }
            conn.replconf.filtered = true;
            conn.replconf.filter_functions = value.split_whitespace().next().is_some();
        } else {
            return Some(errors::error(&format!("ERR Unrecognized REPLCONF option: {}", String::from_utf8_lossy(option))));
        }
    }
    Some(args::ok())
}

/// SYNC or PSYNC: the refusal (the connection goes on), or `None` once the file was sent
/// (the connection closes, as Redis closes an rdb-only replica's) or the replica is gone.
pub async fn sync(node: &Rc<Node>, socket: &mut Socket, conn: &Conn, args: &[Bytes]) -> std::io::Result<Option<Frame>> {
    let psync = args[0].eq_ignore_ascii_case(b"psync");
    // An old master in a FAILOVER asks its replica to take over with its replication id,
    // which the replica follows (Redis's `PSYNC <replid> <offset> FAILOVER`).
    if psync && args.len() > 3 && args[3].eq_ignore_ascii_case(b"failover") {
        if args[1] != crate::replication::own_history().0.as_bytes() {
            return Ok(Some(errors::error("ERR PSYNC FAILOVER replid must match my replid.")));
        }
        if crate::replica::is_replica() {
            crate::replica::stop_following(node).await;
            tracing::info!("MASTER MODE enabled (failover request from 'id={} addr={}')", conn.client.id, conn.client.addr);
        }
    }
    if crate::replication::failing_over() {
        return Ok(Some(errors::error("NOMASTERLINK Can't SYNC while failing over")));
    }
    if !conn.replconf.rdb_only {
        // A replica serves replicas of its own while its link streams, as Redis's.
        if crate::replica::is_replica() && !crate::replica::streaming() {
            return Ok(Some(errors::error("NOMASTERLINK Can't SYNC while not connected with my master")));
        }
        crate::replication::serve(node, socket, conn, args).await?;
        return Ok(None);
    }
    if conn.replconf.filtered {
        // No keys: nothing to snapshot, the file is made here.
        let bytes = match crate::save::filtered_rdb(node, conn.replconf.filter_functions) {
            Ok(bytes) => bytes,
            Err(e) => return Ok(Some(errors::error(&format!("ERR the RDB file for SYNC failed: {e}")))),
        };
        if psync {
            socket.write_all(format!("+FULLRESYNC {} 0\r\n", crate::info::ids().1).as_bytes()).await?;
        }
        socket.write_all(format!("${}\r\n", bytes.len()).as_bytes()).await?;
        socket.write_all(&bytes).await?;
        return Ok(None);
    }
    let path = match crate::save::snapshot_for_transfer(node).await {
        Ok(path) => path,
        Err(e) => {
            tracing::warn!("SYNC: the snapshot failed: {e}");
            return Ok(Some(errors::error("ERR the snapshot for SYNC failed, check the server log")));
        }
    };
    if psync {
        // Not a replica: the offset does not matter, as with Redis's rdb-only replicas.
        socket.write_all(format!("+FULLRESYNC {} 0\r\n", crate::info::ids().1).as_bytes()).await?;
    }
    let sent = send_file(socket, &path).await;
    let _ = std::fs::remove_file(&path);
    sent.map(|()| None)
}

/// Sends the file as Redis sends a replica its RDB: `$<length>\r\n` and the bytes, without
/// a trailing CRLF.
pub async fn send_file(socket: &mut Socket, path: &str) -> std::io::Result<()> {
    let mut file = std::fs::File::open(path)?;
    let length = file.metadata()?.len();
    socket.write_all(format!("${length}\r\n").as_bytes()).await?;
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
