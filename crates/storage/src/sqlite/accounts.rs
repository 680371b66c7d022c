//! Meta accounts, their phone numbers, and the sealing of their secrets.

use async_trait::async_trait;
use rusqlite::{Transaction, ffi};
use wagate_domain::id::AccountId;
use wagate_domain::limits::{MessagingTier, ThroughputLevel};
use wagate_domain::time::Timestamp;

use super::SqliteStore;
use super::events::emit;
use super::rows::{all, execute, first, value};
use crate::shared::{self, error_text, reseal_row, seal_secrets};
use crate::*;

const SELECT_SECRETS: &str = "SELECT id, access_token, app_secret, verify_token FROM accounts ORDER BY id";

#[async_trait]
impl Accounts for SqliteStore {
    async fn insert_account(&self, account: &Account, numbers: &[PhoneNumber]) -> Result<()> {
        let sealed = seal_secrets(&self.cipher, account);
        let (a, numbers) = (account.clone(), numbers.to_vec());
        self.writer
            .write(move |tx| {
                execute(tx, shared::INSERT_ACCOUNT, shared::account_values(&a, &sealed)).map_err(|e| match e {
                    StorageError::Sqlite(e) if is_unique_violation(&e) => {
                        StorageError::Conflict(format!("an account like {} exists already: {e}", a.id))
                    }
                    e => e,
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
                if execute(tx, shared::UPDATE_ACCOUNT, shared::account_update_values(&a, &sealed, last_updated_at))?
                    == 0
                {
                    return Ok(false);
                }
                if let Some(numbers) = &numbers {
                    let existing: Vec<String> =
                        all(tx, shared::SELECT_ACCOUNT_NUMBERS, [a.id.as_str()], |r| Ok(r.get(0)?))?;
                    for id in existing.iter().filter(|id| !numbers.iter().any(|n| &n.id == *id)) {
                        execute(tx, shared::DELETE_PHONE_NUMBER, [id])?;
                    }
                    upsert_phone_numbers(tx, &a.id, numbers)?;
                }
                Ok(true)
            })
            .await
    }

    async fn get_account(&self, id: &AccountId) -> Result<Option<Account>> {
        self.readers.read(|c| first(c, shared::SELECT_ACCOUNT, [id.as_str()], |r| shared::account(&self.cipher, r)))
    }

    // The accounts and numbers of a deployment are few: their lists are point reads.

    async fn list_accounts(&self) -> Result<Vec<Account>> {
        self.readers.read(|c| all(c, shared::SELECT_ACCOUNTS, [], |r| shared::account(&self.cipher, r)))
    }

    async fn accounts_by_waba(&self, waba_id: &str) -> Result<Vec<Account>> {
        self.readers.read(|c| all(c, shared::SELECT_ACCOUNTS_BY_WABA, [waba_id], |r| shared::account(&self.cipher, r)))
    }

    async fn list_phone_numbers(&self) -> Result<Vec<PhoneNumber>> {
        self.readers.read(|c| all(c, shared::SELECT_PHONE_NUMBERS, [], |r| shared::phone_number(r)))
    }

    async fn get_phone_number(&self, id: &str) -> Result<Option<PhoneNumber>> {
        self.readers.read(|c| first(c, shared::SELECT_PHONE_NUMBER, [id], |r| shared::phone_number(r)))
    }

    async fn set_default_phone_number(&self, id: &str, at: Timestamp) -> Result<bool> {
        let id = id.to_owned();
        self.writer
            .write(move |tx| {
                let Some(mode) = first(tx, shared::SELECT_NUMBER_MODE, [&id], |r| Ok(r.get::<_, String>(0)?))? else {
                    return Ok(false);
                };
                execute(tx, shared::SET_DEFAULT_NUMBER, (&id, at.as_millis(), mode))?;
                Ok(true)
            })
            .await
    }

    async fn pause_account(&self, id: &AccountId, as_of: Timestamp, pause: &Pause) -> Result<bool> {
        let params = (pause.since.as_millis(), error_text(&pause.error), id.as_str().to_owned(), as_of.as_millis());
        self.account_changed(id, shared::PAUSE_ACCOUNT, params).await
    }

    async fn resume_account(&self, id: &AccountId) -> Result<bool> {
        self.account_changed(id, shared::RESUME_ACCOUNT, (id.as_str().to_owned(),)).await
    }

    async fn set_number_rate(&self, id: &str, messages_per_second: Option<u32>, at: Timestamp) -> Result<bool> {
        let params = (messages_per_second, at.as_millis(), id.to_owned());
        Ok(self.execute(shared::SET_NUMBER_RATE, params).await? == 1)
    }

    async fn set_throughput_level(&self, id: &str, level: &ThroughputLevel, at: Timestamp) -> Result<bool> {
        let params = (level.as_str().to_owned(), at.as_millis(), id.to_owned());
        Ok(self.execute(shared::SET_THROUGHPUT_LEVEL, params).await? == 1)
    }

    async fn set_messaging_tier(&self, id: &AccountId, tier: MessagingTier) -> Result<bool> {
        Ok(self.execute(shared::SET_MESSAGING_TIER, (tier.as_str(), id.as_str().to_owned())).await? == 1)
    }

    async fn note_webhooks(&self, phone_number_id: &str, at: Timestamp) -> Result<()> {
        self.execute(shared::NOTE_WEBHOOKS, (at.as_millis(), phone_number_id.to_owned())).await?;
        Ok(())
    }

    async fn count_conversations_opened(&self, account_id: &AccountId, since: Timestamp) -> Result<i64> {
        let params = (account_id.as_str().to_owned(), since.as_millis());
        self.readers.scan(move |c| value(c, shared::COUNT_CONVERSATIONS_OPENED, params)).await
    }

    async fn conversation_opened_at(
        &self,
        account_id: &AccountId,
        since: Timestamp,
        nth: i64,
    ) -> Result<Option<Timestamp>> {
        let params = (account_id.as_str().to_owned(), since.as_millis(), nth.max(0));
        let last: Option<i64> = self
            .readers
            .scan(move |c| first(c, shared::NTH_CONVERSATION_LEAVING, params, |r| Ok(r.get::<_, i64>(0)?)))
            .await?;
        Ok(last.map(Timestamp::from_millis))
    }
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    let unique = [ffi::SQLITE_CONSTRAINT_UNIQUE, ffi::SQLITE_CONSTRAINT_PRIMARYKEY];
    e.sqlite_error().is_some_and(|f| unique.contains(&f.extended_code))
}

/// Inserts or refreshes `numbers` for the account; a number owned by another account is a
/// conflict.
fn upsert_phone_numbers(tx: &Transaction<'_>, account_id: &AccountId, numbers: &[PhoneNumber]) -> Result<()> {
    for n in numbers {
        if execute(tx, shared::UPSERT_PHONE_NUMBER, shared::phone_number_values(account_id, n))? == 0 {
            return Err(StorageError::Conflict(format!(
                "phone number {} ({}) belongs to another account",
                n.id, n.display_phone_number
            )));
        }
    }
    Ok(())
}

impl SqliteStore {
    /// Pauses or resumes an account with `sql`, and stores the event of it.
    async fn account_changed<P>(&self, id: &AccountId, sql: &'static str, params: P) -> Result<bool>
    where
        P: rusqlite::Params + Clone + Send + 'static,
    {
        let (id, cipher, views) = (id.as_str().to_owned(), self.cipher.clone(), self.views.clone());
        self.writer
            .write(move |tx| {
                if execute(tx, sql, params.clone())? != 1 {
                    return Ok(false);
                }
                if let Some(a) = first(tx, shared::SELECT_ACCOUNT, [&id], |r| shared::account(&cipher, r))? {
                    emit(tx, &shared::account_state_event(views.as_ref(), &a), Timestamp::now().as_millis())?;
                }
                Ok(true)
            })
            .await
    }

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
                        execute(tx, shared::UPDATE_SECRETS, [access_token, app_secret, verify_token, id])?;
                        rewritten += 1;
                    }
                }
                let endpoints = all(tx, shared::SELECT_ENDPOINT_SECRETS, [], |r| {
                    Ok((r.get::<_, String>(0)?, [r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?]))
                })?;
                for (id, sealed) in endpoints {
                    if let Some([secret, previous, headers, app_secret]) =
                        shared::reseal_endpoint(&cipher, &id, sealed)?
                    {
                        execute(tx, shared::UPDATE_ENDPOINT_SECRETS, (secret, previous, headers, app_secret, id))?;
                        rewritten += 1;
                    }
                }
                Ok(rewritten)
            })
            .await?;
        if rewritten > 0 {
            tracing::info!(rows = rewritten, key = %self.cipher.key_id(), "sealed the stored secrets");
        }
        Ok(())
    }
}
