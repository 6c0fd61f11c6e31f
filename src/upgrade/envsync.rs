//! One env file brought to a new release: the user's file is kept line for line (every value
//! they set, their comments and order); known renames are applied to it; keys the release's
//! example has and the file lacks are appended in one marked block with the release's
//! defaults, except that a default which is one of Dify's public secrets, or any credential
//! (`secrets::is_credential`: found by name and value, so a new release's new token is found
//! without a list), is replaced. A file the user never had is written from the example, its
//! public secrets replaced.
//!
//! Replaced consistently (`Secrets`): Dify's examples pair keys through one public value
//! (WEAVIATE_API_KEY and WEAVIATE_AUTHENTICATION_APIKEY_ALLOWED_KEYS, SANDBOX_API_KEY and
//! CODE_EXECUTION_API_KEY, REDIS_PASSWORD inside CELERY_BROKER_URL), so every occurrence of a
//! public value becomes the same replacement: the value the user already chose for it where
//! there is one, else one fresh secret.

use std::path::Path;

use crate::dify::renames::Rename;
use crate::envfile::{line_key, EnvFile};
use crate::stack::secrets;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Synced {
    pub text: String,
    /// `KEY=value` lines appended (secrets shown as `KEY=<generated>`).
    pub added: Vec<String>,
    /// Keys given a fresh secret instead of the release's public default.
    pub generated: Vec<String>,
    /// What the rename table changed, for a person.
    pub renamed: Vec<String>,
    /// The file did not exist: written from the example.
    pub created: bool,
}

