//! Meta accounts: credentials checked against the Graph API, phone numbers read from it.

use std::sync::Arc;

use serde::Deserialize;
use utoipa::ToSchema;
use wagate_domain::id::AccountId;
use wagate_domain::limits::{MessagingTier, NotATier};
use wagate_domain::secret::Secret;
use wagate_domain::time::Timestamp;
use wagate_domain::validation::{FieldError, check_length};
use wagate_domain::window;
use wagate_storage::{Account, AccountMode, PhoneNumber, StorageError, WebhookEvent, WebhookEventFilter};

use super::ServiceError;
use crate::graph::{GraphFailure, Target};
use crate::state::AppState;

pub const DEFAULT_GRAPH_BASE_URL: &str = "https://graph.facebook.com";
pub const DEFAULT_API_VERSION: &str = "v23.0";

/// `POST /v1/accounts`: connect a Meta account (a WABA and the credentials to act for it).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccount {
    /// Your name for this account.
    pub name: String,
    /// Default `https://graph.facebook.com`; a standalone `wagate sandbox` is `http://HOST:PORT/sandbox`.
    pub graph_base_url: Option<String>,
    /// Graph API version, default `v23.0`.
    pub api_version: Option<String>,
    /// A system-user access token with whatsapp_business_messaging and whatsapp_business_management.
    #[schema(value_type = String)]
    pub access_token: Secret,
    /// The WhatsApp Business Account id.
    pub waba_id: String,
    /// The Meta app's secret, which signs its webhooks.
    #[schema(value_type = String)]
    pub app_secret: Secret,
    /// The token Meta echoes when it verifies the webhook URL.
    #[schema(value_type = String)]
    pub verify_token: Secret,
    /// Meta's messaging limit tier (`TIER_250`, `TIER_2K`, `TIER_10K`, `TIER_100K`,
    /// `TIER_UNLIMITED`), when you know it better than Meta's answer does.
    #[schema(example = "TIER_2K")]
    pub messaging_tier: Option<String>,
}

/// `PATCH /v1/accounts/{id}`: rename, or rotate credentials. Changing the token, URL or version
/// re-reads the phone numbers with the new values, so a bad token is refused at once.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAccount {
    pub name: Option<String>,
    pub graph_base_url: Option<String>,
    pub api_version: Option<String>,
    #[schema(value_type = Option<String>)]
    pub access_token: Option<Secret>,
    #[schema(value_type = Option<String>)]
    pub app_secret: Option<Secret>,
    #[schema(value_type = Option<String>)]
    pub verify_token: Option<Secret>,
    /// Meta's messaging limit tier, for counting unique users reached outside the window.
    #[schema(example = "TIER_10K")]
    pub messaging_tier: Option<String>,
}

/// An account with its numbers and where it stands against its messaging limit.
pub struct AccountDetails {
    pub account: Account,
    pub numbers: Vec<PhoneNumber>,
    /// Unique users sent a message outside the 24-hour window in the last 24 hours.
    pub conversations_opened_24h: i64,
    /// The tier's limit of such users per 24 hours; None: unlimited.
    pub messaging_limit: Option<u64>,
}

/// A tier named by Meta's name, in any case.
fn check_tier(tier: &str) -> Result<MessagingTier, FieldError> {
    tier.to_ascii_uppercase().parse().map_err(|e: NotATier| FieldError::new("messaging_tier", "one_of", e.to_string()))
}

/// The limit of an account's tier, or of `messaging.default_tier` when Meta has not said.
pub fn tier_limit(tier: Option<MessagingTier>, config: &crate::config::Config) -> Option<u64> {
    tier.unwrap_or(config.messaging.default_tier).limit()
}

async fn details(
    state: &AppState,
    account: Account,
    numbers: Vec<PhoneNumber>,
) -> Result<AccountDetails, ServiceError> {
    let since = window::messaging_limit_since(Timestamp::now());
    let conversations_opened_24h = state.store.count_conversations_opened(&account.id, since).await?;
    let messaging_limit = tier_limit(account.messaging_tier, &state.config);
    Ok(AccountDetails { account, numbers, conversations_opened_24h, messaging_limit })
}

fn check_name(name: &str) -> Result<String, FieldError> {
    let name = name.trim();
    check_length("name", name, 1, 100)?;
    Ok(name.to_owned())
}

/// Longer than any Graph URL, short enough to log and store without thought.
const MAX_BASE_URL_CHARS: usize = 2048;

