//! A progress bar on stderr, drawn by hand: on a terminal one line redrawn in place with `\r`
//! (`[#########           ] 45%  4,500/10,000  120/s  ETA 46s`); otherwise a plain line at
//! most every two seconds and one at the end, so a log is not flooded.

use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Characters between the brackets.
const WIDTH: usize = 20;
/// How often a terminal's line is redrawn, at most.
const TTY_EVERY: Duration = Duration::from_millis(100);
/// How often a plain line is printed, at most.
const PLAIN_EVERY: Duration = Duration::from_secs(2);
/// The rate is what was done over this last stretch of time.
const RATE_WINDOW: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Rows, recipients: `4,500/10,000  120/s`.
    Count,
    /// `12.0 MiB/40.0 MiB  3.1 MiB/s`.
    Bytes,
}

pub struct Bar {
    unit: Unit,
    tty: bool,
    done: u64,
    total: Option<u64>,
    detail: String,
    started: Instant,
    /// `done` when the bar started: the rate counts only what it saw being done.
    first: u64,
    samples: VecDeque<(Instant, u64)>,
    last_draw: Option<Instant>,
    /// What the last draw showed: the end is not printed twice.
    last_drawn: Option<(u64, Option<u64>, String)>,
    /// A terminal line is drawn and not ended.
    open: bool,
}

impl Bar {
    pub fn new(unit: Unit, total: Option<u64>) -> Self {
        Self {
            unit,
            tty: std::io::stderr().is_terminal(),
            done: 0,
            total,
            detail: String::new(),
            started: Instant::now(),
            first: 0,
            samples: VecDeque::new(),
            last_draw: None,
            last_drawn: None,
            open: false,
        }
    }

    /// Where it stands now, with `detail` after the figures; drawn when a draw is due.
    pub fn set(&mut self, done: u64, total: Option<u64>, detail: impl Into<String>) {
        let now = Instant::now();
        if self.samples.is_empty() {
            self.first = done;
        }
        self.done = done;
        self.total = total;
        self.detail = detail.into();
        self.samples.push_back((now, done));
        while self.samples.len() > 2 && self.samples.front().is_some_and(|(t, _)| now - *t > RATE_WINDOW) {
            self.samples.pop_front();
        }
        let every = if self.tty { TTY_EVERY } else { PLAIN_EVERY };
        if self.last_draw.is_none_or(|t| now - t >= every) {
            self.draw(self.rate(now));
        }
    }

    /// Draws the last state unless it is drawn already (whatever the time since the last draw),
    /// with the average rate over the bar's whole life, and ends the line.
    pub fn finish(&mut self) {
        if self.last_drawn != Some((self.done, self.total, self.detail.clone())) {
            let elapsed = self.started.elapsed().as_secs_f64();
            let rate = (elapsed >= 0.2).then(|| self.done.saturating_sub(self.first) as f64 / elapsed);
            self.draw(rate);
        }
        self.end_line();
    }

    /// A line of its own on stderr, above the bar: on a terminal the bar is cleared first and
    /// drawn again after.
    pub fn note(&mut self, line: &str) {
        let reopen = self.open;
        {
            let mut err = std::io::stderr().lock();
            let _ = if reopen { writeln!(err, "\r{line}\x1b[K") } else { writeln!(err, "{line}") };
        }
        self.open = false;
        if reopen {
            self.draw(self.rate(Instant::now()));
        }
    }

    fn rate(&self, now: Instant) -> Option<f64> {
        let (&(t0, d0), &(t1, d1)) = (self.samples.front()?, self.samples.back()?);
        let span = (t1 - t0).as_secs_f64();
        if span >= 1.0 {
            return Some(d1.saturating_sub(d0) as f64 / span);
        }
        let elapsed = (now - self.started).as_secs_f64();
        (elapsed >= 1.0).then(|| self.done.saturating_sub(self.first) as f64 / elapsed)
    }

