//! The `difyctl` binary itself: exit codes, error messages, signals.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::tls_connect;

pub fn difyctl() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_difyctl"));
    // The caller's compose settings must not leak into a test.
    cmd.env_remove("RUST_LOG")
        .env_remove("COMPOSE_FILE")
        .stdin(Stdio::null());
    cmd
}

/// A scratch directory removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("difyctl-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(cmd: &mut Command) -> (i32, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn proxy_args(dir: &Scratch) -> Vec<String> {
    let s = |v: &str| v.to_string();
    vec![
        s("--state-dir"),
        dir.path("state").display().to_string(),
        s("proxy"),
        s("--upstream-web"),
        s("127.0.0.1:9"),
        s("--upstream-api"),
        s("127.0.0.1:9"),
        s("--http"),
        s("127.0.0.1:0"),
        s("--https"),
        s("127.0.0.1:0"),
    ]
}

#[test]
fn port_in_use_is_a_clear_error() {
    let dir = Scratch::new("port");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut args = proxy_args(&dir);
    let at = args.iter().position(|a| a == "--https").unwrap();
    args[at + 1] = addr.clone();
    let (code, err) = run(difyctl().args(&args).current_dir(&dir.0));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("cannot listen on {addr} (HTTPS)")),
        "{err}"
    );
    assert!(err.contains("another program holds this port"), "{err}");
    // Regression: the OS error was printed twice (in the message and again as its cause).
    let line = err
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_default();
    assert_eq!(line.matches("Address already in use").count(), 1, "{err}");
}

#[test]
fn bad_upstream_address_is_a_usage_error() {
    let dir = Scratch::new("upstream");
    let mut args = proxy_args(&dir);
    let at = args.iter().position(|a| a == "--upstream-api").unwrap();
    args[at + 1] = "api-without-port".into();
    let (code, err) = run(difyctl().args(&args).current_dir(&dir.0));
    assert_eq!(code, 2);
    assert_eq!(
        err.trim(),
        "error: upstream `api-without-port` for api is not a host:port address"
    );
}

#[test]
fn unknown_config_key_names_key_and_line() {
    let dir = Scratch::new("toml");
    std::fs::write(
        dir.path("difyctl.toml"),
        "email = \"a@b.c\"\n\n[proxy]\nmax_bodysize = \"1M\"\n",
    )
    .unwrap();
    let (code, err) = run(difyctl().args(proxy_args(&dir)).current_dir(&dir.0));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("difyctl.toml") && err.contains("line 4") && err.contains("max_bodysize"),
        "{err}"
    );
}

#[test]
fn bad_dotenv_value_names_file_and_line() {
    let dir = Scratch::new("dotenv");
    std::fs::write(dir.path(".env"), "# Dify\nNGINX_CLIENT_MAX_BODY_SIZE=big\n").unwrap();
    let (code, err) = run(difyctl().args(proxy_args(&dir)).current_dir(&dir.0));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(".env:2 (NGINX_CLIENT_MAX_BODY_SIZE): `big` is not a size"),
        "{err}"
    );
}

fn write_cert(dir: &Scratch) -> rustls::pki_types::CertificateDer<'static> {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.path("cert.pem"), generated.cert.pem()).unwrap();
    std::fs::write(dir.path("key.pem"), generated.signing_key.serialize_pem()).unwrap();
    generated.cert.der().clone()
}

/// Starts the proxy; returns it, its HTTPS address (read from its log) and its log lines.
fn start_proxy(
    dir: &Scratch,
    extra: &[&str],
) -> (Proc, std::net::SocketAddr, mpsc::Receiver<String>) {
    let mut args = proxy_args(dir);
    args.extend(extra.iter().map(|a| a.to_string()));
    start_difyctl(dir, &args)
}

/// Starts difyctl with `args`; returns it, its HTTPS address (from its log) and its log lines.
pub fn start_difyctl(
    dir: &Scratch,
    args: &[String],
) -> (Proc, std::net::SocketAddr, mpsc::Receiver<String>) {
    start_difyctl_in(&dir.0, args, Duration::from_secs(20))
}

