//! Geo commands. Placeholder: the data-type work fills this family in.

use crate::table::CommandSpec;

pub const COMMANDS: &[CommandSpec] = &[];
