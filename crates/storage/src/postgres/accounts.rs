//! Meta accounts and their phone numbers; the secrets are sealed on the way in and opened on
//! the way out (see `shared::seal_secrets`).

use async_trait::async_trait;
use wagate_domain::id::AccountId;
use wagate_domain::limits::{MessagingTier, ThroughputLevel};
use wagate_domain::time::Timestamp;

use super::events::emit_all;
use super::{PgStore, Tx, all, execute, first, value};
use crate::shared::{self, Columns, error_text, seal_secrets};
use crate::*;

/// Locked: instances starting together seal each row once, the later one seeing what the
/// earlier sealed (and failing if that was another key).
const SELECT_SECRETS: &str = "SELECT id, access_token, app_secret, verify_token FROM accounts ORDER BY id FOR UPDATE";

impl PgStore {
    /// Seals the secrets stored in clear (by a version before secrets were sealed) and re-seals
    /// those a previous key of the cipher sealed, in one transaction; fails on a value no key
    /// of the cipher opens.
    pub(super) async fn seal_stored_secrets(&self) -> Result<()> {
        let mut tx = self.begin().await?;
        let rows: Vec<(String, [String; 3])> =
            all(&mut *tx, SELECT_SECRETS, (), |r| Ok((r.get(0)?, [r.get(1)?, r.get(2)?, r.get(3)?]))).await?;
        let mut rewritten = 0;
        for (id, stored) in rows {
            let Some([access_token, app_secret, verify_token]) = shared::reseal_row(&self.cipher, &id, stored)? else {
                continue;
            };
            execute(&mut *tx, shared::UPDATE_SECRETS, (access_token, app_secret, verify_token, &id)).await?;
            rewritten += 1;
        }
        let endpoints: Vec<(String, [Option<String>; 4])> = all(&mut *tx, shared::SELECT_ENDPOINT_SECRETS, (), |r| {
            Ok((r.get(0)?, [r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?]))
        })
        .await?;
        for (id, sealed) in endpoints {
            if let Some([secret, previous, headers, app_secret]) = shared::reseal_endpoint(&self.cipher, &id, sealed)? {
                execute(&mut *tx, shared::UPDATE_ENDPOINT_SECRETS, (secret, previous, headers, app_secret, &id))
                    .await?;
                rewritten += 1;
            }
        }
        tx.commit().await?;
        if rewritten > 0 {
            tracing::info!(rows = rewritten, key = %self.cipher.key_id(), "sealed the stored secrets");
        }
        Ok(())
    }

