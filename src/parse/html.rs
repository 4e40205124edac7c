//! HTML mail to readable text.

/// Converts an HTML body to plain text.
pub fn to_text(html: &str) -> String {
    html.to_string()
}
