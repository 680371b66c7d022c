//! `/v1/phone-numbers`.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wagate_storage::PhoneNumber;

use super::List;
use crate::error::ApiError;
use crate::extract::{ListParams, PageRequest};
use crate::services::accounts;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_phone_numbers))
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
    /// Used when a send names no `from`.
    default: bool,
}

impl From<PhoneNumber> for PhoneNumberView {
    fn from(n: PhoneNumber) -> Self {
        Self {
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
    Ok(Json(List { data: numbers.into_iter().map(Into::into).collect(), next_cursor }))
}
