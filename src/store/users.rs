//! Teams and users: roles, password hashes, disabled and bouncing flags.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{Result, StoreError};
use crate::id::{TeamId, TicketId, UserId};
use crate::lifecycle::Role;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Team {
    pub id: TeamId,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub team_id: Option<TeamId>,
    pub disabled: bool,
    /// Why mail to this address bounces; no mail is sent while set.
    pub bouncing: Option<String>,
    /// The IANA zone the portal shows times in; empty for `web.time_zone`.
    pub time_zone: String,
}

impl User {
    /// The name to show: the display name, or the address.
    pub fn display(&self) -> &str {
        if self.name.is_empty() { &self.email } else { &self.name }
    }
}

const USER_COLUMNS: &str = "id, email, name, role, team_id, disabled, bouncing, time_zone";

fn user_row(r: &Row) -> rusqlite::Result<User> {
    let role: String = r.get(3)?;
    Ok(User {
        id: r.get(0)?,
        email: r.get(1)?,
        name: r.get(2)?,
        role: Role::parse(&role).unwrap_or(Role::Member),
        team_id: r.get(4)?,
        disabled: r.get(5)?,
        bouncing: r.get(6)?,
        time_zone: r.get(7)?,
    })
}

fn conflict_on_unique(e: rusqlite::Error, what: String) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(f, _) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE => {
            StoreError::Conflict(what)
        }
        e => e.into(),
    }
}

pub fn create_team(c: &Connection, name: &str, now: i64) -> Result<TeamId> {
    c.execute("INSERT INTO teams(name, created_at) VALUES (?1, ?2)", params![name.trim(), now])
        .map_err(|e| conflict_on_unique(e, format!("team {name:?} exists already")))?;
    Ok(TeamId(c.last_insert_rowid()))
}

pub fn team_by_name(c: &Connection, name: &str) -> Result<Option<Team>> {
    Ok(c.query_row("SELECT id, name FROM teams WHERE name = ?1", [name.trim()], |r| {
        Ok(Team { id: r.get(0)?, name: r.get(1)? })
    })
    .optional()?)
}

pub fn team(c: &Connection, id: TeamId) -> Result<Team> {
    Ok(c.query_row("SELECT id, name FROM teams WHERE id = ?1", [id], |r| Ok(Team { id: r.get(0)?, name: r.get(1)? }))?)
}

pub fn teams(c: &Connection) -> Result<Vec<Team>> {
    let mut st = c.prepare_cached("SELECT id, name FROM teams ORDER BY name")?;
    let rows = st.query_map([], |r| Ok(Team { id: r.get(0)?, name: r.get(1)? }))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub struct NewUser<'a> {
    pub email: &'a str,
    pub name: &'a str,
    pub role: Role,
    pub team_id: Option<TeamId>,
    pub password_hash: Option<&'a str>,
}

pub fn create_user(c: &Connection, u: &NewUser, now: i64) -> Result<UserId> {
    let email = crate::address::normalize(u.email);
    if crate::address::split(&email).is_none() {
        return Err(StoreError::Conflict(format!("{:?} is not an email address", u.email)));
    }
    if u.role != Role::Staff && u.team_id.is_none() {
        return Err(StoreError::Conflict("members and admins belong to a team".into()));
    }
    c.execute(
        "INSERT INTO users(email, name, role, team_id, password_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![email, u.name.trim(), u.role.as_str(), u.team_id, u.password_hash, now],
    )
    .map_err(|e| conflict_on_unique(e, format!("user {email} exists already")))?;
    Ok(UserId(c.last_insert_rowid()))
}

pub fn by_email(c: &Connection, email: &str) -> Result<Option<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email = ?1");
    Ok(c.prepare_cached(&sql)?.query_row([crate::address::normalize(email)], user_row).optional()?)
}

/// The user whose address or confirmed alias `address` is.
pub fn by_address(c: &Connection, address: &str) -> Result<Option<User>> {
    if let Some(u) = by_email(c, address)? {
        return Ok(Some(u));
    }
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = (SELECT user_id FROM aliases WHERE address = ?1)");
    Ok(c.prepare_cached(&sql)?.query_row([crate::address::normalize(address)], user_row).optional()?)
}

/// Makes `alias` an address of user `id`; refused when it is a user's own
/// address or another user's alias (adding it again to the same user is no change).
pub fn add_alias(c: &Connection, id: UserId, alias: &str, now: i64) -> Result<()> {
    let alias = crate::address::normalize(alias);
    if crate::address::split(&alias).is_none() {
        return Err(StoreError::Conflict(format!("{alias:?} is not an email address")));
    }
    if let Some(owner) = by_address(c, &alias)? {
        return if owner.id == id && owner.email != alias {
            Ok(())
        } else {
            Err(StoreError::Conflict(format!("{alias} is already the address of {}", owner.email)))
        };
    }
    c.execute("INSERT INTO aliases(address, user_id, created_at) VALUES (?1, ?2, ?3)", params![alias, id, now])?;
    Ok(())
}

/// Removes `alias` from user `id`; `NotFound` when it is not theirs.
pub fn remove_alias(c: &Connection, id: UserId, alias: &str) -> Result<()> {
    let alias = crate::address::normalize(alias);
    expect_one(c.execute("DELETE FROM aliases WHERE address = ?1 AND user_id = ?2", params![alias, id])?)
}

