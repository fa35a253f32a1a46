//! Identifiers: the names of policies and dimensions.
//!
//! An identifier is 1 to [`MAX_NAME_LEN`] bytes of `[a-z0-9_.-]`. Because `=` is not among them, the limit key
//! `"dimension=value"` splits back into its parts unambiguously, whatever the value holds.

use std::fmt;

/// The longest policy or dimension name accepted, in bytes: names are repeated in every key and log entry.
pub const MAX_NAME_LEN: usize = 64;

/// Returns why `name` is not an identifier, or `None` if it is one.
pub(super) fn identifier_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".to_owned());
    }
    if name.len() > MAX_NAME_LEN {
        return Some(format!("is {} bytes long, above the maximum {MAX_NAME_LEN}", name.len()));
    }
    if !name.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-')) {
        return Some(format!(
            "{} is not an identifier (use lowercase letters, digits, `_`, `.` and `-`)",
            Quoted(name)
        ));
    }
    None
}

/// Displays a string from a config or a request quoted and escaped, cut after 64 bytes, for error messages.
pub(crate) struct Quoted<'a>(pub(crate) &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 64;
        if self.0.len() <= SHOWN {
            return write!(f, "{:?}", self.0);
        }
        let mut end = SHOWN;
        while !self.0.is_char_boundary(end) {
            end -= 1;
        }
        write!(f, "{:?}... ({} bytes)", &self.0[..end], self.0.len())
    }
}
