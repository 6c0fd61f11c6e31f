//! Crafted archives, one test per finding: anyone who can write to a backup folder can plant
//! one, and `restore` runs as root. Each is refused (or neutralised) and nothing outside the
//! target changes: a canary tree outside it is compared, byte for byte, before and after.

use std::path::{Path, PathBuf};

use difyctl::backup::archive::{ArchiveWriter, MANIFEST, SIGNATURE};
use difyctl::backup::key::BackupKey;
use difyctl::backup::manifest::{Manifest, Part, PartKind, FORMAT};

use crate::cli::{difyctl, Scratch};
use crate::images::{test_image, DB_IMAGE};

/// A tar in memory: (path, kind, data or link target, mode).
pub enum Item<'a> {
    File(&'a str, &'a [u8], u32),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    Fifo(&'a str),
    /// A name written as is (the tar crate will not write `..` itself; an attacker's tool does).
    RawFile(&'a str, &'a [u8]),
}

pub fn tar(items: &[Item<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for item in items {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_700_000_000);
        match item {
            Item::File(path, data, mode) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                h.set_mode(*mode);
                b.append_data(&mut h, path, *data).unwrap();
            }
            Item::Dir(path) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                h.set_mode(0o755);
                b.append_data(&mut h, path, std::io::empty()).unwrap();
            }
            Item::Symlink(path, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                h.set_mode(0o777);
                b.append_link(&mut h, path, target).unwrap();
            }
            Item::Fifo(path) => {
                h.set_entry_type(tar::EntryType::Fifo);
                h.set_size(0);
                h.set_mode(0o644);
                b.append_data(&mut h, path, std::io::empty()).unwrap();
            }
            Item::RawFile(path, data) => {
                let mut h = tar::Header::new_old();
                h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                h.set_entry_type(tar::EntryType::Regular);
                h.set_cksum();
                b.append(&h, *data).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

/// The install folder of a small stack: one service of the test image with a data folder.
pub fn install_tar(extra: &[Item<'_>]) -> Vec<u8> {
    let compose = format!(
        "services:\n  app:\n    image: {}\n    command: [\"app=0.0.0.0:5000\"]\n    volumes: [\"./volumes/data:/data\", \"cache:/cache\"]\nvolumes:\n  cache: {{}}\n",
        test_image()
    );
    let mut items = vec![
        Item::Dir("./"),
        Item::File("docker-compose.yaml", compose.as_bytes(), 0o644),
        Item::File(".env", b"LOG_LEVEL=INFO\n", 0o600),
    ];
    for e in extra {
        items.push(match e {
            Item::File(a, b, c) => Item::File(a, b, *c),
            Item::Dir(a) => Item::Dir(a),
            Item::Symlink(a, b) => Item::Symlink(a, b),
            Item::Fifo(a) => Item::Fifo(a),
            Item::RawFile(a, b) => Item::RawFile(a, b),
        });
    }
    tar(&items)
}

/// Writes an archive of `parts` (member name, kind, bytes), signed by `key` when given.
pub async fn craft(path: &Path, parts: Vec<(&str, PartKind, Vec<u8>)>, key: Option<&BackupKey>) {
    let mut w = ArchiveWriter::create(path).await.unwrap();
    let mut listed = Vec::new();
    for (name, kind, bytes) in parts {
        let sum = w.add(name, &bytes).await.unwrap();
        listed.push(Part {
            name: sum.name,
            size: sum.size,
            sha256: sum.sha256,
            kind,
            how: "crafted".into(),
            paused: Vec::new(),
            paused_ms: None,
        });
    }
    let manifest = Manifest {
        format: FORMAT,
        difyctl_version: "0.1.0".into(),
        dify_version: None,
        project: "victim".into(),
        created_at: "2026-12-01T00:00:00Z".into(),
        source_dir: PathBuf::from("/opt/dify/docker"),
        compose_files: vec!["docker-compose.yaml".into()],
        profiles: Vec::new(),
        services: vec!["app".into()],
        images: Vec::new(),
        parts: listed,
        skipped: Vec::new(),
    };
    let json = serde_json::to_vec_pretty(&manifest).unwrap();
    w.add(MANIFEST, &json).await.unwrap();
    if let Some(key) = key {
        w.add(SIGNATURE, &serde_json::to_vec(&key.sign(&json)).unwrap())
            .await
            .unwrap();
    }
    w.finish().await.unwrap();
}

fn install(extra: &[Item<'_>]) -> (&'static str, PartKind, Vec<u8>) {
    ("install.tar", PartKind::Install, install_tar(extra))
}

/// A tree outside every target, and what it holds (paths, modes and bytes).
struct Canary {
    dir: PathBuf,
}

impl Canary {
    fn new(root: &Path) -> Canary {
        let dir = root.join("canary");
        std::fs::create_dir_all(dir.join(".ssh")).unwrap();
        std::fs::write(
            dir.join("victim.toml"),
            "domains = [\"mine.example.com\"]\n",
        )
        .unwrap();
        std::fs::write(dir.join("file"), "precious").unwrap();
        std::fs::write(dir.join(".ssh/authorized_keys"), "ssh-ed25519 AAAA mine\n").unwrap();
        Canary { dir }
    }

    fn state(&self) -> Vec<(String, u32, Vec<u8>)> {
        let mut out = Vec::new();
        walk(&self.dir, &mut out);
        out.sort();
        out
    }
}

fn walk(dir: &Path, out: &mut Vec<(String, u32, Vec<u8>)>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = std::fs::symlink_metadata(e.path()).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions());
        let data = if meta.is_file() {
            std::fs::read(e.path()).unwrap()
        } else {
            Vec::new()
        };
        out.push((e.path().display().to_string(), mode, data));
        if meta.is_dir() {
            walk(&e.path(), out);
        }
    }
}

/// The project restores go into (one per test root), taken down when dropped.
struct Project(String);

impl Project {
    fn of(root: &Path) -> Project {
        let name = root
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace(['-', '.'], "");
        Project(name)
    }
    fn down(&self) {
        let _ = difyctl()
            .args(["-p", &self.0, "down", "-v", "--timeout", "1"])
            .current_dir("/")
            .output();
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        self.down();
    }
}

/// `restore` of `archive` into `<root>/target` with its own state dir: (code, stdout, stderr).
fn restore(root: &Path, archive: &Path, args: &[&str]) -> (i32, String, String) {
    let project = Project::of(root).0.clone();
    let out = difyctl()
        .current_dir(root)
        .args(["-p", &project, "--state-dir"])
        .arg(root.join("state"))
        .arg("restore")
        .arg(archive)
        .arg("--dir")
        .arg(root.join("target"))
        .args(["--wait-timeout", "60"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Restores a crafted archive with `--untrusted --yes` (past the signature, so the paths
/// themselves are what is judged); the canary is unchanged, whatever the outcome.
async fn refused(name: &str, parts: Vec<(&str, PartKind, Vec<u8>)>, expect: &str) {
    let root = Scratch::new(&format!("hostile-{name}"));
    let _project = Project::of(&root.0);
    let canary = Canary::new(&root.0);
    let before = canary.state();
    let archive = root.path("crafted.tar");
    craft(&archive, parts, None).await;
    let (code, out, err) = restore(&root.0, &archive, &["--untrusted", "--yes"]);
    assert_eq!(code, 1, "{name}: {out}{err}");
    assert!(err.contains(expect), "{name}: {err}");
    assert_eq!(
        canary.state(),
        before,
        "{name}: something outside the target changed"
    );
    assert!(
        std::fs::read_dir(root.path("target")).map_or(true, |mut d| d.next().is_none()),
        "{name}: the target was left half filled"
    );
}

fn folder_kind(path: &str) -> PartKind {
    PartKind::Folder {
        path: PathBuf::from(path),
        services: vec!["app".into()],
    }
}

#[tokio::test]
async fn manifest_folder_paths_that_leave_the_install_are_refused() {
    let root = Scratch::new("hostile-paths-root");
    let canary = root.path("canary").display().to_string();
    let data = tar(&[
        Item::Dir("./"),
        Item::File(
            ".ssh/authorized_keys",
            b"ssh-ed25519 EVIL attacker\n",
            0o600,
        ),
    ]);
    for (name, path, expect) in [
        (
            "absolute",
            canary.as_str(),
            "no service of the archive's stack mounts it",
        ),
        ("dotdot", "../canary", "is not inside the install folder"),
        (
            "dotdot-inner",
            "volumes/../../canary",
            "is not inside the install folder",
        ),
    ] {
        refused(
            name,
            vec![
                install(&[]),
                ("folders/x.tar", folder_kind(path), data.clone()),
            ],
            expect,
        )
        .await;
    }
}

#[tokio::test]
async fn a_folder_through_a_planted_symlink_is_refused() {
    for (name, target) in [("relative", "../canary"), ("absolute", "/")] {
        refused(
            &format!("symlink-{name}"),
            vec![
                install(&[Item::Symlink("volumes", target)]),
                (
                    "folders/volumes/data.tar",
                    folder_kind("volumes/data"),
                    tar(&[Item::Dir("./"), Item::File("x", b"y", 0o644)]),
                ),
            ],
            "a symlink to",
        )
        .await;
    }
}

#[tokio::test]
async fn a_folder_delta_removed_list_leaving_its_folder_is_refused() {
    let kind = PartKind::FolderDelta {
        path: PathBuf::from("volumes/data"),
        removed: vec![PathBuf::from("../../../canary/file")],
    };
    refused(
        "delta",
        vec![
            install(&[]),
            (
                "folders/volumes/data.delta.tar",
                kind,
                tar(&[Item::Dir("./")]),
            ),
        ],
        "outside its folder",
    )
    .await;
}

#[tokio::test]
async fn members_with_dotdot_devices_or_links_out_are_refused_not_skipped() {
    refused(
        "member-dotdot",
        vec![install(&[Item::RawFile("../canary/file", b"overwritten")])],
        "an absolute path or `..`",
    )
    .await;
    refused(
        "member-fifo",
        vec![
            install(&[]),
            (
                "folders/volumes/data.tar",
                folder_kind("volumes/data"),
                tar(&[Item::Dir("./"), Item::Fifo("pipe")]),
            ),
        ],
        "a fifo",
    )
    .await;
    refused(
        "state-symlink",
        vec![
            install(&[]),
            (
                "state.tar",
                PartKind::State,
                tar(&[Item::Dir("./"), Item::Symlink("certs", "/etc")]),
            ),
        ],
        "a symlink",
    )
    .await;
}

#[tokio::test]
async fn another_projects_volume_is_never_written() {
    let other = format!("otherproj{}_data", std::process::id());
    let kind = PartKind::Volume {
        key: "data".into(),
        docker_name: other.clone(),
        external: false,
        service: "app".into(),
        target: "/data".into(),
    };
    let data = tar(&[Item::Dir("data"), Item::File("data/planted", b"x", 0o644)]);
    refused(
        "volume",
        vec![install(&[]), ("volumes/data.tar", kind, data)],
        "volume key `data` is not a volume of the archive's stack",
    )
    .await;
    let docker = crate::engine::docker().await;
    assert!(
        docker.inspect_volume(&other).await.is_err(),
        "no volume of another project was made or touched"
    );
}

/// The archive's difyctl.toml (from another machine's path) goes to the target's own place;
/// setuid bits are dropped; the canary (where the toml claimed to live) is untouched.
#[tokio::test]
async fn config_goes_to_the_target_and_setuid_is_dropped() {
    let root = Scratch::new("hostile-config");
    let _project = Project::of(&root.0);
    let canary = Canary::new(&root.0);
    let before = canary.state();
    let archive = root.path("crafted.tar");
    let config = PartKind::Config {
        path: canary.dir.join("victim.toml"),
    };
    craft(
        &archive,
        vec![
            install(&[]),
            (
                "config.tar",
                config,
                tar(&[Item::File(
                    "victim.toml",
                    b"domains = [\"evil.example.com\"]\n",
                    0o644,
                )]),
            ),
            (
                "folders/volumes/data.tar",
                folder_kind("volumes/data"),
                tar(&[Item::Dir("./"), Item::File("tool", b"#!/bin/sh\n", 0o4755)]),
            ),
        ],
        None,
    )
    .await;
    let (code, out, err) = restore(&root.0, &archive, &["--untrusted", "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("NOT trusted") && err.contains("not signed"),
        "{err}"
    );
    assert_eq!(canary.state(), before);
    assert_eq!(
        std::fs::read_to_string(root.path("target/difyctl.toml")).unwrap(),
        "domains = [\"evil.example.com\"]\n"
    );
    let mode = std::fs::metadata(root.path("target/volumes/data/tool"))
        .unwrap()
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o7777,
        0o755,
        "setuid dropped"
    );
}

/// Unsigned: refused without --untrusted (exit 2, nothing written); with it, the risks of its
/// compose are shown first and, without a terminal, --yes is needed. A tampered manifest is
/// not believed. Signed by another install: believed with --trust.
#[tokio::test]
async fn signatures_decide_trust_and_risks_are_shown_first() {
    let root = Scratch::new("hostile-trust");
    let project = Project::of(&root.0);
    let archive = root.path("unsigned.tar");
    let risky = tar(&[
        Item::Dir("./"),
        Item::File(
            "docker-compose.yaml",
            format!("services:\n  app:\n    image: {}\n    command: [\"app=0.0.0.0:5000\"]\n    privileged: true\n    volumes: [\"/var/run/docker.sock:/var/run/docker.sock\", \"/etc:/host-etc\"]\n", test_image()).as_bytes(),
            0o644,
        ),
    ]);
    craft(
        &archive,
        vec![("install.tar", PartKind::Install, risky.clone())],
        None,
    )
    .await;
    let (code, _, err) = restore(&root.0, &archive, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("not signed") && err.contains("--untrusted"),
        "{err}"
    );
    assert!(!root.path("target").exists(), "nothing written");
    let (code, _, err) = restore(&root.0, &archive, &["--untrusted"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("mounts the Docker socket")
            && err.contains("mounts the host folder /etc")
            && err.contains("runs privileged")
            && err.contains("--yes"),
        "{err}"
    );
    assert!(
        !root.path("target").exists(),
        "nothing written before the answer"
    );

    // Signed by another install's key, then the manifest swapped: not believed.
    let other = BackupKey::load_or_create(&root.path("other-state")).unwrap();
    let signed = root.path("signed.tar");
    craft(&signed, vec![install(&[])], Some(&other)).await;
    let (code, _, err) = restore(&root.0, &signed, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("neither this install's backup key"), "{err}");
    let (code, out, err) = restore(&root.0, &signed, &["--trust", &other.public().to_string()]);
    assert_eq!(code, 0, "{out}{err}");
    project.down();
    let _ = std::fs::remove_dir_all(root.path("target"));
    let _ = std::fs::remove_dir_all(root.path("state"));

    let tampered = root.path("tampered.tar");
    let mut bytes = std::fs::read(&signed).unwrap();
    let at = bytes.windows(8).rposition(|w| w == b"\"victim\"").unwrap();
    bytes[at + 1..at + 7].copy_from_slice(b"intrud");
    std::fs::write(&tampered, bytes).unwrap();
    let (code, _, err) = restore(
        &root.0,
        &tampered,
        &["--trust", &other.public().to_string()],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("changed after it was signed"), "{err}");
}

/// `globals.sql` is never run as a script: the shell escape, COPY TO PROGRAM and a new
/// SUPERUSER are left out and named; the restore itself goes on.
#[tokio::test]
async fn hostile_globals_are_neutralised() {
    let root = Scratch::new("hostile-globals");
    let archive = root.path("globals.tar");
    let compose = format!(
        "services:\n  db_postgres:\n    image: {DB_IMAGE}\n    environment:\n      POSTGRES_USER: postgres\n      POSTGRES_PASSWORD: pw-4711\n      POSTGRES_DB: dify\n      PGDATA: /var/lib/postgresql/data/pgdata\n    command: postgres\n    volumes: [\"./volumes/db:/var/lib/postgresql/data\"]\n    healthcheck:\n      test: [\"CMD\", \"pg_isready\", \"-h\", \"127.0.0.1\", \"-U\", \"postgres\"]\n      interval: 1s\n      retries: 60\n"
    );
    let globals = b"SET default_transaction_read_only = off;\nCREATE ROLE postgres;\nALTER ROLE postgres WITH SUPERUSER LOGIN PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$a2V5:c2lnbg==';\n\\! touch /tmp/pwned-by-globals\nCOPY (SELECT 1) TO PROGRAM 'touch /tmp/pwned-by-copy';\nCREATE ROLE evil;\nALTER ROLE evil WITH SUPERUSER LOGIN PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$a2V5:c2lnbg==';\n";
    craft(
        &archive,
        vec![
            (
                "install.tar",
                PartKind::Install,
                tar(&[
                    Item::Dir("./"),
                    Item::File("docker-compose.yaml", compose.as_bytes(), 0o644),
                ]),
            ),
            (
                "databases/db_postgres/globals.sql",
                PartKind::PostgresGlobals {
                    service: "db_postgres".into(),
                },
                globals.to_vec(),
            ),
        ],
        None,
    )
    .await;
    let project = Project::of(&root.0);
    let (code, out, err) = restore(&root.0, &archive, &["--untrusted", "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("left out `\\! touch") && err.contains("left out `COPY"),
        "{err}"
    );
    assert!(
        err.contains("role evil of databases/db_postgres/globals.sql left out"),
        "{err}"
    );
    let db = format!("{}-db_postgres-1", project.0);
    let (code, roles) = crate::engine::exec(&db, &["psql", "-U", "postgres", "-Atc", "SELECT rolname FROM pg_roles WHERE rolname IN ('evil') OR rolname LIKE 'difyctl_restore%'"]).await;
    assert_eq!(code, 0, "{roles}");
    assert_eq!(
        roles.trim(),
        "",
        "no role from the script, and the loading role is gone"
    );
    for f in ["/tmp/pwned-by-globals", "/tmp/pwned-by-copy"] {
        let (code, out) = crate::engine::exec(&db, &["sh", "-c", &format!("test ! -e {f}")]).await;
        assert_eq!(code, 0, "{f} was made: the script ran {out}");
    }
}

/// Not an archive at all: named for what it is, not called a truncated backup.
#[tokio::test]
async fn a_file_that_is_not_an_archive_is_named_for_what_it_is() {
    let root = Scratch::new("hostile-notarchive");
    let plain = tar(&[Item::File("notes.txt", b"hello", 0o644)]);
    for (name, bytes, expect) in [
        ("empty", Vec::new(), "it is empty"),
        (
            "gz",
            vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3],
            "gzip-compressed",
        ),
        ("plain.tar", plain, "without manifest.json"),
        ("text", b"#!/bin/sh\necho hi\n".to_vec(), "it is text"),
    ] {
        let path = root.path(name);
        std::fs::write(&path, bytes).unwrap();
        let (code, _, err) = restore(&root.0, &path, &[]);
        assert_eq!(code, 1, "{name}: {err}");
        assert!(
            err.contains("not a difyctl backup") && err.contains(expect),
            "{name}: {err}"
        );
        assert!(!err.contains("truncated"), "{name}: {err}");
    }
}

/// `backup --to` a folder others share (1777) keeps its mode, and a lock file planted there as
/// a symlink is not followed (the lock lives in the state dir).
#[tokio::test]
async fn backup_to_a_shared_folder_keeps_its_mode_and_follows_no_planted_lock() {
    use std::os::unix::fs::PermissionsExt;
    let stack = crate::engine::TestStack::with_image(
        "shared",
        &crate::backup::stand_in(),
        "DB_PASSWORD=pw-shared\nREDIS_PASSWORD=redis-shared\n",
        crate::images::app_image(),
    );
    stack.up(&[]);
    let shared = stack.dir.join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let victim = stack.dir.join("victim");
    std::fs::write(&victim, "untouched").unwrap();
    std::os::unix::fs::symlink(
        &victim,
        shared.join(format!(".difyctl-{}.lock", stack.project)),
    )
    .unwrap();
    let (code, _, err) = stack.difyctl(&[
        "--state-dir",
        "state",
        "backup",
        "--to",
        shared.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let mode = std::fs::metadata(&shared).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o1777, "the shared folder keeps its mode");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
}

/// The restore of a good archive into a second folder leaves the first install as it was,
/// its difyctl.toml (kept outside its folder) included: the archive's copy goes to the new
/// folder.
#[tokio::test]
async fn restoring_into_a_second_folder_leaves_the_first_install_as_it_was() {
    let stack = crate::engine::TestStack::with_image(
        "first",
        &crate::backup::stand_in(),
        "DB_PASSWORD=pw-first\nREDIS_PASSWORD=redis-first\n",
        crate::images::app_image(),
    );
    stack.up(&[]);
    let config_dir = stack
        .dir
        .with_file_name(format!("{}-config", stack.project));
    std::fs::create_dir_all(&config_dir).unwrap();
    let config = config_dir.join("difyctl.toml");
    std::fs::write(&config, "[backup]\nkeep = 3\n").unwrap();
    let backups = stack.dir.join("backups");
    let (code, out, err) = stack.difyctl(&[
        "--state-dir",
        "state",
        "--config",
        config.to_str().unwrap(),
        "backup",
        "--to",
        backups.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let archive = serde_json::from_str::<serde_json::Value>(&out).unwrap()["archive"]
        .as_str()
        .unwrap()
        .to_string();
    let key = crate::backup::key_of(&stack);
    let first: Vec<(String, Vec<u8>)> = [
        stack.dir.join(".env"),
        stack.dir.join("docker-compose.yaml"),
        config.clone(),
    ]
    .iter()
    .map(|p| (p.display().to_string(), std::fs::read(p).unwrap()))
    .collect();
    // The second install lives beside the first.
    let second = Scratch::new(&format!("second-{}", stack.project));
    let _project = Project::of(&second.0);
    let (code, out, err) = restore(&second.0, Path::new(&archive), &["--trust", &key]);
    let now: Vec<Vec<u8>> = first
        .iter()
        .map(|(p, _)| std::fs::read(p).unwrap())
        .collect();
    let _ = std::fs::remove_dir_all(&config_dir);
    assert_eq!(code, 0, "{out}{err}");
    for ((path, bytes), now) in first.iter().zip(&now) {
        assert_eq!(now, bytes, "{path} changed");
    }
    assert_eq!(
        std::fs::read_to_string(second.path("target/difyctl.toml")).unwrap(),
        "[backup]\nkeep = 3\n",
        "the archive's settings in the new install's own place"
    );
}

/// Regression (rough edges #2): `restore ARCHIVE -f /opt/dify/docker/docker-compose.yaml`
/// restored into the current folder; `-f` names the install, as in compose.
#[tokio::test]
async fn restore_with_f_goes_into_the_compose_files_folder() {
    let root = Scratch::new("restore-f");
    let _project = Project::of(&root.0);
    let key = BackupKey::load_or_create(&root.path("source-state")).unwrap();
    let archive = root.path("a.tar");
    craft(&archive, vec![install(&[])], Some(&key)).await;
    let target = root.path("target");
    let out = difyctl()
        .current_dir("/")
        .args(["-p", &_project.0, "--state-dir"])
        .arg(root.path("state"))
        .arg("-f")
        .arg(target.join("docker-compose.yaml"))
        .arg("restore")
        .arg(&archive)
        .args(["--trust", &key.public().to_string(), "--wait-timeout", "60"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(target.join("docker-compose.yaml").is_file(), "{err}");
}
