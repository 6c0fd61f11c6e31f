//! Data stores that cannot jump releases. Weaviate reads data only from the minor version
//! before its own (Dify 1.17.1 moves it from 1.27 to 1.39, and knowledge bases break: dify
//! #27291), so an upgrade that skips minor versions of a Weaviate holding data is refused,
//! before anything changes, with the steps that do work.

use crate::stack::model::Stack;
use crate::stack::mounts::Source;

#[derive(Debug, thiserror::Error)]
#[error("service {service}: the release moves {image_from} to {image_to}, {steps} minor versions at once, and Weaviate cannot skip minor versions with data in place (dify #27291). Nothing was changed. Upgrade Weaviate one minor version at a time first: set `image: {repo}:{next}` for {service} in docker-compose.override.yaml, run `difyctl up` and wait until it is healthy, and repeat up to {minor_to_major}.{minor_to}; then remove that override and run this upgrade again. (A Weaviate with no data, or a vector store other than Weaviate, is not affected.)")]
pub struct SkipError {
    pub service: String,
    pub image_from: String,
    pub image_to: String,
    pub steps: u64,
    pub repo: String,
    pub next: String,
    pub minor_to_major: u64,
    pub minor_to: u64,
}

/// Refuses a Weaviate minor-version skip on an install whose Weaviate holds data.
pub fn check(current: &Stack, new: &Stack) -> Result<(), Box<SkipError>> {
    for old in current.services.iter().filter(|s| is_weaviate(&s.image)) {
        let Some(next) = new.service(&old.name).filter(|s| is_weaviate(&s.image)) else {
            continue;
        };
        let (Some(from), Some(to)) = (minor(&old.image), minor(&next.image)) else {
            continue;
        };
        let steps = if from.0 == to.0 {
            to.1.saturating_sub(from.1)
        } else {
            99
        };
        if steps <= 1 || !holds_data(current, old) {
            continue;
        }
        let repo = next
            .image
            .rsplit_once(':')
            .map_or(next.image.as_str(), |(r, _)| r);
        return Err(Box::new(SkipError {
            service: old.name.clone(),
            image_from: old.image.clone(),
            image_to: next.image.clone(),
            steps,
            repo: repo.to_string(),
            next: format!("{}.{}.0", from.0, from.1 + 1),
            minor_to_major: to.0,
            minor_to: to.1,
        }));
    }
    Ok(())
}

fn is_weaviate(image: &str) -> bool {
    image
        .rsplit('/')
        .next()
        .is_some_and(|n| n.starts_with("weaviate:") || n == "weaviate")
}

/// `(major, minor)` of an image's tag.
fn minor(image: &str) -> Option<(u64, u64)> {
    let tag = crate::dify::version::tag(image)?;
    let mut parts = tag.trim_start_matches('v').split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Whether the service's data folders hold anything (a named volume counts as data).
fn holds_data(stack: &Stack, service: &crate::stack::service::ServiceSpec) -> bool {
    service.mounts.iter().any(|m| match &m.source {
        Source::Bind(path) => std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_some()),
        Source::Volume(key) => stack.volume(key).is_some(),
        Source::Anonymous | Source::Tmpfs => false,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn minor_versions_of_weaviate_images() {
        assert_eq!(
            super::minor("cr.weaviate.io/semitechnologies/weaviate:1.39.2"),
            Some((1, 39))
        );
        assert_eq!(
            super::minor("semitechnologies/weaviate:1.27.0"),
            Some((1, 27))
        );
        assert!(super::is_weaviate("semitechnologies/weaviate:1.27.0"));
        assert!(!super::is_weaviate("langgenius/dify-api:1.16.1"));
    }
}
