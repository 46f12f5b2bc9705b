//! Per-core counters for INFO commandstats and errorstats. Each core counts its own; INFO
//! adds them up with a call to every core.

use std::collections::HashMap;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;
use std::time::Duration;

use shoal_resp::Frame;

#[derive(Default, Clone, Copy, Debug)]
pub struct CommandStat {
    pub calls: u64,
    pub usec: u64,
    pub rejected_calls: u64,
    pub failed_calls: u64,
    /// Calls by duration (LATENCY HISTOGRAM): bucket `k` counts those of at most 2^k
    /// microseconds and more than 2^(k-1) (bucket 0: at most 1).
    pub histogram: [u64; HISTOGRAM_BUCKETS],
}

/// Buckets of [`CommandStat::histogram`]: the last holds everything from 2^30 us (18 min) on.
pub const HISTOGRAM_BUCKETS: usize = 32;

/// The [`CommandStat::histogram`] bucket of a duration of `usec` microseconds.
pub fn histogram_bucket(usec: u64) -> usize {
    if usec <= 1 {
        return 0;
    }
    ((64 - (usec - 1).leading_zeros()) as usize).min(HISTOGRAM_BUCKETS - 1)
}

impl CommandStat {
    fn add(&mut self, other: &CommandStat) {
        self.calls += other.calls;
        self.usec += other.usec;
        self.rejected_calls += other.rejected_calls;
        self.failed_calls += other.failed_calls;
        for (mine, theirs) in self.histogram.iter_mut().zip(&other.histogram) {
            *mine += theirs;
        }
    }
}

#[derive(Default, Clone, Debug)]
pub struct CoreStats {
    /// By name, compared by address (see [`NameKey`]); [`CoreStats::commands`] adds up
    /// entries whose names are equal strings at different addresses.
    by_name: FastMap<NameKey, CommandStat>,
    /// Errors by prefix ("ERR", "WRONGTYPE", ...).
    pub errors: FastMap<String, u64>,
    pub commands_processed: u64,
    /// Commands per second, sampled for INFO's instantaneous_ops_per_sec.
    pub ops_rate: RateSampler,
}

/// A command's static name as a map key, hashed and compared by its address and length: a
/// command's count is found without hashing or comparing its text (measured at 2% of a
/// pipelined PFADD's time). The same text at two addresses (a literal `"ping"` and the
/// table's) makes two keys, which [`CoreStats::commands`] adds up.
#[derive(Clone, Copy, Debug)]
struct NameKey(&'static str);

impl PartialEq for NameKey {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.0, other.0)
    }
}

impl Eq for NameKey {}

impl std::hash::Hash for NameKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_usize(self.0.as_ptr().addr());
    }
}

/// Redis's instantaneous metrics: a rate sampled at most every 100 ms, averaged over the
/// last 16 samples.
#[derive(Default, Clone, Debug)]
pub struct RateSampler {
    last_ms: u64,
    last_count: u64,
    samples: [u64; 16],
    next: usize,
}

impl RateSampler {
    /// Records `count` (a running total) at `now_ms`.
    pub fn sample(&mut self, now_ms: u64, count: u64) {
        if self.last_ms == 0 {
            (self.last_ms, self.last_count) = (now_ms, count);
            return;
        }
        let elapsed_ms = now_ms.saturating_sub(self.last_ms);
        if elapsed_ms < 100 {
            return;
        }
        self.samples[self.next] = count.saturating_sub(self.last_count) * 1000 / elapsed_ms;
        self.next = (self.next + 1) % self.samples.len();
        (self.last_ms, self.last_count) = (now_ms, count);
    }

    /// The average of the samples, per second.
    pub fn per_second(&self) -> u64 {
        self.samples.iter().sum::<u64>() / self.samples.len() as u64
    }
}

impl CoreStats {
    /// Counts one executed command and, if its reply is an error, the error.
    pub fn record(&mut self, name: &'static str, elapsed: Duration, reply: &Frame) {
        let stat = self.by_name.entry(NameKey(name)).or_default();
        let usec = elapsed.as_micros() as u64;
        stat.calls += 1;
        stat.usec += usec;
        stat.histogram[histogram_bucket(usec)] += 1;
        self.commands_processed += 1;
        if let Frame::Error(text) = reply {
            stat.failed_calls += 1;
            self.count_error(text);
        }
    }

    /// Counts a command refused before it ran (unknown command, wrong arity, ...).
    pub fn record_rejected(&mut self, name: Option<&'static str>, reply: &Frame) {
        if let Some(name) = name {
            self.by_name.entry(NameKey(name)).or_default().rejected_calls += 1;
        }
        if let Frame::Error(text) = reply {
            self.count_error(text);
        }
    }

    fn count_error(&mut self, text: &[u8]) {
        let prefix = text.split(|&b| b == b' ').next().unwrap_or(b"ERR");
        *self.errors.entry(String::from_utf8_lossy(prefix).into_owned()).or_default() += 1;
    }

    /// Adds another core's counters to these.
    pub fn merge(&mut self, other: &CoreStats) {
        for (name, stat) in &other.by_name {
            self.by_name.entry(*name).or_default().add(stat);
        }
        for (prefix, count) in &other.errors {
            *self.errors.entry(prefix.clone()).or_default() += count;
        }
        self.commands_processed += other.commands_processed;
    }

