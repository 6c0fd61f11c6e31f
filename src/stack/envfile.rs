//! `.env` files read by compose's rules: `KEY=VALUE` lines, `#` comments, optional `export `,
//! single quotes (literal), double quotes (with `\n`, `\t`, `\\`, `\"` escapes, may span lines),
//! and unquoted values whose inline comment starts at ` #`.
//!
//! Interpolation of `${VAR}` inside values is the compose model's job, not this reader's.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum EnvFileError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// One `KEY=VALUE` entry with the line it started on (for error messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub line: usize,
    /// Single-quoted: taken as written, never interpolated.
    pub literal: bool,
}

/// The entries of an env file, in file order; a key set twice keeps its last value.
#[derive(Debug, Clone, Default)]
pub struct EnvFile {
    pub path: PathBuf,
    pub entries: Vec<Entry>,
}

impl EnvFile {
    /// Reads `path`; a missing file is `Ok(None)` because `.env` is optional everywhere.
    pub fn read_optional(path: &Path) -> Result<Option<EnvFile>, EnvFileError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(path, &text).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(EnvFileError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    pub fn parse(path: &Path, text: &str) -> Result<EnvFile, EnvFileError> {
        // Editors on Windows start files with a byte-order mark; compose ignores it.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut entries = Vec::new();
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            let start = i;
            let raw = lines[i].trim_start();
            i += 1;
            if raw.is_empty() || raw.starts_with('#') {
                continue;
            }
            let raw = raw.strip_prefix("export ").unwrap_or(raw).trim_start();
            let syntax = |message: String| EnvFileError::Syntax {
                path: path.to_path_buf(),
                line: start + 1,
                message,
            };
            let Some((key, rest)) = raw.split_once('=') else {
                return Err(syntax(format!("`{raw}` is not KEY=VALUE")));
            };
            let key = key.trim();
            if key.is_empty()
                || !key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            {
                return Err(syntax(format!("`{key}` is not a valid variable name")));
            }
            let rest = rest.trim_start();
            let literal = rest.starts_with('\'');
            let value = if let Some(body) = rest.strip_prefix('\'') {
                match body.find('\'') {
                    Some(end) => body[..end].to_string(),
                    None => return Err(syntax(format!("unterminated single quote in {key}"))),
                }
            } else if let Some(body) = rest.strip_prefix('"') {
                // Double-quoted values may continue on the following lines.
                let mut text = body.to_string();
                loop {
                    if let Some(v) = unescape_until_quote(&text) {
                        break v;
                    }
                    if i >= lines.len() {
                        return Err(syntax(format!("unterminated double quote in {key}")));
                    }
                    text.push('\n');
                    text.push_str(lines[i]);
                    i += 1;
                }
            } else {
                let v = match rest.find(" #").or_else(|| rest.find("\t#")) {
                    Some(pos) => &rest[..pos],
                    None => rest,
                };
                v.trim_end().to_string()
            };
            entries.push(Entry {
                key: key.to_string(),
                value,
                line: start + 1,
                literal,
            });
        }
        Ok(EnvFile {
            path: path.to_path_buf(),
            entries,
        })
    }

    /// The last value given to `key`, if any.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().rev().find(|e| e.key == key)
    }

    /// The variables as compose sees them: each value interpolated (unless single-quoted) with
    /// the process environment and the entries above it; the process environment wins over the
    /// file for the result too.
    pub fn resolve(
        &self,
        process: &std::collections::HashMap<String, String>,
    ) -> Result<std::collections::HashMap<String, String>, EnvFileError> {
        let mut vars = self.own_values(process)?;
        for (k, v) in process {
            vars.insert(k.clone(), v.clone());
        }
        Ok(vars)
    }

    /// This file's own variables (an `env_file:` of a service), each value interpolated like
    /// in [`EnvFile::resolve`], but without the process environment added or winning.
    pub fn own_values(
        &self,
        process: &std::collections::HashMap<String, String>,
    ) -> Result<std::collections::HashMap<String, String>, EnvFileError> {
        let mut vars = std::collections::HashMap::new();
        for e in &self.entries {
            let value = if e.literal {
                e.value.clone()
            } else {
                let lookup = |name: &str| process.get(name).or_else(|| vars.get(name)).cloned();
                super::interpolate::interpolate(&e.value, &lookup)
                    .map_err(|err| EnvFileError::Syntax {
                        path: self.path.clone(),
                        line: e.line,
                        message: format!("{}: {err}", e.key),
                    })?
                    .value
            };
            vars.insert(e.key.clone(), value);
        }
        Ok(vars)
    }

    /// Where `key` was set, as `file:line`, for error messages.
    pub fn origin(&self, key: &str) -> String {
        match self.get(key) {
            Some(e) => format!("{}:{} ({key})", self.path.display(), e.line),
            None => format!("{} ({key})", self.path.display()),
        }
    }
}

