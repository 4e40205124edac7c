//! Alias addresses in the portal. Every user sees their own on "Your
//! addresses" and asks for another: it counts only once the signed link
//! mailed to it ([`AliasLink`]) is opened by the same user, logged in, and
//! confirmed with a POST (a mail scanner that fetches the link changes
//! nothing). Staff add and remove any user's aliases directly, as
//! `ticketgate user alias` does.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::auth::Viewer;
use super::pages::DoneQuery;
use super::view::{Done, Nav};
use super::{WebError, blocking, html, page, staff_only};
use crate::app::App;
use crate::clock;
use crate::deeplink::{AliasLink, LinkError};
use crate::notify::{self, Notice, Notifier};
use crate::store::StoreError;
use crate::store::users;

/// How long a confirmation link works (the mail says "two days").
const CONFIRM_SECS: i64 = 2 * 86_400;

#[derive(Template)]
#[template(path = "web/account.html")]
pub struct Account {
    pub nav: Nav,
    pub email: String,
    pub aliases: Vec<String>,
    /// What just happened, or what went wrong.
    pub status: Option<String>,
    /// The user's own time zone; empty for the default.
    pub time_zone: String,
    /// `web.time_zone`.
    pub default_zone: String,
    pub zones: Vec<String>,
}

#[derive(Template)]
#[template(path = "web/alias_confirm.html")]
pub struct Confirm {
    pub nav: Nav,
    pub alias: String,
    pub token: String,
}

#[derive(Template)]
#[template(path = "web/aliases.html")]
pub struct All {
    pub nav: Nav,
    /// (alias, the user's address)
    pub aliases: Vec<(String, String)>,
    pub status: Option<String>,
}

#[derive(Deserialize)]
pub struct AliasForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    alias: String,
    /// The user (staff page only).
    #[serde(default)]
    email: String,
}

async fn account_page(app: &App, viewer: &Viewer, status: Option<String>) -> Result<Account, WebError> {
    let db = app.db().clone();
    let id = viewer.user.id;
    let aliases = blocking(move || Ok(db.with(|c| users::aliases(c, id))?)).await?;
    Ok(Account {
        nav: viewer.nav(),
        email: viewer.user.email.clone(),
        aliases,
        status,
        time_zone: viewer.user.time_zone.clone(),
        default_zone: app.config().web.time_zone.clone(),
        zones: crate::format::zone_names(),
    })
}

/// GET /account.
pub async fn account(State(app): State<App>, viewer: Viewer, Query(q): Query<DoneQuery>) -> Result<Response, WebError> {
    let status = Done::of(&q.done).map(|d| d.message(None));
    let p = account_page(&app, &viewer, status).await?;
    Ok(html(StatusCode::OK, &p))
}

/// POST /account/aliases: mails the confirmation link to the new address.
pub async fn ask(State(app): State<App>, viewer: Viewer, Form(form): Form<AliasForm>) -> Result<Response, WebError> {
    viewer.check_csrf(&form.csrf)?;
    let alias = crate::address::normalize(&form.alias);
    if crate::address::split(&alias).is_none() {
        let p = account_page(&app, &viewer, Some(format!("{:?} is not an email address.", form.alias))).await?;
        return Ok(html(StatusCode::UNPROCESSABLE_ENTITY, &p));
    }
    let (user, a, to) = (viewer.user.clone(), app.clone(), alias.clone());
    let sent = blocking(move || {
        a.db()
            .write(|tx| {
                if users::by_address(tx, &to)?.is_some() {
                    return Ok(Err(format!("{to} is already an address of a user.")));
                }
                let now = clock::now();
                let link = AliasLink { user: user.id, alias: to.clone(), expires: now + CONFIRM_SECS };
                let url = link.url(&a.config().support.public_url, a.keys());
                let n = Notifier { config: a.config(), keys: a.keys(), now };
                let notice = Notice::ConfirmAlias { account: &user.email, link: &url };
                Ok::<_, StoreError>(Ok(notify::notice(tx, &n, &to, &notice, None, notify::lang::Lang::En)?))
            })
            .map_err(WebError::from)
    })
    .await?;
    let status = match sent {
        Ok(true) => format!("A confirmation link was mailed to {alias}. The address counts once it is confirmed."),
        Ok(false) => format!("No mail could go to {alias} now (one went there recently); try again later."),
        Err(why) => why,
    };
    let p = account_page(&app, &viewer, Some(status)).await?;
    Ok(html(StatusCode::OK, &p))
}

/// POST /account/aliases/remove.
pub async fn remove_own(
    State(app): State<App>,
    viewer: Viewer,
    Form(form): Form<AliasForm>,
) -> Result<Response, WebError> {
    viewer.check_csrf(&form.csrf)?;
    let (db, id) = (app.db().clone(), viewer.user.id);
    blocking(move || Ok(db.with(|c| users::remove_alias(c, id, &form.alias))?)).await?;
    Ok(Redirect::to("/account").into_response())
}

