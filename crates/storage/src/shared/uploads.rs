//! Uploads: the statements both backends run, and the reader of their rows.

use wagate_domain::id::MediaId;

use super::{Columns, Values, time};
use crate::{MetaCopy, Result, Upload};

macro_rules! upload_cols {
    () => {
        "id, kind, mime_type, file_size, sha256, filename, source_url, created_at"
    };
}

pub(crate) const INSERT_UPLOAD: &str =
    concat!("INSERT INTO uploads (", upload_cols!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)");

pub(crate) const SELECT_UPLOAD: &str = concat!("SELECT ", upload_cols!(), " FROM uploads WHERE id = $1");

pub(crate) const DELETE_UPLOAD: &str = "DELETE FROM uploads WHERE id = $1";

pub(crate) const SELECT_META_COPY: &str =
    "SELECT meta_media_id, uploaded_at FROM upload_copies WHERE upload_id = $1 AND phone_number_id = $2";

pub(crate) const UPSERT_META_COPY: &str = "INSERT INTO upload_copies (upload_id, phone_number_id, meta_media_id, \
     uploaded_at) VALUES ($1, $2, $3, $4) ON CONFLICT (upload_id, phone_number_id) DO UPDATE SET \
     meta_media_id = excluded.meta_media_id, uploaded_at = excluded.uploaded_at";

pub(crate) const DELETE_META_COPY: &str =
    "DELETE FROM upload_copies WHERE upload_id = $1 AND phone_number_id = $2 AND uploaded_at < $3";

pub(crate) fn upload(r: &impl Columns) -> Result<Upload> {
    Ok(Upload {
        id: MediaId::from_trusted(r.get("id")?),
        kind: r.get("kind")?,
        mime_type: r.get("mime_type")?,
        file_size: r.get("file_size")?,
        sha256: r.get("sha256")?,
        filename: r.get("filename")?,
        source_url: r.get("source_url")?,
        created_at: time(r, "created_at")?,
    })
}

pub(crate) fn meta_copy(r: &impl Columns) -> Result<MetaCopy> {
    Ok(MetaCopy { meta_media_id: r.get("meta_media_id")?, uploaded_at: time(r, "uploaded_at")? })
}

pub(crate) fn upload_values(u: &Upload) -> impl Values<'_> + '_ {
    (
        u.id.as_str(),
        u.kind.as_str(),
        u.mime_type.as_str(),
        u.file_size,
        u.sha256.as_str(),
        u.filename.as_deref(),
        u.source_url.as_deref(),
        u.created_at.as_millis(),
    )
}

/// Every statement here, for the test of their parameters' order.
#[cfg(test)]
pub(super) fn statements() -> Vec<&'static str> {
    vec![INSERT_UPLOAD, SELECT_UPLOAD, DELETE_UPLOAD, SELECT_META_COPY, UPSERT_META_COPY, DELETE_META_COPY]
}
