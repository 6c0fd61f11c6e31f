//! `difyctl exec SERVICE CMD...`: a command in the service's running container, as `docker
//! compose exec` runs it: stdin passed on, stdout and stderr kept apart, the command's exit
//! code as difyctl's; on a terminal, a terminal inside too (raw mode while it runs), so Dify's
//! interactive commands work: `difyctl exec api flask reset-password`.

use std::io::{IsTerminal, Read, Write};

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use difyctl::engine::reconcile::{containers_of_services, service_label};

use super::{runtime, Globals};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The service
    service: String,
    /// The command and its arguments
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

impl Args {
    pub fn run(self, g: &Globals) -> anyhow::Result<()> {
        let opts = g.load(Vec::new());
        let project = super::project_name(&opts)?;
        let code = runtime()?
            .block_on(run(&project, &self.service, &self.command))
            .map_err(|e| super::explain_missing(e, &opts))?;
        if code != 0 {
            return Err(ExitStatus(code).into());
        }
        Ok(())
    }
}

/// The command's exit code when it is not 0 (difyctl exits with it).
#[derive(Debug, thiserror::Error)]
#[error("the command exited with code {0}")]
pub struct ExitStatus(pub i64);

pub async fn run(project: &str, service: &str, command: &[String]) -> anyhow::Result<i64> {
    let engine = super::engine().await?;
    let names = [service.to_string()];
    let containers = containers_of_services(&engine, project, &names).await?;
    let running = containers.iter().find(|c| {
        service_label(c) == Some(service)
            && c.state == Some(bollard::models::ContainerSummaryStateEnum::RUNNING)
    });
    let Some(id) = running.and_then(|c| c.id.clone()) else {
        anyhow::bail!("service {service} has no running container: `difyctl up {service}` (or `start {service}`) first");
    };
    let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let exec = engine
        .docker
        .create_exec(
            &id,
            CreateExecOptions {
                cmd: Some(command.to_vec()),
                attach_stdin: Some(true),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                tty: Some(tty),
                ..Default::default()
            },
        )
        .await?;
    let StartExecResults::Attached {
        mut output,
        mut input,
    } = engine.docker.start_exec(&exec.id, None).await?
    else {
        anyhow::bail!("service {service}: the command started detached");
    };
    let _raw = tty.then(RawMode::enter).flatten();
    // Standard input on a thread of its own (a blocked read must not hold the exit).
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(8);
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        let mut stdin = std::io::stdin();
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 || tx.blocking_send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        while let Some(chunk) = rx.recv().await {
            if input.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = input.shutdown().await;
    });
    while let Some(item) = output.next().await {
        match item? {
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                let mut out = std::io::stdout();
                let _ = out.write_all(&message).and_then(|()| out.flush());
            }
            LogOutput::StdErr { message } => {
                let _ = std::io::stderr().write_all(&message);
            }
            LogOutput::StdIn { .. } => {}
        }
    }
    let code = engine.docker.inspect_exec(&exec.id).await?.exit_code;
    Ok(code.unwrap_or(0))
}

/// The terminal in raw mode (keys go to the command as typed); put back when dropped.
struct RawMode(libc::termios);

impl RawMode {
    fn enter() -> Option<RawMode> {
        // SAFETY: tcgetattr/tcsetattr on fd 0 with a zeroed struct; failure is checked.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return None;
            }
            let saved = t;
            libc::cfmakeraw(&mut t);
            (libc::tcsetattr(0, libc::TCSANOW, &t) == 0).then_some(RawMode(saved))
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restores the settings read in `enter`.
        unsafe {
            libc::tcsetattr(0, libc::TCSANOW, &self.0);
        }
    }
}
