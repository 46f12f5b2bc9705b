//! LATENCY LATEST, HISTORY, RESET, GRAPH, DOCTOR, HISTOGRAM and HELP over every core's latency
//! monitor (see `shoal_runtime::latency`) and command statistics.
//!
//! The replies are Redis's, except two texts meant for people: GRAPH draws its own chart
//! under Redis's header lines, and DOCTOR's report on observed spikes gives Redis's summary
//! line per event but only the advice about slow commands.

use std::rc::Rc;

use bytes::Bytes;
use shoal_commands::args;
use shoal_commands::errors;
use shoal_commands::table::{self, CommandSpec};
use shoal_resp::Frame;
use shoal_runtime::latency::Series;
use shoal_runtime::stats::CommandStat;

use crate::node::Node;
use crate::server_commands::{bulk, help, text};

pub async fn latency(node: &Rc<Node>, spec: &'static CommandSpec, args: &[Bytes]) -> Frame {
    match spec.name {
        "latency|latest" => Frame::Array(
            events(node)
                .await
                .into_iter()
                .filter_map(|(name, series)| {
                    let last = series.samples.last()?;
                    Some(Frame::Array(vec![bulk(name), Frame::Integer(last.time as i64), Frame::Integer(last.ms as i64), Frame::Integer(series.max as i64)]))
                })
                .collect(),
        ),
        "latency|history" => {
            let series = event(node, &args[2]).await.unwrap_or_default();
            Frame::Array(series.samples.iter().map(|s| Frame::Array(vec![Frame::Integer(s.time as i64), Frame::Integer(s.ms as i64)])).collect())
        }
        "latency|reset" => {
            let names: Vec<String> = args[2..].iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect();
            let mut gone: Vec<&'static str> = node.core.call_all(move |core| core.latency.reset(&names)).await.into_iter().flatten().collect();
            gone.sort_unstable();
            gone.dedup();
            args::int(gone.len())
        }
        "latency|graph" => match event(node, &args[2]).await.filter(|s| !s.samples.is_empty()) {
            Some(series) => text(graph(&String::from_utf8_lossy(&args[2]), &series, unix_now())),
            None => errors::error(&format!("ERR No samples available for event '{}'", String::from_utf8_lossy(&args[2]))),
        },
        "latency|doctor" => {
            let threshold = node.config.borrow().latency_monitor_threshold;
            text(doctor(threshold, &events(node).await, unix_now()))
        }
        "latency|histogram" => histogram(node, &args[2..]).await,
        "latency|help" => help(
            "LATENCY",
            &[
                "DOCTOR",
                "    Return a human readable latency analysis report.",
                "GRAPH <event>",
                "    Return an ASCII latency graph for the <event> class.",
                "HISTORY <event>",
                "    Return time-latency samples for the <event> class.",
                "LATEST",
                "    Return the latest latency samples for all events.",
                "RESET [<event> ...]",
                "    Reset latency data of one or more <event> classes.",
                "    (default: reset all data for all event classes)",
                "HISTOGRAM [COMMAND ...]",
                "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
                "    If no commands are specified then all histograms are replied.",
            ],
        ),
        _ => unreachable!("{} is a LATENCY subcommand", spec.name),
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Every event's series, merged over the cores, in the order events first appeared.
async fn events(node: &Rc<Node>) -> Vec<(&'static str, Series)> {
    let mut merged: Vec<(&'static str, Series)> = Vec::new();
    for events in node.core.call_all(|core| core.latency.events()).await {
        for (name, series) in events {
            match merged.iter_mut().find(|(n, _)| *n == name) {
                Some((_, mine)) => mine.merge(&series),
                None => merged.push((name, series)),
            }
        }
    }
    merged
}

/// One event's merged series (event names compare without case, as Redis's dictionary).
async fn event(node: &Rc<Node>, name: &[u8]) -> Option<Series> {
    events(node).await.into_iter().find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name)).map(|(_, series)| series)
}

/// LATENCY GRAPH's text: Redis's two header lines, then one column per sample, four rows
/// high with three levels per row (`_`, `o`, `#`; `|` below a column's top), and under it
/// each sample's age, written downwards.
fn graph(name: &str, series: &Series, now: u64) -> String {
    let high = series.samples.iter().map(|s| s.ms).max().unwrap_or(0);
    let low = series.samples.iter().map(|s| s.ms).min().unwrap_or(0);
    let mut out = format!("{name} - high {high} ms, low {low} ms (all time high {} ms)\n{}\n", series.max, "-".repeat(80));
    const ROWS: u64 = 4;
    const LEVELS: u64 = 3;
    let top = ROWS * LEVELS - 1;
    let levels: Vec<u64> = series.samples.iter().map(|s| if high == low { 0 } else { (s.ms - low) * top / (high - low) }).collect();
    for row in 0..ROWS {
        let base = (ROWS - 1 - row) * LEVELS;
        let line: String = levels
            .iter()
            .map(|&level| match level.checked_sub(base) {
                None => ' ',
                Some(step) if step < LEVELS => ['_', 'o', '#'][step as usize],
                Some(_) => '|',
            })
            .collect();
        out.push_str(&line);
        out.push('\n');
    }
    let ages: Vec<String> = series.samples.iter().map(|s| age(now.saturating_sub(s.time))).collect();
    let tallest = ages.iter().map(String::len).max().unwrap_or(0);
    out.push_str(&" ".repeat(ages.len()));
    out.push('\n');
    for row in 0..tallest {
        let line: String = ages.iter().map(|age| age.as_bytes().get(row).map_or(' ', |&b| b as char)).collect();
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// A sample's age as the graph labels it: seconds, minutes or hours.
fn age(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s => format!("{}h", s / 3600),
    }
}

/// LATENCY DOCTOR's report.
fn doctor(threshold_ms: u64, events: &[(&'static str, Series)], now: u64) -> String {
    let events: Vec<&(&'static str, Series)> = events.iter().filter(|(_, series)| !series.samples.is_empty()).collect();
    if events.is_empty() {
        if threshold_ms == 0 {
            return "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance. You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it. If we weren't in a deep space mission I'd suggest to take a look at https://redis.io/topics/latency-monitor.\n".to_string();
        }
        return "Dave, no latency spike was observed during the lifetime of this Redis instance, not in the slightest bit. I honestly think you ought to sit down calmly, take a stress pill, and think things over.\n".to_string();
    }
    let mut out = String::from("Dave, I have observed latency spikes in this Redis instance. You don't mind talking about it, do you Dave?\n\n");
    for (index, (name, series)) in events.iter().enumerate() {
        let count = series.samples.len() as u64;
        let average = series.samples.iter().map(|s| s.ms).sum::<u64>() / count;
        let deviation = series.samples.iter().map(|s| s.ms.abs_diff(average)).sum::<u64>() / count;
        let oldest = series.samples.iter().map(|s| s.time).min().unwrap_or(now);
        let period = now.saturating_sub(oldest).max(1) as f64 / count as f64;
        out.push_str(&format!(
            "{}. {name}: {count} latency spikes (average {average}ms, mean deviation {deviation}ms, period {period:.2} sec). Worst all time event {}ms.\n",
            index + 1,
            series.max
        ));
    }
    out.push_str("\nI have a few advices for you:\n\n");
    out.push_str("- Check your Slow Log to understand what are the commands you are running which are too slow to execute. Please check https://redis.io/commands/slowlog for more information.\n");
    out.push_str("- Deleting, expiring or evicting (because of maxmemory policy) large objects is a blocking operation. If you have very large objects that are often deleted, expired, or evicted, try to fragment those objects into multiple smaller objects.\n");
    out
}

/// LATENCY HISTOGRAM [command ...]: per command run at least once, its calls and the
/// cumulative count of calls up to each power of two of microseconds that has any.
async fn histogram(node: &Rc<Node>, names: &[Bytes]) -> Frame {
    let mut totals = shoal_runtime::stats::CoreStats::default();
    for stats in node.core.call_all(|core| core.stats.borrow().clone()).await {
        totals.merge(&stats);
    }
    let commands = totals.commands();
    let mut wanted: Vec<&'static str> = Vec::new();
    if names.is_empty() {
        wanted.extend(commands.keys().copied());
        wanted.sort_unstable();
    } else {
        for name in names {
            let text = String::from_utf8_lossy(name).to_ascii_lowercase();
            let (command, sub) = text.split_once('|').map_or((text.as_str(), None), |(c, s)| (c, Some(s)));
            let Some(spec) = table::lookup(command.as_bytes()) else { continue };
            let family: Vec<&'static CommandSpec> = match sub {
                Some(sub) => table::lookup_subcommand(spec, sub.as_bytes()).into_iter().collect(),
                None => std::iter::once(spec).chain(spec.subcommands.iter()).collect(),
            };
            for spec in family {
                if commands.contains_key(spec.name) && !wanted.contains(&spec.name) {
                    wanted.push(spec.name);
                }
            }
        }
    }
    Frame::Map(wanted.into_iter().map(|name| (bulk(name), command_histogram(&commands[name]))).collect())
}

/// One command's LATENCY HISTOGRAM entry, as Redis's log iteration of its HDR histogram from
/// 1024 ns, doubling: at each boundary the calls below it, where that count grew, keyed by
/// the boundary in whole microseconds (1024 ns is 1, 65536 ns is 65).
fn command_histogram(stat: &CommandStat) -> Frame {
    let total = stat.histogram.total();
    let mut buckets = Vec::new();
    let mut previous = 0;
    let mut boundary: u64 = 1024;
    while previous < total {
        let below = if boundary >= 1 << 50 { total } else { stat.histogram.count_below(boundary) };
        if below > previous {
            buckets.push((Frame::Integer((boundary / 1000) as i64), Frame::Integer(below as i64)));
            previous = below;
        }
        boundary = boundary.saturating_mul(2);
    }
    Frame::Map(vec![(bulk("calls"), Frame::Integer(stat.calls as i64)), (bulk("histogram_usec"), Frame::Map(buckets))])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(samples: &[(u64, u64)]) -> Series {
        let mut series = Series::default();
        for &(time, ms) in samples {
            series.add(time, ms);
        }
        series
    }

    #[test]
    fn the_graph_has_redis_headers_and_one_column_per_sample() {
        let text = graph("command", &series(&[(100, 24), (102, 44)]), 102);
        let expected = format!("command - high 44 ms, low 24 ms (all time high 44 ms)\n{}\n #\n |\n |\n_|\n  \n20\nss\n", "-".repeat(80));
        assert_eq!(text, expected);
    }

    #[test]
    fn the_doctor_reports_each_event_as_redis_does() {
        assert!(doctor(0, &[], 0).starts_with("I'm sorry, Dave"));
        assert!(doctor(10, &[], 0).starts_with("Dave, no latency spike"));
        let report = doctor(10, &[("command", series(&[(506, 24), (508, 44)]))], 508);
        assert!(
            report.contains("\n\n1. command: 2 latency spikes (average 34ms, mean deviation 10ms, period 1.00 sec). Worst all time event 44ms.\n\nI have a few advices for you:\n\n- Check your Slow Log"),
            "{report}"
        );
    }
}
