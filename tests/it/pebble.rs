//! A real Pebble (Debian package `pebble`) per test: its own ports, its own TLS certificate,
//! and pebble-challtestsrv as its DNS server so every name resolves to 127.0.0.1.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustls::pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Default, Clone)]
pub struct PebbleOptions {
    /// PEBBLE_WFE_NONCEREJECT: percent of nonces rejected (Pebble's default is 5).
    pub nonce_reject: Option<u8>,
    /// certificateValidityPeriod in seconds (Pebble's default is 5 years).
    pub validity_secs: Option<u64>,
}

pub struct Pebble {
    pub directory: String,
    /// The root that signed Pebble's own HTTPS listener (what `ca_root` trusts).
    pub ca_root: PathBuf,
    pub dir: PathBuf,
    mgmt: SocketAddr,
    listen: SocketAddr,
    config: PathBuf,
    dns: SocketAddr,
    options: PebbleOptions,
    pebble: Option<Child>,
    challtestsrv: Child,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether Pebble tests can run; outside CI a missing Pebble skips them with a message.
pub fn available() -> bool {
    let found = Command::new("pebble")
        .arg("-h")
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "pebble is not installed: `make test` installs it (apt-get install pebble)"
        );
        eprintln!("SKIPPED: pebble is not installed (apt-get install pebble, or run `make test`)");
    }
    found
}

impl Pebble {
    /// Starts Pebble sending HTTP-01 checks to `http_port` and TLS-ALPN-01 to `tls_port`.
    pub fn start(http_port: u16, tls_port: u16, options: PebbleOptions) -> Pebble {
        let dir = std::env::temp_dir().join(format!(
            "difyctl-pebble-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let tls = rcgen::generate_simple_self_signed(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
        ])
        .unwrap();
        let ca_root = dir.join("pebble-tls.pem");
        std::fs::write(&ca_root, tls.cert.pem()).unwrap();
        std::fs::write(dir.join("pebble-tls.key"), tls.signing_key.serialize_pem()).unwrap();

        let dns = SocketAddr::from(([127, 0, 0, 1], free_udp_port()));
        let challtestsrv = Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &dns.to_string()])
            .args(["-management", &format!("127.0.0.1:{}", free_port())])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble-challtestsrv starts");

        let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mgmt = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut config = serde_json::json!({"pebble": {
            "listenAddress": listen.to_string(),
            "managementListenAddress": mgmt.to_string(),
            "certificate": ca_root,
            "privateKey": dir.join("pebble-tls.key"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        if let Some(secs) = options.validity_secs {
            config["pebble"]["certificateValidityPeriod"] = secs.into();
        }
        let config_path = dir.join("pebble.json");
        std::fs::write(&config_path, config.to_string()).unwrap();
        let mut pebble = Pebble {
            directory: format!("https://localhost:{}/dir", listen.port()),
            ca_root,
            dir,
            mgmt,
            listen,
            config: config_path,
            dns,
            options,
            pebble: None,
            challtestsrv,
        };
        for attempt in 1.. {
            match pebble.try_resume() {
                Ok(()) => break,
                // Another test bound a port between free_port() and Pebble's own bind.
                Err(log) if attempt < 4 && log.contains("address already in use") => {
                    pebble.new_ports()
                }
                Err(log) => panic!("pebble did not start: {log}"),
            }
        }
        pebble
    }

    /// Fresh listen and management ports, written to the config.
    fn new_ports(&mut self) {
        self.listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
        self.mgmt = SocketAddr::from(([127, 0, 0, 1], free_port()));
        self.directory = format!("https://localhost:{}/dir", self.listen.port());
        let text = std::fs::read_to_string(&self.config).unwrap();
        let mut config: serde_json::Value = serde_json::from_str(&text).unwrap();
        config["pebble"]["listenAddress"] = self.listen.to_string().into();
        config["pebble"]["managementListenAddress"] = self.mgmt.to_string().into();
        std::fs::write(&self.config, config.to_string()).unwrap();
    }

    /// Stops the CA (the DNS helper stays): the next ACME call fails.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.pebble.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the CA again on the same ports (a new Pebble forgets accounts and its root).
    pub fn resume(&mut self) {
        if let Err(log) = self.try_resume() {
            panic!("pebble did not start: {log}");
        }
    }

    /// Starts the CA and waits until it listens; its log when it exits or does not listen
    /// within 10 s.
    fn try_resume(&mut self) -> Result<(), String> {
        let mut cmd = Command::new("pebble");
        cmd.args(["-config", &self.config.display().to_string()])
            .args(["-dnsserver", &self.dns.to_string()])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(self.dir.join("pebble.log"))
                    .map(Stdio::from)
                    .unwrap_or(Stdio::null()),
            );
        if let Some(n) = self.options.nonce_reject {
            cmd.env("PEBBLE_WFE_NONCEREJECT", n.to_string());
        }
        let mut child = cmd.spawn().expect("pebble starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(self.listen).is_err() || TcpStream::connect(self.mgmt).is_err() {
            if Instant::now() >= deadline || child.try_wait().ok().flatten().is_some() {
                let _ = child.kill();
                let _ = child.wait();
                return Err(self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.pebble = Some(child);
        Ok(())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pebble.log")).unwrap_or_default()
    }

    /// The root that issues Pebble's certificates (changes at every Pebble start).
    pub async fn issuing_root(&self) -> CertificateDer<'static> {
        let listener_cert = CertificateDer::from_pem_file(&self.ca_root).unwrap();
        let mut io = crate::support::tls_connect(self.mgmt, &[listener_cert], &[b"http/1.1"])
            .await
            .unwrap();
        io.write_all(b"GET /roots/0 HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut text = Vec::new();
        let _ = io.read_to_end(&mut text).await;
        let text = String::from_utf8_lossy(&text);
        let pem = &text[text.find("-----BEGIN").expect("a PEM root")..];
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
        let _ = self.challtestsrv.kill();
        let _ = self.challtestsrv.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
