//! The Dify releases difyctl ships as its default stack (`init` writes the newest; `upgrade
//! --to VERSION` moves an install made by `init` to another, offline). Each is difyctl's own compose
//! file, written from the facts of Dify's release (same services, images, networks, folders),
//! plus the `.env` template whose secrets are generated per install, the SSRF proxy's
//! configuration and, since 1.16, Dify's `envs/` layout. An embedded release can be written
//! out as a release folder (`materialize`) for the same upgrade path as `--from DIR`.

use std::path::Path;

pub struct Embedded {
    pub version: &'static str,
    pub compose: &'static str,
    /// Per-service files under `envs/` (install-relative path, the service named in it).
    pub envs: &'static [(&'static str, &'static str)],
    /// The configuration files the compose mounts (install-relative path, text).
    pub files: &'static [(&'static str, &'static str)],
}

const ENVS_1_16: &[(&str, &str)] = &[
    (
        "envs/core-services/shared.env",
        "api, worker and plugin daemon (shared)",
    ),
    ("envs/core-services/api.env", "api"),
    ("envs/core-services/worker.env", "worker"),
    ("envs/core-services/worker-beat.env", "worker_beat"),
    ("envs/core-services/web.env", "web"),
    ("envs/core-services/sandbox.env", "sandbox"),
    ("envs/core-services/plugin-daemon.env", "plugin_daemon"),
    ("envs/core-services/dify-agent.env", "agent_backend"),
    ("envs/core-services/local-sandbox.env", "local_sandbox"),
];

const SQUID_FILES: &[(&str, &str)] = &[("ssrf_proxy/squid.conf", SQUID)];
const SQUID_FILES_1_16_1: &[(&str, &str)] = &[
    ("ssrf_proxy/squid.conf", SQUID),
    ("ssrf_proxy/squid-agent.conf", SQUID_AGENT),
];

/// Oldest first; `init` writes the last.
pub const RELEASES: &[Embedded] = &[
    Embedded {
        version: "1.15.0",
        compose: include_str!("../../compose/1.15.0/docker-compose.yaml"),
        envs: &[],
        files: SQUID_FILES,
    },
    Embedded {
        version: "1.16.0",
        compose: include_str!("../../compose/1.16.0/docker-compose.yaml"),
        envs: ENVS_1_16,
        files: SQUID_FILES,
    },
    Embedded {
        version: "1.16.1",
        compose: include_str!("../../compose/1.16.1/docker-compose.yaml"),
        envs: ENVS_1_16,
        files: SQUID_FILES_1_16_1,
    },
];

pub const ENV_TEMPLATE: &str = include_str!("../../compose/env.template");
pub const SQUID: &str = include_str!("../../compose/squid.conf");
pub const SQUID_AGENT: &str = include_str!("../../compose/squid-agent.conf");
const SERVICE_ENV: &str = include_str!("../../compose/envs/service.env");

/// The first line of every compose file difyctl ships: how an install made by `init` is told
/// from one running Dify's own files.
pub const MARKER: &str = "# The default Dify stack difyctl ships";

pub fn latest() -> &'static Embedded {
    // Invariant: RELEASES is a non-empty constant, newest last.
    RELEASES.last().expect("at least one embedded release")
}

pub fn find(version: &str) -> Option<&'static Embedded> {
    RELEASES
        .iter()
        .find(|r| r.version == version.trim_start_matches('v'))
}

pub fn known() -> String {
    RELEASES
        .iter()
        .map(|r| r.version)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Embedded {
    /// An `envs/` file's text.
    pub fn env_file(service: &str) -> String {
        SERVICE_ENV.replace("{{SERVICE}}", service)
    }

    /// The release as a folder an upgrade reads: the compose file, `.env.example` (the template
    /// with fresh secrets where it has placeholders: an install that lacks one gets a new
    /// one), the `envs/*.env.example` files and the SSRF proxy's configuration.
    pub fn materialize(&self, dir: &Path) -> std::io::Result<()> {
        let write = |rel: &str, text: &str| -> std::io::Result<()> {
            let path = dir.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(path, text)
        };
        write("docker-compose.yaml", self.compose)?;
        write(
            ".env.example",
            &fill_template(ENV_TEMPLATE).map_err(std::io::Error::other)?,
        )?;
        for (rel, text) in self.files {
            write(rel, text)?;
        }
        for (rel, service) in self.envs {
            write(&format!("{rel}.example"), &Self::env_file(service))?;
        }
        Ok(())
    }
}

/// The `.env` template with every `{{KEY}}` replaced by a fresh secret of the key's kind
/// (the same value wherever the same placeholder appears).
pub fn fill_template(template: &str) -> Result<String, crate::stack::secrets::RandomError> {
    let mut out = template.to_string();
    while let Some(start) = out.find("{{") {
        let Some(len) = out[start..].find("}}") else {
            break;
        };
        let key = out[start + 2..start + len].to_string();
        let value = crate::stack::secrets::generate(crate::stack::secrets::kind_of(&key))?;
        out = out.replace(&format!("{{{{{key}}}}}"), &value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_release_is_marked_and_the_template_fills_consistently() {
        for r in RELEASES {
            assert!(r.compose.starts_with(MARKER), "{}", r.version);
            assert!(
                r.compose
                    .contains(&format!("langgenius/dify-api:{}", r.version)),
                "{}",
                r.version
            );
        }
        let filled =
            fill_template("A={{REDIS_PASSWORD}}\nURL=redis://:{{REDIS_PASSWORD}}@redis\n").unwrap();
        let pw = filled.lines().next().unwrap().strip_prefix("A=").unwrap();
        assert!(filled.contains(&format!("redis://:{pw}@redis")));
        assert_eq!(latest().version, "1.16.1");
    }
}
