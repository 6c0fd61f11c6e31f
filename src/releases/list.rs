//! Which Dify releases exist: asked of the source. For Dify's own archives that is GitHub's
//! release list (`api.github.com/repos/langgenius/dify/releases`); a mirror (`[releases]
//! url`) serves the same JSON as `{url}/releases.json` (an array of objects with `tag_name`,
//! and optionally `published_at`, `prerelease`, `draft`). Drafts and names that are not
//! versions are left out.

use serde::Deserialize;

use super::{download, ReleasesError};
use crate::dify::version::RELEASE_ARCHIVES;

const GITHUB_LIST: &str = "https://api.github.com/repos/langgenius/dify/releases?per_page=100";

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Listed {
    pub version: String,
    /// `2026-07-28`, when the source says.
    pub date: Option<String>,
    pub prerelease: bool,
}

#[derive(Deserialize)]
struct Entry {
    tag_name: String,
    #[serde(default)]
    published_at: Option<String>,
    #[serde(default)]
    prerelease: bool,
    #[serde(default)]
    draft: bool,
}

/// The URL the release list is read from.
pub fn list_url(base: &str) -> String {
    if base.trim_end_matches('/') == RELEASE_ARCHIVES {
        GITHUB_LIST.to_string()
    } else {
        format!("{}/releases.json", base.trim_end_matches('/'))
    }
}

/// The releases the source lists, newest first.
pub async fn online(base: &str) -> Result<Vec<Listed>, ReleasesError> {
    let url = list_url(base);
    let Some(body) = download::to_memory(&url, 8 << 20).await? else {
        return Err(ReleasesError::Http {
            url,
            detail: "no release list there (HTTP 404)".into(),
        });
    };
    parse(&body).map_err(|detail| ReleasesError::Http { url, detail })
}

pub fn parse(body: &[u8]) -> Result<Vec<Listed>, String> {
    let entries: Vec<Entry> =
        serde_json::from_slice(body).map_err(|e| format!("not a release list: {e}"))?;
    let mut out: Vec<Listed> = entries
        .into_iter()
        .filter(|e| !e.draft)
        .filter_map(|e| {
            Some(Listed {
                version: super::version(&e.tag_name).ok()?,
                date: e
                    .published_at
                    .map(|d| d.chars().take(10).collect::<String>()),
                prerelease: e.prerelease,
            })
        })
        .collect();
    out.sort_by(|a, b| newest_first(&a.version, &b.version));
    out.dedup_by(|a, b| a.version == b.version);
    Ok(out)
}

pub fn newest_first(a: &str, b: &str) -> std::cmp::Ordering {
    crate::dify::version::compare(b, a).unwrap_or_else(|| b.cmp(a))
}

#[cfg(test)]
mod tests {
    #[test]
    fn githubs_release_list_is_read_newest_first() {
        let body = br#"[
            {"tag_name": "1.16.1", "published_at": "2026-07-28T10:00:00Z", "prerelease": false},
            {"tag_name": "1.17.1", "published_at": "2026-09-10T10:00:00Z"},
            {"tag_name": "2.0.0-beta1", "prerelease": true},
            {"tag_name": "nightly"},
            {"tag_name": "1.18.0", "draft": true}
        ]"#;
        let list = super::parse(body).unwrap();
        let names: Vec<&str> = list.iter().map(|l| l.version.as_str()).collect();
        assert_eq!(names, ["2.0.0-beta1", "1.17.1", "1.16.1"]);
        assert_eq!(list[1].date.as_deref(), Some("2026-09-10"));
        assert!(super::parse(b"<html>").is_err());
    }
}
