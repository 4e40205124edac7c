//! User administration in the portal, beside `ticketgate team` and
//! `ticketgate user` (the same store functions do the work).
//!
//! Staff manage every team and user: add a team, add a user (any role),
//! change a role, disable or enable, and re-send the invitation. A customer
//! admin does the same within their own team only: members and admins of
//! that team, never staff, and never themselves (disabling oneself or
//! changing one's own role is refused for everyone, so nobody locks
//! themselves out). Users outside the viewer's reach, and every page for
//! members, are the same "not found" as a page that does not exist.
//!
//! A user added here gets no password: they get an invitation mail with a
//! set-password link ([`PasswordPurpose::Invite`], seven days), which
//! "Resend invitation" mails again. Every change is logged (`tracing`, with
//! who did it); the log line's time says when.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::auth::Viewer;
use super::pages::DoneQuery;
use super::password::send_link;
use super::view::{Choice, Done, Nav, team_choices};
use super::{WebError, blocking, html, staff_only};
use crate::app::App;
use crate::clock;
use crate::deeplink::PasswordPurpose;
use crate::id::{TeamId, UserId};
use crate::lifecycle::Role;
use crate::store::StoreError;
use crate::store::users::{self, NewUser, Team, User};

/// Whose users the viewer manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Everyone,
    Team(TeamId),
}

impl Scope {
    /// Staff manage everyone, a customer admin their team; members nobody (not found).
    fn of(viewer: &Viewer) -> Result<Scope, WebError> {
        match (viewer.user.role, viewer.user.team_id) {
            (Role::Staff, _) => Ok(Scope::Everyone),
            (Role::Admin, Some(team)) => Ok(Scope::Team(team)),
            _ => Err(WebError::NotFound),
        }
    }

    fn reaches(self, user: &User) -> bool {
        match self {
            Scope::Everyone => true,
            Scope::Team(team) => user.team_id == Some(team) && !user.role.is_staff(),
        }
    }

    /// The roles the viewer may give.
    fn roles(self) -> &'static [Role] {
        match self {
            Scope::Everyone => &[Role::Member, Role::Admin, Role::Staff],
            Scope::Team(_) => &[Role::Member, Role::Admin],
        }
    }
}

/// One row of the users table.
pub struct UserRow {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub role: &'static str,
    pub team: String,
    /// "Disabled", "Mail bounces", or empty.
    pub state: String,
}

#[derive(Template)]
#[template(path = "web/users.html")]
pub struct UsersPage {
    pub nav: Nav,
    pub heading: String,
    /// Team filter; empty unless the viewer is staff.
    pub teams: Vec<Choice>,
    pub rows: Vec<UserRow>,
}

#[derive(Template)]
#[template(path = "web/user_new.html")]
pub struct NewUserPage {
    pub nav: Nav,
    pub roles: Vec<Choice>,
    /// Team choices (staff), or empty: an admin adds to their own team.
    pub teams: Vec<Choice>,
    pub email: String,
    pub name: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "web/user.html")]
pub struct UserPage {
    pub nav: Nav,
    pub user: UserRow,
    pub disabled: bool,
    /// The viewer themselves: no disabling, no role change.
    pub own: bool,
    pub roles: Vec<Choice>,
    /// Team choices for a new role (staff only).
    pub teams: Vec<Choice>,
    pub status: Option<String>,
}

#[derive(Template)]
#[template(path = "web/teams.html")]
pub struct TeamsPage {
    pub nav: Nav,
    /// (team, number of users)
    pub teams: Vec<(Team, usize)>,
    pub status: Option<String>,
}

fn role_choices(scope: Scope, selected: Role) -> Vec<Choice> {
    scope
        .roles()
        .iter()
        .map(|r| Choice {
            value: r.as_str().into(),
            label: super::view::role_label(r.as_str()).into(),
            selected: *r == selected,
        })
        .collect()
}

fn row(u: &User, teams: &[Team]) -> UserRow {
    let team = u.team_id.and_then(|t| teams.iter().find(|x| x.id == t)).map(|t| t.name.clone()).unwrap_or_default();
    let state = match (&u.bouncing, u.disabled) {
        (_, true) => "Disabled".to_string(),
        (Some(_), false) => "Mail bounces".to_string(),
        (None, false) => String::new(),
    };
    UserRow {
        id: u.id,
        email: u.email.clone(),
        name: u.name.clone(),
        role: super::view::role_label(u.role.as_str()),
        team,
        state,
    }
}

#[derive(Deserialize, Default)]
pub struct UsersQuery {
    #[serde(default)]
    team: String,
}

