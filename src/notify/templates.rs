//! The mail templates (`templates/mail/`): one text and one HTML template per
//! kind of mail (one pair serves every notice about set-aside mail), both
//! filled from the same [`Mail`] view, so the two parts of a
//! `multipart/alternative` can never say different things.
//!
//! The `.html` templates are HTML-escaped by askama (escaping follows the
//! file extension); the `.txt` ones are not escaped, which is right for a
//! `text/plain` part. Nothing here may produce header text: subjects are made
//! in `notify` and cleaned in `compose`.

use askama::Template;
use serde::{Deserialize, Serialize};

/// Which mail is being written; names the template pair and the outbox `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// To the opener of a new ticket: the ticket number and a link.
    Ack,
    /// To staff: a customer opened a ticket.
    NewTicket,
    /// To customers: staff responded.
    Response,
    /// A customer replied on an open ticket.
    CustomerUpdate,
    Closed,
    /// A customer replied on a closed ticket.
    Reopened,
    /// Attachment, internal reference or other update.
    Updated,
    NoticeUnknownSender,
    NoticeRefused,
    NoticeDmarc,
    /// To staff whose mail named a ticket without evidence that they sent it.
    NoticeStaffUnverified,
    /// To a sender who used another user's reply address.
    NoticeTokenMismatch,
    /// To staff whose mail named no ticket.
    NoticeStaffWithoutTicket,
    /// To an address a user asked to add as an alias: the confirmation link.
    NoticeConfirmAlias,
    /// "Forgot password?": the link to set a new password.
    PasswordReset,
    /// A user added in the portal (or re-invited): the link to set a password.
    Invitation,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Ack => "ack",
            Kind::NewTicket => "new_ticket",
            Kind::Response => "response",
            Kind::CustomerUpdate => "customer_update",
            Kind::Closed => "closed",
            Kind::Reopened => "reopened",
            Kind::Updated => "updated",
            Kind::NoticeUnknownSender => "notice_unknown_sender",
            Kind::NoticeRefused => "notice_refused",
            Kind::NoticeDmarc => "notice_dmarc",
            Kind::NoticeStaffUnverified => "notice_staff_unverified",
            Kind::NoticeTokenMismatch => "notice_token_mismatch",
            Kind::NoticeStaffWithoutTicket => "notice_staff_without_ticket",
            Kind::NoticeConfirmAlias => "notice_confirm_alias",
            Kind::PasswordReset => "password_reset",
            Kind::Invitation => "invitation",
        }
    }

    /// How the outbox stores this kind: notices are all one kind there.
    pub fn outbox_kind(self) -> crate::code::OutboxKind {
        use crate::code::OutboxKind as O;
        match self {
            Kind::Ack => O::Ack,
            Kind::NewTicket => O::NewTicket,
            Kind::Response => O::Response,
            Kind::CustomerUpdate => O::CustomerUpdate,
            Kind::Closed => O::Closed,
            Kind::Reopened => O::Reopened,
            Kind::Updated => O::Updated,
            _ => O::Notice,
        }
    }

    /// Notices answer one message of one sender; they are not part of the
    /// ticket's thread (`store::tickets::thread_message_ids` skips them).
    pub fn is_notice(self) -> bool {
        matches!(
            self,
            Kind::NoticeUnknownSender
                | Kind::NoticeRefused
                | Kind::NoticeDmarc
                | Kind::NoticeStaffUnverified
                | Kind::NoticeTokenMismatch
                | Kind::NoticeStaffWithoutTicket
                | Kind::NoticeConfirmAlias
                | Kind::PasswordReset
                | Kind::Invitation
        )
    }
}

/// How the recipient of a ticket mail stands to the ticket: only its opener
/// is told about "your ticket".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Relation {
    /// Opened the ticket (and, for notices, the sender answered).
    #[default]
    Opener,
    /// An administrator of the ticket's team.
    Admin,
    /// A teammate who wrote on the ticket without having opened it.
    Participant,
    Staff,
}

/// One attachment line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileLine {
    pub name: String,
    /// Human-readable size, e.g. "1.2 MB".
    pub size: String,
    /// Why it was refused, in words; `None` when accepted.
    pub refused: Option<String>,
    /// The portal download, for accepted files; shown to staff only.
    pub url: Option<String>,
}

