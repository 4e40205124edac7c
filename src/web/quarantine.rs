//! The staff's quarantine pages: the waiting entries, one entry (headers,
//! trimmed text, attachment verdicts, the raw `.eml`), and its actions
//! (release, delete) through [`crate::quarantine`]. Everyone else gets the
//! same "not found" as for a page that does not exist.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::auth::Viewer;
use super::view::{Moments, Nav};
use super::{WebError, blocking, html, staff_only};
use crate::app::App;
use crate::clock;
use crate::code::QuarantineReason;
use crate::format::{self, Time};
use crate::id::QuarantineId;
use crate::policy::attachments;
use crate::quarantine::{Release, Target, notice_text};
use crate::store::inbound::{self, QuarantineEntry};
use crate::store::users;

/// Entries shown on the list page, newest first.
const LIST_LIMIT: i64 = 200;

pub struct Row {
    pub id: QuarantineId,
    pub reason: QuarantineReason,
    pub sender: String,
    pub subject: String,
    pub arrived: Time,
    pub source: String,
}

#[derive(Template)]
#[template(path = "web/quarantine.html")]
pub struct List {
    pub nav: Nav,
    pub rows: Vec<Row>,
}

pub struct FileVerdict {
    pub name: String,
    pub size: String,
    /// Why it would be refused; `None` when accepted.
    pub refused: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "web/quarantine_entry.html")]
pub struct Entry {
    pub nav: Nav,
    pub id: QuarantineId,
    pub reason: QuarantineReason,
    pub detail: String,
    pub source: String,
    pub sender: String,
    pub subject: String,
    pub arrived: Time,
    pub notice: String,
    pub size: String,
    /// What was done, by whom, when; `None` while waiting.
    pub done: Option<(String, String, Time)>,
    pub headers: String,
    /// The trimmed text, or why there is none.
    pub text: String,
    pub files: Vec<FileVerdict>,
    pub teams: Vec<String>,
}

fn parse_id(s: &str) -> Result<QuarantineId, WebError> {
    s.parse::<i64>().ok().filter(|n| *n > 0).map(QuarantineId).ok_or(WebError::NotFound)
}

/// GET /quarantine.
pub async fn list(State(app): State<App>, viewer: Viewer) -> Result<Response, WebError> {
    staff_only(&viewer)?;
    let db = app.db().clone();
    let entries = blocking(move || Ok(db.with(|c| inbound::quarantined(c, LIST_LIMIT))?)).await?;
    let moments = Moments::of(&viewer.user, app.config(), clock::now());
    let rows = entries
        .into_iter()
        .map(|q| Row {
            id: q.id,
            sender: q.sender.unwrap_or_default(),
            subject: q.subject.unwrap_or_default(),
            arrived: moments.at(q.created_at),
            reason: q.reason,
            source: q.source,
        })
        .collect();
    Ok(html(StatusCode::OK, &List { nav: viewer.nav(), rows }))
}

/// GET /quarantine/{id}.
pub async fn entry(State(app): State<App>, viewer: Viewer, Path(id): Path<String>) -> Result<Response, WebError> {
    staff_only(&viewer)?;
    let id = parse_id(&id)?;
    let nav = viewer.nav();
    let moments = Moments::of(&viewer.user, app.config(), clock::now());
    let page = blocking(move || {
        let (q, stored, teams) = app.db().with(|c| {
            let teams = users::teams(c)?.into_iter().map(|t| t.name).collect::<Vec<_>>();
            Ok((inbound::entry(c, id)?, inbound::raw(c, id)?, teams))
        })?;
        Ok(entry_page(&app, nav, &moments, q, &stored, teams))
    })
    .await?;
    Ok(html(StatusCode::OK, &page))
}

