//! The server-wide commands against the real binary with several cores: CLIENT (LIST, KILL,
//! PAUSE, ...), COMMAND, INFO, CONFIG, DEBUG, and `requirepass`.
//!
//! Where a reply must be Redis's byte for byte, the same exchange runs against Debian's
//! redis-server too when it is installed, so the expected bytes are Redis's, not our guess.
//! Exchanges where Redis 7.0 (the oracle) and 7.2 (what we follow) differ run on Shoal only.

use std::time::{Duration, Instant};

use shoal_testkit::{Raw, Server};

use shoal_tests::{assert_replies, shoal_and_redis, THREADS};

/// The text of a bulk-string reply (`$n\r\n...\r\n`).
fn bulk_text(reply: &str) -> String {
    assert!(reply.starts_with('$'), "a bulk string: {reply:?}");
    let body = &reply[reply.find("\r\n").expect("a header") + 2..];
    body.strip_suffix("\r\n").expect("a CRLF at the end").to_owned()
}

/// The value of `field` in an INFO text, if present.
fn info_field(info: &str, field: &str) -> Option<String> {
    info.split("\r\n").find_map(|line| line.strip_prefix(field).and_then(|rest| rest.strip_prefix(':')).map(str::to_owned))
}

fn client_id(raw: &mut Raw) -> u64 {
    let reply = raw.command(&["CLIENT", "ID"]).unwrap();
    reply.trim_start_matches(':').trim_end().parse().expect("an integer reply")
}

/// Many connections, so that several cores each have some (the kernel spreads them).
/// `count` connections, each registered by the server (one round trip) before it returns:
/// a connection the kernel accepted but the server has not yet taken would be missed by a
/// CLIENT LIST or KILL that follows at once (CI saw CLIENT KILL TYPE count 4 of 5).
fn connections(server: &Server, count: usize) -> Vec<Raw> {
    (0..count)
        .map(|_| {
            let mut raw = server.raw();
            // Any reply (PONG, or NOAUTH under requirepass) shows the server has it.
            raw.command(&["PING"]).unwrap();
            raw
        })
        .collect()
}

// ---- CLIENT ---------------------------------------------------------------------------

#[test]
fn client_list_shows_the_clients_of_every_core_in_id_order() {
    let server = Server::start(THREADS, &[]);
    let mut raws = connections(&server, 12);
    let mut ids: Vec<u64> = raws.iter_mut().map(client_id).collect();
    ids.sort_unstable();
    let list = bulk_text(&raws[0].command(&["CLIENT", "LIST"]).unwrap());
    let listed: Vec<u64> = list.lines().map(|line| line.strip_prefix("id=").unwrap().split(' ').next().unwrap().parse().unwrap()).collect();
    assert_eq!(listed, ids, "every client, in id order");
    assert!(list.ends_with('\n'));
    let own = list.lines().find(|line| line.contains("cmd=client|list")).expect("the caller's line names the subcommand");
    assert!(own.contains(" user=default "), "{own}");
    let others = list.lines().filter(|line| line.contains("cmd=client|id")).count();
    assert_eq!(others, 11, "the other clients last ran CLIENT ID");

    let wanted = format!("{}", ids[3]);
    let missing = "999999";
    let first = format!("{}", ids[0]);
    let filtered = bulk_text(&raws[1].command(&["CLIENT", "LIST", "ID", &wanted, missing, &first]).unwrap());
    let filtered_ids: Vec<String> = filtered.lines().map(|l| l.split(' ').next().unwrap().to_owned()).collect();
    assert_eq!(filtered_ids, [format!("id={wanted}"), format!("id={first}")], "in argument order");
    assert_eq!(bulk_text(&raws[1].command(&["CLIENT", "LIST", "TYPE", "normal"]).unwrap()).lines().count(), 12);
    assert_eq!(raws[1].command(&["CLIENT", "LIST", "TYPE", "pubsub"]).unwrap(), "$0\r\n\r\n");
}

#[test]
fn client_subcommand_errors_match_redis() {
    let servers = shoal_and_redis(&[]);
    assert_replies(
        &servers,
        &[
            (&["CLIENT", "LIST", "TYPE", "foo"], "-ERR Unknown client type 'foo'\r\n"),
            (&["CLIENT", "LIST", "ID", "1", "abc"], "-ERR Invalid client ID\r\n"),
            (&["CLIENT", "LIST", "ID"], "-ERR syntax error\r\n"),
            (&["CLIENT", "LIST", "foo"], "-ERR syntax error\r\n"),
            (&["CLIENT", "LIST", "ID", "0"], "$0\r\n\r\n"),
            (&["CLIENT", "KILL", "1.2.3.4:5"], "-ERR No such client\r\n"),
            (&["CLIENT", "KILL", "ID", "abc"], "-ERR client-id should be greater than 0\r\n"),
            (&["CLIENT", "KILL", "ID", "999"], ":0\r\n"),
            (&["CLIENT", "KILL", "ADDR", "1.2.3.4:5"], ":0\r\n"),
            (&["CLIENT", "KILL", "foo", "bar"], "-ERR syntax error\r\n"),
            (&["CLIENT", "KILL", "SKIPME", "maybe"], "-ERR syntax error\r\n"),
            (&["CLIENT", "KILL", "USER", "nosuch"], "-ERR No such user 'nosuch'\r\n"),
            (&["CLIENT", "KILL", "USER", "default", "SKIPME", "yes"], ":0\r\n"),
            (&["CLIENT", "KILL", "ID"], "-ERR No such client\r\n"),
            (&["CLIENT", "PAUSE", "abc"], "-ERR timeout is not an integer or out of range\r\n"),
            (&["CLIENT", "PAUSE", "-1"], "-ERR timeout is negative\r\n"),
            (&["CLIENT", "PAUSE", "10", "foo"], "-ERR CLIENT PAUSE mode must be WRITE or ALL\r\n"),
            (&["CLIENT", "PAUSE", "10", "WRITE", "x"], "-ERR unknown subcommand or wrong number of arguments for 'PAUSE'. Try CLIENT HELP.\r\n"),
            (&["CLIENT", "UNPAUSE"], "+OK\r\n"),
            (&["CLIENT", "NO-EVICT", "maybe"], "-ERR syntax error\r\n"),
            (&["CLIENT", "NO-EVICT", "on"], "+OK\r\n"),
            (&["CLIENT", "NO-EVICT", "OFF"], "+OK\r\n"),
            (&["CLIENT", "REPLY", "maybe"], "-ERR syntax error\r\n"),
            (&["CLIENT", "GETREDIR"], ":-1\r\n"),
            (&["CLIENT", "UNBLOCK", "abc"], "-ERR value is not an integer or out of range\r\n"),
            (&["CLIENT", "UNBLOCK", "5"], ":0\r\n"),
            (&["CLIENT", "UNBLOCK", "5", "foo"], "-ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR\r\n"),
            (&["CLIENT", "SETNAME", "a b"], "-ERR Client names cannot contain spaces, newlines or special characters.\r\n"),
            (&["CLIENT", "SETNAME", ""], "+OK\r\n"),
            (&["CLIENT", "GETNAME"], "$-1\r\n"),
            (&["CLIENT", "ID", "x"], "-ERR wrong number of arguments for 'client|id' command\r\n"),
            (&["CLIENT", "FOO"], "-ERR unknown subcommand 'FOO'. Try CLIENT HELP.\r\n"),
            (&["CLIENT"], "-ERR wrong number of arguments for 'client' command\r\n"),
        ],
    );
}

