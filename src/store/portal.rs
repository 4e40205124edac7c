//! The portal's ticket listing: team and status filters, five sort orders,
//! full-text search and offset paging, as one query each. Every order ends
//! on the ticket id so pages never overlap, and each order has an index
//! (migration 2) that lets SQLite read one page without sorting the team.
//!
//! A search ([`Search::run`]) keeps the rowids of the first lookup that found
//! anything; the page, the count of matching tickets and the snippets are all
//! read from those. Terms in scripts written with spaces are looked up as
//! whole words, then as word beginnings, in the word index, and only when
//! that finds nothing inside words by the trigram index, whose lists for
//! common Latin trigrams are long; terms in unspaced scripts (Japanese,
//! Thai...) go straight to the trigram index. Terms of fewer than
//! [`MIN_SUBSTRING_CHARS`] are whole words only (trigrams cannot look up one
//! or two characters). User text never reaches FTS5 as query syntax:
//! [`fts_query`] quotes every term. Snippets are cut in Rust from the text
//! read by rowid.
//!
//! A search looks at the [`SEARCH_HITS`] most recent matching texts only
//! (highest rowids first: rows are numbered by ticket, so those of the newest
//! tickets), so a word that is in half the database costs the same as a rare
//! one; [`Search::truncated`] tells the page to say so.

use std::collections::HashMap;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params};

use super::Result;
use super::tickets::{SEARCH_ROW_BITS, TICKET_COLUMNS, Ticket, ticket_row};
use crate::id::{TeamId, TicketId};
use crate::lifecycle::Status;

/// Orders of the ticket list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// Last updated, newest first (the default).
    #[default]
    Updated,
    /// Created, newest first.
    Created,
    /// Subject A to Z (case-insensitive).
    Subject,
    /// Waiting for support, then waiting for customer, then closed; newest first within each.
    Status,
    /// Last updated, oldest first: the staff work queue, longest waiting on top.
    Oldest,
}

impl Sort {
    pub const ALL: [Sort; 5] = [Sort::Updated, Sort::Created, Sort::Subject, Sort::Status, Sort::Oldest];

    pub fn as_str(self) -> &'static str {
        match self {
            Sort::Updated => "updated",
            Sort::Created => "created",
            Sort::Subject => "subject",
            Sort::Status => "status",
            Sort::Oldest => "oldest",
        }
    }

    pub fn parse(s: &str) -> Option<Sort> {
        Sort::ALL.into_iter().find(|o| o.as_str() == s)
    }

    pub fn label(self) -> &'static str {
        match self {
            Sort::Updated => "Last updated",
            Sort::Created => "Created",
            Sort::Subject => "Subject",
            Sort::Status => "Status",
            Sort::Oldest => "Oldest update first",
        }
    }

    fn order_by(self) -> &'static str {
        match self {
            Sort::Updated => "t.updated_at DESC, t.id DESC",
            Sort::Created => "t.created_at DESC, t.id DESC",
            Sort::Subject => "t.subject COLLATE NOCASE, t.id",
            // The status names sort descending in the order people work them.
            Sort::Status => "t.status DESC, t.updated_at DESC, t.id DESC",
            Sort::Oldest => "t.updated_at, t.id",
        }
    }
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// Only this team's tickets; `None` lists every team (staff).
    pub team: Option<TeamId>,
    pub status: Option<Status>,
    pub sort: Sort,
    /// The search box's text, already looked up.
    pub search: Option<Search>,
    pub offset: i64,
    pub limit: i64,
}

/// One line of the list.
#[derive(Debug, Clone)]
pub struct Row {
    pub ticket: Ticket,
    pub team: String,
    pub opener: String,
}

