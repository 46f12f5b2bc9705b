//! The `#!lua` first line of EVAL scripts (`flags=...`) and of FUNCTION libraries
//! (`name=...`), with Redis 7.0's error texts.

use shoal_resp::Frame;

use crate::ScriptFlags;

/// The flag names, in the order FUNCTION LIST shows them.
pub(crate) const FLAG_NAMES: [&str; 5] = ["no-writes", "allow-oom", "allow-stale", "no-cluster", "allow-cross-slot-keys"];

/// Sets the flag called `name`; false for an unknown name.
pub(crate) fn set_flag(flags: &mut ScriptFlags, name: &[u8]) -> bool {
    match name {
        b"no-writes" => flags.no_writes = true,
        b"allow-oom" => flags.allow_oom = true,
        b"allow-stale" => flags.allow_stale = true,
        b"no-cluster" => flags.no_cluster = true,
        b"allow-cross-slot-keys" => flags.allow_cross_slot_keys = true,
        _ => return false,
    }
    true
}

/// The names of the flags set in `flags`, in [`FLAG_NAMES`] order.
pub(crate) fn flag_names(flags: &ScriptFlags) -> Vec<&'static str> {
    let set = [flags.no_writes, flags.allow_oom, flags.allow_stale, flags.no_cluster, flags.allow_cross_slot_keys];
    FLAG_NAMES.iter().zip(set).filter(|(_, on)| *on).map(|(name, _)| *name).collect()
}

/// The words of the first line, split on spaces as Redis does (runs of spaces collapse).
fn first_line_words(line: &[u8]) -> Vec<&[u8]> {
    line.split(|&b| b == b' ' || b == b'\t' || b == b'\r').filter(|word| !word.is_empty()).collect()
}

/// The flags of an EVAL script: none and `shebang == false` without a `#!` line.
pub(crate) fn script_flags(body: &[u8]) -> Result<ScriptFlags, Frame> {
    let mut flags = ScriptFlags::default();
    if !body.starts_with(b"#!") {
        return Ok(flags);
    }
    flags.shebang = true;
    let Some(end) = body.iter().position(|&b| b == b'\n') else {
        return Err(Frame::error("ERR Invalid script shebang"));
    };
    let words = first_line_words(&body[..end]);
    let engine = words.first().copied().unwrap_or(b"#!");
    if engine != b"#!lua" {
        return Err(error_with(b"ERR Unexpected engine in script shebang: ", engine));
    }
    for word in &words[1..] {
        if let Some(list) = word.strip_prefix(b"flags=") {
            if list.is_empty() {
                continue;
            }
            for name in list.split(|&b| b == b',') {
                if !set_flag(&mut flags, name) {
                    return Err(error_with(b"ERR Unexpected flag in script shebang: ", name));
                }
            }
        } else {
            return Err(error_with(b"ERR Unknown lua shebang option: ", word));
        }
    }
    Ok(flags)
}

/// The library name of FUNCTION LOAD's code, checked as Redis 7.0 checks it (in this order).
pub(crate) fn library_name(code: &[u8]) -> Result<Vec<u8>, Frame> {
    if !code.starts_with(b"#!") {
        return Err(Frame::error("ERR Missing library metadata"));
    }
    let end = code.iter().position(|&b| b == b'\n').ok_or_else(|| Frame::error("ERR Invalid library metadata"))?;
    let words = first_line_words(&code[..end]);
    let engine = words.first().map_or(&b""[..], |word| &word[2..]);
    let mut name = None;
    for word in words.iter().skip(1) {
        match word.strip_prefix(b"name=") {
            Some(_) if name.is_some() => return Err(Frame::error("ERR Invalid metadata value, name argument was given multiple times")),
            Some(value) => name = Some(value.to_vec()),
            None => return Err(error_with(b"ERR Invalid metadata value given: ", word)),
        }
    }
    let name = name.ok_or_else(|| Frame::error("ERR Library name was not given"))?;
    if !engine.eq_ignore_ascii_case(b"lua") {
        let mut text = b"ERR Engine '".to_vec();
        text.extend_from_slice(engine);
        text.extend_from_slice(b"' not found");
        return Err(Frame::Error(text.into()));
    }
    if !valid_name(&name) {
        return Err(Frame::error(INVALID_NAME));
    }
    Ok(name)
}

