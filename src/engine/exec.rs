//! Commands run inside a service's container with their output streamed: a database dump
//! is read chunk by chunk as the program writes it (never whole in memory), a restore is fed
//! through stdin. stderr is kept (its last 8 KiB) for the error message.

use std::pin::Pin;

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::io::AsyncWrite;

use super::{Engine, EngineError};

type Output = Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;

/// A running command.
pub struct Exec {
    id: String,
    /// `service: program` for messages.
    what: String,
    output: Output,
    input: Option<Pin<Box<dyn AsyncWrite + Send>>>,
    stderr: Vec<u8>,
}

/// Starts `cmd` in `container` with `env` (`KEY=value`) added; `stdin` attaches its input.
pub async fn start(
    engine: &Engine,
    service: &str,
    container: &str,
    cmd: &[String],
    env: &[String],
    stdin: bool,
) -> Result<Exec, EngineError> {
    let what = format!(
        "service {service}: {}",
        cmd.first().map_or("", String::as_str)
    );
    let created = engine
        .docker
        .create_exec(
            container,
            CreateExecOptions {
                cmd: Some(cmd.to_vec()),
                env: Some(env.to_vec()),
                attach_stdin: Some(stdin),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .map_err(EngineError::api(&what, "cannot start it in the container"))?;
    match engine
        .docker
        .start_exec(&created.id, None)
        .await
        .map_err(EngineError::api(&what, "cannot start it in the container"))?
    {
        StartExecResults::Attached { output, input } => Ok(Exec {
            id: created.id,
            what,
            output,
            input: Some(input),
            stderr: Vec::new(),
        }),
        StartExecResults::Detached => Err(EngineError::Api {
            object: what,
            action: "started detached".into(),
            source: bollard::errors::Error::DockerStreamError {
                error: "no output stream".into(),
            },
        }),
    }
}

impl Exec {
    /// The command's stdin; shut it down to give the program its end of input.
    pub fn take_input(&mut self) -> Option<Pin<Box<dyn AsyncWrite + Send>>> {
        self.input.take()
    }

    /// The next piece of stdout; `None` when the command closed its output.
    pub async fn next_stdout(&mut self) -> Result<Option<Bytes>, EngineError> {
        while let Some(item) = self.output.next().await {
            match item.map_err(EngineError::api(&self.what, "its output broke off"))? {
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    return Ok(Some(message))
                }
                LogOutput::StdErr { message } => {
                    self.stderr.extend_from_slice(&message);
                    if self.stderr.len() > 16 << 10 {
                        self.stderr.drain(..self.stderr.len() - (8 << 10));
                    }
                }
                LogOutput::StdIn { .. } => {}
            }
        }
        Ok(None)
    }

    /// Reads the rest of the output (kept when `collect`), then the exit code and stderr.
    pub async fn finish(mut self, engine: &Engine, collect: bool) -> Result<Finished, EngineError> {
        let mut stdout = Vec::new();
        while let Some(chunk) = self.next_stdout().await? {
            if collect && stdout.len() < 16 << 20 {
                stdout.extend_from_slice(&chunk);
            }
        }
        let code = engine
            .docker
            .inspect_exec(&self.id)
            .await
            .map_err(EngineError::api(&self.what, "cannot read its exit code"))?
            .exit_code
            .unwrap_or(-1);
        Ok(Finished {
            code,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&self.stderr).trim().to_string(),
        })
    }
}

#[derive(Debug)]
pub struct Finished {
    pub code: i64,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a short command to its end and returns what it printed.
pub async fn run(
    engine: &Engine,
    service: &str,
    container: &str,
    cmd: &[String],
    env: &[String],
) -> Result<Finished, EngineError> {
    start(engine, service, container, cmd, env, false)
        .await?
        .finish(engine, true)
        .await
}
