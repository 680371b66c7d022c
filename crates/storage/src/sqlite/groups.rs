//! Groups of business numbers, with Meta's group webhooks applied.

use async_trait::async_trait;
use wagate_domain::time::Timestamp;

use super::SqliteStore;
use super::rows::{all, execute, first};
use crate::shared::{self, group_json, group_update_values, group_values};
use crate::*;

#[async_trait]
impl Groups for SqliteStore {
    async fn get_group(&self, id: &str) -> Result<Option<Group>> {
        self.readers.read(|c| first(c, shared::SELECT_GROUP, [id], |r| shared::group(r)))
    }

    async fn find_group_by_request(&self, request_id: &str) -> Result<Option<Group>> {
        self.readers.read(|c| first(c, shared::SELECT_GROUP_BY_REQUEST, [request_id], |r| shared::group(r)))
    }

    async fn list_groups(&self, filter: &GroupFilter, limit: u32) -> Result<Vec<Group>> {
        let filter = filter.clone();
        self.readers
            .scan(move |c| {
                all(c, shared::SELECT_GROUPS, shared::group_filter_values(&filter, limit), |r| shared::group(r))
            })
            .await
    }

    async fn save_group(&self, group: &Group, read_at: Option<Timestamp>) -> Result<bool> {
        let (group, json) = (group.clone(), group_json(group));
        let written = self
            .writer
            .write(move |tx| match read_at {
                None => execute(tx, shared::INSERT_GROUP, group_values(&group, &json)),
                Some(at) => execute(tx, shared::UPDATE_GROUP, group_update_values(&group, &json, at.as_millis())),
            })
            .await?;
        Ok(written == 1)
    }

    async fn delete_group(&self, id: &str) -> Result<bool> {
        Ok(self.execute(shared::DELETE_GROUP, (id.to_owned(),)).await? == 1)
    }
}
