//! What the append-only log records for a write that ran: the command as sent, or, where
//! replaying it would not give the same result, the command Redis propagates instead.
//!
//! - Relative expiry becomes absolute, so a replay later expires the key at the same moment:
//!   EXPIRE/PEXPIRE/EXPIREAT -> PEXPIREAT, SET and MSETEX EX/PX/EXAT -> PXAT, SETEX/PSETEX -> SET
//!   PXAT, GETEX EX/PX/EXAT/PXAT -> PEXPIREAT (PERSIST stays), RESTORE ttl -> RESTORE ABSTTL.
//!   An expiry command or GETEX whose time had already passed deleted the key: DEL.
//! - Conditions that held are dropped: SET's IFEQ/IFNE/IFDEQ/IFDNE, and DELEX -> DEL.
//! - Results that depend on chance or on float formatting are logged as their outcome:
//!   SPOP -> SREM of the members popped, INCRBYFLOAT -> SET KEEPTTL of the new value,
//!   HINCRBYFLOAT -> HSET of the new value; XADD's `*` or `ms-*` -> the ID it gave.
//! - HIMPORT SET (whose fields are the connection's) -> RESTORE of the hash, as Redis's.
//! - Stream consumer groups: XREADGROUP without BLOCK (and, served after blocking, as one
//!   XREADGROUP `>` of the entries it got); XCLAIM and XAUTOCLAIM as an XCLAIM of the IDs
//!   they claimed (and, XAUTOCLAIM, forgot) with a min-idle-time of 0, since idle times are
//!   different at replay.
//!
//! `now_ms` is the time the command ran at.

use bytes::Bytes;
use shoal_resp::Frame;

use crate::args::is;
use crate::table::CommandSpec;