impl Synced {
    pub fn changed(&self) -> bool {
        self.created || !self.added.is_empty() || !self.renamed.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Env(#[from] crate::envfile::EnvFileError),
    #[error(transparent)]
    Random(#[from] secrets::RandomError),
}

/// Public value -> its replacement for this install, shared by every file of one upgrade.
#[derive(Debug, Default)]
pub struct Secrets {
    map: std::collections::HashMap<String, String>,
}

impl Secrets {
    /// Learns the user's own values: where an example has a public value for a key and the
    /// user's file gives that key another value, that value replaces the public one.
    pub fn learn(&mut self, user: &EnvFile, example: &EnvFile) {
        for e in &example.entries {
            if !secrets::is_public(&e.value) && !secrets::is_credential(&e.key, &e.value) {
                continue;
            }
            if let Some(u) = user
                .get(&e.key)
                .filter(|u| u.value != e.value && !u.value.is_empty())
            {
                self.map
                    .entry(e.value.clone())
                    .or_insert_with(|| u.value.clone());
            }
        }
    }

    /// `value` with every public secret in it replaced (`key` shapes a fresh one).
    fn replace(&mut self, key: &str, value: &str) -> Result<Option<String>, SyncError> {
        // A known public value (also inside a URL), or any credential the example publishes.
        let public = match secrets::public_in(value) {
            Some(p) => p,
            None if secrets::is_credential(key, value) => value,
            None => return Ok(None),
        };
        let fresh = match self.map.get(public) {
            Some(v) => v.clone(),
            None => {
                let v = secrets::generate(secrets::kind_of(key))?;
                self.map.insert(public.to_string(), v.clone());
                v
            }
        };
        Ok(Some(value.replace(public, &fresh)))
    }
}

/// `user`: the install's file (none: it does not exist); `example`: the release's example.
pub fn sync(
    path: &Path,
    user: Option<&str>,
    example: &str,
    renames: &[Rename],
    release: &str,
    secrets: &mut Secrets,
) -> Result<Synced, SyncError> {
    let example_env = EnvFile::parse(path, example)?;
    let Some(user) = user else {
        return from_example(path, example, &example_env, secrets);
    };
    let user_env = EnvFile::parse(path, user)?;
    let mut out = Synced::default();
    // The user's line endings are kept (a file edited on Windows stays CRLF).
    let eol = if user.contains("\r\n") { "\r\n" } else { "\n" };
    let mut lines: Vec<String> = user.lines().map(str::to_string).collect();
    let original = lines.len();
    for r in renames {
        r.apply(&user_env, &mut lines, &mut out.renamed);
    }
    // What the file sets, as parsed (a `KEY=` line inside a multi-line quoted value sets
    // nothing), and what the renames just added.
    let renamed: Vec<String> = lines[original..]
        .iter()
        .filter_map(|l| line_key(l).map(str::to_string))
        .collect();
    let have = |k: &str| user_env.get(k).is_some() || renamed.iter().any(|r| r == k);
    let mut block = Vec::new();
    for e in &example_env.entries {
        if have(&e.key) || block.iter().any(|(k, _): &(String, String)| *k == e.key) {
            continue;
        }
        let line = if let Some(value) = secrets.replace(&e.key, &e.value)? {
            out.generated.push(e.key.clone());
            out.added.push(format!("{}=<secret>", e.key));
            format!("{}={value}", e.key)
        } else {
            let raw = raw_line(example, e.line, &e.key)
                .unwrap_or_else(|| format!("{}={}", e.key, e.value));
            out.added.push(raw.clone());
            raw
        };
        block.push((e.key.clone(), line));
    }
    if !block.is_empty() {
        if lines.last().is_some_and(|l| !l.trim().is_empty()) {
            lines.push(String::new());
        }
        lines.push(format!(
            "# Added by difyctl upgrade to {release}: new in this release, with its defaults"
        ));
        lines.extend(block.into_iter().map(|(_, l)| l));
    }
    out.text = lines.join(eol) + eol;
    Ok(out)
}

/// A file the user never had, from the example with its public secrets replaced.
fn from_example(
    path: &Path,
    example: &str,
    env: &EnvFile,
    secrets: &mut Secrets,
) -> Result<Synced, SyncError> {
    let mut out = Synced {
        created: true,
        ..Synced::default()
    };
    let mut lines: Vec<String> = example.lines().map(str::to_string).collect();
    for e in &env.entries {
        let Some(line) = lines.get_mut(e.line.saturating_sub(1)) else {
            continue;
        };
        if line_key(line) != Some(e.key.as_str()) {
            continue;
        }
        if let Some(value) = secrets.replace(&e.key, &e.value)? {
            *line = format!("{}={value}", e.key);
            out.generated.push(e.key.clone());
        }
    }
    let _ = path;
    out.text = lines.join("\n") + "\n";
    Ok(out)
}

/// The example's own line for `key` (1-based `line`), when the entry is that one line.
fn raw_line(text: &str, line: usize, key: &str) -> Option<String> {
    let raw = text.lines().nth(line.checked_sub(1)?)?;
    (line_key(raw) == Some(key)).then(|| raw.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys Dify pairs through one public value get one replacement: the user's own where
    /// they set it, else the same fresh one everywhere (a URL embedding it included).
    #[test]
    fn paired_secrets_stay_paired() {
        let example = "REDIS_PASSWORD=difyai123456\nCELERY_BROKER_URL=redis://:difyai123456@redis:6379/1\nWEAVIATE_API_KEY=WVF5YThaHlkYwhGUSmCRgsX3tD5ngdN8pkih\nWEAVIATE_AUTHENTICATION_APIKEY_ALLOWED_KEYS=WVF5YThaHlkYwhGUSmCRgsX3tD5ngdN8pkih\n";
        let user = "REDIS_PASSWORD=redis-own\n";
        let mut secrets = Secrets::default();
        secrets.learn(
            &EnvFile::parse(Path::new(".env"), user).unwrap(),
            &EnvFile::parse(Path::new(".env"), example).unwrap(),
        );
        let s = sync(
            Path::new(".env"),
            Some(user),
            example,
            &[],
            "x",
            &mut secrets,
        )
        .unwrap();
        let env = EnvFile::parse(Path::new(".env"), &s.text).unwrap();
        let get = |k: &str| env.get(k).unwrap().value.clone();
        assert_eq!(get("CELERY_BROKER_URL"), "redis://:redis-own@redis:6379/1");
        assert_eq!(
            get("WEAVIATE_API_KEY"),
            get("WEAVIATE_AUTHENTICATION_APIKEY_ALLOWED_KEYS")
        );
        assert!(!secrets::is_public(&get("WEAVIATE_API_KEY")));
        let other = sync(
            Path::new("w.env"),
            None,
            "K=WVF5YThaHlkYwhGUSmCRgsX3tD5ngdN8pkih\n",
            &[],
            "x",
            &mut secrets,
        )
        .unwrap();
        assert_eq!(
            other.text,
            format!("K={}\n", get("WEAVIATE_API_KEY")),
            "the same in another file"
        );
    }

    #[test]
    fn user_values_stay_new_keys_come_with_defaults_and_public_secrets_are_replaced() {
        let user = "# mine\nDB_PASSWORD=s3cret\nDB_HOST=db\nLOG_LEVEL=DEBUG\n";
        let example = "DB_PASSWORD=difyai123456\nDB_HOST=db_postgres\nLOG_LEVEL=INFO\nNEW_TIMEOUT=30\nDIFY_AGENT_SERVER_SECRET_KEY=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\n";
        let renames = crate::dify::renames::table();
        let s = sync(
            Path::new(".env"),
            Some(user),
            example,
            &renames,
            "1.16.0",
            &mut Secrets::default(),
        )
        .unwrap();
        assert!(
            s.text.starts_with("# mine\nDB_PASSWORD=s3cret\n"),
            "{}",
            s.text
        );
        assert!(s.text.contains("LOG_LEVEL=DEBUG") && !s.text.contains("LOG_LEVEL=INFO"));
        assert!(s.text.contains("\nNEW_TIMEOUT=30\n"));
        assert_eq!(
            s.generated,
            vec!["DIFY_AGENT_SERVER_SECRET_KEY".to_string()]
        );
        assert!(!s
            .text
            .contains("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"));
        assert!(
            s.text.contains("DB_HOST=db_postgres"),
            "the rename: {}",
            s.text
        );
        assert_eq!(s.renamed.len(), 1, "{:?}", s.renamed);
        let again = sync(
            Path::new(".env"),
            Some(&s.text),
            example,
            &renames,
            "1.16.0",
            &mut Secrets::default(),
        )
        .unwrap();
        assert!(!again.changed(), "a second sync changes nothing: {again:?}");
    }

    #[test]
    fn a_missing_file_is_written_from_the_example_without_public_secrets() {
        let example =
            "# api\nSECRET_KEY=sk-9f73s3ljTXVcMT3Blb3ljTqtsKiGHXVcMT3BlbkFJLK7U\nMODE=api\n";
        let s = sync(
            Path::new("api.env"),
            None,
            example,
            &[],
            "1.16.0",
            &mut Secrets::default(),
        )
        .unwrap();
        assert!(s.created);
        assert!(s.text.starts_with("# api\nSECRET_KEY=sk-") && s.text.ends_with("MODE=api\n"));
        assert!(!s.text.contains("9f73s3lj"));
    }

    /// Regression (rough edges #5): CRLF became LF, and a `NEW_KEY=` line inside a quoted
    /// multi-line value hid the release's real NEW_KEY.
    #[test]
    fn line_endings_and_quoted_lines_stay_the_users() {
        let user =
            "A=1\r\nCERT=\"-----BEGIN-----\r\nNEW_SETTING=not-a-setting\r\n-----END-----\"\r\n";
        let example = "A=2\nNEW_SETTING=from-the-release\n";
        let s = sync(
            Path::new(".env"),
            Some(user),
            example,
            &[],
            "x",
            &mut Secrets::default(),
        )
        .unwrap();
        assert!(s.text.starts_with(user), "{:?}", s.text);
        assert!(
            s.text.ends_with("NEW_SETTING=from-the-release\r\n"),
            "{:?}",
            s.text
        );
        assert!(
            !s.text.replace("\r\n", "").contains('\n'),
            "only CRLF: {:?}",
            s.text
        );
        let parsed = EnvFile::parse(Path::new(".env"), &s.text).unwrap();
        assert_eq!(parsed.get("NEW_SETTING").unwrap().value, "from-the-release");
    }

    #[test]
    fn a_latin1_file_is_named_by_line_not_mangled() {
        let bytes = b"A=1\nNAME=Jos\xe9\n";
        let err = crate::envfile::utf8(Path::new(".env"), bytes)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(".env:2: byte 0xE9 is not UTF-8") && err.contains("iconv"),
            "{err}"
        );
    }
}
