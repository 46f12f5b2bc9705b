//! The latency monitor (`latency-monitor-threshold`, LATENCY): per event, the latency spikes
//! of the last 160 seconds that had one, at most one sample per second (the worst).
//!
//! Each core keeps its own series, fed by the commands it runs (events `command` and
//! `fast-command`, as Redis names them); LATENCY (in the server crate) merges the cores'
//! series: a second's sample is the worst of any core's in that second.

use std::cell::{Cell, RefCell};

/// Samples kept per event (Redis's `LATENCY_TS_LEN`).
pub const SERIES_LEN: usize = 160;

/// One second's worst latency, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    /// Unix seconds.
    pub time: u64,
    pub ms: u64,
}

/// An event's recent samples, oldest first, and its worst latency ever.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Series {
    pub samples: Vec<Sample>,
    pub max: u64,
}

impl Series {
    /// Adds a sample taken at `time`: within the same second as the last one, it only raises
    /// that one.
    pub fn add(&mut self, time: u64, ms: u64) {
        self.max = self.max.max(ms);
        if let Some(last) = self.samples.last_mut().filter(|last| last.time == time) {
            last.ms = last.ms.max(ms);
            return;
        }
        if self.samples.len() == SERIES_LEN {
            self.samples.remove(0);
        }
        self.samples.push(Sample { time, ms });
    }

    /// Adds another core's series of the same event to this one.
    pub fn merge(&mut self, other: &Series) {
        self.max = self.max.max(other.max);
        let mut all: Vec<Sample> = self.samples.iter().chain(&other.samples).copied().collect();
        all.sort_by_key(|s| (s.time, std::cmp::Reverse(s.ms)));
        all.dedup_by_key(|s| s.time);
        let skip = all.len().saturating_sub(SERIES_LEN);
        self.samples = all.split_off(skip);
    }
}

/// A core's latency monitor.
#[derive(Default)]
pub struct Monitor {
    /// `latency-monitor-threshold` in milliseconds; 0: off.
    threshold_ms: Cell<u64>,
    events: RefCell<Vec<(&'static str, Series)>>,
}

impl Monitor {
    pub fn configure(&self, threshold_ms: u64) {
        self.threshold_ms.set(threshold_ms);
    }

    /// Records a latency of `ms` milliseconds for `event` when the monitor is on and it
    /// reaches the threshold.
    pub fn note(&self, event: &'static str, ms: u64) {
        let threshold = self.threshold_ms.get();
        if threshold == 0 || ms < threshold {
            return;
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut events = self.events.borrow_mut();
        match events.iter_mut().find(|(name, _)| *name == event) {
            Some((_, series)) => series.add(now, ms),
            None => {
                let mut series = Series::default();
                series.add(now, ms);
                events.push((event, series));
            }
        }
    }

    /// Every event's series.
    pub fn events(&self) -> Vec<(&'static str, Series)> {
        self.events.borrow().clone()
    }

    /// Forgets the events named (all of them when `names` is empty); returns those it had.
    pub fn reset(&self, names: &[String]) -> Vec<&'static str> {
        let mut events = self.events.borrow_mut();
        let (gone, kept): (Vec<_>, Vec<_>) = events.drain(..).partition(|(name, _)| names.is_empty() || names.iter().any(|n| n.eq_ignore_ascii_case(name)));
        *events = kept;
        gone.into_iter().map(|(name, _)| name).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_series_keeps_the_worst_sample_per_second_and_the_last_160_seconds() {
        let mut series = Series::default();
        series.add(10, 5);
        series.add(10, 9);
        series.add(10, 7);
        series.add(11, 3);
        assert_eq!(series.samples, vec![Sample { time: 10, ms: 9 }, Sample { time: 11, ms: 3 }]);
        assert_eq!(series.max, 9);
        for time in 12..300 {
            series.add(time, 1);
        }
        assert_eq!(series.samples.len(), SERIES_LEN);
        assert_eq!(series.samples[0].time, 300 - SERIES_LEN as u64);
        assert_eq!(series.max, 9, "the worst ever outlives its sample");
    }

    #[test]
    fn merged_series_keep_each_seconds_worst_sample_in_time_order() {
        let mut a = Series::default();
        a.add(1, 4);
        a.add(3, 2);
        let mut b = Series::default();
        b.add(1, 6);
        b.add(2, 5);
        b.add(3, 1);
        a.merge(&b);
        assert_eq!(a.samples, vec![Sample { time: 1, ms: 6 }, Sample { time: 2, ms: 5 }, Sample { time: 3, ms: 2 }]);
        assert_eq!(a.max, 6);
    }

    #[test]
    fn the_monitor_records_only_at_or_over_its_threshold_and_resets_by_name() {
        let monitor = Monitor::default();
        monitor.note("command", 100);
        assert!(monitor.events().is_empty(), "off by default");
        monitor.configure(10);
        monitor.note("command", 9);
        assert!(monitor.events().is_empty());
        monitor.note("command", 10);
        monitor.note("fast-command", 12);
        assert_eq!(monitor.events().len(), 2);
        assert_eq!(monitor.reset(&["COMMAND".to_string(), "nosuch".to_string()]), vec!["command"]);
        assert_eq!(monitor.reset(&[]), vec!["fast-command"]);
        assert!(monitor.events().is_empty());
    }
}
