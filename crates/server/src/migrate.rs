//! MIGRATE host port key|"" destination-db timeout [COPY] [REPLACE] [AUTH password |
//! AUTH2 username password] [KEYS key ...]: moves keys to another server (Redis or Shoal)
//! as Redis's `migrateCommand` does, with DUMP here and RESTORE there.
//!
//! The keys are held (exclusive locks, as an EXEC holds them) from the DUMP until they are
//! deleted here: no client sees one both here and there, or changes one in between, as
//! none can while Redis blocks on a MIGRATE. Other keys and cores go on meanwhile. The
//! target gets one pipeline: AUTH when asked, SELECT, then one RESTORE per key (with the
//! time to live left, and REPLACE when asked); each key it accepted is deleted here
//! (unless COPY), and the deletions are logged and replicated as one DEL, as Redis
//! propagates them. A connection is made per MIGRATE (Redis keeps one open for ten
//! seconds: a speed difference only).

use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::future::{select, Either};
use futures::{AsyncReadExt, AsyncWriteExt};
use shoal_commands::dispatch::{self, Route};
use shoal_commands::{args, errors};
use shoal_resp::Frame;
use shoal_runtime::transaction::{Logged, Planned};

use crate::connection::Conn;
use crate::node::Node;

/// What the request asks for, once parsed.
struct Request {
    host: String,
    port: u16,
    db: i64,
    timeout: Duration,
    copy: bool,
    replace: bool,
    /// `AUTH password` or `AUTH2 username password`.
    auth: Option<(Option<Bytes>, Bytes)>,
    keys: Vec<Bytes>,
}

fn parse(request: &[Bytes]) -> Result<Request, Frame> {
    let (mut copy, mut replace, mut auth) = (false, false, None);
    let (mut first_key, mut key_count) = (3, 1);
    let mut j = 6;
    while j < request.len() {
        let more = request.len() - 1 - j;
        let option = &request[j];
        if option.eq_ignore_ascii_case(b"copy") {
            copy = true;
        } else if option.eq_ignore_ascii_case(b"replace") {
            replace = true;
        } else if option.eq_ignore_ascii_case(b"auth") {
            if more < 1 {
                return Err(errors::syntax());
            }
            auth = Some((None, request[j + 1].clone()));
            j += 1;
        } else if option.eq_ignore_ascii_case(b"auth2") {
            if more < 2 {
                return Err(errors::syntax());
            }
            auth = Some((Some(request[j + 1].clone()), request[j + 2].clone()));
            j += 2;
        } else if option.eq_ignore_ascii_case(b"keys") {
            if !request[3].is_empty() {
                return Err(errors::error("ERR When using MIGRATE KEYS option, the key argument must be set to the empty string"));
            }
            first_key = j + 1;
            key_count = request.len() - j - 1;
            break;
        } else {
            return Err(errors::syntax());
        }
        j += 1;
    }
    // Redis reads the timeout, then the database.
    let timeout = args::parse_i64(&request[5])?;
    let db = args::parse_i64(&request[4])?;
    let timeout = Duration::from_millis(if timeout <= 0 { 1000 } else { timeout as u64 });
    // An unusable port fails at the connection, as Redis's `atoi` does.
    let port = std::str::from_utf8(&request[2]).ok().and_then(|p| p.parse::<u16>().ok()).unwrap_or(0);
    Ok(Request {
        host: String::from_utf8_lossy(&request[1]).into_owned(),
        port,
        db,
        timeout,
        copy,
        replace,
        auth,
        keys: request[first_key..first_key + key_count].to_vec(),
    })
}

/// Runs MIGRATE for `conn` (in its database), holding its keys while it runs.
pub async fn migrate(node: &Rc<Node>, conn: &Conn, request: &[Bytes]) -> Frame {
    // Every key locked for writing, as one DEL over them would be.
    let mut del = vec![Bytes::from_static(b"DEL")];
    del.extend(migrate_keys(request));
    let Ok(resolved) = dispatch::resolve(&del, node.core.shard_count) else {
        // No key named: nothing to hold.
        let mut tx = node.core.begin([], &[]).await;
        let (reply, writes) = migrate_in(node, conn, &mut tx, request).await;
        tx.end_logged(writes).await;
        return reply;
    };
    let plan = [Planned { db: conn.db, spec: resolved.spec, route: &resolved.route, args: &del }];
    let mut tx = node.core.begin(plan, &[]).await;
    let (reply, writes) = migrate_in(node, conn, &mut tx, request).await;
    tx.end_logged(writes).await;
    reply
}

/// The keys a MIGRATE request names (see the command table's `migrate_keys`).
fn migrate_keys(request: &[Bytes]) -> impl Iterator<Item = Bytes> + '_ {
    let spec = shoal_commands::table::lookup(b"migrate").expect("MIGRATE is in the table");
    let positions = spec.movable_keys.map_or_else(Vec::new, |keys| keys(request));
    positions.into_iter().map(|at| request[at].clone())
}

