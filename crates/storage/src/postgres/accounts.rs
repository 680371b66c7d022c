//! Meta accounts and their phone numbers; the secrets are sealed on the way in and opened on
//! the way out (see `shared::seal_secrets`).

use async_trait::async_trait;
use wagate_domain::id::AccountId;
use wagate_domain::limits::{MessagingTier, ThroughputLevel};
use wagate_domain::message::MessageError;
use wagate_domain::time::Timestamp;

use super::{PgStore, Tx, rows};
use crate::shared::{self, account_cols, error_text, phone_cols, seal_secrets};
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
        let rows: Vec<(String, String, String, String)> = sqlx::query_as(SELECT_SECRETS).fetch_all(&mut *tx).await?;
        let mut rewritten = 0;
        for (id, access_token, app_secret, verify_token) in rows {
            let stored = [access_token, app_secret, verify_token];
            let Some([access_token, app_secret, verify_token]) = shared::reseal_row(&self.cipher, &id, stored)? else {
                continue;
            };
            sqlx::query("UPDATE accounts SET access_token = $2, app_secret = $3, verify_token = $4 WHERE id = $1")
                .bind(&id)
                .bind(access_token)
                .bind(app_secret)
                .bind(verify_token)
                .execute(&mut *tx)
                .await?;
            rewritten += 1;
        }
        tx.commit().await?;
        if rewritten > 0 {
            tracing::info!(accounts = rewritten, key = %self.cipher.key_id(), "sealed the accounts' stored secrets");
        }
        Ok(())
    }
}

