//! Workloads: what one unit sends and which replies it must get back.
//!
//! A unit is what the results count: one plain command, one `MULTI` .. `EXEC` transaction,
//! or one `EVALSHA`. Keys follow redis-benchmark's `-r` convention for plain keys
//! (`key:` and a 12-digit, zero-padded random number below the range), so the `get` and
//! `set` workloads send the same bytes redis-benchmark sends and can calibrate this tool
//! against it. Transaction keys come from [`crate::keys`].

use crate::keys::{push_tx_key, TxKeys, TX_KEY_COUNT};
use crate::resp::Expect;
use crate::rng::Rng;

/// The script the `evalsha` workload loads once and then calls.
pub const INCR_SCRIPT: &str = "return redis.call('INCR', KEYS[1])";

/// The workload a run sends, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// `MULTI`, `INCR` of five keys on different cores, `EXEC`, as one unit.
    MultiIncr5,
    /// `EVALSHA` of a script that INCRs its one key.
    Evalsha,
    /// `GET` or `SET` (half each) of one key; `--tx-percent` of units are `multi-incr5` instead.
    Mixed,
    /// `GET` of one key.
    Get,
    /// `SET` of one key.
    Set,
}

/// The kind of one unit, which fixes its commands and the replies they must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitKind {
    Get,
    Set,
    MultiIncr5,
    Evalsha,
}

impl UnitKind {
    /// The replies this unit gets, in order.
    pub fn expects(self) -> &'static [Expect] {
        const MULTI_INCR5: [Expect; TX_KEY_COUNT + 2] =
            [Expect::Ok, Expect::Queued, Expect::Queued, Expect::Queued, Expect::Queued, Expect::Queued, Expect::PositiveIntegers(TX_KEY_COUNT)];
        match self {
            UnitKind::Get => &[Expect::BulkOrNil],
            UnitKind::Set => &[Expect::Ok],
            UnitKind::MultiIncr5 => &MULTI_INCR5,
            UnitKind::Evalsha => &[Expect::Integer],
        }
    }

    /// The command whose reply is the `index`th of this unit, for error messages.
    pub fn command(self, index: usize) -> &'static str {
        match self {
            UnitKind::Get => "GET",
            UnitKind::Set => "SET",
            UnitKind::Evalsha => "EVALSHA",
            UnitKind::MultiIncr5 => match index {
                0 => "MULTI",
                i if i <= TX_KEY_COUNT => "INCR (inside MULTI)",
                _ => "EXEC",
            },
        }
    }
}

/// What a [`Generator`] needs besides the workload.
#[derive(Debug, Clone)]
pub struct Settings {
    pub workload: Workload,
    /// Random keys are drawn from `0..key_range` (redis-benchmark's `-r`).
    pub key_range: u64,
    /// Bytes in each SET value.
    pub value_size: usize,
    /// Share of `mixed` units that are transactions, 0 to 100.
    pub tx_percent: f64,
    /// Threads of the server the transaction keys are spread for.
    pub tx_cores: usize,
    /// All five keys of a transaction on one core (as with hash tags).
    pub tx_one_core: bool,
    pub seed: u64,
}

/// Writes units into a connection's output buffer.
#[derive(Debug)]
pub struct Generator {
    workload: Workload,
    key_range: u64,
    /// `tx_percent` in hundredths of a percent, compared with a draw below 10,000.
    tx_per_10000: u64,
    tx_keys: Option<TxKeys>,
    value: Vec<u8>,
    /// The loaded script's SHA1, set by [`Generator::set_script_sha`] before an `evalsha` run.
    script_sha: Option<String>,
    rng: Rng,
    key: Vec<u8>,
}

