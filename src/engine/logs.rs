//! `logs`: the chosen services' output merged into one stream of `service-1  | line`, as
//! compose prints it. Following (`-f`) survives restarts and recreation: when a container's
//! stream ends, it waits for the service's container to run again and goes on from there.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::query_parameters::LogsOptions;
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};

use super::labels;
use super::listing::{containers_of_services, project_containers, service_label};
use super::{Engine, EngineError};

/// How much of the output, and how (`logs` flags).
#[derive(Debug, Clone, Copy, Default)]
pub struct View {
    pub follow: bool,
    pub tail: Option<u64>,
    pub timestamps: bool,
    /// Only output since this Unix time (`--since`).
    pub since: Option<i64>,
}

pub async fn logs(
    engine: &Engine,
    project: &str,
    services: &[String],
    view: View,
) -> Result<impl Stream<Item = String> + use<>, EngineError> {
    let View {
        follow,
        tail,
        timestamps,
        since: from,
    } = view;
    let containers = containers_of_services(engine, project, services).await?;
    let mut chosen: Vec<(String, String, String)> = containers
        .iter()
        .filter(|c| {
            services.is_empty() || service_label(c).is_some_and(|s| services.iter().any(|n| n == s))
        })
        .map(|c| {
            let service = service_label(c).unwrap_or("?").to_string();
            let number = c
                .labels
                .as_ref()
                .and_then(|l| l.get(labels::NUMBER))
                .map_or("1", String::as_str);
            (
                format!("{service}-{number}"),
                service,
                c.id.clone().unwrap_or_default(),
            )
        })
        .collect();
    chosen.sort();
    let width = chosen.iter().map(|(p, _, _)| p.len()).max().unwrap_or(0);
    let streams: Vec<BoxStream<'static, String>> = chosen
        .into_iter()
        .map(|(prefix, service, id)| {
            let follower = Follower {
                engine: engine.clone(),
                project: project.to_string(),
                service,
                id,
                prefix: format!("{prefix:<width$}  | "),
                tail: tail.map_or_else(|| "all".to_string(), |n| n.to_string()),
                follow,
                timestamps,
                since: None,
                from,
                inner: None,
                partial: String::new(),
                done: false,
            };
            futures_util::stream::unfold(follower, Follower::next)
                .flat_map(futures_util::stream::iter)
                .boxed()
        })
        .collect();
    Ok(futures_util::stream::select_all(streams))
}

struct Follower {
    engine: Engine,
    project: String,
    service: String,
    id: String,
    prefix: String,
    tail: String,
    follow: bool,
    /// Docker's RFC 3339 time before each line (`logs -t`).
    timestamps: bool,
    /// Unix seconds of the last output seen: where a re-attached stream starts.
    since: Option<i64>,
    /// `--since`: where the first stream starts.
    from: Option<i64>,
    inner:
        Option<BoxStream<'static, Result<bollard::container::LogOutput, bollard::errors::Error>>>,
    /// Docker frames are not lines: an unfinished line waits for the next frame.
    partial: String,
    done: bool,
}

impl Follower {
    /// The next batch of whole lines (possibly empty), or `None` when the stream is over.
    async fn next(mut self) -> Option<(Vec<String>, Follower)> {
        if self.done {
            return None;
        }
        if self.inner.is_none() {
            if self.since.is_some() {
                // The container is stopping or restarting: give Docker a moment, then find the
                // service's running container (the same one, or its replacement).
                tokio::time::sleep(Duration::from_millis(300)).await;
                let (engine, project) = (self.engine.clone(), self.project.clone());
                let service = self.service.clone();
                self.id = running_container(engine, project, service).await?;
            }
            let options = LogsOptions {
                follow: self.follow,
                stdout: true,
                stderr: true,
                tail: if self.since.is_some() {
                    "all".into()
                } else {
                    self.tail.clone()
                },
                since: self
                    .since
                    .or(self.from)
                    .map_or(0, |s| i32::try_from(s).unwrap_or(0)),
                timestamps: self.timestamps,
                ..Default::default()
            };
            self.inner = Some(self.engine.docker.logs(&self.id, Some(options)).boxed());
        }
        // Invariant: set just above when it was empty.
        let inner = self.inner.as_mut().expect("stream opened");
        match inner.next().await {
            Some(Ok(chunk)) => {
                self.since = Some(now());
                self.partial
                    .push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
                let mut lines = Vec::new();
                while let Some(i) = self.partial.find('\n') {
                    let line: String = self.partial.drain(..=i).collect();
                    lines.push(format!(
                        "{}{}",
                        self.prefix,
                        line.trim_end_matches(['\n', '\r'])
                    ));
                }
                Some((lines, self))
            }
            end => {
                self.inner = None;
                let mut lines = Vec::new();
                if !self.partial.is_empty() {
                    lines.push(format!(
                        "{}{}",
                        self.prefix,
                        std::mem::take(&mut self.partial)
                    ));
                }
                if let Some(Err(e)) = end {
                    lines.push(format!("{}(log stream ended: {e})", self.prefix));
                }
                if !self.follow {
                    self.done = true;
                } else if self.since.is_none() {
                    // Nothing seen yet: re-attach from now on.
                    self.since = Some(now());
                }
                Some((lines, self))
            }
        }
    }
}

/// Waits until the service has a running container again (restarted, or recreated by `up`),
/// checking every second.
async fn running_container(engine: Engine, project: String, service: String) -> Option<String> {
    loop {
        if let Ok(list) = project_containers(&engine, &project, false).await {
            if let Some(c) = list
                .iter()
                .find(|c| service_label(c) == Some(service.as_str()))
            {
                return c.id.clone();
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}
