//! Meta accounts, their phone numbers, and the sealing of their secrets.

use async_trait::async_trait;
use rusqlite::{Transaction, ffi, params};
use wagate_domain::id::AccountId;
use wagate_domain::limits::{MessagingTier, ThroughputLevel};
use wagate_domain::message::MessageError;
use wagate_domain::time::Timestamp;

use super::SqliteStore;
use super::rows::{self, all, first, value};
use crate::shared::{account_cols, error_text, phone_cols, reseal_row, seal_secrets};
use crate::*;

const INSERT_ACCOUNT: &str = concat!(
    "INSERT INTO accounts (",
    account_cols!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
);
const UPDATE_ACCOUNT: &str = "UPDATE accounts SET name = ?2, graph_base_url = ?3, api_version = ?4, \
    access_token = ?5, app_secret = ?6, verify_token = ?7, updated_at = ?8, messaging_tier = ?10 \
    WHERE id = ?1 AND updated_at = ?9";
const SELECT_ACCOUNT: &str = concat!("SELECT ", account_cols!(), " FROM accounts WHERE id = ?1");
const SELECT_ACCOUNTS: &str = concat!("SELECT ", account_cols!(), " FROM accounts ORDER BY id");
const SELECT_ACCOUNTS_BY_WABA: &str =
    concat!("SELECT ", account_cols!(), " FROM accounts WHERE waba_id = ?1 ORDER BY id");
const SELECT_PHONE_NUMBERS: &str = concat!("SELECT ", phone_cols!(), " ORDER BY p.account_id, p.id");
const SELECT_PHONE_NUMBER: &str = concat!("SELECT ", phone_cols!(), " WHERE p.id = ?1");
/// Inserts or refreshes a number; one owned by another account is left alone (no row changed).
const UPSERT_PHONE_NUMBER: &str = "INSERT INTO phone_numbers (id, account_id, display_phone_number, \
    verified_name, quality_rating, is_default, created_at, updated_at, webhooks_since, throughput_level) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
    ON CONFLICT (id) DO UPDATE SET display_phone_number = excluded.display_phone_number, \
    verified_name = excluded.verified_name, quality_rating = excluded.quality_rating, \
    throughput_level = COALESCE(excluded.throughput_level, phone_numbers.throughput_level), \
    updated_at = excluded.updated_at WHERE phone_numbers.account_id = excluded.account_id";
const SELECT_SECRETS: &str = "SELECT id, access_token, app_secret, verify_token FROM accounts ORDER BY id";
const UPDATE_SECRETS: &str = "UPDATE accounts SET access_token = ?2, app_secret = ?3, verify_token = ?4 WHERE id = ?1";

#[async_trait]
impl Accounts for SqliteStore {
    async fn insert_account(&self, account: &Account, numbers: &[PhoneNumber]) -> Result<()> {
        let sealed = seal_secrets(&self.cipher, account);
        let (a, numbers) = (account.clone(), numbers.to_vec());
        let paused_error = a.paused.as_ref().map(|p| error_text(&p.error));
        self.writer
            .write(move |tx| {
                let [access_token, app_secret, verify_token] = &sealed;
                let inserted = tx.prepare_cached(INSERT_ACCOUNT)?.execute(params![
                    a.id.as_str(),
                    a.name,
                    a.mode.as_str(),
                    a.graph_base_url,
                    a.api_version,
                    a.waba_id,
                    access_token,
                    app_secret,
                    verify_token,
                    a.created_at.as_millis(),
                    a.updated_at.as_millis(),
                    a.paused.as_ref().map(|p| p.since.as_millis()),
                    paused_error,
                    a.messaging_tier.map(MessagingTier::as_str),
                ]);
                inserted.map_err(|e| {
                    if !is_unique_violation(&e) {
                        return e.into();
                    }
                    StorageError::Conflict(format!("an account like {} exists already: {e}", a.id))
                })?;
                upsert_phone_numbers(tx, &a.id, &numbers)
            })
            .await
    }