impl Generator {
    pub fn new(settings: &Settings) -> Result<Generator, String> {
        if settings.key_range == 0 {
            return Err("the key range (-r) must be at least 1".to_string());
        }
        if !(0.0..=100.0).contains(&settings.tx_percent) {
            return Err(format!("--tx-percent {} is not between 0 and 100", settings.tx_percent));
        }
        let needs_tx = match settings.workload {
            Workload::MultiIncr5 => true,
            Workload::Mixed => settings.tx_percent > 0.0,
            _ => false,
        };
        let tx_keys = if needs_tx { Some(TxKeys::new(settings.key_range, settings.tx_cores, settings.tx_one_core)?) } else { None };
        Ok(Generator {
            workload: settings.workload,
            key_range: settings.key_range,
            tx_per_10000: (settings.tx_percent * 100.0).round() as u64,
            tx_keys,
            value: vec![b'x'; settings.value_size],
            script_sha: None,
            rng: Rng::new(settings.seed),
            key: Vec::with_capacity(32),
        })
    }

    pub fn set_script_sha(&mut self, sha: String) {
        self.script_sha = Some(sha);
    }

    /// Appends one unit's commands to `out` and says which kind it was.
    pub fn push_unit(&mut self, out: &mut Vec<u8>) -> UnitKind {
        let kind = match self.workload {
            Workload::MultiIncr5 => UnitKind::MultiIncr5,
            Workload::Evalsha => UnitKind::Evalsha,
            Workload::Get => UnitKind::Get,
            Workload::Set => UnitKind::Set,
            Workload::Mixed => {
                if self.tx_per_10000 > 0 && self.rng.below(10_000) < self.tx_per_10000 {
                    UnitKind::MultiIncr5
                } else if self.rng.below(2) == 0 {
                    UnitKind::Get
                } else {
                    UnitKind::Set
                }
            }
        };
        match kind {
            UnitKind::Get => {
                self.draw_plain_key();
                push_command(out, &[b"GET", &self.key]);
            }
            UnitKind::Set => {
                self.draw_plain_key();
                push_command(out, &[b"SET", &self.key, &self.value]);
            }
            UnitKind::Evalsha => {
                self.draw_plain_key();
                let sha = self.script_sha.as_ref().expect("the script is loaded before an evalsha run");
                push_command(out, &[b"EVALSHA", sha.as_bytes(), b"1", &self.key]);
            }
            UnitKind::MultiIncr5 => {
                let tx_keys = self.tx_keys.as_ref().expect("transaction keys exist for workloads with transactions");
                let tags = tx_keys.pick(&mut self.rng);
                push_command(out, &[b"MULTI"]);
                for (position, &tag) in tags.iter().enumerate() {
                    self.key.clear();
                    push_tx_key(&mut self.key, tag, position);
                    push_command(out, &[b"INCR", &self.key]);
                }
                push_command(out, &[b"EXEC"]);
            }
        }
        kind
    }

    /// `key:` and a 12-digit random number, as redis-benchmark's `key:__rand_int__`.
    fn draw_plain_key(&mut self) {
        let number = self.rng.below(self.key_range);
        self.key.clear();
        self.key.extend_from_slice(b"key:");
        let digits = itoa::Buffer::new().format(number).len();
        self.key.resize(4 + 12usize.saturating_sub(digits), b'0');
        self.key.extend_from_slice(itoa::Buffer::new().format(number).as_bytes());
    }
}

