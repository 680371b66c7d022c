//! `wagate campaign …`: create a campaign, upload its recipients, check them, start, pause,
//! resume or cancel it, show it, and watch it to its end on the live event stream.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use reqwest::Method;
use reqwest::header::ACCEPT;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::events::SseParser;
use super::progress::{Bar, Unit, counted, duration, thousands};
use super::{Client, ClientArgs, ServerError, jobs, parse, print_json, segment};

/// A stream silent this long (its keep-alive comes every 15 s) is taken for dropped.
const IDLE: Duration = Duration::from_secs(45);
/// A watch gives up when the server cannot be reached again for this long.
const GIVE_UP: Duration = Duration::from_secs(120);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Refused rows a preflight prints.
const SHOWN: usize = 20;

#[derive(Subcommand)]
pub enum CampaignCommand {
    /// Create a campaign, a draft: one template to many recipients from one of the business's
    /// numbers.
    Create(CreateArgs),
    /// Add recipients from a CSV file, streamed to the server and imported in the background:
    /// a header row naming a `to` column, the template's variables (`1`, `2`… or names) and
    /// `metadata.<key>` columns.
    Upload {
        #[arg(value_name = "CAMPAIGN_ID")]
        campaign_id: String,
        #[arg(value_name = "FILE.csv")]
        file: PathBuf,
    },
    /// Check every recipient not yet sent, without sending: who would be sent, who skipped and
    /// why, the messaging limit, how long sending would take.
    Preflight {
        #[arg(value_name = "CAMPAIGN_ID")]
        campaign_id: String,
    },
    /// Start a draft: now, or at its --send-at.
    Start {
        #[arg(value_name = "CAMPAIGN_ID")]
        campaign_id: String,
    },
    /// Pause a campaign: no more is fed to the number's queue.
    Pause {
        #[arg(value_name = "CAMPAIGN_ID")]
        campaign_id: String,
    },
    /// Resume a paused campaign where it stopped.
    Resume {
        #[arg(value_name = "CAMPAIGN_ID")]
        campaign_id: String,
    },
    /// Cancel a campaign: the recipients not yet sent are skipped.
    Cancel {
        #[arg(value_name = "CAMPAIGN_ID")]
        campaign_id: String,
    },
    /// Show a campaign: its state and its recipients' counts.
    Show {
        #[arg(value_name = "CAMPAIGN_ID")]
        campaign_id: String,
    },
    /// Follow a campaign live until it is completed or canceled, with a bar of the recipients
    /// handed over (or skipped), its counts and its pauses.
    Watch {
        #[arg(value_name = "CAMPAIGN_ID")]
        campaign_id: String,
    },
}

#[derive(Args)]
pub struct CreateArgs {
    /// What the campaign is called (1 to 200 characters).
    #[arg(long)]
    name: String,
    /// The business number it goes out from (see GET /v1/phone-numbers).
    #[arg(long, value_name = "ID")]
    phone_number_id: String,
    /// The template's name; it must be approved at Meta before the campaign starts.
    #[arg(long, value_name = "NAME")]
    template: String,
    /// The template's language.
    #[arg(long, default_value = "en_US")]
    language: String,
    /// Messages a second, at most the number's own rate [default: the number's rate].
    #[arg(long, value_name = "N")]
    rate: Option<u32>,
    /// When `start` sends it, e.g. 2026-11-22T09:00:00Z [default: when started].
    #[arg(long, value_name = "RFC3339")]
    send_at: Option<String>,
    /// The body's values every recipient shares, as JSON: `["Ana"]` for {{1}}, or
    /// `{"name": "Ana"}` for named variables; each recipient's own values override them.
    #[arg(long, value_name = "JSON")]
    params: Option<String>,
}

