//! Graph paths beyond messages — a node (`/{id}`), a number's media and Flows key, an account's
//! phone numbers and templates — answered in Meta's shapes by wagate's own features: an upload
//! is wagate's (`med_…`, sent by that id), a template is created and checked as `/v1/templates`
//! does, a number is as wagate knows it.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use wagate_domain::api_key::Scope;
use wagate_domain::id::MediaId;
use wagate_storage::{Account, AccountMode, Group, Media, MessageTemplate, PhoneNumber, Upload};

use super::call::{GraphCall, post_params, query_params};
use super::error::GraphApiError;
use crate::api::upload_form::{self, FormRefused};
use crate::extract::body_failure;
use crate::services::uploads::{self, NewFile};
use crate::services::{ServiceError, accounts, groups, media, templates};
use crate::state::AppState;

/// What a Graph id names, as far as wagate knows it.
enum Node {
    Number(PhoneNumber),
    Account(Account),
    Upload(Upload),
    Media(Media),
    Template(MessageTemplate),
    Group(Group),
}

async fn resolve(state: &AppState, id: &str) -> Result<Option<Node>, ServiceError> {
    // Files are named in digits here, as Meta names media; `med_…` works too.
    if let Some(file) = MediaId::parse(id).or_else(|| MediaId::from_digits(id)) {
        if let Some(u) = uploads::find(state, file.as_str()).await? {
            return Ok(Some(Node::Upload(u)));
        }
        return match media::get(state.store.as_ref(), file.as_str()).await {
            Ok(m) => Ok(Some(Node::Media(m))),
            Err(ServiceError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        };
    }
    if let Some(n) = accounts::phone_number(state, id).await? {
        return Ok(Some(Node::Number(n)));
    }
    if let Some(a) = state.store.accounts_by_waba(id).await?.into_iter().next() {
        return Ok(Some(Node::Account(a)));
    }
    if let Some(t) = state.store.get_template(id).await? {
        return Ok(Some(Node::Template(t)));
    }
    Ok(state.store.get_group(id).await?.map(Node::Group))
}

async fn node(state: &AppState, call: &GraphCall) -> Result<Node, GraphApiError> {
    resolve(state, &call.node)
        .await
        .map_err(GraphApiError::from_service)?
        .ok_or_else(|| GraphApiError::unknown_object(&call.method, &call.node))
}

async fn number(state: &AppState, call: &GraphCall) -> Result<PhoneNumber, GraphApiError> {
    match node(state, call).await? {
        Node::Number(n) => Ok(n),
        _ => Err(GraphApiError::unknown_object(&call.method, &call.node)),
    }
}

async fn account(state: &AppState, call: &GraphCall) -> Result<Account, GraphApiError> {
    match node(state, call).await? {
        Node::Account(a) => Ok(a),
        _ => Err(GraphApiError::unknown_object(&call.method, &call.node)),
    }
}

/// A business number in Meta's fields.
pub(crate) fn number_view(n: &PhoneNumber) -> Value {
    json!({
        "id": n.id,
        "display_phone_number": n.display_phone_number,
        "verified_name": n.verified_name,
        "quality_rating": n.quality_rating.as_deref().unwrap_or("UNKNOWN"),
        "platform_type": "CLOUD_API",
        "status": "CONNECTED",
        "account_mode": if n.mode == AccountMode::Sandbox { "SANDBOX" } else { "LIVE" },
        "throughput": {"level": n.throughput_level.as_ref().map_or("STANDARD", |l| l.as_str())},
        "is_on_biz_app": false,
        "is_official_business_account": false,
    })
}

/// A WhatsApp Business Account in Meta's fields (what wagate knows of it).
pub(crate) fn account_view(a: &Account) -> Value {
    json!({"id": a.waba_id, "name": a.name})
}

fn template_view(t: &MessageTemplate) -> Value {
    let mut v = json!({
        "id": t.id,
        "name": t.name,
        "language": t.language,
        "status": t.status,
        "category": t.category,
        "parameter_format": t.parameter_format,
        "components": t.components,
    });
    if let Some(q) = &t.quality_score {
        v["quality_score"] = json!({"score": q, "date": t.updated_at.as_millis() / 1000});
    }
    if let Some(r) = &t.rejected_reason {
        v["rejected_reason"] = json!(r);
    }
    v
}

fn group_view(g: &Group) -> Value {
    let participants = g.participants.as_array().cloned().unwrap_or_default();
    json!({
        "messaging_product": "whatsapp",
        "id": g.id,
        "subject": g.subject,
        "description": g.description.clone().unwrap_or_default(),
        "suspended": false,
        "creation_timestamp": g.created_at.as_millis() / 1000,
        "total_participant_count": participants.len(),
        "participants": participants,
        "join_approval_mode": g.join_approval_mode,
    })
}

/// A file's SHA-256 as Meta's media URL answer gives it: hex (webhooks carry it in base64).
fn hex_digest(digest: Option<&str>) -> Option<String> {
    digest.and_then(media::parse_digest).map(hex::encode)
}

/// This server's own base URL, as the caller reached it: where a media URL points.
pub(super) fn base_url(headers: &HeaderMap) -> String {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let scheme = text("x-forwarded-proto").unwrap_or("http");
    let host = text("x-forwarded-host").or_else(|| text(header::HOST.as_str())).unwrap_or("localhost");
    format!("{scheme}://{host}")
}

/// `GET /{id}`: a number, an account, an upload or a customer's file (with a URL to fetch its
/// bytes with the same token, as Meta's media URLs are), a template or a group.
pub(super) async fn get_node(State(state): State<AppState>, call: GraphCall) -> Result<Json<Value>, GraphApiError> {
    Ok(Json(match node(&state, &call).await? {
        Node::Number(n) => number_view(&n),
        Node::Account(a) => account_view(&a),
        Node::Upload(u) => {
            let link = uploads::link(&state, u.id.as_str(), None).await.map_err(GraphApiError::from_service)?;
            json!({
                "messaging_product": "whatsapp",
                "id": u.id.to_digits(),
                "url": format!("{}{}", base_url(&call.headers), link.path_and_query),
                "mime_type": u.mime_type,
                "sha256": hex_digest(Some(&u.sha256)),
                "file_size": u.file_size,
            })
        }
        Node::Media(m) => json!({
            "messaging_product": "whatsapp",
            "id": m.id.to_digits(),
            "url": format!("{}/v1/media/{}/content", base_url(&call.headers), m.id),
            "mime_type": m.mime_type,
            "sha256": hex_digest(m.sha256.as_deref()),
            "file_size": m.file_size,
        }),
        Node::Template(t) => template_view(&t),
        Node::Group(g) => group_view(&g),
    }))
}

/// `POST /{id}`: a template's new components or category, or a group's subject or description.
pub(super) async fn post_node(
    State(state): State<AppState>,
    call: GraphCall,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, GraphApiError> {
    let body = body.map_err(|e| GraphApiError::invalid(body_failure(&e).1))?;
    let params = post_params(&call.uri, &call.headers, &body)?;
    match node(&state, &call).await? {
        Node::Template(t) => {
            // Templates are made and changed at Meta: an administrator's act, as on `/v1/templates`.
            if !call.caller.scopes.allows(Scope::Admin) {
                return Err(GraphApiError::new(
                    StatusCode::FORBIDDEN,
                    10,
                    "(#10) Application does not have permission for this action",
                    Some(format!("this key has scopes {}; editing a template needs admin", call.caller.scopes)),
                ));
            }
            templates::edit(&state, &t.id, params).await.map_err(GraphApiError::from_service)?;
        }
        Node::Group(g) => {
            let text = |k: &str| params.get(k).and_then(Value::as_str).map(str::to_owned);
            let change = groups::UpdateGroup { subject: text("subject"), description: text("description") };
            groups::update(&state, &g.id, change).await.map_err(GraphApiError::from_service)?;
        }
        _ => return Err(GraphApiError::unknown_object(&call.method, &call.node)),
    }
    Ok(Json(json!({"success": true})))
}

/// `DELETE /{id}`: an upload, or a group.
pub(super) async fn delete_node(State(state): State<AppState>, call: GraphCall) -> Result<Json<Value>, GraphApiError> {
    match node(&state, &call).await? {
        Node::Upload(u) => uploads::delete(&state, u.id.as_str()).await,
        Node::Group(g) => groups::delete(&state, &g.id).await,
        _ => return Err(GraphApiError::unknown_object(&call.method, &call.node)),
    }
    .map_err(GraphApiError::from_service)?;
    Ok(Json(json!({"success": true})))
}

/// `POST /{phone-number-id}/media`: multipart `file`, `type` and `messaging_product`, stored as
/// a wagate upload whose id (in digits, as Meta's are) sends it from any number.
pub(super) async fn upload_media(
    State(state): State<AppState>,
    call: GraphCall,
    request: Request,
) -> Result<Json<Value>, GraphApiError> {
    number(&state, &call).await?;
    let texts = ["type", "messaging_product", "ttl_minutes"];
    let (file, mut values) = upload_form::read(&state, request, &texts).await.map_err(|refused| match refused {
        FormRefused::TooLarge => GraphApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            100,
            "(#100) Invalid parameter",
            Some("The file is larger than any WhatsApp takes (100 MB).".into()),
        ),
        FormRefused::Invalid(why) => GraphApiError::invalid(why),
        FormRefused::Field(e) if e.rule == "required" => {
            GraphApiError::invalid(format!("The parameter {} is required.", e.path))
        }
        FormRefused::Field(e) => GraphApiError::invalid(format!("Unexpected key \"{}\".", e.path)),
    })?;
    // `ttl_minutes` is Meta's retention for numbers without storage; wagate keeps files until deleted.
    if values.remove("messaging_product").as_deref() != Some("whatsapp") {
        return Err(GraphApiError::invalid("Param messaging_product must be 'whatsapp'.".into()));
    }
    let (bytes, part_type, filename) = (file.bytes, file.content_type, file.file_name);
    let kind = values.remove("type");
    let file = NewFile { bytes, content_type: kind.or(part_type), filename, source_url: None };
    let upload = uploads::create(&state, file).await.map_err(GraphApiError::from_service)?;
    Ok(Json(json!({"id": upload.id.to_digits()})))
}

/// `GET /{waba-id}/phone_numbers`.
pub(super) async fn phone_numbers(
    State(state): State<AppState>,
    call: GraphCall,
) -> Result<Json<Value>, GraphApiError> {
    let account = account(&state, &call).await?;
    let numbers = accounts::numbers_of(&state, &account.id).await.map_err(GraphApiError::from_service)?;
    let data: Vec<Value> = numbers.iter().map(number_view).collect();
    Ok(Json(json!({"data": data})))
}

/// `GET /{waba-id}/message_templates?name=&status=&category=&language=&limit=&after=`, paged
/// with Meta's cursors.
pub(super) async fn list_templates(
    State(state): State<AppState>,
    call: GraphCall,
) -> Result<Json<Value>, GraphApiError> {
    let account = account(&state, &call).await?;
    let query = query_params(&call.uri);
    let text = |k: &str| query.get(k).and_then(Value::as_str).map(str::to_owned);
    let limit = match text("limit") {
        None => 25,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=1000).contains(l))
            .ok_or_else(|| GraphApiError::invalid("Param limit must be a number from 1 to 1000.".into()))?,
    };
    let wanted = templates::Wanted {
        account_id: Some(account.id.to_string()),
        name: text("name"),
        language: text("language"),
        status: text("status"),
        category: text("category"),
    };
    let (page, more) =
        templates::list(&state, wanted, text("after").as_deref(), limit).await.map_err(GraphApiError::from_service)?;
    let mut cursors = Map::new();
    if let (Some(first), Some(last)) = (page.first(), page.last()) {
        cursors.insert("before".into(), json!(first.id));
        cursors.insert("after".into(), json!(last.id));
    }
    let mut paging = json!({ "cursors": cursors });
    if more && let Some(last) = page.last() {
        let path = call.uri.path();
        paging["next"] = json!(format!("{}{path}?limit={limit}&after={}", base_url(&call.headers), last.id));
    }
    let data: Vec<Value> = page.iter().map(template_view).collect();
    let mut answer = json!({"data": data, "paging": paging});
    if query.contains_key("summary") {
        answer["summary"] = template_summary(&state, &account).await?;
    }
    Ok(Json(answer))
}