/// The tickets matching `q`, in its order.
pub fn list(c: &Connection, q: &Listing) -> Result<Vec<Row>> {
    let (mut sql, mut args) = selection(q);
    args.push(Value::Integer(q.limit));
    args.push(Value::Integer(q.offset.max(0)));
    let order = q.sort.order_by();
    sql.push_str(&format!(" ORDER BY {order} LIMIT ?{} OFFSET ?{}", args.len() - 1, args.len()));
    let sql = format!(
        "SELECT {TICKET_COLUMNS}, tm.name, CASE WHEN u.name = '' THEN u.email ELSE u.name END
         FROM ({sql}) t JOIN teams tm ON tm.id = t.team_id JOIN users u ON u.id = t.opener_id ORDER BY {order}"
    );
    let mut st = c.prepare_cached(&sql)?;
    let rows = st.query_map(rusqlite::params_from_iter(args), |r| {
        Ok(Row { ticket: ticket_row(r)?, team: r.get(9)?, opener: r.get(10)? })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// How many tickets `q` matches, over all pages.
pub fn count(c: &Connection, q: &Listing) -> Result<i64> {
    let (sql, args) = selection(q);
    let sql = format!("SELECT count(*) FROM ({sql})");
    Ok(c.prepare_cached(&sql)?.query_row(rusqlite::params_from_iter(args), |r| r.get(0))?)
}

/// The tickets `q` selects, unordered: a query and its arguments. The page
/// is chosen from `tickets` alone; names are joined for its rows only.
fn selection(q: &Listing) -> (String, Vec<Value>) {
    let mut args: Vec<Value> = Vec::new();
    let mut sql = match &q.search {
        // CROSS JOIN keeps the candidates outside: at most SEARCH_HITS + 1
        // lookups by id, never a walk over the team's tickets.
        Some(search) => {
            args.push(Value::Text(search.candidates()));
            "SELECT t.* FROM json_each(?1) j CROSS JOIN tickets t ON t.id = j.value WHERE 1".to_string()
        }
        None => "SELECT * FROM tickets t WHERE 1".to_string(),
    };
    if let Some(team) = q.team {
        args.push(Value::Integer(team.0));
        sql.push_str(&format!(" AND t.team_id = ?{}", args.len()));
    }
    if let Some(status) = q.status {
        args.push(Value::Text(status.as_str().into()));
        sql.push_str(&format!(" AND t.status = ?{}", args.len()));
    }
    (sql, args)
}

/// Matching texts (subjects, messages, references, attachment names) a
/// search looks at, newest tickets first.
pub const SEARCH_HITS: i64 = 1000;

/// Shortest term the trigram index can find inside a word.
pub const MIN_SUBSTRING_CHARS: usize = 3;

/// Most terms taken from one search; the rest are ignored.
const MAX_TERMS: usize = 12;

/// The full-text index a query runs on. Both hold the same rows under the same rowids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Index {
    /// `search_trigram`: substrings of three or more characters, any script.
    Trigram,
    /// `search`: whole words (unicode61).
    Words,
}

impl Index {
    fn table(self) -> &'static str {
        match self {
            Index::Trigram => "search_trigram",
            Index::Words => "search",
        }
    }
}

/// What a search box's text asks of the full-text indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The index that answers when the word lookups find nothing.
    pub index: Index,
    /// Every term quoted, all of them required (FTS5's implicit AND).
    pub fts: String,
    /// The terms, for the snippet.
    pub terms: Vec<String>,
    /// Terms shorter than [`MIN_SUBSTRING_CHARS`] left out because longer ones
    /// were given: one index answers a query, and the trigram index cannot
    /// look them up.
    pub left_out: Vec<String>,
    /// Asked of the word index first, in this order, when every term is in a
    /// script written with spaces: the terms as whole words, then as word
    /// prefixes. The first that finds anything answers; a trigram lookup of
    /// common Latin trigrams reads long lists, a word lookup a short one.
    pub words_first: Vec<String>,
}

