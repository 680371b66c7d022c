//! The shape of every list the native API answers.

use serde::Serialize;
use utoipa::ToSchema;

/// `{"data": [...], "next_cursor": ...}`.
#[derive(Serialize, ToSchema)]
pub struct List<T> {
    pub data: Vec<T>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}
