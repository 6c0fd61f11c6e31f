//! `.env` files read by compose's rules (compose-go's `dotenv` parser): `KEY=VALUE` or
//! `KEY: VALUE`, `#` comments, an optional `export` (then spaces or tabs), a bare `KEY` that
//! takes its value from the process environment (none there: not set), single quotes (literal,
//! `\'` for a quote, may span lines), double quotes (the shell's escapes `\a \b \f \n \r
//! \t \v \\ \" \$` and octal `\0nnn`, may span lines), and unquoted values whose inline
//! comment starts at ` #`. Keys are letters, digits and `_ . - [ ]`.
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
    /// A bare `KEY`: its value is the process environment's (none there: not set).
    pub inherited: bool,
}

/// The file's text; a byte that is not UTF-8 (a file saved as Latin-1) is named by line, with
/// the way to convert it, rather than read wrongly.
pub fn utf8<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a str, EnvFileError> {
    std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        let line = bytes[..at].iter().filter(|b| **b == b'\n').count() + 1;
        EnvFileError::Syntax {
            path: path.to_path_buf(),
            line,
            message: format!(
                "byte 0x{byte:02X} is not UTF-8 (the file was saved in another encoding, such as Latin-1): convert it, e.g. `iconv -f latin1 -t utf-8 {p} > {p}.utf8 && mv {p}.utf8 {p}`",
                byte = bytes.get(at).copied().unwrap_or(0),
                p = path.display()
            ),
        }
    })
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
        match std::fs::read(path) {
            Ok(bytes) => Self::parse(path, utf8(path, &bytes)?).map(Some),
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
        let mut p = Parser {
            path,
            rest: text,
            line: 1,
        };
        let mut entries = Vec::new();
        while let Some(entry) = p.next_entry()? {
            entries.push(entry);
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
        self.resolve_onto(process, &mut vars)?;
        Ok(vars)
    }

    /// This file's variables added to `vars` (those of the files read before it, which its
    /// values may use), each interpolated with the process environment first.
    pub fn resolve_onto(
        &self,
        process: &std::collections::HashMap<String, String>,
        vars: &mut std::collections::HashMap<String, String>,
    ) -> Result<(), EnvFileError> {
        for e in &self.entries {
            let value = if e.inherited {
                match process.get(&e.key) {
                    Some(v) => v.clone(),
                    None => {
                        vars.remove(&e.key);
                        continue;
                    }
                }
            } else if e.literal {
                e.value.clone()
            } else {
                let lookup = |name: &str| process.get(name).or_else(|| vars.get(name)).cloned();
                crate::interpolate::interpolate(&e.value, &lookup)
                    .map_err(|err| EnvFileError::Syntax {
                        path: self.path.clone(),
                        line: e.line,
                        message: format!("{}: {err}", e.key),
                    })?
                    .value
            };
            vars.insert(e.key.clone(), value);
        }
        Ok(())
    }

    /// Where `key` was set, as `file:line`, for error messages.
    pub fn origin(&self, key: &str) -> String {
        match self.get(key) {
            Some(e) => format!("{}:{} ({key})", self.path.display(), e.line),
            None => format!("{} ({key})", self.path.display()),
        }
    }
}

/// compose-go's dotenv parser, over the whole text (quoted values may span lines).
struct Parser<'a> {
    path: &'a Path,
    rest: &'a str,
    line: usize,
}