pub async fn run(command: CampaignCommand, args: &ClientArgs) -> anyhow::Result<()> {
    let client = Client::new(args)?;
    let client = &client;
    let path = |id: &str, action: &str| format!("/v1/campaigns/{}{action}", segment(id));
    match command {
        CampaignCommand::Create(a) => create(client, a).await,
        CampaignCommand::Upload { campaign_id, file } => {
            jobs::import(client, &path(&campaign_id, "/recipients"), &file).await
        }
        CampaignCommand::Preflight { campaign_id } => {
            let answer = client.post(&path(&campaign_id, "/preflight"), &json!({})).await?;
            if client.json {
                print_json(&answer);
                return Ok(());
            }
            print_preflight(&parse("a preflight", &answer)?);
            Ok(())
        }
        CampaignCommand::Start { campaign_id } => act(client, &path(&campaign_id, "/start")).await,
        CampaignCommand::Pause { campaign_id } => act(client, &path(&campaign_id, "/pause")).await,
        CampaignCommand::Resume { campaign_id } => act(client, &path(&campaign_id, "/resume")).await,
        CampaignCommand::Cancel { campaign_id } => act(client, &path(&campaign_id, "/cancel")).await,
        CampaignCommand::Show { campaign_id } => {
            let answer = client.get(&path(&campaign_id, "")).await?;
            shown(client, &answer)
        }
        CampaignCommand::Watch { campaign_id } => watch(client, &campaign_id).await,
    }
}

async fn create(client: &Client, a: CreateArgs) -> anyhow::Result<()> {
    let mut template = json!({"name": a.template, "language": a.language});
    if let Some(params) = &a.params {
        let params: Value = serde_json::from_str(params).map_err(|e| anyhow::anyhow!("--params is not JSON: {e}"))?;
        template["params"] = params;
    }
    let mut body = Map::new();
    body.insert("name".into(), json!(a.name));
    body.insert("phone_number_id".into(), json!(a.phone_number_id));
    body.insert("template".into(), template);
    if let Some(rate) = a.rate {
        body.insert("rate".into(), json!(rate));
    }
    if let Some(send_at) = a.send_at {
        body.insert("send_at".into(), json!(send_at));
    }
    let answer = client.post("/v1/campaigns", &Value::Object(body)).await?;
    shown(client, &answer)?;
    if !client.json {
        let id = answer["id"].as_str().unwrap_or("CAMPAIGN_ID");
        println!(
            "next: add recipients (wagate campaign upload {id} FILE.csv), check them (preflight), start it (start)"
        );
    }
    Ok(())
}

/// `POST …/start|pause|resume|cancel`, and the campaign as it stands after.
async fn act(client: &Client, path: &str) -> anyhow::Result<()> {
    let answer = client.post(path, &json!({})).await?;
    shown(client, &answer)
}

fn shown(client: &Client, answer: &Value) -> anyhow::Result<()> {
    if client.json {
        print_json(answer);
    } else {
        print_campaign(&parse("a campaign", answer)?);
    }
    Ok(())
}

/// A campaign as `GET /v1/campaigns/{id}` shows it (what is printed of it).
#[derive(Deserialize)]
struct Campaign {
    id: String,
    #[serde(default)]
    name: String,
    state: String,
    #[serde(default)]
    phone_number_id: String,
    #[serde(default)]
    template: Value,
    pause_reason: Option<String>,
    pause_detail: Option<String>,
    resumes_at: Option<String>,
    send_at: Option<String>,
    #[serde(default)]
    effective_rate: u32,
    #[serde(default)]
    counts: Counts,
    estimated_finish_at: Option<String>,
    finished_at: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Counts {
    total: u64,
    pending: u64,
    queued: u64,
    accepted: u64,
    sent: u64,
    delivered: u64,
    read: u64,
    failed: u64,
    skipped: u64,
    replied: u64,
    failed_by_code: BTreeMap<String, u64>,
    skipped_by_reason: BTreeMap<String, u64>,
}

impl Counts {
    /// Recipients handed to Meta (and answered) or skipped: what is done of the campaign.
    fn handed_over(&self) -> u64 {
        self.accepted + self.sent + self.delivered + self.read + self.failed + self.skipped
    }

