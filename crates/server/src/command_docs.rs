//! COMMAND, COMMAND COUNT/LIST/INFO/DOCS/GETKEYS/GETKEYSANDFLAGS/HELP: everything is read
//! from the one command table (`shoal_commands::table`); nothing here lists commands.
//!
//! What the table does not hold, these replies leave out or derive, and say so:
//! - command tips (`nondeterministic_output`, `request_policy:...`): always empty;
//! - key specs: derived from the legacy (first, last, step) triple, with access flags guessed
//!   from the command's write/readonly flag (Redis keeps per-key flags such as `OW update`
//!   for MSET or `RM delete` for DEL; we report `RW access update` or `RO access`);
//! - DOCS: summary, since, group, complexity and subcommands only; no arguments, history or
//!   doc flags.

use bytes::Bytes;
use shoal_commands::args::is;
use shoal_commands::table::{self, flags, CommandSpec};
use shoal_commands::{dispatch, errors};
use shoal_resp::Frame;

use crate::server_commands::{bulk, help, simple};

/// ACL categories in the order Redis prints them (its `ACLCommandCategories`).
const ACL_CATEGORY_ORDER: &[&str] = &[
    "@keyspace",
    "@read",
    "@write",
    "@set",
    "@sortedset",
    "@list",
    "@hash",
    "@string",
    "@bitmap",
    "@hyperloglog",
    "@geo",
    "@stream",
    "@pubsub",
    "@admin",
    "@fast",
    "@slow",
    "@blocking",
    "@dangerous",
    "@connection",
    "@transaction",
    "@scripting",
];

const HELP: &[&str] = &[
    "(no subcommand)",
    "    Return details about all Redis commands.",
    "COUNT",
    "    Return the total number of commands in this Redis server.",
    "LIST",
    "    Return a list of all commands in this Redis server.",
    "INFO [<command-name> ...]",
    "    Return details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "DOCS [<command-name> ...]",
    "    Return documentation details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "GETKEYS <full-command>",
    "    Return the keys from a full Redis command.",
    "GETKEYSANDFLAGS <full-command>",
    "    Return the keys and the access flags from a full Redis command.",
];

/// COMMAND [subcommand [argument ...]]
pub fn command(spec: &CommandSpec, args: &[Bytes]) -> Frame {
    match spec.name {
        "command" => Frame::Array(table::all().map(info).collect()),
        "command|count" => Frame::Integer(table::all().count() as i64),
        "command|info" if args.len() == 2 => Frame::Array(table::all().map(info).collect()),
        "command|info" => Frame::Array(args[2..].iter().map(|name| find(name).map_or(Frame::Null, info)).collect()),
        "command|docs" if args.len() == 2 => Frame::Map(table::all().map(|spec| (bulk(spec.name), docs(spec))).collect()),
        "command|docs" => Frame::Map(args[2..].iter().filter_map(|name| find(name)).map(|spec| (bulk(spec.name), docs(spec))).collect()),
        "command|list" => list(args),
        "command|getkeys" => getkeys(&args[2..], false),
        "command|getkeysandflags" => getkeys(&args[2..], true),
        "command|help" => help("COMMAND", HELP),
        _ => errors::unknown_subcommand("command", &args[1]),
    }
}

/// A command by its full name, `get` or `client|list`, case-insensitively.
fn find(name: &[u8]) -> Option<&'static CommandSpec> {
    match name.iter().position(|&b| b == b'|') {
        None => table::lookup(name),
        Some(bar) => table::lookup_subcommand(table::lookup(&name[..bar])?, &name[bar + 1..]),
    }
}

/// Every command and subcommand, commands first then their subcommands.
fn every_command() -> impl Iterator<Item = &'static CommandSpec> {
    table::all().flat_map(|spec| std::iter::once(spec).chain(spec.subcommands.iter()))
}

/// The flags COMMAND INFO shows, in Redis's order. `may_replicate` is hidden, as in Redis.
pub fn flag_names(spec: &CommandSpec) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = flags::NAMES.iter().filter(|&&(flag, name)| spec.has(flag) && name != "may_replicate").map(|&(_, name)| name).collect();
    if spec.movable_keys.is_some() {
        names.push("movablekeys");
    }
    names
}

