//! Randomised differential tests: generated inputs (valid, mutated and garbage) for every library, run here and in
//! redis-server, with the results rendered to one string by the same Lua code on both sides.
//!
//! The generator is a fixed-seed xorshift, so a failure reproduces. Each snippet covers a batch of inputs.

use super::differential_tests::{differences_from_redis, local_eval};

/// `try(f, ...)` calls `f` under pcall and returns its results as one table (pcall itself returning many values trips
/// an API check in mlua's debug build of Lua), and `render` shows that. `show` renders any Lua value deterministically: tables as sorted key=value pairs, numbers with 17 digits, strings with `%q`. And
/// `plain(v)`: whether `v` traverses in the same order in Redis, which it does not when a key is a table (hashed by
/// address) or a string of 32 bytes or more (Redis's Lua hashes those differently from stock Lua 5.1).
const SHOW: &str = "local function show(v) local t = type(v) \
    if t == 'table' then local parts = {} for k, x in pairs(v) do parts[#parts + 1] = show(k) .. '=' .. show(x) end \
    table.sort(parts) return '{' .. table.concat(parts, ',') .. '}' \
    elseif t == 'number' then return string.format('%.17g', v) \
    elseif t == 'string' then return string.format('%q', v) \
    else return t .. ':' .. tostring(v) end end \
    local function plain(v) if type(v) ~= 'table' then return true end     for k, x in pairs(v) do if type(k) == 'table' or (type(k) == 'string' and #k >= 32) or not plain(x) then return false end end     return true end     local function try(f, ...) local n = select('#', ...) local args = {...} \
    return pcall(function() return {f(unpack(args, 1, n))} end) end \
    local function render(ok, r) if not ok then return 'false ' .. show(r) end \
    local parts = {'true'} for i = 1, table.maxn(r) do parts[#parts + 1] = show(r[i]) end return table.concat(parts, ' ') end ";

/// Batches per test; `SHOAL_RANDOM_BATCHES` raises it for a longer search.
const BATCHES: usize = 12;
const BATCH_SIZE: usize = 40;

fn batch_count() -> usize {
    std::env::var("SHOAL_RANDOM_BATCHES").ok().and_then(|count| count.parse().ok()).unwrap_or(BATCHES)
}

