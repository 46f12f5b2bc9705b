//! Differential test: every snippet runs in our Lua state and in Debian's redis-server (EVAL over raw RESP), and the
//! two results must be the same bytes.
//!
//! Each snippet evaluates to one Lua string (or number); errors are caught with `pcall` inside the snippet so that the
//! message itself is compared. Snippets are loaded locally under the chunk name `@user_script`, as Redis names them,
//! so positions in messages match. Without redis-server on PATH the test is skipped, unless `SHOAL_REQUIRE_ALL=1`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIT_SNIPPETS: &[&str] = &[
    "return tostring(bit.tobit(0xffffffff))",
    "return tostring(bit.tobit(2^32 + 5))",
    "return bit.tobit(1.5) .. ' ' .. bit.tobit(2.5) .. ' ' .. bit.tobit(-2.5) .. ' ' .. bit.tobit(-0.5)",
    "return bit.tobit(1/0) .. ' ' .. bit.tobit(-1/0) .. ' ' .. bit.tobit(0/0) .. ' ' .. bit.tobit(2^53)",
    "return bit.tobit('12') .. ' ' .. bit.tobit(' 0x10 ')",
    "return bit.tohex(1) .. bit.tohex(-1) .. bit.tohex(255, 2) .. bit.tohex(255, -2)",
    "return bit.tohex(0x1234, -9) .. '|' .. bit.tohex(1, 0) .. '|' .. bit.tohex(0xabc, -2^31) .. '|' .. bit.tohex(0xabc, 2^31)",
    "return bit.tohex(-2^31) .. bit.tohex(2^31) .. bit.tohex(0xfedcba98, -3)",
    "local ok, e = pcall(bit.tohex) return tostring(ok) .. tostring(e)",
    "local ok, e = pcall(function() return bit.tohex(1, 'a') end) return e",
    "local ok, e = pcall(function() return bit.band(1, 'x') end) return e",
    "local ok, e = pcall(function() return bit.bor() end) return e",
    "local f = bit.bxor local ok, e = pcall(function() return f({}) end) return e",
    "local ok, e = pcall(bit.tobit, nil) return e",
    "return bit.lshift(1, 32) .. ' ' .. bit.lshift(1, 33) .. ' ' .. bit.lshift(1, 31) .. ' ' .. bit.lshift(3, -1)",
    "return bit.rshift(-1, 1) .. ' ' .. bit.rshift(-1, 0) .. ' ' .. bit.arshift(-256, 4) .. ' ' .. bit.arshift(2^31, 31)",
    "return bit.rol(0x12345678, 4) .. ' ' .. bit.ror(0x12345678, -4) .. ' ' .. bit.rol(1, 63) .. ' ' .. bit.ror(1, 1)",
    "return bit.bswap(0x12345678) .. ' ' .. bit.bswap(-1) .. ' ' .. bit.bnot(0) .. ' ' .. bit.bnot(2^32 - 1)",
    "return bit.bxor(1, 2, 4, 8) .. ' ' .. bit.band(-1, 0xff, 0x0f) .. ' ' .. bit.bor(1) .. ' ' .. bit.band(7)",
    "return bit.band(1.4, 1.6) .. ' ' .. bit.bor(2^40 + 3, 4) .. ' ' .. bit.bxor(-1.5, 0)",
];

