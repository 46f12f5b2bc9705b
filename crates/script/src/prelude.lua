-- The Lua side of the sandbox, run once per Lua state with the unprotected globals.
-- Arguments: G (the real globals, libraries loaded), impl (a table the engine fills: the
-- host functions, installed after this chunk runs, and a few helpers), functions (whether this state runs FUNCTION
-- libraries rather than EVAL scripts).
-- Returns: the globals proxy scripts see as _G, the real table behind it, its metatable (the
-- engine points its __index at the load-time globals while a library loads), the load-time
-- globals (functions only), and the runner.
--
-- Everything here is compiled under the chunk name "=[shoal]"; the error handler skips
-- frames of that chunk, so an error raised from one of these wrappers is reported at the
-- script line that called it, as Redis reports errors raised from its C functions.
local G, impl, functions = ...

local type, error, select, tostring, tonumber = G.type, G.error, G.select, G.tostring, G.tonumber
local rawget, rawset, next, pairs, ipairs = G.rawget, G.rawset, G.next, G.pairs, G.ipairs
local setmetatable, getmetatable, setfenv = G.setmetatable, G.getmetatable, G.setfenv
local pcall, xpcall, loadstring, load = G.pcall, G.xpcall, G.loadstring, G.load
local floor, sub, find, byte, concat = G.math.floor, G.string.sub, G.string.find, G.string.byte, G.table.concat
-- Script-visible functions written here go through a C trampoline (see sandbox.rs).
local expose = impl.expose

-- proxy -> the real table behind it. Weak keys: proxies die with the state anyway.
local readonly = setmetatable({}, { __mode = "k" })

local function modify_readonly()
    error("Attempt to modify a readonly table", 2)
end

-- A read-only view of `real`. `face` is what getmetatable(view) returns: itself read-only,
-- so neither the view nor its metatable can be changed by a script.
local function protect(real, face_fields)
    local face = {}
    readonly[face] = face_fields or {}
    setmetatable(face, { __index = readonly[face], __newindex = modify_readonly, __metatable = false })
    local proxy = {}
    readonly[proxy] = real
    setmetatable(proxy, { __index = real, __newindex = modify_readonly, __metatable = face })
    return proxy
end

local function unwrap(t)
    local real = readonly[t]
    if real ~= nil then
        return real
    end
    return t
end

local function missing_global(_, name)
    error("Script attempted to access nonexistent global variable '" .. tostring(name) .. "'", 2)
end

-- The real globals of scripts, behind the _G proxy.
local env = setmetatable({}, { __index = missing_global })
local genv_mt = { __index = env, __newindex = modify_readonly }
local genv = {}
readonly[genv] = env
do
    local face = {}
    readonly[face] = {}
    setmetatable(face, { __index = readonly[face], __newindex = modify_readonly, __metatable = false })
    genv_mt.__metatable = face
end
setmetatable(genv, genv_mt)

-- math.random and math.randomseed as Redis has them: its own lrand48, shared by every
-- script and function of the engine and never reseeded between calls.
local rand_next, rand_seed = impl.rand_next, impl.rand_seed
local function check_int(n, fname, ...)
    local v = select(n, ...)
    local number = tonumber(v)
    if number == nil then
        local got = select("#", ...) < n and "no value" or type(v)
        error("bad argument #" .. n .. " to '" .. fname .. "' (number expected, got " .. got .. ")", 4)
    end
    if number < 0 then
        return -floor(-number)
    end
    return floor(number)
end
G.math.random = expose(function(...)
    local r = rand_next()
    local n = select("#", ...)
    if n == 0 then
        return r
    elseif n == 1 then
        local u = check_int(1, "random", ...)
        if u < 1 then
            error("bad argument #1 to 'random' (interval is empty)", 3)
        end
        return floor(r * u) + 1
    elseif n == 2 then
        local l, u = check_int(1, "random", ...), check_int(2, "random", ...)
        if l > u then
            error("bad argument #2 to 'random' (interval is empty)", 3)
        end
        return floor(r * (u - l + 1)) + l
    end
    error("wrong number of arguments", 3)
end)
G.math.randomseed = expose(function(...)
    rand_seed(check_int(1, "randomseed", ...))
end)

for _, name in ipairs({ "string", "math", "table", "coroutine", "bit", "struct", "cjson", "cmsgpack" }) do
    local lib = rawget(G, name)
    if type(lib) == "table" then
        rawset(env, name, protect(lib))
    end
