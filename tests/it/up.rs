//! The whole install: `difyctl up` starts a Dify-shaped stand-in stack, then serves it over
//! HTTPS from the containers' own addresses, following them when Docker restarts them.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

use crate::cli::{log_line_within, signal, start_difyctl_in, wait_exit};
use crate::engine::TestStack;
use crate::pebble::{free_port, Pebble, PebbleOptions};
use crate::support::{read_response, tls_connect_named, RawResponse};

fn hc(port: u16) -> String {
    format!("{{test: [\"CMD\", \"/testserver\", \"probe\", \"http://127.0.0.1:{port}/health\"], interval: 1s, timeout: 2s, retries: 30}}")
}

/// Shaped like Dify's: web, api, worker, plugin_daemon, db, redis, an internal network for
/// db and redis, a volume, healthchecks gating api. Nothing publishes a port.
fn dify_like() -> String {
    format!(
        r#"services:
  db:
    image: ${{IMAGE}}
    command: ["db=0.0.0.0:5432"]
    volumes: ["db:/data"]
    healthcheck: {db}
    networks: [default, data]
    restart: always
  redis:
    image: ${{IMAGE}}
    command: ["redis=0.0.0.0:6379"]
    healthcheck: {redis}
    networks: [data]
    restart: always
  api:
    image: ${{IMAGE}}
    command: ["api=0.0.0.0:5001"]
    environment:
      MODE: ${{API_MODE:-api}}
      CONSOLE_API_URL: ${{CONSOLE_API_URL:-}}
      FILES_URL: https://files.example.com
    healthcheck: {api}
    depends_on:
      db: {{condition: service_healthy}}
      redis: {{condition: service_healthy}}
    networks: [default, data]
    restart: always
  worker:
    image: ${{IMAGE}}
    command: ["worker=0.0.0.0:5001"]
    depends_on: [api]
    networks: [default, data]
    restart: always
  plugin_daemon:
    image: ${{IMAGE}}
    # Not Dify's default port: difyctl follows SERVER_PORT.
    command: ["plugin_daemon=0.0.0.0:5012"]
    environment:
      SERVER_PORT: "5012"
    depends_on:
      db: {{condition: service_healthy}}
    restart: always
  web:
    image: ${{IMAGE}}
    command: ["web=0.0.0.0:3000"]
    depends_on: [api]
    restart: always
  nginx:
    image: ${{IMAGE}}
    command: ["nginx=0.0.0.0:80"]
networks:
  data:
    internal: true
volumes:
  db:
"#,
        db = hc(5432),
        redis = hc(6379),
        api = hc(5001),
    )
}

