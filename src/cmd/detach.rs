//! `difyctl up -d`: the compose habit. The stack is brought up in the foreground, then the
//! proxy and certificate manager keep serving in the background: through the systemd unit when
//! it is installed for this folder, else as a detached difyctl (its own session, no terminal)
//! whose log goes to `<state>/logs/<project>.log` (`difyctl logs difyctl` shows it). `up -d`
//! returns once that difyctl answers on its control socket; `difyctl down` stops it.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

pub fn log_path(state_dir: &Path, project: &str) -> PathBuf {
    state_dir
        .join("logs")
        .join(format!("{}.log", difyctl::fsutil::safe_name(project)))
}

/// Starts the serving difyctl in the background and waits until it answers.
pub async fn serve_in_background(
    project: &str,
    dir: &Path,
    state_dir: &Path,
    wait: Duration,
) -> anyhow::Result<()> {
    if let Some(running) = difyctl::control::request_status(state_dir)
        .await
        .unwrap_or(None)
    {
        if running.project.as_deref() == Some(project) {
            println!(
                "difyctl (pid {}) already serves project {project}",
                running.pid
            );
            return Ok(());
        }
    }
    if systemd_unit_serves(dir) {
        let status = Command::new("systemctl")
            .args(["start", "difyctl.service"])
            .status()
            .context("cannot run systemctl")?;
        anyhow::ensure!(
            status.success(),
            "`systemctl start difyctl` failed: see `journalctl -u difyctl`"
        );
        println!("started the difyctl systemd unit; its log: `journalctl -u difyctl -f`");
        return Ok(());
    }
    let log = log_path(state_dir, project);
    difyctl::fsutil::create_private_dir(log.parent().unwrap_or(state_dir))
        .with_context(|| format!("cannot create {}", log.display()))?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode_private()
        .open(&log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "-d" && a != "--detach")
        .collect();
    let mut cmd = Command::new(std::env::current_exe().context("cannot find difyctl's own path")?);
    cmd.args(&args)
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file);
    // SAFETY: setsid is async-signal-safe and takes no arguments; it detaches the child from
    // this terminal so Ctrl-C or a closed shell does not stop it.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .context("cannot start difyctl in the background")?;
    let deadline = Instant::now() + wait;
    loop {
        if let Some(status) = child.try_wait()? {
            anyhow::bail!(
                "the background difyctl stopped ({status}); its log {} ends with:\n{}",
                log.display(),
                last_lines(&log, 15)
            );
        }
        if let Ok(Some(s)) = difyctl::control::request_status(state_dir).await {
            if s.project.as_deref() == Some(project) {
                println!(
                    "difyctl (pid {}) serves project {project} in the background: https on {}; log {} (`difyctl logs difyctl`); `difyctl down` stops it with the stack",
                    s.pid,
                    s.https,
                    log.display()
                );
                return Ok(());
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the background difyctl did not start serving in time; see {}",
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The systemd unit is installed and its working directory is this install.
fn systemd_unit_serves(dir: &Path) -> bool {
    let Ok(out) = Command::new("systemctl")
        .args([
            "show",
            "-p",
            "WorkingDirectory,LoadState",
            "difyctl.service",
        ])
        .output()
    else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let loaded = text.lines().any(|l| l == "LoadState=loaded");
    let here = std::fs::canonicalize(dir).ok();
    let unit_dir = text
        .lines()
        .find_map(|l| l.strip_prefix("WorkingDirectory="))
        .and_then(|d| std::fs::canonicalize(d).ok());
    loaded && here.is_some() && here == unit_dir
}

pub fn last_lines(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Prints the background difyctl's log (its last `tail` lines), following it with `follow`.
pub async fn show_log(
    state_dir: &Path,
    project: &str,
    follow: bool,
    tail: Option<u64>,
) -> anyhow::Result<()> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let path = log_path(state_dir, project);
    let mut file = std::fs::File::open(&path).with_context(|| {
        format!(
            "no log of a background difyctl for project {project} at {}",
            path.display()
        )
    })?;
    let text = {
        let mut t = String::new();
        file.read_to_string(&mut t)?;
        t
    };
    let lines: Vec<&str> = text.lines().collect();
    let from = tail.map_or(0, |n| lines.len().saturating_sub(n as usize));
    let mut out = std::io::stdout().lock();
    for l in &lines[from..] {
        if writeln!(out, "difyctl  | {l}").is_err() {
            return Ok(());
        }
    }
    drop(out);
    if !follow {
        return Ok(());
    }
    let mut pos = file.seek(SeekFrom::End(0))?;
    let mut partial = String::new();
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let len = std::fs::metadata(&path).map_or(pos, |m| m.len());
        if len < pos {
            pos = 0;
        }
        if len == pos {
            continue;
        }
        file.seek(SeekFrom::Start(pos))?;
        let mut chunk = String::new();
        file.read_to_string(&mut chunk)?;
        pos = len;
        partial.push_str(&chunk);
        let mut out = std::io::stdout().lock();
        while let Some(i) = partial.find('\n') {
            let line: String = partial.drain(..=i).collect();
            if writeln!(out, "difyctl  | {}", line.trim_end()).is_err() {
                return Ok(());
            }
        }
    }
}

trait PrivateMode {
    fn mode_private(&mut self) -> &mut Self;
}

impl PrivateMode for std::fs::OpenOptions {
    fn mode_private(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::mode(self, 0o600)
    }
}
