//! Dify's releases as data: a local HTTPS server stands in for Dify's tag archives (GitHub's
//! layout, `{url}/{V}.tar.gz` with the top folder `dify-{V}/`, reached through a redirect as
//! GitHub's are), serving the fixtures; difyctl trusts it through `SSL_CERT_FILE`. `init
//! --version` and `upgrade --to` fetch any release; hostile archives are refused; the fixture
//! releases 1.13.3 -> 1.15.0 -> 1.16.0 -> 1.16.1 are upgraded file by file, three-way.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::cli::{difyctl, Scratch};

/// A release archive server on 127.0.0.1 (name `localhost` in its certificate).
pub struct ReleaseServer {
    pub url: String,
    pub ca_file: PathBuf,
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl ReleaseServer {
    pub fn start(dir: &Path) -> ReleaseServer {
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let ca_file = dir.join("release-server-ca.pem");
        std::fs::write(&ca_file, generated.cert.pem()).unwrap();
        let cert = generated.cert.der().clone();
        let key = rustls::pki_types::PrivateKeyDer::try_from(generated.signing_key.serialize_der())
            .unwrap();
        let files: Arc<Mutex<HashMap<String, Vec<u8>>>> = Default::default();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let served = files.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(serve(cert, key, served, addr_tx, stop_rx));
        });
        let port = addr_rx.recv().unwrap();
        ReleaseServer {
            url: format!("https://localhost:{port}/dify/archive/refs/tags"),
            ca_file,
            files,
            _stop: stop_tx,
        }
    }

    /// Serves `bytes` at `{url}/{name}` (reached through a redirect, as GitHub's archives are).
    pub fn put(&self, name: &str, bytes: Vec<u8>) {
        self.files.lock().unwrap().insert(name.to_string(), bytes);
    }

    /// difyctl pointed at this server, with its state in `state`.
    pub fn difyctl(&self, state: &Path) -> std::process::Command {
        let mut cmd = difyctl();
        cmd.env("SSL_CERT_FILE", &self.ca_file)
            .env("DIFYCTL_RELEASES_URL", &self.url)
            .arg("--state-dir")
            .arg(state);
        cmd
    }
}

async fn serve(
    cert: rustls::pki_types::CertificateDer<'static>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    addr_tx: std::sync::mpsc::Sender<u16>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    addr_tx.send(listener.local_addr().unwrap().port()).unwrap();
    loop {
        let (tcp, _) = tokio::select! {
            conn = listener.accept() => conn.unwrap(),
            _ = &mut stop => return,
        };
        let (acceptor, files) = (acceptor.clone(), files.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let files = files.clone();
                    async move { Ok::<_, std::convert::Infallible>(answer(&req, &files)) }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
        });
    }
}

fn answer(
    req: &hyper::Request<hyper::body::Incoming>,
    files: &Mutex<HashMap<String, Vec<u8>>>,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    let path = req.uri().path();
    let respond = |status: u16, body: Vec<u8>| {
        hyper::Response::builder()
            .status(status)
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap()
    };
    // GitHub sends archives on to codeload: so does this server, to /codeload/.
    if let Some(name) = path.strip_prefix("/dify/archive/refs/tags/") {
        if name.ends_with(".tar.gz") {
            return hyper::Response::builder()
                .status(302)
                .header("location", format!("/codeload/{name}"))
                .body(Default::default())
                .unwrap();
        }
        return match files.lock().unwrap().get(name) {
            Some(b) => respond(200, b.clone()),
            None => respond(404, b"not found".to_vec()),
        };
    }
    let name = path.strip_prefix("/codeload/").unwrap_or_default();
    match files.lock().unwrap().get(name) {
        Some(b) => respond(200, b.clone()),
        None => respond(404, b"not found".to_vec()),
    }
}

/// A tag archive as GitHub makes it: `top/` holding `docker/` (the files of `docker_dir`)
/// beside the rest of the repository, plus `extra` members (path, data).
pub fn tag_archive(top: &str, docker_dir: &Path, extra: &[(&str, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    let mut add = |path: &str, data: &[u8], mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, path, data).unwrap();
    };
    add(&format!("{top}/README.md"), b"# Dify\n", 0o644);
    add(&format!("{top}/api/app.py"), b"print('the api')\n", 0o644);
    for file in walk(docker_dir) {
        let rel = file
            .strip_prefix(docker_dir)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        add(
            &format!("{top}/docker/{rel}"),
            &std::fs::read(&file).unwrap(),
            0o644,
        );
    }
    for (path, data) in extra {
        // Raw names: the tar crate refuses to write `..` itself, an attacker's tool does not.
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        tar.append(&h, *data).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
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
    out.sort();
    out
}

pub fn fixtures() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures");
    if dir.join("dify-1.16.1/docker-compose.yaml").is_file() {
        Some(dir)
    } else {
        eprintln!("skipped: Dify's fixtures are not at {}", dir.display());
        None
    }
}