impl Parser<'_> {
    fn error(&self, message: String) -> EnvFileError {
        EnvFileError::Syntax {
            path: self.path.to_path_buf(),
            line: self.line,
            message,
        }
    }

    /// Skips blank lines and comments; `false` at the end.
    fn skip_blank(&mut self) -> bool {
        loop {
            let trimmed = self.rest.trim_start_matches([' ', '\t', '\r']);
            if let Some(after) = trimmed.strip_prefix('\n') {
                self.line += 1;
                self.rest = after;
            } else if trimmed.starts_with('#') {
                match trimmed.find('\n') {
                    Some(i) => self.rest = &trimmed[i..],
                    None => self.rest = "",
                }
            } else {
                self.rest = trimmed;
                return !trimmed.is_empty();
            }
        }
    }

    fn next_entry(&mut self) -> Result<Option<Entry>, EnvFileError> {
        if !self.skip_blank() {
            return Ok(None);
        }
        let line = self.line;
        // `export` then whitespace.
        if let Some(after) = self.rest.strip_prefix("export") {
            if after.starts_with([' ', '\t']) {
                self.rest = after.trim_start_matches([' ', '\t']);
            }
        }
        let mut end = None;
        for (i, c) in self.rest.char_indices() {
            match c {
                '=' | ':' | '\n' => {
                    end = Some((i, c));
                    break;
                }
                c if c.is_whitespace() => {}
                '_' | '.' | '-' | '[' | ']' => {}
                c if c.is_alphanumeric() => {}
                c => {
                    let key: String = self.rest[..i].trim().to_string();
                    return Err(self.error(format!(
                        "unexpected character {c:?} in variable name {:?}",
                        key + &c.to_string()
                    )));
                }
            }
        }
        // A line without `=` or `:` is a bare key, inherited from the environment.
        let (key, value_start, inherited) = match end {
            Some((i, '=' | ':')) => (self.rest[..i].trim_end(), i + 1, false),
            Some((i, _)) => (self.rest[..i].trim_end(), i, true),
            None => (self.rest.trim_end(), self.rest.len(), true),
        };
        if key.chars().any(char::is_whitespace) {
            return Err(self.error(format!(
                "`{key}` is not KEY=VALUE (a variable name has no spaces)"
            )));
        }
        let key = key.to_string();
        if inherited {
            self.rest = &self.rest[value_start..];
            return Ok(Some(Entry {
                key,
                value: String::new(),
                line,
                literal: false,
                inherited: true,
            }));
        }
        self.rest = self.rest[value_start..].trim_start_matches([' ', '\t']);
        let (value, literal) = self.value(&key).map_err(|e| match e {
            EnvFileError::Syntax { path, message, .. } => EnvFileError::Syntax {
                path,
                line,
                message,
            },
            other => other,
        })?;
        Ok(Some(Entry {
            key,
            value,
            line,
            literal,
            inherited: false,
        }))
    }

    /// The value after `=`: quoted (to its closing quote) or to the end of the line.
    fn value(&mut self, key: &str) -> Result<(String, bool), EnvFileError> {
        let quote = match self.rest.chars().next() {
            Some(q @ ('\'' | '"')) => q,
            _ => {
                // To the end of the line; the newline itself is left for `skip_blank`.
                let end = self.rest.find('\n').unwrap_or(self.rest.len());
                let line = &self.rest[..end];
                let line = line.strip_suffix('\r').unwrap_or(line);
                let value = line.split(" #").next().unwrap_or("").trim_end().to_string();
                self.rest = &self.rest[end..];
                return Ok((value, false));
            }
        };
        let body = &self.rest[1..];
        let mut escaped = false;
        for (i, c) in body.char_indices() {
            if c == '\n' {
                self.line += 1;
            }
            if c == quote && !escaped {
                let raw = &body[..i];
                self.rest = &body[i + 1..];
                // The rest of the line after the closing quote: only a comment may follow.
                let (tail, _) = self.rest.split_once('\n').unwrap_or((self.rest, ""));
                let tail = tail.trim();
                if !tail.is_empty() && !tail.starts_with('#') {
                    return Err(self.error(format!(
                        "{key}: unexpected `{tail}` after the closing quote"
                    )));
                }
                return Ok(if quote == '"' {
                    (unescape(raw), false)
                } else {
                    (raw.replace("\\'", "'"), true)
                });
            }
            escaped = c == '\\' && !escaped;
        }
        Err(self.error(format!("unterminated quoted value in {key}")))
    }
}

/// The escapes of a double-quoted value, as compose-go's dotenv expands them: the shell's
/// `\a \b \f \n \r \t \v \\ \"`, octal `\0nnn`, and `\$` (a literal `$`, written `$$` for
/// the interpolation that follows); any other backslash stays.
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.peek().copied() {
            Some(e @ ('a' | 'b' | 'f' | 'n' | 'r' | 't' | 'v' | '\\' | '"')) => {
                chars.next();
                out.push(match e {
                    'a' => '\u{7}',
                    'b' => '\u{8}',
                    'f' => '\u{c}',
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    'v' => '\u{b}',
                    other => other,
                });
            }
            Some('$') => {
                chars.next();
                out.push_str("$$");
            }
            Some('0') => {
                chars.next();
                let mut digits = String::new();
                while digits.len() < 3 && chars.peek().is_some_and(|d| d.is_digit(8)) {
                    digits.extend(chars.next());
                }
                match u32::from_str_radix(if digits.is_empty() { "0" } else { &digits }, 8)
                    .ok()
                    .and_then(char::from_u32)
                {
                    Some(ch) => out.push(ch),
                    None => {
                        out.push_str("\\0");
                        out.push_str(&digits);
                    }
                }
            }
            _ => out.push('\\'),
        }
    }
    out
}

/// The key a `KEY=value` (or `export KEY=value`) line sets.
pub fn line_key(line: &str) -> Option<&str> {
    let t = line.trim_start();
    let t = t.strip_prefix("export ").unwrap_or(t).trim_start();
    let (k, _) = t.split_once('=')?;
    let k = k.trim();
    (!k.is_empty()
        && !k.starts_with('#')
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
    .then_some(k)
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
        assert_eq!(
            err.to_string(),
            "/x/.env:2: `not a pair` is not KEY=VALUE (a variable name has no spaces)"
        );
        let err = EnvFile::parse(Path::new(".env"), "A=\"open\nB=2\n").unwrap_err();
        assert!(
            err.to_string()
                .contains(".env:1: unterminated quoted value in A"),
            "{err}"
        );
    }
}
