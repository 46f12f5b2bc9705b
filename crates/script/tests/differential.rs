//! Differential test: the same scripts and functions go to Debian's redis-server (the oracle)
//! and to our Engine, whose Host forwards every `redis.call` to a second redis-server, so
//! command behaviour is Redis's own and what differs can only be the Lua side. The RESP
//! bytes of every reply are compared, for RESP2 and RESP3 clients. A second test replays the
//! same corpus through a four-core shoal-server (the binary `cargo build -p shoal-server`
//! made), so the server around the engine is compared too.
//!
//! Skips when redis-server is missing, unless SHOAL_REQUIRE_ALL=1.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use shoal_resp::{Frame, Protocol};
use shoal_script::{Engine, Host, LogLevel, RestorePolicy, Source};
use shoal_testkit::{Raw, Server};

/// Forwards commands to a redis-server, switching its connection's protocol with HELLO to
/// the one the script asks for, and applies the command-level rules Redis applies to
/// scripts that a plain connection would not (the few the corpus exercises).
struct ForwardingHost {
    raw: Raw,
    proto: Protocol,
}

impl ForwardingHost {
    fn switch(&mut self, proto: Protocol) {
        if self.proto != proto {
            let version = if proto == Protocol::Resp3 { "3" } else { "2" };
            self.raw.command(&["HELLO", version]).expect("HELLO");
            self.proto = proto;
        }
    }
}

impl Host for ForwardingHost {
    fn call(&mut self, args: &[Bytes], proto: Protocol) -> Frame {
        let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
        if ["eval", "evalsha", "multi", "exec", "client", "debug", "function", "fcall", "script", "subscribe"].contains(&name.as_str()) {
            return Frame::error("ERR This Redis command is not allowed from script");
        }
        self.switch(proto);
        let refs: Vec<&[u8]> = args.iter().map(|a| a.as_ref()).collect();
        let reply = self.raw.command_bytes(&refs).expect("forward");
        let (frame, _) = parse(&reply);
        match &frame {
            Frame::Error(text) if text.starts_with(b"ERR unknown command") => Frame::error("ERR Unknown Redis command called from script"),
            Frame::Error(text) if text.starts_with(b"ERR wrong number of arguments") => {
                Frame::error("ERR Wrong number of args calling Redis command from script")
            }
            _ => frame,
        }
    }

    fn log(&mut self, _level: LogLevel, _message: &[u8]) {}

    fn should_kill(&mut self, _elapsed: Duration) -> bool {
        false
    }
}

/// Parses one RESP2/RESP3 reply; returns it and the bytes it used.
fn parse(bytes: &[u8]) -> (Frame, usize) {
    let line_end = bytes.windows(2).position(|w| w == b"\r\n").expect("CRLF");
    let line = &bytes[1..line_end];
    let text = String::from_utf8_lossy(line).into_owned();
    let after = line_end + 2;
    let number = || text.parse::<i64>().expect("number");
    let items = |count: usize| {
        let mut at = after;
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            let (frame, used) = parse(&bytes[at..]);
            out.push(frame);
            at += used;
        }
        (out, at)
    };
    match bytes[0] {
        b'+' => (Frame::Simple(Bytes::copy_from_slice(line)), after),
        b'-' => (Frame::Error(Bytes::copy_from_slice(line)), after),
        b':' => (Frame::Integer(number()), after),
        b'$' | b'=' => {
            let n = number();
            if n < 0 {
                return (Frame::Null, after);
            }
            let data = Bytes::copy_from_slice(&bytes[after..after + n as usize]);
            let frame = if bytes[0] == b'=' { Frame::Verbatim { format: [data[0], data[1], data[2]], text: data.slice(4..) } } else { Frame::Bulk(data) };
            (frame, after + n as usize + 2)
        }
        b'*' | b'~' | b'>' => {
            let n = number();
            if n < 0 {
                return (Frame::NullArray, after);
            }
            let (list, at) = items(n as usize);
            let frame = match bytes[0] {
                b'*' => Frame::Array(list),
                b'~' => Frame::Set(list),
                _ => Frame::Push(list),
            };
            (frame, at)
        }
        b'%' => {
            let (list, at) = items(number() as usize * 2);
            let mut pairs = Vec::new();
            let mut iter = list.into_iter();
            while let (Some(key), Some(value)) = (iter.next(), iter.next()) {
                pairs.push((key, value));
            }
            (Frame::Map(pairs), at)
        }
        b'_' => (Frame::Null, after),
        b'#' => (Frame::Boolean(line == b"t"), after),
        b',' => {
            let value = match text.as_str() {
                "inf" => f64::INFINITY,
                "-inf" => f64::NEG_INFINITY,
                "nan" => f64::NAN,
                "-nan" => -f64::NAN,
                other => other.parse().expect("double"),
            };
            (Frame::Double(value), after)
        }
        b'(' => (Frame::BigNumber(Bytes::copy_from_slice(line)), after),
        other => panic!("unexpected reply type {other}"),
    }
}

