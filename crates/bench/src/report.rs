//! The figures of a run: a table for people, or one JSON object.

use std::time::Duration;

use serde_json::{Value, json};

use crate::load::{Phase, Tally};
use crate::{Backend, BenchArgs, Drain};

/// One backend's figures.
pub struct Report {
    pub backend: Backend,
    pub duration: Duration,
    pub healthz: Phase,
    pub sends: Phase,
    pub webhooks: Phase,
    pub processing: Drain,
}

impl Report {
    /// Each phase: what was loaded, the answer expected, and what came.
    fn phases(&self) -> [(&'static str, u16, &Phase); 3] {
        [
            ("GET /healthz", 200, &self.healthz),
            ("POST /v1/messages", 202, &self.sends),
            ("POST /webhooks/meta", 200, &self.webhooks),
        ]
    }

    /// A phase's rate as a share of `GET /healthz`'s, the ceiling of the HTTP stack.
    fn of_healthz_percent(&self, phase: &Phase) -> Option<f64> {
        let healthz = self.healthz.tally.per_sec(self.duration);
        (healthz > 0.0).then(|| phase.tally.per_sec(self.duration) / healthz * 100.0)
    }
}

pub fn print_table(args: &BenchArgs, reports: &[Report]) {
    let columns = [
        "backend",
        "request",
        "answered/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "other",
        "of healthz",
        "server CPU µs",
    ];
    let rows: Vec<[String; 10]> = reports
        .iter()
        .flat_map(|r| {
            r.phases().map(|(what, _, phase)| {
                let t = &phase.tally;
                [
                    r.backend.name().to_owned(),
                    what.to_owned(),
                    format!("{:.0}", t.per_sec(r.duration)),
                    ms(t.percentile_ms(50.0)),
                    ms(t.percentile_ms(90.0)),
                    ms(t.percentile_ms(99.0)),
                    ms(t.percentile_ms(100.0)),
                    t.other_total().to_string(),
                    r.of_healthz_percent(phase).map_or_else(|| "-".to_owned(), |p| format!("{p:.1}%")),
                    server_us(phase),
                ]
            })
        })
        .collect();
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| rows.iter().map(|row| row[i].chars().count()).chain([columns[i].chars().count()]).max().unwrap_or(0))
        .collect();
    let line = |cells: &[&str]| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, &w)| format!("{c:<w$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(&columns);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
    for r in reports {
        for (what, expected, phase) in r.phases() {
            if !phase.tally.others.is_empty() {
                println!("{}: {what} answered other than {expected}: {}", r.backend.name(), by_status(&phase.tally));
            }
        }
        let p = &r.processing;
        println!(
            "{}: {} webhook deliveries were stored but not yet processed when the load stopped; processed in {:.1} s{}",
            r.backend.name(),
            p.left,
            p.took.as_secs_f64(),
            p.per_sec().map_or_else(String::new, |n| format!(" ({n:.0}/s)")),
        );
    }
    println!(
        "{} connections, {} s warm-up + {} s measured per phase; latencies are of the expected answers \
         (200, 202, 200); the load generator shares this machine's {} cores with the server; server CPU is \
         the process's CPU time less the load generator's thread's, per answer.",
        args.connections,
        args.warmup_secs,
        args.duration_secs,
        cores()
    );
}

/// A phase's server CPU per answer, as the table shows it.
pub fn server_us(phase: &Phase) -> String {
    phase.cpu_us_per_request().map_or_else(|| "-".to_owned(), |(server, _)| format!("{server:.1}"))
}

/// Milliseconds as the table shows them.
pub fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"))
}

fn by_status(tally: &Tally) -> String {
    tally.others.iter().map(|(status, n)| format!("{status} × {n}")).collect::<Vec<_>>().join(", ")
}

pub fn to_json(args: &BenchArgs, reports: &[Report]) -> Value {
    let phase = |r: &Report, p: &Phase| {
        let t = &p.tally;
        let cpu = p.cpu_us_per_request();
        json!({
            "per_sec": t.per_sec(r.duration),
            "answered": t.latencies_us.len(),
            "latency_ms": {
                "p50": t.percentile_ms(50.0),
                "p90": t.percentile_ms(90.0),
                "p99": t.percentile_ms(99.0),
                "max": t.percentile_ms(100.0),
            },
            "other_statuses": t.others.iter().map(|(s, n)| (s.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
            "of_healthz_percent": r.of_healthz_percent(p),
            "cpu_us_per_request": {
                "server": cpu.map(|(server, _)| server),
                "load_generator": cpu.map(|(_, load)| load),
            },
        })
    };
    let results: Vec<Value> = reports
        .iter()
        .map(|r| {
            json!({
                "backend": r.backend.name(),
                "healthz": phase(r, &r.healthz),
                "sends": phase(r, &r.sends),
                "webhooks": phase(r, &r.webhooks),
                "webhook_processing": {
                    "left_when_load_stopped": r.processing.left,
                    "drained_secs": r.processing.took.as_secs_f64(),
                    "per_sec": r.processing.per_sec(),
                },
            })
        })
        .collect();
    json!({
        "connections": args.connections,
        "warmup_secs": args.warmup_secs,
        "duration_secs": args.duration_secs,
        "cores": cores(),
        "results": results,
    })
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}
