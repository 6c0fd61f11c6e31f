//! A client of the real Dify api through difyctl's proxy, as the console and an app's users
//! call it: the install flow (INIT_PASSWORD, admin account), login (cookies + CSRF header),
//! an app imported from DSL, published, given an API key, run with a streamed answer, and a
//! file upload. One HTTP/1.1 request per TLS connection.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use rustls::pki_types::CertificateDer;
use serde_json::{json, Value};

use crate::support::tls_connect;

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "difyctl-test-1";

pub struct Dify {
    pub addr: SocketAddr,
    pub root: CertificateDer<'static>,
    cookies: Vec<(String, String)>,
}

pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Dify {
    pub fn new(addr: SocketAddr, root: CertificateDer<'static>) -> Dify {
        Dify {
            addr,
            root,
            cookies: Vec::new(),
        }
    }

    async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> hyper::Response<hyper::body::Incoming> {
        let io = tls_connect(self.addr, std::slice::from_ref(&self.root), &[b"http/1.1"])
            .await
            .unwrap();
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
                .await
                .unwrap();
        tokio::spawn(conn);
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost");
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req = req.header("cookie", jar.join("; "));
        }
        if let Some((_, csrf)) = self.cookies.iter().find(|(k, _)| k.ends_with("csrf_token")) {
            req = req.header("x-csrf-token", csrf.clone());
        }
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        let resp = send
            .send_request(req.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .unwrap();
        for c in resp.headers().get_all("set-cookie") {
            let c = c.to_str().unwrap_or_default();
            if let Some((k, v)) = c.split(';').next().and_then(|kv| kv.split_once('=')) {
                self.cookies.retain(|(name, _)| name != k);
                if !v.is_empty() {
                    self.cookies.push((k.to_string(), v.to_string()));
                }
            }
        }
        resp
    }

    pub async fn call(&mut self, method: &str, path: &str, body: Option<Value>) -> Answer {
        self.call_with(method, path, &[], body).await
    }

    pub async fn call_with(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Option<Value>,
    ) -> Answer {
        let mut headers = headers.to_vec();
        let bytes = match body {
            Some(b) => {
                headers.push(("content-type", "application/json".into()));
                b.to_string().into_bytes()
            }
            None => Vec::new(),
        };
        let resp = tokio::time::timeout(
            Duration::from_secs(120),
            self.send(method, path, &headers, bytes),
        )
        .await
        .unwrap_or_else(|_| panic!("{method} {path}: no answer within 120 s"));
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        Answer { status, body }
    }

    /// `/install`: the init password, then the admin account.
    pub async fn install(&mut self, init_password: &str) {
        let a = self.call("GET", "/console/api/setup", None).await;
        assert_eq!(a.status, 200, "{}", a.text());
        assert_eq!(a.json()["step"], "not_started", "{}", a.text());
        let a = self
            .call(
                "POST",
                "/console/api/init",
                Some(json!({"password": init_password})),
            )
            .await;
        assert_eq!(a.status, 201, "init: {}", a.text());
        let wrong = Dify::new(self.addr, self.root.clone())
            .call(
                "POST",
                "/console/api/setup",
                Some(
                    json!({"email": "intruder@example.com", "name": "x", "password": "intruder-1"}),
                ),
            )
            .await;
        assert_ne!(
            wrong.status,
            201,
            "setup without the init password: {}",
            wrong.text()
        );
        let a = self
            .call(
                "POST",
                "/console/api/setup",
                Some(json!({"email": ADMIN_EMAIL, "name": "Admin", "password": ADMIN_PASSWORD})),
            )
            .await;
        assert_eq!(a.status, 201, "setup: {}", a.text());
    }

    /// Logs in (the password base64-encoded, as Dify's console sends it).
    pub async fn login(&mut self) {
        let a = self
            .call(
                "POST",
                "/console/api/login",
                Some(json!({"email": ADMIN_EMAIL, "password": base64(ADMIN_PASSWORD.as_bytes())})),
            )
            .await;
        assert_eq!(a.status, 200, "login: {}", a.text());
        assert_eq!(a.json()["result"], "success", "{}", a.text());
        assert!(
            self.cookies
                .iter()
                .any(|(k, _)| k.ends_with("access_token")),
            "no access token cookie"
        );
    }

    /// Imports the slow two-request workflow, publishes it; its app id and an API key.
    pub async fn workflow_app(&mut self, name: &str) -> (String, String) {
        let a = self
            .call(
                "POST",
                "/console/api/apps/imports",
                Some(json!({"mode": "yaml-content", "yaml_content": workflow_dsl(name)})),
            )
            .await;
        assert!(a.status == 200 || a.status == 201, "import: {}", a.text());
        let import = a.json();
        // An older DSL version imports with warnings; "pending" or "failed" would not do.
        let status = import["status"].as_str().unwrap_or_default();
        assert!(status.starts_with("completed"), "{import}");
        let app = import["app_id"].as_str().unwrap().to_string();
        let a = self
            .call(
                "POST",
                &format!("/console/api/apps/{app}/workflows/publish"),
                Some(json!({})),
            )
            .await;
        assert!(a.status < 300, "publish: {}", a.text());
        let a = self
            .call("POST", &format!("/console/api/apps/{app}/api-keys"), None)
            .await;
        assert!(a.status < 300, "api key: {}", a.text());
        let key = a.json()["token"].as_str().unwrap().to_string();
        (app, key)
    }

    /// The names of the workspace's apps.
    pub async fn app_names(&mut self) -> Vec<String> {
        let a = self
            .call("GET", "/console/api/apps?page=1&limit=100", None)
            .await;
        assert_eq!(a.status, 200, "{}", a.text());
        a.json()["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Runs the workflow streamed; each SSE event's name with when it arrived.
    pub async fn run_streamed(&mut self, key: &str) -> Vec<(String, Instant)> {
        let body = json!({"inputs": {}, "response_mode": "streaming", "user": "difyctl-test"});
        let headers = [
            ("authorization", format!("Bearer {key}")),
            ("content-type", "application/json".to_string()),
        ];
        let resp = self
            .send(
                "POST",
                "/v1/workflows/run",
                &headers,
                body.to_string().into_bytes(),
            )
            .await;
        assert_eq!(resp.status(), 200);
        let mut body = resp.into_body();
        let (mut events, mut partial) = (Vec::new(), String::new());
        while let Some(frame) = tokio::time::timeout(Duration::from_secs(120), body.frame())
            .await
            .expect("the stream stalled")
        {
            let Some(data) = frame.unwrap().data_ref().cloned() else {
                continue;
            };
            let at = Instant::now();
            partial.push_str(&String::from_utf8_lossy(&data));
            while let Some(end) = partial.find("\n\n") {
                let event: String = partial.drain(..end + 2).collect();
                for line in event.lines() {
                    let Some(json) = line.strip_prefix("data: ") else {
                        continue;
                    };
                    let v: Value = serde_json::from_str(json).unwrap_or_default();
                    if let Some(e) = v["event"].as_str() {
                        events.push((e.to_string(), at));
                    }
                }
            }
        }
        events
    }

    /// Uploads `data` as a file through the app's API; the file's id.
    pub async fn upload(&mut self, key: &str, data: &[u8]) -> String {
        let boundary = "difyctl-test-boundary";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\ndifyctl-test\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"notes.txt\"\r\nContent-Type: text/plain\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(data);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let headers = [
            ("authorization", format!("Bearer {key}")),
            (
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            ),
        ];
        let resp = self.send("POST", "/v1/files/upload", &headers, body).await;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(status, 201, "upload: {}", String::from_utf8_lossy(&body));
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["size"].as_u64(), Some(data.len() as u64), "{v}");
        v["id"].as_str().unwrap().to_string()
    }
}

