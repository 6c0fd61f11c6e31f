//! Certificates from a real ACME CA (Pebble) through the real proxy.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use difyctl::acme::{AcmeConfig, CertManager, CertStore, ChallengeKind};
use rustls::pki_types::CertificateDer;

use crate::pebble::{self, Pebble, PebbleOptions};
use crate::support::*;

/// A name unique to the test, resolved to 127.0.0.1 by Pebble's DNS helper.
fn domain(test: &str) -> String {
    format!("{test}.dify-{}.example.com", std::process::id())
}

fn state_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("difyctl-acme-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn acme_config(
    pebble: &Pebble,
    name: &str,
    state: &std::path::Path,
    challenge: ChallengeKind,
) -> AcmeConfig {
    let mut cfg = AcmeConfig::new(
        vec![name.to_string()],
        pebble.directory.clone(),
        state.to_path_buf(),
    );
    cfg.ca_root = Some(pebble.ca_root.clone());
    cfg.email = Some("ops@example.com".into());
    cfg.challenge = challenge;
    cfg.retry_initial = Duration::from_millis(200);
    cfg.check_interval = Duration::from_secs(1);
    cfg
}

/// The serial of the certificate the proxy serves for `name` on a new handshake.
async fn served_serial(proxy: &TestProxy, name: &str, root: &CertificateDer<'static>) -> String {
    let io = tls_connect_named(
        proxy.https,
        name,
        std::slice::from_ref(root),
        &[b"http/1.1"],
    )
    .await
    .expect("handshake verifies against Pebble's root");
    let leaf = io.get_ref().1.peer_certificates().unwrap()[0].clone();
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).unwrap();
    cert.raw_serial_as_string().replace(':', "")
}

struct Setup {
    proxy: TestProxy,
    pebble: Pebble,
    name: String,
    state: PathBuf,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

async fn setup(test: &str, options: PebbleOptions) -> Option<Setup> {
    if !pebble::available() {
        return None;
    }
    let proxy = TestProxy::start(&dify_upstreams().await, |_| {}).await;
    let pebble = Pebble::start(proxy.http.port(), proxy.https.port(), options);
    Some(Setup {
        proxy,
        pebble,
        name: domain(test),
        state: state_dir(test),
    })
}

async fn issue_with(challenge: ChallengeKind, test: &str, options: PebbleOptions) {
    let Some(s) = setup(test, options).await else {
        return;
    };
    let cfg = acme_config(&s.pebble, &s.name, &s.state, challenge);
    let mut manager = CertManager::new(cfg, s.proxy.resolver.clone(), s.proxy.challenges.clone());
    let (outcome, _) = manager.check(false).await;
    assert!(
        outcome.renewed,
        "issuance failed: {outcome:?}\npebble log:\n{}",
        s.pebble.log()
    );
    let root = s.pebble.issuing_root().await;
    assert_eq!(
        served_serial(&s.proxy, &s.name, &root).await,
        outcome.serial.clone().unwrap()
    );
    // Stored for the next start, key readable by the owner only.
    let stored = CertStore::new(&s.state).load(&s.name).unwrap().unwrap();
    assert_eq!(Some(stored.info.serial), outcome.serial);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(stored.dir.join("privkey.pem"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn http01_issuance_through_the_real_proxy() {
    issue_with(ChallengeKind::Http01, "http01", PebbleOptions::default()).await;
}

#[tokio::test]
async fn tls_alpn01_issuance() {
    issue_with(
        ChallengeKind::TlsAlpn01,
        "tlsalpn",
        PebbleOptions::default(),
    )
    .await;
}

#[tokio::test]
async fn issuance_succeeds_when_half_the_nonces_are_rejected() {
    let options = PebbleOptions {
        nonce_reject: Some(50),
        ..PebbleOptions::default()
    };
    issue_with(ChallengeKind::Http01, "nonces", options).await;
}

#[tokio::test]
async fn restart_reuses_the_account_and_the_certificate() {
    let Some(s) = setup("restart", PebbleOptions::default()).await else {
        return;
    };
    let cfg = acme_config(&s.pebble, &s.name, &s.state, ChallengeKind::Http01);
    let mut first = CertManager::new(
        cfg.clone(),
        s.proxy.resolver.clone(),
        s.proxy.challenges.clone(),
    );
    let (issued, _) = first.check(false).await;
    assert!(issued.renewed, "{issued:?}");
    let accounts = |state: &PathBuf| -> Vec<(PathBuf, std::time::SystemTime)> {
        let mut found = Vec::new();
        let mut stack = vec![state.join("acme")];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                if entry.file_type().unwrap().is_dir() {
                    stack.push(entry.path());
                } else {
                    found.push((entry.path(), entry.metadata().unwrap().modified().unwrap()));
                }
            }
        }
        found
    };
    let before = accounts(&s.state);
    assert_eq!(before.len(), 1, "one account");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&before[0].0).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "account credentials are secret");

