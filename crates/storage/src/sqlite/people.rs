//! Users, teams and sessions of the team inbox. A user's row and memberships are written in one
//! of the writer's transactions; the foreign keys refuse an unknown team.

use async_trait::async_trait;
use rusqlite::{Transaction, ffi};
use wagate_domain::id::{TeamId, UserId};
use wagate_domain::time::Timestamp;

use super::SqliteStore;
use super::rows::{all, execute, first, value};
use crate::shared::{self, memberships, team_update_values, team_values, user_update_values, user_values};
use crate::*;

fn constraint(e: &StorageError, codes: &[i32]) -> bool {
    matches!(e, StorageError::Sqlite(e) if e.sqlite_error().is_some_and(|f| codes.contains(&f.extended_code)))
}

fn is_unique_violation(e: &StorageError) -> bool {
    constraint(e, &[ffi::SQLITE_CONSTRAINT_UNIQUE, ffi::SQLITE_CONSTRAINT_PRIMARYKEY])
}

/// A user's row written, `Conflict` naming the email when it is taken.
fn write_user(tx: &Transaction<'_>, user: &User, insert: bool) -> Result<usize> {
    let written = if insert {
        execute(tx, shared::INSERT_USER, user_values(user))
    } else {
        execute(tx, shared::UPDATE_USER, user_update_values(user))
    };
    written.map_err(|e| match e {
        e if is_unique_violation(&e) && e.to_string().contains("users.email") => {
            StorageError::Conflict(format!("a user with email {} exists already", user.email))
        }
        e if is_unique_violation(&e) => StorageError::Conflict(format!("user {} exists already", user.id)),
        e => e,
    })
}

/// Replaces a user's memberships; `Conflict` for an unknown team.
fn write_memberships(tx: &Transaction<'_>, user: &User) -> Result<()> {
    execute(tx, shared::DELETE_USER_MEMBERSHIPS, [user.id.as_str()])?;
    for team in memberships(user) {
        execute(tx, shared::INSERT_MEMBERSHIP, [team.as_str(), user.id.as_str()]).map_err(|e| {
            if constraint(&e, &[ffi::SQLITE_CONSTRAINT_FOREIGNKEY]) {
                StorageError::Conflict(format!("team {team} does not exist"))
            } else {
                e
            }
        })?;
    }
    Ok(())
}

fn team_conflict(team: &Team) -> impl FnOnce(StorageError) -> StorageError + '_ {
    move |e| {
        if is_unique_violation(&e) && e.to_string().contains("teams.id") {
            StorageError::Conflict(format!("team {} exists already", team.id))
        } else if is_unique_violation(&e) {
            StorageError::Conflict(format!("a team named {} exists already", team.name))
        } else {
            e
        }
    }
}

#[async_trait]
impl People for SqliteStore {
    async fn insert_user(&self, user: &User) -> Result<()> {
        let user = user.clone();
        self.writer
            .write(move |tx| {
                write_user(tx, &user, true)?;
                write_memberships(tx, &user)
            })
            .await
    }

    async fn update_user(&self, user: &User) -> Result<bool> {
        let user = user.clone();
        self.writer
            .write(move |tx| {
                if write_user(tx, &user, false)? == 0 {
                    return Ok(false);
                }
                write_memberships(tx, &user)?;
                Ok(true)
            })
            .await
    }

    async fn get_user(&self, id: &UserId) -> Result<Option<User>> {
        let rows = self.readers.read(|c| all(c, shared::SELECT_USER, [id.as_str()], |r| shared::user_row(r)))?;
        Ok(shared::users(rows).pop())
    }

    async fn find_user_by_email(&self, email: &str) -> Result<Option<User>> {
        let rows = self.readers.read(|c| all(c, shared::SELECT_USER_BY_EMAIL, [email], |r| shared::user_row(r)))?;
        Ok(shared::users(rows).pop())
    }

    async fn list_users(&self, filter: &UserFilter, limit: u32) -> Result<Vec<User>> {
        let values = shared::user_filter_values(filter, limit);
        let rows = self.readers.scan(move |c| all(c, shared::SELECT_USERS, values, |r| shared::user_row(r))).await?;
        Ok(shared::users(rows))
    }

    async fn delete_user(&self, id: &UserId) -> Result<bool> {
        Ok(self.execute(shared::DELETE_USER, (id.as_str().to_owned(),)).await? == 1)
    }

    async fn count_admins(&self) -> Result<i64> {
        self.readers.read(|c| value(c, shared::COUNT_ADMINS, []))
    }

    async fn insert_team(&self, team: &Team) -> Result<()> {
        let team = team.clone();
        self.writer
            .write(move |tx| {
                execute(tx, shared::INSERT_TEAM, team_values(&team)).map_err(team_conflict(&team))?;
                Ok(())
            })
            .await
    }

    async fn update_team(&self, team: &Team) -> Result<bool> {
        let team = team.clone();
        self.writer
            .write(move |tx| {
                Ok(execute(tx, shared::UPDATE_TEAM, team_update_values(&team)).map_err(team_conflict(&team))? == 1)
            })
            .await
    }

    async fn get_team(&self, id: &TeamId) -> Result<Option<Team>> {
        self.readers.read(|c| first(c, shared::SELECT_TEAM, [id.as_str()], |r| shared::team(r)))
    }

    async fn list_teams(&self) -> Result<Vec<Team>> {
        self.readers.scan(|c| all(c, shared::SELECT_TEAMS, [], |r| shared::team(r))).await
    }

    async fn delete_team(&self, id: &TeamId) -> Result<bool> {
        Ok(self.execute(shared::DELETE_TEAM, (id.as_str().to_owned(),)).await? == 1)
    }

    async fn insert_session(&self, session: &Session) -> Result<()> {
        let session = session.clone();
        self.writer
            .write(move |tx| {
                execute(tx, shared::INSERT_SESSION, shared::session_values(&session)).map_err(|e| {
                    if is_unique_violation(&e) {
                        StorageError::Conflict("the session exists already".into())
                    } else if constraint(&e, &[ffi::SQLITE_CONSTRAINT_FOREIGNKEY]) {
                        StorageError::Conflict(format!("user {} does not exist", session.user_id))
                    } else {
                        e
                    }
                })?;
                Ok(())
            })
            .await
    }

    async fn get_session(&self, token_hash: &str, now: Timestamp) -> Result<Option<Session>> {
        self.readers.read(|c| first(c, shared::SELECT_SESSION, (token_hash, now.as_millis()), |r| shared::session(r)))
    }

    async fn touch_session(&self, token_hash: &str, at: Timestamp, expires_at: Timestamp) -> Result<()> {
        let values = (at.as_millis(), expires_at.as_millis(), token_hash.to_owned());
        self.execute(shared::TOUCH_SESSION, values).await?;
        Ok(())
    }

    async fn delete_session(&self, token_hash: &str) -> Result<()> {
        self.execute(shared::DELETE_SESSION, (token_hash.to_owned(),)).await?;
        Ok(())
    }

    async fn delete_user_sessions(&self, user_id: &UserId) -> Result<u64> {
        Ok(self.execute(shared::DELETE_USER_SESSIONS, (user_id.as_str().to_owned(),)).await? as u64)
    }

    async fn delete_expired_sessions(&self, now: Timestamp, limit: u32) -> Result<u64> {
        Ok(self.execute(shared::DELETE_EXPIRED_SESSIONS, (now.as_millis(), i64::from(limit))).await? as u64)
    }
}
