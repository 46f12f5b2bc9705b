//! Per-core counters for INFO commandstats and errorstats. Each core counts its own; INFO
//! adds them up with a call to every core.

use std::collections::HashMap;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;
use std::time::Duration;

use shoal_resp::Frame;

#[derive(Default, Clone, Debug)]
pub struct CommandStat {
    pub calls: u64,
    pub usec: u64,
    pub rejected_calls: u64,
    pub failed_calls: u64,
    /// Calls by duration (INFO latencystats, LATENCY HISTOGRAM).
    pub histogram: LatencyHistogram,
}

/// Sub-buckets per power of two of [`LatencyHistogram`], as a power of two.
const SUB_BITS: u32 = 3;
const SUB: usize = 1 << SUB_BITS;
/// The largest power of two of nanoseconds with buckets of its own (about 18 minutes); longer
/// calls count in the last bucket.
const MAX_EXP: u32 = 40;
/// Buckets of [`LatencyHistogram`].
pub const LATENCY_BUCKETS: usize = (MAX_EXP - SUB_BITS + 2) as usize * SUB;

/// Calls by duration in nanoseconds, log-linear: eight buckets per power of two, so a
/// bucket's values lie within 12.5% of each other (Redis keeps an HDR histogram of two
/// significant digits; this is its coarser cousin, 2.5 KiB per command and core, allocated
/// with the command's first call).
#[derive(Clone, Debug)]
pub struct LatencyHistogram(Box<[u64; LATENCY_BUCKETS]>);

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram(Box::new([0; LATENCY_BUCKETS]))
    }
}

impl LatencyHistogram {
    /// The bucket of a duration of `ns` nanoseconds.
    #[inline]
    pub fn bucket(ns: u64) -> usize {
        if ns < SUB as u64 {
            return ns as usize;
        }
        let exp = 63 - ns.leading_zeros();
        if exp > MAX_EXP {
            return LATENCY_BUCKETS - 1;
        }
        let sub = (ns >> (exp - SUB_BITS)) as usize & (SUB - 1);
        (exp - SUB_BITS + 1) as usize * SUB + sub
    }

    /// The smallest and largest durations (ns) bucket `index` holds.
    pub fn bounds(index: usize) -> (u64, u64) {
        if index < SUB {
            return (index as u64, index as u64);
        }
        let exp = (index / SUB) as u32 + SUB_BITS - 1;
        let lowest = ((SUB + index % SUB) as u64) << (exp - SUB_BITS);
        (lowest, lowest + (1 << (exp - SUB_BITS)) - 1)
    }

    #[inline]
    pub fn record(&mut self, ns: u64) {
        self.0[Self::bucket(ns)] += 1;
    }

    fn add(&mut self, other: &LatencyHistogram) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0.iter()) {
            *mine += theirs;
        }
    }

    /// Calls counted.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// The duration (ns) at percentile `percentile` (0 to 100), as HDR's
    /// `hdr_value_at_percentile` finds it: the largest value of the bucket where the calls
    /// counted reach that share (at least one call); 0 when nothing was counted.
    pub fn value_at_percentile(&self, percentile: f64) -> u64 {
        let total = self.total();
        if total == 0 {
            return 0;
        }
        let wanted = ((percentile / 100.0 * total as f64 + 0.5) as u64).max(1);
        let mut seen = 0;
        for (index, count) in self.0.iter().enumerate() {
            seen += count;
            if seen >= wanted {
                return Self::bounds(index).1;
            }
        }
        Self::bounds(LATENCY_BUCKETS - 1).1
    }

    /// The calls that took less than `ns` nanoseconds (exact when `ns` is a power of two).
    pub fn count_below(&self, ns: u64) -> u64 {
        self.0.iter().enumerate().take_while(|(index, _)| Self::bounds(*index).0 < ns).map(|(_, count)| count).sum()
    }
}

impl CommandStat {
    fn add(&mut self, other: &CommandStat) {
        self.calls += other.calls;
        self.usec += other.usec;
        self.rejected_calls += other.rejected_calls;
        self.failed_calls += other.failed_calls;
        self.histogram.add(&other.histogram);
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

/// The entry of a command's first call (its histogram allocated), out of the hot path.
#[cold]
#[inline(never)]
fn first_call(by_name: &mut FastMap<NameKey, CommandStat>, key: NameKey) -> &mut CommandStat {
    by_name.entry(key).or_default()
}

impl CoreStats {
    /// Counts one executed command and, if its reply is an error, the error.
    #[inline]
    pub fn record(&mut self, name: &'static str, elapsed: Duration, reply: &Frame) {
        let key = NameKey(name);
        let stat = match self.by_name.get_mut(&key) {
            Some(stat) => stat,
            None => first_call(&mut self.by_name, key),
        };
        // Nanoseconds, from a Duration of well under 2^64 ns (584 years).
        let ns = elapsed.as_secs() * 1_000_000_000 + u64::from(elapsed.subsec_nanos());
        stat.calls += 1;
        stat.usec += ns / 1000;
        stat.histogram.record(ns);
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
        let get = total.commands()["get"].clone();
        assert_eq!((get.calls, get.usec, get.failed_calls, get.rejected_calls), (4, 14, 2, 2));
        assert_eq!(total.commands().len(), 1);
        assert_eq!(get.histogram.total(), 4);
        assert_eq!(get.histogram.count_below(3500), 2, "two calls of 3 us, two of 4");
    }

    #[test]
    fn latency_buckets_are_eight_per_power_of_two_and_tile_the_range() {
        // Every value falls in the bucket whose bounds hold it, and the buckets follow each
        // other without gaps.
        for ns in (0..5000u64).chain([1 << 20, (1 << 20) + 1, (3 << 30) + 12345, 1 << 40, (1 << 41) - 1]) {
            let (lowest, highest) = LatencyHistogram::bounds(LatencyHistogram::bucket(ns));
            assert!(lowest <= ns && ns <= highest, "{ns} in [{lowest}, {highest}]");
        }
        for index in 1..LATENCY_BUCKETS {
            assert_eq!(LatencyHistogram::bounds(index).0, LatencyHistogram::bounds(index - 1).1 + 1, "bucket {index}");
        }
        assert_eq!(LatencyHistogram::bucket(u64::MAX), LATENCY_BUCKETS - 1);
        // 12.5% wide at most.
        let (lowest, highest) = LatencyHistogram::bounds(LatencyHistogram::bucket(1_000_000));
        assert!(highest - lowest < 1_000_000 / 8, "{lowest}..{highest}");
    }

    #[test]
    fn percentiles_are_the_top_of_the_bucket_where_the_count_is_reached() {
        let mut histogram = LatencyHistogram::default();
        assert_eq!(histogram.value_at_percentile(50.0), 0);
        for ns in [1000; 98].into_iter().chain([50_000, 1_000_000]) {
            histogram.record(ns);
        }
        let top = |ns| LatencyHistogram::bounds(LatencyHistogram::bucket(ns)).1;
        assert_eq!(histogram.value_at_percentile(0.0), top(1000), "at least one call");
        assert_eq!(histogram.value_at_percentile(50.0), top(1000));
        assert_eq!(histogram.value_at_percentile(99.0), top(50_000));
        assert_eq!(histogram.value_at_percentile(99.9), top(1_000_000));
        assert_eq!(histogram.value_at_percentile(100.0), top(1_000_000));
        assert_eq!(histogram.count_below(1024), 98);
        assert_eq!(histogram.count_below(1 << 16), 99);
        assert_eq!(histogram.count_below(1 << 20), 100);
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