fn check_base_url(url: &str) -> Result<String, FieldError> {
    let parsed = super::http_url("graph_base_url", url, MAX_BASE_URL_CHARS)?;
    if parsed.query().is_some() || parsed.fragment().is_some() {
        let why = "must be an http or https URL (it must not have a query or fragment)";
        return Err(FieldError::new("graph_base_url", "url", why));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

fn check_version(v: &str) -> Result<String, FieldError> {
    let ok = v.strip_prefix('v').and_then(|r| r.split_once('.')).is_some_and(|(a, b)| {
        !a.is_empty() && !b.is_empty() && a.bytes().all(|c| c.is_ascii_digit()) && b.bytes().all(|c| c.is_ascii_digit())
    });
    if ok { Ok(v.to_owned()) } else { Err(FieldError::new("api_version", "api_version", "must look like v23.0")) }
}

fn check_waba(v: &str) -> Result<String, FieldError> {
    if !v.is_empty() && v.len() <= 32 && v.bytes().all(|c| c.is_ascii_digit()) {
        Ok(v.to_owned())
    } else {
        Err(FieldError::new("waba_id", "digits", "must be Meta's numeric WhatsApp Business Account id"))
    }
}

/// A credential as Meta issues it (an access token, an app secret): no whitespace or controls.
pub(super) fn check_secret(path: &str, v: &str) -> Result<Secret, FieldError> {
    check_length(path, v, 1, 2048)?;
    if v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(FieldError::new(path, "no_whitespace", "must not contain whitespace"));
    }
    Ok(Secret::new(v))
}

/// A phone number by id, as recently read (`Caches::senders`) or read now and kept.
pub async fn phone_number(state: &AppState, id: &str) -> Result<Option<PhoneNumber>, StorageError> {
    let epoch = state.outbox.settings_epoch();
    if let Some(n) = state.caches.senders.get(id, epoch) {
        return Ok(Some(n));
    }
    let number = state.store.get_phone_number(id).await?;
    if let Some(n) = &number {
        state.caches.senders.put(n, epoch);
    }
    Ok(number)
}

/// The connected accounts, read afresh, and kept in the signer cache.
pub async fn read_accounts(state: &AppState, epoch: u64) -> Result<Arc<Vec<Account>>, StorageError> {
    let accounts = Arc::new(state.store.list_accounts().await?);
    state.caches.signers.put(accounts.clone(), epoch);
    Ok(accounts)
}

/// The connected accounts as the signer cache has them, or read afresh. As for the receiver, the
/// cache only says yes: what it lacks is looked up again.
pub async fn known_accounts(state: &AppState) -> Result<Arc<Vec<Account>>, StorageError> {
    let epoch = state.outbox.settings_epoch();
    match state.caches.signers.get(epoch) {
        Some(accounts) => Ok(accounts),
        None => read_accounts(state, epoch).await,
    }
}

/// An account as the signer cache has it, or read afresh.
pub async fn account(state: &AppState, id: &AccountId) -> Result<Option<Account>, StorageError> {
    match known_accounts(state).await?.iter().find(|a| &a.id == id) {
        Some(a) => Ok(Some(a.clone())),
        None => state.store.get_account(id).await,
    }
}

/// Reads the WABA's numbers with the account's credentials (the proof that they work), each with
/// its throughput level, and the account's messaging tier as Meta reports it.
pub async fn read_phone_numbers(
    state: &AppState,
    account: &Account,
) -> Result<(Vec<PhoneNumber>, Option<MessagingTier>), ServiceError> {
    let infos = state.graph.phone_numbers(&Target::from(account), &account.waba_id).await.map_err(|e| match e {
        GraphFailure::Meta { error, .. } => ServiceError::MetaRejected { error: Box::new(error) },
        GraphFailure::Refused(refused) => {
            FieldError::new("graph_base_url", "private_address", refused.to_string()).into()
        }
        other => ServiceError::GraphUnavailable(other.to_string()),
    })?;
    let now = Timestamp::now();
    let mut numbers = Vec::with_capacity(infos.len());
    let mut tier = None;
    for i in infos {
        // Not fatal: without a level the number is limited as Meta's standard (80/s).
        let limits = match state.graph.number_limits(&Target::from(account), &i.id).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(phone_number_id = %i.id, error = %e, "reading the number's throughput failed");
                Default::default()
            }
        };
        tier = tier.or(limits.messaging_tier);
        numbers.push(PhoneNumber {
            id: i.id,
            account_id: account.id.clone(),
            waba_id: account.waba_id.clone(),
            display_phone_number: i.display_phone_number,
            verified_name: i.verified_name,
            quality_rating: i.quality_rating,
            is_default: false,
            mode: account.mode,
            // Not until its webhooks arrive: until then wagate cannot know the 24-hour windows.
            webhooks_since: None,
            throughput_level: limits.throughput_level,
            messages_per_second: None,
            created_at: now,
            updated_at: now,
        });
    }
    Ok((numbers, tier))
}