/// The fixture of release `v` (1.15.0 is the tag's files, `dify-1.15.0-tag`).
pub fn fixture(fx: &Path, v: &str) -> PathBuf {
    match v {
        "1.15.0" => fx.join("dify-1.15.0-tag"),
        other => fx.join(format!("dify-{other}")),
    }
}

fn run(cmd: &mut std::process::Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `releases` lists what the source publishes (GitHub's JSON) with the embedded and fetched
/// ones; `init --version` of a release difyctl does not ship fetches Dify's own folder
/// through the redirect, keeps only docker/, writes `.env` with fresh credentials, and caches
/// the release.
#[test]
fn init_version_fetches_dify_s_own_release_and_releases_lists_them() {
    let Some(fx) = fixtures() else { return };
    let dir = Scratch::new("releases-init");
    let server = ReleaseServer::start(&dir.0);
    server.put(
        "1.13.3.tar.gz",
        tag_archive("dify-1.13.3", &fx.join("dify-1.13.3"), &[]),
    );
    server.put(
        "releases.json",
        br#"[{"tag_name":"1.16.1","published_at":"2026-07-28T00:00:00Z"},{"tag_name":"1.17.1","published_at":"2026-09-10T00:00:00Z"},{"tag_name":"1.13.3"}]"#.to_vec(),
    );
    let state = dir.path("state");
    let install = dir.path("dify");
    let (code, out, err) = run(server
        .difyctl(&state)
        .args(["init", "--version", "1.13.3", "--dir"])
        .arg(&install));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("fetching Dify 1.13.3"), "{out}");
    let compose = std::fs::read(install.join("docker-compose.yaml")).unwrap();
    assert_eq!(
        compose,
        std::fs::read(fx.join("dify-1.13.3/docker-compose.yaml")).unwrap(),
        "Dify's own compose file, byte for byte"
    );
    assert!(
        !install.join("README.md").exists() && !install.join("api").exists(),
        "only docker/ is kept"
    );
    let env = std::fs::read_to_string(install.join(".env")).unwrap();
    let example = std::fs::read_to_string(install.join(".env.example")).unwrap();
    let parse = |t: &str| difyctl::envfile::EnvFile::parse(Path::new(".env"), t).unwrap();
    let (env, example) = (parse(&env), parse(&example));
    for e in &example.entries {
        if difyctl::stack::secrets::is_credential(&e.key, &e.value) {
            assert_ne!(
                env.get(&e.key).unwrap().value,
                e.value,
                "{} kept Dify's public value",
                e.key
            );
        }
    }
    assert!(!env.get("INIT_PASSWORD").unwrap().value.is_empty());
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(install.join(".env"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        state.join("releases/1.13.3/docker-compose.yaml").is_file(),
        "cached"
    );

    let (code, out, err) = run(server
        .difyctl(&state)
        .current_dir(&install)
        .args(["releases", "--json"]));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["installed"], "1.13.3", "{out}");
    assert_eq!(v["newest"], "1.17.1", "{out}");
    let row = |version: &str| {
        v["releases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["version"] == version)
            .cloned()
            .unwrap_or_else(|| panic!("{version} missing: {out}"))
    };
    assert_eq!(row("1.13.3")["cached"], true);
    assert_eq!(row("1.16.1")["embedded"], true);
    assert_eq!(row("1.17.1")["date"], "2026-09-10");
    let (code, out, _) = run(server.difyctl(&state).current_dir(&install).arg("releases"));
    assert_eq!(code, 0);
    assert!(
        out.contains("This install runs 1.13.3; the newest is 1.17.1"),
        "{out}"
    );

    // A release the source does not have is named, with exit 2.
    let (code, _, err) = run(server
        .difyctl(&state)
        .args(["init", "--version", "1.99.0", "--dir"])
        .arg(dir.path("none")));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no release 1.99.0"), "{err}");
}

/// Archives that are not what they claim are refused with the member or reason named, and
/// nothing of them is left in the cache: truncated, not gzip, another release's files, a
/// path leaving the folder, a link, an oversized member.
#[test]
fn hostile_or_wrong_release_archives_are_refused_and_not_cached() {
    let Some(fx) = fixtures() else { return };
    let dir = Scratch::new("releases-bad");
    let server = ReleaseServer::start(&dir.0);
    let good = tag_archive("dify-1.16.7", &fx.join("dify-1.16.1"), &[]);
    server.put("1.16.7.tar.gz", good[..good.len() / 2].to_vec());
    server.put("1.16.8.tar.gz", b"<html>rate limited</html>".to_vec());
    // 1.16.1's files under the name 1.16.9: the api image says 1.16.1.
    server.put(
        "1.16.9.tar.gz",
        tag_archive("dify-1.16.9", &fx.join("dify-1.16.1"), &[]),
    );
    server.put(
        "1.17.2.tar.gz",
        tag_archive("dify-1.16.1", &fx.join("dify-1.16.1"), &[]),
    );
    server.put(
        "1.17.3.tar.gz",
        tag_archive(
            "dify-1.17.3",
            &fx.join("dify-1.16.1"),
            &[(
                "dify-1.17.3/docker/../../../etc/cron.d/x",
                b"* * * * * root sh",
            )],
        ),
    );
    let big = vec![0u8; 17 << 20];
    server.put(
        "1.17.4.tar.gz",
        tag_archive(
            "dify-1.17.4",
            &fx.join("dify-1.16.1"),
            &[("dify-1.17.4/docker/big.bin", &big)],
        ),
    );
    let with_link = {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        tar.append_link(
            &mut h,
            "dify-1.17.5/docker/docker-compose.yaml",
            "/etc/shadow",
        )
        .unwrap();
        let mut gz = tar.into_inner().unwrap();
        gz.flush().unwrap();
        gz.finish().unwrap()
    };
    server.put("1.17.5.tar.gz", with_link);
    let state = dir.path("state");
    for (version, expect) in [
        ("1.16.7", "truncated or damaged"),
        ("1.16.8", "not gzip-compressed"),
        (
            "1.16.9",
            "holds Dify 1.16.1 (its api image's tag), not Dify 1.16.9",
        ),
        ("1.17.2", "holds the folder dify-1.16.1/, not Dify 1.17.2"),
        ("1.17.3", "an absolute path or `..`"),
        ("1.17.4", "member dify-1.17.4/docker/big.bin: larger than"),
        ("1.17.5", "a link or special file"),
    ] {
        let (code, out, err) = run(server
            .difyctl(&state)
            .args(["init", "--version", version, "--dir"])
            .arg(dir.path(version)));
        assert_eq!(code, 1, "{version}: {out}{err}");
        assert!(err.contains(expect), "{version}: {err}");
        assert!(
            !dir.path(version).join("docker-compose.yaml").exists(),
            "{version}: nothing written"
        );
        assert!(
            !state.join("releases").join(version).exists(),
            "{version}: not cached"
        );
    }
    let leftovers: Vec<_> = std::fs::read_dir(state.join("releases"))
        .unwrap()
        .flatten()
        .collect();
    assert!(leftovers.is_empty(), "scratch left behind: {leftovers:?}");
    assert!(!Path::new("/etc/cron.d/x").exists());
}

/// Dify's own folder from 1.13.3 through the fixture releases to 1.16.1, file by file (the
/// library steps `upgrade` runs between backup and recreate, after its `--dry-run`): every
/// user value kept, every new key present, no public default introduced, files the user
/// never touched replaced by the release's; a file the user edited is kept with the
/// release's version beside it, and `--dry-run` shows the difference.
#[test]
fn dify_s_own_folder_upgrades_1_13_to_1_16_1_three_way() {
    use difyctl::releases::release::Release;
    use difyctl::upgrade::{apply, base, plan};
    let Some(fx) = fixtures() else { return };
    let dir = Scratch::new("releases-chain");
    let server = ReleaseServer::start(&dir.0);
    for v in ["1.13.3", "1.15.0", "1.16.0", "1.16.1"] {
        server.put(
            &format!("{v}.tar.gz"),
            tag_archive(&format!("dify-{v}"), &fixture(&fx, v), &[]),
        );
    }
    let state = dir.path("state");
    let install = dir.path("dify");
    let (code, _, err) = run(server
        .difyctl(&state)
        .args(["init", "--version", "1.13.3", "--dir"])
        .arg(&install));
    assert_eq!(code, 0, "{err}");
    let env_path = install.join(".env");
    let env = std::fs::read_to_string(&env_path)
        .unwrap()
        .replace("\nLOG_LEVEL=INFO\n", "\nLOG_LEVEL=DEBUG\n");
    std::fs::write(&env_path, &env).unwrap();

    let step = |install: &Path, current: &str, next: &str| -> String {
        let (code, out, err) = run(server.difyctl(&state).current_dir(install).args([
            "upgrade",
            "--to",
            next,
            "--dry-run",
        ]));
        assert_eq!(code, 0, "{current} -> {next}: {out}{err}");
        assert!(
            out.contains(&format!("upgrade {current} -> {next}")),
            "{out}"
        );
        let release = Release::read(&state.join("releases").join(next)).unwrap();
        let (recorded, version) = base::read(&state, install).unwrap();
        assert_eq!(version, current);
        let plan = plan::plan(install, &release, Some(current), Some(&recorded)).unwrap();
        apply::apply(
            install,
            &plan,
            &install.with_extension(format!("rollback-{next}")),
        )
        .unwrap();
        base::record(&state, install, &release.dir, &release.files, next).unwrap();
        out
    };
    let mut current = "1.13.3".to_string();
    for next in ["1.15.0", "1.16.0", "1.16.1"] {
        if next == "1.16.1" {
            // A second install at 1.16.0 whose owner edited the SSRF proxy's template.
            let edited_install = dir.path("edited");
            copy_tree(&install, &edited_install);
            let release = Release::read(&state.join("releases/1.16.0")).unwrap();
            base::record(
                &state,
                &edited_install,
                &release.dir,
                &release.files,
                "1.16.0",
            )
            .unwrap();
            let squid = edited_install.join("ssrf_proxy/squid.conf.template");
            let mine = std::fs::read_to_string(&squid).unwrap() + "# my own squid setting\n";
            std::fs::write(&squid, &mine).unwrap();
            let out = step(&edited_install, "1.16.0", "1.16.1");
            assert!(
                out.contains("keep    ssrf_proxy/squid.conf.template: you changed it")
                    && out.contains("ssrf_proxy/squid.conf.template.dify-1.16.1")
                    && out.contains("- 1.16.0, + yours")
                    && out.contains("+ # my own squid setting"),
                "{out}"
            );
            assert_eq!(
                std::fs::read_to_string(&squid).unwrap(),
                mine,
                "the user's file kept"
            );
            assert_eq!(
                std::fs::read(edited_install.join("ssrf_proxy/squid.conf.template.dify-1.16.1"))
                    .unwrap(),
                std::fs::read(fx.join("dify-1.16.1/ssrf_proxy/squid.conf.template")).unwrap(),
                "the release's version beside it"
            );
        }
        let out = step(&install, &current, next);
        let release_dir = state.join("releases").join(next);
        let release = Release::read(&release_dir).unwrap();
        for rel in &release.files {
            let name = rel.to_string_lossy();
            if name.ends_with(".example") {
                continue;
            }
            assert_eq!(
                std::fs::read(install.join(rel)).unwrap(),
                std::fs::read(release_dir.join(rel)).unwrap(),
                "{next}: {name}, never touched by the user, is the release's: {out}"
            );
        }
        let env = std::fs::read_to_string(&env_path).unwrap();
        assert!(
            env.contains("\nLOG_LEVEL=DEBUG\n"),
            "{next}: the user's value"
        );
        let example = std::fs::read_to_string(release_dir.join(".env.example")).unwrap();
        let parse = |t: &str| difyctl::envfile::EnvFile::parse(Path::new(".env"), t).unwrap();
        let (now, ex) = (parse(&env), parse(&example));
        for e in &ex.entries {
            let have = now
                .get(&e.key)
                .unwrap_or_else(|| panic!("{next}: {} missing", e.key));
            if difyctl::stack::secrets::is_credential(&e.key, &e.value) {
                assert_ne!(
                    have.value, e.value,
                    "{next}: {} has Dify's public value",
                    e.key
                );
            }
        }
        current = next.to_string();
    }
}

fn copy_tree(from: &Path, to: &Path) {
    crate::upgrade::copy_tree(from, to)
}
