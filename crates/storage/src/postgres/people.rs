//! Users, teams and sessions of the team inbox. A user's row and memberships are written in one
//! transaction; the foreign keys refuse an unknown team.

use async_trait::async_trait;
use sqlx::error::DatabaseError;
use wagate_domain::id::{TeamId, UserId};
use wagate_domain::time::Timestamp;

use super::{PgStore, Tx, all, execute, first, value};
use crate::shared::{self, memberships, team_update_values, team_values, user_update_values, user_values};
use crate::*;

/// The database's own error, when `e` is one.
fn database_error(e: &StorageError) -> Option<&dyn DatabaseError> {
    match e {
        StorageError::Database(sqlx::Error::Database(d)) => Some(d.as_ref()),
        _ => None,
    }
}

fn is_unique_violation(e: &StorageError, constraint: &str) -> bool {
    database_error(e).is_some_and(|d| d.is_unique_violation() && d.constraint() == Some(constraint))
}

fn is_foreign_key_violation(e: &StorageError) -> bool {
    database_error(e).is_some_and(|d| d.is_foreign_key_violation())
}

/// A user's row written, `Conflict` naming the email when it is taken.
async fn write_user(tx: &mut Tx, user: &User, insert: bool) -> Result<u64> {
    let written = if insert {
        execute(&mut **tx, shared::INSERT_USER, user_values(user)).await
    } else {
        execute(&mut **tx, shared::UPDATE_USER, user_update_values(user)).await
    };
    written.map_err(|e| {
        if is_unique_violation(&e, "users_email_key") {
            StorageError::Conflict(format!("a user with email {} exists already", user.email))
        } else if is_unique_violation(&e, "users_pkey") {
            StorageError::Conflict(format!("user {} exists already", user.id))
        } else {
            e
        }
    })
}

/// Replaces a user's memberships; `Conflict` for an unknown team.
async fn write_memberships(tx: &mut Tx, user: &User) -> Result<()> {
    execute(&mut **tx, shared::DELETE_USER_MEMBERSHIPS, (user.id.as_str(),)).await?;
    for team in memberships(user) {
        execute(&mut **tx, shared::INSERT_MEMBERSHIP, (team.as_str(), user.id.as_str())).await.map_err(|e| {
            if is_foreign_key_violation(&e) { StorageError::Conflict(format!("team {team} does not exist")) } else { e }
        })?;
    }
    Ok(())
}

fn team_conflict(team: &Team) -> impl FnOnce(StorageError) -> StorageError + '_ {
    move |e| {
        if is_unique_violation(&e, "teams_pkey") {
            StorageError::Conflict(format!("team {} exists already", team.id))
        } else if is_unique_violation(&e, "teams_by_name") {
            StorageError::Conflict(format!("a team named {} exists already", team.name))
        } else {
            e
        }
    }
}

#[async_trait]
impl People for PgStore {
    async fn insert_user(&self, user: &User) -> Result<()> {
        let mut tx = self.begin().await?;
        write_user(&mut tx, user, true).await?;
        write_memberships(&mut tx, user).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn update_user(&self, user: &User) -> Result<bool> {
        let mut tx = self.begin().await?;
        if write_user(&mut tx, user, false).await? == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        write_memberships(&mut tx, user).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn get_user(&self, id: &UserId) -> Result<Option<User>> {
        let rows = all(&self.pool, shared::SELECT_USER, (id.as_str(),), shared::user_row).await?;
        Ok(shared::users(rows).pop())
    }

    async fn find_user_by_email(&self, email: &str) -> Result<Option<User>> {
        let rows = all(&self.pool, shared::SELECT_USER_BY_EMAIL, (email,), shared::user_row).await?;
        Ok(shared::users(rows).pop())
    }

    async fn list_users(&self, filter: &UserFilter, limit: u32) -> Result<Vec<User>> {
        let values = shared::user_filter_values(filter, limit);
        Ok(shared::users(all(&self.pool, shared::SELECT_USERS, values, shared::user_row).await?))
    }

    async fn delete_user(&self, id: &UserId) -> Result<bool> {
        Ok(execute(&self.pool, shared::DELETE_USER, (id.as_str(),)).await? == 1)
    }

    async fn count_admins(&self) -> Result<i64> {
        value(&self.pool, shared::COUNT_ADMINS, ()).await
    }

    async fn insert_team(&self, team: &Team) -> Result<()> {
        execute(&self.pool, shared::INSERT_TEAM, team_values(team)).await.map_err(team_conflict(team))?;
        Ok(())
    }

    async fn update_team(&self, team: &Team) -> Result<bool> {
        Ok(execute(&self.pool, shared::UPDATE_TEAM, team_update_values(team)).await.map_err(team_conflict(team))? == 1)
    }

    async fn get_team(&self, id: &TeamId) -> Result<Option<Team>> {
        first(&self.pool, shared::SELECT_TEAM, (id.as_str(),), shared::team).await
    }

    async fn list_teams(&self) -> Result<Vec<Team>> {
        all(&self.pool, shared::SELECT_TEAMS, (), shared::team).await
    }

    async fn delete_team(&self, id: &TeamId) -> Result<bool> {
        Ok(execute(&self.pool, shared::DELETE_TEAM, (id.as_str(),)).await? == 1)
    }

    async fn insert_session(&self, session: &Session) -> Result<()> {
        execute(&self.pool, shared::INSERT_SESSION, shared::session_values(session)).await.map_err(|e| {
            if is_unique_violation(&e, "sessions_pkey") {
                StorageError::Conflict("the session exists already".into())
            } else if is_foreign_key_violation(&e) {
                StorageError::Conflict(format!("user {} does not exist", session.user_id))
            } else {
                e
            }
        })?;
        Ok(())
    }

    async fn get_session(&self, token_hash: &str, now: Timestamp) -> Result<Option<Session>> {
        first(&self.pool, shared::SELECT_SESSION, (token_hash, now.as_millis()), shared::session).await
    }

    async fn touch_session(&self, token_hash: &str, at: Timestamp, expires_at: Timestamp) -> Result<()> {
        execute(&self.pool, shared::TOUCH_SESSION, (at.as_millis(), expires_at.as_millis(), token_hash)).await?;
        Ok(())
    }

    async fn delete_session(&self, token_hash: &str) -> Result<()> {
        execute(&self.pool, shared::DELETE_SESSION, (token_hash,)).await?;
        Ok(())
    }

    async fn delete_user_sessions(&self, user_id: &UserId) -> Result<u64> {
        execute(&self.pool, shared::DELETE_USER_SESSIONS, (user_id.as_str(),)).await
    }

    async fn delete_expired_sessions(&self, now: Timestamp, limit: u32) -> Result<u64> {
        execute(&self.pool, shared::DELETE_EXPIRED_SESSIONS, (now.as_millis(), i64::from(limit))).await
    }
}