pub async fn create(state: &AppState, req: CreateAccount) -> Result<AccountDetails, ServiceError> {
    let now = Timestamp::now();
    let account = Account {
        id: AccountId::generate(),
        name: check_name(&req.name)?,
        mode: AccountMode::Live,
        graph_base_url: check_base_url(req.graph_base_url.as_deref().unwrap_or(DEFAULT_GRAPH_BASE_URL))?,
        api_version: check_version(req.api_version.as_deref().unwrap_or(DEFAULT_API_VERSION))?,
        waba_id: check_waba(&req.waba_id)?,
        access_token: check_secret("access_token", req.access_token.expose())?,
        app_secret: check_secret("app_secret", req.app_secret.expose())?,
        verify_token: check_secret("verify_token", req.verify_token.expose())?,
        paused: None,
        messaging_tier: req.messaging_tier.as_deref().map(check_tier).transpose()?,
        created_at: now,
        updated_at: now,
    };
    let existing = state.store.accounts_by_waba(&account.waba_id).await?;
    if let Some(other) = existing.iter().find(|a| a.graph_base_url == account.graph_base_url) {
        return Err(ServiceError::Conflict(format!(
            "WABA {} at {} is already connected as account {}",
            account.waba_id, account.graph_base_url, other.id
        )));
    }
    let (numbers, tier) = read_phone_numbers(state, &account).await?;
    let mut account = account;
    account.messaging_tier = account.messaging_tier.or(tier);
    // Storage refuses a number another account holds (`Conflict`, a 409).
    state.store.insert_account(&account, &numbers).await?;
    tracing::info!(account_id = %account.id, waba_id = %account.waba_id, numbers = numbers.len(), "account connected");
    details(state, account, numbers).await
}

pub async fn update(state: &AppState, id: &str, req: UpdateAccount) -> Result<AccountDetails, ServiceError> {
    let mut account = get(state, id).await?.account;
    if account.mode == AccountMode::Sandbox {
        // The running sandbox holds these; changing them here would only break it.
        let managed = [
            ("graph_base_url", req.graph_base_url.is_some()),
            ("api_version", req.api_version.is_some()),
            ("access_token", req.access_token.is_some()),
            ("app_secret", req.app_secret.is_some()),
            ("verify_token", req.verify_token.is_some()),
        ];
        if let Some((field, _)) = managed.iter().find(|(_, given)| *given) {
            return Err(FieldError::new(
                *field,
                "sandbox_managed",
                "cannot be changed on the sandbox account; set WAGATE_SANDBOX_APP_SECRET or \
                 WAGATE_SANDBOX_VERIFY_TOKEN and restart instead",
            )
            .into());
        }
    }
    let last_updated_at = account.updated_at;
    let mut reread = false;
    if let Some(name) = &req.name {
        account.name = check_name(name)?;
    }
    if let Some(url) = &req.graph_base_url {
        account.graph_base_url = check_base_url(url)?;
        reread = true;
    }
    if let Some(v) = &req.api_version {
        account.api_version = check_version(v)?;
        reread = true;
    }
    if let Some(t) = &req.access_token {
        account.access_token = check_secret("access_token", t.expose())?;
        reread = true;
    }
    if let Some(s) = &req.app_secret {
        account.app_secret = check_secret("app_secret", s.expose())?;
    }
    if let Some(t) = &req.verify_token {
        account.verify_token = check_secret("verify_token", t.expose())?;
    }
    if let Some(t) = &req.messaging_tier {
        account.messaging_tier = Some(check_tier(t)?);
    }
    // Strictly later than the last update, which the write below is conditional on.
    account.updated_at = Timestamp::from_millis(Timestamp::now().as_millis().max(last_updated_at.as_millis() + 1));
    let numbers = if reread {
        let (mut numbers, tier) = read_phone_numbers(state, &account).await?;
        if req.messaging_tier.is_none() {
            account.messaging_tier = tier.or(account.messaging_tier.take());
        }
        // Keep the default flag of numbers that stay.
        let known = numbers_of(state, &account.id).await?;
        for n in &mut numbers {
            n.is_default = known.iter().any(|k| k.id == n.id && k.is_default);
        }
        Some(numbers)
    } else {
        None
    };
    if !state.store.update_account(&account, last_updated_at, numbers.as_deref()).await? {
        return Err(ServiceError::Conflict(format!(
            "account {} was changed by another request meanwhile; read it again and retry",
            account.id
        )));
    }
    tracing::info!(account_id = %account.id, reread, "account updated");
    // What is cached of accounts (their messaging tier, their name) is read again.
    state.outbox.settings_changed(std::iter::empty());
    if reread {
        // New credentials that Meta took (the numbers were read with them) end a pause.
        if account.paused.is_some() {
            resume_sending(state, &account).await?;
        }
        // Senders switch to the new credentials now, not at their next periodic reread.
        reload_senders(state, &account).await?;
    }
    get(state, id).await
}

