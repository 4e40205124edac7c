//! The portal's pages: ticket list, ticket, reply/close/attach, internal
//! reference, downloads, new ticket, contact, and the deep-link landing.
//! Reads go straight to the store; every change goes through
//! [`crate::actions`] in one write transaction.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Multipart, Path, Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::auth::{self, Viewer, encode};
use super::view::{
    self, AttachmentView, Contact, Done, Draft, ListRow, MessageView, Moments, Nav, NewTicket, NoteView, ThreadItem,
    TicketPage,
};
use super::{WebError, blocking, html, page};
use crate::actions::{self, Post, Upload};
use crate::app::App;
use crate::code::EventKind;
use crate::deeplink::{Link, LinkError};
use crate::id::{MessageId, TeamId, TicketId, UserId};
use crate::lifecycle::Status;
use crate::parse::Part;
use crate::policy::attachments::{self, Checked};
use crate::store::activity;
use crate::store::portal::{self, Listing, Sort};
use crate::store::sessions;
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

/// The list's query as the user last set it, kept between visits so that
/// "Tickets" in the menu comes back to it: `USER_ID/QUERY`, so that another
/// user of the same browser starts from their own default.
const LIST_COOKIE: &str = "tg_list";

/// GET /: the viewer's team's tickets (staff: every team, or one). Staff see
/// their work queue by default (waiting for support, oldest update first),
/// customers every status, newest update first. Without a query the
/// remembered one applies; `/?reset` goes back to the default.
pub async fn list(
    State(pipeline): State<App>,
    viewer: Viewer,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    Query(asked): Query<ListQuery>,
) -> Result<Response, WebError> {
    let own = format!("{}/", viewer.user.id);
    let saved = auth::cookie(&headers, LIST_COOKIE).and_then(|c| c.strip_prefix(&own).map(str::to_string));
    let explicit = raw.is_some_and(|r| !r.is_empty());
    let q = match &saved {
        Some(saved) if !explicit => format!("/?{saved}")
            .parse()
            .ok()
            .and_then(|uri| Query::<ListQuery>::try_from_uri(&uri).ok())
            .map_or_else(ListQuery::default, |Query(q)| q),
        _ => asked,
    };
    let staff = viewer.user.role.is_staff();
    let status = match q.status.as_str() {
        "" if staff => Some(Status::WaitingForSupport),
        s => Status::parse(s),
    };
    let sort = Sort::parse(&q.sort).unwrap_or(if staff { Sort::Oldest } else { Sort::Updated });
    let page = q.page.parse::<i64>().unwrap_or(1).clamp(1, MAX_PAGE);
    let team_filter = if staff { q.team.parse::<TeamId>().ok() } else { viewer.user.team_id };
    let search = q.q.trim().to_string();
    let text = (!search.is_empty()).then(|| search.clone());
    let db = pipeline.db().clone();
    let (own_team, me) = (viewer.user.team_id, viewer.user.id);
    let (mut rows, total, mut activity, teams, heading, found) = blocking(move || {
        Ok(db.with(|c| {
            let listing = Listing {
                team: team_filter,
                status,
                sort,
                search: text.map(|t| portal::Search::run(c, &t)).transpose()?,
                offset: (page - 1) * PAGE_SIZE,
                limit: PAGE_SIZE + 1,
            };
            let rows = portal::list(c, &listing)?;
            let total = portal::count(c, &listing)?;
            let ids: Vec<TicketId> = rows.iter().map(|r| r.ticket.id).collect();
            let activity = activity::of(c, me, &ids)?;
            let found = match listing.search {
                Some(s) => {
                    let snippets = s.snippets(c, &ids)?;
                    Some((s, snippets))
                }
                None => None,
            };
            let teams = if staff { users::teams(c)? } else { Vec::new() };
            let heading = match own_team {
                Some(t) if !staff => format!("Tickets of {}", users::team(c, t)?.name),
                _ => "All tickets".to_string(),
            };
            Ok((rows, total, activity, teams, heading, found))
        })?)
    })
    .await?;
    let more = rows.len() as i64 > PAGE_SIZE;
    rows.truncate(PAGE_SIZE as usize);
    let (matches, mut snippets) = match found {
        Some((s, snippets)) => (Some(view::Matches::new(&s, total)), snippets),
        None => (None, HashMap::new()),
    };
    let filters = query_string(&[
        ("q", search.as_str()),
        ("status", q.status.as_str()),
        ("sort", q.sort.as_str()),
        ("team", q.team.as_str()),
    ]);
    let link = |p: i64| if filters.is_empty() { format!("/?page={p}") } else { format!("/?page={p}&{filters}") };
    let filtered = !search.is_empty() || status.is_some() || (staff && team_filter.is_some());
    let moments = Moments::of(&viewer.user, pipeline.config(), clock::now());
    let support = &pipeline.config().support;
    let list = view::List {
        nav: viewer.nav(),
        heading,
        q: search.clone(),
        statuses: view::status_choices(status),
        sorts: view::sort_choices(sort),
        teams: if staff { view::team_choices(&teams, team_filter) } else { Vec::new() },
        rows: rows
            .into_iter()
            .map(|r| {
                let a = activity.remove(&r.ticket.id);
                ListRow {
                    id: r.ticket.id,
                    subject: r.ticket.subject,
                    status: r.ticket.status.label(),
                    status_class: view::status_class(r.ticket.status),
                    team: r.team,
                    opener: r.opener,
                    last_author: a.as_ref().and_then(|a| a.last_author.clone()).unwrap_or_default(),
                    last_by_staff: a.as_ref().is_some_and(|a| a.last_by_staff),
                    unread: a.is_some_and(|a| a.unread),
                    age: moments.age(r.ticket.created_at),
                    created: moments.at(r.ticket.created_at),
                    updated: moments.at(r.ticket.updated_at),
                    snippet: snippets.remove(&r.ticket.id).map(view::SnippetView::from),
                }
            })
            .collect(),
        total: match (total, filtered) {
            (1, true) => "1 ticket matches".into(),
            (n, true) => format!("{n} tickets match"),
            (1, false) => "1 ticket".into(),
            (n, false) => format!("{n} tickets"),
        },
        page,
        prev: (page > 1).then(|| link(page - 1)),
        next: (more && page < MAX_PAGE).then(|| link(page + 1)),
        filtered,
        customized: !filters.is_empty(),
        matches,
        contacts: (!staff).then(|| (support.sales_contact.clone(), support.billing_contact.clone())),
    };
    let mut res = html(StatusCode::OK, &list);
    let changed = match &saved {
        Some(saved) => *saved != filters,
        None => !filters.is_empty(),
    };
    if explicit && changed {
        let ttl = if filters.is_empty() { 0 } else { auth::ttl_seconds(pipeline.config()) };
        let cookie = auth::set_cookie(pipeline.config(), LIST_COOKIE, &format!("{own}{filters}"), "/", ttl);
        res.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(res)
}

/// `k=v&…` of the pairs whose value is not empty, percent-encoded.
fn query_string(pairs: &[(&str, &str)]) -> String {
    pairs.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| format!("{k}={}", encode(v))).collect::<Vec<_>>().join("&")
}

