//! API keys through HTTP and the CLI: shown once, stored hashed, listed by prefix, revocable.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wagate_domain::api_key;
use wagate_storage::Backend;

use crate::support::*;

async fn keys_are_created_listed_used_and_revoked(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let (status, created) = app.post("/v1/api-keys", json!({"name": "ci pipeline"})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("wgk_") && key.len() > 40, "{key}");
    assert!(key.starts_with(created["prefix"].as_str().unwrap()));

    // Both header forms work.
    let with_header = |name: &'static str, value: String| {
        app.http.get(format!("{}/v1/phone-numbers", app.url)).header(name, value).send()
    };
    assert_eq!(with_header("x-api-key", key.clone()).await.unwrap().status(), StatusCode::OK);
    assert_eq!(with_header("authorization", format!("Bearer {key}")).await.unwrap().status(), StatusCode::OK);

    // Listed by prefix, with last use; the key itself appears nowhere, in the API or the database.
    let (status, list) = app.get("/v1/api-keys").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!list.to_string().contains(&key));
    let mine = list["data"].as_array().unwrap().iter().find(|k| k["id"] == id.as_str()).unwrap().clone();
    assert_eq!(mine["name"], "ci pipeline");
    assert!(mine["last_used_at"].is_string(), "{mine}");
    assert!(mine["revoked_at"].is_null());
    assert!(mine.get("key").is_none() && mine.get("key_hash").is_none());
    let stored = app.store().find_api_key_by_hash(&api_key::hash(&key)).await.unwrap().expect("stored by hash");
    assert_ne!(stored.key_hash, key);
    assert!(app.store().list_api_keys().await.unwrap().iter().all(|k| !format!("{k:?}").contains(&key)));

    // Pages.
    let (_, first) = app.get("/v1/api-keys?limit=1").await;
    assert_eq!(first["data"].as_array().unwrap().len(), 1);
    let cursor = first["next_cursor"].as_str().expect("a second page").to_owned();
    let (_, second) = app.get(&format!("/v1/api-keys?limit=1&cursor={cursor}")).await;
    assert_ne!(first["data"][0]["id"], second["data"][0]["id"]);
    let (status, bad) = app.get("/v1/api-keys?limit=101").await;
    assert_eq!((status, bad["error"]["path"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("limit")));

    // Revoked: refused at once.
    let (status, _) = app.request(Method::DELETE, &format!("/v1/api-keys/{id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let resp = with_header("x-api-key", key.clone()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["code"], "unauthorized");
    let (status, _) = app.request(Method::DELETE, &format!("/v1/api-keys/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, bad) = app.post("/v1/api-keys", json!({"name": " "})).await;
    assert_eq!((status, bad["error"]["path"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("name")));
    app.stop().await;
}

async fn requests_without_a_valid_key_get_401(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let url = format!("{}/v1/messages", app.url);
    for (what, header) in [
        ("no key", None),
        ("unknown key", Some(("authorization", "Bearer wgk_not-a-real-key"))),
        ("basic auth", Some(("authorization", "Basic dXNlcjpwYXNz"))),
        ("empty x-api-key", Some(("x-api-key", ""))),
    ] {
        let mut req = app.http.post(&url).json(&json!({"to": "+15550171234", "type": "text", "text": {"body": "x"}}));
        if let Some((name, value)) = header {
            req = req.header(name, value);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{what}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized", "{what}");
    }
    // The sandbox's control paths are behind the same keys in `serve`.
    let (status, _) =
        request(&app.http, Method::GET, &format!("{}/sandbox/control/messages", app.url), None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Operations stay open.
    assert_eq!(request(&app.http, Method::GET, &format!("{}/healthz", app.url), None, None).await.0, StatusCode::OK);
    assert_eq!(app.store().outbox_depth().await.unwrap(), 0);
    app.stop().await;
}

async fn the_cli_manages_keys_in_the_same_database(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let data_dir = app.db.data_dir();
    let common = ["--data-dir", data_dir.to_str().unwrap(), "--database-url", app.db.url()];
    let cli = |args: &[&str]| {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend(common.iter().map(|s| s.to_string()));
        async move { run_binary(&all.iter().map(String::as_str).collect::<Vec<_>>()).await }
    };
    let out = cli(&["keys", "create", "--name", "from the cli"]).await;
    let key = out.lines().last().unwrap().trim().to_owned();
    assert!(key.starts_with("wgk_"), "{out}");

    let use_key = || async {
        app.http.get(format!("{}/v1/accounts", app.url)).header("x-api-key", &key).send().await.unwrap().status()
    };
    assert_eq!(use_key().await, StatusCode::OK, "a key made by the CLI works against the server");
    let listing = cli(&["keys", "list"]).await;
    let line = listing.lines().find(|l| l.contains("from the cli")).expect("listed");
    assert!(line.contains(&api_key::visible_prefix(&key)), "{listing}");
    assert!(!listing.contains(&key), "the key itself is never listed");
    let id = line.split_whitespace().next().unwrap();
    cli(&["keys", "revoke", id]).await;
    // The server learns of a revocation it did not make when its cached copy of the key expires.
    eventually("the key revoked by the CLI is refused", || async {
        (use_key().await == StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;
    app.stop().await;
}

on_each_backend!(
    keys_are_created_listed_used_and_revoked,
    requests_without_a_valid_key_get_401,
    the_cli_manages_keys_in_the_same_database,
);
