//! The command-line client (`wagate campaign …`, `wagate contacts import`): the real binary
//! driving the application on port 0, as a person or a script would.

use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use wagate_storage::Backend;

use crate::support::*;

/// The binary with `args`, pointed at `app` through the environment.
async fn cli(app: &TestApp, args: &[&str]) -> Output {
    run_binary_with(args, &[("WAGATE_URL", &app.url), ("WAGATE_API_KEY", &app.api_key)]).await
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Its stdout, once it succeeded.
fn succeeded(args: &[&str], out: &Output) -> String {
    assert!(out.status.success(), "wagate {args:?} failed: {}{}", text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

async fn cli_ok(app: &TestApp, args: &[&str]) -> String {
    succeeded(args, &cli(app, args).await)
}

/// A template with one variable, made at the built-in sandbox and approved there.
async fn approved_template(app: &TestApp, name: &str) {
    let sandbox = format!("{}/sandbox", app.url);
    let key = Some(app.api_key.as_str());
    let (status, accounts) = request(&app.http, Method::GET, &format!("{sandbox}/control/accounts"), key, None).await;
    assert_eq!(status, StatusCode::OK, "{accounts}");
    let business = &accounts["data"][0];
    let template = json!({"name": name, "language": "en_US", "category": "UTILITY", "components": [
        {"type": "BODY", "text": "Hi {{1}}, your order ships today.", "example": {"body_text": [["Ana"]]}}]});
    let url = format!("{sandbox}/v23.0/{}/message_templates", business["waba_id"].as_str().unwrap());
    let (status, created) =
        request(&app.http, Method::POST, &url, business["access_token"].as_str(), Some(template)).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let url = format!("{sandbox}/control/templates/{}/status", created["id"].as_str().unwrap());
    let (status, body) = request(&app.http, Method::PUT, &url, key, Some(json!({"status": "APPROVED"}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// A draft made with `wagate campaign create --json`; its id.
async fn create_campaign(app: &TestApp, template: &str, extra: &[&str]) -> String {
    let phone = app.sandbox_numbers().await[0].clone();
    let mut args = vec!["campaign", "create", "--name", "cli spring sale", "--phone-number-id", &phone];
    args.extend(["--template", template, "--params", r#"["friend"]"#, "--json"]);
    args.extend(extra);
    let out = cli_ok(app, &args).await;
    let created: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("--json prints JSON ({e}): {out}"));
    assert_eq!((&created["state"], &created["template"]["params"]), (&json!("draft"), &json!(["friend"])), "{created}");
    created["id"].as_str().unwrap().to_owned()
}

/// `wagate campaign watch`, started: its stderr read as it comes.
struct Watch {
    child: tokio::process::Child,
    stderr: Arc<Mutex<String>>,
}

impl Watch {
    fn start(app: &TestApp, id: &str) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wagate"));
        cmd.args(["campaign", "watch", id, "--url", &app.url, "--key", &app.api_key]);
        cmd.env_remove("WAGATE_URL").env_remove("WAGATE_API_KEY");
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        let mut child = cmd.spawn().expect("the wagate binary starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let seen = stderr.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let mut seen = seen.lock().unwrap();
                seen.push_str(&line);
                seen.push('\n');
            }
        });
        Self { child, stderr }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    async fn shows(&self, what: &str) {
        eventually(&format!("watch to show {what:?}"), || async { self.stderr().contains(what).then_some(()) }).await;
    }

    /// Its exit status, stdout and stderr once it ends by itself.
    async fn ended(mut self) -> (std::process::ExitStatus, String, String) {
        let mut stdout = String::new();
        let mut out = self.child.stdout.take().unwrap();
        let status = tokio::time::timeout(PATIENCE, async {
            out.read_to_string(&mut stdout).await.unwrap();
            self.child.wait().await.unwrap()
        })
        .await
        .unwrap_or_else(|_| panic!("watch ends once the campaign does; it showed: {}", self.stderr()));
        // The reader of stderr has the last lines once the pipe closes.
        eventually("watch's stderr to be read", || async {
            (self.stderr().contains("100%") || !status.success()).then_some(())
        })
        .await;
        (status, stdout, self.stderr())
    }
}

async fn a_campaign_is_created_checked_started_and_watched_to_its_end(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    approved_template(&app, "cli_order_update").await;
    // Two a second: the watch sees it run, pause and go on.
    let id = create_campaign(&app, "cli_order_update", &["--rate", "2"]).await;
    let shown = cli_ok(&app, &["campaign", "show", &id]).await;
    assert!(shown.contains(&format!("campaign {id} \"cli spring sale\": draft")), "{shown}");
    assert!(shown.contains("template cli_order_update (en_US), 2 messages/s"), "{shown}");

    let recipients: Vec<Value> = (0..6).map(|i| json!({"to": customer(), "params": [format!("N{i}")]})).collect();
    let (status, added) = app.post(&format!("/v1/campaigns/{id}/recipients"), Value::Array(recipients)).await;
    assert_eq!((status, &added["added"]), (StatusCode::OK, &json!(6)), "{added}");

    let checked = cli_ok(&app, &["campaign", "preflight", &id]).await;
    assert!(checked.contains("checked 6 recipients: 6 will be sent, 0 will be skipped"), "{checked}");
    assert!(checked.contains("outside the 24-hour window: 6"), "{checked}");
    assert!(checked.contains("template category UTILITY; at 2 messages/s"), "{checked}");
    let pre: Value = serde_json::from_str(&cli_ok(&app, &["campaign", "preflight", &id, "--json"]).await).unwrap();
    assert_eq!((pre["checked"].as_i64(), pre["will_send"].as_i64(), pre["rate"].as_i64()), (Some(6), Some(6), Some(2)));

    // Watched from before it starts: its state as it goes, from the live event stream.
    let watch = Watch::start(&app, &id);
    watch.shows(&format!("draft: not started yet (wagate campaign start {id})")).await;
    let started = cli_ok(&app, &["campaign", "start", &id]).await;
    assert!(started.contains(": running"), "{started}");
    eventually("the first recipients to be handed to Meta", || async {
        let (_, c) = app.get(&format!("/v1/campaigns/{id}")).await;
        (c["counts"]["accepted"].as_i64().unwrap()
            + c["counts"]["sent"].as_i64().unwrap()
            + c["counts"]["delivered"].as_i64().unwrap()
            + c["counts"]["read"].as_i64().unwrap()
            >= 1)
            .then_some(())
    })
    .await;
    let paused = cli_ok(&app, &["campaign", "pause", &id]).await;
    assert!(paused.contains(": paused"), "{paused}");
    assert!(paused.contains("paused (requested): paused at the caller's request"), "{paused}");
    watch.shows("paused (requested): paused at the caller's request").await;
    let resumed = cli_ok(&app, &["campaign", "resume", &id]).await;
    assert!(resumed.contains(": running"), "{resumed}");

    let (status, stdout, stderr) = watch.ended().await;
    assert!(status.success(), "watch exits 0 once completed: {stdout}{stderr}");
    assert!(stderr.contains("[####################] 100%  6/6"), "{stderr}");
    assert!(stdout.contains(&format!("campaign {id} \"cli spring sale\": completed")), "{stdout}");
    assert!(stdout.contains("handed over or skipped 6 of 6 (100%)"), "{stdout}");
    assert!(stdout.contains("pending 0  queued 0") && stdout.contains("failed 0  skipped 0"), "{stdout}");
    let (_, c) = app.get(&format!("/v1/campaigns/{id}")).await;
    assert_eq!((c["state"].as_str(), c["counts"]["total"].as_i64()), (Some("completed"), Some(6)), "{c}");

    // Watching a campaign that has ended draws it once and exits at once; --json prints the
    // campaign as the server shows it.
    let again = cli_ok(&app, &["campaign", "watch", &id, "--json"]).await;
    let lines: Vec<Value> = again.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert_eq!(lines.len(), 1, "{again}");
    assert_eq!((lines[0]["id"].as_str(), lines[0]["state"].as_str()), (Some(id.as_str()), Some("completed")));
    // And an ended campaign cannot start again: the server's refusal, exit 1.
    let out = cli(&app, &["campaign", "start", &id]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(err.starts_with(&format!("error: campaign {id} is completed")) && err.contains("(conflict)"), "{err}");
    app.stop().await;
}

async fn the_servers_errors_are_printed_with_their_rule_and_exit_1(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let unknown = "cmp_01JZZZZZZZZZZZZZZZZZZZZZZZ";
    for args in [["campaign", "show", unknown], ["campaign", "watch", unknown], ["campaign", "preflight", unknown]] {
        let out = cli(&app, &args).await;
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out.stdout));
        assert_eq!(text(&out.stderr), format!("error: no campaign with id '{unknown}' (not_found)\n"), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out.stdout));
    }

    // A field at fault is named.
    let phone = app.sandbox_numbers().await[0].clone();
    let args = ["campaign", "create", "--name", "x", "--phone-number-id", &phone, "--template", "hello_world"];
    let out = cli(&app, &[&args[..], &["--send-at", "tomorrow"][..]].concat()).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: send_at: 'tomorrow' is not an RFC 3339 time such as 2026-11-22T09:00:00Z (rfc3339 at send_at)\n"
    );
    let out = cli(&app, &[&args[..], &["--params", "[oops"][..]].concat()).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("error: --params is not JSON: "), "{}", text(&out.stderr));

    // Without a key, or with a wrong one: the server's refusal.
    let out = run_binary_with(&["campaign", "show", unknown, "--url", &app.url], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).ends_with("(unauthorized)\n"), "{}", text(&out.stderr));

    // Nothing listening: the URL is named.
    let out = run_binary_with(
        &["campaign", "show", unknown],
        &[("WAGATE_URL", "http://127.0.0.1:9/"), ("WAGATE_API_KEY", "k")],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.starts_with(&format!("error: cannot reach http://127.0.0.1:9/v1/campaigns/{unknown}: ")), "{err}");
    app.stop().await;
}

async fn recipients_and_contacts_are_imported_from_files_each_refused_line_shown(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    approved_template(&app, "cli_file_update").await;
    let id = create_campaign(&app, "cli_file_update", &[]).await;
    let dir = tempfile::tempdir().unwrap();

    // Two thousand rows: line 3 is not a number, line 6 names line 2's number again.
    let mut csv = String::from("to,1,metadata.ref\n");
    let first = customer();
    for line in 2..=2_001u32 {
        let to = match line {
            2 | 6 => first.clone(),
            3 => "+12".to_owned(),
            _ => format!("+1555{:07}", 7_000_000 + line),
        };
        csv.push_str(&format!("{to},N{line},r{line}\n"));
    }
    let file = dir.path().join("recipients.csv");
    std::fs::write(&file, csv).unwrap();
    let args = ["campaign", "upload", &id, file.to_str().unwrap()];
    let out = cli(&app, &args).await;
    let (stdout, stderr) = (succeeded(&args, &out), text(&out.stderr));
    assert!(
        stdout.contains("(campaign.recipients.import) completed: 2,000 rows, 1,998 succeeded, 1 failed, 1 invalid"),
        "{stdout}"
    );
    let refused: Vec<&str> = stdout.lines().filter(|l| l.starts_with("  line ")).collect();
    assert_eq!(refused.len(), 2, "{stdout}");
    assert!(refused[0].starts_with("  line 3  invalid  e164  \"+12\"  "), "{stdout}");
    assert!(refused[1].starts_with(&format!("  line 6  failed  duplicate  \"{first}\"")), "{stdout}");
    // The bars: the bytes sent, then the rows.
    assert!(stderr.contains("uploading recipients.csv") && stderr.contains("100%  2,000/2,000"), "{stderr}");
    let (_, c) = app.get(&format!("/v1/campaigns/{id}")).await;
    assert_eq!(c["counts"]["pending"], 1_998, "{c}");

    // --json: the job as the server shows it at its end.
    let more = dir.path().join("more.csv");
    std::fs::write(&more, format!("to,1\n{},Late\n", customer())).unwrap();
    let args = ["campaign", "upload", &id, more.to_str().unwrap(), "--json"];
    let job: Value = serde_json::from_str(&cli_ok(&app, &args).await).expect("--json prints JSON");
    assert_eq!((job["state"].as_str(), job["progress"]["succeeded"].as_i64()), (Some("completed"), Some(1)), "{job}");

    // Contacts: found by number or made, a bad number refused with its line.
    let (ana, bo) = (customer(), customer());
    let contacts = dir.path().join("contacts.csv");
    std::fs::write(&contacts, format!("phone,first_name\n{ana},Ana\nnot-a-number,Cy\n{bo},Bo\n")).unwrap();
    let args = ["contacts", "import", contacts.to_str().unwrap()];
    let stdout = cli_ok(&app, &args).await;
    assert!(stdout.contains("(contacts.import) completed: 3 rows, 2 succeeded, 0 failed, 1 invalid"), "{stdout}");
    assert!(stdout.contains("  line 3  invalid  "), "{stdout}");
    app.contact_of(&ana).await;
    app.contact_of(&bo).await;

    // What the server refuses before a job exists is its error, exit 1.
    let empty = dir.path().join("empty.csv");
    std::fs::write(&empty, "name\nAna\n").unwrap();
    let out = cli(&app, &["campaign", "upload", &id, empty.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("(missing_column"), "{}", text(&out.stderr));
    let out = cli(&app, &["contacts", "import", dir.path().join("absent.csv").to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("error: cannot open "), "{}", text(&out.stderr));
    app.stop().await;
}

on_each_backend!(
    a_campaign_is_created_checked_started_and_watched_to_its_end,
    the_servers_errors_are_printed_with_their_rule_and_exit_1,
    recipients_and_contacts_are_imported_from_files_each_refused_line_shown,
);

/// A stand-in for wagate that serves one campaign and drops the event stream after its first
/// event: the watch connects again, after that event, and follows the campaign to its end.
#[tokio::test]
async fn watch_goes_on_after_a_dropped_stream_from_the_last_event() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let view = |state: &str, done: i64| {
        let pending = 4 - done;
        json!({"id": "cmp_1", "name": "dropped", "state": state, "phone_number_id": "100", "effective_rate": 80,
            "template": {"name": "t", "language": "en_US"},
            "counts": {"total": 4, "pending": pending, "queued": 0, "accepted": 0, "sent": 0, "delivered": done,
                "read": 0, "failed": 0, "skipped": 0, "replied": 0, "failed_by_code": {}, "skipped_by_reason": {}}})
    };
    let event = |id: &str, kind: &str, data: Value| {
        let body = json!({"id": id, "type": kind, "phone_number_id": "100", "created_at": "2026-01-01T00:00:00Z", "data": data});
        format!("id: {id}\nevent: {kind}\ndata: {body}\n\n")
    };
    let (first, last) = (
        event("evt_1", "campaign.progress", view("running", 2)),
        event("evt_2", "campaign.completed", view("completed", 4)),
    );
    let resumed_after = Arc::new(Mutex::new(Vec::<String>::new()));
    let heads = resumed_after.clone();
    let running = view("running", 1).to_string();
    tokio::spawn(async move {
        let mut streams = 0;
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
            let sse =
                "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n: events follow\n\n";
            if head.starts_with("get /v1/events/stream?type=campaign.*&phone_number_id=100 ") {
                streams += 1;
                let resume = head.lines().find_map(|l| l.strip_prefix("last-event-id: ")).unwrap_or("none");
                heads.lock().unwrap().push(resume.to_owned());
                // The first stream ends after one event, as a restart or a proxy would end it.
                let body = if streams == 1 { format!("{sse}{first}") } else { format!("{sse}{last}") };
                let _ = conn.write_all(body.as_bytes()).await;
            } else {
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{running}",
                    running.len()
                );
                let _ = conn.write_all(answer.as_bytes()).await;
            }
            let _ = conn.shutdown().await;
        }
    });
    let out = run_binary_with(&["campaign", "watch", "cmp_1", "--url", &url, "--key", "k"], &[]).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(*resumed_after.lock().unwrap(), ["none", "evt_1"], "{stderr}");
    assert!(stderr.contains("the event stream was lost (the server ended it); connecting again"), "{stderr}");
    assert!(stderr.contains("[####################] 100%  4/4"), "{stderr}");
    assert!(stdout.contains("campaign cmp_1 \"dropped\": completed") && stdout.contains("delivered 4"), "{stdout}");
}
