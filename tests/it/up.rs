//! The whole install: `difyctl up` starts a Dify-shaped stand-in stack, then serves it over
//! HTTPS from the containers' own addresses, following them when Docker restarts them.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use crate::cli::{signal, start_difyctl_in, wait_exit};
use crate::engine::TestStack;
use crate::support::{read_response, tls_connect, RawResponse};

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
    command: ["plugin_daemon=0.0.0.0:5002"]
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
    roots: &[rustls_pki_types::CertificateDer<'static>],
    path: &str,
) -> std::io::Result<RawResponse> {
    let mut io = tls_connect(addr, roots, &[b"http/1.1"]).await?;
    io.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    tokio::time::timeout(Duration::from_secs(10), read_response(&mut io))
        .await
        .map_err(|_| std::io::Error::other("no response within 10 s"))?
}

fn service_of(resp: &RawResponse) -> String {
    serde_json::from_slice::<serde_json::Value>(&resp.body)
        .ok()
        .and_then(|v| v["service"].as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{} {}", resp.status, String::from_utf8_lossy(&resp.body)))
}

#[tokio::test]
async fn up_serves_the_stack_over_https_and_follows_a_killed_container() {
    let stack = TestStack::new("up", &dify_like(), "");
    let state = stack.dir.join("state");
    let args: Vec<String> = [
        "-p",
        &stack.project,
        "--state-dir",
        &state.display().to_string(),
        "up",
        "--http",
        "127.0.0.1:0",
        "--https",
        "127.0.0.1:0",
        "--wait-timeout",
        "60",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (mut child, addr, _logs) = start_difyctl_in(&stack.dir, &args, Duration::from_secs(90));
    let pem = std::fs::read(state.join("tls/self-signed.crt")).unwrap();
    let roots: Vec<_> = rustls_pemfile_certs(&pem);

    let resp = https_get(addr, &roots, "/console/api/apps").await.unwrap();
    assert_eq!(service_of(&resp), "api");
    let resp = https_get(addr, &roots, "/").await.unwrap();
    assert_eq!(service_of(&resp), "web");
    let resp = https_get(addr, &roots, "/e/hook").await.unwrap();
    assert_eq!(service_of(&resp), "plugin_daemon");
    let nginx = crate::engine::docker()
        .await
        .inspect_container(&format!("{}-nginx-1", stack.project), None)
        .await;
    assert!(nginx.is_err(), "nginx is difyctl's job");

    // Killed: Docker's restart policy brings api back, and difyctl follows it without a restart.
    let api = format!("{}-api-1", stack.project);
    crate::engine::docker()
        .await
        .kill_container(
            &api,
            None::<bollard::query_parameters::KillContainerOptions>,
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match https_get(addr, &roots, "/v1/chat-messages").await {
            Ok(r) if service_of(&r) == "api" => break,
            other => {
                assert!(
                    Instant::now() < deadline,
                    "api not served again after its restart: {:?}",
                    other.map(|r| service_of(&r))
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(20)), 0);
    let api_state = crate::engine::inspect(&api).await.state.unwrap();
    assert_eq!(
        api_state.running,
        Some(true),
        "containers keep running after difyctl stops"
    );
}

fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls_pki_types::CertificateDer<'static>> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::pem_slice_iter(pem)
        .map(|c| c.unwrap())
        .collect()
}
