//! What difyctl knows of Dify, in one place: the services it fronts, the ports they listen on
//! (and the variables that move them), the route table of Dify's nginx, and the services
//! difyctl replaces. Dify's release files are the source (see `../shared/notes/dify.md`).
//! One file per further kind of fact: `version` (release names, where archives are),
//! `renames` (settings Dify renamed), `urls` (its public URL settings), `secrets` (its
//! published defaults and the credential rule), `services` (data services, ports, scaling),
//! `dotenv` (what its nginx and certbot read from `.env`, honoured by difyctl's settings).

pub mod dotenv;
pub mod renames;
pub mod secrets;
pub mod services;
pub mod urls;
pub mod version;

pub const WEB: &str = "web";
pub const API: &str = "api";
pub const PLUGIN_DAEMON: &str = "plugin_daemon";
/// Socket.IO, a service of its own since Dify 1.15 (the api before).
pub const API_WEBSOCKET: &str = "api_websocket";

/// The services requests are proxied to.
pub const FRONTED: [&str; 4] = [WEB, API, PLUGIN_DAEMON, API_WEBSOCKET];

/// Dify's own proxy and certificate services: difyctl does their job, so `up` leaves them out.
pub const REPLACED: [&str; 2] = ["nginx", "certbot"];

/// [`REPLACED`] as owned names.
pub fn replaced() -> Vec<String> {
    REPLACED.map(String::from).to_vec()
}

/// Each fronted service's port inside its container: the variable of its environment that
/// sets it, and Dify's default.
pub const PORTS: [(&str, &str, u16); 4] = [
    (WEB, "PORT", 3000),
    (API, "DIFY_PORT", 5001),
    (PLUGIN_DAEMON, "SERVER_PORT", 5002),
    (API_WEBSOCKET, "DIFY_PORT", 5001),
];

/// One location of Dify's `nginx/conf.d/default.conf.template`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub prefix: &'static str,
    pub service: &'static str,
    /// Dify's nginx sets `Dify-Hook-Url` here (the plugin daemon's webhooks).
    pub hook_url: bool,
    /// WebSocket upgrades pass here.
    pub websocket: bool,
}

const fn at(prefix: &'static str, service: &'static str) -> Location {
    Location {
        prefix,
        service,
        hook_url: false,
        websocket: false,
    }
}

/// Dify's route table, as its nginx has it.
pub const LOCATIONS: [Location; 11] = [
    at("/console/api", API),
    at("/api", API),
    at("/v1", API),
    at("/files", API),
    at("/mcp", API),
    at("/triggers", API),
    at("/openapi", API),
    Location {
        hook_url: true,
        ..at("/e/", PLUGIN_DAEMON)
    },
    Location {
        websocket: true,
        ..at("/socket.io/", API_WEBSOCKET)
    },
    at("/explore", WEB),
    at("/", WEB),
];