const STRUCT_SNIPPETS: &[&str] = &[
    "return struct.pack('>I2', 258)",
    "return struct.pack('<i4hbBHlLTdfs', -2, 3, -1, 255, 65535, 7, 8, 9, 1.5, 2.5, 'ab')",
    "return struct.pack('!4 b i4 c3 x d', 1, 2, 'abcdef', 3)",
    "return struct.pack('! b d b h', 1, 2, 3, 4)",
    "return struct.pack('!2 b i3 b i8', 1, 2, 3, 4)",
    "return struct.pack('<i10', -1) .. struct.pack('>i10', -1) .. struct.pack('>I3', 2^24 + 5)",
    "return struct.pack('<I8', 0/0) .. struct.pack('<I8', 2^64) .. struct.pack('<i8', -2^64) .. struct.pack('<I8', -1.5)",
    "return struct.pack('<i8', 1/0) .. struct.pack('<i8', -1/0) .. struct.pack('<I8', 2^63) .. struct.pack('<I8', 2^63 + 2^12)",
    "return struct.pack('b', 300) .. struct.pack('B', -1) .. struct.pack('h', 2.9) .. struct.pack('h', -2.9)",
    "return struct.pack('>f', 1e300) .. struct.pack('>d', 0/0) .. struct.pack('<f', -0.1) .. struct.pack('d', -0.0)",
    "return struct.pack('s', 'a\\0b') .. struct.pack('c0', 'abc') .. struct.pack('c', 12) .. struct.pack('i0', 1)",
    "return struct.pack('b\\0b', 1, 2)",
    "return table.concat({struct.unpack('<i2 i2', struct.pack('<i2 i2', -5, 7))}, ' ')",
    "return table.concat({struct.unpack('b c0', struct.pack('b c0', 3, 'xyz'))}, ' ')",
    "return table.concat({struct.unpack('<i9', string.rep(string.char(255), 9))}, ' ')",
    "return table.concat({struct.unpack('<i9', string.rep(string.char(1), 9))}, ' ')",
    "return table.concat({struct.unpack('<I9', string.rep(string.char(1), 9))}, ' ')",
    "return table.concat({struct.unpack('<i0 I0', 'x')}, ' ')",
    "return table.concat({struct.unpack('<i4', 'xxxxxxxx', 1.9)}, ' ')",
    "return table.concat({struct.unpack('>!4 b i4', string.rep('a', 8))}, ' ')",
    "return table.concat({struct.unpack('f d', struct.pack('f d', 0.1, 0.1))}, ' ')",
    "return table.concat({struct.unpack('s s x', 'ab\\0c\\0\\0')}, ' ')",
    "return table.concat({struct.unpack('>I16', string.rep(string.char(255), 16))}, ' ')",
    "return table.concat({struct.unpack('>i16 <i3 >I3', string.rep(string.char(255), 16) .. 'abcabc')}, ' ')",
    "return table.concat({struct.unpack('c1 c0', 'x3abcdef', 2)}, ' ')",
    "local ok, e = pcall(function() return struct.unpack('c2 c0', 'abcdef') end) return e",
    "local ok, e = pcall(function() return struct.pack('iii', 1) end) return e",
    "local ok, e = pcall(function() return struct.pack('c9000 i i', string.rep('a', 9000)) end) return e",
    "return struct.size('>i4 !8 d') .. ' ' .. struct.size('y') .. ' ' .. struct.size(' ') .. ' ' .. struct.size('i32')",
    "return struct.size('!') .. ' ' .. struct.size('!16') .. ' ' .. struct.size('i4i4c') .. ' ' .. struct.size('bT') .. ' ' .. struct.size('!bT')",
    "local ok, e = pcall(function() return struct.size('s') end) return e",
    "local ok, e = pcall(function() return struct.size('c0') end) return e",
    "local ok, e = pcall(function() return struct.size('i33') end) return e",
    "local ok, e = pcall(function() return struct.size('!3') end) return e",
    "local ok, e = pcall(function() return struct.size('!0') end) return e",
    "local ok, e = pcall(function() return struct.size('?') end) return e",
    "local ok, e = pcall(function() return struct.size('c9999999999999') end) return e",
    "local ok, e = pcall(function() return struct.pack('y') end) return e",
    "local ok, e = pcall(function() return struct.pack('i') end) return e",
    "local ok, e = pcall(function() return struct.pack('c2', 'a') end) return e",
    "local ok, e = pcall(function() return struct.pack('b', 'x') end) return e",
    "local ok, e = pcall(function() return struct.pack(1) end) return e",
    "local ok, e = pcall(struct.pack) return e",
    "local ok, e = pcall(function() return struct.unpack('i4', 'ab') end) return e",
    "local ok, e = pcall(function() return struct.unpack('s', 'ab') end) return e",
    "local ok, e = pcall(function() return struct.unpack('i4', 'abcd', 0) end) return e",
    "local ok, e = pcall(function() return struct.unpack('i4', 'abcd', -1) end) return e",
    "local ok, e = pcall(function() return struct.unpack('c0', 'abc') end) return e",
    "local ok, e = pcall(function() return struct.unpack('b c0', string.char(255) .. 'abc') end) return e",
    "local ok, e = pcall(function() return struct.unpack('s c0', 'x\\0') end) return e",
    "local ok, e = pcall(function() return struct.unpack('b', 'a', 2^53) end) return e",
    "local ok, e = pcall(function() return struct.unpack('b', {}) end) return e",
];