/// Unescapes a double-quoted body up to its closing quote; `None` when there is no closing quote.
fn unescape_until_quote(body: &str) -> Option<String> {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                other @ ('\\' | '"' | '$') => out.push(other),
                other => {
                    out.push('\\');
                    out.push(other);
                }
            },
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> EnvFile {
        EnvFile::parse(Path::new(".env"), text).unwrap()
    }

    /// Regression (hardening #4): a small .env doubling a variable 30 times reached 5 GB and
    /// aborted the process. Now the value is refused once it passes 1 MiB, naming it.
    #[test]
    fn env_doubling_bomb_is_refused_naming_the_variable() {
        let mut text = String::from("A=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n");
        for _ in 0..30 {
            text.push_str("A=${A}${A}\n");
        }
        let err = parse(&text)
            .resolve(&Default::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(".env:") && err.contains("A: its value grows past 1 MiB"),
            "{err}"
        );
    }

    /// Regression (hardening #12): a `.env` saved with a UTF-8 BOM was refused.
    #[test]
    fn env_with_a_utf8_bom_reads_like_compose() {
        let f = parse("\u{feff}SECRET_KEY=abc\nB=2\n");
        assert_eq!(f.get("SECRET_KEY").unwrap().value, "abc");
    }

    #[test]
    fn compose_rules() {
        let f = parse(
            "# comment\nA=1\nexport B = two\nC='lit $X # not comment'\nD=\"a\\nb\"\nE=val # comment\nF=\nG=x#y\nH=\"multi\nline\"\nA=3\n",
        );
        assert_eq!(f.get("A").unwrap().value, "3");
        assert_eq!(f.get("B").unwrap().value, "two");
        assert_eq!(f.get("C").unwrap().value, "lit $X # not comment");
        assert_eq!(f.get("D").unwrap().value, "a\nb");
        assert_eq!(f.get("E").unwrap().value, "val");
        assert_eq!(f.get("F").unwrap().value, "");
        assert_eq!(f.get("G").unwrap().value, "x#y");
        assert_eq!(f.get("H").unwrap().value, "multi\nline");
        assert_eq!(f.get("H").unwrap().line, 9);
    }

    #[test]
    fn values_are_interpolated_like_compose() {
        let f = parse("VECTOR_STORE=qdrant\nCOMPOSE_PROFILES=${VECTOR_STORE:-weaviate},${DB_TYPE:-postgresql}\nLIT='${VECTOR_STORE}'\n");
        let mut process = std::collections::HashMap::new();
        let vars = f.resolve(&process).unwrap();
        assert_eq!(vars["COMPOSE_PROFILES"], "qdrant,postgresql");
        assert_eq!(vars["LIT"], "${VECTOR_STORE}");
        process.insert("DB_TYPE".to_string(), "mysql".to_string());
        process.insert("VECTOR_STORE".to_string(), "milvus".to_string());
        let vars = f.resolve(&process).unwrap();
        assert_eq!(
            vars["COMPOSE_PROFILES"], "milvus,mysql",
            "the process environment wins"
        );
        assert_eq!(vars["VECTOR_STORE"], "milvus");
    }

    #[test]
    fn errors_name_file_and_line() {
        let err = EnvFile::parse(Path::new("/x/.env"), "A=1\nnot a pair\n").unwrap_err();
        assert_eq!(err.to_string(), "/x/.env:2: `not a pair` is not KEY=VALUE");
        let err = EnvFile::parse(Path::new(".env"), "A=\"open\n").unwrap_err();
        assert!(err
            .to_string()
            .contains(".env:1: unterminated double quote in A"));
    }
}
