//! The compose model: what Dify's `docker-compose.yaml` and `.env` say, read without touching
//! Docker. So far only the `.env` reader, which the proxy uses for the `NGINX_*` settings a
//! migrating user already has.

pub mod envfile;