/// Everything a mail template shows. Empty strings mean "not shown". A
/// queued mail keeps it (see [`super::draft`]) but for `said`, which is made
/// again from the rest when the mail is rendered.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Mail {
    /// The recipient's name (empty for unknown senders).
    pub name: String,
    /// The recipient's address (used by notices).
    pub address: String,
    pub for_staff: bool,
    pub relation: Relation,
    /// `[#N]`, empty when the mail is not about a ticket.
    pub tag: String,
    /// The ticket's subject, or for notices the subject of the message answered.
    pub subject: String,
    pub status: String,
    pub team: String,
    pub internal_ref: String,
    /// Who wrote the new message or did the change.
    pub author: String,
    /// The author is support staff.
    pub by_staff: bool,
    /// The new message's text.
    pub body: Option<String>,
    /// Nothing proves the new message came from its author's address.
    pub unverified: bool,
    pub files: Vec<FileLine>,
    /// Attachments not listed in `files` (beyond the list's cap).
    pub more_files: usize,
    /// The recipient's signed deep link.
    pub link: Option<String>,
    pub support_name: String,
    pub sales_contact: String,
    /// Allowed attachment types, e.g. ".pdf, .png" (refusal notices).
    pub allowed: String,
    pub max_size: String,
    /// A notice's localized lines ([`super::lang::said`]).
    #[serde(skip)]
    pub said: super::lang::Said,
}

impl Mail {
    /// Whether the ticket is the recipient's own ("your ticket").
    pub fn yours(&self) -> bool {
        self.relation == Relation::Opener
    }

    /// The download link a file line shows this recipient.
    pub fn download<'a>(&self, f: &'a FileLine) -> Option<&'a str> {
        f.url.as_deref().filter(|_| self.for_staff)
    }
}

macro_rules! template_pair {
    ($text:ident, $html:ident, $text_path:tt, $html_path:tt) => {
        #[derive(Template)]
        #[template(path = $text_path)]
        struct $text<'a> {
            m: &'a Mail,
        }

        #[derive(Template)]
        #[template(path = $html_path)]
        struct $html<'a> {
            m: &'a Mail,
        }
    };
}

template_pair!(AckText, AckHtml, "mail/ack.txt", "mail/ack.html");
template_pair!(NewTicketText, NewTicketHtml, "mail/new_ticket.txt", "mail/new_ticket.html");
template_pair!(ResponseText, ResponseHtml, "mail/response.txt", "mail/response.html");
template_pair!(CustomerUpdateText, CustomerUpdateHtml, "mail/customer_update.txt", "mail/customer_update.html");
template_pair!(ClosedText, ClosedHtml, "mail/closed.txt", "mail/closed.html");
template_pair!(ReopenedText, ReopenedHtml, "mail/reopened.txt", "mail/reopened.html");
template_pair!(UpdatedText, UpdatedHtml, "mail/updated.txt", "mail/updated.html");
// The notices about set-aside mail differ only in their localized words (`Mail::said`).
template_pair!(NoticeText, NoticeHtml, "mail/notice.txt", "mail/notice.html");
template_pair!(RefusedText, RefusedHtml, "mail/notice_refused.txt", "mail/notice_refused.html");
template_pair!(ConfirmAliasText, ConfirmAliasHtml, "mail/notice_confirm_alias.txt", "mail/notice_confirm_alias.html");
template_pair!(PasswordResetText, PasswordResetHtml, "mail/password_reset.txt", "mail/password_reset.html");
template_pair!(InvitationText, InvitationHtml, "mail/invitation.txt", "mail/invitation.html");