/// Every alias with its user's address, sorted by user then alias.
pub fn all_aliases(c: &mut Connection) -> Result<Vec<(String, String)>> {
    let mut st = c.prepare_cached(
        "SELECT a.address, u.email FROM aliases a JOIN users u ON u.id = a.user_id ORDER BY u.email, a.address",
    )?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The user's alias addresses, sorted.
pub fn aliases(c: &Connection, id: UserId) -> Result<Vec<String>> {
    let mut st = c.prepare_cached("SELECT address FROM aliases WHERE user_id = ?1 ORDER BY address")?;
    let rows = st.query_map([id], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn by_id(c: &Connection, id: UserId) -> Result<User> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1");
    Ok(c.prepare_cached(&sql)?.query_row([id], user_row)?)
}

pub fn list(c: &Connection) -> Result<Vec<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY email");
    let mut st = c.prepare(&sql)?;
    let rows = st.query_map([], user_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Active staff, who hear of customer-side updates.
pub fn staff(c: &Connection) -> Result<Vec<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE role = 'staff' AND disabled = 0 ORDER BY id");
    let mut st = c.prepare_cached(&sql)?;
    let rows = st.query_map([], user_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Active admins of a team.
pub fn admins_of(c: &Connection, team: TeamId) -> Result<Vec<User>> {
    let sql =
        format!("SELECT {USER_COLUMNS} FROM users WHERE team_id = ?1 AND role = 'admin' AND disabled = 0 ORDER BY id");
    let mut st = c.prepare_cached(&sql)?;
    let rows = st.query_map([team], user_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Active customers of `team` who wrote on `ticket` (by mail or on the
/// portal): they hear of the ticket like its opener. Someone who has since
/// left the team is no longer one, since they may no longer see it.
pub fn participants_of(c: &Connection, ticket: TicketId, team: TeamId) -> Result<Vec<User>> {
    let sql = format!(
        "SELECT {USER_COLUMNS} FROM users WHERE id IN (SELECT author_id FROM messages WHERE ticket_id = ?1)
         AND team_id = ?2 AND role != 'staff' AND disabled = 0 ORDER BY id"
    );
    let mut st = c.prepare_cached(&sql)?;
    let rows = st.query_map(params![ticket, team], user_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Gives a user without a name the display name their mail came with, so
/// the portal and notifications say "Jane Doe", not the address; a name
/// already set (by an admin, or an earlier mail) stays.
pub fn adopt_name(c: &Connection, mut user: User, name: Option<&str>) -> Result<User> {
    let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) else { return Ok(user) };
    if user.name.is_empty() {
        c.prepare_cached("UPDATE users SET name = ?2 WHERE id = ?1")?.execute(params![user.id, name])?;
        user.name = name.to_string();
    }
    Ok(user)
}

pub fn password_hash(c: &Connection, id: UserId) -> Result<Option<String>> {
    Ok(c.query_row("SELECT password_hash FROM users WHERE id = ?1", [id], |r| r.get(0))?)
}

/// Sets a new password and ends the user's sessions: whoever knew the old
/// one must not stay logged in.
pub fn set_password(c: &Connection, id: UserId, hash: &str) -> Result<()> {
    expect_one(c.execute("UPDATE users SET password_hash = ?2 WHERE id = ?1", params![id, hash])?)?;
    c.execute("DELETE FROM sessions WHERE user_id = ?1", [id])?;
    Ok(())
}

/// Sets the zone the portal shows the user's times in ("" for the configured default).
pub fn set_time_zone(c: &Connection, id: UserId, zone: &str) -> Result<()> {
    expect_one(c.execute("UPDATE users SET time_zone = ?2 WHERE id = ?1", params![id, zone])?)
}

pub fn set_disabled(c: &Connection, email: &str, disabled: bool) -> Result<()> {
    let email = crate::address::normalize(email);
    expect_one(c.execute("UPDATE users SET disabled = ?2 WHERE email = ?1", params![email, disabled])?)?;
    if disabled {
        c.execute("DELETE FROM sessions WHERE user_id = (SELECT id FROM users WHERE email = ?1)", [email])?;
    }
    Ok(())
}

/// Gives user `id` a new role. Staff belong to no team (the team is
/// cleared); a member or admin keeps their team, or takes `team` when given,
/// and without either it is refused.
pub fn set_role(c: &Connection, id: UserId, role: Role, team: Option<TeamId>) -> Result<()> {
    let user = by_id(c, id)?;
    let team = match role {
        Role::Staff => None,
        _ => Some(
            team.or(user.team_id).ok_or_else(|| StoreError::Conflict("members and admins belong to a team".into()))?,
        ),
    };
    expect_one(c.execute("UPDATE users SET role = ?2, team_id = ?3 WHERE id = ?1", params![id, role.as_str(), team])?)
}

/// Marks (or with `None` clears) an address as bouncing; false when no user has it.
pub fn set_bouncing(c: &Connection, email: &str, why: Option<&str>) -> Result<bool> {
    Ok(c.execute("UPDATE users SET bouncing = ?2 WHERE email = ?1", params![crate::address::normalize(email), why])?
        == 1)
}

fn expect_one(changed: usize) -> Result<()> {
    if changed == 1 { Ok(()) } else { Err(StoreError::NotFound) }
}
