//! Progress on stderr: a bar on a terminal, else a line every few seconds (so that a run
//! captured to a file still shows it is alive).

use indicatif::ProgressBar;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

const LINE_EVERY: Duration = Duration::from_secs(10);

pub struct Progress {
    label: String,
    bar: Option<ProgressBar>,
    last_line: Instant,
    started: Instant,
}

impl Progress {
    pub fn new(label: &str, total: u64) -> Progress {
        let bar = std::io::stderr()
            .is_terminal()
            .then(|| heal_clikit::output::progress(label, total));
        Progress {
            label: label.to_string(),
            bar,
            last_line: Instant::now(),
            started: Instant::now(),
        }
    }

    pub fn set(&mut self, position: u64, total: u64) {
        match &self.bar {
            Some(bar) => {
                bar.set_length(total.max(position));
                bar.set_position(position);
            }
            None => {
                if self.last_line.elapsed() >= LINE_EVERY {
                    self.last_line = Instant::now();
                    eprintln!(
                        "  {}: {}/{} after {:.0} s",
                        self.label,
                        heal_clikit::output::count(position as i64),
                        heal_clikit::output::count(total.max(position) as i64),
                        self.started.elapsed().as_secs_f64()
                    );
                }
            }
        }
    }

    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

/// A phase starting, on stderr.
pub fn phase(text: &str) {
    eprintln!("» {text}");
}
