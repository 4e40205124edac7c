//! ROUTE: which ticket a message belongs to. A pure, first-match-wins
//! decision over facts the pipeline gathered beforehand (token check,
//! referenced tickets, subject tag, who the sender is), so every rule is
//! testable without a database.

pub mod token;

use crate::id::TicketId;
use token::Token;

/// What the pipeline found out before deciding.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// A reply-address token that verified.
    pub token: Option<Token>,
    /// The token's owner, when the token verified: (user id, is the sender).
    pub sender_is_token_owner: bool,
    /// The sender is a known, active user.
    pub sender_known: bool,
    pub sender_is_staff: bool,
    /// A trusted `Authentication-Results` header proves the From address
    /// ([`crate::policy::sender`]).
    pub sender_authenticated: bool,
    /// The ticket the token names: may the sender act on it (same team or staff)?
    pub sender_may_act_on_token_ticket: bool,
    /// A ticket named by In-Reply-To/References.
    pub referenced: Option<Named>,
    /// A `[#N]` tag in the subject naming an existing ticket.
    pub tagged: Option<Named>,
    /// Unknown senders may open tickets (config).
    pub allow_unknown: bool,
}

/// A ticket a message names, and the sender's relation to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Named {
    pub ticket: TicketId,
    /// The sender may act on it: staff, or (for customers) of its team.
    pub may_act: bool,
    /// The sender has written on it before.
    pub participant: bool,
}

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// A reply on an existing ticket, how it was recognised, and whether
    /// there is evidence that the sender wrote it (else it is shown as
    /// "sender not verified").
    Existing { ticket: TicketId, by: ThreadedBy, verified: bool },
    /// A new ticket for a known sender (or an unknown one, when allowed).
    NewTicket { verified: bool },
    /// The sender is unknown: notice, nothing created.
    UnknownSender,
    /// A valid token used from an address that may not use it.
    TokenSenderMismatch { ticket: TicketId },
    /// Staff wrote to the support address without naming a ticket.
    StaffWithoutTicket,
    /// Staff mail naming a ticket without evidence that staff wrote it.
    StaffUnverified { ticket: TicketId },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadedBy {
    Token,
    Reference,
    SubjectTag,
}

/// SPEC.md "Threading" (first match wins) and "Sender checks" (a message
/// acts as a user only on evidence).
pub fn decide(f: &Facts) -> Route {
    if let Some(t) = f.token {
        // A token belongs to one user and is evidence for them alone; a
        // teammate or staff may use it too (then they are recorded as the
        // author), but acting as them needs evidence of its own.
        return if f.sender_is_token_owner {
            Route::Existing { ticket: t.ticket, by: ThreadedBy::Token, verified: true }
        } else if f.sender_may_act_on_token_ticket {
            act(f, t.ticket, ThreadedBy::Token)
        } else {
            Route::TokenSenderMismatch { ticket: t.ticket }
        };
    }
    if let Some(n) = f.referenced.filter(|n| n.may_act) {
        return act(f, n.ticket, ThreadedBy::Reference);
    }
    if let Some(n) = f.tagged {
        // A participant outside the team (staff, or a customer moved between
        // teams) is recognised by the tag only with evidence.
        if n.may_act || (n.participant && f.sender_authenticated) {
            return act(f, n.ticket, ThreadedBy::SubjectTag);
        }
    }
    match (f.sender_known, f.sender_is_staff) {
        (true, true) => Route::StaffWithoutTicket,
        (true, false) => Route::NewTicket { verified: f.sender_authenticated },
        (false, _) if f.allow_unknown => Route::NewTicket { verified: f.sender_authenticated },
        (false, _) => Route::UnknownSender,
    }
}