    async fn update_account(
        &self,
        account: &Account,
        last_updated_at: Timestamp,
        numbers: Option<&[PhoneNumber]>,
    ) -> Result<bool> {
        let sealed = seal_secrets(&self.cipher, account);
        let (a, numbers) = (account.clone(), numbers.map(<[PhoneNumber]>::to_vec));
        self.writer
            .write(move |tx| {
                let [access_token, app_secret, verify_token] = &sealed;
                let updated = tx.prepare_cached(UPDATE_ACCOUNT)?.execute(params![
                    a.id.as_str(),
                    a.name,
                    a.graph_base_url,
                    a.api_version,
                    access_token,
                    app_secret,
                    verify_token,
                    a.updated_at.as_millis(),
                    last_updated_at.as_millis(),
                    a.messaging_tier.map(MessagingTier::as_str),
                ])?;
                if updated == 0 {
                    return Ok(false);
                }
                if let Some(numbers) = &numbers {
                    let existing: Vec<String> =
                        all(tx, "SELECT id FROM phone_numbers WHERE account_id = ?1", [a.id.as_str()], |r| {
                            Ok(r.get(0)?)
                        })?;
                    for id in existing.iter().filter(|id| !numbers.iter().any(|n| &n.id == *id)) {
                        tx.prepare_cached("DELETE FROM phone_numbers WHERE id = ?1")?.execute([id])?;
                    }
                    upsert_phone_numbers(tx, &a.id, numbers)?;
                }
                Ok(true)
            })
            .await
    }

    async fn get_account(&self, id: &AccountId) -> Result<Option<Account>> {
        self.readers.read(|c| first(c, SELECT_ACCOUNT, [id.as_str()], |r| rows::account(&self.cipher, r)))
    }

    // The accounts and numbers of a deployment are few: their lists are point reads.

    async fn list_accounts(&self) -> Result<Vec<Account>> {
        self.readers.read(|c| all(c, SELECT_ACCOUNTS, [], |r| rows::account(&self.cipher, r)))
    }

    async fn accounts_by_waba(&self, waba_id: &str) -> Result<Vec<Account>> {
        self.readers.read(|c| all(c, SELECT_ACCOUNTS_BY_WABA, [waba_id], |r| rows::account(&self.cipher, r)))
    }

    async fn list_phone_numbers(&self) -> Result<Vec<PhoneNumber>> {
        self.readers.read(|c| all(c, SELECT_PHONE_NUMBERS, [], rows::phone_number))
    }

    async fn get_phone_number(&self, id: &str) -> Result<Option<PhoneNumber>> {
        self.readers.read(|c| first(c, SELECT_PHONE_NUMBER, [id], rows::phone_number))
    }

    async fn set_default_phone_number(&self, id: &str, at: Timestamp) -> Result<bool> {
        let id = id.to_owned();
        self.writer
            .write(move |tx| {
                let mode: Option<String> = first(
                    tx,
                    "SELECT a.mode FROM phone_numbers p JOIN accounts a ON a.id = p.account_id WHERE p.id = ?1",
                    [&id],
                    |r| Ok(r.get(0)?),
                )?;
                let Some(mode) = mode else { return Ok(false) };
                tx.prepare_cached(
                    "UPDATE phone_numbers SET is_default = (id = ?1), updated_at = ?3 \
                     WHERE account_id IN (SELECT id FROM accounts WHERE mode = ?2) AND (is_default OR id = ?1)",
                )?
                .execute(params![id, mode, at.as_millis()])?;
                Ok(true)
            })
            .await
    }

    async fn pause_account(
        &self,
        id: &AccountId,
        as_of: Timestamp,
        error: &MessageError,
        at: Timestamp,
    ) -> Result<bool> {
        let sql = "UPDATE accounts SET paused_at = ?2, paused_error = ?3 \
            WHERE id = ?1 AND paused_at IS NULL AND updated_at = ?4";
        let params = (id.as_str().to_owned(), at.as_millis(), error_text(error), as_of.as_millis());
        Ok(self.execute(sql, params).await? == 1)
    }

    async fn resume_account(&self, id: &AccountId) -> Result<bool> {
        let sql = "UPDATE accounts SET paused_at = NULL, paused_error = NULL WHERE id = ?1 AND paused_at IS NOT NULL";
        Ok(self.execute(sql, (id.as_str().to_owned(),)).await? == 1)
    }

    async fn set_number_rate(&self, id: &str, messages_per_second: Option<u32>, at: Timestamp) -> Result<bool> {
        let sql = "UPDATE phone_numbers SET messages_per_second = ?2, updated_at = ?3 WHERE id = ?1";
        Ok(self.execute(sql, (id.to_owned(), messages_per_second, at.as_millis())).await? == 1)
    }

