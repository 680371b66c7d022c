//! Template sync: every account's templates read in full from Meta at start, then every
//! `[templates] sync_interval_secs` (Meta's webhooks keep them current in between); an account
//! connected since, or whose read failed, is read at the next tick. With 0, only when asked
//! (`POST /v1/templates/sync`).

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::services::templates;
use crate::state::AppState;

/// How often accounts never read (new, or failed) are looked for.
const TICK: Duration = Duration::from_secs(15);

pub async fn run(state: AppState, cancel: CancellationToken) {
    let every = Duration::from_secs(state.config.templates.sync_interval_secs);
    if every.is_zero() {
        return;
    }
    let mut last_full: Option<Instant> = None;
    loop {
        if last_full.is_none_or(|at| at.elapsed() >= every) {
            match templates::sync_all(&state).await {
                // A failed account is read again at the next tick, and the whole list then.
                Ok(results) if results.iter().all(|(_, r)| r.is_ok()) => last_full = Some(Instant::now()),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "listing accounts for the template sync failed"),
            }
        } else if let Err(e) = templates::sync_unsynced(&state).await {
            tracing::warn!(error = %e, "looking for accounts whose templates were never read failed");
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(TICK.min(every)) => {}
        }
    }
}
