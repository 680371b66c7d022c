//! `/whatomate/api/…`: Whatomate's Messages API, so its users switch by changing the base URL.
//! A thin adapter: each request is read in Whatomate's shape, turned into the native model
//! (Meta's content objects) and handed to the same services as the native API; answers are
//! `{"status": "success", "data": …}`, errors `{"status": "error", "message": …}` with the field
//! named as Whatomate names it. Not in the OpenAPI document, like `/graph`.

mod common;
mod read;
mod send;

use axum::Router;
use axum::routing::{get, post, put};

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/whatomate/api/contacts", get(read::list_contacts))
        .route("/whatomate/api/contacts/{id}/messages", get(read::list_messages).post(send::contact_message))
        .route("/whatomate/api/messages/template", post(send::template_message))
        .route("/whatomate/api/messages/media", post(send::media_message))
        .route("/whatomate/api/messages/{id}/read", put(send::mark_read))
}
