//! Message templates: the statements both backends run, and the reader of their rows.

use wagate_domain::id::AccountId;

use wagate_domain::event::EventType;

use super::{Columns, Values, json_text, parse_json, time};
use crate::{EventViews, MessageTemplate, NewEvent, Result, TemplateFilter};

macro_rules! template_cols {
    () => {
        "id, account_id, waba_id, name, language, category, status, parameter_format, components, \
         quality_score, rejected_reason, created_at, updated_at"
    };
}

pub(crate) const SELECT_TEMPLATE: &str = concat!("SELECT ", template_cols!(), " FROM templates WHERE id = $1");

/// The stored template of a WABA with a name and language (another id: Meta made it anew).
pub(crate) const SELECT_TEMPLATE_BY_NAME: &str =
    concat!("SELECT ", template_cols!(), " FROM templates WHERE waba_id = $1 AND name = $2 AND language = $3");

pub(crate) const SELECT_TEMPLATES: &str = concat!(
    "SELECT ",
    template_cols!(),
    " FROM templates WHERE ($1 IS NULL OR account_id = $1) AND ($2 IS NULL OR waba_id = $2) ",
    "AND ($3 IS NULL OR name = $3) AND ($4 IS NULL OR language = $4) AND ($5 IS NULL OR status = $5) ",
    "AND ($6 IS NULL OR category = $6) ",
    "AND ($7 IS NULL OR name > $7 OR (name = $7 AND (language > $8 OR (language = $8 AND id > $9)))) ",
    "ORDER BY name, language, id LIMIT $10"
);

pub(crate) const UPSERT_TEMPLATE: &str = concat!(
    "INSERT INTO templates (",
    template_cols!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ",
    "ON CONFLICT (id) DO UPDATE SET account_id = excluded.account_id, waba_id = excluded.waba_id, ",
    "name = excluded.name, language = excluded.language, category = excluded.category, ",
    "status = excluded.status, parameter_format = excluded.parameter_format, components = excluded.components, ",
    "quality_score = excluded.quality_score, rejected_reason = excluded.rejected_reason, ",
    "updated_at = excluded.updated_at"
);

pub(crate) const DELETE_TEMPLATE: &str = "DELETE FROM templates WHERE id = $1";

/// A WABA's templates written before a list read from `$2` on: those the list may replace.
pub(crate) const SELECT_WABA_TEMPLATE_IDS: &str = "SELECT id FROM templates WHERE waba_id = $1 AND updated_at < $2";

pub(crate) const UPSERT_TEMPLATE_SYNC: &str = "INSERT INTO template_syncs (waba_id, synced_at) VALUES ($1, $2) \
     ON CONFLICT (waba_id) DO UPDATE SET synced_at = excluded.synced_at";

pub(crate) const SELECT_TEMPLATE_SYNC: &str = "SELECT synced_at FROM template_syncs WHERE waba_id = $1";

pub(crate) fn template(r: &impl Columns) -> Result<MessageTemplate> {
    Ok(MessageTemplate {
        id: r.get("id")?,
        account_id: AccountId::from_trusted(r.get("account_id")?),
        waba_id: r.get("waba_id")?,
        name: r.get("name")?,
        language: r.get("language")?,
        category: r.get("category")?,
        status: r.get("status")?,
        parameter_format: r.get("parameter_format")?,
        components: parse_json("components", &r.get::<String>("components")?)?,
        quality_score: r.get("quality_score")?,
        rejected_reason: r.get("rejected_reason")?,
        created_at: time(r, "created_at")?,
        updated_at: time(r, "updated_at")?,
    })
}

/// [`UPSERT_TEMPLATE`]'s values, with the components written out.
pub(crate) fn template_values<'a>(t: &'a MessageTemplate, components: &'a str) -> impl Values<'a> + 'a {
    (
        t.id.as_str(),
        t.account_id.as_str(),
        t.waba_id.as_str(),
        t.name.as_str(),
        t.language.as_str(),
        t.category.as_str(),
        t.status.as_str(),
        t.parameter_format.as_str(),
        components,
        t.quality_score.as_deref(),
        t.rejected_reason.as_deref(),
        t.created_at.as_millis(),
        t.updated_at.as_millis(),
    )
}

pub(crate) fn components_text(t: &MessageTemplate) -> String {
    json_text(&t.components)
}

/// [`SELECT_TEMPLATES`]'s values.
pub(crate) fn template_filter_values(f: &TemplateFilter, limit: u32) -> impl Values<'_> + '_ {
    let (name, language, id) = match &f.after {
        Some((n, l, i)) => (Some(n.as_str()), Some(l.as_str()), Some(i.as_str())),
        None => (None, None, None),
    };
    (
        f.account_id.as_ref().map(AccountId::as_str),
        f.waba_id.as_deref(),
        f.name.as_deref(),
        f.language.as_deref(),
        f.status.as_deref(),
        f.category.as_deref(),
        name,
        language,
        id,
        i64::from(limit),
    )
}

/// The event of a template stored anew or changed.
pub(crate) fn template_event(views: &dyn EventViews, t: &MessageTemplate) -> NewEvent {
    NewEvent { kind: EventType::TemplateUpdated, phone_number_id: None, data: views.template(t) }
}

/// Whether `t` is to be written over what is stored under its name and language: it is new,
/// made anew (another id), or says something different.
pub(crate) fn template_changed(t: &MessageTemplate, stored: Option<&MessageTemplate>) -> bool {
    stored.is_none_or(|s| s.id != t.id || s.differs(t))
}

/// Whether a stored template was written after a complete list's read began at `listed_at`:
/// then it is newer than the list, which leaves it as it is.
pub(crate) fn newer_than_list(stored: Option<&MessageTemplate>, complete: bool, listed_at: i64) -> bool {
    complete && stored.is_some_and(|s| s.updated_at.as_millis() >= listed_at)
}

/// Every statement here, for the test of their parameters' order.
#[cfg(test)]
pub(super) fn statements() -> Vec<&'static str> {
    vec![
        SELECT_TEMPLATE,
        SELECT_TEMPLATE_BY_NAME,
        SELECT_TEMPLATES,
        UPSERT_TEMPLATE,
        DELETE_TEMPLATE,
        SELECT_WABA_TEMPLATE_IDS,
        UPSERT_TEMPLATE_SYNC,
        SELECT_TEMPLATE_SYNC,
    ]
}