/// The `summary` Meta adds to a template list when asked: counts of the account's templates.
async fn template_summary(state: &AppState, account: &Account) -> Result<Value, GraphApiError> {
    let (mut total, mut cursor) = (0, None);
    loop {
        let wanted = templates::Wanted {
            account_id: Some(account.id.to_string()),
            name: None,
            language: None,
            status: None,
            category: None,
        };
        let (page, more) =
            templates::list(state, wanted, cursor.as_deref(), 100).await.map_err(GraphApiError::from_service)?;
        total += page.len();
        cursor = page.last().map(|t| t.id.clone());
        if !more {
            break;
        }
    }
    Ok(json!({
        "total_count": total,
        "message_template_count": total,
        // Meta's limit for a business portfolio that is not verified; wagate cannot read it.
        "message_template_limit": 250,
        "are_translations_complete": true,
    }))
}

/// `POST /{waba-id}/message_templates`: created at Meta as `/v1/templates` creates it.
pub(super) async fn create_template(
    State(state): State<AppState>,
    call: GraphCall,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, GraphApiError> {
    let account = account(&state, &call).await?;
    let body = body.map_err(|e| GraphApiError::invalid(body_failure(&e).1))?;
    let params = post_params(&call.uri, &call.headers, &body)?;
    let t = templates::create(&state, Some(account.id.as_str()), params).await.map_err(GraphApiError::from_service)?;
    Ok(Json(json!({"id": t.id, "status": t.status, "category": t.category})))
}

/// `DELETE /{waba-id}/message_templates?name=&hsm_id=`: one language (`hsm_id`) or all of a name.
pub(super) async fn delete_templates(
    State(state): State<AppState>,
    call: GraphCall,
) -> Result<Json<Value>, GraphApiError> {
    let account = account(&state, &call).await?;
    let query = query_params(&call.uri);
    let name = query
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| GraphApiError::invalid("The parameter name is required.".into()))?;
    let ids: Vec<String> = match query.get("hsm_id").and_then(Value::as_str) {
        Some(id) => vec![id.to_owned()],
        None => {
            let wanted = templates::Wanted {
                account_id: Some(account.id.to_string()),
                name: Some(name.to_owned()),
                language: None,
                status: None,
                category: None,
            };
            let (all, _) = templates::list(&state, wanted, None, 1000).await.map_err(GraphApiError::from_service)?;
            all.into_iter().map(|t| t.id).collect()
        }
    };
    if ids.is_empty() {
        return Err(GraphApiError::invalid(format!("No template named '{name}' exists.")));
    }
    for id in ids {
        let t = templates::get(&state, &id).await.map_err(GraphApiError::from_service)?;
        if t.name != name || t.waba_id != account.waba_id {
            return Err(GraphApiError::invalid(format!("Template {id} is not named '{name}' in this account.")));
        }
        templates::delete(&state, &id).await.map_err(GraphApiError::from_service)?;
    }
    Ok(Json(json!({"success": true})))
}

