//! How sizes and moments are written for people: one rule each, the same in
//! notifications, on the portal and on the command line.

/// "512 bytes", "14 KB", "2.5 MB". Rounded up, so a file refused for its
/// size is never shown as smaller than the limit it broke.
pub fn size(bytes: u64) -> String {
    const KB: u64 = 1024;
    const MB: u64 = 1024 * 1024;
    if bytes < KB {
        format!("{bytes} bytes")
    } else if bytes < MB {
        format!("{} KB", bytes.div_ceil(KB))
    } else {
        let tenths = bytes.saturating_mul(10).div_ceil(MB);
        if tenths.is_multiple_of(10) {
            format!("{} MB", tenths / 10)
        } else {
            format!("{}.{} MB", tenths / 10, tenths % 10)
        }
    }
}

/// A moment in UTC: machine-readable (`iso`, for `<time datetime>`) and for people (`text`).
pub struct Time {
    pub iso: String,
    pub text: String,
}

/// `unix` seconds as a [`Time`]; "?" when out of range.
pub fn time(unix: i64) -> Time {
    match chrono::DateTime::from_timestamp(unix, 0) {
        Some(d) => {
            Time { iso: d.format("%Y-%m-%dT%H:%M:%SZ").to_string(), text: d.format("%Y-%m-%d %H:%M UTC").to_string() }
        }
        None => Time { iso: String::new(), text: "?".into() },
    }
}

/// `value` safe to print as one cell of a table: control characters (escape
/// sequences, line breaks, tabs) and bidirectional overrides are shown
/// escaped (`\u{1b}`, `\n`, `\t`), everything else as it is.
pub fn cell(value: &str) -> String {
    let unsafe_char = |c: char| c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    if !value.chars().any(unsafe_char) {
        return value.to_string();
    }
    value.chars().map(|c| if unsafe_char(c) { c.escape_default().to_string() } else { c.to_string() }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_cells_escape_control_characters() {
        assert_eq!(cell("Grüße, Müller"), "Grüße, Müller");
        assert_eq!(cell("\u{1b}]0;owned\u{7}\u{1b}[2Jhi"), "\\u{1b}]0;owned\\u{7}\\u{1b}[2Jhi");
        assert_eq!(cell("a\tb\r\nc\u{9b}d"), "a\\tb\\r\\nc\\u{9b}d");
        assert_eq!(cell("photo\u{202E}gpj.exe"), "photo\\u{202e}gpj.exe");
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(size(12), "12 bytes");
        assert_eq!(size(1500), "2 KB");
        assert_eq!(size(15 * 1024 * 1024), "15 MB");
        assert_eq!(size(2_621_440), "2.5 MB");
    }

    #[test]
    fn times_are_utc_to_the_minute() {
        let t = time(1_795_000_000);
        assert_eq!((t.iso.as_str(), t.text.as_str()), ("2026-11-18T11:06:40Z", "2026-11-18 11:06 UTC"));
        assert_eq!(time(i64::MAX).text, "?");
    }
}