    /// Commits an account's pause or resume (`changed`: the statement changed its row), with
    /// its event.
    async fn account_changed(&self, mut tx: Tx, id: &AccountId, changed: bool) -> Result<bool> {
        if changed && let Some(a) = first(&mut *tx, shared::SELECT_ACCOUNT, (id.as_str(),), |r| self.account(r)).await?
        {
            emit_all(&mut tx, &[shared::account_state_event(self.views.as_ref(), &a)], Timestamp::now()).await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    fn account(&self, r: &impl Columns) -> Result<Account> {
        shared::account(&self.cipher, r)
    }
}

/// Inserts or refreshes `numbers` for `account`; a number owned by another account is left
/// alone and reported as a conflict.
async fn upsert_phone_numbers(tx: &mut Tx, account: &Account, numbers: &[PhoneNumber]) -> Result<()> {
    for n in numbers {
        if execute(&mut **tx, shared::UPSERT_PHONE_NUMBER, shared::phone_number_values(&account.id, n)).await? == 0 {
            return Err(StorageError::Conflict(format!(
                "phone number {} ({}) belongs to another account",
                n.id, n.display_phone_number
            )));
        }
    }
    Ok(())
}

#[async_trait]
impl Accounts for PgStore {
    async fn insert_account(&self, account: &Account, numbers: &[PhoneNumber]) -> Result<()> {
        let sealed = seal_secrets(&self.cipher, account);
        let mut tx = self.begin().await?;
        execute(&mut *tx, shared::INSERT_ACCOUNT, shared::account_values(account, &sealed))
            .await
            // The id, or the one sandbox account (`accounts_one_sandbox`).
            .map_err(|e| match &e {
                StorageError::Database(sqlx::Error::Database(d)) if d.is_unique_violation() => {
                    StorageError::Conflict(format!("an account like {} exists already: {}", account.id, d.message()))
                }
                _ => e,
            })?;
        upsert_phone_numbers(&mut tx, account, numbers).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn update_account(
        &self,
        account: &Account,
        last_updated_at: Timestamp,
        numbers: Option<&[PhoneNumber]>,
    ) -> Result<bool> {
        let sealed = seal_secrets(&self.cipher, account);
        let mut tx = self.begin().await?;
        let values = shared::account_update_values(account, &sealed, last_updated_at);
        if execute(&mut *tx, shared::UPDATE_ACCOUNT, values).await? == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        if let Some(numbers) = numbers {
            let existing: Vec<String> =
                all(&mut *tx, shared::SELECT_ACCOUNT_NUMBERS, (account.id.as_str(),), |r| r.get(0)).await?;
            for id in existing.iter().filter(|id| !numbers.iter().any(|n| &n.id == *id)) {
                execute(&mut *tx, shared::DELETE_PHONE_NUMBER, (id,)).await?;
            }
            upsert_phone_numbers(&mut tx, account, numbers).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn get_account(&self, id: &AccountId) -> Result<Option<Account>> {
        first(&self.pool, shared::SELECT_ACCOUNT, (id.as_str(),), |r| self.account(r)).await
    }

    async fn list_accounts(&self) -> Result<Vec<Account>> {
        all(&self.pool, shared::SELECT_ACCOUNTS, (), |r| self.account(r)).await
    }

    async fn accounts_by_waba(&self, waba_id: &str) -> Result<Vec<Account>> {
        all(&self.pool, shared::SELECT_ACCOUNTS_BY_WABA, (waba_id,), |r| self.account(r)).await
    }

    async fn list_phone_numbers(&self) -> Result<Vec<PhoneNumber>> {
        all(&self.pool, shared::SELECT_PHONE_NUMBERS, (), shared::phone_number).await
    }

    async fn get_phone_number(&self, id: &str) -> Result<Option<PhoneNumber>> {
        first(&self.pool, shared::SELECT_PHONE_NUMBER, (id,), shared::phone_number).await
    }

    async fn set_default_phone_number(&self, id: &str, at: Timestamp) -> Result<bool> {
        let mut tx = self.begin().await?;
        let Some(mode) = first(&mut *tx, shared::SELECT_NUMBER_MODE, (id,), |r| r.get::<String>(0)).await? else {
            tx.rollback().await?;
            return Ok(false);
        };
        execute(&mut *tx, shared::SET_DEFAULT_NUMBER, (id, at.as_millis(), mode)).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn pause_account(&self, id: &AccountId, as_of: Timestamp, pause: &Pause) -> Result<bool> {
        let mut tx = self.begin().await?;
        let values = (pause.since.as_millis(), error_text(&pause.error), id.as_str(), as_of.as_millis());
        let changed = execute(&mut *tx, shared::PAUSE_ACCOUNT, values).await? == 1;
        self.account_changed(tx, id, changed).await
    }

    async fn resume_account(&self, id: &AccountId) -> Result<bool> {
        let mut tx = self.begin().await?;
        let changed = execute(&mut *tx, shared::RESUME_ACCOUNT, (id.as_str(),)).await? == 1;
        self.account_changed(tx, id, changed).await
    }

    async fn set_number_rate(&self, id: &str, messages_per_second: Option<u32>, at: Timestamp) -> Result<bool> {
        let values = (messages_per_second.map(i64::from), at.as_millis(), id);
        Ok(execute(&self.pool, shared::SET_NUMBER_RATE, values).await? == 1)
    }

    async fn set_throughput_level(&self, id: &str, level: &ThroughputLevel, at: Timestamp) -> Result<bool> {
        let values = (level.as_str(), at.as_millis(), id);
        Ok(execute(&self.pool, shared::SET_THROUGHPUT_LEVEL, values).await? == 1)
    }

    async fn set_messaging_tier(&self, id: &AccountId, tier: MessagingTier) -> Result<bool> {
        Ok(execute(&self.pool, shared::SET_MESSAGING_TIER, (tier.as_str(), id.as_str())).await? == 1)
    }

    async fn note_webhooks(&self, phone_number_id: &str, at: Timestamp) -> Result<()> {
        execute(&self.pool, shared::NOTE_WEBHOOKS, (at.as_millis(), phone_number_id)).await?;
        Ok(())
    }

    async fn count_conversations_opened(&self, account_id: &AccountId, since: Timestamp) -> Result<i64> {
        value(&self.pool, shared::COUNT_CONVERSATIONS_OPENED, (account_id.as_str(), since.as_millis())).await
    }

    async fn conversation_opened_at(
        &self,
        account_id: &AccountId,
        since: Timestamp,
        nth: i64,
    ) -> Result<Option<Timestamp>> {
        let params = (account_id.as_str(), since.as_millis(), nth.max(0));
        let last: Option<i64> =
            first(&self.pool, shared::NTH_CONVERSATION_LEAVING, params, |r| r.get::<i64>(0)).await?;
        Ok(last.map(Timestamp::from_millis))
    }
}
