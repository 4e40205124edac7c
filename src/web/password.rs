//! Setting a password by mail: "Forgot password?" and invitations.
//!
//! `/password/forgot` answers every address the same way, known or not,
//! disabled or not, so it tells nobody who has an account; only an active
//! user's address gets a mail. Requests are counted in the failed-login
//! ledger ([`sessions`]) under `reset:user:<address>` (at most
//! [`PER_ADDRESS`] in the `web.login_window_minutes` window) and
//! `reset:addr:<client>` (at most `web.max_failed_logins`); past either the
//! page says how long to wait, again for every address alike.
//!
//! The mailed [`PasswordLink`] is signed over the user's current password
//! hash: it works until a password is set, once. A reset link lives an hour,
//! an invitation ([`crate::web::users`]) seven days. Setting the password
//! ends every session of the user ([`users::set_password`]). The reset form
//! needs no CSRF token: the link in its address is the secret, and whoever
//! holds it may use it anyway.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use rusqlite::Connection;
use serde::Deserialize;

use super::auth::{self, ClientAddr};
use super::view::{Done, Nav};
use super::{WebError, blocking, html, page};
use crate::app::App;
use crate::clock;
use crate::deeplink::{LinkError, PasswordLink, PasswordPurpose};
use crate::notify::{self, Notifier};
use crate::store::users::{self, User};
use crate::store::{StoreError, sessions};

/// How long a reset link works.
pub const RESET_SECS: i64 = 3600;
/// How long an invitation works (the mail says "seven days").
pub const INVITE_SECS: i64 = 7 * 86_400;
/// Reset mails asked for one address within the window.
pub const PER_ADDRESS: u32 = 3;

/// The same words for every address: nothing tells whether it has an account.
const SENT: &str = "If that address has an account, a link is on its way. It works for one hour. \
                    Check your spam folder if nothing arrives within a few minutes.";

#[derive(Template)]
#[template(path = "web/forgot.html")]
pub struct Forgot {
    pub nav: Nav,
    pub email: String,
    /// What happened to the request (the same for every address).
    pub status: Option<String>,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "web/reset.html")]
pub struct Reset {
    pub nav: Nav,
    pub token: String,
    pub invitation: bool,
    pub email: String,
    pub error: Option<String>,
    pub min_chars: usize,
}

async fn nav(app: &App, headers: &HeaderMap) -> Result<Nav, WebError> {
    Ok(auth::viewer(app, headers).await?.map(|v| v.nav()).unwrap_or_else(Nav::anonymous))
}

/// GET /password/forgot.
pub async fn forgot_page(State(app): State<App>, headers: HeaderMap) -> Result<Response, WebError> {
    let p = Forgot { nav: nav(&app, &headers).await?, email: String::new(), status: None, error: None };
    Ok(html(StatusCode::OK, &p))
}

#[derive(Deserialize)]
pub struct ForgotForm {
    #[serde(default)]
    email: String,
}

/// POST /password/forgot: counts the request, and mails a link when the
/// address is an active user's.
pub async fn forgot(
    State(app): State<App>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    Form(form): Form<ForgotForm>,
) -> Result<Response, WebError> {
    let email = crate::address::normalize(&form.email);
    let nav = nav(&app, &headers).await?;
    if crate::address::split(&email).is_none() {
        let p = Forgot { nav, email: form.email, status: None, error: Some("Enter an email address.".into()) };
        return Ok(html(StatusCode::UNPROCESSABLE_ENTITY, &p));
    }
    let (a, to) = (app.clone(), email.clone());
    let limited = blocking(move || {
        a.db()
            .write(|tx| {
                let config = a.config();
                let now = clock::now();
                let window = i64::try_from(config.web.login_window_minutes.saturating_mul(60)).unwrap_or(i64::MAX / 2);
                let keys = [
                    (format!("reset:addr:{addr}"), config.web.max_failed_logins),
                    (format!("reset:user:{to}"), PER_ADDRESS),
                ];
                for (key, max) in &keys {
                    if let Some(wait) = sessions::limited(tx, key, now, window, *max)? {
                        return Ok(Some(wait));
                    }
                }
                for (key, _) in &keys {
                    sessions::add_failure(tx, key, now)?;
                }
                match users::by_email(tx, &to)? {
                    Some(user) => {
                        let sent = send_link(tx, &a, &user, PasswordPurpose::Reset, now)?;
                        tracing::info!(user = %user.email, sent, "password reset asked for");
                    }
                    None => tracing::info!("password reset asked for an unknown address"),
                }
                Ok::<_, StoreError>(None)
            })
            .map_err(WebError::from)
    })
    .await?;
    let (status_code, status) = match limited {
        None => (StatusCode::OK, SENT.to_string()),
        Some(wait) => {
            (StatusCode::TOO_MANY_REQUESTS, format!("Too many requests. Try again in {}.", auth::wait_text(wait)))
        }
    };
    let p = Forgot { nav, email, status: Some(status), error: None };
    Ok(html(status_code, &p))
}

