//! Message templates: created, edited and deleted at Meta and kept in wagate, read in full from
//! Meta's list (at start, on a schedule, on demand), kept current by Meta's template webhooks,
//! and every template send checked against the stored template before it is queued.

use std::sync::Arc;

use serde_json::{Map, Value};
use wagate_domain::id::AccountId;
use wagate_domain::message::template::{ParameterFormat, check_status};
use wagate_domain::message::{Content, Outbound, Recipient, SimpleTemplate};
use wagate_domain::time::Timestamp;
use wagate_domain::validation::FieldError;
use wagate_storage::{Account, MessageTemplate, PhoneNumber, TemplateFilter};

use super::ServiceError;
use crate::caches::CheckedTemplate;
use crate::graph::{GraphFailure, Target};
use crate::state::AppState;

/// What wagate reads of a template from Meta.
const FIELDS: &str = "id,name,language,status,category,parameter_format,components,quality_score,rejected_reason";
/// Meta lists at most 100 templates a page; a WABA holds at most 6,000.
const PAGE: usize = 100;
const MAX_PAGES: usize = 80;
const CATEGORIES: &[&str] = &["MARKETING", "UTILITY", "AUTHENTICATION"];

/// A template as Meta's Graph API shows it; None for something that is not one.
fn from_meta(account: &Account, v: &Value, now: Timestamp) -> Option<MessageTemplate> {
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let id = text("id").or_else(|| v.get("id").and_then(Value::as_u64).map(|n| n.to_string()))?;
    // Meta shows the quality as `{"score": "GREEN", "date": …}`.
    let quality = v.get("quality_score").and_then(|q| q.get("score").or(Some(q))).and_then(Value::as_str);
    Some(MessageTemplate {
        id,
        account_id: account.id.clone(),
        waba_id: account.waba_id.clone(),
        name: text("name")?,
        language: text("language")?,
        category: text("category").unwrap_or_default().to_ascii_uppercase(),
        status: text("status").unwrap_or_default().to_ascii_uppercase(),
        parameter_format: ParameterFormat::parse(v.get("parameter_format").and_then(Value::as_str)).as_str().into(),
        components: v.get("components").cloned().unwrap_or_else(|| Value::Array(Vec::new())),
        quality_score: quality.map(str::to_owned),
        rejected_reason: text("rejected_reason").filter(|r| r != "NONE"),
        created_at: now,
        updated_at: now,
    })
}

/// What a sync read.
pub struct Synced {
    pub templates: usize,
    pub changed: usize,
}

/// Reads the account's templates from Meta, every page, and stores them as the WABA's list.
pub async fn sync(state: &AppState, account: &Account) -> Result<Synced, ServiceError> {
    let path = format!("{}/message_templates?fields={FIELDS}&limit={PAGE}", account.waba_id);
    // What is written while the list is read (a creation, a webhook) is newer than the list.
    let started = Timestamp::now();
    let listed =
        state.graph.get_all_pages(&Target::from(account), &path, MAX_PAGES).await.map_err(ServiceError::from_graph)?;
    let templates: Vec<MessageTemplate> = listed.iter().filter_map(|v| from_meta(account, v, started)).collect();
    let changed = state.store.store_templates(&account.waba_id, &templates, true, started).await?;
    state.caches.templates.forget_all();
    Ok(Synced { templates: templates.len(), changed: changed.len() })
}

/// Syncs every connected account's templates; a failure is logged, the others go on.
pub async fn sync_all(state: &AppState) -> Result<Vec<(AccountId, Result<Synced, ServiceError>)>, ServiceError> {
    let mut out = Vec::new();
    for account in state.store.list_accounts().await? {
        let result = sync(state, &account).await;
        match &result {
            Ok(s) => {
                tracing::debug!(account_id = %account.id, templates = s.templates, changed = s.changed, "templates synced")
            }
            Err(e) => tracing::warn!(account_id = %account.id, error = %e, "syncing templates failed"),
        }
        out.push((account.id, result));
    }
    Ok(out)
}

/// Syncs the accounts whose templates were never read (connected since the last sync).
pub async fn sync_unsynced(state: &AppState) -> Result<(), ServiceError> {
    for account in state.store.list_accounts().await? {
        if state.store.templates_synced_at(&account.waba_id).await?.is_none()
            && let Err(e) = sync(state, &account).await
        {
            tracing::warn!(account_id = %account.id, error = %e, "reading a new account's templates failed");
        }
    }
    Ok(())
}

