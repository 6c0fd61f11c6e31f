//! The stack on a real Docker engine: `up`, `down`, `ps`, `logs`, `restart` with the test
//! image (a static build of the project's test server). Every test has its own project name,
//! and its guard runs `down -v` even when the test fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use bollard::exec::{CreateExecOptions, StartExecResults};
use futures_util::StreamExt;
use serde_json::Value;

use crate::images::test_image;

/// A scratch folder with a compose file, and a project name no other test uses.
pub struct TestStack {
    pub dir: PathBuf,
    pub project: String,
    pub image: String,
}

impl TestStack {
    pub fn new(tag: &str, compose: &str, env: &str) -> TestStack {
        Self::with_image(tag, compose, env, test_image())
    }

    /// A stack whose `${IMAGE}` is `image`.
    pub fn with_image(tag: &str, compose: &str, env: &str, image: &str) -> TestStack {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let project = format!("dfyt{}{tag}{n}", std::process::id());
        let dir = std::env::temp_dir().join(&project);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("docker-compose.yaml"), compose).unwrap();
        std::fs::write(dir.join(".env"), format!("IMAGE={image}\n{env}")).unwrap();
        TestStack {
            dir,
            project,
            image: image.to_string(),
        }
    }

    pub fn set_env(&self, env: &str) {
        std::fs::write(
            self.dir.join(".env"),
            format!("IMAGE={}\n{env}", self.image),
        )
        .unwrap();
    }

    /// Runs difyctl in the folder with `-p project`: (exit code, stdout, stderr).
    pub fn difyctl(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_difyctl"))
            .current_dir(&self.dir)
            .env_remove("RUST_LOG")
            .env_remove("COMPOSE_FILE")
            .args(["-p", &self.project])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `up --no-proxy --json`, which must succeed: service -> (action, container id).
    pub fn up(&self, extra: &[&str]) -> std::collections::BTreeMap<String, (String, String)> {
        let mut args = vec!["up", "--no-proxy", "--json", "--wait-timeout", "60"];
        args.extend_from_slice(extra);
        let (code, out, err) = self.difyctl(&args);
        assert_eq!(code, 0, "up failed:\n{err}");
        let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["service"].as_str().unwrap().to_string(),
                    (
                        s["action"].as_str().unwrap().to_string(),
                        s["id"].as_str().unwrap().to_string(),
                    ),
                )
            })
            .collect()
    }
}

/// A running `difyctl up` with its proxy (see `TestStack::serve`).
pub struct Serving {
    pub child: crate::cli::Proc,
    pub addr: std::net::SocketAddr,
    pub logs: std::sync::mpsc::Receiver<String>,
    /// The self-signed certificate it serves, to trust.
    pub root: rustls::pki_types::CertificateDer<'static>,
}

