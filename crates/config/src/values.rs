//! The value types of directives and their text forms: yes/no booleans,
//! integers (Redis's strict `string2ll`), memory sizes with units (Redis's
//! `memtoull`), enums, save points, output buffer limits and keyspace event
//! flags. Each parser returns Redis's own reason text on failure.
//!
//! This module does not know directive names, bounds or where a value is
//! stored; `table` does.

/// Redis's reason for a value that is not `yes` or `no`.
pub(crate) const ERR_BOOL: &str = "argument must be 'yes' or 'no'";
/// Redis's reason for a value that is not a plain integer.
pub(crate) const ERR_INTEGER: &str = "argument couldn't be parsed into an integer";
/// Redis's reason for a value that is not a memory size.
pub(crate) const ERR_MEMORY: &str = "argument must be a memory value";
const ERR_SAVE: &str = "Invalid save parameters";
const ERR_BUFFER_LIMIT_ARITY: &str = "Wrong number of arguments in buffer limit configuration.";
const ERR_BUFFER_LIMIT_CLASS: &str = "Invalid client class specified in buffer limit configuration.";
const ERR_BUFFER_LIMIT_VALUE: &str = "Error in hard, soft or soft_seconds setting in buffer limit configuration.";
const ERR_KEYSPACE_EVENTS: &str = "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.";

/// Parses `yes` or `no`, in any case.
pub(crate) fn parse_bool(value: &[u8]) -> Result<bool, &'static str> {
    if value.eq_ignore_ascii_case(b"yes") {
        Ok(true)
    } else if value.eq_ignore_ascii_case(b"no") {
        Ok(false)
    } else {
        Err(ERR_BOOL)
    }
}

pub(crate) fn format_bool(value: bool) -> &'static str {
    if value {
        "yes"
    } else {
        "no"
    }
}