/// The generator's seed: `seed`, unless `SHOAL_RANDOM_SEED` changes it for a new search.
fn rng(seed: u64) -> Rng {
    let extra: u64 = std::env::var("SHOAL_RANDOM_SEED").ok().and_then(|value| value.parse().ok()).unwrap_or(0);
    Rng(seed ^ extra.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// A Lua string literal of `bytes`, every byte as a three-digit decimal escape.
fn lua_literal(bytes: &[u8]) -> String {
    let mut literal = String::with_capacity(bytes.len() * 4 + 2);
    literal.push('\'');
    for byte in bytes {
        literal.push_str(&format!("\\{byte:03}"));
    }
    literal.push('\'');
    literal
}

/// Deletes, inserts, replaces bytes or truncates, from 1 to 3 times.
fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>, alphabet: &[u8]) {
    for _ in 0..1 + rng.below(3) {
        let at = if bytes.is_empty() { 0 } else { rng.below(bytes.len()) };
        match rng.below(4) {
            0 if !bytes.is_empty() => {
                bytes.remove(at);
            }
            1 => bytes.insert(at, rng.pick(alphabet)),
            2 if !bytes.is_empty() => bytes[at] = rng.pick(alphabet),
            _ => bytes.truncate(at),
        }
    }
}

const NUMBERS: &[&str] = &[
    "0",
    "-0.0",
    "1",
    "-1",
    "0.5",
    "1.5",
    "2.5",
    "-2.5",
    "127",
    "128",
    "255",
    "256",
    "-32",
    "-33",
    "-128",
    "-129",
    "65535",
    "65536",
    "-32768",
    "-32769",
    "2^31",
    "2^31 - 1",
    "-2^31",
    "-2^31 - 1",
    "2^32",
    "2^32 - 1",
    "2^53",
    "2^53 + 1",
    "2^63",
    "-2^63",
    "2^64",
    "1e300",
    "-1e300",
    "1/0",
    "-1/0",
    "0/0",
    "0.1",
    "1/3",
    "3.4028234663852886e38",
    "1e-40",
    "123456789.123",
    "-0.75",
    "4294967296.5",
];

fn random_number(rng: &mut Rng) -> String {
    if rng.chance(70) {
        rng.pick(NUMBERS).to_string()
    } else {
        let magnitude = rng.below(40) as i32 - 10;
        format!("{}{}e{magnitude}", if rng.chance(30) { "-" } else { "" }, rng.below(100000))
    }
}

/// Random bytes, fewer than 32 of them: Redis's Lua hashes longer strings differently from stock Lua 5.1, so tables
/// with such keys traverse in another order there (a difference of the Lua core, not of these libraries).
fn random_short_bytes(rng: &mut Rng) -> Vec<u8> {
    const INTERESTING: &[u8] = b"ab\"\\/\x00\x01\x1f\x7f\x80\xff\n\t 9";
    let len = rng.pick(&[0, 1, 2, 5, 30, 31]);
    (0..len).map(|_| if rng.chance(30) { rng.pick(INTERESTING) } else { b'a' + rng.below(26) as u8 }).collect()
}

/// A Lua expression for a random value: scalars, cjson.null, nested tables with array, sparse and map keys.
fn random_lua_value(rng: &mut Rng, depth: usize) -> String {
    match rng.below(if depth > 3 { 5 } else { 8 }) {
        0 | 1 => random_number(rng),
        2 => lua_literal(&random_short_bytes(rng)),
        3 => rng.pick(&["true", "false", "cjson.null", "nil"]).to_string(),
        4 => rng.pick(&["'x'", "1", "'key'"]).to_string(),
        _ => {
            let mut fields = Vec::new();
            for _ in 0..rng.below(6) {
                let value = random_lua_value(rng, depth + 1);
                let field = match rng.below(4) {
                    0 => value,
                    1 => format!("[{}] = {value}", rng.pick(&["1", "2", "3", "5", "11", "20", "0", "-1", "1.5", "2^31", "2^53", "-0.0"])),
                    2 => format!("[{}] = {value}", lua_literal(&random_short_bytes(rng))),
                    _ => format!("{} = {value}", rng.pick(&["a", "b", "key", "z"])),
                };
                fields.push(field);
            }
            format!("{{{}}}", fields.join(", "))
        }
    }
}

fn random_json(rng: &mut Rng, depth: usize, out: &mut Vec<u8>) {
    match rng.below(if depth > 4 { 5 } else { 8 }) {
        0 => out.extend_from_slice(rng.pick(&[&b"0"[..], b"-0", b"1", b"-1.5e3", b"1E2", b"0.1", b"123456789012345678", b"1e400", b"2.5e-3"])),
        1 => out.extend_from_slice(rng.pick(&[&b"true"[..], b"false", b"null", b"NaN", b"-Infinity", b"0x1F", b"+1", b"01", b".5", b"1."])),
        2 | 3 => {
            out.push(b'"');
            for _ in 0..rng.below(6) {
                match rng.below(6) {
                    0 => out.extend_from_slice(rng.pick(&[&b"\\n"[..], b"\\\"", b"\\\\", b"\\/", b"\\b", b"\\u00e9", b"\\u0000", b"\\uD83D\\uDE00"])),
                    1 => out.extend_from_slice(rng.pick(&[&b"\\ud800"[..], b"\\udc00", b"\\u12", b"\\x", b"\\uD83D\\u0041", b"\xc3\xa9", b"\x01"])),
                    _ => out.push(b'a' + rng.below(26) as u8),
                }
            }
            out.push(b'"');
        }
        4 => out.extend_from_slice(b" "),
        5 | 6 => {
            out.push(b'[');
            for index in 0..rng.below(5) {
                if index > 0 {
                    out.push(b',');
                }
                random_json(rng, depth + 1, out);
            }
            out.push(b']');
        }
        _ => {
            out.push(b'{');
            for index in 0..rng.below(5) {
                if index > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(rng.pick(&[&b"\"a\""[..], b"\"b\"", b"\"\"", b"\"k\\u00e9\"", b"\"1\""]));
                out.push(b':');
                random_json(rng, depth + 1, out);
            }
            out.push(b'}');
        }
    }
}

fn random_msgpack(rng: &mut Rng, depth: usize, out: &mut Vec<u8>) {
    let string_body = |rng: &mut Rng, out: &mut Vec<u8>, len: usize| out.extend((0..len).map(|_| b'a' + rng.below(26) as u8));
    match rng.below(if depth > 3 { 12 } else { 16 }) {
        0 => out.push(rng.below(0x80) as u8),
        1 => out.push(0xe0 | rng.below(32) as u8),
        2 => out.push(rng.pick(&[0xc0, 0xc2, 0xc3, 0xc1])),
        3 => {
            let code = rng.pick(&[0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd1, 0xd2, 0xd3, 0xca, 0xcb]);
            let len = match code {
                0xcc | 0xd0 => 1,
                0xcd | 0xd1 => 2,
                0xce | 0xd2 | 0xca => 4,
                _ => 8,
            };
            out.push(code);
            for _ in 0..len {
                out.push(rng.pick(&[0x00, 0x01, 0x7f, 0x80, 0xff, 0x3f, 0xf8, 0x41]));
            }
        }
        4 | 5 => {
            let len = rng.below(5);
            out.push(0xa0 | len as u8);
            string_body(rng, out, len);
        }
        6 => {
            let len = rng.below(32);
            match rng.below(3) {
                0 => out.extend_from_slice(&[0xd9, len as u8]),
                1 => out.extend_from_slice(&[0xda, 0, len as u8]),
                _ => out.extend_from_slice(&[0xdb, 0, 0, 0, len as u8]),
            }
            string_body(rng, out, len);
        }
        7 => out.extend_from_slice(rng.pick(&[&[0xc4u8, 1, 0][..], &[0xd4, 1, 1], &[0xc7, 0, 1]])),
        8..=11 => random_number_msgpack(rng, out),
        _ => {
            let is_map = rng.chance(50);
            let len = rng.below(5);
            match rng.below(3) {
                0 => out.push(if is_map { 0x80 } else { 0x90 } | len as u8),
                1 => out.extend_from_slice(&[if is_map { 0xde } else { 0xdc }, 0, len as u8]),
                _ => out.extend_from_slice(&[if is_map { 0xdf } else { 0xdd }, 0, 0, 0, len as u8]),
            }
            for _ in 0..len * if is_map { 2 } else { 1 } {
                random_msgpack(rng, depth + 1, out);
            }
        }
    }
}

fn random_number_msgpack(rng: &mut Rng, out: &mut Vec<u8>) {
    let value = rng.pick(&[0u64, 1, 127, 128, 255, 256, 65535, 65536, u32::MAX as u64, 1 << 32, u64::MAX, 1 << 63, 1 << 53]);
    out.push(0xcf);
    out.extend_from_slice(&value.to_be_bytes());
}

/// Lua statements that make `c`, a `cjson.new()` module with a random configuration (the default half of the time).
fn random_cjson_config(rng: &mut Rng) -> String {
    let mut statements = vec!["local c = cjson.new()".to_string()];
    if rng.chance(50) {
        if rng.chance(40) {
            let convert = rng.pick(&["true", "false", "nil"]);
            let ratio = rng.pick(&["nil", "0", "1", "3", "2^31 - 1"]);
            let safe = rng.pick(&["nil", "0", "1", "5", "20"]);
            statements.push(format!("c.encode_sparse_array({convert}, {ratio}, {safe})"));
        }
        if rng.chance(30) {
            statements.push(format!("c.encode_number_precision({})", rng.below(14) + 1));
        }
        if rng.chance(30) {
            statements.push(format!("c.encode_invalid_numbers({})", rng.pick(&["true", "false", "'null'", "'on'", "'off'"])));
        }
        if rng.chance(30) {
            statements.push(format!("c.decode_invalid_numbers({})", rng.pick(&["true", "false"])));
        }
        if rng.chance(20) {
            statements.push(format!("c.encode_max_depth({})", rng.below(4) + 1));
        }
        if rng.chance(20) {
            statements.push(format!("c.decode_max_depth({})", rng.below(4) + 1));
        }
    }
    statements.join(" ")
}

fn batches(rng: &mut Rng, mut body: impl FnMut(&mut Rng) -> String) -> Vec<String> {
    (0..batch_count())
        .map(|_| {
            let checks: Vec<String> = (0..BATCH_SIZE).map(|_| body(rng)).collect();
            format!("{SHOW} local out = {{}} {} return table.concat(out, '\\n')", checks.join(" "))
        })
        .collect()
}

fn assert_same_as_redis(snippets: &[String]) {
    let Some(mismatches) = differences_from_redis(snippets) else {
        // Without the oracle the batches still run here: every call is under pcall, so any error escaping is a bug.
        for snippet in snippets {
            let result = local_eval(snippet);
            assert!(!result.starts_with(b"<local error"), "{}", String::from_utf8_lossy(&result));
        }
        return;
    };
    assert!(mismatches.is_empty(), "{} of {} batches differ:\n{}", mismatches.len(), snippets.len(), mismatches.join("\n"));
}

#[test]
fn random_bit_operations_match_redis() {
    let mut rng = rng(0x2545_f491_4f6c_dd1d);
    let snippets = batches(&mut rng, |rng| {
        let function = rng.pick(&["tobit", "tohex", "bnot", "band", "bor", "bxor", "lshift", "rshift", "arshift", "rol", "ror", "bswap"]);
        let arguments: String = (0..rng.below(4)).map(|_| format!(", {}", random_number(rng))).collect();
        format!("out[#out + 1] = render(try(bit.{function}{arguments}))")
    });
    assert_same_as_redis(&snippets);
}

#[test]
fn random_struct_formats_match_redis() {
    let mut rng = rng(0x9e37_79b9_7f4a_7c15);
    let snippets = batches(&mut rng, |rng| {
        let mut format = String::new();
        for _ in 0..1 + rng.below(5) {
            format.push_str(rng.pick(&[
                "i0",
                "I1",
                "i8",
                "I32",
                "i33",
                "c1",
                "c10",
                "c99999999999",
                "!1",
                "!3",
                "!16",
                "!0",
                "\0",
                "?",
                "0",
                "x",
                "s",
                "b",
                "<",
                ">",
                "!",
                "!2",
                "!4",
                " ",
                "b",
                "B",
                "h",
                "H",
                "l",
                "L",
                "T",
                "i",
                "I",
                "i3",
                "I7",
                "i9",
                "I16",
                "f",
                "d",
                "x",
                "s",
                "c",
                "c3",
                "c0",
                "y",
            ]));
        }
        let arguments: Vec<String> =
            (0..rng.below(5)).map(|_| if rng.chance(70) { random_number(rng) } else { lua_literal(&random_short_bytes(rng)) }).collect();
        let data = lua_literal(&(0..rng.below(24)).map(|_| rng.next() as u8).collect::<Vec<u8>>());
        let position = rng.pick(&["", ", 1", ", 2", ", 3", ", 0", ", 30"]);
        let format = lua_literal(format.as_bytes());
        format!(
            "out[#out + 1] = render(try(struct.pack, {format}{}{})) out[#out + 1] = render(try(struct.unpack, {format}, {data}{position})) \
             out[#out + 1] = render(try(struct.size, {format})) \
             local ok, packed = try(struct.pack, {format}{}{}) if ok then out[#out + 1] = render(try(struct.unpack, {format}, packed[1])) end",
            if arguments.is_empty() { "" } else { ", " },
            arguments.join(", "),
            if arguments.is_empty() { "" } else { ", " },
            arguments.join(", "),
        )
    });
    assert_same_as_redis(&snippets);
}

#[test]
fn random_json_decodes_match_redis() {
    let mut rng = rng(0xd1b5_4a32_d192_ed03);
    let snippets = batches(&mut rng, |rng| {
        let mut json = Vec::new();
        random_json(rng, 0, &mut json);
        if rng.chance(40) {
            mutate(rng, &mut json, b"[]{},:\"\\u0aeE-+.tfn \x00\xff");
        }
        let json = lua_literal(&json);
        let config = random_cjson_config(rng);
        format!(
            "do {config} local ok, r = try(c.decode, {json}) out[#out + 1] = render(ok, r) local v = ok and r[1] \
             if ok and plain(v) then out[#out + 1] = render(try(c.encode, v)) out[#out + 1] = render(try(cmsgpack.pack, v)) end end"
        )
    });
    assert_same_as_redis(&snippets);
}

#[test]
fn random_tables_encode_as_in_redis() {
    let mut rng = rng(0x94d0_49bb_1331_11eb);
    let snippets = batches(&mut rng, |rng| {
        let value = random_lua_value(rng, 0);
        let config = random_cjson_config(rng);
        format!(
            "do {config} local v = {value} out[#out + 1] = render(try(c.encode, v)) out[#out + 1] = render(try(cmsgpack.pack, v)) \
             local ok, packed = try(cmsgpack.pack, v) if ok then out[#out + 1] = render(try(cmsgpack.unpack, packed[1])) end end"
        )
    });
    assert_same_as_redis(&snippets);
}

#[test]
fn random_msgpack_decodes_match_redis() {
    let mut rng = rng(0xbf58_476d_1ce4_e5b9);
    let snippets = batches(&mut rng, |rng| {
        let mut data = Vec::new();
        for _ in 0..1 + rng.below(3) {
            random_msgpack(rng, 0, &mut data);
        }
        if rng.chance(40) {
            mutate(rng, &mut data, &[0x00, 0x01, 0x7f, 0x80, 0x81, 0x91, 0xa1, 0xc0, 0xc1, 0xc4, 0xca, 0xcb, 0xcf, 0xd9, 0xdc, 0xde, 0xff]);
        }
        let offset = rng.below(data.len() + 2);
        let limit = rng.below(4);
        let data = lua_literal(&data);
        format!(
            "do local ok, r = try(cmsgpack.unpack, {data}) out[#out + 1] = render(ok, r) \
             out[#out + 1] = render(try(cmsgpack.unpack_one, {data}, {offset})) out[#out + 1] = render(try(cmsgpack.unpack_limit, {data}, {limit}, {offset})) \
             if ok and plain(r) then out[#out + 1] = render(try(cmsgpack.pack, unpack(r, 1, table.maxn(r)))) end end"
        )
    });
    assert_same_as_redis(&snippets);
}

#[test]
fn random_garbage_raises_errors_or_decodes_but_never_crashes() {
    let mut rng = rng(0x5851_f42d_4c95_7f2d);
    for _ in 0..batch_count() {
        let lua = super::tests::lua();
        for _ in 0..BATCH_SIZE {
            let garbage: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
            let literal = lua_literal(&garbage);
            let format = lua_literal(&(0..rng.below(8)).map(|_| b" <>!xbBhHlLTiIfdsc0123456789?"[rng.below(29)]).collect::<Vec<u8>>());
            let code = format!(
                "local results = {{}} \
                 for _, call in ipairs({{function() return cjson.decode({literal}) end, function() return cmsgpack.unpack({literal}) end, \
                 function() return cmsgpack.unpack_limit({literal}, 3, 1) end, function() return struct.unpack({format}, {literal}) end, \
                 function() return struct.pack({format}, 1, {literal}, 2.5, {literal}) end, function() return struct.size({format}) end}}) do \
                 results[#results + 1] = tostring((pcall(function() return {{call()}} end))) end return table.concat(results, ' ')"
            );
            super::tests::eval_bytes_in(&lua, &code).unwrap_or_else(|error| panic!("{code}: {error}"));
        }
    }
}