    async fn set_throughput_level(&self, id: &str, level: &ThroughputLevel, at: Timestamp) -> Result<bool> {
        let sql = "UPDATE phone_numbers SET throughput_level = ?2, updated_at = ?3 WHERE id = ?1";
        Ok(self.execute(sql, (id.to_owned(), level.as_str().to_owned(), at.as_millis())).await? == 1)
    }

    async fn set_messaging_tier(&self, id: &AccountId, tier: MessagingTier) -> Result<bool> {
        // Not `updated_at`: that marks changes of credentials, which a pause waits for.
        let sql = "UPDATE accounts SET messaging_tier = ?2 WHERE id = ?1 AND messaging_tier IS DISTINCT FROM ?2";
        Ok(self.execute(sql, (id.as_str().to_owned(), tier.as_str())).await? == 1)
    }

    async fn note_webhooks(&self, phone_number_id: &str, at: Timestamp) -> Result<()> {
        let sql = "UPDATE phone_numbers SET webhooks_since = ?2 WHERE id = ?1 AND webhooks_since IS NULL";
        self.execute(sql, (phone_number_id.to_owned(), at.as_millis())).await?;
        Ok(())
    }

    async fn count_conversations_opened(&self, account_id: &AccountId, since: Timestamp) -> Result<i64> {
        let sql = "SELECT COUNT(DISTINCT counterpart) FROM messages WHERE account_id = ?1 AND opens_conversation \
            AND created_at >= ?2 AND status NOT IN ('failed', 'canceled')";
        let params = (account_id.as_str().to_owned(), since.as_millis());
        self.readers.scan(move |c| value(c, sql, params)).await
    }
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    let unique = [ffi::SQLITE_CONSTRAINT_UNIQUE, ffi::SQLITE_CONSTRAINT_PRIMARYKEY];
    e.sqlite_error().is_some_and(|f| unique.contains(&f.extended_code))
}

/// Inserts or refreshes `numbers` for the account; a number owned by another account is a
/// conflict.
fn upsert_phone_numbers(tx: &Transaction<'_>, account_id: &AccountId, numbers: &[PhoneNumber]) -> Result<()> {
    let mut upsert = tx.prepare_cached(UPSERT_PHONE_NUMBER)?;
    for n in numbers {
        let written = upsert.execute(params![
            n.id,
            account_id.as_str(),
            n.display_phone_number,
            n.verified_name,
            n.quality_rating,
            n.is_default,
            n.created_at.as_millis(),
            n.updated_at.as_millis(),
            n.webhooks_since.map(Timestamp::as_millis),
            n.throughput_level.as_ref().map(ThroughputLevel::as_str),
        ])?;
        if written == 0 {
            return Err(StorageError::Conflict(format!(
                "phone number {} ({}) belongs to another account",
                n.id, n.display_phone_number
            )));
        }
    }
    Ok(())
}

impl SqliteStore {
    /// Seals the secrets stored in clear (by a version before secrets were sealed) and re-seals
    /// those a previous key of the cipher sealed, in one transaction; fails on a value no key of
    /// the cipher opens. The write transaction (BEGIN IMMEDIATE) keeps other processes out.
    pub(super) async fn seal_stored_secrets(&self) -> Result<()> {
        let cipher = self.cipher.clone();
        let rewritten = self
            .writer
            .write(move |tx| {
                let stored =
                    all(tx, SELECT_SECRETS, [], |r| Ok((r.get::<_, String>(0)?, [r.get(1)?, r.get(2)?, r.get(3)?])))?;
                let mut rewritten = 0;
                for (id, secrets) in stored {
                    if let Some([access_token, app_secret, verify_token]) = reseal_row(&cipher, &id, secrets)? {
                        tx.prepare_cached(UPDATE_SECRETS)?.execute(params![
                            id,
                            access_token,
                            app_secret,
                            verify_token
                        ])?;
                        rewritten += 1;
                    }
                }
                Ok(rewritten)
            })
            .await?;
        if rewritten > 0 {
            tracing::info!(accounts = rewritten, key = %self.cipher.key_id(), "sealed the accounts' stored secrets");
        }
        Ok(())
    }
}
