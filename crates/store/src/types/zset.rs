//! The zset value. Placeholder: the data-type work replaces this with the real structure.

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ZSet {}

impl ZSet {
    pub fn len(&self) -> usize {
        0
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The name OBJECT ENCODING reports.
    pub fn encoding_name(&self) -> &'static str {
        "listpack"
    }
}
