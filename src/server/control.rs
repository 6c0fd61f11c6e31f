//! The control socket's serving half: bound by `Server::start`, answering from the live view
//! and passing renewals to the certificate manager. The protocol and the client are in
//! `crate::control`.

use std::path::Path;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, watch};

use crate::acme::{ControlRequest, RenewOutcome};
use crate::control::{ask, socket_path, ControlError, Request, Status};

/// What the answers are read from: the serving difyctl's live view.
pub type StatusSource = std::sync::Arc<super::live::Live>;

fn expected_for<'a>(
    live: &'a super::live::Live,
    project: &str,
) -> Option<&'a crate::upstreams::Expected> {
    live.project
        .as_ref()
        .filter(|p| p.name == project)
        .map(|p| &p.expected)
}

fn status_of(live: &super::live::Live) -> Status {
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

/// Asks the running difyctl for its overview (`difyctl status`). `Ok(None)` when none runs.
pub async fn request_overview(
    state_dir: &Path,
) -> Result<Option<super::live::Overview>, ControlError> {
    ask(state_dir, &Request::Overview).await
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
        let status = crate::control::request_status(&dir)
            .await
            .unwrap()
            .expect("still answering");
        assert_eq!(status.https, "127.0.0.1:443");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
