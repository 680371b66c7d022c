//! Groups of a business number: created, changed and deleted at Meta, kept in wagate with Meta's
//! group webhooks applied (creation, settings, participants, join requests). Messages go to a
//! group by its id, as to anyone else.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast;
use utoipa::ToSchema;
use wagate_domain::time::Timestamp;
use wagate_domain::validation::{FieldError, check_length};
use wagate_storage::{Account, Group, GroupFilter, StorageError};

use super::ServiceError;
use crate::graph::Target;
use crate::state::AppState;

const SUBJECT_MAX: usize = 128;
const DESCRIPTION_MAX: usize = 2048;
/// Participants one removal may name (Meta's limit).
const REMOVE_MAX: usize = 8;
const MODES: &[&str] = &["auto_approve", "approval_required"];
/// How long a creation waits for Meta to announce the group before answering with its request.
const CREATION_WAIT: Duration = Duration::from_secs(5);
/// Attempts at writing a group that others write at the same time.
const WRITE_ATTEMPTS: usize = 8;

fn text(path: &str, value: &str, max: usize) -> Result<String, FieldError> {
    let value = value.trim();
    check_length(path, value, 1, max)?;
    wagate_domain::input::nul_free_text(path, value)?;
    Ok(value.to_owned())
}

/// `POST /v1/groups`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGroup {
    /// The business number the group belongs to.
    pub phone_number_id: String,
    /// 1 to 128 characters.
    pub subject: String,
    /// Up to 2048 characters.
    #[serde(default)]
    pub description: Option<String>,
    /// `auto_approve` (default): the invite link lets anyone in; `approval_required`: each
    /// join is a request to approve.
    #[serde(default)]
    pub join_approval_mode: Option<String>,
}

/// What a creation led to.
pub enum Created {
    Group(Box<Group>),
    /// Meta took the request but has not announced the group yet; it appears when it does.
    Pending {
        request_id: String,
    },
}

async fn account_of_number(state: &AppState, phone_number_id: &str) -> Result<Account, ServiceError> {
    let number = super::accounts::phone_number(state, phone_number_id).await?.ok_or_else(|| {
        FieldError::new(
            "phone_number_id",
            "unknown_sender",
            format!("'{phone_number_id}' is not a connected phone number (see GET /v1/phone-numbers)"),
        )
    })?;
    super::accounts::account(state, &number.account_id)
        .await?
        .ok_or_else(|| ServiceError::not_found("account", number.account_id.as_str()))
}

