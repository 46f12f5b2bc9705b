//! HIMPORT (Redis 8.10): hashes made from a connection's named lists of field names.
//!
//! `HIMPORT PREPARE name field ...` keeps the names on the connection (a *fieldset*, never
//! shared, saved or replicated; RESET and disconnecting drop them), and `HIMPORT SET key name
//! value ...` creates or overwrites `key` as a hash of those fields and these values, on the
//! field names' shared template ([`Hash::from_template`]: "template-listpack" or
//! "template-array").
//!
//! PREPARE, DISCARD and DISCARDALL are connection commands. SET has a key and runs on its
//! core, which does not know the connection: before it leaves the connection (or the
//! script, which has fieldsets of its own for one run), [`Fieldsets::rewrite_set`] appends
//! the fieldset's names to its arguments, or turns it into its refusal. Every path that runs
//! a SET a client sent rewrites it first: the pipeline, EXEC (for the fieldsets as they
//! will be when it runs, see [`Fieldsets::rewrite_queue`]) and scripts.
//!
//! The log and replicas get `RESTORE key 0 <payload> REPLACE` of the hash, as Redis's does.

use std::collections::HashMap;

use bytes::Bytes;
use shoal_resp::Frame;
use shoal_store::types::Hash;
use shoal_store::Value;

use crate::args;
use crate::ctx::{notify, Ctx};
use crate::errors;
use crate::table::{flags::*, CommandSpec, Handler, KeySpec};

pub const DUPLICATE_FIELD: &str = "ERR duplicate field name in fieldset";
pub const NO_SUCH_FIELDSET: &str = "ERR no such fieldset";
pub const VALUE_COUNT: &str = "ERR value count does not match fieldset field count";

const BASE: CommandSpec = CommandSpec { acl: &["@hash"], group: "hash", since: "8.10.0", ..CommandSpec::DEFAULT };

const SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "himport|discard",
        arity: 3,
        flags: 0,
        summary: "Removes a single session-local fieldset by name.",
        complexity: "O(N) where N is the number of session-local fieldsets.",
        handler: Handler::Connection,
        ..BASE
    },
    CommandSpec {
        name: "himport|discardall",
        arity: 2,
        flags: 0,
        summary: "Removes all session-local fieldsets for the connection.",
        complexity: "O(N) where N is the number of session-local fieldsets.",
        handler: Handler::Connection,
        ..BASE
    },
    CommandSpec {
        name: "himport|prepare",
        arity: -4,
        flags: DENYOOM,
        summary: "Defines a session-local fieldset that maps a name to a sorted set of field names.",
        complexity: "O(N*log(N)) where N is the number of fields.",
        handler: Handler::Connection,
        ..BASE
    },
    CommandSpec {
        name: "himport|set",
        arity: -5,
        flags: WRITE | DENYOOM,
        keys: KeySpec { first: 2, last: 2, step: 1 },
        summary: "Creates a fieldset-based hash from values supplied in the order matching a previously prepared fieldset.",
        complexity: "O(N) where N is the number of fields in the fieldset.",
        handler: Handler::Keys { local: himport_set, multi: None },
        ..BASE
    },
];

pub const COMMANDS: &[CommandSpec] = &[CommandSpec {
    name: "himport",
    arity: -2,
    flags: 0,
    summary: "A container for session-based hash import commands using fieldsets.",
    complexity: "Depends on subcommand.",
    handler: Handler::Connection,
    subcommands: SUBCOMMANDS,
    ..BASE
}];

/// A connection's (or one script run's) fieldsets: name -> field names, as declared.
#[derive(Default)]
pub struct Fieldsets {
    sets: HashMap<Bytes, Vec<Bytes>>,
    /// Bytes of every name and field held, for the client's memory.
    bytes: usize,
}