fn parse_id(s: &str) -> Result<i64, WebError> {
    s.parse::<i64>().ok().filter(|n| *n > 0).ok_or(WebError::NotFound)
}

/// The ticket if `user` may see it; otherwise the same "not found" as a missing one.
fn visible(c: &rusqlite::Connection, user: &User, id: TicketId) -> Result<Ticket, WebError> {
    let t = tickets::get(c, id)?;
    if actions::may_act(user, &t) { Ok(t) } else { Err(WebError::NotFound) }
}

#[derive(Deserialize, Default)]
pub struct DoneQuery {
    /// What the action before the redirect did (a word of a fixed table, never shown as it is).
    #[serde(default)]
    pub(super) done: String,
}

#[derive(Deserialize, Default)]
pub struct TicketQuery {
    #[serde(default)]
    done: String,
    /// `link_expired`: the visitor came by a deep link that had expired.
    #[serde(default)]
    note: String,
}

/// Says that the text in the form is a draft kept across a login.
const DRAFT_KEPT: &str = "The text you typed before logging in is back in the form. It has not been sent yet.";

/// The draft kept for this session and page, if any (taken: shown once).
async fn take_draft(pipeline: &App, viewer: &Viewer, path: String) -> Result<Option<Draft>, WebError> {
    let (db, session) = (pipeline.db().clone(), viewer.session.clone());
    let kept = blocking(move || Ok(db.write(|tx| sessions::take_draft(tx, &session, &path))?)).await?;
    Ok(kept.map(|(subject, body)| Draft { subject, body }))
}

