//! The people of the team inbox: users (an `admin` manages them and sees everything; an `agent`
//! sees their teams' conversations) and teams, managed through `/v1/users` and `/v1/teams` and
//! `wagate users create`. Passwords are kept as Argon2id hashes, never shown.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wagate_domain::id::{TeamId, UserId};
use wagate_domain::secret::Secret;
use wagate_domain::time::Timestamp;
use wagate_domain::user::{check_password, parse_email, parse_name};
use wagate_domain::validation::FieldError;
use wagate_storage::{Store, Team, User, UserFilter, UserRole};

use super::ServiceError;

/// `POST /v1/users`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// What they sign in with; unique, regardless of case.
    pub email: String,
    /// As the others see it: 1 to 100 characters.
    pub name: String,
    /// 10 to 256 characters; kept as an Argon2id hash.
    #[schema(value_type = String)]
    pub password: Secret,
    /// `agent` (the default) or `admin`.
    #[serde(default)]
    pub role: Option<String>,
    /// The teams they belong to.
    #[serde(default)]
    pub team_ids: Vec<String>,
}

/// `PATCH /v1/users/{id}`: what is given changes.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    pub email: Option<String>,
    pub name: Option<String>,
    /// A new password ends every session of theirs.
    #[schema(value_type = Option<String>)]
    pub password: Option<Secret>,
    pub role: Option<String>,
    /// Replaces their teams.
    pub team_ids: Option<Vec<String>>,
}

/// A user as the API shows it: never the password's hash.
#[derive(Serialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub email: String,
    pub name: String,
    /// `admin` or `agent`.
    pub role: String,
    pub team_ids: Vec<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id.into_string(),
            email: u.email,
            name: u.name,
            role: u.role.as_str().to_owned(),
            team_ids: u.team_ids.into_iter().map(TeamId::into_string).collect(),
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// `POST /v1/teams`, `PATCH /v1/teams/{id}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamInput {
    /// 1 to 100 characters; unique, regardless of case.
    pub name: String,
}

#[derive(Serialize, ToSchema)]
pub struct TeamView {
    pub id: String,
    pub name: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl From<Team> for TeamView {
    fn from(t: Team) -> Self {
        Self { id: t.id.into_string(), name: t.name, created_at: t.created_at, updated_at: t.updated_at }
    }
}

/// The password as an Argon2id hash (OWASP's parameters: 19 MiB, 2 passes), with a salt of its
/// own. Tens of milliseconds of CPU: run off the async threads.
pub async fn hash_password(password: Secret) -> Result<String, ServiceError> {
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|e| internal(format!("no randomness for a salt: {e}")))?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| internal(e.to_string()))?;
        Argon2::default()
            .hash_password(password.expose().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| internal(e.to_string()))
    })
    .await
    .map_err(|e| internal(e.to_string()))?
}

/// Whether `password` is the one `hash` was made of.
pub async fn verify_password(hash: String, password: Secret) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .is_ok_and(|parsed| Argon2::default().verify_password(password.expose().as_bytes(), &parsed).is_ok())
    })
    .await
    .unwrap_or(false)
}

fn internal(why: String) -> ServiceError {
    ServiceError::Storage(wagate_storage::StorageError::Setup(why))
}

fn parse_role(role: Option<&str>) -> Result<UserRole, FieldError> {
    match role {
        None => Ok(UserRole::Agent),
        Some(r) => UserRole::parse(r).ok_or_else(|| FieldError::new("role", "one_of", "must be admin or agent")),
    }
}

/// Team ids given, each a team that exists.
async fn teams_of(store: &dyn Store, ids: &[String]) -> Result<Vec<TeamId>, ServiceError> {
    let mut out: Vec<TeamId> = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        let unknown = || {
            FieldError::new(format!("team_ids[{i}]"), "unknown_team", format!("'{id}' is no team (see GET /v1/teams)"))
        };
        let parsed = TeamId::parse(id).ok_or_else(unknown)?;
        if store.get_team(&parsed).await?.is_none() {
            return Err(unknown().into());
        }
        if !out.contains(&parsed) {
            out.push(parsed);
        }
    }
    out.sort();
    Ok(out)
}

pub async fn create_user(store: &dyn Store, req: CreateUser) -> Result<User, ServiceError> {
    let email = parse_email("email", &req.email)?;
    let name = parse_name("name", &req.name)?;
    check_password("password", req.password.expose())?;
    let role = parse_role(req.role.as_deref())?;
    let team_ids = teams_of(store, &req.team_ids).await?;
    let now = Timestamp::now();
    let user = User {
        id: UserId::generate(),
        email,
        name,
        password_hash: hash_password(req.password).await?,
        role,
        team_ids,
        created_at: now,
        updated_at: now,
    };
    store.insert_user(&user).await?;
    Ok(user)
}

fn parse_user_id(id: &str) -> Result<UserId, ServiceError> {
    UserId::parse(id).ok_or_else(|| ServiceError::not_found("user", id))
}

