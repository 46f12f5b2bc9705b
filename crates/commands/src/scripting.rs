//! EVAL, EVALSHA, their _RO forms, SCRIPT, FUNCTION, FCALL and FCALL_RO. Scripts need the
//! connection's core (its script engine) and run over the cores of their keys, so the
//! server crate implements them (`Handler::Connection`); they are described here for
//! COMMAND, routing and the transaction layer, which reads their keys with `movable_keys`.

use bytes::Bytes;

use crate::table::{flags::*, numkeys_positions, CommandSpec};

const BASE: CommandSpec = CommandSpec { acl: &["@scripting"], group: "scripting", ..CommandSpec::DEFAULT };

/// `script numkeys key [key ...] arg [arg ...]` (EVAL, EVALSHA, FCALL and their _RO forms).
fn script_keys(args: &[Bytes]) -> Vec<usize> {
    numkeys_positions(args, 2, &[])
}

const SCRIPT_FLAGS: u32 = NOSCRIPT | STALE | SKIP_MONITOR | NO_MANDATORY_KEYS;

const fn run(name: &'static str, read_only: bool, summary: &'static str, since: &'static str) -> CommandSpec {
    CommandSpec {
        name,
        arity: -3,
        flags: if read_only { READONLY | SCRIPT_FLAGS } else { SCRIPT_FLAGS | MAY_REPLICATE },
        summary,
        since,
        complexity: "Depends on the script that is executed.",
        movable_keys: Some(script_keys),
        ..BASE
    }
}

const fn sub(name: &'static str, arity: i32, flags: u32, summary: &'static str) -> CommandSpec {
    CommandSpec { name, arity, flags, summary, acl: &["@scripting"], ..BASE }
}

const SCRIPT_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec { since: "3.2.0", ..sub("script|debug", 3, NOSCRIPT, "Sets the debug mode of server-side Lua scripts.") },
    sub("script|exists", -3, NOSCRIPT, "Determines whether server-side Lua scripts exist in the script cache."),
    sub("script|flush", -2, NOSCRIPT, "Removes all server-side Lua scripts from the script cache."),
    sub("script|help", 2, LOADING | STALE, "Returns helpful text about the different subcommands."),
    sub("script|kill", 2, NOSCRIPT | ALLOW_BUSY, "Terminates a server-side Lua script during execution."),
    sub("script|load", 3, NOSCRIPT | STALE, "Loads a server-side Lua script to the script cache."),
];

const FUNCTION_SUBCOMMANDS: &[CommandSpec] = &[
    sub("function|delete", 3, WRITE | NOSCRIPT, "Deletes a library and its functions."),
    sub("function|dump", 2, NOSCRIPT, "Dumps all libraries into a serialized binary payload."),
    sub("function|flush", -2, WRITE | NOSCRIPT, "Deletes all libraries and functions."),
    sub("function|help", 2, LOADING | STALE, "Returns helpful text about the different subcommands."),
    sub("function|kill", 2, NOSCRIPT | ALLOW_BUSY, "Terminates a function during execution."),
    sub("function|list", -2, NOSCRIPT, "Returns information about all libraries."),
    sub("function|load", -3, WRITE | DENYOOM | NOSCRIPT, "Creates a library."),
    sub("function|restore", -3, WRITE | DENYOOM | NOSCRIPT, "Restores all libraries from a payload."),
    sub("function|stats", 2, NOSCRIPT | ALLOW_BUSY, "Returns information about a function during execution."),
];

pub const COMMANDS: &[CommandSpec] = &[
    run("eval", false, "Executes a server-side Lua script.", "2.6.0"),
    run("evalsha", false, "Executes a server-side Lua script by SHA1 digest.", "2.6.0"),
    run("eval_ro", true, "Executes a read-only server-side Lua script.", "7.0.0"),
    run("evalsha_ro", true, "Executes a read-only server-side Lua script by SHA1 digest.", "7.0.0"),
    run("fcall", false, "Invokes a function.", "7.0.0"),
    run("fcall_ro", true, "Invokes a read-only function.", "7.0.0"),
    CommandSpec {
        name: "script",
        arity: -2,
        acl: &[],
        summary: "A container for Lua scripts management commands.",
        since: "2.6.0",
        complexity: "Depends on subcommand.",
        subcommands: SCRIPT_SUBCOMMANDS,
        ..BASE
    },
    CommandSpec {
        name: "function",
        arity: -2,
        acl: &[],
        summary: "A container for function commands.",
        since: "7.0.0",
        complexity: "Depends on subcommand.",
        subcommands: FUNCTION_SUBCOMMANDS,
        ..BASE
    },
];
