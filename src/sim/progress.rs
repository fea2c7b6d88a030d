//! What a long simulation shows on stderr while it runs: a one-line
//! progress bar per batch and an overwritten status line.

use std::io::Write;
use std::time::{Duration, Instant};

/// Overwrite the current stderr line.
pub fn status(text: &str) {
    let mut err = std::io::stderr();
    let _ = write!(err, "\r{text:<70}");
    let _ = err.flush();
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
        if self.last.elapsed() < Duration::from_millis(100) && done < total {
            return;
        }
        self.last = Instant::now();
        let width: usize = 30;
        let filled = if total == 0 {
            width
        } else {
            (done.min(total) as usize * width) / total as usize
        };
        let mut err = std::io::stderr();
        let _ = write!(
            err,
            "\r{:<28} [{}{}] {done}/{total}",
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
            self.last = Instant::now() - Duration::from_secs(1);
            let total = self.total;
            self.set(total, total);
            eprintln!();
        }
    }
}
