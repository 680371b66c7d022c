//! Groups of business numbers, with Meta's group webhooks applied.

use async_trait::async_trait;
use wagate_domain::time::Timestamp;

use super::{PgStore, all, execute, first};
use crate::shared::{self, group_json, group_update_values, group_values};
use crate::*;

#[async_trait]
impl Groups for PgStore {
    async fn get_group(&self, id: &str) -> Result<Option<Group>> {
        first(&self.pool, shared::SELECT_GROUP, (id,), shared::group).await
    }

    async fn find_group_by_request(&self, request_id: &str) -> Result<Option<Group>> {
        first(&self.pool, shared::SELECT_GROUP_BY_REQUEST, (request_id,), shared::group).await
    }

    async fn list_groups(&self, filter: &GroupFilter, limit: u32) -> Result<Vec<Group>> {
        all(&self.pool, shared::SELECT_GROUPS, shared::group_filter_values(filter, limit), shared::group).await
    }

    async fn save_group(&self, group: &Group, read_at: Option<Timestamp>) -> Result<bool> {
        let json = group_json(group);
        let written = match read_at {
            None => execute(&self.pool, shared::INSERT_GROUP, group_values(group, &json)).await?,
            Some(at) => {
                execute(&self.pool, shared::UPDATE_GROUP, group_update_values(group, &json, at.as_millis())).await?
            }
        };
        Ok(written == 1)
    }

    async fn delete_group(&self, id: &str) -> Result<bool> {
        Ok(execute(&self.pool, shared::DELETE_GROUP, (id,)).await? == 1)
    }
}
