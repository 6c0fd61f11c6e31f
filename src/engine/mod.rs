//! The Docker Engine API, through bollard: what `up`, `down`, `ps`, `logs`, `restart` and
//! `pull` do with the stack model. Containers, networks and volumes are named and labelled as
//! compose v2 names them, so an install compose started is adopted, and compose can read ours.
//!
//! - `client`: connecting (DOCKER_HOST or the local socket, API version negotiated) and errors
//! - `labels`: compose's labels, names and the config hash that decides "recreate or keep"
//! - `addresses`: where the running services are reached, following Docker events
//! - `adopt`: is a container compose started still what the service asks for?
//! - `create`: a `ServiceSpec` as a container-create request
//! - `images`: pull what is missing, with progress
//! - `container`: one service's container: keep, start or recreate it
//! - `reconcile`: `up`: networks, volumes, then every service after its dependencies
//! - `resources`: networks, named volumes and bind folders, created before the services
//! - `health`: waiting for started / healthy / completed, with the last health output on failure
//! - `ops`: `down`, `ps`, `restart`
//! - `logs`: merged, prefixed output; `-f` follows restarts and recreation
//! - `progress`: indicatif on a terminal, plain lines otherwise

pub mod addresses;
pub mod adopt;
pub mod client;
pub mod container;
pub mod create;
pub mod exec;
pub mod health;
pub mod images;
pub mod labels;
pub mod listing;
pub mod logs;
pub mod ops;
pub mod outcome;
pub mod progress;
pub mod reconcile;
pub mod resources;

pub use client::{Engine, EngineError};