async fn https_get(
    addr: std::net::SocketAddr,
    name: &str,
    roots: &[rustls_pki_types::CertificateDer<'static>],
    path: &str,
) -> std::io::Result<RawResponse> {
    let mut io = tls_connect_named(addr, name, roots, &[b"http/1.1"]).await?;
    io.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    tokio::time::timeout(Duration::from_secs(40), read_response(&mut io))
        .await
        .map_err(|_| std::io::Error::other("no response within 40 s"))?
}

/// Six seconds of sequential GETs to api on fresh connections, in the background:
/// (answered by api, everything else as text).
fn api_load(
    addr: std::net::SocketAddr,
    domain: &str,
    roots: &[rustls_pki_types::CertificateDer<'static>],
) -> tokio::task::JoinHandle<(usize, Vec<String>)> {
    let (domain, roots) = (domain.to_string(), roots.to_vec());
    tokio::spawn(async move {
        let (mut ok, mut failed) = (0, Vec::new());
        let until = Instant::now() + Duration::from_secs(6);
        while Instant::now() < until {
            match https_get(addr, &domain, &roots, "/console/api/ping").await {
                Ok(r) if service_of(&r) == "api" => ok += 1,
                other => failed.push(format!("{:?}", other.map(|r| service_of(&r)))),
            }
        }
        (ok, failed)
    })
}

fn service_of(resp: &RawResponse) -> String {
    serde_json::from_slice::<serde_json::Value>(&resp.body)
        .ok()
        .and_then(|v| v["service"].as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{} {}", resp.status, String::from_utf8_lossy(&resp.body)))
}

/// The whole install, end to end: Pebble issues the certificate through HTTP-01 on difyctl's
/// own :80, then api, web and plugin_daemon answer over HTTPS at their container addresses;
/// SSE arrives event by event, WebSocket echoes, a `difyctl restart api` under load fails no
/// request, a `docker kill`ed api comes back, SIGTERM ends difyctl and leaves the stack up.
#[tokio::test]
async fn up_is_the_whole_install() {
    if !crate::pebble::available() {
        return;
    }
    let (http, https) = (free_port(), free_port());
    let pebble = Pebble::start(http, https, PebbleOptions::default());
    let stack = TestStack::new("up", &dify_like(), "");
    let domain = format!("{}.example.com", stack.project);
    let state = stack.dir.join("state");
    let args: Vec<String> = [
        "-p",
        &stack.project,
        "--state-dir",
        &state.display().to_string(),
        "up",
        "--http",
        &format!("127.0.0.1:{http}"),
        "--https",
        &format!("127.0.0.1:{https}"),
        "--wait-timeout",
        "60",
        "--domain",
        &domain,
        "--acme-directory",
        &pebble.directory,
        "--acme-ca-root",
        &pebble.ca_root.display().to_string(),
        "--email",
        "ops@example.com",
        "--admin",
        "127.0.0.1:0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (mut child, addr, logs) = start_difyctl_in(&stack.dir, &args, Duration::from_secs(90));
    log_line_within(&logs, "new certificate in service", Duration::from_secs(60));
    let roots = [pebble.issuing_root().await];

    let resp = https_get(addr, &domain, &roots, "/console/api/apps")
        .await
        .unwrap();
    assert_eq!(service_of(&resp), "api");
    let resp = https_get(addr, &domain, &roots, "/").await.unwrap();
    assert_eq!(service_of(&resp), "web");
    let resp = https_get(addr, &domain, &roots, "/e/hook").await.unwrap();
    assert_eq!(service_of(&resp), "plugin_daemon");
    let nginx = crate::engine::docker()
        .await
        .inspect_container(&format!("{}-nginx-1", stack.project), None)
        .await;
    assert!(nginx.is_err(), "nginx is difyctl's job");
    // `ps` asks the running difyctl what it serves, and from where.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_difyctl"))
        .current_dir(&stack.dir)
        .args([
            "-p",
            &stack.project,
            "--state-dir",
            &state.display().to_string(),
            "ps",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ps: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(ps["difyctl"]["project"], stack.project.as_str());
    assert_eq!(ps["difyctl"]["https"], addr.to_string());
    let api_upstream = ps["difyctl"]["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u[0] == "api")
        .map(|u| u[1].clone())
        .unwrap();
    assert!(
        api_upstream.as_str().is_some_and(|a| a.ends_with(":5001")),
        "{ps}"
    );
    assert_eq!(ps["containers"].as_array().unwrap().len(), 6, "{ps}");
    let admin: std::net::SocketAddr = ps["difyctl"]["admin"].as_str().unwrap().parse().unwrap();
    status_shows_every_service(&stack, &state, &domain).await;
    ready_only_while_every_service_is(&stack, admin).await;
    // Dify's URL settings follow the domain.
    let api = format!("{}-api-1", stack.project);
    let env = crate::engine::inspect(&api)
        .await
        .config
        .unwrap()
        .env
        .unwrap_or_default();
    assert!(
        env.contains(&format!("CONSOLE_API_URL=https://{domain}:{https}")),
        "{env:?}"
    );
    assert!(
        env.contains(&"FILES_URL=https://files.example.com".to_string()),
        "the user's own"
    );

    // SSE: three events 300 ms apart arrive one by one, not in a burst at the end.
    let mut io = tls_connect_named(addr, &domain, &roots, &[b"http/1.1"])
        .await
        .unwrap();
    io.write_all(
        format!("GET /v1/chat-messages/sse?n=3&gap_ms=300 HTTP/1.1\r\nHost: {domain}\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let (mut seen, mut arrivals, mut buf) = (0, Vec::new(), [0u8; 4096]);
    while seen < 3 {
        let n = tokio::time::timeout(Duration::from_secs(10), io.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "stream ended after {seen} events");
        let events = String::from_utf8_lossy(&buf[..n]).matches("data:").count();
        for _ in 0..events {
            arrivals.push(Instant::now());
        }
        seen += events;
    }
    assert!(
        arrivals[2] - arrivals[0] >= Duration::from_millis(400),
        "SSE arrived in a burst"
    );

    // WebSocket through the same route Socket.IO uses.
    let io = tls_connect_named(addr, &domain, &roots, &[b"http/1.1"])
        .await
        .unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(
        format!("wss://{domain}/socket.io/?EIO=4&transport=websocket"),
        io,
    )
    .await
    .unwrap();
    ws.send(Message::text("42[\"ping\"]")).await.unwrap();
    let echo = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(echo.into_text().unwrap().as_str(), "42[\"ping\"]");

    // `difyctl restart api` while requests keep coming: none fails, they wait for api.
    let api_starts = r#"difyctl_service_starts_total{service="api"}"#;
    let before = crate::admin::admin_get(admin, "/metrics").await.1;
    let load = api_load(addr, &domain, &roots);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let restart = {
        let stack_dir = stack.dir.clone();
        let project = stack.project.clone();
        let state = state.display().to_string();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_difyctl"))
                .current_dir(stack_dir)
                .args(["-p", &project, "--state-dir", &state, "restart", "api"])
                .output()
                .unwrap()
        })
    };
    let out = restart.await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (ok, failed) = load.await.unwrap();
    assert!(
        failed.is_empty(),
        "{} requests failed during the restart: {failed:?}",
        failed.len()
    );
    assert!(ok > 5, "only {ok} requests went through");
    let after = crate::admin::admin_get(admin, "/metrics").await.1;
    let moved =
        |series: &str| crate::admin::value(&after, series) - crate::admin::value(&before, series);
    assert!(moved(api_starts) >= 1.0, "the restart is counted: {after}");
    assert!(
        moved(r#"difyctl_upstream_waits_total{service="api"}"#) >= 1.0,
        "requests waited"
    );
    let api_ok = r#"difyctl_http_requests_total{service="api",code="2xx",proto="HTTP/1.1"}"#;
    assert!(moved(api_ok) >= ok as f64, "every request counted: {after}");
    // The same certificate settings `up` was given (after `up`, past --admin).
    let acme = &args[args.iter().position(|a| a == "--domain").unwrap()..args.len() - 2];
    renewal_moves_the_certificate_metrics(&stack, &state, admin, &domain, acme).await;

    // A changed setting applied with `up --no-proxy` while difyctl serves: api is recreated (a
    // new container, maybe a new address), the proxy follows, no request fails.
    stack.set_env("API_MODE=changed\n");
    let load = api_load(addr, &domain, &roots);
    let old_id = crate::engine::inspect(&api).await.id.unwrap();
    let apply = {
        let args: Vec<String> = [
            "-p",
            &stack.project,
            "--state-dir",
            &state.display().to_string(),
            "up",
            "--no-proxy",
            "--json",
            "--domain",
            &domain,
            "--https",
            &format!("127.0.0.1:{https}"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let dir = stack.dir.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_difyctl"))
                .current_dir(dir)
                .args(args)
                .output()
                .unwrap()
        })
    };
    let out = apply.await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let actions: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for s in actions.as_array().unwrap() {
        let expected = if s["service"] == "api" {
            "recreated"
        } else {
            "unchanged"
        };
        assert_eq!(s["action"], expected, "{actions}");
    }
    assert_ne!(crate::engine::inspect(&api).await.id.unwrap(), old_id);
    let (ok, failed) = load.await.unwrap();
    assert!(
        failed.is_empty(),
        "{} requests failed while api was recreated: {failed:?}",
        failed.len()
    );
    assert!(ok > 5, "only {ok} requests went through");

    // Killed: api comes back (its restart policy), and difyctl follows it without a restart.
    crate::engine::docker()
        .await
        .kill_container(
            &api,
            None::<bollard::query_parameters::KillContainerOptions>,
        )
        .await
        .unwrap();
    let resp = https_get(addr, &domain, &roots, "/v1/chat-messages")
        .await
        .unwrap();
    assert_eq!(
        service_of(&resp),
        "api",
        "the request waited for api to come back"
    );

    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(20)), 0);
    let api_state = crate::engine::inspect(&api).await.state.unwrap();
    assert_eq!(
        api_state.running,
        Some(true),
        "containers keep running after difyctl stops"
    );
}

/// `difyctl status` on the running stack: every service, the certificate, ready.
async fn status_shows_every_service(stack: &TestStack, state: &std::path::Path, domain: &str) {
    let state = state.display().to_string();
    let run = |json: bool| {
        let args = ["--state-dir", &state, "status", "--json"];
        let (code, out, err) = stack.difyctl(&args[..if json { 4 } else { 3 }]);
        assert_eq!(code, 0, "{err}");
        out
    };
    let overview: serde_json::Value = serde_json::from_str(&run(true)).unwrap();
    assert_eq!(overview["ready"], true, "{overview}");
    let services: Vec<&str> = overview["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["service"].as_str().unwrap())
        .collect();
    for s in ["api", "db", "plugin_daemon", "redis", "web", "worker"] {
        assert!(services.contains(&s), "{s} missing: {overview}");
    }
    assert_eq!(overview["certificates"][0]["source"], "acme", "{overview}");
    assert!(overview["certificates"][0]["days_left"].as_i64().unwrap() > 0);
    let text = run(false);
    assert!(
        text.contains(&format!("Dify at https://{domain}:")),
        "{text}"
    );
    assert!(
        text.contains("ready: yes") && text.contains("last minute:"),
        "{text}"
    );
    for s in services {
        assert!(
            text.lines().any(|l| l.starts_with(s)),
            "{s} not listed: {text}"
        );
    }
}

/// `/readyz` says no while a service is down (naming it), yes again once it is back.
async fn ready_only_while_every_service_is(stack: &TestStack, admin: std::net::SocketAddr) {
    assert_eq!(crate::admin::admin_get(admin, "/readyz").await.0, 200);
    let docker = crate::engine::docker().await;
    let worker = format!("{}-worker-1", stack.project);
    docker
        .stop_container(
            &worker,
            None::<bollard::query_parameters::StopContainerOptions>,
        )
        .await
        .unwrap();
    let (status, body) = poll_readyz(admin, 503).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("worker: exited"), "{body}");
    docker
        .start_container(
            &worker,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await
        .unwrap();
    let (status, body) = poll_readyz(admin, 200).await;
    assert_eq!(status, 200, "{body}");
}

/// `/readyz` until it answers `want` (at most 30 s).
async fn poll_readyz(admin: std::net::SocketAddr, want: u16) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = crate::admin::admin_get(admin, "/readyz").await;
        if got.0 == want || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// `certs renew --force` through the running difyctl moves the renewal series.
async fn renewal_moves_the_certificate_metrics(
    stack: &TestStack,
    state: &std::path::Path,
    admin: std::net::SocketAddr,
    domain: &str,
    acme: &[String],
) {
    let success = format!(
        "difyctl_certificate_renewal_last_success_timestamp_seconds{{name=\"{domain}\",source=\"acme\"}}"
    );
    let before = crate::admin::admin_get(admin, "/metrics").await.1;
    assert!(crate::admin::value(&before, &success) > 0.0, "{before}");
    // Timestamps are in seconds: the renewal must land in a later one.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let state = state.display().to_string();
    let mut args = vec!["--state-dir", &state, "certs", "renew", "--force"];
    // `certs renew` names the certificate with --name (--domain picks one of several).
    args.extend(acme.iter().map(|a| {
        if a == "--domain" {
            "--name"
        } else {
            a.as_str()
        }
    }));
    let (code, _, err) = stack.difyctl(&args);
    assert_eq!(code, 0, "{err}");
    let after = crate::admin::admin_get(admin, "/metrics").await.1;
    assert!(
        crate::admin::value(&after, &success) > crate::admin::value(&before, &success),
        "{after}"
    );
    let result = format!("difyctl_certificate_renewal_last_result{{name=\"{domain}\"}}");
    assert_eq!(crate::admin::value(&after, &result), 1.0, "{after}");
}

/// One plain GET through difyctl's HTTPS (self-signed for localhost): status, body, seconds.
async fn timed_get(
    addr: std::net::SocketAddr,
    root: &rustls_pki_types::CertificateDer<'static>,
    path: &str,
) -> (u16, String, f64) {
    let start = Instant::now();
    let mut io = tls_connect_named(
        addr,
        "localhost",
        std::slice::from_ref(root),
        &[b"http/1.1"],
    )
    .await
    .unwrap();
    io.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(60), read_response(&mut io))
        .await
        .unwrap_or_else(|_| panic!("no answer to GET {path} within 60 s"))
        .unwrap();
    (
        resp.status,
        String::from_utf8_lossy(&resp.body).into_owned(),
        start.elapsed().as_secs_f64(),
    )
}

/// Regression (hardening #2): after `docker rm -f` of a service its route stayed on the dead
/// address (every request waited 30 s, then 502, forever), a stopped one held requests too,
/// and after its network was gone requests went to the vanished subnet, off the host. Now: a
/// removed service answers 503 at once, a stopped or detached one 502 at once naming its
/// state, and `up --no-proxy` (run while `up` serves, and waiting for any other one) brings
/// them back, recreating a detached container.
#[tokio::test]
async fn gone_stopped_or_detached_upstreams_fail_at_once_and_come_back() {
    let stack = TestStack::new("stale", &dify_like(), "");
    let crate::engine::Serving {
        child: _child,
        addr,
        logs,
        root,
    } = stack.serve(60);
    let (status, body, _) = timed_get(addr, &root, "/console/api/apps").await;
    assert_eq!(status, 200, "{body}");
    let docker = crate::engine::docker().await;
    let api = format!("{}-api-1", stack.project);
    let no_proxy = |extra: &[&str]| {
        let mut a = vec![
            "--state-dir",
            "state",
            "up",
            "--no-proxy",
            "--wait-timeout",
            "60",
        ];
        a.extend_from_slice(extra);
        stack.difyctl(&a)
    };

    // Stopped on purpose: 502 at once, the page says it is stopped.
    docker
        .stop_container(
            &api,
            None::<bollard::query_parameters::StopContainerOptions>,
        )
        .await
        .unwrap();
    log_line_within(&logs, "upstream down", Duration::from_secs(10));
    let (status, body, took) = timed_get(addr, &root, "/console/api/apps").await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("<code>api</code> is stopped"), "{body}");
    assert!(
        took < 5.0,
        "answered at once, not after upstream_wait: {took} s"
    );

    // Removed: 503 at once naming the service.
    docker
        .remove_container(
            &api,
            Some(bollard::query_parameters::RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    log_line_within(&logs, "no container", Duration::from_secs(10));
    let (status, body, took) = timed_get(addr, &root, "/console/api/apps").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("api"), "{body}");
    assert!(took < 5.0, "{took} s");
    let (code, _, err) = no_proxy(&[]);
    assert_eq!(code, 0, "{err}");
    let (status, _, _) = timed_get(addr, &root, "/console/api/apps").await;
    assert_eq!(status, 200, "back once up --no-proxy recreated it");

    // Detached from its project network: never reached through a stale address, and
    // `up --no-proxy` recreates it on the network.
    for net in ["default", "data"] {
        docker
            .disconnect_network(
                &format!("{}_{net}", stack.project),
                bollard::models::NetworkDisconnectRequest {
                    container: api.clone(),
                    force: Some(true),
                },
            )
            .await
            .unwrap();
    }
    // Docker reports the detach as a network event: seen at once, not at the next re-read.
    log_line_within(
        &logs,
        "not on the project's network",
        Duration::from_secs(5),
    );
    let answer = tokio::time::timeout(
        Duration::from_secs(30),
        timed_get(addr, &root, "/console/api/apps"),
    )
    .await;
    let Ok((status, body, took)) = answer else {
        let rest: Vec<String> = logs.try_iter().collect();
        panic!(
            "no answer for a detached api; difyctl logged:\n{}",
            rest.join("\n")
        );
    };
    assert_eq!(status, 502, "{body}");
    assert!(took < 5.0, "{took} s");
    let (code, out, err) = no_proxy(&["--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"recreated\""), "{out}");
    let (status, _, _) = timed_get(addr, &root, "/console/api/apps").await;
    assert_eq!(status, 200);
}

/// Regression (hardening #3): two `up --no-proxy` at once created two `<project>_default`
/// networks, both failed, and every later `up` failed with "network is ambiguous". Now the
/// second waits for the first, and a duplicate left by anything is repaired.
#[tokio::test]
async fn concurrent_ups_wait_for_each_other_and_duplicate_networks_are_repaired() {
    let stack = TestStack::new("lock", &dify_like(), "");
    let run = |stack: &TestStack| {
        let (dir, project) = (stack.dir.clone(), stack.project.clone());
        std::thread::spawn(move || {
            crate::cli::difyctl()
                .current_dir(dir)
                .args([
                    "-p",
                    &project,
                    "--state-dir",
                    "state",
                    "up",
                    "--no-proxy",
                    "--wait-timeout",
                    "60",
                ])
                .output()
                .unwrap()
        })
    };
    let (a, b) = (run(&stack), run(&stack));
    for out in [a.join().unwrap(), b.join().unwrap()] {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let docker = crate::engine::docker().await;
    let count = |docker: bollard::Docker, name: String| async move {
        docker
            .list_networks(None::<bollard::query_parameters::ListNetworksOptions>)
            .await
            .unwrap()
            .into_iter()
            .filter(|n| n.name.as_deref() == Some(name.as_str()))
            .count()
    };
    let name = format!("{}_default", stack.project);
    assert_eq!(count(docker.clone(), name.clone()).await, 1);
    // Another tool left a second network of the same name.
    docker
        .create_network(bollard::models::NetworkCreateRequest {
            name: name.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(count(docker.clone(), name.clone()).await, 2);
    let (code, _, err) = stack.difyctl(&[
        "--state-dir",
        "state",
        "up",
        "--no-proxy",
        "--wait-timeout",
        "60",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("existed twice"), "{err}");
    assert_eq!(count(docker.clone(), name.clone()).await, 1);
    let (code, _, err) = stack.difyctl(&["down", "-v", "--timeout", "1"]);
    assert_eq!(code, 0, "{err}");
}

/// New-user habit: `up -d` starts the stack and leaves difyctl serving in the background
/// (no systemd unit here: a detached process), `logs difyctl` shows its log, `down` stops it
/// with the stack.
#[tokio::test]
async fn up_d_serves_in_the_background_until_down() {
    let stack = TestStack::new("detach", &dify_like(), "");
    let (code, out, err) = stack.difyctl(&[
        "--state-dir",
        "state",
        "up",
        "-d",
        "--http",
        "127.0.0.1:0",
        "--https",
        "127.0.0.1:0",
        "--wait-timeout",
        "60",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("in the background"), "{out}");
    let (code, out, _) = stack.difyctl(&["--state-dir", "state", "ps"]);
    assert_eq!(code, 0);
    assert!(out.contains("serves https on"), "{out}");
    let (code, out, _) = stack.difyctl(&["--state-dir", "state", "logs", "difyctl", "-n", "50"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("difyctl  | ") && out.contains("proxy listening"),
        "{out}"
    );
    let (code, _, err) = stack.difyctl(&["--state-dir", "state", "down", "-t", "1"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("stopped the difyctl serving"), "{err}");
    let (_, out, _) = stack.difyctl(&["--state-dir", "state", "ps"]);
    assert!(out.contains("not running"), "{out}");
}
