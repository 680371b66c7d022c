//! Message templates as Meta keeps them.

use async_trait::async_trait;
use wagate_domain::time::Timestamp;

use super::events::emit_all;
use super::{PgStore, all, execute, first};
use crate::shared::{
    self, Columns, components_text, newer_than_list, template_changed, template_event, template_values,
};
use crate::*;

#[async_trait]
impl Templates for PgStore {
    async fn store_templates(
        &self,
        waba_id: &str,
        templates: &[MessageTemplate],
        complete: bool,
        at: Timestamp,
    ) -> Result<Vec<MessageTemplate>> {
        let mut tx = self.begin().await?;
        if complete {
            // One sync of a WABA at a time: two would each remove what the other is adding.
            execute(&mut *tx, "SELECT pg_advisory_xact_lock(hashtext('templates:' || $1))", (waba_id,)).await?;
        }
        let mut changed = Vec::new();
        let mut events = Vec::new();
        for t in templates {
            let by_name = (t.waba_id.as_str(), t.name.as_str(), t.language.as_str());
            let stored = first(&mut *tx, shared::SELECT_TEMPLATE_BY_NAME, by_name, shared::template).await?;
            if !template_changed(t, stored.as_ref()) || newer_than_list(stored.as_ref(), complete, at.as_millis()) {
                continue;
            }
            if let Some(old) = stored.filter(|s| s.id != t.id) {
                execute(&mut *tx, shared::DELETE_TEMPLATE, (old.id.as_str(),)).await?;
            }
            let components = components_text(t);
            execute(&mut *tx, shared::UPSERT_TEMPLATE, template_values(t, &components)).await?;
            events.push(template_event(self.views.as_ref(), t));
            changed.push(t.clone());
        }
        if complete {
            let stored: Vec<String> =
                all(&mut *tx, shared::SELECT_WABA_TEMPLATE_IDS, (waba_id, at.as_millis()), |r| r.get(0)).await?;
            for id in stored.iter().filter(|id| !templates.iter().any(|t| &&t.id == id)) {
                execute(&mut *tx, shared::DELETE_TEMPLATE, (id.as_str(),)).await?;
            }
            execute(&mut *tx, shared::UPSERT_TEMPLATE_SYNC, (waba_id, at.as_millis())).await?;
        }
        emit_all(&mut tx, &events, at).await?;
        tx.commit().await?;
        Ok(changed)
    }

    async fn get_template(&self, id: &str) -> Result<Option<MessageTemplate>> {
        first(&self.pool, shared::SELECT_TEMPLATE, (id,), shared::template).await
    }

    async fn find_template(&self, waba_id: &str, name: &str, language: &str) -> Result<Option<MessageTemplate>> {
        first(&self.pool, shared::SELECT_TEMPLATE_BY_NAME, (waba_id, name, language), shared::template).await
    }

    async fn list_templates(&self, filter: &TemplateFilter, limit: u32) -> Result<Vec<MessageTemplate>> {
        all(&self.pool, shared::SELECT_TEMPLATES, shared::template_filter_values(filter, limit), shared::template).await
    }

    async fn delete_templates(&self, ids: &[String]) -> Result<u64> {
        let mut tx = self.begin().await?;
        let mut n = 0;
        for id in ids {
            n += execute(&mut *tx, shared::DELETE_TEMPLATE, (id.as_str(),)).await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    async fn templates_synced_at(&self, waba_id: &str) -> Result<Option<Timestamp>> {
        let at: Option<i64> = first(&self.pool, shared::SELECT_TEMPLATE_SYNC, (waba_id,), |r| r.get(0)).await?;
        Ok(at.map(shared::ts))
    }
}
