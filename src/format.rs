//! How sizes and moments are written for people: one rule each, the same in
//! notifications, on the portal and on the command line.

use jiff::Timestamp;
use jiff::tz::TimeZone;

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

/// A moment as shown to people: machine-readable (`iso`, RFC 3339 with the
/// offset, for `<time datetime>`), exact with its zone (`exact`, for the
/// `title`), and as read in a sentence or a list cell (`text`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Time {
    pub iso: String,
    pub exact: String,
    pub text: String,
}

/// `unix` seconds in UTC to the minute, for the command line and logs, where
/// there is no viewer's zone and "5 min ago" would go stale; "?" when out of range.
pub fn time(unix: i64) -> Time {
    moment(unix, &TimeZone::UTC, |z| z.strftime("%Y-%m-%d %H:%M UTC").to_string())
}

/// `unix` seconds as seen by a viewer in `zone` at `now`: "just now",
/// "5 min ago", "3 h ago" (same day), "yesterday", "3 Nov" (same year),
/// "3 Nov 2025"; a moment ahead of `now` (another clock) by its date.
pub fn time_in(unix: i64, zone: &TimeZone, now: i64) -> Time {
    let age = now.saturating_sub(unix);
    moment(unix, zone, |z| {
        let today = Timestamp::from_second(now).map(|n| n.to_zoned(zone.clone()).date()).unwrap_or(z.date());
        if (-59..60).contains(&age) {
            "just now".into()
        } else if (60..3600).contains(&age) {
            format!("{} min ago", age / 60)
        } else if age > 0 && z.date() == today {
            format!("{} h ago", age / 3600)
        } else if age > 0 && today.yesterday().is_ok_and(|y| y == z.date()) {
            "yesterday".into()
        } else if z.year() == today.year() {
            z.strftime("%-d %b").to_string()
        } else {
            z.strftime("%-d %b %Y").to_string()
        }
    })
}

/// A span of `seconds` in its largest whole unit: "12 min", "5 h", "3 d", "7 wk" (at least "1 min").
pub fn age(seconds: i64) -> String {
    match seconds.max(60) {
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 86_400 => format!("{} h", s / 3600),
        s if s < 14 * 86_400 => format!("{} d", s / 86_400),
        s => format!("{} wk", s / (7 * 86_400)),
    }
}

fn moment(unix: i64, zone: &TimeZone, text: impl FnOnce(&jiff::Zoned) -> String) -> Time {
    match Timestamp::from_second(unix) {
        Ok(t) => {
            let z = t.to_zoned(zone.clone());
            Time {
                iso: z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
                exact: format!("{} {}", z.strftime("%-d %b %Y %H:%M %:z"), zone.iana_name().unwrap_or("UTC")),
                text: text(&z),
            }
        }
        Err(_) => Time { iso: String::new(), exact: String::new(), text: "?".into() },
    }
}

/// The zone named `name` in the IANA database built into the binary (so a
/// machine without `/usr/share/zoneinfo` reads zones the same); `None` when unknown.
pub fn zone(name: &str) -> Option<TimeZone> {
    TimeZone::get(name.trim()).ok().filter(|_| !name.trim().is_empty())
}

/// Every zone name the database knows, sorted.
pub fn zone_names() -> Vec<String> {
    let mut names: Vec<String> = jiff::tz::db().available().map(|n| n.as_str().to_string()).collect();
    names.sort();
    names
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
        assert_eq!((t.iso.as_str(), t.text.as_str()), ("2026-11-18T11:06:40+00:00", "2026-11-18 11:06 UTC"));
        assert_eq!(time(i64::MAX).text, "?");
    }

    #[test]
    fn times_read_relative_in_the_viewers_zone() {
        let tokyo = zone("Asia/Tokyo").unwrap();
        // 2026-11-18 11:06:40 UTC is 20:06 in Tokyo.
        let at = 1_795_000_000;
        let t = time_in(at, &tokyo, at + 300);
        assert_eq!(t.iso, "2026-11-18T20:06:40+09:00");
        assert_eq!(t.exact, "18 Nov 2026 20:06 +09:00 Asia/Tokyo");
        assert_eq!(t.text, "5 min ago");
        let text = |now: i64, z: &TimeZone| time_in(at, z, now).text;
        assert_eq!(text(at + 30, &tokyo), "just now");
        assert_eq!(text(at - 30, &tokyo), "just now", "a clock a little ahead");
        assert_eq!(text(at + 3 * 3600, &tokyo), "3 h ago", "23:06 in Tokyo, the same day");
        // Four hours later it is past midnight in Tokyo but not in UTC.
        assert_eq!(text(at + 4 * 3600, &tokyo), "yesterday");
        assert_eq!(text(at + 4 * 3600, &TimeZone::UTC), "4 h ago");
        assert_eq!(text(at + 10 * 86_400, &tokyo), "18 Nov");
        assert_eq!(text(at + 60 * 86_400, &tokyo), "18 Nov 2026", "another year");
        assert_eq!(text(at - 86_400, &tokyo), "18 Nov", "ahead of now: the date");
        assert_eq!(time_in(i64::MAX, &tokyo, at).text, "?");
    }

    #[test]
    fn ages_take_their_largest_unit() {
        assert_eq!(
            [age(-5), age(125), age(7200), age(3 * 86_400), age(60 * 86_400)],
            ["1 min", "2 min", "2 h", "3 d", "8 wk"]
        );
    }

    #[test]
    fn zones_come_from_the_built_in_database() {
        assert!(zone("Europe/Berlin").is_some() && zone("UTC").is_some());
        assert!(zone("Mars/Olympus").is_none() && zone("").is_none());
        let names = zone_names();
        assert!(names.len() > 300 && names.iter().any(|n| n == "Asia/Tokyo"));
    }
}
