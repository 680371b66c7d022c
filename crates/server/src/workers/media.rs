//! The media downloader: claims due downloads with a lease, asks the Graph media API for a fresh
//! URL on every attempt (Meta's URLs expire after five minutes and answer 404 then), downloads
//! the file with the account's token, checks its size and SHA-256 against what Meta said, and
//! stores it in the media store under wagate's id (it appears there whole, or not at all).

use sha2::{Digest, Sha256};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use wagate_domain::retry::Retry;
use wagate_domain::time::Timestamp;
use wagate_storage::{Leased, Media, StoredMedia};

use crate::graph::{GraphFailure, Target};
use crate::media_store::FileWriter;
use crate::metrics::Metrics;
use crate::services::media::{digest_base64, parse_digest};
use crate::state::{AppState, Worker};

pub async fn run(state: AppState, cancel: CancellationToken) {
    let settings = state.config.media.clone();
    let poll = std::time::Duration::from_millis(settings.poll_interval_ms);
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

    let mut writer = state
        .media
        .writer(media.id.as_str())
        .await
        .map_err(|e| Failure::Transient(format!("cannot store the media file: {e}")))?;
    let limit = info.file_size.unwrap_or(settings.max_bytes).min(settings.max_bytes);
    let written = match copy(&mut resp, &mut writer, limit, settings.max_bytes, info.file_size).await {
        Ok(w) => w,
        Err(e) => {
            writer.abort().await;
            return Err(e);
        }
    };
    let (written, digest) = written;
    let mismatch = [("the webhook", from_webhook), ("the Graph API", from_graph)]
        .into_iter()
        .find_map(|(whose, expected)| expected.filter(|e| *e != digest).map(|e| (whose, e)));
    if let Some((whose, expected)) = mismatch {
        writer.abort().await;
        return Err(Failure::Permanent(format!(
            "sha256 mismatch: the file's SHA-256 is {} but {whose} said {}",
            digest_base64(&digest),
            digest_base64(&expected)
        )));
    }
    writer.finish().await.map_err(|e| Failure::Transient(format!("storing the media file failed: {e}")))?;
    Ok(StoredMedia { file_size: written as i64, sha256: digest_base64(&digest), at: Timestamp::now() })
}

/// Streams the download into `writer`: how many bytes, and their SHA-256.
async fn copy(
    resp: &mut reqwest::Response,
    writer: &mut FileWriter,
    limit: u64,
    max_bytes: u64,
    announced: Option<u64>,
) -> Result<(u64, [u8; 32]), Failure> {
    let mut hasher = Sha256::new();
    let mut written: u64 = 0;
    loop {
        let chunk = match resp.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => return Err(Failure::Transient(format!("the download broke off: {}", crate::graph::describe(e)))),
        };
        written += chunk.len() as u64;
        if written > limit {
            return Err(match announced {
                // More than Meta announced: the file changed under us, or the answer is wrong.
                Some(size) if size <= max_bytes => {
                    Failure::Transient(format!("the download is longer than the {size} bytes Meta announced"))
                }
                _ => too_large(written, max_bytes),
            });
        }
        hasher.update(&chunk);
        writer.write(&chunk).await.map_err(|e| Failure::Transient(format!("writing the media file failed: {e}")))?;
    }
    if let Some(size) = announced.filter(|s| *s != written) {
        return Err(Failure::Transient(format!("got {written} bytes of the {size} Meta announced")));
    }
    Ok((written, hasher.finalize().into()))
}

fn too_large(size: u64, max: u64) -> Failure {
    Failure::Permanent(format!("the file has {size} bytes, more than media.max_bytes ({max})"))
}