/// `POST /v1/templates/sync`: the account named, or every one.
pub async fn sync_some(
    state: &AppState,
    account_id: Option<&str>,
) -> Result<Vec<(AccountId, Result<Synced, ServiceError>)>, ServiceError> {
    match account_id {
        Some(id) => {
            let account = account_for(state, Some(id)).await?;
            Ok(vec![(account.id.clone(), sync(state, &account).await)])
        }
        None => sync_all(state).await,
    }
}

/// The account a request names, or the only one connected.
pub async fn account_for(state: &AppState, account_id: Option<&str>) -> Result<Account, ServiceError> {
    if let Some(id) = account_id {
        let parsed = AccountId::parse(id)
            .ok_or_else(|| FieldError::new("account_id", "unknown_account", format!("'{id}' is not an account id")))?;
        return state.store.get_account(&parsed).await?.ok_or_else(|| {
            FieldError::new(
                "account_id",
                "unknown_account",
                format!("no account with id '{id}' (see GET /v1/accounts)"),
            )
            .into()
        });
    }
    let mut accounts = state.store.list_accounts().await?;
    match accounts.len() {
        1 => Ok(accounts.remove(0)),
        0 => {
            Err(FieldError::new("account_id", "unknown_account", "no account is connected (POST /v1/accounts)").into())
        }
        n => Err(FieldError::new(
            "account_id",
            "required",
            format!("is required: {n} accounts are connected (see GET /v1/accounts)"),
        )
        .into()),
    }
}

/// Reads one template from Meta and stores it; None when Meta does not have it.
async fn refresh(state: &AppState, account: &Account, id: &str) -> Result<Option<MessageTemplate>, ServiceError> {
    let path = format!("{id}?fields={FIELDS}");
    let read = match state.graph.get_json(&Target::from(account), &path).await {
        Ok(v) => v,
        Err(GraphFailure::Meta { error, .. }) if error.code == 100 => return Ok(None),
        Err(e) => return Err(ServiceError::from_graph(e)),
    };
    let Some(t) = from_meta(account, &read, Timestamp::now()) else { return Ok(None) };
    state.store.store_templates(&account.waba_id, std::slice::from_ref(&t), false, t.updated_at).await?;
    state.caches.templates.forget_all();
    Ok(Some(t))
}

fn check_create(body: &Map<String, Value>) -> Result<(), FieldError> {
    wagate_domain::input::nul_free(&Value::Object(body.clone()))?;
    let text = |k: &'static str| -> Result<&str, FieldError> {
        match body.get(k) {
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(FieldError::new(k, "invalid_type", "must be a string")),
            None => Err(FieldError::required(k)),
        }
    };
    let name = text("name")?;
    wagate_domain::validation::check_length("name", name, 1, 512)?;
    if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
        return Err(FieldError::new("name", "invalid_value", "must be lowercase letters, digits and underscores"));
    }
    wagate_domain::validation::check_length("language", text("language")?, 2, 16)?;
    let category = text("category")?.to_ascii_uppercase();
    if !CATEGORIES.contains(&category.as_str()) {
        return Err(FieldError::new("category", "invalid_value", "must be MARKETING, UTILITY or AUTHENTICATION"));
    }
    match body.get("components") {
        Some(Value::Array(list)) if !list.is_empty() => {}
        Some(Value::Array(_)) => return Err(FieldError::new("components", "min_items", "must have a body at least")),
        Some(_) => return Err(FieldError::new("components", "invalid_type", "must be an array of Meta's components")),
        None => return Err(FieldError::required("components")),
    }
    if let Some(f) = body.get("parameter_format") {
        let ok = f.as_str().is_some_and(|f| f.eq_ignore_ascii_case("named") || f.eq_ignore_ascii_case("positional"));
        if !ok {
            return Err(FieldError::new("parameter_format", "invalid_value", "must be NAMED or POSITIONAL"));
        }
    }
    Ok(())
}

