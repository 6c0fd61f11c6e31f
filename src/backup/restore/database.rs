//! Loading the archive's database dumps: the database services (and what they depend on) are
//! started alone and waited for, then each dump is streamed into the server's own restore
//! tool through stdin: roles first (`globals.sql`), then each database, created when the
//! fresh server does not have it yet. A database that already holds tables is refused (the
//! preflight made sure the server's files were empty, so this is a last guard).

use tokio::io::AsyncWriteExt;

use super::parts::feed_writer;
use super::{up_options, Request, RestoreError};
use crate::backup::archive::Verified;
use crate::backup::databases::{self, ident};
use crate::backup::manifest::PartKind;
use crate::backup::meter::Meter;
use crate::backup::plan::{self, Database, DbKind};
use crate::engine::exec;
use crate::engine::progress::Progress;
use crate::engine::reconcile::UpOptions;
use crate::engine::reconcile::{self, project_containers, service_label};
use crate::engine::Engine;
use crate::stack::model::Stack;

pub async fn load_all(
    engine: &Engine,
    v: &Verified,
    stack: &Stack,
    req: &Request,
    progress: &Progress,
    meter: &Meter,
) -> Result<(), RestoreError> {
    let opts = up_options(v, &stack.dir, req);
    load_databases(engine, v, stack, &opts, progress, meter, false).await
}

/// The archive's databases put back over what the servers hold now (an upgrade's rollback):
/// each dumped database is dropped and loaded again; the database services alone are
/// started first, and every other service of the project is stopped so nothing writes
/// meanwhile.
pub async fn replace_all(
    engine: &Engine,
    v: &Verified,
    stack: &Stack,
    opts: &UpOptions,
    progress: &Progress,
    meter: &Meter,
) -> Result<(), RestoreError> {
    load_databases(engine, v, stack, opts, progress, meter, true).await
}

async fn load_databases(
    engine: &Engine,
    v: &Verified,
    stack: &Stack,
    opts: &UpOptions,
    progress: &Progress,
    meter: &Meter,
    replace: bool,
) -> Result<(), RestoreError> {
    let servers: Vec<Database> = plan::plan(stack, &[])
        .databases
        .into_iter()
        .filter(|d| {
            v.manifest
                .parts
                .iter()
                .any(|p| part_service(&p.kind) == Some(&d.service))
        })
        .collect();
    if servers.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = servers.iter().map(|d| d.service.clone()).collect();
    reconcile::up(engine, &stack.only(&names), opts, progress).await?;
    let containers = project_containers(engine, &stack.project, false).await?;
    if replace {
        stop_others(engine, &containers, &names).await?;
    }
    for db in &servers {
        let id = containers
            .iter()
            .find(|c| service_label(c) == Some(db.service.as_str()))
            .and_then(|c| c.id.clone())
            .unwrap_or_default();
        let loader = Loader::create(engine, db, &id).await?;
        let loaded = load_server(engine, v, stack, db, &id, &loader, meter, replace).await;
        loader.drop_role(engine, db, &id).await;
        loaded?;
    }
    Ok(())
}

/// Every part of one database server, in the archive's order.
#[allow(clippy::too_many_arguments)]
async fn load_server(
    engine: &Engine,
    v: &Verified,
    stack: &Stack,
    db: &Database,
    id: &str,
    loader: &Loader,
    meter: &Meter,
    replace: bool,
) -> Result<(), RestoreError> {
    for part in &v.manifest.parts {
        if part_service(&part.kind) != Some(&db.service) {
            continue;
        }
        let Some(member) = v.member(&part.name) else {
            continue;
        };
        meter.begin(&part.name);
        let what = match &part.kind {
            PartKind::PostgresGlobals { .. } => {
                roles(engine, v, member, stack, db, id, meter).await?;
                "roles".to_string()
            }
            PartKind::PostgresDatabase { database, .. } => {
                if replace {
                    drop_postgres(engine, db, id, database).await?;
                }
                prepare_postgres(engine, db, id, database, &loader.role).await?;
                let cmd = databases::pg_restore_command(&loader.role, database);
                let done = load(engine, v, member, meter, db, id, &cmd, &loader.env()).await?;
                check(db, &cmd, done)?;
                loader.hand_over(engine, db, id, database).await?;
                format!("database {database}")
            }
            PartKind::MysqlDatabase { database, .. } => {
                let cmd = databases::mysql_restore_command();
                let env = databases::env(db);
                let done = load(engine, v, member, meter, db, id, &cmd, &env).await?;
                check(db, &cmd, done)?;
                format!("database {database}")
            }
            _ => continue,
        };
        meter.end(&format!("{what} loaded into {}", db.service));
    }
    Ok(())
}

