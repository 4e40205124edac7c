//! What each user last saw of each ticket, and what happened since: the
//! list's unread markers and its "last reply by" column.
//!
//! A view is remembered as the newest message and the newest ticket event the
//! page showed (ids, not a time: a post in the same second as the view must
//! still count as new). A ticket is unread for a user when someone else
//! posted, closed or reopened it after that; a ticket never opened counts
//! everything. The user's own posts and status changes never make it unread.

use std::collections::HashMap;

use rusqlite::{Connection, params};

use super::Result;
use crate::id::{MessageId, TicketId, UserId};
use crate::lifecycle::Role;

/// What the list shows about a ticket's activity for one viewer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    /// The author of the newest message (display name, or the address).
    pub last_author: Option<String>,
    /// Whether that author wrote as support staff.
    pub last_by_staff: bool,
    /// Someone else posted or changed the status since the viewer last opened it.
    pub unread: bool,
}

/// Remembers that `user` saw `ticket` up to `message` and `event` (never moving back).
pub fn mark_seen(
    c: &Connection,
    user: UserId,
    ticket: TicketId,
    message: Option<MessageId>,
    event: Option<i64>,
    now: i64,
) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO ticket_seen(user_id, ticket_id, message_id, event_id, seen_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(user_id, ticket_id) DO UPDATE SET
             message_id = max(message_id, excluded.message_id),
             event_id = max(event_id, excluded.event_id),
             seen_at = excluded.seen_at",
    )?
    .execute(params![user, ticket, message.map_or(0, |m| m.0), event.unwrap_or(0), now])?;
    Ok(())
}

/// The activity of each of `tickets` as `viewer` sees it (one indexed look-up per ticket: a list page's worth).
pub fn of(c: &Connection, viewer: UserId, tickets: &[TicketId]) -> Result<HashMap<TicketId, Activity>> {
    let mut st = c.prepare_cached(
        "SELECT lm.author_role, CASE WHEN u.name = '' THEN u.email ELSE u.name END,
             EXISTS(SELECT 1 FROM messages m WHERE m.ticket_id = ?1 AND m.id > coalesce(s.message_id, 0)
                    AND m.author_id IS NOT ?2)
             OR EXISTS(SELECT 1 FROM ticket_events e WHERE e.ticket_id = ?1 AND e.id > coalesce(s.event_id, 0)
                    AND e.kind IN ('closed', 'reopened') AND e.actor_id IS NOT ?2)
         FROM (SELECT ?1 AS id) t
         LEFT JOIN ticket_seen s ON s.user_id = ?2 AND s.ticket_id = t.id
         LEFT JOIN messages lm ON lm.id = (SELECT max(id) FROM messages WHERE ticket_id = t.id)
         LEFT JOIN users u ON u.id = lm.author_id",
    )?;
    let mut out = HashMap::with_capacity(tickets.len());
    for &ticket in tickets {
        let a = st.query_row(params![ticket, viewer], |r| {
            let role: Option<String> = r.get(0)?;
            Ok(Activity {
                last_author: r.get(1)?,
                last_by_staff: role.as_deref().and_then(Role::parse).is_some_and(Role::is_staff),
                unread: r.get(2)?,
            })
        })?;
        out.insert(ticket, a);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::code::EventKind;
    use crate::lifecycle::{Event, Role};
    use crate::store::testing;
    use crate::store::tickets::{self, NewMessage, Via};
    use crate::store::users::{self, NewUser};

    #[test]
    fn unread_means_someone_else_acted_since_the_last_view() {
        let (db, _d) = testing::db();
        db.write(|c| {
            let team = users::create_team(c, "Acme", 0)?;
            let mk = |email: &str, name: &str, role, team| {
                users::create_user(c, &NewUser { email, name, role, team_id: team, password_hash: None }, 0)
            };
            let jane = mk("jane@acme.test", "Jane Doe", Role::Member, Some(team))?;
            let agent = mk("agent@support.test", "", Role::Staff, None)?;
            let t = tickets::create(c, team, jane, "Printer", "web", 10)?;
            let say = |author: UserId, role: Role| {
                let m = NewMessage {
                    ticket_id: t,
                    author_id: Some(author),
                    author_role: role,
                    via: Via::Web,
                    event: Event::Updated,
                    body: "x",
                    quoted: "",
                    message_id: None,
                    raw: None,
                };
                tickets::add_message(c, &m, 20)
            };
            let first = say(jane, Role::Member)?;
            let activity = |user| -> Result<Activity> { Ok(of(c, user, &[t])?.remove(&t).unwrap()) };
            let a = activity(agent)?;
            assert_eq!((a.last_author.as_deref(), a.last_by_staff, a.unread), (Some("Jane Doe"), false, true));
            assert!(!activity(jane)?.unread, "one's own post is not news");
            mark_seen(c, agent, t, Some(first), None, 30)?;
            assert!(!activity(agent)?.unread, "seen");
            let answer = say(agent, Role::Staff)?;
            let a = activity(agent)?;
            assert_eq!(
                (a.last_author.as_deref(), a.last_by_staff, a.unread),
                (Some("agent@support.test"), true, false)
            );
            assert!(activity(jane)?.unread, "the answer is news to the customer");
            mark_seen(c, jane, t, Some(answer), None, 40)?;
            mark_seen(c, jane, t, Some(first), None, 41)?;
            assert!(!activity(jane)?.unread, "an older view never takes a mark back");
            tickets::add_status_change(c, t, EventKind::Closed, agent, 50)?;
            tickets::add_event(c, t, EventKind::Bounce, "mail bounced", 50)?;
            assert!(activity(jane)?.unread, "closed by someone else");
            assert!(!activity(agent)?.unread, "closed by oneself");
            let last = tickets::events(c, t)?.last().map(|e| e.id);
            mark_seen(c, jane, t, Some(answer), last, 60)?;
            assert!(!activity(jane)?.unread);
            Ok::<_, crate::store::StoreError>(())
        })
        .unwrap();
    }
}
