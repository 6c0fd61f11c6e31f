//! The real Dify behind difyctl: Dify's api built from its source at each release tag
//! (`../shared/realdify`, images built once per machine and kept by content), with real
//! PostgreSQL, Redis and squid and stand-ins for the rest, on Dify's own `docker/` folder and on
//! an install `difyctl init` made. The install flow, login, an app from DSL, a workflow run
//! streamed event by event through the proxy, an upload, backup and restore, and upgrades
//! 1.15.0 -> 1.16.0 -> 1.16.1 with Dify's real migrations (whichever container wins their
//! race), checked in the database against the new image's migration head. Skipped with a
//! note when the kit is absent.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use crate::cli::Scratch;
use crate::dify_client::{Dify, ADMIN_EMAIL};
use crate::engine::{exec, TestStack};
use crate::releases::{tag_archive, ReleaseServer};

/// The kit, when it is there.
pub fn kit() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/realdify");
    if dir.join("build.sh").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "skipped: the real-Dify kit is not at {} (Dify's api built from source)",
            dir.display()
        );
        None
    }
}

/// Dify `version`'s images (the real api, PostgreSQL, Redis, squid, busybox, stand-ins),
/// built by the kit unless their recipe is unchanged (then a second). One build at a time.
fn images(kit: &Path, versions: &[&str]) {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    crate::images::test_image();
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    for v in versions {
        if built.iter().any(|b| b == v) {
            continue;
        }
        let out = Command::new(kit.join("build.sh"))
            .args(["all", v])
            .env("STANDIN_IMAGE", crate::images::IMAGE)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "the kit could not build Dify {v}'s images:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        built.push(v.to_string());
    }
}

/// Dify `version`'s docker/ folder, as a user downloads it.
fn extract(kit: &Path, version: &str, into: &Path) {
    let out = Command::new(kit.join("extract.sh"))
        .arg(version)
        .arg(into)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A port nothing listens on now (the plugin daemon's debugging port is published).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sets `KEY=value` in an env file (replacing the key's line, or appending it).
fn set_env(path: &Path, key: &str, value: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut found = false;
    let mut lines: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with(&format!("{key}=")) {
                found = true;
                format!("{key}={value}")
            } else {
                l.to_string()
            }
        })
        .collect();
    if !found {
        lines.push(format!("{key}={value}"));
    }
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

fn env_value(path: &Path, key: &str) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    difyctl::envfile::EnvFile::parse(path, &text)
        .unwrap()
        .get(key)
        .map(|e| e.value.clone())
        .unwrap_or_default()
}

