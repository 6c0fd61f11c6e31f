//! The test image, built with no registry: a static build of the project's own test server
//! (testserver/), put in a tar as the only file of a FROM-scratch image and imported through
//! the Engine API. Entry point `/testserver`; see testserver/src/main.rs for its commands.

use std::path::PathBuf;
use std::sync::OnceLock;

use bollard::query_parameters::CreateImageOptions;
use futures_util::StreamExt;

pub const IMAGE: &str = "difyctl-testserver:test";

/// PostgreSQL 15 and Redis from Debian's packages, built by scripts/test-db-image.sh (which
/// the README's test command runs).
pub const DB_IMAGE: &str = "difyctl-testdb:current";

/// The database image plus the test server at /testserver: the backup tests' db, redis and
/// api (whose `/notes` writes rows through `psql`).
pub const APP_IMAGE: &str = "difyctl-testapp:test";

/// Builds and imports the image once per test run; panics with the reason when it cannot
/// (no Docker engine, no static toolchain): these tests need both.
pub fn test_image() -> &'static str {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let result = READY.get_or_init(|| {
        std::thread::spawn(|| {
            let binary = build_static()?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(import(&binary))
        })
        .join()
        .unwrap_or_else(|_| Err("the image builder panicked".into()))
    });
    if let Err(e) = result {
        panic!("cannot build the test image {IMAGE}: {e}");
    }
    IMAGE
}

/// Builds `APP_IMAGE` once per test run (FROM the local database image: no registry).
pub fn app_image() -> &'static str {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let result = READY.get_or_init(|| {
        std::thread::spawn(|| {
            let binary = build_static()?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(build_app(&binary))
        })
        .join()
        .unwrap_or_else(|_| Err("the image builder panicked".into()))
    });
    if let Err(e) = result {
        panic!("cannot build the test image {APP_IMAGE}: {e}");
    }
    APP_IMAGE
}

async fn build_app(binary: &std::path::Path) -> Result<(), String> {
    let engine = difyctl::engine::Engine::connect()
        .await
        .map_err(|e| difyctl::error_chain(&e))?;
    if engine.docker.inspect_image(DB_IMAGE).await.is_err() {
        return Err(format!(
            "{DB_IMAGE} is missing: run ./scripts/install-test-deps.sh (it builds it from Debian's packages)"
        ));
    }
    let data = std::fs::read(binary).map_err(|e| format!("{}: {e}", binary.display()))?;
    let base = engine
        .docker
        .inspect_image(DB_IMAGE)
        .await
        .ok()
        .and_then(|i| i.id)
        .unwrap_or_default();
    let hash = content_hash(&[&data, base.as_bytes()]);
    let old = match current(&engine, APP_IMAGE, &hash).await {
        Ok(_) => return Ok(()),
        Err(old) => old,
    };
    let dockerfile =
        format!("FROM {DB_IMAGE}\nCOPY testserver /testserver\nLABEL difyctl.content={hash}\n");
    let mut tar = Vec::new();
    tar_entry(&mut tar, "Dockerfile", 0o644, dockerfile.as_bytes());
    tar_entry(&mut tar, "testserver", 0o755, &data);
    tar.extend_from_slice(&[0u8; 1024]);
    let options = bollard::query_parameters::BuildImageOptions {
        dockerfile: "Dockerfile".into(),
        t: Some(APP_IMAGE.into()),
        rm: true,
        ..Default::default()
    };
    let mut stream = engine
        .docker
        .build_image(options, None, Some(bollard::body_full(tar.into())));
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| e.to_string())?;
        if let Some(e) = info.error_detail.and_then(|d| d.message) {
            return Err(e);
        }
    }
    drop(stream);
    remove_replaced(&engine, old).await;
    Ok(())
}

/// `cargo build` of the test server, static (glibc's static libs come with gcc's libc6-dev).
/// Its own target dir: the outer `cargo test` may still hold the main one's lock.
fn build_static() -> Result<PathBuf, String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target_dir = root.join("target/static");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .current_dir(&root)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "difyctl-testserver",
            "--target",
            "x86_64-unknown-linux-gnu",
            "--target-dir",
        ])
        .arg(&target_dir)
        .env(
            "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS",
            "-C target-feature=+crt-static",
        )
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "static build failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(target_dir.join("x86_64-unknown-linux-gnu/release/testserver"))
}

