//! Sender authenticity: the trusted `Authentication-Results` check.
//!
//! Only a header whose authserv-id is configured as trusted is believed;
//! anyone can write an `Authentication-Results` header into their own mail,
//! so an untrusted one is ignored entirely.

/// Whether a trusted `Authentication-Results` header reports `dmarc=fail`.
pub fn dmarc_fails(results: &[String], trusted: &[String]) -> bool {
    results.iter().any(|r| {
        let mut parts = r.splitn(2, ';');
        let authserv = parts.next().unwrap_or("").split_whitespace().next().unwrap_or("");
        trusted.iter().any(|t| t.eq_ignore_ascii_case(authserv))
            && parts.next().unwrap_or("").split(';').any(|m| {
                let m = m.trim().to_ascii_lowercase();
                m.starts_with("dmarc=fail")
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_trusted_headers_count() {
        let trusted = vec!["mx.example.com".to_string()];
        let fail =
            vec!["mx.example.com; spf=pass smtp.mailfrom=x; dmarc=fail (p=reject) header.from=bank.com".to_string()];
        assert!(dmarc_fails(&fail, &trusted));
        let forged = vec!["evil.example; dmarc=fail header.from=x".to_string()];
        assert!(!dmarc_fails(&forged, &trusted));
        let pass = vec!["MX.example.com 1; dmarc=pass header.from=x".to_string()];
        assert!(!dmarc_fails(&pass, &trusted));
        assert!(!dmarc_fails(&fail, &[]));
    }
}