/// The database's Alembic revision(s).
async fn revisions(project: &str) -> BTreeSet<String> {
    let (code, out) = exec(
        &format!("{project}-db_postgres-1"),
        &[
            "psql",
            "-U",
            "postgres",
            "-d",
            "dify",
            "-Atc",
            "SELECT version_num FROM alembic_version",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    out.lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// The migration head Dify `version`'s api image carries.
async fn head(version: &str) -> BTreeSet<String> {
    let engine = difyctl::engine::Engine::connect().await.unwrap();
    difyctl::upgrade::migration::image_heads(&engine, &format!("langgenius/dify-api:{version}"))
        .await
        .unwrap()
        .expect("Dify's api image carries its migrations")
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The events of a streamed run arrived one by one: the two 1.5 s requests' node events are
/// more than a second apart when they reach the client (a buffering proxy delivers them at
/// once), and the run finished.
fn assert_streamed(events: &[(String, std::time::Instant)]) {
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert!(names.contains(&"workflow_finished"), "{names:?}");
    let finished: Vec<std::time::Instant> = events
        .iter()
        .filter(|(e, _)| e == "node_finished")
        .map(|(_, t)| *t)
        .collect();
    assert!(finished.len() >= 3, "{names:?}");
    for pair in finished[..3].windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(1000),
            "node events arrived {gap:?} apart, bunched: {names:?}"
        );
    }
}

/// Dify's own docker/ folder, as a user runs it: 1.15.0 up behind difyctl, installed through
/// /install with its INIT_PASSWORD, an app imported and run streamed, a file uploaded; then
/// `upgrade --to 1.16.0` and `--to 1.16.1` (fetched from a stand-in of Dify's archives) with
/// the api, worker, worker_beat and api_websocket racing for the migration lock: each
/// upgrade succeeds, the database is at the new image's head, the app still runs.
#[tokio::test]
async fn real_dify_s_own_folder_installs_streams_and_upgrades_1_15_to_1_16_1() {
    let Some(kit) = kit() else { return };
    images(&kit, &["1.15.0", "1.16.0", "1.16.1"]);
    let root = Scratch::new("realdify-own");
    let server = ReleaseServer::start(&root.0);
    for v in ["1.16.0", "1.16.1"] {
        let src = root.path(&format!("src-{v}"));
        extract(&kit, v, &src);
        server.put(
            &format!("{v}.tar.gz"),
            tag_archive(&format!("dify-{v}"), &src, &[]),
        );
    }
    let stack = TestStack {
        dir: root.path("dify"),
        project: format!("rdo{}", std::process::id()),
        image: String::new(),
    };
    extract(&kit, "1.15.0", &stack.dir);
    let env = stack.dir.join(".env");
    std::fs::copy(stack.dir.join(".env.example"), &env).unwrap();
    set_env(&env, "INIT_PASSWORD", "init-pw-4711");
    set_env(
        &env,
        "EXPOSE_PLUGIN_DEBUGGING_PORT",
        &free_port().to_string(),
    );
    set_env(&env, "SSRF_PROXY_ALLOW_PRIVATE_DOMAINS", "sandbox");
    let serving = stack.serve(900);
    let mut dify = Dify::new(serving.addr, serving.root.clone());
    dify.install("init-pw-4711").await;
    dify.login().await;
    let (_, key) = dify.workflow_app("slow-requests").await;
    assert_streamed(&dify.run_streamed(&key).await);
    let data: Vec<u8> = (0..1_000_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    dify.upload(&key, &data).await;
    assert_eq!(revisions(&stack.project).await, head("1.15.0").await);

    let state = stack.dir.join("state");
    for (from, to) in [("1.15.0", "1.16.0"), ("1.16.0", "1.16.1")] {
        let (code, out, err) = run(server.difyctl(&state).current_dir(&stack.dir).args([
            "-p",
            &stack.project,
            "upgrade",
            "--to",
            to,
            "--yes",
            "--wait-timeout",
            "900",
        ]));
        assert_eq!(code, 0, "{from} -> {to}:\n{out}\n{err}");
        assert!(out.contains(&format!("upgraded {from} -> {to}")), "{out}");
        assert_eq!(
            revisions(&stack.project).await,
            head(to).await,
            "{to}: {out}"
        );
        // The same account, app and key on the new release.
        let mut again = Dify::new(serving.addr, serving.root.clone());
        again.login().await;
        assert!(again
            .app_names()
            .await
            .contains(&"slow-requests".to_string()));
        assert_streamed(&again.run_streamed(&key).await);
    }
    let token = env_value(&env, "DIFY_AGENT_API_TOKEN");
    assert!(
        !token.is_empty() && token != "dify-agent-run-token-for-dev-only",
        "1.16.1's agent token got a value of its own: {token}"
    );
    drop(serving);
}

/// An install `difyctl init` made (difyctl's own stack of 1.16.0): installed and an app
/// imported, upgraded offline to 1.16.1 with the real migrations, backed up, then restored into
/// a new folder after the first is gone: the account and the app are there.
#[tokio::test]
async fn real_dify_init_install_upgrades_backs_up_and_restores() {
    let Some(kit) = kit() else { return };
    images(&kit, &["1.16.0", "1.16.1"]);
    let root = Scratch::new("realdify-init");
    let stack = TestStack {
        dir: root.path("dify"),
        project: format!("rdi{}", std::process::id()),
        image: String::new(),
    };
    let state = stack.dir.join("state");
    let (code, _, err) = run(crate::cli::difyctl()
        .arg("--state-dir")
        .arg(&state)
        .args(["init", "--version", "1.16.0", "--dir"])
        .arg(&stack.dir));
    assert_eq!(code, 0, "{err}");
    let env = stack.dir.join(".env");
    set_env(
        &env,
        "EXPOSE_PLUGIN_DEBUGGING_PORT",
        &free_port().to_string(),
    );
    let init_password = env_value(&env, "INIT_PASSWORD");
    let serving = stack.serve(900);
    let mut dify = Dify::new(serving.addr, serving.root.clone());
    dify.install(&init_password).await;
    dify.login().await;
    dify.workflow_app("kept-through-restore").await;
    assert_eq!(revisions(&stack.project).await, head("1.16.0").await);

    let (code, out, err) = stack.difyctl(&[
        "--state-dir",
        state.to_str().unwrap(),
        "upgrade",
        "--to",
        "1.16.1",
        "--yes",
        "--wait-timeout",
        "900",
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        !out.contains("fetching"),
        "an embedded release is offline: {out}"
    );
    assert_eq!(revisions(&stack.project).await, head("1.16.1").await);

    let backups = root.path("backups");
    let (code, out, err) = stack.difyctl(&[
        "--state-dir",
        state.to_str().unwrap(),
        "backup",
        "--to",
        backups.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    let archive = serde_json::from_str::<serde_json::Value>(&out).unwrap()["archive"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, key, err) =
        stack.difyctl(&["--state-dir", state.to_str().unwrap(), "backup", "key"]);
    assert_eq!(code, 0, "{err}");
    drop(serving);
    let (code, _, err) = stack.difyctl(&["--state-dir", state.to_str().unwrap(), "down", "-v"]);
    assert_eq!(code, 0, "{err}");

    let restored = TestStack {
        dir: root.path("restored"),
        project: format!("rdr{}", std::process::id()),
        image: String::new(),
    };
    let (code, out, err) = run(crate::cli::difyctl()
        .current_dir(&root.0)
        .args(["-p", &restored.project, "--state-dir"])
        .arg(restored.dir.join("state"))
        .args(["restore", &archive, "--trust", key.trim(), "--dir"])
        .arg(&restored.dir)
        .args(["--wait-timeout", "900"]));
    assert_eq!(code, 0, "{out}\n{err}");
    let serving = restored.serve(900);
    let mut dify = Dify::new(serving.addr, serving.root.clone());
    dify.login().await;
    assert!(
        dify.app_names()
            .await
            .contains(&"kept-through-restore".to_string()),
        "the app of {ADMIN_EMAIL} came back"
    );
    assert_eq!(revisions(&restored.project).await, head("1.16.1").await);
}