/// GET /users (staff: every team, or one; a customer admin: their team).
pub async fn list(State(app): State<App>, viewer: Viewer, Query(q): Query<UsersQuery>) -> Result<Response, WebError> {
    let scope = Scope::of(&viewer)?;
    let filter = match scope {
        Scope::Everyone => q.team.parse::<TeamId>().ok(),
        Scope::Team(t) => Some(t),
    };
    let db = app.db().clone();
    let (all, teams) = blocking(move || Ok(db.with(|c| Ok((users::list(c)?, users::teams(c)?)))?)).await?;
    let rows = all
        .iter()
        .filter(|u| scope.reaches(u) && filter.is_none_or(|t| u.team_id == Some(t)))
        .map(|u| row(u, &teams))
        .collect();
    let heading = match (scope, filter.and_then(|t| teams.iter().find(|x| x.id == t))) {
        (_, Some(team)) => format!("Users of {}", team.name),
        _ => "All users".to_string(),
    };
    let teams = if scope == Scope::Everyone { team_choices(&teams, filter) } else { Vec::new() };
    Ok(html(StatusCode::OK, &UsersPage { nav: viewer.nav(), heading, teams, rows }))
}

async fn new_form(
    app: &App,
    viewer: &Viewer,
    scope: Scope,
    form: &UserForm,
    error: Option<String>,
) -> Result<NewUserPage, WebError> {
    let teams = match scope {
        Scope::Everyone => {
            let db = app.db().clone();
            let teams = blocking(move || Ok(db.with(|c| users::teams(c))?)).await?;
            let mut choices = team_choices(&teams, form.team.parse().ok());
            choices[0].label = "No team (staff)".into();
            choices
        }
        Scope::Team(_) => Vec::new(),
    };
    let role = Role::parse(&form.role).unwrap_or(Role::Member);
    Ok(NewUserPage {
        nav: viewer.nav(),
        roles: role_choices(scope, role),
        teams,
        email: form.email.clone(),
        name: form.name.clone(),
        error,
    })
}

/// GET /users/new.
pub async fn new_page(State(app): State<App>, viewer: Viewer) -> Result<Response, WebError> {
    let scope = Scope::of(&viewer)?;
    let p = new_form(&app, &viewer, scope, &UserForm::default(), None).await?;
    Ok(html(StatusCode::OK, &p))
}

#[derive(Deserialize, Default)]
pub struct UserForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    team: String,
    /// On /users/{id}: `role`, `disable`, `enable` or `invite`.
    #[serde(default)]
    action: String,
}

impl UserForm {
    /// The role asked for, if the viewer may give it.
    fn role(&self, scope: Scope) -> Result<Role, String> {
        Role::parse(&self.role).filter(|r| scope.roles().contains(r)).ok_or_else(|| "Choose a role.".to_string())
    }

    /// The team asked for: an admin's own; for staff the chosen one (none for staff users).
    fn team(&self, scope: Scope) -> Option<TeamId> {
        match scope {
            Scope::Team(t) => Some(t),
            Scope::Everyone => self.team.parse().ok(),
        }
    }
}

/// POST /users/new: adds the user without a password and mails the invitation.
pub async fn create(State(app): State<App>, viewer: Viewer, Form(form): Form<UserForm>) -> Result<Response, WebError> {
    let scope = Scope::of(&viewer)?;
    viewer.check_csrf(&form.csrf)?;
    let role = match form.role(scope) {
        Ok(r) => r,
        Err(why) => {
            return Ok(html(
                StatusCode::UNPROCESSABLE_ENTITY,
                &new_form(&app, &viewer, scope, &form, Some(why)).await?,
            ));
        }
    };
    let team = if role.is_staff() { None } else { form.team(scope) };
    let (a, by) = (app.clone(), viewer.user.email.clone());
    let (email, name) = (form.email.clone(), form.name.clone());
    let made = blocking(move || {
        a.db()
            .write(|tx| {
                if let Some(t) = team {
                    users::team(tx, t)?;
                }
                let now = clock::now();
                let new = NewUser { email: &email, name: &name, role, team_id: team, password_hash: None };
                let id = match users::create_user(tx, &new, now) {
                    Ok(id) => id,
                    Err(StoreError::Conflict(why)) => return Ok(Err(format!("Not added: {why}."))),
                    Err(e) => return Err(e),
                };
                let user = users::by_id(tx, id)?;
                let invited = send_link(tx, &a, &user, PasswordPurpose::Invite, now)?;
                tracing::info!(by = %by, user = %user.email, role = role.as_str(), invited, "user added in the portal");
                Ok::<_, StoreError>(Ok(id))
            })
            .map_err(WebError::from)
    })
    .await?;
    match made {
        Ok(id) => Ok(Redirect::to(&format!("/users/{id}?done={}", Done::UserAdded)).into_response()),
        Err(why) => {
            Ok(html(StatusCode::UNPROCESSABLE_ENTITY, &new_form(&app, &viewer, scope, &form, Some(why)).await?))
        }
    }
}

/// The user `id` if the viewer manages them; otherwise not found.
async fn managed(app: &App, scope: Scope, id: &str) -> Result<(User, Vec<Team>), WebError> {
    let id = id.parse::<i64>().ok().filter(|n| *n > 0).map(UserId).ok_or(WebError::NotFound)?;
    let db = app.db().clone();
    let (user, teams) = blocking(move || Ok(db.with(|c| Ok((users::by_id(c, id)?, users::teams(c)?)))?)).await?;
    if scope.reaches(&user) { Ok((user, teams)) } else { Err(WebError::NotFound) }
}

