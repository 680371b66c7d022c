//! `POST /{phone-number-id}/messages`: Meta's bodies, sent through the outbox as the native API
//! sends, answered with Meta's answer once the dispatcher has it (bounded).

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use wagate_domain::input;
use wagate_domain::message::{GraphRequest, check_idempotency_key, request_hash};
use wagate_domain::validation::FieldError;
use wagate_storage::PhoneNumber;

use super::call::GraphCall;
use super::error::GraphApiError;
use crate::auth::AuthenticatedKey;
use crate::extract::body_failure;
use crate::outbox::DispatchOutcome;
use crate::services::messages::{self, Idempotency, SendOptions, Sent};
use crate::services::uploads;
use crate::state::AppState;

pub(super) async fn messages_endpoint(
    State(state): State<AppState>,
    call: GraphCall,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, GraphApiError> {
    let sender = sender(&state, &call.node).await?;
    Ok(match send(&state, &call.caller, &sender, &call.headers, body).await? {
        GraphSend::Read => Json(json!({ "success": true })).into_response(),
        GraphSend::Message(outcome) => answer(outcome),
    })
}

/// The business number a messages path names.
async fn sender(state: &AppState, phone_number_id: &str) -> Result<PhoneNumber, GraphApiError> {
    state
        .store
        .get_phone_number(phone_number_id)
        .await
        .map_err(|e| GraphApiError::from_service(e.into()))?
        .ok_or_else(|| GraphApiError::unknown_number(phone_number_id))
}

/// What a body of Meta's messages endpoint did.
enum GraphSend {
    /// Marked a message read (with or without a typing indicator).
    Read,
    /// Sent (or gave up waiting for) a message: Meta's answer, as the dispatcher got it.
    Message(DispatchOutcome),
}

/// A body of Meta's messages endpoint, read as Meta reads it and sent through the outbox, waiting
/// (bounded) for Meta's answer as a client of Meta's endpoint expects.
async fn send(
    state: &AppState,
    caller: &AuthenticatedKey,
    sender: &PhoneNumber,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<GraphSend, GraphApiError> {
    let body = body.map_err(|e| {
        let (status, why) = body_failure(&e);
        GraphApiError::new(status, 100, "(#100) Invalid parameter", Some(why))
    })?;
    let mut value: Value =
        serde_json::from_slice(&body).map_err(|e| GraphApiError::invalid(format!("The body is not JSON: {e}")))?;
    input::nul_free(&value).map_err(|e| GraphApiError::from_field(&e))?;
    uploads::name_uploads_by_id(&mut value);
    match GraphRequest::parse(&value).map_err(|e| GraphApiError::from_field(&e))? {
        GraphRequest::Read(receipt) => {
            messages::send_read_receipt(state.store.as_ref(), &state.graph, &sender.id, &receipt)
                .await
                .map_err(GraphApiError::from_service)?;
            Ok(GraphSend::Read)
        }
        GraphRequest::Send(outbound) => {
            // Not Meta's, but harmless to Meta's clients: a retry with the same key is
            // answered with the first request's outcome instead of sending again.
            let idempotency = match headers.get("idempotency-key").map(|v| v.to_str()) {
                None => None,
                Some(Ok(k)) if check_idempotency_key("Idempotency-Key", k).is_ok() => Some(Idempotency {
                    api_key_id: caller.id.clone(),
                    key: k.to_owned(),
                    request_hash: request_hash(&value),
                }),
                Some(_) => {
                    return Err(GraphApiError::from_field(&FieldError::new(
                        "Idempotency-Key",
                        "idempotency_key",
                        "must be 1 to 255 visible ASCII characters",
                    )));
                }
            };
            let options = SendOptions { idempotency, ..SendOptions::default() };
            let sent = messages::enqueue(state, sender, *outbound, None, options, &|_| Value::Null)
                .await
                .map_err(GraphApiError::from_service)?;
            let id = match sent {
                Sent::New(details) => details.message.id,
                Sent::Replayed { message_id, .. } => message_id,
            };
            let wait = Duration::from_millis(state.config.graph_surface.wait_ms);
            let outcome = state
                .outbox
                .wait_for_dispatch(state.store.as_ref(), &id, wait)
                .await
                .map_err(GraphApiError::from_service)?;
            Ok(GraphSend::Message(outcome))
        }
    }
}

/// Meta's answer to the send, or the error a client would get from Meta.
fn answer(outcome: DispatchOutcome) -> Response {
    match outcome {
        DispatchOutcome::Accepted(body) => Json(body).into_response(),
        DispatchOutcome::Failed { status, body: Some(body), .. } => {
            (StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST), Json(body)).into_response()
        }
        DispatchOutcome::Failed { body: None, error, .. } => {
            let mut e = GraphApiError::unknown();
            if let Some(error) = error {
                e.body["error"]["error_data"] = json!({"messaging_product": "whatsapp", "details": error.message});
            }
            e.into_response()
        }
        // Throughput is the honest name for "not sent in time", and every client retries it.
        DispatchOutcome::Cancelled => GraphApiError::new(
            StatusCode::BAD_REQUEST,
            130429,
            "(#130429) Rate limit hit",
            Some("Cloud API message throughput has been reached. The message was not sent; retry it.".into()),
        )
        .into_response(),
    }
}