/// The least number of snippets the test must have.
const SNIPPETS_MIN: usize = 80;

const CJSON_SNIPPETS: &[&str] = &[
    "return cjson.encode({1, 2, 3}) .. cjson.encode({a = 1}) .. cjson.encode({}) .. cjson.encode({{}, {{}}})",
    "return cjson.encode('a/b\"\\\\\\n\\r\\t\\b\\f\\1\\27\\31\\127\\128\\255 \\0')",
    "return cjson.encode({0.1, 1e100, -0.0, 2^53, 123456789012345, -123.456, 5e-324, 1e15, 1/3})",
    "return cjson.encode(nil) .. cjson.encode(true) .. cjson.encode(false) .. cjson.encode(cjson.null) .. cjson.encode({cjson.null})",
    "return cjson.encode({[1] = 1, [3] = 3}) .. cjson.encode({[1] = 1, [5] = 3}) .. cjson.encode({[10] = 1}) .. cjson.encode({[2] = 1})",
    "return cjson.encode({[0] = 1}) .. cjson.encode({[1.5] = 1}) .. cjson.encode({[-1] = 1}) .. cjson.encode({[-0.0] = 1})",
    "return cjson.encode({[2^31] = 1}) .. cjson.encode({[2^53] = 1}) .. cjson.encode({[1e300] = 1}) .. cjson.encode({['a\\0b'] = 1})",
    "return cjson.encode({1, 2, x = 1})",
    "return cjson.encode({b = 1, a = 2, c = 3, d = {1, 2}, e = {f = {g = 'h'}}})",
    "return cjson.encode({[1] = 1, [2] = 2, [4] = 4, [8] = 8}) .. cjson.encode({nil, nil, 3})",
    "return cjson.encode(setmetatable({}, {__index = function() return 1 end})) .. cjson.encode(setmetatable({1}, {__len = function() return 5 end}))",
    "local ok, e = pcall(function() return cjson.encode({[1] = 1, [15] = 3}) end) return e",
    "local ok, e = pcall(function() return cjson.encode({[2^31 - 1] = 1}) end) return e",
    "local ok, e = pcall(function() return cjson.encode(1/0) end) return e",
    "local ok, e = pcall(function() return cjson.encode({a = {0/0}}) end) return e",
    "local ok, e = pcall(function() return cjson.encode({[1/0] = 1}) end) return e",
    "local ok, e = pcall(function() return cjson.encode({[true] = 1}) end) return e",
    "local ok, e = pcall(function() return cjson.encode({[{}] = 1}) end) return e",
    "local ok, e = pcall(function() return cjson.encode({a = cjson.encode}) end) return e",
    "local ok, e = pcall(function() return cjson.encode(coroutine.create(function() end)) end) return e",
    "local ok, e = pcall(function() return cjson.encode() end) return e",
    "local ok, e = pcall(function() return cjson.encode(1, 2) end) return e",
    "local t = {} local c = t for i = 1, 1000 do c[1] = {} c = c[1] end local ok, e = pcall(cjson.encode, t) return e",
    "local t = {} local c = t for i = 1, 999 do c[1] = {} c = c[1] end return cjson.encode(t)",
    "local t = {} t[1] = t local ok, e = pcall(cjson.encode, t) return e",
    "local t = {} t.a = t local ok, e = pcall(cjson.encode, t) return e",
    "local c = cjson.new() c.encode_max_depth(100000) local t = {} local n = t for i = 1, 20000 do n[1] = {} n = n[1] end local ok, e = pcall(c.encode, t) return e",
    "local c = cjson.new() c.encode_max_depth(100000) local t = {} local n = t for i = 1, 20000 do n.a = {} n = n.a end local ok, e = pcall(c.encode, t) return e",
    "return cjson.encode(cjson.decode('{\"a\":[1,{\"b\":null}, true, false, \"x\", -1.5e3]}'))",
    "return cjson.decode(' \"\\\\u00e9\\\\ud83d\\\\ude00\\\\u0000x\\\\u20AC\\\\/\\\\b\\\\f\\\\n\\\\r\\\\t\\\\\\\\\\\\\"\" ')",
    "local r = {} for _, s in ipairs({'\"\\\\ud83d\"', '\"\\\\ude00\"', '\"\\\\ud83dx\"', '\"\\\\ud83d\\\\u0041\"', '\"\\\\u12\"', '\"\\\\x\"', '\"abc', '\"a\\\\'}) do r[#r + 1] = select(2, pcall(cjson.decode, s)) end return table.concat(r, '|')",
    "local r = {} for _, s in ipairs({'[1,2', '[1,2,]', '{\"a\":1,}', '{1:2}', 'nul', 'null x', '', '   ', '{\"a\" 1}', '[\"a\" \"b\"]', '123abc', '-', '.5', 'tru', '\\0', '1 2', ']', '{\"a\":1]'}) do r[#r + 1] = select(2, pcall(cjson.decode, s)) end return table.concat(r, '|')",
    "local r = {} for _, s in ipairs({'1e400', '-1e400', 'nan', 'NaN', 'inf', '-Infinity', '0x10', '-0x10', '1.5e3', '01', '+1', '1.', '-0', '1E2', '1e-2', '9007199254740993', '0x1p4', 'infinity', ' 7 '}) do r[#r + 1] = tostring(cjson.decode(s)) end return table.concat(r, ' ')",
    "local c = cjson.new() c.decode_invalid_numbers(false) local r = {} for _, s in ipairs({'0x10', 'nan', '-inf', '01', '+1', '-01', '1', '-0', 'Infinity', '0e1', '-0x1'}) do local ok, e = pcall(c.decode, s) r[#r + 1] = tostring(e) end return table.concat(r, '|')",
    "local t = cjson.decode('{\"a\":null,\"b\":[null]}') return tostring(t.a == cjson.null) .. tostring(t.b[1] == cjson.null) .. type(t.a) .. tostring(cjson.null)",
    "return cjson.decode('\"a\\tb\\1\\255\"') .. cjson.decode(123) .. tostring(cjson.decode('[]')[1])",
    "local ok, e = pcall(cjson.decode, string.rep('[', 1001)) return e",
    "local ok, e = pcall(cjson.decode, string.rep('[', 1000)) return e",
    "local ok, e = pcall(cjson.decode, string.rep('{\"a\":', 1001)) return e",
    "local c = cjson.new() c.decode_max_depth(100000) local ok, e = pcall(c.decode, string.rep('[', 20000)) return e",
    "local c = cjson.new() c.decode_max_depth(100000) local ok, e = pcall(c.decode, string.rep('{\"a\":', 20000)) return e",
    "local ok, e = pcall(cjson.decode, '\"a\\0\"') return e",
    "local ok, e = pcall(cjson.decode, 'a\\0') return e",
    "local ok, e = pcall(cjson.decode, ' \\0') return e",
    "local ok, e = pcall(cjson.decode, '1', 2) return e",
    "local ok, e = pcall(cjson.decode) return e",
    "local ok, e = pcall(function() return cjson.decode({}) end) return e",
    "local ok, e = pcall(function() return cjson.decode(nil) end) return e",
    "local t = cjson.decode('{\"a\":1,\"a\":2,\"b\":{\"c\":[1,2,{\"d\":3}]}}') return t.a .. t.b.c[3].d .. #t.b.c",
    "local r = {} for _, f in ipairs({'encode_max_depth', 'decode_max_depth', 'encode_number_precision', 'encode_keep_buffer', 'encode_invalid_numbers', 'decode_invalid_numbers'}) do r[#r + 1] = tostring(cjson[f]()) end return table.concat(r, ' ') .. ' ' .. table.concat({tostring(cjson.encode_sparse_array())}, ' ')",
    "local a, b, c = cjson.new().encode_sparse_array(true, 2^32 + 3, 1.5) return tostring(a) .. b .. c",
    "local r = {} for _, call in ipairs({function() return cjson.encode_max_depth(0) end, function() return cjson.encode_max_depth('x') end, function() return cjson.encode_max_depth(1, 2) end, function() return cjson.encode_number_precision(15) end, function() return cjson.encode_invalid_numbers('x') end, function() return cjson.encode_invalid_numbers(1) end, function() return cjson.encode_sparse_array(nil, -1) end, function() return cjson.decode_invalid_numbers({}) end}) do r[#r + 1] = select(2, pcall(call)) end return table.concat(r, '|')",
    "local c = cjson.new() return tostring(c.encode_invalid_numbers('null')) .. c.encode({1/0, 0/0}) .. tostring(c.encode_invalid_numbers(true)) .. c.encode({1/0, -1/0, 0/0, [4] = 2})",
    "local c = cjson.new() c.encode_number_precision(3) return c.encode({3.14159, 1e20, 12345}) .. cjson.encode(3.14159)",
    "local c = cjson.new() c.encode_sparse_array(true) return c.encode({[20] = 1}) .. c.encode({[1] = 1, [2] = 2})",
    "local c = cjson.new() c.encode_sparse_array(false, 0) return tostring(#c.encode({[2000] = 1}))",
    "local c = cjson.new() c.encode_sparse_array(false, 1, 0) local ok, e = pcall(c.encode, {[1] = 1, [3] = 1}) return tostring(e) .. c.encode({1, 2})",
    "local c = cjson.new() c.encode_max_depth(2) local ok, e = pcall(c.encode, {{{1}}}) return e .. c.encode({{1}})",
    "local c = cjson.new() c.decode_max_depth(2) local ok, e = pcall(c.decode, '[[[1]]]') return e .. c.encode(c.decode('[[1]]'))",
    "local t = {} for k in pairs(cjson) do t[#t + 1] = k end table.sort(t) return table.concat(t, ' ') .. cjson._NAME .. cjson._VERSION",
    "local t = {} for k in pairs(cjson.new()) do t[#t + 1] = k end table.sort(t) return table.concat(t, ' ')",
];

