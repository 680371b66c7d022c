//! Groups: the statements both backends run, and the reader of their rows.

use wagate_domain::id::AccountId;

use super::{Columns, Values, json_text, parse_json, time};
use crate::{Group, GroupFilter, Result};

macro_rules! group_cols {
    () => {
        "id, account_id, phone_number_id, request_id, subject, description, invite_link, join_approval_mode, \
         participants, join_requests, created_at, updated_at"
    };
}

pub(crate) const SELECT_GROUP: &str = concat!("SELECT ", group_cols!(), " FROM groups WHERE id = $1");

pub(crate) const SELECT_GROUP_BY_REQUEST: &str =
    concat!("SELECT ", group_cols!(), " FROM groups WHERE request_id = $1");

pub(crate) const SELECT_GROUPS: &str = concat!(
    "SELECT ",
    group_cols!(),
    " FROM groups WHERE ($1 IS NULL OR phone_number_id = $1) AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3"
);

pub(crate) const INSERT_GROUP: &str = concat!(
    "INSERT INTO groups (",
    group_cols!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (id) DO NOTHING"
);

/// Writes group `$12` read at `$13` (its `updated_at` then): nothing when another write came since.
pub(crate) const UPDATE_GROUP: &str = "UPDATE groups SET account_id = $1, phone_number_id = $2, request_id = $3, \
     subject = $4, description = $5, invite_link = $6, join_approval_mode = $7, participants = $8, \
     join_requests = $9, created_at = $10, updated_at = $11 WHERE id = $12 AND updated_at = $13";

pub(crate) const DELETE_GROUP: &str = "DELETE FROM groups WHERE id = $1";

pub(crate) fn group(r: &impl Columns) -> Result<Group> {
    Ok(Group {
        id: r.get("id")?,
        account_id: AccountId::from_trusted(r.get("account_id")?),
        phone_number_id: r.get("phone_number_id")?,
        request_id: r.get("request_id")?,
        subject: r.get("subject")?,
        description: r.get("description")?,
        invite_link: r.get("invite_link")?,
        join_approval_mode: r.get("join_approval_mode")?,
        participants: parse_json("participants", &r.get::<String>("participants")?)?,
        join_requests: parse_json("join_requests", &r.get::<String>("join_requests")?)?,
        created_at: time(r, "created_at")?,
        updated_at: time(r, "updated_at")?,
    })
}

/// A group's JSON columns written out: participants, join requests.
pub(crate) fn group_json(g: &Group) -> [String; 2] {
    [json_text(&g.participants), json_text(&g.join_requests)]
}

/// [`INSERT_GROUP`]'s values.
pub(crate) fn group_values<'a>(g: &'a Group, json: &'a [String; 2]) -> impl Values<'a> + 'a {
    (
        g.id.as_str(),
        g.account_id.as_str(),
        g.phone_number_id.as_str(),
        g.request_id.as_deref(),
        g.subject.as_str(),
        g.description.as_deref(),
        g.invite_link.as_deref(),
        g.join_approval_mode.as_deref(),
        json[0].as_str(),
        json[1].as_str(),
        g.created_at.as_millis(),
        g.updated_at.as_millis(),
    )
}

/// [`UPDATE_GROUP`]'s values: the group, and the `updated_at` it was read with.
pub(crate) fn group_update_values<'a>(g: &'a Group, json: &'a [String; 2], read_at: i64) -> impl Values<'a> + 'a {
    (
        g.account_id.as_str(),
        g.phone_number_id.as_str(),
        g.request_id.as_deref(),
        g.subject.as_str(),
        g.description.as_deref(),
        g.invite_link.as_deref(),
        g.join_approval_mode.as_deref(),
        json[0].as_str(),
        json[1].as_str(),
        g.created_at.as_millis(),
        g.updated_at.as_millis(),
        g.id.as_str(),
        read_at,
    )
}

/// [`SELECT_GROUPS`]'s values.
pub(crate) fn group_filter_values(f: &GroupFilter, limit: u32) -> impl Values<'_> + '_ {
    (f.phone_number_id.as_deref(), f.after.as_deref(), i64::from(limit))
}

/// Every statement here, for the test of their parameters' order.
#[cfg(test)]
pub(super) fn statements() -> Vec<&'static str> {
    vec![SELECT_GROUP, SELECT_GROUP_BY_REQUEST, SELECT_GROUPS, INSERT_GROUP, UPDATE_GROUP, DELETE_GROUP]
}