/// Inserts or refreshes `numbers` for `account`; a number owned by another account is left
/// alone and reported as a conflict.
async fn upsert_phone_numbers(tx: &mut Tx, account: &Account, numbers: &[PhoneNumber]) -> Result<()> {
    for n in numbers {
        let written = sqlx::query(
            "INSERT INTO phone_numbers (id, account_id, display_phone_number, verified_name, \
             quality_rating, is_default, created_at, updated_at, webhooks_since, throughput_level) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (id) DO UPDATE SET display_phone_number = excluded.display_phone_number, \
             verified_name = excluded.verified_name, quality_rating = excluded.quality_rating, \
             throughput_level = COALESCE(excluded.throughput_level, phone_numbers.throughput_level), \
             updated_at = excluded.updated_at WHERE phone_numbers.account_id = excluded.account_id",
        )
        .bind(&n.id)
        .bind(account.id.as_str())
        .bind(&n.display_phone_number)
        .bind(&n.verified_name)
        .bind(&n.quality_rating)
        .bind(n.is_default)
        .bind(n.created_at.as_millis())
        .bind(n.updated_at.as_millis())
        .bind(n.webhooks_since.map(Timestamp::as_millis))
        .bind(n.throughput_level.as_ref().map(ThroughputLevel::as_str))
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if written == 0 {
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
        let [access_token, app_secret, verify_token] = seal_secrets(&self.cipher, account);
        let mut tx = self.begin().await?;
        sqlx::query(concat!(
            "INSERT INTO accounts (",
            account_cols!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        ))
        .bind(account.id.as_str())
        .bind(&account.name)
        .bind(account.mode.as_str())
        .bind(&account.graph_base_url)
        .bind(&account.api_version)
        .bind(&account.waba_id)
        .bind(access_token)
        .bind(app_secret)
        .bind(verify_token)
        .bind(account.created_at.as_millis())
        .bind(account.updated_at.as_millis())
        .bind(account.paused.as_ref().map(|p| p.since.as_millis()))
        .bind(account.paused.as_ref().map(|p| error_text(&p.error)))
        .bind(account.messaging_tier.map(MessagingTier::as_str))
        .execute(&mut *tx)
        .await
        // The id, or the one sandbox account (`accounts_one_sandbox`).
        .map_err(|e| match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                StorageError::Conflict(format!("an account like {} exists already: {}", account.id, d.message()))
            }
            _ => e.into(),
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
        let [access_token, app_secret, verify_token] = seal_secrets(&self.cipher, account);
        let mut tx = self.begin().await?;
        let updated = sqlx::query(
            "UPDATE accounts SET name = $2, graph_base_url = $3, api_version = $4, \
             access_token = $5, app_secret = $6, verify_token = $7, updated_at = $8, \
             messaging_tier = $10 WHERE id = $1 AND updated_at = $9",
        )
        .bind(account.id.as_str())
        .bind(&account.name)
        .bind(&account.graph_base_url)
        .bind(&account.api_version)
        .bind(access_token)
        .bind(app_secret)
        .bind(verify_token)
        .bind(account.updated_at.as_millis())
        .bind(last_updated_at.as_millis())
        .bind(account.messaging_tier.map(MessagingTier::as_str))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        if let Some(numbers) = numbers {
            let existing: Vec<String> = sqlx::query_scalar("SELECT id FROM phone_numbers WHERE account_id = $1")
                .bind(account.id.as_str())
                .fetch_all(&mut *tx)
                .await?;
            for id in existing.iter().filter(|id| !numbers.iter().any(|n| &n.id == *id)) {
                sqlx::query("DELETE FROM phone_numbers WHERE id = $1").bind(id).execute(&mut *tx).await?;
            }
            upsert_phone_numbers(&mut tx, account, numbers).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn get_account(&self, id: &AccountId) -> Result<Option<Account>> {
        sqlx::query(concat!("SELECT ", account_cols!(), " FROM accounts WHERE id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .map(|r| rows::account(&self.cipher, &r))
            .transpose()
    }

    async fn list_accounts(&self) -> Result<Vec<Account>> {
        sqlx::query(concat!("SELECT ", account_cols!(), " FROM accounts ORDER BY id"))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| rows::account(&self.cipher, r))
            .collect()
    }

    async fn accounts_by_waba(&self, waba_id: &str) -> Result<Vec<Account>> {
        sqlx::query(concat!("SELECT ", account_cols!(), " FROM accounts WHERE waba_id = $1 ORDER BY id"))
            .bind(waba_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| rows::account(&self.cipher, r))
            .collect()
    }

    async fn list_phone_numbers(&self) -> Result<Vec<PhoneNumber>> {
        sqlx::query(concat!("SELECT ", phone_cols!(), " ORDER BY p.account_id, p.id"))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(rows::phone_number)
            .collect()
    }

    async fn get_phone_number(&self, id: &str) -> Result<Option<PhoneNumber>> {
        sqlx::query(concat!("SELECT ", phone_cols!(), " WHERE p.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(rows::phone_number)
            .transpose()
    }

    async fn set_default_phone_number(&self, id: &str, at: Timestamp) -> Result<bool> {
        let mut tx = self.begin().await?;
        let mode: Option<String> = sqlx::query_scalar(
            "SELECT a.mode FROM phone_numbers p JOIN accounts a ON a.id = p.account_id WHERE p.id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(mode) = mode else {
            tx.rollback().await?;
            return Ok(false);
        };
        sqlx::query(
            "UPDATE phone_numbers SET is_default = (id = $1), updated_at = $3 \
             WHERE account_id IN (SELECT id FROM accounts WHERE mode = $2) AND (is_default OR id = $1)",
        )
        .bind(id)
        .bind(&mode)
        .bind(at.as_millis())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn pause_account(
        &self,
        id: &AccountId,
        as_of: Timestamp,
        error: &MessageError,
        at: Timestamp,
    ) -> Result<bool> {
        let paused = sqlx::query(
            "UPDATE accounts SET paused_at = $2, paused_error = $3 \
             WHERE id = $1 AND paused_at IS NULL AND updated_at = $4",
        )
        .bind(id.as_str())
        .bind(at.as_millis())
        .bind(error_text(error))
        .bind(as_of.as_millis())
        .execute(&self.pool)
        .await?;
        Ok(paused.rows_affected() == 1)
    }

    async fn resume_account(&self, id: &AccountId) -> Result<bool> {
        let resumed = sqlx::query(
            "UPDATE accounts SET paused_at = NULL, paused_error = NULL WHERE id = $1 AND paused_at IS NOT NULL",
        )
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(resumed.rows_affected() == 1)
    }

    async fn set_number_rate(&self, id: &str, messages_per_second: Option<u32>, at: Timestamp) -> Result<bool> {
        let set = sqlx::query("UPDATE phone_numbers SET messages_per_second = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(messages_per_second.map(i64::from))
            .bind(at.as_millis())
            .execute(&self.pool)
            .await?;
        Ok(set.rows_affected() == 1)
    }

    async fn set_throughput_level(&self, id: &str, level: &ThroughputLevel, at: Timestamp) -> Result<bool> {
        let set = sqlx::query("UPDATE phone_numbers SET throughput_level = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(level.as_str())
            .bind(at.as_millis())
            .execute(&self.pool)
            .await?;
        Ok(set.rows_affected() == 1)
    }

    async fn set_messaging_tier(&self, id: &AccountId, tier: MessagingTier) -> Result<bool> {
        // Not `updated_at`: that marks changes of credentials, which a pause waits for.
        let set =
            sqlx::query("UPDATE accounts SET messaging_tier = $2 WHERE id = $1 AND messaging_tier IS DISTINCT FROM $2")
                .bind(id.as_str())
                .bind(tier.as_str())
                .execute(&self.pool)
                .await?;
        Ok(set.rows_affected() == 1)
    }

    async fn note_webhooks(&self, phone_number_id: &str, at: Timestamp) -> Result<()> {
        sqlx::query("UPDATE phone_numbers SET webhooks_since = $2 WHERE id = $1 AND webhooks_since IS NULL")
            .bind(phone_number_id)
            .bind(at.as_millis())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn count_conversations_opened(&self, account_id: &AccountId, since: Timestamp) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(DISTINCT counterpart) FROM messages WHERE account_id = $1 AND opens_conversation \
             AND created_at >= $2 AND status NOT IN ('failed', 'canceled')",
        )
        .bind(account_id.as_str())
        .bind(since.as_millis())
        .fetch_one(&self.pool)
        .await?)
    }
}