/// Mails `user` a link to set a password (a reset, or an invitation), made
/// against their password hash as it is now; false when no mail went
/// (disabled or bouncing).
pub fn send_link(
    tx: &Connection,
    app: &App,
    user: &User,
    purpose: PasswordPurpose,
    now: i64,
) -> Result<bool, StoreError> {
    let ttl = match purpose {
        PasswordPurpose::Reset => RESET_SECS,
        PasswordPurpose::Invite => INVITE_SECS,
    };
    let hash = users::password_hash(tx, user.id)?;
    let link = PasswordLink { user: user.id, purpose, expires: now.saturating_add(ttl) };
    let url = link.url(&app.config().support.public_url, app.keys(), hash.as_deref());
    let n = Notifier { config: app.config(), keys: app.keys(), now };
    notify::password_link(tx, &n, user, purpose == PasswordPurpose::Invite, &url)
}

/// The user a token names and its link, if it verifies against their
/// current password hash and they are not disabled.
fn checked(
    c: &Connection,
    app: &App,
    token: &str,
    now: i64,
) -> Result<Result<(User, PasswordLink), LinkError>, StoreError> {
    let Some(id) = PasswordLink::user_of(token) else { return Ok(Err(LinkError::Invalid)) };
    let user = match users::by_id(c, id) {
        Ok(u) if !u.disabled => u,
        Ok(_) | Err(StoreError::NotFound) => return Ok(Err(LinkError::Invalid)),
        Err(e) => return Err(e),
    };
    let hash = users::password_hash(c, id)?;
    Ok(PasswordLink::verify(app.keys(), token, hash.as_deref(), now).map(|link| (user, link)))
}

async fn find(app: &App, token: &str) -> Result<Result<(User, PasswordLink), LinkError>, WebError> {
    let (a, t) = (app.clone(), token.to_string());
    blocking(move || Ok(a.db().with(|c| checked(c, &a, &t, clock::now()))?)).await
}

/// The page for a link that cannot set a password.
fn refused(why: LinkError) -> Response {
    let (status, title, text) = match why {
        LinkError::Invalid => (
            StatusCode::NOT_FOUND,
            "This link is not valid",
            "It may have been used already (each link works once) or copied incompletely. Ask for a new one.",
        ),
        LinkError::Expired => (
            StatusCode::GONE,
            "This link has expired",
            "Links to reset a password work for one hour, invitations for seven days. Ask for a new one.",
        ),
    };
    page(status, title, text, Some(("/password/forgot", "Ask for a new link")))
}

/// GET /password/reset/{token}: the form to set a new password.
pub async fn reset_page(
    State(app): State<App>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    let (user, link) = match find(&app, &token).await? {
        Ok(found) => found,
        Err(why) => return Ok(refused(why)),
    };
    let p = reset_form(&app, &headers, token, &user, link, None).await?;
    Ok(html(StatusCode::OK, &p))
}

async fn reset_form(
    app: &App,
    headers: &HeaderMap,
    token: String,
    user: &User,
    link: PasswordLink,
    error: Option<String>,
) -> Result<Reset, WebError> {
    Ok(Reset {
        nav: nav(app, headers).await?,
        token,
        invitation: link.purpose == PasswordPurpose::Invite,
        email: user.email.clone(),
        error,
        min_chars: crate::password::MIN_CHARS,
    })
}

#[derive(Deserialize)]
pub struct ResetForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

/// POST /password/reset/{token}: sets the password and ends every session of the user.
pub async fn reset(
    State(app): State<App>,
    headers: HeaderMap,
    Path(token): Path<String>,
    Form(form): Form<ResetForm>,
) -> Result<Response, WebError> {
    let (user, link) = match find(&app, &token).await? {
        Ok(found) => found,
        Err(why) => return Ok(refused(why)),
    };
    let problem = match crate::password::check(&form.password) {
        Err(why) => Some(format!("Not set: {why}.")),
        Ok(()) if form.password != form.confirm => Some("Not set: the two passwords differ.".to_string()),
        Ok(()) => None,
    };
    if let Some(why) = problem {
        let p = reset_form(&app, &headers, token, &user, link, Some(why)).await?;
        return Ok(html(StatusCode::UNPROCESSABLE_ENTITY, &p));
    }
    let a = app.clone();
    let set = blocking(move || {
        let hash = crate::password::hash(&form.password);
        a.db()
            .write(|tx| {
                // Checked again under the write lock: of two uses at once, one sets the password.
                match checked(tx, &a, &token, clock::now())? {
                    Ok((user, _)) => {
                        users::set_password(tx, user.id, &hash)?;
                        tracing::info!(user = %user.email, "password set by a mailed link; the user's sessions ended");
                        Ok(Ok(()))
                    }
                    Err(why) => Ok::<_, StoreError>(Err(why)),
                }
            })
            .map_err(WebError::from)
    })
    .await?;
    match set {
        Ok(()) => Ok(Redirect::to(&format!("/login?done={}", Done::PasswordSet)).into_response()),
        Err(why) => Ok(refused(why)),
    }
}
