//! The load generator: keep-alive connections in closed loops on a thread of its own, the
//! answers counted inside a measured window, and the CPU time the window took.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::task::JoinSet;

use crate::http::HttpConnection;
use crate::workload::Workload;

#[derive(Clone, Copy)]
pub struct Plan {
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
}

/// Runs `plan` on a thread of its own, so the load generator's CPU time is one thread's (told
/// apart from the server's by the thread's own clock) and it cannot take more than one core.
pub async fn load(addr: SocketAddr, workload: Workload, plan: Plan) -> anyhow::Result<Phase> {
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new().name("bench-client".into()).spawn(move || {
        let tally = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the load generator's runtime")
            .and_then(|rt| rt.block_on(drive_all(addr, workload, plan)));
        let _ = done.send(tally);
    })?;
    result.await.context("the load generator's thread died")?
}

async fn drive_all(addr: SocketAddr, workload: Workload, plan: Plan) -> anyhow::Result<Phase> {
    // Connected before the clock starts: the figures are of requests, not of TCP handshakes.
    let mut connections = Vec::with_capacity(plan.connections);
    for _ in 0..plan.connections {
        connections.push(HttpConnection::open(addr).await?);
    }
    let start = Instant::now() + plan.warmup;
    let window = Window { start, end: start + plan.duration };
    let cpu = tokio::spawn(cpu_used(window));
    let mut tasks = JoinSet::new();
    for (index, connection) in connections.into_iter().enumerate() {
        tasks.spawn(drive(addr, connection, workload.clone(), index, plan.connections, window));
    }
    let mut total = Tally::default();
    while let Some(tally) = tasks.join_next().await {
        total.merge(tally.context("a load task panicked")??);
    }
    total.latencies_us.sort_unstable();
    Ok(Phase { tally: total, cpu: cpu.await.context("the CPU clock task panicked")? })
}

/// A phase's answers, and the CPU time spent while they were counted.
pub struct Phase {
    pub tally: Tally,
    cpu: CpuUse,
}

/// CPU time used during the measured window: by the whole process, and by the load
/// generator's thread (the rest is the server's).
struct CpuUse {
    process: Duration,
    load_generator: Duration,
}

/// Read on the load generator's thread (its runtime has only that one), at the window's edges.
async fn cpu_used(window: Window) -> CpuUse {
    use rustix::time::{ClockId, clock_gettime};
    let read = || {
        // CPU clocks start at zero: never negative.
        let clock = |id| Duration::try_from(clock_gettime(id)).unwrap_or_default();
        (clock(ClockId::ProcessCPUTime), clock(ClockId::ThreadCPUTime))
    };
    tokio::time::sleep_until(window.start.into()).await;
    let (process, thread) = read();
    tokio::time::sleep_until(window.end.into()).await;
    let (process_end, thread_end) = read();
    CpuUse { process: process_end.saturating_sub(process), load_generator: thread_end.saturating_sub(thread) }
}

impl Phase {
    /// Microseconds of CPU per answer (expected or not): the server's, the load generator's.
    pub fn cpu_us_per_request(&self) -> Option<(f64, f64)> {
        let answered = self.tally.latencies_us.len() as u64 + self.tally.other_total();
        (answered > 0).then(|| {
            let per = |d: Duration| d.as_secs_f64() * 1e6 / answered as f64;
            (per(self.cpu.process.saturating_sub(self.cpu.load_generator)), per(self.cpu.load_generator))
        })
    }
}

#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    end: Instant,
}

/// One connection's closed loop: a request, its answer, the next request. An answer counts when
/// it arrives inside the window, so the in-flight requests at either edge balance out.
async fn drive(
    addr: SocketAddr,
    mut connection: HttpConnection,
    workload: Workload,
    index: usize,
    stride: usize,
    window: Window,
) -> anyhow::Result<Tally> {
    let mut tally = Tally { latencies_us: Vec::with_capacity(4096), ..Tally::default() };
    // Connections take interleaved counters, so together they go through every value in turn.
    let mut n = index;
    let mut request = workload.request.clone();
    loop {
        let sent_at = Instant::now();
        if sent_at >= window.end {
            return Ok(tally);
        }
        workload.prepare(&mut request, n);
        n += stride;
        let answer = connection.exchange(&request).await?;
        let answered_at = Instant::now();
        if answered_at >= window.start && answered_at < window.end {
            tally.record(answer.status, workload.expected, answered_at - sent_at);
        }
        if answer.close {
            connection = HttpConnection::open(addr).await?;
        }
    }
}

/// Latencies of the expected answers, and how many of each other status came.
#[derive(Default)]
pub struct Tally {
    pub latencies_us: Vec<u32>,
    pub others: BTreeMap<u16, u64>,
}

impl Tally {
    fn record(&mut self, status: u16, expected: u16, latency: Duration) {
        if status == expected {
            self.latencies_us.push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
        } else {
            *self.others.entry(status).or_default() += 1;
        }
    }

    fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        for (status, n) in other.others {
            *self.others.entry(status).or_default() += n;
        }
    }

    pub fn per_sec(&self, duration: Duration) -> f64 {
        self.latencies_us.len() as f64 / duration.as_secs_f64()
    }

    pub fn other_total(&self) -> u64 {
        self.others.values().sum()
    }

    /// Nearest-rank percentile in milliseconds; needs `latencies_us` sorted.
    pub fn percentile_ms(&self, p: f64) -> Option<f64> {
        let n = self.latencies_us.len();
        let rank = ((p / 100.0 * n as f64).ceil() as usize).clamp(1, n.max(1));
        self.latencies_us.get(rank - 1).map(|&us| f64::from(us) / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_cpu_is_the_process_less_the_load_generator_per_answer() {
        let tally = Tally { latencies_us: vec![1_000; 300], others: BTreeMap::from([(503, 100)]) };
        let cpu = CpuUse { process: Duration::from_millis(50), load_generator: Duration::from_millis(10) };
        let (server, load) = Phase { tally, cpu }.cpu_us_per_request().unwrap();
        assert_eq!((server, load), (100.0, 25.0));
        let idle = Phase {
            tally: Tally::default(),
            cpu: CpuUse { process: Duration::from_millis(5), load_generator: Duration::ZERO },
        };
        assert_eq!(idle.cpu_us_per_request(), None);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let tally = Tally { latencies_us: (1..=100).map(|ms| ms * 1000).collect(), others: BTreeMap::new() };
        assert_eq!(tally.percentile_ms(50.0), Some(50.0));
        assert_eq!(tally.percentile_ms(99.0), Some(99.0));
        assert_eq!(tally.percentile_ms(100.0), Some(100.0));
        assert_eq!(Tally::default().percentile_ms(50.0), None);
    }
}