/// Renders the text and the HTML part of `kind`.
pub fn render(kind: Kind, m: &Mail) -> askama::Result<(String, String)> {
    fn pair(t: impl Template, h: impl Template) -> askama::Result<(String, String)> {
        Ok((t.render()?, h.render()?))
    }
    match kind {
        Kind::Ack => pair(AckText { m }, AckHtml { m }),
        Kind::NewTicket => pair(NewTicketText { m }, NewTicketHtml { m }),
        Kind::Response => pair(ResponseText { m }, ResponseHtml { m }),
        Kind::CustomerUpdate => pair(CustomerUpdateText { m }, CustomerUpdateHtml { m }),
        Kind::Closed => pair(ClosedText { m }, ClosedHtml { m }),
        Kind::Reopened => pair(ReopenedText { m }, ReopenedHtml { m }),
        Kind::Updated => pair(UpdatedText { m }, UpdatedHtml { m }),
        Kind::NoticeUnknownSender
        | Kind::NoticeDmarc
        | Kind::NoticeStaffUnverified
        | Kind::NoticeTokenMismatch
        | Kind::NoticeStaffWithoutTicket => pair(NoticeText { m }, NoticeHtml { m }),
        Kind::NoticeRefused => pair(RefusedText { m }, RefusedHtml { m }),
        Kind::NoticeConfirmAlias => pair(ConfirmAliasText { m }, ConfirmAliasHtml { m }),
        Kind::PasswordReset => pair(PasswordResetText { m }, PasswordResetHtml { m }),
        Kind::Invitation => pair(InvitationText { m }, InvitationHtml { m }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::lang::{Lang, said};

    const ALL: [Kind; 16] = [
        Kind::Ack,
        Kind::NewTicket,
        Kind::Response,
        Kind::CustomerUpdate,
        Kind::Closed,
        Kind::Reopened,
        Kind::Updated,
        Kind::NoticeUnknownSender,
        Kind::NoticeRefused,
        Kind::NoticeDmarc,
        Kind::NoticeStaffUnverified,
        Kind::NoticeTokenMismatch,
        Kind::NoticeStaffWithoutTicket,
        Kind::NoticeConfirmAlias,
        Kind::PasswordReset,
        Kind::Invitation,
    ];

    /// A mail to a hostile recipient, with the English lines `kind` says.
    fn hostile_as(kind: Kind) -> Mail {
        let m = hostile();
        Mail { said: said(kind, Lang::En, &m), ..m }
    }

    fn hostile() -> Mail {
        Mail {
            name: "Eve <script>alert(1)</script>".into(),
            address: "eve@example.org".into(),
            tag: "[#42]".into(),
            subject: "Printer & <b>fire</b>".into(),
            status: "Waiting for support".into(),
            team: "Acme".into(),
            author: "Eve \"the <i>hacker</i>\"".into(),
            body: Some("line one\n<img src=x onerror=alert(1)>\nline three".into()),
            files: vec![FileLine {
                name: "<evil>.pdf".into(),
                size: "1 KB".into(),
                refused: Some("not a PDF".into()),
                url: None,
            }],
            link: Some("https://portal.example/l/1.2.3.4.sig?a=1&b=2".into()),
            support_name: "Support".into(),
            ..Mail::default()
        }
    }

    #[test]
    fn html_parts_escape_user_text_and_text_parts_keep_it() {
        for kind in ALL {
            let (text, html) = render(kind, &hostile_as(kind)).unwrap();
            assert!(!html.contains("<script>") && !html.contains("<img") && !html.contains("<evil>"), "{kind:?}");
            assert!(!html.contains("<b>fire") && !html.contains("<i>hacker"), "{kind:?}: {html}");
            assert!(text.contains("This message was sent automatically."), "{kind:?}");
            assert!(html.contains("a=1&#38;b=2") || html.contains("a=1&amp;b=2"), "{kind:?}: link is escaped");
            if !kind.is_notice() || kind == Kind::NoticeRefused {
                assert!(text.contains("<img src=x onerror=alert(1)>"), "{kind:?}: text is not escaped");
                assert!(html.contains("line one<br"), "{kind:?}: line breaks survive in HTML");
                assert!(text.contains("[#42]") && html.contains("[#42]"), "{kind:?}");
            }
        }
    }

    #[test]
    fn every_ticket_mail_says_replying_works_and_carries_the_link() {
        for kind in ALL.into_iter().filter(|k| !k.is_notice() || *k == Kind::NoticeRefused) {
            let (text, html) = render(kind, &hostile_as(kind)).unwrap();
            assert!(text.contains("Reply to this email") || text.contains("reply to this email"), "{kind:?}: {text}");
            assert!(text.contains("https://portal.example/l/1.2.3.4.sig?a=1&b=2"), "{kind:?}");
            assert!(html.contains("data-testid=\"deep-link\""), "{kind:?}");
            assert!(text.contains("not a PDF") && html.contains("not a PDF"), "{kind:?}: refusal reasons shown");
        }
        let staff = Mail { for_staff: true, ..hostile() };
        let (text, _) = render(Kind::CustomerUpdate, &staff).unwrap();
        assert!(text.contains("as the support response"), "{text}");
    }

    #[test]
    fn only_the_opener_is_told_about_your_ticket() {
        let ticket_mails = ALL.into_iter().filter(|k| !k.is_notice() && *k != Kind::Ack);
        for kind in ticket_mails {
            for body in [None, Some("Done.".to_string())] {
                for relation in [Relation::Admin, Relation::Participant, Relation::Staff] {
                    let m = Mail { relation, body: body.clone(), by_staff: true, ..hostile() };
                    let (text, html) = render(kind, &m).unwrap();
                    for part in [text, html] {
                        assert!(!part.to_lowercase().contains("your ticket"), "{kind:?} to {relation:?}: {part}");
                    }
                }
            }
        }
        let (text, _) = render(Kind::Response, &hostile()).unwrap();
        assert!(text.contains("responded to your ticket [#42]"), "the opener's own: {text}");
    }
}