/// A sender who may act on `ticket`, with only the header evidence to go by:
/// staff never act without it; a customer's post is marked unverified.
fn act(f: &Facts, ticket: TicketId, by: ThreadedBy) -> Route {
    if f.sender_is_staff && !f.sender_authenticated {
        Route::StaffUnverified { ticket }
    } else {
        Route::Existing { ticket, by, verified: f.sender_authenticated }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::UserId;

    fn known() -> Facts {
        Facts { sender_known: true, ..Facts::default() }
    }

    fn named(ticket: TicketId, may_act: bool) -> Option<Named> {
        Some(Named { ticket, may_act, participant: false })
    }

    #[test]
    fn token_wins_and_binds_to_its_owner() {
        let token = Some(Token { ticket: TicketId(1), user: UserId(2) });
        let f = Facts { token, sender_is_token_owner: true, referenced: named(TicketId(9), true), ..known() };
        assert_eq!(decide(&f), Route::Existing { ticket: TicketId(1), by: ThreadedBy::Token, verified: true });
        let f = Facts { token, sender_may_act_on_token_ticket: true, ..known() };
        assert_eq!(
            decide(&f),
            Route::Existing { ticket: TicketId(1), by: ThreadedBy::Token, verified: false },
            "a teammate, unverified"
        );
        let f = Facts { token, ..Facts::default() };
        assert_eq!(decide(&f), Route::TokenSenderMismatch { ticket: TicketId(1) }, "a stranger");
    }

    #[test]
    fn references_then_tag_then_new() {
        let verified = Facts { sender_authenticated: true, ..known() };
        assert_eq!(
            decide(&Facts {
                referenced: named(TicketId(4), true),
                tagged: named(TicketId(5), true),
                ..verified.clone()
            }),
            Route::Existing { ticket: TicketId(4), by: ThreadedBy::Reference, verified: true }
        );
        assert_eq!(
            decide(&Facts {
                referenced: named(TicketId(4), false),
                tagged: named(TicketId(5), true),
                ..verified.clone()
            }),
            Route::Existing { ticket: TicketId(5), by: ThreadedBy::SubjectTag, verified: true }
        );
        assert_eq!(
            decide(&Facts { tagged: named(TicketId(5), false), ..known() }),
            Route::NewTicket { verified: false },
            "tag of someone else's ticket"
        );
        assert_eq!(decide(&Facts::default()), Route::UnknownSender);
        assert_eq!(decide(&Facts { allow_unknown: true, ..Facts::default() }), Route::NewTicket { verified: false });
        assert_eq!(decide(&Facts { sender_is_staff: true, ..known() }), Route::StaffWithoutTicket);
    }

    #[test]
    fn without_evidence_customers_are_marked_and_staff_never_act() {
        let customer = Facts { referenced: named(TicketId(4), true), ..known() };
        assert_eq!(
            decide(&customer),
            Route::Existing { ticket: TicketId(4), by: ThreadedBy::Reference, verified: false }
        );
        let tagged = Facts { tagged: named(TicketId(5), true), ..known() };
        assert_eq!(
            decide(&tagged),
            Route::Existing { ticket: TicketId(5), by: ThreadedBy::SubjectTag, verified: false }
        );
        let staff = Facts { sender_is_staff: true, ..known() };
        for f in [
            Facts { referenced: named(TicketId(4), true), ..staff.clone() },
            Facts { tagged: named(TicketId(4), true), ..staff.clone() },
            Facts {
                token: Some(Token { ticket: TicketId(4), user: UserId(2) }),
                sender_may_act_on_token_ticket: true,
                ..staff.clone()
            },
        ] {
            assert_eq!(decide(&f), Route::StaffUnverified { ticket: TicketId(4) }, "{f:?}");
            let proven = Facts { sender_authenticated: true, ..f };
            assert!(matches!(decide(&proven), Route::Existing { ticket: TicketId(4), verified: true, .. }));
        }
        let outside = Named { ticket: TicketId(6), may_act: false, participant: true };
        assert_eq!(
            decide(&Facts { tagged: Some(outside), ..known() }),
            Route::NewTicket { verified: false },
            "a participant of another team's ticket needs evidence"
        );
        assert!(matches!(
            decide(&Facts { tagged: Some(outside), sender_authenticated: true, ..known() }),
            Route::Existing { ticket: TicketId(6), verified: true, .. }
        ));
    }
}