/// Parses a strict decimal `i64` like Redis's `string2ll`: no sign but `-`, no
/// leading zeros, no spaces, no `-0`.
pub(crate) fn parse_integer(value: &[u8]) -> Option<i64> {
    if value == b"0" {
        return Some(0);
    }
    let (negative, digits) = match value.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, value),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut magnitude: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        magnitude = magnitude.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if negative {
        if magnitude > i64::MIN.unsigned_abs() {
            return None;
        }
        Some(0i64.wrapping_sub_unsigned(magnitude))
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// Parses a memory size like Redis's `memtoull`: digits followed by nothing,
/// `b`, `k` (1000), `kb` (1024), `m`, `mb`, `g` or `gb`, in any case.
///
/// Redis's quirks are kept: no digits at all (`""`, `"kb"`) means 0, a number
/// too large saturates, and the unit multiplication wraps around.
pub(crate) fn parse_memory(value: &[u8]) -> Option<u64> {
    if value.first() == Some(&b'-') {
        return None;
    }
    let digits_len = value.iter().take_while(|b| b.is_ascii_digit()).count();
    let unit = &value[digits_len..];
    let multiplier: u64 = match unit.to_ascii_lowercase().as_slice() {
        b"" | b"b" => 1,
        b"k" => 1000,
        b"kb" => 1024,
        b"m" => 1000 * 1000,
        b"mb" => 1024 * 1024,
        b"g" => 1000 * 1000 * 1000,
        b"gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    // Redis copies the digits into a 128-byte buffer first.
    if digits_len >= 128 {
        return None;
    }
    let number = value[..digits_len].iter().fold(0u64, |n, &d| n.checked_mul(10).and_then(|n| n.checked_add(u64::from(d - b'0'))).unwrap_or(u64::MAX));
    Some(number.wrapping_mul(multiplier))
}

/// Formats bytes the way CONFIG REWRITE does: the largest of `gb`, `mb`, `kb`
/// that divides the value exactly, else plain bytes.
pub(crate) fn format_memory(bytes: u64) -> String {
    const KB: u64 = 1024;
    const MB: u64 = 1024 * 1024;
    const GB: u64 = 1024 * 1024 * 1024;
    if bytes != 0 && bytes % GB == 0 {
        format!("{}gb", bytes / GB)
    } else if bytes != 0 && bytes % MB == 0 {
        format!("{}mb", bytes / MB)
    } else if bytes != 0 && bytes % KB == 0 {
        format!("{}kb", bytes / KB)
    } else {
        bytes.to_string()
    }
}

/// C's `strtoll(s, &end, 10)` followed by Redis's `*end == '\0'` check:
/// leading whitespace and a sign are allowed, the result saturates, and an
/// empty string is 0. `None` when bytes are left over.
fn parse_c_integer(value: &[u8]) -> Option<i64> {
    let mut i = value.iter().take_while(|&&b| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')).count();
    let negative = match value.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let digits = value[i..].iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        // No conversion: `end` stays at the start of the string.
        return value.is_empty().then_some(0);
    }
    if i + digits != value.len() {
        return None;
    }
    let mut n: i64 = 0;
    for &d in &value[i..] {
        let d = i64::from(d - b'0');
        n = if negative { n.saturating_mul(10).saturating_sub(d) } else { n.saturating_mul(10).saturating_add(d) };
    }
    Some(n)
}

/// One `save <seconds> <changes>` point: snapshot when at least `changes`
/// writes happened in the last `seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SavePoint {
    pub seconds: u64,
    pub changes: u64,
}

/// Validates the arguments of `save` (pairs of seconds >= 1 and changes >= 0,
/// parsed like C's `strtoll`) and returns the points.
///
/// Deviation from Redis, on purpose: Redis stores `changes` in a C `int` and
/// silently truncates larger values; we reject them.
pub(crate) fn parse_save(args: &[Vec<u8>]) -> Result<Vec<SavePoint>, &'static str> {
    if args.len() % 2 != 0 {
        return Err(ERR_SAVE);
    }
    let mut points = Vec::with_capacity(args.len() / 2);
    for pair in args.chunks(2) {
        let seconds = parse_c_integer(&pair[0]).ok_or(ERR_SAVE)?;
        let changes = parse_c_integer(&pair[1]).ok_or(ERR_SAVE)?;
        if seconds < 1 || changes < 0 || changes > i64::from(i32::MAX) {
            return Err(ERR_SAVE);
        }
        points.push(SavePoint { seconds: seconds.unsigned_abs(), changes: changes.unsigned_abs() });
    }
    Ok(points)
}

/// The output buffer limits of one class of clients. A limit of 0 is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputBufferLimit {
    /// Disconnect as soon as the output buffer reaches this size.
    pub hard_bytes: u64,
    /// Disconnect when the buffer stays above this size...
    pub soft_bytes: u64,
    /// ...for this many seconds in a row.
    pub soft_seconds: u64,
}

/// `client-output-buffer-limit`, per class of client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientOutputBufferLimits {
    pub normal: OutputBufferLimit,
    /// Also named `slave` (CONFIG GET prints `slave`, CONFIG REWRITE `replica`).
    pub replica: OutputBufferLimit,
    pub pubsub: OutputBufferLimit,
}

impl ClientOutputBufferLimits {
    /// The classes in Redis's order, with the names CONFIG GET prints.
    pub(crate) fn classes(&self) -> [(&'static str, OutputBufferLimit); 3] {
        [("normal", self.normal), ("slave", self.replica), ("pubsub", self.pubsub)]
    }

    /// Applies `<class> <hard> <soft> <soft-seconds>` groups: all of them or,
    /// on any error, none. No groups at all is accepted and changes nothing,
    /// as in Redis.
    ///
    /// Deviation from Redis, on purpose: soft seconds beyond a C `int` are
    /// rejected instead of truncated.
    pub(crate) fn apply(&mut self, args: &[Vec<u8>]) -> Result<(), &'static str> {
        if args.len() % 4 != 0 {
            return Err(ERR_BUFFER_LIMIT_ARITY);
        }
        let mut updated = *self;
        for group in args.chunks(4) {
            let class = match group[0].to_ascii_lowercase().as_slice() {
                b"normal" => &mut updated.normal,
                b"replica" | b"slave" => &mut updated.replica,
                b"pubsub" => &mut updated.pubsub,
                _ => return Err(ERR_BUFFER_LIMIT_CLASS),
            };
            let hard_bytes = parse_memory(&group[1]).ok_or(ERR_BUFFER_LIMIT_VALUE)?;
            let soft_bytes = parse_memory(&group[2]).ok_or(ERR_BUFFER_LIMIT_VALUE)?;
            let soft_seconds = parse_c_integer(&group[3]).filter(|s| (0..=i64::from(i32::MAX)).contains(s)).ok_or(ERR_BUFFER_LIMIT_VALUE)?;
            *class = OutputBufferLimit { hard_bytes, soft_bytes, soft_seconds: soft_seconds.unsigned_abs() };
        }
        *self = updated;
        Ok(())
    }
}

