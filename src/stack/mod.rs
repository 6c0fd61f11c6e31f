//! The compose model: what Dify's `docker-compose.yaml` and `.env` say, read without touching
//! Docker. So far: the `.env` reader (the proxy uses it for the `NGINX_*` settings a migrating
//! user already has) and compose's variable interpolation.

pub mod compose;
pub mod depends;
pub mod envfile;
pub mod interpolate;
pub mod keys;
