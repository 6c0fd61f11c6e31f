//! Compose's variable interpolation, in all its forms: `$VAR`, `${VAR}`, `${VAR:-default}`,
//! `${VAR-default}`, `${VAR:?message}`, `${VAR?message}`, `${VAR:+alt}`, `${VAR+alt}`, `$$`
//! for a literal `$`, and nesting inside defaults and alternatives (`${A:-${B:-c}}`).
//! No maintained crate does this the way compose does, so it is written here.
//!
//! Errors carry the variable; the caller adds the file and key.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InterpolateError {
    /// `${VAR:?message}` / `${VAR?message}` with VAR missing.
    #[error("required variable {var} is missing a value: {message}")]
    Required { var: String, message: String },
    #[error("invalid interpolation in `{text}`: {reason}")]
    Invalid { text: String, reason: &'static str },
    /// A value that grows past `MAX_VALUE` (a variable built from itself, doubled each line).
    #[error("its value grows past {} MiB once variables are put in (a variable built from copies of itself?)", MAX_VALUE >> 20)]
    TooLong,
}

/// The longest value interpolation may produce: far above any real setting, far below what
/// would exhaust memory (a 1.4 KB `.env` that doubles a variable 30 times reaches 5 GB).
pub const MAX_VALUE: usize = 1 << 20;

/// The result, and the variables that were used while unset (compose warns about those).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Interpolated {
    pub value: String,
    pub unset: Vec<String>,
}

