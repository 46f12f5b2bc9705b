//! Lua scripting as Redis has it (EVAL, EVALSHA, FUNCTION, FCALL).
//!
//! Under construction: see issue 4.

pub mod libs;
