//! Users, teams and sessions: the statements both backends run, and the readers of their rows.
//! A user is read with their memberships in one statement (a row per team, the team NULL for a
//! user of none), so that both come from one snapshot; [`users`] folds the rows.

use wagate_domain::id::{TeamId, UserId};

use super::{Columns, Values, corrupt, time};
use crate::{Result, Session, Team, User, UserFilter, UserRole};

macro_rules! user_cols {
    () => {
        "id, email, name, password_hash, role, created_at, updated_at"
    };
}

/// The users `$where` picks (a condition on `users`, its values numbered from `$1`), each with
/// their memberships, by id then team id.
macro_rules! select_users {
    ($where:expr) => {
        concat!(
            "SELECT u.id, u.email, u.name, u.password_hash, u.role, u.created_at, u.updated_at, m.team_id FROM (SELECT ",
            user_cols!(),
            " FROM users WHERE ",
            $where,
            ") u LEFT JOIN team_members m ON m.user_id = u.id ORDER BY u.id, m.team_id"
        )
    };
}

pub(crate) const SELECT_USER: &str = select_users!("id = $1");

pub(crate) const SELECT_USER_BY_EMAIL: &str = select_users!("email = $1");

pub(crate) const SELECT_USERS: &str = select_users!(
    "($1 IS NULL OR id IN (SELECT user_id FROM team_members WHERE team_id = $1)) AND ($2 IS NULL OR id > $2) \
     ORDER BY id LIMIT $3"
);

pub(crate) const INSERT_USER: &str =
    concat!("INSERT INTO users (", user_cols!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7)");

pub(crate) const UPDATE_USER: &str = "UPDATE users SET email = $1, name = $2, password_hash = $3, role = $4, \
    created_at = $5, updated_at = $6 WHERE id = $7";

pub(crate) const DELETE_USER: &str = "DELETE FROM users WHERE id = $1";

pub(crate) const COUNT_ADMINS: &str = "SELECT COUNT(*) FROM users WHERE role = 'admin'";

pub(crate) const INSERT_MEMBERSHIP: &str =
    "INSERT INTO team_members (team_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING";

pub(crate) const DELETE_USER_MEMBERSHIPS: &str = "DELETE FROM team_members WHERE user_id = $1";

pub(crate) const SELECT_TEAM: &str = "SELECT id, name, created_at, updated_at FROM teams WHERE id = $1";

/// By name, case folded first so that both backends agree whatever their collation.
pub(crate) const SELECT_TEAMS: &str =
    "SELECT id, name, created_at, updated_at FROM teams ORDER BY lower(name), name, id";

pub(crate) const INSERT_TEAM: &str = "INSERT INTO teams (id, name, created_at, updated_at) VALUES ($1, $2, $3, $4)";

pub(crate) const UPDATE_TEAM: &str = "UPDATE teams SET name = $1, created_at = $2, updated_at = $3 WHERE id = $4";

pub(crate) const DELETE_TEAM: &str = "DELETE FROM teams WHERE id = $1";

pub(crate) const INSERT_SESSION: &str = "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, \
    last_seen_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)";

/// Session `$1`, unless it expired before `$2`.
pub(crate) const SELECT_SESSION: &str = "SELECT token_hash, user_id, csrf_token, created_at, last_seen_at, \
    expires_at FROM sessions WHERE token_hash = $1 AND expires_at >= $2";

pub(crate) const TOUCH_SESSION: &str = "UPDATE sessions SET last_seen_at = $1, expires_at = $2 WHERE token_hash = $3";

pub(crate) const DELETE_SESSION: &str = "DELETE FROM sessions WHERE token_hash = $1";

pub(crate) const DELETE_USER_SESSIONS: &str = "DELETE FROM sessions WHERE user_id = $1";

/// Up to `$2` sessions expired before `$1`, the oldest first.
pub(crate) const DELETE_EXPIRED_SESSIONS: &str = "DELETE FROM sessions WHERE token_hash IN \
    (SELECT token_hash FROM sessions WHERE expires_at < $1 ORDER BY expires_at LIMIT $2)";

/// A row of [`SELECT_USER`] and its kin: the user (without teams) and one team of theirs.
pub(crate) fn user_row(r: &impl Columns) -> Result<(User, Option<TeamId>)> {
    let role: String = r.get("role")?;
    let user = User {
        id: UserId::from_trusted(r.get("id")?),
        email: r.get("email")?,
        name: r.get("name")?,
        password_hash: r.get("password_hash")?,
        role: UserRole::parse(&role).ok_or_else(|| corrupt("user role", &role))?,
        team_ids: Vec::new(),
        created_at: time(r, "created_at")?,
        updated_at: time(r, "updated_at")?,
    };
    Ok((user, r.get::<Option<String>>("team_id")?.map(TeamId::from_trusted)))
}

