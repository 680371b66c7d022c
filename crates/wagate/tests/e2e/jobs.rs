//! Background jobs: CSV imports of contacts and of a campaign's recipients worked through a batch
//! at a time, each row's outcome kept with its line; exports written to a file; a job canceled;
//! and an import taken up again after `kill -9` from where it was, no row twice.

use std::fmt::Write as _;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wagate_server::state::Worker;
use wagate_storage::testing::TestDatabase;
use wagate_storage::{Backend, ContactFilter};

use crate::support::*;

async fn entries(app: &TestApp, id: &str, outcome: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = app.get(&format!("/v1/jobs/{id}/entries?outcome={outcome}&limit=100{cursor}")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        all.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return all,
        }
    }
}

async fn a_csv_of_recipients_is_added_by_a_job_each_bad_line_reported(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let phone = app.sandbox_numbers().await[0].clone();
    let (status, c) = app
        .post(
            "/v1/campaigns",
            json!({"name": "from a file", "phone_number_id": phone,
            "template": {"name": "hello_world", "language": "en_US"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    let id = c["id"].as_str().unwrap();

    // 2,500 rows over three batches; line 5 a bad number, line 9 a number given twice, line 12
    // a NUL, line 2,000 an unclosed quote's neighbour that is fine, line 2,400 odd Unicode.
    let mut csv = String::from("to,name,metadata.ref\n");
    for i in 0..2_500u32 {
        let line = i + 2;
        let row = match line {
            5 => "+12,Short,r5".to_owned(),
            9 => "+15554000002,Twice,r9".to_owned(),
            12 => "+15554000010,Nul\u{0},r12".to_owned(),
            2_400 => format!("+1555{:07},\"\u{202e}Zoë, 🌸\",r{line}", 4_000_000 + i),
            _ => format!("+1555{:07},N{i},r{line}", 4_000_000 + i),
        };
        writeln!(csv, "{row}").unwrap();
    }
    let (status, job) = app.post_csv(&format!("/v1/campaigns/{id}/recipients"), csv).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!((job["kind"].as_str(), job["subject"].as_str()), (Some("campaign.recipients.import"), Some(id)));
    assert_eq!(job["progress"]["total"], 2_500, "counted as it was stored: {job}");
    let job = app.job_ended(job["id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "completed", "{job}");
    let p = &job["progress"];
    assert_eq!(
        (
            p["total"].as_i64(),
            p["processed"].as_i64(),
            p["succeeded"].as_i64(),
            p["failed"].as_i64(),
            p["invalid"].as_i64()
        ),
        (Some(2_500), Some(2_500), Some(2_497), Some(1), Some(2)),
        "{p}"
    );
    let invalid = entries(&app, job["id"].as_str().unwrap(), "invalid").await;
    let lines: Vec<(i64, &str)> =
        invalid.iter().map(|e| (e["line"].as_i64().unwrap(), e["code"].as_str().unwrap())).collect();
    assert_eq!(lines, [(5, "e164"), (12, "nul_character")], "{invalid:?}");
    let failed = entries(&app, job["id"].as_str().unwrap(), "failed").await;
    assert_eq!((failed[0]["line"].as_i64(), failed[0]["code"].as_str()), (Some(9), Some("duplicate")), "{failed:?}");
    assert_eq!(entries(&app, job["id"].as_str().unwrap(), "succeeded").await.len(), 2_497);

    let (_, c) = app.get(&format!("/v1/campaigns/{id}")).await;
    assert_eq!(c["counts"]["pending"], 2_497, "{}", c["counts"]);
    let (_, page) = app.get(&format!("/v1/campaigns/{id}/recipients?limit=100&cursor=2390")).await;
    let odd = page["data"].as_array().unwrap().iter().find(|r| r["metadata"]["ref"] == "r2400").unwrap().clone();
    assert_eq!(odd["params"]["name"], "\u{202e}Zoë, 🌸", "{odd}");

    // The export: a job writing every recipient to a file.
    let (status, export) = app.post(&format!("/v1/campaigns/{id}/recipients/export"), json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{export}");
    let export = app.job_ended(export["id"].as_str().unwrap()).await;
    assert_eq!(
        (export["state"].as_str(), export["progress"]["succeeded"].as_i64()),
        (Some("completed"), Some(2_497)),
        "{export}"
    );
    let url = export["result_url"].as_str().unwrap();
    let file = app.http.get(format!("{}{url}", app.url)).bearer_auth(&app.api_key).send().await.unwrap();
    assert_eq!(file.status(), StatusCode::OK);
    let text = file.text().await.unwrap();
    assert_eq!(text.lines().count(), 1 + 2_497);
    assert!(text.lines().skip(1).all(|l| l.contains(",pending,")));

    // What is refused before any job exists: no `to` column, an empty file, not CSV.
    let (status, e) = app.post_csv(&format!("/v1/campaigns/{id}/recipients"), "name\nAna\n".into()).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("missing_column")),
        "{e}"
    );
    let (status, e) = app.post_csv(&format!("/v1/campaigns/{id}/recipients"), String::new()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    let (status, e) = app.request(Method::POST, "/v1/contacts/import", Some(json!({"phone": "+15550100"}))).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{e}");
    let (status, _) = app.get("/v1/jobs/job_nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, listed) = app.get("/v1/jobs?kind=campaign.recipients.import").await;
    assert_eq!((status, listed["data"].as_array().map(Vec::len)), (StatusCode::OK, Some(1)), "{listed}");
    app.stop().await;
}

async fn contacts_are_imported_with_their_attributes_tags_and_preferences(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let phone = app.sandbox_numbers().await[0].clone();
    // A customer who wrote already is updated, not made twice.
    let known = customer();
    app.customer_writes(&phone, &known, "hello").await;
    let contact = app.contact_of(&known).await;
    let (status, body) = app
        .request(
            Method::PATCH,
            &format!("/v1/contacts/{contact}"),
            Some(json!({"attributes": {"city": "Lisbon"}, "tags": ["old"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (a, b) = (customer(), customer());
    let csv = format!(
        "phone,first_name,tags,marketing_opt_out,attributes.plan\n\
         {known},Ana,vip;lead,no,gold\n\
         {a},Bo,lead,yes,\n\
         not-a-number,Cy,,,\n\
         {b},Dee,,maybe,silver\n"
    );
    let (status, job) = app.post_csv("/v1/contacts/import", csv).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let job = app.job_ended(job["id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "completed", "{job}");
    assert_eq!(
        (job["progress"]["succeeded"].as_i64(), job["progress"]["invalid"].as_i64()),
        (Some(2), Some(2)),
        "{job}"
    );
    let invalid = entries(&app, job["id"].as_str().unwrap(), "invalid").await;
    assert_eq!(invalid.iter().map(|e| e["line"].as_i64().unwrap()).collect::<Vec<_>>(), [4, 5], "{invalid:?}");
    assert_eq!(invalid[1]["code"], "boolean");

    let (_, updated) = app.get(&format!("/v1/contacts/{contact}")).await;
    assert_eq!(updated["attributes"], json!({"city": "Lisbon", "first_name": "Ana", "plan": "gold"}), "{updated}");
    let tags: Vec<&str> = updated["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    assert!(tags.contains(&"old") && tags.contains(&"vip") && tags.contains(&"lead"), "{tags:?}");
    let leads = app
        .store()
        .list_contacts(&ContactFilter { tag: Some("lead".into()), ..ContactFilter::default() }, 10)
        .await
        .unwrap();
    assert_eq!(leads.len(), 2);
    let bo = leads.iter().find(|c| c.wa_id.as_deref() == Some(a.trim_start_matches('+'))).unwrap();
    assert!(bo.marketing_opted_out(), "yes stops marketing");
    assert!(bo.attributes.get("plan").is_none(), "an empty cell sets nothing");
    let (_, events) = app.get("/v1/events?type=contact.created").await;
    assert!(
        events["data"].as_array().unwrap().iter().any(|e| e["data"]["wa_id"] == a.trim_start_matches('+')),
        "{events}"
    );
    app.stop().await;
}

async fn a_job_can_be_canceled(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let mut csv = String::from("phone,n\n");
    for i in 0..60_000u32 {
        writeln!(csv, "+1555{:07},{i}", 5_000_000 + i).unwrap();
    }
    let (status, job) = app.post_csv("/v1/contacts/import", csv).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let id = job["id"].as_str().unwrap();
    eventually("the job to be under way", || async {
        let (_, j) = app.get(&format!("/v1/jobs/{id}")).await;
        (j["progress"]["processed"].as_i64().unwrap() > 0).then_some(())
    })
    .await;
    let (status, canceled) = app.post(&format!("/v1/jobs/{id}/cancel"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{canceled}");
    assert_eq!(canceled["state"], "canceled");
    let job = app.job_ended(id).await;
    let processed = job["progress"]["processed"].as_i64().unwrap();
    // The worker goes round again only once it has let the canceled job go.
    let from_round = app.state.health.rounds(Worker::Jobs);
    eventually("the job worker to let the job go", || async {
        (app.state.health.rounds(Worker::Jobs) >= from_round + 2).then_some(())
    })
    .await;
    let (_, later) = app.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(later["progress"]["processed"].as_i64().unwrap(), processed, "nothing more after the cancel");
    assert!(processed < 60_000, "stopped midway: {processed}");
    let (status, e) = app.post(&format!("/v1/jobs/{id}/cancel"), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    app.stop().await;
}

const KEY: &str = "jobs-test-key-0123456789abcdef";

/// `kill -9` while a contacts import runs: restarted, the job goes on from its cursor, and every
/// row has exactly one entry.
async fn an_import_goes_on_from_its_cursor_after_a_kill_9(backend: Backend) {
    const ROWS: u32 = 60_000;
    let Some(db) = TestDatabase::new(backend).await else { return };
    let config = db.dir().join("wagate.toml");
    std::fs::write(&config, "[jobs]\nlease_ms = 1500\n").unwrap();
    let env = [("WAGATE_BOOTSTRAP_API_KEY", KEY)];
    let first = serve_binary(&db, &config, &env).await;
    let http = reqwest::Client::new();
    let mut csv = String::from("phone,first_name\n");
    for i in 0..ROWS {
        writeln!(csv, "+1555{:07},N{i}", 6_000_000 + i).unwrap();
    }
    let response = http
        .post(format!("{}/v1/contacts/import", first.url))
        .bearer_auth(KEY)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let job: Value = response.json().await.unwrap();
    let id = job["id"].as_str().unwrap().to_owned();
    let get = |url: String| {
        let http = http.clone();
        async move { request(&http, Method::GET, &url, Some(KEY), None).await.1 }
    };
    eventually("the import to be under way", || async {
        let j = get(format!("{}/v1/jobs/{id}", first.url)).await;
        (j["progress"]["processed"].as_i64().unwrap() >= 5_000).then_some(())
    })
    .await;
    first.kill().await;

    let second = serve_binary(&db, &config, &env).await;
    let restarted = std::time::Instant::now();
    let at_restart = get(format!("{}/v1/jobs/{id}", second.url)).await;
    let done = loop {
        let j = get(format!("{}/v1/jobs/{id}", second.url)).await;
        if j["state"] == "completed" {
            break j;
        }
        assert!(restarted.elapsed() < std::time::Duration::from_secs(180), "the import did not complete: {j}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    println!(
        "{ROWS} contacts: {} processed at the kill, the rest {:?} after the restart",
        at_restart["progress"]["processed"],
        restarted.elapsed()
    );
    assert!(at_restart["progress"]["processed"].as_i64().unwrap() < i64::from(ROWS), "killed midway");
    let p = &done["progress"];
    assert_eq!(
        (p["processed"].as_i64(), p["succeeded"].as_i64()),
        (Some(i64::from(ROWS)), Some(i64::from(ROWS))),
        "{p}"
    );
    let store = open_store(&db).await;
    let numbered = store.contacts_numbered(&ContactFilter::default(), 0, 1).await.unwrap();
    assert_eq!(numbered.total, i64::from(ROWS), "each row one contact");
    let job_id = wagate_domain::id::JobId::parse(&id).unwrap();
    let all = store.list_job_entries(&job_id, &wagate_storage::EntryFilter::default(), ROWS * 2).await.unwrap();
    assert_eq!(all.len(), ROWS as usize, "each row one entry");
    assert!(all.windows(2).all(|w| w[1].line == w[0].line + 1), "lines 2 to {} in order", ROWS + 1);
    assert_eq!(second.terminate().await, Some(0));
}

on_each_backend!(
    a_csv_of_recipients_is_added_by_a_job_each_bad_line_reported,
    contacts_are_imported_with_their_attributes_tags_and_preferences,
    a_job_can_be_canceled,
    an_import_goes_on_from_its_cursor_after_a_kill_9,
);