/// A workflow that calls the sandbox stand-in's `/slow` twice (1.5 s each, through Dify's
/// SSRF proxy): its node events come 1.5 s apart, so a buffering proxy shows.
pub fn workflow_dsl(name: &str) -> String {
    let http = |id: &str, x: u32| {
        format!(
            r#"    - id: {id}
      type: custom
      position: {{x: {x}, y: 100}}
      data:
        type: http-request
        title: {id}
        desc: ''
        method: get
        url: http://sandbox:8194/slow?ms=1500
        authorization: {{type: no-auth, config: null}}
        headers: ''
        params: ''
        body: {{type: none, data: []}}
        timeout: {{connect: 10, read: 30, write: 30}}
        variables: []
"#
        )
    };
    format!(
        r##"app:
  name: {name}
  mode: workflow
  icon: "🤖"
  icon_background: "#FFEAD5"
  description: difyctl test
  use_icon_as_answer_icon: false
kind: app
version: 0.6.0
workflow:
  conversation_variables: []
  environment_variables: []
  features: {{}}
  graph:
    edges:
    - {{id: e1, source: start, target: slow1, sourceHandle: source, targetHandle: target, type: custom, data: {{sourceType: start, targetType: http-request}}}}
    - {{id: e2, source: slow1, target: slow2, sourceHandle: source, targetHandle: target, type: custom, data: {{sourceType: http-request, targetType: http-request}}}}
    - {{id: e3, source: slow2, target: end, sourceHandle: source, targetHandle: target, type: custom, data: {{sourceType: http-request, targetType: end}}}}
    nodes:
    - id: start
      type: custom
      position: {{x: 0, y: 100}}
      data: {{type: start, title: Start, desc: '', variables: []}}
{}{}    - id: end
      type: custom
      position: {{x: 900, y: 100}}
      data:
        type: end
        title: End
        desc: ''
        outputs:
        - {{variable: status, value_selector: [slow2, status_code], value_type: number}}
"##,
        http("slow1", 300),
        http("slow2", 600)
    )
}

pub fn base64(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}