pub async fn get_user(store: &dyn Store, id: &str) -> Result<User, ServiceError> {
    store.get_user(&parse_user_id(id)?).await?.ok_or_else(|| ServiceError::not_found("user", id))
}

pub async fn list_users(
    store: &dyn Store,
    team_id: Option<&str>,
    after: Option<&str>,
    limit: usize,
) -> Result<(Vec<User>, bool), ServiceError> {
    let team_id = team_id
        .map(|t| {
            TeamId::parse(t).ok_or_else(|| FieldError::new("team_id", "unknown_team", format!("'{t}' is no team id")))
        })
        .transpose()?;
    let after = after
        .map(|c| {
            UserId::parse(c)
                .ok_or_else(|| FieldError::new("cursor", "invalid_cursor", "is not a cursor this list gave"))
        })
        .transpose()?;
    let mut page = store.list_users(&UserFilter { team_id, after }, (limit + 1) as u32).await?;
    let more = page.len() > limit;
    page.truncate(limit);
    Ok((page, more))
}

/// The last admin can be neither demoted nor removed: someone must be able to manage the rest.
async fn keeps_an_admin(store: &dyn Store, user: &User, stays_admin: bool) -> Result<(), ServiceError> {
    if user.role == UserRole::Admin && !stays_admin && store.count_admins().await? <= 1 {
        return Err(ServiceError::Conflict(format!("{} is the last admin: make another user admin first", user.email)));
    }
    Ok(())
}

pub async fn update_user(store: &dyn Store, id: &str, req: UpdateUser) -> Result<User, ServiceError> {
    let mut user = get_user(store, id).await?;
    if let Some(e) = &req.email {
        user.email = parse_email("email", e)?;
    }
    if let Some(n) = &req.name {
        user.name = parse_name("name", n)?;
    }
    if let Some(r) = &req.role {
        let role = parse_role(Some(r))?;
        keeps_an_admin(store, &user, role == UserRole::Admin).await?;
        user.role = role;
    }
    if let Some(t) = &req.team_ids {
        user.team_ids = teams_of(store, t).await?;
    }
    let new_password = req.password.is_some();
    if let Some(p) = req.password {
        check_password("password", p.expose())?;
        user.password_hash = hash_password(p).await?;
    }
    user.updated_at = Timestamp::now();
    if !store.update_user(&user).await? {
        return Err(ServiceError::not_found("user", id));
    }
    if new_password {
        store.delete_user_sessions(&user.id).await?;
    }
    Ok(user)
}

pub async fn delete_user(store: &dyn Store, id: &str) -> Result<(), ServiceError> {
    let user = get_user(store, id).await?;
    keeps_an_admin(store, &user, false).await?;
    if !store.delete_user(&user.id).await? {
        return Err(ServiceError::not_found("user", id));
    }
    Ok(())
}

fn parse_team_id(id: &str) -> Result<TeamId, ServiceError> {
    TeamId::parse(id).ok_or_else(|| ServiceError::not_found("team", id))
}

/// A team's name, unless another team has it regardless of case (the databases' own folding of
/// case differs beyond ASCII: this one is Unicode's, the same on both).
async fn team_name(store: &dyn Store, name: &str, except: Option<&TeamId>) -> Result<String, ServiceError> {
    let name = parse_name("name", name)?;
    let folded = name.to_lowercase();
    if let Some(other) =
        store.list_teams().await?.iter().find(|t| Some(&t.id) != except && t.name.to_lowercase() == folded)
    {
        return Err(ServiceError::Conflict(format!("team {} is named '{}' already", other.id, other.name)));
    }
    Ok(name)
}

pub async fn create_team(store: &dyn Store, req: TeamInput) -> Result<Team, ServiceError> {
    let name = team_name(store, &req.name, None).await?;
    let now = Timestamp::now();
    let team = Team { id: TeamId::generate(), name, created_at: now, updated_at: now };
    store.insert_team(&team).await?;
    Ok(team)
}

pub async fn get_team(store: &dyn Store, id: &str) -> Result<Team, ServiceError> {
    store.get_team(&parse_team_id(id)?).await?.ok_or_else(|| ServiceError::not_found("team", id))
}

pub async fn rename_team(store: &dyn Store, id: &str, req: TeamInput) -> Result<Team, ServiceError> {
    let mut team = get_team(store, id).await?;
    team.name = team_name(store, &req.name, Some(&team.id)).await?;
    team.updated_at = Timestamp::now();
    if !store.update_team(&team).await? {
        return Err(ServiceError::not_found("team", id));
    }
    Ok(team)
}

pub async fn delete_team(store: &dyn Store, id: &str) -> Result<(), ServiceError> {
    let team = get_team(store, id).await?;
    if !store.delete_team(&team.id).await? {
        return Err(ServiceError::not_found("team", id));
    }
    Ok(())
}
