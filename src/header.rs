//! Header values ticketgate writes itself: a ticket's subject and new
//! Message-IDs. A leaf, so the ticket actions and the notifications share
//! them without depending on each other.

/// A new unique Message-ID (no brackets) on the support address's domain.
pub fn generate_message_id(support_address: &str, kind: &str) -> String {
    let domain = crate::address::domain(support_address);
    let domain = if domain.is_empty() { "ticketgate.invalid" } else { domain };
    format!("{kind}.{}@{domain}", crate::signing::random_token())
}

/// A subject fit for a ticket: one line, trimmed, bounded, never empty.
pub fn clean_subject(subject: &str) -> String {
    let one_line: String = subject.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let s: String = one_line.split_whitespace().collect::<Vec<_>>().join(" ");
    let s: String = s.chars().take(200).collect();
    if s.is_empty() { "(no subject)".to_string() } else { s }
}
