//! The media downloader: claims due downloads with a lease, asks the Graph media API for a fresh
//! URL on every attempt (Meta's URLs expire after five minutes and answer 404 then), downloads
//! the file with the account's token, checks its size and SHA-256 against what Meta said, and
//! writes it atomically under `<data_dir>/media/`.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use wagate_domain::retry::Retry;
use wagate_domain::time::Timestamp;
use wagate_storage::{Leased, Media, StoredMedia};

use crate::graph::{GraphFailure, Target};
use crate::metrics::Metrics;
use crate::services::media::{digest_base64, file_path, media_dir, parse_digest};
use crate::state::{AppState, Worker};

pub async fn run(state: AppState, cancel: CancellationToken) {
    let settings = state.config.media.clone();
    let poll = std::time::Duration::from_millis(settings.poll_interval_ms);
    remove_stale_parts(&media_dir(&state.config.data_dir), settings.lease()).await;
    let mut running = JoinSet::new();
    loop {
        state.health.beat(Worker::Media);
        let free = settings.concurrency.saturating_sub(running.len());
        if free > 0 {
            let now = Timestamp::now();
            match state.store.media_downloads().claim(now, now.plus(settings.lease()), free as u32).await {
                Ok(jobs) => {
                    for job in jobs {
                        running.spawn(attempt(state.clone(), job));
                    }
                }
                Err(e) => tracing::error!(error = %e, "claiming media downloads failed"),
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            // A slot freed up: claim again at once.
            Some(_) = running.join_next(), if !running.is_empty() => {}
            _ = state.signals.next_media_recorded() => {}
            _ = tokio::time::sleep(poll) => {}
        }
    }
    // Downloads in flight finish (each within its timeouts), or are re-claimed after restart
    // when shutdown's grace runs out first.
    while running.join_next().await.is_some() {}
    tracing::info!("media downloader stopped");
}

/// Why an attempt did not store the file.
enum Failure {
    /// Worth another attempt (with a fresh URL): network trouble, a 404 or 5xx, a short read.
    Transient(String),
    /// No attempt can succeed: the checksum does not match, the file is too large.
    Permanent(String),
}

impl Failure {
    /// A failed Graph request: worth another attempt, unless the address policy refused its
    /// destination, which only a change of configuration and a restart would let through.
    fn graph(context: &str, e: GraphFailure) -> Self {
        let why = format!("{context}: {e}");
        if matches!(e, GraphFailure::Refused(_)) { Self::Permanent(why) } else { Self::Transient(why) }
    }
}

async fn attempt(state: AppState, job: Leased<Media>) {
    let settings = &state.config.media;
    let result = download(&state, &job).await;
    let now = Timestamp::now();
    let media = &job.item;
    let saved = match result {
        Ok(stored) => {
            Metrics::outcome(&state.metrics.media_downloads, "stored");
            tracing::debug!(media = %media.id, bytes = stored.file_size, "media stored");
            state.store.media_stored(&job, &stored).await
        }
        Err(Failure::Permanent(why)) => {
            Metrics::outcome(&state.metrics.media_downloads, "failed");
            tracing::warn!(media = %media.id, error = %why, "media download failed for good");
            state.store.media_downloads().give_up(&job, &why, now).await
        }
        Err(Failure::Transient(why)) => {
            match super::retry(&settings.retry_policy(), media.attempts, media.created_at, now) {
                Retry::At(due) => {
                    Metrics::outcome(&state.metrics.media_downloads, "retried");
                    tracing::info!(media = %media.id, attempt = media.attempts, error = %why, "media download failed; will retry");
                    state.store.media_downloads().retry(&job, due, &why, now).await
                }
                Retry::GiveUp(_) => {
                    Metrics::outcome(&state.metrics.media_downloads, "failed");
                    let why = format!("gave up after {} attempts; last error: {why}", media.attempts);
                    tracing::warn!(media = %media.id, error = %why, "media download failed for good");
                    state.store.media_downloads().give_up(&job, &why, now).await
                }
            }
        }
    };
    match saved {
        Ok(true) => {}
        Ok(false) => tracing::warn!(media = %media.id, "media lease lost before the outcome was recorded"),
        Err(e) => {
            tracing::error!(media = %media.id, error = %e, "recording a media download failed; the lease will lapse")
        }
    }
}

async fn download(state: &AppState, job: &Leased<Media>) -> Result<StoredMedia, Failure> {
    let settings = &state.config.media;
    let media = &job.item;
    let account = match state.store.get_account(&media.account_id).await {
        Ok(Some(a)) => a,
        Ok(None) => return Err(Failure::Permanent("the account that received this media no longer exists".into())),
        Err(e) => return Err(Failure::Transient(format!("reading the account failed: {e}"))),
    };
    let target = Target::from(&account);
    // The webhook's digest is checked first: a malformed one can never be matched.
    let from_webhook = match media.sha256.as_deref() {
        Some(s) => Some(parse_digest(s).ok_or_else(|| {
            Failure::Permanent(format!("sha256 mismatch: the webhook's sha256 '{s}' is not a SHA-256 digest"))
        })?),
        None => None,
    };
    // A fresh URL every attempt: the last one may have expired.
    let info = state
        .graph
        .media_info(&target, &media.meta_media_id, settings.timeout())
        .await
        .map_err(|e| Failure::graph("asking the Graph API for the media URL failed", e))?;
    if let Some(size) = info.file_size.filter(|s| *s > settings.max_bytes) {
        return Err(too_large(size, settings.max_bytes));
    }
    let from_graph = info.sha256.as_deref().and_then(parse_digest);
    let mut resp =
        state.graph.media_download(&target, &info.url, settings.timeout()).await.map_err(|e| {
            Failure::graph("downloading from the media URL failed (a fresh URL is fetched next time)", e)
        })?;

    let dir = media_dir(&state.config.data_dir);
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| Failure::Transient(format!("cannot create {}: {e}", dir.display())))?;
    let part = PartFile::new(dir.join(format!(".{}.{}.part", media.id, job.lease)));
    let mut file = tokio::fs::File::create(&part.path)
        .await
        .map_err(|e| Failure::Transient(format!("cannot create {}: {e}", part.path.display())))?;
    let mut hasher = Sha256::new();
    let mut written: u64 = 0;
    let limit = info.file_size.unwrap_or(settings.max_bytes).min(settings.max_bytes);
    loop {
        let chunk = match resp.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => return Err(Failure::Transient(format!("the download broke off: {}", crate::graph::describe(e)))),
        };
        written += chunk.len() as u64;
        if written > limit {
            return Err(match info.file_size {
                // More than Meta announced: the file changed under us, or the answer is wrong.
                Some(size) if size <= settings.max_bytes => {
                    Failure::Transient(format!("the download is longer than the {size} bytes Meta announced"))
                }
                _ => too_large(written, settings.max_bytes),
            });
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(|e| Failure::Transient(format!("writing the media file failed: {e}")))?;
    }
    if let Some(size) = info.file_size.filter(|s| *s != written) {
        return Err(Failure::Transient(format!("got {written} bytes of the {size} Meta announced")));
    }
    let digest: [u8; 32] = hasher.finalize().into();
    for (whose, expected) in [("the webhook", from_webhook), ("the Graph API", from_graph)] {
        if let Some(expected) = expected.filter(|e| *e != digest) {
            return Err(Failure::Permanent(format!(
                "sha256 mismatch: the file's SHA-256 is {} but {whose} said {}",
                digest_base64(&digest),
                digest_base64(&expected)
            )));
        }
    }
    file.sync_all().await.map_err(|e| Failure::Transient(format!("syncing the media file failed: {e}")))?;
    drop(file);
    let path = file_path(&state.config.data_dir, &media.id);
    part.persist(&path).await.map_err(|e| Failure::Transient(format!("storing the media file failed: {e}")))?;
    Ok(StoredMedia { file_size: written as i64, sha256: digest_base64(&digest), at: Timestamp::now() })
}