/// A short content hash, kept in a label: an image already built from the same bytes is not
/// built again (each rebuild under the same tag used to leave an untagged image behind).
fn content_hash(parts: &[&[u8]]) -> String {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    ctx.finish().as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `image` exists with `difyctl.content=hash`; otherwise the ID it has now (to remove
/// once replaced).
async fn current(
    engine: &difyctl::engine::Engine,
    image: &str,
    hash: &str,
) -> Result<bool, Option<String>> {
    match engine.docker.inspect_image(image).await {
        Ok(info) => {
            let same = info
                .config
                .as_ref()
                .and_then(|c| c.labels.as_ref())
                .and_then(|l| l.get("difyctl.content"))
                .is_some_and(|h| h == hash);
            if same {
                Ok(true)
            } else {
                Err(info.id)
            }
        }
        Err(_) => Err(None),
    }
}

/// Removes the image a rebuild replaced (if nothing uses it).
async fn remove_replaced(engine: &difyctl::engine::Engine, old: Option<String>) {
    if let Some(id) = old {
        let _ = engine
            .docker
            .remove_image(
                &id,
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await;
    }
}

async fn import(binary: &std::path::Path) -> Result<(), String> {
    let data = std::fs::read(binary).map_err(|e| format!("{}: {e}", binary.display()))?;
    let hash = content_hash(&[&data]);
    let engine = difyctl::engine::Engine::connect()
        .await
        .map_err(|e| difyctl::error_chain(&e))?;
    let old = match current(&engine, IMAGE, &hash).await {
        Ok(_) => return Ok(()),
        Err(old) => old,
    };
    let mut tar = Vec::new();
    tar_entry(&mut tar, "testserver", 0o755, &data);
    tar_dir(&mut tar, "tmp/");
    tar_dir(&mut tar, "data/");
    tar.extend_from_slice(&[0u8; 1024]);
    let options = CreateImageOptions {
        from_src: Some("-".into()),
        repo: Some("difyctl-testserver".into()),
        tag: Some("test".into()),
        changes: vec![
            "ENTRYPOINT [\"/testserver\"]".into(),
            format!("LABEL difyctl.content={hash}"),
        ],
        ..Default::default()
    };
    let mut stream =
        engine
            .docker
            .create_image(Some(options), Some(bollard::body_full(tar.into())), None);
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| e.to_string())?;
        if let Some(e) = info.error_detail.and_then(|d| d.message) {
            return Err(e);
        }
    }
    remove_replaced(&engine, old).await;
    Ok(())
}

fn tar_dir(tar: &mut Vec<u8>, name: &str) {
    tar_header(tar, name, 0o1777, 0, b'5');
}

fn tar_entry(tar: &mut Vec<u8>, name: &str, mode: u32, data: &[u8]) {
    tar_header(tar, name, mode, data.len(), b'0');
    tar.extend_from_slice(data);
    let pad = (512 - data.len() % 512) % 512;
    tar.extend(std::iter::repeat_n(0u8, pad));
}

/// A ustar header: name, mode, uid/gid 0, size, mtime, checksum, type.
fn tar_header(tar: &mut Vec<u8>, name: &str, mode: u32, size: usize, kind: u8) {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    let octal = |h: &mut [u8; 512], at: usize, len: usize, v: u64| {
        let s = format!("{v:0w$o}", w = len - 1);
        h[at..at + len - 1].copy_from_slice(s.as_bytes());
    };
    octal(&mut h, 100, 8, u64::from(mode));
    octal(&mut h, 108, 8, 0);
    octal(&mut h, 116, 8, 0);
    octal(&mut h, 124, 12, size as u64);
    octal(&mut h, 136, 12, 1_700_000_000);
    h[148..156].copy_from_slice(b"        ");
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    tar.extend_from_slice(&h);
}
