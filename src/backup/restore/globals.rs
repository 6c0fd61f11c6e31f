//! `globals.sql` (`pg_dumpall --globals-only`) read, never run: it is a psql script, and an
//! archive's script could hold `\!` (a shell), `COPY ... TO PROGRAM` or a new SUPERUSER. Only
//! what a restore needs is taken from it: the roles the install's own settings name (the
//! database user), created when the fresh server lacks them, with LOGIN and the archived
//! password hash and no other attribute. Everything else is left out and named.

use std::collections::BTreeMap;

/// A role as the script describes it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Role {
    /// `SCRAM-SHA-256$...` or `md5...`, when the script gives one of those.
    pub password_hash: Option<String>,
}

/// What the script says: its roles, and what was left out (first words of each statement).
#[derive(Debug, Default)]
pub struct Globals {
    pub roles: BTreeMap<String, Role>,
    pub left_out: Vec<String>,
}

/// Reads the script's statements (one per line, as pg_dumpall writes them).
pub fn parse(text: &str) -> Globals {
    let mut out = Globals::default();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with("--") || is_harmless(line) {
            continue;
        }
        if let Some(name) = line
            .strip_prefix("CREATE ROLE ")
            .and_then(|r| r.strip_suffix(';'))
            .and_then(role_name)
        {
            out.roles.entry(name).or_default();
            continue;
        }
        if let Some((name, rest)) = line
            .strip_prefix("ALTER ROLE ")
            .and_then(|r| r.split_once(" WITH "))
        {
            if let Some(name) = role_name(name) {
                let role = out.roles.entry(name).or_default();
                role.password_hash = password_hash(rest);
                continue;
            }
        }
        out.left_out.push(line.chars().take(60).collect());
    }
    out
}

/// `SET ...;` and the `\restrict` / `\unrestrict` guards newer pg_dumpall writes.
fn is_harmless(line: &str) -> bool {
    let restrict = line.starts_with("\\restrict ") || line.starts_with("\\unrestrict ");
    let token_only = line
        .split_whitespace()
        .nth(1)
        .is_some_and(|t| t.bytes().all(|b| b.is_ascii_alphanumeric()))
        && line.split_whitespace().count() == 2;
    (restrict && token_only)
        || (line.starts_with("SET ")
            && line.ends_with(';')
            && !line.contains('\\')
            && line.matches(';').count() == 1)
}

/// A role name as pg_dumpall writes it: bare (lowercase letters, digits, `_`) or quoted.
fn role_name(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        let name = inner.replace("\"\"", "\"");
        return (!name.is_empty() && !name.contains('\0')).then_some(name);
    }
    (!raw.is_empty()
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
    .then(|| raw.to_string())
}

/// `PASSWORD 'SCRAM-SHA-256$...'` (or md5): the hash, when it is one.
fn password_hash(attrs: &str) -> Option<String> {
    let at = attrs.find("PASSWORD '")?;
    let rest = &attrs[at + "PASSWORD '".len()..];
    let hash = &rest[..rest.find('\'')?];
    let scram = hash.starts_with("SCRAM-SHA-256$")
        && hash
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"$:+/=-".contains(&b));
    let md5 = hash.len() == 35
        && hash.starts_with("md5")
        && hash[3..].bytes().all(|b| b.is_ascii_hexdigit());
    (scram || md5).then(|| hash.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_roles_and_their_password_hashes_are_read() {
        let text = "--\n-- PostgreSQL database cluster dump\n--\n\n\\restrict AbC123\n\nSET default_transaction_read_only = off;\nCREATE ROLE postgres;\nALTER ROLE postgres WITH SUPERUSER INHERIT LOGIN PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$a2V5:c2lnbg==';\nCREATE ROLE evil;\nALTER ROLE evil WITH SUPERUSER LOGIN PASSWORD 'x''; COPY t TO PROGRAM ''id''; --';\n\\! touch /tmp/pwned\nCOPY (SELECT 1) TO PROGRAM 'id';\nSET a = 1; DROP TABLE x;\n\\unrestrict AbC123\n";
        let g = parse(text);
        assert_eq!(
            g.roles["postgres"].password_hash.as_deref(),
            Some("SCRAM-SHA-256$4096:c2FsdA==$a2V5:c2lnbg==")
        );
        assert_eq!(g.roles["evil"].password_hash, None, "not a hash: not taken");
        assert!(g.left_out.iter().any(|l| l.starts_with("\\! touch")));
        assert!(g.left_out.iter().any(|l| l.starts_with("COPY")));
        assert!(g.left_out.iter().any(|l| l.starts_with("SET a = 1; DROP")));
        assert_eq!(
            role_name("\"Weird \"\"name\"\"\""),
            Some("Weird \"name\"".into())
        );
        assert_eq!(role_name("bad;name"), None);
    }
}