impl TestStack {
    /// `up` with the proxy on port 0 and the state in `state/`, once it listens.
    pub fn serve(&self, wait_timeout_secs: u32) -> Serving {
        let wait = wait_timeout_secs.to_string();
        let args: Vec<String> = [
            "-p",
            &self.project,
            "--state-dir",
            "state",
            "up",
            "--http",
            "127.0.0.1:0",
            "--https",
            "127.0.0.1:0",
            "--wait-timeout",
            &wait,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let within = std::time::Duration::from_secs(u64::from(wait_timeout_secs) + 30);
        let (child, addr, logs) = crate::cli::start_difyctl_in(&self.dir, &args, within);
        let pem = std::fs::read(self.dir.join("state/tls/self-signed.crt")).unwrap();
        let root = rustls::pki_types::pem::PemObject::from_pem_slice(&pem).unwrap();
        Serving {
            child,
            addr,
            logs,
            root,
        }
    }
}

impl Drop for TestStack {
    fn drop(&mut self) {
        let _ = self.difyctl(&["down", "-v", "--timeout", "1"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub async fn docker() -> bollard::Docker {
    difyctl::engine::Engine::connect()
        .await
        .expect("these tests need a Docker engine")
        .docker
}

pub async fn inspect(name: &str) -> bollard::models::ContainerInspectResponse {
    docker()
        .await
        .inspect_container(name, None)
        .await
        .unwrap_or_else(|e| panic!("inspect {name}: {e}"))
}

/// Runs a command in a container: (exit code, output).
pub async fn exec(container: &str, cmd: &[&str]) -> (i64, String) {
    let docker = docker().await;
    let exec = docker
        .create_exec(
            container,
            CreateExecOptions {
                cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut text = String::new();
    if let StartExecResults::Attached { mut output, .. } =
        docker.start_exec(&exec.id, None).await.unwrap()
    {
        while let Some(Ok(chunk)) = output.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        }
    }
    let code = docker.inspect_exec(&exec.id).await.unwrap().exit_code;
    (code.unwrap_or(-1), text)
}

fn started_at(info: &bollard::models::ContainerInspectResponse) -> time::OffsetDateTime {
    let s = info.state.as_ref().unwrap().started_at.clone().unwrap();
    time::OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339).unwrap()
}

fn finished_at(info: &bollard::models::ContainerInspectResponse) -> time::OffsetDateTime {
    let s = info.state.as_ref().unwrap().finished_at.clone().unwrap();
    time::OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339).unwrap()
}

fn probe(port: u16) -> String {
    format!("[\"CMD\", \"/testserver\", \"probe\", \"http://127.0.0.1:{port}/health\"]")
}

/// A check that passes, but only 700 ms after it starts: proves dependents waited for it.
fn slow_probe(port: u16) -> String {
    format!("[\"CMD\", \"/testserver\", \"probe\", \"http://127.0.0.1:{port}/slow?ms=700\"]")
}

/// Six services (plus two behind profiles) using every depends_on condition, healthchecks,
/// an internal network, a named volume and a bind mount.
pub fn six_services() -> String {
    format!(
        r#"services:
  init:
    image: ${{IMAGE}}
    command: ["exit", "0", "/data/init.txt=initialised"]
    volumes: [data:/data]
    restart: "no"
  db:
    image: ${{IMAGE}}
    command: ["db=0.0.0.0:5432"]
    volumes: ["data:/data"]
    healthcheck: {{test: {db}, interval: 1s, timeout: 2s, retries: 30}}
    depends_on:
      init: {{condition: service_completed_successfully}}
    networks: [default, backend]
    restart: always
  redis:
    image: ${{IMAGE}}
    command: ["redis=0.0.0.0:6379"]
    healthcheck: {{test: {redis}, interval: 1s, timeout: 2s, retries: 30}}
    networks: [backend]
    restart: always
  api:
    image: ${{IMAGE}}
    command: ["api=0.0.0.0:5001"]
    environment:
      MODE: ${{API_MODE:-api}}
      DB_HOST: db
    volumes: ["./volumes/api/storage:/storage"]
    healthcheck: {{test: {api}, interval: 1s, timeout: 2s, retries: 30}}
    depends_on:
      db: {{condition: service_healthy}}
      redis: {{condition: service_healthy}}
    networks: [default, backend]
    restart: always
  worker:
    image: ${{IMAGE}}
    command: ["worker=0.0.0.0:5002"]
    depends_on: [api]
    networks: [default, backend]
    restart: always
  web:
    image: ${{IMAGE}}
    command: ["web=0.0.0.0:3000"]
    depends_on:
      api: {{condition: service_started}}
      extra: {{condition: service_started, required: false}}
    restart: always
  extra:
    image: ${{IMAGE}}
    command: ["extra=0.0.0.0:4000"]
    profiles: [extra]
  nginx:
    image: ${{IMAGE}}
    command: ["nginx=0.0.0.0:80"]
networks:
  backend:
    internal: true
volumes:
  data:
"#,
        db = slow_probe(5432),
        redis = slow_probe(6379),
        api = probe(5001),
    )
}

#[tokio::test]
async fn up_orders_gates_on_health_and_recreates_only_what_changed() {
    let stack = TestStack::new("life", &six_services(), "");
    let first = stack.up(&[]);
    let names: Vec<&str> = first.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["api", "db", "init", "redis", "web", "worker"],
        "nginx is difyctl's job, extra's profile is off"
    );
    assert!(first.values().all(|(a, _)| a == "created"), "{first:?}");

    // Order and gating: db after init completed, api after db and redis were healthy (their
    // checks take 700 ms to pass), worker and web after api started.
    let c = |s: &str| format!("{}-{s}-1", stack.project);
    let (init, db, redis, api, worker, web) = (
        inspect(&c("init")).await,
        inspect(&c("db")).await,
        inspect(&c("redis")).await,
        inspect(&c("api")).await,
        inspect(&c("worker")).await,
        inspect(&c("web")).await,
    );
    assert_eq!(init.state.as_ref().unwrap().exit_code, Some(0));
    assert!(
        finished_at(&init) <= started_at(&db),
        "db started before init completed"
    );
    let gap = time::Duration::milliseconds(500);
    assert!(
        started_at(&api) > started_at(&db) + gap,
        "api did not wait for db's health"
    );
    assert!(
        started_at(&api) > started_at(&redis) + gap,
        "api did not wait for redis's health"
    );
    assert!(started_at(&worker) >= started_at(&api));
    assert!(started_at(&web) >= started_at(&api));
    // Docker's own status agrees by the time `up` returns (what `docker ps` shows).
    for (name, info) in [("db", &db), ("redis", &redis), ("api", &api)] {
        let health = info.state.as_ref().and_then(|s| s.health.as_ref());
        assert_eq!(
            health.and_then(|h| h.status),
            Some(bollard::models::HealthStatusEnum::HEALTHY),
            "{name} reads {health:?} right after up"
        );
    }
    let api_env = api.config.as_ref().unwrap().env.clone().unwrap();
    assert!(api_env.contains(&"MODE=api".to_string()), "{api_env:?}");
    let labels = api.config.as_ref().unwrap().labels.clone().unwrap();
    assert_eq!(labels["com.docker.compose.project"], stack.project);
    assert_eq!(labels["com.docker.compose.service"], "api");
    // As docker compose writes them: absolute, whatever the command line said.
    assert_eq!(
        labels["com.docker.compose.project.config_files"],
        stack.dir.join("docker-compose.yaml").display().to_string()
    );
    assert!(
        stack.dir.join("volumes/api/storage").is_dir(),
        "bind source created like compose"
    );

    // The internal network is created internal, and redis is only on it: Docker then gives it
    // no way past the host (Docker still lets it reach the host's own addresses).
    let backend = docker()
        .await
        .inspect_network(&format!("{}_backend", stack.project), None)
        .await
        .unwrap();
    assert_eq!(backend.internal, Some(true));
    let redis_nets = redis
        .network_settings
        .as_ref()
        .unwrap()
        .networks
        .clone()
        .unwrap();
    assert_eq!(
        redis_nets.keys().collect::<Vec<_>>(),
        [&format!("{}_backend", stack.project)]
    );
    let (code, out) = exec(
        &c("redis"),
        &["/testserver", "probe", "http://192.0.2.1:9/"],
    )
    .await;
    assert_ne!(
        code, 0,
        "redis on the internal network reached an outside address: {out}"
    );

    // Nothing changed: nothing touched.
    let second = stack.up(&[]);
    for (service, (action, id)) in &second {
        assert_eq!(
            action,
            if service == "init" {
                "started"
            } else {
                "unchanged"
            },
            "{service}"
        );
        assert_eq!(id, &first[service].1, "{service} got a new container");
    }

    // One changed variable: only the service using it is recreated.
    stack.set_env("API_MODE=changed\n");
    let third = stack.up(&[]);
    for (service, (action, id)) in &third {
        if service == "api" {
            assert_eq!(action, "recreated");
            assert_ne!(id, &first[service].1);
        } else {
            assert_eq!(id, &first[service].1, "{service} was recreated");
        }
    }

    // ps and logs.
    let (code, out, err) = stack.difyctl(&["ps", "--json"]);
    assert_eq!(code, 0, "{err}");
    let ps: Value = serde_json::from_str(&out).unwrap();
    assert!(
        ps["difyctl"].is_null(),
        "no difyctl up runs for this project"
    );
    let ps = ps["containers"].clone();
    let api_row = ps
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["service"] == "api")
        .unwrap();
    assert_eq!(api_row["state"], "running");
    // difyctl probes the check itself while starting, so Docker's own first check may not
    // have run yet.
    assert!(
        api_row["health"] == "healthy" || api_row["health"] == "starting",
        "{api_row}"
    );
    assert!(api_row["started_at"].is_string());
    let init_row = ps
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["service"] == "init")
        .unwrap();
    assert_eq!(init_row["state"], "exited");
    assert_eq!(init_row["exit_code"], 0);
    let (code, table, _) = stack.difyctl(&["ps"]);
    assert_eq!(code, 0);
    assert!(table.contains("\nNAME"), "{table}");
    assert!(table.contains("running ("), "{table}");
    let (code, logs, err) = stack.difyctl(&["logs", "api", "db", "--tail", "5"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        logs.contains("api-1  | testserver: api on 0.0.0.0:5001"),
        "{logs}"
    );
    assert!(
        logs.contains("db-1   | testserver: db on 0.0.0.0:5432"),
        "{logs}"
    );
    // `logs -f` goes on after a restart, like compose's.
    // Killed on drop, also when an assertion fails.
    let mut follow = crate::cli::Proc(
        Command::new(env!("CARGO_BIN_EXE_difyctl"))
            .current_dir(&stack.dir)
            .args(["-p", &stack.project, "logs", "-f", "api"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let started_line = |rx: &std::sync::mpsc::Receiver<String>| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while let Ok(l) =
            rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
        {
            if l.contains("testserver: api on") {
                return true;
            }
        }
        false
    };
    assert!(started_line(&rx), "logs -f did not show api's start");
    let (code, _, err) = stack.difyctl(&["restart", "api"]);
    assert_eq!(code, 0, "{err}");
    assert!(started_line(&rx), "logs -f stopped at the restart");
    drop(follow);

    let (code, _, err) = stack.difyctl(&["logs", "nosuch"]);
    assert_eq!(code, 2);
    assert!(err.contains("no service named nosuch"), "{err}");

    // Data survives `down`, and goes only with `down -v`.
    let (code, out) = exec(
        &c("db"),
        &["/testserver", "write", "/data/keep.txt", "precious"],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let (code, _, err) = stack.difyctl(&["down", "--timeout", "1"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("volumes kept"), "{err}");
    let volume = format!("{}_data", stack.project);
    docker()
        .await
        .inspect_volume(&volume)
        .await
        .expect("down kept the volume");
    stack.up(&[]);
    let (_, data) = exec(&c("db"), &["/testserver", "cat", "/data/keep.txt"]).await;
    assert_eq!(data, "precious");
    let (code, _, err) = stack.difyctl(&["down", "-v", "--timeout", "1"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(&format!("removed volume {volume}")), "{err}");
    assert!(docker().await.inspect_volume(&volume).await.is_err());
}

#[tokio::test]
async fn a_service_that_never_gets_healthy_fails_up_with_its_name_and_check_output() {
    let compose = r#"services:
  flaky:
    image: ${IMAGE}
    command: ["flaky=0.0.0.0:5000"]
    healthcheck: {test: ["CMD", "/testserver", "probe", "http://127.0.0.1:1/health"], interval: 1s, retries: 2}
  after:
    image: ${IMAGE}
    command: ["after=0.0.0.0:5000"]
    depends_on:
      flaky: {condition: service_healthy}
"#;
    let stack = TestStack::new("flaky", compose, "");
    let (code, _, err) = stack.difyctl(&["up", "--no-proxy", "--wait-timeout", "8"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("error: service flaky is unhealthy: Docker's healthcheck gave up on it and it did not recover after 8s")
            && err.contains("exit code 1"),
        "{err}"
    );
    assert!(err.contains("127.0.0.1:1"), "the check's own output: {err}");
    let after = docker()
        .await
        .inspect_container(&format!("{}-after-1", stack.project), None)
        .await;
    assert!(
        after.is_err(),
        "after was created though flaky never got healthy"
    );
}

/// Dify's api on a loaded 2-core VM migrates for ~2 minutes, longer than its healthcheck's
/// start_period + retries: Docker calls it unhealthy once and healthy a minute later. `up`
/// gave up at the first "unhealthy" although compose would not have.
#[tokio::test]
async fn a_slow_start_that_docker_calls_unhealthy_once_does_not_fail_up() {
    let compose = r#"services:
  slow:
    image: ${IMAGE}
    command: ["slow=0.0.0.0:5000"]
    healthcheck: {test: ["CMD", "/testserver", "cat", "/tmp/ready"], interval: 1s, retries: 1}
  after:
    image: ${IMAGE}
    command: ["after=0.0.0.0:5000"]
    depends_on:
      slow: {condition: service_healthy}
"#;
    let stack = TestStack::new("slowstart", compose, "");
    let dir = stack.dir.clone();
    let project = stack.project.clone();
    let up = std::thread::spawn(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_difyctl"))
            .current_dir(&dir)
            .env_remove("RUST_LOG")
            .args(["-p", &project, "up", "--no-proxy", "--wait-timeout", "120"])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    });
    let name = format!("{}-slow-1", stack.project);
    let mut seen_unhealthy = false;
    for _ in 0..600 {
        if let Ok(info) = docker().await.inspect_container(&name, None).await {
            let health = info.state.and_then(|s| s.health).and_then(|h| h.status);
            if health == Some(bollard::models::HealthStatusEnum::UNHEALTHY) {
                seen_unhealthy = true;
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        seen_unhealthy,
        "Docker never called the slow service unhealthy"
    );
    // Still starting after Docker's verdict: `up` is still waiting.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert!(!up.is_finished(), "up ended on Docker's first unhealthy");
    let (code, out) = exec(&name, &["/testserver", "write", "/tmp/ready", "yes"]).await;
    assert_eq!(code, 0, "{out}");
    let (code, err) = up.join().unwrap();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        inspect(&format!("{}-after-1", stack.project))
            .await
            .state
            .unwrap()
            .running,
        Some(true),
        "the dependent started once the slow service recovered"
    );
}

#[tokio::test]
async fn an_unreachable_docker_is_named() {
    let stack = TestStack::new("nodocker", "services:\n  a:\n    image: x\n", "");
    let out = Command::new(env!("CARGO_BIN_EXE_difyctl"))
        .current_dir(&stack.dir)
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .args(["up", "--no-proxy"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot reach the Docker engine at unix:///nonexistent/docker.sock"),
        "{err}"
    );
}

/// A stack docker-compose (the Debian package, v1) started: `difyctl up` keeps what matches,
/// recreates what changed, and the volume's data stays.
#[tokio::test]
async fn a_stack_started_by_docker_compose_is_adopted_with_its_data() {
    let Some(compose_bin) = which("docker-compose") else {
        panic!("docker-compose (Debian package) is needed: apt-get install docker-compose");
    };
    let compose = format!(
        r#"services:
  db:
    image: ${{IMAGE}}
    command: ["db=0.0.0.0:5432"]
    volumes: ["data:/data"]
    healthcheck: {{test: {db}, interval: 1s, timeout: 2s, retries: 30}}
    restart: always
  api:
    image: ${{IMAGE}}
    command: ["api=0.0.0.0:5001"]
    environment:
      MODE: ${{API_MODE:-api}}
    depends_on:
      db: {{condition: service_healthy}}
    restart: always
  nginx:
    image: ${{IMAGE}}
    command: ["nginx=0.0.0.0:80"]
    ports: ["127.0.0.1:${{NGINX_PORT}}:80"]
volumes:
  data:
"#,
        db = probe(5432)
    );
    let nginx_port = crate::pebble::free_port();
    let stack = TestStack::new("adopt", &compose, &format!("NGINX_PORT={nginx_port}\n"));
    let out = Command::new(&compose_bin)
        .current_dir(&stack.dir)
        .args(["-p", &stack.project, "up", "-d"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker-compose up: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v1 = |s: &str| format!("{}_{s}_1", stack.project);
    // Wait for compose's db to be healthy, then put data in its volume.
    for _ in 0..100 {
        let state = inspect(&v1("db")).await.state.unwrap();
        if state.health.and_then(|h| h.status).map(|s| s.to_string()) == Some("healthy".into()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (code, out) = exec(
        &v1("db"),
        &["/testserver", "write", "/data/keep.txt", "from compose"],
    )
    .await;
    assert_eq!(code, 0, "{out}");

    // doctor sees compose's nginx on the proxy's port, and knows `up` will stop it.
    std::fs::write(
        stack.dir.join("difyctl.toml"),
        format!("[proxy]\nhttp = \"127.0.0.1:{nginx_port}\"\nhttps = \"127.0.0.1:0\"\n"),
    )
    .unwrap();
    let (_, out, _) = stack.difyctl(&["doctor", "--json"]);
    let doctor: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let http = doctor
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "http")
        .unwrap()
        .clone();
    assert_eq!(http["status"], "warn", "{http}");
    assert!(
        http["detail"].as_str().unwrap().contains(&v1("nginx")),
        "{http}"
    );

    let adopted = stack.up(&[]);
    assert!(!adopted.contains_key("nginx"), "nginx is difyctl's job");
    let nginx_state = inspect(&v1("nginx")).await.state.unwrap();
    assert_eq!(nginx_state.running, Some(false), "up stops compose's nginx");
    std::net::TcpListener::bind(("127.0.0.1", nginx_port)).expect("its port is free again");
    assert_eq!(adopted["db"].0, "unchanged", "{adopted:?}");
    assert_eq!(adopted["api"].0, "unchanged", "{adopted:?}");
    assert_eq!(adopted["db"].1, inspect(&v1("db")).await.id.unwrap());

    stack.set_env("API_MODE=changed\n");
    let changed = stack.up(&[]);
    assert_eq!(changed["db"].0, "unchanged");
    assert_eq!(changed["api"].0, "recreated");
    let (_, data) = exec(&v1("db"), &["/testserver", "cat", "/data/keep.txt"]).await;
    assert_eq!(data, "from compose");
    let (code, out, _) = stack.difyctl(&["ps", "--json"]);
    assert_eq!(code, 0);
    let names: Vec<String> = serde_json::from_str::<Value>(&out).unwrap()["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        names.contains(&format!("{}-api-1", stack.project)),
        "{names:?}"
    );
}

fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(bin))
            .find(|p| Path::new(p).is_file())
    })
}

/// An image that is neither here nor pullable fails `up` naming it and the services needing it.
#[tokio::test]
async fn a_missing_image_names_the_image_and_its_services() {
    let image = format!("difyctl-test/absent-{}:1", std::process::id());
    let compose = format!("services:\n  a:\n    image: {image}\n  b:\n    image: {image}\n");
    let stack = TestStack::new("noimage", &compose, "");
    let (code, _, err) = stack.difyctl(&["up", "--no-proxy"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "error: image {image} (for a, b) is not on this machine and cannot be pulled"
        )),
        "{err}"
    );
}

/// compose waits on Docker's health status, so `service_healthy` works on a service whose only
/// healthcheck is its image's HEALTHCHECK; with none anywhere, `up` fails naming both services
/// instead of waiting forever.
#[tokio::test]
async fn service_healthy_uses_the_images_healthcheck_or_names_its_absence() {
    let docker = docker().await;
    // An image with a HEALTHCHECK: the test server committed with one (no registry, no build).
    let base = format!("dfyt{}hcbase", std::process::id());
    let image = format!("difyctl-test-hc:{}", std::process::id());
    docker
        .create_container(
            Some(bollard::query_parameters::CreateContainerOptions {
                name: Some(base.clone()),
                ..Default::default()
            }),
            bollard::models::ContainerCreateBody {
                image: Some(test_image().to_string()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let committed = docker
        .commit_container(
            bollard::query_parameters::CommitContainerOptions {
                container: Some(base.clone()),
                repo: Some("difyctl-test-hc".into()),
                tag: Some(std::process::id().to_string()),
                ..Default::default()
            },
            bollard::models::ContainerConfig {
                healthcheck: Some(bollard::models::HealthConfig {
                    test: Some(vec![
                        "CMD".into(),
                        "/testserver".into(),
                        "probe".into(),
                        "http://127.0.0.1:5000/health".into(),
                    ]),
                    interval: Some(1_000_000_000),
                    retries: Some(30),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await;
    let _ = docker.remove_container(&base, None).await;
    committed.unwrap();
    let compose = r#"services:
  db:
    image: ${HC_IMAGE}
    command: ["db=0.0.0.0:5000"]
  api:
    image: ${IMAGE}
    command: ["api=0.0.0.0:5000"]
    depends_on:
      db: {condition: service_healthy}
"#;
    let stack = TestStack::new("imghc", compose, &format!("HC_IMAGE={image}\n"));
    let up = stack.difyctl(&["up", "--no-proxy", "--wait-timeout", "60"]);
    let db = inspect(&format!("{}-db-1", stack.project)).await;
    let api = docker
        .inspect_container(&format!("{}-api-1", stack.project), None)
        .await;
    drop(stack);
    let plain = TestStack::new("nohc", &compose.replace("${HC_IMAGE}", "${IMAGE}"), "");
    let refused = plain.difyctl(&["up", "--no-proxy", "--wait-timeout", "60"]);
    drop(plain);
    let _ = docker
        .remove_image(
            &image,
            None::<bollard::query_parameters::RemoveImageOptions>,
            None,
        )
        .await;

    assert_eq!(up.0, 0, "{}", up.2);
    let health = db.state.and_then(|s| s.health).and_then(|h| h.status);
    assert_eq!(health, Some(bollard::models::HealthStatusEnum::HEALTHY));
    assert!(api.is_ok(), "api started once db was healthy");
    assert_eq!(refused.0, 1, "{}", refused.2);
    assert!(
        refused.2.contains("service db has no healthcheck (neither in the compose file nor in its image), but api waits for it to be healthy"),
        "{}",
        refused.2
    );
}

/// `depends_on.<x>.restart: true`: when `up` recreates x, or `restart x` restarts it, the
/// dependent is restarted after it (same container), as compose does.
#[tokio::test]
async fn restart_true_dependents_follow_their_dependency() {
    let compose = r#"services:
  db:
    image: ${IMAGE}
    command: ["db=0.0.0.0:5000"]
    environment:
      GENERATION: ${GENERATION}
  api:
    image: ${IMAGE}
    command: ["api=0.0.0.0:5000"]
    depends_on:
      db: {condition: service_started, restart: true}
  web:
    image: ${IMAGE}
    command: ["web=0.0.0.0:5000"]
    depends_on: [db]
"#;
    let stack = TestStack::new("rstrt", compose, "GENERATION=1\n");
    let first = stack.up(&[]);
    let api = format!("{}-api-1", stack.project);
    let web = format!("{}-web-1", stack.project);
    let (api_started, web_started) = (
        started_at(&inspect(&api).await),
        started_at(&inspect(&web).await),
    );
    let label = inspect(&api).await.config.unwrap().labels.unwrap()
        ["com.docker.compose.depends_on"]
        .clone();
    assert_eq!(label, "db:service_started:true");

    stack.set_env("GENERATION=2\n");
    let second = stack.up(&[]);
    assert_eq!(second["db"].0, "recreated");
    assert_eq!(second["api"].0, "restarted", "{second:?}");
    assert_eq!(second["api"].1, first["api"].1, "the same container");
    assert_eq!(second["web"].0, "unchanged", "no restart: true");
    assert!(started_at(&inspect(&api).await) > api_started);
    assert_eq!(started_at(&inspect(&web).await), web_started);

    let before = started_at(&inspect(&api).await);
    let (code, _, err) = stack.difyctl(&["restart", "db", "--timeout", "1"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(&format!("restarted {api}")), "{err}");
    assert!(!err.contains(&format!("restarted {web}")), "{err}");
    assert!(started_at(&inspect(&api).await) > before);
}

/// Compose habits (rough edges #10): `up SERVICE`, `stop`, `start`, `exec` (its output and
/// exit code), `pull SERVICE` and `logs --since`.
#[tokio::test]
async fn compose_habits_up_service_stop_start_exec_logs_since() {
    let compose = r#"services:
  api:
    image: ${IMAGE}
    command: ["api=0.0.0.0:5001"]
    depends_on: [db]
  db:
    image: ${IMAGE}
    command: ["db=0.0.0.0:5432"]
  web:
    image: ${IMAGE}
    command: ["web=0.0.0.0:3000"]
"#;
    let stack = TestStack::new("habits", compose, "");
    let up = stack.up(&["api"]);
    assert_eq!(
        up.keys().cloned().collect::<Vec<_>>(),
        ["api", "db"],
        "api and what it needs"
    );
    let c = |s: &str| format!("{}-{s}-1", stack.project);
    assert!(docker()
        .await
        .inspect_container(&c("web"), None)
        .await
        .is_err());
    let (code, _, err) = stack.difyctl(&["up", "--no-proxy", "nosuch"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no service named nosuch"), "{err}");

    let (code, _, err) = stack.difyctl(&["stop", "db"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(inspect(&c("db")).await.state.unwrap().running, Some(false));
    let (code, _, err) = stack.difyctl(&["start", "db"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("started"), "{err}");
    assert_eq!(inspect(&c("db")).await.state.unwrap().running, Some(true));

    let (code, _, err) = stack.difyctl(&["exec", "api", "/testserver", "write", "/tmp/x", "hello"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = stack.difyctl(&["exec", "api", "/testserver", "cat", "/tmp/x"]);
    assert_eq!((code, out.as_str()), (0, "hello"), "{err}");
    let (code, _, _) = stack.difyctl(&["exec", "api", "/testserver", "cat", "/nonexistent"]);
    assert_ne!(code, 0, "the command's exit code is difyctl's");
    let (code, _, err) = stack.difyctl(&["exec", "web", "/testserver", "cat", "/x"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("service web has no container"), "{err}");

    let (code, out, err) = stack.difyctl(&["logs", "api", "--since", "10m"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("api"), "{out}");
    let (code, out, _) =
        stack.difyctl(&["logs", "api", "--since", &(now_secs() + 3600).to_string()]);
    assert_eq!(code, 0);
    assert!(out.trim().is_empty(), "nothing since the future: {out}");
    let (code, _, err) = stack.difyctl(&["logs", "--since", "yesterday-ish"]);
    assert_eq!(code, 2, "{err}");
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
