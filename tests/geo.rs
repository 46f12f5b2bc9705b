//! Differential tests of the geo commands against redis-server.
//!
//! Positions cluster around two centres (so searches find members, in several geohash boxes)
//! with a few anywhere on the map; each member's position is random to 6 decimals, so no two
//! members share a distance from a search centre (Redis's partial sort orders ties its own
//! way). RESP3 coordinates are compared as numbers: Redis writes them as `%.17Lf` doubles,
//! Shoal as `%.17g` doubles that read back as the same value (see `geo.rs`).
//!
//! Replay a sequence with `SHOAL_DIFF_SEED=7 SHOAL_DIFF_LEN=1000 cargo test -p shoal-tests
//! --test geo -- --nocapture`.

use rand::Rng;
use shoal_tests::diff::{self, bytes, Gen, Generated};

const COMMANDS: &[(&str, u32)] = &[
    ("GEOADD", 8),
    ("GEOPOS", 2),
    ("GEODIST", 2),
    ("GEOHASH", 2),
    ("GEOSEARCH", 6),
    ("GEOSEARCHSTORE", 2),
    ("GEORADIUS", 3),
    ("GEORADIUS_RO", 1),
    ("GEORADIUSBYMEMBER", 2),
    ("GEORADIUSBYMEMBER_RO", 1),
    ("ZRANGE", 2),
    ("ZREM", 1),
];

const KEYS: &[&str] = &["{t}g", "{t}h", "ga", "gb", "gc"];
const STRING_KEY: &str = "str";
const MEMBERS: &[&str] = &["p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8", "p9", "p10", "p11"];
const UNITS: &[&str] = &["m", "km", "ft", "mi", "KM", "M", "yd"];
const CENTRES: &[[f64; 2]] = &[[13.36, 38.11], [-73.98, 40.75], [0.0, 0.0], [179.9, -84.9]];

struct Generator {
    base: Gen,
}

impl Generator {
    fn new(seed: u64) -> Generator {
        let mut base = Gen::new(seed);
        base.then(Generated { label: "SET", args: vec![bytes("SET"), bytes(STRING_KEY), bytes("v")] });
        Generator { base }
    }

    fn key(&mut self) -> Vec<u8> {
        match self.base.rng.random_range(0..20) {
            0 => bytes("missing"),
            1 => bytes(STRING_KEY),
            _ => self.base.pick_bytes(KEYS),
        }
    }

    fn dst(&mut self) -> Vec<u8> {
        self.base.pick_bytes(KEYS)
    }

    fn member(&mut self) -> Vec<u8> {
        self.base.pick_bytes(MEMBERS)
    }

    /// A longitude and latitude: near a centre, anywhere, or invalid.
    fn position(&mut self) -> [Vec<u8>; 2] {
        if self.base.chance(4) {
            let bad = ["abc", "181", "-180.5", "", "nan", "85.06", "1e400"];
            let (a, b) = (self.base.pick(&bad), self.base.pick(&["1", "85.06", "x"]));
            return if self.base.chance(50) { [bytes(a), bytes(b)] } else { [bytes(b), bytes(a)] };
        }
        let [lon, lat] = if self.base.chance(85) {
            let c = CENTRES[self.base.rng.random_range(0..CENTRES.len())];
            let spread = [0.01, 0.5, 3.0][self.base.rng.random_range(0..3)];
            [(c[0] + self.base.rng.random_range(-spread..spread)).clamp(-180.0, 180.0), (c[1] + self.base.rng.random_range(-spread..spread)).clamp(-85.0, 85.0)]
        } else {
            [self.base.rng.random_range(-180.0..180.0), self.base.rng.random_range(-85.0..85.0)]
        };
        [format!("{lon:.6}").into_bytes(), format!("{lat:.6}").into_bytes()]
    }

    fn distance(&mut self) -> Vec<u8> {
        if self.base.chance(5) {
            return self.base.pick_bytes(&["-1", "abc", "", "0"]);
        }
        let d: f64 = [1.0, 50.0, 500.0, 5000.0, 200_000.0, 2_000_000.0][self.base.rng.random_range(0..6)] * self.base.rng.random_range(0.5..2.0);
        format!("{d:.3}").into_bytes()
    }

    fn unit(&mut self) -> Vec<u8> {
        if self.base.chance(50) {
            bytes("m")
        } else {
            self.base.pick_bytes(UNITS)
        }
    }

    fn options(&mut self, args: &mut Vec<Vec<u8>>, store: bool, radius: bool) {
        for _ in 0..self.base.rng.random_range(0..4) {
            match self.base.rng.random_range(0..12) {
                0 => args.push(bytes("WITHDIST")),
                1 => args.push(bytes("WITHCOORD")),
                2 => args.push(bytes("WITHHASH")),
                3 => args.push(bytes("ASC")),
                4 => args.push(bytes("desc")),
                5 | 6 => {
                    args.push(bytes("COUNT"));
                    let c = if self.base.chance(85) { self.base.rng.random_range(1..5).to_string() } else { self.base.pick(&["0", "-1", "x"]).to_string() };
                    args.push(c.into_bytes());
                    if self.base.chance(30) {
                        args.push(bytes("ANY"));
                    }
                }
                7 => args.push(bytes("ANY")),
                8 if store && radius => {
                    args.push(bytes(if self.base.chance(50) { "STORE" } else { "STOREDIST" }));
                    let d = self.dst();
                    args.push(d);
                }
                8 if store => args.push(bytes("STOREDIST")),
                _ if self.base.chance(20) => args.push(bytes("FOO")),
                _ => {}
            }
        }
    }

