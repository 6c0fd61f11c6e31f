//! `difyctl certs ...` and `difyctl proxy --domain` against a real Pebble, as a user runs them.

use std::net::TcpListener;
use std::time::Duration;

use crate::cli::{difyctl, log_line_within, signal, start_difyctl, wait_exit, Scratch};
use crate::pebble::{self, free_port, Pebble, PebbleOptions};
use crate::support::tls_connect_named;

struct Site {
    dir: Scratch,
    pebble: Pebble,
    domain: String,
    http: String,
    https: String,
}

impl Site {
    fn new(test: &str) -> Option<Site> {
        if !pebble::available() {
            return None;
        }
        let (http, https) = (free_port(), free_port());
        Some(Site {
            dir: Scratch::new(test),
            pebble: Pebble::start(http, https, PebbleOptions::default()),
            domain: format!("{test}.dify-{}.example.com", std::process::id()),
            http: format!("127.0.0.1:{http}"),
            https: format!("127.0.0.1:{https}"),
        })
    }

    fn global(&self) -> Vec<String> {
        vec![
            "--state-dir".into(),
            self.dir.path("state").display().to_string(),
        ]
    }

    fn acme(&self) -> Vec<String> {
        [
            "--acme-directory",
            &self.pebble.directory,
            "--acme-ca-root",
            &self.pebble.ca_root.display().to_string(),
            "--email",
            "ops@example.com",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    fn proxy_args(&self) -> Vec<String> {
        let mut args = self.global();
        args.extend(
            [
                "proxy",
                "--upstream-web",
                "127.0.0.1:9",
                "--upstream-api",
                "127.0.0.1:9",
            ]
            .map(String::from),
        );
        args.extend([
            "--http".into(),
            self.http.clone(),
            "--https".into(),
            self.https.clone(),
        ]);
        args.extend(["--domain".into(), self.domain.clone()]);
        args.extend(self.acme());
        args
    }

    fn certs(&self, sub: &[&str]) -> (i32, String, String) {
        let mut args = self.global();
        args.push("certs".into());
        args.extend(sub.iter().map(|s| s.to_string()));
        if sub.first() == Some(&"renew") {
            args.extend(["--name".into(), self.domain.clone()]);
            args.extend([
                "--http".into(),
                self.http.clone(),
                "--https".into(),
                self.https.clone(),
            ]);
            args.extend(self.acme());
        } else {
            args.extend([
                "--config".into(),
                self.dir.path("none.toml").display().to_string(),
            ]);
        }
        let out = difyctl()
            .args(&args)
            .current_dir(&self.dir.0)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `certs status --json` for our domain.
    fn status(&self) -> serde_json::Value {
        std::fs::write(
            self.dir.path("none.toml"),
            format!("domains = [\"{}\"]\n", self.domain),
        )
        .unwrap();
        let (code, out, err) = self.certs(&["status", "--json"]);
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["certificates"][0].clone()
    }

    async fn served_serial(&self) -> String {
        let root = self.pebble.issuing_root().await;
        let io = tls_connect_named(
            self.https.parse().unwrap(),
            &self.domain,
            &[root],
            &[b"http/1.1"],
        )
        .await
        .unwrap();
        let leaf = io.get_ref().1.peer_certificates().unwrap()[0].clone();
        let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).unwrap();
        cert.raw_serial_as_string().replace(':', "")
    }
}

#[tokio::test]
async fn proxy_obtains_a_certificate_and_certs_renew_force_goes_through_it() {
    let Some(site) = Site::new("renewforce") else {
        return;
    };
    let (mut child, _, logs) = start_difyctl(&site.dir, &site.proxy_args());
    log_line_within(&logs, "new certificate in service", Duration::from_secs(30));
    let first = site.status();
    assert_eq!(first["failures"], 0);
    assert!(
        first["issuer"].as_str().unwrap().contains("Pebble"),
        "{first}"
    );
    assert_eq!(
        site.served_serial().await,
        first["serial"].as_str().unwrap()
    );

    let (code, out, err) = site.certs(&["renew", "--force"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with(&format!("renewed {}: serial ", site.domain)),
        "{out}"
    );
    let second = site.status();
    assert_ne!(second["serial"], first["serial"]);
    assert_eq!(
        site.served_serial().await,
        second["serial"].as_str().unwrap(),
        "the running process serves it"
    );

    // Without --force and with nothing due, nothing happens.
    let (code, out, _) = site.certs(&["renew"]);
    assert_eq!(code, 0);
    assert!(out.contains("not due"), "{out}");

    let (code, out, _) = site.certs(&["status"]);
    assert_eq!(code, 0);
    for field in [
        "issuer",
        "serial",
        "valid until",
        "days left",
        "next renewal",
        "last error",
    ] {
        assert!(out.contains(field), "status shows {field}: {out}");
    }
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)), 0);
}

/// SIGKILL at several moments of a renewal; every restart finds a consistent store and serves
/// the certificate it names.
#[tokio::test]
async fn killed_during_renewal_restarts_with_a_consistent_store() {
    let Some(site) = Site::new("killed") else {
        return;
    };
    let (mut child, _, logs) = start_difyctl(&site.dir, &site.proxy_args());
    log_line_within(&logs, "new certificate in service", Duration::from_secs(30));
    for delay_ms in [5u64, 40, 120, 400] {
        let mut renew_args = site.global();
        renew_args.extend(["certs", "renew", "--force", "--name", &site.domain].map(String::from));
        renew_args.extend(site.acme());
        let mut renew = crate::cli::Proc(
            difyctl()
                .args(&renew_args)
                .current_dir(&site.dir.0)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        std::thread::sleep(Duration::from_millis(delay_ms));
        signal(&child, libc::SIGKILL);
        let _ = child.wait();
        let _ = renew.wait();

        let (restarted, _, logs) = start_difyctl(&site.dir, &site.proxy_args());
        child = restarted;
        let line = log_line_within(
            &logs,
            "serving the stored certificate",
            Duration::from_secs(10),
        );
        let status = site.status();
        let serial = status["serial"].as_str().unwrap().to_string();
        assert!(
            line.contains(&serial),
            "served what the store names after a kill at {delay_ms} ms: {line}"
        );
        assert_eq!(site.served_serial().await, serial);
    }
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)), 0);
}

#[tokio::test]
async fn certs_renew_without_a_running_difyctl_binds_the_challenge_port_itself() {
    let Some(site) = Site::new("standalone") else {
        return;
    };
    let (code, out, err) = site.certs(&["renew"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with(&format!("renewed {}", site.domain)),
        "{out}"
    );
    let status = site.status();
    assert!(status["serial"].is_string());

    // With the port taken the error says so, naming the address.
    let _taken = TcpListener::bind(&site.http).unwrap();
    let (code, _, err) = site.certs(&["renew", "--force"]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("cannot listen on {}", site.http)),
        "{err}"
    );
}
