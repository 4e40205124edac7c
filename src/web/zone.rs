//! The viewer's time zone, chosen on "Your account": every time the portal
//! shows that user is in it. Empty means `web.time_zone`.

use axum::Form;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::auth::Viewer;
use super::view::Done;
use super::{WebError, blocking};
use crate::app::App;
use crate::store::users;

#[derive(Deserialize)]
pub struct ZoneForm {
    csrf: String,
    #[serde(default)]
    time_zone: String,
}

/// POST /account/time-zone: an IANA zone name, or "" for the default.
pub async fn set(State(app): State<App>, viewer: Viewer, Form(form): Form<ZoneForm>) -> Result<Response, WebError> {
    viewer.check_csrf(&form.csrf)?;
    let zone = form.time_zone.trim().to_string();
    if !zone.is_empty() && crate::format::zone(&zone).is_none() {
        return Err(WebError::BadRequest("That is not a time zone this portal knows. Nothing was changed.".into()));
    }
    let (db, id) = (app.db().clone(), viewer.user.id);
    blocking(move || Ok(db.write(|tx| users::set_time_zone(tx, id, &zone))?)).await?;
    Ok(Redirect::to(&format!("/account?done={}", Done::ZoneSaved)).into_response())
}