/// One step of the corpus, run on both sides.
enum Step {
    Eval {
        body: String,
        keys: Vec<String>,
        argv: Vec<String>,
        resp3: bool,
    },
    EvalSha {
        body: String,
        keys: Vec<String>,
        resp3: bool,
    },
    ScriptLoad(String),
    FunctionLoad {
        code: String,
        replace: bool,
    },
    FCall {
        name: String,
        keys: Vec<String>,
        argv: Vec<String>,
        read_only: bool,
        resp3: bool,
    },
    FunctionList {
        pattern: Option<String>,
        with_code: bool,
        resp3: bool,
    },
    FunctionDelete(String),
    FunctionDumpRestoreOnOracle,
    FunctionFlush,
    /// A plain command on both keyspaces (setting up data).
    Command(Vec<String>),
}

fn eval(body: &str) -> Step {
    Step::Eval { body: body.to_string(), keys: vec![], argv: vec![], resp3: false }
}

fn eval3(body: &str) -> Step {
    Step::Eval { body: body.to_string(), keys: vec![], argv: vec![], resp3: true }
}

fn eval_ka(body: &str, keys: &[&str], argv: &[&str], resp3: bool) -> Step {
    Step::Eval { body: body.to_string(), keys: keys.iter().map(|s| s.to_string()).collect(), argv: argv.iter().map(|s| s.to_string()).collect(), resp3 }
}

fn load(code: &str) -> Step {
    Step::FunctionLoad { code: code.to_string(), replace: false }
}

fn fcall(name: &str, keys: &[&str], argv: &[&str], read_only: bool, resp3: bool) -> Step {
    Step::FCall {
        name: name.to_string(),
        keys: keys.iter().map(|s| s.to_string()).collect(),
        argv: argv.iter().map(|s| s.to_string()).collect(),
        read_only,
        resp3,
    }
}

fn command(args: &[&str]) -> Step {
    Step::Command(args.iter().map(|s| s.to_string()).collect())
}