/// `start_difyctl` in any folder, waiting up to `within` for the HTTPS address.
pub fn start_difyctl_in(
    dir: &Path,
    args: &[String],
    within: Duration,
) -> (Proc, std::net::SocketAddr, mpsc::Receiver<String>) {
    let mut child = difyctl()
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    // Read every line so the child never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = String::new();
    loop {
        let line = match rx.recv_timeout(within) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("proxy did not start: {seen}");
            }
        };
        seen.push_str(&line);
        seen.push('\n');
        // Plain: `https_addr=127.0.0.1:1234 `; JSON: `"https_addr":"127.0.0.1:1234"`.
        for key in ["https_addr=", "\"https_addr\":\""] {
            if let Some(at) = line.find(key) {
                let rest = &line[at + key.len()..];
                let end = rest.find([' ', '"']).unwrap_or(rest.len());
                let addr = rest[..end].parse().unwrap();
                // Hand back every line, also those logged before the address.
                let (tx, all) = mpsc::channel();
                for line in seen.lines() {
                    let _ = tx.send(line.to_string());
                }
                std::thread::spawn(move || {
                    for line in rx {
                        let _ = tx.send(line);
                    }
                });
                return (Proc(child), addr, all);
            }
        }
    }
}

/// A running difyctl, killed (and reaped) when the test ends, also when it fails.
pub struct Proc(pub Child);

impl std::ops::Deref for Proc {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Proc {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The next log line containing `needle`, within 5 s.
pub fn log_line(logs: &mpsc::Receiver<String>, needle: &str) -> String {
    log_line_within(logs, needle, Duration::from_secs(5))
}

/// The next log line containing `needle`, within `within`.
pub fn log_line_within(logs: &mpsc::Receiver<String>, needle: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    while let Ok(line) = logs.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if line.contains(needle) {
            return line;
        }
    }
    panic!("no log line with {needle:?}");
}

pub fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

pub fn wait_exit(child: &mut Child, within: Duration) -> i32 {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("difyctl did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn sighup_reloads_the_certificate_files_and_sigterm_exits_cleanly() {
    let dir = Scratch::new("sighup");
    let first = write_cert(&dir);
    let cert = dir.path("cert.pem").display().to_string();
    let key = dir.path("key.pem").display().to_string();
    let (mut child, addr, _logs) = start_proxy(&dir, &["--cert", &cert, "--key", &key]);
    let served = |io: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>| {
        io.get_ref().1.peer_certificates().unwrap()[0].clone()
    };
    let io = tls_connect(addr, std::slice::from_ref(&first), &[b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(served(&io), first);

    // A broken file is refused and the current certificate stays.
    std::fs::write(dir.path("cert.pem"), "not a certificate").unwrap();
    signal(&child, libc::SIGHUP);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let io = tls_connect(addr, std::slice::from_ref(&first), &[b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(served(&io), first, "still serving the previous certificate");

    let second = write_cert(&dir);
    signal(&child, libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(io) = tls_connect(addr, std::slice::from_ref(&second), &[b"http/1.1"]).await {
            assert_eq!(served(&io), second);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "new certificate not served after SIGHUP"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)), 0);
}

#[test]
fn self_signed_certificate_is_kept_across_restarts() {
    let dir = Scratch::new("selfsigned");
    let read = |p: &Path| std::fs::read(p).unwrap();
    let (mut child, _, _logs) = start_proxy(&dir, &[]);
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)), 0);
    let cert_path = dir.path("state/tls/self-signed.crt");
    let first = read(&cert_path);
    let key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.path("state/tls/self-signed.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(
        key_mode & 0o777,
        0o600,
        "private key readable by the owner only"
    );
    let (mut child, _, _logs) = start_proxy(&dir, &[]);
    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)), 0);
    assert_eq!(read(&cert_path), first, "not regenerated at restart");
}