/// Interpolates `text` with `lookup` (which answers `None` for an unset variable).
pub fn interpolate(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Interpolated, InterpolateError> {
    let mut out = Interpolated::default();
    let mut parser = Parser {
        text,
        pos: 0,
        lookup,
        unset: &mut out.unset,
    };
    out.value = parser.until(None)?;
    Ok(out)
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    lookup: &'a dyn Fn(&str) -> Option<String>,
    unset: &'a mut Vec<String>,
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_name(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn invalid(&self, reason: &'static str) -> InterpolateError {
        InterpolateError::Invalid {
            text: self.text.to_string(),
            reason,
        }
    }

    /// Reads text up to `stop` (the `}` closing a braced expression) or the end.
    fn until(&mut self, stop: Option<char>) -> Result<String, InterpolateError> {
        let mut out = String::new();
        // Plain braces inside a default balance like compose's: `${T:-/e/{hook_id}}` has the
        // default `/e/{hook_id}`.
        let mut depth = 0usize;
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                if depth == 0 {
                    return Ok(out);
                }
                depth -= 1;
            } else if c == '{' && stop.is_some() {
                depth += 1;
            }
            self.pos += c.len_utf8();
            if c != '$' {
                out.push(c);
                continue;
            }
            if out.len() > MAX_VALUE {
                return Err(InterpolateError::TooLong);
            }
            match self.peek() {
                Some('$') => {
                    self.pos += 1;
                    out.push('$');
                }
                Some('{') => {
                    self.pos += 1;
                    out.push_str(&self.braced()?);
                }
                Some(c) if is_name_start(c) => {
                    let name = self.name();
                    out.push_str(&self.value(&name));
                }
                // Compose keeps a `$` that starts nothing (`^REGEX$`, `a $ b`) as it is.
                _ => out.push('$'),
            }
        }
        if out.len() > MAX_VALUE {
            return Err(InterpolateError::TooLong);
        }
        match stop {
            Some(_) => Err(self.invalid("missing closing `}`")),
            None => Ok(out),
        }
    }

    fn name(&mut self) -> String {
        let start = self.pos;
        while self.peek().is_some_and(is_name) {
            self.pos += 1;
        }
        self.text[start..self.pos].to_string()
    }

    fn value(&mut self, name: &str) -> String {
        match (self.lookup)(name) {
            Some(v) => v,
            None => {
                if !self.unset.iter().any(|u| u == name) {
                    self.unset.push(name.to_string());
                }
                String::new()
            }
        }
    }

    /// After `${`: `NAME` then `}` or an operator and its word, then `}`.
    fn braced(&mut self) -> Result<String, InterpolateError> {
        if !self.peek().is_some_and(is_name_start) {
            return Err(self.invalid("`${` must be followed by a variable name"));
        }
        let name = self.name();
        let rest = &self.text[self.pos..];
        let (op, len) = ["}", ":-", ":?", ":+", "-", "?", "+"]
            .iter()
            .find(|op| rest.starts_with(**op))
            .map(|op| (*op, op.len()))
            .ok_or_else(|| self.invalid("unexpected character after the variable name"))?;
        self.pos += len;
        if op == "}" {
            return Ok(self.value(&name));
        }
        // The word is interpolated only when it is used, but must be parsed either way.
        let mut scratch = Vec::new();
        let word = {
            let mut inner = Parser {
                text: self.text,
                pos: self.pos,
                lookup: self.lookup,
                unset: &mut scratch,
            };
            let w = inner.until(Some('}'))?;
            self.pos = inner.pos + 1;
            w
        };
        let current = (self.lookup)(&name);
        let set = current.is_some();
        let non_empty = current.as_deref().is_some_and(|v| !v.is_empty());
        let merge_unset = |unset: &mut Vec<String>, scratch: Vec<String>| {
            for u in scratch {
                if !unset.contains(&u) {
                    unset.push(u);
                }
            }
        };
        Ok(match op {
            ":-" | "-" => {
                let use_default = if op == ":-" { !non_empty } else { !set };
                if use_default {
                    merge_unset(self.unset, scratch);
                    word
                } else {
                    current.unwrap_or_default()
                }
            }
            ":+" | "+" => {
                let use_alt = if op == ":+" { non_empty } else { set };
                if use_alt {
                    merge_unset(self.unset, scratch);
                    word
                } else {
                    String::new()
                }
            }
            _ => {
                // ":?" and "?"
                let missing = if op == ":?" { !non_empty } else { !set };
                if missing {
                    let message = if word.is_empty() {
                        "not set".to_string()
                    } else {
                        word
                    };
                    return Err(InterpolateError::Required { var: name, message });
                }
                current.unwrap_or_default()
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<String> {
        match name {
            "SET" => Some("value".into()),
            "EMPTY" => Some(String::new()),
            "PORT" => Some("5001".into()),
            _ => None,
        }
    }

    fn i(text: &str) -> String {
        interpolate(text, &vars).unwrap().value
    }

    #[test]
    fn all_forms() {
        assert_eq!(i("plain"), "plain");
        assert_eq!(i("$SET and ${SET}"), "value and value");
        assert_eq!(i("api:${PORT}/x"), "api:5001/x");
        assert_eq!(i("${UNSET:-d} ${EMPTY:-d} ${SET:-d}"), "d d value");
        assert_eq!(i("${UNSET-d} [${EMPTY-d}] ${SET-d}"), "d [] value");
        assert_eq!(i("[${UNSET:+a}] [${EMPTY:+a}] ${SET:+a}"), "[] [] a");
        assert_eq!(i("[${UNSET+a}] ${EMPTY+a} ${SET+a}"), "[] a a");
        assert_eq!(i("$$SET costs $$5"), "$SET costs $5");
        assert_eq!(i("${UNSET:-${ALSO:-${SET}}}"), "value");
        assert_eq!(i("${UNSET:-a}${SET}"), "avalue");
        assert_eq!(
            i("${UNSET:-http://localhost:${PORT}/e/{hook_id}}"),
            "http://localhost:5001/e/{hook_id}"
        );
        assert_eq!(i("${UNSET:-}"), "");
        // Dify's ENDPOINT_URL_TEMPLATE: plain braces in the default are part of it.
        assert_eq!(i("${SET:-http://localhost/e/{hook_id}}"), "value");
        assert_eq!(
            i("${UNSET:-http://localhost/e/{hook_id}}"),
            "http://localhost/e/{hook_id}"
        );
        assert_eq!(i("{literal} ${SET}"), "{literal} value");
        assert_eq!(i("${SET:?must}"), "value");
    }

    #[test]
    fn unset_variables_are_reported_once() {
        let r = interpolate("$NOPE ${NOPE} ${SET:-$ALSO_NOT}", &vars).unwrap();
        assert_eq!(r.value, "  value");
        assert_eq!(
            r.unset,
            vec!["NOPE"],
            "an unused default's variables are not reported"
        );
        let r = interpolate("${UNSET:-$ALSO_NOT}", &vars).unwrap();
        assert_eq!(r.unset, vec!["ALSO_NOT"]);
    }

    #[test]
    fn required_variables_fail_with_their_message() {
        assert_eq!(
            interpolate("${DB_PASSWORD:?set DB_PASSWORD in .env}", &vars),
            Err(InterpolateError::Required {
                var: "DB_PASSWORD".into(),
                message: "set DB_PASSWORD in .env".into()
            })
        );
        assert!(interpolate("${EMPTY:?x}", &vars).is_err());
        assert_eq!(i("[${EMPTY?x}]"), "[]");
        assert_eq!(
            interpolate("${UNSET?}", &vars),
            Err(InterpolateError::Required {
                var: "UNSET".into(),
                message: "not set".into()
            })
        );
    }

    #[test]
    fn malformed_templates_are_errors() {
        // A `$` that starts nothing stays, as compose keeps it.
        for literal in ["cost $5", "^REGEX$", "a $ b", "$}"] {
            assert_eq!(interpolate(literal, &vars).unwrap().value, literal);
        }
        for bad in ["${", "${SET", "${1X}", "${SET!x}", "${}"] {
            assert!(
                matches!(
                    interpolate(bad, &vars),
                    Err(InterpolateError::Invalid { .. })
                ),
                "{bad}"
            );
        }
    }
}
