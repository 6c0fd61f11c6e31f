//! Progress of long work (pulls, starts, health waits): one indicatif line per image or
//! service on a terminal; plain `name: state` lines otherwise (CI logs, journald), each printed
//! once when the state changes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Clone)]
pub struct Progress {
    multi: Option<MultiProgress>,
    width: usize,
}

impl Progress {
    /// Bars when stderr is a terminal; `width` aligns the names.
    pub fn new(width: usize) -> Progress {
        let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
        Progress {
            multi: tty.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            width,
        }
    }

    /// No output at all (tests, `--json`).
    pub fn hidden() -> Progress {
        Progress {
            multi: Some(MultiProgress::with_draw_target(ProgressDrawTarget::hidden())),
            width: 0,
        }
    }

    pub fn line(&self, name: &str) -> Line {
        let bar = self.multi.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new_spinner());
            // Invariant: the template is a constant known to parse.
            let style =
                ProgressStyle::with_template("{spinner} {prefix} {msg}").expect("valid template");
            bar.set_style(style);
            bar.set_prefix(format!("{name:<w$}", w = self.width));
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Line {
            name: format!("{name:<w$}", w = self.width),
            bar,
            last: Arc::new(Mutex::new(String::new())),
        }
    }
}

#[derive(Clone)]
pub struct Line {
    name: String,
    bar: Option<ProgressBar>,
    last: Arc<Mutex<String>>,
}

impl Line {
    pub fn set(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(message.to_string()),
            None => {
                let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
                if *last != message {
                    eprintln!("{}  {message}", self.name);
                    *last = message.to_string();
                }
            }
        }
    }

    /// A wait: the elapsed time ticks on a terminal; plain output says it once.
    pub fn waiting(&self, what: &str, elapsed: Duration) {
        match &self.bar {
            Some(bar) => bar.set_message(format!("{what} ({}s)", elapsed.as_secs())),
            None => self.set(what),
        }
    }

    /// A transfer: `current` of `total` bytes (pulls).
    pub fn bytes(&self, status: &str, current: u64, total: u64) {
        match &self.bar {
            Some(bar) => bar.set_message(format!(
                "{status} {:.1}/{:.1} MB",
                current as f64 / 1e6,
                total as f64 / 1e6
            )),
            None => self.set(status),
        }
    }

    pub fn finish(&self, message: &str) {
        match &self.bar {
            Some(bar) => {
                bar.set_style(
                    ProgressStyle::with_template("  {prefix} {msg}").expect("valid template"),
                );
                bar.finish_with_message(message.to_string());
            }
            None => self.set(message),
        }
    }
}