#[test]
fn client_kill_closes_clients_on_any_core() {
    let server = Server::start(THREADS, &[]);
    let mut killer = server.raw();
    let mut victims = connections(&server, 8);
    let ids: Vec<u64> = victims.iter_mut().map(client_id).collect();
    for (victim, id) in victims.iter_mut().zip(&ids) {
        assert_eq!(killer.command(&["CLIENT", "KILL", "ID", &id.to_string()]).unwrap(), ":1\r\n");
        assert_eq!(victim.read_until_closed().unwrap(), b"", "client {id} was closed");
    }
    assert_eq!(killer.command(&["CLIENT", "KILL", "ID", &ids[0].to_string()]).unwrap(), ":0\r\n", "already gone");

    // The old form, by address, answers +OK; the new form counts.
    let mut victim = server.raw();
    let line = bulk_text(&victim.command(&["CLIENT", "INFO"]).unwrap());
    let addr = line.split(' ').find_map(|f| f.strip_prefix("addr=")).unwrap().to_owned();
    assert_eq!(killer.command(&["CLIENT", "KILL", &addr]).unwrap(), "+OK\r\n");
    assert_eq!(victim.read_until_closed().unwrap(), b"");

    let mut rest = connections(&server, 5);
    assert_eq!(killer.command(&["CLIENT", "KILL", "TYPE", "normal"]).unwrap(), ":5\r\n", "everyone but the caller (SKIPME yes)");
    for raw in &mut rest {
        assert_eq!(raw.read_until_closed().unwrap(), b"");
    }
    // SKIPME no: the caller gets its reply, then is closed too.
    killer.send(&Raw::encode(&["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "no"]));
    assert_eq!(killer.read_until_closed().unwrap(), b":1\r\n");
}

#[test]
fn the_idle_timeout_closes_quiet_clients_on_every_core_and_spares_busy_ones() {
    let server = Server::start(THREADS, &["--timeout", "1", "--hz", "50"]);
    let mut quiet = connections(&server, 6);
    for raw in &mut quiet {
        assert_eq!(raw.command(&["PING"]).unwrap(), "+PONG\r\n");
        raw.set_read_timeout(Duration::from_secs(10));
    }
    let mut busy = server.raw();
    let started = Instant::now();
    // More than one second idle closes a client (Redis: idle > timeout); keep one talking.
    while started.elapsed() < Duration::from_millis(2500) {
        assert_eq!(busy.command(&["PING"]).unwrap(), "+PONG\r\n", "a client that talks is never idle");
        std::thread::sleep(Duration::from_millis(200));
    }
    for raw in &mut quiet {
        assert_eq!(raw.read_until_closed().unwrap(), b"", "an idle client was closed");
    }
    assert!(started.elapsed() < Duration::from_secs(8), "closed soon after the timeout: {:?}", started.elapsed());
    assert_eq!(busy.command(&["PING"]).unwrap(), "+PONG\r\n");
}

#[test]
fn client_pause_write_holds_writes_on_every_core_until_unpause() {
    let server = Server::start(THREADS, &[]);
    let mut admin = server.raw();
    let mut clients = connections(&server, 8);
    assert_eq!(admin.command(&["CLIENT", "PAUSE", "100000", "WRITE"]).unwrap(), "+OK\r\n");
    for raw in &mut clients {
        assert_eq!(raw.command(&["GET", "k"]).unwrap(), "$-1\r\n", "reads go on");
        raw.send(&Raw::encode(&["SET", "k", "v"]));
    }
    // The writes are held: nothing comes back for a while.
    clients[0].set_read_timeout(Duration::from_millis(300));
    assert!(clients[0].read_reply().is_err(), "a write runs while writes are paused");
    assert_eq!(admin.command(&["CLIENT", "UNPAUSE"]).unwrap(), "+OK\r\n");
    for raw in &mut clients {
        raw.set_read_timeout(Duration::from_secs(10));
        assert_eq!(raw.read_reply().unwrap(), "+OK\r\n");
    }
}

#[test]
fn client_pause_write_holds_exec_with_writes_and_scripts_but_not_read_only_ones() {
    let server = Server::start(THREADS, &[]);
    let mut admin = server.raw();
    let mut reader = server.raw();
    let mut writer = server.raw();
    let mut scripter = server.raw();
    assert_eq!(admin.command(&["CLIENT", "PAUSE", "100000", "WRITE"]).unwrap(), "+OK\r\n");
    // A transaction of reads and a read-only script run.
    assert_eq!(reader.command(&["MULTI"]).unwrap(), "+OK\r\n");
    assert_eq!(reader.command(&["GET", "k"]).unwrap(), "+QUEUED\r\n");
    assert_eq!(reader.command(&["EXEC"]).unwrap(), "*1\r\n$-1\r\n");
    assert_eq!(reader.command(&["EVAL_RO", "return redis.call('GET', KEYS[1])", "1", "k"]).unwrap(), "$-1\r\n");
    // A transaction with a write and a script that may write are held.
    assert_eq!(writer.command(&["MULTI"]).unwrap(), "+OK\r\n");
    assert_eq!(writer.command(&["SET", "k", "v"]).unwrap(), "+QUEUED\r\n");
    writer.send(&Raw::encode(&["EXEC"]));
    scripter.send(&Raw::encode(&["EVAL", "return redis.call('SET', KEYS[1], 'w')", "1", "j"]));
    for held in [&mut writer, &mut scripter] {
        held.set_read_timeout(Duration::from_millis(300));
        assert!(held.read_reply().is_err(), "a write ran while writes are paused");
    }
    assert_eq!(admin.command(&["CLIENT", "UNPAUSE"]).unwrap(), "+OK\r\n");
    for held in [&mut writer, &mut scripter] {
        held.set_read_timeout(Duration::from_secs(10));
    }
    assert_eq!(writer.read_reply().unwrap(), "*1\r\n+OK\r\n");
    assert_eq!(scripter.read_reply().unwrap(), "+OK\r\n");
}

#[test]
fn client_pause_all_holds_every_command_until_its_deadline() {
    let server = Server::start(THREADS, &[]);
    let mut admin = server.raw();
    let mut clients = connections(&server, 6);
    let started = Instant::now();
    assert_eq!(admin.command(&["CLIENT", "PAUSE", "400"]).unwrap(), "+OK\r\n");
    for raw in &mut clients {
        assert_eq!(raw.command(&["PING"]).unwrap(), "+PONG\r\n");
    }
    assert!(started.elapsed() >= Duration::from_millis(350), "PING waited for the pause: {:?}", started.elapsed());
}

#[test]
fn client_reply_off_and_skip_suppress_replies() {
    let servers = shoal_and_redis(&[]);
    for server in &servers {
        let mut raw = server.raw();
        raw.send(&Raw::encode(&["CLIENT", "REPLY", "SKIP"]));
        raw.send(&Raw::encode(&["SET", "a", "1"]));
        raw.send(&Raw::encode(&["CLIENT", "REPLY", "OFF"]));
        raw.send(&Raw::encode(&["GET", "a"]));
        assert_eq!(raw.command(&["CLIENT", "REPLY", "ON"]).unwrap(), "+OK\r\n");
        assert_eq!(raw.command(&["GET", "a"]).unwrap(), "$1\r\n1\r\n");
    }
}

// ---- requirepass ------------------------------------------------------------------------

#[test]
fn requirepass_refuses_commands_until_auth() {
    // Set after start: the test kit's readiness check is an unauthenticated PING.
    let servers = shoal_and_redis(&[]);
    for server in &servers {
        assert_eq!(server.raw().command(&["CONFIG", "SET", "requirepass", "s3cret"]).unwrap(), "+OK\r\n");
    }
    assert_replies(
        &servers,
        &[
            (&["GET", "a"], "-NOAUTH Authentication required.\r\n"),
            (&["FOO"], "-ERR unknown command 'FOO', with args beginning with: \r\n"),
            (&["GET"], "-ERR wrong number of arguments for 'get' command\r\n"),
            (&["PING"], "-NOAUTH Authentication required.\r\n"),
            (&["CLIENT", "ID"], "-NOAUTH Authentication required.\r\n"),
            (&["AUTH", "wrong"], "-WRONGPASS invalid username-password pair or user is disabled.\r\n"),
            (&["AUTH", "nobody", "s3cret"], "-WRONGPASS invalid username-password pair or user is disabled.\r\n"),
            (&["HELLO", "2", "AUTH", "default", "wrong"], "-WRONGPASS invalid username-password pair or user is disabled.\r\n"),
            (&["AUTH", "s3cret"], "+OK\r\n"),
            (&["GET", "a"], "$-1\r\n"),
            (&["RESET"], "+RESET\r\n"),
            (&["GET", "a"], "-NOAUTH Authentication required.\r\n"),
            (&["AUTH", "default", "s3cret"], "+OK\r\n"),
            (&["PING"], "+PONG\r\n"),
        ],
    );
    // Redis 7.2's wording (7.0 lacks the `<proto>`).
    let mut raw = servers[0].raw();
    assert_eq!(
        raw.command(&["HELLO", "3"]).unwrap(),
        "-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time\r\n"
    );
    assert!(raw.command(&["HELLO", "3", "AUTH", "default", "s3cret"]).unwrap().starts_with("%7\r\n"));
    assert_eq!(raw.command(&["GET", "a"]).unwrap(), "_\r\n");
}

#[test]
fn config_set_requirepass_applies_to_new_connections_on_every_core() {
    let server = Server::start(THREADS, &[]);
    let mut admin = server.raw();
    assert_eq!(admin.command(&["CONFIG", "SET", "requirepass", "pw"]).unwrap(), "+OK\r\n");
    assert_eq!(admin.command(&["PING"]).unwrap(), "+PONG\r\n", "a connection authenticated before stays so");
    for mut raw in connections(&server, 8) {
        assert_eq!(raw.command(&["PING"]).unwrap(), "-NOAUTH Authentication required.\r\n");
        assert_eq!(raw.command(&["AUTH", "pw"]).unwrap(), "+OK\r\n");
        assert_eq!(raw.command(&["PING"]).unwrap(), "+PONG\r\n");
    }
    assert_eq!(admin.command(&["CONFIG", "SET", "requirepass", ""]).unwrap(), "+OK\r\n");
    for mut raw in connections(&server, 8) {
        assert_eq!(raw.command(&["PING"]).unwrap(), "+PONG\r\n");
    }
}

// ---- COMMAND ----------------------------------------------------------------------------

#[test]
fn command_replies_match_redis() {
    let servers = shoal_and_redis(&[]);
    let get_info = "*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n*3\r\n+@read\r\n+@string\r\n+@fast\r\n*0\r\n*1\r\n*6\r\n$5\r\nflags\r\n*2\r\n+RO\r\n+access\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n";
    assert_replies(
        &servers,
        &[
            (&["COMMAND", "INFO", "get", "nosuch"], &format!("*2\r\n{get_info}$-1\r\n")),
            (&["COMMAND", "INFO", "GET"], &format!("*1\r\n{get_info}")),
            (&["COMMAND", "GETKEYS", "mset", "a", "1", "b", "2"], "*2\r\n$1\r\na\r\n$1\r\nb\r\n"),
            (&["COMMAND", "GETKEYS", "nosuch", "a"], "-ERR Invalid command specified\r\n"),
            (&["COMMAND", "GETKEYS", "client", "list"], "-ERR The command has no key arguments\r\n"),
            (&["COMMAND", "GETKEYS", "config", "get", "x"], "-ERR The command has no key arguments\r\n"),
            (&["COMMAND", "GETKEYS", "get"], "-ERR wrong number of arguments for 'command|getkeys' command\r\n"),
            (&["COMMAND", "GETKEYSANDFLAGS", "ping"], "-ERR wrong number of arguments for 'command|getkeysandflags' command\r\n"),
            (&["COMMAND", "LIST", "FILTERBY", "PATTERN", "client|L*"], "*1\r\n$11\r\nclient|list\r\n"),
            (&["COMMAND", "LIST", "FILTERBY", "ACLCAT", "nosuch"], "*0\r\n"),
            (&["COMMAND", "LIST", "FILTERBY", "MODULE", "x"], "*0\r\n"),
            (&["COMMAND", "LIST", "FILTERBY", "PATTERN"], "-ERR syntax error\r\n"),
            (&["COMMAND", "LIST", "foo"], "-ERR syntax error\r\n"),
            (&["COMMAND", "COUNT", "x"], "-ERR wrong number of arguments for 'command|count' command\r\n"),
            (&["COMMAND", "FOO"], "-ERR unknown subcommand 'FOO'. Try COMMAND HELP.\r\n"),
        ],
    );
    // The same in RESP3: flags, categories, tips, key specs and subcommands are sets.
    for server in &servers {
        let mut raw = server.raw();
        raw.command(&["HELLO", "3"]).unwrap();
        assert_eq!(
            raw.command(&["COMMAND", "INFO", "get"]).unwrap(),
            "*1\r\n*10\r\n$3\r\nget\r\n:2\r\n~2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n~3\r\n+@read\r\n+@string\r\n+@fast\r\n~0\r\n~1\r\n%3\r\n$5\r\nflags\r\n~2\r\n+RO\r\n+access\r\n$12\r\nbegin_search\r\n%2\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n%1\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n%2\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n%3\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n~0\r\n",
            "port {}",
            server.port
        );
    }
}

#[test]
fn shard_channel_commands_describe_their_channels_as_redis() {
    let servers = shoal_and_redis(&[]);
    for request in [
        &["COMMAND", "INFO", "spublish", "ssubscribe", "sunsubscribe", "publish", "subscribe"][..],
        &["COMMAND", "GETKEYS", "spublish", "ch", "msg"],
        &["COMMAND", "GETKEYSANDFLAGS", "ssubscribe", "a", "b"],
    ] {
        let replies: Vec<String> = servers.iter().map(|server| server.raw().command(request).unwrap()).collect();
        if let [shoal, redis] = &replies[..] {
            assert_eq!(shoal, redis, "{request:?}");
        }
    }
    // The shard channel is a `not_key` spec: named in the legacy triple, routed by nothing.
    let info = servers[0].raw().command(&["COMMAND", "INFO", "spublish"]).unwrap();
    assert!(info.contains("+not_key\r\n") && info.contains(":1\r\n:1\r\n:1\r\n"), "{info}");
}

#[test]
fn command_count_list_and_docs_agree_with_the_table() {
    let server = Server::start(THREADS, &[]);
    let mut raw = server.raw();
    let count: usize = raw.command(&["COMMAND", "COUNT"]).unwrap().trim_start_matches(':').trim_end().parse().unwrap();
    let all = raw.command(&["COMMAND"]).unwrap();
    assert!(all.starts_with(&format!("*{count}\r\n*10\r\n")), "COMMAND lists COUNT entries");
    let list = raw.command(&["COMMAND", "LIST"]).unwrap();
    for name in ["get", "client", "client|kill", "config|set", "command|docs", "info", "debug"] {
        assert!(list.contains(&format!("\r\n{name}\r\n")), "{name} in COMMAND LIST");
    }
    let docs = raw.command(&["COMMAND", "DOCS", "get", "nosuch"]).unwrap();
    assert!(docs.starts_with("*2\r\n$3\r\nget\r\n*8\r\n$7\r\nsummary\r\n"), "{docs}");
    assert!(docs.contains("$5\r\nsince\r\n$5\r\n1.0.0\r\n$5\r\ngroup\r\n$6\r\nstring\r\n$10\r\ncomplexity\r\n"), "{docs}");
    let client_docs = raw.command(&["COMMAND", "DOCS", "client"]).unwrap();
    assert!(client_docs.contains("$11\r\nsubcommands\r\n"), "{client_docs}");
    assert!(client_docs.contains("$11\r\nclient|kill\r\n"), "{client_docs}");
    assert_eq!(raw.command(&["COMMAND", "GETKEYS", "get", "a", "b"]).unwrap(), "-ERR Invalid number of arguments specified for command\r\n");
    assert_eq!(raw.command(&["COMMAND", "GETKEYSANDFLAGS", "get", "k"]).unwrap(), "*1\r\n*2\r\n$1\r\nk\r\n*2\r\n+RO\r\n+access\r\n");
}

#[test]
fn help_replies_match_redis() {
    let servers = shoal_and_redis(&[]);
    // The longer ones, compared whole with Redis's (when it runs).
    for request in [&["SCRIPT", "HELP"][..], &["FUNCTION", "HELP"], &["SLOWLOG", "HELP"], &["LATENCY", "HELP"], &["ACL", "HELP"], &["MODULE", "HELP"]] {
        let replies: Vec<String> = servers.iter().map(|server| server.raw().command(request).unwrap()).collect();
        assert!(replies[0].ends_with("+HELP\r\n+    Prints this help.\r\n"), "{request:?}: {}", replies[0]);
        if let [shoal, redis] = &replies[..] {
            assert_eq!(shoal, redis, "{request:?}");
        }
    }
    assert_replies(
        &servers,
        &[
            (
                &["CONFIG", "HELP"],
                "*11\r\n+CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:\r\n+GET <pattern>\r\n+    Return parameters matching the glob-like <pattern> and their values.\r\n+SET <directive> <value>\r\n+    Set the configuration <directive> to <value>.\r\n+RESETSTAT\r\n+    Reset statistics reported by the INFO command.\r\n+REWRITE\r\n+    Rewrite the configuration file.\r\n+HELP\r\n+    Prints this help.\r\n",
            ),
            (
                &["COMMAND", "HELP"],
                "*21\r\n+COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:\r\n+(no subcommand)\r\n+    Return details about all Redis commands.\r\n+COUNT\r\n+    Return the total number of commands in this Redis server.\r\n+LIST\r\n+    Return a list of all commands in this Redis server.\r\n+INFO [<command-name> ...]\r\n+    Return details about multiple Redis commands.\r\n+    If no command names are given, documentation details for all\r\n+    commands are returned.\r\n+DOCS [<command-name> ...]\r\n+    Return documentation details about multiple Redis commands.\r\n+    If no command names are given, documentation details for all\r\n+    commands are returned.\r\n+GETKEYS <full-command>\r\n+    Return the keys from a full Redis command.\r\n+GETKEYSANDFLAGS <full-command>\r\n+    Return the keys and the access flags from a full Redis command.\r\n+HELP\r\n+    Prints this help.\r\n",
            ),
        ],
    );
}

// ---- INFO -------------------------------------------------------------------------------

fn info(raw: &mut Raw, sections: &[&str]) -> String {
    let mut request = vec!["INFO"];
    request.extend_from_slice(sections);
    bulk_text(&raw.command(&request).unwrap())
}

fn headers(info: &str) -> Vec<String> {
    info.split("\r\n").filter(|l| l.starts_with("# ")).map(str::to_owned).collect()
}

#[test]
fn info_sections_and_layout_match_redis() {
    let servers = shoal_and_redis(&[]);
    let mut replies = Vec::new();
    for server in &servers {
        let mut raw = server.raw();
        let default = info(&mut raw, &[]);
        assert!(default.ends_with("\r\n") && !default.ends_with("\r\n\r\n"), "ends with one CRLF");
        assert!(!default.replace("\r\n", "").contains('\n'), "CRLF line ends only");
        for section in default.split("\r\n\r\n") {
            assert!(section.starts_with("# "), "sections are separated by one blank line: {section:?}");
        }
        replies.push((
            headers(&default),
            headers(&info(&mut raw, &["all"])),
            headers(&info(&mut raw, &["everything"])),
            headers(&info(&mut raw, &["keyspace", "CPU", "nosuch"])),
            raw.command(&["INFO", "foo", "bar"]).unwrap(),
            info(&mut raw, &["cluster"]),
        ));
    }
    if let [shoal, redis] = &replies[..] {
        assert_eq!(shoal, redis);
    }
    let (default, all, ..) = &replies[0];
    assert_eq!(default.len(), 11);
    assert_eq!(all.len(), 13);
}

#[test]
fn info_adds_up_every_core() {
    let server = Server::start(THREADS, &[]);
    let mut raws = connections(&server, 8);
    for (i, raw) in raws.iter_mut().enumerate() {
        for j in 0..5 {
            let key = format!("key:{i}:{j}");
            assert_eq!(raw.command(&["SET", &key, "v"]).unwrap(), "+OK\r\n");
        }
        assert_eq!(raw.command(&["SET", &format!("ttl:{i}"), "v", "EX", "1000"]).unwrap(), "+OK\r\n");
        assert_eq!(raw.command(&["GET", &format!("key:{i}:0")]).unwrap(), "$1\r\nv\r\n");
        assert_eq!(raw.command(&["GET", &format!("nosuch:{i}")]).unwrap(), "$-1\r\n");
    }
    let mut three = server.raw();
    assert_eq!(three.command(&["SELECT", "3"]).unwrap(), "+OK\r\n");
    assert_eq!(three.command(&["SET", "in-three", "v"]).unwrap(), "+OK\r\n");
    let text = info(&mut raws[1], &["keyspace", "stats"]);
    assert!(text.contains("# Keyspace\r\ndb0:keys=48,expires=8,avg_ttl=0,subexpiry=0\r\ndb3:keys=1,expires=0,avg_ttl=0,subexpiry=0\r\n"), "{text}");
    assert_eq!(info_field(&text, "keyspace_hits").as_deref(), Some("8"));
    assert_eq!(info_field(&text, "keyspace_misses").as_deref(), Some("8"));
    for (i, raw) in raws.iter_mut().enumerate() {
        assert!(raw.command(&["INCR", &format!("key:{i}:1")]).unwrap().starts_with("-ERR"));
    }
    let text = info(&mut raws[1], &["stats", "commandstats", "errorstats", "clients", "server"]);
    assert_eq!(info_field(&text, "cmdstat_set").as_deref().and_then(|v| v.split(',').next()), Some("calls=49"));
    assert!(info_field(&text, "cmdstat_incr").unwrap().ends_with(",rejected_calls=0,failed_calls=8"), "{text}");
    assert_eq!(info_field(&text, "errorstat_ERR").as_deref(), Some("count=8"));
    assert_eq!(info_field(&text, "total_error_replies").as_deref(), Some("8"));
    assert_eq!(info_field(&text, "connected_clients").as_deref(), Some("9"));
    assert_eq!(info_field(&text, "redis_version").as_deref(), Some("7.2.0"));
    assert_eq!(info_field(&text, "multiplexing_api").as_deref(), Some("io_uring"));
    assert_eq!(info_field(&text, "threads").as_deref(), Some("4"));
    assert_eq!(info_field(&text, "tcp_port"), Some(server.port.to_string()));
    let run_id = info_field(&text, "run_id").unwrap();
    assert!(run_id.len() == 40 && run_id.chars().all(|c| c.is_ascii_hexdigit()), "{run_id}");
    assert_eq!(info_field(&info(&mut raws[2], &["server"]), "run_id"), Some(run_id), "one run id for every core");

    // CONFIG RESETSTAT zeroes the counters of every core.
    assert_eq!(raws[2].command(&["CONFIG", "RESETSTAT"]).unwrap(), "+OK\r\n");
    let text = info(&mut raws[3], &["stats", "commandstats", "errorstats"]);
    assert_eq!(info_field(&text, "keyspace_hits").as_deref(), Some("0"));
    assert_eq!(info_field(&text, "total_error_replies").as_deref(), Some("0"));
    assert_eq!(info_field(&text, "cmdstat_set"), None);
    assert!(info_field(&text, "cmdstat_config|resetstat").is_some(), "{text}");
    assert_eq!(info_field(&text, "errorstat_ERR"), None);
}

#[test]
fn info_memory_and_cpu_report_numbers() {
    let server = Server::start(THREADS, &[]);
    let mut raw = server.raw();
    let text = info(&mut raw, &["memory", "cpu"]);
    for field in ["used_memory", "used_memory_rss", "used_memory_peak", "total_system_memory", "maxmemory"] {
        let value: u64 = info_field(&text, field).unwrap_or_else(|| panic!("{field} in {text}")).parse().unwrap();
        assert!(field == "maxmemory" || value > 0, "{field} is {value}");
    }
    assert_eq!(info_field(&text, "maxmemory_policy").as_deref(), Some("noeviction"));
    // The allocator that really serves the process, with its version.
    let allocator = info_field(&text, "mem_allocator").unwrap();
    assert!(allocator.strip_prefix("mimalloc-").is_some_and(|v| v.split('.').count() == 3 && v.split('.').all(|n| n.parse::<u32>().is_ok())), "{allocator}");
    let user = info_field(&text, "used_cpu_user").unwrap();
    assert!(user.split_once('.').is_some_and(|(_, micros)| micros.len() == 6), "{user}");
}

// ---- CONFIG -----------------------------------------------------------------------------

#[test]
fn config_set_reaches_every_core() {
    let server = Server::start(THREADS, &[]);
    let mut admin = server.raw();
    assert_eq!(admin.command(&["CONFIG", "SET", "hz", "20", "maxmemory", "1gb", "maxmemory-policy", "allkeys-lfu"]).unwrap(), "+OK\r\n");
    for mut raw in connections(&server, 8) {
        assert_eq!(raw.command(&["CONFIG", "GET", "hz", "maxmemory"]).unwrap(), "*4\r\n$2\r\nhz\r\n$2\r\n20\r\n$9\r\nmaxmemory\r\n$10\r\n1073741824\r\n");
        // The operations' settings follow: under an LFU policy OBJECT FREQ answers.
        let key = format!("k{}", client_id(&mut raw));
        assert_eq!(raw.command(&["SET", &key, "v"]).unwrap(), "+OK\r\n");
        assert!(raw.command(&["OBJECT", "FREQ", &key]).unwrap().starts_with(':'));
    }
    // All or nothing: a bad pair changes nothing.
    assert!(admin.command(&["CONFIG", "SET", "hz", "30", "maxmemory", "1x"]).unwrap().starts_with("-ERR CONFIG SET failed"));
    assert_eq!(admin.command(&["CONFIG", "GET", "hz"]).unwrap(), "*2\r\n$2\r\nhz\r\n$2\r\n20\r\n");
}

#[test]
fn config_replies_match_redis() {
    let servers = shoal_and_redis(&[]);
    assert_replies(
        &servers,
        &[
            (&["CONFIG", "SET", "a"], "-ERR wrong number of arguments for 'config|set' command\r\n"),
            (&["CONFIG", "SET", "a", "b", "c"], "-ERR syntax error\r\n"),
            (&["CONFIG", "SET", "foo", "1"], "-ERR Unknown option or number of arguments for CONFIG SET - 'foo'\r\n"),
            (&["CONFIG", "SET", "hz", "x"], "-ERR CONFIG SET failed (possibly related to argument 'hz') - argument couldn't be parsed into an integer\r\n"),
            (&["CONFIG", "SET", "hz", "15", "timeout", "7"], "+OK\r\n"),
            (&["CONFIG", "GET", "hz"], "*2\r\n$2\r\nhz\r\n$2\r\n15\r\n"),
            (&["CONFIG", "GET", "nosuch"], "*0\r\n"),
            (&["CONFIG", "GET"], "-ERR wrong number of arguments for 'config|get' command\r\n"),
            (&["CONFIG", "RESETSTAT", "x"], "-ERR wrong number of arguments for 'config|resetstat' command\r\n"),
            (&["CONFIG", "REWRITE"], "-ERR The server is running without a config file\r\n"),
            (&["CONFIG", "FOO"], "-ERR unknown subcommand 'FOO'. Try CONFIG HELP.\r\n"),
        ],
    );
    for server in &servers {
        let mut raw = server.raw();
        raw.command(&["HELLO", "3"]).unwrap();
        assert_eq!(raw.command(&["CONFIG", "GET", "maxmemory"]).unwrap(), "%1\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n");
    }
}

/// The directives of Debian's redis.conf (and the replication ones) that Shoal takes for
/// compatibility: CONFIG GET, a bad and a good CONFIG SET, and GET again answer as Redis's.
#[test]
fn redis_conf_directives_answer_config_as_redis_does() {
    let servers = shoal_and_redis(&[]);
    let Some(redis) = servers.get(1) else { return };
    let (mut shoal_raw, mut redis_raw) = (servers[0].raw(), redis.raw());
    let directives: &[(&str, &str, &str)] = &[
        ("activerehashing", "maybe", "no"),
        ("aof-rewrite-incremental-fsync", "2", "no"),
        ("rdb-save-incremental-fsync", "x", "no"),
        ("rdb-del-sync-files", "x", "yes"),
        ("jemalloc-bg-thread", "x", "no"),
        ("oom-score-adj", "sometimes", "relative"),
        ("oom-score-adj-values", "1 2", "10 20 30"),
        ("set-proc-title", "x", "no"),
        ("supervised", "x", "systemd"),
        ("repl-diskless-sync", "x", "no"),
        ("repl-diskless-sync-delay", "-1", "0"),
        ("repl-diskless-sync-max-replicas", "x", "2"),
        ("repl-diskless-load", "later", "swapdb"),
        ("repl-disable-tcp-nodelay", "x", "yes"),
        ("replica-priority", "x", "50"),
        ("slave-priority", "-5", "60"),
        ("replica-announce-port", "70000", "7000"),
        ("replica-announce-ip", "", "10.0.0.1"),
        ("replica-announced", "x", "no"),
        ("replica-ignore-maxmemory", "x", "no"),
        ("replica-lazy-flush", "x", "yes"),
        ("slave-read-only", "x", "no"),
        ("slave-serve-stale-data", "x", "no"),
        ("repl-backlog-ttl", "x", "100"),
        ("repl-backlog-size", "x", "2mb"),
        ("repl-timeout", "0", "30"),
        ("repl-ping-replica-period", "0", "5"),
        ("min-replicas-to-write", "-1", "0"),
        ("min-slaves-max-lag", "x", "20"),
        ("shutdown-timeout", "-1", "5"),
        ("masterauth", "", "secret"),
        ("masteruser", "", "someone"),
        ("active-defrag-cycle-min", "0", "5"),
        ("active-defrag-cycle-max", "101", "50"),
        ("active-defrag-max-scan-fields", "0", "500"),
        ("active-defrag-threshold-lower", "1001", "20"),
        ("active-defrag-threshold-upper", "x", "90"),
        ("aof-disable-auto-gc", "x", "yes"),
        ("crash-log-enabled", "maybe", "no"),
        ("crash-memcheck-enabled", "x", "no"),
        ("ignore-warnings", "", "ARM64-COW-BUG"),
        ("propagation-error-behavior", "loud", "panic"),
        ("server_cpulist", "0-1", "0"),
        ("io-threads-do-reads", "yes", "no"),
        ("syslog-enabled", "yes", "no"),
        ("syslog-ident", "shoal", "redis"),
        ("syslog-facility", "local9", "user"),
        ("socket-mark-id", "-1", "1"),
        ("shutdown-on-sigterm", "save nosave", "force now save"),
        ("shutdown-on-sigint", "bogus", "NOW force"),
        ("shutdown-on-sigint", " now", "default"),
        ("maxmemory-clients", "101%", "10%"),
        ("maxmemory-clients", "-1", "1mb"),
        ("maxmemory-clients", "5%x", "0"),
    ];
    for (name, bad, good) in directives {
        for request in [&["CONFIG", "GET", name][..], &["CONFIG", "SET", name, bad], &["CONFIG", "SET", name, good], &["CONFIG", "GET", name]] {
            assert_eq!(shoal_raw.command(request).unwrap(), redis_raw.command(request).unwrap(), "{request:?}");
        }
    }
}

// ---- DEBUG ------------------------------------------------------------------------------

/// 50 bytes with no repeated 3-byte run, so Redis's LZF cannot shrink it (Shoal does not
/// model RDB compression in DEBUG OBJECT's serializedlength).
const INCOMPRESSIBLE: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWX";

#[test]
fn debug_replies_match_redis() {
    let mut servers = vec![Server::start(THREADS, &[])];
    // Redis 7 refuses DEBUG unless enabled; Shoal always allows it.
    servers.extend(Server::start_redis_with(&["--enable-debug-command", "yes"]));
    assert_replies(
        &servers,
        &[
            (&["SET", "int", "5"], "+OK\r\n"),
            (&["SET", "str", "hello"], "+OK\r\n"),
            (&["SET", "raw", INCOMPRESSIBLE], "+OK\r\n"),
            (&["DEBUG", "OBJECT", "nosuch"], "-ERR no such key\r\n"),
            (&["DEBUG", "OBJECT"], "-ERR unknown subcommand or wrong number of arguments for 'OBJECT'. Try DEBUG HELP.\r\n"),
            (&["DEBUG", "SET-ACTIVE-EXPIRE"], "-ERR unknown subcommand or wrong number of arguments for 'SET-ACTIVE-EXPIRE'. Try DEBUG HELP.\r\n"),
            (&["DEBUG", "JMAP"], "-ERR unknown subcommand or wrong number of arguments for 'JMAP'. Try DEBUG HELP.\r\n"),
            (&["DEBUG", "SLEEP", "0"], "+OK\r\n"),
            (&["DEBUG", "SLEEP", "abc"], "+OK\r\n"),
            (&["DEBUG", "SET-ACTIVE-EXPIRE", "1"], "+OK\r\n"),
            (&["DEBUG", "PROTOCOL", "map"], "*6\r\n:0\r\n:0\r\n:1\r\n:1\r\n:2\r\n:0\r\n"),
            (&["DEBUG", "PROTOCOL", "verbatim"], "$25\r\nThis is a verbatim\nstring\r\n"),
            (&["DEBUG", "PROTOCOL", "foo"], "-ERR Wrong protocol type name. Please use one of the following: string|integer|double|bignum|null|array|set|map|attrib|push|verbatim|true|false\r\n"),
            (&["DEBUG", "ERROR", "hello"], "-hello\r\n"),
        ],
    );
    // DEBUG OBJECT's line, but for the address and the LRU clock.
    for server in &servers {
        let mut raw = server.raw();
        for (key, expected) in [
            ("int", "refcount:2147483647 encoding:int serializedlength:2"),
            ("str", "refcount:1 encoding:embstr serializedlength:6"),
            ("raw", "refcount:1 encoding:raw serializedlength:51"),
        ] {
            let line = raw.command(&["DEBUG", "OBJECT", key]).unwrap();
            assert!(line.starts_with("+Value at:0x"), "{line}");
            assert!(line.contains(&format!(" {expected} lru:")), "{line} on port {}", server.port);
            assert!(line.contains(" lru_seconds_idle:"), "{line}");
        }
    }
}

#[test]
fn debug_object_finds_keys_on_every_core() {
    let server = Server::start(THREADS, &[]);
    let mut raw = server.raw();
    for i in 0..32 {
        let key = format!("key:{i}");
        assert_eq!(raw.command(&["SET", &key, INCOMPRESSIBLE]).unwrap(), "+OK\r\n");
        let line = raw.command(&["DEBUG", "OBJECT", &key]).unwrap();
        assert!(line.contains(" refcount:1 encoding:raw serializedlength:51 "), "{line}");
    }
}

#[test]
fn debug_sleep_holds_only_its_own_connection() {
    let server = Server::start(1, &[]);
    let mut sleeper = server.raw();
    let mut other = server.raw();
    let started = Instant::now();
    sleeper.send(&Raw::encode(&["DEBUG", "SLEEP", "1"]));
    assert_eq!(other.command(&["PING"]).unwrap(), "+PONG\r\n");
    assert!(started.elapsed() < Duration::from_millis(800), "PING waited for DEBUG SLEEP");
    assert_eq!(sleeper.read_reply().unwrap(), "+OK\r\n");
    assert!(started.elapsed() >= Duration::from_millis(950), "DEBUG SLEEP slept");
}

#[test]
fn debug_set_active_expire_stops_and_restarts_active_expiry_on_every_core() {
    let server = Server::start(THREADS, &[]);
    let mut raw = server.raw();
    assert_eq!(raw.command(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"]).unwrap(), "+OK\r\n");
    for i in 0..40 {
        assert_eq!(raw.command(&["SET", &format!("k{i}"), "v", "PX", "1"]).unwrap(), "+OK\r\n");
    }
    // DBSIZE counts expired keys nobody has reclaimed yet, as Redis's does.
    let deadline = Instant::now() + Duration::from_millis(300);
    while Instant::now() < deadline {
        assert_eq!(raw.command(&["DBSIZE"]).unwrap(), ":40\r\n", "no key is reclaimed while active expiry is off");
    }
    assert_eq!(raw.command(&["DEBUG", "SET-ACTIVE-EXPIRE", "1"]).unwrap(), "+OK\r\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    while raw.command(&["DBSIZE"]).unwrap() != ":0\r\n" {
        assert!(Instant::now() < deadline, "active expiry reclaimed every key");
        std::thread::yield_now();
    }
}

#[test]
fn debug_populate_creates_missing_keys_on_every_core_and_keeps_existing_ones() {
    let server = Server::start(THREADS, &[]);
    let mut raw = server.raw();
    assert_eq!(raw.command(&["SET", "key:5", "mine"]).unwrap(), "+OK\r\n");
    assert_eq!(raw.command(&["DEBUG", "POPULATE", "1000"]).unwrap(), "+OK\r\n");
    assert_eq!(raw.command(&["DBSIZE"]).unwrap(), ":1000\r\n");
    assert_eq!(raw.command(&["GET", "key:999"]).unwrap(), "$9\r\nvalue:999\r\n");
    assert_eq!(raw.command(&["GET", "key:5"]).unwrap(), "$4\r\nmine\r\n", "an existing key is kept");
    assert_eq!(raw.command(&["DEBUG", "POPULATE", "3", "p", "10"]).unwrap(), "+OK\r\n");
    assert_eq!(raw.command(&["GET", "p:2"]).unwrap(), "$10\r\nvalue:2\0\0\0\r\n", "padded to the size with zero bytes");
    assert_eq!(raw.command(&["DEBUG", "POPULATE", "-1"]).unwrap(), "-ERR value is out of range, must be positive\r\n");
}

#[test]
fn config_set_loglevel_changes_what_the_running_server_logs() {
    let logfile = std::env::temp_dir().join(format!("shoal-loglevel-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&logfile);
    let server = Server::start(THREADS, &["--logfile", logfile.to_str().unwrap(), "--loglevel", "warning"]);
    let mut raw = server.raw();
    assert_eq!(raw.command(&["DEBUG", "LOG", "first-visible"]).unwrap(), "+OK\r\n");
    assert_eq!(raw.command(&["CONFIG", "SET", "loglevel", "nothing"]).unwrap(), "+OK\r\n");
    assert_eq!(raw.command(&["DEBUG", "LOG", "hidden"]).unwrap(), "+OK\r\n");
    assert_eq!(raw.command(&["CONFIG", "SET", "loglevel", "warning"]).unwrap(), "+OK\r\n");
    assert_eq!(raw.command(&["DEBUG", "LOG", "second-visible"]).unwrap(), "+OK\r\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = std::fs::read_to_string(&logfile).unwrap_or_default();
        if log.contains("second-visible") || Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = std::fs::remove_file(&logfile);
    assert!(log.contains("first-visible"), "{log}");
    assert!(log.contains("second-visible"), "{log}");
    assert!(!log.contains("hidden"), "{log}");
}

#[test]
fn flushall_async_frees_in_the_background_and_info_counts_it() {
    let server = Server::start(THREADS, &[]);
    let mut raw = server.raw();
    assert_eq!(raw.command(&["DEBUG", "POPULATE", "4000"]).unwrap(), "+OK\r\n");
    assert_eq!(raw.command(&["FLUSHALL", "ASYNC"]).unwrap(), "+OK\r\n");
    assert_eq!(raw.command(&["DBSIZE"]).unwrap(), ":0\r\n", "the keys are gone at once");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = bulk_text(&raw.command(&["INFO", "memory"]).unwrap());
        let freed: u64 = info_field(&info, "lazyfreed_objects").expect("lazyfreed_objects").parse().unwrap();
        let pending: u64 = info_field(&info, "lazyfree_pending_objects").expect("lazyfree_pending_objects").parse().unwrap();
        if freed == 4000 && pending == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "4000 keys freed in the background: freed {freed}, pending {pending}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SYNC frees in place: nothing more is counted.
    assert_eq!(raw.command(&["DEBUG", "POPULATE", "4000"]).unwrap(), "+OK\r\n");
    assert_eq!(raw.command(&["FLUSHALL", "SYNC"]).unwrap(), "+OK\r\n");
    let info = bulk_text(&raw.command(&["INFO", "memory"]).unwrap());
    assert_eq!(info_field(&info, "lazyfreed_objects").as_deref(), Some("4000"));
}

#[test]
fn unlink_frees_a_big_collection_in_the_background_and_del_in_place() {
    let server = Server::start(THREADS, &[]);
    let mut raw = server.raw();
    let lazyfreed = |raw: &mut Raw| -> u64 {
        let info = bulk_text(&raw.command(&["INFO", "memory"]).unwrap());
        info_field(&info, "lazyfreed_objects").expect("lazyfreed_objects").parse().unwrap()
    };
    for key in ["big:set", "big:hash", "small:set"] {
        let members = if key.starts_with("big") { 5000 } else { 10 };
        for chunk in (0..members).collect::<Vec<usize>>().chunks(500) {
            let mut args: Vec<String> = vec![if key.ends_with("hash") { "HSET" } else { "SADD" }.into(), key.into()];
            for m in chunk {
                args.push(format!("member:{m}"));
                if key.ends_with("hash") {
                    args.push(m.to_string());
                }
            }
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            raw.command(&argv).unwrap();
        }
    }
    assert_eq!(raw.command(&["OBJECT", "ENCODING", "big:set"]).unwrap(), "$9\r\nhashtable\r\n");
    // DEL frees in place (lazyfree-lazy-user-del no); a small value is freed in place even by UNLINK.
    assert_eq!(raw.command(&["DEL", "big:hash"]).unwrap(), ":1\r\n");
    assert_eq!(raw.command(&["UNLINK", "small:set"]).unwrap(), ":1\r\n");
    assert_eq!(lazyfreed(&mut raw), 0);
    assert_eq!(raw.command(&["UNLINK", "big:set"]).unwrap(), ":1\r\n");
    assert_eq!(raw.command(&["EXISTS", "big:set"]).unwrap(), ":0\r\n", "gone at once");
    let deadline = Instant::now() + Duration::from_secs(10);
    while lazyfreed(&mut raw) != 1 {
        assert!(Instant::now() < deadline, "the big set is freed by the lazyfree thread");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn lazyfree_lazy_server_del_and_expire_free_big_values_in_the_background() {
    let server = Server::start(THREADS, &[]);
    let mut raw = server.raw();
    let lazyfreed = |raw: &mut Raw| -> u64 {
        let info = bulk_text(&raw.command(&["INFO", "memory"]).unwrap());
        info_field(&info, "lazyfreed_objects").expect("lazyfreed_objects").parse().unwrap()
    };
    let wait_for = |raw: &mut Raw, n: u64| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while lazyfreed(raw) != n {
            assert!(Instant::now() < deadline, "{n} values freed in the background");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let big_set = |raw: &mut Raw, key: &str| {
        let mut args = vec!["SADD".to_owned(), key.to_owned()];
        args.extend((0..1000).map(|m| format!("member:{m}")));
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(raw.command(&argv).unwrap(), ":1000\r\n");
    };
    // The defaults free in place.
    big_set(&mut raw, "over");
    raw.command(&["SET", "over", "x"]).unwrap();
    assert_eq!(lazyfreed(&mut raw), 0);
    assert_eq!(raw.command(&["CONFIG", "SET", "lazyfree-lazy-server-del", "yes", "lazyfree-lazy-expire", "yes"]).unwrap(), "+OK\r\n");
    raw.command(&["DEL", "over"]).unwrap();
    big_set(&mut raw, "over");
    assert_eq!(raw.command(&["SET", "over", "x"]).unwrap(), "+OK\r\n");
    wait_for(&mut raw, 1);
    big_set(&mut raw, "soon");
    assert_eq!(raw.command(&["PEXPIRE", "soon", "10"]).unwrap(), ":1\r\n");
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(raw.command(&["EXISTS", "soon"]).unwrap(), ":0\r\n");
    wait_for(&mut raw, 2);
}

#[test]
fn role_answers_as_a_master_without_replicas() {
    let servers = shoal_and_redis(&[]);
    assert_replies(
        &servers,
        &[
            (&["ROLE"], "*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n"),
            (&["ROLE", "x"], "-ERR wrong number of arguments for 'role' command\r\n"),
            (&["COMMAND", "INFO", "role"], "*1\r\n*10\r\n$4\r\nrole\r\n:1\r\n*4\r\n+noscript\r\n+loading\r\n+stale\r\n+fast\r\n:0\r\n:0\r\n:0\r\n*3\r\n+@admin\r\n+@fast\r\n+@dangerous\r\n*0\r\n*0\r\n*0\r\n"),
        ],
    );
}

// ---- Features that are off: cluster, replication (WAIT), users (ACL) ---------------------

/// Sends each request in RESP2, then in RESP3, to Shoal and to redis-server started with
/// `extra` (with `requirepass` set to `password`, and authenticated), and asserts the replies are byte for byte the
/// same. Runs on Shoal alone without redis-server.
fn assert_same_as_redis(extra: &[&str], password: Option<&str>, requests: &[&[&str]]) {
    let servers = shoal_and_redis(extra);
    let transcripts: Vec<Vec<String>> = servers
        .iter()
        .map(|server| {
            let mut raw = server.raw();
            if let Some(password) = password {
                assert_eq!(raw.command(&["CONFIG", "SET", "requirepass", password]).unwrap(), "+OK\r\n");
                assert_eq!(raw.command(&["AUTH", password]).unwrap(), "+OK\r\n");
            }
            let mut replies = Vec::new();
            for proto in ["2", "3"] {
                raw.command(&["HELLO", proto]).unwrap();
                replies.extend(requests.iter().map(|request| format!("RESP{proto} {request:?} -> {}", raw.command(request).unwrap())));
            }
            replies
        })
        .collect();
    if let [shoal, redis] = &transcripts[..] {
        for (ours, theirs) in shoal.iter().zip(redis) {
            assert_eq!(ours, theirs);
        }
    }
    // Shoal alone: no request may fail with an unknown command or subcommand.
    for reply in &transcripts[0] {
        assert!(!reply.contains("unknown command"), "{reply}");
    }
}

#[test]
fn cluster_commands_answer_that_cluster_support_is_disabled() {
    assert_same_as_redis(
        &[],
        None,
        &[
            &["CLUSTER", "INFO"],
            &["CLUSTER", "SLOTS"],
            &["CLUSTER", "SHARDS"],
            &["CLUSTER", "KEYSLOT", "foo"],
            &["CLUSTER", "HELP"],
            &["CLUSTER"],
            &["CLUSTER", "FOO"],
            &["CLUSTER", "INFO", "x"],
            &["READONLY"],
            &["READWRITE"],
            &["ASKING"],
            &["READONLY", "x"],
        ],
    );
}

#[test]
fn acl_answers_as_redis_for_the_default_user() {
    let requests: &[&[&str]] = &[
        &["ACL", "WHOAMI"],
        &["ACL", "USERS"],
        &["ACL", "LIST"],
        &["ACL", "GETUSER", "default"],
        &["ACL", "GETUSER", "nobody"],
        &["ACL", "CAT"],
        &["ACL", "CAT", "nosuch"],
        &["ACL", "CAT", "a", "b"],
        &["ACL", "GENPASS", "0"],
        &["ACL", "GENPASS", "4097"],
        &["ACL", "GENPASS", "x"],
        &["ACL", "DRYRUN", "default", "get", "x"],
        &["ACL", "DRYRUN", "default", "get"],
        &["ACL", "DRYRUN", "default", "nosuch"],
        &["ACL", "DRYRUN", "nouser", "get", "x"],
        &["ACL", "DRYRUN", "default", "client", "list"],
        &["ACL", "DRYRUN", "default", "client", "nosuch"],
        &["ACL", "SAVE"],
        &["ACL", "LOAD"],
        &["ACL", "DELUSER", "default"],
        &["ACL", "DELUSER", "a", "b"],
        &["ACL", "FOO"],
        &["ACL", "WHOAMI", "x"],
        &["ACL", "HELP"],
    ];
    assert_same_as_redis(&[], None, requests);
    // With a password, LIST and GETUSER show its SHA-256 instead of `nopass`.
    assert_same_as_redis(&[], Some("s3cret"), requests);
}

#[test]
fn acl_cat_lists_the_commands_of_a_category_as_redis_does() {
    let servers = shoal_and_redis(&[]);
    let Some(redis) = servers.get(1) else { return };
    let mut shoal = servers[0].raw();
    let mut redis = redis.raw();
    let names = |reply: String| -> std::collections::BTreeSet<String> {
        reply.split("\r\n").filter(|l| !l.is_empty() && !l.starts_with(['*', '$'])).map(str::to_string).collect()
    };
    let (mut missing, mut extra) = (Vec::new(), Vec::new());
    for category in
        ["keyspace", "read", "write", "string", "hash", "connection", "admin", "dangerous", "blocking", "scripting", "transaction", "pubsub", "fast", "slow"]
    {
        let ours = names(shoal.command(&["ACL", "CAT", category]).unwrap());
        let theirs = names(redis.command(&["ACL", "CAT", category]).unwrap());
        assert!(!ours.is_empty(), "{category}");
        // Every command Shoal lists, Redis 7.0 lists too (or it is newer than 7.0), and
        // every command Redis lists that Shoal knows, Shoal lists.
        for name in &ours {
            let newer = [
                "client|no-touch",
                "client|setinfo",
                "waitaof",
                // Hash field expiration (7.4, 8.0).
                "hexpire",
                "hpexpire",
                "hexpireat",
                "hpexpireat",
                "httl",
                "hpttl",
                "hexpiretime",
                "hpexpiretime",
                "hpersist",
                "hgetdel",
                "hgetex",
                "hsetex",
                // Set cardinalities (8.10).
                "sunioncard",
                "sdiffcard",
                // Streams (8.2) and strings (8.4).
                "xdelex",
                "xackdel",
                "msetex",
                "delex",
                "digest",
                "increx",
                // Lists (8.10).
                "lmovem",
                "blmovem",
                // Hashes (8.10).
                "himport",
                "himport|prepare",
                "himport|set",
                "himport|discard",
                "himport|discardall",
            ]
            .contains(&name.as_str());
            if !newer && !theirs.contains(name) {
                extra.push(format!("{name} in @{category}"));
            }
        }
        for name in &theirs {
            let (command, sub) = name.split_once('|').map_or((name.as_str(), None), |(c, s)| (c, Some(s)));
            let mut request = vec!["COMMAND", "INFO", command];
            let known = shoal.command(&request).unwrap() != "*1\r\n$-1\r\n";
            let known = known
                && sub.is_none_or(|sub| {
                    request = vec!["COMMAND", "LIST", "FILTERBY", "PATTERN", name];
                    shoal.command(&request).unwrap().contains(sub)
                });
            if known && !ours.contains(name) {
                missing.push(format!("{name} in @{category}"));
            }
        }
    }
    // The one known difference: Shoal flags PFCOUNT `write`, not `readonly` (it may rewrite
    // the cached cardinality, so the transaction layer locks its keys exclusively).
    let pfcount = (vec!["pfcount in @read".to_string()], vec!["pfcount in @write".to_string()]);
    assert_eq!((missing, extra), pfcount, "(missing, extra) against Redis");
}

#[test]
fn wait_without_replicas_answers_zero_after_its_timeout_or_when_unblocked() {
    let servers = shoal_and_redis(&[]);
    for server in &servers {
        let mut raw = server.raw();
        // None asked for: at once. Some asked for: after the timeout, none acknowledged.
        assert_eq!(raw.command(&["WAIT", "0", "0"]).unwrap(), ":0\r\n");
        let started = Instant::now();
        assert_eq!(raw.command(&["WAIT", "1", "200"]).unwrap(), ":0\r\n");
        assert!(started.elapsed() >= Duration::from_millis(190), "WAIT waited {:?} on port {}", started.elapsed(), server.port);
        // Inside MULTI it never blocks.
        raw.command(&["MULTI"]).unwrap();
        assert_eq!(raw.command(&["WAIT", "1", "0"]).unwrap(), "+QUEUED\r\n");
        let started = Instant::now();
        assert_eq!(raw.command(&["EXEC"]).unwrap(), "*1\r\n:0\r\n");
        assert!(started.elapsed() < Duration::from_secs(2));
        // Forever, until CLIENT UNBLOCK: TIMEOUT answers the count, ERROR the error.
        let id = client_id(&mut raw);
        let mut other = server.raw();
        for (how, reply) in [("TIMEOUT", ":0\r\n"), ("ERROR", "-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n")] {
            raw.send(b"*3\r\n$4\r\nWAIT\r\n$1\r\n1\r\n$1\r\n0\r\n");
            let deadline = Instant::now() + Duration::from_secs(5);
            while other.command(&["CLIENT", "UNBLOCK", &id.to_string(), how]).unwrap() != ":1\r\n" {
                assert!(Instant::now() < deadline, "WAIT blocks on port {}", server.port);
                std::thread::sleep(Duration::from_millis(10));
            }
            assert_eq!(raw.read_reply().unwrap(), reply, "port {}", server.port);
        }
        assert_eq!(raw.command(&["PING"]).unwrap(), "+PONG\r\n");
    }
}

// ---- SLOWLOG ------------------------------------------------------------------------------

/// SLOWLOG GET's entries as (id, micros, arguments, address, name).
fn slowlog_entries(client: &mut redis::Connection, count: &str) -> Vec<(i64, i64, Vec<String>, String, String)> {
    let entries: Vec<redis::Value> = redis::cmd("SLOWLOG").arg("GET").arg(count).query(client).unwrap();
    entries
        .into_iter()
        .map(|entry| {
            let (id, _time, micros, args, addr, name): (i64, i64, i64, Vec<String>, String, String) = redis::from_redis_value(entry).unwrap();
            (id, micros, args, addr, name)
        })
        .collect()
}

#[test]
fn slowlog_keeps_commands_of_every_core_with_their_client_newest_first() {
    let server = Server::start(THREADS, &[]);
    let mut admin = shoal_tests::connect(&server);
    let mut client = shoal_tests::connect(&server);
    redis::cmd("CLIENT").arg("SETNAME").arg("app").query::<()>(&mut client).unwrap();
    let addr: String =
        redis::cmd("CLIENT").arg("INFO").query::<String>(&mut client).unwrap().split(' ').find_map(|f| f.strip_prefix("addr=")).unwrap().to_string();
    redis::cmd("CONFIG").arg("SET").arg("slowlog-log-slower-than").arg("0").query::<()>(&mut admin).unwrap();
    redis::cmd("SLOWLOG").arg("RESET").query::<()>(&mut admin).unwrap();
    // Keys on every core, a cross-core MSET, an EXEC over cores, a script, a long request.
    let keys: Vec<String> = (0..8).map(|i| format!("key:{i}")).collect();
    for key in &keys {
        redis::cmd("SET").arg(key).arg("v").query::<()>(&mut client).unwrap();
    }
    redis::cmd("MSET").arg("a").arg("1").arg("b").arg("2").arg("c").arg("3").query::<()>(&mut client).unwrap();
    redis::pipe().atomic().cmd("INCR").arg("a").cmd("INCR").arg("b").query::<()>(&mut client).unwrap();
    redis::cmd("EVAL").arg("return redis.call('GET', KEYS[1])").arg(1).arg("a").query::<String>(&mut client).unwrap();
    let long = "x".repeat(200);
    let many: Vec<String> = (0..40).map(|i| i.to_string()).collect();
    redis::cmd("SET").arg("long").arg(&long).query::<()>(&mut client).unwrap();
    redis::cmd("RPUSH").arg("list").arg(&many).query::<()>(&mut client).unwrap();
    let entries = slowlog_entries(&mut admin, "-1");
    let ids: Vec<i64> = entries.iter().map(|e| e.0).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    let find = |args: &[&str]| entries.iter().find(|e| e.2 == args).unwrap_or_else(|| panic!("{args:?} logged: {entries:?}"));
    for key in &keys {
        let entry = find(&["SET", key, "v"]);
        assert_eq!((entry.3.as_str(), entry.4.as_str()), (addr.as_str(), "app"), "{entry:?}");
    }
    find(&["MSET", "a", "1", "b", "2", "c", "3"]);
    find(&["INCR", "a"]);
    find(&["INCR", "b"]);
    find(&["MULTI"]);
    assert!(entries.iter().all(|e| e.2[0] != "EXEC"), "EXEC is not logged, its commands are");
    // The script's call has no client, as Redis's Lua client.
    let call = find(&["GET", "a"]);
    assert_eq!((call.3.as_str(), call.4.as_str()), ("?:0", ""));
    find(&["EVAL", "return redis.call('GET', KEYS[1])", "1", "a"]);
    // Arguments trimmed as Redis trims them.
    find(&["SET", "long", &format!("{}... (72 more bytes)", "x".repeat(128))]);
    let rpush = entries.iter().find(|e| e.2[0] == "RPUSH").unwrap();
    assert_eq!((rpush.2.len(), rpush.2[31].as_str()), (32, "... (11 more arguments)"));
    // SLOWLOG GET was logged too, once it ran.
    let len: usize = redis::cmd("SLOWLOG").arg("LEN").query(&mut admin).unwrap();
    assert_eq!(len, entries.len() + 1);
    assert_eq!(slowlog_entries(&mut admin, "3").len(), 3);
    assert_eq!(slowlog_entries(&mut admin, "0").len(), 0);
    // slowlog-max-len bounds what is kept, over all cores.
    redis::cmd("CONFIG").arg("SET").arg("slowlog-max-len").arg("5").query::<()>(&mut admin).unwrap();
    for key in &keys {
        redis::cmd("GET").arg(key).query::<String>(&mut client).unwrap();
    }
    let kept = slowlog_entries(&mut admin, "-1");
    assert_eq!(kept.len(), 5, "{kept:?}");
    assert_eq!(kept[0].2, ["GET", keys.last().unwrap().as_str()], "{kept:?}");
    // A client that left is still named.
    drop(client);
    std::thread::sleep(Duration::from_millis(100));
    let kept = slowlog_entries(&mut admin, "-1");
    let get = kept.iter().find(|e| e.2[0] == "GET").unwrap();
    assert_eq!((get.3.as_str(), get.4.as_str()), (addr.as_str(), "app"));
    redis::cmd("SLOWLOG").arg("RESET").query::<()>(&mut admin).unwrap();
    let len: usize = redis::cmd("SLOWLOG").arg("LEN").query(&mut admin).unwrap();
    assert!(len <= 1, "only the RESET itself may be there: {len}");
}

#[test]
fn slowlog_keeps_only_commands_slower_than_the_threshold() {
    let server = Server::start(THREADS, &[]);
    let mut raw = server.raw();
    // A 150 ms command is kept, quick ones are not (a threshold of 50 ms, so that a quick
    // command the machine's load stalls is not logged either).
    raw.command(&["CONFIG", "SET", "slowlog-log-slower-than", "50000"]).unwrap();
    assert_eq!(raw.command(&["SLOWLOG", "RESET"]).unwrap(), "+OK\r\n");
    for key in ["a", "b", "c", "d"] {
        raw.command(&["SET", key, "1"]).unwrap();
    }
    raw.command(&["DEBUG", "SLEEP", "0.15"]).unwrap();
    let mut client = shoal_tests::connect(&server);
    let entries = slowlog_entries(&mut client, "10");
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].2, ["DEBUG", "SLEEP", "0.15"]);
    assert!(entries[0].1 >= 150_000, "{entries:?}");
    // A negative threshold turns the log off.
    raw.command(&["CONFIG", "SET", "slowlog-log-slower-than", "-1"]).unwrap();
    raw.command(&["DEBUG", "SLEEP", "0.02"]).unwrap();
    assert_eq!(slowlog_entries(&mut client, "10").len(), 1);
}

#[test]
fn slowlog_replies_match_redis() {
    assert_same_as_redis(
        &[],
        None,
        &[
            &["SLOWLOG", "HELP"],
            &["SLOWLOG", "GET", "-2"],
            &["SLOWLOG", "GET", "x"],
            &["SLOWLOG", "GET", "1", "2"],
            &["SLOWLOG", "LEN", "x"],
            &["SLOWLOG", "RESET", "x"],
            &["SLOWLOG", "FOO"],
            &["SLOWLOG", "RESET"],
            &["SLOWLOG", "GET", "0"],
        ],
    );
}

// ---- LATENCY ------------------------------------------------------------------------------

#[test]
fn latency_replies_match_redis() {
    assert_same_as_redis(
        &[],
        None,
        &[
            &["LATENCY", "HELP"],
            &["LATENCY", "LATEST"],
            &["LATENCY", "HISTORY", "command"],
            &["LATENCY", "HISTORY"],
            &["LATENCY", "RESET"],
            &["LATENCY", "RESET", "a", "b"],
            &["LATENCY", "GRAPH", "command"],
            &["LATENCY", "GRAPH"],
            &["LATENCY", "DOCTOR"],
            &["LATENCY", "DOCTOR", "x"],
            &["LATENCY", "FOO"],
            &["LATENCY", "HISTOGRAM", "nosuch"],
            // On (at a threshold no command here reaches, even on a loaded machine).
            &["CONFIG", "SET", "latency-monitor-threshold", "10000"],
            &["LATENCY", "DOCTOR"],
            &["CONFIG", "SET", "latency-monitor-threshold", "0"],
        ],
    );
}

#[test]
fn the_latency_monitor_records_slow_commands_of_every_core() {
    let server = Server::start(THREADS, &[]);
    let mut raw = server.raw();
    // Off by default: a slow command leaves no sample.
    raw.command(&["DEBUG", "SLEEP", "0.02"]).unwrap();
    assert_eq!(raw.command(&["LATENCY", "LATEST"]).unwrap(), "*0\r\n");
    assert_eq!(raw.command(&["CONFIG", "SET", "latency-monitor-threshold", "10"]).unwrap(), "+OK\r\n");
    // A busy script on keys of several cores, and a sleep on the connection's core.
    for key in ["a", "b", "c", "d"] {
        let reply = raw.command(&["EVAL", "local i = 0 while i < 3000000 do i = i + 1 end return redis.call('SET', KEYS[1], i)", "1", key]).unwrap();
        assert_eq!(reply, "+OK\r\n");
    }
    raw.command(&["DEBUG", "SLEEP", "0.03"]).unwrap();
    raw.command(&["GET", "a"]).unwrap();
    let mut client = shoal_tests::connect(&server);
    let latest: Vec<(String, i64, i64, i64)> = redis::cmd("LATENCY").arg("LATEST").query(&mut client).unwrap();
    // (A quick command that the machine's load stalled may add a `fast-command` event.)
    let (_, time, last, max) = latest.iter().find(|(event, ..)| event == "command").unwrap_or_else(|| panic!("{latest:?}")).clone();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((now - 5..=now).contains(&time), "{time} vs {now}");
    assert!(last >= 10 && max >= 30 && max >= last, "{latest:?}");
    let history: Vec<(i64, i64)> = redis::cmd("LATENCY").arg("HISTORY").arg("command").query(&mut client).unwrap();
    assert!(!history.is_empty() && history.iter().all(|(_, ms)| *ms >= 10), "{history:?}");
    assert!(history.windows(2).all(|w| w[0].0 < w[1].0), "one sample per second, oldest first: {history:?}");
    let graph: String = redis::cmd("LATENCY").arg("GRAPH").arg("command").query(&mut client).unwrap();
    assert!(graph.starts_with(&format!("command - high {max} ms, low ")), "{graph}");
    let doctor: String = redis::cmd("LATENCY").arg("DOCTOR").query(&mut client).unwrap();
    assert!(doctor.contains("\n1. command: ") && doctor.contains(&format!("Worst all time event {max}ms.")), "{doctor}");
    assert_eq!(raw.command(&["LATENCY", "RESET", "nosuch"]).unwrap(), ":0\r\n");
    let reset = raw.command(&["LATENCY", "RESET"]).unwrap();
    assert!(reset.trim_start_matches(':').trim_end().parse::<usize>().unwrap() >= 1, "{reset}");
    assert_eq!(raw.command(&["LATENCY", "LATEST"]).unwrap(), "*0\r\n");
}

#[test]
fn latency_histogram_counts_every_call_as_redis_does() {
    for server in &shoal_and_redis(&[]) {
        let mut client = shoal_tests::connect(server);
        redis::cmd("HELLO").arg(3).query::<redis::Value>(&mut client).unwrap();
        redis::cmd("CONFIG").arg("RESETSTAT").query::<()>(&mut client).unwrap();
        for i in 0..5 {
            redis::cmd("GET").arg(format!("key:{i}")).query::<Option<String>>(&mut client).unwrap();
        }
        redis::cmd("SET").arg("a").arg("1").query::<()>(&mut client).unwrap();
        redis::cmd("CLIENT").arg("ID").query::<i64>(&mut client).unwrap();
        type Histograms = std::collections::BTreeMap<String, std::collections::BTreeMap<String, redis::Value>>;
        let histograms: Histograms = redis::cmd("LATENCY").arg("HISTOGRAM").arg("get").arg("set").arg("client").arg("nosuch").query(&mut client).unwrap();
        assert_eq!(histograms.keys().collect::<Vec<_>>(), ["client|id", "get", "set"], "port {}", server.port);
        for (name, calls) in [("get", 5), ("set", 1), ("client|id", 1)] {
            let histogram = &histograms[name];
            assert_eq!(redis::from_redis_value::<i64>(histogram["calls"].clone()).unwrap(), calls, "{name}");
            let buckets: std::collections::BTreeMap<i64, i64> = redis::from_redis_value(histogram["histogram_usec"].clone()).unwrap();
            // Cumulative counts that end at the number of calls.
            assert!(buckets.values().collect::<Vec<_>>().windows(2).all(|w| w[0] < w[1]), "{name}: {buckets:?}");
            assert_eq!(buckets.values().last(), Some(&calls), "{name}: {buckets:?}");
        }
        let all: Histograms = redis::cmd("LATENCY").arg("HISTOGRAM").query(&mut client).unwrap();
        assert!(all.contains_key("get") && all.contains_key("config|resetstat"), "port {}", server.port);
    }
}

// ---- MEMORY -------------------------------------------------------------------------------

#[test]
fn memory_replies_match_redis() {
    assert_same_as_redis(
        &[],
        None,
        &[
            &["MEMORY", "USAGE", "nokey"],
            &["MEMORY", "USAGE", "nokey", "SAMPLES", "x"],
            &["MEMORY", "USAGE", "nokey", "SAMPLES", "-1"],
            &["MEMORY", "USAGE", "nokey", "SAMPLES"],
            &["MEMORY", "USAGE", "nokey", "x"],
            &["MEMORY", "USAGE"],
            &["MEMORY", "DOCTOR"],
            &["MEMORY", "DOCTOR", "x"],
            &["MEMORY", "PURGE"],
            &["MEMORY", "HELP"],
            &["MEMORY", "STATS", "x"],
            &["MEMORY", "FOO"],
            &["COMMAND", "GETKEYS", "memory", "usage", "k"],
        ],
    );
}

#[test]
fn memory_usage_estimates_every_type_on_every_core_near_redis() {
    let servers = shoal_and_redis(&[]);
    let mut estimates: Vec<Vec<(String, i64)>> = Vec::new();
    for server in &servers {
        let mut client = shoal_tests::connect(server);
        let mut pipe = redis::pipe();
        pipe.cmd("SET").arg("small").arg("hello").ignore();
        pipe.cmd("SET").arg("number").arg("12345").ignore();
        pipe.cmd("SET").arg("big").arg("x".repeat(10_000)).ignore();
        for i in 0..1000 {
            pipe.cmd("HSET").arg("hash").arg(format!("field:{i}")).arg(format!("value:{i}")).ignore();
            pipe.cmd("SADD").arg("set").arg(format!("member:{i}")).ignore();
            pipe.cmd("ZADD").arg("zset").arg(i).arg(format!("member:{i}")).ignore();
            pipe.cmd("RPUSH").arg("list").arg(format!("item:{i}")).ignore();
            pipe.cmd("XADD").arg("stream").arg(format!("{}-0", i + 1)).arg("field").arg(format!("value:{i}")).ignore();
        }
        pipe.query::<()>(&mut client).unwrap();
        let mut server_estimates = Vec::new();
        for key in ["small", "number", "big", "hash", "set", "zset", "list", "stream"] {
            let sampled: i64 = redis::cmd("MEMORY").arg("USAGE").arg(key).query(&mut client).unwrap();
            let full: i64 = redis::cmd("MEMORY").arg("USAGE").arg(key).arg("SAMPLES").arg(0).query(&mut client).unwrap();
            // Uniform elements: five samples tell nearly what all of them do.
            assert!((full as f64 / sampled as f64 - 1.0).abs() < 0.25, "{key}: {sampled} sampled, {full} in full, port {}", server.port);
            server_estimates.push((key.to_string(), full));
        }
        estimates.push(server_estimates);
    }
    let shoal = &estimates[0];
    let find = |key: &str| shoal.iter().find(|(k, _)| k == key).unwrap().1;
    // The estimates grow with the data: a 10 KB string, 1000-element collections.
    assert!(find("small") < 100 && find("number") < 100, "{shoal:?}");
    assert!((10_000..11_000).contains(&find("big")), "{shoal:?}");
    for key in ["hash", "set", "zset", "list", "stream"] {
        assert!(find(key) > 10_000, "{key}: {shoal:?}");
    }
    // Near Redis's own estimates (Shoal's encodings are as compact or more).
    if let Some(redis) = estimates.get(1) {
        for ((key, ours), (_, theirs)) in shoal.iter().zip(redis) {
            let ratio = *ours as f64 / *theirs as f64;
            assert!((0.2..=1.5).contains(&ratio), "{key}: ours {ours}, Redis {theirs}");
        }
    }
}

#[test]
fn memory_usage_finds_keys_on_every_core_and_malloc_stats_reports_the_allocator() {
    let server = Server::start(THREADS, &[]);
    let mut raw = server.raw();
    for i in 0..16 {
        let key = format!("key:{i}");
        raw.command(&["SET", &key, "value"]).unwrap();
        let usage = raw.command(&["MEMORY", "USAGE", &key]).unwrap();
        assert!(usage.starts_with(':') && usage != ":0\r\n", "{key}: {usage}");
    }
    let stats = raw.command(&["MEMORY", "MALLOC-STATS"]).unwrap();
    assert!(stats.contains("pages") && stats.len() > 200, "{stats}");
    assert_eq!(
        raw.command(&["MEMORY", "DOCTOR"]).unwrap(),
        "$105\r\nHi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.\n\r\n"
    );
}

/// MEMORY STATS as (name, value) pairs, a database's map flattened into `db.N.name`.
fn memory_stats(client: &mut redis::Connection) -> Vec<(String, redis::Value)> {
    fn flatten(prefix: &str, items: Vec<redis::Value>, out: &mut Vec<(String, redis::Value)>) {
        let mut items = items.into_iter();
        while let (Some(name), Some(value)) = (items.next(), items.next()) {
            let name = format!("{prefix}{}", redis::from_redis_value::<String>(name).unwrap());
            match value {
                redis::Value::Array(inner) => flatten(&format!("{name}."), inner, out),
                value => out.push((name, value)),
            }
        }
    }
    let redis::Value::Array(items) = redis::cmd("MEMORY").arg("STATS").query(client).unwrap() else { panic!("MEMORY STATS is an array") };
    let mut out = Vec::new();
    flatten("", items, &mut out);
    out
}

#[test]
fn memory_stats_names_redis_figures_and_adds_them_up() {
    let servers = shoal_and_redis(&[]);
    let mut names = Vec::new();
    let mut shoal_stats = Vec::new();
    for server in &servers {
        let mut client = shoal_tests::connect(server);
        let mut pipe = redis::pipe();
        for i in 0..300 {
            pipe.cmd("SET").arg(format!("key:{i}")).arg("value").arg("EX").arg(1000).ignore();
            pipe.cmd("SELECT").arg(3).ignore().cmd("SET").arg(format!("other:{i}")).arg("value").ignore().cmd("SELECT").arg(0).ignore();
        }
        pipe.cmd("EVAL").arg("return 1").arg(0).ignore();
        pipe.cmd("FUNCTION").arg("LOAD").arg("#!lua name=lib\nredis.register_function('f', function() return 1 end)").ignore();
        pipe.query::<()>(&mut client).unwrap();
        let stats = memory_stats(&mut client);
        // Redis 7.0 has a third table per database, gone since 7.2 (slots have their own).
        names.push(stats.iter().map(|(name, _)| name.clone()).filter(|name| !name.ends_with("slot-to-keys")).collect::<Vec<_>>());
        if shoal_stats.is_empty() {
            shoal_stats = stats;
        }
        let info: String = redis::cmd("INFO").arg("memory").query(&mut client).unwrap();
        let fields: Vec<String> = info.lines().filter_map(|line| line.split_once(':').map(|(name, _)| name.to_string())).collect();
        names.push(fields);
    }
    if names.len() == 4 {
        assert_eq!(names[0], names[2], "MEMORY STATS names");
        assert_eq!(names[1], names[3], "INFO memory fields");
    }
    let figure = |name: &str| -> i64 {
        match shoal_stats.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("{name} in {shoal_stats:?}")).1 {
            redis::Value::Int(n) => n,
            ref other => panic!("{name}: {other:?}"),
        }
    };
    assert_eq!(figure("keys.count"), 600);
    assert_eq!(figure("overhead.total") + figure("dataset.bytes"), figure("total.allocated"));
    assert!(figure("startup.allocated") < figure("total.allocated") && figure("total.allocated") <= figure("peak.allocated"), "{shoal_stats:?}");
    // The tables of both databases, the TTLs of db 0 only; the script and the library.
    assert!(figure("db.0.overhead.hashtable.main") > 0 && figure("db.3.overhead.hashtable.main") > 0, "{shoal_stats:?}");
    assert!(figure("db.0.overhead.hashtable.expires") > 300 * 16 && figure("db.3.overhead.hashtable.expires") == 0, "{shoal_stats:?}");
    assert!(figure("lua.caches") >= "return 1".len() as i64 && figure("functions.caches") > 50, "{shoal_stats:?}");

    // A megabyte of values shows up as data.
    let mut client = shoal_tests::connect(&servers[0]);
    let before = figure("dataset.bytes");
    let mut pipe = redis::pipe();
    for i in 0..1000 {
        pipe.cmd("SET").arg(format!("big:{i}")).arg("x".repeat(1000)).ignore();
    }
    pipe.query::<()>(&mut client).unwrap();
    let after = memory_stats(&mut client);
    let dataset = after.iter().find(|(n, _)| n == "dataset.bytes").map(|(_, v)| redis::from_redis_value::<i64>(v.clone()).unwrap()).unwrap();
    assert!(dataset - before >= 1_000_000, "{before} -> {dataset}");
    let info: String = redis::cmd("INFO").arg("memory").query(&mut client).unwrap();
    assert_eq!(info_field(&info, "number_of_libraries").as_deref(), Some("1"));
    assert_eq!(info_field(&info, "number_of_functions").as_deref(), Some("1"));
    assert_eq!(info_field(&info, "number_of_cached_scripts").as_deref(), Some("1"));
}

// ---- MONITOR ------------------------------------------------------------------------------

/// The next `count` MONITOR lines, without their time and with each client's address
/// replaced by `C` (the database and `lua` stay).
fn monitor_lines(monitor: &mut Raw, count: usize) -> Vec<String> {
    (0..count)
        .map(|_| {
            let line = monitor.read_reply().unwrap();
            let line = line.strip_prefix('+').and_then(|l| l.strip_suffix("\r\n")).unwrap_or_else(|| panic!("a status line: {line:?}")).to_string();
            let (_time, rest) = line.split_once(" [").unwrap();
            let (who, args) = rest.split_once("] ").unwrap();
            let (db, client) = who.split_once(' ').unwrap();
            format!("[{db} {}] {args}", if client == "lua" { "lua" } else { "C" })
        })
        .collect()
}

#[test]
fn monitor_shows_each_command_as_redis_does() {
    let mut servers = vec![Server::start(2, &[])];
    servers.extend(Server::start_redis_with(&[]));
    let mut transcripts = Vec::new();
    for server in &servers {
        let mut monitor = server.raw();
        assert_eq!(monitor.command(&["MONITOR"]).unwrap(), "+OK\r\n");
        let mut raw = server.raw();
        for request in [
            &["SET", "a b", "x\"y\n\u{1}\\"][..],
            &["GET"],
            &["NOSUCH", "x"],
            &["EVAL", "return redis.call('SET', KEYS[1], 'v')", "1", "k"],
            &["MULTI"],
            &["INCR", "c"],
            &["SET", "d", "1"],
            &["EXEC"],
            &["AUTH", "secret"],
            &["CONFIG", "GET", "maxmemory"],
            &["SELECT", "2"],
            &["SET", "q", "1"],
            &["HELLO", "2", "AUTH", "default", "x"],
            &["SELECT", "0"],
            &["MSET", "x", "1", "y", "2", "z", "3"],
            &["PING"],
            &["CLIENT", "ID"],
        ] {
            raw.command(request).unwrap();
        }
        transcripts.push(monitor_lines(&mut monitor, 15));
    }
    let expected = [
        r#"[0 C] "SET" "a b" "x\"y\n\x01\\""#,
        r#"[0 C] "EVAL" "return redis.call('SET', KEYS[1], 'v')" "1" "k""#,
        r#"[0 lua] "SET" "k" "v""#,
        r#"[0 C] "MULTI""#,
        r#"[0 C] "INCR" "c""#,
        r#"[0 C] "SET" "d" "1""#,
        r#"[0 C] "EXEC""#,
        r#"[0 C] "AUTH" "(redacted)""#,
        r#"[2 C] "SELECT" "2""#,
        r#"[2 C] "SET" "q" "1""#,
        r#"[2 C] "HELLO" "2" "AUTH" "(redacted)" "(redacted)""#,
        r#"[0 C] "SELECT" "0""#,
        r#"[0 C] "MSET" "x" "1" "y" "2" "z" "3""#,
        r#"[0 C] "PING""#,
        r#"[0 C] "CLIENT" "ID""#,
    ];
    for (transcript, server) in transcripts.iter().zip(&servers) {
        assert_eq!(transcript, &expected, "port {}", server.port);
    }
}

#[test]
fn monitors_on_every_core_see_every_core_until_they_leave() {
    let server = Server::start(THREADS, &[]);
    // Enough monitors that the kernel puts some on each core.
    let mut monitors: Vec<Raw> = (0..8).map(|_| server.raw()).collect();
    for monitor in &mut monitors {
        assert_eq!(monitor.command(&["MONITOR"]).unwrap(), "+OK\r\n");
    }
    let mut raw = server.raw();
    let list = raw.command(&["CLIENT", "LIST"]).unwrap();
    assert_eq!(list.matches("flags=O ").count(), 8, "{list}");
    for i in 0..8 {
        raw.command(&["SET", &format!("key:{i}"), "v"]).unwrap();
    }
    for monitor in &mut monitors {
        let lines = monitor_lines(monitor, 8);
        let wanted: Vec<String> = (0..8).map(|i| format!("[0 C] \"SET\" \"key:{i}\" \"v\"")).collect();
        assert_eq!(lines, wanted);
    }
    // RESET leaves MONITOR mode: the next line is RESET's own reply.
    assert_eq!(monitors[0].command(&["RESET"]).unwrap(), "+RESET\r\n");
    raw.command(&["SET", "after", "reset"]).unwrap();
    assert_eq!(monitors[0].command(&["PING"]).unwrap(), "+PONG\r\n");
    // The others see all three (RESET too, as in Redis); lines from different connections
    // may interleave either way, one connection's keep their order.
    let mut lines = monitor_lines(&mut monitors[1], 3);
    let reset_first = lines.iter().position(|l| l == "[0 C] \"RESET\"") < lines.iter().position(|l| l == "[0 C] \"PING\"");
    assert!(reset_first, "{lines:?}");
    lines.sort();
    assert_eq!(lines, ["[0 C] \"PING\"", "[0 C] \"RESET\"", "[0 C] \"SET\" \"after\" \"reset\""]);
    // Closed monitors are forgotten on every core.
    drop(monitors);
    let deadline = Instant::now() + Duration::from_secs(5);
    while raw.command(&["CLIENT", "LIST"]).unwrap().contains("flags=O ") {
        assert!(Instant::now() < deadline, "monitors still listed");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_monitor_that_does_not_read_is_cut_off_at_the_pubsub_output_limit() {
    let server = Server::start(THREADS, &["--client-output-buffer-limit", "pubsub 64kb 0 0"]);
    let mut monitor = server.raw();
    assert_eq!(monitor.command(&["MONITOR"]).unwrap(), "+OK\r\n");
    let mut raw = server.raw();
    let value = "v".repeat(10_000);
    // Far more than the socket buffers and the limit hold, while the monitor reads nothing.
    for i in 0..2_000 {
        raw.command(&["SET", &format!("key:{}", i % 16), &value]).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while raw.command(&["CLIENT", "LIST"]).unwrap().contains("flags=O ") {
        assert!(Instant::now() < deadline, "the monitor was not cut off");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(raw.command(&["PING"]).unwrap(), "+PONG\r\n");
}

#[test]
fn acl_log_lists_failed_authentications_as_redis_does() {
    let servers = shoal_and_redis(&[]);
    let mut logs = Vec::new();
    for server in &servers {
        let mut admin = server.raw();
        assert_eq!(admin.command(&["CONFIG", "SET", "requirepass", "pw"]).unwrap(), "+OK\r\n");
        assert_eq!(admin.command(&["AUTH", "pw"]).unwrap(), "+OK\r\n");
        // Failures from several connections (so several cores): a wrong password twice (one
        // entry, counted twice), an unknown user, and HELLO's AUTH.
        for request in [&["AUTH", "wrong"][..], &["AUTH", "wrong"], &["AUTH", "nobody", "pw"], &["HELLO", "2", "AUTH", "default", "bad"]] {
            let reply = server.raw().command(request).unwrap();
            assert!(reply.starts_with("-WRONGPASS"), "{request:?}: {reply}");
        }
        let mut client = shoal_tests::connect(server);
        redis::cmd("AUTH").arg("pw").query::<()>(&mut client).unwrap();
        // A failure on another core reaches the log (on core 0) in a message.
        let deadline = Instant::now() + Duration::from_secs(5);
        let entries = loop {
            let entries: Vec<std::collections::HashMap<String, redis::Value>> = redis::cmd("ACL").arg("LOG").query(&mut client).unwrap();
            let counted: i64 = entries.iter().map(|e| redis::from_redis_value::<i64>(e["count"].clone()).unwrap()).sum();
            if counted == 4 || Instant::now() > deadline {
                break entries;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let text = |entry: &std::collections::HashMap<String, redis::Value>, field: &str| -> String { redis::from_redis_value(entry[field].clone()).unwrap() };
        // (Failures on different cores may reach the log in either order.)
        let mut summary: Vec<(i64, String, String, String, String)> = entries
            .iter()
            .map(|e| (redis::from_redis_value(e["count"].clone()).unwrap(), text(e, "reason"), text(e, "context"), text(e, "object"), text(e, "username")))
            .collect();
        summary.sort();
        for entry in &entries {
            assert!(text(entry, "client-info").starts_with("id=") && text(entry, "client-info").contains(" addr=127.0.0.1:"), "{entry:?}");
            let age: f64 = redis::from_redis_value(entry["age-seconds"].clone()).unwrap();
            assert!((0.0..5.0).contains(&age), "{age}");
        }
        assert_eq!(admin.command(&["ACL", "LOG", "1"]).unwrap().matches("client-info").count(), 1);
        assert_eq!(admin.command(&["ACL", "LOG", "RESET"]).unwrap(), "+OK\r\n");
        assert_eq!(admin.command(&["ACL", "LOG"]).unwrap(), "*0\r\n");
        assert_eq!(admin.command(&["ACL", "LOG", "x"]).unwrap(), "-ERR value is not an integer or out of range\r\n");
        assert_eq!(admin.command(&["CONFIG", "SET", "requirepass", ""]).unwrap(), "+OK\r\n");
        logs.push(summary);
    }
    let expected = [
        (1, "auth".to_string(), "toplevel".to_string(), "AUTH".to_string(), "nobody".to_string()),
        (1, "auth".into(), "toplevel".into(), "HELLO".into(), "default".into()),
        (2, "auth".into(), "toplevel".into(), "AUTH".into(), "default".into()),
    ];
    for log in &logs {
        assert_eq!(log, &expected);
    }
}

#[test]
fn client_list_and_info_show_the_clients_buffers() {
    let server = Server::start(THREADS, &[]);
    // A client half way through a 100 kB request: its query buffer holds what it sent.
    let mut slow = server.raw();
    let id = client_id(&mut slow);
    slow.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100000\r\n");
    slow.send(&[b'x'; 60_000]);
    let mut raw = server.raw();
    let field = |line: &str, name: &str| -> usize { line.split(' ').find_map(|f| f.strip_prefix(&format!("{name}="))).unwrap().parse().unwrap() };
    let deadline = Instant::now() + Duration::from_secs(5);
    let line = loop {
        let list = bulk_text(&raw.command(&["CLIENT", "LIST", "ID", &id.to_string()]).unwrap());
        if field(&list, "qbuf") >= 60_000 || Instant::now() > deadline {
            break list;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(field(&line, "qbuf") >= 60_000, "{line}");
    assert!(field(&line, "rbs") >= field(&line, "qbuf") && field(&line, "tot-mem") >= field(&line, "rbs"), "{line}");
    let info = info(&mut raw, &["clients"]);
    let recent: usize = info_field(&info, "client_recent_max_input_buffer").unwrap().parse().unwrap();
    assert!(recent >= 60_000, "{info}");
    // The rest arrives: the request runs and the buffer is empty again.
    slow.send(&[b'x'; 40_000]);
    slow.send(b"\r\n");
    assert_eq!(slow.read_reply().unwrap(), "+OK\r\n");
    let line = bulk_text(&raw.command(&["CLIENT", "LIST", "ID", &id.to_string()]).unwrap());
    assert_eq!(field(&line, "qbuf"), 0, "{line}");
    // MULTI's queue counts as multi-mem.
    slow.command(&["MULTI"]).unwrap();
    slow.command(&["SET", "k", &"v".repeat(1000)]).unwrap();
    let line = bulk_text(&raw.command(&["CLIENT", "LIST", "ID", &id.to_string()]).unwrap());
    assert!(field(&line, "multi-mem") >= 1000, "{line}");
    slow.command(&["DISCARD"]).unwrap();
    let line = bulk_text(&raw.command(&["CLIENT", "LIST", "ID", &id.to_string()]).unwrap());
    assert_eq!(field(&line, "multi-mem"), 0, "{line}");
}

#[test]
fn client_tracking_off_answers_as_redis_does() {
    assert_same_as_redis(
        &[],
        None,
        &[
            &["CLIENT", "TRACKING"],
            &["CLIENT", "TRACKING", "foo"],
            &["CLIENT", "TRACKING", "off"],
            &["CLIENT", "TRACKING", "OFF", "BCAST", "PREFIX", "a"],
            &["CLIENT", "TRACKINGINFO"],
            &["CLIENT", "TRACKINGINFO", "x"],
            &["CLIENT", "CACHING"],
            &["CLIENT", "CACHING", "yes"],
            &["CLIENT", "GETREDIR"],
        ],
    );
    // Tracking on: tests/tracking.rs.
}

#[test]
fn module_replicaof_and_failover_answer_as_redis_does() {
    assert_same_as_redis(
        &[],
        None,
        &[
            &["MODULE", "LIST"],
            &["MODULE", "LIST", "x"],
            &["MODULE", "HELP"],
            &["MODULE", "LOAD", "/nonexistent"],
            &["MODULE", "LOADEX", "/nonexistent"],
            &["MODULE", "UNLOAD", "nosuch"],
            &["MODULE", "FOO"],
            &["REPLICAOF", "no", "one"],
            &["SLAVEOF", "NO", "ONE"],
            &["REPLICAOF", "127.0.0.1", "x"],
            &["REPLICAOF", "127.0.0.1", "99999"],
            &["REPLICAOF", "a"],
            &["FAILOVER"],
            &["FAILOVER", "ABORT"],
            &["FAILOVER", "TO", "h", "1"],
            &["FAILOVER", "TO", "h", "x"],
            &["FAILOVER", "TIMEOUT", "0"],
            &["FAILOVER", "TIMEOUT", "x"],
            &["FAILOVER", "FORCE"],
            &["FAILOVER", "ABORT", "FORCE"],
            &["FAILOVER", "foo"],
            &["FAILOVER", "TO", "h"],
            &["FAILOVER", "FORCE", "TIMEOUT", "10", "TO", "h", "1"],
            &["FAILOVER", "FORCE", "FORCE"],
            &["ROLE"],
        ],
    );
    // Following a master that does not answer: ROLE says so until REPLICAOF NO ONE.
    let server = Server::start(THREADS, &[]);
    let mut raw = server.raw();
    let port = shoal_testkit::free_port().to_string();
    assert_eq!(raw.command(&["REPLICAOF", "127.0.0.1", &port]).unwrap(), "+OK\r\n");
    assert_eq!(raw.command(&["REPLICAOF", "127.0.0.1", &port]).unwrap(), "+OK Already connected to specified master\r\n");
    let role = raw.command(&["ROLE"]).unwrap();
    assert!(role.starts_with(&format!("*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:{port}\r\n")) && role.ends_with(":-1\r\n"), "{role:?}");
    assert_eq!(raw.command(&["SET", "k", "v"]).unwrap(), "-READONLY You can't write against a read only replica.\r\n");
    assert_eq!(raw.command(&["REPLICAOF", "NO", "ONE"]).unwrap(), "+OK\r\n");
    assert_eq!(raw.command(&["SET", "k", "v"]).unwrap(), "+OK\r\n");
}

#[test]
fn a_request_bigger_than_the_monitor_limit_cuts_every_cores_monitors_off() {
    let server = Server::start(THREADS, &["--client-output-buffer-limit", "pubsub 1mb 0 0"]);
    let mut monitors: Vec<Raw> = (0..4).map(|_| server.raw()).collect();
    for monitor in &mut monitors {
        assert_eq!(monitor.command(&["MONITOR"]).unwrap(), "+OK\r\n");
    }
    let mut raw = server.raw();
    // Small commands are shown; a 2 MB one cuts every monitor off, on every core.
    raw.command(&["SET", "small", "v"]).unwrap();
    for monitor in &mut monitors {
        assert_eq!(monitor_lines(monitor, 1), ["[0 C] \"SET\" \"small\" \"v\""]);
    }
    raw.command(&["SET", "big", &"x".repeat(2 << 20)]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while raw.command(&["CLIENT", "LIST"]).unwrap().contains("flags=O ") {
        assert!(Instant::now() < deadline, "monitors still connected");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(raw.command(&["STRLEN", "big"]).unwrap(), format!(":{}\r\n", 2 << 20));
}

#[test]
fn script_debug_no_is_accepted_and_the_debugger_is_refused() {
    assert_same_as_redis(
        &[],
        None,
        &[&["SCRIPT", "DEBUG", "no"], &["SCRIPT", "DEBUG", "NO"], &["SCRIPT", "DEBUG", "x"], &["SCRIPT", "DEBUG"], &["SCRIPT", "DEBUG", "no", "x"]],
    );
    // Redis would debug the next script (redis-cli --ldb); Shoal has no Lua debugger.
    let server = Server::start(THREADS, &[]);
    for mode in ["yes", "sync"] {
        let reply = server.raw().command(&["SCRIPT", "DEBUG", mode]).unwrap();
        assert!(reply.starts_with("-ERR SCRIPT DEBUG is not supported"), "{reply}");
    }
}

#[test]
fn latency_tracking_directives_reply_as_redis_does() {
    assert_same_as_redis(
        &[],
        None,
        &[
            &["CONFIG", "GET", "latency-tracking"],
            &["CONFIG", "GET", "latency-tracking-info-percentiles"],
            &["CONFIG", "SET", "latency-tracking-info-percentiles", "50 abc"],
            &["CONFIG", "SET", "latency-tracking-info-percentiles", "100.5"],
            &["CONFIG", "SET", "latency-tracking-info-percentiles", "-1"],
            &["CONFIG", "SET", "latency-tracking-info-percentiles", "99.99 50.50 0 100"],
            &["CONFIG", "GET", "latency-tracking-info-percentiles"],
            &["CONFIG", "SET", "latency-tracking-info-percentiles", ""],
            &["CONFIG", "GET", "latency-tracking-info-percentiles"],
            &["CONFIG", "SET", "latency-tracking-info-percentiles", "50 99 99.9"],
            &["CONFIG", "SET", "latency-tracking", "maybe"],
            &["CONFIG", "SET", "latency-tracking", "no"],
            &["INFO", "latencystats"],
            &["CONFIG", "SET", "latency-tracking", "yes"],
        ],
    );
}

/// INFO latencystats: a line per command run, its percentiles labelled and printed as
/// Redis prints them (the values are each server's own).
#[test]
fn info_latencystats_lists_the_configured_percentiles_per_command() {
    for server in &shoal_and_redis(&[]) {
        let mut raw = server.raw();
        assert_eq!(raw.command(&["CONFIG", "RESETSTAT"]).unwrap(), "+OK\r\n");
        assert_eq!(raw.command(&["CONFIG", "SET", "latency-tracking-info-percentiles", "50 99.9 100"]).unwrap(), "+OK\r\n");
        for _ in 0..10 {
            raw.command(&["SET", "k", "v"]).unwrap();
        }
        let info = raw.command(&["INFO", "latencystats"]).unwrap();
        let line = info.lines().find(|l| l.starts_with("latency_percentiles_usec_set:")).unwrap_or_else(|| panic!("port {}: {info}", server.port));
        let values: Vec<(String, f64)> = line
            .split_once(':')
            .unwrap()
            .1
            .split(',')
            .map(|pair| {
                let (label, value) = pair.split_once('=').unwrap();
                assert_eq!(value.split_once('.').map(|(_, d)| d.len()), Some(3), "three decimals: {line}");
                (label.to_owned(), value.parse().unwrap())
            })
            .collect();
        assert_eq!(values.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>(), ["p50", "p99.9", "p100"], "port {}", server.port);
        assert!(values.windows(2).all(|w| w[0].1 <= w[1].1) && values[0].1 > 0.0, "{line}");
        assert_eq!(raw.command(&["CONFIG", "SET", "latency-tracking-info-percentiles", "50 99 99.9"]).unwrap(), "+OK\r\n");
    }
}