impl Fieldsets {
    /// Runs HIMPORT PREPARE, DISCARD or DISCARDALL (`spec`) with `args`.
    pub fn run(&mut self, spec: &CommandSpec, args: &[Bytes]) -> Frame {
        match spec.name {
            "himport|prepare" => match self.prepare(&args[2], &args[3..]) {
                Ok(()) => args::ok(),
                Err(error) => error,
            },
            "himport|discard" => Frame::Integer(self.discard(&args[2]) as i64),
            "himport|discardall" => Frame::Integer(self.discard_all() as i64),
            _ => errors::error(&format!("ERR '{}' is not implemented yet", spec.name)),
        }
    }

    /// PREPARE: `name` holds `fields` from now on, replacing what it held.
    pub fn prepare(&mut self, name: &Bytes, fields: &[Bytes]) -> Result<(), Frame> {
        let mut sorted: Vec<&[u8]> = fields.iter().map(|f| &f[..]).collect();
        sorted.sort_unstable();
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            return Err(errors::error(DUPLICATE_FIELD));
        }
        self.discard(name);
        self.bytes += name.len() + fields.iter().map(Bytes::len).sum::<usize>();
        self.sets.insert(name.clone(), fields.to_vec());
        Ok(())
    }

    /// DISCARD: whether `name` was there.
    pub fn discard(&mut self, name: &[u8]) -> bool {
        match self.sets.remove(name) {
            Some(fields) => {
                self.bytes -= name.len() + fields.iter().map(Bytes::len).sum::<usize>();
                true
            }
            None => false,
        }
    }

    /// DISCARDALL (and RESET): how many there were.
    pub fn discard_all(&mut self) -> usize {
        let count = self.sets.len();
        *self = Fieldsets::default();
        count
    }

    /// Bytes held, as the client's memory counts them.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// HIMPORT SET's arguments as its core runs them: the fieldset's fields after the
    /// values (an even count); or, when the fieldset is unknown or the values do not match
    /// it, `HIMPORT SET key <error> ""` (odd), which the core answers with that error.
    pub fn rewrite_set(&self, mut args: Vec<Bytes>) -> Vec<Bytes> {
        let refusal = match self.fields_for(&args) {
            Ok(fields) => {
                args.extend(fields.iter().cloned());
                return args;
            }
            Err(refusal) => refusal,
        };
        args.truncate(3);
        args.push(Bytes::from_static(refusal.as_bytes()));
        args.push(Bytes::new());
        args
    }

    /// The fields of HIMPORT SET `args`' fieldset, or why it is refused.
    pub fn fields_for(&self, args: &[Bytes]) -> Result<&[Bytes], &'static str> {
        match self.sets.get(&args[3]) {
            None => Err(NO_SUCH_FIELDSET),
            Some(fields) if fields.len() != args.len() - 4 => Err(VALUE_COUNT),
            Some(fields) => Ok(fields),
        }
    }

    /// The refusal a rewritten HIMPORT SET stands for, if it is one.
    pub fn refusal(args: &[Bytes]) -> Option<Frame> {
        (args.len() % 2 == 1).then(|| Frame::Error(args[3].clone()))
    }

    /// Rewrites the HIMPORT SETs among `queued` (a MULTI's commands, in order) for the
    /// fieldsets as they will be when each runs: the PREPAREs, DISCARDs and DISCARDALLs
    /// before it in the queue count, though they have not run yet.
    pub fn rewrite_queue<'a>(&self, queued: impl Iterator<Item = (&'static CommandSpec, &'a mut Vec<Bytes>)>) {
        let mut queued = queued.filter(|(spec, _)| spec.name.starts_with("himport|")).peekable();
        if queued.peek().is_none() {
            return;
        }
        let mut planned = Fieldsets { sets: self.sets.clone(), bytes: self.bytes };
        for (spec, args) in queued {
            if spec.name == "himport|set" {
                *args = planned.rewrite_set(std::mem::take(args));
            } else {
                planned.run(spec, args);
            }
        }
    }
}

/// The arguments as the client sent them, for MONITOR and the slow log: a rewritten HIMPORT
/// SET without the fields the connection added.
pub fn as_sent<'a>(spec: &CommandSpec, args: &'a [Bytes]) -> &'a [Bytes] {
    match spec.name {
        "himport|set" if args.len().is_multiple_of(2) => &args[..4 + (args.len() - 4) / 2],
        _ => args,
    }
}