/// `GET /{phone-number-id}/whatsapp_business_encryption`: the Flows key, as Meta has it.
pub(super) async fn get_encryption(State(state): State<AppState>, call: GraphCall) -> Result<Response, GraphApiError> {
    let n = number(&state, &call).await?;
    let key = accounts::flows_key(&state, &n.id).await.map_err(GraphApiError::from_service)?;
    let data: Vec<Value> = match key.public_key {
        Some(k) => vec![json!({
            "business_public_key": k,
            "business_public_key_signature_status": key.signature_status.unwrap_or_else(|| "VALID".into()),
        })],
        None => Vec::new(),
    };
    Ok(Json(json!({ "data": data })).into_response())
}

/// `POST /{phone-number-id}/whatsapp_business_encryption` with `business_public_key`.
pub(super) async fn set_encryption(
    State(state): State<AppState>,
    call: GraphCall,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, GraphApiError> {
    let n = number(&state, &call).await?;
    let body = body.map_err(|e| GraphApiError::invalid(body_failure(&e).1))?;
    let params = post_params(&call.uri, &call.headers, &body)?;
    let pem = params
        .get("business_public_key")
        .and_then(Value::as_str)
        .ok_or_else(|| GraphApiError::invalid("The parameter business_public_key is required.".into()))?;
    accounts::set_flows_key(&state, &n.id, pem).await.map_err(GraphApiError::from_service)?;
    Ok(Json(json!({"success": true})))
}
