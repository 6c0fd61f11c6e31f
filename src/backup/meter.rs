//! Progress of a backup or restore in bytes: one indicatif line with the part being copied,
//! bytes so far and the rate on a terminal; otherwise one plain line per finished part (and a
//! line every 30 s inside a long one), for journald and CI logs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Meter {
    bar: Option<ProgressBar>,
    quiet: bool,
    part: Mutex<(String, Instant, Instant)>,
    part_bytes: AtomicU64,
    pub total: AtomicU64,
}

impl Meter {
    /// A bar on a terminal, plain lines otherwise; `quiet` prints nothing (`--json`, `up`'s
    /// scheduled backups, which log instead).
    pub fn new(quiet: bool) -> Meter {
        let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let bar = (tty && !quiet).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            // Invariant: the template is a constant known to parse.
            let style = ProgressStyle::with_template(
                "{spinner} {msg} {bytes} ({binary_bytes_per_sec}) {elapsed}",
            )
            .expect("valid template");
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        let now = Instant::now();
        Meter {
            bar,
            quiet,
            part: Mutex::new((String::new(), now, now)),
            part_bytes: AtomicU64::new(0),
            total: AtomicU64::new(0),
        }
    }

    pub fn begin(&self, what: &str) {
        let now = Instant::now();
        *self.part.lock().unwrap_or_else(|p| p.into_inner()) = (what.to_string(), now, now);
        self.part_bytes.store(0, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.set_message(what.to_string());
        }
    }

    pub fn add(&self, bytes: u64) {
        self.part_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.total.fetch_add(bytes, Ordering::Relaxed);
        match &self.bar {
            Some(bar) => bar.inc(bytes),
            None if !self.quiet => {
                let mut part = self.part.lock().unwrap_or_else(|p| p.into_inner());
                if part.2.elapsed() >= Duration::from_secs(30) {
                    part.2 = Instant::now();
                    eprintln!(
                        "{}: {} so far",
                        part.0,
                        HumanBytes(self.part_bytes.load(Ordering::Relaxed))
                    );
                }
            }
            None => {}
        }
    }

    /// Ends the part with a note (`paused api for 0.3 s`).
    pub fn end(&self, note: &str) {
        let (what, start, _) = self.part.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let bytes = self.part_bytes.load(Ordering::Relaxed);
        // A part that moves no bytes itself (verify reads the archive) shows only its time.
        let size = if bytes == 0 {
            String::new()
        } else {
            format!("{} in ", HumanBytes(bytes))
        };
        let line = format!(
            "{what}: {size}{:.1} s{}{note}",
            start.elapsed().as_secs_f64(),
            if note.is_empty() { "" } else { ", " },
        );
        match &self.bar {
            Some(bar) => bar.println(line),
            None if !self.quiet => eprintln!("{line}"),
            None => {}
        }
    }

    pub fn say(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None if !self.quiet => eprintln!("{line}"),
            None => tracing::info!("{line}"),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