/// Appends a command as a RESP array of bulk strings.
pub fn push_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    let mut numbers = itoa::Buffer::new();
    out.push(b'*');
    out.extend_from_slice(numbers.format(args.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for arg in args {
        out.push(b'$');
        out.extend_from_slice(numbers.format(arg.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::key_core;
    use crate::resp::{parse, Reply};

    fn settings(workload: Workload) -> Settings {
        Settings { workload, key_range: 100_000, value_size: 64, tx_percent: 10.0, tx_cores: 4, tx_one_core: false, seed: 3 }
    }

    /// Splits `bytes` into commands, each a list of its arguments (our reply parser reads
    /// commands too: they are RESP arrays of bulk strings).
    fn commands(mut bytes: &[u8]) -> Vec<Vec<Vec<u8>>> {
        let mut commands = Vec::new();
        while !bytes.is_empty() {
            let (reply, consumed) = parse(bytes).unwrap().expect("a whole command");
            let Reply::Array(Some(items)) = reply else { panic!("a command is an array: {reply}") };
            commands.push(items.iter().map(|item| if let Reply::Bulk(Some(arg)) = item { arg.to_vec() } else { panic!("{item}") }).collect());
            bytes = &bytes[consumed..];
        }
        commands
    }

    #[test]
    fn get_and_set_send_redis_benchmark_keys_and_values() {
        let mut out = Vec::new();
        assert_eq!(Generator::new(&settings(Workload::Get)).unwrap().push_unit(&mut out), UnitKind::Get);
        let sent = commands(&out);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0][0], b"GET");
        assert_eq!(sent[0][1].len(), 16, "key:000000012345 is 16 bytes");
        assert!(sent[0][1].starts_with(b"key:"));
        out.clear();
        Generator::new(&settings(Workload::Set)).unwrap().push_unit(&mut out);
        let sent = commands(&out);
        assert_eq!(sent[0][0], b"SET");
        assert_eq!(sent[0][2], vec![b'x'; 64]);
    }

    #[test]
    fn a_transaction_unit_is_multi_five_incrs_on_four_cores_and_exec() {
        let mut generator = Generator::new(&settings(Workload::MultiIncr5)).unwrap();
        let mut out = Vec::new();
        assert_eq!(generator.push_unit(&mut out), UnitKind::MultiIncr5);
        let sent = commands(&out);
        assert_eq!(sent.len(), 7);
        assert_eq!(sent[0], vec![b"MULTI".to_vec()]);
        assert_eq!(sent[6], vec![b"EXEC".to_vec()]);
        let mut cores: Vec<usize> = sent[1..6]
            .iter()
            .map(|command| {
                assert_eq!(command[0], b"INCR");
                key_core(&command[1], 4)
            })
            .collect();
        cores.sort_unstable();
        cores.dedup();
        assert_eq!(cores.len(), 4);
        assert_eq!(UnitKind::MultiIncr5.expects().len(), sent.len(), "one expected reply per command");
    }

    #[test]
    fn evalsha_sends_the_loaded_sha_and_one_key() {
        let mut generator = Generator::new(&settings(Workload::Evalsha)).unwrap();
        generator.set_script_sha("abc".to_string());
        let mut out = Vec::new();
        generator.push_unit(&mut out);
        let sent = commands(&out);
        assert_eq!(sent[0][..3], [b"EVALSHA".to_vec(), b"abc".to_vec(), b"1".to_vec()]);
    }

    #[test]
    fn mixed_sends_about_tx_percent_transactions() {
        let mut generator = Generator::new(&settings(Workload::Mixed)).unwrap();
        let mut out = Vec::new();
        let mut counts = [0u32; 3];
        for _ in 0..10_000 {
            match generator.push_unit(&mut out) {
                UnitKind::MultiIncr5 => counts[0] += 1,
                UnitKind::Get => counts[1] += 1,
                UnitKind::Set => counts[2] += 1,
                UnitKind::Evalsha => panic!("mixed sends no scripts"),
            }
        }
        assert!((800..1200).contains(&counts[0]), "{counts:?}");
        assert!((4000..5000).contains(&counts[1]), "{counts:?}");
    }

    #[test]
    fn mixed_without_transactions_needs_no_transaction_keys() {
        let tiny = Settings { key_range: 1, tx_percent: 0.0, ..settings(Workload::Mixed) };
        assert!(Generator::new(&tiny).is_ok());
        assert!(Generator::new(&Settings { tx_percent: 101.0, ..settings(Workload::Mixed) }).is_err());
    }
}
