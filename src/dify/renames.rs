//! Settings Dify renamed between releases, carried over so an old `.env` keeps working. Each
//! entry has a test. A rename applies only when the release being installed needs it (its
//! compose file has the service the new value names).

use std::collections::BTreeSet;

use crate::envfile::EnvFile;

#[derive(Debug, Clone)]
pub enum Rename {
    /// A value that named something Dify renamed: `from` becomes one of `to`, chosen by another
    /// variable (`DB_HOST=db` becomes `db_postgres`, or `db_mysql` when `DB_TYPE=mysql`).
    Value {
        key: &'static str,
        from: &'static str,
        /// (variable, its value, the new value); the last entry is the fallback.
        to: &'static [(&'static str, &'static str, &'static str)],
        why: &'static str,
    },
    /// A variable Dify renamed: its value is carried to the new name.
    Key {
        from: &'static str,
        to: &'static str,
        why: &'static str,
    },
}

/// The known renames.
pub fn table() -> Vec<Rename> {
    const AGENT_1_17: &str = "Dify 1.17 renamed the agent backend's local sandbox settings; the old names are still read as fallbacks, but the new token is required";
    vec![
        Rename::Value {
            key: "DB_HOST",
            from: "db",
            to: &[("DB_TYPE", "mysql", "db_mysql"), ("", "", "db_postgres")],
            why:
                "Dify renamed the `db` service to `db_postgres` / `db_mysql` (dify #31089, #28706)",
        },
        Rename::Key {
            from: "DIFY_AGENT_SHELLCTL_ENTRYPOINT",
            to: "DIFY_AGENT_LOCAL_SANDBOX_ENDPOINT",
            why: AGENT_1_17,
        },
        Rename::Key {
            from: "DIFY_AGENT_SHELLCTL_AUTH_TOKEN",
            to: "DIFY_AGENT_LOCAL_SANDBOX_AUTH_TOKEN",
            why: AGENT_1_17,
        },
        Rename::Key {
            from: "AGENT_BACKEND_RUN_TIMEOUT_SECONDS",
            to: "DIFY_AGENT_RUN_TIMEOUT_SECONDS",
            why: "Dify 1.17 renamed the agent run timeout",
        },
        Rename::Key {
            from: "COOKIEYES_SITE_KEY",
            to: "TURNSTILE_SITE_KEY",
            why: "Dify 1.17 replaced CookieYes by Cloudflare Turnstile",
        },
    ]
}

/// The table, kept to the renames the release can use: a value rename when the release has
/// the service the new value names, a key rename when the release's examples have the new
/// key (`keys`).
pub fn for_release(services: &[String], keys: &BTreeSet<String>) -> Vec<Rename> {
    table()
        .into_iter()
        .filter(|r| match r {
            Rename::Value { to, .. } => to.iter().any(|(_, _, v)| services.iter().any(|s| s == v)),
            Rename::Key { to, .. } => keys.contains(*to),
        })
        .collect()
}

impl Rename {
    /// Applies to the user's lines (`env` is the same file parsed); notes what it changed.
    pub fn apply(&self, env: &EnvFile, lines: &mut Vec<String>, notes: &mut Vec<String>) {
        match self {
            Rename::Value { key, from, to, why } => {
                let Some(e) = env.get(key).filter(|e| e.value == *from) else {
                    return;
                };
                let pick = to
                    .iter()
                    .find(|(var, val, _)| {
                        var.is_empty() || env.get(var).is_some_and(|x| x.value == *val)
                    })
                    .map(|(_, _, new)| *new)
                    .unwrap_or(from);
                if let Some(line) = lines.get_mut(e.line.saturating_sub(1)) {
                    if crate::envfile::line_key(line) == Some(*key) {
                        *line = format!("{key}={pick}");
                        notes.push(format!("{key}: {from} -> {pick} ({why})"));
                    }
                }
            }
            Rename::Key { from, to, why } => {
                let Some(e) = env.get(from) else { return };
                if env.get(to).is_some() {
                    return;
                }
                lines.push(format!("# {from} is called {to} from now on ({why})"));
                lines.push(format!("{to}={}", e.value));
                notes.push(format!("{from} -> {to} ({why})"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn renamed(text: &str, services: &[&str]) -> Vec<String> {
        let env = EnvFile::parse(Path::new(".env"), text).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let mut notes = Vec::new();
        let services: Vec<String> = services.iter().map(|s| s.to_string()).collect();
        let keys: BTreeSet<String> = ["DIFY_AGENT_LOCAL_SANDBOX_AUTH_TOKEN".to_string()].into();
        for r in for_release(&services, &keys) {
            r.apply(&env, &mut lines, &mut notes);
        }
        lines
    }

    /// DB_HOST=db (Dify up to 1.13) names a service later releases call db_postgres.
    #[test]
    fn db_host_db_becomes_db_postgres_or_db_mysql() {
        let both = ["db_postgres", "db_mysql", "api"];
        assert_eq!(renamed("DB_HOST=db\n", &both), ["DB_HOST=db_postgres"]);
        assert_eq!(
            renamed("DB_TYPE=mysql\nDB_HOST=db\n", &both)[1],
            "DB_HOST=db_mysql"
        );
        assert_eq!(
            renamed("DB_HOST=my-own-db\n", &both),
            ["DB_HOST=my-own-db"],
            "a user's own host stays"
        );
        assert_eq!(
            renamed("DB_HOST=db\n", &["db", "api"]),
            ["DB_HOST=db"],
            "a release that still has `db`"
        );
    }

    /// Dify 1.17: the agent's local sandbox token under its new name (required there), the
    /// user's value carried; a release without the new key leaves the old name alone.
    #[test]
    fn shellctl_token_becomes_local_sandbox_token_where_the_release_reads_it() {
        let text = "DIFY_AGENT_SHELLCTL_AUTH_TOKEN=users-own-token\n";
        let out = renamed(text, &["api"]);
        assert_eq!(out[0], "DIFY_AGENT_SHELLCTL_AUTH_TOKEN=users-own-token");
        assert_eq!(
            out.last().unwrap(),
            "DIFY_AGENT_LOCAL_SANDBOX_AUTH_TOKEN=users-own-token"
        );
        let env = EnvFile::parse(Path::new(".env"), text).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        for r in for_release(&["api".to_string()], &BTreeSet::new()) {
            r.apply(&env, &mut lines, &mut Vec::new());
        }
        assert_eq!(lines, ["DIFY_AGENT_SHELLCTL_AUTH_TOKEN=users-own-token"]);
    }
}