/// `POST /v1/templates`: Meta's template body, created at Meta (which reviews it) and stored.
pub async fn create(
    state: &AppState,
    account_id: Option<&str>,
    body: Map<String, Value>,
) -> Result<MessageTemplate, ServiceError> {
    check_create(&body)?;
    let account = account_for(state, account_id).await?;
    let path = format!("{}/message_templates", account.waba_id);
    let created = state.graph.post_json(&Target::from(&account), &path, &Value::Object(body.clone())).await;
    let created = created.map_err(ServiceError::from_graph)?;
    let id = created
        .get("id")
        .and_then(|v| v.as_str().map(str::to_owned).or_else(|| v.as_u64().map(|n| n.to_string())))
        .ok_or_else(|| ServiceError::GraphUnavailable("Meta's answer to the creation has no template id".into()))?;
    if let Ok(Some(t)) = refresh(state, &account, &id).await {
        return Ok(t);
    }
    // Meta took it but could not be read back: store what was asked and answered.
    let mut shown = body;
    shown.insert("id".into(), Value::String(id));
    for k in ["status", "category"] {
        if let Some(v) = created.get(k) {
            shown.insert(k.into(), v.clone());
        }
    }
    let t = from_meta(&account, &Value::Object(shown), Timestamp::now())
        .ok_or_else(|| ServiceError::GraphUnavailable("the created template cannot be read".into()))?;
    state.store.store_templates(&account.waba_id, std::slice::from_ref(&t), false, t.updated_at).await?;
    state.caches.templates.forget_all();
    Ok(t)
}

pub async fn get(state: &AppState, id: &str) -> Result<MessageTemplate, ServiceError> {
    state.store.get_template(id).await?.ok_or_else(|| ServiceError::not_found("template", id))
}

/// A template by name and language, of the account named or the only one.
pub async fn find(
    state: &AppState,
    account_id: Option<&str>,
    name: &str,
    language: &str,
) -> Result<MessageTemplate, ServiceError> {
    let account = account_for(state, account_id).await?;
    state
        .store
        .find_template(&account.waba_id, name, language)
        .await?
        .ok_or_else(|| ServiceError::not_found("template", format!("{name}/{language}")))
}

/// Which templates a list asks for.
pub struct Wanted {
    pub account_id: Option<String>,
    pub name: Option<String>,
    pub language: Option<String>,
    pub status: Option<String>,
    pub category: Option<String>,
}

/// A page of templates after the one `cursor` names, and whether there are more.
pub async fn list(
    state: &AppState,
    wanted: Wanted,
    cursor: Option<&str>,
    limit: usize,
) -> Result<(Vec<MessageTemplate>, bool), ServiceError> {
    let account_id = wanted
        .account_id
        .map(|id| {
            AccountId::parse(&id)
                .ok_or_else(|| FieldError::new("account_id", "unknown_account", format!("'{id}' is not an account id")))
        })
        .transpose()?;
    let after = match cursor {
        Some(c) => {
            let t =
                state.store.get_template(c).await?.ok_or_else(|| {
                    FieldError::new("cursor", "invalid_cursor", "is not a next_cursor this list gave")
                })?;
            Some((t.name, t.language, t.id))
        }
        None => None,
    };
    let filter = TemplateFilter {
        account_id,
        waba_id: None,
        name: wanted.name,
        language: wanted.language,
        status: wanted.status.map(|s| s.to_ascii_uppercase()),
        category: wanted.category.map(|c| c.to_ascii_uppercase()),
        after,
    };
    let mut page = state.store.list_templates(&filter, (limit + 1) as u32).await?;
    let more = page.len() > limit;
    page.truncate(limit);
    Ok((page, more))
}

async fn account_of(state: &AppState, t: &MessageTemplate) -> Result<Account, ServiceError> {
    super::accounts::account(state, &t.account_id)
        .await?
        .ok_or_else(|| ServiceError::not_found("account", t.account_id.as_str()))
}

/// `PATCH /v1/templates/{id}`: new components or category (Meta's edit rules apply); the
/// template goes back to review.
pub async fn edit(state: &AppState, id: &str, body: Map<String, Value>) -> Result<MessageTemplate, ServiceError> {
    let t = get(state, id).await?;
    wagate_domain::input::nul_free(&Value::Object(body.clone()))?;
    if body.is_empty() {
        return Err(
            FieldError::new("components", "required", "is required, or category: there is nothing to change").into()
        );
    }
    for k in ["name", "language", "parameter_format"] {
        if body.contains_key(k) {
            return Err(FieldError::new(k, "immutable", "cannot be changed: create a new template instead").into());
        }
    }
    let account = account_of(state, &t).await?;
    state.graph.post_json(&Target::from(&account), id, &Value::Object(body)).await.map_err(ServiceError::from_graph)?;
    refresh(state, &account, id).await?.ok_or_else(|| ServiceError::not_found("template", id))
}

