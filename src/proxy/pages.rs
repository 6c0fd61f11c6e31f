//! Error responses the proxy makes itself. The 502/503/504 pages say what is wrong and what to
//! do, naming the Dify service, instead of a bare status line.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::BodyExt;

use super::Body;

const PAGE_502: &str = include_str!("../../assets/502.html");
const PAGE_503: &str = include_str!("../../assets/503.html");
const PAGE_504: &str = include_str!("../../assets/504.html");

/// An HTML error page for the gateway errors, with `{service}` filled in.
pub fn gateway_error(status: StatusCode, service: &str) -> Response<Body> {
    gateway_error_because(status, service, None)
}

/// `gateway_error` with the service's state said (`stopped`, `exited with code 1`).
pub fn gateway_error_because(
    status: StatusCode,
    service: &str,
    state: Option<&str>,
) -> Response<Body> {
    let template = match status {
        StatusCode::BAD_GATEWAY => PAGE_502,
        StatusCode::GATEWAY_TIMEOUT => PAGE_504,
        _ => PAGE_503,
    };
    let mut html = template.replace("{service}", service);
    if let Some(state) = state {
        let state: String = state
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || " -_.,:()".contains(*c))
            .collect();
        html = html.replacen(
            "</h1>",
            &format!("</h1>\n<p>Service <code>{service}</code> is {state}.</p>"),
            1,
        );
    }
    let mut resp = Response::new(full(Bytes::from(html)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A short plain-text response (400, 404, 413, 431 and the like).
pub fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut resp = Response::new(full(Bytes::from_static(text.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

pub fn full(bytes: Bytes) -> Body {
    http_body_util::Full::new(bytes)
        .map_err(|never| match never {})
        .boxed()
}

pub fn empty() -> Body {
    full(Bytes::new())
}