/// MIGRATE under `tx`, which holds its keys (its own, or the EXEC's it runs in): the reply,
/// and the writes to log with the transaction (the DEL of the keys that moved).
pub async fn migrate_in(node: &Rc<Node>, conn: &Conn, tx: &mut shoal_runtime::transaction::Transaction, request: &[Bytes]) -> (Frame, Vec<Logged>) {
    let request = match parse(request) {
        Ok(request) => request,
        Err(error) => return (error, Vec::new()),
    };
    if request.keys.is_empty() {
        return (Frame::Simple(Bytes::from_static(b"NOKEY")), Vec::new());
    }
    let shards = node.core.shard_count;
    // What there is to send: each present key's payload and time to live.
    let mut reads = Vec::new();
    for key in &request.keys {
        for name in [&b"DUMP"[..], b"PTTL"] {
            let read = vec![Bytes::copy_from_slice(name), key.clone()];
            let Ok(resolved) = dispatch::resolve(&read, shards) else { continue };
            reads.push((resolved.spec, resolved.route, read));
        }
    }
    let replies = tx.run_single(conn.db, conn.proto, reads, false).await;
    let mut found = Vec::new();
    for (key, pair) in request.keys.iter().zip(replies.chunks(2)) {
        match pair {
            [Frame::Bulk(payload), Frame::Integer(ttl)] => found.push((key.clone(), payload.clone(), *ttl)),
            _ => continue,
        }
    }
    if found.is_empty() {
        return (Frame::Simple(Bytes::from_static(b"NOKEY")), Vec::new());
    }
    let outcome = send(&request, &found).await;
    let (moved, reply) = match outcome {
        Ok((moved, error)) => (moved, error.unwrap_or_else(args::ok)),
        Err(error) => (Vec::new(), error),
    };
    // The keys the target took leave here (unless COPY), logged as one DEL.
    let mut writes = Vec::new();
    if !request.copy && !moved.is_empty() {
        let mut del = vec![Bytes::from_static(b"DEL")];
        del.extend(moved);
        if let Ok(resolved) = dispatch::resolve(&del, shards) {
            let reply = match resolved.route {
                Route::Single(_) => tx.run_single(conn.db, conn.proto, vec![(resolved.spec, resolved.route, del.clone())], false).await.remove(0),
                route => tx.run(conn.db, conn.proto, resolved.spec, route, del.clone()).await,
            };
            writes.push(Logged::Command { db: conn.db, spec: resolved.spec, args: del, reply });
        }
    }
    (reply, writes)
}

/// Sends the keys to the target and reads its answers: the keys it took, and the error to
/// answer with when it refused something (`Err`: the connection failed).
async fn send(request: &Request, found: &[(Bytes, Bytes, i64)]) -> Result<(Vec<Bytes>, Option<Frame>), Frame> {
    let io_error = |what: &str| errors::error(&format!("IOERR error or timeout {what} to target instance"));
    let timeout = request.timeout;
    let connect = glommio::net::TcpStream::connect_timeout(format!("{}:{}", request.host, request.port), timeout);
    let mut stream = connect.await.map_err(|_| errors::error("IOERR error or timeout connecting to the client"))?;
    let _ = stream.set_nodelay(true);
    let mut out = BytesMut::new();
    let mut expected = Vec::new();
    if let Some((user, password)) = &request.auth {
        match user {
            Some(user) => shoal_resp::encode_request(&[&b"AUTH"[..], user, password], &mut out),
            None => shoal_resp::encode_request(&[&b"AUTH"[..], password], &mut out),
        }
        expected.push(None);
    }
    shoal_resp::encode_request(&[&b"SELECT"[..], request.db.to_string().as_bytes()], &mut out);
    expected.push(None);
    for (key, payload, ttl) in found {
        // No expiry: 0; one due now: the least there is, as Redis sends it.
        let ttl = if *ttl < 0 { 0 } else { (*ttl).max(1) };
        let ttl = ttl.to_string();
        // In cluster mode the target may be importing the slot: RESTORE-ASKING, as Redis sends.
        let name: &[u8] = if crate::cluster::enabled() { b"RESTORE-ASKING" } else { b"RESTORE" };
        let mut restore: Vec<&[u8]> = vec![name, key, ttl.as_bytes(), payload];
        if request.replace {
            restore.push(b"REPLACE");
        }
        shoal_resp::encode_request(&restore, &mut out);
        expected.push(Some(key.clone()));
    }
    match select(std::pin::pin!(stream.write_all(&out)), std::pin::pin!(glommio::timer::sleep(timeout))).await {
        Either::Left((Ok(()), _)) => {}
        _ => return Err(io_error("writing")),
    }
    let mut input = BytesMut::new();
    let mut moved = Vec::new();
    // The first refusal is the answer; after a refused AUTH or SELECT no key counts as
    // moved (Redis reads each RESTORE's answer together with theirs).
    let mut refused = None;
    let mut setup_refused = false;
    for key in expected {
        let line = match select(std::pin::pin!(read_line(&mut stream, &mut input)), std::pin::pin!(glommio::timer::sleep(timeout))).await {
            Either::Left((Ok(line), _)) => line,
            _ if refused.is_some() => break,
            _ => return Err(io_error("reading")),
        };
        if let Some(error) = line.strip_prefix('-') {
            setup_refused |= key.is_none();
            refused.get_or_insert_with(|| errors::error(&format!("ERR Target instance replied with error: {error}")));
        } else if let Some(key) = key.filter(|_| !setup_refused) {
            moved.push(key);
        }
    }
    Ok((moved, refused))
}

/// One reply line (the target's replies to AUTH, SELECT and RESTORE are all one line).
async fn read_line(stream: &mut glommio::net::TcpStream, input: &mut BytesMut) -> std::io::Result<String> {
    loop {
        if let Some(at) = input.windows(2).position(|w| w == b"\r\n") {
            let line = input.split_to(at + 2);
            return Ok(String::from_utf8_lossy(&line[..at]).into_owned());
        }
        let mut chunk = [0u8; 1024];
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        input.extend_from_slice(&chunk[..read]);
    }
}
