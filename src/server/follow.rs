//! Under `up`, the routes follow the project's containers: the table is built from what the
//! engine sees now, then rebuilt whenever Docker reports a container starting, dying or being
//! replaced (and when another difyctl says a service is about to restart: `Expected`).

use std::sync::Arc;

use tokio::sync::watch;

use crate::engine::{addresses, Engine, EngineError};
use crate::metrics::Metrics;
use crate::proxy::{RouteTable, Routes};
use crate::stack::model::Stack;
use crate::upstreams::{log_changes, Expected, Ports, View};

/// The compose project a serving difyctl fronts.
#[derive(Clone)]
pub struct Project {
    pub engine: Engine,
    pub name: String,
    /// The project's networks, by Docker name: addresses come only from these.
    pub networks: Vec<String>,
    pub ports: Ports,
    /// Restarts announced over the control socket (shared with the route view).
    pub expected: Expected,
    /// Under `up`: the stack kept whole (`repair`).
    pub repair: Option<super::repair::Repair>,
}

impl Project {
    pub fn of(engine: Engine, stack: &Stack) -> Project {
        Project {
            engine,
            name: stack.project.clone(),
            networks: stack
                .networks
                .iter()
                .map(|n| n.docker_name.clone())
                .collect(),
            ports: Ports::of(stack),
            expected: Expected::default(),
            repair: None,
        }
    }

    /// Brings back what goes missing (`repair`), as `up` would.
    pub fn with_repair(mut self, repair: super::repair::Repair) -> Project {
        self.repair = Some(repair);
        self
    }
}

/// The routes as the containers are now, kept up to date by a task that ends at `stop`.
pub async fn start(
    project: &Project,
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
) -> Result<Routes, EngineError> {
    let states = addresses::current(&project.engine, &project.name, &project.networks).await?;
    let mut view = View::new(project.ports, project.expected.clone());
    let first = RouteTable::dify(&view.upstreams(&states));
    log_changes(None, &first);
    let routes = Routes::new(first);
    let follower_routes = routes.clone();
    tokio::spawn(addresses::follow(
        project.engine.clone(),
        project.name.clone(),
        project.networks.clone(),
        project.expected.poke.clone(),
        move |now| {
            // The table is in place before its log line: whoever reads "upstream down" (an
            // operator, a test) and then sends a request gets the new answer, never the old
            // route (regression: a request sent right after the line went to the address the
            // container had just left, and hung).
            let before = follower_routes.load_full();
            follower_routes.replace(RouteTable::dify(&view.upstreams(now)));
            log_changes(Some(&before), &follower_routes.load());
        },
        metrics,
        stop,
    ));
    Ok(routes)
}
