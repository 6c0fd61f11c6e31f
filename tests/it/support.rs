//! Test harness: real upstream servers on port 0, a real proxy on port 0, and TLS clients that
//! trust the proxy's certificate.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use difyctl::config::{Config, Flags, ProxyConfig};
use difyctl::proxy::{ChallengeTokens, RouteTable, Routes, Upstream, Upstreams};
use difyctl::server::{Running, Server};
use difyctl::tls::{self, CertResolver, CertifiedKey};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;

use crate::testserver;

/// Starts a test server named `name` on a free port and returns its address.
pub async fn upstream(name: &str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(testserver::serve(listener, name.to_string()));
    addr
}

/// An address where nothing listens (bound, then closed).
pub async fn dead_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// Web, api, plugin daemon and api_websocket test servers.
pub async fn dify_upstreams() -> Upstreams {
    let up = |name: &str, addr: SocketAddr| Some(Upstream::parse(name, &addr.to_string()).unwrap());
    Upstreams {
        web: up("web", upstream("web").await),
        api: up("api", upstream("api").await),
        plugin: up("plugin_daemon", upstream("plugin_daemon").await),
        socket: up("api_websocket", upstream("api_websocket").await),
    }
}

/// A self-signed certificate for `localhost`, as the proxy would serve it, and its DER.
pub fn certificate() -> (Arc<CertifiedKey>, CertificateDer<'static>) {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let der = generated.cert.der().clone();
    let key = tls::parse_pem_pair(
        generated.cert.pem().as_bytes(),
        generated.signing_key.serialize_pem().as_bytes(),
        Path::new("<test cert>"),
        Path::new("<test key>"),
    )
    .unwrap();
    (Arc::new(key), der)
}

pub struct TestProxy {
    pub https: SocketAddr,
    pub http: SocketAddr,
    /// The admin listener (/metrics, /readyz, /status), with [`TestProxy::with_admin`].
    pub admin: Option<SocketAddr>,
    pub resolver: Arc<CertResolver>,
    pub challenges: ChallengeTokens,
    pub routes: Routes,
    /// The certificate served at start; clients trust it.
    pub cert: CertificateDer<'static>,
    running: Option<Running>,
}

impl TestProxy {
    /// The server as `difyctl proxy` starts it (through the composition root), on port 0,
    /// serving a fresh self-signed certificate.
    pub async fn start(upstreams: &Upstreams, tweak: impl FnOnce(&mut ProxyConfig)) -> TestProxy {
        Self::start_with(upstreams, tweak, false).await
    }

    /// [`TestProxy::start`] with an admin listener on port 0 (off otherwise: every extra
    /// port-0 listener is one more chance to take the port a test keeps dead).
    pub async fn with_admin(
        upstreams: &Upstreams,
        tweak: impl FnOnce(&mut ProxyConfig),
    ) -> TestProxy {
        Self::start_with(upstreams, tweak, true).await
    }

    async fn start_with(
        upstreams: &Upstreams,
        tweak: impl FnOnce(&mut ProxyConfig),
        admin: bool,
    ) -> TestProxy {
        let mut config = Config::merge(&Flags::default(), Default::default(), None).unwrap();
        config.proxy = ProxyConfig {
            http: "127.0.0.1:0".parse().unwrap(),
            https: "127.0.0.1:0".parse().unwrap(),
            workers: 1,
            shutdown_grace: Duration::from_secs(5),
            ..ProxyConfig::default()
        };
        tweak(&mut config.proxy);
        config.admin.listen = admin.then(|| "127.0.0.1:0".parse().unwrap());
        config.admin.explicit = true;
        let (key, cert) = certificate();
        let routes = Routes::new(RouteTable::dify(upstreams));
        let running = Server::new(config, routes)
            .without_control()
            .with_certificate(key)
            .start()
            .await
            .unwrap();
        TestProxy {
            https: running.https,
            http: running.http,
            admin: running.admin,
            resolver: running.resolver.clone(),
            challenges: running.challenges.clone(),
            routes: running.routes.clone(),
            cert,
            running: Some(running),
        }
    }

    /// Signals shutdown and waits for the workers to finish.
    pub async fn shutdown(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
    }

    pub fn begin_shutdown(&self) {
        if let Some(running) = &self.running {
            running.begin_shutdown();
        }
    }

    pub async fn tls(&self, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
        tls_connect(self.https, std::slice::from_ref(&self.cert), alpn)
            .await
            .unwrap()
    }

    pub async fn h1(&self) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
        let io = self.tls(&[b"http/1.1"]).await;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .unwrap();
        tokio::spawn(conn.with_upgrades());
        send
    }

    pub async fn h2(&self) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
        let io = self.tls(&[b"h2"]).await;
        assert_eq!(
            io.get_ref().1.alpn_protocol(),
            Some(&b"h2"[..]),
            "h2 negotiated"
        );
        let (send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
                .await
                .unwrap();
        tokio::spawn(conn);
        send
    }
}

/// A TLS client that trusts `roots`, offers `alpn`, and never resumes sessions (so every
/// handshake shows the certificate being served now).
pub async fn tls_connect(
    addr: SocketAddr,
    roots: &[CertificateDer<'static>],
    alpn: &[&[u8]],
) -> std::io::Result<TlsStream<TcpStream>> {
    tls_connect_named(addr, "localhost", roots, alpn).await
}

/// `tls_connect` with the server name (SNI and verification) given.
pub async fn tls_connect_named(
    addr: SocketAddr,
    name: &str,
    roots: &[CertificateDer<'static>],
    alpn: &[&[u8]],
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config.resumption = rustls::client::Resumption::disabled();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(name.to_string()).unwrap();
    connector.connect(name, tcp).await
}

/// `GET path` with `Host: localhost`.
pub fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// For HTTP/2: the authority goes in the URI.
pub fn get_h2(path: &str) -> Request<Full<Bytes>> {
    Request::get(format!("https://localhost{path}"))
        .body(Full::new(Bytes::new()))
        .unwrap()
}

pub async fn body_json(resp: Response<hyper::body::Incoming>) -> serde_json::Value {
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
}

/// A response read off a raw connection.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

/// Reads one HTTP/1.1 response (status line, headers, Content-Length body) from `io`.
pub async fn read_response<S: tokio::io::AsyncRead + Unpin>(
    io: &mut S,
) -> std::io::Result<RawResponse> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        let n = io.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "closed before a full response: {:?}",
                    String::from_utf8_lossy(&buf)
                ),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = io.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(RawResponse { status, head, body })
}

/// Writes `request` on a fresh TLS connection and reads the response.
pub async fn raw_https(proxy: &TestProxy, request: &[u8]) -> RawResponse {
    let mut io = proxy.tls(&[b"http/1.1"]).await;
    io.write_all(request).await.unwrap();
    io.flush().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), read_response(&mut io))
        .await
        .expect("response within 10 s")
        .unwrap()
}