/// The `notify-keyspace-events` flags, as Redis's bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyspaceEvents(u32);

use keyspace_classes as C;

/// The classes of `notify-keyspace-events`, one bit each (Redis's `NOTIFY_*`), shared by
/// the parser here and the commands that emit events.
pub mod keyspace_classes {
    /// `K`: publish on `__keyspace@<db>__:<key>`.
    pub const KEYSPACE: u32 = 1 << 0;
    /// `E`: publish on `__keyevent@<db>__:<event>`.
    pub const KEYEVENT: u32 = 1 << 1;
    pub const GENERIC: u32 = 1 << 2;
    pub const STRING: u32 = 1 << 3;
    pub const LIST: u32 = 1 << 4;
    pub const SET: u32 = 1 << 5;
    pub const HASH: u32 = 1 << 6;
    pub const ZSET: u32 = 1 << 7;
    pub const EXPIRED: u32 = 1 << 8;
    pub const EVICTED: u32 = 1 << 9;
    pub const STREAM: u32 = 1 << 10;
    pub const KEY_MISS: u32 = 1 << 11;
    pub const MODULE: u32 = 1 << 12;
    pub const NEW: u32 = 1 << 14;
}

impl KeyspaceEvents {
    /// `A`: every class but key-miss and new-key events.
    pub const ALL: u32 = C::GENERIC | C::STRING | C::LIST | C::SET | C::HASH | C::ZSET | C::EXPIRED | C::EVICTED | C::STREAM | C::MODULE;

    /// The raw bits.
    pub fn bits(self) -> u32 {
        self.0
    }

    /// Whether any of `flags` is set.
    pub fn contains_any(self, flags: u32) -> bool {
        self.0 & flags != 0
    }

    /// Parses the flag characters, like Redis's `keyspaceEventsStringToFlags`.
    pub(crate) fn parse(value: &[u8]) -> Result<Self, &'static str> {
        let mut bits = 0;
        for &c in value {
            bits |= match c {
                b'A' => Self::ALL,
                b'g' => C::GENERIC,
                b'$' => C::STRING,
                b'l' => C::LIST,
                b's' => C::SET,
                b'h' => C::HASH,
                b'z' => C::ZSET,
                b'x' => C::EXPIRED,
                b'e' => C::EVICTED,
                b'K' => C::KEYSPACE,
                b'E' => C::KEYEVENT,
                b't' => C::STREAM,
                b'm' => C::KEY_MISS,
                b'd' => C::MODULE,
                b'n' => C::NEW,
                _ => return Err(ERR_KEYSPACE_EVENTS),
            };
        }
        Ok(KeyspaceEvents(bits))
    }
}

impl std::fmt::Display for KeyspaceEvents {
    /// Like Redis's `keyspaceEventsFlagsToString`, including its quirk: when
    /// every `A` class is set, `A` is printed and `n` is not.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bits = self.0;
        let mut out = String::new();
        if bits & Self::ALL == Self::ALL {
            out.push('A');
        } else {
            let classes = [
                (C::GENERIC, 'g'),
                (C::STRING, '$'),
                (C::LIST, 'l'),
                (C::SET, 's'),
                (C::HASH, 'h'),
                (C::ZSET, 'z'),
                (C::EXPIRED, 'x'),
                (C::EVICTED, 'e'),
                (C::STREAM, 't'),
                (C::MODULE, 'd'),
                (C::NEW, 'n'),
            ];
            out.extend(classes.iter().filter(|(flag, _)| bits & flag != 0).map(|(_, c)| c));
        }
        for (flag, c) in [(C::KEYSPACE, 'K'), (C::KEYEVENT, 'E'), (C::KEY_MISS, 'm')] {
            if bits & flag != 0 {
                out.push(c);
            }
        }
        f.write_str(&out)
    }
}

