//! The libraries Redis gives scripts besides Lua's own: `bit`, `struct`, `cjson`, `cmsgpack`.
//!
//! Each behaves as the version Redis 7.0 bundles (LuaBitOp 1.0.2, lua_struct, lua-cjson 2.1.0, lua-cmsgpack 0.4.0),
//! down to the bytes it produces and the error messages it raises; Debian's redis-server is the oracle the
//! differential test compares against. They are plain Lua C functions written in Rust (see `raw`), so errors are
//! Lua strings exactly as the C libraries raise them.
//!
//! What this module does not do: sandboxing. The engine calls [`register_all`] before it installs its sandbox, and
//! decides itself whether the tables become read-only (Redis 7.0 makes them read-only). Configuration set through
//! `cjson.encode_*` lives in the state's `cjson` table, so it lasts as long as the Lua state does, as in Redis.
//!
//! Differences that are not these libraries' own (the Lua core underneath them differs from Redis's):
//! - Tables with string keys of 32 bytes or more traverse in another order than in Redis, whose Lua hashes long
//!   strings differently, so `cjson.encode` and `cmsgpack.pack` write such objects' members in another order.
//! - mlua's debug build of Lua checks the API: `pcall` of a function that returns more than about 20 values trips an
//!   assertion there (release builds are fine). The tests call through a wrapper that returns one table.

mod bit;
mod cjson;
mod cmsgpack;
mod raw;
mod structlib;

#[cfg(test)]
mod differential_tests;
#[cfg(test)]
mod random_differential_tests;

/// Registers `bit`, `struct`, `cjson` and `cmsgpack` as global tables in `lua`.
pub fn register_all(lua: &mlua::Lua) -> mlua::Result<()> {
    bit::register(lua)?;
    structlib::register(lua)?;
    cjson::register(lua)?;
    cmsgpack::register(lua)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    /// A fresh Lua 5.1 state with the libraries registered.
    pub(crate) fn lua() -> mlua::Lua {
        let lua = mlua::Lua::new();
        super::register_all(&lua).expect("the libraries register");
        lua
    }

    /// Runs `code` (named `@user_script`, as Redis names scripts) and returns its result, which must be a string or a
    /// number, as raw bytes.
    pub(crate) fn eval_bytes_in(lua: &mlua::Lua, code: &str) -> Result<Vec<u8>, String> {
        let value: mlua::Value = lua.load(code).set_name("@user_script").eval().map_err(|error| error.to_string())?;
        match value {
            mlua::Value::String(string) => Ok(string.as_bytes().to_vec()),
            mlua::Value::Number(number) => Ok(super::raw::format_g(number, 14).into_bytes()),
            mlua::Value::Integer(number) => Ok(number.to_string().into_bytes()),
            other => Err(format!("the snippet returned {other:?}, not a string")),
        }
    }

    /// [`eval_bytes_in`] on a fresh state, as UTF-8 (lossy).
    pub(crate) fn eval(code: &str) -> String {
        let bytes = eval_bytes_in(&lua(), code).unwrap_or_else(|error| panic!("{code}: {error}"));
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// [`eval_bytes_in`] on a fresh state.
    pub(crate) fn eval_bytes(code: &str) -> Vec<u8> {
        eval_bytes_in(&lua(), code).unwrap_or_else(|error| panic!("{code}: {error}"))
    }

    #[test]
    fn register_all_creates_the_four_tables() {
        assert_eq!(eval("return type(bit) .. type(struct) .. type(cjson) .. type(cmsgpack)"), "tabletabletabletable");
    }
}
