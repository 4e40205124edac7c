//! What the portal's askama templates (templates/web/) see: one struct per
//! page, plus the small helpers that turn stored values into display values.
//! Message bodies are plain text: they are split into text and link
//! segments here and escaped by askama in the template, so nothing a sender
//! wrote is ever rendered as HTML.

use std::sync::LazyLock;

use askama::Template;

use jiff::tz::TimeZone;

use crate::config::Config;
use crate::format::{self, Time};
use crate::id::{MessageId, TeamId, TicketId};
use crate::lifecycle::{Role, Status};
use crate::store::portal::{Index, MIN_SUBSTRING_CHARS, Marked, SEARCH_HITS, Search, Snippet, Sort};
use crate::store::users::{Team, User};

/// The header of every page: who is logged in, the token for the logout
/// form, and the path of the page, so the menu can mark it `aria-current`.
#[derive(Debug, Clone, Default)]
pub struct Nav {
    pub user: Option<String>,
    pub staff: bool,
    /// A customer administrator, who manages their team's users.
    pub admin: bool,
    pub csrf: String,
    current: String,
}

impl Nav {
    pub fn anonymous() -> Nav {
        Nav::default()
    }

    pub fn of(user: &User, csrf: &str) -> Nav {
        Nav {
            user: Some(user.display().to_string()),
            staff: user.role.is_staff(),
            admin: user.role == Role::Admin,
            csrf: csrf.to_string(),
            current: String::new(),
        }
    }

    /// The same header on the page at `path`.
    pub fn at(self, path: &str) -> Nav {
        Nav { current: path.to_string(), ..self }
    }

    /// Whether the menu link to `href` leads to this very page.
    pub fn here(&self, href: &str) -> bool {
        self.current == href
    }
}

/// A plain page: errors, refusals, link problems.
#[derive(Template)]
#[template(path = "web/page.html")]
pub struct Page {
    pub nav: Nav,
    pub title: String,
    pub text: String,
    pub link: Option<(String, String)>,
}

#[derive(Template)]
#[template(path = "web/login.html")]
pub struct Login {
    pub nav: Nav,
    pub csrf: String,
    pub next: String,
    pub email: String,
    pub error: Option<String>,
    /// Why the visitor is here: where the login leads, or what just happened.
    pub notice: Option<String>,
    /// Text typed before the session ran out, carried through the login.
    pub draft: Draft,
}

/// What a reply or new-ticket form held when it could not be taken.
#[derive(Debug, Clone, Default)]
pub struct Draft {
    pub subject: String,
    pub body: String,
}

impl Draft {
    pub fn is_empty(&self) -> bool {
        self.subject.trim().is_empty() && self.body.trim().is_empty()
    }
}

#[derive(Template)]
#[template(path = "web/contact.html")]
pub struct Contact {
    pub nav: Nav,
    pub support: String,
    pub sales: String,
    pub billing: String,
}

/// One choice of a `<select>`.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// How one viewer reads moments: in their time zone (or `web.time_zone`), relative to the request.
pub struct Moments {
    zone: TimeZone,
    now: i64,
}

impl Moments {
    pub fn of(user: &User, config: &Config, now: i64) -> Moments {
        let zone = format::zone(&user.time_zone).or_else(|| format::zone(&config.web.time_zone));
        Moments { zone: zone.unwrap_or(TimeZone::UTC), now }
    }

    pub fn at(&self, unix: i64) -> Time {
        format::time_in(unix, &self.zone, self.now)
    }

    /// How long ago `unix` was, in whole units ("12 min", "5 h", "3 d", "7 wk").
    pub fn age(&self, unix: i64) -> String {
        format::age(self.now.saturating_sub(unix))
    }
}

crate::stable_code! {
    /// What a page says after an action, named in the redirect (`?done=sent`):
    /// one fixed table for every page, so nothing typed into a URL is ever shown.
    pub enum Done {
        Created = "created",
        Sent = "sent",
        Reopened = "reopened",
        Attached = "attached",
        Closed = "closed",
        SentAndClosed = "sent-closed",
        Reference = "reference",
        ZoneSaved = "time-zone",
        LoggedOut = "logged_out",
        PasswordSet = "password_set",
        UserAdded = "added",
        RoleChanged = "role",
        Disabled = "disabled",
        Enabled = "enabled",
        Invited = "invited",
        NotInvited = "not_invited",
    }
}

impl Done {
    /// The word of `?done=`, if it is one of the table's.
    pub fn of(word: &str) -> Option<Done> {
        word.parse().ok()
    }

