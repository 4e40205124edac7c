//! WEB: the portal. An axum server beside the mail workers, rendering askama
//! pages (templates/web/) with one stylesheet and no scripts at all, so the
//! Content-Security-Policy can forbid every script.
//!
//! Decisions where SPEC.md is silent:
//! - Every change goes through [`crate::actions`] inside one
//!   [`Db::write`](crate::store::Db::write) transaction, so web and mail
//!   cannot drift apart. Close with text in the box posts the text, then
//!   closes; Send on a closed ticket reopens it (the life-cycle table).
//! - A deep link is a pointer, not a credential: anyone logged in who may see
//!   the ticket (same team, or staff) lands on it, even when the link was
//!   mailed to a teammate. Users of other teams get the same "not found"
//!   page as for a ticket that does not exist.
//! - Staff do not open tickets in the portal (a ticket is opened by its
//!   customer, whose team it belongs to and who hears about it); staff answer
//!   them. The "New ticket" page tells staff so.
//! - A refused upload on the web is refused up front with its reason and the
//!   typed text kept (the mail path posts the body and lists the refusal,
//!   because a mail cannot be sent back for correction).
//! - Failed logins count per account and per client address (the peer
//!   address: forwarding headers are not trusted). Locking an account by
//!   failing on purpose is the accepted cost of slowing password guessing.
//! - The internal reference can be set by anyone who may see the ticket.
//! - Search matches every word (quoted, never FTS5 syntax) or a ticket number,
//!   and looks at the 1,000 most recent matching texts
//!   ([`SEARCH_HITS`](crate::store::portal::SEARCH_HITS)); the page says when
//!   older matches were left out. Lists page by 50 and say how many tickets
//!   match in all.
//! - Staff land on their work queue (waiting for support, oldest update
//!   first), customers on every status, newest first; the list remembers the
//!   last filters in a cookie until "Reset filters". A ticket is marked
//!   unread for a user when someone else posted, closed or reopened it since
//!   the user last opened it ([`crate::store::activity`]).
//! - After an action the redirect names what was done (`?done=sent`) from a
//!   fixed table ([`view::Done`]); the page says it in a status region. Close
//!   asks first (a `<details>` holding the real button) and is not offered on
//!   a closed ticket.
//! - Times are shown relative ("5 min ago") in the viewer's time zone (their
//!   own, or `web.time_zone`), the exact time on hover.
//! - Passwords are set by signed, single-use mail links (`password`);
//!   staff, and customer admins for their own team, manage users (`users`).
//! - Error and link pages (404, 403, an invalid or expired link) are made
//!   without the request's session and finished by `plain_pages`, which
//!   looks the session up only for them: a logged-in visitor sees their
//!   menu there too, and pages that succeed pay nothing extra.
//! - A post (reply or new ticket) takes at most [`MAX_POST_FILES`] files and
//!   [`MAX_POST_CHARS`] characters of text; beyond either the page comes back
//!   with the error and the typed text, and nothing is posted.

mod aliases;
mod auth;
mod pages;
mod password;
mod quarantine;
mod users;
pub mod view;
mod zone;

pub use pages::{MAX_POST_CHARS, MAX_POST_FILES};

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use askama::Template;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use tracing::Instrument;

use crate::app::App;
use crate::store::StoreError;

/// Room for the form fields around one largest attachment.
const FORM_OVERHEAD: u64 = 1024 * 1024;

const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                   base-uri 'none'; frame-ancestors 'none'";

/// The portal's routes, with its security headers and body limit.
pub fn app(app: App) -> Router {
    let limit = app.config().attachments.max_bytes.saturating_add(FORM_OVERHEAD);
    Router::new()
        .route("/", get(pages::list))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/password/forgot", get(password::forgot_page).post(password::forgot))
        .route("/password/reset/{token}", get(password::reset_page).post(password::reset))
        .route("/users", get(users::list))
        .route("/users/new", get(users::new_page).post(users::create))
        .route("/users/{id}", get(users::user).post(users::change))
        .route("/teams", get(users::teams).post(users::add_team))
        .route("/contact", get(pages::contact))
        .route("/new", get(pages::new_page).post(pages::create))
        .route("/l/{token}", get(pages::deep_link))
        .route("/t/{id}", get(pages::ticket))
        .route("/t/{id}/reply", post(pages::reply))
        .route("/t/{id}/reference", post(pages::reference))
        .route("/t/{id}/a/{attachment}", get(pages::download))
        .route("/quarantine", get(quarantine::list))
        .route("/quarantine/{id}", get(quarantine::entry))
        .route("/quarantine/{id}/raw", get(quarantine::raw))
        .route("/quarantine/{id}/release", post(quarantine::release))
        .route("/quarantine/{id}/delete", post(quarantine::delete))
        .route("/account", get(aliases::account))
        .route("/account/aliases", post(aliases::ask))
        .route("/account/aliases/remove", post(aliases::remove_own))
        .route("/account/time-zone", post(zone::set))
        .route("/alias/{token}", get(aliases::confirm_page).post(aliases::confirm))
        .route("/aliases", get(aliases::all).post(aliases::add))
        .route("/aliases/remove", post(aliases::remove))
        .route("/static/portal.css", get(stylesheet))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(usize::try_from(limit).unwrap_or(usize::MAX)))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(60),
        ))
        .layer(axum::middleware::from_fn_with_state(app.clone(), plain_pages))
        .layer(axum::middleware::map_response(security_headers))
        .layer(axum::middleware::from_fn(observe))
        .with_state(app)
}

