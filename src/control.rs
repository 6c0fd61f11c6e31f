//! The control socket's client half and its protocol: how `difyctl certs renew`, `ps` and
//! `status` talk to the difyctl that is serving. A Unix socket at `<state>/difyctl.sock`,
//! 0600, one JSON line in, one JSON line out. The serving half is `server/control.rs`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("another difyctl is already running with this state directory (its control socket is {})", path.display())]
    AlreadyRunning { path: PathBuf },
    #[error("control socket {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the running difyctl gave no usable answer: {0}")]
    BadReply(String),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    Renew {
        force: bool,
    },
    Status,
    /// Everything `difyctl status` shows.
    Overview,
    /// `difyctl restart` / `up --no-proxy` are about to restart or recreate these services of
    /// `project`: requests should wait for them (for at most `secs`) rather than get a 502.
    Expect {
        project: String,
        services: Vec<String>,
        secs: u64,
        /// The asking process: its notice ends when it does (a killed `up`).
        #[serde(default)]
        pid: Option<u32>,
    },
    /// They are done: back to what Docker says.
    Clear {
        project: String,
        services: Vec<String>,
    },
}

/// What the running difyctl says about itself (`ps`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub pid: u32,
    /// Unix seconds.
    pub started: u64,
    pub http: String,
    pub https: String,
    /// The admin listener's address, when there is one.
    #[serde(default)]
    pub admin: Option<String>,
    /// The compose project `up` runs; none for `proxy`.
    pub project: Option<String>,
    /// Service -> upstream address it is served from now (none: not running).
    pub upstreams: Vec<(String, Option<String>)>,
}

pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join("difyctl.sock")
}

/// Tells the running difyctl (if it serves `project`) that `services` are about to restart:
/// `true` when one took note. Errors are not the caller's problem: without a serving
/// difyctl there is nobody to tell.
pub async fn expect(state_dir: &Path, project: &str, services: &[String], secs: u64) -> bool {
    let request = Request::Expect {
        project: project.to_string(),
        services: services.to_vec(),
        secs,
        pid: Some(std::process::id()),
    };
    matches!(
        ask::<serde_json::Value>(state_dir, &request).await,
        Ok(Some(_))
    )
}

/// Ends what `expect` said.
pub async fn clear(state_dir: &Path, project: &str, services: &[String]) {
    let request = Request::Clear {
        project: project.to_string(),
        services: services.to_vec(),
    };
    let _ = ask::<serde_json::Value>(state_dir, &request).await;
}

/// Asks the running difyctl about itself. `Ok(None)` when none is running.
pub async fn request_status(state_dir: &Path) -> Result<Option<Status>, ControlError> {
    ask(state_dir, &Request::Status).await
}

/// One request line, one reply line. `Ok(None)` when nothing answers on the socket; an
/// `{"error": ...}` reply is an error.
pub async fn ask<T: serde::de::DeserializeOwned>(
    state_dir: &Path,
    request: &Request,
) -> Result<Option<T>, ControlError> {
    let path = socket_path(state_dir);
    let Ok(stream) = UnixStream::connect(&path).await else {
        return Ok(None);
    };
    let io = |source| ControlError::Io {
        path: path.clone(),
        source,
    };
    let (read, mut write) = stream.into_split();
    let request =
        serde_json::to_string(request).map_err(|e| ControlError::BadReply(e.to_string()))?;
    write.write_all(request.as_bytes()).await.map_err(io)?;
    write.write_all(b"\n").await.map_err(io)?;
    let mut line = String::new();
    BufReader::new(read)
        .read_line(&mut line)
        .await
        .map_err(io)?;
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
        if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
            return Err(ControlError::BadReply(e.to_string()));
        }
    }
    serde_json::from_str(&line)
        .map(Some)
        .map_err(|e| ControlError::BadReply(format!("{e}: {line}")))
}
