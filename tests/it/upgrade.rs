//! `difyctl upgrade` on Dify's real files (config level) and on a running stand-in stack with
//! real PostgreSQL (engine level): v1 -> v2 where v2 migrates the schema; a v2 whose
//! migration fails is undone (files, images, database); an image that cannot be had changes
//! nothing; a downgrade is refused; requests through `up` during the upgrade do not fail.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::backup::{api_addr, http, stand_in};
use crate::cli::{difyctl, Scratch};
use crate::engine::{exec, inspect, TestStack};
use crate::images::app_image;

fn fixtures() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures");
    if dir.join("dify-1.16.0/docker-compose.yaml").is_file() {
        Some(dir)
    } else {
        eprintln!("skipped: Dify's fixtures are not at {}", dir.display());
        None
    }
}

fn env_keys(text: &str) -> Vec<(String, String)> {
    difyctl::envfile::EnvFile::parse(Path::new(".env"), text)
        .unwrap()
        .entries
        .into_iter()
        .map(|e| (e.key, e.value))
        .collect()
}

/// An install made from Dify 1.15.0's files with a user's changes (a domain, a password, a
/// vector store profile, an override file), upgraded to 1.16.0's: every user value kept,
/// every new key present, the env files 1.16 requires written, no public default secret
/// introduced, the override kept, and the result reads as a compose project.
#[test]
fn dify_1_15_install_upgrades_to_1_16_files_with_user_values_kept() {
    let Some(fx) = fixtures() else { return };
    let dir = Scratch::new("upgrade-files");
    let install = dir.path("docker");
    std::fs::create_dir_all(&install).unwrap();
    std::fs::copy(
        fx.join("dify-1.15.0/docker-compose.yaml"),
        install.join("docker-compose.yaml"),
    )
    .unwrap();
    let mut env = std::fs::read_to_string(fx.join("dify-1.15.0/.env.example")).unwrap();
    for (key, value) in [
        ("DB_PASSWORD", "my-own-db-password"),
        ("CERTBOT_DOMAIN", "dify.example.com"),
        ("VECTOR_STORE", "qdrant"),
        ("COMPOSE_PROFILES", "qdrant,postgresql"),
    ] {
        env = env
            .lines()
            .map(|l| {
                if l.starts_with(&format!("{key}=")) {
                    format!("{key}={value}")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
    }
    std::fs::write(install.join(".env"), &env).unwrap();
    let override_text = "services:\n  api:\n    environment:\n      LOG_LEVEL: DEBUG\n";
    std::fs::write(install.join("docker-compose.override.yaml"), override_text).unwrap();

    let out = difyctl()
        .current_dir(&install)
        .args(["upgrade", "--from"])
        .arg(fx.join("dify-1.16.0"))
        .arg("--dry-run")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("upgrade 1.15.0 -> 1.16.0"), "{text}");
    assert!(text.contains("replace docker-compose.yaml"), "{text}");
    assert!(
        text.contains("+ AGENT_BACKEND_RUN_TIMEOUT_SECONDS=1200"),
        "{text}"
    );
    assert!(
        !text.contains("create  envs/"),
        "1.16's envs/ files are optional: {text}"
    );
    assert!(
        text.contains("keep    docker-compose.override.yaml"),
        "{text}"
    );
    assert!(text.contains("nothing was changed"));
    assert_eq!(
        std::fs::read_to_string(install.join(".env")).unwrap(),
        env,
        "a dry run writes nothing"
    );

    let release = difyctl::releases::release::Release::read(&fx.join("dify-1.16.0")).unwrap();
    let plan = difyctl::upgrade::plan::plan(&install, &release, Some("1.15.0"), None).unwrap();
    difyctl::upgrade::apply::apply(&install, &plan, &dir.path("rollback")).unwrap();
    let new_env = std::fs::read_to_string(install.join(".env")).unwrap();
    let new = env_keys(&new_env);
    for (k, v) in env_keys(&env) {
        assert!(
            new.contains(&(k.clone(), v.clone())),
            "{k}={v} was not kept"
        );
    }
    let example = std::fs::read_to_string(fx.join("dify-1.16.0/.env.example")).unwrap();
    for (k, _) in env_keys(&example) {
        assert!(
            new.iter().any(|(n, _)| *n == k),
            "{k} (new in 1.16) is missing"
        );
    }
    let mut written = vec![new_env.clone()];
    for entry in walk(&install.join("envs")) {
        written.push(std::fs::read_to_string(entry).unwrap());
    }
    for text in &written {
        for (k, v) in env_keys(text) {
            let was_public_before = env_keys(&env).iter().any(|(ek, ev)| *ek == k && *ev == v);
            assert!(
                !difyctl::stack::secrets::is_public(&v) || was_public_before,
                "{k} got Dify's public default {v}"
            );
        }
    }
    assert_eq!(
        std::fs::read_to_string(install.join("docker-compose.override.yaml")).unwrap(),
        override_text
    );
    let out = difyctl()
        .current_dir(&install)
        .args(["config", "--services"])
        .output()
        .unwrap();
    let services = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        services.lines().any(|s| s == "qdrant") && services.lines().any(|s| s == "api"),
        "{services}"
    );
    // Undo puts every file back byte for byte.
    let applied: difyctl::upgrade::apply::Applied =
        serde_json::from_slice(&std::fs::read(dir.path("rollback/applied.json")).unwrap()).unwrap();
    difyctl::upgrade::apply::undo(&applied).unwrap();
    assert_eq!(std::fs::read_to_string(install.join(".env")).unwrap(), env);
    assert_eq!(
        std::fs::read_to_string(install.join("docker-compose.yaml")).unwrap(),
        std::fs::read_to_string(fx.join("dify-1.15.0/docker-compose.yaml")).unwrap()
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

/// A release folder of the stand-in stack: its api at `tag`, migrating to `revision`.
pub fn release(root: &Path, name: &str, tag: &str, revision: &str, fail: bool) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let compose = stand_in()
        .replacen(
            "  api:\n    image: ${IMAGE}",
            &format!("  api:\n    image: difyctl-testapp:{tag}"),
            1,
        )
        .replacen(
            "      STORAGE_DIR: /app/api/storage\n",
            &format!(
                "      STORAGE_DIR: /app/api/storage\n      MIGRATE_REVISION: \"{revision}\"\n      MIGRATE_FAIL: \"{}\"\n      NEW_SETTING: ${{NEW_SETTING:-unset}}\n",
                u8::from(fail)
            ),
            1,
        );
    // Revision 2 brings a service and a network of its own (what a rollback must remove).
    let compose = if revision >= "2" {
        compose.replacen(
            "volumes:\n  plugins:\n",
            "  newcomer:\n    image: ${IMAGE}\n    command: [\"/testserver\", \"newcomer=0.0.0.0:7000\"]\n    networks: [default, newnet]\nnetworks:\n  newnet: {}\nvolumes:\n  plugins:\n",
            1,
        )
    } else {
        compose
    };
    std::fs::write(dir.join("docker-compose.yaml"), compose).unwrap();
    let mut example = format!(
        "IMAGE={}\nDB_PASSWORD=difyai123456\nREDIS_PASSWORD=difyai123456\n",
        app_image()
    );
    if revision >= "2" {
        example.push_str("NEW_SETTING=from-v2\n");
    }
    std::fs::write(dir.join(".env.example"), example).unwrap();
    dir
}

pub async fn tag_app(tag: &str) {
    let docker = crate::engine::docker().await;
    docker
        .tag_image(
            app_image(),
            Some(bollard::query_parameters::TagImageOptions {
                repo: Some("difyctl-testapp".into()),
                tag: Some(tag.into()),
            }),
        )
        .await
        .unwrap();
}

pub async fn psql(project: &str, sql: &str) -> String {
    let (code, out) = exec(
        &format!("{project}-db_postgres-1"),
        &["psql", "-U", "postgres", "-d", "dify", "-Atc", sql],
    )
    .await;
    assert_eq!(code, 0, "{sql}: {out}");
    out.trim().to_string()
}

async fn api_image(project: &str) -> String {
    inspect(&format!("{project}-api-1"))
        .await
        .config
        .unwrap()
        .image
        .unwrap()
}

#[tokio::test]
async fn upgrade_migrates_with_data_kept_and_undoes_a_failed_one() {
    tag_app("v1").await;
    tag_app("v2").await;
    let root = Scratch::new(&format!("releases-{}", std::process::id()));
    let v1 = release(&root.0, "v1", "v1", "1", false);
    let v2 = release(&root.0, "v2", "v2", "2", false);
    let v2_bad = release(&root.0, "v2bad", "v2", "2", true);
    let v2_missing = release(&root.0, "v2missing", "no-such-tag", "2", false);
    let v1_compose = std::fs::read_to_string(v1.join("docker-compose.yaml")).unwrap();
    let stack = TestStack::with_image(
        "upg",
        &v1_compose,
        "DB_PASSWORD=users-own\nREDIS_PASSWORD=redis-own\n",
        app_image(),
    );
    stack.up(&[]);
    let api = api_addr(&stack.project).await;
    for note in ["before the upgrade", "second"] {
        assert_eq!(
            http(api, "POST", "/console/api/notes", note.as_bytes())
                .await
                .0,
            200
        );
    }
    assert_eq!(
        psql(&stack.project, "SELECT version_num FROM alembic_version").await,
        "1"
    );
    let serving = stack.serve(90);
    let (addr, root_cert) = (serving.addr, serving.root.clone());
    let upgrade = |from: &Path| {
        let from = from.display().to_string();
        stack.difyctl(&[
            "--state-dir",
            "state",
            "upgrade",
            "--from",
            &from,
            "--yes",
            "--wait-timeout",
            "90",
        ])
    };

    // An image of the new release that cannot be had: nothing changes.
    let before_id = inspect(&format!("{}-api-1", stack.project))
        .await
        .id
        .unwrap();
    let (code, _, err) = upgrade(&v2_missing);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("cannot be had") && err.contains("difyctl-testapp:no-such-tag"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(stack.dir.join("docker-compose.yaml")).unwrap(),
        v1_compose
    );
    assert_eq!(
        inspect(&format!("{}-api-1", stack.project))
            .await
            .id
            .unwrap(),
        before_id
    );

    // A migration that fails (and an api that serves anyway): undone, files, image, database.
    let (code, out, err) = upgrade(&v2_bad);
    assert_eq!(code, 1, "{err}");
    assert!(
        out.contains(&format!("removed network {}_newnet", stack.project)),
        "the rollback removes what the new release created: {out}"
    );
    assert!(
        err.contains("migration failed") && err.contains("was undone"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(stack.dir.join("docker-compose.yaml")).unwrap(),
        v1_compose
    );
    assert_eq!(api_image(&stack.project).await, "difyctl-testapp:v1");
    let docker = crate::engine::docker().await;
    assert!(
        docker
            .inspect_container(&format!("{}-newcomer-1", stack.project), None)
            .await
            .is_err(),
        "the new release's service was left behind"
    );
    assert!(
        docker
            .inspect_network(&format!("{}_newnet", stack.project), None)
            .await
            .is_err(),
        "the new release's network was left behind"
    );
    let columns = psql(&stack.project, "SELECT string_agg(column_name, ',' ORDER BY column_name) FROM information_schema.columns WHERE table_name = 'notes'").await;
    assert_eq!(
        columns, "body,id",
        "the half-done migration was rolled back with the database"
    );
    assert_eq!(
        psql(&stack.project, "SELECT version_num FROM alembic_version").await,
        "1"
    );
    let api = api_addr(&stack.project).await;
    let (_, body) = http(api, "GET", "/console/api/notes", b"").await;
    assert_eq!(
        String::from_utf8_lossy(&body),
        r#"["before the upgrade", "second"]"#
    );

    // The real thing, while requests come through `up`.
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let load = notes_load(addr, root_cert, stop);
    let (code, out, err) = upgrade(&v2);
    stop_tx.send(true).unwrap();
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("upgraded v1 -> v2"), "{out}");
    let (ok, failed) = load.await.unwrap();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed during the upgrade: {failed:?}",
        failed.len(),
        ok + failed.len()
    );
    assert_eq!(api_image(&stack.project).await, "difyctl-testapp:v2");
    assert_eq!(
        psql(&stack.project, "SELECT version_num FROM alembic_version").await,
        "2"
    );
    assert_eq!(
        psql(&stack.project, "SELECT string_agg(tag, ',') FROM notes").await,
        "v2,v2"
    );
    let env = std::fs::read_to_string(stack.dir.join(".env")).unwrap();
    assert!(
        env.contains("DB_PASSWORD=users-own") && env.contains("NEW_SETTING=from-v2"),
        "{env}"
    );

    // And back is refused.
    let (code, _, err) = upgrade(&v1);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("downgrade is refused"), "{err}");
}

