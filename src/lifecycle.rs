//! Roles, statuses and the ticket life cycle of SPEC.md as a pure table:
//! (event) → new status and who is told. Both the mail pipeline and the web
//! portal go through [`transition`], so the two paths cannot drift apart.

use serde::Serialize;

use crate::id::TeamId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A customer's portal user: sees the team's tickets, told about their own.
    Member,
    /// A customer's administrator: sees and is told about all of the team's tickets.
    Admin,
    /// A support agent: sees every team.
    Staff,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Staff => "staff",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "member" => Some(Role::Member),
            "admin" => Some(Role::Admin),
            "staff" => Some(Role::Staff),
            _ => None,
        }
    }

    pub fn is_staff(self) -> bool {
        self == Role::Staff
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    WaitingForSupport,
    WaitingForCustomer,
    Closed,
}

impl Status {
    pub const ALL: [Status; 3] = [Status::WaitingForSupport, Status::WaitingForCustomer, Status::Closed];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::WaitingForSupport => "waiting_for_support",
            Status::WaitingForCustomer => "waiting_for_customer",
            Status::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Words for people: "Waiting for support".
    pub fn label(self) -> &'static str {
        match self {
            Status::WaitingForSupport => "Waiting for support",
            Status::WaitingForCustomer => "Waiting for customer",
            Status::Closed => "Closed",
        }
    }
}

/// Something that happens to a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A customer opened the ticket (mail or web form).
    Opened,
    /// Staff answered (mail or web).
    StaffResponded,
    /// A customer sent a reply, from any status.
    CustomerReplied,
    /// Someone pressed Close (or staff closed by mail).
    Closed,
    /// Attachments added without a text; status unchanged. (The internal
    /// reference is no event: changing it tells nobody.)
    Updated,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Opened => "opened",
            Event::StaffResponded => "staff_responded",
            Event::CustomerReplied => "customer_replied",
            Event::Closed => "closed",
            Event::Updated => "updated",
        }
    }

    /// A message written by `role` on an existing ticket.
    pub fn reply_by(role: Role) -> Event {
        if role.is_staff() { Event::StaffResponded } else { Event::CustomerReplied }
    }
}

/// Who hears of an event, before the author is taken out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Audience {
    pub staff: bool,
    pub opener: bool,
    pub admins: bool,
    /// The team's customers who wrote on the ticket without having opened it.
    pub participants: bool,
}

/// The outcome of an event: the status afterwards and who is notified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub status: Status,
    pub audience: Audience,
}

/// SPEC.md "Ticket life cycle", with issue 12's participants: whoever wrote
/// on a ticket hears of it like its opener (a new ticket has none yet). The
/// author of the event is never notified of their own action; the opener of
/// a new ticket gets an acknowledgement instead (handled by `notify`). The
/// README's "Notification rules" table is this one, spelled out per kind.
pub fn transition(current: Option<Status>, event: Event) -> Transition {
    let (status, staff, opener, admins) = match event {
        Event::Opened => (Status::WaitingForSupport, true, true, false),
        Event::StaffResponded => (Status::WaitingForCustomer, false, true, true),
        Event::CustomerReplied => (Status::WaitingForSupport, true, true, true),
        Event::Closed => (Status::Closed, true, true, true),
        Event::Updated => (current.unwrap_or(Status::WaitingForSupport), false, true, true),
    };
    let participants = opener && event != Event::Opened;
    Transition { status, audience: Audience { staff, opener, admins, participants } }
}

/// Whether a user may see a ticket of `ticket_team`.
pub fn may_see(role: Role, user_team: Option<TeamId>, ticket_team: TeamId) -> bool {
    role.is_staff() || user_team == Some(ticket_team)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_table() {
        let t = transition(None, Event::Opened);
        assert_eq!(t.status, Status::WaitingForSupport);
        assert!(t.audience.staff && !t.audience.admins && !t.audience.participants);
        let t = transition(Some(Status::WaitingForSupport), Event::StaffResponded);
        assert_eq!(t.status, Status::WaitingForCustomer);
        assert!(!t.audience.staff && t.audience.opener && t.audience.admins && t.audience.participants);
        let t = transition(Some(Status::Closed), Event::CustomerReplied);
        assert_eq!(t.status, Status::WaitingForSupport, "a reply reopens a closed ticket");
        assert_eq!(transition(Some(Status::WaitingForCustomer), Event::Closed).status, Status::Closed);
        let t = transition(Some(Status::WaitingForCustomer), Event::Updated);
        assert_eq!(t.status, Status::WaitingForCustomer);
        assert!(!t.audience.staff);
    }

    #[test]
    fn names_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        for r in [Role::Member, Role::Admin, Role::Staff] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert!(may_see(Role::Staff, None, TeamId(3)));
        assert!(!may_see(Role::Admin, Some(TeamId(2)), TeamId(3)));
    }
}
