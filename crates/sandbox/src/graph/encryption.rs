//! The Flows business public key: `GET`/`POST /{phone-number-id}/whatsapp_business_encryption`.
//! One key per number, replaced on upload; it must be a 2048-bit RSA public key in PEM.

use axum::extract::{Request, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use super::call::{GraphCall, Shared};
use super::form;
use crate::errors::GraphError;

/// The DER prefix of a SubjectPublicKeyInfo holding a 2048-bit RSA key: sequence lengths, the
/// rsaEncryption OID (1.2.840.113549.1.1.1), and a 257-byte modulus.
const RSA_2048_SPKI: &[u8] = &[
    0x30, 0x82, 0x01, 0x22, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    0x03, 0x82, 0x01, 0x0f, 0x00, 0x30, 0x82, 0x01, 0x0a, 0x02, 0x82, 0x01, 0x01,
];

fn is_rsa_2048_pem(pem: &str) -> bool {
    let pem = pem.trim();
    let Some(body) =
        pem.strip_prefix("-----BEGIN PUBLIC KEY-----").and_then(|b| b.strip_suffix("-----END PUBLIC KEY-----"))
    else {
        return false;
    };
    let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD.decode(b64).is_ok_and(|der| der.len() == 294 && der.starts_with(RSA_2048_SPKI))
}

fn invalid_key() -> GraphError {
    let mut e = GraphError::new(StatusCode::BAD_REQUEST, 100, "OAuthException", "Business public key is invalid", None);
    e.body["error"]["error_user_title"] = json!("Invalid Public Key");
    e.body["error"]["error_user_msg"] = json!("The provided public key format is invalid");
    e
}

pub async fn get(AxState(state): AxState<Shared>, call: GraphCall) -> Result<Response, GraphError> {
    if state.business_of_number(&call.node).is_none() {
        return Err(GraphError::unknown_node(&call.node, "get"));
    }
    let key = state.lock().saved.encryption_keys.get(&call.node).cloned();
    let data: Vec<_> = key
        .into_iter()
        .map(|k| json!({"business_public_key": k, "business_public_key_signature_status": "VALID"}))
        .collect();
    Ok(axum::Json(json!({ "data": data })).into_response())
}

/// Takes the key as multipart (as Meta documents it), a URL-encoded form, or JSON.
pub async fn set(AxState(state): AxState<Shared>, call: GraphCall, req: Request) -> Result<Response, GraphError> {
    if state.business_of_number(&call.node).is_none() {
        return Err(GraphError::unknown_node(&call.node, "post"));
    }
    let form = form::read(req, crate::body::JSON_LIMIT).await?;
    let Some(key) = form.text("business_public_key") else {
        return Err(GraphError::new(
            StatusCode::BAD_REQUEST,
            100,
            "OAuthException",
            "Missing required parameter: business_public_key",
            None,
        ));
    };
    if !is_rsa_2048_pem(key) {
        return Err(invalid_key());
    }
    state.lock().saved.encryption_keys.insert(call.node.clone(), key.trim().to_owned() + "\n");
    state.save();
    Ok(axum::Json(json!({ "success": true })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = include_str!("../../../../testdata/flows-public-key-2048.pem");

    const KEY_1024: &str = include_str!("../../../../testdata/flows-public-key-1024.pem");

    #[test]
    fn takes_only_2048_bit_rsa_keys_in_pem() {
        assert!(is_rsa_2048_pem(KEY));
        assert!(!is_rsa_2048_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"));
        assert!(!is_rsa_2048_pem("not a key"));
        assert!(!is_rsa_2048_pem(KEY_1024), "a 1024-bit key is refused");
    }
}