/// The FTS5 query for the words of `text`, each quoted so that nothing the
/// user types is read as FTS5 syntax (`AND`, `NEAR(`, `*`, `"`, `col:`);
/// `None` when no word is left. Terms of [`MIN_SUBSTRING_CHARS`] or more go
/// to the trigram index (after the word index, see [`Query::words_first`]);
/// a text made only of shorter terms goes to the word index.
pub fn fts_query(text: &str) -> Option<Query> {
    let terms: Vec<&str> = text
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
        .filter(|w| !w.is_empty())
        .take(MAX_TERMS)
        .collect();
    let (long, short): (Vec<&str>, Vec<&str>) = terms.iter().partition(|w| w.chars().count() >= MIN_SUBSTRING_CHARS);
    let quoted = |terms: &[&str], suffix: &str| {
        terms.iter().map(|w| format!("\"{}\"{suffix}", w.replace('"', "\"\""))).collect::<Vec<_>>().join(" ")
    };
    let owned = |terms: &[&str]| terms.iter().map(|w| w.to_string()).collect::<Vec<_>>();
    if !long.is_empty() {
        let words_first = if long.iter().any(|w| w.chars().any(unspaced)) {
            Vec::new()
        } else {
            vec![quoted(&long, ""), quoted(&long, "*")]
        };
        Some(Query {
            index: Index::Trigram,
            fts: quoted(&long, ""),
            terms: owned(&long),
            left_out: owned(&short),
            words_first,
        })
    } else if !short.is_empty() {
        Some(Query {
            index: Index::Words,
            fts: quoted(&short, ""),
            terms: owned(&short),
            left_out: Vec::new(),
            words_first: Vec::new(),
        })
    } else {
        None
    }
}

/// Letters of scripts written without spaces between words (Chinese,
/// Japanese, Thai, Lao, Khmer, Myanmar, Tibetan): the word index keeps a
/// whole run of them as one word, so only the trigram index finds a word inside.
fn unspaced(c: char) -> bool {
    matches!(c as u32,
        0x0E00..=0x0FFF // Thai, Lao, Tibetan
        | 0x1000..=0x109F // Myanmar
        | 0x1780..=0x17FF // Khmer
        | 0x2E80..=0x312F // CJK radicals, punctuation, kana, bopomofo
        | 0x31F0..=0x31FF // katakana extensions
        | 0x3400..=0x4DBF // CJK extension A
        | 0x4E00..=0x9FFF // CJK unified ideographs
        | 0xF900..=0xFAFF // CJK compatibility ideographs
        | 0xFF66..=0xFF9F // halfwidth katakana
        | 0x20000..=0x3FFFF // CJK extensions B and later
    )
}

/// A search run once: the newest matching texts, by rowid.
#[derive(Debug, Clone, Default)]
pub struct Search {
    pub query: Option<Query>,
    /// Rowids of the matching texts, highest (newest ticket) first, at most [`SEARCH_HITS`].
    hits: Vec<i64>,
    /// More than [`SEARCH_HITS`] texts matched: older ones were left out.
    pub truncated: bool,
    /// A ticket named by number (`1234`, `#1234`).
    number: Option<i64>,
}

impl Search {
    pub fn run(c: &Connection, text: &str) -> Result<Search> {
        let query = fts_query(text);
        let mut hits: Vec<i64> = Vec::new();
        if let Some(q) = &query {
            let lookups = q.words_first.iter().map(|fts| (Index::Words, fts)).chain([(q.index, &q.fts)]);
            for (index, fts) in lookups {
                hits = newest_rows(c, index, fts)?;
                if !hits.is_empty() {
                    break;
                }
            }
        }
        let truncated = hits.len() as i64 > SEARCH_HITS;
        hits.truncate(SEARCH_HITS as usize);
        Ok(Search { query, hits, truncated, number: ticket_number(text) })
    }