fn corpus() -> Vec<Step> {
    let mut steps = vec![
        // math.random first, so both generators are at their start.
        eval("return {tostring(math.random()), tostring(math.random()), math.random(10), math.random(5, 7)}"),
        eval("return tostring(math.random())"),
        eval("math.randomseed(5) return {math.random(1000), math.random(1000)}"),
        eval("return math.random(0)"),
        // Plain values.
        eval("return 1"),
        eval("return -1"),
        eval("return 3.99"),
        eval("return -3.99"),
        eval("return 1/0"),
        eval("return 'hello'"),
        eval("return ''"),
        eval("return true"),
        eval("return false"),
        eval("return nil"),
        eval("return {}"),
        eval("return {1, 2, 3}"),
        eval("return {1, 2, nil, 3}"),
        eval("return {1, 'two', {3, {4}}}"),
        eval("return {true, false, 'a'}"),
        eval("return 1, 2"),
        eval("return type"),
        eval("return {ok='fine'}"),
        eval("return {err='bad'}"),
        eval("return {err='-bad'}"),
        eval("return {err=12}"),
        eval("return {ok=12}"),
        eval("return {ok='x', err='y'}"),
        eval("return {1, {err='x'}, {ok='y'}}"),
        eval("return redis.status_reply('x')"),
        eval("return redis.status_reply('-x')"),
        eval("return redis.error_reply('bad')"),
        eval("return redis.error_reply('-bad')"),
        eval("return redis.error_reply('MY bad')"),
        eval("return redis.error_reply('-MY bad')"),
        eval("return redis.error_reply('')"),
        eval("return redis.error_reply(12)"),
        eval("return redis.error_reply()"),
        eval("return redis.status_reply()"),
        eval("return redis.error_reply('x').err"),
        // RESP3 tables, to RESP2 and RESP3 clients.
        eval("return {double=1.5}"),
        eval3("return {double=1.5}"),
        eval3("return {double=0.1}"),
        eval3("return {double=1e300}"),
        eval3("return {double=-0.0}"),
        eval3("return {double=3}"),
        eval3("return {double=1/0}"),
        eval3("return {double='x'}"),
        eval("return {map={a=1}}"),
        eval3("return {map={a=1, b={1,2}}}"),
        eval3("return {map={[1]='x', [true]=2}}"),
        eval("return {set={a=true}}"),
        eval3("return {set={a=true}}"),
        eval3("return {set={1, 2}}"),
        eval("return {big_number='123'}"),
        eval3("return {big_number='123'}"),
        eval3("return {big_number=123}"),
        eval3("return {verbatim_string={format='txt', string='hi'}}"),
        eval("return {verbatim_string={format='txt', string='hi'}}"),
        eval3("return {verbatim_string={format='txtx', string='hi'}}"),
        eval3("return {verbatim_string={string='hi'}}"),
        eval3("return {format='txt', string='hi'}"),
        eval3("return {double=1, map={a=1}}"),
        eval3("return {map={a=1}, 5}"),
        eval3("return {map={a={double=1.5}, b={set={z=true}}}}"),
        eval3("return true"),
        eval3("return false"),
        eval3("return nil"),
        eval3("return {1, false, true}"),
        eval3("redis.setresp(3) return false"),
        eval3("redis.setresp(3) return true"),
        eval3("redis.setresp(3) return {1, false, true}"),
        eval("redis.setresp(3) return false"),
        eval("redis.setresp(3) return true"),
        // redis.call and conversions of replies.
        command(&["SET", "s", "abc"]),
        command(&["HSET", "h", "a", "1"]),
        command(&["ZADD", "z", "1.5", "a"]),
        command(&["SADD", "st", "x"]),
        command(&["RPUSH", "l", "a", "b", "c"]),
        eval_ka("return redis.call('set', KEYS[1], ARGV[1])", &["k1"], &["v1"], false),
        eval_ka("return redis.call('get', KEYS[1])", &["k1"], &[], false),
        eval_ka("return {KEYS[1], ARGV[1], ARGV[2], #KEYS, #ARGV}", &["a"], &["b", "c"], false),
        eval("return redis.call('get', 'nosuch')"),
        eval("local r = redis.call('get', 'nosuch') return {type(r), tostring(r)}"),
        eval("return redis.call('incr', 'counter')"),
        eval("return redis.call('incrbyfloat', 'f', '1.5')"),
        eval("return redis.call('lrange', 'l', 0, -1)"),
        eval("return redis.call('hgetall', 'h')"),
        eval3("return redis.call('hgetall', 'h')"),
        eval3("redis.setresp(3) return redis.call('hgetall', 'h')"),
        eval("redis.setresp(3) return redis.call('hgetall', 'h')"),
        eval("redis.setresp(3) local r = redis.call('hgetall', 'h') return {type(r), type(r.map), r.map.a}"),
        eval("redis.setresp(3) return redis.call('zscore', 'z', 'a')"),
        eval3("redis.setresp(3) return redis.call('zscore', 'z', 'a')"),
        eval("redis.setresp(3) local r = redis.call('zscore','z','a') return {type(r), tostring(r.double)}"),
        eval("return redis.call('zscore', 'z', 'a')"),
        eval3("redis.setresp(3) return redis.call('smembers', 'st')"),
        eval("redis.setresp(3) local r = redis.call('smembers','st') return {type(r.set), tostring(r.set.x)}"),
        eval("redis.setresp(3) local r = redis.call('get', 'nosuch') return {type(r), tostring(r)}"),
        eval3("redis.setresp(3) return redis.call('get', 'nosuch')"),
        eval3("redis.setresp(3) return {1, false, true, redis.call('get','nosuch')}"),
        eval("return redis.call('ping')"),
        eval("return redis.call('ping').ok"),
        eval("return redis.call('set', 'n', 0.1)"),
        eval("return redis.call('get', 'n')"),
        eval("return redis.call('set', 'n', 1e20)"),
        eval("return redis.call('get', 'n')"),
        eval("return redis.call('set', 'n', 2^53)"),
        eval("return redis.call('get', 'n')"),
        eval("return redis.call('set', 'n', -7)"),
        eval("return redis.call('get', 'n')"),
        eval("return redis.call('set', 'n', 1e17)"),
        eval("return redis.call('get', 'n')"),
        eval("return redis.call('set', 'n', 123456789012345678)"),
        eval("return redis.call('get', 'n')"),
        eval("return redis.call('set', 'n', 2^63)"),
        eval("return redis.call('get', 'n')"),
        eval("return redis.call('set', 'n', -0.0)"),
        eval("return redis.call('get', 'n')"),
        // Errors from redis.call and redis.pcall.
        eval("return redis.call('incr', 's')"),
        eval("local y = 2\nreturn redis.call('incr','s')"),
        eval("local function f()\n  return redis.call('incr','s')\nend\nlocal y = 2\nreturn f()"),
        eval("return redis.pcall('incr', 's')"),
        eval("local e = redis.pcall('incr','s'); return e.err"),
        eval("local e = redis.pcall('incr','s'); return type(e)"),
        eval("return redis.call('nosuch')"),
        eval("return redis.pcall('nosuch')"),
        eval("return redis.call('get')"),
        eval("return redis.pcall('get')"),
        eval("return redis.call('eval', 'return 1', 0)"),
        eval("return redis.call()"),
        eval("return redis.pcall()"),
        eval("return redis.call({})"),
        eval("return redis.pcall({})"),
        eval("return redis.call('get', {})"),
        eval("return redis.call('get', true)"),
        eval("local ok, e = pcall(redis.call, 'incr', 's'); return e"),
        eval("local ok, e = pcall(redis.call, 'incr', 's'); return type(e)"),
        eval("local ok,e = xpcall(function() redis.call('incr','s') end, function(e) return type(e) end); return {tostring(ok), type(e), tostring(e)}"),
        // Script errors.
        eval("return 1+"),
        eval("return 'unfinished"),
        eval("error('x')"),
        eval("error('x', 0)"),
        eval("error(12)"),
        eval("local x = 1\nlocal y = 2\nerror('boom')"),
        eval("local function f()\n  error('boom')\nend\nlocal y = 2\nf()"),
        eval("local t = nil\nlocal y = 2\nreturn t.x"),
        eval("local y = 2\nerror('x', 2)"),
        eval("return error('-MY x')"),
        eval("return error(redis.error_reply('MY x'))"),
        eval("return error(redis.error_reply('x'))"),
        eval("return error({err='x'})"),
        eval("return error({err='MY x'})"),
        eval("local ok,e = pcall(error, {err='x'}); return {tostring(ok), type(e), tostring(e)}"),
        eval("local ok,e = pcall(error, 'x'); return {tostring(ok), type(e), tostring(e)}"),
        eval("local ok,e = pcall(function() local t = nil; return t.x end); return {tostring(ok), type(e), tostring(e)}"),
        eval("local ok,e = pcall(error, {err='x', foo=1}); return {tostring(ok), type(e), tostring(e)}"),
        eval("return string.rep()"),
        eval("return ('x'):bad()"),
        eval("return pairs(nil)"),
        eval("return ipairs()"),
        eval("return rawget(nil)"),
        eval("return setmetatable(1, {})"),
        eval("return loadstring(nil)"),
        eval("return pcall()"),
        eval("return next({}, 'x')"),
        eval("return math.random(1, 2, 3)"),
        eval("return math.random('x')"),
        eval("return math.random(3, 1)"),
        eval("return table.concat({{}})"),
        eval("error()"),
        eval("error(nil)"),
        eval("error(true)"),
        eval("local co = coroutine.create(function() redis.call('set','x','1') coroutine.yield(1) return 2 end) local a, b = coroutine.resume(co) local c, d = coroutine.resume(co) return {tostring(a), b, tostring(c), d}"),
        eval("return coroutine.wrap(function() error('in co') end)()"),
        eval("return {coroutine.resume(coroutine.create(function() error('in co') end))}"),
        eval("return coroutine.wrap(function() return redis.call('incr', 's') end)()"),
        eval("return string.format('%d %s %5.2f', 3, 'x', 1.5)"),
        eval("return tostring(0/0)"),
        eval("return {tonumber('0x10'), tonumber('1e2'), tonumber(' 5 ')}"),
        eval("return gcinfo() > 0"),
        eval("return collectgarbage('count') > 0"),
        eval("return unpack({1,2,3})"),
        eval("return select('#', 1, 2, 3)"),
        eval("return #KEYS"),
        eval("return string.rep('ab', 3)"),
        eval("local t = {} for i = 1, 1000 do t[i] = i * 1.5 end return t"),
        eval("local s = 0 for i = 1, 100000 do s = s + i end return s"),
        eval("return table.concat({'a', 'b', 'c'}, '-')"),
        eval("local t = {3, 1, 2} table.sort(t) return t"),
        eval("local t = {3, 1, 2} table.sort(t, function(a, b) return a > b end) return t"),
        eval("return {string.byte('A'), string.char(72, 105), ('%d'):format(7), ('abc'):sub(2), ('x'):len()}"),
        eval("return {string.find('hello world', 'o w'), string.match('key:123', '(%a+):(%d+)')}"),
        eval("return (string.gsub('hello', 'l', 'L'))"),
        eval("return {math.floor(3.7), math.ceil(3.2), math.max(1, 5, 3), math.abs(-2), math.huge > 0}"),
        eval("return {math.fmod(7, 3), math.sqrt(16), math.pi > 3}"),
        eval("return tostring(1e100)"),
        eval("return tostring(123456789012345)"),
        eval("return 2^63"),
        eval("return -2^63"),
        eval("return 0.5"),
        eval("return -0.5"),
        eval("return string.dump(function() end) ~= nil"),
        eval("return loadstring(string.dump(function() return 1 end))"),
        eval("return _G == getfenv and 1 or 2"),
        eval("return getfenv"),
        eval("return newproxy"),
        eval("return module"),
        eval("local ok, e = pcall(function() x = 5 end) return e"),
        eval("local ok, e = pcall(function() return undefined_global end) return e"),
        eval("return rawequal(string, string)"),
        eval("return #redis"),
        eval("return next(redis) ~= nil"),
        eval("return {redis.error_reply('a b'), redis.status_reply('ok')}"),
        eval("local function f() return f() + 1 end return f()"),
        // Globals protection.
        eval("x = 1"),
        eval("return y"),
        eval("redis.call = nil"),
        eval("redis.x = 1"),
        eval("string.foo = 1 return 1"),
        eval("coroutine.x = 1"),
        eval("rawset(_G, 'x', 1) return x"),
        eval("setmetatable(_G, nil) x = 1 return x"),
        eval("local m = getmetatable(_G) m.__newindex = nil x = 1 return x"),
        eval("getmetatable('').x = 1 return 1"),
        eval("return tostring(getmetatable('').__index == string)"),
        eval_ka("KEYS[1] = 'x' return KEYS[1]", &["a"], &[], false),
        eval("loadstring('x = 1')() return 1"),
        eval("return loadstring('return y')()"),
        eval("return loadstring('return 1 + 1')()"),
        eval("return os.clock()"),
        eval("return io"),
        eval("return require"),
        eval("return dofile"),
        eval("return print"),
        eval("local t = {} for k,v in pairs(_G) do if k ~= 'bit' and k ~= 'cjson' and k ~= 'cmsgpack' and k ~= 'struct' then table.insert(t, k .. ':' .. type(v)) end end table.sort(t) return t"),
        eval("local t = {} for k,v in pairs(redis) do table.insert(t, k .. ':' .. type(v)) end table.sort(t) return t"),
        eval("local t = {} for k,v in pairs(string) do table.insert(t, k) end table.sort(t) return t"),
        eval("local t = {} for k,v in pairs(math) do table.insert(t, k) end table.sort(t) return t"),
        eval("local t = {} for k,v in pairs(table) do table.insert(t, k) end table.sort(t) return t"),
        eval("return _VERSION"),
        // The redis library.
        eval("return redis.sha1hex('')"),
        eval("return redis.sha1hex('abc')"),
        eval("return redis.sha1hex(1)"),
        eval("return redis.sha1hex({})"),
        eval("return redis.sha1hex()"),
        eval("return redis.REDIS_VERSION .. ' ' .. redis.REDIS_VERSION_NUM"),
        eval("return redis.LOG_WARNING .. redis.LOG_NOTICE .. redis.LOG_VERBOSE .. redis.LOG_DEBUG"),
        eval("return redis.REPL_ALL .. redis.REPL_SLAVE .. redis.REPL_REPLICA .. redis.REPL_AOF .. redis.REPL_NONE"),
        eval("return redis.log(redis.LOG_WARNING, 'differential test', 1)"),
        eval("return redis.log(redis.LOG_WARNING)"),
        eval("return redis.log(99, 'x')"),
        eval("return redis.log('x', 'x')"),
        eval("return {redis.setresp(3)}"),
        eval("return redis.setresp(4)"),
        eval("return redis.setresp()"),
        eval("return redis.setresp('2')"),
        eval("return redis.set_repl()"),
        eval("return redis.set_repl(99)"),
        eval("return {redis.set_repl(redis.REPL_ALL)}"),
        eval("return {redis.replicate_commands(), redis.breakpoint(), redis.debug('x')}"),
        eval("return redis.acl_check_cmd()"),
        // Shebangs.
        eval("#!lua\nerror('x')"),
        eval("#!lua flags=bad\nreturn 1"),
        eval("#!notlua\nreturn 1"),
        eval("#!lua name=x\nreturn 1"),
        eval("#!lua flags=no-writes,allow-oom,allow-stale,no-cluster,allow-cross-slot-keys\nreturn 1"),
        eval("#!lua flags=\nreturn 1"),
        eval("#!lua flags=no-writes,\nreturn 1"),
        eval("#!lua  flags=no-writes\nreturn 1"),
        eval("#!lua flags=no-writes foo\nreturn 1"),
        eval("#!lua"),
        eval("#!lua\n"),
        // EVALSHA and SCRIPT LOAD.
        Step::ScriptLoad("return 'loaded'".to_string()),
        Step::EvalSha { body: "return 'loaded'".to_string(), keys: vec![], resp3: false },
        Step::EvalSha { body: "return 'never loaded'".to_string(), keys: vec![], resp3: false },
        Step::ScriptLoad("return +".to_string()),
        Step::EvalSha { body: "return {map={a=KEYS[1]}}".to_string(), keys: vec!["k".to_string()], resp3: true },
        eval("return {map={a=KEYS[1]}}"),
        Step::EvalSha { body: "return {map={a=KEYS[1]}}".to_string(), keys: vec!["k".to_string()], resp3: true },
        // Deep and odd values.
        eval("local t = {} local c = t for i=1,100 do c[1] = {} c = c[1] end return t"),
        eval("return {1,2,3,4,5,6,7,8,9,10,nil,12}"),
        eval("return string.rep('x', 100000)"),
    ];
    steps.extend(functions_corpus());
    steps
}

