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

#[cfg(test)]
mod tests {
    use super::*;

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