/// GET /users/{id}.
pub async fn user(
    State(app): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(q): Query<DoneQuery>,
) -> Result<Response, WebError> {
    let scope = Scope::of(&viewer)?;
    let (user, teams) = managed(&app, scope, &id).await?;
    let p = UserPage {
        nav: viewer.nav(),
        user: row(&user, &teams),
        disabled: user.disabled,
        own: user.id == viewer.user.id,
        roles: role_choices(scope, user.role),
        teams: if scope == Scope::Everyone { team_choices(&teams, user.team_id) } else { Vec::new() },
        status: Done::of(&q.done).map(|d| d.message(None)),
    };
    Ok(html(StatusCode::OK, &p))
}

/// POST /users/{id}: one change, by its `action`.
pub async fn change(
    State(app): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<UserForm>,
) -> Result<Response, WebError> {
    let scope = Scope::of(&viewer)?;
    viewer.check_csrf(&form.csrf)?;
    let (user, _) = managed(&app, scope, &id).await?;
    let own = user.id == viewer.user.id;
    let refuse = |why: &str| Err(WebError::BadRequest(why.to_string()));
    let role = match form.action.as_str() {
        "role" if own => return refuse("You cannot change your own role."),
        "role" => Some(form.role(scope).map_err(WebError::BadRequest)?),
        "disable" if own => return refuse("You cannot disable yourself."),
        "disable" | "enable" | "invite" => None,
        _ => return refuse("Unknown action."),
    };
    let (team, uid) = (form.team(scope), user.id);
    let (a, by, action) = (app.clone(), viewer.user.email.clone(), form.action.clone());
    let done = blocking(move || {
        a.db()
            .write(|tx| {
                let done = match (action.as_str(), role) {
                    ("role", Some(role)) => {
                        users::set_role(tx, user.id, role, team)?;
                        Done::RoleChanged
                    }
                    ("disable", _) => {
                        users::set_disabled(tx, &user.email, true)?;
                        Done::Disabled
                    }
                    ("enable", _) => {
                        users::set_disabled(tx, &user.email, false)?;
                        Done::Enabled
                    }
                    _ => {
                        let sent = send_link(tx, &a, &user, PasswordPurpose::Invite, clock::now())?;
                        if sent { Done::Invited } else { Done::NotInvited }
                    }
                };
                tracing::info!(by = %by, user = %user.email, action = done.as_str(), role = role.map(Role::as_str), "user changed in the portal");
                Ok::<_, StoreError>(done)
            })
            .map_err(WebError::refusal)
    })
    .await?;
    Ok(Redirect::to(&format!("/users/{uid}?done={done}")).into_response())
}

async fn teams_page(app: &App, viewer: &Viewer, status: Option<String>) -> Result<TeamsPage, WebError> {
    let db = app.db().clone();
    let (teams, all) = blocking(move || Ok(db.with(|c| Ok((users::teams(c)?, users::list(c)?)))?)).await?;
    let teams = teams
        .into_iter()
        .map(|t| {
            let n = all.iter().filter(|u| u.team_id == Some(t.id)).count();
            (t, n)
        })
        .collect();
    Ok(TeamsPage { nav: viewer.nav(), teams, status })
}

/// GET /teams (staff).
pub async fn teams(State(app): State<App>, viewer: Viewer) -> Result<Response, WebError> {
    staff_only(&viewer)?;
    Ok(html(StatusCode::OK, &teams_page(&app, &viewer, None).await?))
}

#[derive(Deserialize)]
pub struct TeamForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
}

/// POST /teams (staff): adds a team.
pub async fn add_team(
    State(app): State<App>,
    viewer: Viewer,
    Form(form): Form<TeamForm>,
) -> Result<Response, WebError> {
    staff_only(&viewer)?;
    viewer.check_csrf(&form.csrf)?;
    let name = form.name.trim().to_string();
    if name.is_empty() {
        return Ok(html(
            StatusCode::UNPROCESSABLE_ENTITY,
            &teams_page(&app, &viewer, Some("Give the team a name.".into())).await?,
        ));
    }
    let (db, by) = (app.db().clone(), viewer.user.email.clone());
    let made = blocking(move || {
        db.write(|tx| match users::create_team(tx, &name, clock::now()) {
            Ok(id) => {
                tracing::info!(by = %by, team = %name, id = %id, "team added in the portal");
                Ok(Ok(()))
            }
            Err(StoreError::Conflict(why)) => Ok(Err(format!("Not added: {why}."))),
            Err(e) => Err(e),
        })
        .map_err(WebError::from)
    })
    .await?;
    let status = match made {
        Ok(()) => return Ok(Redirect::to("/teams").into_response()),
        Err(why) => why,
    };
    Ok(html(StatusCode::UNPROCESSABLE_ENTITY, &teams_page(&app, &viewer, Some(status)).await?))
}
