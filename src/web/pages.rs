//! The portal's pages: ticket list, ticket, reply/close/attach, internal
//! reference, downloads, new ticket, contact, and the deep-link landing.
//! Reads go straight to the store; every change goes through
//! [`crate::actions`] in one write transaction.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::auth::{self, Viewer, encode};
use super::view::{self, AttachmentView, Contact, ListRow, MessageView, Nav, NewTicket, NoteView, TicketPage};
use super::{WebError, blocking, html, page};
use crate::actions::{self, Post, Upload};
use crate::app::App;
use crate::deeplink::{Link, LinkError};
use crate::id::{MessageId, TeamId, TicketId, UserId};
use crate::lifecycle::Status;
use crate::parse::Part;
use crate::policy::attachments::{self, Checked};
use crate::store::portal::{self, Listing, Sort};
use crate::store::tickets::{self, Ticket};
use crate::store::users::{self, User};
use crate::{clock, format};

/// Tickets per list page.
pub const PAGE_SIZE: i64 = 50;
/// Pages beyond this are not served (offset paging gets slow; search narrows better).
const MAX_PAGE: i64 = 2000;
/// Most files one portal post takes (reply or new ticket).
pub const MAX_POST_FILES: usize = 20;
/// Longest message text one portal post takes, in characters.
pub const MAX_POST_CHARS: usize = 100_000;

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    team: String,
    #[serde(default)]
    page: String,
}

/// GET /: the viewer's team's tickets (staff: every team, or one).
pub async fn list(
    State(pipeline): State<App>,
    viewer: Viewer,
    Query(q): Query<ListQuery>,
) -> Result<Response, WebError> {
    let staff = viewer.user.role.is_staff();
    let status = Status::parse(&q.status);
    let sort = Sort::parse(&q.sort).unwrap_or_default();
    let page = q.page.parse::<i64>().unwrap_or(1).clamp(1, MAX_PAGE);
    let team_filter = if staff { q.team.parse::<TeamId>().ok() } else { viewer.user.team_id };
    let search = q.q.trim().to_string();
    let text = (!search.is_empty()).then(|| search.clone());
    let db = pipeline.db().clone();
    let own_team = viewer.user.team_id;
    let (rows, more, teams, heading, found) = blocking(move || {
        Ok(db.with(|c| {
            let listing = Listing {
                team: team_filter,
                status,
                sort,
                search: text.map(|t| portal::Search::run(c, &t)).transpose()?,
                offset: (page - 1) * PAGE_SIZE,
                limit: PAGE_SIZE + 1,
            };
            let mut rows = portal::list(c, &listing)?;
            let more = rows.len() as i64 > PAGE_SIZE;
            rows.truncate(PAGE_SIZE as usize);
            let found = match &listing.search {
                Some(s) => {
                    let ids: Vec<TicketId> = rows.iter().map(|r| r.ticket.id).collect();
                    Some((portal::count(c, &listing)?, s.snippets(c, &ids)?))
                }
                None => None,
            };
            let teams = if staff { users::teams(c)? } else { Vec::new() };
            let heading = match own_team {
                Some(t) if !staff => format!("Tickets of {}", users::team(c, t)?.name),
                _ => "All tickets".to_string(),
            };
            Ok((rows, more, teams, heading, listing.search.zip(found)))
        })?)
    })
    .await?;
    let (matches, mut snippets) = match found {
        Some((s, (count, snippets))) => (Some(view::Matches::new(&s, count)), snippets),
        None => (None, HashMap::new()),
    };
    let link = |p: i64| {
        let mut s = format!("/?page={p}");
        for (k, v) in [
            ("q", search.as_str()),
            ("status", q.status.as_str()),
            ("sort", q.sort.as_str()),
            ("team", q.team.as_str()),
        ] {
            if !v.is_empty() {
                s.push_str(&format!("&{k}={}", encode(v)));
            }
        }
        s
    };
    let list = view::List {
        nav: viewer.nav(),
        heading,
        q: search.clone(),
        statuses: view::status_choices(status),
        sorts: view::sort_choices(sort),
        teams: if staff { view::team_choices(&teams, team_filter) } else { Vec::new() },
        rows: rows
            .into_iter()
            .map(|r| ListRow {
                id: r.ticket.id,
                subject: r.ticket.subject,
                status: r.ticket.status.label(),
                status_class: view::status_class(r.ticket.status),
                team: r.team,
                opener: r.opener,
                created: format::time(r.ticket.created_at),
                updated: format::time(r.ticket.updated_at),
                snippet: snippets.remove(&r.ticket.id).map(view::SnippetView::from),
            })
            .collect(),
        page,
        prev: (page > 1).then(|| link(page - 1)),
        next: (more && page < MAX_PAGE).then(|| link(page + 1)),
        filtered: !search.is_empty() || status.is_some(),
        matches,
    };
    Ok(html(StatusCode::OK, &list))
}

