//! `/v1/accounts`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wagate_domain::limits::MessagingTier;
use wagate_domain::message::MessageError;
use wagate_domain::time::Timestamp;
use wagate_storage::{Account, WebhookEvent};

use super::list::List;
use super::phone_numbers::{PhoneNumberView, default_rate};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, ListParams, PageRequest, Path, Query};
use crate::services::accounts::{self, AccountDetails, CreateAccount, UpdateAccount};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_account, list_accounts))
        .routes(routes!(get_account, update_account))
        .routes(routes!(resume_account))
        .routes(routes!(list_events))
}

/// A connected Meta account. Its access token, app secret and verify token are never returned.
#[derive(Serialize, ToSchema)]
pub struct AccountView {
    id: String,
    name: String,
    /// `sandbox` for the built-in sandbox's account, `live` for accounts connected here.
    #[schema(example = "live")]
    mode: &'static str,
    graph_base_url: String,
    api_version: String,
    waba_id: String,
    /// The access token's last characters, to tell tokens apart.
    #[schema(example = "…x9Qz")]
    access_token_hint: String,
    phone_numbers: Vec<PhoneNumberView>,
    /// Set while Meta refuses the account (token expired, account locked, payment…): its
    /// messages stay queued and go out once it is fixed.
    paused: Option<PauseView>,
    /// Meta's messaging limit and the account's standing against it.
    messaging_limit: MessagingLimitView,
    created_at: Timestamp,
    updated_at: Timestamp,
}

#[derive(Serialize, ToSchema)]
pub struct PauseView {
    since: Timestamp,
    /// Meta's error: `code`, `title`, `message`, `details`, `fbtrace_id`.
    error: MessageError,
}

#[derive(Serialize, ToSchema)]
pub struct MessagingLimitView {
    /// Meta's tier (`TIER_250` … `TIER_UNLIMITED`); null when Meta did not say.
    #[schema(value_type = Option<String>)]
    tier: Option<MessagingTier>,
    /// Unique users per rolling 24 hours the tier allows outside the window; null: unlimited.
    limit: Option<u64>,
    /// Unique users sent a message outside the 24-hour window in the last 24 hours.
    used_24h: i64,
}

