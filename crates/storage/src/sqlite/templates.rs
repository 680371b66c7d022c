//! Message templates as Meta keeps them.

use async_trait::async_trait;
use wagate_domain::time::Timestamp;

use super::SqliteStore;
use super::events::emit;
use super::rows::{all, execute, first};
use crate::shared::{self, components_text, newer_than_list, template_changed, template_event, template_values};
use crate::*;

#[async_trait]
impl Templates for SqliteStore {
    async fn store_templates(
        &self,
        waba_id: &str,
        templates: &[MessageTemplate],
        complete: bool,
        at: Timestamp,
    ) -> Result<Vec<MessageTemplate>> {
        let (waba_id, templates, views) = (waba_id.to_owned(), templates.to_vec(), self.views.clone());
        self.writer
            .write(move |tx| {
                let mut changed = Vec::new();
                for t in &templates {
                    let by_name = (t.waba_id.as_str(), t.name.as_str(), t.language.as_str());
                    let stored = first(tx, shared::SELECT_TEMPLATE_BY_NAME, by_name, |r| shared::template(r))?;
                    if !template_changed(t, stored.as_ref())
                        || newer_than_list(stored.as_ref(), complete, at.as_millis())
                    {
                        continue;
                    }
                    if let Some(old) = stored.filter(|s| s.id != t.id) {
                        execute(tx, shared::DELETE_TEMPLATE, [&old.id])?;
                    }
                    let components = components_text(t);
                    execute(tx, shared::UPSERT_TEMPLATE, template_values(t, &components))?;
                    emit(tx, &template_event(views.as_ref(), t), at.as_millis())?;
                    changed.push(t.clone());
                }
                if complete {
                    let stored: Vec<String> =
                        all(tx, shared::SELECT_WABA_TEMPLATE_IDS, (waba_id.as_str(), at.as_millis()), |r| {
                            Ok(r.get(0)?)
                        })?;
                    for id in stored.iter().filter(|id| !templates.iter().any(|t| &&t.id == id)) {
                        execute(tx, shared::DELETE_TEMPLATE, [id])?;
                    }
                    execute(tx, shared::UPSERT_TEMPLATE_SYNC, (waba_id.as_str(), at.as_millis()))?;
                }
                Ok(changed)
            })
            .await
    }

    async fn get_template(&self, id: &str) -> Result<Option<MessageTemplate>> {
        self.readers.read(|c| first(c, shared::SELECT_TEMPLATE, [id], |r| shared::template(r)))
    }

    async fn find_template(&self, waba_id: &str, name: &str, language: &str) -> Result<Option<MessageTemplate>> {
        self.readers
            .read(|c| first(c, shared::SELECT_TEMPLATE_BY_NAME, [waba_id, name, language], |r| shared::template(r)))
    }

    async fn list_templates(&self, filter: &TemplateFilter, limit: u32) -> Result<Vec<MessageTemplate>> {
        let filter = filter.clone();
        self.readers
            .scan(move |c| {
                all(c, shared::SELECT_TEMPLATES, shared::template_filter_values(&filter, limit), |r| {
                    shared::template(r)
                })
            })
            .await
    }

    async fn delete_templates(&self, ids: &[String]) -> Result<u64> {
        let ids = ids.to_vec();
        self.writer
            .write(move |tx| {
                let mut n = 0;
                for id in &ids {
                    n += execute(tx, shared::DELETE_TEMPLATE, [id])? as u64;
                }
                Ok(n)
            })
            .await
    }

    async fn templates_synced_at(&self, waba_id: &str) -> Result<Option<Timestamp>> {
        let at = self.readers.read(|c| first(c, shared::SELECT_TEMPLATE_SYNC, [waba_id], |r| Ok(r.get(0)?)))?;
        Ok(at.map(shared::ts))
    }
}