    /// The sentence for the page the redirect leads to; `ticket` is that
    /// page's ticket, if it is a ticket page.
    pub fn message(self, ticket: Option<TicketId>) -> String {
        match self {
            Done::Created => match ticket {
                Some(id) => format!("Ticket #{id} created."),
                None => "Ticket created.".into(),
            },
            Done::Sent => "Your reply was sent.".into(),
            Done::Reopened => "Your reply was sent and the ticket reopened.".into(),
            Done::Attached => "Your documents were attached.".into(),
            Done::Closed => "The ticket is closed.".into(),
            Done::SentAndClosed => "Your reply was sent and the ticket closed.".into(),
            Done::Reference => "The internal reference was saved.".into(),
            Done::ZoneSaved => "Your time zone was saved.".into(),
            Done::LoggedOut => "You have been logged out.".into(),
            Done::PasswordSet => "Your password has been set. Log in with it.".into(),
            Done::UserAdded => "User added. An invitation to set a password was mailed.".into(),
            Done::RoleChanged => "Role changed.".into(),
            Done::Disabled => "User disabled: they are logged out and can no longer log in or write by mail.".into(),
            Done::Enabled => "User enabled.".into(),
            Done::Invited => "Invitation mailed: the link to set a password works for seven days.".into(),
            Done::NotInvited => "No invitation was mailed: the user is disabled or their address bounces.".into(),
        }
    }
}

pub struct ListRow {
    pub id: TicketId,
    pub subject: String,
    pub status: &'static str,
    pub status_class: &'static str,
    pub team: String,
    pub opener: String,
    /// Author of the newest message; empty when there is none.
    pub last_author: String,
    pub last_by_staff: bool,
    /// Someone else acted since the viewer last opened the ticket.
    pub unread: bool,
    /// How long ago the ticket was opened.
    pub age: String,
    pub created: Time,
    pub updated: Time,
    /// Where a search matched this ticket.
    pub snippet: Option<SnippetView>,
}

/// A search snippet: which text matched and the marked pieces, escaped by
/// askama one by one; the template writes the `<mark>` around the hits.
pub struct SnippetView {
    pub kind: &'static str,
    pub parts: Vec<Marked>,
}

impl From<Snippet> for SnippetView {
    fn from(s: Snippet) -> Self {
        let kind = match s.kind.as_str() {
            "subject" => "Subject",
            "reference" => "Internal reference",
            "attachment" => "Attachment",
            _ => "Message",
        };
        SnippetView { kind, parts: s.parts }
    }
}

/// What a search found, said above the list.
pub struct Matches {
    /// "3 tickets match"; "At least 40 tickets match" when older matches were left out.
    pub summary: String,
    /// How the search was narrowed, for the person to widen or refine it.
    pub notes: Vec<String>,
}

impl Matches {
    pub fn new(search: &Search, count: i64) -> Matches {
        let tickets = if count == 1 { "1 ticket matches".to_string() } else { format!("{count} tickets match") };
        let mut notes = Vec::new();
        if search.truncated {
            notes.push(format!(
                "Only the {SEARCH_HITS} most recent matching texts were searched. Add words to narrow it down."
            ));
        }
        match &search.query {
            Some(q) if !q.left_out.is_empty() => notes
                .push(format!("Left out, shorter than {MIN_SUBSTRING_CHARS} characters: {}.", q.left_out.join(" "))),
            Some(q) if q.index == Index::Words => notes.push(format!(
                "Terms shorter than {MIN_SUBSTRING_CHARS} characters match whole words only; type at least \
                 {MIN_SUBSTRING_CHARS} characters to find text inside words."
            )),
            _ => {}
        }
        let summary = if search.truncated { format!("At least {tickets}") } else { tickets };
        Matches { summary, notes }
    }
}

#[derive(Template)]
#[template(path = "web/list.html")]
pub struct List {
    pub nav: Nav,
    pub heading: String,
    pub q: String,
    pub statuses: Vec<Choice>,
    pub sorts: Vec<Choice>,
    /// Team filter; empty unless the viewer is staff.
    pub teams: Vec<Choice>,
    pub rows: Vec<ListRow>,
    /// "12 tickets", or "3 tickets match" when filtered.
    pub total: String,
    pub page: i64,
    pub prev: Option<String>,
    pub next: Option<String>,
    pub filtered: bool,
    /// The view differs from the viewer's default one ("Reset filters" is offered).
    pub customized: bool,
    /// Set when a search was made.
    pub matches: Option<Matches>,
    /// Sales and Billing addresses, beside a customer's list (staff: `None`).
    pub contacts: Option<(String, String)>,
}