impl AccountView {
    /// `default_rate`: what the dispatcher sends at for a number Meta gave no level.
    fn new(d: AccountDetails, default_rate: u32) -> Self {
        let AccountDetails { account: a, numbers, conversations_opened_24h, messaging_limit } = d;
        Self {
            id: a.id.into_string(),
            name: a.name,
            mode: a.mode.as_str(),
            graph_base_url: a.graph_base_url,
            api_version: a.api_version,
            waba_id: a.waba_id,
            access_token_hint: a.access_token.hint(),
            phone_numbers: numbers.into_iter().map(|n| PhoneNumberView::new(n, default_rate)).collect(),
            paused: a.paused.map(|p| PauseView { since: p.since, error: p.error }),
            messaging_limit: MessagingLimitView {
                tier: a.messaging_tier,
                limit: messaging_limit,
                used_24h: conversations_opened_24h,
            },
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

/// Connect a Meta account.
///
/// wagate reads the WABA's phone numbers with the credentials given, so bad credentials are
/// refused here (`meta_rejected`, with Meta's error) rather than at the first send.
#[utoipa::path(
    post,
    path = "/v1/accounts",
    tag = "accounts",
    request_body = CreateAccount,
    responses(
        (status = 201, body = AccountView),
        (status = 409, description = "The WABA or one of its numbers is already connected", body = ErrorBody),
        (status = 422, description = "A field breaks a rule, or Meta refused the credentials", body = ErrorBody),
        (status = 502, description = "The Graph API could not be reached", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
async fn create_account(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<CreateAccount>,
) -> Result<(StatusCode, Json<AccountView>), ApiError> {
    let created = accounts::create(&state, req).await?;
    Ok((StatusCode::CREATED, Json(AccountView::new(created, default_rate(&state)))))
}

/// List connected accounts.
#[utoipa::path(
    get,
    path = "/v1/accounts",
    tag = "accounts",
    params(ListParams),
    responses((status = 200, body = List<AccountView>)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn list_accounts(State(state): State<AppState>, page: PageRequest) -> Result<Json<List<AccountView>>, ApiError> {
    let all = accounts::list(&state).await?;
    let (all, next_cursor) = page.slice(all, |d| d.account.id.as_str());
    Ok(Json(List { data: all.into_iter().map(|a| AccountView::new(a, default_rate(&state))).collect(), next_cursor }))
}

/// Get an account.
#[utoipa::path(
    get,
    path = "/v1/accounts/{id}",
    tag = "accounts",
    params(("id" = String, Path)),
    responses((status = 200, body = AccountView), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn get_account(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<AccountView>, ApiError> {
    Ok(Json(AccountView::new(accounts::get(&state, &id).await?, default_rate(&state))))
}

/// Rename an account or rotate its credentials.
#[utoipa::path(
    patch,
    path = "/v1/accounts/{id}",
    tag = "accounts",
    params(("id" = String, Path)),
    request_body = UpdateAccount,
    responses(
        (status = 200, body = AccountView),
        (status = 404, body = ErrorBody),
        (status = 422, description = "A field breaks a rule, or Meta refused the new credentials", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
async fn update_account(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<UpdateAccount>,
) -> Result<Json<AccountView>, ApiError> {
    Ok(Json(AccountView::new(accounts::update(&state, &id, req).await?, default_rate(&state))))
}

/// Resume a paused account's sending.
///
/// For a pause whose cause was fixed on Meta's side (a payment method, a lock lifted). A new
/// access token (`PATCH`) resumes by itself.
#[utoipa::path(
    post,
    path = "/v1/accounts/{id}/resume",
    tag = "accounts",
    params(("id" = String, Path)),
    responses((status = 200, body = AccountView), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn resume_account(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<AccountView>, ApiError> {
    Ok(Json(AccountView::new(accounts::resume(&state, &id).await?, default_rate(&state))))
}

/// A webhook change Meta sent about an account, kept as it came.
#[derive(Serialize, ToSchema)]
pub struct EventView {
    /// Increasing with arrival.
    id: i64,
    /// Meta's webhook field: `message_template_status_update`, `phone_number_quality_update`,
    /// `account_update`, `messages` (for errors Meta reported at value level), or any other.
    #[schema(example = "message_template_status_update")]
    field: String,
    /// Meta's `event` (`APPROVED`, `THROUGHPUT_UPGRADE`, `ACCOUNT_VIOLATION`…), `error`, or the field.
    #[schema(example = "APPROVED")]
    kind: String,
    /// What it is about: a template id, a display phone number, an error code.
    subject: Option<String>,
    /// The change's `value` as Meta sent it.
    #[schema(value_type = Object)]
    payload: serde_json::Value,
    /// Meta's time for the change (the entry's `time`), or when wagate received it.
    occurred_at: Timestamp,
    recorded_at: Timestamp,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct EventParams {
    /// Only this webhook field.
    field: Option<String>,
}

/// List an account's webhook events.
///
/// Every change Meta's webhooks carry besides messages and statuses: template status, quality
/// and category updates, account and phone-number updates, errors reported at value level, and
/// fields wagate does not know yet. Newest first.
#[utoipa::path(
    get,
    path = "/v1/accounts/{id}/events",
    tag = "accounts",
    params(("id" = String, Path), EventParams, ListParams),
    responses((status = 200, body = List<EventView>), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn list_events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<EventParams>,
    page: PageRequest,
) -> Result<Json<List<EventView>>, ApiError> {
    let (events, next_cursor) =
        accounts::events(&state, &id, params.field.as_deref(), page.cursor.as_deref(), page.limit).await?;
    Ok(Json(List { data: events.into_iter().map(Into::into).collect(), next_cursor }))
}

impl From<WebhookEvent> for EventView {
    fn from(e: WebhookEvent) -> Self {
        Self {
            id: e.id,
            field: e.field,
            kind: e.kind,
            subject: e.subject,
            payload: e.payload,
            occurred_at: e.occurred_at,
            recorded_at: e.recorded_at,
        }
    }
}

/// An account as events about it show it: what a pause or resume changed, without its
/// numbers and counts (`GET /v1/accounts/{id}` has those).
#[derive(Serialize, ToSchema)]
pub struct AccountEventView {
    id: String,
    name: String,
    #[schema(example = "live")]
    mode: &'static str,
    waba_id: String,
    paused: Option<PauseView>,
    updated_at: Timestamp,
}

impl From<&Account> for AccountEventView {
    fn from(a: &Account) -> Self {
        Self {
            id: a.id.as_str().to_owned(),
            name: a.name.clone(),
            mode: a.mode.as_str(),
            waba_id: a.waba_id.clone(),
            paused: a.paused.as_ref().map(|p| PauseView { since: p.since, error: p.error.clone() }),
            updated_at: a.updated_at,
        }
    }
}