/// `DELETE /v1/templates/{id}`: deleted at Meta (this language only), then here.
pub async fn delete(state: &AppState, id: &str) -> Result<(), ServiceError> {
    let t = get(state, id).await?;
    let account = account_of(state, &t).await?;
    let query: String =
        form_urlencoded::Serializer::new(String::new()).append_pair("name", &t.name).append_pair("hsm_id", id).finish();
    let path = format!("{}/message_templates?{query}", account.waba_id);
    state.graph.delete_json(&Target::from(&account), &path).await.map_err(ServiceError::from_graph)?;
    state.store.delete_templates(&[t.id]).await?;
    state.caches.templates.forget_all();
    Ok(())
}

/// Applies a template webhook (`message_template_status_update`, `…_quality_update`,
/// `…_components_update`, `template_category_update`) to the stored template, with its
/// `template.updated` event. A template wagate does not have yet is read from Meta.
pub async fn apply_webhook(
    state: &AppState,
    account: &Account,
    field: &str,
    value: &Value,
) -> Result<(), ServiceError> {
    let Some(id) = value
        .get("message_template_id")
        .and_then(|v| v.as_str().map(str::to_owned).or_else(|| v.as_u64().map(|n| n.to_string())))
    else {
        return Ok(());
    };
    let text = |k: &str| value.get(k).and_then(Value::as_str).map(str::to_ascii_uppercase);
    let stored = state.store.get_template(&id).await?;
    let Some(mut t) = stored.filter(|_| field != "message_template_components_update") else {
        if field == "message_template_status_update" && text("event").as_deref() == Some("DELETED") {
            state.store.delete_templates(&[id]).await?;
            state.caches.templates.forget_all();
            return Ok(());
        }
        // New to wagate, or its components changed: Meta has the whole template.
        return match refresh(state, account, &id).await {
            Ok(_) => Ok(()),
            // The next sync brings it; the webhook itself is stored as an account event.
            Err(ServiceError::GraphUnavailable(e)) => {
                tracing::warn!(template_id = %id, error = %e, "reading a template named by a webhook failed");
                Ok(())
            }
            Err(e) => Err(e),
        };
    };
    match field {
        "message_template_status_update" => {
            let Some(status) = text("event") else { return Ok(()) };
            if status == "DELETED" {
                state.store.delete_templates(&[id]).await?;
                state.caches.templates.forget_all();
                return Ok(());
            }
            // Meta's events are mostly statuses; these few tell of a template that stays sendable
            // (flagged for quality, locked against edits) or is again.
            let status = match status.as_str() {
                "REINSTATED" | "UNARCHIVED" => "APPROVED".to_owned(),
                "FLAGGED" | "LOCKED" | "LIMIT_EXCEEDED" => t.status.clone(),
                _ => status,
            };
            t.rejected_reason = if status == "REJECTED" { text("reason").filter(|r| r != "NONE") } else { None };
            t.status = status;
            if let Some(c) = text("message_template_category") {
                t.category = c;
            }
        }
        "message_template_quality_update" => t.quality_score = text("new_quality_score"),
        "template_category_update" => match text("new_category").or_else(|| text("correct_category")) {
            Some(c) => t.category = c,
            None => return Ok(()),
        },
        _ => return Ok(()),
    }
    t.updated_at = Timestamp::now();
    state.store.store_templates(&t.waba_id.clone(), std::slice::from_ref(&t), false, t.updated_at).await?;
    state.caches.templates.forget_all();
    Ok(())
}

/// The stored template named, asked of Meta when the store lacks it (it may be new): what a
/// campaign is checked against.
pub async fn checked(
    state: &AppState,
    sender: &PhoneNumber,
    name: &str,
    language: &str,
) -> Result<Arc<CheckedTemplate>, ServiceError> {
    template_of(state, sender, name, language, true, "template.language")
        .await?
        .ok_or_else(|| ServiceError::not_found("template", format!("{name} ({language})")))
}