pub async fn create(state: &AppState, req: CreateGroup) -> Result<Created, ServiceError> {
    let subject = text("subject", &req.subject, SUBJECT_MAX)?;
    let description = req.description.as_deref().map(|d| text("description", d, DESCRIPTION_MAX)).transpose()?;
    if let Some(m) = &req.join_approval_mode
        && !MODES.contains(&m.as_str())
    {
        return Err(FieldError::new(
            "join_approval_mode",
            "invalid_value",
            "must be auto_approve or approval_required",
        )
        .into());
    }
    let account = account_of_number(state, &req.phone_number_id).await?;
    let mut body = json!({"messaging_product": "whatsapp", "subject": subject});
    if let Some(d) = &description {
        body["description"] = json!(d);
    }
    if let Some(m) = &req.join_approval_mode {
        body["join_approval_mode"] = json!(m);
    }
    let path = format!("{}/groups", req.phone_number_id);
    // Listening before Meta is asked: its announcement may come before its answer.
    let mut announced = state.signals.watch_group_announced();
    let answer =
        state.graph.post_json(&Target::from(&account), &path, &body).await.map_err(ServiceError::from_graph)?;
    let request_id = answer
        .get("request_id")
        .and_then(Value::as_str)
        .ok_or_else(|| ServiceError::GraphUnavailable("Meta's answer to a group creation has no request_id".into()))?
        .to_owned();
    // Meta announces the group (its id and invite link) by webhook, usually at once; another
    // instance may be the one that applies it, so the store has the last word.
    let deadline = tokio::time::Instant::now() + CREATION_WAIT;
    let heard = async {
        loop {
            match announced.recv().await {
                Ok(id) if id == request_id => return,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    };
    let _ = tokio::time::timeout_at(deadline, heard).await;
    let Some(g) = state.store.find_group_by_request(&request_id).await? else {
        return Ok(Created::Pending { request_id });
    };
    // Meta's announcement does not say how joins are approved; the request did.
    let mode = req.join_approval_mode.unwrap_or_else(|| MODES[0].to_owned());
    let g = change_group(state, &g.id, |g| g.join_approval_mode = Some(mode.clone())).await?.unwrap_or(g);
    Ok(Created::Group(Box::new(g)))
}

pub async fn get(state: &AppState, id: &str) -> Result<Group, ServiceError> {
    state.store.get_group(id).await?.ok_or_else(|| ServiceError::not_found("group", id))
}

/// A page of groups by id, after `cursor`, and whether there are more.
pub async fn list(
    state: &AppState,
    phone_number_id: Option<String>,
    cursor: Option<String>,
    limit: usize,
) -> Result<(Vec<Group>, bool), ServiceError> {
    let filter = GroupFilter { phone_number_id, after: cursor };
    let mut page = state.store.list_groups(&filter, (limit + 1) as u32).await?;
    let more = page.len() > limit;
    page.truncate(limit);
    Ok((page, more))
}

/// Changes a stored group with `change`, again if another write came between its read and its
/// write; None when there is no such group.
async fn change_group(state: &AppState, id: &str, change: impl Fn(&mut Group)) -> Result<Option<Group>, StorageError> {
    for _ in 0..WRITE_ATTEMPTS {
        let Some(mut g) = state.store.get_group(id).await? else { return Ok(None) };
        let read_at = g.updated_at;
        change(&mut g);
        // Strictly later than what was read, so that the next read-and-write sees a change.
        g.updated_at = Timestamp::now().max(read_at.plus(Duration::from_millis(1)));
        if state.store.save_group(&g, Some(read_at)).await? {
            return Ok(Some(g));
        }
    }
    Err(StorageError::Conflict(format!("group {id} kept changing while it was written")))
}

async fn group_and_account(state: &AppState, id: &str) -> Result<(Group, Account), ServiceError> {
    let g = get(state, id).await?;
    let account = super::accounts::account(state, &g.account_id)
        .await?
        .ok_or_else(|| ServiceError::not_found("account", g.account_id.as_str()))?;
    Ok((g, account))
}

/// `PATCH /v1/groups/{id}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateGroup {
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// A new subject or description, at Meta; kept here at once (Meta's webhook confirms it).
pub async fn update(state: &AppState, id: &str, req: UpdateGroup) -> Result<Group, ServiceError> {
    let subject = req.subject.as_deref().map(|s| text("subject", s, SUBJECT_MAX)).transpose()?;
    let description = req.description.as_deref().map(|d| text("description", d, DESCRIPTION_MAX)).transpose()?;
    if subject.is_none() && description.is_none() {
        return Err(
            FieldError::new("subject", "required", "is required, or description: there is nothing to change").into()
        );
    }
    let (_, account) = group_and_account(state, id).await?;
    let mut body = json!({"messaging_product": "whatsapp"});
    if let Some(s) = &subject {
        body["subject"] = json!(s);
    }
    if let Some(d) = &description {
        body["description"] = json!(d);
    }
    state.graph.post_json(&Target::from(&account), id, &body).await.map_err(ServiceError::from_graph)?;
    change_group(state, id, |g| {
        if let Some(s) = &subject {
            g.subject = s.clone();
        }
        if description.is_some() {
            g.description = description.clone();
        }
    })
    .await?
    .ok_or_else(|| ServiceError::not_found("group", id))
}

/// `DELETE /v1/groups/{id}`: everyone leaves, at Meta; gone here.
pub async fn delete(state: &AppState, id: &str) -> Result<(), ServiceError> {
    let (_, account) = group_and_account(state, id).await?;
    state.graph.delete_json(&Target::from(&account), id).await.map_err(ServiceError::from_graph)?;
    state.store.delete_group(id).await?;
    Ok(())
}

/// The invite link, as Meta has it now (`reset`: a new one; the old one stops working).
pub async fn invite_link(state: &AppState, id: &str, reset: bool) -> Result<String, ServiceError> {
    let (_, account) = group_and_account(state, id).await?;
    let path = format!("{id}/invite_link");
    let target = Target::from(&account);
    let answer = if reset {
        state.graph.post_json(&target, &path, &json!({"messaging_product": "whatsapp"})).await
    } else {
        state.graph.get_json(&target, &path).await
    };
    let link = answer
        .map_err(ServiceError::from_graph)?
        .get("invite_link")
        .and_then(Value::as_str)
        .ok_or_else(|| ServiceError::GraphUnavailable("Meta's answer has no invite_link".into()))?
        .to_owned();
    let kept = link.clone();
    change_group(state, id, move |g| g.invite_link = Some(kept.clone())).await?;
    Ok(link)
}

/// Open join requests, as Meta has them now (and kept).
pub async fn join_requests(state: &AppState, id: &str) -> Result<Vec<Value>, ServiceError> {
    let (_, account) = group_and_account(state, id).await?;
    let path = format!("{id}/join_requests");
    let listed =
        state.graph.get_all_pages(&Target::from(&account), &path, 20).await.map_err(ServiceError::from_graph)?;
    let requests: Vec<Value> = listed
        .iter()
        .map(|r| {
            json!({
                "join_request_id": r.get("join_request_id"),
                "wa_id": r.get("wa_id"),
                "user_id": r.get("user_id"),
                "created_at": r.get("creation_timestamp").map(unix_time),
            })
        })
        .collect();
    let kept = Value::Array(requests.clone());
    change_group(state, id, move |g| g.join_requests = kept.clone()).await?;
    Ok(requests)
}

/// A Unix time (a number, or a string of one, as Meta writes them) as RFC 3339.
fn unix_time(v: &Value) -> Value {
    let secs = v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok()));
    secs.map_or(Value::Null, |s| json!(Timestamp::from_unix_seconds(s)))
}