    fn draw(&mut self, rate: Option<f64>) {
        let line = render(self.unit, self.done, self.total, rate, &self.detail);
        let mut err = std::io::stderr().lock();
        if self.tty {
            let line: String = line.chars().take(columns().saturating_sub(1).max(WIDTH + 8)).collect();
            let _ = write!(err, "\r{line}\x1b[K");
            self.open = true;
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
        self.last_draw = Some(Instant::now());
        self.last_drawn = Some((self.done, self.total, self.detail.clone()));
    }

    fn end_line(&mut self) {
        if self.open {
            let _ = writeln!(std::io::stderr());
            self.open = false;
        }
    }
}

impl Drop for Bar {
    /// Whatever is printed next (an error) starts on a line of its own.
    fn drop(&mut self) {
        self.end_line();
    }
}

/// The terminal's width on stderr.
fn columns() -> usize {
    #[cfg(unix)]
    if let Ok(size) = rustix::termios::tcgetwinsize(std::io::stderr())
        && size.ws_col > 0
    {
        return usize::from(size.ws_col);
    }
    100
}

/// One line of the bar: `[#####     ] 50%  5/10  2/s  ETA 3s  detail`; without a total, the
/// figure and the rate alone.
pub fn render(unit: Unit, done: u64, total: Option<u64>, rate: Option<f64>, detail: &str) -> String {
    let mut line = String::new();
    match total {
        Some(total) => {
            let shown = done.min(total);
            let filled = if total == 0 { WIDTH } else { (shown as u128 * WIDTH as u128 / total as u128) as usize };
            let percent = if total == 0 { 100 } else { shown as u128 * 100 / total as u128 };
            line.push_str(&format!(
                "[{}{}] {percent:>3}%  {}/{}",
                "#".repeat(filled),
                " ".repeat(WIDTH - filled),
                amount(unit, done),
                amount(unit, total)
            ));
        }
        None => line.push_str(&amount(unit, done)),
    }
    if let Some(rate) = rate.filter(|r| r.is_finite()) {
        let per_second = match unit {
            Unit::Count => thousands(rate.round() as u64),
            Unit::Bytes => bytes(rate as u64),
        };
        line.push_str(&format!("  {per_second}/s"));
        if let Some(total) = total.filter(|t| done < *t) {
            match rate {
                r if r > 0.0 => {
                    line.push_str(&format!("  ETA {}", duration(((total - done) as f64 / r).ceil() as u64)))
                }
                _ => line.push_str("  ETA -"),
            }
        }
    }
    if !detail.is_empty() {
        line.push_str("  ");
        line.push_str(detail);
    }
    line
}

fn amount(unit: Unit, n: u64) -> String {
    match unit {
        Unit::Count => thousands(n),
        Unit::Bytes => bytes(n),
    }
}

/// `10,000`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1 row`, `10,000 rows`.
pub fn counted(n: u64, noun: &str) -> String {
    format!("{} {noun}{}", thousands(n), if n == 1 { "" } else { "s" })
}

/// `512 B`, `1.5 KiB`, `40.0 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `46s`, `2m 03s`, `1h 02m`.
pub fn duration(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {:02}s", s / 60, s % 60),
        s => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_shows_the_bar_the_share_the_figures_the_rate_and_what_is_left() {
        assert_eq!(
            render(Unit::Count, 4_500, Some(10_000), Some(120.0), ""),
            "[#########           ]  45%  4,500/10,000  120/s  ETA 46s"
        );
        assert_eq!(
            render(Unit::Count, 10_000, Some(10_000), Some(120.0), "completed"),
            "[####################] 100%  10,000/10,000  120/s  completed"
        );
        assert_eq!(render(Unit::Count, 0, Some(0), None, ""), "[####################] 100%  0/0");
        assert_eq!(render(Unit::Count, 3, Some(10), Some(0.0), ""), "[######              ]  30%  3/10  0/s  ETA -");
        assert_eq!(render(Unit::Count, 1_234, None, Some(10.4), "rows"), "1,234  10/s  rows");
        assert_eq!(
            render(Unit::Bytes, 3 << 20, Some(12 << 20), Some(1_572_864.0), "uploading"),
            "[#####               ]  25%  3.0 MiB/12.0 MiB  1.5 MiB/s  ETA 6s  uploading"
        );
    }

    #[test]
    fn figures_read_as_people_write_them() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!((counted(1, "row"), counted(2_000, "row")), ("1 row".into(), "2,000 rows".into()));
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(duration(46), "46s");
        assert_eq!(duration(123), "2m 03s");
        assert_eq!(duration(3720), "1h 02m");
    }
}
