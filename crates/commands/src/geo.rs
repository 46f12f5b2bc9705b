//! The geo family: GEOADD, GEOSEARCH and friends (Redis's `geo.c`), on top of sorted sets.
//!
//! A position is stored as a sorted set member whose score is its 52-bit interleaved geohash
//! ([`hash`]). Searches visit the same neighbour boxes in the same order as Redis, so even
//! unsorted results come back in Redis's order. GEOSEARCHSTORE and GEORADIUS ... STORE over
//! keys on two cores search in one hop and store in a second hop of the same transaction.
//!
//! Distances reply as Redis 7.0's `%.4f` bulk strings. One known difference: RESP3
//! coordinates (GEOPOS, WITHCOORD) are doubles with `%.17g` digits where Redis writes `%.17Lf`
//! digits; both read back as the same number (see [`human`]).

pub mod hash;

use bytes::Bytes;
use futures::future::LocalBoxFuture;
use futures::FutureExt;
use shoal_resp::{Frame, Protocol};
use shoal_store::types::ZSet;
use shoal_store::Db;

use crate::args::{self, is};
use crate::ctx::{self, Coordinator, Ctx};
use crate::errors;
use crate::table::{flags::*, CommandSpec, Handler, KeySpec};
use crate::zsets::{self, parse::strict_f64, Items};
use hash::{Search, Shape};

const UNSUPPORTED_UNIT: &str = "ERR unsupported unit provided. please use M, KM, FT, MI";
const RADIUS_NOT_NUMBER: &str = "ERR need numeric radius";
const RADIUS_NEGATIVE: &str = "ERR radius cannot be negative";
const WIDTH_NOT_NUMBER: &str = "ERR need numeric width";
const HEIGHT_NOT_NUMBER: &str = "ERR need numeric height";
const BOX_NEGATIVE: &str = "ERR height or width cannot be negative";
const COUNT_NOT_POSITIVE: &str = "ERR COUNT must be > 0";
const ANY_NEEDS_COUNT: &str = "ERR the ANY argument requires COUNT argument";
const MEMBER_NOT_FOUND: &str = "ERR could not decode requested zset member";

const BASE: CommandSpec = CommandSpec { keys: KeySpec::ONE, acl: &["@geo"], group: "geo", since: "3.2.0", ..CommandSpec::DEFAULT };
const SEARCH_COMPLEXITY: &str =
    "O(N+log(M)) where N is the number of elements in the grid-aligned bounding box area around the shape provided as the filter and M is the number of items inside the shape";

/// GEORADIUS's key and its STORE / STOREDIST key (the last one given), as Redis's
/// georadiusGetKeys finds them.
fn georadius_keys(args: &[Bytes]) -> Vec<usize> {
    let mut keys = vec![1];
    let mut stored = None;
    let mut i = 5;
    while i < args.len() {
        if (is(&args[i], "store") || is(&args[i], "storedist")) && i + 1 < args.len() {
            stored = Some(i + 1);
            i += 1;
        }
        i += 1;
    }
    keys.extend(stored);
    keys
}

pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "geoadd",
        arity: -5,
        flags: WRITE | DENYOOM,
        summary: "Adds one or more members to a geospatial index. The key is created if it doesn't exist.",
        complexity: "O(log(N)) for each item added, where N is the number of elements in the sorted set.",
        handler: Handler::Keys { local: geoadd, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "geopos",
        arity: -2,
        flags: READONLY,
        summary: "Returns the longitude and latitude of members from a geospatial index.",
        complexity: "O(1) for each member requested.",
        handler: Handler::Keys { local: geopos, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "geodist",
        arity: -4,
        flags: READONLY,
        summary: "Returns the distance between two members of a geospatial index.",
        complexity: "O(1)",
        handler: Handler::Keys { local: geodist, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "geohash",
        arity: -2,
        flags: READONLY,
        summary: "Returns members from a geospatial index as geohash strings.",
        complexity: "O(1) for each member requested.",
        handler: Handler::Keys { local: geohash, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "geosearch",
        arity: -7,
        flags: READONLY,
        summary: "Queries a geospatial index for members inside an area of a box or a circle.",
        since: "6.2.0",
        complexity: SEARCH_COMPLEXITY,
        handler: Handler::Keys { local: geosearch, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "geosearchstore",
        arity: -8,
        flags: WRITE | DENYOOM,
        keys: KeySpec::TWO,
        summary: "Queries a geospatial index for members inside an area of a box or a circle, optionally stores the result.",
        since: "6.2.0",
        complexity: SEARCH_COMPLEXITY,
        handler: Handler::Keys { local: geosearchstore, multi: Some(geosearchstore_multi) },
        ..BASE
    },
    CommandSpec {
        name: "georadius",
        arity: -6,
        flags: WRITE | DENYOOM,
        summary: "Queries a geospatial index for members within a distance from a coordinate, optionally stores the result.",
        complexity: SEARCH_COMPLEXITY,
        handler: Handler::Keys { local: georadius, multi: Some(georadius_multi) },
        movable_keys: Some(georadius_keys),
        ..BASE
    },
    CommandSpec {
        name: "georadius_ro",
        arity: -6,
        flags: READONLY,
        summary: "Returns members from a geospatial index that are within a distance from a coordinate.",
        since: "3.2.10",
        complexity: SEARCH_COMPLEXITY,
        handler: Handler::Keys { local: georadius_ro, multi: None },
        ..BASE
    },
    CommandSpec {
        name: "georadiusbymember",
        arity: -5,
        flags: WRITE | DENYOOM,
        summary: "Queries a geospatial index for members within a distance from a member, optionally stores the result.",
        complexity: SEARCH_COMPLEXITY,
        handler: Handler::Keys { local: georadiusbymember, multi: Some(georadiusbymember_multi) },
        movable_keys: Some(georadius_keys),
        ..BASE
    },
    CommandSpec {
        name: "georadiusbymember_ro",
        arity: -5,
        flags: READONLY,
        summary: "Returns members from a geospatial index that are within a distance from a member.",
        since: "3.2.10",
        complexity: SEARCH_COMPLEXITY,
        handler: Handler::Keys { local: georadiusbymember_ro, multi: None },
        ..BASE
    },
];

// ---- Helpers ---------------------------------------------------------------------------

/// A coordinate as Redis's `addReplyHumanLongDouble`: in RESP2 a bulk string of `%.17Lf` with
/// trailing zeros removed; in RESP3 a double. Redis writes that double with the same digits,
/// which our frames cannot carry: Shoal writes `%.17g` digits of the number those digits
/// stand for, so a client parses the same number from either.
fn human(value: f64, proto: Protocol) -> Frame {
    let mut text = format!("{value:.17}");
    if text.contains('.') {
        while text.ends_with('0') {
            text.pop();
        }
        if text.ends_with('.') {
            text.pop();
        }
    }
    if text == "-0" {
        text = "0".to_string();
    }
    match proto {
        Protocol::Resp2 => Frame::Bulk(Bytes::from(text)),
        // The number Redis's digits stand for: 17 decimals can be fewer than 17 significant
        // digits for a small value, so it is not always `value` itself.
        Protocol::Resp3 => Frame::Double(text.parse().unwrap_or(value)),
    }
}

/// A distance as Redis 7.0's `addReplyDoubleDistance`: `%.4f`, a bulk string.
fn distance_reply(meters: f64) -> Frame {
    args::bulk(Bytes::from(format!("{meters:.4}")))
}

/// Meters per unit.
fn unit(arg: &[u8]) -> Result<f64, Frame> {
    if is(arg, "m") {
        Ok(1.0)
    } else if is(arg, "km") {
        Ok(1000.0)
    } else if is(arg, "ft") {
        Ok(0.3048)
    } else if is(arg, "mi") {
        Ok(1609.34)
    } else {
        Err(errors::error(UNSUPPORTED_UNIT))
    }
}

/// A longitude, latitude pair (Redis's extractLongLatOrReply).
fn long_lat(longitude: &[u8], latitude: &[u8]) -> Result<[f64; 2], Frame> {
    let longitude = strict_f64(longitude).ok_or_else(|| errors::error(errors::NOT_FLOAT))?;
    let latitude = strict_f64(latitude).ok_or_else(|| errors::error(errors::NOT_FLOAT))?;
    if !(hash::LONG_MIN..=hash::LONG_MAX).contains(&longitude) || !(hash::LAT_MIN..=hash::LAT_MAX).contains(&latitude) {
        return Err(errors::error(&format!("ERR invalid longitude,latitude pair {longitude:.6},{latitude:.6}")));
    }
    Ok([longitude, latitude])
}

fn radius(value: &[u8], unit_arg: &[u8]) -> Result<(f64, f64), Frame> {
    let r = strict_f64(value).ok_or_else(|| errors::error(RADIUS_NOT_NUMBER))?;
    if r < 0.0 {
        return Err(errors::error(RADIUS_NEGATIVE));
    }
    Ok((r, unit(unit_arg)?))
}

// ---- GEOADD, GEOPOS, GEODIST, GEOHASH ---------------------------------------------------------

/// GEOADD key [NX | XX] [CH] longitude latitude member [longitude latitude member ...]
fn geoadd(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let mut at = 2;
    let (mut nx, mut xx) = (false, false);
    while at < args.len() {
        if is(&args[at], "nx") {
            nx = true;
        } else if is(&args[at], "xx") {
            xx = true;
        } else if !is(&args[at], "ch") {
            break;
        }
        at += 1;
    }
    // Whole triples only. (Not `is_multiple_of`: it is newer than the workspace's rust-version.)
    let leftover = (args.len() - at) % 3;
    if leftover != 0 || (nx && xx) {
        return errors::syntax();
    }
    // The same request as ZADD, with each position turned into its score.
    let mut zadd_args: Vec<Bytes> = Vec::with_capacity(at + (args.len() - at) / 3 * 2);
    zadd_args.push(Bytes::from_static(b"zadd"));
    zadd_args.extend(args[1..at].iter().cloned());
    for triple in args[at..].chunks_exact(3) {
        let [longitude, latitude] = match long_lat(&triple[0], &triple[1]) {
            Ok(xy) => xy,
            Err(e) => return e,
        };
        let score = hash::encode_score(longitude, latitude).expect("a valid pair encodes");
        zadd_args.push(Bytes::from(score.to_string()));
        zadd_args.push(triple[2].clone());
    }
    zsets::zadd(ctx, &zadd_args)
}

/// GEOPOS key [member [member ...]]
fn geopos(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let (now, proto) = (ctx.now_ms, ctx.proto);
    let zset = match zsets::read(ctx.db(), &args[1], now) {
        Err(e) => return e,
        Ok(z) => z,
    };
    let positions = args[2..]
        .iter()
        .map(|m| match zset.as_ref().and_then(|z| z.score(m)) {
            None => Frame::NullArray,
            Some(score) => {
                let [longitude, latitude] = hash::decode_score(score);
                Frame::Array(vec![human(longitude, proto), human(latitude, proto)])
            }
        })
        .collect();
    Frame::Array(positions)
}

/// GEODIST key member1 member2 [M | KM | FT | MI]
fn geodist(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let to_meters = match args.len() {
        4 => 1.0,
        5 => match unit(&args[4]) {
            Ok(u) => u,
            Err(e) => return e,
        },
        _ => return errors::syntax(),
    };
    let now = ctx.now_ms;
    let zset = match zsets::read(ctx.db(), &args[1], now) {
        Err(e) => return e,
        Ok(None) => return Frame::Null,
        Ok(Some(z)) => z,
    };
    let (Some(a), Some(b)) = (zset.score(&args[2]), zset.score(&args[3])) else { return Frame::Null };
    let ([lon1, lat1], [lon2, lat2]) = (hash::decode_score(a), hash::decode_score(b));
    distance_reply(hash::distance(lon1, lat1, lon2, lat2) / to_meters)
}

/// GEOHASH key [member [member ...]]
fn geohash(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let now = ctx.now_ms;
    let zset = match zsets::read(ctx.db(), &args[1], now) {
        Err(e) => return e,
        Ok(z) => z,
    };
    Frame::Array(
        args[2..]
            .iter()
            .map(|m| match zset.as_ref().and_then(|z| z.score(m)) {
                None => Frame::Null,
                Some(score) => args::bulk(Bytes::from(hash::geohash_string(score))),
            })
            .collect(),
    )
}

// ---- Searches ------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    /// GEORADIUS: centre and radius are the first arguments.
    RadiusCoords,
    /// GEORADIUSBYMEMBER.
    RadiusMember,
    /// GEOSEARCH and GEOSEARCHSTORE.
    Search,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Sort {
    None,
    Asc,
    Desc,
}

/// A parsed search request.
#[derive(Clone, Debug)]
struct Request {
    store: Option<Bytes>,
    store_dist: bool,
    /// None only on a missing key for FROMMEMBER and GEORADIUSBYMEMBER (whose radius is not
    /// parsed then either).
    center: Option<[f64; 2]>,
    shape: Option<(Shape, f64)>,
    with_dist: bool,
    with_hash: bool,
    with_coord: bool,
    sort: Sort,
    count: usize,
    any: bool,
}

/// One point found.
#[derive(Clone, Debug)]
struct Point {
    member: Bytes,
    score: f64,
    xy: [f64; 2],
    dist: f64,
}

/// Parses a search over `zset` (None: the key is missing). As in Redis, GEORADIUSBYMEMBER and
/// FROMMEMBER read the member's position while parsing, and only when the key exists.
fn parse_search(args: &[Bytes], kind: Kind, store_allowed: bool, zset: Option<&ZSet>) -> Result<Request, Frame> {
    let member_xy = |member: &[u8]| -> Result<Option<[f64; 2]>, Frame> {
        match zset {
            None => Ok(None),
            Some(z) => z.score(member).map(|s| Some(hash::decode_score(s))).ok_or_else(|| errors::error(MEMBER_NOT_FOUND)),
        }
    };
    let search_store = kind == Kind::Search && store_allowed;
    let key_at = if search_store { 2 } else { 1 };
    let mut request = Request {
        store: search_store.then(|| args[1].clone()),
        store_dist: false,
        center: None,
        shape: None,
        with_dist: false,
        with_hash: false,
        with_coord: false,
        sort: Sort::None,
        count: 0,
        any: false,
    };
    let base = match kind {
        Kind::RadiusCoords => {
            request.center = Some(long_lat(&args[2], &args[3])?);
            let (r, conversion) = radius(&args[4], &args[5])?;
            request.shape = Some((Shape::Radius(r), conversion));
            6
        }
        Kind::RadiusMember => {
            if zset.is_some() {
                request.center = member_xy(&args[2])?;
                let (r, conversion) = radius(&args[3], &args[4])?;
                request.shape = Some((Shape::Radius(r), conversion));
            }
            5
        }
        Kind::Search => key_at + 1,
    };
    let (mut from_member, mut from_lonlat, mut by_radius, mut by_box) = (false, false, false, false);
    let mut i = base;
    while i < args.len() {
        let arg = &args[i];
        let left = args.len() - i - 1;
        if is(arg, "withdist") {
            request.with_dist = true;
        } else if is(arg, "withhash") {
            request.with_hash = true;
        } else if is(arg, "withcoord") {
            request.with_coord = true;
        } else if is(arg, "any") {
            request.any = true;
        } else if is(arg, "asc") {
            request.sort = Sort::Asc;
        } else if is(arg, "desc") {
            request.sort = Sort::Desc;
        } else if is(arg, "count") && left >= 1 {
            let count = args::parse_i64(&args[i + 1])?;
            if count <= 0 {
                return Err(errors::error(COUNT_NOT_POSITIVE));
            }
            request.count = count as usize;
            i += 1;
        } else if (is(arg, "store") || is(arg, "storedist")) && left >= 1 && store_allowed && kind != Kind::Search {
            request.store = Some(args[i + 1].clone());
            request.store_dist = is(arg, "storedist");
            i += 1;
        } else if is(arg, "storedist") && search_store {
            request.store_dist = true;
        } else if is(arg, "frommember") && left >= 1 && kind == Kind::Search && !from_lonlat {
            request.center = member_xy(&args[i + 1])?;
            from_member = true;
            i += 1;
        } else if is(arg, "fromlonlat") && left >= 2 && kind == Kind::Search && !from_member {
            request.center = Some(long_lat(&args[i + 1], &args[i + 2])?);
            from_lonlat = true;
            i += 2;
        } else if is(arg, "byradius") && left >= 2 && kind == Kind::Search && !by_box {
            let (r, conversion) = radius(&args[i + 1], &args[i + 2])?;
            request.shape = Some((Shape::Radius(r), conversion));
            by_radius = true;
            i += 2;
        } else if is(arg, "bybox") && left >= 3 && kind == Kind::Search && !by_radius {
            let width = strict_f64(&args[i + 1]).ok_or_else(|| errors::error(WIDTH_NOT_NUMBER))?;
            let height = strict_f64(&args[i + 2]).ok_or_else(|| errors::error(HEIGHT_NOT_NUMBER))?;
            if width < 0.0 || height < 0.0 {
                return Err(errors::error(BOX_NEGATIVE));
            }
            request.shape = Some((Shape::Box { width, height }, unit(&args[i + 3])?));
            by_box = true;
            i += 3;
        } else {
            return Err(errors::syntax());
        }
        i += 1;
    }
    if request.store.is_some() && (request.with_dist || request.with_hash || request.with_coord) {
        let what = if kind == Kind::Search { "GEOSEARCHSTORE" } else { "STORE option in GEORADIUS" };
        return Err(errors::error(&format!("ERR {what} is not compatible with WITHDIST, WITHHASH and WITHCOORD options")));
    }
    let name = String::from_utf8_lossy(&args[0]).into_owned();
    if kind == Kind::Search && !(from_member || from_lonlat) {
        return Err(errors::error(&format!("ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}")));
    }
    if kind == Kind::Search && !(by_radius || by_box) {
        return Err(errors::error(&format!("ERR exactly one of BYRADIUS and BYBOX can be specified for {name}")));
    }
    if request.any && request.count == 0 {
        return Err(errors::error(ANY_NEEDS_COUNT));
    }
    Ok(request)
}

/// Parses and runs a search on the key's core: the request and the points found (none for
/// a missing key).
fn op_search(db: &mut Db, args: &[Bytes], kind: Kind, store_allowed: bool, now_ms: u64) -> Result<(Request, Vec<Point>), Frame> {
    let key = &args[if kind == Kind::Search && store_allowed { 2 } else { 1 }];
    let zset = zsets::read(db, key, now_ms)?;
    let request = parse_search(args, kind, store_allowed, zset)?;
    let Some(zset) = zset else { return Ok((request, Vec::new())) };
    let center = request.center.expect("an existing key's search has a centre");
    let (shape, conversion) = request.shape.expect("an existing key's search has a shape");
    let search = Search { center, shape, conversion };
    let limit = if request.any { request.count } else { 0 };
    let mut points = Vec::new();
    'boxes: for (min, max) in search.score_ranges() {
        if limit > 0 && points.len() >= limit {
            break;
        }
        let (min, max) = (min as f64, max as f64);
        let start = zset.count_while(|s, _| s < min);
        for (member, score) in zset.iter_from(start, false) {
            if score >= max {
                break;
            }
            let xy = hash::decode_score(score);
            if let Some(dist) = search.distance_if_within(xy[0], xy[1]) {
                points.push(Point { member: Bytes::copy_from_slice(member), score, xy, dist });
                if limit > 0 && points.len() >= limit {
                    break 'boxes;
                }
            }
        }
    }
    let mut sort = request.sort;
    if request.count != 0 && sort == Sort::None && !request.any {
        sort = Sort::Asc;
    }
    match sort {
        Sort::Asc => points.sort_by(|a, b| a.dist.partial_cmp(&b.dist).unwrap_or(std::cmp::Ordering::Equal)),
        Sort::Desc => points.sort_by(|a, b| b.dist.partial_cmp(&a.dist).unwrap_or(std::cmp::Ordering::Equal)),
        Sort::None => {}
    }
    if request.count != 0 {
        points.truncate(request.count);
    }
    for p in &mut points {
        p.dist /= conversion;
    }
    Ok((request, points))
}

fn search_reply(request: &Request, points: Vec<Point>, proto: Protocol) -> Frame {
    let options = request.with_dist || request.with_hash || request.with_coord;
    let items = points
        .into_iter()
        .map(|p| {
            if !options {
                return Frame::Bulk(p.member);
            }
            let mut item = vec![Frame::Bulk(p.member)];
            if request.with_dist {
                item.push(distance_reply(p.dist));
            }
            if request.with_hash {
                item.push(Frame::Integer(p.score as i64));
            }
            if request.with_coord {
                item.push(Frame::Array(vec![human(p.xy[0], proto), human(p.xy[1], proto)]));
            }
            Frame::Array(item)
        })
        .collect();
    Frame::Array(items)
}

fn store_items(request: &Request, points: Vec<Point>) -> Items {
    points.into_iter().map(|p| (p.member, if request.store_dist { p.dist } else { p.score })).collect()
}

/// The event of a search that stores its result.
fn store_event(kind: Kind) -> &'static str {
    if kind == Kind::Search {
        "geosearchstore"
    } else {
        "georadiusstore"
    }
}

/// The whole search on one core.
fn search_local(ctx: &mut Ctx, args: &[Bytes], kind: Kind, store_allowed: bool) -> Frame {
    let (now, proto) = (ctx.now_ms, ctx.proto);
    let (request, points) = match op_search(ctx.db(), args, kind, store_allowed, now) {
        Ok(found) => found,
        Err(e) => return e,
    };
    match &request.store {
        Some(dst) => args::int(zsets::store(ctx, dst, store_items(&request, points), true, store_event(kind))),
        None => search_reply(&request, points, proto),
    }
}

/// A search whose source and destination keys are on two cores: search in one hop, store in
/// a second one of the same transaction.
async fn search_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>, kind: Kind) -> Frame {
    let key = args[if kind == Kind::Search { 2 } else { 1 }].clone();
    let shard = zsets::shard_of(coordinator, &key);
    let found = ctx::hop_one(coordinator, shard, move |ctx: &mut Ctx| {
        let now = ctx.now_ms;
        op_search(ctx.db(), &args, kind, true, now)
    })
    .await;
    let (request, points) = match found {
        Ok(found) => found,
        Err(e) => return e,
    };
    match request.store.clone() {
        Some(dst) => {
            let items = store_items(&request, points);
            let stored =
                ctx::hop_one(coordinator, zsets::shard_of(coordinator, &dst), move |ctx: &mut Ctx| zsets::store(ctx, &dst, items, true, store_event(kind)))
                    .await;
            args::int(stored)
        }
        None => search_reply(&request, points, coordinator.proto()),
    }
}