end

-- Strings index the read-only string library, and their metatable is read-only too.
do
    local string_mt = getmetatable("")
    string_mt.__index = rawget(env, "string")
    local face = {}
    readonly[face] = { __index = rawget(env, "string") }
    setmetatable(face, { __index = readonly[face], __newindex = modify_readonly, __metatable = false })
    string_mt.__metatable = face
end

for _, name in ipairs({ "assert", "collectgarbage", "error", "gcinfo", "getmetatable", "rawequal", "select", "tonumber", "tostring", "type", "unpack", "_VERSION" }) do
    rawset(env, name, rawget(G, name))
end

-- Lua's argument check, raised at the script's line: level 1 is the wrapper, 2 the C
-- trampoline, 3 the caller.
local function check_table(fname, n, ...)
    local t = select(n, ...)
    if type(t) ~= "table" then
        local got = select("#", ...) < n and "no value" or type(t)
        error("bad argument #" .. n .. " to '" .. fname .. "' (table expected, got " .. got .. ")", 4)
    end
end

-- Functions that would see through or around a proxy look at the real table instead.
rawset(env, "next", expose(function(...)
    check_table("next", 1, ...)
    local t, k = ...
    return next(unwrap(t), k)
end))
rawset(env, "pairs", expose(function(...)
    check_table("pairs", 1, ...)
    local t = ...
    local f, s, c = pairs(unwrap(t))
    return f, s, c
end))
rawset(env, "ipairs", expose(function(...)
    check_table("ipairs", 1, ...)
    local t = ...
    local f, s, c = ipairs(unwrap(t))
    return f, s, c
end))
rawset(env, "rawget", expose(function(...)
    check_table("rawget", 1, ...)
    local t, k = ...
    local v = rawget(unwrap(t), k)
    return v
end))
rawset(env, "rawset", expose(function(...)
    check_table("rawset", 1, ...)
    local t, k, v = ...
    if readonly[t] ~= nil then
        error("Attempt to modify a readonly table", 0)
    end
    local r = rawset(t, k, v)
    return r
end))
rawset(env, "setmetatable", expose(function(...)
    check_table("setmetatable", 1, ...)
    local t, mt = ...
    if readonly[t] ~= nil then
        error("Attempt to modify a readonly table", 0)
    end
    local r = setmetatable(t, mt)
    return r
end))

-- Redis's pcall hands a script the message of an error reply (a table with an err field)
-- rather than the table.
local killed = impl.killed
local function pcall_result(ok, ...)
    if not ok then
        -- A killed script must not survive by catching the error: raise it again here,
        -- outside the pcall.
        if killed() then
            error("Script killed", 0)
        end
        local e = ...
        if type(e) == "table" and type(rawget(e, "err")) == "string" then
            return false, rawget(e, "err")
        end
    end
    return ok, ...
end
rawset(env, "pcall", expose(function(...)
    if select("#", ...) == 0 then
        return false, "bad argument #1 to 'pcall' (value expected)"
    end
    return pcall_result(pcall(...))
end))
local function xpcall_result(ok, ...)
    if not ok and killed() then
        error("Script killed", 0)
    end
    return ok, ...
end
rawset(env, "xpcall", expose(function(...)
    return xpcall_result(xpcall(...))
end))
do
    local resume = G.coroutine.resume
    G.coroutine.resume = expose(function(...)
        return xpcall_result(resume(...))
    end)
end

-- Chunks compiled by a script run in the script's globals. Bytecode is refused: loading
-- crafted bytecode can crash Lua 5.1.
local function refuses_binary(s)
    return type(s) == "string" and byte(s, 1) == 27
end
rawset(env, "loadstring", expose(function(s, name)
    if type(s) ~= "string" and type(s) ~= "number" then
        error("bad argument #1 to 'loadstring' (string expected, got " .. (s == nil and "nil" or type(s)) .. ")", 3)
    end
    if refuses_binary(s) then
        return nil, "attempt to load a binary chunk"
    end
    local f, e = loadstring(s, name)
    if f then
        setfenv(f, genv)
    end
    return f, e
end))
rawset(env, "load", expose(function(reader, name)
    local first = true
    local function guarded()
        local piece = reader()
        if first and piece ~= nil and piece ~= "" then
            first = false
            if refuses_binary(piece) then
                error("attempt to load a binary chunk", 0)
            end
        end
        return piece
    end
    if type(reader) ~= "function" then
        local f, e = load(reader, name)
        return f, e
    end
    local f, e = load(guarded, name)
    if f then
        setfenv(f, genv)
    end
    return f, e
end))

