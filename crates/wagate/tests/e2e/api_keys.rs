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
    assert_eq!(created["scopes"], json!(["admin"]), "a key made without scopes has every right");

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
    assert_eq!(app.store().outbox().pending().await.unwrap(), 0);
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
    let out = cli(&["keys", "create", "--name", "from the cli", "--scope", "read", "--scope", "send"]).await;
    let key = out.lines().last().unwrap().trim().to_owned();
    assert!(key.starts_with("wgk_"), "{out}");
    let (status, _) = as_key(&app, &key, Method::POST, "/v1/api-keys", Some(json!({"name": "x"}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the CLI's scopes hold on the server");

    let use_key = || async {
        app.http.get(format!("{}/v1/accounts", app.url)).header("x-api-key", &key).send().await.unwrap().status()
    };
    assert_eq!(use_key().await, StatusCode::OK, "a key made by the CLI works against the server");
    let listing = cli(&["keys", "list"]).await;
    let line = listing.lines().find(|l| l.contains("from the cli")).expect("listed");
    assert!(line.contains(&api_key::visible_prefix(&key)), "{listing}");
    assert!(line.contains(" send,read "), "scopes are listed: {listing}");
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

/// A request made with `key`.
async fn as_key(app: &TestApp, key: &str, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    request(&app.http, method, &format!("{}{path}", app.url), Some(key), body).await
}

/// A new key with these scopes, made with the admin key: its id and the key.
async fn key_with(app: &TestApp, scopes: &[&str]) -> (String, String) {
    let (status, created) = app.post("/v1/api-keys", json!({"name": scopes.join("+"), "scopes": scopes})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    (created["id"].as_str().unwrap().to_owned(), created["key"].as_str().unwrap().to_owned())
}

/// The id of the key named `name`, as the admin key lists them.
async fn key_named(app: &TestApp, name: &str) -> Value {
    let (status, list) = app.get("/v1/api-keys").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list["data"].as_array().unwrap().iter().find(|k| k["name"] == name).unwrap_or_else(|| panic!("{list}")).clone()
}

async fn an_apps_key_sends_and_reads_but_cannot_administer(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let (_, key) = key_with(&app, &["read", "send"]).await;
    let (status, listed) = app.get("/v1/api-keys").await;
    assert_eq!(status, StatusCode::OK);
    let scopes: Vec<&Value> = listed["data"].as_array().unwrap().iter().map(|k| &k["scopes"]).collect();
    assert!(scopes.contains(&&json!(["send", "read"])) && scopes.contains(&&json!(["admin"])), "{listed}");
    let bootstrap = key_named(&app, "bootstrap").await;

    // It sends and reads, on both surfaces.
    let phone = app.sandbox_numbers().await[0].clone();
    let customer = customer();
    app.customer_writes(&phone, &customer, "hi").await;
    let text = json!({"from": phone, "to": customer, "type": "text", "text": {"body": "order shipped"}});
    let (status, sent) = as_key(&app, &key, Method::POST, "/v1/messages", Some(text)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    let (status, read) =
        as_key(&app, &key, Method::GET, &format!("/v1/messages/{}", sent["id"].as_str().unwrap()), None).await;
    assert_eq!((status, &read["id"]), (StatusCode::OK, &sent["id"]), "{read}");
    for path in ["/v1/phone-numbers", "/v1/accounts", "/v1/contacts", "/v1/conversations", "/v1/media"] {
        assert_eq!(as_key(&app, &key, Method::GET, path, None).await.0, StatusCode::OK, "{path}");
    }
    let graph = json!({"messaging_product": "whatsapp", "to": customer, "type": "text", "text": {"body": "hi"}});
    let (status, answer) =
        as_key(&app, &key, Method::POST, &format!("/graph/v23.0/{phone}/messages"), Some(graph)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    // It cannot add accounts, point wagate elsewhere, manage keys or drive the sandbox.
    let (_, accounts) = app.get("/v1/accounts").await;
    let account = accounts["data"][0]["id"].as_str().unwrap().to_owned();
    let revoke_admin = format!("/v1/api-keys/{}", bootstrap["id"].as_str().unwrap());
    let inbound =
        json!({"phone_number_id": phone, "from": customer, "message": {"type": "text", "text": {"body": "x"}}});
    let refused = [
        (
            Method::POST,
            "/v1/accounts".to_owned(),
            Some(json!({"name": "evil", "graph_base_url": "http://evil.example"})),
        ),
        (Method::PATCH, format!("/v1/accounts/{account}"), Some(json!({"graph_base_url": "http://evil.example"}))),
        (Method::POST, format!("/v1/accounts/{account}/resume"), None),
        (Method::GET, "/v1/api-keys".to_owned(), None),
        (Method::POST, "/v1/api-keys".to_owned(), Some(json!({"name": "escalated", "scopes": ["admin"]}))),
        (Method::DELETE, revoke_admin, None),
        (Method::PATCH, format!("/v1/phone-numbers/{phone}"), Some(json!({"messages_per_second": 1}))),
        (Method::GET, "/sandbox/control/messages".to_owned(), None),
        (Method::PUT, "/sandbox/control/webhook".to_owned(), Some(json!({"url": "http://evil.example"}))),
        (Method::POST, "/sandbox/control/reset".to_owned(), None),
        (Method::POST, "/sandbox/simulate/inbound".to_owned(), Some(inbound)),
    ];
    for (method, path, body) in refused {
        let (status, error) = as_key(&app, &key, method.clone(), &path, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {error}");
        assert_eq!(error["error"]["code"], "insufficient_scope", "{method} {path}");
        assert_eq!(
            error["error"]["message"],
            format!("this key has scopes [send, read]; {method} {path} needs admin"),
            "{method} {path}"
        );
    }
    // Nothing changed: the admin key is active, still alone with admin, and the sandbox kept
    // what it received.
    assert_eq!(key_named(&app, "bootstrap").await["revoked_at"], Value::Null);
    assert_eq!(app.store().list_api_keys().await.unwrap().len(), 2);
    assert_eq!(app.store().list_accounts().await.unwrap().len(), 1);
    let (_, received) = app.get("/sandbox/control/messages").await;
    assert_eq!(received["data"].as_array().unwrap().len(), 2, "{received}");
    app.stop().await;
}

async fn a_read_key_cannot_send(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let (_, key) = key_with(&app, &["read"]).await;
    let phone = app.sandbox_numbers().await[0].clone();
    let customer = customer();
    let inbound = app.customer_writes(&phone, &customer, "hi").await;
    let before = app.store().count_messages().await.unwrap();

    let text = json!({"from": phone, "to": customer, "type": "text", "text": {"body": "x"}});
    let (status, error) = as_key(&app, &key, Method::POST, "/v1/messages", Some(text)).await;
    assert_eq!((status, &error["error"]["code"]), (StatusCode::FORBIDDEN, &json!("insufficient_scope")), "{error}");
    assert_eq!(error["error"]["message"], "this key has scopes [read]; POST /v1/messages needs send");
    let (_, listed) = as_key(&app, &key, Method::GET, "/v1/messages?direction=inbound", None).await;
    let id = listed["data"][0]["id"].as_str().expect("the read key reads").to_owned();
    let (status, _) = as_key(&app, &key, Method::POST, &format!("/v1/messages/{id}/read"), Some(json!({}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "marking read is sending");

    // The Meta-compatible surface refuses it as Meta refuses a token without the permission.
    let path = format!("/graph/v23.0/{phone}/messages");
    for body in [
        json!({"messaging_product": "whatsapp", "to": customer, "type": "text", "text": {"body": "x"}}),
        json!({"messaging_product": "whatsapp", "status": "read", "message_id": inbound}),
    ] {
        let (status, error) = as_key(&app, &key, Method::POST, &path, Some(body)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{error}");
        assert_eq!(
            (&error["error"]["code"], &error["error"]["type"]),
            (&json!(10), &json!("OAuthException")),
            "{error}"
        );
        assert_eq!(
            error["error"]["error_data"]["details"],
            format!("this key has scopes [read]; POST {path} needs send"),
        );
        assert!(error["error"]["fbtrace_id"].is_string(), "{error}");
    }
    assert_eq!(app.store().count_messages().await.unwrap(), before, "nothing was stored");
    app.stop().await;
}

async fn unknown_scopes_are_refused(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    for (scopes, path, rule) in [
        (json!(["sned"]), "scopes[0]", "invalid_value"),
        (json!(["send", "ADMIN"]), "scopes[1]", "invalid_value"),
        (json!([]), "scopes", "min_items"),
    ] {
        let (status, error) = app.post("/v1/api-keys", json!({"name": "app", "scopes": scopes})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{scopes}: {error}");
        assert_eq!((error["error"]["path"].as_str(), error["error"]["code"].as_str()), (Some(path), Some(rule)));
        if rule == "invalid_value" {
            assert!(
                error["error"]["message"].as_str().unwrap().contains("must be one of admin, send, read"),
                "{error}"
            );
        }
    }
    let (status, error) = app.post("/v1/api-keys", json!({"name": "app", "scopes": "send"})).await;
    assert_eq!((status, error["error"]["path"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("scopes")));
    assert_eq!(app.store().list_api_keys().await.unwrap().len(), 1, "only the bootstrap key");
    app.stop().await;
}

async fn a_revoked_bootstrap_key_stays_revoked_after_a_restart(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let (_, admin) = key_with(&app, &["admin"]).await;
    let bootstrap = key_named(&app, "bootstrap").await;
    assert_eq!(bootstrap["scopes"], json!(["admin"]));
    let id = bootstrap["id"].as_str().unwrap().to_owned();
    let (status, _) = app.request(Method::DELETE, &format!("/v1/api-keys/{id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(app.get("/v1/phone-numbers").await.0, StatusCode::UNAUTHORIZED);

    // The same WAGATE_BOOTSTRAP_API_KEY at the next start does not bring it back.
    let app = app.restart_with(|_| {}).await;
    assert_eq!(app.get("/v1/phone-numbers").await.0, StatusCode::UNAUTHORIZED);
    let (status, list) = as_key(&app, &admin, Method::GET, "/v1/api-keys", None).await;
    assert_eq!(status, StatusCode::OK);
    let bootstraps: Vec<&Value> =
        list["data"].as_array().unwrap().iter().filter(|k| k["name"] == "bootstrap").collect();
    assert_eq!(bootstraps.len(), 1, "{list}");
    assert_eq!(bootstraps[0]["id"], id.as_str());
    assert!(bootstraps[0]["revoked_at"].is_string(), "{list}");
    app.stop().await;
}

async fn a_key_over_its_rate_gets_429_with_retry_after(backend: Backend) {
    let limited = |c: &mut wagate_server::Config| {
        c.api.rate_limit_per_second = 1;
        c.api.rate_limit_burst = 5;
    };
    let Some(app) = TestApp::spawn_with(backend, limited).await else { return };
    let phone = app.sandbox_numbers().await[0].clone();
    let (_, other) = key_with(&app, &["send"]).await;
    // Once the burst is spent, the key is refused (a request a second comes back meanwhile, so
    // the count of those admitted first depends on the machine's speed: only the refusal is sure).
    let until_refused = |url: String, key: String, body: Option<Value>| {
        let http = app.http.clone();
        async move {
            for _ in 0..100 {
                let req = match &body {
                    Some(body) => http.post(&url).json(body),
                    None => http.get(&url),
                };
                let resp = req.bearer_auth(&key).send().await.unwrap();
                if resp.status() == StatusCode::TOO_MANY_REQUESTS {
                    return resp;
                }
                assert!(resp.status().is_success() || resp.status() == StatusCode::BAD_REQUEST, "{}", resp.status());
            }
            panic!("no 429 after 100 requests at a rate of 1 a second, {url}");
        }
    };
    let refused = until_refused(format!("{}/v1/phone-numbers", app.url), app.api_key.clone(), None).await;
    let retry_after: u64 =
        refused.headers()["retry-after"].to_str().unwrap().parse().expect("Retry-After in whole seconds");
    assert!(retry_after >= 1);
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["code"], "rate_limited", "{error}");

    // Each key has its own rate, and the Meta-compatible surface counts against it too.
    let body = json!({"messaging_product": "whatsapp", "to": "+15550170000", "type": "text", "text": {"body": "x"}});
    let refused = until_refused(format!("{}/graph/v23.0/{phone}/messages", app.url), other, Some(body)).await;
    assert!(refused.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["code"], 4, "Meta's code for too many calls: {error}");

    // And it refills.
    eventually("the key to be admitted again", || async {
        (app.get("/v1/phone-numbers").await.0 == StatusCode::OK).then_some(())
    })
    .await;
    app.stop().await;
}

async fn requests_are_not_rate_limited_by_default(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    for i in 0..500 {
        let resp =
            app.http.get(format!("{}/v1/messages?limit=1", app.url)).bearer_auth(&app.api_key).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "request {i}");
    }
    app.stop().await;
}

/// Every route behind a key has its scope decided in `required_scope`, and the server applies
/// it: a key without that scope is refused, one with it is let through.
async fn every_route_has_a_decided_scope(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let (_, doc) = wagate_server::api::router(app.state.clone());
    let mut routes: Vec<(Method, String)> = Vec::new();
    for (path, item) in &doc.paths.paths {
        let operations = [
            (Method::GET, &item.get),
            (Method::POST, &item.post),
            (Method::PUT, &item.put),
            (Method::PATCH, &item.patch),
            (Method::DELETE, &item.delete),
        ];
        for (method, operation) in operations {
            let Some(operation) = operation else { continue };
            if path.starts_with("/v1/") {
                assert!(operation.security.is_some(), "{method} {path} is documented without a key");
            }
            if operation.security.is_some() {
                routes.push((method, path.clone()));
            }
        }
    }
    assert!(routes.len() >= 25, "the document lists the native API: {routes:?}");
    // The document says what each needs, and that a key may have scopes.
    let json = serde_json::to_value(&doc).unwrap();
    for (method, route) in &routes {
        let operation = &json["paths"][route][method.as_str().to_lowercase()];
        assert!(operation["responses"]["403"].is_object(), "{method} {route}");
        assert!(operation["description"].as_str().unwrap().contains("Needs a key with scope"), "{method} {route}");
    }
    let schemas = &json["components"]["schemas"];
    assert_eq!(schemas["Scope"]["enum"], json!(["admin", "send", "read"]));
    assert!(
        schemas["CreateKey"]["properties"]["scopes"].is_object()
            && schemas["ApiKeyView"]["properties"]["scopes"].is_object()
    );
    // Outside the document: the Meta-compatible surface and the sandbox's test-tool paths.
    for (method, route) in [
        (Method::POST, "/graph/{version}/{node}/messages"),
        (Method::GET, "/graph/{version}/{node}"),
        (Method::POST, "/graph/{version}/{node}"),
        (Method::DELETE, "/graph/{version}/{node}"),
        (Method::POST, "/graph/{version}/{node}/media"),
        (Method::GET, "/graph/{version}/{node}/phone_numbers"),
        (Method::GET, "/graph/{version}/{node}/message_templates"),
        (Method::POST, "/graph/{version}/{node}/message_templates"),
        (Method::DELETE, "/graph/{version}/{node}/message_templates"),
        (Method::GET, "/graph/{version}/{node}/whatsapp_business_encryption"),
        (Method::POST, "/graph/{version}/{node}/whatsapp_business_encryption"),
        (Method::GET, "/graph/{version}/{node}/groups"),
        (Method::POST, "/graph/{version}/{node}/groups"),
        (Method::GET, "/graph/{version}/{node}/invite_link"),
        (Method::POST, "/graph/{version}/{node}/invite_link"),
        (Method::DELETE, "/graph/{version}/{node}/participants"),
        (Method::GET, "/graph/{version}/{node}/join_requests"),
        (Method::POST, "/graph/{version}/{node}/join_requests"),
        (Method::DELETE, "/graph/{version}/{node}/join_requests"),
        (Method::GET, "/chakra/v1/ext/plugin/whatsapp/{plugin_id}/config"),
        (Method::POST, "/chakra/v1/ext/plugin/whatsapp/{plugin_id}/update-config"),
    ] {
        routes.push((method, route.into()));
    }
    routes.push((Method::GET, "/sandbox/control/accounts".into()));
    routes.push((Method::PATCH, "/sandbox/control/settings".into()));
    routes.push((Method::POST, "/sandbox/simulate/inbound".into()));
    // Chirp's dialect.
    routes.push((Method::POST, "/chirp/v1/whatsapp/messages".into()));
    routes.push((Method::GET, "/chirp/v1/whatsapp/messages/{id}".into()));
    routes.push((Method::POST, "/chirp/v1/media".into()));

    // Whatomate's dialect.
    for (method, route) in [
        (Method::GET, "/whatomate/api/contacts"),
        (Method::GET, "/whatomate/api/contacts/{id}/messages"),
        (Method::POST, "/whatomate/api/contacts/{id}/messages"),
        (Method::POST, "/whatomate/api/messages/template"),
        (Method::POST, "/whatomate/api/messages/media"),
        (Method::PUT, "/whatomate/api/messages/{id}/read"),
    ] {
        routes.push((method, route.into()));
    }

    let keys = [(key_with(&app, &["read"]).await.1, "[read]"), (key_with(&app, &["send"]).await.1, "[send]")];
    for (method, route) in routes {
        let needs = wagate_server::auth::required_scope(&method, &route)
            .unwrap_or_else(|| panic!("{method} {route} has no scope decided in auth::required_scope"));
        // Ids that match nothing: what is let through does nothing, and says so.
        let mut path = route.replace("{version}", "v23.0").replace(['{', '}'], "");
        if route == "/v1/events/stream" {
            // A stream let through would never end: one that names no kept event answers 422.
            path.push_str("?after=evt_none");
        }
        for (key, has) in &keys {
            let (status, body) = as_key(&app, key, method.clone(), &path, None).await;
            let allowed = matches!((*has, needs.as_str()), ("[read]", "read") | ("[send]", "send"));
            if allowed {
                assert!(
                    status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED,
                    "{has} {method} {path}: {status} {body}"
                );
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{has} {method} {path}: {body}");
            }
        }
    }
    assert_eq!(app.store().count_messages().await.unwrap(), 0, "nothing was sent");
    app.stop().await;
}

on_each_backend!(
    keys_are_created_listed_used_and_revoked,
    requests_without_a_valid_key_get_401,
    the_cli_manages_keys_in_the_same_database,
    an_apps_key_sends_and_reads_but_cannot_administer,
    a_read_key_cannot_send,
    unknown_scopes_are_refused,
    a_revoked_bootstrap_key_stays_revoked_after_a_restart,
    a_key_over_its_rate_gets_429_with_retry_after,
    requests_are_not_rate_limited_by_default,
    every_route_has_a_decided_scope,
);