fn parse_id(s: &str) -> Result<i64, WebError> {
    s.parse::<i64>().ok().filter(|n| *n > 0).ok_or(WebError::NotFound)
}

/// The ticket if `user` may see it; otherwise the same "not found" as a missing one.
fn visible(c: &rusqlite::Connection, user: &User, id: TicketId) -> Result<Ticket, WebError> {
    let t = tickets::get(c, id)?;
    if actions::may_act(user, &t) { Ok(t) } else { Err(WebError::NotFound) }
}

/// GET /t/{id}.
pub async fn ticket(State(pipeline): State<App>, viewer: Viewer, Path(id): Path<String>) -> Result<Response, WebError> {
    let id = parse_id(&id).map(TicketId)?;
    let page = ticket_page(&pipeline, viewer, id, String::new(), None).await?;
    Ok(html(StatusCode::OK, &page))
}

async fn ticket_page(
    pipeline: &App,
    viewer: Viewer,
    id: TicketId,
    draft: String,
    error: Option<String>,
) -> Result<TicketPage, WebError> {
    let db = pipeline.db().clone();
    let (max_size, extensions) = limits(pipeline);
    blocking(move || {
        let (ticket, team, opener, messages, files, notes, names) = db.with(|c| {
            let t = match visible(c, &viewer.user, id) {
                Ok(t) => t,
                Err(e) => return Ok(Err(e)),
            };
            let team = users::team(c, t.team_id)?.name;
            let messages = tickets::messages(c, id)?;
            // Display name and address of each author.
            let mut names: HashMap<UserId, (String, String)> = HashMap::new();
            for uid in messages.iter().filter_map(|m| m.author_id).chain([t.opener_id]) {
                if let std::collections::hash_map::Entry::Vacant(e) = names.entry(uid) {
                    let user = users::by_id(c, uid)?;
                    e.insert((user.display().to_string(), user.email));
                }
            }
            let opener = names.get(&t.opener_id).map(|(name, _)| name.clone()).unwrap_or_default();
            Ok(Ok((t, team, opener, messages, tickets::attachments(c, id)?, tickets::events(c, id)?, names)))
        })??;
        let mut by_message: HashMap<Option<MessageId>, Vec<AttachmentView>> = HashMap::new();
        for a in files {
            by_message.entry(a.message_id).or_default().push(AttachmentView {
                id: a.id,
                filename: a.filename,
                size: format::size(u64::try_from(a.size).unwrap_or(0)),
                refused: a.refused.map(|code| attachments::reason_text(code).to_string()),
            });
        }
        let messages: Vec<MessageView> = messages
            .into_iter()
            .map(|m| MessageView {
                id: m.id,
                author: m
                    .author_id
                    .and_then(|a| names.get(&a).map(|(name, _)| name.clone()))
                    .unwrap_or_else(|| "Unknown sender".into()),
                address: m.author_id.and_then(|a| names.get(&a).map(|(_, email)| email.clone())).unwrap_or_default(),
                role: view::role_label(&m.author_role),
                staff: m.author_role == "staff",
                via: m.via,
                unverified: m.unverified,
                when: format::time(m.created_at),
                body: view::linkify(&m.body),
                quoted: view::linkify(&m.quoted),
                attachments: by_message.remove(&Some(m.id)).unwrap_or_default(),
            })
            .collect();
        let loose = by_message.into_values().flatten().collect();
        Ok(TicketPage {
            nav: viewer.nav(),
            id,
            subject: ticket.subject,
            status: ticket.status.label(),
            status_class: view::status_class(ticket.status),
            closed: ticket.status == Status::Closed,
            team,
            opener,
            created: format::time(ticket.created_at),
            updated: format::time(ticket.updated_at),
            reference: ticket.internal_ref,
            messages,
            loose,
            notes: notes
                .into_iter()
                .map(|n| NoteView { kind: n.kind, detail: n.detail, when: format::time(n.created_at) })
                .collect(),
            draft,
            error,
            max_size,
            extensions,
        })
    })
    .await
}