/// Removes partial downloads a killed process left behind: those older than a lease, whose
/// download has certainly been given up (another attempt writes a part of its own).
async fn remove_stale_parts(dir: &Path, lease: std::time::Duration) {
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else { return };
    while let Ok(Some(entry)) = entries.next_entry().await {
        let name = entry.file_name();
        let is_part = name.to_str().is_some_and(|n| n.starts_with('.') && n.ends_with(".part"));
        let stale =
            entry.metadata().await.and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().is_ok_and(|age| age > lease));
        if is_part && stale {
            let _ = tokio::fs::remove_file(entry.path()).await;
        }
    }
}

fn too_large(size: u64, max: u64) -> Failure {
    Failure::Permanent(format!("the file has {size} bytes, more than media.max_bytes ({max})"))
}

/// A download being written; removed unless persisted (an error, or the task dropped).
struct PartFile {
    path: PathBuf,
    kept: bool,
}

impl PartFile {
    fn new(path: PathBuf) -> Self {
        Self { path, kept: false }
    }

    /// Renames the part into place and syncs the directory, so the name survives a crash.
    async fn persist(mut self, to: &Path) -> std::io::Result<()> {
        tokio::fs::rename(&self.path, to).await?;
        self.kept = true;
        if let Some(dir) = to.parent() {
            let dir = dir.to_owned();
            tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all())
                .await
                .map_err(std::io::Error::other)??;
        }
        Ok(())
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
