//! `/graph/{version}/…`: the Meta-compatible surface. The same paths and bodies as the Graph
//! API, so a Cloud API client works by changing only its base URL; a wagate API key is the
//! bearer token. Sends go through the same outbox and limits as the native API, and the answer
//! is Meta's, in Meta's shapes and codes. Beyond messages, Meta's paths for media, templates,
//! phone numbers, groups and the Flows key are served by wagate's own features.

mod call;
mod error;
mod groups;
mod messages;
mod nodes;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use wagate_domain::media_file;

pub(crate) use self::nodes::{account_view, number_view};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().nest("/graph", routes())
}

/// Meta's paths below the API version (`/{version}/{node}/messages`, …), to be mounted under a
/// base path: `/graph` here, and a ChakraHQ plugin's `…/api` (ChakraHQ wraps the same API).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/{version}/{node}", get(nodes::get_node).post(nodes::post_node).delete(nodes::delete_node))
        .route("/{version}/{node}/messages", post(messages::messages_endpoint))
        .route(
            "/{version}/{node}/media",
            post(nodes::upload_media).layer(DefaultBodyLimit::max(media_file::MAX_BYTES as usize + 64 * 1024)),
        )
        .route("/{version}/{node}/phone_numbers", get(nodes::phone_numbers))
        .route(
            "/{version}/{node}/message_templates",
            get(nodes::list_templates).post(nodes::create_template).delete(nodes::delete_templates),
        )
        .route("/{version}/{node}/whatsapp_business_encryption", get(nodes::get_encryption).post(nodes::set_encryption))
        .route("/{version}/{node}/groups", get(groups::list).post(groups::create))
        .route("/{version}/{node}/invite_link", get(groups::invite_link).post(groups::reset_invite_link))
        .route("/{version}/{node}/participants", axum::routing::delete(groups::remove_participants))
        .route(
            "/{version}/{node}/join_requests",
            get(groups::join_requests).post(groups::approve_join_requests).delete(groups::reject_join_requests),
        )
}