const CMSGPACK_SNIPPETS: &[&str] = &[
    "return cmsgpack.pack(1, -1, 127, 128, -32, -33, 255, 256, 65535, 65536, 2^32 - 1, 2^32, -128, -129, -32768, -32769, -2^31, -2^31 - 1)",
    "return cmsgpack.pack(2^63, -2^63, 2^64, 1.5, 0.1, 1/0, -1/0, 0/0, -0.0, 1e300, 2^53 + 1, -2^53, 1e-40, 3.4028234663852886e38)",
    "return cmsgpack.pack({1, 2, 3}, {}, {a = 1}, {[1] = 1, [3] = 3}, {1, 2, x = 1}, {[0] = 1}, {[1.5] = 1}, {[2^31] = 1})",
    "return cmsgpack.pack(true, false, nil, cmsgpack.pack, cjson.null, coroutine.create(function() end))",
    "return cmsgpack.pack('', string.rep('a', 31), string.rep('b', 32), string.rep('c', 255), string.rep('d', 256))",
    "return cmsgpack.pack(string.rep('e', 65535), string.rep('f', 65536))",
    "local t = {} for i = 1, 15 do t[i] = i end local u = {} for i = 1, 16 do u[i] = i end local v = {} for i = 1, 65536 do v[i] = 0 end return cmsgpack.pack(t, u, v)",
    "local t = {} for i = 1, 16 do t['k' .. i] = i end return #cmsgpack.pack(t) .. ' ' .. cmsgpack.pack(t):byte(1) .. ' ' .. cmsgpack.pack({x = {y = {z = {}}}})",
    "local t = {} local n = t for i = 1, 20 do n[1] = {} n = n[1] end return cmsgpack.pack(t)",
    "local t = {} t.a = t return cmsgpack.pack(t)",
    "local t = {} t[t] = 1 return cmsgpack.pack({[{1}] = {2}})",
    "local ok, e = pcall(function() return cmsgpack.pack() end) return e",
    "local ok, e = pcall(cmsgpack.pack) return e",
    "local t = {} for i = 1, 5000 do t[i] = i end local ok, e = pcall(cmsgpack.pack, unpack(t)) return tostring(e)",
    "local t = {} for i = 1, 3000 do t[i] = {i, {i}} end return #cmsgpack.pack(unpack(t)) .. ''",
    "local r = {} for _, s in ipairs({'\\196\\1a', '\\199\\1\\1a', '\\146\\1', '\\129\\192\\1', '\\129\\203\\255\\248\\0\\0\\0\\0\\0\\0\\1', '\\217', '\\217\\5ab', '\\193', '\\212\\1\\1', '\\1\\193', '\\219\\255\\255\\255\\255', '\\221\\255\\255\\255\\255\\1', '\\223\\0\\0\\0\\1\\1'}) do r[#r + 1] = select(2, pcall(cmsgpack.unpack, s)) end return table.concat(r, '|')",
    "local r = {} for _, v in ipairs({cmsgpack.unpack('\\207\\255\\255\\255\\255\\255\\255\\255\\255\\211\\128\\0\\0\\0\\0\\0\\0\\0\\206\\255\\255\\255\\255\\210\\128\\0\\0\\0\\207\\0\\32\\0\\0\\0\\0\\0\\1')}) do r[#r + 1] = tostring(v) end return table.concat(r, ' ')",
    "return table.concat({cmsgpack.unpack('\\202\\63\\192\\0\\0\\203\\63\\185\\153\\153\\153\\153\\153\\154\\224\\255\\208\\128\\209\\128\\0\\204\\255\\205\\255\\255\\127\\0')}, ' ')",
    "return table.concat({cmsgpack.unpack('\\217\\3abc\\218\\0\\2ab\\219\\0\\0\\0\\1a\\163xyz\\160')}, '|')",
    "local a, b, c, d = cmsgpack.unpack('\\220\\0\\2\\1\\2\\221\\0\\0\\0\\1\\3\\222\\0\\1\\1\\2\\223\\0\\0\\0\\1\\161k\\2') return a[1] .. a[2] .. b[1] .. c[1] .. d.k",
    "local t = cmsgpack.unpack('\\130\\1\\2\\1\\3') local u = cmsgpack.unpack('\\145\\129\\1\\145\\192') local v = cmsgpack.unpack('\\129\\1\\192') return t[1] .. type(u[1][1]) .. tostring(next(u[1][1])) .. tostring(next(v))",
    "local t = cmsgpack.unpack(cmsgpack.pack({1, 2, {a = {b = {}}, c = 'x'}, true, false})) return t[1] .. t[2] .. t[3].c .. type(t[3].a.b) .. tostring(t[4]) .. tostring(t[5])",
    "local r = {} for _, call in ipairs({function() return cmsgpack.unpack('\\1\\2\\3') end, function() return cmsgpack.unpack('') end, function() return cmsgpack.unpack_one('\\1\\2\\3') end, function() return cmsgpack.unpack_one('\\1\\2\\3', 2) end, function() return cmsgpack.unpack_one('\\1\\2\\3', 3) end, function() return cmsgpack.unpack_one('\\1\\2\\3', 1.9) end, function() return cmsgpack.unpack_one('', 0) end}) do r[#r + 1] = select('#', call()) .. ':' .. table.concat({call()}, ',') end return table.concat(r, ' ')",
    "local r = {} for _, call in ipairs({function() return cmsgpack.unpack_limit('\\1\\2\\3', 2) end, function() return cmsgpack.unpack_limit('\\1\\2\\3', 2, 1) end, function() return cmsgpack.unpack_limit('\\1\\2\\3', 0) end, function() return cmsgpack.unpack_limit('\\1\\2\\3', 5) end, function() return cmsgpack.unpack_limit('\\1\\2', 1, 2) end, function() return cmsgpack.unpack_limit('\\1\\2\\3', 0, 1) end, function() return cmsgpack.unpack_limit('\\1\\2\\3', 2^32 + 1) end, function() return cmsgpack.unpack_limit('\\1\\2\\3', 2^31) end}) do r[#r + 1] = select('#', call()) .. ':' .. table.concat({call()}, ',') end return table.concat(r, ' ')",
    "local r = {} for _, call in ipairs({function() return cmsgpack.unpack_one('\\1\\2', -1) end, function() return cmsgpack.unpack_one('\\1\\2\\3', 4) end, function() return cmsgpack.unpack_one('', 1) end, function() return cmsgpack.unpack_limit('\\1\\2\\3', -1) end, function() return cmsgpack.unpack_limit('\\1') end, function() return cmsgpack.unpack() end, function() return cmsgpack.unpack({}) end, function() return cmsgpack.unpack_one('\\1', 'x') end, function() return cmsgpack.unpack_one('\\1', 2^32) end, function() return cmsgpack.unpack_one('\\1', 2^31) end, function() return cmsgpack.unpack_one('\\1', -2^31 - 1) end, function() return cmsgpack.unpack_one('\\1', 1e300) end, function() return cmsgpack.unpack_one('\\1', 2^40 + 5) end, function() return cmsgpack.unpack_limit('\\1', -2^31 - 1) end}) do r[#r + 1] = tostring(select(2, pcall(call))) end return table.concat(r, '|')",
    "return table.concat({cmsgpack.unpack(1)}, ' ') .. table.concat({cmsgpack.unpack(-1)}, ' ')",
    "local ok, e = pcall(cmsgpack.unpack, string.rep('\\145', 100000)) return e",
    "local ok, e = pcall(cmsgpack.unpack, string.rep('\\129\\1', 100000)) return e",
    "local ok, e = pcall(cmsgpack.unpack, string.rep('\\1', 100000)) return e",
    "local ok, e = pcall(cmsgpack.unpack, string.rep('\\145', 3000) .. '\\1') return tostring(ok) .. type(e)",
    "local t = {} for k, v in pairs(cmsgpack) do t[#t + 1] = k .. '=' .. (type(v) == 'string' and v or type(v)) end table.sort(t) return table.concat(t, ' ')",
];