fn functions_corpus() -> Vec<Step> {
    let lib1 = "#!lua name=lib1\nredis.register_function('f1', function(keys, args) return {keys[1], args[1]} end)";
    vec![
        Step::FunctionFlush,
        load(lib1),
        load(lib1),
        Step::FunctionLoad { code: lib1.to_string(), replace: true },
        fcall("f1", &["k"], &["a"], false, false),
        fcall("f1", &[], &[], true, false),
        fcall("nosuch", &[], &[], false, false),
        load("#!lua name=lib2\nredis.register_function('f1', function() end)"),
        load("#!lua name=libro\nredis.register_function{function_name='ro', callback=function() return redis.call('get', 'k1') end, flags={'no-writes'}, description='read only'}"),
        fcall("ro", &[], &[], true, false),
        fcall("ro", &[], &[], false, true),
        Step::FunctionList { pattern: Some("libro".to_string()), with_code: false, resp3: false },
        Step::FunctionList { pattern: Some("LIBRO".to_string()), with_code: true, resp3: false },
        Step::FunctionList { pattern: Some("libr*".to_string()), with_code: false, resp3: true },
        Step::FunctionList { pattern: Some("nomatch*".to_string()), with_code: false, resp3: false },
        load("#!lua name=lib3\nreturn 1"),
        load("redis.register_function('x', function() end)"),
        load("#!lua"),
        load("#!lua name=bad-name!\nredis.register_function('x', function() end)"),
        load("#!lua name=lib4\nredis.register_function('bad name', function() end)"),
        load("#!lua name=lib4\nredis.call('ping')"),
        load("#!lua name=lib4\nreturn 1 +"),
        load("#!lua name=lib4 foo=bar\n"),
        load("#!nolua name=lib4\n"),
        load("#!lua\n"),
        load("#!lua name=a name=b\n"),
        load("#!\n"),
        load("#!lua name=\n"),
        load("#!lua name=x"),
        load("#!lua name=lib3\nx = 1"),
        load("#!lua name=lib3\nlocal x = string"),
        load("#!lua name=lib3\nredis.register_function('f', 1)"),
        load("#!lua name=lib3\nredis.register_function('f')"),
        load("#!lua name=lib3\nredis.register_function{function_name='f', callback=function() end, flags={'bad'}}"),
        load("#!lua name=lib3\nredis.register_function{function_name='f', callback=function() end, foo=1}"),
        load("#!lua name=lib3\nredis.register_function{function_name='f'}"),
        load("#!lua name=lib3\nredis.register_function{callback=function() end}"),
        load("#!lua name=lib3\nredis.register_function('f', function() end) redis.register_function('f', function() end)"),
        load("#!lua name=lib3\nredis.register_function('', function() end)"),
        load("#!lua name=lib3\nredis.register_function{function_name='f', callback=function() end, flags='no-writes'}"),
        load("#!lua name=lib3\nredis.register_function({function_name='f', callback=function() end}, 1)"),
        load("#!lua name=lib3\nredis.register_function()"),
        load("#!lua name=lib3\nredis.log(redis.LOG_WARNING, 'loading') local v = redis.REDIS_VERSION redis.register_function('lv', function() return v end)"),
        fcall("lv", &[], &[], false, false),
        load("#!lua name=lib7\nredis.register_function('g', function(k, a) local t = {} for _, n in ipairs({'KEYS','ARGV','string','redis','error', 'loadstring', '_G'}) do table.insert(t, n .. '=' .. type(rawget(_G, n))) end return t end)\nredis.register_function('h', function(k, a) x = 1 end)\nredis.register_function('i', function(k, a) return y end)\nredis.register_function('j', function(k, a) return redis.register_function('z', function() end) end)\nredis.register_function('e', function() error('boom') end)\nredis.register_function('c', function() return redis.call('incr', 's') end)\nredis.register_function('m', function() redis.setresp(3) return {redis.call('hgetall', 'h'), {double=2.5}, true} end)"),
        fcall("g", &[], &[], false, false),
        fcall("h", &[], &[], false, false),
        fcall("i", &[], &[], false, false),
        fcall("j", &[], &[], false, false),
        fcall("e", &[], &[], false, false),
        fcall("c", &[], &[], false, false),
        fcall("m", &[], &[], false, false),
        fcall("m", &[], &[], false, true),
        Step::FunctionDelete("lib7".to_string()),
        Step::FunctionDelete("lib7".to_string()),
        fcall("g", &[], &[], false, false),
        Step::FunctionDumpRestoreOnOracle,
        fcall("ro", &[], &[], false, false),
        Step::FunctionFlush,
        fcall("ro", &[], &[], false, false),
        Step::FunctionList { pattern: None, with_code: false, resp3: false },
        load("#!lua name=flaglib\nredis.register_function{function_name='ff', callback=function() return 1 end, flags={'allow-cross-slot-keys','no-cluster','allow-stale','allow-oom','no-writes'}}"),
        Step::FunctionList { pattern: None, with_code: true, resp3: false },
        Step::FunctionList { pattern: None, with_code: true, resp3: true },
        Step::FunctionList { pattern: Some("f?agl[a-i]b".to_string()), with_code: false, resp3: false },
        fcall("ff", &[], &[], true, true),
        Step::FunctionDumpRestoreOnOracle,
        fcall("ff", &[], &[], true, false),
    ]
}