    fn search_spec(&mut self, args: &mut Vec<Vec<u8>>) {
        let from = self.base.rng.random_range(0..10);
        let by = self.base.rng.random_range(0..10);
        let mut from_args = Vec::new();
        if from < 5 {
            from_args.push(bytes("FROMMEMBER"));
            from_args.push(self.member());
        } else if from < 9 {
            from_args.push(bytes("FROMLONLAT"));
            from_args.extend(self.position());
        }
        let mut by_args = Vec::new();
        if by < 5 {
            by_args.push(bytes("BYRADIUS"));
            by_args.push(self.distance());
            by_args.push(self.unit());
        } else if by < 9 {
            by_args.push(bytes("BYBOX"));
            by_args.push(self.distance());
            by_args.push(self.distance());
            by_args.push(self.unit());
        }
        if self.base.chance(50) {
            args.extend(from_args);
            args.extend(by_args);
        } else {
            args.extend(by_args);
            args.extend(from_args);
        }
    }

    fn generate(&mut self) -> Generated {
        if let Some(queued) = self.base.queued() {
            return queued;
        }
        let name = self.base.weighted(COMMANDS);
        let mut args = vec![bytes(name)];
        match name {
            "GEOADD" => {
                let key = if self.base.chance(5) { bytes(STRING_KEY) } else { self.dst() };
                args.push(key);
                for _ in 0..self.base.rng.random_range(0..2) {
                    let o = self.base.pick(&["NX", "XX", "CH", "ch", "GT"]);
                    args.push(bytes(o));
                }
                for _ in 0..self.base.rng.random_range(1..4) {
                    args.extend(self.position());
                    args.push(self.member());
                }
                if self.base.chance(3) {
                    args.pop();
                }
            }
            "GEOPOS" | "GEOHASH" => {
                args.push(self.key());
                for _ in 0..self.base.rng.random_range(0..3) {
                    args.push(self.member());
                }
            }
            "GEODIST" => {
                args.push(self.key());
                args.push(self.member());
                args.push(self.member());
                if self.base.chance(60) {
                    args.push(self.unit());
                }
                if self.base.chance(3) {
                    args.push(bytes("extra"));
                }
            }
            "GEOSEARCH" | "GEOSEARCHSTORE" => {
                if name == "GEOSEARCHSTORE" {
                    args.push(self.dst());
                }
                args.push(self.key());
                self.search_spec(&mut args);
                self.options(&mut args, name == "GEOSEARCHSTORE", false);
            }
            "GEORADIUS" | "GEORADIUS_RO" => {
                args.push(self.key());
                args.extend(self.position());
                args.push(self.distance());
                args.push(self.unit());
                self.options(&mut args, name == "GEORADIUS", true);
            }
            "GEORADIUSBYMEMBER" | "GEORADIUSBYMEMBER_RO" => {
                args.push(self.key());
                args.push(self.member());
                args.push(self.distance());
                args.push(self.unit());
                self.options(&mut args, name == "GEORADIUSBYMEMBER", true);
            }
            "ZRANGE" => {
                args.push(self.key());
                args.extend([bytes("0"), bytes("-1"), bytes("WITHSCORES")]);
            }
            "ZREM" => {
                args.push(self.dst());
                args.push(self.member());
            }
            other => unreachable!("{other}"),
        }
        Generated { label: name, args }
    }
}

/// RESP3 doubles as the numbers they stand for.
fn doubles_as_numbers(reply: Vec<u8>) -> Vec<u8> {
    if !reply.contains(&b',') {
        return reply;
    }
    let text = String::from_utf8_lossy(&reply).into_owned();
    text.split("\r\n")
        .map(|line| match line.strip_prefix(',').and_then(|n| n.parse::<f64>().ok()) {
            Some(v) => format!(",{v:?}"),
            None => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\r\n")
        .into_bytes()
}

impl diff::Generator for Generator {
    fn next(&mut self) -> Generated {
        self.generate()
    }

    fn normalise(&self, _generated: &Generated, reply: Vec<u8>) -> Vec<u8> {
        doubles_as_numbers(reply)
    }
}

fn differential(threads: usize) {
    let must: Vec<&str> = COMMANDS.iter().map(|(name, _)| *name).collect();
    diff::run("geo", threads, &[], 1..=12, 300, &must, Generator::new);
}

#[test]
fn random_geo_commands_reply_like_redis_with_four_threads() {
    differential(4);
}

#[test]
fn random_geo_commands_reply_like_redis_with_two_threads() {
    differential(2);
}