/// Serves the portal on `listener` until `shutdown` turns true (or its sender goes away).
pub async fn run(
    app: App,
    listener: tokio::net::TcpListener,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    tracing::info!(address = %listener.local_addr()?, "web portal listening");
    let service = self::app(app).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await?;
    Ok(())
}

async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    res
}

/// One span and one latency observation per request. The route is the
/// matched pattern (`/t/{id}`), so ticket numbers do not make a series each.
async fn observe(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or("(unmatched)", |p| p.as_str()).to_owned();
    let method = req.method().clone();
    let span = tracing::info_span!(
        "request",
        method = %method,
        route = %route,
        status = tracing::field::Empty,
        duration_ms = tracing::field::Empty
    );
    let start = Instant::now();
    let res = next.run(req).instrument(span.clone()).await;
    let elapsed = start.elapsed();
    span.record("status", res.status().as_u16());
    span.record("duration_ms", elapsed.as_secs_f64() * 1000.0);
    span.in_scope(|| tracing::info!("request"));
    crate::metrics::request(&method, &route, elapsed.as_secs_f64());
    res
}

/// For load balancers and service managers: 200 when the database answers,
/// 503 otherwise. Needs no login and says nothing more.
async fn healthz(State(app): State<App>) -> Response {
    let db = app.db().clone();
    match tokio::task::spawn_blocking(move || db.ping(Duration::from_secs(2))).await {
        Ok(Ok(())) => (StatusCode::OK, "ok\n").into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health check: the database does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response()
        }
    }
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")],
        include_str!("../../templates/web/portal.css"),
    )
        .into_response()
}

async fn not_found() -> WebError {
    WebError::NotFound
}

/// Why a request failed, as the page the visitor sees.
#[derive(Debug)]
pub enum WebError {
    /// Missing, or not the visitor's to see: the same page either way.
    NotFound,
    /// The form's CSRF token did not match the session.
    Csrf,
    BadRequest(String),
    /// The upload went over the body limit.
    TooLarge,
    Internal(String),
}

impl WebError {
    /// A refusal of the store (`Conflict`) said as it is; anything else as usual.
    fn refusal(e: StoreError) -> WebError {
        match e {
            StoreError::Conflict(why) => WebError::BadRequest(format!("Not done: {why}.")),
            e => e.into(),
        }
    }
}

/// Staff pass; anyone else gets the same "not found" as for a page that does not exist.
fn staff_only(viewer: &auth::Viewer) -> Result<(), WebError> {
    if viewer.user.role.is_staff() { Ok(()) } else { Err(WebError::NotFound) }
}

impl From<StoreError> for WebError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => WebError::NotFound,
            e => WebError::Internal(e.to_string()),
        }
    }
}

impl From<askama::Error> for WebError {
    fn from(e: askama::Error) -> Self {
        WebError::Internal(format!("template: {e}"))
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, title, text) = match self {
            WebError::NotFound => {
                (StatusCode::NOT_FOUND, "Not found", "There is nothing here, or it is not yours to see.".to_string())
            }
            WebError::Csrf => (
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form was out of date. Go back, reload the page and try again.".to_string(),
            ),
            WebError::BadRequest(why) => (StatusCode::BAD_REQUEST, "Cannot do that", why),
            WebError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "Too large",
                "The upload is larger than the size limit. Nothing was saved.".to_string(),
            ),
            WebError::Internal(why) => {
                tracing::error!(error = %why, "web request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The request could not be completed. Please try again later.".to_string(),
                )
            }
        };
        page(status, title, &text, Some(("/", "Back to your tickets")))
    }
}

/// A plain page not yet rendered: [`plain_pages`] renders it with the menu
/// of whoever asked.
#[derive(Clone)]
struct Plain {
    title: String,
    text: String,
    link: Option<(String, String)>,
}

/// A plain page with a status code.
fn page(status: StatusCode, title: &str, text: &str, link: Option<(&str, &str)>) -> Response {
    let mut res = status.into_response();
    res.extensions_mut().insert(Plain {
        title: title.into(),
        text: text.into(),
        link: link.map(|(h, l)| (h.into(), l.into())),
    });
    res
}

/// Renders the [`page`]s of a response with the visitor's menu: logged in
/// (name, Log out) when the request carries a live session, else "Log in".
async fn plain_pages(State(app): State<App>, req: Request, next: Next) -> Response {
    let mut cookies = axum::http::HeaderMap::new();
    if let Some(c) = req.headers().get(header::COOKIE) {
        cookies.insert(header::COOKIE, c.clone());
    }
    let mut res = next.run(req).await;
    let Some(p) = res.extensions_mut().remove::<Plain>() else { return res };
    let nav = match auth::viewer(&app, &cookies).await {
        Ok(Some(v)) => v.nav(),
        _ => view::Nav::anonymous(),
    };
    let rendered = html(res.status(), &view::Page { nav, title: p.title, text: p.text, link: p.link });
    let (mut parts, _) = res.into_parts();
    let (new_parts, body) = rendered.into_parts();
    for (name, value) in &new_parts.headers {
        parts.headers.insert(name, value.clone());
    }
    Response::from_parts(parts, body)
}

/// Renders a template as a response, or an error page when rendering fails.
fn html(status: StatusCode, t: &impl Template) -> Response {
    match t.render() {
        Ok(body) => (status, Html(body)).into_response(),
        Err(e) => WebError::from(e).into_response(),
    }
}

/// Runs blocking store work (SQLite, fsync, argon2) off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, WebError> + Send + 'static) -> Result<T, WebError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| Err(WebError::Internal(e.to_string())))
}
