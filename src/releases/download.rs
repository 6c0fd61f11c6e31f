//! One HTTPS GET into a file or memory: the system's roots (`SSL_CERT_FILE` / `SSL_CERT_DIR`
//! honoured, as OpenSSL and curl do: a mirror with a private CA, and the tests), redirects
//! followed to HTTPS only (GitHub answers an archive with a redirect to codeload), a bound on
//! the size and on the time without progress.

use std::path::Path;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::AsyncWriteExt;

use super::ReleasesError;

const MAX_REDIRECTS: usize = 5;
/// No byte for this long: the server stopped answering.
const STALL: Duration = Duration::from_secs(60);
const CONNECT: Duration = Duration::from_secs(15);

type HttpsClient = Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Empty<bytes::Bytes>,
>;

fn client(url: &str) -> Result<HttpsClient, ReleasesError> {
    let fail = |detail: String| ReleasesError::Http {
        url: url.to_string(),
        detail,
    };
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for cert in found.certs {
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err(fail(format!(
            "no trusted root certificates on this machine (install ca-certificates, or set SSL_CERT_FILE){}",
            found.errors.first().map(|e| format!(": {e}")).unwrap_or_default()
        )));
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(CONNECT));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new()).build(https))
}

/// GETs `url` (following redirects) and hands each piece of the body to `sink`; at most
/// `max` bytes. `Ok(false)` on 404.
async fn get(
    url: &str,
    max: u64,
    mut sink: impl AsyncFnMut(&[u8]) -> Result<(), ReleasesError>,
) -> Result<bool, ReleasesError> {
    let client = client(url)?;
    let mut at = url.to_string();
    for _ in 0..=MAX_REDIRECTS {
        let fail = |detail: String| ReleasesError::Http {
            url: at.clone(),
            detail,
        };
        let uri: hyper::Uri = at.parse().map_err(|e| fail(format!("not a URL: {e}")))?;
        if uri.scheme_str() != Some("https") {
            return Err(fail(
                "only https:// is fetched (a release is code run as root)".into(),
            ));
        }
        let req = hyper::Request::get(uri.clone())
            .header(
                hyper::header::USER_AGENT,
                concat!("difyctl/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::new())
            .map_err(|e| fail(e.to_string()))?;
        let resp = tokio::time::timeout(STALL, client.request(req))
            .await
            .map_err(|_| fail(format!("no answer within {}s", STALL.as_secs())))?
            .map_err(|e| fail(crate::error_chain(&e)))?;
        let status = resp.status();
        if status.is_redirection() {
            let location = resp
                .headers()
                .get(hyper::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .ok_or_else(|| fail(format!("{status} without a Location")))?;
            at = resolve(&uri, location);
            continue;
        }
        if status == hyper::StatusCode::NOT_FOUND {
            return Ok(false);
        }
        if !status.is_success() {
            return Err(fail(format!("answered {status}")));
        }
        let mut body = resp.into_body();
        let mut total = 0u64;
        loop {
            let frame = tokio::time::timeout(STALL, body.frame())
                .await
                .map_err(|_| fail(format!("the download stalled for {}s", STALL.as_secs())))?;
            let Some(frame) = frame else { break };
            let frame = frame.map_err(|e| fail(format!("the download broke off: {e}")))?;
            if let Some(data) = frame.data_ref() {
                total += data.len() as u64;
                if total > max {
                    return Err(ReleasesError::TooLarge { url: at, max });
                }
                sink(data).await?;
            }
        }
        return Ok(true);
    }
    Err(ReleasesError::Http {
        url: url.to_string(),
        detail: format!("more than {MAX_REDIRECTS} redirects"),
    })
}

/// `location` against the URL that answered with it.
fn resolve(base: &hyper::Uri, location: &str) -> String {
    if location.starts_with("https://") || location.starts_with("http://") {
        return location.to_string();
    }
    let authority = base.authority().map(|a| a.as_str()).unwrap_or_default();
    if location.starts_with('/') {
        format!("https://{authority}{location}")
    } else {
        let path = base.path();
        let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
        format!("https://{authority}{dir}{location}")
    }
}

/// Downloads `url` into `file` (created, 0600). `Ok(false)` on 404.
pub async fn to_file(url: &str, file: &Path, max: u64) -> Result<bool, ReleasesError> {
    let mut out = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .await
        .map_err(ReleasesError::io(file, "cannot create it"))?;
    let found = get(url, max, async |data: &[u8]| {
        out.write_all(data)
            .await
            .map_err(ReleasesError::io(file, "cannot write it"))
    })
    .await?;
    out.flush()
        .await
        .map_err(ReleasesError::io(file, "cannot write it"))?;
    Ok(found)
}

/// Downloads `url` into memory (a release list). `None` on 404.
pub async fn to_memory(url: &str, max: u64) -> Result<Option<Vec<u8>>, ReleasesError> {
    let mut out = Vec::new();
    let found = get(url, max, async |data: &[u8]| {
        out.extend_from_slice(data);
        Ok(())
    })
    .await?;
    Ok(found.then_some(out))
}

#[cfg(test)]
mod tests {
    #[test]
    fn redirects_resolve_against_the_answering_url() {
        let base: hyper::Uri = "https://github.com/langgenius/dify/archive/refs/tags/1.16.1.tar.gz"
            .parse()
            .unwrap();
        assert_eq!(
            super::resolve(&base, "https://codeload.github.com/x.tar.gz"),
            "https://codeload.github.com/x.tar.gz"
        );
        assert_eq!(super::resolve(&base, "/a/b"), "https://github.com/a/b");
        assert_eq!(
            super::resolve(&base, "c.tar.gz"),
            "https://github.com/langgenius/dify/archive/refs/tags/c.tar.gz"
        );
    }
}