/// An enum directive's Rust type: its names, in Redis's order (the order of
/// the error message), and the mapping to and from an index into them.
pub(crate) trait ConfigEnum: Copy + Sized + 'static {
    const NAMES: &'static [&'static str];
    const VALUES: &'static [Self];
    fn index(self) -> usize;
}

macro_rules! config_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl ConfigEnum for $name {
            const NAMES: &'static [&'static str] = &[$($text,)+];
            const VALUES: &'static [Self] = &[$($name::$variant,)+];
            fn index(self) -> usize {
                self as usize
            }
        }

        impl $name {
            /// The name as CONFIG GET prints it.
            pub fn as_str(self) -> &'static str {
                Self::NAMES[self as usize]
            }
        }
    };
}

config_enum! {
    /// `loglevel`, from the most verbose to the least.
    LogLevel {
        Debug = "debug",
        Verbose = "verbose",
        Notice = "notice",
        Warning = "warning",
        /// Log nothing (Redis 7.2).
        Nothing = "nothing",
    }
}

config_enum! {
    /// `maxmemory-policy`: what to evict when `maxmemory` is reached.
    MaxmemoryPolicy {
        VolatileLru = "volatile-lru",
        VolatileLfu = "volatile-lfu",
        VolatileRandom = "volatile-random",
        VolatileTtl = "volatile-ttl",
        AllkeysLru = "allkeys-lru",
        AllkeysLfu = "allkeys-lfu",
        AllkeysRandom = "allkeys-random",
        /// Evict nothing: refuse writes that need memory.
        Noeviction = "noeviction",
    }
}

config_enum! {
    /// `appendfsync`: when the append-only file is fsynced.
    AppendFsync {
        Everysec = "everysec",
        Always = "always",
        No = "no",
    }
}