/// Redis's error for a bad library or function name (it says "Library" for both).
pub(crate) const INVALID_NAME: &str = "ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long";

/// Letters, digits and underscores, at least one.
pub(crate) fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The code with its first line blanked (the newline kept), so Lua compiles it with the
/// line numbers of the original.
pub(crate) fn without_shebang(code: &[u8]) -> &[u8] {
    if code.starts_with(b"#!") {
        match code.iter().position(|&b| b == b'\n') {
            Some(end) => &code[end..],
            None => b"",
        }
    } else {
        code
    }
}

fn error_with(prefix: &[u8], detail: &[u8]) -> Frame {
    let mut text = prefix.to_vec();
    text.extend_from_slice(detail);
    Frame::Error(text.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_text(result: Result<ScriptFlags, Frame>) -> String {
        match result {
            Err(Frame::Error(text)) => String::from_utf8_lossy(&text).into_owned(),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn script_without_shebang_has_no_flags() {
        assert_eq!(script_flags(b"return 1").unwrap(), ScriptFlags::default());
    }

    #[test]
    fn shebang_flags_parse() {
        let flags = script_flags(b"#!lua flags=no-writes,allow-oom,allow-stale,no-cluster,allow-cross-slot-keys\nreturn 1").unwrap();
        assert!(flags.shebang && flags.no_writes && flags.allow_oom && flags.allow_stale && flags.no_cluster && flags.allow_cross_slot_keys);
        let flags = script_flags(b"#!lua  flags=no-writes\n").unwrap();
        assert!(flags.no_writes);
        let flags = script_flags(b"#!lua flags=\nreturn 1").unwrap();
        assert!(flags.shebang && !flags.no_writes);
    }

    #[test]
    fn shebang_errors_match_redis() {
        // Texts observed on redis-server 7.0.15.
        assert_eq!(error_text(script_flags(b"#!lua flags=bad\nreturn 1")), "ERR Unexpected flag in script shebang: bad");
        assert_eq!(error_text(script_flags(b"#!lua flags=no-writes,\nreturn 1")), "ERR Unexpected flag in script shebang: ");
        assert_eq!(error_text(script_flags(b"#!notlua\nreturn 1")), "ERR Unexpected engine in script shebang: #!notlua");
        assert_eq!(error_text(script_flags(b"#!lua name=x\nreturn 1")), "ERR Unknown lua shebang option: name=x");
        assert_eq!(error_text(script_flags(b"#!lua")), "ERR Invalid script shebang");
        assert_eq!(error_text(script_flags(b"#!")), "ERR Invalid script shebang");
    }

    #[test]
    fn library_metadata_errors_match_redis() {
        let text = |code: &[u8]| match library_name(code) {
            Err(Frame::Error(text)) => String::from_utf8_lossy(&text).into_owned(),
            other => panic!("expected an error, got {other:?}"),
        };
        assert_eq!(text(b"return 1"), "ERR Missing library metadata");
        assert_eq!(text(b"#!lua\n"), "ERR Library name was not given");
        assert_eq!(text(b"#!\n"), "ERR Library name was not given");
        assert_eq!(text(b"#!lua name=lib"), "ERR Invalid library metadata");
        assert_eq!(text(b"#!lua name=lib foo=bar\n"), "ERR Invalid metadata value given: foo=bar");
        assert_eq!(text(b"#!lua name=a name=b\n"), "ERR Invalid metadata value, name argument was given multiple times");
        assert_eq!(text(b"#!nolua name=lib\n"), "ERR Engine 'nolua' not found");
        assert_eq!(text(b"#!lua name=\n"), INVALID_NAME);
        assert_eq!(library_name(b"#!LUA name=x\n").unwrap(), b"x".to_vec());
        assert_eq!(text(b"#!lua name=bad-name!\n"), INVALID_NAME);
        assert_eq!(library_name(b"#!lua name=lib_1\nx").unwrap(), b"lib_1".to_vec());
    }
}