fn encode(frame: &Frame, proto: Protocol) -> Vec<u8> {
    let mut out = BytesMut::new();
    shoal_resp::encode(frame, proto, &mut out);
    out.to_vec()
}

fn proto_of(resp3: bool) -> Protocol {
    if resp3 {
        Protocol::Resp3
    } else {
        Protocol::Resp2
    }
}

fn bytes_of(items: &[String]) -> Vec<Bytes> {
    items.iter().map(|s| Bytes::copy_from_slice(s.as_bytes())).collect()
}

/// The oracle's reply to `args` on the connection of the right protocol.
fn oracle(raw2: &mut Raw, raw3: &mut Raw, resp3: bool, args: &[&[u8]]) -> Vec<u8> {
    let raw = if resp3 { raw3 } else { raw2 };
    raw.command_bytes(args).expect("oracle reply")
}

#[test]
fn scripts_and_functions_reply_as_redis_does() {
    let Some(oracle_server) = Server::start_redis() else {
        return;
    };
    let Some(backend) = Server::start_redis() else {
        return;
    };
    let mut raw2 = oracle_server.raw();
    let mut raw3 = oracle_server.raw();
    raw3.command(&["HELLO", "3"]).expect("HELLO 3");
    let mut host = ForwardingHost { raw: backend.raw(), proto: Protocol::Resp2 };
    let mut engine = Engine::new();

    let steps = corpus();
    let scripts = steps.iter().filter(|step| matches!(step, Step::Eval { .. } | Step::EvalSha { .. })).count();
    assert!(scripts >= 100, "the corpus has {scripts} scripts");
    let mut mismatches = Vec::new();
    for (index, step) in steps.iter().enumerate() {
        let (label, expected, actual) = match step {
            Step::Eval { body, keys, argv, resp3 } => {
                let numkeys = keys.len().to_string();
                let mut args: Vec<&[u8]> = vec![b"EVAL", body.as_bytes(), numkeys.as_bytes()];
                args.extend(keys.iter().chain(argv).map(|s| s.as_bytes()));
                let expected = oracle(&mut raw2, &mut raw3, *resp3, &args);
                let frame = engine.eval(Source::Body(body.as_bytes()), &bytes_of(keys), &bytes_of(argv), proto_of(*resp3), &mut host);
                (format!("EVAL {body:?} (resp3: {resp3})"), expected, encode(&frame, proto_of(*resp3)))
            }
            Step::EvalSha { body, keys, resp3 } => {
                let sha = Engine::sha1hex(body.as_bytes());
                let numkeys = keys.len().to_string();
                let mut args: Vec<&[u8]> = vec![b"EVALSHA", sha.as_bytes(), numkeys.as_bytes()];
                args.extend(keys.iter().map(|s| s.as_bytes()));
                let expected = oracle(&mut raw2, &mut raw3, *resp3, &args);
                let frame = engine.eval(Source::Sha(sha.as_bytes()), &bytes_of(keys), &[], proto_of(*resp3), &mut host);
                (format!("EVALSHA of {body:?}"), expected, encode(&frame, proto_of(*resp3)))
            }
            Step::ScriptLoad(body) => {
                let expected = oracle(&mut raw2, &mut raw3, false, &[b"SCRIPT", b"LOAD", body.as_bytes()]);
                let frame = engine.script_load(body.as_bytes()).map_or_else(|error| error, Frame::bulk);
                (format!("SCRIPT LOAD {body:?}"), expected, encode(&frame, Protocol::Resp2))
            }
            Step::FunctionLoad { code, replace } => {
                let mut args: Vec<&[u8]> = vec![b"FUNCTION", b"LOAD"];
                if *replace {
                    args.push(b"REPLACE");
                }
                args.push(code.as_bytes());
                let expected = oracle(&mut raw2, &mut raw3, false, &args);
                let frame = engine.function_load(code.as_bytes(), *replace).map_or_else(|error| error, Frame::bulk);
                (format!("FUNCTION LOAD {code:?}"), expected, encode(&frame, Protocol::Resp2))
            }
            Step::FCall { name, keys, argv, read_only, resp3 } => {
                let numkeys = keys.len().to_string();
                let command: &[u8] = if *read_only { b"FCALL_RO" } else { b"FCALL" };
                let mut args: Vec<&[u8]> = vec![command, name.as_bytes(), numkeys.as_bytes()];
                args.extend(keys.iter().chain(argv).map(|s| s.as_bytes()));
                let expected = oracle(&mut raw2, &mut raw3, *resp3, &args);
                let frame = engine.fcall(name.as_bytes(), &bytes_of(keys), &bytes_of(argv), proto_of(*resp3), *read_only, &mut host);
                (format!("FCALL {name} (ro: {read_only}, resp3: {resp3})"), expected, encode(&frame, proto_of(*resp3)))
            }
            Step::FunctionList { pattern, with_code, resp3 } => {
                let mut args: Vec<&[u8]> = vec![b"FUNCTION", b"LIST"];
                if let Some(pattern) = pattern {
                    args.extend([b"LIBRARYNAME".as_slice(), pattern.as_bytes()]);
                }
                if *with_code {
                    args.push(b"WITHCODE");
                }
                let expected = oracle(&mut raw2, &mut raw3, *resp3, &args);
                let frame = engine.function_list(pattern.as_ref().map(|p| p.as_bytes()), *with_code);
                (format!("FUNCTION LIST {pattern:?}"), expected, encode(&frame, proto_of(*resp3)))
            }
            Step::FunctionDelete(name) => {
                let expected = oracle(&mut raw2, &mut raw3, false, &[b"FUNCTION", b"DELETE", name.as_bytes()]);
                let frame = engine.function_delete(name.as_bytes()).map_or_else(|error| error, |()| Frame::ok());
                (format!("FUNCTION DELETE {name}"), expected, encode(&frame, Protocol::Resp2))
            }
            Step::FunctionFlush => {
                let expected = oracle(&mut raw2, &mut raw3, false, &[b"FUNCTION", b"FLUSH"]);
                engine.function_flush();
                ("FUNCTION FLUSH".to_string(), expected, encode(&Frame::ok(), Protocol::Resp2))
            }
            Step::FunctionDumpRestoreOnOracle => {
                // Our DUMP restores on the oracle (after a flush there), and the oracle's DUMP
                // restores here: the libraries then answer as before on both sides.
                let ours = engine.function_dump();
                let theirs = oracle(&mut raw2, &mut raw3, false, &[b"FUNCTION", b"DUMP"]);
                let (theirs, _) = parse(&theirs);
                let Frame::Bulk(theirs) = theirs else { panic!("FUNCTION DUMP replied {theirs:?}") };
                oracle(&mut raw2, &mut raw3, false, &[b"FUNCTION", b"FLUSH"]);
                let expected = oracle(&mut raw2, &mut raw3, false, &[b"FUNCTION", b"RESTORE", &ours]);
                engine.function_flush();
                let frame = engine.function_restore(&theirs, RestorePolicy::Append).map_or_else(|error| error, |()| Frame::ok());
                ("FUNCTION DUMP/RESTORE across".to_string(), expected, encode(&frame, Protocol::Resp2))
            }
            Step::Command(args) => {
                let refs: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
                let expected = oracle(&mut raw2, &mut raw3, false, &refs);
                let frame = host.call(&bytes_of(args), Protocol::Resp2);
                (format!("{args:?}"), expected, encode(&frame, Protocol::Resp2))
            }
        };
        if expected != actual {
            mismatches.push(format!(
                "step {index}: {label}\n  redis: {:?}\n  ours:  {:?}",
                String::from_utf8_lossy(&expected),
                String::from_utf8_lossy(&actual)
            ));
        }
    }
    assert!(mismatches.is_empty(), "{} of {} steps differ:\n{}", mismatches.len(), steps.len(), mismatches.join("\n"));
}