config_enum! {
    /// `enable-protected-configs`: who may CONFIG SET `dir` and `dbfilename`.
    ProtectedConfigs {
        No = "no",
        Yes = "yes",
        /// Only clients connected over loopback or a Unix socket.
        Local = "local",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_strict_like_string2ll() {
        let cases: &[(&str, Option<i64>)] = &[
            ("0", Some(0)),
            ("42", Some(42)),
            ("-1", Some(-1)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("-9223372036854775809", None),
            ("07", None),
            ("-0", None),
            ("+7", None),
            (" 7", None),
            ("7 ", None),
            ("1k", None),
            ("", None),
            ("-", None),
        ];
        for &(text, expected) in cases {
            assert_eq!(parse_integer(text.as_bytes()), expected, "parsing {text:?}");
        }
    }

    #[test]
    fn memory_values_take_decimal_and_binary_units_in_any_case() {
        let cases: &[(&str, Option<u64>)] = &[
            ("5", Some(5)),
            ("5b", Some(5)),
            ("5B", Some(5)),
            ("1k", Some(1000)),
            ("1K", Some(1000)),
            ("1kb", Some(1024)),
            ("1Kb", Some(1024)),
            ("2m", Some(2_000_000)),
            ("2mb", Some(2 * 1024 * 1024)),
            ("3g", Some(3_000_000_000)),
            ("3GB", Some(3 * 1024 * 1024 * 1024)),
            ("0001k", Some(1000)),
            ("", Some(0)),
            ("kb", Some(0)),
            ("99999999999999999999999", Some(u64::MAX)),
            ("20000000000gb", Some(20_000_000_000u64.wrapping_mul(1 << 30))),
            ("-1", None),
            ("1x", None),
            ("1.5kb", None),
            (" 1", None),
            ("1 ", None),
            ("+5", None),
            ("0x10", None),
        ];
        for &(text, expected) in cases {
            assert_eq!(parse_memory(text.as_bytes()), expected, "parsing {text:?}");
        }
    }

    #[test]
    fn memory_formatting_uses_the_largest_exact_unit() {
        assert_eq!(format_memory(0), "0");
        assert_eq!(format_memory(1000), "1000");
        assert_eq!(format_memory(1024), "1kb");
        assert_eq!(format_memory(3 * 1024 * 1024), "3mb");
        assert_eq!(format_memory(1 << 30), "1gb");
        assert_eq!(format_memory(3_000_000), "3000000");
    }

    #[test]
    fn save_points_parse_like_strtoll() {
        let args = |list: &[&str]| list.iter().map(|a| a.as_bytes().to_vec()).collect::<Vec<_>>();
        assert_eq!(parse_save(&args(&["+5", "-0"])), Ok(vec![SavePoint { seconds: 5, changes: 0 }]));
        assert_eq!(parse_save(&args(&[" 10", ""])), Ok(vec![SavePoint { seconds: 10, changes: 0 }]));
        assert_eq!(parse_save(&args(&[])), Ok(vec![]));
        for bad in [&["1"][..], &["0", "1"], &["1", "-1"], &["a", "b"], &["1", "1 "], &["", "1"]] {
            assert_eq!(parse_save(&args(bad)), Err(ERR_SAVE), "save {bad:?}");
        }
    }

    #[test]
    fn keyspace_events_print_in_redis_order() {
        let cases = [("gd", "gd"), ("A", "A"), ("An", "A"), ("KmA", "AKm"), ("g$lshzxetd", "A"), ("g$lshzxet", "g$lshzxet"), ("Ex", "xE"), ("", "")];
        for (input, printed) in cases {
            let events = KeyspaceEvents::parse(input.as_bytes()).expect("valid flags");
            assert_eq!(events.to_string(), printed, "flags {input:?}");
        }
        assert_eq!(KeyspaceEvents::parse(b"KQ"), Err(ERR_KEYSPACE_EVENTS));
    }

    #[test]
    fn buffer_limits_apply_all_groups_or_none() {
        let args = |list: &[&str]| list.iter().map(|a| a.as_bytes().to_vec()).collect::<Vec<_>>();
        let zero = OutputBufferLimit { hard_bytes: 0, soft_bytes: 0, soft_seconds: 0 };
        let mut limits = ClientOutputBufferLimits { normal: zero, replica: zero, pubsub: zero };
        let before = limits;
        assert_eq!(limits.apply(&args(&["normal", "1", "1", "1", "pubsub", "1x", "1", "1"])), Err(ERR_BUFFER_LIMIT_VALUE));
        assert_eq!(limits, before);
        assert_eq!(limits.apply(&args(&["normal", "1", "1"])), Err(ERR_BUFFER_LIMIT_ARITY));
        assert_eq!(limits.apply(&args(&[""])), Err(ERR_BUFFER_LIMIT_ARITY));
        assert_eq!(limits.apply(&args(&[])), Ok(()));
        assert_eq!(limits, before);
        assert_eq!(limits.apply(&args(&["master", "1", "1", "1"])), Err(ERR_BUFFER_LIMIT_CLASS));
        assert_eq!(limits.apply(&args(&["normal", "1", "1", "-1"])), Err(ERR_BUFFER_LIMIT_VALUE));
        assert_eq!(limits.apply(&args(&["NORMAL", "1mb", "2k", "3", "slave", "1", "2", "3"])), Ok(()));
        assert_eq!(limits.normal.hard_bytes, 1024 * 1024);
        assert_eq!(limits.normal.soft_bytes, 2000);
        assert_eq!(limits.normal.soft_seconds, 3);
        assert_eq!(limits.replica.soft_seconds, 3);
    }
}

/// `latency-tracking-info-percentiles`: each within [0, 100], never NaN (the parser refuses
/// it), which makes equality total.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Percentiles(pub Vec<f64>);

impl Eq for Percentiles {}