/// The commands to log for `spec` run with `args` that replied `reply`; None to log `args`
/// unchanged.
pub fn rewrite(spec: &CommandSpec, args: &[Bytes], reply: &Frame, now_ms: u64) -> Option<Vec<Vec<Bytes>>> {
    let absolute = |relative_ms: i128| Bytes::from((now_ms as i128 + relative_ms).to_string());
    let number = |arg: &Bytes| std::str::from_utf8(arg).ok().and_then(|s| s.parse::<i128>().ok());
    match spec.name {
        "expire" | "pexpire" | "expireat" | "pexpireat" => {
            let n = number(&args[2])?;
            let at_ms = match spec.name {
                "expire" => now_ms as i128 + n * 1000,
                "pexpire" => now_ms as i128 + n,
                "expireat" => n * 1000,
                _ => n,
            };
            // An expiry already past deleted the key: DEL, as Redis propagates it. A replica
            // keeps a key its master's expiry command times out until its master's DEL.
            if at_ms <= now_ms as i128 && matches!(reply, Frame::Integer(1)) {
                return Some(vec![vec![Bytes::from_static(b"DEL"), args[1].clone()]]);
            }
            if spec.name == "pexpireat" {
                return None;
            }
            let mut out = vec![Bytes::from_static(b"PEXPIREAT"), args[1].clone(), Bytes::from(at_ms.to_string())];
            out.extend(args[3..].iter().cloned());
            Some(vec![out])
        }
        "setex" | "psetex" => {
            let n = number(&args[2])?;
            let at = if spec.name == "setex" { absolute(n * 1000) } else { absolute(n) };
            Some(vec![vec![Bytes::from_static(b"SET"), args[1].clone(), args[3].clone(), Bytes::from_static(b"PXAT"), at]])
        }
        "set" | "getex" | "msetex" => {
            let mut out = Vec::with_capacity(args.len());
            let mut i = 0;
            let mut changed = false;
            let mut expire_at = None;
            // SET's options start after the value, GETEX's after the key, MSETEX's after
            // its pairs.
            let first_option = match spec.name {
                "set" => 3,
                "getex" => 2,
                _ => crate::strings::msetex_pairs_end(args)?,
            };
            while i < args.len() {
                let arg = &args[i];
                // SET's IFEQ, IFNE, IFDEQ and IFDNE held when it ran: the replay writes as
                // they let it.
                if spec.name == "set" && i >= first_option && i + 1 < args.len() && crate::strings::Comparison::parse(arg, &args[i + 1]).is_some() {
                    changed = true;
                    i += 2;
                    continue;
                }
                let unit = [("ex", 1000i128, false), ("px", 1, false), ("exat", 1000, true), ("pxat", 1, true)].into_iter().find(|(name, _, _)| is(arg, name));
                match unit {
                    Some((_, scale, absolute_form)) if i + 1 < args.len() && i >= first_option => {
                        let n = number(&args[i + 1])?;
                        let at_ms = if absolute_form { n * scale } else { now_ms as i128 + n * scale };
                        expire_at = Some(at_ms);
                        if spec.name != "getex" {
                            out.push(Bytes::from_static(b"PXAT"));
                            out.push(Bytes::from(at_ms.to_string()));
                        }
                        changed = true;
                        i += 2;
                    }
                    _ => {
                        out.push(arg.clone());
                        i += 1;
                    }
                }
            }
            if spec.name == "getex" {
                // GETEX with an expiry sets it (or, already past, deleted the key it found:
                // DEL, as Redis); PERSIST and no option log as they are.
                let at_ms = expire_at?;
                if at_ms <= now_ms as i128 && !matches!(reply, Frame::Null) {
                    return Some(vec![vec![Bytes::from_static(b"DEL"), args[1].clone()]]);
                }
                return Some(vec![vec![Bytes::from_static(b"PEXPIREAT"), args[1].clone(), Bytes::from(at_ms.to_string())]]);
            }
            changed.then_some(vec![out])
        }
        "increx" => increx(args, reply, &absolute),
        // A conditional delete that ran deleted: DEL, which a replay need not test again
        // (and Redis before 8.4 knows).
        "delex" => Some(vec![vec![Bytes::from_static(b"DEL"), args[1].clone()]]),
        "himport|set" => crate::hashes::himport::propagate(args),
        "restore" => {
            if args[4..].iter().any(|a| is(a, "absttl")) {
                return None;
            }
            let ttl = number(&args[2])?;
            if ttl == 0 {
                return None;
            }
            let mut out = args.to_vec();
            out[2] = absolute(ttl);
            out.push(Bytes::from_static(b"ABSTTL"));
            Some(vec![out])
        }
        "xadd" => {
            // `*` and `ms-*` become the ID they gave.
            let Frame::Bulk(id) = reply else { return None };
            let at = crate::streams::xadd_id_position(args)?;
            let mut out = args.to_vec();
            out[at] = id.clone();
            Some(vec![out])
        }
        "xreadgroup" if crate::streams::xreadgroup_options(args).is_some_and(|options| options.3.is_some()) => xreadgroup_claims(args, reply),
        "xreadgroup" => {
            // Replayed, it must not wait.
            let block = args.iter().position(|arg| is(arg, "block"))?;
            let streams = args.iter().position(|arg| is(arg, "streams"))?;
            (block < streams).then(|| vec![args[..block].iter().chain(&args[block + 2..]).cloned().collect()])
        }
        "xclaim" => {
            // What it claimed, with no idle condition: the idle times differ at replay.
            let request = crate::streams::parse_xclaim(args, now_ms as i64).ok()?;
            let claimed = claimed_ids(reply)?;
            let mut out = args[..4].to_vec();
            if claimed.is_empty() {
                // Nothing claimed: only LASTID and forgotten entries matter.
                out.push(Bytes::from(i64::MAX.to_string()));
                out.extend(args[5..].iter().cloned());
            } else {
                out.push(Bytes::from_static(b"0"));
                out.extend(claimed);
                out.extend(args[request.ids_end..].iter().cloned());
            }
            Some(vec![out])
        }
        "xautoclaim" => {
            // As XCLAIMs of what it claimed and forgot (the entries gone from the stream).
            let Frame::Array(parts) = reply else { return None };
            let (claimed, forgotten) = (claimed_ids(parts.get(1)?)?, claimed_ids(parts.get(2)?)?);
            let mut out = vec![Bytes::from_static(b"XCLAIM")];
            out.extend(args[1..4].iter().cloned());
            out.push(Bytes::from_static(b"0"));
            out.extend(claimed);
            out.extend(forgotten);
            if args[6..].iter().any(|arg| is(arg, "justid")) {
                out.push(Bytes::from_static(b"JUSTID"));
            }
            (out.len() > 5).then(|| vec![out])
        }
        "spop" => {
            let members: Vec<Bytes> = match reply {
                Frame::Bulk(member) => vec![member.clone()],
                Frame::Array(items) | Frame::Set(items) => items.iter().filter_map(|f| if let Frame::Bulk(b) = f { Some(b.clone()) } else { None }).collect(),
                _ => Vec::new(),
            };
            if members.is_empty() {
                return Some(Vec::new());
            }
            let mut out = vec![Bytes::from_static(b"SREM"), args[1].clone()];
            out.extend(members);
            Some(vec![out])
        }
        "incrbyfloat" => match reply {
            Frame::Bulk(value) => Some(vec![vec![Bytes::from_static(b"SET"), args[1].clone(), value.clone(), Bytes::from_static(b"KEEPTTL")]]),
            _ => None,
        },
        "hincrbyfloat" => match reply {
            Frame::Bulk(value) => Some(vec![hincrbyfloat_outcome(&args[1], &args[2], value, shoal_store::types::hash::field_ttls_used())]),
            _ => None,
        },
        "hexpire" | "hpexpire" | "hexpireat" | "hpexpireat" => {
            // Logged as what happened: HDEL of the fields an expiry already past deleted,
            // HPEXPIREAT (absolute, no condition) of those it set.
            let n = number(&args[2])?;
            let at = match spec.name {
                "hexpire" => absolute(n * 1000),
                "hpexpire" => absolute(n),
                "hexpireat" => Bytes::from((n * 1000).to_string()),
                _ => args[2].clone(),
            };
            let fields_at = if is(&args[3], "fields") { 3 } else { 4 };
            let codes: Vec<i64> = match reply {
                Frame::Array(items) => items.iter().map(|f| if let Frame::Integer(n) = f { *n } else { 0 }).collect(),
                _ => return Some(Vec::new()),
            };
            let fields = args.get(fields_at + 2..)?;
            let with = |code: i64| fields.iter().zip(&codes).filter(|(_, c)| **c == code).map(|(f, _)| f.clone()).collect::<Vec<_>>();
            Some(field_commands(&args[1], with(2), Some(at), with(1)))
        }
        "hgetex" | "hgetdel" => {
            // The fields it found (those with a value in the reply), deleted (HGETDEL, or
            // HGETEX with an expiry already past), given a TTL or persisted.
            let found: Vec<Bytes> = match reply {
                Frame::Array(items) => {
                    let fields_at = 2 + args[2..].iter().position(|a| is(a, "fields"))?;
                    args.get(fields_at + 2..)?.iter().zip(items).filter(|(_, v)| !matches!(v, Frame::Null)).map(|(f, _)| f.clone()).collect()
                }
                _ => return Some(Vec::new()),
            };
            if spec.name == "hgetdel" {
                return Some(field_commands(&args[1], found, None, Vec::new()));
            }
            let unit = [("ex", 1000i128, false), ("px", 1, false), ("exat", 1000, true), ("pxat", 1, true)].into_iter().find(|(name, _, _)| is(&args[2], name));
            match unit {
                Some((_, scale, absolute_form)) => {
                    let n = number(&args[3])? * scale;
                    let at = if absolute_form { n } else { now_ms as i128 + n };
                    if at <= now_ms as i128 {
                        Some(field_commands(&args[1], found, None, Vec::new()))
                    } else {
                        Some(field_commands(&args[1], Vec::new(), Some(Bytes::from(at.to_string())), found))
                    }
                }
                None if is(&args[2], "persist") && !found.is_empty() => {
                    let mut out = vec![Bytes::from_static(b"HPERSIST"), args[1].clone(), Bytes::from_static(b"FIELDS"), Bytes::from(found.len().to_string())];
                    out.extend(found);
                    Some(vec![out])
                }
                None => Some(Vec::new()),
            }
        }
        "hsetex" => {
            // EX, PX and EXAT become PXAT; an expiry already past leaves the fields deleted.
            let mut out = args.to_vec();
            let fields_at = 2 + args[2..].iter().position(|a| is(a, "fields"))?;
            let at_index = 2 + args[2..fields_at].iter().position(|a| ["ex", "px", "exat", "pxat"].iter().any(|name| is(a, name)))?;
            let scale = if is(&args[at_index], "ex") || is(&args[at_index], "exat") { 1000 } else { 1 };
            let relative = is(&args[at_index], "ex") || is(&args[at_index], "px");
            let n = number(&args[at_index + 1])? * scale;
            let at = if relative { now_ms as i128 + n } else { n };
            if at <= now_ms as i128 {
                let fields = args[fields_at + 2..].chunks_exact(2).map(|pair| pair[0].clone()).collect();
                return Some(field_commands(&args[1], fields, None, Vec::new()));
            }
            out[at_index] = Bytes::from_static(b"PXAT");
            out[at_index + 1] = Bytes::from(at.to_string());
            Some(vec![out])
        }
        _ => None,
    }
}