-- The redis library.
local function lib_error(message)
    error({ err = message })
end

local function log(...)
    local n = select("#", ...)
    if n < 2 then
        lib_error("ERR redis.log() requires two arguments or more.")
    end
    local level = tonumber((...))
    if level == nil then
        lib_error("ERR First argument must be a number (log level).")
    end
    if level < 0 or level > 3 then
        lib_error("ERR Invalid debug level.")
    end
    local parts = {}
    for j = 2, n do
        local s = select(j, ...)
        local t = type(s)
        if t == "string" or t == "number" then
            if j ~= 2 then
                parts[#parts + 1] = " "
            end
            parts[#parts + 1] = tostring(s)
        end
    end
    local sink = impl.log
    if sink then
        sink(floor(level), concat(parts))
    end
end

local function constants(t)
    t.LOG_DEBUG, t.LOG_VERBOSE, t.LOG_NOTICE, t.LOG_WARNING = 0, 1, 2, 3
    t.REDIS_VERSION = impl.version
    t.REDIS_VERSION_NUM = impl.version_num
    return t
end

local redis = constants({})
redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_ALL = 0, 1, 2, 2, 3
-- C functions (sandbox.rs, `host_function`) that raise or return errors as Redis's do.
redis.call = impl.call
redis.pcall = impl.pcall
redis.acl_check_cmd = impl.acl_check_cmd
redis.log = expose(log)
redis.error_reply = expose(function(...)
    local s = ...
    if select("#", ...) ~= 1 or type(s) ~= "string" then
        return { err = "ERR wrong number or type of arguments" }
    end
    if sub(s, 1, 1) == "-" then
        s = sub(s, 2)
    end
    if not find(s, " ", 1, true) then
        s = "ERR " .. s
    end
    return { err = s }
end)
redis.status_reply = expose(function(...)
    local s = ...
    if select("#", ...) ~= 1 or type(s) ~= "string" then
        return { err = "ERR wrong number or type of arguments" }
    end
    return { ok = s }
end)
redis.sha1hex = expose(function(...)
    if select("#", ...) ~= 1 then
        lib_error("ERR wrong number of arguments")
    end
    local s = ...
    local t = type(s)
    if t ~= "string" and t ~= "number" then
        s = ""
    end
    return impl.sha1hex(tostring(s))
end)
redis.setresp = expose(function(...)
    if select("#", ...) ~= 1 then
        lib_error("ERR redis.setresp() requires one argument.")
    end
    local v = tonumber((...))
    if v ~= 2 and v ~= 3 then
        lib_error("ERR RESP version must be 2 or 3.")
    end
    impl.setresp(v)
end)
redis.set_repl = expose(function(...)
    if select("#", ...) ~= 1 then
        lib_error("ERR redis.set_repl() requires two arguments.")
    end
    local v = tonumber((...)) or 0
    if v < 0 then
        v = -floor(-v)
    else
        v = floor(v)
    end
    if v < 0 or v > 3 then
        lib_error("ERR Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.")
    end
end)
redis.replicate_commands = expose(function()
    return true
end)
redis.breakpoint = expose(function()
    return false
end)
redis.debug = expose(function() end)

rawset(env, "redis", protect(redis))
rawset(env, "_G", genv)
rawset(env, "__redis__err__handler", impl.handler)

local handler = impl.handler
local run
local load_env = nil
if functions then
    -- While a library loads, its globals are only a redis table with registration, logging
    -- and the version constants.
    local load_redis = constants({})
    load_redis.register_function = expose(function(...)
        local failed, v = impl.register_function(...)
        if failed then
            error(v)
        end
    end)
    load_redis.log = expose(log)
    -- Unlike at run time, a missing field of this redis table is an error too.
    setmetatable(load_redis, { __index = missing_global })
    load_env = setmetatable({ redis = protect(load_redis) }, { __index = missing_global })
    run = function(f, keys, args)
        return xpcall(function()
            return f(keys, args)
        end, handler)
    end
else
    run = function(f)
        return xpcall(f, handler)
    end
end

-- Runs a library's main chunk (functions only); errors come back through the handler too.
local function run_chunk(f)
    return xpcall(f, handler)
end

return genv, env, genv_mt, load_env, run, run_chunk