#[tokio::test]
async fn access_log_lines_in_plain_and_json() {
    let dir = Scratch::new("accesslog");
    let cert = write_cert(&dir);
    let (cert_path, key_path) = (
        dir.path("cert.pem").display().to_string(),
        dir.path("key.pem").display().to_string(),
    );
    for json in [false, true] {
        let mut extra = vec!["--cert", cert_path.as_str(), "--key", key_path.as_str()];
        if json {
            extra.extend(["--log-format", "json"]);
        }
        let (mut child, addr, logs) = start_proxy(&dir, &extra);
        let io = tls_connect(addr, std::slice::from_ref(&cert), &[b"http/1.1"])
            .await
            .unwrap();
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
                .await
                .unwrap();
        tokio::spawn(conn);
        let resp = send
            .send_request(crate::support::get("/v1/chat-messages?key=secret"))
            .await
            .unwrap();
        assert_eq!(resp.status(), 502, "upstream 127.0.0.1:9 is down");
        drop(resp);
        let line = log_line(&logs, "/v1/chat-messages");
        assert!(
            !line.contains("secret"),
            "query strings stay out of logs: {line}"
        );
        if json {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(v["target"], "access");
            assert_eq!(v["client"], "127.0.0.1");
            assert_eq!(v["method"], "GET");
            assert_eq!(v["path"], "/v1/chat-messages");
            assert_eq!(v["status"], 502);
            assert_eq!(v["upstream"], "api");
            assert!(v["bytes"].as_u64().unwrap() > 0);
        } else {
            assert!(line.contains(" INFO access: client=127.0.0.1 method=GET path=/v1/chat-messages status=502 bytes="), "{line}");
            assert!(line.contains(" upstream=api complete=true"), "{line}");
        }
        signal(&child, libc::SIGTERM);
        assert_eq!(wait_exit(&mut child, Duration::from_secs(10)), 0);
    }
}

/// The systemd unit's command line is one difyctl accepts (its flags exist and parse).
#[test]
fn systemd_unit_runs_a_valid_command() {
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/difyctl.service"),
    )
    .unwrap();
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let mut words = exec.split_whitespace();
    assert_eq!(words.next(), Some("/usr/local/bin/difyctl"));
    let args: Vec<&str> = words.collect();
    assert_eq!(args.last(), Some(&"up"), "{exec}");
    let out = difyctl().args(&args).arg("--help").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needed in [
        "Requires=docker.service",
        "After=docker.service",
        "Restart=on-failure",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
    ] {
        assert!(unit.contains(needed), "{needed}");
    }
}

