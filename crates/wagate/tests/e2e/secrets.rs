//! Secrets at rest: the accounts' rows hold sealed values while the API, sends and webhooks work;
//! an instance with another key does not start, and says why; `wagate secrets rotate` re-seals
//! under a new key the server then starts and sends with; secrets an older version left in clear
//! are sealed at start; the data directory, the database and the key file are private.

use reqwest::{Method, StatusCode};
use serde_json::json;
use wagate_domain::sealed::{SecretKey, sealed_by};
use wagate_server::Application;
use wagate_server::secret_key::{self, ENV_VAR};
use wagate_storage::Backend;
use wagate_storage::testing::TestDatabase;

use crate::support::*;

/// A customer writes to `from` through the sandbox at `sandbox_url` (a webhook signed with the
/// app secret) and is answered; the answer is read (a send with the access token, then status
/// webhooks). Each step needs one of the account's secrets in clear.
async fn a_conversation_works(app: &TestApp, sandbox_url: &str, sandbox_key: Option<&str>, from: &str) {
    let customer = customer();
    let wamid = simulate_inbound(&app.http, sandbox_url, sandbox_key, from, &customer, "are you there?").await;
    eventually("the customer's message to be stored", || async {
        app.store().find_message_by_wamid(&wamid).await.unwrap().map(|_| ())
    })
    .await;
    let (status, sent) =
        app.post("/v1/messages", json!({"from": from, "to": customer, "type": "text", "text": {"body": "Yes!"}})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    let id = sent["id"].as_str().unwrap();
    wait_for_message(&app.http, &app.url, &app.api_key, id, "the answer to be read", |m| m["status"] == "read").await;
}

async fn in_process_conversation_works(app: &TestApp) {
    let from = app.sandbox_numbers().await.remove(0);
    a_conversation_works(app, &format!("{}/sandbox", app.url), Some(&app.api_key), &from).await;
}

/// Every stored secret is sealed by `key` and none holds any of `clear`.
async fn assert_sealed_by(db: &TestDatabase, key: &SecretKey, clear: &[impl AsRef<str>]) {
    let rows = db.stored_secrets().await;
    assert!(!rows.is_empty());
    for (account, values) in rows {
        for value in values {
            assert_eq!(sealed_by(&value), Some(key.id().as_str()), "account {account}: {value}");
            for c in clear.iter().map(AsRef::as_ref) {
                assert!(!value.contains(c), "account {account} stores {c} in clear");
            }
        }
    }
}

fn key_file_key(db: &TestDatabase) -> SecretKey {
    secret_key::read_key_file(&db.data_dir().join(secret_key::FILE_NAME)).unwrap().expect("the key file exists")
}

async fn secrets_are_sealed_in_the_database_while_everything_works(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let sandbox = sandbox_account(&app).await;
    let (standalone_url, seed) = spawn_sandbox(&format!("{}/webhooks/meta", app.url)).await;
    let (_, standalone_numbers) = app.connect_sandbox(&standalone_url).await;
    let clear: [&str; 6] = [
        &sandbox.access_token,
        &sandbox.app_secret,
        &sandbox.verify_token,
        &seed.access_token,
        &seed.app_secret,
        &seed.verify_token,
    ];
    assert_sealed_by(&app.db, &key_file_key(&app.db), &clear).await;
    assert_eq!(app.db.stored_secrets().await.len(), 2);

    let (status, accounts) = app.get("/v1/accounts").await;
    assert_eq!(status, StatusCode::OK, "{accounts}");
    let text = accounts.to_string();
    assert!(clear.iter().all(|c| !text.contains(c)) && !text.contains("enc:v1"), "{text}");
    in_process_conversation_works(&app).await;
    a_conversation_works(&app, &standalone_url, None, &standalone_numbers[0]).await;
    let handshake = format!(
        "{}/webhooks/meta?hub.mode=subscribe&hub.verify_token={}&hub.challenge=4711",
        app.url, sandbox.verify_token
    );
    let (status, challenge) = request(&app.http, Method::GET, &handshake, None, None).await;
    assert_eq!((status, challenge), (StatusCode::OK, json!(4711)));
    app.stop().await;
}

async fn another_key_does_not_start_and_rotation_moves_to_a_new_one(backend: Backend) {
    let old = SecretKey::generate();
    let Some(app) = TestApp::spawn_with(backend, |c| c.secret_key = Some(old.to_base64())).await else { return };
    let sandbox = sandbox_account(&app).await;
    in_process_conversation_works(&app).await;
    // Endpoints' secrets, headers and app secrets are sealed too, and move with the rest.
    let endpoint = json!({"url": "https://example.com/meta", "format": "meta", "app_secret": "endpoint-app-secret-42",
        "headers": {"authorization": "Bearer endpoint-token"}});
    let (status, endpoint) = app.post("/v1/webhook-endpoints", endpoint).await;
    assert_eq!(status, StatusCode::CREATED, "{endpoint}");
    let endpoint_path = format!("/v1/webhook-endpoints/{}", endpoint["id"].as_str().unwrap());
    let (db, api_key) = app.stop_keeping_database().await;
    assert!(!db.data_dir().join(secret_key::FILE_NAME).exists(), "no key file while {ENV_VAR} is set");
    let data_dir = db.data_dir();
    let common = ["--data-dir", data_dir.to_str().unwrap(), "--database-url", db.url()];
    let serve: Vec<&str> = ["serve", "--listen", "127.0.0.1:0"].into_iter().chain(common).collect();

    // Another key: the real binary refuses to start, naming both keys and the variable.
    let new = SecretKey::generate();
    let out = run_binary_with(&serve, &[(ENV_VAR, new.to_base64().expose())]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with another key");
    for needed in [old.id().as_str(), new.id().as_str(), ENV_VAR, "same"] {
        assert!(stderr.contains(needed), "{needed:?} missing from: {stderr}");
    }
    let out = run_binary_with(&serve, &[(ENV_VAR, "c2hvcnQ=")]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains(ENV_VAR) && stderr.contains("32"), "{stderr}");
    assert_sealed_by(&db, &old, &[&sandbox.access_token, &sandbox.app_secret, &sandbox.verify_token]).await;

    // Rotation needs the new key given, never on the command line.
    let rotate: Vec<&str> = ["secrets", "rotate"].into_iter().chain(common).collect();
    let out = run_binary_with(&rotate, &[(ENV_VAR, old.to_base64().expose())]).await;
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--new-key-env"));
    let with_env: Vec<&str> = rotate.iter().copied().chain(["--new-key-env", "NEXT_WAGATE_KEY"]).collect();
    let out = run_binary_with(
        &with_env,
        &[(ENV_VAR, old.to_base64().expose()), ("NEXT_WAGATE_KEY", new.to_base64().expose())],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "rotate failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(new.id().as_str()) && stdout.contains(ENV_VAR), "{stdout}");
    assert!(!stdout.contains(new.to_base64().expose()), "the key itself is never printed");
    assert_sealed_by(&db, &new, &[&sandbox.access_token, &sandbox.app_secret, &sandbox.verify_token]).await;

    let config = |key: &SecretKey| {
        let mut c = test_config(&db, &api_key);
        c.secret_key = Some(key.to_base64());
        c
    };
    let refused = Application::build(config(&old)).await.err().expect("the old key opens nothing now");
    assert!(format!("{refused:#}").contains(new.id().as_str()), "{refused:#}");
    let app = BuiltApp { app: Application::build(config(&new)).await.expect("starts with the new key"), db, api_key }
        .started();
    let again = sandbox_account(&app).await;
    assert_eq!((again.access_token, again.app_secret), (sandbox.access_token, sandbox.app_secret));
    let (status, endpoint) = app.get(&endpoint_path).await;
    assert_eq!((status, endpoint["app_secret_set"].as_bool()), (StatusCode::OK, Some(true)), "{endpoint}");
    in_process_conversation_works(&app).await;
    app.stop().await;
}

async fn rotation_replaces_the_key_file_and_keeps_the_old_key(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let sandbox = sandbox_account(&app).await;
    let (db, api_key) = app.stop_keeping_database().await;
    let data_dir = db.data_dir();
    let old = key_file_key(&db);

    let out =
        run_binary(&["secrets", "rotate", "--data-dir", data_dir.to_str().unwrap(), "--database-url", db.url()]).await;
    let new = key_file_key(&db);
    assert_ne!(new, old);
    assert!(out.contains(old.id().as_str()) && out.contains(new.id().as_str()), "{out}");
    let kept = secret_key::read_key_file(&data_dir.join("secret.key.old")).unwrap();
    assert_eq!(kept, Some(old));
    assert!(!data_dir.join("secret.key.new").exists());
    #[cfg(unix)]
    for file in ["secret.key", "secret.key.old"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data_dir.join(file)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    assert_sealed_by(&db, &new, &[&sandbox.access_token, &sandbox.app_secret, &sandbox.verify_token]).await;

    let app =
        BuiltApp { app: Application::build(test_config(&db, &api_key)).await.expect("starts"), db, api_key }.started();
    assert_eq!(sandbox_account(&app).await.app_secret, sandbox.app_secret);
    in_process_conversation_works(&app).await;
    app.stop().await;
}

async fn secrets_left_in_clear_are_sealed_at_start(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let sandbox = sandbox_account(&app).await;
    let account = app.store().list_accounts().await.unwrap().remove(0);
    let app = {
        let (db, api_key) = app.stop_keeping_database().await;
        // As a version that stored secrets in clear left them.
        let clear: [&str; 3] = [&sandbox.access_token, &sandbox.app_secret, &sandbox.verify_token];
        db.write_stored_secrets(account.id.as_str(), clear).await;
        assert_eq!(db.stored_secrets().await[0].1, clear.map(String::from));
        BuiltApp { app: Application::build(test_config(&db, &api_key)).await.expect("starts"), db, api_key }.started()
    };
    assert_sealed_by(&app.db, &key_file_key(&app.db), &[&sandbox.access_token, &sandbox.app_secret]).await;
    let read = app.store().get_account(&account.id).await.unwrap().unwrap();
    assert_eq!(read.verify_token.expose(), sandbox.verify_token);
    in_process_conversation_works(&app).await;
    app.stop().await;
}

/// The data directory, the key file and (SQLite in the data directory) the database and its
/// WAL files are this user's only, also after an older version left them readable to others.
async fn the_data_files_are_private(backend: Backend) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let in_data_dir = |c: &mut wagate_server::Config| {
            if backend == Backend::Sqlite {
                c.database_url = None;
            }
        };
        let Some(app) = TestApp::spawn_with(backend, in_data_dir).await else { return };
        in_process_conversation_works(&app).await;
        let dir = app.db.data_dir();
        let mode = |name: &str| std::fs::metadata(dir.join(name)).unwrap().permissions().mode() & 0o777;
        let set = |name: &str, mode: u32| std::fs::set_permissions(dir.join(name), PermissionsExt::from_mode(mode));
        let database = ["wagate.db", "wagate.db-wal", "wagate.db-shm"];
        let check = |what: &str| {
            assert_eq!(mode(""), 0o700, "{what}: the data directory");
            assert_eq!(mode(secret_key::FILE_NAME), 0o600, "{what}: the key file");
            if backend == Backend::Sqlite {
                for file in database {
                    assert_eq!(mode(file), 0o600, "{what}: {file}");
                }
            }
        };
        check("made by wagate");
        let app = app.restart_with(in_data_dir).await;
        assert_eq!(mode("sandbox"), 0o700);
        assert_eq!(mode("sandbox/state.json"), 0o600, "the sandbox state saved at shutdown");
        set("", 0o755).unwrap();
        if backend == Backend::Sqlite {
            set("wagate.db", 0o644).unwrap();
        }
        let app = app.restart_with(in_data_dir).await;
        check("narrowed at start");
        app.stop().await;
    }
}

on_each_backend!(
    secrets_are_sealed_in_the_database_while_everything_works,
    another_key_does_not_start_and_rotation_moves_to_a_new_one,
    rotation_replaces_the_key_file_and_keeps_the_old_key,
    secrets_left_in_clear_are_sealed_at_start,
    the_data_files_are_private,
);
