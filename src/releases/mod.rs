//! Dify's releases as data: any release's `docker/` folder, fetched from Dify's published tag
//! archives (`{url}/{V}.tar.gz`, GitHub's layout with the top folder `dify-{V}/`), checked,
//! cut down to `docker/` and cached in the state dir; and the list of releases that exist.
//! difyctl follows Dify's releases without a new difyctl; the releases it embeds
//! (`upgrade::embedded`) are the offline default.
//!
//! - `download`: one HTTPS GET, redirects followed (HTTPS only), size-bounded, into a file
//! - `unpack`: the tar.gz read as hostile input: only `dify-{V}/docker/` kept, paths confined,
//!   sizes bounded, no links, no special files, no setuid
//! - `cache`: `<state_dir>/releases/<V>/`, written whole or not at all
//! - `list`: which releases exist (the source's release list) and which are newest

pub mod cache;
pub mod download;
pub mod list;
pub mod release;
pub mod unpack;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ReleasesError {
    #[error("`{0}` is not a Dify release version (like 1.16.1)")]
    BadVersion(String),
    #[error("{url}: {detail}")]
    Http { url: String, detail: String },
    #[error(
        "{url}: Dify has no release {version} there (HTTP 404); `difyctl releases` lists them"
    )]
    NotFound { url: String, version: String },
    #[error("{url}: larger than {max} bytes, more than a release archive can be; refused")]
    TooLarge { url: String, max: u64 },
    #[error("{url}: not a Dify release archive: {detail}")]
    NotAnArchive { url: String, detail: String },
    #[error("{url}: member {member}: {detail}; the archive is refused")]
    Member {
        url: String,
        member: String,
        detail: String,
    },
    #[error("{url}: the archive holds {found}, not Dify {want}; refused")]
    WrongVersion {
        url: String,
        want: String,
        found: String,
    },
    #[error("{}: {action}", path.display())]
    Io {
        path: PathBuf,
        action: String,
        #[source]
        source: std::io::Error,
    },
}

impl ReleasesError {
    pub fn io(path: &std::path::Path, action: &str) -> impl FnOnce(std::io::Error) -> Self {
        let (path, action) = (path.to_path_buf(), action.to_string());
        move |source| ReleasesError::Io {
            path,
            action,
            source,
        }
    }
}

/// A release version as Dify tags it (`1.16.1`; a leading `v` dropped), checked before it
/// goes into a URL or a path.
pub fn version(raw: &str) -> Result<String, ReleasesError> {
    let v = raw.trim().trim_start_matches('v');
    let (numbers, suffix) = v.split_once('-').unwrap_or((v, ""));
    let parts: Vec<&str> = numbers.split('.').collect();
    let ok = (2..=4).contains(&parts.len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 6 && p.bytes().all(|b| b.is_ascii_digit()))
        && suffix.len() <= 32
        && suffix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.');
    if ok && !(v.contains('-') && suffix.is_empty()) {
        Ok(v.to_string())
    } else {
        Err(ReleasesError::BadVersion(raw.to_string()))
    }
}

/// The archive URL of `version` under `base`.
pub fn archive_url(base: &str, version: &str) -> String {
    format!("{}/{version}.tar.gz", base.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions_are_checked_before_they_name_anything() {
        assert_eq!(super::version("1.16.1").unwrap(), "1.16.1");
        assert_eq!(super::version("v1.17.0").unwrap(), "1.17.0");
        assert_eq!(super::version("1.0.0-rc1").unwrap(), "1.0.0-rc1");
        for bad in [
            "",
            "1",
            "../1.2",
            "1.2/../../x",
            "1.2.3-",
            "latest",
            "1.2.3-a/b",
            "1..2",
        ] {
            assert!(super::version(bad).is_err(), "{bad}");
        }
    }
}