    /// The counts by command name.
    pub fn commands(&self) -> FastMap<&'static str, CommandStat> {
        let mut commands = FastMap::<&'static str, CommandStat>::default();
        for (name, stat) in &self.by_name {
            commands.entry(name.0).or_default().add(stat);
        }
        commands
    }

    pub fn reset(&mut self) {
        *self = CoreStats::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_name_at_two_addresses_counts_as_one_command() {
        let elsewhere: &'static str = Box::leak(String::from("get").into_boxed_str());
        let mut stats = CoreStats::default();
        stats.record("get", Duration::from_micros(3), &Frame::Null);
        stats.record(elsewhere, Duration::from_micros(4), &Frame::Error(bytes::Bytes::from_static(b"ERR x")));
        stats.record_rejected(Some(elsewhere), &Frame::Error(bytes::Bytes::from_static(b"ERR y")));
        let mut total = CoreStats::default();
        total.merge(&stats);
        total.merge(&stats);
        let get = total.commands()["get"];
        assert_eq!((get.calls, get.usec, get.failed_calls, get.rejected_calls), (4, 14, 2, 2));
        assert_eq!(total.commands().len(), 1);
        // 3 us and 4 us both fall in the bucket of (2, 4] us.
        assert_eq!(get.histogram[2], 4);
        assert_eq!(get.histogram.iter().sum::<u64>(), 4);
    }

    #[test]
    fn histogram_buckets_are_powers_of_two_of_microseconds() {
        let cases = [(0, 0), (1, 0), (2, 1), (3, 2), (4, 2), (5, 3), (1024, 10), (1025, 11), (u64::MAX, HISTOGRAM_BUCKETS - 1)];
        for (usec, bucket) in cases {
            assert_eq!(histogram_bucket(usec), bucket, "{usec} us");
        }
    }

    #[test]
    fn the_rate_averages_sixteen_samples_of_at_least_100_ms() {
        let mut rate = RateSampler::default();
        rate.sample(1_000, 0);
        rate.sample(1_050, 999); // under 100 ms: ignored
        rate.sample(1_100, 1_000); // 1000 commands in 100 ms: 10,000 per second
        assert_eq!(rate.per_second(), 10_000 / 16);
        for i in 2..=16u64 {
            rate.sample(1_000 + 100 * i, 1_000 * i);
        }
        assert_eq!(rate.per_second(), 10_000);
    }
}

/// A cheap timer for per-command durations (INFO commandstats). Two monotonic clock reads per
/// command were 6-8% of a one-core server's time at pipeline 16; on x86-64 this reads the
/// CPU's time-stamp counter instead, converted with a rate measured once against the
/// monotonic clock ([`Stopwatch::calibrate`]). Elsewhere it is the monotonic clock.
#[derive(Clone, Copy, Debug)]
pub struct Stopwatch {
    #[cfg(target_arch = "x86_64")]
    start: u64,
    #[cfg(not(target_arch = "x86_64"))]
    start: std::time::Instant,
}

#[cfg(target_arch = "x86_64")]
static NANOS_PER_TICK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();

impl Stopwatch {
    #[cfg(target_arch = "x86_64")]
    fn ticks() -> u64 {
        // SAFETY: RDTSC has no preconditions on x86-64; it reads a counter.
        unsafe { std::arch::x86_64::_rdtsc() }
    }

    /// Measures the counter's rate (a few milliseconds, once); later calls return at once.
    /// Call it before the cores start, so no command pays for it.
    pub fn calibrate() {
        #[cfg(target_arch = "x86_64")]
        NANOS_PER_TICK.get_or_init(|| {
            let (t0, c0) = (std::time::Instant::now(), Self::ticks());
            std::thread::sleep(Duration::from_millis(5));
            let (elapsed, ticks) = (t0.elapsed(), Self::ticks().saturating_sub(c0));
            if ticks == 0 {
                0.0
            } else {
                elapsed.as_nanos() as f64 / ticks as f64
            }
        });
    }

    pub fn start() -> Stopwatch {
        #[cfg(target_arch = "x86_64")]
        return Stopwatch { start: Self::ticks() };
        #[cfg(not(target_arch = "x86_64"))]
        return Stopwatch { start: std::time::Instant::now() };
    }

    pub fn elapsed(&self) -> Duration {
        #[cfg(target_arch = "x86_64")]
        {
            Self::calibrate();
            let rate = NANOS_PER_TICK.get().copied().unwrap_or(0.0);
            Duration::from_nanos((Self::ticks().saturating_sub(self.start) as f64 * rate) as u64)
        }
        #[cfg(not(target_arch = "x86_64"))]
        self.start.elapsed()
    }
}

#[cfg(test)]
mod stopwatch_tests {
    use super::*;

    #[test]
    fn a_stopwatch_measures_what_the_clock_does() {
        Stopwatch::calibrate();
        let watch = Stopwatch::start();
        let clock = std::time::Instant::now();
        std::thread::sleep(Duration::from_millis(20));
        let (measured, real) = (watch.elapsed(), clock.elapsed());
        let ratio = measured.as_secs_f64() / real.as_secs_f64();
        assert!((0.8..1.25).contains(&ratio), "stopwatch {measured:?} against the clock {real:?}");
    }
}
