//! The project's test server as a program: plays Dify's services in the demo, the benchmarks
//! and (built static) in the test images, where there is no shell or curl. So it also carries
//! the few tools a container of the test stack needs:
//!
//! - `testserver NAME=ADDR...`: serve, e.g. `testserver web=0.0.0.0:3000 api=0.0.0.0:5001`.
//!   Each NAME answers on its ADDR with the endpoints described in tests/it/testserver.rs.
//! - `testserver probe URL`: GET the URL; exit 0 on a 2xx answer (healthchecks).
//! - `testserver exit CODE [PATH=TEXT...]`: write the files, then exit with CODE (one-shot
//!   services such as `init_permissions`).
//! - `testserver write PATH TEXT` / `testserver cat PATH`: put and read data in volumes.
//!
//! Serving, with `MIGRATE_REVISION=N` set, it first plays Dify's api migration against
//! PostgreSQL (through `psql`, PG* variables): revision 1 creates `notes` and
//! `alembic_version`, revision 2 adds a `tag` column; with `MIGRATE_FAIL=1` it changes the
//! schema halfway, logs Dify's "Failed to execute database migration" and serves anyway,
//! as Dify's api has done (dify #32021).

#[path = "../../tests/it/testserver.rs"]
mod testserver;

use std::io::{Read, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("probe") if args.len() == 2 => probe(&args[1]),
        Some("exit") if args.len() >= 2 => {
            for pair in &args[2..] {
                let Some((path, text)) = pair.split_once('=') else {
                    return fail(format!("exit: `{pair}` is not PATH=TEXT"));
                };
                if let Err(e) = std::fs::write(path, text) {
                    return fail(format!("exit: cannot write {path}: {e}"));
                }
            }
            match args[1].parse::<u8>() {
                Ok(code) => {
                    println!("testserver: exiting with {code}");
                    ExitCode::from(code)
                }
                Err(_) => fail(format!("exit: `{}` is not an exit code", args[1])),
            }
        }
        Some("write") if args.len() == 3 => match std::fs::write(&args[1], &args[2]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(format!("write {}: {e}", args[1])),
        },
        Some("cat") if args.len() == 2 => match std::fs::read(&args[1]) {
            Ok(data) => {
                let _ = std::io::stdout().write_all(&data);
                ExitCode::SUCCESS
            }
            Err(e) => fail(format!("cat {}: {e}", args[1])),
        },
        _ => serve(&args),
    }
}

fn fail(message: String) -> ExitCode {
    eprintln!("testserver: {message}");
    ExitCode::from(1)
}

/// A minimal HTTP/1.0 GET: enough for a healthcheck, with no TLS and a 5 s limit.
fn probe(url: &str) -> ExitCode {
    let Some(rest) = url.strip_prefix("http://") else {
        return fail(format!("probe: only http:// URLs, not {url}"));
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let addr = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let timeout = std::time::Duration::from_secs(5);
    let result = (|| -> std::io::Result<String> {
        use std::net::ToSocketAddrs;
        let target = addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::other("no address"))?;
        let mut stream = std::net::TcpStream::connect_timeout(&target, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        write!(
            stream,
            "GET {path} HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
        )?;
        let mut answer = String::new();
        stream.take(64 * 1024).read_to_string(&mut answer)?;
        Ok(answer)
    })();
    match result {
        Ok(answer) => {
            let status = answer.lines().next().unwrap_or("").to_string();
            println!("{status}");
            if status.split(' ').nth(1).is_some_and(|c| c.starts_with('2')) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => fail(format!("probe {url}: {e}")),
    }
}

/// The stand-in for `flask upgrade-db`: its outcome goes to the log, and serving goes on.
fn migrate(revision: &str) {
    let psql = |sql: &str| {
        std::process::Command::new("psql")
            .args(["-v", "ON_ERROR_STOP=1", "-Atq", "-c", sql])
            .output()
            .map_err(|e| e.to_string())
            .and_then(|o| {
                if o.status.success() {
                    Ok(())
                } else {
                    Err(String::from_utf8_lossy(&o.stderr).trim().to_string())
                }
            })
    };
    println!("Starting database migration.");
    // Like Dify's entrypoint, wait for the database first.
    if !(0..60).any(|_| {
        psql("SELECT 1").is_ok() || {
            std::thread::sleep(std::time::Duration::from_millis(500));
            false
        }
    }) {
        println!("Failed to execute database migration: the database did not answer");
        return;
    }
    let mut sql = String::from(
        "CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, body text NOT NULL); \
         CREATE TABLE IF NOT EXISTS alembic_version (version_num varchar(32) PRIMARY KEY);",
    );
    if revision >= "2" {
        sql.push_str(" ALTER TABLE notes ADD COLUMN IF NOT EXISTS tag text DEFAULT 'v2';");
    }
    if std::env::var("MIGRATE_FAIL").is_ok_and(|v| v == "1") {
        // The first half lands (its own transaction), then the rest fails.
        sql.push_str(" ALTER TABLE notes ADD COLUMN IF NOT EXISTS half_done int;");
        let _ = psql(&sql);
        match psql("SELECT no_such_function()") {
            Err(e) => println!("Failed to execute database migration: {e}"),
            Ok(()) => println!("Database migration successful!"),
        }
        return;
    }
    sql.push_str(&format!(
        " DELETE FROM alembic_version; INSERT INTO alembic_version VALUES ('{revision}');"
    ));
    match psql(&sql) {
        Ok(()) => println!("Database migration successful!"),
        Err(e) => println!("Failed to execute database migration: {e}"),
    }
}

fn serve(args: &[String]) -> ExitCode {
    let pairs: Vec<(String, String)> = args
        .iter()
        .filter_map(|a| {
            a.split_once('=')
                .map(|(n, a)| (n.to_string(), a.to_string()))
        })
        .collect();
    if pairs.is_empty() || pairs.len() != args.len() {
        eprintln!("usage: testserver NAME=ADDR... | probe URL | exit CODE [PATH=TEXT...] | write PATH TEXT | cat PATH");
        return ExitCode::from(2);
    }
    if let Ok(revision) = std::env::var("MIGRATE_REVISION") {
        migrate(&revision);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    runtime.block_on(async move {
        for (name, addr) in pairs {
            let listener = match tokio::net::TcpListener::bind(&addr).await {
                Ok(l) => l,
                Err(e) => return fail(format!("cannot listen on {addr} for {name}: {e}")),
            };
            eprintln!(
                "testserver: {name} on {}",
                listener
                    .local_addr()
                    .map_or(addr.clone(), |a| a.to_string())
            );
            tokio::spawn(testserver::serve(listener, name));
        }
        // Exit on SIGINT and on SIGTERM (`docker stop`: as PID 1 it would otherwise be ignored).
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(e) => return fail(format!("cannot handle SIGTERM: {e}")),
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        ExitCode::SUCCESS
    })
}
