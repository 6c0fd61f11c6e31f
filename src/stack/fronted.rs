//! The ports of the services difyctl fronts, as this stack sets them.

use super::model::Stack;

/// The ports Dify's services listen on inside their containers: Dify's defaults unless the
/// service's environment moves them (api: DIFY_PORT, web: PORT, plugin_daemon: SERVER_PORT).
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    web: u16,
    api: u16,
    plugin: u16,
    socket: u16,
}

impl Ports {
    pub fn web(&self) -> u16 {
        self.web
    }
    pub fn api(&self) -> u16 {
        self.api
    }
    pub fn plugin(&self) -> u16 {
        self.plugin
    }
    pub fn socket(&self) -> u16 {
        self.socket
    }

    /// The port `service` listens on, for the services the proxy fronts.
    pub fn get(&self, service: &str) -> Option<u16> {
        match service {
            crate::dify::WEB => Some(self.web),
            crate::dify::API => Some(self.api),
            crate::dify::PLUGIN_DAEMON => Some(self.plugin),
            crate::dify::API_WEBSOCKET => Some(self.socket),
            _ => None,
        }
    }

    pub fn of(stack: &Stack) -> Ports {
        let port = |service: &str| {
            let (_, key, default) = crate::dify::PORTS
                .into_iter()
                .find(|(s, _, _)| *s == service)
                .unwrap_or(("", "", 0));
            stack
                .service(service)
                .and_then(|s| s.environment.get(key))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(default)
        };
        use crate::dify::{API, API_WEBSOCKET, PLUGIN_DAEMON, WEB};
        Ports {
            web: port(WEB),
            api: port(API),
            plugin: port(PLUGIN_DAEMON),
            socket: port(API_WEBSOCKET),
        }
    }
}
