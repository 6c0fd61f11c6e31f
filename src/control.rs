//! The control socket: how `difyctl certs renew` and `difyctl ps` talk to the difyctl that is
//! serving. A Unix socket at `<state>/difyctl.sock`, 0600, one JSON line in, one JSON line out.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, watch};

use crate::acme::{ControlRequest, RenewOutcome};

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

/// What the answers are read from: the serving difyctl's live view.
pub type StatusSource = std::sync::Arc<crate::server::live::Live>;

fn expected_for<'a>(
    live: &'a crate::server::live::Live,
    project: &str,
) -> Option<&'a crate::upstreams::Expected> {
    live.project
        .as_ref()
        .filter(|p| p.name == project)
        .map(|p| &p.expected)
}

fn status_of(live: &crate::server::live::Live) -> Status {
    Status {
        pid: std::process::id(),
        started: live.started,
        http: live.http.to_string(),
        https: live.https.to_string(),
        admin: live.admin.map(|a| a.to_string()),
        project: live.project.as_ref().map(|p| p.name.clone()),
        upstreams: live
            .routes
            .load()
            .upstreams()
            .into_iter()
            .map(|(s, a)| (s.to_string(), a))
            .collect(),
    }
}

/// The longest request line read, and how long a client has to send it.
const MAX_REQUEST: u64 = 64 << 10;
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join("difyctl.sock")
}

/// Binds the socket (refusing when another difyctl answers on it; removing a stale one).
pub async fn bind(state_dir: &Path) -> Result<UnixListener, ControlError> {
    let path = socket_path(state_dir);
    let io = |source| ControlError::Io {
        path: path.clone(),
        source,
    };
    if UnixStream::connect(&path).await.is_ok() {
        return Err(ControlError::AlreadyRunning { path });
    }
    let _ = std::fs::remove_file(&path);
    crate::fsutil::create_private_dir(state_dir).map_err(io)?;
    let listener = UnixListener::bind(&path).map_err(io)?;
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(io)?;
    Ok(listener)
}

/// Answers requests until `shutdown`, passing renewals to the certificate manager.
pub async fn serve(
    listener: UnixListener,
    renew: Option<mpsc::Sender<ControlRequest>>,
    status: StatusSource,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let renew = renew.clone();
                let status = status.clone();
                tokio::spawn(async move {
                    if let Err(e) = answer(stream, renew, status).await {
                        tracing::debug!("control connection: {e}");
                    }
                });
            }
            _ = crate::stopped(&mut shutdown) => break,
        }
    }
    if let Ok(addr) = listener.local_addr() {
        if let Some(path) = addr.as_pathname() {
            let _ = std::fs::remove_file(path);
        }
    }
}

async fn answer(
    stream: UnixStream,
    renew: Option<mpsc::Sender<ControlRequest>>,
    source: StatusSource,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    // A request is one short line: a client that sends more, or nothing, is cut off.
    let mut reader = BufReader::new(read.take(MAX_REQUEST));
    match tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line)).await {
        Ok(read) => {
            read?;
        }
        Err(_) => return Ok(()),
    }
    if !line.ends_with('\n') && line.len() as u64 >= MAX_REQUEST {
        write
            .write_all(error_reply("request too long").as_bytes())
            .await?;
        return write.write_all(b"\n").await;
    }
    let reply = match serde_json::from_str::<Request>(&line) {
        Ok(Request::Renew { force }) => match renew {
            Some(tx) => {
                let (reply, rx) = oneshot::channel();
                let _ = tx.send(ControlRequest::Renew { force, reply }).await;
                match rx.await {
                    Ok(outcome) => serde_json::to_string(&outcome)?,
                    Err(_) => error_reply("the certificate manager stopped"),
                }
            }
            None => error_reply(
                "this difyctl manages no ACME certificate (no domain, or --cert/--key given)",
            ),
        },
        Ok(Request::Status) => serde_json::to_string(&status_of(&source))?,
        Ok(Request::Overview) => serde_json::to_string(&source.overview().await)?,
        Ok(Request::Expect {
            project,
            services,
            secs,
            pid,
        }) => match expected_for(&source, &project) {
            Some(expected) => {
                expected.expect_by(&services, std::time::Duration::from_secs(secs), pid);
                r#"{"ok": true}"#.to_string()
            }
            None => error_reply("this difyctl does not serve that project"),
        },
        Ok(Request::Clear { project, services }) => match expected_for(&source, &project) {
            Some(expected) => {
                expected.clear(&services);
                r#"{"ok": true}"#.to_string()
            }
            None => error_reply("this difyctl does not serve that project"),
        },
        Err(e) => error_reply(&format!("bad request: {e}")),
    };
    write.write_all(reply.as_bytes()).await?;
    write.write_all(b"\n").await
}

fn error_reply(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}

/// Asks the running difyctl to renew. `Ok(None)` when none is running.
pub async fn request_renew(
    state_dir: &Path,
    force: bool,
) -> Result<Option<RenewOutcome>, ControlError> {
    ask(state_dir, &Request::Renew { force }).await
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

/// Asks the running difyctl for its overview (`difyctl status`). `Ok(None)` when none runs.
pub async fn request_overview(
    state_dir: &Path,
) -> Result<Option<crate::server::live::Overview>, ControlError> {
    ask(state_dir, &Request::Overview).await
}

/// Asks the running difyctl about itself. `Ok(None)` when none is running.
pub async fn request_status(state_dir: &Path) -> Result<Option<Status>, ControlError> {
    ask(state_dir, &Request::Status).await
}

/// One request line, one reply line. `Ok(None)` when nothing answers on the socket; an
/// `{"error": ...}` reply is an error.
async fn ask<T: serde::de::DeserializeOwned>(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::{RouteTable, Routes, Upstreams};

    /// Regression (hardening #10): the control socket read a whole line with no size limit.
    #[tokio::test]
    async fn control_socket_refuses_an_endless_request_and_keeps_answering() {
        let dir = std::env::temp_dir().join(format!("difyctl-control-{}", std::process::id()));
        let listener = bind(&dir).await.unwrap();
        let (_stop_tx, stop) = watch::channel(false);
        let config = crate::config::Config::merge(
            &crate::config::Flags::default(),
            Default::default(),
            None,
        )
        .unwrap();
        let status = std::sync::Arc::new(crate::server::live::Live::new(
            &config,
            "127.0.0.1:80".parse().unwrap(),
            "127.0.0.1:443".parse().unwrap(),
            None,
            None,
            Routes::new(RouteTable::dify(&Upstreams::default())),
            Default::default(),
            Default::default(),
        ));
        tokio::spawn(serve(listener, None, status, stop));
        let mut flood = UnixStream::connect(socket_path(&dir)).await.unwrap();
        let _ = flood.write_all(&vec![b'x'; 200 << 10]).await;
        let mut reply = String::new();
        let _ = BufReader::new(&mut flood).read_line(&mut reply).await;
        assert!(reply.contains("too long") || reply.is_empty(), "{reply}");
        let status = request_status(&dir)
            .await
            .unwrap()
            .expect("still answering");
        assert_eq!(status.https, "127.0.0.1:443");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
