//! `/v1/phone-numbers`.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wagate_domain::limits::ThroughputLevel;
use wagate_storage::PhoneNumber;

use super::list::List;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, ListParams, PageRequest, Path};
use crate::services::accounts::{self, UpdatePhoneNumber};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_phone_numbers))
        .routes(routes!(update_phone_number))
        .routes(routes!(get_flows_key, set_flows_key))
}

/// A business phone number.
#[derive(Serialize, ToSchema)]
pub struct PhoneNumberView {
    /// Meta's phone-number id: the `from` of a send.
    id: String,
    #[schema(example = "+1 555-0123-4567")]
    display_phone_number: String,
    verified_name: Option<String>,
    quality_rating: Option<String>,
    waba_id: String,
    account_id: String,
    /// `sandbox` for the built-in sandbox's numbers, `live` for connected accounts.
    #[schema(example = "live")]
    mode: &'static str,
    /// The sender of sends without `from`: the live default while any live number is connected,
    /// the sandbox default otherwise.
    default: bool,
    /// Meta's throughput level for the number (`STANDARD`: 80/s, `HIGH`: 1000/s), when known.
    #[schema(value_type = Option<String>)]
    throughput_level: Option<ThroughputLevel>,
    /// The limit wagate sends at: the one set with `PATCH`, else the level's.
    #[schema(example = 80)]
    messages_per_second: u32,
    /// Whether `messages_per_second` was set with `PATCH` (rather than taken from the level).
    messages_per_second_set: bool,
}

/// What the dispatcher sends at for a number whose throughput level Meta did not give.
pub(super) fn default_rate(state: &AppState) -> u32 {
    state.config.dispatcher.default_messages_per_second
}

impl PhoneNumberView {
    /// `default_rate`: what the dispatcher sends at for a number Meta gave no level.
    pub(super) fn new(n: PhoneNumber, default_rate: u32) -> Self {
        let messages_per_second = crate::workers::dispatcher::messages_per_second(&n, default_rate);
        Self {
            throughput_level: n.throughput_level.clone(),
            messages_per_second,
            messages_per_second_set: n.messages_per_second.is_some(),
            id: n.id,
            display_phone_number: n.display_phone_number,
            verified_name: n.verified_name,
            quality_rating: n.quality_rating,
            waba_id: n.waba_id,
            account_id: n.account_id.into_string(),
            mode: n.mode.as_str(),
            default: n.is_default,
        }
    }
}

/// List the phone numbers of every connected account.
#[utoipa::path(
    get,
    path = "/v1/phone-numbers",
    tag = "phone-numbers",
    params(ListParams),
    responses((status = 200, body = List<PhoneNumberView>)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn list_phone_numbers(
    State(state): State<AppState>,
    page: PageRequest,
) -> Result<Json<List<PhoneNumberView>>, ApiError> {
    let mut numbers = accounts::list_phone_numbers(&state).await?;
    numbers.sort_by(|a, b| a.id.cmp(&b.id));
    let (numbers, next_cursor) = page.slice(numbers, |n| n.id.as_str());
    Ok(Json(List {
        data: numbers.into_iter().map(|n| PhoneNumberView::new(n, default_rate(&state))).collect(),
        next_cursor,
    }))
}

/// Change a phone number's settings: make it the default sender.
#[utoipa::path(
    patch,
    path = "/v1/phone-numbers/{id}",
    tag = "phone-numbers",
    params(("id" = String, Path, description = "Meta's phone-number id")),
    request_body = UpdatePhoneNumber,
    responses((status = 200, body = PhoneNumberView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn update_phone_number(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<UpdatePhoneNumber>,
) -> Result<Json<PhoneNumberView>, ApiError> {
    Ok(Json(PhoneNumberView::new(accounts::update_phone_number(&state, &id, req).await?, default_rate(&state))))
}

#[cfg(test)]
mod tests {
    use wagate_domain::id::AccountId;
    use wagate_domain::time::Timestamp;
    use wagate_storage::AccountMode;

    use super::*;

    fn number(level: Option<&str>, set: Option<u32>) -> PhoneNumber {
        PhoneNumber {
            id: "106540352242922".into(),
            account_id: AccountId::generate(),
            waba_id: "102290129340398".into(),
            display_phone_number: "+1 555 010 0001".into(),
            verified_name: None,
            quality_rating: None,
            is_default: false,
            mode: AccountMode::Live,
            webhooks_since: None,
            throughput_level: level.map(ThroughputLevel::parse),
            messages_per_second: set,
            created_at: Timestamp::from_millis(0),
            updated_at: Timestamp::from_millis(0),
        }
    }

    /// The view shows the rate the dispatcher sends at, including the configured default for a
    /// number Meta gave no level.
    #[test]
    fn the_rate_shown_is_the_one_sent_at() {
        let shown = |level, set| PhoneNumberView::new(number(level, set), 7).messages_per_second;
        assert_eq!(shown(None, None), 7);
        assert_eq!(shown(Some("STANDARD"), None), 80);
        assert_eq!(shown(Some("HIGH"), None), 1_000);
        assert_eq!(shown(Some("HIGH"), Some(50)), 50);
    }
}

/// A number's Flows business public key.
#[derive(Serialize, ToSchema)]
pub struct FlowsKeyView {
    /// PEM; null when none is set.
    public_key: Option<String>,
    /// Meta's `business_public_key_signature_status` (`VALID`, `MISMATCH`).
    signature_status: Option<String>,
}

impl From<accounts::FlowsKey> for FlowsKeyView {
    fn from(k: accounts::FlowsKey) -> Self {
        Self { public_key: k.public_key, signature_status: k.signature_status }
    }
}

/// The number's Flows business public key, as Meta has it.
#[utoipa::path(
    get,
    path = "/v1/phone-numbers/{id}/flows-key",
    tag = "phone-numbers",
    params(("id" = String, Path, description = "Meta's phone-number id")),
    responses((status = 200, body = FlowsKeyView), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn get_flows_key(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<FlowsKeyView>, ApiError> {
    Ok(Json(accounts::flows_key(&state, &id).await?.into()))
}

/// `PUT /v1/phone-numbers/{id}/flows-key`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetFlowsKey {
    /// A 2048-bit RSA public key in PEM (`-----BEGIN PUBLIC KEY-----`).
    public_key: String,
}

/// Set the number's Flows business public key (a 2048-bit RSA public key in PEM) at Meta.
#[utoipa::path(
    put,
    path = "/v1/phone-numbers/{id}/flows-key",
    tag = "phone-numbers",
    params(("id" = String, Path, description = "Meta's phone-number id")),
    request_body = SetFlowsKey,
    responses((status = 200, body = FlowsKeyView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn set_flows_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<SetFlowsKey>,
) -> Result<Json<FlowsKeyView>, ApiError> {
    Ok(Json(accounts::set_flows_key(&state, &id, &req.public_key).await?.into()))
}