/// `POST /v1/accounts/{id}/resume`: sending resumes after a pause (once the cause is fixed on
/// Meta's side: a payment method, a lock lifted). A new token resumes by itself.
pub async fn resume(state: &AppState, id: &str) -> Result<AccountDetails, ServiceError> {
    let current = get(state, id).await?;
    resume_sending(state, &current.account).await?;
    get(state, id).await
}

async fn resume_sending(state: &AppState, account: &Account) -> Result<(), ServiceError> {
    if state.store.resume_account(&account.id).await? {
        tracing::info!(account_id = %account.id, "sending resumed");
        reload_senders(state, account).await?;
    }
    Ok(())
}

/// Makes every number worker reread its number and account, and wakes the account's.
async fn reload_senders(state: &AppState, account: &Account) -> Result<(), ServiceError> {
    let numbers = numbers_of(state, &account.id).await?;
    state.outbox.settings_changed(numbers.iter().map(|n| n.id.as_str()));
    Ok(())
}

/// The phone numbers of one account.
pub async fn numbers_of(state: &AppState, id: &AccountId) -> Result<Vec<PhoneNumber>, ServiceError> {
    Ok(state.store.list_phone_numbers().await?.into_iter().filter(|n| &n.account_id == id).collect())
}

pub async fn get(state: &AppState, id: &str) -> Result<AccountDetails, ServiceError> {
    let parsed = AccountId::parse(id).ok_or_else(|| ServiceError::not_found("account", id))?;
    let account = state.store.get_account(&parsed).await?.ok_or_else(|| ServiceError::not_found("account", id))?;
    let numbers = numbers_of(state, &account.id).await?;
    details(state, account, numbers).await
}

pub async fn list(state: &AppState) -> Result<Vec<AccountDetails>, ServiceError> {
    let accounts = state.store.list_accounts().await?;
    let numbers = state.store.list_phone_numbers().await?;
    let mut out = Vec::with_capacity(accounts.len());
    for a in accounts {
        let mine = numbers.iter().filter(|n| n.account_id == a.id).cloned().collect();
        out.push(details(state, a, mine).await?);
    }
    Ok(out)
}

pub async fn list_phone_numbers(state: &AppState) -> Result<Vec<PhoneNumber>, ServiceError> {
    Ok(state.store.list_phone_numbers().await?)
}

/// `PATCH /v1/phone-numbers/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePhoneNumber {
    /// `true` makes this number the sender of sends without `from` (among numbers of its mode;
    /// live numbers take precedence over sandbox ones).
    pub default: Option<bool>,
    /// The number's throughput limit, 1 to 1000 messages per second, shared by everything that
    /// sends from it; `null` returns to the limit of Meta's level for the number.
    #[serde(default, deserialize_with = "crate::extract::present")]
    #[schema(value_type = Option<u32>, example = 50)]
    pub messages_per_second: Option<Option<u32>>,
}

pub async fn update_phone_number(
    state: &AppState,
    id: &str,
    req: UpdatePhoneNumber,
) -> Result<PhoneNumber, ServiceError> {
    if req.default == Some(false) {
        return Err(FieldError::new(
            "default",
            "unsupported_value",
            "only true is accepted: make another number the default instead",
        )
        .into());
    }
    if let Some(Some(mps)) = req.messages_per_second
        && !(1..=1_000).contains(&mps)
    {
        return Err(FieldError::new("messages_per_second", "range", "must be between 1 and 1000").into());
    }
    let now = Timestamp::now();
    if req.default == Some(true) && !state.store.set_default_phone_number(id, now).await? {
        return Err(ServiceError::not_found("phone number", id));
    }
    if let Some(mps) = req.messages_per_second {
        if !state.store.set_number_rate(id, mps, now).await? {
            return Err(ServiceError::not_found("phone number", id));
        }
        state.outbox.settings_changed([id]);
    }
    state.store.get_phone_number(id).await?.ok_or_else(|| ServiceError::not_found("phone number", id))
}