/// The ACL categories in Redis's order (categories Redis does not know go last).
pub fn acl_categories(spec: &CommandSpec) -> Vec<&'static str> {
    let mut categories = spec.acl_categories();
    categories.sort_by_key(|c| ACL_CATEGORY_ORDER.iter().position(|known| known == c).unwrap_or(usize::MAX));
    categories
}

/// The access flags of the command's keys (see the module comment: a guess from its flags).
fn key_flags(spec: &CommandSpec) -> &'static [&'static str] {
    if spec.is_write() {
        &["RW", "access", "update"]
    } else {
        &["RO", "access"]
    }
}

fn status_set(items: &[&str]) -> Frame {
    Frame::Set(items.iter().map(simple).collect())
}

/// The Redis 7 key specs of a command, from its (first, last, step) triple: one `index`
/// begin-search and one `range` find-keys, whose `lastkey` is relative to the first key.
fn key_specs(spec: &CommandSpec) -> Vec<Frame> {
    let (keys, flags) = match legacy_keys(spec) {
        Some((keys, false)) => (keys, key_flags(spec)),
        Some((keys, true)) => (keys, &["not_key"][..]),
        None => return Vec::new(),
    };
    let last_key = if keys.last < 0 { keys.last } else { keys.last - keys.first };
    vec![Frame::Map(vec![
        (bulk("flags"), status_set(flags)),
        (
            bulk("begin_search"),
            Frame::Map(vec![(bulk("type"), bulk("index")), (bulk("spec"), Frame::Map(vec![(bulk("index"), Frame::Integer(keys.first.into()))]))]),
        ),
        (
            bulk("find_keys"),
            Frame::Map(vec![
                (bulk("type"), bulk("range")),
                (
                    bulk("spec"),
                    Frame::Map(vec![
                        (bulk("lastkey"), Frame::Integer(last_key.into())),
                        (bulk("keystep"), Frame::Integer(keys.step.into())),
                        (bulk("limit"), Frame::Integer(0)),
                    ]),
                ),
            ]),
        ),
    ])]
}

/// The arguments COMMAND INFO describes, and whether they are shard channels rather than
/// keys; `None` for a command with neither.
fn legacy_keys(spec: &CommandSpec) -> Option<(table::KeySpec, bool)> {
    if spec.keys.first > 0 {
        Some((spec.keys, false))
    } else if spec.channels.first > 0 {
        Some((spec.channels, true))
    } else {
        None
    }
}

/// COMMAND INFO's entry for one command: [name, arity, flags, first key, last key, step,
/// ACL categories, tips, key specs, subcommands], as Redis 7.
pub fn info(spec: &CommandSpec) -> Frame {
    let (first, last, step) = match legacy_keys(spec) {
        Some((keys, _)) => (keys.first, keys.last, keys.step),
        None => (0, 0, 0),
    };
    Frame::Array(vec![
        bulk(spec.name),
        Frame::Integer(spec.arity.into()),
        status_set(&flag_names(spec)),
        Frame::Integer(first.into()),
        Frame::Integer(last.into()),
        Frame::Integer(step.into()),
        status_set(&acl_categories(spec)),
        Frame::Set(Vec::new()),
        Frame::Set(key_specs(spec)),
        Frame::Set(spec.subcommands.iter().map(info).collect()),
    ])
}

/// COMMAND DOCS's map for one command. Arguments are not in the table and are left out.
pub fn docs(spec: &CommandSpec) -> Frame {
    let mut fields = vec![
        (bulk("summary"), bulk(spec.summary)),
        (bulk("since"), bulk(spec.since)),
        (bulk("group"), bulk(spec.group)),
        (bulk("complexity"), bulk(spec.complexity)),
    ];
    if !spec.subcommands.is_empty() {
        fields.push((bulk("subcommands"), Frame::Map(spec.subcommands.iter().map(|sub| (bulk(sub.name), docs(sub))).collect())));
    }
    Frame::Map(fields)
}