/// GET /t/{id}: the ticket, which from now on counts as seen by the viewer
/// up to what the page shows.
pub async fn ticket(
    State(pipeline): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(q): Query<TicketQuery>,
) -> Result<Response, WebError> {
    let id = parse_id(&id).map(TicketId)?;
    let draft = take_draft(&pipeline, &viewer, format!("/t/{id}")).await?;
    let notice = match (&draft, q.note.as_str()) {
        (Some(_), _) => Some(DRAFT_KEPT.to_string()),
        (None, "link_expired") => Some("The link you followed had expired; here is the ticket it led to.".to_string()),
        _ => Done::of(&q.done).map(|d| d.message(Some(id))),
    };
    let page = ticket_page(&pipeline, viewer, id, notice, draft.map(|d| d.body).unwrap_or_default(), None).await?;
    Ok(html(StatusCode::OK, &page))
}

async fn ticket_page(
    pipeline: &App,
    viewer: Viewer,
    id: TicketId,
    notice: Option<String>,
    draft: String,
    error: Option<String>,
) -> Result<TicketPage, WebError> {
    let db = pipeline.db().clone();
    let (max_size, extensions) = limits(pipeline);
    let moments = Moments::of(&viewer.user, pipeline.config(), clock::now());
    blocking(move || {
        let (ticket, team, opener, messages, files, notes, names) = db.with(|c| {
            let t = match visible(c, &viewer.user, id) {
                Ok(t) => t,
                Err(e) => return Ok(Err(e)),
            };
            let team = users::team(c, t.team_id)?.name;
            let messages = tickets::messages(c, id)?;
            let notes = tickets::events(c, id)?;
            // Display name and address of each author and of whoever changed the status.
            let mut names: HashMap<UserId, (String, String)> = HashMap::new();
            let people = messages.iter().filter_map(|m| m.author_id).chain(notes.iter().filter_map(|n| n.actor_id));
            for uid in people.chain([t.opener_id]) {
                if let std::collections::hash_map::Entry::Vacant(e) = names.entry(uid) {
                    let user = users::by_id(c, uid)?;
                    e.insert((user.display().to_string(), user.email));
                }
            }
            let opener = names.get(&t.opener_id).map(|(name, _)| name.clone()).unwrap_or_default();
            Ok(Ok((t, team, opener, messages, tickets::attachments(c, id)?, notes, names)))
        })??;
        let (last_message, last_event) = (messages.last().map(|m| m.id), notes.last().map(|n| n.id));
        db.write(|tx| activity::mark_seen(tx, viewer.user.id, id, last_message, last_event, clock::now()))?;
        let mut by_message: HashMap<Option<MessageId>, Vec<AttachmentView>> = HashMap::new();
        for a in files {
            by_message.entry(a.message_id).or_default().push(AttachmentView {
                id: a.id,
                filename: a.filename,
                size: format::size(u64::try_from(a.size).unwrap_or(0)),
                refused: a.refused.map(|code| attachments::reason_text(code).to_string()),
            });
        }
        let name = |user: Option<UserId>| user.and_then(|a| names.get(&a).map(|(name, _)| name.clone()));
        // Messages in their order, each status change after the message
        // that was newest when it happened (a reply, then the close it came with).
        let mut thread: Vec<((i64, i64), ThreadItem)> = messages
            .into_iter()
            .map(|m| {
                let key = (m.id.0, 0);
                let view = MessageView {
                    id: m.id,
                    author: name(m.author_id).unwrap_or_else(|| "Unknown sender".into()),
                    address: m
                        .author_id
                        .and_then(|a| names.get(&a).map(|(_, email)| email.clone()))
                        .unwrap_or_default(),
                    role: view::role_label(&m.author_role),
                    staff: m.author_role == "staff",
                    via: m.via,
                    unverified: m.unverified,
                    when: moments.at(m.created_at),
                    body: view::linkify(&m.body),
                    quoted: view::linkify(&m.quoted),
                    attachments: by_message.remove(&Some(m.id)).unwrap_or_default(),
                };
                (key, ThreadItem::Message(view))
            })
            .collect();
        let (changes, notes): (Vec<_>, Vec<_>) = notes.into_iter().partition(|n| n.kind.is_status_change());
        thread.extend(changes.into_iter().map(|n| {
            let verb = if n.kind == EventKind::Closed { "Closed" } else { "Reopened" };
            let who = name(n.actor_id).unwrap_or_else(|| "someone".into());
            let key = (n.after_message.map_or(0, |m| m.0), n.id);
            (key, ThreadItem::Change { text: format!("{verb} by {who}"), when: moments.at(n.created_at) })
        }));
        // Message ids and event ids both grow; a change sorts after its message (whose second part is 0).
        thread.sort_by_key(|(key, _)| *key);
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
            created: moments.at(ticket.created_at),
            updated: moments.at(ticket.updated_at),
            reference: ticket.internal_ref,
            notice,
            thread: thread.into_iter().map(|(_, item)| item).collect(),
            loose,
            notes: notes
                .into_iter()
                .map(|n| NoteView { kind: n.kind, detail: n.detail, when: moments.at(n.created_at) })
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

/// The viewer of a post, or the page that keeps what was typed: the login
/// form when the session has ended, `form_again` when the form's token has.
async fn poster<F>(
    pipeline: &App,
    headers: &HeaderMap,
    path: &str,
    form: &Posted,
    form_again: impl FnOnce(Viewer, String) -> F,
) -> Result<Result<Viewer, Response>, WebError>
where
    F: std::future::Future<Output = Result<Response, WebError>>,
{
    let files = form.files.len() + form.extra_files;
    let Some(viewer) = auth::viewer(pipeline, headers).await? else {
        let draft = Draft { subject: form.field("subject").to_string(), body: form.field("body").to_string() };
        return Ok(Err(auth::login_keeping(pipeline, path, draft, files)));
    };
    if viewer.check_csrf(form.field("csrf")).is_ok() {
        return Ok(Ok(viewer));
    }
    let mut why =
        "This form had expired, so nothing was sent. Your text is kept below: check it and send again.".to_string();
    if files > 0 {
        why.push_str(" Attached files cannot be kept: attach them again.");
    }
    Ok(Err(form_again(viewer, why).await?))
}

/// POST /t/{id}/reply: Send (post; a customer's reply reopens), or Close
/// (the text and files, if any, posted with the close as one action).
pub async fn reply(
    State(pipeline): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
    mp: Multipart,
) -> Result<Response, WebError> {
    let id = parse_id(&id).map(TicketId)?;
    let form = read_form(mp).await?;
    let again = |viewer, why| async {
        let p = ticket_page(&pipeline, viewer, id, None, form.field("body").to_string(), Some(why)).await?;
        Ok(html(StatusCode::FORBIDDEN, &p))
    };
    let viewer = match poster(&pipeline, &headers, &format!("/t/{id}"), &form, again).await? {
        Ok(v) => v,
        Err(page) => return Ok(page),
    };
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
        let p = ticket_page(&pipeline, viewer, id, None, form.field("body").to_string(), Some(why)).await?;
        return Ok(html(StatusCode::UNPROCESSABLE_ENTITY, &p));
    }
    let checked = checked.map_err(WebError::BadRequest)?;
    let p = pipeline.clone();
    let user = viewer.user.clone();
    let (anchor, done) = blocking(move || {
        p.db().write(|tx| {
            let env = p.env(clock::now());
            let ticket = visible(tx, &user, id)?;
            let was_closed = ticket.status == Status::Closed;
            let uploads: Vec<Upload> = checked
                .into_iter()
                .zip(&form.files)
                .map(|(checked, part)| Upload { checked, bytes: &part.bytes })
                .collect();
            // Send and close is one action: one mail to each person.
            let post = Post { close, ..Post::web(&user, &body, &uploads) };
            let posted = if !body.is_empty() {
                Some(actions::reply(tx, &env, ticket, &post)?)
            } else if !uploads.is_empty() {
                Some(actions::attach(tx, &env, ticket, &post)?)
            } else {
                if close && !was_closed {
                    actions::close(tx, &env, ticket, &user)?;
                }
                None
            };
            let reopened = was_closed && posted.as_ref().is_some_and(|p| p.ticket.status != Status::Closed);
            let anchor = posted.map(|p| p.message);
            let done = match (anchor.is_some(), close) {
                // Nothing posted: Close alone (or on a ticket closed meanwhile).
                (false, _) => Done::Closed,
                (true, true) => Done::SentAndClosed,
                (true, false) if reopened => Done::Reopened,
                (true, false) if body.is_empty() => Done::Attached,
                (true, false) => Done::Sent,
            };
            Ok::<_, WebError>((anchor, done))
        })
    })
    .await?;
    Ok(to_ticket(id, anchor, Some(done)))
}

/// Back to the ticket after an action, saying what was done (and at the new message, if any).
fn to_ticket(id: TicketId, anchor: Option<MessageId>, done: Option<Done>) -> Response {
    let done = done.map(|d| format!("?done={}", d.as_str())).unwrap_or_default();
    let anchor = anchor.map(|m| format!("#m{m}")).unwrap_or_default();
    Redirect::to(&format!("/t/{id}{done}{anchor}")).into_response()
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
            actions::set_reference(tx, ticket, &reference)?;
            Ok::<_, WebError>(())
        })
    })
    .await?;
    Ok(to_ticket(id, None, Some(Done::Reference)))
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
    let draft = take_draft(&pipeline, &viewer, "/new".into()).await?;
    let note = draft.is_some().then(|| DRAFT_KEPT.to_string());
    let draft = draft.unwrap_or_default();
    let p = new_ticket(&pipeline, &viewer, team, draft, None, note).await?;
    Ok(html(StatusCode::OK, &p))
}

