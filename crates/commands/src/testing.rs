//! A single-threaded harness that runs commands through the real dispatcher over several
//! in-process shards, so unit tests exercise the cross-core forms too.

use std::cell::RefCell;

use bytes::Bytes;
use futures::future::LocalBoxFuture;
use futures::FutureExt;
use shoal_resp::{Frame, Protocol};
use shoal_store::Shard;

use crate::ctx::{Coordinator, Ctx, HopOp, HopResult, Settings};
use crate::dispatch::{resolve, Route};
use crate::table::Handler;

/// Shards the harness splits keys over, so that multi-key commands take the cross-core path.
pub const SHARDS: usize = 3;

pub struct Harness {
    pub shards: RefCell<Vec<Shard>>,
    pub now_ms: u64,
    pub db_index: usize,
    pub settings: Settings,
    /// The keyspace events the commands raised, as (event, key), oldest first.
    pub events: RefCell<Vec<(&'static str, Bytes)>>,
}

impl Default for Harness {
    fn default() -> Self {
        Harness {
            shards: RefCell::new((0..SHARDS).map(|id| Shard::new(id, SHARDS, 16)).collect()),
            now_ms: 1_700_000_000_000,
            db_index: 0,
            settings: Settings::default(),
            events: RefCell::new(Vec::new()),
        }
    }
}

impl Harness {
    fn run_on(&self, shard: usize, f: impl FnOnce(&mut Ctx) -> Frame) -> Frame {
        let mut shards = self.shards.borrow_mut();
        // Tests pick the policy in `settings`; the store follows it, as the runtime makes it.
        shards[shard].set_lfu(self.settings.lfu_policy.then_some(self.settings.lfu));
        let mut ctx = Ctx::new(&mut shards[shard], self.db_index, self.now_ms, Protocol::Resp2, &self.settings);
        let reply = f(&mut ctx);
        self.events.borrow_mut().extend(ctx.take_events().into_iter().map(|e| (e.event, e.key)));
        reply
    }

    /// A harness whose commands raise keyspace events of every class (`KEA` plus `n` and `m`).
    pub fn notifying() -> Harness {
        let mut harness = Harness::default();
        harness.settings.notify_keyspace_events = u32::MAX;
        let reporting = crate::ctx::notify::store_reporting(u32::MAX);
        for shard in harness.shards.get_mut() {
            shard.dbs.iter_mut().for_each(|db| db.set_reporting(reporting));
        }
        harness
    }

    /// The events raised since the last call, as (event, key).
    pub fn take_events(&self) -> Vec<(&'static str, String)> {
        self.events.borrow_mut().drain(..).map(|(event, key)| (event, String::from_utf8_lossy(&key).into_owned())).collect()
    }

    /// Runs one command and returns its reply.
    pub fn run(&self, args: &[&str]) -> Frame {
        self.run_bytes(args.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect())
    }

    /// Runs one command given as binary-safe arguments (a DUMP payload) and returns its reply,
    /// with any pre-encoded part turned into the frames it stands for, so tests compare it
    /// with ordinary frames.
    pub fn run_bytes(&self, args: Vec<Bytes>) -> Frame {
        self.run_bytes_as_built(args).into_plain()
    }