/// The link, if valid, unexpired and made for the viewer; otherwise why not
/// (`None`: made for someone else).
fn checked_link(app: &App, viewer: &Viewer, token: &str) -> Result<AliasLink, Option<LinkError>> {
    match AliasLink::verify(app.keys(), token, clock::now()) {
        Ok(link) if link.user == viewer.user.id => Ok(link),
        Ok(_) => Err(None),
        Err(e) => Err(Some(e)),
    }
}

/// The page for a link that does not confirm anything.
fn refused(why: Option<LinkError>) -> Response {
    match why {
        None => WebError::NotFound.into_response(),
        Some(LinkError::Invalid) => page(
            StatusCode::NOT_FOUND,
            "This link is not valid",
            "The link may have been copied incompletely. Ask for a new one on Your addresses.",
            Some(("/account", "Your addresses")),
        ),
        Some(LinkError::Expired) => page(
            StatusCode::GONE,
            "This link has expired",
            "Confirmation links work for two days. Ask for a new one on Your addresses.",
            Some(("/account", "Your addresses")),
        ),
    }
}

/// GET /alias/{token}: asks the logged-in user to confirm.
pub async fn confirm_page(State(app): State<App>, viewer: Viewer, Path(token): Path<String>) -> Response {
    match checked_link(&app, &viewer, &token) {
        Ok(link) => html(StatusCode::OK, &Confirm { nav: viewer.nav(), alias: link.alias, token }),
        Err(why) => refused(why),
    }
}

#[derive(Deserialize)]
pub struct ConfirmForm {
    #[serde(default)]
    csrf: String,
}

/// POST /alias/{token}: the address becomes the viewer's.
pub async fn confirm(
    State(app): State<App>,
    viewer: Viewer,
    Path(token): Path<String>,
    Form(form): Form<ConfirmForm>,
) -> Result<Response, WebError> {
    viewer.check_csrf(&form.csrf)?;
    let link = match checked_link(&app, &viewer, &token) {
        Ok(link) => link,
        Err(why) => return Ok(refused(why)),
    };
    let db = app.db().clone();
    blocking(move || {
        db.write(|tx| users::add_alias(tx, link.user, &link.alias, clock::now())).map_err(WebError::refusal)
    })
    .await?;
    Ok(Redirect::to("/account").into_response())
}

async fn all_page(app: &App, viewer: &Viewer, status: Option<String>) -> Result<All, WebError> {
    let db = app.db().clone();
    let aliases = blocking(move || Ok(db.with(users::all_aliases)?)).await?;
    Ok(All { nav: viewer.nav(), aliases, status })
}

/// GET /aliases (staff).
pub async fn all(State(app): State<App>, viewer: Viewer) -> Result<Response, WebError> {
    staff_only(&viewer)?;
    let p = all_page(&app, &viewer, None).await?;
    Ok(html(StatusCode::OK, &p))
}

/// POST /aliases (staff): adds an alias to any user, at once.
pub async fn add(State(app): State<App>, viewer: Viewer, Form(form): Form<AliasForm>) -> Result<Response, WebError> {
    staff_only(&viewer)?;
    viewer.check_csrf(&form.csrf)?;
    let db = app.db().clone();
    let done = blocking(move || {
        db.write(|tx| {
            let Some(user) = users::by_email(tx, &form.email)? else {
                return Ok(Err(format!("No user {}.", form.email.trim())));
            };
            Ok::<_, StoreError>(match users::add_alias(tx, user.id, &form.alias, clock::now()) {
                Ok(()) => Ok(()),
                Err(StoreError::Conflict(why)) => Err(format!("{why}.")),
                Err(e) => return Err(e),
            })
        })
        .map_err(WebError::from)
    })
    .await?;
    match done {
        Ok(()) => Ok(Redirect::to("/aliases").into_response()),
        Err(why) => Ok(html(StatusCode::UNPROCESSABLE_ENTITY, &all_page(&app, &viewer, Some(why)).await?)),
    }
}

/// POST /aliases/remove (staff).
pub async fn remove(State(app): State<App>, viewer: Viewer, Form(form): Form<AliasForm>) -> Result<Response, WebError> {
    staff_only(&viewer)?;
    viewer.check_csrf(&form.csrf)?;
    let db = app.db().clone();
    blocking(move || {
        Ok(db.write(|tx| {
            let user = users::by_email(tx, &form.email)?.ok_or(StoreError::NotFound)?;
            users::remove_alias(tx, user.id, &form.alias)
        })?)
    })
    .await?;
    Ok(Redirect::to("/aliases").into_response())
}