async fn new_ticket(
    pipeline: &App,
    viewer: &Viewer,
    team: TeamId,
    draft: Draft,
    error: Option<String>,
    note: Option<String>,
) -> Result<NewTicket, WebError> {
    let (max_size, extensions) = limits(pipeline);
    Ok(NewTicket {
        nav: viewer.nav(),
        team: team_name(pipeline, team).await?,
        subject: draft.subject,
        body: draft.body,
        error,
        note,
        max_size,
        extensions,
    })
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

/// The new-ticket form again, holding what was posted.
async fn new_again(
    pipeline: &App,
    viewer: Viewer,
    form: &Posted,
    status: StatusCode,
    error: String,
) -> Result<Response, WebError> {
    let Some(team) = viewer.user.team_id else { return Ok(staff_cannot_open(&viewer)) };
    let draft = Draft { subject: form.field("subject").to_string(), body: form.field("body").to_string() };
    let p = new_ticket(pipeline, &viewer, team, draft, Some(error), None).await?;
    Ok(html(status, &p))
}

/// POST /new: opens a ticket for the viewer's team.
pub async fn create(State(pipeline): State<App>, headers: HeaderMap, mp: Multipart) -> Result<Response, WebError> {
    let form = read_form(mp).await?;
    let again = |viewer, why| new_again(&pipeline, viewer, &form, StatusCode::FORBIDDEN, why);
    let viewer = match poster(&pipeline, &headers, "/new", &form, again).await? {
        Ok(v) => v,
        Err(page) => return Ok(page),
    };
    let Some(team) = viewer.user.team_id else { return Ok(staff_cannot_open(&viewer)) };
    let subject = form.field("subject").trim().to_string();
    let body = form.field("body").trim().to_string();
    let problem = if subject.is_empty() || body.is_empty() {
        Some("Give the ticket a subject and a message.".to_string())
    } else {
        check_files(&pipeline, &form).err()
    };
    if let Some(error) = problem {
        return new_again(&pipeline, viewer, &form, StatusCode::UNPROCESSABLE_ENTITY, error).await;
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
    Ok(to_ticket(id, None, Some(Done::Created)))
}

/// GET /contact: Support, Sales and Billing, from the config (public).
pub async fn contact(State(pipeline): State<App>, headers: HeaderMap) -> Result<Response, WebError> {
    let nav = auth::viewer(&pipeline, &headers).await?.map(|v| v.nav()).unwrap_or_else(Nav::anonymous).at("/contact");
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
    let Ok(link) = Link::signed(pipeline.keys(), &token) else {
        return Ok(page(
            StatusCode::NOT_FOUND,
            "This link is not valid",
            "The link may have been copied incompletely. Log in to find your tickets.",
            Some(("/", "Go to your tickets")),
        ));
    };
    let expired = Link::verify(pipeline.keys(), &token, clock::now()) == Err(LinkError::Expired);
    let Some(viewer) = auth::viewer(&pipeline, &headers).await? else {
        if expired {
            let next = encode(&format!("/t/{}", link.ticket));
            return Ok(Redirect::to(&format!("/login?next={next}&reason=expired")).into_response());
        }
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
    if expired {
        return Ok(Redirect::to(&format!("/t/{}?note=link_expired", link.ticket)).into_response());
    }
    Ok(to_ticket(link.ticket, anchor, None))
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
