//! The plain-HTTP listener: every request is sent to HTTPS with a 301 that keeps path and query,
//! except ACME HTTP-01 challenges, answered from the token map. With domains configured the
//! redirect only ever names one of them (a request's own `Host` when it is one, else the first
//! domain): a forged `Host` must not turn difyctl into an open redirect.

use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{Path, State};
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::Authority;
use http::{Request, Response, StatusCode};

use super::access_log::AccessEntry;
use super::challenge::ChallengeTokens;
#[cfg(test)]
use super::challenge::CHALLENGE_PREFIX;
use super::conn::ConnInfo;
use super::pages::{self, plain};
use super::Body;
use crate::config::LogFormat;
use crate::metrics::Metrics;

/// What the :80 app answers from.
pub struct Plain {
    pub challenges: ChallengeTokens,
    pub https_port: u16,
    pub domains: Vec<String>,
}

/// The :80 app: the ACME HTTP-01 challenge route, and a redirect for everything else.
pub fn router(plain: Arc<Plain>) -> axum::Router {
    axum::Router::new()
        .route(
            "/.well-known/acme-challenge/{token}",
            axum::routing::get(
                |State(p): State<Arc<Plain>>, Path(token): Path<String>| async move {
                    challenge(&p.challenges, &token)
                },
            ),
        )
        .fallback(
            |State(p): State<Arc<Plain>>, req: Request<axum::body::Body>| async move {
                redirect(&req, p.https_port, &p.domains)
            },
        )
        .with_state(plain)
}

/// Serves one request of a :80 connection through `app`, with its access-log entry attached.
pub async fn handle<B>(
    app: axum::Router,
    req: Request<B>,
    conn: &ConnInfo,
    format: LogFormat,
    metrics: &Arc<Metrics>,
) -> Response<axum::body::Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    use tower::ServiceExt as _;
    let mut entry = AccessEntry::begin(&req, &conn.peer_value, format, metrics);
    // The router's error type is Infallible.
    let Ok(mut resp) = app.oneshot(req.map(axum::body::Body::new)).await;
    entry.status = resp.status().as_u16();
    resp.extensions_mut().insert(entry);
    resp
}

fn challenge(challenges: &ChallengeTokens, token: &str) -> Response<Body> {
    match challenges.get(token) {
        Some(key_authorization) => {
            let mut resp = Response::new(pages::full(Bytes::from(key_authorization)));
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            resp
        }
        None => plain(StatusCode::NOT_FOUND, "unknown ACME challenge token\n"),
    }
}

#[cfg(test)]
fn respond<B>(
    req: &Request<B>,
    challenges: &ChallengeTokens,
    https_port: u16,
    domains: &[String],
) -> Response<Body> {
    match req.uri().path().strip_prefix(CHALLENGE_PREFIX) {
        Some(token) => challenge(challenges, token),
        None => redirect(req, https_port, domains),
    }
}

fn redirect<B>(req: &Request<B>, https_port: u16, domains: &[String]) -> Response<Body> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .and_then(|h| Authority::from_str(h).ok());
    let Some(host) = host else {
        return plain(StatusCode::BAD_REQUEST, "missing or invalid Host header\n");
    };
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let asked = host.host().to_ascii_lowercase();
    let name = match domains.first() {
        Some(first) if !domains.contains(&asked) => first.as_str(),
        _ => asked.as_str(),
    };
    let location = format!("https://{name}{port}{pq}");
    let Ok(location) = HeaderValue::from_str(&location) else {
        return plain(StatusCode::BAD_REQUEST, "invalid request target\n");
    };
    let mut resp = Response::new(pages::empty());
    *resp.status_mut() = StatusCode::MOVED_PERMANENTLY;
    resp.headers_mut().insert(header::LOCATION, location);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(uri: &str, host: &str) -> Request<()> {
        Request::builder()
            .uri(uri)
            .header("host", host)
            .body(())
            .unwrap()
    }

    #[test]
    fn redirects_keep_path_and_query() {
        let tokens = ChallengeTokens::default();
        let resp = respond(&get("/apps?x=1", "dify.example.com"), &tokens, 443, &[]);
        assert_eq!(resp.status(), 301);
        assert_eq!(
            resp.headers()["location"],
            "https://dify.example.com/apps?x=1"
        );
        let resp = respond(&get("/", "dify.example.com:8080"), &tokens, 8443, &[]);
        assert_eq!(resp.headers()["location"], "https://dify.example.com:8443/");
    }

    /// Regression (hardening #8): the redirect trusted `Host` even with domains configured,
    /// an open redirect to any site.
    #[test]
    fn redirect_with_domains_never_names_another_host() {
        let tokens = ChallengeTokens::default();
        let domains = ["dify.example.com".to_string(), "ai.example.com".to_string()];
        let resp = respond(&get("/x", "evil.example.net"), &tokens, 443, &domains);
        assert_eq!(resp.headers()["location"], "https://dify.example.com/x");
        let resp = respond(&get("/x", "AI.example.com"), &tokens, 443, &domains);
        assert_eq!(resp.headers()["location"], "https://ai.example.com/x");
    }

    #[test]
    fn challenge_tokens_answered() {
        let tokens = ChallengeTokens::default();
        tokens.insert("tok".into(), "tok.thumb".into());
        assert_eq!(
            respond(
                &get("/.well-known/acme-challenge/tok", "x"),
                &tokens,
                443,
                &[]
            )
            .status(),
            200
        );
        assert_eq!(
            respond(
                &get("/.well-known/acme-challenge/nope", "x"),
                &tokens,
                443,
                &[]
            )
            .status(),
            404
        );
    }
}
