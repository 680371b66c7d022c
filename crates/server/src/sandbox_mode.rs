//! Sandbox mode: the seeded sandbox account, kept in the database so its phone-number ids and
//! secrets survive restarts, and the in-process sandbox built from it.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use wagate_domain::id::AccountId;
use wagate_domain::limits::ThroughputLevel;
use wagate_domain::secret::Secret;
use wagate_domain::time::Timestamp;
use wagate_domain::window;
use wagate_sandbox::{Sandbox, SandboxConfig, Seed, SeedNumber, StatusDelays};
use wagate_storage::{Account, AccountMode, PhoneNumber, StorageError, Store};

use crate::config::Config;
use crate::services::accounts::DEFAULT_API_VERSION;
use crate::state::AppState;

/// Creates or refreshes the sandbox account and returns the sandbox to mount, or, with the
/// sandbox disabled, takes the sandbox account's numbers out of service. Instances starting
/// together on one database race here; the loser reads what the winner wrote.
///
/// The sandbox itself lives in this process: with several instances, each has its own, and the
/// account points at whichever started last. Sandbox mode is for one instance.
pub async fn prepare(store: &dyn Store, config: &Config, self_url: &str) -> Result<Option<Sandbox>, StorageError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match prepare_once(store, config, self_url).await {
            Err(StorageError::Conflict(why)) if attempt < 3 => {
                tracing::info!(%why, "another instance is seeding the sandbox; reading its account");
            }
            other => return other,
        }
    }
}

async fn prepare_once(store: &dyn Store, config: &Config, self_url: &str) -> Result<Option<Sandbox>, StorageError> {
    let existing = store.list_accounts().await?.into_iter().find(|a| a.mode == AccountMode::Sandbox);
    if !config.sandbox.enabled {
        if let Some(account) = existing {
            store.update_account(&account, account.updated_at, Some(&[])).await?;
            tracing::info!(account_id = %account.id, "sandbox disabled: its phone numbers are out of service");
        }
        return Ok(None);
    }
    let base_url = format!("{self_url}/sandbox");
    let settings = &config.sandbox;
    let now = Timestamp::now();
    let (account, numbers) = match existing {
        Some(mut account) => {
            let last_updated_at = account.updated_at;
            account.graph_base_url = base_url;
            if let Some(s) = &settings.app_secret {
                account.app_secret = s.clone();
            }
            if let Some(t) = &settings.verify_token {
                account.verify_token = t.clone();
            }
            account.updated_at = now;
            let mut numbers: Vec<PhoneNumber> =
                store.list_phone_numbers().await?.into_iter().filter(|n| n.account_id == account.id).collect();
            // The default number first, as when seeded.
            numbers.sort_by(|a, b| b.is_default.cmp(&a.is_default).then_with(|| a.id.cmp(&b.id)));
            let replace = if numbers.is_empty() {
                // Re-enabled after being disabled: new numbers, as a new Meta test account gets.
                numbers = seed_numbers(&account, &Seed::generate(None, None, None).phone_numbers, now);
                Some(numbers.as_slice())
            } else {
                None
            };
            if !store.update_account(&account, last_updated_at, replace).await? {
                return Err(StorageError::Conflict("the sandbox account changed while starting; start again".into()));
            }
            (account, numbers)
        }
        None => {
            let seed = Seed::generate(
                settings.app_secret.as_ref().map(|s| s.expose().to_owned()),
                settings.verify_token.as_ref().map(|s| s.expose().to_owned()),
                None,
            );
            let account = Account {
                id: AccountId::generate(),
                name: seed.business_name.clone(),
                mode: AccountMode::Sandbox,
                graph_base_url: base_url,
                api_version: DEFAULT_API_VERSION.into(),
                waba_id: seed.waba_id.clone(),
                access_token: Secret::new(seed.access_token.clone()),
                app_secret: Secret::new(seed.app_secret.clone()),
                verify_token: Secret::new(seed.verify_token.clone()),
                paused: None,
                messaging_tier: None,
                created_at: now,
                updated_at: now,
            };
            let numbers = seed_numbers(&account, &seed.phone_numbers, now);
            store.insert_account(&account, &numbers).await?;
            tracing::info!(account_id = %account.id, waba_id = %account.waba_id, "sandbox account created");
            (account, numbers)
        }
    };
    let seed = Seed {
        waba_id: account.waba_id.clone(),
        business_name: account.name.clone(),
        access_token: account.access_token.expose().to_owned(),
        app_secret: account.app_secret.expose().to_owned(),
        verify_token: account.verify_token.expose().to_owned(),
        phone_numbers: numbers
            .iter()
            .map(|n| SeedNumber {
                id: n.id.clone(),
                display_phone_number: n.display_phone_number.clone(),
                verified_name: n.verified_name.clone().unwrap_or_default(),
            })
            .collect(),
    };
    let delays = StatusDelays {
        sent: Duration::from_millis(settings.sent_delay_ms),
        delivered: Duration::from_millis(settings.delivered_delay_ms),
        read: Duration::from_millis(settings.read_delay_ms),
    };
    Ok(Some(Sandbox::new(SandboxConfig {
        seed,
        webhook_url: Some(format!("{self_url}/webhooks/meta")),
        delays,
        state_dir: Some(config.data_dir.join("sandbox")),
    })))
}