fn limits(pipeline: &App) -> (String, String) {
    let rules = &pipeline.config().attachments;
    (
        format::size(rules.max_bytes),
        rules.allowed_extensions.iter().map(|e| format!(".{e}")).collect::<Vec<_>>().join(" "),
    )
}

/// A multipart form as posted by the reply and new-ticket pages.
#[derive(Default)]
struct Posted {
    fields: HashMap<String, String>,
    /// The first [`MAX_POST_FILES`] files.
    files: Vec<Part>,
    /// How many files came beyond those (read, not kept).
    extra_files: usize,
}

impl Posted {
    fn field(&self, name: &str) -> &str {
        self.fields.get(name).map(String::as_str).unwrap_or("")
    }
}

/// Reads the whole form (bounded by the body limit); the CSRF field is
/// checked by the caller before anything is acted on.
async fn read_form(mut mp: Multipart) -> Result<Posted, WebError> {
    let mut out = Posted::default();
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(out),
            Err(e) => return Err(multipart_error(e)),
        };
        let name = field.name().unwrap_or("").to_string();
        let filename = field.file_name().map(str::to_string);
        let content_type = field.content_type().map(|s| s.to_ascii_lowercase());
        let bytes = field.bytes().await.map_err(multipart_error)?;
        match filename {
            // A file input left empty still sends an unnamed, empty part.
            Some(f) if f.is_empty() && bytes.is_empty() => {}
            Some(_) if out.files.len() >= MAX_POST_FILES => out.extra_files += 1,
            Some(f) => out.files.push(Part { filename: Some(f), content_type, charset: None, bytes: bytes.to_vec() }),
            None => {
                let text = String::from_utf8(bytes.to_vec())
                    .map_err(|_| WebError::BadRequest("The form was not valid text.".into()))?;
                out.fields.insert(name, text);
            }
        }
    }
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> WebError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE { WebError::TooLarge } else { WebError::BadRequest(e.body_text()) }
}

/// Checks the post's limits (files, text length), then runs every file
/// through the attachment policy; the first problem as a sentence.
fn check_files(pipeline: &App, form: &Posted) -> Result<Vec<Checked>, String> {
    let files = form.files.len() + form.extra_files;
    if files > MAX_POST_FILES {
        return Err(format!("A post takes at most {MAX_POST_FILES} files; {files} were attached. Nothing was sent."));
    }
    if form.field("body").chars().nth(MAX_POST_CHARS).is_some() {
        return Err(format!(
            "The message is longer than {MAX_POST_CHARS} characters: shorten it or attach it as a file. Nothing was sent."
        ));
    }
    let checked: Vec<Checked> =
        form.files.iter().map(|p| attachments::check(p, &pipeline.config().attachments)).collect();
    match checked.iter().find(|c| !c.accepted) {
        Some(c) => {
            let why = c.reason.map(attachments::reason_text).unwrap_or("It was refused.");
            Err(format!("{} was not accepted: {why} Nothing was sent.", c.filename))
        }
        None => Ok(checked),
    }
}

/// POST /t/{id}/reply: Send (post; a customer's reply reopens), or Close
/// (post the text if any, then close). Attachments ride along.
pub async fn reply(
    State(pipeline): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
    mp: Multipart,
) -> Result<Response, WebError> {
    let id = parse_id(&id).map(TicketId)?;
    let form = read_form(mp).await?;
    viewer.check_csrf(form.field("csrf"))?;
    let close = match form.field("action") {
        "close" => true,
        "send" | "" => false,
        _ => return Err(WebError::BadRequest("Unknown action.".into())),
    };
    let body = form.field("body").trim().to_string();
    let checked = check_files(&pipeline, &form);
    let problem = match &checked {
        Err(why) => Some(why.clone()),
        Ok(_) if body.is_empty() && form.files.is_empty() && !close => {
            Some("Write a message or attach a document before sending.".to_string())
        }
        Ok(_) => None,
    };
    if let Some(why) = problem {
        let p = ticket_page(&pipeline, viewer, id, form.field("body").to_string(), Some(why)).await?;
        return Ok(html(StatusCode::UNPROCESSABLE_ENTITY, &p));
    }
    let checked = checked.map_err(WebError::BadRequest)?;
    let p = pipeline.clone();
    let user = viewer.user.clone();
    let anchor = blocking(move || {
        p.db().write(|tx| {
            let env = p.env(clock::now());
            let mut ticket = visible(tx, &user, id)?;
            let uploads: Vec<Upload> = checked
                .into_iter()
                .zip(&form.files)
                .map(|(checked, part)| Upload { checked, bytes: &part.bytes })
                .collect();
            let mut anchor = None;
            if !body.is_empty() {
                let post = Post::web(&user, &body, &uploads);
                let posted = actions::reply(tx, &env, ticket, &post)?;
                anchor = Some(posted.message);
                ticket = posted.ticket;
            } else if !uploads.is_empty() {
                let posted = actions::attach(tx, &env, ticket, &user, &uploads)?;
                anchor = Some(posted.message);
                ticket = posted.ticket;
            }
            if close && ticket.status != Status::Closed {
                actions::close(tx, &env, ticket, &user)?;
            }
            Ok::<_, WebError>(anchor)
        })
    })
    .await?;
    Ok(to_ticket(id, anchor))
}

