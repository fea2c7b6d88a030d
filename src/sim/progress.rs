//! What a long simulation shows on stderr while it runs: a one-line
//! progress bar per batch and an overwritten status line on a terminal;
//! in a log (stderr not a terminal), a status line every 10 s and each
//! bar once, when it completes.

use std::io::{IsTerminal, Write};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How often a status line is written when stderr is not a terminal.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Whether stderr is a terminal (lines are redrawn in place).
fn live() -> bool {
    static LIVE: OnceLock<bool> = OnceLock::new();
    *LIVE.get_or_init(|| std::io::stderr().is_terminal())
}

/// Overwrite the current stderr line (on a terminal), or write it as a
/// line of its own at most every [`LOG_EVERY`].
pub fn status(text: &str) {
    let mut err = std::io::stderr();
    if live() {
        let _ = write!(err, "\r{text:<70}");
        let _ = err.flush();
        return;
    }
    static LAST: Mutex<Option<Instant>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if last.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
        *last = Some(Instant::now());
        let _ = writeln!(err, "{text}");
    }
}

/// End the status line (a terminal's cursor is still on it).
pub fn end_status() {
    if live() {
        eprintln!();
    }
}

/// A one-line progress bar on stderr, redrawn at most ten times a second.
pub struct Bar {
    label: String,
    total: u64,
    last: Instant,
    shown: bool,
}

impl Bar {
    pub fn new(label: &str, total: u64) -> Bar {
        Bar {
            label: label.to_string(),
            total,
            last: Instant::now() - Duration::from_secs(1),
            shown: false,
        }
    }

    pub fn set(&mut self, done: u64, total: u64) {
        self.total = total;
        let soon = self.last.elapsed() < Duration::from_millis(100) && done < total;
        if live() && !soon {
            self.draw(done);
        }
    }

    fn draw(&mut self, done: u64) {
        self.last = Instant::now();
        let (width, total) = (30usize, self.total);
        let filled = if total == 0 {
            width
        } else {
            (done.min(total) as usize * width) / total as usize
        };
        let mut err = std::io::stderr();
        let _ = write!(
            err,
            "{}{:<28} [{}{}] {done}/{total}",
            if live() { "\r" } else { "" },
            self.label,
            "#".repeat(filled),
            " ".repeat(width - filled)
        );
        let _ = err.flush();
        self.shown = true;
    }

    /// Show the bar full and end its line.
    pub fn finish(&mut self) {
        if self.shown || self.total > 0 {
            self.draw(self.total);
            eprintln!();
        }
    }
}
