//! The people of the team inbox: users with roles and teams through `/v1/users` and
//! `/v1/teams` (an admin key's), every bad field named, the last admin kept, the password never
//! shown; and the first admin made with `wagate users create --admin`.

use reqwest::{Method, StatusCode};
use serde_json::json;
use wagate_storage::Backend;
use wagate_storage::testing::TestDatabase;

use crate::support::*;

async fn users_and_teams_are_managed_by_an_admin(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let (status, support) = app.post("/v1/teams", json!({"name": "Support"})).await;
    assert_eq!(status, StatusCode::CREATED, "{support}");
    let (status, sales) = app.post("/v1/teams", json!({"name": "Ärzte 🌮"})).await;
    assert_eq!(status, StatusCode::CREATED, "{sales}");
    let (status, e) = app.post("/v1/teams", json!({"name": "support"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "a name is unique regardless of case: {e}");
    let (status, e) = app.post("/v1/teams", json!({"name": "ärzte 🌮"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "beyond ASCII too, on both backends: {e}");
    let (support, sales) = (support["id"].as_str().unwrap().to_owned(), sales["id"].as_str().unwrap().to_owned());

    let (status, admin) = app
        .post(
            "/v1/users",
            json!({"email": " Boss@Example.com", "name": "Bo", "password": "correct horse battery", "role": "admin"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{admin}");
    assert_eq!((admin["email"].as_str(), admin["role"].as_str()), (Some("boss@example.com"), Some("admin")));
    assert!(admin.get("password").is_none() && admin.get("password_hash").is_none(), "{admin}");
    let (status, ana) = app
        .post("/v1/users", json!({"email": "ana@example.com", "name": "Ana", "password": "another long one", "team_ids": [support, sales]}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ana}");
    assert_eq!(ana["role"], "agent");
    let ana_id = ana["id"].as_str().unwrap().to_owned();

    // Each bad field named, with its rule.
    let bad = [
        (json!({"email": "ana", "name": "x", "password": "long enough pw"}), "email", StatusCode::UNPROCESSABLE_ENTITY),
        (
            json!({"email": "x@example.com", "name": "", "password": "long enough pw"}),
            "name",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"email": "x@example.com", "name": "X", "password": "short"}),
            "password",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"email": "x@example.com", "name": "X", "password": "long enough pw", "role": "root"}),
            "role",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"email": "x@example.com", "name": "X", "password": "long enough pw", "team_ids": ["team_nope"]}),
            "team_ids[0]",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!({"email": "ANA@example.com", "name": "Ana 2", "password": "long enough pw"}), "", StatusCode::CONFLICT),
    ];
    for (body, path, expected) in bad {
        let (status, e) = app.post("/v1/users", body).await;
        assert_eq!(status, expected, "{e}");
        if !path.is_empty() {
            assert_eq!(e["error"]["path"], path, "{e}");
        }
    }

    let (status, members) = app.get(&format!("/v1/users?team_id={sales}")).await;
    assert_eq!(status, StatusCode::OK, "{members}");
    assert_eq!(members["data"].as_array().unwrap().len(), 1);
    assert_eq!(members["data"][0]["email"], "ana@example.com");

    // Ana moves to one team; removing a team leaves its members.
    let (status, moved) = app
        .request(Method::PATCH, &format!("/v1/users/{ana_id}"), Some(json!({"team_ids": [sales], "name": "Ana María"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!((moved["team_ids"].clone(), moved["name"].as_str()), (json!([sales]), Some("Ana María")));
    let (status, _) = app.request(Method::DELETE, &format!("/v1/teams/{sales}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, ana) = app.get(&format!("/v1/users/{ana_id}")).await;
    assert_eq!(ana["team_ids"], json!([]), "{ana}");
    let (status, renamed) =
        app.request(Method::PATCH, &format!("/v1/teams/{support}"), Some(json!({"name": "Care"}))).await;
    assert_eq!((status, renamed["name"].as_str()), (StatusCode::OK, Some("Care")));

    // The last admin stays one, and stays.
    let admin_id = admin["id"].as_str().unwrap();
    let (status, e) =
        app.request(Method::PATCH, &format!("/v1/users/{admin_id}"), Some(json!({"role": "agent"}))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    let (status, e) = app.request(Method::DELETE, &format!("/v1/users/{admin_id}"), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    let (status, _) = app.request(Method::PATCH, &format!("/v1/users/{ana_id}"), Some(json!({"role": "admin"}))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.request(Method::DELETE, &format!("/v1/users/{admin_id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "with another admin, one may go");
    let (status, _) = app.get(&format!("/v1/users/{admin_id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Only an admin's key manages people.
    let (status, key) = app.post("/v1/api-keys", json!({"name": "agent tool", "scopes": ["send", "read"]})).await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let (status, _) =
        request(&app.http, Method::GET, &format!("{}/v1/users", app.url), key["key"].as_str(), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    app.stop().await;
}

async fn the_first_admin_is_made_on_the_command_line(backend: Backend) {
    let Some(db) = TestDatabase::new(backend).await else { return };
    let data_dir = db.data_dir();
    let args = [
        "users",
        "create",
        "--admin",
        "--email",
        "First@Example.com",
        "--name",
        "First",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--database-url",
        db.url(),
    ];
    let out = run_binary_with(&args, &[("WAGATE_USER_PASSWORD", "a long enough password")]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("created admin usr_") && stdout.contains("first@example.com"), "{stdout}");
    let store = open_store(&db).await;
    let user = store.find_user_by_email("first@example.com").await.unwrap().expect("stored");
    assert!(user.password_hash.starts_with("$argon2id$"), "kept as an Argon2id hash");
    assert!(!user.password_hash.contains("a long enough password"));
    // A second with the same email is refused, saying why.
    let out = run_binary_with(&args, &[("WAGATE_USER_PASSWORD", "a long enough password")]).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("first@example.com"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let short = run_binary_with(&args, &[("WAGATE_USER_PASSWORD", "short")]).await;
    assert!(!short.status.success());
}

on_each_backend!(users_and_teams_are_managed_by_an_admin, the_first_admin_is_made_on_the_command_line);
