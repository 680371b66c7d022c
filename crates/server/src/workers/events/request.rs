//! What a delivery posts, by the endpoint's format: wagate's event signed as Standard Webhooks
//! asks, or (Meta's format) the body Meta sent, a Meta-shaped echo of a message sent through
//! wagate, or an empty Meta body for a test, signed with `X-Hub-Signature-256` as Meta signs.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wagate_domain::event::{EventType, secret_key, sign};
use wagate_domain::secret::Secret;
use wagate_domain::signature;
use wagate_domain::time::Timestamp;
use wagate_storage::{Account, EndpointFormat, Event, MetaWebhook, PhoneNumber, StorageError, Store, WebhookEndpoint};

/// A delivery's body and the headers that sign it.
pub struct Prepared {
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

/// Why a delivery cannot be made at all: retrying would not help.
pub struct Unsendable(pub String);

/// The request for `event` to `endpoint`, at `now`.
pub async fn prepare(
    directory: &mut Directory,
    store: &dyn Store,
    endpoint: &WebhookEndpoint,
    event: &Event,
    now: Timestamp,
) -> Result<Prepared, Unsendable> {
    match endpoint.format {
        EndpointFormat::Standard => Ok(standard(endpoint, event, now)),
        EndpointFormat::Meta => meta(directory, store, endpoint, event).await,
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
async fn meta(
    directory: &mut Directory,
    store: &dyn Store,
    endpoint: &WebhookEndpoint,
    event: &Event,
) -> Result<Prepared, Unsendable> {
    let (body, account_id) = if let Some(forwarded) = MetaWebhook::of(event) {
        (forwarded.body, forwarded.account_id)
    } else if event.kind == EventType::MessageAccepted.as_str() {
        let number = event.phone_number_id.as_deref().unwrap_or_default();
        let Some(number) = directory.number(store, number).await else {
            return Err(Unsendable(format!("phone number '{number}' is no longer connected")));
        };
        let echo = echo(number, event).ok_or_else(|| Unsendable("the message has no wamid to echo".to_owned()))?;
        (serde_json::to_vec(&echo).expect("JSON values serialise"), Some(number.account_id.as_str().to_owned()))
    } else if event.kind == EventType::Ping.as_str() {
        let body = serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": []}));
        (body.expect("JSON values serialise"), directory.account_of_endpoint(store, endpoint).await)
    } else {
        return Err(Unsendable(format!("a {} event is not sent to an endpoint of Meta's format", event.kind)));
    };
    let app_secret = match &endpoint.app_secret {
        Some(own) => own.clone(),
        None => match account_id {
            Some(id) => directory.app_secret(store, &id).await.ok_or_else(|| {
                Unsendable(format!("account '{id}' is no longer connected and the endpoint has no app_secret"))
            })?,
            None => {
                return Err(Unsendable(
                    "no account to sign with: give the endpoint an app_secret or phone_number_ids".to_owned(),
                ));
            }
        },
    };
    let headers =
        vec![("x-hub-signature-256", signature::sign(app_secret.expose(), &body)), ("webhook-id", event.id.clone())];
    Ok(Prepared { body, headers })
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

/// The accounts and numbers Meta's format signs and echoes with, read again when a second old
/// or when one is missing (at most every quarter second).
#[derive(Default)]
pub struct Directory {
    accounts: HashMap<String, Account>,
    numbers: HashMap<String, PhoneNumber>,
    read_at: Option<Instant>,
}

const DIRECTORY_FRESH: Duration = Duration::from_secs(1);
const DIRECTORY_REREAD: Duration = Duration::from_millis(250);

impl Directory {
    async fn number(&mut self, store: &dyn Store, id: &str) -> Option<&PhoneNumber> {
        self.refresh(store, !self.numbers.contains_key(id)).await;
        self.numbers.get(id)
    }

    async fn app_secret(&mut self, store: &dyn Store, account_id: &str) -> Option<Secret> {
        self.refresh(store, !self.accounts.contains_key(account_id)).await;
        self.accounts.get(account_id).map(|a| a.app_secret.clone())
    }

    /// The account a test of `endpoint` is signed for: that of its first number, or the only one.
    async fn account_of_endpoint(&mut self, store: &dyn Store, endpoint: &WebhookEndpoint) -> Option<String> {
        if let Some(first) = endpoint.phone_number_ids.as_ref().and_then(|ids| ids.first()) {
            return self.number(store, first).await.map(|n| n.account_id.as_str().to_owned());
        }
        self.refresh(store, false).await;
        match self.accounts.len() {
            1 => self.accounts.keys().next().cloned(),
            _ => None,
        }
    }

    async fn refresh(&mut self, store: &dyn Store, missing: bool) {
        let age = self.read_at.map(|at| at.elapsed());
        let due = match age {
            None => true,
            Some(age) => age >= DIRECTORY_FRESH || (missing && age >= DIRECTORY_REREAD),
        };
        if !due {
            return;
        }
        match read(store).await {
            Ok((accounts, numbers)) => {
                self.accounts = accounts.into_iter().map(|a| (a.id.as_str().to_owned(), a)).collect();
                self.numbers = numbers.into_iter().map(|n| (n.id.clone(), n)).collect();
            }
            Err(e) => tracing::error!(error = %e, "reading the accounts to sign Meta-format deliveries failed"),
        }
        self.read_at = Some(Instant::now());
    }
}

async fn read(store: &dyn Store) -> Result<(Vec<Account>, Vec<PhoneNumber>), StorageError> {
    Ok((store.list_accounts().await?, store.list_phone_numbers().await?))
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