/// What HINCRBYFLOAT logs: the field's new value, as HSET (which Redis before 8 replays)
/// until `keep_ttl` (some field had a TTL in this process), then as HSETEX KEEPTTL (Redis
/// 8), since HSET would drop the field's TTL at replay.
fn hincrbyfloat_outcome(key: &Bytes, field: &Bytes, value: &Bytes, keep_ttl: bool) -> Vec<Bytes> {
    if keep_ttl {
        [&b"HSETEX"[..], key, b"KEEPTTL", b"FIELDS", b"1", field, value].map(Bytes::copy_from_slice).to_vec()
    } else {
        vec![Bytes::from_static(b"HSET"), key.clone(), field.clone(), value.clone()]
    }
}

/// HDEL `key` of `deleted`, then HPEXPIREAT `key` `at` of `expiring`: what a hash field
/// expiration command logs (nothing for an empty list).
fn field_commands(key: &Bytes, deleted: Vec<Bytes>, at: Option<Bytes>, expiring: Vec<Bytes>) -> Vec<Vec<Bytes>> {
    let mut out = Vec::new();
    if !deleted.is_empty() {
        let mut hdel = vec![Bytes::from_static(b"HDEL"), key.clone()];
        hdel.extend(deleted);
        out.push(hdel);
    }
    if let (Some(at), false) = (at, expiring.is_empty()) {
        let mut expire = vec![Bytes::from_static(b"HPEXPIREAT"), key.clone(), at, Bytes::from_static(b"FIELDS"), Bytes::from(expiring.len().to_string())];
        expire.extend(expiring);
        out.push(expire);
    }
    out
}

