//! Progress for long operations (a large `consume -n`, a reset across many partitions): one line
//! on stderr, redrawn at most every [`REDRAW_EVERY`], and only when stderr is a terminal, so
//! pipes, files and CI logs stay quiet.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How often the line is redrawn.
const REDRAW_EVERY: Duration = Duration::from_millis(100);

#[derive(Debug)]
pub struct Progress {
    label: &'static str,
    unit: &'static str,
    total: Option<u64>,
    done: u64,
    enabled: bool,
    last_draw: Option<Instant>,
}

impl Progress {
    /// A progress line that shows only when stderr is a terminal and `wanted` holds.
    pub fn new(label: &'static str, unit: &'static str, total: Option<u64>, wanted: bool) -> Self {
        Progress {
            label,
            unit,
            total,
            done: 0,
            enabled: wanted && std::io::stderr().is_terminal(),
            last_draw: None,
        }
    }

    pub fn inc(&mut self, n: u64) {
        self.set(self.done + n);
    }

    pub fn set(&mut self, done: u64) {
        self.done = done;
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if self.last_draw.is_some_and(|t| now.duration_since(t) < REDRAW_EVERY) {
            return;
        }
        self.last_draw = Some(now);
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K{}", line(self.label, self.unit, self.done, self.total));
        let _ = err.flush();
    }

    /// Clears the line.
    pub fn finish(&mut self) {
        if self.enabled && self.last_draw.is_some() {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
        }
        self.enabled = false;
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The text of the line: `consuming: 1200/5000 records (24%)`.
fn line(label: &str, unit: &str, done: u64, total: Option<u64>) -> String {
    match total {
        Some(t) if t > 0 => format!("{label}: {done}/{t} {unit} ({}%)", done.min(t) * 100 / t),
        _ => format!("{label}: {done} {unit}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_show_counts_and_percent() {
        assert_eq!(
            line("consuming", "records", 1200, Some(5000)),
            "consuming: 1200/5000 records (24%)"
        );
        assert_eq!(line("producing", "records", 7, None), "producing: 7 records");
    }
}
