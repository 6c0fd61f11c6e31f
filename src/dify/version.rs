//! Dify's releases as names: where its tag archives are published, the tag of an image, and
//! versions compared as Dify numbers them.

/// Where Dify publishes its tag archives.
pub const RELEASE_ARCHIVES: &str = "https://github.com/langgenius/dify/archive/refs/tags";

/// The tag of an image reference (`repo:tag`, not a registry port).
pub fn tag(image: &str) -> Option<String> {
    let image = image.split('@').next()?;
    let (repo, tag) = image.rsplit_once(':')?;
    (!tag.contains('/') && !repo.is_empty()).then(|| tag.to_string())
}

/// Versions compared part by part as numbers (`1.9.2` < `1.16.0`; a leading `v` ignored);
/// `None` when either is not a version.
pub fn compare(a: &str, b: &str) -> Option<std::cmp::Ordering> {
    let parts = |v: &str| -> Option<Vec<u64>> {
        v.trim_start_matches('v')
            .split(['.', '-'])
            .take_while(|p| p.chars().all(|c| c.is_ascii_digit()) && !p.is_empty())
            .map(|p| p.parse().ok())
            .collect()
    };
    let (a, b) = (parts(a)?, parts(b)?);
    if a.is_empty() || b.is_empty() {
        return None;
    }
    Some(a.cmp(&b))
}