/// HIMPORT SET key fieldset-name value [value ...], rewritten (see the module's notes):
/// `value ...` then as many fields, or a refusal after the key.
fn himport_set(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    if let Some(refusal) = Fieldsets::refusal(args) {
        return refusal;
    }
    let key = &args[2];
    let count = (args.len() - 4) / 2;
    let (values, fields) = args[4..].split_at(count);
    let now = ctx.now_ms;
    if let Some(entry) = ctx.db().lookup_write(key, now) {
        if !matches!(entry.value, Value::Hash(_)) {
            return errors::wrong_type();
        }
    }
    let fields: Vec<&[u8]> = fields.iter().map(|f| &f[..]).collect();
    let values: Vec<&[u8]> = values.iter().map(|v| &v[..]).collect();
    let hash = match Hash::from_template(&fields, &values, &ctx.settings.limits) {
        Ok(hash) => hash,
        Err(_) => return errors::error(DUPLICATE_FIELD),
    };
    let replaced = crate::keys::replaces(ctx, key, ctx.db_index);
    let db = ctx.db();
    db.set_with_expire(key, Value::Hash(hash), None, now);
    db.add_changes(1);
    crate::keys::notify_replaced(ctx, key, ctx.db_index, replaced);
    ctx.notify(notify::HASH, "hset", key);
    args::ok()
}

