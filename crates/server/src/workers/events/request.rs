//! What a delivery posts, by the endpoint's format: wagate's event signed as Standard Webhooks
//! asks, or (Meta's format) the body Meta sent, a Meta-shaped echo of a message sent through
//! wagate, or an empty Meta body for a test, signed with `X-Hub-Signature-256` as Meta signs.

use serde_json::{Value, json};
use wagate_domain::event::{EventType, secret_key, sign};
use wagate_domain::id::AccountId;
use wagate_domain::signature;
use wagate_domain::time::Timestamp;
use wagate_storage::{EndpointFormat, Event, MetaWebhook, PhoneNumber, StorageError, WebhookEndpoint};

use crate::services::accounts;
use crate::state::AppState;

/// A delivery's body and the headers that sign it.
pub struct Prepared {
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

/// Why a delivery was not prepared.
pub enum NotPrepared {
    /// It cannot be made at all: retrying would not help.
    Never(String),
    /// What it needs could not be read now: tried again as a failed attempt is.
    NotNow(String),
}

impl From<StorageError> for NotPrepared {
    fn from(e: StorageError) -> Self {
        Self::NotNow(format!("reading what the delivery is signed with failed: {e}"))
    }
}

/// The request for `event` to `endpoint`, at `now`.
pub async fn prepare(
    state: &AppState,
    endpoint: &WebhookEndpoint,
    event: &Event,
    now: Timestamp,
) -> Result<Prepared, NotPrepared> {
    match endpoint.format {
        EndpointFormat::Standard => Ok(standard(endpoint, event, now)),
        EndpointFormat::Meta => meta(state, endpoint, event).await,
    }
}

/// `{"type", "timestamp", "data"}` with `webhook-id`, `webhook-timestamp` and a
/// `webhook-signature` by each secret that signs now.
fn standard(endpoint: &WebhookEndpoint, event: &Event, now: Timestamp) -> Prepared {
    let body = json!({ "type": event.kind, "timestamp": event.created_at, "data": event.data });
    let body = serde_json::to_vec(&body).expect("JSON values serialise");
    let timestamp = now.as_millis() / 1000;
    let signatures: Vec<String> = endpoint
        .signing_secrets(now)
        .into_iter()
        .filter_map(|s| secret_key(s.expose()))
        .map(|key| sign(&key, &event.id, timestamp, &body))
        .collect();
    let headers = vec![
        ("webhook-id", event.id.clone()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", signatures.join(" ")),
    ];
    Prepared { body, headers }
}

/// Meta's format: the body and the account whose app secret signs it (unless the endpoint has
/// its own). `webhook-id` still names the event, for receivers that deduplicate.
async fn meta(state: &AppState, endpoint: &WebhookEndpoint, event: &Event) -> Result<Prepared, NotPrepared> {
    let (body, account_id) = if let Some(forwarded) = MetaWebhook::of(event) {
        (forwarded.body, forwarded.account_id.map(AccountId::from_trusted))
    } else if event.kind == EventType::MessageAccepted.as_str() {
        let number = event.phone_number_id.as_deref().unwrap_or_default();
        let Some(number) = accounts::phone_number(state, number).await? else {
            return Err(NotPrepared::Never(format!("phone number '{number}' is no longer connected")));
        };
        let echo = echo(&number, event).ok_or_else(|| NotPrepared::Never("the message has no wamid to echo".into()))?;
        (serde_json::to_vec(&echo).expect("JSON values serialise"), Some(number.account_id))
    } else if event.kind == EventType::Ping.as_str() {
        let body = serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": []}));
        (body.expect("JSON values serialise"), account_of_endpoint(state, endpoint).await?)
    } else {
        return Err(NotPrepared::Never(format!("a {} event is not sent to an endpoint of Meta's format", event.kind)));
    };
    let app_secret = match (&endpoint.app_secret, account_id) {
        (Some(own), _) => own.clone(),
        (None, Some(id)) => match accounts::account(state, &id).await? {
            Some(account) => account.app_secret,
            None => {
                let why = format!("account '{id}' is no longer connected and the endpoint has no app_secret");
                return Err(NotPrepared::Never(why));
            }
        },
        (None, None) => {
            let why = "no account to sign with: give the endpoint an app_secret or phone_number_ids";
            return Err(NotPrepared::Never(why.into()));
        }
    };
    let headers =
        vec![("x-hub-signature-256", signature::sign(app_secret.expose(), &body)), ("webhook-id", event.id.clone())];
    Ok(Prepared { body, headers })
}

/// The account a test of `endpoint` is signed for: that of its first number, or the only one.
async fn account_of_endpoint(state: &AppState, endpoint: &WebhookEndpoint) -> Result<Option<AccountId>, StorageError> {
    if let Some(first) = endpoint.phone_number_ids.as_ref().and_then(|ids| ids.first()) {
        return Ok(accounts::phone_number(state, first).await?.map(|n| n.account_id));
    }
    let accounts = accounts::known_accounts(state).await?;
    Ok(match accounts.as_slice() {
        [only] => Some(only.id.clone()),
        _ => None,
    })
}

/// A message accepted by Meta as Meta's `smb_message_echoes` webhook shows a message the
/// business sent: from the number's display digits, to the recipient as the send named it,
/// with the type's content object as Meta took it.
fn echo(number: &PhoneNumber, event: &Event) -> Option<Value> {
    let data = &event.data;
    let wamid = data.get("wamid")?.as_str()?;
    let kind = data.get("type")?.as_str()?;
    let display: String = number.display_phone_number.chars().filter(char::is_ascii_digit).collect();
    let mut message = json!({
        "from": display,
        "to": data.get("to")?,
        "id": wamid,
        "timestamp": (event.created_at.as_millis() / 1000).to_string(),
        "type": kind,
    });
    message[kind] = data.get(kind).cloned().unwrap_or_else(|| json!({}));
    Some(json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": number.waba_id,
            "changes": [{
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": display, "phone_number_id": number.id},
                    "message_echoes": [message],
                },
                "field": "smb_message_echoes",
            }],
        }],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number() -> PhoneNumber {
        PhoneNumber {
            id: "106540352242922".into(),
            account_id: wagate_domain::id::AccountId::generate(),
            waba_id: "102290129340398".into(),
            display_phone_number: "+1 555-078-3881".into(),
            verified_name: None,
            quality_rating: None,
            is_default: true,
            mode: wagate_storage::AccountMode::Sandbox,
            webhooks_since: None,
            throughput_level: None,
            messages_per_second: None,
            created_at: Timestamp::from_millis(0),
            updated_at: Timestamp::from_millis(0),
        }
    }

    #[test]
    fn an_accepted_message_echoes_as_meta_shows_one() {
        let event = Event {
            seq: 1,
            id: "evt_1".into(),
            kind: "message.accepted".into(),
            phone_number_id: Some("106540352242922".into()),
            data: json!({"id": "msg_1", "to": "16505551234", "type": "text", "text": {"body": "Here's the info"},
                "wamid": "wamid.HBgL", "status": "accepted"}),
            created_at: Timestamp::from_millis(1_739_321_024_500),
        };
        let expected = json!({
            "object": "whatsapp_business_account",
            "entry": [{"id": "102290129340398", "changes": [{"value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                "message_echoes": [{"from": "15550783881", "to": "16505551234", "id": "wamid.HBgL",
                    "timestamp": "1739321024", "type": "text", "text": {"body": "Here's the info"}}]
            }, "field": "smb_message_echoes"}]}]
        });
        assert_eq!(echo(&number(), &event), Some(expected));
        let mut unsent = event.clone();
        unsent.data["wamid"] = Value::Null;
        assert_eq!(echo(&number(), &unsent), None, "no wamid, nothing Meta would have echoed");
    }
}
