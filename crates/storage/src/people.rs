//! The people who sign in to the team inbox: users with a role, the teams they belong to, and
//! their sessions (a browser's signed-in cookie, kept by its hash).

use wagate_domain::id::{TeamId, UserId};
use wagate_domain::time::Timestamp;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UserRole {
    /// Sees every conversation, manages users and teams.
    Admin,
    /// Sees their teams' conversations and the unassigned ones.
    Agent,
}

impl UserRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Agent => "agent",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Self::Admin),
            "agent" => Some(Self::Agent),
            _ => None,
        }
    }
}

/// A user as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct User {
    pub id: UserId,
    /// Lower case: unique.
    pub email: String,
    pub name: String,
    /// Argon2id, in the PHC string format.
    pub password_hash: String,
    pub role: UserRole,
    /// The teams they belong to, by id.
    pub team_ids: Vec<TeamId>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Clone, Debug, Default)]
pub struct UserFilter {
    /// Only members of this team.
    pub team_id: Option<TeamId>,
    /// Only users with ids above this one (the previous page's last).
    pub after: Option<UserId>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Team {
    pub id: TeamId,
    /// Unique, regardless of case.
    pub name: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A signed-in browser.
#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    /// SHA-256 of the cookie's token, hex: a leaked database gives no usable cookie.
    pub token_hash: String,
    pub user_id: UserId,
    /// What every form and fragment request must carry back.
    pub csrf_token: String,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    pub expires_at: Timestamp,
}