/// What the log records of a HIMPORT SET that ran (rewritten): RESTORE of the hash it made,
/// with no TTL, replacing the key. None for one that was refused.
pub fn propagate(args: &[Bytes]) -> Option<Vec<Vec<Bytes>>> {
    if args.len() % 2 == 1 {
        return None;
    }
    let count = (args.len() - 4) / 2;
    let (values, fields) = args[4..].split_at(count);
    let fields: Vec<&[u8]> = fields.iter().map(|f| &f[..]).collect();
    let values: Vec<&[u8]> = values.iter().map(|v| &v[..]).collect();
    let hash = Hash::from_template(&fields, &values, &shoal_store::Limits::default()).ok()?;
    let payload = shoal_rdb::dump(&Value::Hash(hash), true);
    Some(vec![vec![Bytes::from_static(b"RESTORE"), args[2].clone(), Bytes::from_static(b"0"), Bytes::from(payload), Bytes::from_static(b"REPLACE")]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::check;

    fn b(items: &[&str]) -> Vec<Bytes> {
        items.iter().map(|s| Bytes::copy_from_slice(s.as_bytes())).collect()
    }

    fn spec(name: &str) -> &'static CommandSpec {
        SUBCOMMANDS.iter().find(|s| s.name == name).expect("a subcommand")
    }

    #[test]
    fn fieldsets_prepare_replace_and_discard() {
        let mut sets = Fieldsets::default();
        assert_eq!(sets.run(spec("himport|prepare"), &b(&["HIMPORT", "PREPARE", "u", "a", "b", "a"])), errors::error(DUPLICATE_FIELD));
        assert_eq!(sets.bytes(), 0);
        assert_eq!(sets.run(spec("himport|prepare"), &b(&["HIMPORT", "PREPARE", "u", "a", "b"])), args::ok());
        assert_eq!(sets.run(spec("himport|prepare"), &b(&["HIMPORT", "PREPARE", "u", "x", "y", "z"])), args::ok());
        assert_eq!(sets.bytes(), 4);
        assert_eq!(sets.run(spec("himport|prepare"), &b(&["HIMPORT", "PREPARE", "", ""])), args::ok());
        assert_eq!(sets.rewrite_set(b(&["HIMPORT", "SET", "k", "u", "1", "2"])), b(&["HIMPORT", "SET", "k", VALUE_COUNT, ""]));
        assert_eq!(sets.rewrite_set(b(&["HIMPORT", "SET", "k", "v", "1"])), b(&["HIMPORT", "SET", "k", NO_SUCH_FIELDSET, ""]));
        assert_eq!(sets.rewrite_set(b(&["HIMPORT", "SET", "k", "u", "1", "2", "3"])), b(&["HIMPORT", "SET", "k", "u", "1", "2", "3", "x", "y", "z"]));
        assert_eq!(sets.run(spec("himport|discard"), &b(&["HIMPORT", "DISCARD", "u"])), Frame::Integer(1));
        assert_eq!(sets.run(spec("himport|discard"), &b(&["HIMPORT", "DISCARD", "u"])), Frame::Integer(0));
        assert_eq!(sets.run(spec("himport|discardall"), &b(&["HIMPORT", "DISCARDALL"])), Frame::Integer(1));
        assert_eq!(sets.bytes(), 0);
    }

    #[test]
    fn a_queue_is_rewritten_for_the_fieldsets_as_they_will_be() {
        let mut sets = Fieldsets::default();
        sets.prepare(&Bytes::from_static(b"old"), &b(&["a"])).unwrap();
        let mut queue = [
            (spec("himport|set"), b(&["HIMPORT", "SET", "k1", "new", "1"])),
            (spec("himport|prepare"), b(&["HIMPORT", "PREPARE", "new", "f"])),
            (spec("himport|set"), b(&["HIMPORT", "SET", "k2", "new", "1"])),
            (spec("himport|discardall"), b(&["HIMPORT", "DISCARDALL"])),
            (spec("himport|set"), b(&["HIMPORT", "SET", "k3", "old", "1"])),
        ];
        sets.rewrite_queue(queue.iter_mut().map(|(spec, args)| (*spec, args)));
        assert_eq!(queue[0].1, b(&["HIMPORT", "SET", "k1", NO_SUCH_FIELDSET, ""]));
        assert_eq!(queue[2].1, b(&["HIMPORT", "SET", "k2", "new", "1", "f"]));
        assert_eq!(queue[4].1, b(&["HIMPORT", "SET", "k3", NO_SUCH_FIELDSET, ""]));
        // Nothing ran: the connection's own fieldsets are as they were.
        assert_eq!(sets.rewrite_set(b(&["HIMPORT", "SET", "k", "old", "1"])), b(&["HIMPORT", "SET", "k", "old", "1", "a"]));
    }

    #[test]
    fn set_makes_a_templated_hash_and_refuses_other_types() {
        use crate::testing::replies::*;
        check(
            &[
                &["HIMPORT", "SET", "k", "u", "alice", "30", "name", "age"],
                &["OBJECT", "ENCODING", "k"],
                &["HGETALL", "k"],
                &["HIMPORT", "SET", "k", "u", "x", "age"],
                &["HGETALL", "k"],
                &["HIMPORT", "SET", "k", NO_SUCH_FIELDSET, ""],
                &["SET", "s", "v"],
                &["HIMPORT", "SET", "s", "u", "1", "a"],
                &["GET", "s"],
            ],
            &[
                ok(),
                bulk("template-listpack"),
                Frame::Map(vec![(bulk("age"), bulk("30")), (bulk("name"), bulk("alice"))]),
                ok(),
                Frame::Map(vec![(bulk("age"), bulk("x"))]),
                err(NO_SUCH_FIELDSET),
                ok(),
                err("WRONGTYPE Operation against a key holding the wrong kind of value"),
                bulk("v"),
            ],
        );
    }

    #[test]
    fn set_is_logged_as_a_restore_of_the_hash() {
        let args = b(&["HIMPORT", "SET", "k", "u", "alice", "30", "name", "age"]);
        let logged = propagate(&args).expect("a RESTORE");
        assert_eq!(logged.len(), 1);
        let restore = &logged[0];
        assert_eq!(&restore[..3], &b(&["RESTORE", "k", "0"])[..]);
        assert_eq!(restore[4], "REPLACE");
        let value = shoal_rdb::restore(&restore[3], &shoal_store::Limits::default()).expect("a payload");
        let Value::Hash(hash) = value else { panic!("a hash") };
        assert_eq!(hash.get(b"name"), Some(&b"alice"[..]));
        assert_eq!(hash.get(b"age"), Some(&b"30"[..]));
        assert_eq!(propagate(&b(&["HIMPORT", "SET", "k", NO_SUCH_FIELDSET, ""])), None);
    }
}