    /// Runs one command and returns its reply as the handler built it.
    pub fn run_bytes_as_built(&self, args: Vec<Bytes>) -> Frame {
        let resolved = match resolve(&args, SHARDS) {
            Ok(r) => r,
            Err(e) => return e,
        };
        match (resolved.route, resolved.spec.handler) {
            (Route::Single(shard), _) if resolved.spec.local().is_some() => {
                let local = resolved.spec.local().expect("checked");
                self.run_on(shard.unwrap_or(0), |ctx| local(ctx, &args))
            }
            (Route::Multi(_), Handler::Keys { multi: Some(multi), .. }) | (Route::Multi(_), Handler::Multi(multi)) => {
                futures::executor::block_on(multi(self, args))
            }
            // The harness cannot wait: a blocking command answers as it would inside MULTI.
            (Route::Multi(_), Handler::Blocking(ops)) => match (ops.parse)(&args) {
                Err(error) => error,
                Ok(_) => futures::executor::block_on((ops.attempt)(self, args)).unwrap_or_else(ops.timed_out),
            },
            (route, _) => panic!("the harness does not run {:?} for {}", route, resolved.spec.name),
        }
    }
}

impl Coordinator for Harness {
    fn shard_count(&self) -> usize {
        SHARDS
    }
    fn db_index(&self) -> usize {
        self.db_index
    }
    fn proto(&self) -> Protocol {
        Protocol::Resp2
    }
    fn hop(&self, ops: Vec<(usize, HopOp)>) -> LocalBoxFuture<'_, Vec<HopResult>> {
        let results: Vec<HopResult> = ops
            .into_iter()
            .map(|(shard, op)| {
                let mut shards = self.shards.borrow_mut();
                let mut ctx = Ctx::new(&mut shards[shard], self.db_index, self.now_ms, Protocol::Resp2, &self.settings);
                let result = op(&mut ctx);
                self.events.borrow_mut().extend(ctx.take_events().into_iter().map(|e| (e.event, e.key)));
                result
            })
            .collect();
        async move { results }.boxed_local()
    }
}

/// Runs `commands` in order on a fresh harness and asserts each reply.
pub fn check(commands: &[&[&str]], expected: &[Frame]) {
    let harness = Harness::default();
    assert_eq!(commands.len(), expected.len(), "one expected reply per command");
    for (command, want) in commands.iter().zip(expected) {
        let got = harness.run(command);
        assert_eq!(&got, want, "reply to {command:?}");
    }
}

/// Runs `commands` in order on a fresh harness, each at its own time (milliseconds after the
/// harness's default time), and asserts each reply. For TTL tests.
pub fn check_at(commands: &[(u64, &[&str])], expected: &[Frame]) {
    let mut harness = Harness::default();
    let start_ms = harness.now_ms;
    assert_eq!(commands.len(), expected.len(), "one expected reply per command");
    for ((after_ms, command), want) in commands.iter().zip(expected) {
        harness.now_ms = start_ms + after_ms;
        let got = harness.run(command);
        assert_eq!(&got, want, "reply to {command:?} at +{after_ms} ms");
    }
}

/// Runs `commands` in order on a fresh harness, each with its own selected database, and
/// asserts each reply. For MOVE, COPY ... DB and SWAPDB tests.
pub fn check_db(commands: &[(usize, &[&str])], expected: &[Frame]) {
    let mut harness = Harness::default();
    assert_eq!(commands.len(), expected.len(), "one expected reply per command");
    for ((db_index, command), want) in commands.iter().zip(expected) {
        harness.db_index = *db_index;
        let got = harness.run(command);
        assert_eq!(&got, want, "reply to {command:?} in db {db_index}");
    }
}

/// Reply constructors for expected values in the family tests.
pub mod replies {
    use bytes::Bytes;
    use shoal_resp::Frame;

    pub fn ok() -> Frame {
        Frame::Simple(Bytes::from_static(b"OK"))
    }

    pub fn simple(text: &str) -> Frame {
        Frame::Simple(Bytes::copy_from_slice(text.as_bytes()))
    }

    pub fn bulk(text: &str) -> Frame {
        Frame::Bulk(Bytes::copy_from_slice(text.as_bytes()))
    }

    pub fn int(n: i64) -> Frame {
        Frame::Integer(n)
    }

    pub fn err(text: &str) -> Frame {
        Frame::Error(Bytes::copy_from_slice(text.as_bytes()))
    }

    pub fn arr(items: Vec<Frame>) -> Frame {
        Frame::Array(items)
    }

    /// An array of bulk strings.
    pub fn strings(items: &[&str]) -> Frame {
        Frame::Array(items.iter().map(|s| bulk(s)).collect())
    }
}