/// The IDs of an XCLAIM-style reply: IDs (JUSTID) or `[id, fields]` entries.
fn claimed_ids(reply: &Frame) -> Option<Vec<Bytes>> {
    let Frame::Array(items) = reply else { return None };
    items
        .iter()
        .map(|item| match item {
            Frame::Bulk(id) => Some(id.clone()),
            Frame::Array(entry) => match entry.first() {
                Some(Frame::Bulk(id)) => Some(id.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// INCREX as Redis propagates it: a SET of the value it left, with KEEPTTL when it kept the
/// TTL, PXAT when it set one (ENX: a PEXPIREAT NX after it, which sets it only where there
/// was none, as ENX did), nothing when PERSIST removed it. A RESP3 client's float reply is a
/// double, not the exact text stored: then the command itself, expiry made absolute (the
/// long double arithmetic replays exactly).
fn increx(args: &[Bytes], reply: &Frame, absolute: &dyn Fn(i128) -> Bytes) -> Option<Vec<Vec<Bytes>>> {
    let word = |w: &'static [u8]| Bytes::from_static(w);
    let Frame::Array(items) = reply else { return None };
    let value = match items.first()? {
        Frame::Integer(n) => Some(Bytes::from(n.to_string())),
        Frame::Bulk(text) => Some(text.clone()),
        _ => None,
    };
    // The options, with EX/PX/EXAT made PXAT.
    let mut verbatim = args[..2].to_vec();
    let (mut expire_at, mut persist, mut enx) = (None, false, false);
    let mut i = 2;
    while i < args.len() {
        let arg = &args[i];
        let unit = [("ex", 1000i128, false), ("px", 1, false), ("exat", 1000, true), ("pxat", 1, true)].into_iter().find(|(name, _, _)| is(arg, name));
        if let (Some((_, scale, absolute_form)), Some(n)) = (unit, args.get(i + 1)) {
            let n: i128 = std::str::from_utf8(n).ok()?.parse().ok()?;
            let at = if absolute_form { Bytes::from((n * scale).to_string()) } else { absolute(n * scale) };
            verbatim.extend([word(b"PXAT"), at.clone()]);
            expire_at = Some(at);
            i += 2;
            continue;
        }
        persist |= is(arg, "persist");
        enx |= is(arg, "enx");
        let with_value = ["byint", "byfloat", "lbound", "ubound"].iter().any(|name| is(arg, name));
        verbatim.extend(args[i..(i + 1 + with_value as usize).min(args.len())].iter().cloned());
        i += 1 + with_value as usize;
    }
    let Some(value) = value else { return Some(vec![verbatim]) };
    let key = args[1].clone();
    let set = |tail: &[Bytes]| [&[word(b"SET"), key.clone(), value.clone()][..], tail].concat();
    Some(match (expire_at, enx, persist) {
        (Some(at), false, _) => vec![set(&[word(b"PXAT"), at])],
        (Some(at), true, _) => vec![set(&[word(b"KEEPTTL")]), vec![word(b"PEXPIREAT"), key.clone(), at, word(b"NX")]],
        (None, _, true) => vec![set(&[])],
        (None, _, false) => vec![set(&[word(b"KEEPTTL")])],
    })
}

/// What the log records for a blocking command that served `reply` (at once or after it
/// waited): the non-blocking command that has the same effect, on the key it served from.
/// [`served`], as every command to log: an XREADGROUP with CLAIM may take two per stream.
pub fn served_all(spec: &CommandSpec, args: &[Bytes], reply: &Frame) -> Option<Vec<Vec<Bytes>>> {
    if spec.name == "xreadgroup" && crate::streams::xreadgroup_options(args).is_some_and(|options| options.3.is_some()) {
        return xreadgroup_claims(args, reply);
    }
    served(spec, args, reply).map(|command| vec![command])
}

/// An XREADGROUP with CLAIM as what it did, stream by stream: an XCLAIM of the entries it
/// claimed (min-idle-time 0, as idle times differ at replay; one gone from the stream leaves
/// the PEL at replay too), then an XREADGROUP of as many new entries as it read. A claimed
/// entry is told from a new one by its idle time or earlier deliveries (a new one has 0 and
/// 0; so would an entry XCLAIMed with RETRYCOUNT 0 and claimed the same millisecond with
/// CLAIM 0, which the log then reads as new: not exact in that one case).
fn xreadgroup_claims(args: &[Bytes], reply: &Frame) -> Option<Vec<Vec<Bytes>>> {
    let (group, consumer, noack, _) = crate::streams::xreadgroup_options(args)?;
    let word = |w: &'static [u8]| Bytes::from_static(w);
    let as_items = |frame: &Frame| -> Option<Vec<Frame>> {
        match frame {
            Frame::Array(items) => Some(items.clone()),
            Frame::Encoded(encoded) => match encoded.to_frame() {
                Frame::Array(items) => Some(items),
                _ => None,
            },
            _ => None,
        }
    };
    let streams: Vec<(Frame, Frame)> = match reply {
        Frame::Map(pairs) => pairs.clone(),
        Frame::Array(streams) => streams.iter().filter_map(|s| as_items(s).and_then(|pair| Some((pair.first()?.clone(), pair.get(1)?.clone())))).collect(),
        _ => Vec::new(),
    };
    let mut out = Vec::new();
    for (key, entries) in streams {
        let Frame::Bulk(key) = key else { return None };
        let (mut claimed, mut new) = (Vec::new(), 0usize);
        for entry in as_items(&entries)? {
            let parts = as_items(&entry)?;
            let (Some(Frame::Bulk(id)), Some(fields), Some(Frame::Integer(idle)), Some(Frame::Integer(deliveries))) =
                (parts.first(), parts.get(1), parts.get(2), parts.get(3))
            else {
                return None;
            };
            if *idle > 0 || *deliveries > 0 || matches!(fields, Frame::Null | Frame::NullArray) {
                claimed.push(id.clone());
            } else {
                new += 1;
            }
        }
        if !claimed.is_empty() {
            let mut xclaim = vec![word(b"XCLAIM"), key.clone(), group.clone(), consumer.clone(), word(b"0")];
            xclaim.extend(claimed);
            out.push(xclaim);
        }
        if new > 0 {
            let mut read = vec![word(b"XREADGROUP"), word(b"GROUP"), group.clone(), consumer.clone(), word(b"COUNT"), Bytes::from(new.to_string())];
            if noack {
                read.push(word(b"NOACK"));
            }
            read.extend([word(b"STREAMS"), key, word(b">")]);
            out.push(read);
        }
    }
    Some(out)
}

/// None when it served nothing.
pub fn served(spec: &CommandSpec, args: &[Bytes], reply: &Frame) -> Option<Vec<Bytes>> {
    let items = |frame: &Frame| -> Option<Vec<Frame>> {
        match frame {
            Frame::Array(items) | Frame::Set(items) | Frame::Push(items) => Some(items.clone()),
            Frame::Encoded(encoded) => match encoded.to_frame() {
                Frame::Array(items) => Some(items),
                _ => None,
            },
            _ => None,
        }
    };
    let key_of = |frame: &Frame| -> Option<Bytes> { items(frame)?.first().and_then(|f| if let Frame::Bulk(k) = f { Some(k.clone()) } else { None }) };
    let count_of = |frame: &Frame| -> Option<usize> { items(frame)?.get(1).and_then(items).map(|elements| elements.len()) };
    let word = |w: &'static [u8]| Bytes::from_static(w);
    if matches!(reply, Frame::Null | Frame::NullArray | Frame::Error(_)) {
        return None;
    }
    Some(match spec.name {
        "blpop" => vec![word(b"LPOP"), key_of(reply)?],
        "brpop" => vec![word(b"RPOP"), key_of(reply)?],
        "bzpopmin" => vec![word(b"ZPOPMIN"), key_of(reply)?],
        "bzpopmax" => vec![word(b"ZPOPMAX"), key_of(reply)?],
        "blmove" => vec![word(b"LMOVE"), args[1].clone(), args[2].clone(), args[3].clone(), args[4].clone()],
        "brpoplpush" => vec![word(b"RPOPLPUSH"), args[1].clone(), args[2].clone()],
        // As Redis: LMOVEM of exactly as many as it moved (none moved: no reply to log).
        "blmovem" => {
            let moved = items(reply)?.len();
            let mut out = vec![word(b"LMOVEM"), args[1].clone(), args[2].clone(), args[3].clone(), args[4].clone()];
            if let Some(order) = args.get(8) {
                out.extend([word(b"EXACTLY"), Bytes::from(moved.to_string()), if is(order, "obo") { word(b"OBO") } else { word(b"BULK") }]);
            }
            out
        }
        "xreadgroup" => {
            // The one stream that served it, with as many entries as it delivered.
            let (key, entries) = match reply {
                Frame::Map(pairs) => match pairs.first()? {
                    (Frame::Bulk(key), entries) => (key.clone(), entries),
                    _ => return None,
                },
                Frame::Array(streams) => match streams.first()? {
                    Frame::Array(pair) => match (pair.first()?, pair.get(1)?) {
                        (Frame::Bulk(key), entries) => (key.clone(), entries),
                        _ => return None,
                    },
                    _ => return None,
                },
                _ => return None,
            };
            let count = items(entries)?.len();
            let group = args.iter().position(|arg| is(arg, "group"))?;
            let mut out = vec![
                word(b"XREADGROUP"),
                word(b"GROUP"),
                args.get(group + 1)?.clone(),
                args.get(group + 2)?.clone(),
                word(b"COUNT"),
                Bytes::from(count.to_string()),
            ];
            if args.iter().any(|arg| is(arg, "noack")) {
                out.push(word(b"NOACK"));
            }
            out.extend([word(b"STREAMS"), key, word(b">")]);
            out
        }
        "blmpop" | "bzmpop" => {
            // timeout numkeys key... LEFT|RIGHT|MIN|MAX [COUNT n]
            let numkeys: usize = std::str::from_utf8(&args[2]).ok()?.parse().ok()?;
            let direction = args.get(3 + numkeys)?.clone();
            let name = if spec.name == "blmpop" { word(b"LMPOP") } else { word(b"ZMPOP") };
            vec![name, word(b"1"), key_of(reply)?, direction, word(b"COUNT"), Bytes::from(count_of(reply)?.to_string())]
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str) -> &'static CommandSpec {
        crate::table::lookup(name.as_bytes()).unwrap_or_else(|| panic!("{name} in the table"))
    }

    fn args(list: &[&str]) -> Vec<Bytes> {
        list.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect()
    }

    fn text(commands: Option<Vec<Vec<Bytes>>>) -> Option<Vec<String>> {
        commands.map(|cs| cs.iter().map(|c| c.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect::<Vec<_>>().join(" ")).collect())
    }

    #[test]
    fn relative_expiry_is_logged_absolute() {
        let now = 1_000_000;
        let ok = Frame::ok();
        let cases: &[(&[&str], Option<&str>)] = &[
            (&["EXPIRE", "k", "10"], Some("PEXPIREAT k 1010000")),
            (&["PEXPIRE", "k", "10", "NX"], Some("PEXPIREAT k 1000010 NX")),
            (&["EXPIREAT", "k", "5000"], Some("PEXPIREAT k 5000000")),
            (&["SETEX", "k", "2", "v"], Some("SET k v PXAT 1002000")),
            (&["PSETEX", "k", "2", "v"], Some("SET k v PXAT 1000002")),
            (&["SET", "k", "v", "EX", "3", "NX"], Some("SET k v PXAT 1003000 NX")),
            (&["SET", "k", "v", "exat", "7"], Some("SET k v PXAT 7000")),
            (&["SET", "k", "v"], None),
            (&["SET", "k", "ex"], None),
            (&["SET", "k", "ex", "NX"], None),
            (&["SET", "k", "v", "IFEQ", "ex", "GET"], Some("SET k v GET")),
            (&["SET", "k", "v", "ifdne", "0123456789abcdef", "PX", "5"], Some("SET k v PXAT 1000005")),
            (&["DELEX", "k", "IFNE", "v"], Some("DEL k")),
            (&["DELEX", "k"], Some("DEL k")),
            (&["GETEX", "k", "PX", "5"], Some("PEXPIREAT k 1000005")),
            (&["GETEX", "k", "PERSIST"], None),
            (&["RESTORE", "k", "100", "payload"], Some("RESTORE k 1000100 payload ABSTTL")),
            (&["RESTORE", "k", "0", "payload"], None),
        ];
        for (command, expected) in cases {
            let got = text(rewrite(spec(&command[0].to_ascii_lowercase()), &args(command), &ok, now));
            assert_eq!(got, expected.map(|e| vec![e.to_owned()]), "{command:?}");
        }
    }

    #[test]
    fn an_expiry_already_past_that_deleted_its_key_is_logged_as_del() {
        let now = 1_000_000;
        let (deleted, untouched, value) = (Frame::Integer(1), Frame::Integer(0), Frame::Bulk("v".into()));
        let cases: &[(&[&str], &Frame, Option<&str>)] = &[
            (&["PEXPIRE", "k", "0"], &deleted, Some("DEL k")),
            (&["EXPIRE", "k", "-5", "NX"], &deleted, Some("DEL k")),
            (&["EXPIREAT", "k", "1"], &deleted, Some("DEL k")),
            (&["PEXPIREAT", "k", "1000000"], &deleted, Some("DEL k")),
            (&["PEXPIREAT", "k", "1000001"], &deleted, None),
            (&["EXPIRE", "k", "0", "GT"], &untouched, Some("PEXPIREAT k 1000000 GT")),
            (&["GETEX", "k", "EXAT", "1"], &value, Some("DEL k")),
            (&["GETEX", "k", "EXAT", "1"], &Frame::Null, Some("PEXPIREAT k 1000")),
        ];
        for (command, reply, expected) in cases {
            let got = text(rewrite(spec(&command[0].to_ascii_lowercase()), &args(command), reply, now));
            assert_eq!(got, expected.map(|e| vec![e.to_owned()]), "{command:?}");
        }
    }

    #[test]
    fn increx_is_logged_as_the_set_of_its_result() {
        let now = 1_000_000;
        let ints = Frame::Array(vec![Frame::Integer(15), Frame::Integer(5)]);
        let floats = Frame::Array(vec![Frame::Bulk("15.5".into()), Frame::Bulk("0.5".into())]);
        let doubles = Frame::Array(vec![Frame::Double(15.5), Frame::Double(0.5)]);
        let cases: &[(&[&str], &Frame, &[&str])] = &[
            (&["INCREX", "k", "BYINT", "5"], &ints, &["SET k 15 KEEPTTL"]),
            (&["INCREX", "k", "BYFLOAT", "0.5", "UBOUND", "20"], &floats, &["SET k 15.5 KEEPTTL"]),
            (&["INCREX", "k", "PERSIST"], &ints, &["SET k 15"]),
            (&["INCREX", "k", "ex", "10", "BYINT", "5"], &ints, &["SET k 15 PXAT 1010000"]),
            (&["INCREX", "k", "EXAT", "7", "ENX"], &ints, &["SET k 15 KEEPTTL", "PEXPIREAT k 7000 NX"]),
            (&["INCREX", "k", "BYFLOAT", "0.5", "PX", "5", "SATURATE"], &doubles, &["INCREX k BYFLOAT 0.5 PXAT 1000005 SATURATE"]),
        ];
        for (command, reply, expected) in cases {
            let got = text(rewrite(spec("increx"), &args(command), reply, now));
            assert_eq!(got, Some(expected.iter().map(|e| e.to_string()).collect()), "{command:?}");
        }
    }

    #[test]
    fn hash_field_expiration_is_logged_as_what_it_did() {
        let now = 1_000_000;
        let codes = |c: &[i64]| Frame::Array(c.iter().map(|&n| Frame::Integer(n)).collect());
        let values =
            |v: &[Option<&str>]| Frame::Array(v.iter().map(|v| v.map_or(Frame::Null, |s| Frame::Bulk(Bytes::copy_from_slice(s.as_bytes())))).collect());
        let cases: Vec<(&[&str], Frame, Vec<&str>)> = vec![
            (&["HEXPIRE", "h", "10", "NX", "FIELDS", "3", "a", "b", "c"], codes(&[1, 0, 1]), vec!["HPEXPIREAT h 1010000 FIELDS 2 a c"]),
            (&["HPEXPIRE", "h", "10", "FIELDS", "1", "a"], codes(&[1]), vec!["HPEXPIREAT h 1000010 FIELDS 1 a"]),
            (&["HEXPIREAT", "h", "0", "FIELDS", "2", "a", "b"], codes(&[2, -2]), vec!["HDEL h a"]),
            (&["HPEXPIREAT", "h", "5000000", "FIELDS", "1", "a"], codes(&[1]), vec!["HPEXPIREAT h 5000000 FIELDS 1 a"]),
            (&["HGETEX", "h", "EX", "5", "FIELDS", "2", "a", "b"], values(&[Some("1"), None]), vec!["HPEXPIREAT h 1005000 FIELDS 1 a"]),
            (&["HGETEX", "h", "EXAT", "1", "FIELDS", "1", "a"], values(&[Some("1")]), vec!["HDEL h a"]),
            (&["HGETEX", "h", "PERSIST", "FIELDS", "1", "a"], values(&[Some("1")]), vec!["HPERSIST h FIELDS 1 a"]),
            (&["HGETDEL", "h", "FIELDS", "2", "a", "b"], values(&[None, Some("2")]), vec!["HDEL h b"]),
            (&["HSETEX", "h", "FNX", "EX", "5", "FIELDS", "1", "a", "1"], Frame::Integer(1), vec!["HSETEX h FNX PXAT 1005000 FIELDS 1 a 1"]),
            (&["HSETEX", "h", "PX", "0", "FIELDS", "1", "a", "1"], Frame::Integer(1), vec!["HDEL h a"]),
            // A key named like a keyword.
            (&["HSETEX", "ex", "PX", "5", "FIELDS", "1", "a", "1"], Frame::Integer(1), vec!["HSETEX ex PXAT 1000005 FIELDS 1 a 1"]),
            (&["HGETDEL", "fields", "FIELDS", "1", "a"], values(&[Some("1")]), vec!["HDEL fields a"]),
        ];
        for (command, reply, expected) in cases {
            let got = text(rewrite(spec(&command[0].to_ascii_lowercase()), &args(command), &reply, now));
            assert_eq!(got, Some(expected.iter().map(|e| e.to_string()).collect()), "{command:?}");
        }
        assert_eq!(text(rewrite(spec("hsetex"), &args(&["HSETEX", "h", "KEEPTTL", "FIELDS", "1", "a", "1"]), &Frame::Integer(1), now)), None);
    }

    #[test]
    fn xreadgroup_with_claim_is_logged_as_an_xclaim_and_a_plain_read_per_stream() {
        let bulk = |s: &str| Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()));
        let entry =
            |id: &str, fields: Frame, idle: i64, deliveries: i64| Frame::Array(vec![bulk(id), fields, Frame::Integer(idle), Frame::Integer(deliveries)]);
        let fields = || Frame::Array(vec![bulk("f"), bulk("v")]);
        let request = args(&["XREADGROUP", "GROUP", "g", "c", "COUNT", "9", "BLOCK", "0", "NOACK", "CLAIM", "100", "STREAMS", "s", "t", ">", ">"]);
        let reply = Frame::Array(vec![
            Frame::Array(vec![
                bulk("s"),
                Frame::Array(vec![entry("1-0", fields(), 150, 1), entry("2-0", Frame::NullArray, 0, 3), entry("5-0", fields(), 0, 0)]),
            ]),
            Frame::Array(vec![bulk("t"), Frame::Array(vec![entry("7-0", fields(), 0, 0), entry("8-0", fields(), 0, 0)])]),
        ]);
        let lines = |commands: Vec<Vec<Bytes>>| {
            commands.iter().map(|c| c.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect::<Vec<_>>().join(" ")).collect::<Vec<_>>()
        };
        let want = ["XCLAIM s g c 0 1-0 2-0", "XREADGROUP GROUP g c COUNT 1 NOACK STREAMS s >", "XREADGROUP GROUP g c COUNT 2 NOACK STREAMS t >"];
        assert_eq!(lines(served_all(spec("xreadgroup"), &request, &reply).unwrap()), want);
        assert_eq!(lines(rewrite(spec("xreadgroup"), &request, &reply, 0).unwrap()), want);
        // In RESP3, a map of streams; nothing served, nothing logged.
        let map = Frame::Map(vec![(bulk("s"), Frame::Array(vec![entry("3-0", fields(), 7, 2)]))]);
        assert_eq!(lines(served_all(spec("xreadgroup"), &request, &map).unwrap()), ["XCLAIM s g c 0 3-0"]);
        assert_eq!(rewrite(spec("xreadgroup"), &request, &Frame::NullArray, 0), Some(vec![]));
    }

    #[test]
    fn served_blocking_commands_are_logged_as_their_non_blocking_forms() {
        let bulk = |s: &str| Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()));
        let line = |c: Option<Vec<Bytes>>| c.map(|c| c.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect::<Vec<_>>().join(" "));
        let pair = Frame::Array(vec![bulk("b"), bulk("x")]);
        assert_eq!(line(served(spec("blpop"), &args(&["BLPOP", "a", "b", "0"]), &pair)).as_deref(), Some("LPOP b"));
        assert_eq!(line(served(spec("blpop"), &args(&["BLPOP", "a", "0"]), &Frame::NullArray)), None);
        assert_eq!(line(served(spec("blmove"), &args(&["BLMOVE", "s", "d", "LEFT", "RIGHT", "0"]), &bulk("x"))).as_deref(), Some("LMOVE s d LEFT RIGHT"));
        let moved = Frame::Array(vec![bulk("x"), bulk("y")]);
        assert_eq!(
            line(served(spec("blmovem"), &args(&["BLMOVEM", "s", "d", "left", "RIGHT", "0", "count", "9", "bulk"]), &moved)).as_deref(),
            Some("LMOVEM s d left RIGHT EXACTLY 2 BULK")
        );
        assert_eq!(line(served(spec("blmovem"), &args(&["BLMOVEM", "s", "d", "LEFT", "LEFT", "0"]), &moved)).as_deref(), Some("LMOVEM s d LEFT LEFT"));
        let mpop = Frame::Array(vec![bulk("k2"), Frame::Array(vec![bulk("x"), bulk("y")])]);
        assert_eq!(
            line(served(spec("blmpop"), &args(&["BLMPOP", "0", "2", "k1", "k2", "RIGHT", "COUNT", "5"]), &mpop)).as_deref(),
            Some("LMPOP 1 k2 RIGHT COUNT 2")
        );
        let zpop = Frame::Array(vec![bulk("z"), bulk("m"), bulk("1")]);
        assert_eq!(line(served(spec("bzpopmax"), &args(&["BZPOPMAX", "z", "0"]), &zpop)).as_deref(), Some("ZPOPMAX z"));
    }

    #[test]
    fn outcomes_of_chance_and_floats_are_logged() {
        let popped = Frame::Array(vec![Frame::Bulk(Bytes::from_static(b"a")), Frame::Bulk(Bytes::from_static(b"b"))]);
        assert_eq!(text(rewrite(spec("spop"), &args(&["SPOP", "s", "2"]), &popped, 0)), Some(vec!["SREM s a b".to_owned()]));
        assert_eq!(text(rewrite(spec("spop"), &args(&["SPOP", "s"]), &Frame::Null, 0)), Some(vec![]));
        let value = Frame::Bulk(Bytes::from_static(b"3.5"));
        assert_eq!(text(rewrite(spec("incrbyfloat"), &args(&["INCRBYFLOAT", "k", "0.5"]), &value, 0)), Some(vec!["SET k 3.5 KEEPTTL".to_owned()]));
        let hincrbyfloat = text(rewrite(spec("hincrbyfloat"), &args(&["HINCRBYFLOAT", "h", "f", "0.5"]), &value, 0)).unwrap();
        let (h, f, v) = (Bytes::from_static(b"h"), Bytes::from_static(b"f"), Bytes::from_static(b"3.5"));
        let line = |keep| text(Some(vec![hincrbyfloat_outcome(&h, &f, &v, keep)])).unwrap();
        assert_eq!(hincrbyfloat, line(shoal_store::types::hash::field_ttls_used()));
        assert_eq!(line(false), ["HSET h f 3.5"]);
        assert_eq!(line(true), ["HSETEX h KEEPTTL FIELDS 1 f 3.5"]);
    }
}