pub struct AttachmentView {
    pub id: i64,
    pub filename: String,
    pub size: String,
    /// Why the file was refused; `None` when it can be downloaded.
    pub refused: Option<String>,
}

pub struct MessageView {
    pub id: MessageId,
    /// The author's display name (the address when there is none).
    pub author: String,
    /// The author's address, shown on hover.
    pub address: String,
    pub role: &'static str,
    pub staff: bool,
    pub via: String,
    /// Mail posted without evidence that its author sent it.
    pub unverified: bool,
    pub when: Time,
    pub body: Vec<Segment>,
    /// What trimming took from the mail, folded under "Show quoted text".
    pub quoted: Vec<Segment>,
    pub attachments: Vec<AttachmentView>,
}

/// One entry of a ticket's thread: a message, or a change of status inline.
pub enum ThreadItem {
    Message(MessageView),
    /// "Closed by Jane Doe", and when.
    Change {
        text: String,
        when: Time,
    },
}

pub struct NoteView {
    pub kind: crate::code::EventKind,
    pub detail: String,
    pub when: Time,
}

#[derive(Template)]
#[template(path = "web/ticket.html")]
pub struct TicketPage {
    pub nav: Nav,
    pub id: TicketId,
    pub subject: String,
    pub status: &'static str,
    pub status_class: &'static str,
    pub closed: bool,
    pub team: String,
    pub opener: String,
    pub created: Time,
    pub updated: Time,
    pub reference: String,
    /// What the last action did ([`Done`]), or how the visitor got here (an
    /// expired link, a kept draft), for the status region.
    pub notice: Option<String>,
    pub thread: Vec<ThreadItem>,
    /// Files not tied to a message.
    pub loose: Vec<AttachmentView>,
    pub notes: Vec<NoteView>,
    /// What the reply box held when the form was refused.
    pub draft: String,
    pub error: Option<String>,
    pub max_size: String,
    pub extensions: String,
}

#[derive(Template)]
#[template(path = "web/new.html")]
pub struct NewTicket {
    pub nav: Nav,
    pub team: String,
    pub subject: String,
    pub body: String,
    pub error: Option<String>,
    /// Set when the form holds a draft kept across a login.
    pub note: Option<String>,
    pub max_size: String,
    pub extensions: String,
}

/// A run of a message body: text, or a link whose text is its address.
pub struct Segment {
    pub text: String,
    pub href: Option<String>,
}

static URL: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r#"(?i)\bhttps?://[^\s<>"'`]+"#).expect("the URL pattern compiles"));

/// Splits text into plain runs and http(s) links. Only http and https become
/// links (never `javascript:` or `data:`); trailing punctuation stays text.
pub fn linkify(text: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut last = 0;
    for m in URL.find_iter(text) {
        let url = m.as_str().trim_end_matches(['.', ',', ';', ':', '!', '?', ')', ']', '}', '\'']);
        if url.len() <= "https://".len() {
            continue;
        }
        if m.start() > last {
            out.push(Segment { text: text[last..m.start()].to_string(), href: None });
        }
        out.push(Segment { text: url.to_string(), href: Some(url.to_string()) });
        last = m.start() + url.len();
    }
    if last < text.len() {
        out.push(Segment { text: text[last..].to_string(), href: None });
    }
    out
}

pub fn role_label(role: &str) -> &'static str {
    match Role::parse(role) {
        Some(Role::Staff) => "Support",
        Some(Role::Admin) => "Administrator",
        Some(Role::Member) => "Member",
        None => "Unknown",
    }
}

/// A CSS class per status, for the badge colour (the text says the status too).
pub fn status_class(s: Status) -> &'static str {
    match s {
        Status::WaitingForSupport => "s-support",
        Status::WaitingForCustomer => "s-customer",
        Status::Closed => "s-closed",
    }
}

/// The status filter's value for every status (an absent one means the viewer's default).
pub const ANY_STATUS: &str = "any";

pub fn status_choices(selected: Option<Status>) -> Vec<Choice> {
    let mut v = vec![Choice { value: ANY_STATUS.into(), label: "Any status".into(), selected: selected.is_none() }];
    v.extend(Status::ALL.into_iter().map(|s| Choice {
        value: s.as_str().into(),
        label: s.label().into(),
        selected: selected == Some(s),
    }));
    v
}