/// What Meta did with a list of join requests or participants: done, and failed with why.
pub struct Outcome {
    pub done: Vec<String>,
    pub failed: Vec<Value>,
}

fn check_ids(path: &str, ids: &[String], max: usize) -> Result<(), FieldError> {
    if ids.is_empty() || ids.len() > max {
        return Err(FieldError::new(path, "count", format!("must name 1 to {max}")));
    }
    for (i, id) in ids.iter().enumerate() {
        text(&format!("{path}[{i}]"), id, 512)?;
    }
    Ok(())
}

/// Approves (`approve`) or rejects open join requests at Meta; approved users join (Meta's
/// webhook adds them), and the requests are no longer open.
pub async fn answer_join_requests(
    state: &AppState,
    id: &str,
    ids: Vec<String>,
    approve: bool,
) -> Result<Outcome, ServiceError> {
    check_ids("join_request_ids", &ids, 100)?;
    let (_, account) = group_and_account(state, id).await?;
    let path = format!("{id}/join_requests");
    let body = json!({"messaging_product": "whatsapp", "join_requests": ids});
    let target = Target::from(&account);
    let answer = if approve {
        state.graph.post_json(&target, &path, &body).await
    } else {
        state.graph.delete_json_body(&target, &path, &body).await
    }
    .map_err(ServiceError::from_graph)?;
    let key = if approve { "approved_join_requests" } else { "rejected_join_requests" };
    let done: Vec<String> = answer
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    let failed = answer.get("failed_join_requests").and_then(Value::as_array).cloned().unwrap_or_default();
    let answered = done.clone();
    change_group(state, id, move |g| {
        if let Some(list) = g.join_requests.as_array_mut() {
            list.retain(|r| !answered.iter().any(|a| r["join_request_id"] == a.as_str()));
        }
    })
    .await?;
    Ok(Outcome { done, failed })
}

/// Removes participants (phone numbers or user ids, 1 to 8) at Meta; Meta's webhook updates the
/// group. Those Meta could not remove are listed with its error.
pub async fn remove_participants(state: &AppState, id: &str, users: Vec<String>) -> Result<Outcome, ServiceError> {
    check_ids("participants", &users, REMOVE_MAX)?;
    let (_, account) = group_and_account(state, id).await?;
    let path = format!("{id}/participants");
    let list: Vec<Value> = users.iter().map(|u| json!({"user": u})).collect();
    let body = json!({"messaging_product": "whatsapp", "participants": list});
    let answer =
        state.graph.delete_json_body(&Target::from(&account), &path, &body).await.map_err(ServiceError::from_graph)?;
    // Meta answers 206 with the failures when only some could be removed.
    let failed =
        answer.pointer("/error/error_data/failed_participants").and_then(Value::as_array).cloned().unwrap_or_default();
    // Meta names each failure's participant as it was given.
    let done = users.into_iter().filter(|u| !failed.iter().any(|f| f.to_string().contains(u.as_str()))).collect();
    Ok(Outcome { done, failed })
}

