//! The compose model: what Dify's `docker-compose.yaml` and `.env` say, read without touching
//! Docker. `compose` loads and interpolates the document, `service` (with `ports`, `mounts`)
//! types each service, `model` assembles what the engine creates: services in start order,
//! networks and volumes with their Docker names.

pub mod cast;
pub mod compose;
pub mod definition;
pub mod depends;
pub mod error;
pub mod extends;
pub mod fields;
pub mod files;
pub mod fronted;
pub mod include;
pub mod keys;
pub mod loading;
pub mod merge;
pub mod model;
pub mod mounts;
pub mod normalize;
pub mod paths;
pub mod ports;
pub mod secrets;
pub mod service;
pub mod urls;
pub mod yaml;