/// The stored template a send names. A WABA never synced passes its sends through unchecked
/// (None), unless `needed` (the simple form, which is built from it). A name the store lacks is
/// asked of Meta first: it may have been made since the last sync.
async fn template_of(
    state: &AppState,
    sender: &PhoneNumber,
    name: &str,
    language: &str,
    needed: bool,
    language_path: &str,
) -> Result<Option<Arc<CheckedTemplate>>, ServiceError> {
    if let Some(t) = state.caches.templates.get(&sender.waba_id, name, language) {
        return Ok(Some(t));
    }
    if let Some(t) = state.store.find_template(&sender.waba_id, name, language).await? {
        let t = CheckedTemplate::new(t);
        state.caches.templates.put(t.clone());
        return Ok(Some(t));
    }
    let synced = state.store.templates_synced_at(&sender.waba_id).await?;
    if synced.is_none() && !needed {
        return Ok(None);
    }
    // Asked of Meta a moment ago and not there: the store says which languages there are.
    if state.caches.templates.missed(&sender.waba_id, name, language) {
        let filter = TemplateFilter {
            waba_id: Some(sender.waba_id.clone()),
            name: Some(name.to_owned()),
            ..TemplateFilter::default()
        };
        let known = state.store.list_templates(&filter, 100).await?;
        return Err(not_found(name, language, language_path, known.iter().map(|t| t.language.as_str()).collect()));
    }
    let account = super::accounts::account(state, &sender.account_id)
        .await?
        .ok_or_else(|| ServiceError::not_found("account", sender.account_id.as_str()))?;
    let query: String = form_urlencoded::Serializer::new(String::new()).append_pair("name", name).finish();
    let path = format!("{}/message_templates?fields={FIELDS}&{query}", sender.waba_id);
    let listed = match state.graph.get_all_pages(&Target::from(&account), &path, 2).await {
        Ok(l) => l,
        Err(e) if needed => return Err(ServiceError::from_graph(e)),
        // Meta cannot say now: the send goes as given, and Meta decides.
        Err(e) => {
            tracing::warn!(waba_id = %sender.waba_id, template = name, error = %e, "asking Meta for a template failed");
            return Ok(None);
        }
    };
    let now = Timestamp::now();
    // Meta's name filter matches parts of names too.
    let found: Vec<MessageTemplate> =
        listed.iter().filter_map(|v| from_meta(&account, v, now)).filter(|t| t.name == name).collect();
    if !found.is_empty() {
        state.store.store_templates(&sender.waba_id, &found, false, now).await?;
        state.caches.templates.forget_all();
    }
    if let Some(t) = found.iter().find(|t| t.language == language) {
        return Ok(Some(CheckedTemplate::new(t.clone())));
    }
    state.caches.templates.miss(&sender.waba_id, name, language);
    Err(not_found(name, language, language_path, found.iter().map(|t| t.language.as_str()).collect()))
}

/// A send names a template the WABA does not have in that language (perhaps in others).
fn not_found(name: &str, language: &str, language_path: &str, languages: Vec<&str>) -> ServiceError {
    if languages.is_empty() {
        FieldError::new(
            "template.name",
            "template_not_found",
            format!(
                "no template named '{name}' exists for this number's WhatsApp Business Account (see GET /v1/templates)"
            ),
        )
        .into()
    } else {
        FieldError::new(
            language_path,
            "template_not_found",
            format!("{name} does not exist in {language}; it exists in {}", languages.join(", ")),
        )
        .into()
    }
}

/// Checks a template send against the stored template before it is queued, building Meta's
/// components from the simple form when that is what was given: the template as the customer
/// will see it, or None when it is not a template or its WABA was never synced (it goes to Meta
/// as given). A MARKETING template to a contact who opted out is refused.
pub async fn check_send(
    state: &AppState,
    sender: &PhoneNumber,
    outbound: &mut Outbound,
    simple: Option<&SimpleTemplate>,
) -> Result<Option<Value>, ServiceError> {
    let Content::Template(send) = &outbound.content else { return Ok(None) };
    let language_path = if simple.is_some() { "template.language" } else { "template.language.code" };
    let (name, language) = (send.name.clone(), send.language.code.clone());
    let Some(found) = template_of(state, sender, &name, &language, simple.is_some(), language_path).await? else {
        return Ok(None);
    };
    let (def, shape) = (&found.template, &found.shape);
    check_status("template.name", &def.name, &def.language, &def.status)?;
    let rendered = match simple {
        Some(s) => {
            let (built, rendered) = s.build(shape, "template")?;
            outbound.content = Content::Template(Box::new(built));
            rendered
        }
        None => send.check_against(shape, "template")?,
    };
    if def.category == "MARKETING"
        && let Recipient::Phone(to) = &outbound.recipient
    {
        let wa_id: String = to.chars().filter(char::is_ascii_digit).collect();
        if let Some(contact) = state.store.get_contact_by_wa_id(&wa_id).await?
            && contact.marketing_opted_out()
        {
            return Err(FieldError::new(
                "to",
                "marketing_opt_out",
                format!(
                    "{to} has stopped marketing messages from this business; {name} is a MARKETING template \
                     (Meta would fail it with 131050)"
                ),
            )
            .into());
        }
    }
    Ok(Some(rendered))
}