/// GEOSEARCH key FROMMEMBER member | FROMLONLAT longitude latitude BYRADIUS radius M | KM | FT | MI | BYBOX width height M | KM | FT | MI [ASC | DESC] [COUNT count [ANY]] [WITHCOORD] [WITHDIST] [WITHHASH]
fn geosearch(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    search_local(ctx, args, Kind::Search, false)
}

/// GEOSEARCHSTORE destination source FROMMEMBER member | FROMLONLAT longitude latitude BYRADIUS radius M | KM | FT | MI | BYBOX width height M | KM | FT | MI [ASC | DESC] [COUNT count [ANY]] [STOREDIST]
fn geosearchstore(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    search_local(ctx, args, Kind::Search, true)
}

fn geosearchstore_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    search_multi(coordinator, args, Kind::Search).boxed_local()
}

/// GEORADIUS key longitude latitude radius M | KM | FT | MI [WITHCOORD] [WITHDIST] [WITHHASH] [COUNT count [ANY]] [ASC | DESC] [STORE key | STOREDIST key]
fn georadius(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    search_local(ctx, args, Kind::RadiusCoords, true)
}

fn georadius_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    search_multi(coordinator, args, Kind::RadiusCoords).boxed_local()
}

/// GEORADIUS_RO key longitude latitude radius M | KM | FT | MI [WITHCOORD] [WITHDIST] [WITHHASH] [COUNT count [ANY]] [ASC | DESC]
fn georadius_ro(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    search_local(ctx, args, Kind::RadiusCoords, false)
}

/// GEORADIUSBYMEMBER key member radius M | KM | FT | MI [WITHCOORD] [WITHDIST] [WITHHASH] [COUNT count [ANY]] [ASC | DESC] [STORE key | STOREDIST key]
fn georadiusbymember(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    search_local(ctx, args, Kind::RadiusMember, true)
}

fn georadiusbymember_multi(coordinator: &dyn Coordinator, args: Vec<Bytes>) -> LocalBoxFuture<'_, Frame> {
    search_multi(coordinator, args, Kind::RadiusMember).boxed_local()
}

/// GEORADIUSBYMEMBER_RO key member radius M | KM | FT | MI [WITHCOORD] [WITHDIST] [WITHHASH] [COUNT count [ANY]] [ASC | DESC]
fn georadiusbymember_ro(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    search_local(ctx, args, Kind::RadiusMember, false)
}

#[cfg(test)]
mod tests;