/// A redis-server on a free loopback port, shut down when dropped.
///
/// It runs under coreutils' `timeout` (when there is one), so that a test process that dies without dropping it (an
/// abort) cannot leave the server running for more than half an hour.
struct Server {
    child: Child,
    port: u16,
}

/// The longest a test's redis-server lives, in seconds.
const SERVER_LIFETIME_MAX_S: u32 = 1800;

impl Server {
    fn start() -> Server {
        let port = TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("its address").port();
        let port_text = port.to_string();
        let lifetime = SERVER_LIFETIME_MAX_S.to_string();
        let server_args = ["redis-server", "--port", &port_text, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"];
        let spawn = |program: &str, args: &[&str]| Command::new(program).args(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn();
        let child = spawn("timeout", &[&["--signal=TERM", lifetime.as_str()], &server_args[..]].concat())
            .or_else(|_| spawn("redis-server", &server_args[1..]))
            .expect("redis-server starts");
        Server { child, port }
    }

    fn connect(&self) -> TcpStream {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !shoal_testkit::answers_ping(self.port) {
            assert!(Instant::now() < deadline, "redis-server did not answer PING on {}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
        TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis-server")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SHUTDOWN ends redis-server and with it `timeout`; killing `timeout` alone would leave the server running.
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
            let _ = stream.write_all(b"*2\r\n$8\r\nSHUTDOWN\r\n$6\r\nNOSAVE\r\n");
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn redis_server_available() -> bool {
    Command::new("redis-server").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|status| status.success())
}

/// Sends `EVAL snippet 0` and returns the reply: a bulk string's bytes, or a description of any other reply.
fn redis_eval(reader: &mut BufReader<TcpStream>, snippet: &str) -> Vec<u8> {
    let mut request = b"*3\r\n".to_vec();
    for part in [b"EVAL".as_slice(), snippet.as_bytes(), b"0"] {
        request.extend_from_slice(format!("${}\r\n", part.len()).as_bytes());
        request.extend_from_slice(part);
        request.extend_from_slice(b"\r\n");
    }
    let mut stream = reader.get_ref();
    stream.write_all(&request).expect("write");
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line).expect("a reply");
    match line.first() {
        Some(b'$') => {
            let len: usize = std::str::from_utf8(&line[1..line.len() - 2]).expect("length").parse().expect("a bulk length");
            let mut bulk = vec![0u8; len + 2];
            reader.read_exact(&mut bulk).expect("the bulk");
            bulk.truncate(len);
            bulk
        }
        _ => format!("<reply {}>", String::from_utf8_lossy(&line).trim_end()).into_bytes(),
    }
}

pub(super) fn local_eval(snippet: &str) -> Vec<u8> {
    let lua = super::tests::lua();
    match super::tests::eval_bytes_in(&lua, snippet) {
        Ok(bytes) => bytes,
        Err(error) => format!("<local error {error}>").into_bytes(),
    }
}

/// Runs every snippet here and in a redis-server of its own, and returns a description of each that differs; `None`
/// when redis-server is not on PATH (a failure instead when `SHOAL_REQUIRE_ALL=1`).
pub(super) fn differences_from_redis<S: AsRef<str>>(snippets: &[S]) -> Option<Vec<String>> {
    if !redis_server_available() {
        assert!(std::env::var("SHOAL_REQUIRE_ALL").as_deref() != Ok("1"), "redis-server is not on PATH and SHOAL_REQUIRE_ALL=1");
        eprintln!("skipping a differential test: redis-server is not on PATH");
        return None;
    }
    let server = Server::start();
    let mut reader = BufReader::new(server.connect());
    let mut mismatches = Vec::new();
    for snippet in snippets {
        let snippet = snippet.as_ref();
        let expected = redis_eval(&mut reader, snippet);
        let actual = local_eval(snippet);
        if expected != actual {
            // Long results (the randomised batches) are shown from just before the first difference.
            let first = expected.iter().zip(&actual).take_while(|(a, b)| a == b).count();
            let from = first.saturating_sub(300);
            let window = |bytes: &[u8]| String::from_utf8_lossy(&bytes[from.min(bytes.len())..(first + 300).min(bytes.len())]).into_owned();
            let snippet_shown: String = snippet.chars().take(2000).collect();
            mismatches.push(format!("{snippet_shown}\n   (from byte {from})\n   redis: {:?}\n   local: {:?}", window(&expected), window(&actual)));
        }
    }
    Some(mismatches)
}

#[test]
fn snippets_give_the_same_bytes_as_redis() {
    let snippets: Vec<&str> = [BIT_SNIPPETS, STRUCT_SNIPPETS, CJSON_SNIPPETS, CMSGPACK_SNIPPETS].concat();
    assert!(snippets.len() >= SNIPPETS_MIN, "the differential test has {} snippets, fewer than {SNIPPETS_MIN}", snippets.len());
    let Some(mismatches) = differences_from_redis(&snippets) else {
        return;
    };
    assert!(mismatches.is_empty(), "{} of {} snippets differ:\n{}", mismatches.len(), snippets.len(), mismatches.join("\n"));
}