/// The users of [`user_row`]s, which come by user: each with their teams.
pub(crate) fn users(rows: Vec<(User, Option<TeamId>)>) -> Vec<User> {
    let mut out: Vec<User> = Vec::new();
    for (user, team) in rows {
        match out.last_mut() {
            Some(last) if last.id == user.id => last.team_ids.extend(team),
            _ => out.push(User { team_ids: team.into_iter().collect(), ..user }),
        }
    }
    out
}

/// [`INSERT_USER`]'s values.
pub(crate) fn user_values(u: &User) -> impl Values<'_> + '_ {
    (
        u.id.as_str(),
        u.email.as_str(),
        u.name.as_str(),
        u.password_hash.as_str(),
        u.role.as_str(),
        u.created_at.as_millis(),
        u.updated_at.as_millis(),
    )
}

/// [`UPDATE_USER`]'s values.
pub(crate) fn user_update_values(u: &User) -> impl Values<'_> + '_ {
    (
        u.email.as_str(),
        u.name.as_str(),
        u.password_hash.as_str(),
        u.role.as_str(),
        u.created_at.as_millis(),
        u.updated_at.as_millis(),
        u.id.as_str(),
    )
}

/// A user's teams as written: each once.
pub(crate) fn memberships(u: &User) -> Vec<String> {
    let mut teams: Vec<String> = u.team_ids.iter().map(|t| t.as_str().to_owned()).collect();
    teams.sort();
    teams.dedup();
    teams
}

/// [`SELECT_USERS`]'s values. Owned: SQLite reads lists on a thread of their own.
pub(crate) fn user_filter_values(f: &UserFilter, limit: u32) -> impl Values<'static> + use<> {
    (
        f.team_id.as_ref().map(|t| t.as_str().to_owned()),
        f.after.as_ref().map(|a| a.as_str().to_owned()),
        i64::from(limit),
    )
}

pub(crate) fn team(r: &impl Columns) -> Result<Team> {
    Ok(Team {
        id: TeamId::from_trusted(r.get("id")?),
        name: r.get("name")?,
        created_at: time(r, "created_at")?,
        updated_at: time(r, "updated_at")?,
    })
}

/// [`INSERT_TEAM`]'s values.
pub(crate) fn team_values(t: &Team) -> impl Values<'_> + '_ {
    (t.id.as_str(), t.name.as_str(), t.created_at.as_millis(), t.updated_at.as_millis())
}

/// [`UPDATE_TEAM`]'s values.
pub(crate) fn team_update_values(t: &Team) -> impl Values<'_> + '_ {
    (t.name.as_str(), t.created_at.as_millis(), t.updated_at.as_millis(), t.id.as_str())
}

pub(crate) fn session(r: &impl Columns) -> Result<Session> {
    Ok(Session {
        token_hash: r.get("token_hash")?,
        user_id: UserId::from_trusted(r.get("user_id")?),
        csrf_token: r.get("csrf_token")?,
        created_at: time(r, "created_at")?,
        last_seen_at: time(r, "last_seen_at")?,
        expires_at: time(r, "expires_at")?,
    })
}

/// [`INSERT_SESSION`]'s values.
pub(crate) fn session_values(s: &Session) -> impl Values<'_> + '_ {
    (
        s.token_hash.as_str(),
        s.user_id.as_str(),
        s.csrf_token.as_str(),
        s.created_at.as_millis(),
        s.last_seen_at.as_millis(),
        s.expires_at.as_millis(),
    )
}

/// Every statement here, for the test of their parameters' order.
#[cfg(test)]
pub(super) fn statements() -> Vec<&'static str> {
    vec![
        SELECT_USER,
        SELECT_USER_BY_EMAIL,
        SELECT_USERS,
        INSERT_USER,
        UPDATE_USER,
        DELETE_USER,
        COUNT_ADMINS,
        INSERT_MEMBERSHIP,
        DELETE_USER_MEMBERSHIPS,
        SELECT_TEAM,
        SELECT_TEAMS,
        INSERT_TEAM,
        UPDATE_TEAM,
        DELETE_TEAM,
        INSERT_SESSION,
        SELECT_SESSION,
        TOUCH_SESSION,
        DELETE_SESSION,
        DELETE_USER_SESSIONS,
        DELETE_EXPIRED_SESSIONS,
    ]
}
