//! Connecting to Docker: DOCKER_HOST when set (unix:// or tcp://), else the local socket; the
//! API version is negotiated so old engines (20.10 speaks 1.41) and new ones (29 refuses below
//! 1.44) both work.

use bollard::Docker;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot reach the Docker engine at {endpoint}: is it running, and may this user use it? (set DOCKER_HOST for another engine)")]
    Unreachable {
        endpoint: String,
        #[source]
        source: bollard::errors::Error,
    },
    /// A call about one named object (service, network, volume, image) failed.
    #[error("{object}: {action}")]
    Api {
        object: String,
        action: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("service {service}: cannot create the bind-mount folder {}", path.display())]
    BindSource {
        service: String,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "image {image} (for {services}) is not on this machine and cannot be pulled: {detail}"
    )]
    Pull {
        image: String,
        services: String,
        detail: String,
    },
    #[error("service {service} is unhealthy: {detail}")]
    Unhealthy { service: String, detail: String },
    #[error("service {service} has no healthcheck (neither in the compose file nor in its image), but {dependents} waits for it to be healthy (condition service_healthy): add a healthcheck or use service_started")]
    NoHealthcheck { service: String, dependents: String },
    #[error("service {service} exited with code {code}{logs}")]
    Exited {
        service: String,
        code: i64,
        logs: String,
    },
    #[error("service {service} was not started: it depends on {dependency}, which failed")]
    DependencyFailed { service: String, dependency: String },
    #[error("container name {name} (service {service}) is taken by a container that is not part of project {project}: rename or remove it")]
    NameTaken {
        name: String,
        service: String,
        project: String,
    },
    #[error("no service named {0} in this project")]
    UnknownService(String),
    #[error("{object}: larger than {max} bytes, more than difyctl reads")]
    TooLarge { object: String, max: u64 },
}

impl EngineError {
    pub fn api(
        object: impl Into<String>,
        action: impl Into<String>,
    ) -> impl FnOnce(bollard::errors::Error) -> EngineError {
        let (object, action) = (object.into(), action.into());
        move |source| EngineError::Api {
            object,
            action,
            source,
        }
    }
}

/// A connected engine. Cheap to clone (bollard shares one HTTP client).
#[derive(Clone)]
pub struct Engine {
    pub docker: Docker,
    pub endpoint: String,
    /// Server version, e.g. "20.10.24".
    pub version: String,
    pub api_version: String,
}

impl Engine {
    /// API 1.44 (Docker 25) and later take a healthcheck's `start_interval`.
    pub fn takes_start_interval(&self) -> bool {
        let mut parts = self
            .api_version
            .split('.')
            .map(|p| p.parse::<u32>().unwrap_or(0));
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        (major, minor) >= (1, 44)
    }

    pub async fn connect() -> Result<Engine, EngineError> {
        let endpoint = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".into());
        let unreachable = |source| EngineError::Unreachable {
            endpoint: endpoint.clone(),
            source,
        };
        let docker = Docker::connect_with_host(&endpoint).map_err(unreachable)?;
        let docker = docker.negotiate_version().await.map_err(unreachable)?;
        let version = docker.version().await.map_err(unreachable)?;
        Ok(Engine {
            api_version: docker.client_version().to_string(),
            docker,
            version: version.version.unwrap_or_default(),
            endpoint,
        })
    }
}