fn to_ticket(id: TicketId, anchor: Option<MessageId>) -> Response {
    match anchor {
        Some(m) => Redirect::to(&format!("/t/{id}#m{m}")).into_response(),
        None => Redirect::to(&format!("/t/{id}")).into_response(),
    }
}

#[derive(Deserialize)]
pub struct ReferenceForm {
    csrf: String,
    #[serde(default)]
    reference: String,
}

/// POST /t/{id}/reference.
pub async fn reference(
    State(pipeline): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<ReferenceForm>,
) -> Result<Response, WebError> {
    let id = parse_id(&id).map(TicketId)?;
    viewer.check_csrf(&form.csrf)?;
    let reference: String = form.reference.trim().chars().filter(|c| !c.is_control()).take(200).collect();
    let p = pipeline.clone();
    blocking(move || {
        p.db().write(|tx| {
            let ticket = visible(tx, &viewer.user, id)?;
            actions::set_reference(tx, &p.env(clock::now()), ticket, &viewer.user, &reference)?;
            Ok::<_, WebError>(())
        })
    })
    .await?;
    Ok(to_ticket(id, None))
}

/// GET /t/{id}/a/{attachment}: always a download, never shown inline.
pub async fn download(
    State(pipeline): State<App>,
    viewer: Viewer,
    Path((id, attachment)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let (id, attachment) = (parse_id(&id).map(TicketId)?, parse_id(&attachment)?);
    let p = pipeline.clone();
    let (filename, bytes) = blocking(move || {
        let a = p.db().with(|c| {
            let a = tickets::attachment(c, attachment)?;
            Ok((a.ticket_id == id).then_some(a))
        })?;
        let Some(a) = a else { return Err(WebError::NotFound) };
        p.db().with(|c| visible(c, &viewer.user, id).map(|_| ()).map_err(|_| crate::store::StoreError::NotFound))?;
        let Some(sha) = a.sha256 else { return Err(WebError::NotFound) };
        let mut f = p.blobs().open(&sha).map_err(|e| WebError::Internal(format!("blob {sha}: {e}")))?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut bytes).map_err(|e| WebError::Internal(format!("blob {sha}: {e}")))?;
        Ok((a.filename, bytes))
    })
    .await?;
    let disposition = HeaderValue::from_str(&content_disposition(&filename))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    let mut res = bytes.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_DISPOSITION, disposition);
    Ok(res)
}

/// `attachment` with a plain ASCII name (quotes, backslashes and controls
/// replaced) and the exact name in RFC 5987 form.
pub fn content_disposition(filename: &str) -> String {
    let ascii: String = filename
        .chars()
        .map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' })
        .collect();
    let ascii = if ascii.trim().is_empty() { "download".to_string() } else { ascii };
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{}", encode(filename))
}

/// GET /new.
pub async fn new_page(State(pipeline): State<App>, viewer: Viewer) -> Result<Response, WebError> {
    let Some(team) = viewer.user.team_id else { return Ok(staff_cannot_open(&viewer)) };
    let team = team_name(&pipeline, team).await?;
    let (max_size, extensions) = limits(&pipeline);
    let p = NewTicket {
        nav: viewer.nav(),
        team,
        subject: String::new(),
        body: String::new(),
        error: None,
        max_size,
        extensions,
    };
    Ok(html(StatusCode::OK, &p))
}

fn staff_cannot_open(viewer: &Viewer) -> Response {
    let p = view::Page {
        nav: viewer.nav(),
        title: "Tickets are opened by customers".into(),
        text: "Support staff answer tickets; a ticket belongs to the customer team that opens it. \
               Ask the customer to open one, or answer an existing ticket."
            .into(),
        link: Some(("/".into(), "Back to all tickets".into())),
    };
    html(StatusCode::FORBIDDEN, &p)
}