fn check(db: &Database, cmd: &[String], done: exec::Finished) -> Result<(), RestoreError> {
    if done.code != 0 {
        return Err(RestoreError::Load {
            service: db.service.clone(),
            what: cmd.join(" "),
            code: done.code,
            stderr: done.stderr,
        });
    }
    Ok(())
}

/// PostgreSQL dumps are loaded by a role made for it that is not a superuser, so nothing in
/// a dump (`COPY ... TO PROGRAM`, a function calling out) runs with more than a database
/// owner's rights; each database is handed to the install's owner afterwards and the role is
/// dropped.
struct Loader {
    role: String,
    password: String,
}

impl Loader {
    async fn create(engine: &Engine, db: &Database, id: &str) -> Result<Loader, RestoreError> {
        let loader = Loader {
            role: format!("difyctl_restore_{}", std::process::id()),
            password: crate::stack::secrets::generate(crate::stack::secrets::Secret::Password)
                .map_err(|e| RestoreError::Load {
                    service: db.service.clone(),
                    what: "a password for the restoring role".into(),
                    code: -1,
                    stderr: e.to_string(),
                })?,
        };
        if db.kind == DbKind::Postgres {
            let sql = format!(
                "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD '{}'",
                ident(&loader.role),
                loader.password
            );
            databases::query(engine, db, id, "postgres", &sql).await?;
        }
        Ok(loader)
    }

    fn env(&self) -> Vec<String> {
        vec![
            format!("PGUSER={}", self.role),
            format!("PGPASSWORD={}", self.password),
        ]
    }

    /// The database and what the role made in it belong to the install's owner now.
    async fn hand_over(
        &self,
        engine: &Engine,
        db: &Database,
        id: &str,
        database: &str,
    ) -> Result<(), RestoreError> {
        let (role, owner) = (ident(&self.role), ident(&db.user));
        let sql = format!("REASSIGN OWNED BY {role} TO {owner}; DROP OWNED BY {role}");
        databases::query(engine, db, id, database, &sql).await?;
        let sql = format!("ALTER DATABASE {} OWNER TO {owner}", ident(database));
        databases::query(engine, db, id, "postgres", &sql).await?;
        Ok(())
    }

    async fn drop_role(&self, engine: &Engine, db: &Database, id: &str) {
        if db.kind == DbKind::Postgres {
            let sql = format!("DROP ROLE IF EXISTS {}", ident(&self.role));
            if let Err(e) = databases::query(engine, db, id, "postgres", &sql).await {
                tracing::warn!("cannot drop the restoring role {}: {e}", self.role);
            }
        }
    }
}

/// The roles of `globals.sql` the install's settings name, created when missing (LOGIN and the
/// archived password hash, nothing else); what the script says beyond that is left out.
async fn roles(
    engine: &Engine,
    v: &Verified,
    member: &crate::backup::archive::Located,
    stack: &Stack,
    db: &Database,
    id: &str,
    meter: &Meter,
) -> Result<(), RestoreError> {
    let mut text = Vec::new();
    if member.size > 1 << 20 {
        return Err(RestoreError::Refused {
            archive: v.path.clone(),
            member: member.name.clone(),
            detail: format!("{} bytes of roles, far more than a database's", member.size),
        });
    }
    feed_writer(v, member, meter, &mut text).await?;
    let globals = super::globals::parse(&String::from_utf8_lossy(&text));
    let mut named = vec![db.user.clone()];
    named.extend(
        stack
            .services
            .iter()
            .filter_map(|s| s.environment.get("DB_USERNAME").cloned()),
    );
    for (name, role) in &globals.roles {
        if !named.contains(name) {
            meter.say(&format!(
                "role {name} of {} left out: the install's settings do not name it",
                member.name
            ));
            continue;
        }
        let quoted = name.replace('\'', "''");
        let exists = databases::query(
            engine,
            db,
            id,
            "postgres",
            &format!("SELECT 1 FROM pg_roles WHERE rolname = '{quoted}'"),
        )
        .await?;
        if !exists.is_empty() {
            continue;
        }
        let password = role
            .password_hash
            .as_ref()
            .map(|h| format!(" PASSWORD '{h}'"))
            .unwrap_or_default();
        let sql = format!("CREATE ROLE {} LOGIN{password}", ident(name));
        databases::query(engine, db, id, "postgres", &sql).await?;
    }
    for line in &globals.left_out {
        meter.say(&format!(
            "{}: left out `{line}` (only roles are taken from it)",
            member.name
        ));
    }
    Ok(())
}

