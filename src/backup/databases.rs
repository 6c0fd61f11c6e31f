//! The database commands a backup and a restore run inside the database's own container (the
//! server's own tools, matching its version): PostgreSQL's `pg_dump -Fc` per database and
//! `pg_dumpall --globals-only`, `pg_restore`; MySQL's `mysqldump --single-transaction` and
//! `mysql`. Passwords go in the environment (PGPASSWORD, MYSQL_PWD), never on a command line.

use super::plan::{Database, DbKind};
use super::BackupError;
use crate::engine::{exec, Engine};

/// The environment the tools run with.
pub fn env(db: &Database) -> Vec<String> {
    let mut env = Vec::new();
    match db.kind {
        DbKind::Postgres => {
            env.push(format!("PGUSER={}", db.user));
            if let Some(p) = &db.password {
                env.push(format!("PGPASSWORD={p}"));
            }
        }
        DbKind::Mysql => {
            if let Some(p) = &db.password {
                env.push(format!("MYSQL_PWD={p}"));
            }
        }
    }
    env
}

fn strings(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

pub fn pg_dump_command(db: &Database, database: &str) -> Vec<String> {
    strings(&["pg_dump", "-U", &db.user, "-Fc", "-d", database])
}

pub fn pg_globals_command(db: &Database) -> Vec<String> {
    strings(&["pg_dumpall", "-U", &db.user, "--globals-only"])
}

pub fn mysqldump_command(database: &str) -> Vec<String> {
    strings(&[
        "mysqldump",
        "-uroot",
        "--single-transaction",
        "--routines",
        "--triggers",
        "--events",
        "--databases",
        database,
    ])
}

/// A `psql` query, tuples only, against `database`.
fn psql(db: &Database, database: &str, sql: &str) -> Vec<String> {
    strings(&[
        "psql",
        "-U",
        &db.user,
        "-d",
        database,
        "-v",
        "ON_ERROR_STOP=1",
        "-Atc",
        sql,
    ])
}

/// Runs a query; its rows.
pub async fn query(
    engine: &Engine,
    db: &Database,
    container: &str,
    database: &str,
    sql: &str,
) -> Result<Vec<String>, BackupError> {
    let cmd = psql(db, database, sql);
    let done = exec::run(engine, &db.service, container, &cmd, &env(db)).await?;
    if done.code != 0 {
        return Err(BackupError::Dump {
            service: db.service.clone(),
            what: format!("psql -c {sql:?}"),
            code: done.code,
            stderr: done.stderr,
        });
    }
    Ok(done.stdout.lines().map(str::to_string).collect())
}

/// The databases of a PostgreSQL server (templates left out).
pub async fn postgres_databases(
    engine: &Engine,
    db: &Database,
    container: &str,
) -> Result<Vec<String>, BackupError> {
    query(
        engine,
        db,
        container,
        "postgres",
        "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1",
    )
    .await
}

/// Tables, views and sequences outside the system schemas: zero means the database is empty.
pub const PG_USER_RELATIONS: &str = "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')";

/// `pg_restore` as `role` (not a superuser), objects owned by it (`--no-owner`), no GRANTs
/// from the dump, stopping at the first error.
pub fn pg_restore_command(role: &str, database: &str) -> Vec<String> {
    strings(&[
        "pg_restore",
        "-U",
        role,
        "--no-owner",
        "--no-privileges",
        "--exit-on-error",
        "-d",
        database,
    ])
}

pub fn mysql_restore_command() -> Vec<String> {
    strings(&["mysql", "-uroot"])
}

/// SQL identifier quoting (`"name"`, with `"` doubled).
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Database {
        Database {
            service: "db".into(),
            kind: DbKind::Postgres,
            user: "dify".into(),
            password: Some("s3cret".into()),
            database: None,
            data_targets: vec![],
        }
    }

    #[test]
    fn passwords_stay_off_command_lines() {
        let d = db();
        for cmd in [
            pg_dump_command(&d, "dify"),
            pg_globals_command(&d),
            pg_restore_command("difyctl_restore_1", "dify"),
            mysqldump_command("dify"),
        ] {
            assert!(!cmd.join(" ").contains("s3cret"), "{cmd:?}");
        }
        assert!(env(&d).contains(&"PGPASSWORD=s3cret".to_string()));
        assert_eq!(ident(r#"we"ird"#), r#""we""ird""#);
    }
}