/// An account's webhook events (template status, quality and account updates, errors Meta
/// reported, fields wagate does not know), newest first: a page and whether more follow.
pub async fn events(
    state: &AppState,
    id: &str,
    field: Option<&str>,
    cursor: Option<&str>,
    limit: usize,
) -> Result<(Vec<WebhookEvent>, Option<String>), ServiceError> {
    let parsed = AccountId::parse(id).ok_or_else(|| ServiceError::not_found("account", id))?;
    state.store.get_account(&parsed).await?.ok_or_else(|| ServiceError::not_found("account", id))?;
    let before = match cursor {
        None => None,
        Some(c) => Some(
            c.parse::<i64>()
                .map_err(|_| FieldError::new("cursor", "format", "must be a next_cursor this endpoint returned"))?,
        ),
    };
    let take = u32::try_from(limit).unwrap_or(u32::MAX).saturating_add(1);
    let filter = WebhookEventFilter { account_id: parsed, field: field.map(str::to_owned), before };
    let mut page = state.store.list_webhook_events(&filter, take).await?;
    let next = (page.len() > limit).then(|| {
        page.truncate(limit);
        page.last().map(|e| e.id.to_string())
    });
    Ok((page, next.flatten()))
}

/// A number's Flows business public key, as Meta has it.
pub struct FlowsKey {
    pub public_key: Option<String>,
    pub signature_status: Option<String>,
}

async fn number_and_account(state: &AppState, id: &str) -> Result<(PhoneNumber, Account), ServiceError> {
    let number = phone_number(state, id).await?.ok_or_else(|| ServiceError::not_found("phone number", id))?;
    let account = account(state, &number.account_id)
        .await?
        .ok_or_else(|| ServiceError::not_found("account", number.account_id.as_str()))?;
    Ok((number, account))
}

/// `GET /v1/phone-numbers/{id}/flows-key`: read from Meta.
pub async fn flows_key(state: &AppState, id: &str) -> Result<FlowsKey, ServiceError> {
    let (number, account) = number_and_account(state, id).await?;
    let path = format!("{}/whatsapp_business_encryption", number.id);
    let answer = state.graph.get_json(&Target::from(&account), &path).await.map_err(ServiceError::from_graph)?;
    let first = answer.get("data").and_then(|d| d.get(0));
    let text = |k: &str| first.and_then(|f| f.get(k)).and_then(serde_json::Value::as_str).map(str::to_owned);
    Ok(FlowsKey {
        public_key: text("business_public_key"),
        signature_status: text("business_public_key_signature_status"),
    })
}

/// `PUT /v1/phone-numbers/{id}/flows-key`: a 2048-bit RSA public key in PEM, checked here, then
/// set at Meta.
pub async fn set_flows_key(state: &AppState, id: &str, pem: &str) -> Result<FlowsKey, ServiceError> {
    let key = wagate_domain::flows_key::BusinessPublicKey::parse("public_key", pem)?;
    let (number, account) = number_and_account(state, id).await?;
    let path = format!("{}/whatsapp_business_encryption", number.id);
    state
        .graph
        .post_form(&Target::from(&account), &path, &[("business_public_key", key.as_pem())])
        .await
        .map_err(ServiceError::from_graph)?;
    flows_key(state, id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_rules() {
        assert_eq!(check_base_url("http://127.0.0.1:9000/sandbox/").unwrap(), "http://127.0.0.1:9000/sandbox");
        assert_eq!(check_base_url("ftp://x").unwrap_err().path, "graph_base_url");
        assert!(check_base_url("https://graph.facebook.com?x=1").is_err());
        let long = format!("https://graph.facebook.com/{}", "a".repeat(2048));
        assert_eq!(check_base_url(&long).unwrap_err().rule, "max_length");
        assert!(check_version("v23.0").is_ok());
        assert_eq!(check_version("23").unwrap_err().path, "api_version");
        assert!(check_waba("102290129340398").is_ok());
        assert!(check_waba("abc").is_err());
        assert_eq!(check_secret("app_secret", "a b").unwrap_err().rule, "no_whitespace");
        assert_eq!(check_secret("app_secret", "").unwrap_err().rule, "min_length");
    }
}
