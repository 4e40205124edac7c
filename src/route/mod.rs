//! ROUTE: which ticket a message belongs to. A pure, first-match-wins
//! decision over facts the pipeline gathered beforehand (token check,
//! referenced tickets, subject tag, who the sender is), so every rule is
//! testable without a database.

pub mod token;

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
    /// The ticket the token names: may the sender act on it (same team or staff)?
    pub sender_may_act_on_token_ticket: bool,
    /// A ticket named by In-Reply-To/References, and whether the sender may act on it.
    pub referenced: Option<(i64, bool)>,
    /// A `[#N]` tag in the subject naming an existing ticket, and whether the
    /// sender is a participant of it or on its team.
    pub tagged: Option<(i64, bool)>,
    /// Unknown senders may open tickets (config).
    pub allow_unknown: bool,
}

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// A reply on an existing ticket, and how it was recognised.
    Existing { ticket: i64, by: ThreadedBy },
    /// A new ticket for a known sender (or an unknown one, when allowed).
    NewTicket,
    /// The sender is unknown: notice, nothing created.
    UnknownSender,
    /// A valid token used from an address that may not use it.
    TokenSenderMismatch { ticket: i64 },
    /// Staff wrote to the support address without naming a ticket.
    StaffWithoutTicket,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadedBy {
    Token,
    Reference,
    SubjectTag,
}

/// SPEC.md "Threading", first match wins.
pub fn decide(f: &Facts) -> Route {
    if let Some(t) = f.token {
        // A token belongs to one user; a teammate or staff may use it too
        // (then they are recorded as the author), anyone else may not.
        return if f.sender_is_token_owner || f.sender_may_act_on_token_ticket {
            Route::Existing { ticket: t.ticket, by: ThreadedBy::Token }
        } else {
            Route::TokenSenderMismatch { ticket: t.ticket }
        };
    }
    if let Some((ticket, true)) = f.referenced {
        return Route::Existing { ticket, by: ThreadedBy::Reference };
    }
    if let Some((ticket, true)) = f.tagged {
        return Route::Existing { ticket, by: ThreadedBy::SubjectTag };
    }
    match (f.sender_known, f.sender_is_staff) {
        (true, true) => Route::StaffWithoutTicket,
        (true, false) => Route::NewTicket,
        (false, _) if f.allow_unknown => Route::NewTicket,
        (false, _) => Route::UnknownSender,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Facts {
        Facts { sender_known: true, ..Facts::default() }
    }

    #[test]
    fn token_wins_and_binds_to_its_owner() {
        let token = Some(Token { ticket: 1, user: 2 });
        let f = Facts { token, sender_is_token_owner: true, referenced: Some((9, true)), ..known() };
        assert_eq!(decide(&f), Route::Existing { ticket: 1, by: ThreadedBy::Token });
        let f = Facts { token, sender_may_act_on_token_ticket: true, ..known() };
        assert_eq!(decide(&f), Route::Existing { ticket: 1, by: ThreadedBy::Token }, "a teammate");
        let f = Facts { token, ..Facts::default() };
        assert_eq!(decide(&f), Route::TokenSenderMismatch { ticket: 1 }, "a stranger");
    }

    #[test]
    fn references_then_tag_then_new() {
        assert_eq!(
            decide(&Facts { referenced: Some((4, true)), tagged: Some((5, true)), ..known() }),
            Route::Existing { ticket: 4, by: ThreadedBy::Reference }
        );
        assert_eq!(
            decide(&Facts { referenced: Some((4, false)), tagged: Some((5, true)), ..known() }),
            Route::Existing { ticket: 5, by: ThreadedBy::SubjectTag }
        );
        assert_eq!(
            decide(&Facts { tagged: Some((5, false)), ..known() }),
            Route::NewTicket,
            "tag of someone else's ticket"
        );
        assert_eq!(decide(&Facts::default()), Route::UnknownSender);
        assert_eq!(decide(&Facts { allow_unknown: true, ..Facts::default() }), Route::NewTicket);
        assert_eq!(decide(&Facts { sender_is_staff: true, ..known() }), Route::StaffWithoutTicket);
    }
}