/// COMMAND LIST [FILTERBY MODULE module-name | ACLCAT category | PATTERN pattern]
fn list(args: &[Bytes]) -> Frame {
    let names: Vec<&'static str> = match args.len() {
        2 => every_command().map(|spec| spec.name).collect(),
        5 if is(&args[2], "filterby") => {
            let value = &args[4];
            if is(&args[3], "module") {
                // No modules: no command belongs to one.
                Vec::new()
            } else if is(&args[3], "aclcat") {
                let category = format!("@{}", String::from_utf8_lossy(value).to_ascii_lowercase());
                every_command().filter(|spec| spec.acl_categories().contains(&category.as_str())).map(|spec| spec.name).collect()
            } else if is(&args[3], "pattern") {
                every_command().filter(|spec| shoal_glob::matches_nocase(value, spec.name.as_bytes())).map(|spec| spec.name).collect()
            } else {
                return errors::syntax();
            }
        }
        _ => return errors::syntax(),
    };
    Frame::Array(names.into_iter().map(bulk).collect())
}

/// COMMAND GETKEYS / GETKEYSANDFLAGS full-command: the keys the table finds in `request`.
fn getkeys(request: &[Bytes], with_flags: bool) -> Frame {
    let Some(mut spec) = table::lookup(&request[0]) else {
        return errors::error("ERR Invalid command specified");
    };
    if !spec.subcommands.is_empty() && request.len() >= 2 {
        match table::lookup_subcommand(spec, &request[1]) {
            Some(sub) => spec = sub,
            None => return errors::error("ERR Invalid command specified"),
        }
    }
    if spec.keys.first <= 0 && spec.movable_keys.is_none() {
        return errors::error("ERR The command has no key arguments");
    }
    if !spec.arity_ok(request.len()) {
        return errors::error("ERR Invalid number of arguments specified for command");
    }
    let keys: Vec<&Bytes> = dispatch::keys(spec, request).collect();
    if keys.is_empty() {
        return errors::error("ERR Invalid arguments specified for command");
    }
    let reply = keys
        .into_iter()
        .map(|key| if with_flags { Frame::Array(vec![Frame::Bulk(key.clone()), status_set(key_flags(spec))]) } else { Frame::Bulk(key.clone()) })
        .collect();
    Frame::Array(reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_resp::{encode, Protocol};

    fn args(list: &[&str]) -> Vec<Bytes> {
        list.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect()
    }

    fn run(list: &[&str]) -> Frame {
        let request = args(list);
        let resolved = shoal_commands::resolve(&request, 4).unwrap_or_else(|e| panic!("{list:?} resolves: {e:?}"));
        command(resolved.spec, &request)
    }

    fn resp2(frame: &Frame) -> String {
        let mut out = bytes::BytesMut::new();
        encode(frame, Protocol::Resp2, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn info_of_get_matches_redis_byte_for_byte() {
        assert_eq!(
            resp2(&run(&["COMMAND", "INFO", "get"])),
            "*1\r\n*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n*3\r\n+@read\r\n+@string\r\n+@fast\r\n*0\r\n*1\r\n*6\r\n$5\r\nflags\r\n*2\r\n+RO\r\n+access\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n"
        );
    }

    #[test]
    fn info_of_a_subcommand_and_of_an_unknown_name() {
        assert_eq!(
            resp2(&run(&["COMMAND", "INFO", "CLIENT|LIST", "nosuch"])),
            "*2\r\n*10\r\n$11\r\nclient|list\r\n:-2\r\n*4\r\n+admin\r\n+noscript\r\n+loading\r\n+stale\r\n:0\r\n:0\r\n:0\r\n*4\r\n+@admin\r\n+@slow\r\n+@dangerous\r\n+@connection\r\n*0\r\n*0\r\n*0\r\n$-1\r\n"
        );
    }

    #[test]
    fn container_commands_list_their_subcommands() {
        let Frame::Array(fields) = info(table::lookup(b"config").unwrap()) else { panic!("an array") };
        assert_eq!(fields[2], Frame::Set(vec![]), "a container has no flags of its own");
        assert_eq!(fields[6], status_set(&["@slow"]));
        let Frame::Set(subcommands) = &fields[9] else { panic!("a set") };
        assert!(subcommands.iter().any(|sub| matches!(sub, Frame::Array(f) if f[0] == bulk("config|get"))));
    }

    #[test]
    fn mset_key_spec_counts_lastkey_from_the_end_with_its_step() {
        let spec = table::lookup(b"mset").unwrap();
        let specs = key_specs(spec);
        let text = resp2(&specs[0]);
        assert!(text.contains("$7\r\nlastkey\r\n:-1\r\n$7\r\nkeystep\r\n:2\r\n"), "{text}");
    }

    #[test]
    fn count_is_the_number_of_top_level_commands() {
        assert_eq!(run(&["COMMAND", "COUNT"]), Frame::Integer(table::all().count() as i64));
        let Frame::Array(all) = run(&["COMMAND"]) else { panic!("an array") };
        assert_eq!(all.len(), table::all().count());
    }

    #[test]
    fn docs_skip_unknown_names_and_nest_subcommands() {
        let Frame::Map(entries) = run(&["COMMAND", "DOCS", "nosuch", "client"]) else { panic!("a map") };
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].0, bulk("client"));
        let Frame::Map(fields) = &entries[0].1 else { panic!("a map") };
        let names: Vec<&Frame> = fields.iter().map(|(k, _)| k).collect();
        assert_eq!(names, [&bulk("summary"), &bulk("since"), &bulk("group"), &bulk("complexity"), &bulk("subcommands")]);
        assert_eq!(fields[2].1, bulk("connection"));
    }

    #[test]
    fn list_filters_by_pattern_category_and_module() {
        let names = |list: &[&str]| -> Vec<Frame> {
            match run(list) {
                Frame::Array(names) => names,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(names(&["COMMAND", "LIST", "FILTERBY", "PATTERN", "client|L*"]), vec![bulk("client|list")]);
        assert!(names(&["COMMAND", "LIST", "FILTERBY", "PATTERN", "CL*"]).contains(&bulk("client|kill")));
        let connection = names(&["COMMAND", "LIST", "FILTERBY", "ACLCAT", "Connection"]);
        assert!(connection.contains(&bulk("ping")) && connection.contains(&bulk("client|id")));
        assert!(!connection.contains(&bulk("get")));
        assert_eq!(names(&["COMMAND", "LIST", "FILTERBY", "MODULE", "x"]), vec![]);
        assert_eq!(names(&["COMMAND", "LIST", "FILTERBY", "ACLCAT", "nosuch"]), vec![]);
        assert!(names(&["COMMAND", "LIST"]).contains(&bulk("command|getkeys")));
        assert_eq!(run(&["COMMAND", "LIST", "FILTERBY", "PATTERN"]), errors::syntax());
        assert_eq!(run(&["COMMAND", "LIST", "foo"]), errors::syntax());
        assert_eq!(run(&["COMMAND", "LIST", "FILTERBY", "foo", "bar"]), errors::syntax());
    }

    #[test]
    fn getkeys_finds_keys_and_reports_redis_errors() {
        assert_eq!(run(&["COMMAND", "GETKEYS", "mset", "a", "1", "b", "2"]), Frame::Array(vec![bulk("a"), bulk("b")]));
        assert_eq!(run(&["COMMAND", "GETKEYS", "nosuch", "a"]), errors::error("ERR Invalid command specified"));
        assert_eq!(run(&["COMMAND", "GETKEYS", "client", "nosuch"]), errors::error("ERR Invalid command specified"));
        assert_eq!(run(&["COMMAND", "GETKEYS", "ping", "x"]), errors::error("ERR The command has no key arguments"));
        assert_eq!(run(&["COMMAND", "GETKEYS", "client", "list"]), errors::error("ERR The command has no key arguments"));
        assert_eq!(run(&["COMMAND", "GETKEYS", "get", "a", "b"]), errors::error("ERR Invalid number of arguments specified for command"));
        assert_eq!(run(&["COMMAND", "GETKEYSANDFLAGS", "get", "k"]), Frame::Array(vec![Frame::Array(vec![bulk("k"), status_set(&["RO", "access"])])]));
    }

    #[test]
    fn acl_categories_follow_redis_order() {
        let del = table::lookup(b"del").unwrap();
        assert_eq!(acl_categories(del), vec!["@keyspace", "@write", "@slow"]);
        let list = find(b"client|list").unwrap();
        assert_eq!(acl_categories(list), vec!["@admin", "@slow", "@dangerous", "@connection"]);
    }

    #[test]
    fn help_lists_every_subcommand_of_the_table() {
        let Frame::Array(lines) = run(&["COMMAND", "HELP"]) else { panic!("an array") };
        for sub in table::lookup(b"command").unwrap().subcommands {
            let short = sub.name.split('|').nth(1).unwrap().to_ascii_uppercase();
            assert!(lines.iter().any(|line| matches!(line, Frame::Simple(t) if t.starts_with(short.as_bytes()))), "{short} in HELP");
        }
    }
}