    /// The ids of the tickets found, as a JSON array for `json_each`.
    fn candidates(&self) -> String {
        let mut ids: Vec<i64> = self.hits.iter().map(|rowid| rowid >> SEARCH_ROW_BITS).collect();
        // Hits come in rowid order, so a ticket's are next to each other.
        ids.dedup();
        if let Some(n) = self.number.filter(|n| !ids.contains(n)) {
            ids.push(n);
        }
        serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into())
    }

    /// Where each of `tickets` matched: its newest matching text, cut to the
    /// match, with the matched parts marked. Tickets found by number only
    /// have none. The text is read by rowid and cut here: a second `MATCH`
    /// per ticket for FTS5's `snippet()` cost about 10 ms each.
    pub fn snippets(&self, c: &Connection, tickets: &[TicketId]) -> Result<HashMap<TicketId, Snippet>> {
        let mut found = HashMap::new();
        let Some(q) = &self.query else { return Ok(found) };
        let mut st = c.prepare_cached("SELECT kind, text FROM search WHERE rowid = ?1")?;
        for &ticket in tickets {
            let Some(&rowid) = self.hits.iter().find(|r| *r >> SEARCH_ROW_BITS == ticket.0) else { continue };
            // A reference replaced since the search ran has no row any more.
            let row =
                st.query_row(params![rowid], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))).optional()?;
            if let Some((kind, text)) = row {
                found.insert(ticket, Snippet { kind, parts: snippet(&text, &q.terms) });
            }
        }
        Ok(found)
    }
}

/// Up to [`SEARCH_HITS`] + 1 rowids matching `fts` in `index`, newest first.
fn newest_rows(c: &Connection, index: Index, fts: &str) -> Result<Vec<i64>> {
    let sql = format!("SELECT rowid FROM {t} WHERE {t} MATCH ?1 ORDER BY rowid DESC LIMIT ?2", t = index.table());
    let mut st = c.prepare_cached(&sql)?;
    let rows = st.query_map(params![fts, SEARCH_HITS + 1], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Where a ticket matched a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippet {
    /// `subject`, `message`, `reference` or `attachment`.
    pub kind: String,
    pub parts: Vec<Marked>,
}

/// A piece of a snippet: stored text, to be escaped, and whether it matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marked {
    pub text: String,
    pub hit: bool,
}

/// Characters of a snippet kept before its first match.
const SNIPPET_BEFORE: usize = 30;
/// Characters of a snippet, at most.
const SNIPPET_CHARS: usize = 110;

/// `text` cut to a window around the first place any of `terms` occurs
/// (case ignored), every occurrence in the window marked, `…` where the text
/// was cut. A text matched only through the index's folding (diacritics)
/// shows its beginning, unmarked.
fn snippet(text: &str, terms: &[String]) -> Vec<Marked> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let terms: Vec<Vec<char>> =
        terms.iter().map(|t| t.chars().collect()).filter(|t: &Vec<char>| !t.is_empty()).collect();
    let same = |a: char, b: char| a == b || a.to_lowercase().eq(b.to_lowercase());
    // The length in chars of the longest term starting at chars[i].
    let match_at = |i: usize| {
        terms
            .iter()
            .filter(|t| chars.len() - i >= t.len() && t.iter().zip(&chars[i..]).all(|(a, (_, b))| same(*a, *b)))
            .map(|t| t.len())
            .max()
    };
    let first = (0..chars.len()).find(|&i| match_at(i).is_some()).unwrap_or(0);
    let start = first.saturating_sub(SNIPPET_BEFORE);
    let end = (start + SNIPPET_CHARS).min(chars.len());
    let byte = |i: usize| chars.get(i).map_or(text.len(), |(b, _)| *b);
    let mut parts: Vec<Marked> = Vec::new();
    let mut push = |from: usize, to: usize, hit: bool| {
        if from < to {
            parts.push(Marked { text: text[byte(from)..byte(to)].to_string(), hit });
        }
    };
    let (mut i, mut plain) = (start, start);
    while i < end {
        match match_at(i) {
            Some(n) => {
                push(plain, i, false);
                push(i, i + n, true);
                i += n;
                plain = i;
            }
            None => i += 1,
        }
    }
    push(plain, end.max(plain), false);
    if start > 0 {
        parts.insert(0, Marked { text: "…".into(), hit: false });
    }
    if end.max(i) < chars.len() {
        parts.push(Marked { text: "…".into(), hit: false });
    }
    parts
}

