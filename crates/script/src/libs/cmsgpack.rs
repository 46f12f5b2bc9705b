//! Placeholder.

pub(crate) fn register(_lua: &mlua::Lua) -> mlua::Result<()> {
    Ok(())
}