    /// `2 queued, 10 delivered, 1 failed`: the statuses past pending that have any.
    fn brief(&self) -> String {
        let parts = [
            ("queued", self.queued),
            ("accepted", self.accepted),
            ("sent", self.sent),
            ("delivered", self.delivered),
            ("read", self.read),
            ("failed", self.failed),
            ("skipped", self.skipped),
        ];
        let shown: Vec<String> =
            parts.iter().filter(|(_, n)| *n > 0).map(|(k, n)| format!("{} {k}", thousands(*n))).collect();
        shown.join(", ")
    }
}

impl Campaign {
    fn is_final(&self) -> bool {
        matches!(self.state.as_str(), "completed" | "canceled")
    }

    /// `paused (awaiting_quota): … ; goes on by itself at …`.
    fn pause(&self) -> String {
        let mut line = format!("paused ({})", self.pause_reason.as_deref().unwrap_or("unknown reason"));
        if let Some(detail) = &self.pause_detail {
            line.push_str(&format!(": {detail}"));
        }
        if let Some(at) = self.resumes_at.as_ref().filter(|at| !line.contains(at.as_str())) {
            line.push_str(&format!("; goes on by itself at {at}"));
        }
        line
    }
}

fn by_key(counts: &BTreeMap<String, u64>) -> String {
    counts.iter().map(|(k, n)| format!("{k} {}", thousands(*n))).collect::<Vec<_>>().join(", ")
}

fn print_campaign(c: &Campaign) {
    let k = &c.counts;
    println!("campaign {} {:?}: {}", c.id, c.name, c.state);
    println!(
        "  from {}, template {} ({}), {} messages/s",
        c.phone_number_id,
        c.template["name"].as_str().unwrap_or("?"),
        c.template["language"].as_str().unwrap_or("?"),
        c.effective_rate
    );
    match c.state.as_str() {
        "paused" => println!("  {}", c.pause()),
        "scheduled" => println!("  scheduled for {}", c.send_at.as_deref().unwrap_or("?")),
        _ => {}
    }
    match (k.handed_over() * 100).checked_div(k.total) {
        Some(percent) => {
            println!("  handed over or skipped {} of {} ({percent}%)", thousands(k.handed_over()), thousands(k.total))
        }
        None => println!("  no recipients yet"),
    }
    println!(
        "  pending {}  queued {}  accepted {}  sent {}  delivered {}  read {}  failed {}  skipped {}  replied {}",
        thousands(k.pending),
        thousands(k.queued),
        thousands(k.accepted),
        thousands(k.sent),
        thousands(k.delivered),
        thousands(k.read),
        thousands(k.failed),
        thousands(k.skipped),
        thousands(k.replied)
    );
    if !k.failed_by_code.is_empty() {
        println!("  failed by code: {}", by_key(&k.failed_by_code));
    }
    if !k.skipped_by_reason.is_empty() {
        println!("  skipped by reason: {}", by_key(&k.skipped_by_reason));
    }
    if let Some(at) = &c.estimated_finish_at {
        println!("  estimated to be handed over by {at}");
    }
    if let Some(at) = &c.finished_at {
        println!("  finished at {at}");
    }
}

/// `POST /v1/campaigns/{id}/preflight`'s answer.
#[derive(Deserialize)]
struct Preflight {
    checked: u64,
    will_send: u64,
    #[serde(default)]
    skipped: BTreeMap<String, u64>,
    #[serde(default)]
    outside_window: u64,
    messaging_limit: Option<u64>,
    #[serde(default)]
    messaging_used_24h: u64,
    messaging_left: Option<i64>,
    #[serde(default)]
    category: String,
    #[serde(default)]
    rate: u32,
    #[serde(default)]
    estimated_seconds: u64,
    #[serde(default)]
    errors: Vec<RowError>,
}

#[derive(Deserialize)]
struct RowError {
    position: Option<i64>,
    #[serde(default)]
    to: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    message: String,
}

fn print_preflight(p: &Preflight) {
    let skipped: u64 = p.skipped.values().sum();
    let why = if skipped > 0 { format!(" ({})", by_key(&p.skipped)) } else { String::new() };
    println!(
        "checked {}: {} will be sent, {} will be skipped{why}",
        counted(p.checked, "recipient"),
        thousands(p.will_send),
        thousands(skipped)
    );
    println!(
        "  outside the 24-hour window: {} (each opens a conversation that counts against the messaging limit)",
        thousands(p.outside_window)
    );
    match (p.messaging_limit, p.messaging_left) {
        (Some(limit), left) => {
            let left = left.map_or_else(|| "?".to_owned(), |l| thousands(l.max(0) as u64));
            println!(
                "  messaging limit: {} customers a rolling 24 hours, {} used, {left} left",
                thousands(limit),
                thousands(p.messaging_used_24h)
            );
            if p.messaging_left.is_some_and(|l| l < p.outside_window as i64) {
                println!(
                    "  the limit does not leave room for all of them: the campaign will wait for it (awaiting_quota)"
                );
            }
        }
        (None, _) => println!("  messaging limit: none"),
    }
    println!(
        "  template category {}; at {} messages/s handing them to Meta takes about {}",
        p.category,
        p.rate,
        duration(p.estimated_seconds)
    );
    if !p.errors.is_empty() {
        println!("  invalid (the first {} of {}):", p.errors.len().min(SHOWN), thousands(p.errors.len() as u64));
    }
    for e in p.errors.iter().take(SHOWN) {
        let position = e.position.map_or_else(|| "-".to_owned(), |p| p.to_string());
        let at = if e.path.is_empty() { String::new() } else { format!(" at {}", e.path) };
        println!("    #{position} {}  {}{at}: {}", e.to, e.code, e.message);
    }
}

/// What `watch` drew last, and how it draws the next answer.
struct Watcher {
    bar: Bar,
    json: bool,
    /// The state, pause reason and detail last seen: a change of them is noted on a line.
    last: Option<(String, Option<String>, Option<String>)>,
}

impl Watcher {
    /// Draws a campaign's view; true once it is completed or canceled (then summed up).
    fn show(&mut self, raw: &Value) -> anyhow::Result<bool> {
        let c: Campaign = parse("a campaign", raw)?;
        if self.json {
            println!("{raw}");
        }
        let k = &c.counts;
        let brief = k.brief();
        let detail = if brief.is_empty() { c.state.clone() } else { format!("{}: {brief}", c.state) };
        self.bar.set(k.handed_over(), Some(k.total), detail);
        // Noted after the bar is set, so that the bar drawn again under the note is current.
        let seen = (c.state.clone(), c.pause_reason.clone(), c.pause_detail.clone());
        if self.last.as_ref() != Some(&seen) {
            let note = match c.state.as_str() {
                "paused" => Some(c.pause()),
                "scheduled" => Some(format!("scheduled for {}", c.send_at.as_deref().unwrap_or("?"))),
                "draft" => Some(format!("draft: not started yet (wagate campaign start {})", c.id)),
                "running" => match self.last.as_ref().map(|(state, ..)| state.as_str()) {
                    Some("paused") => Some("resumed".to_owned()),
                    Some(_) => Some("started".to_owned()),
                    None => None,
                },
                _ => None,
            };
            if let Some(note) = note {
                self.bar.note(&note);
            }
            self.last = Some(seen);
        }
        if !c.is_final() {
            return Ok(false);
        }
        self.bar.finish();
        if !self.json {
            print_campaign(&c);
        }
        Ok(true)
    }
}

/// Follows the campaign on `GET /v1/events/stream` until it is completed or canceled; after a
/// dropped connection, again from the last event received (`Last-Event-ID`).
async fn watch(client: &Client, id: &str) -> anyhow::Result<()> {
    let campaign_path = format!("/v1/campaigns/{}", segment(id));
    let first = client.get(&campaign_path).await?;
    let mut w = Watcher { bar: Bar::new(Unit::Count, None), json: client.json, last: None };
    if w.show(&first)? {
        return Ok(());
    }
    // The id as the server spells it, which events carry.
    let id = first["id"].as_str().unwrap_or(id);
    let number = first["phone_number_id"].as_str().unwrap_or_default();
    let stream_path = format!("/v1/events/stream?type=campaign.*&phone_number_id={}", segment(number));
    let mut last_event: Option<String> = None;
    let mut failing_since: Option<Instant> = None;
    let mut backoff = Duration::from_millis(250);
    loop {
        let dropped = match follow(client, &campaign_path, &stream_path, id, &mut last_event, &mut w).await {
            Ok(Followed::Finished) => return Ok(()),
            Ok(Followed::Dropped(why)) => {
                failing_since = None;
                backoff = Duration::from_millis(250);
                why
            }
            // The server refused (a key without the right, an event no longer kept): asking again
            // changes nothing.
            Err(e) if e.downcast_ref::<ServerError>().is_some_and(|s| s.status.is_client_error()) => return Err(e),
            Err(e) => match failing_since {
                Some(since) if since.elapsed() >= GIVE_UP => {
                    let why = format!("gave up after {} without the event stream", duration(GIVE_UP.as_secs()));
                    return Err(e.context(why));
                }
                // Said once a streak of failures: the next attempts are quiet.
                Some(_) => String::new(),
                None => {
                    failing_since = Some(Instant::now());
                    format!("{e:#}")
                }
            },
        };
        if !dropped.is_empty() {
            w.bar.note(&format!("the event stream was lost ({dropped}); connecting again"));
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

enum Followed {
    Finished,
    /// The stream ended or went silent, and why.
    Dropped(String),
}

/// One connection to the event stream, read until the campaign ends or the stream does.
async fn follow(
    client: &Client,
    campaign_path: &str,
    stream_path: &str,
    id: &str,
    last_event: &mut Option<String>,
    w: &mut Watcher,
) -> anyhow::Result<Followed> {
    let mut req = client.request(Method::GET, stream_path).header(ACCEPT, "text/event-stream");
    if let Some(last) = last_event.as_deref() {
        req = req.header("Last-Event-ID", last);
    }
    let mut resp = client.open(req, stream_path).await?;
    // Without an event to resume after, the stream starts now: what changed before it opened is
    // read once more.
    if last_event.is_none() && w.show(&client.get(campaign_path).await?)? {
        return Ok(Followed::Finished);
    }
    let mut parser = SseParser::default();
    loop {
        let chunk = match tokio::time::timeout(IDLE, resp.chunk()).await {
            Ok(Ok(Some(chunk))) => chunk,
            Ok(Ok(None)) => return Ok(Followed::Dropped("the server ended it".into())),
            Ok(Err(e)) => return Ok(Followed::Dropped(format!("{:#}", anyhow::Error::new(e.without_url())))),
            Err(_) => return Ok(Followed::Dropped(format!("nothing came for {}", duration(IDLE.as_secs())))),
        };
        for event in parser.feed(&chunk) {
            if let Some(event_id) = event.id.filter(|i| !i.is_empty()) {
                *last_event = Some(event_id);
            }
            let Ok(event) = serde_json::from_str::<Value>(&event.data) else { continue };
            let about_it = event["type"].as_str().is_some_and(|t| t.starts_with("campaign."))
                && event["data"]["id"].as_str() == Some(id);
            if about_it && w.show(&event["data"])? {
                return Ok(Followed::Finished);
            }
        }
    }
}