fn entry_page(app: &App, nav: Nav, moments: &Moments, q: QuarantineEntry, stored: &[u8], teams: Vec<String>) -> Entry {
    let headers = String::from_utf8_lossy(crate::parse::header_section(stored)).into_owned();
    // A message kept in a file (too large) is not read whole for this page.
    let parsed = (q.raw_path.is_none() && !stored.is_empty()).then(|| crate::parse::parse(stored).ok()).flatten();
    let text = match (&parsed, &q.raw_path) {
        (Some(p), _) => p.body.clone(),
        (None, Some(_)) => "The message is too large to show here; download it.".into(),
        (None, None) if stored.is_empty() => "The message was deleted.".into(),
        (None, None) => "The message cannot be read; download it to look at it.".into(),
    };
    let files = parsed
        .iter()
        .flat_map(|p| &p.attachments)
        .map(|part| {
            let c = attachments::check(part, &app.config().attachments);
            FileVerdict {
                name: c.filename,
                size: format::size(c.size),
                refused: c.reason.filter(|_| !c.accepted).map(attachments::reason_text),
            }
        })
        .collect();
    Entry {
        nav,
        id: q.id,
        notice: notice_text(&q).to_string(),
        size: match &q.raw_path {
            Some(_) => "kept in a file (over the size limit)".into(),
            None => format::size(u64::try_from(q.stored_bytes).unwrap_or(0)),
        },
        done: q.resolution.map(|r| (r.what, r.by, moments.at(r.at))),
        reason: q.reason,
        detail: q.detail,
        source: q.source,
        sender: q.sender.unwrap_or_default(),
        subject: q.subject.unwrap_or_default(),
        arrived: moments.at(q.created_at),
        headers,
        text,
        files,
        teams,
    }
}

/// GET /quarantine/{id}/raw: the message as a `.eml` download.
pub async fn raw(State(app): State<App>, viewer: Viewer, Path(id): Path<String>) -> Result<Response, WebError> {
    staff_only(&viewer)?;
    let id = parse_id(&id)?;
    let bytes = blocking(move || Ok(app.quarantined_message(id)?)).await?;
    let mut res = bytes.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("message/rfc822"));
    let disposition = super::pages::content_disposition(&format!("quarantine-{id}.eml"));
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&disposition).unwrap_or_else(|_| HeaderValue::from_static("attachment")),
    );
    Ok(res)
}

#[derive(Deserialize)]
pub struct ReleaseForm {
    // Every field has a default, so a customer's post of any form is "not found", not a form error.
    #[serde(default)]
    csrf: String,
    /// `thread`, `ticket` or `team`.
    #[serde(default)]
    target: String,
    #[serde(default)]
    ticket: String,
    #[serde(default)]
    team: String,
    /// Post as this user instead of the sender.
    #[serde(default)]
    as_user: String,
    /// Present when the sender's address becomes that user's alias.
    #[serde(default)]
    alias: Option<String>,
}

/// POST /quarantine/{id}/release.
pub async fn release(
    State(app): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<ReleaseForm>,
) -> Result<Response, WebError> {
    staff_only(&viewer)?;
    let id = parse_id(&id)?;
    viewer.check_csrf(&form.csrf)?;
    let target = match form.target.as_str() {
        "thread" | "" => Target::Thread,
        "ticket" => Target::Ticket(
            form.ticket
                .trim()
                .trim_start_matches('#')
                .parse()
                .map_err(|_| WebError::BadRequest("Give the number of the ticket to post it on.".into()))?,
        ),
        "team" => Target::Team(form.team.trim().to_string()),
        _ => return Err(WebError::BadRequest("Unknown release target.".into())),
    };
    let as_user = Some(form.as_user.trim().to_string()).filter(|s| !s.is_empty());
    let add_alias = form.alias.is_some();
    if add_alias && as_user.is_none() {
        return Err(WebError::BadRequest("Name the user whose alias the sender's address becomes.".into()));
    }
    let by = viewer.user.email.clone();
    let outcome = blocking(move || {
        let r = Release { target, as_user: as_user.as_deref(), add_alias, by: &by };
        app.release(id, &r).map_err(WebError::refusal)
    })
    .await?;
    Ok(match outcome.ticket() {
        Some(t) => Redirect::to(&format!("/t/{t}")).into_response(),
        None => Redirect::to(&format!("/quarantine/{id}")).into_response(),
    })
}

#[derive(Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    csrf: String,
}

/// POST /quarantine/{id}/delete.
pub async fn delete(
    State(app): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<DeleteForm>,
) -> Result<Response, WebError> {
    staff_only(&viewer)?;
    let id = parse_id(&id)?;
    viewer.check_csrf(&form.csrf)?;
    let by = viewer.user.email.clone();
    blocking(move || app.delete_quarantined(id, &by).map_err(WebError::refusal)).await?;
    Ok(Redirect::to("/quarantine").into_response())
}