/// A user as group webhooks show one.
fn member(v: &Value) -> Value {
    json!({"wa_id": v.get("wa_id"), "user_id": v.get("user_id")})
}

fn same_user(a: &Value, b: &Value) -> bool {
    let same = |k: &str| a.get(k).and_then(Value::as_str).is_some_and(|x| b.get(k).and_then(Value::as_str) == Some(x));
    same("wa_id") || same("user_id")
}

/// Applies a group webhook (`group_lifecycle_update`, `group_participants_update`,
/// `group_settings_update`) to the stored groups.
pub async fn apply_webhook(state: &AppState, account: &Account, value: &Value) -> Result<(), ServiceError> {
    let number = value.pointer("/metadata/phone_number_id").and_then(Value::as_str).unwrap_or_default().to_owned();
    for event in value.get("groups").and_then(Value::as_array).into_iter().flatten() {
        let Some(id) = event.get("group_id").and_then(Value::as_str) else { continue };
        let kind = event.get("type").and_then(Value::as_str).unwrap_or_default();
        let text = |k: &str| event.get(k).and_then(Value::as_str).map(str::to_owned);
        if kind == "group_create" {
            let now = Timestamp::now();
            let group = Group {
                id: id.to_owned(),
                account_id: account.id.clone(),
                phone_number_id: number.clone(),
                request_id: text("request_id"),
                subject: text("subject").unwrap_or_default(),
                description: text("description"),
                invite_link: text("invite_link"),
                join_approval_mode: None,
                participants: json!([]),
                join_requests: json!([]),
                created_at: now,
                updated_at: now,
            };
            // A redelivered creation finds the group made: the rest of its events changed it since.
            state.store.save_group(&group, None).await?;
            if let Some(request_id) = &group.request_id {
                state.signals.group_announced(request_id);
            }
            continue;
        }
        if kind == "group_delete" {
            state.store.delete_group(id).await?;
            continue;
        }
        let applied = change_group(state, id, |g| match kind {
            "group_settings_update" => {
                if let Some(s) = text("subject") {
                    g.subject = s;
                }
                if let Some(d) = text("description") {
                    g.description = Some(d);
                }
            }
            "group_participants_add" => {
                let list = g.participants.as_array_mut().expect("participants are a list");
                for p in event.get("added_participants").and_then(Value::as_array).into_iter().flatten() {
                    if !list.iter().any(|m| same_user(m, p)) {
                        list.push(member(p));
                    }
                }
                // Joined: any request of theirs is answered.
                if let Some(requests) = g.join_requests.as_array_mut() {
                    let added = event.get("added_participants").and_then(Value::as_array).cloned().unwrap_or_default();
                    requests.retain(|r| !added.iter().any(|p| same_user(r, p)));
                }
            }
            "group_participants_remove" => {
                let removed = event.get("removed_participants").and_then(Value::as_array).cloned().unwrap_or_default();
                if let Some(list) = g.participants.as_array_mut() {
                    list.retain(|m| !removed.iter().any(|p| same_user(m, p)));
                }
            }
            "group_join_request_created" => {
                if let Some(list) = g.join_requests.as_array_mut() {
                    let request = json!({
                        "join_request_id": event.get("join_request_id"),
                        "wa_id": event.get("wa_id"),
                        "user_id": event.get("user_id"),
                        "created_at": event.get("timestamp").map(unix_time),
                    });
                    if !list.iter().any(|r| r["join_request_id"] == request["join_request_id"]) {
                        list.push(request);
                    }
                }
            }
            "group_join_request_revoked" => {
                if let Some(list) = g.join_requests.as_array_mut() {
                    list.retain(|r| r["join_request_id"] != event["join_request_id"]);
                }
            }
            _ => {}
        })
        .await?;
        if applied.is_none() {
            tracing::warn!(group_id = id, kind, "a group webhook names a group wagate does not have");
        }
    }
    Ok(())
}