/// Stops every running container of the project but the database servers'.
async fn stop_others(
    engine: &Engine,
    containers: &[bollard::models::ContainerSummary],
    keep: &[String],
) -> Result<(), RestoreError> {
    for c in containers {
        let service = service_label(c).unwrap_or("");
        if keep.iter().any(|k| k == service) {
            continue;
        }
        let id = c.id.clone().unwrap_or_default();
        engine
            .docker
            .stop_container(
                &id,
                Some(bollard::query_parameters::StopContainerOptions {
                    t: Some(10),
                    ..Default::default()
                }),
            )
            .await
            .map_err(crate::engine::EngineError::api(
                format!("service {service}"),
                "cannot stop it to put the database back",
            ))?;
    }
    Ok(())
}

/// Drops `name` (its connections closed first), so the dump loads into an empty database.
async fn drop_postgres(
    engine: &Engine,
    db: &Database,
    container: &str,
    name: &str,
) -> Result<(), RestoreError> {
    if name == "postgres" {
        // The maintenance database cannot be dropped while connected to it: emptied instead.
        let sql = "DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public";
        databases::query(engine, db, container, "postgres", sql).await?;
        return Ok(());
    }
    let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", ident(name));
    databases::query(engine, db, container, "postgres", &sql).await?;
    Ok(())
}

fn part_service(kind: &PartKind) -> Option<&String> {
    match kind {
        PartKind::PostgresGlobals { service }
        | PartKind::PostgresDatabase { service, .. }
        | PartKind::MysqlDatabase { service, .. } => Some(service),
        _ => None,
    }
}

/// The database exists and is empty: created when missing, refused when it holds tables.
async fn prepare_postgres(
    engine: &Engine,
    db: &Database,
    container: &str,
    name: &str,
    loader: &str,
) -> Result<(), RestoreError> {
    debug_assert_eq!(db.kind, DbKind::Postgres);
    let quoted = name.replace('\'', "''");
    let exists = databases::query(
        engine,
        db,
        container,
        "postgres",
        &format!("SELECT 1 FROM pg_database WHERE datname = '{quoted}'"),
    )
    .await?;
    if exists.is_empty() {
        let sql = format!("CREATE DATABASE {} OWNER {}", ident(name), ident(loader));
        databases::query(engine, db, container, "postgres", &sql).await?;
        return Ok(());
    }
    let count = databases::query(engine, db, container, name, databases::PG_USER_RELATIONS).await?;
    if count.first().is_some_and(|c| c.trim() != "0") {
        return Err(RestoreError::WouldOverwrite(vec![format!(
            "database {name} of service {} (it already holds tables)",
            db.service
        )]));
    }
    // The loading role owns it (and so its public schema) while the dump goes in.
    let sql = format!("ALTER DATABASE {} OWNER TO {}", ident(name), ident(loader));
    databases::query(engine, db, container, "postgres", &sql).await?;
    Ok(())
}

/// Streams a member into `cmd`'s stdin while reading its output.
#[allow(clippy::too_many_arguments)]
async fn load(
    engine: &Engine,
    v: &Verified,
    member: &crate::backup::archive::Located,
    meter: &Meter,
    db: &Database,
    container: &str,
    cmd: &[String],
    env: &[String],
) -> Result<exec::Finished, RestoreError> {
    let mut run = exec::start(engine, &db.service, container, cmd, env, true).await?;
    let mut input = run.take_input();
    let writing = async {
        let Some(input) = input.as_mut() else {
            return Ok(());
        };
        let fed = feed_writer(v, member, meter, input).await;
        let _ = input.shutdown().await;
        fed
    };
    let reading = run.finish(engine, false);
    let (fed, done) = tokio::join!(writing, reading);
    fed?;
    Ok(done?)
}
