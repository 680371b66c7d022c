//! Secrets at rest, run against SQLite always and PostgreSQL when `WAGATE_TEST_DATABASE_URL` is
//! set, like `conformance.rs`: the rows hold sealed values, callers see clear ones, values in
//! clear are sealed on opening, and a wrong key or a damaged value is refused by name.

use wagate_domain::id::AccountId;
use wagate_domain::sealed::{Cipher, OpenError, SecretKey, sealed_by};
use wagate_domain::secret::Secret;
use wagate_domain::time::Timestamp;
use wagate_storage::testing::TestDatabase;
use wagate_storage::*;

fn account(name: &str) -> Account {
    let at = Timestamp::from_millis(1_800_000_000_000);
    Account {
        id: AccountId::generate(),
        name: name.into(),
        mode: AccountMode::Live,
        graph_base_url: "http://graph.test".into(),
        api_version: "v23.0".into(),
        waba_id: format!("waba-{name}"),
        access_token: Secret::new(format!("EAAG-token-of-{name}")),
        app_secret: Secret::new(format!("app-secret-of-{name}")),
        verify_token: Secret::new(format!("verify-token-of-{name}")),
        paused: None,
        messaging_tier: None,
        created_at: at,
        updated_at: at,
    }
}

fn clear_values(a: &Account) -> [&str; 3] {
    [a.access_token.expose(), a.app_secret.expose(), a.verify_token.expose()]
}

fn assert_sealed_by(rows: &[(String, [String; 3])], key: &SecretKey, clear: &[[&str; 3]]) {
    assert!(!rows.is_empty());
    for (id, values) in rows {
        for v in values {
            assert_eq!(sealed_by(v), Some(key.id().as_str()), "account {id}: {v}");
            for c in clear.iter().flatten() {
                assert!(!v.contains(c), "account {id} stores {c} in clear");
            }
        }
    }
}

async fn secrets_are_sealed_in_the_rows_and_clear_to_callers(backend: Backend) {
    let Some(db) = TestDatabase::new(backend).await else { return };
    let store = connect(Some(db.url()), &db.data_dir(), db.cipher()).await.unwrap();
    let (shop, cafe) = (account("shop"), account("cafe"));
    store.insert_account(&shop, &[]).await.unwrap();
    store.insert_account(&cafe, &[]).await.unwrap();
    let mut changed = shop.clone();
    changed.access_token = Secret::new("EAAG-a-new-token-for-shop");
    changed.updated_at = Timestamp::from_millis(shop.updated_at.as_millis() + 1);
    assert!(store.update_account(&changed, shop.updated_at, None).await.unwrap());

    assert_sealed_by(&db.stored_secrets().await, db.secret_key(), &[clear_values(&changed), clear_values(&cafe)]);
    let read = store.get_account(&shop.id).await.unwrap().unwrap();
    assert_eq!(clear_values(&read), clear_values(&changed));
    let listed = store.list_accounts().await.unwrap();
    assert_eq!(listed.iter().find(|a| a.id == cafe.id).map(clear_values), Some(clear_values(&cafe)));
    let by_waba = store.accounts_by_waba("waba-cafe").await.unwrap();
    assert_eq!(by_waba.iter().map(clear_values).collect::<Vec<_>>(), [clear_values(&cafe)]);
    store.close().await;
}

async fn secrets_in_clear_are_sealed_once_when_opened(backend: Backend) {
    let Some(db) = TestDatabase::new(backend).await else { return };
    let shop = account("shop");
    let store = connect(Some(db.url()), &db.data_dir(), db.cipher()).await.unwrap();
    store.insert_account(&shop, &[]).await.unwrap();
    store.close().await;
    // As a version that stored secrets in clear left them.
    db.write_stored_secrets(shop.id.as_str(), clear_values(&shop)).await;

    let store = connect(Some(db.url()), &db.data_dir(), db.cipher()).await.unwrap();
    let sealed = db.stored_secrets().await;
    assert_sealed_by(&sealed, db.secret_key(), &[clear_values(&shop)]);
    let read = store.get_account(&shop.id).await.unwrap().unwrap();
    assert_eq!(clear_values(&read), clear_values(&shop));
    store.close().await;

    let store = connect(Some(db.url()), &db.data_dir(), db.cipher()).await.unwrap();
    assert_eq!(db.stored_secrets().await, sealed, "a value already sealed is left alone");
    store.close().await;
}

