//! Template sync: every account's templates read in full from Meta at start, then every
//! `[templates] sync_interval_secs` (Meta's webhooks keep them current in between); an account
//! connected since, or whose read failed, is read at the next tick. With 0, only when asked
//! (`POST /v1/templates/sync`).

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use wagate_domain::id::AccountId;

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
    // Accounts whose last read failed: read again at each tick, alone.
    let mut failing: Vec<AccountId> = Vec::new();
    loop {
        if last_full.is_none_or(|at| at.elapsed() >= every) {
            match templates::sync_all(&state).await {
                Ok(results) => {
                    last_full = Some(Instant::now());
                    failing = results.into_iter().filter(|(_, r)| r.is_err()).map(|(id, _)| id).collect();
                }
                Err(e) => tracing::warn!(error = %e, "listing accounts for the template sync failed"),
            }
        } else {
            if let Err(e) = templates::sync_unsynced(&state).await {
                tracing::warn!(error = %e, "looking for accounts whose templates were never read failed");
            }
            let mut still = Vec::new();
            for id in failing {
                if let Ok(results) = templates::sync_some(&state, Some(id.as_str())).await
                    && results.iter().any(|(_, r)| r.is_err())
                {
                    still.push(id);
                }
            }
            failing = still;
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(TICK.min(every)) => {}
        }
    }
}
