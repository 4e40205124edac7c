//! The portal's ticket listing: team and status filters, five sort orders,
//! full-text search and offset paging, as one query each. Every order ends
//! on the ticket id so pages never overlap, and each order has an index
//! (migration 2) that lets SQLite read one page without sorting the team.
//!
//! User text never reaches FTS5 as query syntax: [`fts_query`] quotes every
//! term. A search looks at the [`SEARCH_HITS`] most recent matching texts
//! only (highest rowids first: rows are numbered by ticket, so those of the
//! newest tickets), so a word that is in half the database costs
//! the same as a rare one; [`search_truncated`] tells the page to say so.

use rusqlite::Connection;
use rusqlite::types::Value;

use super::Result;
use super::tickets::{SEARCH_ROW_BITS, TICKET_COLUMNS, Ticket, ticket_row};
use crate::id::TeamId;
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
    /// Free text from the search box.
    pub search: Option<String>,
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
    // The page is chosen from `tickets` alone; names are joined for its rows only.
    let Some((mut sql, mut args)) = matching(q) else { return Ok(Vec::new()) };
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

/// How many tickets match `q` on all its pages (its order, offset and limit aside).
pub fn count(c: &Connection, q: &Listing) -> Result<i64> {
    let Some((sql, args)) = matching(q) else { return Ok(0) };
    let sql = sql.replacen("SELECT *", "SELECT count(*)", 1);
    Ok(c.prepare_cached(&sql)?.query_row(rusqlite::params_from_iter(args), |r| r.get(0))?)
}

/// `SELECT * FROM tickets t WHERE …` for the filters and search of `q`, with
/// its arguments; `None` when the search has nothing to look for.
fn matching(q: &Listing) -> Option<(String, Vec<Value>)> {
    let mut sql = "SELECT * FROM tickets t WHERE 1".to_string();
    let mut args: Vec<Value> = Vec::new();
    if let Some(team) = q.team {
        args.push(Value::Integer(team.0));
        sql.push_str(&format!(" AND t.team_id = ?{}", args.len()));
    }
    if let Some(status) = q.status {
        args.push(Value::Text(status.as_str().into()));
        sql.push_str(&format!(" AND t.status = ?{}", args.len()));
    }
    if let Some(text) = q.search.as_deref() {
        let fts = fts_query(text);
        let number = ticket_number(text);
        if fts.is_none() && number.is_none() {
            return None;
        }
        let mut alternatives = Vec::new();
        if let Some(fts) = fts {
            args.push(Value::Text(fts));
            alternatives.push(format!(
                "t.id IN (SELECT rowid >> {SEARCH_ROW_BITS} FROM search WHERE search MATCH ?{} ORDER BY rowid DESC LIMIT {SEARCH_HITS})",
                args.len()
            ));
        }
        if let Some(n) = number {
            args.push(Value::Integer(n));
            alternatives.push(format!("t.id = ?{}", args.len()));
        }
        sql.push_str(&format!(" AND ({})", alternatives.join(" OR ")));
    }
    Some((sql, args))
}

/// Matching texts (subjects, messages, references) a search looks at, newest tickets first.
pub const SEARCH_HITS: i64 = 1000;

/// Whether `text` matches more than [`SEARCH_HITS`] texts, so older matches were left out.
pub fn search_truncated(c: &Connection, text: &str) -> Result<bool> {
    let Some(fts) = fts_query(text) else { return Ok(false) };
    let n: i64 = c
        .prepare_cached("SELECT count(*) FROM (SELECT rowid FROM search WHERE search MATCH ?1 LIMIT ?2)")?
        .query_row(rusqlite::params![fts, SEARCH_HITS + 1], |r| r.get(0))?;
    Ok(n > SEARCH_HITS)
}

/// Most terms taken from one search; the rest are ignored.
const MAX_TERMS: usize = 12;

/// An FTS5 query matching every word of `text` (implicit AND), each quoted so
/// that nothing the user types is read as FTS5 syntax; `None` when no word is left.
pub fn fts_query(text: &str) -> Option<String> {
    let terms: Vec<String> = text
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
        .filter(|w| !w.is_empty())
        .take(MAX_TERMS)
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
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
    use crate::store::tickets;
    use crate::store::users::{self, NewUser};

    #[test]
    fn search_terms_are_quoted() {
        assert_eq!(fts_query("foo-bar: baz"), Some("\"foo-bar\" \"baz\"".into()));
        assert_eq!(fts_query("say \"hi\" NEAR(x)"), Some("\"say\" \"hi\" \"NEAR(x\"".into()));
        assert_eq!(fts_query("  -- ** "), None);
        assert_eq!(ticket_number("#42"), Some(42));
        assert_eq!(ticket_number("printer"), None);
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
            let search = |s: &str, team| ids(&Listing { search: Some(s.into()), team, ..base.clone() });
            assert_eq!(search("PRINTER", Some(a))?, vec![t1], "other teams' tickets never match");
            assert_eq!(search("crm-77", None)?, vec![t2], "the internal reference is searched");
            assert_eq!(search(&format!("#{t3}"), None)?, vec![t3]);
            assert_eq!(search("foo-bar: NEAR(", None)?, Vec::<TicketId>::new(), "syntax is not interpreted");
            assert!(!search_truncated(c, "printer")?);
            assert_eq!(count(c, &Listing { search: Some("printer".into()), ..base.clone() })?, 2);
            assert_eq!(count(c, &Listing { search: Some("--".into()), ..base.clone() })?, 0);
            assert_eq!(search("printer", None)?, vec![t1, t3]);
            for _ in 0..SEARCH_HITS {
                crate::store::tickets::index_text(c, t3, "message", "printer")?;
            }
            assert!(search_truncated(c, "printer")?);
            assert_eq!(search("printer", None)?, vec![t3], "only the newest tickets' matches are looked at");
            assert_eq!(ids(&Listing { limit: 2, offset: 2, ..base.clone() })?, vec![t2]);
            let row = &list(c, &base)?[0];
            assert_eq!((row.team.as_str(), row.opener.as_str()), ("Acme", "a@acme.test"));
            Ok::<_, crate::store::StoreError>(())
        })
        .unwrap();
    }
}