/// The request (and whether it goes to the RESP3 connection) that replays `step` against a
/// server; `None` for the steps that only make sense against the engine itself.
fn request_of(step: &Step) -> Option<(Vec<Vec<u8>>, bool)> {
    let strings = |items: &[&str]| items.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>();
    let mut request: Vec<Vec<u8>>;
    let resp3 = match step {
        Step::Eval { body, keys, argv, resp3 } => {
            request = strings(&["EVAL", body, &keys.len().to_string()]);
            request.extend(keys.iter().chain(argv).map(|s| s.as_bytes().to_vec()));
            *resp3
        }
        Step::EvalSha { body, keys, resp3 } => {
            request = strings(&["EVALSHA", &Engine::sha1hex(body.as_bytes()), &keys.len().to_string()]);
            request.extend(keys.iter().map(|s| s.as_bytes().to_vec()));
            *resp3
        }
        Step::ScriptLoad(body) => {
            request = strings(&["SCRIPT", "LOAD", body]);
            false
        }
        Step::FunctionLoad { code, replace } => {
            request = strings(&["FUNCTION", "LOAD"]);
            if *replace {
                request.push(b"REPLACE".to_vec());
            }
            request.push(code.as_bytes().to_vec());
            false
        }
        Step::FCall { name, keys, argv, read_only, resp3 } => {
            request = strings(&[if *read_only { "FCALL_RO" } else { "FCALL" }, name, &keys.len().to_string()]);
            request.extend(keys.iter().chain(argv).map(|s| s.as_bytes().to_vec()));
            *resp3
        }
        Step::FunctionList { pattern, with_code, resp3 } => {
            request = strings(&["FUNCTION", "LIST"]);
            if let Some(pattern) = pattern {
                request.extend(strings(&["LIBRARYNAME", pattern]));
            }
            if *with_code {
                request.push(b"WITHCODE".to_vec());
            }
            *resp3
        }
        Step::FunctionDelete(name) => {
            request = strings(&["FUNCTION", "DELETE", name]);
            false
        }
        Step::FunctionFlush => {
            request = strings(&["FUNCTION", "FLUSH"]);
            false
        }
        Step::FunctionDumpRestoreOnOracle => return None,
        Step::Command(args) => {
            request = args.iter().map(|s| s.as_bytes().to_vec()).collect();
            false
        }
    };
    Some((request, resp3))
}