    // "Restart": a new manager on the same state, a fresh resolver.
    let resolver = Arc::new(difyctl::tls::CertResolver::new());
    let mut second = CertManager::new(cfg, resolver.clone(), s.proxy.challenges.clone());
    let stored = second
        .install_stored()
        .unwrap()
        .expect("stored certificate served at start");
    assert_eq!(Some(stored.info.serial.clone()), issued.serial);
    assert!(resolver.lookup(Some(&s.name)).is_some());
    let (again, _) = second.check(false).await;
    assert!(!again.renewed, "not due, so no new order: {again:?}");
    assert!(again.message.starts_with("not due"), "{again:?}");
    assert_eq!(
        accounts(&s.state),
        before,
        "no second account, credentials untouched"
    );
}

#[tokio::test]
async fn short_lived_certificate_is_renewed_by_the_timer_and_open_connections_survive() {
    let options = PebbleOptions {
        validity_secs: Some(12),
        ..PebbleOptions::default()
    };
    let Some(s) = setup("shortlived", options).await else {
        return;
    };
    let cfg = acme_config(&s.pebble, &s.name, &s.state, ChallengeKind::Http01);
    let mut manager = CertManager::new(cfg, s.proxy.resolver.clone(), s.proxy.challenges.clone());
    let (first, _) = manager.check(false).await;
    assert!(first.renewed, "{first:?}");
    let first_serial = first.serial.unwrap();
    let root = s.pebble.issuing_root().await;

    // A connection opened before the renewal.
    let io = tls_connect_named(
        s.proxy.https,
        &s.name,
        std::slice::from_ref(&root),
        &[b"http/1.1"],
    )
    .await
    .unwrap();
    let (mut open, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(conn);
    assert_eq!(open.send_request(get("/")).await.unwrap().status(), 200);

    let (_control, control_rx) = tokio::sync::mpsc::channel(1);
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(manager.run(control_rx, stop_rx));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let serial = served_serial(&s.proxy, &s.name, &root).await;
        if serial != first_serial {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not renewed in time\n{}",
            s.pebble.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let resp = open.send_request(get("/v1/after-renewal")).await.unwrap();
    assert_eq!(
        body_json(resp).await["path"],
        "/v1/after-renewal",
        "connection opened before still works"
    );
    let _ = stop.send(true);
}

#[tokio::test]
async fn ca_down_keeps_the_current_certificate_and_recovers() {
    let Some(mut s) = setup("cadown", PebbleOptions::default()).await else {
        return;
    };
    let mut cfg = acme_config(&s.pebble, &s.name, &s.state, ChallengeKind::Http01);
    let hook_log = s.state.with_extension("hook.log");
    cfg.hook = Some(format!(
        "echo \"$DIFYCTL_CERT_RESULT $DIFYCTL_CERT_NAME days=$DIFYCTL_CERT_DAYS_LEFT err=${{DIFYCTL_CERT_ERROR:+yes}}\" >> {}",
        hook_log.display()
    ));
    let mut manager = CertManager::new(cfg, s.proxy.resolver.clone(), s.proxy.challenges.clone());
    let (first, _) = manager.check(false).await;
    assert!(first.renewed, "{first:?}");
    let root = s.pebble.issuing_root().await;

    s.pebble.stop();
    let (failed, retry_in) = manager.check(true).await;
    assert!(!failed.renewed);
    assert!(failed.error.is_some(), "{failed:?}");
    assert!(
        retry_in <= Duration::from_secs(2),
        "retried soon (backoff starts at retry_initial)"
    );
    assert_eq!(
        served_serial(&s.proxy, &s.name, &root).await,
        first.serial.clone().unwrap(),
        "old certificate still served"
    );
    let status = CertStore::new(&s.state).status(&s.name);
    assert_eq!(status.failures, 1);
    assert!(
        status
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("localhost"),
        "{status:?}"
    );

    // The CA comes back (a new Pebble: it forgot our account, so one is made again).
    s.pebble.resume();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (recovered, _) = manager.check(false).await;
    assert!(
        recovered.renewed,
        "next attempt succeeds: {recovered:?}\n{}",
        s.pebble.log()
    );
    assert_ne!(recovered.serial, first.serial);
    let status = CertStore::new(&s.state).status(&s.name);
    assert_eq!(status.failures, 0);
    assert!(status.last_error.is_none());

    // The hook heard every outcome, for alerting.
    let heard = std::fs::read_to_string(&hook_log).unwrap();
    let lines: Vec<&str> = heard.lines().collect();
    assert_eq!(lines.len(), 3, "{heard}");
    assert!(
        lines[0].starts_with(&format!("success {} days=", s.name)),
        "{heard}"
    );
    assert!(
        lines[1].starts_with("failure ") && lines[1].ends_with("err=yes"),
        "{heard}"
    );
    assert!(
        lines[2].starts_with("success ") && lines[2].ends_with("err="),
        "{heard}"
    );
    let _ = std::fs::remove_file(&hook_log);
}

/// A Dify install migrating from certbot: its certificate in
/// `volumes/certbot/conf/live/<domain>/` is served from the first start, with no new order.
#[tokio::test]
async fn certbot_certificate_is_imported_when_newer() {
    let dir = state_dir("certbot");
    let name = domain("certbot");
    let live = dir.join("volumes/certbot/conf/live").join(&name);
    std::fs::create_dir_all(&live).unwrap();
    let g = rcgen::generate_simple_self_signed(vec![name.clone()]).unwrap();
    std::fs::write(live.join("fullchain.pem"), g.cert.pem()).unwrap();
    std::fs::write(live.join("privkey.pem"), g.signing_key.serialize_pem()).unwrap();

    let mut cfg = AcmeConfig::new(
        vec![name.clone()],
        "https://ca.invalid/dir".into(),
        dir.join("state"),
    );
    cfg.certbot_live = Some(dir.join("volumes/certbot/conf/live"));
    let resolver = Arc::new(difyctl::tls::CertResolver::new());
    let mut manager = CertManager::new(cfg.clone(), resolver.clone(), Default::default());
    let imported = manager
        .install_stored()
        .unwrap()
        .expect("imported")
        .info
        .clone();
    assert!(
        imported.directory.starts_with("certbot import"),
        "{imported:?}"
    );
    assert_eq!(resolver.lookup(Some(&name)).unwrap().cert[0], *g.cert.der());

    // The next start finds it stored; an older certbot file does not replace it.
    let mut again = CertManager::new(cfg, resolver, Default::default());
    assert_eq!(
        again.install_stored().unwrap().unwrap().info.serial,
        imported.serial
    );
    let versions = std::fs::read_dir(dir.join("state/certs").join(&name))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("v-")
        })
        .count();
    assert_eq!(versions, 1, "not imported twice");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Regression (hardening #5): one damaged stored certificate (a truncated fullchain) stopped
/// startup, and under systemd Dify stayed offline in a restart loop. Now the previous good
/// version is served (or nothing, so the caller serves the self-signed fallback) and a new
/// certificate is ordered at once.
#[tokio::test]
async fn damaged_stored_certificate_serves_the_previous_one_and_orders_a_new_one() {
    let Some(s) = setup("damaged", PebbleOptions::default()).await else {
        return;
    };
    let cfg = acme_config(&s.pebble, &s.name, &s.state, ChallengeKind::Http01);
    let mut first = CertManager::new(
        cfg.clone(),
        s.proxy.resolver.clone(),
        s.proxy.challenges.clone(),
    );
    let (one, _) = first.check(false).await;
    assert!(one.renewed, "{one:?}");
    // Versions get distinct folder times; the older one must be the previous good one.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (two, _) = first.check(true).await;
    assert!(two.renewed, "{two:?}");
    let current = CertStore::new(&s.state).load(&s.name).unwrap().unwrap();
    let chain = current.dir.join("fullchain.pem");
    let text = std::fs::read(&chain).unwrap();
    std::fs::write(&chain, &text[..text.len() / 3]).unwrap();

    let resolver = Arc::new(difyctl::tls::CertResolver::new());
    let mut restarted = CertManager::new(cfg.clone(), resolver.clone(), s.proxy.challenges.clone());
    let served = restarted
        .install_stored()
        .expect("a damaged store does not stop startup")
        .expect("the previous version is served");
    assert_eq!(Some(served.info.serial.clone()), one.serial);
    let (repaired, _) = restarted.check(false).await;
    assert!(
        repaired.renewed,
        "a new certificate is ordered at once: {repaired:?}"
    );

    // Every version damaged: nothing stored is served (the caller serves self-signed), and
    // the first check orders a new one.
    let base = CertStore::new(&s.state).load(&s.name).unwrap().unwrap().dir;
    for entry in std::fs::read_dir(base.parent().unwrap()).unwrap().flatten() {
        let key = entry.path().join("privkey.pem");
        if key.is_file() {
            std::fs::write(
                &key,
                b"-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n",
            )
            .unwrap();
        }
    }
    let mut again = CertManager::new(
        cfg,
        Arc::new(difyctl::tls::CertResolver::new()),
        s.proxy.challenges.clone(),
    );
    assert!(again.install_stored().unwrap().is_none());
    let (fresh, _) = again.check(false).await;
    assert!(fresh.renewed, "{fresh:?}");
}

/// Regression (hardening #11): a renewal that failed on a full disk after the CA issued left
/// an empty version folder and ordered again on retry, spending Let's Encrypt's
/// duplicate-certificate limit. Now nothing half-written is left, and the retry writes the
/// certificate already issued: it succeeds with the CA down, so no new order was placed.
#[tokio::test]
async fn full_disk_after_issuance_keeps_the_certificate_for_the_retry() {
    let Some(mut s) = setup("fulldisk", PebbleOptions::default()).await else {
        return;
    };
    std::fs::create_dir_all(&s.state).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=512k", "tmpfs"])
        .arg(&s.state)
        .status()
        .is_ok_and(|st| st.success());
    if !mounted {
        eprintln!("skipped: cannot mount a small tmpfs here (needs root)");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(s.state.clone());
    let cfg = acme_config(&s.pebble, &s.name, &s.state, ChallengeKind::Http01);
    let mut manager = CertManager::new(cfg, s.proxy.resolver.clone(), s.proxy.challenges.clone());
    let (first, _) = manager.check(false).await;
    assert!(first.renewed, "{first:?}");
    let versions = |state: &PathBuf| -> usize {
        std::fs::read_dir(state.join("certs").join(&s.name))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("v-"))
            .count()
    };
    assert_eq!(versions(&s.state), 1);
    // Fill the disk.
    let filler = s.state.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        while f.write_all(&[0u8; 4096]).is_ok() {}
    }
    let (failed, _) = manager.check(true).await;
    assert!(!failed.renewed, "{failed:?}");
    assert!(
        failed
            .error
            .as_deref()
            .unwrap_or("")
            .contains("No space left"),
        "{failed:?}"
    );
    assert_eq!(versions(&s.state), 1, "no empty version folder left behind");
    assert_eq!(
        failed.serial, first.serial,
        "still serving the first certificate"
    );

    std::fs::remove_file(&filler).unwrap();
    s.pebble.stop();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (retried, _) = manager.check(false).await;
    assert!(
        retried.renewed,
        "the issued certificate is written without the CA: {retried:?}"
    );
    assert_ne!(retried.serial, first.serial);
    assert_eq!(versions(&s.state), 2);
}
