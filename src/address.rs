//! Email addresses: normalisation (trimmed, lower case: how users are
//! identified) and the `LOCAL+TAG@DOMAIN` reply addresses built on the
//! support address.

/// Trimmed and lower-cased, the form users are stored and compared in.
pub fn normalize(addr: &str) -> String {
    addr.trim().trim_matches(|c| c == '<' || c == '>').trim().to_lowercase()
}

/// Splits `local@domain` at the last `@`; `None` unless both sides are non-empty.
pub fn split(addr: &str) -> Option<(&str, &str)> {
    let (local, domain) = addr.rsplit_once('@')?;
    (!local.is_empty() && !domain.is_empty() && !domain.contains(['<', '>', ' '])).then_some((local, domain))
}

/// `support@d` + `tag` → `support+tag@d`.
pub fn with_tag(support: &str, tag: &str) -> String {
    match split(support) {
        Some((local, domain)) => format!("{local}+{tag}@{domain}"),
        None => support.to_string(),
    }
}

/// The tag of `addr` when it is `support`'s local part plus a `+tag`, on the
/// same domain (compared case-insensitively).
pub fn tag_of<'a>(addr: &'a str, support: &str) -> Option<&'a str> {
    let (local, domain) = split(addr)?;
    let (slocal, sdomain) = split(support)?;
    let (base, tag) = local.split_once('+')?;
    (base.eq_ignore_ascii_case(slocal) && domain.eq_ignore_ascii_case(sdomain) && !tag.is_empty()).then_some(tag)
}

/// The domain of a normalised address.
pub fn domain(addr: &str) -> &str {
    split(addr).map(|(_, d)| d).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip_case_insensitively() {
        let a = with_tag("support@example.com", "12-3-abc");
        assert_eq!(a, "support+12-3-abc@example.com");
        assert_eq!(tag_of("Support+12-3-abc@EXAMPLE.com", "support@example.com"), Some("12-3-abc"));
        assert_eq!(tag_of("support+x@other.com", "support@example.com"), None);
        assert_eq!(tag_of("support@example.com", "support@example.com"), None);
        assert_eq!(tag_of("sales+x@example.com", "support@example.com"), None);
    }

    #[test]
    fn normalises() {
        assert_eq!(normalize("  <Jane.Doe@Example.COM> "), "jane.doe@example.com");
        assert_eq!(split("no-at"), None);
        assert_eq!(domain("a@b.c"), "b.c");
    }
}