pub fn sort_choices(selected: Sort) -> Vec<Choice> {
    Sort::ALL
        .into_iter()
        .map(|s| Choice { value: s.as_str().into(), label: s.label().into(), selected: s == selected })
        .collect()
}

pub fn team_choices(teams: &[Team], selected: Option<TeamId>) -> Vec<Choice> {
    let mut v = vec![Choice { value: String::new(), label: "All teams".into(), selected: selected.is_none() }];
    v.extend(teams.iter().map(|t| Choice {
        value: t.id.to_string(),
        label: t.name.clone(),
        selected: selected == Some(t.id),
    }));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(text: &str) -> Vec<(String, bool)> {
        linkify(text).into_iter().map(|s| (s.text, s.href.is_some())).collect()
    }

    #[test]
    fn only_http_links_become_links() {
        assert_eq!(
            parts("see https://x.test/a?b=1&c=2. then"),
            vec![("see ".into(), false), ("https://x.test/a?b=1&c=2".into(), true), (". then".into(), false)]
        );
        assert_eq!(
            parts("javascript:alert(1) data:text/html,x"),
            vec![("javascript:alert(1) data:text/html,x".into(), false)]
        );
        assert_eq!(
            parts("<http://a.test/\">x"),
            vec![("<".into(), false), ("http://a.test/".into(), true), ("\">x".into(), false)]
        );
        assert_eq!(parts("http://"), vec![("http://".into(), false)]);
    }

    fn page(m: MessageView) -> TicketPage {
        TicketPage {
            nav: Nav::anonymous(),
            id: TicketId(1),
            subject: "<i>s</i>".into(),
            status: "Closed",
            status_class: "s-closed",
            closed: true,
            team: "t".into(),
            opener: "o".into(),
            created: crate::format::time(0),
            updated: crate::format::time(0),
            reference: String::new(),
            notice: None,
            thread: vec![ThreadItem::Message(m)],
            loose: vec![],
            notes: vec![],
            draft: String::new(),
            error: None,
            max_size: "1 MB".into(),
            extensions: "pdf".into(),
        }
    }

    fn message(body: &str, quoted: &str) -> MessageView {
        MessageView {
            id: MessageId(1),
            author: "<b>".into(),
            address: "jane@acme.test".into(),
            role: "Member",
            staff: false,
            via: "mail".into(),
            unverified: false,
            when: crate::format::time(0),
            body: linkify(body),
            quoted: linkify(quoted),
            attachments: vec![],
        }
    }

    #[test]
    fn the_menu_marks_the_page_it_is_on_and_nothing_else() {
        let contact = |nav: Nav| {
            let p = Contact { nav, support: "s@x.test".into(), sales: "a@x.test".into(), billing: "b@x.test".into() };
            p.render().unwrap()
        };
        let jane = Nav { user: Some("Jane".into()), ..Nav::default() };
        let html = contact(jane.clone().at("/account"));
        assert!(html.contains(r#"<a href="/account" aria-current="page">Your addresses</a>"#), "{html}");
        assert_eq!(html.matches("aria-current").count(), 1, "{html}");
        assert!(!contact(jane.at("/t/1")).contains("aria-current"), "a ticket is no menu page");
        let html = contact(Nav::anonymous().at("/login"));
        assert!(html.contains(r#"<a class="login" href="/login" aria-current="page">"#), "{html}");
    }

    #[test]
    fn bodies_are_escaped_when_rendered() {
        let html = page(message("<script>alert(1)</script> http://x.test/\"onmouseover=\"y", "")).render().unwrap();
        assert!(!html.contains("<script>alert"));
        assert!(!html.contains("<b>") && !html.contains("<i>s"));
        assert!(html.contains("href=\"http://x.test/\""), "{html}");
        assert!(!html.contains("\"onmouseover"));
        assert!(!html.contains("<details"), "nothing trimmed, nothing folded");
    }

    #[test]
    fn quoted_text_is_folded_and_the_address_shows_on_hover() {
        let html = page(message("Thanks.", "> <i>old</i> http://x.test/")).render().unwrap();
        let folded =
            html.split("<details class=\"quoted\"><summary>Show quoted text</summary>").nth(1).expect("folded");
        assert!(
            folded.starts_with("<div class=\"body\">&#62; &#60;i&#62;old&#60;/i&#62; <a href=\"http://x.test/\""),
            "{folded}"
        );
        assert!(html.contains("<span class=\"author\" title=\"jane@acme.test\">"), "{html}");
    }
}