async fn a_store_opened_with_another_key_names_both_keys(backend: Backend) {
    let Some(db) = TestDatabase::new(backend).await else { return };
    let shop = account("shop");
    let store = connect(Some(db.url()), &db.data_dir(), db.cipher()).await.unwrap();
    store.insert_account(&shop, &[]).await.unwrap();
    store.close().await;

    let other = SecretKey::generate();
    let refused = connect(Some(db.url()), &db.data_dir(), Cipher::new(&other)).await.err().expect("refused");
    match &refused {
        StorageError::Unsealable { account, source: OpenError::OtherKey { sealed_by, key }, .. } => {
            assert_eq!(
                (account.as_str(), sealed_by.as_str(), key),
                (shop.id.as_str(), db.secret_key().id().as_str(), &other.id())
            );
        }
        e => panic!("expected another key to be refused, got {e}"),
    }
    let message = refused.to_string();
    assert!(message.contains(shop.id.as_str()) && message.contains(other.id().as_str()), "{message}");
    assert_sealed_by(&db.stored_secrets().await, db.secret_key(), &[clear_values(&shop)]);
}

async fn a_previous_key_is_resealed_under_the_current_one(backend: Backend) {
    let Some(db) = TestDatabase::new(backend).await else { return };
    let (shop, cafe) = (account("shop"), account("cafe"));
    let store = connect(Some(db.url()), &db.data_dir(), db.cipher()).await.unwrap();
    store.insert_account(&shop, &[]).await.unwrap();
    store.insert_account(&cafe, &[]).await.unwrap();
    store.close().await;

    let new = SecretKey::generate();
    let rotating = Cipher::new(&new).opening_previous([db.secret_key()]);
    let store = connect(Some(db.url()), &db.data_dir(), rotating).await.unwrap();
    store.close().await;
    assert_sealed_by(&db.stored_secrets().await, &new, &[clear_values(&shop), clear_values(&cafe)]);

    assert!(connect(Some(db.url()), &db.data_dir(), db.cipher()).await.is_err(), "the old key opens nothing now");
    let store = connect(Some(db.url()), &db.data_dir(), Cipher::new(&new)).await.unwrap();
    let read = store.get_account(&cafe.id).await.unwrap().unwrap();
    assert_eq!(clear_values(&read), clear_values(&cafe));
    store.close().await;
}

async fn a_damaged_secret_is_an_error_naming_the_account(backend: Backend) {
    let Some(db) = TestDatabase::new(backend).await else { return };
    let shop = account("shop");
    let store = connect(Some(db.url()), &db.data_dir(), db.cipher()).await.unwrap();
    store.insert_account(&shop, &[]).await.unwrap();
    let [token, secret, verify] = db.stored_secrets().await.remove(0).1;
    // Another column's sealed value, and a value with one character of its ciphertext changed
    // (not the last: its spare bits may make the base64 invalid instead).
    let at = secret.len() - 8;
    let changed = if secret.as_bytes()[at] == b'A' { "B" } else { "A" };
    let damaged = format!("{}{changed}{}", &secret[..at], &secret[at + 1..]);
    for (values, column) in [([&secret, &secret, &verify], "access_token"), ([&token, &damaged, &verify], "app_secret")]
    {
        db.write_stored_secrets(shop.id.as_str(), values.map(String::as_str)).await;
        let e = store.get_account(&shop.id).await.expect_err("refused, never passed through");
        assert!(
            matches!(&e, StorageError::Unsealable { account, column: c, source: OpenError::Rejected { .. } }
                if account == shop.id.as_str() && *c == column),
            "{e}"
        );
        assert!(store.list_accounts().await.is_err());
    }
    store.close().await;
    let e = connect(Some(db.url()), &db.data_dir(), db.cipher()).await.err().expect("refused at start");
    assert!(e.to_string().contains(shop.id.as_str()), "{e}");
}

macro_rules! suite {
    ($backend:ident, $b:expr) => {
        mod $backend {
            #[tokio::test]
            async fn secrets_are_sealed_in_the_rows_and_clear_to_callers() {
                super::secrets_are_sealed_in_the_rows_and_clear_to_callers($b).await;
            }

            #[tokio::test]
            async fn secrets_in_clear_are_sealed_once_when_opened() {
                super::secrets_in_clear_are_sealed_once_when_opened($b).await;
            }

            #[tokio::test]
            async fn a_store_opened_with_another_key_names_both_keys() {
                super::a_store_opened_with_another_key_names_both_keys($b).await;
            }

            #[tokio::test]
            async fn a_previous_key_is_resealed_under_the_current_one() {
                super::a_previous_key_is_resealed_under_the_current_one($b).await;
            }

            #[tokio::test]
            async fn a_damaged_secret_is_an_error_naming_the_account() {
                super::a_damaged_secret_is_an_error_naming_the_account($b).await;
            }
        }
    };
}

suite!(sqlite, wagate_storage::Backend::Sqlite);
suite!(postgres, wagate_storage::Backend::Postgres);