fn seed_numbers(account: &Account, numbers: &[SeedNumber], now: Timestamp) -> Vec<PhoneNumber> {
    numbers
        .iter()
        .enumerate()
        .map(|(i, n)| PhoneNumber {
            id: n.id.clone(),
            account_id: account.id.clone(),
            waba_id: account.waba_id.clone(),
            display_phone_number: n.display_phone_number.clone(),
            verified_name: Some(n.verified_name.clone()),
            quality_rating: Some("GREEN".into()),
            is_default: i == 0,
            mode: AccountMode::Sandbox,
            // A sandbox number is born here: wagate has seen all of its traffic, so it knows
            // every window from the start.
            webhooks_since: Some(now.minus(window::WINDOW)),
            // The in-process sandbox's default, as Meta's standard numbers.
            throughput_level: Some(ThroughputLevel::Standard),
            messages_per_second: None,
            created_at: now,
            updated_at: now,
        })
        .collect()
}

/// How long `POST /sandbox/simulate/inbound` waits for wagate to have applied the message.
const APPLIED_WAIT: Duration = Duration::from_secs(5);

/// `POST /sandbox/simulate/inbound` answers once wagate has stored the message it simulates (and
/// so opened the customer's 24-hour window), or after [`APPLIED_WAIT`] saying it has not: a
/// script may reply at once. The sandbox alone cannot know; its answer gains `applied`.
pub async fn answer_once_applied(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST || !req.uri().path().ends_with("/simulate/inbound") {
        return next.run(req).await;
    }
    // Listening before the sandbox even sends the webhook: nothing can be missed.
    let mut applied = state.signals.watch_inbound_applied();
    let response = next.run(req).await;
    if !response.status().is_success() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1024 * 1024).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let Some((mut answer, wamid)) = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|a| a.get("wamid").and_then(Value::as_str).map(str::to_owned).map(|w| (a, w)))
    else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    let done = wait_until_applied(&state, &mut applied, &wamid).await;
    answer["applied"] = json!(done);
    if !done {
        answer["warning"] = json!(format!(
            "wagate had not stored this message within {} s; it will once its webhook is processed",
            APPLIED_WAIT.as_secs()
        ));
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(answer.to_string()))
}

async fn wait_until_applied(
    state: &AppState,
    applied: &mut tokio::sync::broadcast::Receiver<String>,
    wamid: &str,
) -> bool {
    let stored = || async { matches!(state.store.find_message_by_wamid(wamid).await, Ok(Some(_))) };
    let deadline = tokio::time::Instant::now() + APPLIED_WAIT;
    loop {
        match tokio::time::timeout_at(deadline, applied.recv()).await {
            Ok(Ok(w)) if w == wamid => return true,
            Ok(Ok(_)) => {}
            // Too many others went by: it may have been among them.
            Ok(Err(RecvError::Lagged(_))) => {
                if stored().await {
                    return true;
                }
            }
            Ok(Err(RecvError::Closed)) | Err(_) => return stored().await,
        }
    }
}
