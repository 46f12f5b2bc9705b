//! The libraries Redis gives scripts besides Lua's own: `bit`, `struct`, `cjson`, `cmsgpack`.