/// `1234` or `#1234`: the search may name a ticket by number.
fn ticket_number(text: &str) -> Option<i64> {
    text.trim().trim_start_matches('#').parse::<i64>().ok().filter(|n| *n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::TicketId;
    use crate::lifecycle::Role;
    use crate::store::testing;
    use crate::store::tickets::{self, NewAttachment};
    use crate::store::users::{self, NewUser};

    fn query(index: Index, terms: &[&str], left_out: &[&str], words_first: &[&str]) -> Option<Query> {
        let strings = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let fts = terms.iter().map(|t| format!("\"{}\"", t.replace('"', "\"\""))).collect::<Vec<_>>().join(" ");
        Some(Query {
            index,
            fts,
            terms: strings(terms),
            left_out: strings(left_out),
            words_first: strings(words_first),
        })
    }

    #[test]
    fn search_terms_are_quoted_and_routed_by_length_and_script() {
        let latin = |fts: &str| [fts.to_string(), fts.replace("\" ", "\"* ") + "*"];
        let [exact, prefix] = latin("\"foo-bar\" \"baz\"");
        assert_eq!(fts_query("foo-bar: baz"), query(Index::Trigram, &["foo-bar", "baz"], &[], &[&exact, &prefix]));
        let [exact, prefix] = latin("\"say\" \"NEAR(x\"");
        assert_eq!(
            fts_query("say \"hi\" NEAR(x)"),
            query(Index::Trigram, &["say", "NEAR(x"], &["hi"], &[&exact, &prefix])
        );
        assert_eq!(
            fts_query("a\"b\"c"),
            query(Index::Trigram, &["a\"b\"c"], &[], &["\"a\"\"b\"\"c\"", "\"a\"\"b\"\"c\"*"])
        );
        assert_eq!(
            fts_query("印刷でき PC"),
            query(Index::Trigram, &["印刷でき"], &["PC"], &[]),
            "no words in Japanese"
        );
        assert_eq!(fts_query("Rechnung ภาษาไทย"), query(Index::Trigram, &["Rechnung", "ภาษาไทย"], &[], &[]));
        assert_eq!(fts_query("PC OR"), query(Index::Words, &["PC", "OR"], &[], &[]));
        assert_eq!(fts_query("東京"), query(Index::Words, &["東京"], &[], &[]));
        assert_eq!(fts_query("  -- ** "), None);
        assert_eq!(ticket_number("#42"), Some(42));
        assert_eq!(ticket_number("printer"), None);
    }

    #[test]
    fn snippets_are_cut_around_the_first_match_on_char_boundaries() {
        let terms = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let show = |parts: Vec<Marked>| {
            parts.iter().map(|p| if p.hit { format!("[{}]", p.text) } else { p.text.clone() }).collect::<String>()
        };
        // Case ignored, every occurrence in the window marked, stored markup kept as text.
        assert_eq!(show(snippet("a <b>Hit</b> HIT", &terms(&["hit"]))), "a <b>[Hit]</b> [HIT]");
        assert_eq!(show(snippet("Köln ÜBER über", &terms(&["über", "KÖ"]))), "[Kö]ln [ÜBER] [über]");
        // At the start and at the end of a long multi-byte text.
        let long = "日本語".repeat(100);
        let start = show(snippet(&format!("まだ届い{long}"), &terms(&["まだ届い"])));
        assert!(start.starts_with("[まだ届い]日本語") && start.ends_with('…'), "{start}");
        assert_eq!(start.chars().count(), SNIPPET_CHARS + "[]…".chars().count());
        let end = show(snippet(&format!("{long}まだ届い"), &terms(&["まだ届い"])));
        assert!(end.starts_with('…') && end.ends_with("語[まだ届い]"), "{end}");
        assert_eq!(end.chars().count(), SNIPPET_BEFORE + 4 + "…[]".chars().count());
        // A match reaching past the window is marked whole.
        let wide = format!("needle{}needle", "x".repeat(SNIPPET_CHARS - 9));
        assert_eq!(
            show(snippet(&wide, &terms(&["needle"]))),
            format!("[needle]{}[needle]", "x".repeat(SNIPPET_CHARS - 9))
        );
        // Folded by the index only (diacritics): the beginning, unmarked.
        assert_eq!(snippet("Köln", &terms(&["koln"])), vec![Marked { text: "Köln".into(), hit: false }]);
        assert_eq!(snippet("", &terms(&["x"])), Vec::<Marked>::new());
    }

    #[test]
    fn typed_query_syntax_never_errors_nor_acts_as_syntax() {
        let (db, _d) = testing::db();
        db.write(|c| {
            let team = users::create_team(c, "Acme", 0)?;
            let user = users::create_user(
                c,
                &NewUser {
                    email: "a@acme.test",
                    name: "",
                    role: Role::Member,
                    team_id: Some(team),
                    password_hash: None,
                },
                0,
            )?;
            let rock = tickets::create(c, team, user, "rock and roll", "web", 10)?;
            let near = tickets::create(c, team, user, "a b", "web", 20)?;
            let found = |s: &str| -> Result<Vec<TicketId>> {
                let q = Listing { search: Some(Search::run(c, s)?), limit: 10, ..Listing::default() };
                Ok(list(c, &q)?.iter().map(|r| r.ticket.id).collect())
            };
            for typed in [
                "\"",
                "\"\"",
                "AND",
                "OR",
                "NOT",
                "NEAR(a b)",
                "a OR b",
                "text:rock",
                "kind:subject",
                "{text}: rock",
                "^rock",
                "rock*",
                "-rock",
                "+",
                "(",
                ")",
                "'",
                ";--",
                "\0",
                "rock NOT jazz",
                "NEAR(rock roll, 1)",
                "\u{2}rock\u{3}",
            ] {
                assert!(Search::run(c, typed).is_ok(), "{typed:?}");
                found(typed)?;
            }
            assert_eq!(found("AND")?, vec![rock], "AND is a word to find, not an operator");
            assert_eq!(found("rock NOT jazz")?, Vec::<TicketId>::new(), "NOT is a term to find, not an operator");
            assert_eq!(found("NEAR(a b)")?, Vec::<TicketId>::new(), "NEAR is not an operator");
            assert_eq!(found("text:rock")?, Vec::<TicketId>::new(), "no column filter");
            assert_eq!(found("a b")?, vec![near]);
            assert_eq!(found("a OR b")?, Vec::<TicketId>::new(), "OR is a word to find, not an operator");
            Ok::<_, crate::store::StoreError>(())
        })
        .unwrap();
    }

    #[test]
    fn filters_sorts_searches_and_pages() {
        let (db, _d) = testing::db();
        db.write(|c| {
            let a = users::create_team(c, "Acme", 0)?;
            let b = users::create_team(c, "Beta", 0)?;
            let mk = |email: &str, team| {
                users::create_user(
                    c,
                    &NewUser { email, name: "", role: Role::Member, team_id: Some(team), password_hash: None },
                    0,
                )
            };
            let (ua, ub) = (mk("a@acme.test", a)?, mk("b@beta.test", b)?);
            let t1 = tickets::create(c, a, ua, "printer jams", "web", 10)?;
            let t2 = tickets::create(c, a, ua, "Access denied", "web", 20)?;
            let t3 = tickets::create(c, b, ub, "printer on fire", "web", 30)?;
            tickets::set_status(c, t1, Status::Closed, 40)?;
            tickets::set_internal_ref(c, t2, "CRM-77")?;
            let ids = |q: &Listing| -> Result<Vec<TicketId>> { Ok(list(c, q)?.iter().map(|r| r.ticket.id).collect()) };
            let base = Listing { limit: 10, ..Listing::default() };
            assert_eq!(ids(&base)?, vec![t1, t3, t2], "newest update first");
            assert_eq!(ids(&Listing { team: Some(a), ..base.clone() })?, vec![t1, t2]);
            assert_eq!(ids(&Listing { sort: Sort::Created, ..base.clone() })?, vec![t3, t2, t1]);
            assert_eq!(ids(&Listing { sort: Sort::Subject, ..base.clone() })?, vec![t2, t1, t3]);
            assert_eq!(ids(&Listing { sort: Sort::Status, ..base.clone() })?, vec![t3, t2, t1]);
            assert_eq!(ids(&Listing { sort: Sort::Oldest, ..base.clone() })?, vec![t2, t3, t1]);
            assert_eq!(count(c, &base)?, 3);
            assert_eq!(count(c, &Listing { team: Some(a), limit: 1, ..base.clone() })?, 2, "all pages");
            assert_eq!(count(c, &Listing { status: Some(Status::WaitingForSupport), ..base.clone() })?, 2);
            assert_eq!(ids(&Listing { status: Some(Status::Closed), ..base.clone() })?, vec![t1]);
            let searching = |s: &str, team| -> Result<Listing> {
                Ok(Listing { search: Some(Search::run(c, s)?), team, ..base.clone() })
            };
            let search = |s: &str, team| ids(&searching(s, team)?);
            assert_eq!(search("PRINTER", Some(a))?, vec![t1], "other teams' tickets never match");
            assert_eq!(count(c, &searching("PRINTER", Some(a))?)?, 1);
            assert_eq!(search("crm-77", None)?, vec![t2], "the internal reference is searched");
            tickets::set_internal_ref(c, t2, "ERP-12")?;
            assert_eq!(search("crm-77", None)?, Vec::<TicketId>::new(), "a replaced reference is forgotten");
            assert_eq!(search("erp-1", None)?, vec![t2]);
            assert_eq!(search(&format!("#{t3}"), None)?, vec![t3]);
            assert_eq!(search("foo-bar: NEAR(", None)?, Vec::<TicketId>::new(), "syntax is not interpreted");
            assert!(!Search::run(c, "printer")?.truncated);
            assert_eq!(search("printer", None)?, vec![t1, t3]);
            assert_eq!(count(c, &searching("printer", None)?)?, 2);
            // Substrings in any script, without diacritics or case, and attachment names.
            let t4 = tickets::create(c, a, ua, "プリンターが動きません", "web", 50)?;
            tickets::index_text(c, t4, "message", "昨日から印刷できない。Druckerpatrone für Köln")?;
            tickets::add_attachment(
                c,
                &NewAttachment {
                    ticket_id: t4,
                    message_id: None,
                    filename: "Rechnung_2026-11.pdf",
                    size: 1,
                    detected: None,
                    sha256: None,
                    refused: None,
                },
                50,
            )?;
            for typed in ["印刷でき", "リンター", "patrone", "KOLN", "für", "rechnung_2026", "2026-11.pdf"] {
                assert_eq!(search(typed, None)?, vec![t4], "{typed}");
            }
            assert_eq!(search("印刷", None)?, Vec::<TicketId>::new(), "two characters match whole words only");
            let snippets = Search::run(c, "印刷でき")?.snippets(c, &[t4, t1])?;
            assert_eq!(snippets.len(), 1, "t1 did not match");
            let s = &snippets[&t4];
            assert_eq!(s.kind, "message");
            let hits: Vec<&str> = s.parts.iter().filter(|p| p.hit).map(|p| p.text.as_str()).collect();
            assert_eq!(hits, ["印刷でき"], "{s:?}");
            assert!(s.parts.iter().any(|p| !p.hit && p.text.contains("昨日から")), "{s:?}");
            assert_eq!(Search::run(c, "rechnung")?.snippets(c, &[t4])?[&t4].kind, "attachment");
            // Only the newest matching texts are looked at.
            for _ in 0..SEARCH_HITS {
                tickets::index_text(c, t3, "message", "printer")?;
            }
            assert!(Search::run(c, "printer")?.truncated);
            assert_eq!(search("printer", None)?, vec![t3], "only the newest tickets' matches are looked at");
            assert_eq!(ids(&Listing { limit: 2, offset: 2, ..base.clone() })?, vec![t3, t2]);
            let row = &list(c, &base)?[0];
            assert_eq!((row.team.as_str(), row.opener.as_str()), ("Acme", "a@acme.test"));
            c.execute_batch("INSERT INTO search_trigram(search_trigram) VALUES ('integrity-check')")?;
            Ok::<_, crate::store::StoreError>(())
        })
        .unwrap();
    }
}