/// `doctor` names what is wrong and what to do: a taken port fails, a local domain passes.
#[test]
fn doctor_reports_a_taken_port_and_checks_dns() {
    let dir = Scratch::new("doctor");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    std::fs::write(
        dir.path("difyctl.toml"),
        format!("[proxy]\nhttp = \"127.0.0.1:{port}\"\nhttps = \"127.0.0.1:0\"\n"),
    )
    .unwrap();
    let out = difyctl()
        .current_dir(&dir.0)
        .args(["--state-dir", &dir.path("state").display().to_string()])
        .args(["doctor", "--json", "--domain", "localhost"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let findings: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let by = |check: &str| {
        findings
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["check"] == check)
            .unwrap_or_else(|| panic!("no {check} in {findings}"))
            .clone()
    };
    let http = by("http");
    assert_eq!(http["status"], "fail");
    assert!(
        http["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("127.0.0.1:{port} is taken")),
        "{http}"
    );
    assert!(!http["fix"].as_str().unwrap().is_empty());
    assert_eq!(by("https")["status"], "ok");
    assert_eq!(
        by("docker")["status"],
        "ok",
        "these tests run with a Docker engine"
    );
    assert_eq!(by("dns localhost")["status"], "ok");
    assert_eq!(by("state")["status"], "ok");
    // Regression (rough edges #7): in a folder with no compose file it reported all ok.
    assert_eq!(by("compose")["status"], "fail");
    assert!(by("compose")["fix"]
        .as_str()
        .unwrap()
        .contains("difyctl init"));
    assert_eq!(by("backups")["status"], "ok");
    drop(taken);
}

/// `init` writes a complete install with fresh secrets, and never overwrites.
#[test]
fn init_writes_the_default_stack_with_fresh_secrets_and_never_overwrites() {
    use std::os::unix::fs::PermissionsExt;
    let a = Scratch::new("init-a");
    let b = Scratch::new("init-b");
    for dir in [&a, &b] {
        let out = difyctl()
            .args([
                "init",
                "--domain",
                "dify.example.com",
                "--email",
                "ops@example.com",
                "--dir",
            ])
            .arg(&dir.0)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let env_a = std::fs::read_to_string(a.path(".env")).unwrap();
    let env_b = std::fs::read_to_string(b.path(".env")).unwrap();
    let mode = std::fs::metadata(a.path(".env"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, ".env holds secrets");
    assert!(!env_a.contains("{{"), "a placeholder was left: {env_a}");
    for key in [
        "SECRET_KEY",
        "DB_PASSWORD",
        "REDIS_PASSWORD",
        "SANDBOX_API_KEY",
        "PLUGIN_DAEMON_KEY",
        "PLUGIN_DIFY_INNER_API_KEY",
        "WEAVIATE_API_KEY",
        "DIFY_AGENT_SERVER_SECRET_KEY",
        "DIFY_AGENT_SHELLCTL_AUTH_TOKEN",
    ] {
        let value = |env: &str| {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .unwrap_or_else(|| panic!("{key} missing"))
                .to_string()
        };
        assert!(value(&env_a).len() >= 32, "{key} is short");
        assert_ne!(
            value(&env_a),
            value(&env_b),
            "{key} is the same on two installs"
        );
    }
    assert!(std::fs::read_to_string(a.path("difyctl.toml"))
        .unwrap()
        .contains("domains = [\"dify.example.com\"]"));
    assert!(a.path("ssrf_proxy/squid.conf").is_file());

    // The stack reads back: the default profiles' services, no public secret, no warning.
    let out = difyctl()
        .current_dir(&a.0)
        .args(["config", "--services"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let services = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        services.lines().collect::<Vec<_>>(),
        [
            "init_permissions",
            "api",
            "worker",
            "worker_beat",
            "web",
            "db_postgres",
            "redis",
            "sandbox",
            "plugin_daemon",
            "agent_backend",
            "local_sandbox",
            "agent_ssrf_proxy",
            "ssrf_proxy",
            "weaviate"
        ]
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("warning"), "{stderr}");
    assert!(
        stderr.contains("NEXT_PUBLIC_SOCKET_URL=wss://dify.example.com"),
        "{stderr}"
    );
    let project = difyctl::stack::compose::Project::load(&difyctl::stack::compose::LoadOptions {
        compose_file: a.path("docker-compose.yaml"),
        ..Default::default()
    })
    .unwrap();
    let stack = difyctl::stack::model::Stack::from_project(&project, &[]).unwrap();
    assert!(difyctl::stack::secrets::public_defaults(&stack).is_empty());

    // Again: everything kept, byte for byte.
    let out = difyctl()
        .args(["init", "--dir"])
        .arg(&a.0)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("kept"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(a.path(".env")).unwrap(), env_a);
}

/// Regression (hardening #7): a fresh install left INIT_PASSWORD empty, so whoever reached
/// /install first claimed the admin account. `init` generates one (Dify allows 30
/// characters), prints it once with where it is kept, and schedules nightly backups.
#[test]
fn init_sets_an_admin_setup_password_and_says_where_it_is() {
    let dir = Scratch::new("init-pw");
    let out = difyctl()
        .args(["init", "--domain", "dify.example.com", "--dir"])
        .arg(&dir.0)
        .output()
        .unwrap();
    assert!(out.status.success());
    let env = std::fs::read_to_string(dir.path(".env")).unwrap();
    let password = env
        .lines()
        .find_map(|l| l.strip_prefix("INIT_PASSWORD="))
        .expect("INIT_PASSWORD is set");
    assert!((16..=30).contains(&password.len()), "{password}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(password) && stderr.contains("https://dify.example.com/install"),
        "{stderr}"
    );
    let toml = std::fs::read_to_string(dir.path("difyctl.toml")).unwrap();
    assert!(
        toml.contains("[backup]") && toml.contains("keep = 7"),
        "{toml}"
    );
    assert!(
        !toml.contains("expiry notices"),
        "Let's Encrypt sends none since 2025"
    );
}

/// `up` where there is no compose file says where it looked and what to do (exit 2).
#[test]
fn up_without_a_compose_file_points_to_init() {
    let dir = Scratch::new("nocompose");
    let out = difyctl()
        .current_dir(&dir.0)
        .args(["up", "--no-proxy"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no compose file at docker-compose.yaml") && err.contains("difyctl init"),
        "{err}"
    );
}

/// Regression (hardening, new user): `ps`, `down`, `logs`, `config`, `restart` without a
/// compose file printed a raw OS error while `up` explained; `restart api` / `logs api` with
/// the stack down said "no service named api" although the compose file has it.
#[test]
fn commands_without_a_compose_file_or_a_running_stack_say_what_to_do() {
    let dir = Scratch::new("nocompose");
    for args in [
        &["ps"][..],
        &["down"],
        &["logs", "api"],
        &["config"],
        &["restart", "api"],
    ] {
        let out = difyctl().current_dir(&dir.0).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("no compose file at docker-compose.yaml") && err.contains("-f FILE"),
            "{args:?}: {err}"
        );
    }
    std::fs::write(
        dir.path("docker-compose.yaml"),
        "services:\n  api:\n    image: difyctl-testserver:test\n",
    )
    .unwrap();
    let project = format!("dfytdown{}", std::process::id());
    for args in [&["restart", "api"][..], &["logs", "api"]] {
        let out = difyctl()
            .current_dir(&dir.0)
            .args(["-p", &project])
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("service api has no container: the stack is not up"),
            "{args:?}: {err}"
        );
    }
    let out = difyctl()
        .current_dir(&dir.0)
        .args(["-p", &project, "logs", "nope"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("no service named nope"));
}

/// New-user habits: compose's short flags work (`ps -a`, `logs -n -t`, `down -t`,
/// `restart -t`), completions are there, `init --domain` in a folder whose difyctl.toml says
/// otherwise fails instead of ignoring the domain, and a bad domain is refused.
#[test]
fn compose_habits_and_init_mistakes() {
    let dir = Scratch::new("habits");
    std::fs::write(
        dir.path("docker-compose.yaml"),
        "services:\n  api:\n    image: difyctl-testserver:test\n",
    )
    .unwrap();
    let project = format!("dfythabit{}", std::process::id());
    for args in [
        &["ps", "-a"][..],
        &["logs", "-n", "5", "-t"],
        &["down", "-t", "1"],
        &["restart", "-t", "1"],
    ] {
        let out = difyctl()
            .current_dir(&dir.0)
            .args(["-p", &project])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = difyctl().args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("difyctl"));

    let install = Scratch::new("init-again");
    let init = |extra: &[&str]| {
        difyctl()
            .args(["init", "--dir"])
            .arg(&install.0)
            .args(extra)
            .output()
            .unwrap()
    };
    assert!(init(&["--domain", "a.example.com"]).status.success());
    let out = init(&["--domain", "b.example.com"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("a.example.com") && err.contains("never overwrites"),
        "{err}"
    );
    assert!(
        init(&["--domain", "a.example.com"]).status.success(),
        "the same domain again is fine"
    );
    let out = init(&["--domain", "https://c.example.com"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is a URL"));
}

/// Regression (rough edges #6): a file that is not YAML or TOML given by mistake (`-f
/// /etc/shadow`, `--config FILE`) had its first line printed in the error; an `include` of one
/// was accepted silently. The file and the problem are named, never its content.
#[test]
fn a_file_that_is_not_compose_or_toml_is_named_without_its_content() {
    let dir = Scratch::new("notyaml");
    let secret = "root:$y$j9T$verysecrethash:19000:0:99999:7:::\n";
    let shadow = dir.path("shadow");
    std::fs::write(&shadow, secret).unwrap();
    let include = dir.path("docker-compose.yaml");
    std::fs::write(
        &include,
        format!(
            "services:\n  a:\n    image: x\ninclude:\n  - {}\n",
            shadow.display()
        ),
    )
    .unwrap();
    for args in [
        vec![
            "-f".to_string(),
            shadow.display().to_string(),
            "config".into(),
        ],
        vec![
            "--config".to_string(),
            shadow.display().to_string(),
            "config".into(),
        ],
        vec![
            "-f".to_string(),
            include.display().to_string(),
            "config".into(),
        ],
    ] {
        let out = difyctl().current_dir(&dir.0).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(&shadow.display().to_string()),
            "{args:?}: {err}"
        );
        assert!(
            !err.contains("verysecrethash"),
            "{args:?} printed the content: {err}"
        );
    }
}