fn notes_load(
    addr: std::net::SocketAddr,
    root: rustls::pki_types::CertificateDer<'static>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<(usize, Vec<String>)> {
    use tokio::io::AsyncWriteExt;
    tokio::spawn(async move {
        let (mut ok, mut failed) = (0, Vec::new());
        while !*stop.borrow() {
            let got = async {
                let mut io =
                    crate::support::tls_connect(addr, std::slice::from_ref(&root), &[b"http/1.1"])
                        .await?;
                io.write_all(b"GET /console/api/notes HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await?;
                crate::support::read_response(&mut io).await
            };
            match tokio::time::timeout(Duration::from_secs(60), got).await {
                Ok(Ok(r)) if r.status == 200 => ok += 1,
                other => failed.push(format!("{other:?}")),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (ok, failed)
    })
}

/// The releases difyctl ships: `init` writes the newest (1.16.1, with Dify's envs/ layout
/// and the agent's own SSRF proxy); an install made from 1.15.0 moves to it with `--to`,
/// offline; a version difyctl does not ship is asked of the release source, and one the
/// source does not have is named (exit 2).
#[test]
fn embedded_releases_init_writes_the_newest_and_to_moves_between_them() {
    let dir = Scratch::new("embedded");
    let out = difyctl()
        .arg("--state-dir")
        .arg(dir.path("state"))
        .args(["init", "--dir"])
        .arg(dir.path("new"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let compose = std::fs::read_to_string(dir.path("new/docker-compose.yaml")).unwrap();
    assert!(compose.contains("langgenius/dify-api:1.16.1"));
    assert!(dir.path("new/envs/core-services/api.env").is_file());
    assert!(dir.path("new/ssrf_proxy/squid-agent.conf").is_file());
    let env = std::fs::read_to_string(dir.path("new/.env")).unwrap();
    let token = env_keys(&env)
        .into_iter()
        .find(|(k, _)| k == "DIFY_AGENT_API_TOKEN")
        .expect("the agent API token of 1.16.1 is generated")
        .1;
    assert!(token.len() >= 32 && !difyctl::stack::secrets::is_public(&token));

    let old = dir.path("old");
    difyctl::upgrade::embedded::find("1.15.0")
        .unwrap()
        .materialize(&old)
        .unwrap();
    // As an older difyctl wrote it: without the token 1.16.1 added.
    let env = std::fs::read_to_string(old.join(".env.example")).unwrap();
    let env: Vec<&str> = env
        .lines()
        .filter(|l| !l.starts_with("DIFY_AGENT_API_TOKEN="))
        .collect();
    std::fs::write(old.join(".env"), env.join("\n")).unwrap();
    let server = crate::releases::ReleaseServer::start(&dir.0);
    let upgrade = |args: &[&str]| {
        server
            .difyctl(&dir.path("state"))
            .current_dir(&old)
            .arg("upgrade")
            .args(args)
            .output()
            .unwrap()
    };
    let out = upgrade(&["--to", "1.16.1", "--dry-run"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("upgrade 1.15.0 -> 1.16.1") && text.contains("replace docker-compose.yaml"),
        "{text}"
    );
    assert!(!text.contains("fetching"), "embedded: offline: {text}");
    assert!(text.contains("+ DIFY_AGENT_API_TOKEN=<secret>"), "{text}");
    let out = upgrade(&["--to", "9.9.9", "--dry-run"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no release 9.9.9"));
}

/// Every credential in Dify's published example files (every fixture release, `.env.example`
/// and `envs/`) is found by the name-and-value rule, not a list: a file written from an
/// example keeps none of them, and the settings that only talk about tokens stay as they are.
#[test]
fn credentials_of_every_release_are_found_by_rule_and_replaced() {
    let Some(fx) = fixtures() else { return };
    let mut found = std::collections::BTreeSet::new();
    for release in [
        "dify-1.13.3",
        "dify-1.15.0-tag",
        "dify-1.16.0",
        "dify-1.16.1",
    ] {
        let dir = fx.join(release);
        let mut examples = vec![dir.join(".env.example")];
        examples.extend(
            walk(&dir.join("envs"))
                .into_iter()
                .filter(|p| p.to_string_lossy().ends_with(".env.example")),
        );
        for example in examples {
            let text = std::fs::read_to_string(&example).unwrap();
            let synced = difyctl::upgrade::envsync::sync(
                Path::new(".env"),
                None,
                &text,
                &[],
                release,
                &mut Default::default(),
            )
            .unwrap();
            let out = env_keys(&synced.text);
            let example_env = env_keys(&text);
            assert_eq!(
                out.len(),
                example_env.len(),
                "{release} {}",
                example.display()
            );
            // Written line for line: entries in the same order (a key may appear twice).
            for ((k, v), (_, now)) in example_env.into_iter().zip(&out) {
                if difyctl::stack::secrets::is_credential(&k, &v) {
                    found.insert(k.clone());
                    assert_ne!(
                        now,
                        &v,
                        "{release} {}: {k} kept its published value",
                        example.display()
                    );
                } else if difyctl::stack::secrets::public_in(&v).is_none() {
                    assert_eq!(
                        now,
                        &v,
                        "{release} {}: {k} is not a credential",
                        example.display()
                    );
                }
            }
        }
    }
    for k in [
        "SECRET_KEY",
        "DB_PASSWORD",
        "REDIS_PASSWORD",
        "SANDBOX_API_KEY",
        "PLUGIN_DAEMON_KEY",
        "PLUGIN_DIFY_INNER_API_KEY",
        "WEAVIATE_API_KEY",
        "WEAVIATE_AUTHENTICATION_APIKEY_ALLOWED_KEYS",
        "DIFY_AGENT_SERVER_SECRET_KEY",
        "DIFY_AGENT_API_TOKEN",
        "MINIO_SECRET_KEY",
        "OPENSEARCH_INITIAL_ADMIN_PASSWORD",
    ] {
        assert!(
            found.contains(k),
            "{k} was not found as a credential: {found:?}"
        );
    }
    for k in [
        "ACCESS_TOKEN_EXPIRE_MINUTES",
        "ENABLE_EMAIL_PASSWORD_LOGIN",
        "WEAVIATE_AUTHENTICATION_APIKEY_ENABLED",
        "NGINX_SSL_CERT_KEY_FILENAME",
        "ALIYUN_OSS_ACCESS_KEY",
        "PLUGIN_BASED_TOKEN_COUNTING_ENABLED",
        "WEAVIATE_TOKENIZATION",
    ] {
        assert!(!found.contains(k), "{k} is not a credential");
    }
}

/// Copies a folder tree (a fixture release into a scratch install).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// Dify 1.17.1 moves Weaviate 1.27 -> 1.39; Weaviate cannot skip minor versions with data
/// in place (dify #27291). The upgrade is refused before anything changes, with the steps;
/// a Weaviate without data is not held back.
#[test]
fn a_weaviate_minor_version_skip_with_data_is_refused_with_the_steps() {
    let Some(fx) = fixtures() else { return };
    let dir = Scratch::new("weaviate-skip");
    let install = dir.path("docker");
    copy_tree(&fx.join("dify-1.16.1"), &install);
    std::fs::copy(install.join(".env.example"), install.join(".env")).unwrap();
    let release = dir.path("next");
    copy_tree(&fx.join("dify-1.16.1"), &release);
    let compose = std::fs::read_to_string(release.join("docker-compose.yaml")).unwrap();
    let compose = compose
        .replace(
            "semitechnologies/weaviate:1.27.0",
            "cr.weaviate.io/semitechnologies/weaviate:1.39.2",
        )
        .replace("langgenius/dify-api:1.16.1", "langgenius/dify-api:1.17.1");
    std::fs::write(release.join("docker-compose.yaml"), compose).unwrap();
    let upgrade = || {
        difyctl()
            .current_dir(&install)
            .args(["upgrade", "--dry-run", "--from"])
            .arg(&release)
            .output()
            .unwrap()
    };
    let out = upgrade();
    assert!(
        out.status.success(),
        "no Weaviate data yet: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::create_dir_all(install.join("volumes/weaviate/schema")).unwrap();
    std::fs::write(install.join("volumes/weaviate/schema/schema.db"), "data").unwrap();
    let env_before = std::fs::read(install.join(".env")).unwrap();
    let out = upgrade();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("service weaviate")
            && err.contains("12 minor versions at once")
            && err.contains("weaviate:1.28.0")
            && err.contains("Nothing was changed"),
        "{err}"
    );
    assert_eq!(std::fs::read(install.join(".env")).unwrap(), env_before);
}
