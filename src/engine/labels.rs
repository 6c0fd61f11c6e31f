//! The labels compose v2 puts on what it creates, which `ps`, `down` and adoption rely on, and
//! the config hash that says whether a running container still matches its service.

use std::collections::HashMap;

use crate::stack::service::ServiceSpec;

pub const PROJECT: &str = "com.docker.compose.project";
pub const SERVICE: &str = "com.docker.compose.service";
pub const NUMBER: &str = "com.docker.compose.container-number";
pub const ONEOFF: &str = "com.docker.compose.oneoff";
pub const CONFIG_HASH: &str = "com.docker.compose.config-hash";
pub const VERSION: &str = "com.docker.compose.version";
pub const WORKING_DIR: &str = "com.docker.compose.project.working_dir";
pub const CONFIG_FILES: &str = "com.docker.compose.project.config_files";
pub const DEPENDS_ON: &str = "com.docker.compose.depends_on";
pub const NETWORK: &str = "com.docker.compose.network";
pub const VOLUME: &str = "com.docker.compose.volume";
/// difyctl's own hash: compose's hash is of its own serialisation, which difyctl cannot
/// reproduce, so a container without this label is compared field by field instead.
pub const DIFYCTL_HASH: &str = "io.difyctl.config-hash";

/// The compose version difyctl's labels claim to match (compose v2 label layout).
const COMPOSE_VERSION: &str = "2.29.0";

/// sha256 of the service spec's JSON form (fields in declaration order, maps sorted).
pub fn config_hash(spec: &ServiceSpec) -> String {
    // Invariant: ServiceSpec holds only strings, numbers, maps with string keys and vectors,
    // which serde_json always serialises.
    let json = serde_json::to_vec(spec).expect("ServiceSpec serialises");
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &json);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Labels for a service's container.
pub fn container_labels(
    project: &str,
    working_dir: &str,
    config_file: &str,
    spec: &ServiceSpec,
    depends_on: &[String],
) -> HashMap<String, String> {
    let hash = config_hash(spec);
    let mut labels: HashMap<String, String> = spec
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in [
        (PROJECT, project.to_string()),
        (SERVICE, spec.name.clone()),
        (NUMBER, "1".to_string()),
        (ONEOFF, "False".to_string()),
        (CONFIG_HASH, hash.clone()),
        (DIFYCTL_HASH, hash),
        (VERSION, COMPOSE_VERSION.to_string()),
        (WORKING_DIR, working_dir.to_string()),
        (CONFIG_FILES, config_file.to_string()),
        (DEPENDS_ON, depends_on.join(",")),
    ] {
        labels.insert(k.to_string(), v);
    }
    labels
}

/// Labels for a network or volume the project creates.
pub fn object_labels(project: &str, kind: &str, key: &str) -> HashMap<String, String> {
    HashMap::from([
        (PROJECT.to_string(), project.to_string()),
        (kind.to_string(), key.to_string()),
        (VERSION.to_string(), COMPOSE_VERSION.to_string()),
    ])
}

/// A filter for list calls: everything labelled with this project.
pub fn project_filter(project: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), vec![format!("{PROJECT}={project}")])])
}