/// The same corpus through a real shoal-server with four cores, where every script holds
/// every core (`script-undeclared-keys yes`: the corpus uses undeclared keys), against the
/// oracle: what differs now is the server around the engine (command routing, the rules the
/// Host applies, replies across cores).
#[test]
fn a_shoal_server_answers_the_corpus_as_redis_does() {
    let Some(oracle_server) = Server::start_redis() else {
        return;
    };
    let shoal = Server::start(4, &["--script-undeclared-keys", "yes"]);
    let connect = |server: &Server| {
        let (raw2, mut raw3) = (server.raw(), server.raw());
        raw3.command(&["HELLO", "3"]).expect("HELLO 3");
        (raw2, raw3)
    };
    let (mut oracle2, mut oracle3) = connect(&oracle_server);
    let (mut ours2, mut ours3) = connect(&shoal);
    let mut mismatches = Vec::new();
    let steps: Vec<Step> = corpus().into_iter().chain(functions_corpus()).collect();
    for (index, step) in steps.iter().enumerate() {
        let Some((request, resp3)) = request_of(step) else { continue };
        let refs: Vec<&[u8]> = request.iter().map(|a| a.as_slice()).collect();
        let expected = oracle(&mut oracle2, &mut oracle3, resp3, &refs);
        let actual = oracle(&mut ours2, &mut ours3, resp3, &refs);
        if expected != actual {
            mismatches.push(format!(
                "step {index}: {:?}\n  redis: {:?}\n  shoal: {:?}",
                String::from_utf8_lossy(&refs.concat()),
                String::from_utf8_lossy(&expected),
                String::from_utf8_lossy(&actual)
            ));
        }
    }
    assert!(mismatches.is_empty(), "{} of {} steps differ:\n{}", mismatches.len(), steps.len(), mismatches.join("\n"));
}