async fn team_name(pipeline: &App, team: TeamId) -> Result<String, WebError> {
    let db = pipeline.db().clone();
    blocking(move || Ok(db.with(|c| users::team(c, team))?.name)).await
}

/// POST /new: opens a ticket for the viewer's team.
pub async fn create(State(pipeline): State<App>, viewer: Viewer, mp: Multipart) -> Result<Response, WebError> {
    let form = read_form(mp).await?;
    viewer.check_csrf(form.field("csrf"))?;
    let Some(team) = viewer.user.team_id else { return Ok(staff_cannot_open(&viewer)) };
    let subject = form.field("subject").trim().to_string();
    let body = form.field("body").trim().to_string();
    let problem = if subject.is_empty() || body.is_empty() {
        Some("Give the ticket a subject and a message.".to_string())
    } else {
        check_files(&pipeline, &form).err()
    };
    if let Some(error) = problem {
        let (max_size, extensions) = limits(&pipeline);
        let p = NewTicket {
            nav: viewer.nav(),
            team: team_name(&pipeline, team).await?,
            subject: form.field("subject").to_string(),
            body: form.field("body").to_string(),
            error: Some(error),
            max_size,
            extensions,
        };
        return Ok(html(StatusCode::UNPROCESSABLE_ENTITY, &p));
    }
    let checked = check_files(&pipeline, &form).map_err(WebError::BadRequest)?;
    let p = pipeline.clone();
    let user = viewer.user.clone();
    let id = blocking(move || {
        p.db().write(|tx| {
            let uploads: Vec<Upload> = checked
                .into_iter()
                .zip(&form.files)
                .map(|(checked, part)| Upload { checked, bytes: &part.bytes })
                .collect();
            let post = Post::web(&user, &body, &uploads);
            Ok::<_, WebError>(actions::open(tx, &p.env(clock::now()), team, &subject, "web", &post)?.ticket.id)
        })
    })
    .await?;
    Ok(to_ticket(id, None))
}

/// GET /contact: Support, Sales and Billing, from the config (public).
pub async fn contact(State(pipeline): State<App>, headers: HeaderMap) -> Result<Response, WebError> {
    let nav = auth::viewer(&pipeline, &headers).await?.map(|v| v.nav()).unwrap_or_else(Nav::anonymous);
    let s = &pipeline.config().support;
    let p =
        Contact { nav, support: s.address.clone(), sales: s.sales_contact.clone(), billing: s.billing_contact.clone() };
    Ok(html(StatusCode::OK, &p))
}

/// GET /l/{token}: a notification's deep link. The signature and expiry are
/// checked before anything else and a bad link's page names nothing of the
/// ticket; a good one still needs a login and a user who may see the ticket.
pub async fn deep_link(
    State(pipeline): State<App>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    let link = match Link::verify(pipeline.keys(), &token, clock::now()) {
        Ok(l) => l,
        Err(LinkError::Invalid) => {
            return Ok(page(
                StatusCode::NOT_FOUND,
                "This link is not valid",
                "The link may have been copied incompletely. Log in to find your tickets.",
                Some(("/", "Go to your tickets")),
            ));
        }
        Err(LinkError::Expired) => {
            return Ok(page(
                StatusCode::GONE,
                "This link has expired",
                "Links in notifications work for a limited time. Log in to find your tickets.",
                Some(("/", "Go to your tickets")),
            ));
        }
    };
    let Some(viewer) = auth::viewer(&pipeline, &headers).await? else {
        return Ok(auth::to_login(&format!("/l/{token}")));
    };
    let db = pipeline.db().clone();
    let anchor = blocking(move || {
        db.with(|c| {
            if visible(c, &viewer.user, link.ticket).is_err() {
                return Ok(Err(WebError::NotFound));
            }
            let in_thread = tickets::messages(c, link.ticket)?.iter().any(|m| m.id == link.message);
            Ok(Ok(in_thread.then_some(link.message)))
        })?
    })
    .await?;
    Ok(to_ticket(link.ticket, anchor))
}

#[cfg(test)]
mod tests {
    use super::content_disposition;

    #[test]
    fn download_names_are_header_safe() {
        assert_eq!(
            content_disposition("a\"b\\c.pdf"),
            "attachment; filename=\"a_b_c.pdf\"; filename*=UTF-8''a%22b%5Cc.pdf"
        );
        assert_eq!(
            content_disposition("Grüße.txt"),
            "attachment; filename=\"Gr__e.txt\"; filename*=UTF-8''Gr%C3%BC%C3%9Fe.txt"
        );
    }
}
