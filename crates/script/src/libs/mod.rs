//! The libraries Redis gives scripts besides Lua's own: `bit`, `struct`, `cjson`, `cmsgpack`.
//! Built on the `script-libs` branch; until it merges, this registers nothing.

/// Registers `bit`, `struct`, `cjson` and `cmsgpack` as global tables in `lua`.
pub fn register_all(_lua: &mlua::Lua) -> mlua::Result<()> {
    Ok(())
}
