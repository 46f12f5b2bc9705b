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

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use shoal_tests::diff::{self, Generated};

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
    rng: SmallRng,
    started: bool,
}

impl Generator {
    fn new(seed: u64) -> Generator {
        Generator { rng: SmallRng::seed_from_u64(seed), started: false }
    }

    fn chance(&mut self, percent: u32) -> bool {
        self.rng.random_range(0..100) < percent
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.rng.random_range(0..from.len())]
    }

    fn b(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    fn key(&mut self) -> Vec<u8> {
        match self.rng.random_range(0..20) {
            0 => Self::b("missing"),
            1 => Self::b(STRING_KEY),
            _ => Self::b(self.pick(KEYS)),
        }
    }

    fn dst(&mut self) -> Vec<u8> {
        Self::b(self.pick(KEYS))
    }

    fn member(&mut self) -> Vec<u8> {
        Self::b(self.pick(MEMBERS))
    }

    /// A longitude and latitude: near a centre, anywhere, or invalid.
    fn position(&mut self) -> [Vec<u8>; 2] {
        if self.chance(4) {
            let bad = ["abc", "181", "-180.5", "", "nan", "85.06", "1e400"];
            let (a, b) = (self.pick(&bad), self.pick(&["1", "85.06", "x"]));
            return if self.chance(50) { [Self::b(a), Self::b(b)] } else { [Self::b(b), Self::b(a)] };
        }
        let [lon, lat] = if self.chance(85) {
            let c = CENTRES[self.rng.random_range(0..CENTRES.len())];
            let spread = [0.01, 0.5, 3.0][self.rng.random_range(0..3)];
            [(c[0] + self.rng.random_range(-spread..spread)).clamp(-180.0, 180.0), (c[1] + self.rng.random_range(-spread..spread)).clamp(-85.0, 85.0)]
        } else {
            [self.rng.random_range(-180.0..180.0), self.rng.random_range(-85.0..85.0)]
        };
        [format!("{lon:.6}").into_bytes(), format!("{lat:.6}").into_bytes()]
    }

    fn distance(&mut self) -> Vec<u8> {
        if self.chance(5) {
            return Self::b(self.pick(&["-1", "abc", "", "0"]));
        }
        let d: f64 = [1.0, 50.0, 500.0, 5000.0, 200_000.0, 2_000_000.0][self.rng.random_range(0..6)] * self.rng.random_range(0.5..2.0);
        format!("{d:.3}").into_bytes()
    }

    fn unit(&mut self) -> Vec<u8> {
        if self.chance(50) {
            Self::b("m")
        } else {
            Self::b(self.pick(UNITS))
        }
    }

    fn options(&mut self, args: &mut Vec<Vec<u8>>, store: bool, radius: bool) {
        for _ in 0..self.rng.random_range(0..4) {
            match self.rng.random_range(0..12) {
                0 => args.push(Self::b("WITHDIST")),
                1 => args.push(Self::b("WITHCOORD")),
                2 => args.push(Self::b("WITHHASH")),
                3 => args.push(Self::b("ASC")),
                4 => args.push(Self::b("desc")),
                5 | 6 => {
                    args.push(Self::b("COUNT"));
                    let c = if self.chance(85) { self.rng.random_range(1..5).to_string() } else { self.pick(&["0", "-1", "x"]).to_string() };
                    args.push(c.into_bytes());
                    if self.chance(30) {
                        args.push(Self::b("ANY"));
                    }
                }
                7 => args.push(Self::b("ANY")),
                8 if store && radius => {
                    args.push(Self::b(if self.chance(50) { "STORE" } else { "STOREDIST" }));
                    let d = self.dst();
                    args.push(d);
                }
                8 if store => args.push(Self::b("STOREDIST")),
                _ if self.chance(20) => args.push(Self::b("FOO")),
                _ => {}
            }
        }
    }

    fn search_spec(&mut self, args: &mut Vec<Vec<u8>>) {
        let from = self.rng.random_range(0..10);
        let by = self.rng.random_range(0..10);
        let mut from_args = Vec::new();
        if from < 5 {
            from_args.push(Self::b("FROMMEMBER"));
            from_args.push(self.member());
        } else if from < 9 {
            from_args.push(Self::b("FROMLONLAT"));
            from_args.extend(self.position());
        }
        let mut by_args = Vec::new();
        if by < 5 {
            by_args.push(Self::b("BYRADIUS"));
            by_args.push(self.distance());
            by_args.push(self.unit());
        } else if by < 9 {
            by_args.push(Self::b("BYBOX"));
            by_args.push(self.distance());
            by_args.push(self.distance());
            by_args.push(self.unit());
        }
        if self.chance(50) {
            args.extend(from_args);
            args.extend(by_args);
        } else {
            args.extend(by_args);
            args.extend(from_args);
        }
    }

    fn generate(&mut self) -> Generated {
        if !self.started {
            self.started = true;
            return Generated { label: "SET", args: vec![Self::b("SET"), Self::b(STRING_KEY), Self::b("v")] };
        }
        let total: u32 = COMMANDS.iter().map(|c| c.1).sum();
        let mut draw = self.rng.random_range(0..total);
        let name = COMMANDS
            .iter()
            .find(|(_, w)| {
                if draw < *w {
                    true
                } else {
                    draw -= w;
                    false
                }
            })
            .expect("a command")
            .0;
        let mut args = vec![Self::b(name)];
        match name {
            "GEOADD" => {
                let key = if self.chance(5) { Self::b(STRING_KEY) } else { self.dst() };
                args.push(key);
                for _ in 0..self.rng.random_range(0..2) {
                    let o = self.pick(&["NX", "XX", "CH", "ch", "GT"]);
                    args.push(Self::b(o));
                }
                for _ in 0..self.rng.random_range(1..4) {
                    args.extend(self.position());
                    args.push(self.member());
                }
                if self.chance(3) {
                    args.pop();
                }
            }
            "GEOPOS" | "GEOHASH" => {
                args.push(self.key());
                for _ in 0..self.rng.random_range(0..3) {
                    args.push(self.member());
                }
            }
            "GEODIST" => {
                args.push(self.key());
                args.push(self.member());
                args.push(self.member());
                if self.chance(60) {
                    args.push(self.unit());
                }
                if self.chance(3) {
                    args.push(Self::b("extra"));
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
                args.extend([Self::b("0"), Self::b("-1"), Self::b("WITHSCORES")]);
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
